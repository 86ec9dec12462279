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

use std::collections::{BTreeMap, HashSet};

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
/// back, which are no longer followed, or `None` when no alert stands for the object (the
/// standing alerts did not change).
pub(super) fn follow(standing: &mut StandingAlerts, event: &Event) -> Option<Vec<Standing>> {
    let id = &event.meta.object_id;
    let alerts = standing.get_mut(id)?;
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
    Some(set_back)
}

/// Lets go of alerts raised more than [`FOLLOWED_FOR_MS`] before `now_ms`, then, when
/// alerts were added (`grew`), of the oldest past [`MOST_STANDING`] or [`MOST_BYTES`]
/// (each alert's stored size counted once, with its key). Returns whether any went.
pub(super) fn prune(standing: &mut StandingAlerts, now_ms: i64, grew: bool) -> bool {
    let oldest_kept = now_ms.saturating_sub(FOLLOWED_FOR_MS);
    let before: usize = standing.values().map(Vec::len).sum();
    standing.retain(|_, alerts| {
        alerts.retain(|s| s.time_ms >= oldest_kept);
        !alerts.is_empty()
    });
    let count: usize = standing.values().map(Vec::len).sum();
    if !grew {
        return count < before;
    }
    let bytes = serde_json::to_vec(&*standing).map_or(0, |v| v.len());
    if count <= MOST_STANDING && bytes <= MOST_BYTES {
        return count < before;
    }
    // Newest first, each with its size as stored: kept while both budgets allow.
    let mut all: Vec<(i64, usize, &str)> = standing
        .values()
        .flatten()
        .map(|s| {
            let size = serde_json::to_vec(s).map_or(0, |v| v.len()) + s.object_id.len() + 8;
            (s.time_ms, size, s.id.as_str())
        })
        .collect();
    all.sort_unstable_by(|a, b| b.0.cmp(&a.0).then_with(|| a.2.cmp(b.2)));
    let mut total = 0;
    let kept: HashSet<String> = all
        .into_iter()
        .take(MOST_STANDING)
        .take_while(|(_, size, _)| {
            total += size;
            total <= MOST_BYTES
        })
        .map(|(_, _, id)| id.to_string())
        .collect();
    standing.retain(|_, alerts| {
        alerts.retain(|s| kept.contains(&s.id));
        !alerts.is_empty()
    });
    true
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

#[cfg(test)]
mod tests {
    use backtrack_domain::alerts::{event_alerts, Standing};
    use backtrack_domain::event::{Change, Event, EventMeta};
    use serde_json::json;

    use super::{follow, prune, StandingAlerts, FOLLOWED_FOR_MS, MOST_BYTES, MOST_STANDING};

    const GLOBAL_ADMINISTRATOR: &str = "62e90394-69f5-4237-9190-012177145e10";

    /// Event `n`: a role assignment `a<n>` created at `n` ms, or (with `deleted`) deleted.
    fn event(n: i64, deleted: bool) -> Event {
        let change = if deleted {
            Change::SoftDeleted { purge_after_ms: 0 }
        } else {
            let attributes = json!({"roleDefinitionId": GLOBAL_ADMINISTRATOR, "principalId": "u"});
            Change::Created {
                attributes: attributes.as_object().unwrap().clone(),
                links: Vec::new(),
            }
        };
        Event {
            meta: EventMeta {
                event_id: format!("e{n}"),
                tenant: "t".into(),
                kind: "roleAssignment".into(),
                object_id: format!("a{n}"),
                actor: "mallory".into(),
                time_ms: n,
                source: "test".into(),
                correlation_id: None,
                mutation_id: format!("m{n}"),
            },
            change,
        }
    }

    fn raise(standing: &mut StandingAlerts, n: i64) {
        let event = event(n, false);
        let alert = &event_alerts(n as u64, &event)[0];
        let s = Standing::of(alert, 0, &event).unwrap();
        standing.entry(s.object_id.clone()).or_default().push(s);
    }

    #[test]
    fn the_newest_are_kept_within_the_count_the_bytes_and_the_days() {
        let mut standing = StandingAlerts::new();
        let n = MOST_STANDING as i64 + 50;
        for i in 1..=n {
            raise(&mut standing, i);
        }
        assert!(prune(&mut standing, n, true));
        assert_eq!(standing.len(), MOST_STANDING);
        // Nothing added, nothing expired: nothing goes, nothing is weighed.
        assert!(!prune(&mut standing, n, false));
        assert!(!standing.contains_key("a50") && standing.contains_key("a51"));
        assert!(serde_json::to_vec(&standing).unwrap().len() <= MOST_BYTES);
        // Past the days, all go.
        assert!(prune(&mut standing, n + FOLLOWED_FOR_MS + 52, false));
        assert!(standing.is_empty(), "{standing:?}");
    }

    #[test]
    fn large_alerts_are_kept_newest_first_within_the_bytes() {
        let mut standing = StandingAlerts::new();
        for i in 1..=200 {
            raise(&mut standing, i);
        }
        for s in standing.values_mut().flatten() {
            s.what = "x".repeat(2000);
        }
        assert!(prune(&mut standing, 200, true));
        let kept = standing.len();
        assert!((100..200).contains(&kept), "{kept}");
        assert!(serde_json::to_vec(&standing).unwrap().len() <= MOST_BYTES);
        let oldest_kept = 200 - kept as i64 + 1;
        assert!(standing.contains_key(&format!("a{oldest_kept}")));
        assert!(!standing.contains_key(&format!("a{}", oldest_kept - 1)));
    }

    #[test]
    fn an_alert_set_back_is_handed_over_once_and_no_longer_followed() {
        let mut standing = StandingAlerts::new();
        raise(&mut standing, 1);
        raise(&mut standing, 2);
        assert_eq!(follow(&mut standing, &event(2, false)), Some(Vec::new()));
        let back = follow(&mut standing, &event(1, true)).unwrap();
        assert_eq!(back.len(), 1);
        assert_eq!(back[0].object_id, "a1");
        // No longer followed: the object's next change touches nothing.
        assert_eq!(follow(&mut standing, &event(1, true)), None);
        assert_eq!(follow(&mut standing, &event(3, true)), None);
        assert_eq!(standing.keys().collect::<Vec<_>>(), ["a2"]);
    }
}
