//! One trace for a recovery: the CLI's `recover` span, the recovery service's gRPC span and
//! job, the directory's batch, the appended events, and the snapshotter applying them —
//! received by an OTLP collector stand-in running in this test (the OTLP trace service from
//! `opentelemetry-proto`, over gRPC); in one `backtrack up` and across the processes of a
//! deployment.
#![allow(clippy::unwrap_used)]

use std::collections::{BTreeMap, BTreeSet};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use backtrack_e2e::deployment::Deployment;
use backtrack_e2e::Backtrack;
use backtrack_test_support::{eventually, free_port, NatsServer};
use opentelemetry_proto::tonic::collector::trace::v1::trace_service_server::{
    TraceService, TraceServiceServer,
};
use opentelemetry_proto::tonic::collector::trace::v1::{
    ExportTraceServiceRequest, ExportTraceServiceResponse,
};

const T: &str = "traced";

/// A received span: trace id, its name, and the service that sent it.
#[derive(Clone, Debug)]
struct Received {
    trace: Vec<u8>,
    name: String,
    service: String,
}

#[derive(Clone, Default)]
struct Collector {
    spans: Arc<Mutex<Vec<Received>>>,
}

#[tonic::async_trait]
impl TraceService for Collector {
    async fn export(
        &self,
        request: tonic::Request<ExportTraceServiceRequest>,
    ) -> Result<tonic::Response<ExportTraceServiceResponse>, tonic::Status> {
        let mut spans = self.spans.lock().unwrap();
        for resource in request.into_inner().resource_spans {
            let service = resource
                .resource
                .iter()
                .flat_map(|r| &r.attributes)
                .find(|a| a.key == "service.name")
                .and_then(|a| a.value.as_ref())
                .and_then(|v| match &v.value {
                    Some(
                        opentelemetry_proto::tonic::common::v1::any_value::Value::StringValue(s),
                    ) => Some(s.clone()),
                    _ => None,
                })
                .unwrap_or_default();
            for scope in resource.scope_spans {
                for span in scope.spans {
                    spans.push(Received {
                        trace: span.trace_id,
                        name: span.name,
                        service: service.clone(),
                    });
                }
            }
        }
        Ok(tonic::Response::new(ExportTraceServiceResponse::default()))
    }
}

/// Starts the collector stand-in; returns it and its endpoint URL.
async fn collector() -> (Collector, String) {
    let collector = Collector::default();
    let port = free_port();
    let listener = tokio::net::TcpListener::bind(("127.0.0.1", port))
        .await
        .unwrap();
    tokio::spawn(
        tonic::transport::Server::builder()
            .add_service(TraceServiceServer::new(collector.clone()))
            .serve_with_incoming(tokio_stream::wrappers::TcpListenerStream::new(listener)),
    );
    (collector, format!("http://127.0.0.1:{port}"))
}

/// Waits for one trace holding every (service, span name) of `wanted`.
async fn one_trace_with(collector: &Collector, wanted: &[(&str, &str)]) -> Vec<u8> {
    // The CLI flushed its span before it exited; the servers export in batches.
    let trace = eventually(
        "one trace with every hop of the recovery",
        Duration::from_secs(60),
        || {
            let spans = collector.spans.lock().unwrap().clone();
            async move {
                let mut by_trace: BTreeMap<Vec<u8>, BTreeSet<(String, String)>> = BTreeMap::new();
                for span in spans {
                    by_trace
                        .entry(span.trace)
                        .or_default()
                        .insert((span.service, span.name));
                }
                by_trace.into_iter().find(|(_, names)| {
                    wanted.iter().all(|(service, name)| {
                        names.contains(&(service.to_string(), name.to_string()))
                    })
                })
            }
        },
    )
    .await;
    let seen: BTreeSet<(String, String)> = collector
        .spans
        .lock()
        .unwrap()
        .iter()
        .map(|s| (s.service.clone(), s.name.clone()))
        .collect();
    let (trace_id, _) = trace.unwrap_or_else(|e| panic!("{e}: received {seen:?}"));
    assert_eq!(trace_id.len(), 16);
    trace_id
}

