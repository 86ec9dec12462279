//! A revoked token is refused (UNAUTHENTICATED, exit code 3) from then on: by the process
//! that revoked it, after a restart, and by every other process of a split deployment.
//! Only a Global Administrator revokes; each revocation leaves one `token.revoked` record.
#![allow(clippy::unwrap_used)]

use std::process::Output;
use std::time::Duration;

use backtrack_e2e::deployment::Deployment;
use backtrack_e2e::{audit_records, http_get, metric, Backtrack};
use backtrack_test_support::{eventually, NatsServer};
use serde_json::Value;

fn stdout(out: &Output) -> String {
    String::from_utf8_lossy(&out.stdout).trim().to_string()
}

fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).to_string()
}

/// The token `token create` printed, and the id it named on stderr.
fn issued(out: Output) -> (String, String) {
    assert!(out.status.success(), "{}", stderr(&out));
    let note = stderr(&out);
    let id = note
        .strip_prefix("token id ")
        .and_then(|rest| rest.split(',').next())
        .unwrap_or_else(|| panic!("no token id in {note:?}"))
        .to_string();
    (stdout(&out), id)
}

#[tokio::test(flavor = "multi_thread")]
async fn a_revoked_token_is_refused_from_then_on_and_after_a_restart() {
    let nats = NatsServer::start().await.unwrap();
    let mut b = Backtrack::start(Some(nats.url())).await.unwrap();
    b.json(&["tenant", "create", "tr"]).unwrap();
    let reader = |subject: &str| {
        issued(b.cli(&[
            "token",
            "create",
            "--tenant",
            "tr",
            "--role",
            "BackupReader",
            "--subject",
            subject,
            "--ttl",
            "30d",
        ]))
    };
    let (leaked, leaked_id) = reader("ci-bot");
    let (other, _) = reader("dashboard");
    let list_as = |b: &Backtrack, token: &str| {
        b.cli_with_env(
            &["backup", "list", "--tenant", "tr"],
            &[("BACKTRACK_TOKEN", token)],
        )
    };
    assert!(list_as(&b, &leaked).status.success());

    // Only a Global Administrator revokes.
    let refused = b.cli_with_env(
        &["token", "revoke", &leaked_id],
        &[("BACKTRACK_TOKEN", &other)],
    );
    assert_eq!(refused.status.code(), Some(3), "{}", stderr(&refused));
    assert!(
        stderr(&refused).contains("GlobalAdministrator"),
        "{}",
        stderr(&refused)
    );
    assert!(
        list_as(&b, &leaked).status.success(),
        "a refused revocation changes nothing"
    );

    // Given the token itself, only its id is sent.
    let revoked: Value = serde_json::from_str(&stdout(&b.cli(&[
        "token",
        "revoke",
        &leaked,
        "--reason",
        "leaked in a CI log",
    ])))
    .unwrap();
    assert_eq!(revoked["tokenId"], leaked_id.as_str());
    assert_eq!(revoked["alreadyRevoked"], false);

    let denied = list_as(&b, &leaked);
    assert_eq!(denied.status.code(), Some(3), "{}", stderr(&denied));
    assert!(
        stderr(&denied).contains(&format!("token {leaked_id} was revoked at")),
        "{}",
        stderr(&denied)
    );
    // The refused call's record names the revoked token: a SIEM sees it still in use.
    let watcher = nats.client().await.unwrap();
    eventually("the refusal's record", Duration::from_secs(10), || async {
        audit_records(&watcher, "bt.audit._unauthenticated.>")
            .await
            .unwrap()
            .iter()
            .any(|r| {
                r.action == "security.accessDenied"
                    && r.result
                        .as_ref()
                        .is_some_and(|x| x.reason.contains(&leaked_id))
            })
            .then_some(())
    })
    .await
    .unwrap();
    assert!(
        list_as(&b, &other).status.success(),
        "only the revoked token is refused"
    );

    // Revoking again keeps the first revocation.
    let again: Value =
        serde_json::from_str(&stdout(&b.cli(&["token", "revoke", &leaked_id]))).unwrap();
    assert_eq!(again["alreadyRevoked"], true);
    assert_eq!(again["revokedAt"], revoked["revokedAt"]);

    let bad = b.cli(&["token", "revoke", "not an id"]);
    assert_eq!(bad.status.code(), Some(2), "{}", stderr(&bad));
    assert!(stderr(&bad).contains("token id"), "{}", stderr(&bad));

    // One record, in the trail of the tenant the revoked token grants (where its
    // `token.issued` record is), not under the deployment of the admin who revoked it.
    let client = nats.client().await.unwrap();
    let revoked_in = |trail: &'static str| {
        let client = client.clone();
        async move {
            audit_records(&client, trail)
                .await
                .unwrap()
                .into_iter()
                .filter(|r| r.action == "token.revoked")
                .count()
        }
    };
    assert_eq!(revoked_in("bt.audit._deployment.>").await, 0);
    let records = audit_records(&client, "bt.audit.tr.>").await.unwrap();
    let revocations: Vec<_> = records
        .iter()
        .filter(|r| r.action == "token.revoked")
        .collect();
    assert_eq!(revocations.len(), 1, "{revocations:?}");
    let record = revocations[0];
    assert_eq!(record.target.as_ref().unwrap().id, leaked_id);
    assert_eq!(record.target.as_ref().unwrap().display_name, "ci-bot");
    let after: Value = serde_json::from_str(&record.after_json).unwrap();
    assert_eq!(after["reason"], "leaked in a CI log");
    assert_eq!(after["revoked"], true);
    let before: Value = serde_json::from_str(&record.before_json).unwrap();
    assert_eq!(before["revoked"], false);
    assert_eq!(after["revokedBy"], "admin");

    // The revocation outlives the process. The new start's admin token replaces the old
    // one, which it revokes.
    let first_admin = b.token().unwrap();
    assert!(list_as(&b, &first_admin).status.success());
    b.stop().unwrap();
    b.launch().await.unwrap();
    let denied = list_as(&b, &leaked);
    assert_eq!(denied.status.code(), Some(3), "{}", stderr(&denied));
    assert!(list_as(&b, &other).status.success());
    let replaced = list_as(&b, &first_admin);
    assert_eq!(replaced.status.code(), Some(3), "{}", stderr(&replaced));
    assert!(list_as(&b, &b.token().unwrap()).status.success());
    // The process counts what it refuses: the leaked token and the replaced admin token.
    let (_, scrape) = http_get(b.http_port, "/metrics").await.unwrap();
    assert_eq!(
        metric(&scrape, "backtrack_revoked_tokens"),
        Some(2.0),
        "{scrape}"
    );

    // The tenant's tokens, newest first: what each grants and whether it was revoked.
    let listed: Value =
        serde_json::from_str(&stdout(&b.cli(&["token", "list", "--tenant", "tr"]))).unwrap();
    let listed: Vec<(String, bool)> = listed
        .as_array()
        .unwrap()
        .iter()
        .map(|t| {
            assert_eq!(t["tenants"], serde_json::json!(["tr"]), "{t}");
            assert_eq!(t["roles"], serde_json::json!(["BackupReader"]), "{t}");
            (
                t["subject"].as_str().unwrap().to_string(),
                t["revoked"] == true,
            )
        })
        .collect();
    let mut subjects = listed.clone();
    subjects.sort();
    assert_eq!(
        subjects,
        vec![
            ("ci-bot".to_string(), true),
            ("dashboard".to_string(), false)
        ]
    );
    // Every token, for an administrator of every tenant: the admin tokens of both starts,
    // the first revoked by the second.
    let every: Value =
        serde_json::from_str(&stdout(&b.cli(&["token", "list", "--tenant", "*"]))).unwrap();
    let admins: Vec<bool> = every
        .as_array()
        .unwrap()
        .iter()
        .filter(|t| t["issuedBy"] == "backtrack-up")
        .map(|t| t["revoked"] == true)
        .collect();
    assert_eq!(admins, vec![false, true], "newest first: {every}");
    let client = nats.client().await.unwrap();
    let by_up = audit_records(&client, "bt.audit._deployment.>")
        .await
        .unwrap()
        .into_iter()
        .filter(|r| r.action == "token.revoked")
        .map(|r| r.actor.unwrap_or_default().subject)
        .collect::<Vec<_>>();
    assert_eq!(by_up, vec!["backtrack-up".to_string()]);
    let refused = b.cli_with_env(
        &["token", "list", "--tenant", "tr"],
        &[("BACKTRACK_TOKEN", &other)],
    );
    assert_eq!(refused.status.code(), Some(3), "{}", stderr(&refused));
}

