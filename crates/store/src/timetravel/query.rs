//! Reads of the time-travel store: an object, a relation's targets, a tenant's objects,
//! an object's history and the changes between two sequences — each at any sequence.

use backtrack_domain::event::Event;
use backtrack_domain::object::{group_links, DirectoryObject, Link};
use backtrack_domain::ObjectKind;
use rocksdb::{Direction, IteratorMode, ReadOptions, DB};

pub use super::two_point::TwoPointReader;
use super::{corrupt, keys, version, TimeTravelStore};
use crate::directory::TenantRecord;
use crate::StoreError;

/// A raw key/value pair.
pub(crate) type Entry = (Box<[u8]>, Box<[u8]>);
/// A raw key/value pair, owned.
pub type RawEntry = (Vec<u8>, Vec<u8>);

/// One page of objects at a sequence.
#[derive(Debug, Clone, Default)]
pub struct ObjectPage {
    pub objects: Vec<DirectoryObject>,
    /// The id to pass as `after` for the next page; `None` on the last page.
    pub next_after: Option<String>,
}

/// Which objects [`TimeTravelStore::list_at`] returns.
#[derive(Debug, Clone, Default)]
pub struct ListAt {
    pub sequence: u64,
    pub kind: Option<ObjectKind>,
    pub include_deleted: bool,
    /// Start after this id.
    pub after: Option<String>,
    pub limit: usize,
    /// Fill in each object's links (one more seek per object).
    pub with_links: bool,
}

/// One entry of an object's history.
#[derive(Debug, Clone, PartialEq)]
pub struct HistoryEntry {
    pub sequence: u64,
    /// Stream time of the event.
    pub published_ms: i64,
    pub event: Event,
}

/// A change of a link that points at an object: it was added to (or removed from) a
/// relation of another object, e.g. made a member of a group.
#[derive(Debug, Clone, PartialEq)]
pub struct IncomingLinkChange {
    pub sequence: u64,
    /// Stream time of the event.
    pub published_ms: i64,
    /// The object that holds the link (the group), as it was after the change.
    pub holder: DirectoryObject,
    pub relation: String,
    pub added: bool,
    /// The holder's event that made the change (who, from where, which job).
    pub event: Event,
}

/// An object that changed at a sequence.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChangedObject {
    pub sequence: u64,
    pub id: String,
    pub kind: ObjectKind,
}

