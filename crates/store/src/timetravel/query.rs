//! Reads of the time-travel store: an object, a relation's targets, a tenant's objects,
//! an object's history and the changes between two sequences — each at any sequence.

use backtrack_domain::diff::{diff_texts, ObjectDiff};
use backtrack_domain::event::Event;
use backtrack_domain::object::{group_links, DirectoryObject, Link};
use backtrack_domain::ObjectKind;
use rocksdb::{DBRawIterator, Direction, IteratorMode, ReadOptions, DB};

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

/// Many objects of one tenant, each read at two sequences, through one pair of cursors:
/// what a difference report does for every changed object. Each object costs one
/// positioning in its versions and one scan of its link keys for both sequences, where two
/// [`TimeTravelStore::object_at`] calls cost two of each and four iterators. Objects read
/// in ascending id order (as a report reads them) are mostly reached by stepping forward
/// from the previous one instead of seeking, which is what makes a report over a dense set
/// of changes cheap.
pub struct TwoPointReader<'a> {
    tenant: String,
    versions: Cursor<'a>,
    links: Cursor<'a>,
    /// The versions found for the higher and the lower sequence (buffers reused).
    high: Held,
    low: Held,
}

/// A version copied out of the cursor: its key, value and sequence.
#[derive(Default)]
struct Held {
    key: Vec<u8>,
    value: Vec<u8>,
    sequence: u64,
}

impl Held {
    fn hold(&mut self, key: &[u8], value: &[u8], sequence: u64) {
        self.key.clear();
        self.key.extend_from_slice(key);
        self.value.clear();
        self.value.extend_from_slice(value);
        self.sequence = sequence;
    }

    fn object(&self) -> Result<Option<DirectoryObject>, StoreError> {
        version::object(&self.key, &self.value, self.sequence)
    }
}

/// Which versions answer for two sequences (see [`TwoPointReader::find_versions`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Found {
    /// No version at or before the higher sequence: the object did not exist at either.
    Neither,
    /// A version at or before the higher sequence only.
    High,
    /// One version answers for both.
    Same,
    /// Each has its own.
    Both,
}

impl std::fmt::Debug for TwoPointReader<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TwoPointReader")
            .field("tenant", &self.tenant)
            .finish_non_exhaustive()
    }
}

/// How many `next` calls a cursor tries before it seeks. A seek positions in every level
/// of the tree, a step only moves along; objects farther apart than this are sparse
/// enough that seeking costs little more (a chosen bound, not a measured break-even).
const STEPS: usize = 16;

/// A forward iterator over one key range that reaches each object's keys after the
/// previous object's by stepping when they are near and by seeking otherwise. Either way
/// it stops at the first key at or after the target.
struct Cursor<'a> {
    it: DBRawIterator<'a>,
    /// The key prefix of the previous object read (every key the caller passed over
    /// starts with it); empty before the first.
    last: Vec<u8>,
    /// Whether stepping reached the previous target (if not, try fewer steps).
    stepped: bool,
}

impl<'a> Cursor<'a> {
    fn new(db: &'a DB, range: &[u8]) -> Self {
        Self {
            it: db.raw_iterator_opt(across_prefixes(range)),
            last: Vec::new(),
            stepped: true,
        }
    }

