//! The differ service: difference reports between any two points of the log.
//!
//! A report compares a tenant's state at a base point (backup, instant or sequence) with a
//! target point (`now`, a backup or an instant) over a scope (all, kinds, ids). Only the
//! objects the snapshotter's change index names between the two sequences are read, so the
//! cost follows the number of changes. Reports are jobs: one report or recovery job per
//! tenant at a time (a lease in `bt-leases`), their records in `bt-jobs`, their items in
//! `bt-reports`; a second report over the same two sequences and scope is the first one.
//!
//! Modules: [`compute`] (the work), [`report`] (item shape, summary, filters, CSV),
//! [`jobs`] (the buckets), [`lease`] (handing the tenant's lease on), [`api`] (the gRPC `DiffService`), [`error`].

pub mod api;
pub mod compute;
pub mod error;
pub mod jobs;
pub mod lease;
pub mod report;

use std::collections::HashMap;
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use async_nats::jetstream::kv;
use backtrack_platform::metrics;
use backtrack_proto::v1;
use backtrack_snapshotter::Snapshotter;
use futures::StreamExt;
use serde_json::Value;
use sha2::{Digest, Sha256};

pub use compute::{Progress, Scope};
pub use error::DifferError;
use jobs::JobStore;

/// How long reports are kept.
pub const DEFAULT_RETENTION: Duration = Duration::from_secs(30 * 86_400);

/// A running differ. Cheap to clone.
#[derive(Clone)]
pub struct Differ {
    inner: Arc<Inner>,
}

struct Inner {
    snapshotter: Snapshotter,
    jobs: JobStore,
    retention: Duration,
    /// See [`Differ::open`].
    record_quiet: Duration,
    /// Jobs running in this process.
    running: Mutex<HashMap<String, Arc<Progress>>>,
}

impl std::fmt::Debug for Differ {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Differ").finish_non_exhaustive()
    }
}

/// What to compare.
#[derive(Debug, Clone)]
pub struct ReportRequest {
    pub tenant: String,
    pub base: v1::Point,
    /// `None`: now (the log's last sequence when the job starts).
    pub target: Option<v1::Point>,
    pub scope: Scope,
    pub requested_by: String,
}

impl Differ {
    /// Opens the buckets; reads go through `snapshotter`'s time-travel store. Reports are
    /// kept [`DEFAULT_RETENTION`]; see [`Differ::with_retention`].
    pub async fn start(
        snapshotter: Snapshotter,
        nats: async_nats::Client,
        replicas: usize,
    ) -> Result<Self, DifferError> {
        Self::with_retention(snapshotter, nats, replicas, DEFAULT_RETENTION).await
    }

    /// Like [`Differ::start`], keeping reports for `retention`.
    pub async fn with_retention(
        snapshotter: Snapshotter,
        nats: async_nats::Client,
        replicas: usize,
        retention: Duration,
    ) -> Result<Self, DifferError> {
        Self::open(snapshotter, nats, replicas, retention, jobs::RECORD_QUIET).await
    }

    /// Like [`Differ::with_retention`]; an unfinished report whose job holds no lease and
    /// whose record has not been written for `record_quiet` reads as interrupted.
    pub async fn open(
        snapshotter: Snapshotter,
        nats: async_nats::Client,
        replicas: usize,
        retention: Duration,
        record_quiet: Duration,
    ) -> Result<Self, DifferError> {
        let js = async_nats::jetstream::new(nats);
        let jobs = JobStore::open(&js, replicas).await?;
        Ok(Self {
            inner: Arc::new(Inner {
                snapshotter,
                jobs,
                retention,
                record_quiet,
                running: Mutex::default(),
            }),
        })
    }

    pub fn snapshotter(&self) -> &Snapshotter {
        &self.inner.snapshotter
    }

