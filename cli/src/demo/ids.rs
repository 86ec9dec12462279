//! Where every id and every random draw comes from: one ChaCha8 stream per use, positioned
//! at the object's index, and the opaque ids Graph builds from GUID bytes.

use std::collections::BTreeSet;

use rand::{Rng, RngCore, SeedableRng};
use rand_chacha::ChaCha8Rng;
use sha2::{Digest, Sha256};
use uuid::{Builder, Uuid};

use super::Tenant;

// Independent ChaCha streams, one per use, so adding a draw in one never shifts another.
const S_USER_ID: u64 = 1;
pub(super) const S_PERSON: u64 = 2;
const S_GROUP_ID: u64 = 3;
pub(super) const S_GROUP: u64 = 4;
const S_APP_ID: u64 = 5;
pub(super) const S_APP: u64 = 6;
const S_SP_ID: u64 = 7;
pub(super) const S_ASSIGNMENT: u64 = 8;
const S_MISC_ID: u64 = 9;
// Ids from S_MISC_ID, by index.
pub(super) const MISC_TENANT: usize = 0;
pub(super) const MISC_LOCATION: usize = 10;
pub(super) const MISC_UNIT: usize = 20;
pub(super) const MISC_ROLE: usize = 30;
pub(super) const MISC_POLICY: usize = 40;

impl Tenant {
    /// A generator positioned at item `index` of `stream`; each item owns 2^24 words.
    pub(super) fn rng(&self, stream: u64, index: usize) -> ChaCha8Rng {
        let mut rng = ChaCha8Rng::from_seed(self.key);
        rng.set_stream(stream);
        rng.set_word_pos((index as u128) << 24);
        rng
    }

    /// A random (v4) GUID, lower-case and hyphenated, from item `index` of `stream`.
    fn guid(&self, stream: u64, index: usize) -> String {
        let mut bytes = [0u8; 16];
        self.rng(stream, index).fill_bytes(&mut bytes);
        Builder::from_random_bytes(bytes).into_uuid().to_string()
    }

    pub(super) fn user_id(&self, i: usize) -> String {
        self.guid(S_USER_ID, i)
    }
    pub(super) fn group_id(&self, g: usize) -> String {
        self.guid(S_GROUP_ID, g)
    }
    pub(super) fn app_object_id(&self, a: usize) -> String {
        self.guid(S_APP_ID, 4 * a)
    }
    pub(super) fn app_client_id(&self, a: usize) -> String {
        self.guid(S_APP_ID, 4 * a + 1)
    }
    pub(super) fn app_role_id(&self, a: usize, role: usize) -> String {
        self.guid(S_APP_ID, 4 * a + 2 + role)
    }
    /// Service principal 0 is Microsoft Graph; 1 + a belongs to application a.
    pub(super) fn sp_id(&self, s: usize) -> String {
        self.guid(S_SP_ID, s)
    }
    pub(super) fn misc_id(&self, n: usize) -> String {
        self.guid(S_MISC_ID, n)
    }
}

/// The ChaCha key of a tenant: the seed and the domain, so that two demo tenants seeded
/// alike still get their own object ids, as real tenants do (Graph ids are global).
pub(super) fn tenant_key(seed: u64, domain: &str) -> [u8; 32] {
    let mut hasher = Sha256::new();
    hasher.update(seed.to_le_bytes());
    hasher.update(domain.as_bytes());
    hasher.finalize().into()
}

/// `count` distinct numbers below `population` (all of them if `count` is larger), by
/// Floyd's algorithm: exactly `count` draws, whatever the ratio.
pub(super) fn sample(r: &mut ChaCha8Rng, population: usize, count: usize) -> BTreeSet<usize> {
    let mut chosen = BTreeSet::new();
    for j in population - count.min(population)..population {
        let t = r.random_range(0..=j);
        if !chosen.insert(t) {
            chosen.insert(j);
        }
    }
    chosen
}

/// A GUID's bytes as Windows lays them out (the first three fields little-endian), which is
/// how Graph builds its opaque assignment and grant ids.
pub(super) fn guid_bytes_le(guid: &str) -> [u8; 16] {
    Uuid::parse_str(guid)
        .map(|u| u.to_bytes_le())
        .unwrap_or_default()
}

/// Unpadded base64url.
pub(super) fn base64url(bytes: &[u8]) -> String {
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
    let mut out = String::with_capacity(bytes.len().div_ceil(3) * 4);
    for chunk in bytes.chunks(3) {
        let b = [
            chunk[0],
            *chunk.get(1).unwrap_or(&0),
            *chunk.get(2).unwrap_or(&0),
        ];
        let n = u32::from(b[0]) << 16 | u32::from(b[1]) << 8 | u32::from(b[2]);
        for k in 0..=chunk.len() {
            out.push(char::from(ALPHABET[(n >> (18 - 6 * k)) as usize & 63]));
        }
    }
    out
}
