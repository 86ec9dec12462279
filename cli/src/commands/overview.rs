//! `backtrack overview`: one screen of a tenant, for the administrator who wants to know
//! at once whether something is wrong: its size and log position, its backups and
//! schedule, its reports and recoveries (running, waiting for approval, the last one),
//! and alerts on the changes since a point ([`backtrack_domain::alerts`]), each with the
//! dry run that would undo it. Each part is asked of its own service; a part the caller's
//! role may not see, or a service that does not answer, says so and the rest still shows.

use backtrack_domain::alerts::{Alert, Severity, Thresholds, Watch};
use backtrack_domain::time::rfc3339_ms;
use backtrack_proto::convert::event_from_proto;
use backtrack_proto::v1;
use backtrack_snapshotter::policy::Policy;
use serde_json::{json, Value};

use super::diff_names::{names_at, Names};
use super::events::Start;
use super::{diff_view, missed_backups, recovery_view};
use crate::args::{GlobalArgs, OutputFormat, OverviewArgs};
use crate::client::{connect_channel, Client};
use crate::output::{outln, print_json, table};

/// Alerts listed in a table at most (`--output json` has them all).
const SHOWN_ALERTS: usize = 50;

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
    // one included): the screen is read by people.
    let wanted = view.watched.as_ref().map_or_else(
        |_| Default::default(),
        |w| {
            w.alerts
                .iter()
                .take(SHOWN_ALERTS)
                .filter_map(|a| {
                    let o = a.object.as_ref()?;
                    Some((o.id.clone(), a.sequence.saturating_sub(1)))
                })
                .collect()
        },
    );
    let view = View {
        health: view.health(created_ms, chrono::Utc::now().timestamp_millis()),
        names: names_at(g, tenant, wanted).await,
        ..view
    };
    match g.output {
        OutputFormat::Json => print_json(&view.json()),
        OutputFormat::Table => view.print(),
    }
    Ok(())
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

/// What the overview shows; each part is what its service answered, or why not.
struct View<'a> {
    tenant: &'a str,
    status: Result<v1::StatusResponse, String>,
    backups: Result<Vec<v1::Backup>, String>,
    policy: Result<v1::BackupPolicy, String>,
    reports: Result<Vec<v1::Report>, String>,
    recoveries: Result<Vec<v1::RecoveryJob>, String>,
    watched: Result<Watched, String>,
    since: String,
    /// What needs a look about the tenant's protection itself.
    health: Vec<Health>,
    /// Display names of alerted objects, by id.
    names: Names,
}

/// Something about a tenant's protection that needs a look (not a change to it).
#[derive(Debug, Clone, PartialEq)]
struct Health {
    severity: Severity,
    rule: &'static str,
    what: String,
    /// What to run.
    fix: String,
}

