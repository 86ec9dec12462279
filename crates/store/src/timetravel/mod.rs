//! The time-travel store: every version of every object, link by link, in RocksDB.
//!
//! [`TimeTravelStore::apply`] folds a run of events (in stream order) in one write batch
//! together with the new position and each touched tenant's [`TenantSummary`]. An object
//! version is written per event (attributes only); links are versioned one target at a
//! time, so a membership change writes one key whatever the group's size. Reading the
//! state at a sequence is a seek per object (see [`query`]); the objects changed between
//! two sequences are a range scan of the change index.
//!
//! Modules: [`keys`] (the layout), [`summary`] (counts and set hash), [`query`] (reads),
//! [`checkpoint`] (consistent, verified copies for fast rebuilds).

pub mod checkpoint;
pub mod keys;
pub mod query;
pub mod summary;
mod two_point;
mod version;

use std::collections::{BTreeMap, HashMap};
use std::path::Path;
use std::sync::{Arc, Mutex, MutexGuard};

use backtrack_domain::digest::{link_fact, object_fact, tagged};
use backtrack_domain::event::{Change, Event};
use backtrack_domain::object::DirectoryObject;
use backtrack_domain::state::{apply_without_links, created_object};
use backtrack_domain::ObjectKind;
use prost::Message;
use rocksdb::{Options, SliceTransform, DB};

use crate::batch::SortedWrites;
use crate::directory::TenantRecord;
use crate::StoreError;
pub use query::TwoPointReader;
pub use summary::{KindCount, TenantSummary};

/// Layout version of the store; a store written with another one is rebuilt. Version 3:
/// the summaries' set hashes expand facts with BLAKE3 (`Expansion::Blake3`). Version 4:
/// a version's value holds its event, and there are no separate history keys (see
/// `version`). Version 5: one change-index key per tenant per run of events.
pub const LAYOUT: &str = "5";
const FORMAT_VERSION: &[u8] = LAYOUT.as_bytes();
/// The most buffer memory a run's writes may hold to be kept for the next run.
const SPARE_BYTES: usize = 64 * 1024 * 1024;

/// Says on stderr why a store is being rebuilt (the store crate logs nothing else).
fn tracing_free_warning(path: &Path) {
    eprintln!(
        "backtrack: the time-travel store in {} has an older layout; rebuilding it from the log",
        path.display()
    );
}

/// The object a key belongs to: `V/<t>/<id>\0` (and the `E` keys of older layouts) through
/// the NUL, or `L/<t>/<id>/` through the third `/`. Other keys have no prefix.
pub(crate) fn object_prefix(key: &[u8]) -> &[u8] {
    match key.first() {
        Some(b'V' | b'E') => match key.iter().position(|b| *b == 0) {
            Some(nul) => &key[..=nul],
            None => key,
        },
        Some(b'L') => match key.iter().enumerate().filter(|(_, b)| **b == b'/').nth(2) {
            Some((slash, _)) => &key[..=slash],
            None => key,
        },
        _ => key,
    }
}

/// Whether [`object_prefix`] applies to `key`.
pub(crate) fn object_prefix_in_domain(key: &[u8]) -> bool {
    match key.first() {
        Some(b'V' | b'E') => key.contains(&0),
        Some(b'L') => key.iter().filter(|b| **b == b'/').count() >= 3,
        _ => false,
    }
}

/// An event as the store takes it: stream sequence and stream time.
#[derive(Debug, Clone)]
pub struct SequencedEvent {
    pub sequence: u64,
    pub published_ms: i64,
    pub event: Event,
    /// The event's protobuf encoding as the log stores it, when the caller has it; the
    /// history keeps these bytes instead of encoding the event again.
    pub payload: Option<bytes::Bytes>,
}

/// A run of events folded into writes, not yet written: [`TimeTravelStore::prepare`]
/// makes it, [`TimeTravelStore::commit`] writes it.
pub struct Prepared {
    /// The position the run was folded on.
    base: u64,
    writes: SortedWrites,
    carry: Arc<Carry>,
}

