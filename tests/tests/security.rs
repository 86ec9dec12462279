//! The threat model, end to end against one `backtrack up` that also trusts an OIDC
//! provider (the test JWKS in `tests/fixtures/oidc`): missing, expired, forged, `alg:
//! none`, wrong-audience and unknown-key tokens are UNAUTHENTICATED; a token for another
//! tenant, a reader starting a recovery, a kind-scoped administrator recovering another
//! kind and a backup administrator taking a protected action (hard delete, whole-tenant
//! recovery) are PERMISSION_DENIED. Each refusal leaves one `security.accessDenied`
//! record: under the tenant asked for when the caller is known, else under
//! `_unauthenticated`. The provider's RS256 and ES256 tokens work with their roles. Only
//! the recovery service's own tokens may apply recovery batches through the directory.
#![allow(clippy::unwrap_used)]

use std::path::PathBuf;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use backtrack_e2e::{audit_records, id, Backtrack};
use backtrack_platform::auth::{Claims, SigningKey, AUDIENCE, LOCAL_ISSUER};
use backtrack_proto::v1;
use backtrack_proto::v1::backup_service_client::BackupServiceClient;
use backtrack_test_support::{eventually, NatsServer};
use base64::Engine;
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use serde_json::{json, Value};
use tonic::Code;

const A: &str = "sa";
const B: &str = "sb";
const ISSUER: &str = "https://idp.example.test/";
const JWT_AUDIENCE: &str = "api://backtrack";
const UNAUTHENTICATED: &str = "_unauthenticated";
const LIST_BACKUPS: &str = "/backtrack.v1.BackupService/ListBackups";

fn fixture(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("fixtures/oidc")
        .join(name)
}

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

/// A token of the test identity provider.
fn provider_token(alg: Algorithm, kid: &str, claims: Value) -> String {
    let key = match alg {
        Algorithm::RS256 => EncodingKey::from_rsa_der(&pem_der("rs256-private.pem")),
        _ => EncodingKey::from_ec_der(&pem_der("es256-private.pem")),
    };
    let mut header = Header::new(alg);
    header.kid = Some(kid.into());
    jsonwebtoken::encode(&header, &claims, &key).unwrap()
}

fn provider_claims(sub: &str, roles: Value) -> Value {
    json!({
        "iss": ISSUER, "aud": JWT_AUDIENCE, "sub": sub, "tenants": [A], "roles": roles,
        "exp": now() + 600, "nbf": now() - 5, "iat": now(),
    })
}

fn local_claims(exp: u64) -> Claims {
    Claims {
        sub: "mallory".into(),
        tenants: vec!["*".into()],
        roles: vec!["GlobalAdministrator".into()],
        kinds: vec![],
        iss: LOCAL_ISSUER.into(),
        aud: AUDIENCE.into(),
        exp,
        iat: now(),
        jti: uuid::Uuid::new_v4().to_string(),
    }
}

/// `ListBackups` of `tenant` with exactly this `authorization` header (or none).
async fn list_backups(b: &Backtrack, tenant: &str, authorization: Option<&str>) -> Code {
    let mut client = BackupServiceClient::connect(format!("http://127.0.0.1:{}", b.grpc_port))
        .await
        .unwrap();
    let mut request = tonic::Request::new(v1::ListBackupsRequest {
        tenant: tenant.into(),
        all: false,
    });
    if let Some(value) = authorization {
        request
            .metadata_mut()
            .insert("authorization", value.parse().unwrap());
    }
    match client.list_backups(request).await {
        Ok(_) => Code::Ok,
        Err(status) => status.code(),
    }
}

/// The access-denied records of `tenant`.
async fn denials(nats: &async_nats::Client, tenant: &str) -> Vec<v1::AuditRecord> {
    audit_records(nats, &format!("bt.audit.{tenant}.security"))
        .await
        .unwrap()
        .into_iter()
        .filter(|r| r.action == "security.accessDenied")
        .collect()
}

