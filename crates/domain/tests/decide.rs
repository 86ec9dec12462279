//! Given/when/then examples of the directory's rules in `decide`.
#![allow(clippy::unwrap_used)]

use backtrack_domain::event::{AttributeChange, Change};
use backtrack_domain::validate::{MAX_OBJECT_BYTES, MAX_VALUE_BYTES};
use backtrack_domain::{
    decide, Command, DecideContext, DomainError, Event, EventMeta, Link, ObjectKind, TenantState,
};
use serde_json::{json, Map, Value};

const START_MS: i64 = 1_795_315_500_000;
const RETENTION_MS: i64 = 30 * 24 * 3600 * 1000;

const ADELE: &str = "87d349ed-44d7-43e1-9a83-5f2406dee5bd";
const BRIAN: &str = "a702a13d-a437-4a07-8a7e-8c052de62dfd";
const CARLA: &str = "124c5b6a-ffa5-483a-9b88-04c3fce5574a";
const SALES: &str = "02bd9fd6-8f93-4758-87c3-1fb73740a315";
const ADMINS: &str = "2e5807ce-58f3-4a94-9b37-ffff2e085957";
const APP: &str = "03ef14b0-ca33-4840-8f4f-d6e91916010e";
const POLICY: &str = "6b5e999b-0ba8-4186-a106-e0296c1c4358";
const MISSING: &str = "00000000-0000-4000-8000-000000000000";

/// A tenant that decides commands, stamps the events and folds them, as the directory
/// service does after the log acknowledges them.
struct Tenant {
    state: TenantState,
    sequence: u64,
    now_ms: i64,
}

impl Tenant {
    fn given() -> Self {
        Self {
            state: TenantState::default(),
            sequence: 0,
            now_ms: START_MS,
        }
    }

    /// Decides `command`; on success stamps and applies every event, in order.
    fn when(&mut self, command: Command) -> Result<Vec<Event>, DomainError> {
        self.now_ms += 1000;
        let ctx = DecideContext {
            now_ms: self.now_ms,
            recycle_bin_retention_ms: RETENTION_MS,
        };
        let pending = decide(&self.state, &ctx, command)?;
        let mut events = Vec::with_capacity(pending.len());
        for p in pending {
            self.sequence += 1;
            let event = Event {
                meta: EventMeta {
                    event_id: format!("event-{}", self.sequence),
                    tenant: "contoso".into(),
                    kind: p.kind.as_str().into(),
                    object_id: p.object_id,
                    actor: "admin@contoso.com".into(),
                    time_ms: self.now_ms,
                    source: "tests/decide".into(),
                    correlation_id: None,
                    mutation_id: format!("mutation-{}", self.sequence),
                },
                change: p.change,
            };
            self.state.apply(&event, self.sequence);
            events.push(event);
        }
        Ok(events)
    }

    /// Like `when`, for commands the test expects to be accepted.
    fn ok(&mut self, command: Command) -> Vec<Event> {
        self.when(command.clone())
            .unwrap_or_else(|e| panic!("{command:?} refused: {e}"))
    }

    fn attribute(&self, id: &str, name: &str) -> Option<Value> {
        self.state.objects[id].attributes.get(name).cloned()
    }

    fn targets(&self, id: &str, relation: &str) -> Vec<String> {
        self.state.objects[id]
            .links
            .get(relation)
            .map(|set| set.iter().cloned().collect())
            .unwrap_or_default()
    }
}

fn attrs(value: Value) -> Map<String, Value> {
    match value {
        Value::Object(map) => map,
        other => panic!("not an object: {other}"),
    }
}

fn create(kind: ObjectKind, id: &str, attributes: Value) -> Command {
    Command::Create {
        kind,
        id: id.into(),
        attributes: attrs(attributes),
        links: Vec::new(),
    }
}

