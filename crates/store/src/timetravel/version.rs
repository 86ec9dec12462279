//! The value under a version key (`V/<t>/<id>\0<!seq>`): the event that made the version,
//! and the version itself unless that event alone rebuilds it.
//!
//! | bytes | content |
//! |---|---|
//! | 1 | form: [`CREATED`], [`STORED`] or [`ABSENT`] |
//! | 8 | stream time of the event (i64 BE) |
//! | 4 | length of the event (u32 BE) |
//! | n | the event (protobuf), as the log stores it |
//! | rest | the object (JSON, without links) when the form is [`STORED`]; else nothing |
//!
//! An object's versions are its history: one key per event, holding the event. A creation
//! (the most common event by far: an import, a seeded tenant) is not stored twice: the
//! object is the creation applied to nothing, rebuilt when read.

use backtrack_domain::diff::ObjectText;
use backtrack_domain::event::{Change, Event, EVENT_SCHEMA_VERSION};
use backtrack_domain::object::DirectoryObject;
use backtrack_domain::state::apply_without_links;
use backtrack_domain::ObjectKind;
use prost::Message;

use super::corrupt;
use crate::StoreError;

/// The version is the event (a creation) applied to nothing.
pub(crate) const CREATED: u8 = b'c';
/// The version follows the event, as JSON.
pub(crate) const STORED: u8 = b's';
/// No object from this sequence on (hard-deleted).
pub(crate) const ABSENT: u8 = b'd';

const HEADER: usize = 1 + 8 + 4;

/// A version value, encoded. `object` is the version's JSON, written only for [`STORED`].
pub(crate) fn encode(form: u8, published_ms: i64, event: &[u8], object: Option<&[u8]>) -> Vec<u8> {
    let object = object.filter(|_| form == STORED).unwrap_or_default();
    let mut out = Vec::with_capacity(HEADER + event.len() + object.len());
    out.push(form);
    out.extend_from_slice(&published_ms.to_be_bytes());
    // Events are far below 4 GiB (the log's message limit is megabytes).
    out.extend_from_slice(&u32::try_from(event.len()).unwrap_or(u32::MAX).to_be_bytes());
    out.extend_from_slice(event);
    out.extend_from_slice(object);
    out
}

/// A version value, split into its parts.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Parts<'v> {
    pub(crate) form: u8,
    pub(crate) published_ms: i64,
    pub(crate) event: &'v [u8],
    pub(crate) object: &'v [u8],
}

pub(crate) fn parts<'v>(key: &[u8], value: &'v [u8]) -> Result<Parts<'v>, StoreError> {
    let bad = || corrupt(key, "bad version value");
    let (head, rest) = value.split_at_checked(HEADER).ok_or_else(bad)?;
    let form = head[0];
    if ![CREATED, STORED, ABSENT].contains(&form) {
        return Err(bad());
    }
    let published_ms = i64::from_be_bytes(head[1..9].try_into().map_err(|_| bad())?);
    let length = u32::from_be_bytes(head[9..13].try_into().map_err(|_| bad())?);
    let (event, object) = rest
        .split_at_checked(usize::try_from(length).map_err(|_| bad())?)
        .ok_or_else(bad)?;
    if form != STORED && !object.is_empty() {
        return Err(bad());
    }
    Ok(Parts {
        form,
        published_ms,
        event,
        object,
    })
}

/// The event a version value holds.
pub(crate) fn event(key: &[u8], parts: &Parts<'_>) -> Result<Event, StoreError> {
    let proto = backtrack_proto::v1::DirectoryEvent::decode(parts.event)
        .map_err(|e| corrupt(key, &e.to_string()))?;
    backtrack_proto::convert::event_from_proto(proto).map_err(|e| corrupt(key, &e.to_string()))
}

