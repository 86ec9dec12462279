//! The projection's write path: [`DirectoryProjection::apply`] folds a run of events into
//! one serialized batch ([`SortedWrites`]) with the position it reaches.

use std::borrow::Cow;
use std::collections::hash_map::Entry as MapEntry;
use std::collections::{BTreeSet, HashMap};
use std::sync::atomic::Ordering;
use std::sync::PoisonError;

use backtrack_domain::event::{Change, Event};
use backtrack_domain::object::{DirectoryObject, Link};
use backtrack_domain::state::apply_without_links;
use backtrack_domain::ObjectKind;

use super::{
    decode_targets, encode_head, to_json, unique_value, DirectoryProjection, TenantRecord,
};
use crate::batch::SortedWrites;
use crate::keys;
use crate::StoreError;

/// Largest write buffer kept from one run for the next.
const SPARE_BYTES: usize = 64 * 1024 * 1024;

/// The table file a large run is written to before RocksDB takes it (in the projection's
/// folder; RocksDB moves it in).
pub(super) const INGEST_FILE: &str = "run-to-ingest.sst";

impl DirectoryProjection {
    /// Folds events given as (sequence, event) in ascending sequence order. Events at or
    /// below the current position are skipped, so re-delivery is harmless.
    pub fn apply(&self, events: &[(u64, Event)]) -> Result<(), StoreError> {
        let position = self.position()?;
        let mut writes = self.take_writes();
        // Objects touched in this run, by (tenant, id).
        let mut touched: HashMap<(&str, &str), Touched> = HashMap::new();
        // Link buckets touched in this run, by (tenant, id, relation, bucket), loaded on
        // first touch; targets borrow from the events where they can.
        let mut buckets: Buckets<'_> = HashMap::new();
        let mut last = position;
        for (seq, event) in events {
            if *seq <= last {
                continue;
            }
            last = *seq;
            let m = &event.meta;
            let tenant = m.tenant.as_str();
            if !m.mutation_id.is_empty() {
                writes.put_parts(
                    &keys::mutation_parts(tenant, &m.mutation_id),
                    &seq.to_be_bytes(),
                );
            }
            if let Change::TenantCreated { display_name } = &event.change {
                let record = TenantRecord {
                    id: m.tenant.clone(),
                    display_name: display_name.clone(),
                    created_at_ms: m.time_ms,
                    created_sequence: *seq,
                };
                writes.put(&keys::tenant(tenant), &to_json(&record));
                continue;
            }
            let Ok(kind) = m.kind.parse::<ObjectKind>() else {
                continue;
            };
            let id = m.object_id.as_str();
            let object = match touched.entry((tenant, id)) {
                MapEntry::Occupied(entry) => entry.into_mut(),
                MapEntry::Vacant(entry) => {
                    // A creation's object is absent before it: the log takes a creation
                    // only on a subject that is new or purged (its expected last sequence).
                    let stored = match &event.change {
                        Change::Created { .. } => None,
                        _ => self.load(tenant, id)?,
                    };
                    entry.insert(Touched {
                        before: stored
                            .as_ref()
                            .map(|o| index_records(tenant, o))
                            .unwrap_or_default(),
                        had_links: stored.is_some(),
                        current: stored,
                        last_seq: 0,
                    })
                }
            };
            object.last_seq = *seq;
            // An object absent before this run has no stored links: a purge removes every
            // link of its object.
            let stored_links = object.had_links;
            match &event.change {
                Change::Created { links, .. } | Change::LinksAdded(links) => {
                    for l in links {
                        self.bucket(&mut buckets, tenant, id, l, stored_links)?
                            .insert(Cow::Borrowed(l.target_id.as_str()));
                        writes.put_parts(
                            &keys::reverse_parts(tenant, &l.target_id, id, &l.relation),
                            b"",
                        );
                    }
                }
                Change::LinksRemoved(links) | Change::HardDeleted { links, .. } => {
                    for l in links {
                        self.bucket(&mut buckets, tenant, id, l, stored_links)?
                            .remove(l.target_id.as_str());
                        writes.delete_parts(&keys::reverse_parts(
                            tenant,
                            &l.target_id,
                            id,
                            &l.relation,
                        ));
                    }
                }
                _ => {}
            }
            // Links live in their own keys; fold only attributes and lifecycle here.
            object.current = apply_without_links(
                object.current.take(),
                kind,
                id,
                &event.change,
                m.time_ms,
                *seq,
            );
        }
        for ((tenant, id), object) in touched {
            let after = object
                .current
                .as_ref()
                .map(|o| index_records(tenant, o))
                .unwrap_or_default();
            // Only what changed: an attribute change rewrites the object, not its indexes.
            for (key, _) in &object.before {
                if !after.iter().any(|(k, _)| k == key) {
                    writes.delete(key);
                }
            }
            for record in &after {
                if !object.before.contains(record) {
                    writes.put(&record.0, &record.1);
                }
            }
            match &object.current {
                Some(o) => writes.put_parts(&keys::object_parts(tenant, id), &to_json(o)),
                None => {
                    // A purge's sequence stays behind the object; a later re-creation
                    // leaves it there (`subject_sequence` reads the object first), which
                    // spares every run a delete per object.
                    writes.put_parts(
                        &keys::gone_parts(tenant, id),
                        &object.last_seq.to_be_bytes(),
                    );
                    writes.delete_parts(&keys::head_parts(tenant, id));
                    writes.delete_parts(&keys::object_parts(tenant, id));
                }
            }
        }
        let mut encoded = Vec::new();
        for ((tenant, id, relation, bucket), targets) in buckets {
            let mut token = [0; 4];
            let key = keys::link_bucket_parts(tenant, id, relation, bucket.encode_utf8(&mut token));
            if targets.is_empty() {
                writes.delete_parts(&key);
            } else {
                encoded.clear();
                encode_targets(&mut encoded, targets.iter().map(|t| t.as_ref()));
                writes.put_parts(&key, &encoded);
            }
        }
        if last > position {
            writes.put(keys::POSITION, &last.to_be_bytes());
        }
        // No write-ahead log: the projection is rebuilt from the event log, and the new
        // position is in the same batch as the state it describes, so after a crash the
        // last flushed state and its position agree and the projector replays the rest.
        let ingest_from = self.ingest_writes.load(Ordering::Relaxed);
        let written = if writes.len() >= ingest_from.max(1) {
            let file = self.db.path().join(INGEST_FILE);
            // Left behind by a crash between writing and ingesting; its run was not taken.
            let _ = std::fs::remove_file(&file);
            writes.ingest(&self.db, &self.options, &file)
        } else {
            writes.write(&self.db)
        };
        self.keep_writes(writes);
        written
    }

