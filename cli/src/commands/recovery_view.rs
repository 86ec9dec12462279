//! How recovery jobs, plans and failed changes print: tables and blocks for people, JSON
//! (camelCase, times in RFC 3339 UTC with milliseconds) for scripts.

use backtrack_domain::time::rfc3339_ms;
use backtrack_proto::v1;
use serde_json::{json, Value};

use super::diff_view::scope_words;
use crate::args::{GlobalArgs, OutputFormat};
use crate::output::outln;
use crate::output::{print_json, table};

/// Operations a plan lists for people (scripts get every listed one).
const SHOWN_OPERATIONS: usize = 50;

pub fn state_name(state: i32) -> &'static str {
    backtrack_recovery::state_name(state)
}

pub fn is_finished(state: i32) -> bool {
    backtrack_recovery::runner::is_finished(state)
}

fn time_json(ms: i64) -> Value {
    if ms == 0 {
        Value::Null
    } else {
        Value::String(rfc3339_ms(ms))
    }
}

fn on_conflict_name(value: i32) -> &'static str {
    match v1::OnConflict::try_from(value) {
        Ok(v1::OnConflict::Skip) => "skip",
        _ => "overwrite",
    }
}

fn nonempty(text: &str) -> Value {
    if text.is_empty() {
        Value::Null
    } else {
        Value::String(text.to_string())
    }
}

/// A job for scripts: `{id, status, tenant, point: {sequence, time, backupId}, reportId,
/// scope, onConflict, caReportOnly, undoOf, preRecoveryBackupId, operations: {total, done},
/// objectsChanged, linksChanged, alreadySatisfied, skipped, failed, warnings,
/// passwordResets, toEnable, residual, residualIds, createdAt, startedAt, finishedAt,
/// requestedBy, cancelledBy, error}`.
pub fn job_json(j: &v1::RecoveryJob) -> Value {
    let scope = j.scope.clone().unwrap_or_default();
    let point = j.point.clone().unwrap_or_default();
    json!({
        "id": j.id,
        "status": state_name(j.state),
        "tenant": j.tenant,
        "point": {
            "sequence": point.sequence,
            "time": time_json(point.time_ms),
            "backupId": nonempty(&point.backup_id),
        },
        "reportId": nonempty(&j.report_id),
        "scope": {
            "kinds": scope.kinds,
            "ids": scope.ids,
            "changedBy": scope.changed_by,
            "changesOfJob": nonempty(&scope.changes_of_job),
        },
        "onConflict": on_conflict_name(j.on_conflict),
        "caReportOnly": j.ca_report_only,
        "undoOf": nonempty(&j.undo_of),
        "preRecoveryBackupId": nonempty(&j.pre_recovery_backup_id),
        "operations": {"total": j.operations_total, "done": j.operations_done},
        "plannedObjects": j.planned_objects,
        "plannedLinks": j.planned_links,
        "objectsChanged": j.objects_changed,
        "linksChanged": j.links_changed,
        "alreadySatisfied": j.already_satisfied,
        "skipped": j.skipped,
        "failed": j.failed,
        "warnings": j.warnings,
        "passwordResets": j.password_resets,
        "toEnable": j.to_enable,
        "residual": j.residual,
        "residualIds": j.residual_ids,
        "appliedThroughSequence": j.applied_through_sequence,
        "createdAt": time_json(j.created_at_ms),
        "startedAt": time_json(j.started_at_ms),
        "finishedAt": time_json(j.finished_at_ms),
        "requestedBy": j.requested_by,
        "approvedBy": nonempty(&j.approved_by),
        "cancelledBy": nonempty(&j.cancelled_by),
        "error": nonempty(&j.error),
    })
}

/// A recovery's point with the instant it resolved to, so a time typed in (local or
/// relative) can be checked: `sequence 631 (2026-11-22T05:00:00.000Z), backup <id>`.
fn point_text(point: &v1::ResolvedPoint) -> String {
    let mut text = format!("sequence {}", point.sequence);
    if point.time_ms > 0 {
        text.push_str(&format!(
            " ({})",
            backtrack_domain::time::rfc3339_ms(point.time_ms)
        ));
    }
    if !point.backup_id.is_empty() {
        text.push_str(&format!(", backup {}", point.backup_id));
    }
    text
}

