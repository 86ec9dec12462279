//! Audit export through the real binary: `backtrack up --audit-sinks` delivers every
//! record of `BT_AUDIT` to a syslog receiver, an HTTP (HEC-style) receiver and a file on
//! localhost, and a kill -9 of `backtrack up` in the middle of the export loses nothing.
#![allow(clippy::unwrap_used)]

use std::collections::BTreeSet;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use backtrack_e2e::Backtrack;
use backtrack_test_support::{eventually, NatsServer};
use serde_json::{json, Value};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;

const T: &str = "exp";

type Ids = Arc<Mutex<Vec<String>>>;

/// A syslog receiver: octet-counted RFC 5424 frames, the record id from the SD param.
async fn syslog_receiver() -> (u16, Ids) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let ids: Ids = Arc::default();
    let seen = ids.clone();
    tokio::spawn(async move {
        loop {
            let Ok((mut socket, _)) = listener.accept().await else {
                return;
            };
            let seen = seen.clone();
            tokio::spawn(async move {
                let mut buf = Vec::new();
                let mut chunk = [0u8; 65536];
                loop {
                    let Ok(n) = socket.read(&mut chunk).await else {
                        return;
                    };
                    if n == 0 {
                        return;
                    }
                    buf.extend_from_slice(&chunk[..n]);
                    while let Some(space) = buf.iter().position(|b| *b == b' ') {
                        let len: usize =
                            std::str::from_utf8(&buf[..space]).unwrap().parse().unwrap();
                        if buf.len() < space + 1 + len {
                            break;
                        }
                        let frame =
                            String::from_utf8_lossy(&buf[space + 1..space + 1 + len]).into_owned();
                        buf.drain(..space + 1 + len);
                        let id = frame
                            .split(" id=\"")
                            .nth(1)
                            .unwrap()
                            .split('"')
                            .next()
                            .unwrap();
                        seen.lock().unwrap().push(id.to_string());
                    }
                }
            });
        }
    });
    (port, ids)
}

/// An HTTP receiver of HEC-style JSON lines; answers slowly so the export lags behind.
async fn http_receiver() -> (u16, Ids) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let ids: Ids = Arc::default();
    let seen = ids.clone();
    tokio::spawn(async move {
        loop {
            let Ok((mut socket, _)) = listener.accept().await else {
                return;
            };
            let seen = seen.clone();
            tokio::spawn(async move {
                let mut buf = Vec::new();
                let mut chunk = [0u8; 65536];
                loop {
                    // One request: headers, then Content-Length bytes.
                    let head_end = loop {
                        if let Some(p) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
                            break p + 4;
                        }
                        let Ok(n) = socket.read(&mut chunk).await else {
                            return;
                        };
                        if n == 0 {
                            return;
                        }
                        buf.extend_from_slice(&chunk[..n]);
                    };
                    let head = String::from_utf8_lossy(&buf[..head_end]).to_ascii_lowercase();
                    let length: usize = head
                        .lines()
                        .find_map(|l| l.strip_prefix("content-length:"))
                        .unwrap()
                        .trim()
                        .parse()
                        .unwrap();
                    while buf.len() < head_end + length {
                        let Ok(n) = socket.read(&mut chunk).await else {
                            return;
                        };
                        if n == 0 {
                            return;
                        }
                        buf.extend_from_slice(&chunk[..n]);
                    }
                    let body =
                        String::from_utf8_lossy(&buf[head_end..head_end + length]).into_owned();
                    buf.drain(..head_end + length);
                    tokio::time::sleep(Duration::from_millis(40)).await;
                    {
                        let mut seen = seen.lock().unwrap();
                        for line in body.lines().filter(|l| !l.is_empty()) {
                            let v: Value = serde_json::from_str(line).unwrap();
                            seen.push(v["event"]["id"].as_str().unwrap().to_string());
                        }
                    }
                    let reply = "HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\n{}";
                    if socket.write_all(reply.as_bytes()).await.is_err() {
                        return;
                    }
                }
            });
        }
    });
    (port, ids)
}

