//! Computing a report: only the objects the change index names between the two
//! sequences are read, so the cost follows the changes, not the tenant's size.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};

use backtrack_domain::authorship::{self, Authors, Facet, Touched};
use backtrack_domain::diff::{diff_objects, ObjectDiff};
use backtrack_domain::object::DirectoryObject;
use backtrack_domain::ObjectKind;
use backtrack_store::{StoreError, TimeTravelStore};

use crate::error::DifferError;
use crate::report::Item;

/// Which objects a report covers. Empty lists mean "all".
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Scope {
    pub kinds: Vec<ObjectKind>,
    /// Lower-case ids.
    pub ids: Vec<String>,
    /// Only these actors' changes (sorted; empty: everyone's).
    pub changed_by: Vec<String>,
}

/// Progress a running computation publishes.
#[derive(Debug, Default)]
pub struct Progress {
    pub examined: AtomicU64,
    pub total: AtomicU64,
    pub changed: AtomicU64,
    pub cancelled: AtomicBool,
}

/// Candidates per piece: workers take the pieces in order, and each finished piece is
/// handed on, in order, while later ones are computed.
const PIECE: usize = 4096;

/// The changed objects between `base` and `target` within `scope`, each as a report item
/// (written as JSON by the worker that found it), handed to `emit` piece by piece in kind
/// and id order as soon as each piece and the ones before it are done. An error from
/// `emit` stops the work and is returned; so does `Precondition` when
/// `progress.cancelled` is set.
pub fn compute_each(
    store: &TimeTravelStore,
    tenant: &str,
    base: u64,
    target: u64,
    scope: &Scope,
    progress: &Progress,
    mut emit: impl FnMut(Vec<Item>) -> Result<(), DifferError>,
) -> Result<(), DifferError> {
    if !scope.changed_by.is_empty() && base > target {
        return Err(DifferError::Invalid(
            "a report of some actors' changes (changed_by) needs its base before its target".into(),
        ));
    }
    let authors = Authors::actors(scope.changed_by.iter().cloned());
    let (low, high) = (base.min(target), base.max(target));
    let mut candidates: Vec<(ObjectKind, String)> = Vec::new();
    for changed in store.changed_between(tenant, low, high)? {
        if !scope.kinds.is_empty() && !scope.kinds.contains(&changed.kind) {
            continue;
        }
        if !scope.ids.is_empty() && scope.ids.binary_search(&changed.id).is_err() {
            continue;
        }
        candidates.push((changed.kind, changed.id));
    }
    // In the items' order; within a kind, the order of the store's keys, so a worker's
    // reader walks each piece forward.
    candidates.sort_unstable();
    candidates.dedup_by(|a, b| a.1 == b.1);
    progress
        .total
        .store(candidates.len() as u64, Ordering::Relaxed);
    let pieces: Vec<&[(ObjectKind, String)]> = candidates.chunks(PIECE).collect();
    // Lookups are independent: split them over the cores.
    let workers = std::thread::available_parallelism()
        .map_or(1, |n| n.get())
        .clamp(1, 8)
        .min(pieces.len().max(1));
    let next = AtomicUsize::new(0);
    let stop = AtomicBool::new(false);
    std::thread::scope(|scope| {
        let (done, finished) = std::sync::mpsc::channel();
        let handles: Vec<_> = (0..workers)
            .map(|_| {
                let done = done.clone();
                let (pieces, next, stop, authors) = (&pieces, &next, &stop, &authors);
                scope.spawn(move || {
                    let mut reader = store.two_point_reader(tenant);
                    while !stop.load(Ordering::Relaxed) {
                        let index = next.fetch_add(1, Ordering::Relaxed);
                        let Some(piece) = pieces.get(index) else {
                            return;
                        };
                        let items = if authors.is_empty() {
                            diff_some(piece, progress, |id| Ok(reader.diff(id, base, target)?))
                        } else {
                            let window = Window {
                                tenant,
                                base,
                                target,
                            };
                            diff_some(piece, progress, |id| {
                                diff_authored(store, &window, authors, id)
                            })
                        };
                        if done.send((index, items)).is_err() {
                            return;
                        }
                    }
                })
            })
            .collect();
        drop(done);
        // Pieces finish in any order; they are handed on in theirs.
        let mut waiting = BTreeMap::new();
        let mut due = 0;
        let mut outcome = Ok(());
        'receive: for (index, items) in finished.iter() {
            waiting.insert(index, items);
            while let Some(items) = waiting.remove(&due) {
                due += 1;
                if let Err(e) = items.and_then(&mut emit) {
                    outcome = Err(e);
                    break 'receive;
                }
            }
        }
        stop.store(true, Ordering::Relaxed);
        drop(finished);
        let panicked = handles.into_iter().any(|h| h.join().is_err());
        outcome?;
        if panicked || due != pieces.len() {
            return Err(DifferError::Internal("a diff worker panicked".into()));
        }
        Ok(())
    })
}

