//! Process-wide metrics in the Prometheus text exposition format 0.0.4.
//!
//! Every metric Backtrack exports is a constant in this module ([`CATALOGUE`] lists them
//! all), so the names — part of the operator contract — live in one place. Updates go to
//! one global registry: a map from label values to atomics, locked only to find or insert
//! a series, which is plenty at the rates here (one update per batch, job or call).
//! [`render`] writes the exposition; families without a series yet still show their
//! `# HELP` and `# TYPE` lines, so dashboards see every name from the first scrape.
//!
//! The registry sits in the event log crate because every service and the platform crate
//! depend on it; `backtrack_platform::metrics` re-exports it.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, LazyLock, Mutex, PoisonError};
use std::time::Duration;

/// The content type of [`render`]'s output.
pub const CONTENT_TYPE: &str = "text/plain; version=0.0.4; charset=utf-8";

/// Upper bounds (seconds) for latencies of single operations: appends, RPCs.
const LATENCY_BUCKETS: &[f64] = &[
    0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
];
/// Upper bounds (seconds) for whole jobs: recoveries and difference reports.
const JOB_BUCKETS: &[f64] = &[
    0.1, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 300.0, 900.0, 3600.0,
];

/// Events the stream acknowledged as newly stored (duplicates not counted).
pub const EVENTS_APPENDED: Counter = Counter(Desc {
    name: "backtrack_events_appended_total",
    help: "Events appended to the event log and acknowledged (duplicates excluded).",
    kind: Kind::Counter,
});
/// Latency of one `EventLog::append` batch, until every ack is in.
pub const APPEND_SECONDS: Histogram = Histogram(Desc {
    name: "backtrack_append_seconds",
    help: "Time to append one batch of events, until every ack is in.",
    kind: Kind::Histogram(LATENCY_BUCKETS),
});
/// Events in the log a projection has not folded yet; label `projection`.
pub const PROJECTION_LAG: Gauge = Gauge(Desc {
    name: "backtrack_projection_lag_events",
    help: "Stream messages a projection has not folded yet (label projection).",
    kind: Kind::Gauge,
});
/// Recovery operations applied and acknowledged in the audit trail.
pub const RECOVERY_OPERATIONS_APPLIED: Counter = Counter(Desc {
    name: "backtrack_recovery_operations_applied_total",
    help: "Recovery operations applied, counted once their audit records are acknowledged.",
    kind: Kind::Counter,
});
/// Recovery jobs this process finished; label `state`.
pub const RECOVERY_JOBS_FINISHED: Counter = Counter(Desc {
    name: "backtrack_recovery_jobs_finished_total",
    help: "Recovery jobs this process finished, by final state.",
    kind: Kind::Counter,
});
/// Recovery jobs this process is running now.
pub const RECOVERY_JOBS_RUNNING: Gauge = Gauge(Desc {
    name: "backtrack_recovery_jobs_running",
    help: "Recovery jobs this process is running now.",
    kind: Kind::Gauge,
});
/// Duration of finished recovery jobs, from start to final state.
pub const RECOVERY_JOB_SECONDS: Histogram = Histogram(Desc {
    name: "backtrack_recovery_job_seconds",
    help: "Duration of recovery jobs this process finished, from start to final state.",
    kind: Kind::Histogram(JOB_BUCKETS),
});
/// Difference reports this process finished; label `state`.
pub const REPORTS_FINISHED: Counter = Counter(Desc {
    name: "backtrack_reports_finished_total",
    help: "Difference reports this process finished, by final state.",
    kind: Kind::Counter,
});
/// Duration of finished difference reports.
pub const REPORT_SECONDS: Histogram = Histogram(Desc {
    name: "backtrack_report_seconds",
    help: "Duration of difference reports this process finished.",
    kind: Kind::Histogram(JOB_BUCKETS),
});
/// Time spent in each phase of a difference report; label `phase` (`compute`: reading
/// and comparing the changed objects, `store`: writing the items to the object store).
pub const REPORT_PHASE_SECONDS: Histogram = Histogram(Desc {
    name: "backtrack_report_phase_seconds",
    help: "Time difference reports spent computing their items and storing them (label phase: compute, store).",
    kind: Kind::Histogram(JOB_BUCKETS),
});
/// Audit records a sink delivered; label `sink`.
pub const AUDIT_SINK_DELIVERED: Counter = Counter(Desc {
    name: "backtrack_audit_sink_delivered_total",
    help: "Audit records delivered to an external sink (label sink).",
    kind: Kind::Counter,
});
/// Failed deliveries to a sink; label `sink`.
pub const AUDIT_SINK_ERRORS: Counter = Counter(Desc {
    name: "backtrack_audit_sink_errors_total",
    help: "Failed delivery attempts to an external audit sink (label sink).",
    kind: Kind::Counter,
});
/// Audit records waiting for a sink; label `sink`.
pub const AUDIT_SINK_BACKLOG: Gauge = Gauge(Desc {
    name: "backtrack_audit_sink_backlog",
    help: "Audit records waiting to be delivered to an external sink (label sink).",
    kind: Kind::Gauge,
});
/// gRPC handling time until the response headers; labels `method`, `code`.
pub const RPC_SECONDS: Histogram = Histogram(Desc {
    name: "backtrack_rpc_seconds",
    help: "gRPC handling time until the response headers, by method path and status code.",
    kind: Kind::Histogram(LATENCY_BUCKETS),
});

