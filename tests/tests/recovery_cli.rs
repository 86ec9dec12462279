//! Recovery end to end through the real `backtrack` binary: a scripted incident after a
//! backup, recovered from the report (everything back, diff empty, one audit record per
//! operation, each change once in the log under the job's correlation id), undone, and
//! recovered in part (one kind; two ids) without touching anything outside the scope.
#![allow(clippy::unwrap_used)]

use std::collections::{BTreeMap, BTreeSet};

use backtrack_e2e::Backtrack;
use backtrack_eventlog::{EventLog, StreamSettings};
use backtrack_proto::v1;
use backtrack_test_support::NatsServer;
use serde_json::{json, Value};

const T: &str = "inc";

fn uid(n: u32) -> String {
    format!("5b7f1c5e-0c1a-4c57-9f43-{n:012x}")
}

/// The objects of the incident.
struct Incident {
    backup: String,
    group: String,
    new_excluded: String,
    hard: String,
    soft: String,
    policy: String,
    location: String,
    app: String,
    added_user: String,
    added_group: String,
}

/// Imports a small tenant, takes a backup, then breaks things in every way a report
/// names: attribute changes (nested too), a wiped membership, a soft and a hard delete
/// (the purged user was a member and a manager), and objects added since.
fn incident(b: &Backtrack) -> Incident {
    b.json(&["tenant", "create", T]).unwrap();
    let (group, new_excluded, hard, soft) = (uid(900), uid(901), uid(902), uid(903));
    let (policy, location, app) = (uid(910), uid(911), uid(912));
    let mut lines: Vec<String> = Vec::new();
    for (id, name) in [(&hard, "Hard Delete"), (&soft, "Soft Delete")] {
        lines.push(json!({"@kind": "user", "id": id, "displayName": name, "userPrincipalName": format!("{}@inc.test", &id[30..]), "department": "Ops"}).to_string());
    }
    for i in 0..20 {
        let mut user = json!({"@kind": "user", "id": uid(i), "displayName": format!("User {i}"), "userPrincipalName": format!("u{i}@inc.test"), "department": "Sales"});
        if i < 3 {
            user["@links"] = json!({"manager": [hard.clone()]});
        }
        lines.push(user.to_string());
    }
    let mut members: Vec<String> = (0..5).map(uid).collect();
    members.push(hard.clone());
    lines.push(json!({"@kind": "group", "id": group, "displayName": "Finance", "@links": {"members": members}}).to_string());
    lines.push(
        json!({"@kind": "group", "id": new_excluded, "displayName": "Break glass"}).to_string(),
    );
    lines.push(json!({"@kind": "conditionalAccessPolicy", "id": policy, "displayName": "Require MFA", "state": "enabled",
        "conditions": {"users": {"includeUsers": ["All"], "excludeGroups": [group]}, "applications": {"includeApplications": ["All"]}},
        "grantControls": {"operator": "OR", "builtInControls": ["mfa"]}}).to_string());
    lines.push(json!({"@kind": "namedLocation", "id": location, "@odata.type": "#microsoft.graph.ipNamedLocation", "displayName": "HQ", "isTrusted": true,
        "ipRanges": [{"@odata.type": "#microsoft.graph.iPv4CidrRange", "cidrAddress": "10.0.0.0/8"}]}).to_string());
    lines.push(json!({"@kind": "application", "id": app, "displayName": "Portal", "web": {"redirectUris": ["https://portal.inc.test/callback"]}}).to_string());
    let file = b.data().join("inc.jsonl");
    std::fs::write(&file, lines.join("\n")).unwrap();
    let imported = b
        .json(&["dir", "import", "--tenant", T, file.to_str().unwrap()])
        .unwrap();
    assert_eq!(imported["created"], 27, "{imported}");
    let backup = b
        .json(&["backup", "create", "--tenant", T, "--description", "before"])
        .unwrap()["id"]
        .as_str()
        .unwrap()
        .to_string();

    let conditions = json!({"users": {"includeUsers": ["All"], "excludeGroups": [new_excluded]}, "applications": {"includeApplications": ["All"]}});
    let set = |id: &str, assignment: String| {
        b.json(&["dir", "update", "--tenant", T, id, "--set", &assignment])
            .unwrap();
    };
    set(&policy, format!("conditions={conditions}"));
    set(&policy, "state=disabled".into());
    b.json(&["dir", "delete", "--tenant", T, &location])
        .unwrap();
    for i in 0..10 {
        set(&uid(i), "department=Legal".into());
    }
    let mut wipe = vec![
        "dir",
        "link",
        "remove",
        "--tenant",
        T,
        &group,
        "--relation",
        "members",
    ];
    let first: Vec<String> = (0..5).map(uid).collect();
    wipe.extend(first.iter().map(String::as_str));
    b.json(&wipe).unwrap();
    set(
        &app,
        format!(
            "web={}",
            json!({"redirectUris": ["https://evil.example/callback"]})
        ),
    );
    b.json(&["dir", "delete", "--tenant", T, &soft]).unwrap();
    b.json(&["dir", "delete", "--tenant", T, &hard]).unwrap();
    b.json(&["dir", "purge", "--tenant", T, &hard, "--yes"])
        .unwrap();
    let added_user = b
        .create(
            T,
            "user",
            &[
                "displayName=Intruder",
                "userPrincipalName=intruder@inc.test",
            ],
        )
        .unwrap()["id"]
        .as_str()
        .unwrap()
        .to_string();
    let added_group = b
        .create(T, "group", &["displayName=Shadow admins"])
        .unwrap()["id"]
        .as_str()
        .unwrap()
        .to_string();
    Incident {
        backup,
        group,
        new_excluded,
        hard,
        soft,
        policy,
        location,
        app,
        added_user,
        added_group,
    }
}

