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
