//! The gradual drain against the real binary: `/readyz` turns 503 at the signal while the
//! listener still accepts for `drain_delay`; the 1001s (with a reason saying to reconnect) are
//! spread over `drain_spread`; a drain that cannot finish before `drain_timeout` is refused at
//! start. Timing assertions are loose on purpose (a shared 2-core machine): the spread is
//! checked as a distribution, never to the tick. Every wait is bounded.

mod common;
use common::pki::Pki;
use common::wss::{client_config, wss_connect};
use common::*;
use std::io::Write;
use std::net::TcpStream;
use std::sync::mpsc;
use std::time::{Duration, Instant};

/// Reads the close frame a drained client receives, answers it, and returns (when it arrived,
/// its code, its reason).
fn await_drain_close(mut s: TcpStream, read_limit: Duration) -> (Instant, Option<u16>, String) {
    s.set_read_timeout(Some(read_limit)).unwrap();
    let (fin, op, payload) = read_frame(&mut s);
    let at = Instant::now();
    assert!(
        fin && op == 0x8,
        "expected a close frame, got opcode {op:#x}"
    );
    let code = (payload.len() >= 2).then(|| u16::from_be_bytes([payload[0], payload[1]]));
    let reason = String::from_utf8_lossy(payload.get(2..).unwrap_or_default()).into_owned();
    let _ = s.write_all(&client_frame(true, 0x8, &payload[..2.min(payload.len())]));
    (at, code, reason)
}

/// 80 connections over 2 cores, `drain_spread` 4 s: every client gets 1001 with a reason that
/// says to reconnect, and the closes arrive spread out: the first and last are at least half
/// the spread apart, and no 400 ms window (a tenth of the spread) holds more than 40 % of
/// them (an even spread puts 10 % in each). The drain's metrics move while it runs.
#[test]
fn closes_are_spread_over_drain_spread_each_with_1001_and_a_reason_to_reconnect() {
    const CLIENTS: usize = 80;
    let spread = Duration::from_secs(4);
    let mut server = ServerProcess::start(&[
        "--cores",
        "2",
        "--drain-spread",
        "4s",
        "--drain-timeout",
        "15s",
    ]);
    let admin = server.admin.unwrap();
    let (tx, rx) = mpsc::channel();
    for _ in 0..CLIENTS {
        let s = ws_connect(server.addr);
        let tx = tx.clone();
        std::thread::spawn(move || {
            let _ = tx.send(await_drain_close(s, Duration::from_secs(12)));
        });
    }
    drop(tx);
    let signalled = Instant::now();
    server.signal(libc::SIGTERM);

    // Part-way through, the drain shows in the metrics (both cores draining, some closes sent,
    // some still pending).
    let first = rx.recv_timeout(Duration::from_secs(12)).expect("a close");
    let mut closes = vec![first];
    let metrics = |name: &str| metric_sum(admin, name);
    assert_eq!(metrics("ringws_draining"), 2.0);
    let (sent, pending) = (
        metrics("ringws_drain_closes_total"),
        metrics("ringws_drain_pending_connections"),
    );
    assert!(sent >= 1.0, "closes sent: {sent}");
    assert!(
        pending >= 1.0 && sent + pending <= CLIENTS as f64,
        "{sent} sent, {pending} pending"
    );

    while closes.len() < CLIENTS {
        match rx.recv_timeout(Duration::from_secs(12)) {
            Ok(close) => closes.push(close),
            Err(e) => panic!("{} of {CLIENTS} closes arrived: {e}", closes.len()),
        }
    }
    for (_, code, reason) in &closes {
        assert_eq!(*code, Some(1001));
        assert!(reason.contains("reconnect"), "{reason:?}");
    }
    let mut times: Vec<Duration> = closes.iter().map(|(at, ..)| *at - signalled).collect();
    times.sort();
    let (first, last) = (times[0], times[CLIENTS - 1]);
    assert!(
        last - first >= spread / 2,
        "closes from {first:?} to {last:?} after the signal: not spread over {spread:?}"
    );
    let window = spread / 10;
    let busiest = times
        .iter()
        .map(|&start| {
            times
                .iter()
                .filter(|&&t| t >= start && t < start + window)
                .count()
        })
        .max()
        .unwrap();
    assert!(
        busiest <= CLIENTS * 4 / 10,
        "{busiest} of {CLIENTS} closes within {window:?}: {times:?}"
    );
    assert_eq!(server.wait_exit(Duration::from_secs(15)), Some(0));
    let log = server.drain_log();
    assert!(log.contains(&format!("closes_sent={CLIENTS}")), "{log}");
    assert!(log.contains("spread over 4s (drain_spread)"), "{log}");
}

