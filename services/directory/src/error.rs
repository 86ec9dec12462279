//! The directory's one error type and its one mapping onto gRPC statuses.

use backtrack_domain::DomainError;
use backtrack_eventlog::EventLogError;
use backtrack_store::StoreError;

#[derive(Debug, thiserror::Error)]
pub enum DirectoryError {
    #[error(transparent)]
    Domain(#[from] DomainError),
    #[error("{0}")]
    NotFound(String),
    #[error("{0}")]
    Invalid(String),
    #[error("{0}")]
    Conflict(String),
    #[error("{0}")]
    Unavailable(String),
    /// The caller's token does not reach what the call would touch.
    #[error("{0}")]
    Forbidden(String),
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error(transparent)]
    Log(#[from] EventLogError),
}

impl From<DirectoryError> for tonic::Status {
    fn from(e: DirectoryError) -> Self {
        use tonic::Status;
        match e {
            DirectoryError::Domain(DomainError::Invalid(m)) | DirectoryError::Invalid(m) => {
                Status::invalid_argument(m)
            }
            DirectoryError::Domain(DomainError::NotFound(m)) | DirectoryError::NotFound(m) => {
                Status::not_found(m)
            }
            DirectoryError::Domain(DomainError::AlreadyExists(m)) => Status::already_exists(m),
            DirectoryError::Domain(DomainError::Conflict(m)) => Status::failed_precondition(m),
            DirectoryError::Conflict(m) => Status::aborted(m),
            DirectoryError::Unavailable(m) => Status::unavailable(m),
            DirectoryError::Forbidden(m) => Status::permission_denied(m),
            DirectoryError::Log(EventLogError::Conflict { .. }) => Status::aborted(
                "the object was changed by another writer at the same time; read it again and retry",
            ),
            DirectoryError::Log(EventLogError::TooLarge { .. }) => Status::invalid_argument(
                "the change is larger than the log's message limit; split it into smaller changes",
            ),
            DirectoryError::Log(EventLogError::Unavailable(m)) => {
                Status::unavailable(format!("event log unavailable: {m}"))
            }
            DirectoryError::Log(other) => {
                tracing::error!(error = %other, "event log failure");
                Status::internal("event log failure; see the server log")
            }
            DirectoryError::Store(other) => {
                tracing::error!(error = %other, "projection failure");
                Status::internal("projection failure; see the server log")
            }
        }
    }
}
