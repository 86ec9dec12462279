//! Revoked tokens: a JetStream KV bucket that every serving process follows, so a token
//! revoked through any process is refused by all of them.
//!
//! A revocation names the token by its id (`jti`). It is kept as long as the longest-lived
//! token it could name ([`MAX_TTL`](super::token_api::MAX_TTL), plus a day), then the
//! bucket drops it: by then the token has expired anyway. Each process loads the bucket
//! before it serves (the watch is opened first, so nothing put meanwhile is missed) and
//! then applies every change as it comes; a watch that breaks is opened again.

use std::collections::HashMap;
use std::sync::{Arc, RwLock};
use std::time::Duration;

use async_nats::jetstream::{self, kv};
use futures::StreamExt;
use serde::{Deserialize, Serialize};

use crate::shutdown::Shutdown;

/// The bucket: key = token id, value = a [`Revocation`] as JSON.
pub const REVOCATIONS_BUCKET: &str = "bt-token-revocations";

/// How long a revocation (or a record of `bt-tokens`) is kept: the longest a token may
/// live, and a day of slack.
pub(crate) const KEEP: Duration = Duration::from_secs(super::token_api::MAX_TTL.as_secs() + 86_400);

/// One revoked token.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Revocation {
    pub token_id: String,
    pub revoked_at_ms: i64,
    /// The subject of the token that revoked it.
    pub revoked_by: String,
    #[serde(default)]
    pub reason: String,
}

/// Why a revocation could not be stored or loaded.
#[derive(Debug, thiserror::Error)]
pub enum RevocationError {
    #[error("a token id is 1 to 128 letters, digits, '-' or '_' (the `jti` of the token, as `token create` prints it); got {0:?}")]
    InvalidId(String),
    #[error("the revocation list ({REVOCATIONS_BUCKET}) is unavailable: {0}")]
    Unavailable(String),
}

/// The revoked tokens this process knows of. Cloning shares the list.
#[derive(Clone, Debug, Default)]
pub struct Revocations {
    revoked: Arc<RwLock<HashMap<String, Revocation>>>,
    bucket: Option<kv::Store>,
}

impl Revocations {
    /// Opens (or creates) the bucket, loads every revocation in it and keeps following it
    /// until `shutdown`.
    pub async fn follow(
        js: &jetstream::Context,
        replicas: usize,
        shutdown: Shutdown,
    ) -> Result<Self, RevocationError> {
        let bucket = backtrack_eventlog::buckets::kv_bucket(
            js,
            REVOCATIONS_BUCKET,
            "Revoked Backtrack tokens, by token id (jti)",
            KEEP,
            replicas,
        )
        .await
        .map_err(|e| RevocationError::Unavailable(e.to_string()))?;
        let this = Self {
            revoked: Arc::default(),
            bucket: Some(bucket.clone()),
        };
        // Watch first, then load: a revocation put in between arrives through the watch.
        let watch = bucket.watch_all().await.map_err(unavailable)?;
        this.load(&bucket).await?;
        this.count(this.read().len());
        tokio::spawn(this.clone().keep_following(bucket, watch, shutdown));
        Ok(this)
    }

    /// The revocation of `token_id`, if it was revoked.
    pub fn revoked(&self, token_id: &str) -> Option<Revocation> {
        self.read().get(token_id).cloned()
    }

    /// Stores `revocation` for every process, and knows of it here at once. A token
    /// revoked before keeps its first revocation, which is returned with `false`.
    pub async fn revoke(
        &self,
        revocation: Revocation,
    ) -> Result<(Revocation, bool), RevocationError> {
        check_id(&revocation.token_id)?;
        if let Some(earlier) = self.revoked(&revocation.token_id) {
            return Ok((earlier, false));
        }
        if let Some(bucket) = &self.bucket {
            let value = serde_json::to_vec(&revocation).unwrap_or_default();
            // `create` fails when another process revoked it first: keep that one.
            if let Err(e) = bucket.create(&revocation.token_id, value.into()).await {
                match bucket
                    .get(&revocation.token_id)
                    .await
                    .map_err(unavailable)?
                {
                    Some(stored) => {
                        if let Ok(earlier) = serde_json::from_slice::<Revocation>(&stored) {
                            self.insert(earlier.clone());
                            return Ok((earlier, false));
                        }
                        return Err(unavailable(e));
                    }
                    None => return Err(unavailable(e)),
                }
            }
        }
        self.insert(revocation.clone());
        Ok((revocation, true))
    }

