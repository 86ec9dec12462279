//! Alerts from real decided events: what weakens conditional access, mass changes by one
//! actor, credentials and roles; and what is not an alert.
#![allow(clippy::unwrap_used)]

mod common;

use backtrack_domain::alerts::{alerts, Alert, Severity, Thresholds, RULES};
use backtrack_domain::{Event, ObjectKind};
use serde_json::json;

use common::*;

const HQ: &str = "5e0c52a6-2f4b-4f61-9d5e-9a1f1f0d7a10";
const ASSIGNMENT: &str = "7c1f0c4e-7d7e-4a40-9f43-0e0f4c1a2b3d";

fn found<'a>(all: &'a [Alert], rule: &str) -> Vec<&'a Alert> {
    all.iter().filter(|a| a.rule == rule).collect()
}

fn after(t: &Tenant, point: u64) -> Vec<(u64, &Event)> {
    t.log
        .iter()
        .filter(|(s, _)| *s > point)
        .map(|(s, e)| (*s, e))
        .collect()
}

#[test]
fn weakened_policies_deletions_credentials_and_roles_are_alerts_and_ordinary_work_is_not() {
    let mut t = Tenant::given();
    t.ok(create_user(ADELE, "Adele", "adele@contoso.com"));
    t.ok(create_user(BRIAN, "Brian", "brian@contoso.com"));
    t.ok(create_user(CARLA, "Carla", "carla@contoso.com"));
    t.ok(create_group(SALES, "Sales"));
    t.ok(add(SALES, "members", &[ADELE, BRIAN, CARLA]));
    t.ok(create(
        ObjectKind::NamedLocation,
        HQ,
        json!({"displayName": "HQ", "@odata.type": "#microsoft.graph.ipNamedLocation"}),
    ));
    t.ok(create(
        ObjectKind::ConditionalAccessPolicy,
        POLICY,
        json!({
            "displayName": "Require MFA", "state": "enabled",
            "conditions": {"users": {"includeUsers": ["All"], "excludeUsers": []}},
            "grantControls": {"operator": "OR", "builtInControls": ["mfa", "compliantDevice"]},
        }),
    ));
    t.ok(create(
        ObjectKind::Application,
        APP,
        json!({"displayName": "Payroll", "web": {"redirectUris": ["https://payroll.contoso.com"]}}),
    ));
    let point = t.log.last().unwrap().0;

    // Ordinary work by alice: no alert.
    t.actor = "alice".into();
    t.ok(update(ADELE, json!({"department": "Sales"})));
    t.ok(update(APP, json!({"notes": "owned by HR"})));
    assert!(alerts(after(&t, point), &Thresholds::default()).is_empty());

    t.actor = "mallory".into();
    t.ok(update(
        POLICY,
        json!({"conditions": {"users": {"includeUsers": ["All"], "excludeUsers": [BRIAN]}}}),
    ));
    t.ok(update(
        POLICY,
        json!({"conditions": {
            "users": {"includeUsers": [ADELE], "excludeUsers": [BRIAN]},
            "applications": {"includeApplications": ["All"], "excludeApplications": [APP]},
        }}),
    ));
    t.ok(update(
        POLICY,
        json!({"grantControls": {"operator": "OR", "builtInControls": ["compliantDevice"]}}),
    ));
    t.ok(update(POLICY, json!({"state": "disabled"})));
    t.ok(update(
        APP,
        json!({"web": {"redirectUris": ["https://evil.example"]}}),
    ));
    t.ok(create(
        ObjectKind::RoleAssignment,
        ASSIGNMENT,
        json!({"roleDefinitionId": "62e90394-69f5-4237-9190-012177145e10", "principalId": BRIAN, "directoryScopeId": "/"}),
    ));
    t.ok(remove(SALES, "members", &[ADELE, BRIAN]));
    t.ok(soft_delete(HQ));
    t.ok(soft_delete(ADELE));
    t.ok(soft_delete(POLICY));

    let low = Thresholds {
        deletions: 3,
        link_removals: 2,
    };
    let all = alerts(after(&t, point), &low);
    let rules: Vec<&str> = all.iter().map(|a| a.rule).collect();
    assert_eq!(
        rules,
        [
            "caPolicyDeleted",
            "caPolicyExclusionAdded",
            "caPolicyExclusionAdded",
            "caPolicyScopeNarrowed",
            "caPolicyControlRemoved",
            "caPolicyDisabled",
            "privilegedRoleAssigned",
            "massLinkRemoval",
            "namedLocationDeleted",
            "massDeletion",
            "appCredentialsChanged",
        ],
        "{all:#?}"
    );
    assert!(all.iter().all(|a| a.actor == "mallory"));
    // Every rule raised here is listed; the list names each rule once.
    assert!(all.iter().all(|a| RULES.contains(&a.rule)));
    let mut listed = RULES.to_vec();
    listed.sort_unstable();
    listed.dedup();
    assert_eq!(listed.len(), RULES.len());
    assert_eq!(all[0].severity, Severity::Critical);
    let exclusion = found(&all, "caPolicyExclusionAdded")[0];
    assert!(exclusion.what.contains(BRIAN), "{}", exclusion.what);
    assert_eq!(exclusion.object.as_ref().unwrap().id, POLICY);
    let apps = found(&all, "caPolicyExclusionAdded")[1];
    assert_eq!(
        apps.what,
        format!("conditions.applications.excludeApplications + {APP}")
    );
    let narrowed = found(&all, "caPolicyScopeNarrowed")[0];
    assert_eq!(narrowed.what, "conditions.users.includeUsers − All");
    let control = found(&all, "caPolicyControlRemoved")[0];
    assert!(control.what.contains("mfa") && !control.what.contains("compliantDevice"));
    let mass = found(&all, "massDeletion")[0];
    assert_eq!(mass.what, "3 objects deleted by one actor");
    assert!(mass.object.is_none());
    // The run starts at the first deletion: the recovery of it starts before that.
    let first_delete = t
        .log
        .iter()
        .find(|(_, e)| e.meta.object_id == HQ && e.change.name() == "softDeleted")
        .unwrap()
        .0;
    assert_eq!(mass.sequence, first_delete);
    assert!(found(&all, "appCredentialsChanged")[0].what.contains("web"));
    assert_eq!(
        found(&all, "privilegedRoleAssigned")[0].what,
        format!("privileged role Global Administrator assigned to {BRIAN}")
    );

    // Under the default thresholds, two removed links and three deletions are no mass.
    let default = alerts(after(&t, point), &Thresholds::default());
    assert!(found(&default, "massDeletion").is_empty());
    assert!(found(&default, "massLinkRemoval").is_empty());
    assert_eq!(default.len(), all.len() - 2);
}
