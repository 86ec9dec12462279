//! A second `backtrack up` on a data directory in use is refused at once and leaves the
//! running one alone (before, it stopped the running one's nats-server as if a crash had
//! left it behind); `up`s started at once each get a nats-server of their own.
#![allow(clippy::unwrap_used)]

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use backtrack_e2e::{id, Backtrack};
use backtrack_test_support::{backtrack_binary, free_port, nats_server_binary};

#[tokio::test(flavor = "multi_thread")]
async fn a_second_up_on_the_same_data_dir_is_refused_and_harms_nothing() {
    // Its own nats-server, started under the data directory: the one a second `up` took
    // for a leftover.
    let b = Backtrack::start(None).await.unwrap();
    b.json(&["tenant", "create", "l"]).unwrap();

    let started = Instant::now();
    let second = Command::new(backtrack_binary())
        .arg("up")
        .arg("--data-dir")
        .arg(b.data())
        .args(["--grpc-addr", &format!("127.0.0.1:{}", free_port())])
        .args(["--http-addr", &format!("127.0.0.1:{}", free_port())])
        .env("NATS_SERVER_BIN", nats_server_binary())
        .stdout(Stdio::null())
        .output()
        .unwrap();
    assert!(!second.status.success());
    let stderr = String::from_utf8_lossy(&second.stderr);
    assert!(
        stderr.contains("another backtrack-up (pid ") && stderr.contains("--data-dir"),
        "{stderr}"
    );
    assert!(
        started.elapsed() < Duration::from_secs(20),
        "refused at once, not after retrying: {:?}",
        started.elapsed()
    );

    // The first one still runs, with its log.
    let user = b
        .create(
            "l",
            "user",
            &["displayName=L", "userPrincipalName=l@l.test"],
        )
        .unwrap();
    let got = b
        .json(&["dir", "get", "--tenant", "l", &id(&user)])
        .unwrap();
    assert_eq!(got["displayName"], "L");
}

#[tokio::test(flavor = "multi_thread")]
async fn ups_started_at_once_each_get_a_nats_server_of_their_own() {
    // Each finds 4222 (or the same next port) free at the same moment; only one server
    // can bind it, and the others must not take that one for theirs.
    let (a, b, c) = tokio::join!(
        Backtrack::start(None),
        Backtrack::start(None),
        Backtrack::start(None)
    );
    let ups = [a.unwrap(), b.unwrap(), c.unwrap()];
    for (n, up) in ups.iter().enumerate() {
        up.json(&["tenant", "create", &format!("own{n}")]).unwrap();
    }
    for (n, up) in ups.iter().enumerate() {
        let tenants: Vec<String> = up
            .json(&["tenant", "list"])
            .unwrap()
            .as_array()
            .unwrap()
            .iter()
            .map(|t| t["id"].as_str().unwrap().to_string())
            .collect();
        assert_eq!(tenants, [format!("own{n}")], "up {n} sees another's log");
    }
}