/// A finished report from `from` to now, over the optional scope flags.
fn report(b: &Backtrack, from: &str, scope: &[&str]) -> Value {
    let mut args = vec!["diff", "create", "--tenant", T, "--from", from, "--wait"];
    args.extend_from_slice(scope);
    let report = b.json(&args).unwrap();
    assert_eq!(report["state"], "successful", "{report}");
    report
}

fn recover(b: &Backtrack, args: &[&str]) -> Value {
    b.recover(T, args)
}

fn object(b: &Backtrack, id: &str) -> Value {
    b.object(T, id)
}

/// Every event of the tenant in the log.
async fn events(nats: &NatsServer) -> Vec<backtrack_eventlog::StoredEvent> {
    let log = EventLog::open(nats.client().await.unwrap(), StreamSettings::default())
        .await
        .unwrap();
    log.read_range(1, u64::MAX, &format!("bt.ev.{T}.>"))
        .await
        .unwrap()
}

/// Events per mutation id among the job's events (correlation id = job id).
fn job_events(events: &[backtrack_eventlog::StoredEvent], job: &str) -> BTreeMap<String, usize> {
    let mut out = BTreeMap::new();
    for e in events {
        if e.event.meta.correlation_id.as_deref() == Some(job) {
            *out.entry(e.event.meta.mutation_id.clone()).or_default() += 1;
        }
    }
    out
}

/// Renames a policy: a change made outside any job.
fn rename(b: &Backtrack, policy: &str, name: &str) {
    let name = format!("displayName={name}");
    b.json(&["dir", "update", "--tenant", T, policy, "--set", &name])
        .unwrap();
}

/// The plan of `command --dry-run`, checked to have appended nothing, and the ids of the
/// objects it marks as changed after its conflict base.
fn dry_run(b: &Backtrack, command: &[&str]) -> (Value, BTreeSet<String>) {
    let before = backtrack_e2e::last_sequence(b).unwrap();
    let mut args = command.to_vec();
    args.push("--dry-run");
    let plan = b.json(&args).unwrap();
    assert_eq!(backtrack_e2e::last_sequence(b).unwrap(), before);
    let marked = plan["operations"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|o| o["changedAfterBase"] == true)
        .map(|o| o["id"].as_str().unwrap().to_string())
        .collect();
    (plan, marked)
}

