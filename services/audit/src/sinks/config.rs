//! Sink configuration: the JSON file `{"sinks": [...]}`, defaults and validation. Errors
//! name the sink and the field, and never repeat a token.

use std::collections::HashSet;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Deserialize;

use crate::format::Format;

/// One SIEM sink. Field names are the config file's keys; see `docs/audit-export.md`.
#[derive(Debug, Clone, Deserialize)]
pub struct SinkConfig {
    /// Also names the sink's durable consumer `bt-audit-sink-<name>`: `[A-Za-z0-9_-]`, at
    /// most 64 characters. Renaming a sink starts it over from the first record.
    pub name: String,
    #[serde(flatten)]
    pub kind: SinkKind,
    pub format: Format,
    /// Which records: a subject filter within `bt.audit.>`, e.g. `bt.audit.acme.>`.
    #[serde(default = "default_filter")]
    pub filter_subject: String,
    /// Most records pulled from the stream at once.
    #[serde(default = "default_fetch_batch")]
    pub fetch_batch: usize,
    /// First pause after a failed delivery; it doubles up to `backoff_max_ms`.
    #[serde(default = "default_backoff_initial_ms")]
    pub backoff_initial_ms: u64,
    #[serde(default = "default_backoff_max_ms")]
    pub backoff_max_ms: u64,
    /// How long the stream waits for an acknowledgement before it offers a record again.
    #[serde(default = "default_ack_wait_ms")]
    pub ack_wait_ms: u64,
    /// Limit on one connect, write or HTTP exchange.
    #[serde(default = "default_io_timeout_ms")]
    pub io_timeout_ms: u64,
}

/// Where a sink delivers, selected by the `type` key.
#[derive(Clone, Deserialize)]
#[serde(tag = "type", rename_all = "lowercase")]
pub enum SinkKind {
    /// RFC 5424 messages with RFC 6587 octet-counting framing over TCP, or TLS (RFC 5425).
    Syslog {
        /// `host:port` (`[v6addr]:port` for an IPv6 literal).
        address: String,
        #[serde(default)]
        tls: Option<TlsConfig>,
        #[serde(default)]
        facility: Facility,
        /// HOSTNAME field; default: this machine's host name.
        #[serde(default)]
        hostname: Option<String>,
    },
    /// HTTP(S) POST of newline-separated JSON, Splunk HEC compatible.
    Http {
        /// `http://` or `https://` URL, e.g. `https://splunk:8088/services/collector/event`.
        url: String,
        /// Sent as `Authorization: <auth_scheme> <token>`.
        #[serde(default)]
        token: Option<String>,
        #[serde(default = "default_auth_scheme")]
        auth_scheme: String,
        #[serde(default)]
        gzip: bool,
        #[serde(default = "default_http_records")]
        max_batch_records: usize,
        /// Uncompressed body size limit of one request.
        #[serde(default = "default_http_bytes")]
        max_batch_bytes: usize,
        /// How long the first record of a batch waits for more.
        #[serde(default = "default_http_delay_ms")]
        max_delay_ms: u64,
        #[serde(default)]
        tls: Option<TlsConfig>,
        /// Wrap each record in a HEC envelope (`time`, `host`, `source`, `sourcetype`,
        /// `event`); when false, each line is the rendered record itself.
        #[serde(default = "default_true")]
        hec: bool,
        #[serde(default)]
        index: Option<String>,
        #[serde(default = "default_source")]
        source: String,
        #[serde(default = "default_sourcetype")]
        sourcetype: String,
        #[serde(default)]
        hostname: Option<String>,
    },
    /// JSON lines (or CEF lines) appended to a file that rotates by size.
    File {
        path: PathBuf,
        /// Rotate once the file would grow past this many bytes.
        #[serde(default = "default_file_bytes")]
        max_bytes: u64,
        /// Rotated files kept: `<path>.1` (newest) … `<path>.<keep>`.
        #[serde(default = "default_keep")]
        keep: usize,
    },
}

