//! Why a handshake was refused: one enum, so every refusal is answered, logged and counted alike.

/// Every reason ringws refuses an upgrade request.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum RefusalReason {
    /// The request head is not valid HTTP/1.1 (400).
    MalformedRequest,
    /// Bytes that look like a TLS ClientHello reached the plain ws:// port (400).
    TlsOnPlainPort,
    /// HTTP/1.0 or older (400).
    HttpVersion,
    /// A method other than GET (405, `Allow: GET`).
    MethodNotAllowed,
    /// The request head exceeds the configured limit (431).
    HeadTooLarge,
    /// A GET with neither Upgrade nor Connection: upgrade: an ordinary HTTP request (426).
    NotAnUpgrade,
    /// `Upgrade` header missing while `Connection: upgrade` is present (400).
    MissingUpgrade,
    /// `Upgrade` present but without the `websocket` token (400).
    UpgradeNotWebsocket,
    /// `Connection` header missing or without the `upgrade` token (400).
    MissingConnectionUpgrade,
    /// No `Sec-WebSocket-Key` (400).
    MissingKey,
    /// `Sec-WebSocket-Key` does not decode to exactly 16 bytes (400).
    BadKey,
    /// `Sec-WebSocket-Version` missing or not 13 (426, `Sec-WebSocket-Version: 13`).
    UnsupportedVersion,
    /// The request carries a body (Content-Length > 0 or Transfer-Encoding) (400).
    RequestBody,
    /// The path is not served by the app (404).
    NotFound,
    /// The server is at `max_connections` (503, `Retry-After`).
    ServerFull,
    /// The `Origin` is not in `allowed_origins` (403).
    OriginNotAllowed,
    /// No `Origin` header while `allow_missing_origin` is false (403).
    MissingOrigin,
    /// The client offered none of the server's subprotocols and one is required (400).
    SubprotocolMismatch,
    /// No token, or a token that failed verification (401, `WWW-Authenticate: Bearer ...`).
    Unauthorized,
    /// Too many handshakes from this client address (429, `Retry-After`).
    RateLimited,
    /// `Host` missing, repeated, or not `host[:port]` (400, RFC 9112 §3.2).
    BadHost,
    /// `Sec-WebSocket-Version: 13` sent more than once (400, RFC 6455 §4.2.1).
    RepeatedVersion,
    /// The connections' buffers are near `memory_budget` (503, `Retry-After`).
    OverMemoryBudget,
    /// The credentials may not subscribe to a `?topic=` of the URL (403).
    TopicForbidden,
}