#[tokio::test(flavor = "multi_thread")]
async fn a_scripted_incident_is_recovered_from_its_report_and_undone() {
    let nats = NatsServer::start().await.unwrap();
    let b = Backtrack::start(Some(nats.url())).await.unwrap();
    let i = incident(&b);
    let incident_report = report(&b, &i.backup, &[]);
    assert_eq!(incident_report["changed"], 18, "{incident_report}");
    let report_id = incident_report["id"].as_str().unwrap();
    // After the report, someone renames the policy: a change the report does not show.
    rename(&b, &i.policy, "Renamed later");

    // The dry run lists the plan and changes nothing. It marks the operations on the
    // policy as changed after the report, and only those.
    let (plan, marked) = dry_run(&b, &["recover", "--tenant", T, "--report", report_id]);
    assert_eq!(plan["conflictBase"], incident_report["target"]["sequence"]);
    assert_eq!(marked, BTreeSet::from([i.policy.clone()]), "{plan}");
    let table = b.cli(&[
        "recover",
        "--tenant",
        T,
        "--report",
        report_id,
        "--dry-run",
        "-o",
        "table",
    ]);
    let table = String::from_utf8_lossy(&table.stdout);
    assert!(
        table.contains("modified*") && table.contains("* 1 object(s) changed after the report"),
        "{table}"
    );
    let actions: Vec<&str> = plan["operations"]
        .as_array()
        .unwrap()
        .iter()
        .map(|o| o["action"].as_str().unwrap())
        .collect();
    // Added objects go first, restores before re-creations before attribute fixes before
    // links; the named location comes back before the policy's fix.
    let position = |action: &str| actions.iter().position(|a| *a == action).unwrap();
    assert!(position("softDelete") < position("restore"), "{actions:?}");
    assert!(position("restore") < position("recreate"), "{actions:?}");
    assert!(
        position("recreate") < position("setAttributes"),
        "{actions:?}"
    );
    assert!(
        position("setAttributes") < position("addLinks"),
        "{actions:?}"
    );
    assert_eq!(plan["passwordResets"], json!([i.hard]), "{plan}");
    // Without --yes and without a terminal, nothing starts.
    let refused = b.cli(&["recover", "--tenant", T, "--report", report_id]);
    assert!(!refused.status.success());
    assert!(String::from_utf8_lossy(&refused.stderr).contains("--yes"));

    let scrape = || async {
        let (status, body) = backtrack_e2e::http_get(b.http_port, "/metrics")
            .await
            .unwrap();
        assert_eq!(status, 200, "{body}");
        body
    };
    const APPLIED: &str = "backtrack_recovery_operations_applied_total";
    let before = scrape().await;
    let applied_before = backtrack_e2e::metric(&before, APPLIED).unwrap_or(0.0);

    let job = recover(&b, &["--report", report_id]);
    let job_id = job["id"].as_str().unwrap().to_string();
    assert_eq!(job["status"], "successfulWithWarnings", "{job}");
    assert_eq!(job["failed"], 0, "{job}");
    assert_eq!(job["skipped"], 0, "{job}");
    assert_eq!(job["residual"], 0, "{job}");
    assert_eq!(job["passwordResets"], json!([i.hard]), "{job}");
    assert!(job["preRecoveryBackupId"].is_string(), "{job}");

    // A fresh diff between the backup and now is empty.
    let after = report(&b, &i.backup, &[]);
    assert_eq!(after["changed"], 0, "{after}");
    // Spot checks: the policy's nested conditions, the purged user (same id) with its
    // memberships and the manager links pointing at it, the wiped group.
    let policy = object(&b, &i.policy);
    assert_eq!(
        policy["conditions"]["users"]["excludeGroups"],
        json!([i.group])
    );
    assert_eq!(policy["state"], "enabled");
    let hard = object(&b, &i.hard);
    assert_eq!(hard["displayName"], "Hard Delete");
    let members = b
        .json(&["dir", "members", "--tenant", T, &i.group])
        .unwrap();
    let mut member_ids: Vec<String> = members["targetIds"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m.as_str().unwrap().to_string())
        .collect();
    member_ids.sort();
    let mut want: Vec<String> = (0..5).map(uid).collect();
    want.push(i.hard.clone());
    want.sort();
    assert_eq!(member_ids, want);
    for n in 0..3 {
        let links = b
            .json(&[
                "dir",
                "members",
                "--tenant",
                T,
                &uid(n),
                "--relation",
                "manager",
            ])
            .unwrap();
        assert_eq!(links["targetIds"], json!([i.hard]), "{links}");
    }
    assert!(object(&b, &i.location)["deletedDateTime"].is_null());
    assert!(object(&b, &i.soft)["deletedDateTime"].is_null());
    let app = object(&b, &i.app);
    assert_eq!(
        app["web"]["redirectUris"],
        json!(["https://portal.inc.test/callback"])
    );
    for added in [&i.added_user, &i.added_group] {
        assert!(object(&b, added)["deletedDateTime"].is_string());
    }
    let _ = &i.new_excluded;

    // Each change is in the log once, under the job's correlation id, one audit record per
    // applied operation plus start and finish.
    let per_mutation = job_events(&events(&nats).await, &job_id);
    assert!(per_mutation.values().all(|n| *n == 1), "{per_mutation:?}");
    let applied =
        job["operations"]["total"].as_u64().unwrap() - job["alreadySatisfied"].as_u64().unwrap();
    assert_eq!(per_mutation.len() as u64, applied, "{job}");
    let records: Vec<v1::AuditRecord> = backtrack_e2e::audit_records(
        &nats.client().await.unwrap(),
        &format!("bt.audit.{T}.recovery"),
    )
    .await
    .unwrap()
    .into_iter()
    .filter(|r| r.correlation.as_ref().is_some_and(|c| c.job_id == job_id))
    .collect();
    let operations = records
        .iter()
        .filter(|r| r.action == "recovery.operationApplied")
        .count();
    assert_eq!(operations, per_mutation.len());
    assert_eq!(records.first().unwrap().action, "recovery.started");
    assert_eq!(records.last().unwrap().action, "recovery.finished");
    assert_eq!(records.len(), operations + 2);
    assert!(records
        .iter()
        .all(|r| r.actor.as_ref().unwrap().subject == "admin"));

    // The scrape counts the same operations, the finished job and the appended events, and
    // shows every projection's lag.
    let after = scrape().await;
    let applied_after = backtrack_e2e::metric(&after, APPLIED).unwrap();
    assert_eq!(applied_after - applied_before, operations as f64, "{after}");
    assert_eq!(
        backtrack_e2e::metric(
            &after,
            "backtrack_recovery_jobs_finished_total{state=\"successfulWithWarnings\"}"
        ),
        Some(1.0),
        "{after}"
    );
    assert!(
        backtrack_e2e::metric(&after, "backtrack_events_appended_total").unwrap()
            >= operations as f64
    );
    for projection in ["directory", "timetravel", "alerter", "audit"] {
        let lag = backtrack_e2e::metric(
            &after,
            &format!("backtrack_projection_lag_events{{projection=\"{projection}\"}}"),
        );
        assert!(lag.is_some_and(|l| l >= 0.0), "{projection}: {after}");
    }
    for desc in backtrack_platform::metrics::CATALOGUE {
        assert!(
            after.contains(&format!("# TYPE {} ", desc.name)),
            "{}: {after}",
            desc.name
        );
    }
    assert!(
        after.contains("backtrack_rpc_seconds_count{method=\"/backtrack.v1.RecoveryService/"),
        "{after}"
    );

    // Listing, showing and the failed list: nothing failed; the one object the dry run
    // marked as changed after the report was set back anyway.
    let listed = b.json(&["recovery", "list", "--tenant", T]).unwrap();
    assert_eq!(listed.as_array().unwrap().len(), 1);
    let shown = b
        .json(&["recovery", "show", "--tenant", T, &job_id])
        .unwrap();
    assert_eq!(shown["id"], job_id.as_str());
    let failed = b
        .json(&["recovery", "failed", "--tenant", T, &job_id])
        .unwrap();
    let failed: Vec<(&str, &str)> = failed
        .as_array()
        .unwrap()
        .iter()
        .map(|f| (f["id"].as_str().unwrap(), f["outcome"].as_str().unwrap()))
        .collect();
    assert_eq!(failed, [(i.policy.as_str(), "overwritten")]);

    // After the recovery someone renames the policy again (the recovery had set its name
    // back: a conflict the undo's dry run marks and the undo sets back with a warning), and
    // gives the group a description (nothing the recovery changed: the undo leaves it).
    rename(&b, &i.policy, "Renamed after the recovery");
    let described = [
        "dir",
        "update",
        "--tenant",
        T,
        &i.group,
        "--set",
        "description=Kept by the undo",
    ];
    b.json(&described).unwrap();
    let (undo_plan, marked) = dry_run(&b, &["recovery", "undo", "--tenant", T, &job_id]);
    assert_eq!(undo_plan["changesOfJob"], job_id.as_str(), "{undo_plan}");
    assert!(undo_plan["conflictBase"].is_null(), "{undo_plan}");
    assert_eq!(marked, BTreeSet::from([i.policy.clone()]), "{undo_plan}");

    // Undo: what the recovery changed goes back to what it found.
    let pre = job["preRecoveryBackupId"].as_str().unwrap();
    let undo = b
        .json(&[
            "recovery", "undo", "--tenant", T, &job_id, "--yes", "--wait",
        ])
        .unwrap();
    assert_eq!(undo["undoOf"], job_id.as_str(), "{undo}");
    assert_eq!(undo["residual"], 0, "{undo}");
    let conflict = format!("changed again after recovery {job_id}: displayName (by admin)");
    assert!(
        undo["warnings"]
            .as_array()
            .unwrap()
            .iter()
            .any(|w| w.as_str().unwrap().contains(&conflict)),
        "{undo}"
    );
    let listed = b
        .json(&[
            "recovery",
            "failed",
            "--tenant",
            T,
            undo["id"].as_str().unwrap(),
        ])
        .unwrap();
    assert_eq!(listed[0]["id"], i.policy.as_str(), "{listed}");
    assert_eq!(listed[0]["outcome"], "conflict", "{listed}");
    // Everything is as before the recovery but the description given after it.
    let undone = report(&b, pre, &[]);
    assert_eq!(undone["changed"], 1, "{undone}");
    assert_eq!(object(&b, &i.group)["description"], "Kept by the undo");
    assert_eq!(object(&b, &i.policy)["state"], "disabled");
}

