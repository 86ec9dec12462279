//! Each service in its own process (`backtrack serve`) on a three-node NATS JetStream
//! cluster with replicated (R3) streams: seed, backup, incident, difference report and
//! recovery — with one NATS node killed (`kill -9`) and the recovery process killed and
//! restarted in the middle of the recovery. The recovery completes with an empty residual,
//! no event is lost or doubled, and every audit record is there, its chain intact.
#![allow(clippy::unwrap_used)]

use std::collections::HashSet;
use std::time::Duration;

use backtrack_e2e::deployment::{Deployment, SERVICES};
use backtrack_test_support::{eventually, NatsCluster};
use serde_json::{json, Value};

const T: &str = "fabrikam";
const ADDED: usize = 3_000;

fn done(j: &Value) -> u64 {
    j["operations"]["done"].as_u64().unwrap_or(0)
}

fn finished(j: &Value) -> bool {
    matches!(
        j["status"].as_str(),
        Some("successful" | "successfulWithWarnings" | "failed" | "abandoned")
    )
}

/// Polls the job through the recovery process until `until` holds (the process or a NATS
/// node may be down meanwhile).
async fn job_until(d: &Deployment, id: &str, what: &str, until: impl Fn(&Value) -> bool) -> Value {
    eventually(what, Duration::from_secs(300), || {
        let seen = d
            .json(&["recovery", "show", "--tenant", T, id])
            .ok()
            .filter(|j| until(j));
        async move { seen }
    })
    .await
    .unwrap()
}

