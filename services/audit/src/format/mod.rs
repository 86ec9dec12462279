//! Renderings of audit records for SIEMs: OCSF, CEF and the native JSON.
//!
//! Every rendering is one line (no newline inside), so a sink can frame records by lines or
//! by syslog octet counts. Modules: [`native`] (the native JSON, also the base of the
//! others' `unmapped` data), [`cef`] (ArcSight Common Event Format), [`ocsf`] (Open
//! Cybersecurity Schema Framework 1.1.0). `docs/audit-export.md` documents every field.

pub mod cef;
pub mod native;
pub mod ocsf;

use backtrack_proto::v1::AuditRecord;

pub use native::native_json;

/// How a sink renders each record.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Deserialize, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Format {
    /// OCSF 1.1.0 JSON: API Activity (6003), Entity Management (3004) or, for alerts,
    /// Detection Finding (2004).
    Ocsf,
    /// ArcSight Common Event Format, version 0.
    Cef,
    /// The native JSON rendering (see [`native_json`]).
    Json,
    /// A chat webhook's message (Slack, Microsoft Teams, Mattermost, Google Chat):
    /// `{"text": "..."}`, one record per request ([`chat_text`]).
    Chat,
}

impl Format {
    /// Whether the rendering is a JSON object (rather than text).
    pub fn is_json(self) -> bool {
        matches!(self, Format::Ocsf | Format::Json | Format::Chat)
    }
}

/// One record rendered as one line (no trailing newline).
pub fn render(record: &AuditRecord, format: Format) -> String {
    match format {
        Format::Ocsf => ocsf::ocsf_json(record).to_string(),
        Format::Cef => cef::cef_line(record),
        Format::Json => native::native_text(record),
        Format::Chat => serde_json::json!({ "text": chat_text(record) }).to_string(),
    }
}

/// The product version every rendering names.
pub const PRODUCT_VERSION: &str = env!("CARGO_PKG_VERSION");

/// How a record's outcome reads for severities: every format maps the same three cases.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    Success,
    Failure,
    /// The record carries no result.
    Unknown,
}

impl Outcome {
    pub fn of(record: &AuditRecord) -> Self {
        match &record.result {
            Some(r) if r.success => Outcome::Success,
            Some(_) => Outcome::Failure,
            None => Outcome::Unknown,
        }
    }
}

/// `2024-05-01T12:00:00.123Z` (RFC 3339, UTC, milliseconds).
pub fn rfc3339_ms(time_ms: i64) -> String {
    chrono::DateTime::from_timestamp_millis(time_ms)
        .unwrap_or_default()
        .to_rfc3339_opts(chrono::SecondsFormat::Millis, true)
}

/// A stable human name for an action: `recovery.operationApplied` → `Recovery operation
/// applied`.
pub fn human_name(action: &str) -> String {
    let mut out = String::with_capacity(action.len() + 4);
    for c in action.chars() {
        if c == '.' || c == '_' || c == '-' {
            if !out.ends_with(' ') && !out.is_empty() {
                out.push(' ');
            }
        } else if c.is_uppercase() {
            if !out.ends_with(' ') && !out.is_empty() {
                out.push(' ');
            }
            out.extend(c.to_lowercase());
        } else {
            out.push(c);
        }
    }
    let mut chars = out.trim().chars();
    match chars.next() {
        Some(first) => first.to_uppercase().chain(chars).collect(),
        None => "Audit record".to_string(),
    }
}

/// The actions of the alerter's records: an alert raised, and an alert's change set back.
pub const ALERT_RAISED: &str = "alert.raised";
pub const ALERT_UNDONE: &str = "alert.undone";

/// What an `alert.raised` or `alert.undone` record says, from its details.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AlertFacts {
    /// The rule's stable name, e.g. `caPolicyDeleted`.
    pub rule: String,
    /// `critical`, `high` or `medium`.
    pub severity: String,
    /// What happened, in words.
    pub what: String,
    /// For `alert.undone`: the id of the alert whose change was set back.
    pub undone_of: Option<String>,
}

