//! Where reports live: job records in the KV bucket `bt-jobs` (any replica can answer),
//! the one-job-per-tenant lease in `bt-leases` (a create-only key that expires unless
//! refreshed), and finished reports' items in the object store bucket `bt-reports`.

use std::time::Duration;

use async_nats::jetstream::object_store::{self, ObjectStore};
use async_nats::jetstream::{self, kv};
use backtrack_eventlog::buckets::{kv_bucket, object_bucket};
use backtrack_proto::v1;
use futures::StreamExt;
use prost::Message;
use serde_json::Value;
use tokio::io::AsyncReadExt;

use crate::error::DifferError;
use crate::lease;
use crate::report::{Counts, Item};

pub const JOBS_BUCKET: &str = "bt-jobs";
pub const LEASES_BUCKET: &str = "bt-leases";
pub const REPORTS_BUCKET: &str = "bt-reports";
/// Chunks of stored reports at most: each is one acknowledged publish, so larger chunks
/// store a large report in fewer round trips. Smaller where the server's message limit
/// asks for it.
pub const REPORT_CHUNK_BYTES: usize = 512 * 1024;
/// A lease not refreshed for this long is free again (its holder died).
pub const LEASE_TTL: Duration = Duration::from_secs(30);

/// By default, an unfinished report record unwritten for this long, whose job holds no
/// lease, belongs to a job whose process stopped.
pub const RECORD_QUIET: Duration = Duration::from_secs(2);

/// The three buckets.
#[derive(Clone)]
pub struct JobStore {
    jobs: kv::Store,
    leases: kv::Store,
    reports: ObjectStore,
    /// [`REPORT_CHUNK_BYTES`], or less to fit the server's message limit.
    chunk_bytes: usize,
}

impl std::fmt::Debug for JobStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("JobStore").finish_non_exhaustive()
    }
}

fn unavailable(what: &str, e: impl std::fmt::Display) -> DifferError {
    DifferError::Unavailable(format!("{what}: {e}"))
}

impl JobStore {
    pub async fn open(js: &jetstream::Context, replicas: usize) -> Result<Self, DifferError> {
        let jobs = kv_bucket(js, JOBS_BUCKET, "Backtrack jobs", Duration::ZERO, replicas).await?;
        let leases = kv_bucket(
            js,
            LEASES_BUCKET,
            "Backtrack one-job-per-tenant leases",
            LEASE_TTL,
            replicas,
        )
        .await?;
        let reports =
            object_bucket(js, REPORTS_BUCKET, "Backtrack difference reports", replicas).await?;
        // Room for the chunk's headers and subject under the server's limit.
        let chunk_bytes =
            REPORT_CHUNK_BYTES.min(js.client().max_payload().saturating_sub(4096).max(4096));
        Ok(Self {
            jobs,
            leases,
            reports,
            chunk_bytes,
        })
    }

    pub async fn put_report(&self, report: &v1::Report) -> Result<(), DifferError> {
        self.jobs
            .put(
                report_key(&report.tenant, &report.id),
                report.encode_to_vec().into(),
            )
            .await
            .map_err(|e| unavailable("store a report record", e))?;
        Ok(())
    }

    pub async fn report(&self, tenant: &str, id: &str) -> Result<Option<v1::Report>, DifferError> {
        if !id.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-')
            || id.is_empty()
            || id.len() > 64
        {
            return Ok(None);
        }
        match self.jobs.get(report_key(tenant, id)).await {
            Ok(Some(bytes)) => v1::Report::decode(bytes.as_ref()).map(Some).map_err(|e| {
                DifferError::Internal(format!("report record {id} is unreadable: {e}"))
            }),
            Ok(None) => Ok(None),
            Err(e) => Err(unavailable("read a report record", e)),
        }
    }

