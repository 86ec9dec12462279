//! `backtrack diff ...`: start difference reports between two points of the log, wait for
//! them, list them, page through their changed objects, export and cancel them.
//! Rendering lives in [`super::diff_view`].
//!
//! Every flag is checked before the first call, so a typo costs no round trip.

use std::io::{IsTerminal, Write};
use std::path::Path;
use std::time::Duration;

use anyhow::{anyhow, bail, Context};
use backtrack_domain::diff::ChangeType;
use backtrack_proto::v1;
use indicatif::{ProgressBar, ProgressStyle};
use serde_json::json;

use super::diff_names::{link_target_names, Names};
use super::diff_view::{parse_items, print_page, print_report, print_reports, state_name};
use crate::args::{DiffCommand, DiffCreateArgs, DiffExportArgs, DiffShowArgs, GlobalArgs};
use crate::args::{DiffRefArgs, OutputFormat};
use crate::client::{diff_client, DiffClient};
use crate::output::print_json;
use crate::output::{outln, refuse, refused};
use crate::point;

/// How often `create --wait` asks for progress.
const POLL: Duration = Duration::from_millis(200);

/// Runs one `backtrack diff` command.
pub async fn run(g: &GlobalArgs, command: DiffCommand) -> anyhow::Result<()> {
    match command {
        DiffCommand::Create(a) => {
            let request = create_request(&a, chrono::Utc::now().timestamp_millis())?;
            let mut client = diff_client(g).await?;
            let report = client.create_report(request).await?.into_inner();
            if a.wait {
                let report = wait(g, &mut client, &a.tenant, report).await?;
                print_report(g, &report);
                finished_well(&report)
            } else {
                print_report(g, &report);
                Ok(())
            }
        }
        DiffCommand::List { tenant } => {
            let request = v1::ListReportsRequest { tenant };
            let list = diff_client(g).await?.list_reports(request).await?;
            print_reports(g, &list.into_inner().reports);
            Ok(())
        }
        DiffCommand::Show(a) => {
            let request = items_request(&a)?;
            show(g, &mut diff_client(g).await?, request).await
        }
        DiffCommand::Export(a) => export(g, &mut diff_client(g).await?, a).await,
        DiffCommand::Cancel(r) => {
            let report = diff_client(g).await?.cancel_report(reference(r)).await?;
            print_report(g, &report.into_inner());
            Ok(())
        }
    }
}

fn reference(r: DiffRefArgs) -> v1::ReportRef {
    v1::ReportRef {
        tenant: r.tenant,
        id: r.report,
    }
}

/// `diff create`'s request: `--from` is required and must name a point, `--to` defaults
/// to now (the empty point).
fn create_request(a: &DiffCreateArgs, now_ms: i64) -> anyhow::Result<v1::CreateReportRequest> {
    let base = point::parse_flag("--from", &a.from, now_ms)?;
    if base.point.is_none() {
        refuse!(
            "--from now compares the present with itself: give the base as a time (-2h, \
             2026-11-22T05:00:00Z), a backup id or seq:N"
        );
    }
    let target = match &a.to {
        Some(to) => point::parse_flag("--to", to, now_ms)?,
        None => v1::Point::default(),
    };
    Ok(v1::CreateReportRequest {
        tenant: a.tenant.clone(),
        base: Some(base),
        target: Some(target),
        scope: Some(v1::ReportScope {
            kinds: a.kinds.clone(),
            ids: a.ids.clone(),
            changed_by: a.changed_by.clone(),
        }),
    })
}

/// `--change` values in the server's spelling; any letter case is accepted.
fn change_types(values: &[String]) -> anyhow::Result<Vec<String>> {
    values
        .iter()
        .map(|v| {
            ChangeType::ALL
                .into_iter()
                .find(|c| c.as_str().eq_ignore_ascii_case(v.trim()))
                .map(|c| c.as_str().to_string())
                .ok_or_else(|| {
                    refused(format!(
                        "--change '{v}' is not a change type: use added, modified, softDeleted, \
                         restored or hardDeleted"
                    ))
                })
        })
        .collect()
}

/// `diff show`'s item query; `--page` counts from 1, the wire from 0.
fn items_request(a: &DiffShowArgs) -> anyhow::Result<v1::ListReportItemsRequest> {
    Ok(v1::ListReportItemsRequest {
        tenant: a.tenant.clone(),
        id: a.report.clone(),
        kinds: a.kinds.clone(),
        change_types: change_types(&a.changes)?,
        attribute: a.attribute.clone().unwrap_or_default(),
        search: a.search.clone().unwrap_or_default(),
        ids: a.ids.clone(),
        page_size: a.page_size,
        page: a.page.saturating_sub(1),
    })
}

fn is_finished(state: i32) -> bool {
    matches!(
        v1::JobState::try_from(state),
        Ok(v1::JobState::Successful | v1::JobState::Failed | v1::JobState::Abandoned)
    )
}

