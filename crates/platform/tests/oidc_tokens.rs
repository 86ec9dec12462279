//! Tokens of an OpenID Connect provider: RS256 and ES256 with keys from the test JWKS in
//! `tests/fixtures/oidc`, next to the deployment's own HS256 tokens.
#![allow(clippy::unwrap_used)]

use std::path::PathBuf;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use backtrack_platform::auth::{
    AuthError, Jwks, JwksHandle, OidcProvider, Role, SigningKey, TokenValidator,
};
use base64::Engine;
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use serde_json::{json, Value};

const ISSUER: &str = "https://idp.example.test/";
const AUDIENCE: &str = "api://backtrack";

fn fixture(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../../tests/fixtures/oidc")
        .join(name)
}

/// The DER inside a PEM file.
fn pem_der(name: &str) -> Vec<u8> {
    let text = std::fs::read_to_string(fixture(name)).unwrap();
    let body: String = text.lines().filter(|l| !l.starts_with("-----")).collect();
    base64::engine::general_purpose::STANDARD
        .decode(body)
        .unwrap()
}

fn now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs()
}

fn claims() -> Value {
    json!({
        "iss": ISSUER,
        "aud": [AUDIENCE, "other-api"],
        "sub": "carol@example.test",
        "tenants": ["contoso"],
        "roles": ["BackupAdministrator", "SomeOtherAppRole", "RecoveryService"],
        "kinds": "user",
        "exp": now() + 600,
        "nbf": now() - 10,
        "iat": now(),
    })
}

fn sign(alg: Algorithm, kid: Option<&str>, claims: &Value) -> String {
    let key = match alg {
        Algorithm::RS256 => EncodingKey::from_rsa_der(&pem_der("rs256-private.pem")),
        Algorithm::ES256 => EncodingKey::from_ec_der(&pem_der("es256-private.pem")),
        other => panic!("no test key for {other:?}"),
    };
    let mut header = Header::new(alg);
    header.kid = kid.map(str::to_string);
    jsonwebtoken::encode(&header, claims, &key).unwrap()
}

fn validator() -> (SigningKey, TokenValidator) {
    let local = SigningKey::generate().unwrap();
    let jwks = Jwks::parse(&std::fs::read(fixture("jwks.json")).unwrap()).unwrap();
    let validator = TokenValidator::local(&local).with_provider(OidcProvider {
        issuer: ISSUER.into(),
        audience: AUDIENCE.into(),
        keys: JwksHandle::new(jwks),
    });
    (local, validator)
}

#[test]
fn rs256_and_es256_tokens_map_their_claims_onto_a_caller() {
    let (_, v) = validator();
    for (alg, kid) in [
        (Algorithm::RS256, "test-rs256"),
        (Algorithm::ES256, "test-es256"),
    ] {
        let caller = v.validate(&sign(alg, Some(kid), &claims())).unwrap();
        assert_eq!(caller.subject, "carol@example.test");
        assert_eq!(caller.tenants, vec!["contoso".to_string()]);
        // Roles of other applications are ignored, not fatal; the recovery service's role
        // is never taken from a provider.
        assert_eq!(caller.roles, vec![Role::BackupAdministrator]);
        assert_eq!(caller.kinds, vec!["user".to_string()]);
    }
}

#[test]
fn local_tokens_are_still_accepted_beside_the_provider() {
    let (local, v) = validator();
    let token = local
        .mint(
            "admin",
            &["*".into()],
            &[Role::GlobalAdministrator],
            &[],
            Duration::from_secs(60),
        )
        .unwrap();
    assert_eq!(v.validate(&token).unwrap().subject, "admin");
}

#[test]
fn issuer_audience_expiry_and_not_before_are_checked() {
    let (_, v) = validator();
    type IsExpected = fn(&AuthError) -> bool;
    let cases: [(&str, Value, IsExpected); 4] = [
        ("iss", json!("https://evil.example.test/"), |e| {
            matches!(e, AuthError::WrongIssuer)
        }),
        ("aud", json!("someone-else"), |e| {
            matches!(e, AuthError::WrongAudience)
        }),
        ("exp", json!(now() - 3600), |e| {
            matches!(e, AuthError::Expired)
        }),
        ("nbf", json!(now() + 3600), |e| {
            matches!(e, AuthError::NotYetValid)
        }),
    ];
    for (claim, value, expected) in cases {
        let mut c = claims();
        c[claim] = value;
        let err = v
            .validate(&sign(Algorithm::RS256, Some("test-rs256"), &c))
            .unwrap_err();
        assert!(expected(&err), "{claim}: {err:?}");
    }
}

