//! The difference-report rows: reports between sequences of the time-travel store, timed
//! against `git diff` over the same objects, and their item-count checks.

use super::{compact, progress, Outcome, Sizes, TIMETRAVEL_TARGET_OBJECTS};
use crate::report::Target;
use crate::scenarios::differ;
use crate::testbed::Testbed;

/// Peak resident memory allowed while the 1% difference report runs (1 GiB).
const DIFF_RSS_TARGET_MIB: f64 = 1024.0;

/// The difference-report scenarios: runs them, records their parameters and rows, and
/// notes a report whose item count is not the number of objects changed as a failure.
pub(super) async fn difference_reports(
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
    // Where that time went: comparing the objects, and writing the items.
    report.record(
        &format!("diff_all_changed_compute_seconds_{churn}_objects"),
        seconds(run.all_changed.compute),
        "seconds",
    );
    report.record(
        &format!("diff_all_changed_store_seconds_{churn}_objects"),
        seconds(run.all_changed.store),
        "seconds",
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
