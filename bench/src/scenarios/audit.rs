//! The audit trail end to end: records published to `BT_AUDIT` (acknowledged), chained by
//! the audit service, and delivered by two of its SIEM sinks to receivers on localhost — a
//! syslog receiver over TCP (RFC 5424, octet-counted frames, JSON bodies) and an HTTP
//! receiver of HEC-style JSON lines.
//!
//! [`run`] starts an audit service on a fresh index with both sinks (filtered to the
//! scenario's tenant, so earlier scenarios' records do not count), then publishes the
//! records in batches of [`BATCH`] while the sinks deliver. Every record's delivery lag is
//! its arrival at the receiver minus the moment its batch was handed to the stream. The
//! rates count from the first publish to the last arrival (or, for the chain, until the
//! index holds the last record). Publishing as fast as the stream acknowledges saturates the
//! sinks, so those lags measure a queue draining; a second, paced phase publishes at
//! [`PACED_PER_SECOND`] and its lags are the delivery latency itself.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use backtrack_audit::{Audit, AuditConfig};
use backtrack_eventlog::audit::new_record;
use backtrack_platform::shutdown::Shutdown;
use backtrack_proto::v1;
use serde_json::Value;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;

use crate::testbed::Testbed;

/// The tenant the scenario's records belong to.
pub const TENANT: &str = "bench-audit";
/// Records per publish call.
pub const BATCH: usize = 1000;
/// The rate the issue asks for, delivered to a localhost syslog sink.
pub const SYSLOG_TARGET_PER_SECOND: f64 = 20_000.0;
/// The steady rate of the latency phase: well below what the sinks deliver, so its lags
/// are delivery latency, not a queue draining.
pub const PACED_PER_SECOND: usize = 5_000;
/// Records per paced batch (one batch every `PACED_BATCH / PACED_PER_SECOND` seconds).
const PACED_BATCH: usize = 100;
/// How long delivery may take before the run gives up.
const DEADLINE: Duration = Duration::from_secs(600);

/// Arrival instants by record id, as a receiver saw them.
type Arrivals = Arc<Mutex<HashMap<String, Instant>>>;

/// The figures of one run.
#[derive(Debug, Clone)]
pub struct AuditRun {
    pub records: usize,
    pub publish: Duration,
    pub chained: Duration,
    pub syslog: Duration,
    pub http: Duration,
    /// Lags of the saturating run (publishing as fast as the stream acknowledges).
    pub syslog_lags: Vec<Duration>,
    pub http_lags: Vec<Duration>,
    /// Records of the paced phase, and their lags.
    pub paced_records: usize,
    pub paced_syslog_lags: Vec<Duration>,
    pub paced_http_lags: Vec<Duration>,
}

impl AuditRun {
    pub fn per_second(&self, d: Duration) -> f64 {
        self.records as f64 / d.as_secs_f64().max(1e-9)
    }
}

