//! Incremental UTF-8 validation across fragments, failing on the first invalid byte.

use simdutf8::compat;

/// Validation state between chunks: holds at most 3 bytes of an incomplete code point.
#[derive(Clone, Copy, Debug, Default)]
pub struct Utf8Validator {
    /// The start of a code point cut off by the end of the previous chunk. Always a prefix that
    /// can still become valid.
    pending: [u8; 3],
    /// How many bytes of `pending` are in use (0..=3).
    pending_len: u8,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct InvalidUtf8;

/// Length of the code point a lead byte starts; 0 for bytes that cannot start one.
fn sequence_len(lead: u8) -> usize {
    match lead {
        0x00..=0x7F => 1,
        0xC2..=0xDF => 2,
        0xE0..=0xEF => 3,
        0xF0..=0xF4 => 4,
        _ => 0,
    }
}

impl Utf8Validator {
    /// Feeds the next chunk. Fails as soon as the bytes seen so far cannot be the prefix of valid
    /// UTF-8 (so a bad first fragment fails before the rest arrives).
    pub fn feed(&mut self, chunk: &[u8]) -> Result<(), InvalidUtf8> {
        let rest = self.complete_pending(chunk)?;
        if self.pending_len != 0 {
            // The chunk ended while still inside the pending code point.
            return Ok(());
        }
        match compat::from_utf8(rest) {
            Ok(_) => Ok(()),
            // `error_len() == None`: the chunk ends in a prefix that may still become valid
            // (std and simdutf8 already reject e.g. `ED A0` or `F4 90` there with `Some`).
            Err(e) if e.error_len().is_none() => {
                let tail = &rest[e.valid_up_to()..];
                debug_assert!((1..=3).contains(&tail.len()));
                self.pending[..tail.len()].copy_from_slice(tail);
                self.pending_len = tail.len() as u8;
                Ok(())
            }
            Err(_) => Err(InvalidUtf8),
        }
    }

    /// Extends the pending code point with the first bytes of `chunk`; returns the rest of the
    /// chunk. Leaves `pending_len != 0` if the chunk was too short to complete it.
    fn complete_pending<'c>(&mut self, chunk: &'c [u8]) -> Result<&'c [u8], InvalidUtf8> {
        let have = usize::from(self.pending_len);
        if have == 0 {
            return Ok(chunk);
        }
        let need = sequence_len(self.pending[0]) - have;
        let take = need.min(chunk.len());
        let mut code_point = [0u8; 4];
        code_point[..have].copy_from_slice(&self.pending[..have]);
        code_point[have..have + take].copy_from_slice(&chunk[..take]);
        let candidate = &code_point[..have + take];
        match compat::from_utf8(candidate) {
            Ok(_) => self.pending_len = 0,
            Err(e) if e.error_len().is_none() => {
                self.pending[..candidate.len()].copy_from_slice(candidate);
                self.pending_len = candidate.len() as u8;
            }
            Err(_) => return Err(InvalidUtf8),
        }
        Ok(&chunk[take..])
    }

    /// Call at the end of the message: fails if a code point was left incomplete.
    pub fn finish(&mut self) -> Result<(), InvalidUtf8> {
        let incomplete = self.pending_len != 0;
        *self = Utf8Validator::default();
        if incomplete {
            Err(InvalidUtf8)
        } else {
            Ok(())
        }
    }
}

