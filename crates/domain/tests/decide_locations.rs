//! Given/when/then examples of the rules that keep conditional access policies and the
//! named locations they name whole: a policy names only live named locations, and a named
//! location a live policy names is not deleted.
#![allow(clippy::unwrap_used)]

mod common;

use backtrack_domain::ObjectKind;
use serde_json::{json, Value};

use common::*;

const HQ: &str = "5e0c52a6-2f4b-4f61-9d5e-9a1f1f0d7a10";
const SECOND: &str = "6b5e999b-0ba8-4186-a106-e0296c1c4359";

fn location(id: &str, name: &str) -> backtrack_domain::command::Command {
    create(
        ObjectKind::NamedLocation,
        id,
        json!({"displayName": name, "@odata.type": "#microsoft.graph.ipNamedLocation"}),
    )
}

fn policy(id: &str, locations: Value) -> backtrack_domain::command::Command {
    create(
        ObjectKind::ConditionalAccessPolicy,
        id,
        json!({"displayName": "CA", "state": "enabled", "conditions": {"locations": locations}}),
    )
}

#[test]
fn a_named_location_a_live_policy_names_is_not_deleted() {
    let mut t = Tenant::given();
    t.ok(location(HQ, "HQ"));
    t.ok(policy(
        POLICY,
        json!({"excludeLocations": ["All", HQ.to_uppercase()]}),
    ));
    t.ok(policy(SECOND, json!({"includeLocations": [HQ]})));

    let msg = conflict(t.when(soft_delete(HQ)));
    assert!(
        msg.contains(&format!(
            "namedLocation {HQ} (HQ) is used by conditionalAccessPolicy"
        )) && msg.contains("take it out of the policy"),
        "{msg}"
    );
    assert!(!t.state.objects[HQ].is_deleted());

    // Taken out of one policy, the other still names it; a policy in the recycle bin
    // names nothing.
    t.ok(update(
        POLICY,
        json!({"conditions": {"locations": {"includeLocations": ["All"]}}}),
    ));
    let msg = conflict(t.when(soft_delete(HQ)));
    assert!(
        msg.contains(SECOND) && msg.contains("includeLocations"),
        "{msg}"
    );
    t.ok(soft_delete(SECOND));
    t.ok(soft_delete(HQ));
    assert!(t.state.objects[HQ].is_deleted());
}

#[test]
fn a_policy_names_only_live_named_locations() {
    let mut t = Tenant::given();
    t.ok(location(HQ, "HQ"));
    t.ok(create_user(ADELE, "Adele", "a@contoso.com"));
    // Keywords and the legacy all-zero id are not locations.
    t.ok(policy(
        POLICY,
        json!({"includeLocations": ["All", "00000000-0000-0000-0000-000000000000"],
               "excludeLocations": ["AllTrusted", HQ]}),
    ));
    for (named, problem) in [
        (MISSING, "does not exist in this tenant"),
        (ADELE, "is a user, not a named location"),
    ] {
        let msg = invalid(t.when(policy(SECOND, json!({"includeLocations": [named]}))));
        assert!(
            msg.contains(&format!(
                "conditions.locations.includeLocations names {named}"
            )) && msg.contains(problem),
            "{msg}"
        );
    }
    t.ok(location(SECOND, "Branch"));
    t.ok(soft_delete(SECOND));
    let msg = conflict_or_invalid(t.when(update(
        POLICY,
        json!({"conditions": {"locations": {"excludeLocations": [HQ, SECOND]}}}),
    )));
    assert!(msg.contains("is in the recycle bin"), "{msg}");
}

#[test]
fn a_change_of_something_else_never_fails_on_a_location_named_before() {
    let mut t = Tenant::given();
    t.ok(location(HQ, "HQ"));
    t.ok(policy(POLICY, json!({"excludeLocations": [HQ]})));
    // Gone by a way this rule does not cover (a purge from the recycle bin of a location
    // deleted before the rule): the policy still names it.
    t.state.objects.remove(HQ);
    t.ok(update(POLICY, json!({"state": "disabled"})));
    let msg = invalid(t.when(update(
        POLICY,
        json!({"conditions": {"locations": {"excludeLocations": [HQ, SECOND]}}}),
    )));
    assert!(
        msg.contains(SECOND),
        "only the location named anew is checked: {msg}"
    );
}

fn conflict_or_invalid(
    result: Result<Vec<backtrack_domain::event::Event>, backtrack_domain::DomainError>,
) -> String {
    match result {
        Err(e) => e.to_string(),
        Ok(events) => panic!("accepted: {events:?}"),
    }
}
