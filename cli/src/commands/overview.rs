//! `backtrack overview`: one screen of a tenant, for the administrator who wants to know
//! at once whether something is wrong: its size and log position, its backups and
//! schedule, its reports and recoveries (running, waiting for approval, the last one),
//! and alerts on the changes since a point ([`backtrack_domain::alerts`]), each with the
//! dry run that would undo it. Each part is asked of its own service; a part the caller's
//! role may not see, or a service that does not answer, says so and the rest still shows.

use std::collections::BTreeMap;

use backtrack_domain::alerts::{Alert, Thresholds, Watch};
use backtrack_domain::ObjectKind;
use backtrack_proto::convert::event_from_proto;
use backtrack_proto::v1;

use super::diff_names::{assignment_names, names_at, Names};
use super::events::Start;
use super::overview_trail;
use super::overview_view::View;
use crate::args::{GlobalArgs, OutputFormat, OverviewArgs};
use crate::client::{connect_channel, token, Client};
use crate::output::print_json;

/// Alerts listed in a table at most (`--output json` has them all).
pub(super) const SHOWN_ALERTS: usize = 50;

pub async fn run(g: &GlobalArgs, a: OverviewArgs) -> anyhow::Result<()> {
    let connection = connect_channel(g).await?;
    let tenant = a.tenant.as_str();
    // The alerts come first: a bad --since is the caller's mistake, not a missing part.
    let start = Start::after(&connection, tenant, &a.since).await?;
    // The tenant's alert policy, as the alerter applies it (none when it cannot be read).
    let alert_policy_read = connection
        .backup()
        .get_alert_policy(v1::AlertPolicyRequest {
            tenant: tenant.to_string(),
        })
        .await
        .map(|r| r.into_inner())
        .ok();
    let alert_policy = alert_policy_read.clone().unwrap_or_default();
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
    let now = overview_trail::Policies {
        backup: view.policy.as_ref().ok(),
        alerts: alert_policy_read.as_ref(),
        every_tenant: token(g).is_ok_and(|t| overview_trail::grants_every_tenant(&t)),
    };
    let trail = overview_trail::findings(&connection, tenant, since_ms, now).await;
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
}
