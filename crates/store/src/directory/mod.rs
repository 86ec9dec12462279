//! The directory's current-state projection in RocksDB.
//!
//! [`DirectoryProjection::apply`] folds a run of acknowledged events (in stream order) in
//! one atomic write batch together with the new position, so a crash leaves either the
//! whole run or none of it. Object records carry no links: a relation's targets are
//! split over 16 buckets by a hash of the target id, so a group of any size costs at most
//! 16 keys, and one membership change rewrites one sixteenth of the member list.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Mutex;

use backtrack_domain::digest::StateDigest;
use backtrack_domain::object::{DirectoryObject, Link};
use backtrack_domain::schema::schema;
use backtrack_domain::ObjectKind;
use rocksdb::{Direction, IteratorMode, Options, WriteBatch, DB};
use serde::{Deserialize, Serialize};

use crate::batch::SortedWrites;
use crate::keys;
use crate::view::TenantView;
use crate::StoreError;

mod apply;

/// Memtable size of the projection. 8 MiB folded a 100k-user replay 15–30% faster (the
/// memtable stays in the processor's cache), but with a 1M-object tenant its many level-0
/// files outran compaction: writes stalled and reads went to disk for filter blocks.
const WRITE_BUFFER_BYTES: usize = 64 * 1024 * 1024;

/// Runs with at least this many writes go to RocksDB as one table file instead of
/// through the memtable (see [`DirectoryProjection::ingest_runs_from`]).
pub const INGEST_WRITES: usize = 100_000;

/// A tenant as the projection knows it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TenantRecord {
    pub id: String,
    pub display_name: String,
    pub created_at_ms: i64,
    /// The stream sequence of the tenant's creation: before it the tenant did not exist.
    /// 0 in records stored before it was kept (read `created_at_ms` then).
    #[serde(default)]
    pub created_sequence: u64,
}

/// Which objects to list, one page at a time (ordered by id).
#[derive(Debug, Clone, Default)]
pub struct ListQuery {
    pub kind: Option<ObjectKind>,
    /// List the recycle bin instead of live objects.
    pub deleted: bool,
    /// Start after this id (the previous page's last id).
    pub after: Option<String>,
    pub limit: usize,
}

/// RocksDB-backed current state of every tenant.
pub struct DirectoryProjection {
    db: DB,
    /// The options it was opened with (a large run is written as a table file in its
    /// format).
    options: Options,
    /// Runs with at least this many writes are ingested as a table file.
    ingest_writes: AtomicUsize,
    /// The last run's write buffer, emptied, for the next run.
    spare: Mutex<Option<SortedWrites>>,
}

impl std::fmt::Debug for DirectoryProjection {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DirectoryProjection")
            .finish_non_exhaustive()
    }
}

/// A raw key/value pair read from RocksDB.
type Entry = (Box<[u8]>, Box<[u8]>);

impl DirectoryProjection {
    /// Opens (or creates) the projection in `path`.
    pub fn open(path: &Path) -> Result<Self, StoreError> {
        let mut opts = Options::default();
        opts.create_if_missing(true);
        opts.set_write_buffer_size(WRITE_BUFFER_BYTES);
        opts.set_env(&crate::background_env()?);
        opts.increase_parallelism(2);
        // Most lookups while importing are for ids that do not exist yet (existence and
        // uniqueness checks); the bloom filters answer those without reading any block,
        // and a whole-key bloom filter over the memtable (6.4 MiB at 64 MiB of memtable)
        // without searching its skip list, where such a lookup otherwise compares keys
        // at every level.
        opts.set_block_based_table_factory(&crate::table_options()?);
        opts.set_memtable_prefix_bloom_ratio(0.1);
        opts.set_memtable_whole_key_filtering(true);
        // Opened with the default column family described (with these very options: a
        // name alone would give it default ones), so batched reads have its handle.
        let default =
            rocksdb::ColumnFamilyDescriptor::new(rocksdb::DEFAULT_COLUMN_FAMILY_NAME, opts.clone());
        let projection = Self {
            db: DB::open_cf_descriptors(&opts, path, [default])?,
            options: opts,
            ingest_writes: AtomicUsize::new(INGEST_WRITES),
            spare: Mutex::new(None),
        };
        // A table file written for a run that a crash kept from being ingested.
        let _ = std::fs::remove_file(path.join(apply::INGEST_FILE));
        projection.upgrade_layout()?;
        Ok(projection)
    }

