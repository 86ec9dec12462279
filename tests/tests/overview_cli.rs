//! `backtrack overview` through the real binary: a tenant's parts, and alerts on what one
//! account did (a conditional access policy deleted, another disabled, a run of
//! deletions), each with the dry run that undoes it; the suggested command, run, puts it
//! back, and the alerts then say they were set back, by which recovery; a caller whose
//! role does not cover a part sees why, and the rest.
#![allow(clippy::unwrap_used)]

use backtrack_e2e::Backtrack;
use std::time::Duration;

use backtrack_test_support::{eventually, NatsServer};
use serde_json::Value;

const T: &str = "ov";

fn alert<'a>(overview: &'a Value, rule: &str) -> &'a Value {
    overview["changes"]["alerts"]
        .as_array()
        .unwrap()
        .iter()
        .find(|a| a["rule"] == rule)
        .unwrap_or_else(|| panic!("no {rule} in {overview}"))
}

/// The rules of an overview's alerts, in order.
fn rules(overview: &Value) -> Vec<&str> {
    overview["changes"]["alerts"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a["rule"].as_str().unwrap())
        .collect()
}

#[tokio::test(flavor = "multi_thread")]
async fn the_overview_names_what_one_account_broke_and_how_to_undo_it() {
    let nats = NatsServer::start().await.unwrap();
    let b = Backtrack::start(Some(nats.url())).await.unwrap();
    b.json(&["tenant", "create", T]).unwrap();
    let policy = |name: &str| {
        let set = [
            format!("displayName={name}"),
            "state=enabled".into(),
            r#"conditions={"users":{"includeUsers":["All"]}}"#.into(),
        ];
        let set: Vec<&str> = set.iter().map(String::as_str).collect();
        b.create(T, "conditionalAccessPolicy", &set).unwrap()["id"]
            .as_str()
            .unwrap()
            .to_string()
    };
    let (deleted, disabled) = (policy("CA001"), policy("CA002"));
    let users: Vec<String> = (0..3)
        .map(|n| {
            let upn = format!("userPrincipalName=u{n}@ov.test");
            let name = format!("displayName=U{n}");
            b.create(T, "user", &[&upn, &name]).unwrap()["id"]
                .as_str()
                .unwrap()
                .to_string()
        })
        .collect();
    b.json(&["backup", "create", "--tenant", T]).unwrap();

    // Nothing wrong yet: no alert.
    let calm = b.json(&["overview", "--tenant", T]).unwrap();
    assert_eq!(calm["changes"]["alerts"], Value::Array(vec![]), "{calm}");
    assert_eq!(calm["backups"]["count"], 1, "{calm}");
    assert_eq!(calm["status"]["objects"], 5, "{calm}");

    let mallory = b.token_for(T, "DirectoryWriter", "mallory");
    let as_mallory = |args: &[&str]| b.ok_with_token(&mallory, args);
    as_mallory(&["dir", "delete", "--tenant", T, &deleted]);
    let update = ["dir", "update", "--tenant", T, &disabled];
    as_mallory(&[&update[..], &["--set", "state=disabled"]].concat());
    for user in &users {
        as_mallory(&["dir", "delete", "--tenant", T, user]);
    }

    let overview = b
        .json(&["overview", "--tenant", T, "--mass-deletions", "4"])
        .unwrap();
    let first = &overview["changes"]["alerts"][0];
    assert_eq!(first["rule"], "caPolicyDeleted", "{overview}");
    assert_eq!(first["severity"], "critical");
    assert_eq!(first["actor"], "mallory");
    assert_eq!(first["object"]["id"], deleted.as_str());
    // Named as it was just before the change (it is in the recycle bin now).
    assert_eq!(first["object"]["displayName"], "CA001", "{first}");
    assert_eq!(
        alert(&overview, "caPolicyDisabled")["object"]["id"],
        disabled.as_str()
    );
    assert_eq!(
        alert(&overview, "massDeletion")["what"],
        "4 objects deleted by one actor"
    );
    // The default threshold (20) makes no mass deletion of four.
    let default = b.json(&["overview", "--tenant", T]).unwrap();
    assert_eq!(
        rules(&default),
        ["caPolicyDeleted", "caPolicyDisabled"],
        "{default}"
    );
    // The tenant's alert policy sets the defaults and turns rules off, as for the alerter.
    b.json(&[
        "alerts",
        "policy",
        "set",
        "--tenant",
        T,
        "--mass-deletions",
        "4",
        "--disable",
        "caPolicyDisabled",
    ])
    .unwrap();
    let tuned = b.json(&["overview", "--tenant", T]).unwrap();
    assert_eq!(
        rules(&tuned),
        ["caPolicyDeleted", "massDeletion"],
        "{tuned}"
    );
    // Turning a rule off is itself on the screen, as a finding about the protection.
    let silenced = eventually(
        "the alertsSilenced finding",
        Duration::from_secs(30),
        || {
            let overview = b.json(&["overview", "--tenant", T]).unwrap();
            async move {
                let health = overview["health"].as_array().unwrap().clone();
                health.into_iter().find(|h| h["rule"] == "alertsSilenced")
            }
        },
    )
    .await
    .unwrap();
    assert_eq!(silenced["severity"], "high", "{silenced}");
    assert!(
        silenced["what"]
            .as_str()
            .unwrap()
            .starts_with("rules turned off + caPolicyDisabled (by admin at "),
        "{silenced}"
    );
    assert!(silenced["fix"]
        .as_str()
        .unwrap()
        .contains("backtrack alerts policy get --tenant ov"));
    // Since a later change (a sequence, as a consumer resumes): the trail's finding
    // before it is not listed.
    b.create(T, "group", &["displayName=Later"]).unwrap();
    let later = format!("seq:{}", backtrack_e2e::last_sequence(&b).unwrap());
    let since = b
        .json(&["overview", "--tenant", T, "--since", &later])
        .unwrap();
    assert!(
        !since["health"]
            .as_array()
            .unwrap()
            .iter()
            .any(|h| h["rule"] == "alertsSilenced"),
        "{since}"
    );

    // The table shows the same, and the command that undoes the run of deletions.
    let table = b.cli(&[
        "overview",
        "--tenant",
        T,
        "--mass-deletions",
        "4",
        "-o",
        "table",
    ]);
    let text = String::from_utf8_lossy(&table.stdout);
    let undo = alert(&overview, "massDeletion")["undo"].as_str().unwrap();
    let row = |text: &str, words: &[&str]| {
        text.lines()
            .any(|l| words.iter().all(|w| l.split_whitespace().any(|x| x == *w)))
    };
    assert!(
        row(&text, &["critical", "open", "caPolicyDeleted"])
            && text.contains(&format!("conditionalAccessPolicy CA001 ({deleted})"))
            && text.contains(undo),
        "{text}"
    );

    // Running it (not as a dry run) puts back what mallory deleted, and only that.
    let words: Vec<&str> = undo
        .split(' ')
        .skip(1)
        .filter(|w| *w != "--dry-run")
        .chain(["--yes", "--wait"])
        .collect();
    let job = b.json(&words).unwrap();
    let job = job["id"].as_str().unwrap();
    let get = |id: &str| b.json(&["dir", "get", "--tenant", T, id]).unwrap();
    assert!(get(&deleted)["deletedDateTime"].is_null());
    assert!(users.iter().all(|u| get(u)["deletedDateTime"].is_null()));
    assert_eq!(get(&disabled)["state"], "enabled");

    // The overview now tells the alerts set back since, by which change and job.
    let after = b.json(&["overview", "--tenant", T]).unwrap();
    assert_eq!(
        rules(&after),
        ["caPolicyDeleted", "massDeletion"],
        "{after}"
    );
    for rule in ["caPolicyDeleted", "massDeletion"] {
        let a = alert(&after, rule);
        assert_eq!(a["state"], "undone", "{a}");
        assert_eq!(a["undone"]["job"], job, "{a}");
        assert_eq!(a["undone"]["actor"], "admin", "{a}");
    }
    // The policy's history marks the change that raised the alert, and what set it back.
    let history = b
        .json(&["dir", "history", "--tenant", T, &disabled])
        .unwrap();
    let flagged: Vec<&Value> = history["entries"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["alerts"].is_array())
        .collect();
    assert_eq!(flagged.len(), 1, "{history}");
    assert_eq!(flagged[0]["actor"], "mallory");
    let raised = &flagged[0]["alerts"][0];
    assert_eq!(raised["rule"], "caPolicyDisabled", "{raised}");
    assert_eq!(raised["state"], "undone", "{raised}");
    assert_eq!(raised["undone"]["job"], job, "{raised}");
    let table = b.cli(&["dir", "history", "--tenant", T, &disabled, "-o", "table"]);
    let text = String::from_utf8_lossy(&table.stdout);
    assert!(
        text.contains("⚠ high caPolicyDisabled: state enabled → disabled; set back at seq:")
            && text.contains(&format!("by admin (job {job})")),
        "{text}"
    );

    // The job itself names the alerts it set back (the alerter closed them on the trail).
    let shown = eventually("the job's alerts set back", Duration::from_secs(30), || {
        let shown = b.json(&["recovery", "show", "--tenant", T, job]).unwrap();
        async move {
            let n = shown["alertsSetBack"].as_array().map_or(0, Vec::len);
            (n >= 2).then_some(shown)
        }
    })
    .await
    .unwrap();
    let closed = shown["alertsSetBack"].as_array().unwrap();
    let mut closed_rules: Vec<&str> = closed.iter().map(|a| a["rule"].as_str().unwrap()).collect();
    closed_rules.sort_unstable();
    assert_eq!(
        closed_rules,
        ["caPolicyDeleted", "caPolicyDisabled"],
        "{shown}"
    );
    let policy = closed
        .iter()
        .find(|a| a["rule"] == "caPolicyDeleted")
        .unwrap();
    assert_eq!(policy["object"]["displayName"], "CA001", "{policy}");
    let show = b.cli(&["recovery", "show", "--tenant", T, job, "-o", "table"]);
    let text = String::from_utf8_lossy(&show.stdout);
    assert!(
        text.contains("alerts      2 set back by this job:")
            && text.contains(&format!(
                "critical caPolicyDeleted: conditionalAccessPolicy CA001 ({deleted})"
            )),
        "{text}"
    );

    let table = b.cli(&["overview", "--tenant", T, "-o", "table"]);
    let text = String::from_utf8_lossy(&table.stdout);
    assert!(
        text.contains("2 of them set back since")
            && row(&text, &["critical", "undone", "caPolicyDeleted"])
            && text.contains(&format!("(recovery {job})"))
            && text.contains("nothing to undo")
            && !text.contains("--dry-run"),
        "{text}"
    );

    // A directory writer's token: the parts its role does not cover say why.
    let out = b.cli_with_env(
        &["overview", "--tenant", T, "-o", "json"],
        &[("BACKTRACK_TOKEN", &mallory)],
    );
    assert!(out.status.success(), "{out:?}");
    let limited: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert!(limited["backups"]["error"].as_str().is_some(), "{limited}");
    // Two policies, three users and the group made later.
    assert_eq!(limited["status"]["objects"], 6, "{limited}");

    // A privileged built-in role assigned: named by role and principal, though neither
    // the built-in role nor the assignment existed just before.
    let before = format!("seq:{}", backtrack_e2e::last_sequence(&b).unwrap());
    let assignment = [
        "roleDefinitionId=62e90394-69f5-4237-9190-012177145e10",
        &format!("principalId={}", users[0]),
        "directoryScopeId=/",
    ];
    b.create(T, "roleAssignment", &assignment).unwrap();
    let assigned = b
        .json(&["overview", "--tenant", T, "--since", &before])
        .unwrap();
    assert_eq!(rules(&assigned), ["privilegedRoleAssigned"], "{assigned}");
    let alert = &assigned["changes"]["alerts"][0];
    assert_eq!(alert["severity"], "high");
    assert_eq!(
        alert["object"]["displayName"], "Global Administrator → U0",
        "{alert}"
    );
    // The rule sees ids; the overview says it with the names.
    assert_eq!(
        alert["what"],
        "privileged role Global Administrator assigned to U0"
    );
    assert_eq!(alert["state"], "open");

    // The rule turned on again: the finding that it was turned off reads resolved.
    let silenced = |overview: &Value| {
        overview["health"]
            .as_array()
            .unwrap()
            .iter()
            .find(|h| h["rule"] == "alertsSilenced")
            .cloned()
            .unwrap_or_else(|| panic!("{overview}"))
    };
    assert_eq!(silenced(&overview_now(&b))["resolved"], Value::Null);
    b.json(&[
        "alerts",
        "policy",
        "set",
        "--tenant",
        T,
        "--enable",
        "caPolicyDisabled",
    ])
    .unwrap();
    assert_eq!(
        silenced(&overview_now(&b))["resolved"],
        "the alert policy no longer silences what this change did"
    );
}

/// The tenant's overview over the default window (its trail findings included).
fn overview_now(b: &Backtrack) -> Value {
    b.json(&["overview", "--tenant", T]).unwrap()
}
