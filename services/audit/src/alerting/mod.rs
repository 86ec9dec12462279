//! Alerts on the audit trail itself: changes that weaken the protection rather than the
//! directory (scheduled backups turned off or kept shorter, alerts silenced), tokens
//! that grant everything, and callers refused again and again ([`denials`]). The
//! directory's own alerts come from the snapshotter's alerter; these come from records
//! only the audit stream holds, and are written the same way: an `alert.raised` record
//! (category `alert`) with the rule, severity and what, whose id is stable
//! (`alert:<record id>:<rule>`), so a record read again after a restart raises nothing
//! twice.
//!
//! One task follows `BT_AUDIT` from its position in the KV bucket `bt-alerts` (key
//! `audit.position`; the first start begins at the stream's end), publishes what each
//! record raises, stores the refused calls' runs (`audit.denials`), then the position.
//! These rules cannot be turned off by a tenant's alert policy: silencing the alert about
//! silencing alerts would defeat it.

use std::time::Duration;

use backtrack_domain::alerts::gained;
use backtrack_eventlog::buckets::{alerts_bucket, get_json, put_json, ALERTS_BUCKET};
use backtrack_eventlog::AuditLog;
use backtrack_platform::audit::{action, AuditEntry};
use backtrack_platform::shutdown::{Restarts, Shutdown};
use backtrack_proto::v1::AuditRecord;
use futures::StreamExt;
use prost::Message;
use serde_json::{json, Value};

use crate::format::parse_embedded;

pub mod denials;

pub use denials::{DenialLimits, Denials};

/// The rules, as their alerts carry them.
pub const RULES: &[&str] = &[
    "backupsTurnedOff",
    "backupRetentionShortened",
    "alertsSilenced",
    "privilegedTokenIssued",
    "accessDeniedBurst",
    "accessDeniedSurge",
    "accessDeniedFlood",
];

/// The key of the follower's position in [`ALERTS_BUCKET`] (the snapshotter's alerter
/// keeps its own state in the same bucket).
const POSITION_KEY: &str = "audit.position";
/// Records handled per position write, at most.
const MAX_CHUNK: usize = 1024;

/// What one record raises by itself: (severity, rule, what).
pub fn record_alerts(record: &AuditRecord) -> Vec<(&'static str, &'static str, String)> {
    if record.action == action::DENIALS_DROPPED {
        // More refusals than the audit stream took: a flood, its size all that is known.
        let dropped = serde_json::from_str::<Value>(&record.details_json)
            .ok()
            .and_then(|d| d["dropped"].as_u64())
            .unwrap_or(0);
        return vec![(
            "high",
            "accessDeniedFlood",
            format!("{dropped} refused calls came faster than they could be recorded one by one"),
        )];
    }
    if !record.result.as_ref().is_some_and(|r| r.success) {
        return Vec::new();
    }
    let before = parse_embedded(&record.before_json);
    let after = parse_embedded(&record.after_json);
    let mut out = Vec::new();
    match record.action.as_str() {
        action::BACKUP_POLICY_CHANGED => {
            let schedule = |v: &Value| {
                v["schedule"]
                    .as_str()
                    .unwrap_or_default()
                    .trim()
                    .to_string()
            };
            if !schedule(&before).is_empty() && schedule(&after).is_empty() {
                out.push((
                    "high",
                    "backupsTurnedOff",
                    format!(
                        "scheduled backups turned off (schedule was \"{}\")",
                        schedule(&before)
                    ),
                ));
            }
            let days = |v: &Value| v["retentionDays"].as_u64();
            if let (Some(was), Some(now)) = (days(&before), days(&after)) {
                if now < was {
                    out.push((
                        "medium",
                        "backupRetentionShortened",
                        format!("backups kept {now} days instead of {was}"),
                    ));
                }
            }
        }
        action::ALERT_POLICY_CHANGED => {
            let mut silenced = Vec::new();
            for (list, what) in [
                ("disabledRules", "rules turned off"),
                ("quietActors", "quiet actors"),
            ] {
                let added = gained(Some(&before[list]), Some(&after[list]), "");
                if !added.is_empty() {
                    silenced.push(format!("{what} + {}", added.join(", ")));
                }
            }
            for (field, what) in [
                ("massDeletions", "mass-deletion threshold"),
                ("massLinkRemovals", "mass-link-removal threshold"),
            ] {
                let (was, now) = (
                    before[field].as_u64().unwrap_or(0),
                    after[field].as_u64().unwrap_or(0),
                );
                if was > 0 && now > was {
                    silenced.push(format!("{what} {was} → {now}"));
                }
            }
            let (was, now) = (
                before["windowMinutes"].as_u64().unwrap_or(0),
                after["windowMinutes"].as_u64().unwrap_or(0),
            );
            if was > 0 && now > 0 && now < was {
                silenced.push(format!("window {was} → {now} minutes"));
            }
            if !silenced.is_empty() {
                out.push(("high", "alertsSilenced", silenced.join("; ")));
            }
        }
        action::TOKEN_ISSUED => {
            let roles = after["roles"].as_array().cloned().unwrap_or_default();
            let by_caller = record.actor.as_ref().is_some_and(|a| !a.roles.is_empty());
            if by_caller && roles.iter().any(|r| r == "GlobalAdministrator") {
                out.push((
                    "medium",
                    "privilegedTokenIssued",
                    format!(
                        "GlobalAdministrator token issued to {}",
                        after["subject"].as_str().unwrap_or("?")
                    ),
                ));
            }
        }
        _ => {}
    }
    out
}

