//! The recovery service: jobs that bring a tenant's objects back to the state they had at
//! a backup, an instant, or a difference report's base.
//!
//! A job resolves its point, takes the tenant's lease (one report or recovery job per
//! tenant), takes a `preRecovery` backup, plans (the domain's ordered plan over the objects
//! the change index names), then applies the plan in batches through the directory, each
//! operation under a deterministic mutation id (`<job>-<index>`) so a retry is deduplicated
//! by the log. After each batch the operations' audit records are acknowledged on
//! `BT_AUDIT`, and only then the job record — the checkpoint — advances. A job whose
//! process died is resumed by any replica once its lease goes stale. At the end the job
//! diffs the scope against the point again and records the residual.
//!
//! Modules: [`planner`] (plans and residuals from the time-travel store), `resolve` (what
//! a request recovers to, over what, and whose changes), [`runner`] (applying,
//! checkpoints), [`lease`] (the tenant's lease kept while a job runs, resuming jobs whose
//! runner died), [`records`] (the jobs' audit records), [`remote`] (the
//! directory service over gRPC, when recovery runs in its own process), [`store`] (the
//! buckets), [`api`] (the gRPC `RecoveryService`), [`error`].

pub mod api;
pub mod error;
pub mod lease;
pub mod planner;
pub mod records;
pub mod remote;
mod resolve;
pub mod runner;
pub mod store;

use std::collections::{BTreeSet, HashSet};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use backtrack_differ::{Differ, Scope};
use backtrack_directory::Directory;
use backtrack_domain::authorship::Authors;
use backtrack_domain::recovery::Plan;
use backtrack_domain::{validate, ObjectKind};
use backtrack_eventlog::AuditLog;
use backtrack_platform::clock::now_ms;
use backtrack_proto::v1;
use backtrack_snapshotter::Snapshotter;

pub use error::RecoveryError;
use store::JobStore;

/// Tunables of the recovery service.
#[derive(Debug, Clone)]
pub struct RecoveryConfig {
    /// Operations decided and appended together; one checkpoint per batch.
    pub batch_size: usize,
    /// A job's lease not refreshed for this long belongs to a dead process: another
    /// replica (or the restarted one) resumes the job.
    pub lease_stale_after: Duration,
    /// How often to look for interrupted jobs.
    pub resume_every: Duration,
    /// Whole-tenant jobs wait for a second GlobalAdministrator's approval.
    pub require_approval: bool,
    /// The directory service to apply batches through, when it runs in another process;
    /// `None`: the directory handed to [`Recovery::start`] applies them in process.
    pub directory: Option<remote::RemoteDirectory>,
}

impl Default for RecoveryConfig {
    fn default() -> Self {
        Self {
            batch_size: 1000,
            lease_stale_after: Duration::from_secs(5),
            resume_every: Duration::from_secs(2),
            require_approval: false,
            directory: None,
        }
    }
}

/// Where a job recovers to.
#[derive(Debug, Clone)]
pub enum Source {
    /// A finished difference report: its base point and its scope.
    Report(String),
    /// A backup id, an instant or a sequence.
    Point(v1::Point),
    /// Undoing a finished job: what it changed (its events, by correlation id) set back to
    /// what it found, over its scope; a later change by someone else to the same thing is
    /// a conflict.
    Undo(String),
}

/// What a caller asks for.
#[derive(Debug, Clone)]
pub struct RecoveryRequest {
    pub tenant: String,
    pub source: Source,
    pub kinds: Vec<ObjectKind>,
    /// Lower-case ids.
    pub ids: Vec<String>,
    pub on_conflict: v1::OnConflict,
    pub ca_report_only: bool,
    pub requested_by: String,
    /// Set back only what these actors changed after the point (a point source only).
    pub changed_by: Vec<String>,
}

/// Who asks, as the audit trail records it.
#[derive(Debug, Clone, Default)]
pub struct Requester {
    pub roles: Vec<String>,
    pub address: String,
}

/// A running recovery service. Cheap to clone.
#[derive(Clone)]
pub struct Recovery {
    inner: Arc<Inner>,
}

struct Inner {
    directory: Directory,
    differ: Differ,
    audit: AuditLog,
    jobs: JobStore,
    config: RecoveryConfig,
    /// Jobs this process runs.
    running: Mutex<HashSet<String>>,
}

impl std::fmt::Debug for Recovery {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Recovery").finish_non_exhaustive()
    }
}

