//! `ApplyRecoveryBatch`: the recovery service's way into the directory. The steps arrive
//! as JSON ([`BatchStep`]), are decided here against the tenant as it is, and go out as
//! JSON ([`StepResult`]), so the directory stays the only writer of the log.

use backtrack_domain::batch::{BatchPolicy, BatchStep};
use backtrack_platform::auth::{Caller, Role};
use backtrack_proto::v1;
use tonic::Status;

use super::request::checked_mutation_id;
use super::{DirectoryApi, MAX_IMPORT_ITEMS};
use crate::writer::Origin;

impl DirectoryApi {
    pub(super) async fn apply_recovery_batch_now(
        &self,
        caller: &Caller,
        r: v1::ApplyRecoveryBatchRequest,
    ) -> Result<v1::ApplyRecoveryBatchResponse, Status> {
        self.authorize(
            caller,
            &r.tenant,
            &[Role::RecoveryService],
            "applying a recovery batch",
        )?;
        let job = checked_mutation_id(r.job_id)?.ok_or_else(|| {
            Status::invalid_argument("job_id names the recovery job; it is empty")
        })?;
        let requested_by = r.requested_by.trim();
        if requested_by.is_empty() || requested_by.len() > 256 {
            return Err(Status::invalid_argument(
                "requested_by (who asked for the job) must be 1 to 256 characters",
            ));
        }
        let steps: Vec<BatchStep> = serde_json::from_slice(&r.steps_json).map_err(|e| {
            Status::invalid_argument(format!(
                "steps_json must be a JSON array of {{\"mutationId\", \"operation\", \"checkVersion\"}}: {e}"
            ))
        })?;
        if steps.len() > MAX_IMPORT_ITEMS {
            return Err(Status::invalid_argument(format!(
                "{} steps in one batch; send at most {MAX_IMPORT_ITEMS} per call",
                steps.len()
            )));
        }
        for step in &steps {
            if checked_mutation_id(step.mutation_id.clone())?.is_none() {
                return Err(Status::invalid_argument(
                    "every step needs a mutationId (the job's id and the operation's index)",
                ));
            }
            caller.require_kind(step.operation.kind.as_str())?;
        }
        let policy = BatchPolicy {
            skip_on_conflict: r.skip_on_conflict,
            skipped_ids: r.skipped_ids.into_iter().collect(),
        };
        tracing::info!(
            tenant = %r.tenant,
            job = %job,
            steps = steps.len(),
            requested_by,
            "applying a recovery batch"
        );
        let origin = Origin {
            actor: requested_by.to_string(),
            source: "recovery".into(),
            correlation_id: Some(job),
        };
        let (results, applied_through) = self
            .directory
            .apply_batch(&r.tenant, steps, policy, &origin)
            .await?;
        let results_json = serde_json::to_vec(&results)
            .map_err(|e| Status::internal(format!("encode the batch's results: {e}")))?;
        Ok(v1::ApplyRecoveryBatchResponse {
            results_json,
            applied_through_sequence: applied_through,
        })
    }
}
