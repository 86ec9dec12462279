//! Checkpoints of the time-travel store: a consistent RocksDB checkpoint (hard links, no
//! copy) and a check that every tenant's running summary matches the state stored at the
//! position, so only verified checkpoints are kept.

use std::path::Path;

use backtrack_domain::digest::StateDigest;
use backtrack_domain::object::group_links;
use rocksdb::checkpoint::Checkpoint;

use super::TimeTravelStore;
use crate::StoreError;

/// One tenant's summary digest against the digest recomputed from the stored state.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SummaryCheck {
    pub tenant: String,
    pub summary: String,
    pub recomputed: String,
}

impl SummaryCheck {
    pub fn ok(&self) -> bool {
        self.summary == self.recomputed
    }
}

impl TimeTravelStore {
    /// Writes a consistent checkpoint of the whole store into `path` (which must not
    /// exist). Applying waits meanwhile; it takes as long as a memtable flush.
    pub fn checkpoint(&self, path: &Path) -> Result<u64, StoreError> {
        let applied = self.lock();
        self.db.flush()?;
        Checkpoint::new(&self.db)?.create_checkpoint(path)?;
        Ok(applied.position)
    }

    /// Every tenant's running digest and the digest of its stored state at the position.
    pub fn check_summaries(&self) -> Result<Vec<SummaryCheck>, StoreError> {
        let (position, summaries) = {
            let applied = self.lock();
            let summaries: Vec<(String, String)> = applied
                .summaries
                .iter()
                .map(|(t, s)| (t.clone(), s.digest()))
                .collect();
            (applied.position, summaries)
        };
        let mut checks = Vec::with_capacity(summaries.len());
        for (tenant, summary) in summaries {
            let mut digest = StateDigest::default();
            self.for_each_version_at(&tenant, position, None, |mut object| {
                object.links = group_links(&self.links_at(&tenant, &object.id, None, position)?);
                digest.add(&object);
                Ok(true)
            })?;
            checks.push(SummaryCheck {
                tenant,
                summary,
                recomputed: digest.finish(),
            });
        }
        checks.sort_by(|a, b| a.tenant.cmp(&b.tenant));
        Ok(checks)
    }

    /// Every tenant's running digest at the position.
    pub fn summary_digests(&self) -> (u64, Vec<(String, String)>) {
        let applied = self.lock();
        let mut digests: Vec<(String, String)> = applied
            .summaries
            .iter()
            .map(|(t, s)| (t.clone(), s.digest()))
            .collect();
        digests.sort();
        (applied.position, digests)
    }
}
