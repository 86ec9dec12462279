//! Receivers on 127.0.0.1 that stand in for a SIEM: a syslog receiver that reads
//! octet-counted RFC 5424 frames over TCP or TLS and can go down and come back, a
//! self-signed certificate for it, and an HTTP/1.1 server that gunzips HEC batches and can
//! answer 503.

use std::io::Read as _;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde_json::Value;
use tokio::io::{
    AsyncBufRead, AsyncBufReadExt, AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt,
};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;
use tokio_rustls::rustls;
use tokio_rustls::TlsAcceptor;

use super::parse::parse_cef;
use super::Seen;

/// A syslog receiver on a fixed port: octet-counted frames over TCP or TLS. It can go down
/// (stop accepting, close its side of every connection, still read what is on the way) and
/// come back.
pub struct SyslogReceiver {
    port: u16,
    tls: Option<TlsAcceptor>,
    frames: Mutex<Vec<String>>,
    pub seen: Seen,
    up: watch::Sender<bool>,
    /// Goes down by itself after this many frames (once).
    down_after: Option<usize>,
}

impl SyslogReceiver {
    pub fn new(port: u16, tls: Option<TlsAcceptor>, down_after: Option<usize>) -> Arc<Self> {
        Arc::new(Self {
            port,
            tls,
            frames: Mutex::new(Vec::new()),
            seen: Seen::default(),
            up: watch::channel(false).0,
            down_after,
        })
    }

    pub async fn start(self: &Arc<Self>) -> anyhow::Result<()> {
        let listener = TcpListener::bind(("127.0.0.1", self.port)).await?;
        self.up.send_replace(true);
        let me = self.clone();
        tokio::spawn(async move {
            let mut state = me.up.subscribe();
            loop {
                tokio::select! {
                    accepted = listener.accept() => {
                        let Ok((tcp, _)) = accepted else { break };
                        tokio::spawn(me.clone().serve(tcp));
                    }
                    _ = state.wait_for(|up| !*up) => break,
                }
            }
        });
        Ok(())
    }

    pub fn stop(&self) {
        self.up.send_replace(false);
    }

    async fn serve(self: Arc<Self>, tcp: TcpStream) {
        match self.tls.clone() {
            None => self.read_frames(tcp).await,
            Some(acceptor) => {
                if let Ok(stream) = acceptor.accept(tcp).await {
                    self.read_frames(stream).await;
                }
            }
        }
    }

    async fn read_frames<S: AsyncRead + AsyncWrite + Unpin>(&self, stream: S) {
        let (reader, mut writer) = tokio::io::split(stream);
        let mut reader = tokio::io::BufReader::new(reader);
        let mut state = self.up.subscribe();
        let close = async {
            let _ = state.wait_for(|up| !*up).await;
            let _ = writer.shutdown().await;
            std::future::pending::<()>().await;
        };
        tokio::pin!(close);
        loop {
            tokio::select! {
                frame = read_frame(&mut reader) => match frame {
                    Ok(Some(frame)) => self.record(frame),
                    _ => return,
                },
                () = &mut close => {}
            }
        }
    }

    fn record(&self, frame: String) {
        // Only the id here; every frame is parsed in full once the test has them all.
        let id = frame.find(" id=\"").and_then(|start| {
            let rest = &frame[start + 5..];
            rest.find('"').map(|end| &rest[..end])
        });
        if let Some(id) = id {
            self.seen.add(id);
        }
        let mut frames = self.frames.lock().unwrap();
        frames.push(frame);
        if Some(frames.len()) == self.down_after {
            self.stop();
        }
    }

    pub fn frames(&self) -> Vec<String> {
        self.frames.lock().unwrap().clone()
    }
}

async fn read_frame<R: AsyncBufRead + Unpin>(reader: &mut R) -> std::io::Result<Option<String>> {
    let mut length = Vec::new();
    if reader.read_until(b' ', &mut length).await? == 0 {
        return Ok(None);
    }
    let length: usize = std::str::from_utf8(&length[..length.len() - 1])
        .ok()
        .and_then(|s| s.parse().ok())
        .ok_or_else(|| std::io::Error::other(format!("bad MSG-LEN {length:?}")))?;
    let mut message = vec![0; length];
    reader.read_exact(&mut message).await?;
    String::from_utf8(message)
        .map(Some)
        .map_err(std::io::Error::other)
}

/// A self-signed certificate for localhost / 127.0.0.1: the acceptor and the PEM to trust.
pub fn self_signed() -> (TlsAcceptor, String) {
    let rcgen::CertifiedKey { cert, key_pair } =
        rcgen::generate_simple_self_signed(vec!["localhost".into(), "127.0.0.1".into()]).unwrap();
    let key = rustls::pki_types::PrivateKeyDer::Pkcs8(key_pair.serialize_der().into());
    let config = rustls::ServerConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .unwrap()
    .with_no_client_auth()
    .with_single_cert(vec![cert.der().clone()], key)
    .unwrap();
    (TlsAcceptor::from(Arc::new(config)), cert.pem())
}

