//! The projector: folds `BT_EVENTS` into the RocksDB projection in stream order.
//!
//! It starts after the projection's stored position (so a restart, or a deleted folder,
//! catches up from the log) and then follows the stream live. The stream is read and
//! decoded ahead by its own task ([`Runs`]) while the run before is applied on a blocking
//! thread, so RocksDB's work neither waits for the reading nor holds up the async runtime
//! that serves requests; whatever queued up meanwhile is folded as the next run, in one
//! write batch.

use std::ops::ControlFlow;
use std::sync::Arc;
use std::time::{Duration, Instant};

use backtrack_domain::event::Event;
use backtrack_eventlog::{EventLog, Run, Runs, StoredEvent};
use backtrack_platform::shutdown::{Restarts, Shutdown};
use backtrack_store::DirectoryProjection;
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
    let mut restarts = Restarts::new(
        &shutdown,
        "projector lost the stream",
        Duration::from_millis(50),
        Duration::from_secs(2),
    );
    loop {
        let result = tokio::select! {
            r = follow(&log, &projection, &progress) => r,
            () = shutdown.wait() => return,
        };
        if !restarts.after(result).await {
            return;
        }
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
/// ahead while each run is applied on a blocking thread. After each run, `applied` gets
/// the run and the time its apply took, and says whether to go on. Returns when the
/// stream ends or `applied` breaks; fails with the first read or apply error (the events
/// before it are folded, and folding is idempotent by position, so a caller may resume).
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
    while let Some(Run { items, failure }) = runs.next().await {
        if !items.is_empty() {
            let worker = Arc::clone(projection);
            let (items, took) = tokio::task::spawn_blocking(move || {
                let started = Instant::now();
                worker.apply(&items).map(|()| (items, started.elapsed()))
            })
            .await
            .map_err(|e| e.to_string())?
            .map_err(|e| e.to_string())?;
            if applied(&items, took).is_break() {
                return Ok(());
            }
        }
        if let Some(e) = failure {
            return Err(e.to_string());
        }
    }
    Ok(())
}