    /// The write buffer of the last run, emptied, or a new one.
    fn take_writes(&self) -> SortedWrites {
        self.spare
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .take()
            .unwrap_or_default()
    }

    /// Keeps a run's write buffer for the next run (a replay otherwise maps and zeroes
    /// fresh memory for every run), unless an unusually large run grew it past
    /// [`SPARE_BYTES`].
    fn keep_writes(&self, mut writes: SortedWrites) {
        if writes.capacity_bytes() <= SPARE_BYTES {
            writes.clear();
            *self.spare.lock().unwrap_or_else(PoisonError::into_inner) = Some(writes);
        }
    }

    /// The link bucket holding `link`, loaded from RocksDB the first time this run needs it
    /// (empty without a read when the object has no `stored` links).
    fn bucket<'b, 'e>(
        &self,
        buckets: &'b mut Buckets<'e>,
        tenant: &'e str,
        id: &'e str,
        link: &'e Link,
        stored: bool,
    ) -> Result<&'b mut BTreeSet<Cow<'e, str>>, StoreError> {
        let bucket = keys::bucket_token(&link.target_id);
        match buckets.entry((tenant, id, link.relation.as_str(), bucket)) {
            MapEntry::Occupied(entry) => Ok(entry.into_mut()),
            MapEntry::Vacant(entry) => {
                let mut targets = BTreeSet::new();
                if stored {
                    let key = keys::link_bucket(tenant, id, &link.relation, &link.target_id);
                    if let Some(bytes) = self.db.get_pinned(&key)? {
                        targets.extend(decode_targets(&bytes).into_iter().map(Cow::Owned));
                    }
                }
                Ok(entry.insert(targets))
            }
        }
    }
}

/// Link targets as stored in a bucket: sorted, `\n`-separated.
fn encode_targets<'t>(out: &mut Vec<u8>, targets: impl Iterator<Item = &'t str>) {
    for (i, t) in targets.enumerate() {
        if i > 0 {
            out.push(b'\n');
        }
        out.extend_from_slice(t.as_bytes());
    }
}

/// The link buckets one run touches, by (tenant, id, relation, bucket token).
type Buckets<'e> = HashMap<(&'e str, &'e str, &'e str, char), BTreeSet<Cow<'e, str>>>;

/// An object one run touches.
struct Touched {
    /// Its head and index records before the run (none: absent).
    before: Vec<(Vec<u8>, Vec<u8>)>,
    /// Whether it existed before the run (and so may have stored links).
    had_links: bool,
    /// Its value as the run leaves it (links apart).
    current: Option<DirectoryObject>,
    /// Sequence of the run's last event on it (its subject's last message).
    last_seq: u64,
}

/// The head and index records (key, value) an object has: its head; live, its kind index
/// and unique value; in the recycle bin, its recycle-bin entry.
fn index_records(tenant: &str, o: &DirectoryObject) -> Vec<(Vec<u8>, Vec<u8>)> {
    let mut out = Vec::with_capacity(3);
    out.push((
        keys::head(tenant, &o.id),
        encode_head(o.kind, o.is_deleted()).to_vec(),
    ));
    if o.is_deleted() {
        out.push((keys::deleted(tenant, &o.id), Vec::new()));
    } else {
        out.push((keys::by_kind(tenant, o.kind.as_str(), &o.id), Vec::new()));
        if let Some((attr, value)) = unique_value(o) {
            out.push((
                keys::unique(tenant, o.kind.as_str(), attr, value),
                o.id.as_bytes().to_vec(),
            ));
        }
    }
    out
}
