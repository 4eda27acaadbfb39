//! Arbitrary Sec-WebSocket-Extensions lines as a server's answer: the client's judgement never
//! panics; an accepted answer has windows in 8..=15, honours what the offer asked for, and reads
//! back the same once written out. And every answer ringws's server side gives to an offer in
//! the same input is one ringws's client side accepts.

#![no_main]

use libfuzzer_sys::fuzz_target;
use ringws::protocol::deflate::negotiate::{negotiate, MAX_WINDOW_BITS, MIN_WINDOW_BITS};
use ringws::protocol::deflate::{parse_answer, Offered, CLIENT_OFFER};

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    // A NUL splits the input into header lines.
    let lines: Vec<&[u8]> = text.split('\0').map(str::as_bytes).collect();
    let window = |bits: Option<u8>| bits.is_none_or(|b| (MIN_WINDOW_BITS..=MAX_WINDOW_BITS).contains(&b));
    for offered in [Offered::parse(CLIENT_OFFER), Offered::parse(text), Offered::default()] {
        let Ok(Some(answer)) = parse_answer(lines.iter().copied(), offered) else {
            continue;
        };
        assert!(window(answer.server_max_window_bits) && window(answer.client_max_window_bits));
        assert!(answer.server_no_context_takeover || !offered.server_no_context_takeover);
        assert!(answer.client_max_window_bits.is_none() || offered.client_max_window_bits);
        let written = answer.to_string();
        assert_eq!(parse_answer([written.as_bytes()], offered), Ok(Some(answer)));
    }
    // The server's answer to these lines as an offer, judged by the client that sent them.
    let offer_lines: Vec<&str> = text.split('\0').collect();
    if let Some(agreement) = negotiate(offer_lines.iter().copied()) {
        let mut header = Vec::new();
        agreement.write_header(&mut header);
        let value = header
            .strip_prefix(b"Sec-WebSocket-Extensions: ")
            .and_then(|v| v.strip_suffix(b"\r\n"))
            .expect("one header line");
        let answer = parse_answer([value], Offered::parse(CLIENT_OFFER));
        assert!(matches!(answer, Ok(Some(_))), "{answer:?}");
    }
});