#[tokio::test(flavor = "multi_thread")]
async fn scoped_recoveries_touch_nothing_outside_their_scope() {
    let nats = NatsServer::start().await.unwrap();
    let b = Backtrack::start(Some(nats.url())).await.unwrap();
    let i = incident(&b);
    let all_before = report(&b, &i.backup, &[]);
    let changed = |r: &Value| -> BTreeMap<String, String> {
        let items = b
            .json(&[
                "diff",
                "show",
                "--tenant",
                T,
                r["id"].as_str().unwrap(),
                "--page-size",
                "1000",
            ])
            .unwrap();
        items["items"]
            .as_array()
            .unwrap()
            .iter()
            .map(|i| {
                (
                    i["objectId"].as_str().unwrap().to_string(),
                    i["kind"].as_str().unwrap().to_string(),
                )
            })
            .collect()
    };
    let before = changed(&all_before);

    // One kind: every user is back, nothing else moved.
    let job = recover(&b, &["--from", &i.backup, "--kind", "user"]);
    assert_eq!(job["residual"], 0, "{job}");
    let left = changed(&report(&b, &i.backup, &[]));
    let expected: BTreeMap<String, String> = before
        .iter()
        .filter(|(_, kind)| *kind != "user")
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect();
    assert_eq!(left, expected);

    // Users again: nothing is left to do, and the dry run says so.
    let dry = b.cli(&[
        "recover",
        "--tenant",
        T,
        "--from",
        &i.backup,
        "--kind",
        "user",
        "--dry-run",
        "-o",
        "table",
    ]);
    let out = String::from_utf8_lossy(&dry.stdout);
    assert!(
        dry.status.success()
            && out.contains("nothing to recover: the scope already matches the recovery point"),
        "{out}"
    );
    // The header says which point that was: the backup's sequence, time and id.
    let backup = b
        .json(&["backup", "show", "--tenant", T, &i.backup])
        .unwrap();
    let header = format!(
        "back to sequence {} ({}), backup {}",
        backup["sequence"],
        backup["createdAt"].as_str().unwrap(),
        i.backup
    );
    assert!(out.contains(&header), "{header}: {out}");
    // The group still lacks its members, the purged user is back (a user), the policy is
    // untouched.
    assert_eq!(object(&b, &i.policy)["state"], "disabled");
    assert!(left.contains_key(&i.group));

    // Two ids: exactly those two objects come back.
    let job = recover(
        &b,
        &["--from", &i.backup, "--id", &i.policy, "--id", &i.app],
    );
    assert_eq!(job["residual"], 0, "{job}");
    let left_after = changed(&report(&b, &i.backup, &[]));
    let mut expected = left;
    expected.remove(&i.policy);
    expected.remove(&i.app);
    assert_eq!(left_after, expected);
    assert_eq!(object(&b, &i.policy)["state"], "enabled");
    assert!(object(&b, &i.location)["deletedDateTime"].is_string());

    // Roles: readers see jobs but start none; a kind-scoped administrator recovers only
    // its kinds, and must name them; another tenant's token sees nothing.
    let token = |tenant: &str, role: &str, kinds: &[&str]| {
        let mut args = vec![
            "token", "create", "--tenant", tenant, "--role", role, "--ttl", "1h",
        ];
        for k in kinds {
            args.extend(["--kind", k]);
        }
        let out = b.cli(&args);
        String::from_utf8_lossy(&out.stdout).trim().to_string()
    };
    let reader = token(T, "BackupReader", &[]);
    let user_admin = token(T, "BackupAdministrator", &["user"]);
    let stranger = token("other", "GlobalAdministrator", &[]);
    let as_ = |token: &str, args: &[&str]| b.cli_with_env(args, &[("BACKTRACK_TOKEN", token)]);
    let denied = |out: std::process::Output| {
        assert_eq!(
            out.status.code(),
            Some(3),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        assert!(String::from_utf8_lossy(&out.stderr).contains("PERMISSION_DENIED"));
    };
    let start = [
        "recover",
        "--tenant",
        T,
        "--from",
        i.backup.as_str(),
        "--yes",
    ];
    denied(as_(&reader, &start));
    assert!(as_(&reader, &["recovery", "list", "--tenant", T])
        .status
        .success());
    denied(as_(&user_admin, &start));
    let mut groups = start.to_vec();
    groups.extend(["--kind", "group"]);
    denied(as_(&user_admin, &groups));
    let users_dry = [
        "recover",
        "--tenant",
        T,
        "--from",
        i.backup.as_str(),
        "--kind",
        "user",
        "--dry-run",
    ];
    assert!(as_(&user_admin, &users_dry).status.success());
    denied(as_(&stranger, &["recovery", "list", "--tenant", T]));
}
