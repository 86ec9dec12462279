//! A chat sink (Slack, Teams, Mattermost webhooks) against a real nats-server and an
//! HTTP/1.1 server on 127.0.0.1: with a subject filter on the alert category it posts each
//! alert, and nothing else, as one `{"text": ...}` message per request.
#![allow(clippy::unwrap_used)]

mod common;

use std::sync::{Arc, Mutex};

use backtrack_eventlog::audit::new_record;
use backtrack_proto::v1::{AuditActor, AuditRecord, AuditTarget};
use backtrack_test_support::eventually;
use serde_json::{json, Value};
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::TcpListener;

use common::{config, nats, sample_records, start_sink, DEADLINE};

/// An alert record as the alerter writes it.
fn alert(n: usize) -> AuditRecord {
    let mut r = new_record("acme", "alert", "alert.raised");
    r.id = format!("alert:event-{n}:0");
    r.actor = Some(AuditActor {
        subject: "mallory".into(),
        ..Default::default()
    });
    r.target = Some(AuditTarget {
        kind: "conditionalAccessPolicy".into(),
        id: format!("p{n}"),
        display_name: format!("CA00{n}"),
    });
    r.details_json = json!({
        "rule": "caPolicyDeleted",
        "severity": "critical",
        "what": "conditional access policy deleted (in the recycle bin)",
        "undo": format!("backtrack recover --tenant acme --from seq:{n} --changed-by mallory --id p{n} --dry-run"),
    })
    .to_string();
    r
}

/// Accepts POSTs on `listener` and keeps each request's body.
fn webhook(listener: TcpListener) -> Arc<Mutex<Vec<String>>> {
    let bodies: Arc<Mutex<Vec<String>>> = Arc::default();
    let kept = bodies.clone();
    tokio::spawn(async move {
        while let Ok((tcp, _)) = listener.accept().await {
            let kept = kept.clone();
            tokio::spawn(async move {
                let mut stream = BufReader::new(tcp);
                loop {
                    let mut length = 0;
                    loop {
                        let mut line = String::new();
                        if stream.read_line(&mut line).await.unwrap_or(0) == 0 {
                            return;
                        }
                        if line == "\r\n" {
                            break;
                        }
                        if let Some((name, value)) = line.split_once(':') {
                            if name.eq_ignore_ascii_case("content-length") {
                                length = value.trim().parse().unwrap();
                            }
                        }
                    }
                    let mut body = vec![0; length];
                    stream.read_exact(&mut body).await.unwrap();
                    kept.lock().unwrap().push(String::from_utf8(body).unwrap());
                    let answer = "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok";
                    if stream.get_mut().write_all(answer.as_bytes()).await.is_err() {
                        return;
                    }
                }
            });
        }
    });
    bodies
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_chat_sink_posts_each_alert_alone_and_nothing_else() -> anyhow::Result<()> {
    let nats = nats().await?;
    let mut records = sample_records(40);
    records.insert(10, alert(1));
    records.insert(30, alert(2));
    records.push(alert(3));
    nats.log.publish(&records).await?;
    let listener = TcpListener::bind("127.0.0.1:0").await?;
    let port = listener.local_addr()?.port();
    let bodies = webhook(listener);
    let sink = start_sink(
        &nats.js,
        config(json!({
            "name": "chat", "type": "http", "url": format!("http://127.0.0.1:{port}/hooks/T0/B0/x"),
            "format": "chat", "hec": false, "max_batch_records": 1,
            "filter_subject": "bt.audit.*.alert",
        })),
    );
    let posted = eventually("three messages", DEADLINE, || {
        let posted = bodies.lock().unwrap().clone();
        async move { (posted.len() >= 3).then_some(posted) }
    })
    .await?;
    eventually("the sink to ack them", DEADLINE, || async {
        (sink.stats.delivered() == 3).then_some(())
    })
    .await?;
    sink.stop().await?;
    assert_eq!(posted.len(), 3, "{posted:#?}");
    for (n, body) in posted.iter().enumerate() {
        let message: Value = serde_json::from_str(body.trim_end())?;
        let text = message["text"].as_str().unwrap();
        assert_eq!(message.as_object().unwrap().len(), 1, "{body}");
        let n = n + 1;
        assert!(
            text.starts_with(&format!(
                "[CRITICAL] caPolicyDeleted in acme: conditional access policy deleted (in the recycle bin): conditionalAccessPolicy \"CA00{n}\" (p{n}), by mallory at "
            )),
            "{text}"
        );
        assert!(
            text.ends_with(&format!("Undo (dry run): backtrack recover --tenant acme --from seq:{n} --changed-by mallory --id p{n} --dry-run")),
            "{text}"
        );
    }
    Ok(())
}

#[test]
fn chat_needs_one_message_per_request() {
    let sink: backtrack_audit::sinks::SinkConfig = serde_json::from_value(json!({
        "name": "chat", "type": "http", "url": "https://hooks.example.com/x", "format": "chat",
    }))
    .unwrap();
    let e = sink.validate().unwrap_err();
    assert!(
        e.contains("\"hec\": false") && e.contains("\"max_batch_records\": 1"),
        "{e}"
    );
    let file: backtrack_audit::sinks::SinkConfig = serde_json::from_value(json!({
        "name": "chat", "type": "file", "path": "/tmp/x", "format": "chat",
    }))
    .unwrap();
    assert!(file
        .validate()
        .unwrap_err()
        .starts_with("sink 'chat': format"));
    let ordinary = backtrack_audit::format::chat_text(&sample_records(2)[1]);
    assert!(
        ordinary.starts_with("[globex] user1@example.com backup.created"),
        "{ordinary}"
    );
}
