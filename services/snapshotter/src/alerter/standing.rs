//! Alerts that still stand. Each alert the alerter raises about an object is kept, per
//! tenant, as a [`Standing`] with the tenant's windows (same key, same writes, so a
//! restart neither loses nor repeats one), and every later change of the object is held
//! against it: when one sets the alert's change back — a deleted policy restored, a
//! disabled one enabled, a new Global Administrator's assignment deleted, by hand or by a
//! recovery — the alerter writes an `alert.undone` record naming the alert, who set it
//! back and the job that did it, and stops following it. A SIEM can close the finding.
//!
//! Alerts are followed for [`FOLLOWED_FOR_MS`] and at most [`MOST_STANDING`] per tenant
//! (the newest), within [`MOST_BYTES`] of stored JSON; runs of changes (mass alerts) are
//! not followed here (`overview` judges them over its window).

use std::collections::BTreeMap;

use backtrack_domain::alerts::Standing;
use backtrack_domain::Event;
use backtrack_platform::audit::AuditEntry;
use backtrack_proto::v1;
use serde_json::json;

/// A tenant's standing alerts by their object's id.
pub(super) type StandingAlerts = BTreeMap<String, Vec<Standing>>;

/// How long a raised alert is followed: the recycle bin's default retention.
pub const FOLLOWED_FOR_MS: i64 = 30 * 24 * 3600 * 1000;
/// Most alerts followed per tenant; past it, the oldest are let go.
pub const MOST_STANDING: usize = 1000;
/// Most bytes of a tenant's standing alerts as stored (a KV value must stay well below
/// the server's payload limit).
pub const MOST_BYTES: usize = 256 * 1024;

/// Holds `event` against the tenant's alerts about its object; returns the ones it set
/// back, which are no longer followed.
pub(super) fn follow(standing: &mut StandingAlerts, event: &Event) -> Vec<Standing> {
    let id = &event.meta.object_id;
    let Some(alerts) = standing.get_mut(id) else {
        return Vec::new();
    };
    let mut set_back = Vec::new();
    alerts.retain_mut(|s| {
        let back = s.follow(&event.change);
        if back {
            set_back.push(s.clone());
        }
        !back
    });
    if alerts.is_empty() {
        standing.remove(id);
    }
    set_back
}

/// Lets go of alerts raised more than [`FOLLOWED_FOR_MS`] before `now_ms`, then of the
/// oldest past [`MOST_STANDING`] or [`MOST_BYTES`].
pub(super) fn prune(standing: &mut StandingAlerts, now_ms: i64) {
    let oldest_kept = now_ms.saturating_sub(FOLLOWED_FOR_MS);
    standing.retain(|_, alerts| {
        alerts.retain(|s| s.time_ms >= oldest_kept);
        !alerts.is_empty()
    });
    let size = |standing: &StandingAlerts| serde_json::to_vec(standing).map_or(0, |v| v.len());
    let count = |standing: &StandingAlerts| standing.values().map(Vec::len).sum::<usize>();
    while count(standing) > MOST_STANDING || size(standing) > MOST_BYTES {
        let oldest = standing
            .iter()
            .flat_map(|(id, alerts)| alerts.iter().map(move |s| (s.time_ms, id.clone())))
            .min();
        let Some((time_ms, id)) = oldest else {
            break;
        };
        if let Some(alerts) = standing.get_mut(&id) {
            if let Some(at) = alerts.iter().position(|s| s.time_ms == time_ms) {
                alerts.remove(at);
            }
            if alerts.is_empty() {
                standing.remove(&id);
            }
        }
    }
}

/// The `alert.undone` record of `alert`, set back by `event` (at `sequence`): its actor is
/// who made that change, its time and job that change's, its id the alert's with
/// `:undone` (stable, so a record published again is stored once); `name` names the
/// object.
pub(super) fn record(
    alert: &Standing,
    sequence: u64,
    event: &Event,
    name: &str,
) -> v1::AuditRecord {
    let tenant = &event.meta.tenant;
    let id = format!("{}:undone", alert.id);
    AuditEntry::alert_undone(&event.meta.actor, tenant, &id, event.meta.time_ms)
        .correlation(
            event.meta.correlation_id.as_deref().unwrap_or_default(),
            "",
            "",
        )
        .target(&alert.kind, &alert.object_id, name)
        .details(&json!({
            "alertId": alert.id,
            "rule": alert.rule,
            "severity": alert.severity.as_str(),
            "what": alert.what,
            "raisedTimeMs": alert.time_ms,
            "sequence": sequence,
            "eventId": event.meta.event_id,
        }))
        .into_record()
}