fn create_user(id: &str, name: &str, upn: &str) -> Command {
    create(
        ObjectKind::User,
        id,
        json!({"displayName": name, "userPrincipalName": upn}),
    )
}

fn create_group(id: &str, name: &str) -> Command {
    create(ObjectKind::Group, id, json!({"displayName": name}))
}

fn update(id: &str, set: Value) -> Command {
    Command::Update {
        id: id.into(),
        set: attrs(set),
        unset: Vec::new(),
    }
}

fn add(id: &str, relation: &str, targets: &[&str]) -> Command {
    Command::AddLinks {
        id: id.into(),
        relation: relation.into(),
        targets: targets.iter().map(|t| t.to_string()).collect(),
    }
}

fn soft_delete(id: &str) -> Command {
    Command::SoftDelete { id: id.into() }
}

fn restore(id: &str) -> Command {
    Command::Restore { id: id.into() }
}

fn hard_delete(id: &str) -> Command {
    Command::HardDelete { id: id.into() }
}

fn invalid(result: Result<Vec<Event>, DomainError>) -> String {
    match result {
        Err(DomainError::Invalid(msg)) => msg,
        other => panic!("expected Invalid, got {other:?}"),
    }
}

fn conflict(result: Result<Vec<Event>, DomainError>) -> String {
    match result {
        Err(DomainError::Conflict(msg)) => msg,
        other => panic!("expected Conflict, got {other:?}"),
    }
}

fn only_change(events: &[Event]) -> &Change {
    assert_eq!(events.len(), 1, "{events:?}");
    &events[0].change
}

#[test]
fn create_user_records_the_attributes_and_the_creation_time() {
    let mut t = Tenant::given();
    let events = t.ok(create_user(ADELE, "Adele Vance", "AdeleV@contoso.com"));

    assert_eq!(events[0].meta.kind, "user");
    assert_eq!(events[0].meta.object_id, ADELE);
    assert_eq!(events[0].subject(), format!("bt.ev.contoso.user.{ADELE}"));
    let Change::Created { attributes, links } = only_change(&events) else {
        panic!("{events:?}");
    };
    assert!(links.is_empty());
    assert_eq!(attributes["displayName"], json!("Adele Vance"));
    assert_eq!(attributes["userPrincipalName"], json!("AdeleV@contoso.com"));
    assert_eq!(
        attributes["createdDateTime"],
        json!(backtrack_domain::time::rfc3339_ms(START_MS + 1000))
    );
    let object = &t.state.objects[ADELE];
    assert_eq!(object.kind, ObjectKind::User);
    assert_eq!(object.version, 1);
    assert!(!object.is_deleted());
}

#[test]
fn create_normalises_an_upper_case_id() {
    let mut t = Tenant::given();
    let events = t.ok(create_user(
        &ADELE.to_ascii_uppercase(),
        "Adele Vance",
        "AdeleV@contoso.com",
    ));
    assert_eq!(events[0].meta.object_id, ADELE);
    assert!(t.state.objects.contains_key(ADELE));
}

#[test]
fn create_without_a_required_attribute_is_invalid() {
    let mut t = Tenant::given();
    let msg = invalid(t.when(create(
        ObjectKind::User,
        ADELE,
        json!({"displayName": "Adele"}),
    )));
    assert!(msg.contains("userPrincipalName"), "{msg}");
}

#[test]
fn creating_an_existing_id_already_exists() {
    let mut t = Tenant::given();
    t.ok(create_user(ADELE, "Adele", "adele@contoso.com"));
    let err = t
        .when(create_user(ADELE, "Adele", "other@contoso.com"))
        .unwrap_err();
    assert!(matches!(err, DomainError::AlreadyExists(_)), "{err:?}");
}

