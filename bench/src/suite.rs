//! The whole run: one testbed, the scenarios in an order that gives each baseline the
//! shape and count of what it is compared with, and the rows they make.
//!
//! Order: the import runs first (it defines the events), then the baselines publish and
//! read as many messages of the same average size and header count, then the log is
//! replayed into a fresh projection, then the change feed is timed and the peak memory is
//! read. Last, a large tenant is appended behind the demo tenant and a fresh snapshotter
//! builds its time-travel store from the whole log and is measured (it resets the peak
//! memory, so it comes after the directory's figures); difference reports over that store
//! follow, and recovery jobs on the same store close the run (with `--recovery-only`, they
//! are all it does).

mod audits;
mod breakdown;
mod clustered;
mod difference_reports;
mod recoveries;
mod time_travel;

use std::time::Instant;

use self::audits::audits;
use self::breakdown::import_breakdown;
use self::clustered::clustered;
use self::difference_reports::difference_reports;
use self::recoveries::recoveries;
use self::time_travel::time_travel;
use crate::args::BenchArgs;
use crate::report::{Report, Target};
use crate::scenarios::{feed, import, memory, percentile_ms, raw, replay, revocation};
use crate::testbed::Testbed;

/// How big a run is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Sizes {
    pub users: usize,
    /// `None`: as many as the import appended events.
    pub raw_messages: Option<u64>,
    pub latency_samples: usize,
    /// Objects of the large tenant the time-travel scenarios append and build.
    pub timetravel_objects: usize,
    /// Changes of each recovery incident, one recovery job per entry.
    pub recovery_changes: Vec<usize>,
    /// Run the recovery scenario and nothing else.
    pub recovery_only: bool,
    /// Records of the audit scenario (0: skipped).
    pub audit_records: usize,
    /// Run the audit scenario and nothing else.
    pub audit_only: bool,
    /// Objects of the cluster scenario (0: skipped).
    pub cluster_objects: usize,
    /// Run the cluster scenario and nothing else.
    pub cluster_only: bool,
}

impl From<&BenchArgs> for Sizes {
    fn from(args: &BenchArgs) -> Self {
        Self {
            users: usize::try_from(args.users).unwrap_or(usize::MAX),
            raw_messages: args.raw_messages,
            latency_samples: usize::try_from(args.latency_samples).unwrap_or(usize::MAX),
            timetravel_objects: usize::try_from(args.timetravel_objects).unwrap_or(usize::MAX),
            recovery_changes: args
                .recovery_changes
                .iter()
                .map(|&n| usize::try_from(n).unwrap_or(usize::MAX))
                .collect(),
            recovery_only: args.recovery_only,
            audit_records: usize::try_from(args.audit_records).unwrap_or(usize::MAX),
            audit_only: args.audit_only,
            cluster_objects: usize::try_from(args.cluster_objects).unwrap_or(usize::MAX),
            cluster_only: args.cluster_only,
        }
    }
}

/// The figures of one run, and what makes them untrustworthy, if anything.
#[derive(Debug, Clone, Default)]
pub struct Outcome {
    pub report: Report,
    /// Correctness failures (e.g. a replay that rebuilt other state); any one of them
    /// makes the run worthless whatever its speed.
    pub failures: Vec<String>,
}

impl Outcome {
    /// Prints the table, the missed targets and the failures, and writes the JSON to `path`.
    pub fn publish(&self, path: &std::path::Path) -> anyhow::Result<()> {
        println!("\n{}", self.report.table());
        self.report.write(path)?;
        println!("results written to {}", path.display());
        let missed: Vec<&str> = self
            .report
            .missed()
            .iter()
            .map(|m| m.name.as_str())
            .collect();
        if !missed.is_empty() {
            println!("targets missed: {}", missed.join(", "));
        }
        for failure in &self.failures {
            eprintln!("backtrack-bench: FAILED: {failure}");
        }
        Ok(())
    }
}

