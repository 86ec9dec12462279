//! The gRPC `RecoveryService`. Recovering a whole tenant (a scope that names no kinds, no
//! ids and no actors, from a point or from a report over everything) is a protected action
//! of global administrators; a dry run only plans and stays open to readers.

use backtrack_domain::{validate, ObjectKind};
use backtrack_platform::auth::{caller, Caller, Role};
use backtrack_proto::v1;
use backtrack_proto::v1::recovery_service_server::{RecoveryService, RecoveryServiceServer};
use backtrack_snapshotter::api::{authorize, ADMINISTRATORS, READERS};
use tonic::{Request, Response, Status};

use backtrack_differ::Differ;

use crate::records::action_json;
use crate::{DryRun, Recovery, RecoveryRequest, Source};

/// What a refused whole-tenant recovery names.
const WHOLE_TENANT: &str =
    "recovering a whole tenant (a scope with no --kind and no --id; name kinds or ids to recover part of it)";

/// Operations a dry run lists at most (the counts cover all of them).
const MAX_LISTED_OPERATIONS: usize = 10_000;
/// Largest request: a scope may name many ids.
const MAX_REQUEST_BYTES: usize = 64 * 1024 * 1024;

#[derive(Clone, Debug)]
pub struct RecoveryApi {
    recovery: Recovery,
    /// Reads the scope of the report a job would start from.
    differ: Differ,
}

impl RecoveryApi {
    pub fn new(recovery: Recovery, differ: Differ) -> Self {
        Self { recovery, differ }
    }

    pub fn into_server(self) -> RecoveryServiceServer<Self> {
        RecoveryServiceServer::new(self)
            .max_decoding_message_size(MAX_REQUEST_BYTES)
            .max_encoding_message_size(64 * 1024 * 1024)
    }

    fn authorize(
        &self,
        caller: &Caller,
        tenant: &str,
        roles: &[Role],
        action: &str,
    ) -> Result<(), Status> {
        authorize(self.recovery.snapshotter(), caller, tenant, roles, action)
    }

    /// Whether a job over `kinds` and `ids` from `source` would cover the whole tenant.
    async fn whole_tenant(
        &self,
        tenant: &str,
        source: &Source,
        kinds: &[String],
        ids: &[String],
    ) -> Result<bool, Status> {
        if !kinds.is_empty() || !ids.is_empty() {
            return Ok(false);
        }
        Ok(match source {
            // An undo's scope is its job's, checked where undos start; taken as whole here.
            Source::Point(_) | Source::Undo(_) => true,
            Source::Report(id) => {
                let scope = self
                    .differ
                    .report(tenant, id)
                    .await?
                    .scope
                    .unwrap_or_default();
                scope.kinds.is_empty() && scope.ids.is_empty()
            }
        })
    }

    /// A kind-scoped caller may recover only its kinds, and must name them.
    fn require_kinds(caller: &Caller, kinds: &[String]) -> Result<(), Status> {
        if !caller.kinds.is_empty() && kinds.is_empty() {
            return Err(Status::permission_denied(format!(
                "your role covers only {}; name them with --kind to recover",
                caller.kinds.join(", ")
            )));
        }
        for kind in kinds {
            caller.require_kind(kind)?;
        }
        Ok(())
    }
}

fn parse_kinds(kinds: &[String]) -> Result<Vec<ObjectKind>, Status> {
    let mut out = kinds
        .iter()
        .map(|k| {
            k.parse::<ObjectKind>()
                .map_err(|e| Status::invalid_argument(e.to_string()))
        })
        .collect::<Result<Vec<_>, _>>()?;
    out.sort();
    out.dedup();
    Ok(out)
}

fn parse_ids(ids: &[String]) -> Result<Vec<String>, Status> {
    let mut out = ids
        .iter()
        .map(|id| validate::any_object_id(id).map_err(|e| Status::invalid_argument(e.to_string())))
        .collect::<Result<Vec<_>, _>>()?;
    out.sort();
    out.dedup();
    Ok(out)
}

/// The actors of `changed_by`, sorted and without repeats.
fn parse_actors(actors: &[String]) -> Result<Vec<String>, Status> {
    backtrack_domain::authorship::parse_actors(actors).map_err(Status::invalid_argument)
}

