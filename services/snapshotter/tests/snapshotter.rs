//! The snapshotter in-process with the directory, against a real nats-server and real
//! RocksDB: backups, time travel, verification, tampering, rebuilds and the schedule.
#![allow(clippy::unwrap_used)]

use std::time::Duration;

use backtrack_directory::writer::Origin;
use backtrack_directory::{Directory, DirectoryConfig};
use backtrack_domain::command::Command;
use backtrack_domain::{Link, ObjectKind};
use backtrack_platform::shutdown::{Shutdown, ShutdownTrigger};
use backtrack_proto::v1::{self, BackupTrigger};
use backtrack_snapshotter::backups::BackupRequest;
use backtrack_snapshotter::checkpoint::{CheckpointInfo, Checkpoints};
use backtrack_snapshotter::policy::Policy;
use backtrack_snapshotter::{Snapshotter, SnapshotterConfig};
use backtrack_test_support::{eventually, NatsServer};
use serde_json::json;

const U1: &str = "00000000-0000-4000-8000-000000000001";
const U2: &str = "00000000-0000-4000-8000-000000000002";
const G1: &str = "00000000-0000-4000-8000-0000000000a1";

struct Fixture {
    nats: NatsServer,
    dir: tempfile::TempDir,
    _trigger: ShutdownTrigger,
    directory: Directory,
}

async fn fixture() -> Fixture {
    let nats = NatsServer::start().await.unwrap();
    let dir = tempfile::tempdir().unwrap();
    let (trigger, shutdown) = Shutdown::new();
    let directory = backtrack_directory::start(
        DirectoryConfig::new(dir.path().join("directory")),
        nats.client().await.unwrap(),
        shutdown,
    )
    .await
    .unwrap();
    directory.create_tenant("t", "T", &origin()).await.unwrap();
    Fixture {
        nats,
        dir,
        _trigger: trigger,
        directory,
    }
}

impl Fixture {
    async fn snapshotter(&self, folder: &str) -> (Snapshotter, ShutdownTrigger) {
        self.snapshotter_with(folder, 0).await
    }

    async fn snapshotter_with(
        &self,
        folder: &str,
        checkpoint_every: u64,
    ) -> (Snapshotter, ShutdownTrigger) {
        let mut config = SnapshotterConfig::new(self.dir.path().join(folder));
        config.scheduler_tick = Duration::from_millis(50);
        config.policy_refresh = Duration::ZERO;
        // Per-second schedules, so a test sees scheduled backups at once.
        config.backup_min_interval = Duration::ZERO;
        config.checkpoint_every = checkpoint_every;
        let (trigger, shutdown) = Shutdown::new();
        let snapshotter =
            backtrack_snapshotter::start(config, self.nats.client().await.unwrap(), shutdown)
                .await
                .unwrap();
        (snapshotter, trigger)
    }

    /// A snapshotter checkpointing every 10 events, after 15 users, and its first
    /// checkpoint.
    async fn checkpointed(
        &self,
        folder: &str,
    ) -> (Snapshotter, ShutdownTrigger, Checkpoints, CheckpointInfo) {
        let (s, stop) = self.snapshotter_with(folder, 10).await;
        for i in 0..15 {
            self.run(user(
                &format!("00000000-0000-4000-8000-0000000002{i:02}"),
                &format!("c{i}@t.test"),
                "D",
            ))
            .await;
        }
        s.catch_up().await.unwrap();
        let js = async_nats::jetstream::new(self.nats.client().await.unwrap());
        let checkpoints = Checkpoints::open(&js, 1).await.unwrap();
        let saved = eventually("a checkpoint", Duration::from_secs(10), || async {
            checkpoints.list().await.unwrap().into_iter().next()
        })
        .await
        .unwrap();
        (s, stop, checkpoints, saved)
    }

    async fn run(&self, command: Command) {
        self.directory
            .execute("t", command, None, &origin())
            .await
            .unwrap();
    }
}

fn origin() -> Origin {
    Origin {
        actor: "test".into(),
        source: "test".into(),
        correlation_id: None,
    }
}

fn user(id: &str, upn: &str, department: &str) -> Command {
    Command::Create {
        kind: ObjectKind::User,
        id: id.into(),
        attributes: json!({"displayName": upn, "userPrincipalName": upn, "department": department})
            .as_object()
            .cloned()
            .unwrap(),
        links: vec![],
    }
}

