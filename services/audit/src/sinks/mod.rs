//! SIEM sinks: each configured sink follows `BT_AUDIT` with its own durable consumer and
//! delivers every record, retrying while the receiver is down.
//!
//! A sink pulls records in batches, renders them ([`crate::format`]), hands them to its
//! receiver and acknowledges them to the stream only once the receiver has them: syslog after
//! the bytes were written, flushed and the connection was seen still open a moment later;
//! HTTP after a 2xx; file after write and fsync. A failed delivery keeps the batch and tries
//! again with exponential backoff, reconnecting, so nothing is skipped; a record may arrive
//! twice when its acknowledgement was lost. Restarting a sink under the same name resumes
//! where it stopped.
//!
//! Modules: [`config`] (the config file), [`runner`] (the consumer loop), [`syslog`],
//! [`http`], [`file`] (the transports), [`tls`] (connections).

mod batch;
pub mod config;
pub mod file;
pub mod http;
mod runner;
pub mod syslog;
mod tls;

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use backtrack_platform::shutdown::Shutdown;

pub use config::{load_config, parse_config, Facility, SinkConfig, SinkKind, TlsConfig};

/// Counters a sink keeps for metrics; cheap to read at any time.
#[derive(Debug, Default)]
pub struct SinkStats {
    /// Records the receiver accepted and the stream was told about.
    pub delivered: AtomicU64,
    /// Failed attempts: connects, writes, non-2xx answers, stream errors.
    pub errors: AtomicU64,
    /// Records still to deliver, as of the last pull (those in hand included).
    pub backlog: AtomicU64,
    /// Stream sequence of the last record acknowledged.
    pub last_sequence: AtomicU64,
}

impl SinkStats {
    pub fn delivered(&self) -> u64 {
        self.delivered.load(Ordering::Relaxed)
    }

    pub fn errors(&self) -> u64 {
        self.errors.load(Ordering::Relaxed)
    }

    pub fn backlog(&self) -> u64 {
        self.backlog.load(Ordering::Relaxed)
    }

    pub fn last_sequence(&self) -> u64 {
        self.last_sequence.load(Ordering::Relaxed)
    }
}

/// Runs one sink until `shutdown`: a durable pull consumer `bt-audit-sink-<name>` on
/// `BT_AUDIT` (created if missing, explicit acks, from the first record), batches delivered
/// and then acknowledged, failures retried with exponential backoff for as long as it takes.
/// An invalid config is logged and the sink does not start.
pub async fn run(
    js: async_nats::jetstream::Context,
    sink: SinkConfig,
    stats: Arc<SinkStats>,
    shutdown: Shutdown,
) {
    if let Err(problem) = sink.validate() {
        tracing::error!(sink = %sink.name, %problem, "audit sink not started: invalid config");
        return;
    }
    runner::run(js, sink, stats, shutdown).await;
}

/// This machine's host name for syslog HOSTNAME and the HEC `host` field.
pub(crate) fn local_hostname() -> Option<String> {
    ["/proc/sys/kernel/hostname", "/etc/hostname"]
        .iter()
        .filter_map(|p| std::fs::read_to_string(p).ok())
        .map(|s| s.trim().to_string())
        .find(|s| !s.is_empty())
}
