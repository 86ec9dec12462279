//! How `backtrack backup ...` prints backups, verification reports and policies: tables
//! for people, JSON (camelCase, times in RFC 3339 UTC with milliseconds) for scripts.

use backtrack_domain::time::rfc3339_ms;
use backtrack_proto::v1;
use serde_json::{json, Map, Value};

use crate::args::{GlobalArgs, OutputFormat};
use crate::output::outln;
use crate::output::{print_json, table};

/// `scheduled`, `onDemand`, `preRecovery`, `baseline`, or `unspecified`.
pub fn trigger_name(trigger: i32) -> &'static str {
    match v1::BackupTrigger::try_from(trigger) {
        Ok(v1::BackupTrigger::Scheduled) => "scheduled",
        Ok(v1::BackupTrigger::OnDemand) => "onDemand",
        Ok(v1::BackupTrigger::PreRecovery) => "preRecovery",
        Ok(v1::BackupTrigger::Baseline) => "baseline",
        Ok(v1::BackupTrigger::Unspecified) | Err(_) => "unspecified",
    }
}

/// A backup for scripts: `{id, sequence, createdAt, trigger, description, counts, digest,
/// tenant, stream, pinned, expired, expiresAt, requestedBy}`; `counts` is
/// `{kind: {live, deleted}}` and `expiresAt` is null for a backup that never expires.
pub fn backup_json(b: &v1::Backup) -> Value {
    let counts: Map<String, Value> = b
        .counts
        .iter()
        .map(|c| {
            (
                c.kind.clone(),
                json!({"live": c.live, "deleted": c.deleted}),
            )
        })
        .collect();
    json!({
        "id": b.id,
        "sequence": b.sequence,
        "createdAt": rfc3339_ms(b.created_at_ms),
        "trigger": trigger_name(b.trigger),
        "description": b.description,
        "counts": counts,
        "digest": b.digest,
        "tenant": b.tenant,
        "stream": b.stream,
        "pinned": b.pinned,
        "expired": b.expired,
        "expiresAt": (b.expires_at_ms != 0).then(|| rfc3339_ms(b.expires_at_ms)),
        "requestedBy": b.requested_by,
    })
}

/// Live objects over every kind.
fn live_objects(b: &v1::Backup) -> u64 {
    b.counts.iter().fold(0, |sum, c| sum.saturating_add(c.live))
}

/// When the backup stops being usable, in words.
fn expiry(b: &v1::Backup) -> String {
    if b.pinned {
        "never (pinned)".into()
    } else if b.expired {
        "expired".into()
    } else if b.expires_at_ms == 0 {
        "never".into()
    } else {
        rfc3339_ms(b.expires_at_ms)
    }
}

/// One backup: its fields, then its object counts per kind.
pub fn print_backup(g: &GlobalArgs, b: &v1::Backup, verb: &str) {
    if g.output == OutputFormat::Json {
        print_json(&backup_json(b));
        return;
    }
    if !verb.is_empty() {
        outln!("{verb} backup {}", b.id);
    }
    let fields = [
        ("id", b.id.clone()),
        ("tenant", b.tenant.clone()),
        ("sequence", b.sequence.to_string()),
        ("created", rfc3339_ms(b.created_at_ms)),
        ("trigger", trigger_name(b.trigger).to_string()),
        ("description", b.description.clone()),
        ("requested by", b.requested_by.clone()),
        ("digest", b.digest.clone()),
        ("expires", expiry(b)),
        ("stream", b.stream.clone()),
    ];
    let rows: Vec<Vec<String>> = fields
        .into_iter()
        .map(|(k, v)| vec![k.to_string(), v])
        .collect();
    table(&["FIELD", "VALUE"], &rows);
    outln!();
    let mut rows: Vec<Vec<String>> = b
        .counts
        .iter()
        .map(|c| vec![c.kind.clone(), c.live.to_string(), c.deleted.to_string()])
        .collect();
    let deleted = b
        .counts
        .iter()
        .fold(0u64, |s, c| s.saturating_add(c.deleted));
    rows.push(vec![
        "total".into(),
        live_objects(b).to_string(),
        deleted.to_string(),
    ]);
    table(&["KIND", "LIVE", "DELETED"], &rows);
}

