//! The client side of the opening handshake (RFC 6455 §4.1): the upgrade request, the server's
//! response head parsed in place, and the checks that decide whether the connection is upgraded.
//!
//! Sans-IO like the rest of the protocol core: the caller reads and writes; these functions turn
//! bytes into a verdict. Every client in ringws uses them (`ringws bench`, `bench fanout`,
//! `ringws doctor`); frames after the head are read with `Reader::new(Role::Client)` and written
//! with [`append_client_frame`](super::frame::append_client_frame).

use std::fmt;
use std::io::Write as _;

use super::deflate::{self, Answer, AnswerError, Offered};
use super::handshake::{base64_exact, has_token};

/// Largest response head accepted: status line, headers and the blank line.
pub const MAX_RESPONSE_HEAD_BYTES: usize = 16 * 1024;
/// Most response headers parsed; a head with more is refused as too large.
pub const MAX_RESPONSE_HEADERS: usize = 64;

/// A `Sec-WebSocket-Key`: base64 of 16 random bytes.
pub fn client_key(random: [u8; 16]) -> [u8; 24] {
    base64_exact(&random)
}

/// What an upgrade request says. `ClientRequest { host, target, key, ..Default::default() }` is
/// the plain request.
#[derive(Clone, Copy, Debug, Default)]
pub struct ClientRequest<'a> {
    /// The `Host` value, `host[:port]`.
    pub host: &'a str,
    /// The request target: path and query, starting with '/'.
    pub target: &'a str,
    /// The `Sec-WebSocket-Key` (see [`client_key`]).
    pub key: &'a [u8],
    pub origin: Option<&'a str>,
    /// Subprotocols offered, most preferred first; none: no `Sec-WebSocket-Protocol`.
    pub protocols: &'a [&'a str],
    /// The `Sec-WebSocket-Extensions` offer as sent, e.g.
    /// `permessage-deflate; client_max_window_bits`.
    pub extensions: Option<&'a str>,
    /// More headers, after the standard ones. One named like a standard header takes its place
    /// (an empty value leaves it out); of several with the same name, only the last is sent.
    pub headers: &'a [(&'a str, &'a str)],
}

/// The value of a standard request header.
enum Value<'a> {
    Bytes(&'a [u8]),
    /// Comma-separated.
    List(&'a [&'a str]),
}

/// Appends the upgrade request head to `out`: the request line, `Host`, `Upgrade`,
/// `Connection`, `Sec-WebSocket-Key`, `Sec-WebSocket-Version: 13`, then `Origin`,
/// `Sec-WebSocket-Protocol` and `Sec-WebSocket-Extensions` when given, then `headers`.
pub fn write_request(out: &mut Vec<u8>, request: &ClientRequest<'_>) {
    // Writing into a Vec cannot fail.
    let _ = write!(out, "GET {} HTTP/1.1\r\n", request.target);
    let standard = [
        ("Host", Some(Value::Bytes(request.host.as_bytes()))),
        ("Upgrade", Some(Value::Bytes(b"websocket"))),
        ("Connection", Some(Value::Bytes(b"Upgrade"))),
        ("Sec-WebSocket-Key", Some(Value::Bytes(request.key))),
        ("Sec-WebSocket-Version", Some(Value::Bytes(b"13"))),
        ("Origin", request.origin.map(|o| Value::Bytes(o.as_bytes()))),
        (
            "Sec-WebSocket-Protocol",
            (!request.protocols.is_empty()).then_some(Value::List(request.protocols)),
        ),
        (
            "Sec-WebSocket-Extensions",
            request.extensions.map(|e| Value::Bytes(e.as_bytes())),
        ),
    ];
    let last_of = |name: &str, from: usize| {
        request.headers[from..]
            .iter()
            .rev()
            .find(|(given, _)| given.eq_ignore_ascii_case(name))
    };
    for (name, value) in &standard {
        match (last_of(name, 0), value) {
            (Some((given, value)), _) => write_header(out, given, &Value::Bytes(value.as_bytes())),
            (None, Some(value)) => write_header(out, name, value),
            (None, None) => {}
        }
    }
    for (i, (name, value)) in request.headers.iter().enumerate() {
        let is_standard = standard.iter().any(|(s, _)| s.eq_ignore_ascii_case(name));
        if !is_standard && last_of(name, i + 1).is_none() {
            write_header(out, name, &Value::Bytes(value.as_bytes()));
        }
    }
    out.extend_from_slice(b"\r\n");
}

