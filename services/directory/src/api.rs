//! The gRPC `DirectoryService`: authorisation, request parsing, then the writer.

use std::pin::Pin;

use backtrack_domain::command::Command;
use backtrack_domain::{validate, ObjectKind};
use backtrack_platform::auth::{caller, Caller, Role};
use backtrack_proto::convert::{event_to_proto, object_to_proto, parse_object};
use backtrack_proto::v1;
use backtrack_proto::v1::directory_service_server::DirectoryService;
use backtrack_store::ListQuery;
use futures::{Stream, StreamExt};
use tonic::{Request, Response, Status};
use uuid::Uuid;

use crate::writer::{Directory, ImportItem, ImportOutcome, Origin};

/// Most objects in one `ImportObjects` call.
pub const MAX_IMPORT_ITEMS: usize = 10_000;
/// Largest page of `ListObjects`.
pub const MAX_PAGE_SIZE: u32 = 1000;

const WRITERS: &[Role] = &[Role::DirectoryWriter, Role::GlobalAdministrator];

/// The gRPC face of a [`Directory`].
#[derive(Clone)]
pub struct DirectoryApi {
    directory: Directory,
    version: String,
}

impl DirectoryApi {
    pub fn new(directory: Directory) -> Self {
        Self {
            directory,
            version: env!("CARGO_PKG_VERSION").to_string(),
        }
    }

    /// The tonic service, ready to be wrapped by the auth interceptor.
    pub fn into_server(self) -> v1::directory_service_server::DirectoryServiceServer<Self> {
        v1::directory_service_server::DirectoryServiceServer::new(self)
            .max_decoding_message_size(64 * 1024 * 1024)
            .max_encoding_message_size(64 * 1024 * 1024)
    }

    fn tenant(&self, caller: &Caller, tenant: &str) -> Result<(), Status> {
        validate::tenant_id(tenant).map_err(|e| Status::invalid_argument(e.to_string()))?;
        caller.require_tenant(tenant)?;
        self.directory.require_tenant(tenant).map_err(Status::from)
    }

    async fn mutate(
        &self,
        request_caller: &Caller,
        tenant: &str,
        command: Command,
        mutation_id: String,
        action: &str,
    ) -> Result<Option<v1::DirectoryObject>, Status> {
        request_caller.require_any_role(WRITERS, action)?;
        self.tenant(request_caller, tenant)?;
        let mutation = checked_mutation_id(mutation_id)?;
        let (object, _) = self
            .directory
            .execute(tenant, command, mutation, &origin(request_caller, None))
            .await?;
        Ok(object.as_ref().map(object_to_proto))
    }
}

fn origin(caller: &Caller, correlation_id: Option<String>) -> Origin {
    Origin {
        actor: caller.subject.clone(),
        source: "directory".into(),
        correlation_id,
    }
}

fn checked_mutation_id(id: String) -> Result<Option<String>, Status> {
    if id.is_empty() {
        return Ok(None);
    }
    let ok = id.len() <= 128
        && id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b':'));
    if ok {
        Ok(Some(id))
    } else {
        Err(Status::invalid_argument(
            "mutation_id must be up to 128 characters of A-Z, a-z, 0-9, '-', '_', '.', ':'",
        ))
    }
}

fn kind(name: &str) -> Result<ObjectKind, Status> {
    name.parse::<ObjectKind>()
        .map_err(|e| Status::invalid_argument(e.to_string()))
}

fn attributes(
    text: &str,
    field: &str,
) -> Result<serde_json::Map<String, serde_json::Value>, Status> {
    parse_object(text).map_err(|e| {
        Status::invalid_argument(format!(
            "{field} must be a JSON object such as {{\"displayName\": \"Sales\"}}: {e}"
        ))
    })
}

fn found(
    object: Option<v1::DirectoryObject>,
    id: &str,
) -> Result<Response<v1::DirectoryObject>, Status> {
    object
        .map(Response::new)
        .ok_or_else(|| Status::not_found(format!("no object with id {id} in this tenant")))
}

/// The id of a new object: given, the singleton's name, derived from the mutation id (so
/// a retried create names the same object), or fresh.
fn new_object_id(kind: ObjectKind, given: Option<String>, tenant: &str, mutation: &str) -> String {
    if let Some(id) = given {
        return id;
    }
    if let Some(fixed) = kind.singleton_id() {
        return fixed.to_string();
    }
    if mutation.is_empty() {
        Uuid::new_v4().to_string()
    } else {
        Uuid::new_v5(
            &Uuid::NAMESPACE_OID,
            format!("{tenant}/{mutation}").as_bytes(),
        )
        .to_string()
    }
}

type EventStream = Pin<Box<dyn Stream<Item = Result<v1::EventEnvelope, Status>> + Send + 'static>>;

