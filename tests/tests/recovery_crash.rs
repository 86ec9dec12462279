//! A 20,000-change recovery survives `kill -9` of `backtrack up` (the recovery process)
//! and of nats-server at points chosen at random: the job resumes, finishes with an empty
//! residual, every operation is in the log exactly once and has exactly one audit record.
#![allow(clippy::unwrap_used)]

use std::collections::HashSet;
use std::time::Duration;

use backtrack_e2e::Backtrack;
use backtrack_proto::v1;
use backtrack_test_support::{eventually, NatsServer};
use futures::StreamExt;
use prost::Message;
use rand::{Rng, SeedableRng};
use serde_json::{json, Value};

const T: &str = "crash";
const USERS: usize = 20_000;

fn job(b: &Backtrack, id: &str) -> Option<Value> {
    b.json(&["recovery", "show", "--tenant", T, id]).ok()
}

/// Polls the job until `done` holds for it (the server may be restarting meanwhile).
async fn until(b: &Backtrack, id: &str, what: &str, done: impl Fn(&Value) -> bool) -> Value {
    eventually(what, Duration::from_secs(240), || {
        let seen = job(b, id).filter(|j| done(j));
        async move { seen }
    })
    .await
    .unwrap()
}

fn finished(j: &Value) -> bool {
    matches!(
        j["status"].as_str(),
        Some("successful" | "successfulWithWarnings" | "failed" | "abandoned")
    )
}

fn done(j: &Value) -> u64 {
    j["operations"]["done"].as_u64().unwrap_or(0)
}

#[tokio::test(flavor = "multi_thread")]
async fn a_recovery_survives_kill_9_of_the_recovery_process_and_of_nats_server() {
    let seed = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_nanos() as u64;
    println!("seed {seed}");
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(seed);
    let mut nats = NatsServer::start().await.unwrap();
    let mut b = Backtrack::start_with(
        Some(nats.url()),
        &[
            "--recovery-batch",
            "250",
            "--recovery-lease-stale-secs",
            "1",
        ],
    )
    .await
    .unwrap();
    b.json(&["tenant", "create", T]).unwrap();
    let backup = b.json(&["backup", "create", "--tenant", T]).unwrap()["id"]
        .as_str()
        .unwrap()
        .to_string();
    // Everything after the backup is undone: 20,000 users to soft delete.
    let lines: Vec<String> = (0..USERS)
        .map(|i| json!({"@kind": "user", "displayName": format!("User {i}"), "userPrincipalName": format!("u{i}@crash.test")}).to_string())
        .collect();
    let file = b.data().join("users.jsonl");
    std::fs::write(&file, lines.join("\n")).unwrap();
    let imported = b
        .json(&["dir", "import", "--tenant", T, file.to_str().unwrap()])
        .unwrap();
    assert_eq!(imported["created"], USERS, "{imported}");

    let started = b
        .json(&["recover", "--tenant", T, "--from", &backup, "--yes"])
        .unwrap();
    let id = started["id"].as_str().unwrap().to_string();

    // Crash 1: the recovery process, somewhere in the first half.
    let first = rng.random_range(500..(USERS as u64 / 2));
    let seen = until(&b, &id, "the job to pass the first crash point", |j| {
        done(j) >= first || finished(j)
    })
    .await;
    assert!(
        !finished(&seen),
        "the job finished before the first crash: {seen}"
    );
    b.kill();
    b.launch().await.unwrap();

    // Crash 2: nats-server, somewhere after the job has moved on.
    let second = rng.random_range(done(&seen) + 250..(USERS as u64 - 1000));
    let seen = until(&b, &id, "the job to pass the second crash point", |j| {
        done(j) >= second || finished(j)
    })
    .await;
    assert!(
        !finished(&seen),
        "the job finished before the second crash: {seen}"
    );
    nats.kill();
    nats.restart().await.unwrap();

    let last = until(&b, &id, "the job to finish", finished).await;
    assert_eq!(last["status"], "successful", "{last}");
    assert_eq!(last["failed"], 0, "{last}");
    assert_eq!(last["residual"], 0, "{last}");
    assert_eq!(done(&last), USERS as u64, "{last}");
    assert_eq!(last["objectsChanged"], USERS, "{last}");

    // Exactly once in the log: one event per operation, none twice.
    let per_mutation = backtrack_e2e::job_mutations(&nats.client().await.unwrap(), T, &id)
        .await
        .unwrap();
    assert_eq!(per_mutation.len(), USERS);
    let doubled: Vec<_> = per_mutation.iter().filter(|(_, n)| **n > 1).collect();
    assert!(doubled.is_empty(), "applied twice: {doubled:?}");

    // Exactly one audit record per operation, plus start and finish.
    use async_nats::jetstream::consumer::pull::OrderedConfig;
    let js = async_nats::jetstream::new(nats.client().await.unwrap());
    let stream = js.get_stream("BT_AUDIT").await.unwrap();
    let mut consumer = stream
        .create_consumer(OrderedConfig {
            filter_subject: format!("bt.audit.{T}.recovery"),
            ..Default::default()
        })
        .await
        .unwrap();
    let pending = consumer.info().await.unwrap().num_pending;
    let mut messages = consumer.messages().await.unwrap();
    let mut ids = HashSet::new();
    let mut operations = 0;
    for _ in 0..pending {
        let message = messages.next().await.unwrap().unwrap();
        let record = v1::AuditRecord::decode(message.payload.as_ref()).unwrap();
        assert!(
            ids.insert(record.id.clone()),
            "audit record {} twice",
            record.id
        );
        if record.action == "recovery.operationApplied" {
            operations += 1;
        }
    }
    assert_eq!(operations, USERS);
    assert_eq!(ids.len(), USERS + 2);

    // And the tenant is back where the backup left it.
    let after = b
        .json(&["diff", "create", "--tenant", T, "--from", &backup, "--wait"])
        .unwrap();
    assert_eq!(after["changed"], 0, "{after}");
}
