//! The event log against a real nats-server: stream protection, append semantics (order,
//! dedupe, optimistic concurrency, limits), live and bounded reads, and crash durability.

use std::time::Duration;

use anyhow::Context as _;
use async_nats::jetstream::{self, stream::StorageType};
use backtrack_domain::event::{Change, Event};
use backtrack_eventlog::codec::{
    CE_DATASCHEMA, CE_ID, CE_SOURCE, CE_SPECVERSION, CE_SUBJECT, CE_TIME, CE_TYPE, CONTENT_TYPE,
};
use backtrack_eventlog::{Append, EventLog, EventLogError, StreamSettings};
use backtrack_test_support::{eventually, NatsServer};
use futures::StreamExt;
use serde_json::json;

mod common;

use common::{append, append_ok, attributes, new_user, open, user_event, WAIT};

#[tokio::test]
async fn open_creates_a_protected_stream() -> anyhow::Result<()> {
    let server = NatsServer::start().await?;
    let log = open(&server).await?;
    assert_eq!(log.stream_name(), "BT_EVENTS");

    let js = jetstream::new(server.client().await?);
    let mut stream = js.get_stream("BT_EVENTS").await?;
    let config = stream.info().await?.config.clone();
    assert!(config.deny_delete, "deny_delete off");
    assert!(config.deny_purge, "deny_purge off");
    assert!(config.allow_direct);
    assert_eq!(config.storage, StorageType::File);
    assert_eq!(config.subjects, vec!["bt.ev.>".to_string()]);
    assert_eq!(config.duplicate_window, Duration::from_secs(24 * 60 * 60));
    assert_eq!(config.max_message_size, 1024 * 1024);

    append_ok(&log, vec![append(new_user(1))]).await?;
    assert!(stream.delete_message(1).await.is_err(), "message deleted");
    assert!(stream.purge().await.is_err(), "stream purged");
    assert!(
        stream.purge().filter("bt.ev.t1.>").await.is_err(),
        "subject purged"
    );
    assert_eq!(log.state().await?.messages, 1);

    // Opening again finds the stream and keeps it.
    let again = open(&server).await?;
    assert_eq!(again.state().await?.last_sequence, 1);
    Ok(())
}

/// `deny_delete` protects messages, not the stream itself: JetStream deletes any stream a
/// client may send `$JS.API.STREAM.DELETE.<name>` for. The account permissions (as in
/// `deploy/`) are what keep the log; this proves that such a permission does.
const SERVICE_PERMISSIONS: &str = r#"
authorization {
  users = [
    {
      user: service, password: service,
      permissions: {
        publish: {
          allow: [">"],
          deny: ["$JS.API.STREAM.DELETE.BT_EVENTS", "$JS.API.STREAM.PURGE.BT_EVENTS", "$JS.API.STREAM.MSG.DELETE.BT_EVENTS"]
        }
      }
    }
  ]
}
no_auth_user: service
"#;

#[tokio::test]
async fn the_stream_cannot_be_deleted_by_a_service_account() -> anyhow::Result<()> {
    let server = NatsServer::start_with_config(SERVICE_PERMISSIONS).await?;
    let log = open(&server).await?;
    append_ok(&log, vec![append(new_user(1))]).await?;

    let js = jetstream::ContextBuilder::new()
        .timeout(Duration::from_millis(500))
        .build(server.client().await?);
    assert!(
        js.delete_stream("BT_EVENTS").await.is_err(),
        "stream deleted"
    );
    assert_eq!(log.state().await?.messages, 1);
    assert_eq!(log.read_range(1, 1, "bt.ev.>").await?.len(), 1);
    Ok(())
}

#[tokio::test]
async fn open_refuses_a_stream_that_does_not_protect_the_log() -> anyhow::Result<()> {
    let server = NatsServer::start().await?;
    let js = jetstream::new(server.client().await?);
    js.create_stream(jetstream::stream::Config {
        name: "BT_EVENTS".into(),
        subjects: vec!["bt.ev.>".into()],
        deny_purge: true,
        ..Default::default()
    })
    .await?;
    let err = EventLog::open(server.client().await?, StreamSettings::default())
        .await
        .expect_err("stream without deny_delete accepted");
    assert!(matches!(err, EventLogError::Misconfigured { .. }), "{err}");
    assert!(err.to_string().contains("deny_delete"), "{err}");

    js.create_stream(jetstream::stream::Config {
        name: "OTHER".into(),
        subjects: vec!["bt.other.>".into()],
        deny_delete: true,
        deny_purge: true,
        ..Default::default()
    })
    .await?;
    let settings = StreamSettings {
        name: "OTHER".into(),
        ..StreamSettings::default()
    };
    let err = EventLog::open(server.client().await?, settings)
        .await
        .expect_err("stream with other subjects accepted");
    assert!(err.to_string().contains("subjects"), "{err}");
    Ok(())
}

