//! The syslog sink against a real nats-server and a real syslog receiver on 127.0.0.1 that
//! parses octet-counted RFC 5424 frames, plain and over TLS. Every test checks that each
//! published record id arrives; the ones without failures check that it arrives exactly
//! once, and every frame is parsed in full against the record it names.
#![allow(clippy::unwrap_used)]

mod common;

use std::collections::HashMap;
use std::time::Instant;

use backtrack_audit::format::Format;
use backtrack_test_support::{eventually, free_port};
use serde_json::json;

use common::parse::check_syslog_frame;
use common::receivers::{self_signed, SyslogReceiver};
use common::{config, ids, nats, sample_records, start_sink, DEADLINE};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn syslog_sink_delivers_every_record_exactly_once() -> anyhow::Result<()> {
    let nats = nats().await?;
    let records = sample_records(10_000);
    nats.log.publish(&records).await?;
    let expected = ids(&records);
    let by_id: HashMap<_, _> = records.iter().map(|r| (r.id.clone(), r.clone())).collect();

    for (name, format) in [("syslog-cef", Format::Cef), ("syslog-json", Format::Json)] {
        let port = free_port();
        let receiver = SyslogReceiver::new(port, None, None);
        receiver.start().await?;
        let started = Instant::now();
        let sink = start_sink(
            &nats.js,
            config(json!({
                "name": name, "type": "syslog", "address": format!("127.0.0.1:{port}"),
                "format": format,
            })),
        );
        receiver.seen.wait_for_all(&expected, name).await?;
        let elapsed = started.elapsed();
        println!(
            "{name}: {} records in {elapsed:?} = {:.0} records/s to a localhost syslog receiver",
            records.len(),
            records.len() as f64 / elapsed.as_secs_f64()
        );
        eventually("the sink to ack everything", DEADLINE, || async {
            (sink.stats.delivered() == records.len() as u64 && sink.stats.backlog() == 0)
                .then_some(())
        })
        .await?;
        let stats = sink.stop().await?;
        assert_eq!(receiver.seen.duplicates(), 0);
        assert_eq!(receiver.seen.unexpected(&expected), 0);
        assert_eq!(stats.errors(), 0);
        assert!(stats.last_sequence() >= records.len() as u64);
        for frame in receiver.frames() {
            check_syslog_frame(&frame, format, &by_id)
                .map_err(|e| anyhow::anyhow!("{e}: {frame}"))?;
        }
    }
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn syslog_over_tls_delivers_and_refuses_an_untrusted_receiver() -> anyhow::Result<()> {
    let nats = nats().await?;
    let records = sample_records(3000);
    nats.log.publish(&records).await?;
    let expected = ids(&records);
    let by_id: HashMap<_, _> = records.iter().map(|r| (r.id.clone(), r.clone())).collect();
    let dir = tempfile::tempdir()?;
    let (acceptor, pem) = self_signed();
    let ca = dir.path().join("ca.pem");
    std::fs::write(&ca, pem)?;
    let (_, other_pem) = self_signed();
    let other_ca = dir.path().join("other.pem");
    std::fs::write(&other_ca, other_pem)?;

    let port = free_port();
    let receiver = SyslogReceiver::new(port, Some(acceptor), None);
    receiver.start().await?;
    // Trusting another CA: the handshake fails, nothing is delivered, errors are counted.
    let untrusting = start_sink(
        &nats.js,
        config(json!({
            "name": "tls-wrong-ca", "type": "syslog", "address": format!("localhost:{port}"),
            "format": "ocsf", "tls": {"ca_file": other_ca},
        })),
    );
    let sink = start_sink(
        &nats.js,
        config(json!({
            "name": "tls", "type": "syslog", "address": format!("127.0.0.1:{port}"),
            "format": "json", "tls": {"ca_file": ca, "server_name": "localhost"},
        })),
    );
    receiver
        .seen
        .wait_for_all(&expected, "TLS syslog receiver")
        .await?;
    eventually("failed handshakes to be counted", DEADLINE, || async {
        (untrusting.stats.errors() >= 2).then_some(())
    })
    .await?;
    assert_eq!(untrusting.stats.delivered(), 0);
    assert_eq!(receiver.seen.duplicates(), 0);
    for frame in receiver.frames() {
        check_syslog_frame(&frame, Format::Json, &by_id)
            .map_err(|e| anyhow::anyhow!("{e}: {frame}"))?;
    }
    sink.stop().await?;
    untrusting.stop().await?;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn syslog_receiver_down_at_start_and_mid_stream_loses_nothing() -> anyhow::Result<()> {
    let nats = nats().await?;
    let records = sample_records(6000);
    nats.log.publish(&records).await?;
    let expected = ids(&records);
    let port = free_port();
    // Goes down by itself after 2500 frames, in the middle of a batch.
    let receiver = SyslogReceiver::new(port, None, Some(2500));
    let sink = start_sink(
        &nats.js,
        config(json!({
            "name": "flaky", "type": "syslog", "address": format!("127.0.0.1:{port}"),
            "format": "cef", "backoff_max_ms": 400, "fetch_batch": 700,
        })),
    );
    eventually("refused connections to be counted", DEADLINE, || async {
        (sink.stats.errors() >= 2).then_some(())
    })
    .await?;
    assert_eq!(receiver.seen.distinct(), 0);

    receiver.start().await?;
    receiver
        .seen
        .wait_for_at_least(2500, "receiver before it goes down")
        .await?;
    let errors_before = sink.stats.errors();
    eventually(
        "the sink to notice the receiver went down",
        DEADLINE,
        || async { (sink.stats.errors() > errors_before).then_some(()) },
    )
    .await?;

    receiver.start().await?;
    receiver
        .seen
        .wait_for_all(&expected, "receiver after it came back")
        .await?;
    let stats = sink.stop().await?;
    println!(
        "down/up: {} records, {} duplicates, {} errors",
        records.len(),
        receiver.seen.duplicates(),
        stats.errors()
    );
    assert_eq!(receiver.seen.unexpected(&expected), 0);
    Ok(())
}
