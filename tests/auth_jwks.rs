//! Asymmetric JWTs against the real binary: RS256, ES256 and EdDSA tokens verified with the keys
//! of a JWKS file and of a JWKS URL served by a small HTTP server in the test (rotation to a new
//! `kid`, the URL down), and the refusals: `alg: none`, HS256 signed with the public key
//! (algorithm confusion), a key used with another algorithm than its own, an unknown `kid`.

mod common;

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use common::{metric_labelled, HttpResponse, ServerProcess};
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use serde_json::{json, Value};

fn fixture(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/jwt")
        .join(name)
}

fn fixture_bytes(name: &str) -> Vec<u8> {
    std::fs::read(fixture(name)).unwrap()
}

fn now_unix_s() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs()
}

/// A token for `sub`, valid for an hour, signed with the fixture key `key` as `alg`, `kid`.
fn token(alg: Algorithm, key: &str, kid: Option<&str>, sub: &str) -> String {
    let der = fixture_bytes(key);
    let key = match alg {
        Algorithm::RS256 | Algorithm::PS256 => EncodingKey::from_rsa_der(&der),
        Algorithm::ES256 => EncodingKey::from_ec_der(&der),
        Algorithm::EdDSA => EncodingKey::from_ed_der(&der),
        other => panic!("{other:?}"),
    };
    let mut header = Header::new(alg);
    header.kid = kid.map(str::to_owned);
    let claims = json!({"sub": sub, "exp": now_unix_s() + 3600});
    jsonwebtoken::encode(&header, &claims, &key).unwrap()
}

/// A token with any header, signed with HMAC-SHA256 over `secret` whatever the header says.
fn hmac_token(header: Value, secret: &[u8]) -> String {
    use hmac::{Hmac, Mac};
    let input = format!(
        "{}.{}",
        URL_SAFE_NO_PAD.encode(header.to_string()),
        URL_SAFE_NO_PAD.encode(json!({"sub": "mallory"}).to_string())
    );
    let mut mac = Hmac::<sha2::Sha256>::new_from_slice(secret).unwrap();
    mac.update(input.as_bytes());
    format!(
        "{input}.{}",
        URL_SAFE_NO_PAD.encode(mac.finalize().into_bytes())
    )
}

fn handshake(addr: SocketAddr, token: &str) -> HttpResponse {
    common::auth::bearer_upgrade(addr, "/ws", token, Duration::from_secs(5)).0
}

#[track_caller]
fn assert_accepted(addr: SocketAddr, token: &str) {
    let response = handshake(addr, token);
    assert_eq!(response.status, 101, "{}{}", response.head, response.body);
}

#[track_caller]
fn assert_unauthorized(addr: SocketAddr, token: &str, mentions: &str) {
    let response = handshake(addr, token);
    assert_eq!(response.status, 401, "{}{}", response.head, response.body);
    assert!(
        response.body.contains(mentions),
        "{mentions:?} not in {}",
        response.body
    );
}