#[tokio::test]
async fn appended_events_read_back_equal_with_cloud_events_headers() -> anyhow::Result<()> {
    let server = NatsServer::start().await?;
    let log = open(&server).await?;
    let events: Vec<Event> = (0..3).map(new_user).collect();
    let items: Vec<Append> = events.iter().cloned().map(append).collect();
    let msg_id = items[0].msg_id.clone();

    let sequences = append_ok(&log, items).await?;
    assert_eq!(sequences, vec![1, 2, 3]);

    let stored = log.read_range(1, 3, "bt.ev.>").await?;
    let read: Vec<Event> = stored.iter().map(|s| s.event.clone()).collect();
    assert_eq!(read, events);
    assert_eq!(stored[0].subject, events[0].subject());
    assert_eq!(
        stored.iter().map(|s| s.sequence).collect::<Vec<_>>(),
        vec![1, 2, 3]
    );
    assert!(stored[0].published_ms > 1_700_000_000_000, "JetStream time");

    let js = jetstream::new(server.client().await?);
    let raw = js.get_stream("BT_EVENTS").await?.get_raw_message(1).await?;
    let header = |name: &str| {
        raw.headers
            .get(name)
            .map(|v| v.as_str().to_string())
            .with_context(|| format!("header {name} missing"))
    };
    let meta = &events[0].meta;
    assert_eq!(header("Nats-Msg-Id")?, msg_id);
    assert_eq!(header(CE_SPECVERSION)?, "1.0");
    assert_eq!(header(CE_ID)?, meta.event_id);
    assert_eq!(header(CE_TYPE)?, "io.backtrack.directory.created.v1");
    assert_eq!(header(CE_SOURCE)?, "/backtrack/t1/directory");
    assert_eq!(header(CE_TIME)?, "2026-11-22T02:45:00.000Z");
    assert_eq!(header(CE_SUBJECT)?, format!("user/{}", meta.object_id));
    assert_eq!(header(CE_DATASCHEMA)?, "backtrack.v1.DirectoryEvent");
    assert_eq!(header(CONTENT_TYPE)?, "application/protobuf");
    Ok(())
}

#[tokio::test]
async fn a_duplicate_msg_id_is_stored_once_and_returns_the_original_sequence() -> anyhow::Result<()>
{
    let server = NatsServer::start().await?;
    let log = open(&server).await?;
    let first = append(new_user(1));
    let other = append(new_user(2));

    let results = log.append(vec![first.clone(), other]).await;
    let original = results[0].as_ref().map_err(|e| anyhow::anyhow!("{e}"))?;
    assert!(!original.duplicate);

    // Same msg id again, even with a different payload: the stream keeps the first.
    let mut again = first.clone();
    again.event = new_user(3);
    let results = log.append(vec![again]).await;
    let dup = results[0].as_ref().map_err(|e| anyhow::anyhow!("{e}"))?;
    assert!(dup.duplicate);
    assert_eq!(dup.sequence, original.sequence);
    assert_eq!(log.state().await?.messages, 2);
    Ok(())
}

