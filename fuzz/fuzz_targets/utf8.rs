//! `Utf8Validator` over arbitrary chunkings must agree with `std::str::from_utf8`, and must fail
//! no later than the chunk holding the first byte std reports as invalid.
//!
//! Input layout: `[cut_count, cut * cut_count, text...]`.

#![no_main]

use libfuzzer_sys::fuzz_target;
use ringws::protocol::utf8::{validate, Utf8Validator};

fuzz_target!(|data: &[u8]| {
    let Some((&cut_count, rest)) = data.split_first() else {
        return;
    };
    let cut_count = usize::from(cut_count % 32).min(rest.len());
    let (cut_bytes, text) = rest.split_at(cut_count);
    let mut cuts: Vec<usize> = cut_bytes
        .iter()
        .map(|&c| usize::from(c) % (text.len() + 1))
        .collect();
    cuts.sort_unstable();

    let expected = std::str::from_utf8(text);
    assert_eq!(validate(text).is_ok(), expected.is_ok());

    let mut validator = Utf8Validator::default();
    let mut start = 0;
    let mut failed_at = None;
    for end in cuts.into_iter().chain(std::iter::once(text.len())) {
        if validator.feed(&text[start..end]).is_err() {
            failed_at = Some(end);
            break;
        }
        start = end;
    }
    match (expected, failed_at) {
        (Ok(_), None) => assert!(validator.finish().is_ok(), "valid text rejected at finish"),
        (Ok(_), Some(end)) => panic!("valid text rejected in the chunk ending at {end}"),
        (Err(e), None) => {
            // Only an incomplete final code point may survive until finish().
            assert!(
                e.error_len().is_none(),
                "invalid byte at {} accepted",
                e.valid_up_to()
            );
            assert!(
                validator.finish().is_err(),
                "truncated text accepted at finish"
            );
        }
        (Err(e), Some(end)) => {
            assert!(
                e.error_len().is_some(),
                "truncated text rejected before finish"
            );
            // Fail fast: the shortest prefix that std already rejects outright must end inside
            // the failing chunk, not in an earlier one (accepted) or a later one (too late).
            let impossible_from = (e.valid_up_to() + 1..=text.len())
                .find(|&k| matches!(std::str::from_utf8(&text[..k]), Err(e) if e.error_len().is_some()))
                .expect("std found an error");
            assert!(
                start < impossible_from && impossible_from <= end,
                "failed in chunk {start}..{end}, expected the one holding byte {}",
                impossible_from - 1
            );
        }
    }
});
