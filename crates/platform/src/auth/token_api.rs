//! The gRPC `TokenService`: tokens minted with the deployment's own signing key on a
//! global administrator's request, each announced by a `token.issued` audit record.
//!
//! The record comes first: a token is handed out only once its record is stored, so a
//! token the audit trail does not know of never leaves the server. A token is recorded
//! once in every tenant it grants (so each tenant's trail shows who got access to it and
//! names no other tenant), and a token for every tenant once under
//! [`DEPLOYMENT_TENANT`](crate::audit::DEPLOYMENT_TENANT). The token itself is never
//! recorded or logged.
//!
//! Revoking works the other way round: the revocation is stored first (a token must stop
//! working even when the audit stream is down), then recorded (queued until the stream
//! takes it, when it is down); the record's id derives from the token id, so a repeated
//! revocation is recorded once.

use std::time::Duration;

use backtrack_proto::v1;
use backtrack_proto::v1::token_service_server::{TokenService, TokenServiceServer};
use serde_json::json;
use tonic::{Request, Response, Status};

use super::registry::{TokenRecord, TokenRegistry};
use super::revocations::{check_id, Revocation, Revocations};
use super::{Claims, Role, SigningKey, ALL_TENANTS};
use crate::audit::{action, category, AuditEntry, Auditor, CallContext, DEPLOYMENT_TENANT};

/// Lifetime of a token when the request names none.
pub const DEFAULT_TTL: Duration = Duration::from_secs(12 * 3600);
/// Longest lifetime a token may be issued for.
pub const MAX_TTL: Duration = Duration::from_secs(366 * 86_400);

/// Longest reason a revocation keeps.
const MAX_REASON_CHARS: usize = 500;

/// The gRPC face of the deployment's [`SigningKey`] and of the revocation list.
#[derive(Clone, Debug)]
pub struct TokenApi {
    key: SigningKey,
    auditor: Auditor,
    revocations: Revocations,
    registry: TokenRegistry,
}

impl TokenApi {
    /// Tokens are revoked into `revocations` (shared with the process's validator) and
    /// recorded, as issued, in `registry`.
    pub fn new(
        key: SigningKey,
        auditor: Auditor,
        revocations: Revocations,
        registry: TokenRegistry,
    ) -> Self {
        Self {
            key,
            auditor,
            revocations,
            registry,
        }
    }

    pub fn into_server(self) -> TokenServiceServer<Self> {
        TokenServiceServer::new(self)
    }
}

/// The `token.issued` records of a token: one per tenant it grants, or one under
/// [`DEPLOYMENT_TENANT`] for a token of every tenant. Never the token itself.
pub fn issued_records(issuer: IssuerOf<'_>, claims: &Claims) -> Vec<AuditEntry> {
    audit_tenants(&claims.tenants)
        .into_iter()
        .map(|tenant| {
            let entry = match issuer {
                IssuerOf::Caller(ctx) => {
                    AuditEntry::new(ctx, tenant, category::SECURITY, action::TOKEN_ISSUED)
                }
                IssuerOf::System(subject) => {
                    AuditEntry::system(subject, tenant, category::SECURITY, action::TOKEN_ISSUED)
                }
            };
            let granted = if tenant == DEPLOYMENT_TENANT {
                json!([ALL_TENANTS])
            } else {
                json!([tenant])
            };
            entry
                .natural_id(&claims.jti)
                .target("token", &claims.jti, &claims.sub)
                .after(&json!({
                    "subject": claims.sub,
                    "tenants": granted,
                    "otherTenants": claims.tenants.len().saturating_sub(1),
                    "roles": claims.roles,
                    "kinds": claims.kinds,
                    "issuer": claims.iss,
                    "expiresAt": claims.exp,
                    "tokenId": claims.jti,
                }))
        })
        .collect()
}

