//! A large tenant written straight to the log: importing a million objects through the
//! directory would take many minutes, and what the time-travel scenarios measure is the
//! snapshotter reading the log, not how the log was filled.
//!
//! [`append`] publishes one `tenantCreated` event, then one `created` event per user (a few
//! attributes each), then the groups (one per [`OBJECTS_PER_GROUP`] objects) with up to
//! [`MEMBERS_PER_GROUP`] user members each, through [`EventLog::append`] in batches of
//! [`BATCH`], as the directory would have written them once decided.

use std::time::{Duration, Instant};

use anyhow::bail;
use backtrack_domain::event::{Change, Event, EventMeta, TENANT_KIND};
use backtrack_domain::{Link, ObjectKind};
use backtrack_eventlog::{Append, EventLog};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use serde_json::{json, Map, Value};

/// The tenant the time-travel scenarios build, back up and read.
pub const TENANT: &str = "bench-large";
/// Events per `EventLog::append` call.
pub const BATCH: usize = 5000;
/// One group per this many objects (1,000 groups in a million objects).
pub const OBJECTS_PER_GROUP: usize = 1000;
/// Members of each group (fewer when the tenant has fewer users).
pub const MEMBERS_PER_GROUP: usize = 100;
/// Who the events say made them.
const ACTOR: &str = "backtrack-bench";
const SEED: u64 = 7;
const DEPARTMENTS: &[&str] = &["Sales", "Engineering", "Finance", "Legal", "Operations"];

/// How many users and groups make `objects` objects.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TenantShape {
    pub users: usize,
    pub groups: usize,
    pub members_per_group: usize,
}

impl TenantShape {
    /// At least one user; a group as soon as there are two objects.
    pub fn for_objects(objects: usize) -> Self {
        let objects = objects.max(1);
        let groups = if objects < 2 {
            0
        } else {
            (objects / OBJECTS_PER_GROUP).max(1)
        };
        let users = objects - groups;
        Self {
            users,
            groups,
            members_per_group: MEMBERS_PER_GROUP.min(users),
        }
    }

    pub fn objects(&self) -> usize {
        self.users + self.groups
    }
}

/// What [`append`] wrote.
#[derive(Debug, Clone, PartialEq)]
pub struct LargeTenant {
    pub shape: TenantShape,
    /// Events appended, the `tenantCreated` one included.
    pub events: u64,
    /// Sequences of the first (`tenantCreated`) and last events.
    pub first_sequence: u64,
    pub last_sequence: u64,
    pub elapsed: Duration,
}

/// Appends [`TENANT`] with `objects` objects to `log`. Fails if any append fails or turns
/// out to be a duplicate (the tenant must be new to the log).
pub async fn append(log: &EventLog, objects: usize) -> anyhow::Result<LargeTenant> {
    let shape = TenantShape::for_objects(objects);
    let mut ids = ChaCha8Rng::seed_from_u64(SEED);
    let user_ids: Vec<String> = (0..shape.users).map(|_| guid(&mut ids)).collect();
    let started = Instant::now();
    let now = now_ms();
    let mut first_sequence = 0;
    let mut last_sequence = 0;
    let mut events = 0u64;
    let tenant_created = std::iter::once(Event {
        meta: meta(TENANT_KIND, TENANT, now),
        change: Change::TenantCreated {
            display_name: "Benchmark (large)".into(),
        },
    });
    let users = user_ids.iter().enumerate().map(|(n, id)| Event {
        meta: meta(ObjectKind::User.as_str(), id, now),
        change: Change::Created {
            attributes: user_attributes(n, now),
            links: Vec::new(),
        },
    });
    let groups = (0..shape.groups).map(|g| {
        let mut links: Vec<Link> = (0..shape.members_per_group)
            .map(|k| {
                let member = (g * shape.members_per_group + k) % shape.users;
                Link::new("members", user_ids[member].as_str())
            })
            .collect();
        links.sort();
        Event {
            meta: meta(ObjectKind::Group.as_str(), &guid(&mut ids), now),
            change: Change::Created {
                attributes: group_attributes(g),
                links,
            },
        }
    });
    let mut all = tenant_created.chain(users).chain(groups).peekable();
    while all.peek().is_some() {
        let batch: Vec<Append> = all
            .by_ref()
            .take(BATCH)
            .map(|event| Append {
                msg_id: format!("{TENANT}:{}:0", event.meta.mutation_id),
                expected_last_subject_sequence: None,
                event,
            })
            .collect();
        for result in log.append(batch).await {
            let appended = result?;
            if appended.duplicate {
                bail!(
                    "event {} was already in the log: the large tenant must be new",
                    appended.sequence
                );
            }
            if first_sequence == 0 {
                first_sequence = appended.sequence;
            }
            last_sequence = appended.sequence;
            events += 1;
        }
    }
    Ok(LargeTenant {
        shape,
        events,
        first_sequence,
        last_sequence,
        elapsed: started.elapsed(),
    })
}

pub(crate) fn meta(kind: &str, object_id: &str, time_ms: i64) -> EventMeta {
    EventMeta {
        event_id: uuid::Uuid::now_v7().to_string(),
        tenant: TENANT.to_string(),
        kind: kind.to_string(),
        object_id: object_id.to_string(),
        actor: ACTOR.to_string(),
        time_ms,
        source: ACTOR.to_string(),
        correlation_id: None,
        mutation_id: uuid::Uuid::now_v7().to_string(),
    }
}

/// A random (version 4) lower-case GUID, as object ids of users and groups are.
fn guid(rng: &mut ChaCha8Rng) -> String {
    uuid::Builder::from_random_bytes(rng.random())
        .into_uuid()
        .to_string()
}

fn user_attributes(n: usize, now: i64) -> Map<String, Value> {
    let upn = format!("user{n}@large.bench.example");
    object(json!({
        "displayName": format!("Bench User {n}"),
        "userPrincipalName": upn,
        "mail": upn,
        "accountEnabled": true,
        "department": DEPARTMENTS[n % DEPARTMENTS.len()],
        "jobTitle": format!("Engineer {}", n % 7),
        "createdDateTime": backtrack_domain::time::rfc3339_ms(now),
    }))
}

fn group_attributes(g: usize) -> Map<String, Value> {
    object(json!({
        "displayName": format!("Bench Group {g}"),
        "mailNickname": format!("bench-group-{g}"),
        "securityEnabled": true,
        "mailEnabled": false,
    }))
}

fn object(value: Value) -> Map<String, Value> {
    match value {
        Value::Object(map) => map,
        _ => Map::new(),
    }
}

pub(crate) fn now_ms() -> i64 {
    chrono::Utc::now().timestamp_millis()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_million_objects_are_999000_users_and_1000_groups() {
        let shape = TenantShape::for_objects(1_000_000);
        assert_eq!((shape.users, shape.groups), (999_000, 1000));
        assert_eq!(shape.members_per_group, 100);
        assert_eq!(shape.objects(), 1_000_000);
    }

    #[test]
    fn tiny_tenants_still_have_a_user_and_a_group() {
        assert_eq!(TenantShape::for_objects(1).objects(), 1);
        let two = TenantShape::for_objects(2);
        assert_eq!((two.users, two.groups, two.members_per_group), (1, 1, 1));
    }

    #[test]
    fn ids_are_guids() {
        let id = guid(&mut ChaCha8Rng::seed_from_u64(1));
        assert!(backtrack_domain::canonical::looks_like_guid(&id));
    }
}
