//! The server's side of the permessage-deflate negotiation (RFC 7692 §5, §7.1).
//!
//! A client lists its offers in `Sec-WebSocket-Extensions`, over one or several header lines
//! (RFC 6455 §9.1: `extension *( ";" param [ "=" token | quoted-string ] )`, comma separated, in
//! the client's order of preference). The first permessage-deflate offer ringws can accept wins;
//! every other extension is ignored. The answer always says `server_no_context_takeover;
//! client_no_context_takeover`, so each message is compressed and decompressed on its own and a
//! connection keeps no compression state between messages.
//!
//! An offer is declined (and the next one judged; with none left, the connection opens without
//! compression) when it breaks a rule of RFC 7692 §7: an unknown parameter, a parameter given
//! twice, a value where none is allowed or none where one is required, or a window size outside
//! 8..=15 or written with a leading zero. An element that is not even well-formed is declined the
//! same way: the upgrade itself never fails on this header.

/// Largest LZ77 window, in bits (32 KiB): what the decompressor accepts from any client.
pub const MAX_WINDOW_BITS: u8 = 15;
/// Smallest window a client may ask the server to use (RFC 7692 §7.1.2.1).
pub const MIN_WINDOW_BITS: u8 = 8;

/// What the server agreed to for one connection.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Agreement {
    /// The `server_max_window_bits` the client asked for, echoed in the answer (RFC 7692
    /// §7.1.2.1 requires it). The compressor's window is always 32 KiB, so under a smaller limit
    /// only messages no longer than the window are compressed (no match can then reach
    /// further back); larger ones go out uncompressed, which RSV1 allows per message.
    pub server_max_window_bits: Option<u8>,
}

impl Agreement {
    /// The window the server must keep within, in bits.
    pub fn window_bits(&self) -> u8 {
        self.server_max_window_bits.unwrap_or(MAX_WINDOW_BITS)
    }

    /// Appends the answer's header line, CRLF included.
    pub fn write_header(&self, out: &mut Vec<u8>) {
        out.extend_from_slice(
            b"Sec-WebSocket-Extensions: permessage-deflate; server_no_context_takeover; \
              client_no_context_takeover",
        );
        if let Some(bits) = self.server_max_window_bits {
            out.extend_from_slice(b"; server_max_window_bits=");
            if bits >= 10 {
                out.push(b'1');
            }
            out.push(b'0' + bits % 10);
        }
        out.extend_from_slice(b"\r\n");
    }
}

/// Why one permessage-deflate offer was declined.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Declined {
    /// The element is not `token *( ";" param )` (stray characters, an unterminated quote, an
    /// empty parameter).
    Malformed,
    /// A parameter RFC 7692 does not define for an offer.
    UnknownParameter,
    /// The same parameter twice.
    RepeatedParameter,
    /// A value on a parameter that takes none, none on one that needs one, or a window size
    /// not in 8..=15 without leading zeros.
    InvalidValue,
}

/// Judges the offers in `lines` (the values of every `Sec-WebSocket-Extensions` line, in order);
/// `Some` for the first permessage-deflate offer that can be accepted.
pub fn negotiate<'a>(lines: impl IntoIterator<Item = &'a str>) -> Option<Agreement> {
    lines
        .into_iter()
        .flat_map(|line| split_outside_quotes(line.as_bytes(), b','))
        .filter_map(|element| judge(element).ok().flatten())
        .next()
}

