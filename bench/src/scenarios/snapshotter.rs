//! The snapshotter: the time-travel store built from the log, backups, verification and
//! reads of the past, in the same process and on the same log as the directory.
//!
//! [`run`] appends the large tenant ([`super::large_tenant`]) behind the demo tenant, lets
//! the directory project it (so the build has the machine to itself), reads the whole log
//! raw (the build's baseline: the same messages through the same kind of consumer), then
//! starts a fresh snapshotter on an empty folder (checkpoints off) and times it from
//! `start` until it has applied the log's tail, noting the process's peak memory
//! meanwhile. On the built store it then times
//! on-demand backups and their verification for both tenants, random `object_at` lookups,
//! paging through the large tenant at the middle of the log, and `GetObjectAt` calls over
//! gRPC (the `backtrack dir get --at` path). The store's running digest of the demo tenant
//! must equal the directory's, and every verification must pass.

use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use backtrack_directory::Directory;
use backtrack_domain::ObjectKind;
use backtrack_eventlog::{EventLog, StreamSettings};
use backtrack_platform::auth::{
    AuthInterceptor, BearerToken, Role, SigningKey, TokenValidator, ALL_TENANTS,
};
use backtrack_platform::shutdown::Shutdown;
use backtrack_proto::v1;
use backtrack_proto::v1::time_travel_service_client::TimeTravelServiceClient;
use backtrack_snapshotter::alerter::{self, AlertSettings};
use backtrack_snapshotter::api::timetravel::TimeTravelApi;
use backtrack_snapshotter::backups::BackupRequest;
use backtrack_snapshotter::{Snapshotter, SnapshotterConfig};
use backtrack_store::timetravel::query::ListAt;
use backtrack_store::TimeTravelStore;
use futures::StreamExt;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use tonic::service::interceptor::InterceptedService;

use super::large_tenant::{self, LargeTenant};
use super::{import, memory, Throughput};
use crate::testbed::Testbed;

/// On-demand backups taken per tenant.
pub const BACKUP_REPEATS: usize = 20;
/// Random `object_at` lookups at most (ten per object in smaller tenants).
pub const LOOKUPS: usize = 100_000;
/// `GetObjectAt` calls timed, after [`GRPC_WARMUP`] untimed ones.
pub const GRPC_CALLS: usize = 200;
const GRPC_WARMUP: usize = 10;
/// Objects per `list_at` page.
pub const PAGE: usize = 1000;
const SEED: u64 = 11;
const TOKEN_TTL: Duration = Duration::from_secs(86_400);
/// How long the store's compactions may take to finish after the build.
const SETTLE_LIMIT: Duration = Duration::from_secs(300);

/// Every figure of the time-travel scenarios.
#[derive(Debug, Clone)]
pub struct TimeTravelRun {
    pub large: LargeTenant,
    /// How long the directory took to project the large tenant after it was appended.
    pub directory_catch_up: Duration,
    /// The log's messages read raw (ordered consumer, no decoding) just before the build:
    /// the same messages the build reads.
    pub raw_log_read: Throughput,
    /// Events applied by the fresh snapshotter (the whole log) and the time to its tail.
    pub build: Throughput,
    /// `VmHWM` reset just before the build (so: resident memory then) and read after it.
    pub rss_before_build_mib: Option<f64>,
    pub build_peak_rss_mib: Option<f64>,
    pub store: StoreFigures,
}

impl TimeTravelRun {
    /// The store's size scaled to a million events.
    pub fn store_bytes_per_million_events(&self) -> f64 {
        self.store.bytes as f64 * 1e6 / self.build.count.max(1) as f64
    }
}

/// What the built store does.
#[derive(Debug, Clone)]
pub struct StoreFigures {
    /// The store folder's size after a flush, once its compactions are done.
    pub bytes: u64,
    /// The folder's size right after the build's flush, with compactions still due.
    pub bytes_at_build_end: u64,
    /// How long the compactions took to finish after the build.
    pub settle: Duration,
    /// The demo tenant's digest kept by the store, and the directory's.
    pub demo_digest: String,
    pub live_digest: String,
    pub demo: TenantFigures,
    pub large: TenantFigures,
    pub lookups: Throughput,
    /// Lookups that found the object (the others asked before it was created).
    pub lookup_hits: u64,
    /// Where the listings read: the middle of the large tenant's part of the log.
    pub listing_sequence: u64,
    pub listing: Throughput,
    pub listing_with_links: Throughput,
    pub grpc_object_at: Vec<Duration>,
    /// The alerter, rewound to the log's start and started on the built store, until its
    /// position reaches the tail: every event of the log through the alert rules.
    pub alerter: Throughput,
    /// The `alert.raised` records on the audit stream afterwards.
    pub alerts_raised: u64,
}

