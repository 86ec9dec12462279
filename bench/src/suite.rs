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

use std::time::Instant;

use crate::args::BenchArgs;
use crate::report::{Report, Target};
use crate::scenarios::{
    audit, cluster, differ, feed, import, memory, percentile_ms, raw, recovery, replay, snapshotter,
};
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
/// Peak resident memory allowed while the snapshotter builds (1.5 GiB).
const BUILD_RSS_TARGET_MIB: f64 = 1536.0;
/// Peak resident memory allowed while the 1% difference report runs (1 GiB).
const DIFF_RSS_TARGET_MIB: f64 = 1024.0;
/// The row holding the reference system's published recovery rate.
const RECOVERY_REFERENCE_ROW: &str = "recovery_reference_changes_per_s";
/// The recovery rate to reach, 2,000 changes/s, as a multiple of the reference's 4.6
/// changes/s (2000 / 4.6, to two decimals).
const RECOVERY_TARGET_X_REFERENCE: f64 = 434.78;
/// The incident size from which the rate target applies.
const RECOVERY_RATE_TARGET_CHANGES: usize = 10_000;
/// The incident size at which the time target applies, and the target.
const RECOVERY_TIME_TARGET_CHANGES: usize = 100_000;
const RECOVERY_TIME_TARGET_SECONDS: f64 = 60.0;

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
    let published = raw::raw_publish(nats.clone(), &shape, raw_count, 1).await?;
    progress("reading them back");
    let read = raw::raw_read(nats.clone(), raw_count).await?;

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
        "replayed {} events in {elapsed:.1}s: {apply:.1}s in DirectoryProjection::apply, {:.1}s reading and decoding",
        replayed.throughput.count,
        elapsed - apply
    ));
    for (kind, seconds) in &replayed.apply_by_kind {
        progress(&format!("  apply {kind:<22} {seconds:>7.2}s"));
    }
    report.parameter("replay_apply_seconds", apply);
    report.parameter("replay_read_decode_seconds", elapsed - apply);
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
    let fed = feed::feed_latency(&mut client, nats, import::TENANT, sizes.latency_samples).await?;

    let report = &mut outcome.report;
    report.record("raw_publish", published.per_second(), "messages/s");
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

/// The snapshotter scenarios: runs them, records their parameters and rows, and notes a
/// digest mismatch or a failed verification as a failure.
async fn time_travel(bed: &Testbed, sizes: &Sizes, outcome: &mut Outcome) -> anyhow::Result<()> {
    let nats = bed.nats_client("backtrack-bench-snapshotter").await?;
    let run = snapshotter::run(bed, nats, sizes.timetravel_objects, progress).await?;
    check_time_travel(&run, outcome);
    time_travel_rows(&run, &mut outcome.report);
    Ok(())
}

/// The time-travel run's parameters and correctness checks.
fn check_time_travel(run: &snapshotter::TimeTravelRun, outcome: &mut Outcome) {
    let report = &mut outcome.report;
    let large = &run.large;
    report.parameter("timetravel_users", large.shape.users);
    report.parameter("timetravel_groups", large.shape.groups);
    report.parameter(
        "timetravel_members_per_group",
        large.shape.members_per_group,
    );
    report.parameter("timetravel_events", large.events);
    report.parameter("timetravel_append_seconds", large.elapsed.as_secs_f64());
    report.parameter(
        "timetravel_directory_catch_up_seconds",
        run.directory_catch_up.as_secs_f64(),
    );
    report.parameter("timetravel_build_events", run.build.count);
    report.parameter("timetravel_build_seconds", run.build.elapsed.as_secs_f64());
    if let Some(mib) = run.rss_before_build_mib {
        report.parameter("rss_before_snapshotter_build_mib", mib);
    }
    let store = &run.store;
    report.parameter("timetravel_store_bytes", store.bytes);
    report.parameter("timetravel_digest", store.demo_digest.clone());
    report.parameter("timetravel_digest_matches", store.digest_matches());
    report.parameter("object_at_lookup_hits", store.lookup_hits);
    report.parameter("tenant_at_listing_sequence", store.listing_sequence);
    report.parameter("tenant_at_listing_objects", store.listing.count);
    let mut verified = serde_json::Map::new();
    for figures in [&store.demo, &store.large] {
        verified.insert(figures.tenant.clone(), figures.verified.into());
        progress(&format!(
            "{}: {} ({} objects, verified in {:.2}s)",
            figures.tenant,
            figures.verify_message,
            figures.objects,
            figures.verify.as_secs_f64()
        ));
        if !figures.verified {
            outcome.failures.push(format!(
                "verification failed for tenant {}: {}",
                figures.tenant, figures.verify_message
            ));
        }
    }
    report.parameter("timetravel_verified", serde_json::Value::Object(verified));
    if store.digest_matches() {
        progress(&format!(
            "time-travel digest {} == live digest",
            store.demo_digest
        ));
    } else {
        let failure = format!(
            "the time-travel store built other state: tenant {} has digest {} there but {} in the directory",
            import::TENANT,
            store.demo_digest,
            store.live_digest
        );
        progress(&failure);
        outcome.failures.push(failure);
    }
}