#[test]
fn duplicate_user_principal_name_is_refused_case_insensitively() {
    let mut t = Tenant::given();
    t.ok(create_user(ADELE, "Adele Vance", "AdeleV@contoso.com"));

    let err = t
        .when(create_user(BRIAN, "Impostor", "adelev@CONTOSO.com"))
        .unwrap_err();
    let DomainError::AlreadyExists(msg) = &err else {
        panic!("expected AlreadyExists, got {err:?}");
    };
    assert!(msg.contains("userPrincipalName"), "{msg}");
    assert!(!t.state.objects.contains_key(BRIAN));

    // Renaming another user onto the taken name is refused too.
    t.ok(create_user(BRIAN, "Brian", "brian@contoso.com"));
    let err = t
        .when(update(
            BRIAN,
            json!({"userPrincipalName": "ADELEV@contoso.com"}),
        ))
        .unwrap_err();
    assert!(matches!(err, DomainError::AlreadyExists(_)), "{err:?}");
    // Changing the case of one's own name is fine.
    t.ok(update(
        ADELE,
        json!({"userPrincipalName": "adelev@contoso.com"}),
    ));
}

#[test]
fn a_name_in_the_recycle_bin_can_be_reused_but_then_blocks_restore() {
    let mut t = Tenant::given();
    t.ok(create_user(ADELE, "Adele", "adele@contoso.com"));
    t.ok(soft_delete(ADELE));
    t.ok(create_user(BRIAN, "New Adele", "ADELE@contoso.com"));
    let err = t.when(restore(ADELE)).unwrap_err();
    assert!(matches!(err, DomainError::AlreadyExists(_)), "{err:?}");
    assert!(t.state.objects[ADELE].is_deleted());
}

#[test]
fn password_profile_is_never_in_an_event() {
    let secret = "Pa55-w0rd-never-logged";
    let mut t = Tenant::given();
    let events = t.ok(create(
        ObjectKind::User,
        ADELE,
        json!({
            "displayName": "Adele",
            "userPrincipalName": "adele@contoso.com",
            "passwordProfile": {"password": secret, "forceChangePasswordNextSignIn": true},
        }),
    ));
    assert!(!format!("{events:?}").contains(secret));
    let Change::Created { attributes, .. } = only_change(&events) else {
        panic!("{events:?}");
    };
    assert!(!attributes.contains_key("passwordProfile"));
    assert!(!format!("{:?}", t.state).contains(secret));

    // A password reset alone changes nothing the directory stores.
    let events = t.ok(update(
        ADELE,
        json!({"passwordProfile": {"password": secret}}),
    ));
    assert!(events.is_empty(), "{events:?}");

    // Together with a real change, only the real change is recorded.
    let events = t.ok(update(
        ADELE,
        json!({"passwordProfile": {"password": secret}, "jobTitle": "Buyer"}),
    ));
    assert!(!format!("{events:?}").contains(secret));
    let Change::AttributesChanged(changes) = only_change(&events) else {
        panic!("{events:?}");
    };
    let names: Vec<&str> = changes.iter().map(|c| c.name.as_str()).collect();
    assert_eq!(names, vec!["jobTitle"]);
}