    /// Positions at the first key at or after `target`, the first key of interest of the
    /// object whose keys start with `prefix`.
    fn reach(&mut self, prefix: &[u8], target: &[u8]) -> Result<(), StoreError> {
        // Every key before the cursor is below the previous object's keys or one of them;
        // if this object's keys all come after those, stepping stops at the right key.
        let forward = !self.last.is_empty()
            && self.last.as_slice() < prefix
            && !prefix.starts_with(&self.last);
        self.last.clear();
        self.last.extend_from_slice(prefix);
        if forward {
            let steps = if self.stepped { STEPS } else { 2 };
            for _ in 0..steps {
                match self.it.key() {
                    Some(key) if key < target => self.it.next(),
                    _ => break,
                }
            }
            match self.it.key() {
                Some(key) if key < target => self.stepped = false,
                // At the first key at or after the target, or at the end of the range.
                _ => {
                    self.stepped = true;
                    self.it.status()?;
                    return Ok(());
                }
            }
        }
        self.it.seek(target);
        Ok(())
    }
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
        TwoPointReader {
            tenant: tenant.to_string(),
            versions: Cursor::new(self.db(), &keys::versions_of_tenant(tenant)),
            links: Cursor::new(self.db(), &keys::links_of_tenant(tenant)),
            high: Held::default(),
            low: Held::default(),
        }
    }

    /// The object as it was right after `sequence` was applied, with its links.
    pub fn object_at(
        &self,
        tenant: &str,
        id: &str,
        sequence: u64,
    ) -> Result<Option<DirectoryObject>, StoreError> {
        let Some(mut object) = version_at(self.db(), tenant, id, sequence)? else {
            return Ok(None);
        };
        object.links = group_links(&self.links_at(tenant, id, None, sequence)?);
        Ok(Some(object))
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
fn version_sequence(key: &[u8], prefix: &[u8]) -> Result<u64, StoreError> {
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
fn across_prefixes(prefix: &[u8]) -> ReadOptions {
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

impl TwoPointReader<'_> {
    /// The object `id` right after `low` and right after `high` were applied (`low` ≤
    /// `high`), with links: the same as [`TimeTravelStore::object_at`] at each. Any order
    /// of ids is right; ascending order is fastest.
    pub fn object_at_both(
        &mut self,
        id: &str,
        low: u64,
        high: u64,
    ) -> Result<(Option<DirectoryObject>, Option<DirectoryObject>), StoreError> {
        let (low, high) = (low.min(high), low.max(high));
        let (at_low, at_high) = match self.find_versions(id, low, high)? {
            Found::Neither => return Ok((None, None)),
            Found::High => (None, self.high.object()?),
            Found::Same => {
                let object = self.high.object()?;
                (object.clone(), object)
            }
            Found::Both => (self.low.object()?, self.high.object()?),
        };
        let (links_low, links_high) = self.links_at_both(id, low, high)?;
        let with_links = |object: Option<DirectoryObject>, links: &[Link]| {
            object.map(|mut o| {
                o.links = group_links(links);
                o
            })
        };
        Ok((
            with_links(at_low, &links_low),
            with_links(at_high, &links_high),
        ))
    }

    /// What differs about the object `id` from right after `base` to right after
    /// `target` (either may be the higher): the same as
    /// [`backtrack_domain::diff::diff_objects`] of [`Self::object_at_both`]'s objects, but
    /// attributes stored alike at both are not decoded. `None` when nothing differs.
    pub fn diff(
        &mut self,
        id: &str,
        base: u64,
        target: u64,
    ) -> Result<Option<ObjectDiff>, StoreError> {
        let (low, high) = (base.min(target), base.max(target));
        let found = self.find_versions(id, low, high)?;
        if found == Found::Neither {
            return Ok(None);
        }
        let (links_low, links_high) = self.links_at_both(id, low, high)?;
        let high_text = version::text(&self.high.key, &self.high.value)?;
        let low_text = match found {
            Found::Both => Some(version::text(&self.low.key, &self.low.value)?),
            _ => None,
        };
        let mut at_high = high_text.object(&self.high.key)?;
        let mut at_low = match (&low_text, found) {
            (Some(text), _) => text.object(&self.low.key)?,
            (None, Found::Same) => at_high.clone(),
            (None, _) => None,
        };
        if let Some(o) = &mut at_high {
            o.links = links_high;
        }
        if let Some(o) = &mut at_low {
            o.links = links_low;
        }
        let (before, after) = if base <= target {
            (at_low, at_high)
        } else {
            (at_high, at_low)
        };
        diff_texts(before.as_ref(), after.as_ref())
            .map_err(|e| corrupt(&self.high.key, &e.to_string()))
    }

    /// Finds the newest versions of `id` at or before `high` and at or before `low`
    /// (`low` ≤ `high`) and copies them into [`Self::high`] and [`Self::low`]. Versions in
    /// between are passed over without being read.
    fn find_versions(&mut self, id: &str, low: u64, high: u64) -> Result<Found, StoreError> {
        let prefix = keys::versions(&self.tenant, id);
        self.versions
            .reach(&prefix, &keys::version(&self.tenant, id, high))?;
        let it = &mut self.versions.it;
        let mut found = Found::Neither;
        loop {
            let (Some(key), Some(value)) = (it.key(), it.value()) else {
                it.status()?;
                break;
            };
            if !key.starts_with(&prefix) {
                break;
            }
            let sequence = version_sequence(key, &prefix)?;
            if found == Found::Neither {
                // The newest version at or before `high`; if it is at or before `low`
                // too, the object did not change in between.
                self.high.hold(key, value, sequence);
                if sequence <= low {
                    return Ok(Found::Same);
                }
                found = Found::High;
            } else if sequence <= low {
                self.low.hold(key, value, sequence);
                return Ok(Found::Both);
            }
            it.next();
        }
        Ok(found)
    }

    /// The links held right after `low` and right after `high`, each sorted.
    fn links_at_both(
        &mut self,
        id: &str,
        low: u64,
        high: u64,
    ) -> Result<(Vec<Link>, Vec<Link>), StoreError> {
        let base = keys::links_of(&self.tenant, id);
        self.links.reach(&base, &base)?;
        let it = &mut self.links.it;
        let (mut at_low, mut at_high) = (Vec::new(), Vec::new());
        let (mut decided_low, mut decided_high): (Vec<u8>, Vec<u8>) = (Vec::new(), Vec::new());
        let (mut any_low, mut any_high) = (false, false);
        loop {
            let (Some(key), Some(value)) = (it.key(), it.value()) else {
                it.status()?;
                break;
            };
            if !key.starts_with(&base) {
                break;
            }
            let (text, inverted) =
                keys::split_versioned(key, &base).ok_or_else(|| corrupt(key, "bad link key"))?;
            let sequence = !inverted;
            let present = value.first() == Some(&1);
            // Versions of one link come newest first: the first at or before a sequence
            // decides the link's state there.
            let link = || {
                let text = String::from_utf8_lossy(text);
                text.split_once('/')
                    .map(|(relation, target)| Link::new(relation, target))
            };
            if sequence <= high && !(any_high && decided_high == text) {
                any_high = true;
                decided_high.clear();
                decided_high.extend_from_slice(text);
                if present {
                    at_high.extend(link());
                }
            }
            if sequence <= low && !(any_low && decided_low == text) {
                any_low = true;
                decided_low.clear();
                decided_low.extend_from_slice(text);
                if present {
                    at_low.extend(link());
                }
            }
            it.next();
        }
        at_low.sort();
        at_high.sort();
        Ok((at_low, at_high))
    }
}
