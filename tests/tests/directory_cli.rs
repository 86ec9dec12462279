//! The administrator's view end to end: the real `backtrack` binary driving the directory.
#![allow(clippy::unwrap_used)]

use backtrack_e2e::{id, last_sequence, Backtrack};
use backtrack_test_support::NatsServer;
use serde_json::{json, Value};

/// The first `limit` events of `tenant`'s change feed, as `events tail --output json`
/// prints them.
fn feed(b: &Backtrack, tenant: &str, limit: usize) -> Vec<Value> {
    let limit = limit.to_string();
    let tail = b.cli(&[
        "events",
        "tail",
        "--tenant",
        tenant,
        "--from-start",
        "--limit",
        &limit,
    ]);
    assert!(
        tail.status.success(),
        "{}",
        String::from_utf8_lossy(&tail.stderr)
    );
    String::from_utf8_lossy(&tail.stdout)
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}

#[tokio::test(flavor = "multi_thread")]
async fn administrator_round_trip_through_the_cli() {
    // `up` starts its own nats-server here, as `make run` does.
    let b = Backtrack::start(None).await.unwrap();
    b.json(&["tenant", "create", "fabrikam"]).unwrap();
    let ada = b
        .create(
            "fabrikam",
            "user",
            &[
                "displayName=Ada Lovelace",
                "userPrincipalName=ada@fabrikam.com",
                "accountEnabled=true",
            ],
        )
        .unwrap();
    let alan = b
        .create(
            "fabrikam",
            "user",
            &[
                "displayName=Alan Turing",
                "userPrincipalName=alan@fabrikam.com",
            ],
        )
        .unwrap();
    let group = b
        .create(
            "fabrikam",
            "group",
            &["displayName=Research", "securityEnabled=true"],
        )
        .unwrap();
    assert_eq!(ada["@kind"], "user");
    assert_eq!(ada["accountEnabled"], true);

    let linked = b
        .json(&[
            "dir",
            "link",
            "add",
            "--tenant",
            "fabrikam",
            &id(&group),
            "--relation",
            "members",
            &id(&ada),
            &id(&alan),
        ])
        .unwrap();
    assert_eq!(linked["@links"]["members"].as_array().unwrap().len(), 2);
    let updated = b
        .json(&[
            "dir",
            "update",
            "--tenant",
            "fabrikam",
            &id(&ada),
            "--set",
            "department=Research",
            "--set",
            "jobTitle=Analyst",
        ])
        .unwrap();
    assert_eq!(updated["department"], "Research");
    let updated = b
        .json(&[
            "dir",
            "update",
            "--tenant",
            "fabrikam",
            &id(&ada),
            "--set",
            "jobTitle=Engineer",
            "--unset",
            "department",
        ])
        .unwrap();
    assert_eq!(updated["jobTitle"], "Engineer");
    assert!(updated.get("department").is_none());

    let groups = b
        .json(&["dir", "list", "--tenant", "fabrikam", "--kind", "group"])
        .unwrap();
    assert_eq!(groups.as_array().unwrap().len(), 1);

    // Soft delete → recycle bin → restore → soft delete → purge.
    b.json(&["dir", "delete", "--tenant", "fabrikam", &id(&alan)])
        .unwrap();
    let users = b
        .json(&["dir", "list", "--tenant", "fabrikam", "--kind", "user"])
        .unwrap();
    assert_eq!(
        users.as_array().unwrap().len(),
        1,
        "deleted users leave the live list"
    );
    let bin = b.json(&["dir", "deleted", "--tenant", "fabrikam"]).unwrap();
    assert_eq!(
        bin.as_array().unwrap().iter().map(id).collect::<Vec<_>>(),
        vec![id(&alan)]
    );
    assert!(bin[0]["deletedDateTime"].is_string());
    let restored = b
        .json(&["dir", "restore", "--tenant", "fabrikam", &id(&alan)])
        .unwrap();
    assert!(restored.get("deletedDateTime").is_none());
    let g = b
        .json(&["dir", "get", "--tenant", "fabrikam", &id(&group)])
        .unwrap();
    assert_eq!(
        g["@links"]["members"].as_array().unwrap().len(),
        2,
        "membership survives soft delete and restore"
    );
    b.json(&["dir", "delete", "--tenant", "fabrikam", &id(&alan)])
        .unwrap();
    let refused = b.cli(&["dir", "purge", "--tenant", "fabrikam", &id(&alan)]);
    assert!(!refused.status.success(), "purge without --yes must refuse");
    let purged = b
        .json(&["dir", "purge", "--tenant", "fabrikam", &id(&alan), "--yes"])
        .unwrap();
    assert_eq!(
        purged["events"], 2,
        "one link removal on the group, then the purge"
    );
    let g = b
        .json(&["dir", "get", "--tenant", "fabrikam", &id(&group)])
        .unwrap();
    assert_eq!(
        g["@links"]["members"]
            .as_array()
            .unwrap()
            .iter()
            .map(|v| v.as_str().unwrap().to_string())
            .collect::<Vec<_>>(),
        vec![id(&ada)]
    );
    let gone = b.cli(&["dir", "get", "--tenant", "fabrikam", &id(&alan)]);
    assert_eq!(gone.status.code(), Some(4), "NOT_FOUND after purge");

    // The change feed: every event in order, with old and new values.
    let events = feed(&b, "fabrikam", 12);
    let kinds: Vec<&str> = events
        .iter()
        .map(|e| e["change"].as_str().unwrap())
        .collect();
    assert_eq!(
        kinds,
        vec![
            "tenantCreated",
            "created",
            "created",
            "created",
            "linksAdded",
            "attributesChanged",
            "attributesChanged",
            "softDeleted",
            "restored",
            "softDeleted",
            "linksRemoved",
            "hardDeleted"
        ]
    );
    let seqs: Vec<u64> = events
        .iter()
        .map(|e| e["sequence"].as_u64().unwrap())
        .collect();
    assert!(seqs.windows(2).all(|w| w[0] < w[1]), "feed in stream order");
    let second_update = &events[6]["changes"];
    let job = second_update
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["name"] == "jobTitle")
        .unwrap();
    assert_eq!(
        (job["old"].as_str(), job["new"].as_str()),
        (Some("Analyst"), Some("Engineer"))
    );
    let dept = second_update
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["name"] == "department")
        .unwrap();
    assert_eq!(
        (dept["old"].as_str(), dept["new"].clone()),
        (Some("Research"), Value::Null)
    );

    // A Graph-style document's "@links" become links of the new object, not an attribute.
    let doc = json!({"displayName": "Analysts", "@links": {"members": [id(&ada)]}});
    let team = b
        .json(&[
            "dir",
            "create",
            "--tenant",
            "fabrikam",
            "--kind",
            "group",
            "--json",
            &doc.to_string(),
        ])
        .unwrap();
    assert_eq!(team["@links"]["members"], json!([id(&ada)]));
    let created = feed(&b, "fabrikam", 13).pop().unwrap();
    assert_eq!(created["objectId"], team["id"]);
    assert_eq!(
        created["links"],
        json!([{"relation": "members", "targetId": id(&ada)}])
    );
    assert!(created["attributes"].get("@links").is_none(), "{created}");
}

