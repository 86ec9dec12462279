//! Difference reports: the differ over the time-travel store the snapshotter scenario built,
//! against the peer a team would use today (two exported folders and `git diff`).
//!
//! [`run`] opens that store again with a fresh snapshotter (the snapshotter scenario stops
//! its own; the store keeps its position, so nothing is rebuilt) and a [`Differ`] on it.
//! It then appends straight to the log, as [`super::large_tenant`] does: an update of 1% of
//! the large tenant's users (their department), a report over them; a second tenant
//! ([`CHURN_TENANT`], at most [`CHURN_OBJECTS_MAX`] users) whose every user is then updated
//! once; a report over the large tenant between two points only the churn tenant changed
//! between; and a report over the churn tenant's updates. Each report is timed from
//! `create_report` until it is successful, and its item count is compared with the number of
//! objects changed. Last, both states of the churn tenant are exported as one pretty JSON
//! file per object and `git diff --no-index --stat` (else `diff -rq`) compares them.

use std::path::Path;
use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use backtrack_differ::jobs::JobStore;
use backtrack_differ::{Differ, ReportRequest, Scope};
use backtrack_directory::Directory;
use backtrack_domain::event::{AttributeChange, Change, Event, EventMeta, TENANT_KIND};
use backtrack_domain::ObjectKind;
use backtrack_eventlog::{Append, EventLog, StreamSettings};
use backtrack_platform::shutdown::Shutdown;
use backtrack_proto::v1;
use backtrack_snapshotter::{Snapshotter, SnapshotterConfig};
use backtrack_store::timetravel::query::ListAt;
use backtrack_store::TimeTravelStore;
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use serde_json::{json, Value};

use super::large_tenant::{self, BATCH};
use super::memory;
use crate::testbed::Testbed;

/// The tenant whose every object changes.
pub const CHURN_TENANT: &str = "bench-churn";
/// The churn tenant's size at most (the large tenant's size below that).
pub const CHURN_OBJECTS_MAX: usize = 100_000;
/// One object in this many of the large tenant is updated.
pub const UPDATED_ONE_IN: usize = 100;
/// Objects per `list_at` page.
const PAGE: usize = 1000;
const ACTOR: &str = "backtrack-bench";
const SEED: u64 = 13;
/// How long a report may take before the run gives up on it.
const REPORT_DEADLINE: Duration = Duration::from_secs(600);
/// How long the stopped snapshotter may take to let go of its store.
const REOPEN_DEADLINE: Duration = Duration::from_secs(60);

/// Every figure of the difference-report scenarios.
#[derive(Debug, Clone)]
pub struct DiffRun {
    /// Objects of the large tenant.
    pub large_objects: usize,
    /// Objects of the churn tenant.
    pub churn_objects: usize,
    /// Appending the 1% updates, and the churn tenant's creates and updates.
    pub updates_append: Duration,
    pub churn_append: Duration,
    pub one_percent: TimedReport,
    pub no_changes: TimedReport,
    pub all_changed: TimedReport,
    pub peer: PeerDiff,
    /// `VmHWM` reset just before the 1% report (so: resident memory then) and read after.
    pub rss_before_one_percent_mib: Option<f64>,
    pub one_percent_peak_rss_mib: Option<f64>,
}

/// One report, timed from `create_report` until successful.
#[derive(Debug, Clone, PartialEq)]
pub struct TimedReport {
    pub wall: Duration,
    /// What the report says it took.
    pub elapsed_ms: u64,
    /// Its time computing the items and storing them (`backtrack_report_phase_seconds`).
    pub compute: Duration,
    pub store: Duration,
    pub base: u64,
    pub target: u64,
    pub items: usize,
    /// Objects changed between the two points, as appended.
    pub expected: usize,
}

impl TimedReport {
    pub fn exact(&self) -> bool {
        self.items == self.expected
    }
}

