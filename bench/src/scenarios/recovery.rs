//! Point-in-time recovery: a recovery job (`backtrack_recovery`) undoing an incident of a
//! given number of changes, against the reference system's published 4.6 changes/s.
//!
//! [`run`] opens the testbed's time-travel store (the one the snapshotter and differ
//! scenarios used, or an empty folder when only this scenario runs; the store keeps its
//! position, so nothing is rebuilt), starts a `Differ` and a `Recovery` on it, then for
//! every size `N` works on a fresh tenant (`bench-recovery-<N>`):
//!
//! 1. imports the users and groups of [`Incident::for_changes`] through
//!    `Directory::import` (each user a member of one group), and takes a backup;
//! 2. makes the incident through `Directory::execute_planned`, a thousand commands at a
//!    time: 40% of `N` attribute changes of users (`department`), 30% removals of users
//!    from their group, 20% soft-deleted users, and 5% users soft- then hard-deleted (each
//!    is two changes to undo: the user re-created, its membership re-linked);
//! 3. waits until the directory and the snapshotter have applied the log's tail, then
//!    starts a recovery job to the backup and polls it until it is finished.
//!
//! The time runs from `start_job` to the poll that sees the job finished, so it holds all a
//! job does: its pre-recovery backup, planning, every batch with its events and its audit
//! records acknowledged, and the closing residual diff. "Changes" are what the job record
//! counts: `objects_changed + links_changed`. The job's audit records are counted on their
//! subject afterwards.

use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use backtrack_differ::Differ;
use backtrack_directory::writer::{ImportItem, ImportOutcome, Origin};
use backtrack_directory::{Directory, PlannedOutcome};
use backtrack_domain::{Command, DirectoryView, Link, ObjectKind};
use backtrack_eventlog::audit::{audit_subject, AUDIT_STREAM};
use backtrack_platform::shutdown::Shutdown;
use backtrack_proto::v1;
use backtrack_recovery::remote::RemoteDirectory;
use backtrack_recovery::runner::is_finished;
use backtrack_recovery::{Recovery, RecoveryConfig, RecoveryRequest, Source};
use backtrack_snapshotter::backups::BackupRequest;
use backtrack_snapshotter::{Snapshotter, SnapshotterConfig};
use futures::TryStreamExt;
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use serde_json::{json, Map, Value};

use crate::testbed::Testbed;

/// The reference system's published recovery rate.
pub const REFERENCE_CHANGES_PER_SECOND: f64 = 4.6;
/// Members of each group (each user is in exactly one).
pub const MEMBERS_PER_GROUP: usize = 100;
/// Objects per `Directory::import` call.
const IMPORT_BATCH: usize = 2000;
/// Commands per `Directory::execute_planned` call while making the incident.
const COMMAND_BATCH: usize = 1000;
/// How often the job record is read while the job runs.
const POLL: Duration = Duration::from_millis(50);
/// How long a job may take before the run gives up on it.
const JOB_DEADLINE: Duration = Duration::from_secs(600);
/// How long the stopped snapshotter of the differ scenario may take to let go of its store.
const REOPEN_DEADLINE: Duration = Duration::from_secs(60);
pub const ACTOR: &str = "backtrack-bench";
const SEED: u64 = 17;
/// The department every changed user gets; no user has it before.
const INCIDENT_DEPARTMENT: &str = "Incident";
const DEPARTMENTS: &[&str] = &[
    "Sales",
    "Engineering",
    "Finance",
    "Legal",
    "Marketing",
    "Support",
    "Operations",
    "Research",
];

/// The tenant of one incident and what happens to it. Users are numbered: the first
/// `attribute_fixes` get a new department (and the first `membership_removals` of them
/// also leave their group), the next `soft_deletes` go to the recycle bin, the next
/// `hard_deletes` are purged, and the rest stay untouched.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Incident {
    pub users: usize,
    pub groups: usize,
    pub attribute_fixes: usize,
    pub membership_removals: usize,
    pub soft_deletes: usize,
    pub hard_deletes: usize,
}

