//! One module per scenario; each returns plain numbers and leaves judging them to
//! [`crate::report`].
//!
//! - [`raw`]: the JetStream baselines (`raw_publish`, `raw_read`, and `raw_read_log` of the
//!   log itself before the time-travel build) and the event shape they copy.
//! - [`import`]: `bulk_import`, the demo tenant over gRPC.
//! - [`replay`]: the log folded into a fresh projection, digest-checked.
//! - [`feed`]: `UpdateObject` → change-feed subscriber latency.
//! - [`revocation`]: a token revoked through one process → refused by another.
//! - [`memory`]: peak RSS of this process and of nats-server.
//! - [`large_tenant`]: a tenant of up to millions of objects appended straight to the log.
//! - [`snapshotter`]: a fresh time-travel store built from the log, backups, verification
//!   and reads of the past (store and gRPC), digest-checked against the directory.
//! - [`differ`]: difference reports over 1%, none and all of a tenant's objects, checked
//!   against what was changed, and the peer (`git diff` of two exported folders).
//! - [`recovery`]: recovery jobs undoing mixed incidents (attribute changes, removed
//!   memberships, soft and hard deletes) of a given number of changes, with their audit
//!   records, against the reference system's published rate.
//! - [`judge`]: `overview`'s judgement of an incident and its recovery: which alerts were
//!   set back since.
//! - [`cluster`]: the event log on a three-node NATS cluster with R3 streams against plain
//!   JetStream on the same cluster, and the time to append again after a node's loss.
//! - [`audit`]: audit records published, chained by the audit service and delivered by its
//!   syslog and HTTP sinks to receivers on localhost, with delivery lags.

pub mod audit;
pub mod audit_alerting;
pub mod cluster;
pub mod differ;
pub mod feed;
pub mod import;
pub mod judge;
pub mod large_tenant;
pub mod memory;
pub mod raw;
pub mod recovery;
pub mod replay;
pub mod revocation;
pub mod snapshotter;

use std::time::Duration;

/// `count` things done in `elapsed`.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Throughput {
    pub count: u64,
    pub elapsed: Duration,
}

impl Throughput {
    pub fn per_second(&self) -> f64 {
        self.count as f64 / self.elapsed.as_secs_f64().max(1e-9)
    }
}

/// The `q` quantile (0..=1, nearest rank) of `samples` in milliseconds; 0 when empty.
pub fn percentile_ms(samples: &[Duration], q: f64) -> f64 {
    if samples.is_empty() {
        return 0.0;
    }
    let mut sorted = samples.to_vec();
    sorted.sort_unstable();
    let rank = ((q * sorted.len() as f64).ceil() as usize).clamp(1, sorted.len());
    sorted[rank - 1].as_secs_f64() * 1000.0
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nearest_rank_percentiles() {
        let samples: Vec<Duration> = (1..=100).map(Duration::from_millis).collect();
        assert_eq!(percentile_ms(&samples, 0.5), 50.0);
        assert_eq!(percentile_ms(&samples, 0.99), 99.0);
        assert_eq!(percentile_ms(&samples[..1], 0.99), 1.0);
        assert_eq!(percentile_ms(&[], 0.5), 0.0);
    }
}
