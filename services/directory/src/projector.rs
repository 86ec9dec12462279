//! The projector: folds `BT_EVENTS` into the RocksDB projection in stream order.
//!
//! It starts after the projection's stored position (so a restart, or a deleted folder,
//! catches up from the log) and then follows the stream live. The stream is read and
//! decoded ahead by its own task ([`Runs`]); a run is folded into writes on a blocking
//! thread while the run before is written on another, so RocksDB's work neither waits for
//! the reading nor holds up the async runtime that serves requests; whatever queued up
//! meanwhile is folded as the next run, in one write batch.

use std::ops::ControlFlow;
use std::sync::Arc;
use std::time::{Duration, Instant};

use backtrack_domain::event::Event;
use backtrack_eventlog::{EventLog, Run, Runs, StoredEvent};
use backtrack_platform::shutdown::Shutdown;
use backtrack_store::{DirectoryProjection, RunCarry};
use futures::{Stream, StreamExt};
use tokio::sync::watch;

/// A run that takes this long to apply is logged: the projection is falling behind.
const SLOW_RUN: Duration = Duration::from_secs(2);

/// Runs until `shutdown`; reconnects with backoff when the stream read fails.
pub async fn run(
    log: EventLog,
    projection: Arc<DirectoryProjection>,
    progress: Arc<watch::Sender<u64>>,
    shutdown: Shutdown,
) {
    let mut backoff = Duration::from_millis(50);
    loop {
        let result = tokio::select! {
            r = follow(&log, &projection, &progress) => r,
            () = shutdown.wait() => return,
        };
        if let Err(e) = result {
            tracing::warn!(error = %e, "projector lost the stream; resuming");
        }
        tokio::select! {
            () = tokio::time::sleep(backoff) => {},
            () = shutdown.wait() => return,
        }
        backoff = (backoff * 2).min(Duration::from_secs(2));
    }
}

async fn follow(
    log: &EventLog,
    projection: &Arc<DirectoryProjection>,
    progress: &watch::Sender<u64>,
) -> Result<(), String> {
    let start = projection.position().map_err(|e| e.to_string())? + 1;
    let stream = log.follow(start).await.map_err(|e| e.to_string())?;
    fold(projection, stream, |run, took| {
        if took >= SLOW_RUN {
            tracing::warn!(
                events = run.len(),
                seconds = took.as_secs_f64(),
                "the directory projection took long to apply a run of events"
            );
        }
        if let Some(&(last, _)) = run.last() {
            progress.send_replace(last);
        }
        ControlFlow::Continue(())
    })
    .await?;
    Err("stream ended".into())
}

/// Folds `stream` into `projection` run by run, as the projector does: the stream is read
/// ahead, and each run is folded into writes (`prepare`) on a blocking thread while the
/// run before it is written (`commit`) on another, so far behind the log the fold and
/// RocksDB's inserts use both cores; runs are written one at a time, in order. After each
/// run is written, `applied` gets the run and the time its preparing and writing took,
/// and says whether to go on. Returns when the stream ends or `applied` breaks; fails with
/// the first read or apply error (the events before it are folded, and folding is
/// idempotent by position, so a caller may resume).
pub async fn fold<S, E>(
    projection: &Arc<DirectoryProjection>,
    stream: S,
    mut applied: impl FnMut(&[(u64, Event)], Duration) -> ControlFlow<()>,
) -> Result<(), String>
where
    S: Stream<Item = Result<StoredEvent, E>> + Send + Unpin + 'static,
    E: std::fmt::Display + Send + 'static,
{
    let mut runs = Runs::new(stream.map(|item| item.map(|s| (s.sequence, s.event))));
    let mut carry: Option<Arc<RunCarry>> = None;
    let mut writing: Option<Writing> = None;
    let outcome = loop {
        let next = match writing.as_mut() {
            Some(w) => tokio::select! {
                written = &mut w.commit => {
                    if let Some(w) = writing.take() {
                        match w.written(written, &mut applied) {
                            Ok(ControlFlow::Continue(())) => {}
                            Ok(ControlFlow::Break(())) => return Ok(()),
                            Err(e) => break Err(e),
                        }
                    }
                    continue;
                }
                run = runs.next() => run,
            },
            None => runs.next().await,
        };
        let Some(Run { items, failure }) = next else {
            break Ok(());
        };
        if !items.is_empty() {
            let (worker, after) = (Arc::clone(projection), carry.clone());
            let started = Instant::now();
            let prepared = tokio::task::spawn_blocking(move || {
                let prepared = worker.prepare(&items, after.as_deref());
                prepared.map(|run| (items, run))
            })
            .await;
            let (items, prepared) = match prepared {
                Ok(Ok(prepared)) => prepared,
                Ok(Err(e)) => break Err(e.to_string()),
                Err(e) => break Err(e.to_string()),
            };
            let prepared_in = started.elapsed();
            // The run before is written before this one is handed over.
            if let Some(mut w) = writing.take() {
                let written = (&mut w.commit).await;
                match w.written(written, &mut applied) {
                    Ok(ControlFlow::Continue(())) => {}
                    Ok(ControlFlow::Break(())) => return Ok(()),
                    Err(e) => break Err(e),
                }
            }
            carry = Some(prepared.carry());
            let worker = Arc::clone(projection);
            writing = Some(Writing {
                commit: tokio::task::spawn_blocking(move || worker.commit(prepared)),
                items,
                prepared_in,
                started: Instant::now(),
            });
        }
        if let Some(e) = failure {
            break Err(e.to_string());
        }
    };
    // Whatever ended the loop, the run being written is finished first: a caller that
    // resumes starts from the projection's position.
    if let Some(mut w) = writing.take() {
        let written = (&mut w.commit).await;
        let flow = w.written(written, &mut applied)?;
        if flow.is_break() {
            return Ok(());
        }
    }
    outcome
}

/// A prepared run being written.
struct Writing {
    commit: tokio::task::JoinHandle<Result<(), backtrack_store::StoreError>>,
    items: Vec<(u64, Event)>,
    prepared_in: Duration,
    started: Instant,
}

impl Writing {
    /// Hands the written run to `applied`; fails when writing it failed.
    fn written(
        self,
        written: Result<Result<(), backtrack_store::StoreError>, tokio::task::JoinError>,
        applied: &mut impl FnMut(&[(u64, Event)], Duration) -> ControlFlow<()>,
    ) -> Result<ControlFlow<()>, String> {
        match written {
            Ok(Ok(())) => Ok(applied(
                &self.items,
                self.prepared_in + self.started.elapsed(),
            )),
            Ok(Err(e)) => Err(e.to_string()),
            Err(e) => Err(e.to_string()),
        }
    }
}