#[test]
fn application_credentials_keep_everything_but_the_secret() {
    let secret_text = "client-secret-marker-0001";
    let key = "MIIC-key-material-marker-0002";
    let mut t = Tenant::given();
    let events = t.ok(create(
        ObjectKind::Application,
        APP,
        json!({
            "displayName": "Payroll",
            "passwordCredentials": [{
                "keyId": "b5d4f1a2-0000-4000-8000-000000000001",
                "displayName": "ci secret",
                "endDateTime": "2027-01-01T00:00:00Z",
                "hint": "cli",
                "secretText": secret_text,
            }],
            "keyCredentials": [{
                "keyId": "b5d4f1a2-0000-4000-8000-000000000002",
                "type": "AsymmetricX509Cert",
                "usage": "Verify",
                "customKeyIdentifier": "A1B2",
                "key": key,
            }],
        }),
    ));
    let text = format!("{events:?}");
    assert!(!text.contains(secret_text), "{text}");
    assert!(!text.contains(key), "{text}");
    let Change::Created { attributes, .. } = only_change(&events) else {
        panic!("{events:?}");
    };
    assert_eq!(
        attributes["passwordCredentials"],
        json!([{
            "keyId": "b5d4f1a2-0000-4000-8000-000000000001",
            "displayName": "ci secret",
            "endDateTime": "2027-01-01T00:00:00Z",
            "hint": "cli",
        }])
    );
    assert_eq!(
        attributes["keyCredentials"],
        json!([{
            "keyId": "b5d4f1a2-0000-4000-8000-000000000002",
            "type": "AsymmetricX509Cert",
            "usage": "Verify",
            "customKeyIdentifier": "A1B2",
        }])
    );

    // Adding a secret later strips it as well.
    let events = t.ok(update(
        APP,
        json!({"passwordCredentials": [
            {"keyId": "b5d4f1a2-0000-4000-8000-000000000003", "secretText": secret_text}
        ]}),
    ));
    assert!(!format!("{events:?}").contains(secret_text));
    assert_eq!(
        t.attribute(APP, "passwordCredentials"),
        Some(json!([{"keyId": "b5d4f1a2-0000-4000-8000-000000000003"}]))
    );
}

#[test]
fn wrong_attribute_type_is_invalid_and_names_the_attribute() {
    let mut t = Tenant::given();
    let msg = invalid(t.when(create(
        ObjectKind::User,
        ADELE,
        json!({"displayName": "Adele", "userPrincipalName": "a@contoso.com", "accountEnabled": "yes"}),
    )));
    assert!(msg.contains("accountEnabled"), "{msg}");
    assert!(msg.contains("boolean"), "{msg}");

    t.ok(create_user(ADELE, "Adele", "a@contoso.com"));
    let msg = invalid(t.when(update(ADELE, json!({"businessPhones": [1, 2]}))));
    assert!(msg.contains("businessPhones"), "{msg}");
    let msg = invalid(t.when(update(ADELE, json!({"displayName": 7}))));
    assert!(msg.contains("displayName"), "{msg}");
}

#[test]
fn read_only_attributes_cannot_be_updated() {
    let mut t = Tenant::given();
    t.ok(create_user(ADELE, "Adele", "a@contoso.com"));
    let msg = invalid(t.when(update(
        ADELE,
        json!({"createdDateTime": "2001-01-01T00:00:00Z"}),
    )));
    assert!(msg.contains("createdDateTime"), "{msg}");
    assert!(msg.contains("read-only"), "{msg}");

    let msg = invalid(t.when(Command::Update {
        id: ADELE.into(),
        set: Map::new(),
        unset: vec!["createdDateTime".into()],
    }));
    assert!(msg.contains("createdDateTime"), "{msg}");
    for name in ["id", "deletedDateTime"] {
        let mut set = Map::new();
        set.insert(name.into(), json!("x"));
        let msg = invalid(t.when(Command::Update {
            id: ADELE.into(),
            set,
            unset: Vec::new(),
        }));
        assert!(msg.contains(name), "{msg}");
    }
}

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
fn changing_a_deleted_object_conflicts() {
    let mut t = Tenant::given();
    t.ok(create_user(ADELE, "Adele", "a@contoso.com"));
    t.ok(create_user(BRIAN, "Brian", "b@contoso.com"));
    t.ok(soft_delete(ADELE));
    let msg = conflict(t.when(update(ADELE, json!({"jobTitle": "Buyer"}))));
    assert!(msg.contains("restore"), "{msg}");
    conflict(t.when(add(ADELE, "manager", &[BRIAN])));
    conflict(t.when(soft_delete(ADELE)));
}

