//! What the directory knows about each kind's attributes: read-only ones, secrets that are
//! never stored, links to other objects, and the types of well-known attributes.
//!
//! Attributes not listed here are accepted as they come (Graph returns many more than any
//! schema can list), as long as their names and sizes are valid.

use serde_json::Value;

use crate::kind::ObjectKind;

/// Attributes no caller may change; the directory maintains them.
pub const READ_ONLY: &[&str] = &["id", "createdDateTime", "deletedDateTime"];

/// The attribute that marks an object as synced from an on-premises directory.
pub const SYNCED_FLAG: &str = "onPremisesSyncEnabled";

/// A place in an object where a secret may be submitted.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SecretPath {
    /// Top-level attribute, e.g. `passwordCredentials`.
    pub attribute: &'static str,
    /// For a list of credentials, the field of each item that holds the secret
    /// (`secretText`); `None` when the whole attribute is the secret (`passwordProfile`).
    pub item_field: Option<&'static str>,
}

/// A relation from one object to others, such as a group's `members`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LinkRelation {
    pub name: &'static str,
    /// Kinds that may be the target of this relation.
    pub targets: &'static [ObjectKind],
    /// At most one target (a user's `manager`).
    pub single: bool,
}

/// The JSON type an attribute must have.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AttributeType {
    String,
    Bool,
    Number,
    StringList,
    List,
    Object,
}

impl AttributeType {
    /// Whether a (canonical, non-null) value has this type.
    pub fn accepts(self, value: &Value) -> bool {
        match self {
            AttributeType::String => value.is_string(),
            AttributeType::Bool => value.is_boolean(),
            AttributeType::Number => value.is_number(),
            AttributeType::StringList => value
                .as_array()
                .is_some_and(|items| items.iter().all(Value::is_string)),
            AttributeType::List => value.is_array(),
            AttributeType::Object => value.is_object(),
        }
    }

    /// How the type is named in error messages.
    pub fn describe(self) -> &'static str {
        match self {
            AttributeType::String => "a string",
            AttributeType::Bool => "a boolean",
            AttributeType::Number => "a number",
            AttributeType::StringList => "a list of strings",
            AttributeType::List => "a list",
            AttributeType::Object => "a JSON object",
        }
    }
}

use AttributeType as T;
use ObjectKind as K;

const PRINCIPALS: &[ObjectKind] = &[K::User, K::Group, K::ServicePrincipal];
const OWNERS: &[ObjectKind] = &[K::User, K::ServicePrincipal];
const USERS: &[ObjectKind] = &[K::User];
const AU_MEMBERS: &[ObjectKind] = &[K::User, K::Group];

/// The schema of one kind.
#[derive(Debug, Clone, Copy)]
pub struct KindSchema {
    pub kind: ObjectKind,
    pub required: &'static [&'static str],
    pub typed: &'static [(&'static str, AttributeType)],
    pub secrets: &'static [SecretPath],
    pub links: &'static [LinkRelation],
    /// Attribute whose value must be unique (case-insensitively) within a tenant.
    pub unique: Option<&'static str>,
    /// Allowed values of the `state` attribute, where the kind has one.
    pub states: &'static [&'static str],
}

impl KindSchema {
    pub fn relation(&self, name: &str) -> Option<&LinkRelation> {
        self.links.iter().find(|r| r.name == name)
    }

    pub fn attribute_type(&self, name: &str) -> Option<AttributeType> {
        self.typed.iter().find(|(n, _)| *n == name).map(|(_, t)| *t)
    }
}

const CREDENTIAL_SECRETS: &[SecretPath] = &[
    SecretPath {
        attribute: "passwordCredentials",
        item_field: Some("secretText"),
    },
    SecretPath {
        attribute: "keyCredentials",
        item_field: Some("key"),
    },
];

const COMMON: &[(&str, AttributeType)] = &[("displayName", T::String), ("description", T::String)];

/// The schema of `kind`.
/// Whether `name` is a secret attribute of some kind (names match whatever their case).
pub fn may_be_secret(name: &str) -> bool {
    ObjectKind::ALL.iter().any(|kind| {
        schema(*kind)
            .secrets
            .iter()
            .any(|s| s.attribute.eq_ignore_ascii_case(name))
    })
}

