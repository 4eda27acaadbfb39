//! In-place XOR masking (RFC 6455 §5.3), word at a time.

/// XORs `data` with `mask`, where `data[0]` is at position `offset` (mod 4) of the masked payload.
/// Returns the new offset (`(offset + data.len()) % 4`) so a payload can be unmasked in pieces.
pub fn apply_mask(data: &mut [u8], mask: [u8; 4], offset: usize) -> usize {
    todo!()
}
