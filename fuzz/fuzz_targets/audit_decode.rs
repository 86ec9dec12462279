//! Any bytes as an audit record: decoding, chaining and verifying never panic, and a chain
//! of one entry over them verifies.
#![no_main]

use backtrack_domain::audit_chain::{link_hash, Link, Verifier, GENESIS};
use backtrack_proto::v1;
use libfuzzer_sys::fuzz_target;
use prost::Message;

fuzz_target!(|data: &[u8]| {
    let link = v1::ChainLink {
        payload: data.to_vec(),
        index: 1,
        prev_hash: GENESIS.to_vec(),
        hash: link_hash(&GENESIS, 1, 7, data).to_vec(),
        stream_sequence: 7,
        stored_at_ms: 0,
    };
    let entry = backtrack_audit::entry(&link);
    if let Ok(record) = v1::AuditRecord::decode(data) {
        assert_eq!(entry.record.as_ref(), Some(&record));
    }
    let mut verifier = Verifier::default();
    verifier
        .check(&Link {
            index: 1,
            prev_hash: &link.prev_hash,
            hash: &link.hash,
            stream_sequence: 7,
            payload: data,
        })
        .expect("a chain of one entry verifies");
    // The stored form itself, read back from any bytes, never panics.
    let _ = v1::ChainLink::decode(data);
});
