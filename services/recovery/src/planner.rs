//! Turning "bring the scope back to sequence P" into plan entries: the objects the change
//! index names between P and now, each read at P (desired) and now (current) from the
//! time-travel store. Cost follows the number of changes, not the tenant's size.
//!
//! With authors (`--changed-by`, or the undo of such a job), each object's events after P
//! say what the authors changed in it, and the desired state is the current one with only
//! that set back ([`backtrack_domain::authorship`]).

use std::collections::{BTreeMap, BTreeSet};

use backtrack_differ::compute::{compute_each, without_authors, Window, WithoutAuthors};
use backtrack_differ::Scope;
use backtrack_differ::{DifferError, Progress};
use backtrack_domain::authorship::{Authors, Facet, Touched};
use backtrack_domain::diff::diff_objects;
use backtrack_domain::recovery::{Plan, PlanEntry, PlanOptions, Skipped};
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

/// The ordered plan for the request: its entries planned, with the objects changed after
/// its conflict base and, with authors, the conflicts (also among the plan's notes).
pub fn plan(
    store: &TimeTravelStore,
    r: &Request<'_>,
    ca_report_only: bool,
) -> Result<Planned, StoreError> {
    let entries = entries(store, r)?;
    // The version the plan is based on is the one at the conflict base (a report's
    // target): an object whose version now differs was changed after it. With
    // authors, an object is marked when someone else changed again a thing the
    // authors changed, and the plan sets it back.
    let mut changed_after_base = BTreeSet::new();
    let mut notes = Vec::new();
    for e in &entries {
        let entry = &e.entry;
        if entry.current.as_ref().map_or(0, |o| o.version) != entry.planned_version {
            changed_after_base.insert(entry.id.clone());
        }
        if let Some(note) = later_note(e, r.authors, r.keep_later) {
            if !r.keep_later {
                changed_after_base.insert(entry.id.clone());
            }
            notes.push(note);
        }
    }
    let mut plan = backtrack_domain::recovery::plan(
        entries.into_iter().map(|e| e.entry).collect(),
        &PlanOptions { ca_report_only },
    );
    plan.notes.extend(notes.iter().cloned());
    Ok(Planned {
        plan,
        changed_after_base,
        conflicts: notes,
    })
}

/// What still differs after a job: the objects of the request's scope not as the job
/// wanted them — with authors, those whose facets of theirs are not back; else every
/// object that differs from the point. Counted in full; the first `most` ids kept.
pub fn residual(
    store: &TimeTravelStore,
    r: &Request<'_>,
    most: usize,
) -> Result<(u64, Vec<String>), DifferError> {
    let (mut residual, mut ids) = (0u64, Vec::new());
    if !r.authors.is_empty() {
        for e in entries(store, r)? {
            let e = e.entry;
            if diff_objects(e.desired.as_ref(), e.current.as_ref()).is_some() {
                residual += 1;
                if ids.len() < most {
                    ids.push(e.id);
                }
            }
        }
        return Ok((residual, ids));
    }
    compute_each(
        store,
        r.tenant,
        r.point,
        r.now,
        r.scope,
        &Progress::default(),
        |piece| {
            residual += piece.len() as u64;
            let room = most.saturating_sub(ids.len());
            ids.extend(piece.into_iter().take(room).map(|i| i.object_id));
            Ok(())
        },
    )?;
    Ok((residual, ids))
}

/// A plan, and the objects of it changed after its conflict base.
pub struct Planned {
    pub plan: Plan,
    pub changed_after_base: BTreeSet<String>,
    /// With authors: the objects where someone else changed again what the plan sets
    /// back, and what (also among the plan's notes).
    pub conflicts: Vec<Skipped>,
}

/// What the plan says about the things of `entry` someone else changed again after the
/// authors: set back over their change (`keep_later`: left as they are), when the plan's
/// value differs from theirs.
fn later_note(entry: &Entry, authors: &Authors, keep_later: bool) -> Option<Skipped> {
    let e = &entry.entry;
    let (current, desired) = (e.current.as_ref(), e.desired.as_ref());
    let facets: Vec<String> = entry
        .later
        .iter()
        .filter(|(facet, _)| keep_later || facet.differs(current, desired))
        .map(|(facet, who)| {
            let who: Vec<&str> = who.iter().map(String::as_str).collect();
            format!("{facet} (by {})", who.join(", "))
        })
        .collect();
    if facets.is_empty() {
        return None;
    }
    let what = if keep_later {
        "left as they are (--on-conflict skip)"
    } else {
        "set back over those changes (--on-conflict skip leaves them)"
    };
    Some(Skipped {
        kind: e.kind,
        id: e.id.clone(),
        display_name: current
            .or(desired)
            .and_then(|o| o.display_name())
            .map(str::to_string),
        reason: format!(
            "changed again after {}: {}; {what}",
            authors.describe(),
            facets.join(", ")
        ),
    })
}
