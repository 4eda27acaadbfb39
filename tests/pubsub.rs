//! The pub/sub app against the real binary over loopback: subscribing (URL and control
//! messages), publishing over HTTP and WebSocket, fan-out to thousands of subscribers on two
//! cores, isolation, unsubscribe, every documented error, tokens and the slow-subscriber cut-off.

mod common;

use std::io::{ErrorKind, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::{Duration, Instant};

use common::*;
use serde_json::{json, Value};

/// Opens an upgraded connection to `path` (e.g. `/ws?topic=a`).
fn ws_open(addr: SocketAddr, path: &str) -> TcpStream {
    let mut s = connect(addr);
    s.write_all(upgrade_request(path).as_bytes()).unwrap();
    let r = read_response(&mut s);
    assert_eq!(r.status, 101, "{}", r.head);
    s
}

fn send_text(s: &mut TcpStream, text: &str) {
    s.write_all(&client_frame(true, 0x1, text.as_bytes()))
        .unwrap();
}

/// The next message, which must be a JSON text message.
fn read_json(s: &mut TcpStream) -> Value {
    let (fin, op, payload) = read_frame(s);
    assert!(fin);
    assert_eq!(
        op,
        0x1,
        "expected a text message, got {op:#x} {:?}",
        String::from_utf8_lossy(&payload)
    );
    serde_json::from_slice(&payload).unwrap_or_else(|e| {
        panic!("{e}: {:?}", String::from_utf8_lossy(&payload));
    })
}

/// Sends a control message and returns the reply.
fn control(s: &mut TcpStream, text: &str) -> Value {
    send_text(s, text);
    read_json(s)
}

/// True when nothing more arrives within `wait`.
fn nothing_more(s: &mut TcpStream, wait: Duration) -> bool {
    s.set_read_timeout(Some(wait)).unwrap();
    let mut b = [0u8; 1];
    let quiet = matches!(s.read(&mut b), Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut));
    s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    quiet
}

/// `POST /publish/{topic}` with optional content type and bearer token.
fn publish(
    admin: SocketAddr,
    topic: &str,
    content_type: Option<&str>,
    token: Option<&str>,
    body: &[u8],
) -> HttpResponse {
    let mut req = format!("POST /publish/{topic} HTTP/1.1\r\nHost: x\r\n");
    if let Some(ct) = content_type {
        req.push_str(&format!("Content-Type: {ct}\r\n"));
    }
    if let Some(t) = token {
        req.push_str(&format!("Authorization: Bearer {t}\r\n"));
    }
    req.push_str(&format!("Content-Length: {}\r\n\r\n", body.len()));
    let mut bytes = req.into_bytes();
    bytes.extend_from_slice(body);
    exchange(admin, &bytes)
}

fn publish_text(admin: SocketAddr, topic: &str, text: &str) -> Value {
    let r = publish(admin, topic, Some("text/plain"), None, text.as_bytes());
    assert_eq!(r.status, 200, "{}", r.body);
    serde_json::from_str(&r.body).unwrap()
}

fn get_json(admin: SocketAddr, path: &str) -> (u16, Value) {
    let (status, body) = admin_get(admin, path);
    (status, serde_json::from_str(&body).unwrap_or(Value::Null))
}

