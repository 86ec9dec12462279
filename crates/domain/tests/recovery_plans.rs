//! Recovery plans in examples: links to synced objects the plan skips, and the order of
//! soft deletes around the policies that name a location.
#![allow(clippy::unwrap_used)]

use std::collections::BTreeMap;

use backtrack_domain::object::DirectoryObject;
use backtrack_domain::recovery::{plan, Action, Plan, PlanEntry, PlanOptions};
use backtrack_domain::ObjectKind;
use serde_json::{json, Value};

const SYNCED: &str = "00000000-0000-4000-8000-000000000001";
const CLOUD: &str = "00000000-0000-4000-8000-000000000002";
const GROUP: &str = "00000000-0000-4000-8000-0000000000a1";
const REBUILT: &str = "00000000-0000-4000-8000-0000000000a2";

fn object(kind: ObjectKind, id: &str, attributes: Value, members: &[&str]) -> DirectoryObject {
    let mut links = BTreeMap::new();
    if !members.is_empty() {
        links.insert(
            "members".to_string(),
            members.iter().map(|m| m.to_string()).collect(),
        );
    }
    DirectoryObject {
        id: id.into(),
        kind,
        attributes: attributes.as_object().cloned().unwrap_or_default(),
        links,
        created_at_ms: 1,
        updated_at_ms: 1,
        deleted_at_ms: None,
        purge_after_ms: None,
        version: 1,
    }
}

fn user(id: &str, synced: bool) -> DirectoryObject {
    let name = if synced { "Synced" } else { "Cloud" };
    object(
        ObjectKind::User,
        id,
        json!({"displayName": name, "onPremisesSyncEnabled": synced}),
        &[],
    )
}

fn entry(
    kind: ObjectKind,
    id: &str,
    current: Option<DirectoryObject>,
    desired: Option<DirectoryObject>,
) -> PlanEntry {
    PlanEntry {
        kind,
        id: id.into(),
        planned_version: current.as_ref().map_or(0, |c| c.version),
        current,
        desired,
    }
}

fn additions(plan: &Plan, id: &str) -> Vec<String> {
    plan.operations
        .iter()
        .filter(|o| o.id == id)
        .filter_map(|o| match &o.action {
            Action::AddLinks { targets, .. } => Some(targets.clone()),
            _ => None,
        })
        .flatten()
        .collect()
}

/// A purged synced member of a group that lost its members, and of a group purged
/// with it: both groups get back every other member, and a note for the synced one.
fn plan_with_synced_member(synced_now: Option<DirectoryObject>) -> Plan {
    let group = |id: &str, members: &[&str]| {
        object(ObjectKind::Group, id, json!({"displayName": id}), members)
    };
    plan(
        vec![
            entry(
                ObjectKind::User,
                SYNCED,
                synced_now,
                Some(user(SYNCED, true)),
            ),
            entry(ObjectKind::User, CLOUD, None, Some(user(CLOUD, false))),
            entry(
                ObjectKind::Group,
                GROUP,
                Some(group(GROUP, &[])),
                Some(group(GROUP, &[SYNCED, CLOUD])),
            ),
            entry(
                ObjectKind::Group,
                REBUILT,
                None,
                Some(group(REBUILT, &[SYNCED])),
            ),
        ],
        &PlanOptions::default(),
    )
}

#[test]
fn links_to_a_skipped_synced_object_that_is_gone_are_left_out_with_a_note() {
    let plan = plan_with_synced_member(None);
    assert_eq!(plan.skipped.len(), 1, "{plan:?}");
    assert_eq!(plan.skipped[0].id, SYNCED);
    assert_eq!(additions(&plan, GROUP), vec![CLOUD.to_string()]);
    // The re-created group keeps its re-creation; its only addition went.
    assert!(additions(&plan, REBUILT).is_empty(), "{plan:?}");
    assert!(plan
        .operations
        .iter()
        .any(|o| o.id == REBUILT && matches!(o.action, Action::Recreate { .. })));
    let noted: Vec<&str> = plan.notes.iter().map(|n| n.id.as_str()).collect();
    assert_eq!(noted, vec![GROUP, REBUILT], "{plan:?}");
    for note in &plan.notes {
        assert!(
            note.reason.contains("link 'members' to Synced")
                && note.reason.contains(SYNCED)
                && note.reason.contains("does not exist"),
            "{note:?}"
        );
    }
}

#[test]
fn links_to_a_skipped_synced_object_in_the_recycle_bin_are_left_out_too() {
    let mut deleted = user(SYNCED, true);
    deleted.deleted_at_ms = Some(5);
    let plan = plan_with_synced_member(Some(deleted));
    assert_eq!(additions(&plan, GROUP), vec![CLOUD.to_string()]);
    assert!(
        plan.notes[0].reason.contains("is in the recycle bin"),
        "{plan:?}"
    );
}

#[test]
fn an_added_location_goes_after_the_policy_that_names_it_is_set_back() {
    const LOCATION: &str = "00000000-0000-4000-8000-0000000000b1";
    const POLICY: &str = "00000000-0000-4000-8000-0000000000c1";
    let policy = |locations: Value| {
        object(
            ObjectKind::ConditionalAccessPolicy,
            POLICY,
            json!({"displayName": "CA", "conditions": {"locations": locations}}),
            &[],
        )
    };
    let location = object(
        ObjectKind::NamedLocation,
        LOCATION,
        json!({"displayName": "Rogue"}),
        &[],
    );
    let plan = plan(
        vec![
            entry(ObjectKind::NamedLocation, LOCATION, Some(location), None),
            entry(
                ObjectKind::ConditionalAccessPolicy,
                POLICY,
                Some(policy(json!({"excludeLocations": [LOCATION]}))),
                Some(policy(json!({}))),
            ),
            entry(ObjectKind::User, CLOUD, Some(user(CLOUD, false)), None),
        ],
        &PlanOptions::default(),
    );
    let order: Vec<(&str, &str)> = plan
        .operations
        .iter()
        .map(|o| (o.id.as_str(), o.action.name()))
        .collect();
    assert_eq!(
        order,
        vec![
            (CLOUD, "softDelete"),
            (POLICY, "setAttributes"),
            (LOCATION, "softDelete")
        ],
        "an added user goes first (it may hold a name), the location last"
    );
}

#[test]
fn links_to_a_skipped_synced_object_that_is_there_stay_in_the_plan() {
    let mut changed = user(SYNCED, true);
    changed
        .attributes
        .insert("department".into(), json!("Legal"));
    let plan = plan_with_synced_member(Some(changed));
    assert_eq!(plan.skipped.len(), 1, "{plan:?}");
    assert_eq!(
        additions(&plan, GROUP),
        vec![SYNCED.to_string(), CLOUD.to_string()]
    );
    assert_eq!(additions(&plan, REBUILT), vec![SYNCED.to_string()]);
    assert!(plan.notes.is_empty(), "{plan:?}");
}
