//! `GET /metrics` of `backtrack up`: the process-wide registry, with the gauges that are
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

/// What a scrape reads besides the registry.
#[derive(Clone)]
pub struct Scraped {
    pub directory: Directory,
    pub snapshotter: Snapshotter,
    pub audit: Audit,
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

async fn refresh(scraped: &Scraped) {
    // A stream that cannot be read leaves the last value in place rather than a made-up one.
    match scraped.directory.log().state().await {
        Ok(state) => {
            let last = state.last_sequence;
            for (projection, position) in [
                ("directory", scraped.directory.position()),
                ("timetravel", scraped.snapshotter.position()),
            ] {
                metrics::PROJECTION_LAG.set(
                    &[("projection", projection)],
                    last.saturating_sub(position) as f64,
                );
            }
        }
        Err(e) => tracing::debug!(error = %e, "metrics: event stream state unavailable"),
    }
    match scraped.audit.log().last_sequence().await {
        Ok(last) => metrics::PROJECTION_LAG.set(
            &[("projection", "audit")],
            last.saturating_sub(scraped.audit.position()) as f64,
        ),
        Err(e) => tracing::debug!(error = %e, "metrics: audit stream state unavailable"),
    }
    for (sink, stats) in scraped.audit.sink_stats() {
        let labels = [("sink", sink.as_str())];
        metrics::AUDIT_SINK_DELIVERED.set_total(&labels, stats.delivered());
        metrics::AUDIT_SINK_ERRORS.set_total(&labels, stats.errors());
        metrics::AUDIT_SINK_BACKLOG.set(&labels, stats.backlog() as f64);
    }
}