/// The `alert.raised` record of what `trigger` raised: same tenant, actor and target, the
/// trigger's time, no result; the token the trigger names (`details.tokenId`: the one a
/// refused call presented), which `backtrack token revoke` takes.
pub fn alert_record(trigger: &AuditRecord, severity: &str, rule: &str, what: &str) -> AuditRecord {
    let actor = trigger.actor.clone().unwrap_or_default();
    let id = format!("alert:{}:{rule}", trigger.id);
    let mut details = json!({
        "rule": rule,
        "severity": severity,
        "what": what,
        "recordId": trigger.id,
        "recordAction": trigger.action,
    });
    if let Some(token) = token_of(trigger) {
        details["tokenId"] = json!(token);
    }
    let mut entry =
        AuditEntry::alert(&actor.subject, &trigger.tenant, &id, trigger.time_ms).details(&details);
    if let Some(t) = &trigger.target {
        entry = entry.target(&t.kind, &t.id, &t.display_name);
    }
    let mut record = entry.into_record();
    // The trigger's actor as it was recorded, roles and address included.
    record.actor = Some(actor);
    record
}

/// The token a record's details name (`tokenId`), if any.
pub(crate) fn token_of(record: &AuditRecord) -> Option<String> {
    serde_json::from_str::<Value>(&record.details_json)
        .ok()?
        .get("tokenId")?
        .as_str()
        .map(str::to_string)
}

/// Follows `BT_AUDIT` until `shutdown`; after a failure resumes from the stored position.
pub async fn run(
    log: AuditLog,
    nats: async_nats::Client,
    replicas: usize,
    limits: DenialLimits,
    shutdown: Shutdown,
) {
    let mut restarts = Restarts::new(
        &shutdown,
        "the audit trail's alerting stopped (it resumes from its stored position)",
        Duration::from_millis(100),
        Duration::from_secs(5),
    );
    loop {
        let result = tokio::select! {
            r = follow(&log, &nats, replicas, &limits) => r,
            () = shutdown.wait() => break,
        };
        if !restarts.after(result).await {
            break;
        }
    }
}

/// Sets the follower back to just after `sequence`, forgetting the runs of refused calls
/// (a benchmark re-reads a stretch of the trail; the stable ids keep what it raises again
/// from being stored twice). Takes effect at the follower's next (re)start.
pub async fn rewind(
    nats: &async_nats::Client,
    replicas: usize,
    sequence: u64,
) -> Result<(), String> {
    let bucket = bucket(nats, replicas).await?;
    bucket
        .purge(denials::STATE_KEY)
        .await
        .map_err(|e| format!("{ALERTS_BUCKET}: {e}"))?;
    store(&bucket, sequence).await
}

/// The last sequence of `BT_AUDIT` the follower has handled, once it has one.
pub async fn stored_position(
    nats: &async_nats::Client,
    replicas: usize,
) -> Result<Option<u64>, String> {
    position(&bucket(nats, replicas).await?).await
}

/// Opens the position the first time at the stream's end, so what is recorded after the
/// service started is alerted on.
pub async fn prepare(
    log: &AuditLog,
    nats: &async_nats::Client,
    replicas: usize,
) -> Result<(), String> {
    let bucket = bucket(nats, replicas).await?;
    if position(&bucket).await?.is_none() {
        let end = log.last_sequence().await.map_err(|e| e.to_string())?;
        store(&bucket, end).await?;
    }
    Ok(())
}

async fn follow(
    log: &AuditLog,
    nats: &async_nats::Client,
    replicas: usize,
    limits: &DenialLimits,
) -> Result<(), String> {
    let bucket = bucket(nats, replicas).await?;
    let from = position(&bucket).await?.unwrap_or(0) + 1;
    let mut denials: Denials = get_json(&bucket, denials::STATE_KEY)
        .await
        .map_err(|e| format!("{ALERTS_BUCKET}: {e}"))?
        .unwrap_or_default();
    let mut chunks = log
        .follow(from)
        .await
        .map_err(|e| e.to_string())?
        .ready_chunks(MAX_CHUNK);
    while let Some(chunk) = chunks.next().await {
        let mut raised = Vec::new();
        let mut last = None;
        let mut failure = None;
        let counted = denials.through;
        let mut newest_ms = None;
        for item in chunk {
            match item {
                Ok(stored) => {
                    last = Some(stored.sequence);
                    let Ok(record) = AuditRecord::decode(stored.payload.as_ref()) else {
                        continue;
                    };
                    for (severity, rule, what) in record_alerts(&record) {
                        raised.push(alert_record(&record, severity, rule, &what));
                    }
                    raised.extend(denials.push(stored.sequence, &record, limits));
                    newest_ms = Some(record.time_ms);
                }
                Err(e) => {
                    failure = Some(e.to_string());
                    break;
                }
            }
        }
        if !raised.is_empty() {
            log.publish(&raised).await.map_err(|e| e.to_string())?;
            for r in &raised {
                tracing::info!(tenant = %r.tenant, id = %r.id, "alert raised");
            }
        }
        if denials.through > counted {
            if let Some(now) = newest_ms {
                denials.prune(now, limits);
            }
            put_json(&bucket, denials::STATE_KEY, &denials)
                .await
                .map_err(|e| format!("{ALERTS_BUCKET}: {e}"))?;
        }
        if let Some(last) = last {
            store(&bucket, last).await?;
        }
        if let Some(e) = failure {
            return Err(e);
        }
    }
    Err("stream ended".into())
}