impl TimeTravelStore {
    /// A reader of the tenant's objects at two sequences (see [`TwoPointReader`]).
    pub fn two_point_reader(&self, tenant: &str) -> TwoPointReader<'_> {
        TwoPointReader::new(self.db(), tenant)
    }

    /// The object as it was right after `sequence` was applied, with its links.
    pub fn object_at(
        &self,
        tenant: &str,
        id: &str,
        sequence: u64,
    ) -> Result<Option<DirectoryObject>, StoreError> {
        let Some(mut object) = self.object_at_without_links(tenant, id, sequence)? else {
            return Ok(None);
        };
        object.links = group_links(&self.links_at(tenant, id, None, sequence)?);
        Ok(Some(object))
    }

    /// [`Self::object_at`] without reading its links: one seek, for callers that need
    /// only its kind, attributes or lifecycle (a group's members by name).
    pub fn object_at_without_links(
        &self,
        tenant: &str,
        id: &str,
        sequence: u64,
    ) -> Result<Option<DirectoryObject>, StoreError> {
        version_at(self.db(), tenant, id, sequence)
    }

    /// The links an object held at `sequence` (one relation, or all), sorted.
    pub fn links_at(
        &self,
        tenant: &str,
        id: &str,
        relation: Option<&str>,
        sequence: u64,
    ) -> Result<Vec<Link>, StoreError> {
        let prefix = match relation {
            Some(r) => keys::links_of_relation(tenant, id, r),
            None => keys::links_of(tenant, id),
        };
        let base = keys::links_of(tenant, id);
        let mut out = Vec::new();
        let mut decided: Option<Box<[u8]>> = None;
        for item in self.db().iterator_opt(
            IteratorMode::From(&prefix, Direction::Forward),
            within_prefix(&prefix),
        ) {
            let (key, value) = item?;
            if !key.starts_with(&prefix) {
                break;
            }
            let (text, inverted) =
                keys::split_versioned(&key, &base).ok_or_else(|| corrupt(&key, "bad link key"))?;
            if decided.as_deref() == Some(text) || !inverted > sequence {
                continue;
            }
            decided = Some(text.into());
            if value.first() == Some(&1) {
                let text = String::from_utf8_lossy(text);
                if let Some((relation, target)) = text.split_once('/') {
                    out.push(Link::new(relation, target));
                }
            }
        }
        out.sort();
        Ok(out)
    }

    /// A page of the tenant's objects as they were at `query.sequence`, in id order.
    pub fn list_at(&self, tenant: &str, query: &ListAt) -> Result<ObjectPage, StoreError> {
        let mut page = ObjectPage::default();
        let limit = query.limit.max(1);
        let mut more = false;
        self.for_each_version_at(tenant, query.sequence, query.after.as_deref(), |object| {
            if query.kind.is_some_and(|k| k != object.kind)
                || (object.is_deleted() && !query.include_deleted)
            {
                return Ok(true);
            }
            if page.objects.len() == limit {
                more = true;
                return Ok(false);
            }
            page.objects.push(object);
            Ok(true)
        })?;
        if query.with_links {
            for object in &mut page.objects {
                object.links =
                    group_links(&self.links_at(tenant, &object.id, None, query.sequence)?);
            }
        }
        if more {
            page.next_after = page.objects.last().map(|o| o.id.clone());
        }
        Ok(page)
    }

    /// Calls `f` with every object (without links) that existed at `sequence`, in id
    /// order, starting after `after`; stops when `f` returns `Ok(false)`.
    pub fn for_each_version_at(
        &self,
        tenant: &str,
        sequence: u64,
        after: Option<&str>,
        mut f: impl FnMut(DirectoryObject) -> Result<bool, StoreError>,
    ) -> Result<(), StoreError> {
        let prefix = keys::versions_of_tenant(tenant);
        let mut it = self.db().raw_iterator_opt(across_prefixes(&prefix));
        match after {
            Some(after) => it.seek(past_versions(tenant, after)),
            None => it.seek(&prefix),
        }
        while it.valid() {
            let Some(key) = it.key() else { break };
            if !key.starts_with(&prefix) {
                break;
            }
            let (id, inverted) = keys::split_versioned(key, &prefix)
                .ok_or_else(|| corrupt(key, "bad version key"))?;
            let id = String::from_utf8_lossy(id).into_owned();
            if !inverted > sequence {
                // Newer than wanted: jump to the newest version at or before `sequence`.
                it.seek(keys::version(tenant, &id, sequence));
                continue;
            }
            let value = it.value().unwrap_or_default();
            if let Some(object) = version::object(key, value, !inverted)? {
                if !f(object)? {
                    return Ok(());
                }
            }
            it.seek(past_versions(tenant, &id));
        }
        it.status()?;
        Ok(())
    }

    /// Every event of one object, oldest first: the events its versions hold.
    pub fn history(&self, tenant: &str, id: &str) -> Result<Vec<HistoryEntry>, StoreError> {
        let prefix = keys::versions(tenant, id);
        let mut out = Vec::new();
        // Versions come newest first.
        for (key, value) in scan(self.db(), &prefix)?.into_iter().rev() {
            let sequence = version_sequence(&key, &prefix)?;
            let parts = version::parts(&key, &value)?;
            out.push(HistoryEntry {
                sequence,
                published_ms: parts.published_ms,
                event: version::event(&key, &parts)?,
            });
        }
        Ok(out)
    }

    /// The events of one object after sequence `after` up to `upto`, oldest first: reads
    /// only the versions in that window (an object's versions are stored newest first).
    pub fn history_between(
        &self,
        tenant: &str,
        id: &str,
        after: u64,
        upto: u64,
    ) -> Result<Vec<HistoryEntry>, StoreError> {
        let prefix = keys::versions(tenant, id);
        let mut it = self.db().raw_iterator_opt(within_prefix(&prefix));
        it.seek(keys::version(tenant, id, upto));
        let mut out = Vec::new();
        while let (Some(key), Some(value)) = (it.key(), it.value()) {
            if !key.starts_with(&prefix) {
                break;
            }
            let sequence = version_sequence(key, &prefix)?;
            if sequence <= after {
                break;
            }
            let parts = version::parts(key, value)?;
            out.push(HistoryEntry {
                sequence,
                published_ms: parts.published_ms,
                event: version::event(key, &parts)?,
            });
            it.next();
        }
        it.status()?;
        out.reverse();
        Ok(out)
    }

    /// Every change of a link pointing at `target` (memberships, ownerships, manager of
    /// ...), oldest first. The store keeps links by the object that holds them, so this
    /// reads every link key of the tenant once: its cost grows with the tenant's links.
    pub fn incoming_link_history(
        &self,
        tenant: &str,
        target: &str,
    ) -> Result<Vec<IncomingLinkChange>, StoreError> {
        let prefix = keys::links_of_tenant(tenant);
        // (holder, relation, sequence, added) of each change pointing at `target`.
        let mut found: Vec<(String, String, u64, bool)> = Vec::new();
        for item in self.db().iterator_opt(
            IteratorMode::From(&prefix, Direction::Forward),
            across_prefixes(&prefix),
        ) {
            let (key, value) = item?;
            if !key.starts_with(&prefix) {
                break;
            }
            // `<holder>/<relation>/<target>\0` and the inverted sequence.
            let Some((text, inverted)) = keys::split_versioned(&key, &prefix) else {
                return Err(corrupt(&key, "bad link key"));
            };
            let sequence = !inverted;
            let mut parts = text.splitn(3, |b| *b == b'/');
            let (Some(holder), Some(relation), Some(to)) =
                (parts.next(), parts.next(), parts.next())
            else {
                return Err(corrupt(&key, "bad link key"));
            };
            if to == target.as_bytes() {
                found.push((
                    String::from_utf8_lossy(holder).into_owned(),
                    String::from_utf8_lossy(relation).into_owned(),
                    sequence,
                    value.first() == Some(&1),
                ));
            }
        }
        found.sort_by_key(|(_, _, sequence, _)| *sequence);
        let mut out = Vec::with_capacity(found.len());
        for (holder, relation, sequence, added) in found {
            let key = keys::version(tenant, &holder, sequence);
            let Some(value) = self.db().get_pinned(&key)? else {
                return Err(corrupt(&key, "a link change without its event"));
            };
            let parts = version::parts(&key, &value)?;
            let event = version::event(&key, &parts)?;
            // A hard delete leaves no object from its sequence on: the holder is then the
            // object as the delete found it.
            let object = match version_at(self.db(), tenant, &holder, sequence)? {
                Some(object) => Some(object),
                None => version_at(self.db(), tenant, &holder, sequence.saturating_sub(1))?,
            };
            let Some(object) = object else {
                return Err(corrupt(&key, "a link change without its object"));
            };
            out.push(IncomingLinkChange {
                sequence,
                published_ms: parts.published_ms,
                holder: object,
                relation,
                added,
                event,
            });
        }
        Ok(out)
    }

    /// Objects changed after `from` up to and including `to`, in sequence order. Each
    /// `C` key holds one run's changes and is named by the run's last sequence: the scan
    /// starts at the first run that ends after `from` and stops after the first one that
    /// reaches `to`.
    pub fn changed_between(
        &self,
        tenant: &str,
        from: u64,
        to: u64,
    ) -> Result<Vec<ChangedObject>, StoreError> {
        let prefix = keys::changes(tenant);
        let start = keys::changes_up_to(tenant, from.saturating_add(1));
        let mut out = Vec::new();
        for item in self.db().iterator_opt(
            IteratorMode::From(&start, Direction::Forward),
            across_prefixes(&prefix),
        ) {
            let (key, value) = item?;
            if !key.starts_with(&prefix) {
                break;
            }
            let last = key[prefix.len()..]
                .try_into()
                .map(u64::from_be_bytes)
                .map_err(|_| corrupt(&key, "bad change key"))?;
            let entries =
                keys::decode_changes(&value).ok_or_else(|| corrupt(&key, "bad change list"))?;
            for (seq, kind, id) in entries {
                if seq <= from || seq > to {
                    continue;
                }
                let kind = ObjectKind::ALL
                    .get(usize::from(kind))
                    .ok_or_else(|| corrupt(&key, "bad kind"))?;
                out.push(ChangedObject {
                    sequence: seq,
                    id: String::from_utf8_lossy(id).into_owned(),
                    kind: *kind,
                });
            }
            if last >= to {
                break;
            }
        }
        Ok(out)
    }

    /// The newest (stream time, sequence) applied at or before `ms`; `None` if the first
    /// applied event is later.
    pub fn resolve_time(&self, ms: i64) -> Result<Option<(i64, u64)>, StoreError> {
        first_instant(self.db(), &keys::instant_seek(ms))
    }

    pub fn tenant(&self, id: &str) -> Result<Option<TenantRecord>, StoreError> {
        match self.db().get_pinned(keys::tenant(id))? {
            Some(bytes) => serde_json::from_slice(&bytes)
                .map(Some)
                .map_err(|e| corrupt(&keys::tenant(id), &e.to_string())),
            None => Ok(None),
        }
    }

    pub fn tenants(&self) -> Result<Vec<TenantRecord>, StoreError> {
        scan(self.db(), keys::TENANTS)?
            .into_iter()
            .map(|(key, value)| {
                serde_json::from_slice(&value).map_err(|e| corrupt(&key, &e.to_string()))
            })
            .collect()
    }

    /// Writes raw bytes under a raw key, bypassing every rule; for tamper tests and
    /// repair tools only.
    #[doc(hidden)]
    pub fn put_raw(&self, key: &[u8], value: &[u8]) -> Result<(), StoreError> {
        Ok(self.db().put(key, value)?)
    }

    /// Raw entries under a prefix; for tamper tests and repair tools only.
    #[doc(hidden)]
    pub fn scan_raw(&self, prefix: &[u8]) -> Result<Vec<RawEntry>, StoreError> {
        Ok(scan(self.db(), prefix)?
            .into_iter()
            .map(|(k, v)| (k.into_vec(), v.into_vec()))
            .collect())
    }
}

