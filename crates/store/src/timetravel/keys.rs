//! Key layout of the time-travel store. Text tokens (tenant, object id, relation, target)
//! never contain `/` or NUL; a NUL ends the last text token before a binary suffix, so the
//! versions of one object (or one link) are contiguous and sort in id order.
//!
//! | prefix | key | value |
//! |---|---|---|
//! | `F` | `F` | layout version |
//! | `P` | `P` | last applied stream sequence (u64 BE) |
//! | `T` | `T/<tenant>` | tenant record (JSON) |
//! | `A` | `A/<tenant>` | tenant summary at the position: counts per kind and set-hash lanes |
//! | `V` | `V/<tenant>/<id>\0<!seq>` | the event at `seq` and the object (without links) from `seq` on (see `version`) |
//! | `L` | `L/<tenant>/<id>/<relation>/<target>\0<!seq>` | `1` linked / `0` unlinked from `seq` on |
//! | `C` | `C/<tenant>/<seq>` | the objects of the tenant changed by the run of events that ends at `seq` (see [`encode_change`]) |
//! | `S` | `S<!ms><!seq>` | the last sequence stored at stream time `ms` |
//!
//! Stores of earlier layouts (which also held `E` history and `H` keys) are rebuilt.
//!
//! `!x` is the bitwise complement in big-endian bytes, so a forward seek to `<!s>` lands on
//! the newest version at or before `s`.

use crate::keys::join;

pub const POSITION: &[u8] = b"P";
pub const FORMAT: &[u8] = b"F";

pub const TENANTS: &[u8] = b"T/";

pub fn tenant(t: &str) -> Vec<u8> {
    join(&["T/", t])
}
pub fn summary(t: &str) -> Vec<u8> {
    join(&["A/", t])
}

/// `V/<t>/` — every version of every object of the tenant.
pub fn versions_of_tenant(t: &str) -> Vec<u8> {
    join(&["V/", t, "/"])
}
/// `V/<t>/<id>\0` — every version of one object.
pub fn versions(t: &str, id: &str) -> Vec<u8> {
    join(&["V/", t, "/", id, "\0"])
}
pub fn version(t: &str, id: &str, seq: u64) -> Vec<u8> {
    let mut key = versions(t, id);
    key.extend_from_slice(&(!seq).to_be_bytes());
    key
}

pub fn links_of_tenant(t: &str) -> Vec<u8> {
    join(&["L/", t, "/"])
}
pub fn links_of(t: &str, id: &str) -> Vec<u8> {
    join(&["L/", t, "/", id, "/"])
}
pub fn links_of_relation(t: &str, id: &str, relation: &str) -> Vec<u8> {
    join(&["L/", t, "/", id, "/", relation, "/"])
}
pub fn link(t: &str, id: &str, relation: &str, target: &str, seq: u64) -> Vec<u8> {
    let mut key = join(&["L/", t, "/", id, "/", relation, "/", target, "\0"]);
    key.extend_from_slice(&(!seq).to_be_bytes());
    key
}

pub fn changes(t: &str) -> Vec<u8> {
    join(&["C/", t, "/"])
}
/// The change index of the run of events that ends at `last` (the run's last sequence,
/// whatever tenant it touched last): one key per tenant per run instead of one per event.
pub fn changes_up_to(t: &str, last: u64) -> Vec<u8> {
    let mut key = changes(t);
    key.extend_from_slice(&last.to_be_bytes());
    key
}

/// Appends one changed object to a `C` value: sequence (u64 BE), kind index (u8), id
/// length (u32 BE) and id. Entries follow in sequence order.
pub fn encode_change(value: &mut Vec<u8>, seq: u64, kind: u8, id: &str) {
    value.extend_from_slice(&seq.to_be_bytes());
    value.push(kind);
    value.extend_from_slice(&(id.len() as u32).to_be_bytes());
    value.extend_from_slice(id.as_bytes());
}

