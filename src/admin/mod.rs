//! The admin listener's HTTP/1.1, sans-IO: bounded request parsing, response writing, and the
//! built-in routes (`/metrics`, `/healthz`, `/debug/handshakes`). Apps add routes through
//! [`crate::app::App::admin`] and name them in [`crate::app::App::admin_routes`].
//! The reactor of core 0 moves the bytes (see `reactor::admin`); [`routes`] answers.

pub mod routes;

/// Largest admin request head.
pub const MAX_HEAD_BYTES: usize = 8 << 10;
/// Most headers in an admin request.
const MAX_HEADERS: usize = 32;

/// Why the admin listener closed a connection without answering its request.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum AdminClose {
    /// The request head did not arrive within the header deadline (answered 408).
    HeaderTimeout,
    /// The whole exchange passed the admin timeout.
    Timeout,
    /// Its slot went to a newer connection while its request was still arriving (503).
    Evicted,
    /// No slot could be freed for it at accept (503).
    Refused,
}

impl AdminClose {
    pub const ALL: [AdminClose; 4] = [
        AdminClose::HeaderTimeout,
        AdminClose::Timeout,
        AdminClose::Evicted,
        AdminClose::Refused,
    ];

    /// The `reason` label of `ringws_admin_connections_closed_total`.
    pub fn label(self) -> &'static str {
        match self {
            AdminClose::HeaderTimeout => "header_timeout",
            AdminClose::Timeout => "timeout",
            AdminClose::Evicted => "evicted",
            AdminClose::Refused => "refused",
        }
    }
}

/// The admin listener's counters, written by core 0 only, read at scrape time.
#[derive(Debug, Default)]
pub struct AdminStats {
    closed: [crate::stats::Counter; AdminClose::ALL.len()],
    accept_errors: crate::stats::Counter,
}

impl AdminStats {
    pub fn closed(&self, reason: AdminClose) {
        self.closed[reason as usize].inc();
    }

    pub fn closed_count(&self, reason: AdminClose) -> u64 {
        self.closed[reason as usize].get()
    }

    pub fn accept_error(&self) {
        self.accept_errors.inc();
    }

    pub fn accept_errors(&self) -> u64 {
        self.accept_errors.get()
    }
}

/// A complete admin request, borrowing from the receive buffer.
#[derive(Debug)]
pub struct AdminRequest<'a> {
    pub method: &'a str,
    pub path: &'a str,
    pub query: Option<&'a str>,
    pub headers: Vec<(&'a str, &'a [u8])>,
    pub body: &'a [u8],
}

impl AdminRequest<'_> {
    /// The first header named `name` (case-insensitive), as text.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .and_then(|(_, v)| std::str::from_utf8(v).ok())
            .map(str::trim)
    }
}

/// An admin response.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AdminResponse {
    pub status: u16,
    pub content_type: &'static str,
    pub headers: Vec<(&'static str, String)>,
    pub body: Vec<u8>,
}

impl AdminResponse {
    pub fn text(status: u16, body: impl Into<String>) -> AdminResponse {
        let mut body = body.into().into_bytes();
        if !body.ends_with(b"\n") {
            body.push(b'\n');
        }
        AdminResponse {
            status,
            content_type: "text/plain; charset=utf-8",
            headers: Vec::new(),
            body,
        }
    }

    pub fn json(status: u16, value: &serde_json::Value) -> AdminResponse {
        let mut body = serde_json::to_vec(value).unwrap_or_default();
        body.push(b'\n');
        AdminResponse {
            status,
            content_type: "application/json",
            headers: Vec::new(),
            body,
        }
    }

    pub fn with_header(mut self, name: &'static str, value: impl Into<String>) -> AdminResponse {
        self.headers.push((name, value.into()));
        self
    }
}

/// Outcome of parsing the bytes received so far.
#[derive(Debug)]
pub enum Parsed<'a> {
    /// Read more: the request head is not complete yet.
    Partial,
    /// Read more: the head is complete and valid, its body (of `Content-Length`) is arriving.
    AwaitingBody,
    /// A complete request and the bytes it spans.
    Request(AdminRequest<'a>, usize),
    /// Answer this and close.
    Bad(AdminResponse),
}

