//! Whether a tenant's scheduled backups stopped: the overview's `backupsMissed` alert.
//!
//! The scheduler takes each slot of the tenant's cron once and does not back-fill slots
//! missed while no snapshotter ran. A slot without a backup is a miss; one alone may be
//! the first slot of a changed schedule (the scheduler starts at the next slot after the
//! change, and the policy keeps no time of change), so the alert needs the last two slots
//! — each at least [`GRACE_MS`] ago, after the tenant was created — to have passed with no
//! scheduled backup since the earlier of them.

use backtrack_proto::v1;
use chrono::{DateTime, Utc};

/// How long after its slot a scheduled backup may take to appear.
pub const GRACE_MS: i64 = 10 * 60 * 1000;
/// How far back slots are looked for.
const LOOKBACK_MS: i64 = 35 * 24 * 3600 * 1000;
/// Most slots looked at (a schedule every minute has 50,400 in 35 days).
const MAX_SLOTS: usize = 100_000;

/// The two slots missed, when the schedule's last two slots (at least [`GRACE_MS`] before
/// `now_ms`, after `created_ms`) passed with no scheduled backup from the earlier one on.
pub fn missed(
    schedule: &cron::Schedule,
    backups: &[v1::Backup],
    created_ms: i64,
    now_ms: i64,
) -> Option<(i64, i64)> {
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
    let (Some(earlier), Some(later)) = last_two else {
        return None;
    };
    if earlier < created_ms {
        return None;
    }
    let taken = backups
        .iter()
        .any(|b| b.trigger == v1::BackupTrigger::Scheduled as i32 && b.created_at_ms >= earlier);
    (!taken).then_some((earlier, later))
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
        assert_eq!(missed(&hourly, &ok, created, NOON + HOUR / 2), None);
        // At 13:30, 12:00 and 13:00 have passed without one: missed.
        assert_eq!(
            missed(&hourly, &ok, created, NOON + 3 * HOUR / 2),
            Some((NOON, NOON + HOUR))
        );
        // An on-demand backup does not stand in for the schedule.
        let mut on_demand = ok.to_vec();
        on_demand.push(v1::Backup {
            created_at_ms: NOON + HOUR,
            ..scheduled(0)
        });
        on_demand[2].trigger = v1::BackupTrigger::OnDemand as i32;
        assert!(missed(&hourly, &on_demand, created, NOON + 3 * HOUR / 2).is_some());
        // Within the grace after a slot, it does not count yet.
        assert_eq!(missed(&hourly, &ok, created, NOON + HOUR + 60_000), None);
        // A tenant created after the earlier slot cannot have missed it.
        assert_eq!(missed(&hourly, &[], NOON + 1, NOON + 3 * HOUR / 2), None);
    }
}