impl StoreFigures {
    pub fn digest_matches(&self) -> bool {
        self.demo_digest == self.live_digest
    }
}

/// Backups and verification of one tenant.
#[derive(Debug, Clone)]
pub struct TenantFigures {
    pub tenant: String,
    /// Objects (live and deleted) the backups' manifests count.
    pub objects: u64,
    pub backup_create: Vec<Duration>,
    pub verify: Duration,
    pub verified: bool,
    pub verify_message: String,
    /// One user's incoming link history (`dir history --incoming`): how long the pass over
    /// the tenant's link keys took, and the changes it found for that user.
    pub incoming_history: Duration,
    pub incoming_changes: usize,
}

/// Appends the large tenant of `objects` objects, builds a fresh time-travel store from the
/// whole log and measures it (see the module docs); tells `progress` what it is doing.
pub async fn run(
    bed: &Testbed,
    nats: async_nats::Client,
    objects: usize,
    progress: fn(&str),
) -> anyhow::Result<TimeTravelRun> {
    let log = EventLog::open(nats.clone(), StreamSettings::default()).await?;
    progress(&format!(
        "appending a tenant of {objects} objects ({}) straight to the log",
        large_tenant::TENANT
    ));
    let large = large_tenant::append(&log, objects).await?;
    let last = log.state().await?.last_sequence;
    progress(&format!(
        "appended {} events in {:.1}s; waiting for the directory to project them",
        large.events,
        large.elapsed.as_secs_f64()
    ));
    let projecting = Instant::now();
    directory_reaches(&bed.directory, last).await?;
    let directory_catch_up = projecting.elapsed();
    progress(&format!(
        "projected in {:.1}s; reading the {last} messages of the log raw",
        directory_catch_up.as_secs_f64()
    ));
    let raw_log_read = super::raw::raw_read_log(&log, last).await?;
    progress(&format!(
        "read in {:.1}s; building a fresh time-travel store from {last} events",
        raw_log_read.elapsed.as_secs_f64()
    ));

    let folder = bed.scratch_dir("timetravel")?;
    let rss_before_build_mib = reset_peak_rss();
    let (trigger, shutdown) = Shutdown::new();
    let started = Instant::now();
    let mut config = SnapshotterConfig::new(folder.clone());
    // No checkpoints: a checkpoint taken in the background during (and after) the build
    // would be timed as build and disturb every figure after it.
    config.checkpoint_every = 0;
    let snapshotter = backtrack_snapshotter::start(config, nats, shutdown.clone()).await?;
    let built = match snapshotter.restored_from() {
        None => snapshotter_reaches(&snapshotter, last).await,
        Some(at) => Err(anyhow::anyhow!(
            "the snapshotter restored a checkpoint at {at} instead of building from sequence 1"
        )),
    };
    let build = Throughput {
        count: last,
        elapsed: started.elapsed(),
    };
    let build_peak_rss_mib = memory::peak_rss_mib(None);
    let store = match built {
        Ok(()) => {
            progress(&format!(
                "built in {:.1}s; backups, verification, lookups, listings, gRPC",
                build.elapsed.as_secs_f64()
            ));
            let built = Built {
                bed,
                snapshotter: &snapshotter,
                shutdown,
                folder: &folder,
                large: &large,
                last,
            };
            built.measure().await
        }
        Err(e) => Err(e),
    };
    trigger.trigger();
    Ok(TimeTravelRun {
        store: store?,
        large,
        directory_catch_up,
        raw_log_read,
        build,
        rss_before_build_mib,
        build_peak_rss_mib,
    })
}

/// A snapshotter that has applied the whole log, and what is known about that log.
struct Built<'a> {
    bed: &'a Testbed,
    snapshotter: &'a Snapshotter,
    /// Stops the gRPC server with the snapshotter.
    shutdown: Shutdown,
    folder: &'a Path,
    large: &'a LargeTenant,
    last: u64,
}