/// The time-travel rows; the 1M-object targets apply from 1M objects on.
fn time_travel_rows(run: &snapshotter::TimeTravelRun, report: &mut Report) {
    let store = &run.store;
    let at_target_size = run.large.shape.objects() >= TIMETRAVEL_TARGET_OBJECTS;
    report.record_against(
        "timetravel_build",
        run.build.per_second(),
        "events/s",
        Some("raw_read"),
        Some(Target::RatioAtLeast(0.5)),
    );
    for (figures, target) in [
        (&store.demo, None),
        (&store.large, at_target_size.then_some(Target::Below(100.0))),
    ] {
        let objects = compact(usize::try_from(figures.objects).unwrap_or(usize::MAX));
        report.record(
            &format!("backup_create_p50_{objects}_objects"),
            percentile_ms(&figures.backup_create, 0.50),
            "ms",
        );
        report.record_against(
            &format!("backup_create_p99_{objects}_objects"),
            percentile_ms(&figures.backup_create, 0.99),
            "ms",
            None,
            target,
        );
    }
    for figures in [&store.demo, &store.large] {
        let objects = compact(usize::try_from(figures.objects).unwrap_or(usize::MAX));
        report.record(
            &format!("verify_seconds_{objects}_objects"),
            figures.verify.as_secs_f64(),
            "seconds",
        );
    }
    report.record("object_at_lookups", store.lookups.per_second(), "lookups/s");
    report.record(
        "get_object_at_grpc_p50",
        percentile_ms(&store.grpc_object_at, 0.50),
        "ms",
    );
    report.record_against(
        "get_object_at_grpc_p99",
        percentile_ms(&store.grpc_object_at, 0.99),
        "ms",
        None,
        Some(Target::Below(10.0)),
    );
    report.record("tenant_at_listing", store.listing.per_second(), "objects/s");
    report.record(
        "tenant_at_listing_with_links",
        store.listing_with_links.per_second(),
        "objects/s",
    );
    report.record(
        "timetravel_store_bytes_per_million_events",
        run.store_bytes_per_million_events(),
        "bytes",
    );
    if let Some(mib) = run.build_peak_rss_mib {
        report.record_against(
            "peak_rss_snapshotter_build",
            mib,
            "MiB",
            None,
            at_target_size.then_some(Target::Below(BUILD_RSS_TARGET_MIB)),
        );
    }
}

