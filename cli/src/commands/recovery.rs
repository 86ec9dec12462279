//! `backtrack recover` and `backtrack recovery ...`: start recovery jobs (after showing the
//! plan and asking, unless `--yes`), follow them, list them, show what they could not do,
//! cancel and undo them. Rendering lives in [`super::recovery_view`].

use std::io::{BufRead, IsTerminal, Write};
use std::time::Duration;

use anyhow::{anyhow, bail};
use backtrack_proto::v1;
use indicatif::{ProgressBar, ProgressStyle};

use super::recovery_alerts;
use super::recovery_view::{
    is_finished, print_failures, print_job, print_jobs, print_plan, state_name,
};
use crate::args::{
    GlobalArgs, OnConflictArg, OutputFormat, RecoverArgs, RecoveryCommand, RecoveryRefArgs,
};
use crate::client::{recovery_client, RecoveryClient};
use crate::output::refuse;
use crate::point;

/// How often `--wait` asks for progress.
const POLL: Duration = Duration::from_millis(200);

/// `backtrack recover`.
pub async fn recover(g: &GlobalArgs, a: RecoverArgs) -> anyhow::Result<()> {
    let mut request = start_request(&a, chrono::Utc::now().timestamp_millis())?;
    let mut client = recovery_client(g).await?;
    // With --changed-by the plan is asked for even with --yes: when the actors changed
    // nothing that is not already back, no job starts.
    if a.dry_run || !a.yes || !a.changed_by.is_empty() {
        let mut dry = request.clone();
        dry.dry_run = true;
        let plan = client
            .start_recovery(dry)
            .await?
            .into_inner()
            .plan
            .ok_or_else(|| anyhow!("the server answered the dry run without a plan"))?;
        // Whose changes: given, or those of the report the recovery starts from.
        let who = plan.changed_by.join(", ");
        if let Some(note) = instant_note(&request, plan.point.as_ref()) {
            eprintln!("{note}");
        }
        // Only a plan from a report has a conflict base (with --changed-by, a later change
        // by someone else to what the actors changed is the conflict, said in the notes).
        let after = "the report, in ways it does not show";
        if a.dry_run {
            print_plan(g, &plan, after);
            return Ok(());
        }
        if plan.operation_count == 0 && plan.skipped.is_empty() {
            if who.is_empty() {
                eprintln!("nothing to recover: the scope already matches the recovery point");
            } else {
                eprintln!(
                    "nothing to recover: {who} changed nothing in scope after the point that is \
                     not already as it was before them"
                );
            }
            if g.output == OutputFormat::Json {
                print_plan(g, &plan, after);
            }
            return Ok(());
        }
        if !a.yes {
            // What it would do, then the question.
            print_plan(g, &plan, after);
            let sequence = plan.point.as_ref().map_or(0, |p| p.sequence);
            let what = if who.is_empty() {
                format!("Recover tenant {} to sequence {sequence}", a.tenant)
            } else {
                format!(
                    "Set back what {who} changed in tenant {} after sequence {sequence}",
                    a.tenant
                )
            };
            confirm(&format!(
                "{what}: {} operation(s) on {} object(s), {} link change(s)?",
                plan.operation_count, plan.objects, plan.links
            ))?;
        }
    }
    request.dry_run = false;
    let job = client
        .start_recovery(request)
        .await?
        .into_inner()
        .job
        .ok_or_else(|| anyhow!("the server started no job"))?;
    finish(g, &mut client, job, a.wait).await
}

/// Prints the job, or waits for it first; a failed or cancelled job is an error.
async fn finish(
    g: &GlobalArgs,
    client: &mut RecoveryClient,
    job: v1::RecoveryJob,
    wait_for_it: bool,
) -> anyhow::Result<()> {
    let waiting = job.state == v1::RecoveryState::RecoveryAwaitingApproval as i32;
    if waiting && g.output == OutputFormat::Table {
        eprintln!(
            "recovery {} covers the whole tenant and waits for a second GlobalAdministrator: \
             `backtrack approve --tenant {} {}`",
            job.id, job.tenant, job.id
        );
    }
    if !wait_for_it || waiting {
        print_job(g, &job);
        return Ok(());
    }
    let job = wait(g, client, job).await?;
    print_job(g, &job);
    match v1::RecoveryState::try_from(job.state) {
        Ok(v1::RecoveryState::RecoveryFailed) => bail!("recovery {} failed: {}", job.id, job.error),
        Ok(v1::RecoveryState::RecoveryAbandoned) => {
            bail!("recovery {} was cancelled; what it applied stays", job.id)
        }
        _ => Ok(()),
    }
}

