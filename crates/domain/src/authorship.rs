//! Changes by some authors only: what a set of actors (or one recovery job) changed in an
//! object after a point, facet by facet — each top-level attribute, each link, and the
//! object's lifecycle (created, deleted, restored, purged) — and the object with those
//! facets set back to what they were before the authors' first change of each, every
//! other facet as it is now.
//!
//! A recovery scoped this way (`recover --from P --changed-by mallory`) undoes mallory's
//! changes and keeps everyone else's, inside the same object too: a title another
//! administrator set after mallory renamed the user stays. A change someone else made to a
//! facet before the authors' first change of it stays as well (the facet goes back to the
//! value the authors found, not to the value at the point). A facet someone else changed
//! after the authors is a conflict: it is set back anyway, with a note, or left as it is.

use std::collections::{BTreeMap, BTreeSet};

use serde_json::Value;

use crate::canonical::equivalent;
use crate::event::{Change, Event, EventMeta};
use crate::object::DirectoryObject;

/// Whose changes count: events by one of `actors`, or made by the recovery job `job`
/// (its events carry the job's id as correlation id).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Authors {
    pub actors: BTreeSet<String>,
    pub job: Option<String>,
}

impl Authors {
    pub fn actors<I: IntoIterator<Item = S>, S: Into<String>>(actors: I) -> Self {
        Self {
            actors: actors.into_iter().map(Into::into).collect(),
            job: None,
        }
    }

    pub fn job(id: impl Into<String>) -> Self {
        Self {
            actors: BTreeSet::new(),
            job: Some(id.into()),
        }
    }

    /// Nobody: the scope is not narrowed by author.
    pub fn is_empty(&self) -> bool {
        self.actors.is_empty() && self.job.is_none()
    }

    /// Whether the authors made the event.
    pub fn wrote(&self, meta: &EventMeta) -> bool {
        self.actors.contains(&meta.actor)
            || self
                .job
                .as_deref()
                .is_some_and(|job| meta.correlation_id.as_deref() == Some(job))
    }

    /// Who they are, for messages: the actors, or `recovery <job>`.
    pub fn describe(&self) -> String {
        let mut names: Vec<String> = self.actors.iter().cloned().collect();
        if let Some(job) = &self.job {
            names.push(format!("recovery {job}"));
        }
        names.join(", ")
    }
}

/// Most actors one scope names.
pub const MAX_ACTORS: usize = 100;

/// Actors as a caller names them (token subjects, as the feed shows them), checked,
/// sorted and without repeats; the error says what is wrong and how to fix it.
pub fn parse_actors(actors: &[String]) -> Result<Vec<String>, String> {
    if actors.len() > MAX_ACTORS {
        return Err(format!(
            "changed_by names {} actors; at most {MAX_ACTORS}",
            actors.len()
        ));
    }
    let mut out = Vec::with_capacity(actors.len());
    for actor in actors {
        if actor.trim().is_empty() || actor.len() > 256 || actor.chars().any(char::is_control) {
            return Err(format!(
                "'{}' is not an actor: give the subject the feed and history show as ACTOR (at most 256 characters)",
                crate::validate::printable(actor)
            ));
        }
        out.push(actor.clone());
    }
    out.sort();
    out.dedup();
    Ok(out)
}

/// A facet's value before the authors' first change of it, and that change's sequence.
#[derive(Debug, Clone, PartialEq)]
pub struct Before<T> {
    pub value: T,
    pub sequence: u64,
}

/// What the authors changed in one object.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Touched {
    /// Each attribute they changed, with its value before their first change (`None`:
    /// absent).
    pub attributes: BTreeMap<String, Before<Option<Value>>>,
    /// Each link (relation, target) they added or removed, with whether it was there
    /// before their first change of it.
    pub links: BTreeMap<(String, String), Before<bool>>,
    /// Sequence of their first creation, soft delete, restore or purge of the object: the
    /// object's state just before it is the lifecycle to go back to.
    pub lifecycle: Option<u64>,
    /// Facets someone else changed after the authors' first change of them, with who did.
    /// An object the authors created counts every later change by others against its
    /// lifecycle (it goes away whole).
    pub later: BTreeMap<Facet, BTreeSet<String>>,
}

impl Touched {
    /// Whether the authors changed anything in the object.
    pub fn is_empty(&self) -> bool {
        self.attributes.is_empty() && self.links.is_empty() && self.lifecycle.is_none()
    }
}

/// One thing about an object a change can touch.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub enum Facet {
    /// A top-level attribute.
    Attribute(String),
    /// A link: relation and target.
    Link(String, String),
    /// Whether the object exists, and whether it is in the recycle bin.
    Lifecycle,
}

impl std::fmt::Display for Facet {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Facet::Attribute(name) => f.write_str(name),
            Facet::Link(relation, target) => write!(f, "{relation} {target}"),
            Facet::Lifecycle => f.write_str("the object itself"),
        }
    }
}

