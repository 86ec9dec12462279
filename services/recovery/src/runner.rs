//! Running a job: the state machine (initialized → calculating → running → finished), the
//! batches and the checkpoints (the lease it holds meanwhile, and the resuming of jobs
//! whose process died, are in [`crate::lease`]).
//!
//! Exactly once: operation `i` of job `J` is the mutation `J-i`. The directory skips a
//! mutation id it has already folded and the log deduplicates a re-sent message id, so a
//! batch replayed after a crash applies nothing twice. The job record (the checkpoint)
//! advances only after the batch's events and audit records are acknowledged.

use std::collections::{HashMap, HashSet};
use std::time::Duration;

use backtrack_differ::Scope;
use backtrack_directory::writer::Origin;
use backtrack_domain::authorship::Authors;
use backtrack_domain::batch::{BatchPolicy, BatchStep, Met, PlannedOutcome, StepResult};
use backtrack_domain::canonical::to_canonical_string;
use backtrack_domain::recovery::Plan;
use backtrack_domain::ObjectKind;
use backtrack_platform::clock::now_ms;
use backtrack_platform::metrics;
use backtrack_proto::v1;
use backtrack_snapshotter::backups::BackupRequest;

use crate::error::RecoveryError;
use crate::lease::LeaseKeeper;
use crate::records::{self, action_json};
use crate::{planner, state_name, Recovery};

/// Warnings a job record lists at most (counts cover the rest).
const MAX_WARNINGS: usize = 100;
/// Residual ids a job record lists at most.
const MAX_RESIDUAL_IDS: usize = 100;

pub fn is_finished(state: i32) -> bool {
    [
        v1::RecoveryState::RecoverySuccessful as i32,
        v1::RecoveryState::RecoverySuccessfulWithWarnings as i32,
        v1::RecoveryState::RecoveryFailed as i32,
        v1::RecoveryState::RecoveryAbandoned as i32,
    ]
    .contains(&state)
}

/// The mutation id of operation `index` of job `id`.
pub fn mutation_id(id: &str, index: usize) -> String {
    format!("{id}-{index}")
}

/// What a finished batch adds to the job.
#[derive(Default)]
struct BatchResult {
    objects: u64,
    links: u64,
    satisfied: u64,
    failed: u64,
    skipped: u64,
    changes: Vec<v1::FailedChange>,
    records: Vec<v1::AuditRecord>,
    skipped_ids: Vec<String>,
}

impl Recovery {
    /// Runs (or resumes) `job` until it finishes, its lease is lost, or it fails for good.
    pub(crate) async fn run(self, mut job: v1::RecoveryJob, revision: u64, value: String) {
        let jobs = self.inner.jobs.clone();
        let every = (self.inner.config.lease_stale_after / 4).max(Duration::from_millis(100));
        let lease = LeaseKeeper::start(jobs, job.tenant.clone(), value, revision, every);
        let mut plan: Option<Plan> = None;
        let mut backoff = Duration::from_millis(250);
        metrics::RECOVERY_JOBS_RUNNING.add(&[], 1.0);
        loop {
            if lease.lost() {
                tracing::warn!(job = %job.id, "recovery job lease lost; another runner continues it");
                break;
            }
            match self.advance(&mut job, &mut plan, &lease).await {
                Ok(true) => break,
                Ok(false) => backoff = Duration::from_millis(250),
                Err(e) if e.is_transient() => {
                    tracing::warn!(job = %job.id, error = %e, "recovery job waiting for its dependencies; retrying");
                    tokio::time::sleep(backoff).await;
                    backoff = (backoff * 2).min(Duration::from_secs(5));
                }
                Err(e) => {
                    tracing::error!(job = %job.id, error = %e, "recovery job failed");
                    job.state = v1::RecoveryState::RecoveryFailed as i32;
                    job.error = e.to_string();
                    job.finished_at_ms = now_ms();
                    let record = records::job_record(
                        &job,
                        "recovery.finished",
                        "finished",
                        false,
                        &e.to_string(),
                    );
                    let _ = self.inner.audit.publish(&[record]).await;
                    let marked = self
                        .inner
                        .jobs
                        .mark_finishing(&job.tenant, lease.value())
                        .await;
                    if let Err(e) = self.inner.jobs.put_job(&job).await {
                        tracing::error!(job = %job.id, error = %e, "could not store the failed job");
                    }
                    self.inner
                        .jobs
                        .release_at(&job.tenant, marked, lease.value())
                        .await;
                    break;
                }
            }
        }
        drop(lease);
        metrics::RECOVERY_JOBS_RUNNING.add(&[], -1.0);
        if is_finished(job.state) {
            metrics::RECOVERY_JOBS_FINISHED.inc_by(&[("state", state_name(job.state))], 1);
            let millis = job.finished_at_ms.saturating_sub(job.started_at_ms);
            metrics::RECOVERY_JOB_SECONDS.observe(&[], millis as f64 / 1000.0);
        }
        self.lock_running().remove(&job.id);
    }

