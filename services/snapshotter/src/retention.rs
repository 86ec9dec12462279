//! Which backups are expired: a pure function of the backups, the policy and the clock.
//!
//! A backup is usable until its `expires_at` (creation + the retention in force then).
//! Beyond that, the policy may keep the newest backup of each of the last N days, ISO
//! weeks and months (UTC), and a pinned backup is kept until it is unpinned.

use std::collections::{BTreeMap, HashSet};

use chrono::{DateTime, Datelike};

use crate::policy::Policy;

const DAY_MS: i64 = 86_400_000;

/// Maps a time (ms) to the index of its day, week or month.
type Period = fn(i64) -> i64;

/// What retention needs to know of a backup.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Retained<'a> {
    pub id: &'a str,
    pub created_at_ms: i64,
    pub expires_at_ms: i64,
    pub pinned: bool,
}

/// The ids of the expired backups among `backups` at `now_ms`.
pub fn expired<'a>(backups: &[Retained<'a>], policy: &Policy, now_ms: i64) -> HashSet<&'a str> {
    let kept = kept_by_calendar(backups, policy, now_ms);
    backups
        .iter()
        .filter(|b| {
            !b.pinned && b.expires_at_ms > 0 && now_ms >= b.expires_at_ms && !kept.contains(b.id)
        })
        .map(|b| b.id)
        .collect()
}

/// Newest backup of each of the last `keep_daily` days, `keep_weekly` weeks and
/// `keep_monthly` months, counting the current one.
fn kept_by_calendar<'a>(
    backups: &[Retained<'a>],
    policy: &Policy,
    now_ms: i64,
) -> HashSet<&'a str> {
    let mut kept = HashSet::new();
    let periods: [(u32, Period); 3] = [
        (policy.keep_daily, day),
        (policy.keep_weekly, week),
        (policy.keep_monthly, month),
    ];
    for (keep, period) in periods {
        if keep == 0 {
            continue;
        }
        let current = period(now_ms);
        let mut newest: BTreeMap<i64, &Retained<'a>> = BTreeMap::new();
        for b in backups {
            let p = period(b.created_at_ms);
            if p > current - i64::from(keep) && p <= current {
                let slot = newest.entry(p).or_insert(b);
                if b.created_at_ms > slot.created_at_ms {
                    *slot = b;
                }
            }
        }
        kept.extend(newest.values().map(|b| b.id));
    }
    kept
}

fn day(ms: i64) -> i64 {
    ms.div_euclid(DAY_MS)
}

/// Monday-based weeks: 1970-01-01 was a Thursday.
fn week(ms: i64) -> i64 {
    (day(ms) + 3).div_euclid(7)
}

fn month(ms: i64) -> i64 {
    match DateTime::from_timestamp_millis(ms) {
        Some(t) => i64::from(t.year()) * 12 + i64::from(t.month0()),
        None => 0,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const T0: i64 = 1_795_000_000_000; // 2026-11-18

    fn backup(id: &'static str, days_ago: i64, pinned: bool) -> Retained<'static> {
        let created = T0 - days_ago * DAY_MS;
        Retained {
            id,
            created_at_ms: created,
            expires_at_ms: created + 7 * DAY_MS,
            pinned,
        }
    }

    #[test]
    fn expires_after_the_retention_unless_pinned() {
        let backups = [
            backup("fresh", 6, false),
            backup("old", 8, false),
            backup("pinned", 30, true),
        ];
        let gone = expired(&backups, &Policy::default(), T0);
        assert_eq!(gone, HashSet::from(["old"]));
    }

    #[test]
    fn calendar_rules_keep_the_newest_of_each_period() {
        let backups = [
            backup("d9-early", 9, false),
            Retained {
                created_at_ms: T0 - 9 * DAY_MS + 3_600_000,
                ..backup("d9-late", 9, false)
            },
            backup("d10", 10, false),
            backup("d40", 40, false),
        ];
        let daily = Policy {
            keep_daily: 10,
            ..Policy::default()
        };
        let gone = expired(&backups, &daily, T0);
        // Ten days counting today reach back to day 9; day 10 is outside.
        assert_eq!(gone, HashSet::from(["d9-early", "d10", "d40"]));
        let monthly = Policy {
            keep_monthly: 3,
            ..Policy::default()
        };
        let gone = expired(&backups, &monthly, T0);
        // The newest of November is d9-late; of October, d40 (2026-10-09).
        assert_eq!(gone, HashSet::from(["d9-early", "d10"]));
    }
}
