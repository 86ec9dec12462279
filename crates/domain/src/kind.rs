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
        NAMES[self as usize]
    }

    /// Singleton kinds have exactly one object per tenant, whose id is the kind name.
    pub fn singleton_id(self) -> Option<&'static str> {
        match self {
            ObjectKind::AuthenticationMethodsPolicy => Some("authenticationMethodsPolicy"),
            ObjectKind::AuthorizationPolicy => Some("authorizationPolicy"),
            _ => None,
        }
    }

    /// The Graph types (`@odata.type` without its `#microsoft.graph.` prefix) of objects of
    /// this kind; a named location is one of two.
    pub fn graph_types(self) -> &'static [&'static str] {
        match self {
            ObjectKind::NamedLocation => {
                &["ipNamedLocation", "countryNamedLocation", "namedLocation"]
            }
            ObjectKind::RoleDefinition => &["unifiedRoleDefinition"],
            ObjectKind::RoleAssignment => &["unifiedRoleAssignment"],
            ObjectKind::OAuth2PermissionGrant => &["oAuth2PermissionGrant"],
            other => std::slice::from_ref(&NAMES[other as usize]),
        }
    }

    /// The kind of a Graph `@odata.type` (`#microsoft.graph.user`; the `#` and the
    /// namespace may be left out, and case does not matter). `None` for a type that is no
    /// kind of ours (a device, a contact).
    pub fn from_graph_type(odata_type: &str) -> Option<ObjectKind> {
        let name = odata_type.strip_prefix('#').unwrap_or(odata_type);
        let name = match name.get(..NAMESPACE.len()) {
            Some(prefix) if prefix.eq_ignore_ascii_case(NAMESPACE) => &name[NAMESPACE.len()..],
            _ => name,
        };
        ObjectKind::ALL.into_iter().find(|kind| {
            kind.graph_types()
                .iter()
                .any(|t| t.eq_ignore_ascii_case(name))
        })
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

/// The namespace of Graph's type names.
const NAMESPACE: &str = "microsoft.graph.";

/// Each kind's name, in the order of [`ObjectKind::ALL`] (the discriminants').
const NAMES: [&str; 13] = [
    "user",
    "group",
    "application",
    "servicePrincipal",
    "conditionalAccessPolicy",
    "namedLocation",
    "authenticationMethodsPolicy",
    "authorizationPolicy",
    "administrativeUnit",
    "roleDefinition",
    "roleAssignment",
    "appRoleAssignment",
    "oauth2PermissionGrant",
];

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
    fn graph_types_name_their_kind() {
        for kind in ObjectKind::ALL {
            for t in kind.graph_types() {
                for given in [
                    format!("#microsoft.graph.{t}"),
                    t.to_string(),
                    format!("Microsoft.Graph.{}", t.to_uppercase()),
                ] {
                    assert_eq!(ObjectKind::from_graph_type(&given), Some(kind), "{given}");
                }
            }
        }
        assert_eq!(ObjectKind::from_graph_type("#microsoft.graph.device"), None);
        assert_eq!(ObjectKind::from_graph_type("#microsoft.graph."), None);
        assert_eq!(ObjectKind::from_graph_type(""), None);
        assert_eq!(
            ObjectKind::from_graph_type("#microsoft.graph.unifiedRoleAssignment"),
            Some(ObjectKind::RoleAssignment)
        );
        assert_eq!(
            ObjectKind::from_graph_type("#microsoft.graph.ipNamedLocation"),
            Some(ObjectKind::NamedLocation)
        );
    }

    #[test]
    fn unknown_kind_lists_the_valid_ones() {
        let err = "printer".parse::<ObjectKind>().unwrap_err();
        assert!(err.to_string().contains("unknown object kind 'printer'"));
        assert!(err.to_string().contains("conditionalAccessPolicy"));
    }
}