/// Validates a complete message in one go (the fast path for single-frame text messages).
pub fn validate(data: &[u8]) -> Result<(), InvalidUtf8> {
    simdutf8::basic::from_utf8(data)
        .map(|_| ())
        .map_err(|_| InvalidUtf8)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Autobahn section 6 style vectors that must be rejected.
    const INVALID: &[&[u8]] = &[
        // Lone continuation bytes and bytes that never appear in UTF-8.
        b"\x80",
        b"\xBF",
        b"a\x80b",
        b"\xFE",
        b"\xFF",
        b"\xFE\xFE\xFF\xFF",
        // Lead bytes that are always invalid: C0/C1 (overlong 2-byte), F5..F7 (> U+10FFFF).
        b"\xC0\x80",
        b"\xC1\xBF",
        b"\xF5\x80\x80\x80",
        b"\xF7\xBF\xBF\xBF",
        b"\xF8\x88\x80\x80\x80",
        b"\xFC\x84\x80\x80\x80\x80",
        // Overlong encodings.
        b"\xC0\xAF",
        b"\xE0\x80\xAF",
        b"\xE0\x9F\xBF",
        b"\xF0\x80\x80\xAF",
        b"\xF0\x8F\xBF\xBF",
        b"\xF8\x80\x80\x80\xAF",
        // UTF-16 surrogates, single and paired.
        b"\xED\xA0\x80",
        b"\xED\xAD\xBF",
        b"\xED\xAE\x80",
        b"\xED\xAF\xBF",
        b"\xED\xB0\x80",
        b"\xED\xBE\x80",
        b"\xED\xBF\xBF",
        b"\xED\xA0\x80\xED\xB0\x80",
        b"\xED\xAF\xBF\xED\xBF\xBF",
        // Above U+10FFFF.
        b"\xF4\x90\x80\x80",
        b"\xF4\xBF\xBF\xBF",
        // Truncated sequences followed by more data.
        b"\xC2a",
        b"\xE0\xA0a",
        b"\xF0\x90\x80a",
        b"\xE2\x82",
        b"\xF0\x9F\x98",
        b"\xCE\xBA\xE1\xBD\xB9\xCF\x83\xCE\xBC\xCE\xB5\xED\xA0\x80edited",
        b"\xCE\xBA\xE1\xBD\xB9\xCF\x83\xCE\xBC\xCE\xB5\xF4\x90\x80\x80edited",
    ];

    /// Valid sequences, including the boundary code points.
    const VALID: &[&[u8]] = &[
        b"",
        b"Hello-\xC2\xB5@\xC3\x9F\xC3\xB6\xC3\xA4\xC3\xBC\xC3\xA0\xC3\xA1-UTF-8!!",
        b"\xCE\xBA\xE1\xBD\xB9\xCF\x83\xCE\xBC\xCE\xB5",
        b"\x00",
        b"\x7F",
        b"\xC2\x80",
        b"\xDF\xBF",
        b"\xE0\xA0\x80",
        b"\xED\x9F\xBF",
        b"\xEE\x80\x80",
        b"\xEF\xBF\xBD",
        b"\xEF\xBF\xBF",
        b"\xF0\x90\x80\x80",
        b"\xF0\x9F\x98\x80",
        b"\xF4\x8F\xBF\xBF",
    ];

    fn feed_in_pieces(pieces: &[&[u8]]) -> Result<(), InvalidUtf8> {
        let mut v = Utf8Validator::default();
        for piece in pieces {
            v.feed(piece)?;
        }
        v.finish()
    }

    #[test]
    fn whole_message_validation_matches_std() {
        for &bytes in VALID {
            assert_eq!(validate(bytes), Ok(()), "{bytes:x?}");
            assert_eq!(feed_in_pieces(&[bytes]), Ok(()), "{bytes:x?}");
        }
        for &bytes in INVALID {
            assert!(
                std::str::from_utf8(bytes).is_err(),
                "vector {bytes:x?} is valid"
            );
            assert_eq!(validate(bytes), Err(InvalidUtf8), "{bytes:x?}");
            assert_eq!(feed_in_pieces(&[bytes]), Err(InvalidUtf8), "{bytes:x?}");
        }
    }

    #[test]
    fn every_two_and_three_way_split_agrees_with_std() {
        for &bytes in VALID.iter().chain(INVALID) {
            let expected = std::str::from_utf8(bytes)
                .map(|_| ())
                .map_err(|_| InvalidUtf8);
            for a in 0..=bytes.len() {
                for b in a..=bytes.len() {
                    let got = feed_in_pieces(&[&bytes[..a], &bytes[a..b], &bytes[b..]]);
                    assert_eq!(got, expected, "{bytes:x?} split at {a}, {b}");
                }
            }
        }
    }

    #[test]
    fn byte_at_a_time_agrees_with_std() {
        for &bytes in VALID.iter().chain(INVALID) {
            let pieces: Vec<&[u8]> = bytes.chunks(1).collect();
            let expected = std::str::from_utf8(bytes).is_ok();
            assert_eq!(feed_in_pieces(&pieces).is_ok(), expected, "{bytes:x?}");
        }
    }

    #[test]
    fn four_byte_sequences_split_at_every_position() {
        for cp in ['\u{10000}', '😀', '\u{10FFFF}', '𝄞'] {
            let mut text = String::from("ab");
            text.push(cp);
            text.push('c');
            let bytes = text.as_bytes();
            for cut in 0..=bytes.len() {
                let mut v = Utf8Validator::default();
                assert_eq!(v.feed(&bytes[..cut]), Ok(()), "{cp:?} cut at {cut}");
                assert_eq!(v.feed(&bytes[cut..]), Ok(()), "{cp:?} cut at {cut}");
                assert_eq!(v.finish(), Ok(()));
            }
        }
    }

    #[test]
    fn truncated_code_point_at_the_end_fails_only_at_finish() {
        for prefix in [&b"\xC3"[..], b"\xE2\x82", b"\xF0\x9F\x98", b"ok\xF4\x8F"] {
            let mut v = Utf8Validator::default();
            assert_eq!(v.feed(prefix), Ok(()), "{prefix:x?} can still become valid");
            assert_eq!(v.finish(), Err(InvalidUtf8), "{prefix:x?} left incomplete");
        }
    }

    #[test]
    fn impossible_prefixes_fail_immediately() {
        // Each of these ends a chunk and can never be completed into valid UTF-8.
        let cases: &[&[u8]] = &[
            b"\xC0",
            b"\xC1",
            b"\xF5",
            b"\xF8",
            b"\xFF",
            b"\x80",
            b"\xED\xA0",
            b"\xED\xBF",
            b"\xE0\x80",
            b"\xE0\x9F",
            b"\xF0\x80",
            b"\xF0\x8F",
            b"\xF4\x90",
            b"\xF4\xBF",
            b"abc\xED\xA0",
            b"\xCE\xBA\xE1\xBD\xB9\xCF\x83\xCE\xBC\xCE\xB5\xF4\x90",
        ];
        for &prefix in cases {
            let mut v = Utf8Validator::default();
            assert_eq!(v.feed(prefix), Err(InvalidUtf8), "{prefix:x?}");
        }
    }

    #[test]
    fn impossible_continuation_of_pending_bytes_fails_immediately() {
        let cases: &[(&[u8], &[u8])] = &[
            (b"\xED", b"\xA0"), // surrogate
            (b"\xF4", b"\x90"), // > U+10FFFF
            (b"\xE0", b"\x80"), // overlong
            (b"\xF0", b"\x8F"), // overlong
            (b"\xC3", b"a"),    // truncated
            (b"\xF0\x9F", b"\x98a"),
        ];
        for &(first, second) in cases {
            let mut v = Utf8Validator::default();
            assert_eq!(v.feed(first), Ok(()), "{first:x?} is a valid prefix");
            assert_eq!(v.feed(second), Err(InvalidUtf8), "{first:x?} {second:x?}");
        }
        // Byte at a time through a pending code point into an invalid byte after it.
        let mut v = Utf8Validator::default();
        for byte in [0xF0, 0x9F, 0x98] {
            assert_eq!(v.feed(&[byte]), Ok(()));
        }
        assert_eq!(v.feed(b"\x80\xFF"), Err(InvalidUtf8));
    }

    #[test]
    fn empty_chunks_change_nothing() {
        let mut v = Utf8Validator::default();
        v.feed(b"\xE2").unwrap();
        v.feed(b"").unwrap();
        v.feed(b"\x82").unwrap();
        v.feed(b"").unwrap();
        v.feed(b"\xAC").unwrap();
        assert_eq!(v.finish(), Ok(()));
    }

    #[test]
    fn finish_resets_for_the_next_message() {
        let mut v = Utf8Validator::default();
        v.feed(b"\xE2\x82").unwrap();
        assert_eq!(v.finish(), Err(InvalidUtf8));
        v.feed(b"fresh").unwrap();
        assert_eq!(v.finish(), Ok(()));
    }

    #[test]
    fn validator_is_tiny() {
        assert!(std::mem::size_of::<Utf8Validator>() <= 4);
    }
}
