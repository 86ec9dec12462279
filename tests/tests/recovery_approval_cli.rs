//! A whole-tenant recovery through the real `backtrack` binary started with
//! `--recovery-approval`: it waits for a second Global Administrator, the tenant stays
//! free meanwhile, its undo waits too, and the audit trail names who asked and who
//! approved.
#![allow(clippy::unwrap_used)]

use backtrack_e2e::Backtrack;
use backtrack_proto::v1;
use backtrack_test_support::NatsServer;
use serde_json::Value;

const T: &str = "inc";

#[tokio::test(flavor = "multi_thread")]
async fn a_whole_tenant_recovery_waits_for_a_second_administrator() {
    let nats = NatsServer::start().await.unwrap();
    let b = Backtrack::start_with(Some(nats.url()), &["--recovery-approval"])
        .await
        .unwrap();
    b.json(&["tenant", "create", T]).unwrap();
    let backup = b.json(&["backup", "create", "--tenant", T]).unwrap()["id"]
        .as_str()
        .unwrap()
        .to_string();
    let user = b
        .create(
            T,
            "user",
            &["displayName=Late", "userPrincipalName=late@inc.test"],
        )
        .unwrap()["id"]
        .as_str()
        .unwrap()
        .to_string();
    let job = b.recover(T, &["--from", &backup]);
    let id = job["id"].as_str().unwrap().to_string();
    assert_eq!(job["status"], "awaitingApproval", "{job}");
    assert!(
        b.object(T, &user)["deletedDateTime"].is_null(),
        "nothing ran yet"
    );
    // The tenant is not held meanwhile: a report can run.
    let report = b
        .json(&["diff", "create", "--tenant", T, "--from", &backup, "--wait"])
        .unwrap();
    assert_eq!(report["state"], "successful", "{report}");
    // The requester cannot approve their own job.
    let own = b.cli(&["approve", "--tenant", T, &id]);
    assert!(!own.status.success());
    assert!(String::from_utf8_lossy(&own.stderr).contains("second administrator"));
    let out = b.cli(&[
        "token",
        "create",
        "--tenant",
        T,
        "--role",
        "GlobalAdministrator",
        "--subject",
        "bob",
        "--ttl",
        "1h",
    ]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let bob = String::from_utf8_lossy(&out.stdout).trim().to_string();
    let approved = b.cli_with_env(
        &["approve", "--tenant", T, &id, "--wait"],
        &[("BACKTRACK_TOKEN", &bob)],
    );
    assert!(
        approved.status.success(),
        "{}",
        String::from_utf8_lossy(&approved.stderr)
    );
    let approved: Value = serde_json::from_slice(&approved.stdout).unwrap();
    assert_eq!(approved["approvedBy"], "bob", "{approved}");
    assert_eq!(approved["residual"], 0, "{approved}");
    assert!(b.object(T, &user)["deletedDateTime"].is_string());
    // Undoing it sets back only what it changed, and is a whole-tenant recovery as it
    // was: it waits for a second administrator too.
    let undo = b
        .json(&["recovery", "undo", "--tenant", T, &id, "--yes"])
        .unwrap();
    assert_eq!(undo["status"], "awaitingApproval", "{undo}");
    assert_eq!(undo["scope"]["changesOfJob"], id.as_str(), "{undo}");
    let undo_id = undo["id"].as_str().unwrap().to_string();
    b.json(&["recovery", "cancel", "--tenant", T, &undo_id])
        .unwrap();
    // A scoped recovery needs no approval.
    let scoped = b.recover(T, &["--from", &backup, "--kind", "group"]);
    assert_eq!(scoped["status"], "successful", "{scoped}");
    // The trail names who asked (with roles and address) and who approved.
    let records: Vec<v1::AuditRecord> = backtrack_e2e::audit_records(
        &nats.client().await.unwrap(),
        &format!("bt.audit.{T}.recovery"),
    )
    .await
    .unwrap()
    .into_iter()
    .filter(|r| r.correlation.as_ref().is_some_and(|c| c.job_id == id))
    .collect();
    let actions: Vec<&str> = records.iter().map(|r| r.action.as_str()).collect();
    assert_eq!(
        actions.first(),
        Some(&"recovery.approvalRequested"),
        "{actions:?}"
    );
    assert!(actions.contains(&"recovery.approved"), "{actions:?}");
    let requested = records.first().unwrap().actor.clone().unwrap();
    assert_eq!(requested.roles, vec!["GlobalAdministrator".to_string()]);
    assert_eq!(requested.source_address, "127.0.0.1");
}
