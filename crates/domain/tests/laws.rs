//! Laws over random command sequences and random JSON:
//! (a) replay of the accepted events rebuilds the state that deciding built, and a fold
//!     that keeps links apart rebuilds its objects without links;
//! (b) every event leaves objects where it says (created ones exist, purged ones are gone
//!     and nothing links to them, and no link ever dangles);
//! (c) no event ever carries a submitted password;
//! (d) canonical JSON is idempotent and equivalent to its input.
#![allow(clippy::unwrap_used)]

use std::cell::RefCell;
use std::collections::BTreeMap;

use backtrack_domain::canonical::{canonicalize, equivalent, to_canonical_string};
use backtrack_domain::digest::tenant_digest;
use backtrack_domain::event::Change;
use backtrack_domain::object::DirectoryObject;
use backtrack_domain::state::apply_without_links;
use backtrack_domain::{
    decide, Command, DecideContext, Event, EventMeta, ObjectKind, PendingEvent, TenantState,
};
use proptest::prelude::*;
use proptest::test_runner::{Config, TestRunner};
use serde_json::{json, Map, Value};

const USERS: [&str; 3] = [
    "87d349ed-44d7-43e1-9a83-5f2406dee5bd",
    "a702a13d-a437-4a07-8a7e-8c052de62dfd",
    "124c5b6a-ffa5-483a-9b88-04c3fce5574a",
];
const GROUPS: [&str; 2] = [
    "02bd9fd6-8f93-4758-87c3-1fb73740a315",
    "2e5807ce-58f3-4a94-9b37-ffff2e085957",
];
/// Every id in the pool: users first, then groups.
const IDS: usize = USERS.len() + GROUPS.len();
const ATTRIBUTES: [&str; 3] = ["displayName", "department", "jobTitle"];
const VALUES: [Option<&str>; 4] = [Some("Sales"), Some("Retail"), Some("sales"), None];
const SECRET_MARKER: &str = "pw-MARKER-3b9f0c-never-stored";
const START_MS: i64 = 1_795_315_500_000;
const RETENTION_MS: i64 = 30 * 24 * 3600 * 1000;

fn id(index: usize) -> &'static str {
    if index < USERS.len() {
        USERS[index]
    } else {
        GROUPS[index - USERS.len()]
    }
}

fn is_user(index: usize) -> bool {
    index < USERS.len()
}

/// One step of a random session. Indexes point into the id pool.
#[derive(Debug, Clone)]
enum Op {
    CreateUser {
        user: usize,
        upn: usize,
        upper_case: bool,
        password: bool,
    },
    CreateGroup {
        group: usize,
        members: Vec<usize>,
    },
    Update {
        target: usize,
        attribute: usize,
        value: usize,
        password: bool,
    },
    AddMember {
        group: usize,
        member: usize,
    },
    RemoveMember {
        group: usize,
        member: usize,
    },
    SetManager {
        user: usize,
        manager: usize,
    },
    SoftDelete(usize),
    Restore(usize),
    HardDelete(usize),
}

fn password_profile() -> Value {
    json!({"password": SECRET_MARKER, "forceChangePasswordNextSignIn": true})
}