/// Polls the report until its job ends, drawing examined/total on stderr.
async fn wait(
    g: &GlobalArgs,
    client: &mut DiffClient,
    tenant: &str,
    mut report: v1::Report,
) -> anyhow::Result<v1::Report> {
    if is_finished(report.state) {
        return Ok(report);
    }
    let people = g.output == OutputFormat::Table;
    if people {
        eprintln!("report {}: {}", report.id, state_name(report.state));
    }
    let bar = if people && std::io::stderr().is_terminal() {
        ProgressBar::new(report.total)
    } else {
        ProgressBar::hidden()
    };
    bar.set_style(
        ProgressStyle::with_template("{msg:12} {bar:40} {pos}/{len} objects  eta {eta}")
            .unwrap_or_else(|_| ProgressStyle::default_bar()),
    );
    let reference = v1::ReportRef {
        tenant: tenant.to_string(),
        id: report.id.clone(),
    };
    while !is_finished(report.state) {
        bar.set_length(report.total);
        bar.set_position(report.examined);
        bar.set_message(state_name(report.state));
        tokio::time::sleep(POLL).await;
        report = client.get_report(reference.clone()).await?.into_inner();
    }
    bar.finish_and_clear();
    Ok(report)
}

/// An error for a report whose job failed or was cancelled.
fn finished_well(r: &v1::Report) -> anyhow::Result<()> {
    match v1::JobState::try_from(r.state) {
        Ok(v1::JobState::Failed) if r.error.is_empty() => bail!("report {} failed", r.id),
        Ok(v1::JobState::Failed) => bail!("report {} failed: {}", r.id, r.error),
        Ok(v1::JobState::Abandoned) => bail!("report {} was cancelled before it finished", r.id),
        _ => Ok(()),
    }
}

/// Why a report that has not succeeded has no items to show.
fn no_items_yet(r: &v1::Report) -> String {
    match v1::JobState::try_from(r.state) {
        Ok(v1::JobState::Failed | v1::JobState::Abandoned) => format!(
            "report {} is {}: it has no items; create it again with `backtrack diff create`",
            r.id,
            state_name(r.state)
        ),
        _ => format!(
            "report {} is still {} ({} of {} objects examined): its items can be shown once it \
             is successful (`backtrack diff create ... --wait` waits for it)",
            r.id,
            state_name(r.state),
            r.examined,
            r.total
        ),
    }
}

/// `diff show`: the header, then one page of items (only a successful report has them).
async fn show(
    g: &GlobalArgs,
    client: &mut DiffClient,
    request: v1::ListReportItemsRequest,
) -> anyhow::Result<()> {
    let reference = v1::ReportRef {
        tenant: request.tenant.clone(),
        id: request.id.clone(),
    };
    let report = client.get_report(reference).await?.into_inner();
    if report.state != i32::from(v1::JobState::Successful) {
        // People still see how far the job got; scripts get nothing half-shaped on stdout.
        if g.output == OutputFormat::Table {
            print_report(g, &report);
        }
        return Err(tonic::Status::failed_precondition(no_items_yet(&report)).into());
    }
    let page = client.list_report_items(request).await?.into_inner();
    let items = parse_items(&page.items_json)?;
    let names = match g.output {
        OutputFormat::Table => link_target_names(g, &report, &items).await,
        OutputFormat::Json => Names::new(),
    };
    print_page(g, &report, &page, &items, &names);
    Ok(())
}

/// `diff export`: streams the chunks to stdout, or to `--file` through a `.partial` file
/// that replaces it only once the export is complete.
async fn export(g: &GlobalArgs, client: &mut DiffClient, a: DiffExportArgs) -> anyhow::Result<()> {
    let request = v1::ExportReportRequest {
        tenant: a.tenant.clone(),
        id: a.report.clone(),
        format: a.format.as_str().to_string(),
    };
    let mut stream = client.export_report(request).await?.into_inner();
    let Some(path) = a.file else {
        return match copy_chunks(&mut stream, &mut std::io::stdout()).await {
            // The reader went away (`| head`): not our failure.
            Err(e) if is_broken_pipe(&e) => Ok(()),
            other => other.map(|_| ()),
        };
    };
    let mut partial = path.clone().into_os_string();
    partial.push(".partial");
    let partial = std::path::PathBuf::from(partial);
    let written = write_file(&mut stream, &partial).await;
    let bytes = match written.and_then(|bytes| {
        std::fs::rename(&partial, &path)
            .with_context(|| format!("cannot move {} to {}", partial.display(), path.display()))?;
        Ok(bytes)
    }) {
        Ok(bytes) => bytes,
        Err(e) => {
            // Best effort: a leftover partial file is harmless, the error is what matters.
            let _ = std::fs::remove_file(&partial);
            return Err(e);
        }
    };
    match g.output {
        OutputFormat::Json => print_json(&json!({
            "id": a.report,
            "format": a.format.as_str(),
            "file": path.display().to_string(),
            "bytes": bytes,
        })),
        OutputFormat::Table => outln!(
            "exported report {} as {} to {} ({bytes} bytes)",
            a.report,
            a.format.as_str(),
            path.display()
        ),
    }
    Ok(())
}