/// The newest version of an object at or before `sequence`, without links.
pub(crate) fn version_at(
    db: &DB,
    tenant: &str,
    id: &str,
    sequence: u64,
) -> Result<Option<DirectoryObject>, StoreError> {
    let prefix = keys::versions(tenant, id);
    let start = keys::version(tenant, id, sequence);
    let mut it = db.raw_iterator_opt(within_prefix(&prefix));
    it.seek(&start);
    match (it.key(), it.value()) {
        (Some(key), Some(value)) if key.starts_with(&prefix) => {
            version::object(key, value, version_sequence(key, &prefix)?)
        }
        _ => {
            it.status()?;
            Ok(None)
        }
    }
}

/// The sequence of a version key of the object whose versions start with `prefix`.
pub(super) fn version_sequence(key: &[u8], prefix: &[u8]) -> Result<u64, StoreError> {
    let inverted: [u8; 8] = key
        .get(prefix.len()..)
        .and_then(|rest| rest.try_into().ok())
        .ok_or_else(|| corrupt(key, "bad version key"))?;
    Ok(!u64::from_be_bytes(inverted))
}

/// The first key after every version of `id`.
fn past_versions(tenant: &str, id: &str) -> Vec<u8> {
    let mut key = keys::versions(tenant, id);
    key.extend_from_slice(&[0xff; 9]);
    key
}

