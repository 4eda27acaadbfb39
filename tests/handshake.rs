//! The upgrade handshake against the real binary: success and every refusal, with status,
//! headers and the one-line reason.

mod common;
use common::*;

fn request(lines: &[&str]) -> Vec<u8> {
    let mut r = lines.join("\r\n");
    r.push_str("\r\n\r\n");
    r.into_bytes()
}

const HOST: &str = "Host: localhost";
const UPGRADE: &str = "Upgrade: websocket";
const CONNECTION: &str = "Connection: Upgrade";
const VERSION: &str = "Sec-WebSocket-Version: 13";

fn key() -> String {
    format!("Sec-WebSocket-Key: {KEY}")
}

/// Checks a refusal: status, plain-text one-line reason, connection closed.
fn assert_refused(r: &HttpResponse, status: u16, reason_contains: &str) {
    assert_eq!(r.status, status, "head: {}\nbody: {}", r.head, r.body);
    assert!(
        r.header("content-type").unwrap().starts_with("text/plain"),
        "{}",
        r.head
    );
    assert_eq!(r.header("connection").as_deref(), Some("close"));
    assert_eq!(
        r.body.lines().count(),
        1,
        "one-line reason, got {:?}",
        r.body
    );
    assert_eq!(
        r.header("content-length")
            .unwrap()
            .parse::<usize>()
            .unwrap(),
        r.body.len()
    );
    assert!(
        r.body
            .to_lowercase()
            .contains(&reason_contains.to_lowercase()),
        "reason {:?} should mention {reason_contains:?}",
        r.body
    );
}

#[test]
fn valid_upgrade_gets_101_with_the_rfc_accept_key() {
    let server = ServerProcess::start(&["--cores", "1"]);
    let mut s = connect(server.addr);
    use std::io::Write;
    s.write_all(upgrade_request("/chat?x=1").as_bytes())
        .unwrap();
    let r = read_response(&mut s);
    assert_eq!(r.status, 101);
    assert_eq!(r.header("sec-websocket-accept").as_deref(), Some(ACCEPT));
    assert!(r
        .header("upgrade")
        .unwrap()
        .eq_ignore_ascii_case("websocket"));
    assert!(
        r.header("sec-websocket-extensions").is_none(),
        "extensions are declined"
    );
}

#[test]
fn every_refusal_has_its_status_headers_and_reason() {
    let server = ServerProcess::start(&["--cores", "1", "--max-handshake-size", "2KiB"]);
    let a = server.addr;
    let k = key();

    // Malformed request line.
    assert_refused(&exchange(a, b"GARBAGE\r\n\r\n"), 400, "");
    // HTTP/1.0.
    assert_refused(
        &exchange(
            a,
            &request(&["GET / HTTP/1.0", HOST, UPGRADE, CONNECTION, &k, VERSION]),
        ),
        400,
        "HTTP/1.1",
    );
    // Method.
    let r = exchange(
        a,
        &request(&[
            "POST / HTTP/1.1",
            HOST,
            UPGRADE,
            CONNECTION,
            &k,
            VERSION,
            "Content-Length: 0",
        ]),
    );
    assert_refused(&r, 405, "GET");
    assert_eq!(r.header("allow").as_deref(), Some("GET"));
    // Plain HTTP GET on a WebSocket path.
    let r = exchange(a, &request(&["GET / HTTP/1.1", HOST]));
    assert_refused(&r, 426, "websocket");
    assert_eq!(r.header("sec-websocket-version").as_deref(), Some("13"));
    // A proxy stripped Upgrade but kept Connection: upgrade.
    let r = exchange(
        a,
        &request(&["GET / HTTP/1.1", HOST, CONNECTION, &k, VERSION]),
    );
    assert_refused(&r, 400, "proxy");
    assert!(r.body.contains("Upgrade"), "{}", r.body);
    // Upgrade to something else.
    assert_refused(
        &exchange(
            a,
            &request(&[
                "GET / HTTP/1.1",
                HOST,
                "Upgrade: h2c",
                CONNECTION,
                &k,
                VERSION,
            ]),
        ),
        400,
        "websocket",
    );
    // Connection without the upgrade token.
    let r = exchange(
        a,
        &request(&[
            "GET / HTTP/1.1",
            HOST,
            UPGRADE,
            "Connection: keep-alive",
            &k,
            VERSION,
        ]),
    );
    assert_refused(&r, 400, "Connection");
    // Key missing, key malformed (decodes to 15 bytes).
    assert_refused(
        &exchange(
            a,
            &request(&["GET / HTTP/1.1", HOST, UPGRADE, CONNECTION, VERSION]),
        ),
        400,
        "Sec-WebSocket-Key",
    );
    let r = exchange(
        a,
        &request(&[
            "GET / HTTP/1.1",
            HOST,
            UPGRADE,
            CONNECTION,
            "Sec-WebSocket-Key: AAAAAAAAAAAAAAAAAAAA",
            VERSION,
        ]),
    );
    assert_refused(&r, 400, "Sec-WebSocket-Key");
    // Version missing and wrong.
    for v in [None, Some("Sec-WebSocket-Version: 8")] {
        let mut lines = vec!["GET / HTTP/1.1", HOST, UPGRADE, CONNECTION, &k];
        lines.extend(v);
        let r = exchange(a, &request(&lines));
        assert_refused(&r, 426, "version");
        assert_eq!(r.header("sec-websocket-version").as_deref(), Some("13"));
    }
    // A body.
    assert_refused(
        &exchange(
            a,
            &request(&[
                "GET / HTTP/1.1",
                HOST,
                UPGRADE,
                CONNECTION,
                &k,
                VERSION,
                "Content-Length: 5",
            ]),
        ),
        400,
        "body",
    );
    // Head over the 2 KiB limit.
    let big = format!("X-Padding: {}", "a".repeat(3000));
    assert_refused(
        &exchange(
            a,
            &request(&[
                "GET / HTTP/1.1",
                HOST,
                &big,
                UPGRADE,
                CONNECTION,
                &k,
                VERSION,
            ]),
        ),
        431,
        "",
    );
    // TLS ClientHello on the plain port.
    let hello = [
        0x16u8, 0x03, 0x01, 0x02, 0x00, 0x01, 0x00, 0x01, 0xfc, 0x03, 0x03,
    ];
    assert_refused(&exchange(a, &hello), 400, "TLS");

    let (status, log) = server.stop();
    assert_eq!(status, Some(0), "{log}");
    // Refusals are counted by reason: the exit summary lists them.
    for label in [
        "method_not_allowed",
        "not_an_upgrade",
        "missing_upgrade",
        "head_too_large",
        "tls_on_plain_port",
    ] {
        assert!(log.contains(label), "summary should count {label}: {log}");
    }
}

