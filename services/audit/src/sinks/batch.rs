//! A batch: records pulled together, encoded once for the transport (so a retry sends the
//! same bytes), and how far the receiver and the stream have got with them.

use std::ops::Range;
use std::time::Instant;

use async_nats::jetstream;
use backtrack_proto::v1::{self, AuditRecord};
use bytes::Bytes;
use prost::Message as _;

/// Records in stream order with their encoded bytes back to back.
pub(crate) struct Batch {
    pub(crate) messages: Vec<jetstream::Message>,
    bytes: Bytes,
    ends: Vec<usize>,
    /// Records (a prefix) the receiver has.
    accepted: usize,
    /// Records (a prefix) acknowledged to the stream.
    pub(crate) acked: usize,
    /// When the last record was handed to the receiver.
    pub(crate) delivered_at: Option<Instant>,
    /// When the stream last heard about these records (pull or in-progress ack).
    pub(crate) touched_at: Instant,
}

impl Batch {
    /// Decodes and encodes every message. A payload that is not an `AuditRecord` is still
    /// delivered, as an `audit.undecodable` record carrying its bytes, never skipped.
    pub(crate) fn build(
        messages: Vec<jetstream::Message>,
        mut encode: impl FnMut(&AuditRecord, &mut Vec<u8>),
    ) -> Self {
        let mut bytes = Vec::with_capacity(messages.len() * 768);
        let mut ends = Vec::with_capacity(messages.len());
        for message in &messages {
            let record = AuditRecord::decode(message.payload.as_ref())
                .unwrap_or_else(|e| undecodable(message, &e.to_string()));
            encode(&record, &mut bytes);
            ends.push(bytes.len());
        }
        Self {
            messages,
            bytes: Bytes::from(bytes),
            ends,
            accepted: 0,
            acked: 0,
            delivered_at: None,
            touched_at: Instant::now(),
        }
    }

    pub(crate) fn len(&self) -> usize {
        self.messages.len()
    }

    pub(crate) fn accepted(&self) -> usize {
        self.accepted
    }

    pub(crate) fn fully_accepted(&self) -> bool {
        self.accepted == self.len()
    }

    /// The receiver has the first `n` records.
    pub(crate) fn accept_up_to(&mut self, n: usize) {
        self.accepted = n.min(self.len()).max(self.accepted);
        self.delivered_at = Some(Instant::now());
    }

    pub(crate) fn accept_all(&mut self) {
        self.accept_up_to(self.len());
    }

    /// The receiver may have lost what was not acknowledged yet: send it again.
    pub(crate) fn resend_unacked(&mut self) {
        self.accepted = self.acked;
        self.delivered_at = None;
    }

    /// Byte range of record `i`.
    pub(crate) fn range(&self, i: usize) -> Range<usize> {
        let start = if i == 0 { 0 } else { self.ends[i - 1] };
        start..self.ends[i]
    }

    pub(crate) fn bytes(&self) -> &Bytes {
        &self.bytes
    }

    /// The bytes of the records the receiver does not have yet.
    pub(crate) fn unaccepted_bytes(&self) -> &[u8] {
        let start = if self.accepted == 0 {
            0
        } else {
            self.ends[self.accepted - 1]
        };
        &self.bytes[start..]
    }
}

fn undecodable(message: &jetstream::Message, problem: &str) -> AuditRecord {
    let mut tokens = message.subject.split('.').skip(2);
    let tenant = tokens.next().unwrap_or_default().to_string();
    let category = tokens.next().unwrap_or_default().to_string();
    let info = message.info().ok();
    let sequence = info.as_ref().map_or(0, |i| i.stream_sequence);
    let id = message
        .headers
        .as_ref()
        .and_then(|h| h.get("Nats-Msg-Id"))
        .map_or_else(|| format!("stream-sequence-{sequence}"), |v| v.to_string());
    tracing::warn!(%tenant, sequence, %problem, "BT_AUDIT holds a message that is not an AuditRecord; exporting it as audit.undecodable");
    AuditRecord {
        id,
        tenant,
        category,
        time_ms: info.map_or(0, |i| {
            i64::try_from(i.published.unix_timestamp_nanos() / 1_000_000).unwrap_or(0)
        }),
        action: "audit.undecodable".into(),
        result: Some(v1::AuditResult {
            success: false,
            reason: format!("payload is not a valid AuditRecord: {problem}"),
        }),
        details_json: serde_json::json!({
            "streamSequence": sequence,
            "payloadHex": hex::encode(&message.payload),
        })
        .to_string(),
        ..Default::default()
    }
}