/// Handshakes until one is accepted; a deadline passing is a failure.
#[track_caller]
fn eventually_accepted(addr: SocketAddr, token: &str) {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let response = handshake(addr, token);
        if response.status == 101 {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "never accepted: {}",
            response.body
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// Refusals every JWKS server must give, whatever the source of its keys.
fn assert_confusions_refused(addr: SocketAddr) {
    // alg none, unsigned.
    let none = format!(
        "{}.{}.",
        URL_SAFE_NO_PAD.encode(r#"{"alg":"none","typ":"JWT"}"#),
        URL_SAFE_NO_PAD.encode(r#"{"sub":"mallory"}"#)
    );
    assert_unauthorized(addr, &none, "\"none\" is not accepted");
    // HS256 "signed" with the RSA public key, as text and as the JWK's own fields.
    let public_pem = fixture_bytes("rsa1.pub.pem");
    let confused = hmac_token(json!({"alg": "HS256", "kid": "rsa-1"}), &public_pem);
    assert_unauthorized(addr, &confused, "\"HS256\" is not accepted");
    // rsa-1 is an RS256 key: a PS256 signature by the same private key is refused.
    let pss = token(Algorithm::PS256, "rsa1.der", Some("rsa-1"), "mallory");
    assert_unauthorized(addr, &pss, "is not for \"PS256\"");
    // The kid of one key, the signature of another.
    let forged = token(Algorithm::RS256, "rsa2.der", Some("rsa-1"), "mallory");
    assert_unauthorized(addr, &forged, "bad signature");
}

#[test]
fn rs256_es256_and_eddsa_against_a_jwks_file() {
    let jwks = fixture("jwks1.json");
    let server =
        ServerProcess::start(&["--auth", "jwt", "--jwt-jwks-file", jwks.to_str().unwrap()]);
    assert_accepted(
        server.addr,
        &token(Algorithm::RS256, "rsa1.der", Some("rsa-1"), "a"),
    );
    assert_accepted(
        server.addr,
        &token(Algorithm::ES256, "ec1.der", Some("ec-1"), "b"),
    );
    // Without kid: tried against the keys of its algorithm.
    assert_accepted(server.addr, &token(Algorithm::ES256, "ec1.der", None, "c"));
    assert_accepted(
        server.addr,
        &token(Algorithm::EdDSA, "ed1.der", Some("ed-1"), "d"),
    );
    assert_confusions_refused(server.addr);
    let unknown = token(Algorithm::RS256, "rsa2.der", Some("rsa-2"), "e");
    assert_unauthorized(server.addr, &unknown, "unknown key id \"rsa-2\"");
    // The encryption key of the set is not a signing key.
    let enc = token(Algorithm::RS256, "rsa1.der", Some("rsa-enc"), "f");
    assert_unauthorized(server.addr, &enc, "unknown key id");
}

/// A JWKS endpoint: answers every GET with the current body, or 503 when it is `None`.
struct JwksServer {
    addr: SocketAddr,
    body: Arc<Mutex<Option<Vec<u8>>>>,
    requests: Arc<AtomicUsize>,
}

impl JwksServer {
    fn start(body: Vec<u8>) -> JwksServer {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        let body = Arc::new(Mutex::new(Some(body)));
        let requests = Arc::new(AtomicUsize::new(0));
        let (shared, count) = (body.clone(), requests.clone());
        std::thread::spawn(move || {
            for stream in listener.incoming() {
                let Ok(mut stream) = stream else { continue };
                let _ = stream.set_read_timeout(Some(Duration::from_secs(5)));
                let mut head = Vec::new();
                let mut byte = [0u8; 1];
                while !head.ends_with(b"\r\n\r\n") {
                    match stream.read(&mut byte) {
                        Ok(1) => head.push(byte[0]),
                        _ => break,
                    }
                }
                count.fetch_add(1, Ordering::SeqCst);
                let answer = match &*shared.lock().unwrap() {
                    Some(body) => {
                        let mut answer = format!(
                            "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n\
                             Content-Length: {}\r\nConnection: close\r\n\r\n",
                            body.len()
                        )
                        .into_bytes();
                        answer.extend_from_slice(body);
                        answer
                    }
                    None => b"HTTP/1.1 503 Service Unavailable\r\nContent-Length: 0\r\n\
                              Connection: close\r\n\r\n"
                        .to_vec(),
                };
                let _ = stream.write_all(&answer);
            }
        });
        JwksServer {
            addr,
            body,
            requests,
        }
    }

    fn serve(&self, body: Option<Vec<u8>>) {
        *self.body.lock().unwrap() = body;
    }
}

#[track_caller]
fn wait_fetches(admin: SocketAddr, result: &str, at_least: f64) {
    let label = format!("result=\"{result}\"");
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let got = metric_labelled(admin, "ringws_jwks_fetches_total", &label);
        if got >= at_least {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "fetches {result}: {got} < {at_least}"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[test]
fn jwks_url_rotation_to_a_new_kid_and_the_url_down() {
    let jwks = JwksServer::start(fixture_bytes("jwks1.json"));
    let url = format!(
        "http://{}/realms/demo/protocol/openid-connect/certs",
        jwks.addr
    );
    let server = ServerProcess::start(&[
        "--auth",
        "jwt",
        "--jwt-jwks-url",
        &url,
        "--jwt-jwks-min-refresh-interval",
        "200ms",
    ]);
    let admin = server.admin.unwrap();
    // Fetched before the server said it was ready.
    assert_eq!(jwks.requests.load(Ordering::SeqCst), 1);
    assert_accepted(
        server.addr,
        &token(Algorithm::RS256, "rsa1.der", Some("rsa-1"), "a"),
    );
    assert_accepted(
        server.addr,
        &token(Algorithm::ES256, "ec1.der", Some("ec-1"), "b"),
    );
    assert_confusions_refused(server.addr);

    // The provider rotates to rsa-2: the first token naming it asks for a refresh.
    jwks.serve(Some(fixture_bytes("jwks2.json")));
    let rotated = token(Algorithm::RS256, "rsa2.der", Some("rsa-2"), "c");
    eventually_accepted(server.addr, &rotated);
    assert_accepted(
        server.addr,
        &token(Algorithm::PS256, "rsa2.der", Some("rsa-2-pss"), "d"),
    );
    // rsa-1 left the set.
    assert_unauthorized(
        server.addr,
        &token(Algorithm::RS256, "rsa1.der", Some("rsa-1"), "e"),
        "unknown key id",
    );
    wait_fetches(admin, "ok", 2.0);

    // The URL goes down: an unknown kid asks again, the fetch fails, the last good set stays.
    jwks.serve(None);
    let before = jwks.requests.load(Ordering::SeqCst);
    let stranger = token(Algorithm::RS256, "rsa1.der", Some("rsa-9"), "f");
    assert_unauthorized(server.addr, &stranger, "unknown key id \"rsa-9\"");
    wait_fetches(admin, "failed", 1.0);
    assert!(jwks.requests.load(Ordering::SeqCst) > before);
    assert_accepted(server.addr, &rotated);
    assert_accepted(
        server.addr,
        &token(Algorithm::ES256, "ec1.der", Some("ec-1"), "g"),
    );

    // Many unknown kids in a burst cause few fetches: at most one per 200 ms.
    let start = jwks.requests.load(Ordering::SeqCst);
    let started = Instant::now();
    for i in 0..20 {
        let burst = token(Algorithm::RS256, "rsa1.der", Some(&format!("x-{i}")), "h");
        assert_unauthorized(server.addr, &burst, "unknown key id");
    }
    let elapsed_ms = started.elapsed().as_millis() as usize;
    std::thread::sleep(Duration::from_millis(300));
    let fetched = jwks.requests.load(Ordering::SeqCst) - start;
    assert!(
        fetched <= elapsed_ms / 200 + 2,
        "{fetched} fetches for 20 unknown kids in {elapsed_ms} ms"
    );
}

#[test]
fn a_bad_jwks_file_stops_the_start_and_says_why() {
    let dir = std::env::temp_dir().join(format!("ringws-jwks-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("jwks.json");
    std::fs::write(
        &path,
        r#"{"keys":[{"kty":"oct","k":"c2VjcmV0","kid":"s"}]}"#,
    )
    .unwrap();
    common::refused_start(
        &["--auth", "jwt", "--jwt-jwks-file", path.to_str().unwrap()],
        &[],
        1,
        &["jwt_jwks_file", "no usable signing key", "symmetric key"],
    );
    let _ = std::fs::remove_dir_all(&dir);
}

/// Keys decide who may connect: they come over https, or over http from this machine only.
#[test]
fn a_jwks_url_that_is_not_https_or_loopback_http_is_refused_at_the_start() {
    for url in ["sso.example.com/certs", "http://sso.example.com/certs"] {
        common::refused_start(
            &["--auth", "jwt", "--jwt-jwks-url", url],
            &[],
            2,
            &["jwt_jwks_url", "not an https:// URL", "loopback"],
        );
    }
}
