//! Appending: pipelined publishes with a message id (dedupe) and, optionally, an expected
//! last subject sequence (optimistic concurrency), every ack awaited.

use std::future::Future;
use std::time::Instant;

use tracing::Instrument;

use async_nats::jetstream::context::{PublishError, PublishErrorKind};
use async_nats::jetstream::message::PublishMessage;
use async_nats::jetstream::ErrorCode;
use backtrack_domain::event::Event;
use futures::stream::{FuturesOrdered, Stream, StreamExt};

use crate::codec::{self, EncodedEvent};
use crate::error::EventLogError;
use crate::log::EventLog;
use crate::metrics;

/// Most publishes of one batch waiting for their ack. One connection delivers the
/// publishes in order and JetStream stores them in order, so pipelining keeps the order
/// while hiding the round trip.
pub const MAX_IN_FLIGHT: usize = 4096;

/// How many later messages of a subject a conflicting retry searches for its original.
const MAX_ORIGINAL_SCAN: usize = 64;

/// The `Nats-Msg-Id` header: the stream ignores a second message with the same id inside
/// its duplicate window.
pub const NATS_MSG_ID: &str = "Nats-Msg-Id";
/// The `Nats-Expected-Last-Subject-Sequence` header: the stream refuses the message unless
/// the subject's last message has this sequence (0: the subject has none).
pub const NATS_EXPECTED_LAST_SUBJECT_SEQUENCE: &str = "Nats-Expected-Last-Subject-Sequence";

/// One event to append.
#[derive(Debug, Clone)]
pub struct Append {
    pub event: Event,
    /// Deduplication key, unique per event (e.g. derived from the mutation id).
    pub msg_id: String,
    /// `Some(n)`: append only if the subject's last message has sequence `n` (`Some(0)`:
    /// only if the subject has no message yet).
    pub expected_last_subject_sequence: Option<u64>,
}

/// An acknowledged append.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Appended {
    /// The event's sequence in the stream; for a duplicate, the original's sequence.
    pub sequence: u64,
    /// The stream already held a message with this msg id, so nothing new was stored.
    pub duplicate: bool,
}

impl EventLog {
    /// Appends `batch` in order, many publishes in flight at once, and returns one result
    /// per item in input order. Items are independent: a failed item does not stop the
    /// ones after it (an item that depends on an earlier one should carry an expected
    /// subject sequence). A duplicate msg id is `Ok` with `duplicate` set and the original
    /// sequence; a wrong expected sequence is [`EventLogError::Conflict`]; an oversized
    /// message is [`EventLogError::TooLarge`]; a lost connection or missing ack is
    /// [`EventLogError::Unavailable`] — the append may have happened, so retry with the
    /// same msg id.
    pub async fn append(&self, batch: Vec<Append>) -> Vec<Result<Appended, EventLogError>> {
        self.append_stream(futures::stream::iter(batch)).await
    }

    /// [`EventLog::append`] for items that arrive while earlier ones are in flight (an
    /// import decides its objects while the first ones are being stored). Items are sent
    /// in the order the stream yields them; the results come back in that order once the
    /// stream has ended and every ack is in.
    pub async fn append_stream(
        &self,
        items: impl Stream<Item = Append> + Unpin,
    ) -> Vec<Result<Appended, EventLogError>> {
        let span = tracing::info_span!("eventlog.append", events = tracing::field::Empty);
        let started = Instant::now();
        let results = self.append_all(items).instrument(span.clone()).await;
        span.record("events", results.len());
        let stored = results
            .iter()
            .filter(|r| matches!(r, Ok(appended) if !appended.duplicate))
            .count();
        metrics::EVENTS_APPENDED.inc_by(&[], stored as u64);
        metrics::APPEND_SECONDS.observe_duration(&[], started.elapsed());
        results
    }

    async fn append_all(
        &self,
        mut items: impl Stream<Item = Append> + Unpin,
    ) -> Vec<Result<Appended, EventLogError>> {
        let mut results: Vec<Option<Result<Appended, EventLogError>>> =
            Vec::with_capacity(items.size_hint().0);
        let mut in_flight = FuturesOrdered::new();
        while let Some(item) = items.next().await {
            let index = results.len();
            results.push(None);
            if in_flight.len() >= MAX_IN_FLIGHT {
                if let Some((done, result)) = in_flight.next().await {
                    results[done] = Some(result);
                }
            }
            match self.publish(item).await {
                Ok(ack) => in_flight.push_back(async move { (index, ack.await) }),
                Err(err) => results[index] = Some(Err(err)),
            }
        }
        while let Some((done, result)) = in_flight.next().await {
            results[done] = Some(result);
        }
        results
            .into_iter()
            .map(|result| {
                result.unwrap_or_else(|| {
                    Err(EventLogError::Internal(
                        "append lost track of an item".into(),
                    ))
                })
            })
            .collect()
    }

