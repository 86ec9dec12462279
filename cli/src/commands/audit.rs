//! `backtrack audit ...`: query a tenant's audit records, follow them, verify the chain.

use anyhow::bail;
use backtrack_domain::time::rfc3339_ms;
use backtrack_proto::v1;
use futures::StreamExt;
use serde_json::{json, Value};

use crate::args::{AuditCommand, AuditQueryArgs, GlobalArgs, OutputFormat, ResultArg};
use crate::client::audit_client;
use crate::output::{outln, refuse};
use crate::output::{print_json, table};
use crate::point;

pub async fn run(g: &GlobalArgs, command: AuditCommand) -> anyhow::Result<()> {
    let mut client = audit_client(g).await?;
    match command {
        AuditCommand::Query(a) => {
            let request = query_request(&a, chrono::Utc::now().timestamp_millis())?;
            let page = client.query_audit(request).await?.into_inner();
            match g.output {
                OutputFormat::Json => print_json(&json!({
                    "entries": page.entries.iter().map(entry_json).collect::<Vec<_>>(),
                    "nextPageToken": (!page.next_page_token.is_empty()).then_some(&page.next_page_token),
                })),
                OutputFormat::Table => {
                    print_entries(&page.entries);
                    if !page.next_page_token.is_empty() {
                        outln!("more: --page-token {}", page.next_page_token);
                    }
                }
            }
        }
        AuditCommand::Tail {
            tenant,
            from_start,
            limit,
        } => {
            let request = v1::TailAuditRequest {
                tenant,
                from_index: u64::from(from_start),
            };
            let mut stream = client.tail_audit(request).await?.into_inner();
            let mut seen = 0u64;
            while limit.is_none_or(|l| seen < l) {
                let Some(item) = stream.next().await else {
                    break;
                };
                let e = item?;
                match g.output {
                    OutputFormat::Json => outln!("{}", entry_json(&e)),
                    OutputFormat::Table => print_line(&e),
                }
                seen += 1;
            }
        }
        AuditCommand::Verify { tenant } => {
            let v = client
                .verify_chain(v1::VerifyChainRequest {
                    tenant: tenant.clone(),
                })
                .await?
                .into_inner();
            match g.output {
                OutputFormat::Json => print_json(&json!({
                    "tenant": tenant,
                    "ok": v.ok,
                    "checked": v.checked,
                    "headIndex": v.head_index,
                    "headHash": v.head_hash,
                    "checkpointIndex": v.checkpoint_index,
                    "firstBadIndex": (v.first_bad_index != 0).then_some(v.first_bad_index),
                    "problem": (!v.problem.is_empty()).then_some(&v.problem),
                })),
                OutputFormat::Table => {
                    if v.ok {
                        outln!(
                            "audit chain of {tenant} intact: {} records, head {} {}",
                            v.checked,
                            v.head_index,
                            v.head_hash
                        );
                    } else {
                        outln!(
                            "audit chain of {tenant} BROKEN at record {}: {}",
                            v.first_bad_index,
                            v.problem
                        );
                    }
                }
            }
            if !v.ok {
                bail!(
                    "the audit chain of tenant {tenant} is broken at record {}: {}",
                    v.first_bad_index,
                    v.problem
                );
            }
        }
    }
    Ok(())
}

fn time(text: &Option<String>, flag: &str, now_ms: i64) -> anyhow::Result<i64> {
    let Some(text) = text else { return Ok(0) };
    match point::parse_flag(flag, text, now_ms)?.point {
        Some(v1::point::Point::TimeMs(ms)) => Ok(ms),
        _ => {
            refuse!(
                "{flag} '{text}' is not a time: use RFC 3339 (2026-11-22T05:00:00Z) or -2h, -3d"
            )
        }
    }
}

