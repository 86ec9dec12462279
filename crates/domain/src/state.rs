//! Folding events into state. `apply` never decides: every event it sees was already
//! accepted by `decide` and acknowledged by the log.

use std::collections::{BTreeMap, HashMap};

use crate::command::DirectoryView;
use crate::event::{Change, Event};
use crate::kind::ObjectKind;
use crate::object::{group_links, DirectoryObject, Link};

/// Applies a change to one object slot, except its links: for stores that keep links in
/// keys of their own, and the first half of the in-memory fold ([`TenantState::apply`]
/// adds the links with [`fold_links`]). A creation makes an object without links, a
/// membership change only moves the version and update time, and nothing of the change is
/// copied but a creation's attributes. Returns the object's new value (`None` after a hard
/// delete).
pub fn apply_without_links(
    slot: Option<DirectoryObject>,
    kind: ObjectKind,
    object_id: &str,
    change: &Change,
    time_ms: i64,
    sequence: u64,
) -> Option<DirectoryObject> {
    match change {
        Change::Created { attributes, .. } => Some(created_object(
            kind,
            object_id,
            attributes.clone(),
            time_ms,
            sequence,
        )),
        Change::HardDeleted { .. } => None,
        Change::TenantCreated { .. } => slot,
        _ => {
            let mut object = slot?;
            match change {
                Change::AttributesChanged(changes) => {
                    for c in changes {
                        match &c.new {
                            Some(v) => {
                                object.attributes.insert(c.name.clone(), v.clone());
                            }
                            None => {
                                object.attributes.remove(&c.name);
                            }
                        }
                    }
                }
                Change::SoftDeleted { purge_after_ms } => {
                    object.deleted_at_ms = Some(time_ms);
                    object.purge_after_ms = Some(*purge_after_ms);
                }
                Change::Restored => {
                    object.deleted_at_ms = None;
                    object.purge_after_ms = None;
                }
                Change::LinksAdded(_)
                | Change::LinksRemoved(_)
                | Change::Created { .. }
                | Change::HardDeleted { .. }
                | Change::TenantCreated { .. } => {}
            }
            object.updated_at_ms = time_ms;
            object.version = sequence;
            Some(object)
        }
    }
}

/// The second half of the in-memory fold: a change's links onto the object that
/// [`apply_without_links`] returned for it.
fn fold_links(object: &mut DirectoryObject, change: &Change) {
    match change {
        Change::Created { links, .. } => object.links = group_links(links),
        Change::LinksAdded(links) => {
            for l in links {
                object
                    .links
                    .entry(l.relation.clone())
                    .or_default()
                    .insert(l.target_id.clone());
            }
        }
        Change::LinksRemoved(links) => {
            for l in links {
                if let Some(set) = object.links.get_mut(&l.relation) {
                    set.remove(&l.target_id);
                    if set.is_empty() {
                        object.links.remove(&l.relation);
                    }
                }
            }
        }
        _ => {}
    }
}

/// A new object without links.
/// The object a creation makes (without links), for a fold that owns the event and can
/// hand over its attributes; [`apply_without_links`] copies them.
pub fn created_object(
    kind: ObjectKind,
    object_id: &str,
    attributes: serde_json::Map<String, serde_json::Value>,
    time_ms: i64,
    sequence: u64,
) -> DirectoryObject {
    DirectoryObject {
        id: object_id.to_string(),
        kind,
        attributes,
        links: BTreeMap::new(),
        created_at_ms: time_ms,
        updated_at_ms: time_ms,
        deleted_at_ms: None,
        purge_after_ms: None,
        version: sequence,
    }
}

/// One tenant's state, in memory: the reference fold that projections must match.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct TenantState {
    pub display_name: Option<String>,
    pub created_at_ms: Option<i64>,
    pub objects: BTreeMap<String, DirectoryObject>,
}

impl TenantState {
    /// Folds one acknowledged event at stream `sequence`.
    pub fn apply(&mut self, event: &Event, sequence: u64) {
        if let Change::TenantCreated { display_name } = &event.change {
            self.display_name = Some(display_name.clone());
            self.created_at_ms = Some(event.meta.time_ms);
            return;
        }
        let Ok(kind) = event.meta.kind.parse::<ObjectKind>() else {
            return;
        };
        let id = &event.meta.object_id;
        let slot = self.objects.remove(id);
        if let Some(mut object) =
            apply_without_links(slot, kind, id, &event.change, event.meta.time_ms, sequence)
        {
            fold_links(&mut object, &event.change);
            self.objects.insert(id.clone(), object);
        }
    }
}

