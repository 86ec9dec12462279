//! The projector: one task folds `BT_EVENTS` into the RocksDB projection in stream order.
//!
//! It starts after the projection's stored position (so a restart, or a deleted folder,
//! catches up from the log) and then follows the stream live. Whatever messages are
//! ready are folded together in one write batch.

use std::sync::Arc;
use std::time::Duration;

use backtrack_eventlog::EventLog;
use backtrack_platform::shutdown::Shutdown;
use backtrack_store::DirectoryProjection;
use futures::StreamExt;
use tokio::sync::watch;

/// Most events folded in one RocksDB write batch.
const MAX_CHUNK: usize = 2048;

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
    let mut chunks = stream.ready_chunks(MAX_CHUNK);
    while let Some(chunk) = chunks.next().await {
        let mut events = Vec::with_capacity(chunk.len());
        let mut failure = None;
        for item in chunk {
            match item {
                Ok(stored) => events.push((stored.sequence, stored.event)),
                Err(e) => {
                    failure = Some(e.to_string());
                    break;
                }
            }
        }
        if let Some(&(last, _)) = events.last() {
            projection.apply(&events).map_err(|e| e.to_string())?;
            progress.send_replace(last);
        }
        if let Some(e) = failure {
            return Err(e);
        }
    }
    Err("stream ended".into())
}