#[test]
fn tokens_and_header_names_match_case_insensitively() {
    let server = ServerProcess::start(&["--cores", "1"]);
    let r = exchange(
        server.addr,
        &request(&[
            "GET / HTTP/1.1",
            "host: localhost",
            "upgrade: WebSocket",
            "connection: keep-alive, UPGRADE",
            &format!("sec-websocket-key: {KEY}"),
            "sec-websocket-version: 13",
        ]),
    );
    assert_eq!(r.status, 101, "{}", r.head);
}

#[test]
fn a_request_split_across_many_writes_still_upgrades() {
    use std::io::Write;
    let server = ServerProcess::start(&["--cores", "1"]);
    let mut s = connect(server.addr);
    for chunk in upgrade_request("/").as_bytes().chunks(7) {
        s.write_all(chunk).unwrap();
        std::thread::sleep(std::time::Duration::from_millis(2));
    }
    assert_eq!(read_response(&mut s).status, 101);
}

#[test]
fn host_must_appear_once_and_the_version_once() {
    let server = ServerProcess::start(&["--cores", "1"]);
    let (a, admin) = (server.addr, server.admin.expect("admin listener"));
    let k = key();
    let valid = ["GET / HTTP/1.1", HOST, UPGRADE, CONNECTION, &k, VERSION];
    // (header lines, what the reason says, its detail)
    let faults: [(Vec<&str>, &str, &str); 3] = [
        (
            valid.iter().copied().filter(|l| *l != HOST).collect(),
            "exactly one Host",
            ": no Host header",
        ),
        (
            [&valid[..], &[HOST]].concat(),
            "exactly one Host",
            ": 2 Host headers",
        ),
        (
            [&valid[..], &[VERSION]].concat(),
            "Sec-WebSocket-Version\" appears more than once",
            ": 2 Sec-WebSocket-Version headers",
        ),
    ];
    for (lines, reason, detail) in faults {
        let r = exchange(a, &request(&lines));
        assert_refused(&r, 400, reason);
        assert!(r.body.trim_end().ends_with(detail), "{}", r.body);
        assert_eq!(r.header("sec-websocket-version"), None, "{}", r.head);
    }
    // Each is counted under its reason.
    let (status, text) = admin_get(admin, "/metrics");
    assert_eq!(status, 200);
    for (reason, count) in [("bad_host", 2), ("repeated_version", 1)] {
        let series =
            format!("ringws_handshakes_refused_total{{core=\"0\",reason=\"{reason}\"}} {count}");
        assert!(text.lines().any(|l| l == series), "no {series:?} in {text}");
    }
    // The same request with one Host and one version upgrades.
    assert_eq!(exchange(a, &request(&valid)).status, 101);
}
