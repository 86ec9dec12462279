//! What `backtrack overview` shows and how: the tenant's parts as their services answered,
//! the health rules about its protection, the table and the JSON.

use backtrack_domain::alerts::{Alert, Severity, Undone};
use backtrack_domain::time::rfc3339_ms;
use backtrack_proto::v1;
use backtrack_snapshotter::policy::Policy;
use serde_json::{json, Value};

use super::diff_names::Names;
use super::overview::{Watched, SHOWN_ALERTS};
use super::{diff_view, missed_backups, recovery_view};
use crate::output::{outln, table};

/// What the overview shows; each part is what its service answered, or why not.
pub(super) struct View<'a> {
    pub(super) tenant: &'a str,
    pub(super) status: Result<v1::StatusResponse, String>,
    pub(super) backups: Result<Vec<v1::Backup>, String>,
    pub(super) policy: Result<v1::BackupPolicy, String>,
    pub(super) reports: Result<Vec<v1::Report>, String>,
    pub(super) recoveries: Result<Vec<v1::RecoveryJob>, String>,
    pub(super) watched: Result<Watched, String>,
    pub(super) since: String,
    /// What needs a look about the tenant's protection itself.
    pub(super) health: Vec<Health>,
    /// Display names of alerted objects, by id.
    pub(super) names: Names,
}

/// Something about a tenant's protection that needs a look (not a change to it).
#[derive(Debug, Clone, PartialEq)]
pub(super) struct Health {
    pub(super) severity: Severity,
    pub(super) rule: &'static str,
    pub(super) what: String,
    /// What to run.
    pub(super) fix: String,
    /// What put it right since, when something did (then there is nothing to run).
    pub(super) resolved: Option<String>,
}

impl View<'_> {
    pub(super) fn print(&self) {
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
            match &h.resolved {
                Some(how) => line("", format!("✓ resolved: {how}")),
                None => line("", format!("→ {}", h.fix)),
            }
        }
        let watched = match &self.watched {
            Ok(w) => w,
            Err(e) => return line("alerts", format!("not read: {e}")),
        };
        let n = watched.alerts.len();
        let undone = watched.alerts.iter().filter(|a| a.undone.is_some()).count();
        let set_back = match undone {
            0 => String::new(),
            k => format!("; {k} of them set back since"),
        };
        line(
            "alerts",
            format!(
                "{n} in {} change(s) after {}{set_back}",
                watched.events, self.since
            ),
        );
        if n == 0 {
            return;
        }
        let shown = &watched.alerts[..n.min(SHOWN_ALERTS)];
        let rows: Vec<Vec<String>> = shown
            .iter()
            .map(|a| {
                let (state, what) = match &a.undone {
                    Some(u) => (
                        "undone",
                        format!("{}; undone {}", a.what, self.undone_by(u)),
                    ),
                    None => ("open", a.what.clone()),
                };
                vec![
                    a.severity.as_str().to_string(),
                    state.to_string(),
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
                    what,
                ]
            })
            .collect();
        outln!();
        table(
            &[
                "SEVERITY", "STATE", "RULE", "WHEN", "ACTOR", "OBJECT", "WHAT",
            ],
            &rows,
        );
        if n > SHOWN_ALERTS {
            outln!("… and {} more (--output json lists them)", n - SHOWN_ALERTS);
        }
        outln!();
        let open: Vec<&Alert> = shown.iter().filter(|a| a.undone.is_none()).collect();
        if open.is_empty() {
            outln!("every alerted change shown has been set back since: nothing to undo");
            return;
        }
        outln!("to see what undoing each would do (a dry run; drop --dry-run to recover):");
        let mut seen = Vec::new();
        for a in open {
            let command = a.undo_command(self.tenant);
            if !seen.contains(&command) {
                outln!("  {command}");
                seen.push(command);
            }
        }
    }

    /// `seq:633 by admin (recovery 01a2…)`: the change that set an alert back.
    fn undone_by(&self, u: &Undone) -> String {
        let mut text = format!("seq:{} by {}", u.sequence, u.actor);
        if !u.job.is_empty() {
            let recovery = self
                .recoveries
                .as_ref()
                .is_ok_and(|jobs| jobs.iter().any(|j| j.id == u.job));
            let noun = if recovery { "recovery" } else { "job" };
            text.push_str(&format!(" ({noun} {})", u.job));
        }
        text
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
    pub(super) fn health(&self, created_ms: Option<i64>, now_ms: i64) -> Vec<Health> {
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
            // The tenant's own policy's time, else since when the deployment's default
            // has been what it is; 0 (unknown) makes `missed` wait for two slots.
            let set_at = self.policy.as_ref().map_or(0, |p| {
                if p.updated_at_ms > 0 {
                    p.updated_at_ms
                } else {
                    p.default_since_ms
                }
            });
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
                    resolved: None,
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
                    resolved: None,
                });
            }
            let latest = jobs.iter().max_by_key(|j| j.created_at_ms);
            if let Some(job) = latest.filter(|j| j.state == S::RecoveryFailed as i32) {
                out.push(Health {
                    severity: Severity::High,
                    rule: "recoveryFailed",
                    what: format!("the latest recovery, {}, failed: {}", job.id, job.error),
                    fix: format!("backtrack recovery failed --tenant {tenant} {}", job.id),
                    resolved: None,
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

    pub(super) fn json(&self) -> Value {
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
                    v["state"] = json!(if a.undone.is_some() { "undone" } else { "open" });
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
                "resolved": h.resolved,
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

    use super::View;

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

        // A tenant 90 minutes old on the deployment's default: one slot passed (11:00;
        // noon's is within the grace). Unknown since when the default holds, one slot is
        // not judged; known to hold since before it, that slot is a miss.
        let young = Some(now - 90 * 60 * 1000);
        assert!(!rules(young).contains(&"backupsMissed"));
        let known = View {
            policy: Ok(v1::BackupPolicy {
                schedule: "0 0 * * * *".into(),
                default_since_ms: now - 2 * HOUR,
                ..Default::default()
            }),
            ..view
        };
        let missed = known.health(young, now);
        assert_eq!(missed[0].rule, "backupsMissed");
        assert!(
            missed[0]
                .what
                .contains("the slot at 2026-12-07T11:00:00.000Z"),
            "{}",
            missed[0].what
        );
    }
}
