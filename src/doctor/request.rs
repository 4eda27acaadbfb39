//! The upgrade request doctor sends: what a browser sends, plus the caller's own headers,
//! written by the protocol core's client handshake.

use std::fmt::Write as _;

use crate::protocol::client_handshake::{write_request, ClientRequest};
use crate::protocol::handshake::{EXPLAIN_HEADER, EXPLAIN_IDENTITY};

/// What a browser offers by default; declining it must work (issue: every browser sends it).
pub const BROWSER_EXTENSIONS: &str = "permessage-deflate; client_max_window_bits";

/// Everything that shapes the request.
#[derive(Clone, Debug, Default)]
pub struct RequestSpec<'a> {
    /// Path and query, starting with '/'.
    pub target: &'a str,
    pub host_header: &'a str,
    /// `Sec-WebSocket-Key`: base64 of 16 random bytes.
    pub key: &'a str,
    pub origin: Option<&'a str>,
    pub protocols: &'a [String],
    /// Offered as `Sec-WebSocket-Extensions`, like a browser; `None` offers nothing.
    pub extensions: Option<&'a str>,
    pub token: Option<&'a str>,
    /// Send the token as `?token=` (how browsers must) instead of `Authorization: Bearer`.
    pub token_in_query: bool,
    /// `--header` values: one with a default header's name replaces it; an empty value removes it.
    pub extra_headers: &'a [(String, String)],
}

/// The request as sent.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Request {
    /// Request target actually sent (with `?token=` when asked).
    pub target: String,
    /// Headers in the order sent.
    pub headers: Vec<(String, String)>,
    /// The bytes of the request head.
    pub head: Vec<u8>,
}

impl Request {
    /// The value of the first header called `name` (case-insensitive).
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    /// The subprotocols offered (as sent, `--header` included), in order.
    pub fn offered_protocols(&self) -> Vec<String> {
        comma_list(self.header("Sec-WebSocket-Protocol").unwrap_or(""))
    }

    /// The names of the extensions offered (parameters dropped).
    pub fn offered_extensions(&self) -> Vec<String> {
        extension_names(self.header("Sec-WebSocket-Extensions").unwrap_or(""))
    }
}

/// The header lines of a request head, in order.
fn header_lines(head: &[u8]) -> Vec<(String, String)> {
    let lines = head.split(|&b| b == b'\n').count();
    let mut headers = vec![httparse::EMPTY_HEADER; lines];
    let mut request = httparse::Request::new(&mut headers);
    let _ = request.parse(head);
    request
        .headers
        .iter()
        .map(|h| {
            (
                h.name.to_owned(),
                String::from_utf8_lossy(h.value).into_owned(),
            )
        })
        .collect()
}

/// Builds the request head.
pub fn build(spec: &RequestSpec<'_>) -> Request {
    let mut target = spec.target.to_owned();
    if let (Some(token), true) = (spec.token, spec.token_in_query) {
        target.push(if target.contains('?') { '&' } else { '?' });
        target.push_str("token=");
        target.push_str(&percent_encode(token));
    }
    let bearer = spec.token.map(|token| format!("Bearer {token}"));
    // Doctor's own headers first, so a `--header` of the same name replaces them.
    let mut extra: Vec<(&str, &str)> = Vec::new();
    if let (Some(bearer), false) = (&bearer, spec.token_in_query) {
        extra.push(("Authorization", bearer));
    }
    extra.push((
        "User-Agent",
        concat!("ringws-doctor/", env!("CARGO_PKG_VERSION")),
    ));
    // Ask ringws what the credentials grant (the 101's RingWS-Identity); other servers ignore it.
    extra.push((EXPLAIN_HEADER, EXPLAIN_IDENTITY));
    extra.extend(
        spec.extra_headers
            .iter()
            .map(|(name, value)| (name.as_str(), value.as_str())),
    );
    let protocols: Vec<&str> = spec.protocols.iter().map(String::as_str).collect();
    let mut head = Vec::new();
    write_request(
        &mut head,
        &ClientRequest {
            host: spec.host_header,
            target: &target,
            key: spec.key.as_bytes(),
            origin: spec.origin,
            protocols: &protocols,
            extensions: spec.extensions,
            headers: &extra,
        },
    );
    Request {
        target,
        headers: header_lines(&head),
        head,
    }
}

/// Parses a `--header 'Name: value'` argument; an empty value is allowed (it removes a default).
pub fn parse_header_arg(arg: &str) -> Result<(String, String), String> {
    let Some((name, value)) = arg.split_once(':') else {
        return Err(format!("{arg:?} is not a header: expected 'Name: value'"));
    };
    let name = name.trim();
    let is_token_char = |c: char| c.is_ascii_alphanumeric() || "!#$%&'*+-.^_`|~".contains(c);
    if name.is_empty() || !name.chars().all(is_token_char) {
        return Err(format!("{name:?} is not a valid header name"));
    }
    if name.eq_ignore_ascii_case("host") && value.trim().is_empty() {
        return Err("the Host header cannot be removed: HTTP/1.1 requires it".into());
    }
    let value = value.trim();
    if value.chars().any(|c| c.is_control()) {
        return Err(format!("the value of {name:?} contains control characters"));
    }
    Ok((name.to_owned(), value.to_owned()))
}

