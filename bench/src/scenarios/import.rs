//! The directory's real write path: the demo tenant imported over gRPC with the CLI's own
//! bulk importer (`backtrack_cli::import::run`), which is what `backtrack demo seed` does.
//!
//! Where the time goes is reconstructed afterwards, without touching the directory: the
//! testbed notes when each `ImportObjects` call arrives (and where the projection stood),
//! a watcher notes when the projection moves, and JetStream's own timestamps say when each
//! call's first and last events were stored. Per call that splits the time into
//! decide (arrival → first event stored: request parsing and `decide_import`), append
//! (first → last event stored), project (last event stored → projected) and respond
//! (projected → the next call arrives: answer, and the client building the next request).

use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use anyhow::{bail, Context};
use backtrack_cli::client::Client;
use backtrack_cli::demo::demo_objects;
use backtrack_cli::up::demo_options;
use backtrack_directory::Directory;
use backtrack_domain::graph::KIND_KEY;
use backtrack_eventlog::EventLog;
use backtrack_proto::v1;
use tokio::sync::oneshot;

use crate::testbed::{wall_ms, Arrival, Testbed};

/// The tenant every scenario works in.
pub const TENANT: &str = "bench";
/// Items per `ImportObjects` call.
pub const BATCH: usize = 2000;
/// The demo generator's seed and domain.
const SEED: u64 = 42;
const DOMAIN: &str = "bench.example";

/// What the import did and how long it took.
#[derive(Debug, Clone, PartialEq)]
pub struct ImportRun {
    pub objects: u64,
    pub events: u64,
    pub elapsed: Duration,
    /// Per kind, in import order; empty when objects and events do not pair up one to one.
    pub by_kind: Vec<KindTiming>,
}

impl ImportRun {
    pub fn objects_per_second(&self) -> f64 {
        self.objects as f64 / self.elapsed.as_secs_f64().max(1e-9)
    }

    pub fn events_per_second(&self) -> f64 {
        self.events as f64 / self.elapsed.as_secs_f64().max(1e-9)
    }
}

/// The calls whose objects were mostly of one kind, and where their time went.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct KindTiming {
    pub kind: String,
    pub objects: u64,
    pub calls: u64,
    pub phases: Phases,
}

/// Seconds of one or more `ImportObjects` calls, by phase (see the module docs).
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct Phases {
    pub decide: f64,
    pub append: f64,
    pub project: f64,
    pub respond: f64,
}

impl Phases {
    pub fn total(&self) -> f64 {
        self.decide + self.append + self.project + self.respond
    }

    /// Adds `other`'s seconds to these.
    pub fn add(&mut self, other: Phases) {
        self.decide += other.decide;
        self.append += other.append;
        self.project += other.project;
        self.respond += other.respond;
    }
}

/// Creates [`TENANT`] and imports the demo tenant of `users` users into it in batches of
/// [`BATCH`]. Fails if any object is rejected or already there: the figures would lie.
pub async fn bulk_import(
    bed: &Testbed,
    client: &mut Client,
    users: usize,
) -> anyhow::Result<ImportRun> {
    client
        .create_tenant(v1::CreateTenantRequest {
            id: TENANT.to_string(),
            display_name: "Benchmark".to_string(),
        })
        .await?;
    let options = demo_options(users, SEED, DOMAIN);
    let total = options.total_objects() as u64;

    // (kind, index of its first object), noted as the importer pulls objects.
    let runs: Arc<Mutex<Vec<(String, u64)>>> = Arc::default();
    let seen = Arc::clone(&runs);
    let objects = demo_objects(&options)
        .enumerate()
        .map(move |(index, object)| {
            let kind = object.get(KIND_KEY).and_then(|k| k.as_str()).unwrap_or("");
            let mut runs = seen.lock().unwrap_or_else(PoisonError::into_inner);
            if runs.last().is_none_or(|(last, _)| last != kind) {
                runs.push((kind.to_string(), index as u64));
            }
            Ok((index as u64 + 1, object))
        });

    let base = bed.directory.position();
    let (stop, watcher) = watch_projection(bed.directory.clone());
    bed.record_arrivals();
    let summary =
        backtrack_cli::import::run(client, TENANT, objects, "object", Some(total), BATCH, false)
            .await;
    let end_ms = wall_ms();
    let arrivals = bed.take_arrivals();
    let _ = stop.send(());
    let projected = watcher.await.unwrap_or_default();
    let summary = summary?;
    if summary.rejected > 0 || summary.already_existed > 0 || summary.created != total {
        bail!(
            "the import created {} of {total} objects ({} rejected, {} already existed); first problems: {:?}",
            summary.created,
            summary.rejected,
            summary.already_existed,
            summary.problems
        );
    }
    let runs = runs.lock().unwrap_or_else(PoisonError::into_inner).clone();
    let by_kind = if summary.events == total {
        let timeline = Timeline {
            runs: &runs,
            base,
            total,
            arrivals: &arrivals,
            projected: &projected,
            end_ms,
        };
        timeline.by_kind(bed.directory.log()).await?
    } else {
        Vec::new()
    };
    Ok(ImportRun {
        objects: summary.created,
        events: summary.events,
        elapsed: summary.elapsed,
        by_kind,
    })
}

