//! Computing a report: only the objects the change index names between the two
//! sequences are read, so the cost follows the changes, not the tenant's size.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};

use backtrack_domain::diff::diff_objects;
use backtrack_domain::ObjectKind;
use backtrack_store::TimeTravelStore;
use serde_json::Value;

use crate::error::DifferError;
use crate::report::item_json;

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
/// id, each as a report item. Stops with `Precondition` when `progress.cancelled` is set.
pub fn compute(
    store: &TimeTravelStore,
    tenant: &str,
    base: u64,
    target: u64,
    scope: &Scope,
    progress: &Progress,
) -> Result<Vec<Value>, DifferError> {
    let (low, high) = (base.min(target), base.max(target));
    let mut candidates: BTreeMap<(ObjectKind, String), ()> = BTreeMap::new();
    for changed in store.changed_between(tenant, low, high)? {
        if !scope.kinds.is_empty() && !scope.kinds.contains(&changed.kind) {
            continue;
        }
        if !scope.ids.is_empty() && scope.ids.binary_search(&changed.id).is_err() {
            continue;
        }
        candidates.insert((changed.kind, changed.id), ());
    }
    progress
        .total
        .store(candidates.len() as u64, Ordering::Relaxed);
    let mut items = Vec::new();
    for (i, (_, id)) in candidates.keys().enumerate() {
        if i % 256 == 0 && progress.cancelled.load(Ordering::Relaxed) {
            return Err(DifferError::Precondition("the report was cancelled".into()));
        }
        let before = store.object_at(tenant, id, base)?;
        let after = store.object_at(tenant, id, target)?;
        if let Some(diff) = diff_objects(before.as_ref(), after.as_ref()) {
            items.push(item_json(&diff));
            progress.changed.fetch_add(1, Ordering::Relaxed);
        }
        progress.examined.fetch_add(1, Ordering::Relaxed);
    }
    Ok(items)
}