/// The newest entry of the instant index.
pub(crate) fn newest_instant(db: &DB) -> Result<Option<(i64, u64)>, StoreError> {
    first_instant(db, keys::INSTANTS)
}

/// The first instant entry at or after `start`.
fn first_instant(db: &DB, start: &[u8]) -> Result<Option<(i64, u64)>, StoreError> {
    let mut it = db.raw_iterator_opt(across_prefixes(keys::INSTANTS));
    it.seek(start);
    match it.key() {
        Some(key) => Ok(keys::parse_instant(key)),
        None => {
            it.status()?;
            Ok(None)
        }
    }
}

pub(crate) fn scan(db: &DB, prefix: &[u8]) -> Result<Vec<Entry>, StoreError> {
    let mut out = Vec::new();
    let options =
        if super::object_prefix_in_domain(prefix) && super::object_prefix(prefix) == prefix {
            within_prefix(prefix)
        } else {
            across_prefixes(prefix)
        };
    for item in db.iterator_opt(IteratorMode::From(prefix, Direction::Forward), options) {
        let (key, value) = item?;
        if !key.starts_with(prefix) {
            break;
        }
        out.push((key, value));
    }
    Ok(out)
}

/// Reads that stay inside one object's prefix (see [`super::object_prefix`]): the prefix
/// bloom filters skip every file that holds nothing of the object.
fn within_prefix(prefix: &[u8]) -> ReadOptions {
    let mut options = ReadOptions::default();
    options.set_prefix_same_as_start(true);
    if let Some(end) = prefix_end(prefix) {
        options.set_iterate_upper_bound(end);
    }
    options
}

/// Reads that cross object prefixes (a tenant's objects, the change and instant indexes).
pub(super) fn across_prefixes(prefix: &[u8]) -> ReadOptions {
    let mut options = ReadOptions::default();
    options.set_total_order_seek(true);
    if let Some(end) = prefix_end(prefix) {
        options.set_iterate_upper_bound(end);
    }
    options
}

/// The first key after every key that starts with `prefix`.
fn prefix_end(prefix: &[u8]) -> Option<Vec<u8>> {
    let mut end = prefix.to_vec();
    while let Some(last) = end.pop() {
        if last < u8::MAX {
            end.push(last + 1);
            return Some(end);
        }
    }
    None
}