impl Built<'_> {
    async fn measure(&self) -> anyhow::Result<StoreFigures> {
        let store = self.snapshotter.store().clone();
        store.flush()?;
        let bytes_at_build_end = folder_bytes(self.folder)?;
        // The size the store keeps: once the compactions the build left behind are done
        // (until then the folder also holds their inputs). The reads below then meet the
        // store as it stays, not one being compacted.
        let settling = Instant::now();
        while !store.background_work_settled() {
            anyhow::ensure!(
                settling.elapsed() < SETTLE_LIMIT,
                "the time-travel store's compactions did not finish within {SETTLE_LIMIT:?}: {}",
                store.write_pressure()
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        let settle = settling.elapsed();
        let bytes = folder_bytes(self.folder)?;
        let demo_digest = store.tenant_summary(import::TENANT).2.digest();
        let (live_digest, _) = self
            .bed
            .directory
            .projection()
            .tenant_digest(import::TENANT)?;

        let demo = tenant_figures(self.snapshotter, import::TENANT).await?;
        let large = tenant_figures(self.snapshotter, large_tenant::TENANT).await?;

        let tenant = large_tenant::TENANT;
        let (from, to) = (self.large.first_sequence, self.last);
        // The middle of the large tenant's part of the log: the log's own middle may fall
        // before the large tenant's first event when the imported tenant is the bigger part.
        let middle = from + (to - from).div_ceil(2);
        let (ids, lookups, lookup_hits, listing, listing_with_links) = {
            let store = store.clone();
            let count = LOOKUPS.min(10 * self.large.shape.objects());
            tokio::task::spawn_blocking(move || -> anyhow::Result<_> {
                let mut ids = Vec::new();
                page_through(&store, tenant, to, false, Some(&mut ids))?;
                let (lookups, hits) = lookups(&store, tenant, &ids, (from, to), count)?;
                let listing = page_through(&store, tenant, middle, false, None)?;
                anyhow::ensure!(
                    listing.count > 0,
                    "the listing of {tenant} at sequence {middle} found no objects to time"
                );
                let with_links = page_through(&store, tenant, middle, true, None)?;
                Ok((ids, lookups, hits, listing, with_links))
            })
            .await??
        };
        let grpc_object_at =
            grpc_object_at(self.snapshotter, &self.shutdown, tenant, &ids, (from, to)).await?;
        let (alerter, alerts_raised) = self.alerter_catch_up().await?;
        Ok(StoreFigures {
            bytes,
            bytes_at_build_end,
            settle,
            demo_digest,
            live_digest,
            demo,
            large,
            lookups,
            lookup_hits,
            listing_sequence: middle,
            listing,
            listing_with_links,
            grpc_object_at,
            alerter,
            alerts_raised,
        })
    }

    /// Rewinds the alerter to the log's start, starts it on the built store and times it
    /// to the tail; counts the alert records it wrote.
    async fn alerter_catch_up(&self) -> anyhow::Result<(Throughput, u64)> {
        let js = async_nats::jetstream::new(self.snapshotter.log().client().clone());
        alerter::rewind(&js, 1, 0).await?;
        let started = Instant::now();
        alerter::start(
            self.snapshotter,
            AlertSettings::default(),
            self.shutdown.clone(),
        )
        .await?;
        while alerter::position(&js).await?.unwrap_or(0) < self.last {
            anyhow::ensure!(
                started.elapsed() < SETTLE_LIMIT,
                "the alerter did not reach sequence {} within {SETTLE_LIMIT:?}",
                self.last
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        let elapsed = started.elapsed();
        let audit = js.get_stream("BT_AUDIT").await?;
        let mut subjects = audit.info_with_subjects("bt.audit.*.alert").await?;
        let mut raised = 0;
        while let Some(subject) = subjects.next().await {
            raised += subject?.1;
        }
        Ok((
            Throughput {
                count: self.last,
                elapsed,
            },
            raised as u64,
        ))
    }
}

/// Waits until the directory has projected `sequence`; fails if it stops moving.
async fn directory_reaches(directory: &Directory, sequence: u64) -> anyhow::Result<()> {
    let mut seen = directory.position();
    while directory.wait_for(sequence).await.is_err() {
        let now = directory.position();
        if now == seen {
            bail!("the directory stalled at sequence {now} of {sequence}");
        }
        seen = now;
    }
    Ok(())
}

/// Waits until the snapshotter has applied `sequence`; fails if it stops moving.
async fn snapshotter_reaches(snapshotter: &Snapshotter, sequence: u64) -> anyhow::Result<()> {
    let mut seen = snapshotter.position();
    while snapshotter.wait_for(sequence).await.is_err() {
        let now = snapshotter.position();
        if now == seen {
            bail!("the snapshotter stalled at sequence {now} of {sequence}");
        }
        seen = now;
    }
    Ok(())
}

/// Takes [`BACKUP_REPEATS`] on-demand backups of `tenant`, then verifies the last one.
async fn tenant_figures(snapshotter: &Snapshotter, tenant: &str) -> anyhow::Result<TenantFigures> {
    let mut backup_create = Vec::with_capacity(BACKUP_REPEATS);
    let mut last = None;
    for n in 0..BACKUP_REPEATS {
        let request = BackupRequest {
            tenant: tenant.to_string(),
            description: format!("backtrack-bench backup {n}"),
            trigger: v1::BackupTrigger::OnDemand,
            requested_by: "backtrack-bench".into(),
            scheduled_for_ms: None,
        };
        let started = Instant::now();
        let backup = snapshotter.create_backup(request).await?;
        backup_create.push(started.elapsed());
        last = Some(backup);
    }
    let backup = last.context("no backup was taken")?;
    let started = Instant::now();
    let verification = snapshotter.verify(tenant, &backup.id).await?;
    let verify = started.elapsed();
    let (incoming_history, incoming_changes) = {
        let store = snapshotter.store().clone();
        let tenant = tenant.to_string();
        tokio::task::spawn_blocking(move || incoming_of_a_user(&store, &tenant, backup.sequence))
            .await??
    };
    Ok(TenantFigures {
        tenant: tenant.to_string(),
        objects: backup.counts.iter().map(|c| c.live + c.deleted).sum(),
        backup_create,
        verify,
        verified: verification.ok,
        verify_message: verification.message,
        incoming_history,
        incoming_changes,
    })
}

/// Times the incoming link history of the tenant's first user at `sequence`: one pass over
/// every link key of the tenant, whichever object asks.
fn incoming_of_a_user(
    store: &TimeTravelStore,
    tenant: &str,
    sequence: u64,
) -> anyhow::Result<(Duration, usize)> {
    let query = ListAt {
        sequence,
        kind: Some(ObjectKind::User),
        limit: 1,
        ..ListAt::default()
    };
    let page = store.list_at(tenant, &query)?;
    let user = page.objects.first().context("the tenant has no user")?;
    let started = Instant::now();
    let changes = store.incoming_link_history(tenant, &user.id)?.len();
    Ok((started.elapsed(), changes))
}

/// Pages through the tenant's objects at `sequence`, [`PAGE`] at a time; collects their
/// ids into `ids` if given.
fn page_through(
    store: &TimeTravelStore,
    tenant: &str,
    sequence: u64,
    with_links: bool,
    mut ids: Option<&mut Vec<String>>,
) -> anyhow::Result<Throughput> {
    let started = Instant::now();
    let mut query = ListAt {
        sequence,
        limit: PAGE,
        with_links,
        ..ListAt::default()
    };
    let mut count = 0;
    loop {
        let page = store.list_at(tenant, &query)?;
        count += page.objects.len() as u64;
        if let Some(ids) = ids.as_deref_mut() {
            ids.extend(page.objects.into_iter().map(|o| o.id));
        }
        match page.next_after {
            Some(after) => query.after = Some(after),
            None => break,
        }
    }
    Ok(Throughput {
        count,
        elapsed: started.elapsed(),
    })
}

/// `count` lookups of random ids at random sequences in `span`; returns how fast they went
/// and how many found the object.
fn lookups(
    store: &TimeTravelStore,
    tenant: &str,
    ids: &[String],
    span: (u64, u64),
    count: usize,
) -> anyhow::Result<(Throughput, u64)> {
    if ids.is_empty() {
        bail!("tenant {tenant} has no objects to look up");
    }
    let mut rng = ChaCha8Rng::seed_from_u64(SEED);
    let pairs: Vec<(&str, u64)> = (0..count)
        .map(|_| {
            let id = ids[rng.random_range(0..ids.len())].as_str();
            (id, rng.random_range(span.0..=span.1))
        })
        .collect();
    let started = Instant::now();
    let mut hits = 0;
    for (id, sequence) in pairs {
        if store.object_at(tenant, id, sequence)?.is_some() {
            hits += 1;
        }
    }
    let throughput = Throughput {
        count: count as u64,
        elapsed: started.elapsed(),
    };
    Ok((throughput, hits))
}

/// Serves the snapshotter's `TimeTravelService` behind the auth interceptor on
/// `127.0.0.1:0`, as `backtrack up` serves it, and times sequential `GetObjectAt` calls
/// for random objects at random sequences at which they exist.
async fn grpc_object_at(
    snapshotter: &Snapshotter,
    shutdown: &Shutdown,
    tenant: &str,
    ids: &[String],
    span: (u64, u64),
) -> anyhow::Result<Vec<Duration>> {
    let key = SigningKey::generate()?;
    let token = key.mint(
        "backtrack-bench",
        &[ALL_TENANTS.to_string()],
        &[Role::GlobalAdministrator],
        &[],
        TOKEN_TTL,
    )?;
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let addr = listener.local_addr()?;
    let service = InterceptedService::new(
        TimeTravelApi::new(snapshotter.clone()).into_server(),
        AuthInterceptor::new(Arc::new(TokenValidator::local(&key))),
    );
    let stopped = shutdown.clone();
    let server = tokio::spawn(
        tonic::transport::Server::builder()
            .add_service(service)
            .serve_with_incoming_shutdown(
                backtrack_platform::grpc::incoming(listener),
                async move { stopped.wait().await },
            ),
    );
    let channel = tonic::transport::Endpoint::from_shared(format!("http://{addr}"))?
        .connect()
        .await
        .context("connect to the time-travel service")?;
    let mut client = TimeTravelServiceClient::with_interceptor(channel, BearerToken::new(&token)?);

    let targets = existing_pairs(snapshotter.store(), tenant, ids, span)?;
    let mut timings = Vec::with_capacity(GRPC_CALLS);
    for (call, (id, sequence)) in targets.iter().enumerate() {
        let request = v1::GetObjectAtRequest {
            tenant: tenant.to_string(),
            id: id.clone(),
            at: Some(v1::Point {
                point: Some(v1::point::Point::Sequence(*sequence)),
            }),
        };
        let started = Instant::now();
        let answer = client.get_object_at(request).await?.into_inner();
        let took = started.elapsed();
        if answer.object.is_none_or(|o| o.id != *id) {
            bail!("GetObjectAt {id} at {sequence} answered another object");
        }
        if call >= GRPC_WARMUP {
            timings.push(took);
        }
    }
    server.abort();
    Ok(timings)
}

/// [`GRPC_WARMUP`] + [`GRPC_CALLS`] random (id, sequence) pairs at which the object exists.
fn existing_pairs(
    store: &TimeTravelStore,
    tenant: &str,
    ids: &[String],
    span: (u64, u64),
) -> anyhow::Result<Vec<(String, u64)>> {
    let wanted = GRPC_WARMUP + GRPC_CALLS;
    let mut rng = ChaCha8Rng::seed_from_u64(SEED + 1);
    let mut pairs = Vec::with_capacity(wanted);
    for _ in 0..wanted * 100 {
        if pairs.len() == wanted || ids.is_empty() {
            break;
        }
        let id = &ids[rng.random_range(0..ids.len())];
        let sequence = rng.random_range(span.0..=span.1);
        if store.object_at(tenant, id, sequence)?.is_some() {
            pairs.push((id.clone(), sequence));
        }
    }
    if pairs.len() < wanted {
        bail!(
            "found only {} objects of {tenant} to ask for over gRPC",
            pairs.len()
        );
    }
    Ok(pairs)
}

/// Resets this process's `VmHWM` to its current resident size (Linux: "5" to
/// `/proc/self/clear_refs`) and returns that size in MiB, if `/proc` allows.
fn reset_peak_rss() -> Option<f64> {
    std::fs::write("/proc/self/clear_refs", "5").ok()?;
    memory::peak_rss_mib(None)
}

/// Bytes of every file under `dir`.
fn folder_bytes(dir: &Path) -> anyhow::Result<u64> {
    let mut total = 0;
    for entry in std::fs::read_dir(dir).with_context(|| format!("read {}", dir.display()))? {
        let entry = entry?;
        let meta = entry.metadata()?;
        total += if meta.is_dir() {
            folder_bytes(&entry.path())?
        } else {
            meta.len()
        };
    }
    Ok(total)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn folder_bytes_counts_nested_files() -> anyhow::Result<()> {
        let dir = tempfile::tempdir()?;
        std::fs::write(dir.path().join("a"), [0u8; 10])?;
        std::fs::create_dir(dir.path().join("sub"))?;
        std::fs::write(dir.path().join("sub").join("b"), [0u8; 5])?;
        assert_eq!(folder_bytes(dir.path())?, 15);
        Ok(())
    }
}