/// Waits until `GET /topics/{topic}` reports `n` subscribers; returns the per-core counts.
fn wait_for_subscribers(admin: SocketAddr, topic: &str, n: u64) -> Vec<u64> {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let (_, v) = get_json(admin, &format!("/topics/{topic}"));
        if v["subscribers"] == n {
            return v["per_core"]
                .as_array()
                .unwrap()
                .iter()
                .map(|c| c.as_u64().unwrap())
                .collect();
        }
        assert!(Instant::now() < deadline, "{topic}: {v} instead of {n}");
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Sum of a metric over its labels, from `/metrics`.
fn pubsub(extra: &[&str]) -> (ServerProcess, SocketAddr) {
    let mut args = vec!["--app", "pubsub", "--cores", "2"];
    args.extend_from_slice(extra);
    let server = ServerProcess::start(&args);
    let admin = server.admin.expect("admin listener");
    (server, admin)
}

#[test]
fn thousands_of_subscribers_on_both_cores_receive_every_message_once_in_order() {
    const SUBSCRIBERS: usize = 2000;
    const MESSAGES: usize = 50;
    let (server, admin) = pubsub(&[]);
    let mut subs: Vec<TcpStream> = Vec::with_capacity(SUBSCRIBERS);
    for i in 0..SUBSCRIBERS {
        if i % 2 == 0 {
            subs.push(ws_open(server.addr, "/ws?topic=fleet"));
        } else {
            let mut s = ws_open(server.addr, "/");
            let ack = control(&mut s, r#"{"op":"subscribe","topic":"fleet"}"#);
            assert_eq!(ack, json!({"op":"subscribed","topic":"fleet"}));
            subs.push(s);
        }
    }
    let per_core = wait_for_subscribers(admin, "fleet", SUBSCRIBERS as u64);
    assert!(
        per_core.iter().all(|&n| n > 0),
        "subscribers on every core: {per_core:?}"
    );
    for i in 0..MESSAGES {
        let answer = publish_text(admin, "fleet", &format!("m{i}"));
        assert_eq!(
            answer,
            json!({"topic":"fleet","subscribers":SUBSCRIBERS,"dropped":0})
        );
    }
    for (n, s) in subs.iter_mut().enumerate() {
        for i in 0..MESSAGES {
            let (fin, op, payload) = read_frame(s);
            assert!(fin && op == 0x1, "subscriber {n}, message {i}");
            assert_eq!(
                payload,
                format!("m{i}").as_bytes(),
                "subscriber {n}: out of order"
            );
        }
    }
    // Exactly once: nothing after the last message (checked on a sample, the wait is per socket).
    for s in subs.iter_mut().step_by(97) {
        assert!(nothing_more(s, Duration::from_millis(50)));
    }
    assert_eq!(metric_sum(admin, "ringws_pubsub_publishes_total"), 50.0);
    assert_eq!(
        metric_sum(admin, "ringws_pubsub_deliveries_total"),
        (SUBSCRIBERS * MESSAGES) as f64
    );
    assert_eq!(
        metric_sum(admin, "ringws_pubsub_subscriptions"),
        SUBSCRIBERS as f64
    );
    assert!(metric_sum(admin, "ringws_fanout_latency_seconds_count") >= MESSAGES as f64);
    drop(subs);
    wait_for_subscribers(admin, "fleet", 0);
}

#[test]
fn topics_are_isolated_and_unsubscribe_stops_delivery() {
    let (server, admin) = pubsub(&[]);
    let mut a = ws_open(server.addr, "/ws?topic=a");
    let mut b = ws_open(server.addr, "/ws?topic=b");
    let mut both = ws_open(server.addr, "/ws?topic=a&topic=b");
    wait_for_subscribers(admin, "a", 2);
    wait_for_subscribers(admin, "b", 2);
    let (status, topics) = get_json(admin, "/topics");
    assert_eq!(status, 200);
    assert_eq!(
        topics,
        json!({"topic_count":2,"subscriptions":4,"truncated":false,"topics":[
            {"topic":"a","subscribers":2},{"topic":"b","subscribers":2}]})
    );

    assert_eq!(publish_text(admin, "a", "1")["subscribers"], 2);
    assert_eq!(read_frame(&mut a).2, b"1");
    assert_eq!(read_frame(&mut both).2, b"1");
    assert!(
        nothing_more(&mut b, Duration::from_millis(200)),
        "b is not subscribed to a"
    );

    let ack = control(&mut both, r#"{"op":"unsubscribe","topic":"a"}"#);
    assert_eq!(ack, json!({"op":"unsubscribed","topic":"a"}));
    wait_for_subscribers(admin, "a", 1);
    assert_eq!(publish_text(admin, "a", "2")["subscribers"], 1);
    assert_eq!(publish_text(admin, "b", "3")["subscribers"], 2);
    assert_eq!(read_frame(&mut a).2, b"2");
    assert_eq!(read_frame(&mut b).2, b"3");
    assert_eq!(read_frame(&mut both).2, b"3", "no 2: unsubscribed from a");
    for s in [&mut a, &mut b, &mut both] {
        assert!(nothing_more(s, Duration::from_millis(100)));
    }
    assert_eq!(publish_text(admin, "nobody", "x")["subscribers"], 0);

    // Content types: text/* and JSON as text messages, anything else binary.
    publish(admin, "a", None, None, b"\x00\x01");
    publish(admin, "a", Some("application/json"), None, b"{}");
    assert_eq!(read_frame(&mut a), (true, 0x2, b"\x00\x01".to_vec()));
    assert_eq!(read_frame(&mut a), (true, 0x1, b"{}".to_vec()));
}

#[test]
fn bad_control_messages_get_their_error_and_the_connection_stays() {
    let (server, admin) = pubsub(&[
        "--max-subscriptions-per-connection",
        "2",
        "--max-topic-length",
        "8",
    ]);
    let mut bystander = ws_open(server.addr, "/ws?topic=t");
    // At connect: one invalid name, then one over the cap (the first two are taken).
    let mut s = ws_open(server.addr, "/ws?topic=a%20b&topic=x&topic=y&topic=z");
    let e = read_json(&mut s);
    assert_eq!(
        (e["op"].as_str(), e["error"].as_str()),
        (Some("error"), Some("invalid_topic"))
    );
    let e = read_json(&mut s);
    assert_eq!(e["error"], "too_many_subscriptions");
    assert_eq!(e["topic"], "z");
    let cases: [(&str, &str); 10] = [
        ("not json", "bad_json"),
        ("[1,2]", "bad_request"),
        (r#"{"topic":"a"}"#, "bad_request"),
        (r#"{"op":"join","topic":"a"}"#, "unknown_op"),
        (r#"{"op":"subscribe"}"#, "missing_topic"),
        (r#"{"op":"subscribe","topic":""}"#, "invalid_topic"),
        (
            r#"{"op":"subscribe","topic":"toolongname"}"#,
            "invalid_topic",
        ),
        (r#"{"op":"subscribe","topic":"a*"}"#, "invalid_topic"),
        (
            r#"{"op":"subscribe","topic":"w"}"#,
            "too_many_subscriptions",
        ),
        (
            r#"{"op":"publish","topic":"x","data":"hi"}"#,
            "publish_not_allowed",
        ),
    ];
    for (text, code) in cases {
        let reply = control(&mut s, text);
        assert_eq!(reply["op"], "error", "{text}");
        assert_eq!(reply["error"], code, "{text}: {reply}");
        assert!(!reply["message"].as_str().unwrap().is_empty());
    }
    s.write_all(&client_frame(
        true,
        0x2,
        br#"{"op":"subscribe","topic":"q"}"#,
    ))
    .unwrap();
    assert_eq!(read_json(&mut s)["error"], "binary_not_supported");
    // Still open and still subscribed: x and y deliver, and the bystander is untouched.
    assert_eq!(publish_text(admin, "y", "still here")["subscribers"], 1);
    assert_eq!(read_frame(&mut s).2, b"still here");
    assert_eq!(publish_text(admin, "t", "fine")["subscribers"], 1);
    assert_eq!(read_frame(&mut bystander).2, b"fine");
    assert_eq!(
        metric_sum(admin, "ringws_pubsub_bad_control_messages_total"),
        (2 + cases.len() + 1) as f64
    );
}

#[test]
fn bad_publish_requests_get_their_error() {
    let (_server, admin) = pubsub(&["--max-message-size", "1KiB", "--max-topic-length", "8"]);
    let error_of = |r: &HttpResponse| -> String {
        let v: Value = serde_json::from_str(&r.body).unwrap();
        v["error"].as_str().unwrap().to_string()
    };
    for topic in ["", "a%20b", "toolongname", "a*b", "%zz"] {
        let r = publish(admin, topic, None, None, b"x");
        assert_eq!(
            (r.status, error_of(&r).as_str()),
            (400, "invalid_topic"),
            "{topic:?}"
        );
    }
    let r = publish(
        admin,
        "a",
        Some("text/plain; charset=utf-8"),
        None,
        b"\xff\xfe",
    );
    assert_eq!((r.status, error_of(&r).as_str()), (400, "invalid_utf8"));
    let r = publish(admin, "a", None, None, &[0u8; 1025]);
    assert_eq!(r.status, 413, "{}", r.body);
    assert_eq!(publish(admin, "a", None, None, &[0u8; 1024]).status, 200);
    let (status, _) = admin_get(admin, "/publish/a");
    assert_eq!(status, 405);
    let (status, v) = get_json(admin, "/topics/a%20b");
    assert_eq!((status, v["error"].as_str()), (400, Some("invalid_topic")));
    assert_eq!(metric_sum(admin, "ringws_pubsub_publishes_total"), 1.0);
}

#[test]
fn publish_framing_is_strict_and_a_refused_body_is_not_published() {
    let (server, admin) = pubsub(&[]);
    let mut s = ws_open(server.addr, "/ws?topic=a");
    wait_for_subscribers(admin, "a", 1);
    let head = "POST /publish/a HTTP/1.1\r\nHost: x\r\nContent-Type: text/plain\r\n";
    for (framing, status) in [
        ("Content-Length: +5\r\n", 400),
        ("Content-Length: 5x\r\n", 400),
        ("Content-Length: 1\r\nContent-Length: 5\r\n", 400),
        ("Content-Length: 5, 1\r\n", 400),
        ("Transfer-Encoding: chunked\r\nContent-Length: 5\r\n", 400),
        ("Transfer-Encoding: chunked\r\n", 411),
    ] {
        let r = exchange(admin, format!("{head}{framing}\r\nhello").as_bytes());
        assert_eq!(r.status, status, "{framing:?}: {}", r.body);
    }
    // Nothing of the refused requests reached the subscriber: the next message is this one.
    let r = exchange(
        admin,
        format!("{head}Content-Length: 2\r\n\r\nok").as_bytes(),
    );
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(read_frame(&mut s).2, b"ok");
    assert_eq!(metric_sum(admin, "ringws_pubsub_publishes_total"), 1.0);
}

/// A valid control message of exactly `len` bytes: `{"op":op,"topic":topic,"data":"x"}` padded.
fn padded_control(op: &str, topic: &str, len: usize) -> String {
    let head = format!(r#"{{"op":"{op}","topic":"{topic}","data":"x","pad":""#);
    let text = format!("{head}{}\"}}", " ".repeat(len - head.len() - 2));
    assert_eq!(text.len(), len);
    text
}

#[test]
fn control_messages_over_their_size_limit_are_refused_unparsed() {
    let (server, admin) = pubsub(&[
        "--max-control-message-size",
        "1KiB",
        "--allow-client-publish",
        "true",
    ]);
    let mut s = ws_open(server.addr, "/ws");
    let mut bystander = ws_open(server.addr, "/ws?topic=b");
    for (op, topic) in [("subscribe", "a"), ("publish", "b")] {
        let reply = control(&mut s, &padded_control(op, topic, 1025));
        assert_eq!(reply["error"], "message_too_large", "{op}: {reply}");
        let message = reply["message"].as_str().unwrap();
        assert!(
            message.contains("1025 bytes") && message.contains("1024"),
            "{message}"
        );
    }
    // Neither was acted on, and the connection is still open and working.
    assert_eq!(get_json(admin, "/topics/a").1["subscribers"], 0);
    assert!(nothing_more(&mut bystander, Duration::from_millis(200)));
    assert_eq!(
        control(&mut s, &padded_control("subscribe", "a", 1024))["op"],
        "subscribed"
    );
    assert_eq!(get_json(admin, "/topics/a").1["subscribers"], 1);
    // With the default limit (4 KiB), a 2 MiB JSON message gets the same answer.
    let (server, admin) = pubsub(&[]);
    let mut s = ws_open(server.addr, "/ws");
    let big = padded_control("subscribe", "c", 2 << 20);
    let reply = control(&mut s, &big);
    assert_eq!(reply["error"], "message_too_large", "{reply}");
    assert!(
        reply["message"].as_str().unwrap().contains("at most 4096"),
        "{reply}"
    );
    assert_eq!(get_json(admin, "/topics/c").1["subscribers"], 0);
    assert_eq!(
        metric_sum(admin, "ringws_pubsub_oversized_control_messages_total"),
        1.0
    );
    assert_eq!(
        metric_sum(admin, "ringws_pubsub_bad_control_messages_total"),
        1.0
    );
}

#[test]
fn publish_needs_a_listed_token_when_configured() {
    let dir = std::env::temp_dir().join(format!("ringws-pubsub-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let file = dir.join("publish-tokens");
    std::fs::write(&file, "# backends\ns3cret-1\nsecond\n").unwrap();
    let (server, admin) = pubsub(&["--publish-tokens-file", file.to_str().unwrap()]);
    let mut sub = ws_open(server.addr, "/ws?topic=a");
    wait_for_subscribers(admin, "a", 1);
    let r = publish(admin, "a", None, None, b"x");
    assert_eq!(r.status, 401);
    assert_eq!(
        r.header("WWW-Authenticate").as_deref(),
        Some("Bearer realm=\"ringws\"")
    );
    let r = publish(admin, "a", None, Some("s3cret-2"), b"x");
    assert_eq!(r.status, 401);
    assert!(r
        .header("WWW-Authenticate")
        .unwrap()
        .contains("invalid_token"));
    let r = publish(admin, "a", Some("text/plain"), Some("second"), b"ok");
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(
        read_frame(&mut sub).2,
        b"ok",
        "only the accepted publish arrives"
    );
    assert!(nothing_more(&mut sub, Duration::from_millis(200)));
    // GET endpoints stay open.
    assert_eq!(get_json(admin, "/topics").0, 200);

    // An unreadable tokens file stops the start with a message that names it.
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_ringws"))
        .args([
            "serve",
            "--listen",
            "127.0.0.1:0",
            "--admin-listen",
            "127.0.0.1:0",
        ])
        .args([
            "--publish-tokens-file",
            dir.join("missing").to_str().unwrap(),
        ])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("cannot read publish_tokens_file"), "{err}");
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn client_publish_is_refused_by_default_and_works_when_allowed() {
    let (server, _admin) = pubsub(&[]);
    let mut s = ws_open(server.addr, "/ws?topic=a");
    let r = control(&mut s, r#"{"op":"publish","topic":"a","data":"x"}"#);
    assert_eq!(r["error"], "publish_not_allowed");
    drop(server);

    let (server, admin) = pubsub(&["--allow-client-publish", "true"]);
    let mut sub = ws_open(server.addr, "/ws?topic=room");
    let mut publisher = ws_open(server.addr, "/");
    wait_for_subscribers(admin, "room", 1);
    let r = control(
        &mut publisher,
        r#"{"op":"publish","topic":"room","data":"hello"}"#,
    );
    assert_eq!(
        r,
        json!({"op":"published","topic":"room","subscribers":1,"dropped":0})
    );
    send_text(
        &mut publisher,
        r#"{"op":"publish","topic":"room","data":{"n":[1,2]}}"#,
    );
    assert_eq!(read_json(&mut publisher)["subscribers"], 1);
    assert_eq!(read_frame(&mut sub), (true, 0x1, b"hello".to_vec()));
    assert_eq!(
        read_frame(&mut sub),
        (true, 0x1, br#"{"n":[1,2]}"#.to_vec())
    );
}

/// A TCP connection with a small receive buffer (set before connect, so the kernel does not
/// grow it), for a subscriber that stops reading.
fn connect_small_rcvbuf(addr: SocketAddr) -> TcpStream {
    use std::os::fd::FromRawFd;
    let SocketAddr::V4(v4) = addr else {
        panic!("IPv4 loopback expected")
    };
    // SAFETY: plain socket calls on a new fd we own; the structs outlive each call.
    unsafe {
        let fd = libc::socket(libc::AF_INET, libc::SOCK_STREAM | libc::SOCK_CLOEXEC, 0);
        assert!(fd >= 0);
        let size: libc::c_int = 4096;
        libc::setsockopt(
            fd,
            libc::SOL_SOCKET,
            libc::SO_RCVBUF,
            (&size as *const libc::c_int).cast(),
            std::mem::size_of::<libc::c_int>() as libc::socklen_t,
        );
        let sa = libc::sockaddr_in {
            sin_family: libc::AF_INET as libc::sa_family_t,
            sin_port: v4.port().to_be(),
            sin_addr: libc::in_addr {
                s_addr: u32::from_ne_bytes(v4.ip().octets()),
            },
            sin_zero: [0; 8],
        };
        let rc = libc::connect(
            fd,
            (&sa as *const libc::sockaddr_in).cast(),
            std::mem::size_of::<libc::sockaddr_in>() as libc::socklen_t,
        );
        assert_eq!(rc, 0, "{}", std::io::Error::last_os_error());
        TcpStream::from_raw_fd(fd)
    }
}

#[test]
fn a_stalled_subscriber_is_cut_off_with_1008_while_the_others_receive_everything() {
    // 10 MiB in all: past the stalled socket's kernel buffers. Messages well under the 64 KiB
    // cap, so readers that keep up are never near it.
    const MESSAGES: usize = 640;
    const SIZE: usize = 16 << 10;
    let (server, admin) = pubsub(&[
        "--max-outbound-buffer",
        "64KiB",
        "--close-timeout",
        "20s",
        "--write-stall-timeout",
        "60s",
    ]);
    let mut stalled = connect_small_rcvbuf(server.addr);
    stalled
        .write_all(upgrade_request("/ws?topic=feed").as_bytes())
        .unwrap();
    assert_eq!(read_response(&mut stalled).status, 101);
    let readers: Vec<_> = (0..4)
        .map(|_| {
            let mut s = ws_open(server.addr, "/ws?topic=feed");
            s.set_read_timeout(Some(Duration::from_secs(20))).unwrap();
            std::thread::spawn(move || {
                let started = Instant::now();
                for i in 0..MESSAGES {
                    let (_, op, payload) = read_frame(&mut s);
                    assert_eq!((op, payload.len()), (0x2, SIZE));
                    assert_eq!(
                        u16::from_be_bytes([payload[0], payload[1]]),
                        i as u16,
                        "in order"
                    );
                }
                started.elapsed()
            })
        })
        .collect();
    wait_for_subscribers(admin, "feed", 5);
    let started = Instant::now();
    for i in 0..MESSAGES {
        let mut body = vec![0x5a; SIZE];
        body[..2].copy_from_slice(&(i as u16).to_be_bytes());
        let r = publish(admin, "feed", None, None, &body);
        assert_eq!(r.status, 200, "{}", r.body);
    }
    let publish_time = started.elapsed();
    for r in readers {
        let took = r.join().expect("every reader gets every message in order");
        assert!(took < Duration::from_secs(20), "{took:?}");
    }
    // Only now does the stalled one read: what the kernel held, then the 1008.
    stalled
        .set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    let mut data = 0;
    let code = loop {
        let (_, op, payload) = read_frame(&mut stalled);
        if op == 0x8 {
            break u16::from_be_bytes([payload[0], payload[1]]);
        }
        data += 1;
    };
    assert_eq!(code, 1008);
    assert!(data < MESSAGES, "cut off before the end ({data} messages)");
    eprintln!("published {MESSAGES} x {SIZE} B in {publish_time:?}; stalled got {data}");
}
