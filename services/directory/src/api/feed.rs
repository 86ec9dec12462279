//! `WatchEvents`: the change feed of one tenant, from a start, narrowed by kinds, objects
//! and actors, following new events or ending at those stored when it was called.

use backtrack_domain::event::TENANT_KIND;
use backtrack_domain::{DomainError, ObjectKind};
use backtrack_platform::auth::{caller, Caller};
use backtrack_proto::convert::event_to_proto;
use backtrack_proto::v1;
use futures::StreamExt;
use tonic::{Request, Response, Status};

use super::{DirectoryApi, EventStream};

pub(super) async fn watch(
    api: &DirectoryApi,
    request: Request<v1::WatchEventsRequest>,
) -> Result<Response<EventStream>, Status> {
    let caller = caller(&request)?;
    let r = request.into_inner();
    api.tenant(&caller, &r.tenant)?;
    let log = api.directory.log();
    let given = [r.from_start, r.from_sequence > 0, r.after_time_ms != 0];
    if given.iter().filter(|g| **g).count() > 1 {
        return Err(Status::invalid_argument(
            "give one start at most: from_start, from_sequence or after_time_ms",
        ));
    }
    let from = if r.from_start {
        1
    } else if r.from_sequence > 0 {
        r.from_sequence
    } else if r.after_time_ms != 0 {
        log.first_sequence_after(r.after_time_ms)
            .await
            .map_err(crate::DirectoryError::from)?
    } else {
        log.state()
            .await
            .map_err(crate::DirectoryError::from)?
            .last_sequence
            + 1
    };
    let (kinds, ids) = feed_filter(&caller, &r.kinds, &r.object_ids)?;
    // One kind or one object is a subject filter: the stream sends only those.
    let filter = match (kinds.as_slice(), ids.as_slice()) {
        ([kind], [id]) => format!("bt.ev.{}.{kind}.{id}", r.tenant),
        ([kind], []) => format!("bt.ev.{}.{kind}.>", r.tenant),
        ([], [id]) => format!("bt.ev.{}.*.{id}", r.tenant),
        _ => format!("bt.ev.{}.>", r.tenant),
    };
    let stream = if r.until_now {
        log.read_until_now(from, &filter)
            .await
            .map(StreamExt::boxed)
    } else {
        log.read(from, &filter).await.map(StreamExt::boxed)
    }
    .map_err(crate::DirectoryError::from)?;
    // A token limited to some kinds sees only their events (and the tenant's own).
    let reader = caller.clone();
    let actors = r.actors;
    let visible = move |meta: &backtrack_domain::EventMeta| {
        (meta.kind == TENANT_KIND || reader.can_access_kind(&meta.kind))
            && (kinds.is_empty() || kinds.contains(&meta.kind))
            && (ids.is_empty() || ids.contains(&meta.object_id))
            && (actors.is_empty() || actors.contains(&meta.actor))
    };
    let mapped = stream.filter_map(move |item| {
        let envelope = match item {
            Ok(stored) if !visible(&stored.event.meta) => None,
            Ok(stored) => Some(Ok(v1::EventEnvelope {
                sequence: stored.sequence,
                subject: stored.subject,
                event: Some(event_to_proto(&stored.event)),
            })),
            Err(e) => Some(Err(Status::from(crate::DirectoryError::from(e)))),
        };
        std::future::ready(envelope)
    });
    Ok(Response::new(Box::pin(mapped)))
}

/// The change feed's kinds and object ids, checked: known kinds the caller may see, ids
/// that can be objects' ids (UUIDs lower-cased, as the log keeps them).
fn feed_filter(
    caller: &Caller,
    kinds: &[String],
    ids: &[String],
) -> Result<(Vec<String>, Vec<String>), Status> {
    let mut checked_kinds = Vec::with_capacity(kinds.len());
    for kind in kinds {
        let kind: ObjectKind = kind
            .parse()
            .map_err(|e: DomainError| Status::invalid_argument(e.to_string()))?;
        caller.require_kind(kind.as_str())?;
        checked_kinds.push(kind.as_str().to_string());
    }
    let mut checked_ids = Vec::with_capacity(ids.len());
    for id in ids {
        let plausible = !id.is_empty()
            && id.len() <= 128
            && id
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_');
        if !plausible {
            return Err(Status::invalid_argument(format!(
                "invalid object id '{}': an id is a UUID or a name of letters, digits, '-' and '_'",
                backtrack_domain::validate::printable(id)
            )));
        }
        checked_ids.push(if backtrack_domain::canonical::looks_like_guid(id) {
            id.to_ascii_lowercase()
        } else {
            id.clone()
        });
    }
    checked_kinds.sort();
    checked_kinds.dedup();
    checked_ids.sort();
    checked_ids.dedup();
    Ok((checked_kinds, checked_ids))
}
