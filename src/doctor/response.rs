//! The server's answer: its head parsed, a 101 checked against what was offered (RFC 6455 §4.1,
//! "the client MUST fail the WebSocket connection" cases), and a refusal's body read for a reason.

use super::request::{comma_list, extension_names, Request};
use crate::protocol::handshake::accept_key;

/// Largest response head doctor accepts.
pub const MAX_HEAD_BYTES: usize = 16 * 1024;
/// Most response headers parsed.
const MAX_HEADERS: usize = 64;
/// Most body bytes kept from a refusal: enough for a reason line or an HTML title.
pub const MAX_BODY_BYTES: usize = 4096;

/// A parsed response head.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Response {
    pub status: u16,
    /// The reason phrase, e.g. `Switching Protocols`.
    pub reason: String,
    /// Headers in the order received.
    pub headers: Vec<(String, String)>,
    /// Bytes of the head including the blank line.
    pub head_len: usize,
}

impl Response {
    /// The value of the first header called `name` (case-insensitive).
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    fn content_length(&self) -> Option<usize> {
        self.header("Content-Length")?.trim().parse().ok()
    }

    fn is_chunked(&self) -> bool {
        self.header("Transfer-Encoding")
            .is_some_and(|te| te.to_ascii_lowercase().contains("chunked"))
    }
}

/// What the bytes received so far amount to.
#[derive(Debug, PartialEq, Eq)]
pub enum HeadParse {
    /// A valid start of an HTTP response; read more.
    Partial,
    Complete(Response),
    /// Not HTTP: the first bytes are something else (a TLS record, a banner, binary).
    NotHttp,
    /// No end of head within [`MAX_HEAD_BYTES`], or too many headers.
    TooLarge,
}

/// Parses the response head from the bytes received so far.
pub fn parse_head(buf: &[u8]) -> HeadParse {
    let prefix = &buf[..buf.len().min(5)];
    if !b"HTTP/".starts_with(prefix) {
        return HeadParse::NotHttp;
    }
    let mut headers = [httparse::EMPTY_HEADER; MAX_HEADERS];
    let mut response = httparse::Response::new(&mut headers);
    match response.parse(buf) {
        Ok(httparse::Status::Complete(head_len)) => HeadParse::Complete(Response {
            status: response.code.unwrap_or(0),
            reason: response.reason.unwrap_or("").to_owned(),
            headers: response
                .headers
                .iter()
                .map(|h| {
                    let value = String::from_utf8_lossy(h.value).trim().to_owned();
                    (h.name.to_owned(), value)
                })
                .collect(),
            head_len,
        }),
        Ok(httparse::Status::Partial) if buf.len() >= MAX_HEAD_BYTES => HeadParse::TooLarge,
        Ok(httparse::Status::Partial) => HeadParse::Partial,
        Err(httparse::Error::TooManyHeaders) => HeadParse::TooLarge,
        Err(_) => HeadParse::NotHttp,
    }
}

/// What a valid 101 settled.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Negotiated {
    pub protocol: Option<String>,
    /// Extension names accepted (all of them offered by us).
    pub extensions: Vec<String>,
}

/// Why a 101 is not a valid WebSocket upgrade.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum UpgradeProblem {
    /// `Upgrade` missing or not `websocket`.
    UpgradeHeader { got: Option<String> },
    /// `Connection` missing or without the `upgrade` token.
    ConnectionHeader { got: Option<String> },
    /// No `Sec-WebSocket-Accept`.
    AcceptMissing,
    /// `Sec-WebSocket-Accept` is not base64(sha1(key + GUID)) of the key sent.
    AcceptWrong { expected: String, got: String },
    /// A subprotocol the client did not offer (or several).
    ProtocolNotOffered { got: String, offered: Vec<String> },
    /// An extension the client did not offer.
    ExtensionNotOffered { got: String, offered: Vec<String> },
}