/// The users count at which the seeding target applies.
const SEED_TARGET_USERS: usize = 100_000;
/// The large tenant's size from which the backup and build-memory targets apply.
const TIMETRAVEL_TARGET_OBJECTS: usize = 1_000_000;

/// Starts a testbed, runs every scenario on it, stops it.
pub async fn run(sizes: Sizes) -> anyhow::Result<Outcome> {
    let bed = Testbed::start().await?;
    let outcome = if sizes.cluster_only {
        let mut outcome = Outcome::default();
        clustered(&sizes, &mut outcome).await.map(|()| outcome)
    } else if sizes.audit_only {
        let mut outcome = Outcome::default();
        audits(&bed, &sizes, &mut outcome).await.map(|()| outcome)
    } else if sizes.recovery_only {
        run_recovery_only(&bed, &sizes).await
    } else {
        run_on(&bed, &sizes).await
    };
    bed.stop().await;
    outcome
}

/// Only the recovery scenario, on a time-travel store that follows the log from its start.
async fn run_recovery_only(bed: &Testbed, sizes: &Sizes) -> anyhow::Result<Outcome> {
    let mut outcome = Outcome::default();
    if let Ok(load) = std::fs::read_to_string("/proc/loadavg") {
        outcome.report.parameter("loadavg_at_start", load.trim());
    }
    let nats = bed.nats_client("backtrack-bench").await?;
    outcome
        .report
        .parameter("nats_server_version", nats.server_info().version);
    recoveries(bed, sizes, &mut outcome).await?;
    Ok(outcome)
}

