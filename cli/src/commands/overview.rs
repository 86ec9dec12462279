//! `backtrack overview`: one screen of a tenant, for the administrator who wants to know
//! at once whether something is wrong: its size and log position, its backups and
//! schedule, its reports and recoveries (running, waiting for approval, the last one),
//! and alerts on the changes since a point ([`backtrack_domain::alerts`]), each with the
//! dry run that would undo it. Each part is asked of its own service; a part the caller's
//! role may not see, or a service that does not answer, says so and the rest still shows.

use std::collections::BTreeMap;

use backtrack_domain::alerts::{shell_word, Alert, Severity, Thresholds, Watch};
use backtrack_domain::time::rfc3339_ms;
use backtrack_domain::ObjectKind;
use backtrack_proto::convert::event_from_proto;
use backtrack_proto::v1;

use super::diff_names::{assignment_names, names_at, Names};
use super::events::Start;
use super::overview_view::{Health, View};
use crate::args::{GlobalArgs, OutputFormat, OverviewArgs};
use crate::client::{connect_channel, Client};
use crate::output::print_json;

/// Alerts listed in a table at most (`--output json` has them all).
pub(super) const SHOWN_ALERTS: usize = 50;

pub async fn run(g: &GlobalArgs, a: OverviewArgs) -> anyhow::Result<()> {
    let connection = connect_channel(g).await?;
    let tenant = a.tenant.as_str();
    // The alerts come first: a bad --since is the caller's mistake, not a missing part.
    let start = Start::after(&connection, tenant, &a.since).await?;
    // The tenant's alert policy, as the alerter applies it (none when it cannot be read).
    let alert_policy = connection
        .backup()
        .get_alert_policy(v1::AlertPolicyRequest {
            tenant: tenant.to_string(),
        })
        .await
        .map(|r| r.into_inner())
        .unwrap_or_default();
    let own = |n: u32, default: usize| if n == 0 { default } else { n as usize };
    let defaults = Thresholds::default();
    let thresholds = Thresholds {
        deletions: a
            .mass_deletions
            .unwrap_or_else(|| own(alert_policy.mass_deletions, defaults.deletions))
            .max(1),
        link_removals: a
            .mass_link_removals
            .unwrap_or_else(|| own(alert_policy.mass_link_removals, defaults.link_removals))
            .max(1),
    };
    let request = v1::WatchEventsRequest {
        tenant: tenant.to_string(),
        from_sequence: start.from_sequence,
        from_start: start.from_start,
        until_now: true,
        after_time_ms: start.after_time_ms,
        ..Default::default()
    };
    let watched = watch(&mut connection.directory(), request, &thresholds)
        .await
        .map(|mut w| {
            w.alerts = as_the_tenant_wants(w.alerts, &alert_policy);
            w
        });
    let status = connection
        .directory()
        .status(v1::StatusRequest {
            tenant: tenant.to_string(),
        })
        .await
        .map(|r| r.into_inner());
    let backups = connection
        .backup()
        .list_backups(v1::ListBackupsRequest {
            tenant: tenant.to_string(),
            // Expired ones too: a schedule's last slots may be older than the retention.
            all: true,
        })
        .await
        .map(|r| r.into_inner().backups);
    let created_ms = connection
        .directory()
        .list_tenants(v1::ListTenantsRequest::default())
        .await
        .ok()
        .and_then(|r| {
            let tenants = r.into_inner().tenants;
            tenants.into_iter().find(|t| t.id == tenant)
        })
        .map(|t| t.created_at_ms);
    let policy = connection
        .backup()
        .get_backup_policy(v1::BackupPolicyRequest {
            tenant: tenant.to_string(),
        })
        .await
        .map(|r| r.into_inner());
    let reports = connection
        .diff()
        .list_reports(v1::ListReportsRequest {
            tenant: tenant.to_string(),
        })
        .await
        .map(|r| r.into_inner().reports);
    let recoveries = connection
        .recovery()
        .list_recoveries(v1::ListRecoveriesRequest {
            tenant: tenant.to_string(),
        })
        .await
        .map(|r| r.into_inner().jobs);
    let view = View {
        tenant,
        status: status.map_err(|e| e.message().to_string()),
        backups: backups.map_err(|e| e.message().to_string()),
        policy: policy.map_err(|e| e.message().to_string()),
        reports: reports.map_err(|e| e.message().to_string()),
        recoveries: recoveries.map_err(|e| e.message().to_string()),
        watched: watched.map_err(|e| e.to_string()),
        since: a.since.clone(),
        health: Vec::new(),
        names: Names::new(),
    };
    // Each alerted object's name as it was just before the change (a deleted or purged
    // one included), a role assignment's as `<role> → <principal>` when it was made: the
    // screen is read by people.
    let (mut wanted, mut assignments) = (BTreeMap::new(), BTreeMap::new());
    if let Ok(w) = &view.watched {
        for a in w.alerts.iter().take(SHOWN_ALERTS) {
            let Some(o) = &a.object else { continue };
            if o.kind == ObjectKind::RoleAssignment.as_str() {
                assignments.insert(o.id.clone(), a.sequence);
            } else {
                wanted.insert(o.id.clone(), a.sequence.saturating_sub(1));
            }
        }
    }
    // The audit trail's own alerts since then (backups turned off, alerts silenced, ...):
    // findings about the protection, listed with the health lines. The trail knows times,
    // not the log's sequences: `seq:N` is the time of its event.
    let since_ms = match start.point_time_ms {
        0 if start.from_sequence > 1 => connection
            .time_travel()
            .resolve_point(v1::ResolvePointRequest {
                tenant: tenant.to_string(),
                at: Some(v1::Point {
                    point: Some(v1::point::Point::Sequence(start.from_sequence - 1)),
                }),
            })
            .await
            .map_or(0, |r| r.into_inner().time_ms),
        ms => ms,
    };
    let trail = connection
        .audit()
        .query_audit(v1::QueryAuditRequest {
            tenant: tenant.to_string(),
            since_ms,
            action: "alert.raised".into(),
            page_size: 1000,
            ..Default::default()
        })
        .await
        .map(|r| trail_findings(tenant, &r.into_inner().entries))
        .unwrap_or_default();
    let mut health = view.health(created_ms, chrono::Utc::now().timestamp_millis());
    health.extend(trail);
    let mut names = names_at(g, tenant, wanted).await;
    let mut watched = view.watched;
    for (id, (label, assigned)) in assignment_names(g, tenant, assignments).await {
        // The rules saw ids only: the alert says it with the names too.
        if let Ok(w) = &mut watched {
            let about = |a: &&mut Alert| a.object.as_ref().is_some_and(|o| o.id == id);
            for a in w.alerts.iter_mut().filter(about) {
                a.what = assigned.clone();
            }
        }
        names.insert(id, label);
    }
    let view = View {
        health,
        names,
        watched,
        ..view
    };
    match g.output {
        OutputFormat::Json => print_json(&view.json()),
        OutputFormat::Table => view.print(),
    }
    Ok(())
}

