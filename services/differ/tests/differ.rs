//! The differ in-process with the directory and the snapshotter, against a real
//! nats-server and real RocksDB.
#![allow(clippy::unwrap_used)]

use std::time::Duration;

use backtrack_differ::jobs::JobStore;
use backtrack_differ::lease;
use backtrack_differ::{Differ, DifferError, ReportRequest, Scope};
use backtrack_directory::writer::Origin;
use backtrack_directory::DirectoryConfig;
use backtrack_domain::command::Command;
use backtrack_domain::{Link, ObjectKind};
use backtrack_platform::shutdown::{Shutdown, ShutdownTrigger};
use backtrack_proto::v1;
use backtrack_snapshotter::SnapshotterConfig;
use backtrack_test_support::{eventually, NatsServer};
use serde_json::{json, Value};

const U1: &str = "00000000-0000-4000-8000-000000000001";
const U2: &str = "00000000-0000-4000-8000-000000000002";
const G1: &str = "00000000-0000-4000-8000-0000000000a1";

fn origin() -> Origin {
    Origin {
        actor: "test".into(),
        source: "test".into(),
        correlation_id: None,
    }
}

fn attrs(v: Value) -> serde_json::Map<String, Value> {
    v.as_object().cloned().unwrap()
}

async fn finished(differ: &Differ, report: &v1::Report) -> v1::Report {
    eventually("the report to finish", Duration::from_secs(20), || async {
        let r = differ.report("t", &report.id).await.unwrap();
        (r.state != v1::JobState::Initialized as i32 && r.state != v1::JobState::Calculating as i32)
            .then_some(r)
    })
    .await
    .unwrap()
}

/// A real nats-server, the directory (tenant `t` created), the snapshotter and a differ
/// keeping reports for `retention`.
struct Stack {
    nats: NatsServer,
    _dir: tempfile::TempDir,
    _trigger: ShutdownTrigger,
    directory: backtrack_directory::Directory,
    snapshotter: backtrack_snapshotter::Snapshotter,
    differ: Differ,
}

