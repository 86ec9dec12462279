//! Audit records of privileged actions and of refused calls, on `BT_AUDIT`.
//!
//! - [`Auditor`] publishes what handlers record. A privileged action's record is awaited
//!   before the handler answers ([`Auditor::succeeded`]): the action happens first, then
//!   its record; if the stream does not acknowledge the record the call fails with
//!   `UNAVAILABLE` (the action *was* done) and the record stays queued until it is stored.
//!   Failed attempts ([`Auditor::failed`]) and refusals ([`Auditor::deny`]) go through a
//!   bounded queue and are awaited only for [`DENIAL_WAIT`].
//! - [`AuditEntry`] builds one record: actor (subject, roles, source address), target,
//!   correlation ids, before/after values, and a deterministic id where the action has a
//!   natural one, so a retried request or publish is stored once.
//! - [`layer::AuditLayer`] wraps the whole gRPC server: every call answered
//!   `UNAUTHENTICATED` or `PERMISSION_DENIED` leaves one `security.accessDenied` record.
//! - [`queue`]: the background publisher behind the bounded queue, with an optional spool
//!   folder so that queued records outlive the process.

pub mod layer;
mod queue;

use std::net::SocketAddr;
use std::time::Duration;

use backtrack_eventlog::audit::new_record;
use backtrack_eventlog::AuditLog;
use backtrack_proto::v1;
use tonic::{Code, Status};

use crate::auth::Caller;

pub use layer::AuditLayer;

/// Records about callers that could not be identified, or calls that named no valid
/// tenant: `bt.audit._unauthenticated.security`.
pub const UNAUTHENTICATED_TENANT: &str = "_unauthenticated";
/// Records about the deployment as a whole rather than one tenant (a token for every
/// tenant): `bt.audit._deployment.<category>`.
pub const DEPLOYMENT_TENANT: &str = "_deployment";

/// How long a refused call waits for its record to be acknowledged before it answers
/// anyway: long enough that records normally precede the answer, short enough that a slow
/// stream never holds the request path.
pub const DENIAL_WAIT: Duration = Duration::from_millis(500);
/// Refusal and retry records waiting for the stream; beyond this, refusals are counted
/// and summarised in one `security.accessDeniedDropped` record instead.
pub const QUEUE_CAPACITY: usize = 4096;

/// Audit record categories (the last token of the subject).
pub mod category {
    pub const BACKUP: &str = "backup";
    pub const CONFIGURATION: &str = "configuration";
    pub const REPORT: &str = "report";
    pub const DIRECTORY: &str = "directory";
    pub const TENANT: &str = "tenant";
    pub const SECURITY: &str = "security";
    /// Alerts on dangerous directory changes (the snapshotter's alerter).
    pub const ALERT: &str = "alert";
}

/// Audit actions written outside the recovery runner.
pub mod action {
    pub const BACKUP_CREATED: &str = "backup.created";
    pub const BACKUP_PINNED: &str = "backup.pinned";
    pub const BACKUP_UNPINNED: &str = "backup.unpinned";
    pub const BACKUP_VERIFIED: &str = "backup.verified";
    pub const BACKUP_POLICY_CHANGED: &str = "configuration.backupPolicyChanged";
    pub const ALERT_POLICY_CHANGED: &str = "configuration.alertPolicyChanged";
    pub const REPORT_CREATED: &str = "report.created";
    pub const REPORT_CANCELLED: &str = "report.cancelled";
    pub const HARD_DELETED: &str = "directory.hardDeleted";
    pub const TENANT_CREATED: &str = "tenant.created";
    pub const TOKEN_ISSUED: &str = "token.issued";
    pub const TOKEN_REVOKED: &str = "token.revoked";
    pub const ACCESS_DENIED: &str = "security.accessDenied";
    pub const DENIALS_DROPPED: &str = "security.accessDeniedDropped";
    pub const ALERT_RAISED: &str = "alert.raised";
    pub const ALERT_UNDONE: &str = "alert.undone";
}

