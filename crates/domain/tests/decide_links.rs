//! Given/when/then examples of the link rules in `decide`: which relations exist, what a
//! link may point to, and which link changes are no change at all.
#![allow(clippy::unwrap_used)]

mod common;

use backtrack_domain::event::Change;
use backtrack_domain::{Command, DomainError, Link, ObjectKind};
use serde_json::json;

use common::*;

#[test]
fn unknown_relation_is_invalid_and_lists_the_valid_ones() {
    let mut t = Tenant::given();
    t.ok(create_group(SALES, "Sales"));
    t.ok(create_user(ADELE, "Adele", "a@contoso.com"));
    let msg = invalid(t.when(add(SALES, "friends", &[ADELE])));
    assert!(msg.contains("friends"), "{msg}");
    assert!(msg.contains("members"), "{msg}");
    assert!(msg.contains("owners"), "{msg}");

    t.ok(create(
        ObjectKind::ConditionalAccessPolicy,
        POLICY,
        json!({"displayName": "MFA"}),
    ));
    let msg = invalid(t.when(add(POLICY, "members", &[ADELE])));
    assert!(msg.contains("no links"), "{msg}");
}

#[test]
fn a_relation_is_not_an_attribute() {
    let mut t = Tenant::given();
    t.ok(create_group(SALES, "Sales"));
    let msg = invalid(t.when(update(SALES, json!({"members": [ADELE]}))));
    assert!(msg.contains("members"), "{msg}");
}

#[test]
fn link_to_a_missing_object_is_invalid() {
    let mut t = Tenant::given();
    t.ok(create_group(SALES, "Sales"));
    let msg = invalid(t.when(add(SALES, "members", &[MISSING])));
    assert!(msg.contains(MISSING), "{msg}");
    assert!(msg.contains("does not exist"), "{msg}");

    let err = t
        .when(Command::Create {
            kind: ObjectKind::Group,
            id: ADMINS.into(),
            attributes: attrs(json!({"displayName": "Admins"})),
            links: vec![Link::new("members", MISSING)],
        })
        .unwrap_err();
    assert!(matches!(err, DomainError::Invalid(_)), "{err:?}");
}

#[test]
fn link_to_the_wrong_kind_or_to_itself_is_invalid() {
    let mut t = Tenant::given();
    t.ok(create_group(SALES, "Sales"));
    t.ok(create(
        ObjectKind::Application,
        APP,
        json!({"displayName": "Payroll"}),
    ));
    let msg = invalid(t.when(add(SALES, "members", &[APP])));
    assert!(msg.contains("application"), "{msg}");
    let msg = invalid(t.when(add(SALES, "members", &[SALES])));
    assert!(msg.contains("own"), "{msg}");
}

#[test]
fn link_to_a_deleted_object_conflicts() {
    let mut t = Tenant::given();
    t.ok(create_group(SALES, "Sales"));
    t.ok(create_user(ADELE, "Adele", "a@contoso.com"));
    t.ok(soft_delete(ADELE));
    let msg = conflict(t.when(add(SALES, "members", &[ADELE])));
    assert!(msg.contains("recycle bin"), "{msg}");
    assert!(t.targets(SALES, "members").is_empty());
}

#[test]
fn replacing_the_manager_removes_the_old_one_first() {
    let mut t = Tenant::given();
    t.ok(create_user(ADELE, "Adele", "a@contoso.com"));
    t.ok(create_user(BRIAN, "Brian", "b@contoso.com"));
    t.ok(create_user(CARLA, "Carla", "c@contoso.com"));
    let events = t.ok(add(ADELE, "manager", &[BRIAN]));
    assert_eq!(
        only_change(&events),
        &Change::LinksAdded(vec![Link::new("manager", BRIAN)])
    );

    let events = t.ok(add(ADELE, "manager", &[CARLA]));
    let changes: Vec<&Change> = events.iter().map(|e| &e.change).collect();
    assert_eq!(
        changes,
        vec![
            &Change::LinksRemoved(vec![Link::new("manager", BRIAN)]),
            &Change::LinksAdded(vec![Link::new("manager", CARLA)]),
        ]
    );
    assert_eq!(t.targets(ADELE, "manager"), vec![CARLA]);

    // The same manager again is no change; two at once is refused.
    assert!(t.ok(add(ADELE, "manager", &[CARLA])).is_empty());
    let msg = invalid(t.when(add(ADELE, "manager", &[BRIAN, CARLA])));
    assert!(msg.contains("at most one"), "{msg}");
}

#[test]
fn adding_an_existing_member_and_removing_a_missing_one_emit_nothing() {
    let mut t = Tenant::given();
    t.ok(create_user(ADELE, "Adele", "a@contoso.com"));
    t.ok(create_group(SALES, "Sales"));
    t.ok(add(SALES, "members", &[ADELE]));
    assert!(t.ok(add(SALES, "members", &[ADELE])).is_empty());
    let remove = |targets: &[&str]| Command::RemoveLinks {
        id: SALES.into(),
        relation: "members".into(),
        targets: targets.iter().map(|s| s.to_string()).collect(),
    };
    assert!(t.ok(remove(&[BRIAN])).is_empty());
    let events = t.ok(remove(&[ADELE, BRIAN]));
    assert_eq!(
        only_change(&events),
        &Change::LinksRemoved(vec![Link::new("members", ADELE)])
    );
    invalid(t.when(remove(&[])));
}

