//! Topic permissions against the real binary: what a JWT claim or a tokens-file line grants,
//! subscribe and publish refused with the `forbidden` reply while the connection stays, a
//! forbidden `?topic=` refused with 403 before the upgrade, and `topic_permissions_default`.

mod common;

use std::io::Write;
use std::net::{SocketAddr, TcpStream};
use std::time::Duration;

use common::auth::{bearer_upgrade, hs256_jwt};
use common::proxy::Scratch;
use common::{client_frame, metric_labelled, read_frame, wait_metric, HttpResponse, ServerProcess};
use serde_json::{json, Value};

/// Writes `text` to `name` in the scratch directory; the path, for a flag.
fn file(scratch: &Scratch, name: &str, text: &str) -> String {
    let path = scratch.0.join(name);
    std::fs::write(&path, text).unwrap();
    path.to_str().unwrap().to_owned()
}

const SECRET: &str = "an-hs256-test-secret-of-at-least-32-bytes";

fn jwt(claims: Value) -> String {
    hs256_jwt(SECRET.as_bytes(), &claims)
}

/// Sends an upgrade for `target` with `token` as a bearer header; the response head (101) or
/// the whole refusal, and the stream.
fn handshake(addr: SocketAddr, target: &str, token: &str) -> (HttpResponse, TcpStream) {
    bearer_upgrade(addr, target, token, Duration::from_secs(5))
}

#[track_caller]
fn open(addr: SocketAddr, target: &str, token: &str) -> TcpStream {
    let (response, stream) = handshake(addr, target, token);
    assert_eq!(response.status, 101, "{}{}", response.head, response.body);
    stream
}

/// Sends one control message and reads the reply.
fn request(stream: &mut TcpStream, message: Value) -> Value {
    stream
        .write_all(&client_frame(true, 0x1, message.to_string().as_bytes()))
        .unwrap();
    next_text(stream)
}

fn next_text(stream: &mut TcpStream) -> Value {
    let (_, opcode, payload) = read_frame(stream);
    assert_eq!(opcode, 0x1, "{payload:?}");
    serde_json::from_slice(&payload).unwrap()
}

fn subscribe(stream: &mut TcpStream, topic: &str) -> Value {
    request(stream, json!({"op": "subscribe", "topic": topic}))
}

fn publish(stream: &mut TcpStream, topic: &str) -> Value {
    request(
        stream,
        json!({"op": "publish", "topic": topic, "data": "hi"}),
    )
}

#[track_caller]
fn assert_forbidden(reply: &Value, topic: &str) {
    assert_eq!(reply["op"], "error", "{reply}");
    assert_eq!(reply["error"], "forbidden", "{reply}");
    assert_eq!(reply["topic"], topic, "{reply}");
}

/// Polls `ringws_pubsub_forbidden_total{action=...}` until it is `want`.
#[track_caller]
fn assert_forbidden_count(admin: SocketAddr, action: &str, want: f64) {
    let label = format!("action=\"{action}\"");
    wait_metric(admin, "ringws_pubsub_forbidden_total", &label, want);
}

/// The pub/sub app with client publishing on, and `args`.
fn start_pubsub(args: &[&str]) -> ServerProcess {
    let mut all = vec!["--app", "pubsub", "--allow-client-publish", "true"];
    all.extend_from_slice(args);
    ServerProcess::start(&all)
}

