//! Domain ⇄ protobuf conversions. Decoding is strict: a payload that does not describe a
//! valid event is an error, never a silently wrong event.

use backtrack_domain::canonical::{map_to_canonical_string, to_canonical_string};
use backtrack_domain::event::{AttributeChange, Change, Event, EventMeta, EVENT_SCHEMA_VERSION};
use backtrack_domain::object::{DirectoryObject, Link};
use serde_json::{Map, Value};

use crate::v1;

/// A payload that cannot be read as the domain type.
#[derive(Debug, thiserror::Error)]
pub enum ConversionError {
    #[error("event payload has no change")]
    MissingChange,
    #[error("event schema version {0} is newer than this reader ({EVENT_SCHEMA_VERSION}); upgrade Backtrack")]
    NewerSchema(u32),
    #[error("attribute JSON is invalid: {0}")]
    Json(#[from] serde_json::Error),
    #[error("expected a JSON object for attributes")]
    NotAnObject,
}

fn json_text(value: &Option<Value>) -> String {
    value.as_ref().map(to_canonical_string).unwrap_or_default()
}

fn parse_optional(text: &str) -> Result<Option<Value>, ConversionError> {
    if text.is_empty() {
        Ok(None)
    } else {
        Ok(Some(serde_json::from_str(text)?))
    }
}

/// Parses a JSON object text (empty text = empty object).
pub fn parse_object(text: &str) -> Result<Map<String, Value>, ConversionError> {
    if text.is_empty() {
        return Ok(Map::new());
    }
    match serde_json::from_str(text)? {
        Value::Object(map) => Ok(map),
        _ => Err(ConversionError::NotAnObject),
    }
}

impl From<&Link> for v1::Link {
    fn from(l: &Link) -> Self {
        v1::Link {
            relation: l.relation.clone(),
            target_id: l.target_id.clone(),
        }
    }
}

impl From<&v1::Link> for Link {
    fn from(l: &v1::Link) -> Self {
        Link::new(l.relation.clone(), l.target_id.clone())
    }
}

fn links_to_proto(links: &[Link]) -> Vec<v1::Link> {
    links.iter().map(v1::Link::from).collect()
}

fn links_from_proto(links: &[v1::Link]) -> Vec<Link> {
    links.iter().map(Link::from).collect()
}

/// Encodes a domain event as its protobuf payload.
pub fn event_to_proto(event: &Event) -> v1::DirectoryEvent {
    use v1::directory_event::Change as P;
    let m = &event.meta;
    let change = match &event.change {
        Change::Created { attributes, links } => P::Created(v1::ObjectCreated {
            attributes_json: map_to_canonical_string(attributes),
            links: links_to_proto(links),
        }),
        Change::AttributesChanged(changes) => P::AttributesChanged(v1::AttributesChanged {
            changes: changes
                .iter()
                .map(|c| v1::AttributeChange {
                    name: c.name.clone(),
                    old_json: json_text(&c.old),
                    new_json: json_text(&c.new),
                })
                .collect(),
        }),
        Change::LinksAdded(links) => P::LinksAdded(v1::LinksChanged {
            links: links_to_proto(links),
        }),
        Change::LinksRemoved(links) => P::LinksRemoved(v1::LinksChanged {
            links: links_to_proto(links),
        }),
        Change::SoftDeleted { purge_after_ms } => P::SoftDeleted(v1::ObjectSoftDeleted {
            purge_after_ms: *purge_after_ms,
        }),
        Change::Restored => P::Restored(v1::ObjectRestored {}),
        Change::HardDeleted { attributes, links } => P::HardDeleted(v1::ObjectHardDeleted {
            attributes_json: map_to_canonical_string(attributes),
            links: links_to_proto(links),
        }),
        Change::TenantCreated { display_name } => P::TenantCreated(v1::TenantCreated {
            display_name: display_name.clone(),
        }),
    };
    v1::DirectoryEvent {
        schema_version: EVENT_SCHEMA_VERSION,
        event_id: m.event_id.clone(),
        tenant: m.tenant.clone(),
        kind: m.kind.clone(),
        object_id: m.object_id.clone(),
        actor: m.actor.clone(),
        time_ms: m.time_ms,
        source: m.source.clone(),
        correlation_id: m.correlation_id.clone().unwrap_or_default(),
        mutation_id: m.mutation_id.clone(),
        change: Some(change),
    }
}

/// Decodes a protobuf payload into a domain event, upgrading older schema versions.
pub fn event_from_proto(p: v1::DirectoryEvent) -> Result<Event, ConversionError> {
    use v1::directory_event::Change as P;
    // Version 0 (unset) and 1 share one layout; later versions need a newer reader.
    if p.schema_version > EVENT_SCHEMA_VERSION {
        return Err(ConversionError::NewerSchema(p.schema_version));
    }
    let change = match p.change.ok_or(ConversionError::MissingChange)? {
        P::Created(c) => Change::Created {
            attributes: parse_object(&c.attributes_json)?,
            links: links_from_proto(&c.links),
        },
        P::AttributesChanged(c) => Change::AttributesChanged(
            c.changes
                .into_iter()
                .map(|c| {
                    Ok(AttributeChange {
                        old: parse_optional(&c.old_json)?,
                        new: parse_optional(&c.new_json)?,
                        name: c.name,
                    })
                })
                .collect::<Result<_, ConversionError>>()?,
        ),
        P::LinksAdded(c) => Change::LinksAdded(links_from_proto(&c.links)),
        P::LinksRemoved(c) => Change::LinksRemoved(links_from_proto(&c.links)),
        P::SoftDeleted(c) => Change::SoftDeleted {
            purge_after_ms: c.purge_after_ms,
        },
        P::Restored(_) => Change::Restored,
        P::HardDeleted(c) => Change::HardDeleted {
            attributes: parse_object(&c.attributes_json)?,
            links: links_from_proto(&c.links),
        },
        P::TenantCreated(c) => Change::TenantCreated {
            display_name: c.display_name,
        },
    };
    Ok(Event {
        meta: EventMeta {
            event_id: p.event_id,
            tenant: p.tenant,
            kind: p.kind,
            object_id: p.object_id,
            actor: p.actor,
            time_ms: p.time_ms,
            source: p.source,
            correlation_id: (!p.correlation_id.is_empty()).then_some(p.correlation_id),
            mutation_id: p.mutation_id,
        },
        change,
    })
}

/// Encodes a projected object for the API.
pub fn object_to_proto(o: &DirectoryObject) -> v1::DirectoryObject {
    v1::DirectoryObject {
        id: o.id.clone(),
        kind: o.kind.as_str().to_string(),
        attributes_json: map_to_canonical_string(&o.attributes),
        links: o.link_list().iter().map(v1::Link::from).collect(),
        deleted_at_ms: o.deleted_at_ms,
        version: o.version,
        created_at_ms: o.created_at_ms,
        updated_at_ms: o.updated_at_ms,
    }
}

/// Decodes an API object into the domain form.
pub fn object_from_proto(p: &v1::DirectoryObject) -> Result<DirectoryObject, ConversionError> {
    let kind = p.kind.parse().map_err(|_| ConversionError::NotAnObject)?;
    Ok(DirectoryObject {
        id: p.id.clone(),
        kind,
        attributes: parse_object(&p.attributes_json)?,
        links: backtrack_domain::object::group_links(&links_from_proto(&p.links)),
        created_at_ms: p.created_at_ms,
        updated_at_ms: p.updated_at_ms,
        deleted_at_ms: p.deleted_at_ms,
        purge_after_ms: None,
        version: p.version,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use prost::Message;
    use serde_json::json;

    fn meta() -> EventMeta {
        EventMeta {
            event_id: "0192f0c0-0000-7000-8000-000000000001".into(),
            tenant: "contoso".into(),
            kind: "group".into(),
            object_id: "02bd9fd6-8f93-4758-87c3-1fb73740a315".into(),
            actor: "admin".into(),
            time_ms: 1_700_000_000_000,
            source: "directory".into(),
            correlation_id: Some("job-1".into()),
            mutation_id: "m-1".into(),
        }
    }

    #[test]
    fn every_change_survives_the_wire() {
        let changes = vec![
            Change::Created {
                attributes: json!({"displayName": "Sales", "groupTypes": ["Unified"]})
                    .as_object()
                    .cloned()
                    .unwrap_or_default(),
                links: vec![Link::new("members", "a")],
            },
            Change::AttributesChanged(vec![
                AttributeChange {
                    name: "displayName".into(),
                    old: Some(json!("A")),
                    new: Some(json!("B")),
                },
                AttributeChange {
                    name: "mail".into(),
                    old: None,
                    new: Some(json!("x@y")),
                },
                AttributeChange {
                    name: "conditions".into(),
                    old: Some(json!({"a": [1]})),
                    new: None,
                },
            ]),
            Change::LinksAdded(vec![Link::new("members", "b")]),
            Change::LinksRemoved(vec![Link::new("owners", "c")]),
            Change::SoftDeleted { purge_after_ms: 42 },
            Change::Restored,
            Change::HardDeleted {
                attributes: Map::new(),
                links: vec![],
            },
            Change::TenantCreated {
                display_name: "Contoso".into(),
            },
        ];
        for change in changes {
            let event = Event {
                meta: meta(),
                change,
            };
            let bytes = event_to_proto(&event).encode_to_vec();
            let decoded = v1::DirectoryEvent::decode(bytes.as_slice()).unwrap();
            assert_eq!(event_from_proto(decoded).unwrap(), event);
        }
    }

    #[test]
    fn newer_schema_is_refused_with_a_hint() {
        let mut p = event_to_proto(&Event {
            meta: meta(),
            change: Change::Restored,
        });
        p.schema_version = 99;
        assert!(event_from_proto(p)
            .unwrap_err()
            .to_string()
            .contains("upgrade"));
    }
}