fn plan_message(dry_run: DryRun, on_conflict: v1::OnConflict) -> v1::RecoveryPlan {
    let DryRun {
        point,
        plan,
        conflict_base,
        changed_after_base,
        authors,
    } = dry_run;
    let skipped = |list: &[backtrack_domain::recovery::Skipped]| {
        list.iter()
            .map(|s| v1::SkippedObject {
                kind: s.kind.as_str().to_string(),
                id: s.id.clone(),
                display_name: s.display_name.clone().unwrap_or_default(),
                reason: s.reason.clone(),
            })
            .collect()
    };
    v1::RecoveryPlan {
        point: Some(point),
        objects: plan.objects() as u64,
        links: plan.links() as u64,
        counts: plan
            .counts()
            .into_iter()
            .map(|(action, count)| v1::PlanCount {
                action: action.to_string(),
                count,
            })
            .collect(),
        operations: plan
            .operations
            .iter()
            .take(MAX_LISTED_OPERATIONS)
            .enumerate()
            .map(|(index, op)| v1::PlannedOperation {
                index: index as u64,
                kind: op.kind.as_str().to_string(),
                id: op.id.clone(),
                display_name: op.display_name.clone().unwrap_or_default(),
                action: op.action.name().to_string(),
                change_type: op.change_type.clone(),
                detail_json: backtrack_domain::canonical::to_canonical_string(&action_json(
                    &op.action,
                )),
                changed_after_base: changed_after_base.contains(&op.id),
            })
            .collect(),
        operation_count: plan.operations.len() as u64,
        skipped: skipped(&plan.skipped),
        notes: skipped(&plan.notes),
        password_resets: plan.password_resets.clone(),
        to_enable: plan.to_enable.clone(),
        conflict_base: conflict_base.unwrap_or_default(),
        on_conflict: on_conflict as i32,
        changed_by: authors.actors.into_iter().collect(),
        changes_of_job: authors.job.unwrap_or_default(),
    }
}

#[tonic::async_trait]
impl RecoveryService for RecoveryApi {
    async fn start_recovery(
        &self,
        request: Request<v1::StartRecoveryRequest>,
    ) -> Result<Response<v1::StartRecoveryResponse>, Status> {
        let caller = caller(&request)?;
        let requester = requester(&caller, &request);
        let r = request.into_inner();
        let (roles, action) = if r.dry_run {
            (READERS, "planning recoveries")
        } else {
            (ADMINISTRATORS, "starting recoveries")
        };
        self.authorize(&caller, &r.tenant, roles, action)?;
        Self::require_kinds(&caller, &r.kinds)?;
        let source = match r.source {
            Some(v1::start_recovery_request::Source::ReportId(id)) => {
                if !crate::store::plausible_id(&id) {
                    return Err(Status::invalid_argument(format!(
                        "'{}' is not a report id",
                        validate::printable(&id)
                    )));
                }
                Source::Report(id)
            }
            Some(v1::start_recovery_request::Source::Point(p)) if p.point.is_some() => {
                Source::Point(p)
            }
            _ => {
                return Err(Status::invalid_argument(
                    "name what to recover to: a report (--report ID) or a backup id, time or sequence (--from)",
                ))
            }
        };
        let on_conflict = match v1::OnConflict::try_from(r.on_conflict) {
            Ok(v1::OnConflict::Skip) => v1::OnConflict::Skip,
            Ok(_) => v1::OnConflict::Overwrite,
            Err(_) => {
                return Err(Status::invalid_argument(
                    "on_conflict must be overwrite or skip",
                ))
            }
        };
        let changed_by = parse_actors(&r.changed_by)?;
        // Only some actors' changes: not the whole tenant, however many objects they touched.
        if !r.dry_run
            && changed_by.is_empty()
            && self
                .whole_tenant(&r.tenant, &source, &r.kinds, &r.ids)
                .await?
        {
            caller.require_global_administrator(WHOLE_TENANT)?;
        }
        let request = RecoveryRequest {
            tenant: r.tenant,
            source,
            kinds: parse_kinds(&r.kinds)?,
            ids: parse_ids(&r.ids)?,
            on_conflict,
            ca_report_only: r.ca_report_only,
            requested_by: caller.subject.clone(),
            changed_by,
        };
        if r.dry_run {
            let on_conflict = request.on_conflict;
            let dry_run = self.recovery.plan(&request).await?;
            return Ok(Response::new(v1::StartRecoveryResponse {
                job: None,
                plan: Some(plan_message(dry_run, on_conflict)),
            }));
        }
        let job = self.recovery.start_job_as(request, requester).await?;
        Ok(Response::new(v1::StartRecoveryResponse {
            job: Some(job),
            plan: None,
        }))
    }

    async fn get_recovery(
        &self,
        request: Request<v1::RecoveryRef>,
    ) -> Result<Response<v1::RecoveryJob>, Status> {
        let caller = caller(&request)?;
        let r = request.into_inner();
        self.authorize(&caller, &r.tenant, READERS, "reading recovery jobs")?;
        Ok(Response::new(self.recovery.job(&r.tenant, &r.id).await?))
    }

