//! `GET /metrics` of `backtrack up` and `backtrack serve`: the process-wide registry, with the gauges that are
//! cheaper to read on scrape than to keep current — projection lag and audit sink state;
//! and the same view of the process for `backtrack status`.

use std::sync::{Arc, OnceLock};

use axum::extract::State;
use axum::http::header;
use axum::response::IntoResponse;
use axum::routing::get;
use axum::Router;
use backtrack_audit::Audit;
use backtrack_directory::api::ProcessView;
use backtrack_directory::Directory;
use backtrack_platform::metrics;
use backtrack_proto::v1;
use backtrack_snapshotter::Snapshotter;

/// What a scrape reads besides the registry: the parts this process runs.
#[derive(Clone)]
pub struct Scraped {
    pub directory: Option<Directory>,
    pub snapshotter: Option<Snapshotter>,
    pub audit: Option<Audit>,
}

/// The `/metrics` route, for the extra router of
/// [`serve_http`](backtrack_platform::health::serve_http).
pub fn router(scraped: Scraped) -> Router {
    Router::new()
        .route("/metrics", get(scrape))
        .with_state(scraped)
}

async fn scrape(State(scraped): State<Scraped>) -> impl IntoResponse {
    refresh(&scraped).await;
    (
        [(header::CONTENT_TYPE, metrics::CONTENT_TYPE)],
        metrics::render(),
    )
}

/// Sets the scrape-time gauges; returns each projection's lag (events), where the
/// stream could be read.
pub async fn refresh(scraped: &Scraped) -> Vec<(&'static str, u64)> {
    let lags: Vec<(&'static str, u64)> = projections(scraped)
        .await
        .into_iter()
        .map(|p| (p.name, p.lag))
        .collect();
    if let Some(audit) = &scraped.audit {
        for (sink, stats) in audit.sink_stats() {
            let labels = [("sink", sink.as_str())];
            metrics::AUDIT_SINK_DELIVERED.set_total(&labels, stats.delivered());
            metrics::AUDIT_SINK_ERRORS.set_total(&labels, stats.errors());
            metrics::AUDIT_SINK_BACKLOG.set(&labels, stats.backlog() as f64);
        }
    }
    for (projection, lag) in &lags {
        metrics::PROJECTION_LAG.set(&[("projection", projection)], *lag as f64);
    }
    lags
}

/// Where a projection this process keeps stands against its stream.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Projection {
    pub name: &'static str,
    /// The stream it follows.
    pub stream: String,
    pub position: u64,
    pub lag: u64,
}

/// The projections this process keeps (`directory`, `timetravel` and `alerter` on the
/// event stream, `audit` on the audit stream), where their stream could be read.
pub async fn projections(scraped: &Scraped) -> Vec<Projection> {
    let mut out = Vec::new();
    // A stream that cannot be read leaves the projection out rather than a made-up lag.
    let events = match (&scraped.directory, &scraped.snapshotter) {
        (Some(directory), _) => Some(directory.log()),
        (None, Some(snapshotter)) => Some(snapshotter.log()),
        (None, None) => None,
    };
    if let Some(log) = events {
        match log.state().await {
            Ok(state) => {
                let last = state.last_sequence;
                let positions = [
                    (
                        "directory",
                        scraped.directory.as_ref().map(|d| d.position()),
                    ),
                    (
                        "timetravel",
                        scraped.snapshotter.as_ref().map(|s| s.position()),
                    ),
                    (
                        "alerter",
                        scraped
                            .snapshotter
                            .as_ref()
                            .and_then(Snapshotter::alerter_position),
                    ),
                ];
                for (name, position) in positions {
                    if let Some(position) = position {
                        out.push(Projection {
                            name,
                            stream: log.stream_name().to_string(),
                            position,
                            lag: last.saturating_sub(position),
                        });
                    }
                }
            }
            Err(e) => tracing::debug!(error = %e, "metrics: event stream state unavailable"),
        }
    }
    if let Some(audit) = &scraped.audit {
        match audit.log().last_sequence().await {
            Ok(last) => out.push(Projection {
                name: "audit",
                stream: backtrack_eventlog::audit::AUDIT_STREAM.to_string(),
                position: audit.position(),
                lag: last.saturating_sub(audit.position()),
            }),
            Err(e) => tracing::debug!(error = %e, "metrics: audit stream state unavailable"),
        }
    }
    out
}

/// `backtrack status`'s view of this process: the gRPC services it serves (known once all
/// are added) and the projections it keeps.
pub struct ProcessStatus {
    /// The process's name ([`crate::up::Parts::name`]).
    pub name: &'static str,
    pub scraped: Scraped,
    pub served: Arc<OnceLock<Vec<String>>>,
}

#[tonic::async_trait]
impl ProcessView for ProcessStatus {
    fn services(&self) -> Vec<String> {
        self.served.get().cloned().unwrap_or_default()
    }

    async fn projections(&self) -> Vec<v1::ProjectionStatus> {
        projections(&self.scraped)
            .await
            .into_iter()
            .map(|p| v1::ProjectionStatus {
                name: p.name.to_string(),
                stream: p.stream,
                position: p.position,
                lag: p.lag,
            })
            .collect()
    }
}

/// The `ProcessService` every process serves: what [`ProcessStatus`] sees, for any caller
/// with a valid token (positions and lag are no tenant's data).
pub struct ProcessApi(pub Arc<ProcessStatus>);

#[tonic::async_trait]
impl v1::process_service_server::ProcessService for ProcessApi {
    async fn describe_process(
        &self,
        _request: tonic::Request<v1::DescribeProcessRequest>,
    ) -> Result<tonic::Response<v1::DescribeProcessResponse>, tonic::Status> {
        Ok(tonic::Response::new(v1::DescribeProcessResponse {
            version: env!("CARGO_PKG_VERSION").to_string(),
            services: self.0.services(),
            projections: self.0.projections().await,
            name: self.0.name.to_string(),
        }))
    }
}
