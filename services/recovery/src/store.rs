//! Where recovery jobs live in NATS: job records in the KV bucket `bt-recoveries` (any
//! replica can answer; the record is the job's checkpoint), each job's failed and skipped
//! changes beside it, cancel requests, the plans in the object store `bt-recovery-plans`,
//! and the one-job-per-tenant lease in `bt-leases`, shared with difference reports.

use std::time::Duration;

use async_nats::jetstream::object_store::{self, ObjectStore};
use async_nats::jetstream::{self, kv};
use backtrack_differ::lease;
use backtrack_domain::recovery::Plan;
use backtrack_eventlog::buckets::{kv_bucket, object_bucket};
use backtrack_proto::v1;
use futures::StreamExt;
use prost::Message;
use tokio::io::AsyncReadExt;

use crate::error::RecoveryError;

pub const JOBS_BUCKET: &str = "bt-recoveries";
pub const PLANS_BUCKET: &str = "bt-recovery-plans";
/// The lease bucket of the differ: one report or recovery job per tenant.
pub const LEASES_BUCKET: &str = backtrack_differ::jobs::LEASES_BUCKET;
/// Failed and skipped changes kept per job (the counts cover all of them).
pub const MAX_LISTED_FAILURES: usize = 5_000;

#[derive(Clone)]
pub struct JobStore {
    jobs: kv::Store,
    leases: kv::Store,
    plans: ObjectStore,
}

impl std::fmt::Debug for JobStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("JobStore").finish_non_exhaustive()
    }
}

fn unavailable(what: &str, e: impl std::fmt::Display) -> RecoveryError {
    RecoveryError::Unavailable(format!("{what}: {e}"))
}

/// Whether `id` could be a job id (UUID text); anything else names no job.
pub fn plausible_id(id: &str) -> bool {
    !id.is_empty() && id.len() <= 64 && id.bytes().all(|b| b.is_ascii_hexdigit() || b == b'-')
}

impl JobStore {
    pub async fn open(js: &jetstream::Context, replicas: usize) -> Result<Self, RecoveryError> {
        let jobs = kv_bucket(
            js,
            JOBS_BUCKET,
            "Backtrack recovery jobs",
            Duration::ZERO,
            replicas,
        )
        .await?;
        let leases = kv_bucket(
            js,
            LEASES_BUCKET,
            "Backtrack one-job-per-tenant leases",
            backtrack_differ::jobs::LEASE_TTL,
            replicas,
        )
        .await?;
        let plans = object_bucket(js, PLANS_BUCKET, "Backtrack recovery plans", replicas).await?;
        Ok(Self {
            jobs,
            leases,
            plans,
        })
    }

    pub async fn put_job(&self, job: &v1::RecoveryJob) -> Result<(), RecoveryError> {
        self.jobs
            .put(job_key(&job.tenant, &job.id), job.encode_to_vec().into())
            .await
            .map_err(|e| unavailable("store a recovery job record", e))?;
        Ok(())
    }

    pub async fn job(
        &self,
        tenant: &str,
        id: &str,
    ) -> Result<Option<v1::RecoveryJob>, RecoveryError> {
        if !plausible_id(id) {
            return Ok(None);
        }
        match self.jobs.get(job_key(tenant, id)).await {
            Ok(Some(bytes)) => v1::RecoveryJob::decode(bytes.as_ref())
                .map(Some)
                .map_err(|e| {
                    RecoveryError::Internal(format!("recovery job record {id} is unreadable: {e}"))
                }),
            Ok(None) => Ok(None),
            Err(e) => Err(unavailable("read a recovery job record", e)),
        }
    }

    /// Every job record of every tenant (for resuming interrupted jobs).
    pub async fn all_jobs(&self) -> Result<Vec<v1::RecoveryJob>, RecoveryError> {
        self.jobs_with_prefix("job.").await
    }

