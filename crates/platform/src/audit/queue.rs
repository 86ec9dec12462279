//! The background publisher: a bounded queue of records drained in batches into
//! `BT_AUDIT`, retried with backoff while the stream is unavailable (records keep their
//! ids, so a retry is stored once). When the queue is full, records are counted instead of
//! queued, and the count is published as one `security.accessDeniedDropped` record once
//! the stream keeps up again.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use backtrack_eventlog::audit::new_record;
use backtrack_eventlog::AuditLog;
use backtrack_proto::v1;
use tokio::sync::{mpsc, oneshot};

use super::{action, category, UNAUTHENTICATED_TENANT};

/// Records published together.
const MAX_BATCH: usize = 256;
const MAX_BACKOFF: Duration = Duration::from_secs(5);

struct Item {
    record: v1::AuditRecord,
    stored: Option<oneshot::Sender<()>>,
}

#[derive(Clone)]
pub(super) struct Queue {
    sender: mpsc::Sender<Item>,
    dropped: Arc<AtomicU64>,
}

impl Queue {
    /// Starts the publisher task; it ends when every clone of the queue is gone.
    pub(super) fn start(log: AuditLog, capacity: usize) -> Self {
        let (sender, receiver) = mpsc::channel(capacity.max(1));
        let dropped = Arc::new(AtomicU64::new(0));
        tokio::spawn(run(log, receiver, dropped.clone()));
        Self { sender, dropped }
    }

    /// Queues `record`; `false` (and counted) when the queue is full.
    pub(super) fn push(
        &self,
        record: v1::AuditRecord,
        stored: Option<oneshot::Sender<()>>,
    ) -> bool {
        match self.sender.try_send(Item { record, stored }) {
            Ok(()) => true,
            Err(mpsc::error::TrySendError::Full(item)) => {
                self.dropped.fetch_add(1, Ordering::Relaxed);
                tracing::warn!(action = %item.record.action, tenant = %item.record.tenant, "audit queue full; record counted, not stored");
                false
            }
            Err(mpsc::error::TrySendError::Closed(item)) => {
                tracing::error!(record = ?item.record, "audit publisher stopped; record not stored");
                false
            }
        }
    }

    /// Queues `record` and waits until it is stored, at most `limit`.
    pub(super) async fn push_and_wait(&self, record: v1::AuditRecord, limit: Duration) {
        let (stored, wait) = oneshot::channel();
        if self.push(record, Some(stored)) {
            let _ = tokio::time::timeout(limit, wait).await;
        }
    }
}

async fn run(log: AuditLog, mut receiver: mpsc::Receiver<Item>, dropped: Arc<AtomicU64>) {
    let mut batch = Vec::with_capacity(MAX_BATCH);
    loop {
        if receiver.recv_many(&mut batch, MAX_BATCH).await == 0 {
            return;
        }
        let mut records: Vec<v1::AuditRecord> = batch.iter().map(|i| i.record.clone()).collect();
        let lost = dropped.swap(0, Ordering::Relaxed);
        if lost > 0 {
            records.push(dropped_summary(lost));
        }
        publish_until_stored(&log, &records).await;
        for item in batch.drain(..) {
            if let Some(stored) = item.stored {
                let _ = stored.send(());
            }
        }
    }
}

/// Publishes `records`, retrying while the stream is unavailable. A record the stream
/// refuses for good (too large) is logged and given up.
async fn publish_until_stored(log: &AuditLog, records: &[v1::AuditRecord]) {
    let mut backoff = Duration::from_millis(100);
    loop {
        match log.publish(records).await {
            Ok(()) => return,
            Err(e) if e.is_transient() => {
                tracing::warn!(error = %e, records = records.len(), "audit records not stored yet; retrying");
                tokio::time::sleep(backoff).await;
                backoff = (backoff * 2).min(MAX_BACKOFF);
            }
            Err(e) => {
                tracing::error!(error = %e, records = ?records, "audit records refused by the stream; giving up");
                return;
            }
        }
    }
}

fn dropped_summary(count: u64) -> v1::AuditRecord {
    let mut record = new_record(
        UNAUTHENTICATED_TENANT,
        category::SECURITY,
        action::DENIALS_DROPPED,
    );
    record.result = Some(v1::AuditResult {
        success: false,
        reason: format!(
            "{count} audit record(s) were not stored one by one: more arrived than the audit stream took"
        ),
    });
    record.details_json =
        backtrack_domain::canonical::to_canonical_string(&serde_json::json!({ "dropped": count }));
    record
}
