//! Prometheus metrics: the registry of [`backtrack_eventlog::metrics`], re-exported, plus
//! [`RpcMetricsLayer`], which times every gRPC call the server answers.

use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Instant;

pub use backtrack_eventlog::metrics::*;
use tonic::codegen::{http, Service};
use tracing::Instrument;

/// Records `backtrack_rpc_seconds{method, code}` for every call and runs it in its trace
/// span ([`crate::telemetry::call_span`]); wraps the whole server
/// (`Server::builder().layer(RpcMetricsLayer)`).
///
/// Time is measured until the response headers. The code comes from the `grpc-status`
/// header, which tonic sets when a handler fails before answering; a call that answers
/// (its status then travels in the trailers) is recorded as code `0`.
#[derive(Clone, Copy, Debug, Default)]
pub struct RpcMetricsLayer;

impl<S> tower_layer::Layer<S> for RpcMetricsLayer {
    type Service = RpcMetricsService<S>;

    fn layer(&self, inner: S) -> Self::Service {
        RpcMetricsService { inner }
    }
}

/// The service [`RpcMetricsLayer`] makes.
#[derive(Clone, Debug)]
pub struct RpcMetricsService<S> {
    inner: S,
}

impl<S, B, R> Service<http::Request<B>> for RpcMetricsService<S>
where
    S: Service<http::Request<B>, Response = http::Response<R>> + Clone + Send + 'static,
    S::Future: Send + 'static,
    B: Send + 'static,
    R: Send + 'static,
{
    type Response = S::Response;
    type Error = S::Error;
    type Future = Pin<Box<dyn Future<Output = Result<Self::Response, Self::Error>> + Send>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, request: http::Request<B>) -> Self::Future {
        let started = Instant::now();
        let method = request.uri().path().to_string();
        let span = crate::telemetry::call_span(&request);
        // The clone that was driven to readiness serves this call (tower's usual dance).
        let ready = self.inner.clone();
        let mut inner = std::mem::replace(&mut self.inner, ready);
        Box::pin(
            async move {
                let result = inner.call(request).await;
                let code = match &result {
                    Ok(response) => response
                        .headers()
                        .get("grpc-status")
                        .and_then(|v| v.to_str().ok())
                        .unwrap_or("0")
                        .to_string(),
                    // The transport failed the call; 13 is INTERNAL.
                    Err(_) => "13".to_string(),
                };
                RPC_SECONDS.observe_duration(
                    &[("method", method.as_str()), ("code", code.as_str())],
                    started.elapsed(),
                );
                result
            }
            .instrument(span),
        )
    }
}