/// Runs the scenario with `records` records.
pub async fn run(bed: &Testbed, records: usize) -> anyhow::Result<AuditRun> {
    let records = records.max(1);
    let syslog = Arrivals::default();
    let http = Arrivals::default();
    let syslog_port = syslog_receiver(syslog.clone()).await?;
    let http_port = http_receiver(http.clone()).await?;
    let config = serde_json::json!({"sinks": [
        {"name": "bench-syslog", "type": "syslog", "address": format!("127.0.0.1:{syslog_port}"),
         "format": "json", "filter_subject": format!("bt.audit.{TENANT}.>")},
        {"name": "bench-http", "type": "http",
         "url": format!("http://127.0.0.1:{http_port}/services/collector/event"),
         "gzip": false, "max_batch_records": 1000, "max_delay_ms": 20, "format": "json",
         "filter_subject": format!("bt.audit.{TENANT}.>")}
    ]});
    let sinks = backtrack_audit::sinks::parse_config(&config.to_string())
        .map_err(|e| anyhow::anyhow!("bench sink config: {e}"))?;
    let nats = bed.nats_client("backtrack-bench-audit").await?;
    let (trigger, shutdown) = Shutdown::new();
    let audit = Audit::start(
        AuditConfig {
            sinks,
            ..AuditConfig::new(bed.scratch_dir("audit-index")?)
        },
        nats,
        shutdown,
    )
    .await
    .context("start the audit service")?;

    let batches: Vec<Vec<v1::AuditRecord>> = (0..records)
        .collect::<Vec<_>>()
        .chunks(BATCH)
        .map(|chunk| chunk.iter().map(|n| record(*n)).collect())
        .collect();
    let mut sent: HashMap<String, Instant> = HashMap::with_capacity(records);
    let start = Instant::now();
    for batch in &batches {
        let at = Instant::now();
        for r in batch {
            sent.insert(r.id.clone(), at);
        }
        audit.log().publish(batch).await?;
    }
    let publish = start.elapsed();
    audit.catch_up().await?;
    let chained = start.elapsed();
    let syslog_done = wait_all(&syslog, records, start).await?;
    let http_done = wait_all(&http, records, start).await?;
    let lags = |sent: &HashMap<String, Instant>, arrivals: &Arrivals| -> Vec<Duration> {
        let arrivals = arrivals.lock().unwrap_or_else(|e| e.into_inner());
        sent.iter()
            .filter_map(|(id, at)| {
                arrivals
                    .get(id)
                    .map(|got| got.saturating_duration_since(*at))
            })
            .collect()
    };
    let (syslog_lags, http_lags) = (lags(&sent, &syslog), lags(&sent, &http));

    // The paced phase: a steady rate below capacity, for delivery latency.
    let paced_records = (records / 4).max(PACED_BATCH);
    let mut paced: HashMap<String, Instant> = HashMap::with_capacity(paced_records);
    let every = Duration::from_secs_f64(PACED_BATCH as f64 / PACED_PER_SECOND as f64);
    let mut tick = tokio::time::interval(every);
    let mut n = records;
    while paced.len() < paced_records {
        tick.tick().await;
        let batch: Vec<v1::AuditRecord> = (n..n + PACED_BATCH).map(record).collect();
        n += PACED_BATCH;
        let at = Instant::now();
        for r in &batch {
            paced.insert(r.id.clone(), at);
        }
        audit.log().publish(&batch).await?;
    }
    let total = records + paced.len();
    wait_all(&syslog, total, start).await?;
    wait_all(&http, total, start).await?;
    trigger.trigger();
    Ok(AuditRun {
        records,
        publish,
        chained,
        syslog: syslog_done,
        http: http_done,
        syslog_lags,
        http_lags,
        paced_records: paced.len(),
        paced_syslog_lags: lags(&paced, &syslog),
        paced_http_lags: lags(&paced, &http),
    })
}

fn record(n: usize) -> v1::AuditRecord {
    let mut r = new_record(TENANT, "recovery", "recovery.operationApplied");
    r.actor = Some(v1::AuditActor {
        subject: "backtrack-bench".into(),
        roles: vec!["GlobalAdministrator".into()],
        source_address: "127.0.0.1".into(),
    });
    r.target = Some(v1::AuditTarget {
        kind: "user".into(),
        id: format!("00000000-0000-4000-8000-{n:012x}"),
        display_name: format!("User {n}"),
    });
    r.result = Some(v1::AuditResult {
        success: true,
        reason: String::new(),
    });
    r.correlation = Some(v1::AuditCorrelation {
        job_id: "bench-job".into(),
        ..Default::default()
    });
    r.after_json = r#"{"department":"Sales"}"#.into();
    r.before_json = r#"{"department":"Legal"}"#.into();
    r
}

