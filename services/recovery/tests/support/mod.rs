//! The stack the recovery tests run against: the directory, the snapshotter, the differ
//! and the recovery service in one process, on a real nats-server and real RocksDB.
// Each test binary uses part of it.
#![allow(dead_code, unused_imports, clippy::unwrap_used)]

pub use std::time::Duration;

pub use backtrack_differ::{Differ, DifferError, ReportRequest, Scope};
pub use backtrack_directory::writer::{ImportItem, Origin};
pub use backtrack_directory::{Directory, DirectoryConfig};
pub use backtrack_domain::command::Command;
pub use backtrack_domain::{Link, ObjectKind};
pub use backtrack_platform::shutdown::{Shutdown, ShutdownTrigger};
pub use backtrack_proto::v1;
pub use backtrack_recovery::{Recovery, RecoveryConfig, RecoveryError, RecoveryRequest, Source};
pub use backtrack_snapshotter::backups::BackupRequest;
pub use backtrack_snapshotter::{Snapshotter, SnapshotterConfig};
pub use backtrack_test_support::{eventually, NatsServer};
pub use futures::StreamExt;
pub use serde_json::{json, Value};

pub const U1: &str = "00000000-0000-4000-8000-000000000001";
pub const U2: &str = "00000000-0000-4000-8000-000000000002";
pub const G1: &str = "00000000-0000-4000-8000-0000000000a1";
pub const P1: &str = "00000000-0000-4000-8000-0000000000c1";

pub fn origin() -> Origin {
    Origin {
        actor: "test".into(),
        source: "test".into(),
        correlation_id: None,
    }
}

pub fn attrs(v: Value) -> serde_json::Map<String, Value> {
    v.as_object().cloned().unwrap()
}

pub struct Stack {
    pub nats: NatsServer,
    _dir: tempfile::TempDir,
    _trigger: ShutdownTrigger,
    pub directory: Directory,
    pub snapshotter: Snapshotter,
    pub differ: Differ,
    pub recovery: Recovery,
}

pub async fn stack(batch_size: usize) -> Stack {
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
    let differ = Differ::start(snapshotter.clone(), nats.client().await.unwrap(), 1)
        .await
        .unwrap();
    let recovery = Recovery::start(
        directory.clone(),
        differ.clone(),
        nats.client().await.unwrap(),
        1,
        RecoveryConfig {
            batch_size,
            ..Default::default()
        },
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
        recovery,
    }
}

impl Stack {
    pub async fn run(&self, command: Command) {
        self.run_as("test", command).await;
    }

    /// Runs `command` as `actor`.
    pub async fn run_as(&self, actor: &str, command: Command) {
        let origin = Origin {
            actor: actor.into(),
            ..origin()
        };
        self.directory
            .execute("t", command, None, &origin)
            .await
            .unwrap();
    }

    pub async fn create(&self, kind: ObjectKind, id: &str, attributes: Value, links: Vec<Link>) {
        self.run(Command::Create {
            kind,
            id: id.into(),
            attributes: attrs(attributes),
            links,
        })
        .await;
    }

    pub async fn user(&self, id: &str, upn: &str, extra: Value) {
        let mut a = attrs(json!({"displayName": upn, "userPrincipalName": upn}));
        a.extend(attrs(extra));
        self.create(ObjectKind::User, id, Value::Object(a), vec![])
            .await;
    }

    pub async fn set(&self, id: &str, set: Value) {
        self.run(Command::Update {
            id: id.into(),
            set: attrs(set),
            unset: vec![],
        })
        .await;
    }

    pub async fn backup(&self) -> String {
        self.snapshotter
            .create_backup(BackupRequest {
                tenant: "t".into(),
                description: String::new(),
                trigger: v1::BackupTrigger::OnDemand,
                requested_by: "test".into(),
                scheduled_for_ms: None,
            })
            .await
            .unwrap()
            .id
    }

    pub fn request(&self, source: Source) -> RecoveryRequest {
        RecoveryRequest {
            tenant: "t".into(),
            source,
            kinds: vec![],
            ids: vec![],
            on_conflict: v1::OnConflict::Overwrite,
            ca_report_only: false,
            requested_by: "test".into(),
            changed_by: vec![],
        }
    }

    pub async fn finished(&self, job: &v1::RecoveryJob) -> v1::RecoveryJob {
        eventually("the job to finish", Duration::from_secs(60), || async {
            let j = self.recovery.job("t", &job.id).await.unwrap();
            backtrack_recovery::runner::is_finished(j.state).then_some(j)
        })
        .await
        .unwrap()
    }

    /// Recovers the whole tenant to `backup` and waits for the job to finish.
    pub async fn recover_whole_tenant_to(&self, backup: &str) -> v1::RecoveryJob {
        let request = self.request(Source::Point(from(backup)));
        self.finished(&self.recovery.start_job(request).await.unwrap())
            .await
    }

    pub async fn attribute(&self, id: &str, name: &str) -> Option<Value> {
        self.directory
            .projection()
            .object("t", id)
            .unwrap()
            .and_then(|o| o.attributes.get(name).cloned())
    }

    pub async fn report(&self, base: &str) -> v1::Report {
        self.report_over(base, Scope::default()).await
    }

    /// A finished report from `base` to now over `scope`.
    pub async fn report_over(&self, base: &str, scope: Scope) -> v1::Report {
        let report = self
            .differ
            .create_report(ReportRequest {
                tenant: "t".into(),
                base: from(base),
                target: None,
                scope,
                requested_by: "test".into(),
            })
            .await
            .unwrap();
        eventually("the report to finish", Duration::from_secs(20), || async {
            let r = self.differ.report("t", &report.id).await.unwrap();
            (r.state == v1::JobState::Successful as i32).then_some(r)
        })
        .await
        .unwrap()
    }
}

pub fn from(backup: &str) -> v1::Point {
    v1::Point {
        point: Some(v1::point::Point::BackupId(backup.to_string())),
    }
}
