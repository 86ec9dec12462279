//! The audit trail's own alerts against a real nats-server and the real audit service:
//! backups turned off and alerts silenced become `alert.raised` records, queryable in the
//! tenant's chain; a stop loses none and a restart repeats none; history before the first
//! start raises nothing.
#![allow(clippy::unwrap_used)]

use std::time::Duration;

use backtrack_audit::{Audit, AuditConfig};
use backtrack_eventlog::AuditLog;
use backtrack_platform::audit::AuditEntry;
use backtrack_platform::shutdown::{Shutdown, ShutdownTrigger};
use backtrack_proto::v1::{AuditActor, AuditRecord};
use backtrack_store::audit::AuditQuery;
use backtrack_test_support::{eventually, NatsServer};
use serde_json::{json, Value};

fn changed(action: &str, before: Value, after: Value) -> AuditRecord {
    let mut r = AuditEntry::system("alice", "acme", "configuration", action)
        .target("backupPolicy", "acme", "")
        .before(&before)
        .after(&after)
        .into_record();
    r.actor = Some(AuditActor {
        subject: "alice".into(),
        roles: vec!["GlobalAdministrator".into()],
        ..Default::default()
    });
    r
}

fn backups_off() -> AuditRecord {
    changed(
        "configuration.backupPolicyChanged",
        json!({"schedule": "0 0 2 * * *", "retentionDays": 7}),
        json!({"schedule": "", "retentionDays": 7}),
    )
}

async fn started(nats: &NatsServer, dir: &std::path::Path) -> (Audit, ShutdownTrigger) {
    let (trigger, shutdown) = Shutdown::new();
    let mut config = AuditConfig::new(dir.to_path_buf());
    config.alerts = true;
    let audit = Audit::start(config, nats.client().await.unwrap(), shutdown)
        .await
        .unwrap();
    (audit, trigger)
}

/// The rules of acme's alert records in its chain, waiting until there are `n`.
async fn alerts(audit: &Audit, n: usize) -> Vec<String> {
    eventually("the alerts", Duration::from_secs(20), || async {
        let query = AuditQuery {
            action: "alert.raised".into(),
            page_size: 1000,
            ..Default::default()
        };
        let (page, _) = audit.query("acme", &query).await.unwrap();
        let rules: Vec<String> = page
            .iter()
            .map(|e| {
                let details: Value =
                    serde_json::from_str(&e.record.as_ref().unwrap().details_json).unwrap();
                details["rule"].as_str().unwrap().to_string()
            })
            .collect();
        (rules.len() >= n).then_some(rules)
    })
    .await
    .unwrap()
}

#[tokio::test(flavor = "multi_thread")]
async fn weakened_protection_is_alerted_once_across_a_stop() {
    let nats = NatsServer::start().await.unwrap();
    let log = AuditLog::open(nats.client().await.unwrap(), 1)
        .await
        .unwrap();
    // Before the first start: history, not alerted on.
    log.publish(&[backups_off()]).await.unwrap();
    let dir = tempfile::tempdir().unwrap();
    let (audit, stop) = started(&nats, dir.path()).await;
    let off = backups_off();
    log.publish(std::slice::from_ref(&off)).await.unwrap();
    assert_eq!(alerts(&audit, 1).await, ["backupsTurnedOff"]);

    drop(audit);
    stop.trigger();
    let silenced = changed(
        "configuration.alertPolicyChanged",
        json!({"disabledRules": []}),
        json!({"disabledRules": ["caPolicyDeleted"]}),
    );
    log.publish(&[silenced]).await.unwrap();
    let again = tempfile::tempdir().unwrap();
    let (audit, _stop) = started(&nats, again.path()).await;
    // A marker after the restart: once its alert is there, everything before it is too.
    log.publish(&[backups_off()]).await.unwrap();
    let rules = alerts(&audit, 3).await;
    assert_eq!(
        rules,
        ["backupsTurnedOff", "alertsSilenced", "backupsTurnedOff"],
        "each once, in order"
    );
    let query = AuditQuery {
        action: "alert.raised".into(),
        page_size: 1000,
        ..Default::default()
    };
    let (page, _) = audit.query("acme", &query).await.unwrap();
    let first = page[0].record.as_ref().unwrap();
    assert_eq!(first.id, format!("alert:{}:backupsTurnedOff", off.id));
    assert_eq!(first.actor.as_ref().unwrap().subject, "alice");
    assert!(audit.verify("acme").await.unwrap().ok);
}
