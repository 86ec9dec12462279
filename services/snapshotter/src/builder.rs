//! The builder: one task folds `BT_EVENTS` into the time-travel store in stream order.
//!
//! The store's position is written in the same batch as the versions it describes, so
//! after a restart (or with a deleted folder) the builder resumes right after it; the
//! position is the consumer's durable state, and no event is applied twice or skipped.

use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use backtrack_eventlog::{EventLog, Run, Runs};
use backtrack_platform::shutdown::{Restarts, Shutdown};
use backtrack_store::{Carry, SequencedEvent, StoreError, TimeTravelStore};
use futures::StreamExt;
use tokio::sync::watch;
use tokio::task::JoinHandle;

use crate::checkpoint::Checkpoints;

/// A run of events that takes this long to apply is logged with RocksDB's write pressure
/// (a run is at most 8192 events, normally well under a second).
const SLOW_RUN: Duration = Duration::from_secs(2);

/// Where and how often the builder checkpoints the store.
#[derive(Debug, Clone)]
pub struct Checkpointing {
    pub checkpoints: Checkpoints,
    /// Applied events between two checkpoints.
    pub every: u64,
    pub scratch: PathBuf,
}

/// The checkpoint schedule of one builder.
struct CheckpointState {
    config: Checkpointing,
    last: u64,
    running: Arc<AtomicBool>,
}

impl CheckpointState {
    /// Starts a checkpoint in the background when enough events were applied since the
    /// last one and none is running.
    fn maybe_start(&mut self, store: &Arc<TimeTravelStore>) {
        let position = store.position();
        if position < self.last.saturating_add(self.config.every)
            || self.running.swap(true, Ordering::SeqCst)
        {
            return;
        }
        self.last = position;
        let (store, config, running) = (store.clone(), self.config.clone(), self.running.clone());
        tokio::spawn(async move {
            match config.checkpoints.save(&store, &config.scratch).await {
                Ok(Some(at)) => tracing::info!(position = at, "time-travel store checkpointed"),
                Ok(None) => tracing::error!("checkpoint skipped: it did not verify"),
                Err(e) => tracing::warn!(error = %e, "checkpoint failed; will retry later"),
            }
            running.store(false, Ordering::SeqCst);
        });
    }
}

/// Runs until `shutdown`; resumes with backoff when the stream read fails.
pub async fn run(
    log: EventLog,
    store: Arc<TimeTravelStore>,
    progress: Arc<watch::Sender<u64>>,
    checkpointing: Option<Checkpointing>,
    shutdown: Shutdown,
) {
    let mut checkpoints = match checkpointing {
        Some(config) => {
            let last = match config.checkpoints.list().await {
                Ok(list) => list.first().map_or(0, |c| c.position),
                Err(_) => store.position(),
            };
            Some(CheckpointState {
                config,
                last,
                running: Arc::default(),
            })
        }
        None => None,
    };
    let mut restarts = Restarts::new(
        &shutdown,
        "snapshotter lost the stream",
        Duration::from_millis(50),
        Duration::from_secs(2),
    );
    loop {
        let result = tokio::select! {
            r = follow(&log, &store, &progress, &mut checkpoints) => r,
            () = shutdown.wait() => break,
        };
        if !restarts.after(result).await {
            break;
        }
    }
    if let Err(e) = store.flush() {
        tracing::warn!(error = %e, "could not flush the time-travel store");
    }
}

/// The run being written while the next one is prepared.
struct Writing {
    commit: JoinHandle<Result<(), StoreError>>,
    events: usize,
    /// How long the run took to prepare, and when its write started.
    prepared_in: Duration,
    started: Instant,
    /// The run's trace spans, open until it is written.
    spans: Vec<tracing::Span>,
}

