//! Close codes and close frame payloads (RFC 6455 §5.5.1, §7.4).

/// A close status code.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct CloseCode(pub u16);

impl CloseCode {
    pub const NORMAL: CloseCode = CloseCode(1000);
    pub const GOING_AWAY: CloseCode = CloseCode(1001);
    pub const PROTOCOL_ERROR: CloseCode = CloseCode(1002);
    pub const UNSUPPORTED_DATA: CloseCode = CloseCode(1003);
    pub const INVALID_PAYLOAD: CloseCode = CloseCode(1007);
    pub const POLICY_VIOLATION: CloseCode = CloseCode(1008);
    pub const MESSAGE_TOO_BIG: CloseCode = CloseCode(1009);
    pub const INTERNAL_ERROR: CloseCode = CloseCode(1011);

    /// May this code appear on the wire in a close frame (received from a peer or sent by us)?
    pub fn is_valid_on_wire(self) -> bool {
        todo!()
    }
}

/// Maximum close payload: control frames carry at most 125 bytes; 2 of them are the code.
pub const MAX_CLOSE_REASON_LEN: usize = 123;

/// Writes a close payload (code + reason, reason truncated at a char boundary to fit 123 bytes)
/// into `out`; returns its length.
pub fn encode_close_payload(out: &mut [u8; 125], code: CloseCode, reason: &str) -> usize {
    todo!()
}