impl Incident {
    /// An incident of about `changes` changes to undo: 40% attribute fixes, 30% membership
    /// re-links, 20% restores from the recycle bin, 10% re-creations (half of them the
    /// users, half their memberships); a tenth more users stay untouched.
    pub fn for_changes(changes: usize) -> Self {
        let attribute_fixes = changes * 4 / 10;
        let membership_removals = changes * 3 / 10;
        let soft_deletes = changes * 2 / 10;
        let hard_deletes =
            changes.saturating_sub(attribute_fixes + membership_removals + soft_deletes) / 2;
        let touched = attribute_fixes + soft_deletes + hard_deletes;
        let users = (touched + touched / 10).max(1);
        Self {
            users,
            groups: users.div_ceil(MEMBERS_PER_GROUP),
            attribute_fixes,
            membership_removals,
            soft_deletes,
            hard_deletes,
        }
    }

    /// Changes a recovery makes to undo the incident: one per attribute fix, removed
    /// membership and restore, two per purged user (the user, its membership).
    pub fn changes(&self) -> usize {
        self.attribute_fixes + self.membership_removals + self.soft_deletes + 2 * self.hard_deletes
    }

    fn group_of(&self, user: usize) -> usize {
        user % self.groups
    }

    fn soft_deleted(&self) -> std::ops::Range<usize> {
        self.attribute_fixes..self.attribute_fixes + self.soft_deletes
    }

    fn hard_deleted(&self) -> std::ops::Range<usize> {
        let start = self.soft_deleted().end;
        start..start + self.hard_deletes
    }
}

/// One recovery, timed.
#[derive(Debug, Clone)]
pub struct RecoveryRun {
    /// The size asked for (`--recovery-changes`).
    pub size: usize,
    /// The batches went to the directory over gRPC (`ApplyRecoveryBatch`), as from a
    /// recovery service in its own process, instead of in process.
    pub over_grpc: bool,
    pub tenant: String,
    pub incident: Incident,
    /// Importing the tenant, the backup and making the incident (not part of the figure).
    pub setup: Duration,
    /// `start_job` → the poll that saw the job finished.
    pub total: Duration,
    /// `start_job` → the first poll that saw the job running (pre-recovery backup and
    /// planning); `None` if no poll caught it running.
    pub until_running: Option<Duration>,
    /// The job record last read; unfinished if the deadline passed.
    pub job: v1::RecoveryJob,
    /// Records on `bt.audit.<tenant>.recovery` after the job.
    pub audit_records: u64,
    /// In process only: the dry runs before the job, of the whole incident and of what
    /// its actor changed (`changed_by`; the same changes, planned from each object's
    /// history).
    pub plans: Option<PlanTimes>,
    /// In process only: the tenant's history after the job, judged as `overview` does.
    pub judged: Option<super::judge::Judged>,
}

/// Two dry runs of one incident, timed, with their operation counts.
#[derive(Debug, Clone, Copy)]
pub struct PlanTimes {
    pub whole: Duration,
    pub whole_operations: usize,
    pub changed_by: Duration,
    pub changed_by_operations: usize,
}

impl RecoveryRun {
    /// Changes the job made.
    pub fn changes(&self) -> u64 {
        self.job.objects_changed + self.job.links_changed
    }

    pub fn changes_per_second(&self) -> f64 {
        self.changes() as f64 / self.total.as_secs_f64().max(1e-9)
    }

    /// Changes per second from the first poll that saw the job running to the end:
    /// applying, audit and the residual diff, without the backup and the planning.
    pub fn apply_changes_per_second(&self) -> Option<f64> {
        let running = self.until_running?;
        let apply = self.total.saturating_sub(running).as_secs_f64();
        Some(self.changes() as f64 / apply.max(1e-9))
    }

    /// Audit records the job must have published: its start, its end, and one per
    /// operation that changed something.
    pub fn expected_audit_records(&self) -> u64 {
        let job = &self.job;
        (job.operations_total + 2).saturating_sub(job.already_satisfied + job.failed + job.skipped)
    }

