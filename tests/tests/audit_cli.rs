//! The audit trail through the real binary: a recovery's records queried by correlation
//! id and action, followed with `tail`, verified with `verify`, and a record tampered with
//! in the index (behind the stopped service's back) found by `verify`.
#![allow(clippy::unwrap_used)]

use backtrack_e2e::Backtrack;
use backtrack_store::audit::AuditIndex;
use std::time::Duration;

use backtrack_test_support::{eventually, NatsServer};
use prost::Message;
use serde_json::{json, Value};

const T: &str = "aud";

#[tokio::test(flavor = "multi_thread")]
async fn a_recoverys_audit_trail_is_queried_followed_verified_and_tamper_evident() {
    let nats = NatsServer::start().await.unwrap();
    let mut b = Backtrack::start(Some(nats.url())).await.unwrap();
    b.json(&["tenant", "create", T]).unwrap();
    let backup = b.json(&["backup", "create", "--tenant", T]).unwrap()["id"]
        .as_str()
        .unwrap()
        .to_string();
    let lines: Vec<String> = (0..30)
        .map(|i| json!({"@kind": "user", "displayName": format!("U{i}"), "userPrincipalName": format!("u{i}@aud.test")}).to_string())
        .collect();
    let file = b.data().join("users.jsonl");
    std::fs::write(&file, lines.join("\n")).unwrap();
    b.json(&["dir", "import", "--tenant", T, file.to_str().unwrap()])
        .unwrap();
    let job = b
        .json(&[
            "recover", "--tenant", T, "--from", &backup, "--yes", "--wait",
        ])
        .unwrap();
    let job_id = job["id"].as_str().unwrap();
    assert_eq!(job["objectsChanged"], 30, "{job}");

    let query = |extra: &[&str]| -> Value {
        let mut args = vec!["audit", "query", "--tenant", T, "--page-size", "1000"];
        args.extend_from_slice(extra);
        b.json(&args).unwrap()
    };
    // The recovery deleted 30 objects: a mass deletion, alerted on and correlated to the job
    // like the rest of its trail (it is waited for, so the trail below is complete).
    let alerted = eventually(
        "the job's mass-deletion alert",
        Duration::from_secs(30),
        || {
            let alerts = query(&["--correlation", job_id, "--action", "alert.raised"]);
            let alerts = alerts["entries"].as_array().unwrap().clone();
            async move { (!alerts.is_empty()).then_some(alerts) }
        },
    )
    .await
    .unwrap();
    assert_eq!(alerted.len(), 1);
    assert_eq!(alerted[0]["details"]["rule"], "massDeletion");
    assert_eq!(alerted[0]["actor"]["subject"], "admin");
    let of_job = query(&["--correlation", job_id]);
    let entries = of_job["entries"].as_array().unwrap();
    assert_eq!(
        entries.len(),
        33,
        "30 operations, start, finish and the alert"
    );
    let applied = query(&[
        "--correlation",
        job_id,
        "--action",
        "recovery.operationApplied",
    ]);
    let applied = applied["entries"].as_array().unwrap();
    assert_eq!(applied.len(), 30);
    assert!(applied.iter().all(|e| e["actor"]["subject"] == "admin"
        && e["target"]["kind"] == "user"
        && e["after"] == json!({"inRecycleBin": true})));
    // Chain positions are consecutive within the tenant.
    let indexes: Vec<u64> = entries
        .iter()
        .map(|e| e["index"].as_u64().unwrap())
        .collect();
    assert!(indexes.windows(2).all(|w| w[1] == w[0] + 1), "{indexes:?}");
    // Paging with a token.
    let first = b
        .json(&[
            "audit",
            "query",
            "--tenant",
            T,
            "--correlation",
            job_id,
            "--page-size",
            "20",
        ])
        .unwrap();
    let token = first["nextPageToken"].as_str().unwrap().to_string();
    let second = b
        .json(&[
            "audit",
            "query",
            "--tenant",
            T,
            "--correlation",
            job_id,
            "--page-token",
            &token,
        ])
        .unwrap();
    assert_eq!(first["entries"].as_array().unwrap().len(), 20);
    assert_eq!(second["entries"].as_array().unwrap().len(), 13);
    // Tail from the start stops after --limit.
    let tail = b.cli(&[
        "audit",
        "tail",
        "--tenant",
        T,
        "--from-start",
        "--limit",
        "5",
    ]);
    assert!(
        tail.status.success(),
        "{}",
        String::from_utf8_lossy(&tail.stderr)
    );
    let lines: Vec<Value> = String::from_utf8_lossy(&tail.stdout)
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(lines.len(), 5);
    assert_eq!(lines[0]["index"], 1);

    let verified = b.json(&["audit", "verify", "--tenant", T]).unwrap();
    assert_eq!(verified["ok"], true, "{verified}");
    let bad = b.cli(&["audit", "verify", "--tenant", "Bad Tenant"]);
    assert!(!bad.status.success());

    // Tamper with one record in the index while the service is stopped.
    b.stop().unwrap();
    {
        let index = AuditIndex::open(&b.data().join("audit")).unwrap();
        let mut link = index.entry(T, 7).unwrap().unwrap();
        let mut record = backtrack_proto::v1::AuditRecord::decode(link.payload.as_slice()).unwrap();
        record.actor.as_mut().unwrap().subject = "someone-else".into();
        link.payload = record.encode_to_vec();
        index
            .put_raw(&AuditIndex::entry_key(T, 7), &link.encode_to_vec())
            .unwrap();
    }
    b.launch().await.unwrap();
    let out = b.cli(&["audit", "verify", "--tenant", T]);
    assert!(!out.status.success());
    let v: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["ok"], false, "{v}");
    assert_eq!(v["firstBadIndex"], 7, "{v}");
    assert!(String::from_utf8_lossy(&out.stderr).contains("broken"));
}