pub fn print_job(g: &GlobalArgs, j: &v1::RecoveryJob) {
    if g.output == OutputFormat::Json {
        print_json(&job_json(j));
        return;
    }
    let point = j.point.clone().unwrap_or_default();
    outln!("recovery    {}", j.id);
    outln!("status      {}", state_name(j.state));
    outln!("tenant      {}", j.tenant);
    outln!("recovers to {}", point_text(&point));
    let scope = j.scope.clone().unwrap_or_default();
    outln!(
        "scope       {}{}",
        scope_words(&scope.kinds, &scope.ids),
        authors_words(&scope)
    );
    if !j.report_id.is_empty() {
        outln!("report      {}", j.report_id);
    }
    if !j.undo_of.is_empty() {
        outln!("undoes      {}", j.undo_of);
    }
    if !j.pre_recovery_backup_id.is_empty() {
        outln!(
            "safety net  backup {} (undo: backtrack recovery undo --tenant {} {})",
            j.pre_recovery_backup_id,
            j.tenant,
            j.id
        );
    }
    outln!(
        "progress    {}/{} operations",
        j.operations_done,
        j.operations_total
    );
    outln!(
        "changed     {} object change(s), {} link change(s); {} already in place",
        j.objects_changed,
        j.links_changed,
        j.already_satisfied
    );
    outln!(
        "skipped     {}   failed {}   residual {}",
        j.skipped,
        j.failed,
        j.residual
    );
    for w in &j.warnings {
        outln!("warning     {w}");
    }
    for id in &j.to_enable {
        outln!("to enable   conditionalAccessPolicy {id} (report-only now)");
    }
    if !j.approved_by.is_empty() {
        outln!("approved    by {}", j.approved_by);
    }
    if !j.error.is_empty() {
        outln!("error       {}", j.error);
    }
    if !j.cancelled_by.is_empty() {
        outln!("cancelled   by {}", j.cancelled_by);
    }
    outln!(
        "requested   by {} at {}",
        j.requested_by,
        rfc3339_ms(j.created_at_ms)
    );
    if j.finished_at_ms != 0 {
        outln!("finished    {}", rfc3339_ms(j.finished_at_ms));
    }
}

/// A job's scope in a list's column: its kinds (or every kind) and how many objects it
/// names, if any (`recovery show` names them).
fn scope_short(scope: Option<&v1::RecoveryScope>) -> String {
    let (kinds, ids) = scope.map_or((&[][..], &[][..]), |s| (&s.kinds[..], &s.ids[..]));
    let mut text = match kinds {
        [] => "every kind".to_string(),
        kinds => kinds.join(", "),
    };
    if !ids.is_empty() {
        text.push_str(&format!("; {} object(s)", ids.len()));
    }
    if let Some(scope) = scope {
        text.push_str(&authors_words(scope));
    }
    text
}

/// Whose changes a job sets back, when only some: `; changes by mallory` or `; changes of
/// recovery <job>`.
fn authors_words(scope: &v1::RecoveryScope) -> String {
    if !scope.changed_by.is_empty() {
        format!("; changes by {}", scope.changed_by.join(", "))
    } else if !scope.changes_of_job.is_empty() {
        format!("; changes of recovery {}", scope.changes_of_job)
    } else {
        String::new()
    }
}

pub fn print_jobs(g: &GlobalArgs, jobs: &[v1::RecoveryJob]) {
    if g.output == OutputFormat::Json {
        print_json(&Value::Array(jobs.iter().map(job_json).collect()));
        return;
    }
    let rows: Vec<Vec<String>> = jobs
        .iter()
        .map(|j| {
            vec![
                j.id.clone(),
                state_name(j.state).to_string(),
                rfc3339_ms(j.created_at_ms),
                format!("{}/{}", j.operations_done, j.operations_total),
                j.failed.to_string(),
                j.residual.to_string(),
                j.requested_by.clone(),
                scope_short(j.scope.as_ref()),
            ]
        })
        .collect();
    table(
        &[
            "ID",
            "STATUS",
            "CREATED",
            "OPERATIONS",
            "FAILED",
            "RESIDUAL",
            "BY",
            "SCOPE",
        ],
        &rows,
    );
}