/// Namespace of deterministic record ids (UUIDv5 of `<tenant>:<action>:<natural id>`).
const RECORD_NAMESPACE: uuid::Uuid =
    uuid::Uuid::from_u128(0x8f0e_54a1_2b7c_4d3e_9a61_0c5d_e2f3_a4b7);

/// Who made a call and from where, as audit records name them.
#[derive(Clone, Debug)]
pub struct CallContext {
    pub caller: Caller,
    /// The peer address of the gRPC connection, when the transport knows it.
    pub source: Option<SocketAddr>,
}

impl CallContext {
    /// The caller and peer address of `request` (`UNAUTHENTICATED` without a caller).
    pub fn of<T>(request: &tonic::Request<T>) -> Result<Self, Status> {
        Ok(Self {
            caller: crate::auth::caller(request)?,
            source: request.remote_addr(),
        })
    }
}

/// Publishes audit records. Cheap to clone.
#[derive(Clone)]
pub struct Auditor {
    log: AuditLog,
    queue: queue::Queue,
}

impl std::fmt::Debug for Auditor {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Auditor").finish_non_exhaustive()
    }
}

impl Auditor {
    /// An auditor on `log`; starts the background publisher (it stops once every clone
    /// is dropped). Needs a Tokio runtime.
    pub fn new(log: AuditLog) -> Self {
        Self::with_capacity(log, QUEUE_CAPACITY)
    }

    /// [`Auditor::new`] with a queue of `capacity` records instead of [`QUEUE_CAPACITY`].
    pub fn with_capacity(log: AuditLog, capacity: usize) -> Self {
        let queue = queue::Queue::start(log.clone(), capacity, None);
        Self { log, queue }
    }

    /// [`Auditor::new`] whose queued records are also kept as files in `dir` until the
    /// stream has them: records a process queued before it died are published when the
    /// next auditor on the same folder starts.
    pub fn with_spool(log: AuditLog, dir: &std::path::Path) -> std::io::Result<Self> {
        Self::with_spool_and_capacity(log, dir, QUEUE_CAPACITY)
    }

    /// [`Auditor::with_spool`] with a queue of `capacity` records. The count of records
    /// dropped because the queue was full is kept in the folder too, so it reaches the
    /// stream (as one `security.accessDeniedDropped` record) even if this process dies
    /// first.
    pub fn with_spool_and_capacity(
        log: AuditLog,
        dir: &std::path::Path,
        capacity: usize,
    ) -> std::io::Result<Self> {
        let spool = queue::Spool::open(dir)?;
        let queue = queue::Queue::start(log.clone(), capacity, Some(spool));
        Ok(Self { log, queue })
    }

    /// The audit stream itself.
    pub fn log(&self) -> &AuditLog {
        &self.log
    }

    /// Publishes the record of an action that has been done and waits for the stream's
    /// acknowledgement. `UNAVAILABLE` when it does not come: the message says that the
    /// action happened and that its record is queued until the stream takes it.
    pub async fn succeeded(&self, entry: AuditEntry) -> Result<(), Status> {
        let record = entry.record;
        match self.log.publish(std::slice::from_ref(&record)).await {
            Ok(()) => Ok(()),
            Err(e) => {
                tracing::error!(
                    error = %e,
                    record = ?record,
                    "audit record not acknowledged; queued for another attempt"
                );
                let action = record.action.clone();
                self.queue.push(record, None);
                Err(Status::unavailable(format!(
                    "the action was carried out, but its audit record ({action}) is not stored yet: {e}. \
                     The server keeps trying to store it; check the audit trail (backtrack audit query) \
                     before repeating the action"
                )))
            }
        }
    }

