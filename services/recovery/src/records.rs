//! The audit records of a recovery job: its start, approval, cancellation and end, and one
//! per applied operation, each with a deterministic id (job and operation), so a record
//! published again after a crash is a duplicate the stream drops.

use backtrack_domain::canonical::to_canonical_string;
use backtrack_domain::recovery::{Action, Operation, Skipped};
use backtrack_eventlog::audit::AUDIT_SCHEMA_VERSION;
use backtrack_platform::clock::now_ms;
use backtrack_proto::v1;
use serde_json::{json, Value};

use crate::runner::mutation_id;

/// Namespace of audit record ids: one id per job and operation, so a re-published record
/// is a duplicate the stream drops.
const AUDIT_NAMESPACE: uuid::Uuid =
    uuid::Uuid::from_u128(0x3c1d_7a52_9e04_4b8f_a6d1_52e0_77c4_1b9e);

/// What every record of `job` shares: its id (from the job and `suffix`), the requester
/// as actor, and the job's correlation ids.
fn base_record(job: &v1::RecoveryJob, suffix: &str, action: &str) -> v1::AuditRecord {
    v1::AuditRecord {
        schema_version: AUDIT_SCHEMA_VERSION,
        id: uuid::Uuid::new_v5(&AUDIT_NAMESPACE, format!("{}:{suffix}", job.id).as_bytes())
            .to_string(),
        tenant: job.tenant.clone(),
        time_ms: now_ms(),
        actor: Some(v1::AuditActor {
            subject: job.requested_by.clone(),
            roles: job.requester_roles.clone(),
            source_address: job.requester_address.clone(),
        }),
        action: action.to_string(),
        category: "recovery".into(),
        correlation: Some(v1::AuditCorrelation {
            job_id: job.id.clone(),
            report_id: job.report_id.clone(),
            backup_id: job.pre_recovery_backup_id.clone(),
        }),
        ..Default::default()
    }
}

/// A record about the job itself (`action`), with its counts so far.
pub(crate) fn job_record(
    job: &v1::RecoveryJob,
    action: &str,
    suffix: &str,
    success: bool,
    reason: &str,
) -> v1::AuditRecord {
    let mut record = base_record(job, suffix, action);
    record.target = Some(v1::AuditTarget {
        kind: "recoveryJob".into(),
        id: job.id.clone(),
        display_name: String::new(),
    });
    record.result = Some(v1::AuditResult {
        success,
        reason: reason.to_string(),
    });
    let scope = job.scope.clone().unwrap_or_default();
    record.details_json = to_canonical_string(&json!({
        "state": crate::state_name(job.state),
        "point": job.point.as_ref().map(|p| p.sequence),
        // What the job covers: kinds, how many ids, and whose changes when only some.
        "scope": {
            "kinds": scope.kinds,
            "ids": scope.ids.len(),
            "changedBy": scope.changed_by,
            "changesOfJob": scope.changes_of_job,
        },
        "undoOf": job.undo_of,
        "approvedBy": job.approved_by,
        "operationsTotal": job.operations_total,
        "operationsDone": job.operations_done,
        "objectsChanged": job.objects_changed,
        "linksChanged": job.links_changed,
        "failed": job.failed,
        "skipped": job.skipped,
        "residual": job.residual,
    }));
    record
}

/// The record of operation `index` applied: its target and before/after values.
pub(crate) fn operation_record(
    job: &v1::RecoveryJob,
    index: usize,
    op: &Operation,
    before: String,
    after: String,
) -> v1::AuditRecord {
    let mut record = base_record(job, &format!("op:{index}"), "recovery.operationApplied");
    record.target = Some(v1::AuditTarget {
        kind: op.kind.as_str().to_string(),
        id: op.id.clone(),
        display_name: op.display_name.clone().unwrap_or_default(),
    });
    record.result = Some(v1::AuditResult {
        success: true,
        reason: String::new(),
    });
    record.before_json = before;
    record.after_json = after;
    record.details_json = to_canonical_string(&json!({
        "operation": index,
        "action": op.action.name(),
        "changeType": op.change_type,
        "mutationId": mutation_id(&job.id, index),
    }));
    record
}

/// The action as JSON, for dry-run listings and audit records.
pub fn action_json(action: &Action) -> Value {
    let mut value = serde_json::to_value(action).unwrap_or(Value::Null);
    if let Value::Object(map) = &mut value {
        map.remove("type");
    }
    value
}

/// Objects a plan leaves out or notes, as `recovery failed` lists them.
pub(crate) fn listed(objects: &[Skipped], action: &str, outcome: &str) -> Vec<v1::FailedChange> {
    objects
        .iter()
        .map(|s| v1::FailedChange {
            operation: 0,
            kind: s.kind.as_str().to_string(),
            id: s.id.clone(),
            display_name: s.display_name.clone().unwrap_or_default(),
            action: action.into(),
            reason: s.reason.clone(),
            outcome: outcome.into(),
        })
        .collect()
}
