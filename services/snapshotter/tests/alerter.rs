//! The alerter against a real nats-server, the directory and the time-travel store: alerts
//! become `alert.raised` records on the audit stream, named as the object was before the
//! change, an alert whose change is set back later an `alert.undone` record, and neither
//! a stop nor changes made while it was down lose or double one.
#![allow(clippy::unwrap_used)]

use std::collections::BTreeMap;
use std::time::Duration;

use backtrack_directory::writer::Origin;
use backtrack_directory::{Directory, DirectoryConfig};
use backtrack_domain::alerts::{BurstLimits, Thresholds};
use backtrack_domain::command::Command;
use backtrack_domain::ObjectKind;
use backtrack_eventlog::AuditLog;
use backtrack_platform::shutdown::{Shutdown, ShutdownTrigger};
use backtrack_proto::v1::AuditRecord;
use backtrack_snapshotter::alert_policy::AlertPolicy;
use backtrack_snapshotter::alerter::AlertSettings;
use backtrack_snapshotter::{Snapshotter, SnapshotterConfig};
use backtrack_test_support::{eventually, NatsServer};
use futures::StreamExt;
use prost::Message;
use serde_json::{json, Value};

const POLICY: &str = "00000000-0000-4000-8000-0000000000c1";
const SECOND_POLICY: &str = "00000000-0000-4000-8000-0000000000c2";
const LOCATION: &str = "00000000-0000-4000-8000-0000000000b1";
const ASSIGNMENT: &str = "00000000-0000-4000-8000-0000000000d1";
const ROLE: &str = "00000000-0000-4000-8000-0000000000e1";

fn user_id(i: usize) -> String {
    format!("00000000-0000-4000-8000-0000000001{i:02}")
}

fn origin(actor: &str) -> Origin {
    Origin {
        actor: actor.into(),
        source: "test".into(),
        correlation_id: None,
    }
}

fn update(id: &str, set: Value) -> Command {
    Command::Update {
        id: id.into(),
        set: set.as_object().unwrap().clone(),
        unset: Vec::new(),
    }
}

fn create(kind: ObjectKind, id: &str, attributes: Value) -> Command {
    Command::Create {
        kind,
        id: id.into(),
        attributes: attributes.as_object().unwrap().clone(),
        links: Vec::new(),
    }
}

struct Fixture {
    nats: NatsServer,
    dir: tempfile::TempDir,
    _trigger: ShutdownTrigger,
    directory: Directory,
}

impl Fixture {
    async fn start() -> Self {
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
        directory
            .create_tenant("t", "T", &origin("admin"))
            .await
            .unwrap();
        Self {
            nats,
            dir,
            _trigger: trigger,
            directory,
        }
    }

    /// A snapshotter whose alerter counts six deletions in an hour as a mass deletion.
    async fn snapshotter(&self, folder: &str) -> (Snapshotter, ShutdownTrigger) {
        let mut config = SnapshotterConfig::new(self.dir.path().join(folder));
        config.checkpoint_every = 0;
        config.alerts = Some(AlertSettings {
            limits: BurstLimits {
                thresholds: Thresholds {
                    deletions: 6,
                    link_removals: 100,
                },
                window_ms: 3_600_000,
            },
        });
        let (trigger, shutdown) = Shutdown::new();
        let s = backtrack_snapshotter::start(config, self.nats.client().await.unwrap(), shutdown)
            .await
            .unwrap();
        (s, trigger)
    }

    async fn by(&self, actor: &str, command: Command) {
        self.directory
            .execute("t", command, None, &origin(actor))
            .await
            .unwrap();
    }

    /// Users 0..n, by the admin.
    async fn users(&self, n: usize) {
        for i in 0..n {
            let name = json!({"displayName": format!("User {i}"), "userPrincipalName": format!("u{i}@t.test")});
            self.by("admin", create(ObjectKind::User, &user_id(i), name))
                .await;
        }
    }

    /// The enabled policy [`POLICY`], "Require MFA", by the admin.
    async fn policy(&self) {
        let policy = json!({"displayName": "Require MFA", "state": "enabled"});
        self.by(
            "admin",
            create(ObjectKind::ConditionalAccessPolicy, POLICY, policy),
        )
        .await;
    }

    /// [`ASSIGNMENT`]: [`ROLE`] to user 1, by `actor`.
    async fn assign_role_to_user_1(&self, actor: &str) {
        let assignment =
            json!({"roleDefinitionId": ROLE, "principalId": user_id(1), "directoryScopeId": "/"});
        self.by(
            actor,
            create(ObjectKind::RoleAssignment, ASSIGNMENT, assignment),
        )
        .await;
    }

