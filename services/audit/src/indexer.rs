//! The indexer: one task follows `BT_AUDIT` from the index's position and chains what it
//! reads; another checkpoints the chain heads it moved to NATS KV.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use backtrack_platform::shutdown::Shutdown;
use backtrack_store::audit::AuditMessage;
use futures::StreamExt;
use tokio::sync::watch;

use crate::Audit;

/// Most messages chained in one write batch.
const MAX_CHUNK: usize = 2048;

/// Follows the stream until `shutdown`, reconnecting with backoff after errors.
pub async fn run(audit: Audit, progress: watch::Sender<u64>, shutdown: Shutdown) {
    let mut backoff = Duration::from_millis(100);
    let moved: Arc<std::sync::Mutex<BTreeMap<String, ()>>> = Arc::default();
    tokio::spawn(checkpoint_heads(
        audit.clone(),
        moved.clone(),
        shutdown.clone(),
    ));
    loop {
        let from = audit.index().position().unwrap_or(0) + 1;
        let stream = tokio::select! {
            s = audit.log().follow(from) => s,
            () = shutdown.wait() => return,
        };
        let mut chunks = match stream {
            Ok(s) => s.ready_chunks(MAX_CHUNK),
            Err(e) => {
                tracing::warn!(error = %e, "audit indexer cannot read BT_AUDIT; retrying");
                tokio::select! {
                    () = tokio::time::sleep(backoff) => {}
                    () = shutdown.wait() => return,
                }
                backoff = (backoff * 2).min(Duration::from_secs(5));
                continue;
            }
        };
        loop {
            let chunk = tokio::select! {
                c = chunks.next() => c,
                () = shutdown.wait() => return,
            };
            let Some(chunk) = chunk else { break };
            let mut messages = Vec::with_capacity(chunk.len());
            let mut failed = None;
            for item in chunk {
                match item {
                    Ok(stored) => messages.push(AuditMessage {
                        sequence: stored.sequence,
                        published_ms: stored.published_ms,
                        tenant: stored
                            .subject
                            .split('.')
                            .nth(2)
                            .unwrap_or_default()
                            .to_string(),
                        payload: stored.payload.to_vec(),
                    }),
                    Err(e) => {
                        failed = Some(e);
                        break;
                    }
                }
            }
            if !messages.is_empty() {
                let index = audit.index_arc();
                let applied = tokio::task::spawn_blocking(move || index.apply(&messages)).await;
                match applied {
                    Ok(Ok(entries)) => {
                        backoff = Duration::from_millis(100);
                        {
                            let mut moved = moved.lock().unwrap_or_else(|e| e.into_inner());
                            for e in &entries {
                                moved.insert(e.tenant.clone(), ());
                            }
                        }
                        for e in entries {
                            let _ = audit.feed().send(Arc::new(e));
                        }
                        let _ = progress.send(audit.index().position().unwrap_or(0));
                    }
                    Ok(Err(e)) => {
                        tracing::error!(error = %e, "audit index write failed; retrying");
                        failed.get_or_insert(backtrack_eventlog::EventLogError::Internal(
                            e.to_string(),
                        ));
                    }
                    Err(e) => {
                        tracing::error!(error = %e, "audit index task failed; retrying");
                        failed.get_or_insert(backtrack_eventlog::EventLogError::Internal(
                            e.to_string(),
                        ));
                    }
                }
            }
            if let Some(e) = failed {
                tracing::warn!(error = %e, "audit indexer lost its reader; resuming from its position");
                break;
            }
        }
        tokio::select! {
            () = tokio::time::sleep(backoff) => {}
            () = shutdown.wait() => return,
        }
        backoff = (backoff * 2).min(Duration::from_secs(5));
    }
}

/// Writes the heads of the tenants whose chains moved, every `checkpoint_every`.
async fn checkpoint_heads(
    audit: Audit,
    moved: Arc<std::sync::Mutex<BTreeMap<String, ()>>>,
    shutdown: Shutdown,
) {
    loop {
        tokio::select! {
            () = tokio::time::sleep(audit.config().checkpoint_every) => {}
            () = shutdown.wait() => return,
        }
        let tenants: Vec<String> = {
            let mut moved = moved.lock().unwrap_or_else(|e| e.into_inner());
            std::mem::take(&mut *moved).into_keys().collect()
        };
        for tenant in tenants {
            let Ok((index, hash)) = audit.index().head(&tenant) else {
                continue;
            };
            let value = format!("{index} {}", hex::encode(hash));
            if let Err(e) = audit.heads().put(&tenant, value.into_bytes().into()).await {
                tracing::warn!(tenant, error = %e, "could not checkpoint an audit chain head; will retry");
                moved
                    .lock()
                    .unwrap_or_else(|e| e.into_inner())
                    .insert(tenant, ());
            }
        }
    }
}
