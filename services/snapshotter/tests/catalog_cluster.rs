//! The backup catalog on a three-node NATS cluster: a replica's catalog keeps seeing new
//! backups after the node serving its reader dies (the stall watch reads again).
#![allow(clippy::unwrap_used)]

use std::time::Duration;

use backtrack_platform::shutdown::Shutdown;
use backtrack_proto::v1;
use backtrack_snapshotter::catalog::Catalog;
use backtrack_test_support::{eventually, NatsCluster};
use futures::StreamExt;

fn manifest(id: &str) -> v1::Backup {
    v1::Backup {
        id: id.into(),
        tenant: "t".into(),
        stream: "BT_EVENTS".into(),
        sequence: 1,
        created_at_ms: 1,
        requested_by: "test".into(),
        ..Default::default()
    }
}

/// Publishes a manifest as another process's snapshotter would.
async fn publish(js: &async_nats::jetstream::Context, id: &str) -> Option<()> {
    use prost::Message as _;
    let mut headers = async_nats::HeaderMap::new();
    headers.insert("Bt-Record", "manifest");
    headers.insert("Bt-Backup-Id", id);
    headers.insert("Bt-Actor", "test");
    js.publish_with_headers("bt.backup.t", headers, manifest(id).encode_to_vec().into())
        .await
        .ok()?
        .await
        .ok()
        .map(|_| ())
}

#[tokio::test(flavor = "multi_thread")]
async fn a_replica_sees_backups_taken_after_the_node_serving_its_reader_died() {
    let mut cluster = NatsCluster::start().await.unwrap();
    let (_trigger, shutdown) = Shutdown::new();
    let js = async_nats::jetstream::new(cluster.client().await.unwrap());
    let replica = Catalog::open(js.clone(), 3, shutdown.clone())
        .await
        .unwrap();
    publish(&js, "before").await.unwrap();
    eventually(
        "the replica to see the first backup",
        Duration::from_secs(10),
        || {
            let seen = replica.get("t", "before").is_some();
            async move { seen.then_some(()) }
        },
    )
    .await
    .unwrap();

    // The node serving the catalog's reader (the stream's only consumer) dies.
    let mut stream = js.get_stream("BT_BACKUPS").await.unwrap();
    let mut consumers = stream.consumers();
    let info = consumers.next().await.unwrap().unwrap();
    let node: usize = info
        .cluster
        .and_then(|c| c.leader)
        .unwrap()
        .trim_start_matches('n')
        .parse()
        .unwrap();
    let _ = stream.info().await;
    cluster.kill(node);

    // A backup taken once the stream has a leader among the nodes left reaches the replica.
    eventually(
        "a backup after the node's loss",
        Duration::from_secs(60),
        || publish(&js, "after"),
    )
    .await
    .unwrap();
    eventually(
        "the replica to see the backup taken after the node's loss",
        Duration::from_secs(60),
        || {
            let seen = replica.get("t", "after").is_some();
            async move { seen.then_some(()) }
        },
    )
    .await
    .unwrap();
}
