//! Round trip over `shared/fixtures/graph`: every Graph example object must be accepted by
//! `decide` unchanged and render back equal in canonical form; every delta page must parse
//! and render back exactly.
#![allow(clippy::unwrap_used)]

use std::fs;
use std::path::{Path, PathBuf};

use backtrack_domain::canonical::canonicalize;
use backtrack_domain::event::Change;
use backtrack_domain::graph::{self, DeltaPage};
use backtrack_domain::object::{DirectoryObject, Link};
use backtrack_domain::{
    decide, validate, Command, DecideContext, Event, EventMeta, ObjectKind, TenantState,
};
use serde_json::{Map, Value};

const NOW_MS: i64 = 1_795_315_500_123;

fn fixtures_dir() -> PathBuf {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("..").join("..");
    root.join("..")
        .join("shared")
        .join("fixtures")
        .join("graph")
}

fn json_files() -> Vec<PathBuf> {
    let dir = fixtures_dir();
    let mut files: Vec<PathBuf> = fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("cannot read {}: {e}", dir.display()))
        .map(|entry| entry.unwrap().path())
        .filter(|p| p.extension().is_some_and(|ext| ext == "json"))
        .collect();
    files.sort();
    files
}

fn read_json(path: &Path) -> Value {
    let text = fs::read_to_string(path).unwrap();
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

fn kind_of_file(stem: &str) -> ObjectKind {
    match stem {
        "ipNamedLocation" | "countryNamedLocation" => ObjectKind::NamedLocation,
        other => other
            .parse()
            .unwrap_or_else(|e| panic!("fixture {other}.json names no kind: {e}")),
    }
}

fn meta(kind: ObjectKind, object_id: &str) -> EventMeta {
    EventMeta {
        event_id: "0190b3a0-0000-7000-8000-000000000001".into(),
        tenant: "contoso".into(),
        kind: kind.as_str().into(),
        object_id: object_id.into(),
        actor: "fixture-test".into(),
        time_ms: NOW_MS,
        source: "tests/graph_fixtures".into(),
        correlation_id: None,
        mutation_id: "fixture-create".into(),
    }
}

/// The location ids a conditional access policy's attributes name (none for other kinds).
fn named_locations(attributes: &Map<String, Value>) -> Vec<String> {
    let locations = attributes
        .get("conditions")
        .and_then(|c| c.get("locations"));
    ["includeLocations", "excludeLocations"]
        .into_iter()
        .filter_map(|field| {
            locations
                .and_then(|l| l.get(field))
                .and_then(Value::as_array)
        })
        .flatten()
        .filter_map(Value::as_str)
        .filter(|id| uuid_like(id))
        .map(str::to_lowercase)
        .collect()
}

fn uuid_like(text: &str) -> bool {
    text.len() == 36 && text.chars().filter(|c| *c == '-').count() == 4
}

/// Creates the fixture's object in an empty tenant (with the named locations it names)
/// and renders it back.
fn round_trip_entity(name: &str, fixture: &Value) -> Value {
    let kind = kind_of_file(name);
    let parsed = graph::parse(Some(kind), fixture.clone())
        .unwrap_or_else(|e| panic!("{name}: graph::parse refused the fixture: {e}"));
    assert_eq!(parsed.kind, kind, "{name}");
    assert!(parsed.links.is_empty(), "{name}: fixtures carry no links");
    let raw_id = parsed
        .id
        .clone()
        .unwrap_or_else(|| panic!("{name}: fixture has no id"));
    let id =
        validate::object_id(kind, &raw_id).unwrap_or_else(|e| panic!("{name}: id refused: {e}"));

    let mut state = TenantState::default();
    // A policy names only named locations the tenant holds: give it those it names.
    for location in named_locations(&parsed.attributes) {
        state.objects.insert(
            location.clone(),
            DirectoryObject {
                id: location,
                kind: ObjectKind::NamedLocation,
                attributes: Map::new(),
                links: Default::default(),
                created_at_ms: NOW_MS,
                updated_at_ms: NOW_MS,
                deleted_at_ms: None,
                purge_after_ms: None,
                version: 1,
            },
        );
    }
    let ctx = DecideContext {
        now_ms: NOW_MS,
        recycle_bin_retention_ms: 30 * 24 * 3600 * 1000,
    };
    let command = Command::Create {
        kind,
        id: id.clone(),
        attributes: parsed.attributes,
        links: parsed.links,
    };
    let pending = decide(&state, &ctx, command)
        .unwrap_or_else(|e| panic!("{name}: decide refused the fixture: {e}"));
    assert_eq!(pending.len(), 1, "{name}: one Created event");
    let pending = pending.into_iter().next().unwrap();
    assert_eq!(pending.kind, kind);
    assert_eq!(pending.object_id, id);
    assert!(
        matches!(pending.change, Change::Created { .. }),
        "{name}: {:?}",
        pending.change
    );
    let event = Event {
        meta: meta(kind, &pending.object_id),
        change: pending.change,
    };
    state.apply(&event, 1);
    let object = state
        .objects
        .get(&id)
        .unwrap_or_else(|| panic!("{name}: object missing after Created"));
    graph::render(object)
}

fn check_entity(name: &str, fixture: Value) {
    let rendered = round_trip_entity(name, &fixture);
    let Value::Object(mut rendered) = rendered else {
        panic!("{name}: render did not give a JSON object");
    };
    let Value::Object(mut expected) = fixture else {
        panic!("{name}: fixture is not a JSON object");
    };

    let kind_tag = rendered.remove(graph::KIND_KEY);
    assert_eq!(
        kind_tag,
        Some(Value::String(kind_of_file(name).as_str().into())),
        "{name}"
    );
    assert!(!rendered.contains_key(graph::LINKS_KEY), "{name}: no links");

    // A live object has no deletion time: the fixtures say so with `null`.
    match expected.remove("deletedDateTime") {
        None | Some(Value::Null) => {}
        Some(other) => panic!("{name}: fixture has deletedDateTime {other}"),
    }
    assert!(!rendered.contains_key("deletedDateTime"), "{name}");

    // decide stamps createdDateTime when the input has none.
    if !expected.contains_key("createdDateTime") {
        if let Some(stamped) = rendered.remove("createdDateTime") {
            assert_eq!(
                stamped,
                Value::String(backtrack_domain::time::rfc3339_ms(NOW_MS)),
                "{name}: createdDateTime is the decision time"
            );
        }
    }

    assert_eq!(
        canonicalize(Value::Object(rendered)),
        canonicalize(Value::Object(expected)),
        "{name}: rendered object differs from the fixture"
    );
}

fn check_delta_page(name: &str, fixture: Value) -> DeltaPage {
    let page = graph::parse_delta_page(fixture.clone())
        .unwrap_or_else(|e| panic!("{name}: parse_delta_page refused it: {e}"));
    assert_eq!(
        graph::render_delta_page(&page),
        fixture,
        "{name}: delta page does not render back exactly"
    );
    page
}

fn check_group_page_links(page: &DeltaPage) {
    assert_eq!(page.items.len(), 1);
    let item = &page.items[0];
    assert_eq!(item.id, "2e5807ce-58f3-4a94-9b37-ffff2e085957");
    let (added, removed) = item.link_changes();
    assert_eq!(
        added,
        vec![Link::new("members", "37de1ae3-408f-4702-8636-20824abda004")]
    );
    // Kept exactly as the docs write it, one hex digit short of a GUID.
    assert_eq!(
        removed,
        vec![Link::new("members", "632f6bb2-3ec8-4c1f-9073-0027a8c6859")]
    );
}

fn check_user_page(page: &DeltaPage) {
    assert_eq!(page.items.len(), 4);
    let removed: Vec<&str> = page
        .items
        .iter()
        .filter(|i| i.removed.is_some())
        .map(|i| i.id.as_str())
        .collect();
    assert_eq!(removed, vec!["86462606-fde0-4fc4-9e0c-a20eb73e54c6"]);
    assert!(page.annotations.contains_key("@odata.nextLink"));
}

#[test]
fn every_graph_fixture_round_trips() {
    let files = json_files();
    let mut visited = 0;
    let mut entities = 0;
    let mut pages = 0;
    for path in &files {
        let stem = path.file_stem().unwrap().to_str().unwrap().to_string();
        let fixture = read_json(path);
        if let Some(subject) = stem.strip_suffix("-delta-page") {
            let page = check_delta_page(&stem, fixture);
            match subject {
                "group" => check_group_page_links(&page),
                "user" => check_user_page(&page),
                _ => {}
            }
            pages += 1;
        } else {
            check_entity(&stem, fixture);
            entities += 1;
        }
        visited += 1;
    }
    assert_eq!(visited, files.len());
    assert!(
        visited >= 16,
        "expected at least 16 fixtures in {}, found {visited}",
        fixtures_dir().display()
    );
    assert!(pages >= 2, "both delta pages visited");
    assert!(entities >= 14, "one entity per kind visited");
}

#[test]
fn every_kind_has_a_fixture() {
    let stems: Vec<String> = json_files()
        .iter()
        .map(|p| p.file_stem().unwrap().to_str().unwrap().to_string())
        .filter(|s| !s.ends_with("-delta-page"))
        .collect();
    for kind in ObjectKind::ALL {
        assert!(
            stems.iter().any(|s| kind_of_file(s) == kind),
            "no fixture for {kind}"
        );
    }
}

#[test]
fn a_rendered_fixture_parses_back_to_the_same_object() {
    // render → parse → create again must give the same attributes: what we export can be
    // imported.
    let path = fixtures_dir().join("application.json");
    let fixture = read_json(&path);
    let rendered = round_trip_entity("application", &fixture);
    let again = graph::parse(None, rendered.clone()).unwrap();
    assert_eq!(again.kind, ObjectKind::Application);
    let mut expected: Map<String, Value> = rendered.as_object().unwrap().clone();
    expected.remove("id");
    expected.remove(graph::KIND_KEY);
    assert_eq!(again.attributes, expected);
}

#[test]
fn links_render_and_parse_back() {
    let user = "87d349ed-44d7-43e1-9a83-5f2406dee5bd";
    let group = "02bd9fd6-8f93-4758-87c3-1fb73740a315";
    let mut state = TenantState::default();
    let ctx = DecideContext {
        now_ms: NOW_MS,
        recycle_bin_retention_ms: 0,
    };
    let commands = [
        Command::Create {
            kind: ObjectKind::User,
            id: user.into(),
            attributes: serde_json::from_value(serde_json::json!({
                "displayName": "Adele Vance", "userPrincipalName": "AdeleV@contoso.com"
            }))
            .unwrap(),
            links: Vec::new(),
        },
        Command::Create {
            kind: ObjectKind::Group,
            id: group.into(),
            attributes: serde_json::from_value(serde_json::json!({"displayName": "HR"})).unwrap(),
            links: vec![Link::new("members", user), Link::new("owners", user)],
        },
    ];
    for (i, command) in commands.into_iter().enumerate() {
        for pending in decide(&state, &ctx, command).unwrap() {
            let event = Event {
                meta: meta(pending.kind, &pending.object_id),
                change: pending.change,
            };
            state.apply(&event, i as u64 + 1);
        }
    }
    let rendered = graph::render(&state.objects[group]);
    assert_eq!(
        rendered[graph::LINKS_KEY],
        serde_json::json!({"members": [user], "owners": [user]})
    );
    let parsed = graph::parse(None, rendered).unwrap();
    assert_eq!(parsed.kind, ObjectKind::Group);
    assert_eq!(parsed.id.as_deref(), Some(group));
    assert_eq!(
        parsed.links,
        vec![Link::new("members", user), Link::new("owners", user)]
    );
    assert_eq!(parsed.attributes, state.objects[group].attributes);
}