#[test]
fn unknown_or_missing_key_ids_are_refused() {
    let (_, v) = validator();
    let err = v.validate(&sign(Algorithm::RS256, Some("rotated-away"), &claims()));
    assert!(
        matches!(err, Err(AuthError::UnknownKey(ref k)) if k == "rotated-away"),
        "{err:?}"
    );
    let err = v.validate(&sign(Algorithm::RS256, None, &claims()));
    assert!(matches!(err, Err(AuthError::MissingKeyId)), "{err:?}");
    // The EC key under the RSA key's id does not verify.
    let err = v.validate(&sign(Algorithm::ES256, Some("test-rs256"), &claims()));
    assert!(
        matches!(err, Err(AuthError::UnsupportedAlgorithm(_))),
        "{err:?}"
    );
}

#[test]
fn an_altered_provider_token_does_not_verify() {
    let (_, v) = validator();
    let token = sign(Algorithm::RS256, Some("test-rs256"), &claims());
    let mut parts: Vec<String> = token.split('.').map(str::to_string).collect();
    let mut forged = claims();
    forged["roles"] = json!(["GlobalAdministrator"]);
    parts[1] = base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(forged.to_string());
    let err = v.validate(&parts.join("."));
    assert!(matches!(err, Err(AuthError::BadSignature)), "{err:?}");
}

#[test]
fn hs256_tokens_never_verify_with_the_providers_keys() {
    let (_, v) = validator();
    // Naming an RSA key of the provider (the RS256 → HS256 confusion attack).
    let public_n = "0Lj_ZaRBgw_s5BzltUf0me347QIRasBRwzHLoKZP73";
    let mut header = Header::new(Algorithm::HS256);
    header.kid = Some("test-rs256".into());
    let confused = jsonwebtoken::encode(
        &header,
        &claims(),
        &EncodingKey::from_secret(public_n.as_bytes()),
    )
    .unwrap();
    let err = v.validate(&confused);
    assert!(
        matches!(err, Err(AuthError::UnsupportedAlgorithm(_))),
        "{err:?}"
    );
    // Signed with the symmetric key the JWKS lists: that key is never used.
    header.kid = Some("test-oct".into());
    let with_oct = jsonwebtoken::encode(
        &header,
        &claims(),
        &EncodingKey::from_secret(b"not-a-key-backtrack-should-use-0123456789"),
    )
    .unwrap();
    assert!(v.validate(&with_oct).is_err());
}

#[test]
fn provider_tokens_are_refused_without_a_provider() {
    let local = TokenValidator::local(&SigningKey::generate().unwrap());
    let err = local.validate(&sign(Algorithm::RS256, Some("test-rs256"), &claims()));
    assert!(
        matches!(err, Err(AuthError::UnsupportedAlgorithm(_))),
        "{err:?}"
    );
}

#[tokio::test]
async fn revoked_tokens_are_refused_by_their_id_provider_and_local_alike() {
    use backtrack_platform::auth::{Revocation, Revocations};
    let (local, v) = validator();
    let revocations = Revocations::default();
    let v = v.with_revocations(revocations.clone());
    let mut with_id = claims();
    with_id["jti"] = json!("idp-token-1");
    let provider = sign(Algorithm::RS256, Some("test-rs256"), &with_id);
    let without_id = sign(Algorithm::RS256, Some("test-rs256"), &claims());
    let issued = local
        .issue(
            "ci",
            &["*".into()],
            &[Role::BackupReader],
            &[],
            Duration::from_secs(60),
        )
        .unwrap();
    for token in [&provider, &without_id, &issued.token] {
        assert!(v.validate(token).is_ok());
    }
    for id in ["idp-token-1", issued.claims.jti.as_str()] {
        revocations
            .revoke(Revocation {
                token_id: id.into(),
                revoked_at_ms: 1_796_640_789_345,
                revoked_by: "admin".into(),
                reason: "leaked".into(),
            })
            .await
            .unwrap();
    }
    for token in [&provider, &issued.token] {
        let e = v.validate(token).unwrap_err();
        assert!(matches!(e, AuthError::Revoked { .. }), "{e}");
        let message = e.to_string();
        assert!(
            message.contains(" was revoked at 2026-12-07T10:53:09.345Z"),
            "{message}"
        );
        assert!(
            !message.contains("leaked"),
            "the reason is not the holder's to read: {message}"
        );
    }
    assert!(
        v.validate(&without_id).is_ok(),
        "a token without an id cannot be revoked"
    );
}
