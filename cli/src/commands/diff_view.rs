//! How `backtrack diff ...` prints difference reports and their items: tables and one
//! block per changed object for people, JSON (camelCase, times in RFC 3339 UTC with
//! milliseconds) for scripts. The items arrive from the server as JSON documents and are
//! passed through to scripts untouched.

use std::collections::BTreeMap;

use anyhow::Context;
use backtrack_domain::diff::ChangeType;
use backtrack_domain::time::rfc3339_ms;
use backtrack_proto::v1;
use serde_json::{json, Value};

use super::diff_names::Names;
use crate::args::{GlobalArgs, OutputFormat};
use crate::output::outln;
use crate::output::{print_json, table};

/// `initialized`, `calculating`, `successful`, `failed`, `abandoned`, or `unspecified`.
pub fn state_name(state: i32) -> &'static str {
    match v1::JobState::try_from(state) {
        Ok(v1::JobState::Initialized) => "initialized",
        Ok(v1::JobState::Calculating) => "calculating",
        Ok(v1::JobState::Successful) => "successful",
        Ok(v1::JobState::Failed) => "failed",
        Ok(v1::JobState::Abandoned) => "abandoned",
        Ok(v1::JobState::Unspecified) | Err(_) => "unspecified",
    }
}

/// A resolved point for scripts: `{sequence, time, backupId}`, with `time` null before the
/// first event and `backupId` null when the point is not a backup.
fn point_json(p: Option<&v1::ResolvedPoint>) -> Value {
    match p {
        None => Value::Null,
        Some(p) => json!({
            "sequence": p.sequence,
            "time": (p.time_ms != 0).then(|| rfc3339_ms(p.time_ms)),
            "backupId": (!p.backup_id.is_empty()).then_some(&p.backup_id),
        }),
    }
}

/// An optional timestamp: null when the server sent 0 (not yet, or never).
fn time_json(ms: i64) -> Value {
    if ms == 0 {
        Value::Null
    } else {
        Value::String(rfc3339_ms(ms))
    }
}

/// A report's header for scripts: `{id, tenant, state, base, target, scope: {kinds, ids,
/// changedBy},
/// examined, total, changed, summary: [{kind, changeType, count}], createdAt, finishedAt,
/// requestedBy, error, expiresAt, elapsedMs}`; absent times and an empty error are null.
pub fn report_json(r: &v1::Report) -> Value {
    let scope = r.scope.clone().unwrap_or_default();
    let summary: Vec<Value> = r
        .summary
        .iter()
        .map(|c| json!({"kind": c.kind, "changeType": c.change_type, "count": c.count}))
        .collect();
    json!({
        "id": r.id,
        "tenant": r.tenant,
        "state": state_name(r.state),
        "base": point_json(r.base.as_ref()),
        "target": point_json(r.target.as_ref()),
        "scope": {"kinds": scope.kinds, "ids": scope.ids, "changedBy": scope.changed_by},
        "examined": r.examined,
        "total": r.total,
        "changed": r.changed,
        "summary": summary,
        "createdAt": time_json(r.created_at_ms),
        "finishedAt": time_json(r.finished_at_ms),
        "requestedBy": r.requested_by,
        "error": (!r.error.is_empty()).then_some(&r.error),
        "expiresAt": time_json(r.expires_at_ms),
        "elapsedMs": r.elapsed_ms,
    })
}

/// `sequence 7 (2026-11-22T05:00:00.000Z), backup b1`, for a table cell.
fn point_text(p: Option<&v1::ResolvedPoint>) -> String {
    let Some(p) = p else {
        return "not resolved yet".into();
    };
    let mut out = format!("sequence {}", p.sequence);
    if p.time_ms != 0 {
        out.push_str(&format!(" ({})", rfc3339_ms(p.time_ms)));
    } else if p.sequence == 0 {
        out.push_str(" (before the first event)");
    }
    if !p.backup_id.is_empty() {
        out.push_str(&format!(", backup {}", p.backup_id));
    }
    out
}

