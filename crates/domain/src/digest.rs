//! Content digests of a tenant's state, computable incrementally.
//!
//! A tenant's state is read as a set of facts: one per object (id, kind, attributes,
//! recycle-bin state — never stream positions or times of change) and one per link
//! (object, relation, target). The digest is a homomorphic set hash over those facts
//! (LtHash16: each fact expands to 1024 16-bit lanes that are added modulo 2^16), so adding
//! or removing one fact costs one expansion, whatever the tenant's size. That is what lets
//! the snapshotter name the digest of any backup in O(1), and lets a replay, a projection
//! and the time-travel store all agree on one number without sorting anything.
//!
//! The expansion is named by the printed form's prefix ([`Expansion`]):
//! `lthash16-blake3:<hex>` (BLAKE3, what every digest is written with) or `lthash16:<hex>`
//! (SHA-256 in counter mode, eight times slower; manifests of earlier releases carry it,
//! and `backup verify` still checks them with it).

use serde_json::{Map, Value};
use sha2::{Digest, Sha256};

use crate::canonical;
use crate::object::DirectoryObject;

/// Lanes of the set hash.
pub const LANES: usize = 1024;
/// Bytes of the serialised lanes.
pub const SET_HASH_BYTES: usize = LANES * 2;

/// The canonical fact of an object without its links.
pub fn object_fact(
    id: &str,
    kind: &str,
    attributes: &Map<String, Value>,
    deleted_at_ms: Option<i64>,
) -> String {
    // The canonical text of {"id", "kind", "attributes", "deletedAtMs"}, keys in their
    // sorted order, written without copying the attributes into a `Value`.
    let mut out = String::with_capacity(128);
    out.push_str("{\"attributes\":");
    canonical::write_map(attributes, &mut out);
    out.push_str(",\"deletedAtMs\":");
    match deleted_at_ms {
        Some(ms) => out.push_str(&ms.to_string()),
        None => out.push_str("null"),
    }
    out.push_str(",\"id\":");
    canonical::write_string(id, &mut out);
    out.push_str(",\"kind\":");
    canonical::write_string(kind, &mut out);
    out.push('}');
    out
}

/// The fact of one link.
pub fn link_fact(id: &str, relation: &str, target: &str) -> String {
    format!("{id}\n{relation}\n{target}")
}

/// How a fact expands into lanes, and how the lanes are printed.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum Expansion {
    /// `lthash16-blake3:`: a fact's lanes are the first 2048 bytes of BLAKE3 in
    /// key-derivation mode with context [`BLAKE3_CONTEXT`] over the fact (little-endian
    /// pairs); printed as the BLAKE3 hash of the lanes.
    #[default]
    Blake3,
    /// `lthash16:`: lanes from SHA-256 in counter mode keyed by the fact's SHA-256
    /// (`sha256(seed ‖ counter u32 LE)`, counters 0–63); printed as the SHA-256 of the lanes.
    Sha256Counter,
}

/// The key-derivation context of [`Expansion::Blake3`].
pub const BLAKE3_CONTEXT: &str = "backtrack 2026-12-06 lthash16 fact lanes";

impl Expansion {
    /// The printed digest's prefix, colon included.
    pub fn prefix(self) -> &'static str {
        match self {
            Self::Blake3 => "lthash16-blake3:",
            Self::Sha256Counter => "lthash16:",
        }
    }

    /// The expansion a printed digest was made with, if it is one of ours.
    pub fn of_digest(digest: &str) -> Option<Self> {
        [Self::Blake3, Self::Sha256Counter]
            .into_iter()
            .find(|e| digest.starts_with(e.prefix()))
    }
}

/// LtHash16 over a multiset of byte strings.
#[derive(Clone, PartialEq, Eq)]
pub struct SetHash {
    lanes: Box<[u16; LANES]>,
    expansion: Expansion,
}

impl Default for SetHash {
    fn default() -> Self {
        Self::new(Expansion::default())
    }
}

impl std::fmt::Debug for SetHash {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.digest())
    }
}