impl Op {
    fn command(&self) -> Command {
        match self {
            Op::CreateUser {
                user,
                upn,
                upper_case,
                password,
            } => {
                let mut upn = format!("user{upn}@contoso.com");
                if *upper_case {
                    upn = upn.to_ascii_uppercase();
                }
                let mut attributes = Map::new();
                attributes.insert("displayName".into(), json!(format!("User {user}")));
                attributes.insert("userPrincipalName".into(), json!(upn));
                if *password {
                    attributes.insert("passwordProfile".into(), password_profile());
                }
                Command::Create {
                    kind: ObjectKind::User,
                    id: USERS[*user].into(),
                    attributes,
                    links: Vec::new(),
                }
            }
            Op::CreateGroup { group, members } => {
                let mut attributes = Map::new();
                attributes.insert("displayName".into(), json!(format!("Group {group}")));
                Command::Create {
                    kind: ObjectKind::Group,
                    id: GROUPS[*group].into(),
                    attributes,
                    links: members
                        .iter()
                        .map(|m| backtrack_domain::Link::new("members", id(*m)))
                        .collect(),
                }
            }
            Op::Update {
                target,
                attribute,
                value,
                password,
            } => {
                let mut set = Map::new();
                let value = VALUES[*value].map_or(Value::Null, Value::from);
                set.insert(ATTRIBUTES[*attribute].into(), value);
                // passwordProfile is a secret of users only; on a group it is plain data.
                if *password && is_user(*target) {
                    set.insert("passwordProfile".into(), password_profile());
                }
                Command::Update {
                    id: id(*target).into(),
                    set,
                    unset: Vec::new(),
                }
            }
            Op::AddMember { group, member } => Command::AddLinks {
                id: GROUPS[*group].into(),
                relation: "members".into(),
                targets: vec![id(*member).into()],
            },
            Op::RemoveMember { group, member } => Command::RemoveLinks {
                id: GROUPS[*group].into(),
                relation: "members".into(),
                targets: vec![id(*member).into()],
            },
            Op::SetManager { user, manager } => Command::AddLinks {
                id: USERS[*user].into(),
                relation: "manager".into(),
                targets: vec![USERS[*manager].into()],
            },
            Op::SoftDelete(target) => Command::SoftDelete {
                id: id(*target).into(),
            },
            Op::Restore(target) => Command::Restore {
                id: id(*target).into(),
            },
            Op::HardDelete(target) => Command::HardDelete {
                id: id(*target).into(),
            },
        }
    }
}

fn op() -> impl Strategy<Value = Op> {
    let users = 0..USERS.len();
    let groups = 0..GROUPS.len();
    let any_id = 0..IDS;
    prop_oneof![
        3 => (users.clone(), 0..3usize, any::<bool>(), any::<bool>()).prop_map(
            |(user, upn, upper_case, password)| Op::CreateUser { user, upn, upper_case, password }
        ),
        2 => (groups.clone(), prop::collection::vec(any_id.clone(), 0..3))
            .prop_map(|(group, members)| Op::CreateGroup { group, members }),
        3 => (any_id.clone(), 0..ATTRIBUTES.len(), 0..VALUES.len(), any::<bool>()).prop_map(
            |(target, attribute, value, password)| Op::Update { target, attribute, value, password }
        ),
        4 => (groups.clone(), any_id.clone())
            .prop_map(|(group, member)| Op::AddMember { group, member }),
        2 => (groups, any_id.clone())
            .prop_map(|(group, member)| Op::RemoveMember { group, member }),
        2 => (users.clone(), users).prop_map(|(user, manager)| Op::SetManager { user, manager }),
        2 => any_id.clone().prop_map(Op::SoftDelete),
        2 => any_id.clone().prop_map(Op::Restore),
        2 => any_id.prop_map(Op::HardDelete),
    ]
}

/// Half the sessions start from a populated tenant so that links, deletes and purges get
/// reached often; the other half start empty.
fn session() -> impl Strategy<Value = Vec<Op>> {
    (any::<bool>(), prop::collection::vec(op(), 1..60)).prop_map(|(populated, ops)| {
        let mut session = Vec::new();
        if populated {
            session.extend((0..USERS.len()).map(|user| Op::CreateUser {
                user,
                upn: user,
                upper_case: false,
                password: user == 0,
            }));
            session.extend((0..GROUPS.len()).map(|group| Op::CreateGroup {
                group,
                members: Vec::new(),
            }));
        }
        session.extend(ops);
        session
    })
}

fn stamp(pending: PendingEvent, sequence: u64, time_ms: i64) -> Event {
    Event {
        meta: EventMeta {
            event_id: format!("event-{sequence}"),
            tenant: "contoso".into(),
            kind: pending.kind.as_str().into(),
            object_id: pending.object_id,
            actor: "proptest".into(),
            time_ms,
            source: "tests/laws".into(),
            correlation_id: None,
            mutation_id: format!("mutation-{sequence}"),
        },
        change: pending.change,
    }
}