/// Which kinds and objects a report covers, in words.
fn scope_text(scope: Option<&v1::ReportScope>) -> String {
    let Some(scope) = scope else {
        return scope_words(&[], &[]);
    };
    let mut text = scope_words(&scope.kinds, &scope.ids);
    if !scope.changed_by.is_empty() {
        text.push_str(&format!("; changes by {}", scope.changed_by.join(", ")));
    }
    text
}

/// A report's or a recovery's scope in words: its kinds (or every kind) and, when it names
/// objects, the first few ids and how many more (a scope may name thousands; `--output
/// json` lists them all).
pub fn scope_words(kinds: &[String], ids: &[String]) -> String {
    const SHOWN_IDS: usize = 3;
    let kinds = if kinds.is_empty() {
        "every kind".to_string()
    } else {
        kinds.join(", ")
    };
    if ids.is_empty() {
        return kinds;
    }
    let mut text = format!(
        "{kinds}; objects {}",
        ids[..ids.len().min(SHOWN_IDS)].join(", ")
    );
    if ids.len() > SHOWN_IDS {
        text.push_str(&format!(" +{} more", ids.len() - SHOWN_IDS));
    }
    text
}

/// The counts per kind × change type as a table: the five change types as columns (and any
/// other type the server names after them), a total column, and a total row.
pub fn summary_table(summary: &[v1::ChangeCount]) -> (Vec<String>, Vec<Vec<String>>) {
    let mut types: Vec<String> = ChangeType::ALL.iter().map(|c| c.as_str().into()).collect();
    for c in summary {
        if !types.contains(&c.change_type) {
            types.push(c.change_type.clone());
        }
    }
    let mut per_kind: BTreeMap<&str, Vec<u64>> = BTreeMap::new();
    let mut totals = vec![0u64; types.len()];
    for c in summary {
        let column = types.iter().position(|t| *t == c.change_type).unwrap_or(0);
        let row = per_kind
            .entry(c.kind.as_str())
            .or_insert_with(|| vec![0; types.len()]);
        row[column] = row[column].saturating_add(c.count);
        totals[column] = totals[column].saturating_add(c.count);
    }
    let line = |name: &str, counts: &[u64]| {
        let sum = counts.iter().fold(0u64, |s, n| s.saturating_add(*n));
        std::iter::once(name.to_string())
            .chain(counts.iter().map(u64::to_string))
            .chain([sum.to_string()])
            .collect::<Vec<_>>()
    };
    let mut rows: Vec<Vec<String>> = per_kind.iter().map(|(k, c)| line(k, c)).collect();
    rows.push(line("total", &totals));
    let header = std::iter::once("KIND".to_string())
        .chain(types.iter().map(|t| column_name(t)))
        .chain(["TOTAL".to_string()])
        .collect();
    (header, rows)
}

/// `softDeleted` → `SOFT DELETED`.
fn column_name(change_type: &str) -> String {
    let mut out = String::new();
    for c in change_type.chars() {
        if c.is_uppercase() && !out.is_empty() {
            out.push(' ');
        }
        out.extend(c.to_uppercase());
    }
    out
}

/// A report's header: its fields, then its counts per kind and change type.
fn print_header(r: &v1::Report) {
    let mut fields = vec![
        ("id", r.id.clone()),
        ("tenant", r.tenant.clone()),
        ("state", state_name(r.state).to_string()),
        ("base", point_text(r.base.as_ref())),
        ("target", point_text(r.target.as_ref())),
        ("scope", scope_text(r.scope.as_ref())),
        ("examined", format!("{} of {} objects", r.examined, r.total)),
        ("changed", r.changed.to_string()),
        ("created", time_text(r.created_at_ms, "unknown")),
        ("finished", time_text(r.finished_at_ms, "not yet")),
        ("elapsed", format!("{:.1}s", r.elapsed_ms as f64 / 1000.0)),
        ("requested by", r.requested_by.clone()),
        ("expires", time_text(r.expires_at_ms, "never")),
    ];
    if !r.error.is_empty() {
        fields.push(("error", r.error.clone()));
    }
    let rows: Vec<Vec<String>> = fields
        .into_iter()
        .map(|(k, v)| vec![k.to_string(), v])
        .collect();
    table(&["FIELD", "VALUE"], &rows);
    if !r.summary.is_empty() {
        outln!();
        let (header, rows) = summary_table(&r.summary);
        let header: Vec<&str> = header.iter().map(String::as_str).collect();
        table(&header, &rows);
    }
}

