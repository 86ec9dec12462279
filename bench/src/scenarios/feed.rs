//! Change-feed latency: how long after a client starts an `UpdateObject` call does a plain
//! NATS subscriber of the tenant's subjects (`bt.ev.<tenant>.>`, an ordered consumer that
//! starts at new messages) hold the event — and, separately, how long the call takes.

use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use async_nats::jetstream;
use async_nats::jetstream::consumer::pull::OrderedConfig;
use async_nats::jetstream::consumer::DeliverPolicy;
use backtrack_cli::client::Client;
use backtrack_cli::commands::overview;
use backtrack_domain::alerts::Thresholds;
use backtrack_eventlog::codec;
use backtrack_proto::v1;
use futures::StreamExt;
use tokio::sync::mpsc;
use tokio::task::JoinHandle;

/// Calls made before measuring, so connections and consumers are warm.
const WARMUP: usize = 10;
/// Users whose `jobTitle` the calls take turns changing.
const USERS: u32 = 8;
/// How long one event may take to reach the subscriber before the scenario fails.
const DELIVERY_TIMEOUT: Duration = Duration::from_secs(10);

/// Per-call timings, in call order.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct FeedRun {
    /// From just before the call until the subscriber received its event.
    pub feed: Vec<Duration>,
    /// The call's own round trip.
    pub rpc: Vec<Duration>,
}

/// What the subscriber saw: the event's mutation id and when it arrived.
type Delivery = Result<(String, Instant), String>;

/// Makes `samples` sequential `UpdateObject` calls on users of `tenant`, each waiting for
/// its event on the feed before the next starts.
pub async fn feed_latency(
    client: &mut Client,
    nats: async_nats::Client,
    tenant: &str,
    samples: usize,
) -> anyhow::Result<FeedRun> {
    let users = client
        .list_objects(v1::ListObjectsRequest {
            tenant: tenant.to_string(),
            kind: "user".to_string(),
            page_size: USERS,
            page_token: String::new(),
        })
        .await?
        .into_inner()
        .objects;
    if users.is_empty() {
        bail!("tenant {tenant} has no users to update");
    }
    let (mut deliveries, subscriber) = subscribe(nats, tenant).await?;
    let result = measure(client, tenant, &users, &mut deliveries, samples).await;
    subscriber.abort();
    result
}

async fn measure(
    client: &mut Client,
    tenant: &str,
    users: &[v1::DirectoryObject],
    deliveries: &mut mpsc::UnboundedReceiver<Delivery>,
    samples: usize,
) -> anyhow::Result<FeedRun> {
    let run_id = uuid::Uuid::new_v4().simple().to_string();
    let mut run = FeedRun::default();
    for call in 0..WARMUP + samples {
        let user = &users[call % users.len()];
        let mutation_id = format!("bench-feed-{run_id}-{call}");
        let request = v1::UpdateObjectRequest {
            tenant: tenant.to_string(),
            id: user.id.clone(),
            set_json: serde_json::json!({ "jobTitle": format!("Benchmark title {call}") })
                .to_string(),
            unset: Vec::new(),
            mutation_id: mutation_id.clone(),
        };
        let started = Instant::now();
        client.update_object(request).await?;
        let rpc = started.elapsed();
        let received = wait_for_event(deliveries, &mutation_id).await?;
        if call >= WARMUP {
            run.rpc.push(rpc);
            run.feed.push(received.saturating_duration_since(started));
        }
    }
    Ok(run)
}

/// Starts an ordered consumer on the tenant's subjects from now on, and a task that
/// decodes what it delivers and stamps the arrival time.
async fn subscribe(
    nats: async_nats::Client,
    tenant: &str,
) -> anyhow::Result<(mpsc::UnboundedReceiver<Delivery>, JoinHandle<()>)> {
    let stream = jetstream::new(nats)
        .get_stream("BT_EVENTS")
        .await
        .context("find the event stream")?;
    let consumer = stream
        .create_consumer(OrderedConfig {
            filter_subject: format!("bt.ev.{tenant}.>"),
            deliver_policy: DeliverPolicy::New,
            ..Default::default()
        })
        .await?;
    let mut messages = consumer.messages().await?;
    let (sender, receiver) = mpsc::unbounded_channel();
    let task = tokio::spawn(async move {
        while let Some(message) = messages.next().await {
            let at = Instant::now();
            let delivery = message.map_err(|e| e.to_string()).and_then(|m| {
                codec::decode_stored(&m.subject, &m.payload)
                    .map(|event| (event.meta.mutation_id, at))
                    .map_err(|e| e.to_string())
            });
            if sender.send(delivery).is_err() {
                return;
            }
        }
    });
    Ok((receiver, task))
}