impl RefusalReason {
    /// All variants, for registering metrics up front.
    pub const ALL: &'static [RefusalReason] = &[
        RefusalReason::MalformedRequest,
        RefusalReason::TlsOnPlainPort,
        RefusalReason::HttpVersion,
        RefusalReason::MethodNotAllowed,
        RefusalReason::HeadTooLarge,
        RefusalReason::NotAnUpgrade,
        RefusalReason::MissingUpgrade,
        RefusalReason::UpgradeNotWebsocket,
        RefusalReason::MissingConnectionUpgrade,
        RefusalReason::MissingKey,
        RefusalReason::BadKey,
        RefusalReason::UnsupportedVersion,
        RefusalReason::RequestBody,
        RefusalReason::NotFound,
        RefusalReason::ServerFull,
        RefusalReason::OriginNotAllowed,
        RefusalReason::MissingOrigin,
        RefusalReason::SubprotocolMismatch,
        RefusalReason::Unauthorized,
        RefusalReason::RateLimited,
        RefusalReason::BadHost,
        RefusalReason::RepeatedVersion,
        RefusalReason::OverMemoryBudget,
        RefusalReason::TopicForbidden,
    ];

    /// HTTP status code of the answer.
    pub fn status(self) -> u16 {
        match self {
            RefusalReason::MalformedRequest
            | RefusalReason::TlsOnPlainPort
            | RefusalReason::HttpVersion
            | RefusalReason::MissingUpgrade
            | RefusalReason::UpgradeNotWebsocket
            | RefusalReason::MissingConnectionUpgrade
            | RefusalReason::MissingKey
            | RefusalReason::BadKey
            | RefusalReason::RequestBody
            | RefusalReason::SubprotocolMismatch
            | RefusalReason::BadHost
            | RefusalReason::RepeatedVersion => 400,
            RefusalReason::Unauthorized => 401,
            RefusalReason::OriginNotAllowed
            | RefusalReason::MissingOrigin
            | RefusalReason::TopicForbidden => 403,
            RefusalReason::NotFound => 404,
            RefusalReason::MethodNotAllowed => 405,
            RefusalReason::NotAnUpgrade | RefusalReason::UnsupportedVersion => 426,
            RefusalReason::RateLimited => 429,
            RefusalReason::HeadTooLarge => 431,
            RefusalReason::ServerFull | RefusalReason::OverMemoryBudget => 503,
        }
    }

    /// snake_case label used in metrics and logs, e.g. `missing_upgrade`.
    pub fn label(self) -> &'static str {
        match self {
            RefusalReason::MalformedRequest => "malformed_request",
            RefusalReason::TlsOnPlainPort => "tls_on_plain_port",
            RefusalReason::HttpVersion => "http_version",
            RefusalReason::MethodNotAllowed => "method_not_allowed",
            RefusalReason::HeadTooLarge => "head_too_large",
            RefusalReason::NotAnUpgrade => "not_an_upgrade",
            RefusalReason::MissingUpgrade => "missing_upgrade",
            RefusalReason::UpgradeNotWebsocket => "upgrade_not_websocket",
            RefusalReason::MissingConnectionUpgrade => "missing_connection_upgrade",
            RefusalReason::MissingKey => "missing_key",
            RefusalReason::BadKey => "bad_key",
            RefusalReason::UnsupportedVersion => "unsupported_version",
            RefusalReason::RequestBody => "request_body",
            RefusalReason::NotFound => "not_found",
            RefusalReason::ServerFull => "server_full",
            RefusalReason::OverMemoryBudget => "memory_budget",
            RefusalReason::OriginNotAllowed => "origin_not_allowed",
            RefusalReason::MissingOrigin => "missing_origin",
            RefusalReason::SubprotocolMismatch => "subprotocol_mismatch",
            RefusalReason::Unauthorized => "unauthorized",
            RefusalReason::RateLimited => "rate_limited",
            RefusalReason::BadHost => "bad_host",
            RefusalReason::RepeatedVersion => "repeated_version",
            RefusalReason::TopicForbidden => "topic_forbidden",
        }
    }

    /// The one-line plain-text reason sent as the response body (no trailing newline).
    pub fn message(self) -> &'static str {
        match self {
            RefusalReason::MalformedRequest => {
                "malformed HTTP request: expected an HTTP/1.1 request line and headers with an \
                 origin-form target, e.g. \"GET /chat HTTP/1.1\""
            }
            RefusalReason::TlsOnPlainPort => {
                "TLS (wss://) reached a plain ws:// port: put a TLS terminator in front of this \
                 server, or connect with ws://"
            }
            RefusalReason::HttpVersion => {
                "HTTP/1.0 request: the WebSocket upgrade requires HTTP/1.1 (a proxy in front may \
                 be downgrading the request)"
            }
            RefusalReason::MethodNotAllowed => {
                "method not allowed: a WebSocket upgrade request must use GET"
            }
            RefusalReason::HeadTooLarge => {
                "request head too large or too many headers: the request line and headers exceed \
                 the server's limits (look for oversized cookies or repeated headers)"
            }
            RefusalReason::NotAnUpgrade => {
                "this is a WebSocket endpoint and a plain HTTP request was received: connect with \
                 a WebSocket client, or check that no proxy in front strips the Upgrade and \
                 Connection headers"
            }
            RefusalReason::MissingUpgrade => {
                "missing \"Upgrade: websocket\" header (a proxy in front may be stripping \
                 hop-by-hop headers)"
            }
            RefusalReason::UpgradeNotWebsocket => {
                "the \"Upgrade\" header does not name websocket: this endpoint only upgrades to \
                 \"Upgrade: websocket\""
            }
            RefusalReason::MissingConnectionUpgrade => {
                "missing \"Connection: Upgrade\" header (a proxy in front may be stripping \
                 hop-by-hop headers)"
            }
            RefusalReason::MissingKey => {
                "missing \"Sec-WebSocket-Key\" header: the client must send 16 random bytes, \
                 base64-encoded"
            }
            RefusalReason::BadKey => {
                "invalid \"Sec-WebSocket-Key\": it must appear once and be 16 random bytes, \
                 base64-encoded with padding (24 characters)"
            }
            RefusalReason::UnsupportedVersion => {
                "missing or unsupported \"Sec-WebSocket-Version\": this server speaks WebSocket \
                 version 13 (RFC 6455)"
            }
            RefusalReason::RequestBody => {
                "the upgrade request must not carry a body (non-zero Content-Length or any \
                 Transfer-Encoding)"
            }
            RefusalReason::NotFound => "no WebSocket endpoint at this path",
            RefusalReason::ServerFull => "the server is at its connection limit: retry in a moment",
            RefusalReason::OverMemoryBudget => {
                "the server's connections hold nearly all of its memory_budget: retry in a moment"
            }
            RefusalReason::OriginNotAllowed => {
                "origin not allowed: open the page from an origin in the server's allowed_origins, \
                 or add this origin there"
            }
            RefusalReason::MissingOrigin => {
                "missing \"Origin\" header: this server requires one (allow_missing_origin is \
                 false); browsers always send it, other clients must set it"
            }
            RefusalReason::SubprotocolMismatch => {
                "no common subprotocol: offer one of the server's subprotocols in \
                 \"Sec-WebSocket-Protocol\""
            }
            RefusalReason::TopicForbidden => {
                "topic forbidden: the token does not grant subscribing to a topic named in the \
                 URL (?topic=)"
            }
            RefusalReason::Unauthorized => {
                "authentication failed: send a valid token as \"Authorization: Bearer <token>\" \
                 or as the query parameter ?token=<token>"
            }
            RefusalReason::RateLimited => {
                "too many handshakes from this address: wait for the seconds in Retry-After, \
                 then reconnect with back-off"
            }
            RefusalReason::BadHost => {
                "missing, repeated or invalid \"Host\" header: an HTTP/1.1 request carries exactly \
                 one Host naming the server as host or host:port (RFC 9112 section 3.2)"
            }
            RefusalReason::RepeatedVersion => {
                "\"Sec-WebSocket-Version\" appears more than once: send it once, with the value 13 \
                 (RFC 6455 section 4.2.1)"
            }
        }
    }

    /// The reason phrase of the status line, e.g. `Bad Request`.
    pub fn reason_phrase(self) -> &'static str {
        match self.status() {
            400 => "Bad Request",
            401 => "Unauthorized",
            403 => "Forbidden",
            404 => "Not Found",
            405 => "Method Not Allowed",
            426 => "Upgrade Required",
            429 => "Too Many Requests",
            431 => "Request Header Fields Too Large",
            503 => "Service Unavailable",
            other => unreachable!("status {other} has no reason phrase"),
        }
    }

    /// Headers this refusal must carry besides the common ones, as `(name, value)` pairs.
    ///
    /// A 426 names the protocol to upgrade to (RFC 9110 §15.5.22) and, for WebSocket, the
    /// version the server speaks (RFC 6455 §4.4). The headers whose value depends on the
    /// refusal (`Retry-After` of a 429, `WWW-Authenticate` of a 401) are [`Refusal::headers`]'s.
    pub fn headers(self) -> &'static [(&'static str, &'static str)] {
        match self {
            RefusalReason::MethodNotAllowed => &[("Allow", "GET")],
            RefusalReason::NotAnUpgrade | RefusalReason::UnsupportedVersion => {
                &[("Sec-WebSocket-Version", "13"), ("Upgrade", "websocket")]
            }
            RefusalReason::ServerFull | RefusalReason::OverMemoryBudget => &[("Retry-After", "1")],
            _ => &[],
        }
    }
}

