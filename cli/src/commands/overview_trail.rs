//! The audit trail's own alerts as `overview` health lines (backups turned off, alerts
//! silenced, a GlobalAdministrator token issued, refused calls — for a caller of every
//! tenant also those of callers without a valid token), each with what to run,
//! and marked resolved when what it is about was put right since: the token it names
//! revoked after it (a `token.revoked` record of the tenant), scheduled backups on again,
//! backups kept as long as before the change that shortened them (the tenant's backup
//! policy now, against the change's own record), nothing the alert policy change silenced
//! still silenced (the tenant's alert policy now). Nothing is called resolved on a guess:
//! a token revoked for every tenant (recorded under the deployment), a policy that cannot
//! be read, a threshold left to the deployment's default, or a finding the trail cannot
//! settle stays open.

use std::collections::HashMap;

use backtrack_domain::alerts::{shell_word, Severity};
use backtrack_domain::time::rfc3339_ms;
use backtrack_platform::audit::UNAUTHENTICATED_TENANT;
use backtrack_proto::v1;
use serde_json::Value;

use super::overview_view::Health;
use super::token::unverified_claims;
use crate::client::Connection;

/// What would settle a trail finding.
#[derive(Debug, Clone, PartialEq)]
enum Settles {
    /// The token it names revoked after it.
    TokenRevoked(String),
    /// Scheduled backups on again.
    BackupsOn,
    /// The policy change of this record (its id) undone in the policy now.
    PolicyChange(String),
    Nothing,
}

/// One trail finding, with what would settle it and its time.
#[derive(Debug, Clone)]
struct Trail {
    health: Health,
    settles: Settles,
    time_ms: i64,
}

/// The tenant's policies now, as far as they could be read, and whether the caller's
/// token grants every tenant (then the refusals of callers without a valid token, kept
/// under `_unauthenticated`, are shown too; another caller asking would itself be refused).
pub(super) struct Policies<'a> {
    pub(super) backup: Option<&'a v1::BackupPolicy>,
    pub(super) alerts: Option<&'a v1::AlertPolicy>,
    pub(super) every_tenant: bool,
}

/// Whether `token` (a JWT, read, not verified: the server decides) grants every tenant.
pub(super) fn grants_every_tenant(token: &str) -> bool {
    unverified_claims(token).is_some_and(|c| {
        c["tenants"]
            .as_array()
            .is_some_and(|t| t.iter().any(|t| t == "*"))
    })
}

/// The trail's own alerts of `tenant` since `since_ms`, as health lines, judged against
/// the tenant's policies now. A trail that cannot be read gives none.
pub(super) async fn findings(
    connection: &Connection,
    tenant: &str,
    since_ms: i64,
    now: Policies<'_>,
) -> Vec<Health> {
    let query = |action: &str| v1::QueryAuditRequest {
        tenant: tenant.to_string(),
        since_ms,
        action: action.into(),
        page_size: 1000,
        ..Default::default()
    };
    let Ok(raised) = connection.audit().query_audit(query("alert.raised")).await else {
        return Vec::new();
    };
    let mut trail = trail_findings(tenant, &raised.into_inner().entries);
    if now.every_tenant {
        let anonymous = v1::QueryAuditRequest {
            tenant: UNAUTHENTICATED_TENANT.into(),
            ..query("alert.raised")
        };
        if let Ok(r) = connection.audit().query_audit(anonymous).await {
            for mut t in trail_findings(UNAUTHENTICATED_TENANT, &r.into_inner().entries) {
                t.health.what = format!("[{UNAUTHENTICATED_TENANT}] {}", t.health.what);
                trail.push(t);
            }
        }
    }
    let revoked = match trail
        .iter()
        .any(|t| matches!(t.settles, Settles::TokenRevoked(_)))
    {
        true => connection
            .audit()
            .query_audit(query("token.revoked"))
            .await
            .map(|r| revocations(&r.into_inner().entries))
            .unwrap_or_default(),
        false => HashMap::new(),
    };
    let mut changes = HashMap::new();
    if trail
        .iter()
        .any(|t| matches!(t.settles, Settles::PolicyChange(_)))
    {
        for action in [
            "configuration.backupPolicyChanged",
            "configuration.alertPolicyChanged",
        ] {
            if let Ok(r) = connection.audit().query_audit(query(action)).await {
                changes.extend(policy_changes(&r.into_inner().entries));
            }
        }
    }
    let seen = Seen {
        revoked,
        changes,
        now,
    };
    let mut health: Vec<Health> = trail
        .into_iter()
        .map(|t| Health {
            resolved: seen.settle(&t),
            ..t.health
        })
        .collect();
    // What is still open first (the sort is stable: oldest first otherwise).
    health.sort_by_key(|h| h.resolved.is_some());
    health
}

