//! Delegated administration: an administrative unit per region, two custom directory roles,
//! and assignments of built-in and custom roles to the emergency-access accounts and the
//! heads of IT, Legal and Engineering.

use std::collections::BTreeSet;

use serde_json::{json, Value};

use super::groups::FIRST_GENERIC_GROUP;
use super::ids::{base64url, guid_bytes_le, MISC_ROLE, MISC_UNIT};
use super::people::{DEPARTMENTS, ENGINEERING, IT, LEGAL, REGIONS};
use super::{links, Tenant};

pub(super) const GLOBAL_ADMINISTRATOR: &str = "62e90394-69f5-4237-9190-012177145e10";
pub(super) const USER_ADMINISTRATOR: &str = "fe930be7-5e62-47db-91af-98c3a49a38b1";
pub(super) const CONDITIONAL_ACCESS_ADMINISTRATOR: &str = "b1be1c3e-b65d-4f19-8427-f6fa0d97feb9";
const SECURITY_READER: &str = "5d6b6bb7-de71-4623-b4af-96380a352509";

/// Custom directory roles: name, description, allowed resource actions.
pub(super) const CUSTOM_ROLES: [(&str, &str, &[&str]); 2] = [
    (
        "Helpdesk Password Operator",
        "Resets passwords and revokes sessions of non-admin users.",
        &[
            "microsoft.directory/users/password/update",
            "microsoft.directory/users/invalidateAllRefreshTokens",
            "microsoft.directory/users/basic/update",
        ],
    ),
    (
        "Application Registration Reviewer",
        "Reads app registrations and manages their owners and credentials.",
        &[
            "microsoft.directory/applications/allProperties/read",
            "microsoft.directory/applications/owners/update",
            "microsoft.directory/applications/credentials/update",
        ],
    ),
];

impl Tenant {
    pub(super) fn administrative_unit(&self, u: usize) -> Value {
        let (name, description) = REGIONS[u];
        let mut members: Vec<String> = self
            .scan_users(1_000, |p| p.department.is_some() && p.office.5 == u)
            .into_iter()
            .map(|i| self.user_id(i))
            .collect();
        members.extend(
            (0..5)
                .map(|j| FIRST_GENERIC_GROUP + u + 3 * j)
                .filter_map(|g| self.group_if(g)),
        );
        json!({
            "@kind": "administrativeUnit", "id": self.misc_id(MISC_UNIT + u),
            "displayName": name, "description": description,
            "visibility": if u == 0 { "HiddenMembership" } else { "Public" },
            "@links": links(&[("members", members)]),
        })
    }

    pub(super) fn role_definition(&self, n: usize) -> Value {
        let (name, description, actions) = CUSTOM_ROLES[n];
        let id = self.misc_id(MISC_ROLE + n);
        json!({
            "@kind": "roleDefinition", "id": id, "templateId": id,
            "displayName": name, "description": description,
            "isBuiltIn": false, "isEnabled": true, "resourceScopes": ["/"], "version": "1",
            "rolePermissions": [{"allowedResourceActions": actions}],
        })
    }

    /// (role definition id, user index) pairs, without duplicates.
    pub(super) fn role_assignments(&self) -> Vec<(String, usize)> {
        let mut wanted: Vec<(String, Option<usize>)> = Vec::new();
        let emergency = self.emergency_users();
        if emergency.is_empty() {
            wanted.push((GLOBAL_ADMINISTRATOR.into(), self.user_if(0)));
        }
        wanted.extend(
            emergency
                .into_iter()
                .map(|u| (GLOBAL_ADMINISTRATOR.to_string(), Some(u))),
        );
        let it_head = self.department_head(IT);
        wanted.push((USER_ADMINISTRATOR.into(), it_head));
        wanted.push((CONDITIONAL_ACCESS_ADMINISTRATOR.into(), it_head));
        wanted.push((SECURITY_READER.into(), self.department_head(LEGAL)));
        let it_manager = DEPARTMENTS.len() + IT + 1;
        wanted.push((
            self.misc_id(MISC_ROLE),
            (it_manager < self.managers).then_some(it_manager),
        ));
        wanted.push((
            self.misc_id(MISC_ROLE + 1),
            self.department_head(ENGINEERING),
        ));
        let mut seen = BTreeSet::new();
        wanted
            .into_iter()
            .filter_map(|(role, user)| user.map(|u| (role, u)))
            .filter(|pair| seen.insert(pair.clone()))
            .collect()
    }

    pub(super) fn role_assignment(&self, n: usize) -> Value {
        let (role, user) = self.role_assignments().swap_remove(n);
        let principal = self.user_id(user);
        let mut raw = guid_bytes_le(&role).to_vec();
        raw.extend(guid_bytes_le(&principal));
        json!({
            "@kind": "roleAssignment", "id": format!("{}-1", base64url(&raw)),
            "@odata.type": "#microsoft.graph.unifiedRoleAssignment",
            "principalId": principal, "roleDefinitionId": role, "directoryScopeId": "/",
        })
    }
}
