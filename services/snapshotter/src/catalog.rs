//! The backup catalog: manifests and pin records on the `BT_BACKUPS` stream (subject
//! `bt.backup.<tenant>`), folded into memory by a follower so every replica sees every
//! backup. The stream denies deletes and purges: nothing removes a manifest.
//!
//! Records carry a `Bt-Record` header: `manifest` (payload: a protobuf `Backup`), or
//! `pin` / `unpin` (headers `Bt-Backup-Id`, `Bt-Actor`; no payload).

use std::collections::HashMap;
use std::sync::{Arc, RwLock};
use std::time::Duration;

use async_nats::jetstream::consumer::pull::OrderedConfig;
use async_nats::jetstream::consumer::DeliverPolicy;
use async_nats::jetstream::message::PublishMessage;
use async_nats::jetstream::stream::{Config, StorageType};
use async_nats::jetstream::{self, Message};
use async_nats::HeaderMap;
use backtrack_eventlog::read::{Sequenced, StallWatched};
use backtrack_eventlog::EventLogError;
use backtrack_platform::shutdown::{Restarts, Shutdown};
use backtrack_proto::v1;
use futures::StreamExt;
use prost::Message as _;
use tokio::sync::watch;

use crate::error::SnapshotterError;

pub const BACKUP_STREAM: &str = "BT_BACKUPS";
const RECORD: &str = "Bt-Record";
const BACKUP_ID: &str = "Bt-Backup-Id";
const ACTOR: &str = "Bt-Actor";

/// A backup as the catalog knows it.
#[derive(Debug, Clone, PartialEq)]
pub struct CatalogEntry {
    /// The manifest as published, with `manifest_sequence` filled in.
    pub manifest: v1::Backup,
    pub pinned: bool,
    /// Stream sequence of the pin record in force (0: none).
    pin_sequence: u64,
}

#[derive(Debug, Default)]
struct State {
    tenants: HashMap<String, Vec<CatalogEntry>>,
    applied: u64,
}

/// The catalog handle. Cheap to clone.
#[derive(Clone)]
pub struct Catalog {
    jetstream: jetstream::Context,
    state: Arc<RwLock<State>>,
    applied: watch::Receiver<u64>,
}

impl std::fmt::Debug for Catalog {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Catalog").finish_non_exhaustive()
    }
}

impl Catalog {
    /// Opens (or creates) `BT_BACKUPS`, loads every record and keeps following it.
    pub async fn open(
        jetstream: jetstream::Context,
        replicas: usize,
        shutdown: Shutdown,
    ) -> Result<Self, SnapshotterError> {
        let mut stream = ensure_stream(&jetstream, replicas).await?;
        let last = stream
            .info()
            .await
            .map_err(|e| SnapshotterError::Unavailable(format!("{BACKUP_STREAM} info: {e}")))?
            .state
            .last_sequence;
        let state = Arc::new(RwLock::new(State::default()));
        let (applied_tx, applied) = watch::channel(0);
        tokio::spawn(follow(
            jetstream.clone(),
            state.clone(),
            applied_tx,
            shutdown,
        ));
        let catalog = Self {
            jetstream,
            state,
            applied,
        };
        catalog.wait_applied(last, Duration::from_secs(60)).await?;
        Ok(catalog)
    }

    /// Publishes a manifest (deduplicated by its id) and records it.
    pub async fn publish_manifest(
        &self,
        mut manifest: v1::Backup,
    ) -> Result<CatalogEntry, SnapshotterError> {
        let mut headers = HeaderMap::new();
        headers.insert(RECORD, "manifest");
        headers.insert(BACKUP_ID, manifest.id.as_str());
        headers.insert(ACTOR, manifest.requested_by.as_str());
        let sequence = self
            .publish(
                &manifest.tenant,
                &manifest.id,
                headers,
                manifest.encode_to_vec(),
            )
            .await?;
        manifest.manifest_sequence = sequence;
        self.apply_local(|state| add_manifest(state, manifest.clone()));
        self.get(&manifest.tenant, &manifest.id)
            .ok_or_else(|| SnapshotterError::Internal("published backup is missing".into()))
    }