async fn follow(
    log: &EventLog,
    store: &Arc<TimeTravelStore>,
    progress: &watch::Sender<u64>,
    checkpoints: &mut Option<CheckpointState>,
) -> Result<(), String> {
    let start = store.position() + 1;
    let stream = log.follow(start).await.map_err(|e| e.to_string())?;
    // Reading (and decoding) runs ahead in its own task, so the two overlap instead of
    // taking turns; what queued while a run was applied comes as the next run.
    let mut runs = Runs::new(stream.map(|item| {
        item.map(|stored| {
            let event = SequencedEvent {
                sequence: stored.sequence,
                published_ms: stored.published_ms,
                event: stored.event,
                payload: Some(stored.payload),
            };
            (event, stored.traceparent)
        })
    }));
    // A run is folded into writes (`prepare`) while the run before it is being written
    // (`commit`), each on a blocking thread: far behind the log, the fold and RocksDB's
    // inserts then use both cores. One run is written at a time, in order.
    let mut carry: Option<Arc<Carry>> = None;
    let mut writing: Option<Writing> = None;
    let outcome = loop {
        let next = match writing.as_mut() {
            Some(w) => tokio::select! {
                written = &mut w.commit => {
                    if let Some(w) = writing.take() {
                        if let Err(e) = written_out(w, written, store, progress, checkpoints) {
                            break Err(e);
                        }
                    }
                    continue;
                }
                run = runs.next() => run,
            },
            None => runs.next().await,
        };
        let Some(Run { items, failure }) = next else {
            break Err("stream ended".to_string());
        };
        let mut traced: Vec<String> = Vec::new();
        let events: Vec<SequencedEvent> = items
            .into_iter()
            .map(|(event, traceparent)| {
                traced.extend(traceparent);
                event
            })
            .collect();
        // The events of one traced append share its trace context.
        traced.sort_unstable();
        traced.dedup();
        // One span per traced append in the chunk (a batch of events shares one), each
        // continuing its writer's trace, open until the events are written.
        let spans: Vec<tracing::Span> = traced
            .iter()
            .map(|traceparent| {
                let span = tracing::info_span!(
                    "timetravel.apply",
                    first_sequence = events.first().map_or(0, |e| e.sequence)
                );
                backtrack_eventlog::trace::continue_trace(&span, traceparent);
                span
            })
            .collect();
        if !events.is_empty() {
            let (worker, after) = (store.clone(), carry.clone());
            let (count, started) = (events.len(), Instant::now());
            let prepared =
                match tokio::task::spawn_blocking(move || worker.prepare(events, after.as_deref()))
                    .await
                {
                    Ok(Ok(prepared)) => prepared,
                    Ok(Err(e)) => break Err(e.to_string()),
                    Err(e) => break Err(e.to_string()),
                };
            let prepared_in = started.elapsed();
            // The run before is written before this one is handed over.
            if let Some(mut w) = writing.take() {
                let written = (&mut w.commit).await;
                if let Err(e) = written_out(w, written, store, progress, checkpoints) {
                    break Err(e);
                }
            }
            if let Some(prepared) = prepared {
                carry = Some(prepared.carry());
                let worker = store.clone();
                writing = Some(Writing {
                    commit: tokio::task::spawn_blocking(move || worker.commit(prepared)),
                    events: count,
                    prepared_in,
                    started: Instant::now(),
                    spans,
                });
            }
        }
        if let Some(e) = failure {
            break Err(e.to_string());
        }
    };
    // Whatever ended the loop, the run being written is finished first: a new follower
    // starts from the store's position.
    if let Some(mut w) = writing.take() {
        let written = (&mut w.commit).await;
        written_out(w, written, store, progress, checkpoints)?;
    }
    outcome
}

/// Reports a run whose write finished: progress, a warning when it was slow, and the
/// next checkpoint when one is due.
fn written_out(
    w: Writing,
    written: Result<Result<(), StoreError>, tokio::task::JoinError>,
    store: &Arc<TimeTravelStore>,
    progress: &watch::Sender<u64>,
    checkpoints: &mut Option<CheckpointState>,
) -> Result<(), String> {
    written
        .map_err(|e| e.to_string())?
        .map_err(|e| e.to_string())?;
    let took = w.prepared_in + w.started.elapsed();
    if took >= SLOW_RUN {
        tracing::warn!(
            events = w.events,
            seconds = took.as_secs_f64(),
            prepare_seconds = w.prepared_in.as_secs_f64(),
            position = store.position(),
            rocksdb = %store.write_pressure(),
            "the time-travel store took long to apply a run of events"
        );
    }
    progress.send_replace(store.position());
    if let Some(checkpoints) = checkpoints.as_mut() {
        checkpoints.maybe_start(store);
    }
    drop(w.spans);
    Ok(())
}
