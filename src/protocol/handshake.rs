//! The HTTP/1.1 upgrade request (RFC 6455 §4.2), parsed in place on the accepted socket's bytes.
//! INTERFACE FIXED: the reactor calls exactly these signatures.

use super::refusal::{Refusal, RefusalReason};

/// The magic GUID of RFC 6455 §1.3.
pub const WS_GUID: &str = "258EAFA5-E914-47DA-95CA-C5AB0DC85B11";

#[derive(Clone, Copy, Debug)]
pub struct HandshakeLimits {
    /// Largest accepted request head (request line + headers + blank line). Default 8 KiB.
    pub max_head_bytes: usize,
    /// Most headers parsed. Default 64.
    pub max_headers: usize,
}

impl Default for HandshakeLimits {
    fn default() -> Self {
        HandshakeLimits { max_head_bytes: 8 * 1024, max_headers: 64 }
    }
}

/// A valid upgrade request, borrowing from the input buffer.
#[derive(Debug)]
pub struct UpgradeRequest<'a> {
    /// Bytes of the request head, including the final CRLFCRLF; bytes after it are frames.
    pub head_len: usize,
    /// Path without the query string.
    pub path: &'a str,
    /// Query string without '?', if any.
    pub query: Option<&'a str>,
    /// The Sec-WebSocket-Key value (24 base64 chars decoding to 16 bytes).
    pub key: &'a [u8],
    pub origin: Option<&'a str>,
    /// Raw Sec-WebSocket-Protocol header values (comma separated lists), may be empty.
    pub protocols: Option<&'a str>,
    /// Raw Sec-WebSocket-Extensions values; ringws declines all extensions.
    pub extensions: Option<&'a str>,
}

/// Parses an upgrade request from the bytes received so far.
///
/// `Ok(None)`: the head is incomplete and still under `limits.max_head_bytes`: read more.
/// `Err(refusal)`: answer with [`write_refusal`] and close. Path routing (404) is the caller's.
pub fn parse_request<'a>(buf: &'a [u8], limits: &HandshakeLimits) -> Result<Option<UpgradeRequest<'a>>, Refusal> {
    todo!()
}

/// `base64(sha1(key ++ WS_GUID))`, 28 bytes.
pub fn accept_key(key: &[u8]) -> [u8; 28] {
    todo!()
}

/// Appends the `101 Switching Protocols` response to `out`. `protocol` is the chosen
/// subprotocol, if any.
pub fn write_accept(out: &mut Vec<u8>, key: &[u8], protocol: Option<&str>) {
    todo!()
}

/// Appends the full refusal response (status line, `Content-Type: text/plain; charset=utf-8`,
/// `Content-Length`, `Connection: close`, reason-specific headers such as `Allow: GET`,
/// `Sec-WebSocket-Version: 13` or `Retry-After`, and the one-line reason plus "\n" as body).
pub fn write_refusal(out: &mut Vec<u8>, refusal: &Refusal) {
    todo!()
}

/// Builds a client upgrade request (used by `ringws bench` and tests).
pub fn write_client_request(out: &mut Vec<u8>, host: &str, path: &str, key: &[u8]) {
    todo!()
}
