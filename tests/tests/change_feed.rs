//! The change feed through the CLI: `events tail` from the start, from a point, and up to
//! the events stored when it was called.
#![allow(clippy::unwrap_used)]

use std::time::Duration;

use backtrack_e2e::Backtrack;
use backtrack_test_support::NatsServer;
use serde_json::Value;

/// `events tail --no-follow <args>` as JSON lines; fails the test if the command fails.
fn tail(b: &Backtrack, args: &[&str]) -> Vec<Value> {
    let mut all = vec!["events", "tail", "--no-follow"];
    all.extend_from_slice(args);
    let out = b.cli_within(&all, Duration::from_secs(20)).unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}

/// Creates user `name` (`<name>@<tenant>.test`) in `tenant`; returns its id.
fn create_user(b: &Backtrack, tenant: &str, name: &str) -> String {
    let upn = format!("userPrincipalName={}@{tenant}.test", name.to_lowercase());
    let created = b
        .create(tenant, "user", &[&format!("displayName={name}"), &upn])
        .unwrap();
    created["id"].as_str().unwrap().to_string()
}

fn now_ms() -> i64 {
    let since_epoch = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap();
    since_epoch.as_millis() as i64
}

fn display_names(events: &[Value]) -> Vec<&str> {
    events
        .iter()
        .map(|e| e["attributes"]["displayName"].as_str().unwrap_or("-"))
        .collect()
}

