//! HTTP(S) delivery, Splunk HEC compatible: POSTs of newline-separated JSON objects, gzip
//! optional, with a minimal HTTP/1.1 client over a kept-alive connection. Only a 2xx answer
//! counts as delivered; anything else is retried. A 413 halves the request size.
//!
//! A HEC line: `{"time":<epoch s.ms>,"host":…,"source":"backtrack",
//! "sourcetype":"backtrack:audit","event":<rendered record>}`.

use std::io::{self, Write as _};
use std::time::Duration;

use backtrack_proto::v1::AuditRecord;
use flate2::write::GzEncoder;
use flate2::Compression;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use super::batch::Batch;
use super::tls::{split_host_port, Connection, Dialer};
use super::{SinkConfig, SinkKind};
use crate::format::{render, Format};

/// Longest response head accepted.
const MAX_HEAD: usize = 64 * 1024;
/// How much of an error body is quoted in the log.
const SNIPPET: usize = 300;

/// A parsed `http://` or `https://` URL.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Endpoint {
    pub https: bool,
    pub host: String,
    pub port: u16,
    /// Path and query, at least `/`.
    pub target: String,
    /// The `Host` header value.
    pub authority: String,
}

impl Endpoint {
    pub fn parse(url: &str) -> Result<Self, String> {
        let (https, rest) = if let Some(rest) = url.strip_prefix("https://") {
            (true, rest)
        } else if let Some(rest) = url.strip_prefix("http://") {
            (false, rest)
        } else {
            return Err(format!("'{url}' must start with http:// or https://"));
        };
        let (authority, target) = match rest.find('/') {
            Some(i) => (&rest[..i], &rest[i..]),
            None => (rest, "/"),
        };
        if authority.contains('@') {
            return Err("must not carry credentials; use the token field".into());
        }
        let has_port = match authority.rfind(':') {
            Some(i) => !authority[i..].contains(']'),
            None => false,
        };
        let with_port = if has_port {
            authority.to_string()
        } else {
            format!("{authority}:{}", if https { 443 } else { 80 })
        };
        let (host, port) = split_host_port(&with_port).map_err(|e| format!("'{url}': {e}"))?;
        if target.chars().any(|c| c.is_whitespace() || c.is_control()) {
            return Err(format!(
                "'{url}' has spaces or control characters in its path"
            ));
        }
        Ok(Self {
            https,
            host,
            port,
            target: target.to_string(),
            authority: authority.to_string(),
        })
    }
}

/// Appends `s` as a JSON string literal.
fn push_json_string(out: &mut Vec<u8>, s: &str) {
    // Writing into a Vec cannot fail.
    let _ = serde_json::to_writer(&mut *out, s);
}

/// Delivers batches as HTTP POSTs.
pub(crate) struct HttpSink {
    endpoint: Endpoint,
    dialer: Dialer,
    connection: Option<Connection>,
    authorization: Option<String>,
    gzip: bool,
    max_records: usize,
    max_bytes: usize,
    format: Format,
    /// `None`: plain JSON lines; else the HEC envelope's constant part before `"event":`.
    envelope: Option<String>,
    timeout: Duration,
}

impl HttpSink {
    pub(crate) fn new(config: &SinkConfig) -> Result<Self, String> {
        let SinkKind::Http {
            url,
            token,
            auth_scheme,
            gzip,
            max_batch_records,
            max_batch_bytes,
            tls,
            hec,
            index,
            source,
            sourcetype,
            hostname,
            ..
        } = &config.kind
        else {
            return Err("not an http sink".into());
        };
        let endpoint = Endpoint::parse(url)?;
        let tls = match (endpoint.https, tls) {
            (true, None) => Some(super::TlsConfig::default()),
            (_, tls) => tls.clone(),
        };
        let dialer = Dialer::new(
            endpoint.host.clone(),
            endpoint.port,
            tls.as_ref(),
            config.io_timeout(),
        )?;
        let envelope = hec.then(|| {
            let host = hostname
                .clone()
                .or_else(super::local_hostname)
                .unwrap_or_else(|| "backtrack".into());
            let mut e = Vec::new();
            e.extend_from_slice(b",\"host\":");
            push_json_string(&mut e, &host);
            e.extend_from_slice(b",\"source\":");
            push_json_string(&mut e, source);
            e.extend_from_slice(b",\"sourcetype\":");
            push_json_string(&mut e, sourcetype);
            if let Some(index) = index {
                e.extend_from_slice(b",\"index\":");
                push_json_string(&mut e, index);
            }
            String::from_utf8_lossy(&e).into_owned()
        });
        Ok(Self {
            endpoint,
            dialer,
            connection: None,
            authorization: token.as_ref().map(|t| format!("{auth_scheme} {t}")),
            gzip: *gzip,
            max_records: *max_batch_records,
            max_bytes: *max_batch_bytes,
            format: config.format,
            envelope,
            timeout: config.io_timeout(),
        })
    }

    pub(crate) fn describe(&self) -> String {
        format!(
            "{}://{}{}",
            if self.endpoint.https { "https" } else { "http" },
            self.endpoint.authority,
            self.endpoint.target
        )
    }

