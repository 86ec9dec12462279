//! The baselines: what plain JetStream does on this machine with messages shaped like the
//! directory's events, without the directory around it.
//!
//! [`event_shape`] measures the events the import produced (payload bytes, header count
//! and header bytes, as the event log publishes them); [`raw_publish`] publishes that many
//! messages of that shape to a stream of its own (`BENCH_RAW`, file storage, as many
//! replicas as the log it is compared with), pipelined
//! like the event log (up to [`backtrack_eventlog::append::MAX_IN_FLIGHT`] acks in flight);
//! [`raw_read`] reads them back through an ordered pull consumer. [`raw_read_log`] reads
//! the event log itself the same way, the baseline of the time-travel build.

use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use async_nats::header::HeaderMap;
use async_nats::jetstream::consumer::pull::OrderedConfig;
use async_nats::jetstream::consumer::DeliverPolicy;
use async_nats::jetstream::stream::{Config, StorageType};
use async_nats::jetstream::{self, ContextBuilder};
use backtrack_eventlog::append::{MAX_IN_FLIGHT, NATS_EXPECTED_LAST_SUBJECT_SEQUENCE, NATS_MSG_ID};
use backtrack_eventlog::{codec, EventLog, StreamSettings};
use bytes::Bytes;
use futures::stream::{FuturesOrdered, StreamExt};

use super::Throughput;

/// The baseline stream.
pub const RAW_STREAM: &str = "BENCH_RAW";
/// The stream of the guarded baseline: every message with the two headers the event log
/// sets for JetStream to act on.
pub const GUARDED_STREAM: &str = "BENCH_RAW_GUARDED";
/// Length of the guarded baseline's message ids (`raw-` and the number, zero-padded), about
/// an event's (`<tenant>:<mutation id>:<n>`).
const GUARD_ID_BYTES: usize = 40;
/// Distinct subjects the baseline cycles through (`bench.raw.<n % RAW_SUBJECTS>`).
const RAW_SUBJECTS: u64 = 100_000;
/// Windows of the log sampled by [`event_shape`], and events per window.
const SAMPLE_WINDOWS: u64 = 16;
const SAMPLE_WINDOW_LEN: u64 = 256;
/// How long a read waits for its next message before giving up.
const IDLE_TIMEOUT: Duration = Duration::from_secs(30);

/// The average message the event log publishes.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct MessageShape {
    pub payload_bytes: usize,
    pub headers: usize,
    /// Name and value bytes of all headers together.
    pub header_bytes: usize,
    /// Events the averages were taken over.
    pub sampled: usize,
}

/// Averages the events of `log` over evenly spaced windows, encoded exactly as
/// [`EventLog::append`] encodes them (CloudEvents headers, `Nats-Msg-Id` and the expected
/// last subject sequence).
pub async fn event_shape(log: &EventLog) -> anyhow::Result<MessageShape> {
    let last = log.state().await?.last_sequence;
    if last == 0 {
        bail!("the event log is empty: nothing to measure");
    }
    let stride = (last / SAMPLE_WINDOWS).max(1);
    let (mut payload, mut headers, mut header_bytes, mut sampled) = (0, 0, 0, 0);
    let mut from = 1;
    while from <= last {
        let to = (from + SAMPLE_WINDOW_LEN - 1).min(last);
        for stored in log.read_range(from, to, "bt.ev.>").await? {
            let mut message = codec::encode(&stored.event)?;
            message.insert_header(NATS_MSG_ID, &format!("{}:0", stored.event.meta.mutation_id))?;
            message.insert_header(NATS_EXPECTED_LAST_SUBJECT_SEQUENCE, "0")?;
            payload += message.payload.len();
            for (name, values) in message.headers.iter() {
                let name: &str = name.as_ref();
                for value in values {
                    headers += 1;
                    header_bytes += name.len() + value.as_str().len();
                }
            }
            sampled += 1;
        }
        from += stride.max(SAMPLE_WINDOW_LEN);
    }
    Ok(MessageShape {
        payload_bytes: payload / sampled.max(1),
        headers: (headers + sampled / 2) / sampled.max(1),
        header_bytes: header_bytes / sampled.max(1),
        sampled,
    })
}