/// One header line; none for an empty value.
fn write_header(out: &mut Vec<u8>, name: &str, value: &Value<'_>) {
    if let Value::Bytes([]) = value {
        return;
    }
    out.extend_from_slice(name.as_bytes());
    out.extend_from_slice(b": ");
    match value {
        Value::Bytes(bytes) => out.extend_from_slice(bytes),
        Value::List(items) => {
            for (i, item) in items.iter().enumerate() {
                if i > 0 {
                    out.extend_from_slice(b", ");
                }
                out.extend_from_slice(item.as_bytes());
            }
        }
    }
    out.extend_from_slice(b"\r\n");
}

/// A complete response head, borrowing from the bytes it was parsed from.
#[derive(Clone)]
pub struct ResponseHead<'a> {
    pub status: u16,
    /// The reason phrase, e.g. `Switching Protocols`.
    pub reason: &'a str,
    /// Bytes of the head including the blank line: the body, or the first frames, follow.
    pub head_len: usize,
    headers: [httparse::Header<'a>; MAX_RESPONSE_HEADERS],
    header_count: usize,
}

impl<'a> ResponseHead<'a> {
    /// Every header, in the order received, its value trimmed.
    pub fn headers(&self) -> impl Iterator<Item = (&'a str, &'a [u8])> + '_ {
        self.headers[..self.header_count]
            .iter()
            .map(|h| (h.name, h.value.trim_ascii()))
    }

    /// The values of every header called `name` (case-insensitive), in order.
    pub fn values<'s>(&'s self, name: &'s str) -> impl Iterator<Item = &'a [u8]> + 's {
        self.headers()
            .filter(move |(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v)
    }

    /// The value of the first header called `name` (case-insensitive).
    pub fn header(&self, name: &str) -> Option<&'a [u8]> {
        self.values(name).next()
    }
}

impl fmt::Debug for ResponseHead<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let headers: Vec<_> = self
            .headers()
            .map(|(n, v)| (n, String::from_utf8_lossy(v)))
            .collect();
        f.debug_struct("ResponseHead")
            .field("status", &self.status)
            .field("reason", &self.reason)
            .field("head_len", &self.head_len)
            .field("headers", &headers)
            .finish()
    }
}

/// Why the bytes received are not a usable response head.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
pub enum ResponseError {
    /// The bytes are not an HTTP/1.x response (another protocol, a TLS record, garbage).
    #[error("the answer is not an HTTP/1.x response")]
    NotHttp,
    /// No end of head within [`MAX_RESPONSE_HEAD_BYTES`], or more than [`MAX_RESPONSE_HEADERS`]
    /// headers; `status` when the status line was complete.
    #[error(
        "the response head exceeds {MAX_RESPONSE_HEAD_BYTES} bytes or {MAX_RESPONSE_HEADERS} headers"
    )]
    TooLarge { status: Option<u16> },
}

/// Parses the response head from the bytes received so far (the first read, or all reads
/// joined). `Ok(None)`: incomplete, read more and call again with all the bytes.
pub fn parse_response(buf: &[u8]) -> Result<Option<ResponseHead<'_>>, ResponseError> {
    let bounded = &buf[..buf.len().min(MAX_RESPONSE_HEAD_BYTES)];
    let mut headers = [httparse::EMPTY_HEADER; MAX_RESPONSE_HEADERS];
    let mut response = httparse::Response::new(&mut headers);
    match response.parse(bounded) {
        Ok(httparse::Status::Complete(head_len)) => {
            let status = response.code.unwrap_or(0);
            let reason = response.reason.unwrap_or("");
            let header_count = response.headers.len();
            Ok(Some(ResponseHead {
                status,
                reason,
                head_len,
                headers,
                header_count,
            }))
        }
        Ok(httparse::Status::Partial) if bounded.len() == MAX_RESPONSE_HEAD_BYTES => {
            Err(ResponseError::TooLarge {
                status: response.code,
            })
        }
        Ok(httparse::Status::Partial) => Ok(None),
        Err(httparse::Error::TooManyHeaders) => Err(ResponseError::TooLarge {
            status: response.code,
        }),
        Err(_) => Err(ResponseError::NotHttp),
    }
}

