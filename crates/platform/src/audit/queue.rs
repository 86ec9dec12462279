//! The background publisher: a bounded queue of records drained in batches into
//! `BT_AUDIT`, retried with backoff while the stream is unavailable (records keep their
//! ids, so a retry is stored once). When the queue is full, records are counted instead of
//! queued, and the count is published as one `security.accessDeniedDropped` record once
//! the stream keeps up again.
//!
//! With a spool folder, every queued record is also kept there as a file until the stream
//! acknowledges it, so records queued by a process that dies (while NATS is unreachable,
//! say) are published when it starts again; their ids make the stream store them once.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use backtrack_eventlog::audit::new_record;
use backtrack_eventlog::AuditLog;
use backtrack_proto::v1;
use prost::Message as _;
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
    spool: Option<Arc<Spool>>,
}

impl Queue {
    /// Starts the publisher task; it ends when every clone of the queue is gone. Records
    /// left in `spool` by an earlier run are published first.
    pub(super) fn start(log: AuditLog, capacity: usize, spool: Option<Spool>) -> Self {
        let (sender, receiver) = mpsc::channel(capacity.max(1));
        let dropped = Arc::new(AtomicU64::new(0));
        let spool = spool.map(Arc::new);
        tokio::spawn(run(log, receiver, dropped.clone(), spool.clone()));
        Self {
            sender,
            dropped,
            spool,
        }
    }

    /// Queues `record`; `false` (and counted) when the queue is full.
    pub(super) fn push(
        &self,
        record: v1::AuditRecord,
        stored: Option<oneshot::Sender<()>>,
    ) -> bool {
        if let Some(spool) = &self.spool {
            spool.keep(&record);
        }
        match self.sender.try_send(Item { record, stored }) {
            Ok(()) => true,
            Err(mpsc::error::TrySendError::Full(item)) => {
                if let Some(spool) = &self.spool {
                    spool.done(&item.record.id);
                }
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

async fn run(
    log: AuditLog,
    mut receiver: mpsc::Receiver<Item>,
    dropped: Arc<AtomicU64>,
    spool: Option<Arc<Spool>>,
) {
    if let Some(spool) = &spool {
        let left = spool.load();
        if !left.is_empty() {
            tracing::info!(
                records = left.len(),
                "publishing audit records an earlier run left queued"
            );
        }
        for chunk in left.chunks(MAX_BATCH) {
            publish_until_stored(&log, chunk).await;
            for record in chunk {
                spool.done(&record.id);
            }
        }
    }
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
            if let Some(spool) = &spool {
                spool.done(&item.record.id);
            }
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

/// A folder holding one file per queued record (`<hex of its id>.pb`, the record's
/// protobuf encoding), written before the record is queued and removed once the stream
/// has it.
#[derive(Debug)]
pub(super) struct Spool {
    dir: PathBuf,
}

impl Spool {
    /// Opens (creating it if needed) the spool folder `dir`.
    pub(super) fn open(dir: &Path) -> std::io::Result<Self> {
        std::fs::create_dir_all(dir)?;
        Ok(Self {
            dir: dir.to_path_buf(),
        })
    }

    fn path(&self, id: &str) -> PathBuf {
        let name: String = id.bytes().map(|b| format!("{b:02x}")).collect();
        self.dir.join(format!("{name}.pb"))
    }

    /// Keeps `record` until [`Spool::done`]; written aside and renamed, so a crash never
    /// leaves half a record.
    fn keep(&self, record: &v1::AuditRecord) {
        let path = self.path(&record.id);
        let partial = path.with_extension("partial");
        let written = std::fs::write(&partial, record.encode_to_vec())
            .and_then(|()| std::fs::rename(&partial, &path));
        if let Err(e) = written {
            tracing::error!(error = %e, dir = %self.dir.display(), action = %record.action, "cannot spool an audit record; it is kept in memory only");
        }
    }

    fn done(&self, id: &str) {
        match std::fs::remove_file(self.path(id)) {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => {
                tracing::warn!(error = %e, "cannot remove a stored audit record from the spool")
            }
        }
    }

    /// Every record left by an earlier run, oldest file first; unreadable files are
    /// logged and set aside (renamed `.bad`).
    fn load(&self) -> Vec<v1::AuditRecord> {
        let Ok(entries) = std::fs::read_dir(&self.dir) else {
            return Vec::new();
        };
        let mut files: Vec<(std::time::SystemTime, PathBuf)> = entries
            .filter_map(Result::ok)
            .map(|e| e.path())
            .filter(|p| p.extension().is_some_and(|x| x == "pb"))
            .map(|p| {
                let modified = std::fs::metadata(&p)
                    .and_then(|m| m.modified())
                    .unwrap_or(std::time::UNIX_EPOCH);
                (modified, p)
            })
            .collect();
        files.sort();
        let mut records = Vec::with_capacity(files.len());
        for (_, path) in files {
            match std::fs::read(&path)
                .map_err(|e| e.to_string())
                .and_then(|bytes| {
                    v1::AuditRecord::decode(bytes.as_slice()).map_err(|e| e.to_string())
                }) {
                Ok(record) => records.push(record),
                Err(e) => {
                    tracing::error!(error = %e, file = %path.display(), "unreadable spooled audit record; set aside");
                    let _ = std::fs::rename(&path, path.with_extension("bad"));
                }
            }
        }
        records
    }
}
