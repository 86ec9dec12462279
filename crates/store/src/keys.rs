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
//! | `g` | `g/<tenant>/<id>` | stream sequence of a purged object's last event (u64, big-endian), so re-creating it can name its subject's last sequence |

pub const POSITION: &[u8] = b"p";

pub fn tenant(t: &str) -> Vec<u8> {
    format!("T/{t}").into_bytes()
}
pub const TENANTS: &[u8] = b"T/";

pub fn object(t: &str, id: &str) -> Vec<u8> {
    format!("o/{t}/{id}").into_bytes()
}
pub fn objects(t: &str) -> Vec<u8> {
    format!("o/{t}/").into_bytes()
}
pub fn by_kind(t: &str, kind: &str, id: &str) -> Vec<u8> {
    format!("k/{t}/{kind}/{id}").into_bytes()
}
pub fn kind_prefix(t: &str, kind: &str) -> Vec<u8> {
    format!("k/{t}/{kind}/").into_bytes()
}
pub fn deleted(t: &str, id: &str) -> Vec<u8> {
    format!("d/{t}/{id}").into_bytes()
}
pub fn deleted_prefix(t: &str) -> Vec<u8> {
    format!("d/{t}/").into_bytes()
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
    format!("l/{t}/{id}/{rel}/{}", bucket_token(target)).into_bytes()
}
pub fn links_prefix(t: &str, id: &str) -> Vec<u8> {
    format!("l/{t}/{id}/").into_bytes()
}
pub fn unique(t: &str, kind: &str, attribute: &str, value: &str) -> Vec<u8> {
    format!("u/{t}/{kind}/{attribute}/{}", value.to_lowercase()).into_bytes()
}
pub fn mutation(t: &str, mutation_id: &str) -> Vec<u8> {
    format!("m/{t}/{mutation_id}").into_bytes()
}
pub fn head(t: &str, id: &str) -> Vec<u8> {
    format!("h/{t}/{id}").into_bytes()
}
pub fn gone(t: &str, id: &str) -> Vec<u8> {
    format!("g/{t}/{id}").into_bytes()
}
pub fn reverse(t: &str, target: &str, source: &str, relation: &str) -> Vec<u8> {
    format!("b/{t}/{target}/{source}/{relation}").into_bytes()
}
pub fn reverse_prefix(t: &str, target: &str) -> Vec<u8> {
    format!("b/{t}/{target}/").into_bytes()
}
pub const LAYOUT: &[u8] = b"F";
/// The layout this build writes.
pub const LAYOUT_VERSION: &[u8] = b"2";