/// An HTTP/1.1 server taking HEC batches: gunzips, counts events, answers 503 when told.
#[derive(Default)]
pub struct HttpReceiver {
    pub seen: Seen,
    pub accepted_requests: AtomicU64,
    pub rejected_requests: AtomicU64,
    /// Answer 503 to this many requests from now on.
    pub reject_next: AtomicU64,
    /// After this many events: set `reject_next` to `reject_later`.
    pub reject_after_events: Option<usize>,
    pub reject_later: u64,
    pub tripped: AtomicBool,
    /// How long each accepted request takes (a slow SIEM).
    pub delay: Duration,
    pub problems: Mutex<Vec<String>>,
}

impl HttpReceiver {
    pub async fn start(self: &Arc<Self>, port: u16) -> anyhow::Result<()> {
        let listener = TcpListener::bind(("127.0.0.1", port)).await?;
        let me = self.clone();
        tokio::spawn(async move {
            while let Ok((tcp, _)) = listener.accept().await {
                tokio::spawn(me.clone().serve(tcp));
            }
        });
        Ok(())
    }

    async fn serve(self: Arc<Self>, tcp: TcpStream) {
        let mut stream = tokio::io::BufReader::new(tcp);
        loop {
            let mut head = Vec::new();
            loop {
                let before = head.len();
                if stream.read_until(b'\n', &mut head).await.unwrap_or(0) == 0 {
                    return;
                }
                if head[before..] == *b"\r\n" {
                    break;
                }
            }
            let mut headers = [httparse::EMPTY_HEADER; 32];
            let mut request = httparse::Request::new(&mut headers);
            if request.parse(&head).is_err() {
                return;
            }
            let header = |name: &str| {
                request
                    .headers
                    .iter()
                    .find(|h| h.name.eq_ignore_ascii_case(name))
                    .map(|h| String::from_utf8_lossy(h.value).into_owned())
            };
            let length: usize = header("content-length")
                .and_then(|v| v.parse().ok())
                .unwrap_or(0);
            let gzip = header("content-encoding").as_deref() == Some("gzip");
            let auth = header("authorization");
            let mut body = vec![0; length];
            if stream.read_exact(&mut body).await.is_err() {
                return;
            }
            let reject = self
                .reject_next
                .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| n.checked_sub(1))
                .is_ok();
            let response = if reject {
                self.rejected_requests.fetch_add(1, Ordering::SeqCst);
                // Chunked, to exercise the client's chunked decoding.
                "HTTP/1.1 503 Service Unavailable\r\nTransfer-Encoding: chunked\r\n\r\n9\r\nbusy, try\r\n6\r\n later\r\n0\r\n\r\n".to_string()
            } else {
                if !self.delay.is_zero() {
                    tokio::time::sleep(self.delay).await;
                }
                self.take(&body, gzip, auth.as_deref());
                self.accepted_requests.fetch_add(1, Ordering::SeqCst);
                let answer = r#"{"text":"Success","code":0}"#;
                format!(
                    "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n{answer}",
                    answer.len()
                )
            };
            if stream
                .get_mut()
                .write_all(response.as_bytes())
                .await
                .is_err()
            {
                return;
            }
        }
    }

    fn take(&self, body: &[u8], gzip: bool, auth: Option<&str>) {
        let mut text = String::new();
        let decoded = if gzip {
            flate2::read::GzDecoder::new(body).read_to_string(&mut text)
        } else {
            std::str::from_utf8(body)
                .map(|s| text.push_str(s))
                .map(|()| text.len())
                .map_err(std::io::Error::other)
        };
        let mut problems = Vec::new();
        if let Err(e) = decoded {
            problems.push(format!("body does not decode: {e}"));
        }
        if auth != Some("Splunk test-token") {
            problems.push(format!("Authorization header {auth:?}"));
        }
        for line in text.lines() {
            match serde_json::from_str::<Value>(line) {
                Ok(event) => {
                    if event["sourcetype"] != "backtrack:audit" || !event["time"].is_number() {
                        problems.push(format!("HEC envelope {line}"));
                    }
                    let id = match &event["event"] {
                        Value::String(cef_text) => parse_cef(cef_text)
                            .ok()
                            .and_then(|(_, ext)| ext.get("externalId").cloned()),
                        e if e["metadata"]["uid"].is_string() => {
                            e["metadata"]["uid"].as_str().map(str::to_string)
                        }
                        e => e["id"].as_str().map(str::to_string),
                    };
                    match id {
                        Some(id) => self.seen.add(&id),
                        None => problems.push(format!("event without id: {line}")),
                    }
                }
                Err(e) => problems.push(format!("line is not JSON ({e}): {line}")),
            }
        }
        if let Some(limit) = self.reject_after_events {
            if self.seen.distinct() >= limit && !self.tripped.swap(true, Ordering::SeqCst) {
                self.reject_next.store(self.reject_later, Ordering::SeqCst);
            }
        }
        self.problems.lock().unwrap().extend(problems);
    }
}