#[tokio::test(flavor = "multi_thread")]
async fn bad_input_is_refused_precisely_and_leaves_the_log_alone() {
    let nats = NatsServer::start().await.unwrap();
    let b = Backtrack::start(Some(nats.url())).await.unwrap();
    b.json(&["tenant", "create", "acme"]).unwrap();
    let user = b
        .create(
            "acme",
            "user",
            &["displayName=A", "userPrincipalName=a@acme.test"],
        )
        .unwrap();
    let before = last_sequence(&b).unwrap();
    let uid = id(&user);

    // One command line per case (no argument contains a space), expected exit code, and
    // what the error message must mention.
    let mut cases: Vec<(String, i32, &str)> = vec![
        ("dir create --tenant acme --kind printer --set displayName=x".to_string(), 2, "unknown object kind 'printer'"),
        ("dir create --tenant acme --kind user --set displayName=B --set userPrincipalName=A@ACME.TEST".to_string(), 2, "already used"),
        ("dir create --tenant acme --kind user --set displayName=B".to_string(), 2, "needs the attribute 'userPrincipalName'"),
        ("dir create --tenant acme --kind user --set displayName=B --set userPrincipalName=b@acme.test --set accountEnabled=\"yes\"".to_string(), 2, "must be a boolean"),
        ("dir update --tenant acme 00000000-0000-4000-8000-000000000000 --set jobTitle=x".to_string(), 4, "no object with id"),
        ("dir update --tenant acme not*an-id --set jobTitle=x".to_string(), 2, "invalid object id"),
        (format!("dir update --tenant acme {uid} --set createdDateTime=2020-01-01T00:00:00Z"), 2, "read-only"),
        (format!("dir link add --tenant acme {uid} --relation manager 11111111-1111-4111-8111-111111111111"), 2, "does not exist"),
        ("dir list --tenant Bad.Tenant".to_string(), 2, "invalid tenant id"),
        ("dir list --tenant nosuch".to_string(), 4, "does not exist"),
        ("tenant create acme".to_string(), 2, "already exists"),
        ("dir create --tenant acme --kind group --set displayName=G --set @links={\"members\":[]}".to_string(), 2, "'@links' is an annotation, not an attribute"),
        (format!("dir update --tenant acme {uid} --set @kind=\"group\""), 2, "'@kind' is an annotation"),
        ("dir create --tenant acme --kind group --json {\"displayName\":\"G\",\"@links\":{\"members\":\"x\"}}".to_string(), 2, "\"@links\" must look like"),
        ("dir create --tenant acme --kind group --json {\"displayName\":\"G\",\"@kind\":\"user\"}".to_string(), 2, "but --kind is group"),
        // Names one or two keystrokes (or only case) away from one the object or its kind
        // knows: a typo would add an attribute to the log for good.
        (format!("dir update --tenant acme {uid} --set departmnt=Sales"), 2, "has no attribute 'departmnt' (--set departmnt=… would add it as a new attribute): did you mean 'department'?"),
        (format!("dir update --tenant acme {uid} --unset DisplayName"), 2, "did you mean 'displayName'?"),
        ("dir create --tenant acme --kind user --set displayname=B --set userPrincipalName=b@acme.test".to_string(), 2, "a new user has no attribute 'displayname'"),
    ];
    let huge = format!("description={}", "x".repeat(70 * 1024));
    cases.push((
        format!("dir update --tenant acme {uid} --set {huge}"),
        2,
        "limit",
    ));
    for (line, code, text) in &cases {
        let args: Vec<&str> = line.split(' ').collect();
        let out = b.cli(&args);
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(
            out.status.code(),
            Some(*code),
            "`{}` → {err}",
            args.join(" ")
        );
        assert!(
            err.contains(text),
            "`{}` said {err}, expected it to mention {text}",
            args.join(" ")
        );
    }

    // Authentication and tenant isolation.
    let out = b.cli_with_env(&["tenant", "list"], &[("BACKTRACK_TOKEN", "not-a-jwt")]);
    assert_eq!(out.status.code(), Some(3));
    assert!(String::from_utf8_lossy(&out.stderr).contains("UNAUTHENTICATED"));
    b.json(&["tenant", "create", "other"]).unwrap();
    let other_token = b.issue_token(&[
        "--tenant",
        "other",
        "--role",
        "DirectoryWriter",
        "--ttl",
        "1h",
    ]);
    let out = b.cli_with_env(
        &["dir", "list", "--tenant", "acme"],
        &[("BACKTRACK_TOKEN", &other_token)],
    );
    assert_eq!(
        out.status.code(),
        Some(3),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(String::from_utf8_lossy(&out.stderr).contains("PERMISSION_DENIED"));
    let listed = b.cli_with_env(&["tenant", "list"], &[("BACKTRACK_TOKEN", &other_token)]);
    let listed: Value = serde_json::from_slice(&listed.stdout).unwrap();
    assert_eq!(
        listed.as_array().unwrap().len(),
        1,
        "a tenant-scoped token sees only its tenant"
    );
    let reader = b.issue_token(&["--tenant", "acme", "--role", "BackupReader"]);
    let update = |set: &str, more: &[&str], env: &[(&str, &str)]| {
        let mut args = vec!["dir", "update", "--tenant", "acme", &uid, "--set", set];
        args.extend(more);
        b.cli_with_env(&args, env)
    };
    let out = update("jobTitle=x", &[], &[("BACKTRACK_TOKEN", &reader)]);
    assert_eq!(out.status.code(), Some(3), "a reader cannot write");

    // Nothing above reached the log except the one tenant creation.
    assert_eq!(last_sequence(&b).unwrap(), before + 1);

    // Meant as typed: --force sets it.
    let forced = update("departmnt=Sales", &["--force"], &[]);
    let forced: Value = serde_json::from_slice(&forced.stdout).unwrap();
    assert_eq!(forced["departmnt"], "Sales", "{forced}");
}

#[tokio::test(flavor = "multi_thread")]
async fn the_same_objects_import_into_two_tenants_independently() {
    let nats = NatsServer::start().await.unwrap();
    let b = Backtrack::start(Some(nats.url())).await.unwrap();
    let file = b.data().join("objects.jsonl");
    let lines = [
        r#"{"@kind":"authorizationPolicy","displayName":"Authorization Policy","allowInvitesFrom":"everyone"}"#,
        r#"{"@kind":"user","id":"5b7f1c5e-0c1a-4c57-9f43-0f6f4bb1d001","displayName":"Same","userPrincipalName":"same@x.test"}"#,
        r#"{"@kind":"group","displayName":"Team","@links":{"members":["5b7f1c5e-0c1a-4c57-9f43-0f6f4bb1d001"]}}"#,
    ];
    std::fs::write(&file, lines.join("\n")).unwrap();
    for tenant in ["one", "two"] {
        b.json(&["tenant", "create", tenant]).unwrap();
        let summary = b
            .json(&["dir", "import", "--tenant", tenant, file.to_str().unwrap()])
            .unwrap();
        assert_eq!(
            (summary["created"].as_u64(), summary["events"].as_u64()),
            (Some(3), Some(3)),
            "{tenant}: {summary}"
        );
        let policy = b
            .json(&["dir", "get", "--tenant", tenant, "authorizationPolicy"])
            .unwrap();
        assert_eq!(policy["allowInvitesFrom"], "everyone");
    }
    // Importing the same file again creates nothing twice.
    let again = b
        .json(&["dir", "import", "--tenant", "two", file.to_str().unwrap()])
        .unwrap();
    assert_eq!(
        (again["created"].as_u64(), again["alreadyExisted"].as_u64()),
        (Some(0), Some(3))
    );
    let groups = b
        .json(&["dir", "list", "--tenant", "two", "--kind", "group"])
        .unwrap();
    assert_eq!(groups.as_array().unwrap().len(), 1);
    assert_eq!(
        groups[0]["@links"]["members"][0],
        "5b7f1c5e-0c1a-4c57-9f43-0f6f4bb1d001"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn an_import_fixed_and_run_again_creates_nothing_twice() {
    let nats = NatsServer::start().await.unwrap();
    let b = Backtrack::start(Some(nats.url())).await.unwrap();
    b.json(&["tenant", "create", "t"]).unwrap();
    let file = b.data().join("objects.jsonl");
    let ada = "5b7f1c5e-0c1a-4c57-9f43-0f6f4bb1d0a1";
    let group =
        format!(r#"{{"@kind":"group","displayName":"Team","@links":{{"members":["{ada}"]}}}}"#);
    let user = format!(
        r#"{{"@kind":"user","id":"{ada}","displayName":"Ada","userPrincipalName":"ada@t.test"}}"#
    );
    let other = r#"{"@kind":"group","displayName":"Other"}"#;
    let import = || {
        b.json(&["dir", "import", "--tenant", "t", file.to_str().unwrap()])
            .unwrap()
    };
    // The group comes before the member it links to (rejected, reported by its line), two
    // identical groups without ids, a blank line.
    std::fs::write(&file, [group.as_str(), other, "", other, &user].join("\n")).unwrap();
    let out = b.cli(&["dir", "import", "--tenant", "t", file.to_str().unwrap()]);
    // The summary is printed, and the command fails: not everything is in.
    assert_eq!(out.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("1 of 4 objects were rejected"), "{stderr}");
    let first: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(
        (first["created"].as_u64(), first["rejected"].as_u64()),
        (Some(3), Some(1)),
        "{first}"
    );
    assert_eq!(first["problems"][0]["line"], 1, "{first}");
    // Fixed by moving the user first (and spaced differently): only the group is new.
    let spaced = r#"{ "displayName": "Other", "@kind": "group" }"#;
    std::fs::write(&file, [user.as_str(), other, spaced, &group].join("\n")).unwrap();
    let second = import();
    assert_eq!(
        (
            second["created"].as_u64(),
            second["alreadyExisted"].as_u64()
        ),
        (Some(1), Some(3)),
        "{second}"
    );
    let groups = b
        .json(&["dir", "list", "--tenant", "t", "--kind", "group"])
        .unwrap();
    let mut names: Vec<&str> = groups
        .as_array()
        .unwrap()
        .iter()
        .map(|g| g["displayName"].as_str().unwrap())
        .collect();
    names.sort_unstable();
    assert_eq!(names, ["Other", "Other", "Team"]);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_reader_that_stops_early_ends_the_command_quietly() {
    let nats = NatsServer::start().await.unwrap();
    let b = Backtrack::start(Some(nats.url())).await.unwrap();
    b.json(&["tenant", "create", "piped"]).unwrap();
    b.json(&[
        "demo", "seed", "--tenant", "piped", "--users", "400", "--seed", "5",
    ])
    .unwrap();
    // Both outputs are far larger than a pipe's buffer, so the command is still writing
    // when its reader goes away: one JSON document, and a stream of lines.
    let commands: [&[&str]; 2] = [
        &["dir", "list", "--tenant", "piped"],
        &[
            "events",
            "tail",
            "--tenant",
            "piped",
            "--from-start",
            "--limit",
            "3000",
        ],
    ];
    for args in commands {
        let (head, out) = b.cli_read_then_close(args, 64).unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(
            out.status.success(),
            "{args:?} exited with {} after its reader left: {stderr}",
            out.status
        );
        assert!(stderr.is_empty(), "{args:?} wrote to stderr: {stderr}");
        assert!(
            matches!(head.first(), Some(b'[' | b'{')),
            "{args:?} printed: {}",
            String::from_utf8_lossy(&head)
        );
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn status_reports_every_service_and_projection_of_the_process() {
    let b = Backtrack::start(None).await.unwrap();
    b.json(&["tenant", "create", "acme"]).unwrap();
    let status = backtrack_test_support::eventually(
        "every projection to reach the stream's end",
        std::time::Duration::from_secs(20),
        || async {
            let s = b.json(&["status"]).unwrap();
            let last = s["lastSequence"].as_u64().unwrap();
            let events_caught_up = s["projections"]
                .as_array()
                .unwrap()
                .iter()
                .filter(|p| p["stream"] == "BT_EVENTS")
                .all(|p| p["position"] == last && p["lag"] == 0);
            (last >= 1 && events_caught_up).then_some(s)
        },
    )
    .await
    .unwrap();
    let projections: Vec<(&str, &str, &str)> = status["projections"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| {
            let text = |k: &str| p[k].as_str().unwrap();
            (text("process"), text("name"), text("stream"))
        })
        .collect();
    assert_eq!(
        projections,
        vec![
            ("backtrack-up", "directory", "BT_EVENTS"),
            ("backtrack-up", "timetravel", "BT_EVENTS"),
            ("backtrack-up", "alerter", "BT_EVENTS"),
            ("backtrack-up", "audit", "BT_AUDIT")
        ]
    );
    // One process, asked once, serving all seven services.
    let processes = status["processes"].as_array().unwrap();
    assert_eq!(processes.len(), 1, "{status}");
    assert_eq!(processes[0]["name"], "backtrack-up");
    assert_eq!(processes[0]["services"].as_array().unwrap().len(), 7);
    // Like every call, describing a process needs a token.
    let mut anonymous = backtrack_proto::v1::process_service_client::ProcessServiceClient::connect(
        format!("http://127.0.0.1:{}", b.grpc_port),
    )
    .await
    .unwrap();
    let refused = anonymous
        .describe_process(backtrack_proto::v1::DescribeProcessRequest {})
        .await
        .unwrap_err();
    assert_eq!(refused.code(), tonic::Code::Unauthenticated, "{refused}");
    let services = |s: &Value| -> Vec<(String, String)> {
        s["services"]
            .as_array()
            .unwrap()
            .iter()
            .map(|x| {
                let name = x["name"].as_str().unwrap();
                (name.to_string(), x["state"].as_str().unwrap().to_string())
            })
            .collect()
    };
    let all = services(&status);
    assert_eq!(all.len(), 7, "{all:?}");
    assert!(all.iter().all(|(_, state)| state == "serving"), "{all:?}");

    // A service given an address where nothing listens is reported as such; the others
    // are still asked at --server.
    let split = b
        .json(&["--snapshotter-server", "http://127.0.0.1:1", "status"])
        .unwrap();
    for (name, state) in services(&split) {
        let snapshotter = name.ends_with("BackupService") || name.ends_with("TimeTravelService");
        assert_eq!(
            state.starts_with("unreachable"),
            snapshotter,
            "{name}: {state}"
        );
    }
    // The address that does not answer is listed as a process that did not say what it
    // keeps; the one at --server still did.
    let processes = split["processes"].as_array().unwrap();
    assert_eq!(processes.len(), 2, "{split}");
    assert_eq!(processes[0]["name"], "backtrack-up", "{split}");
    assert_eq!(processes[1]["address"], "http://127.0.0.1:1", "{split}");
    assert!(
        processes[1]["error"]
            .as_str()
            .unwrap()
            .starts_with("unreachable"),
        "{split}"
    );
    assert_eq!(split["projections"].as_array().unwrap().len(), 4, "{split}");
}