/// Checks a 101 against the request that produced it.
pub fn check_upgrade(response: &Response, request: &Request) -> Result<Negotiated, UpgradeProblem> {
    debug_assert_eq!(response.status, 101);
    let upgrade = response.header("Upgrade");
    if !upgrade.is_some_and(|v| v.eq_ignore_ascii_case("websocket")) {
        return Err(UpgradeProblem::UpgradeHeader {
            got: upgrade.map(str::to_owned),
        });
    }
    let connection = response.header("Connection");
    let has_upgrade_token = |v: &str| {
        comma_list(v)
            .iter()
            .any(|t| t.eq_ignore_ascii_case("upgrade"))
    };
    if !connection.is_some_and(has_upgrade_token) {
        return Err(UpgradeProblem::ConnectionHeader {
            got: connection.map(str::to_owned),
        });
    }
    let Some(got) = response.header("Sec-WebSocket-Accept") else {
        return Err(UpgradeProblem::AcceptMissing);
    };
    let key = request.header("Sec-WebSocket-Key").unwrap_or("");
    let expected = accept_key(key.as_bytes());
    if got.as_bytes() != expected.as_slice() {
        return Err(UpgradeProblem::AcceptWrong {
            expected: String::from_utf8_lossy(&expected).into_owned(),
            got: got.to_owned(),
        });
    }
    let offered = request.offered_protocols();
    let protocol = match response.header("Sec-WebSocket-Protocol") {
        None => None,
        Some(got) if offered.iter().any(|p| p == got) => Some(got.to_owned()),
        Some(got) => {
            return Err(UpgradeProblem::ProtocolNotOffered {
                got: got.to_owned(),
                offered,
            })
        }
    };
    let offered = request.offered_extensions();
    let mut extensions = Vec::new();
    for (name, value) in &response.headers {
        if !name.eq_ignore_ascii_case("Sec-WebSocket-Extensions") {
            continue;
        }
        for extension in extension_names(value) {
            if !offered.iter().any(|o| o.eq_ignore_ascii_case(&extension)) {
                return Err(UpgradeProblem::ExtensionNotOffered {
                    got: value.clone(),
                    offered,
                });
            }
            extensions.push(extension);
        }
    }
    Ok(Negotiated {
        protocol,
        extensions,
    })
}

/// Whether `raw` (the bytes after the head) holds as much of the body as doctor keeps.
pub fn body_complete(response: &Response, raw: &[u8]) -> bool {
    if raw.len() >= MAX_BODY_BYTES {
        return true;
    }
    if response.is_chunked() {
        return raw.windows(5).any(|w| w == b"0\r\n\r\n");
    }
    match response.content_length() {
        Some(len) => raw.len() >= len,
        // 1xx, 204 and 304 have no body; others without a length run to the close.
        None => matches!(response.status, 100..=199 | 204 | 304),
    }
}

/// The body (at most [`MAX_BODY_BYTES`]), with chunked framing removed.
pub fn decode_body(response: &Response, raw: &[u8]) -> Vec<u8> {
    let raw = &raw[..raw.len().min(MAX_BODY_BYTES)];
    if !response.is_chunked() {
        let len = response
            .content_length()
            .unwrap_or(raw.len())
            .min(raw.len());
        return raw[..len].to_vec();
    }
    let mut body = Vec::new();
    let mut rest = raw;
    while let Some(line_end) = rest.windows(2).position(|w| w == b"\r\n") {
        let size_field = String::from_utf8_lossy(&rest[..line_end]);
        let size_hex = size_field.split(';').next().unwrap_or("").trim();
        let Ok(size) = usize::from_str_radix(size_hex, 16) else {
            break;
        };
        if size == 0 {
            break;
        }
        let data = &rest[line_end + 2..];
        let take = size.min(data.len());
        body.extend_from_slice(&data[..take]);
        if take < size || data.len() < size + 2 {
            break;
        }
        rest = &data[size + 2..];
    }
    body
}

#[cfg(test)]
mod tests {
    use super::super::request::{build, RequestSpec};
    use super::*;

    const KEY: &str = "dGhlIHNhbXBsZSBub25jZQ==";
    /// RFC 6455 §1.3's accept for KEY.
    const ACCEPT: &str = "s3pPLMBiTxaQ9kYGzzhZRbK+xOo=";

    fn request(protocols: &[String], extensions: Option<&str>) -> Request {
        build(&RequestSpec {
            target: "/",
            host_header: "h",
            key: KEY,
            protocols,
            extensions,
            ..RequestSpec::default()
        })
    }

    fn complete(raw: &str) -> Response {
        match parse_head(raw.as_bytes()) {
            HeadParse::Complete(response) => response,
            other => panic!("{other:?}"),
        }
    }

    fn switching(extra: &str) -> Response {
        complete(&format!(
            "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
             Sec-WebSocket-Accept: {ACCEPT}\r\n{extra}\r\n"
        ))
    }

    #[test]
    fn parses_heads_incrementally() {
        assert_eq!(parse_head(b""), HeadParse::Partial);
        assert_eq!(parse_head(b"HTT"), HeadParse::Partial);
        assert_eq!(parse_head(b"HTTP/1.1 200 OK\r\n"), HeadParse::Partial);
        let r = complete("HTTP/1.1 200 OK\r\nContent-Type: text/html\r\n\r\n<html>");
        assert_eq!((r.status, r.reason.as_str()), (200, "OK"));
        assert_eq!(r.header("content-type"), Some("text/html"));
        assert_eq!(r.head_len, 44);
    }