/// The difference-report scenarios: runs them, records their parameters and rows, and
/// notes a report whose item count is not the number of objects changed as a failure.
async fn difference_reports(
    bed: &Testbed,
    sizes: &Sizes,
    outcome: &mut Outcome,
) -> anyhow::Result<()> {
    let nats = bed.nats_client("backtrack-bench-differ").await?;
    let run = differ::run(bed, nats, sizes.timetravel_objects, progress).await?;
    let report = &mut outcome.report;
    let (large, churn) = (compact(run.large_objects), compact(run.churn_objects));
    let at_target_size = run.large_objects >= TIMETRAVEL_TARGET_OBJECTS;
    let mut exact = serde_json::Map::new();
    for (name, timed) in [
        ("diff_1pct", &run.one_percent),
        ("diff_0_changes", &run.no_changes),
        ("diff_all_changed", &run.all_changed),
    ] {
        report.parameter(
            &format!("{name}_report"),
            serde_json::json!({
                "base": timed.base, "target": timed.target, "items": timed.items,
                "expected": timed.expected, "elapsed_ms": timed.elapsed_ms,
            }),
        );
        exact.insert(name.into(), timed.exact().into());
        if !timed.exact() {
            outcome.failures.push(format!(
                "{name}: the report between sequences {} and {} has {} items, but {} objects changed",
                timed.base, timed.target, timed.items, timed.expected
            ));
        }
    }
    report.parameter("diff_items_exact", serde_json::Value::Object(exact));
    report.parameter(
        "diff_updates_append_seconds",
        run.updates_append.as_secs_f64(),
    );
    report.parameter("diff_churn_append_seconds", run.churn_append.as_secs_f64());
    report.parameter("diff_peer_tool", run.peer.tool.clone());
    report.parameter("diff_peer_files", run.peer.files);
    report.parameter("diff_peer_export_seconds", run.peer.export.as_secs_f64());
    report.parameter("diff_peer_summary", run.peer.summary.clone());
    if let Some(mib) = run.rss_before_one_percent_mib {
        report.parameter("rss_before_differ_1pct_mib", mib);
    }
    let seconds = |d: std::time::Duration| d.as_secs_f64();
    for (name, timed, limit) in [
        ("diff_1pct", &run.one_percent, 2.0),
        ("diff_0_changes", &run.no_changes, 0.2),
    ] {
        let target = at_target_size.then_some(Target::Below(limit));
        let name = format!("{name}_seconds_{large}_objects");
        report.record_against(&name, seconds(timed.wall), "seconds", None, target);
    }
    let peer = format!("diff_peer_seconds_{churn}_objects");
    report.record(&peer, seconds(run.peer.diff), "seconds");
    report.record_against(
        &format!("diff_all_changed_seconds_{churn}_objects"),
        seconds(run.all_changed.wall),
        "seconds",
        Some(&peer),
        Some(Target::FasterAtLeast(10.0)),
    );
    // The differ shares this process with the directory, the snapshotter and the data
    // generators, so its own footprint is the growth of the peak during the report; the
    // process's absolute peak is kept as a parameter.
    if let (Some(before), Some(peak)) =
        (run.rss_before_one_percent_mib, run.one_percent_peak_rss_mib)
    {
        report.parameter("peak_rss_process_during_differ_1pct_mib", peak);
        report.record_against(
            "differ_1pct_rss_growth",
            (peak - before).max(0.0),
            "MiB",
            None,
            Some(Target::Below(DIFF_RSS_TARGET_MIB)),
        );
    }
    Ok(())
}

/// The cluster scenario: appends on a three-node NATS cluster with R3 streams against plain
/// JetStream publishes to an R3 stream on the same cluster, and the failover time.
async fn clustered(sizes: &Sizes, outcome: &mut Outcome) -> anyhow::Result<()> {
    if sizes.cluster_objects == 0 {
        return Ok(());
    }
    progress(&format!(
        "cluster: {} objects appended to R3 streams on a three-node NATS cluster, then a node killed",
        sizes.cluster_objects
    ));
    let run = cluster::run(sizes.cluster_objects).await?;
    let report = &mut outcome.report;
    report.parameter("cluster_nodes", 3);
    report.parameter("cluster_stream_replicas", cluster::REPLICAS);
    report.parameter("cluster_events", run.append.count);
    report.parameter("cluster_event_payload_bytes", run.shape.payload_bytes);
    report.record("cluster_raw_publish_r3", run.raw.per_second(), "msgs/s");
    report.record_against(
        "cluster_append_r3",
        run.append.per_second(),
        "events/s",
        Some("cluster_raw_publish_r3"),
        None,
    );
    report.record(
        "cluster_failover_append_after_node_kill",
        run.failover.as_secs_f64() * 1000.0,
        "ms",
    );
    Ok(())
}