/// The health lines of the audit trail's own alerts among `entries` (oldest first, as the
/// audit service pages), each with who, when, and what to run.
fn trail_findings(tenant: &str, entries: &[v1::AuditEntry]) -> Vec<Health> {
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
            let what = format!(
                "{} (by {actor} at {})",
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
            Some(Health {
                severity,
                rule,
                what,
                fix,
            })
        })
        .collect()
}

/// The alerts the tenant's alert policy keeps: none of a disabled rule, and no mass alert
/// about a quiet actor (whose other alerts stand).
fn as_the_tenant_wants(alerts: Vec<Alert>, policy: &v1::AlertPolicy) -> Vec<Alert> {
    alerts
        .into_iter()
        .filter(|a| !policy.disabled_rules.iter().any(|r| r == a.rule))
        .filter(|a| a.object.is_some() || !policy.quiet_actors.contains(&a.actor))
        .collect()
}

/// The events a feed read handed over, and their alerts.
pub struct Watched {
    pub events: u64,
    /// The last event's sequence, time and actor.
    pub last: Option<(u64, i64, String)>,
    pub alerts: Vec<Alert>,
}

/// Reads the feed as `request` asks (with `until_now`, to the tenant's last event) and
/// runs the alert rules over what it read.
pub async fn watch(
    client: &mut Client,
    request: v1::WatchEventsRequest,
    thresholds: &Thresholds,
) -> anyhow::Result<Watched> {
    let mut stream = client.watch_events(request).await?.into_inner();
    // Event by event: a long window holds no events, only the alerts and tallies.
    let mut watch = Watch::new(*thresholds);
    let (mut events, mut last) = (0u64, None);
    while let Some(envelope) = stream.message().await? {
        if let Some(event) = envelope.event {
            let event = event_from_proto(event)?;
            watch.push(envelope.sequence, &event);
            events += 1;
            last = Some((envelope.sequence, event.meta.time_ms, event.meta.actor));
        }
    }
    Ok(Watched {
        events,
        last,
        alerts: watch.finish(),
    })
}

