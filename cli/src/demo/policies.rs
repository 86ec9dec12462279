//! Tenant-wide policy: the authorization and authentication methods singletons, named
//! locations, and nine Conditional Access policies after Microsoft's common baseline, most
//! of them excluding the emergency-access group.

use serde_json::{json, Value};

use super::groups::{EMERGENCY_GROUP, FIRST_DEPARTMENT_GROUP};
use super::ids::{MISC_LOCATION, MISC_POLICY};
use super::people::{HUMAN_RESOURCES, SALES};
use super::roles::{CONDITIONAL_ACCESS_ADMINISTRATOR, GLOBAL_ADMINISTRATOR, USER_ADMINISTRATOR};
use super::{merge, Tenant};

pub(super) const SINGLETONS: usize = 2;
pub(super) const NAMED_LOCATIONS: usize = 4;
pub(super) const CA_POLICIES: usize = 9;
/// Built-in roles that CA001 protects with MFA.
#[rustfmt::skip]
const ADMIN_ROLES: [&str; 8] = [
    GLOBAL_ADMINISTRATOR,
    USER_ADMINISTRATOR,
    CONDITIONAL_ACCESS_ADMINISTRATOR,
    "194ae4cb-b126-40b2-bd5b-6091b380977d", // Security Administrator
    "9b895d92-2cd3-44c7-9d02-a6ac2d5ea5c3", // Application Administrator
    "158c047a-c907-4556-b7ef-446551a6b5f7", // Cloud Application Administrator
    "729827e3-9c14-49f7-bb1b-9608f156bbb8", // Helpdesk Administrator
    "e8611ab8-c189-46e8-94e1-60213ab1f814", // Privileged Role Administrator
];

impl Tenant {
    pub(super) fn singleton(&self, n: usize) -> Value {
        if n == 0 {
            authorization_policy()
        } else {
            authentication_methods_policy()
        }
    }

    pub(super) fn named_location(&self, n: usize) -> Value {
        let id = self.misc_id(MISC_LOCATION + n);
        let created = self.date(400 - 30 * n as i64);
        let ip = |name: &str, trusted: bool, ranges: &[&str]| {
            let ranges: Vec<Value> = ranges
                .iter()
                .map(|cidr| {
                    let family = if cidr.contains(':') { "iPv6CidrRange" } else { "iPv4CidrRange" };
                    json!({"@odata.type": format!("#microsoft.graph.{family}"), "cidrAddress": cidr})
                })
                .collect();
            json!({
                "@kind": "namedLocation", "id": id,
                "@odata.type": "#microsoft.graph.ipNamedLocation",
                "displayName": name, "isTrusted": trusted, "ipRanges": ranges,
                "createdDateTime": created, "modifiedDateTime": created,
            })
        };
        match n {
            0 => ip("Headquarters", true, &["203.0.113.0/24", "2001:db8:1::/48"]),
            1 => ip("Branch offices", true, &["198.51.100.0/24", "192.0.2.0/25"]),
            2 => ip("Contractor VPN egress", false, &["192.0.2.128/25"]),
            _ => json!({
                "@kind": "namedLocation", "id": id,
                "@odata.type": "#microsoft.graph.countryNamedLocation",
                "displayName": "Blocked countries",
                "countriesAndRegions": ["CU", "IR", "KP", "SY"],
                "countryLookupMethod": "clientIpAddress",
                "includeUnknownCountriesAndRegions": false,
                "createdDateTime": created, "modifiedDateTime": created,
            }),
        }
    }

