//! The consumer loop of one sink: pull a batch, deliver it, acknowledge it, repeat; on a
//! failure keep the batch, back off, reconnect and deliver it again.
//!
//! Syslog has no acknowledgements of its own, so its batches are acknowledged one short
//! moment ([`SETTLE`]) after they were written, and only if the connection is still open
//! then: a receiver that went away in between makes the sink write them again. Up to
//! [`MAX_OUTSTANDING`] batches are in hand at once so that writing does not wait for that.

use std::collections::VecDeque;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};

use async_nats::jetstream::consumer::{pull, AckPolicy, DeliverPolicy, PullConsumer};
use async_nats::jetstream::{self, AckKind};
use backtrack_eventlog::audit::AUDIT_STREAM;
use backtrack_platform::shutdown::Shutdown;
use backtrack_proto::v1::AuditRecord;
use futures::StreamExt;

use super::batch::Batch;
use super::file::FileSink;
use super::http::HttpSink;
use super::syslog::SyslogSink;
use super::{SinkConfig, SinkKind, SinkStats};

/// Batches in hand at once.
const MAX_OUTSTANDING: usize = 3;
/// How long after writing a syslog batch the connection must still be open before the batch
/// counts as delivered.
const SETTLE: Duration = Duration::from_millis(25);
/// Longest wait of one pull for the first new record.
const IDLE_WAIT: Duration = Duration::from_secs(1);

/// The receiver side of a sink.
enum Transport {
    Syslog(SyslogSink),
    Http(HttpSink),
    File(FileSink),
}

impl Transport {
    fn new(config: &SinkConfig) -> Result<Self, String> {
        Ok(match &config.kind {
            SinkKind::Syslog {
                address,
                tls,
                facility,
                hostname,
            } => Transport::Syslog(SyslogSink::new(
                address,
                tls.as_ref(),
                *facility,
                hostname.as_deref(),
                config.format,
                config.io_timeout(),
            )?),
            SinkKind::Http { .. } => Transport::Http(HttpSink::new(config)?),
            SinkKind::File {
                path,
                max_bytes,
                keep,
            } => Transport::File(FileSink::new(path, *max_bytes, *keep, config.format)),
        })
    }

    fn describe(&self) -> String {
        match self {
            Transport::Syslog(t) => t.describe(),
            Transport::Http(t) => t.describe(),
            Transport::File(t) => t.describe(),
        }
    }

    fn encode(&self, record: &AuditRecord, out: &mut Vec<u8>) {
        match self {
            Transport::Syslog(t) => t.encode(record, out),
            Transport::Http(t) => t.encode(record, out),
            Transport::File(t) => t.encode(record, out),
        }
    }

    async fn deliver(&mut self, batch: &mut Batch) -> std::io::Result<()> {
        match self {
            Transport::Syslog(t) => t.deliver(batch).await,
            Transport::Http(t) => t.deliver(batch).await,
            Transport::File(t) => t.deliver(batch).await,
        }
    }

    /// Whether delivered batches wait for [`Transport::still_open`] before being acked.
    fn settles(&self) -> bool {
        matches!(self, Transport::Syslog(_))
    }

    fn still_open(&mut self) -> bool {
        match self {
            Transport::Syslog(t) => t.still_open(),
            Transport::Http(_) | Transport::File(_) => true,
        }
    }

    fn disconnect(&mut self) {
        match self {
            Transport::Syslog(t) => t.disconnect(),
            Transport::Http(t) => t.disconnect(),
            Transport::File(_) => {}
        }
    }

    async fn close(&mut self) {
        if let Transport::Syslog(t) = self {
            t.close().await;
        }
    }
}

/// One sink's state between steps.
struct Worker {
    config: SinkConfig,
    stats: Arc<SinkStats>,
    shutdown: Shutdown,
    js: jetstream::Context,
    transport: Transport,
    consumer: Option<PullConsumer>,
    outstanding: VecDeque<Batch>,
    /// Records the stream still had for this consumer at the last pull.
    stream_pending: u64,
    backoff: Duration,
    /// Most records in one batch, and how long the first waits for more.
    batch_records: usize,
    linger: Duration,
}