#[cfg(test)]
mod tests {

    use backtrack_proto::v1;

    use backtrack_domain::alerts::{Alert, AlertObject, Severity};

    use super::as_the_tenant_wants;

    #[test]
    fn the_tenants_policy_drops_disabled_rules_and_quiet_actors_mass_alerts() {
        let alert = |rule: &'static str, actor: &str, object: bool| Alert {
            severity: Severity::High,
            rule,
            actor: actor.into(),
            sequence: 1,
            time_ms: 0,
            event_id: String::new(),
            object: object.then(|| AlertObject {
                kind: "conditionalAccessPolicy".into(),
                id: "p1".into(),
            }),
            what: String::new(),
            undone: None,
        };
        let policy = v1::AlertPolicy {
            disabled_rules: vec!["roleAssigned".into()],
            quiet_actors: vec!["svc-sync".into()],
            ..Default::default()
        };
        let kept = as_the_tenant_wants(
            vec![
                alert("roleAssigned", "mallory", true),
                alert("massDeletion", "svc-sync", false),
                alert("caPolicyDeleted", "svc-sync", true),
                alert("massDeletion", "mallory", false),
            ],
            &policy,
        );
        let kept: Vec<(&str, &str)> = kept.iter().map(|a| (a.rule, a.actor.as_str())).collect();
        assert_eq!(
            kept,
            [("caPolicyDeleted", "svc-sync"), ("massDeletion", "mallory")]
        );
    }

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
        let found = super::trail_findings(
            "contoso",
            &[
                entry("caPolicyDeleted", "critical"),
                entry("backupsTurnedOff", "high"),
            ],
        );
        assert_eq!(found.len(), 1);
        assert_eq!(found[0].rule, "backupsTurnedOff");
        assert_eq!(found[0].severity, Severity::High);
        assert_eq!(
            found[0].what,
            "scheduled backups turned off (by eve at 2026-12-07T12:00:00.000Z)"
        );
        assert!(found[0]
            .fix
            .starts_with("backtrack backup policy get --tenant contoso"));
        let mut named = entry("accessDeniedBurst", "high");
        if let Some(r) = named.record.as_mut() {
            r.details_json = serde_json::json!({"rule": "accessDeniedBurst", "severity": "high", "what": "…", "tokenId": "t-1"}).to_string();
        }
        let with_token = super::trail_findings("contoso", &[named]);
        assert!(
            with_token[0]
                .fix
                .ends_with("if the token is not to be used so: backtrack token revoke t-1"),
            "{}",
            with_token[0].fix
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
            super::trail_findings("contoso", &[issued])[0].fix,
            "backtrack token list --tenant contoso shows it; backtrack token revoke t-7 if it was not expected"
        );
        let surge = super::trail_findings("contoso", &[entry("accessDeniedSurge", "high")]);
        assert_eq!(
            surge[0].fix,
            "backtrack audit query --tenant contoso --action security.accessDenied"
        );
        let burst = super::trail_findings("contoso", &[entry("accessDeniedBurst", "high")]);
        assert_eq!(
            burst[0].fix,
            "backtrack audit query --tenant contoso --action security.accessDenied --actor eve; \
             if the token is not to be used so, backtrack token list --tenant contoso shows \
             eve's tokens, backtrack token revoke <id> ends one"
        );
    }
}