async fn stack(retention: Duration) -> Stack {
    let nats = NatsServer::start().await.unwrap();
    let dir = tempfile::tempdir().unwrap();
    let (trigger, shutdown) = Shutdown::new();
    let directory = backtrack_directory::start(
        DirectoryConfig::new(dir.path().join("d")),
        nats.client().await.unwrap(),
        shutdown.clone(),
    )
    .await
    .unwrap();
    let snapshotter = backtrack_snapshotter::start(
        SnapshotterConfig::new(dir.path().join("s")),
        nats.client().await.unwrap(),
        shutdown,
    )
    .await
    .unwrap();
    let differ = Differ::with_retention(
        snapshotter.clone(),
        nats.client().await.unwrap(),
        1,
        retention,
    )
    .await
    .unwrap();
    directory.create_tenant("t", "T", &origin()).await.unwrap();
    Stack {
        nats,
        _dir: dir,
        _trigger: trigger,
        directory,
        snapshotter,
        differ,
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn reports_list_exactly_the_changes_between_two_points() {
    let Stack {
        nats,
        directory,
        snapshotter,
        differ,
        _dir,
        _trigger,
    } = stack(backtrack_differ::DEFAULT_RETENTION).await;
    let run = |c: Command| {
        let d = directory.clone();
        async move { d.execute("t", c, None, &origin()).await.unwrap() }
    };
    for (id, upn) in [(U1, "a@t.test"), (U2, "b@t.test")] {
        run(Command::Create {
            kind: ObjectKind::User,
            id: id.into(),
            attributes: attrs(
                json!({"displayName": upn, "userPrincipalName": upn, "department": "Sales"}),
            ),
            links: vec![],
        })
        .await;
    }
    run(Command::Create {
        kind: ObjectKind::Group,
        id: G1.into(),
        attributes: attrs(json!({"displayName": "Team"})),
        links: vec![Link::new("members", U1), Link::new("members", U2)],
    })
    .await;
    let base = snapshotter.catch_up().await.unwrap();

    run(Command::Update {
        id: U1.into(),
        set: attrs(json!({"department": "Legal"})),
        unset: vec![],
    })
    .await;
    // A change and its undo inside the range: no difference.
    run(Command::Update {
        id: U2.into(),
        set: attrs(json!({"department": "Ops"})),
        unset: vec![],
    })
    .await;
    run(Command::Update {
        id: U2.into(),
        set: attrs(json!({"department": "Sales"})),
        unset: vec![],
    })
    .await;
    run(Command::RemoveLinks {
        id: G1.into(),
        relation: "members".into(),
        targets: vec![U2.into()],
    })
    .await;

    let request = ReportRequest {
        tenant: "t".into(),
        base: v1::Point {
            point: Some(v1::point::Point::Sequence(base)),
        },
        target: None,
        scope: Scope::default(),
        requested_by: "test".into(),
    };
    let report = finished(
        &differ,
        &differ.create_report(request.clone()).await.unwrap(),
    )
    .await;
    assert_eq!(
        report.state,
        v1::JobState::Successful as i32,
        "{}",
        report.error
    );

    // The report's two phases are timed for /metrics.
    let scrape = backtrack_platform::metrics::render();
    for phase in ["compute", "store"] {
        let count = format!("backtrack_report_phase_seconds_count{{phase=\"{phase}\"}}");
        assert!(scrape.contains(&count), "{phase} not timed:\n{scrape}");
    }
    assert_eq!(
        report.total, 3,
        "only the objects changed in the range are examined"
    );
    let (_, items) = differ.items("t", &report.id).await.unwrap();
    let expected = json!([
        {"objectId": U1, "kind": "user", "displayName": "a@t.test", "changeType": "modified", "recoveryAction": "update", "synced": false,
         "attributes": [{"path": "department", "base": "Sales", "target": "Legal"}], "links": []},
        {"objectId": G1, "kind": "group", "displayName": "Team", "changeType": "modified", "recoveryAction": "update", "synced": false,
         "attributes": [], "links": [{"relation": "members", "targetId": U2, "change": "removed"}]},
    ]);
    let mut sorted = items.clone();
    sorted.sort_by_key(|i| i["kind"].as_str().unwrap() != "user");
    assert_eq!(Value::Array(sorted), expected);

    // The same two sequences and scope: served from the first report.
    let again = differ.create_report(request.clone()).await.unwrap();
    assert_eq!(again.id, report.id);

    // One job per tenant: with the lease held, a new report is refused, naming the holder.
    let jobs = JobStore::open(&async_nats::jetstream::new(nats.client().await.unwrap()), 1)
        .await
        .unwrap();
    jobs.acquire("t", "recovery r-42").await.unwrap().unwrap();
    let scoped = ReportRequest {
        scope: Scope {
            kinds: vec![ObjectKind::User],
            ids: vec![],
            ..Scope::default()
        },
        ..request
    };
    match differ.create_report(scoped.clone()).await {
        Err(DifferError::Precondition(m)) => assert!(m.contains("recovery r-42"), "{m}"),
        other => panic!("expected a precondition failure, got {other:?}"),
    }
    jobs.release("t").await;
    let users_only = finished(&differ, &differ.create_report(scoped).await.unwrap()).await;
    let (_, items) = differ.items("t", &users_only.id).await.unwrap();
    assert_eq!(items.len(), 1);
    assert!(matches!(
        differ.cancel("t", &users_only.id).await,
        Err(DifferError::Precondition(_))
    ));
}

#[tokio::test(flavor = "multi_thread")]
async fn a_running_report_can_be_cancelled_from_any_replica_and_frees_the_tenant() {
    use backtrack_domain::event::{AttributeChange, Change, Event, EventMeta};
    use backtrack_eventlog::{Append, EventLog, StreamSettings};

    let Stack {
        nats,
        snapshotter,
        differ,
        directory: _,
        _dir,
        _trigger,
    } = stack(backtrack_differ::DEFAULT_RETENTION).await;
    let log = EventLog::open(nats.client().await.unwrap(), StreamSettings::default())
        .await
        .unwrap();
    let event = |n: u64, kind: &str, id: String, change: Change| Append {
        event: Event {
            meta: EventMeta {
                event_id: format!("e{n}"),
                tenant: "t".into(),
                kind: kind.into(),
                object_id: id,
                actor: "test".into(),
                time_ms: 1,
                source: "test".into(),
                correlation_id: None,
                mutation_id: format!("m{n}"),
            },
            change,
        },
        msg_id: format!("t:m{n}:0"),
        expected_last_subject_sequence: None,
    };
    let id = |i: u64| format!("00000000-0000-4000-8000-{i:012x}");
    const USERS: u64 = 8_000;
    let mut batch = vec![event(
        0,
        "tenant",
        "t".into(),
        Change::TenantCreated {
            display_name: "T".into(),
        },
    )];
    batch.extend((1..=USERS).map(|i| {
        event(
            i,
            "user",
            id(i),
            Change::Created {
                attributes: attrs(json!({"displayName": "U", "department": "A"})),
                links: vec![],
            },
        )
    }));
    for result in log.append(batch).await {
        result.unwrap();
    }
    let base = snapshotter.catch_up().await.unwrap();
    let updates = (1..=USERS).map(|i| {
        event(
            USERS + i,
            "user",
            id(i),
            Change::AttributesChanged(vec![AttributeChange {
                name: "department".into(),
                old: Some(json!("A")),
                new: Some(json!("B")),
            }]),
        )
    });
    for result in log.append(updates.collect()).await {
        result.unwrap();
    }
    snapshotter.catch_up().await.unwrap();

    let request = ReportRequest {
        tenant: "t".into(),
        base: v1::Point {
            point: Some(v1::point::Point::Sequence(base)),
        },
        target: None,
        scope: Scope::default(),
        requested_by: "test".into(),
    };
    let running = differ.create_report(request.clone()).await.unwrap();
    differ.cancel("t", &running.id).await.unwrap();
    let stopped = finished(&differ, &running).await;
    assert_eq!(stopped.state, v1::JobState::Abandoned as i32, "{stopped:?}");
    assert!(
        stopped.examined < USERS,
        "it stopped early ({} examined)",
        stopped.examined
    );
    // Items are stored while they are computed; a cancelled report's are deleted.
    let store = JobStore::open(&async_nats::jetstream::new(nats.client().await.unwrap()), 1)
        .await
        .unwrap();
    assert!(store.items("t", &running.id).await.is_err());
    // The lease is free again: the next report runs to the end.
    let done = finished(
        &differ,
        &differ.create_report(request.clone()).await.unwrap(),
    )
    .await;
    assert_eq!(done.state, v1::JobState::Successful as i32, "{done:?}");
    assert_eq!(done.changed, USERS);

    // A cancel that reaches another replica (as through a Service in front of several)
    // stops the job too. Another scope, so the finished report is not simply served again.
    let replica = Differ::with_retention(
        snapshotter.clone(),
        nats.client().await.unwrap(),
        1,
        backtrack_differ::DEFAULT_RETENTION,
    )
    .await
    .unwrap();
    let scoped = ReportRequest {
        scope: Scope {
            kinds: vec![ObjectKind::User],
            ids: Vec::new(),
            ..Scope::default()
        },
        ..request
    };
    let running = differ.create_report(scoped).await.unwrap();
    assert_eq!(
        replica.cancel("t", &running.id).await.unwrap().id,
        running.id
    );
    let stopped = finished(&differ, &running).await;
    assert_eq!(stopped.state, v1::JobState::Abandoned as i32, "{stopped:?}");
    assert!(stopped.examined < USERS, "{stopped:?}");
    // Once it has stopped, neither replica has anything left to cancel.
    for d in [&differ, &replica] {
        let refused = d.cancel("t", &running.id).await.unwrap_err();
        assert!(
            matches!(refused, DifferError::Precondition(_)),
            "{refused:?}"
        );
    }
    // About 1.5 MB of items, stored in several chunks, all come back, in id order.
    let (_, items) = differ.items("t", &done.id).await.unwrap();
    let ids: Vec<&str> = items
        .iter()
        .filter_map(|i| i["objectId"].as_str())
        .collect();
    assert_eq!(ids, (1..=USERS).map(id).collect::<Vec<_>>());
    assert!(items
        .iter()
        .all(|i| i["attributes"] == json!([{"path": "department", "base": "A", "target": "B"}])));
}

#[tokio::test(flavor = "multi_thread")]
async fn reports_past_their_retention_are_gone_and_swept() {
    let Stack {
        nats,
        directory,
        snapshotter,
        differ,
        _dir,
        _trigger,
    } = stack(Duration::from_secs(2)).await;
    let base = snapshotter.catch_up().await.unwrap();
    directory
        .execute(
            "t",
            Command::Create {
                kind: ObjectKind::User,
                id: U1.into(),
                attributes: attrs(json!({"displayName": "A", "userPrincipalName": "a@t.test"})),
                links: vec![],
            },
            None,
            &origin(),
        )
        .await
        .unwrap();
    let report = differ
        .create_report(ReportRequest {
            tenant: "t".into(),
            base: v1::Point {
                point: Some(v1::point::Point::Sequence(base)),
            },
            target: None,
            scope: Scope::default(),
            requested_by: "test".into(),
        })
        .await
        .unwrap();
    let done = finished(&differ, &report).await;
    assert_eq!(done.state, v1::JobState::Successful as i32);
    assert_eq!(differ.items("t", &report.id).await.unwrap().1.len(), 1);

    eventually("the report to expire", Duration::from_secs(10), || async {
        matches!(
            differ.report("t", &report.id).await,
            Err(DifferError::NotFound(_))
        )
        .then_some(())
    })
    .await
    .unwrap();
    assert!(differ.reports("t").await.unwrap().is_empty());
    assert_eq!(differ.sweep_expired().await.unwrap(), 1);
    let jobs = JobStore::open(&async_nats::jetstream::new(nats.client().await.unwrap()), 1)
        .await
        .unwrap();
    assert!(jobs.report("t", &report.id).await.unwrap().is_none());
    assert!(jobs.items("t", &report.id).await.is_err());
}

/// A report record as a job writes it while it runs.
fn calculating(id: &str) -> v1::Report {
    v1::Report {
        id: id.into(),
        tenant: "t".into(),
        state: v1::JobState::Calculating as i32,
        expires_at_ms: backtrack_platform::clock::now_ms() + 3_600_000,
        ..Default::default()
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn a_finishing_report_still_holds_the_tenant_for_readers_and_hands_it_on_at_once() {
    use lease::FINISHING;

    let Stack {
        nats,
        snapshotter,
        differ,
        directory: _,
        _dir,
        _trigger,
    } = stack(backtrack_differ::DEFAULT_RETENTION).await;
    // Another replica that calls a job interrupted as soon as its lease is not its own.
    let eager = Differ::open(
        snapshotter.clone(),
        nats.client().await.unwrap(),
        1,
        backtrack_differ::DEFAULT_RETENTION,
        Duration::ZERO,
    )
    .await
    .unwrap();
    let jobs = JobStore::open(&async_nats::jetstream::new(nats.client().await.unwrap()), 1)
        .await
        .unwrap();

    // Job x has done its work and marked its lease; its final record is not stored yet.
    let x = "00000000-0000-7000-8000-000000000001";
    jobs.put_report(&calculating(x)).await.unwrap();
    jobs.acquire("t", &format!("report {x}"))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(jobs.mark_finishing("t", "report someone-else").await, None);
    let marked = jobs.mark_finishing("t", &format!("report {x}")).await;
    assert!(marked.is_some());
    assert_eq!(
        jobs.lease_holder("t").await.unwrap(),
        format!("report {x}{FINISHING}")
    );
    // Readers still count it as held: it is not called interrupted.
    let seen = eager.report("t", x).await.unwrap();
    assert_eq!(seen.state, v1::JobState::Calculating as i32, "{seen:?}");

    // The next job takes the marked lease over at once; x's release then leaves it alone.
    jobs.acquire("t", "report next").await.unwrap().unwrap();
    jobs.release_at("t", marked, &format!("report {x}")).await;
    assert_eq!(jobs.lease_holder("t").await.unwrap(), "report next");
    // An unmarked lease is not taken over.
    assert_eq!(
        jobs.acquire("t", "report third").await.unwrap(),
        Err("report next".to_string())
    );

    // x's record was written a moment ago: the default replica does not call it
    // interrupted yet (x may be storing its final record right now) ...
    let seen = differ.report("t", x).await.unwrap();
    assert_eq!(seen.state, v1::JobState::Calculating as i32, "{seen:?}");
    // ... while a record nobody holds, quiet past the limit, is.
    let failed = eager.report("t", x).await.unwrap();
    assert_eq!(failed.state, v1::JobState::Failed as i32, "{failed:?}");
    assert!(failed.error.contains("interrupted"), "{failed:?}");
    // The job's own final record, stored after all, is what stands.
    jobs.put_report(&v1::Report {
        state: v1::JobState::Successful as i32,
        ..calculating(x)
    })
    .await
    .unwrap();
    let done = eager.report("t", x).await.unwrap();
    assert_eq!(done.state, v1::JobState::Successful as i32, "{done:?}");

    // A job that could not mark its lease still deletes it (and only its own).
    jobs.release_at("t", None, "report third").await;
    assert_eq!(jobs.lease_holder("t").await.unwrap(), "report next");
    jobs.release_at("t", None, "report next").await;
    assert_eq!(jobs.lease_holder("t").await, None);
}
