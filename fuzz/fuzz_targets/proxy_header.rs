//! Arbitrary bytes as the start of a connection behind a load balancer: the PROXY header parser
//! must answer every input with a header, "read more" or an error, never panic, never claim more
//! bytes than it was given or than `MAX_HEADER_BYTES`, and decide a header from its own bytes
//! alone.

#![no_main]

use libfuzzer_sys::fuzz_target;
use ringws::protocol::proxy_header::{parse, Parsed, ProxyError, MAX_HEADER_BYTES};

fuzz_target!(|data: &[u8]| {
    match parse(data) {
        Ok(Parsed::Complete { header, consumed }) => {
            assert!(consumed <= data.len());
            assert!(consumed <= MAX_HEADER_BYTES);
            assert_eq!(header.source.is_some(), header.destination.is_some());
            // What follows the header is the client's: it cannot change the verdict.
            assert_eq!(
                parse(&data[..consumed]),
                Ok(Parsed::Complete { header, consumed })
            );
            // A header is only decided on its last byte: every shorter prefix asks for more.
            for n in 0..consumed {
                assert_eq!(parse(&data[..n]), Ok(Parsed::Incomplete));
            }
        }
        Ok(Parsed::Incomplete) => assert!(data.len() < MAX_HEADER_BYTES),
        Err(error) => {
            assert!(ProxyError::LABELS.contains(&error.label()));
            assert!(!error.to_string().is_empty());
        }
    }
});