/// Checks law (b) right after `event` was applied.
fn check_event_effect(state: &TenantState, event: &Event) -> Result<(), TestCaseError> {
    let id = &event.meta.object_id;
    match &event.change {
        Change::Created { .. } => {
            let object = state.objects.get(id);
            prop_assert!(object.is_some(), "{id} missing after Created");
            prop_assert!(!object.unwrap().is_deleted());
        }
        Change::HardDeleted { .. } => {
            prop_assert!(!state.objects.contains_key(id), "{id} still there");
            for object in state.objects.values() {
                for (relation, targets) in &object.links {
                    prop_assert!(
                        !targets.contains(id),
                        "{} still links to purged {id} via {relation}",
                        object.id
                    );
                }
            }
        }
        _ => prop_assert!(state.objects.contains_key(id), "{id} vanished"),
    }
    // No link ever points at an object that is not there.
    for object in state.objects.values() {
        for (relation, targets) in &object.links {
            for target in targets {
                prop_assert!(
                    state.objects.contains_key(target),
                    "{} links to missing {target} via {relation}",
                    object.id
                );
            }
        }
    }
    Ok(())
}

/// How often each change kind was accepted over a whole run, to prove the generator
/// reaches the interesting rules.
type Coverage = BTreeMap<&'static str, usize>;

fn run_session(ops: &[Op], coverage: &RefCell<Coverage>) -> Result<(), TestCaseError> {
    let mut state = TenantState::default();
    let mut log: Vec<(Event, u64)> = Vec::new();
    let mut sequence = 0u64;
    for (step, op) in ops.iter().enumerate() {
        let now_ms = START_MS + 1000 * step as i64;
        let ctx = DecideContext {
            now_ms,
            recycle_bin_retention_ms: RETENTION_MS,
        };
        let Ok(pending) = decide(&state, &ctx, op.command()) else {
            *coverage.borrow_mut().entry("refused").or_default() += 1;
            continue;
        };
        let purges_referrers = pending.len() > 1
            && matches!(
                pending.last().map(|p| &p.change),
                Some(Change::HardDeleted { .. })
            );
        if purges_referrers {
            *coverage
                .borrow_mut()
                .entry("hardDeletedWithReferrers")
                .or_default() += 1;
        }
        for p in pending {
            sequence += 1;
            let event = stamp(p, sequence, now_ms);
            // (c) the password never reaches an event.
            prop_assert!(
                !format!("{event:?}").contains(SECRET_MARKER),
                "secret in {event:?}"
            );
            state.apply(&event, sequence);
            check_event_effect(&state, &event)?;
            *coverage
                .borrow_mut()
                .entry(event.change.name())
                .or_default() += 1;
            log.push((event, sequence));
        }
    }
    let text = format!("{state:?}");
    prop_assert!(!text.contains(SECRET_MARKER), "secret in the state");

    // (a) replaying the log from scratch gives the same state and digest.
    let mut replayed = TenantState::default();
    for (event, sequence) in &log {
        replayed.apply(event, *sequence);
    }
    prop_assert_eq!(&replayed, &state);
    prop_assert_eq!(tenant_digest(&replayed), tenant_digest(&state));

    // (a') stores that keep links apart fold the same objects, links left out; a creation
    // always starts from nothing there (those stores skip reading its object).
    let mut apart: BTreeMap<String, DirectoryObject> = BTreeMap::new();
    for (event, sequence) in &log {
        let (m, kind) = (&event.meta, event.meta.kind.parse::<ObjectKind>().unwrap());
        let slot = match &event.change {
            Change::Created { .. } => {
                prop_assert!(
                    !apart.contains_key(&m.object_id),
                    "{} created twice",
                    m.object_id
                );
                None
            }
            _ => apart.remove(&m.object_id),
        };
        let folded = apply_without_links(
            slot,
            kind,
            &m.object_id,
            &event.change,
            m.time_ms,
            *sequence,
        );
        if let Some(object) = folded {
            apart.insert(m.object_id.clone(), object);
        }
    }
    let mut unlinked = state.objects.clone();
    for object in unlinked.values_mut() {
        object.links.clear();
    }
    prop_assert_eq!(apart, unlinked);
    Ok(())
}