/// Client TLS for a syslog or HTTPS sink (rustls with the ring provider, TLS 1.2 and 1.3).
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TlsConfig {
    /// PEM file of the CA certificates to trust (needed for a private or self-signed CA);
    /// default: the system's trust store.
    #[serde(default)]
    pub ca_file: Option<PathBuf>,
    /// The name the receiver's certificate must carry; default: the host of the address.
    #[serde(default)]
    pub server_name: Option<String>,
    /// Client certificate chain and its key (PEM), for receivers that require mutual TLS.
    #[serde(default)]
    pub cert_file: Option<PathBuf>,
    #[serde(default)]
    pub key_file: Option<PathBuf>,
    /// DANGEROUS: accept any server certificate. Traffic stays encrypted but anybody on the
    /// path can pose as the SIEM and read the audit trail. Only for a first test.
    #[serde(default)]
    pub insecure_skip_verify: bool,
}

/// Syslog facility of every message.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Facility {
    /// 4, security/authorization messages.
    #[default]
    Auth,
    /// 10, security/authorization messages (private).
    Authpriv,
    Local0,
    Local1,
    Local2,
    Local3,
    Local4,
    Local5,
    Local6,
    Local7,
}

impl Facility {
    pub fn code(self) -> u8 {
        match self {
            Facility::Auth => 4,
            Facility::Authpriv => 10,
            Facility::Local0 => 16,
            Facility::Local1 => 17,
            Facility::Local2 => 18,
            Facility::Local3 => 19,
            Facility::Local4 => 20,
            Facility::Local5 => 21,
            Facility::Local6 => 22,
            Facility::Local7 => 23,
        }
    }
}

impl std::fmt::Debug for SinkKind {
    // By hand, so that a logged config never shows the HTTP token.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            SinkKind::Syslog {
                address,
                tls,
                facility,
                hostname,
            } => f
                .debug_struct("Syslog")
                .field("address", address)
                .field("tls", tls)
                .field("facility", facility)
                .field("hostname", hostname)
                .finish(),
            SinkKind::Http {
                url,
                token,
                gzip,
                max_batch_records,
                max_batch_bytes,
                max_delay_ms,
                tls,
                hec,
                ..
            } => f
                .debug_struct("Http")
                .field("url", url)
                .field("token", &token.as_ref().map(|_| "<redacted>"))
                .field("gzip", gzip)
                .field("max_batch_records", max_batch_records)
                .field("max_batch_bytes", max_batch_bytes)
                .field("max_delay_ms", max_delay_ms)
                .field("tls", tls)
                .field("hec", hec)
                .finish_non_exhaustive(),
            SinkKind::File {
                path,
                max_bytes,
                keep,
            } => f
                .debug_struct("File")
                .field("path", path)
                .field("max_bytes", max_bytes)
                .field("keep", keep)
                .finish(),
        }
    }
}

fn default_filter() -> String {
    "bt.audit.>".into()
}
fn default_fetch_batch() -> usize {
    1000
}
fn default_backoff_initial_ms() -> u64 {
    100
}
fn default_backoff_max_ms() -> u64 {
    5000
}
fn default_ack_wait_ms() -> u64 {
    30_000
}
fn default_io_timeout_ms() -> u64 {
    10_000
}
fn default_auth_scheme() -> String {
    "Splunk".into()
}
fn default_http_records() -> usize {
    500
}
fn default_http_bytes() -> usize {
    1_000_000
}
fn default_http_delay_ms() -> u64 {
    1000
}
fn default_true() -> bool {
    true
}
fn default_source() -> String {
    "backtrack".into()
}
fn default_sourcetype() -> String {
    "backtrack:audit".into()
}
fn default_file_bytes() -> u64 {
    100 * 1024 * 1024
}
fn default_keep() -> usize {
    10
}