#[tokio::test]
async fn a_wrong_expected_subject_sequence_is_a_conflict_and_appends_nothing() -> anyhow::Result<()>
{
    let server = NatsServer::start().await?;
    let log = open(&server).await?;
    let object = uuid::Uuid::new_v4().to_string();
    let expecting = |n: usize, expected: u64| Append {
        event: user_event("t1", &object, n),
        msg_id: uuid::Uuid::new_v4().to_string(),
        expected_last_subject_sequence: Some(expected),
    };

    // Some(0): the subject must be empty; true for the first, false after.
    let created = expecting(1, 0);
    assert_eq!(append_ok(&log, vec![created.clone()]).await?, vec![1]);
    // Unrelated traffic moves the stream, not this subject.
    append_ok(&log, vec![append(new_user(9))]).await?;

    let results = log.append(vec![expecting(2, 0)]).await;
    match &results[0] {
        Err(EventLogError::Conflict { subject, expected }) => {
            assert_eq!(subject, &format!("bt.ev.t1.user.{object}"));
            assert_eq!(*expected, 0);
        }
        other => panic!("expected a conflict, got {other:?}"),
    }
    let state = log.state().await?;
    assert_eq!((state.messages, state.last_sequence), (2, 2));

    // A retry of the already applied append is a duplicate, not a conflict.
    let retried = log.append(vec![created]).await;
    assert!(
        matches!(retried[0], Ok(a) if a.duplicate && a.sequence == 1),
        "{retried:?}"
    );

    // The right expectation succeeds.
    assert_eq!(append_ok(&log, vec![expecting(3, 1)]).await?, vec![3]);
    Ok(())
}

#[tokio::test]
async fn a_pipelined_batch_of_5000_appends_in_order() -> anyhow::Result<()> {
    let server = NatsServer::start().await?;
    let log = open(&server).await?;
    let events: Vec<Event> = (0..5_000).map(new_user).collect();

    let sequences = append_ok(&log, events.iter().cloned().map(append).collect()).await?;
    let expected: Vec<u64> = (1..=5_000).collect();
    assert_eq!(sequences, expected);

    let stored = log.read_range(1, 5_000, "bt.ev.t1.>").await?;
    assert_eq!(stored.len(), 5_000);
    assert!(stored
        .iter()
        .zip(&events)
        .all(|(s, e)| &s.event == e && s.subject == e.subject()));
    Ok(())
}

#[tokio::test]
async fn read_delivers_events_appended_after_it_started() -> anyhow::Result<()> {
    let server = NatsServer::start().await?;
    let log = open(&server).await?;
    append_ok(&log, vec![append(new_user(0)), append(new_user(1))]).await?;

    let mut live = log.read(2, "bt.ev.>").await?;
    let first = tokio::time::timeout(WAIT, live.next())
        .await?
        .context("stream ended")??;
    assert_eq!(first.sequence, 2);

    let later = new_user(2);
    append_ok(&log, vec![append(later.clone())]).await?;
    let next = tokio::time::timeout(WAIT, live.next())
        .await?
        .context("stream ended")??;
    assert_eq!((next.sequence, next.event), (3, later));
    Ok(())
}

#[tokio::test]
async fn a_whole_stream_reader_asks_the_server_for_no_filter_and_a_tenant_reader_for_its_own(
) -> anyhow::Result<()> {
    let server = NatsServer::start().await?;
    let log = open(&server).await?;
    append_ok(
        &log,
        vec![append(new_user(0)), append(user_event("t2", "x", 1))],
    )
    .await?;
    let mut whole = log.read(1, &log.whole_stream()).await?;
    let mut tenant = log.read(1, "bt.ev.t2.>").await?;
    let first = tokio::time::timeout(WAIT, whole.next())
        .await?
        .context("stream ended")??;
    assert_eq!(first.sequence, 1);
    let only = tokio::time::timeout(WAIT, tenant.next())
        .await?
        .context("stream ended")??;
    assert_eq!((only.sequence, only.event.meta.tenant.as_str()), (2, "t2"));

    let js = jetstream::new(server.client().await?);
    let mut filters = Vec::new();
    let mut consumers = js.get_stream("BT_EVENTS").await?.consumers();
    while let Some(info) = consumers.next().await {
        filters.push(info?.config.filter_subject);
    }
    filters.sort();
    assert_eq!(filters, vec![String::new(), "bt.ev.t2.>".to_string()]);
    Ok(())
}

