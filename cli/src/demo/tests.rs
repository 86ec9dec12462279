//! Properties of generated tenants: determinism, exact counts, dependency order, link
//! limits, and acceptance of every object by the directory's own rules.

use std::collections::{HashMap, HashSet};
use std::time::Instant;

use backtrack_domain::{
    decide, graph, validate, Command, DecideContext, Event, EventMeta, ObjectKind, TenantState,
};

use super::ids::{base64url, guid_bytes_le};
use super::*;

fn options(users: usize, groups: usize, apps: usize, seed: u64) -> DemoOptions {
    DemoOptions {
        users,
        groups,
        apps,
        seed,
        domain: "contoso.com".into(),
    }
}

fn small() -> DemoOptions {
    options(300, 20, 5, 7)
}

/// Large enough for licensing and program groups, guests and synced users.
fn medium() -> DemoOptions {
    options(6_000, 120, 40, 11)
}

fn id(v: &Value) -> String {
    v["id"]
        .as_str()
        .expect("every object has an id")
        .to_string()
}

fn link_targets(v: &Value) -> Vec<(String, String)> {
    let Some(links) = v.get("@links").and_then(Value::as_object) else {
        return Vec::new();
    };
    links
        .iter()
        .flat_map(|(rel, ids)| {
            ids.as_array()
                .expect("links are lists")
                .iter()
                .map(move |t| {
                    (
                        rel.clone(),
                        t.as_str().expect("link targets are ids").to_string(),
                    )
                })
        })
        .collect()
}

#[test]
fn the_same_seed_gives_the_same_tenant() {
    let first: Vec<Value> = demo_objects(&small()).collect();
    let second: Vec<Value> = demo_objects(&small()).collect();
    assert_eq!(first, second);
}

#[test]
fn another_seed_or_domain_gives_other_ids() {
    let ids = |seed| {
        demo_objects(&options(300, 20, 5, seed))
            .map(|v| id(&v))
            .collect::<HashSet<_>>()
    };
    let shared: Vec<String> = ids(7).intersection(&ids(8)).cloned().collect();
    let mut shared: Vec<&str> = shared.iter().map(String::as_str).collect();
    shared.sort_unstable();
    assert_eq!(
        shared,
        ["authenticationMethodsPolicy", "authorizationPolicy"]
    );
    let mut elsewhere = options(300, 20, 5, 7);
    elsewhere.domain = "fabrikam.com".into();
    let elsewhere: HashSet<String> = demo_objects(&elsewhere).map(|v| id(&v)).collect();
    assert_eq!(
        elsewhere.intersection(&ids(7)).count(),
        2,
        "only the singletons"
    );
}

#[test]
fn tenant_size_follows_the_user_count() {
    let small = DemoOptions::for_users(500, 42, "contoso.com");
    assert_eq!((small.groups, small.apps), (41, 10));
    let big = DemoOptions::for_users(1_000_000, 42, "big.example");
    assert_eq!((big.groups, big.apps), (5_000, 500));
    assert_eq!(DemoOptions::default(), small);
}

#[test]
fn total_objects_is_the_exact_count() {
    for opts in [
        small(),
        medium(),
        options(0, 0, 0, 1),
        options(1, 1, 1, 2),
        options(12, 13, 2, 3),
        options(14, 16, 0, 4),
        options(99, 30, 31, 5),
        options(100, 17, 3, 6),
        options(0, 40, 2, 7),
    ] {
        assert_eq!(
            demo_objects(&opts).count(),
            opts.total_objects(),
            "{opts:?}"
        );
    }
}

#[test]
fn every_link_points_to_an_earlier_object_of_an_allowed_kind() {
    for opts in [medium(), options(20, 30, 3, 9), options(0, 30, 3, 9)] {
        let mut seen: HashMap<String, String> = HashMap::new();
        for v in demo_objects(&opts) {
            let kind = v["@kind"]
                .as_str()
                .expect("every object has a kind")
                .to_string();
            for (relation, target) in link_targets(&v) {
                let target_kind = seen
                    .get(&target)
                    .unwrap_or_else(|| panic!("{kind}.{relation} -> {target} not yet yielded"));
                let allowed: &[&str] = match (kind.as_str(), relation.as_str()) {
                    ("user", "manager") => &["user"],
                    ("group", "members") => &["user", "group", "servicePrincipal"],
                    ("administrativeUnit", "members") => &["user", "group"],
                    (_, "owners") => &["user", "servicePrincipal"],
                    other => panic!("unexpected relation {other:?}"),
                };
                assert!(
                    allowed.contains(&target_kind.as_str()),
                    "{kind}.{relation} -> {target_kind}"
                );
            }
            assert!(
                seen.insert(id(&v), kind).is_none(),
                "duplicate id {}",
                id(&v)
            );
        }
    }
}