async fn write_file(
    stream: &mut tonic::Streaming<v1::ExportChunk>,
    path: &Path,
) -> anyhow::Result<u64> {
    let file =
        std::fs::File::create(path).with_context(|| format!("cannot create {}", path.display()))?;
    let mut out = std::io::BufWriter::new(file);
    let bytes = copy_chunks(stream, &mut out).await?;
    let file = out
        .into_inner()
        .map_err(|e| anyhow!("cannot write {}: {}", path.display(), e.error()))?;
    file.sync_all()
        .with_context(|| format!("cannot write {}", path.display()))?;
    Ok(bytes)
}

/// Writes every chunk of the stream; returns the bytes written.
async fn copy_chunks(
    stream: &mut tonic::Streaming<v1::ExportChunk>,
    out: &mut impl Write,
) -> anyhow::Result<u64> {
    let mut bytes = 0u64;
    while let Some(chunk) = stream.message().await? {
        out.write_all(&chunk.data)
            .context("cannot write the export")?;
        bytes = bytes.saturating_add(chunk.data.len() as u64);
    }
    out.flush().context("cannot write the export")?;
    Ok(bytes)
}

fn is_broken_pipe(e: &anyhow::Error) -> bool {
    e.downcast_ref::<std::io::Error>()
        .is_some_and(|io| io.kind() == std::io::ErrorKind::BrokenPipe)
}

#[cfg(test)]
mod tests {
    use backtrack_proto::v1::point::Point as P;

    use super::*;

    const NOW: i64 = 1_795_323_600_000;

    fn create(from: &str, to: Option<&str>) -> anyhow::Result<v1::CreateReportRequest> {
        let a = DiffCreateArgs {
            tenant: "contoso".into(),
            from: from.into(),
            to: to.map(str::to_string),
            kinds: vec!["user".into()],
            ids: vec![],
            changed_by: vec![],
            wait: false,
        };
        create_request(&a, NOW)
    }

    #[test]
    fn the_target_defaults_to_now() {
        let r = create("-2h", None).ok();
        let base = r
            .as_ref()
            .and_then(|r| r.base.clone())
            .and_then(|p| p.point);
        assert_eq!(base, Some(P::TimeMs(NOW - 2 * 3_600_000)));
        let target = r.as_ref().and_then(|r| r.target.clone());
        assert_eq!(target, Some(v1::Point::default()));
        let to = create("seq:5", Some("seq:9")).ok().and_then(|r| r.target);
        assert_eq!(to.and_then(|p| p.point), Some(P::Sequence(9)));
    }

    #[test]
    fn point_errors_name_their_flag() {
        let e = create("yesterday", None).err().map(|e| e.to_string());
        assert!(e.is_some_and(|e| e.starts_with("--from 'yesterday' is not a point")));
        let e = create("-2h", Some("2h")).err().map(|e| e.to_string());
        assert!(e.is_some_and(|e| e.starts_with("--to '2h' is not a point")));
        let e = create("now", None).err().map(|e| e.to_string());
        assert!(e.is_some_and(|e| e.contains("compares the present with itself")));
    }

    #[test]
    fn change_types_are_checked_and_spelled_as_the_server_does() {
        let given = ["added".to_string(), "SOFTDELETED".into()];
        assert_eq!(
            change_types(&given).ok(),
            Some(vec!["added".into(), "softDeleted".into()])
        );
        let e = change_types(&["deleted".to_string()])
            .err()
            .map(|e| e.to_string());
        assert_eq!(
            e.as_deref(),
            Some(
                "--change 'deleted' is not a change type: use added, modified, softDeleted, \
                 restored or hardDeleted"
            )
        );
    }

    #[test]
    fn only_failed_and_cancelled_reports_are_errors() {
        let mut r = v1::Report {
            id: "r1".into(),
            state: v1::JobState::Successful.into(),
            ..Default::default()
        };
        assert!(finished_well(&r).is_ok());
        r.state = v1::JobState::Failed.into();
        r.error = "store unavailable".into();
        let e = finished_well(&r).err().map(|e| e.to_string());
        assert_eq!(e.as_deref(), Some("report r1 failed: store unavailable"));
        r.state = v1::JobState::Abandoned.into();
        assert!(finished_well(&r).is_err());
        assert!(is_finished(r.state));
        assert!(!is_finished(v1::JobState::Calculating.into()));
    }
}
