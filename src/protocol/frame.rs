//! RFC 6455 §5.2 frame headers: decode and encode, for either direction; and the client's masked
//! frame writer.

use super::reader::ProtocolError;

/// 2 bytes + 8 extended length + 4 mask.
pub const MAX_HEADER_LEN: usize = 14;

/// Largest payload of a control frame (§5.5).
pub const MAX_CONTROL_PAYLOAD_LEN: u64 = 125;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(u8)]
pub enum Opcode {
    Continuation = 0x0,
    Text = 0x1,
    Binary = 0x2,
    Close = 0x8,
    Ping = 0x9,
    Pong = 0xA,
}

impl Opcode {
    pub fn is_control(self) -> bool {
        (self as u8) & 0x8 != 0
    }

    /// The opcode for the low 4 bits of a header's first byte; `None` for the reserved ones.
    pub fn from_u8(bits: u8) -> Option<Opcode> {
        match bits {
            0x0 => Some(Opcode::Continuation),
            0x1 => Some(Opcode::Text),
            0x2 => Some(Opcode::Binary),
            0x8 => Some(Opcode::Close),
            0x9 => Some(Opcode::Ping),
            0xA => Some(Opcode::Pong),
            _ => None,
        }
    }
}

/// A decoded frame header.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct FrameHeader {
    pub fin: bool,
    pub opcode: Opcode,
    /// `Some(key)` when the MASK bit was set.
    pub mask: Option<[u8; 4]>,
    pub payload_len: u64,
    /// Bytes the header occupied (2..=14).
    pub header_len: usize,
    /// RSV1: the first frame of a compressed message (permessage-deflate, RFC 7692 §6). Only
    /// [`decode_header_with`] lets it through.
    pub compressed: bool,
}

const FIN_BIT: u8 = 0x80;
const RSV_BITS: u8 = 0x70;
/// RSV1: set on the first frame of a compressed message (RFC 7692 §6).
pub const RSV1_BIT: u8 = 0x40;
const OPCODE_BITS: u8 = 0x0F;
const MASK_BIT: u8 = 0x80;
const LEN7_BITS: u8 = 0x7F;
const LEN7_USES_16: u8 = 126;
const LEN7_USES_64: u8 = 127;

const fn protocol_error(reason: &'static str) -> ProtocolError {
    ProtocolError::protocol(reason)
}

/// The error for a frame with RSV bits set: ringws negotiates no extension that defines them (a
/// client that accepted one, such as permessage-deflate, can tell this case from the others).
pub const RESERVED_BITS: ProtocolError = protocol_error("reserved bits set without an extension");

/// Decodes the frame header at the start of `buf` (either direction; masking is not required).
///
/// `Ok(None)`: `buf` holds only part of the header. Structural violations fail as soon as the
/// bytes showing them are present (close code 1002): RSV bits set (ringws negotiates no
/// extension), reserved opcodes, control frames that are fragmented or longer than 125 bytes, a
/// 64-bit length with its top bit set, and lengths not in their shortest encoding.
pub fn decode_header(buf: &[u8]) -> Result<Option<FrameHeader>, ProtocolError> {
    decode_header_with(buf, false)
}

/// [`decode_header`] for a connection that negotiated permessage-deflate (`compression`): RSV1
/// is then allowed on the first frame of a data message, and still 1002 on a control frame or
/// a continuation (RFC 7692 §6.1). RSV2 and RSV3 are always 1002.
pub fn decode_header_with(
    buf: &[u8],
    compression: bool,
) -> Result<Option<FrameHeader>, ProtocolError> {
    let [b0, b1, ..] = *buf else {
        return Ok(None);
    };
    let allowed = if compression { RSV1_BIT } else { 0 };
    if b0 & RSV_BITS & !allowed != 0 {
        return Err(RESERVED_BITS);
    }
    let Some(opcode) = Opcode::from_u8(b0 & OPCODE_BITS) else {
        return Err(protocol_error("reserved opcode"));
    };
    let compressed = b0 & RSV1_BIT != 0;
    if compressed && opcode.is_control() {
        return Err(protocol_error("RSV1 set on a control frame"));
    }
    if compressed && opcode == Opcode::Continuation {
        return Err(protocol_error("RSV1 set on a continuation frame"));
    }
    let fin = b0 & FIN_BIT != 0;
    let len7 = b1 & LEN7_BITS;
    if opcode.is_control() {
        if !fin {
            return Err(protocol_error("fragmented control frame"));
        }
        if u64::from(len7) > MAX_CONTROL_PAYLOAD_LEN {
            return Err(protocol_error("control frame longer than 125 bytes"));
        }
    }
    let (payload_len, len_end) = match len7 {
        LEN7_USES_16 => {
            let Some(bytes) = buf.get(2..4) else {
                return Ok(None);
            };
            let len = u16::from_be_bytes([bytes[0], bytes[1]]);
            if len < u16::from(LEN7_USES_16) {
                return Err(protocol_error("frame length not minimally encoded"));
            }
            (u64::from(len), 4)
        }
        LEN7_USES_64 => {
            let Some(bytes) = buf.get(2..10) else {
                return Ok(None);
            };
            let mut be = [0u8; 8];
            be.copy_from_slice(bytes);
            let len = u64::from_be_bytes(be);
            if len >> 63 != 0 {
                return Err(protocol_error(
                    "frame length has its most significant bit set",
                ));
            }
            if len <= u64::from(u16::MAX) {
                return Err(protocol_error("frame length not minimally encoded"));
            }
            (len, 10)
        }
        short => (u64::from(short), 2),
    };
    let (mask, header_len) = if b1 & MASK_BIT != 0 {
        let Some(key) = buf.get(len_end..len_end + 4) else {
            return Ok(None);
        };
        (Some([key[0], key[1], key[2], key[3]]), len_end + 4)
    } else {
        (None, len_end)
    };
    Ok(Some(FrameHeader {
        fin,
        opcode,
        mask,
        payload_len,
        header_len,
        compressed,
    }))
}