/// `backtrack approve`.
pub async fn approve(g: &GlobalArgs, job: RecoveryRefArgs, wait: bool) -> anyhow::Result<()> {
    let mut client = recovery_client(g).await?;
    let approved = client
        .approve_recovery(reference(&job.tenant, &job.job))
        .await?
        .into_inner();
    finish(g, &mut client, approved, wait).await
}

/// `backtrack recovery ...`.
pub async fn run(g: &GlobalArgs, command: RecoveryCommand) -> anyhow::Result<()> {
    let mut client = recovery_client(g).await?;
    match command {
        RecoveryCommand::List { tenant } => {
            let jobs = client
                .list_recoveries(v1::ListRecoveriesRequest { tenant })
                .await?
                .into_inner()
                .jobs;
            print_jobs(g, &jobs);
        }
        RecoveryCommand::Show(r) => {
            let job = client.get_recovery(reference(&r.tenant, &r.job)).await?;
            let job = job.into_inner();
            let set_back = recovery_alerts::set_back(g, &job).await;
            recovery_alerts::print_job_with(g, &job, set_back.as_deref());
        }
        RecoveryCommand::Failed(r) => {
            let changes = client
                .list_failed_changes(reference(&r.tenant, &r.job))
                .await?
                .into_inner()
                .changes;
            print_failures(g, &changes);
        }
        RecoveryCommand::Cancel(r) => {
            let job = client.cancel_recovery(reference(&r.tenant, &r.job)).await?;
            let job = job.into_inner();
            if g.output == OutputFormat::Table {
                eprintln!("cancel requested: the job stops after the batch in flight");
            }
            print_job(g, &job);
        }
        RecoveryCommand::Undo {
            job,
            yes,
            wait,
            dry_run,
        } => {
            if dry_run || !yes {
                let plan = client
                    .plan_undo(reference(&job.tenant, &job.job))
                    .await?
                    .into_inner();
                print_plan(g, &plan, &format!("recovery {}", job.job));
                if dry_run {
                    return Ok(());
                }
                let original = client
                    .get_recovery(reference(&job.tenant, &job.job))
                    .await?;
                let original = original.into_inner();
                confirm(&format!(
                    "Undo recovery {} of tenant {}: bring its scope back to backup {}?",
                    original.id, original.tenant, original.pre_recovery_backup_id
                ))?;
            }
            let started = client
                .undo_recovery(reference(&job.tenant, &job.job))
                .await?;
            return finish(g, &mut client, started.into_inner(), wait).await;
        }
    }
    Ok(())
}

fn reference(tenant: &str, id: &str) -> v1::RecoveryRef {
    v1::RecoveryRef {
        tenant: tenant.to_string(),
        id: id.to_string(),
    }
}

/// For a point given as an instant: the state recovered to is the one at that instant,
/// which is the state after the last change before it — said with that change's time, so
/// an instant typed in local time can be checked against what it resolved to.
fn instant_note(
    request: &v1::StartRecoveryRequest,
    resolved: Option<&v1::ResolvedPoint>,
) -> Option<String> {
    use v1::start_recovery_request::Source;
    let Some(Source::Point(v1::Point {
        point: Some(v1::point::Point::TimeMs(asked)),
    })) = &request.source
    else {
        return None;
    };
    let resolved = resolved?;
    let last = match resolved.time_ms {
        0 => "no change was stored before it".to_string(),
        at => format!(
            "the last change before it is sequence {} at {}",
            resolved.sequence,
            backtrack_domain::time::rfc3339_ms(at)
        ),
    };
    Some(format!(
        "as of {} (your clock: {}): {last}",
        backtrack_domain::time::rfc3339_ms(*asked),
        local_text(*asked)
    ))
}

/// `ms` on the local clock, as a person typed it.
fn local_text(ms: i64) -> String {
    use chrono::TimeZone;
    chrono::Local
        .timestamp_millis_opt(ms)
        .single()
        .map(|t| t.format("%Y-%m-%d %H:%M:%S%.3f %:z").to_string())
        .unwrap_or_default()
}

