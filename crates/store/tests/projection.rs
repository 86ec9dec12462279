//! The RocksDB projection against the domain's reference fold, on a real RocksDB.
#![allow(clippy::unwrap_used)]

use backtrack_domain::command::decide;
use backtrack_domain::digest::tenant_digest;
use backtrack_domain::event::Change;
use backtrack_domain::{ObjectKind, TenantState};
use backtrack_store::{DirectoryProjection, ListQuery};
use proptest::prelude::*;
use serde_json::json;

mod common;

use common::{command_strategy, ids, stamp, tenant_event, CTX};

proptest! {
    #![proptest_config(ProptestConfig::with_cases(48))]

    /// replay(log[0..n]) in the RocksDB projection == the domain's fold, in any chunking.
    #[test]
    fn projection_matches_the_reference_fold(commands in proptest::collection::vec(command_strategy(), 1..60), chunk in 1usize..8, ingest in any::<bool>()) {
        let dir = tempfile::tempdir().unwrap();
        let projection = DirectoryProjection::open(dir.path()).unwrap();
        let mut state = TenantState::default();
        let mut log = vec![(1, tenant_event())];
        state.apply(&log[0].1, 1);
        for command in commands {
            // Decide against the projection itself: it must answer like the reference.
            let from_store = decide(&projection.view("t1"), &CTX, command.clone());
            let from_state = decide(&state, &CTX, command);
            prop_assert_eq!(&from_store, &from_state);
            for pending in from_state.unwrap_or_default() {
                let seq = log.len() as u64 + 1;
                let event = stamp(seq, pending.kind, pending.object_id, pending.change);
                state.apply(&event, seq);
                log.push((seq, event));
            }
            // Keep the projection current so the next decision sees the same state.
            projection.apply(&log[projection.position().unwrap() as usize..]).unwrap();
        }
        let (digest, _) = projection.tenant_digest("t1").unwrap();
        prop_assert_eq!(&digest, &tenant_digest(&state));

        // Heads read in one batch (in any order, with an id that does not exist) are the
        // heads read one by one, and the reference's.
        let missing = "00000000-0000-4000-8000-00000000ffff".to_string();
        let asked: Vec<&str> = state.objects.keys().rev().chain([&missing]).map(String::as_str).collect();
        let batched = projection.heads("t1", &asked).unwrap();
        prop_assert_eq!(batched.len(), asked.len());
        for (id, head) in asked.iter().zip(batched) {
            prop_assert_eq!(head, projection.head("t1", id).unwrap());
            prop_assert_eq!(head, state.objects.get(*id).map(|o| (o.kind, o.is_deleted())));
        }

        // A fresh projection fed the same log in chunks ends identical, also when every
        // run goes to RocksDB as an ingested table file instead of a write batch.
        let dir2 = tempfile::tempdir().unwrap();
        let rebuilt = DirectoryProjection::open(dir2.path()).unwrap();
        if ingest {
            rebuilt.ingest_runs_from(1);
        }
        for part in log.chunks(chunk) {
            rebuilt.apply(part).unwrap();
        }
        // Re-delivery of the whole log changes nothing.
        rebuilt.apply(&log).unwrap();
        prop_assert_eq!(rebuilt.tenant_digest("t1").unwrap().0, digest);
        prop_assert_eq!(rebuilt.position().unwrap(), log.len() as u64);

        // The indexes (by kind, recycle bin) list what the reference holds, whichever way
        // the log was chunked.
        check_listings(&projection, &state)?;
        check_listings(&rebuilt, &state)?;

        // Referrers (the reverse links) match the reference, also after a projection of
        // the older layout, without reverse links, is opened and upgraded.
        check_referrers(&projection, &state)?;
        drop(rebuilt);
        {
            let db = rocksdb::DB::open_default(dir2.path()).unwrap();
            let stale: Vec<Box<[u8]>> = db
                .iterator(rocksdb::IteratorMode::Start)
                .map(|item| item.unwrap().0)
                .filter(|k| k.starts_with(b"b/") || &**k == b"F")
                .collect();
            for key in stale {
                db.delete(key).unwrap();
            }
        }
        let upgraded = DirectoryProjection::open(dir2.path()).unwrap();
        check_referrers(&upgraded, &state)?;
    }
}

/// Every kind's listing and the recycle bin hold exactly the reference's objects.
fn check_listings(
    projection: &DirectoryProjection,
    state: &TenantState,
) -> Result<(), TestCaseError> {
    let listed = |kind: Option<ObjectKind>, deleted: bool| -> Vec<String> {
        let query = ListQuery {
            kind,
            deleted,
            after: None,
            limit: usize::MAX,
        };
        let objects = projection.list("t1", &query).unwrap();
        objects.into_iter().map(|o| o.id).collect()
    };
    for kind in ObjectKind::ALL {
        let want: Vec<String> = state
            .objects
            .values()
            .filter(|o| o.kind == kind && !o.is_deleted())
            .map(|o| o.id.clone())
            .collect();
        prop_assert_eq!(listed(Some(kind), false), want, "live {}", kind.as_str());
    }
    let in_bin: Vec<String> = state
        .objects
        .values()
        .filter(|o| o.is_deleted())
        .map(|o| o.id.clone())
        .collect();
    prop_assert_eq!(listed(None, true), in_bin, "recycle bin");
    Ok(())
}