impl DirectoryView for TenantState {
    fn object(&self, id: &str) -> Option<DirectoryObject> {
        self.objects.get(id).cloned()
    }

    fn head(&self, id: &str) -> Option<(ObjectKind, bool)> {
        self.objects.get(id).map(|o| (o.kind, o.is_deleted()))
    }

    fn has_link(&self, id: &str, relation: &str, target: &str) -> bool {
        self.objects
            .get(id)
            .and_then(|o| o.links.get(relation))
            .is_some_and(|set| set.contains(target))
    }

    fn links_of(&self, id: &str) -> Vec<Link> {
        self.objects
            .get(id)
            .map(DirectoryObject::link_list)
            .unwrap_or_default()
    }

    fn referrers(&self, target: &str) -> Vec<(String, ObjectKind, String)> {
        let mut out = Vec::new();
        for object in self.objects.values() {
            for (relation, targets) in &object.links {
                if targets.contains(target) {
                    out.push((object.id.clone(), object.kind, relation.clone()));
                }
            }
        }
        out
    }

    fn find_unique(&self, kind: ObjectKind, attribute: &str, value: &str) -> Option<String> {
        self.objects
            .values()
            .find(|o| {
                o.kind == kind
                    && !o.is_deleted()
                    && o.attributes
                        .get(attribute)
                        .and_then(|v| v.as_str())
                        .is_some_and(|v| v.eq_ignore_ascii_case(value))
            })
            .map(|o| o.id.clone())
    }

    fn live_of_kind(&self, kind: ObjectKind) -> Vec<DirectoryObject> {
        self.objects
            .values()
            .filter(|o| o.kind == kind && !o.is_deleted())
            .cloned()
            .collect()
    }
}

/// Every tenant's state.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct DirectoryState {
    pub tenants: BTreeMap<String, TenantState>,
}

impl DirectoryState {
    pub fn apply(&mut self, event: &Event, sequence: u64) {
        self.tenants
            .entry(event.meta.tenant.clone())
            .or_default()
            .apply(event, sequence);
    }
}

/// A view of `base` with decided-but-not-yet-projected creations on top: bulk imports
/// decide each object against the tenant plus the objects earlier in the same batch.
pub struct OverlayView<'a> {
    base: &'a dyn DirectoryView,
    pending: TenantState,
    /// Unique attribute values claimed in `pending`: (kind, lower-case value) → id.
    unique: HashMap<(ObjectKind, String), String>,
}

impl<'a> OverlayView<'a> {
    pub fn new(base: &'a dyn DirectoryView) -> Self {
        Self {
            base,
            pending: TenantState::default(),
            unique: HashMap::new(),
        }
    }

    /// Folds a decided event into the overlay. An object the overlay has not held yet is
    /// first copied from the base, links included, so changes to existing objects fold
    /// onto what they change.
    pub fn apply(&mut self, event: &Event, sequence: u64) {
        let Ok(kind) = event.meta.kind.parse::<ObjectKind>() else {
            self.pending.apply(event, sequence);
            return;
        };
        let id = &event.meta.object_id;
        if !self.pending.objects.contains_key(id) {
            if let Some(mut object) = self.base.object(id) {
                object.links = crate::object::group_links(&self.base.links_of(id));
                self.pending.objects.insert(id.clone(), object);
            }
        }
        self.pending.apply(event, sequence);
        if let Some(attribute) = crate::schema::schema(kind).unique {
            if let Some(value) = self
                .pending
                .objects
                .get(id)
                .filter(|o| !o.is_deleted())
                .and_then(|o| o.attributes.get(attribute))
                .and_then(|v| v.as_str())
            {
                self.unique.insert((kind, value.to_lowercase()), id.clone());
            }
        }
    }
}

