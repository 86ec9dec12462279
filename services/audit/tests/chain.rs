//! The audit service against a real nats-server and real RocksDB: records chained per
//! tenant in stream order, queried by every field and paged, verified, tampered with behind
//! the service's back (altered, removed, reordered, truncated), rebuilt from the stream.
#![allow(clippy::unwrap_used)]

use std::time::Duration;

use backtrack_audit::{Audit, AuditConfig};
use backtrack_eventlog::audit::new_record;
use backtrack_eventlog::AuditLog;
use backtrack_platform::shutdown::Shutdown;
use backtrack_proto::v1;
use backtrack_store::audit::{AuditIndex, AuditQuery};
use backtrack_test_support::{eventually, NatsServer};
use prost::Message;

fn record(tenant: &str, n: usize) -> v1::AuditRecord {
    let action = if n.is_multiple_of(3) {
        "backup.created"
    } else {
        "recovery.operationApplied"
    };
    let mut r = new_record(tenant, "test", action);
    r.time_ms = 1_800_000_000_000 + n as i64 * 1000;
    r.actor = Some(v1::AuditActor {
        subject: format!("user{}", n % 2),
        roles: vec![],
        source_address: "127.0.0.1".into(),
    });
    r.target = Some(v1::AuditTarget {
        kind: "user".into(),
        id: format!("target-{n}"),
        display_name: format!("Target {n}"),
    });
    r.result = Some(v1::AuditResult {
        success: !n.is_multiple_of(5),
        reason: String::new(),
    });
    r.correlation = Some(v1::AuditCorrelation {
        job_id: if n < 10 {
            "job-1".into()
        } else {
            String::new()
        },
        ..Default::default()
    });
    r
}

async fn started(
    nats: &NatsServer,
    dir: &std::path::Path,
) -> (Audit, backtrack_platform::shutdown::ShutdownTrigger) {
    let (trigger, shutdown) = Shutdown::new();
    let mut config = AuditConfig::new(dir.to_path_buf());
    config.checkpoint_every = Duration::from_millis(100);
    let audit = Audit::start(config, nats.client().await.unwrap(), shutdown)
        .await
        .unwrap();
    (audit, trigger)
}