fn check_referrers(
    projection: &DirectoryProjection,
    state: &TenantState,
) -> Result<(), TestCaseError> {
    use backtrack_domain::DirectoryView;
    let mut targets: Vec<String> = state.objects.keys().cloned().collect();
    targets.extend(ids(0x11));
    for target in targets {
        let mut have = projection.referrers("t1", &target).unwrap();
        let mut want = state.referrers(&target);
        have.sort();
        want.sort();
        prop_assert_eq!(have, want, "referrers of {}", target);
    }
    Ok(())
}

#[test]
fn lists_page_by_kind_and_recycle_bin() {
    let dir = tempfile::tempdir().unwrap();
    let projection = DirectoryProjection::open(dir.path()).unwrap();
    let mut log = vec![(1, tenant_event())];
    for (i, id) in ids(0xaa).into_iter().enumerate() {
        let attrs =
            json!({"displayName": format!("U{i}"), "userPrincipalName": format!("u{i}@x.test")});
        let change = Change::Created {
            attributes: attrs.as_object().cloned().unwrap(),
            links: vec![],
        };
        let seq = log.len() as u64 + 1;
        log.push((seq, stamp(seq, ObjectKind::User, id, change)));
    }
    let deleted = ids(0xaa)[1].clone();
    let seq = log.len() as u64 + 1;
    log.push((
        seq,
        stamp(
            seq,
            ObjectKind::User,
            deleted.clone(),
            Change::SoftDeleted { purge_after_ms: 1 },
        ),
    ));
    projection.apply(&log).unwrap();

    let page1 = projection
        .list(
            "t1",
            &ListQuery {
                kind: Some(ObjectKind::User),
                limit: 2,
                ..Default::default()
            },
        )
        .unwrap();
    assert_eq!(page1.len(), 2);
    let page2 = projection
        .list(
            "t1",
            &ListQuery {
                kind: Some(ObjectKind::User),
                limit: 2,
                after: Some(page1[1].id.clone()),
                ..Default::default()
            },
        )
        .unwrap();
    assert_eq!(page2.len(), 1, "three live users, one in the recycle bin");
    assert!(page1.iter().chain(&page2).all(|o| o.id != deleted));
    let bin = projection
        .list(
            "t1",
            &ListQuery {
                deleted: true,
                limit: 10,
                ..Default::default()
            },
        )
        .unwrap();
    assert_eq!(
        bin.iter().map(|o| o.id.clone()).collect::<Vec<_>>(),
        vec![deleted]
    );
    assert_eq!(projection.tenants().unwrap()[0].display_name, "T1");
    assert_eq!(
        projection
            .find_unique("t1", ObjectKind::User, "userPrincipalName", "U0@X.TEST")
            .unwrap(),
        Some(ids(0xaa)[0].clone())
    );
    assert_eq!(
        projection
            .find_unique("t1", ObjectKind::User, "userPrincipalName", "u1@x.test")
            .unwrap(),
        None,
        "deleted users release their UPN"
    );
}

/// A run that changes objects already stored deletes and puts their unchanged index keys
/// again (kind, unique value) within one write batch. The batch is sorted by key before
/// it is written; a sort that let a key's delete pass its put would drop the object from
/// the listings and the unique index. Enough objects that the sort is not a small-slice
/// insertion sort, which would hide an unstable one.
#[test]
fn a_run_rewriting_index_keys_keeps_every_object_listed() {
    let dir = tempfile::tempdir().unwrap();
    let projection = DirectoryProjection::open(dir.path()).unwrap();
    let users: Vec<String> = (0..200)
        .map(|i| format!("{i:08x}-0000-4000-8000-000000000000"))
        .collect();
    let mut created = vec![(1, tenant_event())];
    for (i, id) in users.iter().enumerate() {
        let attrs =
            json!({"displayName": format!("U{i}"), "userPrincipalName": format!("u{i}@x.test")});
        let change = Change::Created {
            attributes: attrs.as_object().cloned().unwrap(),
            links: vec![],
        };
        let seq = created.len() as u64 + 1;
        created.push((seq, stamp(seq, ObjectKind::User, id.clone(), change)));
    }
    projection.apply(&created).unwrap();

    let mut renamed = Vec::new();
    for (i, id) in users.iter().enumerate() {
        let change = Change::AttributesChanged(vec![backtrack_domain::event::AttributeChange {
            name: "displayName".into(),
            old: Some(json!(format!("U{i}"))),
            new: Some(json!(format!("Renamed {i}"))),
        }]);
        let seq = (created.len() + renamed.len()) as u64 + 1;
        renamed.push((seq, stamp(seq, ObjectKind::User, id.clone(), change)));
    }
    projection.apply(&renamed).unwrap();

    let listed = projection
        .list(
            "t1",
            &ListQuery {
                kind: Some(ObjectKind::User),
                limit: 1000,
                ..Default::default()
            },
        )
        .unwrap();
    assert_eq!(
        listed.len(),
        users.len(),
        "every renamed user is still listed"
    );
    for (i, id) in users.iter().enumerate() {
        assert_eq!(
            projection
                .find_unique(
                    "t1",
                    ObjectKind::User,
                    "userPrincipalName",
                    &format!("u{i}@x.test")
                )
                .unwrap()
                .as_ref(),
            Some(id),
            "user {i} still holds its UPN"
        );
    }
}
