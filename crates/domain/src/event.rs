//! Events: the immutable facts in the log. One event changes one object (or a tenant).

use serde_json::{Map, Value};

use crate::object::Link;

/// Current schema version of event payloads.
pub const EVENT_SCHEMA_VERSION: u32 = 1;

/// The subject kind token of tenant lifecycle events.
pub const TENANT_KIND: &str = "tenant";

/// Who, when, where and why of an event.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EventMeta {
    /// UUIDv7 of the event.
    pub event_id: String,
    pub tenant: String,
    /// Graph kind name, or `tenant` for tenant events.
    pub kind: String,
    pub object_id: String,
    pub actor: String,
    pub time_ms: i64,
    pub source: String,
    pub correlation_id: Option<String>,
    /// Idempotency key of the mutation that produced the event.
    pub mutation_id: String,
}

/// One attribute's change, with both values (`None` = absent). Values are canonical.
#[derive(Debug, Clone, PartialEq)]
pub struct AttributeChange {
    pub name: String,
    pub old: Option<Value>,
    pub new: Option<Value>,
}

/// What happened to the object.
#[derive(Debug, Clone, PartialEq)]
pub enum Change {
    Created {
        attributes: Map<String, Value>,
        links: Vec<Link>,
    },
    AttributesChanged(Vec<AttributeChange>),
    LinksAdded(Vec<Link>),
    LinksRemoved(Vec<Link>),
    SoftDeleted {
        purge_after_ms: i64,
    },
    Restored,
    /// Carries the last state so a recovery can re-create the object from the log.
    HardDeleted {
        attributes: Map<String, Value>,
        links: Vec<Link>,
    },
    TenantCreated {
        display_name: String,
    },
}

impl Change {
    /// Short name used in the CloudEvents type and in the change feed.
    pub fn name(&self) -> &'static str {
        match self {
            Change::Created { .. } => "created",
            Change::AttributesChanged(_) => "attributesChanged",
            Change::LinksAdded(_) => "linksAdded",
            Change::LinksRemoved(_) => "linksRemoved",
            Change::SoftDeleted { .. } => "softDeleted",
            Change::Restored => "restored",
            Change::HardDeleted { .. } => "hardDeleted",
            Change::TenantCreated { .. } => "tenantCreated",
        }
    }
}

/// An event: metadata plus change.
#[derive(Debug, Clone, PartialEq)]
pub struct Event {
    pub meta: EventMeta,
    pub change: Change,
}

impl Event {
    /// The NATS subject: `bt.ev.<tenant>.<kind>.<objectId>`.
    pub fn subject(&self) -> String {
        subject(&self.meta.tenant, &self.meta.kind, &self.meta.object_id)
    }

    /// CloudEvents `type`, e.g. `io.backtrack.directory.created.v1`.
    pub fn cloud_event_type(&self) -> String {
        format!(
            "io.backtrack.directory.{}.v{EVENT_SCHEMA_VERSION}",
            self.change.name()
        )
    }
}

/// The subject of an object's events.
pub fn subject(tenant: &str, kind: &str, object_id: &str) -> String {
    format!("bt.ev.{tenant}.{kind}.{object_id}")
}
