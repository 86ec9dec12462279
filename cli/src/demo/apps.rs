//! Applications and what hangs off them: a service principal each (plus Microsoft Graph's),
//! up to three app role assignments per application (the app to Graph, its access group and
//! one user to the app) and one tenant-wide delegated permission grant per application.

use rand::Rng;
use serde_json::{json, Value};
use uuid::Builder;

use super::ids::{base64url, guid_bytes_le, MISC_TENANT, S_APP, S_ASSIGNMENT};
use super::Tenant;

const GRAPH_APP_ID: &str = "00000003-0000-0000-c000-000000000000";
const MICROSOFT_TENANT_ID: &str = "f8cdef31-a31e-4b4a-93e4-5f571e91255a";
const SCOPE_USER_READ: &str = "e1fe6dd8-ba31-4d61-89e7-88639da4683d";
const SCOPE_MAIL_READ: &str = "570282fd-fa5b-430d-a7fd-fc8dc98a9dca";
const ROLE_USER_READ_ALL: &str = "df021288-bdef-4463-88db-98f22de89214";
const ROLE_GROUP_READ_ALL: &str = "5b567255-7703-4780-807c-7be8301ae99b";

#[rustfmt::skip]
const APP_NAMES: [&str; 30] = [
    "Expense Portal", "HR Self Service", "Payroll Connector", "CRM Sync", "Contract Vault",
    "Travel Booking", "Service Desk", "Build Pipeline", "Analytics Dashboard", "Learning Hub",
    "Visitor Check-in", "Inventory Tracker", "Marketing Automation", "Partner Portal",
    "Invoice Approval", "Customer Feedback", "Field Service Mobile", "Security Scanner",
    "Document Signing", "Recruiting Tracker", "Badge Access Sync", "Knowledge Base",
    "Release Notes Bot", "Cost Explorer", "Incident Pager", "Benefits Enrollment",
    "Procurement Hub", "Time Tracking", "Sales Forecast", "Data Lake Ingest",
];
const GRANT_SCOPES: [&str; 4] = [
    "User.Read Mail.Read",
    "User.Read",
    "openid profile offline_access User.Read",
    "User.Read Calendars.Read",
];

impl Tenant {
    pub(super) fn app_name(&self, a: usize) -> String {
        let round = a / APP_NAMES.len();
        let name = APP_NAMES[a % APP_NAMES.len()];
        if round == 0 {
            name.to_string()
        } else {
            format!("{name} {}", round + 1)
        }
    }

    fn app_slug(&self, a: usize) -> String {
        let name = self.app_name(a).to_ascii_lowercase();
        name.split(|c: char| !c.is_ascii_alphanumeric())
            .filter(|s| !s.is_empty())
            .collect::<Vec<_>>()
            .join("-")
    }

    fn app_owners(&self, a: usize) -> Vec<String> {
        let mut r = self.rng(S_APP, 3 * a + 1);
        let count = r.random_range(1..=2);
        self.sample_users(&mut r, count)
            .into_iter()
            .map(|u| self.user_id(u))
            .collect()
    }

    fn app_roles(&self, a: usize) -> Value {
        json!([
            {"allowedMemberTypes": ["User"], "description": "Read access to the application.",
             "displayName": "Reader", "id": self.app_role_id(a, 0), "isEnabled": true, "value": "App.Read"},
            {"allowedMemberTypes": ["User"], "description": "Administers the application.",
             "displayName": "Administrator", "id": self.app_role_id(a, 1), "isEnabled": true, "value": "App.Admin"},
        ])
    }

