//! Token validation: HS256 only, expiry, issuer and audience, then claims into a [`Caller`].

use jsonwebtoken::errors::ErrorKind;
use jsonwebtoken::{Algorithm, DecodingKey, Validation};

use super::{AuthError, Caller, Claims, Role, SigningKey, AUDIENCE, LOCAL_ISSUER};

/// Clock skew tolerated between the minting and the validating machine.
const LEEWAY_SECS: u64 = 30;

/// Checks bearer tokens and turns their claims into a [`Caller`].
pub struct TokenValidator {
    key: DecodingKey,
    validation: Validation,
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
        }
    }

    /// Validates `token` and returns who is calling.
    pub fn validate(&self, token: &str) -> Result<Caller, AuthError> {
        // Look at the header first so that `alg: none` and friends get a clear answer
        // rather than a generic parse error.
        let header = jsonwebtoken::decode_header(token).map_err(header_error)?;
        if !self.validation.algorithms.contains(&header.alg) {
            return Err(AuthError::UnsupportedAlgorithm(Some(format!(
                "{:?}",
                header.alg
            ))));
        }
        let data = jsonwebtoken::decode::<Claims>(token, &self.key, &self.validation)
            .map_err(|e| token_error(e.into_kind()))?;
        caller_from_claims(data.claims)
    }
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
    Ok(Caller {
        subject: claims.sub,
        tenants: claims.tenants,
        roles,
        kinds: claims.kinds,
    })
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