#[test]
fn update_without_an_effective_change_emits_nothing() {
    let mut t = Tenant::given();
    t.ok(create(
        ObjectKind::User,
        ADELE,
        json!({
            "displayName": "Adele",
            "userPrincipalName": "a@contoso.com",
            "jobTitle": "Buyer",
            "businessPhones": ["+1 425 555 0109"],
        }),
    ));
    let version = t.state.objects[ADELE].version;
    let events = t.ok(update(
        ADELE,
        json!({
            "displayName": "Adele",
            "jobTitle": "Buyer",
            "department": null,
            "mobilePhone": [],
            "businessPhones": ["+1 425 555 0109"],
        }),
    ));
    assert!(events.is_empty(), "{events:?}");
    let events = t.ok(Command::Update {
        id: ADELE.into(),
        set: Map::new(),
        unset: vec!["officeLocation".into()],
    });
    assert!(events.is_empty(), "{events:?}");
    assert_eq!(t.state.objects[ADELE].version, version);
}

#[test]
fn update_records_old_and_new_values() {
    let mut t = Tenant::given();
    t.ok(create(
        ObjectKind::User,
        ADELE,
        json!({"displayName": "Adele", "userPrincipalName": "a@contoso.com", "jobTitle": "Buyer"}),
    ));
    let events = t.ok(Command::Update {
        id: ADELE.into(),
        set: attrs(json!({"department": "Retail"})),
        unset: vec!["jobTitle".into()],
    });
    let Change::AttributesChanged(changes) = only_change(&events) else {
        panic!("{events:?}");
    };
    assert_eq!(
        changes,
        &vec![
            AttributeChange {
                name: "department".into(),
                old: None,
                new: Some(json!("Retail")),
            },
            AttributeChange {
                name: "jobTitle".into(),
                old: Some(json!("Buyer")),
                new: None,
            },
        ]
    );
    assert_eq!(t.attribute(ADELE, "department"), Some(json!("Retail")));
    assert_eq!(t.attribute(ADELE, "jobTitle"), None);

    let msg = invalid(t.when(update(ADELE, json!({"displayName": null}))));
    assert!(msg.contains("displayName"), "{msg}");
}