    pub(super) fn application(&self, a: usize) -> Value {
        let mut r = self.rng(S_APP, 3 * a);
        let (slug, client_id) = (self.app_slug(a), self.app_client_id(a));
        let site = format!("https://{slug}.{}", self.domain);
        let mut access = vec![json!({"id": SCOPE_USER_READ, "type": "Scope"})];
        if r.random_bool(0.4) {
            access.push(json!({"id": SCOPE_MAIL_READ, "type": "Scope"}));
        }
        let app_permission = [ROLE_USER_READ_ALL, ROLE_GROUP_READ_ALL][a % 2];
        access.push(json!({"id": app_permission, "type": "Role"}));
        let mut redirects = vec![format!("{site}/signin-oidc")];
        if r.random_bool(0.3) {
            redirects.push("https://localhost:5001/signin-oidc".into());
        }
        let created = r.random_range(60..1_200);
        let mut o = json!({
            "@kind": "application",
            "id": self.app_object_id(a),
            "appId": client_id,
            "displayName": self.app_name(a),
            "description": format!("{} line-of-business application.", self.org),
            "signInAudience": if r.random_bool(0.85) { "AzureADMyOrg" } else { "AzureADMultipleOrgs" },
            "identifierUris": [if r.random_bool(0.5) { format!("api://{client_id}") } else { site.clone() }],
            "publisherDomain": self.domain,
            "requiredResourceAccess": [{"resourceAppId": GRAPH_APP_ID, "resourceAccess": access}],
            "web": {
                "redirectUris": redirects,
                "homePageUrl": format!("{site}/"),
                "logoutUrl": format!("{site}/signout-oidc"),
                "implicitGrantSettings": {"enableIdTokenIssuance": r.random_bool(0.3), "enableAccessTokenIssuance": false},
            },
            "appRoles": self.app_roles(a),
            "createdDateTime": self.date(created),
            "@links": {"owners": self.app_owners(a)},
        });
        if r.random_bool(0.6) {
            // Credential metadata only: the secret itself never leaves Graph.
            let hint: String = (0..3)
                .map(|_| {
                    char::from(
                        b"ABCDEFGHJKLMNPQRSTUVWXYZabcdefghijkmnopqrstuvwxyz23456789"
                            [r.random_range(0..57)],
                    )
                })
                .collect();
            o["passwordCredentials"] = json!([{
                "keyId": Builder::from_random_bytes(r.random()).into_uuid().to_string(),
                "displayName": "CI/CD deployment", "hint": hint,
                "startDateTime": self.date(created), "endDateTime": self.date(created - 730),
            }]);
        }
        if r.random_bool(0.3) {
            let thumbprint: String = (0..20)
                .map(|_| format!("{:02X}", r.random::<u8>()))
                .collect();
            o["keyCredentials"] = json!([{
                "keyId": Builder::from_random_bytes(r.random()).into_uuid().to_string(),
                "type": "AsymmetricX509Cert", "usage": "Verify", "displayName": format!("CN={slug}"),
                "customKeyIdentifier": thumbprint,
                "startDateTime": self.date(created), "endDateTime": self.date(created - 365),
            }]);
        }
        o
    }

