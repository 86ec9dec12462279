//! The HTTP and file sinks against a real nats-server: an HTTP/1.1 server on 127.0.0.1
//! that gunzips HEC batches and can answer 503, the rotating file itself, and a sink that is
//! stopped mid-stream and resumes where it stopped. Every test checks that each published
//! record id arrives exactly once.
#![allow(clippy::unwrap_used)]

mod common;

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use async_nats::jetstream;
use backtrack_audit::sinks;
use backtrack_test_support::{eventually, free_port};
use serde_json::{json, Value};

use common::receivers::HttpReceiver;
use common::{config, ids, nats, sample_records, start_sink, Seen, DEADLINE};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn http_sink_sends_gzipped_batches_and_rides_out_503s() -> anyhow::Result<()> {
    let nats = nats().await?;
    let records = sample_records(5000);
    nats.log.publish(&records).await?;
    let expected = ids(&records);
    let port = free_port();
    let receiver = Arc::new(HttpReceiver {
        reject_next: AtomicU64::new(3),
        reject_after_events: Some(2000),
        reject_later: 5,
        ..Default::default()
    });
    // Down at start: nobody listens on the port yet.
    let sink = start_sink(
        &nats.js,
        config(json!({
            "name": "hec", "type": "http", "url": format!("http://127.0.0.1:{port}/services/collector/event"),
            "token": "test-token", "gzip": true, "format": "json",
            "max_batch_records": 400, "max_batch_bytes": 200_000, "max_delay_ms": 100,
            "backoff_max_ms": 300,
        })),
    );
    eventually("refused connections to be counted", DEADLINE, || async {
        (sink.stats.errors() >= 1).then_some(())
    })
    .await?;
    receiver.start(port).await?;
    receiver
        .seen
        .wait_for_all(&expected, "HTTP receiver")
        .await?;
    eventually("the sink to ack everything", DEADLINE, || async {
        (sink.stats.delivered() == records.len() as u64).then_some(())
    })
    .await?;
    let stats = sink.stop().await?;
    let problems = receiver.problems.lock().unwrap().clone();
    assert!(
        problems.is_empty(),
        "{:?}",
        &problems[..problems.len().min(5)]
    );
    let accepted = receiver.accepted_requests.load(Ordering::SeqCst);
    println!(
        "http: {} records in {accepted} requests, {} answered 503, {} errors",
        records.len(),
        receiver.rejected_requests.load(Ordering::SeqCst),
        stats.errors()
    );
    assert_eq!(receiver.rejected_requests.load(Ordering::SeqCst), 8);
    assert!(
        accepted * 10 <= records.len() as u64,
        "batched: {accepted} requests"
    );
    assert_eq!(
        receiver.seen.duplicates(),
        0,
        "a 503 delivers nothing, so nothing repeats"
    );
    assert_eq!(receiver.seen.unexpected(&expected), 0);
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn file_sink_rotates_without_losing_a_line() -> anyhow::Result<()> {
    let nats = nats().await?;
    let records = sample_records(5000);
    nats.log.publish(&records).await?;
    let expected = ids(&records);
    let dir = tempfile::tempdir()?;
    let path = dir.path().join("audit/ocsf.jsonl");
    let max_bytes = 256 * 1024;
    let sink = start_sink(
        &nats.js,
        config(json!({
            "name": "archive", "type": "file", "path": path, "format": "ocsf",
            "max_bytes": max_bytes, "keep": 1000,
        })),
    );
    eventually("the sink to write everything", DEADLINE, || async {
        (sink.stats.delivered() == records.len() as u64).then_some(())
    })
    .await?;
    sink.stop().await?;

    let seen = Seen::default();
    let mut files = 0;
    for n in 0.. {
        let file = if n == 0 {
            path.clone()
        } else {
            sinks::file::rotated_path(&path, n)
        };
        let Ok(text) = std::fs::read_to_string(&file) else {
            break;
        };
        files += 1;
        assert!(
            text.len() as u64 <= max_bytes,
            "{} has {} bytes",
            file.display(),
            text.len()
        );
        assert!(text.ends_with('\n'));
        for line in text.lines() {
            let event: Value = serde_json::from_str(line)?;
            seen.add(event["metadata"]["uid"].as_str().unwrap());
        }
    }
    println!("file: {} records in {files} files", records.len());
    assert!(files > 3, "the file rotated ({files} files)");
    assert_eq!(seen.missing(&expected), 0);
    assert_eq!(seen.duplicates(), 0);
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stopped_sink_resumes_where_it_stopped() -> anyhow::Result<()> {
    let nats = nats().await?;
    let records = sample_records(4000);
    nats.log.publish(&records).await?;
    let expected = ids(&records);
    let port = free_port();
    // A slow SIEM, so that the stop lands mid-stream.
    let receiver = Arc::new(HttpReceiver {
        delay: Duration::from_millis(40),
        ..Default::default()
    });
    receiver.start(port).await?;
    let sink_config = config(json!({
        "name": "resumable", "type": "http", "url": format!("http://127.0.0.1:{port}/"),
        "token": "test-token", "format": "cef", "max_batch_records": 100, "max_delay_ms": 20,
    }));

    let first = start_sink(&nats.js, sink_config.clone());
    receiver
        .seen
        .wait_for_at_least(800, "HTTP receiver before the stop")
        .await?;
    let first_stats = first.stop().await?;
    let delivered_before = receiver.seen.distinct();
    assert!(delivered_before < records.len(), "stopped mid-stream");
    assert_eq!(first_stats.delivered(), delivered_before as u64);

    let second = start_sink(&nats.js, sink_config);
    receiver
        .seen
        .wait_for_all(&expected, "HTTP receiver after the restart")
        .await?;
    eventually("the second run to ack the rest", DEADLINE, || async {
        (second.stats.delivered() == (records.len() - delivered_before) as u64).then_some(())
    })
    .await?;
    second.stop().await?;
    assert_eq!(
        receiver.seen.duplicates(),
        0,
        "resumed exactly where it stopped"
    );

    let stream = nats
        .js
        .get_stream(backtrack_eventlog::audit::AUDIT_STREAM)
        .await?;
    let mut consumer: jetstream::consumer::PullConsumer = stream
        .get_consumer("bt-audit-sink-resumable")
        .await
        .map_err(|e| anyhow::anyhow!("{e}"))?;
    let info = consumer.info().await?;
    assert_eq!(info.num_pending, 0);
    assert_eq!(info.num_ack_pending, 0);
    Ok(())
}