/// What the trail and the policies show now, to settle findings against.
struct Seen<'a> {
    /// Revoked tokens: when and by whom.
    revoked: HashMap<String, (i64, String)>,
    /// Policy changes by record id: before and after.
    changes: HashMap<String, (Value, Value)>,
    now: Policies<'a>,
}

impl Seen<'_> {
    /// What put `t` right since, if anything did.
    fn settle(&self, t: &Trail) -> Option<String> {
        match &t.settles {
            Settles::TokenRevoked(token) => {
                let (at, by) = self.revoked.get(token).filter(|(at, _)| *at >= t.time_ms)?;
                Some(format!(
                    "token {token} revoked by {by} at {}",
                    rfc3339_ms(*at)
                ))
            }
            Settles::BackupsOn => {
                let schedule = self.now.backup?.schedule.as_str();
                (!schedule.trim().is_empty())
                    .then(|| format!("scheduled backups are on again (\"{schedule}\")"))
            }
            Settles::PolicyChange(id) => {
                let (before, after) = self.changes.get(id)?;
                match t.health.rule {
                    "backupRetentionShortened" => retention_back(before, self.now.backup?),
                    "alertsSilenced" => unsilenced(before, after, self.now.alerts?),
                    _ => None,
                }
            }
            Settles::Nothing => None,
        }
    }
}

/// Each policy change among `entries` by its record id: the policy before and after.
fn policy_changes(entries: &[v1::AuditEntry]) -> HashMap<String, (Value, Value)> {
    let parse = |text: &str| serde_json::from_str(text).unwrap_or(Value::Null);
    entries
        .iter()
        .filter_map(|e| {
            let r = e.record.as_ref()?;
            Some((r.id.clone(), (parse(&r.before_json), parse(&r.after_json))))
        })
        .collect()
}

/// Settled when backups are kept at least as long as before the change (`before`).
fn retention_back(before: &Value, now: &v1::BackupPolicy) -> Option<String> {
    let was = before["retentionDays"].as_u64()?;
    (u64::from(now.retention_days) >= was)
        .then(|| format!("backups are kept {} days again", now.retention_days))
}

/// Settled when the alert policy now silences nothing the change (`before` → `after`)
/// silenced: no rule it turned off still off, no actor it quieted still quiet, no
/// threshold it raised above what it was, no window it shortened below what it was. A
/// value left to the deployment's default (0) is not judged settled.
fn unsilenced(before: &Value, after: &Value, now: &v1::AlertPolicy) -> Option<String> {
    let list = |v: &Value, name: &str| -> Vec<String> {
        v[name]
            .as_array()
            .map(|a| {
                a.iter()
                    .filter_map(|x| x.as_str().map(str::to_string))
                    .collect()
            })
            .unwrap_or_default()
    };
    for (name, current) in [
        ("disabledRules", &now.disabled_rules),
        ("quietActors", &now.quiet_actors),
    ] {
        let was = list(before, name);
        let added = list(after, name).into_iter().filter(|x| !was.contains(x));
        if added.into_iter().any(|x| current.contains(&x)) {
            return None;
        }
    }
    let number = |v: &Value, name: &str| v[name].as_u64().unwrap_or(0);
    for (name, current) in [
        ("massDeletions", now.mass_deletions),
        ("massLinkRemovals", now.mass_link_removals),
    ] {
        let (was, then) = (number(before, name), number(after, name));
        let current = u64::from(current);
        if was > 0 && then > was && !(current > 0 && current <= was) {
            return None;
        }
    }
    let (was, then) = (
        number(before, "windowMinutes"),
        number(after, "windowMinutes"),
    );
    if was > 0 && then > 0 && then < was && u64::from(now.window_minutes) < was {
        return None;
    }
    Some("the alert policy no longer silences what this change did".into())
}

