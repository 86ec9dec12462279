//! The mutation pipeline: per-tenant lock → decide → append (acks awaited) → wait until
//! the projector has folded the events → answer.
//!
//! Holding the tenant's lock from decision to projection makes every decision see every
//! earlier acknowledged write (uniqueness, link targets). Each event also carries the
//! object's expected last subject sequence, so a second writer elsewhere cannot slip a
//! change in between unnoticed.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use backtrack_domain::batch::{decide_step, BatchPolicy, BatchStep, Decision, StepResult};
use backtrack_domain::command::{decide, Command, DecideContext, DirectoryView, PendingEvent};
use backtrack_domain::event::{Change, Event, EventMeta, TENANT_KIND};
use backtrack_domain::state::OverlayView;
use backtrack_domain::{validate, DirectoryObject, DomainError, ObjectKind};
use backtrack_eventlog::{Append, EventLog, EventLogError};
use backtrack_store::DirectoryProjection;
use futures::StreamExt;
use tokio::sync::watch;
use tokio_stream::wrappers::ReceiverStream;
use uuid::Uuid;

use crate::config::DirectoryConfig;
use crate::error::DirectoryError;

/// Decided import events handed to the log at a time: small enough that the first ones
/// are stored (and projected) while the rest are still being decided.
const DECIDE_CHUNK: usize = 128;
/// Decided chunks that may wait for the log before deciding pauses.
const DECIDED_AHEAD: usize = 64;

/// Who asks and why: stamped on every event of a mutation.
#[derive(Debug, Clone)]
pub struct Origin {
    pub actor: String,
    pub source: String,
    pub correlation_id: Option<String>,
}

/// One object of a bulk import.
#[derive(Debug, Clone)]
pub struct ImportItem {
    pub kind: ObjectKind,
    pub id: Option<String>,
    pub attributes: serde_json::Map<String, serde_json::Value>,
    pub links: Vec<backtrack_domain::Link>,
    pub mutation_id: Option<String>,
}

/// What happened to one import item.
#[derive(Debug, Clone, PartialEq)]
pub enum ImportOutcome {
    Created(String),
    AlreadyExists(String),
    Rejected(String),
}

pub use backtrack_domain::batch::PlannedOutcome;

/// What one command did.
#[derive(Debug, Clone, PartialEq)]
pub struct Executed {
    /// The object afterwards (`None` after a hard delete).
    pub object: Option<DirectoryObject>,
    /// Events appended: 0 when the object already was as asked, or on a retry.
    pub events: u64,
    /// The mutation id had been applied before: nothing was decided again.
    pub already_applied: bool,
}

/// The running directory: shared by the gRPC API, the sweeper and in-process callers.
#[derive(Clone)]
pub struct Directory {
    inner: Arc<Inner>,
}

struct Inner {
    config: DirectoryConfig,
    log: EventLog,
    audit: backtrack_eventlog::AuditLog,
    projection: Arc<DirectoryProjection>,
    progress: Arc<watch::Sender<u64>>,
    locks: Mutex<HashMap<String, Arc<tokio::sync::Mutex<()>>>>,
}

use backtrack_platform::clock::now_ms;

impl Directory {
    pub(crate) fn new(
        config: DirectoryConfig,
        log: EventLog,
        audit: backtrack_eventlog::AuditLog,
        projection: Arc<DirectoryProjection>,
        progress: Arc<watch::Sender<u64>>,
    ) -> Self {
        Self {
            inner: Arc::new(Inner {
                config,
                log,
                audit,
                projection,
                progress,
                locks: Mutex::new(HashMap::new()),
            }),
        }
    }

    pub fn projection(&self) -> &DirectoryProjection {
        &self.inner.projection
    }

    pub fn log(&self) -> &EventLog {
        &self.inner.log
    }

    /// The audit stream, for actions the directory takes by itself (recycle-bin purges).
    pub fn audit_log(&self) -> &backtrack_eventlog::AuditLog {
        &self.inner.audit
    }

