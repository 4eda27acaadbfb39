//! Server → client frames, checked as they stream in: data payloads are compared byte for byte
//! against the message that was sent (never buffered), control frames are collected (at most
//! 125 bytes) and returned as events. Sans-IO: bytes in, events out.

use crate::protocol::frame::{decode_header, FrameHeader, Opcode, MAX_HEADER_LEN};

/// Largest control frame payload (RFC 6455 §5.5).
pub const MAX_CONTROL_PAYLOAD: usize = 125;

#[derive(Debug, PartialEq, Eq)]
pub enum RxEvent {
    /// A complete data message; `matches` is true when its opcode, length and every byte equal
    /// the expected message.
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

#[derive(Debug, PartialEq, Eq)]
pub enum RxError {
    /// Invalid header (reserved bits, opcode, length encoding, fragmented control frame, or a
    /// continuation with no message in progress / a new message inside one).
    BadFrame,
    /// The server masked a frame (§5.1: the client must fail the connection).
    Masked,
}

/// The frame currently streaming in.
#[derive(Debug, Clone, Copy)]
struct Frame {
    opcode: Opcode,
    fin: bool,
    remaining: u64,
}

/// Per-connection receive state. Holds no heap memory until the server sends a control frame.
#[derive(Debug, Default)]
pub struct Receiver {
    /// A frame header split across reads.
    header: [u8; MAX_HEADER_LEN],
    header_len: u8,
    frame: Option<Frame>,
    /// Data message in progress: its opcode, bytes compared so far, whether all matched.
    message: Option<(Opcode, u64, bool)>,
    control: Vec<u8>,
}

impl Receiver {
    /// Consumes bytes from `data` starting at `*pos` until one event is complete (returned) or
    /// `data` is used up (`Ok(None)`; partial state is kept). `expected` is the message the
    /// server should echo, with its opcode.
    pub fn next_event(
        &mut self,
        data: &[u8],
        pos: &mut usize,
        expected: &[u8],
        expected_opcode: Opcode,
    ) -> Result<Option<RxEvent>, RxError> {
        loop {
            let Some(frame) = self.frame else {
                if *pos == data.len() {
                    return Ok(None);
                }
                match self.take_header(data, pos)? {
                    Some(header) => self.start_frame(header)?,
                    None => return Ok(None),
                }
                continue;
            };
            let available = (data.len() - *pos) as u64;
            let take = frame.remaining.min(available) as usize;
            let chunk = &data[*pos..*pos + take];
            *pos += take;
            let remaining = frame.remaining - take as u64;
            self.frame = Some(Frame { remaining, ..frame });
            if frame.opcode.is_control() {
                self.control.extend_from_slice(chunk);
            } else if let Some((opcode, offset, matches)) = self.message.as_mut() {
                let start = *offset as usize;
                let same = start
                    .checked_add(chunk.len())
                    .and_then(|end| expected.get(start..end))
                    .is_some_and(|want| want == chunk);
                *matches &= same && *opcode == expected_opcode;
                *offset += chunk.len() as u64;
            }
            if remaining > 0 {
                return Ok(None);
            }
            self.frame = None;
            if let Some(event) = self.finish_frame(frame, expected.len() as u64) {
                return Ok(Some(event));
            }
        }
    }

    /// Takes a complete header from the carried bytes plus `data`, or carries a partial one.
    fn take_header(
        &mut self,
        data: &[u8],
        pos: &mut usize,
    ) -> Result<Option<FrameHeader>, RxError> {
        let rest = &data[*pos..];
        if self.header_len == 0 {
            if let Some(header) = decode_header(rest).map_err(|_| RxError::BadFrame)? {
                *pos += header.header_len;
                return Ok(Some(header));
            }
            self.header[..rest.len()].copy_from_slice(rest);
            self.header_len = rest.len() as u8;
            *pos = data.len();
            return Ok(None);
        }
        // Top up the carried bytes one at a time: a header is at most 14 bytes.
        while *pos < data.len() {
            self.header[self.header_len as usize] = data[*pos];
            self.header_len += 1;
            *pos += 1;
            let carried = &self.header[..self.header_len as usize];
            if let Some(header) = decode_header(carried).map_err(|_| RxError::BadFrame)? {
                debug_assert_eq!(header.header_len, carried.len());
                self.header_len = 0;
                return Ok(Some(header));
            }
        }
        Ok(None)
    }

