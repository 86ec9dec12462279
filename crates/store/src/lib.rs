//! RocksDB projections. Every projection here is derived from the event log and can be
//! deleted and rebuilt by replay.
//!
//! Modules:
//! - [`audit`]: the audit index — each tenant's records hash-chained in stream order, with
//!   indexes by actor, action, target, result, correlation id and time.
//! - `keys`: the key layout (one prefix per record type, `/`-separated tokens).
//! - `batch`: a run's writes, sorted and handed to RocksDB as one serialized batch.
//! - [`directory`]: the directory's current-state projection — objects, links, the
//!   recycle bin, unique-attribute and reverse-link indexes — and the read API the
//!   directory service and `decide` use.
//! - [`timetravel`]: the snapshotter's versioned store — every version of every object and
//!   link, so any object, membership or object list at any stream sequence is a seek.

pub mod audit;
mod batch;
pub mod directory;
mod keys;
pub mod timetravel;
mod view;

pub use directory::{DirectoryProjection, ListQuery, TenantRecord};
pub use timetravel::query::IncomingLinkChange;
pub use timetravel::{
    Carry, Prepared, SequencedEvent, TenantSummary, TimeTravelStore, TwoPointReader,
};
pub use view::TenantView;

/// Block cache of each store, for data blocks.
const BLOCK_CACHE_BYTES: usize = 256 * 1024 * 1024;

/// The table options of the directory projection and the time-travel store: bloom filters
/// (10 bits a key) so lookups of absent keys read no block, and a 256 MiB block cache for
/// data blocks. Index and filter blocks stay with their open table, outside that cache: an
/// SST's index block runs to megabytes at a million objects, and kept in the cache such
/// blocks were evicted and then read and decompressed again by seek after seek (perf of a
/// recovery whose planning took 130 s instead of 2 s after the bench's 1M-object tenant;
/// each cache shard holds only a few MiB). Held by their tables, they cost memory in
/// proportion to the store, a few percent of its size.
pub(crate) fn table_options() -> Result<rocksdb::BlockBasedOptions, StoreError> {
    let cache = rocksdb::Cache::new_lru_cache(BLOCK_CACHE_BYTES)?;
    let mut table = rocksdb::BlockBasedOptions::default();
    table.set_block_cache(&cache);
    table.set_bloom_filter(10.0, false);
    table.set_cache_index_and_filter_blocks(false);
    Ok(table)
}

/// The environment every store runs its background work in: RocksDB's process-wide
/// default, with the compaction pool's threads at the lowest CPU priority (nice 19), so a
/// compaction takes the cores only while nothing else wants them. On 2 cores, compactions
/// after a burst of writes otherwise share the CPU with whatever is asked next: a
/// difference report over 100,000 objects computed right after 200,000 appended events ran
/// its two threads at about 58% of the wall clock beside one compaction thread. Flushes
/// (the high-priority pool) keep their priority: writers wait for them.
pub(crate) fn background_env() -> Result<rocksdb::Env, StoreError> {
    let mut env = rocksdb::Env::new()?;
    env.lower_thread_pool_cpu_priority();
    Ok(env)
}

/// A storage failure. RocksDB errors are internal; corrupt records name their key.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("rocksdb: {0}")]
    Rocks(#[from] rocksdb::Error),
    #[error("corrupt record at {key}: {reason}")]
    Corrupt { key: String, reason: String },
    #[error("a run prepared on position {prepared_on} cannot be written at position {position}: runs must be written in the order they were prepared")]
    OutOfOrder { position: u64, prepared_on: u64 },
}
