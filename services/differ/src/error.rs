//! The differ's one error type and its one mapping onto gRPC statuses.

use backtrack_snapshotter::SnapshotterError;

#[derive(Debug, thiserror::Error)]
pub enum DifferError {
    #[error("{0}")]
    Invalid(String),
    #[error("{0}")]
    NotFound(String),
    /// Another job runs for the tenant, or the report is not in a state for this.
    #[error("{0}")]
    Precondition(String),
    #[error("{0}")]
    Unavailable(String),
    #[error("{0}")]
    Internal(String),
    #[error(transparent)]
    Snapshotter(#[from] SnapshotterError),
}

impl From<backtrack_store::StoreError> for DifferError {
    fn from(e: backtrack_store::StoreError) -> Self {
        DifferError::Snapshotter(SnapshotterError::Store(e))
    }
}

impl From<backtrack_eventlog::EventLogError> for DifferError {
    fn from(e: backtrack_eventlog::EventLogError) -> Self {
        DifferError::Snapshotter(SnapshotterError::Log(e))
    }
}

impl From<DifferError> for tonic::Status {
    fn from(e: DifferError) -> Self {
        use tonic::Status;
        match e {
            DifferError::Invalid(m) => Status::invalid_argument(m),
            DifferError::NotFound(m) => Status::not_found(m),
            DifferError::Precondition(m) => Status::failed_precondition(m),
            DifferError::Unavailable(m) => Status::unavailable(m),
            DifferError::Internal(m) => {
                tracing::error!(error = %m, "differ failure");
                Status::internal("differ failure; see the server log")
            }
            DifferError::Snapshotter(e) => e.into(),
        }
    }
}