    fn start_frame(&mut self, header: FrameHeader) -> Result<(), RxError> {
        if header.mask.is_some() {
            return Err(RxError::Masked);
        }
        match header.opcode {
            Opcode::Continuation if self.message.is_none() => return Err(RxError::BadFrame),
            Opcode::Text | Opcode::Binary if self.message.is_some() => {
                return Err(RxError::BadFrame)
            }
            Opcode::Text | Opcode::Binary => self.message = Some((header.opcode, 0, true)),
            _ => {}
        }
        if header.opcode.is_control() {
            self.control.clear();
            self.control.reserve_exact(MAX_CONTROL_PAYLOAD);
        }
        self.frame = Some(Frame {
            opcode: header.opcode,
            fin: header.fin,
            remaining: header.payload_len,
        });
        Ok(())
    }

    fn finish_frame(&mut self, frame: Frame, expected_len: u64) -> Option<RxEvent> {
        match frame.opcode {
            Opcode::Ping => {
                let mut payload = [0u8; MAX_CONTROL_PAYLOAD];
                let len = self.control.len().min(MAX_CONTROL_PAYLOAD);
                payload[..len].copy_from_slice(&self.control[..len]);
                Some(RxEvent::Ping {
                    payload,
                    len: len as u8,
                })
            }
            Opcode::Pong => Some(RxEvent::Pong),
            Opcode::Close => {
                let code = match self.control.as_slice() {
                    [hi, lo, ..] => Some(u16::from_be_bytes([*hi, *lo])),
                    _ => None,
                };
                Some(RxEvent::Close(code))
            }
            Opcode::Text | Opcode::Binary | Opcode::Continuation if frame.fin => {
                let (_, length, matches) = self.message.take()?;
                Some(RxEvent::Message {
                    matches: matches && length == expected_len,
                })
            }
            _ => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn events(rx: &mut Receiver, data: &[u8], expected: &[u8]) -> Result<Vec<RxEvent>, RxError> {
        let mut out = Vec::new();
        let mut pos = 0;
        while let Some(event) = rx.next_event(data, &mut pos, expected, Opcode::Binary)? {
            out.push(event);
        }
        assert_eq!(pos, data.len(), "all bytes consumed");
        Ok(out)
    }

    #[test]
    fn matches_an_exact_echo_fed_byte_by_byte() {
        let mut wire = vec![0x82, 3];
        wire.extend_from_slice(b"abc");
        let mut rx = Receiver::default();
        let mut got = Vec::new();
        for byte in &wire {
            got.extend(events(&mut rx, std::slice::from_ref(byte), b"abc").unwrap());
        }
        assert_eq!(got, vec![RxEvent::Message { matches: true }]);
    }

    #[test]
    fn detects_a_flipped_byte_a_short_echo_and_a_wrong_opcode() {
        let mut rx = Receiver::default();
        let got = events(
            &mut rx,
            &[0x82, 3, b'a', b'X', b'c', 0x82, 2, b'a', b'b'],
            b"abc",
        )
        .unwrap();
        assert_eq!(
            got,
            vec![
                RxEvent::Message { matches: false },
                RxEvent::Message { matches: false }
            ]
        );
        let got = events(&mut rx, &[0x81, 3, b'a', b'b', b'c'], b"abc").unwrap();
        assert_eq!(got, vec![RxEvent::Message { matches: false }]);
    }

    #[test]
    fn reassembles_fragments_around_a_ping() {
        let wire = [0x02, 1, b'a', 0x89, 2, b'h', b'i', 0x80, 2, b'b', b'c'];
        let got = events(&mut Receiver::default(), &wire, b"abc").unwrap();
        let mut payload = [0u8; MAX_CONTROL_PAYLOAD];
        payload[..2].copy_from_slice(b"hi");
        assert_eq!(
            got,
            vec![
                RxEvent::Ping { payload, len: 2 },
                RxEvent::Message { matches: true }
            ]
        );
    }

    #[test]
    fn reports_close_codes() {
        let got = events(
            &mut Receiver::default(),
            &[0x88, 2, 0x03, 0xE9, 0x88, 0],
            b"",
        )
        .unwrap();
        assert_eq!(got, vec![RxEvent::Close(Some(1001)), RxEvent::Close(None)]);
    }

    #[test]
    fn rejects_masked_and_out_of_sequence_frames() {
        let masked = [0x82, 0x81, 1, 2, 3, 4, 0];
        assert_eq!(
            events(&mut Receiver::default(), &masked, b"a"),
            Err(RxError::Masked)
        );
        let stray_continuation = [0x80, 0];
        assert_eq!(
            events(&mut Receiver::default(), &stray_continuation, b""),
            Err(RxError::BadFrame)
        );
    }
}
