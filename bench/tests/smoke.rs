//! The benchmark at toy sizes against a real nats-server, so `make test` notices when a
//! scenario breaks: every figure must come out positive, the replay must rebuild the live
//! state exactly, and the time-travel store built from the log must hold the directory's
//! state and verify its backups, and every difference report must hold exactly the objects
//! changed.

use backtrack_bench::suite::{self, Sizes};
use serde_json::Value;

/// The directory's rows, in order; the time-travel rows follow them.
const ROWS: &[&str] = &[
    "raw_publish",
    "raw_publish_guarded",
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
    "feed_read_tenant",
    "feed_read_one_kind_seconds",
    "feed_read_one_object_seconds",
    "overview_alerts_tenant",
    "token_revocation_propagation_p50",
    "token_revocation_propagation_p99",
    "peak_rss_bench",
    "peak_rss_nats_server",
];

/// The audit scenario's rows, in order.
const AUDIT_ROWS: &[&str] = &[
    "audit_syslog_target_records_per_s",
    "audit_publish",
    "audit_chained",
    "audit_syslog_delivered",
    "audit_http_delivered",
    "audit_syslog_lag_p50",
    "audit_syslog_lag_p99",
    "audit_http_lag_p50",
    "audit_http_lag_p99",
    "audit_paced_syslog_lag_p50",
    "audit_paced_syslog_lag_p99",
    "audit_paced_http_lag_p50",
    "audit_paced_http_lag_p99",
    "audit_raw_read_refusals",
    "audit_alerting_catch_up",
];

/// The cluster scenario's rows, in order.
const CLUSTER_ROWS: &[&str] = &[
    "cluster_raw_publish_r3",
    "cluster_append_r3",
    "cluster_failover_append_after_node_kill",
];

/// The difference-report rows, after the time-travel rows: 1% (20 users) of the large
/// tenant, none of it, and all 2000 users of the churn tenant against `git diff`.
const DIFF_ROWS: &[&str] = &[
    "diff_1pct_seconds_2k_objects",
    "diff_0_changes_seconds_2k_objects",
    "diff_peer_seconds_2k_objects",
    "diff_all_changed_seconds_2k_objects",
    "diff_all_changed_compute_seconds_2k_objects",
    "diff_all_changed_store_seconds_2k_objects",
    "differ_1pct_rss_growth",
];

/// Objects of the large tenant: 1998 users and 2 groups.
const TIMETRAVEL_OBJECTS: usize = 2000;