/// Writes the first two bytes and the extended length; returns the bytes written (2, 4 or 10).
fn encode_header(
    out: &mut [u8; MAX_HEADER_LEN],
    fin: bool,
    opcode: Opcode,
    payload_len: u64,
    mask_bit: u8,
) -> usize {
    debug_assert!(
        payload_len >> 63 == 0,
        "RFC 6455 lengths are at most 2^63 - 1"
    );
    out[0] = if fin { FIN_BIT } else { 0 } | opcode as u8;
    if payload_len < u64::from(LEN7_USES_16) {
        out[1] = mask_bit | payload_len as u8;
        2
    } else if payload_len <= u64::from(u16::MAX) {
        out[1] = mask_bit | LEN7_USES_16;
        out[2..4].copy_from_slice(&(payload_len as u16).to_be_bytes());
        4
    } else {
        out[1] = mask_bit | LEN7_USES_64;
        out[2..10].copy_from_slice(&payload_len.to_be_bytes());
        10
    }
}

/// Writes a server (unmasked) frame header into `out`; returns its length (2, 4 or 10).
pub fn encode_server_header(
    out: &mut [u8; MAX_HEADER_LEN],
    fin: bool,
    opcode: Opcode,
    payload_len: u64,
) -> usize {
    encode_header(out, fin, opcode, payload_len, 0)
}

/// Writes a client (masked) frame header into `out`; returns its length (6, 8 or 14).
pub fn encode_client_header(
    out: &mut [u8; MAX_HEADER_LEN],
    fin: bool,
    opcode: Opcode,
    payload_len: u64,
    mask: [u8; 4],
) -> usize {
    let len = encode_header(out, fin, opcode, payload_len, MASK_BIT);
    out[len..len + 4].copy_from_slice(&mask);
    len + 4
}

