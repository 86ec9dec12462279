//! Scheduled backups: each tenant's cron expression (UTC), checked every tick.
//!
//! A fire time is taken once per tenant and slot. Its backup id is derived from the tenant
//! and the fire time, so replicas that fire the same slot publish one manifest (the stream
//! deduplicates by id). Slots missed while no snapshotter ran are not back-filled: the log
//! keeps every instant reachable anyway.

use std::collections::HashMap;

use backtrack_platform::shutdown::Shutdown;
use backtrack_proto::v1::BackupTrigger;
use chrono::{DateTime, Utc};

use crate::backups::{now_ms, BackupRequest};
use crate::Snapshotter;

/// Runs until `shutdown`.
pub async fn run(snapshotter: Snapshotter, shutdown: Shutdown) {
    let mut next: HashMap<String, (String, Option<i64>)> = HashMap::new();
    let mut tick = tokio::time::interval(snapshotter.config().scheduler_tick);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = tick.tick() => {},
            () = shutdown.wait() => return,
        }
        let tenants = match snapshotter.store().tenants() {
            Ok(tenants) => tenants,
            Err(e) => {
                tracing::warn!(error = %e, "scheduler cannot list tenants");
                continue;
            }
        };
        for tenant in tenants {
            if let Err(e) = fire_if_due(&snapshotter, &tenant.id, &mut next).await {
                tracing::warn!(tenant = %tenant.id, error = %e, "scheduled backup failed; will retry at the next slot");
            }
        }
    }
}

async fn fire_if_due(
    snapshotter: &Snapshotter,
    tenant: &str,
    next: &mut HashMap<String, (String, Option<i64>)>,
) -> Result<(), crate::SnapshotterError> {
    let policy = snapshotter.policies().get(tenant).await?;
    let now = now_ms();
    let slot = next
        .entry(tenant.to_string())
        .or_insert((String::new(), None));
    if slot.0 != policy.schedule {
        // New tenant or changed schedule: the next slot after now.
        *slot = (policy.schedule.clone(), next_after(&policy, now));
        return Ok(());
    }
    let Some(due) = slot.1 else { return Ok(()) };
    if now < due {
        return Ok(());
    }
    slot.1 = next_after(&policy, now);
    let backup = snapshotter
        .create_backup(BackupRequest {
            tenant: tenant.to_string(),
            description: format!("scheduled ({})", policy.schedule),
            trigger: BackupTrigger::Scheduled,
            requested_by: "scheduler".into(),
            scheduled_for_ms: Some(due),
        })
        .await?;
    // Scheduled backups have deterministic ids, so the record of a slot is stored once
    // whichever replica fired it.
    let record = backtrack_platform::audit::AuditEntry::system(
        "system:scheduler",
        tenant,
        "backup",
        "backup.created",
    )
    .natural_id(&backup.id)
    .target("backup", &backup.id, &backup.description)
    .correlation("", "", &backup.id)
    .details(&serde_json::json!({
        "trigger": "scheduled",
        "schedule": policy.schedule,
        "sequence": backup.sequence,
        "digest": backup.digest,
    }))
    .into_record();
    snapshotter.audit_log().publish(&[record]).await?;
    tracing::info!(tenant, backup = %backup.id, sequence = backup.sequence, "scheduled backup taken");
    Ok(())
}

fn next_after(policy: &crate::policy::Policy, now_ms: i64) -> Option<i64> {
    let schedule = policy.cron().ok().flatten()?;
    let now: DateTime<Utc> = DateTime::from_timestamp_millis(now_ms)?;
    schedule.after(&now).next().map(|t| t.timestamp_millis())
}