/// Headers with `shape`'s count and total size, none of them special to JetStream.
fn synthetic_headers(shape: &MessageShape) -> HeaderMap {
    let mut headers = HeaderMap::new();
    let count = shape.headers.max(1);
    let per_header = shape.header_bytes / count;
    for i in 0..count {
        let name = format!("x-bench-{i:02}");
        let value = "v".repeat(per_header.saturating_sub(name.len()).max(1));
        headers.insert(name.as_str(), value.as_str());
    }
    headers
}

/// Which checks JetStream runs on each baseline message.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Guards {
    /// None: headers of the events' count and size, none special to JetStream.
    None,
    /// The event log's own: a `Nats-Msg-Id` (deduplicated within the event log's
    /// duplicate window) and `Nats-Expected-Last-Subject-Sequence: 0`, each message on a
    /// subject of its own, as an import's creations are.
    EventLog,
}

/// Publishes `count` messages of `shape` to [`RAW_STREAM`] (or, guarded, to
/// [`GUARDED_STREAM`]; created here, file storage), keeping up to `MAX_IN_FLIGHT` acks
/// outstanding.
pub async fn raw_publish(
    client: async_nats::Client,
    shape: &MessageShape,
    count: u64,
    replicas: usize,
    guards: Guards,
) -> anyhow::Result<Throughput> {
    // The same context settings as the event log: many permits, no back-pressure wait.
    let context = ContextBuilder::new()
        .max_ack_inflight(1 << 20)
        .backpressure_on_inflight(false)
        .build(client);
    let (stream, prefix) = match guards {
        Guards::None => (RAW_STREAM, "bench.raw"),
        Guards::EventLog => (GUARDED_STREAM, "bench.rawg"),
    };
    context
        .create_stream(Config {
            name: stream.to_string(),
            subjects: vec![format!("{prefix}.>")],
            storage: StorageType::File,
            num_replicas: replicas,
            duplicate_window: StreamSettings::default().duplicate_window,
            ..Default::default()
        })
        .await
        .context("create the baseline stream")?;
    let synthetic = match guards {
        Guards::None => *shape,
        // Two of the headers are the real ones (values: the message id, and "0").
        Guards::EventLog => MessageShape {
            headers: shape.headers.saturating_sub(2),
            header_bytes: shape.header_bytes.saturating_sub(
                NATS_MSG_ID.len() + GUARD_ID_BYTES + NATS_EXPECTED_LAST_SUBJECT_SEQUENCE.len() + 1,
            ),
            ..*shape
        },
    };
    let headers = synthetic_headers(&synthetic);
    let payload = Bytes::from(
        (0..shape.payload_bytes)
            .map(|i| (i % 251) as u8)
            .collect::<Vec<u8>>(),
    );
    let started = Instant::now();
    let mut in_flight = FuturesOrdered::new();
    for n in 0..count {
        if in_flight.len() >= MAX_IN_FLIGHT {
            if let Some(ack) = in_flight.next().await {
                ack?;
            }
        }
        let (subject, headers) = match guards {
            Guards::None => (format!("{prefix}.{}", n % RAW_SUBJECTS), headers.clone()),
            Guards::EventLog => {
                let mut guarded = headers.clone();
                let id = format!("raw-{n:0width$}", width = GUARD_ID_BYTES - 4);
                guarded.insert(NATS_MSG_ID, id.as_str());
                guarded.insert(NATS_EXPECTED_LAST_SUBJECT_SEQUENCE, "0");
                (format!("{prefix}.{n}"), guarded)
            }
        };
        let ack = context
            .publish_with_headers(subject, headers, payload.clone())
            .await?;
        in_flight.push_back(async move { ack.await });
    }
    while let Some(ack) = in_flight.next().await {
        ack?;
    }
    let elapsed = started.elapsed();
    if guards == Guards::EventLog {
        // Nothing reads it back; its subjects and message ids would only weigh on the
        // server for the scenarios after it.
        context
            .delete_stream(stream)
            .await
            .context("delete the guarded baseline stream")?;
    }
    Ok(Throughput { count, elapsed })
}

