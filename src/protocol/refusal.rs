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
    pub const ALL: &'static [RefusalReason] = &[];

    /// HTTP status code of the answer.
    pub fn status(self) -> u16 {
        todo!()
    }
    /// snake_case label used in metrics and logs, e.g. `missing_upgrade`.
    pub fn label(self) -> &'static str {
        todo!()
    }
    /// The one-line plain-text reason sent as the response body (no trailing newline).
    pub fn message(self) -> &'static str {
        todo!()
    }
}

/// A refusal: the reason plus, for some reasons, a detail (e.g. the offending method or version).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Refusal {
    pub reason: RefusalReason,
}
