//! Rotating credentials without a restart, against the real binary: the static tokens file, the
//! JWT secret and the JWKS file, each re-read on SIGHUP or on `POST /reload` (admin token),
//! while connections opened with the old credentials stay open; a bad file keeps the old state
//! and is counted.

mod common;

use std::io::Write;
use std::net::{SocketAddr, TcpStream};
use std::path::Path;
use std::time::Duration;

use common::auth::{bearer_upgrade, hs256_jwt};
use common::proxy::Scratch;
use common::{client_frame, read_frame, read_response, wait_metric, ServerProcess};

fn write(scratch: &Scratch, name: &str, text: &[u8]) -> String {
    let path = scratch.0.join(name);
    std::fs::write(&path, text).unwrap();
    path.to_str().unwrap().to_owned()
}

/// The status of an upgrade with `token`, and the stream (open when 101).
fn handshake(addr: SocketAddr, token: &str) -> (u16, TcpStream) {
    let (response, stream) = bearer_upgrade(addr, "/", token, Duration::from_secs(5));
    (response.status, stream)
}

#[track_caller]
fn status(addr: SocketAddr, token: &str) -> u16 {
    handshake(addr, token).0
}

#[track_caller]
fn open(addr: SocketAddr, token: &str) -> TcpStream {
    let (status, stream) = handshake(addr, token);
    assert_eq!(status, 101, "{token}");
    stream
}

/// The connection still works: the echo app answers a message.
#[track_caller]
fn assert_alive(stream: &mut TcpStream) {
    stream
        .write_all(&client_frame(true, 0x1, b"still here"))
        .unwrap();
    let (_, opcode, payload) = read_frame(stream);
    assert_eq!((opcode, payload.as_slice()), (0x1, &b"still here"[..]));
}

/// Waits for `ringws_credential_reloads_total{result}` to reach `want`.
#[track_caller]
fn wait_reloads(admin: SocketAddr, result: &str, want: f64) {
    let label = format!("result=\"{result}\"");
    wait_metric(admin, "ringws_credential_reloads_total", &label, want);
}

/// `POST /reload` with `token`; the status.
fn post_reload(admin: SocketAddr, token: Option<&str>) -> u16 {
    let mut stream = TcpStream::connect(admin).unwrap();
    stream
        .set_read_timeout(Some(Duration::from_secs(5)))
        .unwrap();
    let authorization = token.map_or(String::new(), |t| format!("Authorization: Bearer {t}\r\n"));
    let request = format!(
        "POST /reload HTTP/1.1\r\nHost: localhost\r\n{authorization}Content-Length: 0\r\n\
         Connection: close\r\n\r\n"
    );
    stream.write_all(request.as_bytes()).unwrap();
    read_response(&mut stream).status
}

fn hs256(secret: &str, sub: &str) -> String {
    hs256_jwt(secret.as_bytes(), &serde_json::json!({ "sub": sub }))
}

#[test]
fn sighup_rotates_the_tokens_file_and_keeps_connections() {
    let scratch = Scratch::new("reload-tokens");
    let tokens = write(&scratch, "tokens.txt", b"old:token-old-0123456789\n");
    let server = ServerProcess::start(&[
        "--app",
        "echo",
        "--auth",
        "token",
        "--auth-tokens-file",
        &tokens,
    ]);
    let admin = server.admin.unwrap();
    let mut kept = open(server.addr, "token-old-0123456789");

    write(&scratch, "tokens.txt", b"new:token-new-0123456789\n");
    server.signal(libc::SIGHUP);
    wait_reloads(admin, "ok", 1.0);
    assert_eq!(status(server.addr, "token-new-0123456789"), 101);
    assert_eq!(status(server.addr, "token-old-0123456789"), 401);
    assert_alive(&mut kept);

    // A bad file: the new token stays accepted, the failure is counted.
    write(&scratch, "tokens.txt", b"a b c\n");
    server.signal(libc::SIGHUP);
    wait_reloads(admin, "failed", 1.0);
    assert_eq!(status(server.addr, "token-new-0123456789"), 101);
    assert_alive(&mut kept);
}

