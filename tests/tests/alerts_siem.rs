//! Alerts reach the SIEM through the real binary: `backtrack up` raises an `alert.raised`
//! record for what one account broke (a conditional access policy deleted, a run of
//! deletions over `--alert-mass-deletions`), the audit trail answers
//! `audit query --action alert.raised`, an OCSF file sink receives Detection Findings, and
//! the dry run each alert suggests runs as it is written.
#![allow(clippy::unwrap_used)]

use std::time::Duration;

use backtrack_e2e::Backtrack;
use backtrack_test_support::{eventually, NatsServer};
use serde_json::{json, Value};

const T: &str = "siem";

#[tokio::test(flavor = "multi_thread")]
async fn what_one_account_broke_reaches_the_siem_as_findings() {
    let nats = NatsServer::start().await.unwrap();
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("findings.jsonl");
    let config = dir.path().join("sinks.json");
    std::fs::write(
        &config,
        json!({"sinks": [{"name": "siem", "type": "file", "path": file, "format": "ocsf"}]})
            .to_string(),
    )
    .unwrap();
    let b = Backtrack::start_with(
        Some(nats.url()),
        &[
            "--audit-sinks",
            config.to_str().unwrap(),
            "--alert-mass-deletions",
            "3",
        ],
    )
    .await
    .unwrap();
    b.json(&["tenant", "create", T]).unwrap();
    let policy = b
        .create(
            T,
            "conditionalAccessPolicy",
            &["displayName=CA001 Require MFA", "state=enabled"],
        )
        .unwrap()["id"]
        .as_str()
        .unwrap()
        .to_string();
    let users: Vec<String> = (0..2)
        .map(|n| {
            let upn = format!("userPrincipalName=u{n}@siem.test");
            b.create(T, "user", &[&upn, "displayName=U"]).unwrap()["id"]
                .as_str()
                .unwrap()
                .to_string()
        })
        .collect();

    let mallory = b.token_for(T, "DirectoryWriter", "mallory");
    b.ok_with_token(&mallory, &["dir", "delete", "--tenant", T, &policy]);
    for user in &users {
        b.ok_with_token(&mallory, &["dir", "delete", "--tenant", T, user]);
    }

    let query = || {
        b.json(&["audit", "query", "--tenant", T, "--action", "alert.raised"])
            .unwrap()["entries"]
            .as_array()
            .unwrap()
            .clone()
    };
    let entries = eventually("two alerts", Duration::from_secs(30), || {
        let entries = query();
        async move { (entries.len() >= 2).then_some(entries) }
    })
    .await
    .unwrap();
    assert_eq!(entries.len(), 2, "{entries:#?}");
    let rules: Vec<&str> = entries
        .iter()
        .map(|e| e["details"]["rule"].as_str().unwrap())
        .collect();
    assert_eq!(rules, ["caPolicyDeleted", "massDeletion"]);
    let deleted = &entries[0];
    assert_eq!(deleted["actor"]["subject"], "mallory");
    assert_eq!(deleted["target"]["displayName"], "CA001 Require MFA");
    assert_eq!(
        entries[1]["details"]["what"],
        "3 objects deleted by one actor within 60 min"
    );

    // The suggested dry run is a working command: it would put back exactly the policy.
    let undo = deleted["details"]["undo"].as_str().unwrap();
    let words: Vec<&str> = undo.split_whitespace().collect();
    assert_eq!(words[0], "backtrack");
    let plan = b.json(&words[1..]).unwrap();
    let operations = plan["operations"].as_array().unwrap();
    assert_eq!(operations.len(), 1, "{plan}");
    assert_eq!(operations[0]["id"], policy.as_str(), "{plan}");

    // The SIEM's file: OCSF Detection Findings with the alert's severity.
    let findings = eventually("two findings in the file", Duration::from_secs(30), || {
        let text = std::fs::read_to_string(&file).unwrap_or_default();
        async move {
            let findings: Vec<Value> = text
                .lines()
                .map(|l| serde_json::from_str::<Value>(l).unwrap())
                .filter(|v| v["class_uid"] == 2004)
                .collect();
            (findings.len() >= 2).then_some(findings)
        }
    })
    .await
    .unwrap();
    assert_eq!(findings.len(), 2);
    let critical = &findings[0];
    assert_eq!(critical["severity"], "Critical");
    assert_eq!(
        critical["finding_info"]["types"],
        json!(["caPolicyDeleted"])
    );
    assert_eq!(critical["resources"][0]["name"], "CA001 Require MFA");
    assert_eq!(critical["actor"]["user"]["name"], "mallory");
    assert_eq!(findings[1]["severity"], "High");
}