#[test]
fn jwt_claim_grants_subscribe_and_publish_per_pattern() {
    let scratch = Scratch::new("jwt");
    let secret = file(&scratch, "jwt.secret", SECRET);
    let server = start_pubsub(&["--auth", "jwt", "--jwt-secret-file", &secret]);
    let admin = server.admin.unwrap();
    let token = jwt(json!({
        "sub": "user42",
        "topics": {"subscribe": ["news.*", "user.42.#"], "publish": ["chat.*"]}
    }));
    let mut ws = open(server.addr, "/ws?topic=news.eu", &token);
    assert_eq!(subscribe(&mut ws, "user.42.inbox")["op"], "subscribed");
    assert_eq!(subscribe(&mut ws, "user.42")["op"], "subscribed");
    assert_forbidden(&subscribe(&mut ws, "user.43.inbox"), "user.43.inbox");
    assert_forbidden(&subscribe(&mut ws, "news.eu.fr"), "news.eu.fr");
    assert_forbidden(&publish(&mut ws, "news.eu"), "news.eu");
    // The connection stays, and what it is granted still works.
    assert_eq!(publish(&mut ws, "chat.room1")["op"], "published");
    assert_forbidden_count(admin, "subscribe", 2.0);
    assert_forbidden_count(admin, "publish", 1.0);

    // The URL topic the token does not grant: 403 naming it, before any upgrade.
    let (refused, _) = handshake(server.addr, "/ws?topic=news.eu&topic=sports", &token);
    assert_eq!(refused.status, 403, "{}{}", refused.head, refused.body);
    assert!(refused.body.contains("topic forbidden"), "{}", refused.body);
    assert!(
        refused.body.contains("\\\"sports\\\"") || refused.body.contains("\"sports\""),
        "{}",
        refused.body
    );
    assert!(refused.header("Sec-WebSocket-Accept").is_none());

    // Without the claim: the default, allow.
    let mut anyone = open(server.addr, "/ws?topic=sports", &jwt(json!({"sub": "x"})));
    assert_eq!(subscribe(&mut anyone, "user.43.inbox")["op"], "subscribed");
    assert_eq!(publish(&mut anyone, "news.eu")["op"], "published");

    // A malformed claim is a malformed token (401), not a silent grant.
    let (bad, _) = handshake(
        server.addr,
        "/ws",
        &jwt(json!({"topics": {"subscribe": ["a*"]}})),
    );
    assert_eq!(bad.status, 401, "{}", bad.body);
    assert!(bad.body.contains("\"topics\""), "{}", bad.body);
}

#[test]
fn tokens_file_permissions_and_default_deny() {
    let scratch = Scratch::new("tokens");
    let tokens = file(
        &scratch,
        "tokens.txt",
        "# name:token then permissions\n\
         alice:tok-alice-0123456789 subscribe=user.alice.#,news.* publish=chat.*\n\
         reader:tok-reader-0123456789 subscribe=#\n\
         tok-plain-0123456789\n",
    );
    let server = start_pubsub(&[
        "--auth",
        "token",
        "--auth-tokens-file",
        &tokens,
        "--topic-permissions-default",
        "deny",
    ]);
    let admin = server.admin.unwrap();

    let mut alice = open(
        server.addr,
        "/ws?topic=user.alice.inbox",
        "tok-alice-0123456789",
    );
    assert_eq!(subscribe(&mut alice, "news.eu")["op"], "subscribed");
    assert_forbidden(&subscribe(&mut alice, "user.bob.inbox"), "user.bob.inbox");
    assert_eq!(publish(&mut alice, "chat.lobby")["op"], "published");

    let mut reader = open(server.addr, "/ws", "tok-reader-0123456789");
    assert_eq!(
        subscribe(&mut reader, "anything.at.all")["op"],
        "subscribed"
    );
    assert_forbidden(&publish(&mut reader, "chat.lobby"), "chat.lobby");

    // A token without permissions gets the default: deny, in the URL and over the socket.
    let (refused, _) = handshake(server.addr, "/ws?topic=news.eu", "tok-plain-0123456789");
    assert_eq!(refused.status, 403, "{}", refused.body);
    assert!(refused.body.contains("news.eu"), "{}", refused.body);
    let mut plain = open(server.addr, "/ws", "tok-plain-0123456789");
    assert_forbidden(&subscribe(&mut plain, "news.eu"), "news.eu");
    assert_forbidden(&publish(&mut plain, "news.eu"), "news.eu");

    assert_forbidden_count(admin, "subscribe", 2.0);
    assert_forbidden_count(admin, "publish", 2.0);
    let refused = metric_labelled(
        admin,
        "ringws_handshakes_refused_total",
        "reason=\"topic_forbidden\"",
    );
    assert_eq!(refused, 1.0);
    // Every connection is still usable after its refusals.
    assert_eq!(subscribe(&mut alice, "news.us")["op"], "subscribed");
    assert_eq!(subscribe(&mut plain, "news.us")["error"], "forbidden");
}

#[test]
fn a_bad_permissions_field_stops_the_start_naming_the_line() {
    let scratch = Scratch::new("badline");
    let tokens = file(
        &scratch,
        "tokens.txt",
        "ok-token-0123456789\nx:tok-x subscribe=a.#.b\n",
    );
    common::refused_start(
        &["--auth", "token", "--auth-tokens-file", &tokens],
        &[],
        1,
        &["line 2", "a.#.b"],
    );
}
