//! Rebuilding the projection from the log: the whole of `BT_EVENTS` folded into a fresh
//! RocksDB projection by the directory's own projector code (`EventLog::read` from
//! sequence 1 into `backtrack_directory::projector::fold`), then checked against the live
//! projection by content digest.

use std::collections::BTreeMap;
use std::ops::ControlFlow;
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use backtrack_directory::projector::fold;
use backtrack_directory::Directory;
use backtrack_domain::event::{Change, Event};
use backtrack_eventlog::{EventLog, StreamSettings};
use backtrack_store::DirectoryProjection;

use super::Throughput;

/// How long the replay waits for the projection to move before it calls the log stuck.
const IDLE_TIMEOUT: Duration = Duration::from_secs(30);

/// How fast the log folded, and whether the result equals the live state.
#[derive(Debug, Clone, PartialEq)]
pub struct ReplayRun {
    pub throughput: Throughput,
    /// Time spent inside `DirectoryProjection::apply`. The log is read and decoded ahead
    /// while a run is applied, so the rest of the elapsed time is only what the fold had
    /// to wait for the next run beyond that.
    pub apply: Duration,
    /// Apply time per event kind: each run's time shared out over its events, an event
    /// weighing one plus its links (each link is two keys to write).
    pub apply_by_kind: BTreeMap<String, f64>,
    pub rebuilt_digest: String,
    pub live_digest: String,
    pub objects: u64,
}

impl ReplayRun {
    pub fn digest_matches(&self) -> bool {
        self.rebuilt_digest == self.live_digest
    }
}

/// Folds the whole log (up to its last sequence when the replay starts) into a new
/// projection under `dir`, then compares `tenant`'s digest with the live directory's once
/// that has folded the same events.
pub async fn replay(
    client: async_nats::Client,
    dir: &Path,
    live: &Directory,
    tenant: &str,
) -> anyhow::Result<ReplayRun> {
    let log = EventLog::open(client, StreamSettings::default()).await?;
    let last = log.state().await?.last_sequence;
    let projection = DirectoryProjection::open(dir)
        .with_context(|| format!("open a fresh projection in {}", dir.display()))?;

    let started = Instant::now();
    let stream = log.read(1, "bt.ev.>").await?;
    let projection = Arc::new(projection);
    let mut events = 0u64;
    let mut apply = Duration::ZERO;
    let mut apply_by_kind = BTreeMap::new();
    let folding = fold(&projection, stream, |run, took| {
        events += run.len() as u64;
        apply += took;
        let weights: Vec<usize> = run.iter().map(|(_, e)| apply_weight(e)).collect();
        let share = took.as_secs_f64() / weights.iter().sum::<usize>().max(1) as f64;
        for ((_, event), weight) in run.iter().zip(weights) {
            *apply_by_kind.entry(event.meta.kind.clone()).or_insert(0.0) += share * weight as f64;
        }
        match run.last() {
            Some(&(sequence, _)) if sequence >= last => ControlFlow::Break(()),
            _ => ControlFlow::Continue(()),
        }
    });
    // The fold waits for the log as long as it takes; fail if it stops moving instead.
    let watchdog = async {
        let mut seen = projection.position()?;
        loop {
            tokio::time::sleep(IDLE_TIMEOUT).await;
            let now = projection.position()?;
            if now == seen {
                bail!("the replay stalled at {now} of {last}");
            }
            seen = now;
        }
    };
    tokio::select! {
        folded = folding => folded.map_err(anyhow::Error::msg)?,
        stalled = watchdog => return stalled,
    }
    if projection.position()? < last {
        bail!("the log ended at {} of {last}", projection.position()?);
    }
    let elapsed = started.elapsed();

    let (rebuilt_digest, objects) = projection.tenant_digest(tenant)?;
    live.wait_for(last).await?;
    let (live_digest, _) = live.projection().tenant_digest(tenant)?;
    Ok(ReplayRun {
        throughput: Throughput {
            count: events,
            elapsed,
        },
        apply,
        apply_by_kind,
        rebuilt_digest,
        live_digest,
        objects,
    })
}

/// An event's share of the work of applying its chunk: one record plus one per link.
fn apply_weight(event: &Event) -> usize {
    1 + match &event.change {
        Change::Created { links, .. }
        | Change::LinksAdded(links)
        | Change::LinksRemoved(links)
        | Change::HardDeleted { links, .. } => links.len(),
        _ => 0,
    }
}
