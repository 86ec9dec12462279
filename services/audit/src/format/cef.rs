//! ArcSight Common Event Format (CEF) version 0:
//! `CEF:0|Backtrack|Backtrack|<version>|<action>|<name>|<severity>|<extensions>`.
//!
//! Header fields escape `\` and `|`; extension values escape `\`, `=` and line breaks
//! (`\n`, `\r`). Extensions with empty values are left out.

use std::fmt::Write as _;
use std::net::{IpAddr, SocketAddr};

use backtrack_proto::v1::AuditRecord;

use super::{alert_facts, human_name, summary, Outcome, PRODUCT_VERSION};

/// CEF severity (0–10) of a record: 3 (low) for a success or an unknown result, 6 (medium)
/// for a failure; an alert's by its severity: 10 critical, 8 high, 5 medium; an alert set
/// back, 3.
pub fn severity(record: &AuditRecord) -> u8 {
    if let Some(alert) = alert_facts(record) {
        if alert.undone_of.is_some() {
            return 3;
        }
        return match alert.severity.as_str() {
            "critical" => 10,
            "high" => 8,
            _ => 5,
        };
    }
    match Outcome::of(record) {
        Outcome::Failure => 6,
        Outcome::Success | Outcome::Unknown => 3,
    }
}

/// Escapes a CEF header field: `\` → `\\`, `|` → `\|`; line breaks (not allowed in a
/// header) become spaces.
pub fn escape_header(value: &str) -> String {
    let mut out = String::with_capacity(value.len());
    for c in value.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '|' => out.push_str("\\|"),
            '\r' | '\n' => out.push(' '),
            c => out.push(c),
        }
    }
    out
}

/// Escapes a CEF extension value: `\` → `\\`, `=` → `\=`, newline → `\n`, carriage
/// return → `\r`. Pipes stay as they are.
pub fn escape_extension(value: &str) -> String {
    let mut out = String::with_capacity(value.len());
    push_escaped_extension(&mut out, value);
    out
}

fn push_escaped_extension(out: &mut String, value: &str) {
    for c in value.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '=' => out.push_str("\\="),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            c => out.push(c),
        }
    }
}

/// Collects `key=value` pairs, skipping empty values.
struct Extensions(String);

impl Extensions {
    fn add(&mut self, key: &str, value: &str) {
        if value.is_empty() {
            return;
        }
        if !self.0.is_empty() {
            self.0.push(' ');
        }
        self.0.push_str(key);
        self.0.push('=');
        push_escaped_extension(&mut self.0, value);
    }

    /// A custom string with its label (`cs1Label=tenant cs1=...`), only when the value is set.
    fn labelled(&mut self, key: &str, label: &str, value: &str) {
        if !value.is_empty() {
            self.add(&format!("{key}Label"), label);
            self.add(key, value);
        }
    }
}

/// The record as one CEF line.
pub fn cef_line(record: &AuditRecord) -> String {
    let mut line = String::with_capacity(512);
    let _ = write!(
        line,
        "CEF:0|Backtrack|Backtrack|{}|{}|{}|{}|",
        escape_header(PRODUCT_VERSION),
        escape_header(&record.action),
        escape_header(&name(record)),
        severity(record),
    );
    let mut ext = Extensions(String::with_capacity(384));
    ext.add("rt", &record.time_ms.to_string());
    ext.add("externalId", &record.id);
    ext.add("cat", &record.category);
    ext.add("act", &record.action);
    ext.add(
        "outcome",
        match Outcome::of(record) {
            Outcome::Success => "success",
            Outcome::Failure => "failure",
            Outcome::Unknown => "",
        },
    );
    if let Some(actor) = &record.actor {
        ext.add("suser", &actor.subject);
        ext.add("spriv", &actor.roles.join(","));
        add_source(&mut ext, &actor.source_address);
    }
    ext.labelled("cs1", "tenant", &record.tenant);
    if let Some(c) = &record.correlation {
        ext.labelled("cs2", "jobId", &c.job_id);
        ext.labelled("cs3", "reportId", &c.report_id);
        ext.labelled("cs4", "backupId", &c.backup_id);
    }
    if let Some(t) = &record.target {
        ext.labelled("cs5", "targetKind", &t.kind);
        ext.labelled("cs6", "targetId", &t.id);
        ext.labelled("flexString1", "targetName", &t.display_name);
        if t.kind.eq_ignore_ascii_case("user") {
            ext.add("duid", &t.id);
            ext.add("duser", &t.display_name);
        }
    }
    if let Some(r) = &record.result {
        ext.add("reason", &r.reason);
    }
    ext.labelled("flexString2", "details", &record.details_json);
    ext.add("btBefore", &record.before_json);
    ext.add("btAfter", &record.after_json);
    ext.add("msg", &summary(record));
    line.push_str(&ext.0);
    line
}

/// The CEF name of a record: the action in words; for an alert, its rule and what it saw
/// (`caPolicyDeleted: conditional access policy deleted (in the recycle bin)`); for one
/// set back, `caPolicyDeleted set back: …`.
fn name(record: &AuditRecord) -> String {
    match alert_facts(record) {
        Some(alert) if alert.undone_of.is_some() => {
            format!("{} set back: {}", alert.rule, alert.what)
        }
        Some(alert) => format!("{}: {}", alert.rule, alert.what),
        None => human_name(&record.action),
    }
}

/// `src` (and `spt`) when the address is an IP (with a port), else `shost`.
fn add_source(ext: &mut Extensions, address: &str) {
    if let Ok(ip) = address.parse::<IpAddr>() {
        ext.add("src", &ip.to_string());
    } else if let Ok(sa) = address.parse::<SocketAddr>() {
        ext.add("src", &sa.ip().to_string());
        ext.add("spt", &sa.port().to_string());
    } else {
        ext.add("shost", address);
    }
}
