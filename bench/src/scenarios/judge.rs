//! `backtrack overview`'s judgement of an incident and its recovery: the tenant's whole
//! history, read from the log and folded through the alert rules (`Watch`), which follow
//! each alerted object and each run of deletions and link removals to tell which alerts
//! were set back since. Run after a recovery, every alert of the incident must come out
//! undone.

use std::time::{Duration, Instant};

use backtrack_domain::alerts::{Thresholds, Watch};
use backtrack_eventlog::EventLog;
use futures::TryStreamExt;

/// One judgement of a tenant's history.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Judged {
    pub events: u64,
    pub elapsed: Duration,
    /// Every alert, as `<rule> by <actor>`, with whether it was set back since.
    pub alerts: Vec<(String, bool)>,
}

impl Judged {
    pub fn events_per_second(&self) -> f64 {
        self.events as f64 / self.elapsed.as_secs_f64().max(f64::EPSILON)
    }

    /// The alerts still standing.
    pub fn standing(&self) -> Vec<&str> {
        self.alerts
            .iter()
            .filter(|(_, undone)| !undone)
            .map(|(alert, _)| alert.as_str())
            .collect()
    }
}

/// Reads `tenant`'s history to the log's end and judges it as `overview` does (the
/// default thresholds).
pub async fn judge(log: &EventLog, tenant: &str) -> anyhow::Result<Judged> {
    let started = Instant::now();
    let mut events = Box::pin(log.read_until_now(1, &format!("bt.ev.{tenant}.>")).await?);
    let mut watch = Watch::new(Thresholds::default());
    let mut count = 0;
    while let Some(stored) = events.try_next().await? {
        watch.push(stored.sequence, &stored.event);
        count += 1;
    }
    let alerts = watch
        .finish()
        .into_iter()
        .map(|a| (format!("{} by {}", a.rule, a.actor), a.undone.is_some()))
        .collect();
    Ok(Judged {
        events: count,
        elapsed: started.elapsed(),
        alerts,
    })
}