/// Longest [`Refusal::detail`] kept, in bytes; longer details are cut at a character boundary.
pub const MAX_DETAIL_BYTES: usize = 512;

/// How a 404's detail starts when it lists the paths the app serves ([`Refusal::not_found`]).
pub const SERVED_PATHS: &str = "the app serves ";

/// The paths a 404's detail lists, read back from the line after the reason's message.
pub fn served_paths(detail: &str) -> Option<Vec<&str>> {
    let list = detail.strip_prefix(SERVED_PATHS)?;
    Some(list.split(", ").filter(|p| p.starts_with('/')).collect())
}

/// The realm named in every `WWW-Authenticate` challenge.
pub const AUTH_REALM: &str = "ringws";

/// What a 401 asks for in `WWW-Authenticate` (RFC 6750 §3).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum BearerChallenge {
    /// No token was sent: `Bearer realm="ringws"` (RFC 6750 §3.1: no error code).
    Missing,
    /// A token was sent and refused: `error="invalid_token"` with this short description
    /// (printable ASCII without `"` or `\`; never the token or the secret).
    InvalidToken { description: &'static str },
}

/// A refusal: the reason plus what the answer needs beyond it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Refusal {
    pub reason: RefusalReason,
    /// Specifics appended to the reason's message after ": ", e.g. the origin that was refused
    /// and the allowed ones. One line of printable ASCII, at most [`MAX_DETAIL_BYTES`].
    pub detail: Option<String>,
    /// `Retry-After` seconds of a [`RefusalReason::RateLimited`] answer (default 1).
    pub retry_after_s: Option<u32>,
    /// The challenge of a [`RefusalReason::Unauthorized`] answer (default `Missing`).
    pub bearer: Option<BearerChallenge>,
}