fn time_text(ms: i64, when_zero: &str) -> String {
    if ms == 0 {
        when_zero.to_string()
    } else {
        rfc3339_ms(ms)
    }
}

/// One report: its header as a table, or as JSON.
pub fn print_report(g: &GlobalArgs, r: &v1::Report) {
    match g.output {
        OutputFormat::Json => print_json(&report_json(r)),
        OutputFormat::Table => print_header(r),
    }
}

/// A list of reports, one line each.
pub fn print_reports(g: &GlobalArgs, reports: &[v1::Report]) {
    if g.output == OutputFormat::Json {
        print_json(&Value::Array(reports.iter().map(report_json).collect()));
        return;
    }
    let sequence =
        |p: Option<&v1::ResolvedPoint>| p.map_or(String::new(), |p| p.sequence.to_string());
    let rows: Vec<Vec<String>> = reports
        .iter()
        .map(|r| {
            vec![
                r.id.clone(),
                state_name(r.state).to_string(),
                sequence(r.base.as_ref()),
                sequence(r.target.as_ref()),
                r.changed.to_string(),
                time_text(r.created_at_ms, ""),
            ]
        })
        .collect();
    table(
        &["ID", "STATE", "BASE", "TARGET", "CHANGED", "CREATED"],
        &rows,
    );
    outln!("{} reports", reports.len());
}

/// The items of a page, each parsed from its JSON text.
pub fn parse_items(items_json: &[String]) -> anyhow::Result<Vec<Value>> {
    items_json
        .iter()
        .enumerate()
        .map(|(i, text)| {
            serde_json::from_str(text)
                .with_context(|| format!("item {} of the page from the server is not JSON", i + 1))
        })
        .collect()
}

/// A value as compact JSON; `∅` for null or absent.
fn value_text(value: Option<&Value>) -> String {
    match value {
        None | Some(Value::Null) => "∅".into(),
        Some(v) => v.to_string(),
    }
}

/// One changed object: `changeType kind displayName (objectId) → recoveryAction [synced]`,
/// then `  path: base → target` per attribute and `  +relation target (name)` per link
/// (the name when `names` has it).
pub fn item_lines(item: &Value, names: &Names) -> Vec<String> {
    let text = |v: &Value, key: &str| v.get(key).and_then(Value::as_str).unwrap_or("").to_string();
    let mut head = format!("{} {}", text(item, "changeType"), text(item, "kind"));
    let name = text(item, "displayName");
    if !name.is_empty() {
        head.push_str(&format!(" {name}"));
    }
    head.push_str(&format!(" ({})", text(item, "objectId")));
    let action = text(item, "recoveryAction");
    if !action.is_empty() {
        head.push_str(&format!(" → {action}"));
    }
    if item.get("synced").and_then(Value::as_bool) == Some(true) {
        head.push_str(" [synced]");
    }
    let mut lines = vec![head];
    let list = |key: &str| {
        item.get(key)
            .and_then(Value::as_array)
            .cloned()
            .unwrap_or_default()
    };
    for a in list("attributes") {
        lines.push(format!(
            "  {}: {} → {}",
            text(&a, "path"),
            value_text(a.get("base")),
            value_text(a.get("target")),
        ));
    }
    for l in list("links") {
        let (relation, mut target) = (text(&l, "relation"), text(&l, "targetId"));
        if let Some(name) = names.get(&target) {
            target = format!("{target} ({name})");
        }
        lines.push(match text(&l, "change").as_str() {
            "added" => format!("  +{relation} {target}"),
            "removed" => format!("  -{relation} {target}"),
            other => format!("  ~{relation} {target} ({other})"),
        });
    }
    lines
}