    /// Brings a projection written by an older build to this build's layout: the reverse
    /// links of layout 2 are derived from the link buckets once.
    fn upgrade_layout(&self) -> Result<(), StoreError> {
        if self.db.get(keys::LAYOUT)?.as_deref() == Some(keys::LAYOUT_VERSION) {
            return Ok(());
        }
        let mut batch = WriteBatch::default();
        for item in self
            .db
            .iterator(IteratorMode::From(b"l/", Direction::Forward))
        {
            let (key, value) = item?;
            if !key.starts_with(b"l/") {
                break;
            }
            let rest = String::from_utf8_lossy(&key[2..]).into_owned();
            let mut parts = rest.split('/');
            let (Some(tenant), Some(source), Some(relation)) =
                (parts.next(), parts.next(), parts.next())
            else {
                continue;
            };
            for target in decode_targets(&value) {
                batch.put(keys::reverse(tenant, &target, source, relation), b"");
            }
        }
        batch.put(keys::LAYOUT, keys::LAYOUT_VERSION);
        self.db.write(batch)?;
        Ok(())
    }

    /// Runs of at least `writes` writes are from now on written as one table file that
    /// RocksDB ingests whole, instead of through the memtable ([`INGEST_WRITES`] by
    /// default). A rebuild from the log, or a projector far behind it, folds runs of
    /// thousands of events and hundreds of thousands of writes; sorted once and written
    /// out as a table, they cost a fraction of inserting each into the memtable's skip
    /// list and flushing it later. Either way a run is taken whole or not at all.
    pub fn ingest_runs_from(&self, writes: usize) {
        self.ingest_writes.store(writes, Ordering::Relaxed);
    }

    /// The last stream sequence folded into the projection (0 = none).
    pub fn position(&self) -> Result<u64, StoreError> {
        Ok(match self.db.get(keys::POSITION)? {
            Some(v) => u64::from_be_bytes(
                v.as_slice()
                    .try_into()
                    .map_err(|_| corrupt("p", "bad position"))?,
            ),
            None => 0,
        })
    }

    fn load(&self, tenant: &str, id: &str) -> Result<Option<DirectoryObject>, StoreError> {
        let key = keys::object(tenant, id);
        match self.db.get(&key)? {
            Some(bytes) => serde_json::from_slice(&bytes)
                .map(Some)
                .map_err(|e| corrupt(&String::from_utf8_lossy(&key), &e.to_string())),
            None => Ok(None),
        }
    }

    /// The stream sequence at which a mutation id was applied, if it was.
    pub fn mutation_sequence(
        &self,
        tenant: &str,
        mutation_id: &str,
    ) -> Result<Option<u64>, StoreError> {
        Ok(match self.db.get(keys::mutation(tenant, mutation_id))? {
            Some(v) => Some(u64::from_be_bytes(
                v.as_slice()
                    .try_into()
                    .map_err(|_| corrupt(mutation_id, "bad sequence"))?,
            )),
            None => None,
        })
    }

    /// A tenant, if it was created.
    pub fn tenant(&self, id: &str) -> Result<Option<TenantRecord>, StoreError> {
        let key = keys::tenant(id);
        match self.db.get(&key)? {
            Some(bytes) => serde_json::from_slice(&bytes)
                .map(Some)
                .map_err(|e| corrupt(&String::from_utf8_lossy(&key), &e.to_string())),
            None => Ok(None),
        }
    }

    /// Every tenant, ordered by id.
    pub fn tenants(&self) -> Result<Vec<TenantRecord>, StoreError> {
        let mut out = Vec::new();
        for (key, value) in self.scan(keys::TENANTS)? {
            out.push(
                serde_json::from_slice(&value)
                    .map_err(|e| corrupt(&String::from_utf8_lossy(&key), &e.to_string()))?,
            );
        }
        Ok(out)
    }

    /// An object without its links (live or in the recycle bin).
    pub fn object(&self, tenant: &str, id: &str) -> Result<Option<DirectoryObject>, StoreError> {
        self.load(tenant, id)
    }

    /// Stream sequence of the last event on the object's subject: its version, or for a
    /// purged object the sequence of its purge; 0 if it never existed.
    pub fn subject_sequence(&self, tenant: &str, id: &str) -> Result<u64, StoreError> {
        if let Some(o) = self.load(tenant, id)? {
            return Ok(o.version);
        }
        Ok(match self.db.get_pinned(keys::gone(tenant, id))? {
            Some(bytes) if bytes.len() == 8 => {
                let mut b = [0u8; 8];
                b.copy_from_slice(&bytes);
                u64::from_be_bytes(b)
            }
            _ => 0,
        })
    }