    /// Publishes the record of an action that is about to be done, for actions whose
    /// effect can still be withheld when the record fails (handing out a token): on
    /// failure `UNAVAILABLE` saying `not_done`, and nothing is queued.
    pub async fn before_action(&self, entry: AuditEntry, not_done: &str) -> Result<(), Status> {
        self.log
            .publish(std::slice::from_ref(&entry.record))
            .await
            .map_err(|e| {
                Status::unavailable(format!(
                    "{not_done}: its audit record ({}) could not be stored: {e}. Retry once the audit stream is reachable",
                    entry.record.action
                ))
            })
    }

    /// Records a privileged action that was attempted (the caller was allowed to try)
    /// but failed with `error`, which is returned unchanged. Waits at most
    /// [`DENIAL_WAIT`] for the record.
    pub async fn failed(&self, entry: AuditEntry, error: Status) -> Status {
        let mut entry = entry.failure(error.message());
        // Every failed attempt is an attempt of its own: never deduplicated against the
        // record of the action succeeding.
        entry.record.id = uuid::Uuid::now_v7().to_string();
        self.queue.push_and_wait(entry.record, DENIAL_WAIT).await;
        error
    }

    /// [`Auditor::succeeded`] with the entry `describe` completes from the result, or
    /// [`Auditor::failed`] with the error.
    pub async fn outcome<T>(
        &self,
        entry: AuditEntry,
        result: Result<T, Status>,
        describe: impl FnOnce(AuditEntry, &T) -> AuditEntry,
    ) -> Result<T, Status> {
        match result {
            Ok(value) => {
                self.succeeded(describe(entry, &value)).await?;
                Ok(value)
            }
            Err(error) => Err(self.failed(entry, error).await),
        }
    }

    /// Records a refused call (a `security.accessDenied` record, see [`denial_record`]);
    /// waits at most [`DENIAL_WAIT`]. Refusals beyond the queue's capacity are counted
    /// and summarised, so a flood of bad calls costs bounded memory and work.
    pub async fn deny(&self, record: v1::AuditRecord) {
        self.queue.push_and_wait(record, DENIAL_WAIT).await;
    }
}

/// One audit record being built; [`Auditor::succeeded`] publishes it.
#[derive(Clone, Debug)]
pub struct AuditEntry {
    record: v1::AuditRecord,
}

impl AuditEntry {
    /// A successful `action` of `category` by `ctx`'s caller in `tenant`, with a fresh id.
    pub fn new(ctx: &CallContext, tenant: &str, category: &str, action: &str) -> Self {
        let mut record = new_record(tenant, category, action);
        record.actor = Some(actor(Some(&ctx.caller), ctx.source));
        record.result = Some(v1::AuditResult {
            success: true,
            reason: String::new(),
        });
        Self { record }
    }

    /// An action the deployment itself took (no caller), e.g. `backtrack up` minting its
    /// admin token.
    pub fn system(subject: &str, tenant: &str, category: &str, action: &str) -> Self {
        let mut record = new_record(tenant, category, action);
        record.actor = Some(v1::AuditActor {
            subject: subject.to_string(),
            ..Default::default()
        });
        record.result = Some(v1::AuditResult {
            success: true,
            reason: String::new(),
        });
        Self { record }
    }

    /// An alert (`alert.raised`, category `alert`) about a change `actor` made: a finding,
    /// so it carries no result; its id is the caller's stable one and its time the
    /// change's, so an alert raised again is stored once.
    pub fn alert(actor: &str, tenant: &str, id: &str, time_ms: i64) -> Self {
        Self::finding(action::ALERT_RAISED, actor, tenant, id, time_ms)
    }

    /// An alert's change set back (`alert.undone`, category `alert`) by a later change
    /// `actor` made (by hand or through a recovery): like [`AuditEntry::alert`], a finding
    /// with a stable id and the later change's time.
    pub fn alert_undone(actor: &str, tenant: &str, id: &str, time_ms: i64) -> Self {
        Self::finding(action::ALERT_UNDONE, actor, tenant, id, time_ms)
    }