#[tokio::test]
async fn read_range_stops_at_its_end_and_at_the_tail() -> anyhow::Result<()> {
    let server = NatsServer::start().await?;
    let log = open(&server).await?;
    let mut items: Vec<Append> = (0..6).map(|n| append(new_user(n))).collect();
    items.extend((6..10).map(|n| append(user_event("t2", &uuid::Uuid::new_v4().to_string(), n))));
    append_ok(&log, items).await?;

    let sequences = |events: Vec<backtrack_eventlog::StoredEvent>| -> Vec<u64> {
        events.into_iter().map(|e| e.sequence).collect()
    };
    assert_eq!(
        sequences(log.read_range(3, 7, "bt.ev.>").await?),
        vec![3, 4, 5, 6, 7]
    );
    assert_eq!(
        sequences(log.read_range(0, 1_000, "bt.ev.>").await?).len(),
        10
    );
    assert_eq!(
        sequences(log.read_range(2, 1_000, "bt.ev.t1.>").await?),
        vec![2, 3, 4, 5, 6]
    );
    assert_eq!(
        sequences(log.read_range(1, 8, "bt.ev.t2.>").await?),
        vec![7, 8]
    );
    assert!(log.read_range(11, 20, "bt.ev.>").await?.is_empty());
    assert!(log.read_range(7, 10, "bt.ev.t1.>").await?.is_empty());
    assert!(log.read_range(5, 4, "bt.ev.>").await?.is_empty());
    Ok(())
}

#[tokio::test]
async fn a_read_until_now_ends_after_the_last_event_stored_when_it_started() -> anyhow::Result<()> {
    let server = NatsServer::start().await?;
    let log = open(&server).await?;
    // Sequences 1..=3 for t1, 4..=5 for t2: a t1 reader's tail is before the stream's.
    let mut items: Vec<Append> = (0..3).map(|n| append(new_user(n))).collect();
    items.extend((3..5).map(|n| append(user_event("t2", &uuid::Uuid::new_v4().to_string(), n))));
    append_ok(&log, items).await?;
    let until_now = |from: u64, filter: &'static str| {
        let log = log.clone();
        async move {
            let stream = log.read_until_now(from, filter).await?;
            let events: Vec<_> = tokio::time::timeout(WAIT, stream.collect::<Vec<_>>())
                .await
                .context("a read until now must end by itself")?;
            events
                .into_iter()
                .map(|e| e.map(|e| e.sequence))
                .collect::<Result<Vec<u64>, _>>()
                .map_err(anyhow::Error::from)
        }
    };
    assert_eq!(until_now(1, "bt.ev.t1.>").await?, vec![1, 2, 3]);
    assert_eq!(until_now(2, "bt.ev.>").await?, vec![2, 3, 4, 5]);
    assert_eq!(until_now(4, "bt.ev.t2.>").await?, vec![4, 5]);
    assert!(until_now(4, "bt.ev.t1.>").await?.is_empty());
    assert!(until_now(6, "bt.ev.>").await?.is_empty());
    // Events appended after the call are not part of it.
    let stream = log.read_until_now(1, "bt.ev.t2.>").await?;
    append_ok(
        &log,
        vec![append(user_event(
            "t2",
            &uuid::Uuid::new_v4().to_string(),
            9,
        ))],
    )
    .await?;
    let events: Vec<_> = tokio::time::timeout(WAIT, stream.collect::<Vec<_>>()).await?;
    let sequences: Vec<u64> = events
        .into_iter()
        .map(|e| e.map(|e| e.sequence))
        .collect::<Result<_, _>>()?;
    assert_eq!(sequences, vec![4, 5]);
    Ok(())
}

#[tokio::test]
async fn an_undecodable_message_is_an_error_naming_its_sequence() -> anyhow::Result<()> {
    let server = NatsServer::start().await?;
    let log = open(&server).await?;
    append_ok(&log, vec![append(new_user(0))]).await?;
    let js = jetstream::new(server.client().await?);
    js.publish("bt.ev.t1.user.forged", "not protobuf".into())
        .await?
        .await?;
    append_ok(&log, vec![append(new_user(2))]).await?;

    match log.read_range(1, 3, "bt.ev.>").await {
        Err(EventLogError::Decode {
            sequence, subject, ..
        }) => {
            assert_eq!(sequence, 2);
            assert_eq!(subject, "bt.ev.t1.user.forged");
        }
        other => panic!("expected a decode error, got {other:?}"),
    }

    // The live reader yields the same error in place, then goes on.
    let mut live = log.read(1, "bt.ev.>").await?;
    let mut seen = Vec::new();
    for _ in 0..3 {
        let item = tokio::time::timeout(WAIT, live.next())
            .await?
            .context("stream ended")?;
        seen.push(match item {
            Ok(event) => Ok(event.sequence),
            Err(EventLogError::Decode { sequence, .. }) => Err(sequence),
            Err(other) => return Err(other.into()),
        });
    }
    assert_eq!(seen, vec![Ok(1), Err(2), Ok(3)]);
    Ok(())
}

