//! The one error type of the event log, shaped for callers that map it onto "bad input /
//! conflict / unavailable / internal".

use crate::codec::CodecError;

/// What went wrong talking to the event log.
#[derive(Debug, thiserror::Error)]
pub enum EventLogError {
    /// The event cannot be written as a message (bad input; nothing was published).
    #[error("event cannot be appended: {0}")]
    InvalidEvent(#[source] CodecError),

    /// The subject filter of a read is not a subject of the stream (bad input).
    #[error("invalid subject filter '{filter}': {reason}")]
    InvalidFilter { filter: String, reason: String },

    /// Optimistic concurrency: the subject's last sequence was not the expected one, so the
    /// object changed since it was read. Nothing was appended.
    #[error("conflict on {subject}: its last sequence is no longer {expected}; reload the object and retry")]
    Conflict { subject: String, expected: u64 },

    /// The message (headers plus payload) is over the server's or the stream's size limit.
    /// Nothing was appended.
    #[error("message on {subject} is {size} bytes, over the limit of {limit} bytes; make the event smaller")]
    TooLarge {
        subject: String,
        size: usize,
        limit: usize,
    },

    /// NATS or JetStream did not answer (connection lost, timeout, no stream responding).
    /// An append that ends here may or may not have happened: retry with the same msg id.
    #[error("event log unavailable: {0}; check that NATS JetStream is reachable, then retry")]
    Unavailable(String),

    /// The stream exists but is not configured the way an event log must be.
    #[error("stream {stream} cannot be used as the event log: {problem}")]
    Misconfigured { stream: String, problem: String },

    /// A stored message is not a valid event. Reading stops here rather than skip it.
    #[error("message {sequence} on {subject} is not a valid event: {source}")]
    Decode {
        sequence: u64,
        subject: String,
        source: CodecError,
    },

    /// Anything else JetStream refused; the text says what.
    #[error("event log error: {0}")]
    Internal(String),
}

impl EventLogError {
    /// True when retrying the same call later may succeed.
    pub fn is_transient(&self) -> bool {
        matches!(self, EventLogError::Unavailable(_))
    }
}
