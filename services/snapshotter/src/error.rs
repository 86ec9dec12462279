//! The snapshotter's one error type and its one mapping onto gRPC statuses.

use backtrack_eventlog::EventLogError;
use backtrack_store::StoreError;

#[derive(Debug, thiserror::Error)]
pub enum SnapshotterError {
    #[error("{0}")]
    Invalid(String),
    #[error("{0}")]
    NotFound(String),
    /// The request cannot be served in the current state (e.g. an expired backup).
    #[error("{0}")]
    Precondition(String),
    #[error("{0}")]
    Unavailable(String),
    #[error("{0}")]
    Internal(String),
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error(transparent)]
    Log(#[from] EventLogError),
}

impl From<SnapshotterError> for tonic::Status {
    fn from(e: SnapshotterError) -> Self {
        use tonic::Status;
        match e {
            SnapshotterError::Invalid(m) => Status::invalid_argument(m),
            SnapshotterError::NotFound(m) => Status::not_found(m),
            SnapshotterError::Precondition(m) => Status::failed_precondition(m),
            SnapshotterError::Unavailable(m) => Status::unavailable(m),
            SnapshotterError::Log(EventLogError::Unavailable(m)) => {
                Status::unavailable(format!("event log unavailable: {m}"))
            }
            SnapshotterError::Internal(m) => {
                tracing::error!(error = %m, "snapshotter failure");
                Status::internal("snapshotter failure; see the server log")
            }
            SnapshotterError::Log(other) => {
                tracing::error!(error = %other, "event log failure");
                Status::internal("event log failure; see the server log")
            }
            SnapshotterError::Store(other) => {
                tracing::error!(error = %other, "time-travel store failure");
                Status::internal("time-travel store failure; see the server log")
            }
        }
    }
}
