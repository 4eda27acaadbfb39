//! In-place XOR masking (RFC 6455 §5.3), word at a time.

/// XORs `data` with `mask`, where `data[0]` is at position `offset` (mod 4) of the masked payload.
/// Returns the new offset (`(offset + data.len()) % 4`) so a payload can be unmasked in pieces.
pub fn apply_mask(data: &mut [u8], mask: [u8; 4], offset: usize) -> usize {
    // Rotate the key so that `key[0]` applies to `data[0]`; then every 8-byte chunk starts at a
    // multiple of 4 past it and sees the same pattern `key ++ key`.
    let key = rotate_key(mask, offset % 4);
    let key64 = u64::from_ne_bytes([
        key[0], key[1], key[2], key[3], key[0], key[1], key[2], key[3],
    ]);

    let mut chunks = data.chunks_exact_mut(8);
    for chunk in &mut chunks {
        let mut word = [0u8; 8];
        word.copy_from_slice(chunk);
        chunk.copy_from_slice(&(u64::from_ne_bytes(word) ^ key64).to_ne_bytes());
    }
    for (i, byte) in chunks.into_remainder().iter_mut().enumerate() {
        *byte ^= key[i % 4];
    }
    (offset + data.len()) % 4
}

/// `mask` rotated left by `by` bytes: `[m[by], m[by+1], m[by+2], m[by+3]]` (indices mod 4).
fn rotate_key(mask: [u8; 4], by: usize) -> [u8; 4] {
    [
        mask[by % 4],
        mask[(by + 1) % 4],
        mask[(by + 2) % 4],
        mask[(by + 3) % 4],
    ]
}

#[cfg(test)]
mod tests {
    use super::*;

    fn naive(data: &mut [u8], mask: [u8; 4], offset: usize) {
        for (i, byte) in data.iter_mut().enumerate() {
            *byte ^= mask[(offset + i) % 4];
        }
    }

    /// Deterministic, non-repeating-looking test bytes.
    fn pattern(len: usize, seed: u32) -> Vec<u8> {
        let mut x = seed.wrapping_mul(2_654_435_761).wrapping_add(1);
        (0..len)
            .map(|_| {
                x ^= x << 13;
                x ^= x >> 17;
                x ^= x << 5;
                x as u8
            })
            .collect()
    }

    #[test]
    fn matches_naive_loop_for_many_lengths_offsets_and_alignments() {
        let mask = [0x37, 0xFA, 0x21, 0x3D];
        for len in 0..80 {
            for offset in 0..8 {
                for start in 0..8 {
                    let original = pattern(start + len, len as u32 * 31 + offset as u32);
                    let mut fast = original.clone();
                    let mut slow = original.clone();
                    let next = apply_mask(&mut fast[start..], mask, offset);
                    naive(&mut slow[start..], mask, offset);
                    assert_eq!(fast, slow, "len {len} offset {offset} start {start}");
                    assert_eq!(next, (offset + len) % 4);
                }
            }
        }
    }

    #[test]
    fn large_payload_matches_naive_loop() {
        let mask = [0x01, 0x80, 0xFF, 0x5A];
        for len in [1000, 4093, 65536 + 3] {
            let original = pattern(len, 7);
            let mut fast = original.clone();
            let mut slow = original.clone();
            apply_mask(&mut fast, mask, 3);
            naive(&mut slow, mask, 3);
            assert_eq!(fast, slow);
            assert_ne!(fast, original);
        }
    }

    #[test]
    fn masking_in_pieces_equals_masking_at_once() {
        let mask = [9, 8, 7, 6];
        let original = pattern(257, 3);
        let mut whole = original.clone();
        apply_mask(&mut whole, mask, 0);
        for split_a in [0, 1, 3, 5, 8, 13, 100] {
            for split_b in [split_a, split_a + 1, split_a + 7, 200, 257] {
                let mut pieces = original.clone();
                let (a, rest) = pieces.split_at_mut(split_a);
                let (b, c) = rest.split_at_mut(split_b - split_a);
                let offset = apply_mask(a, mask, 0);
                let offset = apply_mask(b, mask, offset);
                apply_mask(c, mask, offset);
                assert_eq!(pieces, whole, "splits {split_a} {split_b}");
            }
        }
    }

    #[test]
    fn masking_twice_restores_the_data() {
        let mask = [0xDE, 0xAD, 0xBE, 0xEF];
        let original = pattern(99, 11);
        let mut data = original.clone();
        apply_mask(&mut data, mask, 2);
        assert_ne!(data, original);
        apply_mask(&mut data, mask, 2);
        assert_eq!(data, original);
    }

    #[test]
    fn rfc_6455_example() {
        // §5.7: a masked "Hello".
        let mut data = [0x7f, 0x9f, 0x4d, 0x51, 0x58];
        assert_eq!(apply_mask(&mut data, [0x37, 0xfa, 0x21, 0x3d], 0), 1);
        assert_eq!(&data, b"Hello");
    }
}
