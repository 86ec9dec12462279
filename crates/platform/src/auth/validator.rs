//! Token validation: the deployment's own HS256 tokens and, when an identity provider is
//! configured, its RS256/ES256 tokens (keys from a JWKS by `kid`); expiry, not-before,
//! issuer and audience; then the claims into a [`Caller`].

use jsonwebtoken::errors::ErrorKind;
use jsonwebtoken::{Algorithm, DecodingKey, Header, Validation};
use serde::{Deserialize, Deserializer};

use super::jwks::JwksHandle;
use super::revocations::Revocations;
use super::{AuthError, Caller, Claims, Role, SigningKey, AUDIENCE, LOCAL_ISSUER};

/// Clock skew tolerated between the minting and the validating machine.
const LEEWAY_SECS: u64 = 30;

/// An OpenID Connect provider whose tokens are accepted besides the local ones.
#[derive(Clone, Debug)]
pub struct OidcProvider {
    /// The `iss` its tokens must carry (`--jwt-issuer`).
    pub issuer: String,
    /// The `aud` its tokens must carry (`--jwt-audience`).
    pub audience: String,
    /// Its signing keys.
    pub keys: JwksHandle,
}

/// Checks bearer tokens and turns their claims into a [`Caller`].
pub struct TokenValidator {
    key: DecodingKey,
    validation: Validation,
    provider: Option<OidcProvider>,
    revocations: Option<Revocations>,
}

impl TokenValidator {
    /// Accepts tokens minted by this deployment's own `key`.
    pub fn local(key: &SigningKey) -> Self {
        let mut validation = Validation::new(Algorithm::HS256);
        validation.leeway = LEEWAY_SECS;
        validation.validate_exp = true;
        validation.set_audience(&[AUDIENCE]);
        validation.set_issuer(&[LOCAL_ISSUER]);
        validation.set_required_spec_claims(&["exp", "iss", "aud", "sub"]);
        Self {
            key: key.decoding_key(),
            validation,
            provider: None,
            revocations: None,
        }
    }

    /// Also refuses the tokens revoked in `revocations` (local and provider tokens alike,
    /// by their `jti`).
    pub fn with_revocations(mut self, revocations: Revocations) -> Self {
        self.revocations = Some(revocations);
        self
    }

    /// Also accepts RS256 and ES256 tokens of `provider`.
    pub fn with_provider(mut self, provider: OidcProvider) -> Self {
        self.provider = Some(provider);
        self
    }

    /// Validates `token` and returns who is calling.
    pub fn validate(&self, token: &str) -> Result<Caller, AuthError> {
        let (caller, token_id) = self.verify(token)?;
        let revocation = token_id
            .as_deref()
            .zip(self.revocations.as_ref())
            .and_then(|(id, revocations)| revocations.revoked(id));
        match revocation {
            Some(r) => Err(AuthError::Revoked {
                token_id: r.token_id,
                at_ms: r.revoked_at_ms,
            }),
            None => Ok(caller.with_token_id(token_id)),
        }
    }

    /// The id of a token of the deployment's own key that is still valid (signature,
    /// audience, issuer, expiry), whether or not it was revoked; `None` for anything else.
    pub fn local_token_id(&self, token: &str) -> Option<String> {
        jsonwebtoken::decode::<Claims>(token, &self.key, &self.validation)
            .ok()
            .map(|data| data.claims.jti)
    }

    /// The caller and the token's id, from a token whose signature and claims hold.
    fn verify(&self, token: &str) -> Result<(Caller, Option<String>), AuthError> {
        // Look at the header first so that `alg: none` and friends get a clear answer
        // rather than a generic parse error.
        let header = jsonwebtoken::decode_header(token).map_err(header_error)?;
        match (header.alg, &self.provider) {
            (Algorithm::HS256, provider) => {
                // A provider's key must never verify an HMAC (the RS256 → HS256 confusion):
                // say so plainly instead of failing on the signature.
                let names_provider_key = header
                    .kid
                    .as_deref()
                    .zip(provider.as_ref())
                    .is_some_and(|(kid, p)| p.keys.current().get(kid).is_some());
                if names_provider_key {
                    return Err(AuthError::UnsupportedAlgorithm(Some(
                        "HS256 with a key of the identity provider".into(),
                    )));
                }
                let data = jsonwebtoken::decode::<Claims>(token, &self.key, &self.validation)
                    .map_err(|e| token_error(e.into_kind()))?;
                let token_id = data.claims.jti.clone();
                Ok((caller_from_claims(data.claims)?, Some(token_id)))
            }
            (Algorithm::RS256 | Algorithm::ES256, Some(provider)) => {
                validate_provider_token(token, &header, provider)
            }
            (other, _) => Err(AuthError::UnsupportedAlgorithm(Some(format!("{other:?}")))),
        }
    }
}

