//! W3C trace context across NATS. An append carries the current span's context in the
//! message's `traceparent` (and `tracestate`) header, so a reader that applies the event —
//! the snapshotter, a subscriber in any language — can continue the writer's trace.
//!
//! Nothing is added while no propagator is installed (tracing off): the global propagator
//! is then a no-op.

use async_nats::header::HeaderMap;
use opentelemetry::propagation::{Extractor, Injector};
use tracing_opentelemetry::OpenTelemetrySpanExt;

/// The W3C trace context header.
pub const TRACEPARENT: &str = "traceparent";

struct Headers<'a>(&'a mut HeaderMap);

impl Injector for Headers<'_> {
    fn set(&mut self, key: &str, value: String) {
        self.0.insert(key, value.as_str());
    }
}

struct Carried<'a>(&'a str);

impl Extractor for Carried<'_> {
    fn get(&self, key: &str) -> Option<&str> {
        (key == TRACEPARENT).then_some(self.0)
    }

    fn keys(&self) -> Vec<&str> {
        vec![TRACEPARENT]
    }
}

/// Adds the current span's context to `headers`.
pub fn inject_current(headers: &mut HeaderMap) {
    let context = tracing::Span::current().context();
    opentelemetry::global::get_text_map_propagator(|propagator| {
        propagator.inject_context(&context, &mut Headers(headers));
    });
}

/// The `traceparent` a stored message carries, if any.
pub fn traceparent(headers: Option<&HeaderMap>) -> Option<String> {
    headers?
        .get(TRACEPARENT)
        .map(|value| value.as_str().to_string())
}

/// Makes `span` a child of the trace `traceparent` names (a remote parent).
pub fn continue_trace(span: &tracing::Span, traceparent: &str) {
    let parent = opentelemetry::global::get_text_map_propagator(|propagator| {
        propagator.extract(&Carried(traceparent))
    });
    let _ = span.set_parent(parent);
}