    /// Marks an unfinished job failed, unless its record was written in the last `quiet`
    /// (a running job writes it twice a second; a finishing one may have handed its lease
    /// on a moment before storing its final record) or changes meanwhile; returns the
    /// record as it now stands.
    pub async fn fail_if_unchanged(
        &self,
        report: &v1::Report,
        reason: &str,
        quiet: Duration,
    ) -> Result<v1::Report, DifferError> {
        let key = report_key(&report.tenant, &report.id);
        let entry = self
            .jobs
            .entry(key.clone())
            .await
            .map_err(|e| unavailable("read a report record", e))?;
        let Some(entry) = entry else {
            return Ok(report.clone());
        };
        let current = v1::Report::decode(entry.value.as_ref()).map_err(|e| {
            DifferError::Internal(format!("report record {} is unreadable: {e}", report.id))
        })?;
        let unfinished = [
            v1::JobState::Initialized as i32,
            v1::JobState::Calculating as i32,
        ];
        let written_ms =
            i64::try_from(entry.created.unix_timestamp_nanos() / 1_000_000).unwrap_or(i64::MAX);
        let quiet_ms = backtrack_platform::clock::now_ms().saturating_sub(written_ms);
        if !unfinished.contains(&current.state) || quiet_ms < quiet.as_millis() as i64 {
            return Ok(current);
        }
        let failed = v1::Report {
            state: v1::JobState::Failed as i32,
            error: reason.to_string(),
            ..current
        };
        match self
            .jobs
            .update(key, failed.encode_to_vec().into(), entry.revision)
            .await
        {
            Ok(_) => Ok(failed),
            // Written meanwhile (the job finished): the newer record stands.
            Err(_) => self
                .report(&report.tenant, &report.id)
                .await
                .map(|r| r.unwrap_or(failed)),
        }
    }

    /// Asks whichever replica runs the report to stop it (it watches for this).
    pub async fn request_cancel(&self, tenant: &str, id: &str) -> Result<(), DifferError> {
        self.jobs
            .put(cancel_key(tenant, id), Vec::new().into())
            .await
            .map_err(|e| unavailable("store a cancel request", e))?;
        Ok(())
    }

    /// Cancel requests for one report, including one made before the watch started.
    pub async fn cancel_requests(&self, tenant: &str, id: &str) -> Result<kv::Watch, DifferError> {
        self.jobs
            .watch_with_history(cancel_key(tenant, id))
            .await
            .map_err(|e| unavailable("watch for cancel requests", e))
    }

    /// Every report record of every tenant.
    pub async fn all_reports(&self) -> Result<Vec<v1::Report>, DifferError> {
        let mut keys = self
            .jobs
            .keys()
            .await
            .map_err(|e| unavailable("list reports", e))?;
        let mut out = Vec::new();
        while let Some(key) = keys.next().await {
            let key = key.map_err(|e| unavailable("list reports", e))?;
            let Some(rest) = key.strip_prefix("report.") else {
                continue;
            };
            if let Some((tenant, id)) = rest.split_once('.') {
                if let Some(report) = self.report(tenant, id).await? {
                    out.push(report);
                }
            }
        }
        Ok(out)
    }

    /// Deletes a report's items and record.
    pub async fn delete_report(&self, report: &v1::Report) -> Result<(), DifferError> {
        let name = format!("{}/{}.json", report.tenant, report.id);
        if self.reports.info(&name).await.is_ok() {
            self.reports
                .delete(&name)
                .await
                .map_err(|e| unavailable("delete a report's items", e))?;
        }
        self.jobs
            .purge(report_key(&report.tenant, &report.id))
            .await
            .map_err(|e| unavailable("delete a report record", e))?;
        if let Ok(Some(_)) = self.jobs.get(cancel_key(&report.tenant, &report.id)).await {
            let _ = self
                .jobs
                .purge(cancel_key(&report.tenant, &report.id))
                .await;
        }
        Ok(())
    }

    /// Every report record of the tenant.
    pub async fn reports(&self, tenant: &str) -> Result<Vec<v1::Report>, DifferError> {
        let prefix = format!("report.{tenant}.");
        let mut keys = self
            .jobs
            .keys()
            .await
            .map_err(|e| unavailable("list reports", e))?;
        let mut out = Vec::new();
        while let Some(key) = keys.next().await {
            let key = key.map_err(|e| unavailable("list reports", e))?;
            if let Some(id) = key.strip_prefix(&prefix) {
                if let Some(report) = self.report(tenant, id).await? {
                    out.push(report);
                }
            }
        }
        out.sort_by_key(|r| r.created_at_ms);
        Ok(out)
    }

    /// The finished report's id for these two sequences and scope, if any.
    pub async fn cached(
        &self,
        tenant: &str,
        fingerprint: &str,
    ) -> Result<Option<String>, DifferError> {
        match self.jobs.get(format!("cache.{tenant}.{fingerprint}")).await {
            Ok(Some(bytes)) => Ok(Some(String::from_utf8_lossy(&bytes).into_owned())),
            Ok(None) => Ok(None),
            Err(e) => Err(unavailable("read the report cache", e)),
        }
    }