const COMMON_KEYS: &[&str] = &[
    "name",
    "type",
    "format",
    "filter_subject",
    "fetch_batch",
    "backoff_initial_ms",
    "backoff_max_ms",
    "ack_wait_ms",
    "io_timeout_ms",
];
const SYSLOG_KEYS: &[&str] = &["address", "tls", "facility", "hostname"];
const HTTP_KEYS: &[&str] = &[
    "url",
    "token",
    "auth_scheme",
    "gzip",
    "max_batch_records",
    "max_batch_bytes",
    "max_delay_ms",
    "tls",
    "hec",
    "index",
    "source",
    "sourcetype",
    "hostname",
];
const FILE_KEYS: &[&str] = &["path", "max_bytes", "keep"];

impl SinkConfig {
    /// The durable consumer this sink reads through.
    pub fn consumer_name(&self) -> String {
        format!("bt-audit-sink-{}", self.name)
    }

    pub(crate) fn ack_wait(&self) -> Duration {
        Duration::from_millis(self.ack_wait_ms)
    }

    pub(crate) fn io_timeout(&self) -> Duration {
        Duration::from_millis(self.io_timeout_ms)
    }

    /// Checks every field; the error names the sink and the field.
    pub fn validate(&self) -> Result<(), String> {
        validate_name(&self.name)?;
        let sink = &self.name;
        let bad = |field: &str, what: &str| Err(format!("sink '{sink}': {field} {what}"));
        if self.filter_subject != "bt.audit.>" && !self.filter_subject.starts_with("bt.audit.") {
            return bad(
                "filter_subject",
                "must be within bt.audit.> (e.g. \"bt.audit.<tenant>.>\")",
            );
        }
        if self.filter_subject.chars().any(char::is_whitespace) {
            return bad("filter_subject", "must not contain spaces");
        }
        if !(1..=10_000).contains(&self.fetch_batch) {
            return bad("fetch_batch", "must be between 1 and 10000");
        }
        if self.backoff_initial_ms == 0 || self.backoff_max_ms < self.backoff_initial_ms {
            return bad(
                "backoff_initial_ms / backoff_max_ms",
                "must be positive with backoff_max_ms >= backoff_initial_ms",
            );
        }
        if self.io_timeout_ms < 100 {
            return bad("io_timeout_ms", "must be at least 100");
        }
        // Records in hand are kept reserved every third of ack_wait between two attempts.
        if self.ack_wait_ms < 2 * (self.io_timeout_ms + self.backoff_max_ms) {
            return bad(
                "ack_wait_ms",
                "must be at least twice io_timeout_ms + backoff_max_ms, or records waiting for a retry would be offered twice",
            );
        }
        if self.format == Format::Chat {
            match &self.kind {
                SinkKind::Http {
                    hec: false,
                    max_batch_records: 1,
                    ..
                } => {}
                _ => {
                    return bad(
                        "format",
                        "chat posts one message per request to a chat webhook: use type \"http\" with \"hec\": false and \"max_batch_records\": 1",
                    )
                }
            }
        }
        match &self.kind {
            SinkKind::Syslog { address, tls, .. } => {
                super::tls::split_host_port(address)
                    .map_err(|e| format!("sink '{sink}': address {e}"))?;
                if let Some(tls) = tls {
                    super::tls::client_config(tls)
                        .map_err(|e| format!("sink '{sink}': tls: {e}"))?;
                }
            }
            SinkKind::Http {
                url,
                tls,
                max_batch_records,
                max_batch_bytes,
                auth_scheme,
                ..
            } => {
                let endpoint = super::http::Endpoint::parse(url)
                    .map_err(|e| format!("sink '{sink}': url {e}"))?;
                if tls.is_some() && !endpoint.https {
                    return bad("tls", "is set but the url is not https://");
                }
                if endpoint.https {
                    super::tls::client_config(&tls.clone().unwrap_or_default())
                        .map_err(|e| format!("sink '{sink}': tls: {e}"))?;
                }
                if !(1..=100_000).contains(max_batch_records) {
                    return bad("max_batch_records", "must be between 1 and 100000");
                }
                if *max_batch_bytes < 1024 {
                    return bad("max_batch_bytes", "must be at least 1024");
                }
                if auth_scheme.is_empty() || auth_scheme.chars().any(|c| !c.is_ascii_graphic()) {
                    return bad(
                        "auth_scheme",
                        "must be one word, e.g. \"Splunk\" or \"Bearer\"",
                    );
                }
            }
            SinkKind::File {
                path,
                max_bytes,
                keep,
            } => {
                if path.as_os_str().is_empty() {
                    return bad("path", "is empty");
                }
                if *max_bytes < 1024 {
                    return bad("max_bytes", "must be at least 1024");
                }
                if !(1..=1000).contains(keep) {
                    return bad("keep", "must be between 1 and 1000 rotated files");
                }
            }
        }
        Ok(())
    }
}