    pub fn finished(&self) -> bool {
        is_finished(self.job.state)
    }

    pub fn successful(&self) -> bool {
        [
            v1::RecoveryState::RecoverySuccessful as i32,
            v1::RecoveryState::RecoverySuccessfulWithWarnings as i32,
        ]
        .contains(&self.job.state)
    }
}

/// Runs one recovery per entry of `sizes` (see the module docs) on the store in the
/// testbed's `timetravel` folder; tells `progress` what it is doing.
pub async fn run(
    bed: &Testbed,
    nats: async_nats::Client,
    sizes: &[usize],
    progress: fn(&str),
) -> anyhow::Result<Vec<RecoveryRun>> {
    let (trigger, shutdown) = Shutdown::new();
    let outcome = async {
        let snapshotter = reopen(bed, nats.clone(), shutdown).await?;
        let differ = Differ::start(snapshotter.clone(), nats.clone(), 1).await?;
        let recovery = Recovery::start(
            bed.directory.clone(),
            differ.clone(),
            nats.clone(),
            1,
            RecoveryConfig::default(),
        )
        .await?;
        // The same jobs with every batch sent to the testbed's directory API, as a
        // recovery service in its own process sends them.
        let over_grpc = Recovery::start(
            bed.directory.clone(),
            differ,
            nats.clone(),
            1,
            RecoveryConfig {
                directory: Some(RemoteDirectory::new(
                    &format!("http://{}", bed.grpc_addr),
                    bed.key.clone(),
                )?),
                ..RecoveryConfig::default()
            },
        )
        .await?;
        let jetstream = async_nats::jetstream::new(nats);
        let mut runs = Vec::with_capacity(sizes.len() * 2);
        for &size in sizes {
            runs.push(recover(&recovery, &jetstream, size, false, progress).await?);
            runs.push(recover(&over_grpc, &jetstream, size, true, progress).await?);
        }
        Ok(runs)
    }
    .await;
    trigger.trigger();
    outcome
}

