//! A tenant's running summary: object counts per kind and the set hash of its facts,
//! updated with every event so a backup can name both in O(1).

use std::collections::BTreeMap;

use backtrack_domain::digest::{SetHash, SET_HASH_BYTES};
use backtrack_domain::object::DirectoryObject;
use backtrack_domain::ObjectKind;

/// Live and recycle-bin objects of one kind.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct KindCount {
    pub live: u64,
    pub deleted: u64,
}

/// Counts and set hash of one tenant at one stream position.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct TenantSummary {
    pub counts: BTreeMap<ObjectKind, KindCount>,
    pub hash: SetHash,
}

impl TenantSummary {
    /// The content digest (`lthash16-blake3:…`), the same as a replay computes.
    pub fn digest(&self) -> String {
        self.hash.digest()
    }

    /// Objects, live and in the recycle bin.
    pub fn objects(&self) -> u64 {
        self.counts.values().map(|c| c.live + c.deleted).sum()
    }

    pub(crate) fn count(&mut self, object: &DirectoryObject, add: bool) {
        let entry = self.counts.entry(object.kind).or_default();
        let slot = if object.is_deleted() {
            &mut entry.deleted
        } else {
            &mut entry.live
        };
        *slot = if add {
            slot.saturating_add(1)
        } else {
            slot.saturating_sub(1)
        };
        if *entry == KindCount::default() {
            self.counts.remove(&object.kind);
        }
    }

    pub(crate) fn encode(&self) -> Vec<u8> {
        let mut out = self.hash.to_bytes();
        for kind in ObjectKind::ALL {
            let c = self.counts.get(&kind).copied().unwrap_or_default();
            out.extend_from_slice(&c.live.to_be_bytes());
            out.extend_from_slice(&c.deleted.to_be_bytes());
        }
        out
    }

    pub(crate) fn decode(bytes: &[u8]) -> Option<Self> {
        let (lanes, rest) = bytes.split_at_checked(SET_HASH_BYTES)?;
        if rest.len() != ObjectKind::ALL.len() * 16 {
            return None;
        }
        let mut counts = BTreeMap::new();
        for (kind, chunk) in ObjectKind::ALL.iter().zip(rest.chunks_exact(16)) {
            let live = u64::from_be_bytes(chunk[..8].try_into().ok()?);
            let deleted = u64::from_be_bytes(chunk[8..].try_into().ok()?);
            if live + deleted > 0 {
                counts.insert(*kind, KindCount { live, deleted });
            }
        }
        Some(Self {
            counts,
            hash: SetHash::from_bytes(lanes)?,
        })
    }
}
