//! `ListObjects` and `ListDeletedObjects`: one page of a tenant's objects, with links.

use backtrack_domain::validate;
use backtrack_platform::auth::Caller;
use backtrack_proto::convert::object_to_proto;
use backtrack_proto::v1;
use backtrack_store::ListQuery;
use tonic::{Response, Status};

use super::request::kind;
use super::{DirectoryApi, MAX_PAGE_SIZE};
use crate::writer::Directory;

pub(super) fn list(
    directory: &Directory,
    caller: &Caller,
    r: v1::ListObjectsRequest,
    deleted: bool,
    api: &DirectoryApi,
) -> Result<Response<v1::ListObjectsResponse>, Status> {
    api.tenant(caller, &r.tenant)?;
    let kind = if r.kind.is_empty() {
        None
    } else {
        let kind = kind(&r.kind)?;
        caller.require_kind(kind.as_str())?;
        Some(kind)
    };
    let after = if r.page_token.is_empty() {
        None
    } else {
        Some(validate::any_object_id(&r.page_token).map_err(|_| {
            Status::invalid_argument(
                "page_token is not one this server issued; start again without it",
            )
        })?)
    };
    let limit = match r.page_size {
        0 => 100,
        n => n.min(MAX_PAGE_SIZE),
    } as usize;
    let objects = directory
        .projection()
        .list(
            &r.tenant,
            &ListQuery {
                kind,
                deleted,
                after,
                limit,
            },
        )
        .map_err(crate::DirectoryError::from)?;
    // Pages carry links too, so a listing is the complete state of its objects.
    let objects = objects
        .into_iter()
        .map(|o| {
            directory
                .projection()
                .object_with_links(&r.tenant, &o.id)
                .map(|full| full.unwrap_or(o))
        })
        .collect::<Result<Vec<_>, _>>()
        .map_err(crate::DirectoryError::from)?;
    let next_page_token = if objects.len() == limit {
        objects.last().map(|o| o.id.clone()).unwrap_or_default()
    } else {
        String::new()
    };
    // A token limited to some kinds sees only those; the page token still moves past
    // the others, so a page may come back short (even empty) before the end.
    Ok(Response::new(v1::ListObjectsResponse {
        objects: objects
            .iter()
            .filter(|o| caller.can_access_kind(o.kind.as_str()))
            .map(object_to_proto)
            .collect(),
        next_page_token,
    }))
}
