//! The cluster rows: appends to R3 streams on a three-node NATS cluster and the failover
//! time.

use super::{progress, Outcome, Sizes};
use crate::scenarios::cluster;

/// The cluster scenario: appends on a three-node NATS cluster with R3 streams against plain
/// JetStream publishes to an R3 stream on the same cluster, and the failover time.
pub(super) async fn clustered(sizes: &Sizes, outcome: &mut Outcome) -> anyhow::Result<()> {
    if sizes.cluster_objects == 0 {
        return Ok(());
    }
    progress(&format!(
        "cluster: {} objects appended to R3 streams on a three-node NATS cluster, then a node killed",
        sizes.cluster_objects
    ));
    let run = cluster::run(sizes.cluster_objects).await?;
    let report = &mut outcome.report;
    report.parameter("cluster_nodes", 3);
    report.parameter("cluster_stream_replicas", cluster::REPLICAS);
    report.parameter("cluster_events", run.append.count);
    report.parameter("cluster_event_payload_bytes", run.shape.payload_bytes);
    report.record("cluster_raw_publish_r3", run.raw.per_second(), "msgs/s");
    report.record_against(
        "cluster_append_r3",
        run.append.per_second(),
        "events/s",
        Some("cluster_raw_publish_r3"),
        None,
    );
    report.record(
        "cluster_failover_append_after_node_kill",
        run.failover.as_secs_f64() * 1000.0,
        "ms",
    );
    Ok(())
}
