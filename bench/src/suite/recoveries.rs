//! The recovery rows: one recovery job per incident size, in process and over gRPC, its
//! parameters, its rows against the reference system's rate, and its checks.

use super::{compact, progress, Outcome, Sizes};
use crate::report::{Report, Target};
use crate::scenarios::recovery;
use crate::testbed::Testbed;

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

/// The recovery scenarios: one job per incident size, its rows and parameters. A job that
/// does not end successful, leaves changes undone or differing, makes another number of
/// changes than the incident asks for, or publishes another number of audit records than
/// operations it applied is a failure.
pub(super) async fn recoveries(
    bed: &Testbed,
    sizes: &Sizes,
    outcome: &mut Outcome,
) -> anyhow::Result<()> {
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
            "job_queued_ms": job.started_at_ms - job.created_at_ms,
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
    if let Some(p) = run
        .plans
        .filter(|p| p.changed_by_operations != p.whole_operations)
    {
        // The incident is all one actor's work: both plans must be the same.
        problems.push(format!(
            "the dry run of what {} changed planned {} operations, the whole dry run {}",
            recovery::ACTOR,
            p.changed_by_operations,
            p.whole_operations
        ));
    }
    if let Some(judged) = run.judged.as_ref().filter(|_| run.successful()) {
        outcome.report.parameter(
            &format!("recovery_{}_judged_alerts", compact(run.size)),
            serde_json::json!(judged.alerts),
        );
        if judged.alerts.is_empty() {
            problems.push("overview's judgement of the incident found no alert".into());
        }
        let standing = judged.standing();
        if !standing.is_empty() {
            problems.push(format!(
                "overview's judgement after the recovery: {standing:?} still stand"
            ));
        }
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
    if let Some(judged) = &run.judged {
        report.record(
            &format!("recovery_{size}_judged_events_per_s"),
            judged.events_per_second(),
            "events/s",
        );
    }
    if let Some(p) = run.plans {
        report.record(
            &format!("recovery_{size}_plan_seconds"),
            p.whole.as_secs_f64(),
            "seconds",
        );
        report.record_against(
            &format!("recovery_{size}_plan_changed_by_seconds"),
            p.changed_by.as_secs_f64(),
            "seconds",
            Some(&format!("recovery_{size}_plan_seconds")),
            None,
        );
    }
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

#[cfg(test)]
mod tests {
    use super::RECOVERY_TARGET_X_REFERENCE;
    use crate::scenarios::recovery::REFERENCE_CHANGES_PER_SECOND;

    #[test]
    fn the_recovery_target_is_2000_changes_per_second() {
        let target = RECOVERY_TARGET_X_REFERENCE * REFERENCE_CHANGES_PER_SECOND;
        assert!((target - 2000.0).abs() < 0.1, "{target}");
    }
}
