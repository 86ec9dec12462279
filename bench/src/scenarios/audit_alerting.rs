//! The audit trail's own alerting over a stretch of refused calls: up to [`CALLERS`]
//! callers' `security.accessDenied` records, interleaved, are published to `BT_AUDIT`; the
//! alerting follower is set back to just before them and timed until its stored position
//! reaches the last one. Each caller's run reaches the burst threshold once and goes on
//! within the window, and so does the tenant's: exactly one `accessDeniedBurst` per caller
//! and one `accessDeniedSurge` is the right count.
//! The baseline is an ordered-consumer read of the same records.

use std::time::{Duration, Instant};

use anyhow::{ensure, Context};
use backtrack_audit::alerting::{self, DenialLimits};
use backtrack_eventlog::AuditLog;
use backtrack_platform::audit::denial_record;
use backtrack_platform::shutdown::Shutdown;
use backtrack_proto::v1;
use futures::StreamExt;

use super::raw::read_stream;
use super::Throughput;
use crate::testbed::Testbed;

/// The tenant the refused calls asked for.
pub const TENANT: &str = "bench-denials";
/// Callers refused at most, each with an equal share of the records (within the
/// follower's bound of callers kept).
pub const CALLERS: usize = 200;
/// Refusals per caller at least: twice the default burst threshold.
const PER_CALLER: usize = 40;
/// Refusals in all at least: enough for the tenant's surge (default 200) too.
const AT_LEAST: usize = 400;
const BATCH: usize = 1000;
const DEADLINE: Duration = Duration::from_secs(600);

/// The figures of one run.
#[derive(Debug, Clone)]
pub struct AlertingRun {
    pub catch_up: Throughput,
    pub raw_read: Throughput,
    /// Alert records the follower wrote for [`TENANT`].
    pub raised: u64,
    /// Callers refused: one burst each, and the tenant's surge, are a right count.
    pub callers: usize,
}

/// Publishes `records` refusals, then times the follower over them.
pub async fn run(bed: &Testbed, records: usize) -> anyhow::Result<AlertingRun> {
    let records = records.max(AT_LEAST);
    let callers = (records / PER_CALLER).clamp(1, CALLERS);
    let nats = bed.nats_client("backtrack-bench-audit-alerting").await?;
    let log = AuditLog::open(nats.clone(), 1).await?;
    let before = log.last_sequence().await?;
    let refusals: Vec<v1::AuditRecord> = (0..records).map(|n| refusal(n % callers)).collect();
    for batch in refusals.chunks(BATCH) {
        log.publish(batch).await?;
    }
    let last = log.last_sequence().await?;
    let filter = format!("bt.audit.{TENANT}.security");
    let raw_read = read_stream(nats.clone(), "BT_AUDIT", &filter, records as u64).await?;

    alerting::rewind(&nats, 1, before)
        .await
        .map_err(anyhow::Error::msg)?;
    let (trigger, shutdown) = Shutdown::new();
    let started = Instant::now();
    tokio::spawn(alerting::run(
        log.clone(),
        nats.clone(),
        1,
        DenialLimits::default(),
        shutdown,
    ));
    loop {
        let at = alerting::stored_position(&nats, 1)
            .await
            .map_err(anyhow::Error::msg)?
            .unwrap_or(0);
        if at >= last {
            break;
        }
        ensure!(
            started.elapsed() < DEADLINE,
            "the audit trail's alerting did not reach sequence {last} within {DEADLINE:?} (at {at})"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let elapsed = started.elapsed();
    trigger.trigger();
    let js = async_nats::jetstream::new(nats);
    let stream = js.get_stream("BT_AUDIT").await?;
    let mut subjects = stream
        .info_with_subjects(format!("bt.audit.{TENANT}.alert"))
        .await
        .context("count the alert records")?;
    let mut raised = 0;
    while let Some(subject) = subjects.next().await {
        raised += subject?.1;
    }
    Ok(AlertingRun {
        catch_up: Throughput {
            count: last - before,
            elapsed,
        },
        raw_read,
        raised: raised as u64,
        callers,
    })
}

/// A PERMISSION_DENIED of caller `caller`, now.
fn refusal(caller: usize) -> v1::AuditRecord {
    let mut r = denial_record(
        None,
        None,
        "127.0.0.1:4000".parse().ok(),
        "/backtrack.v1.DirectoryService/DeleteObject",
        &tonic::Status::permission_denied("the token does not grant DirectoryWriter"),
    );
    r.tenant = TENANT.into();
    if let Some(actor) = r.actor.as_mut() {
        actor.subject = format!("caller-{caller}");
    }
    r
}
