//! The few frames doctor exchanges after the 101: masked control frames out, server frames in.

use crate::protocol::frame::{decode_header, encode_client_header, MAX_CONTROL_PAYLOAD_LEN};
use crate::protocol::mask::apply_mask;
use crate::protocol::{CloseCode, Opcode, MAX_HEADER_LEN};

/// Largest server frame doctor buffers while waiting for its pong or close; a bigger data frame
/// arriving first is reported rather than buffered.
pub const MAX_FRAME_BYTES: u64 = 1024 * 1024;

/// A masked client control frame (ping, pong or close).
pub fn client_control_frame(opcode: Opcode, payload: &[u8], mask: [u8; 4]) -> Vec<u8> {
    assert!(opcode.is_control());
    assert!(payload.len() as u64 <= MAX_CONTROL_PAYLOAD_LEN);
    let mut header = [0u8; MAX_HEADER_LEN];
    let header_len = encode_client_header(&mut header, true, opcode, payload.len() as u64, mask);
    let mut frame = header[..header_len].to_vec();
    let start = frame.len();
    frame.extend_from_slice(payload);
    apply_mask(&mut frame[start..], mask, 0);
    frame
}

/// A masked close frame with `code` and no reason.
pub fn client_close_frame(code: CloseCode, mask: [u8; 4]) -> Vec<u8> {
    client_control_frame(Opcode::Close, &code.0.to_be_bytes(), mask)
}

/// One complete frame from the server.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ServerFrame {
    pub opcode: Opcode,
    pub payload: Vec<u8>,
}

/// Removes the first complete frame from `buf`. `Ok(None)`: read more. `Err`: the server broke
/// RFC 6455 (a masked frame, reserved bits, an oversized frame...), said in words.
///
/// `rsv1_allowed`: permessage-deflate was accepted, so data frames may set RSV1.
pub fn pop_server_frame(
    buf: &mut Vec<u8>,
    rsv1_allowed: bool,
) -> Result<Option<ServerFrame>, String> {
    let mut header_bytes = [0u8; MAX_HEADER_LEN];
    let n = buf.len().min(MAX_HEADER_LEN);
    header_bytes[..n].copy_from_slice(&buf[..n]);
    if rsv1_allowed && n > 0 && header_bytes[0] & 0x08 == 0 {
        header_bytes[0] &= !0x40;
    }
    let header = match decode_header(&header_bytes[..n]) {
        Ok(Some(header)) => header,
        Ok(None) => return Ok(None),
        Err(err) => return Err(format!("invalid frame from the server: {err:?}")),
    };
    if header.mask.is_some() {
        return Err("the server sent a masked frame (RFC 6455 §5.1: servers must not mask)".into());
    }
    if header.payload_len > MAX_FRAME_BYTES {
        return Err(format!(
            "the server sent a {}-byte frame before answering; doctor buffers at most {} bytes",
            header.payload_len, MAX_FRAME_BYTES
        ));
    }
    let end = header.header_len + header.payload_len as usize;
    if buf.len() < end {
        return Ok(None);
    }
    let payload = buf[header.header_len..end].to_vec();
    buf.drain(..end);
    Ok(Some(ServerFrame {
        opcode: header.opcode,
        payload,
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ping_is_masked_and_round_trips() {
        let frame = client_control_frame(Opcode::Ping, b"abc", [1, 2, 3, 4]);
        assert_eq!(&frame[..6], &[0x89, 0x83, 1, 2, 3, 4]);
        assert_eq!(&frame[6..], &[b'a' ^ 1, b'b' ^ 2, b'c' ^ 3]);
        let close = client_close_frame(CloseCode::NORMAL, [0; 4]);
        assert_eq!(close, [0x88, 0x82, 0, 0, 0, 0, 0x03, 0xE8]);
    }

    #[test]
    fn pops_complete_frames_only() {
        let mut buf = vec![0x8A, 0x03, b'x', b'y'];
        assert_eq!(pop_server_frame(&mut buf, false), Ok(None));
        buf.extend_from_slice(&[b'z', 0x88]);
        let frame = pop_server_frame(&mut buf, false).unwrap().unwrap();
        assert_eq!(
            frame,
            ServerFrame {
                opcode: Opcode::Pong,
                payload: b"xyz".to_vec()
            }
        );
        assert_eq!(buf, [0x88]);
        assert_eq!(pop_server_frame(&mut buf, false), Ok(None));
    }

    #[test]
    fn refuses_masked_and_reserved_bits() {
        let mut masked = vec![0x8A, 0x80, 0, 0, 0, 0];
        assert!(pop_server_frame(&mut masked, false)
            .unwrap_err()
            .contains("masked"));
        let mut rsv1 = vec![0xC1, 0x00];
        assert!(pop_server_frame(&mut rsv1, false).is_err());
        let mut rsv1 = vec![0xC1, 0x00];
        assert!(pop_server_frame(&mut rsv1, true).unwrap().is_some());
        let mut rsv1_control = vec![0xC9, 0x00];
        assert!(pop_server_frame(&mut rsv1_control, true).is_err());
    }

    #[test]
    fn refuses_frames_too_large_to_buffer() {
        let mut buf = vec![0x82, 0x7F];
        buf.extend_from_slice(&(MAX_FRAME_BYTES + 1).to_be_bytes());
        assert!(pop_server_frame(&mut buf, false).is_err());
    }
}
