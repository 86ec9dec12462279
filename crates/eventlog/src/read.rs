//! Reading: an ordered pull consumer from a start sequence over a subject filter, decoding
//! every message. [`EventLog::read`] follows the log live; [`EventLog::read_range`] stops.

use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use async_nats::jetstream::consumer::pull::{OrderedConfig, OrderedError, OrderedErrorKind};
use async_nats::jetstream::consumer::{Consumer, DeliverPolicy};
use async_nats::jetstream::stream::{ConsumerErrorKind, RawMessageErrorKind};
use async_nats::jetstream::{self, ErrorCode};
use backtrack_domain::event::Event;
use futures::stream::{Stream, StreamExt};

use crate::codec;
use crate::error::EventLogError;
use crate::log::EventLog;

/// How long [`EventLog::read_range`] waits for the next message it knows is there before
/// it calls the log unavailable.
const READ_IDLE_TIMEOUT: Duration = Duration::from_secs(30);

/// An event as stored: where in the log, on which subject, and when JetStream stored it.
#[derive(Debug, Clone, PartialEq)]
pub struct StoredEvent {
    pub sequence: u64,
    pub subject: String,
    /// The stream's own timestamp of the message (milliseconds since the Unix epoch); this,
    /// not the event's `time_ms`, is what instants resolve against.
    pub published_ms: i64,
    pub event: Event,
    /// The message's payload as stored (the protobuf `DirectoryEvent`), for readers that
    /// keep a copy without encoding it again.
    pub payload: bytes::Bytes,
    /// The W3C trace context of the append that stored it, when it was traced.
    pub traceparent: Option<String>,
    /// How many messages over the reader's filter the server it reads from still held
    /// after this one when it delivered it (0: the reader was at the tail, as that server
    /// knew it).
    pub pending: u64,
}

type Messages = Pin<Box<dyn Stream<Item = Result<jetstream::Message, OrderedError>> + Send>>;

/// The live events of [`EventLog::read`], in sequence order. It never ends on its own: at
/// the tail it waits for new events. Errors are yielded, not skipped; after a decode error
/// the caller decides whether to go on.
pub struct EventStream {
    messages: Messages,
    from_sequence: u64,
    stream_name: String,
}

/// How long a follower may go without a message before it asks the stream whether it
/// missed some.
pub const STALL_CHECK: Duration = Duration::from_secs(10);

/// A stored message's place in its stream.
pub trait Sequenced {
    fn sequence(&self) -> u64;
}

impl Sequenced for StoredEvent {
    fn sequence(&self) -> u64 {
        self.sequence
    }
}

/// A follower's stream of a whole JetStream stream, watched for stalls: when no message
/// comes for [`STALL_CHECK`] although the stream holds messages past the last one
/// delivered — a consumer lost with its cluster node and not come back — it yields
/// [`EventLogError::Unavailable`], and the follower reads again from its position.
pub struct StallWatched<S> {
    inner: S,
    jetstream: jetstream::Context,
    stream_name: String,
    timer: Pin<Box<tokio::time::Sleep>>,
    /// A message arrived since the timer was last set.
    delivered: bool,
    /// The last sequence delivered (or the one before the start).
    last_seen: u64,
    check: Option<Pin<Box<dyn Future<Output = Option<u64>> + Send>>>,
}

impl<S> std::fmt::Debug for StallWatched<S> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("StallWatched")
            .field("stream", &self.stream_name)
            .field("last_seen", &self.last_seen)
            .finish_non_exhaustive()
    }
}

impl<S> StallWatched<S> {
    pub fn new(
        inner: S,
        jetstream: jetstream::Context,
        stream_name: &str,
        from_sequence: u64,
    ) -> Self {
        Self {
            inner,
            jetstream,
            stream_name: stream_name.to_string(),
            timer: Box::pin(tokio::time::sleep(STALL_CHECK)),
            delivered: false,
            last_seen: from_sequence.max(1) - 1,
            check: None,
        }
    }

    /// `Ready(true)` when the stream holds messages past `last_seen` that have not come.
    fn poll_stalled(&mut self, cx: &mut Context<'_>) -> Poll<bool> {
        loop {
            if let Some(check) = self.check.as_mut() {
                let last = std::task::ready!(check.as_mut().poll(cx));
                self.check = None;
                self.timer
                    .as_mut()
                    .reset(tokio::time::Instant::now() + STALL_CHECK);
                if last.is_some_and(|last| last > self.last_seen) {
                    return Poll::Ready(true);
                }
            }
            std::task::ready!(self.timer.as_mut().poll(cx));
            if self.delivered {
                self.delivered = false;
                self.timer
                    .as_mut()
                    .reset(tokio::time::Instant::now() + STALL_CHECK);
                continue;
            }
            let jetstream = self.jetstream.clone();
            let name = self.stream_name.clone();
            self.check = Some(Box::pin(async move {
                let stream = jetstream.get_stream(&name).await.ok()?;
                Some(stream.cached_info().state.last_sequence)
            }));
        }
    }
}

