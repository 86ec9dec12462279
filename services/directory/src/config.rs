//! Settings of the directory service.

use std::path::PathBuf;
use std::time::Duration;

/// What the directory needs to run; the CLI fills it from flags and `BACKTRACK_*` vars.
#[derive(Debug, Clone)]
pub struct DirectoryConfig {
    /// Folder of the RocksDB projection (deletable: it is rebuilt from the log).
    pub projection_dir: PathBuf,
    /// How long soft-deleted objects stay in the recycle bin.
    pub recycle_bin_retention: Duration,
    /// Replicas of `BT_EVENTS` when the service creates it.
    pub stream_replicas: usize,
    /// How long a writer waits for the projector to fold its events.
    pub projection_wait: Duration,
    /// How often the sweeper looks for expired recycle-bin objects.
    pub sweep_interval: Duration,
    /// Whether this instance purges expired recycle-bin objects. Off where the directory is
    /// embedded as a second writer (a recovery process); the directory service sweeps.
    pub sweeper: bool,
}

impl DirectoryConfig {
    pub fn new(projection_dir: PathBuf) -> Self {
        Self {
            projection_dir,
            recycle_bin_retention: Duration::from_secs(30 * 86_400),
            stream_replicas: 1,
            projection_wait: Duration::from_secs(30),
            sweep_interval: Duration::from_secs(60),
            sweeper: true,
        }
    }
}
