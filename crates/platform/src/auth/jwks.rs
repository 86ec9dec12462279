//! An OpenID Connect provider's public keys (a JWKS), by key id, and where they come
//! from: a file (`--jwks-file`) or a URL (`--jwks-url`), reloaded periodically so that a
//! provider's key rotation is picked up without a restart.
//!
//! Only keys that can verify RS256 (RSA) or ES256 (EC P-256) signatures are kept, and
//! only with a `kid`: a symmetric (`oct`) key in a JWKS is ignored, so a provider's key
//! set can never make an HS256 token acceptable.

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::{Arc, RwLock};
use std::time::Duration;

use jsonwebtoken::jwk::{AlgorithmParameters, EllipticCurve, Jwk, KeyAlgorithm, PublicKeyUse};
use jsonwebtoken::{Algorithm, DecodingKey};

use super::AuthError;
use crate::shutdown::Shutdown;

mod fetch;

/// Largest JWKS document accepted.
const MAX_JWKS_BYTES: usize = 1 << 20;

/// One verification key of the provider.
pub struct ProviderKey {
    /// The only algorithm this key verifies.
    pub algorithm: Algorithm,
    pub(super) key: DecodingKey,
}

/// The provider's usable keys by `kid`.
#[derive(Default)]
pub struct Jwks {
    keys: HashMap<String, ProviderKey>,
}

impl std::fmt::Debug for Jwks {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let mut kids: Vec<&String> = self.keys.keys().collect();
        kids.sort();
        f.debug_struct("Jwks").field("kids", &kids).finish()
    }
}

impl Jwks {
    /// Parses a JWKS document (`{"keys": [...]}`), keeping the RS256 and ES256 signing
    /// keys that have a `kid`; other keys are skipped. An error when none is left.
    pub fn parse(json: &[u8]) -> Result<Self, AuthError> {
        #[derive(serde::Deserialize)]
        struct Document {
            keys: Vec<serde_json::Value>,
        }
        let document: Document = serde_json::from_slice(json).map_err(|e| {
            AuthError::Jwks(format!("not a JWKS document ({{\"keys\": [...]}}): {e}"))
        })?;
        let mut keys = HashMap::new();
        for value in document.keys {
            let Some(kid) = value
                .get("kid")
                .and_then(|k| k.as_str())
                .map(str::to_string)
            else {
                tracing::warn!("JWKS key without a kid ignored");
                continue;
            };
            match usable_key(value) {
                Ok(key) => {
                    keys.insert(kid, key);
                }
                Err(reason) => tracing::info!(kid, reason, "JWKS key ignored"),
            }
        }
        if keys.is_empty() {
            return Err(AuthError::Jwks(
                "the key set has no RS256 (RSA) or ES256 (EC P-256) signing key with a kid".into(),
            ));
        }
        Ok(Self { keys })
    }

    /// The key named `kid`.
    pub fn get(&self, kid: &str) -> Option<&ProviderKey> {
        self.keys.get(kid)
    }

    /// Number of usable keys.
    pub fn len(&self) -> usize {
        self.keys.len()
    }

    pub fn is_empty(&self) -> bool {
        self.keys.is_empty()
    }
}

fn usable_key(value: serde_json::Value) -> Result<ProviderKey, &'static str> {
    let jwk: Jwk = serde_json::from_value(value).map_err(|_| "not a key this server reads")?;
    if matches!(
        jwk.common.public_key_use,
        Some(PublicKeyUse::Encryption | PublicKeyUse::Other(_))
    ) {
        return Err("not a signing key (use is not \"sig\")");
    }
    let algorithm = match (&jwk.algorithm, jwk.common.key_algorithm) {
        (AlgorithmParameters::RSA(_), None | Some(KeyAlgorithm::RS256)) => Algorithm::RS256,
        (AlgorithmParameters::EllipticCurve(p), None | Some(KeyAlgorithm::ES256))
            if p.curve == EllipticCurve::P256 =>
        {
            Algorithm::ES256
        }
        _ => return Err("only RS256 (RSA) and ES256 (EC P-256) keys are used"),
    };
    let key = DecodingKey::from_jwk(&jwk).map_err(|_| "its key material is not valid")?;
    Ok(ProviderKey { algorithm, key })
}