impl Prepared {
    /// What the next run's preparation starts from.
    pub fn carry(&self) -> Arc<Carry> {
        Arc::clone(&self.carry)
    }

    /// The position once this run is written.
    pub fn position(&self) -> u64 {
        self.carry.position
    }
}

impl std::fmt::Debug for Prepared {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Prepared")
            .field("base", &self.base)
            .field("position", &self.carry.position)
            .field("writes", &self.writes.len())
            .finish_non_exhaustive()
    }
}

/// Where a prepared run leaves the store: its position and stream time, the summaries
/// of the tenants it touched and the objects it changed (`None`: absent).
#[derive(Debug)]
pub struct Carry {
    position: u64,
    position_ms: i64,
    summaries: HashMap<String, TenantSummary>,
    objects: HashMap<(String, String), Option<DirectoryObject>>,
}

/// What the store has applied: its position and the summaries of every tenant there.
#[derive(Debug, Default)]
pub(crate) struct Applied {
    pub(crate) position: u64,
    /// Stream time of the event at `position`.
    pub(crate) position_ms: i64,
    pub(crate) summaries: HashMap<String, TenantSummary>,
}

/// RocksDB-backed versions of every tenant's objects and links.
pub struct TimeTravelStore {
    db: DB,
    applied: Mutex<Applied>,
    /// The buffers of written runs, emptied, for the runs prepared next: a rebuild
    /// otherwise maps fresh memory (and the kernel zeroes it) for every run.
    spare: Mutex<Vec<SortedWrites>>,
}

impl std::fmt::Debug for TimeTravelStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TimeTravelStore").finish_non_exhaustive()
    }
}

impl TimeTravelStore {
    /// Opens (or creates) the store in `path` and loads every tenant's summary.
    pub fn open(path: &Path) -> Result<Self, StoreError> {
        let mut opts = Options::default();
        opts.create_if_missing(true);
        opts.set_write_buffer_size(64 * 1024 * 1024);
        opts.set_env(&crate::background_env()?);
        opts.increase_parallelism(2);
        // Reads seek one object's keys: prefix bloom filters (the prefix is the object, see
        // `object_prefix`) let a seek skip every file that holds nothing of it.
        opts.set_prefix_extractor(SliceTransform::create(
            "backtrack.timetravel.object.v1",
            object_prefix,
            Some(object_prefix_in_domain),
        ));
        opts.set_memtable_prefix_bloom_ratio(0.1);
        opts.set_block_based_table_factory(&crate::table_options()?);
        let mut db = DB::open(&opts, path)?;
        if db.get_pinned(keys::FORMAT)?.as_deref() != Some(FORMAT_VERSION) {
            // Written by another layout (or empty): start over; the log rebuilds it all.
            if read_u64(&db, keys::POSITION)?.is_some() {
                tracing_free_warning(path);
                drop(db);
                DB::destroy(&opts, path)?;
                db = DB::open(&opts, path)?;
            }
            db.put(keys::FORMAT, FORMAT_VERSION)?;
        }
        let mut applied = Applied {
            position: read_u64(&db, keys::POSITION)?.unwrap_or(0),
            ..Applied::default()
        };
        for (key, value) in query::scan(&db, b"A/")? {
            let tenant = String::from_utf8_lossy(&key[2..]).into_owned();
            let summary =
                TenantSummary::decode(&value).ok_or_else(|| corrupt(&key, "bad tenant summary"))?;
            applied.summaries.insert(tenant, summary);
        }
        if let Some((ms, _)) = query::newest_instant(&db)? {
            applied.position_ms = ms;
        }
        Ok(Self {
            db,
            applied: Mutex::new(applied),
            spare: Mutex::default(),
        })
    }

    /// The last stream sequence applied (0 = none).
    pub fn position(&self) -> u64 {
        self.lock().position
    }