    pub async fn jobs(&self, tenant: &str) -> Result<Vec<v1::RecoveryJob>, RecoveryError> {
        let mut jobs = self.jobs_with_prefix(&format!("job.{tenant}.")).await?;
        jobs.sort_by(|a, b| a.created_at_ms.cmp(&b.created_at_ms).then(a.id.cmp(&b.id)));
        Ok(jobs)
    }

    async fn jobs_with_prefix(&self, prefix: &str) -> Result<Vec<v1::RecoveryJob>, RecoveryError> {
        let mut keys = self
            .jobs
            .keys()
            .await
            .map_err(|e| unavailable("list recovery jobs", e))?;
        let mut wanted = Vec::new();
        while let Some(key) = keys.next().await {
            let key = key.map_err(|e| unavailable("list recovery jobs", e))?;
            if key.starts_with(prefix) {
                wanted.push(key);
            }
        }
        let mut out = Vec::with_capacity(wanted.len());
        for key in wanted {
            if let Ok(Some(bytes)) = self.jobs.get(&key).await {
                if let Ok(job) = v1::RecoveryJob::decode(bytes.as_ref()) {
                    out.push(job);
                }
            }
        }
        Ok(out)
    }

    pub async fn put_failures(
        &self,
        tenant: &str,
        id: &str,
        changes: &[v1::FailedChange],
    ) -> Result<(), RecoveryError> {
        let listed = &changes[..changes.len().min(MAX_LISTED_FAILURES)];
        let value = v1::ListFailedChangesResponse {
            changes: listed.to_vec(),
        };
        self.jobs
            .put(failures_key(tenant, id), value.encode_to_vec().into())
            .await
            .map_err(|e| unavailable("store a job's failed changes", e))?;
        Ok(())
    }

    pub async fn failures(
        &self,
        tenant: &str,
        id: &str,
    ) -> Result<Vec<v1::FailedChange>, RecoveryError> {
        match self.jobs.get(failures_key(tenant, id)).await {
            Ok(Some(bytes)) => v1::ListFailedChangesResponse::decode(bytes.as_ref())
                .map(|r| r.changes)
                .map_err(|e| RecoveryError::Internal(format!("failed changes of {id}: {e}"))),
            Ok(None) => Ok(Vec::new()),
            Err(e) => Err(unavailable("read a job's failed changes", e)),
        }
    }

    /// Records who asked to cancel the job; the runner stops at its next checkpoint.
    pub async fn request_cancel(
        &self,
        tenant: &str,
        id: &str,
        by: &str,
    ) -> Result<(), RecoveryError> {
        self.jobs
            .put(cancel_key(tenant, id), by.to_string().into_bytes().into())
            .await
            .map_err(|e| unavailable("store a cancel request", e))?;
        Ok(())
    }

    pub async fn cancel_requested(
        &self,
        tenant: &str,
        id: &str,
    ) -> Result<Option<String>, RecoveryError> {
        self.jobs
            .get(cancel_key(tenant, id))
            .await
            .map(|v| v.map(|b| String::from_utf8_lossy(&b).into_owned()))
            .map_err(|e| unavailable("read a cancel request", e))
    }

    pub async fn put_plan(&self, tenant: &str, id: &str, plan: &Plan) -> Result<(), RecoveryError> {
        let bytes = serde_json::to_vec(plan).map_err(|e| RecoveryError::Internal(e.to_string()))?;
        self.plans
            .put(
                format!("{tenant}/{id}.json").as_str(),
                &mut bytes.as_slice(),
            )
            .await
            .map_err(|e| unavailable("store the recovery plan", e))?;
        Ok(())
    }

    pub async fn plan(&self, tenant: &str, id: &str) -> Result<Option<Plan>, RecoveryError> {
        let mut object = match self.plans.get(format!("{tenant}/{id}.json")).await {
            Ok(object) => object,
            Err(e) if e.kind() == object_store::GetErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(unavailable("read the recovery plan", e)),
        };
        let mut bytes = Vec::new();
        object
            .read_to_end(&mut bytes)
            .await
            .map_err(|e| unavailable("read the recovery plan", e))?;
        serde_json::from_slice(&bytes)
            .map(Some)
            .map_err(|e| RecoveryError::Internal(format!("recovery plan of {id}: {e}")))
    }

