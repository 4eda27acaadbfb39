//! What one publish looks like on a Redis channel: a 10-byte header, then the message as the
//! publisher sent it.
//!
//! | bytes | field |
//! | --- | --- |
//! | 0 | version, 1 |
//! | 1 | kind: `t` (text) or `b` (binary) |
//! | 2..10 | when the origin node accepted the publish: microseconds since the Unix epoch, big-endian u64 |
//! | 10.. | the message |
//!
//! The origin's time lets the receiving node record `ringws_fanout_latency_seconds` from the
//! acceptance on the origin node (across nodes this includes their clock difference).

use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use crate::protocol::MessageKind;

pub const VERSION: u8 = 1;
pub const HEADER_BYTES: usize = 10;

/// A message read back from a channel.
#[derive(Debug, PartialEq, Eq)]
pub struct Envelope<'a> {
    pub kind: MessageKind,
    pub origin_unix_us: u64,
    pub payload: &'a [u8],
}

/// Why a channel message is not one of ours: dropped and counted.
#[derive(Debug, PartialEq, Eq, thiserror::Error)]
pub enum EnvelopeError {
    #[error("shorter than the {HEADER_BYTES}-byte ringws header")]
    Short,
    #[error("version {0}, not {VERSION}")]
    Version(u8),
    #[error("kind byte {0:#04x} is neither t nor b")]
    Kind(u8),
}

/// The header and `payload`, as PUBLISH sends it.
pub fn encode(kind: MessageKind, origin_unix_us: u64, payload: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(HEADER_BYTES + payload.len());
    out.push(VERSION);
    out.push(match kind {
        MessageKind::Binary => b'b',
        _ => b't',
    });
    out.extend_from_slice(&origin_unix_us.to_be_bytes());
    out.extend_from_slice(payload);
    out
}

pub fn decode(bytes: &[u8]) -> Result<Envelope<'_>, EnvelopeError> {
    if bytes.len() < HEADER_BYTES {
        return Err(EnvelopeError::Short);
    }
    if bytes[0] != VERSION {
        return Err(EnvelopeError::Version(bytes[0]));
    }
    let kind = match bytes[1] {
        b't' => MessageKind::Text,
        b'b' => MessageKind::Binary,
        other => return Err(EnvelopeError::Kind(other)),
    };
    let mut time = [0u8; 8];
    time.copy_from_slice(&bytes[2..HEADER_BYTES]);
    Ok(Envelope {
        kind,
        origin_unix_us: u64::from_be_bytes(time),
        payload: &bytes[HEADER_BYTES..],
    })
}

/// Microseconds since the Unix epoch (0 on a clock before it).
pub fn unix_now_us() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_micros()).unwrap_or(u64::MAX))
}

/// The local instant matching `origin_unix_us`, given that `now` is `now_unix_us`: so the
/// latency clock starts at the origin's acceptance. An origin clock ahead of ours counts as now.
pub fn origin_instant(origin_unix_us: u64, now_unix_us: u64, now: Instant) -> Instant {
    let behind = Duration::from_micros(now_unix_us.saturating_sub(origin_unix_us));
    now.checked_sub(behind).unwrap_or(now)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips_and_refuses_strangers() {
        let bytes = encode(MessageKind::Binary, 0x0102_0304_0506_0708, b"\x00hi");
        assert_eq!(
            &bytes[..HEADER_BYTES],
            b"\x01b\x01\x02\x03\x04\x05\x06\x07\x08"
        );
        assert_eq!(
            decode(&bytes),
            Ok(Envelope {
                kind: MessageKind::Binary,
                origin_unix_us: 0x0102_0304_0506_0708,
                payload: b"\x00hi",
            })
        );
        let empty = encode(MessageKind::Text, 7, b"");
        assert_eq!(decode(&empty).unwrap().payload, b"");
        assert_eq!(decode(&empty).unwrap().kind, MessageKind::Text);
        assert_eq!(decode(b"hello"), Err(EnvelopeError::Short));
        assert_eq!(decode(b"hello world"), Err(EnvelopeError::Version(b'h')));
        assert_eq!(decode(b"\x01x12345678"), Err(EnvelopeError::Kind(b'x')));
    }

    #[test]
    fn the_latency_clock_starts_at_the_origin() {
        let now = Instant::now();
        let earlier = origin_instant(1_000_000, 1_250_000, now);
        assert_eq!(now - earlier, Duration::from_millis(250));
        assert_eq!(
            origin_instant(2_000_000, 1_000_000, now),
            now,
            "origin clock ahead"
        );
    }
}
