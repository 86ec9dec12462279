//! Rebuilding the projection from the log: the whole of `BT_EVENTS` folded into a fresh
//! RocksDB projection exactly as the directory's projector folds it (`EventLog::read` from
//! sequence 1, `ready_chunks(2048)`, `DirectoryProjection::apply`), then checked against
//! the live projection by content digest.

use std::collections::BTreeMap;
use std::path::Path;
use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use backtrack_directory::Directory;
use backtrack_domain::event::{Change, Event};
use backtrack_eventlog::{EventLog, StreamSettings};
use backtrack_store::DirectoryProjection;
use futures::StreamExt;

use super::Throughput;

/// The projector's chunk size (`backtrack_directory::projector::MAX_CHUNK`).
const CHUNK: usize = 2048;
/// How long the replay waits for the next chunk before it calls the log stuck.
const IDLE_TIMEOUT: Duration = Duration::from_secs(30);

/// How fast the log folded, and whether the result equals the live state.
#[derive(Debug, Clone, PartialEq)]
pub struct ReplayRun {
    pub throughput: Throughput,
    /// Time spent inside `DirectoryProjection::apply`; the rest of the elapsed time went
    /// to waiting for, reading and decoding the next chunk.
    pub apply: Duration,
    /// Apply time per event kind: each chunk's time shared out over its events, an event
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
    let mut chunks = log.read(1, "bt.ev.>").await?.ready_chunks(CHUNK);
    let mut events = 0u64;
    let mut apply = Duration::ZERO;
    let mut apply_by_kind = BTreeMap::new();
    while projection.position()? < last {
        let chunk = match tokio::time::timeout(IDLE_TIMEOUT, chunks.next()).await {
            Ok(Some(chunk)) => chunk,
            Ok(None) => bail!("the log ended at {} of {last}", projection.position()?),
            Err(_) => bail!("the replay stalled at {} of {last}", projection.position()?),
        };
        let mut batch = Vec::with_capacity(chunk.len());
        for item in chunk {
            let stored = item?;
            batch.push((stored.sequence, stored.event));
        }
        events += batch.len() as u64;
        let applying = Instant::now();
        projection.apply(&batch)?;
        let took = applying.elapsed();
        apply += took;
        let weights: Vec<usize> = batch.iter().map(|(_, e)| apply_weight(e)).collect();
        let share = took.as_secs_f64() / weights.iter().sum::<usize>().max(1) as f64;
        for ((_, event), weight) in batch.iter().zip(weights) {
            *apply_by_kind.entry(event.meta.kind.clone()).or_insert(0.0) += share * weight as f64;
        }
    }
    let elapsed = started.elapsed();
    drop(chunks);

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
