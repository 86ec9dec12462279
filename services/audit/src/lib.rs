//! The audit service: follows `BT_AUDIT`, hash-chains each tenant's records in the order
//! the stream stored them, indexes them for queries, verifies chains against the heads it
//! checkpoints in NATS KV, and exports records to SIEM sinks.
//!
//! Modules: [`indexer`] (the consumer), [`api`] (the gRPC `AuditService`), [`sinks`] (SIEM
//! delivery), [`format`] (OCSF, CEF, JSON and chat renderings), [`alerting`] (alerts on
//! the trail itself: backups turned off, alerts silenced, all-powerful tokens), [`error`].

pub mod alerting;
pub mod api;
pub mod error;
pub mod format;
pub mod indexer;
pub mod sinks;

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use async_nats::jetstream::{self, kv};
use backtrack_eventlog::AuditLog;
use backtrack_platform::shutdown::Shutdown;
use backtrack_proto::v1;
use backtrack_store::audit::{AuditIndex, AuditQuery, ChainedEntry};
use prost::Message;
use tokio::sync::{broadcast, watch};

pub use error::AuditError;

/// Where chain heads are checkpointed: key `<tenant>`, value `<index> <hex hash>`.
pub const HEADS_BUCKET: &str = "bt-audit-heads";
/// The tenant token of records about callers that could not be identified.
pub const UNAUTHENTICATED_TENANT: &str = backtrack_platform::audit::UNAUTHENTICATED_TENANT;
/// The tenant token of records about the deployment as a whole (tokens for every tenant).
pub const DEPLOYMENT_TENANT: &str = backtrack_platform::audit::DEPLOYMENT_TENANT;

/// How the audit service runs.
#[derive(Debug, Clone)]
pub struct AuditConfig {
    pub index_dir: PathBuf,
    pub replicas: usize,
    /// How often chain heads are checkpointed to [`HEADS_BUCKET`].
    pub checkpoint_every: Duration,
    /// How long a query or verification waits for the index to catch up with the stream.
    pub catch_up_wait: Duration,
    /// SIEM sinks to export to, each on its own durable consumer.
    pub sinks: Vec<sinks::SinkConfig>,
    /// Whether this instance raises the trail's own alerts ([`alerting`]); one per
    /// deployment.
    pub alerts: bool,
    /// When refused calls are a burst ([`alerting::DenialLimits`]).
    pub denial_limits: alerting::DenialLimits,
}

impl AuditConfig {
    pub fn new(index_dir: PathBuf) -> Self {
        Self {
            index_dir,
            replicas: 1,
            checkpoint_every: Duration::from_secs(1),
            catch_up_wait: Duration::from_secs(30),
            sinks: Vec::new(),
            alerts: false,
            denial_limits: alerting::DenialLimits::default(),
        }
    }
}

/// The running audit service. Cheap to clone.
#[derive(Clone)]
pub struct Audit {
    inner: Arc<Inner>,
}

struct Inner {
    config: AuditConfig,
    index: Arc<AuditIndex>,
    log: AuditLog,
    heads: kv::Store,
    progress: watch::Receiver<u64>,
    feed: broadcast::Sender<Arc<ChainedEntry>>,
    sink_stats: Vec<(String, Arc<sinks::SinkStats>)>,
}

impl std::fmt::Debug for Audit {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Audit").finish_non_exhaustive()
    }
}

impl Audit {
    /// Opens the stream, the index and the heads bucket, and starts the indexer.
    pub async fn start(
        config: AuditConfig,
        nats: async_nats::Client,
        shutdown: Shutdown,
    ) -> Result<Self, AuditError> {
        let log = AuditLog::open(nats.clone(), config.replicas).await?;
        if config.alerts {
            alerting::prepare(&log, &nats, config.replicas)
                .await
                .map_err(|e| AuditError::Unavailable(format!("the audit trail's alerting: {e}")))?;
            tokio::spawn(alerting::run(
                log.clone(),
                nats.clone(),
                config.replicas,
                config.denial_limits,
                shutdown.clone(),
            ));
        }
        let js = jetstream::new(nats);
        for sink in &config.sinks {
            sink.validate()
                .map_err(|e| AuditError::Invalid(format!("audit sink '{}': {e}", sink.name)))?;
        }
        let heads = backtrack_eventlog::buckets::kv_bucket(
            &js,
            HEADS_BUCKET,
            "Backtrack audit chain heads",
            std::time::Duration::ZERO,
            config.replicas,
        )
        .await?;
        std::fs::create_dir_all(&config.index_dir).map_err(|e| {
            AuditError::Internal(format!("cannot create {}: {e}", config.index_dir.display()))
        })?;
        let index = Arc::new(AuditIndex::open(&config.index_dir)?);
        let (progress_tx, progress) = watch::channel(index.position()?);
        let (feed, _) = broadcast::channel(4096);
        let mut sink_stats = Vec::new();
        for sink in config.sinks.clone() {
            let stats = Arc::new(sinks::SinkStats::default());
            sink_stats.push((sink.name.clone(), stats.clone()));
            tokio::spawn(sinks::run(js.clone(), sink, stats, shutdown.clone()));
        }
        let audit = Self {
            inner: Arc::new(Inner {
                config,
                index,
                log,
                heads,
                progress,
                feed,
                sink_stats,
            }),
        };
        tokio::spawn(indexer::run(audit.clone(), progress_tx, shutdown));
        Ok(audit)
    }

    pub fn log(&self) -> &AuditLog {
        &self.inner.log
    }

