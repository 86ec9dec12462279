//! The gRPC `DirectoryService`: authorisation, request parsing, then the writer. Creating
//! a tenant and hard-deleting an object each leave one audit record, acknowledged before
//! the answer; hard deletion is a protected action of global administrators.

use std::pin::Pin;
use std::sync::Arc;

use backtrack_domain::command::{secrets_in, Command};
use backtrack_domain::validate;
use backtrack_platform::audit::{action, category, AuditEntry, Auditor, CallContext};
use backtrack_platform::auth::{caller, Caller, Role};
use backtrack_proto::convert::object_to_proto;
use backtrack_proto::v1;
use backtrack_proto::v1::directory_service_server::DirectoryService;
use futures::Stream;
use serde_json::json;
use tonic::{Request, Response, Status};

use crate::writer::{Directory, Executed, ImportItem, ImportOutcome, Origin};

/// Most objects in one `ImportObjects` call.
pub const MAX_IMPORT_ITEMS: usize = 10_000;
/// Largest page of `ListObjects`.
pub const MAX_PAGE_SIZE: u32 = 1000;

mod feed;
mod listing;
mod recovery_batch;
mod request;

use listing::list;
use request::{
    attributes, changed, checked_mutation_id, found, kind, new_object_id, note_dropped_secrets,
};
pub use request::{
    ALREADY_APPLIED, CHANGED, EVENTS_HEADER, OUTCOME_HEADER, SECRETS_DROPPED_HEADER, UNCHANGED,
};

const WRITERS: &[Role] = &[Role::DirectoryWriter, Role::GlobalAdministrator];

/// The gRPC face of a [`Directory`].
#[derive(Clone)]
pub struct DirectoryApi {
    directory: Directory,
    auditor: Auditor,
    version: String,
    process: Option<Arc<dyn ProcessView>>,
}

/// What the process around the directory service adds to `Status`: the gRPC services it
/// serves and the projections it keeps besides the directory's own (the time-travel
/// store, the audit trail).
#[tonic::async_trait]
pub trait ProcessView: Send + Sync + 'static {
    fn services(&self) -> Vec<String>;
    async fn projections(&self) -> Vec<v1::ProjectionStatus>;
}

impl DirectoryApi {
    pub fn new(directory: Directory, auditor: Auditor) -> Self {
        Self {
            directory,
            auditor,
            version: env!("CARGO_PKG_VERSION").to_string(),
            process: None,
        }
    }

    /// `Status` also reports what `process` serves and keeps.
    pub fn with_process(mut self, process: Arc<dyn ProcessView>) -> Self {
        self.process = Some(process);
        self
    }

    /// The tonic service, ready to be wrapped by the auth interceptor.
    pub fn into_server(self) -> v1::directory_service_server::DirectoryServiceServer<Self> {
        v1::directory_service_server::DirectoryServiceServer::new(self)
            .max_decoding_message_size(64 * 1024 * 1024)
            .max_encoding_message_size(64 * 1024 * 1024)
    }

    fn tenant(&self, caller: &Caller, tenant: &str) -> Result<(), Status> {
        self.authorize(caller, tenant, &[], "")
    }

    /// The tenant id, the caller's access to it, one of `roles` (none: any), and that the
    /// tenant exists — in that order, so a refusal is recorded under the tenant asked for.
    fn authorize(
        &self,
        caller: &Caller,
        tenant: &str,
        roles: &[Role],
        action: &str,
    ) -> Result<(), Status> {
        validate::tenant_id(tenant).map_err(|e| Status::invalid_argument(e.to_string()))?;
        caller.require_tenant(tenant)?;
        if !roles.is_empty() {
            caller.require_any_role(roles, action)?;
        }
        self.directory.require_tenant(tenant).map_err(Status::from)
    }

    async fn mutate(
        &self,
        request_caller: &Caller,
        tenant: &str,
        command: Command,
        mutation_id: String,
        action: &str,
    ) -> Result<Executed, Status> {
        self.authorize(request_caller, tenant, WRITERS, action)?;
        let mutation = checked_mutation_id(mutation_id)?;
        Ok(self
            .directory
            .run(
                tenant,
                command,
                mutation,
                &origin(request_caller, None),
                &request_caller.kinds,
            )
            .await?)
    }
}