/// The audit scenario: records published, chained and delivered to a syslog and an HTTP
/// receiver on localhost, with the delivery lags.
async fn audits(bed: &Testbed, sizes: &Sizes, outcome: &mut Outcome) -> anyhow::Result<()> {
    if sizes.audit_records == 0 {
        return Ok(());
    }
    progress(&format!(
        "audit: publishing {} records, chaining them, delivering them to syslog and HTTP receivers",
        sizes.audit_records
    ));
    let run = audit::run(bed, sizes.audit_records).await?;
    let report = &mut outcome.report;
    report.parameter("audit_records", run.records);
    report.parameter("audit_publish_batch", audit::BATCH);
    report.record(
        "audit_syslog_target_records_per_s",
        audit::SYSLOG_TARGET_PER_SECOND,
        "records/s",
    );
    report.record("audit_publish", run.per_second(run.publish), "records/s");
    report.record("audit_chained", run.per_second(run.chained), "records/s");
    report.record_against(
        "audit_syslog_delivered",
        run.per_second(run.syslog),
        "records/s",
        Some("audit_syslog_target_records_per_s"),
        Some(Target::RatioAtLeast(1.0)),
    );
    report.record(
        "audit_http_delivered",
        run.per_second(run.http),
        "records/s",
    );
    report.record(
        "audit_syslog_lag_p50",
        percentile_ms(&run.syslog_lags, 0.50),
        "ms",
    );
    report.record(
        "audit_syslog_lag_p99",
        percentile_ms(&run.syslog_lags, 0.99),
        "ms",
    );
    report.record(
        "audit_http_lag_p50",
        percentile_ms(&run.http_lags, 0.50),
        "ms",
    );
    report.record(
        "audit_http_lag_p99",
        percentile_ms(&run.http_lags, 0.99),
        "ms",
    );
    report.parameter("audit_paced_records", run.paced_records);
    report.parameter("audit_paced_records_per_s", audit::PACED_PER_SECOND);
    report.record(
        "audit_paced_syslog_lag_p50",
        percentile_ms(&run.paced_syslog_lags, 0.50),
        "ms",
    );
    report.record(
        "audit_paced_syslog_lag_p99",
        percentile_ms(&run.paced_syslog_lags, 0.99),
        "ms",
    );
    report.record(
        "audit_paced_http_lag_p50",
        percentile_ms(&run.paced_http_lags, 0.50),
        "ms",
    );
    report.record(
        "audit_paced_http_lag_p99",
        percentile_ms(&run.paced_http_lags, 0.99),
        "ms",
    );
    progress(&format!(
        "audit: published {:.0}/s, chained {:.0}/s, syslog {:.0}/s, HTTP {:.0}/s; lag p99 syslog {:.1} ms, HTTP {:.1} ms",
        run.per_second(run.publish),
        run.per_second(run.chained),
        run.per_second(run.syslog),
        run.per_second(run.http),
        percentile_ms(&run.syslog_lags, 0.99),
        percentile_ms(&run.http_lags, 0.99),
    ));
    if run.syslog_lags.len() != run.records
        || run.http_lags.len() != run.records
        || run.paced_syslog_lags.len() != run.paced_records
        || run.paced_http_lags.len() != run.paced_records
    {
        outcome.failures.push(format!(
            "audit: {} records published, {} reached syslog and {} HTTP",
            run.records,
            run.syslog_lags.len(),
            run.http_lags.len()
        ));
    }
    Ok(())
}

/// The recovery scenarios: one job per incident size, its rows and parameters. A job that
/// does not end successful, leaves changes undone or differing, makes another number of
/// changes than the incident asks for, or publishes another number of audit records than
/// operations it applied is a failure.
async fn recoveries(bed: &Testbed, sizes: &Sizes, outcome: &mut Outcome) -> anyhow::Result<()> {
    if sizes.recovery_changes.is_empty() {
        return Ok(());
    }
    let nats = bed.nats_client("backtrack-bench-recovery").await?;
    let runs = recovery::run(bed, nats, &sizes.recovery_changes, progress).await?;
    outcome.report.record(
        RECOVERY_REFERENCE_ROW,
        recovery::REFERENCE_CHANGES_PER_SECOND,
        "changes/s",
    );
    for run in &runs {
        check_recovery(run, outcome);
        if run.successful() {
            recovery_rows(run, &mut outcome.report);
        }
    }
    Ok(())
}