#[test]
fn replay_effects_and_secrets_laws_hold_for_random_sessions() {
    let mut runner = TestRunner::new(Config {
        cases: 128,
        failure_persistence: None,
        ..Config::default()
    });
    let coverage = RefCell::new(Coverage::new());
    let result = runner.run(&session(), |ops| run_session(&ops, &coverage));
    if let Err(e) = result {
        panic!("{e}");
    }
    let coverage = coverage.into_inner();
    for change in [
        "created",
        "attributesChanged",
        "linksAdded",
        "linksRemoved",
        "softDeleted",
        "restored",
        "hardDeleted",
        "hardDeletedWithReferrers",
        "refused",
    ] {
        assert!(
            coverage.get(change).copied().unwrap_or(0) > 0,
            "no '{change}' in the whole run: {coverage:?}"
        );
    }
}

fn guid() -> impl Strategy<Value = String> {
    (
        "[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}",
        any::<bool>(),
    )
        .prop_map(|(g, upper)| if upper { g.to_ascii_uppercase() } else { g })
}

fn json_value() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::from),
        any::<i64>().prop_map(Value::from),
        any::<u64>().prop_map(Value::from),
        (-1.0e12f64..1.0e12).prop_map(Value::from),
        Just(json!(-0.0)),
        Just(json!([])),
        "[a-zA-Z0-9 @._-]{0,8}".prop_map(Value::from),
        guid().prop_map(Value::from),
    ];
    leaf.prop_recursive(4, 64, 6, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..6).prop_map(Value::Array),
            prop::collection::btree_map("[a-zA-Z@][a-zA-Z0-9.]{0,6}", inner, 0..6)
                .prop_map(|m| Value::Object(m.into_iter().collect())),
        ]
    })
}

proptest! {
    #![proptest_config(ProptestConfig {
        cases: 128,
        failure_persistence: None,
        ..ProptestConfig::default()
    })]

    #[test]
    fn canonicalize_is_idempotent(value in json_value()) {
        let once = canonicalize(value.clone());
        let twice = once.clone().and_then(canonicalize);
        prop_assert_eq!(&twice, &once);
        if let Some(c) = &once {
            prop_assert_eq!(to_canonical_string(c), to_canonical_string(&canonicalize(c.clone()).unwrap()));
        }
    }

    #[test]
    fn a_value_is_equivalent_to_its_canonical_form(value in json_value()) {
        let canonical = canonicalize(value.clone());
        prop_assert!(equivalent(Some(&value), canonical.as_ref()));
        prop_assert!(equivalent(canonical.as_ref(), Some(&value)));
        prop_assert!(equivalent(Some(&value), Some(&value)));
    }

    #[test]
    fn equivalence_is_symmetric(a in json_value(), b in json_value()) {
        prop_assert_eq!(equivalent(Some(&a), Some(&b)), equivalent(Some(&b), Some(&a)));
    }

    #[test]
    fn null_and_empty_list_members_mean_absent(
        map in prop::collection::btree_map("[a-z]{1,4}", json_value(), 0..5),
        extra in "[A-Z]{1,4}",
        empty_list in any::<bool>(),
    ) {
        let plain: Map<String, Value> = map.into_iter().collect();
        let mut padded = plain.clone();
        padded.insert(extra, if empty_list { json!([]) } else { Value::Null });
        let (plain, padded) = (Value::Object(plain), Value::Object(padded));
        prop_assert!(equivalent(Some(&plain), Some(&padded)));
        prop_assert_eq!(canonicalize(plain), canonicalize(padded));
    }
}

/// Runs `ops` on `state`, skipping refused commands; returns the next free sequence.
fn fold_session(state: &mut TenantState, ops: &[Op], mut sequence: u64, start_ms: i64) -> u64 {
    for (step, op) in ops.iter().enumerate() {
        let ctx = DecideContext {
            now_ms: start_ms + 1000 * step as i64,
            recycle_bin_retention_ms: RETENTION_MS,
        };
        if let Ok(pending) = decide(state, &ctx, op.command()) {
            for p in pending {
                sequence += 1;
                let event = stamp(p, sequence, ctx.now_ms);
                state.apply(&event, sequence);
            }
        }
    }
    sequence
}

