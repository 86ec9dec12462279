//! The benchmark at toy sizes against a real nats-server, so `make test` notices when a
//! scenario breaks: every figure must come out positive and the replay must rebuild the
//! live state exactly.

use backtrack_bench::suite::{self, Sizes};
use serde_json::Value;

const ROWS: &[&str] = &[
    "raw_publish",
    "raw_read",
    "raw_rocksdb_write",
    "bulk_import",
    "bulk_import_objects",
    "seed_200_users_seconds",
    "replay",
    "feed_latency_p50",
    "feed_latency_p99",
    "rpc_roundtrip_p50",
    "rpc_roundtrip_p99",
    "peak_rss_bench",
    "peak_rss_nats_server",
];

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_scenario_runs_at_tiny_sizes() -> anyhow::Result<()> {
    let outcome = suite::run(Sizes {
        users: 200,
        raw_messages: Some(2000),
        latency_samples: 50,
    })
    .await?;
    assert!(outcome.failures.is_empty(), "{:?}", outcome.failures);

    let report = &outcome.report;
    assert_eq!(
        report.parameters.get("replay_digest_matches"),
        Some(&Value::Bool(true)),
        "{:?}",
        report.parameters
    );
    let names: Vec<&str> = report.rows.iter().map(|r| r.name.as_str()).collect();
    assert_eq!(names, ROWS);
    for row in &report.rows {
        assert!(
            row.value.is_finite() && row.value > 0.0,
            "{} = {}",
            row.name,
            row.value
        );
    }
    let import = &report.rows[3];
    assert_eq!(import.baseline.as_deref(), Some("raw_publish"));
    assert!(import.ratio.is_some_and(|r| r > 0.0) && import.pass.is_some());

    let dir = tempfile::tempdir()?;
    let path = dir.path().join("results.json");
    report.write(&path)?;
    let written: Value = serde_json::from_slice(&std::fs::read(&path)?)?;
    assert!(written["machine"]["cores"].as_u64().is_some_and(|c| c >= 1));
    assert!(written["machine"]["date"].is_string());
    assert_eq!(written["parameters"]["raw_messages"], 2000);
    assert_eq!(
        written["scenarios"].as_array().map(Vec::len),
        Some(ROWS.len())
    );
    Ok(())
}
