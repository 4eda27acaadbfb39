//! `ringws doctor` against the real server and against small test servers that each fail in one
//! way: its exit code, and the cause it names.

mod common;

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::time::{Duration, Instant};

use common::doctor::{assert_run, doctor};
use common::ServerProcess;
use ringws::protocol::handshake::accept_key;
use ringws::protocol::RefusalReason;

/// A `ringws serve` on an ephemeral port with the default app (pubsub), one core and no admin
/// listener; killed when dropped.
fn start_ringws() -> ServerProcess {
    ServerProcess::start(&["--app", "pubsub", "--admin-listen", "off", "--cores", "1"])
}

/// A test server on 127.0.0.1: each connection is handed to `handle` on its own thread.
fn test_server(handle: fn(TcpStream)) -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    std::thread::spawn(move || {
        for stream in listener.incoming().map_while(Result::ok) {
            std::thread::spawn(move || handle(stream));
        }
    });
    addr
}

/// Reads the request head; returns it as text.
fn read_request(stream: &mut TcpStream) -> String {
    stream
        .set_read_timeout(Some(Duration::from_secs(5)))
        .unwrap();
    let mut head = Vec::new();
    let mut byte = [0u8; 1];
    while !head.ends_with(b"\r\n\r\n") {
        match stream.read(&mut byte) {
            Ok(1) => head.push(byte[0]),
            _ => break,
        }
    }
    String::from_utf8_lossy(&head).into_owned()
}

fn request_key(head: &str) -> String {
    head.lines()
        .find_map(|line| {
            let (name, value) = line.split_once(':')?;
            name.eq_ignore_ascii_case("sec-websocket-key")
                .then(|| value.trim().to_owned())
        })
        .expect("the request has a Sec-WebSocket-Key")
}

fn switching_protocols(accept: &str, extra_headers: &str) -> String {
    format!(
        "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
         Sec-WebSocket-Accept: {accept}\r\n{extra_headers}\r\n"
    )
}

/// Answers the upgrade correctly; returns the stream for what follows.
fn accept_upgrade(stream: &mut TcpStream) {
    accept_upgrade_adding(stream, "");
}

/// Answers the upgrade with the right accept and `extra_headers` (lines ending in CRLF).
fn accept_upgrade_adding(stream: &mut TcpStream, extra_headers: &str) {
    let head = read_request(stream);
    let accept = accept_key(request_key(&head).as_bytes());
    let answer = switching_protocols(std::str::from_utf8(&accept).unwrap(), extra_headers);
    let _ = stream.write_all(answer.as_bytes());
}

fn url(addr: SocketAddr) -> String {
    format!("ws://{addr}/")
}

#[test]
fn healthy_ringws_passes_with_a_pong() {
    let server = start_ringws();
    let run = doctor(&[&url(server.addr), "-v"]);
    assert_run(
        &run,
        0,
        &[
            "✔ connect",
            "✔ upgrade",
            "✔ ping/pong",
            "pong in",
            "✔ close",
            "OK:",
        ],
    );
    assert!(run.stderr.contains("> GET / HTTP/1.1"), "{}", run.stderr);
    assert!(
        run.stderr.contains("< HTTP/1.1 101 Switching Protocols"),
        "{}",
        run.stderr
    );

    let run = doctor(&[
        &url(server.addr),
        "--json",
        "--protocol",
        "chat",
        "--origin",
        "http://a.test",
    ]);
    assert_eq!(run.code, 0, "{}", run.stdout);
    let json: serde_json::Value = serde_json::from_str(&run.stdout).unwrap();
    assert_eq!(json["ok"], true);
    assert_eq!(json["status"], 101);
    assert!(json["pong_rtt_ms"].as_f64().unwrap() > 0.0);
    assert!(json["cause"].is_null());
    assert_eq!(json["steps"].as_array().unwrap().len(), 5);
}

#[test]
fn ringws_refusal_reason_is_quoted() {
    let server = start_ringws();
    let run = doctor(&[&url(server.addr), "--header", "Sec-WebSocket-Version: 8"]);
    assert_run(
        &run,
        4,
        &[
            "✘ upgrade",
            "HTTP 426",
            RefusalReason::UnsupportedVersion.message(),
            "changed or removed with --header",
        ],
    );
}

#[test]
fn a_404_from_pubsub_names_the_paths_it_serves() {
    let server = start_ringws();
    let target = format!("ws://{}/chat?topic=news", server.addr);
    let run = doctor(&[&target]);
    let example = format!("ws://{}/ws?topic=news", server.addr);
    assert_run(
        &run,
        4,
        &[
            "HTTP 404",
            "The app serves no WebSocket at /chat; it serves /ws and /",
            &example,
        ],
    );
    assert!(!run.stdout.contains("echo app"), "{}", run.stdout);
}