fn validate_name(name: &str) -> Result<(), String> {
    let ok = !name.is_empty()
        && name.len() <= 64
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-');
    if ok {
        Ok(())
    } else {
        Err(format!(
            "sink name '{}' is not usable: it names a durable consumer, so it must be 1 to 64 characters of A-Z, a-z, 0-9, '_' and '-'",
            name.escape_debug()
        ))
    }
}

/// Reads a JSON config file: `{"sinks": [ ... ]}`; errors name the sink and the field.
pub fn load_config(path: &Path) -> Result<Vec<SinkConfig>, String> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| format!("cannot read sink config {}: {e}", path.display()))?;
    parse_config(&text).map_err(|e| format!("sink config {}: {e}", path.display()))
}

/// [`load_config`] on text.
pub fn parse_config(text: &str) -> Result<Vec<SinkConfig>, String> {
    let root: serde_json::Value =
        serde_json::from_str(text).map_err(|e| format!("not valid JSON: {e}"))?;
    let sinks = root
        .get("sinks")
        .and_then(serde_json::Value::as_array)
        .ok_or("expected an object with a \"sinks\" array")?;
    if let Some(extra) = root
        .as_object()
        .and_then(|o| o.keys().find(|k| *k != "sinks"))
    {
        return Err(format!("unknown top-level key '{extra}' (only \"sinks\")"));
    }
    let mut names = HashSet::new();
    let mut out = Vec::with_capacity(sinks.len());
    for (i, value) in sinks.iter().enumerate() {
        let object = value
            .as_object()
            .ok_or_else(|| format!("sinks[{i}] is not an object"))?;
        let label = match object.get("name").and_then(serde_json::Value::as_str) {
            Some(name) => format!("sink '{name}' (sinks[{i}])"),
            None => return Err(format!("sinks[{i}]: missing field 'name'")),
        };
        let kind_keys = match object.get("type").and_then(serde_json::Value::as_str) {
            Some("syslog") => SYSLOG_KEYS,
            Some("http") => HTTP_KEYS,
            Some("file") => FILE_KEYS,
            Some(other) => {
                return Err(format!(
                    "{label}: type '{other}' is not one of syslog, http, file"
                ))
            }
            None => {
                return Err(format!(
                    "{label}: missing field 'type' (syslog, http or file)"
                ))
            }
        };
        if let Some(unknown) = object
            .keys()
            .find(|k| !COMMON_KEYS.contains(&k.as_str()) && !kind_keys.contains(&k.as_str()))
        {
            let mut known: Vec<&str> = COMMON_KEYS.iter().chain(kind_keys).copied().collect();
            known.sort_unstable();
            return Err(format!(
                "{label}: unknown field '{unknown}'; known fields: {}",
                known.join(", ")
            ));
        }
        let sink: SinkConfig =
            serde_json::from_value(value.clone()).map_err(|e| format!("{label}: {e}"))?;
        sink.validate()?;
        if !names.insert(sink.name.clone()) {
            return Err(format!(
                "{label}: another sink has the same name; names must be unique"
            ));
        }
        out.push(sink);
    }
    Ok(out)
}
