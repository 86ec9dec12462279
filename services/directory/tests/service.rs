//! The directory service in-process, against a real nats-server and a real RocksDB.
#![allow(clippy::unwrap_used)]

use std::time::Duration;

use backtrack_directory::writer::Origin;
use backtrack_directory::{sweeper, Directory, DirectoryConfig};
use backtrack_domain::command::Command;
use backtrack_domain::{Link, ObjectKind};
use backtrack_platform::shutdown::{Shutdown, ShutdownTrigger};
use backtrack_test_support::NatsServer;
use serde_json::json;

struct Fixture {
    nats: NatsServer,
    _dir: tempfile::TempDir,
    _trigger: ShutdownTrigger,
    directory: Directory,
}

async fn fixture(retention: Duration) -> Fixture {
    let nats = NatsServer::start().await.unwrap();
    let dir = tempfile::tempdir().unwrap();
    let mut config = DirectoryConfig::new(dir.path().join("projection"));
    config.recycle_bin_retention = retention;
    config.sweep_interval = Duration::from_secs(3600);
    let (trigger, shutdown) = Shutdown::new();
    let directory = backtrack_directory::start(config, nats.client().await.unwrap(), shutdown)
        .await
        .unwrap();
    directory.create_tenant("t", "T", &origin()).await.unwrap();
    Fixture {
        nats,
        _dir: dir,
        _trigger: trigger,
        directory,
    }
}

fn origin() -> Origin {
    Origin {
        actor: "test".into(),
        source: "test".into(),
        correlation_id: None,
    }
}

fn user(id: &str, upn: &str) -> Command {
    Command::Create {
        kind: ObjectKind::User,
        id: id.into(),
        attributes: json!({"displayName": upn, "userPrincipalName": upn})
            .as_object()
            .cloned()
            .unwrap(),
        links: vec![],
    }
}

const U1: &str = "00000000-0000-4000-8000-000000000001";
const U2: &str = "00000000-0000-4000-8000-000000000002";
const G1: &str = "00000000-0000-4000-8000-0000000000a1";

#[tokio::test(flavor = "multi_thread")]
async fn the_sweeper_purges_expired_recycle_bin_objects_as_logged_hard_deletes() {
    let f = fixture(Duration::ZERO).await;
    let d = &f.directory;
    d.execute("t", user(U1, "a@t.test"), None, &origin())
        .await
        .unwrap();
    let group = Command::Create {
        kind: ObjectKind::Group,
        id: G1.into(),
        attributes: json!({"displayName": "G"}).as_object().cloned().unwrap(),
        links: vec![Link::new("members", U1)],
    };
    d.execute("t", group, None, &origin()).await.unwrap();
    d.execute("t", Command::SoftDelete { id: U1.into() }, None, &origin())
        .await
        .unwrap();
    let before = d.log().state().await.unwrap().last_sequence;

    assert_eq!(sweeper::sweep(d).await.unwrap(), 1);
    assert!(d.projection().object("t", U1).unwrap().is_none());
    let g = d.projection().object_with_links("t", G1).unwrap().unwrap();
    assert!(
        g.links.is_empty(),
        "the purge unlinked the group member first"
    );
    let events = d
        .log()
        .read_range(before + 1, u64::MAX, "bt.ev.t.>")
        .await
        .unwrap();
    let changes: Vec<&str> = events.iter().map(|e| e.event.change.name()).collect();
    assert_eq!(changes, vec!["linksRemoved", "hardDeleted"]);
    assert!(events
        .iter()
        .all(|e| e.event.meta.actor == "system:recycle-bin"));
    assert_eq!(sweeper::sweep(d).await.unwrap(), 0, "nothing left to purge");
    // The purge left exactly one audit record, with the object's last attributes.
    let records = audit_records(&f, "bt.audit.t.directory").await;
    assert_eq!(records.len(), 1, "{records:?}");
    let r = &records[0];
    assert_eq!(r.action, "directory.hardDeleted");
    assert_eq!(r.actor.as_ref().unwrap().subject, "system:recycle-bin");
    assert_eq!(r.target.as_ref().unwrap().id, U1);
    assert!(r.before_json.contains("a@t.test"), "{}", r.before_json);
}

/// Every audit record on `subject`.
async fn audit_records(f: &Fixture, subject: &str) -> Vec<backtrack_proto::v1::AuditRecord> {
    use async_nats::jetstream::consumer::pull::OrderedConfig;
    use futures::StreamExt;
    use prost::Message;
    let js = async_nats::jetstream::new(f.nats.client().await.unwrap());
    let stream = js.get_stream("BT_AUDIT").await.unwrap();
    let mut consumer = stream
        .create_consumer(OrderedConfig {
            filter_subject: subject.to_string(),
            ..Default::default()
        })
        .await
        .unwrap();
    let pending = consumer.info().await.unwrap().num_pending;
    let mut messages = consumer.messages().await.unwrap();
    let mut out = Vec::new();
    for _ in 0..pending {
        let m = messages.next().await.unwrap().unwrap();
        out.push(backtrack_proto::v1::AuditRecord::decode(m.payload.as_ref()).unwrap());
    }
    out
}