/// The peer: two folders of JSON files and a diff tool.
#[derive(Debug, Clone, PartialEq)]
pub struct PeerDiff {
    /// The command line run.
    pub tool: String,
    /// Writing both folders (not part of the peer's figure).
    pub export: Duration,
    pub files: usize,
    /// The diff command's wall time.
    pub diff: Duration,
    /// The command's last line of output (git: "N files changed, …").
    pub summary: String,
}

/// Runs the scenarios (see the module docs) on the store the snapshotter scenario built
/// in the testbed's `timetravel` folder; tells `progress` what it is doing.
pub async fn run(
    bed: &Testbed,
    nats: async_nats::Client,
    large_objects: usize,
    progress: fn(&str),
) -> anyhow::Result<DiffRun> {
    let (trigger, shutdown) = Shutdown::new();
    let snapshotter = reopen(bed, nats.clone(), shutdown).await?;
    let outcome = measure(bed, nats, &snapshotter, large_objects, progress).await;
    trigger.trigger();
    outcome
}

async fn measure(
    bed: &Testbed,
    nats: async_nats::Client,
    snapshotter: &Snapshotter,
    large_objects: usize,
    progress: fn(&str),
) -> anyhow::Result<DiffRun> {
    let log = EventLog::open(nats.clone(), StreamSettings::default()).await?;
    let differ = Differ::start(snapshotter.clone(), nats.clone(), 1).await?;
    let differ = (
        differ,
        JobStore::open(&async_nats::jetstream::new(nats), 1).await?,
    );
    let store = snapshotter.store().clone();
    let before_updates = caught_up(&log, snapshotter, &bed.directory).await?;

    let wanted = (large_objects / UPDATED_ONE_IN).max(1);
    let tenant = large_tenant::TENANT;
    let users = {
        let store = store.clone();
        tokio::task::spawn_blocking(move || first_users(&store, tenant, before_updates, wanted))
            .await??
    };
    progress(&format!(
        "appending updates of {} of {tenant}'s {large_objects} objects straight to the log",
        users.len()
    ));
    let started = Instant::now();
    let updates = users.iter().map(|(id, department)| {
        department_change(
            tenant,
            id,
            department.clone(),
            format!("Moved {department}"),
        )
    });
    append_all(&log, updates).await?;
    let updates_append = started.elapsed();
    caught_up(&log, snapshotter, &bed.directory).await?;
    let rss_before_one_percent_mib = reset_peak_rss();
    let one_percent = timed_report(&differ, tenant, before_updates, None, users.len()).await?;
    let one_percent_peak_rss_mib = memory::peak_rss_mib(None);
    progress(&format!(
        "1% report: {} items in {:.3}s",
        one_percent.items,
        one_percent.wall.as_secs_f64()
    ));

    let churn_objects = large_objects.clamp(1, CHURN_OBJECTS_MAX);
    progress(&format!(
        "appending {CHURN_TENANT} ({churn_objects} users), then an update of every one"
    ));
    let started = Instant::now();
    let ids = churn_ids(churn_objects);
    append_all(&log, churn_creates(&ids)).await?;
    let churn_base = log.state().await?.last_sequence;
    let churn_updates = ids
        .iter()
        .map(|id| department_change(CHURN_TENANT, id, "Sales".into(), "Engineering".into()));
    append_all(&log, churn_updates).await?;
    let churn_append = started.elapsed();
    let now = caught_up(&log, snapshotter, &bed.directory).await?;

    // Between these two points only the churn tenant changed.
    let no_changes = timed_report(&differ, tenant, one_percent.target, Some(now), 0).await?;
    let all_changed = timed_report(&differ, CHURN_TENANT, churn_base, None, churn_objects).await?;
    progress(&format!(
        "no-change report in {:.3}s; all-changed report ({} items) in {:.3}s (computing {:.3}s, storing {:.3}s); exporting both states for the peer",
        no_changes.wall.as_secs_f64(),
        all_changed.items,
        all_changed.wall.as_secs_f64(),
        all_changed.compute.as_secs_f64(),
        all_changed.store.as_secs_f64()
    ));
    let folder = bed.scratch_dir("diff-peer")?;
    let points = (churn_base, all_changed.target);
    let peer = tokio::task::spawn_blocking(move || {
        let peer = peer_diff(&store, CHURN_TENANT, points, &folder);
        let _ = std::fs::remove_dir_all(&folder);
        peer
    })
    .await??;
    progress(&format!(
        "peer: `{}` in {:.2}s ({}; export {:.1}s)",
        peer.tool,
        peer.diff.as_secs_f64(),
        peer.summary,
        peer.export.as_secs_f64()
    ));
    Ok(DiffRun {
        large_objects,
        churn_objects,
        updates_append,
        churn_append,
        one_percent,
        no_changes,
        all_changed,
        peer,
        rss_before_one_percent_mib,
        one_percent_peak_rss_mib,
    })
}

