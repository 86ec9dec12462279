//! `backtrack status`: which services answer (each asked over the gRPC health protocol
//! at its address), the event stream, and every projection each process keeps (each
//! process asked at its address) with its position and lag.

use std::time::Duration;

use backtrack_proto::v1;
use serde_json::json;
use tonic_health::pb::health_check_response::ServingStatus;
use tonic_health::pb::health_client::HealthClient;
use tonic_health::pb::HealthCheckRequest;

use crate::args::{GlobalArgs, OutputFormat};
use crate::client::{connect_channel, Connection, ProcessClient};
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
    let (states, processes) = futures::future::join(
        futures::future::join_all(SERVICES.iter().map(|s| health(&connection, s))),
        futures::future::join_all(connection.processes().into_iter().map(describe)),
    )
    .await;
    let services: Vec<(&str, String)> = SERVICES.into_iter().zip(states).collect();
    // One row per projection of each process; a process that did not answer, one row
    // saying so.
    let rows: Vec<(&str, Result<&v1::ProjectionStatus, &str>)> = processes
        .iter()
        .flat_map(|(address, described)| match described {
            Ok(d) => d
                .projections
                .iter()
                .map(|p| (d.name.as_str(), Ok(p)))
                .collect(),
            Err(e) => vec![(address.as_str(), Err(e.as_str()))],
        })
        .collect();
    match g.output {
        OutputFormat::Json => print_json(&json!({
            "version": s.version,
            "services": services.iter().map(|(name, state)| json!({"name": name, "state": state})).collect::<Vec<_>>(),
            "stream": s.stream,
            "lastSequence": s.last_sequence,
            "messages": s.messages,
            "projections": rows.iter().filter_map(|(process, p)| p.ok().map(|p| json!({"process": process, "name": p.name, "stream": p.stream, "position": p.position, "lag": p.lag}))).collect::<Vec<_>>(),
            "processes": processes.iter().map(|(address, d)| match d {
                Ok(d) => json!({"address": address, "name": d.name, "version": d.version, "services": d.services}),
                Err(e) => json!({"address": address, "error": e}),
            }).collect::<Vec<_>>(),
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
                &["PROCESS", "PROJECTION", "STREAM", "POSITION", "LAG"],
                &rows
                    .iter()
                    .map(|(process, p)| match p {
                        Ok(p) => vec![
                            process.to_string(),
                            p.name.clone(),
                            p.stream.clone(),
                            p.position.to_string(),
                            p.lag.to_string(),
                        ],
                        // Last, where a long text does not widen the columns.
                        Err(e) => {
                            let mut row = vec![process.to_string()];
                            row.extend(["-", "-", "-", e].map(str::to_string));
                            row
                        }
                    })
                    .collect::<Vec<_>>(),
            );
        }
    }
    Ok(())
}

/// What the process at `address` serves and keeps, or why it did not say.
async fn describe(
    (address, mut client): (String, ProcessClient),
) -> (String, Result<v1::DescribeProcessResponse, String>) {
    let asked = tokio::time::timeout(
        HEALTH_TIMEOUT,
        client.describe_process(v1::DescribeProcessRequest {}),
    )
    .await;
    let described = match asked {
        Err(_) => Err(format!("unreachable: no answer within {HEALTH_TIMEOUT:?}")),
        Ok(Ok(answer)) => Ok(answer.into_inner()),
        Ok(Err(status)) if status.code() == tonic::Code::Unavailable => {
            Err(format!("unreachable: {}", status.message()))
        }
        // It answered, but not with what it keeps (another deployment's token, say).
        Ok(Err(status)) => Err(format!(
            "refused ({:?}): {}",
            status.code(),
            status.message()
        )),
    };
    (address, described)
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