    /// Kind and recycle-bin state of an object, from its two-byte head record.
    pub fn head(&self, tenant: &str, id: &str) -> Result<Option<(ObjectKind, bool)>, StoreError> {
        let key = keys::head(tenant, id);
        match self.db.get_pinned(&key)? {
            Some(bytes) => decode_head(&bytes)
                .map(Some)
                .ok_or_else(|| corrupt(&String::from_utf8_lossy(&key), "bad head record")),
            None => Ok(None),
        }
    }

    /// Heads of many objects (as [`DirectoryProjection::head`]), read in one batch.
    pub fn heads(
        &self,
        tenant: &str,
        ids: &[&str],
    ) -> Result<Vec<Option<(ObjectKind, bool)>>, StoreError> {
        let cf = self
            .db
            .cf_handle(rocksdb::DEFAULT_COLUMN_FAMILY_NAME)
            .ok_or_else(|| corrupt("default", "the default column family has no handle"))?;
        let keys: Vec<Vec<u8>> = ids.iter().map(|id| keys::head(tenant, id)).collect();
        let values = self.db.batched_multi_get_cf(cf, &keys, false);
        keys.iter()
            .zip(values)
            .map(|(key, value)| match value? {
                Some(bytes) => decode_head(&bytes)
                    .map(Some)
                    .ok_or_else(|| corrupt(&String::from_utf8_lossy(key), "bad head record")),
                None => Ok(None),
            })
            .collect()
    }

    /// An object with its links filled in.
    pub fn object_with_links(
        &self,
        tenant: &str,
        id: &str,
    ) -> Result<Option<DirectoryObject>, StoreError> {
        let Some(mut object) = self.load(tenant, id)? else {
            return Ok(None);
        };
        object.links = backtrack_domain::object::group_links(&self.links(tenant, id)?);
        Ok(Some(object))
    }

    /// Every link of an object, sorted by relation then target.
    pub fn links(&self, tenant: &str, id: &str) -> Result<Vec<Link>, StoreError> {
        let prefix = keys::links_prefix(tenant, id);
        let mut out = Vec::new();
        for (key, value) in self.scan(&prefix)? {
            let rest = String::from_utf8_lossy(&key[prefix.len()..]).into_owned();
            if let Some((rel, _bucket)) = rest.split_once('/') {
                out.extend(
                    decode_targets(&value)
                        .into_iter()
                        .map(|t| Link::new(rel, t)),
                );
            }
        }
        out.sort();
        Ok(out)
    }

    pub fn has_link(
        &self,
        tenant: &str,
        id: &str,
        relation: &str,
        target: &str,
    ) -> Result<bool, StoreError> {
        Ok(
            match self
                .db
                .get_pinned(keys::link_bucket(tenant, id, relation, target))?
            {
                Some(bytes) => bytes.split(|b| *b == b'\n').any(|t| t == target.as_bytes()),
                None => false,
            },
        )
    }

    /// Objects that link to `target`: (source id, source kind, relation), from the reverse
    /// links (one key per link), so a purge costs what the target's links cost, not the
    /// tenant's size.
    pub fn referrers(
        &self,
        tenant: &str,
        target: &str,
    ) -> Result<Vec<(String, ObjectKind, String)>, StoreError> {
        let prefix = keys::reverse_prefix(tenant, target);
        let mut out = Vec::new();
        for (key, _) in self.scan(&prefix)? {
            let rest = String::from_utf8_lossy(&key[prefix.len()..]).into_owned();
            let Some((source, relation)) = rest.split_once('/') else {
                continue;
            };
            if let Some((kind, _)) = self.head(tenant, source)? {
                out.push((source.to_string(), kind, relation.to_string()));
            }
        }
        Ok(out)
    }

    /// The live object of `kind` holding a unique attribute value.
    pub fn find_unique(
        &self,
        tenant: &str,
        kind: ObjectKind,
        attribute: &str,
        value: &str,
    ) -> Result<Option<String>, StoreError> {
        Ok(self
            .db
            .get(keys::unique(tenant, kind.as_str(), attribute, value))?
            .map(|v| String::from_utf8_lossy(&v).into_owned()))
    }

