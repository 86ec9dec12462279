//! RocksDB projections. Every projection here is derived from the event log and can be
//! deleted and rebuilt by replay.
//!
//! Modules:
//! - [`audit`]: the audit index — each tenant's records hash-chained in stream order, with
//!   indexes by actor, action, target, result, correlation id and time.
//! - [`keys`]: the key layout (one prefix per record type, `/`-separated tokens).
//! - [`directory`]: the directory's current-state projection — objects, links, the
//!   recycle bin, unique-attribute and reverse-link indexes — and the read API the
//!   directory service and `decide` use.
//! - [`timetravel`]: the snapshotter's versioned store — every version of every object and
//!   link, so any object, membership or object list at any stream sequence is a seek.

pub mod audit;
pub mod directory;
mod keys;
pub mod timetravel;

pub use directory::{DirectoryProjection, ListQuery, TenantRecord, TenantView};
pub use timetravel::{SequencedEvent, TenantSummary, TimeTravelStore};

/// A storage failure. RocksDB errors are internal; corrupt records name their key.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("rocksdb: {0}")]
    Rocks(#[from] rocksdb::Error),
    #[error("corrupt record at {key}: {reason}")]
    Corrupt { key: String, reason: String },
}