/// Parses one request; the body is read by `Content-Length` (at most `max_body_bytes`).
///
/// Framing is strict (RFC 9112 §6): `Content-Length` is digits only, and repeated lines (or a
/// comma list) must all say the same number, else 400; `Transfer-Encoding` with
/// `Content-Length` is 400 (the two framings disagree: the classic request-smuggling shape), and
/// `Transfer-Encoding` alone 411.
pub fn parse(buf: &[u8], max_body_bytes: usize) -> Parsed<'_> {
    let mut headers = [httparse::EMPTY_HEADER; MAX_HEADERS];
    let mut req = httparse::Request::new(&mut headers);
    let head_len = match req.parse(buf) {
        Ok(httparse::Status::Complete(n)) => n,
        Ok(httparse::Status::Partial) if buf.len() <= MAX_HEAD_BYTES => return Parsed::Partial,
        Ok(httparse::Status::Partial) | Err(httparse::Error::TooManyHeaders) => {
            return Parsed::Bad(AdminResponse::text(431, "request head too large"))
        }
        Err(e) => return Parsed::Bad(AdminResponse::text(400, format!("malformed request: {e}"))),
    };
    let (method, target) = (req.method.unwrap_or(""), req.path.unwrap_or("/"));
    let (path, query) = match target.split_once('?') {
        Some((p, q)) => (p, Some(q)),
        None => (target, None),
    };
    let headers: Vec<(&str, &[u8])> = req.headers.iter().map(|h| (h.name, h.value)).collect();
    let body_len = match body_length(&headers, max_body_bytes) {
        Ok(n) => n,
        Err(bad) => return Parsed::Bad(bad),
    };
    if buf.len() < head_len + body_len {
        return Parsed::AwaitingBody;
    }
    let body = &buf[head_len..head_len + body_len];
    Parsed::Request(
        AdminRequest {
            method,
            path,
            query,
            headers,
            body,
        },
        head_len + body_len,
    )
}

/// The body length `headers` announce, or the answer refusing them.
fn body_length(headers: &[(&str, &[u8])], max_body_bytes: usize) -> Result<usize, AdminResponse> {
    let named = |name: &'static str| {
        headers
            .iter()
            .filter(move |(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| *v)
    };
    let chunked = named("transfer-encoding").next().is_some();
    let mut lengths = named("content-length").peekable();
    match (chunked, lengths.peek().is_some()) {
        (true, true) => {
            return Err(AdminResponse::text(
                400,
                "Transfer-Encoding and Content-Length together: send the body with \
                 Content-Length alone",
            ))
        }
        (true, false) => {
            return Err(AdminResponse::text(
                411,
                "chunked bodies are not accepted: send Content-Length",
            ))
        }
        (false, false) => return Ok(0),
        (false, true) => {}
    }
    // RFC 9110 §8.6: 1*DIGIT; a list (or repeated lines) of one value is that value.
    let mut announced: Option<&[u8]> = None;
    for item in lengths.flat_map(|v| v.split(|&b| b == b',')) {
        let item = item.trim_ascii();
        if item.is_empty() || !item.iter().all(u8::is_ascii_digit) {
            return Err(AdminResponse::text(
                400,
                "Content-Length must be a decimal number, digits only (RFC 9112 section 6.3)",
            ));
        }
        // Leading zeros do not make another number.
        let digits = match item.iter().position(|&b| b != b'0') {
            Some(first) => &item[first..],
            None => b"0",
        };
        match announced {
            Some(seen) if seen != digits => {
                return Err(AdminResponse::text(
                    400,
                    "different Content-Length values: send one Content-Length",
                ))
            }
            _ => announced = Some(digits),
        }
    }
    let digits = announced.unwrap_or(b"0");
    // Digits only, so the only failure is a number too large for usize: over any limit.
    let length = std::str::from_utf8(digits)
        .ok()
        .and_then(|d| d.parse::<usize>().ok())
        .unwrap_or(usize::MAX);
    if length > max_body_bytes {
        return Err(AdminResponse::text(
            413,
            format!(
                "body of {} bytes is over the limit of {max_body_bytes}",
                String::from_utf8_lossy(digits)
            ),
        ));
    }
    Ok(length)
}

/// Appends the full response (with `Connection: close`: one request per connection).
pub fn write_response(out: &mut Vec<u8>, r: &AdminResponse) {
    use std::io::Write;
    let _ = write!(
        out,
        "HTTP/1.1 {} {}\r\nContent-Type: {}\r\nContent-Length: {}\r\nConnection: close\r\n",
        r.status,
        reason_phrase(r.status),
        r.content_type,
        r.body.len()
    );
    for (k, v) in &r.headers {
        let _ = write!(out, "{k}: {v}\r\n");
    }
    out.extend_from_slice(b"\r\n");
    out.extend_from_slice(&r.body);
}