impl View<'_> {
    fn print(&self) {
        let line = |label: &str, text: String| outln!("{label:<11}{text}");
        line("tenant", self.tenant_text());
        line("backups", self.backups_text());
        line("reports", self.reports_text());
        line("recoveries", self.recoveries_text());
        for h in &self.health {
            line(
                "health",
                format!("{} {}: {}", h.severity.as_str(), h.rule, h.what),
            );
            line("", format!("→ {}", h.fix));
        }
        let watched = match &self.watched {
            Ok(w) => w,
            Err(e) => return line("alerts", format!("not read: {e}")),
        };
        let n = watched.alerts.len();
        line(
            "alerts",
            format!("{n} in {} change(s) after {}", watched.events, self.since),
        );
        if n == 0 {
            return;
        }
        let shown = &watched.alerts[..n.min(SHOWN_ALERTS)];
        let rows: Vec<Vec<String>> = shown
            .iter()
            .map(|a| {
                vec![
                    a.severity.as_str().to_string(),
                    a.rule.to_string(),
                    rfc3339_ms(a.time_ms),
                    a.actor.clone(),
                    a.object
                        .as_ref()
                        .map(|o| match self.names.get(&o.id) {
                            Some(name) => format!("{} {} ({})", o.kind, name, o.id),
                            None => format!("{} {}", o.kind, o.id),
                        })
                        .unwrap_or_default(),
                    a.what.clone(),
                ]
            })
            .collect();
        outln!();
        table(
            &["SEVERITY", "RULE", "WHEN", "ACTOR", "OBJECT", "WHAT"],
            &rows,
        );
        if n > SHOWN_ALERTS {
            outln!("… and {} more (--output json lists them)", n - SHOWN_ALERTS);
        }
        outln!();
        outln!("to see what undoing each would do (a dry run; drop --dry-run to recover):");
        let mut seen = Vec::new();
        for a in shown {
            let command = a.undo_command(self.tenant);
            if !seen.contains(&command) {
                outln!("  {command}");
                seen.push(command);
            }
        }
    }

    fn tenant_text(&self) -> String {
        match &self.status {
            Ok(s) => {
                let objects = s
                    .tenant
                    .as_ref()
                    .map_or("?".to_string(), |t| t.objects.to_string());
                let last = match self.watched.as_ref().ok().and_then(|w| w.last.as_ref()) {
                    Some((sequence, time, actor)) => format!(
                        "; its last change sequence {sequence} at {} by {actor}",
                        rfc3339_ms(*time)
                    ),
                    None => "; no change after --since".to_string(),
                };
                format!(
                    "{}: {objects} objects (live and in the recycle bin); log at sequence {}{last}",
                    self.tenant, s.last_sequence
                )
            }
            Err(e) => format!("{}: {e}", self.tenant),
        }
    }

    /// The health findings: scheduled backups that stopped, jobs waiting for approval,
    /// and a last recovery that failed.
    fn health(&self, created_ms: Option<i64>, now_ms: i64) -> Vec<Health> {
        let tenant = self.tenant;
        let mut out = Vec::new();
        let schedule = self.policy.as_ref().ok().and_then(|p| {
            let policy = Policy {
                schedule: p.schedule.clone(),
                ..Policy::default()
            };
            policy
                .cron()
                .ok()
                .flatten()
                .map(|c| (p.schedule.clone(), c))
        });
        if let (Some((text, cron)), Ok(backups), Some(created)) =
            (schedule, &self.backups, created_ms)
        {
            let set_at = self.policy.as_ref().map_or(0, |p| p.updated_at_ms);
            if let Some(slots) = missed_backups::missed(&cron, backups, created, set_at, now_ms) {
                let at: Vec<String> = slots.iter().map(|s| rfc3339_ms(*s)).collect();
                let what = match at.as_slice() {
                    [one] => format!("no scheduled backup from the slot at {one} (schedule \"{text}\", UTC)"),
                    [earlier, later, ..] => format!(
                        "no scheduled backup since the slot at {earlier}, and the one at {later} passed too (schedule \"{text}\", UTC)"
                    ),
                    [] => String::new(),
                };
                out.push(Health {
                    severity: Severity::High,
                    rule: "backupsMissed",
                    what,
                    fix: format!(
                        "backtrack backup create --tenant {tenant} --description catch-up; then check the snapshotter (backtrack status)"
                    ),
                });
            }
        }
        if let Ok(jobs) = &self.recoveries {
            use v1::RecoveryState as S;
            for job in jobs
                .iter()
                .filter(|j| j.state == S::RecoveryAwaitingApproval as i32)
            {
                out.push(Health {
                    severity: Severity::Medium,
                    rule: "recoveryAwaitingApproval",
                    what: format!(
                        "recovery {} by {} waits for a second Global Administrator",
                        job.id, job.requested_by
                    ),
                    fix: format!(
                        "backtrack recovery show --tenant {tenant} {id}; backtrack approve --tenant {tenant} {id}",
                        id = job.id
                    ),
                });
            }
            let latest = jobs.iter().max_by_key(|j| j.created_at_ms);
            if let Some(job) = latest.filter(|j| j.state == S::RecoveryFailed as i32) {
                out.push(Health {
                    severity: Severity::High,
                    rule: "recoveryFailed",
                    what: format!("the latest recovery, {}, failed: {}", job.id, job.error),
                    fix: format!("backtrack recovery failed --tenant {tenant} {}", job.id),
                });
            }
        }
        out
    }

    fn backups_text(&self) -> String {
        let schedule = match &self.policy {
            Ok(p) if p.schedule.is_empty() => "; no schedule".to_string(),
            Ok(p) => format!(
                "; schedule \"{}\" (UTC), kept {} day(s)",
                p.schedule, p.retention_days
            ),
            Err(_) => String::new(),
        };
        match &self.backups {
            Ok(list) => match list.iter().max_by_key(|b| (b.created_at_ms, b.sequence)) {
                Some(b) => format!(
                    "{} kept; latest {} at {} (sequence {}, {}){schedule}",
                    list.iter().filter(|b| !b.expired).count(),
                    b.id,
                    rfc3339_ms(b.created_at_ms),
                    b.sequence,
                    trigger(b.trigger)
                ),
                None => format!("none kept{schedule}"),
            },
            Err(e) => e.clone(),
        }
    }

    fn reports_text(&self) -> String {
        match &self.reports {
            Ok(list) => match list.iter().max_by_key(|r| r.created_at_ms) {
                Some(r) => format!(
                    "{}; latest {} {} ({} changed objects)",
                    list.len(),
                    r.id,
                    diff_view::state_name(r.state),
                    r.changed
                ),
                None => "none".to_string(),
            },
            Err(e) => e.clone(),
        }
    }

    fn recoveries_text(&self) -> String {
        let list = match &self.recoveries {
            Ok(list) => list,
            Err(e) => return e.clone(),
        };
        let Some(latest) = list.iter().max_by_key(|j| j.created_at_ms) else {
            return "none".to_string();
        };
        let (running, waiting) = recovery_counts(list);
        format!(
            "{}; latest {} {}; {running} running, {waiting} awaiting approval",
            list.len(),
            latest.id,
            recovery_view::state_name(latest.state)
        )
    }

    fn json(&self) -> Value {
        let part = |r: Result<Value, &String>| match r {
            Ok(v) => v,
            Err(e) => json!({ "error": e }),
        };
        let status = part(self.status.as_ref().map(|s| {
            json!({
                "lastSequence": s.last_sequence,
                "objects": s.tenant.as_ref().map(|t| t.objects),
            })
        }));
        let backups = part(self.backups.as_ref().map(|list| {
            let latest = list.iter().max_by_key(|b| (b.created_at_ms, b.sequence));
            json!({
                "count": list.iter().filter(|b| !b.expired).count(),
                "latest": latest.map(|b| json!({
                    "id": b.id, "sequence": b.sequence, "createdAt": rfc3339_ms(b.created_at_ms),
                    "trigger": trigger(b.trigger),
                })),
                "schedule": self.policy.as_ref().ok().map(|p| p.schedule.clone()),
            })
        }));
        let reports = part(self.reports.as_ref().map(|list| {
            let latest = list.iter().max_by_key(|r| r.created_at_ms);
            json!({
                "count": list.len(),
                "latest": latest.map(diff_view::report_json),
            })
        }));
        let recoveries = part(self.recoveries.as_ref().map(|list| {
            let (running, waiting) = recovery_counts(list);
            let latest = list.iter().max_by_key(|j| j.created_at_ms);
            json!({
                "count": list.len(),
                "running": running,
                "awaitingApproval": waiting,
                "latest": latest.map(|j| json!({"id": j.id, "state": recovery_view::state_name(j.state)})),
            })
        }));
        let alerts = part(self.watched.as_ref().map(|w| {
            let alerts: Vec<Value> = w
                .alerts
                .iter()
                .map(|a| {
                    let mut v = serde_json::to_value(a).unwrap_or(Value::Null);
                    v["time"] = json!(rfc3339_ms(a.time_ms));
                    v["undo"] = json!(a.undo_command(self.tenant));
                    if let Some(name) = a.object.as_ref().and_then(|o| self.names.get(&o.id)) {
                        v["object"]["displayName"] = json!(name);
                    }
                    v
                })
                .collect();
            json!({ "since": self.since, "events": w.events, "alerts": alerts })
        }));
        json!({
            "tenant": self.tenant,
            "status": status,
            "backups": backups,
            "reports": reports,
            "recoveries": recoveries,
            "changes": alerts,
            "health": self.health.iter().map(|h| json!({
                "severity": h.severity.as_str(),
                "rule": h.rule,
                "what": h.what,
                "fix": h.fix,
            })).collect::<Vec<_>>(),
        })
    }
}

