//! The Autobahn client cases against ringws's client connection: a small blocking driver of
//! `protocol::connection::Connection` (client role) over a plain `TcpStream`.
//!
//! Start a fuzzing server (`kosoku -m fuzzingserver 127.0.0.1:9002`), then
//! `cargo run --release --example autobahn_client -- 127.0.0.1:9002`. It asks for the case
//! count, runs every case (echoing each message back, as the protocol asks), then has the
//! server write its report. `.ci/conformance` runs it.
//!
//! It offers permessage-deflate (`deflate::CLIENT_OFFER`: no context takeover both ways) and
//! judges the answer as RFC 7692 says, so sections 12 and 13 run against the client role too;
//! `--no-deflate` offers nothing. `--jobs N` runs N cases at a time (the fuzzing server serves
//! each connection on its own), which keeps the compression sections to seconds.

use std::io::{self, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::{Duration, Instant};

use ringws::protocol::client_handshake::{self, ClientRequest};
use ringws::protocol::connection::{
    Connection, Note, Output, Received, Settings, Tick, TransportError,
};
use ringws::protocol::deflate::{Compression, CLIENT_OFFER};
use ringws::protocol::handshake::{accept_key, HandshakeLimits};
use ringws::protocol::{Limits, MessageKind};

const AGENT: &str = "ringws";
/// The driver's tick.
const TICK: Duration = Duration::from_millis(100);

fn settings() -> Settings {
    Settings {
        // Section 9 sends messages of up to 16 MiB.
        limits: Limits {
            max_frame_size: 64 << 20,
            max_message_size: 64 << 20,
        },
        handshake: HandshakeLimits::default(),
        handshake_timeout_ticks: 100,
        close_timeout_ticks: 50,
        // A client that pings the fuzzing server would disturb the cases' expectations.
        ping_interval_ticks: u32::MAX / 8,
        pong_timeout_ticks: 100,
        idle_timeout_ticks: None,
        message_timeout_ticks: 600,
        min_receive_bytes_per_tick: 1,
        write_stall_timeout_ticks: 600,
        min_send_bytes_per_tick: 1,
        max_outbound_bytes: 128 << 20,
        message_rate_milli_per_tick: 0,
        message_burst: 0,
        // Every message the server lets us compress goes out compressed, so the cases see
        // the compressor at work.
        compression: Compression {
            enabled: true,
            min_size: 1,
            level: 1,
        },
    }
}

/// Writes go straight to the blocking socket; notes are ignored; masks come from a xorshift.
struct Stream {
    stream: TcpStream,
    rng: u64,
}

impl Output for Stream {
    fn transmit(&mut self, head: &[u8], body: &[u8]) -> Result<usize, TransportError> {
        let ok = self
            .stream
            .write_all(head)
            .and_then(|_| self.stream.write_all(body));
        ok.map(|_| head.len() + body.len())
            .map_err(|_| TransportError)
    }

    fn note(&mut self, _note: Note) {}

    fn mask_key(&mut self) -> [u8; 4] {
        self.rng ^= self.rng << 13;
        self.rng ^= self.rng >> 7;
        self.rng ^= self.rng << 17;
        (self.rng as u32).to_ne_bytes()
    }
}

/// Runs one connection to `path`: echoes every message; returns the text messages received.
fn session(addr: SocketAddr, path: &str, seed: u64, deflate: bool) -> io::Result<Vec<String>> {
    let started = Instant::now();
    let now = || (started.elapsed().as_nanos() / TICK.as_nanos()) as Tick;
    let stream = TcpStream::connect(addr)?;
    stream.set_nodelay(true)?;
    stream.set_read_timeout(Some(TICK))?;
    let mut out = Stream {
        stream,
        rng: seed | 1,
    };
    let random: [u8; 16] = std::array::from_fn(|i| out.mask_key()[i % 4] ^ i as u8);
    let key = client_handshake::client_key(random);
    let expected = accept_key(&key);
    let mut request = Vec::new();
    client_handshake::write_request(
        &mut request,
        &ClientRequest {
            host: &addr.to_string(),
            target: path,
            key: &key,
            extensions: deflate.then_some(CLIENT_OFFER),
            ..ClientRequest::default()
        },
    );
    out.stream.write_all(&request)?;

    let cfg = settings();
    let mut conn = Connection::client(now());
    let mut buf = vec![0u8; 1 << 20];
    let mut texts = Vec::new();
    while !conn.is_released() {
        let (mut reader, carried) = conn.begin_receive(&mut buf);
        let n = match out.stream.read(&mut buf[carried..]) {
            Ok(0) => {
                conn.end_receive(now(), reader, &[], &mut out);
                conn.on_eof(&mut out);
                break;
            }
            Ok(n) => n,
            Err(e)
                if matches!(
                    e.kind(),
                    io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut
                ) =>
            {
                conn.end_receive(now(), reader, &buf[..carried], &mut out);
                conn.handle_timeout(now(), &cfg, 0, &mut out);
                apply(&mut conn, &out.stream)?;
                continue;
            }
            Err(_) => {
                conn.end_receive(now(), reader, &[], &mut out);
                conn.on_eof(&mut out);
                break;
            }
        };
        let len = carried + n;
        let mut pos = 0;
        loop {
            let input = conn.receive(now(), &cfg, &mut reader, &mut buf[pos..len], &mut out);
            pos += input.consumed;
            match input.event {
                None => break,
                Some(Received::Response(bytes)) => {
                    let checked = match client_handshake::parse_response(bytes) {
                        Ok(None) => break, // the head is not complete yet
                        Ok(Some(head)) => {
                            let offered: &[&str] = if deflate {
                                &["permessage-deflate"]
                            } else {
                                &[]
                            };
                            client_handshake::check_upgrade(&head, &expected, &[], offered)
                                .and_then(|upgraded| {
                                    let answer = match deflate {
                                        true => {
                                            client_handshake::deflate_answer(&head, CLIENT_OFFER)?
                                        }
                                        false => None,
                                    };
                                    Ok((upgraded.head_len, answer))
                                })
                                .map_err(|e| e.to_string())
                        }
                        Err(e) => Err(e.to_string()),
                    };
                    match checked {
                        Ok((head_len, answer)) => {
                            pos += head_len;
                            conn.upgraded(now(), answer.as_ref(), &mut out);
                        }
                        Err(e) => {
                            conn.fail_handshake(&mut out);
                            return Err(io::Error::other(format!("upgrade to {path}: {e}")));
                        }
                    }
                }
                Some(Received::Message(kind, payload)) => {
                    if kind == MessageKind::Text {
                        texts.push(String::from_utf8_lossy(payload).into_owned());
                    }
                    conn.send(now(), &cfg, kind, payload, &mut out);
                }
                Some(Received::Request(..) | Received::BadRequest(..)) => {
                    unreachable!("a client connection reads responses")
                }
            }
        }
        conn.end_receive(now(), reader, &buf[pos..len], &mut out);
        apply(&mut conn, &out.stream)?;
    }
    Ok(texts)
}

/// Carries out the connection's effects on a blocking socket (writes are never queued here).
fn apply(conn: &mut Connection, stream: &TcpStream) -> io::Result<()> {
    let effects = conn.poll_effects();
    if effects.shutdown_write() {
        let _ = stream.shutdown(std::net::Shutdown::Write);
    }
    Ok(())
}

fn main() {
    let mut args = std::env::args().skip(1);
    let (mut addr, mut deflate, mut jobs) = (None, true, 1usize);
    while let Some(arg) = args.next() {
        match arg.as_str() {
            "--no-deflate" => deflate = false,
            "--jobs" => jobs = args.next().and_then(|n| n.parse().ok()).expect("--jobs N"),
            _ => addr = Some(arg),
        }
    }
    let addr: SocketAddr = addr
        .unwrap_or_else(|| "127.0.0.1:9002".into())
        .parse()
        .expect("usage: autobahn_client [--no-deflate] [--jobs N] HOST:PORT");
    let count: u32 = session(addr, "/getCaseCount", 1, false)
        .expect("case count")
        .first()
        .and_then(|t| t.trim().parse().ok())
        .expect("the fuzzing server answers /getCaseCount with a number");
    // Cases are handed out in order to `jobs` threads.
    let next = std::sync::atomic::AtomicU32::new(1);
    std::thread::scope(|scope| {
        for _ in 0..jobs.max(1) {
            scope.spawn(|| loop {
                let case = next.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                if case > count {
                    return;
                }
                let path = format!("/runCase?case={case}&agent={AGENT}");
                if let Err(e) = session(addr, &path, case as u64, deflate) {
                    eprintln!("case {case}: {e}");
                }
            });
        }
    });
    session(addr, &format!("/updateReports?agent={AGENT}"), 0, false).expect("update reports");
    println!("ran {count} client cases as agent {AGENT}");
}