    /// Publishes a pin or unpin record.
    pub async fn set_pinned(
        &self,
        tenant: &str,
        id: &str,
        pinned: bool,
        actor: &str,
    ) -> Result<CatalogEntry, SnapshotterError> {
        let mut headers = HeaderMap::new();
        headers.insert(RECORD, if pinned { "pin" } else { "unpin" });
        headers.insert(BACKUP_ID, id);
        headers.insert(ACTOR, actor);
        let msg_id = format!("{id}:{}", uuid::Uuid::now_v7());
        let sequence = self.publish(tenant, &msg_id, headers, Vec::new()).await?;
        self.apply_local(|state| set_pin(state, tenant, id, pinned, sequence));
        self.get(tenant, id)
            .ok_or_else(|| SnapshotterError::NotFound(format!("backup {id} not found")))
    }

    pub fn get(&self, tenant: &str, id: &str) -> Option<CatalogEntry> {
        self.read()
            .tenants
            .get(tenant)?
            .iter()
            .find(|e| e.manifest.id == id)
            .cloned()
    }

    /// A tenant's backups, oldest first.
    pub fn list(&self, tenant: &str) -> Vec<CatalogEntry> {
        self.read().tenants.get(tenant).cloned().unwrap_or_default()
    }

    async fn publish(
        &self,
        tenant: &str,
        msg_id: &str,
        headers: HeaderMap,
        payload: Vec<u8>,
    ) -> Result<u64, SnapshotterError> {
        let unavailable = |e: &dyn std::fmt::Display| {
            SnapshotterError::Unavailable(format!("publish to {BACKUP_STREAM}: {e}"))
        };
        let mut publish = PublishMessage::build()
            .payload(payload.into())
            .message_id(msg_id);
        for (name, values) in headers.iter() {
            for value in values {
                publish = publish.header(name.clone(), value.clone());
            }
        }
        let ack = self
            .jetstream
            .send_publish(format!("bt.backup.{tenant}"), publish)
            .await
            .map_err(|e| unavailable(&e))?
            .await
            .map_err(|e| unavailable(&e))?;
        Ok(ack.sequence)
    }

    /// Applies our own record at once, so the caller reads its write; the follower's
    /// later delivery of the same record changes nothing.
    fn apply_local(&self, f: impl FnOnce(&mut State)) {
        f(&mut self.state.write().unwrap_or_else(|e| e.into_inner()));
    }

    fn read(&self) -> std::sync::RwLockReadGuard<'_, State> {
        self.state.read().unwrap_or_else(|e| e.into_inner())
    }

    async fn wait_applied(&self, sequence: u64, limit: Duration) -> Result<(), SnapshotterError> {
        let mut applied = self.applied.clone();
        tokio::time::timeout(limit, applied.wait_for(|a| *a >= sequence))
            .await
            .map_err(|_| {
                SnapshotterError::Unavailable(format!(
                    "could not read {BACKUP_STREAM} up to sequence {sequence} within {limit:?}"
                ))
            })?
            .map_err(|_| SnapshotterError::Unavailable("catalog follower stopped".into()))?;
        Ok(())
    }
}

async fn ensure_stream(
    jetstream: &jetstream::Context,
    replicas: usize,
) -> Result<jetstream::stream::Stream, SnapshotterError> {
    let config = Config {
        name: BACKUP_STREAM.into(),
        description: Some("Backtrack backup manifests (immutable)".into()),
        subjects: vec!["bt.backup.>".into()],
        storage: StorageType::File,
        num_replicas: replicas,
        duplicate_window: Duration::from_secs(3600),
        deny_delete: true,
        deny_purge: true,
        ..Default::default()
    };
    let stream = jetstream
        .get_or_create_stream(config)
        .await
        .map_err(|e| SnapshotterError::Unavailable(format!("open {BACKUP_STREAM}: {e}")))?;
    let existing = &stream.cached_info().config;
    if !existing.deny_delete || !existing.deny_purge {
        return Err(SnapshotterError::Internal(format!(
            "{BACKUP_STREAM} allows deletes or purges, so backups could be removed; recreate it \
             with deny_delete and deny_purge"
        )));
    }
    Ok(stream)
}

/// Folds every record of the stream into `state`, following it live.
async fn follow(
    jetstream: jetstream::Context,
    state: Arc<RwLock<State>>,
    applied: watch::Sender<u64>,
    shutdown: Shutdown,
) {
    let mut restarts = Restarts::new(
        &shutdown,
        format!("backup catalog lost {BACKUP_STREAM}"),
        Duration::from_millis(50),
        Duration::from_secs(2),
    );
    loop {
        let result = tokio::select! {
            r = follow_once(&jetstream, &state, &applied) => r,
            () = shutdown.wait() => return,
        };
        if !restarts.after(result).await {
            return;
        }
    }
}

