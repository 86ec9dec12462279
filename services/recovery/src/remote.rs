//! The directory service over gRPC, for a recovery service running in its own process:
//! each batch goes to `DirectoryService.ApplyRecoveryBatch`, so the directory stays the
//! only writer of the event log (per-tenant decisions such as `userPrincipalName`
//! uniqueness see every write). The token is minted per call from the deployment's
//! signing key, with the `RecoveryService` role and only the job's tenant.

use std::time::Duration;

use backtrack_domain::batch::{BatchPolicy, BatchStep, StepResult};
use backtrack_platform::auth::{BearerToken, Role, SigningKey};
use backtrack_proto::v1;
use backtrack_proto::v1::directory_service_client::DirectoryServiceClient;
use tonic::transport::{Channel, Endpoint};
use tonic::Code;

use crate::error::RecoveryError;

/// The subject of the recovery service's tokens.
pub const RECOVERY_SUBJECT: &str = "service:recovery";
/// How long a minted token lives: one call.
const TOKEN_TTL: Duration = Duration::from_secs(300);
/// Largest message either way (a batch of group memberships is large).
const MAX_MESSAGE: usize = 64 * 1024 * 1024;

/// A directory service reached over gRPC.
#[derive(Clone)]
pub struct RemoteDirectory {
    address: String,
    channel: Channel,
    key: SigningKey,
}

impl std::fmt::Debug for RemoteDirectory {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RemoteDirectory")
            .field("address", &self.address)
            .finish_non_exhaustive()
    }
}

impl RemoteDirectory {
    /// `address` is `http://host:port` (or `host:port`). Connects on first use and again
    /// after a failure, so the directory may start later or move.
    pub fn new(address: &str, key: SigningKey) -> Result<Self, RecoveryError> {
        let address = if address.contains("://") {
            address.to_string()
        } else {
            format!("http://{address}")
        };
        let channel = Endpoint::from_shared(address.clone())
            .map_err(|e| {
                RecoveryError::Invalid(format!(
                    "directory service address '{address}' is not a URL such as http://directory:50051: {e}"
                ))
            })?
            .connect_timeout(Duration::from_secs(5))
            .connect_lazy();
        Ok(Self {
            address,
            channel,
            key,
        })
    }

    pub fn address(&self) -> &str {
        &self.address
    }

    /// Applies one batch; returns each step's result and the sequence the directory's view
    /// had folded when it answered.
    pub async fn apply(
        &self,
        tenant: &str,
        job_id: &str,
        requested_by: &str,
        steps: &[BatchStep],
        policy: &BatchPolicy,
    ) -> Result<(Vec<StepResult>, u64), RecoveryError> {
        let token = self
            .key
            .mint(
                RECOVERY_SUBJECT,
                &[tenant.to_string()],
                &[Role::RecoveryService],
                &[],
                TOKEN_TTL,
            )
            .map_err(|e| {
                RecoveryError::Internal(format!("mint the recovery service's token: {e}"))
            })?;
        let bearer = BearerToken::new(&token)
            .map_err(|e| RecoveryError::Internal(format!("the recovery service's token: {e}")))?;
        let steps_json = serde_json::to_vec(steps)
            .map_err(|e| RecoveryError::Internal(format!("encode a recovery batch: {e}")))?;
        let mut client = DirectoryServiceClient::with_interceptor(self.channel.clone(), bearer)
            .max_decoding_message_size(MAX_MESSAGE)
            .max_encoding_message_size(MAX_MESSAGE);
        let response = client
            .apply_recovery_batch(v1::ApplyRecoveryBatchRequest {
                tenant: tenant.to_string(),
                job_id: job_id.to_string(),
                requested_by: requested_by.to_string(),
                steps_json,
                skip_on_conflict: policy.skip_on_conflict,
                skipped_ids: policy.skipped_ids.iter().cloned().collect(),
            })
            .await
            .map_err(|status| self.error(status))?
            .into_inner();
        let results: Vec<StepResult> = serde_json::from_slice(&response.results_json)
            .map_err(|e| {
                RecoveryError::Internal(format!(
                    "the directory service at {} answered a recovery batch with results this version cannot read: {e}",
                    self.address
                ))
            })?;
        if results.len() != steps.len() {
            return Err(RecoveryError::Internal(format!(
                "the directory service at {} answered {} results for {} steps",
                self.address,
                results.len(),
                steps.len()
            )));
        }
        Ok((results, response.applied_through_sequence))
    }

    fn error(&self, status: tonic::Status) -> RecoveryError {
        let text = format!(
            "directory service at {}: {} ({:?})",
            self.address,
            status.message(),
            status.code()
        );
        match status.code() {
            Code::Unavailable
            | Code::DeadlineExceeded
            | Code::Cancelled
            | Code::Aborted
            | Code::ResourceExhausted
            | Code::Unknown => RecoveryError::Unavailable(text),
            Code::NotFound => RecoveryError::NotFound(text),
            Code::FailedPrecondition => RecoveryError::Precondition(text),
            Code::Unauthenticated | Code::PermissionDenied => RecoveryError::Precondition(format!(
                "{text}; the recovery and directory services must share the signing key (--signing-key)"
            )),
            _ => RecoveryError::Internal(text),
        }
    }
}
