//! Server → client frames for the load generators: the shared client [`Reader`] (every RFC 6455
//! check a client makes) fed whole frames only, so it delivers each message in place and no
//! message allocates. A frame split across reads is completed in a buffer the connection keeps
//! and reuses. (A fragmented message is still gathered by the reader in a buffer of its own.)

use crate::protocol::frame::{decode_header_with, Opcode};
use crate::protocol::reader::{Event, Limits, ProtocolError, Reader};
use crate::protocol::Role;

/// Largest control frame payload (RFC 6455 §5.5).
pub const MAX_CONTROL_PAYLOAD: usize = 125;

/// Per-connection receive state. Holds no heap memory until a frame arrives split.
#[derive(Debug)]
pub struct Receiver {
    reader: Reader,
    limits: Limits,
    /// The start of one frame whose end has not arrived yet; or, with `carry_read`, a whole
    /// frame whose event was handed out. Cleared, not freed, once read.
    carry: Vec<u8>,
    carry_read: bool,
    /// permessage-deflate was negotiated: RSV1 marks a compressed message, inflated (with the
    /// thread's codec, as the server does) before it is compared.
    deflate: bool,
}

impl Receiver {
    pub fn new(limits: Limits) -> Receiver {
        Receiver {
            reader: Reader::new(Role::Client),
            limits,
            carry: Vec::new(),
            carry_read: false,
            deflate: false,
        }
    }

    /// Reads compressed messages from now on (the server accepted permessage-deflate); called
    /// once, right after the 101, before any frame.
    pub fn set_deflate(&mut self, on: bool) {
        self.deflate = on;
        self.reader = std::mem::take(&mut self.reader).with_deflate(on);
    }

    /// The next event in `data[*pos..]`, advancing `*pos` past the bytes it used. `Ok(None)`:
    /// `data` is used up (the start of a frame is kept for the next call). After an `Err`, fail
    /// the connection.
    pub fn next<'a>(
        &'a mut self,
        data: &'a mut [u8],
        pos: &mut usize,
    ) -> Result<Option<Event<'a>>, ProtocolError> {
        if std::mem::take(&mut self.carry_read) {
            self.carry.clear();
        }
        if !self.carry.is_empty() {
            let Some(completes_event) = self.complete_carried(data, pos)? else {
                return Ok(None);
            };
            if completes_event {
                self.carry_read = true;
                return Ok(self.reader.next(&mut self.carry, &self.limits)?.event);
            }
            self.reader.next(&mut self.carry, &self.limits)?;
            self.carry.clear();
        }
        loop {
            let rest = &data[*pos..];
            match frame_extent(rest, &self.limits, self.deflate)? {
                Some((len, completes_event)) if len <= rest.len() => {
                    let frame = *pos..*pos + len;
                    *pos += len;
                    if completes_event {
                        return Ok(self.reader.next(&mut data[frame], &self.limits)?.event);
                    }
                    self.reader.next(&mut data[frame], &self.limits)?;
                }
                _ => {
                    self.carry.extend_from_slice(rest);
                    *pos = data.len();
                    return Ok(None);
                }
            }
        }
    }

    /// Moves bytes from `data` to the carried frame until it is whole: then `Some(completes
    /// event)`; `None` when `data` ran out first.
    fn complete_carried(
        &mut self,
        data: &[u8],
        pos: &mut usize,
    ) -> Result<Option<bool>, ProtocolError> {
        loop {
            match frame_extent(&self.carry, &self.limits, self.deflate)? {
                Some((len, completes_event)) => {
                    let take = len.saturating_sub(self.carry.len()).min(data.len() - *pos);
                    self.carry.extend_from_slice(&data[*pos..*pos + take]);
                    *pos += take;
                    return Ok((self.carry.len() == len).then_some(completes_event));
                }
                // An incomplete header takes one byte at a time, so none of the next frame.
                None if *pos < data.len() => {
                    self.carry.push(data[*pos]);
                    *pos += 1;
                }
                None => return Ok(None),
            }
        }
    }
}