/// The object a version value stands for at `sequence` (its key's), `None` when absent.
pub(crate) fn object(
    key: &[u8],
    value: &[u8],
    sequence: u64,
) -> Result<Option<DirectoryObject>, StoreError> {
    let parts = parts(key, value)?;
    match parts.form {
        ABSENT => Ok(None),
        STORED => serde_json::from_slice(parts.object)
            .map(Some)
            .map_err(|e| corrupt(key, &e.to_string())),
        _ => {
            let event = event(key, &parts)?;
            let kind = event
                .meta
                .kind
                .parse::<ObjectKind>()
                .map_err(|_| corrupt(key, "the creation names an unknown kind"))?;
            if !matches!(event.change, Change::Created { .. }) {
                return Err(corrupt(key, "a created version that holds no creation"));
            }
            Ok(apply_without_links(
                None,
                kind,
                &event.meta.object_id,
                &event.change,
                event.meta.time_ms,
                sequence,
            ))
        }
    }
}

/// A version as its value holds it, for comparing versions without decoding what did not
/// change ([`ObjectText`]).
// Lives on the stack while one object is compared; boxing the event would cost an
// allocation per version read.
#[allow(clippy::large_enum_variant)]
pub(crate) enum Text<'v> {
    /// No object (hard-deleted).
    Absent,
    /// The object's JSON.
    Stored(&'v [u8]),
    /// The creation that made the object.
    Created(backtrack_proto::v1::DirectoryEvent),
}

pub(crate) fn text<'v>(key: &[u8], value: &'v [u8]) -> Result<Text<'v>, StoreError> {
    let parts = parts(key, value)?;
    Ok(match parts.form {
        ABSENT => Text::Absent,
        STORED => Text::Stored(parts.object),
        _ => {
            let proto = backtrack_proto::v1::DirectoryEvent::decode(parts.event)
                .map_err(|e| corrupt(key, &e.to_string()))?;
            if proto.schema_version > EVENT_SCHEMA_VERSION {
                return Err(corrupt(key, "the creation has a newer event schema"));
            }
            Text::Created(proto)
        }
    })
}

impl Text<'_> {
    /// The object (`None` when absent), without links; `key` names the version in errors.
    pub(crate) fn object(&self, key: &[u8]) -> Result<Option<ObjectText<'_>>, StoreError> {
        use backtrack_proto::v1::directory_event::Change as P;
        let bad = |e: serde_json::Error| corrupt(key, &e.to_string());
        match self {
            Text::Absent => Ok(None),
            Text::Stored(json) => ObjectText::from_json(json).map(Some).map_err(bad),
            Text::Created(event) => {
                let kind = event
                    .kind
                    .parse::<ObjectKind>()
                    .map_err(|_| corrupt(key, "the creation names an unknown kind"))?;
                let Some(P::Created(created)) = &event.change else {
                    return Err(corrupt(key, "a created version that holds no creation"));
                };
                ObjectText::created(kind, &event.object_id, &created.attributes_json)
                    .map(Some)
                    .map_err(bad)
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_value_splits_back_into_what_was_encoded() {
        let value = encode(STORED, -5, b"event", Some(b"{}"));
        let p = parts(b"k", &value).unwrap();
        assert_eq!(
            (p.form, p.published_ms, p.event, p.object),
            (STORED, -5, &b"event"[..], &b"{}"[..])
        );
        // Only a stored version keeps the object's bytes.
        let value = encode(CREATED, 7, b"event", Some(b"{}"));
        assert_eq!(parts(b"k", &value).unwrap().object, b"");
    }

    #[test]
    fn a_malformed_value_is_reported_as_corrupt_with_its_key() {
        let good = encode(ABSENT, 1, b"event", None);
        let mut unknown_form = good.clone();
        unknown_form[0] = b'x';
        let mut trailing = good.clone();
        trailing.push(b'!');
        for bad in [
            &good[..5],
            &good[..good.len() - 1],
            &unknown_form,
            &trailing,
        ] {
            let error = parts(b"V/t/x", bad).unwrap_err();
            assert!(
                matches!(&error, StoreError::Corrupt { key, .. } if key == "V/t/x"),
                "{error}"
            );
        }
    }
}