    /// The position, its stream time, and one tenant's summary there, read together.
    pub fn tenant_summary(&self, tenant: &str) -> (u64, i64, TenantSummary) {
        let applied = self.lock();
        (
            applied.position,
            applied.position_ms,
            applied.summaries.get(tenant).cloned().unwrap_or_default(),
        )
    }

    pub(crate) fn lock(&self) -> MutexGuard<'_, Applied> {
        // A panic while holding the lock leaves a consistent value (it is replaced whole).
        self.applied.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Folds events in ascending sequence order; events at or below the position are
    /// skipped, so re-delivery is harmless. The same as [`TimeTravelStore::prepare`]
    /// followed by [`TimeTravelStore::commit`].
    pub fn apply(&self, events: &[SequencedEvent]) -> Result<(), StoreError> {
        match self.prepare(events.to_vec(), None)? {
            Some(prepared) => self.commit(prepared),
            None => Ok(()),
        }
    }

    /// Folds a run of events into the writes that store it, without writing them: a
    /// follower far behind the log prepares the next run while the previous one is being
    /// written (see [`TimeTravelStore::commit`]), so the fold and RocksDB's inserts run on
    /// two cores.
    ///
    /// `after` is the run prepared just before this one when it may not be committed yet:
    /// the fold then starts from its position, summaries and objects instead of the
    /// store's. Events at or below the starting position are skipped; `None` when no event
    /// is left.
    pub fn prepare(
        &self,
        events: Vec<SequencedEvent>,
        after: Option<&Carry>,
    ) -> Result<Option<Prepared>, StoreError> {
        let (base, base_ms, mut summaries) = match after {
            Some(carry) => (carry.position, carry.position_ms, carry.summaries.clone()),
            None => {
                let applied = self.lock();
                (applied.position, applied.position_ms, HashMap::new())
            }
        };
        let mut batch = self
            .spare
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .pop()
            .unwrap_or_default();
        let mut objects: HashMap<(String, String), Option<DirectoryObject>> = HashMap::new();
        let mut instants: BTreeMap<i64, u64> = BTreeMap::new();
        // The run's change index, per tenant (see `keys::changes_up_to`).
        let mut changes: HashMap<String, Vec<u8>> = HashMap::new();
        let mut last = base;
        let mut last_ms = base_ms;
        for mut stored in events {
            let (seq, event) = (stored.sequence, &stored.event);
            if seq <= last {
                continue;
            }
            last = seq;
            last_ms = stored.published_ms;
            instants.insert(stored.published_ms, seq);
            let m = &event.meta;
            if let Change::TenantCreated { display_name } = &event.change {
                let record = TenantRecord {
                    id: m.tenant.clone(),
                    display_name: display_name.clone(),
                    created_at_ms: m.time_ms,
                    created_sequence: seq,
                };
                batch.put(
                    &keys::tenant(&m.tenant),
                    &serde_json::to_vec(&record).unwrap_or_default(),
                );
                continue;
            }
            let Ok(kind) = m.kind.parse::<ObjectKind>() else {
                continue;
            };
            let key = (m.tenant.clone(), m.object_id.clone());
            if !objects.contains_key(&key) {
                // A creation's object is absent before it: the log takes a creation only
                // on a subject that is new or purged (its expected last sequence), so the
                // lookup is needed only for the other changes. An object the run before
                // changed is as that run left it (its writes may still be on their way);
                // any other is read at the starting position, not the newest key, so a
                // re-applied run is right even if a crash left some of its keys behind.
                let current = match (&event.change, after.and_then(|c| c.objects.get(&key))) {
                    (Change::Created { .. }, _) => None,
                    (_, Some(carried)) => carried.clone(),
                    _ => query::version_at(&self.db, &m.tenant, &m.object_id, base)?,
                };
                objects.insert(key.clone(), current);
            }
            if !summaries.contains_key(&m.tenant) {
                let summary = self
                    .lock()
                    .summaries
                    .get(&m.tenant)
                    .cloned()
                    .unwrap_or_default();
                summaries.insert(m.tenant.clone(), summary);
            }
            let (Some(slot), Some(summary)) = (objects.get_mut(&key), summaries.get_mut(&m.tenant))
            else {
                continue;
            };
            let index = match changes.get_mut(&m.tenant) {
                Some(index) => index,
                None => changes.entry(m.tenant.clone()).or_default(),
            };
            keys::encode_change(index, seq, kind_index(kind), &m.object_id);
            fold(&mut batch, summary, slot, kind, &mut stored);
        }
        if last == base {
            return Ok(None);
        }
        for (ms, seq) in &instants {
            batch.put(&keys::instant(*ms, *seq), &[]);
        }
        for (tenant, summary) in &summaries {
            batch.put(&keys::summary(tenant), &summary.encode());
        }
        for (tenant, index) in changes {
            batch.put(&keys::changes_up_to(&tenant, last), &index);
        }
        batch.put(keys::POSITION, &last.to_be_bytes());
        Ok(Some(Prepared {
            base,
            writes: batch,
            carry: Arc::new(Carry {
                position: last,
                position_ms: last_ms,
                summaries,
                objects,
            }),
        }))
    }