/// A snapshotter on the store the snapshotter scenario left behind (checkpoints off), once
/// the stopped one has let go of it.
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

/// Waits until the snapshotter and the directory have applied the log's tail (so neither
/// works during a measurement); returns that sequence.
async fn caught_up(
    log: &EventLog,
    snapshotter: &Snapshotter,
    directory: &Directory,
) -> anyhow::Result<u64> {
    let last = log.state().await?.last_sequence;
    let mut seen = (snapshotter.position(), directory.position());
    loop {
        let snapshotter_done = snapshotter.wait_for(last).await.is_ok();
        let directory_done = directory.wait_for(last).await.is_ok();
        if snapshotter_done && directory_done {
            return Ok(last);
        }
        let now = (snapshotter.position(), directory.position());
        if now == seen {
            bail!("stalled at sequence {now:?} (snapshotter, directory) of {last}");
        }
        seen = now;
    }
}

/// Asks for a report of `tenant` from `base` to `target` (`None`: now), waits until it is
/// successful and counts its items.
///
/// The record is polled straight from `bt-jobs`, which is all the poll needs. (Through
/// `Differ::report`, a replica other than the one running the report could, in the few
/// milliseconds between the job releasing the tenant's lease and storing its final record,
/// answer "the job was interrupted" once; the stored record ends successful.)
async fn timed_report(
    (differ, jobs): &(Differ, JobStore),
    tenant: &str,
    base: u64,
    target: Option<u64>,
    expected: usize,
) -> anyhow::Result<TimedReport> {
    let point = |sequence| v1::Point {
        point: Some(v1::point::Point::Sequence(sequence)),
    };
    let request = ReportRequest {
        tenant: tenant.to_string(),
        base: point(base),
        target: target.map(point),
        scope: Scope::default(),
        requested_by: ACTOR.into(),
    };
    let phases_before = report_phase_sums();
    let started = Instant::now();
    let mut report = differ.create_report(request).await?;
    while report.state != v1::JobState::Successful as i32 {
        if [v1::JobState::Failed as i32, v1::JobState::Abandoned as i32].contains(&report.state) {
            bail!("the report over {tenant} failed: {}", report.error);
        }
        if started.elapsed() > REPORT_DEADLINE {
            bail!("the report over {tenant} took longer than {REPORT_DEADLINE:?}");
        }
        tokio::time::sleep(Duration::from_millis(2)).await;
        report = jobs
            .report(tenant, &report.id)
            .await?
            .context("the report's record disappeared")?;
    }
    let wall = started.elapsed();
    let phases = report_phase_sums();
    let (report, items) = differ.items(tenant, &report.id).await?;
    Ok(TimedReport {
        wall,
        elapsed_ms: report.elapsed_ms,
        compute: Duration::from_secs_f64((phases.0 - phases_before.0).max(0.0)),
        store: Duration::from_secs_f64((phases.1 - phases_before.1).max(0.0)),
        base: report.base.map_or(0, |p| p.sequence),
        target: report.target.map_or(0, |p| p.sequence),
        items: items.len(),
        expected,
    })
}