impl DirectoryView for OverlayView<'_> {
    fn object(&self, id: &str) -> Option<DirectoryObject> {
        self.pending.object(id).or_else(|| self.base.object(id))
    }

    fn head(&self, id: &str) -> Option<(ObjectKind, bool)> {
        self.pending.head(id).or_else(|| self.base.head(id))
    }

    fn prefetch_heads(&self, ids: &[&str]) {
        let outside: Vec<&str> = ids
            .iter()
            .copied()
            .filter(|id| !self.pending.objects.contains_key(*id))
            .collect();
        self.base.prefetch_heads(&outside);
    }

    fn has_link(&self, id: &str, relation: &str, target: &str) -> bool {
        if self.pending.objects.contains_key(id) {
            self.pending.has_link(id, relation, target)
        } else {
            self.base.has_link(id, relation, target)
        }
    }

    fn links_of(&self, id: &str) -> Vec<Link> {
        if self.pending.objects.contains_key(id) {
            self.pending.links_of(id)
        } else {
            self.base.links_of(id)
        }
    }

    fn referrers(&self, target: &str) -> Vec<(String, ObjectKind, String)> {
        let mut out = self.base.referrers(target);
        out.extend(self.pending.referrers(target));
        out
    }

    fn find_unique(&self, kind: ObjectKind, attribute: &str, value: &str) -> Option<String> {
        let claimed = crate::schema::schema(kind).unique == Some(attribute);
        // A holder the overlay changed counts only if it still holds the value, live.
        let holds = |id: &String| match self.pending.objects.get(id) {
            None => true,
            Some(o) => {
                !o.is_deleted()
                    && o.attributes
                        .get(attribute)
                        .and_then(|v| v.as_str())
                        .is_some_and(|v| v.eq_ignore_ascii_case(value))
            }
        };
        claimed
            .then(|| self.unique.get(&(kind, value.to_lowercase())).cloned())
            .flatten()
            .filter(holds)
            .or_else(|| self.base.find_unique(kind, attribute, value).filter(holds))
    }

    /// The base's, with the overlay's version of each object it holds.
    fn live_of_kind(&self, kind: ObjectKind) -> Vec<DirectoryObject> {
        let mut out: Vec<DirectoryObject> = self
            .base
            .live_of_kind(kind)
            .into_iter()
            .filter(|o| !self.pending.objects.contains_key(&o.id))
            .collect();
        out.extend(self.pending.live_of_kind(kind));
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn group_created() -> Change {
        let mut attributes = serde_json::Map::new();
        attributes.insert("displayName".into(), json!("Sales"));
        Change::Created {
            attributes,
            links: vec![Link::new("members", "u1")],
        }
    }

    #[test]
    fn a_membership_change_moves_only_version_and_update_time_without_links() {
        let created = apply_without_links(None, ObjectKind::Group, "g1", &group_created(), 10, 1);
        let created = created.unwrap_or_else(|| panic!("a creation makes an object"));
        assert!(created.links.is_empty(), "{:?}", created.links);
        let added = Change::LinksAdded(vec![Link::new("members", "u2")]);
        let after = apply_without_links(
            Some(created.clone()),
            ObjectKind::Group,
            "g1",
            &added,
            20,
            2,
        );
        let after = after.unwrap_or_else(|| panic!("a membership change keeps the object"));
        assert_eq!((after.version, after.updated_at_ms), (2, 20));
        assert!(after.links.is_empty(), "{:?}", after.links);
        assert_eq!(after.attributes, created.attributes);
        assert_eq!(after.created_at_ms, 10);
    }

    #[test]
    fn the_in_memory_fold_adds_and_removes_links_and_moves_the_version() {
        let mut state = TenantState::default();
        let event = |change: Change, time_ms: i64| Event {
            meta: crate::event::EventMeta {
                event_id: format!("e{time_ms}"),
                tenant: "t1".into(),
                kind: "group".into(),
                object_id: "g1".into(),
                actor: "test".into(),
                time_ms,
                source: "test".into(),
                correlation_id: None,
                mutation_id: format!("m{time_ms}"),
            },
            change,
        };
        state.apply(&event(group_created(), 10), 1);
        state.apply(
            &event(Change::LinksAdded(vec![Link::new("members", "u2")]), 20),
            2,
        );
        state.apply(
            &event(Change::LinksRemoved(vec![Link::new("members", "u1")]), 30),
            3,
        );
        let g1 = &state.objects["g1"];
        assert_eq!(g1.link_list(), vec![Link::new("members", "u2")]);
        assert_eq!((g1.version, g1.updated_at_ms), (3, 30));
        state.apply(
            &event(Change::LinksRemoved(vec![Link::new("members", "u2")]), 40),
            4,
        );
        assert!(
            state.objects["g1"].links.is_empty(),
            "an emptied relation is dropped"
        );
    }
}
