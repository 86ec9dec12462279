//! Rendering for people (aligned tables) and scripts (JSON), and error → exit code.

use backtrack_domain::graph;
use backtrack_proto::convert::object_from_proto;
use backtrack_proto::v1;
use serde_json::Value;

/// `println!` for a command's output: see [`write_line`].
macro_rules! outln {
    () => {
        $crate::output::write_line(format_args!(""))
    };
    ($($arg:tt)*) => {
        $crate::output::write_line(format_args!($($arg)*))
    };
}
pub(crate) use outln;

/// `println!` for what `backtrack up` tells its operator: see [`announce_line`].
macro_rules! announceln {
    () => {
        $crate::output::announce_line(format_args!(""))
    };
    ($($arg:tt)*) => {
        $crate::output::announce_line(format_args!($($arg)*))
    };
}
pub(crate) use announceln;

/// Writes one line of a command's output to stdout. When the reader has gone away
/// (`backtrack dir list -o json | head`), the command ends there, quietly and with exit
/// code 0: the reader asked for no more. Any other write failure ends it with code 1.
pub fn write_line(line: std::fmt::Arguments<'_>) {
    if let Err(e) = write_to_stdout(line) {
        if e.kind() == std::io::ErrorKind::BrokenPipe {
            std::process::exit(0);
        }
        eprintln!("backtrack: cannot write the output: {e}");
        std::process::exit(1);
    }
}

/// Writes one line of the server's banner to stdout. A server keeps running when nobody
/// reads it (stdout closed by a supervisor, `backtrack up | head -3`).
pub fn announce_line(line: std::fmt::Arguments<'_>) {
    // Best effort by design: the banner is a courtesy, the service is the point.
    let _ = write_to_stdout(line);
}

fn write_to_stdout(line: std::fmt::Arguments<'_>) -> std::io::Result<()> {
    use std::io::Write;
    let mut out = std::io::stdout().lock();
    out.write_fmt(line)?;
    out.write_all(b"\n")?;
    out.flush()
}

/// Prints rows as an aligned table with a header.
pub fn table(header: &[&str], rows: &[Vec<String>]) {
    let widths = table_widths(header, rows);
    table_line(&widths, header.iter().map(|h| h.to_string()).collect());
    for row in rows {
        table_line(&widths, row.clone());
    }
}

/// The width of each column: its widest cell among the header and `rows`.
pub fn table_widths(header: &[&str], rows: &[Vec<String>]) -> Vec<usize> {
    let mut widths: Vec<usize> = header.iter().map(|h| h.len()).collect();
    for row in rows {
        for (i, cell) in row.iter().enumerate() {
            if i < widths.len() {
                widths[i] = widths[i].max(cell.chars().count());
            }
        }
    }
    widths
}

/// Prints one row of a table, each cell but the last padded to its column's width.
pub fn table_line(widths: &[usize], cells: Vec<String>) {
    let mut out = String::new();
    for (i, cell) in cells.iter().enumerate() {
        if i + 1 == cells.len() {
            out.push_str(cell);
        } else {
            let width = widths.get(i).copied().unwrap_or(0);
            out.push_str(&format!("{cell:<width$}  "));
        }
    }
    outln!("{}", out.trim_end());
}

/// Graph-style JSON of an API object: `{"id", "@kind", ...attributes, "@links"}`.
pub fn object_json(o: &v1::DirectoryObject) -> Value {
    match object_from_proto(o) {
        Ok(object) => graph::render(&object),
        Err(_) => serde_json::json!({"id": o.id, "@kind": o.kind}),
    }
}

pub fn print_json(value: &Value) {
    outln!(
        "{}",
        serde_json::to_string_pretty(value).unwrap_or_default()
    );
}

/// Short text of an attribute value for tables.
pub fn cell(value: Option<&Value>) -> String {
    match value {
        None | Some(Value::Null) => String::new(),
        Some(Value::String(s)) => s.clone(),
        Some(other) => other.to_string(),
    }
}

/// A value short enough for a table cell or a feed line: strings quoted, other values as
/// JSON, cut after 60 characters (never inside one); `∅` for an absent value.
pub fn short(value: Option<&Value>) -> String {
    const MAX: usize = 60;
    let text = match value {
        None => return "∅".into(),
        Some(Value::String(s)) => format!("{s:?}"),
        Some(other) => other.to_string(),
    };
    match text.char_indices().nth(MAX) {
        Some((end, _)) => format!("{}…", &text[..end]),
        None => text,
    }
}

/// Input the CLI refuses before it asks a server (a flag that is not a point, a duration
/// that is not one, a change that changes nothing): exit code 2, as when the server refuses
/// a request.
#[derive(Debug)]
pub struct Refused(pub String);