#[test]
fn a_create_takes_graphs_link_bindings_as_links() {
    let mut t = Tenant::given();
    t.ok(create_user(ADELE, "Adele", "a@contoso.com"));
    t.ok(create_user(BRIAN, "Brian", "b@contoso.com"));
    t.ok(create_user(CARLA, "Carla", "c@contoso.com"));
    let events = t.ok(create(
        ObjectKind::Group,
        SALES,
        json!({
            "displayName": "Sales",
            "members@odata.bind": [
                format!("https://graph.microsoft.com/v1.0/directoryObjects/{ADELE}"),
                format!("https://graph.microsoft.com/v1.0/users('{BRIAN}')"),
                CARLA,
            ],
            "owners@odata.bind": format!("https://graph.microsoft.com/v1.0/users/{ADELE}/"),
        }),
    ));
    let Change::Created { attributes, links } = only_change(&events) else {
        panic!("expected a creation: {events:?}");
    };
    assert!(
        attributes.keys().all(|k| !k.contains("@odata.bind")),
        "{attributes:?}"
    );
    let mut got: Vec<(String, String)> = links
        .iter()
        .map(|l| (l.relation.clone(), l.target_id.clone()))
        .collect();
    got.sort();
    let mut want = vec![
        ("members".to_string(), ADELE.to_string()),
        ("members".to_string(), BRIAN.to_string()),
        ("members".to_string(), CARLA.to_string()),
        ("owners".to_string(), ADELE.to_string()),
    ];
    want.sort();
    assert_eq!(got, want);
    assert_eq!(t.targets(SALES, "members").len(), 3);

    // A binding is checked like any link.
    let msg = invalid(t.when(create(
        ObjectKind::Group,
        ADMINS,
        json!({"displayName": "Admins", "friends@odata.bind": [ADELE]}),
    )));
    assert!(msg.contains("friends") && msg.contains("members"), "{msg}");
    let msg = invalid(t.when(create(
        ObjectKind::Group,
        ADMINS,
        json!({"displayName": "Admins", "members@odata.bind": [MISSING]}),
    )));
    assert!(msg.contains(MISSING), "{msg}");
    for bad in [
        json!(42),
        json!([{"id": ADELE}]),
        json!(""),
        json!(["https://graph.microsoft.com/v1.0/users('')"]),
    ] {
        let msg = invalid(t.when(create(
            ObjectKind::Group,
            ADMINS,
            json!({"displayName": "Admins", "members@odata.bind": bad}),
        )));
        assert!(msg.contains("members@odata.bind"), "{bad}: {msg}");
    }
}

#[test]
fn a_create_takes_expanded_relations_as_links() {
    let mut t = Tenant::given();
    t.ok(create_user(ADELE, "Adele", "a@contoso.com"));
    t.ok(create_group(ADMINS, "Admins"));
    // As `$expand=members,owners` returns them: whole objects, of which the ids count.
    t.ok(create(
        ObjectKind::Group,
        SALES,
        json!({
            "displayName": "Sales",
            "members": [
                {"@odata.type": "#microsoft.graph.user", "id": ADELE, "displayName": "Adele"},
                {"@odata.type": "#microsoft.graph.group", "id": ADMINS},
            ],
            "owners": [],
        }),
    ));
    let mut members = t.targets(SALES, "members");
    members.sort();
    let mut want = vec![ADELE.to_string(), ADMINS.to_string()];
    want.sort();
    assert_eq!(members, want);
    assert!(t.attribute(SALES, "members").is_none());
    assert!(t.attribute(SALES, "owners").is_none());
    // `$expand=manager`: one object.
    t.ok(create(
        ObjectKind::User,
        BRIAN,
        json!({"displayName": "Brian", "userPrincipalName": "b@contoso.com", "manager": {"id": ADELE}}),
    ));
    assert_eq!(t.targets(BRIAN, "manager"), vec![ADELE.to_string()]);
    // Bare ids are no Graph shape: refused with the way to give links.
    let msg = invalid(t.when(create(
        ObjectKind::Group,
        POLICY,
        json!({"displayName": "Ops", "members": [ADELE]}),
    )));
    assert!(msg.contains("@links"), "{msg}");
}

#[test]
fn an_update_refuses_link_bindings() {
    let mut t = Tenant::given();
    t.ok(create_user(ADELE, "Adele", "a@contoso.com"));
    t.ok(create_group(SALES, "Sales"));
    let msg = invalid(t.when(update(SALES, json!({"members@odata.bind": [ADELE]}))));
    assert!(msg.contains("link add"), "{msg}");
    assert!(t.attribute(SALES, "members@odata.bind").is_none());
}

#[test]
fn odata_type_must_be_a_type_of_the_objects_kind() {
    let mut t = Tenant::given();
    let msg = invalid(t.when(create(
        ObjectKind::User,
        ADELE,
        json!({"displayName": "Adele", "userPrincipalName": "a@contoso.com", "@odata.type": "#microsoft.graph.group"}),
    )));
    assert!(msg.contains("#microsoft.graph.user"), "{msg}");
    t.ok(create(
        ObjectKind::User,
        ADELE,
        json!({"displayName": "Adele", "userPrincipalName": "a@contoso.com", "@odata.type": "#microsoft.graph.user"}),
    ));
    let msg = invalid(t.when(update(ADELE, json!({"@odata.type": 7}))));
    assert!(msg.contains("not a string"), "{msg}");
    let msg = invalid(t.when(update(
        ADELE,
        json!({"@odata.type": "#microsoft.graph.device"}),
    )));
    assert!(msg.contains("device"), "{msg}");
    t.ok(create(
        ObjectKind::NamedLocation,
        POLICY,
        json!({"displayName": "HQ", "@odata.type": "#microsoft.graph.countryNamedLocation"}),
    ));
}
