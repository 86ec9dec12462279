//! Changes by some authors only: what they touched in an object, and the object with only
//! their changes set back; a law over random sessions of two actors.
#![allow(clippy::unwrap_used)]

mod common;

use std::collections::BTreeSet;

use backtrack_domain::authorship::{narrow, touched, Authors, Facet, Touched};
use backtrack_domain::object::DirectoryObject;
use backtrack_domain::{Event, TenantState};
use common::*;
use proptest::prelude::*;
use serde_json::json;

const MALLORY: &str = "mallory@contoso.com";
const ALICE: &str = "alice@contoso.com";

/// The tenant's state after the events up to `sequence`.
fn state_at(log: &[(u64, Event)], sequence: u64) -> TenantState {
    let mut state = TenantState::default();
    for (s, e) in log.iter().filter(|(s, _)| *s <= sequence) {
        state.apply(e, *s);
    }
    state
}

/// What `authors` touched in `id` after `point`, and the object with that set back
/// (`keep`: facets left as they are).
fn undo(
    t: &Tenant,
    point: u64,
    id: &str,
    authors: &Authors,
    keep: &[Facet],
) -> (Touched, Option<DirectoryObject>) {
    let events = t
        .log
        .iter()
        .filter(|(s, e)| *s > point && e.meta.object_id == id)
        .map(|(s, e)| (*s, e));
    let touched = touched(events, authors);
    let before = touched
        .lifecycle
        .and_then(|s| state_at(&t.log, s - 1).objects.get(id).cloned());
    let keep: BTreeSet<Facet> = keep.iter().cloned().collect();
    let narrowed = narrow(t.state.objects.get(id), before.as_ref(), &touched, &keep);
    (touched, narrowed)
}

fn attr(name: &str) -> Facet {
    Facet::Attribute(name.into())
}

fn actors(who: &[&str]) -> BTreeSet<String> {
    who.iter().map(|w| w.to_string()).collect()
}

/// A tenant with Adele and Brian, and the Sales group holding Adele; the point is after it.
fn given() -> (Tenant, u64) {
    let mut t = Tenant::given();
    t.ok(create_user(ADELE, "Adele", "adele@contoso.com"));
    t.ok(update(
        ADELE,
        json!({"department": "Sales", "jobTitle": "Rep"}),
    ));
    t.ok(create_user(BRIAN, "Brian", "brian@contoso.com"));
    t.ok(create_group(SALES, "Sales"));
    t.ok(add(SALES, "members", &[ADELE]));
    let point = t.log.last().unwrap().0;
    (t, point)
}

#[test]
fn only_the_authors_attributes_go_back_and_later_changes_by_others_are_named() {
    let (mut t, point) = given();
    t.actor = ALICE.into();
    t.ok(update(ADELE, json!({"jobTitle": "Senior Rep"})));
    t.actor = MALLORY.into();
    t.ok(update(
        ADELE,
        json!({"department": "Hacked", "jobTitle": "CEO"}),
    ));
    t.actor = ALICE.into();
    t.ok(update(
        ADELE,
        json!({"displayName": "Adele V.", "jobTitle": "Lead"}),
    ));

    let mallory = Authors::actors([MALLORY]);
    let (touched, narrowed) = undo(&t, point, ADELE, &mallory, &[]);
    let names: Vec<&str> = touched.attributes.keys().map(String::as_str).collect();
    assert_eq!(names, ["department", "jobTitle"]);
    assert_eq!(
        touched.later.get(&attr("jobTitle")),
        Some(&actors(&[ALICE]))
    );
    assert!(!touched.later.contains_key(&attr("department")));
    let adele = narrowed.unwrap();
    assert_eq!(adele.attributes["department"], json!("Sales"));
    // Back to what mallory found (alice's change before mallory's stays), over alice's
    // later change.
    assert_eq!(adele.attributes["jobTitle"], json!("Senior Rep"));
    // What only alice changed stays as she left it.
    assert_eq!(adele.attributes["displayName"], json!("Adele V."));

    // Kept: alice's later title stays.
    let (_, kept) = undo(&t, point, ADELE, &mallory, &[attr("jobTitle")]);
    let kept = kept.unwrap();
    assert_eq!(kept.attributes["jobTitle"], json!("Lead"));
    assert_eq!(kept.attributes["department"], json!("Sales"));
}

