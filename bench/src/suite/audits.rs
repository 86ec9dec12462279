//! The audit rows: records published, chained and delivered to syslog and HTTP receivers,
//! with their delivery lags and the check that every record arrived; then the trail's own
//! alerting over as many refused calls, against a raw read of them.

use super::{progress, Outcome, Sizes};
use crate::report::Target;
use crate::scenarios::{audit, audit_alerting, percentile_ms};
use crate::testbed::Testbed;

/// The audit scenario: records published, chained and delivered to a syslog and an HTTP
/// receiver on localhost, with the delivery lags.
pub(super) async fn audits(
    bed: &Testbed,
    sizes: &Sizes,
    outcome: &mut Outcome,
) -> anyhow::Result<()> {
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

    progress(&format!(
        "audit: {} refused calls; the trail's alerting set back over them",
        sizes.audit_records
    ));
    let alerting = audit_alerting::run(bed, sizes.audit_records).await?;
    report.record(
        "audit_raw_read_refusals",
        alerting.raw_read.per_second(),
        "records/s",
    );
    report.record_against(
        "audit_alerting_catch_up",
        alerting.catch_up.per_second(),
        "records/s",
        Some("audit_raw_read_refusals"),
        None,
    );
    report.parameter("audit_alerting_callers", alerting.callers);
    report.parameter("audit_alerting_alerts_raised", alerting.raised);
    progress(&format!(
        "audit: alerting {:.0} records/s (raw read {:.0}/s), {} alerts for {} callers (a burst each and the tenant's surge)",
        alerting.catch_up.per_second(),
        alerting.raw_read.per_second(),
        alerting.raised,
        alerting.callers
    ));
    if alerting.raised != alerting.callers as u64 + 1 {
        outcome.failures.push(format!(
            "audit alerting: {} alerts for {} callers refused in bursts (one each and the tenant's surge expected)",
            alerting.raised, alerting.callers
        ));
    }
    Ok(())
}