#[tokio::test(flavor = "multi_thread")]
async fn a_retried_mutation_is_applied_once() {
    let f = fixture(Duration::from_secs(3600)).await;
    let d = &f.directory;
    let first = d
        .execute("t", user(U1, "a@t.test"), Some("m-1".into()), &origin())
        .await
        .unwrap();
    let again = d
        .execute("t", user(U1, "a@t.test"), Some("m-1".into()), &origin())
        .await
        .unwrap();
    assert_eq!(first.1, 1);
    assert_eq!(again.1, 0, "the retry appends nothing");
    assert_eq!(first.0.unwrap().version, again.0.unwrap().version);
    let set = json!({"jobTitle": "x"}).as_object().cloned().unwrap();
    let update = Command::Update {
        id: U1.into(),
        set,
        unset: vec![],
    };
    d.execute("t", update.clone(), Some("m-2".into()), &origin())
        .await
        .unwrap();
    let retried = d
        .run("t", update.clone(), Some("m-2".into()), &origin(), &[])
        .await
        .unwrap();
    assert_eq!((retried.events, retried.already_applied), (0, true));
    // The same change under a new mutation id: nothing to change, but decided anew.
    let again = d
        .run("t", update, Some("m-3".into()), &origin(), &[])
        .await
        .unwrap();
    assert_eq!((again.events, again.already_applied), (0, false));
    assert_eq!(again.object, retried.object);
    assert_eq!(
        d.log().state().await.unwrap().messages,
        3,
        "tenant, create, one update"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn concurrent_writers_cannot_both_claim_a_user_principal_name() {
    let f = fixture(Duration::from_secs(3600)).await;
    let d = f.directory.clone();
    let d2 = f.directory.clone();
    let (a, b) = tokio::join!(
        tokio::spawn(async move {
            d.execute("t", user(U1, "same@t.test"), None, &origin())
                .await
        }),
        tokio::spawn(async move {
            d2.execute("t", user(U2, "SAME@t.test"), None, &origin())
                .await
        }),
    );
    let results = [a.unwrap().is_ok(), b.unwrap().is_ok()];
    assert_eq!(
        results.iter().filter(|ok| **ok).count(),
        1,
        "exactly one create wins: {results:?}"
    );
}

/// An import larger than one decided chunk: an item links to an item decided in an earlier
/// chunk (still being stored while it is decided), a rejected item and an item already
/// stored sit in between, and every outcome lands on its own item.
#[tokio::test(flavor = "multi_thread")]
async fn a_large_import_links_across_chunks_and_reports_each_item() {
    use backtrack_directory::writer::{ImportItem, ImportOutcome};
    let f = fixture(Duration::from_secs(3600)).await;
    let d = &f.directory;
    d.execute("t", user(U1, "existing@t.test"), None, &origin())
        .await
        .unwrap();
    let id = |n: usize| format!("00000000-0000-4000-8000-{n:012x}");
    let attributes = |upn: String| {
        json!({"displayName": upn, "userPrincipalName": upn})
            .as_object()
            .cloned()
            .unwrap()
    };
    let user_item = |n: usize| ImportItem {
        kind: ObjectKind::User,
        id: Some(id(0x100 + n)),
        attributes: attributes(format!("u{n}@t.test")),
        links: vec![],
        mutation_id: Some(format!("m-{n}")),
    };
    let users = 1000;
    let mut items: Vec<ImportItem> = (0..users).map(user_item).collect();
    // A duplicate user principal name: rejected, in the middle of the import.
    items[500].attributes = attributes("existing@t.test".into());
    // An object that is already there.
    items[600].id = Some(U1.into());
    items[600].attributes = attributes("existing@t.test".into());
    items.push(ImportItem {
        kind: ObjectKind::Group,
        id: Some(G1.into()),
        attributes: json!({"displayName": "All"}).as_object().cloned().unwrap(),
        links: (0..users)
            .filter(|n| ![500, 600].contains(n))
            .map(|n| Link::new("members", id(0x100 + n)))
            .collect(),
        mutation_id: Some("m-group".into()),
    });
    let (outcomes, events) = d.import("t", items, &origin()).await.unwrap();
    assert_eq!(outcomes.len(), users + 1);
    for (n, outcome) in outcomes.iter().enumerate() {
        match n {
            500 => assert!(
                matches!(outcome, ImportOutcome::Rejected(m) if m.contains("existing@t.test")),
                "{outcome:?}"
            ),
            600 => assert_eq!(outcome, &ImportOutcome::AlreadyExists(U1.into())),
            _ if n == users => assert_eq!(outcome, &ImportOutcome::Created(G1.into())),
            _ => assert_eq!(outcome, &ImportOutcome::Created(id(0x100 + n))),
        }
    }
    assert_eq!(events, users as u64 - 1);
    // Projected before the call returned: the group holds every member it named.
    let group = d.projection().object_with_links("t", G1).unwrap().unwrap();
    assert_eq!(group.links["members"].len(), users - 2);
    assert!(d
        .projection()
        .object("t", &id(0x100 + 999))
        .unwrap()
        .is_some());
    // The same import again creates nothing.
    let again: Vec<ImportItem> = (0..3).map(user_item).collect();
    let (outcomes, events) = d.import("t", again, &origin()).await.unwrap();
    assert_eq!(events, 0);
    assert!(outcomes
        .iter()
        .all(|o| matches!(o, ImportOutcome::AlreadyExists(_))));
}