/// Notes (wall-clock ms, position) each time the projection moves, until told to stop.
fn watch_projection(
    directory: Directory,
) -> (
    oneshot::Sender<()>,
    tokio::task::JoinHandle<Vec<(f64, u64)>>,
) {
    let (stop, mut stopped) = oneshot::channel();
    let task = tokio::spawn(async move {
        let mut moves = Vec::new();
        loop {
            let next = directory.position() + 1;
            tokio::select! {
                // A timeout (no write for a while) just means: wait again.
                _ = directory.wait_for(next) => moves.push((wall_ms(), directory.position())),
                _ = &mut stopped => break,
            }
        }
        moves
    });
    (stop, task)
}

/// Everything noted during one import.
struct Timeline<'a> {
    /// (kind, index of its first object) in import order.
    runs: &'a [(String, u64)],
    /// The projection position before the import: object `i` is event `base + 1 + i`.
    base: u64,
    total: u64,
    arrivals: &'a [Arrival],
    projected: &'a [(f64, u64)],
    end_ms: f64,
}

impl Timeline<'_> {
    /// Each call's phases, summed per the kind most of its objects had.
    async fn by_kind(&self, log: &EventLog) -> anyhow::Result<Vec<KindTiming>> {
        let mut kinds: Vec<KindTiming> = self
            .runs
            .iter()
            .enumerate()
            .map(|(i, (kind, first))| KindTiming {
                kind: kind.clone(),
                objects: self.run_end(i) - first,
                ..KindTiming::default()
            })
            .collect();
        for (call, arrival) in self.arrivals.iter().enumerate() {
            let first = arrival.position + 1;
            let next = self.arrivals.get(call + 1);
            let last = next.map_or(self.base + self.total, |a| a.position);
            if last < first {
                continue;
            }
            let first_stored = stored_ms(log, first).await?;
            let last_stored = stored_ms(log, last).await?;
            let projected = self
                .projected
                .iter()
                .find(|(_, p)| *p >= last)
                .map_or(self.end_ms, |(t, _)| *t);
            let next_ms = next.map_or(self.end_ms, |a| a.wall_ms);
            let seconds = |from: f64, to: f64| ((to - from) / 1000.0).max(0.0);
            let phases = Phases {
                decide: seconds(arrival.wall_ms, first_stored),
                append: seconds(first_stored, last_stored),
                project: seconds(last_stored, projected),
                respond: seconds(projected, next_ms),
            };
            if let Some(kind) = kinds.get_mut(self.dominant_run(first, last)) {
                kind.calls += 1;
                kind.phases.add(phases);
            }
        }
        Ok(kinds)
    }

    fn run_end(&self, run: usize) -> u64 {
        self.runs.get(run + 1).map_or(self.total, |(_, next)| *next)
    }

    /// The run holding most of the events `first..=last`.
    fn dominant_run(&self, first: u64, last: u64) -> usize {
        let (from, to) = (first - self.base - 1, last - self.base);
        (0..self.runs.len())
            .max_by_key(|&i| {
                let start = self.runs[i].1.max(from);
                self.run_end(i).min(to).saturating_sub(start)
            })
            .unwrap_or(0)
    }
}

/// When JetStream stored event `sequence` (ms since the epoch).
async fn stored_ms(log: &EventLog, sequence: u64) -> anyhow::Result<f64> {
    let events = log.read_range(sequence, sequence, "bt.ev.>").await?;
    let event = events
        .first()
        .with_context(|| format!("event {sequence} is missing from the log"))?;
    Ok(event.published_ms as f64)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_call_belongs_to_the_kind_of_most_of_its_objects() {
        let runs = vec![
            ("user".to_string(), 0),
            ("group".to_string(), 4),
            ("application".to_string(), 5),
        ];
        let timeline = Timeline {
            runs: &runs,
            base: 1,
            total: 8,
            arrivals: &[],
            projected: &[],
            end_ms: 0.0,
        };
        // Events 2..=5 are users, 6 a group, 7..=9 applications.
        assert_eq!(timeline.dominant_run(2, 5), 0);
        assert_eq!(timeline.dominant_run(4, 7), 0);
        assert_eq!(timeline.dominant_run(6, 9), 2);
        assert_eq!(timeline.run_end(1), 5);
    }
}
