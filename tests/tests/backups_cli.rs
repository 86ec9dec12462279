//! Backups and time travel end to end, through the real `backtrack` binary: exact past
//! values at backups and at an instant between them, history, group members at a point,
//! survival across restarts, verification against tampering, rebuilds from the log, the
//! schedule, and a backup stream that refuses deletes and purges.
#![allow(clippy::unwrap_used)]

use std::time::{Duration, SystemTime};

use backtrack_e2e::{id, Backtrack};
use backtrack_test_support::{eventually, NatsServer};
use serde_json::Value;

fn create_user(b: &Backtrack, tenant: &str, upn: &str, department: &str) -> String {
    id(&b
        .create(
            tenant,
            "user",
            &[
                &format!("displayName={upn}"),
                &format!("userPrincipalName={upn}"),
                &format!("department={department}"),
            ],
        )
        .unwrap())
}

fn department(b: &Backtrack, tenant: &str, user: &str, at: &str) -> Value {
    b.json(&["dir", "get", "--tenant", tenant, user, "--at", at])
        .unwrap()["department"]
        .clone()
}

fn members(b: &Backtrack, tenant: &str, group: &str, at: &str) -> Vec<String> {
    let mut ids: Vec<String> = b
        .json(&["dir", "members", "--tenant", tenant, group, "--at", at])
        .unwrap()["targetIds"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_str().unwrap().to_string())
        .collect();
    ids.sort();
    ids
}

/// A zone the CLI is run in, as a POSIX `TZ` rule (no zone files needed): 5:30 east of UTC.
const LOCAL_TZ: &str = "IST-5:30";
const LOCAL_OFFSET_MS: i64 = (5 * 60 + 30) * 60_000;

/// Now, as RFC 3339 with milliseconds and as the same time on `LOCAL_TZ`'s clock without
/// an offset, after making sure later events get a later stamp.
fn instant_between() -> (String, String) {
    let now = SystemTime::now();
    let ms = now
        .duration_since(SystemTime::UNIX_EPOCH)
        .unwrap()
        .as_millis() as i64;
    let text = backtrack_domain::time::rfc3339_ms(ms);
    let local = backtrack_domain::time::rfc3339_ms(ms + LOCAL_OFFSET_MS)
        .trim_end_matches('Z')
        .replacen('T', " ", 1);
    // The stream stamps in milliseconds: let the clock leave this one before going on.
    while SystemTime::now().duration_since(now).unwrap() < Duration::from_millis(2) {
        std::hint::spin_loop();
    }
    (text, local)
}