fn reason_phrase(status: u16) -> &'static str {
    match status {
        200 => "OK",
        202 => "Accepted",
        400 => "Bad Request",
        401 => "Unauthorized",
        403 => "Forbidden",
        404 => "Not Found",
        405 => "Method Not Allowed",
        408 => "Request Timeout",
        411 => "Length Required",
        413 => "Content Too Large",
        431 => "Request Header Fields Too Large",
        503 => "Service Unavailable",
        _ => "Status",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_head_and_body_by_content_length() {
        let req = b"POST /publish/a?x=1 HTTP/1.1\r\nHost: h\r\nContent-Length: 5\r\n\r\nhello";
        for cut in 0..req.len() {
            assert!(
                matches!(
                    parse(&req[..cut], 100),
                    Parsed::Partial | Parsed::AwaitingBody
                ),
                "prefix {cut}"
            );
        }
        let Parsed::Request(r, n) = parse(req, 100) else {
            panic!()
        };
        assert_eq!(
            (r.method, r.path, r.query, r.body, n),
            ("POST", "/publish/a", Some("x=1"), &b"hello"[..], req.len())
        );
        assert_eq!(r.header("HOST"), Some("h"));
    }

    #[test]
    fn refuses_oversized_bodies_heads_and_chunked() {
        let big = b"POST / HTTP/1.1\r\nContent-Length: 101\r\n\r\n";
        assert!(matches!(
            parse(big, 100),
            Parsed::Bad(AdminResponse { status: 413, .. })
        ));
        let chunked = b"POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n";
        assert!(matches!(
            parse(chunked, 100),
            Parsed::Bad(AdminResponse { status: 411, .. })
        ));
        let long = [b"GET / HTTP/1.1\r\nX: ".as_slice(), &[b'a'; MAX_HEAD_BYTES]].concat();
        assert!(matches!(
            parse(&long, 100),
            Parsed::Bad(AdminResponse { status: 431, .. })
        ));
        assert!(matches!(
            parse(b"\x00\x01 nonsense\r\n\r\n", 100),
            Parsed::Bad(AdminResponse { status: 400, .. })
        ));
    }

    fn bad_status(request: &[u8]) -> Option<u16> {
        match parse(request, 100) {
            Parsed::Bad(r) => Some(r.status),
            _ => None,
        }
    }

    #[test]
    fn content_length_is_digits_only() {
        for value in ["+5", "-5", " +5", "5a", "0x5", "5 5", "", "5.0", "\u{661}"] {
            let request =
                format!("POST /publish/a HTTP/1.1\r\nContent-Length: {value}\r\n\r\nhello");
            assert_eq!(bad_status(request.as_bytes()), Some(400), "{value:?}");
        }
        let Parsed::Request(r, _) =
            parse(b"POST / HTTP/1.1\r\nContent-Length: 005\r\n\r\nhello", 100)
        else {
            panic!("leading zeros are digits")
        };
        assert_eq!(r.body, b"hello");
        // A number past usize is refused as too large, not misread.
        let huge = b"POST / HTTP/1.1\r\nContent-Length: 99999999999999999999999999\r\n\r\n";
        assert_eq!(bad_status(huge), Some(413));
    }

    #[test]
    fn content_length_is_one_value() {
        let two =
            b"POST /publish/a HTTP/1.1\r\nContent-Length: 1\r\nContent-Length: 5\r\n\r\nhello";
        assert_eq!(bad_status(two), Some(400));
        let list = b"POST /publish/a HTTP/1.1\r\nContent-Length: 1, 5\r\n\r\nhello";
        assert_eq!(bad_status(list), Some(400));
        let Parsed::Bad(r) = parse(two, 100) else {
            panic!()
        };
        assert!(String::from_utf8_lossy(&r.body).contains("different Content-Length"));
        // The same number twice is that number (RFC 9110 §8.6).
        for same in [
            &b"POST / HTTP/1.1\r\nContent-Length: 5\r\ncontent-length: 05\r\n\r\nhello"[..],
            b"POST / HTTP/1.1\r\nContent-Length: 5, 5\r\n\r\nhello",
        ] {
            let Parsed::Request(r, n) = parse(same, 100) else {
                panic!("{:?}", String::from_utf8_lossy(same))
            };
            assert_eq!((r.body, n), (&b"hello"[..], same.len()));
        }
    }

    #[test]
    fn transfer_encoding_with_content_length_is_a_bad_request() {
        for request in [
            &b"POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\nContent-Length: 5\r\n\r\nhello"[..],
            b"POST / HTTP/1.1\r\nContent-Length: 5\r\nTransfer-Encoding: identity\r\n\r\nhello",
        ] {
            assert_eq!(bad_status(request), Some(400));
        }
        let chunked = b"POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n";
        assert_eq!(bad_status(chunked), Some(411));
    }

    #[test]
    fn a_complete_head_awaiting_its_body_is_told_apart() {
        let req = b"POST /publish/a HTTP/1.1\r\nContent-Length: 5\r\n\r\nhello";
        let head = req.len() - 5;
        assert!(matches!(parse(&req[..head - 1], 100), Parsed::Partial));
        for cut in head..req.len() {
            assert!(
                matches!(parse(&req[..cut], 100), Parsed::AwaitingBody),
                "{cut}"
            );
        }
    }

    #[test]
    fn writes_a_complete_response() {
        let mut out = Vec::new();
        write_response(
            &mut out,
            &AdminResponse::text(503, "draining").with_header("Retry-After", "1"),
        );
        let text = String::from_utf8(out).unwrap();
        assert!(text.starts_with("HTTP/1.1 503 Service Unavailable\r\n"));
        assert!(text.contains("Content-Length: 9\r\n") && text.contains("Retry-After: 1\r\n"));
        assert!(text.ends_with("\r\n\r\ndraining\n"));
    }
}