/// A plan computed and not applied (a dry run).
#[derive(Debug)]
pub struct DryRun {
    pub point: v1::ResolvedPoint,
    pub plan: Plan,
    /// Object versions at this sequence count as unchanged: a report's target, or the
    /// sequence an undone job applied through.
    pub conflict_base: Option<u64>,
    /// Objects of the plan changed after the conflict base (changes a report does not
    /// show, or made after the job an undo undoes): a job overwrites them with a warning,
    /// or skips them with `OnConflict::Skip`.
    pub changed_after_base: BTreeSet<String>,
    /// Whose changes the plan sets back (empty: all).
    pub authors: Authors,
}

impl Recovery {
    /// Opens the buckets and the audit stream. Call [`Recovery::run_resumer`] to resume
    /// interrupted jobs.
    pub async fn start(
        directory: Directory,
        differ: Differ,
        nats: async_nats::Client,
        replicas: usize,
        config: RecoveryConfig,
    ) -> Result<Self, RecoveryError> {
        let js = async_nats::jetstream::new(nats.clone());
        let jobs = JobStore::open(&js, replicas).await?;
        let audit = AuditLog::open(nats, replicas).await?;
        Ok(Self {
            inner: Arc::new(Inner {
                directory,
                differ,
                audit,
                jobs,
                config,
                running: Mutex::default(),
            }),
        })
    }

    pub fn snapshotter(&self) -> &Snapshotter {
        self.inner.differ.snapshotter()
    }

    pub fn directory(&self) -> &Directory {
        &self.inner.directory
    }

    /// The ordered plan for `request`, applying nothing (a dry run).
    pub async fn plan(&self, request: &RecoveryRequest) -> Result<DryRun, RecoveryError> {
        let resolved = self.resolve(request).await?;
        let now = self.snapshotter().catch_up().await?;
        let planned = self
            .compute_plan(
                &request.tenant,
                &resolved.point,
                now,
                resolved.conflict_base,
                (&resolved.scope, &resolved.authors),
                (request.on_conflict, request.ca_report_only),
            )
            .await?;
        Ok(DryRun {
            point: resolved.point,
            plan: planned.plan,
            conflict_base: resolved.conflict_base,
            changed_after_base: planned.changed_after_base,
            authors: resolved.authors,
        })
    }

    /// The plan over `scope`, of the changes by `authors` only when there are any;
    /// `options`: what to do with conflicts, and whether policies come back report-only.
    async fn compute_plan(
        &self,
        tenant: &str,
        point: &v1::ResolvedPoint,
        now: u64,
        conflict_base: Option<u64>,
        (scope, authors): (&Scope, &Authors),
        (on_conflict, ca_report_only): (v1::OnConflict, bool),
    ) -> Result<planner::Planned, RecoveryError> {
        let store = self.snapshotter().store().clone();
        let (tenant, scope, authors, point) = (
            tenant.to_string(),
            scope.clone(),
            authors.clone(),
            point.sequence,
        );
        tokio::task::spawn_blocking(move || {
            let request = planner::Request {
                tenant: &tenant,
                point,
                now,
                conflict_base,
                scope: &scope,
                authors: &authors,
                keep_later: on_conflict == v1::OnConflict::Skip,
            };
            Ok(planner::plan(&store, &request, ca_report_only)?)
        })
        .await
        .map_err(|e| RecoveryError::Internal(format!("planning stopped: {e}")))?
    }

    /// Starts a job; it runs in the background. `Precondition` names the job that holds
    /// the tenant.
    pub async fn start_job(
        &self,
        request: RecoveryRequest,
    ) -> Result<v1::RecoveryJob, RecoveryError> {
        self.start_job_as(request, Requester::default()).await
    }

    /// Like [`Recovery::start_job`], recording the requester's roles and address.
    pub async fn start_job_as(
        &self,
        request: RecoveryRequest,
        requester: Requester,
    ) -> Result<v1::RecoveryJob, RecoveryError> {
        self.start_job_undoing(request, String::new(), requester)
            .await
    }

