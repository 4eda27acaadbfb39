//! One blocking client connection, upgraded: for the steps that need a single socket before the
//! load starts (the echo check of `bench echo`, the subscribers of `bench fanout`). The request
//! and the checks on the 101 are the protocol core's client handshake.

use std::io::{Read as _, Write as _};
use std::net::{IpAddr, SocketAddr, TcpStream};
use std::time::Duration;

use crate::protocol::client_handshake::{
    check_upgrade, client_key, deflate_answer, parse_response, write_request, ClientRequest,
};
use crate::protocol::deflate::{Answer, CLIENT_OFFER};
use crate::protocol::handshake::accept_key;

/// An upgraded connection in blocking mode, with the frames that came in the same read as the
/// 101.
pub struct Upgraded {
    pub stream: TcpStream,
    pub early: Vec<u8>,
    /// The server's permessage-deflate answer, when it was offered and accepted.
    pub deflate: Option<Answer>,
}

/// Connects to `server` (from `source`), sends the upgrade for `target` with `Host: host`, and
/// checks the 101. `timeout` bounds each read. `deflate`: offer permessage-deflate
/// ([`CLIENT_OFFER`]) and judge the answer.
pub fn upgrade(
    server: SocketAddr,
    source: Option<IpAddr>,
    host: &str,
    target: &str,
    random: [u8; 16],
    timeout: Duration,
    deflate: bool,
) -> Result<Upgraded, String> {
    use socket2::{Domain, Socket, Type};
    let sock =
        Socket::new(Domain::for_address(server), Type::STREAM, None).map_err(|e| e.to_string())?;
    if let Some(ip) = source {
        sock.bind(&SocketAddr::new(ip, 0).into())
            .map_err(|e| format!("bind {ip}: {e}"))?;
    }
    sock.connect_timeout(&server.into(), timeout)
        .map_err(|e| format!("connect: {e}"))?;
    let _ = sock.set_tcp_nodelay(true);
    let mut s: TcpStream = sock.into();
    s.set_read_timeout(Some(timeout)).ok();
    let key = client_key(random);
    let mut request = Vec::new();
    write_request(
        &mut request,
        &ClientRequest {
            host,
            target,
            key: &key,
            extensions: deflate.then_some(CLIENT_OFFER),
            ..ClientRequest::default()
        },
    );
    s.write_all(&request).map_err(|e| e.to_string())?;
    let mut answer = Vec::new();
    let offered: &[&str] = if deflate {
        &["permessage-deflate"]
    } else {
        &[]
    };
    let (head_len, negotiated) = loop {
        match parse_response(&answer) {
            Ok(Some(response)) => {
                let upgraded = check_upgrade(&response, &accept_key(&key), &[], offered)
                    .map_err(|e| format!("upgrade failed: {e}"))?;
                let negotiated = match deflate {
                    true => deflate_answer(&response, CLIENT_OFFER)
                        .map_err(|e| format!("upgrade failed: {e}"))?,
                    false => None,
                };
                break (upgraded.head_len, negotiated);
            }
            Ok(None) => {}
            Err(e) => return Err(format!("upgrade failed: {e}")),
        }
        let mut chunk = [0u8; 1024];
        match s.read(&mut chunk) {
            Ok(0) => return Err("connection closed during the upgrade".into()),
            Ok(n) => answer.extend_from_slice(&chunk[..n]),
            Err(e) => return Err(format!("reading the upgrade response: {e}")),
        }
    };
    answer.drain(..head_len);
    Ok(Upgraded {
        stream: s,
        early: answer,
        deflate: negotiated,
    })
}