#[tokio::test(flavor = "multi_thread")]
async fn backups_and_instants_show_exact_past_states_and_survive_restarts_tampering_and_rebuilds() {
    let nats = NatsServer::start().await.unwrap();
    let mut b = Backtrack::start(Some(nats.url())).await.unwrap();
    b.json(&["tenant", "create", "tt"]).unwrap();
    let u1 = create_user(&b, "tt", "ann@tt.test", "Sales");
    let u2 = create_user(&b, "tt", "bob@tt.test", "Ops");
    let group = id(&b.create("tt", "group", &["displayName=Team"]).unwrap());
    b.json(&[
        "dir",
        "link",
        "add",
        "--tenant",
        "tt",
        &group,
        "--relation",
        "members",
        &u1,
        &u2,
    ])
    .unwrap();

    let first = b
        .json(&[
            "backup",
            "create",
            "--tenant",
            "tt",
            "--description",
            "before the incident",
        ])
        .unwrap();
    for key in [
        "id",
        "sequence",
        "createdAt",
        "trigger",
        "description",
        "counts",
        "digest",
    ] {
        assert!(
            first.get(key).is_some(),
            "backup create --output json lacks {key}: {first}"
        );
    }
    assert_eq!(first["trigger"], "onDemand");
    assert_eq!(first["description"], "before the incident");
    assert_eq!(first["counts"]["user"]["live"], 2);
    assert_eq!(first["counts"]["group"]["live"], 1);
    let first_id = first["id"].as_str().unwrap().to_string();

    b.json(&[
        "dir",
        "update",
        "--tenant",
        "tt",
        &u1,
        "--set",
        "department=Legal",
    ])
    .unwrap();
    let (between, between_on_local_clock) = instant_between();
    b.json(&[
        "dir",
        "update",
        "--tenant",
        "tt",
        &u1,
        "--set",
        "department=Finance",
    ])
    .unwrap();
    b.json(&[
        "dir",
        "link",
        "remove",
        "--tenant",
        "tt",
        &group,
        "--relation",
        "members",
        &u2,
    ])
    .unwrap();
    b.json(&["dir", "delete", "--tenant", "tt", &u2]).unwrap();
    let second = b
        .json(&[
            "backup",
            "create",
            "--tenant",
            "tt",
            "--description",
            "after",
        ])
        .unwrap();
    let second_id = second["id"].as_str().unwrap().to_string();
    assert!(second["sequence"].as_u64() > first["sequence"].as_u64());
    assert_eq!(second["counts"]["user"]["live"], 1);
    assert_eq!(second["counts"]["user"]["deleted"], 1);

    // Exact earlier values at each backup and at the instant between them.
    assert_eq!(department(&b, "tt", &u1, &first_id), "Sales");
    assert_eq!(department(&b, "tt", &u1, &between), "Legal");
    // The same instant as a local time, read on the clock of the zone the CLI runs in.
    let local = b.cli_with_env(
        &[
            "dir",
            "get",
            "--tenant",
            "tt",
            &u1,
            "--at",
            &between_on_local_clock,
        ],
        &[("TZ", LOCAL_TZ)],
    );
    assert!(local.status.success(), "{local:?}");
    let local: Value = serde_json::from_slice(&local.stdout).unwrap();
    assert_eq!(local["department"], "Legal", "at {between_on_local_clock}");
    // Where the clocks change, a local time that happened twice or never is refused.
    let berlin = [("TZ", "CET-1CEST,M3.5.0,M10.5.0/3")];
    for (at, says) in [
        (
            "2026-10-25 02:30",
            "happened twice on the local clock (the clocks went back): give the offset, \
             2026-10-25T02:30:00+02:00 (the first time) or 2026-10-25T02:30:00+01:00 (the \
             second)",
        ),
        ("2026-03-29 02:30", "never happened on the local clock"),
    ] {
        let out = b.cli_with_env(&["dir", "get", "--tenant", "tt", &u1, "--at", at], &berlin);
        assert_eq!(out.status.code(), Some(2), "{out:?}");
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(stderr.contains(says), "{at}: {stderr}");
    }
    assert_eq!(department(&b, "tt", &u1, &second_id), "Finance");
    let mut both = vec![u1.clone(), u2.clone()];
    both.sort();
    assert_eq!(members(&b, "tt", &group, &first_id), both);
    assert_eq!(members(&b, "tt", &group, &between), both);
    assert_eq!(members(&b, "tt", &group, &second_id), vec![u1.clone()]);
    let u2_then = b
        .json(&["dir", "get", "--tenant", "tt", &u2, "--at", &second_id])
        .unwrap();
    assert!(
        u2_then.get("deletedDateTime").is_some_and(|v| !v.is_null()),
        "{u2_then}"
    );
    let listed = b
        .json(&[
            "dir", "list", "--tenant", "tt", "--kind", "user", "--at", &first_id,
        ])
        .unwrap();
    assert_eq!(listed.as_array().unwrap().len(), 2);
    let listed = b
        .json(&[
            "dir", "list", "--tenant", "tt", "--kind", "user", "--at", &second_id,
        ])
        .unwrap();
    assert_eq!(
        listed.as_array().unwrap().len(),
        1,
        "the deleted user is in the recycle bin"
    );

    // History: every change, with old and new values.
    let history = b.json(&["dir", "history", "--tenant", "tt", &u1]).unwrap();
    let entries = history["entries"].as_array().unwrap();
    let changes: Vec<&str> = entries
        .iter()
        .map(|e| e["change"].as_str().unwrap())
        .collect();
    assert_eq!(
        changes,
        ["created", "attributesChanged", "attributesChanged"]
    );
    let department_changes: Vec<(Value, Value)> = entries[1..]
        .iter()
        .map(|e| {
            let a = e["attributes"]
                .as_array()
                .unwrap()
                .iter()
                .find(|a| a["name"] == "department")
                .unwrap();
            (a["old"].clone(), a["new"].clone())
        })
        .collect();
    assert_eq!(
        department_changes,
        [
            ("Sales".into(), "Legal".into()),
            ("Legal".into(), "Finance".into())
        ]
    );
    let group_history = b
        .json(&["dir", "history", "--tenant", "tt", &group])
        .unwrap();
    let removed = group_history["entries"]
        .as_array()
        .unwrap()
        .iter()
        .any(|e| {
            e["links"].as_array().is_some_and(|l| {
                l.iter()
                    .any(|l| l["targetId"] == u2.as_str() && l["change"] == "removed")
            })
        });
    assert!(removed, "{group_history}");

    assert_eq!(
        b.json(&["backup", "verify", "--tenant", "tt", &first_id])
            .unwrap()["ok"],
        true
    );

    // Everything restarts: backup ids and manifests stay, and so does time travel.
    b.stop().unwrap();
    b.launch().await.unwrap();
    let listed = b.json(&["backup", "list", "--tenant", "tt"]).unwrap();
    let ids: Vec<&str> = listed
        .as_array()
        .unwrap()
        .iter()
        .map(|b| b["id"].as_str().unwrap())
        .collect();
    assert_eq!(ids, [first_id.as_str(), second_id.as_str()]);
    let shown = b
        .json(&["backup", "show", "--tenant", "tt", &first_id])
        .unwrap();
    assert_eq!(
        (&shown["digest"], &shown["sequence"]),
        (&first["digest"], &first["sequence"])
    );
    assert_eq!(department(&b, "tt", &u1, &first_id), "Sales");

    // Tamper with the stored version behind the service's back: verify must fail.
    b.stop().unwrap();
    let store_dir = b.data().join("snapshotter");
    {
        let store = backtrack_store::TimeTravelStore::open(&store_dir).unwrap();
        // The creation of u1 (the oldest of its versions) is its version at the first
        // backup. Same length: the value stays well formed.
        let (key, mut forged) = store
            .scan_raw(format!("V/tt/{u1}\0").as_bytes())
            .unwrap()
            .pop()
            .unwrap();
        let at = forged.windows(5).position(|w| w == b"Sales").unwrap();
        forged[at..at + 5].copy_from_slice(b"Fraud");
        store.put_raw(&key, &forged).unwrap();
        store.flush().unwrap();
    }
    b.launch().await.unwrap();
    let out = b.cli(&["backup", "verify", "--tenant", "tt", &first_id]);
    assert!(
        !out.status.success(),
        "verify must fail on a tampered store"
    );
    let report: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(report["ok"], false);
    assert_eq!(report["mismatchedIds"], serde_json::json!([u1]));
    assert_eq!(
        department(&b, "tt", &u1, &first_id),
        "Fraud",
        "the tampered value is what the store serves"
    );

    // Delete the store: it rebuilds from the log to identical digests.
    b.stop().unwrap();
    std::fs::remove_dir_all(&store_dir).unwrap();
    b.launch().await.unwrap();
    for backup in [&first_id, &second_id] {
        let report = b
            .json(&["backup", "verify", "--tenant", "tt", backup])
            .unwrap();
        assert_eq!(report["ok"], true, "{report}");
        let store_digest = report["checks"]
            .as_array()
            .unwrap()
            .iter()
            .find(|c| c["source"] == "store")
            .unwrap()["digest"]
            .clone();
        let manifest = b
            .json(&["backup", "show", "--tenant", "tt", backup])
            .unwrap();
        assert_eq!(store_digest, manifest["digest"]);
    }
    assert_eq!(department(&b, "tt", &u1, &first_id), "Sales");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_per_second_schedule_takes_backups_and_nothing_deletes_them() {
    let nats = NatsServer::start().await.unwrap();
    let b = Backtrack::start_with(Some(nats.url()), &["--backup-min-interval-secs", "1"])
        .await
        .unwrap();
    b.json(&["tenant", "create", "sched"]).unwrap();
    create_user(&b, "sched", "s@sched.test", "Ops");
    let policy = b
        .json(&[
            "backup",
            "policy",
            "set",
            "--tenant",
            "sched",
            "--schedule",
            "* * * * * *",
            "--retention-days",
            "3",
        ])
        .unwrap();
    assert_eq!(policy["schedule"], "* * * * * *");
    assert_eq!(policy["retentionDays"], 3);
    let scheduled = eventually("a scheduled backup", Duration::from_secs(15), || async {
        let list = b.json(&["backup", "list", "--tenant", "sched"]).unwrap();
        list.as_array()
            .unwrap()
            .iter()
            .find(|b| b["trigger"] == "scheduled")
            .cloned()
    })
    .await
    .unwrap();
    assert_eq!(scheduled["requestedBy"], "scheduler");
    assert_eq!(scheduled["counts"]["user"]["live"], 1);

    // The backup stream refuses deletes and purges, whoever asks.
    let js = async_nats::jetstream::new(nats.client().await.unwrap());
    let stream = js.get_stream("BT_BACKUPS").await.unwrap();
    let info = stream.cached_info();
    assert!(info.config.deny_delete && info.config.deny_purge);
    assert!(stream.delete_message(1).await.is_err());
    assert!(stream.purge().await.is_err());
    let id = scheduled["id"].as_str().unwrap();
    assert_eq!(
        b.json(&["backup", "show", "--tenant", "sched", id])
            .unwrap()["id"],
        id
    );

    // Scheduled backups cannot be forged through the API, and bad schedules are refused.
    let out = b.cli(&[
        "backup",
        "policy",
        "set",
        "--tenant",
        "sched",
        "--schedule",
        "every day",
    ]);
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("six fields"));
}