/// A list of backups, one line each.
pub fn print_backups(g: &GlobalArgs, backups: &[v1::Backup]) {
    if g.output == OutputFormat::Json {
        print_json(&Value::Array(backups.iter().map(backup_json).collect()));
        return;
    }
    let rows: Vec<Vec<String>> = backups
        .iter()
        .map(|b| {
            vec![
                b.id.clone(),
                rfc3339_ms(b.created_at_ms),
                trigger_name(b.trigger).to_string(),
                b.sequence.to_string(),
                live_objects(b).to_string(),
                if b.pinned { "yes" } else { "" }.to_string(),
                expiry(b),
                b.description.clone(),
            ]
        })
        .collect();
    table(
        &[
            "ID",
            "CREATED",
            "TRIGGER",
            "SEQUENCE",
            "OBJECTS",
            "PINNED",
            "EXPIRES",
            "DESCRIPTION",
        ],
        &rows,
    );
    outln!("{} backups", backups.len());
}

/// A verification report for scripts.
pub fn verification_json(v: &v1::VerifyBackupResponse) -> Value {
    json!({
        "ok": v.ok,
        "backup": v.backup.as_ref().map_or(Value::Null, backup_json),
        "checks": v.checks.iter().map(|c| json!({
            "source": c.source,
            "digest": c.digest,
            "objects": c.objects,
        })).collect::<Vec<_>>(),
        "mismatchedIds": v.mismatched_ids,
        "message": v.message,
        "eventsReplayed": v.events_replayed,
        "elapsedMs": v.elapsed_ms,
    })
}

/// The verdict, each digest check, and what differed.
pub fn print_verification(g: &GlobalArgs, v: &v1::VerifyBackupResponse) {
    if g.output == OutputFormat::Json {
        print_json(&verification_json(v));
        return;
    }
    let verdict = if v.ok { "ok" } else { "FAILED" };
    match &v.backup {
        Some(b) => outln!("backup {} (sequence {}): {verdict}", b.id, b.sequence),
        None => outln!("backup: {verdict}"),
    }
    let rows: Vec<Vec<String>> = v
        .checks
        .iter()
        .map(|c| vec![c.source.clone(), c.digest.clone(), c.objects.to_string()])
        .collect();
    table(&["SOURCE", "DIGEST", "OBJECTS"], &rows);
    if !v.mismatched_ids.is_empty() {
        outln!("mismatched objects: {}", v.mismatched_ids.join(", "));
    }
    if !v.message.is_empty() {
        outln!("{}", v.message);
    }
    outln!(
        "replayed {} events in {:.1}s",
        v.events_replayed,
        v.elapsed_ms as f64 / 1000.0
    );
}

/// A policy for scripts: `{tenant, schedule, retentionDays, keepDaily, keepWeekly,
/// keepMonthly, setAt, defaultSince}` (`setAt` null for the deployment's default policy;
/// `defaultSince` then says since when the default has been what it is, when known).
pub fn policy_json(p: &v1::BackupPolicy) -> Value {
    json!({
        "tenant": p.tenant,
        "schedule": p.schedule,
        "retentionDays": p.retention_days,
        "keepDaily": p.keep_daily,
        "keepWeekly": p.keep_weekly,
        "keepMonthly": p.keep_monthly,
        "setAt": (p.updated_at_ms > 0).then(|| rfc3339_ms(p.updated_at_ms)),
        "defaultSince": (p.default_since_ms > 0).then(|| rfc3339_ms(p.default_since_ms)),
    })
}

