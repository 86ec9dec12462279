//! The [`EventLog`] handle: opening (and, the first time, creating) the stream, checking
//! that an existing stream protects the log, and the stream's state.

use std::collections::BTreeSet;
use std::time::Duration;

use async_nats::jetstream::context::{CreateStreamErrorKind, GetStreamError, GetStreamErrorKind};
use async_nats::jetstream::stream::{Config, Info, StorageType};
use async_nats::jetstream::{self, ErrorCode};

use crate::error::EventLogError;

/// Publish acks one context may wait for at once. Far above what callers run concurrently,
/// so a full context never blocks (which could deadlock two pipelined batches waiting for
/// each other); each batch bounds itself to [`crate::append::MAX_IN_FLIGHT`].
const ACK_PERMITS: usize = 1 << 20;

/// How the event stream is (or must be) configured.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StreamSettings {
    pub name: String,
    pub subjects: Vec<String>,
    pub replicas: usize,
    /// How long a `Nats-Msg-Id` is remembered for deduplication.
    pub duplicate_window: Duration,
    /// Largest message (headers plus payload) the stream accepts.
    pub max_message_bytes: i32,
}

impl Default for StreamSettings {
    fn default() -> Self {
        Self {
            name: "BT_EVENTS".to_string(),
            subjects: vec!["bt.ev.>".to_string()],
            replicas: 1,
            duplicate_window: Duration::from_secs(24 * 60 * 60),
            max_message_bytes: 1024 * 1024,
        }
    }
}

impl StreamSettings {
    fn stream_config(&self) -> Config {
        Config {
            name: self.name.clone(),
            description: Some("Backtrack directory events: the append-only log".to_string()),
            subjects: self.subjects.clone(),
            storage: StorageType::File,
            num_replicas: self.replicas,
            duplicate_window: self.duplicate_window,
            max_message_size: self.max_message_bytes,
            deny_delete: true,
            deny_purge: true,
            allow_direct: true,
            ..Default::default()
        }
    }
}

/// A handle to the JetStream event stream. Cheap to clone; clones share the connection.
#[derive(Clone)]
pub struct EventLog {
    pub(crate) client: async_nats::Client,
    pub(crate) jetstream: jetstream::Context,
    pub(crate) stream_name: String,
    pub(crate) settings: StreamSettings,
    /// The smaller of the server's max payload and the stream's max message size.
    pub(crate) message_limit: usize,
}

impl std::fmt::Debug for EventLog {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EventLog")
            .field("stream", &self.stream_name)
            .field("settings", &self.settings)
            .field("message_limit", &self.message_limit)
            .finish()
    }
}

/// The numbers of the stream right now.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct StreamState {
    pub messages: u64,
    /// The first sequence still stored (1 for a log that never lost a message).
    pub first_sequence: u64,
    /// The last sequence assigned; 0 while the stream is empty.
    pub last_sequence: u64,
}

impl EventLog {
    /// Opens the event stream, creating it if missing: file storage, the subjects,
    /// deny-delete and deny-purge, the duplicate window, replicas, max message size and
    /// direct gets. An existing stream must deny delete and purge and have exactly the
    /// configured subjects (else [`EventLogError::Misconfigured`]); a different replica count
    /// is updated to the configured one.
    pub async fn open(
        client: async_nats::Client,
        settings: StreamSettings,
    ) -> Result<Self, EventLogError> {
        let jetstream = jetstream::ContextBuilder::new()
            .max_ack_inflight(ACK_PERMITS)
            .backpressure_on_inflight(false)
            .build(client.clone());
        let info = ensure_stream(&jetstream, &settings).await?;
        let stream_limit = usize::try_from(info.config.max_message_size)
            .ok()
            .filter(|limit| *limit > 0)
            .unwrap_or(usize::MAX);
        let message_limit = client.max_payload().min(stream_limit);
        Ok(Self {
            client,
            jetstream,
            stream_name: settings.name.clone(),
            settings,
            message_limit,
        })
    }

    /// The NATS connection the log uses.
    pub fn client(&self) -> &async_nats::Client {
        &self.client
    }

    /// The stream's name, e.g. `BT_EVENTS`.
    pub fn stream_name(&self) -> &str {
        &self.stream_name
    }

    /// The settings the log was opened with.
    pub fn settings(&self) -> &StreamSettings {
        &self.settings
    }

    /// Message count and first/last sequence, straight from the server.
    pub async fn state(&self) -> Result<StreamState, EventLogError> {
        let stream = self
            .jetstream
            .get_stream(&self.stream_name)
            .await
            .map_err(|err| get_stream_error(&self.stream_name, err))?;
        let state = &stream.cached_info().state;
        Ok(StreamState {
            messages: state.messages,
            first_sequence: state.first_sequence,
            last_sequence: state.last_sequence,
        })
    }
}

impl EventLog {
    /// The stream's own timestamp (ms since the Unix epoch) of the message at `sequence`;
    /// `None` when there is no such message.
    pub async fn stored_time_ms(&self, sequence: u64) -> Result<Option<i64>, EventLogError> {
        if sequence == 0 {
            return Ok(None);
        }
        let stream = self
            .jetstream
            .get_stream_no_info(&self.stream_name)
            .await
            .map_err(|err| get_stream_error(&self.stream_name, err))?;
        match stream.get_raw_message(sequence).await {
            Ok(message) => Ok(Some(
                i64::try_from(message.time.unix_timestamp_nanos().div_euclid(1_000_000))
                    .unwrap_or(i64::MAX),
            )),
            Err(err) => match err.kind() {
                async_nats::jetstream::stream::RawMessageErrorKind::NoMessageFound => Ok(None),
                _ => Err(EventLogError::Unavailable(format!(
                    "read message {sequence} of stream {}: {err}",
                    self.stream_name
                ))),
            },
        }
    }
}

