//! Logging and tracing: `tracing` events to stderr (text or JSON, filtered by
//! `BACKTRACK_LOG`), and — when an OTLP endpoint is configured — spans exported as
//! OpenTelemetry traces over OTLP/gRPC, with the W3C trace context propagated through gRPC
//! metadata ([`call_span`], used by [`crate::metrics::RpcMetricsLayer`], and
//! [`inject_metadata`]) and NATS message headers
//! ([`backtrack_eventlog::trace`]).

use opentelemetry::propagation::{Extractor, Injector};
use opentelemetry::trace::TracerProvider as _;
use opentelemetry_otlp::WithExportConfig;
use opentelemetry_sdk::trace::SdkTracerProvider;
use tonic::codegen::http;
use tracing_opentelemetry::OpenTelemetrySpanExt;
use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::util::SubscriberInitExt;
use tracing_subscriber::{EnvFilter, Layer};

/// The environment variable holding the log filter (`EnvFilter` syntax, e.g.
/// `info,backtrack_directory=debug`).
pub const LOG_ENV: &str = "BACKTRACK_LOG";

/// The log filter without [`LOG_ENV`]: `info`, but the NATS client only from `warn` (its
/// connection events are logged, and counted, by [`crate::nats`] already; its own lines
/// would repeat them, and a short-lived probe connection at start would log `closed`).
pub const DEFAULT_LOG_FILTER: &str = "info,async_nats=warn";

/// How log lines are written.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, clap::ValueEnum)]
pub enum LogFormat {
    /// Human-readable lines.
    #[default]
    Text,
    /// One JSON object per line, for log collectors; lines inside a traced span carry its
    /// `trace_id`.
    Json,
}

/// Installs the global subscriber with the filter from `BACKTRACK_LOG` (default `info`).
/// Later calls (e.g. from several tests) leave the first subscriber in place.
pub fn init(format: LogFormat) {
    init_with_filter(format, std::env::var(LOG_ENV).ok().as_deref());
}

/// Like [`init`], with the filter given directly (e.g. from a `--log` flag) instead of read
/// from the environment. `None` means `info`.
///
/// An unparsable filter falls back to `info` with a warning rather than failing start-up.
pub fn init_with_filter(format: LogFormat, filter: Option<&str>) {
    let _ = install(format, filter, None);
}

/// Like [`init`], and with `otlp` set, exports spans to that OTLP/gRPC endpoint (e.g.
/// `http://otel-collector:4317`) as service `service`. Keep the guard alive: dropping it
/// sends the spans still buffered.
pub fn init_tracing(format: LogFormat, otlp: Option<&str>, service: &str) -> TracingGuard {
    let otlp = otlp.map(str::trim).filter(|e| !e.is_empty());
    let filter = std::env::var(LOG_ENV).ok();
    install(format, filter.as_deref(), otlp.map(|e| (e, service)))
}

/// Flushes and stops the span exporter when dropped.
#[derive(Default)]
pub struct TracingGuard {
    provider: Option<SdkTracerProvider>,
    // Drives the exporter's gRPC connection: the SDK exports from a thread of its own,
    // outside any runtime.
    runtime: Option<tokio::runtime::Runtime>,
}

impl std::fmt::Debug for TracingGuard {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TracingGuard")
            .field("exporting", &self.provider.is_some())
            .finish()
    }
}

impl Drop for TracingGuard {
    fn drop(&mut self) {
        if let Some(provider) = self.provider.take() {
            let _ = provider.shutdown();
        }
        if let Some(runtime) = self.runtime.take() {
            runtime.shutdown_background();
        }
    }
}

fn install(format: LogFormat, filter: Option<&str>, otlp: Option<(&str, &str)>) -> TracingGuard {
    let (filter, bad_filter) = match filter.map(EnvFilter::try_new) {
        None => (EnvFilter::new(DEFAULT_LOG_FILTER), None),
        Some(Ok(filter)) => (filter, None),
        Some(Err(err)) => (EnvFilter::new(DEFAULT_LOG_FILTER), Some(err)),
    };
    let logs = match format {
        LogFormat::Text => tracing_subscriber::fmt::layer()
            .with_writer(std::io::stderr)
            .boxed(),
        LogFormat::Json => tracing_subscriber::fmt::layer()
            .json()
            .with_current_span(true)
            .with_writer(std::io::stderr)
            .boxed(),
    }
    .with_filter(filter);
    let mut guard = TracingGuard::default();
    let mut problem = None;
    let spans = match otlp.map(|(endpoint, service)| exporter(endpoint, service)) {
        Some(Ok((provider, runtime))) => {
            let tracer = provider.tracer("backtrack");
            guard.provider = Some(provider);
            guard.runtime = Some(runtime);
            opentelemetry::global::set_text_map_propagator(
                opentelemetry_sdk::propagation::TraceContextPropagator::new(),
            );
            // Spans of Backtrack's own crates; the exporter's own (tonic, hyper) would
            // trace themselves.
            Some(
                tracing_opentelemetry::layer()
                    .with_tracer(tracer)
                    .with_filter(EnvFilter::new("backtrack=info,backtrack_=info")),
            )
        }
        Some(Err(e)) => {
            problem = Some(e);
            None
        }
        None => None,
    };
    let installed = tracing_subscriber::registry()
        .with(logs)
        .with(spans)
        .try_init()
        .is_ok();
    if installed {
        if let Some(err) = bad_filter {
            tracing::warn!("ignoring the log filter ({err}); logging at info");
        }
        if let Some(e) = problem {
            tracing::warn!("traces are not exported: {e}");
        }
    }
    guard
}

