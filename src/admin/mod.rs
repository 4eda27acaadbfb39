//! The admin listener's HTTP/1.1, sans-IO: bounded request parsing, response writing, and the
//! built-in routes (`/metrics`, `/healthz`, `/debug/handshakes`). Apps add routes through
//! [`crate::app::App::admin`] and name them in [`crate::app::App::admin_routes`].
//! The reactor of core 0 moves the bytes (see `reactor::admin`); [`routes`] answers.

pub mod routes;

/// Largest admin request head.
pub const MAX_HEAD_BYTES: usize = 8 << 10;
/// Most headers in an admin request.
const MAX_HEADERS: usize = 32;

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
    /// Read more.
    Partial,
    /// A complete request and the bytes it spans.
    Request(AdminRequest<'a>, usize),
    /// Answer this and close.
    Bad(AdminResponse),
}

/// Parses one request; the body is read by `Content-Length` (at most `max_body_bytes`).
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
    let content_length = headers
        .iter()
        .find(|(k, _)| k.eq_ignore_ascii_case("content-length"))
        .map(|(_, v)| {
            std::str::from_utf8(v)
                .ok()
                .and_then(|v| v.trim().parse::<usize>().ok())
        });
    if headers
        .iter()
        .any(|(k, _)| k.eq_ignore_ascii_case("transfer-encoding"))
    {
        return Parsed::Bad(AdminResponse::text(
            411,
            "chunked bodies are not accepted: send Content-Length",
        ));
    }
    let body_len = match content_length {
        None => 0,
        Some(None) => {
            return Parsed::Bad(AdminResponse::text(400, "Content-Length is not a number"))
        }
        Some(Some(n)) if n > max_body_bytes => {
            return Parsed::Bad(AdminResponse::text(
                413,
                format!("body of {n} bytes is over the limit of {max_body_bytes}"),
            ))
        }
        Some(Some(n)) => n,
    };
    if buf.len() < head_len + body_len {
        return Parsed::Partial;
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
                matches!(parse(&req[..cut], 100), Parsed::Partial),
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
