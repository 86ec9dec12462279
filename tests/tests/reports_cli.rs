//! Difference reports end to end through the real `backtrack` binary: a scripted incident
//! after a backup, and a report that lists exactly those changes with exact old and new
//! values (nothing more, nothing missing), also between two backups and two instants, in
//! the JSON export, and after a restart.
#![allow(clippy::unwrap_used)]

use std::collections::BTreeMap;
use std::time::SystemTime;

use backtrack_e2e::Backtrack;
use backtrack_test_support::NatsServer;
use serde_json::{json, Value};

fn uid(n: u32) -> String {
    format!("5b7f1c5e-0c1a-4c57-9f43-{n:012x}")
}

fn now_rfc3339() -> String {
    let ms = SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .unwrap()
        .as_millis() as i64;
    let text = backtrack_domain::time::rfc3339_ms(ms);
    // Later events must carry a later stream millisecond than this instant.
    let start = SystemTime::now();
    while SystemTime::now().duration_since(start).unwrap().as_millis() < 2 {
        std::hint::spin_loop();
    }
    text
}

/// Every item of a finished report, by object id.
fn items(b: &Backtrack, report: &str) -> BTreeMap<String, Value> {
    let shown = b
        .json(&[
            "diff",
            "show",
            "--tenant",
            "inc",
            report,
            "--page-size",
            "1000",
        ])
        .unwrap();
    shown["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| (i["objectId"].as_str().unwrap().to_string(), i.clone()))
        .collect()
}

fn create_report(b: &Backtrack, args: &[&str]) -> Value {
    let mut full = vec!["diff", "create", "--tenant", "inc", "--wait"];
    full.extend_from_slice(args);
    let report = b.json(&full).unwrap();
    assert_eq!(report["state"], "successful", "{report}");
    report
}

#[tokio::test(flavor = "multi_thread")]
async fn a_scripted_incident_is_reported_exactly() {
    let nats = NatsServer::start().await.unwrap();
    let mut b = Backtrack::start(Some(nats.url())).await.unwrap();
    b.json(&["tenant", "create", "inc"]).unwrap();
    let (group, new_excluded, hard, soft) = (uid(900), uid(901), uid(902), uid(903));
    let (policy, location, app) = (uid(910), uid(911), uid(912));
    let mut lines: Vec<String> = (0..60)
        .map(|i| json!({"@kind": "user", "id": uid(i), "displayName": format!("User {i}"), "userPrincipalName": format!("u{i}@inc.test"), "department": "Sales"}).to_string())
        .collect();
    for (id, name) in [(&hard, "Hard Delete"), (&soft, "Soft Delete")] {
        lines.push(json!({"@kind": "user", "id": id, "displayName": name, "userPrincipalName": format!("{}@inc.test", &id[30..]), "department": "Ops"}).to_string());
    }
    lines.push(json!({"@kind": "group", "id": group, "displayName": "Finance", "@links": {"members": (0..5).map(uid).collect::<Vec<_>>()}}).to_string());
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
        .json(&["dir", "import", "--tenant", "inc", file.to_str().unwrap()])
        .unwrap();
    assert_eq!(imported["created"], 67, "{imported}");
    let before = b
        .json(&[
            "backup",
            "create",
            "--tenant",
            "inc",
            "--description",
            "before",
        ])
        .unwrap();
    let before_id = before["id"].as_str().unwrap().to_string();
    let instant_before = now_rfc3339();

    // The incident.
    let conditions = json!({"users": {"includeUsers": ["All"], "excludeGroups": [new_excluded]}, "applications": {"includeApplications": ["All"]}});
    b.json(&[
        "dir",
        "update",
        "--tenant",
        "inc",
        &policy,
        "--set",
        &format!("conditions={conditions}"),
    ])
    .unwrap();
    b.json(&["dir", "delete", "--tenant", "inc", &location])
        .unwrap();
    for i in 0..50 {
        b.json(&[
            "dir",
            "update",
            "--tenant",
            "inc",
            &uid(i),
            "--set",
            "department=Legal",
        ])
        .unwrap();
    }
    let members: Vec<String> = (0..5).map(uid).collect();
    let mut wipe = vec![
        "dir",
        "link",
        "remove",
        "--tenant",
        "inc",
        &group,
        "--relation",
        "members",
    ];
    wipe.extend(members.iter().map(String::as_str));
    b.json(&wipe).unwrap();
    let web = json!({"redirectUris": ["https://evil.example/callback"]});
    b.json(&[
        "dir",
        "update",
        "--tenant",
        "inc",
        &app,
        "--set",
        &format!("web={web}"),
    ])
    .unwrap();
    b.json(&["dir", "delete", "--tenant", "inc", &soft])
        .unwrap();
    b.json(&["dir", "delete", "--tenant", "inc", &hard])
        .unwrap();
    b.json(&["dir", "purge", "--tenant", "inc", &hard, "--yes"])
        .unwrap();
    let added_user = b
        .create(
            "inc",
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
        .create("inc", "group", &["displayName=Shadow admins"])
        .unwrap()["id"]
        .as_str()
        .unwrap()
        .to_string();
    let instant_after = now_rfc3339();
    let after = b
        .json(&[
            "backup",
            "create",
            "--tenant",
            "inc",
            "--description",
            "after",
        ])
        .unwrap();
    let after_id = after["id"].as_str().unwrap().to_string();

    // What the report must say, object by object.
    let mut expected: BTreeMap<String, Value> = BTreeMap::new();
    let mut expect = |id: &str,
                      kind: &str,
                      name: &str,
                      change: &str,
                      action: &str,
                      attributes: Value,
                      links: Value| {
        expected.insert(
            id.to_string(),
            json!({"objectId": id, "kind": kind, "displayName": name, "changeType": change,
            "recoveryAction": action, "synced": false, "attributes": attributes, "links": links}),
        );
    };
    expect(
        &policy,
        "conditionalAccessPolicy",
        "Require MFA",
        "modified",
        "update",
        json!([{"path": "conditions.users.excludeGroups", "base": [group], "target": [new_excluded]}]),
        json!([]),
    );
    expect(
        &location,
        "namedLocation",
        "HQ",
        "softDeleted",
        "restore",
        json!([]),
        json!([]),
    );
    for i in 0..50 {
        expect(
            &uid(i),
            "user",
            &format!("User {i}"),
            "modified",
            "update",
            json!([{"path": "department", "base": "Sales", "target": "Legal"}]),
            json!([]),
        );
    }
    expect(
        &group,
        "group",
        "Finance",
        "modified",
        "update",
        json!([]),
        Value::Array(
            members
                .iter()
                .map(|m| json!({"relation": "members", "targetId": m, "change": "removed"}))
                .collect(),
        ),
    );
    expect(
        &app,
        "application",
        "Portal",
        "modified",
        "update",
        json!([{"path": "web.redirectUris", "base": ["https://portal.inc.test/callback"], "target": ["https://evil.example/callback"]}]),
        json!([]),
    );
    expect(
        &soft,
        "user",
        "Soft Delete",
        "softDeleted",
        "restore",
        json!([]),
        json!([]),
    );
    expect(
        &hard,
        "user",
        "Hard Delete",
        "hardDeleted",
        "recreate",
        json!([
            {"path": "department", "base": "Ops", "target": null},
            {"path": "displayName", "base": "Hard Delete", "target": null},
            {"path": "userPrincipalName", "base": format!("{}@inc.test", &hard[30..]), "target": null},
        ]),
        json!([]),
    );
    expect(
        &added_user,
        "user",
        "Intruder",
        "added",
        "softDelete",
        json!([
            {"path": "displayName", "base": null, "target": "Intruder"},
            {"path": "userPrincipalName", "base": null, "target": "intruder@inc.test"},
        ]),
        json!([]),
    );
    expect(
        &added_group,
        "group",
        "Shadow admins",
        "added",
        "softDelete",
        json!([{"path": "displayName", "base": null, "target": "Shadow admins"}]),
        json!([]),
    );

    // The directory stamps createdDateTime on every new object; it is part of what was
    // added or lost.
    for (id, at, lost) in [
        (&hard, before_id.as_str(), true),
        (&added_user, "now", false),
        (&added_group, "now", false),
    ] {
        let stamp = b
            .json(&["dir", "get", "--tenant", "inc", id, "--at", at])
            .unwrap()["createdDateTime"]
            .clone();
        assert!(stamp.is_string(), "{id} has a createdDateTime");
        let (base, target) = if lost {
            (stamp, Value::Null)
        } else {
            (Value::Null, stamp)
        };
        let attributes = expected.get_mut(id.as_str()).unwrap()["attributes"]
            .as_array_mut()
            .unwrap();
        attributes.insert(
            0,
            json!({"path": "createdDateTime", "base": base, "target": target}),
        );
    }

    // Backup vs now.
    let report = create_report(&b, &["--from", &before_id]);
    let report_id = report["id"].as_str().unwrap().to_string();
    assert_eq!(report["changed"], expected.len());
    let got = items(&b, &report_id);
    for (id, want) in &expected {
        assert_eq!(got.get(id), Some(want), "object {id}");
    }
    assert_eq!(
        got.len(),
        expected.len(),
        "nothing more: {:?}",
        got.keys()
            .filter(|k| !expected.contains_key(*k))
            .collect::<Vec<_>>()
    );
    let summary = report["summary"].as_array().unwrap();
    let users_modified = summary
        .iter()
        .find(|s| s["kind"] == "user" && s["changeType"] == "modified")
        .unwrap();
    assert_eq!(users_modified["count"], 50);

    // For people, a link's target is named as it was: removed members at the base.
    let table = b.cli(&[
        "diff", "show", "--tenant", "inc", &report_id, "--search", "Finance", "-o", "table",
    ]);
    let table = String::from_utf8(table.stdout).unwrap();
    for (i, member) in members.iter().enumerate() {
        assert!(
            table.contains(&format!("  -members {member} (User {i})")),
            "{table}"
        );
    }

    // The JSON export holds the same items, each link naming its target as it was.
    let export = b.cli(&[
        "diff", "export", "--tenant", "inc", &report_id, "--format", "json",
    ]);
    assert!(export.status.success());
    let exported: Vec<Value> = serde_json::from_slice(&export.stdout).unwrap();
    let mut exported: BTreeMap<String, Value> = exported
        .into_iter()
        .map(|i| (i["objectId"].as_str().unwrap().to_string(), i))
        .collect();
    let mut names = BTreeMap::new();
    for item in exported.values_mut() {
        for link in item["links"].as_array_mut().unwrap() {
            let name = link.as_object_mut().unwrap().remove("targetDisplayName");
            names.insert(link["targetId"].as_str().unwrap().to_string(), name);
        }
    }
    assert_eq!(exported, got);
    for (i, member) in members.iter().enumerate() {
        assert_eq!(names[member.as_str()], Some(json!(format!("User {i}"))));
    }
    let csv = b.cli(&[
        "diff", "export", "--tenant", "inc", &report_id, "--format", "csv",
    ]);
    let csv = String::from_utf8(csv.stdout).unwrap();
    assert!(csv.starts_with("objectId,kind,displayName,changeType"));
    assert!(csv.contains("conditions.users.excludeGroups"));
    for (i, member) in members.iter().enumerate() {
        assert!(
            csv.contains(&format!(",members,{member},removed,User {i}\n")),
            "{csv}"
        );
    }

    // Filters.
    let shown = b
        .json(&[
            "diff",
            "show",
            "--tenant",
            "inc",
            &report_id,
            "--attribute",
            "conditions",
            "--page-size",
            "1000",
        ])
        .unwrap();
    assert_eq!(shown["matching"], 1);
    let shown = b
        .json(&[
            "diff",
            "show",
            "--tenant",
            "inc",
            &report_id,
            "--change",
            "softDeleted",
            "--page-size",
            "1000",
        ])
        .unwrap();
    assert_eq!(shown["matching"], 2);

    // Backup vs backup and instant vs instant are exact too.
    for (from, to) in [
        (before_id.as_str(), after_id.as_str()),
        (instant_before.as_str(), instant_after.as_str()),
    ] {
        let r = create_report(&b, &["--from", from, "--to", to]);
        assert_eq!(items(&b, r["id"].as_str().unwrap()), got, "{from} → {to}");
    }
    // Nothing changed between the second backup and now.
    let empty = create_report(&b, &["--from", &after_id]);
    assert_eq!(empty["changed"], 0);

    // Reports survive a restart.
    b.stop().unwrap();
    b.launch().await.unwrap();
    assert_eq!(items(&b, &report_id), got);
    let listed = b.json(&["diff", "list", "--tenant", "inc"]).unwrap();
    assert!(listed
        .as_array()
        .unwrap()
        .iter()
        .any(|r| r["id"] == report_id.as_str()));
}
