//! A directory object as projections hold it.

use std::collections::{BTreeMap, BTreeSet};

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use crate::kind::ObjectKind;
use crate::schema::SYNCED_FLAG;

/// A link from an object to another object through a named relation.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct Link {
    pub relation: String,
    pub target_id: String,
}

impl Link {
    pub fn new(relation: impl Into<String>, target_id: impl Into<String>) -> Self {
        Self {
            relation: relation.into(),
            target_id: target_id.into(),
        }
    }
}

/// One object: canonical attributes, links grouped by relation, and its lifecycle.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DirectoryObject {
    pub id: String,
    pub kind: ObjectKind,
    /// Canonical attributes (never secrets, never `id`).
    pub attributes: Map<String, Value>,
    /// Targets per relation. Projections that keep links apart may leave this empty.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub links: BTreeMap<String, BTreeSet<String>>,
    pub created_at_ms: i64,
    pub updated_at_ms: i64,
    /// Set while the object is in the recycle bin.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub deleted_at_ms: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub purge_after_ms: Option<i64>,
    /// Stream sequence of the last event applied to this object.
    pub version: u64,
}

impl DirectoryObject {
    pub fn display_name(&self) -> Option<&str> {
        self.attributes.get("displayName").and_then(Value::as_str)
    }

    /// Whether the object is synced from an on-premises directory.
    pub fn is_synced(&self) -> bool {
        self.attributes.get(SYNCED_FLAG) == Some(&Value::Bool(true))
    }

    pub fn is_deleted(&self) -> bool {
        self.deleted_at_ms.is_some()
    }

    /// All links as a sorted list.
    pub fn link_list(&self) -> Vec<Link> {
        self.links
            .iter()
            .flat_map(|(rel, targets)| {
                targets
                    .iter()
                    .map(move |t| Link::new(rel.clone(), t.clone()))
            })
            .collect()
    }
}

/// Groups links by relation.
pub fn group_links(links: &[Link]) -> BTreeMap<String, BTreeSet<String>> {
    let mut out: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    for link in links {
        out.entry(link.relation.clone())
            .or_default()
            .insert(link.target_id.clone());
    }
    out
}