#[test]
fn links_lifecycle_and_creations_go_back_facet_by_facet() {
    let (mut t, point) = given();
    t.actor = MALLORY.into();
    t.ok(add(SALES, "members", &[BRIAN]));
    t.ok(remove(SALES, "members", &[ADELE]));
    t.ok(soft_delete(BRIAN));
    t.ok(create_user(CARLA, "Carla", "carla@contoso.com"));
    t.actor = ALICE.into();
    t.ok(update(CARLA, json!({"jobTitle": "Intern"})));
    t.ok(update(SALES, json!({"description": "Sales team"})));
    let mallory = Authors::actors([MALLORY]);

    let (touched, sales) = undo(&t, point, SALES, &mallory, &[]);
    assert_eq!(touched.links.len(), 2);
    assert!(touched.lifecycle.is_none());
    let sales = sales.unwrap();
    let members: Vec<&str> = sales.links["members"].iter().map(String::as_str).collect();
    assert_eq!(members, [ADELE]);
    assert_eq!(sales.attributes["description"], json!("Sales team"));

    let (touched, brian) = undo(&t, point, BRIAN, &mallory, &[]);
    assert!(touched.lifecycle.is_some());
    let brian = brian.unwrap();
    assert!(!brian.is_deleted(), "mallory's soft delete is undone");
    assert_eq!(brian.display_name(), Some("Brian"));

    // Mallory created Carla: she goes, and alice's later change with her (named).
    let (touched, carla) = undo(&t, point, CARLA, &mallory, &[]);
    assert!(carla.is_none());
    assert_eq!(
        touched.later.get(&Facet::Lifecycle),
        Some(&actors(&[ALICE]))
    );
    // Kept: the object stays as it is.
    let (_, carla) = undo(&t, point, CARLA, &mallory, &[Facet::Lifecycle]);
    assert_eq!(carla.unwrap().attributes["jobTitle"], json!("Intern"));

    // Alice's change alone: nothing of mallory's in it.
    let (touched, _) = undo(&t, point, ADELE, &mallory, &[]);
    assert!(touched.is_empty(), "{touched:?}");
}

#[test]
fn a_purged_object_comes_back_with_the_authors_changes_set_back() {
    let (mut t, point) = given();
    t.actor = MALLORY.into();
    t.ok(update(ADELE, json!({"department": "Gone"})));
    t.ok(soft_delete(ADELE));
    t.ok(hard_delete(ADELE));
    let (touched, adele) = undo(&t, point, ADELE, &Authors::actors([MALLORY]), &[]);
    assert!(touched.lifecycle.is_some());
    let adele = adele.unwrap();
    assert!(!adele.is_deleted());
    assert_eq!(adele.attributes["department"], json!("Sales"));
    assert_eq!(adele.display_name(), Some("Adele"));
}

#[test]
fn a_job_is_an_author_by_its_correlation_id() {
    let (mut t, point) = given();
    t.actor = MALLORY.into();
    t.ok(update(ADELE, json!({"department": "Hacked"})));
    let (sequence, mut event) = t.log.pop().unwrap();
    event.meta.correlation_id = Some("job-1".into());
    t.log.push((sequence, event));
    let job = Authors::job("job-1");
    assert!(!undo(&t, point, ADELE, &job, &[]).0.is_empty());
    assert!(undo(&t, point, ADELE, &Authors::job("job-2"), &[])
        .0
        .is_empty());
    assert_eq!(job.describe(), "recovery job-1");
}