pub fn schema(kind: ObjectKind) -> KindSchema {
    let base = KindSchema {
        kind,
        required: &[],
        typed: COMMON,
        secrets: &[],
        links: &[],
        unique: None,
        states: &[],
    };
    match kind {
        K::User => KindSchema {
            required: &["displayName", "userPrincipalName"],
            typed: &[
                ("displayName", T::String),
                ("userPrincipalName", T::String),
                ("accountEnabled", T::Bool),
                ("mail", T::String),
                ("mailNickname", T::String),
                ("department", T::String),
                ("jobTitle", T::String),
                ("userType", T::String),
                ("businessPhones", T::StringList),
                ("onPremisesSyncEnabled", T::Bool),
            ],
            secrets: &[SecretPath {
                attribute: "passwordProfile",
                item_field: None,
            }],
            links: &[LinkRelation {
                name: "manager",
                targets: USERS,
                single: true,
            }],
            unique: Some("userPrincipalName"),
            ..base
        },
        K::Group => KindSchema {
            required: &["displayName"],
            typed: &[
                ("displayName", T::String),
                ("description", T::String),
                ("mailNickname", T::String),
                ("mailEnabled", T::Bool),
                ("securityEnabled", T::Bool),
                ("groupTypes", T::StringList),
                ("onPremisesSyncEnabled", T::Bool),
            ],
            links: &[
                LinkRelation {
                    name: "members",
                    targets: PRINCIPALS,
                    single: false,
                },
                LinkRelation {
                    name: "owners",
                    targets: OWNERS,
                    single: false,
                },
            ],
            ..base
        },
        K::Application => KindSchema {
            required: &["displayName"],
            typed: &[
                ("displayName", T::String),
                ("appId", T::String),
                ("signInAudience", T::String),
                ("identifierUris", T::StringList),
                ("requiredResourceAccess", T::List),
                ("passwordCredentials", T::List),
                ("keyCredentials", T::List),
                ("web", T::Object),
            ],
            secrets: CREDENTIAL_SECRETS,
            links: &[LinkRelation {
                name: "owners",
                targets: OWNERS,
                single: false,
            }],
            ..base
        },
        K::ServicePrincipal => KindSchema {
            typed: &[
                ("displayName", T::String),
                ("appId", T::String),
                ("servicePrincipalType", T::String),
                ("publisherName", T::String),
                ("loginUrl", T::String),
                ("accountEnabled", T::Bool),
                ("passwordCredentials", T::List),
                ("keyCredentials", T::List),
                ("servicePrincipalNames", T::StringList),
            ],
            secrets: CREDENTIAL_SECRETS,
            links: &[LinkRelation {
                name: "owners",
                targets: OWNERS,
                single: false,
            }],
            ..base
        },
        K::ConditionalAccessPolicy => KindSchema {
            required: &["displayName"],
            typed: &[
                ("displayName", T::String),
                ("state", T::String),
                ("conditions", T::Object),
                ("grantControls", T::Object),
                ("sessionControls", T::Object),
            ],
            states: &["enabled", "disabled", "enabledForReportingButNotEnforced"],
            ..base
        },
        K::NamedLocation => KindSchema {
            required: &["displayName"],
            typed: &[
                ("displayName", T::String),
                ("ipRanges", T::List),
                ("countriesAndRegions", T::StringList),
                ("isTrusted", T::Bool),
                ("includeUnknownCountriesAndRegions", T::Bool),
            ],
            ..base
        },
        K::AdministrativeUnit => KindSchema {
            links: &[LinkRelation {
                name: "members",
                targets: AU_MEMBERS,
                single: false,
            }],
            ..base
        },
        K::RoleDefinition => KindSchema {
            typed: &[
                ("displayName", T::String),
                ("description", T::String),
                ("isBuiltIn", T::Bool),
                ("isEnabled", T::Bool),
                ("rolePermissions", T::List),
            ],
            ..base
        },
        K::RoleAssignment => KindSchema {
            typed: &[
                ("principalId", T::String),
                ("roleDefinitionId", T::String),
                ("directoryScopeId", T::String),
            ],
            ..base
        },
        K::AppRoleAssignment => KindSchema {
            typed: &[
                ("principalId", T::String),
                ("resourceId", T::String),
                ("appRoleId", T::String),
                ("principalType", T::String),
            ],
            ..base
        },
        K::OAuth2PermissionGrant => KindSchema {
            typed: &[
                ("clientId", T::String),
                ("resourceId", T::String),
                ("consentType", T::String),
                ("scope", T::String),
            ],
            ..base
        },
        K::AuthenticationMethodsPolicy | K::AuthorizationPolicy => base,
    }
}
