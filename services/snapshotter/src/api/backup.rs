//! The gRPC `BackupService`. Taking, pinning, unpinning and verifying a backup and
//! changing a backup policy each leave one audit record, acknowledged before the answer
//! (see `backtrack_platform::audit`).

use backtrack_platform::audit::{action, category, AuditEntry, Auditor, CallContext};
use backtrack_platform::auth::{caller, Role};
use backtrack_proto::v1;
use backtrack_proto::v1::backup_service_server::{BackupService, BackupServiceServer};
use backtrack_proto::v1::BackupTrigger;
use serde_json::json;
use tonic::{Request, Response, Status};

use super::{authorize, ADMINISTRATORS, READERS};
use crate::alert_policy::AlertPolicy;
use crate::backups::BackupRequest;
use crate::policy::Policy;
use crate::Snapshotter;

#[derive(Clone, Debug)]
pub struct BackupApi {
    snapshotter: Snapshotter,
    auditor: Auditor,
}

impl BackupApi {
    pub fn new(snapshotter: Snapshotter, auditor: Auditor) -> Self {
        Self {
            snapshotter,
            auditor,
        }
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
        let ctx = CallContext::of(&request)?;
        let r = request.into_inner();
        authorize(
            &self.snapshotter,
            &ctx.caller,
            &r.tenant,
            ADMINISTRATORS,
            "creating backups",
        )?;
        let entry = AuditEntry::new(&ctx, &r.tenant, category::BACKUP, action::BACKUP_CREATED);
        let result = self.create(&ctx, r).await;
        let backup = self
            .auditor
            .outcome(entry, result, |entry, backup| {
                entry
                    .natural_id(&backup.id)
                    .target("backup", &backup.id, &backup.description)
                    .correlation("", "", &backup.id)
                    .after(&backup_json(backup))
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
        let ctx = CallContext::of(&request)?;
        let r = request.into_inner();
        authorize(
            &self.snapshotter,
            &ctx.caller,
            &r.tenant,
            ADMINISTRATORS,
            "verifying backups",
        )?;
        let entry = AuditEntry::new(&ctx, &r.tenant, category::BACKUP, action::BACKUP_VERIFIED)
            .target("backup", &r.id, "")
            .correlation("", "", &r.id);
        let result = self
            .snapshotter
            .verify(&r.tenant, &r.id)
            .await
            .map_err(Status::from);
        let v = self
            .auditor
            .outcome(entry, result, |entry, v| {
                // A verification that ran but found a mismatch is a failed check.
                let entry = entry
                    .target("backup", &v.backup.id, &v.backup.description)
                    .details(&json!({
                        "checks": v.checks.iter().map(|c| json!({"source": c.source, "digest": c.digest, "objects": c.objects})).collect::<Vec<_>>(),
                        "mismatchedObjects": v.mismatched_ids.len(),
                        "eventsReplayed": v.events_replayed,
                        "elapsedMs": v.elapsed_ms,
                    }));
                if v.ok {
                    entry
                } else {
                    entry.failure(&v.message)
                }
            })
            .await?;
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
        let policies = self.snapshotter.policies();
        let (policy, set_at) = policies.get_with_time(&r.tenant).await?;
        let mut answer = to_proto(&r.tenant, &policy, set_at);
        if set_at.is_none() {
            answer.default_since_ms = policies.default_since().unwrap_or(0);
        }
        Ok(Response::new(answer))
    }

    async fn set_backup_policy(
        &self,
        request: Request<v1::BackupPolicy>,
    ) -> Result<Response<v1::BackupPolicy>, Status> {
        let ctx = CallContext::of(&request)?;
        let r = request.into_inner();
        authorize(
            &self.snapshotter,
            &ctx.caller,
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
        let policies = self.snapshotter.policies();
        let before = policies.get(&r.tenant).await?;
        let entry = AuditEntry::new(
            &ctx,
            &r.tenant,
            category::CONFIGURATION,
            action::BACKUP_POLICY_CHANGED,
        )
        .target("backupPolicy", &r.tenant, "")
        .before(&policy_json(&before))
        .after(&policy_json(&policy));
        let result = policies.set(&r.tenant, policy).await.map_err(Status::from);
        let policy = self.auditor.outcome(entry, result, |e, _| e).await?;
        let set_at = Some(backtrack_platform::clock::now_ms());
        Ok(Response::new(to_proto(&r.tenant, &policy, set_at)))
    }

    async fn get_alert_policy(
        &self,
        request: Request<v1::AlertPolicyRequest>,
    ) -> Result<Response<v1::AlertPolicy>, Status> {
        let caller = caller(&request)?;
        let r = request.into_inner();
        authorize(
            &self.snapshotter,
            &caller,
            &r.tenant,
            READERS,
            "reading alert policies",
        )?;
        let alerts = self.snapshotter.policies().alerts();
        let (policy, set_at) = alerts.get_with_time(&r.tenant).await?;
        Ok(Response::new(alert_policy_to_proto(
            &r.tenant, &policy, set_at,
        )))
    }

    async fn set_alert_policy(
        &self,
        request: Request<v1::AlertPolicy>,
    ) -> Result<Response<v1::AlertPolicy>, Status> {
        let ctx = CallContext::of(&request)?;
        let r = request.into_inner();
        authorize(
            &self.snapshotter,
            &ctx.caller,
            &r.tenant,
            &[Role::GlobalAdministrator],
            "changing alert policies (turning alerts off is what an intruder would do)",
        )?;
        let policy = AlertPolicy {
            mass_deletions: r.mass_deletions,
            mass_link_removals: r.mass_link_removals,
            window_minutes: r.window_minutes,
            disabled_rules: r.disabled_rules,
            quiet_actors: r.quiet_actors,
        };
        let policies = self.snapshotter.policies();
        let (before, _) = policies.alerts().get_with_time(&r.tenant).await?;
        let entry = AuditEntry::new(
            &ctx,
            &r.tenant,
            category::CONFIGURATION,
            action::ALERT_POLICY_CHANGED,
        )
        .target("alertPolicy", &r.tenant, "")
        .before(&serde_json::to_value(&before).unwrap_or_default())
        .after(&serde_json::to_value(&policy).unwrap_or_default());
        let result = policies
            .set_alerts(&r.tenant, policy)
            .await
            .map_err(Status::from);
        let policy = self.auditor.outcome(entry, result, |e, _| e).await?;
        let set_at = Some(backtrack_platform::clock::now_ms());
        Ok(Response::new(alert_policy_to_proto(
            &r.tenant, &policy, set_at,
        )))
    }
}

impl BackupApi {
    async fn pin(
        &self,
        request: Request<v1::BackupRef>,
        pinned: bool,
    ) -> Result<Response<v1::Backup>, Status> {
        let ctx = CallContext::of(&request)?;
        let r = request.into_inner();
        let (attempted, recorded) = if pinned {
            ("pinning backups", action::BACKUP_PINNED)
        } else {
            ("unpinning backups", action::BACKUP_UNPINNED)
        };
        authorize(
            &self.snapshotter,
            &ctx.caller,
            &r.tenant,
            ADMINISTRATORS,
            attempted,
        )?;
        let before = self.snapshotter.backup(&r.tenant, &r.id).await.ok();
        let entry = AuditEntry::new(&ctx, &r.tenant, category::BACKUP, recorded)
            .target("backup", &r.id, "")
            .correlation("", "", &r.id);
        let result = self
            .snapshotter
            .set_pinned(&r.tenant, &r.id, pinned, &ctx.caller.subject)
            .await
            .map_err(Status::from);
        let backup = self
            .auditor
            .outcome(entry, result, |entry, backup| {
                let was = before.as_ref().map_or(!pinned, |b| b.pinned);
                entry
                    .target("backup", &backup.id, &backup.description)
                    .before(&json!({ "pinned": was }))
                    .after(&json!({ "pinned": backup.pinned }))
                    .details(&json!({ "changed": was != backup.pinned }))
            })
            .await?;
        Ok(Response::new(backup))
    }

    async fn create(
        &self,
        ctx: &CallContext,
        r: v1::CreateBackupRequest,
    ) -> Result<v1::Backup, Status> {
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
        self.snapshotter
            .create_backup(BackupRequest {
                tenant: r.tenant,
                description: r.description,
                trigger,
                requested_by: ctx.caller.subject.clone(),
                scheduled_for_ms: None,
            })
            .await
            .map_err(Status::from)
    }
}

/// What a `backup.created` record says about the backup.
fn backup_json(backup: &v1::Backup) -> serde_json::Value {
    json!({
        "stream": backup.stream,
        "sequence": backup.sequence,
        "trigger": BackupTrigger::try_from(backup.trigger).map_or("unknown", |t| t.as_str_name()),
        "description": backup.description,
        "digest": backup.digest,
        "expiresAtMs": backup.expires_at_ms,
        "pinned": backup.pinned,
    })
}

fn alert_policy_to_proto(
    tenant: &str,
    policy: &AlertPolicy,
    set_at: Option<i64>,
) -> v1::AlertPolicy {
    v1::AlertPolicy {
        tenant: tenant.to_string(),
        mass_deletions: policy.mass_deletions,
        mass_link_removals: policy.mass_link_removals,
        window_minutes: policy.window_minutes,
        disabled_rules: policy.disabled_rules.clone(),
        quiet_actors: policy.quiet_actors.clone(),
        updated_at_ms: set_at.unwrap_or(0),
    }
}

fn policy_json(policy: &Policy) -> serde_json::Value {
    serde_json::to_value(policy).unwrap_or_default()
}

fn to_proto(tenant: &str, policy: &Policy, set_at: Option<i64>) -> v1::BackupPolicy {
    v1::BackupPolicy {
        tenant: tenant.to_string(),
        schedule: policy.schedule.clone(),
        retention_days: policy.retention_days,
        keep_daily: policy.keep_daily,
        keep_weekly: policy.keep_weekly,
        keep_monthly: policy.keep_monthly,
        updated_at_ms: set_at.unwrap_or(0),
        default_since_ms: 0,
    }
}