/// The status code of a response whose head may be incomplete (e.g. when the server closed
/// mid-head), once its status line has it.
pub fn response_status(buf: &[u8]) -> Option<u16> {
    let mut no_headers = [];
    let mut response = httparse::Response::new(&mut no_headers);
    let _ = response.parse(&buf[..buf.len().min(MAX_RESPONSE_HEAD_BYTES)]);
    response.code
}

/// What a valid 101 settled.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Upgraded<'a> {
    /// Bytes of the head: what follows are frames.
    pub head_len: usize,
    /// The subprotocol the server selected (one of those offered).
    pub protocol: Option<&'a str>,
    /// Names of the extensions the server accepted (all of them offered; empty when none was).
    pub extensions: Vec<&'a str>,
}

/// Why a response does not upgrade the connection (RFC 6455 §4.1: the client must fail it).
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum UpgradeError {
    /// Not `101 Switching Protocols`.
    #[error("the server answered {0} instead of 101 Switching Protocols")]
    Status(u16),
    /// `Upgrade` missing or not `websocket`.
    #[error(
        "the 101 has {} instead of \"Upgrade: websocket\"",
        shown("Upgrade", got)
    )]
    UpgradeHeader { got: Option<String> },
    /// `Connection` missing or without the `upgrade` token.
    #[error(
        "the 101 has {} instead of \"Connection: Upgrade\"",
        shown("Connection", got)
    )]
    ConnectionHeader { got: Option<String> },
    /// No `Sec-WebSocket-Accept`.
    #[error("the 101 has no Sec-WebSocket-Accept")]
    AcceptMissing,
    /// `Sec-WebSocket-Accept` is not base64(sha1(key + GUID)) of the key sent.
    #[error("Sec-WebSocket-Accept is {got:?}, the key sent needs {expected:?}")]
    AcceptWrong { expected: String, got: String },
    /// A subprotocol that was not offered (or more than one).
    #[error("the server selected subprotocol {got:?}, which was not offered")]
    ProtocolNotOffered { got: String, offered: Vec<String> },
    /// An extension that was not offered.
    #[error("the server accepted extension(s) {got:?}, not offered")]
    ExtensionNotOffered { got: String, offered: Vec<String> },
    /// A permessage-deflate answer that breaks RFC 7692 §7.1 or does not match the offer.
    #[error("the server's permessage-deflate answer {got:?} is invalid: {error}")]
    DeflateAnswer { got: String, error: AnswerError },
}

fn shown(name: &str, got: &Option<String>) -> String {
    match got {
        Some(value) => format!("\"{name}: {value}\""),
        None => format!("no {name} header"),
    }
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

fn owned(list: &[&str]) -> Vec<String> {
    list.iter().map(|s| (*s).to_owned()).collect()
}

/// The RFC 6455 §4.1 checks of a response head against the request that produced it:
/// status 101, `Upgrade: websocket`, `Connection` holding `upgrade`, `Sec-WebSocket-Accept`
/// equal to `expected_accept` ([`accept_key`](super::handshake::accept_key) of the key sent), a
/// `Sec-WebSocket-Protocol` only if it is one of `offered_protocols`, and no extension whose name
/// is not in `offered_extensions`. Checked in that order; the first failure is returned.
pub fn check_upgrade<'a>(
    response: &ResponseHead<'a>,
    expected_accept: &[u8; 28],
    offered_protocols: &[&str],
    offered_extensions: &[&str],
) -> Result<Upgraded<'a>, UpgradeError> {
    if response.status != 101 {
        return Err(UpgradeError::Status(response.status));
    }
    let got = |name| response.header(name).map(text);
    if !response
        .values("Upgrade")
        .any(|v| v.eq_ignore_ascii_case(b"websocket"))
    {
        return Err(UpgradeError::UpgradeHeader {
            got: got("Upgrade"),
        });
    }
    if !response
        .values("Connection")
        .any(|v| has_token(v, b"upgrade"))
    {
        return Err(UpgradeError::ConnectionHeader {
            got: got("Connection"),
        });
    }
    match response.header("Sec-WebSocket-Accept") {
        None => return Err(UpgradeError::AcceptMissing),
        Some(accept) if accept != expected_accept.as_slice() => {
            return Err(UpgradeError::AcceptWrong {
                expected: text(expected_accept),
                got: text(accept),
            })
        }
        Some(_) => {}
    }
    let mut selected = response.values("Sec-WebSocket-Protocol");
    let protocol = match (selected.next(), selected.next()) {
        (None, _) => None,
        (Some(one), None) if offered_protocols.iter().any(|p| p.as_bytes() == one) => {
            std::str::from_utf8(one).ok()
        }
        (Some(_), _) => {
            let all: Vec<String> = response
                .values("Sec-WebSocket-Protocol")
                .map(text)
                .collect();
            return Err(UpgradeError::ProtocolNotOffered {
                got: all.join(", "),
                offered: owned(offered_protocols),
            });
        }
    };
    let mut extensions = Vec::new();
    for value in response.values("Sec-WebSocket-Extensions") {
        for name in extension_names(value) {
            let accepted = offered_extensions
                .iter()
                .any(|o| o.as_bytes().eq_ignore_ascii_case(name));
            match std::str::from_utf8(name) {
                Ok(name) if accepted => extensions.push(name),
                _ => {
                    return Err(UpgradeError::ExtensionNotOffered {
                        got: text(value),
                        offered: owned(offered_extensions),
                    })
                }
            }
        }
    }
    Ok(Upgraded {
        head_len: response.head_len,
        protocol,
        extensions,
    })
}