    /// Appends one line: the HEC envelope around the rendering, or the rendering alone.
    pub(crate) fn encode(&self, record: &AuditRecord, out: &mut Vec<u8>) {
        let rendered = render(record, self.format);
        match &self.envelope {
            Some(constant) => {
                let ms = record.time_ms.max(0);
                out.extend_from_slice(b"{\"time\":");
                let _ = write!(out, "{}.{:03}", ms / 1000, ms % 1000);
                out.extend_from_slice(constant.as_bytes());
                out.extend_from_slice(b",\"event\":");
                if self.format.is_json() {
                    out.extend_from_slice(rendered.as_bytes());
                } else {
                    push_json_string(out, &rendered);
                }
                out.push(b'}');
            }
            None if self.format.is_json() => out.extend_from_slice(rendered.as_bytes()),
            None => push_json_string(out, &rendered),
        }
        out.push(b'\n');
    }

    /// POSTs the records the receiver does not have yet, in requests of at most
    /// `max_batch_records` records and `max_batch_bytes` bytes, advancing the batch after
    /// each 2xx.
    pub(crate) async fn deliver(&mut self, batch: &mut Batch) -> io::Result<()> {
        while !batch.fully_accepted() {
            let first = batch.accepted();
            let start = batch.range(first).start;
            let mut last = first;
            while last + 1 < batch.len()
                && last + 1 - first < self.max_records
                && batch.range(last + 1).end - start <= self.max_bytes
            {
                last += 1;
            }
            let raw = &batch.bytes()[start..batch.range(last).end];
            let body = if self.gzip { gzip(raw)? } else { raw.to_vec() };
            let (status, detail) = self.post(&body).await?;
            match status {
                200..=299 => batch.accept_up_to(last + 1),
                413 if last > first => {
                    let count = last - first + 1;
                    self.max_bytes = (raw.len() / 2).max(1);
                    self.max_records = (count / 2).max(1);
                    return Err(io::Error::other(format!(
                        "413 Payload Too Large for {count} records; sending at most {} from now on",
                        self.max_records
                    )));
                }
                _ => {
                    return Err(io::Error::other(format!(
                        "HTTP {status} from the receiver: {detail}"
                    )))
                }
            }
        }
        Ok(())
    }

    /// One request/response; retries once on a fresh connection when a kept-alive one turns
    /// out to be closed.
    async fn post(&mut self, body: &[u8]) -> io::Result<(u16, String)> {
        let mut request = format!(
            "POST {} HTTP/1.1\r\nHost: {}\r\nUser-Agent: backtrack-audit/{}\r\nContent-Type: {}\r\nContent-Length: {}\r\n",
            self.endpoint.target,
            self.endpoint.authority,
            crate::format::PRODUCT_VERSION,
            if self.envelope.is_some() { "application/json" } else { "application/x-ndjson" },
            body.len(),
        );
        if self.gzip {
            request.push_str("Content-Encoding: gzip\r\n");
        }
        if let Some(auth) = &self.authorization {
            request.push_str("Authorization: ");
            request.push_str(auth);
            request.push_str("\r\n");
        }
        request.push_str("\r\n");
        let mut message = request.into_bytes();
        message.extend_from_slice(body);
        loop {
            let reused = self.connection.is_some();
            if !reused {
                self.connection = Some(self.dialer.connect().await?);
            }
            let Some(connection) = self.connection.as_mut() else {
                return Err(io::Error::other("no connection"));
            };
            let outcome = tokio::time::timeout(self.timeout, exchange(connection, &message)).await;
            match outcome {
                Ok(Ok(response)) => {
                    if !response.keep_alive {
                        self.connection = None;
                    }
                    return Ok((response.status, response.detail));
                }
                Ok(Err(e)) => {
                    self.connection = None;
                    if !reused {
                        return Err(e);
                    }
                }
                Err(_) => {
                    self.connection = None;
                    return Err(io::Error::new(
                        io::ErrorKind::TimedOut,
                        "the receiver did not answer in time",
                    ));
                }
            }
        }
    }

    pub(crate) fn disconnect(&mut self) {
        self.connection = None;
    }
}

fn gzip(raw: &[u8]) -> io::Result<Vec<u8>> {
    let mut encoder = GzEncoder::new(Vec::with_capacity(raw.len() / 4), Compression::fast());
    encoder.write_all(raw)?;
    encoder.finish()
}

struct Response {
    status: u16,
    keep_alive: bool,
    /// The start of the body, for error messages.
    detail: String,
}