/// `page 2 of 7 (318 matching)`; `page` counts from 0 as on the wire.
pub fn page_footer(page: u32, pages: u32, matching: u64) -> String {
    format!(
        "page {} of {} ({matching} matching)",
        u64::from(page) + 1,
        pages.max(1)
    )
}

/// `diff show`: the report's header, then one page of its items. JSON:
/// `{report, page, pages, matching, items}` with `page` counted from 1 like `--page`.
pub fn print_page(
    g: &GlobalArgs,
    r: &v1::Report,
    page: &v1::ListReportItemsResponse,
    items: &[Value],
    names: &Names,
) {
    if g.output == OutputFormat::Json {
        print_json(&json!({
            "report": report_json(r),
            "page": u64::from(page.page) + 1,
            "pages": page.pages,
            "matching": page.matching,
            "items": items,
        }));
        return;
    }
    print_header(r);
    for item in items {
        outln!();
        for line in item_lines(item, names) {
            outln!("{line}");
        }
    }
    outln!();
    outln!("{}", page_footer(page.page, page.pages, page.matching));
}

#[cfg(test)]
mod tests {
    use super::*;

    const NOW: i64 = 1_795_323_600_000;

    fn count(kind: &str, change_type: &str, count: u64) -> v1::ChangeCount {
        let (kind, change_type) = (kind.into(), change_type.into());
        v1::ChangeCount {
            kind,
            change_type,
            count,
        }
    }

    fn point(sequence: u64, time_ms: i64, backup_id: &str) -> Option<v1::ResolvedPoint> {
        let backup_id = backup_id.into();
        Some(v1::ResolvedPoint {
            sequence,
            time_ms,
            backup_id,
        })
    }

    fn report() -> v1::Report {
        v1::Report {
            id: "r1".into(),
            tenant: "contoso".into(),
            state: v1::JobState::Successful.into(),
            base: point(10, NOW, "b1"),
            target: point(20, 0, ""),
            scope: Some(v1::ReportScope {
                kinds: vec!["user".into()],
                ..Default::default()
            }),
            changed: 2,
            summary: vec![count("user", "modified", 2)],
            created_at_ms: NOW,
            requested_by: "admin".into(),
            expires_at_ms: NOW + 1000,
            elapsed_ms: 1500,
            ..Default::default()
        }
    }

    #[test]
    fn report_json_has_the_documented_shape() {
        let expected = json!({
            "id": "r1", "tenant": "contoso", "state": "successful",
            "base": {"sequence": 10, "time": "2026-11-22T05:00:00.000Z", "backupId": "b1"},
            "target": {"sequence": 20, "time": null, "backupId": null},
            "scope": {"kinds": ["user"], "ids": [], "changedBy": []},
            "examined": 0, "total": 0, "changed": 2,
            "summary": [{"kind": "user", "changeType": "modified", "count": 2}],
            "createdAt": "2026-11-22T05:00:00.000Z", "finishedAt": null, "requestedBy": "admin",
            "error": null, "expiresAt": "2026-11-22T05:00:01.000Z", "elapsedMs": 1500,
        });
        assert_eq!(report_json(&report()), expected);
        let unresolved = report_json(&v1::Report::default());
        assert_eq!(
            (&unresolved["base"], &unresolved["state"]),
            (&Value::Null, &json!("unspecified"))
        );
    }

    #[test]
    fn states_have_lower_case_names() {
        use v1::JobState::*;
        let names =
            [Initialized, Calculating, Successful, Failed, Abandoned].map(|s| state_name(s.into()));
        let expected = "initialized calculating successful failed abandoned";
        assert_eq!(names.join(" "), expected);
        assert_eq!(state_name(99), "unspecified");
    }

