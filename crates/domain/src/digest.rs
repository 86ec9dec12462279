//! Content digests: a SHA-256 over the canonical lines of a tenant's objects, in id order.
//!
//! The digest covers what an object *is* (kind, attributes, links, recycle-bin state), not
//! when or in which stream position it got there, so any projection and any replay of the
//! same events agree on it.

use serde_json::{json, Map, Value};
use sha2::{Digest, Sha256};

use crate::canonical::to_canonical_string;
use crate::object::DirectoryObject;

/// The canonical line of one object (links taken from `object.links`).
pub fn object_line(object: &DirectoryObject) -> String {
    let links: Map<String, Value> = object
        .links
        .iter()
        .map(|(rel, targets)| (rel.clone(), json!(targets)))
        .collect();
    to_canonical_string(&json!({
        "id": object.id,
        "kind": object.kind.as_str(),
        "attributes": object.attributes,
        "links": links,
        "deletedAtMs": object.deleted_at_ms,
    }))
}

/// Incremental digest over objects fed in ascending id order.
#[derive(Debug, Default, Clone)]
pub struct StateDigest {
    hasher: Sha256,
    objects: u64,
}

impl StateDigest {
    pub fn add(&mut self, object: &DirectoryObject) {
        self.hasher.update(object_line(object).as_bytes());
        self.hasher.update(b"\n");
        self.objects += 1;
    }

    /// `sha256:<hex>`.
    pub fn finish(self) -> String {
        format!("sha256:{}", hex::encode(self.hasher.finalize()))
    }

    pub fn objects(&self) -> u64 {
        self.objects
    }
}

/// Digest of an in-memory tenant state.
pub fn tenant_digest(state: &crate::state::TenantState) -> String {
    let mut digest = StateDigest::default();
    for object in state.objects.values() {
        digest.add(object);
    }
    digest.finish()
}
