//! The admin listener under hostile clients, against the real binary: partial requests holding
//! every slot, a head that arrives too slowly, and accept(2) failing for want of fds.

mod common;

use std::io::{ErrorKind, Read, Write};
use std::net::{Ipv4Addr, SocketAddr, TcpStream};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use common::*;
use socket2::{Domain, Socket, Type};

/// The admin listener's settings (src/reactor/admin.rs), as the docs state them.
const MAX_ADMIN_CONNECTIONS: usize = 64;
const PER_ADDRESS: usize = 16;
const HEADER_TIMEOUT: Duration = Duration::from_secs(2);

/// A TCP connection to `to` from the loopback address `127.0.0.<from>`.
fn connect_from(from: u8, to: SocketAddr) -> std::io::Result<TcpStream> {
    let socket = Socket::new(Domain::IPV4, Type::STREAM, None)?;
    let local = SocketAddr::from((Ipv4Addr::new(127, 0, 0, from), 0));
    socket.bind(&local.into())?;
    socket.connect_timeout(&to.into(), Duration::from_secs(2))?;
    Ok(socket.into())
}

/// `(status, time to the answer)` of `GET path` from `127.0.0.<from>`, or why there was none.
fn timed_get(from: u8, admin: SocketAddr, path: &str) -> Result<(u16, Duration), String> {
    let start = Instant::now();
    let mut s = connect_from(from, admin).map_err(|e| format!("connect: {e}"))?;
    s.set_read_timeout(Some(Duration::from_secs(2))).unwrap();
    write!(s, "GET {path} HTTP/1.1\r\nHost: x\r\n\r\n").map_err(|e| format!("write: {e}"))?;
    let mut answer = Vec::new();
    match s.read_to_end(&mut answer) {
        Ok(_) => {}
        Err(e) if answer.is_empty() => return Err(format!("read: {e}")),
        Err(_) => {}
    }
    let text = String::from_utf8_lossy(&answer);
    let status = text
        .strip_prefix("HTTP/1.1 ")
        .and_then(|rest| rest.get(..3))
        .and_then(|code| code.parse().ok())
        .ok_or_else(|| format!("not an HTTP answer: {text:?}"))?;
    Ok((status, start.elapsed()))
}

/// The value of the series `line_prefix` (name and labels) on `/metrics`.
fn metric(admin: SocketAddr, line_prefix: &str) -> u64 {
    let (status, text) = admin_get(admin, "/metrics");
    assert_eq!(status, 200, "{text}");
    text.lines()
        .find_map(|l| l.strip_prefix(line_prefix)?.strip_prefix(' '))
        .unwrap_or_else(|| panic!("no {line_prefix} in {text}"))
        .parse()
        .unwrap()
}

/// Opens `per_address` partial requests (`GET /metr`) from each of `addresses` and holds them
/// until `stop`; with `reopen`, opens a new one whenever the server closes one. Returns how many
/// it opened.
fn hold_partial_requests(
    admin: SocketAddr,
    addresses: std::ops::RangeInclusive<u8>,
    per_address: usize,
    reopen: bool,
    stop: Arc<AtomicBool>,
) -> std::thread::JoinHandle<usize> {
    std::thread::spawn(move || {
        let open = |from: u8| -> Option<TcpStream> {
            let mut s = connect_from(from, admin).ok()?;
            s.write_all(b"GET /metr").ok()?;
            s.set_nonblocking(true).ok()?;
            Some(s)
        };
        let mut held: Vec<(u8, Option<TcpStream>)> = addresses
            .flat_map(|a| std::iter::repeat_n(a, per_address))
            .map(|a| (a, open(a)))
            .collect();
        let mut opened = held.len();
        while !stop.load(Ordering::Relaxed) {
            std::thread::sleep(Duration::from_millis(20));
            if !reopen {
                continue;
            }
            for (from, conn) in held.iter_mut() {
                let alive = conn.as_mut().is_some_and(|s| {
                    let mut b = [0u8; 64];
                    matches!(s.read(&mut b), Err(e) if e.kind() == ErrorKind::WouldBlock)
                });
                if !alive {
                    *conn = open(*from);
                    opened += 1;
                }
            }
        }
        opened
    })
}