    pub(super) fn conditional_access_policy(&self, n: usize) -> Value {
        let emergency: Vec<String> = self.group_if(EMERGENCY_GROUP).into_iter().collect();
        let group_or_none = |g: usize| match self.group_if(g) {
            Some(id) => (json!([]), json!([id])),
            None => (json!(["None"]), json!([])),
        };
        let trusted = [self.misc_id(MISC_LOCATION), self.misc_id(MISC_LOCATION + 1)];
        let all_apps = json!({"includeApplications": ["All"]});
        let (name, state, users, applications, client_apps, locations, grant) = match n {
            0 => (
                "CA001: Require MFA for administrators",
                "enabled",
                json!({"includeUsers": [], "includeRoles": ADMIN_ROLES, "excludeGroups": emergency}),
                all_apps,
                json!(["all"]),
                None,
                json!(["mfa"]),
            ),
            1 => (
                "CA002: Block legacy authentication",
                "enabled",
                json!({"includeUsers": ["All"], "excludeGroups": emergency}),
                all_apps,
                json!(["exchangeActiveSync", "other"]),
                None,
                json!(["block"]),
            ),
            2 => (
                "CA003: Require MFA outside trusted locations",
                "enabledForReportingButNotEnforced",
                json!({"includeUsers": ["All"], "excludeUsers": ["GuestsOrExternalUsers"], "excludeGroups": emergency}),
                all_apps,
                json!(["browser", "mobileAppsAndDesktopClients"]),
                Some(json!({"includeLocations": ["All"], "excludeLocations": ["AllTrusted"]})),
                json!(["mfa"]),
            ),
            3 => {
                let (include_users, include_groups) = group_or_none(FIRST_DEPARTMENT_GROUP + SALES);
                (
                    "CA004: Require compliant device for Sales",
                    "enabled",
                    json!({"includeUsers": include_users, "includeGroups": include_groups, "excludeGroups": emergency}),
                    all_apps,
                    json!(["all"]),
                    None,
                    json!(["compliantDevice", "domainJoinedDevice"]),
                )
            }
            4 => (
                "CA005: Block sign-ins from blocked countries",
                "enabled",
                json!({"includeUsers": ["All"], "excludeGroups": emergency}),
                all_apps,
                json!(["all"]),
                Some(json!({"includeLocations": [self.misc_id(MISC_LOCATION + 3)]})),
                json!(["block"]),
            ),
            5 => (
                "CA006: Require MFA for guests",
                "enabled",
                json!({"includeUsers": ["GuestsOrExternalUsers"]}),
                all_apps,
                json!(["all"]),
                None,
                json!(["mfa"]),
            ),
            6 => (
                "CA007: Require MFA for risky sign-ins",
                "enabled",
                json!({"includeUsers": ["All"], "excludeGroups": emergency}),
                all_apps,
                json!(["all"]),
                None,
                json!(["mfa"]),
            ),
            7 => {
                let (include_users, include_groups) =
                    group_or_none(FIRST_DEPARTMENT_GROUP + HUMAN_RESOURCES);
                let apps: Vec<String> = (0..self.apps.min(3))
                    .map(|a| self.app_client_id(a))
                    .collect();
                let apps = if apps.is_empty() {
                    json!({"includeApplications": ["All"]})
                } else {
                    json!({"includeApplications": apps})
                };
                (
                    "CA008: HR applications only from trusted locations",
                    "disabled",
                    json!({"includeUsers": include_users, "includeGroups": include_groups, "excludeGroups": emergency}),
                    apps,
                    json!(["all"]),
                    Some(json!({"includeLocations": ["All"], "excludeLocations": trusted})),
                    json!(["block"]),
                )
            }
            _ => (
                "CA009: Require password change for high-risk users",
                "enabledForReportingButNotEnforced",
                json!({"includeUsers": ["All"], "excludeGroups": emergency}),
                all_apps,
                json!(["all"]),
                None,
                json!(["mfa", "passwordChange"]),
            ),
        };
        // Graph returns every list of the users and applications conditions, empty or not.
        let (mut users, mut applications) = (users, applications);
        let user_lists = [
            "includeUsers",
            "excludeUsers",
            "includeGroups",
            "excludeGroups",
            "includeRoles",
            "excludeRoles",
        ];
        let app_lists = ["excludeApplications", "includeUserActions"];
        for (condition, keys) in [
            (&mut users, &user_lists[..]),
            (&mut applications, &app_lists[..]),
        ] {
            if let Value::Object(lists) = condition {
                for key in keys {
                    lists.entry(*key).or_insert_with(|| json!([]));
                }
            }
        }
        let mut conditions =
            json!({"users": users, "applications": applications, "clientAppTypes": client_apps});
        if let Some(locations) = locations {
            conditions["locations"] = locations;
        }
        match n {
            6 => conditions["signInRiskLevels"] = json!(["high", "medium"]),
            8 => conditions["userRiskLevels"] = json!(["high"]),
            3 => {
                conditions["platforms"] =
                    json!({"includePlatforms": ["android", "iOS", "windows", "macOS"]})
            }
            _ => {}
        }
        let operator = if n == 8 { "AND" } else { "OR" };
        let mut policy = json!({
            "@kind": "conditionalAccessPolicy", "id": self.misc_id(MISC_POLICY + n),
            "displayName": name, "state": state, "conditions": conditions,
            "grantControls": {"operator": operator, "builtInControls": grant},
            "createdDateTime": self.date(200 - 10 * n as i64),
        });
        if n == 5 {
            policy["sessionControls"] =
                json!({"signInFrequency": {"value": 8, "type": "hours", "isEnabled": true}});
        }
        policy
    }
}

