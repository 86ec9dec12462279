//! Alerts reach the SIEM through the real binary: `backtrack up` raises an `alert.raised`
//! record for what one account broke (a conditional access policy deleted, a run of
//! deletions over `--alert-mass-deletions`), the audit trail answers
//! `audit query --action alert.raised`, an OCSF file sink receives Detection Findings, and
//! the dry run each alert suggests runs as it is written; a change set back closes its
//! finding; a caller refused again and again is an alert too.
#![allow(clippy::unwrap_used)]

use std::time::Duration;

use backtrack_e2e::Backtrack;
use backtrack_test_support::{eventually, NatsServer};
use serde_json::{json, Value};

const T: &str = "siem";

#[tokio::test(flavor = "multi_thread")]
async fn what_one_account_broke_reaches_the_siem_as_findings() {
    let nats = NatsServer::start().await.unwrap();
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("findings.jsonl");
    let config = dir.path().join("sinks.json");
    std::fs::write(
        &config,
        json!({"sinks": [{"name": "siem", "type": "file", "path": file, "format": "ocsf"}]})
            .to_string(),
    )
    .unwrap();
    let b = Backtrack::start_with(
        Some(nats.url()),
        &[
            "--audit-sinks",
            config.to_str().unwrap(),
            "--alert-mass-deletions",
            "3",
        ],
    )
    .await
    .unwrap();
    b.json(&["tenant", "create", T]).unwrap();
    let policy = b
        .create(
            T,
            "conditionalAccessPolicy",
            &["displayName=CA001 Require MFA", "state=enabled"],
        )
        .unwrap()["id"]
        .as_str()
        .unwrap()
        .to_string();
    let users: Vec<String> = (0..2)
        .map(|n| {
            let upn = format!("userPrincipalName=u{n}@siem.test");
            b.create(T, "user", &[&upn, "displayName=U"]).unwrap()["id"]
                .as_str()
                .unwrap()
                .to_string()
        })
        .collect();

    let mallory = b.token_for(T, "DirectoryWriter", "mallory");
    b.ok_with_token(&mallory, &["dir", "delete", "--tenant", T, &policy]);
    for user in &users {
        b.ok_with_token(&mallory, &["dir", "delete", "--tenant", T, user]);
    }

    let query = || {
        b.json(&["audit", "query", "--tenant", T, "--action", "alert.raised"])
            .unwrap()["entries"]
            .as_array()
            .unwrap()
            .clone()
    };
    let entries = eventually("two alerts", Duration::from_secs(30), || {
        let entries = query();
        async move { (entries.len() >= 2).then_some(entries) }
    })
    .await
    .unwrap();
    assert_eq!(entries.len(), 2, "{entries:#?}");
    let rules: Vec<&str> = entries
        .iter()
        .map(|e| e["details"]["rule"].as_str().unwrap())
        .collect();
    assert_eq!(rules, ["caPolicyDeleted", "massDeletion"]);
    let deleted = &entries[0];
    assert_eq!(deleted["actor"]["subject"], "mallory");
    assert_eq!(deleted["target"]["displayName"], "CA001 Require MFA");
    // A finding, not an action: no result (and the table shows its severity and rule).
    assert_eq!(deleted["result"], Value::Null, "{deleted}");
    let table = b.cli(&[
        "audit",
        "query",
        "--tenant",
        T,
        "--action",
        "alert.raised",
        "-o",
        "table",
    ]);
    let text = String::from_utf8_lossy(&table.stdout);
    assert!(
        text.contains("critical caPolicyDeleted")
            && text.contains(&format!(
                "conditionalAccessPolicy {policy} (CA001 Require MFA)"
            ))
            && !text.contains("failure"),
        "{text}"
    );
    assert_eq!(
        entries[1]["details"]["what"],
        "3 objects deleted by one actor within 60 min"
    );

    // The suggested dry run is a working command: it would put back exactly the policy.
    let undo = deleted["details"]["undo"].as_str().unwrap();
    let words: Vec<&str> = undo.split_whitespace().collect();
    assert_eq!(words[0], "backtrack");
    let plan = b.json(&words[1..]).unwrap();
    let operations = plan["operations"].as_array().unwrap();
    assert_eq!(operations.len(), 1, "{plan}");
    assert_eq!(operations[0]["id"], policy.as_str(), "{plan}");

    // The SIEM's file: OCSF Detection Findings with the alert's severity.
    let findings = eventually("two findings in the file", Duration::from_secs(30), || {
        let text = std::fs::read_to_string(&file).unwrap_or_default();
        async move {
            let findings: Vec<Value> = text
                .lines()
                .map(|l| serde_json::from_str::<Value>(l).unwrap())
                .filter(|v| v["class_uid"] == 2004)
                .collect();
            (findings.len() >= 2).then_some(findings)
        }
    })
    .await
    .unwrap();
    assert_eq!(findings.len(), 2);
    let critical = &findings[0];
    assert_eq!(critical["severity"], "Critical");
    assert_eq!(
        critical["finding_info"]["types"],
        json!(["caPolicyDeleted"])
    );
    assert_eq!(critical["resources"][0]["name"], "CA001 Require MFA");
    assert_eq!(critical["actor"]["user"]["name"], "mallory");
    assert_eq!(findings[1]["severity"], "High");

    // Restored from the recycle bin by hand: the same finding is closed as resolved, by
    // whoever did it, and the trail says so.
    b.json(&["dir", "restore", "--tenant", T, &policy]).unwrap();
    let closed = eventually(
        "the finding closed in the file",
        Duration::from_secs(30),
        || {
            let text = std::fs::read_to_string(&file).unwrap_or_default();
            async move {
                text.lines()
                    .map(|l| serde_json::from_str::<Value>(l).unwrap())
                    .find(|v| v["class_uid"] == 2004 && v["activity_name"] == "Close")
            }
        },
    )
    .await
    .unwrap();
    assert_eq!(
        closed["finding_info"]["uid"],
        critical["finding_info"]["uid"]
    );
    assert_eq!(
        (closed["status_id"].clone(), closed["status"].clone()),
        (json!(4), json!("Resolved"))
    );
    assert_eq!(closed["actor"]["user"]["name"], "admin");
    let table = b.cli(&[
        "audit",
        "query",
        "--tenant",
        T,
        "--action",
        "alert.undone",
        "-o",
        "table",
    ]);
    let text = String::from_utf8_lossy(&table.stdout);
    assert!(
        text.contains("alert.undone")
            && text.contains("set back caPolicyDeleted")
            && text.contains(&format!(
                "conditionalAccessPolicy {policy} (CA001 Require MFA)"
            )),
        "{text}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn only_a_global_administrator_changes_a_tenants_alert_policy_and_it_is_audited() {
    let b = Backtrack::start(None).await.unwrap();
    b.json(&["tenant", "create", T]).unwrap();
    let policy = b.json(&["alerts", "policy", "get", "--tenant", T]).unwrap();
    assert_eq!(policy["massDeletions"], 0, "{policy}");
    assert_eq!(policy["setAt"], Value::Null, "{policy}");

    // A backup administrator may read it, not weaken it.
    let admin = b.token_for(T, "BackupAdministrator", "backup-admin");
    let as_admin = |args: &[&str]| b.cli_with_env(args, &[("BACKTRACK_TOKEN", admin.as_str())]);
    assert!(as_admin(&["alerts", "policy", "get", "--tenant", T])
        .status
        .success());
    let refused = as_admin(&[
        "alerts",
        "policy",
        "set",
        "--tenant",
        T,
        "--disable",
        "caPolicyDeleted",
    ]);
    assert_eq!(refused.status.code(), Some(3), "{refused:?}");

    // A misspelt rule is refused with the list of rules; nothing is stored.
    let misspelt = b.cli(&[
        "alerts",
        "policy",
        "set",
        "--tenant",
        T,
        "--disable",
        "roleAsigned",
    ]);
    assert_eq!(misspelt.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&misspelt.stderr);
    assert!(
        stderr.contains("no alert rule 'roleAsigned'") && stderr.contains("roleAssigned"),
        "{stderr}"
    );

    let set = b
        .json(&[
            "alerts",
            "policy",
            "set",
            "--tenant",
            T,
            "--mass-deletions",
            "500",
            "--disable",
            "roleAssigned",
            "--quiet-actor",
            "svc-hr-sync",
        ])
        .unwrap();
    assert_eq!(set["massDeletions"], 500, "{set}");
    assert_eq!(set["disabledRules"], json!(["roleAssigned"]));
    assert_eq!(set["quietActors"], json!(["svc-hr-sync"]));
    let again = b.json(&["alerts", "policy", "get", "--tenant", T]).unwrap();
    assert_eq!(again["massDeletions"], 500, "{again}");
    assert!(again["setAt"].is_string(), "{again}");

    let changes = |result: &str| {
        b.json(&[
            "audit",
            "query",
            "--tenant",
            T,
            "--action",
            "configuration.alertPolicyChanged",
            "--result",
            result,
        ])
        .unwrap()["entries"]
            .as_array()
            .unwrap()
            .clone()
    };
    let changed = changes("success");
    assert_eq!(changed.len(), 1, "{changed:#?}");
    assert_eq!(changed[0]["actor"]["subject"], "admin");
    assert_eq!(changed[0]["before"]["massDeletions"], 0);
    assert_eq!(
        changed[0]["after"]["disabledRules"],
        json!(["roleAssigned"])
    );
    // The misspelt attempt is on the trail as a failure.
    // (Failed attempts' records are awaited only briefly before the answer.)
    let failed = eventually(
        "the failed attempt's record",
        Duration::from_secs(10),
        || {
            let failed = changes("failure");
            async move { (!failed.is_empty()).then_some(failed) }
        },
    )
    .await
    .unwrap();
    assert_eq!(failed.len(), 1, "{failed:#?}");
    assert!(failed[0]["result"]["reason"]
        .as_str()
        .unwrap()
        .contains("roleAsigned"));

    // Silencing alerts is itself an alert, which no tenant policy can turn off.
    let silenced = eventually("the alertsSilenced alert", Duration::from_secs(30), || {
        let alerts = b
            .json(&["audit", "query", "--tenant", T, "--action", "alert.raised"])
            .unwrap()["entries"]
            .as_array()
            .unwrap()
            .clone();
        async move { (!alerts.is_empty()).then_some(alerts) }
    })
    .await
    .unwrap();
    assert_eq!(silenced.len(), 1, "{silenced:#?}");
    assert_eq!(silenced[0]["details"]["rule"], "alertsSilenced");
    assert_eq!(silenced[0]["details"]["severity"], "high");
    assert_eq!(silenced[0]["actor"]["subject"], "admin");
    assert_eq!(
        silenced[0]["details"]["what"],
        "rules turned off + roleAssigned; quiet actors + svc-hr-sync"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_caller_refused_again_and_again_is_an_alert() {
    let nats = NatsServer::start().await.unwrap();
    let b = Backtrack::start_with(Some(nats.url()), &["--alert-denied-calls", "3"])
        .await
        .unwrap();
    b.json(&["tenant", "create", T]).unwrap();
    // A reader trying to write, three times; a made-up token, three times.
    let reader = b.token_for(T, "BackupReader", "eve");
    let write = [
        "dir",
        "create",
        "--tenant",
        T,
        "--kind",
        "group",
        "--set",
        "displayName=Mine",
    ];
    for token in [reader.as_str(), "not-a-token"] {
        for _ in 0..3 {
            let out = b.cli_with_env(&write, &[("BACKTRACK_TOKEN", token)]);
            assert!(!out.status.success(), "{out:?}");
        }
    }

    // eve's burst (the anonymous one shows too, for this caller of every tenant).
    let by_eve = |h: &Value| h["what"].as_str().unwrap_or_default().contains(" by eve ");
    let burst = eventually("the burst on the overview", Duration::from_secs(30), || {
        let overview = b.json(&["overview", "--tenant", T]).unwrap();
        async move {
            let health = overview["health"].as_array().unwrap().clone();
            health
                .into_iter()
                .find(|h| h["rule"] == "accessDeniedBurst" && by_eve(h))
        }
    })
    .await
    .unwrap();
    assert_eq!(burst["severity"], "high", "{burst}");
    // The token eve used, by the id `token list` gives it: revoked with one command.
    let tokens = b.json(&["token", "list", "--tenant", T]).unwrap();
    let eves = tokens
        .as_array()
        .unwrap()
        .iter()
        .find(|t| t["subject"] == "eve")
        .unwrap_or_else(|| panic!("{tokens}"))["tokenId"]
        .as_str()
        .unwrap()
        .to_string();
    assert!(
        burst["what"].as_str().unwrap().starts_with(&format!(
            "3 calls refused within 10 min by eve with token {eves}; the last: /backtrack.v1.DirectoryService/"
        )),
        "{burst}"
    );
    assert_eq!(
        burst["fix"],
        format!(
            "backtrack audit query --tenant {T} --action security.accessDenied --actor eve; \
             if the token is not to be used so: backtrack token revoke {eves}"
        ),
        "{burst}"
    );
    assert_eq!(burst["resolved"], Value::Null, "{burst}");
    // Revoked as the fix says: the finding reads resolved, with nothing left to run.
    b.json(&["token", "revoke", &eves]).unwrap();
    let overview = b.json(&["overview", "--tenant", T]).unwrap();
    let burst = overview["health"]
        .as_array()
        .unwrap()
        .iter()
        .find(|h| h["rule"] == "accessDeniedBurst" && by_eve(h))
        .unwrap();
    assert!(
        burst["resolved"]
            .as_str()
            .unwrap_or_default()
            .starts_with(&format!("token {eves} revoked by admin at ")),
        "{burst}"
    );
    let table = b.cli(&["overview", "--tenant", T, "-o", "table"]);
    let text = String::from_utf8_lossy(&table.stdout);
    assert!(
        text.contains(&format!("✓ resolved: token {eves} revoked by admin"))
            && !text.contains("backtrack token revoke"),
        "{text}"
    );

    // The calls without a valid token are kept apart, under `_unauthenticated`.
    let anonymous = eventually("the anonymous burst", Duration::from_secs(30), || {
        let entries = b
            .json(&[
                "audit",
                "query",
                "--tenant",
                "_unauthenticated",
                "--action",
                "alert.raised",
            ])
            .unwrap()["entries"]
            .as_array()
            .unwrap()
            .clone();
        async move { (!entries.is_empty()).then_some(entries) }
    })
    .await
    .unwrap();
    assert_eq!(anonymous.len(), 1, "{anonymous:#?}");
    assert_eq!(anonymous[0]["details"]["rule"], "accessDeniedBurst");
    assert!(
        anonymous[0]["details"]["what"]
            .as_str()
            .unwrap()
            .starts_with("3 calls refused within 10 min from 127.0.0.1; the last: "),
        "{anonymous:#?}"
    );
    // A caller of every tenant sees them on the tenant's overview too, marked as such.
    let anonymous_line = |overview: &Value| {
        overview["health"]
            .as_array()
            .unwrap()
            .iter()
            .find(|h| {
                h["what"]
                    .as_str()
                    .unwrap_or_default()
                    .starts_with("[_unauthenticated] 3 calls refused within 10 min from 127.0.0.1")
            })
            .cloned()
    };
    let overview = b.json(&["overview", "--tenant", T]).unwrap();
    let line = anonymous_line(&overview).unwrap_or_else(|| panic!("{overview}"));
    assert_eq!(line["rule"], "accessDeniedBurst", "{line}");
    // A caller of this tenant only does not, and asks nothing it would be refused.
    let denials = || {
        b.json(&[
            "audit",
            "query",
            "--tenant",
            T,
            "--action",
            "security.accessDenied",
        ])
        .unwrap()["entries"]
            .as_array()
            .unwrap()
            .len()
    };
    let before = denials();
    let reader = b.token_for(T, "BackupReader", "rita");
    let out = b.cli_with_env(
        &["overview", "--tenant", T, "-o", "json"],
        &[("BACKTRACK_TOKEN", reader.as_str())],
    );
    assert!(out.status.success(), "{out:?}");
    let limited: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert!(anonymous_line(&limited).is_none(), "{limited}");
    assert_eq!(denials(), before);
}