#[tokio::test]
async fn an_event_over_the_size_limit_is_refused() -> anyhow::Result<()> {
    let server = NatsServer::start().await?;
    let log = open(&server).await?;
    let mut huge = new_user(0);
    huge.change = Change::Created {
        attributes: attributes(json!({"blob": "x".repeat(1024 * 1024)})),
        links: vec![],
    };
    let results = log.append(vec![append(huge), append(new_user(1))]).await;
    assert!(
        matches!(results[0], Err(EventLogError::TooLarge { size, limit, .. }) if size > limit),
        "{:?}",
        results[0]
    );
    assert!(
        matches!(results[1], Ok(a) if a.sequence == 1),
        "{:?}",
        results[1]
    );
    assert_eq!(log.state().await?.messages, 1);
    Ok(())
}

#[tokio::test]
async fn invalid_input_is_refused_before_publishing() -> anyhow::Result<()> {
    let server = NatsServer::start().await?;
    let log = open(&server).await?;
    let mut wildcard = new_user(0);
    wildcard.meta.tenant = "*".into();
    let mut no_id = append(new_user(1));
    no_id.msg_id.clear();
    let results = log.append(vec![append(wildcard), no_id]).await;
    assert!(results
        .iter()
        .all(|r| matches!(r, Err(EventLogError::InvalidEvent(_)))));
    assert_eq!(log.state().await?.messages, 0);

    let err = log
        .read_range(1, 10, "bt.audit.>")
        .await
        .expect_err("filter outside the stream accepted");
    assert!(matches!(err, EventLogError::InvalidFilter { .. }), "{err}");
    assert!(matches!(
        log.read(1, "bt.ev. x").await,
        Err(EventLogError::InvalidFilter { .. })
    ));
    Ok(())
}

#[tokio::test]
async fn acknowledged_events_survive_a_kill_of_nats_server() -> anyhow::Result<()> {
    let mut server = NatsServer::start().await?;
    let events: Vec<Event> = (0..100).map(new_user).collect();
    {
        let log = open(&server).await?;
        append_ok(&log, events.iter().cloned().map(append).collect()).await?;
    }
    server.kill();
    server.restart().await?;

    let log = open(&server).await?;
    // JetStream recovers its store while already answering: wait for the messages.
    eventually("the stream to hold 100 messages again", WAIT, || async {
        (log.state().await.ok()?.messages == 100).then_some(())
    })
    .await?;
    let stored = log.read_range(1, 100, "bt.ev.>").await?;
    let read: Vec<Event> = stored.into_iter().map(|s| s.event).collect();
    assert_eq!(read, events);
    Ok(())
}

#[tokio::test]
async fn the_first_sequence_after_an_instant_is_found_by_the_streams_own_times(
) -> anyhow::Result<()> {
    let server = NatsServer::start().await?;
    let log = open(&server).await?;
    let now_ms = || {
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_millis() as i64)
            .unwrap_or_default()
    };
    let before_any = now_ms() - 1;
    assert_eq!(
        log.first_sequence_after(before_any).await?,
        1,
        "an empty log"
    );
    // Three bursts of appends, the clock moving on between them.
    let mut instants = Vec::new();
    for burst in 0..3 {
        append_ok(
            &log,
            (0..5).map(|n| append(new_user(burst * 5 + n))).collect(),
        )
        .await?;
        let instant = now_ms();
        while now_ms() <= instant + 2 {
            std::hint::spin_loop();
        }
        instants.push(instant);
    }
    assert_eq!(log.first_sequence_after(before_any).await?, 1);
    assert_eq!(log.first_sequence_after(instants[0]).await?, 6);
    assert_eq!(log.first_sequence_after(instants[1]).await?, 11);
    assert_eq!(
        log.first_sequence_after(instants[2]).await?,
        16,
        "none yet: one past the last"
    );
    for (sequence, instant) in [(5, instants[0]), (10, instants[1])] {
        let stored = log.stored_time_ms(sequence).await?.context("stored")?;
        assert!(stored <= instant);
        assert_eq!(log.first_sequence_after(stored).await?, sequence + 1);
        assert_eq!(log.first_sequence_after(stored - 1).await?, {
            // The first message stored at `stored`'s millisecond.
            let mut first = sequence;
            while first > 1 && log.stored_time_ms(first - 1).await? == Some(stored) {
                first -= 1;
            }
            first
        });
    }
    Ok(())
}
