//! Arbitrary compressed payloads: the bounded inflater never panics, never returns more than its
//! limit, and inflates what the codec compressed back to the same bytes.

#![no_main]

use libfuzzer_sys::fuzz_target;
use ringws::protocol::deflate::codec::{inflate, recycle, with_compressed, InflateError};

fuzz_target!(|data: &[u8]| {
    let Some((&limit_byte, payload)) = data.split_first() else {
        return;
    };
    // Limits from 0 to 64 KiB, so limit crossings are reached often.
    let limit = usize::from(limit_byte) << 8;
    match inflate(payload, limit) {
        Ok(out) => {
            assert!(out.len() <= limit);
            recycle(out);
        }
        Err(InflateError::TooBig | InflateError::Corrupt) => {}
    }
    // Round trip: whatever compresses inflates back.
    with_compressed(payload, 1 + limit_byte % 9, |compressed| {
        if let Some(compressed) = compressed {
            assert!(compressed.len() < payload.len());
            let out = inflate(compressed, payload.len()).expect("our own output inflates");
            assert_eq!(out, payload);
            recycle(out);
        }
    });
});
