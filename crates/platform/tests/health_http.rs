//! The health HTTP server, spoken to with a minimal HTTP/1.1 client.

use std::net::SocketAddr;

use axum::routing::get;
use axum::Router;
use backtrack_platform::health::{serve_http, Health};
use backtrack_platform::shutdown::Shutdown;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

/// Sends `GET path` with `Connection: close` and returns (status code, body).
async fn get_path(addr: SocketAddr, path: &str) -> (u16, String) {
    let mut stream = TcpStream::connect(addr).await.expect("connect");
    let request = format!("GET {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n");
    stream
        .write_all(request.as_bytes())
        .await
        .expect("send request");
    let mut response = String::new();
    stream
        .read_to_string(&mut response)
        .await
        .expect("read response");
    let (head, body) = response
        .split_once("\r\n\r\n")
        .expect("headers end with a blank line");
    let status = head
        .split(' ')
        .nth(1)
        .and_then(|code| code.parse().ok())
        .expect("status line");
    (status, body.to_owned())
}

#[tokio::test]
async fn probes_follow_readiness_and_server_stops_on_shutdown() {
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = listener.local_addr().expect("local addr");
    let health = Health::new();
    let extra = Router::new().route("/version", get(|| async { "0.1.0" }));
    let (trigger, shutdown) = Shutdown::new();
    let server = tokio::spawn(serve_http(listener, health.clone(), extra, shutdown));

    assert_eq!(get_path(addr, "/healthz").await, (200, "ok".to_owned()));

    let (status, body) = get_path(addr, "/readyz").await;
    assert_eq!(status, 503);
    assert_eq!(body, "not ready: starting");

    health.set_ready(false, "NATS unreachable");
    assert_eq!(
        get_path(addr, "/readyz").await,
        (503, "not ready: NATS unreachable".to_owned())
    );

    health.set_ready(true, "");
    assert!(health.is_ready());
    assert_eq!(get_path(addr, "/readyz").await, (200, "ready".to_owned()));

    assert_eq!(get_path(addr, "/version").await, (200, "0.1.0".to_owned()));
    assert_eq!(get_path(addr, "/nope").await.0, 404);

    trigger.trigger();
    server
        .await
        .expect("server task did not panic")
        .expect("server ended cleanly");
    assert!(
        TcpStream::connect(addr).await.is_err(),
        "listener is closed after shutdown"
    );
}