impl<S, T> Stream for StallWatched<S>
where
    S: Stream<Item = Result<T, EventLogError>> + Unpin,
    T: Sequenced,
{
    type Item = Result<T, EventLogError>;

    fn poll_next(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        let this = self.get_mut();
        match this.inner.poll_next_unpin(cx) {
            Poll::Ready(Some(Ok(item))) => {
                this.delivered = true;
                this.last_seen = item.sequence();
                Poll::Ready(Some(Ok(item)))
            }
            Poll::Ready(other) => Poll::Ready(other),
            Poll::Pending => match this.poll_stalled(cx) {
                Poll::Ready(true) => Poll::Ready(Some(Err(EventLogError::Unavailable(format!(
                    "no message from stream {} for {}s although it holds newer ones; the reader must start again",
                    this.stream_name,
                    STALL_CHECK.as_secs()
                ))))),
                _ => Poll::Pending,
            },
        }
    }
}

/// A decoded event and how many matching messages the server still had after it.
struct Delivery {
    event: StoredEvent,
    pending: u64,
}

impl EventStream {
    fn poll_delivery(
        &mut self,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Delivery, EventLogError>>> {
        loop {
            let message = match self.messages.poll_next_unpin(cx) {
                Poll::Pending => return Poll::Pending,
                Poll::Ready(None) => return Poll::Ready(None),
                Poll::Ready(Some(Err(err))) => {
                    return Poll::Ready(Some(Err(self.consumer_error(err))))
                }
                Poll::Ready(Some(Ok(message))) => message,
            };

            let (sequence, pending, published_ms) = match message.info() {
                Ok(info) => (
                    info.stream_sequence,
                    info.pending,
                    unix_millis(info.published.unix_timestamp_nanos()),
                ),
                Err(err) => {
                    return Poll::Ready(Some(Err(EventLogError::Internal(format!(
                        "message from stream {} without JetStream metadata: {err}",
                        self.stream_name
                    )))))
                }
            };
            // A consumer recreated before its first delivery restarts from the beginning;
            // what lies before the requested start is not ours to return.
            if sequence < self.from_sequence {
                continue;
            }
            let subject = message.subject.to_string();
            let result = match codec::decode_stored(&subject, &message.payload) {
                Ok(event) => Ok(Delivery {
                    event: StoredEvent {
                        sequence,
                        subject,
                        published_ms,
                        event,
                        payload: message.payload.clone(),
                        traceparent: crate::trace::traceparent(message.headers.as_ref()),
                        pending,
                    },
                    pending,
                }),
                Err(source) => Err(EventLogError::Decode {
                    sequence,
                    subject,
                    source,
                }),
            };
            return Poll::Ready(Some(result));
        }
    }

    fn consumer_error(&self, err: OrderedError) -> EventLogError {
        let text = format!(
            "reading stream {} (from sequence {}): {err}",
            self.stream_name, self.from_sequence
        );
        match err.kind() {
            OrderedErrorKind::PushBasedConsumer | OrderedErrorKind::Other => {
                EventLogError::Internal(text)
            }
            _ => EventLogError::Unavailable(text),
        }
    }

    async fn next_delivery(&mut self) -> Option<Result<Delivery, EventLogError>> {
        std::future::poll_fn(|cx| self.poll_delivery(cx)).await
    }
}

impl Stream for EventStream {
    type Item = Result<StoredEvent, EventLogError>;

    fn poll_next(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        self.get_mut()
            .poll_delivery(cx)
            .map(|item| item.map(|result| result.map(|delivery| delivery.event)))
    }
}

impl EventLog {
    /// Follows the log from `from_sequence` (1 or 0: from the beginning) over `filter`
    /// (e.g. `bt.ev.>` or `bt.ev.contoso.>`), decoding each message. The stream does not
    /// end at the tail: it keeps delivering events appended later.
    pub async fn read(
        &self,
        from_sequence: u64,
        filter: &str,
    ) -> Result<EventStream, EventLogError> {
        let consumer = self.ordered_consumer(from_sequence, filter).await?;
        self.event_stream(consumer, from_sequence).await
    }