    /// How often the recycle-bin sweeper runs.
    pub fn sweep_interval(&self) -> std::time::Duration {
        self.inner.config.sweep_interval
    }

    /// Last stream sequence folded into the projection.
    pub fn position(&self) -> u64 {
        *self.inner.progress.borrow()
    }

    /// Waits until the projection has folded `sequence`.
    pub async fn wait_for(&self, sequence: u64) -> Result<(), DirectoryError> {
        let mut rx = self.inner.progress.subscribe();
        let outcome = tokio::time::timeout(
            self.inner.config.projection_wait,
            rx.wait_for(|p| *p >= sequence),
        )
        .await;
        let caught_up = matches!(outcome, Ok(Ok(_)));
        drop(outcome);
        if caught_up {
            Ok(())
        } else {
            Err(DirectoryError::Unavailable(format!(
                "the change is stored (sequence {sequence}) but the directory view has not caught up yet; read again shortly"
            )))
        }
    }

    fn lock(&self, tenant: &str) -> Arc<tokio::sync::Mutex<()>> {
        let mut locks = self
            .inner
            .locks
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        locks.entry(tenant.to_string()).or_default().clone()
    }

    fn context(&self) -> DecideContext {
        DecideContext {
            now_ms: now_ms(),
            recycle_bin_retention_ms: self.inner.config.recycle_bin_retention.as_millis() as i64,
        }
    }

    /// Checks the tenant id and that the tenant exists.
    pub fn require_tenant(&self, tenant: &str) -> Result<(), DirectoryError> {
        validate::tenant_id(tenant)?;
        if self.inner.projection.tenant(tenant)?.is_none() {
            return Err(DirectoryError::NotFound(format!(
                "tenant '{tenant}' does not exist: create it with `backtrack tenant create {tenant}`"
            )));
        }
        Ok(())
    }

    /// Creates a tenant (one `tenantCreated` event).
    pub async fn create_tenant(
        &self,
        tenant: &str,
        display_name: &str,
        origin: &Origin,
    ) -> Result<(), DirectoryError> {
        validate::tenant_id(tenant)?;
        let lock = self.lock(tenant);
        let _guard = lock.lock().await;
        if self.inner.projection.tenant(tenant)?.is_some() {
            return Err(
                DomainError::AlreadyExists(format!("tenant '{tenant}' already exists")).into(),
            );
        }
        let name = if display_name.is_empty() {
            tenant
        } else {
            display_name
        };
        let mutation = Uuid::now_v7().to_string();
        let event = Event {
            meta: meta(tenant, TENANT_KIND, tenant, origin, &mutation),
            change: Change::TenantCreated {
                display_name: name.to_string(),
            },
        };
        let results = self
            .inner
            .log
            .append(vec![Append {
                msg_id: message_id(tenant, &mutation, 0),
                expected_last_subject_sequence: Some(0),
                event,
            }])
            .await;
        let seq = match results.into_iter().next() {
            Some(Ok(a)) => a.sequence,
            Some(Err(EventLogError::Conflict { .. })) => {
                return Err(
                    DomainError::AlreadyExists(format!("tenant '{tenant}' already exists")).into(),
                )
            }
            Some(Err(e)) => return Err(e.into()),
            None => {
                return Err(DirectoryError::Unavailable(
                    "no acknowledgement from the event log".into(),
                ))
            }
        };
        self.wait_for(seq).await
    }

    /// Decides and applies one command. Returns the affected object afterwards (`None`
    /// after a hard delete) and the number of events appended (0 = nothing to change).
    pub async fn execute(
        &self,
        tenant: &str,
        command: Command,
        mutation_id: Option<String>,
        origin: &Origin,
    ) -> Result<(Option<DirectoryObject>, u64), DirectoryError> {
        let done = self.run(tenant, command, mutation_id, origin, &[]).await?;
        Ok((done.object, done.events))
    }

