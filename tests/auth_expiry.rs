//! `close_on_token_expiry` against the real binary: a connection whose JWT expires is closed with
//! 4001 and the documented reason, after its `exp` and within the spreading window; one whose
//! token has no `exp` stays, and without the setting nothing is closed.

mod common;

use std::io::Write;
use std::net::{SocketAddr, TcpStream};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use common::auth::{bearer_upgrade, hs256_jwt};
use common::proxy::Scratch;
use common::{client_frame, metric_sum, read_frame, ServerProcess};

const SECRET: &str = "an-hs256-test-secret-of-at-least-32-bytes";

fn now_unix_s() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs()
}

fn jwt(claims: serde_json::Value) -> String {
    hs256_jwt(SECRET.as_bytes(), &claims)
}

fn open(addr: SocketAddr, token: &str) -> TcpStream {
    // Longer than exp plus the window plus the clock skew: a close that does not come in time
    // is a failure (the read times out and panics), never a pass.
    let (response, stream) = bearer_upgrade(addr, "/", token, Duration::from_secs(15));
    assert_eq!(response.status, 101);
    stream
}

#[track_caller]
fn assert_alive(stream: &mut TcpStream) {
    stream
        .write_all(&client_frame(true, 0x1, b"ping?"))
        .unwrap();
    let (_, opcode, payload) = read_frame(stream);
    assert_eq!((opcode, payload.as_slice()), (0x1, &b"ping?"[..]));
}

fn start(scratch: &Scratch, extra: &[&str]) -> ServerProcess {
    let path = scratch.0.join("jwt.secret");
    std::fs::write(&path, SECRET).unwrap();
    let mut args = vec!["--app", "echo", "--auth", "jwt", "--jwt-secret-file"];
    args.push(path.to_str().unwrap());
    args.extend_from_slice(extra);
    ServerProcess::start(&args)
}

#[test]
fn an_expired_token_closes_its_connection_with_4001() {
    let scratch = Scratch::new("expiry");
    let closing = start(
        &scratch,
        &[
            "--close-on-token-expiry",
            "true",
            "--token-expiry-close-window",
            "1s",
        ],
    );
    let keeping = start(&scratch, &[]);
    let exp = now_unix_s() + 2;
    let expiring = jwt(serde_json::json!({"sub": "a", "exp": exp}));
    let mut closed = open(closing.addr, &expiring);
    let mut no_exp = open(closing.addr, &jwt(serde_json::json!({"sub": "b"})));
    let mut off = open(keeping.addr, &expiring);

    let (fin, opcode, payload) = read_frame(&mut closed);
    let closed_at = now_unix_s();
    assert!(fin);
    assert_eq!(opcode, 0x8, "a close frame: {payload:?}");
    assert_eq!(u16::from_be_bytes([payload[0], payload[1]]), 4001);
    assert_eq!(
        std::str::from_utf8(&payload[2..]).unwrap(),
        "token expired: refresh the token and reconnect"
    );
    assert!(closed_at >= exp, "closed at {closed_at}, before exp {exp}");
    // Counted before the close frame went out.
    let counted = metric_sum(closing.admin.unwrap(), "ringws_token_expiry_closes_total");
    assert_eq!(counted, 1.0);

    assert_alive(&mut no_exp);
    assert_alive(&mut off);
}
