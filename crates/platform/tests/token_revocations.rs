//! The revocation list on a real nats-server: what one process revokes, another that
//! follows the bucket learns; a process started later loads it; the first revocation of a
//! token stays.
#![allow(clippy::unwrap_used)]

use std::time::Duration;

use backtrack_platform::auth::{Revocation, Revocations};
use backtrack_platform::shutdown::Shutdown;
use backtrack_test_support::{eventually, NatsServer};

fn revocation(id: &str, by: &str) -> Revocation {
    Revocation {
        token_id: id.into(),
        revoked_at_ms: 1_000,
        revoked_by: by.into(),
        reason: String::new(),
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn every_follower_learns_a_revocation_and_a_late_one_loads_it() {
    let nats = NatsServer::start().await.unwrap();
    let js = async_nats::jetstream::new(nats.client().await.unwrap());
    let (_trigger, shutdown) = Shutdown::new();
    let first = Revocations::follow(&js, 1, shutdown.clone()).await.unwrap();
    let second = Revocations::follow(&js, 1, shutdown.clone()).await.unwrap();

    let (stored, new) = first.revoke(revocation("t-1", "alice")).await.unwrap();
    assert!(new);
    assert_eq!(stored.revoked_by, "alice");
    assert!(
        first.revoked("t-1").is_some(),
        "known at once where it was revoked"
    );
    eventually(
        "the other follower to learn it",
        Duration::from_secs(5),
        || async { second.revoked("t-1") },
    )
    .await
    .unwrap();

    // Revoked again elsewhere: the first revocation stays, and says so.
    let (kept, new) = second.revoke(revocation("t-1", "bob")).await.unwrap();
    assert!(!new);
    assert_eq!(kept.revoked_by, "alice");

    let late = Revocations::follow(&js, 1, shutdown).await.unwrap();
    assert_eq!(late.revoked("t-1").unwrap().revoked_by, "alice");
    assert!(late.revoked("t-2").is_none());
    assert!(first.revoke(revocation("a b", "alice")).await.is_err());
}

#[tokio::test(flavor = "multi_thread")]
async fn a_race_between_two_processes_keeps_one_revocation() {
    let nats = NatsServer::start().await.unwrap();
    let js = async_nats::jetstream::new(nats.client().await.unwrap());
    let (_trigger, shutdown) = Shutdown::new();
    let a = Revocations::follow(&js, 1, shutdown.clone()).await.unwrap();
    let b = Revocations::follow(&js, 1, shutdown).await.unwrap();
    // Neither knows of the other's revocation yet: the bucket decides.
    let (ra, rb) = tokio::join!(
        a.revoke(revocation("t-9", "alice")),
        b.revoke(revocation("t-9", "bob"))
    );
    let (ra, new_a) = ra.unwrap();
    let (rb, new_b) = rb.unwrap();
    assert!(new_a ^ new_b, "exactly one revocation is new");
    assert_eq!(ra, rb, "both answer with the one that was stored");
}
