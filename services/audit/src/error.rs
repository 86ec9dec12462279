//! The audit service's one error type and its mapping onto gRPC statuses.

#[derive(Debug, thiserror::Error)]
pub enum AuditError {
    #[error("{0}")]
    Invalid(String),
    #[error("{0}")]
    Unavailable(String),
    #[error("{0}")]
    Internal(String),
    #[error(transparent)]
    Store(#[from] backtrack_store::StoreError),
}

impl From<backtrack_eventlog::EventLogError> for AuditError {
    fn from(e: backtrack_eventlog::EventLogError) -> Self {
        AuditError::Unavailable(e.to_string())
    }
}

impl From<AuditError> for tonic::Status {
    fn from(e: AuditError) -> Self {
        use tonic::Status;
        match e {
            AuditError::Invalid(m) => Status::invalid_argument(m),
            AuditError::Unavailable(m) => Status::unavailable(m),
            AuditError::Internal(m) => {
                tracing::error!(error = %m, "audit failure");
                Status::internal("audit failure; see the server log")
            }
            AuditError::Store(e) => {
                tracing::error!(error = %e, "audit index failure");
                Status::internal("audit index failure; see the server log")
            }
        }
    }
}