    /// [`Directory::execute`] for a caller limited to object `kinds` (empty: every kind),
    /// also saying whether the mutation id had been applied before. The object's kind is
    /// checked under the tenant's lock, so it cannot change between check and change.
    pub async fn run(
        &self,
        tenant: &str,
        command: Command,
        mutation_id: Option<String>,
        origin: &Origin,
        kinds: &[String],
    ) -> Result<Executed, DirectoryError> {
        self.require_tenant(tenant)?;
        let target = command_target(&command)?;
        let lock = self.lock(tenant);
        let _guard = lock.lock().await;
        if !kinds.is_empty() {
            let kind = match &command {
                Command::Create { kind, .. } => Some(*kind),
                _ => self.inner.projection.head(tenant, &target)?.map(|(k, _)| k),
            };
            // An object that is not there is the decision's to refuse (not found).
            if let Some(kind) = kind.filter(|k| !kinds.iter().any(|g| g == k.as_str())) {
                return Err(DirectoryError::Forbidden(format!(
                    "this token does not grant access to objects of kind '{kind}'"
                )));
            }
        }
        if let Some(m) = &mutation_id {
            if self
                .inner
                .projection
                .mutation_sequence(tenant, m)?
                .is_some()
            {
                // A retry of a mutation already applied: answer as the first time did.
                return Ok(Executed {
                    object: self.inner.projection.object_with_links(tenant, &target)?,
                    events: 0,
                    already_applied: true,
                });
            }
        }
        let view = self.inner.projection.view(tenant);
        let decided = decide(&view, &self.context(), command);
        // A decision taken on a read that failed is void, whatever it said.
        view.check()?;
        let pending = decided?;
        let events = pending.len() as u64;
        if !pending.is_empty() {
            let mutation = mutation_id.unwrap_or_else(|| Uuid::now_v7().to_string());
            let appends = self.appends(tenant, pending, &mutation, origin, &mut HashMap::new())?;
            let mut last = 0;
            for result in self.inner.log.append(appends).await {
                last = last.max(result?.sequence);
            }
            self.wait_for(last).await?;
        }
        Ok(Executed {
            object: self.inner.projection.object_with_links(tenant, &target)?,
            events,
            already_applied: false,
        })
    }

    /// Runs many mutations with all their appends in flight at once. Each operation is
    /// a mutation id and a function that looks at the tenant (plus the operations before
    /// it in the batch) and says which command to run, if any. A mutation id already in
    /// the log is not decided again. Used by recovery jobs, whose operations are planned
    /// ahead but decided against the state they meet.
    pub async fn execute_planned<F>(
        &self,
        tenant: &str,
        operations: Vec<(String, F)>,
        origin: &Origin,
    ) -> Result<Vec<PlannedOutcome>, DirectoryError>
    where
        F: FnOnce(&dyn DirectoryView) -> Option<Command>,
    {
        self.require_tenant(tenant)?;
        let span = tracing::info_span!(
            "directory.execute_planned",
            tenant,
            operations = operations.len()
        );
        let lock = self.lock(tenant);
        let _guard = tracing::Instrument::instrument(lock.lock(), span.clone()).await;
        let (mut outcomes, appends, owners) =
            span.in_scope(|| self.decide_planned(tenant, operations, origin))?;
        let results =
            tracing::Instrument::instrument(self.inner.log.append(appends), span.clone()).await;
        let mut results = results.into_iter();
        let mut last = 0;
        for (index, count) in owners {
            let mut stored = 0;
            let mut error = None;
            for _ in 0..count {
                match results.next() {
                    Some(Ok(a)) => {
                        last = last.max(a.sequence);
                        stored += u64::from(!a.duplicate);
                    }
                    Some(Err(e)) => error = Some(e.to_string()),
                    None => error = Some("no acknowledgement from the event log".into()),
                }
            }
            outcomes[index] = match error {
                // Unavailable: the append may have happened; the caller retries with the
                // same mutation id and the log deduplicates.
                Some(e) => PlannedOutcome::NotStored(e),
                None => PlannedOutcome::Applied { events: stored },
            };
        }
        if last > 0 {
            self.wait_for(last).await?;
        }
        Ok(outcomes)
    }

