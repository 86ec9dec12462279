//! The authenticated identity behind a request, and the checks handlers make against it.

use std::fmt;
use std::sync::{Arc, Mutex};

use tonic::Status;

use super::{Role, ALL_TENANTS};

/// Who is calling, as proven by a validated token.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Caller {
    /// The token's `sub`.
    pub subject: String,
    /// Tenants the caller may access; [`ALL_TENANTS`] grants every tenant.
    pub tenants: Vec<String>,
    /// The caller's roles.
    pub roles: Vec<Role>,
    /// Object kinds the caller may touch; empty means every kind.
    pub kinds: Vec<String>,
    /// The token's id (`jti`), by which it is revoked, when it has one.
    token_id: Option<String>,
    /// The tenant this call asked for, as [`Caller::require_tenant`] last saw it. Clones
    /// share it, so the audit layer that wraps the server learns under which tenant to
    /// record a refusal without every handler having to tell it.
    asked_tenant: AskedTenant,
}

/// A note shared by a caller's clones; not part of the caller's identity.
#[derive(Clone, Default)]
struct AskedTenant(Arc<Mutex<Option<String>>>);

impl PartialEq for AskedTenant {
    fn eq(&self, _: &Self) -> bool {
        true
    }
}

impl Eq for AskedTenant {}

impl fmt::Debug for AskedTenant {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.get().fmt(f)
    }
}

impl AskedTenant {
    fn set(&self, tenant: &str) {
        *self.0.lock().unwrap_or_else(|e| e.into_inner()) = Some(tenant.to_string());
    }

    fn get(&self) -> Option<String> {
        self.0.lock().unwrap_or_else(|e| e.into_inner()).clone()
    }
}

impl Caller {
    /// A caller with these grants.
    pub fn new(
        subject: String,
        tenants: Vec<String>,
        roles: Vec<Role>,
        kinds: Vec<String>,
    ) -> Self {
        Self {
            subject,
            tenants,
            roles,
            kinds,
            token_id: None,
            asked_tenant: AskedTenant::default(),
        }
    }

    /// The caller, known to hold the token with this id.
    pub fn with_token_id(mut self, token_id: Option<String>) -> Self {
        self.token_id = token_id.filter(|id| !id.is_empty());
        self
    }

    /// The id (`jti`) of the token the caller presented, when it has one: what
    /// `backtrack token revoke` takes.
    pub fn token_id(&self) -> Option<&str> {
        self.token_id.as_deref()
    }

    /// The tenant the call last asked for through [`Caller::require_tenant`] (granted or
    /// not), or through [`Caller::note_tenant`].
    pub fn asked_tenant(&self) -> Option<String> {
        self.asked_tenant.get()
    }

    /// Notes the tenant a call is about without checking it (for calls that check access
    /// another way).
    pub fn note_tenant(&self, tenant: &str) {
        self.asked_tenant.set(tenant);
    }

    /// The role names, as tokens and audit records spell them.
    pub fn role_names(&self) -> Vec<String> {
        self.roles.iter().map(|r| r.as_str().to_string()).collect()
    }

    /// Whether the token grants `tenant` (by name or through [`ALL_TENANTS`]).
    pub fn can_access_tenant(&self, tenant: &str) -> bool {
        self.tenants
            .iter()
            .any(|granted| granted == ALL_TENANTS || granted == tenant)
    }

    /// Whether the caller holds `role`; `GlobalAdministrator` holds every role.
    pub fn has_role(&self, role: Role) -> bool {
        self.roles
            .iter()
            .any(|held| *held == role || *held == Role::GlobalAdministrator)
    }

    /// Whether the caller may touch objects of `kind` (an empty kind scope allows all).
    pub fn can_access_kind(&self, kind: &str) -> bool {
        self.kinds.is_empty() || self.kinds.iter().any(|granted| granted == kind)
    }

    /// `PERMISSION_DENIED` unless the token grants `tenant`.
    ///
    /// The message names only the requested tenant, never the caller's other tenants.
    pub fn require_tenant(&self, tenant: &str) -> Result<(), Status> {
        self.note_tenant(tenant);
        if self.can_access_tenant(tenant) {
            Ok(())
        } else {
            Err(Status::permission_denied(format!(
                "this token does not grant access to tenant '{tenant}'"
            )))
        }
    }

    /// `PERMISSION_DENIED` unless the caller holds at least one of `roles`.
    /// `action` names what was attempted, e.g. "StartRecovery".
    pub fn require_any_role(&self, roles: &[Role], action: &str) -> Result<(), Status> {
        if roles.iter().any(|role| self.has_role(*role)) {
            return Ok(());
        }
        let mut needed: Vec<&str> = roles.iter().map(|r| r.as_str()).collect();
        if !roles.contains(&Role::GlobalAdministrator) {
            needed.push(Role::GlobalAdministrator.as_str());
        }
        Err(Status::permission_denied(format!(
            "{action} needs one of the roles: {}",
            needed.join(", ")
        )))
    }