impl Refusal {
    pub fn new(reason: RefusalReason) -> Self {
        Refusal {
            reason,
            detail: None,
            retry_after_s: None,
            bearer: None,
        }
    }

    /// A refusal whose body carries `detail` after the reason's message. Control and non-ASCII
    /// characters are escaped and the detail is bounded, so it stays one short line whatever
    /// the client sent.
    pub fn with_detail(reason: RefusalReason, detail: impl AsRef<str>) -> Self {
        Refusal {
            detail: Some(one_line(detail.as_ref(), MAX_DETAIL_BYTES)),
            ..Refusal::new(reason)
        }
    }

    /// 404 naming the paths the app upgrades on (`paths`; none named when empty), so that a
    /// client (and `ringws doctor`) can tell which URL to use.
    pub fn not_found(paths: &[&str]) -> Self {
        if paths.is_empty() {
            return Refusal::new(RefusalReason::NotFound);
        }
        Refusal::with_detail(
            RefusalReason::NotFound,
            format!("{SERVED_PATHS}{}", paths.join(", ")),
        )
    }

    /// 429 with `Retry-After: retry_after_s` (at least 1).
    pub fn rate_limited(retry_after_s: u32) -> Self {
        let retry_after_s = retry_after_s.max(1);
        Refusal {
            retry_after_s: Some(retry_after_s),
            ..Refusal::with_detail(
                RefusalReason::RateLimited,
                format!("retry in {retry_after_s} s"),
            )
        }
    }

    /// 401 with the challenge for `bearer` and `detail` (what exactly was wrong) in the body.
    pub fn unauthorized(bearer: BearerChallenge, detail: impl AsRef<str>) -> Self {
        Refusal {
            bearer: Some(bearer),
            ..Refusal::with_detail(RefusalReason::Unauthorized, detail)
        }
    }

    /// The one-line body without the trailing newline: the reason's message, then the detail.
    pub fn message(&self) -> std::borrow::Cow<'static, str> {
        match &self.detail {
            None => self.reason.message().into(),
            Some(detail) => format!("{}: {detail}", self.reason.message()).into(),
        }
    }

    /// Headers whose value depends on this refusal, after the reason's fixed ones.
    pub fn headers(&self) -> Option<(&'static str, String)> {
        match self.reason {
            RefusalReason::RateLimited => Some((
                "Retry-After",
                self.retry_after_s.unwrap_or(1).max(1).to_string(),
            )),
            RefusalReason::Unauthorized => Some((
                "WWW-Authenticate",
                match self.bearer.unwrap_or(BearerChallenge::Missing) {
                    BearerChallenge::Missing => format!("Bearer realm=\"{AUTH_REALM}\""),
                    BearerChallenge::InvalidToken { description } => format!(
                        "Bearer realm=\"{AUTH_REALM}\", error=\"invalid_token\", \
                         error_description=\"{}\"",
                        quotable(description)
                    ),
                },
            )),
            _ => None,
        }
    }
}