    /// Decides and applies one batch of a recovery job ([`backtrack_domain::batch`]):
    /// what each step met and became, and the last sequence stored (0: nothing).
    pub async fn apply_batch(
        &self,
        tenant: &str,
        steps: Vec<BatchStep>,
        policy: BatchPolicy,
        origin: &Origin,
    ) -> Result<(Vec<StepResult>, u64), DirectoryError> {
        let decisions: Vec<Mutex<Decision>> = steps.iter().map(|_| Default::default()).collect();
        let policy = Mutex::new(policy);
        let operations = steps
            .iter()
            .zip(&decisions)
            .map(|(step, slot)| {
                let policy = &policy;
                let decide = move |view: &dyn DirectoryView| {
                    let mut policy = policy.lock().unwrap_or_else(|e| e.into_inner());
                    let (decision, command) = decide_step(step, view, &mut policy);
                    *slot.lock().unwrap_or_else(|e| e.into_inner()) = decision;
                    command
                };
                (step.mutation_id.clone(), decide)
            })
            .collect();
        let outcomes = self.execute_planned(tenant, operations, origin).await?;
        let last = self.position();
        let results = outcomes
            .into_iter()
            .zip(decisions)
            .map(|(outcome, decision)| StepResult {
                outcome,
                decision: decision.into_inner().unwrap_or_else(|e| e.into_inner()),
            })
            .collect();
        Ok((results, last))
    }

    #[allow(clippy::type_complexity)]
    fn decide_planned<F>(
        &self,
        tenant: &str,
        operations: Vec<(String, F)>,
        origin: &Origin,
    ) -> Result<(Vec<PlannedOutcome>, Vec<Append>, Vec<(usize, usize)>), DirectoryError>
    where
        F: FnOnce(&dyn DirectoryView) -> Option<Command>,
    {
        let ctx = self.context();
        let projection = &self.inner.projection;
        let base = projection.view(tenant);
        let mut overlay = OverlayView::new(&base);
        let mut outcomes = Vec::with_capacity(operations.len());
        let mut appends = Vec::new();
        let mut owners = Vec::new();
        let mut versions = HashMap::new();
        for (mutation, decide_command) in operations {
            if projection.mutation_sequence(tenant, &mutation)?.is_some() {
                outcomes.push(PlannedOutcome::AlreadyApplied);
                continue;
            }
            let Some(command) = decide_command(&overlay) else {
                base.check()?;
                outcomes.push(PlannedOutcome::Declined);
                continue;
            };
            let decided = decide(&overlay, &ctx, command);
            // A decision taken on a read that failed is void: the batch fails, nothing
            // of it appended, and the job retries it.
            base.check()?;
            match decided {
                Ok(pending) if pending.is_empty() => {
                    outcomes.push(PlannedOutcome::Unchanged);
                }
                Ok(pending) => {
                    let batch = self.appends(tenant, pending, &mutation, origin, &mut versions)?;
                    for append in &batch {
                        overlay.apply(&append.event, 0);
                    }
                    owners.push((outcomes.len(), batch.len()));
                    appends.extend(batch);
                    outcomes.push(PlannedOutcome::Applied { events: 0 });
                }
                Err(e) => outcomes.push(PlannedOutcome::Refused(e.to_string())),
            }
        }
        Ok((outcomes, appends, owners))
    }