/// Splits a comma-separated header value into trimmed, non-empty items.
pub fn comma_list(value: &str) -> Vec<String> {
    value
        .split(',')
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(str::to_owned)
        .collect()
}

/// The extension names of a `Sec-WebSocket-Extensions` value (`a; x=1, b` → `[a, b]`).
pub fn extension_names(value: &str) -> Vec<String> {
    comma_list(value)
        .into_iter()
        .map(|item| item.split(';').next().unwrap_or("").trim().to_owned())
        .filter(|name| !name.is_empty())
        .collect()
}

/// Percent-encodes everything but RFC 3986 unreserved characters.
fn percent_encode(value: &str) -> String {
    let mut out = String::with_capacity(value.len());
    for byte in value.bytes() {
        if byte.is_ascii_alphanumeric() || b"-._~".contains(&byte) {
            out.push(byte as char);
        } else {
            let _ = write!(out, "%{byte:02X}");
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    const KEY: &str = "dGhlIHNhbXBsZSBub25jZQ==";

    fn spec() -> RequestSpec<'static> {
        RequestSpec {
            target: "/chat",
            host_header: "example.com:9001",
            key: KEY,
            ..RequestSpec::default()
        }
    }

    fn head(request: &Request) -> String {
        String::from_utf8(request.head.clone()).unwrap()
    }

    #[test]
    fn minimal_request_is_a_valid_upgrade() {
        let request = build(&spec());
        let head = head(&request);
        assert!(head.starts_with("GET /chat HTTP/1.1\r\nHost: example.com:9001\r\n"));
        assert!(head.contains("\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"));
        assert!(head.contains(&format!("\r\nSec-WebSocket-Key: {KEY}\r\n")));
        assert!(head.contains("\r\nSec-WebSocket-Version: 13\r\n"));
        assert!(head.ends_with("\r\n\r\n"));
        assert!(request.header("origin").is_none());
        assert_eq!(request.header("ringws-explain"), Some("identity"));
        let parsed = crate::protocol::handshake::parse_request(
            &request.head,
            &crate::protocol::HandshakeLimits::default(),
        );
        assert!(matches!(parsed, Ok(Some(_))), "{parsed:?}");
    }

    #[test]
    fn browser_like_options() {
        let protocols = vec!["chat.v2".to_owned(), "chat.v1".to_owned()];
        let request = build(&RequestSpec {
            origin: Some("https://app.example.com"),
            protocols: &protocols,
            extensions: Some(BROWSER_EXTENSIONS),
            token: Some("abc.def"),
            ..spec()
        });
        assert_eq!(request.header("Origin"), Some("https://app.example.com"));
        assert_eq!(request.offered_protocols(), protocols);
        assert_eq!(request.offered_extensions(), ["permessage-deflate"]);
        assert_eq!(request.header("authorization"), Some("Bearer abc.def"));
        assert_eq!(request.target, "/chat");
    }

    #[test]
    fn token_in_query_is_percent_encoded() {
        let request = build(&RequestSpec {
            target: "/chat?room=1",
            token: Some("a b/c"),
            token_in_query: true,
            ..spec()
        });
        assert_eq!(request.target, "/chat?room=1&token=a%20b%2Fc");
        assert!(request.header("Authorization").is_none());
        let request = build(&RequestSpec {
            token: Some("t"),
            token_in_query: true,
            ..spec()
        });
        assert_eq!(request.target, "/chat?token=t");
    }

    #[test]
    fn extra_headers_add_replace_and_remove() {
        let extra = vec![
            ("sec-websocket-version".to_owned(), "8".to_owned()),
            ("Connection".to_owned(), String::new()),
            ("X-Trace".to_owned(), "1".to_owned()),
        ];
        let request = build(&RequestSpec {
            extra_headers: &extra,
            ..spec()
        });
        assert_eq!(request.header("Sec-WebSocket-Version"), Some("8"));
        assert!(request.header("Connection").is_none());
        assert_eq!(request.header("x-trace"), Some("1"));
        assert_eq!(
            head(&request)
                .to_ascii_lowercase()
                .matches("sec-websocket-version")
                .count(),
            1,
            "replaced, not repeated"
        );
    }

    #[test]
    fn header_arguments() {
        assert_eq!(
            parse_header_arg("X-A:  b c ").unwrap(),
            ("X-A".to_owned(), "b c".to_owned())
        );
        assert_eq!(
            parse_header_arg("Connection:").unwrap(),
            ("Connection".to_owned(), String::new())
        );
        assert!(parse_header_arg("no colon").is_err());
        assert!(parse_header_arg("Bad Name: x").is_err());
        assert!(parse_header_arg("X: a\rb").is_err());
        assert!(parse_header_arg("Host:").is_err());
    }

    #[test]
    fn lists() {
        assert_eq!(comma_list(" a, ,b "), ["a", "b"]);
        assert_eq!(
            extension_names("permessage-deflate; client_max_window_bits, x-foo"),
            ["permessage-deflate", "x-foo"]
        );
    }
}