    async fn load(&self, bucket: &kv::Store) -> Result<(), RevocationError> {
        let mut keys = bucket.keys().await.map_err(unavailable)?;
        while let Some(key) = keys.next().await {
            let key = key.map_err(unavailable)?;
            if let Some(value) = bucket.get(&key).await.map_err(unavailable)? {
                self.apply(&key, kv::Operation::Put, &value);
            }
        }
        Ok(())
    }

    async fn keep_following(self, bucket: kv::Store, mut watch: kv::Watch, shutdown: Shutdown) {
        loop {
            tokio::select! {
                () = shutdown.wait() => return,
                next = watch.next() => match next {
                    Some(Ok(entry)) => self.apply(&entry.key, entry.operation, &entry.value),
                    other => {
                        if let Some(Err(e)) = other {
                            tracing::warn!(error = %e, "the token revocation watch broke; opening it again");
                        }
                        watch = loop {
                            tokio::select! {
                                () = shutdown.wait() => return,
                                () = tokio::time::sleep(Duration::from_secs(1)) => {}
                            }
                            match bucket.watch_all().await {
                                Ok(w) => {
                                    if let Err(e) = self.load(&bucket).await {
                                        tracing::warn!(error = %e, "cannot reload the token revocations");
                                    }
                                    break w;
                                }
                                Err(e) => tracing::warn!(error = %e, "cannot watch the token revocations"),
                            }
                        };
                    }
                },
            }
        }
    }

    fn apply(&self, key: &str, operation: kv::Operation, value: &[u8]) {
        match operation {
            kv::Operation::Put => match serde_json::from_slice::<Revocation>(value) {
                Ok(revocation) => self.insert(revocation),
                // Unreadable: still refuse the token it names.
                Err(_) => self.insert(Revocation {
                    token_id: key.to_string(),
                    revoked_at_ms: 0,
                    revoked_by: String::new(),
                    reason: String::new(),
                }),
            },
            kv::Operation::Delete | kv::Operation::Purge => {
                let mut revoked = self.revoked.write().unwrap_or_else(|e| e.into_inner());
                revoked.remove(key);
                self.count(revoked.len());
            }
        }
    }

    fn insert(&self, revocation: Revocation) {
        let mut revoked = self.revoked.write().unwrap_or_else(|e| e.into_inner());
        revoked.insert(revocation.token_id.clone(), revocation);
        self.count(revoked.len());
    }

    /// The process's gauge, for a list that follows the bucket (not a list of a test).
    fn count(&self, known: usize) {
        if self.bucket.is_some() {
            crate::metrics::REVOKED_TOKENS.set(&[], known as f64);
        }
    }

    fn read(&self) -> std::sync::RwLockReadGuard<'_, HashMap<String, Revocation>> {
        self.revoked.read().unwrap_or_else(|e| e.into_inner())
    }
}

/// A token id fit to be a key of the bucket.
pub fn check_id(token_id: &str) -> Result<(), RevocationError> {
    let fits = !token_id.is_empty()
        && token_id.len() <= 128
        && token_id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_');
    if fits {
        Ok(())
    } else {
        Err(RevocationError::InvalidId(
            token_id.chars().take(140).collect(),
        ))
    }
}

fn unavailable(e: impl std::fmt::Display) -> RevocationError {
    RevocationError::Unavailable(e.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn token_ids_are_checked_before_they_become_keys() {
        assert!(check_id("0b9e2c7e-41a2-4c0e-9a55-0d7f1e3c2b10").is_ok());
        assert!(check_id("abc_DEF-123").is_ok());
        for bad in ["", "a.b", "a b", "a>", "*", &"x".repeat(129)] {
            let e = check_id(bad).expect_err(bad).to_string();
            assert!(e.contains("token id"), "{e}");
        }
    }

    #[test]
    fn an_unreadable_revocation_still_refuses_its_token() {
        let revocations = Revocations::default();
        revocations.apply("t1", kv::Operation::Put, b"not json");
        assert!(revocations.revoked("t1").is_some());
        revocations.apply("t1", kv::Operation::Delete, b"");
        assert!(revocations.revoked("t1").is_none());
    }
}
