//! Turning "bring the scope back to sequence P" into plan entries: the objects the change
//! index names between P and now, each read at P (desired) and now (current) from the
//! time-travel store. Cost follows the number of changes, not the tenant's size.
//!
//! With authors (`--changed-by`, or the undo of such a job), each object's events after P
//! say what the authors changed in it, and the desired state is the current one with only
//! that set back ([`backtrack_domain::authorship`]).

use std::collections::{BTreeMap, BTreeSet};

use backtrack_differ::compute::{without_authors, Window, WithoutAuthors};
use backtrack_differ::Scope;
use backtrack_domain::authorship::{Authors, Facet, Touched};
use backtrack_domain::recovery::PlanEntry;
use backtrack_domain::ObjectKind;
use backtrack_store::{StoreError, TimeTravelStore};

/// One object to plan for, and the facets of it others changed after the authors (empty
/// without authors).
pub struct Entry {
    pub entry: PlanEntry,
    pub later: BTreeMap<Facet, BTreeSet<String>>,
}

/// What the planner is asked for.
pub struct Request<'a> {
    pub tenant: &'a str,
    pub point: u64,
    pub now: u64,
    /// The sequence whose object versions count as "not changed by someone else" (a
    /// report's target); `None`: `now`.
    pub conflict_base: Option<u64>,
    pub scope: &'a Scope,
    /// Whose changes to set back (empty: all).
    pub authors: &'a Authors,
    /// With authors: leave the facets others changed after them as they are.
    pub keep_later: bool,
}

/// The entries for the request: objects in scope changed after the point up to now.
pub fn entries(store: &TimeTravelStore, r: &Request<'_>) -> Result<Vec<Entry>, StoreError> {
    let mut candidates: BTreeMap<String, ObjectKind> = BTreeMap::new();
    if r.now > r.point {
        for changed in store.changed_between(r.tenant, r.point, r.now)? {
            if !r.scope.kinds.is_empty() && !r.scope.kinds.contains(&changed.kind) {
                continue;
            }
            if !r.scope.ids.is_empty() && r.scope.ids.binary_search(&changed.id).is_err() {
                continue;
            }
            candidates.insert(changed.id, changed.kind);
        }
    }
    let candidates: Vec<(String, ObjectKind)> = candidates.into_iter().collect();
    let workers = std::thread::available_parallelism()
        .map_or(1, |n| n.get())
        .clamp(1, 8);
    let chunk = candidates.len().div_ceil(workers).max(1);
    let parts: Vec<Result<Vec<Entry>, StoreError>> = std::thread::scope(|s| {
        let handles: Vec<_> = candidates
            .chunks(chunk)
            .map(|part| {
                s.spawn(move || {
                    let mut out = Vec::with_capacity(part.len());
                    for (id, kind) in part {
                        let entry = if r.authors.is_empty() {
                            Some(whole(store, r, id, *kind)?)
                        } else {
                            authored(store, r, id, *kind)?
                        };
                        out.extend(entry);
                    }
                    Ok(out)
                })
            })
            .collect();
        handles
            .into_iter()
            .map(|h| {
                h.join().unwrap_or_else(|_| {
                    Err(StoreError::Corrupt {
                        key: r.tenant.to_string(),
                        reason: "a planning worker panicked".into(),
                    })
                })
            })
            .collect()
    });
    let mut out = Vec::with_capacity(candidates.len());
    for part in parts {
        out.extend(part?);
    }
    Ok(out)
}

/// The whole object back to the point.
fn whole(
    store: &TimeTravelStore,
    r: &Request<'_>,
    id: &str,
    kind: ObjectKind,
) -> Result<Entry, StoreError> {
    let desired = store.object_at(r.tenant, id, r.point)?;
    let current = store.object_at(r.tenant, id, r.now)?;
    let planned_version = match r.conflict_base {
        Some(seq) if seq != r.now => store.object_at(r.tenant, id, seq)?.map_or(0, |o| o.version),
        _ => current.as_ref().map_or(0, |o| o.version),
    };
    Ok(Entry {
        entry: PlanEntry {
            kind,
            id: id.to_string(),
            current,
            desired,
            planned_version,
        },
        later: BTreeMap::new(),
    })
}

/// Only what the authors changed after the point set back (`None`: they changed nothing
/// in it).
fn authored(
    store: &TimeTravelStore,
    r: &Request<'_>,
    id: &str,
    kind: ObjectKind,
) -> Result<Option<Entry>, StoreError> {
    let window = Window {
        tenant: r.tenant,
        base: r.point,
        target: r.now,
    };
    let keep = |touched: &Touched| -> BTreeSet<Facet> {
        if r.keep_later {
            touched.later.keys().cloned().collect()
        } else {
            BTreeSet::new()
        }
    };
    let Some(WithoutAuthors {
        touched,
        current,
        without: desired,
    }) = without_authors(store, &window, id, r.authors, keep)?
    else {
        return Ok(None);
    };
    let planned_version = current.as_ref().map_or(0, |o| o.version);
    Ok(Some(Entry {
        entry: PlanEntry {
            kind,
            id: id.to_string(),
            current,
            desired,
            planned_version,
        },
        later: touched.later,
    }))
}