fn plan_json(p: &v1::RecoveryPlan) -> Value {
    let point = p.point.clone().unwrap_or_default();
    let skipped = |list: &[v1::SkippedObject]| -> Vec<Value> {
        list.iter()
            .map(|s| json!({"kind": s.kind, "id": s.id, "displayName": nonempty(&s.display_name), "reason": s.reason}))
            .collect()
    };
    let counts: serde_json::Map<String, Value> = p
        .counts
        .iter()
        .map(|c| (c.action.clone(), json!(c.count)))
        .collect();
    json!({
        "point": {"sequence": point.sequence, "time": time_json(point.time_ms), "backupId": nonempty(&point.backup_id)},
        "objects": p.objects,
        "links": p.links,
        "counts": counts,
        "operationCount": p.operation_count,
        "operations": p.operations.iter().map(|o| json!({
            "index": o.index,
            "kind": o.kind,
            "id": o.id,
            "displayName": nonempty(&o.display_name),
            "action": o.action,
            "changeType": o.change_type,
            "detail": serde_json::from_str::<Value>(&o.detail_json).unwrap_or(Value::Null),
            "changedAfterBase": o.changed_after_base,
        })).collect::<Vec<_>>(),
        "conflictBase": (p.conflict_base > 0).then_some(p.conflict_base),
        "changedBy": p.changed_by,
        "changesOfJob": nonempty(&p.changes_of_job),
        "skipped": skipped(&p.skipped),
        "notes": skipped(&p.notes),
        "passwordResets": p.password_resets,
        "toEnable": p.to_enable,
    })
}

/// The footnote to the `*` of operations on objects changed after the plan's conflict
/// base (`after`: "the report", or the job an undo undoes), and what a job will do with
/// them.
fn changed_after_base_note(p: &v1::RecoveryPlan, after: &str) -> Option<String> {
    let changed = p
        .operations
        .iter()
        .filter(|o| o.changed_after_base)
        .map(|o| o.id.as_str())
        .collect::<std::collections::BTreeSet<_>>()
        .len();
    if changed == 0 {
        return None;
    }
    let what = if p.on_conflict == v1::OnConflict::Skip as i32 {
        "the job leaves them as they are (--on-conflict skip)"
    } else {
        "the job sets them back anyway, with a warning (--on-conflict skip leaves them)"
    };
    if p.conflict_base == 0 {
        // Set back only some authors' changes: others changed again what they changed.
        return Some(format!(
            "* {changed} object(s) where someone else changed again what the recovery sets \
             back (the notes say what, and who): {what}"
        ));
    }
    Some(format!(
        "* {changed} object(s) changed after {after} (after sequence {}): {what}",
        p.conflict_base
    ))
}

/// What an operation changes, in a few words: the attributes it sets (`-name`: removes),
/// the relation and how many links, or how many attributes a re-creation brings back.
fn operation_detail(detail_json: &str) -> String {
    let Ok(detail) = serde_json::from_str::<Value>(detail_json) else {
        return String::new();
    };
    let names = |key: &str| {
        detail
            .get(key)
            .map(|v| match v {
                Value::Object(m) => m.keys().cloned().collect::<Vec<_>>(),
                Value::Array(a) => a
                    .iter()
                    .filter_map(Value::as_str)
                    .map(str::to_string)
                    .collect(),
                _ => Vec::new(),
            })
            .unwrap_or_default()
    };
    if let Some(relation) = detail.get("relation").and_then(Value::as_str) {
        let count = detail
            .get("targets")
            .and_then(Value::as_array)
            .map_or(0, Vec::len);
        return format!("{relation} ×{count}");
    }
    if detail.get("attributes").is_some() {
        return format!("{} attributes", names("attributes").len());
    }
    let mut parts = names("set");
    parts.extend(names("unset").into_iter().map(|n| format!("-{n}")));
    const SHOWN: usize = 4;
    let more = parts.len().saturating_sub(SHOWN);
    parts.truncate(SHOWN);
    let mut text = parts.join(", ");
    if more > 0 {
        text.push_str(&format!(" +{more}"));
    }
    text
}