    /// The role definition [`ROLE`], by the admin.
    async fn role_definition(&self) {
        let role = json!({"displayName": "Global Administrator"});
        self.by("admin", create(ObjectKind::RoleDefinition, ROLE, role))
            .await;
    }

    /// Every alert record of tenant `t` on the audit stream, in stream order.
    async fn alerts(&self) -> Vec<AuditRecord> {
        let log = AuditLog::open(self.nats.client().await.unwrap(), 1)
            .await
            .unwrap();
        let last = log.last_sequence().await.unwrap();
        if last == 0 {
            return Vec::new();
        }
        let mut stream = log.read(1, "bt.audit.>").await.unwrap();
        let mut out = Vec::new();
        while let Some(stored) = stream.next().await {
            let stored = stored.unwrap();
            if stored.subject == "bt.audit.t.alert" {
                out.push(AuditRecord::decode(stored.payload).unwrap());
            }
            if stored.sequence >= last {
                break;
            }
        }
        out
    }

    /// Waits until the alert records hold each of `rules` (and returns them all).
    async fn alerts_with(&self, rules: &[&str]) -> Vec<AuditRecord> {
        eventually("the alerts", Duration::from_secs(20), || async {
            let all = self.alerts().await;
            let seen: Vec<String> = all.iter().map(rule).collect();
            rules
                .iter()
                .all(|r| seen.iter().any(|s| s == r))
                .then_some(all)
        })
        .await
        .unwrap()
    }
}

fn details(r: &AuditRecord) -> Value {
    serde_json::from_str(&r.details_json).unwrap()
}

