//! Why a handshake was refused: one enum, so every refusal is answered, logged and counted alike.
//! INTERFACE FIXED (variants may be added by later work; labels are metric label values).

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
            | RefusalReason::RequestBody => 400,
            RefusalReason::NotFound => 404,
            RefusalReason::MethodNotAllowed => 405,
            RefusalReason::NotAnUpgrade | RefusalReason::UnsupportedVersion => 426,
            RefusalReason::HeadTooLarge => 431,
            RefusalReason::ServerFull => 503,
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
        }
    }

    /// The reason phrase of the status line, e.g. `Bad Request`.
    pub fn reason_phrase(self) -> &'static str {
        match self.status() {
            400 => "Bad Request",
            404 => "Not Found",
            405 => "Method Not Allowed",
            426 => "Upgrade Required",
            431 => "Request Header Fields Too Large",
            503 => "Service Unavailable",
            other => unreachable!("status {other} has no reason phrase"),
        }
    }

    /// Headers this refusal must carry besides the common ones, as `(name, value)` pairs.
    ///
    /// A 426 names the protocol to upgrade to (RFC 9110 §15.5.22) and, for WebSocket, the
    /// version the server speaks (RFC 6455 §4.4).
    pub fn headers(self) -> &'static [(&'static str, &'static str)] {
        match self {
            RefusalReason::MethodNotAllowed => &[("Allow", "GET")],
            RefusalReason::NotAnUpgrade | RefusalReason::UnsupportedVersion => {
                &[("Sec-WebSocket-Version", "13"), ("Upgrade", "websocket")]
            }
            RefusalReason::ServerFull => &[("Retry-After", "1")],
            _ => &[],
        }
    }
}

/// A refusal: the reason plus, for some reasons, a detail (e.g. the offending method or version).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Refusal {
    pub reason: RefusalReason,
}

impl From<RefusalReason> for Refusal {
    fn from(reason: RefusalReason) -> Self {
        Refusal { reason }
    }
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
        }
    }

    #[test]
    fn all_lists_every_variant_once() {
        assert_eq!(RefusalReason::ALL.len(), 15);
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
        for reason in [NotAnUpgrade, UnsupportedVersion] {
            assert!(reason.headers().contains(&("Sec-WebSocket-Version", "13")));
            assert!(reason.headers().contains(&("Upgrade", "websocket")));
        }
        for &reason in RefusalReason::ALL {
            if ![
                MethodNotAllowed,
                ServerFull,
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
        assert_eq!(
            refusal,
            Refusal {
                reason: RefusalReason::NotFound
            }
        );
    }
}
