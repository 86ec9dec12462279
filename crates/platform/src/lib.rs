//! Backtrack platform: what every Backtrack service needs around its own logic.
//!
//! A service's `main` reads its config, calls [`telemetry::init`], connects with
//! [`nats::connect`], builds its gRPC server behind an [`auth::AuthInterceptor`], serves
//! [`health::serve_http`] beside it, and stops when a [`shutdown::Shutdown`] fires (usually
//! from [`shutdown::terminate_signal`]).
//!
//! - [`auth`] — bearer tokens: [`auth::SigningKey`] mints local HS256 ones,
//!   [`auth::TokenValidator`] checks them and an OIDC provider's RS256/ES256 ones,
//!   [`auth::AuthInterceptor`] turns them into an [`auth::Caller`] whose tenant and role
//!   checks every handler makes; [`auth::BearerToken`] for clients; the `TokenService`.
//! - [`audit`] — audit records of privileged actions ([`audit::Auditor`]) and of every
//!   refused call ([`audit::AuditLayer`]) on `BT_AUDIT`.
//! - [`shutdown`] — a trigger fired once and observed by every task; SIGTERM/SIGINT.
//! - [`health`] — `/healthz` and `/readyz` over HTTP, with room for more routes.
//! - [`metrics`] — Prometheus counters, gauges and histograms, and [`metrics::RpcMetricsLayer`]
//!   timing every gRPC call.
//! - [`telemetry`] — `tracing` to stderr as text or JSON, filtered by `BACKTRACK_LOG`.
//! - [`nats`] — one way to connect to NATS, with errors that say what to check.
//! - [`grpc`] — accepted connections with `TCP_NODELAY` for a gRPC server.
//! - [`clock`] — the wall clock in milliseconds since the Unix epoch.
//! - [`config`] — exit code 64 and one message format for unusable configuration.

pub mod audit;
pub mod auth;
pub mod clock;
pub mod config;
mod error;
pub mod grpc;
pub mod health;
pub mod metrics;
pub mod nats;
pub mod shutdown;
pub mod telemetry;

pub use error::PlatformError;