/// Reads every message of [`RAW_STREAM`] from the start through an ordered pull consumer;
/// fails unless it finds `count`.
pub async fn raw_read(client: async_nats::Client, count: u64) -> anyhow::Result<Throughput> {
    read_stream(client, RAW_STREAM, "bench.raw.>", count).await
}

/// Reads the event log's first `count` messages as they are stored, through an ordered
/// pull consumer and nothing else (no decoding): the same messages a time-travel build
/// reads, the baseline its rate is compared with.
pub async fn raw_read_log(log: &EventLog, count: u64) -> anyhow::Result<Throughput> {
    let filter = log.whole_stream();
    read_stream(log.client().clone(), log.stream_name(), &filter, count).await
}

/// Reads `count` messages of `stream` over `filter` from the start, through an ordered
/// pull consumer; fails unless it finds them.
pub(crate) async fn read_stream(
    client: async_nats::Client,
    stream: &str,
    filter: &str,
    count: u64,
) -> anyhow::Result<Throughput> {
    let context = jetstream::new(client);
    let started = Instant::now();
    let stream = context.get_stream(stream).await?;
    let consumer = stream
        .create_consumer(OrderedConfig {
            filter_subject: filter.to_string(),
            deliver_policy: DeliverPolicy::All,
            ..Default::default()
        })
        .await?;
    let mut messages = consumer.messages().await?;
    let mut seen = 0;
    let mut bytes = 0usize;
    while seen < count {
        match tokio::time::timeout(IDLE_TIMEOUT, messages.next()).await {
            Ok(Some(message)) => {
                bytes += message?.payload.len();
                seen += 1;
            }
            Ok(None) => bail!("the baseline read ended after {seen} of {count} messages"),
            Err(_) => bail!("the baseline read stalled after {seen} of {count} messages"),
        }
    }
    let elapsed = started.elapsed();
    // Keeps the payloads from being optimised away as unused.
    std::hint::black_box(bytes);
    Ok(Throughput {
        count: seen,
        elapsed,
    })
}

/// Plain RocksDB: `count` puts of `value_bytes` each under 40-byte keys, in write batches
/// of 2048 without a write-ahead log — the way the projection writes, minus all its logic.
pub fn raw_rocksdb_write(
    dir: &std::path::Path,
    count: u64,
    value_bytes: usize,
) -> anyhow::Result<Throughput> {
    let mut options = rocksdb::Options::default();
    options.create_if_missing(true);
    options.set_write_buffer_size(64 * 1024 * 1024);
    let db = rocksdb::DB::open(&options, dir)?;
    let mut write = rocksdb::WriteOptions::default();
    write.disable_wal(true);
    let value = vec![b'x'; value_bytes];
    let started = Instant::now();
    let mut batch = rocksdb::WriteBatch::default();
    for n in 0..count {
        // Spread keys like object ids do: a hash of the counter, not ascending order.
        let key = format!(
            "o/bench/{:032x}",
            u128::from(n).wrapping_mul(0x9E37_79B9_7F4A_7C15_F39C_C060_5CED_C835)
        );
        batch.put(key, &value);
        if batch.len() == 2048 {
            db.write_opt(std::mem::take(&mut batch), &write)?;
        }
    }
    db.write_opt(batch, &write)?;
    Ok(Throughput {
        count,
        elapsed: started.elapsed(),
    })
}
