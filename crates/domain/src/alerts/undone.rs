//! Whether an alert's change still stands. A reader of a window to the log's end (the
//! `overview` command) sees every later change of an alerted object too, so it can tell
//! the administrator which alerts were set back since — by a recovery or by hand — and
//! which still need a look; a reader that follows the log for ever (the alerter) keeps
//! each raised alert as [`Standing`] and tells when a later change sets it back. Only
//! what the events show is judged: an alert is *undone* when the later events prove its
//! change is gone, never on a guess.

use std::collections::{BTreeMap, HashMap};

use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::Alert;
use crate::event::{Change, Event};

/// The change that set an alert's change back (the last one needed, for a run of changes).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Undone {
    pub sequence: u64,
    pub time_ms: i64,
    pub actor: String,
    /// The job that made the change (a recovery's id), when a job did.
    #[serde(skip_serializing_if = "String::is_empty")]
    pub job: String,
}

impl Undone {
    pub(super) fn by(sequence: u64, event: &Event) -> Self {
        Self {
            sequence,
            time_ms: event.meta.time_ms,
            actor: event.meta.actor.clone(),
            job: event.meta.correlation_id.clone().unwrap_or_default(),
        }
    }
}

/// What an alert's change left behind that a later change of its object can set back.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", tag = "effect")]
enum Effect {
    /// A deletion: set back while the object is live again (restored, or re-created).
    Gone { live: bool },
    /// A creation (a role assignment): set back while the object is deleted.
    Made { deleted: bool },
    /// Attribute values: set back while each is what it was before the change.
    Values {
        before: BTreeMap<String, Option<Value>>,
        now: BTreeMap<String, Option<Value>>,
    },
}

/// A value as compared: an explicit `null` is no value.
fn value(v: Option<&Value>) -> Option<Value> {
    v.filter(|v| !v.is_null()).cloned()
}

impl Effect {
    /// The effect of the `rule`'s alert on `change`; `None` when nothing is followed.
    fn of(rule: &str, change: &Change) -> Option<Self> {
        match change {
            Change::SoftDeleted { .. } | Change::HardDeleted { .. } => {
                Some(Effect::Gone { live: false })
            }
            Change::Created { .. } => Some(Effect::Made { deleted: false }),
            Change::AttributesChanged(changes) => {
                // The attributes the rule is about; a rule about the whole change, all.
                let about: &[&str] = match rule {
                    "caPolicyDisabled" => &["state"],
                    "caPolicyExclusionAdded" | "caPolicyScopeNarrowed" => &["conditions"],
                    "caPolicyControlRemoved" => &["grantControls"],
                    "appCredentialsChanged" => super::APP_SENSITIVE,
                    _ => &[],
                };
                let changes = changes
                    .iter()
                    .filter(|c| about.is_empty() || about.contains(&c.name.as_str()));
                let (mut before, mut now) = (BTreeMap::new(), BTreeMap::new());
                for c in changes {
                    before.insert(c.name.clone(), value(c.old.as_ref()));
                    now.insert(c.name.clone(), value(c.new.as_ref()));
                }
                (!before.is_empty()).then_some(Effect::Values { before, now })
            }
            _ => None,
        }
    }

    /// Follows a later change of the object.
    fn follow(&mut self, change: &Change) {
        match (self, change) {
            (Effect::Gone { live }, Change::Restored | Change::Created { .. }) => *live = true,
            (Effect::Gone { live }, Change::SoftDeleted { .. } | Change::HardDeleted { .. }) => {
                *live = false
            }
            (Effect::Made { deleted }, Change::SoftDeleted { .. } | Change::HardDeleted { .. }) => {
                *deleted = true
            }
            (Effect::Made { deleted }, Change::Restored | Change::Created { .. }) => {
                *deleted = false
            }
            (Effect::Values { now, .. }, Change::AttributesChanged(changes)) => {
                for c in changes {
                    if let Some(v) = now.get_mut(&c.name) {
                        *v = value(c.new.as_ref());
                    }
                }
            }
            // Re-created from the log: its attributes are what they are now.
            (Effect::Values { now, .. }, Change::Created { attributes, .. }) => {
                for (name, v) in now.iter_mut() {
                    *v = value(attributes.get(name));
                }
            }
            _ => {}
        }
    }

    fn set_back(&self) -> bool {
        match self {
            Effect::Gone { live } => *live,
            Effect::Made { deleted } => *deleted,
            Effect::Values { before, now } => before == now,
        }
    }
}

/// An alert raised and not set back yet, as a reader that follows the log for ever keeps
/// it (stored with the reader's state, so it is small: ids, the rule, and for attribute
/// rules the values concerned).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Standing {
    /// The alert's stable id ([`Alert::id`]).
    pub id: String,
    pub rule: String,
    pub severity: super::Severity,
    pub kind: String,
    pub object_id: String,
    /// When the change was made.
    pub time_ms: i64,
    pub what: String,
    effect: Effect,
}

impl Standing {
    /// The alert `alert` (the `n`th its event raised by itself) as followed from now on;
    /// `None` for an alert about no object, or a change nothing can set back.
    pub fn of(alert: &Alert, n: usize, event: &Event) -> Option<Self> {
        let object = alert.object.as_ref()?;
        Some(Self {
            id: alert.id(n),
            rule: alert.rule.to_string(),
            severity: alert.severity,
            kind: object.kind.clone(),
            object_id: object.id.clone(),
            time_ms: alert.time_ms,
            what: alert.what.clone(),
            effect: Effect::of(alert.rule, &event.change)?,
        })
    }

