//! Which Redis Cluster hash slot a channel belongs to: CRC16 (XMODEM) of the channel, or of
//! its hash tag (the text between the first `{` and the next `}`, when not empty), modulo
//! 16384, exactly as Redis hashes keys and sharded pub/sub channels.

/// Hash slots in a Redis Cluster.
pub const SLOTS: usize = 16384;

/// The slot of `channel` (`CLUSTER KEYSLOT` gives the same number).
pub fn slot(channel: &[u8]) -> u16 {
    let hashed = hash_tag(channel).unwrap_or(channel);
    (crc16(hashed) as usize % SLOTS) as u16
}

/// The part of `key` between the first `{` and the next `}`, when that is not empty.
fn hash_tag(key: &[u8]) -> Option<&[u8]> {
    let open = key.iter().position(|&b| b == b'{')?;
    let rest = &key[open + 1..];
    let close = rest.iter().position(|&b| b == b'}')?;
    (close > 0).then(|| &rest[..close])
}

/// CRC-16/XMODEM (polynomial 0x1021, initial 0), bit by bit: channels are short and a
/// publish computes it once.
fn crc16(bytes: &[u8]) -> u16 {
    let mut crc: u16 = 0;
    for &byte in bytes {
        crc ^= u16::from(byte) << 8;
        for _ in 0..8 {
            crc = if crc & 0x8000 != 0 {
                (crc << 1) ^ 0x1021
            } else {
                crc << 1
            };
        }
    }
    crc
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn matches_the_slots_a_real_cluster_gives() {
        // `CLUSTER KEYSLOT <channel>` on a Redis 7.0 cluster.
        for (channel, want) in [
            ("ringws:a", 534),
            ("ringws:b", 12917),
            ("ringws:news", 15610),
            ("ringws:{user}.1", 5474),
            ("ringws:x{}y", 5671),
            ("ringws:{}", 13760),
            ("ringws:{a}b", 15495),
            ("foo", 12182),
            ("ringws:t0", 15511),
            ("ringws:t1", 11446),
            ("ringws:t2", 7381),
            ("ringws:t3", 3316),
            ("", 0),
            ("123456789", 12739),
        ] {
            assert_eq!(slot(channel.as_bytes()), want, "{channel:?}");
        }
        assert_eq!(slot(b"ringws:{a}b"), slot(b"a"), "the tag alone is hashed");
    }
}