#[tonic::async_trait]
impl DirectoryService for DirectoryApi {
    async fn create_tenant(
        &self,
        request: Request<v1::CreateTenantRequest>,
    ) -> Result<Response<v1::Tenant>, Status> {
        let caller = caller(&request)?;
        caller.require_any_role(&[Role::GlobalAdministrator], "creating a tenant")?;
        let r = request.into_inner();
        validate::tenant_id(&r.id).map_err(|e| Status::invalid_argument(e.to_string()))?;
        caller.require_tenant(&r.id)?;
        if r.display_name.len() > 256 {
            return Err(Status::invalid_argument(
                "display_name is limited to 256 bytes",
            ));
        }
        self.directory
            .create_tenant(&r.id, &r.display_name, &origin(&caller, None))
            .await?;
        let t = self
            .directory
            .projection()
            .tenant(&r.id)
            .map_err(crate::DirectoryError::from)?
            .ok_or_else(|| {
                Status::unavailable("tenant stored but not yet visible; list again shortly")
            })?;
        Ok(Response::new(v1::Tenant {
            id: t.id,
            display_name: t.display_name,
            created_at_ms: t.created_at_ms,
        }))
    }

    async fn list_tenants(
        &self,
        request: Request<v1::ListTenantsRequest>,
    ) -> Result<Response<v1::ListTenantsResponse>, Status> {
        let caller = caller(&request)?;
        let tenants = self
            .directory
            .projection()
            .tenants()
            .map_err(crate::DirectoryError::from)?
            .into_iter()
            .filter(|t| caller.can_access_tenant(&t.id))
            .map(|t| v1::Tenant {
                id: t.id,
                display_name: t.display_name,
                created_at_ms: t.created_at_ms,
            })
            .collect();
        Ok(Response::new(v1::ListTenantsResponse { tenants }))
    }

    async fn create_object(
        &self,
        request: Request<v1::CreateObjectRequest>,
    ) -> Result<Response<v1::DirectoryObject>, Status> {
        let caller = caller(&request)?;
        let r = request.into_inner();
        let kind = kind(&r.kind)?;
        let mut attrs = attributes(&r.attributes_json, "attributes_json")?;
        let given = match attrs.remove("id") {
            Some(serde_json::Value::String(id)) => Some(id),
            None | Some(serde_json::Value::Null) => None,
            Some(_) => return Err(Status::invalid_argument("'id' must be a string")),
        };
        let id = new_object_id(kind, given, &r.tenant, &r.mutation_id);
        let command = Command::Create {
            kind,
            id: id.clone(),
            attributes: attrs,
            links: r.links.iter().map(Into::into).collect(),
        };
        let object = self
            .mutate(
                &caller,
                &r.tenant,
                command,
                r.mutation_id,
                "creating objects",
            )
            .await?;
        found(object, &id)
    }

    async fn get_object(
        &self,
        request: Request<v1::ObjectRef>,
    ) -> Result<Response<v1::DirectoryObject>, Status> {
        let caller = caller(&request)?;
        let r = request.into_inner();
        self.tenant(&caller, &r.tenant)?;
        let id =
            validate::any_object_id(&r.id).map_err(|e| Status::invalid_argument(e.to_string()))?;
        let object = self
            .directory
            .projection()
            .object_with_links(&r.tenant, &id)
            .map_err(crate::DirectoryError::from)?;
        found(object.as_ref().map(object_to_proto), &id)
    }

    async fn list_objects(
        &self,
        request: Request<v1::ListObjectsRequest>,
    ) -> Result<Response<v1::ListObjectsResponse>, Status> {
        let caller = caller(&request)?;
        list(&self.directory, &caller, request.into_inner(), false, self)
    }

    async fn update_object(
        &self,
        request: Request<v1::UpdateObjectRequest>,
    ) -> Result<Response<v1::DirectoryObject>, Status> {
        let caller = caller(&request)?;
        let r = request.into_inner();
        let set = attributes(&r.set_json, "set_json")?;
        if set.is_empty() && r.unset.is_empty() {
            return Err(Status::invalid_argument(
                "nothing to change: give attributes to set or unset",
            ));
        }
        let command = Command::Update {
            id: r.id.clone(),
            set,
            unset: r.unset,
        };
        let object = self
            .mutate(
                &caller,
                &r.tenant,
                command,
                r.mutation_id,
                "changing objects",
            )
            .await?;
        found(object, &r.id)
    }

    async fn add_links(
        &self,
        request: Request<v1::ChangeLinksRequest>,
    ) -> Result<Response<v1::DirectoryObject>, Status> {
        let caller = caller(&request)?;
        let r = request.into_inner();
        let command = Command::AddLinks {
            id: r.id.clone(),
            relation: r.relation,
            targets: r.target_ids,
        };
        let object = self
            .mutate(&caller, &r.tenant, command, r.mutation_id, "changing links")
            .await?;
        found(object, &r.id)
    }