/// The seconds all reports so far spent computing and storing, from this process's
/// `backtrack_report_phase_seconds` (one report runs at a time here, so differences
/// belong to it).
fn report_phase_sums() -> (f64, f64) {
    let scrape = backtrack_platform::metrics::render();
    let sum = |phase: &str| {
        let name = format!("backtrack_report_phase_seconds_sum{{phase=\"{phase}\"}} ");
        scrape
            .lines()
            .find_map(|line| line.strip_prefix(&name))
            .and_then(|value| value.trim().parse::<f64>().ok())
            .unwrap_or(0.0)
    };
    (sum("compute"), sum("store"))
}

/// The ids and departments of the tenant's first `wanted` users at `sequence`.
fn first_users(
    store: &TimeTravelStore,
    tenant: &str,
    sequence: u64,
    wanted: usize,
) -> anyhow::Result<Vec<(String, String)>> {
    let mut query = ListAt {
        sequence,
        kind: Some(ObjectKind::User),
        limit: PAGE.min(wanted),
        ..ListAt::default()
    };
    let mut users = Vec::with_capacity(wanted);
    while users.len() < wanted {
        let page = store.list_at(tenant, &query)?;
        users.extend(page.objects.into_iter().map(|o| {
            let department = o.attributes.get("department").and_then(Value::as_str);
            (o.id.clone(), department.unwrap_or_default().to_string())
        }));
        match page.next_after {
            Some(after) => query.after = Some(after),
            None => break,
        }
    }
    users.truncate(wanted);
    if users.len() < wanted {
        bail!("tenant {tenant} has {} users, not {wanted}", users.len());
    }
    Ok(users)
}

fn department_change(tenant: &str, id: &str, old: String, new: String) -> Event {
    Event {
        meta: meta(tenant, ObjectKind::User.as_str(), id),
        change: Change::AttributesChanged(vec![AttributeChange {
            name: "department".into(),
            old: Some(Value::String(old)),
            new: Some(Value::String(new)),
        }]),
    }
}

/// `count` random (version 4) lower-case GUIDs.
fn churn_ids(count: usize) -> Vec<String> {
    let mut rng = ChaCha8Rng::seed_from_u64(SEED);
    (0..count)
        .map(|_| {
            uuid::Builder::from_random_bytes(rand::Rng::random(&mut rng))
                .into_uuid()
                .to_string()
        })
        .collect()
}

/// The churn tenant's `tenantCreated` event and one user per id.
fn churn_creates(ids: &[String]) -> impl Iterator<Item = Event> + '_ {
    let now = chrono::Utc::now().timestamp_millis();
    let tenant = Event {
        meta: meta(CHURN_TENANT, TENANT_KIND, CHURN_TENANT),
        change: Change::TenantCreated {
            display_name: "Benchmark (churn)".into(),
        },
    };
    let users = ids.iter().enumerate().map(move |(n, id)| {
        let upn = format!("user{n}@churn.bench.example");
        let attributes = json!({
            "displayName": format!("Churn User {n}"),
            "userPrincipalName": upn,
            "mail": upn,
            "accountEnabled": true,
            "department": "Sales",
            "createdDateTime": backtrack_domain::time::rfc3339_ms(now),
        });
        Event {
            meta: meta(CHURN_TENANT, ObjectKind::User.as_str(), id),
            change: Change::Created {
                attributes: attributes.as_object().cloned().unwrap_or_default(),
                links: Vec::new(),
            },
        }
    });
    std::iter::once(tenant).chain(users)
}

fn meta(tenant: &str, kind: &str, object_id: &str) -> EventMeta {
    EventMeta {
        event_id: uuid::Uuid::now_v7().to_string(),
        tenant: tenant.to_string(),
        kind: kind.to_string(),
        object_id: object_id.to_string(),
        actor: ACTOR.to_string(),
        time_ms: chrono::Utc::now().timestamp_millis(),
        source: ACTOR.to_string(),
        correlation_id: None,
        mutation_id: uuid::Uuid::now_v7().to_string(),
    }
}