    /// Sends one publish and returns the future of its ack (already mapped to our errors).
    async fn publish(
        &self,
        item: Append,
    ) -> Result<impl Future<Output = Result<Appended, EventLogError>>, EventLogError> {
        let expected = item.expected_last_subject_sequence;
        let msg_id = item.msg_id.clone();
        let mut message = encode_append(&item).map_err(EventLogError::InvalidEvent)?;
        crate::trace::inject_current(&mut message.headers);
        let size = message.wire_size();
        if size > self.message_limit {
            return Err(EventLogError::TooLarge {
                subject: message.subject,
                size,
                limit: self.message_limit,
            });
        }
        let subject = message.subject.clone();
        let publish = PublishMessage::build()
            .payload(message.payload)
            .headers(message.headers);
        let ack = self
            .jetstream
            .send_publish(subject.clone(), publish)
            .await
            .map_err(|err| self.publish_error(err, &subject, expected, size))?;
        let log = self.clone();
        Ok(async move {
            let result = ack
                .await
                .map(|ack| Appended {
                    sequence: ack.sequence,
                    duplicate: ack.duplicate,
                })
                .map_err(|err| log.publish_error(err, &subject, expected, size));
            match (result, expected) {
                (Err(EventLogError::Conflict { .. }), Some(expected)) => {
                    match log.find_original(&subject, &msg_id, expected).await {
                        Some(original) => Ok(original),
                        None => Err(EventLogError::Conflict { subject, expected }),
                    }
                }
                (result, _) => result,
            }
        })
    }

    /// JetStream checks the expected subject sequence before it looks for duplicates, so
    /// the retry of an append that was stored (its ack lost) comes back as a conflict. The
    /// original, if there is one, is among the subject's messages after `expected`: finding
    /// it turns the retry into the duplicate it is, keeping appends idempotent.
    async fn find_original(&self, subject: &str, msg_id: &str, expected: u64) -> Option<Appended> {
        let stream = self
            .jetstream
            .get_stream_no_info(&self.stream_name)
            .await
            .ok()?;
        let mut next = expected.checked_add(1)?;
        for _ in 0..MAX_ORIGINAL_SCAN {
            let message = stream
                .raw_message_builder()
                .sequence(next)
                .next_by_subject(subject)
                .send()
                .await
                .ok()?;
            let id = message.headers.get(NATS_MSG_ID).map(|value| value.as_str());
            if id == Some(msg_id) {
                return Some(Appended {
                    sequence: message.sequence,
                    duplicate: true,
                });
            }
            next = message.sequence.checked_add(1)?;
        }
        None
    }

    fn publish_error(
        &self,
        err: PublishError,
        subject: &str,
        expected: Option<u64>,
        size: usize,
    ) -> EventLogError {
        let conflict = || EventLogError::Conflict {
            subject: subject.to_string(),
            expected: expected.unwrap_or_default(),
        };
        let too_large = |limit: usize| EventLogError::TooLarge {
            subject: subject.to_string(),
            size,
            limit,
        };
        match err.kind() {
            PublishErrorKind::WrongLastSequence => conflict(),
            PublishErrorKind::MaxPayloadExceeded => too_large(self.client.max_payload()),
            PublishErrorKind::TimedOut
            | PublishErrorKind::BrokenPipe
            | PublishErrorKind::StreamNotFound
            | PublishErrorKind::MaxAckPending => {
                EventLogError::Unavailable(format!("append to {subject}: {err}"))
            }
            PublishErrorKind::WrongLastMessageId | PublishErrorKind::Other => {
                let code = std::error::Error::source(&err)
                    .and_then(|source| source.downcast_ref::<async_nats::jetstream::Error>())
                    .map(async_nats::jetstream::Error::error_code);
                match code {
                    Some(ErrorCode::STREAM_WRONG_LAST_SEQUENCE) => conflict(),
                    Some(ErrorCode::STREAM_MESSAGE_EXCEEDS_MAXIMUM) => {
                        too_large(self.message_limit)
                    }
                    Some(_) => EventLogError::Internal(format!("append to {subject}: {err}")),
                    // Not a JetStream answer: the client could not send (connection closed).
                    None => EventLogError::Unavailable(format!("append to {subject}: {err}")),
                }
            }
        }
    }
}

fn encode_append(item: &Append) -> Result<EncodedEvent, codec::CodecError> {
    let mut message = codec::encode(&item.event)?;
    message.insert_header(NATS_MSG_ID, &item.msg_id)?;
    if let Some(sequence) = item.expected_last_subject_sequence {
        message.insert_header(NATS_EXPECTED_LAST_SUBJECT_SEQUENCE, &sequence.to_string())?;
    }
    Ok(message)
}