    async fn start_job_undoing(
        &self,
        request: RecoveryRequest,
        undo_of: String,
        requester: Requester,
    ) -> Result<v1::RecoveryJob, RecoveryError> {
        let resolved = self.resolve(&request).await?;
        let tenant = request.tenant.clone();
        let id = uuid::Uuid::now_v7().to_string();
        // Some actors' changes are not the whole tenant; an undo's (one job's changes) of a
        // whole-tenant job is, as the job was.
        let whole_tenant = resolved.scope.kinds.is_empty()
            && resolved.scope.ids.is_empty()
            && resolved.authors.actors.is_empty();
        let mut job = v1::RecoveryJob {
            id: id.clone(),
            tenant: tenant.clone(),
            state: v1::RecoveryState::RecoveryInitialized as i32,
            point: Some(resolved.point),
            report_id: resolved.report_id,
            scope: Some(v1::RecoveryScope {
                kinds: resolved
                    .scope
                    .kinds
                    .iter()
                    .map(|k| k.as_str().to_string())
                    .collect(),
                ids: resolved.scope.ids.clone(),
                changed_by: resolved.authors.actors.iter().cloned().collect(),
                changes_of_job: resolved.authors.job.clone().unwrap_or_default(),
            }),
            on_conflict: request.on_conflict as i32,
            ca_report_only: request.ca_report_only,
            undo_of,
            created_at_ms: now_ms(),
            requested_by: request.requested_by,
            conflict_base_sequence: resolved.conflict_base.unwrap_or_default(),
            requester_roles: requester.roles,
            requester_address: requester.address,
            ..Default::default()
        };
        if whole_tenant && self.inner.config.require_approval {
            // Nothing runs, and the tenant stays free, until a second administrator says so.
            job.state = v1::RecoveryState::RecoveryAwaitingApproval as i32;
            self.publish_job_record(&job, "recovery.approvalRequested", "approvalRequested")
                .await?;
            self.inner.jobs.put_job(&job).await?;
            return Ok(job);
        }
        self.launch(job).await
    }

    /// Takes the tenant's lease for `job`, stores the record and starts running it.
    async fn launch(&self, job: v1::RecoveryJob) -> Result<v1::RecoveryJob, RecoveryError> {
        let (tenant, id) = (job.tenant.clone(), job.id.clone());
        let value = lease::lease_value(&id);
        let revision = match self
            .inner
            .jobs
            .acquire(
                &tenant,
                &value,
                &lease::holder(&id),
                self.inner.config.lease_stale_after,
            )
            .await?
        {
            Ok(revision) => revision,
            Err(other) => {
                return Err(RecoveryError::Precondition(format!(
                    "{other} is running for tenant {tenant}; one report or recovery job runs per tenant at a time: wait for it, or cancel it"
                )))
            }
        };
        if let Err(e) = self.inner.jobs.put_job(&job).await {
            self.inner.jobs.release(&tenant).await;
            return Err(e);
        }
        self.spawn(job.clone(), revision, value);
        Ok(job)
    }

    /// A second administrator lets a job awaiting approval run.
    pub async fn approve(
        &self,
        tenant: &str,
        id: &str,
        by: &str,
    ) -> Result<v1::RecoveryJob, RecoveryError> {
        let mut job = self.job(tenant, id).await?;
        if job.state != v1::RecoveryState::RecoveryAwaitingApproval as i32 {
            return Err(RecoveryError::Precondition(format!(
                "recovery {id} is {}; only jobs awaiting approval can be approved",
                state_name(job.state)
            )));
        }
        if by == job.requested_by {
            return Err(RecoveryError::Precondition(format!(
                "recovery {id} was requested by {by}: a second administrator must approve it"
            )));
        }
        job.approved_by = by.to_string();
        job.state = v1::RecoveryState::RecoveryInitialized as i32;
        self.publish_job_record(&job, "recovery.approved", "approved")
            .await?;
        self.launch(job).await
    }

    async fn publish_job_record(
        &self,
        job: &v1::RecoveryJob,
        action: &str,
        suffix: &str,
    ) -> Result<(), RecoveryError> {
        let record = records::job_record(job, action, suffix, true, "");
        self.inner.audit.publish(&[record]).await?;
        Ok(())
    }

    fn spawn(&self, job: v1::RecoveryJob, revision: u64, value: String) {
        self.lock_running().insert(job.id.clone());
        // A child of the caller's span (the StartRecovery call), so the job's writes join
        // the caller's trace; a resumed job starts a trace of its own.
        let span = tracing::info_span!("recovery.job", job = %job.id, tenant = %job.tenant);
        tokio::spawn(tracing::Instrument::instrument(
            self.clone().run(job, revision, value),
            span,
        ));
    }

