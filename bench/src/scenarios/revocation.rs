//! Token revocation: how long after one process revokes a token does another process that
//! follows the revocation list (`bt-token-revocations`) refuse it. Both followers are
//! [`Revocations`] as `backtrack up` and each `backtrack serve` open them, on the
//! testbed's nats-server; the second is polled without sleeping, so the figure is the
//! KV put plus the watch's delivery.

use std::time::{Duration, Instant};

use anyhow::bail;
use async_nats::jetstream;
use backtrack_platform::auth::{Revocation, Revocations};
use backtrack_platform::shutdown::Shutdown;

/// How long one revocation may take to reach the other process before the scenario fails.
const DELIVERY_TIMEOUT: Duration = Duration::from_secs(10);

/// Revokes `samples` token ids one after another through one follower and times, for
/// each, from the call's start until the other follower knows of it.
pub async fn revocation_propagation(
    nats: async_nats::Client,
    samples: usize,
) -> anyhow::Result<Vec<Duration>> {
    let js = jetstream::new(nats);
    let (_stop, shutdown) = Shutdown::new();
    let revoking = Revocations::follow(&js, 1, shutdown.clone()).await?;
    let other = Revocations::follow(&js, 1, shutdown).await?;
    let mut out = Vec::with_capacity(samples);
    for _ in 0..samples {
        let id = uuid::Uuid::new_v4().to_string();
        let start = Instant::now();
        revoking
            .revoke(Revocation {
                token_id: id.clone(),
                revoked_at_ms: 0,
                revoked_by: "backtrack-bench".into(),
                reason: String::new(),
            })
            .await?;
        while other.revoked(&id).is_none() {
            if start.elapsed() > DELIVERY_TIMEOUT {
                bail!(
                    "revocation {id} did not reach the other process within {DELIVERY_TIMEOUT:?}"
                );
            }
            tokio::task::yield_now().await;
        }
        out.push(start.elapsed());
    }
    Ok(out)
}