/// Jobs running (or about to), and jobs waiting for a second administrator.
fn recovery_counts(jobs: &[v1::RecoveryJob]) -> (usize, usize) {
    use v1::RecoveryState as S;
    let state = |j: &v1::RecoveryJob| S::try_from(j.state).unwrap_or(S::Unspecified);
    let running = jobs
        .iter()
        .filter(|j| {
            matches!(
                state(j),
                S::RecoveryInitialized | S::RecoveryCalculating | S::RecoveryRunning
            )
        })
        .count();
    let waiting = jobs
        .iter()
        .filter(|j| state(j) == S::RecoveryAwaitingApproval)
        .count();
    (running, waiting)
}

fn trigger(trigger: i32) -> &'static str {
    match v1::BackupTrigger::try_from(trigger) {
        Ok(v1::BackupTrigger::Scheduled) => "scheduled",
        Ok(v1::BackupTrigger::PreRecovery) => "before a recovery",
        _ => "on demand",
    }
}

#[cfg(test)]
mod tests {

    use backtrack_proto::v1;

    use backtrack_domain::alerts::{Alert, AlertObject, Severity};

    use super::{as_the_tenant_wants, View};

    #[test]
    fn stopped_schedules_jobs_awaiting_approval_and_a_failed_recovery_need_a_look() {
        const HOUR: i64 = 3600 * 1000;
        let now = 1_796_644_800_000; // 2026-12-07T12:00:00Z
        let job = |id: &str, state: v1::RecoveryState, created_at_ms: i64| v1::RecoveryJob {
            id: id.into(),
            state: state as i32,
            created_at_ms,
            requested_by: "alice".into(),
            error: "directory unavailable".into(),
            ..Default::default()
        };
        let view = View {
            tenant: "contoso",
            status: Err(String::new()),
            backups: Ok(vec![]),
            policy: Ok(v1::BackupPolicy {
                schedule: "0 0 * * * *".into(),
                ..Default::default()
            }),
            reports: Ok(vec![]),
            recoveries: Ok(vec![
                job(
                    "j1",
                    v1::RecoveryState::RecoveryAwaitingApproval,
                    now - HOUR,
                ),
                job("j2", v1::RecoveryState::RecoveryFailed, now - 1),
            ]),
            watched: Err(String::new()),
            since: "-24h".into(),
            health: vec![],
            names: Default::default(),
        };
        let rules = |created| -> Vec<&'static str> {
            view.health(created, now).iter().map(|h| h.rule).collect()
        };
        assert_eq!(
            rules(Some(now - 48 * HOUR)),
            [
                "backupsMissed",
                "recoveryAwaitingApproval",
                "recoveryFailed"
            ]
        );
        // A tenant an hour old has not had two slots yet; one of unknown age is not judged.
        assert_eq!(
            rules(Some(now - HOUR)),
            ["recoveryAwaitingApproval", "recoveryFailed"]
        );
        assert_eq!(rules(None).len(), 2);
        let health = view.health(Some(now - 48 * HOUR), now);
        assert!(health[1]
            .fix
            .contains("backtrack approve --tenant contoso j1"));
        assert!(health[2].what.contains("directory unavailable"));
    }

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
}