    #[test]
    fn points_and_scopes_read_as_words() {
        let r = report();
        assert_eq!(
            point_text(r.base.as_ref()),
            "sequence 10 (2026-11-22T05:00:00.000Z), backup b1"
        );
        assert_eq!(point_text(r.target.as_ref()), "sequence 20");
        assert_eq!(point_text(None), "not resolved yet");
        let start = point(0, 0, "");
        assert_eq!(
            point_text(start.as_ref()),
            "sequence 0 (before the first event)"
        );
        assert_eq!(scope_text(None), "every kind");
        let scope = v1::ReportScope {
            kinds: vec!["user".into(), "group".into()],
            ids: vec!["u1".into()],
            changed_by: vec![],
        };
        assert_eq!(scope_text(Some(&scope)), "user, group; objects u1");
        let scope = v1::ReportScope {
            changed_by: vec!["mallory".into(), "eve".into()],
            ..Default::default()
        };
        assert_eq!(
            scope_text(Some(&scope)),
            "every kind; changes by mallory, eve"
        );
        let ids: Vec<String> = (1..=5).map(|n| format!("u{n}")).collect();
        assert_eq!(
            scope_words(&[], &ids),
            "every kind; objects u1, u2, u3 +2 more"
        );
    }

    #[test]
    fn summary_pivots_kinds_against_change_types() {
        let summary = [
            count("user", "added", 3),
            count("group", "modified", 2),
            count("user", "hardDeleted", 1),
            count("user", "renamed", 4),
        ];
        let (header, rows) = summary_table(&summary);
        let columns = "KIND|ADDED|MODIFIED|SOFT DELETED|RESTORED|HARD DELETED|RENAMED|TOTAL";
        assert_eq!(header.join("|"), columns);
        assert_eq!(
            rows,
            [
                ["group", "0", "2", "0", "0", "0", "0", "2"],
                ["user", "3", "0", "0", "0", "1", "4", "8"],
                ["total", "3", "2", "0", "0", "1", "4", "10"],
            ]
        );
    }

    #[test]
    fn items_render_as_blocks() {
        let item = json!({
            "objectId": "g1", "kind": "group", "displayName": "Sales",
            "changeType": "modified", "recoveryAction": "update", "synced": true,
            "attributes": [
                {"path": "description", "base": "Old", "target": null},
                {"path": "tags", "base": ["a"], "target": ["a", "b"]},
            ],
            "links": [
                {"relation": "members", "targetId": "u1", "change": "added"},
                {"relation": "owners", "targetId": "u2", "change": "removed"},
            ],
        });
        let expected = [
            "modified group Sales (g1) → update [synced]",
            r#"  description: "Old" → ∅"#,
            r#"  tags: ["a"] → ["a","b"]"#,
            "  +members u1",
            "  -owners u2",
        ];
        assert_eq!(item_lines(&item, &Names::new()), expected);
        let named = Names::from([("u2".to_string(), "Ada Lovelace".to_string())]);
        assert_eq!(item_lines(&item, &named)[4], "  -owners u2 (Ada Lovelace)");
        let bare =
            json!({"objectId": "u9", "kind": "user", "changeType": "added", "synced": false});
        assert_eq!(item_lines(&bare, &Names::new()), ["added user (u9)"]);
    }

    #[test]
    fn items_that_are_not_json_are_named() {
        let good = vec![r#"{"objectId":"u1"}"#.to_string()];
        assert_eq!(parse_items(&good).map(|v| v.len()).ok(), Some(1));
        let bad = vec![good[0].clone(), "{".to_string()];
        let e = parse_items(&bad).err().map(|e| e.to_string());
        assert_eq!(
            e.as_deref(),
            Some("item 2 of the page from the server is not JSON")
        );
    }

    #[test]
    fn footers_count_pages_from_one() {
        assert_eq!(page_footer(0, 3, 120), "page 1 of 3 (120 matching)");
        assert_eq!(page_footer(0, 0, 0), "page 1 of 1 (0 matching)");
    }
}
