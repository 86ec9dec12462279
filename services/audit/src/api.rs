//! The gRPC `AuditService`: query, tail and verify a tenant's audit chain. Readers of
//! backups (and administrators) may read the audit records of their tenants.

use std::pin::Pin;

use backtrack_platform::auth::{caller, Caller, Role};
use backtrack_proto::v1;
use backtrack_proto::v1::audit_service_server::{AuditService, AuditServiceServer};
use backtrack_store::audit::AuditQuery;
use futures::Stream;
use tokio::sync::broadcast::error::RecvError;
use tonic::{Request, Response, Status};

use crate::{entry, Audit, DEPLOYMENT_TENANT, UNAUTHENTICATED_TENANT};

const READERS: &[Role] = &[
    Role::BackupReader,
    Role::BackupAdministrator,
    Role::GlobalAdministrator,
];
const DEFAULT_PAGE: u32 = 100;
const MAX_PAGE: u32 = 1000;

#[derive(Clone, Debug)]
pub struct AuditApi {
    audit: Audit,
}

impl AuditApi {
    pub fn new(audit: Audit) -> Self {
        Self { audit }
    }

    pub fn into_server(self) -> AuditServiceServer<Self> {
        AuditServiceServer::new(self)
    }

    fn authorize(caller: &Caller, tenant: &str, action: &str) -> Result<(), Status> {
        // Records about unidentified callers, or about the whole deployment, belong to no
        // tenant: only holders of every tenant may read them.
        if tenant != UNAUTHENTICATED_TENANT && tenant != DEPLOYMENT_TENANT {
            backtrack_domain::validate::tenant_id(tenant)
                .map_err(|e| Status::invalid_argument(e.to_string()))?;
        }
        caller.require_tenant(tenant)?;
        caller.require_any_role(READERS, action)
    }
}

/// Whether `caller`, whose token may be limited to some kinds, may read `entry`: records about
/// an object of another kind (its change by a recovery, its state before a purge) are
/// left out, as the directory leaves the object out; records about jobs, backups, reports,
/// tokens and calls stay.
fn visible(caller: &Caller, entry: &v1::AuditEntry) -> bool {
    let kind = entry
        .record
        .as_ref()
        .and_then(|r| r.target.as_ref())
        .map_or("", |t| t.kind.as_str());
    kind.parse::<backtrack_domain::ObjectKind>().is_err() || caller.can_access_kind(kind)
}

type TailStream = Pin<Box<dyn Stream<Item = Result<v1::AuditEntry, Status>> + Send>>;

#[tonic::async_trait]
impl AuditService for AuditApi {
    async fn query_audit(
        &self,
        request: Request<v1::QueryAuditRequest>,
    ) -> Result<Response<v1::QueryAuditResponse>, Status> {
        let caller = caller(&request)?;
        let r = request.into_inner();
        Self::authorize(&caller, &r.tenant, "reading audit records")?;
        let page_size = match r.page_size {
            0 => DEFAULT_PAGE,
            n if n > MAX_PAGE => {
                return Err(Status::invalid_argument(format!(
                    "page_size {n} is over the limit of {MAX_PAGE}"
                )))
            }
            n => n,
        };
        if r.since_ms > 0 && r.until_ms > 0 && r.since_ms > r.until_ms {
            return Err(Status::invalid_argument("since lies after until"));
        }
        let query = AuditQuery {
            since_ms: r.since_ms,
            until_ms: r.until_ms,
            actor: r.actor,
            action: r.action,
            target_id: r.target_id,
            result: r.result,
            correlation_id: r.correlation_id,
            page_size: page_size as usize,
            page_token: r.page_token,
        };
        let (mut entries, next_page_token) = self.audit.query(&r.tenant, &query).await?;
        entries.retain(|e| visible(&caller, e));
        Ok(Response::new(v1::QueryAuditResponse {
            entries,
            next_page_token,
        }))
    }

    type TailAuditStream = TailStream;

    async fn tail_audit(
        &self,
        request: Request<v1::TailAuditRequest>,
    ) -> Result<Response<Self::TailAuditStream>, Status> {
        let caller = caller(&request)?;
        let r = request.into_inner();
        Self::authorize(&caller, &r.tenant, "reading audit records")?;
        let audit = self.audit.clone();
        let tenant = r.tenant.clone();
        let reader = caller.clone();
        // Subscribe before reading what is stored, so nothing falls in between.
        let mut live = audit.subscribe();
        let (tx, rx) = tokio::sync::mpsc::channel(1024);
        let mut next = if r.from_index == 0 {
            audit
                .index()
                .head(&tenant)
                .map_err(|e| Status::from(crate::AuditError::from(e)))?
                .0
                + 1
        } else {
            r.from_index
        };
        tokio::spawn(async move {
            loop {
                // Whatever is stored from `next` on, then the live feed.
                loop {
                    let index = audit.index_arc();
                    let t = tenant.clone();
                    let from = next;
                    let page =
                        tokio::task::spawn_blocking(move || index.entries_from(&t, from, 1000))
                            .await;
                    let Ok(Ok(page)) = page else { return };
                    if page.is_empty() {
                        break;
                    }
                    for link in page {
                        next = link.index + 1;
                        let entry = entry(&link);
                        if visible(&reader, &entry) && tx.send(Ok(entry)).await.is_err() {
                            return;
                        }
                    }
                }
                loop {
                    match live.recv().await {
                        Ok(e) if e.tenant == tenant => {
                            if e.link.index < next {
                                continue;
                            }
                            if e.link.index > next {
                                // Missed some: read them from the index.
                                break;
                            }
                            next = e.link.index + 1;
                            let entry = entry(&e.link);
                            if visible(&reader, &entry) && tx.send(Ok(entry)).await.is_err() {
                                return;
                            }
                        }
                        Ok(_) => {}
                        Err(RecvError::Lagged(_)) => break,
                        Err(RecvError::Closed) => return,
                    }
                }
            }
        });
        Ok(Response::new(Box::pin(
            tokio_stream::wrappers::ReceiverStream::new(rx),
        )))
    }

    async fn verify_chain(
        &self,
        request: Request<v1::VerifyChainRequest>,
    ) -> Result<Response<v1::VerifyChainResponse>, Status> {
        let caller = caller(&request)?;
        let r = request.into_inner();
        Self::authorize(&caller, &r.tenant, "verifying audit chains")?;
        Ok(Response::new(self.audit.verify(&r.tenant).await?))
    }
}
