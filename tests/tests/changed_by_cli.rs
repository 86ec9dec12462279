//! Undoing what one account did, through the real `backtrack` binary: `recover
//! --changed-by` and `diff create --changed-by`, against another administrator's changes
//! to the same objects.
#![allow(clippy::unwrap_used)]

use std::collections::BTreeSet;

use backtrack_e2e::Backtrack;
use backtrack_test_support::NatsServer;
use serde_json::{json, Value};

const T: &str = "inc";

fn recover(b: &Backtrack, args: &[&str]) -> Value {
    b.recover(T, args)
}

fn object(b: &Backtrack, id: &str) -> Value {
    b.object(T, id)
}

/// The ids a report's or a job's scope names.
fn scope_ids(v: &Value) -> BTreeSet<&str> {
    let ids = v["scope"]["ids"].as_array().unwrap();
    ids.iter().filter_map(Value::as_str).collect()
}

/// Undo what one account did: `--changed-by` sets back exactly what that subject changed
/// after the point, and leaves what others changed alone, in the same objects too; a
/// report with `--changed-by` covers the objects it changed.
#[tokio::test(flavor = "multi_thread")]
async fn a_recovery_can_cover_what_one_account_changed() {
    let nats = NatsServer::start().await.unwrap();
    let b = Backtrack::start(Some(nats.url())).await.unwrap();
    b.json(&["tenant", "create", T]).unwrap();
    let users: Vec<String> = (0..4)
        .map(|n| {
            let upn = format!("userPrincipalName=u{n}@inc.test");
            let set = [format!("displayName=U{n}"), upn, "department=Sales".into()];
            let set: Vec<&str> = set.iter().map(String::as_str).collect();
            b.create(T, "user", &set).unwrap()["id"]
                .as_str()
                .unwrap()
                .to_string()
        })
        .collect();
    let point = format!("seq:{}", backtrack_e2e::last_sequence(&b).unwrap());
    let mallory = b.token_for(T, "DirectoryWriter", "mallory");
    let as_mallory = |args: &[&str]| b.ok_with_token(&mallory, args);
    as_mallory(&[
        "dir",
        "update",
        "--tenant",
        T,
        &users[0],
        "--set",
        "department=Gone",
    ]);
    as_mallory(&["dir", "delete", "--tenant", T, &users[1]]);
    // Someone else changes another user meanwhile: that stays.
    b.json(&[
        "dir",
        "update",
        "--tenant",
        T,
        &users[2],
        "--set",
        "department=Legal",
    ])
    .unwrap();

    // Nobody else's changes: nothing to do, and no job.
    let out = b.cli(&[
        "recover",
        "--tenant",
        T,
        "--from",
        &point,
        "--changed-by",
        "nobody",
        "--yes",
    ]);
    assert!(out.status.success(), "{out:?}");
    assert!(String::from_utf8_lossy(&out.stderr).contains("nobody changed nothing in scope"));
    assert_eq!(
        b.json(&["recovery", "list", "--tenant", T]).unwrap(),
        json!([])
    );

    // Someone else then changes one of mallory's objects too: a new title, and the
    // department mallory changed.
    b.json(&[
        "dir",
        "update",
        "--tenant",
        T,
        &users[0],
        "--set",
        "jobTitle=Boss",
        "--set",
        "department=Audit",
    ])
    .unwrap();

    // A report of what mallory changed: mallory's changes alone, as they stand now.
    let report = b
        .json(&[
            "diff",
            "create",
            "--tenant",
            T,
            "--from",
            &point,
            "--changed-by",
            "mallory",
            "--wait",
        ])
        .unwrap();
    assert_eq!(report["changed"], 2, "{report}");
    assert_eq!(report["scope"]["changedBy"], json!(["mallory"]), "{report}");
    let shown = b
        .json(&[
            "diff",
            "show",
            "--tenant",
            T,
            report["id"].as_str().unwrap(),
        ])
        .unwrap();
    let first = shown["items"]
        .as_array()
        .unwrap()
        .iter()
        .find(|i| i["objectId"] == users[0].as_str())
        .unwrap();
    let paths: Vec<&str> = first["attributes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a["path"].as_str().unwrap())
        .collect();
    // Admin's new title is not mallory's; the department mallory changed is there, as
    // admin left it.
    assert_eq!(paths, ["department"], "{first}");
    assert_eq!(first["attributes"][0]["target"], "Audit", "{first}");
    // A recovery from that report sets back mallory's changes, and its question says so
    // (without a terminal to ask on, the question comes back in the refusal).
    let asked = b.cli(&[
        "recover",
        "--tenant",
        T,
        "--report",
        report["id"].as_str().unwrap(),
    ]);
    let asked = String::from_utf8_lossy(&asked.stderr);
    assert!(
        asked.contains(&format!(
            "Set back what mallory changed in tenant {T} after sequence"
        )),
        "{asked}"
    );

    // The plan sets back mallory's department over admin's later one, and says so.
    let dry = b.cli(&[
        "recover",
        "--tenant",
        T,
        "--from",
        &point,
        "--changed-by",
        "mallory",
        "--dry-run",
        "-o",
        "table",
    ]);
    let plan = String::from_utf8_lossy(&dry.stdout);
    assert!(
        plan.contains("only what mallory changed after it, each back to what they found")
            && plan.contains("changed again after mallory: department (by admin); set back")
            && plan.contains(
                "* 1 object(s) where someone else changed again what the recovery sets back"
            ),
        "{plan}"
    );
    let job = recover(&b, &["--from", &point, "--changed-by", "mallory"]);
    assert_eq!(job["residual"], 0, "{job}");
    assert_eq!(job["scope"]["changedBy"], json!(["mallory"]), "{job}");
    assert!(scope_ids(&job).is_empty(), "{job}");
    let job_id = job["id"].as_str().unwrap();
    let shown = b.cli(&["recovery", "show", "--tenant", T, job_id, "-o", "table"]);
    let shown = String::from_utf8_lossy(&shown.stdout);
    assert!(
        shown.contains("scope       every kind; changes by mallory\n"),
        "{shown}"
    );
    // The audit trail says whose changes the job set back.
    let started = backtrack_e2e::audit_records(
        &nats.client().await.unwrap(),
        &format!("bt.audit.{T}.recovery"),
    )
    .await
    .unwrap()
    .into_iter()
    .find(|r| r.action == "recovery.started" && r.correlation.as_ref().unwrap().job_id == job_id)
    .unwrap();
    let details: Value = serde_json::from_str(&started.details_json).unwrap();
    assert_eq!(
        details["scope"]["changedBy"],
        json!(["mallory"]),
        "{details}"
    );
    assert_eq!(object(&b, &users[0])["department"], "Sales");
    // Admin's title, set after mallory's change in the same object, stays.
    assert_eq!(object(&b, &users[0])["jobTitle"], "Boss");
    assert!(object(&b, &users[1])["deletedDateTime"].is_null());
    assert_eq!(object(&b, &users[2])["department"], "Legal");
}