fn query_request(a: &AuditQueryArgs, now_ms: i64) -> anyhow::Result<v1::QueryAuditRequest> {
    Ok(v1::QueryAuditRequest {
        tenant: a.tenant.clone(),
        since_ms: time(&a.since, "--since", now_ms)?,
        until_ms: time(&a.until, "--until", now_ms)?,
        actor: a.actor.clone().unwrap_or_default(),
        action: a.action.clone().unwrap_or_default(),
        target_id: a.target.clone().unwrap_or_default(),
        result: match a.result {
            None => String::new(),
            Some(ResultArg::Success) => "success".into(),
            Some(ResultArg::Failure) => "failure".into(),
        },
        correlation_id: a.correlation.clone().unwrap_or_default(),
        page_size: a.page_size,
        page_token: a.page_token.clone().unwrap_or_default(),
    })
}

fn opt_text(s: &str) -> Option<String> {
    (!s.is_empty()).then(|| s.to_string())
}

fn parsed(text: &str) -> Value {
    if text.is_empty() {
        Value::Null
    } else {
        serde_json::from_str(text).unwrap_or_else(|_| Value::String(text.to_string()))
    }
}

/// An entry for scripts: the record's fields (camelCase) plus `index`, `hash`,
/// `prevHash`, `streamSequence`.
fn entry_json(e: &v1::AuditEntry) -> Value {
    let r = e.record.clone().unwrap_or_default();
    let actor = r.actor.unwrap_or_default();
    let target = r.target.unwrap_or_default();
    // An alert is a finding: it has no result (null, not a failure).
    let result = r
        .result
        .map(|result| json!({"success": result.success, "reason": opt_text(&result.reason)}));
    let c = r.correlation.unwrap_or_default();
    let opt = |s: &str| (!s.is_empty()).then(|| s.to_string());
    json!({
        "index": e.index,
        "id": r.id,
        "tenant": r.tenant,
        "time": rfc3339_ms(r.time_ms),
        "action": r.action,
        "category": r.category,
        "actor": {"subject": actor.subject, "roles": actor.roles, "sourceAddress": opt(&actor.source_address)},
        "target": {"kind": opt(&target.kind), "id": opt(&target.id), "displayName": opt(&target.display_name)},
        "result": result,
        "correlation": {"jobId": opt(&c.job_id), "reportId": opt(&c.report_id), "backupId": opt(&c.backup_id)},
        "before": parsed(&r.before_json),
        "after": parsed(&r.after_json),
        "details": parsed(&r.details_json),
        "hash": e.hash,
        "prevHash": e.prev_hash,
        "streamSequence": e.stream_sequence,
    })
}

fn row(e: &v1::AuditEntry) -> Vec<String> {
    let r = e.record.clone().unwrap_or_default();
    let target = r.target.unwrap_or_default();
    let result = match &r.result {
        Some(result) if result.success => "success".to_string(),
        Some(result) => format!("failure: {}", result.reason),
        // A finding: its severity and rule instead of an outcome (set back: the rule).
        None => {
            let details = parsed(&r.details_json);
            let text = |k: &str| details[k].as_str().unwrap_or_default().to_string();
            match r.action.as_str() {
                "alert.undone" => format!("set back {}", text("rule")),
                _ => format!("{} {}", text("severity"), text("rule")),
            }
            .trim()
            .to_string()
        }
    };
    vec![
        e.index.to_string(),
        rfc3339_ms(r.time_ms),
        r.actor.unwrap_or_default().subject,
        r.action,
        target_text(&target),
        result,
    ]
}

/// `<kind> <id>`, and the name the record gives it: `roleAssignment <id> (Global
/// Administrator → Adele Vance)`.
fn target_text(target: &v1::AuditTarget) -> String {
    let text = format!("{} {}", target.kind, target.id).trim().to_string();
    let name = target.display_name.trim();
    if name.is_empty() || name == target.id {
        text
    } else {
        format!("{text} ({name})")
    }
}

fn print_entries(entries: &[v1::AuditEntry]) {
    let rows: Vec<Vec<String>> = entries.iter().map(row).collect();
    table(&["#", "TIME", "ACTOR", "ACTION", "TARGET", "RESULT"], &rows);
}

fn print_line(e: &v1::AuditEntry) {
    outln!("{}", row(e).join("  "));
}
