//! Connection lifecycle against the real binary: handshake timeout, heartbeats, idle timeout,
//! slow consumers, the connection limit, fd exhaustion, the rate limit, graceful drain and the
//! zero-downtime restart recipe. Every wait is bounded.

mod common;
use common::*;
use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::{Duration, Instant};

/// Reads frames until a close arrives; answers pings when `answer_pings`. Returns the close
/// code and the frames seen before it.
fn read_until_close(s: &mut TcpStream, answer_pings: bool) -> (Option<u16>, Vec<(u8, Vec<u8>)>) {
    let mut seen = Vec::new();
    loop {
        let (_, op, payload) = read_frame(s);
        match op {
            0x8 => {
                return (
                    (payload.len() >= 2).then(|| u16::from_be_bytes([payload[0], payload[1]])),
                    seen,
                )
            }
            0x9 if answer_pings => s.write_all(&client_frame(true, 0xA, &payload)).unwrap(),
            _ => {}
        }
        seen.push((op, payload));
    }
}

/// Answers every ping for `window` (the socket needs a short read timeout); only pings may
/// arrive. Returns how many were answered.
fn answer_pings_for(s: &mut TcpStream, window: Duration) -> usize {
    let end = Instant::now() + window;
    let mut pings = 0;
    while Instant::now() < end {
        let mut h = [0u8; 2];
        match s.read_exact(&mut h) {
            Ok(()) => {
                assert_eq!(h[0], 0x89, "only pings are expected");
                let mut p = vec![0u8; (h[1] & 0x7f) as usize];
                s.read_exact(&mut p).unwrap();
                s.write_all(&client_frame(true, 0xA, &p)).unwrap();
                pings += 1;
            }
            Err(e)
                if matches!(
                    e.kind(),
                    std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                ) => {}
            Err(e) => panic!("the answering client lost its connection: {e}"),
        }
    }
    pings
}

#[test]
fn slowloris_sockets_are_closed_at_the_handshake_timeout_while_others_connect() {
    let server = ServerProcess::start(&["--cores", "1", "--handshake-timeout", "1s"]);
    let mut slow: Vec<TcpStream> = (0..20)
        .map(|_| {
            let mut s = connect(server.addr);
            s.write_all(b"GET / HTTP/1.1\r\nHost: x\r\n").unwrap(); // never finished
            s
        })
        .collect();
    let started = Instant::now();
    // Meanwhile a normal client upgrades and echoes.
    let mut good = ws_connect(server.addr);
    good.write_all(&client_frame(true, 0x1, b"hi")).unwrap();
    assert_eq!(read_frame(&mut good).2, b"hi");
    for s in slow.iter_mut() {
        assert!(closed_by_server(s), "a slow handshake must be closed");
    }
    let elapsed = started.elapsed();
    assert!(
        elapsed < Duration::from_millis(2500),
        "closed after {elapsed:?}, timeout is 1 s"
    );
    // The upgraded connection is not subject to the handshake timeout.
    good.write_all(&client_frame(true, 0x1, b"still")).unwrap();
    assert_eq!(read_frame(&mut good).2, b"still");
    let (_, log) = server.stop();
    assert!(log.contains("handshake_timeouts=20"), "{log}");
}

/// TCP connections ringws has accepted so far, from its metrics.
fn accepted(admin: std::net::SocketAddr) -> f64 {
    metric_sum(admin, "ringws_connections_accepted_total")
}