impl Facet {
    /// Whether `a` and `b` differ in this facet.
    pub fn differs(&self, a: Option<&DirectoryObject>, b: Option<&DirectoryObject>) -> bool {
        match self {
            Facet::Attribute(name) => !equivalent(
                a.and_then(|o| o.attributes.get(name)),
                b.and_then(|o| o.attributes.get(name)),
            ),
            Facet::Link(relation, target) => {
                let held = |o: Option<&DirectoryObject>| {
                    o.and_then(|o| o.links.get(relation))
                        .is_some_and(|targets| targets.contains(target))
                };
                held(a) != held(b)
            }
            Facet::Lifecycle => {
                a.map(DirectoryObject::is_deleted) != b.map(DirectoryObject::is_deleted)
            }
        }
    }
}

/// What `authors` changed in an object, from its events after the point in ascending
/// sequence order (sequence, event).
pub fn touched<'e>(
    events: impl IntoIterator<Item = (u64, &'e Event)>,
    authors: &Authors,
) -> Touched {
    let mut out = Touched::default();
    // Whether the authors' first lifecycle change created the object.
    let mut created = false;
    let mut others: Vec<(u64, &Event)> = Vec::new();
    for (sequence, event) in events {
        if !authors.wrote(&event.meta) {
            others.push((sequence, event));
            continue;
        }
        match &event.change {
            Change::AttributesChanged(changes) => {
                for c in changes {
                    out.attributes.entry(c.name.clone()).or_insert(Before {
                        value: c.old.clone(),
                        sequence,
                    });
                }
            }
            Change::LinksAdded(links) | Change::LinksRemoved(links) => {
                let was_there = matches!(event.change, Change::LinksRemoved(_));
                for l in links {
                    out.links
                        .entry((l.relation.clone(), l.target_id.clone()))
                        .or_insert(Before {
                            value: was_there,
                            sequence,
                        });
                }
            }
            Change::Created { .. }
            | Change::SoftDeleted { .. }
            | Change::Restored
            | Change::HardDeleted { .. } => {
                if out.lifecycle.is_none() {
                    out.lifecycle = Some(sequence);
                    created = matches!(event.change, Change::Created { .. });
                }
            }
            Change::TenantCreated { .. } => {}
        }
    }
    for (sequence, event) in others {
        let actor = event.meta.actor.as_str();
        let mut later = |facet: Facet, first: u64| {
            if sequence > first {
                out.later
                    .entry(facet)
                    .or_default()
                    .insert(actor.to_string());
            }
        };
        let lifecycle_change = match &event.change {
            Change::AttributesChanged(changes) => {
                for c in changes {
                    if let Some(b) = out.attributes.get(&c.name) {
                        later(Facet::Attribute(c.name.clone()), b.sequence);
                    }
                }
                false
            }
            Change::LinksAdded(links) | Change::LinksRemoved(links) => {
                for l in links {
                    let key = (l.relation.clone(), l.target_id.clone());
                    if let Some(b) = out.links.get(&key) {
                        later(Facet::Link(key.0, key.1), b.sequence);
                    }
                }
                false
            }
            Change::Created { .. }
            | Change::SoftDeleted { .. }
            | Change::Restored
            | Change::HardDeleted { .. } => true,
            Change::TenantCreated { .. } => false,
        };
        // An object the authors created goes away whole: every later change by others
        // is lost with it.
        if let Some(first) = out.lifecycle.filter(|_| created || lifecycle_change) {
            later(Facet::Lifecycle, first);
        }
    }
    out
}

/// The object as it is to become: `current` with every facet the authors changed set back
/// to its value before their first change of it, except the facets in `keep` (left as
/// they are now). `lifecycle_before` is the object just before the authors' first
/// lifecycle change (`None`: absent, they created it); it is read only when
/// [`Touched::lifecycle`] is set.
pub fn narrow(
    current: Option<&DirectoryObject>,
    lifecycle_before: Option<&DirectoryObject>,
    touched: &Touched,
    keep: &BTreeSet<Facet>,
) -> Option<DirectoryObject> {
    let lifecycle = touched.lifecycle.is_some() && !keep.contains(&Facet::Lifecycle);
    let mut out = match (lifecycle, current) {
        // Gone, and not by them: what they changed in it went with it.
        (false, None) => return None,
        (false, Some(c)) => c.clone(),
        (true, _) => {
            let before = lifecycle_before?;
            match current {
                // Purged since: it comes back as it was before their first lifecycle
                // change (its facets below set back on top).
                None => before.clone(),
                Some(c) => {
                    let mut c = c.clone();
                    c.deleted_at_ms = before.deleted_at_ms;
                    c.purge_after_ms = before.purge_after_ms;
                    c
                }
            }
        }
    };
    for (name, before) in &touched.attributes {
        if keep.contains(&Facet::Attribute(name.clone())) {
            continue;
        }
        match &before.value {
            Some(v) => {
                out.attributes.insert(name.clone(), v.clone());
            }
            None => {
                out.attributes.remove(name);
            }
        }
    }
    for ((relation, target), before) in &touched.links {
        if keep.contains(&Facet::Link(relation.clone(), target.clone())) {
            continue;
        }
        if before.value {
            out.links
                .entry(relation.clone())
                .or_default()
                .insert(target.clone());
        } else if let Some(targets) = out.links.get_mut(relation) {
            targets.remove(target);
            if targets.is_empty() {
                out.links.remove(relation);
            }
        }
    }
    Some(out)
}
