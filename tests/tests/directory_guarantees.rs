//! What the directory guarantees end to end: secrets stay out of the log, the feed is
//! readable with NATS and the protos alone, the view rebuilds from the log, and a crash
//! mid-import loses and doubles nothing.
#![allow(clippy::unwrap_used)]

use std::time::Duration;

use backtrack_e2e::{all_objects, id, last_sequence, Backtrack};
use backtrack_test_support::{eventually, NatsServer};
use futures::StreamExt;

#[tokio::test(flavor = "multi_thread")]
async fn secrets_never_reach_the_stream() {
    let nats = NatsServer::start().await.unwrap();
    let b = Backtrack::start(Some(nats.url())).await.unwrap();
    b.json(&["tenant", "create", "s"]).unwrap();
    let marker = "Sup3r-Secret-Marker-4242";
    b.create(
        "s",
        "user",
        &[
            "displayName=S",
            "userPrincipalName=s@s.test",
            &format!(
            "passwordProfile={{\"password\":\"{marker}\",\"forceChangePasswordNextSignIn\":true}}"
        ),
        ],
    )
    .unwrap();
    let passwords = format!("passwordCredentials=[{{\"displayName\":\"ci\",\"secretText\":\"{marker}\",\"keyId\":\"k1\"}}]");
    let keys = format!("keyCredentials=[{{\"key\":\"{marker}\",\"type\":\"AsymmetricX509Cert\"}}]");
    let args = [
        "dir",
        "create",
        "--tenant",
        "s",
        "--kind",
        "application",
        "--set",
        "displayName=App",
        "--set",
        &passwords,
        "--set",
        &keys,
    ];
    let out = b.cli(&args);
    // The caller is told what was dropped (naming the places, never the values).
    let told = String::from_utf8_lossy(&out.stderr).into_owned();
    assert!(
        told.contains("not stored: passwordCredentials[].secretText, keyCredentials[].key"),
        "{told}"
    );
    assert!(!told.contains(marker));
    let app = backtrack_e2e::json_of(&args, out).unwrap();
    assert_eq!(
        app["passwordCredentials"][0]["keyId"], "k1",
        "credential metadata is kept"
    );
    assert!(!app.to_string().contains(marker));
    let u = b
        .json(&["dir", "list", "--tenant", "s", "--kind", "application"])
        .unwrap();
    b.json(&[
        "dir",
        "update",
        "--tenant",
        "s",
        &id(&u[0]),
        "--set",
        &format!("passwordCredentials=[{{\"secretText\":\"{marker}\"}}]"),
    ])
    .ok();
    // An import is told per line which secrets it did not keep.
    let folder = tempfile::tempdir().unwrap();
    let file = folder.path().join("secrets.jsonl");
    let lines = [
        format!(
            r#"{{"@kind":"user","displayName":"I","userPrincipalName":"i@s.test","passwordProfile":{{"password":"{marker}"}}}}"#
        ),
        r#"{"@kind":"group","displayName":"No secrets here"}"#.to_string(),
        format!(
            r#"{{"@kind":"application","displayName":"A2","passwordCredentials":[{{"secretText":"{marker}","keyId":"k2"}}]}}"#
        ),
    ];
    std::fs::write(&file, lines.join("\n")).unwrap();
    let import = b
        .json(&["dir", "import", "--tenant", "s", file.to_str().unwrap()])
        .unwrap();
    assert_eq!(import["created"], 3, "{import}");
    assert_eq!(import["objectsWithSecretsNotStored"], 2, "{import}");
    let noted: Vec<(u64, String)> = import["secretsNotStored"]
        .as_array()
        .unwrap()
        .iter()
        .map(|n| (n["line"].as_u64().unwrap(), n["places"].to_string()))
        .collect();
    assert_eq!(
        noted,
        [
            (1, r#"["passwordProfile"]"#.to_string()),
            (3, r#"["passwordCredentials[].secretText"]"#.to_string())
        ]
    );
    assert!(!import.to_string().contains(marker));
    // For people: the lines, the ids and the places.
    let second = folder.path().join("more.jsonl");
    std::fs::write(
        &second,
        format!("{}\n{}", lines[1], lines[0].replace("i@s.test", "j@s.test")),
    )
    .unwrap();
    let table = b.cli(&[
        "-o",
        "table",
        "dir",
        "import",
        "--tenant",
        "s",
        second.to_str().unwrap(),
    ]);
    let table = String::from_utf8_lossy(&table.stdout).into_owned();
    assert!(table.contains("1 created, 1 already existed"), "{table}");
    assert!(
        table.contains("note: 1 objects were created without the secrets they carried"),
        "{table}"
    );
    assert!(table.contains("  line 2 ("), "{table}");
    assert!(table.contains("): not stored: passwordProfile"), "{table}");
    assert!(!table.contains(marker));

    // Every stored message, read back raw.
    let client = nats.client().await.unwrap();
    let js = async_nats::jetstream::new(client);
    let stream = js.get_stream("BT_EVENTS").await.unwrap();
    let consumer = stream
        .create_consumer(async_nats::jetstream::consumer::pull::OrderedConfig::default())
        .await
        .unwrap();
    let last = last_sequence(&b).unwrap();
    let mut messages = consumer.messages().await.unwrap();
    let mut seen = 0;
    while seen < last {
        let m = messages.next().await.unwrap().unwrap();
        assert!(!String::from_utf8_lossy(&m.payload).contains(marker));
        seen = m.info().unwrap().stream_sequence;
    }
    // And the server's files on disk.
    let mut files = vec![nats.store_dir().to_path_buf()];
    let mut scanned = 0;
    while let Some(p) = files.pop() {
        if p.is_dir() {
            files.extend(std::fs::read_dir(&p).unwrap().map(|e| e.unwrap().path()));
        } else {
            let bytes = std::fs::read(&p).unwrap();
            assert!(
                !String::from_utf8_lossy(&bytes).contains(marker),
                "secret found in {}",
                p.display()
            );
            scanned += bytes.len();
        }
    }
    assert!(scanned > 0);
    let feed = b.cli(&[
        "events",
        "tail",
        "--tenant",
        "s",
        "--from-start",
        "--limit",
        "3",
    ]);
    assert!(!String::from_utf8_lossy(&feed.stdout).contains(marker));
}

#[tokio::test(flavor = "multi_thread")]
async fn a_plain_nats_subscriber_decodes_the_feed_with_only_the_protos() {
    use backtrack_proto::v1::{directory_event::Change, DirectoryEvent};
    use prost::Message;

    let nats = NatsServer::start().await.unwrap();
    let b = Backtrack::start(Some(nats.url())).await.unwrap();
    b.json(&["tenant", "create", "feed"]).unwrap();
    let js = async_nats::jetstream::new(nats.client().await.unwrap());
    let stream = js.get_stream("BT_EVENTS").await.unwrap();
    let consumer = stream
        .create_consumer(async_nats::jetstream::consumer::pull::OrderedConfig {
            filter_subject: "bt.ev.feed.>".into(),
            deliver_policy: async_nats::jetstream::consumer::DeliverPolicy::New,
            ..Default::default()
        })
        .await
        .unwrap();
    let mut messages = consumer.messages().await.unwrap();
    let u = b
        .create(
            "feed",
            "user",
            &["displayName=F", "userPrincipalName=f@feed.test"],
        )
        .unwrap();
    b.json(&[
        "dir",
        "update",
        "--tenant",
        "feed",
        &id(&u),
        "--set",
        "displayName=G",
    ])
    .unwrap();

    let first = tokio::time::timeout(Duration::from_secs(10), messages.next())
        .await
        .unwrap()
        .unwrap()
        .unwrap();
    assert_eq!(
        first.subject.as_str(),
        format!("bt.ev.feed.user.{}", id(&u))
    );
    let headers = first.headers.clone().unwrap();
    assert_eq!(headers.get("ce-specversion").unwrap().as_str(), "1.0");
    assert_eq!(
        headers.get("ce-type").unwrap().as_str(),
        "io.backtrack.directory.created.v1"
    );
    assert!(
        headers.get("ce-id").is_some()
            && headers.get("ce-time").is_some()
            && headers.get("Nats-Msg-Id").is_some()
    );
    let created = DirectoryEvent::decode(first.payload.as_ref()).unwrap();
    assert!(matches!(created.change, Some(Change::Created(_))));
    let second = tokio::time::timeout(Duration::from_secs(10), messages.next())
        .await
        .unwrap()
        .unwrap()
        .unwrap();
    let changed = DirectoryEvent::decode(second.payload.as_ref()).unwrap();
    match changed.change {
        Some(Change::AttributesChanged(c)) => {
            assert_eq!(c.changes[0].name, "displayName");
            assert_eq!(
                (
                    c.changes[0].old_json.as_str(),
                    c.changes[0].new_json.as_str()
                ),
                ("\"F\"", "\"G\"")
            );
        }
        other => panic!("expected attributesChanged, got {other:?}"),
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn deleting_the_projection_rebuilds_identical_state() {
    let nats = NatsServer::start().await.unwrap();
    let mut b = Backtrack::start(Some(nats.url())).await.unwrap();
    let seeded = b
        .json(&[
            "demo", "seed", "--tenant", "r", "--users", "300", "--seed", "7",
        ])
        .unwrap();
    assert!(seeded["created"].as_u64().unwrap() > 300);
    let objects = all_objects(&b, "r").unwrap();
    let one = id(&objects[0]);
    b.json(&["dir", "delete", "--tenant", "r", &one]).unwrap();
    let before = all_objects(&b, "r").unwrap();
    let digest_before = b.json(&["status", "--tenant", "r"]).unwrap()["tenant"].clone();
    b.stop().unwrap();
    std::fs::remove_dir_all(b.data().join("directory")).unwrap();
    b.launch().await.unwrap();
    let after = all_objects(&b, "r").unwrap();
    let digest_after = b.json(&["status", "--tenant", "r"]).unwrap()["tenant"].clone();
    assert!(digest_before["digest"]
        .as_str()
        .unwrap()
        .starts_with("lthash16-blake3:"));
    assert_eq!(digest_before["objects"].as_u64(), Some(before.len() as u64));
    assert_eq!(
        digest_before, digest_after,
        "content digest equal after the rebuild"
    );
    assert_eq!(before.len(), after.len());
    assert_eq!(before, after, "rebuilt from the log, object for object");
}

#[tokio::test(flavor = "multi_thread")]
async fn kill_nine_during_bulk_import_loses_and_doubles_nothing() {
    let mut nats = NatsServer::start().await.unwrap();
    let mut b = Backtrack::start(Some(nats.url())).await.unwrap();
    b.json(&["tenant", "create", "k"]).unwrap();
    let seed_args = [
        "demo", "seed", "--tenant", "k", "--users", "6000", "--seed", "3", "--batch", "500",
    ];
    let mut import = std::process::Command::new(backtrack_test_support::backtrack_binary())
        .args([
            "--server",
            &format!("http://127.0.0.1:{}", b.grpc_port),
            "-o",
            "json",
            "--data-dir",
        ])
        .arg(b.data())
        .args(seed_args)
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let js = async_nats::jetstream::new(nats.client().await.unwrap());
    eventually(
        "the import to be under way",
        Duration::from_secs(60),
        || {
            let js = js.clone();
            async move {
                let mut s = js.get_stream("BT_EVENTS").await.ok()?;
                (s.info().await.ok()?.state.messages > 1500).then_some(())
            }
        },
    )
    .await
    .unwrap();
    b.kill();
    nats.kill();
    let _ = import.wait();
    nats.restart().await.unwrap();
    b.launch().await.unwrap();
    // The administrator runs the same import again; it finishes the job.
    let second = b.json(&seed_args).unwrap();
    let total = second["created"].as_u64().unwrap() + second["alreadyExisted"].as_u64().unwrap();
    assert_eq!(second["rejected"], 0, "{second}");
    assert!(
        second["alreadyExisted"].as_u64().unwrap() > 0,
        "the first run stored some objects"
    );

    // Every object present exactly once: one `created` event per subject.
    let js = async_nats::jetstream::new(nats.client().await.unwrap());
    let stream = js.get_stream("BT_EVENTS").await.unwrap();
    let consumer = stream
        .create_consumer(async_nats::jetstream::consumer::pull::OrderedConfig {
            filter_subject: "bt.ev.k.>".into(),
            ..Default::default()
        })
        .await
        .unwrap();
    let last = last_sequence(&b).unwrap();
    let mut messages = consumer.messages().await.unwrap();
    let mut creates = std::collections::HashMap::new();
    loop {
        let m = tokio::time::timeout(Duration::from_secs(10), messages.next())
            .await
            .unwrap()
            .unwrap()
            .unwrap();
        let e = <backtrack_proto::v1::DirectoryEvent as prost::Message>::decode(m.payload.as_ref())
            .unwrap();
        if matches!(
            e.change,
            Some(backtrack_proto::v1::directory_event::Change::Created(_))
        ) {
            *creates.entry(m.subject.to_string()).or_insert(0) += 1;
        }
        if m.info().unwrap().stream_sequence >= last {
            break;
        }
    }
    assert!(
        creates.values().all(|n| *n == 1),
        "an object was created twice"
    );
    assert_eq!(creates.len() as u64, total);
    assert_eq!(all_objects(&b, "k").unwrap().len() as u64, total);
}

/// `decide` reads the projection through a view that cannot fail; a read that does fail
/// must void the decision. Deleting a named location is checked against the live policies
/// that name it: with the policy's record unreadable, the delete is refused as a server
/// failure (it was allowed before: the policy read as absent), and the log is unchanged.
#[tokio::test(flavor = "multi_thread")]
async fn a_failed_projection_read_refuses_the_write_instead_of_deciding_on_nothing() {
    let nats = NatsServer::start().await.unwrap();
    let mut b = Backtrack::start(Some(nats.url())).await.unwrap();
    b.json(&["tenant", "create", "v"]).unwrap();
    let location = serde_json::json!({
        "@odata.type": "#microsoft.graph.ipNamedLocation", "displayName": "HQ", "isTrusted": true,
        "ipRanges": [{"@odata.type": "#microsoft.graph.iPv4CidrRange", "cidrAddress": "10.0.0.0/8"}]});
    let create = |kind: &str, doc: serde_json::Value| {
        let doc = doc.to_string();
        id(&b
            .json(&[
                "dir", "create", "--tenant", "v", "--kind", kind, "--json", &doc,
            ])
            .unwrap())
    };
    let location = create("namedLocation", location);
    let policy = serde_json::json!({"displayName": "Block outside HQ", "state": "enabled",
        "conditions": {"users": {"includeUsers": ["All"]}, "applications": {"includeApplications": ["All"]},
            "locations": {"includeLocations": ["All"], "excludeLocations": [location]}},
        "grantControls": {"operator": "OR", "builtInControls": ["block"]}});
    let policy = create("conditionalAccessPolicy", policy);
    let delete = ["dir", "delete", "--tenant", "v", location.as_str()];
    let refused = b.cli(&delete);
    assert!(
        String::from_utf8_lossy(&refused.stderr).contains("FAILED_PRECONDITION"),
        "{refused:?}"
    );

    b.stop().unwrap();
    let db = rocksdb::DB::open_default(b.data().join("directory")).unwrap();
    db.put(format!("o/v/{policy}"), b"{unreadable").unwrap();
    drop(db);
    b.launch().await.unwrap();
    let last = last_sequence(&b).unwrap();

    let out = b.cli(&delete);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        !out.status.success() && stderr.contains("INTERNAL: projection failure"),
        "{out:?}"
    );
    assert_eq!(last_sequence(&b).unwrap(), last, "nothing appended");
    let location = b
        .json(&["dir", "get", "--tenant", "v", location.as_str()])
        .unwrap();
    assert!(location["deletedDateTime"].is_null(), "{location}");

    // An import of an object whose record is unreadable stops the same way, nothing
    // appended (its decision takes the object for absent; the check after deciding
    // refuses, and without it the read of the object's version for its append would).
    let file = b.data().join("again.jsonl");
    let line = serde_json::json!({"@kind": "conditionalAccessPolicy", "id": policy,
        "displayName": "Again", "state": "disabled"});
    std::fs::write(&file, line.to_string()).unwrap();
    let out = b.cli(&["dir", "import", "--tenant", "v", file.to_str().unwrap()]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        !out.status.success() && stderr.contains("INTERNAL: projection failure"),
        "{out:?}"
    );
    assert_eq!(last_sequence(&b).unwrap(), last, "nothing appended");
}
