//! A token limited to some object kinds reaches only those kinds in the directory too:
//! what it may not touch is refused (PERMISSION_DENIED, exit code 3) and stores nothing,
//! and what it may not see is left out of listings and the change feed.
#![allow(clippy::unwrap_used)]

use std::process::Output;

use backtrack_e2e::{id, last_sequence, Backtrack};
use backtrack_test_support::NatsServer;
use serde_json::Value;

#[tokio::test(flavor = "multi_thread")]
async fn a_token_limited_to_users_touches_and_sees_only_users() {
    let nats = NatsServer::start().await.unwrap();
    let b = Backtrack::start(Some(nats.url())).await.unwrap();
    b.json(&["tenant", "create", "k"]).unwrap();
    let user = id(&b
        .create(
            "k",
            "user",
            &["displayName=U", "userPrincipalName=u@k.test"],
        )
        .unwrap());
    let group = id(&b.create("k", "group", &["displayName=G"]).unwrap());
    let issued = b.cli(&[
        "token",
        "create",
        "--tenant",
        "k",
        "--role",
        "DirectoryWriter",
        "--kind",
        "user",
        "--subject",
        "user-admin",
    ]);
    assert!(issued.status.success());
    let token = String::from_utf8(issued.stdout).unwrap().trim().to_string();
    let as_scoped =
        |args: &[&str]| -> Output { b.cli_with_env(args, &[("BACKTRACK_TOKEN", &token)]) };
    let refused = |args: &[&str]| {
        let out = as_scoped(args);
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(3), "{args:?}: {stderr}");
        assert!(
            stderr.contains("PERMISSION_DENIED") && stderr.contains("kind 'group'"),
            "{args:?}: {stderr}"
        );
    };
    let json = |out: Output| -> Value {
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        serde_json::from_slice(&out.stdout).unwrap()
    };

    let before = last_sequence(&b).unwrap();
    refused(&[
        "dir",
        "update",
        "--tenant",
        "k",
        &group,
        "--set",
        "description=x",
    ]);
    refused(&[
        "dir",
        "link",
        "add",
        "--tenant",
        "k",
        "--relation",
        "members",
        &group,
        &user,
    ]);
    refused(&["dir", "delete", "--tenant", "k", &group]);
    refused(&[
        "dir",
        "create",
        "--tenant",
        "k",
        "--kind",
        "group",
        "--set",
        "displayName=H",
    ]);
    refused(&["dir", "get", "--tenant", "k", &group]);
    refused(&["dir", "list", "--tenant", "k", "--kind", "group"]);
    assert_eq!(
        last_sequence(&b).unwrap(),
        before,
        "nothing refused was stored"
    );

    // Its own kind it may change, and it sees only that kind.
    let updated = json(as_scoped(&[
        "dir",
        "update",
        "--tenant",
        "k",
        &user,
        "--set",
        "jobTitle=Lead",
    ]));
    assert_eq!(updated["jobTitle"], "Lead");
    let listed = json(as_scoped(&["dir", "list", "--tenant", "k"]));
    let kinds: Vec<&str> = listed
        .as_array()
        .unwrap()
        .iter()
        .map(|o| o["@kind"].as_str().unwrap())
        .collect();
    assert_eq!(kinds, ["user"], "{listed}");

    // An import takes its users and rejects its groups, each by line.
    let file = b.data().join("mixed.jsonl");
    std::fs::write(
        &file,
        [
            r#"{"@kind": "group", "displayName": "Imported group"}"#,
            r#"{"@kind": "user", "displayName": "V", "userPrincipalName": "v@k.test"}"#,
        ]
        .join("\n"),
    )
    .unwrap();
    let out = as_scoped(&["dir", "import", "--tenant", "k", file.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(2));
    let summary: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(
        (summary["created"].as_u64(), summary["rejected"].as_u64()),
        (Some(1), Some(1))
    );
    assert_eq!(summary["problems"][0]["line"], 1, "{summary}");
    let message = summary["problems"][0]["message"].as_str().unwrap();
    assert!(message.contains("kind 'group'"), "{message}");

    // The feed leaves out the group's events.
    let feed = as_scoped(&[
        "events",
        "tail",
        "--tenant",
        "k",
        "--from-start",
        "--no-follow",
    ]);
    assert!(feed.status.success());
    let kinds: Vec<String> = String::from_utf8(feed.stdout)
        .unwrap()
        .lines()
        .map(|l| {
            serde_json::from_str::<Value>(l).unwrap()["kind"]
                .as_str()
                .unwrap()
                .to_string()
        })
        .collect();
    assert_eq!(kinds, ["tenant", "user", "user", "user"], "{kinds:?}");

    // Every refusal is on the audit stream, under the token's subject.
    let refusals = b
        .json(&[
            "audit",
            "query",
            "--tenant",
            "k",
            "--actor",
            "user-admin",
            "--result",
            "failure",
        ])
        .unwrap();
    let calls: Vec<&str> = refusals["entries"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["target"]["id"].as_str().unwrap())
        .collect();
    let called = |rpc: &str| format!("/backtrack.v1.DirectoryService/{rpc}");
    let expected: Vec<String> = [
        "UpdateObject",
        "AddLinks",
        "DeleteObject",
        "CreateObject",
        "GetObject",
        "ListObjects",
    ]
    .iter()
    .map(|rpc| called(rpc))
    .collect();
    assert_eq!(calls, expected, "{refusals}");

    // The audit trail too: a reader limited to users does not get the purged group's
    // record (which holds its last state); a reader of every kind does.
    b.json(&["dir", "delete", "--tenant", "k", &group]).unwrap();
    b.json(&["dir", "purge", "--tenant", "k", &group, "--yes"])
        .unwrap();
    let reader = b.cli(&[
        "token",
        "create",
        "--tenant",
        "k",
        "--role",
        "BackupReader",
        "--kind",
        "user",
        "--subject",
        "user-reader",
    ]);
    let reader = String::from_utf8(reader.stdout).unwrap().trim().to_string();
    let audited_kinds = |env: &[(&str, &str)]| -> Vec<String> {
        let out = b.cli_with_env(
            &["audit", "query", "--tenant", "k", "--page-size", "1000"],
            env,
        );
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        let page: Value = serde_json::from_slice(&out.stdout).unwrap();
        page["entries"]
            .as_array()
            .unwrap()
            .iter()
            .map(|e| e["target"]["kind"].as_str().unwrap_or("").to_string())
            .collect()
    };
    let everything = audited_kinds(&[]);
    assert!(everything.iter().any(|k| k == "group"), "{everything:?}");
    let limited = audited_kinds(&[("BACKTRACK_TOKEN", &reader)]);
    assert!(!limited.iter().any(|k| k == "group"), "{limited:?}");
    assert!(
        limited.iter().any(|k| k == "rpc"),
        "refusals stay visible: {limited:?}"
    );
    // Following the trail shows the same records.
    let count = limited.len().to_string();
    let tail = b.cli_with_env(
        &[
            "audit",
            "tail",
            "--tenant",
            "k",
            "--from-start",
            "--limit",
            &count,
        ],
        &[("BACKTRACK_TOKEN", &reader)],
    );
    assert!(
        tail.status.success(),
        "{}",
        String::from_utf8_lossy(&tail.stderr)
    );
    let followed: Vec<String> = String::from_utf8(tail.stdout)
        .unwrap()
        .lines()
        .map(|l| {
            let entry: Value = serde_json::from_str(l).unwrap();
            entry["target"]["kind"].as_str().unwrap_or("").to_string()
        })
        .collect();
    assert_eq!(followed, limited);
}