    /// Starts a report job, or returns the finished report over the same sequences and
    /// scope. `Precondition` names the job that holds the tenant.
    pub async fn create_report(&self, request: ReportRequest) -> Result<v1::Report, DifferError> {
        let s = &self.inner.snapshotter;
        let tenant = request.tenant.clone();
        let base = s.resolve(&tenant, Some(&request.base)).await?;
        let target = s.resolve(&tenant, request.target.as_ref()).await?;
        if !request.scope.changed_by.is_empty() && base.sequence > target.sequence {
            return Err(DifferError::Invalid(format!(
                "the base (sequence {}) lies after the target (sequence {}): a report of what some actors changed runs forward in time; swap the two points",
                base.sequence, target.sequence
            )));
        }
        let fingerprint = fingerprint(base.sequence, target.sequence, &request.scope);
        if let Some(id) = self.inner.jobs.cached(&tenant, &fingerprint).await? {
            if let Some(report) = self.inner.jobs.report(&tenant, &id).await? {
                if report.state == v1::JobState::Successful as i32
                    && report.expires_at_ms > now_ms()
                {
                    return Ok(report);
                }
            }
        }
        let id = uuid::Uuid::now_v7().to_string();
        let job = format!("report {id}");
        if let Err(holder) = self.inner.jobs.acquire(&tenant, &job).await? {
            return Err(DifferError::Precondition(format!(
                "{holder} is running for tenant {tenant}; one report or recovery job runs per tenant at a time: wait for it, or cancel it (`backtrack diff cancel --tenant {tenant} <id>`)"
            )));
        }
        let created = now_ms();
        let report = v1::Report {
            id: id.clone(),
            tenant: tenant.clone(),
            state: v1::JobState::Initialized as i32,
            base: Some(base),
            target: Some(target),
            scope: Some(v1::ReportScope {
                kinds: request
                    .scope
                    .kinds
                    .iter()
                    .map(|k| k.as_str().to_string())
                    .collect(),
                ids: request.scope.ids.clone(),
                changed_by: request.scope.changed_by.clone(),
            }),
            created_at_ms: created,
            requested_by: request.requested_by,
            expires_at_ms: created + self.inner.retention.as_millis() as i64,
            ..Default::default()
        };
        if let Err(e) = self.inner.jobs.put_report(&report).await {
            self.inner.jobs.release(&tenant).await;
            return Err(e);
        }
        let progress = Arc::new(Progress::default());
        self.lock_running().insert(id.clone(), progress.clone());
        tokio::spawn(
            self.clone()
                .run(report.clone(), request.scope, fingerprint, progress),
        );
        Ok(report)
    }

