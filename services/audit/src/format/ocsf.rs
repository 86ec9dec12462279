//! OCSF 1.1.0 renderings.
//!
//! A record that changed an object (it carries `before` or `after`) is an Entity Management
//! event (class 3004, Identity & Access Management): Create when only `after` is set, Delete
//! when only `before` is, Update when both are. Every other record is an API Activity
//! (class 6003, Application Activity) whose activity comes from the verb that ends the action
//! (`backup.created` → Create). An alert (`alert.raised`) is a Detection Finding (class
//! 2004, Findings) with the alert's severity, activity Create and status New; an alert set
//! back (`alert.undone`) is the same finding (`finding_info.uid` is the alert's id) with
//! activity Close and status Resolved. Fields OCSF has no place for go under
//! `unmapped`.

use std::net::{IpAddr, SocketAddr};

use backtrack_proto::v1::AuditRecord;
use serde_json::{json, Map, Value};

use super::{alert_facts, parse_embedded, summary, AlertFacts, Outcome, PRODUCT_VERSION};

/// The OCSF schema version the renderings follow.
pub const OCSF_VERSION: &str = "1.1.0";

pub const API_ACTIVITY: u32 = 6003;
pub const ENTITY_MANAGEMENT: u32 = 3004;
pub const DETECTION_FINDING: u32 = 2004;

/// (class_uid, activity_id) of a record.
pub fn classify(record: &AuditRecord) -> (u32, u32) {
    match (record.before_json.is_empty(), record.after_json.is_empty()) {
        (true, false) => (ENTITY_MANAGEMENT, 1),
        (false, false) => (ENTITY_MANAGEMENT, 3),
        (false, true) => (ENTITY_MANAGEMENT, 4),
        (true, true) => (API_ACTIVITY, api_activity(&record.action)),
    }
}

/// The API Activity `activity_id` of an action, from its last word: 1 Create, 2 Read,
/// 3 Update, 4 Delete, 99 Other.
pub fn api_activity(action: &str) -> u32 {
    let last = action.rsplit('.').next().unwrap_or(action);
    // The verb is the last camelCase word: `operationApplied` → `applied`.
    let start = last.rfind(|c: char| c.is_uppercase()).unwrap_or(0);
    match last[start..].to_ascii_lowercase().as_str() {
        "created" | "started" | "requested" | "scheduled" | "added" | "create" | "start" => 1,
        "read" | "viewed" | "listed" | "queried" | "exported" | "downloaded" | "verified" => 2,
        "updated" | "modified" | "changed" | "applied" | "restored" | "renamed" | "pinned"
        | "unpinned" | "cancelled" | "canceled" | "resumed" | "enabled" | "disabled" | "update" => {
            3
        }
        "deleted" | "removed" | "purged" | "delete" => 4,
        _ => 99,
    }
}

fn activity_name(class_uid: u32, activity_id: u32) -> &'static str {
    match (class_uid, activity_id) {
        (_, 1) => "Create",
        (_, 2) => "Read",
        (_, 3) => "Update",
        (_, 4) => "Delete",
        _ => "Other",
    }
}

/// The record as an OCSF 1.1.0 event.
pub fn ocsf_json(record: &AuditRecord) -> Value {
    if let Some(alert) = alert_facts(record) {
        return detection_finding(record, &alert);
    }
    let (class_uid, activity_id) = classify(record);
    let (class_name, category_uid, category_name) = if class_uid == ENTITY_MANAGEMENT {
        ("Entity Management", 3, "Identity & Access Management")
    } else {
        ("API Activity", 6, "Application Activity")
    };
    let activity = if activity_id == 99 {
        record.action.clone()
    } else {
        activity_name(class_uid, activity_id).to_string()
    };
    let outcome = Outcome::of(record);
    let (status_id, status, severity_id, severity) = match outcome {
        Outcome::Success => (1, "Success", 1, "Informational"),
        Outcome::Failure => (2, "Failure", 3, "Medium"),
        Outcome::Unknown => (0, "Unknown", 1, "Informational"),
    };
    let actor = record.actor.clone().unwrap_or_default();
    let mut event = json!({
        "metadata": metadata(record),
        "time": record.time_ms,
        "category_uid": category_uid,
        "category_name": category_name,
        "class_uid": class_uid,
        "class_name": class_name,
        "activity_id": activity_id,
        "activity_name": activity,
        "type_uid": class_uid * 100 + activity_id,
        "type_name": format!("{class_name}: {activity}"),
        "severity_id": severity_id,
        "severity": severity,
        "status_id": status_id,
        "status": status,
        "message": summary(record),
        "actor": {"user": {"name": actor.subject, "uid": actor.subject}},
        "src_endpoint": src_endpoint(&actor.source_address),
    });
    let object = event.as_object_mut().expect("json! object");
    if let Some(reason) = record.result.as_ref().map(|r| &r.reason) {
        if !reason.is_empty() {
            object.insert("status_detail".into(), Value::String(reason.clone()));
        }
    }
    let target = record.target.clone().unwrap_or_default();
    let resource = json!({
        "uid": target.id,
        "name": target.display_name,
        "type": target.kind,
    });
    if class_uid == ENTITY_MANAGEMENT {
        let before = parse_embedded(&record.before_json);
        let after = parse_embedded(&record.after_json);
        let mut entity = resource.clone();
        entity["data"] = if before.is_null() {
            after.clone()
        } else {
            before
        };
        object.insert("entity".into(), entity);
        if !after.is_null() {
            let mut result = resource;
            result["data"] = after;
            object.insert("entity_result".into(), result);
        }
    } else {
        object.insert(
            "api".into(),
            json!({
                "operation": record.action,
                "service": {"name": format!("backtrack-{}", record.category)},
                "request": {"uid": record.id},
            }),
        );
        if !target.id.is_empty() || !target.kind.is_empty() {
            object.insert("resources".into(), json!([resource]));
        }
    }
    object.insert("unmapped".into(), unmapped(record));
    event
}