/// Waits for exactly one more denial under `tenant` than `before`, and returns it.
async fn next_denial(nats: &async_nats::Client, tenant: &str, before: usize) -> v1::AuditRecord {
    let mut all = eventually(
        "the access-denied record",
        Duration::from_secs(10),
        || async {
            let all = denials(nats, tenant).await;
            (all.len() > before).then_some(all)
        },
    )
    .await
    .unwrap();
    assert_eq!(all.len(), before + 1, "one record per refusal: {all:?}");
    all.pop().unwrap()
}

fn reason(r: &v1::AuditRecord) -> String {
    r.result.clone().unwrap_or_default().reason
}

fn subject(r: &v1::AuditRecord) -> String {
    r.actor.clone().unwrap_or_default().subject
}

#[tokio::test(flavor = "multi_thread")]
async fn refused_calls_get_the_right_status_and_each_leaves_an_access_denied_record() {
    let nats = NatsServer::start().await.unwrap();
    let jwks = fixture("jwks.json");
    let b = Backtrack::start_with(
        Some(nats.url()),
        &[
            "--jwt-issuer",
            ISSUER,
            "--jwt-audience",
            JWT_AUDIENCE,
            "--jwks-file",
            jwks.to_str().unwrap(),
        ],
    )
    .await
    .unwrap();
    let client = nats.client().await.unwrap();
    for tenant in [A, B] {
        b.json(&["tenant", "create", tenant]).unwrap();
    }
    let doomed = id(&b
        .create(
            A,
            "user",
            &["displayName=Doomed", "userPrincipalName=doomed@sa.test"],
        )
        .unwrap());
    let backup = id(&b.json(&["backup", "create", "--tenant", A]).unwrap());
    b.json(&["dir", "delete", "--tenant", A, &doomed]).unwrap();
    let everything = id(&b
        .json(&["diff", "create", "--tenant", A, "--from", &backup, "--wait"])
        .unwrap());

    // Unauthenticated: no caller is known, so the records go to `_unauthenticated`.
    let signing_key = SigningKey::load(&b.data().join("signing.key")).unwrap();
    let expired = signing_key.sign(&local_claims(now() - 3600)).unwrap();
    let forged = SigningKey::generate()
        .unwrap()
        .sign(&local_claims(now() + 600))
        .unwrap();
    let valid = signing_key.sign(&local_claims(now() + 600)).unwrap();
    let payload = valid.split('.').nth(1).unwrap();
    let alg_none = format!("eyJhbGciOiJub25lIiwidHlwIjoiSldUIn0.{payload}.");
    let mut wrong_audience = provider_claims("oidc-reader", json!(["BackupReader"]));
    wrong_audience["aud"] = json!("someone-else");
    let wrong_audience = provider_token(Algorithm::RS256, "test-rs256", wrong_audience);
    let unknown_key = provider_token(
        Algorithm::RS256,
        "rotated-away",
        provider_claims("oidc-reader", json!(["BackupReader"])),
    );
    let mut oct_header = Header::new(Algorithm::HS256);
    oct_header.kid = Some("test-oct".into());
    let with_jwks_secret = jsonwebtoken::encode(
        &oct_header,
        &provider_claims("oidc-reader", json!(["GlobalAdministrator"])),
        &EncodingKey::from_secret(b"not-a-key-backtrack-should-use-0123456789"),
    )
    .unwrap();
    let cases: [(&str, Option<String>, &str); 7] = [
        ("missing token", None, "missing bearer token"),
        ("expired token", Some(expired), "expired"),
        ("wrongly signed token", Some(forged), "signature"),
        ("alg: none", Some(alg_none), "algorithm"),
        ("wrong audience", Some(wrong_audience), "audience"),
        ("unknown key id", Some(unknown_key), "key set"),
        (
            "HS256 with the JWKS's secret",
            Some(with_jwks_secret),
            "signature",
        ),
    ];
    for (case, token, why) in cases {
        let before = denials(&client, UNAUTHENTICATED).await.len();
        let header = token.map(|t| format!("Bearer {t}"));
        assert_eq!(
            list_backups(&b, A, header.as_deref()).await,
            Code::Unauthenticated,
            "{case}"
        );
        let record = next_denial(&client, UNAUTHENTICATED, before).await;
        assert!(reason(&record).contains(why), "{case}: {}", reason(&record));
        assert_eq!(
            subject(&record),
            "",
            "{case}: an unverified subject is not recorded"
        );
        assert_eq!(record.target.clone().unwrap_or_default().id, LIST_BACKUPS);
        assert!(record
            .actor
            .clone()
            .unwrap_or_default()
            .source_address
            .starts_with("127.0.0.1:"));
    }

    // Permission denied: the caller is known, the record goes to the tenant asked for.
    let token = |subject: &str, role: &str, kinds: &[&str]| {
        let mut args = vec![
            "token",
            "create",
            "--tenant",
            A,
            "--role",
            role,
            "--subject",
            subject,
            "--ttl",
            "1h",
        ];
        for k in kinds {
            args.extend(["--kind", k]);
        }
        let out = b.cli(&args);
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).trim().to_string()
    };
    let reader = token("reader-a", "BackupReader", &[]);
    let user_admin = token("user-admin", "BackupAdministrator", &["user"]);
    let backup_admin = token("backup-admin", "BackupAdministrator", &[]);
    let from_backup = ["recover", "--tenant", A, "--from", backup.as_str(), "--yes"];
    let mut other_kind = from_backup.to_vec();
    other_kind.extend(["--kind", "group"]);
    let cases: [(&str, &String, Vec<&str>, &str, &str); 6] = [
        (
            "another tenant's backups",
            &reader,
            vec!["backup", "list", "--tenant", B],
            B,
            "tenant 'sb'",
        ),
        (
            "a reader starting a recovery",
            &reader,
            from_backup.to_vec(),
            A,
            "starting recoveries",
        ),
        (
            "a user admin recovering groups",
            &user_admin,
            other_kind,
            A,
            "kind 'group'",
        ),
        (
            "a backup admin purging",
            &backup_admin,
            vec!["dir", "purge", "--tenant", A, doomed.as_str(), "--yes"],
            A,
            "protected action",
        ),
        (
            "a backup admin recovering the whole tenant",
            &backup_admin,
            from_backup.to_vec(),
            A,
            "protected action",
        ),
        (
            "a backup admin recovering from a report over everything",
            &backup_admin,
            vec![
                "recover",
                "--tenant",
                A,
                "--report",
                everything.as_str(),
                "--yes",
            ],
            A,
            "protected action",
        ),
    ];
    for (case, token, args, tenant, why) in cases {
        let before = denials(&client, tenant).await.len();
        let out = b.cli_with_env(&args, &[("BACKTRACK_TOKEN", token)]);
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(3), "{case}: {stderr}");
        assert!(
            stderr.contains("PERMISSION_DENIED") && stderr.contains(why),
            "{case}: {stderr}"
        );
        let record = next_denial(&client, tenant, before).await;
        assert!(reason(&record).contains(why), "{case}: {}", reason(&record));
        let expected_subject = if token == &reader {
            "reader-a"
        } else if token == &user_admin {
            "user-admin"
        } else {
            "backup-admin"
        };
        assert_eq!(subject(&record), expected_subject, "{case}");
        // The token presented, by its id (`jti`): what `token revoke` takes.
        let claims: Value = serde_json::from_slice(
            &base64::engine::general_purpose::URL_SAFE_NO_PAD
                .decode(token.split('.').nth(1).unwrap())
                .unwrap(),
        )
        .unwrap();
        assert_eq!(
            serde_json::from_str::<Value>(&record.details_json).unwrap(),
            json!({"code": "PERMISSION_DENIED", "tokenId": claims["jti"]}),
            "{case}"
        );
    }
    // What a backup administrator may still do: recover part of the tenant, plan it all.
    let as_backup_admin =
        |args: &[&str]| b.cli_with_env(args, &[("BACKTRACK_TOKEN", &backup_admin)]);
    let mut users = from_backup.to_vec();
    users.extend(["--kind", "user", "--wait"]);
    let out = as_backup_admin(&users);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let out = as_backup_admin(&["recover", "--tenant", A, "--from", &backup, "--dry-run"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );

    // The provider's tokens carry their roles: an RS256 reader reads but may not write,
    // an ES256 administrator takes a backup (recorded with its subject and roles).
    let oidc_reader = provider_token(
        Algorithm::RS256,
        "test-rs256",
        provider_claims("oidc-reader", json!(["BackupReader"])),
    );
    let out = b.cli_with_env(
        &["backup", "list", "--tenant", A],
        &[("BACKTRACK_TOKEN", &oidc_reader)],
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let before = denials(&client, A).await.len();
    let out = b.cli_with_env(
        &["backup", "create", "--tenant", A],
        &[("BACKTRACK_TOKEN", &oidc_reader)],
    );
    assert_eq!(out.status.code(), Some(3));
    let record = next_denial(&client, A, before).await;
    assert_eq!(subject(&record), "oidc-reader");
    assert_eq!(
        record.actor.clone().unwrap_or_default().roles,
        vec!["BackupReader".to_string()]
    );
    let mut admin_claims = provider_claims("oidc-admin", json!("BackupAdministrator"));
    admin_claims["tenants"] = json!(A);
    let oidc_admin = provider_token(Algorithm::ES256, "test-es256", admin_claims);
    let out = b.cli_with_env(
        &["backup", "create", "--tenant", A],
        &[("BACKTRACK_TOKEN", &oidc_admin)],
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let taken = id(&serde_json::from_slice(&out.stdout).unwrap());
    let records = audit_records(&client, &format!("bt.audit.{A}.backup"))
        .await
        .unwrap();
    let created: Vec<_> = records
        .iter()
        .filter(|r| {
            r.action == "backup.created" && r.target.clone().unwrap_or_default().id == taken
        })
        .collect();
    assert_eq!(created.len(), 1);
    let actor = created[0].actor.clone().unwrap_or_default();
    assert_eq!(actor.subject, "oidc-admin");
    assert_eq!(actor.roles, vec!["BackupAdministrator".to_string()]);
    // Local tokens keep working beside the provider's; every refusal above was counted
    // once, and nothing else was refused.
    assert_eq!(
        list_backups(&b, A, Some(&format!("Bearer {}", b.token().unwrap()))).await,
        Code::Ok
    );
    assert_eq!(denials(&client, UNAUTHENTICATED).await.len(), 7);
    assert_eq!(denials(&client, B).await.len(), 1);
    assert_eq!(denials(&client, A).await.len(), 6);
}

/// `ApplyRecoveryBatch` writes events in the name of whoever asked for a recovery, so only
/// the recovery service's own tokens (role `RecoveryService`, minted from the deployment's
/// key) may call it: a directory writer is PERMISSION_DENIED, another tenant too, a
/// malformed batch is INVALID_ARGUMENT; a valid batch is applied once, however often it
/// is sent, under the requester's name and the job's correlation id.
#[tokio::test(flavor = "multi_thread")]
async fn only_the_recovery_service_applies_recovery_batches() {
    use backtrack_domain::batch::{Met, PlannedOutcome, StepResult};
    use backtrack_platform::auth::Role;
    use backtrack_proto::v1::directory_service_client::DirectoryServiceClient;

    let b = Backtrack::start(None).await.unwrap();
    b.json(&["tenant", "create", A]).unwrap();
    let user = id(&b
        .create(
            A,
            "user",
            &["displayName=Before", "userPrincipalName=before@sa.test"],
        )
        .unwrap());
    let key = SigningKey::load(&b.data().join("signing.key")).unwrap();
    let token = |roles: &[Role]| {
        key.mint(
            "service:recovery",
            &[A.to_string()],
            roles,
            &[],
            Duration::from_secs(300),
        )
        .unwrap()
    };
    let steps = json!([{
        "mutationId": "job-1-0",
        "checkVersion": false,
        "operation": {
            "kind": "user",
            "id": user,
            "changeType": "modified",
            "action": {"type": "setAttributes", "set": {"displayName": "After"}, "unset": []},
            "plannedVersion": 0
        }
    }])
    .to_string();
    let call = |token: String, tenant: &str, steps_json: Vec<u8>| {
        let request = v1::ApplyRecoveryBatchRequest {
            tenant: tenant.into(),
            job_id: "job-1".into(),
            requested_by: "alice@sa.test".into(),
            steps_json,
            skip_on_conflict: false,
            skipped_ids: vec![],
        };
        let address = format!("http://127.0.0.1:{}", b.grpc_port);
        async move {
            let mut client = DirectoryServiceClient::connect(address).await.unwrap();
            let mut request = tonic::Request::new(request);
            request
                .metadata_mut()
                .insert("authorization", format!("Bearer {token}").parse().unwrap());
            client.apply_recovery_batch(request).await
        }
    };

    let writer = call(
        token(&[Role::DirectoryWriter]),
        A,
        steps.clone().into_bytes(),
    )
    .await
    .unwrap_err();
    assert_eq!(writer.code(), Code::PermissionDenied, "{writer:?}");
    assert!(writer.message().contains("RecoveryService"), "{writer:?}");
    let other_tenant = call(
        token(&[Role::RecoveryService]),
        B,
        steps.clone().into_bytes(),
    )
    .await
    .unwrap_err();
    assert_eq!(
        other_tenant.code(),
        Code::PermissionDenied,
        "{other_tenant:?}"
    );
    let malformed = call(
        token(&[Role::RecoveryService]),
        A,
        b"[{\"mutationId\":".to_vec(),
    )
    .await
    .unwrap_err();
    assert_eq!(malformed.code(), Code::InvalidArgument, "{malformed:?}");
    assert!(malformed.message().contains("steps_json"), "{malformed:?}");
    assert_eq!(
        b.json(&["dir", "get", "--tenant", A, &user]).unwrap()["displayName"],
        "Before",
        "a refused batch changed nothing"
    );

    let results = |response: v1::ApplyRecoveryBatchResponse| {
        serde_json::from_slice::<Vec<StepResult>>(&response.results_json).unwrap()
    };
    let first = call(
        token(&[Role::RecoveryService]),
        A,
        steps.clone().into_bytes(),
    )
    .await
    .unwrap()
    .into_inner();
    assert!(first.applied_through_sequence > 0);
    let first = results(first);
    assert_eq!(first.len(), 1);
    assert_eq!(first[0].outcome, PlannedOutcome::Applied { events: 1 });
    assert_eq!(first[0].decision.met, Met::Run);
    assert_eq!(first[0].decision.before, r#"{"displayName":"Before"}"#);
    // Sent again (a retry after a lost answer): the log already holds the mutation.
    let again = results(
        call(token(&[Role::RecoveryService]), A, steps.into_bytes())
            .await
            .unwrap()
            .into_inner(),
    );
    assert_eq!(again[0].outcome, PlannedOutcome::AlreadyApplied);
    let history = b.json(&["dir", "history", "--tenant", A, &user]).unwrap();
    let entries = history["entries"].as_array().unwrap();
    assert_eq!(entries.len(), 2, "{history}");
    assert_eq!(entries[1]["actor"], "alice@sa.test", "{history}");
    assert_eq!(entries[1]["source"], "recovery", "{history}");
    assert_eq!(entries[1]["correlationId"], "job-1", "{history}");
    assert_eq!(
        b.json(&["dir", "get", "--tenant", A, &user]).unwrap()["displayName"],
        "After"
    );
}
