//! Whether a tenant's scheduled backups stopped: the overview's `backupsMissed` alert.
//!
//! The scheduler takes each slot of the tenant's cron once and does not back-fill slots
//! missed while no snapshotter ran. A slot without a backup is a miss, once [`GRACE_MS`]
//! has passed, if the slot came after the tenant was created and after its policy was set
//! (plus [`SETTLE_MS`]: the scheduler reads a changed policy within its refresh). For the
//! deployment's default policy that time is since when the default has been what it is
//! (`default_since_ms`). When the time is unknown (a server that does not tell), the last
//! slot may be the first of a changed schedule, so the last two slots must have passed
//! with no scheduled backup since the earlier of them.

use backtrack_proto::v1;
use chrono::{DateTime, Utc};

/// How long after its slot a scheduled backup may take to appear.
pub const GRACE_MS: i64 = 10 * 60 * 1000;
/// How long after a policy change its schedule's slots count: the scheduler reads policies
/// at least every 30 seconds.
pub const SETTLE_MS: i64 = 60 * 1000;
/// How far back slots are looked for.
const LOOKBACK_MS: i64 = 35 * 24 * 3600 * 1000;
/// Most slots looked at (a schedule every minute has 50,400 in 35 days).
const MAX_SLOTS: usize = 100_000;

/// The slots missed (oldest first): the last slot at least [`GRACE_MS`] before `now_ms`,
/// when it came after `created_ms` and `policy_set_ms` (+ [`SETTLE_MS`]) and no
/// scheduled backup was taken from it on; with `policy_set_ms` unknown (0), the last two
/// slots, after `created_ms`, with none from the earlier one on.
pub fn missed(
    schedule: &cron::Schedule,
    backups: &[v1::Backup],
    created_ms: i64,
    policy_set_ms: i64,
    now_ms: i64,
) -> Option<Vec<i64>> {
    let from = DateTime::<Utc>::from_timestamp_millis(now_ms - LOOKBACK_MS)?;
    let until = now_ms - GRACE_MS;
    let mut last_two = (None, None);
    for slot in schedule.after(&from).take(MAX_SLOTS) {
        let ms = slot.timestamp_millis();
        if ms > until {
            break;
        }
        last_two = (last_two.1, Some(ms));
    }
    let taken_since = |slot: i64| {
        backups
            .iter()
            .any(|b| b.trigger == v1::BackupTrigger::Scheduled as i32 && b.created_at_ms >= slot)
    };
    if policy_set_ms > 0 {
        let last = last_two.1?;
        let judged = last >= created_ms && last >= policy_set_ms.saturating_add(SETTLE_MS);
        return (judged && !taken_since(last)).then(|| vec![last]);
    }
    let (Some(earlier), Some(later)) = last_two else {
        return None;
    };
    (earlier >= created_ms && !taken_since(earlier)).then(|| vec![earlier, later])
}

#[cfg(test)]
mod tests {
    use std::str::FromStr;

    use backtrack_proto::v1;

    use super::missed;

    const HOUR: i64 = 3600 * 1000;
    /// 2026-12-07T12:00:00Z.
    const NOON: i64 = 1_796_644_800_000;

    fn scheduled(at: i64) -> v1::Backup {
        v1::Backup {
            trigger: v1::BackupTrigger::Scheduled as i32,
            created_at_ms: at,
            ..Default::default()
        }
    }

    #[test]
    fn two_slots_without_a_scheduled_backup_are_missed_one_is_not() {
        let hourly = cron::Schedule::from_str("0 0 * * * *").unwrap();
        let created = NOON - 48 * HOUR;
        // Backups at 10:00 and 11:00: nothing missed at 12:30 (the 12:00 slot may be
        // the first of a changed schedule).
        let ok = [scheduled(NOON - 2 * HOUR + 5), scheduled(NOON - HOUR + 5)];
        assert_eq!(missed(&hourly, &ok, created, 0, NOON + HOUR / 2), None);
        // At 13:30, 12:00 and 13:00 have passed without one: missed.
        assert_eq!(
            missed(&hourly, &ok, created, 0, NOON + 3 * HOUR / 2),
            Some(vec![NOON, NOON + HOUR])
        );
        // An on-demand backup does not stand in for the schedule.
        let mut on_demand = ok.to_vec();
        on_demand.push(v1::Backup {
            created_at_ms: NOON + HOUR,
            ..scheduled(0)
        });
        on_demand[2].trigger = v1::BackupTrigger::OnDemand as i32;
        assert!(missed(&hourly, &on_demand, created, 0, NOON + 3 * HOUR / 2).is_some());
        // Within the grace after a slot, it does not count yet.
        assert_eq!(missed(&hourly, &ok, created, 0, NOON + HOUR + 60_000), None);
        // A tenant created after the earlier slot cannot have missed it.
        assert_eq!(missed(&hourly, &[], NOON + 1, 0, NOON + 3 * HOUR / 2), None);
    }

    #[test]
    fn with_the_time_the_policy_was_set_one_missed_slot_is_enough() {
        let daily = cron::Schedule::from_str("0 0 2 * * *").unwrap();
        let created = NOON - 30 * 24 * HOUR;
        // Set a week ago, backups every night until two nights ago: last night's 02:00
        // was missed, seen the same morning.
        let set = NOON - 7 * 24 * HOUR;
        let nights = [scheduled(NOON - 34 * HOUR + 5)];
        let last_night = NOON - 10 * HOUR;
        assert_eq!(
            missed(&daily, &nights, created, set, NOON),
            Some(vec![last_night])
        );
        assert_eq!(
            missed(&daily, &nights, created, 0, NOON),
            None,
            "two slots without it"
        );
        // Taken: nothing missed.
        let taken = [scheduled(last_night + 5)];
        assert_eq!(missed(&daily, &taken, created, set, NOON), None);
        // Set within a minute before the slot (or after it): that slot is not judged.
        assert_eq!(
            missed(&daily, &[], created, last_night - 30_000, NOON),
            None
        );
        assert_eq!(missed(&daily, &[], created, last_night + HOUR, NOON), None);
        assert_eq!(
            missed(&daily, &[], created, last_night - 2 * 60_000, NOON),
            Some(vec![last_night])
        );
        // A tenant created after the slot cannot have missed it.
        assert_eq!(missed(&daily, &[], last_night + 1, set, NOON), None);
    }
}