#[tokio::test(flavor = "multi_thread")]
async fn an_administrator_of_one_tenant_revokes_only_its_tokens() {
    let b = Backtrack::start(None).await.unwrap();
    for tenant in ["ta", "tb"] {
        b.json(&["tenant", "create", tenant]).unwrap();
    }
    let issue = |tenant: &str, role: &str| {
        issued(b.cli(&[
            "token",
            "create",
            "--tenant",
            tenant,
            "--role",
            role,
            "--subject",
            "x",
        ]))
    };
    let (admin_a, _) = issue("ta", "GlobalAdministrator");
    let (_, reader_a) = issue("ta", "BackupReader");
    let (_, reader_b) = issue("tb", "BackupReader");
    let as_admin_a = |args: &[&str]| b.cli_with_env(args, &[("BACKTRACK_TOKEN", &admin_a)]);
    let refused = as_admin_a(&["token", "revoke", &reader_b]);
    assert_eq!(refused.status.code(), Some(3), "{}", stderr(&refused));
    assert!(
        stderr(&refused).contains("grants none of the tenants"),
        "{}",
        stderr(&refused)
    );
    assert!(as_admin_a(&["token", "revoke", &reader_a]).status.success());
    let listed = as_admin_a(&["token", "list", "--tenant", "tb"]);
    assert_eq!(listed.status.code(), Some(3), "{}", stderr(&listed));
    let listed: Value =
        serde_json::from_str(&stdout(&as_admin_a(&["token", "list", "--tenant", "ta"]))).unwrap();
    assert_eq!(listed.as_array().unwrap().len(), 2, "{listed}");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_token_revoked_through_one_process_is_refused_by_the_others() {
    let nats = NatsServer::start().await.unwrap();
    let d = Deployment::start(&nats.url(), &[]).await.unwrap();
    d.json(&["tenant", "create", "tp"]).unwrap();
    // Issued by the directory's process; used against the snapshotter's and the audit's.
    let (token, id) = issued(d.cli(&[
        "token",
        "create",
        "--tenant",
        "tp",
        "--role",
        "BackupReader",
        "--subject",
        "ci-bot",
    ]));
    let as_token = |args: &[&str]| {
        let mut all = args.to_vec();
        all.extend(["--token", token.as_str()]);
        d.cli(&all)
    };
    let backups = ["backup", "list", "--tenant", "tp"];
    let audit = ["audit", "query", "--tenant", "tp"];
    assert!(as_token(&backups).status.success());
    assert!(as_token(&audit).status.success());

    assert!(d.cli(&["token", "revoke", &id]).status.success());
    for (what, args) in [("the snapshotter", &backups), ("the audit service", &audit)] {
        eventually(
            &format!("{what} to refuse the revoked token"),
            Duration::from_secs(10),
            || async {
                let out = as_token(args);
                (out.status.code() == Some(3) && stderr(&out).contains("revoked")).then_some(())
            },
        )
        .await
        .unwrap();
    }
}
