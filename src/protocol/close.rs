//! Close codes and close frame payloads (RFC 6455 §5.5.1, §7.4).

use super::reader::ProtocolError;

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
    ///
    /// RFC 6455 §7.4 defines 1000–1003 and 1007–1011; 1004 is reserved and 1005, 1006 and 1015
    /// are local-only pseudo codes that MUST NOT be sent. 3000–4999 belong to libraries and
    /// applications. Everything else in 0–2999 is unassigned, and ≥ 5000 is outside every range.
    ///
    /// 1012 (Service Restart) and 1013 (Try Again Later) were registered with IANA after the RFC;
    /// the Autobahn TestSuite stopped listing them as invalid (issue #52), so they are accepted.
    /// 1014 (Bad Gateway) is registered too, but the released Autobahn TestSuite (the Docker
    /// image, case 7.9.6) still sends it expecting a 1002 close; its newer sources test it in
    /// neither 7.7.x nor 7.9.x, so rejecting it passes both, and a WebSocket server has no
    /// upstream gateway meaning for it anyway.
    pub fn is_valid_on_wire(self) -> bool {
        matches!(self.0, 1000..=1003 | 1007..=1013 | 3000..=4999)
    }
}

/// Maximum close payload: control frames carry at most 125 bytes; 2 of them are the code.
pub const MAX_CLOSE_REASON_LEN: usize = 123;

/// Writes a close payload (code + reason, reason truncated at a char boundary to fit 123 bytes)
/// into `out`; returns its length.
pub fn encode_close_payload(out: &mut [u8; 125], code: CloseCode, reason: &str) -> usize {
    let mut end = reason.len().min(MAX_CLOSE_REASON_LEN);
    while !reason.is_char_boundary(end) {
        end -= 1;
    }
    out[..2].copy_from_slice(&code.0.to_be_bytes());
    out[2..2 + end].copy_from_slice(&reason.as_bytes()[..end]);
    2 + end
}

