//! Per-tenant backup policies: when scheduled backups run and how long backups stay
//! usable. Policies live in the NATS KV bucket `bt-policies` (key `backup.<tenant>`), so
//! every replica reads the same ones; a tenant without one uses the configured default.
//! The same bucket holds each tenant's alert policy (`alerts.<tenant>`,
//! [`crate::alert_policy`]).
//!
//! Each process keeps the settings it read in a cache, which a watch of the bucket keeps
//! current: a change made through any process is seen by every other one as soon as NATS
//! delivers it (milliseconds). An entry is also read again once it is `refresh` old, so a
//! change made while the watch was down (NATS unreachable) is seen within that time. The
//! KV revision decides between a read and a watched change that cross: the newer wins.

use std::collections::HashMap;
use std::str::FromStr;
use std::sync::{Arc, RwLock, Weak};
use std::time::{Duration, Instant};

use async_nats::jetstream::{self, kv};
use futures::StreamExt;
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};

use crate::alert_policy::AlertPolicy;
use crate::error::SnapshotterError;

pub const POLICY_BUCKET: &str = "bt-policies";

/// A tenant's backup policy.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Policy {
    /// Cron with seconds (`sec min hour day month weekday`), UTC; empty = no schedule.
    pub schedule: String,
    pub retention_days: u32,
    pub keep_daily: u32,
    pub keep_weekly: u32,
    pub keep_monthly: u32,
}

impl Default for Policy {
    /// Daily at 02:00 UTC, kept 7 days.
    fn default() -> Self {
        Self {
            schedule: "0 0 2 * * *".into(),
            retention_days: 7,
            keep_daily: 0,
            keep_weekly: 0,
            keep_monthly: 0,
        }
    }
}

impl Policy {
    /// Checks the schedule and retention; the error says how to fix them. A schedule may
    /// not fire twice within `min_interval` (zero: no limit).
    pub fn validate(&self, min_interval: Duration) -> Result<(), SnapshotterError> {
        if let Some(gap) = self.cron()?.and_then(|c| shortest_gap(&c)) {
            if gap < min_interval {
                return Err(SnapshotterError::Invalid(format!(
                    "schedule '{}' takes a backup every {}s at times; the shortest interval \
                     allowed is {}s (a backup only names a point: any instant can be compared \
                     and recovered without one; `--backup-min-interval-secs` sets the limit)",
                    self.schedule.trim(),
                    gap.as_secs(),
                    min_interval.as_secs()
                )));
            }
        }
        if self.retention_days == 0 || self.retention_days > 36_500 {
            return Err(SnapshotterError::Invalid(format!(
                "retention of {} days is out of range: use 1 to 36500 days",
                self.retention_days
            )));
        }
        Ok(())
    }

    /// The parsed schedule, `None` when scheduled backups are off.
    pub fn cron(&self) -> Result<Option<cron::Schedule>, SnapshotterError> {
        if self.schedule.trim().is_empty() {
            return Ok(None);
        }
        cron::Schedule::from_str(self.schedule.trim())
            .map(Some)
            .map_err(|e| {
                let reason = e
                    .to_string()
                    .split_whitespace()
                    .collect::<Vec<_>>()
                    .join(" ");
                SnapshotterError::Invalid(format!(
                    "schedule '{}' is not a cron expression ({reason}); use six fields \
                     'sec min hour day-of-month month day-of-week' in UTC, e.g. '0 0 2 * * *'",
                    self.schedule
                ))
            })
    }
}

/// The shortest time between two of the schedule's next firings (the first 1,000 are
/// looked at: enough for any pattern of a day, and for years of a daily one).
fn shortest_gap(schedule: &cron::Schedule) -> Option<Duration> {
    let times: Vec<_> = schedule.upcoming(chrono::Utc).take(1_000).collect();
    times
        .windows(2)
        .filter_map(|pair| (pair[1] - pair[0]).to_std().ok())
        .min()
}