impl DirectoryApi {
    async fn create_tenant_now(
        &self,
        caller: &Caller,
        r: &v1::CreateTenantRequest,
    ) -> Result<v1::Tenant, Status> {
        self.directory
            .create_tenant(&r.id, &r.display_name, &origin(caller, None))
            .await?;
        let t = self
            .directory
            .projection()
            .tenant(&r.id)
            .map_err(crate::DirectoryError::from)?
            .ok_or_else(|| {
                Status::unavailable("tenant stored but not yet visible; list again shortly")
            })?;
        Ok(v1::Tenant {
            id: t.id,
            display_name: t.display_name,
            created_at_ms: t.created_at_ms,
        })
    }
}

fn origin(caller: &Caller, correlation_id: Option<String>) -> Origin {
    Origin {
        actor: caller.subject.clone(),
        source: "directory".into(),
        correlation_id,
    }
}

type EventStream = Pin<Box<dyn Stream<Item = Result<v1::EventEnvelope, Status>> + Send + 'static>>;

#[tonic::async_trait]
impl DirectoryService for DirectoryApi {
    async fn create_tenant(
        &self,
        request: Request<v1::CreateTenantRequest>,
    ) -> Result<Response<v1::Tenant>, Status> {
        let ctx = CallContext::of(&request)?;
        let r = request.into_inner();
        validate::tenant_id(&r.id).map_err(|e| Status::invalid_argument(e.to_string()))?;
        ctx.caller.require_tenant(&r.id)?;
        ctx.caller
            .require_any_role(&[Role::GlobalAdministrator], "creating a tenant")?;
        if r.display_name.len() > 256 {
            return Err(Status::invalid_argument(
                "display_name is limited to 256 bytes",
            ));
        }
        let entry = AuditEntry::new(&ctx, &r.id, category::TENANT, action::TENANT_CREATED).target(
            "tenant",
            &r.id,
            &r.display_name,
        );
        let result = self.create_tenant_now(&ctx.caller, &r).await;
        let tenant = self
            .auditor
            .outcome(entry, result, |entry, t| {
                // A tenant is created once: its record too.
                entry.natural_id(&t.id).after(&json!({
                    "id": t.id,
                    "displayName": t.display_name,
                    "createdAtMs": t.created_at_ms,
                }))
            })
            .await?;
        Ok(Response::new(tenant))
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
        let secrets = secrets_in(kind, &attrs);
        let command = Command::Create {
            kind,
            id: id.clone(),
            attributes: attrs,
            links: r.links.iter().map(Into::into).collect(),
        };
        let done = self
            .mutate(
                &caller,
                &r.tenant,
                command,
                r.mutation_id,
                "creating objects",
            )
            .await?;
        let mut response = changed(done, &id)?;
        note_dropped_secrets(&mut response, &secrets);
        Ok(response)
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
        if let Some(object) = &object {
            caller.require_kind(object.kind.as_str())?;
        }
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
        // The object's kind, and so which attributes are secrets, is known once it is found.
        let secret_names: serde_json::Map<String, serde_json::Value> = set
            .iter()
            .filter(|(name, _)| backtrack_domain::schema::may_be_secret(name))
            .map(|(name, value)| (name.clone(), value.clone()))
            .collect();
        let command = Command::Update {
            id: r.id.clone(),
            set,
            unset: r.unset,
        };
        let done = self
            .mutate(
                &caller,
                &r.tenant,
                command,
                r.mutation_id,
                "changing objects",
            )
            .await?;
        let mut response = changed(done, &r.id)?;
        if let Ok(kind) = response.get_ref().kind.parse() {
            note_dropped_secrets(&mut response, &secrets_in(kind, &secret_names));
        }
        Ok(response)
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
        let done = self
            .mutate(&caller, &r.tenant, command, r.mutation_id, "changing links")
            .await?;
        changed(done, &r.id)
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
        let done = self
            .mutate(&caller, &r.tenant, command, r.mutation_id, "changing links")
            .await?;
        changed(done, &r.id)
    }

    async fn delete_object(
        &self,
        request: Request<v1::MutateObjectRequest>,
    ) -> Result<Response<v1::DirectoryObject>, Status> {
        let caller = caller(&request)?;
        let r = request.into_inner();
        let done = self
            .mutate(
                &caller,
                &r.tenant,
                Command::SoftDelete { id: r.id.clone() },
                r.mutation_id,
                "deleting objects",
            )
            .await?;
        changed(done, &r.id)
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
        let done = self
            .mutate(
                &caller,
                &r.tenant,
                Command::Restore { id: r.id.clone() },
                r.mutation_id,
                "restoring objects",
            )
            .await?;
        changed(done, &r.id)
    }

