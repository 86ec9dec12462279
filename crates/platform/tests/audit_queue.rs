//! Refusal records against a real nats-server: stored while the stream is up; while it is
//! down, a flood of refusals costs a bounded queue and the overflow is summarised in one
//! `security.accessDeniedDropped` record once the stream is back — nothing is lost
//! without being counted.
#![allow(clippy::unwrap_used)]

use std::time::Duration;

use backtrack_eventlog::AuditLog;
use backtrack_platform::audit::{action, denial_record, Auditor};
use backtrack_proto::v1;
use backtrack_test_support::{eventually, NatsServer};
use futures::StreamExt;
use prost::Message;
use tonic::Status;

/// Every record stored so far, decoded.
async fn stored(log: &AuditLog) -> Vec<v1::AuditRecord> {
    let last = log.last_sequence().await.unwrap_or(0);
    if last == 0 {
        return Vec::new();
    }
    let mut read = log.read(1, "bt.audit.>").await.unwrap();
    let mut out = Vec::new();
    while let Some(item) = read.next().await {
        let item = item.unwrap();
        out.push(v1::AuditRecord::decode(item.payload.as_ref()).unwrap());
        if item.sequence >= last {
            break;
        }
    }
    out
}

/// Stored refusals, and the count each stored summary of dropped refusals gives.
fn tally(records: &[v1::AuditRecord]) -> (u64, Vec<u64>) {
    let denied = records
        .iter()
        .filter(|r| r.action == action::ACCESS_DENIED)
        .count() as u64;
    let summaries = records
        .iter()
        .filter(|r| r.action == action::DENIALS_DROPPED)
        .map(|r| {
            serde_json::from_str::<serde_json::Value>(&r.details_json).unwrap()["dropped"]
                .as_u64()
                .unwrap()
        })
        .collect();
    (denied, summaries)
}

fn refusal() -> v1::AuditRecord {
    denial_record(
        None,
        None,
        None,
        "/backtrack.v1.BackupService/ListBackups",
        &Status::unauthenticated("missing bearer token"),
    )
}

#[tokio::test(flavor = "multi_thread")]
async fn a_flood_while_the_stream_is_down_is_bounded_and_counted() {
    let mut server = NatsServer::start().await.unwrap();
    let log = AuditLog::open(server.client().await.unwrap(), 1)
        .await
        .unwrap();
    let auditor = Auditor::with_capacity(log.clone(), 4);

    auditor.deny(refusal()).await;
    let first = stored(&log).await;
    assert_eq!(first.len(), 1, "acknowledged before deny returned");
    assert_eq!(first[0].tenant, "_unauthenticated");

    server.kill();
    const FLOOD: usize = 60;
    let started = std::time::Instant::now();
    for _ in 0..FLOOD {
        auditor.deny(refusal()).await;
    }
    // Only the few queued refusals waited (500 ms each at most); the rest were counted.
    assert!(
        started.elapsed() < Duration::from_secs(10),
        "{:?}",
        started.elapsed()
    );

    server.restart().await.unwrap();
    let (denied, dropped) = eventually(
        "the queued refusals and the summary to be stored",
        Duration::from_secs(60),
        || async {
            let (denied, summaries) = tally(&stored(&log).await);
            let (denied, dropped) = (denied as usize - 1, summaries.iter().sum::<u64>());
            (denied + dropped as usize == FLOOD).then_some((denied, dropped))
        },
    )
    .await
    .unwrap();
    assert!(
        denied <= 1 + 4,
        "at most a batch in flight and a full queue: {denied}"
    );
    assert!(dropped > 0);
}

/// A spool folder, the test's own runtime, a nats-server already killed, and the audit
/// stream it held.
fn stream_gone() -> (
    tempfile::TempDir,
    tokio::runtime::Runtime,
    NatsServer,
    AuditLog,
) {
    let spool = tempfile::tempdir().unwrap();
    let main = tokio::runtime::Runtime::new().unwrap();
    let mut server = main.block_on(NatsServer::start()).unwrap();
    let log = main
        .block_on(async { AuditLog::open(server.client().await.unwrap(), 1).await })
        .unwrap();
    server.kill();
    (spool, main, server, log)
}