    /// Writes a prepared run in one batch with its position and the summaries of the
    /// tenants it touched. Fails without writing when the store's position is not the
    /// one the run was prepared on (a run was skipped or written twice).
    pub fn commit(&self, prepared: Prepared) -> Result<(), StoreError> {
        let mut applied = self.lock();
        if applied.position != prepared.base {
            return Err(StoreError::OutOfOrder {
                position: applied.position,
                prepared_on: prepared.base,
            });
        }
        let Prepared {
            mut writes, carry, ..
        } = prepared;
        writes.write(&self.db)?;
        self.keep(writes);
        applied.position = carry.position;
        applied.position_ms = carry.position_ms;
        applied.summaries.extend(
            carry
                .summaries
                .iter()
                .map(|(tenant, summary)| (tenant.clone(), summary.clone())),
        );
        Ok(())
    }

    /// Keeps a written run's buffers for a later run: two (one run is prepared while
    /// another is written), unless they grew past [`SPARE_BYTES`] for an unusually large
    /// run.
    fn keep(&self, mut writes: SortedWrites) {
        if writes.capacity_bytes() > SPARE_BYTES {
            return;
        }
        writes.clear();
        let mut spare = self.spare.lock().unwrap_or_else(|e| e.into_inner());
        if spare.len() < 2 {
            spare.push(writes);
        }
    }

    /// RocksDB's write pressure right now, for a log line when applying is slow: the rate
    /// writes are held to (0 = not delayed), whether they are stopped, level-0 files, and
    /// the bytes compaction is behind by.
    pub fn write_pressure(&self) -> String {
        let property = |name: &str| {
            self.db
                .property_int_value(name)
                .ok()
                .flatten()
                .map_or_else(|| "?".to_string(), |v| v.to_string())
        };
        format!(
            "delayed write rate {} B/s, writes stopped {}, level-0 files {}, pending compaction {} B",
            property("rocksdb.actual-delayed-write-rate"),
            property("rocksdb.is-write-stopped"),
            property("rocksdb.num-files-at-level0"),
            property("rocksdb.estimate-pending-compaction-bytes"),
        )
    }

    /// Whether RocksDB has no flush or compaction running or due: the store's files are
    /// then what it keeps, without the inputs of a compaction in progress.
    pub fn background_work_settled(&self) -> bool {
        let zero = |name: &str| self.db.property_int_value(name).ok().flatten() == Some(0);
        zero("rocksdb.compaction-pending")
            && zero("rocksdb.num-running-compactions")
            && zero("rocksdb.num-running-flushes")
            && zero("rocksdb.mem-table-flush-pending")
    }

    /// Flushes memtables so the state survives a crash of this process.
    pub fn flush(&self) -> Result<(), StoreError> {
        Ok(self.db.flush()?)
    }

    pub(crate) fn db(&self) -> &DB {
        &self.db
    }
}