    fn finding(action: &str, actor: &str, tenant: &str, id: &str, time_ms: i64) -> Self {
        let mut record = new_record(tenant, category::ALERT, action);
        record.id = id.to_string();
        record.time_ms = time_ms;
        record.actor = Some(v1::AuditActor {
            subject: actor.to_string(),
            ..Default::default()
        });
        Self { record }
    }

    /// A deterministic id from the action's natural id (a backup id, a report id, ...), so
    /// the record of a retried action or publish is stored once.
    pub fn natural_id(mut self, natural: &str) -> Self {
        let name = format!("{}:{}:{natural}", self.record.tenant, self.record.action);
        self.record.id = uuid::Uuid::new_v5(&RECORD_NAMESPACE, name.as_bytes()).to_string();
        self
    }

    /// What the action was done to.
    pub fn target(mut self, kind: &str, id: &str, display_name: &str) -> Self {
        self.record.target = Some(v1::AuditTarget {
            kind: kind.to_string(),
            id: id.to_string(),
            display_name: display_name.to_string(),
        });
        self
    }

    /// Correlation ids; empty strings leave a field empty.
    pub fn correlation(mut self, job_id: &str, report_id: &str, backup_id: &str) -> Self {
        self.record.correlation = Some(v1::AuditCorrelation {
            job_id: job_id.to_string(),
            report_id: report_id.to_string(),
            backup_id: backup_id.to_string(),
        });
        self
    }

    /// The changed object's relevant values before the action (never secrets).
    pub fn before(mut self, value: &serde_json::Value) -> Self {
        self.record.before_json = backtrack_domain::canonical::to_canonical_string(value);
        self
    }

    /// The changed object's relevant values after the action (never secrets).
    pub fn after(mut self, value: &serde_json::Value) -> Self {
        self.record.after_json = backtrack_domain::canonical::to_canonical_string(value);
        self
    }

    /// Free-form details (counts, options).
    pub fn details(mut self, value: &serde_json::Value) -> Self {
        self.record.details_json = backtrack_domain::canonical::to_canonical_string(value);
        self
    }

    /// Marks the action as failed, with the reason.
    pub fn failure(mut self, reason: &str) -> Self {
        self.record.result = Some(v1::AuditResult {
            success: false,
            reason: reason.to_string(),
        });
        self
    }

    /// The record as it will be published.
    pub fn record(&self) -> &v1::AuditRecord {
        &self.record
    }

    pub fn into_record(self) -> v1::AuditRecord {
        self.record
    }
}

/// The actor of a record: the caller's subject and roles (empty when unknown) and the
/// peer address.
pub fn actor(caller: Option<&Caller>, source: Option<SocketAddr>) -> v1::AuditActor {
    v1::AuditActor {
        subject: caller.map(|c| c.subject.clone()).unwrap_or_default(),
        roles: caller.map(Caller::role_names).unwrap_or_default(),
        source_address: source.map(|a| a.to_string()).unwrap_or_default(),
    }
}

