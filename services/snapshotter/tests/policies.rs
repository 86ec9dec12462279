//! Policies changed through one process reach every other one at once (the policy
//! bucket's watch), not when their cache expires: two `Policies` on one real nats-server,
//! with a cache that would otherwise hold for an hour. Also: the deployment default's time,
//! the watch's end, and a failed start that leaves the store free.
#![allow(clippy::unwrap_used)]

use std::time::Duration;

use backtrack_snapshotter::alert_policy::AlertPolicy;
use backtrack_snapshotter::policy::{Policies, Policy};
use backtrack_test_support::{eventually, NatsServer};

const HOUR: Duration = Duration::from_secs(3600);

async fn open(nats: &NatsServer) -> Policies {
    let js = async_nats::jetstream::new(nats.client().await.unwrap());
    Policies::open(&js, 1, Policy::default(), HOUR, Duration::ZERO)
        .await
        .unwrap()
}

#[tokio::test(flavor = "multi_thread")]
async fn a_change_made_through_one_process_is_seen_by_another_at_once() {
    let nats = NatsServer::start().await.unwrap();
    let (here, there) = (open(&nats).await, open(&nats).await);
    // `there` has read (and cached) the defaults.
    assert_eq!(there.get("acme").await.unwrap(), Policy::default());
    assert_eq!(
        there.alerts().get_with_time("acme").await.unwrap().0,
        AlertPolicy::default()
    );

    let off = Policy {
        schedule: String::new(),
        retention_days: 30,
        ..Policy::default()
    };
    here.set("acme", off.clone()).await.unwrap();
    let quiet = AlertPolicy {
        quiet_actors: vec!["svc-sync".into()],
        ..AlertPolicy::default()
    };
    here.set_alerts("acme", quiet.clone()).await.unwrap();

    let seen = eventually("the change seen", Duration::from_secs(10), || async {
        let (policy, set_at) = there.get_with_time("acme").await.unwrap();
        let alerts = there.alerts().get_with_time("acme").await.unwrap().0;
        (policy == off && alerts == quiet).then_some(set_at)
    })
    .await
    .unwrap();
    assert!(seen.is_some(), "the time it was set comes with it");
    // Another tenant's cached default is untouched.
    assert_eq!(there.get("other").await.unwrap(), Policy::default());

    // A later change wins over the earlier one, in both processes.
    let daily = Policy::default();
    there.set("acme", daily.clone()).await.unwrap();
    eventually(
        "the second change seen",
        Duration::from_secs(10),
        || async { (here.get("acme").await.unwrap() == daily).then_some(()) },
    )
    .await
    .unwrap();
    assert_eq!(there.get("acme").await.unwrap(), daily);
}

#[tokio::test(flavor = "multi_thread")]
async fn the_deployments_default_is_dated_from_when_it_became_what_it_is() {
    let nats = NatsServer::start().await.unwrap();
    let js = async_nats::jetstream::new(nats.client().await.unwrap());
    let open = |default: Policy| {
        let js = js.clone();
        async move {
            Policies::open(&js, 1, default, HOUR, Duration::ZERO)
                .await
                .unwrap()
                .default_since()
                .unwrap()
        }
    };
    let first = open(Policy::default()).await;
    // A restart with the same default: still since then.
    assert_eq!(open(Policy::default()).await, first);
    // Another default: since this start, and a restart keeps that.
    let hourly = Policy {
        schedule: "0 0 * * * *".into(),
        ..Policy::default()
    };
    let changed = open(hourly.clone()).await;
    assert!(changed >= first);
    let bucket = js.get_key_value("bt-policies").await.unwrap();
    let entry = bucket.entry("deployment.backup").await.unwrap().unwrap();
    // The bucket held nothing else: its second write is the change.
    assert_eq!(entry.revision, 2, "one write per change of the default");
    assert_eq!(open(hourly).await, changed);
}

/// A dropped `Policies` leaves no watch behind: its task ends (within its 5 s check) and
/// the server drops the watch's consumer once it is idle (the client's 30 s threshold),
/// so this test takes about 35 s.
#[tokio::test(flavor = "multi_thread")]
async fn the_watch_ends_with_its_owners() {
    let nats = NatsServer::start().await.unwrap();
    let js = async_nats::jetstream::new(nats.client().await.unwrap());
    let consumers = || {
        let js = js.clone();
        async move {
            let mut stream = js.get_stream("KV_bt-policies").await.unwrap();
            stream.info().await.unwrap().state.consumer_count
        }
    };
    let policies = open(&nats).await;
    assert_eq!(consumers().await, 1, "the bucket's watch");
    drop(policies);
    eventually("the watch gone", Duration::from_secs(70), || async {
        (consumers().await == 0).then_some(())
    })
    .await
    .unwrap();
}

/// A start that fails after opening the time-travel store (here: the alerter's bucket is
/// unusable) leaves nothing holding the store, so the next start on the same folder opens
/// it (before, the build task kept RocksDB's lock and every retry of `up` failed).
#[tokio::test(flavor = "multi_thread")]
async fn a_failed_start_leaves_the_store_free_for_the_next() {
    use backtrack_platform::shutdown::Shutdown;
    use backtrack_snapshotter::alerter::AlertSettings;
    use backtrack_snapshotter::SnapshotterConfig;

    let nats = NatsServer::start().await.unwrap();
    let js = async_nats::jetstream::new(nats.client().await.unwrap());
    // A stream by the bucket's name that is no bucket: reading the alerter's position
    // from it fails.
    js.create_stream(async_nats::jetstream::stream::Config {
        name: "KV_bt-alerts".into(),
        subjects: vec!["not-a-bucket.>".into()],
        ..Default::default()
    })
    .await
    .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let config = || {
        let mut config = SnapshotterConfig::new(dir.path().join("store"));
        config.checkpoint_every = 0;
        config.alerts = Some(AlertSettings::default());
        config
    };
    let (_trigger, shutdown) = Shutdown::new();
    let failed =
        backtrack_snapshotter::start(config(), nats.client().await.unwrap(), shutdown.clone())
            .await;
    assert!(failed.is_err(), "the alerter's bucket is unusable");
    js.delete_stream("KV_bt-alerts").await.unwrap();
    backtrack_snapshotter::start(config(), nats.client().await.unwrap(), shutdown)
        .await
        .unwrap();
}