    async fn purge_object(
        &self,
        request: Request<v1::MutateObjectRequest>,
    ) -> Result<Response<v1::PurgeObjectResponse>, Status> {
        let ctx = CallContext::of(&request)?;
        let caller = &ctx.caller;
        let r = request.into_inner();
        validate::tenant_id(&r.tenant).map_err(|e| Status::invalid_argument(e.to_string()))?;
        caller.require_tenant(&r.tenant)?;
        // Hard delete is a protected action: only global administrators.
        caller.require_global_administrator("hard deletion (purge)")?;
        self.tenant(caller, &r.tenant)?;
        let mutation = checked_mutation_id(r.mutation_id)?;
        let id = validate::any_object_id(&r.id).unwrap_or_else(|_| r.id.clone());
        // The last state goes into the record: the directory never holds secrets.
        let before = self
            .directory
            .projection()
            .object_with_links(&r.tenant, &id)
            .ok()
            .flatten();
        let entry = AuditEntry::new(&ctx, &r.tenant, category::DIRECTORY, action::HARD_DELETED)
            .target(
                before.as_ref().map_or("", |o| o.kind.as_str()),
                &id,
                before
                    .as_ref()
                    .and_then(|o| o.display_name())
                    .unwrap_or_default(),
            );
        let result = self
            .directory
            .run(
                &r.tenant,
                Command::HardDelete { id: r.id.clone() },
                mutation.clone(),
                &origin(caller, None),
                &caller.kinds,
            )
            .await
            .map(|done| (done.object, done.events))
            .map_err(Status::from);
        let (_, events) = self
            .auditor
            .outcome(entry, result, |entry, (_, events)| {
                // With a mutation id a retried purge answers as the first did: so does its
                // record.
                let entry = match &mutation {
                    Some(m) => entry.natural_id(&format!("{id}:{m}")),
                    None => entry,
                };
                let entry = entry.details(&json!({ "events": events }));
                match &before {
                    Some(object) => entry.before(&backtrack_domain::graph::render(object)),
                    None => entry,
                }
            })
            .await?;
        Ok(Response::new(v1::PurgeObjectResponse { id: r.id, events }))
    }

    async fn apply_recovery_batch(
        &self,
        request: Request<v1::ApplyRecoveryBatchRequest>,
    ) -> Result<Response<v1::ApplyRecoveryBatchResponse>, Status> {
        let caller = caller(&request)?;
        let r = request.into_inner();
        Ok(Response::new(
            self.apply_recovery_batch_now(&caller, r).await?,
        ))
    }

    async fn import_objects(
        &self,
        request: Request<v1::ImportObjectsRequest>,
    ) -> Result<Response<v1::ImportObjectsResponse>, Status> {
        let caller = caller(&request)?;
        let r = request.into_inner();
        self.authorize(&caller, &r.tenant, WRITERS, "importing objects")?;
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
        // The secrets each parsed item carries (dropped by the directory before storing).
        let mut secrets = Vec::with_capacity(r.items.len());
        for (index, item) in r.items.into_iter().enumerate() {
            let parsed = kind(&item.kind).and_then(|k| {
                caller.require_kind(k.as_str())?;
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
                    secrets.push(secrets_in(i.kind, &i.attributes));
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
        for ((outcome, index), places) in outcomes.into_iter().zip(positions).zip(secrets) {
            match outcome {
                ImportOutcome::Created(id) => {
                    response.created += 1;
                    if !places.is_empty() {
                        response.secrets_dropped.push(v1::DroppedSecrets {
                            index,
                            id: id.clone(),
                            places,
                        });
                    }
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
        feed::watch(self, request).await
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
        let mut projections = vec![v1::ProjectionStatus {
            name: "directory".into(),
            stream: log.stream_name().to_string(),
            position,
            lag: state.last_sequence.saturating_sub(position),
        }];
        let services = match &self.process {
            Some(process) => {
                projections.extend(
                    process
                        .projections()
                        .await
                        .into_iter()
                        .filter(|p| p.name != "directory"),
                );
                process.services()
            }
            None => vec![v1::directory_service_server::SERVICE_NAME.to_string()],
        };
        Ok(Response::new(v1::StatusResponse {
            version: self.version.clone(),
            services,
            stream: log.stream_name().to_string(),
            last_sequence: state.last_sequence,
            messages: state.messages,
            projections,
            tenant,
        }))
    }
}