/// The permessage-deflate a 101 settled (RFC 7692 §7.1), judged against `offer`, the
/// `Sec-WebSocket-Extensions` value sent; `None` when the server did not accept it. Call it after
/// [`check_upgrade`] (which fails an extension that was not offered at all); an error fails the
/// connection.
pub fn deflate_answer(
    response: &ResponseHead<'_>,
    offer: &str,
) -> Result<Option<Answer>, UpgradeError> {
    let lines = response.values("Sec-WebSocket-Extensions");
    deflate::parse_answer(lines, Offered::parse(offer)).map_err(|error| {
        let all: Vec<String> = response
            .values("Sec-WebSocket-Extensions")
            .map(text)
            .collect();
        UpgradeError::DeflateAnswer {
            got: all.join(", "),
            error,
        }
    })
}

/// The extension names of a `Sec-WebSocket-Extensions` value (`a; x=1, b` → `a`, `b`).
fn extension_names(value: &[u8]) -> impl Iterator<Item = &[u8]> {
    value
        .split(|&b| b == b',')
        .map(|item| {
            item.split(|&b| b == b';')
                .next()
                .unwrap_or(item)
                .trim_ascii()
        })
        .filter(|name| !name.is_empty())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::protocol::handshake::{accept_key, parse_request, HandshakeLimits};

    /// RFC 6455 §1.3's example key and its accept value.
    const KEY: &str = "dGhlIHNhbXBsZSBub25jZQ==";
    const ACCEPT: &[u8; 28] = b"s3pPLMBiTxaQ9kYGzzhZRbK+xOo=";

    fn request(request: &ClientRequest<'_>) -> String {
        let mut out = b"kept".to_vec();
        write_request(&mut out, request);
        assert!(out.starts_with(b"kept"), "appends");
        String::from_utf8(out[4..].to_vec()).unwrap()
    }

    fn plain() -> ClientRequest<'static> {
        ClientRequest {
            host: "localhost:9001",
            target: "/echo?x=1",
            key: KEY.as_bytes(),
            ..ClientRequest::default()
        }
    }

    fn switching(extra: &str) -> Vec<u8> {
        format!(
            "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
             Sec-WebSocket-Accept: s3pPLMBiTxaQ9kYGzzhZRbK+xOo=\r\n{extra}\r\n"
        )
        .into_bytes()
    }

    fn head(bytes: &[u8]) -> ResponseHead<'_> {
        match parse_response(bytes) {
            Ok(Some(head)) => head,
            other => panic!("expected a complete head, got {other:?}"),
        }
    }

    fn check(bytes: &[u8]) -> Result<Upgraded<'_>, UpgradeError> {
        check_upgrade(&head(bytes), ACCEPT, &[], &[])
    }

    #[test]
    fn keys_are_24_base64_characters() {
        assert_eq!(&client_key([0; 16]), b"AAAAAAAAAAAAAAAAAAAAAA==");
        assert_eq!(accept_key(&client_key([7; 16])).len(), 28);
    }

    #[test]
    fn the_plain_request_round_trips_through_the_server_parser() {
        let out = request(&plain());
        assert_eq!(
            out,
            "GET /echo?x=1 HTTP/1.1\r\n\
             Host: localhost:9001\r\n\
             Upgrade: websocket\r\n\
             Connection: Upgrade\r\n\
             Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\
             Sec-WebSocket-Version: 13\r\n\
             \r\n"
        );
        let parsed = parse_request(out.as_bytes(), &HandshakeLimits::default())
            .unwrap()
            .unwrap();
        assert_eq!(parsed.head_len, out.len());
        assert_eq!((parsed.path, parsed.query), ("/echo", Some("x=1")));
        assert_eq!(parsed.key, KEY.as_bytes());
    }

    #[test]
    fn optional_headers_follow_the_standard_ones() {
        let out = request(&ClientRequest {
            origin: Some("https://app.example"),
            protocols: &["chat.v2", "chat.v1"],
            extensions: Some("permessage-deflate; client_max_window_bits"),
            headers: &[("Authorization", "Bearer t"), ("X-Trace", "1")],
            ..plain()
        });
        let tail = "Sec-WebSocket-Version: 13\r\n\
             Origin: https://app.example\r\n\
             Sec-WebSocket-Protocol: chat.v2, chat.v1\r\n\
             Sec-WebSocket-Extensions: permessage-deflate; client_max_window_bits\r\n\
             Authorization: Bearer t\r\n\
             X-Trace: 1\r\n\r\n";
        assert!(out.ends_with(tail), "{out}");
        let parsed = parse_request(out.as_bytes(), &HandshakeLimits::default())
            .unwrap()
            .unwrap();
        assert_eq!(parsed.origin, Some("https://app.example"));
        assert_eq!(parsed.protocols, Some("chat.v2, chat.v1"));
        assert_eq!(parsed.authorization, Some("Bearer t"));
    }

    #[test]
    fn extra_headers_replace_remove_and_last_one_wins() {
        let out = request(&ClientRequest {
            headers: &[
                ("sec-websocket-version", "8"),
                ("Connection", ""),
                ("X-A", "1"),
                ("X-B", "2"),
                ("x-a", "3"),
            ],
            ..plain()
        });
        assert_eq!(
            out,
            "GET /echo?x=1 HTTP/1.1\r\n\
             Host: localhost:9001\r\n\
             Upgrade: websocket\r\n\
             Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\
             sec-websocket-version: 8\r\n\
             X-B: 2\r\n\
             x-a: 3\r\n\
             \r\n"
        );
    }

    #[test]
    fn parses_a_head_and_the_frames_after_it() {
        let mut bytes = switching("X-Multi: a\r\nx-multi:  b \r\n");
        let head_len = bytes.len();
        bytes.extend_from_slice(&[0x82, 0x00]);
        let response = head(&bytes);
        assert_eq!(
            (response.status, response.reason, response.head_len),
            (101, "Switching Protocols", head_len)
        );
        assert_eq!(response.header("upgrade"), Some(&b"websocket"[..]));
        assert_eq!(
            response.values("X-MULTI").collect::<Vec<_>>(),
            [&b"a"[..], b"b"]
        );
        assert_eq!(response.headers().count(), 5);
        assert_eq!(response.header("absent"), None);
        let upgraded = check_upgrade(&response, ACCEPT, &[], &[]).unwrap();
        assert_eq!(
            upgraded,
            Upgraded {
                head_len,
                protocol: None,
                extensions: vec![]
            }
        );
    }

    #[test]
    fn a_head_split_across_reads_needs_more_until_complete() {
        let bytes = switching("");
        for cut in 0..bytes.len() {
            assert_eq!(
                parse_response(&bytes[..cut]).unwrap().map(|h| h.status),
                None
            );
        }
        assert!(check(&bytes).is_ok());
        assert_eq!(
            response_status(b"HTTP/1.1 429 Too Many\r\nRetry"),
            Some(429)
        );
        assert_eq!(response_status(b"HTTP/1.1 42"), None);
        assert_eq!(response_status(b""), None);
    }

    #[test]
    fn refuses_what_is_not_http_and_heads_too_large() {
        for junk in [
            &b"SSH-2.0-OpenSSH\r\n"[..],
            &[0x15, 0x03, 0x03, 0x00, 0x02],
            b"HTTP/1.1 abc\r\n\r\n",
        ] {
            assert_eq!(parse_response(junk).unwrap_err(), ResponseError::NotHttp);
        }
        let endless = format!(
            "HTTP/1.1 200 OK\r\nX: {}",
            "a".repeat(MAX_RESPONSE_HEAD_BYTES)
        );
        assert_eq!(
            parse_response(endless.as_bytes()).unwrap_err(),
            ResponseError::TooLarge { status: Some(200) }
        );
        let many = format!(
            "HTTP/1.1 503 Busy\r\n{}\r\n",
            "X: y\r\n".repeat(MAX_RESPONSE_HEADERS + 1)
        );
        assert_eq!(
            parse_response(many.as_bytes()).unwrap_err(),
            ResponseError::TooLarge { status: Some(503) }
        );
        let endless_line = "H".repeat(MAX_RESPONSE_HEAD_BYTES + 1);
        assert_eq!(
            parse_response(endless_line.as_bytes()).unwrap_err(),
            ResponseError::NotHttp
        );
    }

    #[test]
    fn refuses_a_status_other_than_101() {
        let refusal = b"HTTP/1.1 503 Service Unavailable\r\nContent-Length: 5\r\n\r\nbusy\n";
        let response = head(refusal);
        assert_eq!(
            &refusal[response.head_len..],
            b"busy\n",
            "the body follows the head"
        );
        assert_eq!(
            check_upgrade(&response, ACCEPT, &[], &[]),
            Err(UpgradeError::Status(503))
        );
    }

    #[test]
    fn refuses_a_missing_or_wrong_upgrade_or_connection_header() {
        let with = |lines: &str| {
            format!(
                "HTTP/1.1 101 OK\r\n{lines}Sec-WebSocket-Accept: s3pPLMBiTxaQ9kYGzzhZRbK+xOo=\r\n\r\n"
            )
        };
        let got = |value: &str| Some(value.to_owned());
        let cases = [
            (
                "Connection: upgrade\r\n",
                UpgradeError::UpgradeHeader { got: None },
            ),
            (
                "Upgrade: h2c\r\nConnection: upgrade\r\n",
                UpgradeError::UpgradeHeader { got: got("h2c") },
            ),
            (
                "Upgrade: websocket\r\n",
                UpgradeError::ConnectionHeader { got: None },
            ),
            (
                "Upgrade: websocket\r\nConnection: keep-alive\r\n",
                UpgradeError::ConnectionHeader {
                    got: got("keep-alive"),
                },
            ),
        ];
        for (lines, error) in cases {
            assert_eq!(check(with(lines).as_bytes()), Err(error), "{lines}");
        }
        let any_case = with("Upgrade: WebSocket\r\nConnection: keep-alive, UPGRADE\r\n");
        assert!(check(any_case.as_bytes()).is_ok());
    }

    #[test]
    fn refuses_a_missing_or_wrong_accept() {
        let missing = b"HTTP/1.1 101 OK\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\r\n";
        assert_eq!(check(missing), Err(UpgradeError::AcceptMissing));
        let wrong = b"HTTP/1.1 101 OK\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
            Sec-WebSocket-Accept: AAAALMBiTxaQ9kYGzzhZRbK+xOo=\r\n\r\n";
        assert_eq!(
            check(wrong),
            Err(UpgradeError::AcceptWrong {
                expected: "s3pPLMBiTxaQ9kYGzzhZRbK+xOo=".into(),
                got: "AAAALMBiTxaQ9kYGzzhZRbK+xOo=".into()
            })
        );
        assert_eq!(&accept_key(KEY.as_bytes()), ACCEPT);
    }

    #[test]
    fn a_subprotocol_must_be_one_offered() {
        let offered = ["chat", "superchat"];
        let bytes = switching("Sec-WebSocket-Protocol: superchat\r\n");
        let upgraded = check_upgrade(&head(&bytes), ACCEPT, &offered, &[]).unwrap();
        assert_eq!(upgraded.protocol, Some("superchat"));
        let none = switching("");
        let upgraded = check_upgrade(&head(&none), ACCEPT, &offered, &[]).unwrap();
        assert_eq!(upgraded.protocol, None);
        let other = switching("Sec-WebSocket-Protocol: mqtt\r\n");
        assert_eq!(
            check_upgrade(&head(&other), ACCEPT, &offered, &[]),
            Err(UpgradeError::ProtocolNotOffered {
                got: "mqtt".into(),
                offered: vec!["chat".into(), "superchat".into()]
            })
        );
        assert!(matches!(
            check(&bytes),
            Err(UpgradeError::ProtocolNotOffered { .. })
        ));
        let two =
            switching("Sec-WebSocket-Protocol: chat\r\nSec-WebSocket-Protocol: superchat\r\n");
        assert_eq!(
            check_upgrade(&head(&two), ACCEPT, &offered, &[]),
            Err(UpgradeError::ProtocolNotOffered {
                got: "chat, superchat".into(),
                offered: vec!["chat".into(), "superchat".into()]
            })
        );
    }

    #[test]
    fn an_extension_must_be_one_offered() {
        let bytes = switching(
            "Sec-WebSocket-Extensions: permessage-deflate; server_no_context_takeover\r\n",
        );
        assert_eq!(
            check(&bytes),
            Err(UpgradeError::ExtensionNotOffered {
                got: "permessage-deflate; server_no_context_takeover".into(),
                offered: vec![]
            })
        );
        let upgraded = check_upgrade(&head(&bytes), ACCEPT, &[], &["permessage-deflate"]).unwrap();
        assert_eq!(upgraded.extensions, ["permessage-deflate"]);
        let more = switching("Sec-WebSocket-Extensions: permessage-deflate, x-other\r\n");
        assert!(matches!(
            check_upgrade(&head(&more), ACCEPT, &[], &["permessage-deflate"]),
            Err(UpgradeError::ExtensionNotOffered { .. })
        ));
    }

    #[test]
    fn the_deflate_answer_is_judged_against_the_offer() {
        let ringws = switching(
            "Sec-WebSocket-Extensions: permessage-deflate; server_no_context_takeover; \
             client_no_context_takeover\r\n",
        );
        let answer = deflate_answer(&head(&ringws), deflate::CLIENT_OFFER).unwrap();
        assert!(answer.unwrap().server_no_context_takeover);
        assert_eq!(
            deflate_answer(&head(&switching("")), deflate::CLIENT_OFFER),
            Ok(None)
        );
        let takeover = switching("Sec-WebSocket-Extensions: permessage-deflate\r\n");
        assert_eq!(
            deflate_answer(&head(&takeover), deflate::CLIENT_OFFER),
            Err(UpgradeError::DeflateAnswer {
                got: "permessage-deflate".into(),
                error: AnswerError::ContextTakeover
            })
        );
        // A browser's offer does not ask for it.
        let browser = "permessage-deflate; client_max_window_bits";
        assert_eq!(
            deflate_answer(&head(&takeover), browser),
            Ok(Some(Answer::default()))
        );
        let window = switching(
            "Sec-WebSocket-Extensions: permessage-deflate; server_no_context_takeover\r\n\
             Sec-WebSocket-Extensions: permessage-deflate; server_no_context_takeover\r\n",
        );
        let err = deflate_answer(&head(&window), deflate::CLIENT_OFFER).unwrap_err();
        assert_eq!(
            err.to_string(),
            "the server's permessage-deflate answer \"permessage-deflate; \
             server_no_context_takeover, permessage-deflate; server_no_context_takeover\" is \
             invalid: permessage-deflate is accepted more than once"
        );
    }

    #[test]
    fn errors_read_as_sentences() {
        assert_eq!(
            UpgradeError::UpgradeHeader { got: None }.to_string(),
            "the 101 has no Upgrade header instead of \"Upgrade: websocket\""
        );
        assert_eq!(
            UpgradeError::Status(404).to_string(),
            "the server answered 404 instead of 101 Switching Protocols"
        );
    }
}