/// Where the key set comes from.
#[derive(Clone, Debug)]
pub enum JwksSource {
    File(PathBuf),
    /// An `http://` or `https://` URL (the provider's `jwks_uri`).
    Url(String),
}

impl JwksSource {
    /// Reads and parses the key set.
    pub async fn load(&self) -> Result<Jwks, AuthError> {
        let bytes = match self {
            JwksSource::File(path) => tokio::fs::read(path).await.map_err(|e| {
                AuthError::Jwks(format!("cannot read the JWKS file {}: {e}", path.display()))
            })?,
            JwksSource::Url(url) => fetch::get(url, MAX_JWKS_BYTES)
                .await
                .map_err(|e| AuthError::Jwks(format!("cannot fetch the JWKS from {url}: {e}")))?,
        };
        Jwks::parse(&bytes)
    }
}

/// The current key set, shared by the validator and the refresher. Cheap to clone.
#[derive(Clone, Default)]
pub struct JwksHandle(Arc<RwLock<Arc<Jwks>>>);

impl std::fmt::Debug for JwksHandle {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        self.current().fmt(f)
    }
}

impl JwksHandle {
    pub fn new(jwks: Jwks) -> Self {
        Self(Arc::new(RwLock::new(Arc::new(jwks))))
    }

    /// The key set in use now.
    pub fn current(&self) -> Arc<Jwks> {
        self.0.read().unwrap_or_else(|e| e.into_inner()).clone()
    }

    /// Replaces the key set.
    pub fn replace(&self, jwks: Jwks) {
        *self.0.write().unwrap_or_else(|e| e.into_inner()) = Arc::new(jwks);
    }

    /// Reloads the key set from `source` every `every` until `shutdown`. A failed reload
    /// keeps the keys in use (and says so in the log).
    pub async fn refresh(self, source: JwksSource, every: Duration, shutdown: Shutdown) {
        loop {
            tokio::select! {
                () = tokio::time::sleep(every) => {}
                () = shutdown.wait() => return,
            }
            match source.load().await {
                Ok(jwks) => {
                    tracing::debug!(keys = jwks.len(), "JWKS reloaded");
                    self.replace(jwks);
                }
                Err(e) => tracing::warn!(error = %e, "JWKS reload failed; keeping the keys in use"),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fixture() -> Vec<u8> {
        let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("../../tests/fixtures/oidc/jwks.json");
        std::fs::read(path).expect("fixture")
    }

    #[test]
    fn keeps_rsa_and_p256_signing_keys_and_ignores_symmetric_ones() {
        let jwks = Jwks::parse(&fixture()).expect("parses");
        assert_eq!(jwks.len(), 2);
        assert_eq!(
            jwks.get("test-rs256").map(|k| k.algorithm),
            Some(Algorithm::RS256)
        );
        assert_eq!(
            jwks.get("test-es256").map(|k| k.algorithm),
            Some(Algorithm::ES256)
        );
        assert!(jwks.get("test-oct").is_none());
    }

    #[test]
    fn a_set_without_usable_keys_is_an_error() {
        let only_oct = br#"{"keys": [{"kty": "oct", "kid": "k", "k": "c2VjcmV0"}]}"#;
        assert!(matches!(Jwks::parse(only_oct), Err(AuthError::Jwks(_))));
        assert!(Jwks::parse(b"[]").is_err());
    }

    #[test]
    fn encryption_keys_and_foreign_algorithms_are_skipped() {
        let doc = serde_json::json!({"keys": [
            {"kty": "RSA", "use": "enc", "kid": "enc", "n": "AQAB", "e": "AQAB"},
            {"kty": "RSA", "alg": "RS512", "kid": "rs512", "n": "AQAB", "e": "AQAB"},
            {"kty": "RSA", "alg": "RS256", "kid": "ok", "n": "AQAB", "e": "AQAB"},
            {"kty": "EC", "crv": "P-384", "kid": "p384", "x": "AQAB", "y": "AQAB"},
            {"kty": "future", "kid": "unknown"}
        ]});
        let jwks = Jwks::parse(doc.to_string().as_bytes()).expect("one usable key");
        assert_eq!(jwks.len(), 1);
        assert!(jwks.get("ok").is_some());
    }
}
