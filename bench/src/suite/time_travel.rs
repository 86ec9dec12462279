//! The time-travel rows: the snapshotter's build from the whole log, backups, lookups,
//! listings and verification over its store, and their correctness checks.

use super::{compact, progress, Outcome, Sizes, TIMETRAVEL_TARGET_OBJECTS};
use crate::report::{Report, Target};
use crate::scenarios::{import, percentile_ms, snapshotter};
use crate::testbed::Testbed;

/// Peak resident memory allowed while the snapshotter builds (1.5 GiB).
const BUILD_RSS_TARGET_MIB: f64 = 1536.0;

/// The snapshotter scenarios: runs them, records their parameters and rows, and notes a
/// digest mismatch or a failed verification as a failure.
pub(super) async fn time_travel(
    bed: &Testbed,
    sizes: &Sizes,
    outcome: &mut Outcome,
) -> anyhow::Result<()> {
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
    report.parameter(
        "timetravel_store_bytes_at_build_end",
        store.bytes_at_build_end,
    );
    report.parameter(
        "timetravel_compaction_settle_seconds",
        store.settle.as_secs_f64(),
    );
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
    // The build is held against a raw read of the very messages it reads (the log, just
    // before it); its ratio to the short `raw_read` of import-shaped messages is kept as
    // a parameter.
    report.record("raw_read_log", run.raw_log_read.per_second(), "messages/s");
    if let Some(short) = report.value("raw_read").filter(|v| *v > 0.0) {
        report.parameter(
            "timetravel_build_ratio_to_raw_read",
            run.build.per_second() / short,
        );
    }
    report.record_against(
        "timetravel_build",
        run.build.per_second(),
        "events/s",
        Some("raw_read_log"),
        Some(Target::RatioAtLeast(0.5)),
    );
    // The alerter reads the same log with the alert rules and its naming reads: held
    // against the same raw read.
    report.record_against(
        "alerter_catch_up",
        store.alerter.per_second(),
        "events/s",
        Some("raw_read_log"),
        None,
    );
    report.parameter("alerter_alerts_raised", store.alerts_raised);
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
    for figures in [&store.demo, &store.large] {
        let objects = compact(usize::try_from(figures.objects).unwrap_or(usize::MAX));
        report.record(
            &format!("incoming_history_seconds_{objects}_objects"),
            figures.incoming_history.as_secs_f64(),
            "seconds",
        );
        report.parameter(
            &format!("incoming_history_changes_{objects}_objects"),
            figures.incoming_changes,
        );
    }
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