/// One element of the list: `Ok(None)` for another extension or an empty element, `Ok(Some)`
/// for an acceptable permessage-deflate offer.
pub fn judge(element: &[u8]) -> Result<Option<Agreement>, Declined> {
    let mut parts = split_outside_quotes(element, b';');
    let name = parts.next().unwrap_or_default().trim_ascii();
    if name.is_empty() {
        return Ok(None); // `a,,b`: empty list elements are allowed (RFC 9110 §5.6.1)
    }
    if !name.eq_ignore_ascii_case(b"permessage-deflate") {
        return Ok(None);
    }
    let mut seen = 0u8;
    let mut agreement = Agreement {
        server_max_window_bits: None,
    };
    for part in parts {
        let (param, value) = parse_param(part)?;
        let Some(&(_, bit, value_rule)) = PARAMETERS
            .iter()
            .find(|(name, ..)| param.eq_ignore_ascii_case(name))
        else {
            return Err(Declined::UnknownParameter);
        };
        if seen & bit != 0 {
            return Err(Declined::RepeatedParameter);
        }
        seen |= bit;
        let bits = match (value_rule, value) {
            (ValueRule::None, None) | (ValueRule::OptionalBits, None) => None,
            (ValueRule::Bits | ValueRule::OptionalBits, Some(value)) => {
                Some(window_bits(value).ok_or(Declined::InvalidValue)?)
            }
            _ => return Err(Declined::InvalidValue),
        };
        if bit == 4 {
            agreement.server_max_window_bits = bits;
        }
        // client_max_window_bits only says the client can limit its window; the decompressor
        // takes any window, so the answer leaves it out (RFC 7692 §7.1.2.2 allows that).
    }
    Ok(Some(agreement))
}

/// The parameters of an offer (RFC 7692 §7.1), each with its bit in `seen` and its value rule.
const PARAMETERS: [(&[u8], u8, ValueRule); 4] = [
    (b"server_no_context_takeover", 1, ValueRule::None),
    (b"client_no_context_takeover", 2, ValueRule::None),
    (b"server_max_window_bits", 4, ValueRule::Bits),
    (b"client_max_window_bits", 8, ValueRule::OptionalBits),
];

#[derive(Clone, Copy)]
enum ValueRule {
    None,
    Bits,
    OptionalBits,
}

/// A parameter value as written: a token, or a quoted string still quoted.
#[derive(Clone, Copy, Debug)]
pub(super) struct Value<'a>(&'a [u8]);

/// `name [ "=" value ]`, trimmed; the name a token, the value a token or a quoted string.
pub(super) fn parse_param(part: &[u8]) -> Result<(&[u8], Option<Value<'_>>), Declined> {
    let part = part.trim_ascii();
    let (name, value) = match part.iter().position(|&b| b == b'=') {
        Some(eq) => (part[..eq].trim_ascii(), Some(part[eq + 1..].trim_ascii())),
        None => (part, None),
    };
    if !is_token(name) {
        return Err(Declined::Malformed);
    }
    let value = match value {
        None => None,
        Some(v) if is_token(v) || is_quoted_string(v) => Some(Value(v)),
        Some(_) => return Err(Declined::Malformed),
    };
    Ok((name, value))
}

/// A window size: `8` to `15`, no leading zero, quoted or not (RFC 7692 §7.1.2: a quoted value
/// must, once unquoted, be the same token).
pub(super) fn window_bits(value: Value<'_>) -> Option<u8> {
    let raw = value.0;
    let quoted = raw.len() >= 2 && raw[0] == b'"';
    let inner = if quoted { &raw[1..raw.len() - 1] } else { raw };
    // Unescape into a small buffer: a valid value has at most two digits.
    let mut digits = [0u8; 2];
    let mut n = 0;
    let mut escaped = false;
    for &b in inner {
        if quoted && !escaped && b == b'\\' {
            escaped = true;
            continue;
        }
        escaped = false;
        *digits.get_mut(n)? = b;
        n += 1;
    }
    let digits = &digits[..n];
    if digits.is_empty() || digits[0] == b'0' || !digits.iter().all(u8::is_ascii_digit) {
        return None;
    }
    let bits = digits.iter().fold(0u8, |acc, d| acc * 10 + (d - b'0'));
    (MIN_WINDOW_BITS..=MAX_WINDOW_BITS)
        .contains(&bits)
        .then_some(bits)
}

/// RFC 9110 §5.6.2 token characters.
fn is_tchar(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b)
}

fn is_token(s: &[u8]) -> bool {
    !s.is_empty() && s.iter().all(|&b| is_tchar(b))
}

