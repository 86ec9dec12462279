//! The alerter: follows `BT_EVENTS` just behind the time-travel store and writes each
//! alert of [`backtrack_domain::alerts`] as an `alert.raised` record on the audit stream,
//! where it is hash-chained, queryable (`audit query --action alert.raised`) and exported
//! to every SIEM sink like any other record.
//!
//! Alerts are raised from the log, not from requests, so a change made through any
//! directory instance, an import or a recovery is seen, and none is lost to a crash:
//! - Records are published before the position moves, and each has a stable id (the
//!   event's id and the alert's place among its alerts), so a record published again
//!   after a restart is stored and chained once.
//! - The mass rules' sliding windows ([`Bursts`]) are stored per tenant in the KV bucket
//!   [`ALERTS_BUCKET`] (`t.<tenant>`, with the sequence they include) whenever they
//!   change, and the position (`position`) after them; a restart resumes from the
//!   position and skips, per tenant, what its stored windows already counted.
//! - A deployment starts alerting at the log's end when it first runs the alerter: the
//!   history before it is not alerted on (`backtrack overview` reads any window).
//! - Each alert about an object stands until a later change sets it back; then an
//!   `alert.undone` record closes it ([`standing`]). Standing alerts are stored with the
//!   windows, so the same holds for them.
//!
//! Alerted objects are named as they were just before the change (a deleted policy by the
//! name it had), read from the time-travel store, which is why the alerter waits for it
//! ([`names`]).

use std::collections::{BTreeMap, HashMap};
use std::time::Duration;

use async_nats::jetstream::{self, kv};
use backtrack_domain::alerts::{event_alerts, Alert, BurstLimits, Bursts, Standing};
use backtrack_domain::Event;
use backtrack_eventlog::buckets::{alerts_bucket, get_json, put_json};
use backtrack_eventlog::{Run, Runs};
use backtrack_platform::audit::AuditEntry;
use backtrack_platform::shutdown::{Restarts, Shutdown};
use backtrack_proto::v1;
use futures::StreamExt;
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use serde_json::json;

use crate::alert_policy::AlertPolicy;
use crate::{Snapshotter, SnapshotterError};

mod names;
mod standing;

use standing::StandingAlerts;

/// Where the alerter keeps its position and each tenant's mass-rule windows and standing
/// alerts.
pub use backtrack_eventlog::buckets::ALERTS_BUCKET;
const POSITION_KEY: &str = "position";

/// How the alerter runs.
#[derive(Debug, Clone, Copy, Default)]
pub struct AlertSettings {
    /// Thresholds and window of the mass rules.
    pub limits: BurstLimits,
}

/// One tenant's stored windows and standing alerts, with the last sequence they include.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
struct TenantWindows {
    position: u64,
    #[serde(default)]
    bursts: Bursts,
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    standing: StandingAlerts,
}

/// What one run did to a tenant's stored state.
struct Touched {
    /// The mass windows before the run.
    bursts: Bursts,
    /// The time of the tenant's last event in the run.
    last_ms: i64,
    /// A change of an object with standing alerts was held against them (they may have
    /// moved or been set back).
    followed: bool,
    /// Alerts were added to the standing ones.
    grew: bool,
}

fn tenant_key(tenant: &str) -> String {
    format!("t.{tenant}")
}

/// Starts the alerter of `snapshotter` (see the module docs). Its position is fixed before
/// this returns: the first time in a deployment at the log's end.
pub async fn start(
    snapshotter: &Snapshotter,
    settings: AlertSettings,
    shutdown: Shutdown,
) -> Result<(), SnapshotterError> {
    let bucket = prepare(snapshotter)
        .await
        .map_err(|e| SnapshotterError::Unavailable(format!("the alerter: {e}")))?;
    tokio::spawn(run(snapshotter.clone(), settings, bucket, shutdown));
    Ok(())
}

/// The last sequence the deployment's alerter has handled; `None` before its first start.
pub async fn position(js: &jetstream::Context) -> Result<Option<u64>, SnapshotterError> {
    let Ok(bucket) = js.get_key_value(ALERTS_BUCKET).await else {
        return Ok(None);
    };
    Ok(get_json(&bucket, POSITION_KEY).await?)
}

/// Moves the alerter's position back to `sequence` and forgets every tenant's windows, so
/// an alerter started afterwards reads the log from there again; the alerts it raises
/// again are stored once (their ids are stable). Stop the alerter first.
pub async fn rewind(
    js: &jetstream::Context,
    replicas: usize,
    sequence: u64,
) -> Result<(), SnapshotterError> {
    let bucket = alerts_bucket(js, replicas).await?;
    let mut keys = bucket
        .keys()
        .await
        .map_err(|e| SnapshotterError::Unavailable(format!("list {ALERTS_BUCKET}: {e}")))?;
    while let Some(key) = keys.next().await {
        let key = key.map_err(|e| SnapshotterError::Unavailable(e.to_string()))?;
        if key.starts_with("t.") {
            bucket
                .purge(&key)
                .await
                .map_err(|e| SnapshotterError::Unavailable(format!("forget {key}: {e}")))?;
        }
    }
    Ok(put_json(&bucket, POSITION_KEY, &sequence).await?)
}

