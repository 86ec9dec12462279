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
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    deletions: BTreeMap<String, Run>,
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    removals: BTreeMap<String, Run>,
}

/// One actor's run of one kind of change.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
struct Run {
    /// The changes in the window, oldest first: (sequence, time, how many). Emptied when
    /// the run alerts.
    #[serde(default, skip_serializing_if = "VecDeque::is_empty")]
    recent: VecDeque<(u64, i64, usize)>,
    /// The time of the actor's newest change of this kind.
    last_ms: i64,
    /// The run has alerted; it goes on while the changes are less than a window apart.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    alerted: bool,
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
        let start = m.time_ms.saturating_sub(limits.window_ms);
        let run = runs.entry(m.actor.clone()).or_default();
        if run.alerted {
            if run.last_ms >= start {
                run.last_ms = run.last_ms.max(m.time_ms);
                return None;
            }
            run.alerted = false;
        }
        while run.recent.front().is_some_and(|(_, t, _)| *t < start) {
            run.recent.pop_front();
        }
        run.recent.push_back((sequence, m.time_ms, n));
        run.last_ms = run.last_ms.max(m.time_ms);
        let total: usize = run.recent.iter().map(|(_, _, n)| n).sum();
        if total < least.max(1) {
            return None;
        }
        let (first, first_ms, _) = run.recent.front().copied()?;
        run.recent.clear();
        run.alerted = true;
        Some(Alert {
            severity: Severity::High,
            rule,
            actor: m.actor.clone(),
            sequence: first,
            time_ms: first_ms,
            event_id: m.event_id.clone(),
            object: None,
            what: format!(
                "{total} {noun} by one actor within {}",
                minutes(limits.window_ms)
            ),
        })
    }

    /// Forgets actors with no change in the window before `now_ms`: they count nothing.
    pub fn prune(&mut self, now_ms: i64, limits: &BurstLimits) {
        let start = now_ms.saturating_sub(limits.window_ms);
        self.deletions.retain(|_, run| run.last_ms >= start);
        self.removals.retain(|_, run| run.last_ms >= start);
    }

    /// No run in progress.
    pub fn is_empty(&self) -> bool {
        self.deletions.is_empty() && self.removals.is_empty()
    }
}

/// `60 min`, or `90 s` for windows that are no whole minutes.
fn minutes(ms: i64) -> String {
    if ms % 60_000 == 0 {
        format!("{} min", ms / 60_000)
    } else {
        format!("{} s", ms / 1000)
    }
}