/// A cached setting: when it was read, its value, when it was set (`None`: default), and
/// the KV revision it comes from (0: the key was absent when read).
type Cached<T> = (Instant, T, Option<i64>, u64);

/// The settings read (or seen changing) of one kind, by tenant, with the default for a
/// tenant without one. Shared by a [`TenantSettings`] and the bucket's watch.
struct Cache<T> {
    default: T,
    entries: RwLock<HashMap<String, Cached<T>>>,
}

impl<T: Clone + DeserializeOwned> Cache<T> {
    /// The value an entry holds (the default for a deleted or absent key) and when it was
    /// set.
    fn decode(
        &self,
        key: &str,
        entry: Option<&kv::Entry>,
    ) -> Result<(T, Option<i64>), SnapshotterError> {
        match entry.filter(|e| e.operation == kv::Operation::Put) {
            Some(entry) => {
                let value = serde_json::from_slice(&entry.value).map_err(|e| {
                    SnapshotterError::Internal(format!(
                        "{key} of the policy bucket is unreadable: {e}"
                    ))
                })?;
                let set_at = i64::try_from(entry.created.unix_timestamp_nanos() / 1_000_000).ok();
                Ok((value, set_at))
            }
            None => Ok((self.default.clone(), None)),
        }
    }

    /// Caches what was read at `revision` unless the cache holds a newer revision; the
    /// value and time the cache then holds.
    fn remember(
        &self,
        tenant: &str,
        value: T,
        set_at: Option<i64>,
        revision: u64,
    ) -> (T, Option<i64>) {
        let mut entries = self.entries.write().unwrap_or_else(|e| e.into_inner());
        match entries.get_mut(tenant) {
            Some(cached) if cached.3 > revision => {
                cached.0 = Instant::now();
                (cached.1.clone(), cached.2)
            }
            _ => {
                entries.insert(
                    tenant.to_string(),
                    (Instant::now(), value.clone(), set_at, revision),
                );
                (value, set_at)
            }
        }
    }

    /// Takes a change the bucket's watch delivered for `tenant`.
    fn observe(&self, tenant: &str, entry: &kv::Entry) {
        match self.decode(&entry.key, Some(entry)) {
            Ok((value, set_at)) => {
                self.remember(tenant, value, set_at, entry.revision);
            }
            // Read again (and the error reported) by the next caller.
            Err(_) => {
                self.entries
                    .write()
                    .unwrap_or_else(|e| e.into_inner())
                    .remove(tenant);
            }
        }
    }

    /// The cached value of `tenant` and when it was set, if read less than `refresh` ago.
    fn fresh(&self, tenant: &str, refresh: Duration) -> Option<(T, Option<i64>)> {
        let entries = self.entries.read().unwrap_or_else(|e| e.into_inner());
        let (at, value, set_at, _) = entries.get(tenant)?;
        (at.elapsed() < refresh).then(|| (value.clone(), *set_at))
    }
}

/// One kind of per-tenant setting in the policy bucket (key `<prefix>.<tenant>`, JSON),
/// with a cache in front of it that the bucket's watch keeps current.
#[derive(Clone)]
pub struct TenantSettings<T> {
    bucket: kv::Store,
    prefix: &'static str,
    refresh: Duration,
    cache: Arc<Cache<T>>,
}

impl<T: std::fmt::Debug> std::fmt::Debug for TenantSettings<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TenantSettings")
            .field("prefix", &self.prefix)
            .field("default", &self.cache.default)
            .finish_non_exhaustive()
    }
}

impl<T: Clone + Serialize + DeserializeOwned> TenantSettings<T> {
    fn new(bucket: kv::Store, prefix: &'static str, default: T, refresh: Duration) -> Self {
        Self {
            bucket,
            prefix,
            refresh,
            cache: Arc::new(Cache {
                default,
                entries: RwLock::default(),
            }),
        }
    }

