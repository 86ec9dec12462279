//! The builder: one task folds `BT_EVENTS` into the time-travel store in stream order.
//!
//! The store's position is written in the same batch as the versions it describes, so
//! after a restart (or with a deleted folder) the builder resumes right after it; the
//! position is the consumer's durable state, and no event is applied twice or skipped.

use std::sync::Arc;
use std::time::Duration;

use backtrack_eventlog::EventLog;
use backtrack_platform::shutdown::Shutdown;
use backtrack_store::{SequencedEvent, TimeTravelStore};
use futures::StreamExt;
use tokio::sync::watch;

/// Most events folded in one write batch.
const MAX_CHUNK: usize = 4096;

/// Runs until `shutdown`; resumes with backoff when the stream read fails.
pub async fn run(
    log: EventLog,
    store: Arc<TimeTravelStore>,
    progress: Arc<watch::Sender<u64>>,
    shutdown: Shutdown,
) {
    let mut backoff = Duration::from_millis(50);
    loop {
        let result = tokio::select! {
            r = follow(&log, &store, &progress) => r,
            () = shutdown.wait() => break,
        };
        if let Err(e) = result {
            tracing::warn!(error = %e, "snapshotter lost the stream; resuming");
        }
        tokio::select! {
            () = tokio::time::sleep(backoff) => {},
            () = shutdown.wait() => break,
        }
        backoff = (backoff * 2).min(Duration::from_secs(2));
    }
    if let Err(e) = store.flush() {
        tracing::warn!(error = %e, "could not flush the time-travel store");
    }
}

async fn follow(
    log: &EventLog,
    store: &Arc<TimeTravelStore>,
    progress: &watch::Sender<u64>,
) -> Result<(), String> {
    let start = store.position() + 1;
    let stream = log
        .read(start, "bt.ev.>")
        .await
        .map_err(|e| e.to_string())?;
    let mut chunks = stream.ready_chunks(MAX_CHUNK);
    while let Some(chunk) = chunks.next().await {
        let mut events = Vec::with_capacity(chunk.len());
        let mut failure = None;
        for item in chunk {
            match item {
                Ok(stored) => events.push(SequencedEvent {
                    sequence: stored.sequence,
                    published_ms: stored.published_ms,
                    event: stored.event,
                }),
                Err(e) => {
                    failure = Some(e.to_string());
                    break;
                }
            }
        }
        if !events.is_empty() {
            let worker = store.clone();
            tokio::task::spawn_blocking(move || worker.apply(&events))
                .await
                .map_err(|e| e.to_string())?
                .map_err(|e| e.to_string())?;
            progress.send_replace(store.position());
        }
        if let Some(e) = failure {
            return Err(e);
        }
    }
    Err("stream ended".into())
}
