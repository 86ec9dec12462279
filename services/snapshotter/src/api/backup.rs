//! The gRPC `BackupService`.

use backtrack_platform::auth::caller;
use backtrack_proto::v1;
use backtrack_proto::v1::backup_service_server::{BackupService, BackupServiceServer};
use backtrack_proto::v1::BackupTrigger;
use tonic::{Request, Response, Status};

use super::{authorize, ADMINISTRATORS, READERS};
use crate::backups::BackupRequest;
use crate::policy::Policy;
use crate::Snapshotter;

#[derive(Clone, Debug)]
pub struct BackupApi {
    snapshotter: Snapshotter,
}

impl BackupApi {
    pub fn new(snapshotter: Snapshotter) -> Self {
        Self { snapshotter }
    }

    pub fn into_server(self) -> BackupServiceServer<Self> {
        BackupServiceServer::new(self)
    }
}

#[tonic::async_trait]
impl BackupService for BackupApi {
    async fn create_backup(
        &self,
        request: Request<v1::CreateBackupRequest>,
    ) -> Result<Response<v1::Backup>, Status> {
        let caller = caller(&request)?;
        let r = request.into_inner();
        authorize(
            &self.snapshotter,
            &caller,
            &r.tenant,
            ADMINISTRATORS,
            "creating backups",
        )?;
        let trigger = match BackupTrigger::try_from(r.trigger) {
            Ok(BackupTrigger::Unspecified) | Ok(BackupTrigger::OnDemand) => BackupTrigger::OnDemand,
            Ok(BackupTrigger::Scheduled) => {
                return Err(Status::invalid_argument(
                    "the scheduled trigger is reserved for the scheduler; use ON_DEMAND, PRE_RECOVERY or BASELINE",
                ))
            }
            Ok(other) => other,
            Err(_) => {
                return Err(Status::invalid_argument(format!(
                    "unknown backup trigger {}; use ON_DEMAND, PRE_RECOVERY or BASELINE",
                    r.trigger
                )))
            }
        };
        let backup = self
            .snapshotter
            .create_backup(BackupRequest {
                tenant: r.tenant,
                description: r.description,
                trigger,
                requested_by: caller.subject.clone(),
                scheduled_for_ms: None,
            })
            .await?;
        Ok(Response::new(backup))
    }

    async fn list_backups(
        &self,
        request: Request<v1::ListBackupsRequest>,
    ) -> Result<Response<v1::ListBackupsResponse>, Status> {
        let caller = caller(&request)?;
        let r = request.into_inner();
        authorize(
            &self.snapshotter,
            &caller,
            &r.tenant,
            READERS,
            "listing backups",
        )?;
        let backups = self.snapshotter.backups(&r.tenant, r.all).await?;
        Ok(Response::new(v1::ListBackupsResponse { backups }))
    }

    async fn get_backup(
        &self,
        request: Request<v1::BackupRef>,
    ) -> Result<Response<v1::Backup>, Status> {
        let caller = caller(&request)?;
        let r = request.into_inner();
        authorize(
            &self.snapshotter,
            &caller,
            &r.tenant,
            READERS,
            "reading backups",
        )?;
        Ok(Response::new(
            self.snapshotter.backup(&r.tenant, &r.id).await?,
        ))
    }

    async fn verify_backup(
        &self,
        request: Request<v1::BackupRef>,
    ) -> Result<Response<v1::VerifyBackupResponse>, Status> {
        let caller = caller(&request)?;
        let r = request.into_inner();
        authorize(
            &self.snapshotter,
            &caller,
            &r.tenant,
            ADMINISTRATORS,
            "verifying backups",
        )?;
        let v = self.snapshotter.verify(&r.tenant, &r.id).await?;
        Ok(Response::new(v1::VerifyBackupResponse {
            backup: Some(v.backup),
            ok: v.ok,
            checks: v.checks,
            mismatched_ids: v.mismatched_ids,
            message: v.message,
            events_replayed: v.events_replayed,
            elapsed_ms: v.elapsed_ms,
        }))
    }

    async fn pin_backup(
        &self,
        request: Request<v1::BackupRef>,
    ) -> Result<Response<v1::Backup>, Status> {
        self.pin(request, true).await
    }

    async fn unpin_backup(
        &self,
        request: Request<v1::BackupRef>,
    ) -> Result<Response<v1::Backup>, Status> {
        self.pin(request, false).await
    }

    async fn get_backup_policy(
        &self,
        request: Request<v1::BackupPolicyRequest>,
    ) -> Result<Response<v1::BackupPolicy>, Status> {
        let caller = caller(&request)?;
        let r = request.into_inner();
        authorize(
            &self.snapshotter,
            &caller,
            &r.tenant,
            READERS,
            "reading backup policies",
        )?;
        let policy = self.snapshotter.policies().get(&r.tenant).await?;
        Ok(Response::new(to_proto(&r.tenant, &policy)))
    }

    async fn set_backup_policy(
        &self,
        request: Request<v1::BackupPolicy>,
    ) -> Result<Response<v1::BackupPolicy>, Status> {
        let caller = caller(&request)?;
        let r = request.into_inner();
        authorize(
            &self.snapshotter,
            &caller,
            &r.tenant,
            ADMINISTRATORS,
            "changing backup policies",
        )?;
        let policy = Policy {
            schedule: r.schedule.trim().to_string(),
            retention_days: r.retention_days,
            keep_daily: r.keep_daily,
            keep_weekly: r.keep_weekly,
            keep_monthly: r.keep_monthly,
        };
        let policy = self.snapshotter.policies().set(&r.tenant, policy).await?;
        Ok(Response::new(to_proto(&r.tenant, &policy)))
    }
}

impl BackupApi {
    async fn pin(
        &self,
        request: Request<v1::BackupRef>,
        pinned: bool,
    ) -> Result<Response<v1::Backup>, Status> {
        let caller = caller(&request)?;
        let r = request.into_inner();
        let action = if pinned {
            "pinning backups"
        } else {
            "unpinning backups"
        };
        authorize(
            &self.snapshotter,
            &caller,
            &r.tenant,
            ADMINISTRATORS,
            action,
        )?;
        let backup = self
            .snapshotter
            .set_pinned(&r.tenant, &r.id, pinned, &caller.subject)
            .await?;
        Ok(Response::new(backup))
    }
}

fn to_proto(tenant: &str, policy: &Policy) -> v1::BackupPolicy {
    v1::BackupPolicy {
        tenant: tenant.to_string(),
        schedule: policy.schedule.clone(),
        retention_days: policy.retention_days,
        keep_daily: policy.keep_daily,
        keep_weekly: policy.keep_weekly,
        keep_monthly: policy.keep_monthly,
    }
}