    /// The tenant's setting (or the default) and when it was set (ms since the Unix epoch;
    /// `None` for the default), at most `refresh` old.
    pub async fn get_with_time(&self, tenant: &str) -> Result<(T, Option<i64>), SnapshotterError> {
        if let Some(fresh) = self.cache.fresh(tenant, self.refresh) {
            return Ok(fresh);
        }
        let key = self.key(tenant);
        let entry = self.bucket.entry(key.as_str()).await.map_err(|e| {
            SnapshotterError::Unavailable(format!("read {key} of the policy bucket: {e}"))
        })?;
        let revision = entry.as_ref().map_or(0, |e| e.revision);
        let (value, set_at) = self.cache.decode(&key, entry.as_ref())?;
        Ok(self.cache.remember(tenant, value, set_at, revision))
    }

    /// Stores the tenant's setting (validated by the caller).
    pub async fn put(&self, tenant: &str, value: &T) -> Result<(), SnapshotterError> {
        let key = self.key(tenant);
        let bytes =
            serde_json::to_vec(value).map_err(|e| SnapshotterError::Internal(e.to_string()))?;
        let revision = self
            .bucket
            .put(key.as_str(), bytes.into())
            .await
            .map_err(|e| {
                SnapshotterError::Unavailable(format!("store {key} in the policy bucket: {e}"))
            })?;
        // The bucket stamps the entry; the watch brings its own time.
        self.cache.remember(
            tenant,
            value.clone(),
            Some(backtrack_platform::clock::now_ms()),
            revision,
        );
        Ok(())
    }

    fn key(&self, tenant: &str) -> String {
        format!("{}.{tenant}", self.prefix)
    }

    /// The watch's hold on the cache: one that does not keep it alive.
    fn watched(&self) -> Watched<T> {
        Watched {
            prefix: self.prefix,
            cache: Arc::downgrade(&self.cache),
        }
    }
}

/// Stores `default` as the deployment's default backup policy unless the bucket holds it
/// already; since when it has held it. Processes started with different defaults each
/// write theirs: the time is then that of the latest, which only makes the check of missed
/// backups wait longer.
async fn record_default(
    bucket: &kv::Store,
    default: &Policy,
) -> Result<Option<i64>, SnapshotterError> {
    let unavailable = |e: String| {
        SnapshotterError::Unavailable(format!("{DEFAULT_POLICY_KEY} of the policy bucket: {e}"))
    };
    let entry_time =
        |e: &kv::Entry| i64::try_from(e.created.unix_timestamp_nanos() / 1_000_000).ok();
    let stored = bucket
        .entry(DEFAULT_POLICY_KEY)
        .await
        .map_err(|e| unavailable(e.to_string()))?
        .filter(|e| e.operation == kv::Operation::Put);
    if let Some(entry) = &stored {
        if serde_json::from_slice::<Policy>(&entry.value).ok().as_ref() == Some(default) {
            return Ok(entry_time(entry));
        }
    }
    let bytes =
        serde_json::to_vec(default).map_err(|e| SnapshotterError::Internal(e.to_string()))?;
    bucket
        .put(DEFAULT_POLICY_KEY, bytes.into())
        .await
        .map_err(|e| unavailable(e.to_string()))?;
    let entry = bucket
        .entry(DEFAULT_POLICY_KEY)
        .await
        .map_err(|e| unavailable(e.to_string()))?;
    Ok(entry.as_ref().and_then(entry_time))
}

/// A cache as the bucket's watch holds it: the watch ends when the cache's owners are gone.
struct Watched<T> {
    prefix: &'static str,
    cache: Weak<Cache<T>>,
}

