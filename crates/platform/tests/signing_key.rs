//! The signing key file and tokens through the public API only.

use std::os::unix::fs::PermissionsExt;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use backtrack_platform::auth::{
    AuthError, Claims, Role, SigningKey, TokenValidator, AUDIENCE, LOCAL_ISSUER,
};

fn now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .expect("clock after 1970")
        .as_secs()
}

fn mint(key: &SigningKey, tenants: &[&str], roles: &[Role]) -> String {
    let tenants: Vec<String> = tenants.iter().map(|t| t.to_string()).collect();
    key.mint("ops", &tenants, roles, &[], Duration::from_secs(300))
        .expect("mint")
}

#[test]
fn key_file_is_created_owner_only_and_reloads_identically() {
    let dir = tempfile::tempdir().expect("temp dir");
    let path = dir.path().join("nested").join("signing.key");

    let (created, was_created) = SigningKey::load_or_create(&path).expect("create");
    assert!(was_created);
    let mode = std::fs::metadata(&path)
        .expect("metadata")
        .permissions()
        .mode();
    assert_eq!(mode & 0o777, 0o600, "mode {mode:o}");
    let text = std::fs::read_to_string(&path).expect("read");
    assert_eq!(text.trim().len(), 64, "32 bytes, hex-encoded");

    let (reloaded, was_created) = SigningKey::load_or_create(&path).expect("reload");
    assert!(!was_created);
    let loaded = SigningKey::load(&path).expect("load");

    // Identical keys accept each other's tokens.
    let token = mint(&created, &["contoso"], &[Role::BackupReader]);
    assert!(TokenValidator::local(&reloaded).validate(&token).is_ok());
    assert!(TokenValidator::local(&loaded).validate(&token).is_ok());
    assert_eq!(std::fs::read_to_string(&path).expect("read again"), text);
    // No temporary files are left behind.
    let entries = std::fs::read_dir(path.parent().expect("parent"))
        .expect("list")
        .count();
    assert_eq!(entries, 1);
}

#[test]
fn short_or_non_hex_key_files_are_refused_not_replaced() {
    let dir = tempfile::tempdir().expect("temp dir");
    let path = dir.path().join("signing.key");
    std::fs::write(&path, "abcd\n").expect("write");
    let err = SigningKey::load_or_create(&path).expect_err("too short");
    assert!(matches!(err, AuthError::KeyFormat { .. }), "{err}");
    std::fs::write(&path, "not hex at all").expect("write");
    assert!(matches!(
        SigningKey::load(&path),
        Err(AuthError::KeyFormat { .. })
    ));
    assert_eq!(
        std::fs::read_to_string(&path).expect("read"),
        "not hex at all"
    );
}

#[test]
fn missing_key_file_is_an_error_for_load() {
    let dir = tempfile::tempdir().expect("temp dir");
    let err = SigningKey::load(&dir.path().join("absent.key")).expect_err("absent");
    assert!(err.to_string().contains("absent.key"), "{err}");
}

#[test]
fn mint_then_validate_round_trips() {
    let key = SigningKey::generate().expect("key");
    let token = key
        .mint(
            "backup-operator",
            &["contoso".into(), "fabrikam".into()],
            &[Role::BackupAdministrator, Role::BackupReader],
            &["group".into()],
            Duration::from_secs(3600),
        )
        .expect("mint");
    let caller = TokenValidator::local(&key).validate(&token).expect("valid");
    assert_eq!(caller.subject, "backup-operator");
    assert_eq!(caller.tenants, vec!["contoso", "fabrikam"]);
    assert_eq!(
        caller.roles,
        vec![Role::BackupAdministrator, Role::BackupReader]
    );
    assert_eq!(caller.kinds, vec!["group"]);
    assert!(caller.can_access_tenant("fabrikam"));
    assert!(!caller.can_access_tenant("tailspin"));
}

#[test]
fn wildcard_token_reaches_every_tenant() {
    let key = SigningKey::generate().expect("key");
    let caller = TokenValidator::local(&key)
        .validate(&mint(&key, &["*"], &[Role::GlobalAdministrator]))
        .expect("valid");
    assert!(caller.can_access_tenant("contoso"));
    assert!(caller.require_tenant("any-tenant-at-all").is_ok());
    assert!(caller.has_role(Role::DirectoryWriter));
}

#[test]
fn forged_claims_are_rejected() {
    let key = SigningKey::generate().expect("key");
    let validator = TokenValidator::local(&key);
    let base = Claims {
        sub: "mallory".into(),
        tenants: vec!["contoso".into()],
        roles: vec!["BackupReader".into()],
        kinds: vec![],
        iss: LOCAL_ISSUER.into(),
        aud: AUDIENCE.into(),
        exp: now() + 600,
        iat: now(),
        jti: "00000000-0000-4000-8000-000000000000".into(),
    };
    let expired = Claims {
        exp: now() - 3600,
        iat: now() - 7200,
        ..base.clone()
    };
    let audience = Claims {
        aud: "graph.microsoft.com".into(),
        ..base.clone()
    };
    let issuer = Claims {
        iss: "https://login.example.com".into(),
        ..base.clone()
    };
    let role = Claims {
        roles: vec!["Root".into()],
        ..base.clone()
    };
    let sign = |c: &Claims| key.sign(c).expect("sign");
    assert!(matches!(
        validator.validate(&sign(&expired)),
        Err(AuthError::Expired)
    ));
    assert!(matches!(
        validator.validate(&sign(&audience)),
        Err(AuthError::WrongAudience)
    ));
    assert!(matches!(
        validator.validate(&sign(&issuer)),
        Err(AuthError::WrongIssuer)
    ));
    assert!(matches!(
        validator.validate(&sign(&role)),
        Err(AuthError::UnknownRole(_))
    ));
    let other = SigningKey::generate().expect("other key");
    assert!(matches!(
        validator.validate(&other.sign(&base).expect("sign")),
        Err(AuthError::BadSignature)
    ));
    assert!(validator.validate(&sign(&base)).is_ok());
}

#[test]
fn signing_key_debug_hides_the_secret() {
    let dir = tempfile::tempdir().expect("temp dir");
    let path = dir.path().join("k");
    let (key, _) = SigningKey::load_or_create(&path).expect("create");
    let secret = std::fs::read_to_string(&path).expect("read");
    assert!(!format!("{key:?}").contains(secret.trim()));
}