    pub async fn remember(
        &self,
        tenant: &str,
        fingerprint: &str,
        id: &str,
    ) -> Result<(), DifferError> {
        self.jobs
            .put(
                format!("cache.{tenant}.{fingerprint}"),
                id.to_string().into_bytes().into(),
            )
            .await
            .map_err(|e| unavailable("store the report cache", e))?;
        Ok(())
    }

    /// Takes the tenant's lease for `job`, or names the job that holds it.
    pub async fn acquire(
        &self,
        tenant: &str,
        job: &str,
    ) -> Result<Result<(), String>, DifferError> {
        match self
            .leases
            .create(tenant, job.to_string().into_bytes().into())
            .await
        {
            Ok(_) => Ok(Ok(())),
            Err(e) if e.kind() == kv::CreateErrorKind::AlreadyExists => {
                let current = match self.leases.entry(tenant).await {
                    Ok(Some(entry)) if entry.operation == kv::Operation::Put => entry,
                    // Released meanwhile: asking again is the caller's choice.
                    _ => return Ok(Err("another job".into())),
                };
                if lease::take_over_marked(&self.leases, tenant, &current, job)
                    .await
                    .is_some()
                {
                    return Ok(Ok(()));
                }
                Ok(Err(String::from_utf8_lossy(&current.value).into_owned()))
            }
            Err(e) => Err(unavailable("take the tenant's job lease", e)),
        }
    }

    /// Keeps the lease alive while the job runs.
    pub async fn refresh(&self, tenant: &str, job: &str) {
        if let Err(e) = self
            .leases
            .put(tenant, job.to_string().into_bytes().into())
            .await
        {
            tracing::warn!(tenant, job, error = %e, "could not refresh the job lease");
        }
    }

    /// Marks `job`'s lease finishing (see [`crate::lease`]); the revision to release.
    pub async fn mark_finishing(&self, tenant: &str, job: &str) -> Option<u64> {
        lease::mark_finishing(&self.leases, tenant, job).await
    }

    /// Deletes `job`'s lease (see [`lease::release_at`]).
    pub async fn release_at(&self, tenant: &str, revision: Option<u64>, job: &str) {
        lease::release_at(&self.leases, tenant, revision, job).await
    }

    pub async fn release(&self, tenant: &str) {
        if let Err(e) = self.leases.purge(tenant).await {
            tracing::warn!(tenant, error = %e, "could not release the job lease; it expires by itself");
        }
    }

    pub async fn lease_holder(&self, tenant: &str) -> Option<String> {
        self.leases
            .get(tenant)
            .await
            .ok()
            .flatten()
            .map(|b| String::from_utf8_lossy(&b).into_owned())
    }

    /// Stores a report's items as they are computed: `pieces` (in order) become one JSON
    /// array of the items' texts, written chunk by chunk while later pieces are still
    /// being computed. Returns how many items of each kind and change type went in. When
    /// the sender stops early (the computation failed or was cancelled), the items so far
    /// are stored all the same: delete them with [`JobStore::delete_items`].
    pub async fn put_items_streamed(
        &self,
        tenant: &str,
        id: &str,
        pieces: tokio::sync::mpsc::Receiver<Vec<Item>>,
    ) -> Result<Counts, DifferError> {
        let meta = object_store::ObjectMetadata {
            name: format!("{tenant}/{id}.json"),
            chunk_size: Some(self.chunk_bytes),
            ..Default::default()
        };
        let mut reader = PiecesReader::new(pieces, self.chunk_bytes);
        self.reports
            .put(meta, &mut reader)
            .await
            .map_err(|e| unavailable("store the report's items", e))?;
        Ok(reader.counts)
    }

    /// Deletes a report's stored items, if any.
    pub async fn delete_items(&self, tenant: &str, id: &str) -> Result<(), DifferError> {
        let name = format!("{tenant}/{id}.json");
        if self.reports.info(&name).await.is_ok() {
            self.reports
                .delete(&name)
                .await
                .map_err(|e| unavailable("delete a report's items", e))?;
        }
        Ok(())
    }

    pub async fn items(&self, tenant: &str, id: &str) -> Result<Vec<Value>, DifferError> {
        let mut object = self
            .reports
            .get(format!("{tenant}/{id}.json"))
            .await
            .map_err(|e| unavailable("read the report's items", e))?;
        let mut bytes = Vec::new();
        object
            .read_to_end(&mut bytes)
            .await
            .map_err(|e| unavailable("read the report's items", e))?;
        serde_json::from_slice(&bytes)
            .map_err(|e| DifferError::Internal(format!("report {id} items: {e}")))
    }
}

fn report_key(tenant: &str, id: &str) -> String {
    format!("report.{tenant}.{id}")
}

