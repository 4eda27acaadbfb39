//! Incremental UTF-8 validation across fragments, failing on the first invalid byte.

/// Validation state between chunks: holds at most 3 bytes of an incomplete code point.
#[derive(Clone, Copy, Debug, Default)]
pub struct Utf8Validator {
    // implementation-defined private fields
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct InvalidUtf8;

impl Utf8Validator {
    /// Feeds the next chunk. Fails as soon as the bytes seen so far cannot be the prefix of valid
    /// UTF-8 (so a bad first fragment fails before the rest arrives).
    pub fn feed(&mut self, chunk: &[u8]) -> Result<(), InvalidUtf8> {
        todo!()
    }
    /// Call at the end of the message: fails if a code point was left incomplete.
    pub fn finish(&mut self) -> Result<(), InvalidUtf8> {
        todo!()
    }
}

/// Validates a complete message in one go (the fast path for single-frame text messages).
pub fn validate(data: &[u8]) -> Result<(), InvalidUtf8> {
    todo!()
}
