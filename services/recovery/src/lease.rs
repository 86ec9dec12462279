//! A job's lease on its tenant (one recovery or report at a time per tenant): the keeper
//! that refreshes it while a job runs, and the resumer that takes over jobs whose runner
//! died (its lease went stale).

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use backtrack_proto::v1;

use crate::error::RecoveryError;
use crate::runner::is_finished;
use crate::store::JobStore;
use crate::Recovery;

/// The lease value of a job's runner: the job, and which runner (so two runners of the
/// same job never both believe they hold it).
pub(crate) fn lease_value(id: &str) -> String {
    format!(
        "{} (runner {})",
        holder(id),
        &uuid::Uuid::new_v4().simple().to_string()[..8]
    )
}

/// How a job names itself in the tenant's lease.
pub fn holder(id: &str) -> String {
    format!("recovery {id}")
}

/// Keeps a lease alive; `lost` turns true when another runner holds it.
pub(crate) struct LeaseKeeper {
    /// The lease value it keeps.
    value: String,
    lost: Arc<AtomicBool>,
    stop: tokio::sync::watch::Sender<bool>,
}

impl LeaseKeeper {
    pub(crate) fn start(
        jobs: JobStore,
        tenant: String,
        value: String,
        mut revision: u64,
        every: Duration,
    ) -> Self {
        let lost = Arc::new(AtomicBool::new(false));
        let (stop, mut stopped) = tokio::sync::watch::channel(false);
        let flag = lost.clone();
        let kept = value.clone();
        tokio::spawn(async move {
            loop {
                tokio::select! {
                    () = tokio::time::sleep(every) => {}
                    _ = stopped.changed() => return,
                }
                if let Some(next) = jobs.refresh(&tenant, &value, revision).await {
                    revision = next;
                    continue;
                }
                // The compare-and-set failed: either our last refresh went through but its
                // answer was lost (the value is still ours), or someone else holds it.
                match jobs.lease_entry(&tenant).await {
                    Some((held, rev)) if held == value => revision = rev,
                    Some(_) => {
                        flag.store(true, Ordering::SeqCst);
                        return;
                    }
                    None => {}
                }
            }
        });
        Self {
            value: kept,
            lost,
            stop,
        }
    }

    pub(crate) fn value(&self) -> &str {
        &self.value
    }

    pub(crate) fn lost(&self) -> bool {
        self.lost.load(Ordering::SeqCst)
    }
}

impl Drop for LeaseKeeper {
    fn drop(&mut self) {
        let _ = self.stop.send(true);
    }
}

impl Recovery {
    /// Resumes every unfinished job no live runner holds, every `resume_every`, until
    /// `shutdown`.
    pub async fn run_resumer(self, shutdown: backtrack_platform::shutdown::Shutdown) {
        loop {
            if let Err(e) = self.resume_interrupted().await {
                tracing::warn!(error = %e, "could not look for interrupted recovery jobs; will retry");
            }
            tokio::select! {
                () = tokio::time::sleep(self.inner.config.resume_every) => {}
                () = shutdown.wait() => return,
            }
        }
    }

    /// Takes over unfinished jobs whose runner is gone; returns how many.
    pub async fn resume_interrupted(&self) -> Result<usize, RecoveryError> {
        let mut resumed = 0;
        for job in self.inner.jobs.all_jobs().await? {
            let waiting = job.state == v1::RecoveryState::RecoveryAwaitingApproval as i32;
            if waiting || is_finished(job.state) || self.lock_running().contains(&job.id) {
                continue;
            }
            let value = lease_value(&job.id);
            if let Ok(revision) = self
                .inner
                .jobs
                .acquire(
                    &job.tenant,
                    &value,
                    &holder(&job.id),
                    self.inner.config.lease_stale_after,
                )
                .await?
            {
                // The listing may predate the job's last record: it may have finished
                // (and let its lease go) since.
                let job = match self.inner.jobs.job(&job.tenant, &job.id).await {
                    Ok(Some(now)) if !is_finished(now.state) => now,
                    Ok(_) => {
                        self.inner
                            .jobs
                            .release_at(&job.tenant, Some(revision), &value)
                            .await;
                        continue;
                    }
                    Err(e) => {
                        self.inner
                            .jobs
                            .release_at(&job.tenant, Some(revision), &value)
                            .await;
                        return Err(e);
                    }
                };
                tracing::info!(job = %job.id, tenant = %job.tenant, done = job.operations_done, "resuming an interrupted recovery job");
                self.spawn(job, revision, value);
                resumed += 1;
            }
        }
        Ok(resumed)
    }
}

impl JobStore {
    /// The lease's value and revision, if there is one.
    pub async fn lease_entry(&self, tenant: &str) -> Option<(String, u64)> {
        self.lease_entry_raw(tenant).await
    }
}