/// Appends a whole client frame to `out`: the masked header, then `payload` masked with `mask`.
/// The one writer of masked frames, for every client (the client connection, `bench`, `doctor`).
pub fn append_client_frame(
    out: &mut Vec<u8>,
    fin: bool,
    opcode: Opcode,
    payload: &[u8],
    mask: [u8; 4],
) {
    let mut header = [0u8; MAX_HEADER_LEN];
    let n = encode_client_header(&mut header, fin, opcode, payload.len() as u64, mask);
    out.extend_from_slice(&header[..n]);
    let start = out.len();
    out.extend_from_slice(payload);
    crate::protocol::mask::apply_mask(&mut out[start..], mask, 0);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_client_frame_reads_back_through_a_server_reader() {
        use crate::protocol::reader::{Event, Flow, Limits, Reader};
        let mut out = b"kept".to_vec();
        append_client_frame(&mut out, true, Opcode::Text, b"hello", [9, 8, 7, 6]);
        assert_eq!(&out[..4], b"kept");
        assert_ne!(&out[out.len() - 5..], b"hello", "payload is masked");
        let mut got = Vec::new();
        Reader::default()
            .feed(&mut out[4..], &Limits::default(), |e| {
                if let Event::Message(_, p) = e {
                    got.extend_from_slice(p);
                }
                Flow::Continue
            })
            .unwrap();
        assert_eq!(got, b"hello");
    }
    use crate::protocol::CloseCode;

    const ALL_OPCODES: [Opcode; 6] = [
        Opcode::Continuation,
        Opcode::Text,
        Opcode::Binary,
        Opcode::Close,
        Opcode::Ping,
        Opcode::Pong,
    ];

    fn expect_1002(buf: &[u8]) -> &'static str {
        let err = decode_header(buf).expect_err("header must be rejected");
        assert_eq!(err.code, CloseCode::PROTOCOL_ERROR, "{err}");
        err.reason
    }

    #[test]
    fn server_header_uses_minimal_length_encoding() {
        let mut out = [0u8; MAX_HEADER_LEN];
        let cases: [(u64, &[u8]); 7] = [
            (0, &[0x81, 0]),
            (125, &[0x81, 125]),
            (126, &[0x81, 126, 0, 126]),
            (65535, &[0x81, 126, 0xFF, 0xFF]),
            (65536, &[0x81, 127, 0, 0, 0, 0, 0, 1, 0, 0]),
            (1 << 40, &[0x81, 127, 0, 0, 1, 0, 0, 0, 0, 0]),
            (
                (1 << 63) - 1,
                &[0x81, 127, 0x7F, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF],
            ),
        ];
        for (len, expected) in cases {
            let n = encode_server_header(&mut out, true, Opcode::Text, len);
            assert_eq!(&out[..n], expected, "payload_len {len}");
        }
    }

    #[test]
    fn server_header_fin_and_opcode_bits() {
        let mut out = [0u8; MAX_HEADER_LEN];
        assert_eq!(encode_server_header(&mut out, false, Opcode::Binary, 3), 2);
        assert_eq!(&out[..2], &[0x02, 3]);
        encode_server_header(&mut out, false, Opcode::Continuation, 0);
        assert_eq!(&out[..2], &[0x00, 0]);
        encode_server_header(&mut out, true, Opcode::Pong, 5);
        assert_eq!(&out[..2], &[0x8A, 5]);
    }

    #[test]
    fn client_header_sets_mask_bit_and_key() {
        let mut out = [0u8; MAX_HEADER_LEN];
        let key = [1, 2, 3, 4];
        let n = encode_client_header(&mut out, true, Opcode::Binary, 5, key);
        assert_eq!(&out[..n], &[0x82, 0x85, 1, 2, 3, 4]);
        let n = encode_client_header(&mut out, true, Opcode::Binary, 300, key);
        assert_eq!(&out[..n], &[0x82, 0xFE, 1, 44, 1, 2, 3, 4]);
        let n = encode_client_header(&mut out, false, Opcode::Text, 70_000, key);
        assert_eq!(n, 14);
        assert_eq!(&out[..10], &[0x01, 0xFF, 0, 0, 0, 0, 0, 1, 0x11, 0x70]);
        assert_eq!(&out[10..14], &key);
    }

    #[test]
    fn encode_then_decode_round_trips() {
        let mut out = [0u8; MAX_HEADER_LEN];
        for opcode in ALL_OPCODES {
            let lens: &[u64] = if opcode.is_control() {
                &[0, 1, 125]
            } else {
                &[0, 1, 125, 126, 127, 65535, 65536, 1 << 32, (1 << 63) - 1]
            };
            for &len in lens {
                for fin in [true, false] {
                    if opcode.is_control() && !fin {
                        continue;
                    }
                    let n = encode_server_header(&mut out, fin, opcode, len);
                    let header = decode_header(&out[..n]).unwrap().unwrap();
                    let expected = FrameHeader {
                        fin,
                        opcode,
                        mask: None,
                        payload_len: len,
                        header_len: n,
                        compressed: false,
                    };
                    assert_eq!(header, expected);
                    // Every strict prefix is incomplete, never an error.
                    for cut in 0..n {
                        assert_eq!(decode_header(&out[..cut]), Ok(None), "{opcode:?} {len}");
                    }

                    let key = [0xA, 0xB, 0xC, 0xD];
                    let n = encode_client_header(&mut out, fin, opcode, len, key);
                    let header = decode_header(&out[..n]).unwrap().unwrap();
                    assert_eq!(header.mask, Some(key));
                    assert_eq!(header.payload_len, len);
                    assert_eq!(header.header_len, n);
                    for cut in 0..n {
                        assert_eq!(decode_header(&out[..cut]), Ok(None));
                    }
                }
            }
        }
    }

    #[test]
    fn decode_ignores_bytes_after_the_header() {
        let buf = [0x81, 0x83, 1, 2, 3, 4, 0xEE, 0xEE, 0xEE];
        let header = decode_header(&buf).unwrap().unwrap();
        assert_eq!(header.header_len, 6);
        assert_eq!(header.payload_len, 3);
    }

    #[test]
    fn rsv_bits_are_rejected() {
        for rsv in [0x40, 0x20, 0x10, 0x70] {
            let reason = expect_1002(&[0x81 | rsv, 0x80]);
            assert!(reason.contains("reserved bits"));
        }
    }

    #[test]
    fn reserved_opcodes_are_rejected() {
        for op in (0x3..=0x7).chain(0xB..=0xF) {
            assert_eq!(expect_1002(&[0x80 | op, 0x80]), "reserved opcode");
        }
    }

    #[test]
    fn control_frames_must_be_final_and_short() {
        for op in [0x8, 0x9, 0xA] {
            assert_eq!(expect_1002(&[op, 0x80]), "fragmented control frame");
            // 126 and 127 select the extended forms, which are always > 125.
            let reason = expect_1002(&[0x80 | op, 0x80 | 126]);
            assert_eq!(reason, "control frame longer than 125 bytes");
            expect_1002(&[0x80 | op, 0x80 | 127]);
            assert!(decode_header(&[0x80 | op, 0x80 | 125, 0, 0, 0, 0])
                .unwrap()
                .is_some());
        }
    }

    #[test]
    fn sixty_four_bit_length_with_msb_set_is_rejected() {
        let buf = [0x82, 0xFF, 0x80, 0, 0, 0, 0, 0, 0, 0];
        assert!(expect_1002(&buf).contains("most significant bit"));
    }

    #[test]
    fn non_minimal_lengths_are_rejected() {
        // 16-bit form for 125, and for 0.
        assert!(expect_1002(&[0x82, 0xFE, 0, 125]).contains("minimally"));
        assert!(expect_1002(&[0x82, 0xFE, 0, 0]).contains("minimally"));
        // 64-bit form for 65535 and for 0.
        let mut buf = [0x82, 0xFF, 0, 0, 0, 0, 0, 0, 0xFF, 0xFF];
        assert!(expect_1002(&buf).contains("minimally"));
        buf[8] = 0;
        buf[9] = 0;
        assert!(expect_1002(&buf).contains("minimally"));
        // The smallest values of each form are fine.
        let h = decode_header(&[0x82, 0x7E, 0, 126]).unwrap().unwrap();
        assert_eq!(h.payload_len, 126);
        let h = decode_header(&[0x82, 0x7F, 0, 0, 0, 0, 0, 1, 0, 0])
            .unwrap()
            .unwrap();
        assert_eq!(h.payload_len, 65536);
    }

    #[test]
    fn errors_are_reported_as_soon_as_visible() {
        // Two bytes are enough to see RSV, opcode and control-frame violations ...
        expect_1002(&[0xC1, 0x80]);
        expect_1002(&[0x83, 0x80]);
        expect_1002(&[0x09, 0x80]);
        // ... the extended length is judged once it is complete, before the mask key arrives.
        expect_1002(&[0x82, 0xFE, 0, 5]);
        assert_eq!(decode_header(&[0x82, 0xFE, 0]), Ok(None));
    }

    #[test]
    fn unmasked_frames_decode_for_the_client_side() {
        let h = decode_header(&[0x88, 0x02, 0x03, 0xE8]).unwrap().unwrap();
        assert_eq!(h.mask, None);
        assert_eq!(h.opcode, Opcode::Close);
        assert_eq!(h.header_len, 2);
    }

    #[test]
    fn rsv1_is_allowed_only_with_compression_and_only_on_a_first_data_frame() {
        let text = [0xC1, 0x00]; // FIN, RSV1, text
        assert_eq!(decode_header(&text), Err(RESERVED_BITS));
        let header = decode_header_with(&text, true).unwrap().unwrap();
        assert!(header.compressed && header.fin && header.opcode == Opcode::Text);
        assert!(
            !decode_header_with(&[0x81, 0x00], true)
                .unwrap()
                .unwrap()
                .compressed
        );
        for (bytes, why) in [
            ([0xC9, 0x00], "RSV1 set on a control frame"),
            ([0xC8, 0x00], "RSV1 set on a control frame"),
            ([0x40, 0x00], "RSV1 set on a continuation frame"),
        ] {
            assert_eq!(decode_header_with(&bytes, true).unwrap_err().reason, why);
        }
        // RSV2 and RSV3 stay reserved.
        assert_eq!(decode_header_with(&[0xA1, 0x00], true), Err(RESERVED_BITS));
        assert_eq!(decode_header_with(&[0x91, 0x00], true), Err(RESERVED_BITS));
    }
}
