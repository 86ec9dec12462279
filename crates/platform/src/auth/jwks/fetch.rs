//! One HTTP(S) GET of a small document (the JWKS), with hyper's HTTP/1.1 client over a
//! plain or rustls (system roots) connection, bounded in time and size.

use std::sync::Arc;
use std::time::Duration;

use http_body_util::{BodyExt, Empty, Limited};
use hyper::body::Bytes;
use hyper::{header, Request, Uri};
use hyper_util::rt::TokioIo;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::TcpStream;
use tokio_rustls::rustls::pki_types::ServerName;
use tokio_rustls::rustls::{self, ClientConfig, RootCertStore};
use tokio_rustls::TlsConnector;

/// Connect, send and read, altogether.
const TIMEOUT: Duration = Duration::from_secs(15);

/// The body of `GET url` (`http://` or `https://`) if it answers 2xx within the time
/// limit and `limit` bytes.
pub(super) async fn get(url: &str, limit: usize) -> Result<Vec<u8>, String> {
    tokio::time::timeout(TIMEOUT, get_unbounded(url, limit))
        .await
        .map_err(|_| format!("no answer within {}s", TIMEOUT.as_secs()))?
}

async fn get_unbounded(url: &str, limit: usize) -> Result<Vec<u8>, String> {
    let uri: Uri = url.parse().map_err(|e| format!("not a URL: {e}"))?;
    let tls = match uri.scheme_str() {
        Some("https") => true,
        Some("http") => false,
        _ => return Err("the URL must start with https:// or http://".into()),
    };
    let host = uri.host().ok_or("the URL has no host")?.to_string();
    let port = uri.port_u16().unwrap_or(if tls { 443 } else { 80 });
    let authority = uri
        .authority()
        .map(|a| a.as_str().to_string())
        .unwrap_or_else(|| host.clone());
    let path = uri.path_and_query().map_or("/", |p| p.as_str()).to_string();
    let request = Request::get(path)
        .header(header::HOST, authority)
        .header(header::ACCEPT, "application/json")
        .header(header::USER_AGENT, "backtrack")
        .body(Empty::<Bytes>::new())
        .map_err(|e| e.to_string())?;
    let tcp = TcpStream::connect((host.as_str(), port))
        .await
        .map_err(|e| format!("cannot connect to {host}:{port}: {e}"))?;
    if tls {
        let name = ServerName::try_from(host.clone()).map_err(|e| format!("{host}: {e}"))?;
        let stream = TlsConnector::from(client_config()?)
            .connect(name, tcp)
            .await
            .map_err(|e| format!("TLS with {host}: {e}"))?;
        send(stream, request, limit).await
    } else {
        send(tcp, request, limit).await
    }
}

async fn send<S>(stream: S, request: Request<Empty<Bytes>>, limit: usize) -> Result<Vec<u8>, String>
where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let (mut sender, connection) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
        .await
        .map_err(|e| e.to_string())?;
    let connection = tokio::spawn(connection);
    let response = sender
        .send_request(request)
        .await
        .map_err(|e| e.to_string());
    let body = match response {
        Ok(response) if response.status().is_success() => Limited::new(response.into_body(), limit)
            .collect()
            .await
            .map(|b| b.to_bytes().to_vec())
            .map_err(|e| format!("reading the answer: {e}")),
        Ok(response) => Err(format!("answered {}", response.status())),
        Err(e) => Err(e),
    };
    connection.abort();
    body
}

fn client_config() -> Result<Arc<ClientConfig>, String> {
    let mut roots = RootCertStore::empty();
    roots.add_parsable_certificates(rustls_native_certs::load_native_certs().certs);
    if roots.is_empty() {
        return Err("the system trust store is empty".into());
    }
    let config =
        ClientConfig::builder_with_provider(Arc::new(rustls::crypto::ring::default_provider()))
            .with_safe_default_protocol_versions()
            .map_err(|e| format!("TLS setup: {e}"))?
            .with_root_certificates(roots)
            .with_no_client_auth();
    Ok(Arc::new(config))
}

#[cfg(test)]
mod tests {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    use super::*;

    /// A one-shot HTTP server answering `status` with `body`.
    async fn serve_once(status: &'static str, body: &'static str) -> String {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let address = listener.local_addr().expect("address");
        tokio::spawn(async move {
            if let Ok((mut socket, _)) = listener.accept().await {
                let mut request = vec![0u8; 4096];
                let _ = socket.read(&mut request).await;
                let answer = format!(
                    "HTTP/1.1 {status}\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
                    body.len()
                );
                let _ = socket.write_all(answer.as_bytes()).await;
            }
        });
        format!("http://{address}/keys")
    }

    #[tokio::test]
    async fn gets_a_document_over_plain_http() {
        let url = serve_once("200 OK", r#"{"keys": []}"#).await;
        assert_eq!(
            get(&url, 1024).await.as_deref(),
            Ok(&br#"{"keys": []}"#[..])
        );
    }

    #[tokio::test]
    async fn non_success_status_and_oversized_bodies_are_errors() {
        let url = serve_once("404 Not Found", "{}").await;
        assert!(get(&url, 1024).await.is_err_and(|e| e.contains("404")));
        let url = serve_once("200 OK", r#"{"keys": ["a lot of text"]}"#).await;
        assert!(get(&url, 4).await.is_err());
        assert!(get("ftp://example.com/x", 10).await.is_err());
    }
}
