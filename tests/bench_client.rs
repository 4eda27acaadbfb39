//! `ringws bench` against a tiny blocking echo server over real loopback sockets: it must count
//! what happened and catch what went wrong (corrupted echoes, a wrong accept, refusals).

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use ringws::bench::{
    run_connect, run_echo, run_idle, BenchError, CommonOptions, ConnectOptions, EchoOptions,
    IdleOptions,
};
use ringws::protocol::handshake::accept_key;
use ringws::protocol::mask::apply_mask;

/// How the test server misbehaves, if at all.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Behaviour {
    Echo,
    /// Flips the first byte of every third echo.
    CorruptEveryThird,
    /// Answers 101 with the accept value of another key.
    WrongAccept,
    /// Answers every upgrade with 503.
    Refuse503,
}

/// What the server saw.
#[derive(Default)]
struct Seen {
    close_frames: AtomicU64,
}

/// Starts a blocking, thread-per-connection server on 127.0.0.1; returns its URL.
fn start_server(behaviour: Behaviour) -> (String, Arc<Seen>) {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    let seen = Arc::new(Seen::default());
    let server_seen = seen.clone();
    std::thread::spawn(move || {
        for stream in listener.incoming() {
            let Ok(stream) = stream else { continue };
            let seen = server_seen.clone();
            std::thread::spawn(move || {
                let _ = serve_connection(stream, behaviour, &seen);
            });
        }
    });
    (format!("ws://{addr}/echo"), seen)
}

fn serve_connection(
    mut stream: TcpStream,
    behaviour: Behaviour,
    seen: &Seen,
) -> std::io::Result<()> {
    stream.set_nodelay(true)?;
    stream.set_read_timeout(Some(Duration::from_secs(10)))?;
    let mut head = Vec::new();
    let mut byte = [0u8; 1];
    while !head.ends_with(b"\r\n\r\n") {
        stream.read_exact(&mut byte)?;
        head.push(byte[0]);
    }
    let head = String::from_utf8(head).unwrap();
    assert!(head.starts_with("GET /echo HTTP/1.1\r\n"), "{head}");
    let key = head
        .lines()
        .find_map(|l| {
            l.strip_prefix("Sec-WebSocket-Key: ")
                .or_else(|| l.strip_prefix("sec-websocket-key: "))
        })
        .expect("the client sends a key")
        .trim()
        .to_owned();
    if behaviour == Behaviour::Refuse503 {
        stream.write_all(b"HTTP/1.1 503 Service Unavailable\r\nContent-Length: 5\r\nConnection: close\r\n\r\nbusy\n")?;
        return Ok(());
    }
    let accept = if behaviour == Behaviour::WrongAccept {
        accept_key(b"dGhlIHNhbXBsZSBub25jZQ==")
    } else {
        accept_key(key.as_bytes())
    };
    let mut response = b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Accept: ".to_vec();
    response.extend_from_slice(&accept);
    response.extend_from_slice(b"\r\n\r\n");
    stream.write_all(&response)?;

    let mut echoes = 0u64;
    loop {
        let mut hdr = [0u8; 2];
        stream.read_exact(&mut hdr)?;
        let opcode = hdr[0] & 0x0F;
        assert!(hdr[1] & 0x80 != 0, "client frames are masked");
        let len = match hdr[1] & 0x7F {
            126 => {
                let mut ext = [0u8; 2];
                stream.read_exact(&mut ext)?;
                u64::from(u16::from_be_bytes(ext))
            }
            127 => {
                let mut ext = [0u8; 8];
                stream.read_exact(&mut ext)?;
                u64::from_be_bytes(ext)
            }
            short => u64::from(short),
        };
        let mut mask = [0u8; 4];
        stream.read_exact(&mut mask)?;
        let mut payload = vec![0u8; len as usize];
        stream.read_exact(&mut payload)?;
        apply_mask(&mut payload, mask, 0);
        match opcode {
            0x8 => {
                seen.close_frames.fetch_add(1, Ordering::Relaxed);
                stream.write_all(&server_frame(0x8, &payload[..payload.len().min(2)]))?;
                return Ok(()); // the server closes TCP first
            }
            0x9 => stream.write_all(&server_frame(0xA, &payload))?,
            0x1 | 0x2 => {
                echoes += 1;
                if behaviour == Behaviour::CorruptEveryThird
                    && echoes % 3 == 0
                    && !payload.is_empty()
                {
                    payload[0] ^= 0xFF;
                }
                stream.write_all(&server_frame(opcode, &payload))?;
            }
            _ => {}
        }
    }
}