/// A snapshotter on the store in the testbed's `timetravel` folder (checkpoints off), once
/// an earlier, stopped one has let go of it.
async fn reopen(
    bed: &Testbed,
    nats: async_nats::Client,
    shutdown: Shutdown,
) -> anyhow::Result<Snapshotter> {
    let mut config = SnapshotterConfig::new(bed.scratch_dir("timetravel")?);
    config.checkpoint_every = 0;
    let deadline = Instant::now() + REOPEN_DEADLINE;
    loop {
        match backtrack_snapshotter::start(config.clone(), nats.clone(), shutdown.clone()).await {
            Ok(snapshotter) => return Ok(snapshotter),
            // RocksDB's lock is held until the last handle of the stopped one is dropped.
            Err(_) if Instant::now() < deadline => {
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
            Err(e) => return Err(e).context("reopen the time-travel store"),
        }
    }
}

/// Sets up the incident of `size` changes on a fresh tenant and times its recovery.
async fn recover(
    recovery: &Recovery,
    jetstream: &async_nats::jetstream::Context,
    size: usize,
    over_grpc: bool,
    progress: fn(&str),
) -> anyhow::Result<RecoveryRun> {
    let incident = Incident::for_changes(size);
    let tenant = if over_grpc {
        format!("bench-recovery-grpc-{size}")
    } else {
        format!("bench-recovery-{size}")
    };
    let directory = recovery.directory();
    let snapshotter = recovery.snapshotter();
    progress(&format!(
        "recovery of {size} changes: importing {} users and {} groups into {tenant}",
        incident.users, incident.groups
    ));
    let started = Instant::now();
    let ids = guids(incident.users, SEED ^ size as u64);
    let group_ids = guids(incident.groups, !(SEED ^ size as u64));
    directory
        .create_tenant(
            &tenant,
            &format!("Benchmark (recovery of {size} changes)"),
            &origin(),
        )
        .await?;
    import_all(directory, &tenant, users(&tenant, &ids)).await?;
    import_all(directory, &tenant, groups(&incident, &ids, &group_ids)).await?;
    let backup = snapshotter
        .create_backup(BackupRequest {
            tenant: tenant.clone(),
            description: "before the benchmark's incident".into(),
            trigger: v1::BackupTrigger::OnDemand,
            requested_by: ACTOR.into(),
            scheduled_for_ms: None,
        })
        .await?;
    progress(&format!(
        "backup {} at sequence {}; making the incident: {} attribute changes, {} removed memberships, {} soft-deleted and {} purged users",
        backup.id,
        backup.sequence,
        incident.attribute_fixes,
        incident.membership_removals,
        incident.soft_deletes,
        incident.hard_deletes
    ));
    let changing = Instant::now();
    let commands = incident_commands(&incident, &ids, &group_ids);
    execute_all(directory, &tenant, commands).await?;
    let purging = Instant::now();
    let hard = &ids[incident.hard_deleted()];
    let purges = hard.iter().map(|id| Command::HardDelete { id: id.clone() });
    execute_all(directory, &tenant, purges.collect()).await?;
    let tail = snapshotter.catch_up().await?;
    directory.wait_for(tail).await?;
    let setup = started.elapsed();
    progress(&format!(
        "incident made: changes, removals and soft deletes in {:.1}s, purges in {:.1}s",
        (purging - changing).as_secs_f64(),
        purging.elapsed().as_secs_f64()
    ));
    let audit_before = audit_count(jetstream, &tenant).await?;

    progress(&format!(
        "set up in {:.1}s; recovering {tenant} to backup {} ({} changes expected)",
        setup.as_secs_f64(),
        backup.id,
        incident.changes()
    ));
    let request = RecoveryRequest {
        tenant: tenant.clone(),
        source: Source::Point(v1::Point {
            point: Some(v1::point::Point::BackupId(backup.id.clone())),
        }),
        kinds: Vec::new(),
        ids: Vec::new(),
        on_conflict: v1::OnConflict::Overwrite,
        ca_report_only: false,
        requested_by: ACTOR.into(),
        changed_by: vec![],
    };
    let plans = if over_grpc {
        None
    } else {
        Some(plan_times(recovery, &request).await?)
    };
    let started = Instant::now();
    let mut job = recovery.start_job(request).await?;
    let mut until_running = None;
    while !is_finished(job.state) && started.elapsed() < JOB_DEADLINE {
        tokio::time::sleep(POLL).await;
        job = recovery.job(&tenant, &job.id).await?;
        if until_running.is_none() && job.state == v1::RecoveryState::RecoveryRunning as i32 {
            until_running = Some(started.elapsed());
        }
    }
    let total = started.elapsed();
    let audit_records = audit_count(jetstream, &tenant)
        .await?
        .saturating_sub(audit_before);
    let judged = match over_grpc {
        true => None,
        false => Some(super::judge::judge(directory.log(), &tenant).await?),
    };
    if let Some(j) = &judged {
        progress(&format!(
            "judged as overview does: {} events at {:.0}/s; alerts (rule by actor, set back): {:?}",
            j.events,
            j.events_per_second(),
            j.alerts
        ));
    }
    let run = RecoveryRun {
        size,
        over_grpc,
        tenant,
        incident,
        setup,
        total,
        until_running,
        job,
        audit_records,
        plans,
        judged,
    };
    progress(&format!(
        "recovery {}: {} in {:.2}s: {} objects and {} links changed ({:.0} changes/s), {} already satisfied, {} failed, {} skipped, residual {}, {} audit records",
        run.job.id,
        backtrack_recovery::state_name(run.job.state),
        run.total.as_secs_f64(),
        run.job.objects_changed,
        run.job.links_changed,
        run.changes_per_second(),
        run.job.already_satisfied,
        run.job.failed,
        run.job.skipped,
        run.job.residual,
        run.audit_records
    ));
    Ok(run)
}

/// Dry runs of `request`, whole and narrowed to the incident's actor.
async fn plan_times(recovery: &Recovery, request: &RecoveryRequest) -> anyhow::Result<PlanTimes> {
    let started = Instant::now();
    let whole = recovery.plan(request).await?;
    let whole_time = started.elapsed();
    let mut by_actor = request.clone();
    by_actor.changed_by = vec![ACTOR.into()];
    let started = Instant::now();
    let changed_by = recovery.plan(&by_actor).await?;
    Ok(PlanTimes {
        whole: whole_time,
        whole_operations: whole.plan.operations.len(),
        changed_by: started.elapsed(),
        changed_by_operations: changed_by.plan.operations.len(),
    })
}

fn origin() -> Origin {
    Origin {
        actor: ACTOR.into(),
        source: ACTOR.into(),
        correlation_id: None,
    }
}

/// `count` random (version 4) lower-case GUIDs.
fn guids(count: usize, seed: u64) -> Vec<String> {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    (0..count)
        .map(|_| {
            uuid::Builder::from_random_bytes(rand::Rng::random(&mut rng))
                .into_uuid()
                .to_string()
        })
        .collect()
}

fn users(tenant: &str, ids: &[String]) -> Vec<ImportItem> {
    ids.iter()
        .enumerate()
        .map(|(n, id)| {
            let upn = format!("user{n}@{tenant}.bench.example");
            ImportItem {
                kind: ObjectKind::User,
                id: Some(id.clone()),
                attributes: object(json!({
                    "displayName": format!("Recovery User {n}"),
                    "userPrincipalName": upn,
                    "mail": upn,
                    "mailNickname": format!("user{n}"),
                    "accountEnabled": true,
                    "department": DEPARTMENTS[n % DEPARTMENTS.len()],
                    "jobTitle": "Analyst",
                })),
                links: Vec::new(),
                mutation_id: None,
            }
        })
        .collect()
}

/// One group per [`MEMBERS_PER_GROUP`] users; user `n` is a member of group
/// `n % groups`.
fn groups(incident: &Incident, users: &[String], ids: &[String]) -> Vec<ImportItem> {
    let mut members: Vec<Vec<Link>> = vec![Vec::new(); incident.groups];
    for (n, user) in users.iter().enumerate() {
        members[incident.group_of(n)].push(Link::new("members", user.clone()));
    }
    ids.iter()
        .cloned()
        .zip(members)
        .enumerate()
        .map(|(g, (id, links))| ImportItem {
            kind: ObjectKind::Group,
            id: Some(id),
            attributes: object(json!({
                "displayName": format!("Recovery Group {g}"),
                "mailNickname": format!("group{g}"),
                "securityEnabled": true,
                "mailEnabled": false,
            })),
            links,
            mutation_id: None,
        })
        .collect()
}

fn object(value: Value) -> Map<String, Value> {
    value.as_object().cloned().unwrap_or_default()
}

/// The incident but the purges: attribute changes, membership removals (one command per
/// group) and soft deletes (of the users to purge too: only a deleted object is purged).
fn incident_commands(incident: &Incident, users: &[String], groups: &[String]) -> Vec<Command> {
    let mut commands: Vec<Command> = users[..incident.attribute_fixes]
        .iter()
        .map(|id| Command::Update {
            id: id.clone(),
            set: object(json!({ "department": INCIDENT_DEPARTMENT })),
            unset: Vec::new(),
        })
        .collect();
    let mut removed: Vec<Vec<String>> = vec![Vec::new(); incident.groups];
    for (n, user) in users[..incident.membership_removals].iter().enumerate() {
        removed[incident.group_of(n)].push(user.clone());
    }
    commands.extend(
        groups
            .iter()
            .cloned()
            .zip(removed)
            .filter(|(_, targets)| !targets.is_empty())
            .map(|(id, targets)| Command::RemoveLinks {
                id,
                relation: "members".into(),
                targets,
            }),
    );
    let deleted = incident.soft_deleted().start..incident.hard_deleted().end;
    commands.extend(
        users[deleted]
            .iter()
            .map(|id| Command::SoftDelete { id: id.clone() }),
    );
    commands
}

/// Imports `items` in batches of [`IMPORT_BATCH`]; fails unless every one is created.
async fn import_all(
    directory: &Directory,
    tenant: &str,
    items: Vec<ImportItem>,
) -> anyhow::Result<()> {
    let origin = origin();
    let mut items = items.into_iter().peekable();
    while items.peek().is_some() {
        let batch: Vec<ImportItem> = items.by_ref().take(IMPORT_BATCH).collect();
        let (outcomes, _) = directory.import(tenant, batch, &origin).await?;
        if let Some(problem) = outcomes
            .iter()
            .find(|o| !matches!(o, ImportOutcome::Created(_)))
        {
            bail!("importing into {tenant}: {problem:?}");
        }
    }
    Ok(())
}

/// Runs `commands` in batches of [`COMMAND_BATCH`] (appends pipelined); fails unless every
/// one is stored with at least one event.
async fn execute_all(
    directory: &Directory,
    tenant: &str,
    commands: Vec<Command>,
) -> anyhow::Result<()> {
    let origin = origin();
    let mut commands = commands.into_iter().peekable();
    while commands.peek().is_some() {
        let batch: Vec<_> = commands
            .by_ref()
            .take(COMMAND_BATCH)
            .map(|command| {
                let decide = move |_: &dyn DirectoryView| Some(command);
                (uuid::Uuid::now_v7().to_string(), decide)
            })
            .collect();
        let outcomes = directory.execute_planned(tenant, batch, &origin).await?;
        if let Some(problem) = outcomes
            .iter()
            .find(|o| !matches!(o, PlannedOutcome::Applied { events } if *events > 0))
        {
            bail!("making the incident in {tenant}: {problem:?}");
        }
    }
    Ok(())
}

/// Messages on the tenant's recovery audit subject.
async fn audit_count(
    jetstream: &async_nats::jetstream::Context,
    tenant: &str,
) -> anyhow::Result<u64> {
    let subject = audit_subject(tenant, "recovery");
    let stream = jetstream
        .get_stream(AUDIT_STREAM)
        .await
        .with_context(|| format!("open stream {AUDIT_STREAM}"))?;
    let mut subjects = stream
        .info_with_subjects(&subject)
        .await
        .with_context(|| format!("count the messages on {subject}"))?;
    let mut count = 0;
    while let Some((_, n)) = subjects
        .try_next()
        .await
        .with_context(|| format!("count the messages on {subject}"))?
    {
        count += n as u64;
    }
    Ok(count)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn incidents_add_up_to_the_changes_asked_for() {
        for changes in [20, 2000, 10_000, 100_000] {
            let incident = Incident::for_changes(changes);
            assert_eq!(incident.changes(), changes, "{incident:?}");
            assert!(incident.membership_removals <= incident.attribute_fixes);
            assert!(incident.hard_deleted().end <= incident.users);
            assert!(incident.groups * MEMBERS_PER_GROUP >= incident.users);
        }
        // An odd remainder cannot be split into purged users and their memberships.
        assert_eq!(Incident::for_changes(13).changes(), 12);
    }

    #[test]
    fn one_command_per_change_but_memberships_grouped() {
        let incident = Incident::for_changes(2000);
        let commands = incident_commands(
            &incident,
            &guids(incident.users, 1),
            &guids(incident.groups, 2),
        );
        let removed: usize = commands
            .iter()
            .map(|c| match c {
                Command::RemoveLinks { targets, .. } => targets.len(),
                _ => 0,
            })
            .sum();
        assert_eq!(removed, incident.membership_removals);
        let deletes = commands
            .iter()
            .filter(|c| matches!(c, Command::SoftDelete { .. }))
            .count();
        assert_eq!(deletes, incident.soft_deletes + incident.hard_deletes);
    }
}