impl std::fmt::Display for Refused {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for Refused {}

/// `return Err(Refused(format!(...)))`: the CLI's own refusal of bad input (exit code 2).
macro_rules! refuse {
    ($($arg:tt)*) => {
        return Err($crate::output::Refused(format!($($arg)*)).into())
    };
}
pub(crate) use refuse;

/// [`Refused`] as an error, for `map_err` and `ok_or_else`.
pub fn refused(message: impl Into<String>) -> anyhow::Error {
    Refused(message.into()).into()
}

/// One attribute's change for people, one line per path that changed: `name: old → new`,
/// or for a nested document changed inside, `conditions.users.excludeGroups: [...] → ∅`.
pub fn change_lines(name: &str, old: Option<&Value>, new: Option<&Value>) -> Vec<String> {
    backtrack_domain::diff::attribute_paths(name, old, new)
        .into_iter()
        .map(|d| {
            format!(
                "{}: {} → {}",
                d.path,
                short(d.base.as_ref()),
                short(d.target.as_ref())
            )
        })
        .collect()
}

/// Exit codes: 2 bad request, 3 not allowed, 4 not found, 5 unavailable, 1 otherwise.
pub fn exit_code(e: &anyhow::Error) -> i32 {
    if e.downcast_ref::<Refused>().is_some() {
        return 2;
    }
    match e.downcast_ref::<tonic::Status>().map(tonic::Status::code) {
        Some(
            tonic::Code::InvalidArgument
            | tonic::Code::AlreadyExists
            | tonic::Code::FailedPrecondition
            | tonic::Code::Aborted
            | tonic::Code::OutOfRange,
        ) => 2,
        Some(tonic::Code::Unauthenticated | tonic::Code::PermissionDenied) => 3,
        Some(tonic::Code::NotFound) => 4,
        Some(tonic::Code::Unavailable | tonic::Code::DeadlineExceeded) => 5,
        _ => 1,
    }
}

/// One line that says what went wrong: the gRPC status name and its message.
pub fn describe_error(e: &anyhow::Error) -> String {
    match e.downcast_ref::<tonic::Status>() {
        Some(s) => format!("{}: {}", status_name(s.code()), s.message()),
        None => format!("{e:#}"),
    }
}

fn status_name(code: tonic::Code) -> &'static str {
    use tonic::Code::*;
    match code {
        Ok => "OK",
        Cancelled => "CANCELLED",
        Unknown => "UNKNOWN",
        InvalidArgument => "INVALID_ARGUMENT",
        DeadlineExceeded => "DEADLINE_EXCEEDED",
        NotFound => "NOT_FOUND",
        AlreadyExists => "ALREADY_EXISTS",
        PermissionDenied => "PERMISSION_DENIED",
        ResourceExhausted => "RESOURCE_EXHAUSTED",
        FailedPrecondition => "FAILED_PRECONDITION",
        Aborted => "ABORTED",
        OutOfRange => "OUT_OF_RANGE",
        Unimplemented => "UNIMPLEMENTED",
        Internal => "INTERNAL",
        Unavailable => "UNAVAILABLE",
        DataLoss => "DATA_LOSS",
        Unauthenticated => "UNAUTHENTICATED",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn long_values_are_cut_on_character_boundaries() {
        let long = Value::String("é".repeat(100));
        let text = short(Some(&long));
        assert_eq!(text.chars().count(), 61);
        assert!(text.ends_with('…'));
        // A document whose 60th character ends mid-way through a two-byte one.
        let doc = serde_json::json!({"nn": "é".repeat(60)});
        let text = short(Some(&doc));
        assert!(text.starts_with("{\"nn\":\"éé"), "{text}");
        assert_eq!(text.chars().count(), 61);
        assert_eq!(short(Some(&serde_json::json!([1, 2]))), "[1,2]");
        assert_eq!(short(None), "∅");
    }

    #[test]
    fn the_clis_own_refusals_exit_like_the_servers() {
        use anyhow::Context;
        let refused_here = crate::point::parse_flag("--at", "yesterday", 0).unwrap_err();
        assert_eq!(exit_code(&refused_here), 2);
        let with_context = Err::<(), _>(refused("bad"))
            .context("while reading")
            .unwrap_err();
        assert_eq!(exit_code(&with_context), 2);
        let by_server = anyhow::Error::from(tonic::Status::invalid_argument("bad"));
        assert_eq!(exit_code(&by_server), 2);
        assert_eq!(exit_code(&anyhow::anyhow!("disk full")), 1);
    }
}