    /// Like [`EventLog::read`], but the stream ends after the last event over `filter`
    /// that the log held when this was called, instead of waiting for new ones.
    pub async fn read_until_now(
        &self,
        from_sequence: u64,
        filter: &str,
    ) -> Result<impl Stream<Item = Result<StoredEvent, EventLogError>> + Send, EventLogError> {
        let from = from_sequence.max(1);
        let last = self.state().await?.last_sequence;
        let any = next_at_leader(&self.jetstream, &self.stream_name, filter, from)
            .await?
            .is_some_and(|sequence| sequence <= last);
        let stream = match any {
            true => Some(self.read(from, filter).await?),
            false => None,
        };
        /// Where the stream is: reading, owing an error, or done.
        enum Next {
            Read(EventStream),
            Fail(EventLogError),
        }
        let (log, filter) = (self.clone(), filter.to_string());
        let start = stream.map(Next::Read);
        Ok(futures::stream::unfold(start, move |next| {
            let (log, filter) = (log.clone(), filter.clone());
            async move {
                let mut stream = match next? {
                    Next::Read(stream) => stream,
                    Next::Fail(err) => return Some((Err(err), None)),
                };
                let event = match stream.next().await? {
                    Ok(event) if event.sequence > last => return None,
                    Ok(event) => event,
                    Err(err) => return Some((Err(err), None)),
                };
                // At the tail as its server knew it, the reader asks the stream's leader
                // whether more is to come up to `last`, as `fold_range` does.
                let next = if event.sequence >= last {
                    None
                } else if event.pending > 0 {
                    Some(Next::Read(stream))
                } else {
                    let from = event.sequence + 1;
                    match next_at_leader(&log.jetstream, &log.stream_name, &filter, from).await {
                        Ok(Some(sequence)) if sequence <= last => Some(Next::Read(stream)),
                        Ok(_) => None,
                        Err(err) => Some(Next::Fail(err)),
                    }
                };
                Some((Ok(event), next))
            }
        }))
    }

    /// The subject filter that covers the whole stream (its first subject, e.g. `bt.ev.>`).
    pub fn whole_stream(&self) -> String {
        self.settings()
            .subjects
            .first()
            .cloned()
            .unwrap_or_else(|| ">".to_string())
    }

    /// Like [`EventLog::read`] over the whole stream, for the projections that follow it,
    /// watched for stalls ([`StallWatched`]).
    pub async fn follow(
        &self,
        from_sequence: u64,
    ) -> Result<StallWatched<EventStream>, EventLogError> {
        let stream = self.read(from_sequence, &self.whole_stream()).await?;
        Ok(StallWatched::new(
            stream,
            self.jetstream.clone(),
            &self.stream_name,
            from_sequence,
        ))
    }

    /// Reads from `from_sequence` up to and including `to_sequence` over `filter`, then
    /// stops; also stops at the end of the log as it is while reading, so a `to_sequence`
    /// beyond the tail returns what is there.
    pub async fn read_range(
        &self,
        from_sequence: u64,
        to_sequence: u64,
        filter: &str,
    ) -> Result<Vec<StoredEvent>, EventLogError> {
        let mut events = Vec::new();
        self.fold_range(from_sequence, to_sequence, filter, |event| {
            events.push(event)
        })
        .await?;
        Ok(events)
    }

    /// Like [`EventLog::read_range`], but hands each event to `f` as it arrives instead of
    /// collecting them, so a replay of millions of events holds one at a time. Returns how
    /// many events were handed over.
    pub async fn fold_range(
        &self,
        from_sequence: u64,
        to_sequence: u64,
        filter: &str,
        mut f: impl FnMut(StoredEvent),
    ) -> Result<u64, EventLogError> {
        let from_sequence = from_sequence.max(1);
        if from_sequence > to_sequence {
            return Ok(0);
        }
        let consumer = self.ordered_consumer(from_sequence, filter).await?;
        let name = consumer.cached_info().name.clone();
        // The reader's server may be a replica still catching up (say, a node that just
        // restarted): its "nothing pending" is checked with the stream leader.
        if consumer.cached_info().num_pending == 0 {
            match self
                .matches_at_leader(filter, from_sequence, to_sequence)
                .await
            {
                Ok(true) => {}
                other => {
                    self.delete_consumer(&name).await;
                    return other.map(|_| 0);
                }
            }
        }
        let mut stream = self.event_stream(consumer, from_sequence).await?;
        let mut count = 0;
        let outcome = loop {
            let delivery = match tokio::time::timeout(READ_IDLE_TIMEOUT, stream.next_delivery()).await {
                Ok(delivery) => delivery,
                Err(_) => {
                    break Err(EventLogError::Unavailable(format!(
                        "no message from stream {} for {READ_IDLE_TIMEOUT:?} while reading sequences {from_sequence}..={to_sequence}",
                        self.stream_name
                    )))
                }
            };
            match delivery {
                None => break Ok(()),
                Some(Err(err)) => break Err(err),
                Some(Ok(Delivery { event, pending })) => {
                    if event.sequence > to_sequence {
                        break Ok(());
                    }
                    let sequence = event.sequence;
                    f(event);
                    count += 1;
                    if sequence == to_sequence {
                        break Ok(());
                    }
                    if pending == 0 {
                        match self
                            .matches_at_leader(filter, sequence + 1, to_sequence)
                            .await
                        {
                            Ok(true) => {}
                            Ok(false) => break Ok(()),
                            Err(err) => break Err(err),
                        }
                    }
                }
            }
        };
        drop(stream);
        self.delete_consumer(&name).await;
        outcome.map(|()| count)
    }