#[test]
fn wss_url_on_a_plain_port() {
    let server = start_ringws();
    let run = doctor(&[&format!("wss://{}/", server.addr)]);
    assert_run(
        &run,
        4,
        &["✘ tls", "in plain HTTP", "\"HTTP/1.1 400", "ws://"],
    );
}

#[test]
fn ordinary_web_server() {
    let addr = test_server(|mut stream| {
        read_request(&mut stream);
        let body = "<!DOCTYPE html><html><head><title>Welcome</title></head></html>";
        let answer = format!(
            "HTTP/1.1 200 OK\r\nContent-Type: text/html\r\nContent-Length: {}\r\n\r\n{body}",
            body.len()
        );
        let _ = stream.write_all(answer.as_bytes());
    });
    let run = doctor(&[&url(addr)]);
    assert_run(
        &run,
        4,
        &[
            "HTTP 200 OK",
            "ordinary web server",
            "proxy",
            "deploy/nginx/ringws.conf",
        ],
    );
    let run = doctor(&[&url(addr), "--json"]);
    let json: serde_json::Value = serde_json::from_str(&run.stdout).unwrap();
    assert_eq!(
        (json["ok"].clone(), json["status"].clone()),
        (false.into(), 200.into())
    );
    assert!(json["cause"]
        .as_str()
        .unwrap()
        .contains("ordinary web server"));
    assert!(json["fix"].as_str().unwrap().contains("proxy_set_header"));
    assert_eq!(json["exit_code"], 4);
}

/// A proxy that strips Upgrade, in front of a ringws-like answer.
#[test]
fn stripping_proxy_with_ringws_reason() {
    let addr = test_server(|mut stream| {
        read_request(&mut stream);
        let mut answer = Vec::new();
        ringws::protocol::handshake::write_refusal(
            &mut answer,
            &RefusalReason::MissingUpgrade.into(),
        );
        let _ = stream.write_all(&answer);
    });
    let run = doctor(&[&url(addr)]);
    assert_run(
        &run,
        4,
        &[
            "HTTP 400 Bad Request",
            RefusalReason::MissingUpgrade.message(),
            "a proxy in front removed them",
            "proxy_set_header Upgrade",
        ],
    );
}

#[test]
fn tls_only_port() {
    let addr = test_server(|mut stream| {
        let mut some = [0u8; 64];
        let _ = stream.set_read_timeout(Some(Duration::from_secs(5)));
        let _ = stream.read(&mut some);
        // A TLS alert record: fatal (2), protocol_version (70).
        let _ = stream.write_all(&[0x15, 0x03, 0x03, 0x00, 0x02, 0x02, 0x46]);
    });
    let run = doctor(&[&url(addr)]);
    assert_run(&run, 4, &["TLS alert", "expects TLS", "wss://"]);
    let run = doctor(&[&format!("wss://{addr}/")]);
    assert_run(&run, 4, &["✘ tls", "no TLS version", "TLS 1.3 and 1.2"]);
}

#[test]
fn closed_port() {
    let addr = {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        listener.local_addr().unwrap()
    };
    let run = doctor(&[&url(addr)]);
    assert_run(
        &run,
        3,
        &["✘ connect", "refused", "nothing listens", "ss -ltn"],
    );
}

#[test]
fn wrong_accept() {
    let addr = test_server(|mut stream| {
        read_request(&mut stream);
        let answer = switching_protocols("AAAAAAAAAAAAAAAAAAAAAAAAAAA=", "");
        let _ = stream.write_all(answer.as_bytes());
        std::thread::sleep(Duration::from_secs(2));
    });
    let run = doctor(&[&url(addr)]);
    assert_run(&run, 4, &["Sec-WebSocket-Accept", "mangling the handshake"]);
}

#[test]
fn protocol_not_offered() {
    let addr = test_server(|mut stream| {
        accept_upgrade_adding(&mut stream, "Sec-WebSocket-Protocol: mqtt\r\n");
        std::thread::sleep(Duration::from_secs(2));
    });
    let run = doctor(&[&url(addr), "--protocol", "chat"]);
    assert_run(&run, 4, &["\"mqtt\"", "did not offer", "offered: chat"]);
}

