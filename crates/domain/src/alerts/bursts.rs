//! The mass rules over a log followed for ever: per actor, deletions and link removals in
//! a sliding window. A run that reaches its threshold raises one alert; the actor's next
//! alert of that rule needs a whole window without such changes first, so a purge that
//! goes on for hours is one alert, not one per window.
//!
//! The state is small (per actor at most a threshold's worth of entries, and one time
//! once a run has alerted) and serializable, so a follower stores it with its position
//! and resumes where it stopped, with the same alerts.

use std::collections::{BTreeMap, VecDeque};

use serde::{Deserialize, Serialize};

use super::{Alert, Severity, Thresholds};
use crate::event::{Change, Event};
use crate::kind::ObjectKind;

/// When a run of one actor's changes is an alert.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BurstLimits {
    pub thresholds: Thresholds,
    /// How long a run may take: the changes counted are those of the last `window_ms`.
    pub window_ms: i64,
}

impl Default for BurstLimits {
    fn default() -> Self {
        Self {
            thresholds: Thresholds::default(),
            window_ms: 3_600_000,
        }
    }
}

/// The runs in progress, per actor, of one tenant.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Bursts {
    #[serde(default, skip_serializing_if = "Runs::is_empty")]
    deletions: Runs,
    #[serde(default, skip_serializing_if = "Runs::is_empty")]
    removals: Runs,
}

/// Runs of one kind of thing (deletions, refused calls, …) by key (an actor, an
/// address): a key whose things within a sliding window reach a threshold is reported
/// once, and again only after a whole window without any.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(transparent)]
pub struct Runs(BTreeMap<String, Run>);

/// One key's run.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
struct Run {
    /// The things in the window, oldest first: (sequence, time, how many). Emptied when
    /// the run is reported.
    #[serde(default, skip_serializing_if = "VecDeque::is_empty")]
    recent: VecDeque<(u64, i64, usize)>,
    /// The time of the key's newest thing.
    last_ms: i64,
    /// The run was reported; it goes on while its things are less than a window apart.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    alerted: bool,
}

/// A run that reached its threshold.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Reached {
    /// The sequence and time of the run's first thing in the window.
    pub first_sequence: u64,
    pub first_ms: i64,
    /// How many things the window holds.
    pub total: usize,
}

impl Runs {
    /// Counts `n` things of `key` at (`sequence`, `time_ms`), after every one pushed
    /// before; the run, when this takes it to `least` within `window_ms`.
    pub fn push(
        &mut self,
        key: &str,
        (sequence, time_ms): (u64, i64),
        n: usize,
        least: usize,
        window_ms: i64,
    ) -> Option<Reached> {
        let start = time_ms.saturating_sub(window_ms);
        let run = match self.0.get_mut(key) {
            Some(run) => run,
            None => self.0.entry(key.to_string()).or_default(),
        };
        if run.alerted {
            if run.last_ms >= start {
                run.last_ms = run.last_ms.max(time_ms);
                return None;
            }
            run.alerted = false;
        }
        while run.recent.front().is_some_and(|(_, t, _)| *t < start) {
            run.recent.pop_front();
        }
        run.recent.push_back((sequence, time_ms, n));
        run.last_ms = run.last_ms.max(time_ms);
        let total: usize = run.recent.iter().map(|(_, _, n)| n).sum();
        if total < least.max(1) {
            return None;
        }
        let (first_sequence, first_ms, _) = run.recent.front().copied()?;
        run.recent.clear();
        run.alerted = true;
        Some(Reached {
            first_sequence,
            first_ms,
            total,
        })
    }

    /// Forgets keys with nothing in the window before `now_ms`: they count nothing.
    pub fn prune(&mut self, now_ms: i64, window_ms: i64) {
        let start = now_ms.saturating_sub(window_ms);
        self.0.retain(|_, run| run.last_ms >= start);
    }

    /// Keeps the `max` keys with the newest things, forgetting the others' runs (a bound
    /// on the state when keys are many: a spray from many addresses).
    pub fn keep_newest(&mut self, max: usize) {
        if self.0.len() <= max {
            return;
        }
        let mut newest: Vec<(i64, String)> =
            self.0.iter().map(|(k, r)| (r.last_ms, k.clone())).collect();
        newest.sort_unstable_by(|a, b| b.cmp(a));
        newest.truncate(max);
        let kept: std::collections::BTreeSet<String> = newest.into_iter().map(|(_, k)| k).collect();
        self.0.retain(|k, _| kept.contains(k));
    }

    /// How many keys have a run.
    pub fn len(&self) -> usize {
        self.0.len()
    }

    /// No run in progress.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

impl Bursts {
    /// Counts the event (at `sequence`, after every one pushed before); the mass alert it
    /// raises, if it takes a run over its threshold.
    pub fn push(&mut self, sequence: u64, event: &Event, limits: &BurstLimits) -> Option<Alert> {
        let m = &event.meta;
        m.kind.parse::<ObjectKind>().ok()?;
        let (runs, n, least, rule, noun) = match &event.change {
            Change::SoftDeleted { .. } | Change::HardDeleted { .. } => (
                &mut self.deletions,
                1,
                limits.thresholds.deletions,
                "massDeletion",
                "objects deleted",
            ),
            Change::LinksRemoved(links) if !links.is_empty() => (
                &mut self.removals,
                links.len(),
                limits.thresholds.link_removals,
                "massLinkRemoval",
                "links removed",
            ),
            _ => return None,
        };
        let reached = runs.push(&m.actor, (sequence, m.time_ms), n, least, limits.window_ms)?;
        Some(Alert {
            severity: Severity::High,
            rule,
            actor: m.actor.clone(),
            sequence: reached.first_sequence,
            time_ms: reached.first_ms,
            event_id: m.event_id.clone(),
            object: None,
            what: format!(
                "{} {noun} by one actor within {}",
                reached.total,
                minutes(limits.window_ms)
            ),
            undone: None,
        })
    }

    /// Forgets actors with no change in the window before `now_ms`: they count nothing.
    pub fn prune(&mut self, now_ms: i64, limits: &BurstLimits) {
        self.deletions.prune(now_ms, limits.window_ms);
        self.removals.prune(now_ms, limits.window_ms);
    }

    /// No run in progress.
    pub fn is_empty(&self) -> bool {
        self.deletions.is_empty() && self.removals.is_empty()
    }
}

/// `60 min`, or `90 s` for windows that are no whole minutes.
pub fn minutes(ms: i64) -> String {
    if ms % 60_000 == 0 {
        format!("{} min", ms / 60_000)
    } else {
        format!("{} s", ms / 1000)
    }
}