fn authorization_policy() -> Value {
    json!({
        "@kind": "authorizationPolicy", "id": "authorizationPolicy",
        "displayName": "Authorization Policy",
        "description": "Used to manage authorization related settings across the company.",
        "allowInvitesFrom": "adminsAndGuestInviters",
        "allowedToSignUpEmailBasedSubscriptions": false,
        "allowedToUseSSPR": true,
        "allowEmailVerifiedUsersToJoinOrganization": false,
        "allowUserConsentForRiskyApps": false,
        "blockMsolPowerShell": true,
        "guestUserRoleId": "10dae51f-b6af-4016-8d66-8c2a99b929b3",
        "defaultUserRolePermissions": {
            "allowedToCreateApps": false,
            "allowedToCreateSecurityGroups": false,
            "allowedToCreateTenants": false,
            "allowedToReadOtherUsers": true,
            "allowedToReadBitlockerKeysForOwnedDevice": true,
            "permissionGrantPoliciesAssigned": ["ManagePermissionGrantsForSelf.microsoft-user-default-low"],
        },
    })
}

fn authentication_methods_policy() -> Value {
    let all_users = |extra: Value| {
        let mut target =
            json!({"targetType": "group", "id": "all_users", "isRegistrationRequired": false});
        merge(&mut target, extra);
        json!([target])
    };
    json!({
        "@kind": "authenticationMethodsPolicy", "id": "authenticationMethodsPolicy",
        "displayName": "Authentication Methods Policy",
        "description": "The tenant-wide policy that controls which authentication methods are allowed in the tenant, authentication method registration requirements, and self-service password reset settings",
        "policyVersion": "1.5",
        "policyMigrationState": "migrationComplete",
        "registrationEnforcement": {"authenticationMethodsRegistrationCampaign": {
            "snoozeDurationInDays": 1, "state": "enabled", "excludeTargets": [],
            "includeTargets": [{"id": "all_users", "targetType": "group", "targetedAuthenticationMethod": "microsoftAuthenticator"}],
        }},
        "authenticationMethodConfigurations": [
            {"@odata.type": "#microsoft.graph.fido2AuthenticationMethodConfiguration", "id": "Fido2", "state": "enabled",
             "isSelfServiceRegistrationAllowed": true, "isAttestationEnforced": true,
             "keyRestrictions": {"isEnforced": false, "enforcementType": "block", "aaGuids": []},
             "includeTargets": all_users(json!({}))},
            {"@odata.type": "#microsoft.graph.microsoftAuthenticatorAuthenticationMethodConfiguration", "id": "MicrosoftAuthenticator", "state": "enabled",
             "includeTargets": all_users(json!({"authenticationMode": "any"})),
             "featureSettings": {"displayAppInformationRequiredState": {"state": "enabled"}, "displayLocationInformationRequiredState": {"state": "enabled"}}},
            {"@odata.type": "#microsoft.graph.temporaryAccessPassAuthenticationMethodConfiguration", "id": "TemporaryAccessPass", "state": "enabled",
             "defaultLifetimeInMinutes": 60, "defaultLength": 8, "minimumLifetimeInMinutes": 60, "maximumLifetimeInMinutes": 480, "isUsableOnce": true,
             "includeTargets": all_users(json!({}))},
            {"@odata.type": "#microsoft.graph.smsAuthenticationMethodConfiguration", "id": "Sms", "state": "disabled",
             "includeTargets": all_users(json!({"isUsableForSignIn": false}))},
            {"@odata.type": "#microsoft.graph.voiceAuthenticationMethodConfiguration", "id": "Voice", "state": "disabled",
             "isOfficePhoneAllowed": false, "includeTargets": []},
            {"@odata.type": "#microsoft.graph.x509CertificateAuthenticationMethodConfiguration", "id": "X509Certificate", "state": "disabled",
             "certificateUserBindings": [{"x509CertificateField": "PrincipalName", "userProperty": "onPremisesUserPrincipalName", "priority": 1}],
             "authenticationModeConfiguration": {"x509CertificateAuthenticationDefaultMode": "x509CertificateSingleFactor", "rules": []},
             "includeTargets": []},
            {"@odata.type": "#microsoft.graph.emailAuthenticationMethodConfiguration", "id": "Email", "state": "enabled",
             "allowExternalIdToUseEmailOtp": "default", "includeTargets": []},
        ],
    })
}