    async fn list_recoveries(
        &self,
        request: Request<v1::ListRecoveriesRequest>,
    ) -> Result<Response<v1::ListRecoveriesResponse>, Status> {
        let caller = caller(&request)?;
        let r = request.into_inner();
        self.authorize(&caller, &r.tenant, READERS, "listing recovery jobs")?;
        Ok(Response::new(v1::ListRecoveriesResponse {
            jobs: self.recovery.jobs(&r.tenant).await?,
        }))
    }

    async fn list_failed_changes(
        &self,
        request: Request<v1::RecoveryRef>,
    ) -> Result<Response<v1::ListFailedChangesResponse>, Status> {
        let caller = caller(&request)?;
        let r = request.into_inner();
        self.authorize(&caller, &r.tenant, READERS, "reading recovery jobs")?;
        Ok(Response::new(v1::ListFailedChangesResponse {
            changes: self.recovery.failures(&r.tenant, &r.id).await?,
        }))
    }

    async fn cancel_recovery(
        &self,
        request: Request<v1::RecoveryRef>,
    ) -> Result<Response<v1::RecoveryJob>, Status> {
        let caller = caller(&request)?;
        let r = request.into_inner();
        self.authorize(&caller, &r.tenant, ADMINISTRATORS, "cancelling recoveries")?;
        Ok(Response::new(
            self.recovery
                .cancel(&r.tenant, &r.id, &caller.subject)
                .await?,
        ))
    }

    async fn undo_recovery(
        &self,
        request: Request<v1::RecoveryRef>,
    ) -> Result<Response<v1::RecoveryJob>, Status> {
        let caller = caller(&request)?;
        let requester = requester(&caller, &request);
        let r = request.into_inner();
        self.authorize(&caller, &r.tenant, ADMINISTRATORS, "undoing recoveries")?;
        let job = self.recovery.job(&r.tenant, &r.id).await?;
        let scope = job.scope.unwrap_or_default();
        Self::require_kinds(&caller, &scope.kinds)?;
        // Undoing a whole-tenant job (or an undo of one) is a whole-tenant recovery; undoing
        // one of some actors' changes is not.
        if scope.kinds.is_empty() && scope.ids.is_empty() && scope.changed_by.is_empty() {
            caller.require_global_administrator(WHOLE_TENANT)?;
        }
        Ok(Response::new(
            self.recovery
                .undo_as(&r.tenant, &r.id, &caller.subject, requester)
                .await?,
        ))
    }

    async fn plan_undo(
        &self,
        request: Request<v1::RecoveryRef>,
    ) -> Result<Response<v1::RecoveryPlan>, Status> {
        let caller = caller(&request)?;
        let r = request.into_inner();
        self.authorize(&caller, &r.tenant, READERS, "planning recoveries")?;
        let job = self.recovery.job(&r.tenant, &r.id).await?;
        Self::require_kinds(&caller, &job.scope.unwrap_or_default().kinds)?;
        let request = Recovery::undo_request(&r.tenant, &r.id, &caller.subject);
        let dry_run = self.recovery.plan(&request).await?;
        Ok(Response::new(plan_message(
            dry_run,
            v1::OnConflict::Overwrite,
        )))
    }

    async fn approve_recovery(
        &self,
        request: Request<v1::RecoveryRef>,
    ) -> Result<Response<v1::RecoveryJob>, Status> {
        let caller = caller(&request)?;
        let r = request.into_inner();
        self.authorize(&caller, &r.tenant, ADMINISTRATORS, "approving recoveries")?;
        caller.require_global_administrator("approving a whole-tenant recovery")?;
        Ok(Response::new(
            self.recovery
                .approve(&r.tenant, &r.id, &caller.subject)
                .await?,
        ))
    }
}

/// The caller's roles and network address, for the job's audit records.
fn requester<T>(caller: &Caller, request: &Request<T>) -> crate::Requester {
    crate::Requester {
        roles: caller
            .roles
            .iter()
            .map(|r| r.as_str().to_string())
            .collect(),
        address: request
            .remote_addr()
            .map(|a| a.ip().to_string())
            .unwrap_or_default(),
    }
}

#[cfg(test)]
mod tests {
    use backtrack_domain::authorship::MAX_ACTORS;

    use super::parse_actors;

    #[test]
    fn actors_are_checked_sorted_and_deduplicated() {
        let given = ["mallory", "eve", "mallory"].map(String::from);
        assert_eq!(parse_actors(&given).unwrap(), ["eve", "mallory"]);
        for bad in ["", "  ", "a\nb", &"x".repeat(257)] {
            let status = parse_actors(&[bad.to_string()]).unwrap_err();
            assert_eq!(status.code(), tonic::Code::InvalidArgument);
            assert!(status.message().contains("is not an actor"), "{status:?}");
        }
        let many: Vec<String> = (0..=MAX_ACTORS).map(|i| format!("a{i}")).collect();
        assert!(parse_actors(&many)
            .unwrap_err()
            .message()
            .contains("at most 100"));
    }
}