/// The length of the frame at the start of `bytes`, and whether reading it completes an event
/// (a control frame, or the last frame of a message); `None` while the header is incomplete
/// (or `bytes` empty). Frames over the size limit are refused here, before any is carried.
fn frame_extent(
    bytes: &[u8],
    limits: &Limits,
    deflate: bool,
) -> Result<Option<(usize, bool)>, ProtocolError> {
    let Some(header) = decode_header_with(bytes, deflate)? else {
        return Ok(None);
    };
    if header.payload_len > limits.max_frame_size {
        return Err(ProtocolError::too_big("frame exceeds max_frame_size"));
    }
    let len = usize::try_from(header.payload_len)
        .ok()
        .and_then(|payload| payload.checked_add(header.header_len))
        .ok_or(ProtocolError::too_big("frame exceeds max_frame_size"))?;
    Ok(Some((len, header.fin || header.opcode.is_control())))
}

/// An event of `ringws bench`'s echo loop, owned so the connection can act on it.
#[derive(Debug, PartialEq, Eq)]
pub enum RxEvent {
    /// A complete data message; `matches` is true when its opcode, length and every byte equal
    /// the message sent.
    Message {
        matches: bool,
    },
    Ping {
        payload: [u8; MAX_CONTROL_PAYLOAD],
        len: u8,
    },
    Pong,
    /// A close frame; `None` when it had no status code.
    Close(Option<u16>),
}