/// Applies one event to an object slot, writing its new version, its link versions and
/// its facts' change to the tenant's summary. A creation's attributes are moved out of
/// the event into the object.
fn fold(
    batch: &mut SortedWrites,
    summary: &mut TenantSummary,
    slot: &mut Option<DirectoryObject>,
    kind: ObjectKind,
    stored: &mut SequencedEvent,
) {
    let (seq, m) = (stored.sequence, &stored.event.meta);
    let (tenant, id) = (m.tenant.as_str(), m.object_id.as_str());
    let fact_changes = !matches!(
        stored.event.change,
        Change::LinksAdded(_) | Change::LinksRemoved(_)
    );
    if fact_changes {
        if let Some(old) = slot.as_ref() {
            summary.count(old, false);
            summary.hash.remove(&fact_of(old));
        }
    }
    let mut link_change = |links: &[backtrack_domain::Link], add: bool| {
        for l in links {
            batch.put(
                &keys::link(tenant, id, &l.relation, &l.target_id, seq),
                &[u8::from(add)],
            );
            let fact = tagged(b'l', &link_fact(id, &l.relation, &l.target_id));
            if add {
                summary.hash.insert(&fact);
            } else {
                summary.hash.remove(&fact);
            }
        }
    };
    match &stored.event.change {
        Change::Created { links, .. } | Change::LinksAdded(links) => link_change(links, true),
        Change::LinksRemoved(links) | Change::HardDeleted { links, .. } => {
            link_change(links, false);
        }
        _ => {}
    }
    // Versions hold attributes only: links are versioned above, one key per target. The
    // version's value holds the event too (it is the object's history); a creation's
    // object is rebuilt from the event when read instead of being stored twice.
    let created = slot.is_none() && matches!(stored.event.change, Change::Created { .. });
    let encoded;
    let event: &[u8] = match &stored.payload {
        Some(payload) => payload,
        None => {
            encoded = backtrack_proto::convert::event_to_proto(&stored.event).encode_to_vec();
            &encoded
        }
    };
    *slot = match &mut stored.event.change {
        Change::Created { attributes, .. } => Some(created_object(
            kind,
            id,
            std::mem::take(attributes),
            m.time_ms,
            seq,
        )),
        change => apply_without_links(slot.take(), kind, id, change, m.time_ms, seq),
    };
    let value = match slot.as_ref() {
        Some(new) => {
            if fact_changes {
                summary.count(new, true);
                summary.hash.insert(&fact_of(new));
            }
            if created {
                version::encode(version::CREATED, stored.published_ms, event, None)
            } else {
                let object = serde_json::to_vec(new).unwrap_or_default();
                version::encode(version::STORED, stored.published_ms, event, Some(&object))
            }
        }
        None => version::encode(version::ABSENT, stored.published_ms, event, None),
    };
    batch.put(&keys::version(tenant, id, seq), &value);
}

/// The tagged object fact the set hash holds for an object (links apart).
fn fact_of(object: &DirectoryObject) -> Vec<u8> {
    tagged(
        b'o',
        &object_fact(
            &object.id,
            object.kind.as_str(),
            &object.attributes,
            object.deleted_at_ms,
        ),
    )
}

pub(crate) fn kind_index(kind: ObjectKind) -> u8 {
    ObjectKind::ALL.iter().position(|k| *k == kind).unwrap_or(0) as u8
}

fn read_u64(db: &DB, key: &[u8]) -> Result<Option<u64>, StoreError> {
    match db.get_pinned(key)? {
        Some(v) => Ok(Some(u64::from_be_bytes(
            v.as_ref()
                .try_into()
                .map_err(|_| corrupt(key, "not a u64"))?,
        ))),
        None => Ok(None),
    }
}

pub(crate) fn corrupt(key: &[u8], reason: &str) -> StoreError {
    StoreError::Corrupt {
        key: String::from_utf8_lossy(key).into_owned(),
        reason: reason.to_string(),
    }
}