/// The rule, severity and text of an alert record; `None` for any other record.
pub fn alert_facts(record: &AuditRecord) -> Option<AlertFacts> {
    if record.action != ALERT_RAISED && record.action != ALERT_UNDONE {
        return None;
    }
    let details = parse_embedded(&record.details_json);
    let text = |name: &str| {
        details
            .get(name)
            .and_then(serde_json::Value::as_str)
            .unwrap_or_default()
            .to_string()
    };
    Some(AlertFacts {
        rule: text("rule"),
        severity: text("severity"),
        what: text("what"),
        undone_of: (record.action == ALERT_UNDONE).then(|| text("alertId")),
    })
}

/// One sentence about the record, for CEF `msg` and OCSF `message`:
/// `alice recovery.started recoveryJob j1 (Nightly): failed: lease held`.
pub fn summary(record: &AuditRecord) -> String {
    let actor = record.actor.as_ref().map_or("", |a| a.subject.as_str());
    let mut s = String::new();
    s.push_str(if actor.is_empty() {
        "(unknown actor)"
    } else {
        actor
    });
    s.push(' ');
    s.push_str(&record.action);
    if let Some(t) = &record.target {
        for part in [&t.kind, &t.id] {
            if !part.is_empty() {
                s.push(' ');
                s.push_str(part);
            }
        }
        if !t.display_name.is_empty() {
            s.push_str(" (");
            s.push_str(&t.display_name);
            s.push(')');
        }
    }
    if let Some(alert) = alert_facts(record) {
        let how = if alert.undone_of.is_some() {
            " set back"
        } else {
            ""
        };
        s.push_str(&format!(
            ": {} ({}){how}: {}",
            alert.rule, alert.severity, alert.what
        ));
    }
    match Outcome::of(record) {
        Outcome::Success => s.push_str(": succeeded"),
        Outcome::Failure => s.push_str(": failed"),
        Outcome::Unknown => {}
    }
    if let Some(r) = &record.result {
        if !r.reason.is_empty() {
            s.push_str(": ");
            s.push_str(&r.reason);
        }
    }
    s
}

/// What a chat message says about a record. An alert: `[CRITICAL] caPolicyDeleted in
/// contoso: <what>: conditionalAccessPolicy "Require MFA" (<id>), by mallory at <time>.
/// Undo (dry run): backtrack recover ...`; an alert set back: `[SET BACK] caPolicyDeleted
/// in contoso: <what>: …, by admin at <time> (job <recovery id>).`; any other record:
/// `[contoso] <summary> at <time>`.
pub fn chat_text(record: &AuditRecord) -> String {
    let when = rfc3339_ms(record.time_ms);
    let Some(alert) = alert_facts(record) else {
        return format!("[{}] {} at {when}", record.tenant, summary(record));
    };
    let label = match alert.undone_of {
        Some(_) => "SET BACK".to_string(),
        None => alert.severity.to_uppercase(),
    };
    let mut text = format!(
        "[{label}] {} in {}: {}",
        alert.rule, record.tenant, alert.what
    );
    if let Some(t) = record.target.as_ref().filter(|t| !t.id.is_empty()) {
        if t.display_name.is_empty() {
            text.push_str(&format!(": {} {}", t.kind, t.id));
        } else {
            text.push_str(&format!(": {} \"{}\" ({})", t.kind, t.display_name, t.id));
        }
    }
    let actor = record.actor.as_ref().map_or("", |a| a.subject.as_str());
    text.push_str(&format!(", by {actor} at {when}"));
    match record.correlation.as_ref().filter(|c| !c.job_id.is_empty()) {
        Some(c) if alert.undone_of.is_some() => text.push_str(&format!(" (job {}).", c.job_id)),
        _ => text.push('.'),
    }
    let undo = parse_embedded(&record.details_json)
        .get("undo")
        .and_then(serde_json::Value::as_str)
        .map(str::to_string);
    if let Some(undo) = undo {
        text.push_str(&format!(" Undo (dry run): {undo}"));
    }
    text
}

/// A record's JSON text field as a JSON value: null when empty, the parsed value when it is
/// JSON, else the text itself (records are supposed to carry canonical JSON, but a sink must
/// not lose a field because a publisher got that wrong).
pub fn parse_embedded(text: &str) -> serde_json::Value {
    if text.is_empty() {
        serde_json::Value::Null
    } else {
        serde_json::from_str(text).unwrap_or_else(|_| serde_json::Value::String(text.to_string()))
    }
}