    /// One page of objects (without links), ordered by id.
    pub fn list(
        &self,
        tenant: &str,
        query: &ListQuery,
    ) -> Result<Vec<DirectoryObject>, StoreError> {
        let prefix = match (query.deleted, query.kind) {
            (true, _) => keys::deleted_prefix(tenant),
            (false, Some(kind)) => keys::kind_prefix(tenant, kind.as_str()),
            (false, None) => keys::objects(tenant),
        };
        let mut start = prefix.clone();
        if let Some(after) = &query.after {
            start.extend_from_slice(after.as_bytes());
            start.push(0);
        }
        let mut out = Vec::new();
        for item in self
            .db
            .iterator(IteratorMode::From(&start, Direction::Forward))
        {
            let (key, value) = item?;
            if !key.starts_with(&prefix) || out.len() >= query.limit {
                break;
            }
            let id = String::from_utf8_lossy(&key[prefix.len()..]).into_owned();
            let object = if prefix.starts_with(b"o/") {
                serde_json::from_slice(&value).map_err(|e| corrupt(&id, &e.to_string()))?
            } else {
                match self.load(tenant, &id)? {
                    Some(o) => o,
                    None => continue,
                }
            };
            if query.deleted && query.kind.is_some_and(|k| k != object.kind) {
                continue;
            }
            if !query.deleted && query.kind.is_none() && object.is_deleted() {
                continue;
            }
            out.push(object);
        }
        Ok(out)
    }

    /// Content digest of a tenant (objects with links, in id order) and its object count.
    pub fn tenant_digest(&self, tenant: &str) -> Result<(String, u64), StoreError> {
        let mut digest = StateDigest::default();
        for (key, value) in self.scan(&keys::objects(tenant))? {
            let mut object: DirectoryObject = serde_json::from_slice(&value)
                .map_err(|e| corrupt(&String::from_utf8_lossy(&key), &e.to_string()))?;
            object.links = backtrack_domain::object::group_links(&self.links(tenant, &object.id)?);
            digest.add(&object);
        }
        let count = digest.objects();
        Ok((digest.finish(), count))
    }

    /// Number of live objects per kind in a tenant.
    pub fn counts(&self, tenant: &str) -> Result<BTreeMap<ObjectKind, u64>, StoreError> {
        let mut out = BTreeMap::new();
        for kind in ObjectKind::ALL {
            let n = self.scan(&keys::kind_prefix(tenant, kind.as_str()))?.len() as u64;
            if n > 0 {
                out.insert(kind, n);
            }
        }
        Ok(out)
    }

    /// A read view of one tenant for `decide`.
    pub fn view<'a>(&'a self, tenant: &'a str) -> TenantView<'a> {
        TenantView::new(self, tenant)
    }

    fn scan(&self, prefix: &[u8]) -> Result<Vec<Entry>, StoreError> {
        let mut out = Vec::new();
        for item in self
            .db
            .iterator(IteratorMode::From(prefix, Direction::Forward))
        {
            let (key, value) = item?;
            if !key.starts_with(prefix) {
                break;
            }
            out.push((key, value));
        }
        Ok(out)
    }
}

fn decode_targets(bytes: &[u8]) -> BTreeSet<String> {
    bytes
        .split(|b| *b == b'\n')
        .filter(|t| !t.is_empty())
        .map(|t| String::from_utf8_lossy(t).into_owned())
        .collect()
}

fn encode_head(kind: ObjectKind, deleted: bool) -> [u8; 2] {
    let index = ObjectKind::ALL.iter().position(|k| *k == kind).unwrap_or(0);
    [index as u8, u8::from(deleted)]
}

fn decode_head(bytes: &[u8]) -> Option<(ObjectKind, bool)> {
    match bytes {
        [index, deleted] => Some((*ObjectKind::ALL.get(usize::from(*index))?, *deleted == 1)),
        _ => None,
    }
}

fn unique_value(o: &DirectoryObject) -> Option<(&'static str, &str)> {
    let attr = schema(o.kind).unique?;
    o.attributes
        .get(attr)
        .and_then(|v| v.as_str())
        .map(|v| (attr, v))
}

fn to_json<T: Serialize>(value: &T) -> Vec<u8> {
    // Serialising our own plain structs cannot fail.
    serde_json::to_vec(value).unwrap_or_default()
}

fn corrupt(key: &str, reason: &str) -> StoreError {
    StoreError::Corrupt {
        key: key.to_string(),
        reason: reason.to_string(),
    }
}