/// One random step after the point: who, and what.
#[derive(Debug, Clone)]
enum Step {
    Set(usize, usize),
    Unset(usize),
    Add(usize),
    Remove(usize),
    SoftDelete,
    Restore,
}

const ATTRS: [&str; 3] = ["department", "jobTitle", "officeLocation"];
const VALUES: [&str; 3] = ["Sales", "Retail", "Ops"];
const MEMBERS: [&str; 3] = [ADELE, BRIAN, CARLA];

fn step() -> impl Strategy<Value = (bool, Step)> {
    let step = prop_oneof![
        4 => (0..ATTRS.len(), 0..VALUES.len()).prop_map(|(a, v)| Step::Set(a, v)),
        1 => (0..ATTRS.len()).prop_map(Step::Unset),
        2 => (0..MEMBERS.len()).prop_map(Step::Add),
        2 => (0..MEMBERS.len()).prop_map(Step::Remove),
        1 => Just(Step::SoftDelete),
        1 => Just(Step::Restore),
    ];
    (any::<bool>(), step)
}

proptest! {
    /// Undoing mallory's changes to a group: what only mallory changed goes back to the
    /// point; what mallory never touched stays as it is now; with nobody else at work
    /// after the point, the whole group is as it was at the point.
    #[test]
    fn undoing_one_author_restores_exactly_their_facets(steps in prop::collection::vec(step(), 0..30)) {
        let mut t = Tenant::given();
        for (i, member) in MEMBERS.iter().enumerate() {
            t.ok(create_user(member, &format!("User {i}"), &format!("u{i}@contoso.com")));
        }
        t.ok(create_group(SALES, "Sales"));
        t.ok(add(SALES, "members", &[ADELE]));
        let point = t.log.last().unwrap().0;
        let at_point = t.state.objects[SALES].clone();
        let mut alice_worked = false;
        for (by_mallory, step) in &steps {
            t.actor = if *by_mallory { MALLORY } else { ALICE }.into();
            let command = match step {
                Step::Set(a, v) => update(SALES, json!({ ATTRS[*a]: VALUES[*v] })),
                Step::Unset(a) => backtrack_domain::Command::Update {
                    id: SALES.into(),
                    set: Default::default(),
                    unset: vec![ATTRS[*a].into()],
                },
                Step::Add(m) => add(SALES, "members", &[MEMBERS[*m]]),
                Step::Remove(m) => remove(SALES, "members", &[MEMBERS[*m]]),
                Step::SoftDelete => soft_delete(SALES),
                Step::Restore => restore(SALES),
            };
            // Steps the directory refuses (a change to a deleted group) are left out.
            if t.when(command).is_ok_and(|e| !e.is_empty()) && !by_mallory {
                alice_worked = true;
            }
        }
        let mallory = Authors::actors([MALLORY]);
        let (touched, narrowed) = undo(&t, point, SALES, &mallory, &[]);
        let narrowed = narrowed.unwrap();
        let current = &t.state.objects[SALES];
        for name in ATTRS {
            if !touched.attributes.contains_key(name) {
                prop_assert_eq!(narrowed.attributes.get(name), current.attributes.get(name));
            }
        }
        for member in MEMBERS {
            let key = ("members".to_string(), member.to_string());
            if !touched.links.contains_key(&key) {
                let held = |o: &DirectoryObject| o.links.get("members").is_some_and(|m| m.contains(member));
                prop_assert_eq!(held(&narrowed), held(current));
            }
        }
        if touched.lifecycle.is_none() {
            prop_assert_eq!(narrowed.is_deleted(), current.is_deleted());
        }
        if !alice_worked {
            prop_assert_eq!(&narrowed.attributes, &at_point.attributes);
            prop_assert_eq!(&narrowed.links, &at_point.links);
            prop_assert_eq!(narrowed.is_deleted(), at_point.is_deleted());
        }
        if steps.iter().all(|(by_mallory, _)| !by_mallory) {
            prop_assert!(touched.is_empty());
        }
    }
}
