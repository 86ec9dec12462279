//! The audit hash chain: each tenant's records are linked in the order the stream stored
//! them, each link hashing the previous one, its own position, its stream sequence and the
//! record's bytes. Changing, removing or reordering any record breaks every later link.

use sha2::{Digest, Sha256};

/// The previous hash of a chain's first entry.
pub const GENESIS: [u8; 32] = [0; 32];
const DOMAIN: &[u8] = b"bt-audit-v1";

/// The hash of entry `index` (from 1) holding `payload`, stored at `stream_sequence`,
/// after an entry whose hash is `prev`.
pub fn link_hash(prev: &[u8; 32], index: u64, stream_sequence: u64, payload: &[u8]) -> [u8; 32] {
    let mut h = Sha256::new();
    h.update(DOMAIN);
    h.update(prev);
    h.update(index.to_be_bytes());
    h.update(stream_sequence.to_be_bytes());
    h.update((payload.len() as u64).to_be_bytes());
    h.update(payload);
    h.finalize().into()
}

/// One stored entry, as verification sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Link<'a> {
    pub index: u64,
    pub prev_hash: &'a [u8],
    pub hash: &'a [u8],
    pub stream_sequence: u64,
    pub payload: &'a [u8],
}

/// Why a chain is broken, at which entry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Break {
    pub index: u64,
    pub problem: String,
}

/// Walks a chain from its first entry, checking positions, links and hashes.
#[derive(Debug)]
pub struct Verifier {
    expected_index: u64,
    prev: [u8; 32],
    last_sequence: u64,
}

impl Default for Verifier {
    fn default() -> Self {
        Self {
            expected_index: 1,
            prev: GENESIS,
            last_sequence: 0,
        }
    }
}

impl Verifier {
    /// Checks the next entry; the first error is where the chain breaks.
    pub fn check(&mut self, link: &Link<'_>) -> Result<(), Break> {
        let at = self.expected_index;
        let fail = |problem: String| Err(Break { index: at, problem });
        if link.index != at {
            return fail(format!(
                "entry {at} is missing: the next stored entry says it is number {}",
                link.index
            ));
        }
        if link.prev_hash != self.prev {
            return fail(format!(
                "entry {at} does not follow entry {}: its previous hash differs (removed or reordered entries)",
                at - 1
            ));
        }
        if link.stream_sequence <= self.last_sequence {
            return fail(format!(
                "entry {at} was stored at stream sequence {}, not after the previous entry's {} (reordered)",
                link.stream_sequence, self.last_sequence
            ));
        }
        let hash = link_hash(&self.prev, link.index, link.stream_sequence, link.payload);
        if link.hash != hash {
            return fail(format!(
                "entry {at} has been altered: its contents do not match its hash"
            ));
        }
        self.prev = hash;
        self.expected_index += 1;
        self.last_sequence = link.stream_sequence;
        Ok(())
    }

    /// Entries checked so far.
    pub fn checked(&self) -> u64 {
        self.expected_index - 1
    }

    /// Hash of the last entry checked (GENESIS before any).
    pub fn head(&self) -> [u8; 32] {
        self.prev
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    struct Owned {
        index: u64,
        prev: Vec<u8>,
        hash: Vec<u8>,
        seq: u64,
        payload: Vec<u8>,
    }

    fn chain(payloads: &[Vec<u8>]) -> Vec<Owned> {
        let mut prev = GENESIS;
        let mut out = Vec::new();
        for (i, p) in payloads.iter().enumerate() {
            let index = i as u64 + 1;
            let seq = index * 3;
            let hash = link_hash(&prev, index, seq, p);
            out.push(Owned {
                index,
                prev: prev.to_vec(),
                hash: hash.to_vec(),
                seq,
                payload: p.clone(),
            });
            prev = hash;
        }
        out
    }

    fn verify(entries: &[Owned]) -> Result<u64, Break> {
        let mut v = Verifier::default();
        for e in entries {
            v.check(&Link {
                index: e.index,
                prev_hash: &e.prev,
                hash: &e.hash,
                stream_sequence: e.seq,
                payload: &e.payload,
            })?;
        }
        Ok(v.checked())
    }

    proptest! {
        #![proptest_config(ProptestConfig { cases: 256, failure_persistence: None, ..ProptestConfig::default() })]

        #[test]
        fn an_intact_chain_verifies(payloads in prop::collection::vec(prop::collection::vec(any::<u8>(), 0..40), 0..30)) {
            let entries = chain(&payloads);
            prop_assert_eq!(verify(&entries), Ok(payloads.len() as u64));
        }

        #[test]
        fn altering_a_record_is_found_where_it_happened(
            payloads in prop::collection::vec(prop::collection::vec(any::<u8>(), 1..40), 1..30),
            pick in any::<prop::sample::Index>(),
            byte in any::<prop::sample::Index>(),
            flip in 1u8..=255,
        ) {
            let mut entries = chain(&payloads);
            let i = pick.index(entries.len());
            let b = byte.index(entries[i].payload.len());
            entries[i].payload[b] ^= flip;
            let err = verify(&entries).unwrap_err();
            prop_assert_eq!(err.index, i as u64 + 1);
        }

        #[test]
        fn removing_a_record_is_found(
            payloads in prop::collection::vec(prop::collection::vec(any::<u8>(), 0..40), 2..30),
            pick in any::<prop::sample::Index>(),
        ) {
            let mut entries = chain(&payloads);
            let i = pick.index(entries.len() - 1);
            entries.remove(i);
            let err = verify(&entries).unwrap_err();
            prop_assert_eq!(err.index, i as u64 + 1);
        }

        #[test]
        fn swapping_two_records_is_found(
            payloads in prop::collection::vec(prop::collection::vec(any::<u8>(), 0..40), 2..30),
            a in any::<prop::sample::Index>(),
            b in any::<prop::sample::Index>(),
        ) {
            let mut entries = chain(&payloads);
            let (i, j) = (a.index(entries.len()), b.index(entries.len()));
            prop_assume!(i != j && payloads[i] != payloads[j]);
            // Swap the records (and, as a forger would, renumber them).
            let (pi, pj) = (entries[i].payload.clone(), entries[j].payload.clone());
            entries[i].payload = pj;
            entries[j].payload = pi;
            let err = verify(&entries).unwrap_err();
            prop_assert_eq!(err.index, i.min(j) as u64 + 1);
        }
    }
}
