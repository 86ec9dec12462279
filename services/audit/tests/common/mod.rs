//! What the SIEM sink tests share: varied sample records, a real nats-server with the audit
//! stream, sinks started and stopped in the background, and the tally of record ids seen at
//! a receiver. The parsers of what receivers get are in `parse`, the syslog and HTTP
//! receivers on 127.0.0.1 in `receivers`.
// Each test binary compiles this module and uses only part of it.
#![allow(dead_code)]

pub mod parse;
pub mod receivers;

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use anyhow::Context as _;
use async_nats::jetstream;
use backtrack_audit::sinks::{self, SinkConfig, SinkStats};
use backtrack_eventlog::audit::new_record;
use backtrack_eventlog::AuditLog;
use backtrack_platform::shutdown::{Shutdown, ShutdownTrigger};
use backtrack_proto::v1::{AuditActor, AuditCorrelation, AuditRecord, AuditResult, AuditTarget};
use backtrack_test_support::{eventually, NatsServer};
use serde_json::Value;
use tokio::task::JoinHandle;

pub const DEADLINE: Duration = Duration::from_secs(90);

// ---------------------------------------------------------------------------------------
// Records, NATS and sinks

/// Varied records: three tenants (one with characters syslog and CEF must escape), four
/// categories, failures with multi-line reasons, object changes, IPv4 and IPv6 sources.
pub fn sample_records(n: usize) -> Vec<AuditRecord> {
    let tenants = ["acme", "globex", r#"we"ird]\ten"#];
    let kinds = [
        ("recovery", "recovery.started"),
        ("backup", "backup.created"),
        ("directory", "directory.userUpdated"),
        ("security", "security.permissionDenied"),
    ];
    (0..n)
        .map(|i| {
            let (category, action) = kinds[i % kinds.len()];
            let mut r = new_record(tenants[i % tenants.len()], category, action);
            r.actor = Some(AuditActor {
                subject: if i % 7 == 0 {
                    "evil|user=x\\y\n]\"".into()
                } else {
                    format!("user{i}@example.com")
                },
                roles: vec!["admin".into(), "operator".into()],
                source_address: if i % 2 == 0 {
                    "10.0.0.7".into()
                } else {
                    "[::1]:4711".into()
                },
            });
            r.target = Some(AuditTarget {
                kind: "user".into(),
                id: format!("obj-{i}"),
                display_name: "Jane \"JD\" Doe = admin | ops".into(),
            });
            r.result = Some(AuditResult {
                success: i % 5 != 0,
                reason: if i % 5 == 0 {
                    "denied:\nline two = bad | pipe \\ slash".into()
                } else {
                    String::new()
                },
            });
            r.correlation = Some(AuditCorrelation {
                job_id: format!("job-{}", i / 100),
                report_id: "report-1".into(),
                backup_id: String::new(),
            });
            if i % 4 == 2 {
                r.before_json = r#"{"displayName":"old"}"#.into();
                r.after_json = r#"{"displayName":"new"}"#.into();
            }
            r.details_json = format!(r#"{{"n":{i}}}"#);
            r
        })
        .collect()
}

pub fn ids(records: &[AuditRecord]) -> HashSet<String> {
    records.iter().map(|r| r.id.clone()).collect()
}

pub struct Nats {
    _server: NatsServer,
    pub js: jetstream::Context,
    pub log: AuditLog,
}

pub async fn nats() -> anyhow::Result<Nats> {
    let server = NatsServer::start().await?;
    let client = server.client().await?;
    let log = AuditLog::open(client.clone(), 1).await?;
    Ok(Nats {
        _server: server,
        js: jetstream::new(client),
        log,
    })
}

/// A sink config from its JSON form, as the config file would have it.
pub fn config(value: Value) -> SinkConfig {
    let sink: SinkConfig = serde_json::from_value(value).unwrap();
    sink.validate().unwrap();
    sink
}

pub struct RunningSink {
    pub stats: Arc<SinkStats>,
    trigger: ShutdownTrigger,
    task: JoinHandle<()>,
}

pub fn start_sink(js: &jetstream::Context, sink: SinkConfig) -> RunningSink {
    let (trigger, shutdown) = Shutdown::new();
    let stats = Arc::new(SinkStats::default());
    let task = tokio::spawn(sinks::run(js.clone(), sink, stats.clone(), shutdown));
    RunningSink {
        stats,
        trigger,
        task,
    }
}

impl RunningSink {
    pub async fn stop(self) -> anyhow::Result<Arc<SinkStats>> {
        self.trigger.trigger();
        tokio::time::timeout(Duration::from_secs(30), self.task)
            .await
            .context("the sink did not stop within 30 s")??;
        Ok(self.stats)
    }
}

/// Record ids received, with how often.
#[derive(Clone, Default)]
pub struct Seen(Arc<Mutex<HashMap<String, u32>>>);

impl Seen {
    pub fn add(&self, id: &str) {
        *self.0.lock().unwrap().entry(id.to_string()).or_default() += 1;
    }

    pub fn missing(&self, expected: &HashSet<String>) -> usize {
        let seen = self.0.lock().unwrap();
        expected.iter().filter(|id| !seen.contains_key(*id)).count()
    }

    pub fn distinct(&self) -> usize {
        self.0.lock().unwrap().len()
    }

    pub fn duplicates(&self) -> u32 {
        self.0.lock().unwrap().values().map(|n| n - 1).sum()
    }

    pub fn unexpected(&self, expected: &HashSet<String>) -> usize {
        let seen = self.0.lock().unwrap();
        seen.keys().filter(|id| !expected.contains(*id)).count()
    }

    pub async fn wait_for_all(&self, expected: &HashSet<String>, what: &str) -> anyhow::Result<()> {
        eventually(
            &format!("all {} records at the {what}", expected.len()),
            DEADLINE,
            || async { (self.missing(expected) == 0).then_some(()) },
        )
        .await
    }

    pub async fn wait_for_at_least(&self, n: usize, what: &str) -> anyhow::Result<()> {
        eventually(&format!("{n} records at the {what}"), DEADLINE, || async {
            (self.distinct() >= n).then_some(())
        })
        .await
    }
}