fn rule(r: &AuditRecord) -> String {
    details(r)["rule"].as_str().unwrap_or_default().to_string()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn alerts_reach_the_audit_stream_named_as_before_and_survive_a_stop() {
    let f = Fixture::start().await;
    f.role_definition().await;
    f.users(4).await;
    // History before the alerter first runs is not alerted on.
    f.by(
        "admin",
        create(
            ObjectKind::RoleAssignment,
            "00000000-0000-4000-8000-0000000000d0",
            json!({"roleDefinitionId": ROLE, "principalId": user_id(0), "directoryScopeId": "/"}),
        ),
    )
    .await;
    let (first_run, stop) = f.snapshotter("first").await;
    f.by(
        "admin",
        create(
            ObjectKind::NamedLocation,
            LOCATION,
            json!({"displayName": "HQ", "@odata.type": "#microsoft.graph.ipNamedLocation"}),
        ),
    )
    .await;
    for (id, name) in [
        (POLICY, "Require MFA"),
        (SECOND_POLICY, "Block legacy auth"),
    ] {
        f.by(
            "admin",
            create(
                ObjectKind::ConditionalAccessPolicy,
                id,
                json!({"displayName": name, "state": "enabled"}),
            ),
        )
        .await;
    }
    // mallory: renames the location, deletes and purges it (gone at its own event);
    // deletes a policy; assigns a role.
    let rename = update(LOCATION, json!({"displayName": "HQ (old)"}));
    f.by("mallory", rename).await;
    f.by(
        "mallory",
        Command::SoftDelete {
            id: LOCATION.into(),
        },
    )
    .await;
    f.by(
        "mallory",
        Command::HardDelete {
            id: LOCATION.into(),
        },
    )
    .await;
    f.by("mallory", Command::SoftDelete { id: POLICY.into() })
        .await;
    f.assign_role_to_user_1("mallory").await;
    // A built-in role is no object of the tenant: named by its template id.
    f.by(
        "mallory",
        create(
            ObjectKind::RoleAssignment,
            "00000000-0000-4000-8000-0000000000d2",
            json!({"roleDefinitionId": "e8611ab8-c189-46e8-94e1-60213ab1f814", "principalId": user_id(2), "directoryScopeId": "/"}),
        ),
    )
    .await;
    f.by("mallory", Command::SoftDelete { id: user_id(0) })
        .await;
    let first = f
        .alerts_with(&[
            "namedLocationDeleted",
            "caPolicyDeleted",
            "roleAssigned",
            "privilegedRoleAssigned",
        ])
        .await;
    assert_eq!(first.len(), 5, "{first:#?}");
    let by_rule: BTreeMap<String, &AuditRecord> = first.iter().map(|r| (rule(r), r)).collect();
    let location = first
        .iter()
        .find(|r| rule(r) == "namedLocationDeleted")
        .unwrap();
    let purged = first
        .iter()
        .find(|r| details(r)["what"] == "named location purged")
        .unwrap();
    let target = purged.target.as_ref().unwrap();
    assert_eq!(
        (
            target.kind.as_str(),
            target.id.as_str(),
            target.display_name.as_str()
        ),
        ("namedLocation", LOCATION, "HQ (old)"),
        "named as it was just before it was purged"
    );
    assert_eq!(purged.actor.as_ref().unwrap().subject, "mallory");
    assert_eq!(purged.action, "alert.raised");
    assert!(purged.result.is_none());
    assert_ne!(purged.id, location.id);
    let policy = by_rule["caPolicyDeleted"];
    assert_eq!(policy.target.as_ref().unwrap().display_name, "Require MFA");
    assert_eq!(details(policy)["severity"], "critical");
    let undo = details(policy)["undo"].as_str().unwrap().to_string();
    let sequence = details(policy)["sequence"].as_u64().unwrap();
    assert_eq!(
        undo,
        format!(
            "backtrack recover --tenant t --from seq:{} --changed-by mallory --id {POLICY} --dry-run",
            sequence - 1
        )
    );
    assert_eq!(
        by_rule["roleAssigned"]
            .target
            .as_ref()
            .unwrap()
            .display_name,
        "Global Administrator → User 1"
    );
    let privileged = by_rule["privilegedRoleAssigned"];
    assert_eq!(
        privileged.target.as_ref().unwrap().display_name,
        "Privileged Role Administrator → User 2"
    );
    assert_eq!(details(privileged)["severity"], "high");
    // The rules see ids; the record says it with the names.
    assert_eq!(
        details(privileged)["what"],
        "privileged role Privileged Role Administrator assigned to User 2"
    );
    assert_eq!(
        details(by_rule["roleAssigned"])["what"],
        "role Global Administrator assigned to User 1"
    );

    // Stopped: mallory goes on. Nothing is lost, and the deletions before the stop still
    // count towards the run (the windows are kept in NATS, not in the store's folder).
    drop(first_run);
    stop.trigger();
    let disable = update(SECOND_POLICY, json!({"state": "disabled"}));
    f.by("mallory", disable).await;
    f.by("mallory", Command::SoftDelete { id: user_id(1) })
        .await;
    let (_second_run, _stop) = f.snapshotter("second").await;
    f.by("mallory", Command::SoftDelete { id: user_id(2) })
        .await;
    let all = f.alerts_with(&["caPolicyDisabled", "massDeletion"]).await;
    assert_eq!(all.len(), 7, "{all:#?}");
    let mut ids: Vec<&str> = all.iter().map(|r| r.id.as_str()).collect();
    ids.sort_unstable();
    ids.dedup();
    assert_eq!(ids.len(), 7, "each alert once");
    let mass = all.iter().find(|r| rule(r) == "massDeletion").unwrap();
    assert_eq!(
        details(mass)["what"],
        "6 objects deleted by one actor within 60 min"
    );
    // The run starts at mallory's first deletion, before the stop.
    assert_eq!(
        details(mass)["sequence"],
        details(location)["sequence"],
        "{mass:#?}"
    );
    assert!(mass.target.is_none());
    assert!(all
        .iter()
        .all(|r| r.actor.as_ref().unwrap().subject == "mallory"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_tenants_policy_quiets_bulk_work_turns_a_rule_off_and_sets_its_threshold() {
    let f = Fixture::start().await;
    f.policy().await;
    f.users(5).await;
    f.role_definition().await;
    let (s, _stop) = f.snapshotter("policy").await;
    let policy = s
        .policies()
        .set_alerts(
            "t",
            AlertPolicy {
                mass_deletions: 2,
                disabled_rules: vec!["roleAssigned".into()],
                quiet_actors: vec!["svc-sync".into()],
                ..AlertPolicy::default()
            },
        )
        .await
        .unwrap();
    assert_eq!(policy.quiet_actors, ["svc-sync"]);
    // The sync account deletes in bulk and assigns a role: neither is an alert here; its
    // deletion of a policy still is.
    for i in 0..3 {
        f.by("svc-sync", Command::SoftDelete { id: user_id(i) })
            .await;
    }
    f.by(
        "svc-sync",
        create(
            ObjectKind::RoleAssignment,
            ASSIGNMENT,
            json!({"roleDefinitionId": ROLE, "principalId": user_id(4), "directoryScopeId": "/"}),
        ),
    )
    .await;
    f.by("svc-sync", Command::SoftDelete { id: POLICY.into() })
        .await;
    // mallory's two deletions reach the tenant's own threshold (the deployment's is six).
    for i in 3..5 {
        f.by("mallory", Command::SoftDelete { id: user_id(i) })
            .await;
    }
    let all = f.alerts_with(&["caPolicyDeleted", "massDeletion"]).await;
    assert_eq!(all.len(), 2, "{all:#?}");
    let mass = all.iter().find(|r| rule(r) == "massDeletion").unwrap();
    assert_eq!(mass.actor.as_ref().unwrap().subject, "mallory");
    assert_eq!(
        details(mass)["what"],
        "2 objects deleted by one actor within 60 min"
    );
    let deleted = all.iter().find(|r| rule(r) == "caPolicyDeleted").unwrap();
    assert_eq!(deleted.actor.as_ref().unwrap().subject, "svc-sync");
}

/// The `alert.undone` records of tenant `t` among `all`.
fn set_back(all: &[AuditRecord]) -> Vec<&AuditRecord> {
    all.iter().filter(|r| r.action == "alert.undone").collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_alert_set_back_is_closed_once_by_whoever_did_it_across_a_stop() {
    let f = Fixture::start().await;
    f.users(2).await;
    f.role_definition().await;
    f.policy().await;
    let state = |state: &str| update(POLICY, json!({ "state": state }));
    let (first_run, stop) = f.snapshotter("first").await;
    f.by("mallory", state("disabled")).await;
    f.assign_role_to_user_1("mallory").await;
    let raised = f.alerts_with(&["caPolicyDisabled", "roleAssigned"]).await;
    let raised_id = |rule_name: &str| {
        let r = raised.iter().find(|r| rule(r) == rule_name).unwrap();
        r.id.clone()
    };
    let (disabled_id, assigned_id) = (raised_id("caPolicyDisabled"), raised_id("roleAssigned"));

    // A recovery enables the policy again: the alert is closed, naming the job.
    let recovery = Origin {
        correlation_id: Some("rec-1".into()),
        ..origin("admin")
    };
    f.directory
        .execute("t", state("enabled"), None, &recovery)
        .await
        .unwrap();
    let closed = eventually(
        "the policy's alert closed",
        Duration::from_secs(20),
        || async {
            let all = f.alerts().await;
            (set_back(&all).len() == 1).then_some(all)
        },
    )
    .await
    .unwrap();
    let policy = set_back(&closed)[0];
    assert_eq!(policy.id, format!("{disabled_id}:undone"));
    assert_eq!(details(policy)["alertId"], disabled_id.as_str());
    assert_eq!(details(policy)["rule"], "caPolicyDisabled");
    assert_eq!(details(policy)["what"], "state enabled → disabled");
    assert_eq!(policy.actor.as_ref().unwrap().subject, "admin");
    assert_eq!(policy.correlation.as_ref().unwrap().job_id, "rec-1");
    assert_eq!(policy.target.as_ref().unwrap().display_name, "Require MFA");

    // Stopped: the assignment is deleted meanwhile, and the policy renamed (no alert).
    drop(first_run);
    stop.trigger();
    f.by(
        "admin",
        Command::SoftDelete {
            id: ASSIGNMENT.into(),
        },
    )
    .await;
    let rename = update(POLICY, json!({"displayName": "Require MFA (all)"}));
    f.by("admin", rename).await;
    let (_second_run, _stop) = f.snapshotter("second").await;
    // Done again after it was set back: a new alert, which stands.
    f.by("mallory", state("disabled")).await;
    let all = eventually(
        "the second alert and closing",
        Duration::from_secs(20),
        || async {
            let all = f.alerts().await;
            let disabled = all.iter().filter(|r| rule(r) == "caPolicyDisabled").count();
            (disabled >= 3 && set_back(&all).len() >= 2).then_some(all)
        },
    )
    .await
    .unwrap();
    let closed = set_back(&all);
    assert_eq!(closed.len(), 2, "{all:#?}");
    let assignment = closed[1];
    assert_eq!(assignment.id, format!("{assigned_id}:undone"));
    // Named as the alert named it: by role and principal, not by ids.
    assert_eq!(
        details(assignment)["what"],
        "role Global Administrator assigned to User 1"
    );
    assert_eq!(
        assignment.target.as_ref().unwrap().display_name,
        "Global Administrator → User 1"
    );
    assert!(assignment.correlation.as_ref().unwrap().job_id.is_empty());
    // Two raised and both closed, one raised again: five records, none twice.
    let mut ids: Vec<&str> = all.iter().map(|r| r.id.as_str()).collect();
    ids.sort_unstable();
    ids.dedup();
    assert_eq!(ids.len(), all.len(), "{all:#?}");
    assert_eq!(all.len(), 5, "{all:#?}");
}
