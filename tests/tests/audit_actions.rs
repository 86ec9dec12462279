//! Every privileged action run from the CLI leaves exactly one audit record on
//! `BT_AUDIT`, with the token's subject as actor and the object acted on as target:
//! tokens issued, a tenant created, backups created / pinned / unpinned / verified, the
//! backup policy changed, a report created, a report cancel that failed, a hard delete.
//! And when the stream will not take a record, the call answers `UNAVAILABLE` and says
//! the action was carried out.
#![allow(clippy::unwrap_used)]

use backtrack_e2e::{audit_records, id, Backtrack};
use backtrack_proto::v1::AuditRecord;
use backtrack_test_support::{eventually, NatsServer};
use serde_json::Value;
use std::collections::BTreeMap;
use std::time::Duration;

const T: &str = "acts";
/// The deployment may not publish this tenant's audit records (see [`NATS_CONFIG`]).
const BLOCKED: &str = "blocked";

/// Everything allowed except publishing the audit records of tenant `blocked`.
const NATS_CONFIG: &str = r#"
authorization {
  users = [
    {
      user: backtrack, password: backtrack,
      permissions: { publish: { allow: [">"], deny: ["bt.audit.blocked.>"] } }
    }
  ]
}
no_auth_user: backtrack
"#;

fn actor(r: &AuditRecord) -> String {
    r.actor.clone().unwrap_or_default().subject
}

fn target(r: &AuditRecord) -> (String, String, String) {
    let t = r.target.clone().unwrap_or_default();
    (t.kind, t.id, t.display_name)
}

fn success(r: &AuditRecord) -> bool {
    r.result.clone().unwrap_or_default().success
}

fn parse(json: &str) -> Value {
    serde_json::from_str(json).unwrap_or(Value::Null)
}

