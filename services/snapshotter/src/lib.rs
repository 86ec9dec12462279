//! The snapshotter service: the time-travel store, backups and verification.
//!
//! A builder task folds `BT_EVENTS` into a versioned RocksDB store ([`TimeTravelStore`]),
//! so any object, membership or object list at any stream sequence is a seek. A backup is
//! an immutable manifest on `BT_BACKUPS` naming a (stream, sequence) with the tenant's
//! counts and content digest there, both kept incrementally, so taking one costs the same
//! for ten objects or ten million.
//!
//! Modules:
//! - [`config`]: the service's settings.
//! - [`builder`]: follows the log into the store.
//! - [`catalog`]: manifests and pin records on `BT_BACKUPS`.
//! - [`checkpoint`]: verified checkpoints of the store in the NATS object store.
//! - [`policy`]: per-tenant schedules and retention in the `bt-policies` KV bucket.
//! - [`retention`]: which backups are expired (pure).
//! - [`backups`]: creating, listing, pinning and verifying backups.
//! - [`points`]: turning a sequence, an instant or a backup id into a stream sequence.
//! - [`scheduler`]: scheduled backups from each tenant's cron expression.
//! - [`alerter`]: alerts on dangerous changes, as records on the audit stream.
//! - [`alert_policy`]: per-tenant alert thresholds, disabled rules and quiet actors.
//! - [`api`]: the gRPC `BackupService` and `TimeTravelService`.
//! - [`error`]: the service error and its one mapping onto gRPC statuses.

pub mod alert_policy;
pub mod alerter;
pub mod api;
pub mod backups;
pub mod builder;
pub mod catalog;
pub mod checkpoint;
pub mod config;
pub mod error;
pub mod points;
pub mod policy;
pub mod retention;
pub mod scheduler;

use std::sync::Arc;
use std::time::Duration;

use backtrack_eventlog::{EventLog, StreamSettings};
use backtrack_platform::shutdown::Shutdown;
use backtrack_store::TimeTravelStore;
use tokio::sync::watch;

pub use config::SnapshotterConfig;
pub use error::SnapshotterError;

use crate::catalog::Catalog;
use crate::checkpoint::Checkpoints;
use crate::policy::Policies;

/// A running snapshotter. Cheap to clone.
#[derive(Clone)]
pub struct Snapshotter {
    inner: Arc<Inner>,
}

struct Inner {
    config: SnapshotterConfig,
    log: EventLog,
    store: Arc<TimeTravelStore>,
    progress: watch::Receiver<u64>,
    catalog: Catalog,
    policies: Policies,
    audit: backtrack_eventlog::AuditLog,
    /// The checkpoint position the store was restored from at start, if any.
    restored_from: Option<u64>,
    /// The alerter's position, when this instance runs it (see [`alerter`]).
    alerter_position: Arc<std::sync::atomic::AtomicU64>,
}

impl std::fmt::Debug for Snapshotter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Snapshotter")
            .field("store_dir", &self.inner.config.store_dir)
            .finish_non_exhaustive()
    }
}

