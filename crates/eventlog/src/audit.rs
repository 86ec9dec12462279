//! The audit stream `BT_AUDIT`: one message per privileged action on
//! `bt.audit.<tenant>.<category>`, protobuf [`v1::AuditRecord`] payloads, deduplicated by
//! record id. Services publish here and count an action as done only once the stream has
//! acknowledged its record.

use std::time::Duration;

use async_nats::jetstream::consumer::pull::OrderedConfig;
use async_nats::jetstream::consumer::DeliverPolicy;
use async_nats::jetstream::context::PublishErrorKind;
use async_nats::jetstream::message::PublishMessage;
use async_nats::jetstream::stream::{Config, StorageType};
use async_nats::jetstream::{self};
use async_nats::HeaderMap;
use backtrack_proto::v1;
use futures::stream::{FuturesOrdered, StreamExt};
use prost::Message;

use crate::append::{MAX_IN_FLIGHT, NATS_MSG_ID};
use crate::error::EventLogError;

pub const AUDIT_STREAM: &str = "BT_AUDIT";
/// Version of the records this build writes.
pub const AUDIT_SCHEMA_VERSION: u32 = 1;

/// The subject of a record: `bt.audit.<tenant>.<category>`.
pub fn audit_subject(tenant: &str, category: &str) -> String {
    format!("bt.audit.{tenant}.{category}")
}

/// A new record of `action` for `tenant`: a fresh id (UUIDv7), the current time, this
/// build's schema version and the category. The caller fills in actor, target, result and
/// correlation.
pub fn new_record(tenant: &str, category: &str, action: &str) -> v1::AuditRecord {
    v1::AuditRecord {
        schema_version: AUDIT_SCHEMA_VERSION,
        id: uuid::Uuid::now_v7().to_string(),
        tenant: tenant.to_string(),
        time_ms: std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX)),
        category: category.to_string(),
        action: action.to_string(),
        ..Default::default()
    }
}

/// A record as the stream stored it.
#[derive(Debug, Clone, PartialEq)]
pub struct StoredAudit {
    pub sequence: u64,
    pub subject: String,
    /// The stream's own timestamp (ms since the Unix epoch).
    pub published_ms: i64,
    /// The protobuf `AuditRecord` exactly as stored.
    pub payload: bytes::Bytes,
}

/// A handle to the audit stream. Cheap to clone.
#[derive(Clone)]
pub struct AuditLog {
    jetstream: jetstream::Context,
}

impl std::fmt::Debug for AuditLog {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AuditLog").finish_non_exhaustive()
    }
}

impl AuditLog {
    /// Opens `BT_AUDIT`, creating it the first time (file storage, deny delete, deny
    /// purge, a day's duplicate window). An existing stream that allows deletes or purges
    /// is refused.
    pub async fn open(client: async_nats::Client, replicas: usize) -> Result<Self, EventLogError> {
        let jetstream = jetstream::ContextBuilder::new()
            .max_ack_inflight(1 << 20)
            .backpressure_on_inflight(false)
            .build(client);
        let config = Config {
            name: AUDIT_STREAM.into(),
            description: Some("Backtrack audit records of privileged actions".into()),
            subjects: vec!["bt.audit.>".into()],
            storage: StorageType::File,
            num_replicas: replicas,
            duplicate_window: Duration::from_secs(24 * 3600),
            deny_delete: true,
            deny_purge: true,
            allow_direct: true,
            ..Default::default()
        };
        let info = match jetstream.get_stream(AUDIT_STREAM).await {
            Ok(stream) => stream.cached_info().clone(),
            Err(_) => match jetstream.create_stream(config).await {
                Ok(stream) => stream.cached_info().clone(),
                Err(create) => match jetstream.get_stream(AUDIT_STREAM).await {
                    Ok(stream) => stream.cached_info().clone(),
                    Err(_) => {
                        return Err(EventLogError::Unavailable(format!(
                            "create stream {AUDIT_STREAM}: {create}"
                        )))
                    }
                },
            },
        };
        if !info.config.deny_delete || !info.config.deny_purge {
            return Err(EventLogError::Misconfigured {
                stream: AUDIT_STREAM.into(),
                problem: "it allows deletes or purges, so audit records could be removed; recreate it with deny_delete and deny_purge".into(),
            });
        }
        Ok(Self { jetstream })
    }