    async fn remove_links(
        &self,
        request: Request<v1::ChangeLinksRequest>,
    ) -> Result<Response<v1::DirectoryObject>, Status> {
        let caller = caller(&request)?;
        let r = request.into_inner();
        let command = Command::RemoveLinks {
            id: r.id.clone(),
            relation: r.relation,
            targets: r.target_ids,
        };
        let object = self
            .mutate(&caller, &r.tenant, command, r.mutation_id, "changing links")
            .await?;
        found(object, &r.id)
    }

    async fn delete_object(
        &self,
        request: Request<v1::MutateObjectRequest>,
    ) -> Result<Response<v1::DirectoryObject>, Status> {
        let caller = caller(&request)?;
        let r = request.into_inner();
        let object = self
            .mutate(
                &caller,
                &r.tenant,
                Command::SoftDelete { id: r.id.clone() },
                r.mutation_id,
                "deleting objects",
            )
            .await?;
        found(object, &r.id)
    }

    async fn list_deleted_objects(
        &self,
        request: Request<v1::ListObjectsRequest>,
    ) -> Result<Response<v1::ListObjectsResponse>, Status> {
        let caller = caller(&request)?;
        list(&self.directory, &caller, request.into_inner(), true, self)
    }

    async fn restore_object(
        &self,
        request: Request<v1::MutateObjectRequest>,
    ) -> Result<Response<v1::DirectoryObject>, Status> {
        let caller = caller(&request)?;
        let r = request.into_inner();
        let object = self
            .mutate(
                &caller,
                &r.tenant,
                Command::Restore { id: r.id.clone() },
                r.mutation_id,
                "restoring objects",
            )
            .await?;
        found(object, &r.id)
    }

    async fn purge_object(
        &self,
        request: Request<v1::MutateObjectRequest>,
    ) -> Result<Response<v1::PurgeObjectResponse>, Status> {
        let caller = caller(&request)?;
        // Hard delete is a protected action: only global administrators.
        caller.require_any_role(&[Role::GlobalAdministrator], "hard deletion (purge)")?;
        let r = request.into_inner();
        self.tenant(&caller, &r.tenant)?;
        let mutation = checked_mutation_id(r.mutation_id)?;
        let (_, events) = self
            .directory
            .execute(
                &r.tenant,
                Command::HardDelete { id: r.id.clone() },
                mutation,
                &origin(&caller, None),
            )
            .await?;
        Ok(Response::new(v1::PurgeObjectResponse { id: r.id, events }))
    }

    async fn import_objects(
        &self,
        request: Request<v1::ImportObjectsRequest>,
    ) -> Result<Response<v1::ImportObjectsResponse>, Status> {
        let caller = caller(&request)?;
        caller.require_any_role(WRITERS, "importing objects")?;
        let r = request.into_inner();
        self.tenant(&caller, &r.tenant)?;
        if r.items.len() > MAX_IMPORT_ITEMS {
            return Err(Status::invalid_argument(format!(
                "{} items in one import call; send at most {MAX_IMPORT_ITEMS} per call",
                r.items.len()
            )));
        }
        let correlation = checked_mutation_id(r.correlation_id)?;
        let mut items = Vec::with_capacity(r.items.len());
        let mut problems = Vec::new();
        let mut positions = Vec::with_capacity(r.items.len());
        for (index, item) in r.items.into_iter().enumerate() {
            let parsed = kind(&item.kind).and_then(|k| {
                let mut attrs = attributes(&item.attributes_json, "attributes_json")?;
                let id = match attrs.remove("id") {
                    Some(serde_json::Value::String(id)) => Some(id),
                    _ => None,
                };
                let mutation_id = checked_mutation_id(item.mutation_id.clone())?;
                let id = id.or_else(|| {
                    mutation_id
                        .as_ref()
                        .map(|m| new_object_id(k, None, &r.tenant, m))
                });
                Ok(ImportItem {
                    kind: k,
                    id,
                    attributes: attrs,
                    links: item.links.iter().map(Into::into).collect(),
                    mutation_id,
                })
            });
            match parsed {
                Ok(i) => {
                    positions.push(index as u32);
                    items.push(i);
                }
                Err(status) => problems.push(v1::ImportItemResult {
                    index: index as u32,
                    id: String::new(),
                    outcome: v1::import_item_result::Outcome::Rejected as i32,
                    message: status.message().to_string(),
                }),
            }
        }
        let (outcomes, events) = self
            .directory
            .import(&r.tenant, items, &origin(&caller, correlation))
            .await?;
        let mut response = v1::ImportObjectsResponse {
            rejected: problems.len() as u64,
            events,
            ..Default::default()
        };
        for (outcome, index) in outcomes.into_iter().zip(positions) {
            match outcome {
                ImportOutcome::Created(id) => {
                    response.created += 1;
                    response.ids.push(id);
                }
                ImportOutcome::AlreadyExists(id) => {
                    response.already_existed += 1;
                    response.ids.push(id.clone());
                    problems.push(v1::ImportItemResult {
                        index,
                        id,
                        outcome: v1::import_item_result::Outcome::AlreadyExists as i32,
                        message: "already exists; not changed".into(),
                    });
                }
                ImportOutcome::Rejected(message) => {
                    response.rejected += 1;
                    problems.push(v1::ImportItemResult {
                        index,
                        id: String::new(),
                        outcome: v1::import_item_result::Outcome::Rejected as i32,
                        message,
                    });
                }
            }
        }
        problems.sort_by_key(|p| p.index);
        response.problems = problems;
        Ok(Response::new(response))
    }