impl<T: Clone + DeserializeOwned> Watched<T> {
    /// Takes the change if the entry is one of these settings; `false` once the owners
    /// are gone.
    fn observe(&self, entry: &kv::Entry) -> bool {
        let Some(cache) = self.cache.upgrade() else {
            return false;
        };
        if let Some(tenant) = entry
            .key
            .strip_prefix(self.prefix)
            .and_then(|k| k.strip_prefix('.'))
        {
            cache.observe(tenant, entry);
        }
        true
    }
}

/// How often a quiet watch checks that its caches still have owners.
const OWNERS_CHECK: Duration = Duration::from_secs(5);

/// Follows every change of the bucket into the caches, until they are dropped; after a
/// failure it watches again (the `refresh` re-reads cover the gap).
async fn watch_changes(
    bucket: kv::Store,
    mut watch: Option<kv::Watch>,
    backup: Watched<Policy>,
    alerts: Watched<AlertPolicy>,
) {
    let mut backoff = Duration::from_millis(100);
    loop {
        let watched = match watch.take() {
            Some(w) => Ok(w),
            None => bucket.watch_all().await,
        };
        match watched {
            Ok(mut changes) => {
                backoff = Duration::from_millis(100);
                loop {
                    let change = tokio::select! {
                        change = changes.next() => change,
                        // A quiet bucket: the owners may be gone, and the watch with them.
                        () = tokio::time::sleep(OWNERS_CHECK) => {
                            if backup.cache.strong_count() == 0 {
                                return;
                            }
                            continue;
                        }
                    };
                    let Some(Ok(entry)) = change else { break };
                    if !(backup.observe(&entry) & alerts.observe(&entry)) {
                        return;
                    }
                }
            }
            Err(e) => tracing::debug!(error = %e, "watching the policy bucket"),
        }
        if backup.cache.strong_count() == 0 {
            return;
        }
        tokio::time::sleep(backoff).await;
        backoff = (backoff * 2).min(Duration::from_secs(5));
    }
}

/// The key of the deployment's default backup policy in the bucket: its entry's time says
/// since when the default has been what it is (tenant ids hold no dot, so no tenant's
/// `backup.<tenant>` is this key).
pub const DEFAULT_POLICY_KEY: &str = "deployment.backup";

/// The tenants' backup policies and alert policies, in the policy bucket.
#[derive(Clone, Debug)]
pub struct Policies {
    backup: TenantSettings<Policy>,
    alerts: TenantSettings<AlertPolicy>,
    min_interval: Duration,
    default_since: Option<i64>,
}

impl Policies {
    /// Opens (or creates) the bucket.
    pub async fn open(
        jetstream: &jetstream::Context,
        replicas: usize,
        default: Policy,
        refresh: Duration,
        min_interval: Duration,
    ) -> Result<Self, SnapshotterError> {
        let bucket = match jetstream.get_key_value(POLICY_BUCKET).await {
            Ok(bucket) => bucket,
            Err(_) => jetstream
                .create_key_value(kv::Config {
                    bucket: POLICY_BUCKET.into(),
                    description: "Backtrack per-tenant policies".into(),
                    history: 16,
                    num_replicas: replicas,
                    storage: jetstream::stream::StorageType::File,
                    ..Default::default()
                })
                .await
                .map_err(|e| {
                    SnapshotterError::Unavailable(backtrack_eventlog::buckets::creation_failed(
                        "KV bucket",
                        POLICY_BUCKET,
                        &e,
                    ))
                })?,
        };
        let default_since = record_default(&bucket, &default).await?;
        let policies = Self {
            backup: TenantSettings::new(bucket.clone(), "backup", default, refresh),
            alerts: TenantSettings::new(bucket.clone(), "alerts", AlertPolicy::default(), refresh),
            min_interval,
            default_since,
        };
        // Watching before the first read: no change is missed from here on.
        let watch = bucket.watch_all().await.ok();
        tokio::spawn(watch_changes(
            bucket,
            watch,
            policies.backup.watched(),
            policies.alerts.watched(),
        ));
        Ok(policies)
    }

