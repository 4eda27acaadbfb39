//! Tokens and authenticated upgrades for the auth tests (tests/auth_*.rs).

use std::io::Write;
use std::net::{SocketAddr, TcpStream};
use std::time::Duration;

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;

use super::{read_response, HttpResponse, KEY};

/// An HS256 JWT of `claims`, built here independently of ringws' own signer.
pub fn hs256_jwt(secret: &[u8], claims: &serde_json::Value) -> String {
    use hmac::{Hmac, Mac};
    let input = format!(
        "{}.{}",
        URL_SAFE_NO_PAD.encode(r#"{"alg":"HS256","typ":"JWT"}"#),
        URL_SAFE_NO_PAD.encode(claims.to_string())
    );
    let mut mac = Hmac::<sha2::Sha256>::new_from_slice(secret).unwrap();
    mac.update(input.as_bytes());
    format!(
        "{input}.{}",
        URL_SAFE_NO_PAD.encode(mac.finalize().into_bytes())
    )
}

/// Sends an upgrade for `target` with `Authorization: Bearer <token>`; the response (the head of
/// a 101, or the whole refusal) and the stream, whose reads time out after `read_timeout`.
pub fn bearer_upgrade(
    addr: SocketAddr,
    target: &str,
    token: &str,
    read_timeout: Duration,
) -> (HttpResponse, TcpStream) {
    let mut stream = TcpStream::connect(addr).unwrap();
    stream.set_read_timeout(Some(read_timeout)).unwrap();
    let request = format!(
        "GET {target} HTTP/1.1\r\nHost: localhost\r\nUpgrade: websocket\r\n\
         Connection: Upgrade\r\nSec-WebSocket-Key: {KEY}\r\nSec-WebSocket-Version: 13\r\n\
         Authorization: Bearer {token}\r\n\r\n"
    );
    stream.write_all(request.as_bytes()).unwrap();
    (read_response(&mut stream), stream)
}
