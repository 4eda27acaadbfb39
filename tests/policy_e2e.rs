//! The handshake policy against the real binary: every accepted and refused upgrade with its
//! status, headers and one-line reason; the per-address rate limit (and its memory bound under
//! many source addresses on 127.0.0.0/8); trusted proxies; the debug view; the refusal log.

mod common;

use std::io::Write;
use std::net::{IpAddr, Ipv4Addr, SocketAddr, TcpStream};
use std::path::PathBuf;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use common::{
    admin_get, client_frame, read_frame, read_response, HttpResponse, ServerProcess, ACCEPT, KEY,
};

// ---------------------------------------------------------------------------------------------
// Helpers

/// A scratch directory for token and secret files, removed when dropped.
struct Scratch(PathBuf);

impl Scratch {
    fn new(name: &str) -> Scratch {
        let dir = std::env::temp_dir().join(format!("ringws-policy-{}-{name}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        Scratch(dir)
    }

    /// Writes `text` to `name` in the directory; returns the path as a string for a flag.
    fn file(&self, name: &str, text: &str) -> String {
        let path = self.0.join(name);
        std::fs::write(&path, text).unwrap();
        path.to_str().unwrap().to_owned()
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// A valid upgrade request for `target` with `extra` headers after the required ones.
fn upgrade(target: &str, extra: &[(&str, &str)]) -> Vec<u8> {
    let mut request = format!(
        "GET {target} HTTP/1.1\r\nHost: localhost\r\nUpgrade: websocket\r\n\
         Connection: Upgrade\r\nSec-WebSocket-Key: {KEY}\r\nSec-WebSocket-Version: 13\r\n"
    );
    for (name, value) in extra {
        request.push_str(&format!("{name}: {value}\r\n"));
    }
    request.push_str("\r\n");
    request.into_bytes()
}

/// A TCP connection to `addr` from source address `source` (any port).
fn connect_from(source: IpAddr, addr: SocketAddr) -> TcpStream {
    use socket2::{Domain, Protocol, Socket, Type};
    let socket = Socket::new(Domain::IPV4, Type::STREAM, Some(Protocol::TCP)).unwrap();
    socket
        .bind(&SocketAddr::new(source, 0).into())
        .unwrap_or_else(|e| panic!("bind to {source}: {e}"));
    socket
        .connect_timeout(&addr.into(), Duration::from_secs(5))
        .unwrap_or_else(|e| panic!("connect from {source} to {addr}: {e}"));
    let stream: TcpStream = socket.into();
    stream
        .set_read_timeout(Some(Duration::from_secs(5)))
        .unwrap();
    stream
}

/// Sends `request` from `source` and reads the answer (the head of a 101, or the whole refusal).
fn send_from(source: IpAddr, addr: SocketAddr, request: &[u8]) -> HttpResponse {
    let mut stream = connect_from(source, addr);
    stream.write_all(request).unwrap();
    read_response(&mut stream)
}

fn localhost() -> IpAddr {
    IpAddr::V4(Ipv4Addr::LOCALHOST)
}

fn send(addr: SocketAddr, request: &[u8]) -> HttpResponse {
    send_from(localhost(), addr, request)
}

/// Asserts a 101 with the right accept key; returns the response for further checks.
#[track_caller]
fn assert_upgraded(response: &HttpResponse) {
    assert_eq!(response.status, 101, "{}{}", response.head, response.body);
    assert_eq!(
        response.header("Sec-WebSocket-Accept").as_deref(),
        Some(ACCEPT)
    );
}

/// Asserts a refusal: status, plain-text one-line body containing every one of `mentions`,
/// `Connection: close`. Returns the body without its line end.
#[track_caller]
fn assert_refused(response: &HttpResponse, status: u16, mentions: &[&str]) -> String {
    assert_eq!(
        response.status, status,
        "{}{}",
        response.head, response.body
    );
    assert!(
        response
            .header("Content-Type")
            .is_some_and(|t| t.starts_with("text/plain")),
        "{}",
        response.head
    );
    assert_eq!(
        response.header("Connection").as_deref(),
        Some("close"),
        "{}",
        response.head
    );
    let body = response.body.trim_end_matches(['\r', '\n']).to_owned();
    assert!(
        !body.is_empty() && !body.contains('\n'),
        "the reason is one line: {:?}",
        response.body
    );
    for text in mentions {
        assert!(body.contains(text), "{text:?} not in the reason: {body}");
    }
    assert!(
        response.header("Sec-WebSocket-Accept").is_none(),
        "{}",
        response.head
    );
    body
}

/// The sum over cores of `ringws_handshakes_refused_total{reason="<reason>"}`.
fn refused_count(admin: SocketAddr, reason: &str) -> u64 {
    metric_sum(
        admin,
        "ringws_handshakes_refused_total",
        &format!("reason=\"{reason}\""),
    )
}

/// Sum of every series of `name` whose labels contain `label` (empty: all series).
fn metric_sum(admin: SocketAddr, name: &str, label: &str) -> u64 {
    let (status, body) = admin_get(admin, "/metrics");
    assert_eq!(status, 200);
    body.lines()
        .filter(|line| {
            line.strip_prefix(name)
                .is_some_and(|rest| rest.starts_with('{') || rest.starts_with(' '))
                && line.contains(label)
        })
        .map(|line| {
            line.rsplit(' ')
                .next()
                .unwrap()
                .parse::<f64>()
                .unwrap_or_else(|_| panic!("metric value in {line}")) as u64
        })
        .sum()
}

/// Polls `refused_count` until it reaches `want` (counters are updated by the reactor threads).
#[track_caller]
fn assert_refused_count(admin: SocketAddr, reason: &str, want: u64) {
    let deadline = Instant::now() + Duration::from_secs(3);
    loop {
        let got = refused_count(admin, reason);
        if got == want {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "ringws_handshakes_refused_total{{reason=\"{reason}\"}}: {got}, expected {want}"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

fn debug_view(admin: SocketAddr) -> serde_json::Value {
    let (status, body) = admin_get(admin, "/debug/handshakes");
    assert_eq!(status, 200, "{body}");
    serde_json::from_str(&body).unwrap_or_else(|e| panic!("JSON: {e}: {body}"))
}

fn now_unix_s() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs()
}

/// An HS256 JWT, built here independently of ringws' own signer.
fn jwt(secret: &[u8], claims: serde_json::Value) -> String {
    common::auth::hs256_jwt(secret, &claims)
}

// ---------------------------------------------------------------------------------------------
// Origin

#[test]
fn origin_exact_and_wildcard_allowed_others_refused_naming_the_origin() {
    let server = ServerProcess::start(&[
        "--allowed-origins",
        "https://app.example.com",
        "--allowed-origins",
        "*.example.com",
    ]);
    let admin = server.admin.unwrap();
    for origin in [
        "https://app.example.com",
        "https://APP.example.com:443",
        "https://chat.example.com",
        "http://a.b.example.com",
    ] {
        let response = send(server.addr, &upgrade("/", &[("Origin", origin)]));
        assert_eq!(response.status, 101, "{origin}: {}", response.body);
        assert_upgraded(&response);
    }
    for origin in [
        "https://evil.test",
        "https://example.com",
        "https://evilexample.com",
        "http://app.example.com:8080",
    ] {
        let response = send(server.addr, &upgrade("/", &[("Origin", origin)]));
        assert_refused(
            &response,
            403,
            &[
                "origin not allowed",
                &format!("origin \"{origin}\" is not allowed"),
                "allowed: https://app.example.com, *.example.com",
            ],
        );
    }
    assert_refused_count(admin, "origin_not_allowed", 4);
    // Non-browser clients send no Origin: allowed by default.
    assert_upgraded(&send(server.addr, &upgrade("/", &[])));
    assert_refused_count(admin, "missing_origin", 0);
}

#[test]
fn missing_origin_refused_when_not_allowed() {
    let server = ServerProcess::start(&[
        "--allowed-origins",
        "https://app.example.com",
        "--allow-missing-origin",
        "false",
    ]);
    let response = send(server.addr, &upgrade("/", &[]));
    assert_refused(
        &response,
        403,
        &["missing \"Origin\" header", "allow_missing_origin is false"],
    );
    assert_refused_count(server.admin.unwrap(), "missing_origin", 1);
    let response = send(
        server.addr,
        &upgrade("/", &[("Origin", "https://app.example.com")]),
    );
    assert_upgraded(&response);
}

// ---------------------------------------------------------------------------------------------
// Subprotocols and extensions

/// The `Sec-WebSocket-Protocol` of a 101, asserting it is one of the offered ones.
#[track_caller]
fn chosen(response: &HttpResponse, offered: &str) -> Option<String> {
    assert_upgraded(response);
    let chosen = response.header("Sec-WebSocket-Protocol");
    if let Some(chosen) = &chosen {
        assert!(
            offered.split(',').map(str::trim).any(|o| o == chosen),
            "the server answered {chosen:?}, which the client did not offer ({offered:?})"
        );
    }
    chosen
}

#[test]
fn subprotocol_by_server_preference_and_only_an_offered_one() {
    let server = ServerProcess::start(&["--subprotocols", "chat.v2", "--subprotocols", "chat.v1"]);
    let cases: &[(&str, Option<&str>)] = &[
        // The server's order wins over the client's.
        ("chat.v1, chat.v2", Some("chat.v2")),
        ("chat.v2,chat.v1", Some("chat.v2")),
        ("mqtt, chat.v1", Some("chat.v1")),
        // Names compare exactly: an offer in other case is not chat.v1.
        ("CHAT.V1", None),
        // Offering only unsupported ones: accepted without a protocol (not required).
        ("mqtt, stomp", None),
    ];
    for (offered, want) in cases {
        let response = send(
            server.addr,
            &upgrade("/", &[("Sec-WebSocket-Protocol", offered)]),
        );
        assert_eq!(
            chosen(&response, offered).as_deref(),
            *want,
            "offered {offered:?}"
        );
    }
    // Offering nothing: no protocol in the answer.
    let response = send(server.addr, &upgrade("/", &[]));
    assert_upgraded(&response);
    assert_eq!(response.header("Sec-WebSocket-Protocol"), None);
}

/// RFC 6455 section 11.3.4: the header "MAY appear multiple times in an HTTP request (which is
/// logically the same as a single Sec-WebSocket-Protocol header field that contains all values)".
#[test]
fn subprotocol_offered_on_a_later_header_line_is_seen() {
    let server = ServerProcess::start(&["--subprotocols", "chat.v1"]);
    let response = send(
        server.addr,
        &upgrade(
            "/",
            &[
                ("Sec-WebSocket-Protocol", "mqtt"),
                ("Sec-WebSocket-Protocol", "chat.v1"),
            ],
        ),
    );
    assert_eq!(
        chosen(&response, "mqtt, chat.v1").as_deref(),
        Some("chat.v1")
    );
    // Any number of lines form one list (RFC 6455 §11.3.4).
    let response = send(
        server.addr,
        &upgrade(
            "/",
            &[
                ("Sec-WebSocket-Protocol", "mqtt"),
                ("Sec-WebSocket-Protocol", "wamp"),
                ("Sec-WebSocket-Protocol", "stomp, chat.v1"),
            ],
        ),
    );
    assert_eq!(
        chosen(&response, "mqtt, wamp, stomp, chat.v1").as_deref(),
        Some("chat.v1")
    );
}

#[test]
fn subprotocol_required_refuses_with_400_listing_the_supported_ones() {
    let server = ServerProcess::start(&[
        "--subprotocols",
        "chat.v2",
        "--subprotocols",
        "chat.v1",
        "--require-subprotocol",
        "true",
    ]);
    let response = send(
        server.addr,
        &upgrade("/", &[("Sec-WebSocket-Protocol", "mqtt, stomp")]),
    );
    assert_refused(
        &response,
        400,
        &[
            "no common subprotocol",
            "offered \"mqtt, stomp\"",
            "supported: chat.v2, chat.v1",
        ],
    );
    let response = send(server.addr, &upgrade("/", &[]));
    assert_refused(
        &response,
        400,
        &["offered none", "supported: chat.v2, chat.v1"],
    );
    assert_refused_count(server.admin.unwrap(), "subprotocol_mismatch", 2);
    let response = send(
        server.addr,
        &upgrade("/", &[("Sec-WebSocket-Protocol", "chat.v1")]),
    );
    assert_eq!(chosen(&response, "chat.v1").as_deref(), Some("chat.v1"));
}

#[test]
fn permessage_deflate_offered_is_declined_and_frames_stay_uncompressed() {
    let server = ServerProcess::start(&[]);
    let mut stream = connect_from(localhost(), server.addr);
    stream
        .write_all(&upgrade(
            "/",
            &[(
                "Sec-WebSocket-Extensions",
                "permessage-deflate; client_max_window_bits",
            )],
        ))
        .unwrap();
    let response = read_response(&mut stream);
    assert_upgraded(&response);
    assert_eq!(
        response.header("Sec-WebSocket-Extensions"),
        None,
        "{}",
        response.head
    );
    stream
        .write_all(&client_frame(true, 0x1, b"not compressed"))
        .unwrap();
    let (fin, opcode, payload) = read_frame(&mut stream);
    assert!(fin);
    assert_eq!(opcode, 0x1, "a text frame without RSV1");
    assert_eq!(payload, b"not compressed");
}

// ---------------------------------------------------------------------------------------------
// Authentication

#[test]
fn static_tokens_in_the_header_or_the_query() {
    let scratch = Scratch::new("tokens");
    let tokens = scratch.file(
        "tokens.txt",
        "# accepted tokens\nalice:tok-alice-0123456789\ntok-anon-9876543210\n",
    );
    let server = ServerProcess::start(&["--auth", "token", "--auth-tokens-file", &tokens]);
    let admin = server.admin.unwrap();

    for (target, header) in [
        ("/", Some("Bearer tok-alice-0123456789")),
        ("/", Some("Bearer tok-anon-9876543210")),
        ("/?token=tok-alice-0123456789", None),
        ("/chat?room=7&token=tok-anon-9876543210", None),
    ] {
        let extra: Vec<(&str, &str)> = header.map(|h| ("Authorization", h)).into_iter().collect();
        let response = send(server.addr, &upgrade(target, &extra));
        assert_eq!(
            response.status, 101,
            "{target} {header:?}: {}",
            response.body
        );
    }

    // No token: a bare challenge, without an error code (RFC 6750 section 3.1).
    let response = send(server.addr, &upgrade("/", &[]));
    assert_refused(
        &response,
        401,
        &["authentication failed", "no token was sent"],
    );
    assert_eq!(
        response.header("WWW-Authenticate").as_deref(),
        Some("Bearer realm=\"ringws\"")
    );

    // A wrong token, in either place: invalid_token, and the token is not echoed.
    for (target, header) in [
        ("/", Some("Bearer tok-wrong-55555")),
        ("/?token=tok-wrong-55555", None),
    ] {
        let extra: Vec<(&str, &str)> = header.map(|h| ("Authorization", h)).into_iter().collect();
        let response = send(server.addr, &upgrade(target, &extra));
        let body = assert_refused(&response, 401, &["unknown token"]);
        assert!(!body.contains("tok-wrong"), "{body}");
        let challenge = response.header("WWW-Authenticate").unwrap();
        assert!(
            challenge.starts_with("Bearer realm=\"ringws\"")
                && challenge.contains("error=\"invalid_token\"")
                && challenge.contains("error_description=\"unknown token\""),
            "{challenge}"
        );
        assert!(!challenge.contains("tok-wrong"), "{challenge}");
    }

    // A header that is not Bearer.
    let response = send(
        server.addr,
        &upgrade("/", &[("Authorization", "Basic YWxhZGRpbjpvcGVuc2VzYW1l")]),
    );
    assert_refused(&response, 401, &["malformed token"]);
    assert_refused_count(admin, "unauthorized", 4);
}

const JWT_SECRET: &str = "an-hs256-test-secret-of-at-least-32-bytes";

#[test]
fn jwt_valid_expired_bad_signature_wrong_audience() {
    let scratch = Scratch::new("jwt");
    let secret_file = scratch.file("jwt.secret", &format!("{JWT_SECRET}\n"));
    let server = ServerProcess::start(&[
        "--auth",
        "jwt",
        "--jwt-secret-file",
        &secret_file,
        "--jwt-audience",
        "ringws-test",
        "--jwt-issuer",
        "https://issuer.test",
    ]);
    let admin = server.admin.unwrap();
    let now = now_unix_s();
    let claims = |exp: u64, aud: &str| {
        serde_json::json!({
            "sub": "user-42",
            "aud": aud,
            "iss": "https://issuer.test",
            "iat": now - 10,
            "exp": exp,
        })
    };
    let secret = JWT_SECRET.as_bytes();

    let valid = jwt(secret, claims(now + 300, "ringws-test"));
    let response = send(
        server.addr,
        &upgrade("/", &[("Authorization", &format!("Bearer {valid}"))]),
    );
    assert_upgraded(&response);
    let response = send(server.addr, &upgrade(&format!("/?token={valid}"), &[]));
    assert_upgraded(&response);
    // An audience array naming ours is accepted too.
    let list = jwt(
        secret,
        serde_json::json!({"sub": "u", "aud": ["other", "ringws-test"],
                           "iss": "https://issuer.test", "exp": now + 300}),
    );
    assert_upgraded(&send(
        server.addr,
        &upgrade(&format!("/?token={list}"), &[]),
    ));

    let cases = [
        (
            jwt(secret, claims(now - 3600, "ringws-test")),
            "token expired",
            "expired at",
        ),
        (
            jwt(
                b"another-secret-that-is-also-32-bytes-long",
                claims(now + 300, "ringws-test"),
            ),
            "bad signature",
            "not signed with this server's JWT secret",
        ),
        (
            jwt(secret, claims(now + 300, "someone-else")),
            "wrong audience",
            "does not name \"ringws-test\"",
        ),
        ("not.a-jwt".to_owned(), "malformed token", "malformed token"),
    ];
    for (token, description, detail) in &cases {
        let response = send(
            server.addr,
            &upgrade("/", &[("Authorization", &format!("Bearer {token}"))]),
        );
        let body = assert_refused(&response, 401, &["authentication failed", detail]);
        assert!(!body.contains(token.as_str()), "{body}");
        assert!(!body.contains(JWT_SECRET), "{body}");
        let challenge = response.header("WWW-Authenticate").unwrap();
        assert!(
            challenge.contains("error=\"invalid_token\"")
                && challenge.contains(&format!("error_description=\"{description}\"")),
            "{challenge}"
        );
    }
    let response = send(server.addr, &upgrade("/", &[]));
    assert_refused(&response, 401, &["no token was sent"]);
    assert_refused_count(admin, "unauthorized", cases.len() as u64 + 1);
}

// ---------------------------------------------------------------------------------------------
// Rate limits

#[test]
fn rate_limit_per_address_answers_429_with_retry_after() {
    // One core: the limiter's table is per core.
    let server = ServerProcess::start(&[
        "--cores",
        "1",
        "--handshake-rate-per-ip",
        "2",
        "--handshake-burst-per-ip",
        "3",
    ]);
    let one = localhost();
    let two = IpAddr::V4(Ipv4Addr::new(127, 0, 0, 2));
    for i in 0..3 {
        let response = send_from(one, server.addr, &upgrade("/", &[]));
        assert_eq!(response.status, 101, "handshake {i} within the burst");
    }
    let response = send_from(one, server.addr, &upgrade("/", &[]));
    assert_refused(
        &response,
        429,
        &["too many handshakes from this address", "retry in 1 s"],
    );
    let retry_after: u32 = response
        .header("Retry-After")
        .expect("Retry-After")
        .parse()
        .unwrap();
    assert!((1..=2).contains(&retry_after), "{retry_after}");
    // Another address has its own bucket.
    assert_upgraded(&send_from(two, server.addr, &upgrade("/", &[])));
    assert_refused_count(server.admin.unwrap(), "rate_limited", 1);
    // After Retry-After the first address may connect again.
    std::thread::sleep(Duration::from_secs(u64::from(retry_after)));
    assert_upgraded(&send_from(one, server.addr, &upgrade("/", &[])));
}

/// Handshakes from many distinct source addresses: the per-core table is bounded, so memory
/// stays flat and ringws keeps serving.
#[test]
fn rate_limit_table_stays_bounded_under_many_source_addresses() {
    let server = ServerProcess::start(&[
        "--handshake-rate-per-ip",
        "1",
        "--handshake-burst-per-ip",
        "1",
        "--handshake-rate-table-size",
        "256",
    ]);
    let admin = server.admin.unwrap();
    let addr = server.addr;
    // `count` handshakes, each from its own 127.<second>.x.y address, on 4 threads.
    let flood = |second: u8, count: u32| {
        let threads: Vec<_> = (0..4u32)
            .map(|t| {
                std::thread::spawn(move || {
                    for i in (t..count).step_by(4) {
                        let source =
                            Ipv4Addr::new(127, second, (i / 250) as u8, (i % 250) as u8 + 1);
                        let response = send_from(IpAddr::V4(source), addr, &upgrade("/", &[]));
                        assert_eq!(response.status, 101, "from {source}: {}", response.body);
                    }
                })
            })
            .collect();
        for thread in threads {
            thread.join().unwrap();
        }
    };
    // Warm up: fill every core's table past its size once.
    flood(2, 600);
    let before = server.rss_bytes();
    let started = Instant::now();
    flood(1, 2000);
    let after = server.rss_bytes();
    eprintln!(
        "2000 source addresses in {:?}: RSS {} KiB -> {} KiB",
        started.elapsed(),
        before / 1024,
        after / 1024
    );
    assert!(
        after < before + (8 << 20),
        "RSS grew by {} KiB over 2000 source addresses",
        (after - before) / 1024
    );
    assert!(metric_sum(admin, "ringws_handshakes_completed_total", "") >= 2600);
    assert_refused_count(admin, "rate_limited", 0);
    // Still serving: an echo round trip.
    let mut stream = common::ws_connect(addr);
    stream
        .write_all(&client_frame(true, 0x1, b"still here"))
        .unwrap();
    assert_eq!(read_frame(&mut stream).2, b"still here");
}

// ---------------------------------------------------------------------------------------------
// Trusted proxies

#[test]
fn forwarded_client_address_only_from_trusted_proxies() {
    let limits = [
        "--cores",
        "1",
        "--handshake-rate-per-ip",
        "1",
        "--handshake-burst-per-ip",
        "2",
        "--debug-handshakes",
        "on",
    ];
    let via = |xff: &str| upgrade("/", &[("X-Forwarded-For", xff)]);

    // Behind a trusted proxy: the limit is per forwarded address.
    let mut args = limits.to_vec();
    args.extend(["--trusted-proxies", "127.0.0.1/32"]);
    let server = ServerProcess::start(&args);
    let admin = server.admin.unwrap();
    assert_upgraded(&send(server.addr, &via("203.0.113.7")));
    assert_upgraded(&send(server.addr, &via("198.51.100.1, 203.0.113.7")));
    assert_refused(&send(server.addr, &via("203.0.113.7")), 429, &[]);
    // Other forwarded clients, and the proxy's own address, have their own buckets.
    assert_upgraded(&send(server.addr, &via("203.0.113.8")));
    assert_upgraded(&send(server.addr, &upgrade("/", &[])));
    assert_upgraded(&send(
        server.addr,
        &upgrade("/", &[("Forwarded", "for=192.0.2.60;proto=http")]),
    ));
    // 127.0.0.2 is not a trusted proxy: its header is ignored, its own address is limited.
    let untrusted = IpAddr::V4(Ipv4Addr::new(127, 0, 0, 2));
    for xff in ["192.0.2.1", "192.0.2.2"] {
        assert_upgraded(&send_from(untrusted, server.addr, &via(xff)));
    }
    assert_refused(
        &send_from(untrusted, server.addr, &via("192.0.2.3")),
        429,
        &[],
    );
    let view = debug_view(admin);
    let clients: Vec<&str> = view["refusals"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["client"].as_str().unwrap())
        .collect();
    assert_eq!(clients, ["127.0.0.2", "203.0.113.7"], "{view:#}");
    assert_eq!(view["refusals"][1]["x_forwarded_for"], "203.0.113.7");
    assert_eq!(view["refusals"][0]["x_forwarded_for"], "192.0.2.3");
    drop(server);

    // Without trusted proxies the header is ignored: every request is 127.0.0.1's.
    let server = ServerProcess::start(&limits);
    assert_upgraded(&send(server.addr, &via("203.0.113.1")));
    assert_upgraded(&send(server.addr, &via("203.0.113.2")));
    assert_refused(&send(server.addr, &via("203.0.113.3")), 429, &[]);
    let view = debug_view(server.admin.unwrap());
    let refusal = &view["refusals"][0];
    assert_eq!(refusal["client"], "127.0.0.1", "{view:#}");
    assert_eq!(refusal["x_forwarded_for"], "203.0.113.3");
    assert_eq!(refusal["reason"], "rate_limited");
}

/// A policy refusal (not only a rate-limit one) of a request forwarded by a trusted proxy
/// names the forwarded client in the debug view and in the log, as the rate limiter does.
#[test]
fn policy_refusal_behind_a_trusted_proxy_names_the_forwarded_client() {
    let server = ServerProcess::start(&[
        "--cores",
        "1",
        "--trusted-proxies",
        "127.0.0.1/32",
        "--allowed-origins",
        "https://app.example.com",
        "--debug-handshakes",
        "on",
    ]);
    let response = send(
        server.addr,
        &upgrade(
            "/",
            &[
                ("Origin", "https://evil.test"),
                ("X-Forwarded-For", "203.0.113.7"),
            ],
        ),
    );
    assert_refused(&response, 403, &["https://evil.test"]);
    let view = debug_view(server.admin.unwrap());
    assert_eq!(view["refusals"][0]["client"], "203.0.113.7", "{view:#}");
    let (_, log) = server.stop();
    let line = log
        .lines()
        .find(|l| l.contains("handshake refused"))
        .expect("a refusal line");
    assert!(line.contains("client=203.0.113.7"), "{line}");
}

// ---------------------------------------------------------------------------------------------
// The debug view and the refusal log

#[test]
fn debug_view_explains_each_refusal_without_credentials() {
    let scratch = Scratch::new("debug");
    let tokens = scratch.file("tokens.txt", "tok-good-1111111111\n");
    let started = now_unix_s();
    let server = ServerProcess::start(&[
        "--cores",
        "1",
        "--debug-handshakes",
        "on",
        "--allowed-origins",
        "https://app.example.com",
        "--auth",
        "token",
        "--auth-tokens-file",
        &tokens,
    ]);
    let admin = server.admin.unwrap();
    let good = ("Origin", "https://app.example.com");
    let agent = ("User-Agent", "policy-e2e/1");

    // The view starts empty.
    let view = debug_view(admin);
    assert_eq!(view["recorded_total"], 0);
    assert_eq!(view["refusals"], serde_json::json!([]));

    let mut bodies = Vec::new();
    let response = send(
        server.addr,
        &upgrade("/chat", &[("Origin", "https://evil.test"), agent]),
    );
    bodies.push(assert_refused(&response, 403, &["https://evil.test"]));
    let response = send(
        server.addr,
        &upgrade(
            "/chat",
            &[good, ("Authorization", "Bearer WRONG-SECRET-one"), agent],
        ),
    );
    bodies.push(assert_refused(&response, 401, &[]));
    let response = send(
        server.addr,
        &upgrade("/chat?room=7&token=WRONG-SECRET-two", &[good, agent]),
    );
    bodies.push(assert_refused(&response, 401, &[]));
    // Refused by the parser (no Upgrade header): recovered from the raw head.
    let raw = "GET /chat?token=WRONG-SECRET-three HTTP/1.1\r\nHost: x\r\nConnection: Upgrade\r\n\
               Origin: https://app.example.com\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\
               Sec-WebSocket-Version: 13\r\nSec-WebSocket-Protocol: chat.v1\r\n\
               User-Agent: policy-e2e/1\r\n\r\n";
    let response = send(server.addr, raw.as_bytes());
    bodies.push(assert_refused(&response, 400, &["Upgrade: websocket"]));
    // Accepted upgrades are not recorded.
    assert_upgraded(&send(
        server.addr,
        &upgrade(
            "/chat",
            &[good, ("Authorization", "Bearer tok-good-1111111111")],
        ),
    ));

    let (status, text) = admin_get(admin, "/debug/handshakes");
    assert_eq!(status, 200);
    for secret in ["WRONG-SECRET", "tok-good"] {
        assert!(!text.contains(secret), "the view shows {secret:?}: {text}");
    }
    let view: serde_json::Value = serde_json::from_str(&text).unwrap();
    assert_eq!(view["recorded_total"], 4, "{view:#}");
    assert!(view["capacity"].as_u64().unwrap() >= 4);
    let records = view["refusals"].as_array().unwrap();
    assert_eq!(records.len(), 4, "{view:#}");
    // Newest first.
    let expected = [
        (
            400,
            "missing_upgrade",
            "query_token",
            "https://app.example.com",
        ),
        (
            401,
            "unauthorized",
            "query_token",
            "https://app.example.com",
        ),
        (
            401,
            "unauthorized",
            "authorization_header",
            "https://app.example.com",
        ),
        (403, "origin_not_allowed", "none", "https://evil.test"),
    ];
    let now = now_unix_s();
    for ((record, (status, reason, credentials, origin)), body) in
        records.iter().zip(expected).zip(bodies.iter().rev())
    {
        let time = record["time_unix_s"].as_u64().unwrap();
        assert!(started <= time && time <= now, "{record:#}");
        assert_eq!(record["client"], "127.0.0.1", "{record:#}");
        assert_eq!(record["method"], "GET", "{record:#}");
        assert_eq!(record["path"], "/chat", "{record:#}");
        assert_eq!(record["status"], status, "{record:#}");
        assert_eq!(record["reason"], reason, "{record:#}");
        assert_eq!(record["credentials"], credentials, "{record:#}");
        assert_eq!(record["origin"], origin, "{record:#}");
        assert_eq!(record["user_agent"], "policy-e2e/1", "{record:#}");
        assert_eq!(record["message"], body.as_str(), "{record:#}");
    }
    assert_eq!(records[0]["protocols"], "chat.v1");
}

#[test]
fn debug_view_is_404_with_an_explanation_when_off() {
    let server = ServerProcess::start(&[]);
    let (status, body) = admin_get(server.admin.unwrap(), "/debug/handshakes");
    assert_eq!(status, 404, "{body}");
    assert!(body.contains("--debug-handshakes on"), "{body}");
}

#[test]
fn refusal_log_lines_are_rate_limited_and_count_what_they_suppressed() {
    let server = ServerProcess::start(&[
        "--cores",
        "1",
        "--allowed-origins",
        "https://app.example.com",
    ]);
    let refuse = || {
        let response = send(
            server.addr,
            &upgrade("/flood", &[("Origin", "https://evil.test")]),
        );
        assert_eq!(response.status, 403);
    };
    let started = Instant::now();
    for _ in 0..200 {
        refuse();
    }
    let flood_s = started.elapsed().as_secs() + 1;
    // A refusal in a later window reports how many lines were dropped before it.
    std::thread::sleep(Duration::from_millis(1100));
    refuse();
    assert_refused_count(server.admin.unwrap(), "origin_not_allowed", 201);
    let (_, log) = server.stop();
    let lines: Vec<&str> = log
        .lines()
        .filter(|l| l.contains("handshake refused"))
        .collect();
    assert!(!lines.is_empty(), "no refusal lines:\n{log}");
    for line in &lines {
        assert!(
            line.contains("ringws::handshake")
                && line.contains("client=127.0.0.1")
                && line.contains("path=\"/flood\"")
                && line.contains("status=403")
                && line.contains("reason=\"origin_not_allowed\"")
                && line.contains("origin \"https://evil.test\" is not allowed"),
            "{line}"
        );
    }
    // 10 lines per second per core.
    assert!(
        lines.len() as u64 <= 10 * (flood_s + 2),
        "{} lines for 201 refusals in about {flood_s} s",
        lines.len()
    );
    let suppressed: Vec<u64> = lines
        .iter()
        .map(|line| {
            line.split_whitespace()
                .find_map(|field| field.strip_prefix("suppressed_before="))
                .unwrap_or_else(|| panic!("no suppressed_before in {line}"))
                .parse()
                .unwrap()
        })
        .collect();
    assert!(
        *suppressed.last().unwrap() > 0,
        "the line after the flood counts the dropped ones: {}",
        lines.last().unwrap()
    );
    assert_eq!(
        lines.len() as u64 + suppressed.iter().sum::<u64>(),
        201,
        "every refusal is either logged or counted as suppressed"
    );
}
