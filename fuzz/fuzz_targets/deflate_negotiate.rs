//! Arbitrary Sec-WebSocket-Extensions lines: the negotiation never panics, accepts only a
//! permessage-deflate offer, and answers with a header that its own parser accepts again as an
//! offer with the same window.

#![no_main]

use libfuzzer_sys::fuzz_target;
use ringws::protocol::deflate::negotiate::{judge, negotiate, MAX_WINDOW_BITS, MIN_WINDOW_BITS};

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    // A NUL splits the input into header lines.
    let lines: Vec<&str> = text.split('\0').collect();
    let Some(agreement) = negotiate(lines.iter().copied()) else {
        return;
    };
    let bits = agreement.window_bits();
    assert!((MIN_WINDOW_BITS..=MAX_WINDOW_BITS).contains(&bits));
    assert!(text.to_ascii_lowercase().contains("permessage-deflate"));
    let mut header = Vec::new();
    agreement.write_header(&mut header);
    let value = header
        .strip_prefix(b"Sec-WebSocket-Extensions: ")
        .and_then(|v| v.strip_suffix(b"\r\n"))
        .expect("one header line");
    let again = judge(value).expect("the answer parses").expect("and is permessage-deflate");
    assert_eq!(again.window_bits(), bits);
});