/// Opens the store, the log, the catalog and the policies, starts the builder and (unless
/// the config turns it off) the scheduler, and returns a handle that serves requests. Tasks stop on `shutdown`.
pub async fn start(
    config: SnapshotterConfig,
    nats: async_nats::Client,
    shutdown: Shutdown,
) -> Result<Snapshotter, SnapshotterError> {
    std::fs::create_dir_all(&config.store_dir).map_err(|e| {
        SnapshotterError::Unavailable(format!("cannot create {}: {e}", config.store_dir.display()))
    })?;
    let jetstream = async_nats::jetstream::new(nats.clone());
    let checkpoints = Checkpoints::open(&jetstream, config.stream_replicas).await?;
    let restored_from = if config.store_dir.join("CURRENT").exists() {
        None
    } else {
        checkpoints
            .restore(&config.store_dir, &config.scratch_dir())
            .await
    };
    if let Some(position) = restored_from {
        tracing::info!(
            position,
            "time-travel store restored from a checkpoint; replaying the tail"
        );
    }
    let store = Arc::new(TimeTravelStore::open(&config.store_dir)?);
    let audit = backtrack_eventlog::AuditLog::open(nats.clone(), config.stream_replicas).await?;
    let log = EventLog::open(
        nats,
        StreamSettings {
            replicas: config.stream_replicas,
            ..StreamSettings::default()
        },
    )
    .await?;
    let catalog =
        Catalog::open(jetstream.clone(), config.stream_replicas, shutdown.clone()).await?;
    let policies = Policies::open(
        &jetstream,
        config.stream_replicas,
        config.default_policy.clone(),
        config.policy_refresh,
        config.backup_min_interval,
    )
    .await?;
    let (progress_tx, progress) = watch::channel(store.position());
    let checkpointing = (config.checkpoint_every > 0).then(|| builder::Checkpointing {
        checkpoints,
        every: config.checkpoint_every,
        scratch: config.scratch_dir(),
    });
    let builder = builder::run(
        log.clone(),
        store.clone(),
        Arc::new(progress_tx),
        checkpointing,
        shutdown.clone(),
    );
    let snapshotter = Snapshotter {
        inner: Arc::new(Inner {
            config,
            log,
            store,
            progress,
            catalog,
            policies,
            audit,
            restored_from,
            alerter_position: Arc::default(),
        }),
    };
    // The alerter's start asks NATS, and may fail: only then does a task take the store,
    // so a failed start leaves nothing holding it and a retry can open it again.
    if let Some(settings) = snapshotter.inner.config.alerts {
        alerter::start(&snapshotter, settings, shutdown.clone()).await?;
    }
    tokio::spawn(builder);
    if snapshotter.inner.config.scheduler {
        tokio::spawn(scheduler::run(snapshotter.clone(), shutdown));
    }
    Ok(snapshotter)
}

impl Snapshotter {
    /// The time-travel store (read-only use).
    pub fn store(&self) -> &Arc<TimeTravelStore> {
        &self.inner.store
    }

    pub fn log(&self) -> &EventLog {
        &self.inner.log
    }

    pub fn catalog(&self) -> &Catalog {
        &self.inner.catalog
    }

    /// The audit stream, for actions the snapshotter takes by itself (scheduled backups).
    pub fn audit_log(&self) -> &backtrack_eventlog::AuditLog {
        &self.inner.audit
    }

    pub fn policies(&self) -> &Policies {
        &self.inner.policies
    }

    /// The checkpoint position the store was restored from at start, if any.
    pub fn restored_from(&self) -> Option<u64> {
        self.inner.restored_from
    }

    pub fn config(&self) -> &SnapshotterConfig {
        &self.inner.config
    }

    /// The last sequence this instance's alerter has handled; `None` when it runs none.
    pub fn alerter_position(&self) -> Option<u64> {
        self.inner.config.alerts.map(|_| {
            self.inner
                .alerter_position
                .load(std::sync::atomic::Ordering::Relaxed)
        })
    }

    /// The last sequence the store has applied.
    pub fn position(&self) -> u64 {
        *self.inner.progress.borrow()
    }

    /// Waits until the store has applied `sequence`.
    pub async fn wait_for(&self, sequence: u64) -> Result<(), SnapshotterError> {
        let limit = self.inner.config.catch_up_wait;
        let mut progress = self.inner.progress.clone();
        let reached = tokio::time::timeout(limit, progress.wait_for(|p| *p >= sequence))
            .await
            .map(|r| r.map(|_| ()));
        match reached {
            Ok(Ok(())) => Ok(()),
            Ok(Err(_)) => Err(SnapshotterError::Unavailable(
                "the time-travel builder has stopped".into(),
            )),
            Err(_) => Err(SnapshotterError::Unavailable(format!(
                "the time-travel store has not reached sequence {sequence} within {limit:?} \
                 (it is at {}); retry shortly",
                self.position()
            ))),
        }
    }

    /// Waits until the store has applied everything the log held when called; returns
    /// that sequence.
    pub async fn catch_up(&self) -> Result<u64, SnapshotterError> {
        let last = self.inner.log.state().await?.last_sequence;
        self.wait_for(last).await?;
        Ok(last)
    }

    /// Waits up to `limit` for the store to reach the log's tail (used at start-up).
    pub async fn ready(&self, limit: Duration) -> Result<(), SnapshotterError> {
        let last = self.inner.log.state().await?.last_sequence;
        let mut progress = self.inner.progress.clone();
        tokio::time::timeout(limit, progress.wait_for(|p| *p >= last))
            .await
            .map_err(|_| SnapshotterError::Unavailable("time-travel store is catching up".into()))?
            .map_err(|_| SnapshotterError::Unavailable("builder stopped".into()))?;
        Ok(())
    }
}
