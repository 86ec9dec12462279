//! Request parsing shared by the `DirectoryService` handlers: mutation ids, kinds,
//! attribute documents and the ids of new objects.

use backtrack_domain::ObjectKind;
use backtrack_proto::convert::parse_object;
use backtrack_proto::v1;
use tonic::{Response, Status};
use uuid::Uuid;

pub(super) fn checked_mutation_id(id: String) -> Result<Option<String>, Status> {
    if id.is_empty() {
        return Ok(None);
    }
    let ok = id.len() <= 128
        && id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b':'));
    if ok {
        Ok(Some(id))
    } else {
        Err(Status::invalid_argument(
            "mutation_id must be up to 128 characters of A-Z, a-z, 0-9, '-', '_', '.', ':'",
        ))
    }
}

pub(super) fn kind(name: &str) -> Result<ObjectKind, Status> {
    name.parse::<ObjectKind>()
        .map_err(|e| Status::invalid_argument(e.to_string()))
}

pub(super) fn attributes(
    text: &str,
    field: &str,
) -> Result<serde_json::Map<String, serde_json::Value>, Status> {
    parse_object(text).map_err(|e| {
        Status::invalid_argument(format!(
            "{field} must be a JSON object such as {{\"displayName\": \"Sales\"}}: {e}"
        ))
    })
}

pub(super) fn found(
    object: Option<v1::DirectoryObject>,
    id: &str,
) -> Result<Response<v1::DirectoryObject>, Status> {
    object
        .map(Response::new)
        .ok_or_else(|| Status::not_found(format!("no object with id {id} in this tenant")))
}

/// The response header of every call that changes one object, saying what it did:
/// [`CHANGED`], [`UNCHANGED`] (the object already was as asked: nothing was stored) or
/// [`ALREADY_APPLIED`] (a retry of a mutation id the log holds: nothing was decided again,
/// the answer is the object now).
pub const OUTCOME_HEADER: &str = "backtrack-outcome";
/// The response header with the number of events the call stored.
pub const EVENTS_HEADER: &str = "backtrack-events";
pub const CHANGED: &str = "changed";
pub const UNCHANGED: &str = "unchanged";
pub const ALREADY_APPLIED: &str = "already-applied";

/// The object a change left, with [`OUTCOME_HEADER`] and [`EVENTS_HEADER`].
pub(super) fn changed(
    done: crate::writer::Executed,
    id: &str,
) -> Result<Response<v1::DirectoryObject>, Status> {
    let object = done
        .object
        .as_ref()
        .map(backtrack_proto::convert::object_to_proto);
    let mut response = found(object, id)?;
    let outcome = if done.already_applied {
        ALREADY_APPLIED
    } else if done.events == 0 {
        UNCHANGED
    } else {
        CHANGED
    };
    let metadata = response.metadata_mut();
    metadata.insert(
        OUTCOME_HEADER,
        tonic::metadata::MetadataValue::from_static(outcome),
    );
    metadata.insert(EVENTS_HEADER, done.events.into());
    Ok(response)
}

/// The id of a new object: given, the singleton's name, derived from the mutation id (so
/// a retried create names the same object), or fresh.
pub(super) fn new_object_id(
    kind: ObjectKind,
    given: Option<String>,
    tenant: &str,
    mutation: &str,
) -> String {
    if let Some(id) = given {
        return id;
    }
    if let Some(fixed) = kind.singleton_id() {
        return fixed.to_string();
    }
    if mutation.is_empty() {
        Uuid::new_v4().to_string()
    } else {
        Uuid::new_v5(
            &Uuid::NAMESPACE_OID,
            format!("{tenant}/{mutation}").as_bytes(),
        )
        .to_string()
    }
}

/// The response header naming the secrets a request carried and the directory dropped
/// (comma-separated paths such as `passwordProfile`), so a client can say so.
pub const SECRETS_DROPPED_HEADER: &str = "backtrack-secrets-dropped";

/// Adds [`SECRETS_DROPPED_HEADER`] to `response` when the request carried `secrets` (see
/// [`backtrack_domain::command::secrets_in`]).
pub(super) fn note_dropped_secrets<T>(response: &mut Response<T>, secrets: &[String]) {
    if secrets.is_empty() {
        return;
    }
    if let Ok(value) = secrets.join(",").parse() {
        response
            .metadata_mut()
            .insert(SECRETS_DROPPED_HEADER, value);
    }
}