    /// One step of the state machine; `true` once the job is finished.
    async fn advance(
        &self,
        job: &mut v1::RecoveryJob,
        plan: &mut Option<Plan>,
        lease: &LeaseKeeper,
    ) -> Result<bool, RecoveryError> {
        use v1::RecoveryState as S;
        match S::try_from(job.state).unwrap_or(S::RecoveryFailed) {
            S::RecoveryInitialized | S::Unspecified => {
                if job.started_at_ms == 0 {
                    job.started_at_ms = now_ms();
                }
                let action = if job.undo_of.is_empty() {
                    "recovery.started"
                } else {
                    "recovery.undoStarted"
                };
                let record = records::job_record(job, action, "started", true, "");
                self.inner.audit.publish(&[record]).await?;
                if job.pre_recovery_backup_id.is_empty() {
                    let backup = self
                        .snapshotter()
                        .create_backup(BackupRequest {
                            tenant: job.tenant.clone(),
                            description: format!("before recovery {}", job.id),
                            trigger: v1::BackupTrigger::PreRecovery,
                            requested_by: job.requested_by.clone(),
                            scheduled_for_ms: None,
                        })
                        .await?;
                    job.pre_recovery_backup_id = backup.id;
                }
                job.state = S::RecoveryCalculating as i32;
                self.inner.jobs.put_job(job).await?;
                Ok(false)
            }
            S::RecoveryCalculating => {
                let now = self.snapshotter().catch_up().await?;
                let point = job.point.clone().unwrap_or_default();
                let base = (job.conflict_base_sequence > 0).then_some(job.conflict_base_sequence);
                let (scope, authors) = scope_of(job);
                let on_conflict =
                    v1::OnConflict::try_from(job.on_conflict).unwrap_or(v1::OnConflict::Overwrite);
                let planned = self
                    .compute_plan(
                        &job.tenant,
                        &point,
                        now,
                        base,
                        (&scope, &authors),
                        (on_conflict, job.ca_report_only),
                    )
                    .await?;
                let computed = planned.plan;
                self.inner
                    .jobs
                    .put_plan(&job.tenant, &job.id, &computed)
                    .await?;
                job.operations_total = computed.operations.len() as u64;
                job.planned_objects = computed.objects() as u64;
                job.planned_links = computed.links() as u64;
                job.password_resets = computed.password_resets.clone();
                job.to_enable = computed.to_enable.clone();
                job.warnings = computed
                    .notes
                    .iter()
                    .take(MAX_WARNINGS)
                    .map(|n| format!("{} {}: {}", n.kind, n.id, n.reason))
                    .collect();
                // Conflicts of some authors' changes (or an undo's) are listed with the
                // skipped objects, as `conflict`: what `recovery failed` shows.
                let set_back = if on_conflict == v1::OnConflict::Skip {
                    "none"
                } else {
                    "setBack"
                };
                let mut skipped = records::listed(&computed.skipped, "none", "skipped");
                job.skipped = skipped.len() as u64;
                skipped.extend(records::listed(&planned.conflicts, set_back, "conflict"));
                self.inner
                    .jobs
                    .put_failures(&job.tenant, &job.id, &skipped)
                    .await?;
                job.state = S::RecoveryRunning as i32;
                self.inner.jobs.put_job(job).await?;
                *plan = Some(computed);
                Ok(false)
            }
            S::RecoveryRunning => {
                if plan.is_none() {
                    *plan = self.inner.jobs.plan(&job.tenant, &job.id).await?;
                }
                let Some(p) = plan.as_ref() else {
                    return Err(RecoveryError::Internal(format!(
                        "the plan of recovery {} is missing from bt-recovery-plans",
                        job.id
                    )));
                };
                self.apply(job, p, lease).await?;
                if lease.lost() {
                    return Ok(true);
                }
                self.finish(job, lease.value()).await?;
                Ok(true)
            }
            _ => Ok(true),
        }
    }