/// Token ids this process refuses as revoked: every process following the revocation list
/// holds the same number.
pub const REVOKED_TOKENS: Gauge = Gauge(Desc {
    name: "backtrack_revoked_tokens",
    help: "Revoked token ids this process refuses (from the bt-token-revocations bucket); every process should hold the same number.",
    kind: Kind::Gauge,
});

/// Connection events of this process's NATS clients; label `event` (`connected`,
/// `disconnected`, `slow_consumer`, `server_error`, `client_error`, `lame_duck`,
/// `draining`, `closed`).
pub const NATS_CLIENT_EVENTS: Counter = Counter(Desc {
    name: "backtrack_nats_client_events_total",
    help: "Connection events of this process's NATS clients (label event); slow_consumer means the client dropped messages it could not hand over fast enough.",
    kind: Kind::Counter,
});

/// Every metric above, in exposition order.
pub const CATALOGUE: &[Desc] = &[
    EVENTS_APPENDED.0,
    APPEND_SECONDS.0,
    PROJECTION_LAG.0,
    RECOVERY_OPERATIONS_APPLIED.0,
    RECOVERY_JOBS_FINISHED.0,
    RECOVERY_JOBS_RUNNING.0,
    RECOVERY_JOB_SECONDS.0,
    REPORTS_FINISHED.0,
    REPORT_SECONDS.0,
    REPORT_PHASE_SECONDS.0,
    AUDIT_SINK_DELIVERED.0,
    AUDIT_SINK_ERRORS.0,
    AUDIT_SINK_BACKLOG.0,
    RPC_SECONDS.0,
    REVOKED_TOKENS.0,
    NATS_CLIENT_EVENTS.0,
];

/// What a metric is called, what it means and how it is kept.
#[derive(Clone, Copy, Debug)]
pub struct Desc {
    pub name: &'static str,
    pub help: &'static str,
    pub kind: Kind,
}

/// The metric types this registry knows; a histogram carries its bucket upper bounds.
#[derive(Clone, Copy, Debug)]
pub enum Kind {
    Counter,
    Gauge,
    Histogram(&'static [f64]),
}

impl Kind {
    fn type_name(self) -> &'static str {
        match self {
            Kind::Counter => "counter",
            Kind::Gauge => "gauge",
            Kind::Histogram(_) => "histogram",
        }
    }
}

/// Label pairs of one series, e.g. `&[("state", "successful")]`.
pub type Labels<'a> = &'a [(&'static str, &'a str)];

/// A value that only goes up.
#[derive(Clone, Copy, Debug)]
pub struct Counter(pub Desc);

impl Counter {
    pub fn inc_by(&self, labels: Labels<'_>, n: u64) {
        if let Series::Counter(value) = &*series(&self.0, labels) {
            value.fetch_add(n, Ordering::Relaxed);
        }
    }