pub(super) async fn run(
    js: jetstream::Context,
    config: SinkConfig,
    stats: Arc<SinkStats>,
    shutdown: Shutdown,
) {
    let initial = Duration::from_millis(config.backoff_initial_ms);
    // The transport is built once: a bad CA file is fixed by a restart with a new config.
    let transport = loop {
        match Transport::new(&config) {
            Ok(t) => break t,
            Err(problem) => {
                tracing::warn!(sink = %config.name, %problem, "audit sink cannot start its transport; retrying");
                stats.errors.fetch_add(1, Ordering::Relaxed);
                tokio::select! {
                    () = tokio::time::sleep(Duration::from_millis(config.backoff_max_ms)) => {}
                    () = shutdown.wait() => return,
                }
            }
        }
    };
    let (batch_records, linger) = match &config.kind {
        SinkKind::Http {
            max_batch_records,
            max_delay_ms,
            ..
        } => (*max_batch_records, Duration::from_millis(*max_delay_ms)),
        _ => (config.fetch_batch, Duration::ZERO),
    };
    tracing::info!(sink = %config.name, to = %transport.describe(), "audit sink started");
    let mut worker = Worker {
        config,
        stats,
        shutdown,
        js,
        transport,
        consumer: None,
        outstanding: VecDeque::new(),
        stream_pending: 0,
        backoff: initial,
        batch_records,
        linger,
    };
    worker.run().await;
}

impl Worker {
    async fn run(&mut self) {
        loop {
            if self.shutdown.is_triggered() {
                self.stop().await;
                return;
            }
            self.keep_in_hand().await;
            self.settle().await;
            let all_delivered = self.outstanding.iter().all(Batch::fully_accepted);
            if all_delivered && self.outstanding.len() < MAX_OUTSTANDING {
                if let Err(problem) = self.pull().await {
                    self.consumer = None;
                    self.failed("cannot read BT_AUDIT", &problem).await;
                    continue;
                }
            } else if all_delivered {
                // Every slot holds a written batch that has not settled yet.
                let wait = self.until_settled().unwrap_or(SETTLE);
                tokio::select! {
                    () = tokio::time::sleep(wait) => {}
                    () = self.shutdown.wait() => {}
                }
                continue;
            }
            self.deliver().await;
        }
    }

    /// Delivers every batch in hand that the receiver does not fully have yet, in order,
    /// stopping at the first failure.
    async fn deliver(&mut self) {
        let mut failure = None;
        for batch in self.outstanding.iter_mut() {
            if batch.fully_accepted() {
                continue;
            }
            if let Err(e) = self.transport.deliver(batch).await {
                failure = Some(e);
                break;
            }
        }
        if !self.transport.settles() {
            // What the receiver confirmed, even a part of a batch before a failure.
            self.ack_front(self.outstanding.len()).await;
        }
        match failure {
            // Syslog resets the backoff when a batch settles, not when it was written.
            None if !self.transport.settles() => self.reset_backoff(),
            None => {}
            Some(e) => {
                self.transport.disconnect();
                if self.transport.settles() {
                    // Whatever went down this connection may be lost with it.
                    self.outstanding.iter_mut().for_each(Batch::resend_unacked);
                }
                let what = format!("cannot deliver to {}", self.transport.describe());
                self.failed(&what, &e.to_string()).await;
            }
        }
    }

    /// How long until the oldest written batch may settle (`None`: nothing written waits).
    fn until_settled(&self) -> Option<Duration> {
        let at = self.outstanding.front()?.delivered_at?;
        Some(SETTLE.saturating_sub(at.elapsed()))
    }

    /// Syslog: acks the batches written at least [`SETTLE`] ago if the connection is still
    /// open, else has everything unacknowledged written again.
    async fn settle(&mut self) {
        if !self.transport.settles() {
            return;
        }
        let ready = self
            .outstanding
            .iter()
            .take_while(|b| {
                b.fully_accepted() && b.delivered_at.is_some_and(|at| at.elapsed() >= SETTLE)
            })
            .count();
        if ready == 0 {
            return;
        }
        if self.transport.still_open() {
            self.ack_front(ready).await;
            self.reset_backoff();
        } else {
            self.transport.disconnect();
            self.outstanding.iter_mut().for_each(Batch::resend_unacked);
            let what = format!(
                "the syslog receiver {} closed the connection; writing the unacknowledged records again",
                self.transport.describe()
            );
            self.failed(&what, "connection closed by the receiver")
                .await;
        }
    }