#[test]
fn soft_delete_restore_and_hard_delete() {
    let mut t = Tenant::given();
    t.ok(create_user(ADELE, "Adele", "a@contoso.com"));
    t.ok(create_user(BRIAN, "Brian", "b@contoso.com"));
    t.ok(create_user(CARLA, "Carla", "c@contoso.com"));
    t.ok(create_group(SALES, "Sales"));
    t.ok(create_group(ADMINS, "Admins"));
    t.ok(add(ADELE, "manager", &[CARLA]));
    t.ok(add(BRIAN, "manager", &[ADELE]));
    t.ok(add(SALES, "members", &[ADELE, BRIAN]));
    t.ok(add(SALES, "owners", &[ADELE]));
    t.ok(add(ADMINS, "members", &[ADELE]));

    // Soft delete puts the object in the recycle bin, links untouched.
    let events = t.ok(soft_delete(ADELE));
    let Change::SoftDeleted { purge_after_ms } = only_change(&events) else {
        panic!("{events:?}");
    };
    assert_eq!(*purge_after_ms, t.now_ms + RETENTION_MS);
    assert!(t.state.objects[ADELE].is_deleted());
    assert_eq!(t.targets(SALES, "members"), vec![ADELE, BRIAN]);

    // Restore brings it back.
    let events = t.ok(restore(ADELE));
    assert_eq!(only_change(&events), &Change::Restored);
    assert!(!t.state.objects[ADELE].is_deleted());
    assert_eq!(t.state.objects[ADELE].purge_after_ms, None);
    conflict(t.when(restore(ADELE)));

    // Hard delete is only for objects in the recycle bin.
    let msg = conflict(t.when(hard_delete(ADELE)));
    assert!(msg.contains("soft delete it first"), "{msg}");
    assert!(t.state.objects.contains_key(ADELE));

    t.ok(soft_delete(ADELE));
    let attributes_before = t.state.objects[ADELE].attributes.clone();
    let events = t.ok(hard_delete(ADELE));

    // Every referrer loses its links first, in id order, then the object goes.
    let changes: Vec<(&str, &Change)> = events
        .iter()
        .map(|e| (e.meta.object_id.as_str(), &e.change))
        .collect();
    let mut referrers = [
        (
            SALES,
            Change::LinksRemoved(vec![
                Link::new("members", ADELE),
                Link::new("owners", ADELE),
            ]),
        ),
        (
            ADMINS,
            Change::LinksRemoved(vec![Link::new("members", ADELE)]),
        ),
        (
            BRIAN,
            Change::LinksRemoved(vec![Link::new("manager", ADELE)]),
        ),
    ];
    referrers.sort_by(|a, b| a.0.cmp(b.0));
    assert_eq!(changes.len(), 4, "{changes:?}");
    for (i, (id, change)) in referrers.iter().enumerate() {
        assert_eq!(changes[i], (*id, change), "event {i}");
    }
    assert_eq!(events[0].meta.kind, "group");
    assert_eq!(
        changes[3],
        (
            ADELE,
            &Change::HardDeleted {
                attributes: attributes_before,
                links: vec![Link::new("manager", CARLA)],
            }
        )
    );
    assert_eq!(events[3].meta.kind, "user");

    assert!(!t.state.objects.contains_key(ADELE));
    assert_eq!(t.targets(SALES, "members"), vec![BRIAN]);
    assert!(t.targets(SALES, "owners").is_empty());
    assert!(t.targets(ADMINS, "members").is_empty());
    assert!(t.targets(BRIAN, "manager").is_empty());
    let err = t.when(hard_delete(ADELE)).unwrap_err();
    assert!(matches!(err, DomainError::NotFound(_)), "{err:?}");
    let err = t.when(restore(ADELE)).unwrap_err();
    assert!(matches!(err, DomainError::NotFound(_)), "{err:?}");

    // The id is free again.
    t.ok(create_user(ADELE, "Adele again", "a@contoso.com"));
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
fn a_singleton_cannot_be_deleted() {
    let mut t = Tenant::given();
    t.ok(create(
        ObjectKind::AuthorizationPolicy,
        "authorizationPolicy",
        json!({"displayName": "Authorization Policy", "allowInvitesFrom": "everyone"}),
    ));
    let msg = invalid(t.when(soft_delete("authorizationPolicy")));
    assert!(msg.contains("singleton"), "{msg}");
    conflict(t.when(hard_delete("authorizationPolicy")));
    assert!(t.state.objects.contains_key("authorizationPolicy"));

    let msg = invalid(t.when(create(
        ObjectKind::AuthorizationPolicy,
        "otherPolicy",
        json!({}),
    )));
    assert!(msg.contains("singleton"), "{msg}");

    // It can be updated.
    let events = t.ok(update(
        "authorizationPolicy",
        json!({"allowInvitesFrom": "adminsAndGuestInviters"}),
    ));
    assert_eq!(events.len(), 1);
}

#[test]
fn oversized_values_and_objects_are_invalid() {
    let mut t = Tenant::given();
    let huge = "x".repeat(MAX_VALUE_BYTES + 1);
    let msg = invalid(t.when(create(
        ObjectKind::Group,
        SALES,
        json!({"displayName": "Sales", "description": huge}),
    )));
    assert!(msg.contains("description"), "{msg}");
    assert!(!msg.contains(&huge), "the error does not echo the value");
    assert!(!t.state.objects.contains_key(SALES));

    t.ok(create_group(SALES, "Sales"));
    invalid(t.when(update(SALES, json!({"description": huge}))));

    // Each value under the limit, all of them together over the object limit.
    let big = "y".repeat(MAX_VALUE_BYTES - 100);
    let mut set = Map::new();
    for i in 0..(MAX_OBJECT_BYTES / big.len() + 1) {
        set.insert(format!("extension{i}"), json!(big));
    }
    let msg = invalid(t.when(Command::Update {
        id: SALES.into(),
        set,
        unset: Vec::new(),
    }));
    assert!(msg.contains("limit"), "{msg}");

    let mut deep = json!("leaf");
    for _ in 0..40 {
        deep = json!({ "a": deep });
    }
    let msg = invalid(t.when(update(SALES, json!({ "settings": deep }))));
    assert!(msg.contains("nested"), "{msg}");
}

#[test]
fn invalid_ids_and_attribute_names_are_refused() {
    let mut t = Tenant::given();
    invalid(t.when(create_user("bt.ev.*", "Adele", "a@contoso.com")));
    invalid(t.when(create(
        ObjectKind::Group,
        SALES,
        json!({"displayName": "Sales", "bad name": 1}),
    )));
    t.ok(create_group(SALES, "Sales"));
    invalid(t.when(add(SALES, "members", &["*"])));
    invalid(t.when(update(">", json!({"displayName": "x"}))));
}

#[test]
fn conditional_access_state_is_one_of_three() {
    let mut t = Tenant::given();
    let msg = invalid(t.when(create(
        ObjectKind::ConditionalAccessPolicy,
        POLICY,
        json!({"displayName": "MFA", "state": "on"}),
    )));
    for state in ["enabled", "disabled", "enabledForReportingButNotEnforced"] {
        assert!(msg.contains(state), "{msg}");
    }

    t.ok(create(
        ObjectKind::ConditionalAccessPolicy,
        POLICY,
        json!({"displayName": "MFA", "state": "disabled"}),
    ));
    for state in ["enabledForReportingButNotEnforced", "enabled", "disabled"] {
        let events = t.ok(update(POLICY, json!({ "state": state })));
        assert_eq!(events.len(), 1);
        assert_eq!(t.attribute(POLICY, "state"), Some(json!(state)));
    }
    invalid(t.when(update(POLICY, json!({"state": "Enabled"}))));
    invalid(t.when(update(POLICY, json!({"state": true}))));
    assert_eq!(t.attribute(POLICY, "state"), Some(json!("disabled")));
}

#[test]
fn malformed_credentials_cannot_smuggle_a_secret() {
    let secret = "smuggled-secret-marker";
    for credentials in [json!([secret]), json!([[{"secretText": secret}]])] {
        let mut t = Tenant::given();
        let result = t.when(create(
            ObjectKind::Application,
            APP,
            json!({"displayName": "Payroll", "passwordCredentials": credentials}),
        ));
        assert!(
            !format!("{result:?}").contains(secret),
            "{credentials}: {result:?}"
        );
        let msg = invalid(result);
        assert!(msg.contains("passwordCredentials"), "{msg}");
        assert!(!format!("{:?}", t.state).contains(secret));
    }
    let mut t = Tenant::given();
    let msg = invalid(t.when(create(
        ObjectKind::ServicePrincipal,
        APP,
        json!({"keyCredentials": secret}),
    )));
    assert!(!msg.contains(secret), "{msg}");
}

#[test]
fn secrets_are_stripped_whatever_the_case_of_their_names() {
    let secret = "case-variant-secret-marker";
    let mut t = Tenant::given();
    let result = t.when(create(
        ObjectKind::User,
        ADELE,
        json!({
            "displayName": "Adele",
            "userPrincipalName": "a@contoso.com",
            "PasswordProfile": {"password": secret},
        }),
    ));
    assert!(!format!("{result:?}").contains(secret), "{result:?}");
    let result = t.when(create(
        ObjectKind::Application,
        APP,
        json!({
            "displayName": "Payroll",
            "passwordCredentials": [{"keyId": "k1", "SecretText": secret}],
        }),
    ));
    assert!(!format!("{result:?}").contains(secret), "{result:?}");
    assert!(!format!("{:?}", t.state).contains(secret));
}
