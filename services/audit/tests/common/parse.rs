//! Parsers of what the receivers get, written here independently of the code under test:
//! RFC 5424 syslog messages, CEF lines, and the check of one received syslog frame against
//! the record it names.

use std::collections::HashMap;

use backtrack_audit::format::{native_json, ocsf, Format};
use backtrack_audit::sinks::syslog;
use backtrack_proto::v1::AuditRecord;
use serde_json::Value;

/// An RFC 5424 message: PRI, the header fields, the SD params of the one element, MSG.
#[derive(Debug)]
pub struct SyslogMessage {
    pub pri: u16,
    pub header: Vec<String>,
    pub sd_id: String,
    pub sd: HashMap<String, String>,
    pub msg: String,
}

pub fn parse_syslog(frame: &str) -> Result<SyslogMessage, String> {
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
pub fn parse_cef(line: &str) -> Result<(Vec<String>, HashMap<String, String>), String> {
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
pub fn check_syslog_frame(
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
        } // Refused for syslog sinks by the config.
        Format::Chat => return Err("a chat rendering on syslog".into()),
    }
    Ok(id)
}