    fn reset_backoff(&mut self) {
        self.backoff = Duration::from_millis(self.config.backoff_initial_ms);
    }

    /// Acks what the receiver has of the first `n` batches; drops batches fully acked.
    async fn ack_front(&mut self, n: usize) {
        let mut acked = 0u64;
        let mut last_sequence = None;
        let mut failures = 0usize;
        for batch in self.outstanding.iter_mut().take(n) {
            let upto = batch.accepted();
            for message in &batch.messages[batch.acked..upto] {
                if message.ack().await.is_err() {
                    failures += 1;
                }
            }
            if upto > batch.acked {
                acked += (upto - batch.acked) as u64;
                last_sequence = batch.messages[upto - 1]
                    .info()
                    .ok()
                    .map(|i| i.stream_sequence)
                    .or(last_sequence);
                batch.acked = upto;
            }
        }
        if failures > 0 {
            // The stream will offer these records again: the receiver may see them twice.
            tracing::warn!(sink = %self.config.name, failures, "acknowledgements to BT_AUDIT failed");
        }
        while self.outstanding.front().is_some_and(|b| b.acked == b.len()) {
            self.outstanding.pop_front();
        }
        self.stats.delivered.fetch_add(acked, Ordering::Relaxed);
        if let Some(sequence) = last_sequence {
            self.stats.last_sequence.store(sequence, Ordering::Relaxed);
        }
        self.update_backlog();
    }

    fn update_backlog(&self) {
        let in_hand: usize = self.outstanding.iter().map(|b| b.len() - b.acked).sum();
        self.stats
            .backlog
            .store(self.stream_pending + in_hand as u64, Ordering::Relaxed);
    }

    /// Pulls the next batch, waiting a little for records when nothing else is to be done.
    async fn pull(&mut self) -> Result<(), String> {
        if self.consumer.is_none() {
            self.consumer = Some(self.open_consumer().await?);
        }
        let Some(consumer) = self.consumer.as_ref() else {
            return Ok(());
        };
        let wait = if self.outstanding.is_empty() {
            Some(IDLE_WAIT)
        } else {
            self.until_settled().map(|d| d.max(MIN_EXPIRES))
        };
        let messages = gather(
            consumer,
            self.batch_records,
            self.config.fetch_batch,
            self.linger,
            wait,
        )
        .await?;
        if let Some(info) = messages.last().and_then(|m| m.info().ok()) {
            self.stream_pending = info.pending;
        }
        if !messages.is_empty() {
            let transport = &self.transport;
            let batch = Batch::build(messages, |record, out| transport.encode(record, out));
            self.outstanding.push_back(batch);
        } else if self.outstanding.is_empty() {
            self.stream_pending = 0;
        }
        self.update_backlog();
        Ok(())
    }

    async fn open_consumer(&self) -> Result<PullConsumer, String> {
        let stream = self
            .js
            .get_stream(AUDIT_STREAM)
            .await
            .map_err(|e| format!("stream {AUDIT_STREAM}: {e}"))?;
        let name = self.config.consumer_name();
        let in_hand = self.batch_records.max(self.config.fetch_batch) * (MAX_OUTSTANDING + 1);
        stream
            .create_consumer(pull::Config {
                durable_name: Some(name.clone()),
                description: Some(format!(
                    "Backtrack audit export to the SIEM sink '{}'",
                    self.config.name
                )),
                deliver_policy: DeliverPolicy::All,
                ack_policy: AckPolicy::Explicit,
                ack_wait: self.config.ack_wait(),
                filter_subject: self.config.filter_subject.clone(),
                max_ack_pending: i64::try_from(in_hand.max(1000)).unwrap_or(i64::MAX),
                ..Default::default()
            })
            .await
            .map_err(|e| {
                format!("create or update the durable consumer {name} on {AUDIT_STREAM}: {e} (a consumer of that name made by hand with other settings must be deleted)")
            })
    }