fn server_frame(opcode: u8, payload: &[u8]) -> Vec<u8> {
    let mut frame = vec![0x80 | opcode];
    match payload.len() {
        n if n < 126 => frame.push(n as u8),
        n if n <= 0xFFFF => {
            frame.push(126);
            frame.extend_from_slice(&(n as u16).to_be_bytes());
        }
        n => {
            frame.push(127);
            frame.extend_from_slice(&(n as u64).to_be_bytes());
        }
    }
    frame.extend_from_slice(payload);
    frame
}

fn common(url: &str) -> CommonOptions {
    let mut common = CommonOptions::new(url);
    common.timeout = Duration::from_secs(3);
    common
}

fn echo_options(url: &str, conns: usize, payload_bytes: usize) -> EchoOptions {
    EchoOptions {
        common: common(url),
        conns,
        payload_bytes,
        text: false,
        warmup: Duration::from_millis(100),
        duration: Duration::from_millis(400),
        rate: None,
        message: None,
    }
}

#[test]
fn echo_counts_verified_messages_latency_and_server_cpu() {
    let (url, seen) = start_server(Behaviour::Echo);
    let mut opts = echo_options(&url, 4, 20);
    // The test server runs inside this process, so this process is "the server".
    opts.common.server_pid = Some(std::process::id());
    let report = run_echo(&opts).unwrap();
    assert_eq!(report.errors_total, 0, "{:?}", report.errors);
    assert_eq!(report.opened, 4);
    assert!(
        report.messages > 100,
        "only {} echoes in 0.4 s",
        report.messages
    );
    assert_eq!(report.latency_us.samples, report.messages);
    assert!(report.latency_us.p50 > 0.0 && report.latency_us.p50 <= report.latency_us.p999);
    assert!(report.latency_us.p999 <= report.latency_us.max);
    let expected_rate = report.messages as f64 / report.duration_s;
    assert!((report.msgs_per_s - expected_rate).abs() < 1e-6);
    assert!(
        (0.39..1.0).contains(&report.duration_s),
        "window {}",
        report.duration_s
    );
    assert!(report.server_cpu_us_per_op.is_some() && report.server_rss_bytes_delta.is_some());
    assert!(report.generator_cpu > 0.0 && report.send_lag_us.is_none());
    // Every connection was closed with a close frame: the 4 of the run and the one that checked
    // first that the server echoes.
    std::thread::sleep(Duration::from_millis(50));
    assert_eq!(seen.close_frames.load(Ordering::Relaxed), 5);
}

#[test]
fn echo_handles_text_and_long_frames() {
    let (url, _) = start_server(Behaviour::Echo);
    let mut opts = echo_options(&url, 2, 70_000); // 64-bit length encoding
    opts.text = true;
    let report = run_echo(&opts).unwrap();
    assert_eq!(report.errors_total, 0, "{:?}", report.errors);
    assert!(report.messages > 10, "{}", report.messages);
    let mut opts = echo_options(&url, 2, 300); // 16-bit length encoding
    opts.common.threads = 2;
    let report = run_echo(&opts).unwrap();
    assert_eq!(
        (report.errors_total, report.threads),
        (0, 2),
        "{:?}",
        report.errors
    );
    assert!(report.messages > 10);
}

#[test]
fn echo_detects_a_corrupted_echo() {
    let (url, _) = start_server(Behaviour::CorruptEveryThird);
    let report = run_echo(&echo_options(&url, 2, 64)).unwrap();
    let mismatches = report.errors.get("echo_mismatch").copied().unwrap_or(0);
    assert!(mismatches > 0, "{:?}", report.errors);
    assert!(report.messages > 0);
    // Only verified echoes are counted as messages: about two of every three.
    assert!(
        report.messages > mismatches && report.messages < 4 * mismatches,
        "{} vs {mismatches}",
        report.messages
    );
}

#[test]
fn echo_paces_an_open_loop_rate() {
    let (url, _) = start_server(Behaviour::Echo);
    let mut opts = echo_options(&url, 4, 20);
    opts.rate = Some(400.0);
    opts.duration = Duration::from_millis(1000);
    let report = run_echo(&opts).unwrap();
    assert_eq!(report.errors_total, 0, "{:?}", report.errors);
    assert!(
        (300.0..=500.0).contains(&report.msgs_per_s),
        "{} msgs/s at --rate 400",
        report.msgs_per_s
    );
    assert_eq!(report.rate_target, Some(400.0));
    let lag = report
        .send_lag_us
        .expect("paced runs report how late sends left");
    assert!(lag.p50 <= lag.p99 && lag.p99 <= lag.max);
}

