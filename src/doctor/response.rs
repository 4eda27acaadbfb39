//! The server's answer as doctor keeps it for the diagnosis: the head (parsed and checked by the
//! protocol core's client handshake) with every header, and a refusal's body read for a reason.

use crate::protocol::client_handshake::ResponseHead;

/// Most body bytes kept from a refusal: enough for a reason line or an HTML title.
pub const MAX_BODY_BYTES: usize = 4096;

/// A response head, owned.
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
    pub fn from_head(head: &ResponseHead<'_>) -> Response {
        Response {
            status: head.status,
            reason: head.reason.to_owned(),
            headers: head
                .headers()
                .map(|(name, value)| (name.to_owned(), String::from_utf8_lossy(value).into_owned()))
                .collect(),
            head_len: head.head_len,
        }
    }

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
    use super::*;
    use crate::protocol::client_handshake::parse_response;

    fn complete(raw: &str) -> Response {
        match parse_response(raw.as_bytes()) {
            Ok(Some(head)) => Response::from_head(&head),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn keeps_every_header_in_order() {
        let r = complete(
            "HTTP/1.1 200 OK\r\nContent-Type: text/html\r\nX-A: 1\r\nx-a: 2\r\n\r\n<html>",
        );
        assert_eq!((r.status, r.reason.as_str()), (200, "OK"));
        assert_eq!(r.header("content-type"), Some("text/html"));
        assert_eq!(r.header("X-A"), Some("1"));
        assert_eq!(r.headers.len(), 3);
        assert_eq!(r.head_len, 60);
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