async fn wait_for_event(
    deliveries: &mut mpsc::UnboundedReceiver<Delivery>,
    mutation_id: &str,
) -> anyhow::Result<Instant> {
    let deadline = tokio::time::Instant::now() + DELIVERY_TIMEOUT;
    loop {
        match tokio::time::timeout_at(deadline, deliveries.recv()).await {
            Ok(Some(Ok((id, at)))) if id == mutation_id => return Ok(at),
            Ok(Some(Ok(_))) => continue,
            Ok(Some(Err(e))) => bail!("the feed subscriber failed: {e}"),
            Ok(None) => bail!("the feed subscriber stopped"),
            Err(_) => bail!("no event for mutation {mutation_id} within {DELIVERY_TIMEOUT:?}"),
        }
    }
}

/// How long `WatchEvents` (`until_now`) takes to hand over a tenant's history: whole, one
/// kind's, and one object's. One kind or one object is the consumer's filter subject, so
/// the stream reads only those events; the whole tenant is the baseline.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct NarrowedReads {
    pub whole: Read,
    pub kind: Read,
    pub object: Read,
    /// The whole history read again as `backtrack overview` reads it: each event decoded
    /// into the domain's and the alert rules run over them.
    pub alerts: Read,
    /// Alerts the rules raised (the demo's role assignments, at least).
    pub alert_count: usize,
}

/// Events handed over and the time it took.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Read {
    pub events: u64,
    pub elapsed: Duration,
}

/// Reads `tenant`'s history three ways: every event, `kind`'s, and one object's (the
/// first of `kind` the directory lists).
pub async fn narrowed_reads(
    client: &mut Client,
    tenant: &str,
    kind: &str,
) -> anyhow::Result<NarrowedReads> {
    let object = client
        .list_objects(v1::ListObjectsRequest {
            tenant: tenant.to_string(),
            kind: kind.to_string(),
            page_size: 1,
            page_token: String::new(),
        })
        .await?
        .into_inner()
        .objects
        .pop()
        .with_context(|| format!("tenant {tenant} has no {kind}"))?;
    let whole = read_history(client, tenant, vec![], vec![]).await?;
    let kind = read_history(client, tenant, vec![kind.to_string()], vec![]).await?;
    let object = read_history(client, tenant, vec![], vec![object.id]).await?;
    if object.events == 0 || kind.events < object.events || whole.events < kind.events {
        bail!("narrowed feed reads do not nest: {whole:?} ⊇ {kind:?} ⊇ {object:?}");
    }
    let (alerts, alert_count) = read_alerts(client, tenant).await?;
    if alerts.events != whole.events {
        bail!("the overview's read saw {alerts:?}, the plain one {whole:?}");
    }
    Ok(NarrowedReads {
        whole,
        kind,
        object,
        alerts,
        alert_count,
    })
}

/// The tenant's whole history read by `backtrack overview`'s own code: decoded and run
/// through the alert rules.
async fn read_alerts(client: &mut Client, tenant: &str) -> anyhow::Result<(Read, usize)> {
    let started = Instant::now();
    let request = v1::WatchEventsRequest {
        tenant: tenant.to_string(),
        from_start: true,
        until_now: true,
        ..Default::default()
    };
    let watched = overview::watch(client, request, &Thresholds::default()).await?;
    let read = Read {
        events: watched.events,
        elapsed: started.elapsed(),
    };
    Ok((read, watched.alerts.len()))
}

async fn read_history(
    client: &mut Client,
    tenant: &str,
    kinds: Vec<String>,
    object_ids: Vec<String>,
) -> anyhow::Result<Read> {
    let started = Instant::now();
    let mut stream = client
        .watch_events(v1::WatchEventsRequest {
            tenant: tenant.to_string(),
            from_start: true,
            until_now: true,
            kinds,
            object_ids,
            ..Default::default()
        })
        .await?
        .into_inner();
    let mut events = 0;
    while stream.message().await?.is_some() {
        events += 1;
    }
    Ok(Read {
        events,
        elapsed: started.elapsed(),
    })
}