/// The backup policy, one setting per line.
pub fn print_policy(g: &GlobalArgs, p: &v1::BackupPolicy, verb: &str) {
    if g.output == OutputFormat::Json {
        print_json(&policy_json(p));
        return;
    }
    if !verb.is_empty() {
        outln!("{verb} the backup policy of {}", p.tenant);
    }
    let schedule = if p.schedule.is_empty() {
        "off (no scheduled backups)".to_string()
    } else {
        format!("{} (UTC)", p.schedule)
    };
    let rows = vec![
        vec!["schedule".into(), schedule],
        vec!["retention days".into(), p.retention_days.to_string()],
        vec!["keep daily".into(), p.keep_daily.to_string()],
        vec!["keep weekly".into(), p.keep_weekly.to_string()],
        vec!["keep monthly".into(), p.keep_monthly.to_string()],
        vec![
            "set".into(),
            if p.updated_at_ms > 0 {
                rfc3339_ms(p.updated_at_ms)
            } else if p.default_since_ms > 0 {
                format!(
                    "never (the deployment's default, unchanged since {})",
                    rfc3339_ms(p.default_since_ms)
                )
            } else {
                "never (the deployment's default)".into()
            },
        ],
    ];
    table(&["SETTING", "VALUE"], &rows);
}

#[cfg(test)]
mod tests {
    use super::*;

    fn backup() -> v1::Backup {
        v1::Backup {
            id: "0193a0f2-7c1e-7d2a-9b3c-4d5e6f708192".into(),
            tenant: "contoso".into(),
            stream: "BT_EVENTS".into(),
            sequence: 1234,
            created_at_ms: 1_795_323_600_000,
            trigger: v1::BackupTrigger::OnDemand.into(),
            description: "before the migration".into(),
            requested_by: "admin".into(),
            counts: vec![
                v1::KindCount {
                    kind: "user".into(),
                    live: 500,
                    deleted: 3,
                },
                v1::KindCount {
                    kind: "group".into(),
                    live: 40,
                    deleted: 0,
                },
            ],
            digest: "abc123".into(),
            expires_at_ms: 0,
            pinned: false,
            expired: false,
            manifest_sequence: 7,
        }
    }

    #[test]
    fn backup_json_has_the_documented_shape() {
        assert_eq!(
            backup_json(&backup()),
            json!({
                "id": "0193a0f2-7c1e-7d2a-9b3c-4d5e6f708192",
                "sequence": 1234,
                "createdAt": "2026-11-22T05:00:00.000Z",
                "trigger": "onDemand",
                "description": "before the migration",
                "counts": {"user": {"live": 500, "deleted": 3}, "group": {"live": 40, "deleted": 0}},
                "digest": "abc123",
                "tenant": "contoso",
                "stream": "BT_EVENTS",
                "pinned": false,
                "expired": false,
                "expiresAt": null,
                "requestedBy": "admin",
            })
        );
    }

    #[test]
    fn triggers_have_camel_case_names() {
        let name = |t: v1::BackupTrigger| trigger_name(t.into());
        assert_eq!(name(v1::BackupTrigger::Scheduled), "scheduled");
        assert_eq!(name(v1::BackupTrigger::PreRecovery), "preRecovery");
        assert_eq!(name(v1::BackupTrigger::Baseline), "baseline");
        assert_eq!(trigger_name(99), "unspecified");
    }

    #[test]
    fn expiry_in_words() {
        let mut b = backup();
        assert_eq!(expiry(&b), "never");
        b.expires_at_ms = 1_795_323_600_000;
        assert_eq!(expiry(&b), "2026-11-22T05:00:00.000Z");
        assert_eq!(
            backup_json(&b)["expiresAt"],
            json!("2026-11-22T05:00:00.000Z")
        );
        b.expired = true;
        assert_eq!(expiry(&b), "expired");
        b.pinned = true;
        assert_eq!(expiry(&b), "never (pinned)");
        assert_eq!(live_objects(&b), 540);
    }
}