async fn follow_once(
    jetstream: &jetstream::Context,
    state: &Arc<RwLock<State>>,
    applied: &watch::Sender<u64>,
) -> Result<(), String> {
    let start = state.read().unwrap_or_else(|e| e.into_inner()).applied + 1;
    let stream = jetstream
        .get_stream(BACKUP_STREAM)
        .await
        .map_err(|e| e.to_string())?;
    if stream.cached_info().state.last_sequence < start {
        applied.send_replace(start - 1);
    }
    let consumer = stream
        .create_consumer(OrderedConfig {
            filter_subject: "bt.backup.>".into(),
            deliver_policy: if start <= 1 {
                DeliverPolicy::All
            } else {
                DeliverPolicy::ByStartSequence {
                    start_sequence: start,
                }
            },
            ..Default::default()
        })
        .await
        .map_err(|e| e.to_string())?;
    let messages = consumer
        .messages()
        .await
        .map_err(|e| e.to_string())?
        .map(|message| {
            let message = message.map_err(|e| EventLogError::Unavailable(e.to_string()))?;
            let sequence = message
                .info()
                .map_err(|e| EventLogError::Internal(e.to_string()))?
                .stream_sequence;
            Ok(Record { sequence, message })
        });
    // A consumer lost with its cluster node shows as a stall: read again from here.
    let mut records = StallWatched::new(messages, jetstream.clone(), BACKUP_STREAM, start);
    while let Some(record) = records.next().await {
        let Record { sequence, message } = record.map_err(|e| e.to_string())?;
        {
            let mut state = state.write().unwrap_or_else(|e| e.into_inner());
            if sequence <= state.applied {
                continue;
            }
            apply_record(&mut state, &message, sequence);
            state.applied = sequence;
        }
        applied.send_replace(sequence);
    }
    Err("stream ended".into())
}

/// A record of the stream with its sequence, for the stall watch.
struct Record {
    sequence: u64,
    message: Message,
}

impl Sequenced for Record {
    fn sequence(&self) -> u64 {
        self.sequence
    }
}

fn apply_record(state: &mut State, message: &Message, sequence: u64) {
    let header = |name: &str| {
        message
            .headers
            .as_ref()
            .and_then(|h| h.get(name))
            .map(|v| v.as_str().to_string())
    };
    let tenant = message
        .subject
        .as_str()
        .strip_prefix("bt.backup.")
        .unwrap_or_default()
        .to_string();
    match header(RECORD).as_deref() {
        Some("manifest") => match v1::Backup::decode(message.payload.as_ref()) {
            Ok(mut manifest) if manifest.tenant == tenant => {
                manifest.manifest_sequence = sequence;
                add_manifest(state, manifest);
            }
            Ok(_) => tracing::warn!(
                sequence,
                "backup manifest on another tenant's subject; ignored"
            ),
            Err(e) => tracing::warn!(sequence, error = %e, "unreadable backup manifest; ignored"),
        },
        Some(record @ ("pin" | "unpin")) => {
            if let Some(id) = header(BACKUP_ID) {
                set_pin(state, &tenant, &id, record == "pin", sequence);
            }
        }
        other => tracing::warn!(sequence, record = ?other, "unknown backup record; ignored"),
    }
}

fn add_manifest(state: &mut State, manifest: v1::Backup) {
    let entries = state.tenants.entry(manifest.tenant.clone()).or_default();
    if let Some(existing) = entries.iter_mut().find(|e| e.manifest.id == manifest.id) {
        existing.manifest.manifest_sequence = manifest.manifest_sequence;
        return;
    }
    let pinned = manifest.trigger == v1::BackupTrigger::Baseline as i32;
    entries.push(CatalogEntry {
        manifest,
        pinned,
        pin_sequence: 0,
    });
    entries.sort_by_key(|e| (e.manifest.created_at_ms, e.manifest.id.clone()));
}

fn set_pin(state: &mut State, tenant: &str, id: &str, pinned: bool, sequence: u64) {
    let Some(entry) = state
        .tenants
        .get_mut(tenant)
        .and_then(|entries| entries.iter_mut().find(|e| e.manifest.id == id))
    else {
        return;
    };
    if sequence > entry.pin_sequence {
        entry.pinned = pinned;
        entry.pin_sequence = sequence;
    }
}