/// `recover`'s request; `--from` must name a point.
fn start_request(a: &RecoverArgs, now_ms: i64) -> anyhow::Result<v1::StartRecoveryRequest> {
    use v1::start_recovery_request::Source;
    let source = match (&a.report, &a.from) {
        (Some(report), None) => Source::ReportId(report.trim().to_string()),
        (None, Some(from)) => {
            let point = point::parse_flag("--from", from, now_ms)?;
            if point.point.is_none() {
                refuse!(
                    "--from now would recover the present to itself: give a time (-2h, \
                     2026-11-22T05:00:00Z), a backup id or seq:N"
                );
            }
            Source::Point(point)
        }
        _ => refuse!("name exactly one of --report and --from"),
    };
    Ok(v1::StartRecoveryRequest {
        tenant: a.tenant.clone(),
        source: Some(source),
        kinds: a.kinds.clone(),
        ids: a.ids.clone(),
        dry_run: a.dry_run,
        on_conflict: match a.on_conflict {
            OnConflictArg::Overwrite => v1::OnConflict::Overwrite,
            OnConflictArg::Skip => v1::OnConflict::Skip,
        } as i32,
        ca_report_only: a.ca_report_only,
        changed_by: a.changed_by.clone(),
    })
}

/// Asks on the terminal; without one, refuses (pass --yes).
fn confirm(question: &str) -> anyhow::Result<()> {
    if !std::io::stdin().is_terminal() {
        refuse!("{question}\nno terminal to confirm on: add --yes to go ahead");
    }
    eprint!("{question} [y/N] ");
    std::io::stderr().flush()?;
    let mut answer = String::new();
    std::io::stdin().lock().read_line(&mut answer)?;
    if matches!(answer.trim().to_ascii_lowercase().as_str(), "y" | "yes") {
        Ok(())
    } else {
        bail!("not confirmed; nothing was changed")
    }
}

/// Polls the job until it ends, drawing operations done/total on stderr.
async fn wait(
    g: &GlobalArgs,
    client: &mut RecoveryClient,
    mut job: v1::RecoveryJob,
) -> anyhow::Result<v1::RecoveryJob> {
    let people = g.output == OutputFormat::Table;
    if people {
        eprintln!("recovery {}: {}", job.id, state_name(job.state));
    }
    let bar = if people && std::io::stderr().is_terminal() {
        ProgressBar::new(job.operations_total)
    } else {
        ProgressBar::hidden()
    };
    bar.set_style(
        ProgressStyle::with_template("{msg:12} {bar:40} {pos}/{len} operations  eta {eta}")
            .unwrap_or_else(|_| ProgressStyle::default_bar()),
    );
    let r = reference(&job.tenant, &job.id);
    while !is_finished(job.state) {
        bar.set_length(job.operations_total);
        bar.set_position(job.operations_done);
        bar.set_message(state_name(job.state));
        tokio::time::sleep(POLL).await;
        job = client.get_recovery(r.clone()).await?.into_inner();
    }
    bar.finish_and_clear();
    Ok(job)
}

#[cfg(test)]
mod tests {
    use v1::point::Point as P;

    use super::*;

    fn request(point: P) -> v1::StartRecoveryRequest {
        v1::StartRecoveryRequest {
            source: Some(v1::start_recovery_request::Source::Point(v1::Point {
                point: Some(point),
            })),
            ..Default::default()
        }
    }

    fn resolved(sequence: u64, time_ms: i64) -> v1::ResolvedPoint {
        v1::ResolvedPoint {
            sequence,
            time_ms,
            backup_id: String::new(),
        }
    }

    #[test]
    fn an_instant_is_explained_by_the_last_change_before_it() {
        // 2026-11-22T05:00:00Z, and a change ten minutes earlier.
        let asked = request(P::TimeMs(1_795_323_600_000));
        let note = instant_note(&asked, Some(&resolved(7, 1_795_323_000_000))).unwrap();
        assert!(
            note.starts_with("as of 2026-11-22T05:00:00.000Z (your clock: 2026-11-2")
                && note.ends_with(
                    "): the last change before it is sequence 7 at 2026-11-22T04:50:00.000Z"
                ),
            "{note}"
        );
        let note = instant_note(&asked, Some(&resolved(0, 0))).unwrap();
        assert!(
            note.ends_with("): no change was stored before it"),
            "{note}"
        );
        // A sequence or a backup names its point exactly: nothing to explain.
        assert_eq!(
            instant_note(&request(P::Sequence(7)), Some(&resolved(7, 1))),
            None
        );
        assert_eq!(instant_note(&asked, None), None);
    }
}