    #[test]
    fn recognises_what_is_not_http() {
        assert_eq!(
            parse_head(&[0x15, 0x03, 0x03, 0x00, 0x02]),
            HeadParse::NotHttp
        );
        assert_eq!(parse_head(b"SSH-2.0-OpenSSH"), HeadParse::NotHttp);
        assert_eq!(parse_head(b"HTTP/1.1 abc\r\n\r\n"), HeadParse::NotHttp);
        let endless = format!("HTTP/1.1 200 OK\r\nX: {}", "a".repeat(MAX_HEAD_BYTES));
        assert_eq!(parse_head(endless.as_bytes()), HeadParse::TooLarge);
    }

    #[test]
    fn valid_upgrade() {
        let got = check_upgrade(&switching(""), &request(&[], None)).unwrap();
        assert_eq!(
            got,
            Negotiated {
                protocol: None,
                extensions: vec![]
            }
        );
    }

    #[test]
    fn upgrade_and_connection_headers_are_required() {
        let r = complete(&format!(
            "HTTP/1.1 101 Switching Protocols\r\nConnection: Upgrade\r\nSec-WebSocket-Accept: {ACCEPT}\r\n\r\n"
        ));
        assert_eq!(
            check_upgrade(&r, &request(&[], None)),
            Err(UpgradeProblem::UpgradeHeader { got: None })
        );
        let r = complete(&format!(
            "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: keep-alive\r\n\
             Sec-WebSocket-Accept: {ACCEPT}\r\n\r\n"
        ));
        assert_eq!(
            check_upgrade(&r, &request(&[], None)),
            Err(UpgradeProblem::ConnectionHeader {
                got: Some("keep-alive".into())
            })
        );
    }

    #[test]
    fn accept_must_match_the_key_sent() {
        let r = complete(
            "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
             Sec-WebSocket-Accept: AAAAAAAAAAAAAAAAAAAAAAAAAAA=\r\n\r\n",
        );
        assert_eq!(
            check_upgrade(&r, &request(&[], None)),
            Err(UpgradeProblem::AcceptWrong {
                expected: ACCEPT.into(),
                got: "AAAAAAAAAAAAAAAAAAAAAAAAAAA=".into()
            })
        );
        let r = complete(
            "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\r\n",
        );
        assert_eq!(
            check_upgrade(&r, &request(&[], None)),
            Err(UpgradeProblem::AcceptMissing)
        );
    }

    #[test]
    fn protocol_must_be_one_offered() {
        let offered = vec!["chat".to_owned(), "superchat".to_owned()];
        let r = switching("Sec-WebSocket-Protocol: superchat\r\n");
        assert_eq!(
            check_upgrade(&r, &request(&offered, None))
                .unwrap()
                .protocol
                .as_deref(),
            Some("superchat")
        );
        assert_eq!(
            check_upgrade(&switching(""), &request(&offered, None))
                .unwrap()
                .protocol,
            None
        );
        let r = switching("Sec-WebSocket-Protocol: mqtt\r\n");
        assert!(matches!(
            check_upgrade(&r, &request(&offered, None)),
            Err(UpgradeProblem::ProtocolNotOffered { .. })
        ));
        let r = switching("Sec-WebSocket-Protocol: chat\r\n");
        assert!(matches!(
            check_upgrade(&r, &request(&[], None)),
            Err(UpgradeProblem::ProtocolNotOffered { .. })
        ));
    }

    #[test]
    fn extensions_must_be_ones_offered() {
        let r = switching("Sec-WebSocket-Extensions: permessage-deflate\r\n");
        assert!(matches!(
            check_upgrade(&r, &request(&[], None)),
            Err(UpgradeProblem::ExtensionNotOffered { .. })
        ));
        let offered = Some(super::super::request::BROWSER_EXTENSIONS);
        let got = check_upgrade(&r, &request(&[], offered)).unwrap();
        assert_eq!(got.extensions, ["permessage-deflate"]);
    }

    #[test]
    fn bodies_by_length_chunked_and_close() {
        let r = complete("HTTP/1.1 400 Bad Request\r\nContent-Length: 5\r\n\r\n");
        assert!(!body_complete(&r, b"abc"));
        assert!(body_complete(&r, b"abcde"));
        assert_eq!(decode_body(&r, b"abcdefg"), b"abcde");

        let r = complete("HTTP/1.1 404 Not Found\r\nTransfer-Encoding: chunked\r\n\r\n");
        let raw = b"5\r\nhello\r\n7\r\n world!\r\n0\r\n\r\n";
        assert!(body_complete(&r, raw));
        assert!(!body_complete(&r, &raw[..10]));
        assert_eq!(decode_body(&r, raw), b"hello world!");
        assert_eq!(decode_body(&r, &raw[..6]), b"hel");

        let r = complete("HTTP/1.1 200 OK\r\n\r\n");
        assert!(!body_complete(&r, b"<html>"));
        assert_eq!(decode_body(&r, b"<html>"), b"<html>");
    }
}
