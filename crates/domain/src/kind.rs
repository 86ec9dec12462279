//! Object kinds, named as Microsoft Graph names them.

use std::fmt;
use std::str::FromStr;

use crate::DomainError;

/// A kind of directory object. The string form is the Graph name (`conditionalAccessPolicy`).
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, serde::Serialize, serde::Deserialize,
)]
#[serde(rename_all = "camelCase")]
pub enum ObjectKind {
    User,
    Group,
    Application,
    ServicePrincipal,
    ConditionalAccessPolicy,
    NamedLocation,
    AuthenticationMethodsPolicy,
    AuthorizationPolicy,
    AdministrativeUnit,
    RoleDefinition,
    RoleAssignment,
    AppRoleAssignment,
    #[serde(rename = "oauth2PermissionGrant")]
    OAuth2PermissionGrant,
}

impl ObjectKind {
    /// Every kind, in a stable order.
    pub const ALL: [ObjectKind; 13] = [
        ObjectKind::User,
        ObjectKind::Group,
        ObjectKind::Application,
        ObjectKind::ServicePrincipal,
        ObjectKind::ConditionalAccessPolicy,
        ObjectKind::NamedLocation,
        ObjectKind::AuthenticationMethodsPolicy,
        ObjectKind::AuthorizationPolicy,
        ObjectKind::AdministrativeUnit,
        ObjectKind::RoleDefinition,
        ObjectKind::RoleAssignment,
        ObjectKind::AppRoleAssignment,
        ObjectKind::OAuth2PermissionGrant,
    ];

    /// The Graph name, which is also the kind token in event subjects.
    pub fn as_str(self) -> &'static str {
        match self {
            ObjectKind::User => "user",
            ObjectKind::Group => "group",
            ObjectKind::Application => "application",
            ObjectKind::ServicePrincipal => "servicePrincipal",
            ObjectKind::ConditionalAccessPolicy => "conditionalAccessPolicy",
            ObjectKind::NamedLocation => "namedLocation",
            ObjectKind::AuthenticationMethodsPolicy => "authenticationMethodsPolicy",
            ObjectKind::AuthorizationPolicy => "authorizationPolicy",
            ObjectKind::AdministrativeUnit => "administrativeUnit",
            ObjectKind::RoleDefinition => "roleDefinition",
            ObjectKind::RoleAssignment => "roleAssignment",
            ObjectKind::AppRoleAssignment => "appRoleAssignment",
            ObjectKind::OAuth2PermissionGrant => "oauth2PermissionGrant",
        }
    }

    /// Singleton kinds have exactly one object per tenant, whose id is the kind name.
    pub fn singleton_id(self) -> Option<&'static str> {
        match self {
            ObjectKind::AuthenticationMethodsPolicy => Some("authenticationMethodsPolicy"),
            ObjectKind::AuthorizationPolicy => Some("authorizationPolicy"),
            _ => None,
        }
    }

    /// Whether Graph gives objects of this kind GUID ids. The others use opaque
    /// base64url-like ids (assignments and grants) or a fixed name (singletons).
    pub fn has_guid_ids(self) -> bool {
        !matches!(
            self,
            ObjectKind::AuthenticationMethodsPolicy
                | ObjectKind::AuthorizationPolicy
                | ObjectKind::RoleAssignment
                | ObjectKind::AppRoleAssignment
                | ObjectKind::OAuth2PermissionGrant
        )
    }
}

impl fmt::Display for ObjectKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for ObjectKind {
    type Err = DomainError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        ObjectKind::ALL
            .iter()
            .copied()
            .find(|k| k.as_str() == s)
            .ok_or_else(|| {
                let names: Vec<&str> = ObjectKind::ALL.iter().map(|k| k.as_str()).collect();
                DomainError::invalid(format!(
                    "unknown object kind '{}': use one of {}",
                    crate::validate::printable(s),
                    names.join(", ")
                ))
            })
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn every_kind_parses_back_from_its_name() {
        for kind in ObjectKind::ALL {
            assert_eq!(kind.as_str().parse::<ObjectKind>(), Ok(kind));
        }
    }

    #[test]
    fn unknown_kind_lists_the_valid_ones() {
        let err = "printer".parse::<ObjectKind>().unwrap_err();
        assert!(err.to_string().contains("unknown object kind 'printer'"));
        assert!(err.to_string().contains("conditionalAccessPolicy"));
    }
}
