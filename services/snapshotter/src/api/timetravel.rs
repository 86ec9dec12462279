//! The gRPC `TimeTravelService`: the directory as it was at any point.

use backtrack_domain::{validate, ObjectKind};
use backtrack_platform::auth::caller;
use backtrack_proto::convert::{event_to_proto, object_to_proto};
use backtrack_proto::v1;
use backtrack_proto::v1::time_travel_service_server::{TimeTravelService, TimeTravelServiceServer};
use backtrack_store::timetravel::query::ListAt;
use tonic::{Request, Response, Status};

use super::{authorize, READERS};
use crate::Snapshotter;

/// Largest page of `ListObjectsAt`.
pub const MAX_PAGE_SIZE: u32 = 1000;
const DEFAULT_PAGE_SIZE: u32 = 100;

#[derive(Clone, Debug)]
pub struct TimeTravelApi {
    snapshotter: Snapshotter,
}

impl TimeTravelApi {
    pub fn new(snapshotter: Snapshotter) -> Self {
        Self { snapshotter }
    }

    /// Resolves `at` and reads one object there, with its links; NotFound when it did not
    /// exist then, PermissionDenied for a kind outside the caller's scope.
    async fn object_at_point(
        &self,
        caller: &backtrack_platform::auth::Caller,
        tenant: &str,
        id: &str,
        at: Option<&v1::Point>,
    ) -> Result<(v1::ResolvedPoint, backtrack_domain::DirectoryObject), Status> {
        let id =
            validate::any_object_id(id).map_err(|e| Status::invalid_argument(e.to_string()))?;
        let point = self.snapshotter.resolve(tenant, at).await?;
        let object = self
            .snapshotter
            .store()
            .object_at(tenant, &id, point.sequence)
            .map_err(crate::SnapshotterError::from)?
            .ok_or_else(|| not_there(&id, tenant, point.sequence))?;
        caller.require_kind(object.kind.as_str())?;
        Ok((point, object))
    }

    pub fn into_server(self) -> TimeTravelServiceServer<Self> {
        TimeTravelServiceServer::new(self).max_encoding_message_size(64 * 1024 * 1024)
    }
}

#[tonic::async_trait]
impl TimeTravelService for TimeTravelApi {
    async fn get_object_at(
        &self,
        request: Request<v1::GetObjectAtRequest>,
    ) -> Result<Response<v1::ObjectAt>, Status> {
        let caller = caller(&request)?;
        let r = request.into_inner();
        authorize(
            &self.snapshotter,
            &caller,
            &r.tenant,
            READERS,
            "reading past states",
        )?;
        let (point, object) = self
            .object_at_point(&caller, &r.tenant, &r.id, r.at.as_ref())
            .await?;
        Ok(Response::new(v1::ObjectAt {
            point: Some(point),
            object: Some(object_to_proto(&object)),
        }))
    }

    async fn list_objects_at(
        &self,
        request: Request<v1::ListObjectsAtRequest>,
    ) -> Result<Response<v1::ListObjectsAtResponse>, Status> {
        let caller = caller(&request)?;
        let r = request.into_inner();
        authorize(
            &self.snapshotter,
            &caller,
            &r.tenant,
            READERS,
            "reading past states",
        )?;
        let kind = if r.kind.is_empty() {
            None
        } else {
            let kind = r
                .kind
                .parse::<ObjectKind>()
                .map_err(|e| Status::invalid_argument(e.to_string()))?;
            caller.require_kind(kind.as_str())?;
            Some(kind)
        };
        let page_size = match r.page_size {
            0 => DEFAULT_PAGE_SIZE,
            n if n > MAX_PAGE_SIZE => {
                return Err(Status::invalid_argument(format!(
                    "page_size {n} is over the limit of {MAX_PAGE_SIZE}"
                )))
            }
            n => n,
        };
        let after = if r.page_token.is_empty() {
            None
        } else {
            validate::any_object_id(&r.page_token).map_err(|_| {
                Status::invalid_argument("page_token is not one this service issued")
            })?;
            Some(r.page_token)
        };
        let point = self.snapshotter.resolve(&r.tenant, r.at.as_ref()).await?;
        let store = self.snapshotter.store().clone();
        let (tenant, sequence) = (r.tenant.clone(), point.sequence);
        let query = ListAt {
            sequence,
            kind,
            include_deleted: r.include_deleted,
            after,
            limit: page_size as usize,
            with_links: true,
        };
        let page = tokio::task::spawn_blocking(move || store.list_at(&tenant, &query))
            .await
            .map_err(|e| Status::internal(e.to_string()))?
            .map_err(crate::SnapshotterError::from)?;
        Ok(Response::new(v1::ListObjectsAtResponse {
            point: Some(point),
            objects: page
                .objects
                .iter()
                .filter(|o| caller.can_access_kind(o.kind.as_str()))
                .map(object_to_proto)
                .collect(),
            next_page_token: page.next_after.unwrap_or_default(),
        }))
    }

