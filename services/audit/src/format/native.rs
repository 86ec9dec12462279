//! The native JSON rendering: the record's own fields in camelCase, nothing renamed or
//! dropped, so that a SIEM without OCSF or CEF support still gets everything.

use backtrack_proto::v1::AuditRecord;
use serde::Serialize;
use serde_json::Value;

use super::{parse_embedded, rfc3339_ms};

/// The native JSON rendering as a [`Value`]: camelCase; `time` RFC 3339 UTC with
/// milliseconds; `before`, `after` and `details` parsed back from their JSON strings; empty
/// strings and missing parts as `null`, so every key is always present.
pub fn native_json(record: &AuditRecord) -> Value {
    serde_json::to_value(Native::of(record)).unwrap_or(Value::Null)
}

/// [`native_json`] as text, without building the `Value` first.
pub(crate) fn native_text(record: &AuditRecord) -> String {
    serde_json::to_string(&Native::of(record)).unwrap_or_default()
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct Native<'a> {
    schema_version: u32,
    id: &'a str,
    tenant: &'a str,
    time: String,
    action: &'a str,
    category: &'a str,
    actor: Actor<'a>,
    target: Target<'a>,
    result: Outcome<'a>,
    correlation: Correlation<'a>,
    before: Value,
    after: Value,
    details: Value,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct Actor<'a> {
    subject: Option<&'a str>,
    roles: &'a [String],
    source_address: Option<&'a str>,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct Target<'a> {
    kind: Option<&'a str>,
    id: Option<&'a str>,
    display_name: Option<&'a str>,
}

#[derive(Serialize)]
struct Outcome<'a> {
    success: Option<bool>,
    reason: Option<&'a str>,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct Correlation<'a> {
    job_id: Option<&'a str>,
    report_id: Option<&'a str>,
    backup_id: Option<&'a str>,
}

/// `None` (JSON null) for an empty string.
fn opt(s: &str) -> Option<&str> {
    (!s.is_empty()).then_some(s)
}

impl<'a> Native<'a> {
    fn of(r: &'a AuditRecord) -> Self {
        let actor = r.actor.as_ref();
        let target = r.target.as_ref();
        let correlation = r.correlation.as_ref();
        let field = |s: Option<&'a String>| s.and_then(|s| opt(s));
        Native {
            schema_version: r.schema_version,
            id: &r.id,
            tenant: &r.tenant,
            time: rfc3339_ms(r.time_ms),
            action: &r.action,
            category: &r.category,
            actor: Actor {
                subject: field(actor.map(|a| &a.subject)),
                roles: actor.map_or(&[], |a| a.roles.as_slice()),
                source_address: field(actor.map(|a| &a.source_address)),
            },
            target: Target {
                kind: field(target.map(|t| &t.kind)),
                id: field(target.map(|t| &t.id)),
                display_name: field(target.map(|t| &t.display_name)),
            },
            result: Outcome {
                success: r.result.as_ref().map(|x| x.success),
                reason: field(r.result.as_ref().map(|x| &x.reason)),
            },
            correlation: Correlation {
                job_id: field(correlation.map(|c| &c.job_id)),
                report_id: field(correlation.map(|c| &c.report_id)),
                backup_id: field(correlation.map(|c| &c.backup_id)),
            },
            before: parse_embedded(&r.before_json),
            after: parse_embedded(&r.after_json),
            details: parse_embedded(&r.details_json),
        }
    }
}
