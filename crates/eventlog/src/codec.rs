//! Events ⇄ NATS messages, without NATS: the subject, the CloudEvents headers of the NATS
//! protocol binding, and the protobuf payload (`backtrack.v1.DirectoryEvent`).
//!
//! Encoding refuses anything that could change the meaning of a message on the wire: a
//! subject token that is empty or could act as a wildcard or separator, a header value with
//! control characters. Decoding is strict: a payload that is not a valid event is an error.

use async_nats::header::{HeaderMap, HeaderValue};
use backtrack_domain::event::Event;
use backtrack_domain::time::rfc3339_ms;
use backtrack_proto::convert::{event_from_proto, event_to_proto, ConversionError};
use backtrack_proto::v1::DirectoryEvent;
use bytes::Bytes;
use prost::Message as _;

/// `ce-specversion`: the CloudEvents version.
pub const CE_SPECVERSION: &str = "ce-specversion";
/// `ce-id`: the event id.
pub const CE_ID: &str = "ce-id";
/// `ce-type`: e.g. `io.backtrack.directory.created.v1`.
pub const CE_TYPE: &str = "ce-type";
/// `ce-source`: `/backtrack/<tenant>/<source>`.
pub const CE_SOURCE: &str = "ce-source";
/// `ce-time`: RFC 3339 with milliseconds.
pub const CE_TIME: &str = "ce-time";
/// `ce-subject`: `<kind>/<objectId>`.
pub const CE_SUBJECT: &str = "ce-subject";
/// `ce-dataschema`: the protobuf message name of the payload.
pub const CE_DATASCHEMA: &str = "ce-dataschema";
/// `content-type` of the payload.
pub const CONTENT_TYPE: &str = "content-type";

/// The CloudEvents version written into every message.
pub const SPEC_VERSION: &str = "1.0";
/// The payload's content type.
pub const PROTOBUF_CONTENT_TYPE: &str = "application/protobuf";
/// The payload's schema: the fully qualified protobuf message name.
pub const DATA_SCHEMA: &str = "backtrack.v1.DirectoryEvent";

/// An event ready to publish: where, with which headers, and what.
#[derive(Debug, Clone)]
pub struct EncodedEvent {
    pub subject: String,
    pub headers: HeaderMap,
    pub payload: Bytes,
}

impl EncodedEvent {
    /// Adds a header after validating its value (the event-independent `Nats-*` headers).
    /// Empty values are refused: an empty `Nats-Msg-Id` would silently disable dedupe.
    pub fn insert_header(&mut self, name: &'static str, value: &str) -> Result<(), CodecError> {
        if value.is_empty() {
            return Err(CodecError::EmptyHeaderValue { header: name });
        }
        self.headers.insert(name, header_value(name, value)?);
        Ok(())
    }

    /// The bytes the server counts against its payload and message-size limits: the header
    /// block as sent (`NATS/1.0\r\n`, `name: value\r\n` per value, `\r\n`) plus the payload.
    pub fn wire_size(&self) -> usize {
        let mut size = b"NATS/1.0\r\n".len() + b"\r\n".len();
        for (name, values) in self.headers.iter() {
            let name: &str = name.as_ref();
            for value in values {
                size += name.len() + b": ".len() + value.as_str().len() + b"\r\n".len();
            }
        }
        size + self.payload.len()
    }
}