/// `metadata`: schema version, product, the record's id, tenant and action, and its job as
/// `correlation_uid` when it has one.
fn metadata(record: &AuditRecord) -> Value {
    let mut metadata = json!({
        "version": OCSF_VERSION,
        "product": {"name": "Backtrack", "vendor_name": "Backtrack", "version": PRODUCT_VERSION},
        "uid": record.id,
        "tenant_uid": record.tenant,
        "log_name": "BT_AUDIT",
        "event_code": record.action,
    });
    if let Some(job) = record.correlation.as_ref().map(|c| &c.job_id) {
        if !job.is_empty() {
            metadata["correlation_uid"] = Value::String(job.clone());
        }
    }
    metadata
}

/// An alert as an OCSF Detection Finding: created (activity 1), new (status 1), with the
/// alert's severity, the rule as the finding's type and the changed object as its resource.
fn detection_finding(record: &AuditRecord, alert: &AlertFacts) -> Value {
    let (severity_id, severity) = match alert.severity.as_str() {
        "critical" => (5, "Critical"),
        "high" => (4, "High"),
        _ => (3, "Medium"),
    };
    let actor = record.actor.clone().unwrap_or_default();
    // Raised: the finding is created; set back: the same finding is closed as resolved.
    let ((activity_id, activity), (status_id, status), uid) = match &alert.undone_of {
        Some(alert_id) => ((3, "Close"), (4, "Resolved"), alert_id.as_str()),
        None => ((1, "Create"), (1, "New"), record.id.as_str()),
    };
    let created_ms = match alert.undone_of {
        Some(_) => parse_embedded(&record.details_json)["raisedTimeMs"]
            .as_i64()
            .unwrap_or(record.time_ms),
        None => record.time_ms,
    };
    let mut event = json!({
        "metadata": metadata(record),
        "time": record.time_ms,
        "category_uid": 2,
        "category_name": "Findings",
        "class_uid": DETECTION_FINDING,
        "class_name": "Detection Finding",
        "activity_id": activity_id,
        "activity_name": activity,
        "type_uid": DETECTION_FINDING * 100 + activity_id,
        "type_name": format!("Detection Finding: {activity}"),
        "severity_id": severity_id,
        "severity": severity,
        "status_id": status_id,
        "status": status,
        "message": summary(record),
        "finding_info": {
            "uid": uid,
            "title": format!("{}: {}", alert.rule, alert.what),
            "desc": alert.what,
            "types": [alert.rule],
            "created_time": created_ms,
        },
        "actor": {"user": {"name": actor.subject, "uid": actor.subject}},
    });
    let object = event.as_object_mut().expect("json! object");
    if let Some(t) = record.target.as_ref().filter(|t| !t.id.is_empty()) {
        object.insert(
            "resources".into(),
            json!([{"uid": t.id, "name": t.display_name, "type": t.kind}]),
        );
    }
    object.insert("unmapped".into(), unmapped(record));
    event
}

/// `ip` (and `port`) when the address is an IP, else `name`; `backtrack` when the action
/// came from inside Backtrack (no source address).
fn src_endpoint(address: &str) -> Value {
    if let Ok(ip) = address.parse::<IpAddr>() {
        json!({"ip": ip.to_string()})
    } else if let Ok(sa) = address.parse::<SocketAddr>() {
        json!({"ip": sa.ip().to_string(), "port": sa.port()})
    } else if address.is_empty() {
        json!({"name": "backtrack"})
    } else {
        json!({"name": address})
    }
}

/// The native fields OCSF has no attribute for (same names and shapes as the native JSON).
fn unmapped(record: &AuditRecord) -> Value {
    let opt = |s: &str| -> Value {
        if s.is_empty() {
            Value::Null
        } else {
            Value::String(s.to_string())
        }
    };
    let correlation = record.correlation.clone().unwrap_or_default();
    let mut out = Map::new();
    out.insert("schemaVersion".into(), record.schema_version.into());
    out.insert("category".into(), record.category.clone().into());
    out.insert(
        "roles".into(),
        record
            .actor
            .as_ref()
            .map_or_else(Vec::new, |a| a.roles.clone())
            .into(),
    );
    out.insert(
        "correlation".into(),
        json!({
            "jobId": opt(&correlation.job_id),
            "reportId": opt(&correlation.report_id),
            "backupId": opt(&correlation.backup_id),
        }),
    );
    out.insert("details".into(), parse_embedded(&record.details_json));
    Value::Object(out)
}
