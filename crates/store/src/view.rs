//! [`TenantView`]: the directory projection as `decide` reads it.

use std::cell::RefCell;
use std::collections::HashMap;

use backtrack_domain::command::DirectoryView;
use backtrack_domain::object::{DirectoryObject, Link};
use backtrack_domain::ObjectKind;

use crate::directory::{DirectoryProjection, ListQuery};

/// One tenant of the projection, readable by `decide`. Storage errors read as "absent"
/// here; callers that must distinguish use the projection's fallible methods.
///
/// A view lives for one decision under the tenant's write lock, while the tenant does not
/// change, so it remembers the heads it has read: link targets repeat (a user is a member
/// of many groups of one import call), and each would otherwise be a RocksDB read.
pub struct TenantView<'a> {
    projection: &'a DirectoryProjection,
    tenant: &'a str,
    heads: RefCell<HashMap<String, Option<(ObjectKind, bool)>>>,
}

impl<'a> TenantView<'a> {
    pub(crate) fn new(projection: &'a DirectoryProjection, tenant: &'a str) -> Self {
        Self {
            projection,
            tenant,
            heads: RefCell::new(HashMap::new()),
        }
    }
}

impl DirectoryView for TenantView<'_> {
    fn object(&self, id: &str) -> Option<DirectoryObject> {
        self.projection.object(self.tenant, id).ok().flatten()
    }

    fn prefetch_heads(&self, ids: &[&str]) {
        let mut missing: Vec<&str> = {
            let heads = self.heads.borrow();
            ids.iter()
                .copied()
                .filter(|id| !heads.contains_key(*id))
                .collect()
        };
        missing.sort_unstable();
        missing.dedup();
        if missing.len() < 2 {
            return;
        }
        // On a storage error nothing is remembered: `head` reads each one again.
        if let Ok(found) = self.projection.heads(self.tenant, &missing) {
            let mut heads = self.heads.borrow_mut();
            for (id, head) in missing.into_iter().zip(found) {
                heads.insert(id.to_string(), head);
            }
        }
    }

    fn head(&self, id: &str) -> Option<(ObjectKind, bool)> {
        if let Some(head) = self.heads.borrow().get(id) {
            return *head;
        }
        let head = self.projection.head(self.tenant, id).ok().flatten();
        self.heads.borrow_mut().insert(id.to_string(), head);
        head
    }

    fn has_link(&self, id: &str, relation: &str, target: &str) -> bool {
        self.projection
            .has_link(self.tenant, id, relation, target)
            .unwrap_or(false)
    }

    fn links_of(&self, id: &str) -> Vec<Link> {
        self.projection.links(self.tenant, id).unwrap_or_default()
    }

    fn referrers(&self, target: &str) -> Vec<(String, ObjectKind, String)> {
        self.projection
            .referrers(self.tenant, target)
            .unwrap_or_default()
    }

    fn live_of_kind(&self, kind: ObjectKind) -> Vec<DirectoryObject> {
        let mut out = Vec::new();
        loop {
            let query = ListQuery {
                kind: Some(kind),
                deleted: false,
                after: out.last().map(|o: &DirectoryObject| o.id.clone()),
                limit: 1000,
            };
            match self.projection.list(self.tenant, &query) {
                Ok(page) if !page.is_empty() => out.extend(page),
                _ => return out,
            }
        }
    }

    fn find_unique(&self, kind: ObjectKind, attribute: &str, value: &str) -> Option<String> {
        self.projection
            .find_unique(self.tenant, kind, attribute, value)
            .ok()
            .flatten()
    }
}