#[test]
fn closed_right_after_101() {
    let addr = test_server(|mut stream| accept_upgrade(&mut stream));
    let run = doctor(&[&url(addr)]);
    assert_run(
        &run,
        5,
        &["✔ upgrade", "✘ ping/pong", "without a close frame"],
    );

    let addr = test_server(|mut stream| {
        accept_upgrade(&mut stream);
        // Close 1008 "no ticket", unmasked.
        let _ = stream.write_all(b"\x88\x0b\x03\xf0no ticket");
        std::thread::sleep(Duration::from_secs(2));
    });
    let run = doctor(&[&url(addr)]);
    assert_run(
        &run,
        5,
        &["close code 1008", "no ticket", "policy violation"],
    );
}

#[test]
fn with_compression_on_doctor_shows_the_negotiated_deflate_and_a_compressed_echo() {
    let server = ServerProcess::start(&[
        "--app",
        "echo",
        "--admin-listen",
        "off",
        "--cores",
        "1",
        "--compression",
        "on",
    ]);
    let run = doctor(&[&url(server.addr)]);
    assert_run(
        &run,
        0,
        &[
            "extensions: permessage-deflate; server_no_context_takeover; \
             client_no_context_takeover",
            "✔ permessage-deflate",
            "B of JSON sent compressed to",
            "echoed compressed (",
            "the same bytes",
            "✔ ping/pong",
            "✔ close",
        ],
    );
    let run = doctor(&[&url(server.addr), "--json"]);
    let report: serde_json::Value = serde_json::from_str(&run.stdout).unwrap();
    assert_eq!(
        report["deflate"],
        "permessage-deflate; server_no_context_takeover; client_no_context_takeover"
    );
    assert_eq!(report["ok"], true, "{}", run.stdout);
    // With --no-extensions nothing is offered, and the step is not run.
    let run = doctor(&[&url(server.addr), "--no-extensions"]);
    assert_run(&run, 0, &["extensions: none"]);
    assert!(!run.stdout.contains("permessage-deflate"), "{}", run.stdout);
}

#[test]
fn with_compression_off_there_is_no_deflate_step() {
    let server = ServerProcess::start(&["--app", "echo", "--admin-listen", "off", "--cores", "1"]);
    let run = doctor(&[&url(server.addr)]);
    assert_run(&run, 0, &["extensions: none", "✔ ping/pong"]);
    assert!(
        !run.stdout.contains("✔ permessage-deflate"),
        "{}",
        run.stdout
    );
}

#[test]
fn a_compressed_reply_that_does_not_inflate_fails_the_deflate_step() {
    let addr = test_server(|mut stream| {
        // What a browser-like offer allows: no parameters.
        accept_upgrade_adding(
            &mut stream,
            "Sec-WebSocket-Extensions: permessage-deflate\r\n",
        );
        let mut frame = [0u8; 512];
        let _ = stream.read(&mut frame);
        // RSV1 set, and a payload that is not DEFLATE data.
        let _ = stream.write_all(&[0xC1, 0x01, 0xFF]);
        std::thread::sleep(Duration::from_secs(2));
    });
    let run = doctor(&[&url(addr)]);
    assert_run(
        &run,
        5,
        &[
            "extensions: permessage-deflate",
            "✘ permessage-deflate",
            "not valid DEFLATE data",
        ],
    );
}

#[test]
fn a_permessage_deflate_answer_breaking_the_rfc_fails_the_upgrade() {
    let addr = test_server(|mut stream| {
        accept_upgrade_adding(
            &mut stream,
            "Sec-WebSocket-Extensions: permessage-deflate; client_max_window_bits=7\r\n",
        );
        std::thread::sleep(Duration::from_secs(2));
    });
    let run = doctor(&[&url(addr)]);
    assert_run(
        &run,
        4,
        &[
            "✘ upgrade",
            "client_max_window_bits=7",
            "breaks RFC 7692",
            "invalid value",
        ],
    );
}

#[test]
fn no_pong() {
    let addr = test_server(|mut stream| {
        accept_upgrade(&mut stream);
        let mut sink = [0u8; 1024];
        let _ = stream.set_read_timeout(Some(Duration::from_secs(5)));
        while matches!(stream.read(&mut sink), Ok(n) if n > 0) {}
    });
    let started = Instant::now();
    let run = doctor(&[&url(addr), "--timeout", "1s"]);
    assert_run(
        &run,
        5,
        &["✘ ping/pong", "no pong within 1 s", "buffering frames"],
    );
    assert!(started.elapsed() < Duration::from_secs(10));
}

#[test]
fn bad_url_is_a_usage_error() {
    let run = doctor(&["ftp://example.com/"]);
    assert_eq!(run.code, 2, "{}", run.stderr);
    assert!(run.stderr.contains("not a WebSocket URL"), "{}", run.stderr);
    let run = doctor(&["ws://127.0.0.1:9001/", "--token-in-query"]);
    assert_eq!(run.code, 2, "{}", run.stderr);
}
