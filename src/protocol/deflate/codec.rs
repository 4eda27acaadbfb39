//! One compressor and one decompressor per thread (each reactor is one pinned thread, so: per
//! core), with their scratch buffers. Messages are compressed and inflated whole and on their
//! own (no context takeover), so nothing survives a message and a connection holds nothing.
//!
//! Compressing is zlib-rs's (through `flate2`), with a sync flush: the message ends with the
//! empty stored block `00 00 ff ff`, removed before sending (RFC 7692 §7.2.1), which is what
//! every peer expects. (libdeflate compresses faster, but only into streams that end with a
//! final block; RFC 7692 §7.2.3.3 allows those, yet some peers stall on them, so it is not used
//! to send.) Inflating is libdeflate's (through `libdeflater`), the faster of the two on the
//! JSON corpus (docs/benchmarks.md): it works on whole buffers, which suits whole messages, and
//! stops as soon as its output buffer is full, which bounds it. A received message is given the
//! `00 00 ff ff` back and then an empty final block, which libdeflate needs to see the end.

use std::cell::RefCell;

use flate2::{Compress, FlushCompress, Status};
use libdeflater::{DecompressionError, Decompressor};

/// Appended to a received message before inflating it: the empty stored block the sender
/// removed (RFC 7692 §7.2.2), then an empty final block, which libdeflate needs to see the end.
const TRAILER: [u8; 6] = [0x00, 0x00, 0xff, 0xff, 0x03, 0x00];

/// First output size tried for a message of `n` compressed bytes: enough for the ratios of
/// text and JSON, small enough that preparing it costs little. A larger message doubles it
/// (times four) until it fits or reaches the limit.
fn first_guess(n: usize) -> usize {
    n.saturating_mul(8).max(4 << 10)
}

/// A scratch buffer kept past this is freed instead of kept for the next message, so one large
/// message does not pin its size on the core for good.
const KEEP_SCRATCH_BYTES: usize = 1 << 20;

/// Why a received compressed message could not be inflated.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum InflateError {
    /// It inflates beyond the limit: stopped as soon as the output reached the limit.
    TooBig,
    /// Not a valid DEFLATE stream.
    Corrupt,
}

/// What a sync flush ends with; removed from every compressed message.
const SYNC_TAIL: [u8; 4] = [0x00, 0x00, 0xff, 0xff];

struct Codec {
    /// The compressor and the level it was made for (made on first use).
    compressor: Option<(u8, Compress)>,
    decompressor: Decompressor,
    /// Compressed output, kept at its largest length so it needs no zeroing per message.
    deflated: Vec<u8>,
    /// A received message with [`TRAILER`] appended.
    input: Vec<u8>,
    /// The inflated message's buffer, lent out while the message is delivered ([`inflate`]).
    inflated: Vec<u8>,
}

thread_local! {
    static CODEC: RefCell<Codec> = RefCell::new(Codec {
        compressor: None,
        decompressor: Decompressor::new(),
        deflated: Vec::new(),
        input: Vec::new(),
        inflated: Vec::new(),
    });
}

/// Compresses `payload` as one raw DEFLATE stream at `level` (1..=9) and calls `f` with the
/// result, or with `None` when compressing does not make it smaller (the message then goes out
/// as it is). The compressed bytes live in this thread's scratch buffer during `f` only.
pub fn with_compressed<R>(payload: &[u8], level: u8, f: impl FnOnce(Option<&[u8]>) -> R) -> R {
    let (n, deflated) = CODEC.with(|codec| {
        let mut codec = codec.borrow_mut();
        let codec = &mut *codec;
        if codec.compressor.as_ref().is_none_or(|(l, _)| *l != level) {
            let level = flate2::Compression::new(u32::from(level.clamp(1, 9)));
            codec.compressor = Some((level.level() as u8, Compress::new(level, false)));
        }
        let (_, compressor) = codec.compressor.as_mut().expect("made above");
        // Worth it only if smaller than the payload: room for that and the sync flush's tail.
        let room = payload.len() - payload.len().min(1) + SYNC_TAIL.len();
        if codec.deflated.len() < room {
            codec.deflated.resize(room, 0);
        }
        compressor.reset();
        let status = compressor.compress(payload, &mut codec.deflated[..room], FlushCompress::Sync);
        let whole = compressor.total_in() == payload.len() as u64;
        let out = compressor.total_out() as usize;
        let done = matches!(status, Ok(Status::Ok)) && whole && out < room;
        let n = match codec.deflated[..out].strip_suffix(&SYNC_TAIL) {
            Some(body) if done && !payload.is_empty() => body.len(),
            _ => 0,
        };
        (n, std::mem::take(&mut codec.deflated))
    });
    let result = f((n > 0).then(|| &deflated[..n]));
    CODEC.with(|codec| codec.borrow_mut().deflated = deflated);
    result
}