fn validate_provider_token(
    token: &str,
    header: &Header,
    provider: &OidcProvider,
) -> Result<(Caller, Option<String>), AuthError> {
    let kid = header.kid.as_deref().ok_or(AuthError::MissingKeyId)?;
    let keys = provider.keys.current();
    let key = keys
        .get(kid)
        .ok_or_else(|| AuthError::UnknownKey(kid.to_string()))?;
    if key.algorithm != header.alg {
        return Err(AuthError::UnsupportedAlgorithm(Some(format!(
            "{:?} with key '{kid}', which verifies only {:?}",
            header.alg, key.algorithm
        ))));
    }
    let mut validation = Validation::new(key.algorithm);
    validation.leeway = LEEWAY_SECS;
    validation.validate_exp = true;
    validation.validate_nbf = true;
    validation.set_audience(&[provider.audience.as_str()]);
    validation.set_issuer(&[provider.issuer.as_str()]);
    validation.set_required_spec_claims(&["exp", "iss", "aud", "sub"]);
    let data = jsonwebtoken::decode::<ProviderClaims>(token, &key.key, &validation)
        .map_err(|e| token_error(e.into_kind()))?;
    let claims = data.claims;
    if claims.sub.is_empty() {
        return Err(AuthError::MissingClaim("sub".into()));
    }
    // A provider's `roles` claim may carry roles of other applications: those are not
    // ours to refuse the token for, so only Backtrack's role names count. The recovery
    // service's role comes only from the deployment's own key: a provider cannot grant it.
    let roles = claims
        .roles
        .iter()
        .filter_map(|name| name.parse::<Role>().ok())
        .filter(|role| *role != Role::RecoveryService)
        .collect();
    Ok((
        Caller::new(claims.sub, claims.tenants, roles, claims.kinds),
        claims.jti,
    ))
}

/// The claims Backtrack reads from a provider's token; `iss`, `aud` (a string or a
/// list), `exp` and `nbf` are checked by the validation itself.
#[derive(Deserialize)]
struct ProviderClaims {
    sub: String,
    #[serde(default, deserialize_with = "one_or_many")]
    tenants: Vec<String>,
    #[serde(default, deserialize_with = "one_or_many")]
    roles: Vec<String>,
    #[serde(default, deserialize_with = "one_or_many")]
    kinds: Vec<String>,
    /// The token's id, by which it can be revoked.
    #[serde(default)]
    jti: Option<String>,
}

/// A claim given as one string or a list of strings (providers flatten one-item lists).
fn one_or_many<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Vec<String>, D::Error> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum OneOrMany {
        One(String),
        Many(Vec<String>),
    }
    Ok(match OneOrMany::deserialize(deserializer)? {
        OneOrMany::One(one) => vec![one],
        OneOrMany::Many(many) => many,
    })
}

fn caller_from_claims(claims: Claims) -> Result<Caller, AuthError> {
    if claims.sub.is_empty() {
        return Err(AuthError::MissingClaim("sub".into()));
    }
    let roles = claims
        .roles
        .iter()
        .map(|name| name.parse::<Role>())
        .collect::<Result<Vec<_>, _>>()?;
    Ok(Caller::new(claims.sub, claims.tenants, roles, claims.kinds))
}

fn header_error(err: jsonwebtoken::errors::Error) -> AuthError {
    match err.into_kind() {
        // The header is valid JSON but its `alg` is not one jsonwebtoken knows (e.g. "none").
        ErrorKind::Json(e) if e.classify() == serde_json::error::Category::Data => {
            AuthError::UnsupportedAlgorithm(None)
        }
        other => token_error(other),
    }
}

fn token_error(kind: ErrorKind) -> AuthError {
    match kind {
        ErrorKind::ExpiredSignature => AuthError::Expired,
        ErrorKind::InvalidSignature => AuthError::BadSignature,
        ErrorKind::InvalidAudience => AuthError::WrongAudience,
        ErrorKind::InvalidIssuer => AuthError::WrongIssuer,
        ErrorKind::ImmatureSignature => AuthError::NotYetValid,
        ErrorKind::MissingRequiredClaim(claim) => AuthError::MissingClaim(claim),
        ErrorKind::InvalidAlgorithm | ErrorKind::InvalidAlgorithmName | ErrorKind::MissingAlgorithm => {
            AuthError::UnsupportedAlgorithm(None)
        }
        ErrorKind::InvalidToken => {
            AuthError::Malformed("expected three base64url segments separated by dots")
        }
        ErrorKind::Base64(_) => AuthError::Malformed("a segment is not valid base64url"),
        ErrorKind::Json(_) | ErrorKind::Utf8(_) => AuthError::Malformed(
            "the header or claims are not the expected JSON (claims need sub, tenants, roles, iss, aud, exp, iat, jti)",
        ),
        _ => AuthError::Malformed("the token could not be verified"),
    }
}

#[cfg(test)]
mod tests {
    use std::time::{Duration, SystemTime, UNIX_EPOCH};

    use jsonwebtoken::{EncodingKey, Header};

    use super::*;

    /// base64url of `{"alg":"none","typ":"JWT"}`.
    const NONE_HEADER: &str = "eyJhbGciOiJub25lIiwidHlwIjoiSldUIn0";