/// The `token.revoked` records of a revocation: one per tenant of `tenants` (those the
/// revoked token grants, or the revoker's), or one under [`DEPLOYMENT_TENANT`] for a token
/// of every tenant. `subject`: whom the token was issued to, when known ("" otherwise),
/// the target's display name as in its `token.issued` records.
pub fn revoked_records(
    by: IssuerOf<'_>,
    tenants: &[String],
    subject: &str,
    revocation: &Revocation,
) -> Vec<AuditEntry> {
    audit_tenants(tenants)
        .into_iter()
        .map(|tenant| {
            match by {
                IssuerOf::Caller(ctx) => {
                    AuditEntry::new(ctx, tenant, category::SECURITY, action::TOKEN_REVOKED)
                }
                IssuerOf::System(subject) => {
                    AuditEntry::system(subject, tenant, category::SECURITY, action::TOKEN_REVOKED)
                }
            }
            .natural_id(&format!("revoked:{}", revocation.token_id))
            .target("token", &revocation.token_id, subject)
            // Before and after, so SIEM renderings read it as a change of the token
            // (OCSF Entity Management: Update), not as something created.
            .before(&json!({"tokenId": revocation.token_id, "revoked": false}))
            .after(&json!({
                "tokenId": revocation.token_id,
                "revoked": true,
                "revokedAtMs": revocation.revoked_at_ms,
                "revokedBy": revocation.revoked_by,
                "reason": revocation.reason,
            }))
        })
        .collect()
}

/// The audit trails a record about a token of `tenants` goes to: each of them, or
/// [`DEPLOYMENT_TENANT`] alone for a token of every tenant.
fn audit_tenants(tenants: &[String]) -> Vec<&str> {
    if tenants.iter().any(|t| t == ALL_TENANTS) {
        vec![DEPLOYMENT_TENANT]
    } else {
        tenants.iter().map(String::as_str).collect()
    }
}