    /// Applies the plan from the job's checkpoint on, batch by batch, until it is done or
    /// someone cancels the job.
    async fn apply(
        &self,
        job: &mut v1::RecoveryJob,
        plan: &Plan,
        lease: &LeaseKeeper,
    ) -> Result<(), RecoveryError> {
        // Directory writes after a crash may be stored but not yet folded: catch up so
        // "already applied" is answered by the view, not only by the log's dedupe.
        let last = self.directory().log().state().await?.last_sequence;
        self.directory().wait_for(last).await?;
        let mut failures = self.inner.jobs.failures(&job.tenant, &job.id).await?;
        let mut skipped_ids: HashSet<String> = failures
            .iter()
            .filter(|f| f.outcome == "skipped")
            .map(|f| f.id.clone())
            .collect();
        let mut first_of: HashMap<&str, usize> = HashMap::new();
        for (i, op) in plan.operations.iter().enumerate() {
            first_of.entry(op.id.as_str()).or_insert(i);
        }
        // Objects whose first operation ran before this point were checked for conflicts
        // by an earlier run of the job.
        let floor = job.operations_done as usize;
        let origin = Origin {
            actor: job.requested_by.clone(),
            source: "recovery".into(),
            correlation_id: Some(job.id.clone()),
        };
        let total = plan.operations.len();
        while (job.operations_done as usize) < total {
            if lease.lost() {
                return Ok(());
            }
            if let Some(by) = self
                .inner
                .jobs
                .cancel_requested(&job.tenant, &job.id)
                .await?
            {
                job.cancelled_by = by;
                return Ok(());
            }
            let start = job.operations_done as usize;
            let end = (start + self.inner.config.batch_size.max(1)).min(total);
            let result = self
                .run_batch(
                    job,
                    plan,
                    start,
                    end,
                    floor,
                    &first_of,
                    &skipped_ids,
                    &origin,
                )
                .await?;
            self.inner.audit.publish(&result.records).await?;
            // One record per applied operation, now acknowledged.
            metrics::RECOVERY_OPERATIONS_APPLIED.inc_by(&[], result.records.len() as u64);
            job.objects_changed += result.objects;
            job.links_changed += result.links;
            job.already_satisfied += result.satisfied;
            job.failed += result.failed;
            job.skipped += result.skipped;
            job.operations_done = end as u64;
            job.applied_through_sequence = self.directory().position();
            skipped_ids.extend(result.skipped_ids);
            if !result.changes.is_empty() {
                failures.extend(result.changes);
                self.inner
                    .jobs
                    .put_failures(&job.tenant, &job.id, &failures)
                    .await?;
            }
            self.inner.jobs.put_job(job).await?;
        }
        Ok(())
    }