/// The server restarted, its audit stream, and the next auditor on the spool folder.
async fn back_on_the_spool(
    server: &mut NatsServer,
    spool: &std::path::Path,
) -> (AuditLog, Auditor) {
    server.restart().await.unwrap();
    let log = AuditLog::open(server.client().await.unwrap(), 1)
        .await
        .unwrap();
    let auditor = Auditor::with_spool(log.clone(), spool).unwrap();
    (log, auditor)
}

/// Records queued while the stream is down outlive the process that queued them: they wait
/// in the spool folder, and the next auditor on that folder publishes them, once each.
#[test]
fn queued_records_outlive_a_crash_through_the_spool() {
    let (spool, main, mut server, log) = stream_gone();

    // The process that queues the refusals dies with them: its runtime and tasks go away.
    let crashed = tokio::runtime::Runtime::new().unwrap();
    let queued: Vec<v1::AuditRecord> = (0..3).map(|_| refusal()).collect();
    crashed.block_on(async {
        let auditor = Auditor::with_spool(log.clone(), spool.path()).unwrap();
        for record in &queued {
            auditor.deny(record.clone()).await;
        }
    });
    drop(crashed);
    let spooled = std::fs::read_dir(spool.path()).unwrap().count();
    assert_eq!(spooled, queued.len(), "one file per queued record");

    main.block_on(async {
        let (log, _next) = back_on_the_spool(&mut server, spool.path()).await;
        let stored = eventually(
            "the spooled records to be stored",
            Duration::from_secs(60),
            || async {
                let all = stored(&log).await;
                (all.len() >= queued.len()).then_some(all)
            },
        )
        .await
        .unwrap();
        let mut ids: Vec<&str> = stored.iter().map(|r| r.id.as_str()).collect();
        ids.sort_unstable();
        let mut wanted: Vec<&str> = queued.iter().map(|r| r.id.as_str()).collect();
        wanted.sort_unstable();
        assert_eq!(ids, wanted, "every queued record, once");
        eventually("the spool to empty", Duration::from_secs(10), || async {
            (std::fs::read_dir(spool.path()).unwrap().count() == 0).then_some(())
        })
        .await
        .unwrap();
    });
}

/// The count of refusals dropped because the queue was full outlives a crash as well: the
/// next auditor on the folder publishes it as one summary, so every refusal is either
/// stored or counted, once.
#[test]
fn the_count_of_dropped_records_outlives_a_crash_through_the_spool() {
    const FLOOD: u64 = 12;
    let (spool, main, mut server, log) = stream_gone();

    let crashed = tokio::runtime::Runtime::new().unwrap();
    crashed.block_on(async {
        let auditor = Auditor::with_spool_and_capacity(log.clone(), spool.path(), 2).unwrap();
        for _ in 0..FLOOD {
            auditor.deny(refusal()).await;
        }
    });
    drop(crashed);
    let count = std::fs::read_to_string(spool.path().join("dropped.count")).unwrap();
    let spooled = std::fs::read_dir(spool.path())
        .unwrap()
        .filter(|e| {
            e.as_ref()
                .unwrap()
                .path()
                .extension()
                .is_some_and(|x| x == "pb")
        })
        .count() as u64;
    let counted: u64 = count.split_whitespace().nth(1).unwrap().parse().unwrap();
    assert_eq!(
        spooled + counted,
        FLOOD,
        "spooled {spooled}, counted {count:?}"
    );
    assert!(counted > 0, "the queue of 2 overflowed");

    main.block_on(async {
        let (log, _next) = back_on_the_spool(&mut server, spool.path()).await;
        let (denied, summaries) = eventually(
            "the spooled refusals and the dropped count to be stored",
            Duration::from_secs(60),
            || async {
                let (denied, summaries) = tally(&stored(&log).await);
                (denied + summaries.iter().sum::<u64>() >= FLOOD).then_some((denied, summaries))
            },
        )
        .await
        .unwrap();
        assert_eq!(denied, spooled);
        assert_eq!(summaries, vec![counted], "one summary with the count");
        eventually("the spool to empty", Duration::from_secs(10), || async {
            (std::fs::read_dir(spool.path()).unwrap().count() == 0).then_some(())
        })
        .await
        .unwrap();
    });
}