#[test]
fn user_principal_names_are_unique_ignoring_case() {
    let mut upns = HashSet::new();
    let (mut guests, mut synced, mut disabled, mut managed) = (0, 0, 0, 0);
    for v in demo_objects(&medium()).filter(|v| v["@kind"] == "user") {
        let upn = v["userPrincipalName"]
            .as_str()
            .expect("users have a UPN")
            .to_ascii_lowercase();
        assert!(upns.insert(upn.clone()), "duplicate UPN {upn}");
        guests +=
            usize::from(v["userType"] == "Guest" && upn.contains("#ext#@contoso.onmicrosoft.com"));
        synced += usize::from(v["onPremisesSyncEnabled"] == true);
        disabled += usize::from(v["accountEnabled"] == false);
        managed += usize::from(v["@links"]["manager"].is_array());
    }
    assert_eq!(upns.len(), 6_000);
    assert!((60..200).contains(&guests), "{guests} guests");
    assert!((300..900).contains(&synced), "{synced} synced users");
    assert!((30..200).contains(&disabled), "{disabled} disabled users");
    assert!(managed > 5_500, "{managed} users with a manager");
}

#[test]
fn no_object_carries_more_links_than_one_message_holds() {
    let opts = options(70_000, 45, 1, 3);
    let most = demo_objects(&opts)
        .map(|v| link_targets(&v).len())
        .max()
        .unwrap_or(0);
    assert_eq!(
        most, MAX_LINKS_PER_OBJECT,
        "department groups fill up to the limit"
    );
}

#[test]
fn every_object_is_accepted_by_the_directory() {
    for opts in [small(), DemoOptions::for_users(500, 3, "big.example")] {
        let state = import_into_the_model(&opts);
        assert_eq!(state.objects.len(), opts.total_objects());
        for kind in ObjectKind::ALL {
            assert!(
                state.objects.values().any(|o| o.kind == kind),
                "no {kind} generated"
            );
        }
    }
}

/// Feeds every object through the directory's own rules: parse, id check, decide, apply.
fn import_into_the_model(opts: &DemoOptions) -> TenantState {
    let ctx = DecideContext {
        now_ms: NOW_MS,
        recycle_bin_retention_ms: 30 * DAY_MS,
    };
    let mut state = TenantState::default();
    let mut sequence = 0;
    for v in demo_objects(opts) {
        let shown = format!("{v}");
        let parsed = graph::parse(None, v).unwrap_or_else(|e| panic!("{e}: {shown}"));
        let raw_id = parsed.id.clone().expect("demo objects carry their id");
        let id =
            validate::object_id(parsed.kind, &raw_id).unwrap_or_else(|e| panic!("{e}: {shown}"));
        assert_eq!(id, raw_id, "ids are already normalised");
        let command = Command::Create {
            kind: parsed.kind,
            id,
            attributes: parsed.attributes,
            links: parsed.links,
        };
        let pending = decide(&state, &ctx, command).unwrap_or_else(|e| panic!("{e}: {shown}"));
        for p in pending {
            sequence += 1;
            let meta = EventMeta {
                event_id: format!("event-{sequence}"),
                tenant: "contoso".into(),
                kind: p.kind.as_str().into(),
                object_id: p.object_id,
                actor: "demo".into(),
                time_ms: ctx.now_ms,
                source: "test".into(),
                correlation_id: None,
                mutation_id: format!("m-{sequence}"),
            };
            let change = p.change;
            state.apply(&Event { meta, change }, sequence);
        }
    }
    state
}

#[test]
fn huge_tenants_stream_lazily() {
    let started = Instant::now();
    let first: Vec<Value> = demo_objects(&options(100_000_000, 1_000_000, 10_000, 1))
        .take(1_000)
        .collect();
    assert_eq!(first.len(), 1_000);
    assert!(
        started.elapsed().as_secs() < 10,
        "took {:?}",
        started.elapsed()
    );
}

#[test]
fn a_large_tenant_is_generated_in_seconds() {
    // About 3 s in a debug build, under 1 s optimised; memory stays flat (nothing is kept).
    let users = 200_000;
    let opts = options(users, 300, 50, 5);
    let started = Instant::now();
    assert_eq!(demo_objects(&opts).count(), opts.total_objects());
    assert!(
        started.elapsed().as_secs() < 30,
        "took {:?}",
        started.elapsed()
    );
}

#[test]
fn opaque_ids_are_built_like_graph_builds_them() {
    // Ids from shared/fixtures/graph: a grant's id is base64url(clientId ++ resourceId).
    let mut raw = guid_bytes_le("263a5b01-03e5-408e-8557-bab681df104c").to_vec();
    raw.extend(guid_bytes_le("1804a6f8-e623-4520-8f40-ba1b0c11c42d"));
    assert_eq!(
        base64url(&raw),
        "AVs6JuUDjkCFV7q2gd8QTPimBBgj5iBFj0C6GwwRxC0"
    );
    let principal = base64url(&guid_bytes_le("8e881353-1735-45af-af21-ee1344582a4d"));
    assert!("UxOIjjUXr0WvIe4TRFgqTY4z9Wu5KxpBtlEpoTGjw-A".starts_with(&principal[..21]));
    for v in demo_objects(&small()) {
        if [
            "appRoleAssignment",
            "oauth2PermissionGrant",
            "roleAssignment",
        ]
        .contains(&v["@kind"].as_str().unwrap_or(""))
        {
            let id = id(&v);
            assert!(
                id.len() >= 43
                    && id
                        .bytes()
                        .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_'),
                "{id}"
            );
        }
    }
}
