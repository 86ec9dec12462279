//! Alerts from real decided events: what weakens conditional access, mass changes by one
//! actor, credentials and roles; and what is not an alert. Which alerts still stand: a
//! window read to the log's end sees the later changes of what each alert is about, and an
//! alert whose change was set back since (by a recovery or by hand) says so, by which
//! change; only what the window proves counts.
#![allow(clippy::unwrap_used)]

mod common;

use backtrack_domain::alerts::{alerts, Alert, Severity, Thresholds, RULES};
use backtrack_domain::{Event, ObjectKind};
use serde_json::{json, Value};

use common::*;

const HQ: &str = "5e0c52a6-2f4b-4f61-9d5e-9a1f1f0d7a10";
const ASSIGNMENT: &str = "7c1f0c4e-7d7e-4a40-9f43-0e0f4c1a2b3d";
const GLOBAL_ADMINISTRATOR: &str = "62e90394-69f5-4237-9190-012177145e10";

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

/// A tenant with three users in a group, a named location, an enabled policy that asks
/// every user for MFA and a compliant device, and an app.
fn estate() -> Tenant {
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
        policy(),
    ));
    t.ok(create(
        ObjectKind::Application,
        APP,
        json!({"displayName": "Payroll", "web": {"redirectUris": ["https://payroll.contoso.com"]}}),
    ));
    t
}

/// The estate's policy as it was created.
fn policy() -> Value {
    json!({
        "displayName": "Require MFA", "state": "enabled",
        "conditions": {"users": {"includeUsers": ["All"], "excludeUsers": []}},
        "grantControls": {"operator": "OR", "builtInControls": ["mfa", "compliantDevice"]},
    })
}

/// The app's sign-ins sent elsewhere, and Brian made a Global Administrator.
fn redirect_app_and_assign_global_administrator(t: &mut Tenant) {
    t.ok(update(
        APP,
        json!({"web": {"redirectUris": ["https://evil.example"]}}),
    ));
    t.ok(create(
        ObjectKind::RoleAssignment,
        ASSIGNMENT,
        json!({"roleDefinitionId": GLOBAL_ADMINISTRATOR, "principalId": BRIAN, "directoryScopeId": "/"}),
    ));
}

#[test]
fn weakened_policies_deletions_credentials_and_roles_are_alerts_and_ordinary_work_is_not() {
    let mut t = estate();
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
    redirect_app_and_assign_global_administrator(&mut t);
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

const RECOVERY: &str = "01a2530d-e663-7612-8059-094438cd285d";

fn one<'a>(all: &'a [Alert], rule: &str) -> &'a Alert {
    let found = found(all, rule);
    assert_eq!(found.len(), 1, "{rule}: {all:#?}");
    found[0]
}

fn last_sequence(t: &Tenant) -> u64 {
    t.log.last().unwrap().0
}

const LOW: Thresholds = Thresholds {
    deletions: 3,
    link_removals: 2,
};