    /// Creates many objects with many appends in flight. Each item is decided against
    /// the tenant plus the items before it, so links may point at earlier items.
    ///
    /// Deciding and storing overlap: the items are decided on a blocking thread, and each
    /// chunk of decided events is published while the next chunk is decided (and the
    /// projector folds the first ones meanwhile). The tenant stays locked until every
    /// event is acknowledged and projected, as for any other write.
    pub async fn import(
        &self,
        tenant: &str,
        items: Vec<ImportItem>,
        origin: &Origin,
    ) -> Result<(Vec<ImportOutcome>, u64), DirectoryError> {
        self.require_tenant(tenant)?;
        let lock = self.lock(tenant);
        let _guard = lock.lock().await;
        let (sender, receiver) = tokio::sync::mpsc::channel::<Vec<Append>>(DECIDED_AHEAD);
        let decider = {
            let directory = self.clone();
            let tenant = tenant.to_string();
            let origin = origin.clone();
            tokio::task::spawn_blocking(move || {
                directory.decide_import(&tenant, items, &origin, &mut |chunk| {
                    sender.blocking_send(chunk).is_ok()
                })
            })
        };
        let decided = ReceiverStream::new(receiver).flat_map(futures::stream::iter);
        let results = self.inner.log.append_stream(decided).await;
        // Events decided before a failure were stored all the same (and are reported as
        // stored on a retry with the same mutation ids); the rest were never sent.
        let decided = decider
            .await
            .map_err(|e| {
                DirectoryError::Unavailable(format!("the import stopped while deciding: {e}"))
            })
            .and_then(|decided| decided);
        let (mut outcomes, owners) = match decided {
            Ok(decided) => decided,
            Err(e) => {
                // What was stored before the failure is projected before the tenant is
                // unlocked: the next write is decided on it.
                let stored = results.iter().flatten().map(|a| a.sequence).max();
                if let Some(last) = stored {
                    self.wait_for(last).await?;
                }
                return Err(e);
            }
        };
        let mut results = results.into_iter();
        let mut last = 0;
        let mut events = 0;
        for (index, count) in owners {
            for _ in 0..count {
                match results.next() {
                    Some(Ok(a)) => {
                        last = last.max(a.sequence);
                        if a.duplicate {
                            // An earlier attempt of this very mutation was stored.
                            if let ImportOutcome::Created(id) = &outcomes[index] {
                                outcomes[index] = ImportOutcome::AlreadyExists(id.clone());
                            }
                        } else {
                            events += 1;
                        }
                    }
                    Some(Err(EventLogError::Conflict { .. })) => {
                        if let ImportOutcome::Created(id) = &outcomes[index] {
                            outcomes[index] = ImportOutcome::AlreadyExists(id.clone());
                        }
                    }
                    Some(Err(e)) => {
                        outcomes[index] = ImportOutcome::Rejected(format!("not stored: {e}"));
                    }
                    None => {
                        outcomes[index] =
                            ImportOutcome::Rejected("no acknowledgement from the event log".into());
                    }
                }
            }
        }
        if last > 0 {
            self.wait_for(last).await?;
        }
        Ok((outcomes, events))
    }