/// Seeds a user, takes a backup, deletes the user and recovers it with a traced CLI call
/// (`json` runs a CLI command printing JSON, `cli_with_env` one with extra environment).
fn incident_and_traced_recovery(
    json: impl Fn(&[&str]) -> anyhow::Result<serde_json::Value>,
    cli_with_env: impl Fn(&[&str], &[(&str, &str)]) -> std::process::Output,
    endpoint: &str,
) {
    json(&["tenant", "create", T]).unwrap();
    let user = json(&[
        "dir",
        "create",
        "--tenant",
        T,
        "--kind",
        "user",
        "--set",
        "displayName=Ada",
        "--set",
        "userPrincipalName=ada@traced.test",
    ])
    .unwrap();
    let backup = json(&["backup", "create", "--tenant", T]).unwrap()["id"]
        .as_str()
        .unwrap()
        .to_string();
    json(&["dir", "delete", "--tenant", T, user["id"].as_str().unwrap()]).unwrap();
    let out = cli_with_env(
        &[
            "recover", "--tenant", T, "--from", &backup, "--yes", "--wait",
        ],
        &[("BACKTRACK_OTLP_ENDPOINT", endpoint)],
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn one_trace_runs_from_the_cli_through_recovery_directory_and_snapshotter() {
    let (collector, endpoint) = collector().await;
    let nats = NatsServer::start().await.unwrap();
    let b = Backtrack::start_with(Some(nats.url()), &["--otlp-endpoint", &endpoint])
        .await
        .unwrap();
    incident_and_traced_recovery(|a| b.json(a), |a, e| b.cli_with_env(a, e), &endpoint);
    one_trace_with(
        &collector,
        &[
            ("backtrack-cli", "backtrack recover"),
            (
                "backtrack-up",
                "grpc /backtrack.v1.RecoveryService/StartRecovery",
            ),
            ("backtrack-up", "recovery.job"),
            ("backtrack-up", "directory.execute_planned"),
            ("backtrack-up", "eventlog.append"),
            ("backtrack-up", "timetravel.apply"),
        ],
    )
    .await;
}

/// The same trace when every service runs in its own process: the recovery process sends
/// its batches to the directory process over gRPC, and the snapshotter process applies the
/// events it appended.
#[tokio::test(flavor = "multi_thread")]
async fn one_trace_spans_the_processes_of_a_deployment() {
    let (collector, endpoint) = collector().await;
    let nats = NatsServer::start().await.unwrap();
    let d = Deployment::start_logging(
        &nats.url(),
        &["--otlp-endpoint", &endpoint, "--log-format", "json"],
        // The gRPC call span (which carries the trace id) is in backtrack_platform.
        "warn,backtrack_directory=info,backtrack_platform::telemetry=info",
    )
    .await
    .unwrap();
    incident_and_traced_recovery(|a| d.json(a), |a, e| d.cli_with_env(a, e), &endpoint);
    let trace = one_trace_with(
        &collector,
        &[
            ("backtrack-cli", "backtrack recover"),
            (
                "backtrack-recovery",
                "grpc /backtrack.v1.RecoveryService/StartRecovery",
            ),
            ("backtrack-recovery", "recovery.job"),
            (
                "backtrack-directory",
                "grpc /backtrack.v1.DirectoryService/ApplyRecoveryBatch",
            ),
            ("backtrack-directory", "directory.execute_planned"),
            ("backtrack-directory", "eventlog.append"),
            ("backtrack-snapshotter", "timetravel.apply"),
        ],
    )
    .await;
    // The directory's JSON log line for the batch carries the same trace id.
    let trace_hex: String = trace.iter().map(|b| format!("{b:02x}")).collect();
    let log = d.log("directory");
    let line = log
        .lines()
        .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
        .find(|l| l["fields"]["message"] == "applying a recovery batch")
        .unwrap_or_else(|| panic!("no JSON log line for the batch in:\n{log}"));
    let ids: Vec<&str> = line["spans"]
        .as_array()
        .into_iter()
        .flatten()
        .chain(std::iter::once(&line["span"]))
        .filter_map(|s| s["trace_id"].as_str())
        .collect();
    assert!(ids.contains(&trace_hex.as_str()), "{line}");
}