/// The items of `candidates`: `diff` says how each changed (`None`: it did not).
fn diff_some(
    candidates: &[(ObjectKind, String)],
    progress: &Progress,
    mut diff: impl FnMut(&str) -> Result<Option<ObjectDiff>, DifferError>,
) -> Result<Vec<Item>, DifferError> {
    let mut items = Vec::new();
    for (i, (_, id)) in candidates.iter().enumerate() {
        if i % 256 == 0 && progress.cancelled.load(Ordering::Relaxed) {
            return Err(DifferError::Precondition("the report was cancelled".into()));
        }
        if let Some(diff) = diff(id)? {
            items.push(Item::new(&diff));
            progress.changed.fetch_add(1, Ordering::Relaxed);
        }
        progress.examined.fetch_add(1, Ordering::Relaxed);
    }
    Ok(items)
}

/// A tenant and two sequences: a report's, or a recovery's point and now.
pub struct Window<'a> {
    pub tenant: &'a str,
    pub base: u64,
    pub target: u64,
}

/// One object at the target, and with some authors' changes after the base taken out.
pub struct WithoutAuthors {
    /// What they changed in it.
    pub touched: Touched,
    pub current: Option<DirectoryObject>,
    /// `current` with their changes set back, except the facets `keep` chose.
    pub without: Option<DirectoryObject>,
}

/// Object `id` as the window's target holds it and with what `authors` changed in the
/// window taken out (each facet back to what they found), reading its versions from
/// `store`; `keep` picks, from what they touched, facets to leave as they are. `None`:
/// they changed nothing in it.
pub fn without_authors(
    store: &TimeTravelStore,
    w: &Window<'_>,
    id: &str,
    authors: &Authors,
    keep: impl FnOnce(&Touched) -> BTreeSet<Facet>,
) -> Result<Option<WithoutAuthors>, StoreError> {
    let history = store.history_between(w.tenant, id, w.base, w.target)?;
    let events = history.iter().map(|h| (h.sequence, &h.event));
    let touched = authorship::touched(events, authors);
    if touched.is_empty() {
        return Ok(None);
    }
    let current = store.object_at(w.tenant, id, w.target)?;
    let before = match touched.lifecycle {
        Some(sequence) => store.object_at(w.tenant, id, sequence - 1)?,
        None => None,
    };
    let keep = keep(&touched);
    let without = authorship::narrow(current.as_ref(), before.as_ref(), &touched, &keep);
    Ok(Some(WithoutAuthors {
        touched,
        current,
        without,
    }))
}

/// How object `id` changed by `authors` alone: at the window's target against itself
/// with their changes taken out.
fn diff_authored(
    store: &TimeTravelStore,
    w: &Window<'_>,
    authors: &Authors,
    id: &str,
) -> Result<Option<ObjectDiff>, DifferError> {
    let Some(a) = without_authors(store, w, id, authors, |_| BTreeSet::new())? else {
        return Ok(None);
    };
    Ok(diff_objects(a.without.as_ref(), a.current.as_ref()))
}
