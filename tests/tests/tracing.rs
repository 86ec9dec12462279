//! One trace for a recovery: the CLI's `recover` span, the recovery service's gRPC span and
//! job, the directory's batch, the appended events, and the snapshotter applying them —
//! received by an OTLP collector stand-in running in this test (the OTLP trace service from
//! `opentelemetry-proto`, over gRPC).
#![allow(clippy::unwrap_used)]

use std::collections::{BTreeMap, BTreeSet};
use std::sync::{Arc, Mutex};
use std::time::Duration;

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

#[tokio::test(flavor = "multi_thread")]
async fn one_trace_runs_from_the_cli_through_recovery_directory_and_snapshotter() {
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
    let endpoint = format!("http://127.0.0.1:{port}");

    let nats = NatsServer::start().await.unwrap();
    let b = Backtrack::start_with(Some(nats.url()), &["--otlp-endpoint", &endpoint])
        .await
        .unwrap();
    b.json(&["tenant", "create", T]).unwrap();
    let user = b
        .json(&[
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
    let backup = b.json(&["backup", "create", "--tenant", T]).unwrap()["id"]
        .as_str()
        .unwrap()
        .to_string();
    b.json(&["dir", "delete", "--tenant", T, user["id"].as_str().unwrap()])
        .unwrap();

    let out = b.cli_with_env(
        &[
            "recover", "--tenant", T, "--from", &backup, "--yes", "--wait",
        ],
        &[("BACKTRACK_OTLP_ENDPOINT", endpoint.as_str())],
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );

    // The CLI flushed its span before it exited; the server exports in batches.
    let wanted = [
        ("backtrack-cli", "backtrack recover"),
        (
            "backtrack-up",
            "grpc /backtrack.v1.RecoveryService/StartRecovery",
        ),
        ("backtrack-up", "recovery.job"),
        ("backtrack-up", "directory.execute_planned"),
        ("backtrack-up", "eventlog.append"),
        ("backtrack-up", "timetravel.apply"),
    ];
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
    let seen: Vec<(String, String)> = collector
        .spans
        .lock()
        .unwrap()
        .iter()
        .map(|s| (s.service.clone(), s.name.clone()))
        .collect();
    let (trace_id, _) = trace.unwrap_or_else(|e| panic!("{e}: received {seen:?}"));
    assert_eq!(trace_id.len(), 16);
}