    pub(super) fn service_principal(&self, s: usize) -> Value {
        let Some(a) = s.checked_sub(1) else {
            return json!({
                "@kind": "servicePrincipal", "id": self.sp_id(0),
                "appId": GRAPH_APP_ID, "appDisplayName": "Microsoft Graph", "displayName": "Microsoft Graph",
                "servicePrincipalType": "Application", "publisherName": "Microsoft Services",
                "appOwnerOrganizationId": MICROSOFT_TENANT_ID, "accountEnabled": true,
                "servicePrincipalNames": [GRAPH_APP_ID, "https://graph.microsoft.com", "https://graph.microsoft.com/"],
                "appRoles": [
                    {"allowedMemberTypes": ["Application"], "displayName": "Read all users' full profiles", "id": ROLE_USER_READ_ALL, "isEnabled": true, "value": "User.Read.All"},
                    {"allowedMemberTypes": ["Application"], "displayName": "Read all groups", "id": ROLE_GROUP_READ_ALL, "isEnabled": true, "value": "Group.Read.All"},
                ],
                "oauth2PermissionScopes": [
                    {"id": SCOPE_USER_READ, "type": "User", "value": "User.Read", "isEnabled": true, "adminConsentDisplayName": "Sign in and read user profile"},
                    {"id": SCOPE_MAIL_READ, "type": "User", "value": "Mail.Read", "isEnabled": true, "adminConsentDisplayName": "Read user mail"},
                ],
            });
        };
        let app = self.application(a);
        let mut r = self.rng(S_APP, 3 * a + 2);
        let mut o = json!({
            "@kind": "servicePrincipal", "id": self.sp_id(s),
            "appId": app["appId"], "appDisplayName": app["displayName"], "displayName": app["displayName"],
            "servicePrincipalType": "Application", "publisherName": self.org,
            "appOwnerOrganizationId": self.misc_id(MISC_TENANT), "accountEnabled": true,
            "appRoleAssignmentRequired": r.random_bool(0.5),
            "servicePrincipalNames": [app["appId"].clone(), app["identifierUris"][0].clone()],
            "appRoles": app["appRoles"], "replyUrls": app["web"]["redirectUris"],
            "homepage": app["web"]["homePageUrl"], "signInAudience": app["signInAudience"],
            "tags": ["WindowsAzureActiveDirectoryIntegratedApp"],
            "@links": app["@links"],
        });
        if r.random_bool(0.5) {
            o["loginUrl"] = json!(format!(
                "https://{}.{}/login",
                self.app_slug(a),
                self.domain
            ));
        }
        o
    }

    pub(super) fn assignments_per_app(&self) -> usize {
        1 + usize::from(self.groups > 0) + usize::from(self.users > 0)
    }

    pub(super) fn app_role_assignment(&self, j: usize) -> Value {
        let (a, which) = (
            j / self.assignments_per_app(),
            j % self.assignments_per_app(),
        );
        let mut r = self.rng(S_ASSIGNMENT, j);
        let (app_sp, app_name) = (self.sp_id(1 + a), self.app_name(a));
        let (principal, principal_type, principal_name, resource, resource_name, role) =
            match (which, self.groups > 0) {
                (0, _) => (
                    app_sp,
                    "ServicePrincipal",
                    app_name,
                    self.sp_id(0),
                    "Microsoft Graph".to_string(),
                    [ROLE_USER_READ_ALL, ROLE_GROUP_READ_ALL][a % 2].to_string(),
                ),
                (1, true) => {
                    let g = self.access_group_of_app(a).unwrap_or(a % self.groups);
                    (
                        self.group_id(g),
                        "Group",
                        self.group_name(g).0,
                        app_sp,
                        app_name,
                        self.app_role_id(a, 0),
                    )
                }
                _ => {
                    let u = r.random_range(0..self.users);
                    (
                        self.user_id(u),
                        "User",
                        self.person(u).display_name(),
                        app_sp,
                        app_name,
                        self.app_role_id(a, 1),
                    )
                }
            };
        // Graph's ids: the principal's GUID bytes, then 16 more bytes, base64url.
        let mut raw = guid_bytes_le(&principal).to_vec();
        raw.extend(r.random::<[u8; 16]>());
        json!({
            "@kind": "appRoleAssignment", "id": base64url(&raw),
            "principalId": principal, "principalType": principal_type, "principalDisplayName": principal_name,
            "resourceId": resource, "resourceDisplayName": resource_name, "appRoleId": role,
            "createdDateTime": self.date(r.random_range(1..365)),
        })
    }

    pub(super) fn permission_grant(&self, a: usize) -> Value {
        let (client, resource) = (self.sp_id(1 + a), self.sp_id(0));
        let mut raw = guid_bytes_le(&client).to_vec();
        raw.extend(guid_bytes_le(&resource));
        json!({
            "@kind": "oauth2PermissionGrant", "id": base64url(&raw),
            "clientId": client, "resourceId": resource, "consentType": "AllPrincipals",
            "scope": GRANT_SCOPES[a % GRANT_SCOPES.len()],
        })
    }
}
