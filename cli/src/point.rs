//! `--at POINT`: which moment of the event log a time-travel command looks at.
//!
//! Parsing is pure: the current time comes in as an argument, so relative points (`-2h`)
//! are deterministic in tests. The accepted forms, first match wins:
//!
//! | text                                  | point                               |
//! |---------------------------------------|-------------------------------------|
//! | `now`                                 | empty: the latest applied sequence  |
//! | `seq:1234`, `1234`                    | that stream sequence                |
//! | `-90s`, `-15m`, `-2h`, `-3d`, `-1w`   | that long before `now_ms`           |
//! | `2026-11-22T05:00:00Z`, `…+01:00`     | that instant (RFC 3339)             |
//! | `backup:<id>`, a UUID                 | the sequence a backup names         |

use backtrack_proto::v1::{self, point::Point as P};

use crate::output::{refuse, refused};

/// Parses an `--at` value into a wire [`v1::Point`]; `now_ms` anchors relative forms.
pub fn parse(text: &str, now_ms: i64) -> anyhow::Result<v1::Point> {
    parse_flag("--at", text, now_ms)
}

/// [`parse`] for a point given with another flag (`--from`, `--since`, ...): its messages
/// name that flag.
pub fn parse_flag(flag: &str, text: &str, now_ms: i64) -> anyhow::Result<v1::Point> {
    let t = text.trim();
    let point = if t.eq_ignore_ascii_case("now") {
        None
    } else if let Some(n) = t.strip_prefix("seq:") {
        Some(P::Sequence(sequence(flag, text, n)?))
    } else if is_digits(t) {
        Some(P::Sequence(sequence(flag, text, t)?))
    } else if let Some(ago) = t.strip_prefix('-') {
        let Some(ms) = duration_ms(ago) else {
            return Err(not_a_point(flag, text));
        };
        match now_ms.checked_sub(ms) {
            Some(at) => Some(P::TimeMs(at)),
            None => refuse!("{flag} '{text}' reaches too far into the past"),
        }
    } else if let Ok(instant) = chrono::DateTime::parse_from_rfc3339(t) {
        Some(P::TimeMs(instant.timestamp_millis()))
    } else if let Some(id) = t.strip_prefix("backup:").filter(|id| !id.is_empty()) {
        Some(P::BackupId(backup_id(id)))
    } else if uuid::Uuid::parse_str(t).is_ok() {
        Some(P::BackupId(backup_id(t)))
    } else {
        return Err(not_a_point(flag, text));
    };
    Ok(v1::Point { point })
}

/// One line saying which point the server resolved, for stderr above a table.
pub fn describe(p: &v1::ResolvedPoint) -> String {
    let mut out = format!("as of sequence {}", p.sequence);
    if p.time_ms == 0 {
        out.push_str(" (before the first event)");
    } else {
        out.push_str(&format!(
            " ({})",
            backtrack_domain::time::rfc3339_ms(p.time_ms)
        ));
    }
    if !p.backup_id.is_empty() {
        out.push_str(&format!(", backup {}", p.backup_id));
    }
    out
}

fn not_a_point(flag: &str, text: &str) -> anyhow::Error {
    refused(format!(
        "{flag} '{text}' is not a point: use an RFC 3339 time (2026-11-22T05:00:00Z), a relative \
         time (-2h, -30m, -7d), a backup id, or seq:N"
    ))
}

fn is_digits(s: &str) -> bool {
    !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit())
}

fn sequence(flag: &str, text: &str, digits: &str) -> anyhow::Result<u64> {
    if !is_digits(digits) {
        return Err(not_a_point(flag, text));
    }
    digits
        .parse()
        .map_err(|_| refused(format!("{flag} '{text}': the sequence is too large")))
}

/// `90s`, `15m`, `2h`, `3d`, `1w` in milliseconds; `None` for anything else or overflow.
fn duration_ms(text: &str) -> Option<i64> {
    // The unit is the last character, whatever its width (a multi-byte one is no unit).
    let (unit_at, _) = text.char_indices().last()?;
    let (digits, unit) = text.split_at(unit_at);
    if !is_digits(digits) {
        return None;
    }
    let unit_ms: i64 = match unit {
        "s" => 1_000,
        "m" => 60_000,
        "h" => 3_600_000,
        "d" => 86_400_000,
        "w" => 7 * 86_400_000,
        _ => return None,
    };
    digits.parse::<i64>().ok()?.checked_mul(unit_ms)
}