    /// Decides every import item against the tenant plus the items before it, handing
    /// the appends to `emit` a chunk at a time (in item order) as soon as a chunk is
    /// decided; stops early if `emit` says nobody takes them any more. Returns each item's
    /// outcome and which appends belong to which item: (outcome index, append count), in
    /// the order the appends were emitted. Kept apart from the async part: the overlay
    /// borrows the projection and is not `Send`.
    #[allow(clippy::type_complexity)]
    fn decide_import(
        &self,
        tenant: &str,
        items: Vec<ImportItem>,
        origin: &Origin,
        emit: &mut dyn FnMut(Vec<Append>) -> bool,
    ) -> Result<(Vec<ImportOutcome>, Vec<(usize, usize)>), DirectoryError> {
        let ctx = self.context();
        let projection = &self.inner.projection;
        let base = projection.view(tenant);
        let mut overlay = OverlayView::new(&base);
        let mut outcomes = Vec::with_capacity(items.len());
        let mut chunk = Vec::with_capacity(DECIDE_CHUNK);
        let mut owners = Vec::new();
        let mut versions = HashMap::new();
        for item in items {
            let id = match item.id {
                Some(id) => id,
                None => item
                    .kind
                    .singleton_id()
                    .map(str::to_string)
                    .unwrap_or_else(|| Uuid::new_v4().to_string()),
            };
            if let Some(m) = &item.mutation_id {
                if projection.mutation_sequence(tenant, m)?.is_some() {
                    outcomes.push(ImportOutcome::AlreadyExists(id));
                    continue;
                }
            }
            let command = Command::Create {
                kind: item.kind,
                id: id.clone(),
                attributes: item.attributes,
                links: item.links,
            };
            let decided = decide(&overlay, &ctx, command);
            // A decision taken on a read that failed is void: the import stops here (the
            // chunks emitted before are stored; a retry finds them).
            base.check()?;
            match decided {
                Ok(pending) => {
                    let id = pending.first().map(|p| p.object_id.clone()).unwrap_or(id);
                    let mutation = item
                        .mutation_id
                        .unwrap_or_else(|| Uuid::now_v7().to_string());
                    let batch = self.appends(tenant, pending, &mutation, origin, &mut versions)?;
                    // The overlay folds the very events that will be appended.
                    for append in &batch {
                        overlay.apply(&append.event, 0);
                    }
                    owners.push((outcomes.len(), batch.len()));
                    chunk.extend(batch);
                    outcomes.push(ImportOutcome::Created(id));
                }
                Err(DomainError::AlreadyExists(m)) if m.contains(&id) => {
                    outcomes.push(ImportOutcome::AlreadyExists(id));
                }
                Err(e) => outcomes.push(ImportOutcome::Rejected(e.to_string())),
            }
            if chunk.len() >= DECIDE_CHUNK
                && !emit(std::mem::replace(
                    &mut chunk,
                    Vec::with_capacity(DECIDE_CHUNK),
                ))
            {
                return Ok((outcomes, owners));
            }
        }
        if !chunk.is_empty() {
            emit(chunk);
        }
        Ok((outcomes, owners))
    }

    /// Turns decided events into appends: ids, mutation ids (`<mutation>:<n>`) and the
    /// expected last subject sequence of each object.
    fn appends(
        &self,
        tenant: &str,
        pending: Vec<PendingEvent>,
        mutation: &str,
        origin: &Origin,
        seen: &mut HashMap<String, ()>,
    ) -> Result<Vec<Append>, DirectoryError> {
        let mut out = Vec::with_capacity(pending.len());
        for (n, p) in pending.into_iter().enumerate() {
            // Only the first event on a subject can name its expected sequence: later
            // ones in the same mutation follow it in the same pipelined batch.
            let expected = if seen.insert(p.object_id.clone(), ()).is_none() {
                Some(
                    self.inner
                        .projection
                        .subject_sequence(tenant, &p.object_id)?,
                )
            } else {
                None
            };
            out.push(Append {
                msg_id: message_id(tenant, mutation, n),
                expected_last_subject_sequence: expected,
                event: Event {
                    meta: meta(tenant, p.kind.as_str(), &p.object_id, origin, mutation),
                    change: p.change,
                },
            });
        }
        Ok(out)
    }
}

/// `Nats-Msg-Id` of the n-th event of a mutation. JetStream deduplicates across the whole
/// stream, so the tenant is part of it: the same mutation id in two tenants is two writes.
pub fn message_id(tenant: &str, mutation: &str, n: usize) -> String {
    format!("{tenant}:{mutation}:{n}")
}

fn meta(tenant: &str, kind: &str, object_id: &str, origin: &Origin, mutation: &str) -> EventMeta {
    EventMeta {
        event_id: Uuid::now_v7().to_string(),
        tenant: tenant.to_string(),
        kind: kind.to_string(),
        object_id: object_id.to_string(),
        actor: origin.actor.clone(),
        time_ms: now_ms(),
        source: origin.source.clone(),
        correlation_id: origin.correlation_id.clone(),
        mutation_id: mutation.to_string(),
    }
}

fn command_target(command: &Command) -> Result<String, DirectoryError> {
    Ok(match command {
        Command::Create { kind, id, .. } => validate::object_id(*kind, id)?,
        Command::Update { id, .. }
        | Command::AddLinks { id, .. }
        | Command::RemoveLinks { id, .. }
        | Command::SoftDelete { id }
        | Command::Restore { id }
        | Command::HardDelete { id } => validate::any_object_id(id)?,
    })
}
