//! Random directory histories for store tests: commands decided by the domain's rules,
//! stamped as events of tenant `t1`.
#![allow(clippy::unwrap_used, dead_code)]

use backtrack_domain::command::{Command, DecideContext};
use backtrack_domain::event::{Change, Event, EventMeta};
use backtrack_domain::ObjectKind;
use proptest::prelude::*;
use serde_json::json;

pub const CTX: DecideContext = DecideContext {
    now_ms: 1_700_000_000_000,
    recycle_bin_retention_ms: 30 * 86_400_000,
};

pub fn ids(prefix: u8) -> Vec<String> {
    (0..4)
        .map(|i| format!("{prefix:02x}000000-0000-4000-8000-00000000000{i}"))
        .collect()
}

pub fn command_strategy() -> impl Strategy<Value = Command> {
    let users = ids(0xaa);
    let groups = ids(0xbb);
    let u = proptest::sample::select(users.clone());
    let g = proptest::sample::select(groups.clone());
    prop_oneof![
        (u.clone(), 0..3u8).prop_map(|(id, n)| Command::Create {
            kind: ObjectKind::User,
            attributes:
                json!({"displayName": format!("U{n}"), "userPrincipalName": format!("{id}@x.test")})
                    .as_object()
                    .cloned()
                    .unwrap(),
            id,
            links: vec![],
        }),
        g.clone().prop_map(|id| Command::Create {
            kind: ObjectKind::Group,
            attributes: json!({"displayName": "G"}).as_object().cloned().unwrap(),
            id,
            links: vec![],
        }),
        (u.clone(), "[a-c]{1,2}").prop_map(|(id, d)| Command::Update {
            id,
            set: json!({"department": d}).as_object().cloned().unwrap(),
            unset: vec![],
        }),
        u.clone().prop_map(|id| Command::Update {
            id,
            set: Default::default(),
            unset: vec!["department".into()]
        }),
        (g.clone(), u.clone()).prop_map(|(id, t)| Command::AddLinks {
            id,
            relation: "members".into(),
            targets: vec![t]
        }),
        (g.clone(), g.clone()).prop_map(|(id, t)| Command::AddLinks {
            id,
            relation: "members".into(),
            targets: vec![t]
        }),
        (g.clone(), u.clone()).prop_map(|(id, t)| Command::RemoveLinks {
            id,
            relation: "members".into(),
            targets: vec![t]
        }),
        (u.clone(), u.clone()).prop_map(|(id, t)| Command::AddLinks {
            id,
            relation: "manager".into(),
            targets: vec![t]
        }),
        prop_oneof![u.clone(), g.clone()].prop_map(|id| Command::SoftDelete { id }),
        prop_oneof![u.clone(), g.clone()].prop_map(|id| Command::Restore { id }),
        prop_oneof![u, g].prop_map(|id| Command::HardDelete { id }),
    ]
}

pub fn stamp(seq: u64, kind: ObjectKind, object_id: String, change: Change) -> Event {
    Event {
        meta: EventMeta {
            event_id: format!("e{seq}"),
            tenant: "t1".into(),
            kind: kind.as_str().into(),
            object_id,
            actor: "test".into(),
            time_ms: CTX.now_ms + seq as i64,
            source: "test".into(),
            correlation_id: None,
            mutation_id: format!("m{seq}"),
        },
        change,
    }
}

pub fn tenant_event() -> Event {
    let mut e = stamp(
        1,
        ObjectKind::User,
        "t1".into(),
        Change::TenantCreated {
            display_name: "T1".into(),
        },
    );
    e.meta.kind = "tenant".into();
    e
}