    pub fn index(&self) -> &AuditIndex {
        &self.inner.index
    }

    pub(crate) fn index_arc(&self) -> Arc<AuditIndex> {
        self.inner.index.clone()
    }

    pub(crate) fn heads(&self) -> &kv::Store {
        &self.inner.heads
    }

    pub(crate) fn feed(&self) -> &broadcast::Sender<Arc<ChainedEntry>> {
        &self.inner.feed
    }

    pub(crate) fn config(&self) -> &AuditConfig {
        &self.inner.config
    }

    /// Each configured sink's counters, by name.
    pub fn sink_stats(&self) -> &[(String, Arc<sinks::SinkStats>)] {
        &self.inner.sink_stats
    }

    /// New chained entries, as they are indexed.
    pub fn subscribe(&self) -> broadcast::Receiver<Arc<ChainedEntry>> {
        self.inner.feed.subscribe()
    }

    /// The last stream sequence indexed.
    pub fn position(&self) -> u64 {
        *self.inner.progress.borrow()
    }

    /// Waits until everything the stream held when called is indexed; returns that sequence.
    pub async fn catch_up(&self) -> Result<u64, AuditError> {
        let last = self.inner.log.last_sequence().await?;
        let mut progress = self.inner.progress.clone();
        let wait = self.inner.config.catch_up_wait;
        let reached = tokio::time::timeout(wait, progress.wait_for(|p| *p >= last))
            .await
            .map(|r| r.is_ok());
        match reached {
            Ok(true) => Ok(last),
            Ok(false) => Err(AuditError::Unavailable("the audit indexer has stopped".into())),
            Err(_) => Err(AuditError::Unavailable(format!(
                "the audit index has not reached stream sequence {last} within {wait:?} (it is at {}); retry shortly",
                self.position()
            ))),
        }
    }

    /// One page of a tenant's records.
    pub async fn query(
        &self,
        tenant: &str,
        query: &AuditQuery,
    ) -> Result<(Vec<v1::AuditEntry>, String), AuditError> {
        if !query.page_token.is_empty() && hex::decode(&query.page_token).is_err() {
            return Err(AuditError::Invalid(
                "page_token is not one this service handed out; start again without it".into(),
            ));
        }
        if !["", "success", "failure"].contains(&query.result.as_str()) {
            return Err(AuditError::Invalid(format!(
                "result '{}' is neither success nor failure",
                backtrack_domain::validate::printable(&query.result)
            )));
        }
        self.catch_up().await?;
        let (index, tenant, query) = (self.index_arc(), tenant.to_string(), query.clone());
        let (links, next) = tokio::task::spawn_blocking(move || index.query(&tenant, &query))
            .await
            .map_err(|e| AuditError::Internal(e.to_string()))??;
        Ok((links.iter().map(entry).collect(), next))
    }

    /// Recomputes a tenant's chain and compares it with the checkpointed head.
    pub async fn verify(&self, tenant: &str) -> Result<v1::VerifyChainResponse, AuditError> {
        self.catch_up().await?;
        let checkpoint = self.checkpointed_head(tenant).await?;
        let (index, t) = (self.index_arc(), tenant.to_string());
        let check = tokio::task::spawn_blocking(move || index.verify(&t))
            .await
            .map_err(|e| AuditError::Internal(e.to_string()))??;
        let mut response = v1::VerifyChainResponse {
            ok: check.broken.is_none(),
            checked: check.checked,
            head_index: check.head_index,
            head_hash: hex::encode(check.head_hash),
            first_bad_index: check.broken.as_ref().map_or(0, |b| b.0),
            problem: check
                .broken
                .as_ref()
                .map(|b| b.1.clone())
                .unwrap_or_default(),
            checkpoint_index: checkpoint.as_ref().map_or(0, |c| c.0),
        };
        if let (true, Some((at, hash))) = (response.ok, checkpoint) {
            let stored = self.inner.index.entry(tenant, at)?;
            let problem = match stored {
                None => Some(format!(
                    "the chain has {} entries but its checkpointed head is entry {at}: entries were removed",
                    check.checked
                )),
                Some(link) if hex::encode(&link.hash) != hash => Some(format!(
                    "entry {at} differs from the checkpointed head: the chain was rewritten"
                )),
                Some(_) => None,
            };
            if let Some(problem) = problem {
                response.ok = false;
                response.first_bad_index = at.min(check.checked + 1);
                response.problem = problem;
            }
        }
        Ok(response)
    }

    /// The last checkpointed head of a tenant: (index, hex hash).
    async fn checkpointed_head(&self, tenant: &str) -> Result<Option<(u64, String)>, AuditError> {
        let value = self.inner.heads.get(tenant).await.map_err(|e| {
            AuditError::Unavailable(format!("read the checkpointed chain head: {e}"))
        })?;
        Ok(value.and_then(|v| {
            let text = String::from_utf8_lossy(&v).into_owned();
            let (index, hash) = text.split_once(' ')?;
            Some((index.parse().ok()?, hash.to_string()))
        }))
    }
}

/// An indexed entry as the API shows it.
pub fn entry(link: &v1::ChainLink) -> v1::AuditEntry {
    v1::AuditEntry {
        record: v1::AuditRecord::decode(link.payload.as_slice()).ok(),
        index: link.index,
        prev_hash: hex::encode(&link.prev_hash),
        hash: hex::encode(&link.hash),
        stream_sequence: link.stream_sequence,
        stored_at_ms: link.stored_at_ms,
    }
}