    /// Mirrors a total another component keeps (e.g. a sink's delivery count).
    pub fn set_total(&self, labels: Labels<'_>, total: u64) {
        if let Series::Counter(value) = &*series(&self.0, labels) {
            value.store(total, Ordering::Relaxed);
        }
    }
}

/// A value that goes up and down.
#[derive(Clone, Copy, Debug)]
pub struct Gauge(pub Desc);

impl Gauge {
    pub fn set(&self, labels: Labels<'_>, value: f64) {
        if let Series::Gauge(bits) = &*series(&self.0, labels) {
            bits.store(value.to_bits(), Ordering::Relaxed);
        }
    }

    pub fn add(&self, labels: Labels<'_>, delta: f64) {
        if let Series::Gauge(bits) = &*series(&self.0, labels) {
            add_f64(bits, delta);
        }
    }
}

/// Observations counted into fixed buckets, with their sum and count.
#[derive(Clone, Copy, Debug)]
pub struct Histogram(pub Desc);

impl Histogram {
    pub fn observe(&self, labels: Labels<'_>, seconds: f64) {
        if let Series::Histogram {
            bounds,
            buckets,
            sum,
            count,
        } = &*series(&self.0, labels)
        {
            // Buckets are kept non-cumulative; rendering adds them up.
            let slot = bounds
                .iter()
                .position(|bound| seconds <= *bound)
                .unwrap_or(bounds.len());
            buckets[slot].fetch_add(1, Ordering::Relaxed);
            add_f64(sum, seconds);
            count.fetch_add(1, Ordering::Relaxed);
        }
    }

    pub fn observe_duration(&self, labels: Labels<'_>, elapsed: Duration) {
        self.observe(labels, elapsed.as_secs_f64());
    }
}

/// One labelled series' atomics.
enum Series {
    Counter(AtomicU64),
    /// `f64` bits.
    Gauge(AtomicU64),
    Histogram {
        bounds: &'static [f64],
        /// One per bound plus `+Inf`, not cumulative.
        buckets: Vec<AtomicU64>,
        /// `f64` bits.
        sum: AtomicU64,
        count: AtomicU64,
    },
}

impl Series {
    fn new(kind: Kind) -> Self {
        match kind {
            Kind::Counter => Series::Counter(AtomicU64::new(0)),
            Kind::Gauge => Series::Gauge(AtomicU64::new(0f64.to_bits())),
            Kind::Histogram(bounds) => Series::Histogram {
                bounds,
                buckets: (0..=bounds.len()).map(|_| AtomicU64::new(0)).collect(),
                sum: AtomicU64::new(0f64.to_bits()),
                count: AtomicU64::new(0),
            },
        }
    }
}

