//! The one error type of the domain, grouped so services can map it onto a status.

/// Why a command was refused. The text says what was wrong and how to fix it.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DomainError {
    /// The request itself is malformed (bad id, unknown kind, wrong type, too large).
    #[error("{0}")]
    Invalid(String),
    /// The named object does not exist (or is not visible in this state).
    #[error("{0}")]
    NotFound(String),
    /// The object already exists.
    #[error("{0}")]
    AlreadyExists(String),
    /// The request is well-formed but conflicts with the current state.
    #[error("{0}")]
    Conflict(String),
}

impl DomainError {
    pub(crate) fn invalid(msg: impl Into<String>) -> Self {
        Self::Invalid(msg.into())
    }
}