/// The `security.accessDenied` record of a refused call.
///
/// Its tenant is the one the call asked for when that is a valid tenant id, else
/// [`UNAUTHENTICATED_TENANT`] — also for every call without a valid token, whose claims
/// cannot be trusted to name a tenant. The target is the gRPC method; the reason is the
/// status message the caller got.
pub fn denial_record(
    asked_tenant: Option<&str>,
    caller: Option<&Caller>,
    source: Option<SocketAddr>,
    method: &str,
    status: &Status,
) -> v1::AuditRecord {
    let tenant = match (caller, asked_tenant) {
        (Some(_), Some(t)) if backtrack_domain::validate::tenant_id(t).is_ok() => t,
        _ => UNAUTHENTICATED_TENANT,
    };
    let mut record = new_record(tenant, category::SECURITY, action::ACCESS_DENIED);
    record.actor = Some(actor(caller, source));
    record.target = Some(v1::AuditTarget {
        kind: "rpc".into(),
        id: method.to_string(),
        display_name: String::new(),
    });
    record.result = Some(v1::AuditResult {
        success: false,
        reason: status.message().to_string(),
    });
    let code = match status.code() {
        Code::Unauthenticated => "UNAUTHENTICATED",
        Code::PermissionDenied => "PERMISSION_DENIED",
        _ => "OTHER",
    };
    let mut details = serde_json::json!({ "code": code });
    // Which token: what `backtrack token revoke` takes if its holder is not to call so.
    if let Some(id) = caller.and_then(Caller::token_id) {
        details["tokenId"] = serde_json::json!(id);
    }
    record.details_json = backtrack_domain::canonical::to_canonical_string(&details);
    record
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::auth::Role;

    fn ctx() -> CallContext {
        CallContext {
            caller: Caller::new(
                "alice".into(),
                vec!["contoso".into()],
                vec![Role::BackupAdministrator],
                vec![],
            ),
            source: "127.0.0.1:4000".parse().ok(),
        }
    }

    #[test]
    fn entries_carry_actor_and_success() {
        let r = AuditEntry::new(&ctx(), "contoso", category::BACKUP, action::BACKUP_CREATED)
            .target("backup", "b1", "nightly")
            .into_record();
        let actor = r.actor.unwrap_or_default();
        assert_eq!(actor.subject, "alice");
        assert_eq!(actor.roles, vec!["BackupAdministrator".to_string()]);
        assert_eq!(actor.source_address, "127.0.0.1:4000");
        assert!(r.result.unwrap_or_default().success);
        assert_eq!(r.tenant, "contoso");
    }

    #[test]
    fn natural_ids_are_deterministic_per_tenant_and_action() {
        let id = |tenant: &str, action: &str| {
            AuditEntry::new(&ctx(), tenant, category::BACKUP, action)
                .natural_id("b1")
                .into_record()
                .id
        };
        assert_eq!(
            id("contoso", action::BACKUP_CREATED),
            id("contoso", action::BACKUP_CREATED)
        );
        assert_ne!(
            id("contoso", action::BACKUP_CREATED),
            id("fabrikam", action::BACKUP_CREATED)
        );
        assert_ne!(
            id("contoso", action::BACKUP_CREATED),
            id("contoso", action::BACKUP_PINNED)
        );
    }

    #[test]
    fn denials_go_to_the_asked_tenant_only_for_identified_callers() {
        let c = ctx();
        let denied = Status::permission_denied("no");
        let r = denial_record(Some("fabrikam"), Some(&c.caller), c.source, "/m", &denied);
        assert_eq!(r.tenant, "fabrikam");
        assert_eq!(r.action, action::ACCESS_DENIED);
        assert!(!r.result.clone().unwrap_or_default().success);
        let anonymous = denial_record(Some("fabrikam"), None, None, "/m", &denied);
        assert_eq!(anonymous.tenant, UNAUTHENTICATED_TENANT);
        let bad_tenant = denial_record(Some("a.>"), Some(&c.caller), None, "/m", &denied);
        assert_eq!(bad_tenant.tenant, UNAUTHENTICATED_TENANT);
        let untold = denial_record(None, Some(&c.caller), None, "/m", &denied);
        assert_eq!(untold.tenant, UNAUTHENTICATED_TENANT);
        // The token is named, so its holder's token can be revoked.
        assert_eq!(r.details_json, r#"{"code":"PERMISSION_DENIED"}"#);
        let holder = c.caller.clone().with_token_id(Some("t-1".into()));
        let named = denial_record(Some("fabrikam"), Some(&holder), None, "/m", &denied);
        assert_eq!(
            named.details_json,
            r#"{"code":"PERMISSION_DENIED","tokenId":"t-1"}"#
        );
    }
}