#[test]
fn post_reload_rotates_the_jwt_secret_and_keeps_connections() {
    let scratch = Scratch::new("reload-secret");
    let old = "the-old-hs256-secret-of-at-least-32-bytes";
    let new = "the-new-hs256-secret-of-at-least-32-bytes";
    let secret = write(&scratch, "jwt.secret", old.as_bytes());
    let admin_tokens = write(&scratch, "admin.txt", b"ops:admin-0123456789\n");
    let server = ServerProcess::start(&[
        "--app",
        "echo",
        "--auth",
        "jwt",
        "--jwt-secret-file",
        &secret,
        "--admin-tokens-file",
        &admin_tokens,
    ]);
    let admin = server.admin.unwrap();
    let mut kept = open(server.addr, &hs256(old, "alice"));

    write(&scratch, "jwt.secret", new.as_bytes());
    assert_eq!(post_reload(admin, None), 401);
    assert_eq!(post_reload(admin, Some("not-the-admin-token")), 401);
    assert_eq!(
        status(server.addr, &hs256(old, "bob")),
        101,
        "nothing reloaded yet"
    );
    assert_eq!(post_reload(admin, Some("admin-0123456789")), 202);
    wait_reloads(admin, "ok", 1.0);
    assert_eq!(status(server.addr, &hs256(new, "bob")), 101);
    assert_eq!(status(server.addr, &hs256(old, "bob")), 401);
    assert_alive(&mut kept);

    // A secret too short to be one: the new secret stays.
    write(&scratch, "jwt.secret", b"short");
    assert_eq!(post_reload(admin, Some("admin-0123456789")), 202);
    wait_reloads(admin, "failed", 1.0);
    assert_eq!(status(server.addr, &hs256(new, "carol")), 101);
    assert_alive(&mut kept);
}

#[test]
fn sighup_rotates_the_jwks_file_and_keeps_connections() {
    let fixtures = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/jwt");
    let read = |name: &str| std::fs::read(fixtures.join(name)).unwrap();
    let rs256 = |key: &str, kid: &str| {
        let mut header = jsonwebtoken::Header::new(jsonwebtoken::Algorithm::RS256);
        header.kid = Some(kid.to_owned());
        let key = jsonwebtoken::EncodingKey::from_rsa_der(&read(key));
        jsonwebtoken::encode(&header, &serde_json::json!({"sub": kid}), &key).unwrap()
    };
    let scratch = Scratch::new("reload-jwks");
    let jwks = write(&scratch, "jwks.json", &read("jwks1.json"));
    let server =
        ServerProcess::start(&["--app", "echo", "--auth", "jwt", "--jwt-jwks-file", &jwks]);
    let admin = server.admin.unwrap();
    let mut kept = open(server.addr, &rs256("rsa1.der", "rsa-1"));
    assert_eq!(status(server.addr, &rs256("rsa2.der", "rsa-2")), 401);

    write(&scratch, "jwks.json", &read("jwks2.json"));
    server.signal(libc::SIGHUP);
    wait_reloads(admin, "ok", 1.0);
    assert_eq!(status(server.addr, &rs256("rsa2.der", "rsa-2")), 101);
    assert_eq!(status(server.addr, &rs256("rsa1.der", "rsa-1")), 401);
    assert_alive(&mut kept);

    write(&scratch, "jwks.json", b"{\"keys\":[]}");
    server.signal(libc::SIGHUP);
    wait_reloads(admin, "failed", 1.0);
    assert_eq!(status(server.addr, &rs256("rsa2.der", "rsa-2")), 101);
    assert_alive(&mut kept);
}

#[test]
fn post_reload_is_refused_without_admin_tokens() {
    let server = ServerProcess::start(&["--app", "echo"]);
    assert_eq!(post_reload(server.admin.unwrap(), Some("anything")), 403);
}