/// Opens the alerter's bucket and, the first time, fixes its position at the log's end,
/// so every change after [`crate::start`] returns is alerted on.
async fn prepare(snapshotter: &Snapshotter) -> Result<kv::Store, String> {
    let js = async_nats::jetstream::new(snapshotter.log().client().clone());
    let bucket = alerts_bucket(&js, snapshotter.config().stream_replicas)
        .await
        .map_err(|e| e.to_string())?;
    let position = match read_json::<u64>(&bucket, POSITION_KEY).await? {
        Some(position) => position,
        None => {
            let end = snapshotter
                .log()
                .state()
                .await
                .map_err(|e| e.to_string())?
                .last_sequence;
            write_json(&bucket, POSITION_KEY, &end).await?;
            tracing::info!(position = end, "the alerter starts at the end of the log");
            end
        }
    };
    moved_to(snapshotter, position);
    Ok(bucket)
}

/// Runs until `shutdown`; after a failure (the stream, the bucket or the audit stream)
/// resumes from the stored position with backoff.
async fn run(
    snapshotter: Snapshotter,
    settings: AlertSettings,
    bucket: kv::Store,
    shutdown: Shutdown,
) {
    let mut restarts = Restarts::new(
        &shutdown,
        "the alerter stopped (it resumes from its stored position)",
        Duration::from_millis(100),
        Duration::from_secs(5),
    );
    loop {
        let result = tokio::select! {
            r = follow(&snapshotter, &settings, &bucket) => r,
            () = shutdown.wait() => break,
        };
        if !restarts.after(result).await {
            break;
        }
    }
}

async fn follow(
    snapshotter: &Snapshotter,
    settings: &AlertSettings,
    bucket: &kv::Store,
) -> Result<(), String> {
    let position = read_json::<u64>(bucket, POSITION_KEY)
        .await?
        .ok_or_else(|| format!("{ALERTS_BUCKET}/{POSITION_KEY} is gone"))?;
    let stream = snapshotter
        .log()
        .follow(position + 1)
        .await
        .map_err(|e| e.to_string())?;
    let mut runs = Runs::new(stream.map(|item| item.map(|stored| (stored.sequence, stored.event))));
    let mut tenants: HashMap<String, TenantWindows> = HashMap::new();
    let mut progress = snapshotter.inner.progress.clone();
    while let Some(Run { items, failure }) = runs.next().await {
        if let Some((last, _)) = items.last() {
            // Objects are named from the store, so it must hold the run first.
            let last = *last;
            progress
                .wait_for(|p| *p >= last)
                .await
                .map_err(|_| "the time-travel builder has stopped".to_string())?;
            alert_run(snapshotter, settings, bucket, &mut tenants, &items).await?;
            write_json(bucket, POSITION_KEY, &last).await?;
            moved_to(snapshotter, last);
        }
        if let Some(e) = failure {
            return Err(e.to_string());
        }
    }
    Err("stream ended".into())
}

/// Tells `status` and the metrics where the alerter stands.
fn moved_to(snapshotter: &Snapshotter, position: u64) {
    snapshotter
        .inner
        .alerter_position
        .store(position, std::sync::atomic::Ordering::Relaxed);
}

