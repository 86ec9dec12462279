//! The given/when/then vocabulary shared by the `decide_*` tests: a tenant that decides,
//! stamps and folds events as the directory service does, command builders, and matchers
//! for the expected refusals.
// Each test binary compiles this module and uses only part of it.
#![allow(dead_code)]

use backtrack_domain::event::Change;
use backtrack_domain::{
    decide, Command, DecideContext, DomainError, Event, EventMeta, ObjectKind, TenantState,
};
use serde_json::{json, Map, Value};

pub const START_MS: i64 = 1_795_315_500_000;
pub const RETENTION_MS: i64 = 30 * 24 * 3600 * 1000;

pub const ADELE: &str = "87d349ed-44d7-43e1-9a83-5f2406dee5bd";
pub const BRIAN: &str = "a702a13d-a437-4a07-8a7e-8c052de62dfd";
pub const CARLA: &str = "124c5b6a-ffa5-483a-9b88-04c3fce5574a";
pub const SALES: &str = "02bd9fd6-8f93-4758-87c3-1fb73740a315";
pub const ADMINS: &str = "2e5807ce-58f3-4a94-9b37-ffff2e085957";
pub const APP: &str = "03ef14b0-ca33-4840-8f4f-d6e91916010e";
pub const POLICY: &str = "6b5e999b-0ba8-4186-a106-e0296c1c4358";
pub const MISSING: &str = "00000000-0000-4000-8000-000000000000";

/// A tenant that decides commands, stamps the events and folds them, as the directory
/// service does after the log acknowledges them.
pub struct Tenant {
    pub state: TenantState,
    sequence: u64,
    pub now_ms: i64,
    /// Who the next commands are made by.
    pub actor: String,
    /// The job the next commands are made by (a recovery's id), if any.
    pub correlation_id: Option<String>,
    /// Every event so far, with its sequence.
    pub log: Vec<(u64, Event)>,
}

impl Tenant {
    pub fn given() -> Self {
        Self {
            state: TenantState::default(),
            sequence: 0,
            now_ms: START_MS,
            actor: "admin@contoso.com".into(),
            correlation_id: None,
            log: Vec::new(),
        }
    }

    /// Decides `command`; on success stamps and applies every event, in order.
    pub fn when(&mut self, command: Command) -> Result<Vec<Event>, DomainError> {
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
                    actor: self.actor.clone(),
                    time_ms: self.now_ms,
                    source: "tests/decide".into(),
                    correlation_id: self.correlation_id.clone(),
                    mutation_id: format!("mutation-{}", self.sequence),
                },
                change: p.change,
            };
            self.state.apply(&event, self.sequence);
            self.log.push((self.sequence, event.clone()));
            events.push(event);
        }
        Ok(events)
    }

    /// Like `when`, for commands the test expects to be accepted.
    pub fn ok(&mut self, command: Command) -> Vec<Event> {
        self.when(command.clone())
            .unwrap_or_else(|e| panic!("{command:?} refused: {e}"))
    }

    pub fn attribute(&self, id: &str, name: &str) -> Option<Value> {
        self.state.objects[id].attributes.get(name).cloned()
    }

    pub fn targets(&self, id: &str, relation: &str) -> Vec<String> {
        self.state.objects[id]
            .links
            .get(relation)
            .map(|set| set.iter().cloned().collect())
            .unwrap_or_default()
    }
}

pub fn attrs(value: Value) -> Map<String, Value> {
    match value {
        Value::Object(map) => map,
        other => panic!("not an object: {other}"),
    }
}

pub fn create(kind: ObjectKind, id: &str, attributes: Value) -> Command {
    Command::Create {
        kind,
        id: id.into(),
        attributes: attrs(attributes),
        links: Vec::new(),
    }
}

pub fn create_user(id: &str, name: &str, upn: &str) -> Command {
    create(
        ObjectKind::User,
        id,
        json!({"displayName": name, "userPrincipalName": upn}),
    )
}

pub fn create_group(id: &str, name: &str) -> Command {
    create(ObjectKind::Group, id, json!({"displayName": name}))
}

pub fn update(id: &str, set: Value) -> Command {
    Command::Update {
        id: id.into(),
        set: attrs(set),
        unset: Vec::new(),
    }
}

pub fn add(id: &str, relation: &str, targets: &[&str]) -> Command {
    Command::AddLinks {
        id: id.into(),
        relation: relation.into(),
        targets: targets.iter().map(|t| t.to_string()).collect(),
    }
}

pub fn remove(id: &str, relation: &str, targets: &[&str]) -> Command {
    Command::RemoveLinks {
        id: id.into(),
        relation: relation.into(),
        targets: targets.iter().map(|t| t.to_string()).collect(),
    }
}

pub fn soft_delete(id: &str) -> Command {
    Command::SoftDelete { id: id.into() }
}

pub fn restore(id: &str) -> Command {
    Command::Restore { id: id.into() }
}

pub fn hard_delete(id: &str) -> Command {
    Command::HardDelete { id: id.into() }
}

pub fn invalid(result: Result<Vec<Event>, DomainError>) -> String {
    match result {
        Err(DomainError::Invalid(msg)) => msg,
        other => panic!("expected Invalid, got {other:?}"),
    }
}

pub fn conflict(result: Result<Vec<Event>, DomainError>) -> String {
    match result {
        Err(DomainError::Conflict(msg)) => msg,
        other => panic!("expected Conflict, got {other:?}"),
    }
}

pub fn only_change(events: &[Event]) -> &Change {
    assert_eq!(events.len(), 1, "{events:?}");
    &events[0].change
}