    /// `PERMISSION_DENIED` unless the caller is a global administrator: for protected
    /// actions (hard deletion, whole-tenant recovery), which no other role may take.
    pub fn require_global_administrator(&self, action: &str) -> Result<(), Status> {
        if self.roles.contains(&Role::GlobalAdministrator) {
            Ok(())
        } else {
            Err(Status::permission_denied(format!(
                "{action} is a protected action: it needs the GlobalAdministrator role"
            )))
        }
    }

    /// `PERMISSION_DENIED` unless the caller's kind scope includes `kind`.
    pub fn require_kind(&self, kind: &str) -> Result<(), Status> {
        if self.can_access_kind(kind) {
            Ok(())
        } else {
            Err(Status::permission_denied(format!(
                "this token does not grant access to objects of kind '{kind}'"
            )))
        }
    }
}

#[cfg(test)]
mod tests {
    use tonic::Code;

    use super::*;

    fn caller(tenants: &[&str], roles: &[Role], kinds: &[&str]) -> Caller {
        Caller::new(
            "alice".into(),
            tenants.iter().map(|t| t.to_string()).collect(),
            roles.to_vec(),
            kinds.iter().map(|k| k.to_string()).collect(),
        )
    }

    #[test]
    fn require_tenant_notes_the_asked_tenant_for_every_clone() {
        let c = caller(&["contoso"], &[Role::BackupReader], &[]);
        let seen_by_layer = c.clone();
        assert_eq!(seen_by_layer.asked_tenant(), None);
        assert!(c.require_tenant("fabrikam").is_err());
        assert_eq!(seen_by_layer.asked_tenant().as_deref(), Some("fabrikam"));
        assert_eq!(c, seen_by_layer);
    }

    #[test]
    fn named_tenants_grant_only_themselves() {
        let c = caller(&["contoso", "fabrikam"], &[], &[]);
        assert!(c.can_access_tenant("contoso"));
        assert!(c.can_access_tenant("fabrikam"));
        assert!(!c.can_access_tenant("tailspin"));
        assert!(!c.can_access_tenant("*"));
        assert!(!c.can_access_tenant("contoso*"));
    }

    #[test]
    fn wildcard_grants_every_tenant() {
        let c = caller(&["*"], &[], &[]);
        assert!(c.can_access_tenant("contoso"));
        assert!(c.can_access_tenant("anything-else"));
    }

    #[test]
    fn no_tenants_grant_nothing() {
        assert!(!caller(&[], &[Role::GlobalAdministrator], &[]).can_access_tenant("contoso"));
    }

    #[test]
    fn require_tenant_denies_without_listing_granted_tenants() {
        let c = caller(&["contoso", "secret-tenant"], &[], &[]);
        let status = c.require_tenant("fabrikam").expect_err("denied");
        assert_eq!(status.code(), Code::PermissionDenied);
        assert_eq!(
            status.message(),
            "this token does not grant access to tenant 'fabrikam'"
        );
        assert!(!status.message().contains("secret-tenant"));
    }

    #[test]
    fn global_administrator_implies_every_role() {
        let c = caller(&["*"], &[Role::GlobalAdministrator], &[]);
        for role in Role::ALL {
            assert!(c.has_role(role));
        }
    }

    #[test]
    fn other_roles_imply_only_themselves() {
        let c = caller(&["*"], &[Role::BackupReader], &[]);
        assert!(c.has_role(Role::BackupReader));
        assert!(!c.has_role(Role::BackupAdministrator));
        assert!(!c.has_role(Role::DirectoryWriter));
        assert!(!c.has_role(Role::GlobalAdministrator));
    }

    #[test]
    fn require_any_role_names_the_action_and_roles() {
        let c = caller(&["*"], &[Role::BackupReader], &[]);
        assert!(c
            .require_any_role(
                &[Role::BackupReader, Role::BackupAdministrator],
                "ListBackups"
            )
            .is_ok());
        let status = c
            .require_any_role(&[Role::BackupAdministrator], "StartRecovery")
            .expect_err("denied");
        assert_eq!(status.code(), Code::PermissionDenied);
        assert_eq!(
            status.message(),
            "StartRecovery needs one of the roles: BackupAdministrator, GlobalAdministrator"
        );
    }

    #[test]
    fn protected_actions_need_a_global_administrator() {
        let admin = caller(&["*"], &[Role::BackupAdministrator], &[]);
        let status = admin
            .require_global_administrator("hard deletion (purge)")
            .expect_err("denied");
        assert_eq!(status.code(), Code::PermissionDenied);
        assert!(status.message().contains("protected action"));
        assert!(status.message().contains("GlobalAdministrator"));
        let global = caller(&["*"], &[Role::GlobalAdministrator], &[]);
        assert!(global.require_global_administrator("x").is_ok());
    }

    #[test]
    fn kind_scope_limits_kinds_and_empty_allows_all() {
        let scoped = caller(&["*"], &[Role::BackupAdministrator], &["user"]);
        assert!(scoped.can_access_kind("user"));
        assert!(!scoped.can_access_kind("group"));
        assert_eq!(
            scoped.require_kind("group").map_err(|s| s.code()),
            Err(Code::PermissionDenied)
        );
        assert!(caller(&["*"], &[], &[]).can_access_kind("group"));
    }
}
