//! Arbitrary bytes as the start of a connection: the upgrade parser must answer every input with
//! a request, "read more" or a refusal, and never panic, under tight and default limits.

#![no_main]

use libfuzzer_sys::fuzz_target;
use ringws::protocol::handshake::{parse_request, write_accept, write_refusal, HandshakeLimits};

fuzz_target!(|data: &[u8]| {
    let limits = [
        HandshakeLimits {
            max_head_bytes: 64,
            max_headers: 4,
        },
        HandshakeLimits::default(),
    ];
    let mut out = Vec::with_capacity(512);
    for limits in &limits {
        out.clear();
        match parse_request(data, limits) {
            Ok(Some(request)) => {
                assert!(request.head_len <= data.len());
                assert!(request.head_len <= limits.max_head_bytes);
                assert!(request.path.starts_with('/'));
                // Every Sec-WebSocket-Protocol line is found again, trimmed, first one first.
                let lines: Vec<&str> = request.protocol_lines().collect();
                assert_eq!(lines.len(), request.protocol_line_count as usize);
                assert_eq!(lines.first().copied(), request.protocols);
                assert!(lines.iter().all(|l| l.trim_ascii() == *l));
                write_accept(&mut out, request.key, request.protocols);
                assert!(out.ends_with(b"\r\n\r\n"));
            }
            Ok(None) => assert!(data.len() <= limits.max_head_bytes),
            Err(refusal) => {
                write_refusal(&mut out, &refusal);
                assert!(out.ends_with(b"\n"));
            }
        }
    }
});
