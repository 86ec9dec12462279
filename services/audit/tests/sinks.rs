//! SIEM sinks against a real nats-server and real receivers on 127.0.0.1 written here: a
//! syslog receiver that parses octet-counted RFC 5424 frames (plain and TLS), an HTTP/1.1
//! server that gunzips HEC batches and can answer 503, and the rotating file itself.
//! Every test checks that each published record id arrives; the ones without failures check
//! that it arrives exactly once. Plus the formats: escaping, OCSF classes, a native JSON round
//! trip, and config errors.
#![allow(clippy::unwrap_used)]

use std::collections::{HashMap, HashSet};
use std::io::Read as _;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::Context as _;
use async_nats::jetstream;
use backtrack_audit::format::{self, cef, native_json, ocsf, render, Format};
use backtrack_audit::sinks::{self, syslog, SinkConfig, SinkStats};
use backtrack_eventlog::audit::new_record;
use backtrack_eventlog::AuditLog;
use backtrack_platform::shutdown::{Shutdown, ShutdownTrigger};
use backtrack_proto::v1::{AuditActor, AuditCorrelation, AuditRecord, AuditResult, AuditTarget};
use backtrack_test_support::{eventually, free_port, NatsServer};
use serde_json::{json, Value};
use tokio::io::{
    AsyncBufRead, AsyncBufReadExt, AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt,
};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;
use tokio::task::JoinHandle;
use tokio_rustls::rustls;
use tokio_rustls::TlsAcceptor;

const DEADLINE: Duration = Duration::from_secs(90);

// ---------------------------------------------------------------------------------------
// Records, NATS and sinks