/// Raises, names and publishes the alerts of one run of events, then stores the windows
/// it changed.
async fn alert_run(
    snapshotter: &Snapshotter,
    settings: &AlertSettings,
    bucket: &kv::Store,
    tenants: &mut HashMap<String, TenantWindows>,
    items: &[(u64, Event)],
) -> Result<(), String> {
    // Per tenant touched: its mass windows as stored, the time of its last event here,
    // and whether its standing alerts changed.
    let mut touched: BTreeMap<String, Touched> = BTreeMap::new();
    // Per tenant: its alert policy, read once per run.
    let mut policies: HashMap<String, AlertPolicy> = HashMap::new();
    let mut raised: Vec<(usize, Alert, &Event)> = Vec::new();
    // Standing alerts a change set back, with the change and its sequence.
    let mut set_back: Vec<(Standing, u64, &Event)> = Vec::new();
    for (sequence, event) in items {
        let tenant = &event.meta.tenant;
        if !tenants.contains_key(tenant) {
            let stored = read_json(bucket, &tenant_key(tenant)).await?;
            tenants.insert(tenant.clone(), stored.unwrap_or_default());
        }
        let Some(windows) = tenants.get_mut(tenant) else {
            continue;
        };
        if windows.position >= *sequence {
            continue; // counted before a restart; its alerts are published
        }
        if !policies.contains_key(tenant) {
            let (policy, _) = snapshotter
                .policies()
                .alerts()
                .get_with_time(tenant)
                .await
                .map_err(|e| e.to_string())?;
            policies.insert(tenant.clone(), policy);
        }
        let policy = &policies[tenant];
        let touch = touched.entry(tenant.clone()).or_insert_with(|| Touched {
            bursts: windows.bursts.clone(),
            last_ms: 0,
            followed: false,
            grew: false,
        });
        touch.last_ms = event.meta.time_ms;
        windows.position = *sequence;
        if let Some(back) = standing::follow(&mut windows.standing, event) {
            touch.followed = true;
            set_back.extend(back.into_iter().map(|alert| (alert, *sequence, event)));
        }
        // Numbered before the tenant's disabled rules are left out: ids stay stable.
        for (n, alert) in event_alerts(*sequence, event).into_iter().enumerate() {
            if policy.raises(alert.rule) {
                if let Some(s) = Standing::of(&alert, n, event) {
                    touch.grew = true;
                    windows
                        .standing
                        .entry(s.object_id.clone())
                        .or_default()
                        .push(s);
                }
                raised.push((n, alert, event));
            }
        }
        if policy.counts(&event.meta.actor) {
            let limits = policy.limits(&settings.limits);
            if let Some(alert) = windows.bursts.push(*sequence, event, &limits) {
                if policy.raises(alert.rule) {
                    raised.push((0, alert, event));
                }
            }
        }
    }
    if !raised.is_empty() || !set_back.is_empty() {
        let store = snapshotter.store().clone();
        let wanted: Vec<(String, Alert)> = raised
            .iter()
            .map(|(_, a, e)| (e.meta.tenant.clone(), a.clone()))
            .collect();
        let objects: Vec<(String, String, String, u64)> = set_back
            .iter()
            .map(|(a, s, e)| {
                (
                    e.meta.tenant.clone(),
                    a.kind.clone(),
                    a.object_id.clone(),
                    *s,
                )
            })
            .collect();
        let (names, set_back_names) = tokio::task::spawn_blocking(move || {
            (
                names::of_raised(&store, &wanted),
                names::of_set_back(&store, &objects),
            )
        })
        .await
        .map_err(|e| e.to_string())?;
        let mut records: Vec<v1::AuditRecord> = Vec::new();
        // A standing alert says what its record said (a role assignment with names).
        let mut said: HashMap<String, String> = HashMap::new();
        for ((n, alert, event), (name, what)) in raised.iter().zip(names) {
            records.push(record(*n, alert, event, &name, &what));
            let (id, tenant) = (alert.id(*n), &event.meta.tenant);
            let object = alert.object.as_ref().map(|o| o.id.as_str());
            let standing = tenants
                .get_mut(tenant)
                .and_then(|w| w.standing.get_mut(object?))
                .and_then(|list| list.iter_mut().find(|s| s.id == id));
            if let Some(s) = standing {
                s.what.clone_from(&what);
            }
            said.insert(id, what);
        }
        for ((mut alert, sequence, event), name) in set_back.into_iter().zip(set_back_names) {
            if let Some(what) = said.get(&alert.id) {
                alert.what.clone_from(what);
            }
            records.push(standing::record(&alert, sequence, event, &name));
        }
        snapshotter
            .audit_log()
            .publish(&records)
            .await
            .map_err(|e| e.to_string())?;
        for r in &records {
            tracing::info!(tenant = %r.tenant, id = %r.id, action = %r.action, "alert");
        }
    }
    for (tenant, touch) in touched {
        let Some(windows) = tenants.get_mut(&tenant) else {
            continue;
        };
        let limits = policies
            .get(&tenant)
            .map_or(settings.limits, |p| p.limits(&settings.limits));
        windows.bursts.prune(touch.last_ms, &limits);
        let pruned = standing::prune(&mut windows.standing, touch.last_ms, touch.grew);
        if windows.bursts != touch.bursts || touch.followed || touch.grew || pruned {
            write_json(bucket, &tenant_key(&tenant), &*windows).await?;
        }
    }
    Ok(())
}

/// The `alert.raised` record of an alert: its actor is who made the change, its time the
/// raising event's, its id stable (see [`Alert::id`]).
fn record(n: usize, alert: &Alert, event: &Event, name: &str, what: &str) -> v1::AuditRecord {
    let tenant = &event.meta.tenant;
    let mut entry = AuditEntry::alert(&alert.actor, tenant, &alert.id(n), event.meta.time_ms)
        .correlation(
            event.meta.correlation_id.as_deref().unwrap_or_default(),
            "",
            "",
        )
        .details(&json!({
            "rule": alert.rule,
            "severity": alert.severity.as_str(),
            "what": what,
            "sequence": alert.sequence,
            "eventId": event.meta.event_id,
            "undo": alert.undo_command(tenant),
        }));
    if let Some(object) = &alert.object {
        entry = entry.target(&object.kind, &object.id, name);
    }
    entry.into_record()
}

/// [`get_json`] with the error as the follower reports it.
async fn read_json<T: DeserializeOwned>(
    bucket: &kv::Store,
    key: &str,
) -> Result<Option<T>, String> {
    get_json(bucket, key)
        .await
        .map_err(|e| format!("{ALERTS_BUCKET}: {e}"))
}

/// [`put_json`] with the error as the follower reports it.
async fn write_json<T: Serialize>(bucket: &kv::Store, key: &str, value: &T) -> Result<(), String> {
    put_json(bucket, key, value)
        .await
        .map_err(|e| format!("{ALERTS_BUCKET}: {e}"))
}