async fn bucket(
    nats: &async_nats::Client,
    replicas: usize,
) -> Result<async_nats::jetstream::kv::Store, String> {
    let js = async_nats::jetstream::new(nats.clone());
    alerts_bucket(&js, replicas)
        .await
        .map_err(|e| e.to_string())
}

async fn position(bucket: &async_nats::jetstream::kv::Store) -> Result<Option<u64>, String> {
    get_json(bucket, POSITION_KEY)
        .await
        .map_err(|e| format!("{ALERTS_BUCKET}: {e}"))
}

async fn store(bucket: &async_nats::jetstream::kv::Store, position: u64) -> Result<(), String> {
    put_json(bucket, POSITION_KEY, &position)
        .await
        .map_err(|e| format!("{ALERTS_BUCKET}: {e}"))
}

#[cfg(test)]
mod tests {
    use backtrack_platform::audit::AuditEntry;
    use backtrack_proto::v1::{AuditActor, AuditRecord};
    use serde_json::json;

    use super::{alert_record, record_alerts};

    fn changed(action: &str, before: serde_json::Value, after: serde_json::Value) -> AuditRecord {
        let mut r = AuditEntry::system("alice", "contoso", "configuration", action)
            .target("backupPolicy", "contoso", "")
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

    fn rules(r: &AuditRecord) -> Vec<&'static str> {
        record_alerts(r)
            .into_iter()
            .map(|(_, rule, _)| rule)
            .collect()
    }

    #[test]
    fn weakened_protection_and_all_powerful_tokens_are_alerts_and_the_rest_is_not() {
        let backup = "configuration.backupPolicyChanged";
        let off = changed(
            backup,
            json!({"schedule": "0 0 2 * * *", "retentionDays": 30}),
            json!({"schedule": "", "retentionDays": 1}),
        );
        assert_eq!(
            rules(&off),
            ["backupsTurnedOff", "backupRetentionShortened"]
        );
        let (_, _, what) = &record_alerts(&off)[1];
        assert_eq!(what, "backups kept 1 days instead of 30");
        let longer = changed(
            backup,
            json!({"schedule": "0 0 2 * * *", "retentionDays": 7}),
            json!({"schedule": "0 0 */6 * * *", "retentionDays": 30}),
        );
        assert!(rules(&longer).is_empty());

        let alerts = "configuration.alertPolicyChanged";
        let silenced = changed(
            alerts,
            json!({"disabledRules": [], "quietActors": [], "massDeletions": 20}),
            json!({"disabledRules": ["caPolicyDeleted"], "quietActors": ["mallory"], "massDeletions": 5000}),
        );
        let raised = record_alerts(&silenced);
        assert_eq!(raised.len(), 1);
        assert_eq!(
            raised[0].2,
            "rules turned off + caPolicyDeleted; quiet actors + mallory; mass-deletion threshold 20 → 5000"
        );
        let stricter = changed(
            alerts,
            json!({"disabledRules": ["roleAssigned"], "massDeletions": 50}),
            json!({"disabledRules": [], "massDeletions": 10}),
        );
        assert!(rules(&stricter).is_empty());

        let mut token = changed(
            "token.issued",
            json!(null),
            json!({"subject": "eve", "roles": ["GlobalAdministrator"]}),
        );
        token.before_json.clear();
        assert_eq!(rules(&token), ["privilegedTokenIssued"]);
        // The admin token `backtrack up` mints for itself at each start is no news.
        token.actor = Some(AuditActor {
            subject: "backtrack-up".into(),
            ..Default::default()
        });
        assert!(rules(&token).is_empty());

        // A failed attempt changed nothing.
        let mut failed = off.clone();
        failed.result.as_mut().unwrap().success = false;
        assert!(rules(&failed).is_empty());

        let alert = alert_record(
            &off,
            "high",
            "backupsTurnedOff",
            "scheduled backups turned off",
        );
        assert_eq!(alert.id, format!("alert:{}:backupsTurnedOff", off.id));
        assert_eq!(
            (alert.action.as_str(), alert.category.as_str()),
            ("alert.raised", "alert")
        );
        assert_eq!(alert.actor.unwrap().subject, "alice");
        assert!(alert.result.is_none());
    }
}