/// Each revoked token among `entries` (`token.revoked` records): when and by whom.
fn revocations(entries: &[v1::AuditEntry]) -> HashMap<String, (i64, String)> {
    entries
        .iter()
        .filter_map(|e| {
            let r = e.record.as_ref()?;
            let token = r.target.as_ref().filter(|t| t.kind == "token")?.id.clone();
            let by = r
                .actor
                .as_ref()
                .map_or(String::new(), |a| a.subject.clone());
            Some((token, (r.time_ms, by)))
        })
        .collect()
}

/// The health lines of the audit trail's own alerts among `entries` (oldest first, as the
/// audit service pages), each with who, when, and what to run, and what would settle it.
fn trail_findings(tenant: &str, entries: &[v1::AuditEntry]) -> Vec<Trail> {
    entries
        .iter()
        .filter_map(|e| {
            let record = e.record.as_ref()?;
            let details: serde_json::Value = serde_json::from_str(&record.details_json).ok()?;
            let rule = details["rule"].as_str()?;
            let rule = *backtrack_audit::alerting::RULES.iter().find(|r| **r == rule)?;
            let severity = match details["severity"].as_str() {
                Some("critical") => Severity::Critical,
                Some("high") => Severity::High,
                _ => Severity::Medium,
            };
            let actor = record.actor.as_ref().map_or("", |a| a.subject.as_str());
            let by = match actor {
                "" => String::new(),
                actor => format!("by {actor} "),
            };
            let what = format!(
                "{} ({by}at {})",
                details["what"].as_str().unwrap_or_default(),
                rfc3339_ms(record.time_ms)
            );
            let refusals =
                format!("backtrack audit query --tenant {tenant} --action security.accessDenied");
            let fix = match rule {
                "backupsTurnedOff" | "backupRetentionShortened" => format!(
                    "backtrack backup policy get --tenant {tenant}; set it back with backtrack backup policy set"
                ),
                "alertsSilenced" => format!(
                    "backtrack alerts policy get --tenant {tenant}; set it back with backtrack alerts policy set"
                ),
                // Many callers, or none known: the refusals themselves are the lead.
                "accessDeniedSurge" | "accessDeniedFlood" => refusals,
                "accessDeniedBurst" if actor.is_empty() => refusals,
                "accessDeniedBurst" => {
                    let token = match details["tokenId"].as_str() {
                        Some(token) => format!(
                            "if the token is not to be used so: backtrack token revoke {token}"
                        ),
                        None => format!(
                            "if the token is not to be used so, backtrack token list --tenant {tenant} shows {actor}'s tokens, backtrack token revoke <id> ends one"
                        ),
                    };
                    format!("{refusals} --actor {}; {token}", shell_word(actor))
                }
                // privilegedTokenIssued: the alert's target is the token issued.
                _ => match record.target.as_ref().filter(|t| t.kind == "token") {
                    Some(t) => format!(
                        "backtrack token list --tenant {tenant} shows it; backtrack token revoke {} if it was not expected",
                        t.id
                    ),
                    None => format!(
                        "backtrack token list --tenant {tenant}; backtrack token revoke <id> if it was not expected"
                    ),
                },
            };
            let token = match rule {
                "accessDeniedBurst" => details["tokenId"].as_str().map(str::to_string),
                "privilegedTokenIssued" => record
                    .target
                    .as_ref()
                    .filter(|t| t.kind == "token")
                    .map(|t| t.id.clone()),
                _ => None,
            };
            let trigger = details["recordId"].as_str().map(str::to_string);
            let settles = match (rule, token, trigger) {
                (_, Some(token), _) => Settles::TokenRevoked(token),
                ("backupsTurnedOff", None, _) => Settles::BackupsOn,
                ("backupRetentionShortened" | "alertsSilenced", None, Some(id)) => {
                    Settles::PolicyChange(id)
                }
                _ => Settles::Nothing,
            };
            Some(Trail {
                health: Health {
                    severity,
                    rule,
                    what,
                    fix,
                    resolved: None,
                },
                settles,
                time_ms: record.time_ms,
            })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use backtrack_domain::alerts::Severity;
    use backtrack_proto::v1;

    use serde_json::json;

    use super::{
        grants_every_tenant, retention_back, revocations, trail_findings, unsilenced, Settles,
    };

    #[test]
    fn only_the_trails_own_alerts_become_findings() {
        let entry = |rule: &str, severity: &str| {
            v1::AuditEntry {
            record: Some(v1::AuditRecord {
                action: "alert.raised".into(),
                time_ms: 1_796_644_800_000,
                actor: Some(v1::AuditActor {
                    subject: "eve".into(),
                    ..Default::default()
                }),
                details_json: serde_json::json!({"rule": rule, "severity": severity, "what": "scheduled backups turned off"}).to_string(),
                ..Default::default()
            }),
            ..Default::default()
        }
        };
        // The directory's alerts are on the screen already, from the log: not twice.
        let found = trail_findings(
            "contoso",
            &[
                entry("caPolicyDeleted", "critical"),
                entry("backupsTurnedOff", "high"),
            ],
        );
        assert_eq!(found.len(), 1);
        assert_eq!(found[0].health.rule, "backupsTurnedOff");
        assert_eq!(found[0].health.severity, Severity::High);
        assert_eq!(
            found[0].health.what,
            "scheduled backups turned off (by eve at 2026-12-07T12:00:00.000Z)"
        );
        assert!(found[0]
            .health
            .fix
            .starts_with("backtrack backup policy get --tenant contoso"));
        let mut named = entry("accessDeniedBurst", "high");
        if let Some(r) = named.record.as_mut() {
            r.details_json = serde_json::json!({"rule": "accessDeniedBurst", "severity": "high", "what": "…", "tokenId": "t-1"}).to_string();
        }
        let with_token = trail_findings("contoso", &[named]);
        assert!(
            with_token[0]
                .health
                .fix
                .ends_with("if the token is not to be used so: backtrack token revoke t-1"),
            "{}",
            with_token[0].health.fix
        );
        // A GlobalAdministrator token issued: the alert's target is that token.
        let mut issued = entry("privilegedTokenIssued", "medium");
        if let Some(r) = issued.record.as_mut() {
            r.target = Some(v1::AuditTarget {
                kind: "token".into(),
                id: "t-7".into(),
                display_name: "eve".into(),
            });
        }
        assert_eq!(
            trail_findings("contoso", &[issued])[0].health.fix,
            "backtrack token list --tenant contoso shows it; backtrack token revoke t-7 if it was not expected"
        );
        let surge = trail_findings("contoso", &[entry("accessDeniedSurge", "high")]);
        assert_eq!(
            surge[0].health.fix,
            "backtrack audit query --tenant contoso --action security.accessDenied"
        );
        let burst = trail_findings("contoso", &[entry("accessDeniedBurst", "high")]);
        assert_eq!(
            burst[0].health.fix,
            "backtrack audit query --tenant contoso --action security.accessDenied --actor eve; \
             if the token is not to be used so, backtrack token list --tenant contoso shows \
             eve's tokens, backtrack token revoke <id> ends one"
        );
    }

    #[test]
    fn what_settles_a_finding_is_its_token_or_the_schedule() {
        let entry = |rule: &str, token: Option<&str>| {
            v1::AuditEntry {
            record: Some(v1::AuditRecord {
                action: "alert.raised".into(),
                details_json: serde_json::json!({"rule": rule, "severity": "high", "what": "…", "tokenId": token}).to_string(),
                ..Default::default()
            }),
            ..Default::default()
        }
        };
        let settles: Vec<Settles> = trail_findings(
            "contoso",
            &[
                entry("accessDeniedBurst", Some("t-1")),
                entry("accessDeniedBurst", None),
                entry("backupsTurnedOff", None),
                entry("alertsSilenced", None),
            ],
        )
        .into_iter()
        .map(|t| t.settles)
        .collect();
        assert_eq!(
            settles,
            [
                Settles::TokenRevoked("t-1".into()),
                Settles::Nothing,
                Settles::BackupsOn,
                Settles::Nothing
            ]
        );
        let revoked = v1::AuditEntry {
            record: Some(v1::AuditRecord {
                action: "token.revoked".into(),
                time_ms: 7,
                actor: Some(v1::AuditActor {
                    subject: "admin".into(),
                    ..Default::default()
                }),
                target: Some(v1::AuditTarget {
                    kind: "token".into(),
                    id: "t-1".into(),
                    display_name: "eve".into(),
                }),
                ..Default::default()
            }),
            ..Default::default()
        };
        assert_eq!(revocations(&[revoked])["t-1"], (7, "admin".to_string()));
    }

    #[test]
    fn a_policy_change_is_settled_only_when_the_policy_now_undoes_all_of_it() {
        let before = json!({"retentionDays": 30});
        let policy = |days| v1::BackupPolicy {
            retention_days: days,
            ..Default::default()
        };
        assert_eq!(
            retention_back(&before, &policy(30)).as_deref(),
            Some("backups are kept 30 days again")
        );
        assert!(retention_back(&before, &policy(29)).is_none());
        assert!(retention_back(&json!({}), &policy(30)).is_none());

        let before = json!({"disabledRules": ["roleAssigned"], "quietActors": [], "massDeletions": 20, "windowMinutes": 60});
        let after = json!({"disabledRules": ["roleAssigned", "caPolicyDeleted"], "quietActors": ["svc"], "massDeletions": 500, "windowMinutes": 5});
        let now = v1::AlertPolicy {
            disabled_rules: vec!["roleAssigned".into()],
            quiet_actors: vec![],
            mass_deletions: 20,
            window_minutes: 60,
            ..Default::default()
        };
        // All of it undone (a rule off before the change may stay off).
        assert!(unsilenced(&before, &after, &now).is_some());
        // Any one part still in place: not settled.
        let still = |change: &dyn Fn(&mut v1::AlertPolicy)| {
            let mut p = now.clone();
            change(&mut p);
            unsilenced(&before, &after, &p)
        };
        assert!(still(&|p| p.disabled_rules.push("caPolicyDeleted".into())).is_none());
        assert!(still(&|p| p.quiet_actors.push("svc".into())).is_none());
        assert!(still(&|p| p.mass_deletions = 21).is_none());
        // Left to the deployment's default: not known to be back.
        assert!(still(&|p| p.mass_deletions = 0).is_none());
        assert!(still(&|p| p.window_minutes = 59).is_none());
    }

    #[test]
    fn a_token_of_every_tenant_is_told_from_its_claims() {
        use base64::Engine as _;
        let jwt = |claims: serde_json::Value| {
            let part = |v: &[u8]| base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(v);
            format!(
                "{}.{}.sig",
                part(b"{}"),
                part(claims.to_string().as_bytes())
            )
        };
        assert!(grants_every_tenant(&jwt(json!({"tenants": ["*"]}))));
        assert!(!grants_every_tenant(&jwt(json!({"tenants": ["contoso"]}))));
        assert!(!grants_every_tenant(&jwt(json!({}))));
        assert!(!grants_every_tenant("not-a-token"));
    }
}
