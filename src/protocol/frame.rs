//! RFC 6455 §5.2 frame headers: decode (client → server, masked) and encode (either direction).
//! INTERFACE FIXED: the reactor and the load generator call exactly these signatures.

/// 2 bytes + 8 extended length + 4 mask.
pub const MAX_HEADER_LEN: usize = 14;

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
}

/// Writes a server (unmasked) frame header into `out`; returns its length (2, 4 or 10).
pub fn encode_server_header(out: &mut [u8; MAX_HEADER_LEN], fin: bool, opcode: Opcode, payload_len: u64) -> usize {
    todo!()
}

/// Writes a client (masked) frame header into `out`; returns its length (6, 8 or 14).
pub fn encode_client_header(out: &mut [u8; MAX_HEADER_LEN], fin: bool, opcode: Opcode, payload_len: u64, mask: [u8; 4]) -> usize {
    todo!()
}