fn exporter(
    endpoint: &str,
    service: &str,
) -> Result<(SdkTracerProvider, tokio::runtime::Runtime), String> {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .thread_name("otlp-export")
        .enable_all()
        .build()
        .map_err(|e| format!("cannot start the exporter's runtime: {e}"))?;
    let inner = {
        let _entered = runtime.enter();
        opentelemetry_otlp::SpanExporter::builder()
            .with_tonic()
            .with_endpoint(endpoint)
            .build()
            .map_err(|e| format!("OTLP endpoint {endpoint}: {e}"))?
    };
    let exporter = OnRuntime {
        inner,
        runtime: runtime.handle().clone(),
    };
    let provider = SdkTracerProvider::builder()
        .with_batch_exporter(exporter)
        .with_resource(
            opentelemetry_sdk::Resource::builder()
                .with_service_name(service.to_string())
                .build(),
        )
        .build();
    Ok((provider, runtime))
}

/// The OTLP exporter, driven on a runtime of its own (the SDK's batch thread has none).
#[derive(Debug)]
struct OnRuntime {
    inner: opentelemetry_otlp::SpanExporter,
    runtime: tokio::runtime::Handle,
}

impl opentelemetry_sdk::trace::SpanExporter for OnRuntime {
    async fn export(
        &self,
        batch: Vec<opentelemetry_sdk::trace::SpanData>,
    ) -> opentelemetry_sdk::error::OTelSdkResult {
        self.runtime.block_on(self.inner.export(batch))
    }

    fn shutdown_with_timeout(
        &self,
        timeout: std::time::Duration,
    ) -> opentelemetry_sdk::error::OTelSdkResult {
        self.inner.shutdown_with_timeout(timeout)
    }

    fn set_resource(&mut self, resource: &opentelemetry_sdk::Resource) {
        self.inner.set_resource(resource);
    }
}

struct Metadata<'a>(&'a mut tonic::metadata::MetadataMap);

impl Injector for Metadata<'_> {
    fn set(&mut self, key: &str, value: String) {
        if let (Ok(key), Ok(value)) = (
            tonic::metadata::MetadataKey::from_bytes(key.as_bytes()),
            tonic::metadata::MetadataValue::try_from(value.as_str()),
        ) {
            self.0.insert(key, value);
        }
    }
}

/// Adds the current span's trace context to an outgoing gRPC request's metadata (nothing
/// while tracing is off).
pub fn inject_metadata(metadata: &mut tonic::metadata::MetadataMap) {
    let context = tracing::Span::current().context();
    opentelemetry::global::get_text_map_propagator(|propagator| {
        propagator.inject_context(&context, &mut Metadata(metadata));
    });
}

struct HttpHeaders<'a>(&'a http::HeaderMap);

impl Extractor for HttpHeaders<'_> {
    fn get(&self, key: &str) -> Option<&str> {
        self.0.get(key).and_then(|v| v.to_str().ok())
    }

    fn keys(&self) -> Vec<&str> {
        self.0.keys().map(http::HeaderName::as_str).collect()
    }
}

/// The span a gRPC call runs in: `grpc <method path>`, continuing the caller's trace
/// (`traceparent` in the request metadata) and recording its `trace_id` for JSON logs.
pub fn call_span<B>(request: &http::Request<B>) -> tracing::Span {
    let path = request.uri().path();
    let span = tracing::info_span!(
        "grpc",
        otel.name = %format!("grpc {path}"),
        rpc.method = %path,
        trace_id = tracing::field::Empty,
    );
    let parent = opentelemetry::global::get_text_map_propagator(|propagator| {
        propagator.extract(&HttpHeaders(request.headers()))
    });
    let _ = span.set_parent(parent);
    let trace_id = {
        use opentelemetry::trace::TraceContextExt as _;
        span.context().span().span_context().trace_id()
    };
    if trace_id != opentelemetry::trace::TraceId::INVALID {
        span.record("trace_id", tracing::field::display(trace_id));
    }
    span
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn init_twice_is_harmless() {
        init_with_filter(LogFormat::Json, Some("not a [valid filter"));
        init_with_filter(LogFormat::Text, Some("debug"));
        tracing::info!("still logging");
    }
}