    /// Decides and applies operations `start..end`; nothing of the job changes until the
    /// caller has the audit records acknowledged.
    #[allow(clippy::too_many_arguments)]
    async fn run_batch(
        &self,
        job: &v1::RecoveryJob,
        plan: &Plan,
        start: usize,
        end: usize,
        floor: usize,
        first_of: &HashMap<&str, usize>,
        skipped_ids: &HashSet<String>,
        origin: &Origin,
    ) -> Result<BatchResult, RecoveryError> {
        let skip_on_conflict = job.on_conflict == v1::OnConflict::Skip as i32;
        let steps: Vec<BatchStep> = (start..end)
            .map(|i| {
                let op = &plan.operations[i];
                BatchStep {
                    mutation_id: mutation_id(&job.id, i),
                    operation: op.clone(),
                    check_version: i >= floor && first_of.get(op.id.as_str()) == Some(&i),
                }
            })
            .collect();
        let policy = BatchPolicy {
            skip_on_conflict,
            skipped_ids: skipped_ids.clone(),
        };
        let results = match &self.inner.config.directory {
            None => {
                self.directory()
                    .apply_batch(&job.tenant, steps, policy, origin)
                    .await?
                    .0
            }
            Some(remote) => {
                let (results, through) = remote
                    .apply(&job.tenant, &job.id, &origin.actor, &steps, &policy)
                    .await?;
                // This process's view of the directory follows the log: wait until it
                // holds what the directory service stored, so the next batch and the
                // final check see it.
                self.directory().wait_for(through).await?;
                results
            }
        };
        let mut result = BatchResult::default();
        for (
            k,
            StepResult {
                outcome,
                decision: slot,
            },
        ) in results.into_iter().enumerate()
        {
            let i = start + k;
            let op = &plan.operations[i];
            let change = |outcome: &str, reason: String| v1::FailedChange {
                operation: i as u64,
                kind: op.kind.as_str().to_string(),
                id: op.id.clone(),
                display_name: op.display_name.clone().unwrap_or_default(),
                action: op.action.name().to_string(),
                reason,
                outcome: outcome.to_string(),
            };
            if slot.conflict && !skip_on_conflict {
                result.changes.push(change(
                    "overwritten",
                    format!(
                        "the object changed since the recovery's base (version {}); set back anyway",
                        op.planned_version
                    ),
                ));
            }
            for (target, reason) in &slot.failed_links {
                result.failed += 1;
                let mut c = change("failed", reason.clone());
                c.action = format!("{}:{target}", op.action.name());
                result.changes.push(c);
            }
            let applied =
                |result: &mut BatchResult, links: usize, before: String, after: String| {
                    if op.action.link_count() > 0 {
                        result.links += links as u64;
                    } else {
                        result.objects += 1;
                    }
                    result
                        .records
                        .push(records::operation_record(job, i, op, before, after));
                };
            match outcome {
                PlannedOutcome::AlreadyApplied => {
                    let after = to_canonical_string(&action_json(&op.action));
                    applied(&mut result, op.action.link_count(), String::new(), after);
                }
                PlannedOutcome::Applied { .. } => {
                    applied(&mut result, slot.links, slot.before, slot.after);
                }
                PlannedOutcome::Unchanged => result.satisfied += 1,
                PlannedOutcome::Declined => match slot.met {
                    Met::Satisfied => result.satisfied += 1,
                    Met::Failed(reason) => {
                        result.failed += 1;
                        result.changes.push(change("failed", reason));
                    }
                    Met::Skipped(reason) => {
                        result.skipped += 1;
                        result.skipped_ids.push(op.id.clone());
                        result.changes.push(change("skipped", reason));
                    }
                    Met::NotDecided | Met::Run => {
                        return Err(RecoveryError::Internal(format!(
                            "operation {i} of recovery {} was declined without a reason",
                            job.id
                        )))
                    }
                },
                PlannedOutcome::Refused(reason) => {
                    result.failed += 1;
                    result.changes.push(change("failed", reason));
                }
                PlannedOutcome::NotStored(e) => {
                    // The whole batch runs again; what was stored is found then.
                    return Err(RecoveryError::Unavailable(format!(
                        "operation {i} of recovery {} was not acknowledged: {e}",
                        job.id
                    )));
                }
            }
        }
        Ok(result)
    }