/// Parses the (unmasked) payload of a received close frame: `(None, "")` for an empty payload,
/// otherwise the code and the UTF-8 reason.
///
/// A 1-byte payload or a code not valid on the wire is a protocol error (1002); a reason that is
/// not UTF-8 is invalid payload (1007).
pub fn parse_close_payload(payload: &[u8]) -> Result<(Option<CloseCode>, &str), ProtocolError> {
    match payload {
        [] => Ok((None, "")),
        [_] => Err(ProtocolError::protocol("close payload of 1 byte")),
        [hi, lo, reason @ ..] => {
            let code = CloseCode(u16::from_be_bytes([*hi, *lo]));
            if !code.is_valid_on_wire() {
                return Err(ProtocolError::protocol("invalid close code"));
            }
            let reason = simdutf8::basic::from_utf8(reason)
                .map_err(|_| ProtocolError::invalid_payload("invalid UTF-8 in close reason"))?;
            Ok((Some(code), reason))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wire_validity_by_range() {
        let valid = |c: u16| CloseCode(c).is_valid_on_wire();
        for c in (1000..=1003).chain(1007..=1013).chain(3000..=4999) {
            assert!(valid(c), "{c} must be valid");
        }
        for c in (0..=999)
            .chain([1004, 1005, 1006, 1014, 1015])
            .chain(1016..=2999)
            .chain(5000..=u16::MAX)
        {
            assert!(!valid(c), "{c} must be invalid");
        }
    }

    #[test]
    fn autobahn_7_7_and_7_9_codes() {
        for c in [
            1000, 1001, 1002, 1003, 1007, 1008, 1009, 1010, 1011, 3000, 3999, 4000, 4999,
        ] {
            assert!(CloseCode(c).is_valid_on_wire(), "7.7.x sends {c} as valid");
        }
        for c in [0, 999, 1004, 1005, 1006, 1014, 1015, 1016, 1100, 2000, 2999] {
            assert!(
                !CloseCode(c).is_valid_on_wire(),
                "7.9.x sends {c} as invalid"
            );
        }
    }

    #[test]
    fn named_codes_are_valid_on_the_wire() {
        for code in [
            CloseCode::NORMAL,
            CloseCode::GOING_AWAY,
            CloseCode::PROTOCOL_ERROR,
            CloseCode::UNSUPPORTED_DATA,
            CloseCode::INVALID_PAYLOAD,
            CloseCode::POLICY_VIOLATION,
            CloseCode::MESSAGE_TOO_BIG,
            CloseCode::INTERNAL_ERROR,
        ] {
            assert!(code.is_valid_on_wire(), "{code:?}");
        }
    }

    #[test]
    fn encode_writes_code_and_reason() {
        let mut out = [0u8; 125];
        let n = encode_close_payload(&mut out, CloseCode::NORMAL, "bye");
        assert_eq!(&out[..n], b"\x03\xE8bye");
        let n = encode_close_payload(&mut out, CloseCode(4999), "");
        assert_eq!(&out[..n], b"\x13\x87");
    }

    #[test]
    fn encode_truncates_reason_at_a_char_boundary() {
        let mut out = [0u8; 125];
        let long = "x".repeat(200);
        let n = encode_close_payload(&mut out, CloseCode::GOING_AWAY, &long);
        assert_eq!(n, 125);
        assert_eq!(&out[2..n], "x".repeat(123).as_bytes());

        // 122 ASCII bytes then a 2-byte char would end at 124: the char must be dropped whole.
        let mut reason = "y".repeat(122);
        reason.push('é');
        let n = encode_close_payload(&mut out, CloseCode::GOING_AWAY, &reason);
        assert_eq!(n, 2 + 122);
        assert!(std::str::from_utf8(&out[2..n]).is_ok());

        // 4-byte chars: 30 of them are 120 bytes, a 31st would reach 124.
        let emoji = "😀".repeat(40);
        let n = encode_close_payload(&mut out, CloseCode::GOING_AWAY, &emoji);
        assert_eq!(n, 2 + 120);
        assert_eq!(std::str::from_utf8(&out[2..n]).unwrap(), "😀".repeat(30));
    }

    #[test]
    fn parse_empty_and_valid_payloads() {
        assert_eq!(parse_close_payload(b""), Ok((None, "")));
        assert_eq!(
            parse_close_payload(b"\x03\xE8"),
            Ok((Some(CloseCode::NORMAL), ""))
        );
        assert_eq!(
            parse_close_payload(&[&4000u16.to_be_bytes()[..], "héllo".as_bytes()].concat()),
            Ok((Some(CloseCode(4000)), "héllo"))
        );
    }

    #[test]
    fn parse_rejects_one_byte_payload_with_1002() {
        let err = parse_close_payload(b"\x03").unwrap_err();
        assert_eq!(err.code, CloseCode::PROTOCOL_ERROR);
    }

    #[test]
    fn parse_rejects_invalid_codes_with_1002() {
        for c in [
            0u16, 999, 1004, 1005, 1006, 1014, 1015, 1016, 2999, 5000, 65535,
        ] {
            let err = parse_close_payload(&c.to_be_bytes()).unwrap_err();
            assert_eq!(err.code, CloseCode::PROTOCOL_ERROR, "code {c}");
        }
    }

    #[test]
    fn parse_rejects_invalid_reason_with_1007() {
        // Autobahn 7.5.1: a surrogate in the reason.
        let payload = b"\x03\xE8\xCE\xBA\xE1\xBD\xB9\xCF\x83\xCE\xBC\xCE\xB5\xED\xA0\x80edited";
        let err = parse_close_payload(payload).unwrap_err();
        assert_eq!(err.code, CloseCode::INVALID_PAYLOAD);
        // The code is checked first: invalid code and invalid reason is a 1002.
        let err = parse_close_payload(b"\x03\xED\xFF").unwrap_err();
        assert_eq!(err.code, CloseCode::PROTOCOL_ERROR);
    }

    #[test]
    fn encoded_payloads_parse_back() {
        let mut out = [0u8; 125];
        let reason = "ünïcödé ".repeat(20);
        let n = encode_close_payload(&mut out, CloseCode::POLICY_VIOLATION, &reason);
        let (code, parsed) = parse_close_payload(&out[..n]).unwrap();
        assert_eq!(code, Some(CloseCode::POLICY_VIOLATION));
        assert!(reason.starts_with(parsed));
        assert!(parsed.len() <= MAX_CLOSE_REASON_LEN);
    }
}