#[tokio::test(flavor = "multi_thread")]
async fn services_in_separate_processes_recover_through_a_nats_node_crash_and_a_restart() {
    let mut cluster = NatsCluster::start().await.unwrap();
    let mut d = Deployment::start(
        &cluster.url(),
        &[
            "--stream-replicas",
            "3",
            "--recovery-batch",
            "100",
            "--recovery-lease-stale-secs",
            "2",
        ],
    )
    .await
    .unwrap();

    // Every process reports itself healthy over gRPC too, and exposes its metrics.
    for service in SERVICES {
        let process = &d.processes[service];
        let channel = tonic::transport::Endpoint::from_shared(format!(
            "http://127.0.0.1:{}",
            process.grpc_port
        ))
        .unwrap()
        .connect()
        .await
        .unwrap();
        let mut health = tonic_health::pb::health_client::HealthClient::new(channel);
        let status = health
            .check(tonic_health::pb::HealthCheckRequest {
                service: String::new(),
            })
            .await
            .unwrap()
            .into_inner()
            .status;
        assert_eq!(
            status,
            tonic_health::pb::health_check_response::ServingStatus::Serving as i32,
            "{service}"
        );
        let (code, scrape) = backtrack_e2e::http_get(process.http_port, "/metrics")
            .await
            .unwrap();
        assert_eq!(code, 200, "{service}");
        assert!(
            scrape.contains("# TYPE backtrack_rpc_seconds histogram"),
            "{service}"
        );
    }

    // `backtrack status` asks every service at its own process's address.
    let status = d.json(&["status"]).unwrap();
    let services = status["services"].as_array().unwrap();
    assert_eq!(services.len(), 7, "{status}");
    assert!(services.iter().all(|s| s["state"] == "serving"), "{status}");
    // ... and every process, at its own address, for the projections it keeps.
    let kept = |process: &str| -> Vec<String> {
        status["projections"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|p| p["process"] == format!("backtrack-{process}"))
            .map(|p| p["name"].as_str().unwrap().to_string())
            .collect()
    };
    assert_eq!(status["processes"].as_array().unwrap().len(), 5, "{status}");
    assert_eq!(kept("directory"), ["directory"], "{status}");
    // The snapshotter service also runs the alerter (once per deployment).
    assert_eq!(kept("snapshotter"), ["timetravel", "alerter"], "{status}");
    assert_eq!(kept("differ"), ["timetravel"], "{status}");
    assert_eq!(kept("recovery"), ["directory", "timetravel"], "{status}");
    assert_eq!(kept("audit"), ["audit"], "{status}");

    // Seed through the directory process; the stream is replicated three times.
    d.json(&["tenant", "create", T]).unwrap();
    let group = d
        .json(&[
            "dir",
            "create",
            "--tenant",
            T,
            "--kind",
            "group",
            "--set",
            "displayName=Finance",
            "--set",
            "securityEnabled=true",
        ])
        .unwrap()["id"]
        .as_str()
        .unwrap()
        .to_string();
    let mut originals = Vec::new();
    for i in 0..5 {
        let user = d
            .json(&[
                "dir",
                "create",
                "--tenant",
                T,
                "--kind",
                "user",
                "--set",
                &format!("displayName=Original {i}"),
                "--set",
                &format!("userPrincipalName=o{i}@fabrikam.test"),
            ])
            .unwrap()["id"]
            .as_str()
            .unwrap()
            .to_string();
        originals.push(user);
    }
    let mut link = vec![
        "dir",
        "link",
        "add",
        "--tenant",
        T,
        &group,
        "--relation",
        "members",
    ];
    link.extend(originals.iter().map(String::as_str));
    d.json(&link).unwrap();
    let js = async_nats::jetstream::new(cluster.client().await.unwrap());
    let mut events_stream = js.get_stream("BT_EVENTS").await.unwrap();
    assert_eq!(
        events_stream.info().await.unwrap().config.num_replicas,
        3,
        "the event stream is replicated on the cluster"
    );

    // The backup (snapshotter process), then the incident.
    let backup = d.json(&["backup", "create", "--tenant", T]).unwrap()["id"]
        .as_str()
        .unwrap()
        .to_string();
    let lines: Vec<String> = (0..ADDED)
        .map(|i| json!({"@kind": "user", "displayName": format!("Intruder {i}"), "userPrincipalName": format!("x{i}@fabrikam.test")}).to_string())
        .collect();
    let file = d.scratch().join("added.jsonl");
    std::fs::write(&file, lines.join("\n")).unwrap();
    let imported = d
        .json(&["dir", "import", "--tenant", T, file.to_str().unwrap()])
        .unwrap();
    assert_eq!(imported["created"], ADDED, "{imported}");
    d.json(&["dir", "delete", "--tenant", T, &originals[0]])
        .unwrap();
    d.json(&[
        "dir",
        "update",
        "--tenant",
        T,
        &group,
        "--set",
        "displayName=Renamed",
    ])
    .unwrap();

    // The difference report (differ process, its own time-travel store).
    let report = d
        .json(&["diff", "create", "--tenant", T, "--from", &backup, "--wait"])
        .unwrap();
    assert_eq!(report["changed"], ADDED + 2, "{report}");
    let report_id = report["id"].as_str().unwrap().to_string();

    // The recovery (recovery process); NATS node and recovery process die on the way.
    let started = d
        .json(&["recover", "--tenant", T, "--report", &report_id, "--yes"])
        .unwrap();
    let id = started["id"].as_str().unwrap().to_string();
    let seen = job_until(&d, &id, "the recovery to apply its first batches", |j| {
        done(j) >= 300 || finished(j)
    })
    .await;
    assert!(!finished(&seen), "finished before the node crash: {seen}");
    // While the job runs, the recovery process's metrics show its operations and the lag
    // of the projections it keeps.
    let scrape = |port| async move { backtrack_e2e::http_get(port, "/metrics").await.unwrap().1 };
    let recovery_port = d.processes["recovery"].http_port;
    let during = scrape(recovery_port).await;
    let applied_during =
        backtrack_e2e::metric(&during, "backtrack_recovery_operations_applied_total").unwrap();
    assert!(applied_during >= 300.0, "{applied_during}");
    assert_eq!(
        backtrack_e2e::metric(&during, "backtrack_recovery_jobs_running"),
        Some(1.0)
    );
    for projection in ["directory", "timetravel"] {
        let series = format!("backtrack_projection_lag_events{{projection=\"{projection}\"}}");
        assert!(
            backtrack_e2e::metric(&during, &series).is_some(),
            "no {series} in:\n{during}"
        );
    }
    // The node leading the event stream dies: the hardest case (a new leader is elected,
    // consumers on it are lost).
    let leader = events_stream
        .info()
        .await
        .unwrap()
        .cluster
        .as_ref()
        .and_then(|c| c.leader.clone())
        .unwrap();
    let killed: usize = leader.trim_start_matches('n').parse().unwrap();
    cluster.kill(killed);
    let seen = job_until(&d, &id, "the recovery to go on with a node down", |j| {
        done(j) >= done(&seen) + 500 || finished(j)
    })
    .await;
    assert!(
        !finished(&seen),
        "finished before the process crash: {seen}"
    );
    let later = scrape(recovery_port).await;
    let applied_later =
        backtrack_e2e::metric(&later, "backtrack_recovery_operations_applied_total").unwrap();
    assert!(
        applied_later > applied_during,
        "{applied_during} then {applied_later}"
    );
    d.kill("recovery");
    d.restart("recovery").await.unwrap();
    let last = job_until(&d, &id, "the recovery to finish", finished).await;
    assert_eq!(
        last["status"],
        "successful",
        "{last}\n{}",
        d.log("recovery")
    );
    assert_eq!(last["failed"], 0, "{last}");
    assert_eq!(last["residual"], 0, "{last}");
    assert_eq!(done(&last), (ADDED + 2) as u64, "{last}");

    // The directory process wrote the recovery's events (the recovery process sent it the
    // batches over gRPC); the recovery process appended none of its own.
    let batches = |port| async move {
        let (_, scrape) = backtrack_e2e::http_get(port, "/metrics").await.unwrap();
        let calls = backtrack_e2e::metric(
            &scrape,
            "backtrack_rpc_seconds_count{method=\"/backtrack.v1.DirectoryService/ApplyRecoveryBatch\",code=\"0\"}",
        );
        let appended = backtrack_e2e::metric(&scrape, "backtrack_events_appended_total");
        (calls.unwrap_or(0.0), appended.unwrap_or(0.0))
    };
    let (calls, appended) = batches(d.processes["directory"].http_port).await;
    assert!(
        calls >= 1.0,
        "no ApplyRecoveryBatch call reached the directory"
    );
    assert!(appended >= (ADDED + 2) as f64, "{appended}");
    let (_, appended_by_recovery) = batches(d.processes["recovery"].http_port).await;
    assert_eq!(
        appended_by_recovery, 0.0,
        "the recovery process wrote to the log itself"
    );

    // A fresh report from the backup is empty.
    let after = d
        .json(&["diff", "create", "--tenant", T, "--from", &backup, "--wait"])
        .unwrap();
    assert_eq!(after["changed"], 0, "{after}");
    // The directory process folds the recovery process's appends from the stream: its
    // view follows within moments.
    eventually(
        "the directory view to show the recovery",
        Duration::from_secs(30),
        || {
            let restored = d.json(&["dir", "get", "--tenant", T, &originals[0]]).ok();
            let group = d.json(&["dir", "get", "--tenant", T, &group]).ok();
            let back = restored.is_some_and(|r| r["deletedDateTime"].is_null())
                && group.is_some_and(|g| g["displayName"] == "Finance");
            async move { back.then_some(()) }
        },
    )
    .await
    .unwrap();

    // No event lost or doubled: one per operation, under the job's correlation id.
    let per_mutation = backtrack_e2e::job_mutations(&cluster.client().await.unwrap(), T, &id)
        .await
        .unwrap();
    assert_eq!(per_mutation.len(), ADDED + 2);
    assert!(
        per_mutation.values().all(|n| *n == 1),
        "an operation applied twice"
    );

    // Every audit record: one per operation plus start and finish, none twice, and the
    // tenant's chain verifies through the audit process.
    let records = backtrack_e2e::audit_records(
        &cluster.client().await.unwrap(),
        &format!("bt.audit.{T}.recovery"),
    )
    .await
    .unwrap();
    let mut ids = HashSet::new();
    let mut operations = 0;
    for record in records
        .iter()
        .filter(|r| r.correlation.as_ref().is_some_and(|c| c.job_id == id))
    {
        assert!(
            ids.insert(record.id.clone()),
            "audit record {} twice",
            record.id
        );
        operations += usize::from(record.action == "recovery.operationApplied");
    }
    assert_eq!(operations, ADDED + 2);
    assert_eq!(ids.len(), ADDED + 4);
    let verified = eventually("the audit chain to verify", Duration::from_secs(60), || {
        let out = d.json(&["audit", "verify", "--tenant", T]).ok();
        async move { out.filter(|v| v["ok"] == true) }
    })
    .await;
    assert!(
        verified.is_ok(),
        "{:?}",
        d.json(&["audit", "verify", "--tenant", T])
    );

    // The node comes back and catches up; the deployment goes on, and reads that land on
    // the node while it catches up still see everything.
    cluster.restart(killed).await.unwrap();
    let per_mutation_after = backtrack_e2e::job_mutations(&cluster.client().await.unwrap(), T, &id)
        .await
        .unwrap();
    assert_eq!(per_mutation_after, per_mutation);
    let records_after = backtrack_e2e::audit_records(
        &cluster.client().await.unwrap(),
        &format!("bt.audit.{T}.recovery"),
    )
    .await
    .unwrap();
    assert_eq!(records_after.len(), records.len());
    let after_restart = d
        .json(&["diff", "create", "--tenant", T, "--from", &backup, "--wait"])
        .unwrap();
    assert_eq!(after_restart["changed"], 0, "{after_restart}");

    // SIGTERM: each process drains and exits cleanly.
    for service in SERVICES {
        assert!(
            d.terminate(service).unwrap(),
            "{service}:\n{}",
            d.log(service)
        );
    }
}
