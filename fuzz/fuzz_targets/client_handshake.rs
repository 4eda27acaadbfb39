//! Arbitrary bytes as a server's answer to the upgrade request: the client's response parser
//! must answer every input with a head, "read more" or an error, and the §4.1 checks must give
//! a verdict on every head, never panicking.

#![no_main]

use libfuzzer_sys::fuzz_target;
use ringws::protocol::client_handshake::{
    check_upgrade, parse_response, response_status, ResponseError, MAX_RESPONSE_HEAD_BYTES,
};
use ringws::protocol::handshake::accept_key;

fuzz_target!(|data: &[u8]| {
    let status = response_status(data);
    match parse_response(data) {
        Ok(Some(head)) => {
            assert!(head.head_len <= data.len().min(MAX_RESPONSE_HEAD_BYTES));
            assert_eq!(status, Some(head.status));
            let accept = accept_key(b"dGhlIHNhbXBsZSBub25jZQ==");
            for (protocols, extensions) in [
                (&[][..], &[][..]),
                (&["chat", "superchat"][..], &["permessage-deflate"][..]),
            ] {
                if let Ok(upgraded) = check_upgrade(&head, &accept, protocols, extensions) {
                    assert_eq!(head.status, 101);
                    assert_eq!(upgraded.head_len, head.head_len);
                    assert!(upgraded.protocol.is_none_or(|p| protocols.contains(&p)));
                    assert!(upgraded
                        .extensions
                        .iter()
                        .all(|e| extensions.iter().any(|o| o.eq_ignore_ascii_case(e))));
                }
            }
        }
        Ok(None) => assert!(data.len() < MAX_RESPONSE_HEAD_BYTES),
        Err(ResponseError::TooLarge { status: found }) => assert_eq!(found, status),
        Err(ResponseError::NotHttp) => {}
    }
});