#[test]
fn a_wrong_accept_is_counted_as_bad_accept() {
    let (url, _) = start_server(Behaviour::WrongAccept);
    let report = run_echo(&echo_options(&url, 3, 20)).unwrap();
    assert_eq!(
        report.errors.get("bad_accept"),
        Some(&3),
        "{:?}",
        report.errors
    );
    assert_eq!((report.opened, report.messages), (0, 0));
}

#[test]
fn a_refused_handshake_is_counted_by_status() {
    let (url, _) = start_server(Behaviour::Refuse503);
    let opts = IdleOptions {
        common: common(&url),
        conns: 5,
        hold: Duration::from_millis(100),
        open_timeout: Duration::from_secs(5),
    };
    let report = run_idle(&opts).unwrap();
    assert_eq!(
        report.errors.get("http_503"),
        Some(&5),
        "{:?}",
        report.errors
    );
    assert_eq!(report.opened, 0);
}

#[test]
fn idle_opens_holds_and_closes_every_connection() {
    let (url, seen) = start_server(Behaviour::Echo);
    let mut opts = IdleOptions {
        common: common(&url),
        conns: 40,
        hold: Duration::from_millis(300),
        open_timeout: Duration::from_secs(5),
    };
    opts.common.concurrency = 8;
    opts.common.threads = 2;
    opts.common.sources = vec!["127.0.0.1".parse().unwrap()];
    let report = run_idle(&opts).unwrap();
    assert_eq!(report.errors_total, 0, "{:?}", report.errors);
    assert_eq!((report.opened, report.open_at_end), (40, 40));
    assert_eq!(
        report.latency_us.samples, 40,
        "one handshake latency per connection"
    );
    assert!(report.time_to_open_s.unwrap() > 0.0 && report.handshakes_per_s > 0.0);
    std::thread::sleep(Duration::from_millis(50));
    assert_eq!(seen.close_frames.load(Ordering::Relaxed), 40);
}

#[test]
fn connect_churns_handshakes_and_closes() {
    let (url, seen) = start_server(Behaviour::Echo);
    let mut opts = ConnectOptions {
        common: common(&url),
        warmup: Duration::ZERO,
        duration: Duration::from_millis(400),
    };
    opts.common.concurrency = 4;
    let report = run_connect(&opts).unwrap();
    assert_eq!(report.errors_total, 0, "{:?}", report.errors);
    assert!(report.handshakes > 20, "{} handshakes", report.handshakes);
    assert_eq!(report.latency_us.samples, report.handshakes);
    assert!(seen.close_frames.load(Ordering::Relaxed) >= report.handshakes);
}

#[test]
fn connect_errors_are_counted_by_errno() {
    let port = TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port(); // now closed
    let opts = IdleOptions {
        common: common(&format!("ws://127.0.0.1:{port}/")),
        conns: 3,
        hold: Duration::ZERO,
        open_timeout: Duration::from_secs(5),
    };
    let report = run_idle(&opts).unwrap();
    assert_eq!(
        report.errors.get("connect:ECONNREFUSED"),
        Some(&3),
        "{:?}",
        report.errors
    );
}

#[test]
fn bad_urls_are_refused_before_any_load() {
    let err = run_echo(&echo_options("https://127.0.0.1:1/", 1, 1)).unwrap_err();
    assert!(matches!(err, BenchError::Url(_)));
    assert!(err.to_string().contains("wss://"), "{err}");
    let mut missing_ca = echo_options("wss://127.0.0.1:1/", 1, 1);
    missing_ca.common.tls.ca_file = Some("/nonexistent/ca.pem".into());
    let err = run_echo(&missing_ca).unwrap_err();
    assert!(err.to_string().contains("--ca-file /nonexistent"), "{err}");
    assert!(matches!(
        run_echo(&echo_options("http://x/", 1, 1)),
        Err(BenchError::Url(_))
    ));
}

#[test]
fn the_binary_prints_one_json_object() {
    let (url, _) = start_server(Behaviour::Echo);
    let output = std::process::Command::new(env!("CARGO_BIN_EXE_ringws"))
        .args([
            "bench",
            "echo",
            "--url",
            &url,
            "--conns",
            "2",
            "--warmup",
            "0.1",
            "--duration",
            "0.3",
            "--json",
        ])
        .output()
        .unwrap();
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let json: serde_json::Value = serde_json::from_slice(&output.stdout).unwrap();
    assert_eq!(json["mode"], "echo");
    assert_eq!(json["conns"], 2);
    assert!(json["messages"].as_u64().unwrap() > 0);
    assert!(json["latency_us"]["p99"].as_f64().unwrap() > 0.0);
    assert!(json["errors"].as_object().unwrap().is_empty());
}