fn query() -> AuditQuery {
    AuditQuery {
        page_size: 1000,
        ..Default::default()
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn records_are_chained_queried_and_verified_and_tampering_is_found() {
    let nats = NatsServer::start().await.unwrap();
    let log = AuditLog::open(nats.client().await.unwrap(), 1)
        .await
        .unwrap();
    let mut a: Vec<v1::AuditRecord> = (0..40).map(|n| record("ta", n)).collect();
    let b: Vec<v1::AuditRecord> = (0..7).map(|n| record("tb", n)).collect();
    // Interleave the tenants in the stream.
    let mut all = Vec::new();
    for (i, r) in a.iter().enumerate() {
        all.push(r.clone());
        if let Some(rb) = b.get(i) {
            all.push(rb.clone());
        }
    }
    log.publish(&all).await.unwrap();
    // Publishing the same records again stores nothing twice.
    log.publish(&all[..5]).await.unwrap();
    let dir = tempfile::tempdir().unwrap();
    let (audit, trigger) = started(&nats, &dir.path().join("index")).await;

    let (page, next) = audit.query("ta", &query()).await.unwrap();
    assert_eq!(page.len(), 40);
    assert!(next.is_empty());
    let ids: Vec<&str> = page
        .iter()
        .map(|e| e.record.as_ref().unwrap().id.as_str())
        .collect();
    let want: Vec<&str> = a.iter().map(|r| r.id.as_str()).collect();
    assert_eq!(ids, want, "stream order per tenant");
    assert_eq!(
        page.iter().map(|e| e.index).collect::<Vec<_>>(),
        (1..=40).collect::<Vec<_>>()
    );
    assert_eq!(audit.query("tb", &query()).await.unwrap().0.len(), 7);

    // Filters, each checked against the records themselves.
    let count = |q: AuditQuery| {
        let audit = audit.clone();
        async move { audit.query("ta", &q).await.unwrap().0.len() }
    };
    let by = |f: &dyn Fn(&v1::AuditRecord) -> bool| a.iter().filter(|r| f(r)).count();
    assert_eq!(
        count(AuditQuery {
            actor: "user1".into(),
            ..query()
        })
        .await,
        by(&|r| r.actor.as_ref().unwrap().subject == "user1")
    );
    assert_eq!(
        count(AuditQuery {
            action: "backup.created".into(),
            ..query()
        })
        .await,
        by(&|r| r.action == "backup.created")
    );
    assert_eq!(
        count(AuditQuery {
            target_id: "target-7".into(),
            ..query()
        })
        .await,
        1
    );
    assert_eq!(
        count(AuditQuery {
            result: "failure".into(),
            ..query()
        })
        .await,
        by(&|r| !r.result.as_ref().unwrap().success)
    );
    assert_eq!(
        count(AuditQuery {
            correlation_id: "job-1".into(),
            ..query()
        })
        .await,
        10
    );
    let (since, until) = (a[5].time_ms, a[14].time_ms);
    assert_eq!(
        count(AuditQuery {
            since_ms: since,
            until_ms: until,
            ..query()
        })
        .await,
        10
    );
    assert_eq!(
        count(AuditQuery {
            since_ms: since,
            until_ms: until,
            actor: "user0".into(),
            ..query()
        })
        .await,
        5
    );
    // Paging: pages of 7 walk every record once.
    let mut seen = Vec::new();
    let mut token = String::new();
    loop {
        let (page, next) = audit
            .query(
                "ta",
                &AuditQuery {
                    page_size: 7,
                    page_token: token.clone(),
                    actor: "user0".into(),
                    ..query()
                },
            )
            .await
            .unwrap();
        seen.extend(page.iter().map(|e| e.index));
        if next.is_empty() {
            break;
        }
        token = next;
    }
    assert_eq!(seen.len(), 20);
    assert!(seen.windows(2).all(|w| w[0] < w[1]));

    // Intact chains verify; wait until the head is checkpointed.
    let verified = eventually(
        "the head to be checkpointed",
        Duration::from_secs(10),
        || {
            let audit = audit.clone();
            async move {
                let v = audit.verify("ta").await.unwrap();
                (v.checkpoint_index == 40).then_some(v)
            }
        },
    )
    .await
    .unwrap();
    assert!(verified.ok, "{verified:?}");
    assert_eq!((verified.checked, verified.head_index), (40, 40));
    assert!(audit.verify("tb").await.unwrap().ok);

    let index = audit.index();
    let key = |i: u64| AuditIndex::entry_key("ta", i);
    let raw = |i: u64| index.entry("ta", i).unwrap().unwrap();

    // Altered: a record's reason changed in place.
    let original = raw(12);
    let mut altered = original.clone();
    let mut rec = v1::AuditRecord::decode(altered.payload.as_slice()).unwrap();
    rec.result.as_mut().unwrap().reason = "nothing to see".into();
    altered.payload = rec.encode_to_vec();
    index.put_raw(&key(12), &altered.encode_to_vec()).unwrap();
    let v = audit.verify("ta").await.unwrap();
    assert!(!v.ok);
    assert_eq!(v.first_bad_index, 12, "{v:?}");
    assert!(v.problem.contains("altered"), "{v:?}");
    index.put_raw(&key(12), &original.encode_to_vec()).unwrap();
    assert!(audit.verify("ta").await.unwrap().ok);

    // Removed: entry 20 deleted.
    let removed = raw(20);
    index.delete_raw(&key(20)).unwrap();
    let v = audit.verify("ta").await.unwrap();
    assert_eq!((v.ok, v.first_bad_index), (false, 20), "{v:?}");
    index.put_raw(&key(20), &removed.encode_to_vec()).unwrap();

    // Reordered: entries 30 and 31 swapped (with their positions rewritten to fit).
    let (e30, e31) = (raw(30), raw(31));
    let mut s30 = e31.clone();
    s30.index = 30;
    let mut s31 = e30.clone();
    s31.index = 31;
    index.put_raw(&key(30), &s30.encode_to_vec()).unwrap();
    index.put_raw(&key(31), &s31.encode_to_vec()).unwrap();
    let v = audit.verify("ta").await.unwrap();
    assert_eq!((v.ok, v.first_bad_index), (false, 30), "{v:?}");
    index.put_raw(&key(30), &e30.encode_to_vec()).unwrap();
    index.put_raw(&key(31), &e31.encode_to_vec()).unwrap();
    assert!(audit.verify("ta").await.unwrap().ok);

    // Truncated, head rewritten to match: only the checkpointed head tells.
    let (e39, e40) = (raw(39), raw(40));
    index.delete_raw(&key(40)).unwrap();
    let mut head = 39u64.to_be_bytes().to_vec();
    head.extend_from_slice(&e39.hash);
    index.put_raw(b"H/ta", &head).unwrap();
    let v = audit.verify("ta").await.unwrap();
    assert!(!v.ok, "{v:?}");
    assert!(v.problem.contains("removed"), "{v:?}");
    index.put_raw(&key(40), &e40.encode_to_vec()).unwrap();
    let mut head = 40u64.to_be_bytes().to_vec();
    head.extend_from_slice(&e40.hash);
    index.put_raw(b"H/ta", &head).unwrap();
    assert!(audit.verify("ta").await.unwrap().ok);

    // Rebuilt from the stream: the same chain, the same head.
    let head_before = audit.index().head("ta").unwrap();
    drop(audit);
    trigger.trigger();
    let rebuilt_dir = dir.path().join("rebuilt");
    let (rebuilt, _trigger) = started(&nats, &rebuilt_dir).await;
    a.push(record("ta", 99));
    rebuilt.log().publish(&a[40..]).await.unwrap();
    rebuilt.catch_up().await.unwrap();
    let (index41, _) = rebuilt.index().head("ta").unwrap();
    assert_eq!(index41, 41);
    assert_eq!(
        rebuilt.index().entry("ta", 40).unwrap().unwrap().hash,
        head_before.1.to_vec()
    );
    assert!(rebuilt.verify("ta").await.unwrap().ok);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_record_stored_twice_is_chained_once() {
    let nats = NatsServer::start().await.unwrap();
    let log = AuditLog::open(nats.client().await.unwrap(), 1)
        .await
        .unwrap();
    let r = record("tc", 1);
    log.publish(std::slice::from_ref(&r)).await.unwrap();
    // The same record again without a message id (outside any dedupe window): the stream
    // stores it twice, the chain once.
    let js = async_nats::jetstream::new(nats.client().await.unwrap());
    js.publish("bt.audit.tc.test", r.encode_to_vec().into())
        .await
        .unwrap()
        .await
        .unwrap();
    log.publish(&[record("tc", 2)]).await.unwrap();
    let dir = tempfile::tempdir().unwrap();
    let (audit, _trigger) = started(&nats, dir.path()).await;
    let (page, _) = audit.query("tc", &query()).await.unwrap();
    assert_eq!(page.len(), 2);
    assert!(audit.verify("tc").await.unwrap().ok);
}
