//! Syslog over TCP or TLS: RFC 5424 messages framed by octet counting (RFC 6587
//! `MSG-LEN SP SYSLOG-MSG`, also the framing of RFC 5425), a whole batch per write.
//!
//! `<PRI>1 TIMESTAMP HOSTNAME backtrack PROCID MSGID [backtrack@32473 tenant="…" id="…"
//! category="…"] MSG`, with MSGID the action and MSG the CEF or JSON rendering.

use std::io;
use std::time::Duration;

use backtrack_proto::v1::AuditRecord;
use tokio::io::AsyncWriteExt;

use super::batch::Batch;
use super::tls::{split_host_port, Connection, Dialer};
use super::{Facility, TlsConfig};
use crate::format::{render, rfc3339_ms, Format, Outcome};

/// The SD-ID of the structured data element. 32473 is the example enterprise number of
/// RFC 5612; receivers treat the element as opaque private data.
pub const SD_ID: &str = "backtrack@32473";
pub const APP_NAME: &str = "backtrack";

/// Syslog severity of a record: 4 (warning) for a failure, 5 (notice) otherwise.
pub fn severity(record: &AuditRecord) -> u8 {
    match Outcome::of(record) {
        Outcome::Failure => 4,
        Outcome::Success | Outcome::Unknown => 5,
    }
}

/// Escapes an SD-PARAM value: `\`, `"` and `]` get a backslash (RFC 5424 §6.3.3).
pub fn escape_sd_param(value: &str) -> String {
    let mut out = String::with_capacity(value.len());
    for c in value.chars() {
        if matches!(c, '\\' | '"' | ']') {
            out.push('\\');
        }
        out.push(c);
    }
    out
}

/// A header field as RFC 5424 allows it: printable US-ASCII without spaces, at most `max`
/// characters, `-` (nil) when empty. Other characters become `_`.
pub fn header_field(value: &str, max: usize) -> String {
    let out: String = value
        .chars()
        .take(max)
        .map(|c| if c.is_ascii_graphic() { c } else { '_' })
        .collect();
    if out.is_empty() {
        "-".into()
    } else {
        out
    }
}

/// One RFC 5424 message (without the octet count).
pub fn syslog_message(
    record: &AuditRecord,
    format: Format,
    facility: Facility,
    hostname: &str,
    procid: &str,
) -> String {
    let body = render(record, format);
    let mut m = String::with_capacity(body.len() + 200);
    m.push('<');
    m.push_str(&(u16::from(facility.code()) * 8 + u16::from(severity(record))).to_string());
    m.push_str(">1 ");
    m.push_str(&rfc3339_ms(record.time_ms));
    m.push(' ');
    m.push_str(&header_field(hostname, 255));
    m.push(' ');
    m.push_str(APP_NAME);
    m.push(' ');
    m.push_str(&header_field(procid, 128));
    m.push(' ');
    m.push_str(&header_field(&record.action, 32));
    m.push_str(" [");
    m.push_str(SD_ID);
    for (name, value) in [
        ("tenant", &record.tenant),
        ("id", &record.id),
        ("category", &record.category),
    ] {
        m.push(' ');
        m.push_str(name);
        m.push_str("=\"");
        m.push_str(&escape_sd_param(value));
        m.push('"');
    }
    m.push_str("] ");
    m.push_str(&body);
    m
}

/// Delivers batches to one syslog receiver over one connection at a time.
pub(crate) struct SyslogSink {
    dialer: Dialer,
    connection: Option<Connection>,
    format: Format,
    facility: Facility,
    hostname: String,
    procid: String,
    timeout: Duration,
}

impl SyslogSink {
    pub(crate) fn new(
        address: &str,
        tls: Option<&TlsConfig>,
        facility: Facility,
        hostname: Option<&str>,
        format: Format,
        timeout: Duration,
    ) -> Result<Self, String> {
        let (host, port) = split_host_port(address)?;
        Ok(Self {
            dialer: Dialer::new(host, port, tls, timeout)?,
            connection: None,
            format,
            facility,
            hostname: hostname
                .map(str::to_string)
                .or_else(super::local_hostname)
                .unwrap_or_default(),
            procid: std::process::id().to_string(),
            timeout,
        })
    }

    pub(crate) fn describe(&self) -> String {
        self.dialer.describe()
    }

    /// Appends the framed message of `record`.
    pub(crate) fn encode(&self, record: &AuditRecord, out: &mut Vec<u8>) {
        let message = syslog_message(
            record,
            self.format,
            self.facility,
            &self.hostname,
            &self.procid,
        );
        out.extend_from_slice(message.len().to_string().as_bytes());
        out.push(b' ');
        out.extend_from_slice(message.as_bytes());
    }

    /// Writes what the receiver does not have yet of `batch`, in one go, and flushes.
    pub(crate) async fn deliver(&mut self, batch: &mut Batch) -> io::Result<()> {
        if let Some(c) = &mut self.connection {
            if !c.is_open() {
                self.connection = None;
                return Err(io::Error::new(
                    io::ErrorKind::ConnectionReset,
                    "the receiver closed the connection",
                ));
            }
        }
        if self.connection.is_none() {
            self.connection = Some(self.dialer.connect().await?);
        }
        let Some(connection) = self.connection.as_mut() else {
            return Err(io::Error::other("no connection"));
        };
        let bytes = batch.unaccepted_bytes();
        let written = tokio::time::timeout(self.timeout, async {
            connection.write_all(bytes).await?;
            connection.flush().await
        })
        .await;
        match written {
            Ok(Ok(())) => {
                batch.accept_all();
                Ok(())
            }
            Ok(Err(e)) => {
                self.connection = None;
                Err(e)
            }
            Err(_) => {
                self.connection = None;
                Err(io::Error::new(
                    io::ErrorKind::TimedOut,
                    "the receiver did not take the batch in time",
                ))
            }
        }
    }

    /// Whether everything written so far went to a connection that is still open.
    pub(crate) fn still_open(&mut self) -> bool {
        let open = self.connection.as_mut().is_some_and(Connection::is_open);
        if !open {
            self.connection = None;
        }
        open
    }

    pub(crate) fn disconnect(&mut self) {
        self.connection = None;
    }

    /// Closes the connection cleanly (TLS close_notify, TCP FIN).
    pub(crate) async fn close(&mut self) {
        if let Some(mut c) = self.connection.take() {
            let _ = tokio::time::timeout(Duration::from_secs(1), c.shutdown()).await;
        }
    }
}