/// Why an event cannot become a message, or a message cannot become an event.
#[derive(Debug, thiserror::Error)]
pub enum CodecError {
    #[error("{field} '{value}' cannot be a NATS subject token: use 1-128 characters of A-Z, a-z, 0-9, '-' and '_'")]
    InvalidSubjectToken { field: &'static str, value: String },
    #[error("header {header} cannot carry control characters (value '{value}')")]
    InvalidHeaderValue { header: &'static str, value: String },
    #[error("header {header} must not be empty")]
    EmptyHeaderValue { header: &'static str },
    #[error("payload is not a protobuf {DATA_SCHEMA}: {0}")]
    Protobuf(#[from] prost::DecodeError),
    #[error("payload is not a valid event: {0}")]
    Conversion(#[from] ConversionError),
    #[error("payload describes an event of {described} but was stored on {stored}")]
    SubjectMismatch { described: String, stored: String },
}

/// Encodes `event` as its subject, CloudEvents headers and protobuf payload.
pub fn encode(event: &Event) -> Result<EncodedEvent, CodecError> {
    let meta = &event.meta;
    subject_token("tenant", &meta.tenant)?;
    subject_token("kind", &meta.kind)?;
    subject_token("object id", &meta.object_id)?;

    let mut headers = HeaderMap::new();
    let mut put = |name: &'static str, value: &str| -> Result<(), CodecError> {
        headers.insert(name, header_value(name, value)?);
        Ok(())
    };
    put(CE_SPECVERSION, SPEC_VERSION)?;
    put(CE_ID, &meta.event_id)?;
    put(CE_TYPE, &event.cloud_event_type())?;
    put(
        CE_SOURCE,
        &format!("/backtrack/{}/{}", meta.tenant, meta.source),
    )?;
    put(CE_TIME, &rfc3339_ms(meta.time_ms))?;
    put(CE_SUBJECT, &format!("{}/{}", meta.kind, meta.object_id))?;
    put(CE_DATASCHEMA, DATA_SCHEMA)?;
    put(CONTENT_TYPE, PROTOBUF_CONTENT_TYPE)?;

    Ok(EncodedEvent {
        subject: event.subject(),
        headers,
        payload: Bytes::from(event_to_proto(event).encode_to_vec()),
    })
}

/// Decodes a protobuf payload into an event (upgrading older schema versions).
pub fn decode(payload: &[u8]) -> Result<Event, CodecError> {
    let proto = DirectoryEvent::decode(payload)?;
    Ok(event_from_proto(proto)?)
}

/// Decodes the payload of a message stored on `subject` and checks that the event belongs
/// there, so a message published on one tenant's subject can never pass as another's event.
pub fn decode_stored(subject: &str, payload: &[u8]) -> Result<Event, CodecError> {
    let event = decode(payload)?;
    let described = event.subject();
    if described != subject {
        return Err(CodecError::SubjectMismatch {
            described,
            stored: subject.to_string(),
        });
    }
    Ok(event)
}

fn subject_token(field: &'static str, value: &str) -> Result<(), CodecError> {
    let ok = !value.is_empty()
        && value.len() <= 128
        && value
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_');
    if ok {
        Ok(())
    } else {
        Err(CodecError::InvalidSubjectToken {
            field,
            value: value.escape_default().to_string(),
        })
    }
}

fn header_value(header: &'static str, value: &str) -> Result<HeaderValue, CodecError> {
    let invalid = || CodecError::InvalidHeaderValue {
        header,
        value: value.escape_default().to_string(),
    };
    if value.chars().any(char::is_control) {
        return Err(invalid());
    }
    value.parse().map_err(|_| invalid())
}

#[cfg(test)]
mod tests {
    use backtrack_domain::event::{Change, EventMeta};
    use backtrack_domain::object::Link;
    use serde_json::json;

    use super::*;

    fn event() -> Event {
        let attributes = json!({"displayName": "Ada Lovelace", "accountEnabled": true});
        Event {
            meta: EventMeta {
                event_id: "0190f5c2-7d1e-7a3b-9c4d-5e6f70819203".into(),
                tenant: "t1".into(),
                kind: "user".into(),
                object_id: "87d349ed-44d7-43e1-9a83-5f2406dee5bd".into(),
                actor: "admin@t1".into(),
                time_ms: 1_795_315_500_123,
                source: "directory".into(),
                correlation_id: Some("req-1".into()),
                mutation_id: "m-1".into(),
            },
            change: Change::Created {
                attributes: attributes.as_object().cloned().unwrap_or_default(),
                links: vec![Link::new("manager", "5b0c7d2e-2a6f-4c1e-8d4b-1f2e3a4b5c6d")],
            },
        }
    }

    fn header<'a>(encoded: &'a EncodedEvent, name: &str) -> &'a str {
        encoded
            .headers
            .get(name)
            .map(HeaderValue::as_str)
            .unwrap_or_else(|| panic!("header {name} missing"))
    }

    #[test]
    fn encodes_subject_and_cloud_events_headers() {
        let encoded = encode(&event()).expect("encodes");
        assert_eq!(
            encoded.subject,
            "bt.ev.t1.user.87d349ed-44d7-43e1-9a83-5f2406dee5bd"
        );
        assert_eq!(header(&encoded, CE_SPECVERSION), "1.0");
        assert_eq!(
            header(&encoded, CE_ID),
            "0190f5c2-7d1e-7a3b-9c4d-5e6f70819203"
        );
        assert_eq!(
            header(&encoded, CE_TYPE),
            "io.backtrack.directory.created.v1"
        );
        assert_eq!(header(&encoded, CE_SOURCE), "/backtrack/t1/directory");
        assert_eq!(header(&encoded, CE_TIME), "2026-11-22T02:45:00.123Z");
        assert_eq!(
            header(&encoded, CE_SUBJECT),
            "user/87d349ed-44d7-43e1-9a83-5f2406dee5bd"
        );
        assert_eq!(header(&encoded, CE_DATASCHEMA), DATA_SCHEMA);
        assert_eq!(header(&encoded, CONTENT_TYPE), PROTOBUF_CONTENT_TYPE);
    }

    #[test]
    fn payload_round_trips() {
        let original = event();
        let encoded = encode(&original).expect("encodes");
        assert_eq!(decode(&encoded.payload).expect("decodes"), original);
        assert_eq!(
            decode_stored(&encoded.subject, &encoded.payload).expect("decodes"),
            original
        );
    }

    #[test]
    fn every_change_round_trips() {
        let base = event();
        let changes = vec![
            Change::Restored,
            Change::SoftDeleted {
                purge_after_ms: 1_797_907_500_000,
            },
            Change::LinksAdded(vec![Link::new("members", "a")]),
            Change::LinksRemoved(vec![Link::new("members", "b")]),
            Change::AttributesChanged(vec![backtrack_domain::event::AttributeChange {
                name: "displayName".into(),
                old: Some(json!("Ada")),
                new: None,
            }]),
            Change::HardDeleted {
                attributes: serde_json::Map::new(),
                links: vec![],
            },
        ];
        for change in changes {
            let original = Event {
                change,
                ..base.clone()
            };
            let encoded = encode(&original).expect("encodes");
            assert_eq!(decode(&encoded.payload).expect("decodes"), original);
        }
    }

    #[test]
    fn refuses_wildcards_and_separators_in_subject_tokens() {
        for bad in ["", "a.b", "*", ">", "a b", "t\n1"] {
            let mut e = event();
            e.meta.tenant = bad.into();
            assert!(
                matches!(
                    encode(&e),
                    Err(CodecError::InvalidSubjectToken {
                        field: "tenant",
                        ..
                    })
                ),
                "tenant {bad:?} accepted"
            );
        }
        let mut e = event();
        e.meta.object_id = "x.>".into();
        assert!(matches!(
            encode(&e),
            Err(CodecError::InvalidSubjectToken {
                field: "object id",
                ..
            })
        ));
    }

    #[test]
    fn refuses_control_characters_in_header_values() {
        let mut e = event();
        e.meta.event_id = "id\r\nNats-Msg-Id: forged".into();
        let err = encode(&e).expect_err("header injection refused");
        assert!(
            matches!(err, CodecError::InvalidHeaderValue { header: CE_ID, .. }),
            "{err}"
        );

        let mut encoded = encode(&event()).expect("encodes");
        assert!(encoded.insert_header("Nats-Msg-Id", "a\nb").is_err());
        assert!(matches!(
            encoded.insert_header("Nats-Msg-Id", ""),
            Err(CodecError::EmptyHeaderValue { .. })
        ));
        assert!(encoded.insert_header("Nats-Msg-Id", "m-1").is_ok());
    }

    #[test]
    fn garbage_payload_is_an_error() {
        assert!(matches!(
            decode(b"\xff\xff\xff"),
            Err(CodecError::Protobuf(_))
        ));
        // A valid protobuf message without a change is not an event.
        assert!(matches!(decode(b""), Err(CodecError::Conversion(_))));
    }

    #[test]
    fn stored_on_another_subject_is_an_error() {
        let encoded = encode(&event()).expect("encodes");
        let err = decode_stored("bt.ev.t2.user.x", &encoded.payload).expect_err("mismatch");
        assert!(matches!(err, CodecError::SubjectMismatch { .. }), "{err}");
    }

    #[test]
    fn wire_size_counts_headers_and_payload() {
        let mut encoded = encode(&event()).expect("encodes");
        encoded.headers = HeaderMap::new();
        encoded.insert_header("Nats-Msg-Id", "abc").expect("valid");
        // "NATS/1.0\r\n" + "Nats-Msg-Id: abc\r\n" + "\r\n"
        assert_eq!(encoded.wire_size(), 10 + 18 + 2 + encoded.payload.len());
    }
}
