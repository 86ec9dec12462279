//! Readiness of a Backtrack process, for `/readyz` and the gRPC health service
//! (`grpc.health.v1.Health`): ready while NATS is connected and every projection the
//! process keeps is within [`MAX_LAG`] events of its stream.
//!
//! The initial catch-up happens before the first check (a process is not ready until its
//! projections have folded the log as it was at start); afterwards a projection may trail
//! by a burst of writes without the process being taken out of service, but one that falls
//! far behind (stuck, or a rebuild in progress) makes it unready.

use std::time::Duration;

use async_nats::connection::State;
use backtrack_platform::health::Health;
use backtrack_platform::shutdown::Shutdown;
use tonic_health::server::HealthReporter;
use tonic_health::ServingStatus;

use crate::up_metrics::{self, Scraped};

/// Events a projection may trail its stream by while the process counts as ready.
pub const MAX_LAG: u64 = 50_000;
/// Time between two checks.
const EVERY: Duration = Duration::from_secs(2);

/// What a check reads and whom it tells.
pub struct Readiness {
    pub nats: async_nats::Client,
    pub scraped: Scraped,
    pub health: Health,
    pub grpc: HealthReporter,
    /// The gRPC services this process serves (their health follows the process's).
    pub services: Vec<&'static str>,
}

impl Readiness {
    /// Checks once and publishes the result; returns whether the process is ready.
    pub async fn check(&self) -> bool {
        let problem = self.problem().await;
        let status = match &problem {
            None => {
                self.health.set_ready(true, "ready");
                ServingStatus::Serving
            }
            Some(reason) => {
                self.health.set_ready(false, reason);
                ServingStatus::NotServing
            }
        };
        self.grpc.set_service_status("", status).await;
        for service in &self.services {
            self.grpc.set_service_status(service, status).await;
        }
        problem.is_none()
    }

    async fn problem(&self) -> Option<String> {
        if self.nats.connection_state() != State::Connected {
            return Some("NATS unreachable".to_string());
        }
        let lags = up_metrics::refresh(&self.scraped).await;
        lags.into_iter()
            .find(|(_, lag)| *lag > MAX_LAG)
            .map(|(projection, lag)| {
                format!("the {projection} projection trails the log by {lag} events")
            })
    }

    /// Checks every two seconds until shutdown, then reports not serving.
    pub async fn watch(self, shutdown: Shutdown) {
        loop {
            tokio::select! {
                _ = shutdown.wait() => break,
                _ = tokio::time::sleep(EVERY) => {}
            }
            self.check().await;
        }
        self.health.set_ready(false, "shutting down");
        self.grpc
            .set_service_status("", ServingStatus::NotServing)
            .await;
        for service in &self.services {
            self.grpc
                .set_service_status(service, ServingStatus::NotServing)
                .await;
        }
    }
}