    async fn run(
        self,
        mut report: v1::Report,
        scope: Scope,
        fingerprint: String,
        progress: Arc<Progress>,
    ) {
        let started = Instant::now();
        let tenant = report.tenant.clone();
        let job = format!("report {}", report.id);
        report.state = v1::JobState::Calculating as i32;
        let _ = self.inner.jobs.put_report(&report).await;
        let store = self.inner.snapshotter.store().clone();
        let (base, target) = (
            report.base.as_ref().map_or(0, |p| p.sequence),
            report.target.as_ref().map_or(0, |p| p.sequence),
        );
        // A cancel that reaches another replica arrives as a request in `bt-jobs`.
        let cancel_watch = match self.inner.jobs.cancel_requests(&tenant, &report.id).await {
            Ok(mut requests) => {
                let progress = progress.clone();
                Some(tokio::spawn(async move {
                    while let Some(Ok(entry)) = requests.next().await {
                        if entry.operation == kv::Operation::Put {
                            progress.cancelled.store(true, Ordering::Relaxed);
                            return;
                        }
                    }
                }))
            }
            Err(e) => {
                tracing::warn!(report = %report.id, error = %e, "cancels from other replicas will not reach this report");
                None
            }
        };
        // The items are stored while they are computed: each finished piece goes to the
        // object store as the next ones are worked on.
        let (pieces, arriving) = tokio::sync::mpsc::channel(4);
        let storing = {
            let (jobs, tenant, id) = (self.inner.jobs.clone(), tenant.clone(), report.id.clone());
            tokio::spawn(async move { jobs.put_items_streamed(&tenant, &id, arriving).await })
        };
        let (t, p) = (tenant.clone(), progress.clone());
        let mut work = tokio::task::spawn_blocking(move || {
            let computing = Instant::now();
            let outcome = compute::compute_each(&store, &t, base, target, &scope, &p, |piece| {
                pieces.blocking_send(piece).map_err(|_| {
                    DifferError::Unavailable("storing the report's items stopped".into())
                })
            });
            metrics::REPORT_PHASE_SECONDS
                .observe_duration(&[("phase", "compute")], computing.elapsed());
            outcome
        });
        let mut tick = tokio::time::interval(Duration::from_millis(500));
        let outcome = loop {
            tokio::select! {
                r = &mut work => break r.map_err(|e| DifferError::Internal(e.to_string())).and_then(|r| r),
                _ = tick.tick() => {
                    self.inner.jobs.refresh(&tenant, &job).await;
                    fill_progress(&mut report, &progress);
                    let _ = self.inner.jobs.put_report(&report).await;
                }
            }
        };
        if let Some(watch) = cancel_watch {
            watch.abort();
        }
        fill_progress(&mut report, &progress);
        // What is left of storing once the computation is done (it ended the stream).
        let waiting = Instant::now();
        let stored = storing
            .await
            .map_err(|e| DifferError::Internal(format!("storing the report's items: {e}")))
            .and_then(|r| r);
        metrics::REPORT_PHASE_SECONDS.observe_duration(&[("phase", "store")], waiting.elapsed());
        let outcome = match (outcome, stored) {
            (Ok(()), stored) => stored,
            // The items stored so far are of no use; a store that failed is the cause.
            (Err(e), stored) => {
                if stored.is_ok() {
                    if let Err(e) = self.inner.jobs.delete_items(&tenant, &report.id).await {
                        tracing::warn!(report = %report.id, error = %e, "could not delete the items of an unfinished report");
                    }
                }
                Err(stored.err().unwrap_or(e))
            }
        };
        match outcome {
            Ok(counts) => {
                report.state = v1::JobState::Successful as i32;
                report.changed = counts.total();
                report.summary = counts
                    .by_name()
                    .into_iter()
                    .map(|((kind, change_type), count)| v1::ChangeCount {
                        kind,
                        change_type,
                        count,
                    })
                    .collect();
                let _ = self
                    .inner
                    .jobs
                    .remember(&tenant, &fingerprint, &report.id)
                    .await;
            }
            Err(_) if progress.cancelled.load(Ordering::Relaxed) => {
                report.state = v1::JobState::Abandoned as i32;
                report.error = "cancelled".into();
            }
            Err(e) => {
                report.state = v1::JobState::Failed as i32;
                report.error = e.to_string();
            }
        }
        report.elapsed_ms = started.elapsed().as_millis() as u64;
        metrics::REPORTS_FINISHED.inc_by(&[("state", state_name(report.state))], 1);
        metrics::REPORT_SECONDS.observe_duration(&[], started.elapsed());
        report.finished_at_ms = now_ms();
        // The lease stays held (marked finishing, so the next job may take it over) until
        // the final record is stored: no reader sees this job unfinished and unheld.
        let marked = self.inner.jobs.mark_finishing(&tenant, &job).await;
        if let Err(e) = self.inner.jobs.put_report(&report).await {
            tracing::error!(report = %report.id, error = %e, "could not store the finished report");
        }
        self.inner.jobs.release_at(&tenant, marked, &job).await;
        self.lock_running().remove(&report.id);
    }

    /// A report record. A job that no process runs any more (its holder died) reads as
    /// failed.
    pub async fn report(&self, tenant: &str, id: &str) -> Result<v1::Report, DifferError> {
        let mut report = self.inner.jobs.report(tenant, id).await?.ok_or_else(|| {
            DifferError::NotFound(format!(
                "tenant {tenant} has no report {id}; `backtrack diff list --tenant {tenant}` lists them"
            ))
        })?;
        if report.expires_at_ms <= now_ms() {
            return Err(DifferError::NotFound(format!(
                "report {id} expired at {} and is no longer kept; create it again",
                backtrack_domain::time::rfc3339_ms(report.expires_at_ms)
            )));
        }
        let unfinished = [
            v1::JobState::Initialized as i32,
            v1::JobState::Calculating as i32,
        ];
        if unfinished.contains(&report.state) {
            let local = self.lock_running().get(id).cloned();
            if let Some(progress) = local {
                fill_progress(&mut report, &progress);
            } else if !self
                .inner
                .jobs
                .lease_holder(tenant)
                .await
                .is_some_and(|held| lease::held_by(&held, &format!("report {id}")))
            {
                report = self
                    .inner
                    .jobs
                    .fail_if_unchanged(
                        &report,
                        "the job was interrupted (its process stopped); create the report again",
                        self.inner.record_quiet,
                    )
                    .await?;
            }
        }
        Ok(report)
    }

    pub async fn reports(&self, tenant: &str) -> Result<Vec<v1::Report>, DifferError> {
        let now = now_ms();
        Ok(self
            .inner
            .jobs
            .reports(tenant)
            .await?
            .into_iter()
            .filter(|r| r.expires_at_ms > now)
            .collect())
    }