    /// Since when the deployment's default backup policy has been what this process uses
    /// (ms since the Unix epoch), when the bucket tells.
    pub fn default_since(&self) -> Option<i64> {
        self.default_since
    }

    /// The tenant's backup policy (or the default), at most `refresh` old.
    pub async fn get(&self, tenant: &str) -> Result<Policy, SnapshotterError> {
        Ok(self.backup.get_with_time(tenant).await?.0)
    }

    /// The tenant's backup policy (or the default) and when it was set (`None`: default).
    pub async fn get_with_time(
        &self,
        tenant: &str,
    ) -> Result<(Policy, Option<i64>), SnapshotterError> {
        self.backup.get_with_time(tenant).await
    }

    /// Stores a validated backup policy.
    pub async fn set(&self, tenant: &str, policy: Policy) -> Result<Policy, SnapshotterError> {
        policy.validate(self.min_interval)?;
        self.backup.put(tenant, &policy).await?;
        Ok(policy)
    }

    /// The tenants' alert policies ([`AlertPolicy`]).
    pub fn alerts(&self) -> &TenantSettings<AlertPolicy> {
        &self.alerts
    }

    /// Stores a validated alert policy.
    pub async fn set_alerts(
        &self,
        tenant: &str,
        policy: AlertPolicy,
    ) -> Result<AlertPolicy, SnapshotterError> {
        let policy = policy.validated()?;
        self.alerts.put(tenant, &policy).await?;
        Ok(policy)
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::Policy;

    const FIVE_MINUTES: Duration = Duration::from_secs(300);

    #[test]
    fn default_is_daily_at_two_and_valid() {
        let policy = Policy::default();
        assert!(policy.validate(FIVE_MINUTES).is_ok());
        let schedule = policy.cron().unwrap().unwrap();
        let start = chrono::DateTime::parse_from_rfc3339("2026-11-22T05:00:00Z").unwrap();
        let next = schedule
            .after(&start.with_timezone(&chrono::Utc))
            .next()
            .unwrap();
        assert_eq!(next.to_rfc3339(), "2026-11-23T02:00:00+00:00");
    }

    #[test]
    fn bad_schedules_and_retentions_are_refused_with_a_hint() {
        let bad = Policy {
            schedule: "every day".into(),
            ..Policy::default()
        };
        assert!(bad
            .validate(FIVE_MINUTES)
            .unwrap_err()
            .to_string()
            .contains("six fields"));
        let zero = Policy {
            retention_days: 0,
            ..Policy::default()
        };
        assert!(zero
            .validate(FIVE_MINUTES)
            .unwrap_err()
            .to_string()
            .contains("1 to 36500"));
        let off = Policy {
            schedule: String::new(),
            ..Policy::default()
        };
        assert!(off.cron().unwrap().is_none());
        assert!(off.validate(FIVE_MINUTES).is_ok());
    }

    #[test]
    fn a_schedule_may_not_fire_more_often_than_the_limit() {
        let every = |schedule: &str| Policy {
            schedule: schedule.into(),
            ..Policy::default()
        };
        let e = every("*/2 * * * * *")
            .validate(FIVE_MINUTES)
            .unwrap_err()
            .to_string();
        assert!(e.contains("every 2s") && e.contains("300s"), "{e}");
        // Twice a day one minute apart: the shortest gap counts, not the usual one.
        let e = every("0 0,1 2 * * *").validate(FIVE_MINUTES).unwrap_err();
        assert!(e.to_string().contains("every 60s"), "{e}");
        for fine in [
            "0 */5 * * * *",
            "0 0 2 * * *",
            "0 0 3 * * Sun",
            "0 0 0 1 * *",
        ] {
            assert!(every(fine).validate(FIVE_MINUTES).is_ok(), "{fine}");
        }
        assert!(every("* * * * * *").validate(Duration::ZERO).is_ok());
    }
}