    /// Keeps the stream from offering records in hand to anyone else while they wait.
    async fn keep_in_hand(&mut self) {
        let every = self.config.ack_wait() / 3;
        for batch in &mut self.outstanding {
            if batch.touched_at.elapsed() >= every {
                for message in &batch.messages[batch.acked..] {
                    let _ = message.ack_with(AckKind::Progress).await;
                }
                batch.touched_at = std::time::Instant::now();
            }
        }
    }

    async fn failed(&mut self, what: &str, problem: &str) {
        self.stats.errors.fetch_add(1, Ordering::Relaxed);
        tracing::warn!(sink = %self.config.name, %problem, retry_in = ?self.backoff, "{what}");
        tokio::select! {
            () = tokio::time::sleep(self.backoff) => {}
            () = self.shutdown.wait() => {}
        }
        self.backoff = (self.backoff * 2).min(Duration::from_millis(self.config.backoff_max_ms));
    }

    /// Keeps what was delivered, hands the rest back to the stream at once (so the next run
    /// starts with it instead of waiting for `ack_wait`), and closes the connection.
    async fn stop(&mut self) {
        if self.transport.settles() {
            let newest = self.outstanding.iter().filter_map(|b| b.delivered_at).max();
            if let Some(at) = newest {
                tokio::time::sleep(SETTLE.saturating_sub(at.elapsed())).await;
            }
            self.settle().await;
        }
        let mut returned = 0usize;
        for batch in &self.outstanding {
            for message in &batch.messages[batch.acked..] {
                let _ = message.ack_with(AckKind::Nak(None)).await;
                returned += 1;
            }
        }
        let _ = tokio::time::timeout(Duration::from_secs(2), self.js.client().flush()).await;
        self.transport.close().await;
        tracing::info!(sink = %self.config.name, returned, "audit sink stopped");
    }
}

/// Shortest wait of a pull request.
const MIN_EXPIRES: Duration = Duration::from_millis(10);

/// Up to `max` records: whatever is there now; if nothing is and `wait` is set, the first to
/// arrive within `wait` and what is there then; and while fewer than `max`, more for up to
/// `linger` after the first.
async fn gather(
    consumer: &PullConsumer,
    max: usize,
    per_pull: usize,
    linger: Duration,
    wait: Option<Duration>,
) -> Result<Vec<jetstream::Message>, String> {
    let mut got = take(consumer, max.min(per_pull), None).await?;
    if got.is_empty() {
        let Some(wait) = wait else {
            return Ok(got);
        };
        got = take(consumer, 1, Some(wait)).await?;
        if got.is_empty() || max == 1 {
            return Ok(got);
        }
        got.extend(take(consumer, (max - 1).min(per_pull), None).await?);
    }
    let first_at = Instant::now();
    while got.len() < max {
        let left = linger.saturating_sub(first_at.elapsed());
        if left < MIN_EXPIRES {
            break;
        }
        let more = take(consumer, (max - got.len()).min(per_pull), Some(left)).await?;
        if more.is_empty() {
            break;
        }
        got.extend(more);
    }
    Ok(got)
}

/// One pull request: `n` records at most, waiting up to `wait` (none: what is there now).
async fn take(
    consumer: &PullConsumer,
    n: usize,
    wait: Option<Duration>,
) -> Result<Vec<jetstream::Message>, String> {
    let mut messages = match wait {
        None => consumer.fetch().max_messages(n).messages().await,
        Some(expires) => {
            consumer
                .batch()
                .max_messages(n)
                .expires(expires.max(MIN_EXPIRES))
                .messages()
                .await
        }
    }
    .map_err(|e| format!("pull request: {e}"))?;
    let mut out = Vec::with_capacity(n);
    while let Some(item) = messages.next().await {
        match item {
            Ok(message) => out.push(message),
            Err(e) if out.is_empty() => return Err(format!("pull request: {e}")),
            Err(e) => {
                tracing::debug!(error = %e, "pull request ended early");
                break;
            }
        }
    }
    Ok(out)
}