impl SetHash {
    /// The hash of the empty set with `expansion`.
    pub fn new(expansion: Expansion) -> Self {
        Self {
            lanes: Box::new([0; LANES]),
            expansion,
        }
    }

    /// Adds one element.
    pub fn insert(&mut self, element: &[u8]) {
        self.combine(element, true);
    }

    /// Removes one element (that was added before).
    pub fn remove(&mut self, element: &[u8]) {
        self.combine(element, false);
    }

    pub fn insert_object(&mut self, object: &DirectoryObject) {
        self.object(object, true);
    }

    pub fn remove_object(&mut self, object: &DirectoryObject) {
        self.object(object, false);
    }

    fn object(&mut self, object: &DirectoryObject, add: bool) {
        let fact = object_fact(
            &object.id,
            object.kind.as_str(),
            &object.attributes,
            object.deleted_at_ms,
        );
        let facts = std::iter::once(tagged(b'o', &fact)).chain(object.links.iter().flat_map(
            |(relation, targets)| {
                targets
                    .iter()
                    .map(|t| tagged(b'l', &link_fact(&object.id, relation, t)))
            },
        ));
        for fact in facts {
            if add {
                self.insert(&fact);
            } else {
                self.remove(&fact);
            }
        }
    }

    /// The printed form: the expansion's prefix and the hex hash of the lanes.
    pub fn digest(&self) -> String {
        let bytes = self.to_bytes();
        let hash = match self.expansion {
            Expansion::Blake3 => blake3::hash(&bytes).to_hex().to_string(),
            Expansion::Sha256Counter => hex::encode(Sha256::digest(bytes)),
        };
        format!("{}{hash}", self.expansion.prefix())
    }

    /// The lanes, little-endian.
    pub fn to_bytes(&self) -> Vec<u8> {
        self.lanes.iter().flat_map(|l| l.to_le_bytes()).collect()
    }

    /// Reads lanes written by [`SetHash::to_bytes`] of a hash with the default expansion.
    pub fn from_bytes(bytes: &[u8]) -> Option<Self> {
        if bytes.len() != SET_HASH_BYTES {
            return None;
        }
        let mut hash = Self::default();
        for (lane, pair) in hash.lanes.iter_mut().zip(bytes.chunks_exact(2)) {
            *lane = u16::from_le_bytes([pair[0], pair[1]]);
        }
        Some(hash)
    }

    /// Expands `element` to 1024 lanes and adds them to (or subtracts them from) the
    /// lanes.
    fn combine(&mut self, element: &[u8], add: bool) {
        let mut out = [0u8; SET_HASH_BYTES];
        match self.expansion {
            Expansion::Blake3 => {
                // The context's key is derived once; each fact clones the keyed state.
                static DERIVING: std::sync::LazyLock<blake3::Hasher> =
                    std::sync::LazyLock::new(|| blake3::Hasher::new_derive_key(BLAKE3_CONTEXT));
                DERIVING
                    .clone()
                    .update(element)
                    .finalize_xof()
                    .fill(&mut out);
            }
            Expansion::Sha256Counter => {
                let seed = Sha256::digest(element);
                let mut block = [0u8; 36];
                block[..32].copy_from_slice(&seed);
                for (counter, chunk) in (0u32..).zip(out.chunks_exact_mut(32)) {
                    block[32..].copy_from_slice(&counter.to_le_bytes());
                    chunk.copy_from_slice(&Sha256::digest(block));
                }
            }
        }
        // Two plain loops (no operation passed in), so each compiles to vector adds.
        let words = out
            .chunks_exact(2)
            .map(|pair| u16::from_le_bytes([pair[0], pair[1]]));
        if add {
            for (lane, word) in self.lanes.iter_mut().zip(words) {
                *lane = lane.wrapping_add(word);
            }
        } else {
            for (lane, word) in self.lanes.iter_mut().zip(words) {
                *lane = lane.wrapping_sub(word);
            }
        }
    }
}

