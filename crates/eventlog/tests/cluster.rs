//! The event log on a three-node NATS cluster with replicated streams: followers and
//! bounded reads outlive a node that dies or comes back behind.

use std::time::Duration;

use anyhow::Context as _;
use async_nats::jetstream;
use backtrack_eventlog::{EventLog, EventLogError, StreamSettings};
use backtrack_test_support::eventually;
use futures::StreamExt;

mod common;

use common::{append, append_ok, new_user};

/// `BT_EVENTS` with three replicas on the cluster.
async fn replicated_log(cluster: &backtrack_test_support::NatsCluster) -> anyhow::Result<EventLog> {
    let settings = StreamSettings {
        replicas: 3,
        ..StreamSettings::default()
    };
    Ok(EventLog::open(cluster.client().await?, settings).await?)
}

/// A follower on a cluster keeps delivering after the node serving its consumer dies:
/// either the consumer comes back by itself, or [`EventLog::follow`] reports the stall and
/// the follower starts reading again from where it was, as the projections do.
#[tokio::test(flavor = "multi_thread")]
async fn a_follower_outlives_the_node_serving_its_consumer() -> anyhow::Result<()> {
    use backtrack_test_support::NatsCluster;
    let mut cluster = NatsCluster::start().await?;
    let log = replicated_log(&cluster).await?;
    append_ok(&log, (0..10).map(|n| append(new_user(n))).collect()).await?;
    let mut stream = log.follow(1).await?;
    let mut seen = 0u64;
    while seen < 10 {
        seen = stream.next().await.context("stream ended")??.sequence;
    }
    // The node the ordered consumer lives on.
    let js = jetstream::new(cluster.client().await?);
    let mut bt_events = js.get_stream("BT_EVENTS").await?;
    let mut consumers = bt_events.consumers();
    let info = consumers.next().await.context("no consumer")??;
    let node = info
        .cluster
        .and_then(|c| c.leader)
        .context("consumer without a leader")?;
    let index: usize = node.trim_start_matches('n').parse()?;
    cluster.kill(index);
    let _ = bt_events.info().await;

    // Appends resume once the stream has a leader among the two left.
    let writer = log.clone();
    let appended = eventually(
        "appends after the node's loss",
        Duration::from_secs(60),
        || {
            let writer = writer.clone();
            async move {
                writer
                    .append((10..20).map(|n| append(new_user(n))).collect())
                    .await
                    .into_iter()
                    .all(|r| r.is_ok())
                    .then_some(())
            }
        },
    )
    .await;
    appended?;
    let deadline = tokio::time::Instant::now() + Duration::from_secs(90);
    let mut restarts = 0;
    while seen < 20 {
        let next = tokio::time::timeout_at(deadline, stream.next())
            .await
            .context("the follower delivered nothing new within 90 s")?;
        match next {
            Some(Ok(event)) => seen = event.sequence,
            Some(Err(EventLogError::Unavailable(_))) | None => {
                restarts += 1;
                stream = loop {
                    match log.follow(seen + 1).await {
                        Ok(stream) => break stream,
                        Err(_) if tokio::time::Instant::now() < deadline => {
                            tokio::time::sleep(Duration::from_millis(200)).await;
                        }
                        Err(e) => return Err(e.into()),
                    }
                };
            }
            Some(Err(e)) => return Err(e.into()),
        }
    }
    assert_eq!(seen, 20, "after {restarts} restarts");
    Ok(())
}

/// A bounded read right after a node comes back returns every event, even when the
/// reader lands on that node while it is still catching up: where the reader runs dry
/// before the end, the stream leader is asked whether more events exist.
#[tokio::test(flavor = "multi_thread")]
async fn a_bounded_read_after_a_node_restarts_returns_every_event() -> anyhow::Result<()> {
    use backtrack_test_support::NatsCluster;
    let mut cluster = NatsCluster::start().await?;
    let log = replicated_log(&cluster).await?;
    append_ok(&log, (0..200).map(|n| append(new_user(n))).collect()).await?;
    // A node misses most of the log, then comes back and has to catch up.
    let js = jetstream::new(cluster.client().await?);
    let leader = js
        .get_stream("BT_EVENTS")
        .await?
        .info()
        .await?
        .cluster
        .clone()
        .and_then(|c| c.leader)
        .context("stream without a leader")?;
    let down = (0..3)
        .find(|i| format!("n{i}") != leader)
        .context("no follower")?;
    cluster.kill(down);
    let mut last = 0;
    for chunk in 0..10 {
        let items = (0..1_000)
            .map(|n| append(new_user(1_000 + chunk * 1_000 + n)))
            .collect();
        last = *append_ok(&log, items)
            .await?
            .last()
            .context("nothing appended")?;
    }
    cluster.restart(down).await?;
    let reader = EventLog::open(
        async_nats::connect(cluster.node_url(down)).await?,
        StreamSettings {
            replicas: 3,
            ..StreamSettings::default()
        },
    )
    .await?;
    for round in 0..8 {
        let whole = reader.fold_range(1, last, "bt.ev.>", |_| {}).await?;
        assert_eq!(whole, last, "round {round}: the whole log");
        let tenant = reader.read_range(150, last, "bt.ev.t1.>").await?;
        assert_eq!(
            tenant.len() as u64,
            last - 149,
            "round {round}: the tenant's tail"
        );
        assert_eq!(tenant.last().map(|e| e.sequence), Some(last));
    }
    Ok(())
}