    fn key() -> SigningKey {
        SigningKey::generate().expect("random key")
    }

    fn now() -> u64 {
        SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .expect("clock after 1970")
            .as_secs()
    }

    fn claims() -> Claims {
        Claims {
            sub: "alice".into(),
            tenants: vec!["contoso".into()],
            roles: vec!["BackupReader".into()],
            kinds: vec![],
            iss: LOCAL_ISSUER.into(),
            aud: AUDIENCE.into(),
            exp: now() + 600,
            iat: now(),
            jti: uuid::Uuid::new_v4().to_string(),
        }
    }

    fn encode_with(alg: Algorithm, claims: &Claims, key: &EncodingKey) -> String {
        jsonwebtoken::encode(&Header::new(alg), claims, key).expect("encode")
    }

    #[test]
    fn minted_token_validates_into_caller() {
        let key = key();
        let token = key
            .mint(
                "alice",
                &["contoso".into()],
                &[Role::BackupAdministrator],
                &["user".into()],
                Duration::from_secs(60),
            )
            .expect("mint");
        let caller = TokenValidator::local(&key).validate(&token).expect("valid");
        assert_eq!(caller.subject, "alice");
        assert_eq!(caller.tenants, vec!["contoso".to_string()]);
        assert_eq!(caller.roles, vec![Role::BackupAdministrator]);
        assert_eq!(caller.kinds, vec!["user".to_string()]);
    }

    #[test]
    fn expired_token_is_rejected_beyond_the_leeway() {
        let key = key();
        let mut c = claims();
        c.exp = now() - LEEWAY_SECS - 5;
        let token = key.sign(&c).expect("sign");
        let err = TokenValidator::local(&key).validate(&token);
        assert!(matches!(err, Err(AuthError::Expired)), "{err:?}");
    }

    #[test]
    fn token_expired_within_the_leeway_is_accepted() {
        let key = key();
        let mut c = claims();
        c.exp = now() - 5;
        let token = key.sign(&c).expect("sign");
        assert!(TokenValidator::local(&key).validate(&token).is_ok());
    }

    #[test]
    fn wrong_audience_is_rejected() {
        let key = key();
        let mut c = claims();
        c.aud = "someone-else".into();
        let err = TokenValidator::local(&key).validate(&key.sign(&c).expect("sign"));
        assert!(matches!(err, Err(AuthError::WrongAudience)), "{err:?}");
    }

    #[test]
    fn wrong_issuer_is_rejected() {
        let key = key();
        let mut c = claims();
        c.iss = "evil-idp".into();
        let err = TokenValidator::local(&key).validate(&key.sign(&c).expect("sign"));
        assert!(matches!(err, Err(AuthError::WrongIssuer)), "{err:?}");
    }

    #[test]
    fn token_signed_with_another_key_is_rejected() {
        let token = key().sign(&claims()).expect("sign");
        let err = TokenValidator::local(&key()).validate(&token);
        assert!(matches!(err, Err(AuthError::BadSignature)), "{err:?}");
    }

    #[test]
    fn alg_none_token_is_rejected() {
        let key = key();
        let valid = key.sign(&claims()).expect("sign");
        let payload = valid.split('.').nth(1).expect("payload segment");
        let forged = format!("{NONE_HEADER}.{payload}.");
        let err = TokenValidator::local(&key).validate(&forged);
        assert!(
            matches!(err, Err(AuthError::UnsupportedAlgorithm(_))),
            "{err:?}"
        );
    }

    #[test]
    fn hs512_token_with_the_same_secret_is_rejected() {
        let key = key();
        let token = encode_with(Algorithm::HS512, &claims(), &key.encoding_key());
        let err = TokenValidator::local(&key).validate(&token);
        match err {
            Err(AuthError::UnsupportedAlgorithm(Some(alg))) => assert_eq!(alg, "HS512"),
            other => panic!("expected UnsupportedAlgorithm, got {other:?}"),
        }
    }

    #[test]
    fn unknown_role_is_rejected() {
        let key = key();
        let mut c = claims();
        c.roles = vec!["BackupReader".into(), "Superuser".into()];
        let err = TokenValidator::local(&key).validate(&key.sign(&c).expect("sign"));
        assert!(
            matches!(err, Err(AuthError::UnknownRole(ref r)) if r == "Superuser"),
            "{err:?}"
        );
    }

    #[test]
    fn empty_subject_is_rejected() {
        let key = key();
        let mut c = claims();
        c.sub = String::new();
        let err = TokenValidator::local(&key).validate(&key.sign(&c).expect("sign"));
        assert!(matches!(err, Err(AuthError::MissingClaim(_))), "{err:?}");
    }

    #[test]
    fn garbage_is_malformed_and_error_does_not_echo_it() {
        let key = key();
        for junk in ["", "abc", "a.b.c", "secret-looking-token.x"] {
            let err = TokenValidator::local(&key).validate(junk);
            let msg = err.expect_err("junk must fail").to_string();
            if !junk.is_empty() {
                assert!(!msg.contains(junk), "{msg}");
            }
        }
    }
}