/// `DQUOTE *( qdtext / quoted-pair ) DQUOTE`, nothing after it.
fn is_quoted_string(s: &[u8]) -> bool {
    let [b'"', inner @ .., b'"'] = s else {
        return false;
    };
    let mut escaped = false;
    for &b in inner {
        match (escaped, b) {
            (true, _) => escaped = false,
            (false, b'\\') => escaped = true,
            (false, b'"') => return false,
            (false, b) if b == b'\t' || b >= 0x20 && b != 0x7F => {}
            _ => return false,
        }
    }
    !escaped
}

/// Splits at `sep` where it is not inside a quoted string.
pub(super) fn split_outside_quotes(s: &[u8], sep: u8) -> impl Iterator<Item = &[u8]> {
    let mut rest = Some(s);
    std::iter::from_fn(move || {
        let s = rest?;
        let (mut quoted, mut escaped) = (false, false);
        for (i, &b) in s.iter().enumerate() {
            if escaped {
                escaped = false;
            } else if quoted && b == b'\\' {
                escaped = true;
            } else if b == b'"' {
                quoted = !quoted;
            } else if b == sep && !quoted {
                rest = Some(&s[i + 1..]);
                return Some(&s[..i]);
            }
        }
        rest = None;
        Some(s)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const PLAIN: Agreement = Agreement {
        server_max_window_bits: None,
    };

    fn one(line: &str) -> Option<Agreement> {
        negotiate([line])
    }

    fn verdict(element: &str) -> Result<Option<Agreement>, Declined> {
        judge(element.as_bytes())
    }

    fn answer(agreement: Agreement) -> String {
        let mut out = Vec::new();
        agreement.write_header(&mut out);
        String::from_utf8(out).unwrap()
    }

    #[test]
    fn a_bare_offer_is_accepted_with_both_no_context_takeover_flags() {
        assert_eq!(one("permessage-deflate"), Some(PLAIN));
        assert_eq!(
            answer(PLAIN),
            "Sec-WebSocket-Extensions: permessage-deflate; server_no_context_takeover; \
             client_no_context_takeover\r\n"
        );
        assert_eq!(PLAIN.window_bits(), 15);
        assert_eq!(
            one("  PerMessage-Deflate  "),
            Some(PLAIN),
            "names are case-insensitive"
        );
    }

    #[test]
    fn the_browser_offer_is_accepted() {
        // What Chromium, Firefox and Safari send.
        assert_eq!(
            one("permessage-deflate; client_max_window_bits"),
            Some(PLAIN)
        );
    }

    #[test]
    fn client_max_window_bits_with_and_without_a_value() {
        for ok in ["8", "9", "12", "15", "\"10\"", "\"1\\5\""] {
            let offer = format!("permessage-deflate; client_max_window_bits={ok}");
            assert_eq!(one(&offer), Some(PLAIN), "{offer}");
        }
        assert_eq!(
            verdict("permessage-deflate; client_max_window_bits"),
            Ok(Some(PLAIN))
        );
        for bad in ["7", "16", "0", "08", "015", "x", "1 5", "\"\"", "-9", "150"] {
            let offer = format!("permessage-deflate; client_max_window_bits={bad}");
            assert_ne!(verdict(&offer), Ok(Some(PLAIN)), "{offer}");
            assert_eq!(one(&offer), None, "{offer}");
        }
    }

    #[test]
    fn server_max_window_bits_is_echoed_and_limits_the_window() {
        let agreement = one("permessage-deflate; server_max_window_bits=10").unwrap();
        assert_eq!(agreement.server_max_window_bits, Some(10));
        assert_eq!(agreement.window_bits(), 10);
        assert!(answer(agreement).ends_with("; server_max_window_bits=10\r\n"));
        let agreement = one("permessage-deflate; server_max_window_bits=\"8\"").unwrap();
        assert!(answer(agreement).ends_with("; server_max_window_bits=8\r\n"));
        assert_eq!(
            verdict("permessage-deflate; server_max_window_bits"),
            Err(Declined::InvalidValue),
            "a value is required"
        );
        for bad in ["7", "16", "09", "a"] {
            let offer = format!("permessage-deflate; server_max_window_bits={bad}");
            assert_eq!(verdict(&offer), Err(Declined::InvalidValue), "{offer}");
        }
    }

    #[test]
    fn the_no_context_takeover_flags_take_no_value() {
        assert_eq!(
            one("permessage-deflate; server_no_context_takeover; client_no_context_takeover"),
            Some(PLAIN)
        );
        for flag in ["server_no_context_takeover", "client_no_context_takeover"] {
            let offer = format!("permessage-deflate; {flag}=1");
            assert_eq!(verdict(&offer), Err(Declined::InvalidValue), "{offer}");
        }
    }

    #[test]
    fn a_repeated_parameter_declines_the_offer() {
        for param in [
            "server_no_context_takeover",
            "client_no_context_takeover",
            "server_max_window_bits=10",
            "client_max_window_bits",
        ] {
            let offer = format!("permessage-deflate; {param}; {param}");
            assert_eq!(verdict(&offer), Err(Declined::RepeatedParameter), "{offer}");
        }
        assert_eq!(
            verdict("permessage-deflate; client_max_window_bits; client_max_window_bits=10"),
            Err(Declined::RepeatedParameter)
        );
    }

    #[test]
    fn an_unknown_parameter_declines_the_offer() {
        assert_eq!(
            verdict("permessage-deflate; mux"),
            Err(Declined::UnknownParameter)
        );
        assert_eq!(one("permessage-deflate; x=1"), None);
    }

    #[test]
    fn the_first_acceptable_of_several_offers_wins() {
        // One line, the client's order of preference: the first is declined, the second taken.
        let agreement = one("permessage-deflate; server_max_window_bits=16, \
             permessage-deflate; server_max_window_bits=12, permessage-deflate");
        assert_eq!(agreement.unwrap().server_max_window_bits, Some(12));
        // Several lines are one list.
        let agreement = negotiate([
            "x-webkit-deflate-frame",
            "permessage-deflate; unknown",
            "permessage-deflate; server_max_window_bits=9",
        ]);
        assert_eq!(agreement.unwrap().server_max_window_bits, Some(9));
        assert_eq!(
            negotiate(["permessage-deflate; client_max_window_bits=99", "foo"]),
            None
        );
    }

    #[test]
    fn other_extensions_and_empty_elements_are_ignored() {
        assert_eq!(one("x-webkit-deflate-frame"), None);
        assert_eq!(one("deflate-frame, , permessage-deflate"), Some(PLAIN));
        assert_eq!(one(""), None);
        assert_eq!(negotiate([]), None);
        assert_eq!(verdict("foo; bar=\"a,b\""), Ok(None));
    }

    #[test]
    fn malformed_offers_are_declined_and_the_rest_still_judged() {
        for bad in [
            "permessage-deflate; ",
            "permessage-deflate;;",
            "permessage-deflate; =10",
            "permessage-deflate; client_max_window_bits=\"10",
            "permessage-deflate; client_max_window_bits=10 11",
            "permessage-deflate; client max window bits",
            "permessage-deflate; client_max_window_bits=\"1\"0",
        ] {
            assert_eq!(verdict(bad), Err(Declined::Malformed), "{bad}");
            assert_eq!(one(bad), None, "{bad}");
        }
        // A quote keeps the comma inside it from splitting the list.
        assert_eq!(
            one("permessage-deflate; client_max_window_bits=\"1,0\", permessage-deflate"),
            Some(PLAIN)
        );
        assert_eq!(one("permessage-deflate;;, permessage-deflate"), Some(PLAIN));
    }

    #[test]
    fn quoted_strings_and_splitting() {
        assert!(is_quoted_string(b"\"a\\\"b\""));
        assert!(!is_quoted_string(b"\"a\\\""));
        assert!(!is_quoted_string(b"\"a\"b\""));
        let parts: Vec<_> = split_outside_quotes(b"a,\"b,c\",d", b',').collect();
        assert_eq!(parts, [&b"a"[..], b"\"b,c\"", b"d"]);
    }
}
