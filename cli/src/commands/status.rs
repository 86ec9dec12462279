//! `backtrack status`: which services answer (each asked over the gRPC health protocol
//! at its address), the event stream, and every projection the directory's process keeps
//! with its position and lag.

use std::time::Duration;

use backtrack_proto::v1;
use serde_json::json;
use tonic_health::pb::health_check_response::ServingStatus;
use tonic_health::pb::health_client::HealthClient;
use tonic_health::pb::HealthCheckRequest;

use crate::args::{GlobalArgs, OutputFormat};
use crate::client::{connect_channel, Connection};
use crate::output::outln;
use crate::output::{print_json, table};

/// Every gRPC service of Backtrack, as the health protocol names them.
const SERVICES: [&str; 7] = [
    "backtrack.v1.DirectoryService",
    "backtrack.v1.TokenService",
    "backtrack.v1.BackupService",
    "backtrack.v1.TimeTravelService",
    "backtrack.v1.DiffService",
    "backtrack.v1.RecoveryService",
    "backtrack.v1.AuditService",
];

/// How long one health question may take.
const HEALTH_TIMEOUT: Duration = Duration::from_secs(3);

pub async fn run(g: &GlobalArgs, tenant: Option<String>) -> anyhow::Result<()> {
    let connection = connect_channel(g).await?;
    let s = connection
        .directory()
        .status(v1::StatusRequest {
            tenant: tenant.unwrap_or_default(),
        })
        .await?
        .into_inner();
    // Asked together, so an address that does not answer costs one timeout, not seven.
    let states = futures::future::join_all(SERVICES.iter().map(|s| health(&connection, s))).await;
    let services: Vec<(&str, String)> = SERVICES.into_iter().zip(states).collect();
    match g.output {
        OutputFormat::Json => print_json(&json!({
            "version": s.version,
            "services": services.iter().map(|(name, state)| json!({"name": name, "state": state})).collect::<Vec<_>>(),
            "stream": s.stream,
            "lastSequence": s.last_sequence,
            "messages": s.messages,
            "projections": s.projections.iter().map(|p| json!({"name": p.name, "stream": p.stream, "position": p.position, "lag": p.lag})).collect::<Vec<_>>(),
            "tenant": s.tenant.as_ref().map(|t| json!({"id": t.tenant, "objects": t.objects, "digest": t.digest})),
        })),
        OutputFormat::Table => {
            outln!("version   {}", s.version);
            outln!(
                "stream    {} (last sequence {}, {} messages)",
                s.stream,
                s.last_sequence,
                s.messages
            );
            if let Some(t) = &s.tenant {
                outln!(
                    "tenant    {} ({} objects, {})",
                    t.tenant,
                    t.objects,
                    t.digest
                );
            }
            outln!();
            table(
                &["SERVICE", "STATE"],
                &services
                    .iter()
                    .map(|(name, state)| vec![name.to_string(), state.clone()])
                    .collect::<Vec<_>>(),
            );
            outln!();
            table(
                &["PROJECTION", "STREAM", "POSITION", "LAG"],
                &s.projections
                    .iter()
                    .map(|p| {
                        vec![
                            p.name.clone(),
                            p.stream.clone(),
                            p.position.to_string(),
                            p.lag.to_string(),
                        ]
                    })
                    .collect::<Vec<_>>(),
            );
        }
    }
    Ok(())
}

/// `serving`, `not serving` (up, but not ready: NATS unreachable or a projection far
/// behind), `absent` (its address answers but does not run it) or `unreachable: …`.
async fn health(connection: &Connection, service: &str) -> String {
    let mut client = HealthClient::new(connection.channel_of(service));
    let request = HealthCheckRequest {
        service: service.to_string(),
    };
    match tokio::time::timeout(HEALTH_TIMEOUT, client.check(request)).await {
        Err(_) => format!("unreachable: no answer within {HEALTH_TIMEOUT:?}"),
        Ok(Ok(answer)) => match answer.into_inner().status() {
            ServingStatus::Serving => "serving".into(),
            ServingStatus::NotServing => "not serving".into(),
            other => format!("{other:?}").to_lowercase(),
        },
        Ok(Err(status)) if status.code() == tonic::Code::NotFound => "absent".into(),
        Ok(Err(status)) => format!("unreachable: {}", status.message()),
    }
}
