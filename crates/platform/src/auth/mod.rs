//! Bearer-token authentication and authorization for every gRPC service.
//!
//! A token is an HS256 JWT signed with the deployment's [`SigningKey`], or — with an
//! OpenID Connect provider configured ([`OidcProvider`]) — an RS256/ES256 JWT signed with
//! one of the provider's keys ([`jwks`]). Its claims name the tenants (`"*"` = every
//! tenant), the [`Role`]s and optionally the object kinds the holder may touch. The server
//! side validates it once in [`AuthInterceptor`] and hands a [`Caller`] to the handlers,
//! which ask [`Caller::require_tenant`] and [`Caller::require_any_role`] before acting.
//! Clients attach a token with [`BearerToken`]. [`token_api`] is the `TokenService` that
//! issues local tokens with an audit record.

mod caller;
mod interceptor;
pub mod jwks;
mod key;
pub mod registry;
pub mod revocations;
pub mod token_api;
mod validator;

use std::fmt;
use std::path::PathBuf;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

pub use caller::Caller;
pub use interceptor::{bearer, caller, AuthInterceptor, BearerToken};
pub use jwks::{Jwks, JwksHandle, JwksSource};
pub use key::{IssuedToken, SigningKey};
pub use registry::{TokenRecord, TokenRegistry};
pub use revocations::{Revocation, RevocationError, Revocations};
pub use validator::{OidcProvider, TokenValidator};

/// The `iss` of tokens minted by a deployment's own [`SigningKey`].
pub const LOCAL_ISSUER: &str = "backtrack-local";
/// The `aud` every Backtrack token must carry.
pub const AUDIENCE: &str = "backtrack";
/// The tenant entry in [`Claims::tenants`] that grants every tenant.
pub const ALL_TENANTS: &str = "*";

/// What a caller may do. `GlobalAdministrator` implies every other role.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Role {
    /// Everything, in every tenant the token names.
    GlobalAdministrator,
    /// Take, verify and prune backups; run difference reports and recoveries.
    BackupAdministrator,
    /// Read backups, reports, jobs and audit records.
    BackupReader,
    /// Create, change and delete directory objects.
    DirectoryWriter,
    /// The recovery service applying a job's batch through the directory, in the name of
    /// the administrator who asked for the job. Held by the tokens the recovery service
    /// mints for itself from the deployment's signing key.
    RecoveryService,
}

impl Role {
    /// Every role, in a stable order (used in error messages).
    pub const ALL: [Role; 5] = [
        Role::GlobalAdministrator,
        Role::BackupAdministrator,
        Role::BackupReader,
        Role::DirectoryWriter,
        Role::RecoveryService,
    ];

    /// The role's name as it appears in tokens and on the command line.
    pub fn as_str(self) -> &'static str {
        match self {
            Role::GlobalAdministrator => "GlobalAdministrator",
            Role::BackupAdministrator => "BackupAdministrator",
            Role::BackupReader => "BackupReader",
            Role::DirectoryWriter => "DirectoryWriter",
            Role::RecoveryService => "RecoveryService",
        }
    }
}

impl fmt::Display for Role {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for Role {
    type Err = AuthError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Role::ALL
            .into_iter()
            .find(|role| role.as_str() == s)
            .ok_or_else(|| AuthError::UnknownRole(s.to_owned()))
    }
}

/// The JWT payload of a Backtrack token.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Claims {
    /// Who the token was issued to (a user or a service name).
    pub sub: String,
    /// Tenant ids the holder may access; [`ALL_TENANTS`] grants every tenant.
    pub tenants: Vec<String>,
    /// [`Role`] names.
    pub roles: Vec<String>,
    /// Object kinds the holder may touch; empty means every kind.
    #[serde(default)]
    pub kinds: Vec<String>,
    /// Issuer; [`LOCAL_ISSUER`] for locally minted tokens.
    pub iss: String,
    /// Audience; always [`AUDIENCE`].
    pub aud: String,
    /// Expiry, seconds since the Unix epoch.
    pub exp: u64,
    /// Issue time, seconds since the Unix epoch.
    pub iat: u64,
    /// Unique token id (a UUID v4).
    pub jti: String,
}

/// Why a token could not be minted or accepted, or a signing key not loaded.
///
/// The messages are safe to return to a client: they never contain a token or key material.
#[derive(Debug, thiserror::Error)]
pub enum AuthError {
    #[error("unknown role '{0}': valid roles are GlobalAdministrator, BackupAdministrator, BackupReader, DirectoryWriter, RecoveryService")]
    UnknownRole(String),
    #[error(
        "token expired: get a new one (backtrack token create, or from your identity provider)"
    )]
    Expired,
    #[error("token signature does not verify: it was signed with another key or altered")]
    BadSignature,
    #[error("wrong audience: the token is not meant for this Backtrack deployment (aud \"{AUDIENCE}\" for its own tokens, the configured --jwt-audience for the identity provider's)")]
    WrongAudience,
    #[error("wrong issuer: this deployment accepts tokens issued by \"{LOCAL_ISSUER}\" and by the configured --jwt-issuer only")]
    WrongIssuer,
    #[error(
        "unsupported token algorithm{}: this deployment accepts HS256 tokens of its own signing key and, with an identity provider configured, RS256 or ES256 tokens signed with a key of the provider's JWKS",
        .0.as_deref().map(|alg| format!(" {alg}")).unwrap_or_default()
    )]
    UnsupportedAlgorithm(Option<String>),
    #[error(
        "token has no 'kid' header: the identity provider's tokens must name their signing key"
    )]
    MissingKeyId,
    #[error("token names key '{0}', which is not in the identity provider's key set (JWKS)")]
    UnknownKey(String),
    #[error("identity provider keys: {0}")]
    Jwks(String),
    #[error("token is missing the required claim '{0}'")]
    MissingClaim(String),
    /// The token's id is told: whoever holds the token holds its id, and the record of the
    /// refused call then names the revoked token.
    #[error("token {token_id} was revoked{}: get a new one (backtrack token create, or from your identity provider)", revoked_at(*.at_ms))]
    Revoked { token_id: String, at_ms: i64 },
    #[error("token not yet valid: check the clocks of client and server")]
    NotYetValid,
    #[error("malformed token: {0}")]
    Malformed(&'static str),
    #[error("cannot mint token: {0}")]
    Mint(String),
    #[error("signing key file {}: {source}", path.display())]
    KeyFile {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("signing key file {} is not valid: {reason}", path.display())]
    KeyFormat { path: PathBuf, reason: String },
    #[error("cannot generate a signing key: the operating system's random source failed: {0}")]
    Random(String),
}

/// ` at <RFC 3339 time>`, or nothing for an unknown time.
fn revoked_at(ms: i64) -> String {
    if ms > 0 {
        format!(" at {}", backtrack_domain::time::rfc3339_ms(ms))
    } else {
        String::new()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn role_names_round_trip() {
        for role in Role::ALL {
            assert_eq!(role.as_str().parse::<Role>().ok(), Some(role));
        }
    }

    #[test]
    fn unknown_role_lists_valid_names() {
        let err = "Administrator".parse::<Role>().err().map(|e| e.to_string());
        let msg = err.unwrap_or_default();
        assert!(msg.contains("'Administrator'"), "{msg}");
        for role in Role::ALL {
            assert!(msg.contains(role.as_str()), "{msg}");
        }
    }

    #[test]
    fn role_names_are_case_sensitive() {
        assert!("globaladministrator".parse::<Role>().is_err());
    }
}