    /// Diffs the scope against the point once more, then records the outcome.
    async fn finish(&self, job: &mut v1::RecoveryJob, value: &str) -> Result<(), RecoveryError> {
        let cancelled = !job.cancelled_by.is_empty();
        if !cancelled {
            let now = self.snapshotter().catch_up().await?;
            let store = self.snapshotter().store().clone();
            let (tenant, (scope, authors)) = (job.tenant.clone(), scope_of(job));
            let point = job.point.as_ref().map_or(0, |p| p.sequence);
            let keep_later = job.on_conflict == v1::OnConflict::Skip as i32;
            let (residual, ids) = tokio::task::spawn_blocking(move || {
                let request = planner::Request {
                    tenant: &tenant,
                    point,
                    now,
                    conflict_base: None,
                    scope: &scope,
                    authors: &authors,
                    keep_later,
                };
                planner::residual(&store, &request, MAX_RESIDUAL_IDS)
            })
            .await
            .map_err(|e| RecoveryError::Internal(format!("residual diff stopped: {e}")))??;
            job.residual = residual;
            job.residual_ids = ids;
        }
        let failures = self.inner.jobs.failures(&job.tenant, &job.id).await?;
        let overwritten = failures
            .iter()
            .filter(|f| f.outcome == "overwritten")
            .count();
        if overwritten > 0 && job.warnings.len() < MAX_WARNINGS {
            job.warnings.push(format!(
                "{overwritten} object(s) had changed since the recovery's base and were set back anyway (`recovery failed` lists them)"
            ));
        }
        if !job.password_resets.is_empty() && job.warnings.len() < MAX_WARNINGS {
            job.warnings.push(format!(
                "{} re-created user(s) need a password reset: secrets are never stored",
                job.password_resets.len()
            ));
        }
        if !job.to_enable.is_empty() && job.warnings.len() < MAX_WARNINGS {
            job.warnings.push(format!(
                "{} conditional access polic(ies) came back report-only; switch them on when ready",
                job.to_enable.len()
            ));
        }
        let clean =
            job.failed == 0 && job.skipped == 0 && job.residual == 0 && job.warnings.is_empty();
        job.state = if cancelled {
            v1::RecoveryState::RecoveryAbandoned
        } else if clean {
            v1::RecoveryState::RecoverySuccessful
        } else {
            v1::RecoveryState::RecoverySuccessfulWithWarnings
        } as i32;
        job.finished_at_ms = now_ms();
        let (action, reason) = if cancelled {
            (
                "recovery.cancelled",
                format!("cancelled by {}", job.cancelled_by),
            )
        } else {
            ("recovery.finished", String::new())
        };
        let record = records::job_record(job, action, "finished", true, &reason);
        self.inner.audit.publish(&[record]).await?;
        // The lease stays held (marked finishing, so the next job may take it over) until
        // the final record is stored: no resumer sees this job unfinished and unheld.
        let marked = self.inner.jobs.mark_finishing(&job.tenant, value).await;
        let stored = self.inner.jobs.put_job(job).await;
        self.inner.jobs.release_at(&job.tenant, marked, value).await;
        stored
    }
}

/// The job's scope, and whose changes it sets back (none: all).
fn scope_of(job: &v1::RecoveryJob) -> (Scope, Authors) {
    let scope = job.scope.clone().unwrap_or_default();
    let mut kinds: Vec<ObjectKind> = scope.kinds.iter().filter_map(|k| k.parse().ok()).collect();
    kinds.sort();
    let mut ids = scope.ids;
    ids.sort();
    let authors = Authors {
        actors: scope.changed_by.into_iter().collect(),
        job: Some(scope.changes_of_job).filter(|j| !j.is_empty()),
    };
    let scope = Scope {
        kinds,
        ids,
        ..Scope::default()
    };
    (scope, authors)
}
