//! The NATS client's connection events reach the metrics, against a real nats-server.
#![allow(clippy::unwrap_used)]

use std::time::{Duration, Instant};

use backtrack_platform::metrics;
use backtrack_platform::nats::{connect, NatsOptions};
use backtrack_test_support::NatsServer;

/// The counter of one event kind in the rendered metrics (0 when it has no series yet).
fn count(event: &str) -> f64 {
    let series = format!("backtrack_nats_client_events_total{{event=\"{event}\"}} ");
    metrics::render()
        .lines()
        .find_map(|line| line.strip_prefix(&series))
        .map_or(0.0, |v| v.trim().parse().unwrap())
}

#[tokio::test]
async fn a_subscription_nobody_reads_is_counted_as_a_slow_consumer() {
    let server = NatsServer::start().await.unwrap();
    let options = NatsOptions {
        url: server.url(),
        name: "events-test".into(),
        creds: None,
        tls_ca: None,
        tls_client: None,
    };
    let connected_before = count("connected");
    let slow_before = count("slow_consumer");
    let client = connect(&options).await.unwrap();
    // Subscribed and never read: once its buffer (64k messages) is full, the client drops
    // what arrives and reports a slow consumer.
    let _unread = client.subscribe("flood").await.unwrap();
    let publisher = connect(&options).await.unwrap();
    for _ in 0..70_000 {
        publisher.publish("flood", "x".into()).await.unwrap();
    }
    publisher.flush().await.unwrap();
    let deadline = Instant::now() + Duration::from_secs(20);
    while count("slow_consumer") <= slow_before {
        assert!(
            Instant::now() < deadline,
            "no slow consumer counted: {}",
            metrics::render()
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert!(
        count("connected") >= connected_before + 2.0,
        "{}",
        metrics::render()
    );
}
