//! The recovery service's one error type and its one mapping onto gRPC statuses.

use backtrack_differ::DifferError;
use backtrack_directory::DirectoryError;
use backtrack_snapshotter::SnapshotterError;

#[derive(Debug, thiserror::Error)]
pub enum RecoveryError {
    #[error("{0}")]
    Invalid(String),
    #[error("{0}")]
    NotFound(String),
    /// Another job holds the tenant, or the job is not in a state for this.
    #[error("{0}")]
    Precondition(String),
    #[error("{0}")]
    Unavailable(String),
    #[error("{0}")]
    Internal(String),
    #[error(transparent)]
    Snapshotter(#[from] SnapshotterError),
    #[error(transparent)]
    Differ(#[from] DifferError),
    #[error(transparent)]
    Directory(#[from] DirectoryError),
}

impl From<backtrack_store::StoreError> for RecoveryError {
    fn from(e: backtrack_store::StoreError) -> Self {
        RecoveryError::Snapshotter(SnapshotterError::Store(e))
    }
}

impl From<backtrack_eventlog::EventLogError> for RecoveryError {
    fn from(e: backtrack_eventlog::EventLogError) -> Self {
        RecoveryError::Unavailable(e.to_string())
    }
}

impl RecoveryError {
    /// Whether retrying later may succeed (NATS or a view briefly unavailable).
    pub fn is_transient(&self) -> bool {
        match self {
            RecoveryError::Unavailable(_) => true,
            RecoveryError::Snapshotter(SnapshotterError::Unavailable(_)) => true,
            RecoveryError::Differ(DifferError::Unavailable(_)) => true,
            RecoveryError::Directory(DirectoryError::Unavailable(_)) => true,
            RecoveryError::Directory(DirectoryError::Log(e)) => e.is_transient(),
            _ => false,
        }
    }
}

impl From<RecoveryError> for tonic::Status {
    fn from(e: RecoveryError) -> Self {
        use tonic::Status;
        match e {
            RecoveryError::Invalid(m) => Status::invalid_argument(m),
            RecoveryError::NotFound(m) => Status::not_found(m),
            RecoveryError::Precondition(m) => Status::failed_precondition(m),
            RecoveryError::Unavailable(m) => Status::unavailable(m),
            RecoveryError::Internal(m) => {
                tracing::error!(error = %m, "recovery failure");
                Status::internal("recovery failure; see the server log")
            }
            RecoveryError::Snapshotter(e) => e.into(),
            RecoveryError::Differ(e) => e.into(),
            RecoveryError::Directory(e) => e.into(),
        }
    }
}
