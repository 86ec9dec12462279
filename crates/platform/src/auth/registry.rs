//! The tokens the deployment issued: what each grants, to whom, until when — never the
//! token itself. `TokenService.IssueToken` and `backtrack up`'s admin token record each
//! one in the KV bucket `bt-tokens` (key: the token id), so an administrator can list the
//! tokens of a tenant and revoke the right one, and a revocation is recorded in the
//! tenants the token grants. Tokens minted offline (`token create --offline`) and those of
//! an identity provider are not in it.

use async_nats::jetstream::{self, kv};
use futures::StreamExt;
use serde::{Deserialize, Serialize};

use super::revocations::KEEP;
use super::Claims;

/// The bucket: key = token id, value = a [`TokenRecord`] as JSON.
pub const TOKENS_BUCKET: &str = "bt-tokens";

/// What a token grants, as issued.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct TokenRecord {
    pub token_id: String,
    pub subject: String,
    pub tenants: Vec<String>,
    pub roles: Vec<String>,
    #[serde(default)]
    pub kinds: Vec<String>,
    /// Seconds since the Unix epoch.
    pub issued_at: u64,
    pub expires_at: u64,
    /// The subject of the caller that asked for it (`backtrack-up` for the admin token).
    pub issued_by: String,
    /// When it was recorded, milliseconds since the Unix epoch: orders tokens issued within
    /// the same second (`issued_at` counts seconds).
    #[serde(default)]
    pub recorded_at_ms: i64,
}

impl TokenRecord {
    pub fn of(claims: &Claims, issued_by: &str) -> Self {
        Self {
            token_id: claims.jti.clone(),
            subject: claims.sub.clone(),
            tenants: claims.tenants.clone(),
            roles: claims.roles.clone(),
            kinds: claims.kinds.clone(),
            issued_at: claims.iat,
            expires_at: claims.exp,
            issued_by: issued_by.to_string(),
            recorded_at_ms: crate::clock::now_ms(),
        }
    }
}

/// The registry could not be read or written.
#[derive(Debug, thiserror::Error)]
#[error("the token registry ({TOKENS_BUCKET}) is unavailable: {0}")]
pub struct RegistryUnavailable(String);

fn unavailable(e: impl std::fmt::Display) -> RegistryUnavailable {
    RegistryUnavailable(e.to_string())
}

/// The issued tokens, in their bucket.
#[derive(Clone, Debug)]
pub struct TokenRegistry {
    bucket: kv::Store,
}

impl TokenRegistry {
    /// Opens (or creates) the bucket.
    pub async fn open(
        js: &jetstream::Context,
        replicas: usize,
    ) -> Result<Self, RegistryUnavailable> {
        let bucket = backtrack_eventlog::buckets::kv_bucket(
            js,
            TOKENS_BUCKET,
            "Tokens Backtrack issued, by token id (never the token itself)",
            KEEP,
            replicas,
        )
        .await
        .map_err(unavailable)?;
        Ok(Self { bucket })
    }

    pub async fn record(&self, token: &TokenRecord) -> Result<(), RegistryUnavailable> {
        let value = serde_json::to_vec(token).map_err(unavailable)?;
        self.bucket
            .put(&token.token_id, value.into())
            .await
            .map_err(unavailable)?;
        Ok(())
    }

    /// The token with this id, if the deployment issued it.
    pub async fn get(&self, token_id: &str) -> Result<Option<TokenRecord>, RegistryUnavailable> {
        if super::revocations::check_id(token_id).is_err() {
            return Ok(None);
        }
        let value = self.bucket.get(token_id).await.map_err(unavailable)?;
        Ok(value.and_then(|v| serde_json::from_slice(&v).ok()))
    }

    /// Every token on record (unreadable records are left out).
    pub async fn all(&self) -> Result<Vec<TokenRecord>, RegistryUnavailable> {
        let mut keys = self.bucket.keys().await.map_err(unavailable)?;
        let mut out = Vec::new();
        while let Some(key) = keys.next().await {
            let key = key.map_err(unavailable)?;
            if let Some(token) = self.get(&key).await? {
                out.push(token);
            }
        }
        Ok(out)
    }
}
