//! `GET /metrics` of `backtrack up` and `backtrack serve`: the process-wide registry, with the gauges that are
//! cheaper to read on scrape than to keep current — projection lag and audit sink state.

use axum::extract::State;
use axum::http::header;
use axum::response::IntoResponse;
use axum::routing::get;
use axum::Router;
use backtrack_audit::Audit;
use backtrack_directory::Directory;
use backtrack_platform::metrics;
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
    let mut lags = Vec::new();
    // A stream that cannot be read leaves the last value in place rather than a made-up one.
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
                ];
                for (projection, position) in positions {
                    if let Some(position) = position {
                        lags.push((projection, last.saturating_sub(position)));
                    }
                }
            }
            Err(e) => tracing::debug!(error = %e, "metrics: event stream state unavailable"),
        }
    }
    if let Some(audit) = &scraped.audit {
        match audit.log().last_sequence().await {
            Ok(last) => lags.push(("audit", last.saturating_sub(audit.position()))),
            Err(e) => tracing::debug!(error = %e, "metrics: audit stream state unavailable"),
        }
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