/// Writes the request and reads the whole response.
async fn exchange(connection: &mut Connection, message: &[u8]) -> io::Result<Response> {
    connection.write_all(message).await?;
    connection.flush().await?;
    let mut buf = Vec::with_capacity(1024);
    loop {
        let (status, keep_alive, framing, head_len) = loop {
            let mut headers = [httparse::EMPTY_HEADER; 64];
            let mut response = httparse::Response::new(&mut headers);
            match response.parse(&buf) {
                Ok(httparse::Status::Complete(len)) => {
                    let status = response.code.unwrap_or(0);
                    let mut keep_alive = response.version == Some(1);
                    let (mut length, mut chunked) = (None, false);
                    for h in response.headers.iter() {
                        let value = String::from_utf8_lossy(h.value).to_ascii_lowercase();
                        if h.name.eq_ignore_ascii_case("content-length") {
                            length = Some(value.trim().parse().map_err(|_| {
                                io::Error::new(io::ErrorKind::InvalidData, "bad Content-Length")
                            })?);
                        } else if h.name.eq_ignore_ascii_case("transfer-encoding") {
                            chunked = value.contains("chunked");
                        } else if h.name.eq_ignore_ascii_case("connection") {
                            keep_alive = !value.contains("close");
                        }
                    }
                    // Transfer-Encoding wins over Content-Length (RFC 9112 §6.3).
                    let mut framing = match (chunked, length) {
                        (true, _) => Framing::Chunked,
                        (false, Some(n)) => Framing::Length(n),
                        (false, None) => Framing::UntilClose,
                    };
                    if (100..200).contains(&status) || status == 204 || status == 304 {
                        framing = Framing::Length(0);
                    }
                    break (status, keep_alive, framing, len);
                }
                Ok(httparse::Status::Partial) => {
                    if buf.len() > MAX_HEAD {
                        return Err(io::Error::new(
                            io::ErrorKind::InvalidData,
                            "response head too long",
                        ));
                    }
                    fill(connection, &mut buf).await?;
                }
                Err(e) => {
                    return Err(io::Error::new(
                        io::ErrorKind::InvalidData,
                        format!("not an HTTP response: {e}"),
                    ))
                }
            }
        };
        buf.drain(..head_len);
        let mut body = Body {
            buf,
            kept: Vec::new(),
        };
        let keep_alive = match framing {
            Framing::Length(n) => {
                body.take(connection, n).await?;
                keep_alive
            }
            Framing::Chunked => {
                body.chunked(connection).await?;
                keep_alive
            }
            Framing::UntilClose => {
                body.until_close(connection).await?;
                false
            }
        };
        if (100..200).contains(&status) {
            // An interim answer: the real one follows.
            buf = body.buf;
            continue;
        }
        return Ok(Response {
            status,
            keep_alive,
            detail: String::from_utf8_lossy(&body.kept).trim().to_string(),
        });
    }
}

enum Framing {
    Length(usize),
    Chunked,
    UntilClose,
}

async fn fill(connection: &mut Connection, buf: &mut Vec<u8>) -> io::Result<()> {
    let mut chunk = [0u8; 8192];
    let n = connection.read(&mut chunk).await?;
    if n == 0 {
        return Err(io::Error::new(
            io::ErrorKind::UnexpectedEof,
            "the receiver closed the connection before answering",
        ));
    }
    buf.extend_from_slice(&chunk[..n]);
    Ok(())
}

/// Reads a response body, keeping only its first bytes.
struct Body {
    buf: Vec<u8>,
    kept: Vec<u8>,
}

impl Body {
    fn keep(&mut self, n: usize) {
        let room = SNIPPET.saturating_sub(self.kept.len()).min(n);
        self.kept.extend_from_slice(&self.buf[..room]);
        self.buf.drain(..n);
    }

    async fn take(&mut self, connection: &mut Connection, mut n: usize) -> io::Result<()> {
        while n > 0 {
            if self.buf.is_empty() {
                fill(connection, &mut self.buf).await?;
            }
            let step = n.min(self.buf.len());
            self.keep(step);
            n -= step;
        }
        Ok(())
    }

    async fn line(&mut self, connection: &mut Connection) -> io::Result<String> {
        loop {
            if let Some(i) = self.buf.windows(2).position(|w| w == b"\r\n") {
                let line = String::from_utf8_lossy(&self.buf[..i]).into_owned();
                self.buf.drain(..i + 2);
                return Ok(line);
            }
            if self.buf.len() > MAX_HEAD {
                return Err(io::Error::new(
                    io::ErrorKind::InvalidData,
                    "chunk line too long",
                ));
            }
            fill(connection, &mut self.buf).await?;
        }
    }

    async fn chunked(&mut self, connection: &mut Connection) -> io::Result<()> {
        loop {
            let line = self.line(connection).await?;
            let size = line.split(';').next().unwrap_or_default().trim();
            let size = usize::from_str_radix(size, 16)
                .map_err(|_| io::Error::new(io::ErrorKind::InvalidData, "bad chunk size"))?;
            if size == 0 {
                // Trailers end with an empty line.
                while !self.line(connection).await?.is_empty() {}
                return Ok(());
            }
            self.take(connection, size).await?;
            self.line(connection).await?;
        }
    }

    async fn until_close(&mut self, connection: &mut Connection) -> io::Result<()> {
        loop {
            let n = self.buf.len();
            self.keep(n);
            match fill(connection, &mut self.buf).await {
                Ok(()) => {}
                Err(e) if e.kind() == io::ErrorKind::UnexpectedEof => return Ok(()),
                Err(e) => return Err(e),
            }
        }
    }
}
