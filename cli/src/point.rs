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
//! | `2026-11-22 06:00`, `…T06:00:00`      | that time on the local clock        |
//! | `2026-11-22`                          | that day's local midnight           |
//! | `09:00`, `09:00:30`                   | the last such local time before now |
//! | `backup:<id>`, a UUID                 | the sequence a backup names         |
//!
//! The local clock is the time zone of the machine running the CLI (`TZ`, else the
//! system's); a local time the clocks skipped or passed twice is refused, with the
//! offsets to choose from.

use backtrack_proto::v1::{self, point::Point as P};
use chrono::{LocalResult, NaiveDate, NaiveDateTime, NaiveTime, TimeZone};

use crate::output::{refuse, refused};

/// Parses an `--at` value into a wire [`v1::Point`]; `now_ms` anchors relative forms.
pub fn parse(text: &str, now_ms: i64) -> anyhow::Result<v1::Point> {
    parse_flag("--at", text, now_ms)
}

/// [`parse`] for a point given with another flag (`--from`, `--since`, ...): its messages
/// name that flag.
pub fn parse_flag(flag: &str, text: &str, now_ms: i64) -> anyhow::Result<v1::Point> {
    parse_in(flag, text, now_ms, &chrono::Local)
}

/// [`parse_flag`] with local times read on `zone`'s clock.
fn parse_in<Z: TimeZone>(
    flag: &str,
    text: &str,
    now_ms: i64,
    zone: &Z,
) -> anyhow::Result<v1::Point> {
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
    } else if let Some(local) = local_time(t, now_ms, zone) {
        Some(P::TimeMs(on_clock(flag, text, &local, zone)?))
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
        "{flag} '{text}' is not a point: use an RFC 3339 time (2026-11-22T05:00:00Z), a local \
         time (2026-11-22 06:00, 09:00), a relative time (-2h, -30m, -7d), a backup id, or seq:N"
    ))
}

/// A date and time without an offset, a date (its midnight), or a time of day (the last
/// one at or before `now_ms` on `zone`'s clock: today's, or yesterday's if today's is
/// still to come), as a time on the local clock.
fn local_time<Z: TimeZone>(t: &str, now_ms: i64, zone: &Z) -> Option<NaiveDateTime> {
    const DATE_TIMES: [&str; 4] = [
        "%Y-%m-%dT%H:%M:%S%.f",
        "%Y-%m-%d %H:%M:%S%.f",
        "%Y-%m-%dT%H:%M",
        "%Y-%m-%d %H:%M",
    ];
    if let Some(at) = DATE_TIMES
        .iter()
        .find_map(|f| NaiveDateTime::parse_from_str(t, f).ok())
    {
        return Some(at);
    }
    if let Ok(day) = NaiveDate::parse_from_str(t, "%Y-%m-%d") {
        return Some(day.and_time(NaiveTime::MIN));
    }
    let time = ["%H:%M:%S%.f", "%H:%M"]
        .iter()
        .find_map(|f| NaiveTime::parse_from_str(t, f).ok())?;
    let now = zone.timestamp_millis_opt(now_ms).single()?.naive_local();
    let today = now.date().and_time(time);
    if today <= now {
        Some(today)
    } else {
        Some(now.date().pred_opt()?.and_time(time))
    }
}

/// The instant a local time names on `zone`'s clock; refused when the clocks skipped it
/// or passed it twice (a daylight saving change), naming the offsets to choose from.
fn on_clock<Z: TimeZone>(
    flag: &str,
    text: &str,
    local: &NaiveDateTime,
    zone: &Z,
) -> anyhow::Result<i64> {
    match zone.from_local_datetime(local) {
        LocalResult::Single(at) => Ok(at.timestamp_millis()),
        LocalResult::Ambiguous(a, b) => {
            let (first, second) = if a <= b { (a, b) } else { (b, a) };
            refuse!(
                "{flag} '{text}' happened twice on the local clock (the clocks went back): \
                 give the offset, {} (the first time) or {} (the second)",
                first.fixed_offset().to_rfc3339(),
                second.fixed_offset().to_rfc3339()
            )
        }
        LocalResult::None => refuse!(
            "{flag} '{text}' never happened on the local clock (the clocks went forward): \
             give a time with an offset (RFC 3339)"
        ),
    }
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
    fn local_times_are_read_on_the_local_clock() {
        // One hour east of UTC: NOW is 06:00 there.
        let zone = chrono::FixedOffset::east_opt(3600).unwrap();
        let local = |text: &str| match parse_in("--from", text, NOW, &zone) {
            Ok(p) => p.point,
            Err(e) => panic!("'{text}' should parse: {e:#}"),
        };
        let hour = 3_600_000;
        assert_eq!(local("2026-11-22 06:00"), Some(P::TimeMs(NOW)));
        assert_eq!(local("2026-11-22T06:00"), Some(P::TimeMs(NOW)));
        assert_eq!(local("2026-11-22T06:00:00.5"), Some(P::TimeMs(NOW + 500)));
        assert_eq!(
            local("2026-11-22 04:30:15"),
            Some(P::TimeMs(NOW - 5_385_000))
        );
        assert_eq!(local("2026-11-22"), Some(P::TimeMs(NOW - 6 * hour)));
        // A time of day is the last one so far: today's when it has passed, yesterday's
        // when it is still to come; now itself is today's.
        assert_eq!(local("05:00"), Some(P::TimeMs(NOW - hour)));
        assert_eq!(local("06:00"), Some(P::TimeMs(NOW)));
        assert_eq!(local("09:00"), Some(P::TimeMs(NOW - 21 * hour)));
        assert_eq!(local("00:00:30"), Some(P::TimeMs(NOW - 6 * hour + 30_000)));
        // An offset given wins over the local clock.
        assert_eq!(local("2026-11-22T05:00:00Z"), Some(P::TimeMs(NOW)));
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
            "--at '2h' is not a point: use an RFC 3339 time (2026-11-22T05:00:00Z), a local \
             time (2026-11-22 06:00, 09:00), a relative time (-2h, -30m, -7d), a backup id, or \
             seq:N"
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
            "2026-11-31",
            "2026-11-22 25:00",
            "24:00",
            "09:00 tomorrow",
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