/// The time-travel rows, named after the demo tenant's object count.
fn time_travel_rows(demo_objects: u64) -> Vec<String> {
    let demo = demo_objects.to_string();
    vec![
        "raw_read_log".into(),
        "timetravel_build".into(),
        "alerter_catch_up".into(),
        format!("backup_create_p50_{demo}_objects"),
        format!("backup_create_p99_{demo}_objects"),
        "backup_create_p50_2k_objects".into(),
        "backup_create_p99_2k_objects".into(),
        format!("verify_seconds_{demo}_objects"),
        "verify_seconds_2k_objects".into(),
        "object_at_lookups".into(),
        "get_object_at_grpc_p50".into(),
        "get_object_at_grpc_p99".into(),
        "tenant_at_listing".into(),
        "tenant_at_listing_with_links".into(),
        format!("incoming_history_seconds_{demo}_objects"),
        "incoming_history_seconds_2k_objects".into(),
        "timetravel_store_bytes_per_million_events".into(),
        "peak_rss_snapshotter_build".into(),
    ]
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_scenario_runs_at_tiny_sizes() -> anyhow::Result<()> {
    let outcome = suite::run(Sizes {
        users: 200,
        raw_messages: Some(2000),
        latency_samples: 50,
        timetravel_objects: TIMETRAVEL_OBJECTS,
        recovery_changes: Vec::new(),
        recovery_only: false,
        audit_records: 500,
        audit_only: false,
        cluster_objects: 1000,
        cluster_only: false,
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
    assert_eq!(
        report.parameters.get("timetravel_digest_matches"),
        Some(&Value::Bool(true))
    );
    assert_eq!(
        report.parameters.get("timetravel_verified"),
        Some(&serde_json::json!({ "bench": true, "bench-large": true }))
    );
    assert_eq!(report.parameters["timetravel_users"], 1998);
    assert_eq!(report.parameters["timetravel_groups"], 2);
    let demo_objects = report.parameters["objects"].as_u64().unwrap_or_default();
    let expected: Vec<String> = ROWS
        .iter()
        .map(|r| r.to_string())
        .chain(time_travel_rows(demo_objects))
        .chain(DIFF_ROWS.iter().map(|r| r.to_string()))
        .chain(AUDIT_ROWS.iter().map(|r| r.to_string()))
        .chain(CLUSTER_ROWS.iter().map(|r| r.to_string()))
        .collect();
    let names: Vec<&str> = report.rows.iter().map(|r| r.name.as_str()).collect();
    assert_eq!(names, expected);
    for row in &report.rows {
        assert!(
            row.value.is_finite() && row.value > 0.0,
            "{} = {}",
            row.name,
            row.value
        );
    }
    let import = &report.rows[4];
    assert_eq!(import.baseline.as_deref(), Some("raw_publish"));
    assert!(import.ratio.is_some_and(|r| r > 0.0) && import.pass.is_some());
    let guarded_ratio = report.parameters["bulk_import_ratio_to_guarded_publish"].as_f64();
    assert!(guarded_ratio.is_some_and(|r| r > 0.0), "{guarded_ratio:?}");
    let build = &report.rows[ROWS.len() + 1];
    assert_eq!(build.baseline.as_deref(), Some("raw_read_log"));
    assert!(build.ratio.is_some_and(|r| r > 0.0) && build.pass.is_some());
    let short_ratio = report.parameters["timetravel_build_ratio_to_raw_read"].as_f64();
    assert!(short_ratio.is_some_and(|r| r > 0.0), "{short_ratio:?}");
    // The build has read the whole log: the demo tenant and the 2001 large-tenant events.
    let build_events = report.parameters["timetravel_build_events"].as_u64();
    assert!(build_events.is_some_and(|n| n > 2001), "{build_events:?}");
    // The store's size is read once its compactions are done, and at the build's end.
    let settle = report.parameters["timetravel_compaction_settle_seconds"].as_f64();
    assert!(settle.is_some_and(|s| s >= 0.0), "{settle:?}");
    for size in [
        "timetravel_store_bytes",
        "timetravel_store_bytes_at_build_end",
    ] {
        let bytes = report.parameters[size].as_u64();
        assert!(bytes.is_some_and(|b| b > 0), "{size}: {bytes:?}");
    }
    assert_eq!(
        report.parameters.get("diff_items_exact"),
        Some(&serde_json::json!({
            "diff_1pct": true, "diff_0_changes": true, "diff_all_changed": true
        }))
    );
    assert_eq!(report.parameters["diff_1pct_report"]["items"], 20);
    assert_eq!(report.parameters["diff_all_changed_report"]["items"], 2000);
    assert_eq!(report.parameters["diff_peer_files"], 2000);
    // 500 refusals: 12 callers of at least 40 each, one burst alert each, and the tenant's
    // surge (200 refusals).
    assert_eq!(report.parameters["audit_alerting_callers"], 12);
    assert_eq!(report.parameters["audit_alerting_alerts_raised"], 13);
    let all_changed = report
        .rows
        .iter()
        .find(|r| r.name == "diff_all_changed_seconds_2k_objects");
    assert!(all_changed.is_some_and(|r| r.baseline.as_deref()
        == Some("diff_peer_seconds_2k_objects")
        && r.ratio.is_some_and(|x| x > 0.0)
        && r.pass.is_some()));

    let dir = tempfile::tempdir()?;
    let path = dir.path().join("results.json");
    report.write(&path)?;
    let written: Value = serde_json::from_slice(&std::fs::read(&path)?)?;
    assert!(written["machine"]["cores"].as_u64().is_some_and(|c| c >= 1));
    assert!(written["machine"]["date"].is_string());
    assert_eq!(written["parameters"]["raw_messages"], 2000);
    assert_eq!(
        written["scenarios"].as_array().map(Vec::len),
        Some(expected.len())
    );
    Ok(())
}

/// The recovery scenario at a tiny size: the job applied in process and the same job with
/// its batches sent to the directory over gRPC both succeed exactly, and the gRPC rows are
/// ratios to the in-process ones.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_recovery_scenario_runs_in_process_and_over_grpc() -> anyhow::Result<()> {
    let outcome = suite::run(Sizes {
        users: 0,
        raw_messages: None,
        latency_samples: 0,
        timetravel_objects: 0,
        recovery_changes: vec![200],
        recovery_only: true,
        audit_records: 0,
        audit_only: false,
        cluster_objects: 0,
        cluster_only: false,
    })
    .await?;
    assert!(outcome.failures.is_empty(), "{:?}", outcome.failures);
    let report = &outcome.report;
    let names: Vec<&str> = report.rows.iter().map(|r| r.name.as_str()).collect();
    for wanted in [
        "recovery_200_changes_per_s",
        "recovery_200_seconds",
        "recovery_200_plan_seconds",
        "recovery_200_plan_changed_by_seconds",
        "recovery_200_judged_events_per_s",
        "recovery_grpc_200_changes_per_s",
        "recovery_grpc_200_seconds",
    ] {
        assert!(names.contains(&wanted), "{wanted} missing from {names:?}");
    }
    let grpc = report
        .rows
        .iter()
        .find(|r| r.name == "recovery_grpc_200_changes_per_s")
        .unwrap();
    assert_eq!(grpc.baseline.as_deref(), Some("recovery_200_changes_per_s"));
    assert!(grpc.ratio.is_some_and(|r| r > 0.0), "{grpc:?}");
    let by_actor = report
        .rows
        .iter()
        .find(|r| r.name == "recovery_200_plan_changed_by_seconds")
        .unwrap();
    assert_eq!(
        by_actor.baseline.as_deref(),
        Some("recovery_200_plan_seconds")
    );
    // The incident's alerts (its run of deletions at least), every one set back.
    let judged = report.parameters["recovery_200_judged_alerts"]
        .as_array()
        .unwrap();
    assert!(!judged.is_empty());
    assert!(judged.iter().all(|a| a[1] == true), "{judged:?}");
    for key in ["recovery_200", "recovery_grpc_200"] {
        assert_eq!(
            report.parameters[key]["residual"], 0,
            "{key}: {}",
            report.parameters[key]
        );
    }
    Ok(())
}