/// The run's parameters, and its problems as failures.
fn check_recovery(run: &recovery::RecoveryRun, outcome: &mut Outcome) {
    let job = &run.job;
    let incident = &run.incident;
    let name = format!(
        "recovery of {} changes{} (job {})",
        run.size,
        if run.over_grpc { " over gRPC" } else { "" },
        job.id
    );
    outcome.report.parameter(
        &format!("recovery_{}{}", grpc_infix(run), compact(run.size)),
        serde_json::json!({
            "tenant": run.tenant,
            "users": incident.users,
            "groups": incident.groups,
            "incident": {
                "attribute_changes": incident.attribute_fixes,
                "membership_removals": incident.membership_removals,
                "soft_deletes": incident.soft_deletes,
                "hard_deletes": incident.hard_deletes,
            },
            "expected_changes": incident.changes(),
            "setup_seconds": run.setup.as_secs_f64(),
            "seconds": run.total.as_secs_f64(),
            "backup_and_plan_seconds": run.until_running.map(|d| d.as_secs_f64()),
            "job_elapsed_ms": job.finished_at_ms - job.created_at_ms,
            "state": backtrack_recovery::state_name(job.state),
            "operations_total": job.operations_total,
            "planned_objects": job.planned_objects,
            "planned_links": job.planned_links,
            "objects_changed": job.objects_changed,
            "links_changed": job.links_changed,
            "already_satisfied": job.already_satisfied,
            "failed": job.failed,
            "skipped": job.skipped,
            "residual": job.residual,
            "password_resets": job.password_resets.len(),
            "warnings": job.warnings,
            "audit_records": run.audit_records,
            "expected_audit_records": run.expected_audit_records(),
        }),
    );
    let mut problems = Vec::new();
    if !run.finished() {
        problems.push(format!(
            "did not finish in {:.0}s; last seen {}",
            run.total.as_secs_f64(),
            backtrack_recovery::state_name(job.state)
        ));
    } else if !run.successful() {
        problems.push(format!(
            "ended {}: {}",
            backtrack_recovery::state_name(job.state),
            job.error
        ));
    }
    if job.failed > 0 || job.skipped > 0 {
        problems.push(format!(
            "{} changes failed and {} were skipped (`backtrack recovery failed` lists them)",
            job.failed, job.skipped
        ));
    }
    if job.residual > 0 {
        problems.push(format!(
            "{} objects still differ from the backup, e.g. {:?}",
            job.residual,
            job.residual_ids.iter().take(5).collect::<Vec<_>>()
        ));
    }
    if run.finished() && run.changes() != incident.changes() as u64 {
        problems.push(format!(
            "made {} changes ({} objects, {} links) for an incident of {}",
            run.changes(),
            job.objects_changed,
            job.links_changed,
            incident.changes()
        ));
    }
    if run.finished() && run.audit_records != run.expected_audit_records() {
        problems.push(format!(
            "published {} audit records for {} applied operations and its start and end ({} expected)",
            run.audit_records,
            run.expected_audit_records().saturating_sub(2),
            run.expected_audit_records()
        ));
    }
    for problem in problems {
        let failure = format!("{name}: {problem}");
        progress(&failure);
        outcome.failures.push(failure);
    }
}