impl From<RefusalReason> for Refusal {
    fn from(reason: RefusalReason) -> Self {
        Refusal::new(reason)
    }
}

impl std::fmt::Display for Refusal {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.message())
    }
}

/// `text` as printable ASCII on one line: other characters are escaped (`\n`, `\u{e9}`), and
/// the result is cut to at most `max_bytes`, ending in "..." when cut.
pub fn one_line(text: &str, max_bytes: usize) -> String {
    let mut out = String::with_capacity(text.len().min(max_bytes));
    for c in text.chars() {
        if (' '..='~').contains(&c) {
            out.push(c);
        } else {
            out.extend(c.escape_default());
        }
        if out.len() > max_bytes {
            // Everything pushed is ASCII, so any byte index is a character boundary.
            out.truncate(max_bytes.saturating_sub(3));
            out.push_str("...");
            break;
        }
    }
    out
}

/// RFC 6750 §3: error_description is %x20-21 / %x23-5B / %x5D-7E.
fn quotable(description: &str) -> String {
    description
        .chars()
        .map(|c| match c {
            '"' | '\\' => '\'',
            c if (' '..='~').contains(&c) => c,
            _ => '?',
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashSet;

    /// Exhaustive, so adding a variant without listing it here (and in `ALL`) fails to compile.
    fn index_in_all(reason: RefusalReason) -> usize {
        match reason {
            RefusalReason::MalformedRequest => 0,
            RefusalReason::TlsOnPlainPort => 1,
            RefusalReason::HttpVersion => 2,
            RefusalReason::MethodNotAllowed => 3,
            RefusalReason::HeadTooLarge => 4,
            RefusalReason::NotAnUpgrade => 5,
            RefusalReason::MissingUpgrade => 6,
            RefusalReason::UpgradeNotWebsocket => 7,
            RefusalReason::MissingConnectionUpgrade => 8,
            RefusalReason::MissingKey => 9,
            RefusalReason::BadKey => 10,
            RefusalReason::UnsupportedVersion => 11,
            RefusalReason::RequestBody => 12,
            RefusalReason::NotFound => 13,
            RefusalReason::ServerFull => 14,
            RefusalReason::OriginNotAllowed => 15,
            RefusalReason::MissingOrigin => 16,
            RefusalReason::SubprotocolMismatch => 17,
            RefusalReason::Unauthorized => 18,
            RefusalReason::RateLimited => 19,
            RefusalReason::BadHost => 20,
            RefusalReason::RepeatedVersion => 21,
            RefusalReason::OverMemoryBudget => 22,
            RefusalReason::TopicForbidden => 23,
        }
    }

    #[test]
    fn all_lists_every_variant_once() {
        assert_eq!(RefusalReason::ALL.len(), 24);
        for (i, &reason) in RefusalReason::ALL.iter().enumerate() {
            assert_eq!(index_in_all(reason), i, "{reason:?} out of place in ALL");
        }
    }

    #[test]
    fn statuses() {
        use RefusalReason::*;
        let expected = [
            (MalformedRequest, 400),
            (TlsOnPlainPort, 400),
            (HttpVersion, 400),
            (MethodNotAllowed, 405),
            (HeadTooLarge, 431),
            (NotAnUpgrade, 426),
            (MissingUpgrade, 400),
            (UpgradeNotWebsocket, 400),
            (MissingConnectionUpgrade, 400),
            (MissingKey, 400),
            (BadKey, 400),
            (UnsupportedVersion, 426),
            (RequestBody, 400),
            (NotFound, 404),
            (ServerFull, 503),
            (OriginNotAllowed, 403),
            (MissingOrigin, 403),
            (SubprotocolMismatch, 400),
            (Unauthorized, 401),
            (RateLimited, 429),
            (BadHost, 400),
            (RepeatedVersion, 400),
            (OverMemoryBudget, 503),
            (TopicForbidden, 403),
        ];
        assert_eq!(expected.len(), RefusalReason::ALL.len());
        for (reason, status) in expected {
            assert_eq!(reason.status(), status, "{reason:?}");
        }
    }

    #[test]
    fn labels_are_unique_snake_case() {
        let mut seen = HashSet::new();
        for &reason in RefusalReason::ALL {
            let label = reason.label();
            assert!(!label.is_empty());
            assert!(
                label.bytes().all(|b| b.is_ascii_lowercase() || b == b'_'),
                "label {label:?} is not snake_case"
            );
            assert!(
                !label.starts_with('_') && !label.ends_with('_'),
                "{label:?}"
            );
            assert!(seen.insert(label), "duplicate label {label:?}");
        }
        assert_eq!(RefusalReason::MissingUpgrade.label(), "missing_upgrade");
        assert_eq!(RefusalReason::TlsOnPlainPort.label(), "tls_on_plain_port");
    }

    #[test]
    fn messages_are_single_plain_lines() {
        let mut seen = HashSet::new();
        for &reason in RefusalReason::ALL {
            let message = reason.message();
            assert!(
                message.len() > 10,
                "{reason:?} message too short: {message:?}"
            );
            assert!(
                message.bytes().all(|b| (0x20..0x7f).contains(&b)),
                "{reason:?} message is not one line of printable ASCII: {message:?}"
            );
            assert_eq!(
                message.trim(),
                message,
                "{reason:?} message has stray whitespace"
            );
            assert!(
                !message.contains("  "),
                "{reason:?} message has a doubled space"
            );
            assert!(seen.insert(message), "duplicate message for {reason:?}");
        }
    }

    #[test]
    fn messages_name_the_likely_cause() {
        use RefusalReason::*;
        assert_eq!(
            MissingUpgrade.message(),
            "missing \"Upgrade: websocket\" header (a proxy in front may be stripping hop-by-hop \
             headers)"
        );
        assert!(MissingConnectionUpgrade.message().contains("hop-by-hop"));
        assert!(TlsOnPlainPort.message().contains("wss://"));
        assert!(TlsOnPlainPort.message().contains("ws://"));
        assert!(TlsOnPlainPort.message().contains("TLS terminator"));
        assert!(NotAnUpgrade.message().contains("WebSocket endpoint"));
        assert!(NotAnUpgrade.message().contains("proxy"));
        assert!(HeadTooLarge.message().contains("too many headers"));
        assert!(UnsupportedVersion.message().contains("13"));
    }

    #[test]
    fn reason_specific_headers() {
        use RefusalReason::*;
        assert_eq!(MethodNotAllowed.headers(), &[("Allow", "GET")]);
        assert_eq!(ServerFull.headers(), &[("Retry-After", "1")]);
        assert_eq!(OverMemoryBudget.headers(), &[("Retry-After", "1")]);
        for reason in [NotAnUpgrade, UnsupportedVersion] {
            assert!(reason.headers().contains(&("Sec-WebSocket-Version", "13")));
            assert!(reason.headers().contains(&("Upgrade", "websocket")));
        }
        for &reason in RefusalReason::ALL {
            if ![
                MethodNotAllowed,
                ServerFull,
                OverMemoryBudget,
                NotAnUpgrade,
                UnsupportedVersion,
            ]
            .contains(&reason)
            {
                assert!(reason.headers().is_empty(), "{reason:?}");
            }
        }
    }

    #[test]
    fn every_status_has_a_reason_phrase() {
        for &reason in RefusalReason::ALL {
            assert!(!reason.reason_phrase().is_empty());
        }
        assert_eq!(
            RefusalReason::HeadTooLarge.reason_phrase(),
            "Request Header Fields Too Large"
        );
        assert_eq!(
            RefusalReason::NotAnUpgrade.reason_phrase(),
            "Upgrade Required"
        );
        assert_eq!(
            RefusalReason::ServerFull.reason_phrase(),
            "Service Unavailable"
        );
    }

    #[test]
    fn refusal_from_reason() {
        let refusal: Refusal = RefusalReason::NotFound.into();
        assert_eq!(refusal, Refusal::new(RefusalReason::NotFound));
        assert_eq!(refusal.detail, None);
        assert_eq!(refusal.message(), RefusalReason::NotFound.message());
        assert_eq!(refusal.headers(), None);
    }

    #[test]
    fn a_404_names_the_paths_and_reads_back() {
        let refusal = Refusal::not_found(&["/ws", "/"]);
        assert_eq!(
            refusal.message(),
            "no WebSocket endpoint at this path: the app serves /ws, /"
        );
        assert_eq!(
            served_paths("the app serves /ws, /"),
            Some(vec!["/ws", "/"])
        );
        assert_eq!(served_paths("something else"), None);
        assert_eq!(
            Refusal::not_found(&[]),
            Refusal::new(RefusalReason::NotFound)
        );
    }

    #[test]
    fn detail_follows_the_message() {
        let refusal = Refusal::with_detail(
            RefusalReason::OriginNotAllowed,
            "origin \"https://evil.example\"; allowed: https://app.example, *.example.com",
        );
        assert_eq!(
            refusal.message(),
            format!(
                "{}: origin \"https://evil.example\"; allowed: https://app.example, \
                 *.example.com",
                RefusalReason::OriginNotAllowed.message()
            )
        );
        assert_eq!(refusal.to_string(), refusal.message());
    }

    #[test]
    fn detail_is_one_bounded_line_whatever_the_client_sent() {
        let refusal = Refusal::with_detail(
            RefusalReason::OriginNotAllowed,
            "origin \"a\r\nSet-Cookie: x\u{e9}\"",
        );
        let detail = refusal.detail.as_deref().unwrap();
        assert_eq!(detail, "origin \"a\\r\\nSet-Cookie: x\\u{e9}\"");
        let long = Refusal::with_detail(RefusalReason::OriginNotAllowed, "x".repeat(10_000));
        let detail = long.detail.unwrap();
        assert_eq!(detail.len(), MAX_DETAIL_BYTES);
        assert!(detail.ends_with("..."));
        let exact = "y".repeat(MAX_DETAIL_BYTES);
        assert_eq!(one_line(&exact, MAX_DETAIL_BYTES), exact);
        let escaped = one_line(&"\u{1F600}".repeat(100), 40);
        assert!(escaped.len() <= 40 && escaped.ends_with("..."), "{escaped}");
        assert!(escaped.bytes().all(|b| (0x20..0x7f).contains(&b)));
    }

    #[test]
    fn rate_limited_carries_retry_after() {
        let refusal = Refusal::rate_limited(7);
        assert_eq!(refusal.reason, RefusalReason::RateLimited);
        assert_eq!(refusal.headers(), Some(("Retry-After", "7".to_owned())));
        assert!(refusal.message().ends_with(": retry in 7 s"));
        assert_eq!(
            Refusal::rate_limited(0).headers(),
            Some(("Retry-After", "1".to_owned()))
        );
        assert_eq!(
            Refusal::new(RefusalReason::RateLimited).headers(),
            Some(("Retry-After", "1".to_owned()))
        );
    }

    #[test]
    fn unauthorized_challenges_follow_rfc_6750() {
        let missing = Refusal::unauthorized(BearerChallenge::Missing, "no token was sent");
        assert_eq!(
            missing.headers(),
            Some(("WWW-Authenticate", "Bearer realm=\"ringws\"".to_owned()))
        );
        assert_eq!(
            Refusal::new(RefusalReason::Unauthorized).headers(),
            missing.headers()
        );
        let expired = Refusal::unauthorized(
            BearerChallenge::InvalidToken {
                description: "the token \"has\" expired",
            },
            "the token expired at 2024-01-01T00:00:00Z",
        );
        assert_eq!(
            expired.headers(),
            Some((
                "WWW-Authenticate",
                "Bearer realm=\"ringws\", error=\"invalid_token\", \
                 error_description=\"the token 'has' expired\""
                    .to_owned()
            ))
        );
        assert_eq!(expired.reason.status(), 401);
    }
}