    /// The items of a finished report.
    pub async fn items(
        &self,
        tenant: &str,
        id: &str,
    ) -> Result<(v1::Report, Vec<Value>), DifferError> {
        let report = self.report(tenant, id).await?;
        if report.state != v1::JobState::Successful as i32 {
            return Err(DifferError::Precondition(format!(
                "report {id} is {}, not finished; `backtrack diff show` works once it is successful",
                state_name(report.state)
            )));
        }
        let items = self.inner.jobs.items(tenant, id).await?;
        Ok((report, items))
    }

    /// Deletes the records and items of every finished report past its retention; returns
    /// how many went.
    pub async fn sweep_expired(&self) -> Result<usize, DifferError> {
        let now = now_ms();
        let finished = [
            v1::JobState::Successful as i32,
            v1::JobState::Failed as i32,
            v1::JobState::Abandoned as i32,
        ];
        let mut swept = 0;
        for report in self.inner.jobs.all_reports().await? {
            if report.expires_at_ms <= now && finished.contains(&report.state) {
                self.inner.jobs.delete_report(&report).await?;
                swept += 1;
            }
        }
        Ok(swept)
    }

    /// Sweeps expired reports every `every` until `shutdown`.
    pub async fn run_sweeper(
        self,
        every: Duration,
        shutdown: backtrack_platform::shutdown::Shutdown,
    ) {
        loop {
            match self.sweep_expired().await {
                Ok(0) => {}
                Ok(n) => tracing::info!(reports = n, "expired difference reports deleted"),
                Err(e) => tracing::warn!(error = %e, "could not sweep expired reports; will retry"),
            }
            tokio::select! {
                () = tokio::time::sleep(every) => {},
                () = shutdown.wait() => return,
            }
        }
    }

    /// Asks a running job to stop: at once when this replica runs it, else through a
    /// request the running replica watches for.
    pub async fn cancel(&self, tenant: &str, id: &str) -> Result<v1::Report, DifferError> {
        let report = self.report(tenant, id).await?;
        let local = self.lock_running().get(id).cloned();
        match local {
            Some(progress) => progress.cancelled.store(true, Ordering::Relaxed),
            None if [
                v1::JobState::Initialized as i32,
                v1::JobState::Calculating as i32,
            ]
            .contains(&report.state) =>
            {
                self.inner.jobs.request_cancel(tenant, id).await?;
            }
            None => {
                return Err(DifferError::Precondition(format!(
                    "report {id} is already {}; only running reports can be cancelled",
                    state_name(report.state)
                )))
            }
        }
        Ok(report)
    }

    fn lock_running(&self) -> std::sync::MutexGuard<'_, HashMap<String, Arc<Progress>>> {
        self.inner.running.lock().unwrap_or_else(|e| e.into_inner())
    }
}

fn fill_progress(report: &mut v1::Report, progress: &Progress) {
    report.examined = progress.examined.load(Ordering::Relaxed);
    report.total = progress.total.load(Ordering::Relaxed);
    report.changed = progress.changed.load(Ordering::Relaxed);
}

/// Lower-case name of a job state.
pub fn state_name(state: i32) -> &'static str {
    match v1::JobState::try_from(state) {
        Ok(v1::JobState::Initialized) => "initialized",
        Ok(v1::JobState::Calculating) => "calculating",
        Ok(v1::JobState::Successful) => "successful",
        Ok(v1::JobState::Failed) => "failed",
        Ok(v1::JobState::Abandoned) => "abandoned",
        _ => "unknown",
    }
}

fn fingerprint(base: u64, target: u64, scope: &Scope) -> String {
    let mut hasher = Sha256::new();
    hasher.update(format!("{base}:{target}:").as_bytes());
    for k in &scope.kinds {
        hasher.update(k.as_str().as_bytes());
        hasher.update(b",");
    }
    hasher.update(b":");
    for id in &scope.ids {
        hasher.update(id.as_bytes());
        hasher.update(b",");
    }
    // Reports of everyone's changes keep the fingerprints they had.
    if !scope.changed_by.is_empty() {
        hasher.update(b":by:");
        for actor in &scope.changed_by {
            hasher.update(actor.as_bytes());
            hasher.update(b"\n");
        }
    }
    hex::encode(&hasher.finalize()[..16])
}

use backtrack_platform::clock::now_ms;
