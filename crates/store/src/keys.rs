//! Key layout of the directory projection. Tenant ids, kinds, object ids and relation
//! names never contain `/` (they are validated as subject tokens), so `/` separates.
//!
//! | prefix | key | value |
//! |---|---|---|
//! | `p` | `p` | last applied stream sequence (u64, big-endian) |
//! | `T` | `T/<tenant>` | tenant record (JSON) |
//! | `o` | `o/<tenant>/<id>` | object without links (JSON) |
//! | `k` | `k/<tenant>/<kind>/<id>` | live object of that kind |
//! | `d` | `d/<tenant>/<id>` | object in the recycle bin |
//! | `l` | `l/<tenant>/<id>/<relation>/<bucket>` | link targets in one of 16 buckets (hash of the target id), sorted, `\n`-separated |
//! | `u` | `u/<tenant>/<kind>/<attribute>/<lower-case value>` | id of the live holder |
//! | `m` | `m/<tenant>/<mutation id>` | stream sequence of the mutation's last event |
//! | `h` | `h/<tenant>/<id>` | kind index and recycle-bin flag: two bytes, for link checks |
//! | `b` | `b/<tenant>/<target>/<source>/<relation>` | (empty) reverse link: `source` links to `target`, so a purge finds its referrers without scanning the tenant |
//! | `F` | `F` | layout version of the projection (`2`: with reverse links) |
//! | `g` | `g/<tenant>/<id>` | stream sequence of a purged object's last event (u64, big-endian), so re-creating it can name its subject's last sequence; it outlives a re-creation, and is read only for an id with no `o` record |

pub const POSITION: &[u8] = b"p";

/// A key from text parts, with room for an 8-byte binary suffix. Keys are built on every
/// hot path (projection, time-travel store, reads), so without `format!`'s machinery.
pub(crate) fn join(parts: &[&str]) -> Vec<u8> {
    let mut key = Vec::with_capacity(parts.iter().map(|p| p.len()).sum::<usize>() + 8);
    for part in parts {
        key.extend_from_slice(part.as_bytes());
    }
    key
}

pub fn tenant(t: &str) -> Vec<u8> {
    join(&["T/", t])
}
pub const TENANTS: &[u8] = b"T/";

pub fn object(t: &str, id: &str) -> Vec<u8> {
    join(&object_parts(t, id))
}
/// The parts of [`object`]'s key, for a writer that assembles keys in its own buffer;
/// the other `*_parts` functions are the same for their keys.
pub(crate) fn object_parts<'a>(t: &'a str, id: &'a str) -> [&'a str; 4] {
    ["o/", t, "/", id]
}
pub fn objects(t: &str) -> Vec<u8> {
    join(&["o/", t, "/"])
}
pub fn by_kind(t: &str, kind: &str, id: &str) -> Vec<u8> {
    join(&["k/", t, "/", kind, "/", id])
}
pub fn kind_prefix(t: &str, kind: &str) -> Vec<u8> {
    join(&["k/", t, "/", kind, "/"])
}
pub fn deleted(t: &str, id: &str) -> Vec<u8> {
    join(&["d/", t, "/", id])
}
pub fn deleted_prefix(t: &str) -> Vec<u8> {
    join(&["d/", t, "/"])
}
/// Bucket of a link target: one hex digit of an FNV-1a hash of the id.
pub fn bucket_token(target: &str) -> char {
    let mut hash: u32 = 0x811c_9dc5;
    for b in target.bytes() {
        hash ^= u32::from(b);
        hash = hash.wrapping_mul(0x0100_0193);
    }
    char::from_digit(hash % 16, 16).unwrap_or('0')
}
pub fn link_bucket(t: &str, id: &str, rel: &str, target: &str) -> Vec<u8> {
    let mut token = [0; 4];
    join(&link_bucket_parts(
        t,
        id,
        rel,
        bucket_token(target).encode_utf8(&mut token),
    ))
}
/// `token`: the bucket's [`bucket_token`] as text.
pub(crate) fn link_bucket_parts<'a>(
    t: &'a str,
    id: &'a str,
    rel: &'a str,
    token: &'a str,
) -> [&'a str; 8] {
    ["l/", t, "/", id, "/", rel, "/", token]
}
pub fn links_prefix(t: &str, id: &str) -> Vec<u8> {
    join(&["l/", t, "/", id, "/"])
}
pub fn unique(t: &str, kind: &str, attribute: &str, value: &str) -> Vec<u8> {
    join(&[
        "u/",
        t,
        "/",
        kind,
        "/",
        attribute,
        "/",
        &value.to_lowercase(),
    ])
}
pub fn mutation(t: &str, mutation_id: &str) -> Vec<u8> {
    join(&mutation_parts(t, mutation_id))
}
pub(crate) fn mutation_parts<'a>(t: &'a str, mutation_id: &'a str) -> [&'a str; 4] {
    ["m/", t, "/", mutation_id]
}
pub fn head(t: &str, id: &str) -> Vec<u8> {
    join(&head_parts(t, id))
}
pub(crate) fn head_parts<'a>(t: &'a str, id: &'a str) -> [&'a str; 4] {
    ["h/", t, "/", id]
}
pub fn gone(t: &str, id: &str) -> Vec<u8> {
    join(&gone_parts(t, id))
}
pub(crate) fn gone_parts<'a>(t: &'a str, id: &'a str) -> [&'a str; 4] {
    ["g/", t, "/", id]
}
pub fn reverse(t: &str, target: &str, source: &str, relation: &str) -> Vec<u8> {
    join(&reverse_parts(t, target, source, relation))
}
pub(crate) fn reverse_parts<'a>(
    t: &'a str,
    target: &'a str,
    source: &'a str,
    relation: &'a str,
) -> [&'a str; 8] {
    ["b/", t, "/", target, "/", source, "/", relation]
}
pub fn reverse_prefix(t: &str, target: &str) -> Vec<u8> {
    join(&["b/", t, "/", target, "/"])
}
pub const LAYOUT: &[u8] = b"F";
/// The layout this build writes.
pub const LAYOUT_VERSION: &[u8] = b"2";

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_are_their_parts_joined() {
        assert_eq!(object("t1", "x"), b"o/t1/x");
        assert_eq!(by_kind("t1", "user", "x"), b"k/t1/user/x");
        assert_eq!(
            link_bucket("t1", "g", "members", "u"),
            format!("l/t1/g/members/{}", bucket_token("u")).into_bytes()
        );
        assert_eq!(
            unique("t1", "user", "userPrincipalName", "A@X.Test"),
            b"u/t1/user/userPrincipalName/a@x.test"
        );
        assert_eq!(
            crate::timetravel::keys::version("t1", "x", 0),
            [&b"V/t1/x\0"[..], &[0xff; 8]].concat()
        );
    }
}