    /// Whether the stream holds a message over `filter` in `from..=to`, asked of the
    /// stream's leader (which has every acknowledged message), not of a replica.
    async fn matches_at_leader(
        &self,
        filter: &str,
        from: u64,
        to: u64,
    ) -> Result<bool, EventLogError> {
        if from > to {
            return Ok(false);
        }
        let next = next_at_leader(&self.jetstream, &self.stream_name, filter, from).await?;
        Ok(next.is_some_and(|sequence| sequence <= to))
    }

    async fn ordered_consumer(
        &self,
        from_sequence: u64,
        filter: &str,
    ) -> Result<Consumer<OrderedConfig>, EventLogError> {
        check_filter(filter)?;
        if !self
            .settings
            .subjects
            .iter()
            .any(|subject| subjects_overlap(filter, subject))
        {
            return Err(EventLogError::InvalidFilter {
                filter: filter.to_string(),
                reason: format!(
                    "it matches no subject of stream {} ({})",
                    self.stream_name,
                    self.settings.subjects.join(", ")
                ),
            });
        }
        let deliver_policy = if from_sequence <= 1 {
            DeliverPolicy::All
        } else {
            DeliverPolicy::ByStartSequence {
                start_sequence: from_sequence,
            }
        };
        // A filter equal to the stream's only subject selects every message; passed as no
        // filter, the server does not match it against each subject the stream holds when
        // it creates the consumer (about 20 ms at 200,000 objects, against 1–2 ms).
        let whole_stream = self.settings.subjects.len() == 1 && self.settings.subjects[0] == filter;
        let config = OrderedConfig {
            filter_subject: if whole_stream {
                String::new()
            } else {
                filter.to_string()
            },
            deliver_policy,
            ..Default::default()
        };
        self.jetstream
            .create_consumer_on_stream(config, &self.stream_name)
            .await
            .map_err(|err| {
                let text = format!(
                    "create a reader on stream {} for '{filter}': {err}",
                    self.stream_name
                );
                match err.kind() {
                    ConsumerErrorKind::JetStream(js)
                        if js.error_code() == ErrorCode::CONSUMER_FILTER_NOT_SUBSET =>
                    {
                        EventLogError::InvalidFilter {
                            filter: filter.to_string(),
                            reason: format!(
                                "not within the subjects of stream {} ({})",
                                self.stream_name,
                                self.settings.subjects.join(", ")
                            ),
                        }
                    }
                    ConsumerErrorKind::TimedOut | ConsumerErrorKind::Request => {
                        EventLogError::Unavailable(text)
                    }
                    _ => EventLogError::Internal(text),
                }
            })
    }

    async fn event_stream(
        &self,
        consumer: Consumer<OrderedConfig>,
        from_sequence: u64,
    ) -> Result<EventStream, EventLogError> {
        let messages = consumer.messages().await.map_err(|err| {
            EventLogError::Unavailable(format!("start reading stream {}: {err}", self.stream_name))
        })?;
        Ok(EventStream {
            messages: Box::pin(messages),
            from_sequence: from_sequence.max(1),
            stream_name: self.stream_name.clone(),
        })
    }