#[test]
fn a_connection_reaches_ringws_with_its_first_bytes_unless_defer_accept_is_off() {
    let server = ServerProcess::start(&["--cores", "1", "--handshake-timeout", "1s"]);
    let admin = server.admin.expect("admin listener");
    let mut silent = connect(server.addr);
    std::thread::sleep(Duration::from_millis(300));
    assert_eq!(
        accepted(admin),
        0.0,
        "a silent connection waits in the kernel"
    );
    let mut talking = connect(server.addr);
    talking.write_all(upgrade_request("/").as_bytes()).unwrap();
    assert_eq!(read_response(&mut talking).status, 101);
    assert_eq!(accepted(admin), 1.0, "the request brings the connection in");
    // A client silent past the defer period is accepted anyway and meets the handshake
    // timeout: 1 s of deferral plus 1 s of timeout, with the kernel's SYN-ACK retry in between.
    let started = Instant::now();
    silent
        .set_read_timeout(Some(Duration::from_secs(8)))
        .unwrap();
    assert!(closed_by_server(&mut silent), "a silent client is closed");
    assert!(
        started.elapsed() < Duration::from_secs(6),
        "closed after {:?}",
        started.elapsed()
    );
    assert_eq!(accepted(admin), 2.0);
    drop(server);

    let server = ServerProcess::start(&["--cores", "1", "--defer-accept", "off"]);
    let admin = server.admin.expect("admin listener");
    let _silent = connect(server.addr);
    let deadline = Instant::now() + Duration::from_secs(3);
    while accepted(admin) < 1.0 {
        assert!(
            Instant::now() < deadline,
            "--defer-accept off accepts on the ACK"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

#[test]
fn a_peer_that_ignores_pings_is_closed_and_one_that_answers_stays() {
    let server = ServerProcess::start(&[
        "--cores",
        "1",
        "--ping-interval",
        "1s",
        "--pong-timeout",
        "1s",
    ]);
    let mut deaf = ws_connect(server.addr);
    let mut alive = ws_connect(server.addr);
    deaf.set_read_timeout(Some(Duration::from_secs(6))).unwrap();
    alive
        .set_read_timeout(Some(Duration::from_millis(300)))
        .unwrap();
    let started = Instant::now();

    let alive_thread = std::thread::spawn(move || {
        // Answer every ping for 3.5 s, then prove the connection still works.
        let alive_pings = answer_pings_for(&mut alive, Duration::from_millis(3500));
        alive
            .set_read_timeout(Some(Duration::from_secs(5)))
            .unwrap();
        alive.write_all(&client_frame(true, 0x1, b"ok")).unwrap();
        loop {
            let (_, op, payload) = read_frame(&mut alive);
            if op == 0x1 {
                assert_eq!(payload, b"ok");
                break;
            }
            assert_eq!(op, 0x9);
            alive.write_all(&client_frame(true, 0xA, &payload)).unwrap();
        }
        alive_pings
    });

    let (code, seen) = read_until_close(&mut deaf, false);
    let elapsed = started.elapsed();
    assert_eq!(code, Some(1001), "heartbeat timeout closes with 1001");
    assert!(
        seen.iter().any(|(op, _)| *op == 0x9),
        "a ping came first: {seen:?}"
    );
    // ping_interval + pong_timeout + one tick, with slack for a loaded machine.
    assert!(
        elapsed <= Duration::from_millis(2600),
        "closed after {elapsed:?}"
    );
    assert!(
        elapsed >= Duration::from_millis(1500),
        "closed too early: {elapsed:?}"
    );
    assert!(closed_by_server(&mut deaf));

    let pings = alive_thread.join().unwrap();
    assert!(
        pings >= 2,
        "the answering client should have been pinged repeatedly, got {pings}"
    );
    let (_, log) = server.stop();
    assert!(log.contains("heartbeat_timeouts=1"), "{log}");
}

#[test]
fn idle_timeout_closes_connections_without_application_messages() {
    let server = ServerProcess::start(&[
        "--cores",
        "1",
        "--idle-timeout",
        "1s",
        "--ping-interval",
        "300ms",
    ]);
    let mut s = ws_connect(server.addr);
    let started = Instant::now();
    // Pongs are not application messages: answering pings does not keep it open.
    let (code, _) = read_until_close(&mut s, true);
    assert_eq!(code, Some(1001));
    let elapsed = started.elapsed();
    assert!(
        elapsed >= Duration::from_millis(900) && elapsed < Duration::from_millis(2500),
        "{elapsed:?}"
    );
}

#[test]
fn a_client_that_does_not_read_is_cut_off_with_1008_and_memory_stays_bounded() {
    let server = ServerProcess::start(&[
        "--cores",
        "1",
        "--max-outbound-buffer",
        "256KiB",
        "--close-timeout",
        "20s",
        "--write-stall-timeout",
        "60s",
    ]);
    let rss_before = server.rss_bytes();
    let mut s = ws_connect(server.addr);
    // 64 MiB of echo requests the client never reads while sending.
    let frame = client_frame(true, 0x2, &[0x5a; 16 * 1024]);
    s.set_write_timeout(Some(Duration::from_secs(10))).unwrap();
    for _ in 0..4096 {
        if s.write_all(&frame).is_err() {
            break;
        }
    }
    let rss_during = server.rss_bytes();
    // Now read: echoes (as many as the kernel buffers and the queue held), then the 1008.
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    let (code, seen) = read_until_close(&mut s, false);
    assert_eq!(code, Some(1008));
    assert!(
        seen.len() < 4096,
        "the server must stop echoing to a slow consumer"
    );
    assert!(seen
        .iter()
        .all(|(op, p)| *op == 0x2 && p.len() == 16 * 1024));
    let growth = rss_during.saturating_sub(rss_before);
    assert!(
        growth < 16 << 20,
        "server RSS grew by {growth} bytes for one slow consumer"
    );
    let (_, log) = server.stop();
    assert!(log.contains("slow_consumers=1"), "{log}");
}

#[test]
fn the_connection_limit_answers_503_with_retry_after() {
    let server = ServerProcess::start(&["--cores", "1", "--max-connections", "2"]);
    let _a = ws_connect(server.addr);
    let _b = ws_connect(server.addr);
    let r = exchange(server.addr, upgrade_request("/").as_bytes());
    assert_eq!(r.status, 503, "{}", r.body);
    assert!(r.header("retry-after").is_some());
    drop(_a);
    std::thread::sleep(Duration::from_millis(200));
    let _c = ws_connect(server.addr); // room again
}

/// SO_REUSEPORT spreads connections over the cores by hash, so a per-core share of the limit
/// refused some connections below it and admitted others above it.
#[test]
fn the_connection_limit_is_exact_across_cores() {
    const LIMIT: usize = 40;
    let server = ServerProcess::start(&["--cores", "2", "--max-connections", "40"]);
    let open: Vec<TcpStream> = (0..LIMIT).map(|_| ws_connect(server.addr)).collect();
    // Whatever core each attempt lands on, every attempt past the limit is refused.
    for attempt in 0..20 {
        let r = exchange(server.addr, upgrade_request("/").as_bytes());
        assert_eq!(
            r.status, 503,
            "attempt {attempt} past {LIMIT} open: {}",
            r.head
        );
    }
    drop(open);
    // Released places are taken again, all of them.
    let deadline = Instant::now() + Duration::from_secs(5);
    let mut reopened = Vec::new();
    while reopened.len() < LIMIT {
        let mut s = connect(server.addr);
        s.write_all(upgrade_request("/").as_bytes()).unwrap();
        match read_response(&mut s).status {
            101 => reopened.push(s),
            503 if Instant::now() < deadline => {
                std::thread::sleep(Duration::from_millis(50)) // closes still being counted
            }
            status => panic!("{} of {LIMIT} reopened, then {status}", reopened.len()),
        }
    }
}

#[test]
fn message_rate_limit_closes_with_1008() {
    let server = ServerProcess::start(&[
        "--cores",
        "1",
        "--message-rate",
        "10",
        "--message-burst",
        "5",
    ]);
    let mut s = ws_connect(server.addr);
    for i in 0..20u8 {
        s.write_all(&client_frame(true, 0x2, &[i])).unwrap();
    }
    let (code, seen) = read_until_close(&mut s, false);
    assert_eq!(code, Some(1008));
    assert_eq!(
        seen.len(),
        5,
        "the burst passes, the rest is refused: {seen:?}"
    );
}

#[test]
fn fd_exhaustion_keeps_serving_and_recovers() {
    // A low RLIMIT_NOFILE: the server holds a few dozen sockets at most.
    let limit = 40;
    let mut server =
        ServerProcess::start_with(&["--listen", "127.0.0.1:0"], &["--cores", "1"], Some(limit));
    let addr = server.addr;
    let mut upgraded = Vec::new();
    let mut waiting = Vec::new();
    for _ in 0..(limit + 10) {
        let mut s = connect(addr);
        s.write_all(upgrade_request("/").as_bytes()).unwrap();
        s.set_read_timeout(Some(Duration::from_millis(300)))
            .unwrap();
        let mut first = [0u8; 12];
        match s.read_exact(&mut first) {
            Ok(()) => {
                assert_eq!(&first, b"HTTP/1.1 101");
                let mut rest = Vec::new();
                while !rest.ends_with(b"\r\n\r\n") {
                    let mut b = [0u8; 1];
                    s.read_exact(&mut b).unwrap();
                    rest.push(b[0]);
                }
                upgraded.push(s);
            }
            Err(_) => waiting.push(s), // queued in the kernel: the server is out of fds
        }
    }
    assert!(!waiting.is_empty(), "the fd limit should have been reached");
    // Existing connections keep being served.
    let mut first = upgraded.remove(0);
    first
        .set_read_timeout(Some(Duration::from_secs(5)))
        .unwrap();
    first.write_all(&client_frame(true, 0x1, b"alive")).unwrap();
    assert_eq!(read_frame(&mut first).2, b"alive");
    // Free fds: the waiting connections are accepted and upgraded.
    let freed = waiting.len() + 2;
    upgraded.drain(..freed.min(upgraded.len()));
    for s in waiting.iter_mut() {
        s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
        let r = read_response(s);
        assert_eq!(r.status, 101);
    }
    let log = server.drain_log();
    assert!(
        log.contains("accept failed") && log.contains("open-file limit"),
        "{log}"
    );
    server.signal(libc::SIGTERM);
    assert_eq!(server.wait_exit(Duration::from_secs(15)), Some(0));
}

#[test]
fn sigterm_sends_1001_to_every_client_and_exits_0_within_the_drain_timeout() {
    let mut server = ServerProcess::start(&["--cores", "2", "--drain-timeout", "5s"]);
    let mut clients: Vec<TcpStream> = (0..40).map(|_| ws_connect(server.addr)).collect();
    let started = Instant::now();
    server.signal(libc::SIGTERM);
    for s in clients.iter_mut() {
        assert_eq!(read_close(s), Some(1001));
        s.write_all(&client_frame(true, 0x8, &1001u16.to_be_bytes()))
            .unwrap();
    }
    for s in clients.iter_mut() {
        assert!(closed_by_server(s));
    }
    assert_eq!(server.wait_exit(Duration::from_secs(10)), Some(0));
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "drain took {:?}",
        started.elapsed()
    );
    let log = server.drain_log();
    assert!(log.contains("drained_cleanly=40"), "{log}");
    assert!(log.contains("drained_forced=0"), "{log}");
    // New connections are refused once the listeners are closed.
    assert!(TcpStream::connect(server.addr).is_err());
}

/// SIGTERM with one client that never answers the 1001: the server must reset it and exit 0
/// after 1 s (whichever of `drain_timeout` and `close_timeout` is 1 s). Returns the exit log.
/// SIGTERM with one client that never answers the 1001: the server must reset it at the drain
/// timeout (`drain_s`), whatever close_timeout says, and exit 0.
fn sigterm_with_a_silent_client(drain_timeout: &str, close_timeout: &str, drain_s: u64) -> String {
    let mut server = ServerProcess::start(&[
        "--cores",
        "1",
        "--drain-timeout",
        drain_timeout,
        "--close-timeout",
        close_timeout,
    ]);
    let mut silent = ws_connect(server.addr);
    let started = Instant::now();
    server.signal(libc::SIGTERM);
    assert_eq!(read_close(&mut silent), Some(1001));
    assert_eq!(server.wait_exit(Duration::from_secs(10)), Some(0));
    let elapsed = started.elapsed();
    let drain = Duration::from_secs(drain_s);
    assert!(
        elapsed >= drain - Duration::from_millis(100) && elapsed < drain + Duration::from_secs(2),
        "{elapsed:?}"
    );
    server.drain_log()
}

/// The first signal says what the drain is about (how many connections, until when, how to cut
/// it short), and the exit summary is a few short lines, not one long one.
#[test]
fn a_stop_signal_says_what_drains_and_the_summary_reads_in_short_lines() {
    let mut server = ServerProcess::start(&["--cores", "2", "--drain-timeout", "7s"]);
    let mut clients: Vec<TcpStream> = (0..3).map(|_| ws_connect(server.addr)).collect();
    server.signal(libc::SIGINT);
    for s in clients.iter_mut() {
        assert_eq!(read_close(s), Some(1001));
        s.write_all(&client_frame(true, 0x8, &1001u16.to_be_bytes()))
            .unwrap();
    }
    assert_eq!(server.wait_exit(Duration::from_secs(10)), Some(0));
    let log = server.drain_log();
    let announced = log
        .lines()
        .find(|l| l.contains("SIGINT received"))
        .unwrap_or_else(|| panic!("no word of the signal in: {log}"));
    assert!(
        announced.contains("draining 3 open connections"),
        "{announced}"
    );
    assert!(
        announced.contains("close 1001") && announced.contains("up to 7s (until 20"),
        "the deadline, as a duration and a time: {announced}"
    );
    assert!(
        announced.contains("A second SIGINT or SIGTERM (Ctrl-C again) exits at once"),
        "{announced}"
    );

    let summary: Vec<&str> = log
        .lines()
        .skip_while(|l| !l.contains("stopped after"))
        .collect();
    assert!(summary.len() >= 5, "{log}");
    for line in &summary {
        assert!(line.len() <= 120, "{} characters: {line}", line.len());
    }
    let summary = summary.join("\n");
    for field in [
        "accepted=3",
        "upgraded=3",
        "handshake_timeouts=0",
        "heartbeat_timeouts=0",
        "slow_consumers=0",
        "protocol_errors=0",
        "drained_cleanly=3",
        "drained_forced=0",
        "refused handshakes none",
    ] {
        assert!(summary.contains(field), "{field} missing from:\n{summary}");
    }
}

#[test]
fn drain_resets_clients_that_never_answer_at_the_drain_timeout() {
    let log = sigterm_with_a_silent_client("1s", "30s", 1);
    assert!(log.contains("drained_forced=1"), "{log}");
}
#[test]
fn a_second_signal_forces_an_immediate_exit() {
    let mut server = ServerProcess::start(&[
        "--cores",
        "1",
        "--drain-timeout",
        "30s",
        "--close-timeout",
        "30s",
    ]);
    let mut silent = ws_connect(server.addr);
    server.signal(libc::SIGTERM);
    assert_eq!(read_close(&mut silent), Some(1001));
    let started = Instant::now();
    server.signal(libc::SIGINT);
    assert_eq!(server.wait_exit(Duration::from_secs(5)), Some(1));
    assert!(started.elapsed() < Duration::from_secs(2));
}

/// The restart recipe: start the new process on the same port with --takeover, then SIGTERM the
/// old one. Clients of the old process get 1001; no connection attempt fails at any point.
#[test]
fn zero_downtime_restart_loses_no_connection_attempt() {
    // Pending connections of a closing SO_REUSEPORT listener move to a sibling listener
    // instead of being reset (Linux 5.14+); the deploy/ sysctl profiles set it.
    std::fs::write("/proc/sys/net/ipv4/tcp_migrate_req", "1")
        .expect("enable net.ipv4.tcp_migrate_req (run as root)");
    let old = ServerProcess::start(&["--cores", "2"]);
    let addr = old.addr;
    let mut old_clients: Vec<TcpStream> = (0..20).map(|_| ws_connect(addr)).collect();

    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let churn = {
        let stop = stop.clone();
        std::thread::spawn(move || {
            let (mut ok, mut failed) = (0u32, Vec::new());
            while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                let attempt = (|| -> Result<(), String> {
                    let mut s = TcpStream::connect(addr).map_err(|e| format!("connect: {e}"))?;
                    s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
                    s.write_all(upgrade_request("/").as_bytes())
                        .map_err(|e| format!("write: {e}"))?;
                    let mut head = [0u8; 12];
                    s.read_exact(&mut head).map_err(|e| format!("read: {e}"))?;
                    if &head != b"HTTP/1.1 101" {
                        return Err(format!("status {:?}", String::from_utf8_lossy(&head)));
                    }
                    Ok(())
                })();
                match attempt {
                    Ok(()) => ok += 1,
                    Err(e) => failed.push(e),
                }
            }
            (ok, failed)
        })
    };

    std::thread::sleep(Duration::from_millis(300));
    let addr_text = addr.to_string();
    let new = ServerProcess::start_with(
        &["--listen", &addr_text],
        &["--cores", "2", "--takeover"],
        None,
    );
    std::thread::sleep(Duration::from_millis(300));
    old.signal(libc::SIGTERM);
    for s in old_clients.iter_mut() {
        assert_eq!(
            read_close(s),
            Some(1001),
            "clients of the old process get 1001"
        );
        let _ = s.write_all(&client_frame(true, 0x8, &1001u16.to_be_bytes()));
    }
    let mut old = old;
    assert_eq!(old.wait_exit(Duration::from_secs(15)), Some(0));
    std::thread::sleep(Duration::from_millis(300));
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    let (ok, failed) = churn.join().unwrap();
    assert!(ok > 20, "the churn made only {ok} attempts");
    assert!(
        failed.is_empty(),
        "{} of {} attempts failed: {:?}",
        failed.len(),
        ok as usize + failed.len(),
        &failed[..failed.len().min(5)]
    );
    // The new process serves.
    let mut s = ws_connect(new.addr);
    s.write_all(&client_frame(true, 0x1, b"new")).unwrap();
    assert_eq!(read_frame(&mut s).2, b"new");
}

/// A peer that answers every ping is pinged once per ping_interval, not once per
/// ping_interval + pong_timeout: the pong re-arms the heartbeat deadline.
#[test]
fn a_responsive_peer_is_pinged_every_interval() {
    let server = ServerProcess::start(&[
        "--cores",
        "1",
        "--ping-interval",
        "1s",
        "--pong-timeout",
        "5s",
    ]);
    let mut s = ws_connect(server.addr);
    s.set_read_timeout(Some(Duration::from_millis(200)))
        .unwrap();
    let pings = answer_pings_for(&mut s, Duration::from_millis(4500));
    assert!(
        pings >= 3,
        "expected a ping about every second for 4.5 s, got {pings}"
    );
}

/// A queue that does not drain at all for write_stall_timeout drops the connection, even while
/// it is under max_outbound_buffer.
#[test]
fn a_stalled_outbound_queue_is_dropped_at_the_write_stall_timeout() {
    let server = ServerProcess::start(&[
        "--cores",
        "1",
        "--max-outbound-buffer",
        "256MiB",
        "--write-stall-timeout",
        "1s",
        "--close-timeout",
        "30s",
    ]);
    let admin = server.admin.unwrap();
    let mut s = ws_connect(server.addr);
    // 32 MiB of echo requests, never read: the kernel buffers fill, the rest waits in the queue.
    let frame = client_frame(true, 0x2, &[7u8; 16 * 1024]);
    s.set_write_timeout(Some(Duration::from_secs(10))).unwrap();
    let metric = |name: &str| -> f64 {
        admin_get(admin, "/metrics")
            .1
            .lines()
            .filter(|l| l.starts_with(name))
            .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
            .sum()
    };
    // The queue must drain at min_send_rate once older than the 1 s write_stall_timeout: the
    // server may drop it while this is still writing (then the write fails with a reset).
    let mut dropped_while_writing = false;
    for _ in 0..2048 {
        if s.write_all(&frame).is_err() {
            dropped_while_writing = true;
            break;
        }
    }
    if !dropped_while_writing {
        assert!(
            metric("ringws_outbound_queued_bytes{") > 0.0,
            "the queue should be backed up"
        );
    }
    let started = Instant::now();
    while metric("ringws_write_stall_closes_total{") < 1.0 {
        assert!(
            started.elapsed() < Duration::from_secs(5),
            "no write-stall close within 5 s"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    assert_eq!(
        metric("ringws_slow_consumer_closes_total{"),
        0.0,
        "the cap was not the cause"
    );
    assert_eq!(
        metric("ringws_outbound_queued_bytes{"),
        0.0,
        "the queue's memory is released"
    );
}

/// During a drain, clients have the whole drain_timeout to answer the 1001, as documented: a
/// shorter close_timeout does not cut it short (it bounds closes outside a drain).
#[test]
fn a_drain_gives_clients_the_drain_timeout_even_when_the_close_timeout_is_shorter() {
    let log = sigterm_with_a_silent_client("3s", "1s", 3);
    assert!(log.contains("drained_forced=1"), "{log}");
}
