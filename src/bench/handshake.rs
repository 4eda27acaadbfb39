//! The client side of the opening handshake: a fresh key per connection and the checks on the
//! server's response (RFC 6455 §4.1, "the client MUST ... fail the WebSocket connection").

use base64::Engine as _;

use super::cause::Cause;

/// Largest response head accepted from the server.
pub const MAX_RESPONSE_HEAD_BYTES: usize = 8 * 1024;
/// Most response headers parsed.
const MAX_RESPONSE_HEADERS: usize = 32;

/// A `Sec-WebSocket-Key`: base64 of 16 random bytes.
pub fn client_key(random: [u8; 16]) -> [u8; 24] {
    let mut key = [0u8; 24];
    let written = base64::engine::general_purpose::STANDARD
        .encode_slice(random, &mut key)
        .expect("16 bytes encode to exactly 24 base64 characters");
    debug_assert_eq!(written, 24);
    key
}

/// Checks the response bytes received so far against the expected `Sec-WebSocket-Accept`.
///
/// `Ok(None)`: the head is incomplete; read more. `Ok(Some(head_len))`: a valid 101; bytes after
/// `head_len` are already WebSocket frames. `Err(cause)`: fail the connection.
pub fn check_response(buf: &[u8], expected_accept: &[u8; 28]) -> Result<Option<usize>, Cause> {
    let mut headers = [httparse::EMPTY_HEADER; MAX_RESPONSE_HEADERS];
    let mut response = httparse::Response::new(&mut headers);
    let head_len = match response.parse(buf) {
        Ok(httparse::Status::Complete(len)) => len,
        Ok(httparse::Status::Partial) if buf.len() >= MAX_RESPONSE_HEAD_BYTES => {
            return Err(status_of(buf).map_or(Cause::ResponseTooLarge, Cause::HttpStatus));
        }
        Ok(httparse::Status::Partial) => return Ok(None),
        Err(httparse::Error::TooManyHeaders) => {
            return Err(status_of(buf).map_or(Cause::ResponseTooLarge, Cause::HttpStatus));
        }
        Err(_) => return Err(Cause::BadResponse),
    };
    let status = response.code.unwrap_or(0);
    if status != 101 {
        return Err(Cause::HttpStatus(status));
    }
    let mut upgrade = false;
    let mut connection = false;
    let mut accept_ok = false;
    for header in response.headers.iter() {
        let value = trim(header.value);
        if header.name.eq_ignore_ascii_case("upgrade") {
            upgrade |= value.eq_ignore_ascii_case(b"websocket");
        } else if header.name.eq_ignore_ascii_case("connection") {
            connection |= value
                .split(|&b| b == b',')
                .any(|t| trim(t).eq_ignore_ascii_case(b"upgrade"));
        } else if header.name.eq_ignore_ascii_case("sec-websocket-accept") {
            accept_ok = value == expected_accept.as_slice();
        } else if header.name.eq_ignore_ascii_case("sec-websocket-extensions")
            || header.name.eq_ignore_ascii_case("sec-websocket-protocol")
        {
            // We offered neither: §4.1 requires failing the connection.
            return Err(Cause::BadUpgrade);
        }
    }
    if !upgrade || !connection {
        return Err(Cause::BadUpgrade);
    }
    if !accept_ok {
        return Err(Cause::BadAccept);
    }
    Ok(Some(head_len))
}

/// The status code of a (possibly incomplete) response, once its status line is complete.
pub fn status_of(buf: &[u8]) -> Option<u16> {
    let line_end = buf.windows(2).position(|w| w == b"\r\n")?;
    let mut parts = buf[..line_end].split(|&b| b == b' ');
    let version = parts.next()?;
    if !version.starts_with(b"HTTP/") {
        return None;
    }
    let code = parts.next()?;
    if code.len() != 3 {
        return None;
    }
    std::str::from_utf8(code).ok()?.parse().ok()
}

fn trim(mut bytes: &[u8]) -> &[u8] {
    while let [b' ' | b'\t', rest @ ..] = bytes {
        bytes = rest;
    }
    while let [rest @ .., b' ' | b'\t'] = bytes {
        bytes = rest;
    }
    bytes
}

#[cfg(test)]
mod tests {
    use super::*;

    // RFC 6455 §1.3's example key and accept value.
    const ACCEPT: &[u8; 28] = b"s3pPLMBiTxaQ9kYGzzhZRbK+xOo=";

    fn response(extra: &str) -> Vec<u8> {
        format!(
            "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n{extra}\r\n"
        )
        .into_bytes()
    }

    #[test]
    fn accepts_a_valid_101_and_reports_the_head_length() {
        let mut bytes = response("Sec-WebSocket-Accept: s3pPLMBiTxaQ9kYGzzhZRbK+xOo=\r\n");
        let head_len = bytes.len();
        bytes.extend_from_slice(&[0x82, 0x00]);
        assert_eq!(check_response(&bytes, ACCEPT), Ok(Some(head_len)));
        assert_eq!(check_response(&bytes[..head_len - 1], ACCEPT), Ok(None));
    }

    #[test]
    fn rejects_a_wrong_or_missing_accept() {
        let wrong = response("Sec-WebSocket-Accept: AAAALMBiTxaQ9kYGzzhZRbK+xOo=\r\n");
        assert_eq!(check_response(&wrong, ACCEPT), Err(Cause::BadAccept));
        assert_eq!(check_response(&response(""), ACCEPT), Err(Cause::BadAccept));
    }

    #[test]
    fn rejects_a_refusal_by_status() {
        let refusal = b"HTTP/1.1 503 Service Unavailable\r\nContent-Length: 0\r\n\r\n";
        assert_eq!(check_response(refusal, ACCEPT), Err(Cause::HttpStatus(503)));
        assert_eq!(status_of(b"HTTP/1.1 429 Too Many\r\nX"), Some(429));
        assert_eq!(status_of(b"HTTP/1.1 42"), None);
    }

    #[test]
    fn rejects_missing_upgrade_and_unoffered_extensions() {
        let no_upgrade = b"HTTP/1.1 101 OK\r\nConnection: upgrade\r\n\
            Sec-WebSocket-Accept: s3pPLMBiTxaQ9kYGzzhZRbK+xOo=\r\n\r\n";
        assert_eq!(check_response(no_upgrade, ACCEPT), Err(Cause::BadUpgrade));
        let ext = response(
            "Sec-WebSocket-Accept: s3pPLMBiTxaQ9kYGzzhZRbK+xOo=\r\nSec-WebSocket-Extensions: x\r\n",
        );
        assert_eq!(check_response(&ext, ACCEPT), Err(Cause::BadUpgrade));
        assert_eq!(
            check_response(b"SSH-2.0\r\n\r\n", ACCEPT),
            Err(Cause::BadResponse)
        );
    }

    #[test]
    fn keys_are_24_base64_characters() {
        assert_eq!(&client_key([0; 16]), b"AAAAAAAAAAAAAAAAAAAAAA==");
    }
}
