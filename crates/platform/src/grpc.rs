//! Serving gRPC on a listener the caller bound (so tests can bind `127.0.0.1:0`).

use tonic::transport::server::TcpIncoming;

/// Connections accepted from `listener`, with `TCP_NODELAY` on. Without it, Nagle's
/// algorithm holds small responses back until the client's delayed ACK (~40 ms per call).
pub fn incoming(listener: tokio::net::TcpListener) -> TcpIncoming {
    TcpIncoming::from(listener).with_nodelay(Some(true))
}