/// Plans the way from `current` back to `desired` and runs it on a copy of `current`,
/// operation by operation as the recovery service does. Returns the state reached, the
/// ids the plan skipped or failed on, and how many operations changed something.
fn run_plan(
    current: &TenantState,
    desired: &TenantState,
    mut sequence: u64,
) -> (TenantState, std::collections::BTreeSet<String>, usize) {
    use backtrack_domain::recovery::{plan, PlanEntry, PlanOptions, Step};
    let ids: std::collections::BTreeSet<&String> = current
        .objects
        .keys()
        .chain(desired.objects.keys())
        .collect();
    let entries = ids
        .into_iter()
        .map(|id| {
            let (c, d) = (current.objects.get(id), desired.objects.get(id));
            PlanEntry {
                kind: c.or(d).map(|o| o.kind).unwrap(),
                id: id.clone(),
                current: c.cloned(),
                desired: d.cloned(),
                planned_version: c.map_or(0, |o| o.version),
            }
        })
        .collect();
    let plan = plan(entries, &PlanOptions::default());
    let mut state = current.clone();
    let mut unresolved: std::collections::BTreeSet<String> = plan
        .skipped
        .iter()
        .chain(&plan.notes)
        .map(|s| s.id.clone())
        .collect();
    let mut applied = 0;
    let ctx = DecideContext {
        now_ms: START_MS + 10_000_000,
        recycle_bin_retention_ms: RETENTION_MS,
    };
    for op in &plan.operations {
        let command = match op.step(&state) {
            Step::Satisfied => continue,
            Step::Fail(_) | Step::FailLinks(_) => {
                unresolved.insert(op.id.clone());
                continue;
            }
            Step::Run { command, failed } => {
                if !failed.is_empty() {
                    unresolved.insert(op.id.clone());
                }
                command
            }
        };
        match decide(&state, &ctx, command) {
            Ok(pending) => {
                assert!(pending.len() <= 1, "{op:?} made {} events", pending.len());
                for p in pending {
                    sequence += 1;
                    state.apply(&stamp(p, sequence, ctx.now_ms), sequence);
                    applied += 1;
                }
            }
            Err(_) => {
                unresolved.insert(op.id.clone());
            }
        }
    }
    (state, unresolved, applied)
}

#[test]
fn recovering_to_an_earlier_state_leaves_no_difference_but_what_it_reports() {
    use backtrack_domain::diff::diff_objects;
    let mut runner = TestRunner::new(Config {
        cases: 256,
        failure_persistence: None,
        ..Config::default()
    });
    let totals = RefCell::new((0usize, 0usize));
    let strategy = (session(), prop::collection::vec(op(), 1..40));
    let result = runner.run(&strategy, |(before, after)| {
        let mut desired = TenantState::default();
        let sequence = fold_session(&mut desired, &before, 0, START_MS);
        let mut current = desired.clone();
        let sequence = fold_session(&mut current, &after, sequence, START_MS + 100_000);
        let (recovered, unresolved, applied) = run_plan(&current, &desired, sequence);
        let ids: std::collections::BTreeSet<&String> = recovered
            .objects
            .keys()
            .chain(desired.objects.keys())
            .collect();
        for id in ids {
            let left = diff_objects(desired.objects.get(id), recovered.objects.get(id));
            prop_assert!(
                left.is_none() || unresolved.contains(id),
                "{id} differs after recovery and nothing said why: {left:?}"
            );
        }
        // Once everything is resolved, running the plan again finds nothing to do.
        if unresolved.is_empty() {
            let (again, _, reapplied) = run_plan(&recovered, &desired, sequence + 1000);
            prop_assert_eq!(reapplied, 0, "a second run changed something");
            prop_assert_eq!(&again, &recovered);
        }
        let mut t = totals.borrow_mut();
        t.0 += applied;
        t.1 += unresolved.len();
        Ok(())
    });
    if let Err(e) = result {
        panic!("{e}");
    }
    let (applied, unresolved) = totals.into_inner();
    assert!(
        applied > 500,
        "the generator rarely needed a recovery: {applied}"
    );
    assert!(
        unresolved * 5 < applied,
        "too many unresolved objects: {unresolved} vs {applied} operations"
    );
}