#[tokio::test(flavor = "multi_thread")]
async fn every_privileged_action_leaves_exactly_one_record_naming_actor_and_target() {
    let nats = NatsServer::start_with_config(NATS_CONFIG).await.unwrap();
    let b = Backtrack::start(Some(nats.url())).await.unwrap();
    let client = nats.client().await.unwrap();

    // `backtrack up` recorded the admin token it wrote, as the deployment's own action.
    let deployment = audit_records(&client, "bt.audit._deployment.>")
        .await
        .unwrap();
    assert_eq!(deployment.len(), 1, "{deployment:?}");
    assert_eq!(deployment[0].action, "token.issued");
    assert_eq!(actor(&deployment[0]), "backtrack-up");
    assert_eq!(target(&deployment[0]).2, "admin");

    // The admin issues alice a token for every tenant; alice does the rest.
    let alice = b.cli(&[
        "token",
        "create",
        "--tenant",
        "*",
        "--role",
        "GlobalAdministrator",
        "--subject",
        "alice",
        "--ttl",
        "1h",
    ]);
    assert!(
        alice.status.success(),
        "{}",
        String::from_utf8_lossy(&alice.stderr)
    );
    let alice = String::from_utf8_lossy(&alice.stdout).trim().to_string();
    let as_alice = |args: &[&str]| -> Value {
        let out = b.cli_with_env(args, &[("BACKTRACK_TOKEN", &alice)]);
        assert!(
            out.status.success(),
            "`{}`: {}",
            args.join(" "),
            String::from_utf8_lossy(&out.stderr)
        );
        serde_json::from_slice(&out.stdout).unwrap_or(Value::Null)
    };

    as_alice(&["tenant", "create", T, "--display-name", "Acts Inc."]);
    let reader = b.cli_with_env(
        &[
            "token",
            "create",
            "--tenant",
            T,
            "--role",
            "BackupReader",
            "--subject",
            "rita",
            "--ttl",
            "1h",
        ],
        &[("BACKTRACK_TOKEN", &alice)],
    );
    assert!(reader.status.success());
    let user = as_alice(&[
        "dir",
        "create",
        "--tenant",
        T,
        "--kind",
        "user",
        "--set",
        "displayName=Doomed",
        "--set",
        "userPrincipalName=doomed@acts.test",
    ]);
    let user_id = id(&user);
    let backup = as_alice(&["backup", "create", "--tenant", T, "--description", "before"]);
    let backup_id = id(&backup);
    as_alice(&["backup", "pin", "--tenant", T, &backup_id]);
    as_alice(&["backup", "unpin", "--tenant", T, &backup_id]);
    as_alice(&["backup", "verify", "--tenant", T, &backup_id]);
    as_alice(&[
        "backup",
        "policy",
        "set",
        "--tenant",
        T,
        "--retention-days",
        "9",
    ]);
    let report = as_alice(&[
        "diff", "create", "--tenant", T, "--from", &backup_id, "--wait",
    ]);
    let report_id = id(&report);
    // A finished report cannot be cancelled: the failed attempt is recorded too.
    let cancel = b.cli_with_env(
        &["diff", "cancel", "--tenant", T, &report_id],
        &[("BACKTRACK_TOKEN", &alice)],
    );
    assert_eq!(
        cancel.status.code(),
        Some(2),
        "{}",
        String::from_utf8_lossy(&cancel.stderr)
    );
    as_alice(&["dir", "delete", "--tenant", T, &user_id]);
    as_alice(&["dir", "purge", "--tenant", T, &user_id, "--yes"]);

    let records = audit_records(&client, &format!("bt.audit.{T}.>"))
        .await
        .unwrap();
    let mut by_action: BTreeMap<&str, Vec<&AuditRecord>> = BTreeMap::new();
    for r in &records {
        by_action.entry(r.action.as_str()).or_default().push(r);
    }
    let expected = [
        ("tenant.created", "tenant", ("tenant", T)),
        ("token.issued", "security", ("token", "")),
        ("backup.created", "backup", ("backup", backup_id.as_str())),
        ("backup.pinned", "backup", ("backup", backup_id.as_str())),
        ("backup.unpinned", "backup", ("backup", backup_id.as_str())),
        ("backup.verified", "backup", ("backup", backup_id.as_str())),
        (
            "configuration.backupPolicyChanged",
            "configuration",
            ("backupPolicy", T),
        ),
        ("report.created", "report", ("report", report_id.as_str())),
        ("report.cancelled", "report", ("report", report_id.as_str())),
        (
            "directory.hardDeleted",
            "directory",
            ("user", user_id.as_str()),
        ),
    ];
    for (action, category, (kind, target_id)) in expected {
        let found = by_action.remove(action).unwrap_or_default();
        assert_eq!(found.len(), 1, "{action}: {found:?}");
        let r = found[0];
        assert_eq!(r.category, category, "{action}");
        assert_eq!(r.tenant, T);
        assert_eq!(actor(r), "alice", "{action}");
        let actor_info = r.actor.clone().unwrap_or_default();
        assert_eq!(actor_info.roles, vec!["GlobalAdministrator".to_string()]);
        assert!(
            actor_info.source_address.starts_with("127.0.0.1:"),
            "{action}: {actor_info:?}"
        );
        let (k, i, _) = target(r);
        assert_eq!(k, kind, "{action}");
        if !target_id.is_empty() {
            assert_eq!(i, target_id, "{action}");
        }
        assert!(r.time_ms > 0 && !r.id.is_empty());
    }
    assert!(by_action.is_empty(), "unexpected records: {by_action:?}");

    let one = |action: &str| records.iter().find(|r| r.action == action).unwrap();
    // Results, correlation and before/after values.
    assert!(!success(one("report.cancelled")));
    assert!(one("report.cancelled")
        .result
        .clone()
        .unwrap_or_default()
        .reason
        .contains("already"));
    assert!(success(one("backup.verified")));
    let token = one("token.issued");
    assert_eq!(target(token).2, "rita");
    assert_eq!(
        parse(&token.after_json)["roles"],
        serde_json::json!(["BackupReader"])
    );
    assert!(
        !token.after_json.contains("eyJ"),
        "the token itself is never recorded"
    );
    let policy = one("configuration.backupPolicyChanged");
    assert_eq!(parse(&policy.before_json)["retentionDays"], 7);
    assert_eq!(parse(&policy.after_json)["retentionDays"], 9);
    assert_eq!(parse(&one("backup.pinned").after_json)["pinned"], true);
    assert_eq!(parse(&one("backup.unpinned").after_json)["pinned"], false);
    assert_eq!(
        one("report.created")
            .correlation
            .clone()
            .unwrap_or_default()
            .report_id,
        report_id
    );
    assert_eq!(
        one("backup.created")
            .correlation
            .clone()
            .unwrap_or_default()
            .backup_id,
        backup_id
    );
    let purged = one("directory.hardDeleted");
    assert_eq!(target(purged).2, "Doomed");
    assert_eq!(
        parse(&purged.before_json)["userPrincipalName"],
        "doomed@acts.test"
    );
    assert_eq!(
        parse(&one("tenant.created").after_json)["displayName"],
        "Acts Inc."
    );

    // Alice's own token (every tenant) is recorded once, for the deployment.
    let deployment = audit_records(&client, "bt.audit._deployment.>")
        .await
        .unwrap();
    let issued_to_alice: Vec<_> = deployment
        .iter()
        .filter(|r| r.action == "token.issued" && target(r).2 == "alice")
        .collect();
    assert_eq!(issued_to_alice.len(), 1);
    assert_eq!(actor(issued_to_alice[0]), "admin");
    // A token that grants everything, issued by a caller, is also an alert.
    let alerted = eventually(
        "the privilegedTokenIssued alert",
        Duration::from_secs(20),
        || {
            let client = client.clone();
            async move {
                let records = audit_records(&client, "bt.audit._deployment.alert")
                    .await
                    .unwrap();
                (!records.is_empty()).then_some(records)
            }
        },
    )
    .await
    .unwrap();
    assert_eq!(alerted.len(), 1, "{alerted:?}");
    assert_eq!(
        alerted[0].id,
        format!("alert:{}:privilegedTokenIssued", issued_to_alice[0].id)
    );

    // The stream refuses this tenant's records: the tenant is created all the same, but
    // the call says UNAVAILABLE and that the action was carried out.
    let out = b.cli(&["tenant", "create", BLOCKED]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(5), "{stderr}");
    assert!(
        stderr.contains("UNAVAILABLE") && stderr.contains("carried out"),
        "{stderr}"
    );
    let tenants = b.json(&["tenant", "list"]).unwrap();
    assert!(
        tenants
            .as_array()
            .unwrap()
            .iter()
            .any(|t| t["id"] == BLOCKED),
        "{tenants}"
    );
    // Nothing was stored under the blocked subject.
    let stored = audit_records(&client, &format!("bt.audit.{BLOCKED}.>"))
        .await
        .unwrap();
    assert!(stored.is_empty(), "{stored:?}");
}