/// Appends `events` in batches of [`BATCH`]; fails on any error or duplicate.
async fn append_all(log: &EventLog, events: impl Iterator<Item = Event>) -> anyhow::Result<()> {
    let mut events = events.peekable();
    while events.peek().is_some() {
        let batch: Vec<Append> = events
            .by_ref()
            .take(BATCH)
            .map(|event| Append {
                msg_id: format!("{}:{}:0", event.meta.tenant, event.meta.mutation_id),
                expected_last_subject_sequence: None,
                event,
            })
            .collect();
        for result in log.append(batch).await {
            if result?.duplicate {
                bail!("an appended event was already in the log");
            }
        }
    }
    Ok(())
}

/// Exports the tenant at both points into `folder`/{a,b} and times the diff tool on them.
fn peer_diff(
    store: &TimeTravelStore,
    tenant: &str,
    (base, target): (u64, u64),
    folder: &Path,
) -> anyhow::Result<PeerDiff> {
    let started = Instant::now();
    let files = export(store, tenant, base, &folder.join("a"))?;
    export(store, tenant, target, &folder.join("b"))?;
    let export = started.elapsed();
    let git = std::process::Command::new("git")
        .arg("--version")
        .output()
        .is_ok_and(|o| o.status.success());
    let args: &[&str] = if git {
        &["git", "diff", "--no-index", "--stat", "a", "b"]
    } else {
        &["diff", "-rq", "a", "b"]
    };
    let started = Instant::now();
    let output = std::process::Command::new(args[0])
        .args(&args[1..])
        .current_dir(folder)
        .output()
        .with_context(|| format!("run {}", args[0]))?;
    let diff = started.elapsed();
    // Both tools exit 1 when the folders differ.
    if !matches!(output.status.code(), Some(0 | 1)) {
        bail!(
            "`{}` failed ({}): {}",
            args.join(" "),
            output.status,
            String::from_utf8_lossy(&output.stderr).trim()
        );
    }
    let stdout = String::from_utf8_lossy(&output.stdout);
    let summary = if git {
        stdout.lines().last().unwrap_or_default().trim().to_string()
    } else {
        format!("{} files differ", stdout.lines().count())
    };
    Ok(PeerDiff {
        tool: args.join(" "),
        export,
        files,
        diff,
        summary,
    })
}

/// Writes every object of the tenant at `sequence` as `dir/<id>` (pretty JSON); returns
/// how many.
fn export(
    store: &TimeTravelStore,
    tenant: &str,
    sequence: u64,
    dir: &Path,
) -> anyhow::Result<usize> {
    std::fs::create_dir_all(dir).with_context(|| format!("create {}", dir.display()))?;
    let mut query = ListAt {
        sequence,
        limit: PAGE,
        ..ListAt::default()
    };
    let mut count = 0;
    loop {
        let page = store.list_at(tenant, &query)?;
        for object in &page.objects {
            let path = dir.join(&object.id);
            std::fs::write(&path, serde_json::to_vec_pretty(object)?)
                .with_context(|| format!("write {}", path.display()))?;
            count += 1;
        }
        match page.next_after {
            Some(after) => query.after = Some(after),
            None => return Ok(count),
        }
    }
}

/// Resets this process's `VmHWM` to its current resident size (Linux: "5" to
/// `/proc/self/clear_refs`) and returns that size in MiB, if `/proc` allows.
fn reset_peak_rss() -> Option<f64> {
    std::fs::write("/proc/self/clear_refs", "5").ok()?;
    memory::peak_rss_mib(None)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn churn_ids_are_distinct_guids() {
        let ids = churn_ids(100);
        assert!(ids
            .iter()
            .all(|id| backtrack_domain::canonical::looks_like_guid(id)));
        let distinct: std::collections::BTreeSet<&String> = ids.iter().collect();
        assert_eq!(distinct.len(), 100);
    }
}