/// The entries of a `C` value: (sequence, kind index, id); `None` when it is malformed.
pub fn decode_changes(mut value: &[u8]) -> Option<Vec<(u64, u8, &[u8])>> {
    let mut out = Vec::new();
    while !value.is_empty() {
        let (seq, rest) = value.split_at_checked(8)?;
        let (&kind, rest) = rest.split_first()?;
        let (len, rest) = rest.split_at_checked(4)?;
        let len = u32::from_be_bytes(len.try_into().ok()?) as usize;
        let (id, rest) = rest.split_at_checked(len)?;
        out.push((u64::from_be_bytes(seq.try_into().ok()?), kind, id));
        value = rest;
    }
    Some(out)
}

pub const INSTANTS: &[u8] = b"S";
pub fn instant(ms: i64, seq: u64) -> Vec<u8> {
    let mut key = INSTANTS.to_vec();
    key.extend_from_slice(&(!(ms as u64 ^ (1 << 63))).to_be_bytes());
    key.extend_from_slice(&(!seq).to_be_bytes());
    key
}
/// Where a forward seek for "the newest stored time at or before `ms`" starts.
pub fn instant_seek(ms: i64) -> Vec<u8> {
    let mut key = INSTANTS.to_vec();
    key.extend_from_slice(&(!(ms as u64 ^ (1 << 63))).to_be_bytes());
    key
}
/// Reads the sequence and time of an `S` key.
pub fn parse_instant(key: &[u8]) -> Option<(i64, u64)> {
    let rest = key.strip_prefix(INSTANTS)?;
    let (ms, seq) = rest.split_at_checked(8)?;
    let ms = !u64::from_be_bytes(ms.try_into().ok()?) ^ (1 << 63);
    let seq = !u64::from_be_bytes(seq.try_into().ok()?);
    Some((ms as i64, seq))
}

/// Splits a key ending in `\0` + 8 bytes into (text part after `prefix`, the u64).
pub fn split_versioned<'k>(key: &'k [u8], prefix: &[u8]) -> Option<(&'k [u8], u64)> {
    let rest = key.strip_prefix(prefix)?;
    let cut = rest.len().checked_sub(9)?;
    let (text, tail) = rest.split_at(cut);
    if tail[0] != 0 {
        return None;
    }
    Some((text, u64::from_be_bytes(tail[1..].try_into().ok()?)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn instants_sort_newest_first_and_parse_back() {
        let a = instant(1_000, 5);
        let b = instant(2_000, 9);
        let c = instant(2_000, 7);
        assert!(b < c && c < a);
        assert_eq!(parse_instant(&a), Some((1_000, 5)));
        assert!(instant_seek(1_500) > b && instant_seek(1_500) < a);
    }

    #[test]
    fn change_entries_read_back_and_a_cut_value_is_malformed() {
        let mut value = Vec::new();
        encode_change(&mut value, 7, 2, "a");
        encode_change(&mut value, 9, 0, "group-Ü");
        let entries = decode_changes(&value).unwrap();
        assert_eq!(
            entries,
            vec![(7, 2, &b"a"[..]), (9, 0, "group-Ü".as_bytes())]
        );
        assert!(decode_changes(&value[..value.len() - 1]).is_none());
        assert_eq!(decode_changes(&[]), Some(Vec::new()));
        assert!(changes_up_to("t", 2) < changes_up_to("t", 256));
    }

    #[test]
    fn versions_sort_newest_first() {
        assert!(version("t", "x", 9) < version("t", "x", 3));
        let key = version("t", "x", 9);
        let (id, inverted) = split_versioned(&key, b"V/t/").unwrap();
        assert_eq!((id, !inverted), (&b"x"[..], 9));
        // Another id sharing a prefix never falls between two versions of `x`.
        let other = version("t", "x-1", 5);
        assert!(!(other > version("t", "x", 9) && other < version("t", "x", 3)));
    }
}
