//! [`TenantView`]: the directory projection as `decide` reads it.

use std::cell::RefCell;
use std::collections::HashMap;

use backtrack_domain::command::DirectoryView;
use backtrack_domain::object::{DirectoryObject, Link};
use backtrack_domain::ObjectKind;

use crate::directory::{DirectoryProjection, ListQuery};
use crate::StoreError;

/// One tenant of the projection, readable by `decide`. `decide` cannot fail on a read, so
/// a storage error answers "absent" (or "none") and is kept: the caller must ask
/// [`TenantView::check`] after deciding and throw the decision away when it fails, as it
/// was taken on a state that was not read (a uniqueness or reference check would have
/// passed on nothing).
///
/// A view lives for one decision under the tenant's write lock, while the tenant does not
/// change, so it remembers the heads it has read: link targets repeat (a user is a member
/// of many groups of one import call), and each would otherwise be a RocksDB read.
pub struct TenantView<'a> {
    projection: &'a DirectoryProjection,
    tenant: &'a str,
    heads: RefCell<HashMap<String, Option<(ObjectKind, bool)>>>,
    /// The first storage error a read met.
    failure: RefCell<Option<StoreError>>,
}

impl<'a> TenantView<'a> {
    pub(crate) fn new(projection: &'a DirectoryProjection, tenant: &'a str) -> Self {
        Self {
            projection,
            tenant,
            heads: RefCell::new(HashMap::new()),
            failure: RefCell::new(None),
        }
    }

    /// Fails with the first storage error a read through this view met since the last
    /// check: every decision taken on the view since then is void.
    pub fn check(&self) -> Result<(), StoreError> {
        match self.failure.borrow_mut().take() {
            Some(e) => Err(e),
            None => Ok(()),
        }
    }

    /// The read's value, or the default (absent, none, false) with the error kept.
    fn read<T: Default>(&self, result: Result<T, StoreError>) -> T {
        result.unwrap_or_else(|e| {
            self.failure.borrow_mut().get_or_insert(e);
            T::default()
        })
    }
}

impl DirectoryView for TenantView<'_> {
    fn object(&self, id: &str) -> Option<DirectoryObject> {
        self.read(self.projection.object(self.tenant, id))
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
        // On a storage error nothing is remembered: `head` reads each one again (and
        // keeps the error if it recurs).
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
        let head = self.read(self.projection.head(self.tenant, id));
        self.heads.borrow_mut().insert(id.to_string(), head);
        head
    }

    fn has_link(&self, id: &str, relation: &str, target: &str) -> bool {
        self.read(self.projection.has_link(self.tenant, id, relation, target))
    }

    fn links_of(&self, id: &str) -> Vec<Link> {
        self.read(self.projection.links(self.tenant, id))
    }

    fn referrers(&self, target: &str) -> Vec<(String, ObjectKind, String)> {
        self.read(self.projection.referrers(self.tenant, target))
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
            match self.read(self.projection.list(self.tenant, &query)) {
                page if !page.is_empty() => out.extend(page),
                _ => return out,
            }
        }
    }

    fn find_unique(&self, kind: ObjectKind, attribute: &str, value: &str) -> Option<String> {
        self.read(
            self.projection
                .find_unique(self.tenant, kind, attribute, value),
        )
    }
}
