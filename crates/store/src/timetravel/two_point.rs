//! [`TwoPointReader`]: many objects of one tenant read at two sequences through one pair
//! of cursors, as a difference report reads every changed object.

use backtrack_domain::diff::{diff_texts, ObjectDiff};
use backtrack_domain::object::{group_links, DirectoryObject, Link};
use rocksdb::{DBRawIterator, DB};

use super::query::{across_prefixes, version_sequence};
use super::{corrupt, keys, version};
use crate::StoreError;

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

impl<'a> TwoPointReader<'a> {
    pub(super) fn new(db: &'a DB, tenant: &str) -> Self {
        Self {
            tenant: tenant.to_string(),
            versions: Cursor::new(db, &keys::versions_of_tenant(tenant)),
            links: Cursor::new(db, &keys::links_of_tenant(tenant)),
            high: Held::default(),
            low: Held::default(),
        }
    }
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