/// Who issued (or revoked) a token: a caller, or the deployment itself (the admin token
/// of `backtrack up`).
#[derive(Clone, Copy, Debug)]
pub enum IssuerOf<'a> {
    Caller(&'a CallContext),
    System(&'a str),
}

#[tonic::async_trait]
impl TokenService for TokenApi {
    async fn issue_token(
        &self,
        request: Request<v1::IssueTokenRequest>,
    ) -> Result<Response<v1::IssueTokenResponse>, Status> {
        let ctx = CallContext::of(&request)?;
        let r = request.into_inner();
        if r.tenants.is_empty() {
            return Err(Status::invalid_argument(
                "name the tenants the token grants (or \"*\" for every tenant)",
            ));
        }
        for tenant in r.tenants.iter().filter(|t| t.as_str() != ALL_TENANTS) {
            backtrack_domain::validate::tenant_id(tenant)
                .map_err(|e| Status::invalid_argument(e.to_string()))?;
        }
        // Nobody hands out access they do not hold: every tenant granted must be one the
        // caller's own token grants ("*" only to holders of "*").
        for tenant in &r.tenants {
            ctx.caller.require_tenant(tenant)?;
        }
        ctx.caller
            .require_any_role(&[Role::GlobalAdministrator], "issuing tokens")?;
        if r.subject.trim().is_empty() || r.subject.len() > 256 {
            return Err(Status::invalid_argument(
                "the subject must be 1 to 256 characters",
            ));
        }
        let roles = r
            .roles
            .iter()
            .map(|name| name.parse::<Role>())
            .collect::<Result<Vec<_>, _>>()
            .map_err(|e| Status::invalid_argument(e.to_string()))?;
        if roles.is_empty() {
            return Err(Status::invalid_argument("name at least one role"));
        }
        for kind in &r.kinds {
            kind.parse::<backtrack_domain::ObjectKind>()
                .map_err(|e| Status::invalid_argument(e.to_string()))?;
        }
        let ttl = match r.ttl_secs {
            0 => DEFAULT_TTL,
            secs if secs > MAX_TTL.as_secs() => {
                return Err(Status::invalid_argument(format!(
                    "a token lives at most {} days",
                    MAX_TTL.as_secs() / 86_400
                )))
            }
            secs => Duration::from_secs(secs),
        };
        let issued = self
            .key
            .issue(r.subject.trim(), &r.tenants, &roles, &r.kinds, ttl)
            .map_err(|e| Status::internal(e.to_string()))?;
        for entry in issued_records(IssuerOf::Caller(&ctx), &issued.claims) {
            self.auditor
                .before_action(entry, "the token was not issued")
                .await?;
        }
        self.registry
            .record(&TokenRecord::of(&issued.claims, &ctx.caller.subject))
            .await
            .map_err(|e| Status::unavailable(format!("{e}; the token was not issued")))?;
        Ok(Response::new(v1::IssueTokenResponse {
            token: issued.token,
            token_id: issued.claims.jti,
            expires_at: issued.claims.exp,
        }))
    }

    async fn revoke_token(
        &self,
        request: Request<v1::RevokeTokenRequest>,
    ) -> Result<Response<v1::RevokeTokenResponse>, Status> {
        let ctx = CallContext::of(&request)?;
        let r = request.into_inner();
        ctx.caller
            .require_any_role(&[Role::GlobalAdministrator], "revoking tokens")?;
        let token_id = r.token_id.trim();
        check_id(token_id).map_err(|e| Status::invalid_argument(e.to_string()))?;
        // A token this deployment issued is revoked by an administrator of one of its
        // tenants, and recorded in its tenants; another, in the caller's.
        let issued = self.registry.get(token_id).await.map_err(|e| {
            Status::unavailable(format!("{e}; the token was not revoked: try again"))
        })?;
        let tenants = match &issued {
            Some(token) => {
                if !token
                    .tenants
                    .iter()
                    .any(|t| ctx.caller.can_access_tenant(t))
                {
                    return Err(Status::permission_denied(
                        "this token grants none of the tenants of the token to revoke",
                    ));
                }
                token.tenants.clone()
            }
            None => ctx.caller.tenants.clone(),
        };
        if r.reason.chars().count() > MAX_REASON_CHARS {
            return Err(Status::invalid_argument(format!(
                "the reason is at most {MAX_REASON_CHARS} characters"
            )));
        }
        let (revocation, revoked_now) = self
            .revocations
            .revoke(Revocation {
                token_id: token_id.to_string(),
                revoked_at_ms: crate::clock::now_ms(),
                revoked_by: ctx.caller.subject.clone(),
                reason: r.reason.trim().to_string(),
            })
            .await
            .map_err(|e| {
                Status::unavailable(format!("{e}; the token was not revoked: try again"))
            })?;
        // Recorded after the fact, and again on a retry: the records' ids are derived
        // from the token id, so the trail holds one.
        let subject = issued.as_ref().map_or("", |t| t.subject.as_str());
        for entry in revoked_records(IssuerOf::Caller(&ctx), &tenants, subject, &revocation) {
            self.auditor.succeeded(entry).await?;
        }
        Ok(Response::new(v1::RevokeTokenResponse {
            token_id: revocation.token_id,
            revoked_at_ms: revocation.revoked_at_ms,
            already_revoked: !revoked_now,
        }))
    }

    async fn list_tokens(
        &self,
        request: Request<v1::ListTokensRequest>,
    ) -> Result<Response<v1::ListTokensResponse>, Status> {
        let ctx = CallContext::of(&request)?;
        let r = request.into_inner();
        if r.tenant != ALL_TENANTS {
            backtrack_domain::validate::tenant_id(&r.tenant)
                .map_err(|e| Status::invalid_argument(e.to_string()))?;
        }
        ctx.caller.require_tenant(&r.tenant)?;
        ctx.caller
            .require_any_role(&[Role::GlobalAdministrator], "listing tokens")?;
        let now = u64::try_from(crate::clock::now_ms() / 1000).unwrap_or(0);
        let mut records = self
            .registry
            .all()
            .await
            .map_err(|e| Status::unavailable(e.to_string()))?;
        // Newest first.
        records.sort_by(|a, b| {
            (b.issued_at, b.recorded_at_ms)
                .cmp(&(a.issued_at, a.recorded_at_ms))
                .then_with(|| a.token_id.cmp(&b.token_id))
        });
        let tokens: Vec<v1::TokenInfo> = records
            .into_iter()
            .filter(|t| r.tenant == ALL_TENANTS || t.tenants.contains(&r.tenant))
            .filter(|t| r.include_expired || t.expires_at >= now)
            .map(|t| {
                let revoked = self.revocations.revoked(&t.token_id);
                v1::TokenInfo {
                    revoked: revoked.is_some(),
                    revoked_at_ms: revoked.map_or(0, |r| r.revoked_at_ms),
                    token_id: t.token_id,
                    subject: t.subject,
                    tenants: t.tenants,
                    roles: t.roles,
                    kinds: t.kinds,
                    issued_at: t.issued_at,
                    expires_at: t.expires_at,
                    issued_by: t.issued_by,
                }
            })
            .collect();
        Ok(Response::new(v1::ListTokensResponse { tokens }))
    }
}
