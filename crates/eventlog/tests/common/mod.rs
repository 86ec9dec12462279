//! What the event log's tests share: events, appends and a log on a server.
#![allow(dead_code)]

use std::time::Duration;

use backtrack_domain::event::{Change, Event, EventMeta};
use backtrack_eventlog::{Append, EventLog, StreamSettings};
use backtrack_test_support::NatsServer;
use serde_json::{json, Map, Value};

pub const WAIT: Duration = Duration::from_secs(10);

pub fn attributes(value: Value) -> Map<String, Value> {
    value.as_object().cloned().unwrap_or_default()
}

pub fn user_event(tenant: &str, object_id: &str, n: usize) -> Event {
    Event {
        meta: EventMeta {
            event_id: uuid::Uuid::now_v7().to_string(),
            tenant: tenant.into(),
            kind: "user".into(),
            object_id: object_id.into(),
            actor: "admin@t1".into(),
            time_ms: 1_795_315_500_000 + n as i64,
            source: "directory".into(),
            correlation_id: None,
            mutation_id: format!("mutation-{n}"),
        },
        change: Change::Created {
            attributes: attributes(json!({"displayName": format!("User {n}"), "n": n})),
            links: vec![],
        },
    }
}

pub fn new_user(n: usize) -> Event {
    user_event("t1", &uuid::Uuid::new_v4().to_string(), n)
}

pub fn append(event: Event) -> Append {
    Append {
        event,
        msg_id: uuid::Uuid::new_v4().to_string(),
        expected_last_subject_sequence: None,
    }
}

pub async fn open(server: &NatsServer) -> anyhow::Result<EventLog> {
    Ok(EventLog::open(server.client().await?, StreamSettings::default()).await?)
}

/// Appends `items`, failing the test unless every one succeeds; returns their sequences.
pub async fn append_ok(log: &EventLog, items: Vec<Append>) -> anyhow::Result<Vec<u64>> {
    log.append(items)
        .await
        .into_iter()
        .map(|result| Ok(result?.sequence))
        .collect()
}