/// Prints a plan; `after` names its conflict base for the footnote on objects changed
/// after it ("the report, in ways it does not show", "recovery <id>").
pub fn print_plan(g: &GlobalArgs, p: &v1::RecoveryPlan, after: &str) {
    if g.output == OutputFormat::Json {
        print_json(&plan_json(p));
        return;
    }
    let point = p.point.clone().unwrap_or_default();
    outln!(
        "plan: {} operation(s) on {} object(s), {} link change(s), back to {}",
        p.operation_count,
        p.objects,
        p.links,
        point_text(&point)
    );
    if !p.changed_by.is_empty() {
        outln!(
            "only what {} changed after it, each back to what they found",
            p.changed_by.join(", ")
        );
    } else if !p.changes_of_job.is_empty() {
        outln!(
            "only what recovery {} changed, each back to what it found",
            p.changes_of_job
        );
    }
    if p.operation_count == 0 && p.skipped.is_empty() {
        outln!("nothing to recover: the scope already matches the recovery point");
        return;
    }
    let rows: Vec<Vec<String>> = p
        .counts
        .iter()
        .map(|c| vec![c.action.clone(), c.count.to_string()])
        .collect();
    table(&["ACTION", "OPERATIONS"], &rows);
    let rows: Vec<Vec<String>> = p
        .operations
        .iter()
        .take(SHOWN_OPERATIONS)
        .map(|o| {
            vec![
                o.index.to_string(),
                o.action.clone(),
                o.kind.clone(),
                o.id.clone(),
                o.display_name.clone(),
                format!(
                    "{}{}",
                    o.change_type,
                    if o.changed_after_base { "*" } else { "" }
                ),
                operation_detail(&o.detail_json),
            ]
        })
        .collect();
    if !rows.is_empty() {
        outln!();
        table(
            &["#", "ACTION", "KIND", "ID", "NAME", "CHANGE", "DETAIL"],
            &rows,
        );
        if p.operation_count as usize > SHOWN_OPERATIONS {
            outln!(
                "… and {} more (--output json lists them)",
                p.operation_count as usize - SHOWN_OPERATIONS
            );
        }
        if let Some(note) = changed_after_base_note(p, after) {
            outln!("{note}");
        }
    }
    for s in &p.skipped {
        outln!(
            "skip   {} {} ({}): {}",
            s.kind,
            s.id,
            s.display_name,
            s.reason
        );
    }
    for s in &p.notes {
        outln!(
            "note   {} {} ({}): {}",
            s.kind,
            s.id,
            s.display_name,
            s.reason
        );
    }
    for id in &p.password_resets {
        outln!("reset  user {id} is re-created without a password: reset it");
    }
    for id in &p.to_enable {
        outln!("enable conditionalAccessPolicy {id} comes back report-only");
    }
}

pub fn print_failures(g: &GlobalArgs, changes: &[v1::FailedChange]) {
    if g.output == OutputFormat::Json {
        print_json(&Value::Array(
            changes
                .iter()
                .map(|c| {
                    json!({
                        "operation": c.operation,
                        "kind": c.kind,
                        "id": c.id,
                        "displayName": nonempty(&c.display_name),
                        "action": c.action,
                        "outcome": c.outcome,
                        "reason": c.reason,
                    })
                })
                .collect(),
        ));
        return;
    }
    let rows: Vec<Vec<String>> = changes
        .iter()
        .map(|c| {
            vec![
                c.outcome.clone(),
                c.kind.clone(),
                c.id.clone(),
                c.display_name.clone(),
                c.action.clone(),
                c.reason.clone(),
            ]
        })
        .collect();
    table(
        &["OUTCOME", "KIND", "ID", "NAME", "ACTION", "REASON"],
        &rows,
    );
}

#[cfg(test)]
mod tests {
    use backtrack_proto::v1;

    use super::{operation_detail, scope_short};

    #[test]
    fn a_list_row_says_what_a_job_covers() {
        assert_eq!(scope_short(None), "every kind");
        let scope = v1::RecoveryScope {
            kinds: vec!["user".into(), "group".into()],
            ids: vec!["a".into(), "b".into()],
            ..Default::default()
        };
        assert_eq!(scope_short(Some(&scope)), "user, group; 2 object(s)");
        let scope = v1::RecoveryScope {
            changed_by: vec!["mallory".into()],
            ..Default::default()
        };
        assert_eq!(scope_short(Some(&scope)), "every kind; changes by mallory");
        let scope = v1::RecoveryScope {
            changes_of_job: "j1".into(),
            ..Default::default()
        };
        assert_eq!(
            scope_short(Some(&scope)),
            "every kind; changes of recovery j1"
        );
    }

    #[test]
    fn an_operation_says_what_it_changes_in_a_few_words() {
        assert_eq!(
            operation_detail(r#"{"set":{"state":"enabled","conditions":{}},"unset":["jobTitle"]}"#),
            "conditions, state, -jobTitle"
        );
        assert_eq!(
            operation_detail(r#"{"set":{"a":1,"b":2,"c":3,"d":4,"e":5},"unset":["f"]}"#),
            "a, b, c, d +2"
        );
        assert_eq!(
            operation_detail(r#"{"relation":"members","targets":["u1","u2","u3"]}"#),
            "members ×3"
        );
        assert_eq!(
            operation_detail(r#"{"attributes":{"displayName":"G","mail":"g@x"}}"#),
            "2 attributes"
        );
        assert_eq!(operation_detail(""), "");
        assert_eq!(operation_detail("null"), "");
    }
}