/// `drain_delay` 3 s: `/readyz` is 503 right after SIGTERM, the ws listener still upgrades new
/// clients and nobody is sent a 1001 yet; once the delay has passed, every client (the new one
/// too) gets its 1001 and the listener refuses connections.
#[test]
fn readyz_is_503_at_once_and_the_listener_accepts_until_drain_delay() {
    let delay = Duration::from_secs(3);
    let mut server = ServerProcess::start(&[
        "--cores",
        "1",
        "--drain-delay",
        "3s",
        "--drain-timeout",
        "10s",
    ]);
    let admin = server.admin.unwrap();
    assert_eq!(admin_get(admin, "/readyz").0, 200);
    let early = ws_connect(server.addr);
    let signalled = Instant::now();
    server.signal(libc::SIGTERM);
    let not_ready = loop {
        let (status, body) = admin_get(admin, "/readyz");
        if status == 503 {
            break body;
        }
        assert!(
            signalled.elapsed() < Duration::from_secs(1),
            "/readyz still {status} {body:?} 1 s after SIGTERM"
        );
        std::thread::sleep(Duration::from_millis(10));
    };
    assert!(not_ready.contains("draining"), "{not_ready}");
    // Still accepting: a new client upgrades during the delay.
    let late = ws_connect(server.addr);
    assert!(
        signalled.elapsed() < delay,
        "the checks above took longer than drain_delay: {:?}",
        signalled.elapsed()
    );
    let (tx, rx) = mpsc::channel();
    for s in [early, late] {
        let tx = tx.clone();
        std::thread::spawn(move || {
            let _ = tx.send(await_drain_close(s, Duration::from_secs(8)));
        });
    }
    for _ in 0..2 {
        let (at, code, reason) = rx.recv_timeout(Duration::from_secs(9)).expect("a 1001");
        assert_eq!(code, Some(1001), "{reason}");
        assert!(
            at - signalled >= delay,
            "a 1001 came {:?} after SIGTERM, before drain_delay ({delay:?})",
            at - signalled
        );
    }
    let refused = TcpStream::connect(server.addr);
    assert!(
        refused.is_err(),
        "the listener still accepts after drain_delay"
    );
    assert_eq!(server.wait_exit(Duration::from_secs(10)), Some(0));
}

/// The wss listener drains like the ws one: it upgrades during `drain_delay`, its clients get
/// their 1001 (through TLS) once the delay has passed, and then it refuses connections.
#[test]
fn the_wss_listener_accepts_until_drain_delay_and_its_clients_get_1001() {
    let delay = Duration::from_secs(2);
    let pki = Pki::with_server("drain");
    let mut args: Vec<String> = [
        "--cores",
        "1",
        "--drain-delay",
        "2s",
        "--drain-timeout",
        "8s",
    ]
    .map(String::from)
    .to_vec();
    args.extend(pki.serve_flags("server"));
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let mut server = ServerProcess::start(&args);
    let tls_addr = server.tls.expect("the wss listener");
    let config = client_config(&pki.cert("ca"), None);
    let early = wss_connect(tls_addr, config.clone(), "/");
    let signalled = Instant::now();
    server.signal(libc::SIGTERM);
    let late = wss_connect(tls_addr, config, "/");
    assert!(signalled.elapsed() < delay, "{:?}", signalled.elapsed());
    for mut s in [early, late] {
        s.sock
            .set_read_timeout(Some(Duration::from_secs(6)))
            .unwrap();
        let (_, op, payload) = read_frame(&mut s);
        assert_eq!(op, 0x8);
        assert_eq!(payload[..2], 1001u16.to_be_bytes());
        assert!(signalled.elapsed() >= delay, "a 1001 before drain_delay");
        let _ = s.write_all(&client_frame(true, 0x8, &payload[..2]));
    }
    assert!(
        TcpStream::connect(tls_addr).is_err(),
        "the wss listener still accepts after drain_delay"
    );
    assert_eq!(server.wait_exit(Duration::from_secs(10)), Some(0));
}

/// A drain whose last 1001 would go out at or after its own deadline is refused at start,
/// naming the three settings.
#[test]
fn a_drain_that_cannot_finish_before_drain_timeout_is_refused_at_start() {
    refused_start(
        &[
            "--drain-timeout",
            "5s",
            "--drain-delay",
            "2s",
            "--drain-spread",
            "3s",
        ],
        &[],
        2,
        &[
            "drain_timeout (5s) must be longer than drain_delay (2s) + drain_spread (3s)",
            "--drain-timeout",
        ],
    );
}