impl EventLog {
    /// The sequence of the first message the stream stored after `time_ms` (ms since the
    /// Unix epoch, by the stream's own timestamps); one past the last message when none
    /// was. A binary search over the stream's messages: a few dozen reads at most.
    pub async fn first_sequence_after(&self, time_ms: i64) -> Result<u64, EventLogError> {
        let state = self.state().await?;
        if state.messages == 0 {
            return Ok(state.last_sequence + 1);
        }
        // The answer lies in lo..=hi; hi = last + 1 means "none yet".
        let (mut lo, mut hi) = (state.first_sequence, state.last_sequence + 1);
        while lo < hi {
            let mid = lo + (hi - lo) / 2;
            // A stream that denies deletes has no holes; a missing message counts as early.
            let stored = self.stored_time_ms(mid).await?.unwrap_or(i64::MIN);
            if stored > time_ms {
                hi = mid;
            } else {
                lo = mid + 1;
            }
        }
        Ok(lo)
    }
}

async fn ensure_stream(
    jetstream: &jetstream::Context,
    settings: &StreamSettings,
) -> Result<Info, EventLogError> {
    match jetstream.get_stream(&settings.name).await {
        Ok(stream) => check_existing(jetstream, settings, stream.cached_info().clone()).await,
        Err(err) if is_stream_not_found(&err) => create(jetstream, settings).await,
        Err(err) => Err(get_stream_error(&settings.name, err)),
    }
}

async fn create(
    jetstream: &jetstream::Context,
    settings: &StreamSettings,
) -> Result<Info, EventLogError> {
    match jetstream.create_stream(settings.stream_config()).await {
        Ok(stream) => Ok(stream.cached_info().clone()),
        // Another process created it first (with other settings): check what it made.
        Err(err)
            if matches!(
                err.kind(),
                CreateStreamErrorKind::JetStream(ref js) if js.error_code() == ErrorCode::STREAM_NAME_EXIST
            ) =>
        {
            let stream = jetstream
                .get_stream(&settings.name)
                .await
                .map_err(|err| get_stream_error(&settings.name, err))?;
            check_existing(jetstream, settings, stream.cached_info().clone()).await
        }
        Err(err) => Err(match err.kind() {
            CreateStreamErrorKind::TimedOut | CreateStreamErrorKind::JetStreamUnavailable => {
                EventLogError::Unavailable(format!("create stream {}: {err}", settings.name))
            }
            _ => EventLogError::Internal(format!("create stream {}: {err}", settings.name)),
        }),
    }
}

async fn check_existing(
    jetstream: &jetstream::Context,
    settings: &StreamSettings,
    info: Info,
) -> Result<Info, EventLogError> {
    let config = &info.config;
    let misconfigured = |problem: String| EventLogError::Misconfigured {
        stream: settings.name.clone(),
        problem,
    };
    if !config.deny_delete || !config.deny_purge {
        let off: Vec<&str> = [
            (!config.deny_delete).then_some("deny_delete"),
            (!config.deny_purge).then_some("deny_purge"),
        ]
        .into_iter()
        .flatten()
        .collect();
        return Err(misconfigured(format!(
            "{} is off, so events could be removed; recreate the stream with both on",
            off.join(" and ")
        )));
    }
    let have: BTreeSet<&str> = config.subjects.iter().map(String::as_str).collect();
    let want: BTreeSet<&str> = settings.subjects.iter().map(String::as_str).collect();
    if have != want {
        return Err(misconfigured(format!(
            "its subjects are {:?} but the event log needs {:?}",
            config.subjects, settings.subjects
        )));
    }
    if config.storage != StorageType::File {
        tracing::warn!(stream = %settings.name, "event stream is not on file storage; a server restart loses events");
    }
    if config.duplicate_window != settings.duplicate_window
        || config.max_message_size != settings.max_message_bytes
    {
        tracing::warn!(
            stream = %settings.name,
            duplicate_window = ?config.duplicate_window,
            max_message_size = config.max_message_size,
            "event stream settings differ from the configured ones; keeping the stream's"
        );
    }
    if config.num_replicas == settings.replicas {
        return Ok(info);
    }
    tracing::info!(
        stream = %settings.name,
        from = config.num_replicas,
        to = settings.replicas,
        "changing the event stream's replica count"
    );
    let updated = Config {
        num_replicas: settings.replicas,
        ..config.clone()
    };
    jetstream.update_stream(updated).await.map_err(|err| {
        let text = format!(
            "change replicas of stream {} from {} to {}: {err}",
            settings.name, config.num_replicas, settings.replicas
        );
        match err.kind() {
            CreateStreamErrorKind::TimedOut | CreateStreamErrorKind::JetStreamUnavailable => {
                EventLogError::Unavailable(text)
            }
            _ => misconfigured(text),
        }
    })
}

fn is_stream_not_found(err: &GetStreamError) -> bool {
    matches!(
        err.kind(),
        GetStreamErrorKind::JetStream(ref js) if js.error_code() == ErrorCode::STREAM_NOT_FOUND
    )
}

pub(crate) fn get_stream_error(stream: &str, err: GetStreamError) -> EventLogError {
    // The stream denies deletes, so "not found" for a stream that exists (another process
    // just created it) means the cluster has not yet placed it or elected its leader:
    // transient, like an unreachable server.
    if is_stream_not_found(&err) {
        return EventLogError::Unavailable(format!(
            "stream {stream} info: {err} (the cluster may still be electing its leader)"
        ));
    }
    match err.kind() {
        GetStreamErrorKind::Request => {
            EventLogError::Unavailable(format!("stream {stream} info: {err}"))
        }
        _ => EventLogError::Internal(format!("stream {stream} info: {err}")),
    }
}