/// Inflates one received message (its payload as sent, without the trailer) into this thread's
/// scratch buffer, stopping as soon as the output would pass `limit` bytes. The buffer is the
/// caller's until it hands it back with [`recycle`].
pub fn inflate(compressed: &[u8], limit: usize) -> Result<Vec<u8>, InflateError> {
    if compressed.is_empty() {
        return Ok(Vec::new()); // an empty message may be sent as an empty compressed payload
    }
    CODEC.with(|codec| {
        let mut codec = codec.borrow_mut();
        let codec = &mut *codec;
        codec.input.clear();
        codec.input.extend_from_slice(compressed);
        codec.input.extend_from_slice(&TRAILER);
        let mut out = std::mem::take(&mut codec.inflated);
        let mut size = first_guess(compressed.len()).min(limit);
        loop {
            out.clear();
            if out.try_reserve(size).is_err() {
                return Err(InflateError::TooBig);
            }
            out.resize(size, 0);
            match codec
                .decompressor
                .deflate_decompress(&codec.input, &mut out)
            {
                Ok(n) => {
                    out.truncate(n);
                    return Ok(out);
                }
                Err(DecompressionError::BadData) => {
                    codec.inflated = out;
                    return Err(InflateError::Corrupt);
                }
                Err(DecompressionError::InsufficientSpace) if size >= limit => {
                    codec.inflated = out;
                    return Err(InflateError::TooBig);
                }
                Err(DecompressionError::InsufficientSpace) => {
                    size = size.saturating_mul(4).min(limit);
                }
            }
        }
    })
}

/// Takes back a buffer lent by [`inflate`] for the next message (unless it grew large).
pub fn recycle(buf: Vec<u8>) {
    if buf.capacity() <= KEEP_SCRATCH_BYTES {
        CODEC.with(|codec| {
            let mut codec = codec.borrow_mut();
            if buf.capacity() > codec.inflated.capacity() {
                codec.inflated = buf;
            }
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn deflate(payload: &[u8]) -> Vec<u8> {
        with_compressed(payload, 6, |c| c.expect("compressible").to_vec())
    }

    fn json(n: usize) -> Vec<u8> {
        let mut s = String::new();
        let mut i = 0;
        while s.len() < n {
            s.push_str(&format!(
                "{{\"id\":{i},\"price\":{}.25,\"side\":\"buy\"}},",
                i * 7
            ));
            i += 1;
        }
        s.truncate(n);
        s.into_bytes()
    }

    #[test]
    fn a_message_round_trips() {
        for n in [200, 1024, 16 << 10, 300 << 10] {
            let payload = json(n);
            let compressed = deflate(&payload);
            assert!(compressed.len() < payload.len() / 2, "{n}");
            let inflated = inflate(&compressed, 1 << 20).unwrap();
            assert_eq!(inflated, payload);
            recycle(inflated);
        }
    }

    #[test]
    fn an_incompressible_payload_is_left_as_it_is() {
        let mut x = 0x1234_5678_u32;
        let noise: Vec<u8> = (0..500)
            .map(|_| {
                x ^= x << 13;
                x ^= x >> 17;
                x ^= x << 5;
                x as u8
            })
            .collect();
        assert!(with_compressed(&noise, 6, |c| c.is_none()));
        assert!(with_compressed(b"", 6, |c| c.is_none()));
    }

    #[test]
    fn a_sync_flushed_stream_inflates() {
        // "Hello" as RFC 7692 §7.2.3.1 shows it: a non-final block, 00 00 ff ff removed.
        let hello = [0xf2, 0x48, 0xcd, 0xc9, 0xc9, 0x07, 0x00];
        assert_eq!(inflate(&hello, 100).unwrap(), b"Hello");
        // The same as an uncompressed (stored) block, §7.2.3.2.
        let stored = [
            0x00, 0x05, 0x00, 0xfa, 0xff, 0x48, 0x65, 0x6c, 0x6c, 0x6f, 0x00,
        ];
        assert_eq!(inflate(&stored, 100).unwrap(), b"Hello");
        assert_eq!(inflate(&[], 100).unwrap(), b"");
    }

    #[test]
    fn inflating_stops_at_the_limit() {
        let zeros = vec![0u8; 1 << 20];
        let bomb = deflate(&zeros);
        assert!(bomb.len() < 2 << 10, "{}", bomb.len());
        assert_eq!(inflate(&bomb, 1 << 20).unwrap().len(), 1 << 20);
        assert_eq!(inflate(&bomb, (1 << 20) - 1), Err(InflateError::TooBig));
        assert_eq!(inflate(&bomb, 100), Err(InflateError::TooBig));
    }

    #[test]
    fn garbage_is_corrupt() {
        assert_eq!(
            inflate(&[0xff, 0xff, 0xff, 0xff], 100),
            Err(InflateError::Corrupt)
        );
        let truncated = &deflate(&json(1000))[..20];
        assert!(inflate(truncated, 1 << 20).is_err());
    }
}