impl RxEvent {
    /// `event`, a message compared with `expected` (sent with `expected_opcode`).
    pub fn from_event(event: Event<'_>, expected: &[u8], expected_opcode: Opcode) -> RxEvent {
        match event {
            Event::Message(kind, bytes) => RxEvent::Message {
                matches: kind.opcode() == expected_opcode && bytes == expected,
            },
            Event::Ping(bytes) => {
                let mut payload = [0u8; MAX_CONTROL_PAYLOAD];
                let len = bytes.len().min(MAX_CONTROL_PAYLOAD);
                payload[..len].copy_from_slice(&bytes[..len]);
                RxEvent::Ping {
                    payload,
                    len: len as u8,
                }
            }
            Event::Pong(_) => RxEvent::Pong,
            Event::Close { code, .. } => RxEvent::Close(code.map(|c| c.0)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::protocol::frame::encode_server_header;
    use crate::protocol::MAX_HEADER_LEN;

    fn frame(fin: bool, opcode: Opcode, payload: &[u8]) -> Vec<u8> {
        let mut header = [0u8; MAX_HEADER_LEN];
        let n = encode_server_header(&mut header, fin, opcode, payload.len() as u64);
        [&header[..n], payload].concat()
    }

    /// Feeds `wire` in reads of `chunk` bytes; the events, each message compared with `expected`.
    fn events(
        wire: &[u8],
        chunk: usize,
        expected: &[u8],
    ) -> (Receiver, Result<Vec<RxEvent>, ProtocolError>) {
        let mut rx = Receiver::new(Limits::default());
        let mut out = Vec::new();
        for read in wire.chunks(chunk) {
            let mut read = read.to_vec();
            let mut pos = 0;
            loop {
                match rx.next(&mut read, &mut pos) {
                    Ok(Some(e)) => out.push(RxEvent::from_event(e, expected, Opcode::Binary)),
                    Ok(None) => break,
                    Err(e) => return (rx, Err(e)),
                }
            }
            assert_eq!(pos, read.len(), "all bytes consumed");
        }
        (rx, Ok(out))
    }

    #[test]
    fn the_same_events_whatever_the_reads() {
        let mut wire = frame(true, Opcode::Binary, b"abc");
        wire.extend(frame(false, Opcode::Binary, b"a"));
        wire.extend(frame(true, Opcode::Ping, b"hi"));
        wire.extend(frame(true, Opcode::Continuation, b"bc"));
        wire.extend(frame(true, Opcode::Binary, &[7; 300]));
        wire.extend(frame(true, Opcode::Close, &[0x03, 0xE9]));
        let mut ping = [0u8; MAX_CONTROL_PAYLOAD];
        ping[..2].copy_from_slice(b"hi");
        let expected = vec![
            RxEvent::Message { matches: true },
            RxEvent::Ping {
                payload: ping,
                len: 2,
            },
            RxEvent::Message { matches: true },
            RxEvent::Message { matches: false },
            RxEvent::Close(Some(1001)),
        ];
        for chunk in [1, 2, 3, 7, 100, wire.len()] {
            let (_, got) = events(&wire, chunk, b"abc");
            assert_eq!(got.unwrap(), expected, "reads of {chunk} bytes");
        }
    }

    #[test]
    fn whole_messages_are_read_in_place_and_split_ones_reuse_one_buffer() {
        let message = frame(true, Opcode::Binary, &[1; 1000]);
        let wire = message.repeat(2);
        let (rx, got) = events(&wire, wire.len(), &[1; 1000]);
        assert_eq!(got.unwrap().len(), 2);
        assert_eq!(rx.carry.capacity(), 0, "nothing carried");
        let (rx, got) = events(&wire, 700, &[1; 1000]);
        assert_eq!(
            got.unwrap(),
            [
                RxEvent::Message { matches: true },
                RxEvent::Message { matches: true }
            ]
        );
        assert!(
            rx.carry.capacity() >= message.len(),
            "kept for the next split frame"
        );
    }

    #[test]
    fn detects_a_flipped_byte_a_short_echo_and_a_wrong_opcode() {
        let mut wire = frame(true, Opcode::Binary, b"aXc");
        wire.extend(frame(true, Opcode::Binary, b"ab"));
        wire.extend(frame(true, Opcode::Text, b"abc"));
        let (_, got) = events(&wire, wire.len(), b"abc");
        let mismatch = || RxEvent::Message { matches: false };
        assert_eq!(got.unwrap(), [mismatch(), mismatch(), mismatch()]);
    }

    #[test]
    fn refuses_masked_reserved_and_out_of_sequence_frames() {
        let masked = [0x82, 0x81, 1, 2, 3, 4, 0];
        let reserved = [0xC2, 0x00];
        let stray_continuation = [0x80, 0x00];
        for (wire, reason) in [
            (&masked[..], "masked server frame"),
            (&reserved[..], "reserved bits set without an extension"),
            (
                &stray_continuation[..],
                "continuation frame without a message in progress",
            ),
        ] {
            for chunk in [1, wire.len()] {
                let (_, got) = events(wire, chunk, b"");
                assert_eq!(got.unwrap_err().reason, reason);
            }
        }
    }

    #[test]
    fn with_deflate_compressed_messages_are_inflated_and_compared() {
        use crate::protocol::deflate::codec;
        let text = b"{\"price\": 1, \"side\": \"buy\"} ".repeat(40);
        let compressed = codec::with_compressed(&text, 1, |c| c.unwrap().to_vec());
        let mut wire = frame(true, Opcode::Binary, &compressed);
        wire[0] |= crate::protocol::frame::RSV1_BIT;
        wire.extend(frame(true, Opcode::Binary, &text)); // uncompressed is fine too
        for chunk in [1, 5, wire.len()] {
            let mut rx = Receiver::new(Limits::default());
            rx.set_deflate(true);
            let mut got = Vec::new();
            for read in wire.chunks(chunk) {
                let (mut read, mut pos) = (read.to_vec(), 0);
                while let Some(e) = rx.next(&mut read, &mut pos).unwrap() {
                    got.push(RxEvent::from_event(e, &text, Opcode::Binary));
                }
            }
            let ok = RxEvent::Message { matches: true };
            assert_eq!(
                got,
                [ok, RxEvent::Message { matches: true }],
                "reads of {chunk}"
            );
        }
        // Without deflate negotiated, RSV1 is a protocol error.
        let (_, got) = events(&wire, wire.len(), &text);
        assert_eq!(
            got.unwrap_err().reason,
            "reserved bits set without an extension"
        );
    }

    #[test]
    fn refuses_frames_over_the_limit_before_carrying_them() {
        let mut header = [0u8; MAX_HEADER_LEN];
        let n = encode_server_header(&mut header, true, Opcode::Binary, 1 << 40);
        let (rx, got) = events(&header[..n], 1, b"");
        assert_eq!(got.unwrap_err().reason, "frame exceeds max_frame_size");
        assert!(rx.carry.len() < MAX_HEADER_LEN);
    }
}