    /// A job record.
    pub async fn job(&self, tenant: &str, id: &str) -> Result<v1::RecoveryJob, RecoveryError> {
        validate::tenant_id(tenant).map_err(|e| RecoveryError::Invalid(e.to_string()))?;
        self.inner.jobs.job(tenant, id).await?.ok_or_else(|| {
            RecoveryError::NotFound(format!(
                "tenant {tenant} has no recovery job {id}; `backtrack recovery list --tenant {tenant}` lists them"
            ))
        })
    }

    /// A tenant's jobs, oldest first.
    pub async fn jobs(&self, tenant: &str) -> Result<Vec<v1::RecoveryJob>, RecoveryError> {
        validate::tenant_id(tenant).map_err(|e| RecoveryError::Invalid(e.to_string()))?;
        self.inner.jobs.jobs(tenant).await
    }

    /// The changes a job could not make (failed or skipped), with reasons.
    pub async fn failures(
        &self,
        tenant: &str,
        id: &str,
    ) -> Result<Vec<v1::FailedChange>, RecoveryError> {
        self.job(tenant, id).await?;
        self.inner.jobs.failures(tenant, id).await
    }

    /// Asks a job to stop after the batch in flight; what was applied stays.
    pub async fn cancel(
        &self,
        tenant: &str,
        id: &str,
        by: &str,
    ) -> Result<v1::RecoveryJob, RecoveryError> {
        let job = self.job(tenant, id).await?;
        if runner::is_finished(job.state) {
            return Err(RecoveryError::Precondition(format!(
                "recovery {id} is already {}; only running jobs can be cancelled",
                state_name(job.state)
            )));
        }
        if job.state == v1::RecoveryState::RecoveryAwaitingApproval as i32 {
            // It never started: there is no runner to tell.
            let mut job = job;
            job.state = v1::RecoveryState::RecoveryAbandoned as i32;
            job.cancelled_by = by.to_string();
            job.finished_at_ms = now_ms();
            self.publish_job_record(&job, "recovery.cancelled", "finished")
                .await?;
            self.inner.jobs.put_job(&job).await?;
            return Ok(job);
        }
        self.inner.jobs.request_cancel(tenant, id, by).await?;
        Ok(job)
    }

    /// Starts a job that sets back what job `id` changed, each thing to what it found
    /// (from its pre-recovery backup on).
    pub async fn undo(
        &self,
        tenant: &str,
        id: &str,
        by: &str,
    ) -> Result<v1::RecoveryJob, RecoveryError> {
        self.undo_as(tenant, id, by, Requester::default()).await
    }

    /// Like [`Recovery::undo`], recording the requester's roles and address.
    pub async fn undo_as(
        &self,
        tenant: &str,
        id: &str,
        by: &str,
        requester: Requester,
    ) -> Result<v1::RecoveryJob, RecoveryError> {
        self.start_job_undoing(
            Self::undo_request(tenant, id, by),
            id.to_string(),
            requester,
        )
        .await
    }

    /// The request that undoes job `id`: what it changed set back, changes made after it
    /// to the same things set back with a warning.
    pub fn undo_request(tenant: &str, id: &str, by: &str) -> RecoveryRequest {
        RecoveryRequest {
            tenant: tenant.to_string(),
            source: Source::Undo(id.to_string()),
            kinds: vec![],
            ids: vec![],
            on_conflict: v1::OnConflict::Overwrite,
            ca_report_only: false,
            requested_by: by.to_string(),
            changed_by: vec![],
        }
    }

    fn lock_running(&self) -> std::sync::MutexGuard<'_, HashSet<String>> {
        self.inner.running.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// Lower-case name of a job state, as the CLI and JSON output show it.
pub fn state_name(state: i32) -> &'static str {
    match v1::RecoveryState::try_from(state) {
        Ok(v1::RecoveryState::RecoveryInitialized) => "initialized",
        Ok(v1::RecoveryState::RecoveryCalculating) => "calculating",
        Ok(v1::RecoveryState::RecoveryRunning) => "running",
        Ok(v1::RecoveryState::RecoverySuccessful) => "successful",
        Ok(v1::RecoveryState::RecoverySuccessfulWithWarnings) => "successfulWithWarnings",
        Ok(v1::RecoveryState::RecoveryFailed) => "failed",
        Ok(v1::RecoveryState::RecoveryAbandoned) => "abandoned",
        Ok(v1::RecoveryState::RecoveryAwaitingApproval) => "awaitingApproval",
        _ => "unknown",
    }
}