fn unique(ids: &Ids) -> BTreeSet<String> {
    ids.lock().unwrap().iter().cloned().collect()
}

/// Every record id on BT_AUDIT.
async fn stream_ids(nats: &NatsServer) -> BTreeSet<String> {
    backtrack_e2e::audit_records(&nats.client().await.unwrap(), "bt.audit.>")
        .await
        .unwrap()
        .into_iter()
        .map(|r| r.id)
        .collect()
}

#[tokio::test(flavor = "multi_thread")]
async fn every_record_reaches_every_sink_across_a_kill_9_of_the_service() {
    let nats = NatsServer::start().await.unwrap();
    let (syslog_port, syslog_ids) = syslog_receiver().await;
    let (http_port, http_ids) = http_receiver().await;
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("audit.jsonl");
    let config = dir.path().join("sinks.json");
    std::fs::write(
        &config,
        json!({"sinks": [
            {"name": "syslog", "type": "syslog", "address": format!("127.0.0.1:{syslog_port}"), "format": "json"},
            {"name": "hec", "type": "http", "url": format!("http://127.0.0.1:{http_port}/services/collector/event"),
             "gzip": false, "max_batch_records": 50, "max_delay_ms": 20, "format": "json"},
            {"name": "file", "type": "file", "path": file, "max_bytes": 200000, "keep": 50, "format": "json"}
        ]})
        .to_string(),
    )
    .unwrap();
    let mut b = Backtrack::start_with(
        Some(nats.url()),
        &["--audit-sinks", config.to_str().unwrap()],
    )
    .await
    .unwrap();
    b.json(&["tenant", "create", T]).unwrap();
    let backup = b.json(&["backup", "create", "--tenant", T]).unwrap()["id"]
        .as_str()
        .unwrap()
        .to_string();
    let lines: Vec<String> = (0..2000)
        .map(|i| json!({"@kind": "user", "displayName": format!("U{i}"), "userPrincipalName": format!("u{i}@exp.test")}).to_string())
        .collect();
    let users = dir.path().join("users.jsonl");
    std::fs::write(&users, lines.join("\n")).unwrap();
    b.json(&["dir", "import", "--tenant", T, users.to_str().unwrap()])
        .unwrap();
    let job = b
        .json(&[
            "recover", "--tenant", T, "--from", &backup, "--yes", "--wait",
        ])
        .unwrap();
    assert_eq!(job["objectsChanged"], 2000, "{job}");

    // Kill the service while the slow HTTP receiver is still behind.
    let seen = eventually(
        "the export to be under way",
        Duration::from_secs(60),
        || {
            let n = unique(&http_ids).len();
            async move { (n >= 200).then_some(n) }
        },
    )
    .await
    .unwrap();
    assert!(seen < 2002, "the export finished before the kill");
    b.kill();
    b.launch().await.unwrap();

    let want = stream_ids(&nats).await;
    assert!(want.len() >= 2002, "{}", want.len());
    for (name, ids) in [("syslog", &syslog_ids), ("http", &http_ids)] {
        let got = eventually(
            &format!("{name} to get every record"),
            Duration::from_secs(120),
            || {
                let got = unique(ids);
                let done = want.is_subset(&got);
                async move { done.then_some(got) }
            },
        )
        .await
        .unwrap();
        assert_eq!(got, want, "{name} got records that are not on the stream");
    }
    let from_files = eventually(
        "the file sink to have every record",
        Duration::from_secs(60),
        || {
            let mut got = BTreeSet::new();
            for entry in std::fs::read_dir(dir.path()).unwrap() {
                let path = entry.unwrap().path();
                if path
                    .file_name()
                    .unwrap()
                    .to_string_lossy()
                    .starts_with("audit.jsonl")
                {
                    for line in std::fs::read_to_string(&path).unwrap().lines() {
                        let v: Value = serde_json::from_str(line).unwrap();
                        got.insert(v["id"].as_str().unwrap().to_string());
                    }
                }
            }
            let done = want.is_subset(&got);
            async move { done.then_some(got) }
        },
    )
    .await
    .unwrap();
    assert_eq!(from_files, want);
}