    /// Best effort: the server also removes an idle ordered consumer after 30 s.
    async fn delete_consumer(&self, name: &str) {
        if let Err(err) = self
            .jetstream
            .delete_consumer_from_stream(name, &self.stream_name)
            .await
        {
            tracing::debug!(consumer = name, %err, "could not delete a finished reader");
        }
    }
}

/// A subject filter: dot-separated non-empty tokens without whitespace or control
/// characters, `*` only as a whole token, `>` only as the whole last token.
fn check_filter(filter: &str) -> Result<(), EventLogError> {
    let invalid = |reason: &str| EventLogError::InvalidFilter {
        filter: filter.escape_default().to_string(),
        reason: reason.to_string(),
    };
    if filter.is_empty() {
        return Err(invalid("it is empty"));
    }
    if filter.chars().any(|c| c.is_whitespace() || c.is_control()) {
        return Err(invalid("it contains whitespace or control characters"));
    }
    let tokens: Vec<&str> = filter.split('.').collect();
    for (i, token) in tokens.iter().enumerate() {
        if token.is_empty() {
            return Err(invalid("it has an empty token"));
        }
        if token.len() > 1 && token.contains(['*', '>']) {
            return Err(invalid("wildcards must be whole tokens"));
        }
        if *token == ">" && i + 1 != tokens.len() {
            return Err(invalid("'>' must be the last token"));
        }
    }
    Ok(())
}

/// True when some subject matches both patterns (literal tokens, `*`, and a final `>`).
fn subjects_overlap(a: &str, b: &str) -> bool {
    let mut a = a.split('.');
    let mut b = b.split('.');
    loop {
        match (a.next(), b.next()) {
            (None, None) => return true,
            (Some(">"), Some(_)) | (Some(_), Some(">")) => return true,
            (Some(x), Some(y)) if x == "*" || y == "*" || x == y => {}
            _ => return false,
        }
    }
}

fn unix_millis(nanos: i128) -> i64 {
    i64::try_from(nanos.div_euclid(1_000_000)).unwrap_or(i64::MAX)
}

/// The sequence of the first message of `stream` over `filter` at or after `from`, asked
/// of the stream's leader, which holds every acknowledged message; a reader's own server
/// may be a replica still catching up (say, a node that just restarted), so a reader that
/// runs dry early asks here whether more is to come. `None`: there is no such message.
pub async fn next_at_leader(
    jetstream: &jetstream::Context,
    stream: &str,
    filter: &str,
    from: u64,
) -> Result<Option<u64>, EventLogError> {
    let handle = jetstream
        .get_stream_no_info(stream)
        .await
        .map_err(|err| crate::log::get_stream_error(stream, err))?;
    match handle
        .raw_message_builder()
        .sequence(from)
        .next_by_subject(filter.to_string())
        .send()
        .await
    {
        Ok(message) => Ok(Some(message.sequence)),
        Err(err) if err.kind() == RawMessageErrorKind::NoMessageFound => Ok(None),
        Err(err) => Err(EventLogError::Unavailable(format!(
            "ask stream {stream} for the next message over '{filter}' from sequence {from}: {err}"
        ))),
    }
}

#[cfg(test)]
mod tests {
    use super::{check_filter, subjects_overlap};

    #[test]
    fn filters_overlap_stream_subjects() {
        for (filter, subject) in [
            ("bt.ev.>", "bt.ev.>"),
            ("bt.ev.t1.>", "bt.ev.>"),
            ("bt.>", "bt.ev.>"),
            ("bt.ev.*.user.*", "bt.ev.>"),
            ("bt.ev.t1.user.x", "bt.ev.*.user.*"),
        ] {
            assert!(subjects_overlap(filter, subject), "{filter} vs {subject}");
        }
        for (filter, subject) in [
            ("bt.audit.>", "bt.ev.>"),
            ("bt.ev", "bt.ev.>"),
            ("bt.ev.t1", "bt.ev.*.user"),
            ("bt.ev.t1.group.x", "bt.ev.*.user.*"),
        ] {
            assert!(!subjects_overlap(filter, subject), "{filter} vs {subject}");
        }
    }

    #[test]
    fn accepts_subject_filters() {
        for filter in [
            "bt.ev.>",
            "bt.ev.t1.>",
            "bt.ev.*.user.*",
            "bt.ev.t1.user.abc-1",
        ] {
            assert!(check_filter(filter).is_ok(), "{filter}");
        }
    }

    #[test]
    fn refuses_malformed_filters() {
        for filter in [
            "",
            "bt..ev",
            "bt.ev.>.x",
            "bt.ev.a*",
            "bt.ev. x",
            "bt.ev.\n",
            "bt.ev.",
        ] {
            assert!(check_filter(filter).is_err(), "{filter:?}");
        }
    }
}
