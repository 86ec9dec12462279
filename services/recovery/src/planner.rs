//! Turning "bring the scope back to sequence P" into plan entries: the objects the change
//! index names between P and now, each read at P (desired) and now (current) from the
//! time-travel store. Cost follows the number of changes, not the tenant's size.

use std::collections::BTreeMap;

use backtrack_differ::Scope;
use backtrack_domain::recovery::PlanEntry;
use backtrack_domain::ObjectKind;
use backtrack_store::{StoreError, TimeTravelStore};

/// The entries for `tenant`: objects in `scope` changed after `point` up to `now`.
/// `conflict_base`: the sequence whose object versions count as "not changed by someone
/// else" (a report's target); `None`: `now`.
pub fn entries(
    store: &TimeTravelStore,
    tenant: &str,
    point: u64,
    now: u64,
    conflict_base: Option<u64>,
    scope: &Scope,
) -> Result<Vec<PlanEntry>, StoreError> {
    let mut candidates: BTreeMap<String, ObjectKind> = BTreeMap::new();
    if now > point {
        for changed in store.changed_between(tenant, point, now)? {
            if !scope.kinds.is_empty() && !scope.kinds.contains(&changed.kind) {
                continue;
            }
            if !scope.ids.is_empty() && scope.ids.binary_search(&changed.id).is_err() {
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
    let parts: Vec<Result<Vec<PlanEntry>, StoreError>> = std::thread::scope(|s| {
        let handles: Vec<_> = candidates
            .chunks(chunk)
            .map(|part| {
                s.spawn(move || {
                    part.iter()
                        .map(|(id, kind)| {
                            let desired = store.object_at(tenant, id, point)?;
                            let current = store.object_at(tenant, id, now)?;
                            let planned_version = match conflict_base {
                                Some(seq) if seq != now => {
                                    store.object_at(tenant, id, seq)?.map_or(0, |o| o.version)
                                }
                                _ => current.as_ref().map_or(0, |o| o.version),
                            };
                            Ok(PlanEntry {
                                kind: *kind,
                                id: id.clone(),
                                current,
                                desired,
                                planned_version,
                            })
                        })
                        .collect::<Result<Vec<_>, StoreError>>()
                })
            })
            .collect();
        handles
            .into_iter()
            .map(|h| {
                h.join().unwrap_or_else(|_| {
                    Err(StoreError::Corrupt {
                        key: tenant.to_string(),
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