/// Backup ids are lower-case UUIDs; a UUID typed in upper case names the same backup.
fn backup_id(text: &str) -> String {
    match uuid::Uuid::parse_str(text) {
        Ok(id) => id.hyphenated().to_string(),
        Err(_) => text.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    // 2026-11-22T05:00:00Z
    const NOW: i64 = 1_795_323_600_000;

    fn at(text: &str) -> Option<P> {
        match parse(text, NOW) {
            Ok(p) => p.point,
            Err(e) => panic!("'{text}' should parse: {e:#}"),
        }
    }

    fn error(text: &str) -> String {
        match parse(text, NOW) {
            Ok(p) => panic!("'{text}' should not parse, got {p:?}"),
            Err(e) => format!("{e:#}"),
        }
    }

    #[test]
    fn now_is_the_empty_point() {
        assert_eq!(at("now"), None);
        assert_eq!(at(" NOW "), None);
    }

    #[test]
    fn sequences_with_or_without_prefix() {
        assert_eq!(at("seq:42"), Some(P::Sequence(42)));
        assert_eq!(at("42"), Some(P::Sequence(42)));
        assert_eq!(at("0"), Some(P::Sequence(0)));
        assert!(error("seq:").contains("is not a point"));
        assert!(error("seq:-1").contains("is not a point"));
        assert!(error("seq:99999999999999999999999").contains("too large"));
    }

    #[test]
    fn relative_times_count_back_from_now() {
        assert_eq!(at("-90s"), Some(P::TimeMs(NOW - 90_000)));
        assert_eq!(at("-15m"), Some(P::TimeMs(NOW - 15 * 60_000)));
        assert_eq!(at("-2h"), Some(P::TimeMs(NOW - 2 * 3_600_000)));
        assert_eq!(at("-3d"), Some(P::TimeMs(NOW - 3 * 86_400_000)));
        assert_eq!(at("-1w"), Some(P::TimeMs(NOW - 7 * 86_400_000)));
        assert_eq!(at("-0s"), Some(P::TimeMs(NOW)));
        // A unit of more than one byte is no unit (found by fuzzing: it used to panic).
        assert!(error("-Ɉ").contains("is not a point"));
        assert!(error("-92Ɉ").contains("is not a point"));
    }

    #[test]
    fn rfc3339_instants_with_offsets_and_fractions() {
        assert_eq!(at("2026-11-22T05:00:00Z"), Some(P::TimeMs(NOW)));
        assert_eq!(at("2026-11-22T06:00:00+01:00"), Some(P::TimeMs(NOW)));
        assert_eq!(at("2026-11-22T00:00:00-05:00"), Some(P::TimeMs(NOW)));
        assert_eq!(at("2026-11-22T05:00:00.250Z"), Some(P::TimeMs(NOW + 250)));
        assert_eq!(
            at("2026-11-22T05:00:00.123456789Z"),
            Some(P::TimeMs(NOW + 123))
        );
    }

    #[test]
    fn uuids_name_backups() {
        let id = "0193a0f2-7c1e-7d2a-9b3c-4d5e6f708192";
        assert_eq!(at(id), Some(P::BackupId(id.into())));
        assert_eq!(at(&id.to_uppercase()), Some(P::BackupId(id.into())));
        assert_eq!(at(&format!("backup:{id}")), Some(P::BackupId(id.into())));
        assert_eq!(
            at("backup:nightly-1"),
            Some(P::BackupId("nightly-1".into()))
        );
    }

    #[test]
    fn anything_else_is_explained() {
        let e = error("2h");
        assert_eq!(
            e,
            "--at '2h' is not a point: use an RFC 3339 time (2026-11-22T05:00:00Z), a relative \
             time (-2h, -30m, -7d), a backup id, or seq:N"
        );
        // Given with another flag, the message names that flag.
        let e = parse_flag("--since", "2h", NOW).unwrap_err().to_string();
        assert!(e.starts_with("--since '2h' is not a point"), "{e}");
        let e = parse_flag("--from", "seq:99999999999999999999", NOW)
            .unwrap_err()
            .to_string();
        assert_eq!(
            e,
            "--from 'seq:99999999999999999999': the sequence is too large"
        );
        for bad in [
            "",
            "yesterday",
            "-2",
            "-h",
            "-2y",
            "--2h",
            "-2.5h",
            "2026-11-22",
            "backup:",
        ] {
            assert!(error(bad).contains("is not a point"), "{bad}");
        }
        assert!(error("-99999999999999999w").contains("is not a point"));
        assert!(parse("-9223372036854775s", i64::MIN + 1).is_err());
    }

    #[test]
    fn describes_resolved_points() {
        let mut p = v1::ResolvedPoint {
            sequence: 7,
            time_ms: NOW,
            backup_id: String::new(),
        };
        assert_eq!(describe(&p), "as of sequence 7 (2026-11-22T05:00:00.000Z)");
        p.backup_id = "b1".into();
        assert_eq!(
            describe(&p),
            "as of sequence 7 (2026-11-22T05:00:00.000Z), backup b1"
        );
        let empty = v1::ResolvedPoint::default();
        assert_eq!(
            describe(&empty),
            "as of sequence 0 (before the first event)"
        );
    }
}
