//! Settings of the snapshotter service.

use std::path::PathBuf;
use std::time::Duration;

use crate::alerter::AlertSettings;
use crate::policy::Policy;

/// What the snapshotter needs to run; the CLI fills it from flags and `BACKTRACK_*` vars.
#[derive(Debug, Clone)]
pub struct SnapshotterConfig {
    /// Folder of the time-travel store (deletable: it is rebuilt from the log).
    pub store_dir: PathBuf,
    /// Replicas of `BT_BACKUPS` when the service creates it.
    pub stream_replicas: usize,
    /// The policy of tenants that have none of their own.
    pub default_policy: Policy,
    /// How long a request waits for the store to reach the sequence it needs.
    pub catch_up_wait: Duration,
    /// How often the scheduler looks for due backups.
    pub scheduler_tick: Duration,
    /// How often cached tenant policies are re-read from the policy bucket.
    pub policy_refresh: Duration,
    /// The shortest interval a tenant's backup schedule may have.
    pub backup_min_interval: Duration,
    /// Applied events between two checkpoints of the store (0: no checkpoints).
    pub checkpoint_every: u64,
    /// Whether this instance takes scheduled backups. Off for a read replica of the
    /// time-travel store (a differ or recovery process), so one deployment takes each
    /// scheduled backup once.
    pub scheduler: bool,
    /// Whether (and how) this instance raises alerts on the audit stream: one instance per
    /// deployment, like the scheduler (two would publish the same records, stored once).
    pub alerts: Option<AlertSettings>,
}

/// The shortest interval of a backup schedule unless configured otherwise: 5 minutes.
pub const DEFAULT_BACKUP_MIN_INTERVAL: Duration = Duration::from_secs(300);

impl SnapshotterConfig {
    /// Scratch folder for checkpoints, beside the store.
    pub fn scratch_dir(&self) -> PathBuf {
        let mut name = self
            .store_dir
            .file_name()
            .unwrap_or_default()
            .to_os_string();
        name.push(".checkpoint");
        self.store_dir.with_file_name(name)
    }

    pub fn new(store_dir: PathBuf) -> Self {
        Self {
            store_dir,
            stream_replicas: 1,
            default_policy: Policy::default(),
            catch_up_wait: Duration::from_secs(30),
            scheduler_tick: Duration::from_millis(250),
            policy_refresh: Duration::from_secs(30),
            backup_min_interval: DEFAULT_BACKUP_MIN_INTERVAL,
            checkpoint_every: 1_000_000,
            scheduler: true,
            alerts: None,
        }
    }
}