/// Rows of one recovery: its rate against the reference's, its time, the rate of its
/// apply phase and its audit records.
fn recovery_rows(run: &recovery::RecoveryRun, report: &mut Report) {
    if run.over_grpc {
        return grpc_recovery_rows(run, report);
    }
    let size = compact(run.size);
    let rate_target = (run.size >= RECOVERY_RATE_TARGET_CHANGES)
        .then_some(Target::RatioAtLeast(RECOVERY_TARGET_X_REFERENCE));
    report.record_against(
        &format!("recovery_{size}_changes_per_s"),
        run.changes_per_second(),
        "changes/s",
        Some(RECOVERY_REFERENCE_ROW),
        rate_target,
    );
    let time_target = (run.size == RECOVERY_TIME_TARGET_CHANGES)
        .then_some(Target::Below(RECOVERY_TIME_TARGET_SECONDS));
    report.record_against(
        &format!("recovery_{size}_seconds"),
        run.total.as_secs_f64(),
        "seconds",
        None,
        time_target,
    );
    if let Some(rate) = run.apply_changes_per_second() {
        report.record(
            &format!("recovery_{size}_apply_changes_per_s"),
            rate,
            "changes/s",
        );
    }
    report.record(
        &format!("recovery_{size}_audit_records"),
        run.audit_records as f64,
        "records",
    );
}

/// `grpc_` for a job whose batches went over gRPC.
fn grpc_infix(run: &recovery::RecoveryRun) -> &'static str {
    if run.over_grpc {
        "grpc_"
    } else {
        ""
    }
}

/// Rows of a job whose batches went to the directory over gRPC: its rate against the same
/// job applied in process, and its time.
fn grpc_recovery_rows(run: &recovery::RecoveryRun, report: &mut Report) {
    let size = compact(run.size);
    report.record_against(
        &format!("recovery_grpc_{size}_changes_per_s"),
        run.changes_per_second(),
        "changes/s",
        Some(&format!("recovery_{size}_changes_per_s")),
        None,
    );
    report.record(
        &format!("recovery_grpc_{size}_seconds"),
        run.total.as_secs_f64(),
        "seconds",
    );
}

/// Prints where the import's time went and returns the same as JSON.
fn import_breakdown(imported: &import::ImportRun) -> serde_json::Value {
    progress(&format!(
        "  {:<28} {:>7} {:>5} {:>8} {:>8} {:>8} {:>8}",
        "kind", "objects", "calls", "decide", "append", "project", "respond"
    ));
    let mut out = serde_json::Map::new();
    let mut total = import::Phases::default();
    for k in imported.by_kind.iter().filter(|k| k.calls > 0) {
        let p = &k.phases;
        progress(&format!(
            "  {:<28} {:>7} {:>5} {:>8.2} {:>8.2} {:>8.2} {:>8.2}",
            k.kind, k.objects, k.calls, p.decide, p.append, p.project, p.respond
        ));
        total.add(*p);
        out.insert(k.kind.clone(), phases_json(k.objects, k.calls, p));
    }
    let objects = imported.by_kind.iter().map(|k| k.objects).sum();
    let calls = imported.by_kind.iter().map(|k| k.calls).sum();
    progress(&format!(
        "  {:<28} {:>7} {:>5} {:>8.2} {:>8.2} {:>8.2} {:>8.2}",
        "all", objects, calls, total.decide, total.append, total.project, total.respond
    ));
    out.insert("all".into(), phases_json(objects, calls, &total));
    serde_json::Value::Object(out)
}

fn phases_json(objects: u64, calls: u64, p: &import::Phases) -> serde_json::Value {
    serde_json::json!({
        "objects": objects,
        "calls": calls,
        "decide_seconds": p.decide,
        "append_seconds": p.append,
        "project_seconds": p.project,
        "respond_seconds": p.respond,
        "total_seconds": p.total(),
    })
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
    use super::{compact, RECOVERY_TARGET_X_REFERENCE};
    use crate::scenarios::recovery::REFERENCE_CHANGES_PER_SECOND;

    #[test]
    fn the_recovery_target_is_2000_changes_per_second() {
        let target = RECOVERY_TARGET_X_REFERENCE * REFERENCE_CHANGES_PER_SECOND;
        assert!((target - 2000.0).abs() < 0.1, "{target}");
    }

    #[test]
    fn compact_counts() {
        assert_eq!(compact(100_000), "100k");
        assert_eq!(compact(200), "200");
        assert_eq!(compact(1500), "1500");
        assert_eq!(compact(1_000_000), "1M");
        assert_eq!(compact(2_500_000), "2500k");
    }
}
