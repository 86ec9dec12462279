//! The crate's error type.

use std::path::PathBuf;

use crate::auth::AuthError;

/// What can go wrong while setting a service up.
#[derive(Debug, thiserror::Error)]
pub enum PlatformError {
    #[error("cannot connect to NATS at {url}: {reason}; check that nats-server runs there and that the URL is right")]
    NatsConnect { url: String, reason: String },
    #[error("cannot read NATS credentials file {}: {source}", path.display())]
    NatsCredentials {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error(transparent)]
    Auth(#[from] AuthError),
}
