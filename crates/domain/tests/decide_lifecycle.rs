//! Given/when/then examples of the lifecycle rules in `decide`: soft delete, restore and
//! hard delete, the recycle bin, and singletons that cannot be deleted.
#![allow(clippy::unwrap_used)]

mod common;

use backtrack_domain::event::Change;
use backtrack_domain::{DomainError, Link, ObjectKind};
use serde_json::json;

use common::*;

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