#[tokio::test(flavor = "multi_thread")]
async fn a_schedule_that_fires_too_often_is_refused() {
    let b = Backtrack::start(None).await.unwrap();
    b.json(&["tenant", "create", "often"]).unwrap();
    let set = |schedule: &str| {
        b.cli(&[
            "backup",
            "policy",
            "set",
            "--tenant",
            "often",
            "--schedule",
            schedule,
        ])
    };
    // By default a schedule may fire every five minutes at most.
    let out = set("0 * * * * *");
    assert_eq!(out.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("every 60s") && stderr.contains("300s"),
        "{stderr}"
    );
    let policy = b
        .json(&["backup", "policy", "get", "--tenant", "often"])
        .unwrap();
    assert_eq!(policy["schedule"], "0 0 2 * * *", "the policy is unchanged");
    assert_eq!(
        policy["setAt"],
        Value::Null,
        "the deployment's default was never set"
    );
    // Since when the default has been what it is: this deployment's start, before the
    // tenant was created (what the overview judges missed slots from).
    let since = policy["defaultSince"].as_str().unwrap().to_string();
    let tenants = b.json(&["tenant", "list"]).unwrap();
    let created = tenants
        .as_array()
        .unwrap()
        .iter()
        .find(|t| t["id"] == "often")
        .unwrap()["createdDateTime"]
        .as_str()
        .unwrap()
        .to_string();
    assert!(since <= created, "{since} {created}");
    // Times in one RFC 3339 form (UTC, milliseconds) sort as they happened.
    let now = || {
        let ms = SystemTime::now()
            .duration_since(SystemTime::UNIX_EPOCH)
            .unwrap()
            .as_millis();
        i64::try_from(ms).unwrap()
    };
    let before = backtrack_domain::time::rfc3339_ms(now() - 5_000);
    assert!(set("0 */5 * * * *").status.success());
    // When it was set, as the policy bucket stored it: what the overview judges missed
    // slots from.
    let policy = b
        .json(&["backup", "policy", "get", "--tenant", "often"])
        .unwrap();
    let set_at = policy["setAt"].as_str().unwrap().to_string();
    let after = backtrack_domain::time::rfc3339_ms(now());
    assert!(before <= set_at && set_at <= after, "{policy}");
}