fn on_demand(description: &str) -> BackupRequest {
    BackupRequest {
        tenant: "t".into(),
        description: description.into(),
        trigger: BackupTrigger::OnDemand,
        requested_by: "test".into(),
        scheduled_for_ms: None,
    }
}

fn at_backup(id: &str) -> v1::Point {
    v1::Point {
        point: Some(v1::point::Point::BackupId(id.into())),
    }
}

async fn department_at(s: &Snapshotter, id: &str, point: &v1::Point) -> Option<String> {
    let resolved = s.resolve("t", Some(point)).await.unwrap();
    s.store()
        .object_at("t", id, resolved.sequence)
        .unwrap()
        .map(|o| o.attributes["department"].as_str().unwrap().to_string())
}

#[tokio::test(flavor = "multi_thread")]
async fn backups_name_exact_past_states_and_verify_until_the_store_is_tampered_with() {
    let f = fixture().await;
    let (s, _stop) = f.snapshotter("snapshotter").await;
    f.run(user(U1, "a@t.test", "Sales")).await;
    f.run(user(U2, "b@t.test", "Ops")).await;
    f.run(Command::Create {
        kind: ObjectKind::Group,
        id: G1.into(),
        attributes: json!({"displayName": "G"}).as_object().cloned().unwrap(),
        links: vec![Link::new("members", U1), Link::new("members", U2)],
    })
    .await;
    let first = s.create_backup(on_demand("before")).await.unwrap();
    assert_eq!(
        first.digest,
        f.directory.projection().tenant_digest("t").unwrap().0
    );
    let users = first.counts.iter().find(|c| c.kind == "user").unwrap();
    assert_eq!((users.live, users.deleted), (2, 0));

    f.run(Command::Update {
        id: U1.into(),
        set: json!({"department": "Legal"}).as_object().cloned().unwrap(),
        unset: vec![],
    })
    .await;
    f.run(Command::RemoveLinks {
        id: G1.into(),
        relation: "members".into(),
        targets: vec![U2.into()],
    })
    .await;
    f.run(Command::SoftDelete { id: U2.into() }).await;
    let second = s.create_backup(on_demand("after")).await.unwrap();
    assert!(second.sequence > first.sequence);
    assert_ne!(second.digest, first.digest);

    assert_eq!(
        department_at(&s, U1, &at_backup(&first.id))
            .await
            .as_deref(),
        Some("Sales")
    );
    assert_eq!(
        department_at(&s, U1, &at_backup(&second.id))
            .await
            .as_deref(),
        Some("Legal")
    );
    let members = |seq| {
        s.store()
            .links_at("t", G1, Some("members"), seq)
            .unwrap()
            .into_iter()
            .map(|l| l.target_id)
            .collect::<Vec<_>>()
    };
    assert_eq!(
        members(first.sequence),
        vec![U1.to_string(), U2.to_string()]
    );
    assert_eq!(members(second.sequence), vec![U1.to_string()]);
    let u2 = s
        .store()
        .object_at("t", U2, second.sequence)
        .unwrap()
        .unwrap();
    assert!(u2.is_deleted());

    let stored = s
        .log()
        .stored_time_ms(first.sequence)
        .await
        .unwrap()
        .unwrap();
    assert!(
        stored > 0 && stored <= first.created_at_ms,
        "a sequence has its message's stream time: {stored}"
    );

    let verified = s.verify("t", &first.id).await.unwrap();
    assert!(verified.ok, "{}", verified.message);
    assert!(verified.events_replayed >= 3);

    // Tamper: rewrite the stored version of U1 at the first backup (its creation, the
    // oldest of its versions) behind the service. Same length: the value stays well formed.
    let (key, mut forged) = s
        .store()
        .scan_raw(format!("V/t/{U1}\0").as_bytes())
        .unwrap()
        .pop()
        .unwrap();
    let at = forged.windows(5).position(|w| w == b"Sales").unwrap();
    forged[at..at + 5].copy_from_slice(b"Fraud");
    s.store().put_raw(&key, &forged).unwrap();
    let tampered = s.verify("t", &first.id).await.unwrap();
    assert!(!tampered.ok);
    assert_eq!(tampered.mismatched_ids, vec![U1.to_string()]);
    assert!(
        tampered.message.contains("time-travel store differs"),
        "{}",
        tampered.message
    );
    // The later backup does not read that version: it still verifies.
    assert!(s.verify("t", &second.id).await.unwrap().ok);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_deleted_store_rebuilds_to_identical_digests_and_backups_survive_a_restart() {
    let f = fixture().await;
    let (s, stop) = f.snapshotter("first").await;
    for i in 0..20 {
        f.run(user(
            &format!("00000000-0000-4000-8000-0000000001{i:02}"),
            &format!("u{i}@t.test"),
            "D",
        ))
        .await;
    }
    let backup = s.create_backup(on_demand("keep me")).await.unwrap();
    let pinned = s.set_pinned("t", &backup.id, true, "test").await.unwrap();
    assert!(pinned.pinned);
    drop(s);
    stop.trigger();

    // A new folder: the store rebuilds from the log; the catalog comes from BT_BACKUPS.
    let (rebuilt, _stop) = f.snapshotter("second").await;
    rebuilt.catch_up().await.unwrap();
    let again = rebuilt.backup("t", &backup.id).await.unwrap();
    assert_eq!(again.digest, backup.digest);
    assert!(again.pinned, "pins come back from the stream");
    let (_, _, summary) = rebuilt.store().tenant_summary("t");
    assert_eq!(
        summary.digest(),
        f.directory.projection().tenant_digest("t").unwrap().0
    );
    assert!(rebuilt.verify("t", &backup.id).await.unwrap().ok);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_per_second_schedule_fires_and_the_backup_stream_refuses_deletes_and_purges() {
    let f = fixture().await;
    let (s, _stop) = f.snapshotter("snapshotter").await;
    f.run(user(U1, "a@t.test", "Sales")).await;
    s.policies()
        .set(
            "t",
            Policy {
                schedule: "* * * * * *".into(),
                ..Policy::default()
            },
        )
        .await
        .unwrap();
    let scheduled = eventually("a scheduled backup", Duration::from_secs(10), || async {
        s.backups("t", false)
            .await
            .unwrap()
            .into_iter()
            .find(|b| b.trigger == BackupTrigger::Scheduled as i32)
    })
    .await
    .unwrap();
    assert_eq!(scheduled.requested_by, "scheduler");
    assert_eq!(
        scheduled.digest,
        f.directory.projection().tenant_digest("t").unwrap().0
    );

    let js = async_nats::jetstream::new(f.nats.client().await.unwrap());
    let stream = js.get_stream("BT_BACKUPS").await.unwrap();
    assert!(stream
        .delete_message(scheduled.manifest_sequence)
        .await
        .is_err());
    assert!(stream.purge().await.is_err());
    assert!(s.backup("t", &scheduled.id).await.is_ok());
    // The scheduler's backups are on the audit trail too.
    let id = scheduled.id.clone();
    let record = eventually(
        "the scheduled backup's audit record",
        Duration::from_secs(10),
        || {
            let (nats, id) = (&f.nats, id.clone());
            async move {
                audit_records(nats, "bt.audit.t.backup")
                    .await
                    .into_iter()
                    .find(|r| r.target.as_ref().is_some_and(|t| t.id == id))
            }
        },
    )
    .await
    .unwrap();
    assert_eq!(record.action, "backup.created");
    assert_eq!(record.actor.unwrap().subject, "system:scheduler");
}

/// Every audit record on `subject`.
async fn audit_records(
    nats: &backtrack_test_support::NatsServer,
    subject: &str,
) -> Vec<backtrack_proto::v1::AuditRecord> {
    use async_nats::jetstream::consumer::pull::OrderedConfig;
    use futures::StreamExt;
    use prost::Message;
    let js = async_nats::jetstream::new(nats.client().await.unwrap());
    let Ok(stream) = js.get_stream("BT_AUDIT").await else {
        return Vec::new();
    };
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
async fn an_empty_folder_restores_the_newest_verified_checkpoint_and_replays_only_the_tail() {
    let f = fixture().await;
    let (s, stop, _, saved) = f.checkpointed("first").await;
    assert!(saved.position >= 10, "checkpointed at {}", saved.position);
    for i in 15..20 {
        f.run(user(
            &format!("00000000-0000-4000-8000-0000000002{i:02}"),
            &format!("c{i}@t.test"),
            "D",
        ))
        .await;
    }
    let before = s
        .backup("t", &s.create_backup(on_demand("x")).await.unwrap().id)
        .await
        .unwrap();
    drop(s);
    stop.trigger();

    let (restored, _stop) = f.snapshotter_with("second", 10).await;
    let from = restored
        .restored_from()
        .expect("restored from a checkpoint");
    assert!(from >= saved.position);
    restored.catch_up().await.unwrap();
    let (_, _, summary) = restored.store().tenant_summary("t");
    assert_eq!(
        summary.digest(),
        f.directory.projection().tenant_digest("t").unwrap().0
    );
    assert!(restored.verify("t", &before.id).await.unwrap().ok);
    // History before the checkpoint came with it.
    let early = restored
        .store()
        .history("t", "00000000-0000-4000-8000-000000000200")
        .unwrap();
    assert_eq!(early.len(), 1);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_checkpoint_of_another_store_layout_is_not_used_and_the_log_rebuilds_the_store() {
    use tokio::io::AsyncReadExt;
    let f = fixture().await;
    let (s, stop, checkpoints, saved) = f.checkpointed("first").await;
    drop(s);
    stop.trigger();
    // The same archive, newest by name, but labelled as written by an earlier layout.
    let js = async_nats::jetstream::new(f.nats.client().await.unwrap());
    let bucket = js.get_object_store("bt-checkpoints").await.unwrap();
    let mut object = bucket.get(&saved.name).await.unwrap();
    let mut metadata = object.info().metadata.clone();
    assert_eq!(
        metadata.get("layout").map(String::as_str),
        Some(backtrack_store::timetravel::LAYOUT)
    );
    let mut bytes = Vec::new();
    object.read_to_end(&mut bytes).await.unwrap();
    metadata.insert("layout".into(), "2".into());
    let relabelled = format!("timetravel-{:020}", saved.position + 1000);
    bucket
        .put(
            async_nats::jetstream::object_store::ObjectMetadata {
                name: relabelled.clone(),
                metadata,
                ..Default::default()
            },
            &mut bytes.as_slice(),
        )
        .await
        .unwrap();
    assert_eq!(checkpoints.list().await.unwrap()[0].name, relabelled);

    let (rebuilt, _stop) = f.snapshotter_with("second", 10).await;
    assert_eq!(
        rebuilt.restored_from(),
        None,
        "a checkpoint of another layout must not be restored"
    );
    rebuilt.catch_up().await.unwrap();
    let (_, _, summary) = rebuilt.store().tenant_summary("t");
    assert_eq!(
        summary.digest(),
        f.directory.projection().tenant_digest("t").unwrap().0
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_manifest_of_an_earlier_release_verifies_with_the_expansion_its_digest_names() {
    use backtrack_domain::digest::{tenant_digest_with, Expansion};
    let f = fixture().await;
    let (s, _stop) = f.snapshotter("s").await;
    f.run(user(U1, "a@t.test", "Sales")).await;
    f.run(user(U2, "b@t.test", "Legal")).await;
    let current = s.create_backup(on_demand("now")).await.unwrap();
    assert!(
        current.digest.starts_with("lthash16-blake3:"),
        "{}",
        current.digest
    );
    // The state at the backup, replayed here and digested the way earlier releases did.
    let mut state = backtrack_domain::TenantState::default();
    s.log()
        .fold_range(1, current.sequence, "bt.ev.t.>", |e| {
            state.apply(&e.event, e.sequence);
        })
        .await
        .unwrap();
    let legacy = tenant_digest_with(&state, Expansion::Sha256Counter);
    assert!(legacy.starts_with("lthash16:"), "{legacy}");
    let publish = |digest: String| {
        let mut manifest = current.clone();
        manifest.id = uuid::Uuid::now_v7().to_string();
        manifest.digest = digest;
        async {
            s.catalog()
                .publish_manifest(manifest)
                .await
                .unwrap()
                .manifest
                .id
        }
    };

    let id = publish(legacy.clone()).await;
    let verified = s.verify("t", &id).await.unwrap();
    assert!(verified.ok, "{}", verified.message);
    assert!(
        verified.checks.iter().all(|c| c.digest == legacy),
        "{:?}",
        verified.checks
    );

    // An earlier-release digest that does not match still fails.
    let mut forged = legacy.clone();
    let last = if forged.ends_with('0') { "1" } else { "0" };
    forged.replace_range(forged.len() - 1.., last);
    let id = publish(forged).await;
    let failed = s.verify("t", &id).await.unwrap();
    assert!(!failed.ok);
    assert!(
        failed.message.contains("manifest's digest differs"),
        "{}",
        failed.message
    );

    // A digest of no known kind fails and says so.
    let id = publish("sha1:0123".into()).await;
    let unknown = s.verify("t", &id).await.unwrap();
    assert!(!unknown.ok);
    assert!(
        unknown.message.contains("of no kind"),
        "{}",
        unknown.message
    );
}
