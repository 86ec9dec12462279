//! Any bytes as an event payload: decoding never panics, and an event that decodes and
//! encodes comes back the same, accepted only on the subject it names.
#![no_main]

use backtrack_eventlog::codec;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(event) = codec::decode(data) else {
        return;
    };
    // Events with ids that cannot be subject tokens decode but are never encoded.
    let Ok(encoded) = codec::encode(&event) else {
        return;
    };
    let again = codec::decode_stored(&encoded.subject, &encoded.payload)
        .expect("an encoded event decodes on its own subject");
    assert_eq!(again, event);
    if encoded.subject != "bt.ev.other.user.x" {
        assert!(codec::decode_stored("bt.ev.other.user.x", &encoded.payload).is_err());
    }
});
