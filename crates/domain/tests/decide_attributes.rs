//! Given/when/then examples of the attribute rules in `decide`: what a create or update
//! records, what it refuses, and that secrets never reach an event.
#![allow(clippy::unwrap_used)]

mod common;

use backtrack_domain::event::{AttributeChange, Change};
use backtrack_domain::validate::{MAX_OBJECT_BYTES, MAX_VALUE_BYTES};
use backtrack_domain::{Command, DomainError, ObjectKind};
use serde_json::{json, Map};

use common::*;

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
fn the_secrets_a_request_carries_are_named_by_place() {
    use backtrack_domain::command::secrets_in;
    let attributes = |v: serde_json::Value| v.as_object().cloned().unwrap();
    assert_eq!(
        secrets_in(
            ObjectKind::Application,
            &attributes(json!({
                "displayName": "App",
                "passwordCredentials": [{"keyId": "k1"}, {"keyId": "k2", "SecretText": "x"}],
                "keyCredentials": [{"keyId": "k3"}],
            }))
        ),
        vec!["passwordCredentials[].secretText".to_string()]
    );
    assert_eq!(
        secrets_in(
            ObjectKind::User,
            &attributes(json!({"PasswordProfile": {"password": "x"}, "jobTitle": "Dev"}))
        ),
        vec!["PasswordProfile".to_string()]
    );
    // Not a secret of a group; credential metadata without the secret field is none.
    assert!(secrets_in(
        ObjectKind::Group,
        &attributes(json!({"passwordProfile": {"password": "x"}}))
    )
    .is_empty());
    assert!(secrets_in(
        ObjectKind::ServicePrincipal,
        &attributes(json!({"keyCredentials": [{"keyId": "k"}], "passwordCredentials": "x"}))
    )
    .is_empty());
    assert!(backtrack_domain::schema::may_be_secret("keycredentials"));
    assert!(!backtrack_domain::schema::may_be_secret("displayName"));
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