    async fn get_object_history(
        &self,
        request: Request<v1::GetObjectHistoryRequest>,
    ) -> Result<Response<v1::ObjectHistory>, Status> {
        let caller = caller(&request)?;
        let r = request.into_inner();
        authorize(
            &self.snapshotter,
            &caller,
            &r.tenant,
            READERS,
            "reading object history",
        )?;
        let id =
            validate::any_object_id(&r.id).map_err(|e| Status::invalid_argument(e.to_string()))?;
        self.snapshotter.catch_up().await?;
        let entries = self
            .snapshotter
            .store()
            .history(&r.tenant, &id)
            .map_err(crate::SnapshotterError::from)?;
        let Some(first) = entries.first() else {
            return Err(Status::not_found(format!(
                "tenant {} has no history for object {}",
                r.tenant, id
            )));
        };
        let kind = first.event.meta.kind.clone();
        caller.require_kind(&kind)?;
        let incoming = if r.include_incoming {
            self.snapshotter
                .store()
                .incoming_link_history(&r.tenant, &id)
                .map_err(crate::SnapshotterError::from)?
                .into_iter()
                .filter(|c| caller.can_access_kind(c.holder.kind.as_str()))
                .map(|c| v1::IncomingLinkChange {
                    sequence: c.sequence,
                    time_ms: c.published_ms,
                    holder_kind: c.holder.kind.as_str().to_string(),
                    holder_display_name: c.holder.display_name().unwrap_or_default().to_string(),
                    holder_id: c.holder.id,
                    relation: c.relation,
                    added: c.added,
                    actor: c.event.meta.actor,
                    source: c.event.meta.source,
                    correlation_id: c.event.meta.correlation_id.unwrap_or_default(),
                })
                .collect()
        } else {
            Vec::new()
        };
        Ok(Response::new(v1::ObjectHistory {
            incoming,
            tenant: r.tenant,
            id,
            kind,
            entries: entries
                .iter()
                .map(|e| v1::HistoryEntry {
                    sequence: e.sequence,
                    time_ms: e.published_ms,
                    event: Some(event_to_proto(&e.event)),
                })
                .collect(),
        }))
    }

    async fn list_links_at(
        &self,
        request: Request<v1::ListLinksAtRequest>,
    ) -> Result<Response<v1::ListLinksAtResponse>, Status> {
        let caller = caller(&request)?;
        let r = request.into_inner();
        authorize(
            &self.snapshotter,
            &caller,
            &r.tenant,
            READERS,
            "reading past states",
        )?;
        let relation = if r.relation.is_empty() {
            "members".to_string()
        } else {
            r.relation
        };
        validate::any_object_id(&relation).map_err(|_| {
            Status::invalid_argument(format!("'{relation}' is not a relation name"))
        })?;
        let (point, object) = self
            .object_at_point(&caller, &r.tenant, &r.id, r.at.as_ref())
            .await?;
        let target_ids: Vec<String> = object
            .links
            .get(&relation)
            .map(|targets| targets.iter().cloned().collect())
            .unwrap_or_default();
        let targets = if r.describe_targets {
            let store = self.snapshotter.store();
            target_ids
                .iter()
                .map(|id| {
                    let target = store
                        .object_at_without_links(&r.tenant, id, point.sequence)
                        .map_err(crate::SnapshotterError::from)?
                        .filter(|t| caller.can_access_kind(t.kind.as_str()));
                    Ok(match target {
                        Some(t) => v1::LinkTarget {
                            id: id.clone(),
                            kind: t.kind.as_str().to_string(),
                            display_name: t.display_name().unwrap_or_default().to_string(),
                            deleted: t.is_deleted(),
                        },
                        None => v1::LinkTarget {
                            id: id.clone(),
                            ..Default::default()
                        },
                    })
                })
                .collect::<Result<Vec<_>, Status>>()?
        } else {
            Vec::new()
        };
        Ok(Response::new(v1::ListLinksAtResponse {
            point: Some(point),
            target_ids,
            targets,
        }))
    }

    async fn resolve_point(
        &self,
        request: Request<v1::ResolvePointRequest>,
    ) -> Result<Response<v1::ResolvedPoint>, Status> {
        let caller = caller(&request)?;
        let r = request.into_inner();
        authorize(
            &self.snapshotter,
            &caller,
            &r.tenant,
            READERS,
            "resolving points",
        )?;
        let mut point = self.snapshotter.resolve(&r.tenant, r.at.as_ref()).await?;
        if point.time_ms == 0 && point.sequence > 0 {
            point.time_ms = self
                .snapshotter
                .log()
                .stored_time_ms(point.sequence)
                .await
                .map_err(crate::SnapshotterError::from)?
                .unwrap_or(0);
        }
        Ok(Response::new(point))
    }
}

fn not_there(id: &str, tenant: &str, sequence: u64) -> Status {
    if sequence == 0 {
        Status::not_found(format!(
            "object {id} did not exist in tenant {tenant}: the point lies before the first event of the log"
        ))
    } else {
        Status::not_found(format!(
            "object {id} did not exist in tenant {tenant} at sequence {sequence}"
        ))
    }
}