#[tokio::test(flavor = "multi_thread")]
async fn the_feed_can_stop_at_the_events_stored_now() {
    let nats = NatsServer::start().await.unwrap();
    let b = Backtrack::start(Some(nats.url())).await.unwrap();
    b.json(&["tenant", "create", "a"]).unwrap();
    b.create(
        "a",
        "user",
        &["displayName=A1", "userPrincipalName=a1@a.test"],
    )
    .unwrap();
    b.create(
        "a",
        "user",
        &["displayName=A2", "userPrincipalName=a2@a.test"],
    )
    .unwrap();
    // Another tenant's events come after `a`'s last one.
    b.json(&["tenant", "create", "b"]).unwrap();
    b.create(
        "b",
        "user",
        &["displayName=B1", "userPrincipalName=b1@b.test"],
    )
    .unwrap();
    let a = tail(&b, &["--tenant", "a", "--from-start"]);
    let changes: Vec<&str> = a.iter().map(|e| e["change"].as_str().unwrap()).collect();
    assert_eq!(changes, ["tenantCreated", "created", "created"], "{a:?}");
    assert!(a.iter().all(|e| e["tenant"] == "a"));
    let sequences: Vec<u64> = a.iter().map(|e| e["sequence"].as_u64().unwrap()).collect();
    assert!(sequences.windows(2).all(|w| w[0] < w[1]), "{sequences:?}");
    assert_eq!(tail(&b, &["--tenant", "b", "--from-start"]).len(), 2);
    assert_eq!(
        tail(&b, &["--tenant", "a", "--from-start", "--limit", "1"]).len(),
        1
    );
    // Without a start the feed begins with new events: stopping now would show nothing,
    // so the command says what to add instead of printing nothing.
    let out = b
        .cli_within(
            &["events", "tail", "--no-follow", "--tenant", "a"],
            std::time::Duration::from_secs(20),
        )
        .unwrap();
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("--from-start") && stderr.contains("--since"),
        "{stderr}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn the_feed_can_start_after_a_sequence_a_time_or_a_backup() {
    let nats = NatsServer::start().await.unwrap();
    let b = Backtrack::start(Some(nats.url())).await.unwrap();
    b.json(&["tenant", "create", "a"]).unwrap();
    let user = |name: &str| create_user(&b, "a", name);
    user("One");
    let backup = b.json(&["backup", "create", "--tenant", "a"]).unwrap();
    let backup = backup["id"].as_str().unwrap().to_string();
    // Every event so far was stored before this instant; the clock moves on before the
    // next write, so that write is stored after it.
    let instant = now_ms();
    while now_ms() < instant + 5 {
        std::hint::spin_loop();
    }
    let instant = backtrack_domain::time::rfc3339_ms(instant);
    user("Two");
    user("Three");
    let all = tail(&b, &["--tenant", "a", "--from-start"]);
    assert_eq!(display_names(&all), ["-", "One", "Two", "Three"], "{all:?}");
    let sequence_of_one = all[1]["sequence"].as_u64().unwrap().to_string();

    // After a sequence: where a consumer that handled "One" resumes.
    for point in [format!("seq:{sequence_of_one}"), sequence_of_one.clone()] {
        let after = tail(&b, &["--tenant", "a", "--since", &point]);
        assert_eq!(display_names(&after), ["Two", "Three"], "--since {point}");
    }
    // After a backup, and after an instant.
    let after = tail(&b, &["--tenant", "a", "--since", &backup]);
    assert_eq!(display_names(&after), ["Two", "Three"], "--since {backup}");
    let after = tail(&b, &["--tenant", "a", "--since", &instant]);
    assert_eq!(display_names(&after), ["Two", "Three"], "--since {instant}");
    // A time needs the feed only: a token without any reader role of the past may use it.
    let issued = b.cli(&[
        "token",
        "create",
        "--tenant",
        "a",
        "--role",
        "DirectoryWriter",
        "--subject",
        "feed",
    ]);
    let token = String::from_utf8(issued.stdout).unwrap().trim().to_string();
    let out = b.cli_with_env(
        &[
            "events",
            "tail",
            "--no-follow",
            "--tenant",
            "a",
            "--since",
            &instant,
        ],
        &[("BACKTRACK_TOKEN", &token)],
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let lines = String::from_utf8(out.stdout).unwrap();
    let feed: Vec<Value> = lines
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(display_names(&feed), ["Two", "Three"]);
    // A point before the first event: the whole history; the last one: nothing.
    assert_eq!(tail(&b, &["--tenant", "a", "--since", "-1d"]).len(), 4);
    let last = all[3]["sequence"].as_u64().unwrap().to_string();
    assert!(tail(&b, &["--tenant", "a", "--since", &last]).is_empty());

    // What is not a point is refused before anything is read.
    let out = b
        .cli_within(
            &["events", "tail", "--tenant", "a", "--since", "yesterday"],
            Duration::from_secs(20),
        )
        .unwrap();
    assert_eq!(out.status.code(), Some(2), "a refused request");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("--since 'yesterday' is not a point"),
        "{stderr}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn the_feed_can_be_narrowed_to_kinds_and_objects() {
    let nats = NatsServer::start().await.unwrap();
    let b = Backtrack::start(Some(nats.url())).await.unwrap();
    b.json(&["tenant", "create", "f"]).unwrap();
    let user = |name: &str| create_user(&b, "f", name);
    let (u1, u2) = (user("U1"), user("U2"));
    let group = b.create("f", "group", &["displayName=G"]).unwrap()["id"]
        .as_str()
        .unwrap()
        .to_string();
    b.json(&[
        "dir",
        "link",
        "add",
        "--tenant",
        "f",
        &group,
        "--relation",
        "members",
        &u1,
    ])
    .unwrap();
    b.json(&[
        "dir",
        "update",
        "--tenant",
        "f",
        &u1,
        "--set",
        "jobTitle=Lead",
    ])
    .unwrap();
    let shown = |args: &[&str]| -> Vec<(String, String)> {
        let mut all = vec!["--tenant", "f", "--from-start"];
        all.extend_from_slice(args);
        tail(&b, &all)
            .iter()
            .map(|e| {
                let id = e["objectId"].as_str().unwrap().to_string();
                (id, e["change"].as_str().unwrap().to_string())
            })
            .collect()
    };
    let created = |id: &str| (id.to_string(), "created".to_string());
    let changed = |id: &str, change: &str| (id.to_string(), change.to_string());

    // One kind (a subject filter), several kinds, one object (any kind), an object of a
    // kind, and a kind with objects.
    assert_eq!(
        shown(&["--kind", "group"]),
        [created(&group), changed(&group, "linksAdded")]
    );
    assert_eq!(
        shown(&["--kind", "user", "--kind", "group"]).len(),
        5,
        "every object event, not the tenant's"
    );
    let u1_events = [created(&u1), changed(&u1, "attributesChanged")];
    assert_eq!(shown(&["--id", &u1]), u1_events);
    assert_eq!(
        shown(&["--id", &u1.to_uppercase(), "--kind", "user"]),
        u1_events
    );
    assert_eq!(shown(&["--kind", "group", "--id", &u1]), []);
    assert_eq!(
        shown(&["--kind", "user", "--id", &u1, "--id", &u2]),
        [
            created(&u1),
            created(&u2),
            changed(&u1, "attributesChanged")
        ]
    );

    // What one account changed: mallory, a writer, sets u2's title; the rest was admin.
    let mallory = b.issue_token(&[
        "--tenant",
        "f",
        "--role",
        "DirectoryWriter",
        "--subject",
        "mallory",
    ]);
    let out = b.cli_with_env(
        &[
            "dir",
            "update",
            "--tenant",
            "f",
            &u2,
            "--set",
            "jobTitle=Intern",
        ],
        &[("BACKTRACK_TOKEN", &mallory)],
    );
    assert!(out.status.success(), "{out:?}");
    assert_eq!(
        shown(&["--actor", "mallory"]),
        [changed(&u2, "attributesChanged")]
    );
    assert_eq!(shown(&["--actor", "mallory", "--kind", "group"]), []);
    assert_eq!(shown(&["--actor", "admin", "--id", &u2]), [created(&u2)]);

    // An unknown kind or an id that cannot be one is refused; a kind the token does not
    // cover is denied.
    for (args, code, says) in [
        (vec!["--kind", "users"], 2, "unknown object kind 'users'"),
        (vec!["--id", "a.b"], 2, "invalid object id 'a.b'"),
    ] {
        let mut all = vec![
            "events",
            "tail",
            "--no-follow",
            "--tenant",
            "f",
            "--from-start",
        ];
        all.extend(args);
        let out = b.cli(&all);
        assert_eq!(out.status.code(), Some(code), "{out:?}");
        assert!(
            String::from_utf8_lossy(&out.stderr).contains(says),
            "{out:?}"
        );
    }
    let scoped = b.issue_token(&["--tenant", "f", "--role", "BackupReader", "--kind", "user"]);
    let out = b.cli_with_env(
        &[
            "events",
            "tail",
            "--no-follow",
            "--tenant",
            "f",
            "--from-start",
            "--kind",
            "group",
        ],
        &[("BACKTRACK_TOKEN", &scoped)],
    );
    assert_eq!(out.status.code(), Some(3), "{out:?}");
    assert!(String::from_utf8_lossy(&out.stderr).contains("PERMISSION_DENIED"));
}