#[tokio::test(flavor = "multi_thread")]
async fn roles_and_tenants_bound_what_backup_callers_see_and_do() {
    let b = Backtrack::start(None).await.unwrap();
    for tenant in ["ra", "rb"] {
        b.json(&["tenant", "create", tenant]).unwrap();
    }
    let user_b = create_user(&b, "rb", "x@rb.test", "Ops");
    let backup_b = b.json(&["backup", "create", "--tenant", "rb"]).unwrap()["id"]
        .as_str()
        .unwrap()
        .to_string();
    b.json(&["backup", "create", "--tenant", "ra"]).unwrap();
    let token = |role: &str| {
        let out = b.cli(&[
            "token", "create", "--tenant", "ra", "--role", role, "--ttl", "1h",
        ]);
        String::from_utf8_lossy(&out.stdout).trim().to_string()
    };
    let (reader, writer) = (token("BackupReader"), token("DirectoryWriter"));
    let as_ = |token: &str, args: &[&str]| b.cli_with_env(args, &[("BACKTRACK_TOKEN", token)]);

    let listed = as_(&reader, &["backup", "list", "--tenant", "ra"]);
    assert!(listed.status.success());
    let listed: Value = serde_json::from_slice(&listed.stdout).unwrap();
    assert_eq!(listed.as_array().unwrap().len(), 1);
    // A reader may not take, pin or verify backups; a directory writer may not either.
    for args in [
        vec!["backup", "create", "--tenant", "ra"],
        vec![
            "backup",
            "policy",
            "set",
            "--tenant",
            "ra",
            "--retention-days",
            "9",
        ],
    ] {
        for token in [&reader, &writer] {
            let out = as_(token, &args);
            assert_eq!(
                out.status.code(),
                Some(3),
                "{args:?}: {}",
                String::from_utf8_lossy(&out.stderr)
            );
            assert!(String::from_utf8_lossy(&out.stderr).contains("PERMISSION_DENIED"));
        }
    }
    // Another tenant's backups and past states are out of reach, and its backup ids are
    // not found under one's own tenant.
    for args in [
        vec!["backup", "list", "--tenant", "rb"],
        vec!["backup", "show", "--tenant", "rb", &backup_b],
        vec!["dir", "get", "--tenant", "rb", &user_b, "--at", "now"],
        vec!["dir", "history", "--tenant", "rb", &user_b],
    ] {
        let out = as_(&reader, &args);
        assert_eq!(
            out.status.code(),
            Some(3),
            "{args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    let out = as_(&reader, &["backup", "show", "--tenant", "ra", &backup_b]);
    assert_eq!(out.status.code(), Some(4));
    let out = as_(
        &reader,
        &["dir", "get", "--tenant", "ra", &user_b, "--at", &backup_b],
    );
    assert_eq!(
        out.status.code(),
        Some(4),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(!String::from_utf8_lossy(&out.stderr).contains("x@rb.test"));
}
