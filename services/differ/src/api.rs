//! The gRPC `DiffService`. Creating and cancelling a report each leave one audit record,
//! acknowledged before the answer.

use std::pin::Pin;

use backtrack_domain::{validate, ObjectKind};
use backtrack_platform::audit::{action, category, AuditEntry, Auditor, CallContext};
use backtrack_platform::auth::{caller, Caller, Role};
use backtrack_proto::v1;
use backtrack_proto::v1::diff_service_server::{DiffService, DiffServiceServer};
use futures::Stream;
use serde_json::json;
use tonic::{Request, Response, Status};

use backtrack_snapshotter::api::{authorize, ADMINISTRATORS, READERS};

use crate::report::{name_link_targets, to_csv, ItemFilter};
use crate::{Differ, ReportRequest, Scope};

const DEFAULT_PAGE_SIZE: u32 = 50;
const MAX_PAGE_SIZE: u32 = 1000;
/// Bytes per export chunk.
const EXPORT_CHUNK: usize = 256 * 1024;
/// Largest request: a scope may name any number of ids (about 1.5 million UUIDs fit);
/// they are sorted once and looked up by binary search, so the cost stays predictable.
const MAX_REQUEST_BYTES: usize = 64 * 1024 * 1024;

#[derive(Clone, Debug)]
pub struct DiffApi {
    differ: Differ,
    auditor: Auditor,
}

impl DiffApi {
    pub fn new(differ: Differ, auditor: Auditor) -> Self {
        Self { differ, auditor }
    }

    pub fn into_server(self) -> DiffServiceServer<Self> {
        DiffServiceServer::new(self)
            .max_decoding_message_size(MAX_REQUEST_BYTES)
            .max_encoding_message_size(64 * 1024 * 1024)
    }