#[test]
fn what_was_set_back_since_is_undone_by_the_change_that_did_it_and_the_rest_stands() {
    let mut t = estate();
    let point = last_sequence(&t);
    t.actor = "mallory".into();
    t.ok(update(POLICY, json!({"state": "disabled"})));
    redirect_app_and_assign_global_administrator(&mut t);
    t.ok(remove(SALES, "members", &[ADELE, BRIAN]));
    t.ok(soft_delete(HQ));
    t.ok(soft_delete(ADELE));
    t.ok(soft_delete(CARLA));

    // Nothing set back yet: every alert stands.
    let before = alerts(after(&t, point), &LOW);
    assert_eq!(before.len(), 6, "{before:#?}");
    assert!(before.iter().all(|a| a.undone.is_none()), "{before:#?}");

    // A recovery sets most of it back; someone else renames the policy meanwhile.
    t.actor = "admin".into();
    t.ok(update(
        POLICY,
        json!({"displayName": "Require MFA (all users)"}),
    ));
    t.correlation_id = Some(RECOVERY.into());
    t.ok(update(POLICY, json!({"state": "enabled"})));
    let enabled = last_sequence(&t);
    t.ok(restore(HQ));
    t.ok(soft_delete(ASSIGNMENT));
    let unassigned = last_sequence(&t);
    t.ok(restore(ADELE));
    t.ok(add(SALES, "members", &[ADELE, BRIAN]));
    let relinked = last_sequence(&t);
    // The app's redirect URIs: changed again, not back to what they were.
    t.correlation_id = None;
    t.ok(update(
        APP,
        json!({"web": {"redirectUris": ["https://payroll.contoso.com", "https://evil.example"]}}),
    ));

    let all = alerts(after(&t, point), &LOW);
    let disabled = one(&all, "caPolicyDisabled").undone.as_ref().unwrap();
    assert_eq!(
        (
            disabled.sequence,
            disabled.actor.as_str(),
            disabled.job.as_str()
        ),
        (enabled, "admin", RECOVERY)
    );
    assert!(one(&all, "namedLocationDeleted").undone.is_some());
    let assigned = one(&all, "privilegedRoleAssigned").undone.as_ref().unwrap();
    assert_eq!(assigned.sequence, unassigned);
    // Every removed link is back: the run is undone by the change that finished it.
    let links = one(&all, "massLinkRemoval").undone.as_ref().unwrap();
    assert_eq!(links.sequence, relinked);
    // Carla is still in the recycle bin: the deletions stand, and say how far back.
    let deletions = one(&all, "massDeletion");
    assert!(deletions.undone.is_none());
    assert_eq!(
        deletions.what,
        "3 objects deleted by one actor (2 of 3 set back since)"
    );
    // Mallory's change of the app and admin's own (an alert too) both stand.
    let apps: Vec<&Alert> = all
        .iter()
        .filter(|a| a.rule == "appCredentialsChanged")
        .collect();
    assert_eq!(apps.len(), 2);
    assert!(apps.iter().all(|a| a.undone.is_none()));
    // The ones that stand come first.
    let standing: Vec<bool> = all.iter().map(|a| a.undone.is_none()).collect();
    assert_eq!(
        standing,
        [true, true, true, false, false, false, false],
        "{all:#?}"
    );

    // Set back, then done again: it stands again (and the new change is an alert too).
    t.actor = "mallory".into();
    t.ok(update(
        POLICY,
        json!({"state": "enabledForReportingButNotEnforced"}),
    ));
    let again = alerts(after(&t, point), &LOW);
    let disabled: Vec<&Alert> = again
        .iter()
        .filter(|a| a.rule == "caPolicyDisabled")
        .collect();
    assert_eq!(disabled.len(), 2);
    assert!(disabled.iter().all(|a| a.undone.is_none()), "{again:#?}");
}

#[test]
fn a_purged_policy_recreated_as_it_was_is_undone_and_a_partial_fix_is_not() {
    let mut t = estate();
    let point = last_sequence(&t);
    t.actor = "mallory".into();
    t.ok(update(
        POLICY,
        json!({
            "conditions": {"users": {"includeUsers": ["All"], "excludeUsers": [BRIAN]}},
            "grantControls": {"operator": "OR", "builtInControls": []},
        }),
    ));
    t.ok(soft_delete(POLICY));
    t.ok(hard_delete(POLICY));

    t.actor = "admin".into();
    // The exclusion is taken out again, the control is not: only one of the two is undone.
    let mut recreated = policy();
    recreated["grantControls"]["builtInControls"] = json!([]);
    t.ok(create(
        ObjectKind::ConditionalAccessPolicy,
        POLICY,
        recreated,
    ));
    let recreated = last_sequence(&t);
    let all = alerts(after(&t, point), &Thresholds::default());
    // Deleted, then purged: two alerts, both set back by the policy's return.
    let deleted: Vec<&Alert> = all.iter().filter(|a| a.rule == "caPolicyDeleted").collect();
    assert_eq!(deleted.len(), 2, "{all:#?}");
    for alert in deleted {
        assert_eq!(alert.undone.as_ref().unwrap().sequence, recreated);
    }
    assert_eq!(
        one(&all, "caPolicyExclusionAdded")
            .undone
            .as_ref()
            .unwrap()
            .sequence,
        recreated
    );
    assert!(one(&all, "caPolicyControlRemoved").undone.is_none());
}
