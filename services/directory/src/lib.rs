//! The native, event-sourced directory service.
//!
//! Every mutation is decided against the current state (`backtrack_domain::decide`),
//! appended to `BT_EVENTS` and acknowledged before the caller hears back. The current
//! state is a RocksDB projection of the log, kept by one projector task that reads the
//! stream in order; writers wait until the projector has folded their own events, so a
//! caller always reads its writes.
//!
//! Modules:
//! - [`config`]: the service's settings.
//! - [`projector`]: catches the projection up from the log and keeps it current.
//! - [`writer`]: the mutation pipeline — tenant lock, decide, append, wait.
//! - [`api`]: the gRPC `DirectoryService`.
//! - [`sweeper`]: purges recycle-bin objects whose retention has run out.
//! - [`error`]: the service error and its one mapping onto gRPC statuses.

pub mod api;
pub mod config;
pub mod error;
pub mod projector;
pub mod sweeper;
pub mod writer;

use std::sync::Arc;

use backtrack_eventlog::{EventLog, StreamSettings};
use backtrack_platform::shutdown::Shutdown;
use backtrack_store::DirectoryProjection;

pub use config::DirectoryConfig;
pub use error::DirectoryError;
pub use writer::{Directory, Executed, PlannedOutcome};

/// Opens the projection and the log, starts the projector and the recycle-bin sweeper,
/// and returns a handle that serves requests. Background tasks stop on `shutdown`.
pub async fn start(
    config: DirectoryConfig,
    nats: async_nats::Client,
    shutdown: Shutdown,
) -> Result<Directory, DirectoryError> {
    std::fs::create_dir_all(&config.projection_dir).map_err(|e| {
        DirectoryError::Unavailable(format!(
            "cannot create {}: {e}",
            config.projection_dir.display()
        ))
    })?;
    let projection = Arc::new(DirectoryProjection::open(&config.projection_dir)?);
    let audit = backtrack_eventlog::AuditLog::open(nats.clone(), config.stream_replicas).await?;
    let log = EventLog::open(
        nats,
        StreamSettings {
            replicas: config.stream_replicas,
            ..StreamSettings::default()
        },
    )
    .await?;
    let position = projection.position()?;
    let (progress, _) = tokio::sync::watch::channel(position);
    let progress = Arc::new(progress);
    tokio::spawn(projector::run(
        log.clone(),
        projection.clone(),
        progress.clone(),
        shutdown.clone(),
    ));
    let sweep = config.sweeper;
    let directory = Directory::new(config, log, audit, projection, progress);
    if sweep {
        tokio::spawn(sweeper::run(directory.clone(), shutdown));
    }
    Ok(directory)
}