    /// The snapshotter's check: tenant id, the caller's tenant and role, the tenant exists.
    fn authorize(
        &self,
        caller: &Caller,
        tenant: &str,
        roles: &[Role],
        action: &str,
    ) -> Result<(), Status> {
        authorize(self.differ.snapshotter(), caller, tenant, roles, action)
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

type ExportStream = Pin<Box<dyn Stream<Item = Result<v1::ExportChunk, Status>> + Send>>;

#[tonic::async_trait]
impl DiffService for DiffApi {
    async fn create_report(
        &self,
        request: Request<v1::CreateReportRequest>,
    ) -> Result<Response<v1::Report>, Status> {
        let ctx = CallContext::of(&request)?;
        let caller = &ctx.caller;
        let r = request.into_inner();
        self.authorize(
            caller,
            &r.tenant,
            ADMINISTRATORS,
            "creating difference reports",
        )?;
        let base = r.base.filter(|p| p.point.is_some()).ok_or_else(|| {
            Status::invalid_argument(
                "a report needs a base point (--from): a backup id, a time or a sequence",
            )
        })?;
        let scope = r.scope.unwrap_or_default();
        for kind in &scope.kinds {
            caller.require_kind(kind)?;
        }
        let scope = Scope {
            kinds: parse_kinds(&scope.kinds)?,
            ids: parse_ids(&scope.ids)?,
            changed_by: backtrack_domain::authorship::parse_actors(&scope.changed_by)
                .map_err(Status::invalid_argument)?,
        };
        let entry = AuditEntry::new(&ctx, &r.tenant, category::REPORT, action::REPORT_CREATED);
        let result = self
            .differ
            .create_report(ReportRequest {
                tenant: r.tenant,
                base,
                target: r.target.filter(|p| p.point.is_some()),
                scope,
                requested_by: caller.subject.clone(),
            })
            .await
            .map_err(Status::from);
        let report = self
            .auditor
            .outcome(entry, result, |entry, report| {
                // A report over the same points and scope is served from the first one: the
                // same caller asking again is the same action, another caller is not.
                entry
                    .natural_id(&format!("{}:{}", report.id, ctx.caller.subject))
                    .target("report", &report.id, "")
                    .correlation("", &report.id, &point_backup(report.base.as_ref()))
                    .after(&report_json(report))
            })
            .await?;
        Ok(Response::new(report))
    }

    async fn get_report(
        &self,
        request: Request<v1::ReportRef>,
    ) -> Result<Response<v1::Report>, Status> {
        let caller = caller(&request)?;
        let r = request.into_inner();
        self.authorize(&caller, &r.tenant, READERS, "reading difference reports")?;
        Ok(Response::new(self.differ.report(&r.tenant, &r.id).await?))
    }

    async fn list_reports(
        &self,
        request: Request<v1::ListReportsRequest>,
    ) -> Result<Response<v1::ListReportsResponse>, Status> {
        let caller = caller(&request)?;
        let r = request.into_inner();
        self.authorize(&caller, &r.tenant, READERS, "listing difference reports")?;
        Ok(Response::new(v1::ListReportsResponse {
            reports: self.differ.reports(&r.tenant).await?,
        }))
    }

    async fn list_report_items(
        &self,
        request: Request<v1::ListReportItemsRequest>,
    ) -> Result<Response<v1::ListReportItemsResponse>, Status> {
        let caller = caller(&request)?;
        let r = request.into_inner();
        self.authorize(&caller, &r.tenant, READERS, "reading difference reports")?;
        let filter = ItemFilter {
            kinds: parse_kinds(&r.kinds)?
                .iter()
                .map(|k| k.as_str().to_string())
                .collect(),
            change_types: r.change_types,
            attribute: r.attribute,
            search: r.search,
            ids: parse_ids(&r.ids)?,
        };
        filter.validate().map_err(Status::invalid_argument)?;
        let page_size = match r.page_size {
            0 => DEFAULT_PAGE_SIZE,
            n if n > MAX_PAGE_SIZE => {
                return Err(Status::invalid_argument(format!(
                    "page_size {n} is over the limit of {MAX_PAGE_SIZE}"
                )))
            }
            n => n,
        };
        let (_, items) = self.differ.items(&r.tenant, &r.id).await?;
        let matching: Vec<&serde_json::Value> = items
            .iter()
            .filter(|i| {
                filter.matches(i) && caller.can_access_kind(i["kind"].as_str().unwrap_or_default())
            })
            .collect();
        let pages = matching.len().div_ceil(page_size as usize) as u32;
        let start = r.page as usize * page_size as usize;
        Ok(Response::new(v1::ListReportItemsResponse {
            items_json: matching
                .iter()
                .skip(start)
                .take(page_size as usize)
                .map(|i| i.to_string())
                .collect(),
            matching: matching.len() as u64,
            page: r.page,
            pages,
        }))
    }

    type ExportReportStream = ExportStream;

    async fn export_report(
        &self,
        request: Request<v1::ExportReportRequest>,
    ) -> Result<Response<Self::ExportReportStream>, Status> {
        let caller = caller(&request)?;
        let r = request.into_inner();
        self.authorize(&caller, &r.tenant, READERS, "exporting difference reports")?;
        let (report, items) = self.differ.items(&r.tenant, &r.id).await?;
        let mut items: Vec<serde_json::Value> = items
            .into_iter()
            .filter(|i| caller.can_access_kind(i["kind"].as_str().unwrap_or_default()))
            .collect();
        // Link targets by name as well as id, as `diff show` prints them: an exported
        // membership change is read by people too.
        let sides = (
            report.base.as_ref().map_or(0, |p| p.sequence),
            report.target.as_ref().map_or(0, |p| p.sequence),
        );
        let (store, tenant) = (self.differ.snapshotter().store().clone(), r.tenant.clone());
        let items = tokio::task::spawn_blocking(move || {
            let may_see = |kind: &str| caller.can_access_kind(kind);
            name_link_targets(&store, &tenant, sides, &mut items, &may_see).map(|()| items)
        })
        .await
        .map_err(|e| Status::internal(format!("naming link targets stopped: {e}")))?
        .map_err(|e| {
            tracing::error!(error = %e, "time-travel store failure");
            Status::internal("time-travel store failure; see the server log")
        })?;
        let bytes = match r.format.as_str() {
            "json" | "" => {
                serde_json::to_vec_pretty(&items).map_err(|e| Status::internal(e.to_string()))?
            }
            "csv" => to_csv(&items).into_bytes(),
            other => {
                return Err(Status::invalid_argument(format!(
                    "unknown export format '{other}': use json or csv"
                )))
            }
        };
        let chunks: Vec<Result<v1::ExportChunk, Status>> = bytes
            .chunks(EXPORT_CHUNK)
            .map(|c| Ok(v1::ExportChunk { data: c.to_vec() }))
            .collect();
        Ok(Response::new(Box::pin(futures::stream::iter(chunks))))
    }

    async fn cancel_report(
        &self,
        request: Request<v1::ReportRef>,
    ) -> Result<Response<v1::Report>, Status> {
        let ctx = CallContext::of(&request)?;
        let r = request.into_inner();
        self.authorize(
            &ctx.caller,
            &r.tenant,
            ADMINISTRATORS,
            "cancelling difference reports",
        )?;
        let entry = AuditEntry::new(&ctx, &r.tenant, category::REPORT, action::REPORT_CANCELLED)
            .target("report", &r.id, "")
            .correlation("", &r.id, "");
        let result = self
            .differ
            .cancel(&r.tenant, &r.id)
            .await
            .map_err(Status::from);
        let report = self
            .auditor
            .outcome(entry, result, |entry, report| {
                entry
                    .natural_id(&report.id)
                    .before(&json!({ "state": crate::state_name(report.state) }))
                    .after(&json!({ "cancelRequested": true }))
            })
            .await?;
        Ok(Response::new(report))
    }
}

/// The backup a report's point names, if any.
fn point_backup(point: Option<&v1::ResolvedPoint>) -> String {
    point.map(|p| p.backup_id.clone()).unwrap_or_default()
}

/// What a `report.created` record says about the report.
fn report_json(report: &v1::Report) -> serde_json::Value {
    let point = |p: Option<&v1::ResolvedPoint>| {
        p.map(|p| json!({ "sequence": p.sequence, "timeMs": p.time_ms, "backupId": p.backup_id }))
    };
    let scope = report.scope.clone().unwrap_or_default();
    json!({
        "base": point(report.base.as_ref()),
        "target": point(report.target.as_ref()),
        "scope": { "kinds": scope.kinds, "ids": scope.ids.len(), "changedBy": scope.changed_by },
        "state": crate::state_name(report.state),
    })
}