async fn run_on(bed: &Testbed, sizes: &Sizes) -> anyhow::Result<Outcome> {
    let mut outcome = Outcome::default();
    let report = &mut outcome.report;
    let options = backtrack_cli::up::demo_options(sizes.users, 42, "bench.example");
    report.parameter("users", options.users);
    report.parameter("groups", options.groups);
    report.parameter("apps", options.apps);
    report.parameter("objects", options.total_objects());
    report.parameter("import_batch", import::BATCH);
    report.parameter("latency_samples", sizes.latency_samples);
    // Other work on the machine skews every figure; say how busy it was.
    if let Ok(load) = std::fs::read_to_string("/proc/loadavg") {
        report.parameter("loadavg_at_start", load.trim());
    }
    let nats = bed.nats_client("backtrack-bench").await?;
    report.parameter("nats_server_version", nats.server_info().version);

    let mut client = bed.grpc_client().await?;
    progress(&format!(
        "importing {} objects ({} users) over gRPC",
        options.total_objects(),
        options.users
    ));
    let imported = import::bulk_import(bed, &mut client, sizes.users).await?;
    progress(&format!(
        "imported {} objects, {} events in {:.1}s; per kind of most objects in a call (seconds):",
        imported.objects,
        imported.events,
        imported.elapsed.as_secs_f64()
    ));
    report.parameter("import_phases_by_kind", import_breakdown(&imported));

    let shape = raw::event_shape(bed.directory.log()).await?;
    let raw_count = sizes.raw_messages.unwrap_or(imported.events).max(1);
    report.parameter("raw_messages", raw_count);
    report.parameter("event_payload_bytes", shape.payload_bytes);
    report.parameter("event_headers", shape.headers);
    report.parameter("event_header_bytes", shape.header_bytes);
    report.parameter("event_shape_sampled", shape.sampled);
    progress(&format!(
        "publishing {raw_count} raw messages ({} B payload, {} headers, {} B of headers)",
        shape.payload_bytes, shape.headers, shape.header_bytes
    ));
    let published = raw::raw_publish(nats.clone(), &shape, raw_count, 1, raw::Guards::None).await?;
    progress("reading them back");
    let read = raw::raw_read(nats.clone(), raw_count).await?;
    progress("publishing them again with the event log's Nats-Msg-Id and expected last subject sequence, one subject each");
    let guarded =
        raw::raw_publish(nats.clone(), &shape, raw_count, 1, raw::Guards::EventLog).await?;

    progress("writing as many values of that size to a plain RocksDB");
    let rocks = raw::raw_rocksdb_write(
        &bed.scratch_dir("raw-rocksdb")?,
        raw_count,
        shape.payload_bytes as usize,
    )?;

    progress("replaying the log into a fresh projection");
    let replayed = replay::replay(
        nats.clone(),
        &bed.scratch_dir("replay")?,
        &bed.directory,
        import::TENANT,
    )
    .await?;
    report.parameter("replay_digest", replayed.rebuilt_digest.clone());
    report.parameter("live_digest", replayed.live_digest.clone());
    report.parameter("replay_digest_matches", replayed.digest_matches());
    report.parameter("replay_objects", replayed.objects);
    let elapsed = replayed.throughput.elapsed.as_secs_f64();
    let apply = replayed.apply.as_secs_f64();
    progress(&format!(
        "replayed {} events in {elapsed:.1}s: {apply:.1}s in DirectoryProjection::apply, {:.1}s waiting for the log beyond that",
        replayed.throughput.count,
        elapsed - apply
    ));
    for (kind, seconds) in &replayed.apply_by_kind {
        progress(&format!("  apply {kind:<22} {seconds:>7.2}s"));
    }
    report.parameter("replay_apply_seconds", apply);
    report.parameter("replay_wait_seconds", elapsed - apply);
    report.parameter(
        "replay_apply_seconds_by_kind",
        serde_json::to_value(&replayed.apply_by_kind)?,
    );
    if replayed.digest_matches() {
        progress(&format!(
            "replay digest {} == live digest ({} objects)",
            replayed.rebuilt_digest, replayed.objects
        ));
    } else {
        let failure = format!(
            "replay rebuilt other state: digest {} but the live directory has {}",
            replayed.rebuilt_digest, replayed.live_digest
        );
        progress(&failure);
        outcome.failures.push(failure);
    }

    progress(&format!(
        "timing {} UpdateObject calls against the change feed",
        sizes.latency_samples
    ));
    let fed = feed::feed_latency(
        &mut client,
        nats.clone(),
        import::TENANT,
        sizes.latency_samples,
    )
    .await?;
    progress("reading the tenant's history over WatchEvents: whole, its groups', one group's");
    let narrowed = feed::narrowed_reads(&mut client, import::TENANT, "group").await?;
    progress(&format!(
        "read {} events in {:.3}s, {} of groups in {:.3}s, {} of one group in {:.4}s",
        narrowed.whole.events,
        narrowed.whole.elapsed.as_secs_f64(),
        narrowed.kind.events,
        narrowed.kind.elapsed.as_secs_f64(),
        narrowed.object.events,
        narrowed.object.elapsed.as_secs_f64()
    ));
    progress(&format!(
        "revoking {} tokens through one process, timing until another refuses them",
        sizes.latency_samples
    ));
    let revoked = revocation::revocation_propagation(nats, sizes.latency_samples).await?;

    let report = &mut outcome.report;
    report.record("raw_publish", published.per_second(), "messages/s");
    report.record("raw_publish_guarded", guarded.per_second(), "messages/s");
    report.parameter(
        "bulk_import_ratio_to_guarded_publish",
        imported.events_per_second() / guarded.per_second(),
    );
    report.record("raw_read", read.per_second(), "messages/s");
    report.record("raw_rocksdb_write", rocks.per_second(), "puts/s");
    report.record_against(
        "bulk_import",
        imported.events_per_second(),
        "events/s",
        Some("raw_publish"),
        Some(Target::RatioAtLeast(0.5)),
    );
    report.record(
        "bulk_import_objects",
        imported.objects_per_second(),
        "objects/s",
    );
    let seed_target = (sizes.users == SEED_TARGET_USERS).then_some(Target::Below(30.0));
    report.record_against(
        &format!("seed_{}_users_seconds", compact(sizes.users)),
        imported.elapsed.as_secs_f64(),
        "seconds",
        None,
        seed_target,
    );
    report.record_against(
        "replay",
        replayed.throughput.per_second(),
        "events/s",
        Some("raw_read"),
        Some(Target::RatioAtLeast(0.6)),
    );
    report.record("feed_latency_p50", percentile_ms(&fed.feed, 0.50), "ms");
    report.record_against(
        "feed_latency_p99",
        percentile_ms(&fed.feed, 0.99),
        "ms",
        None,
        Some(Target::Below(5.0)),
    );
    report.record("rpc_roundtrip_p50", percentile_ms(&fed.rpc, 0.50), "ms");
    report.record("rpc_roundtrip_p99", percentile_ms(&fed.rpc, 0.99), "ms");
    let per_second = |r: &feed::Read| r.events as f64 / r.elapsed.as_secs_f64().max(1e-9);
    report.record_against(
        "feed_read_tenant",
        per_second(&narrowed.whole),
        "events/s",
        Some("raw_read"),
        None,
    );
    report.record(
        "feed_read_one_kind_seconds",
        narrowed.kind.elapsed.as_secs_f64(),
        "seconds",
    );
    report.record(
        "feed_read_one_object_seconds",
        narrowed.object.elapsed.as_secs_f64(),
        "seconds",
    );
    report.record_against(
        "overview_alerts_tenant",
        per_second(&narrowed.alerts),
        "events/s",
        Some("feed_read_tenant"),
        None,
    );
    report.parameter("overview_alerts_found", narrowed.alert_count);
    report.parameter("feed_read_one_kind_events", narrowed.kind.events);
    report.parameter("feed_read_one_object_events", narrowed.object.events);
    report.record(
        "token_revocation_propagation_p50",
        percentile_ms(&revoked, 0.50),
        "ms",
    );
    report.record(
        "token_revocation_propagation_p99",
        percentile_ms(&revoked, 0.99),
        "ms",
    );
    if let Some(mib) = memory::peak_rss_mib(None) {
        report.record("peak_rss_bench", mib, "MiB");
    }
    if let Some(mib) = memory::nats_server_pid(bed.nats.store_dir())
        .and_then(|pid| memory::peak_rss_mib(Some(pid)))
    {
        report.record("peak_rss_nats_server", mib, "MiB");
    }

    time_travel(bed, sizes, &mut outcome).await?;
    difference_reports(bed, sizes, &mut outcome).await?;
    recoveries(bed, sizes, &mut outcome).await?;
    audits(bed, sizes, &mut outcome).await?;
    clustered(sizes, &mut outcome).await?;
    Ok(outcome)
}

/// `100000` → `100k`, `1000000` → `1M`; other counts as they are.
fn compact(n: usize) -> String {
    if n >= 1_000_000 && (n / 1_000_000) * 1_000_000 == n {
        format!("{}M", n / 1_000_000)
    } else if n >= 1000 && (n / 1000) * 1000 == n {
        format!("{}k", n / 1000)
    } else {
        n.to_string()
    }
}

fn progress(what: &str) {
    static START: std::sync::OnceLock<Instant> = std::sync::OnceLock::new();
    let start = START.get_or_init(Instant::now);
    eprintln!("[{:>7.1}s] {what}", start.elapsed().as_secs_f64());
}

#[cfg(test)]
mod tests {
    use super::compact;

    #[test]
    fn compact_counts() {
        assert_eq!(compact(100_000), "100k");
        assert_eq!(compact(200), "200");
        assert_eq!(compact(1500), "1500");
        assert_eq!(compact(1_000_000), "1M");
        assert_eq!(compact(2_500_000), "2500k");
    }
}