type LabelKey = Vec<(&'static str, String)>;
type Families = BTreeMap<&'static str, BTreeMap<LabelKey, Arc<Series>>>;
/// One family's series, copied out of the registry for rendering.
type Snapshot = Vec<(Desc, Vec<(LabelKey, Arc<Series>)>)>;

static REGISTRY: LazyLock<Mutex<Families>> = LazyLock::new(Mutex::default);

fn series(desc: &Desc, labels: Labels<'_>) -> Arc<Series> {
    let key: LabelKey = labels.iter().map(|(k, v)| (*k, (*v).to_string())).collect();
    let mut families = REGISTRY.lock().unwrap_or_else(PoisonError::into_inner);
    families
        .entry(desc.name)
        .or_default()
        .entry(key)
        .or_insert_with(|| Arc::new(Series::new(desc.kind)))
        .clone()
}

fn add_f64(bits: &AtomicU64, delta: f64) {
    let _ = bits.fetch_update(Ordering::Relaxed, Ordering::Relaxed, |old| {
        Some((f64::from_bits(old) + delta).to_bits())
    });
}

/// The whole registry in the Prometheus text format 0.0.4.
pub fn render() -> String {
    let families: Snapshot = {
        let registry = REGISTRY.lock().unwrap_or_else(PoisonError::into_inner);
        CATALOGUE
            .iter()
            .map(|desc| {
                let series = registry
                    .get(desc.name)
                    .map(|s| s.iter().map(|(k, v)| (k.clone(), v.clone())).collect())
                    .unwrap_or_default();
                (*desc, series)
            })
            .collect()
    };
    let mut out = String::new();
    for (desc, series) in families {
        let _ = writeln!(out, "# HELP {} {}", desc.name, desc.help);
        let _ = writeln!(out, "# TYPE {} {}", desc.name, desc.kind.type_name());
        for (labels, series) in series {
            render_series(&mut out, desc.name, &labels, &series);
        }
    }
    out
}

fn render_series(out: &mut String, name: &str, labels: &LabelKey, series: &Series) {
    match series {
        Series::Counter(value) => {
            let _ = writeln!(
                out,
                "{name}{} {}",
                label_text(labels, None),
                value.load(Ordering::Relaxed)
            );
        }
        Series::Gauge(bits) => {
            let value = f64::from_bits(bits.load(Ordering::Relaxed));
            let _ = writeln!(out, "{name}{} {}", label_text(labels, None), number(value));
        }
        Series::Histogram {
            bounds,
            buckets,
            sum,
            count,
        } => {
            let mut cumulative = 0;
            for (i, bucket) in buckets.iter().enumerate() {
                cumulative += bucket.load(Ordering::Relaxed);
                let le = bounds
                    .get(i)
                    .map_or_else(|| "+Inf".to_string(), |b| number(*b));
                let _ = writeln!(
                    out,
                    "{name}_bucket{} {cumulative}",
                    label_text(labels, Some(&le))
                );
            }
            let sum = f64::from_bits(sum.load(Ordering::Relaxed));
            let plain = label_text(labels, None);
            let _ = writeln!(out, "{name}_sum{plain} {}", number(sum));
            let _ = writeln!(out, "{name}_count{plain} {}", count.load(Ordering::Relaxed));
        }
    }
}

fn label_text(labels: &LabelKey, le: Option<&str>) -> String {
    let mut pairs: Vec<String> = labels
        .iter()
        .map(|(k, v)| format!("{k}=\"{}\"", escape(v)))
        .collect();
    if let Some(le) = le {
        pairs.push(format!("le=\"{le}\""));
    }
    if pairs.is_empty() {
        String::new()
    } else {
        format!("{{{}}}", pairs.join(","))
    }
}

fn escape(value: &str) -> String {
    value
        .replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

fn number(value: f64) -> String {
    if value.is_infinite() {
        if value > 0.0 { "+Inf" } else { "-Inf" }.to_string()
    } else {
        value.to_string()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const TEST_COUNTER: Counter = Counter(Desc {
        name: "backtrack_events_appended_total",
        help: "",
        kind: Kind::Counter,
    });

    #[test]
    fn renders_every_family_and_cumulative_buckets() {
        TEST_COUNTER.inc_by(&[("unit", "a\"b")], 3);
        RECOVERY_JOB_SECONDS.observe(&[("unit", "x")], 0.3);
        RECOVERY_JOB_SECONDS.observe(&[("unit", "x")], 7000.0);
        PROJECTION_LAG.set(&[("projection", "unit")], 4.0);
        let text = render();
        for desc in CATALOGUE {
            assert!(text.contains(&format!("# TYPE {} ", desc.name)), "{text}");
        }
        assert!(text.contains("backtrack_events_appended_total{unit=\"a\\\"b\"} 3"));
        assert!(text.contains("backtrack_recovery_job_seconds_bucket{unit=\"x\",le=\"0.1\"} 0"));
        assert!(text.contains("backtrack_recovery_job_seconds_bucket{unit=\"x\",le=\"0.5\"} 1"));
        assert!(text.contains("backtrack_recovery_job_seconds_bucket{unit=\"x\",le=\"+Inf\"} 2"));
        assert!(text.contains("backtrack_recovery_job_seconds_count{unit=\"x\"} 2"));
        assert!(text.contains("backtrack_projection_lag_events{projection=\"unit\"} 4"));
    }
}
