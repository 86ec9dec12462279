//! The background publisher: a bounded queue of records drained in batches into
//! `BT_AUDIT`, retried with backoff while the stream is unavailable (records keep their
//! ids, so a retry is stored once). When the queue is full, records are counted instead of
//! queued, and the count is published as one `security.accessDeniedDropped` record once
//! the stream keeps up again.
//!
//! With a spool folder, every queued record is also kept there as a file until the stream
//! acknowledges it, so records queued by a process that dies (while NATS is unreachable,
//! say) are published when it starts again; their ids make the stream store them once.
//! The count of dropped records is kept there too (`dropped.count`: the summary's id and
//! the count), and moves into a spooled summary record under one lock, so a count is
//! neither lost with the process nor summarised twice.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
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
                match &self.spool {
                    Some(spool) => {
                        spool.count_dropped(&self.dropped);
                        spool.done(&item.record.id);
                    }
                    None => {
                        self.dropped.fetch_add(1, Ordering::Relaxed);
                    }
                }
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
        let summary = match &spool {
            Some(spool) => spool.take_dropped(&dropped),
            None => {
                let lost = dropped.swap(0, Ordering::Relaxed);
                (lost > 0).then(|| dropped_summary(lost, None))
            }
        };
        records.extend(summary.clone());
        publish_until_stored(&log, &records).await;
        if let (Some(spool), Some(summary)) = (&spool, &summary) {
            spool.done(&summary.id);
        }
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

/// The summary of `count` dropped records; `id` names it when it must keep a given id
/// (one the spool's count file chose).
fn dropped_summary(count: u64, id: Option<&str>) -> v1::AuditRecord {
    let mut record = new_record(
        UNAUTHENTICATED_TENANT,
        category::SECURITY,
        action::DENIALS_DROPPED,
    );
    if let Some(id) = id {
        record.id = id.to_string();
    }
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
    /// The id the next summary of dropped records takes, chosen with the first drop it
    /// counts; held while the count and its file change together.
    summary_id: Mutex<Option<String>>,
}

/// The file holding the summary id and the count of dropped records not yet summarised.
const DROPPED_FILE: &str = "dropped.count";

impl Spool {
    /// Opens (creating it if needed) the spool folder `dir`. A count of dropped records
    /// left by an earlier run becomes a spooled summary record, published with the rest.
    pub(super) fn open(dir: &Path) -> std::io::Result<Self> {
        std::fs::create_dir_all(dir)?;
        let spool = Self {
            dir: dir.to_path_buf(),
            summary_id: Mutex::new(None),
        };
        let left = spool.dir.join(DROPPED_FILE);
        match std::fs::read_to_string(&left) {
            Ok(text) => {
                match text
                    .split_once(' ')
                    .and_then(|(id, n)| Some((id, n.trim().parse::<u64>().ok()?)))
                {
                    Some((id, count)) if count > 0 => spool.keep(&dropped_summary(count, Some(id))),
                    Some(_) => {}
                    None => {
                        tracing::error!(file = %left.display(), "unreadable count of dropped audit records; set aside")
                    }
                }
                // Kept as a record first: a crash in between makes the same record (same
                // id) again, which the stream stores once.
                std::fs::remove_file(&left)?;
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => return Err(e),
        }
        Ok(spool)
    }

    /// Counts one dropped record in `dropped` and in the count file.
    fn count_dropped(&self, dropped: &AtomicU64) {
        let mut id = self.summary_id.lock().unwrap_or_else(|e| e.into_inner());
        let count = dropped.fetch_add(1, Ordering::Relaxed) + 1;
        let id = id.get_or_insert_with(|| uuid::Uuid::now_v7().to_string());
        let path = self.dir.join(DROPPED_FILE);
        let partial = path.with_extension("partial");
        let written = std::fs::write(&partial, format!("{id} {count}\n"))
            .and_then(|()| std::fs::rename(&partial, &path));
        if let Err(e) = written {
            tracing::error!(error = %e, dir = %self.dir.display(), "cannot spool the count of dropped audit records; it is kept in memory only");
        }
    }

    /// Moves the count of dropped records into a spooled summary record (`None` when
    /// nothing was dropped); the caller publishes it and then calls [`Spool::done`].
    fn take_dropped(&self, dropped: &AtomicU64) -> Option<v1::AuditRecord> {
        let mut id = self.summary_id.lock().unwrap_or_else(|e| e.into_inner());
        let count = dropped.swap(0, Ordering::Relaxed);
        if count == 0 {
            return None;
        }
        let summary = dropped_summary(count, id.take().as_deref());
        self.keep(&summary);
        match std::fs::remove_file(self.dir.join(DROPPED_FILE)) {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => {
                tracing::warn!(error = %e, "cannot remove the count of dropped audit records")
            }
        }
        Some(summary)
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