/// Probes `GET /healthz` from `127.0.0.<from>` every 100 ms for `period`; panics unless every
/// probe got 200 within `bound`. Returns how many probes ran.
fn probe_healthz(admin: SocketAddr, from: u8, period: Duration, bound: Duration) -> usize {
    let mut answers = Vec::new();
    let start = Instant::now();
    while start.elapsed() < period {
        answers.push(timed_get(from, admin, "/healthz"));
        std::thread::sleep(Duration::from_millis(100));
    }
    let failed: Vec<_> = answers
        .iter()
        .filter(|a| !matches!(a, Ok((200, took)) if *took < bound))
        .collect();
    assert!(
        failed.is_empty(),
        "{} of {} probes failed or took over {bound:?}: {failed:?}",
        failed.len(),
        answers.len()
    );
    let slowest = answers
        .iter()
        .filter_map(|a| a.as_ref().ok())
        .map(|a| a.1)
        .max();
    eprintln!(
        "{} probes from 127.0.0.{from}, slowest {slowest:?}",
        answers.len()
    );
    answers.len()
}

const CLOSED: &str = "ringws_admin_connections_closed_total";

#[test]
fn healthz_answers_while_partial_requests_from_its_own_address_hold_the_slots() {
    let server = ServerProcess::start(&["--cores", "1"]);
    let admin = server.admin.expect("admin listener");
    // More partial requests than there are slots, from the probe's own address (loopback, as
    // with the default admin_listen): the `GET /metr` attack of issue 12.
    let stop = Arc::new(AtomicBool::new(false));
    let held = MAX_ADMIN_CONNECTIONS + 16;
    let attacker = hold_partial_requests(admin, 1..=1, held, false, stop.clone());
    std::thread::sleep(Duration::from_millis(300));
    // Within the header deadline of the held requests, then past it.
    let period = HEADER_TIMEOUT + Duration::from_secs(1);
    let probes = probe_healthz(admin, 1, period, Duration::from_secs(1));
    stop.store(true, Ordering::Relaxed);
    attacker.join().unwrap();
    assert!(probes >= 20, "{probes} probes");
    // The address kept at most its 16 slots: the others went to its newer connections, then
    // to the probes; what was left met the header deadline.
    let evicted = metric(admin, &format!("{CLOSED}{{reason=\"evicted\"}}"));
    assert!(evicted >= (held - PER_ADDRESS) as u64, "{evicted} evicted");
    assert!(metric(admin, &format!("{CLOSED}{{reason=\"header_timeout\"}}")) > 0);
}

#[test]
fn healthz_answers_while_other_addresses_churn_partial_requests_through_every_slot() {
    let server = ServerProcess::start(&["--cores", "1"]);
    let admin = server.admin.expect("admin listener");
    // 6 addresses × 20 partial requests, each reopened as soon as it is closed: more than any
    // address may hold (16) and, together, more than the 64 slots, so they replace one another
    // as fast as the server accepts.
    let stop = Arc::new(AtomicBool::new(false));
    let attacker = hold_partial_requests(admin, 2..=7, 20, true, stop.clone());
    std::thread::sleep(Duration::from_millis(500));
    let probes = probe_healthz(admin, 1, Duration::from_secs(5), Duration::from_secs(1));
    stop.store(true, Ordering::Relaxed);
    let opened = attacker.join().unwrap();
    eprintln!("the attacker opened {opened} connections");
    assert!(probes >= 30, "{probes} probes");
    // The slots were full: held requests were replaced by newcomers (so often that few lived
    // to their header deadline), and no newcomer was refused outright.
    let evicted = metric(admin, &format!("{CLOSED}{{reason=\"evicted\"}}"));
    assert!(opened > 120 + MAX_ADMIN_CONNECTIONS, "opened {opened}");
    assert!(evicted > opened as u64 / 2, "{evicted} evicted of {opened}");
    assert_eq!(metric(admin, &format!("{CLOSED}{{reason=\"refused\"}}")), 0);
}