/// Waits until `arrivals` holds `count` distinct records; returns the time since `start`
/// of the last arrival.
async fn wait_all(arrivals: &Arrivals, count: usize, start: Instant) -> anyhow::Result<Duration> {
    let deadline = Instant::now() + DEADLINE;
    loop {
        {
            let got = arrivals.lock().unwrap_or_else(|e| e.into_inner());
            if got.len() >= count {
                let last = got.values().max().copied().unwrap_or(start);
                return Ok(last.saturating_duration_since(start));
            }
            if Instant::now() > deadline {
                bail!(
                    "only {} of {count} audit records arrived within {DEADLINE:?}",
                    got.len()
                );
            }
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

/// A syslog receiver: octet-counted frames, the record id from the SD param `id`.
async fn syslog_receiver(arrivals: Arrivals) -> anyhow::Result<u16> {
    let listener = TcpListener::bind("127.0.0.1:0").await?;
    let port = listener.local_addr()?.port();
    tokio::spawn(async move {
        while let Ok((mut socket, _)) = listener.accept().await {
            let arrivals = arrivals.clone();
            tokio::spawn(async move {
                let mut buf = Vec::new();
                let mut chunk = vec![0u8; 1 << 16];
                loop {
                    let n = match socket.read(&mut chunk).await {
                        Ok(0) | Err(_) => return,
                        Ok(n) => n,
                    };
                    let now = Instant::now();
                    buf.extend_from_slice(&chunk[..n]);
                    let mut used = 0;
                    let mut ids = Vec::new();
                    while let Some(space) = buf[used..].iter().position(|b| *b == b' ') {
                        let Some(len) = std::str::from_utf8(&buf[used..used + space])
                            .ok()
                            .and_then(|t| t.parse::<usize>().ok())
                        else {
                            return;
                        };
                        let start = used + space + 1;
                        if buf.len() < start + len {
                            break;
                        }
                        let frame = &buf[start..start + len];
                        if let Some(id) = sd_id(frame) {
                            ids.push(id);
                        }
                        used = start + len;
                    }
                    buf.drain(..used);
                    let mut got = arrivals.lock().unwrap_or_else(|e| e.into_inner());
                    for id in ids {
                        got.entry(id).or_insert(now);
                    }
                }
            });
        }
    });
    Ok(port)
}

fn sd_id(frame: &[u8]) -> Option<String> {
    let text = std::str::from_utf8(frame).ok()?;
    let rest = text.split(" id=\"").nth(1)?;
    Some(rest.split('"').next()?.to_string())
}

/// An HTTP/1.1 receiver of HEC-style JSON lines; answers 200 at once.
async fn http_receiver(arrivals: Arrivals) -> anyhow::Result<u16> {
    let listener = TcpListener::bind("127.0.0.1:0").await?;
    let port = listener.local_addr()?.port();
    tokio::spawn(async move {
        while let Ok((mut socket, _)) = listener.accept().await {
            let arrivals = arrivals.clone();
            tokio::spawn(async move {
                let mut buf = Vec::new();
                let mut chunk = vec![0u8; 1 << 16];
                loop {
                    let head_end = loop {
                        if let Some(p) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
                            break p + 4;
                        }
                        match socket.read(&mut chunk).await {
                            Ok(0) | Err(_) => return,
                            Ok(n) => buf.extend_from_slice(&chunk[..n]),
                        }
                    };
                    let head = String::from_utf8_lossy(&buf[..head_end]).to_ascii_lowercase();
                    let Some(length) = head
                        .lines()
                        .find_map(|l| l.strip_prefix("content-length:"))
                        .and_then(|v| v.trim().parse::<usize>().ok())
                    else {
                        return;
                    };
                    while buf.len() < head_end + length {
                        match socket.read(&mut chunk).await {
                            Ok(0) | Err(_) => return,
                            Ok(n) => buf.extend_from_slice(&chunk[..n]),
                        }
                    }
                    let now = Instant::now();
                    let body =
                        String::from_utf8_lossy(&buf[head_end..head_end + length]).into_owned();
                    buf.drain(..head_end + length);
                    {
                        let mut got = arrivals.lock().unwrap_or_else(|e| e.into_inner());
                        for line in body.lines() {
                            if let Ok(v) = serde_json::from_str::<Value>(line) {
                                if let Some(id) = v["event"]["id"].as_str() {
                                    got.entry(id.to_string()).or_insert(now);
                                }
                            }
                        }
                    }
                    let reply = b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\n{}";
                    if socket.write_all(reply).await.is_err() {
                        return;
                    }
                }
            });
        }
    });
    Ok(port)
}