    type WatchEventsStream = EventStream;

    async fn watch_events(
        &self,
        request: Request<v1::WatchEventsRequest>,
    ) -> Result<Response<Self::WatchEventsStream>, Status> {
        let caller = caller(&request)?;
        let r = request.into_inner();
        self.tenant(&caller, &r.tenant)?;
        let log = self.directory.log();
        let from = if r.from_start {
            1
        } else if r.from_sequence > 0 {
            r.from_sequence
        } else {
            log.state()
                .await
                .map_err(crate::DirectoryError::from)?
                .last_sequence
                + 1
        };
        let stream = log
            .read(from, &format!("bt.ev.{}.>", r.tenant))
            .await
            .map_err(crate::DirectoryError::from)?;
        let mapped = stream.map(|item| match item {
            Ok(stored) => Ok(v1::EventEnvelope {
                sequence: stored.sequence,
                subject: stored.subject,
                event: Some(event_to_proto(&stored.event)),
            }),
            Err(e) => Err(Status::from(crate::DirectoryError::from(e))),
        });
        Ok(Response::new(Box::pin(mapped)))
    }

    async fn status(
        &self,
        request: Request<v1::StatusRequest>,
    ) -> Result<Response<v1::StatusResponse>, Status> {
        let caller = caller(&request)?;
        let r = request.into_inner();
        let tenant = if r.tenant.is_empty() {
            None
        } else {
            self.tenant(&caller, &r.tenant)?;
            let (digest, objects) = self
                .directory
                .projection()
                .tenant_digest(&r.tenant)
                .map_err(crate::DirectoryError::from)?;
            Some(v1::TenantStatus {
                tenant: r.tenant,
                objects,
                digest,
            })
        };
        let log = self.directory.log();
        let state = log.state().await.map_err(crate::DirectoryError::from)?;
        let position = self.directory.position();
        Ok(Response::new(v1::StatusResponse {
            version: self.version.clone(),
            services: vec!["directory".into()],
            stream: log.stream_name().to_string(),
            last_sequence: state.last_sequence,
            messages: state.messages,
            projections: vec![v1::ProjectionStatus {
                name: "directory".into(),
                position,
                lag: state.last_sequence.saturating_sub(position),
            }],
            tenant,
        }))
    }
}

fn list(
    directory: &Directory,
    caller: &Caller,
    r: v1::ListObjectsRequest,
    deleted: bool,
    api: &DirectoryApi,
) -> Result<Response<v1::ListObjectsResponse>, Status> {
    api.tenant(caller, &r.tenant)?;
    let kind = if r.kind.is_empty() {
        None
    } else {
        Some(kind(&r.kind)?)
    };
    let after = if r.page_token.is_empty() {
        None
    } else {
        Some(validate::any_object_id(&r.page_token).map_err(|_| {
            Status::invalid_argument(
                "page_token is not one this server issued; start again without it",
            )
        })?)
    };
    let limit = match r.page_size {
        0 => 100,
        n => n.min(MAX_PAGE_SIZE),
    } as usize;
    let objects = directory
        .projection()
        .list(
            &r.tenant,
            &ListQuery {
                kind,
                deleted,
                after,
                limit,
            },
        )
        .map_err(crate::DirectoryError::from)?;
    // Pages carry links too, so a listing is the complete state of its objects.
    let objects = objects
        .into_iter()
        .map(|o| {
            directory
                .projection()
                .object_with_links(&r.tenant, &o.id)
                .map(|full| full.unwrap_or(o))
        })
        .collect::<Result<Vec<_>, _>>()
        .map_err(crate::DirectoryError::from)?;
    let next_page_token = if objects.len() == limit {
        objects.last().map(|o| o.id.clone()).unwrap_or_default()
    } else {
        String::new()
    };
    Ok(Response::new(v1::ListObjectsResponse {
        objects: objects.iter().map(object_to_proto).collect(),
        next_page_token,
    }))
}
