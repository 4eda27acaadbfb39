//! `ringws doctor --token` against the real binary: the Identity line (subject and topic
//! patterns the server grants, from the 101's RingWS-Identity), the 403 of a forbidden
//! `?topic=` explained, and a 101 without the request header left unchanged.

mod common;

use std::io::Write;
use std::net::{SocketAddr, TcpStream};
use std::time::Duration;

use common::auth::{bearer_upgrade, hs256_jwt};
use common::doctor::{assert_run, doctor};
use common::proxy::Scratch;
use common::{read_response, ServerProcess, KEY};
use serde_json::{json, Value};

const SECRET: &str = "an-hs256-test-secret-of-at-least-32-bytes";

fn file(scratch: &Scratch, name: &str, text: &str) -> String {
    let path = scratch.0.join(name);
    std::fs::write(&path, text).unwrap();
    path.to_str().unwrap().to_owned()
}

fn start(args: &[&str]) -> ServerProcess {
    let mut all = vec!["--app", "pubsub", "--admin-listen", "off", "--cores", "1"];
    all.extend_from_slice(args);
    ServerProcess::start(&all)
}

fn url(addr: SocketAddr, target: &str) -> String {
    format!("ws://{addr}{target}")
}

fn identity_line(stdout: &str) -> &str {
    stdout
        .lines()
        .find(|l| l.starts_with("Identity: "))
        .unwrap_or_else(|| panic!("no Identity line in\n{stdout}"))
}

fn start_with_tokens(scratch: &Scratch) -> ServerProcess {
    let tokens = file(
        scratch,
        "tokens.txt",
        "alice:tok-alice-0123456789 subscribe=user.alice.#,news.* publish=chat.*\n\
         tok-plain-0123456789\n",
    );
    start(&["--auth", "token", "--auth-tokens-file", &tokens])
}

#[test]
fn a_static_token_shows_its_subject_and_patterns() {
    let scratch = Scratch::new("doctor-identity-tokens");
    let server = start_with_tokens(&scratch);
    let run = doctor(&["--token", "tok-alice-0123456789", &url(server.addr, "/ws")]);
    assert_run(&run, 0, &[]);
    assert_eq!(
        identity_line(&run.stdout),
        "Identity: subject \"alice\"; subscribe: user.alice.#, news.*; publish: chat.*."
    );
    assert!(!run.stdout.contains("tok-alice"), "{}", run.stdout);

    // Without restrictions (the default, allow): all topics.
    let run = doctor(&["--token", "tok-plain-0123456789", &url(server.addr, "/ws")]);
    assert_run(&run, 0, &[]);
    assert_eq!(
        identity_line(&run.stdout),
        "Identity: no subject; subscribe: all topics; publish: all topics."
    );

    // --json carries the same.
    let run = doctor(&[
        "--json",
        "--token",
        "tok-alice-0123456789",
        &url(server.addr, "/ws"),
    ]);
    let value: Value = serde_json::from_str(&run.stdout).unwrap();
    assert_eq!(
        value["identity"],
        json!({
            "reported": true,
            "subject": "alice",
            "subscribe": ["user.alice.#", "news.*"],
            "publish": ["chat.*"],
            "truncated": false,
        })
    );
}

#[test]
fn a_jwt_claim_shows_its_subject_and_patterns() {
    let scratch = Scratch::new("doctor-identity-jwt");
    let secret = file(&scratch, "jwt.secret", SECRET);
    let server = start(&["--auth", "jwt", "--jwt-secret-file", &secret]);
    let token = hs256_jwt(
        SECRET.as_bytes(),
        &json!({"sub": "user42", "topics": {"subscribe": ["news.*", "user.42.#"]}}),
    );
    let run = doctor(&["--token", &token, &url(server.addr, "/ws")]);
    assert_run(&run, 0, &[]);
    assert_eq!(
        identity_line(&run.stdout),
        "Identity: subject \"user42\"; subscribe: news.*, user.42.#; publish: no topic."
    );
    // Sent as ?token= too.
    let run = doctor(&[
        "--token",
        &token,
        "--token-in-query",
        &url(server.addr, "/ws"),
    ]);
    assert_run(&run, 0, &[]);
    assert!(identity_line(&run.stdout).contains("\"user42\""));
}

#[test]
fn a_forbidden_url_topic_is_explained() {
    let scratch = Scratch::new("doctor-identity-forbidden");
    let server = start_with_tokens(&scratch);
    let run = doctor(&[
        "--token",
        "tok-alice-0123456789",
        &url(server.addr, "/ws?topic=news.eu&topic=sports.x"),
    ]);
    assert_run(&run, 4, &["topic_forbidden"]);
    assert_eq!(
        identity_line(&run.stdout),
        "Identity: the token may not subscribe to \"sports.x\": its subscribe patterns \
         (user.alice.#, news.*) do not cover it."
    );
    let run = doctor(&[
        "--json",
        "--token",
        "tok-alice-0123456789",
        &url(server.addr, "/ws?topic=sports.x"),
    ]);
    let value: Value = serde_json::from_str(&run.stdout).unwrap();
    assert_eq!(value["identity"]["forbidden_topic"], "sports.x");
    assert_eq!(
        value["identity"]["subscribe"],
        json!(["user.alice.#", "news.*"])
    );
}

#[test]
fn without_the_request_header_the_101_is_unchanged() {
    let scratch = Scratch::new("doctor-identity-raw");
    let server = start_with_tokens(&scratch);
    let (plain, _stream) = bearer_upgrade(
        server.addr,
        "/ws",
        "tok-alice-0123456789",
        Duration::from_secs(5),
    );
    assert_eq!(plain.status, 101, "{}", plain.head);
    assert!(plain.header("RingWS-Identity").is_none(), "{}", plain.head);

    let mut stream = TcpStream::connect(server.addr).unwrap();
    stream
        .set_read_timeout(Some(Duration::from_secs(5)))
        .unwrap();
    let request = format!(
        "GET /ws HTTP/1.1\r\nHost: localhost\r\nUpgrade: websocket\r\n\
         Connection: Upgrade\r\nSec-WebSocket-Key: {KEY}\r\nSec-WebSocket-Version: 13\r\n\
         Authorization: Bearer tok-alice-0123456789\r\nRingWS-Explain: identity\r\n\r\n"
    );
    stream.write_all(request.as_bytes()).unwrap();
    let asked = read_response(&mut stream);
    assert_eq!(asked.status, 101, "{}", asked.head);
    assert_eq!(
        asked.header("RingWS-Identity").as_deref(),
        Some("subject=\"alice\"; subscribe=\"user.alice.#,news.*\"; publish=\"chat.*\""),
        "{}",
        asked.head
    );
    assert_eq!(
        asked.head.len(),
        plain.head.len() + asked.header("RingWS-Identity").unwrap().len() + 19,
        "one header line more, nothing else"
    );

    // A doctor told not to ask (the header removed) says the server did not report them.
    let run = doctor(&[
        "--token",
        "tok-alice-0123456789",
        "--header",
        "RingWS-Explain:",
        &url(server.addr, "/ws"),
    ]);
    assert_run(&run, 0, &[]);
    assert!(
        identity_line(&run.stdout).contains("did not report permissions"),
        "{}",
        run.stdout
    );
}
