//! The alerts a recovery job set back, for `recovery show` of a finished job: the alerter
//! closes an alert with an `alert.undone` record whose correlation job is the change's,
//! so the audit trail answers which findings a job put right (a moment after the job's
//! changes: the alerter follows the log just behind them). A caller without the audit
//! role, or an audit service that does not answer within two seconds, sees the job
//! without them.

use std::time::Duration;

use backtrack_proto::v1;
use serde_json::{json, Value};

use super::recovery_view::{is_finished, job_json, print_job};
use crate::args::{GlobalArgs, OutputFormat};
use crate::client::audit_client;
use crate::output::{outln, print_json};

/// One alert a job set back.
pub struct SetBack {
    pub alert_id: String,
    pub rule: String,
    pub severity: String,
    pub what: String,
    pub target: v1::AuditTarget,
}

/// How long `recovery show` waits for the audit trail before it shows the job alone.
const WAIT: Duration = Duration::from_secs(2);

/// The alerts a finished `job` set back, as the audit trail holds them; `None` for a job
/// still running (its changes are still being made: `show` is polled while it runs, and
/// must stay quick), or when the trail could not be read within [`WAIT`].
pub async fn set_back(g: &GlobalArgs, job: &v1::RecoveryJob) -> Option<Vec<SetBack>> {
    if !is_finished(job.state) {
        return None;
    }
    tokio::time::timeout(WAIT, read(g, job))
        .await
        .ok()
        .flatten()
}

async fn read(g: &GlobalArgs, job: &v1::RecoveryJob) -> Option<Vec<SetBack>> {
    let mut client = audit_client(g).await.ok()?;
    let entries = client
        .query_audit(v1::QueryAuditRequest {
            tenant: job.tenant.clone(),
            action: "alert.undone".into(),
            correlation_id: job.id.clone(),
            page_size: 1000,
            ..Default::default()
        })
        .await
        .ok()?
        .into_inner()
        .entries;
    Some(
        entries
            .into_iter()
            .filter_map(|e| {
                let record = e.record?;
                let details: Value = serde_json::from_str(&record.details_json).ok()?;
                let text = |name: &str| details[name].as_str().unwrap_or_default().to_string();
                Some(SetBack {
                    alert_id: text("alertId"),
                    rule: text("rule"),
                    severity: text("severity"),
                    what: text("what"),
                    target: record.target.unwrap_or_default(),
                })
            })
            .collect(),
    )
}

/// The job as `recovery show` prints it, with the alerts it set back.
pub fn print_job_with(g: &GlobalArgs, job: &v1::RecoveryJob, set_back: Option<&[SetBack]>) {
    if g.output == OutputFormat::Json {
        let mut v = job_json(job);
        if let Some(list) = set_back {
            v["alertsSetBack"] = list.iter().map(alert_json).collect();
        }
        print_json(&v);
        return;
    }
    print_job(g, job);
    let Some(list) = set_back.filter(|l| !l.is_empty()) else {
        return;
    };
    outln!("alerts      {} set back by this job:", list.len());
    for a in list {
        let t = &a.target;
        let object = match t.display_name.as_str() {
            "" => format!("{} {}", t.kind, t.id),
            name => format!("{} {name} ({})", t.kind, t.id),
        };
        outln!(
            "              {} {}: {object}: {}",
            a.severity,
            a.rule,
            a.what
        );
    }
}

fn alert_json(a: &SetBack) -> Value {
    json!({
        "alertId": a.alert_id,
        "rule": a.rule,
        "severity": a.severity,
        "what": a.what,
        "object": {"kind": a.target.kind, "id": a.target.id, "displayName": a.target.display_name},
    })
}