#[test]
fn a_request_head_must_arrive_within_the_header_deadline() {
    let server = ServerProcess::start(&["--cores", "1", "--app", "pubsub"]);
    let admin = server.admin.expect("admin listener");

    // A head that stops: 408 at the deadline, then closed.
    let start = Instant::now();
    let mut s = connect(admin);
    s.write_all(b"GET /metr").unwrap();
    s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    let r = read_response(&mut s);
    let took = start.elapsed();
    assert_eq!(r.status, 408, "{}", r.head);
    assert!(r.body.contains("not received within 2 s"), "{}", r.body);
    assert!(
        took >= HEADER_TIMEOUT - Duration::from_millis(100)
            && took < HEADER_TIMEOUT + Duration::from_secs(1),
        "answered after {took:?}"
    );
    assert!(closed_by_server(&mut s));

    // A head that trickles in, a byte every 100 ms, is held to the same deadline.
    let start = Instant::now();
    let mut s = connect(admin);
    s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    let mut cut_off = false;
    for b in b"GET /healthz HTTP/1.1\r\nX-Slow: ".iter().cycle().take(60) {
        if s.write_all(&[*b]).is_err() {
            cut_off = true;
            break;
        }
        std::thread::sleep(Duration::from_millis(100));
        s.set_nonblocking(true).unwrap();
        let mut peek = [0u8; 12];
        let answered = s.peek(&mut peek).is_ok_and(|n| n > 0);
        s.set_nonblocking(false).unwrap();
        if answered {
            cut_off = true;
            break;
        }
    }
    let took = start.elapsed();
    assert!(cut_off, "a 6 s trickle was not cut off");
    assert!(
        took < HEADER_TIMEOUT + Duration::from_secs(1),
        "cut off after {took:?}"
    );
    assert_eq!(read_response(&mut s).status, 408);

    // The deadline is the head's: a body may take longer, within the overall timeout.
    let mut s = connect(admin);
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    s.write_all(
        b"POST /publish/a HTTP/1.1\r\nHost: x\r\nContent-Type: text/plain\r\nContent-Length: 5\r\n\r\nhe",
    )
    .unwrap();
    std::thread::sleep(HEADER_TIMEOUT + Duration::from_millis(500));
    s.write_all(b"llo").unwrap();
    let r = read_response(&mut s);
    assert_eq!(r.status, 200, "{}: {}", r.head, r.body);

    assert_eq!(
        metric(admin, &format!("{CLOSED}{{reason=\"header_timeout\"}}")),
        2
    );
}

/// CPU seconds (user + system) the process `pid` has used.
fn cpu_seconds(pid: u32) -> f64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap();
    let fields: Vec<&str> = stat[stat.rfind(')').unwrap() + 2..]
        .split_whitespace()
        .collect();
    // utime and stime: fields 14 and 15 of stat(5), counted from the state (field 3).
    let ticks: u64 = fields[11].parse::<u64>().unwrap() + fields[12].parse::<u64>().unwrap();
    // SAFETY: sysconf has no memory effects.
    let hz = unsafe { libc::sysconf(libc::_SC_CLK_TCK) } as f64;
    ticks as f64 / hz
}

#[test]
fn admin_accept_backs_off_while_fds_are_exhausted() {
    let limit = 48;
    let server = ServerProcess::start_with(
        &["--listen", "127.0.0.1:0"],
        &[
            "--cores",
            "1",
            "--defer-accept",
            "off",
            "--handshake-timeout",
            "60s",
        ],
        Some(limit),
    );
    let admin = server.admin.expect("admin listener");
    // Silent WebSocket clients take every fd the server has left.
    let hogs: Vec<TcpStream> = (0..limit + 16).map(|_| connect(server.addr)).collect();
    std::thread::sleep(Duration::from_millis(500));
    // Admin clients wait in the listen queue: each accept(2) the server tries fails.
    let waiting: Vec<TcpStream> = (0..4).map(|_| connect(admin)).collect();
    std::thread::sleep(Duration::from_millis(500));

    let pid = server.child.id();
    let before = cpu_seconds(pid);
    let window = Duration::from_secs(2);
    std::thread::sleep(window);
    let used = cpu_seconds(pid) - before;
    eprintln!("{used:.2} CPU-s in {window:?} with fds exhausted and admin clients waiting");
    assert!(
        used < 0.2,
        "{used:.2} CPU-s in {window:?}: the admin accept spins instead of backing off"
    );

    // Fds come back: the admin listener accepts again within its back-off.
    drop(hogs);
    drop(waiting);
    let start = Instant::now();
    let answer = loop {
        match timed_get(1, admin, "/healthz") {
            Ok((200, _)) => break Ok(start.elapsed()),
            other if start.elapsed() > Duration::from_secs(5) => break Err(other),
            _ => std::thread::sleep(Duration::from_millis(100)),
        }
    };
    assert!(
        answer.is_ok(),
        "no /healthz 5 s after fds were freed: {answer:?}"
    );
    assert!(metric(admin, "ringws_admin_accept_errors_total") >= 1);
    let log = server.drain_log();
    assert!(
        log.contains("admin accept failed") && log.contains("open-file limit"),
        "{log}"
    );
}
