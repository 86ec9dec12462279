//! The SIEM formats and the sink config, without a server: CEF and syslog escaping (checked
//! by the parsers in `common::parse`), a native JSON round trip, OCSF classes, and config
//! errors that name the sink and the field.
#![allow(clippy::unwrap_used)]

mod common;

use backtrack_audit::format::{self, cef, native_json, ocsf, render, Format};
use backtrack_audit::sinks::{self, syslog};
use backtrack_proto::v1::{AuditActor, AuditCorrelation, AuditRecord, AuditResult, AuditTarget};
use serde_json::{json, Value};

use common::parse::{parse_cef, parse_syslog};
use common::sample_records;

#[test]
fn cef_escapes_header_and_extension_values() {
    assert_eq!(cef::escape_header(r"a|b\c"), r"a\|b\\c");
    assert_eq!(cef::escape_header("two\nlines"), "two lines");
    assert_eq!(cef::escape_extension("k=v\\x|y\nz\rw"), r"k\=v\\x|y\nz\rw");
    let mut record = sample_records(1).remove(0);
    record.action = "odd|action\\name".into();
    let line = cef::cef_line(&record);
    assert!(!line.contains('\n'), "{line}");
    let (header, ext) = parse_cef(&line).unwrap();
    assert_eq!(header[4], "odd|action\\name");
    assert_eq!(header[6], "6", "a failure is CEF severity 6");
    assert_eq!(ext["suser"], "evil|user=x\\y\n]\"");
    assert_eq!(ext["reason"], "denied:\nline two = bad | pipe \\ slash");
    assert_eq!(ext["flexString1"], "Jane \"JD\" Doe = admin | ops");
    assert_eq!(ext["externalId"], record.id);
    assert_eq!(ext["rt"], record.time_ms.to_string());
    assert_eq!(ext["src"], "10.0.0.7");
    assert_eq!(ext["cs1Label"], "tenant");
    assert_eq!(ext["cs1"], "acme");
    assert_eq!(ext["cs2"], "job-0");
    assert_eq!(ext["outcome"], "failure");
    assert_eq!(ext["duid"], "obj-0");
}