    /// The stream's last sequence (0 while empty).
    pub async fn last_sequence(&self) -> Result<u64, EventLogError> {
        let mut stream = self
            .jetstream
            .get_stream(AUDIT_STREAM)
            .await
            .map_err(|e| EventLogError::Unavailable(format!("stream {AUDIT_STREAM}: {e}")))?;
        let info = stream
            .info()
            .await
            .map_err(|e| EventLogError::Unavailable(format!("stream {AUDIT_STREAM}: {e}")))?;
        Ok(info.state.last_sequence)
    }

    /// Follows the whole stream from `from_sequence`, watched for stalls like
    /// [`EventLog::follow`](crate::EventLog::follow), for the audit service's indexer.
    pub async fn follow(
        &self,
        from_sequence: u64,
    ) -> Result<
        crate::read::StallWatched<
            impl futures::Stream<Item = Result<StoredAudit, EventLogError>> + Send + Unpin,
        >,
        EventLogError,
    > {
        let stream = self.read(from_sequence, "bt.audit.>").await?;
        Ok(crate::read::StallWatched::new(
            stream,
            self.jetstream.clone(),
            AUDIT_STREAM,
            from_sequence,
        ))
    }

    /// Follows the stream from `from_sequence` (1: the beginning) over `filter` (e.g.
    /// `bt.audit.>`); never ends by itself.
    pub async fn read(
        &self,
        from_sequence: u64,
        filter: &str,
    ) -> Result<
        impl futures::Stream<Item = Result<StoredAudit, EventLogError>> + Send + Unpin,
        EventLogError,
    > {
        let deliver_policy = if from_sequence <= 1 {
            DeliverPolicy::All
        } else {
            DeliverPolicy::ByStartSequence {
                start_sequence: from_sequence,
            }
        };
        let consumer = self
            .jetstream
            .create_consumer_on_stream(
                OrderedConfig {
                    filter_subject: filter.to_string(),
                    deliver_policy,
                    ..Default::default()
                },
                AUDIT_STREAM,
            )
            .await
            .map_err(|e| EventLogError::Unavailable(format!("read stream {AUDIT_STREAM}: {e}")))?;
        let messages = consumer
            .messages()
            .await
            .map_err(|e| EventLogError::Unavailable(format!("read stream {AUDIT_STREAM}: {e}")))?;
        Ok(Box::pin(messages.map(|message| {
            let message = message.map_err(|e| {
                EventLogError::Unavailable(format!("read stream {AUDIT_STREAM}: {e}"))
            })?;
            let info = message.info().map_err(|e| {
                EventLogError::Internal(format!("audit message without metadata: {e}"))
            })?;
            Ok(StoredAudit {
                sequence: info.stream_sequence,
                published_ms: i64::try_from(
                    info.published.unix_timestamp_nanos().div_euclid(1_000_000),
                )
                .unwrap_or(i64::MAX),
                subject: message.subject.to_string(),
                payload: message.payload.clone(),
            })
        })))
    }

    /// Publishes `records` pipelined and waits for every acknowledgement. A record the
    /// stream already holds (same id within the duplicate window) is acknowledged as a
    /// duplicate and not stored twice. On error some records may be stored: publish the
    /// same records again.
    pub async fn publish(&self, records: &[v1::AuditRecord]) -> Result<(), EventLogError> {
        let mut in_flight = FuturesOrdered::new();
        for record in records {
            if in_flight.len() >= MAX_IN_FLIGHT {
                if let Some(result) = in_flight.next().await {
                    result?;
                }
            }
            let subject = audit_subject(&record.tenant, &record.category);
            let mut headers = HeaderMap::new();
            headers.insert(NATS_MSG_ID, record.id.as_str());
            let message = PublishMessage::build()
                .payload(record.encode_to_vec().into())
                .headers(headers);
            let ack = self
                .jetstream
                .send_publish(subject.clone(), message)
                .await
                .map_err(|e| audit_error(&subject, &e.to_string(), e.kind()))?;
            in_flight.push_back(async move {
                ack.await
                    .map(|_| ())
                    .map_err(|e| audit_error(&subject, &e.to_string(), e.kind()))
            });
        }
        while let Some(result) = in_flight.next().await {
            result?;
        }
        Ok(())
    }
}

fn audit_error(subject: &str, message: &str, kind: PublishErrorKind) -> EventLogError {
    match kind {
        PublishErrorKind::MaxPayloadExceeded => {
            EventLogError::Internal(format!("audit record on {subject} too large: {message}"))
        }
        _ => EventLogError::Unavailable(format!("audit record on {subject}: {message}")),
    }
}

impl crate::read::Sequenced for StoredAudit {
    fn sequence(&self) -> u64 {
        self.sequence
    }
}