    /// Takes the tenant's lease with `value` (which starts with `holder`, e.g.
    /// `recovery <id>`): when free, when another job has marked it finishing, or when held
    /// by the same job but not refreshed for `stale_after` (its runner died). Returns the
    /// lease's revision, or the current holder.
    pub async fn acquire(
        &self,
        tenant: &str,
        value: &str,
        holder: &str,
        stale_after: Duration,
    ) -> Result<Result<u64, String>, RecoveryError> {
        match self
            .leases
            .create(tenant, value.to_string().into_bytes().into())
            .await
        {
            Ok(revision) => return Ok(Ok(revision)),
            Err(e) if e.kind() == kv::CreateErrorKind::AlreadyExists => {}
            Err(e) => return Err(unavailable("take the tenant's job lease", e)),
        }
        let entry = self
            .leases
            .entry(tenant)
            .await
            .map_err(|e| unavailable("read the tenant's job lease", e))?;
        let Some(entry) = entry else {
            return Ok(Err("another job".into()));
        };
        let current = String::from_utf8_lossy(&entry.value).into_owned();
        let written_ms =
            i64::try_from(entry.created.unix_timestamp_nanos() / 1_000_000).unwrap_or(i64::MAX);
        let age_ms = backtrack_platform::clock::now_ms().saturating_sub(written_ms);
        let stale = age_ms > i64::try_from(stale_after.as_millis()).unwrap_or(i64::MAX);
        let same_job = current == holder || current.starts_with(&format!("{holder} "));
        // Marked by a job that has done its work: the next job may have it at once.
        if !same_job && lease::is_marked(&current) {
            return Ok(lease::take_over_marked(&self.leases, tenant, &entry, value)
                .await
                .ok_or(current));
        }
        if same_job && stale {
            return match self
                .leases
                .update(
                    tenant,
                    value.to_string().into_bytes().into(),
                    entry.revision,
                )
                .await
            {
                Ok(revision) => Ok(Ok(revision)),
                Err(_) => Ok(Err(current)),
            };
        }
        Ok(Err(current))
    }

    pub(crate) async fn lease_entry_raw(&self, tenant: &str) -> Option<(String, u64)> {
        let entry = self.leases.entry(tenant).await.ok()??;
        if entry.operation != kv::Operation::Put {
            return None;
        }
        Some((
            String::from_utf8_lossy(&entry.value).into_owned(),
            entry.revision,
        ))
    }

    /// Renews the lease if this holder still has it (compare-and-set on `revision`);
    /// `None` when it was lost.
    pub async fn refresh(&self, tenant: &str, value: &str, revision: u64) -> Option<u64> {
        self.leases
            .update(tenant, value.to_string().into_bytes().into(), revision)
            .await
            .ok()
    }

    /// Marks the job's lease `value` finishing (see [`backtrack_differ::lease`]); the
    /// revision to release.
    pub async fn mark_finishing(&self, tenant: &str, value: &str) -> Option<u64> {
        lease::mark_finishing(&self.leases, tenant, value).await
    }

    /// Deletes the lease `value` holds (see [`lease::release_at`]).
    pub async fn release_at(&self, tenant: &str, revision: Option<u64>, value: &str) {
        lease::release_at(&self.leases, tenant, revision, value).await
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
}

fn job_key(tenant: &str, id: &str) -> String {
    format!("job.{tenant}.{id}")
}

fn failures_key(tenant: &str, id: &str) -> String {
    format!("failed.{tenant}.{id}")
}

fn cancel_key(tenant: &str, id: &str) -> String {
    format!("cancel.{tenant}.{id}")
}
