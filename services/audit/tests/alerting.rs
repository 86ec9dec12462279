//! The audit trail's own alerts against a real nats-server and the real audit service:
//! backups turned off and alerts silenced become `alert.raised` records, queryable in the
//! tenant's chain; a stop loses none and a restart repeats none; history before the first
//! start raises nothing; a burst of refused calls is one alert, counted once across a stop.
#![allow(clippy::unwrap_used)]

use std::time::Duration;

use backtrack_audit::alerting::{DenialLimits, Denials};
use backtrack_audit::{Audit, AuditConfig};
use backtrack_eventlog::buckets::{alerts_bucket, get_json};
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

/// A refusal in acme's trail, of a call by `subject`, as the gRPC layer records it.
fn refused(subject: &str) -> AuditRecord {
    let mut r = backtrack_platform::audit::denial_record(
        None,
        None,
        "10.0.0.7:4000".parse().ok(),
        "/backtrack.v1.RecoveryService/StartRecovery",
        &tonic::Status::permission_denied("the token does not grant BackupAdministrator"),
    );
    r.tenant = "acme".into();
    r.actor.as_mut().unwrap().subject = subject.into();
    r
}

#[tokio::test(flavor = "multi_thread")]
async fn a_burst_of_refused_calls_across_a_stop_is_one_alert_and_a_flood_is_another() {
    let nats = NatsServer::start().await.unwrap();
    let client = nats.client().await.unwrap();
    let log = AuditLog::open(client.clone(), 1).await.unwrap();
    let start = |dir: std::path::PathBuf| {
        let nats = &nats;
        async move {
            let (trigger, shutdown) = Shutdown::new();
            let mut config = AuditConfig::new(dir);
            config.alerts = true;
            config.denial_limits = DenialLimits {
                calls: 3,
                tenant_calls: 0,
                window_ms: 600_000,
            };
            let audit = Audit::start(config, nats.client().await.unwrap(), shutdown)
                .await
                .unwrap();
            (audit, trigger)
        }
    };
    let first = tempfile::tempdir().unwrap();
    let (audit, stop) = start(first.path().to_path_buf()).await;
    log.publish(&[refused("mallory"), refused("mallory")])
        .await
        .unwrap();
    // Counted (and stored) before the stop: the restart must not count them again, nor
    // forget them.
    let js = async_nats::jetstream::new(client.clone());
    let bucket = alerts_bucket(&js, 1).await.unwrap();
    let through = log.last_sequence().await.unwrap();
    eventually("the refusals counted", Duration::from_secs(20), || async {
        let d: Option<Denials> = get_json(&bucket, "audit.denials").await.unwrap();
        d.filter(|d| d.through >= through).map(|_| ())
    })
    .await
    .unwrap();
    drop(audit);
    stop.trigger();

    let third = refused("mallory");
    log.publish(&[third.clone(), refused("alice")])
        .await
        .unwrap();
    let second = tempfile::tempdir().unwrap();
    let (audit, _stop) = start(second.path().to_path_buf()).await;
    // The run goes on (no second alert within it); the marker's alert comes after.
    log.publish(&[refused("mallory"), refused("mallory"), refused("mallory")])
        .await
        .unwrap();
    log.publish(&[backups_off()]).await.unwrap();
    assert_eq!(
        alerts(&audit, 2).await,
        ["accessDeniedBurst", "backupsTurnedOff"]
    );
    let query = AuditQuery {
        action: "alert.raised".into(),
        page_size: 10,
        ..Default::default()
    };
    let (page, _) = audit.query("acme", &query).await.unwrap();
    let burst = page[0].record.as_ref().unwrap();
    assert_eq!(burst.id, format!("alert:{}:accessDeniedBurst", third.id));
    let details: Value = serde_json::from_str(&burst.details_json).unwrap();
    assert_eq!(
        details["what"],
        "3 calls refused within 10 min by mallory; the last: \
         /backtrack.v1.RecoveryService/StartRecovery: the token does not grant BackupAdministrator"
    );
    assert_eq!(burst.actor.as_ref().unwrap().subject, "mallory");

    // Refusals beyond what the audit queue held, summarised as one record.
    let mut dropped = backtrack_eventlog::audit::new_record(
        "_unauthenticated",
        "security",
        "security.accessDeniedDropped",
    );
    dropped.details_json = json!({"dropped": 5000}).to_string();
    log.publish(std::slice::from_ref(&dropped)).await.unwrap();
    let flood = eventually("the flood alert", Duration::from_secs(20), || async {
        let (page, _) = audit.query("_unauthenticated", &query).await.unwrap();
        page.first().and_then(|e| e.record.clone())
    })
    .await
    .unwrap();
    let details: Value = serde_json::from_str(&flood.details_json).unwrap();
    assert_eq!(details["rule"], "accessDeniedFlood");
    assert_eq!(
        details["what"],
        "5000 refused calls came faster than they could be recorded one by one"
    );
    assert!(audit.verify("acme").await.unwrap().ok);
}