fn cancel_key(tenant: &str, id: &str) -> String {
    format!("cancel.{tenant}.{id}")
}

/// The items arriving on a channel as the bytes of one JSON array, handed out in pieces
/// of at least `chunk` bytes (the object store publishes each read as one chunk).
struct PiecesReader {
    pieces: tokio::sync::mpsc::Receiver<Vec<Item>>,
    chunk: usize,
    buffer: Vec<u8>,
    /// How much of `buffer` has been read.
    read: usize,
    started: bool,
    closed: bool,
    /// What went in (the items themselves are dropped once written).
    counts: Counts,
}

impl PiecesReader {
    fn new(pieces: tokio::sync::mpsc::Receiver<Vec<Item>>, chunk: usize) -> Self {
        Self {
            pieces,
            chunk: chunk.max(1),
            buffer: Vec::with_capacity(chunk.max(1) * 2),
            read: 0,
            started: false,
            closed: false,
            counts: Counts::default(),
        }
    }

    fn append(&mut self, items: Vec<Item>) {
        for item in items {
            self.buffer.push(if self.started { b',' } else { b'[' });
            self.started = true;
            self.buffer.extend_from_slice(&item.json);
            self.counts.add(&item);
        }
    }
}

impl tokio::io::AsyncRead for PiecesReader {
    fn poll_read(
        self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
        out: &mut tokio::io::ReadBuf<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        use std::task::Poll;
        let this = self.get_mut();
        loop {
            let ready = this.buffer.len() - this.read;
            if ready >= this.chunk || (this.closed && ready > 0) {
                let n = ready.min(out.remaining());
                out.put_slice(&this.buffer[this.read..this.read + n]);
                this.read += n;
                if this.read == this.buffer.len() {
                    this.buffer.clear();
                    this.read = 0;
                }
                return Poll::Ready(Ok(()));
            }
            if this.closed {
                return Poll::Ready(Ok(()));
            }
            match this.pieces.poll_recv(cx) {
                Poll::Ready(Some(items)) => this.append(items),
                Poll::Ready(None) => {
                    this.closed = true;
                    this.buffer
                        .extend_from_slice(if this.started { b"]" } else { b"[]" });
                }
                Poll::Pending => return Poll::Pending,
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use backtrack_domain::diff::ChangeType;
    use backtrack_domain::ObjectKind;
    use tokio::io::AsyncReadExt;

    use super::*;

    fn item(n: u32) -> Item {
        Item {
            object_id: n.to_string(),
            kind: ObjectKind::User,
            change_type: ChangeType::Modified,
            json: format!("{{\"n\":{n},\"pad\":\"{}\"}}", "x".repeat(20)).into_bytes(),
        }
    }

    /// Everything `pieces` turn into, read as the object store reads: whole chunks.
    async fn read_all(pieces: Vec<Vec<Item>>, chunk: usize) -> (Vec<Vec<u8>>, Counts) {
        let (send, receive) = tokio::sync::mpsc::channel(8);
        for piece in pieces {
            send.send(piece).await.unwrap();
        }
        drop(send);
        let mut reader = PiecesReader::new(receive, chunk);
        let mut reads = Vec::new();
        loop {
            let mut buffer = vec![0u8; chunk];
            let n = reader.read(&mut buffer).await.unwrap();
            if n == 0 {
                break;
            }
            buffer.truncate(n);
            reads.push(buffer);
        }
        (reads, reader.counts)
    }

    #[tokio::test]
    async fn pieces_become_one_json_array_in_whole_chunks() {
        let (reads, stored) =
            read_all(vec![vec![item(1), item(2)], vec![], vec![item(3)]], 16).await;
        let bytes: Vec<u8> = reads.concat();
        let value: Value = serde_json::from_slice(&bytes).unwrap();
        let numbers: Vec<u64> = value
            .as_array()
            .unwrap()
            .iter()
            .map(|v| v["n"].as_u64().unwrap())
            .collect();
        assert_eq!(numbers, [1, 2, 3]);
        let (last, whole) = reads.split_last().unwrap();
        assert!(whole.iter().all(|r| r.len() == 16), "{reads:?}");
        assert!(!last.is_empty() && last.len() <= 16);
        assert_eq!(
            stored.by_name().into_iter().collect::<Vec<_>>(),
            [(("user".to_string(), "modified".to_string()), 3)]
        );

        let (reads, stored) = read_all(Vec::new(), 16).await;
        assert_eq!(reads.concat(), b"[]");
        assert_eq!(stored.total(), 0);
    }
}