    /// Follows a later `change` of the object; `true` when, after it, the alert's change
    /// is set back.
    pub fn follow(&mut self, change: &Change) -> bool {
        self.effect.follow(change);
        self.effect.set_back()
    }
}

/// One alert's effect, followed.
#[derive(Debug)]
struct Followed {
    /// The alert's index in its reader's list.
    alert: usize,
    effect: Effect,
    undone: Option<Undone>,
}

/// Most removed links followed for the mass rule (a bound on memory for a huge window);
/// a run with more is never judged undone.
const MOST_LINKS: usize = 1_000_000;

/// The later changes of alerted objects, and of the objects and links in runs of changes
/// (deletions and link removals by one actor), as a window is read in order.
#[derive(Debug, Default)]
pub(super) struct Followers {
    objects: HashMap<String, Vec<Followed>>,
    /// Each object deleted in the window: the change that brought it back, if one did.
    revived: HashMap<String, Option<Undone>>,
    /// Each link removed in the window (object, relation, target): the change that added
    /// it again, if one did.
    relinked: HashMap<(String, String, String), Option<Undone>>,
}

/// What one actor's run touched: the objects deleted, the links removed.
#[derive(Debug, Default)]
pub(super) struct RunItems {
    deleted: Vec<String>,
    removed: Vec<(String, String, String)>,
    /// More links than followed: never judged.
    unfollowed: bool,
}

impl Followers {
    /// Follows `event` (after every event given before) for the alerts raised so far and
    /// for the objects and links deleted or removed so far.
    pub(super) fn follow(&mut self, sequence: u64, event: &Event) {
        let id = &event.meta.object_id;
        if let Some(followed) = self.objects.get_mut(id) {
            for f in followed {
                f.effect.follow(&event.change);
                match (f.effect.set_back(), &f.undone) {
                    (true, None) => f.undone = Some(Undone::by(sequence, event)),
                    (false, _) => f.undone = None,
                    (true, Some(_)) => {}
                }
            }
        }
        match &event.change {
            Change::SoftDeleted { .. } | Change::HardDeleted { .. } => {
                self.revived.insert(id.clone(), None);
            }
            Change::Restored | Change::Created { .. } => {
                if let Some(revived) = self.revived.get_mut(id) {
                    *revived = Some(Undone::by(sequence, event));
                }
            }
            Change::LinksRemoved(links) => {
                for link in links {
                    let key = (id.clone(), link.relation.clone(), link.target_id.clone());
                    if self.relinked.len() < MOST_LINKS || self.relinked.contains_key(&key) {
                        self.relinked.insert(key, None);
                    }
                }
            }
            Change::LinksAdded(links) => {
                for link in links {
                    let key = (id.clone(), link.relation.clone(), link.target_id.clone());
                    if let Some(relinked) = self.relinked.get_mut(&key) {
                        *relinked = Some(Undone::by(sequence, event));
                    }
                }
            }
            _ => {}
        }
    }

    /// Counts what `event` (just followed) deleted or unlinked into its actor's `run`.
    pub(super) fn count(&self, event: &Event, run: &mut RunItems) {
        let id = &event.meta.object_id;
        match &event.change {
            Change::SoftDeleted { .. } | Change::HardDeleted { .. } => run.deleted.push(id.clone()),
            Change::LinksRemoved(links) => {
                for link in links {
                    let key = (id.clone(), link.relation.clone(), link.target_id.clone());
                    if self.relinked.contains_key(&key) {
                        run.removed.push(key);
                    } else {
                        run.unfollowed = true;
                    }
                }
            }
            _ => {}
        }
    }

    /// Starts following the alert at `index` (raised by `event`, about its object).
    pub(super) fn watch(&mut self, index: usize, rule: &str, event: &Event) {
        if let Some(effect) = Effect::of(rule, &event.change) {
            self.objects
                .entry(event.meta.object_id.clone())
                .or_default()
                .push(Followed {
                    alert: index,
                    effect,
                    undone: None,
                });
        }
    }

    /// The change that set back the alert at `index`, if one did.
    pub(super) fn undone(&self) -> HashMap<usize, Undone> {
        self.objects
            .values()
            .flatten()
            .filter_map(|f| Some((f.alert, f.undone.clone()?)))
            .collect()
    }

    /// How much of a run was set back: how many of the objects it deleted are live again
    /// and of the links it removed added again, of how many; and when all were, the last
    /// change that did it.
    pub(super) fn run_back(&self, run: &RunItems) -> (usize, usize, Option<Undone>) {
        let deleted = run.deleted.iter().map(|id| self.revived.get(id));
        let removed = run.removed.iter().map(|k| self.relinked.get(k));
        let (mut back, mut of, mut last) = (0, 0, None::<&Undone>);
        for undone in deleted.chain(removed) {
            of += 1;
            if let Some(Some(undone)) = undone {
                back += 1;
                if last.is_none_or(|l| undone.sequence > l.sequence) {
                    last = Some(undone);
                }
            }
        }
        let all = of > 0 && back == of && !run.unfollowed;
        (back, of, last.filter(|_| all).cloned())
    }
}