/// A fact tagged with its type, so an object fact and a link fact never collide.
pub fn tagged(tag: u8, fact: &str) -> Vec<u8> {
    let mut bytes = Vec::with_capacity(fact.len() + 2);
    bytes.push(tag);
    bytes.push(b'\n');
    bytes.extend_from_slice(fact.as_bytes());
    bytes
}

/// Digest over objects fed in any order.
#[derive(Debug, Default, Clone)]
pub struct StateDigest {
    hash: SetHash,
    objects: u64,
}

impl StateDigest {
    /// An empty digest with `expansion` (the default one is what new digests use).
    pub fn new(expansion: Expansion) -> Self {
        Self {
            hash: SetHash::new(expansion),
            objects: 0,
        }
    }

    pub fn add(&mut self, object: &DirectoryObject) {
        self.hash.insert_object(object);
        self.objects += 1;
    }

    pub fn finish(self) -> String {
        self.hash.digest()
    }

    pub fn objects(&self) -> u64 {
        self.objects
    }
}

/// Digest of an in-memory tenant state.
pub fn tenant_digest(state: &crate::state::TenantState) -> String {
    tenant_digest_with(state, Expansion::default())
}

/// Digest of an in-memory tenant state with a given expansion (to check a digest printed
/// with an older one).
pub fn tenant_digest_with(state: &crate::state::TenantState, expansion: Expansion) -> String {
    let mut digest = StateDigest::new(expansion);
    for object in state.objects.values() {
        digest.add(object);
    }
    digest.finish()
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;
    use serde_json::{json, Map, Value};
    use sha2::{Digest, Sha256};

    use super::{object_fact, Expansion, SetHash, BLAKE3_CONTEXT};
    use crate::canonical::to_canonical_string;

    fn attribute_value() -> impl Strategy<Value = Value> {
        prop_oneof![
            "\\PC{0,10}".prop_map(Value::from),
            any::<i64>().prop_map(Value::from),
            proptest::num::f64::NORMAL.prop_map(Value::from),
            any::<bool>().prop_map(Value::from),
            Just(Value::Null),
            proptest::collection::vec("[a-z\"]{0,4}", 0..3).prop_map(Value::from),
            ("[a-z]{1,4}", "\\PC{0,6}").prop_map(|(k, v)| json!({ "z": v, k: [1, null, -0.0] })),
        ]
    }

    proptest! {
        /// An object's fact is the canonical text of {id, kind, attributes, deletedAtMs}:
        /// stored digests (checkpoints, backup manifests) depend on every byte of it.
        #[test]
        fn an_object_fact_is_the_canonical_text_of_its_parts(
            // Printable text, and the characters JSON escaping treats specially: quotes,
            // backslashes, C0 and C1 controls, DEL, the line separators some encoders
            // escape, and characters outside the basic plane (surrogate pairs in UTF-16).
            id in "\\PC{0,12}|[a-f0-9\"\\\\\u{0}-\u{1f}\u{7f}-\u{9f}\u{2028}\u{2029}\u{fffe}\u{1f600}-\u{1f64f}\u{10ffff}-]{0,40}",
            kind in "[a-zA-Z]{1,12}",
            attributes in proptest::collection::btree_map("[a-zA-Z@.\"\\\\]{1,10}", attribute_value(), 0..6),
            deleted_at_ms in proptest::option::of(any::<i64>()),
        ) {
            let attributes: Map<String, Value> = attributes.into_iter().collect();
            let expected = to_canonical_string(&json!({
                "id": id,
                "kind": kind,
                "attributes": attributes,
                "deletedAtMs": deleted_at_ms,
            }));
            prop_assert_eq!(object_fact(&id, &kind, &attributes, deleted_at_ms), expected);
        }
    }

    /// The digests of a set holding only `fact`, computed from the definitions outside
    /// Rust (Python's `blake3` and `hashlib`).
    const KNOWN_FACT_DIGEST: &str =
        "lthash16-blake3:d236d592895cd5265c3f31ef7c40001b0ce71a330f44fc3410599978a302484a";
    const KNOWN_FACT_DIGEST_SHA256: &str =
        "lthash16:790d87ee3857395d92e538833245e3a767cf46d3cfa715d62c92c21c58cb34ce";

    #[test]
    fn order_does_not_matter_and_removal_undoes() {
        for expansion in [Expansion::Blake3, Expansion::Sha256Counter] {
            let mut a = SetHash::new(expansion);
            a.insert(b"x");
            a.insert(b"y");
            let mut b = SetHash::new(expansion);
            b.insert(b"y");
            b.insert(b"x");
            assert_eq!(a.digest(), b.digest());
            b.insert(b"z");
            assert_ne!(a.digest(), b.digest());
            b.remove(b"z");
            assert_eq!(a.digest(), b.digest());
            let empty = SetHash::new(expansion).digest();
            a.remove(b"x");
            a.remove(b"y");
            assert_eq!(a.digest(), empty);
        }
    }

    /// The SHA-256 lane expansion, written with whole digests as its definition says.
    fn sha256_lanes_by_definition(element: &[u8]) -> Vec<u16> {
        let seed = Sha256::digest(element);
        let mut lanes = Vec::new();
        for counter in 0u32..64 {
            let mut block = seed.to_vec();
            block.extend_from_slice(&counter.to_le_bytes());
            let out = Sha256::digest(&block);
            lanes.extend(
                out.chunks_exact(2)
                    .map(|p| u16::from_le_bytes([p[0], p[1]])),
            );
        }
        lanes
    }

    /// The BLAKE3 lane expansion, through the crate's one-shot key derivation.
    fn blake3_lanes_by_definition(element: &[u8]) -> Vec<u16> {
        let mut out = vec![0u8; 2048];
        let mut hasher = blake3::Hasher::new_derive_key(BLAKE3_CONTEXT);
        hasher.update(element).finalize_xof().fill(&mut out);
        out.chunks_exact(2)
            .map(|p| u16::from_le_bytes([p[0], p[1]]))
            .collect()
    }

    #[test]
    fn lanes_expand_as_defined() {
        for element in [
            &b""[..],
            b"x",
            b"o\n{\"id\":\"a\"}",
            &[0xff; 200],
            &[7; 5000],
        ] {
            for (expansion, by_definition) in [
                (
                    Expansion::Blake3,
                    blake3_lanes_by_definition as fn(&[u8]) -> Vec<u16>,
                ),
                (Expansion::Sha256Counter, sha256_lanes_by_definition),
            ] {
                let mut hash = SetHash::new(expansion);
                hash.insert(element);
                assert_eq!(hash.lanes.to_vec(), by_definition(element), "{expansion:?}");
                hash.remove(element);
                assert_eq!(hash, SetHash::new(expansion));
            }
        }
        // And known answers, so the digest formats cannot drift unnoticed.
        let mut hash = SetHash::default();
        hash.insert(b"fact");
        assert_eq!(hash.digest(), KNOWN_FACT_DIGEST);
        let mut hash = SetHash::new(Expansion::Sha256Counter);
        hash.insert(b"fact");
        assert_eq!(hash.digest(), KNOWN_FACT_DIGEST_SHA256);
    }

    #[test]
    fn a_digest_names_its_expansion() {
        for expansion in [Expansion::Blake3, Expansion::Sha256Counter] {
            let digest = SetHash::new(expansion).digest();
            assert_eq!(Expansion::of_digest(&digest), Some(expansion), "{digest}");
        }
        assert_eq!(Expansion::of_digest("sha256:00"), None);
        assert_eq!(Expansion::of_digest(""), None);
    }

    #[test]
    fn lanes_round_trip() {
        let mut a = SetHash::default();
        a.insert(b"fact");
        let back = SetHash::from_bytes(&a.to_bytes()).expect("2048 bytes");
        assert_eq!(back, a);
        assert!(SetHash::from_bytes(&[0; 3]).is_none());
    }
}
