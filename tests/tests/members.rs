//! `dir members` says who the targets are: kind and display name as they were at the
//! point, whether they were in the recycle bin, and nothing about kinds the token may not
//! see; `dir history --incoming` says when an object joined and left whose relations.
#![allow(clippy::unwrap_used)]

use backtrack_e2e::{id, Backtrack};
use backtrack_test_support::NatsServer;
use serde_json::{json, Value};

#[tokio::test(flavor = "multi_thread")]
async fn members_are_listed_with_their_kind_and_name() {
    let nats = NatsServer::start().await.unwrap();
    let b = Backtrack::start(Some(nats.url())).await.unwrap();
    b.json(&["tenant", "create", "m"]).unwrap();
    let user = |name: &str| {
        let upn = format!("userPrincipalName={}@m.test", name.to_lowercase());
        id(&b
            .create("m", "user", &[&format!("displayName={name}"), &upn])
            .unwrap())
    };
    let (ada, bob) = (user("Ada"), user("Bob"));
    let inner = id(&b.create("m", "group", &["displayName=Inner"]).unwrap());
    let team = id(&b.create("m", "group", &["displayName=Team"]).unwrap());
    b.json(&[
        "dir",
        "link",
        "add",
        "--tenant",
        "m",
        &team,
        "--relation",
        "members",
        &ada,
        &bob,
        &inner,
    ])
    .unwrap();
    // A listing stops at its limit, now and at a point, whatever the page size.
    for at in [&[][..], &["--at", "now"][..]] {
        let args = [&["dir", "list", "--tenant", "m", "--limit", "3"][..], at].concat();
        let listed = b.json(&args).unwrap();
        assert_eq!(listed.as_array().unwrap().len(), 3, "{args:?}: {listed}");
    }
    let before_delete = b.json(&["backup", "create", "--tenant", "m"]).unwrap();
    let before_delete = before_delete["id"].as_str().unwrap().to_string();
    b.json(&["dir", "delete", "--tenant", "m", &bob]).unwrap();

    let described = |args: &[&str], env: &[(&str, &str)]| -> Vec<Value> {
        let mut all = vec!["dir", "members", "--tenant", "m", &team];
        all.extend_from_slice(args);
        let out = b.cli_with_env(&all, env);
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        let listed: Value = serde_json::from_slice(&out.stdout).unwrap();
        let mut targets = listed["targets"].as_array().unwrap().clone();
        targets.sort_by_key(|t| t["displayName"].as_str().unwrap_or("").to_string());
        targets
    };
    let target = |id: &str, kind: &str, name: &str, deleted: bool| json!({"id": id, "kind": kind, "displayName": name, "deleted": deleted});
    assert_eq!(
        described(&[], &[]),
        [
            target(&ada, "user", "Ada", false),
            target(&bob, "user", "Bob", true),
            target(&inner, "group", "Inner", false),
        ]
    );
    // As they were at a backup: Bob not yet deleted.
    let then = described(&["--at", &before_delete], &[]);
    assert_eq!(then[1], target(&bob, "user", "Bob", false));

    // The table says it too.
    let table = b.cli(&["-o", "table", "dir", "members", "--tenant", "m", &team]);
    let table = String::from_utf8(table.stdout).unwrap();
    assert!(table.contains("Bob (in the recycle bin)"), "{table}");
    assert!(
        table
            .lines()
            .any(|l| l.contains(&inner) && l.contains("group")),
        "{table}"
    );

    // A token for groups only learns nothing about the users among the members.
    let issued = b.cli(&[
        "token",
        "create",
        "--tenant",
        "m",
        "--role",
        "BackupReader",
        "--kind",
        "group",
    ]);
    let token = String::from_utf8(issued.stdout).unwrap().trim().to_string();
    let seen = described(&[], &[("BACKTRACK_TOKEN", &token)]);
    let (hidden, visible): (Vec<Value>, Vec<Value>) =
        seen.into_iter().partition(|t| t["kind"].is_null());
    assert_eq!(visible, [target(&inner, "group", "Inner", false)]);
    let mut hidden_ids: Vec<&str> = hidden.iter().map(|t| t["id"].as_str().unwrap()).collect();
    hidden_ids.sort();
    let mut users = [ada.as_str(), bob.as_str()];
    users.sort();
    assert_eq!(hidden_ids, users);
    assert!(
        hidden.iter().all(|t| t["displayName"].is_null()),
        "{hidden:?}"
    );

    // Bob's own history, with the memberships the groups' events gave and took.
    b.json(&[
        "dir",
        "link",
        "remove",
        "--tenant",
        "m",
        &team,
        "--relation",
        "members",
        &bob,
    ])
    .unwrap();
    let history = b
        .json(&["dir", "history", "--tenant", "m", &bob, "--incoming"])
        .unwrap();
    let incoming: Vec<(String, String, String, String)> = history["incoming"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| {
            let text = |v: &Value| v.as_str().unwrap().to_string();
            (
                text(&c["change"]),
                text(&c["relation"]),
                text(&c["holder"]["displayName"]),
                text(&c["actor"]),
            )
        })
        .collect();
    let change = |what: &str| {
        (
            what.to_string(),
            "members".to_string(),
            "Team".to_string(),
            "admin".to_string(),
        )
    };
    assert_eq!(incoming, [change("added"), change("removed")], "{history}");
    let plain = b.json(&["dir", "history", "--tenant", "m", &bob]).unwrap();
    assert!(plain.get("incoming").is_none(), "{plain}");
    let table = b.cli(&[
        "-o",
        "table",
        "dir",
        "history",
        "--tenant",
        "m",
        &bob,
        "--incoming",
    ]);
    let table = String::from_utf8(table.stdout).unwrap();
    assert!(
        table.contains(&format!("members of group {team} (Team)")),
        "{table}"
    );
}