/// Varied records: three tenants (one with characters syslog and CEF must escape), four
/// categories, failures with multi-line reasons, object changes, IPv4 and IPv6 sources.
fn sample_records(n: usize) -> Vec<AuditRecord> {
    let tenants = ["acme", "globex", r#"we"ird]\ten"#];
    let kinds = [
        ("recovery", "recovery.started"),
        ("backup", "backup.created"),
        ("directory", "directory.userUpdated"),
        ("security", "security.permissionDenied"),
    ];
    (0..n)
        .map(|i| {
            let (category, action) = kinds[i % kinds.len()];
            let mut r = new_record(tenants[i % tenants.len()], category, action);
            r.actor = Some(AuditActor {
                subject: if i % 7 == 0 {
                    "evil|user=x\\y\n]\"".into()
                } else {
                    format!("user{i}@example.com")
                },
                roles: vec!["admin".into(), "operator".into()],
                source_address: if i % 2 == 0 {
                    "10.0.0.7".into()
                } else {
                    "[::1]:4711".into()
                },
            });
            r.target = Some(AuditTarget {
                kind: "user".into(),
                id: format!("obj-{i}"),
                display_name: "Jane \"JD\" Doe = admin | ops".into(),
            });
            r.result = Some(AuditResult {
                success: i % 5 != 0,
                reason: if i % 5 == 0 {
                    "denied:\nline two = bad | pipe \\ slash".into()
                } else {
                    String::new()
                },
            });
            r.correlation = Some(AuditCorrelation {
                job_id: format!("job-{}", i / 100),
                report_id: "report-1".into(),
                backup_id: String::new(),
            });
            if i % 4 == 2 {
                r.before_json = r#"{"displayName":"old"}"#.into();
                r.after_json = r#"{"displayName":"new"}"#.into();
            }
            r.details_json = format!(r#"{{"n":{i}}}"#);
            r
        })
        .collect()
}

fn ids(records: &[AuditRecord]) -> HashSet<String> {
    records.iter().map(|r| r.id.clone()).collect()
}

struct Nats {
    _server: NatsServer,
    js: jetstream::Context,
    log: AuditLog,
}

async fn nats() -> anyhow::Result<Nats> {
    let server = NatsServer::start().await?;
    let client = server.client().await?;
    let log = AuditLog::open(client.clone(), 1).await?;
    Ok(Nats {
        _server: server,
        js: jetstream::new(client),
        log,
    })
}

/// A sink config from its JSON form, as the config file would have it.
fn config(value: Value) -> SinkConfig {
    let sink: SinkConfig = serde_json::from_value(value).unwrap();
    sink.validate().unwrap();
    sink
}

struct RunningSink {
    stats: Arc<SinkStats>,
    trigger: ShutdownTrigger,
    task: JoinHandle<()>,
}

fn start_sink(js: &jetstream::Context, sink: SinkConfig) -> RunningSink {
    let (trigger, shutdown) = Shutdown::new();
    let stats = Arc::new(SinkStats::default());
    let task = tokio::spawn(sinks::run(js.clone(), sink, stats.clone(), shutdown));
    RunningSink {
        stats,
        trigger,
        task,
    }
}

impl RunningSink {
    async fn stop(self) -> anyhow::Result<Arc<SinkStats>> {
        self.trigger.trigger();
        tokio::time::timeout(Duration::from_secs(30), self.task)
            .await
            .context("the sink did not stop within 30 s")??;
        Ok(self.stats)
    }
}

/// Record ids received, with how often.
#[derive(Clone, Default)]
struct Seen(Arc<Mutex<HashMap<String, u32>>>);

impl Seen {
    fn add(&self, id: &str) {
        *self.0.lock().unwrap().entry(id.to_string()).or_default() += 1;
    }

    fn missing(&self, expected: &HashSet<String>) -> usize {
        let seen = self.0.lock().unwrap();
        expected.iter().filter(|id| !seen.contains_key(*id)).count()
    }

    fn distinct(&self) -> usize {
        self.0.lock().unwrap().len()
    }

    fn duplicates(&self) -> u32 {
        self.0.lock().unwrap().values().map(|n| n - 1).sum()
    }

    fn unexpected(&self, expected: &HashSet<String>) -> usize {
        let seen = self.0.lock().unwrap();
        seen.keys().filter(|id| !expected.contains(*id)).count()
    }

    async fn wait_for_all(&self, expected: &HashSet<String>, what: &str) -> anyhow::Result<()> {
        eventually(
            &format!("all {} records at the {what}", expected.len()),
            DEADLINE,
            || async { (self.missing(expected) == 0).then_some(()) },
        )
        .await
    }

    async fn wait_for_at_least(&self, n: usize, what: &str) -> anyhow::Result<()> {
        eventually(&format!("{n} records at the {what}"), DEADLINE, || async {
            (self.distinct() >= n).then_some(())
        })
        .await
    }
}

// ---------------------------------------------------------------------------------------
// Parsers of what the receivers get (independent of the code under test)

/// An RFC 5424 message: PRI, the header fields, the SD params of the one element, MSG.
#[derive(Debug)]
struct SyslogMessage {
    pri: u16,
    header: Vec<String>,
    sd_id: String,
    sd: HashMap<String, String>,
    msg: String,
}

fn parse_syslog(frame: &str) -> Result<SyslogMessage, String> {
    let rest = frame.strip_prefix('<').ok_or("no PRI")?;
    let (pri, rest) = rest.split_once('>').ok_or("no PRI end")?;
    let pri: u16 = pri.parse().map_err(|_| "bad PRI")?;
    let mut parts = rest.splitn(7, ' ');
    let header: Vec<String> = (0..6)
        .map(|_| parts.next().map(str::to_string).ok_or("short header"))
        .collect::<Result<_, _>>()?;
    let rest = parts.next().ok_or("no structured data")?;
    let mut chars = rest.chars();
    if chars.next() != Some('[') {
        return Err("no SD element".into());
    }
    let mut sd_id = String::new();
    let mut sd = HashMap::new();
    let mut c = chars.next();
    while let Some(ch) = c {
        if ch == ' ' || ch == ']' {
            break;
        }
        sd_id.push(ch);
        c = chars.next();
    }
    while c == Some(' ') {
        let mut name = String::new();
        loop {
            match chars.next() {
                Some('=') => break,
                Some(ch) => name.push(ch),
                None => return Err("unterminated SD param name".into()),
            }
        }
        if chars.next() != Some('"') {
            return Err("SD param value not quoted".into());
        }
        let mut value = String::new();
        loop {
            match chars.next() {
                Some('\\') => value.push(chars.next().ok_or("dangling escape")?),
                Some('"') => break,
                Some(']') => return Err("unescaped ] in SD param".into()),
                Some(ch) => value.push(ch),
                None => return Err("unterminated SD param value".into()),
            }
        }
        sd.insert(name, value);
        c = chars.next();
    }
    if c != Some(']') {
        return Err("SD element not closed".into());
    }
    let msg: String = chars.collect();
    let msg = msg.strip_prefix(' ').ok_or("no MSG")?.to_string();
    Ok(SyslogMessage {
        pri,
        header,
        sd_id,
        sd,
        msg,
    })
}

/// A CEF line: the seven header fields (unescaped) and the extensions (unescaped).
fn parse_cef(line: &str) -> Result<(Vec<String>, HashMap<String, String>), String> {
    let mut header = Vec::new();
    let mut field = String::new();
    let mut chars = line.chars();
    while header.len() < 7 {
        match chars.next() {
            Some('\\') => field.push(chars.next().ok_or("dangling escape")?),
            Some('|') => header.push(std::mem::take(&mut field)),
            Some(ch) => field.push(ch),
            None => return Err(format!("CEF header has {} fields", header.len())),
        }
    }
    let mut extensions = HashMap::new();
    let mut key: Option<String> = None;
    let mut text = String::new();
    while let Some(ch) = chars.next() {
        match ch {
            '\\' => match chars.next() {
                Some('n') => text.push('\n'),
                Some('r') => text.push('\r'),
                Some(other) => text.push(other),
                None => return Err("dangling escape".into()),
            },
            '=' => {
                let (value, next) = match text.rfind(' ') {
                    Some(i) => (text[..i].to_string(), text[i + 1..].to_string()),
                    None => (String::new(), text.clone()),
                };
                if let Some(k) = key.take() {
                    extensions.insert(k, value);
                }
                key = Some(next);
                text.clear();
            }
            '\n' | '\r' => return Err("raw line break in CEF".into()),
            ch => text.push(ch),
        }
    }
    if let Some(k) = key {
        extensions.insert(k, text);
    }
    Ok((header, extensions))
}

/// Checks one received syslog frame against the record it names; returns the record id.
fn check_syslog_frame(
    frame: &str,
    format: Format,
    records: &HashMap<String, AuditRecord>,
) -> Result<String, String> {
    let m = parse_syslog(frame)?;
    let id = m.sd.get("id").ok_or("no id SD param")?.clone();
    let record = records.get(&id).ok_or("unknown id")?;
    let failure = record.result.as_ref().is_some_and(|r| !r.success);
    let expected_pri = 4 * 8 + if failure { 4 } else { 5 };
    if m.pri != expected_pri {
        return Err(format!("PRI {} (expected {expected_pri})", m.pri));
    }
    if m.header[0] != "1" || m.header[3] != "backtrack" || m.header[5] != record.action {
        return Err(format!("header {:?}", m.header));
    }
    if m.sd_id != syslog::SD_ID || m.sd.get("tenant") != Some(&record.tenant) {
        return Err(format!("SD {} {:?}", m.sd_id, m.sd));
    }
    match format {
        Format::Cef => {
            let (header, ext) = parse_cef(&m.msg)?;
            let subject = &record.actor.as_ref().unwrap().subject;
            if header[0] != "CEF:0" || header[4] != record.action {
                return Err(format!("CEF header {header:?}"));
            }
            if ext.get("externalId") != Some(&id)
                || ext.get("cs1") != Some(&record.tenant)
                || ext.get("suser") != Some(subject)
            {
                return Err(format!("CEF extensions {ext:?}"));
            }
        }
        Format::Json | Format::Ocsf => {
            let body: Value = serde_json::from_str(&m.msg).map_err(|e| e.to_string())?;
            if body != native_json(record) && body != ocsf::ocsf_json(record) {
                return Err(format!("JSON body differs: {body}"));
            }
        }
    }
    Ok(id)
}

// ---------------------------------------------------------------------------------------
// Receivers

/// A syslog receiver on a fixed port: octet-counted frames over TCP or TLS. It can go down
/// (stop accepting, close its side of every connection, still read what is on the way) and
/// come back.
struct SyslogReceiver {
    port: u16,
    tls: Option<TlsAcceptor>,
    frames: Mutex<Vec<String>>,
    seen: Seen,
    up: watch::Sender<bool>,
    /// Goes down by itself after this many frames (once).
    down_after: Option<usize>,
}

impl SyslogReceiver {
    fn new(port: u16, tls: Option<TlsAcceptor>, down_after: Option<usize>) -> Arc<Self> {
        Arc::new(Self {
            port,
            tls,
            frames: Mutex::new(Vec::new()),
            seen: Seen::default(),
            up: watch::channel(false).0,
            down_after,
        })
    }

    async fn start(self: &Arc<Self>) -> anyhow::Result<()> {
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

    fn stop(&self) {
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

    fn frames(&self) -> Vec<String> {
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
fn self_signed() -> (TlsAcceptor, String) {
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
struct HttpReceiver {
    seen: Seen,
    accepted_requests: AtomicU64,
    rejected_requests: AtomicU64,
    /// Answer 503 to this many requests from now on.
    reject_next: AtomicU64,
    /// After this many events: set `reject_next` to `reject_later`.
    reject_after_events: Option<usize>,
    reject_later: u64,
    tripped: AtomicBool,
    /// How long each accepted request takes (a slow SIEM).
    delay: Duration,
    problems: Mutex<Vec<String>>,
}

impl HttpReceiver {
    async fn start(self: &Arc<Self>, port: u16) -> anyhow::Result<()> {
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

// ---------------------------------------------------------------------------------------
// Unit tests of the formats and the config

#[test]
fn cef_escapes_header_and_extension_values() {
    assert_eq!(cef::escape_header(r"a|b\c"), r"a\|b\\c");
    assert_eq!(cef::escape_header("two\nlines"), "two lines");
    assert_eq!(cef::escape_extension("k=v\\x|y\nz\rw"), r"k\=v\\x|y\nz\rw");
    let mut record = sample_records(1).remove(0);
    record.action = "odd|action\\name".into();
    let line = cef::cef_line(&record);
    assert!(!line.contains('\n'), "{line}");
    let (header, ext) = parse_cef(&line).unwrap();
    assert_eq!(header[4], "odd|action\\name");
    assert_eq!(header[6], "6", "a failure is CEF severity 6");
    assert_eq!(ext["suser"], "evil|user=x\\y\n]\"");
    assert_eq!(ext["reason"], "denied:\nline two = bad | pipe \\ slash");
    assert_eq!(ext["flexString1"], "Jane \"JD\" Doe = admin | ops");
    assert_eq!(ext["externalId"], record.id);
    assert_eq!(ext["rt"], record.time_ms.to_string());
    assert_eq!(ext["src"], "10.0.0.7");
    assert_eq!(ext["cs1Label"], "tenant");
    assert_eq!(ext["cs1"], "acme");
    assert_eq!(ext["cs2"], "job-0");
    assert_eq!(ext["outcome"], "failure");
    assert_eq!(ext["duid"], "obj-0");
}

#[test]
fn syslog_escapes_sd_params_and_header_fields() {
    assert_eq!(syslog::escape_sd_param(r#"a"b]c\d"#), r#"a\"b\]c\\d"#);
    assert_eq!(syslog::header_field("", 32), "-");
    assert_eq!(syslog::header_field("has space\u{e9}", 32), "has_space_");
    assert_eq!(syslog::header_field(&"x".repeat(40), 32).len(), 32);

    let mut record = sample_records(3).remove(2);
    record.id = r#"id"with]quote\s"#.into();
    record.action = "directory.anActionNameLongerThanThirtyTwo".into();
    let message = syslog::syslog_message(
        &record,
        Format::Json,
        sinks::Facility::Authpriv,
        "host name",
        "42",
    );
    let parsed = parse_syslog(&message).unwrap();
    assert_eq!(parsed.pri, 10 * 8 + 5);
    assert_eq!(parsed.header[2], "host_name");
    assert_eq!(parsed.header[4], "42");
    assert_eq!(
        parsed.header[5], "directory.anActionNameLongerThan",
        "MSGID is cut to 32"
    );
    assert_eq!(parsed.sd["id"], record.id);
    assert_eq!(parsed.sd["tenant"], r#"we"ird]\ten"#);
    assert_eq!(
        serde_json::from_str::<Value>(&parsed.msg).unwrap(),
        native_json(&record)
    );
}

/// The inverse of the native JSON, written here from the documented mapping.
fn from_native(v: &Value) -> AuditRecord {
    let s = |v: &Value| v.as_str().unwrap_or_default().to_string();
    let embedded = |v: &Value| {
        if v.is_null() {
            String::new()
        } else {
            v.to_string()
        }
    };
    let time = chrono::DateTime::parse_from_rfc3339(v["time"].as_str().unwrap())
        .unwrap()
        .timestamp_millis();
    AuditRecord {
        schema_version: u32::try_from(v["schemaVersion"].as_u64().unwrap()).unwrap(),
        id: s(&v["id"]),
        tenant: s(&v["tenant"]),
        time_ms: time,
        actor: Some(AuditActor {
            subject: s(&v["actor"]["subject"]),
            roles: v["actor"]["roles"]
                .as_array()
                .unwrap()
                .iter()
                .map(s)
                .collect(),
            source_address: s(&v["actor"]["sourceAddress"]),
        }),
        action: s(&v["action"]),
        category: s(&v["category"]),
        target: Some(AuditTarget {
            kind: s(&v["target"]["kind"]),
            id: s(&v["target"]["id"]),
            display_name: s(&v["target"]["displayName"]),
        }),
        result: Some(AuditResult {
            success: v["result"]["success"].as_bool().unwrap(),
            reason: s(&v["result"]["reason"]),
        }),
        correlation: Some(AuditCorrelation {
            job_id: s(&v["correlation"]["jobId"]),
            report_id: s(&v["correlation"]["reportId"]),
            backup_id: s(&v["correlation"]["backupId"]),
        }),
        before_json: embedded(&v["before"]),
        after_json: embedded(&v["after"]),
        details_json: embedded(&v["details"]),
    }
}

#[test]
fn native_json_has_every_field_and_round_trips() {
    let mut record = sample_records(3).remove(2);
    record.correlation.as_mut().unwrap().backup_id = "backup-9".into();
    record.actor.as_mut().unwrap().subject = "alice".into();
    record.result.as_mut().unwrap().reason = "because".into();
    let v = native_json(&record);
    for key in [
        "schemaVersion",
        "id",
        "tenant",
        "time",
        "action",
        "category",
        "actor",
        "target",
        "result",
        "correlation",
        "before",
        "after",
        "details",
    ] {
        assert!(v.get(key).is_some(), "{key} missing in {v}");
    }
    assert_eq!(v["before"], json!({"displayName": "old"}));
    assert_eq!(v["details"], json!({"n": 2}));
    assert!(v["time"].as_str().unwrap().ends_with('Z'));
    assert_eq!(from_native(&v), record);
    assert_eq!(
        serde_json::from_str::<Value>(&render(&record, Format::Json)).unwrap(),
        v
    );

    let empty = AuditRecord::default();
    let v = native_json(&empty);
    assert_eq!(v["actor"]["subject"], Value::Null);
    assert_eq!(v["result"]["success"], Value::Null);
    assert_eq!(v["before"], Value::Null);
    assert_eq!(v["time"], "1970-01-01T00:00:00.000Z");
    let mut broken = empty.clone();
    broken.details_json = "not json".into();
    assert_eq!(native_json(&broken)["details"], "not json");
}

#[test]
fn ocsf_picks_api_activity_or_entity_management() {
    let records = sample_records(4);
    let api = ocsf::ocsf_json(&records[1]);
    assert_eq!(api["class_uid"], 6003);
    assert_eq!(api["category_uid"], 6);
    assert_eq!(api["activity_id"], 1, "backup.created is a Create");
    assert_eq!(api["type_uid"], 600_301);
    assert_eq!(api["metadata"]["version"], "1.1.0");
    assert_eq!(api["metadata"]["product"]["vendor_name"], "Backtrack");
    assert_eq!(api["metadata"]["uid"], records[1].id);
    assert_eq!(api["time"], records[1].time_ms);
    assert_eq!(api["actor"]["user"]["name"], "user1@example.com");
    assert_eq!(api["src_endpoint"], json!({"ip": "::1", "port": 4711}));
    assert_eq!(api["api"]["operation"], "backup.created");
    assert_eq!(api["status_id"], 1);
    assert_eq!(api["resources"][0]["uid"], "obj-1");
    assert_eq!(api["unmapped"]["details"], json!({"n": 1}));

    let entity = ocsf::ocsf_json(&records[2]);
    assert_eq!(entity["class_uid"], 3004);
    assert_eq!(entity["category_uid"], 3);
    assert_eq!(entity["activity_id"], 3, "before and after: an Update");
    assert_eq!(entity["type_uid"], 300_403);
    assert_eq!(entity["entity"]["data"], json!({"displayName": "old"}));
    assert_eq!(
        entity["entity_result"]["data"],
        json!({"displayName": "new"})
    );

    let failure = ocsf::ocsf_json(&records[0]);
    assert_eq!(failure["status_id"], 2);
    assert_eq!(failure["severity_id"], 3);
    assert_eq!(
        failure["status_detail"],
        "denied:\nline two = bad | pipe \\ slash"
    );
    assert_eq!(ocsf::api_activity("recovery.operationApplied"), 3);
    assert_eq!(ocsf::api_activity("security.permissionDenied"), 99);
    assert_eq!(
        format::human_name("recovery.operationApplied"),
        "Recovery operation applied"
    );
}

#[test]
fn config_file_loads_and_errors_name_the_sink_and_field() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("sinks.json");
    std::fs::write(
        &path,
        r#"{"sinks": [
            {"name": "soc-syslog", "type": "syslog", "address": "siem.example:6514", "format": "cef", "facility": "authpriv"},
            {"name": "splunk", "type": "http", "url": "http://splunk:8088/services/collector/event", "token": "s3cret", "gzip": true, "format": "ocsf"},
            {"name": "archive", "type": "file", "path": "/var/log/backtrack/audit.jsonl", "max_bytes": 1048576, "keep": 5, "format": "json", "filter_subject": "bt.audit.acme.>"}
        ]}"#,
    )
    .unwrap();
    let sinks = sinks::load_config(&path).unwrap();
    assert_eq!(sinks.len(), 3);
    assert_eq!(sinks[0].consumer_name(), "bt-audit-sink-soc-syslog");
    assert_eq!(sinks[1].format, Format::Ocsf);
    assert_eq!(sinks[2].filter_subject, "bt.audit.acme.>");
    assert_eq!(sinks[0].fetch_batch, 1000);
    let debug = format!("{:?}", sinks[1]);
    assert!(
        !debug.contains("s3cret") && debug.contains("redacted"),
        "{debug}"
    );

    let error = |text: &str| sinks::parse_config(text).unwrap_err();
    let e = error(r#"{"sinks": [{"name": "a.b", "type": "file", "path": "x", "format": "json"}]}"#);
    assert!(e.contains("'a.b'") && e.contains("A-Z"), "{e}");
    let e =
        error(r#"{"sinks": [{"name": "s1", "type": "syslog", "adress": "h:1", "format": "cef"}]}"#);
    assert!(
        e.contains("sink 's1'") && e.contains("unknown field 'adress'"),
        "{e}"
    );
    let e = error(r#"{"sinks": [{"name": "s2", "type": "http", "format": "json"}]}"#);
    assert!(e.contains("sink 's2'") && e.contains("url"), "{e}");
    let e = error(r#"{"sinks": [{"name": "s3", "type": "kafka", "format": "json"}]}"#);
    assert!(e.contains("type 'kafka'"), "{e}");
    let e = error(
        r#"{"sinks": [{"name": "s4", "type": "syslog", "address": "nohost", "format": "cef"}]}"#,
    );
    assert!(e.contains("sink 's4'") && e.contains("address"), "{e}");
    let e = error(
        r#"{"sinks": [{"name": "s5", "type": "http", "url": "http://x/", "tls": {}, "format": "cef"}]}"#,
    );
    assert!(e.contains("sink 's5'") && e.contains("tls"), "{e}");
    let e = error(r#"{"sinks": [{"name": "s6", "type": "file", "path": "x", "format": "yaml"}]}"#);
    assert!(e.contains("sink 's6'") && e.contains("yaml"), "{e}");
    let e = error(
        r#"{"sinks": [{"name": "d", "type": "file", "path": "x", "format": "json"},
                      {"name": "d", "type": "file", "path": "y", "format": "json"}]}"#,
    );
    assert!(e.contains("same name"), "{e}");
    let e = error(
        r#"{"sinks": [{"name": "s7", "type": "syslog", "address": "h:1", "format": "cef", "tls": {"ca_file": "/nonexistent.pem"}}]}"#,
    );
    assert!(e.contains("sink 's7'") && e.contains("ca_file"), "{e}");
}

// ---------------------------------------------------------------------------------------
// Sinks end to end

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn syslog_sink_delivers_every_record_exactly_once() -> anyhow::Result<()> {
    let nats = nats().await?;
    let records = sample_records(10_000);
    nats.log.publish(&records).await?;
    let expected = ids(&records);
    let by_id: HashMap<_, _> = records.iter().map(|r| (r.id.clone(), r.clone())).collect();

    for (name, format) in [("syslog-cef", Format::Cef), ("syslog-json", Format::Json)] {
        let port = free_port();
        let receiver = SyslogReceiver::new(port, None, None);
        receiver.start().await?;
        let started = Instant::now();
        let sink = start_sink(
            &nats.js,
            config(json!({
                "name": name, "type": "syslog", "address": format!("127.0.0.1:{port}"),
                "format": format,
            })),
        );
        receiver.seen.wait_for_all(&expected, name).await?;
        let elapsed = started.elapsed();
        println!(
            "{name}: {} records in {elapsed:?} = {:.0} records/s to a localhost syslog receiver",
            records.len(),
            records.len() as f64 / elapsed.as_secs_f64()
        );
        eventually("the sink to ack everything", DEADLINE, || async {
            (sink.stats.delivered() == records.len() as u64 && sink.stats.backlog() == 0)
                .then_some(())
        })
        .await?;
        let stats = sink.stop().await?;
        assert_eq!(receiver.seen.duplicates(), 0);
        assert_eq!(receiver.seen.unexpected(&expected), 0);
        assert_eq!(stats.errors(), 0);
        assert!(stats.last_sequence() >= records.len() as u64);
        for frame in receiver.frames() {
            check_syslog_frame(&frame, format, &by_id)
                .map_err(|e| anyhow::anyhow!("{e}: {frame}"))?;
        }
    }
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn syslog_over_tls_delivers_and_refuses_an_untrusted_receiver() -> anyhow::Result<()> {
    let nats = nats().await?;
    let records = sample_records(3000);
    nats.log.publish(&records).await?;
    let expected = ids(&records);
    let by_id: HashMap<_, _> = records.iter().map(|r| (r.id.clone(), r.clone())).collect();
    let dir = tempfile::tempdir()?;
    let (acceptor, pem) = self_signed();
    let ca = dir.path().join("ca.pem");
    std::fs::write(&ca, pem)?;
    let (_, other_pem) = self_signed();
    let other_ca = dir.path().join("other.pem");
    std::fs::write(&other_ca, other_pem)?;

    let port = free_port();
    let receiver = SyslogReceiver::new(port, Some(acceptor), None);
    receiver.start().await?;
    // Trusting another CA: the handshake fails, nothing is delivered, errors are counted.
    let untrusting = start_sink(
        &nats.js,
        config(json!({
            "name": "tls-wrong-ca", "type": "syslog", "address": format!("localhost:{port}"),
            "format": "ocsf", "tls": {"ca_file": other_ca},
        })),
    );
    let sink = start_sink(
        &nats.js,
        config(json!({
            "name": "tls", "type": "syslog", "address": format!("127.0.0.1:{port}"),
            "format": "json", "tls": {"ca_file": ca, "server_name": "localhost"},
        })),
    );
    receiver
        .seen
        .wait_for_all(&expected, "TLS syslog receiver")
        .await?;
    eventually("failed handshakes to be counted", DEADLINE, || async {
        (untrusting.stats.errors() >= 2).then_some(())
    })
    .await?;
    assert_eq!(untrusting.stats.delivered(), 0);
    assert_eq!(receiver.seen.duplicates(), 0);
    for frame in receiver.frames() {
        check_syslog_frame(&frame, Format::Json, &by_id)
            .map_err(|e| anyhow::anyhow!("{e}: {frame}"))?;
    }
    sink.stop().await?;
    untrusting.stop().await?;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn syslog_receiver_down_at_start_and_mid_stream_loses_nothing() -> anyhow::Result<()> {
    let nats = nats().await?;
    let records = sample_records(6000);
    nats.log.publish(&records).await?;
    let expected = ids(&records);
    let port = free_port();
    // Goes down by itself after 2500 frames, in the middle of a batch.
    let receiver = SyslogReceiver::new(port, None, Some(2500));
    let sink = start_sink(
        &nats.js,
        config(json!({
            "name": "flaky", "type": "syslog", "address": format!("127.0.0.1:{port}"),
            "format": "cef", "backoff_max_ms": 400, "fetch_batch": 700,
        })),
    );
    eventually("refused connections to be counted", DEADLINE, || async {
        (sink.stats.errors() >= 2).then_some(())
    })
    .await?;
    assert_eq!(receiver.seen.distinct(), 0);

    receiver.start().await?;
    receiver
        .seen
        .wait_for_at_least(2500, "receiver before it goes down")
        .await?;
    let errors_before = sink.stats.errors();
    eventually(
        "the sink to notice the receiver went down",
        DEADLINE,
        || async { (sink.stats.errors() > errors_before).then_some(()) },
    )
    .await?;

    receiver.start().await?;
    receiver
        .seen
        .wait_for_all(&expected, "receiver after it came back")
        .await?;
    let stats = sink.stop().await?;
    println!(
        "down/up: {} records, {} duplicates, {} errors",
        records.len(),
        receiver.seen.duplicates(),
        stats.errors()
    );
    assert_eq!(receiver.seen.unexpected(&expected), 0);
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn http_sink_sends_gzipped_batches_and_rides_out_503s() -> anyhow::Result<()> {
    let nats = nats().await?;
    let records = sample_records(5000);
    nats.log.publish(&records).await?;
    let expected = ids(&records);
    let port = free_port();
    let receiver = Arc::new(HttpReceiver {
        reject_next: AtomicU64::new(3),
        reject_after_events: Some(2000),
        reject_later: 5,
        ..Default::default()
    });
    // Down at start: nobody listens on the port yet.
    let sink = start_sink(
        &nats.js,
        config(json!({
            "name": "hec", "type": "http", "url": format!("http://127.0.0.1:{port}/services/collector/event"),
            "token": "test-token", "gzip": true, "format": "json",
            "max_batch_records": 400, "max_batch_bytes": 200_000, "max_delay_ms": 100,
            "backoff_max_ms": 300,
        })),
    );
    eventually("refused connections to be counted", DEADLINE, || async {
        (sink.stats.errors() >= 1).then_some(())
    })
    .await?;
    receiver.start(port).await?;
    receiver
        .seen
        .wait_for_all(&expected, "HTTP receiver")
        .await?;
    eventually("the sink to ack everything", DEADLINE, || async {
        (sink.stats.delivered() == records.len() as u64).then_some(())
    })
    .await?;
    let stats = sink.stop().await?;
    let problems = receiver.problems.lock().unwrap().clone();
    assert!(
        problems.is_empty(),
        "{:?}",
        &problems[..problems.len().min(5)]
    );
    let accepted = receiver.accepted_requests.load(Ordering::SeqCst);
    println!(
        "http: {} records in {accepted} requests, {} answered 503, {} errors",
        records.len(),
        receiver.rejected_requests.load(Ordering::SeqCst),
        stats.errors()
    );
    assert_eq!(receiver.rejected_requests.load(Ordering::SeqCst), 8);
    assert!(
        accepted * 10 <= records.len() as u64,
        "batched: {accepted} requests"
    );
    assert_eq!(
        receiver.seen.duplicates(),
        0,
        "a 503 delivers nothing, so nothing repeats"
    );
    assert_eq!(receiver.seen.unexpected(&expected), 0);
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn file_sink_rotates_without_losing_a_line() -> anyhow::Result<()> {
    let nats = nats().await?;
    let records = sample_records(5000);
    nats.log.publish(&records).await?;
    let expected = ids(&records);
    let dir = tempfile::tempdir()?;
    let path = dir.path().join("audit/ocsf.jsonl");
    let max_bytes = 256 * 1024;
    let sink = start_sink(
        &nats.js,
        config(json!({
            "name": "archive", "type": "file", "path": path, "format": "ocsf",
            "max_bytes": max_bytes, "keep": 1000,
        })),
    );
    eventually("the sink to write everything", DEADLINE, || async {
        (sink.stats.delivered() == records.len() as u64).then_some(())
    })
    .await?;
    sink.stop().await?;

    let seen = Seen::default();
    let mut files = 0;
    for n in 0.. {
        let file = if n == 0 {
            path.clone()
        } else {
            sinks::file::rotated_path(&path, n)
        };
        let Ok(text) = std::fs::read_to_string(&file) else {
            break;
        };
        files += 1;
        assert!(
            text.len() as u64 <= max_bytes,
            "{} has {} bytes",
            file.display(),
            text.len()
        );
        assert!(text.ends_with('\n'));
        for line in text.lines() {
            let event: Value = serde_json::from_str(line)?;
            seen.add(event["metadata"]["uid"].as_str().unwrap());
        }
    }
    println!("file: {} records in {files} files", records.len());
    assert!(files > 3, "the file rotated ({files} files)");
    assert_eq!(seen.missing(&expected), 0);
    assert_eq!(seen.duplicates(), 0);
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stopped_sink_resumes_where_it_stopped() -> anyhow::Result<()> {
    let nats = nats().await?;
    let records = sample_records(4000);
    nats.log.publish(&records).await?;
    let expected = ids(&records);
    let port = free_port();
    // A slow SIEM, so that the stop lands mid-stream.
    let receiver = Arc::new(HttpReceiver {
        delay: Duration::from_millis(40),
        ..Default::default()
    });
    receiver.start(port).await?;
    let sink_config = config(json!({
        "name": "resumable", "type": "http", "url": format!("http://127.0.0.1:{port}/"),
        "token": "test-token", "format": "cef", "max_batch_records": 100, "max_delay_ms": 20,
    }));

    let first = start_sink(&nats.js, sink_config.clone());
    receiver
        .seen
        .wait_for_at_least(800, "HTTP receiver before the stop")
        .await?;
    let first_stats = first.stop().await?;
    let delivered_before = receiver.seen.distinct();
    assert!(delivered_before < records.len(), "stopped mid-stream");
    assert_eq!(first_stats.delivered(), delivered_before as u64);

    let second = start_sink(&nats.js, sink_config);
    receiver
        .seen
        .wait_for_all(&expected, "HTTP receiver after the restart")
        .await?;
    eventually("the second run to ack the rest", DEADLINE, || async {
        (second.stats.delivered() == (records.len() - delivered_before) as u64).then_some(())
    })
    .await?;
    second.stop().await?;
    assert_eq!(
        receiver.seen.duplicates(),
        0,
        "resumed exactly where it stopped"
    );

    let stream = nats
        .js
        .get_stream(backtrack_eventlog::audit::AUDIT_STREAM)
        .await?;
    let mut consumer: jetstream::consumer::PullConsumer = stream
        .get_consumer("bt-audit-sink-resumable")
        .await
        .map_err(|e| anyhow::anyhow!("{e}"))?;
    let info = consumer.info().await?;
    assert_eq!(info.num_pending, 0);
    assert_eq!(info.num_ack_pending, 0);
    Ok(())
}
