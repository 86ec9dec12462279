//! Computing a report: only the objects the change index names between the two
//! sequences are read, so the cost follows the changes, not the tenant's size.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};

use backtrack_domain::diff::diff_objects;
use backtrack_domain::ObjectKind;
use backtrack_store::TimeTravelStore;

use crate::error::DifferError;
use crate::report::Item;

/// Which objects a report covers. Empty lists mean "all".
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Scope {
    pub kinds: Vec<ObjectKind>,
    /// Lower-case ids.
    pub ids: Vec<String>,
}

/// Progress a running computation publishes.
#[derive(Debug, Default)]
pub struct Progress {
    pub examined: AtomicU64,
    pub total: AtomicU64,
    pub changed: AtomicU64,
    pub cancelled: AtomicBool,
}

/// The changed objects between `base` and `target` within `scope`, ordered by kind and
/// id, each as a report item (written as JSON by the worker that found it). Stops with
/// `Precondition` when `progress.cancelled` is set.
pub fn compute(
    store: &TimeTravelStore,
    tenant: &str,
    base: u64,
    target: u64,
    scope: &Scope,
    progress: &Progress,
) -> Result<Vec<Item>, DifferError> {
    let (low, high) = (base.min(target), base.max(target));
    let mut candidates: Vec<String> = Vec::new();
    for changed in store.changed_between(tenant, low, high)? {
        if !scope.kinds.is_empty() && !scope.kinds.contains(&changed.kind) {
            continue;
        }
        if !scope.ids.is_empty() && scope.ids.binary_search(&changed.id).is_err() {
            continue;
        }
        candidates.push(changed.id);
    }
    // In id order, the order of the store's keys: each worker walks its share forward.
    candidates.sort_unstable();
    candidates.dedup();
    progress
        .total
        .store(candidates.len() as u64, Ordering::Relaxed);
    // Lookups are independent: split them over the cores.
    let workers = std::thread::available_parallelism()
        .map_or(1, |n| n.get())
        .clamp(1, 8);
    let chunk = candidates.len().div_ceil(workers).max(1);
    let parts: Vec<Result<Vec<Item>, DifferError>> = std::thread::scope(|scope| {
        let handles: Vec<_> = candidates
            .chunks(chunk)
            .map(|ids| scope.spawn(move || diff_some(store, tenant, base, target, ids, progress)))
            .collect();
        handles
            .into_iter()
            .map(|h| {
                h.join()
                    .unwrap_or_else(|_| Err(DifferError::Internal("a diff worker panicked".into())))
            })
            .collect()
    });
    let mut items = Vec::new();
    for part in parts {
        items.extend(part?);
    }
    items.sort_unstable_by(|a, b| (a.kind, &a.object_id).cmp(&(b.kind, &b.object_id)));
    Ok(items)
}

fn diff_some(
    store: &TimeTravelStore,
    tenant: &str,
    base: u64,
    target: u64,
    ids: &[String],
    progress: &Progress,
) -> Result<Vec<Item>, DifferError> {
    let mut items = Vec::new();
    let mut reader = store.two_point_reader(tenant);
    for (i, id) in ids.iter().enumerate() {
        if i % 256 == 0 && progress.cancelled.load(Ordering::Relaxed) {
            return Err(DifferError::Precondition("the report was cancelled".into()));
        }
        let (at_low, at_high) = reader.object_at_both(id, base, target)?;
        let (before, after) = if base <= target {
            (at_low, at_high)
        } else {
            (at_high, at_low)
        };
        if let Some(diff) = diff_objects(before.as_ref(), after.as_ref()) {
            items.push(Item::new(&diff));
            progress.changed.fetch_add(1, Ordering::Relaxed);
        }
        progress.examined.fetch_add(1, Ordering::Relaxed);
    }
    Ok(items)
}