#[test]
fn syslog_escapes_sd_params_and_header_fields() {
    assert_eq!(syslog::escape_sd_param(r#"a"b]c\d"#), r#"a\"b\]c\\d"#);
    assert_eq!(syslog::header_field("", 32), "-");
    assert_eq!(syslog::header_field("has space\u{e9}", 32), "has_space_");
    assert_eq!(syslog::header_field(&"x".repeat(40), 32).len(), 32);

    let mut record = sample_records(3).remove(2);
    record.id = r#"id"with]quote\s"#.into();
    record.action = "directory.anActionNameLongerThanThirtyTwo".into();
    let message = syslog::syslog_message(
        &record,
        Format::Json,
        sinks::Facility::Authpriv,
        "host name",
        "42",
    );
    let parsed = parse_syslog(&message).unwrap();
    assert_eq!(parsed.pri, 10 * 8 + 5);
    assert_eq!(parsed.header[2], "host_name");
    assert_eq!(parsed.header[4], "42");
    assert_eq!(
        parsed.header[5], "directory.anActionNameLongerThan",
        "MSGID is cut to 32"
    );
    assert_eq!(parsed.sd["id"], record.id);
    assert_eq!(parsed.sd["tenant"], r#"we"ird]\ten"#);
    assert_eq!(
        serde_json::from_str::<Value>(&parsed.msg).unwrap(),
        native_json(&record)
    );
}

/// The inverse of the native JSON, written here from the documented mapping.
fn from_native(v: &Value) -> AuditRecord {
    let s = |v: &Value| v.as_str().unwrap_or_default().to_string();
    let embedded = |v: &Value| {
        if v.is_null() {
            String::new()
        } else {
            v.to_string()
        }
    };
    let time = chrono::DateTime::parse_from_rfc3339(v["time"].as_str().unwrap())
        .unwrap()
        .timestamp_millis();
    AuditRecord {
        schema_version: u32::try_from(v["schemaVersion"].as_u64().unwrap()).unwrap(),
        id: s(&v["id"]),
        tenant: s(&v["tenant"]),
        time_ms: time,
        actor: Some(AuditActor {
            subject: s(&v["actor"]["subject"]),
            roles: v["actor"]["roles"]
                .as_array()
                .unwrap()
                .iter()
                .map(s)
                .collect(),
            source_address: s(&v["actor"]["sourceAddress"]),
        }),
        action: s(&v["action"]),
        category: s(&v["category"]),
        target: Some(AuditTarget {
            kind: s(&v["target"]["kind"]),
            id: s(&v["target"]["id"]),
            display_name: s(&v["target"]["displayName"]),
        }),
        result: Some(AuditResult {
            success: v["result"]["success"].as_bool().unwrap(),
            reason: s(&v["result"]["reason"]),
        }),
        correlation: Some(AuditCorrelation {
            job_id: s(&v["correlation"]["jobId"]),
            report_id: s(&v["correlation"]["reportId"]),
            backup_id: s(&v["correlation"]["backupId"]),
        }),
        before_json: embedded(&v["before"]),
        after_json: embedded(&v["after"]),
        details_json: embedded(&v["details"]),
    }
}

#[test]
fn native_json_has_every_field_and_round_trips() {
    let mut record = sample_records(3).remove(2);
    record.correlation.as_mut().unwrap().backup_id = "backup-9".into();
    record.actor.as_mut().unwrap().subject = "alice".into();
    record.result.as_mut().unwrap().reason = "because".into();
    let v = native_json(&record);
    for key in [
        "schemaVersion",
        "id",
        "tenant",
        "time",
        "action",
        "category",
        "actor",
        "target",
        "result",
        "correlation",
        "before",
        "after",
        "details",
    ] {
        assert!(v.get(key).is_some(), "{key} missing in {v}");
    }
    assert_eq!(v["before"], json!({"displayName": "old"}));
    assert_eq!(v["details"], json!({"n": 2}));
    assert!(v["time"].as_str().unwrap().ends_with('Z'));
    assert_eq!(from_native(&v), record);
    assert_eq!(
        serde_json::from_str::<Value>(&render(&record, Format::Json)).unwrap(),
        v
    );

    let empty = AuditRecord::default();
    let v = native_json(&empty);
    assert_eq!(v["actor"]["subject"], Value::Null);
    assert_eq!(v["result"]["success"], Value::Null);
    assert_eq!(v["before"], Value::Null);
    assert_eq!(v["time"], "1970-01-01T00:00:00.000Z");
    let mut broken = empty.clone();
    broken.details_json = "not json".into();
    assert_eq!(native_json(&broken)["details"], "not json");
}

#[test]
fn ocsf_picks_api_activity_or_entity_management() {
    let records = sample_records(4);
    let api = ocsf::ocsf_json(&records[1]);
    assert_eq!(api["class_uid"], 6003);
    assert_eq!(api["category_uid"], 6);
    assert_eq!(api["activity_id"], 1, "backup.created is a Create");
    assert_eq!(api["type_uid"], 600_301);
    assert_eq!(api["metadata"]["version"], "1.1.0");
    assert_eq!(api["metadata"]["product"]["vendor_name"], "Backtrack");
    assert_eq!(api["metadata"]["uid"], records[1].id);
    assert_eq!(api["time"], records[1].time_ms);
    assert_eq!(api["actor"]["user"]["name"], "user1@example.com");
    assert_eq!(api["src_endpoint"], json!({"ip": "::1", "port": 4711}));
    assert_eq!(api["api"]["operation"], "backup.created");
    assert_eq!(api["status_id"], 1);
    assert_eq!(api["resources"][0]["uid"], "obj-1");
    assert_eq!(api["unmapped"]["details"], json!({"n": 1}));

    let entity = ocsf::ocsf_json(&records[2]);
    assert_eq!(entity["class_uid"], 3004);
    assert_eq!(entity["category_uid"], 3);
    assert_eq!(entity["activity_id"], 3, "before and after: an Update");
    assert_eq!(entity["type_uid"], 300_403);
    assert_eq!(entity["entity"]["data"], json!({"displayName": "old"}));
    assert_eq!(
        entity["entity_result"]["data"],
        json!({"displayName": "new"})
    );

    let failure = ocsf::ocsf_json(&records[0]);
    assert_eq!(failure["status_id"], 2);
    assert_eq!(failure["severity_id"], 3);
    assert_eq!(
        failure["status_detail"],
        "denied:\nline two = bad | pipe \\ slash"
    );
    assert_eq!(ocsf::api_activity("recovery.operationApplied"), 3);
    assert_eq!(ocsf::api_activity("security.permissionDenied"), 99);
    assert_eq!(
        format::human_name("recovery.operationApplied"),
        "Recovery operation applied"
    );
}

/// An `alert.raised` record as the alerter writes it.
fn alert_record(severity: &str) -> AuditRecord {
    AuditRecord {
        schema_version: 1,
        id: "alert:0193f1c2-7a00-7000-8000-000000000001:0".into(),
        tenant: "contoso".into(),
        time_ms: 1_796_644_800_000,
        actor: Some(AuditActor {
            subject: "mallory@contoso.com".into(),
            ..Default::default()
        }),
        action: "alert.raised".into(),
        category: "alert".into(),
        target: Some(AuditTarget {
            kind: "conditionalAccessPolicy".into(),
            id: "p1".into(),
            display_name: "Require MFA".into(),
        }),
        details_json: json!({
            "rule": "caPolicyDeleted",
            "severity": severity,
            "what": "conditional access policy deleted (in the recycle bin)",
            "undo": "backtrack recover --tenant contoso --from seq:9 --changed-by mallory@contoso.com --id p1 --dry-run",
        })
        .to_string(),
        ..Default::default()
    }
}

#[test]
fn alerts_are_findings_with_their_own_severity_in_every_format() {
    let critical = alert_record("critical");
    let finding = ocsf::ocsf_json(&critical);
    assert_eq!(finding["class_uid"], 2004);
    assert_eq!(finding["category_uid"], 2);
    assert_eq!(finding["type_uid"], 200_401);
    assert_eq!(
        (finding["severity_id"].clone(), finding["severity"].clone()),
        (json!(5), json!("Critical"))
    );
    assert_eq!(finding["finding_info"]["uid"], critical.id);
    assert_eq!(finding["finding_info"]["types"], json!(["caPolicyDeleted"]));
    assert_eq!(
        finding["finding_info"]["title"],
        "caPolicyDeleted: conditional access policy deleted (in the recycle bin)"
    );
    assert_eq!(finding["resources"][0]["name"], "Require MFA");
    assert_eq!(finding["actor"]["user"]["name"], "mallory@contoso.com");
    assert!(finding["unmapped"]["details"]["undo"]
        .as_str()
        .unwrap()
        .contains("--changed-by mallory@contoso.com --id p1"));
    assert_eq!(ocsf::ocsf_json(&alert_record("high"))["severity_id"], 4);
    assert_eq!(ocsf::ocsf_json(&alert_record("medium"))["severity_id"], 3);

    let (header, ext) = parse_cef(&cef::cef_line(&critical)).unwrap();
    assert_eq!(header[4], "alert.raised");
    assert_eq!(
        header[5],
        "caPolicyDeleted: conditional access policy deleted (in the recycle bin)"
    );
    assert_eq!(header[6], "10");
    assert_eq!(cef::severity(&alert_record("high")), 8);
    assert_eq!(cef::severity(&alert_record("medium")), 5);
    assert_eq!(ext["suser"], "mallory@contoso.com");
    assert_eq!(ext.get("outcome"), None, "a finding has no outcome");
    assert_eq!(
        ext["msg"],
        "mallory@contoso.com alert.raised conditionalAccessPolicy p1 (Require MFA): caPolicyDeleted (critical): conditional access policy deleted (in the recycle bin)"
    );
    // Any other record is unchanged by it.
    let ordinary = &sample_records(2)[1];
    assert_eq!(ocsf::ocsf_json(ordinary)["class_uid"], 6003);
    assert!(format::alert_facts(ordinary).is_none());
}

/// The `alert.undone` record of [`alert_record`]'s alert, set back by a recovery.
fn undone_record() -> AuditRecord {
    let raised = alert_record("critical");
    AuditRecord {
        id: format!("{}:undone", raised.id),
        time_ms: raised.time_ms + 60_000,
        actor: Some(AuditActor {
            subject: "admin".into(),
            ..Default::default()
        }),
        action: "alert.undone".into(),
        correlation: Some(AuditCorrelation {
            job_id: "rec-1".into(),
            ..Default::default()
        }),
        details_json: json!({
            "alertId": raised.id,
            "rule": "caPolicyDeleted",
            "severity": "critical",
            "what": "conditional access policy deleted (in the recycle bin)",
            "raisedTimeMs": raised.time_ms,
            "sequence": 12,
        })
        .to_string(),
        ..raised
    }
}

#[test]
fn an_alert_set_back_closes_its_finding_in_every_format() {
    let (raised, undone) = (alert_record("critical"), undone_record());
    let finding = ocsf::ocsf_json(&undone);
    assert_eq!(finding["class_uid"], 2004);
    assert_eq!(finding["type_uid"], 200_403);
    assert_eq!(finding["activity_name"], "Close");
    assert_eq!(
        (finding["status_id"].clone(), finding["status"].clone()),
        (json!(4), json!("Resolved"))
    );
    // The same finding as the alert's: a SIEM closes what it opened.
    assert_eq!(finding["finding_info"]["uid"], raised.id);
    assert_eq!(finding["finding_info"]["created_time"], raised.time_ms);
    assert_eq!(finding["metadata"]["uid"], undone.id);
    assert_eq!(finding["actor"]["user"]["name"], "admin");
    assert_eq!(finding["severity_id"], 5);

    let (header, ext) = parse_cef(&cef::cef_line(&undone)).unwrap();
    assert_eq!(header[4], "alert.undone");
    assert_eq!(
        header[5],
        "caPolicyDeleted set back: conditional access policy deleted (in the recycle bin)"
    );
    assert_eq!(header[6], "3");
    assert_eq!(
        ext["msg"],
        "admin alert.undone conditionalAccessPolicy p1 (Require MFA): caPolicyDeleted (critical) set back: conditional access policy deleted (in the recycle bin)"
    );
    let chat = format::chat_text(&undone);
    assert!(
        chat.starts_with("[SET BACK] caPolicyDeleted in contoso: conditional access policy deleted (in the recycle bin): conditionalAccessPolicy \"Require MFA\" (p1), by admin at ")
            && chat.ends_with(" (job rec-1)."),
        "{chat}"
    );
    assert!(!chat.contains("Undo"), "{chat}");
}

#[test]
fn config_file_loads_and_errors_name_the_sink_and_field() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("sinks.json");
    std::fs::write(
        &path,
        r#"{"sinks": [
            {"name": "soc-syslog", "type": "syslog", "address": "siem.example:6514", "format": "cef", "facility": "authpriv"},
            {"name": "splunk", "type": "http", "url": "http://splunk:8088/services/collector/event", "token": "s3cret", "gzip": true, "format": "ocsf"},
            {"name": "archive", "type": "file", "path": "/var/log/backtrack/audit.jsonl", "max_bytes": 1048576, "keep": 5, "format": "json", "filter_subject": "bt.audit.acme.>"}
        ]}"#,
    )
    .unwrap();
    let sinks = sinks::load_config(&path).unwrap();
    assert_eq!(sinks.len(), 3);
    assert_eq!(sinks[0].consumer_name(), "bt-audit-sink-soc-syslog");
    assert_eq!(sinks[1].format, Format::Ocsf);
    assert_eq!(sinks[2].filter_subject, "bt.audit.acme.>");
    assert_eq!(sinks[0].fetch_batch, 1000);
    let debug = format!("{:?}", sinks[1]);
    assert!(
        !debug.contains("s3cret") && debug.contains("redacted"),
        "{debug}"
    );

    let error = |text: &str| sinks::parse_config(text).unwrap_err();
    let e = error(r#"{"sinks": [{"name": "a.b", "type": "file", "path": "x", "format": "json"}]}"#);
    assert!(e.contains("'a.b'") && e.contains("A-Z"), "{e}");
    let e =
        error(r#"{"sinks": [{"name": "s1", "type": "syslog", "adress": "h:1", "format": "cef"}]}"#);
    assert!(
        e.contains("sink 's1'") && e.contains("unknown field 'adress'"),
        "{e}"
    );
    let e = error(r#"{"sinks": [{"name": "s2", "type": "http", "format": "json"}]}"#);
    assert!(e.contains("sink 's2'") && e.contains("url"), "{e}");
    let e = error(r#"{"sinks": [{"name": "s3", "type": "kafka", "format": "json"}]}"#);
    assert!(e.contains("type 'kafka'"), "{e}");
    let e = error(
        r#"{"sinks": [{"name": "s4", "type": "syslog", "address": "nohost", "format": "cef"}]}"#,
    );
    assert!(e.contains("sink 's4'") && e.contains("address"), "{e}");
    let e = error(
        r#"{"sinks": [{"name": "s5", "type": "http", "url": "http://x/", "tls": {}, "format": "cef"}]}"#,
    );
    assert!(e.contains("sink 's5'") && e.contains("tls"), "{e}");
    let e = error(r#"{"sinks": [{"name": "s6", "type": "file", "path": "x", "format": "yaml"}]}"#);
    assert!(e.contains("sink 's6'") && e.contains("yaml"), "{e}");
    let e = error(
        r#"{"sinks": [{"name": "d", "type": "file", "path": "x", "format": "json"},
                      {"name": "d", "type": "file", "path": "y", "format": "json"}]}"#,
    );
    assert!(e.contains("same name"), "{e}");
    let e = error(
        r#"{"sinks": [{"name": "s7", "type": "syslog", "address": "h:1", "format": "cef", "tls": {"ca_file": "/nonexistent.pem"}}]}"#,
    );
    assert!(e.contains("sink 's7'") && e.contains("ca_file"), "{e}");
}
