//! The event log on a three-node NATS JetStream cluster with replicated (R3) streams, the
//! shape of a production deployment, measured against plain JetStream on the same cluster.
//!
//! [`run`] starts a cluster on loopback ports, appends a tenant of `objects` objects
//! through [`EventLog::append`] to an R3 `BT_EVENTS` (what the directory and recovery
//! processes do, metrics and trace-context injection included), publishes as many messages
//! of the same shape to an R3 stream of its own, then kills the node leading the event stream (`kill -9`) and times
//! how long until an append is acknowledged again by the remaining two.

use std::time::{Duration, Instant};

use backtrack_domain::event::{Change, Event};
use backtrack_domain::ObjectKind;
use backtrack_eventlog::{Append, EventLog, StreamSettings};
use backtrack_test_support::NatsCluster;

use super::{large_tenant, raw, Throughput};

/// Replicas of every stream in this scenario.
pub const REPLICAS: usize = 3;

/// What [`run`] measured.
#[derive(Debug, Clone)]
pub struct ClusterRun {
    pub append: Throughput,
    pub raw: Throughput,
    /// From the kill of a node to the first acknowledged append after it.
    pub failover: Duration,
    pub shape: raw::MessageShape,
}

pub async fn run(objects: usize) -> anyhow::Result<ClusterRun> {
    let mut cluster = NatsCluster::start().await?;
    let client = cluster.client().await?;
    let log = EventLog::open(
        client.clone(),
        StreamSettings {
            replicas: REPLICAS,
            ..StreamSettings::default()
        },
    )
    .await?;
    let tenant = large_tenant::append(&log, objects).await?;
    let append = Throughput {
        count: tenant.events,
        elapsed: tenant.elapsed,
    };
    let shape = raw::event_shape(&log).await?;
    let raw = raw::raw_publish(client, &shape, tenant.events, REPLICAS, raw::Guards::None).await?;

    // The node leading BT_EVENTS dies (the worst case: a new leader must be elected); the
    // other two replicas keep a quorum.
    let js = async_nats::jetstream::new(cluster.client().await?);
    let mut stream = js.get_stream("BT_EVENTS").await?;
    let leader = stream
        .info()
        .await?
        .cluster
        .as_ref()
        .and_then(|c| c.leader.clone())
        .unwrap_or_default();
    let node: usize = leader.trim_start_matches('n').parse().unwrap_or(0);
    cluster.kill(node);
    let killed = Instant::now();
    let mut n = 0u64;
    loop {
        n += 1;
        let mut attributes = serde_json::Map::new();
        attributes.insert("displayName".into(), format!("Failover probe {n}").into());
        let event = Event {
            meta: large_tenant::meta(
                ObjectKind::User.as_str(),
                &format!("failover-probe-{n}"),
                large_tenant::now_ms(),
            ),
            change: Change::Created {
                attributes,
                links: Vec::new(),
            },
        };
        let appended = log
            .append(vec![Append {
                msg_id: format!("failover:{}", event.meta.mutation_id),
                event,
                expected_last_subject_sequence: None,
            }])
            .await;
        if appended.first().is_some_and(Result::is_ok) {
            break;
        }
        if killed.elapsed() > Duration::from_secs(60) {
            anyhow::bail!("no append was acknowledged within 60 s of a node's loss");
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let failover = killed.elapsed();
    Ok(ClusterRun {
        append,
        raw,
        failover,
        shape,
    })
}
