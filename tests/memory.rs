//! The memory budget against the real binary: near it new upgrades get 503 (`memory_budget`),
//! past it the connections holding the most are closed, and the accounting comes back to zero.

mod common;

use common::*;
use std::io::Write;
use std::net::{SocketAddr, TcpStream};
use std::time::{Duration, Instant};

const MIB: usize = 1 << 20;

/// An upgraded connection that sent the header of a 16 MiB binary frame and `bytes` of it.
fn holding(addr: SocketAddr, bytes: usize) -> TcpStream {
    let mut s = ws_connect(addr);
    let mut header = vec![0x82, 0x80 | 127];
    header.extend_from_slice(&(16 * MIB as u64).to_be_bytes());
    header.extend_from_slice(&[0, 0, 0, 0]); // a zero mask: the payload goes as written
    s.write_all(&header).unwrap();
    more(&mut s, bytes);
    s
}

fn more(s: &mut TcpStream, bytes: usize) {
    s.write_all(&vec![7u8; bytes]).unwrap();
}

/// Waits until `/metrics` shows `name` (summed over cores) satisfying `ok`; fails on timeout.
fn wait_metric(admin: SocketAddr, name: &str, ok: impl Fn(f64) -> bool) -> f64 {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let v = metric_sum(admin, name);
        if ok(v) {
            return v;
        }
        assert!(Instant::now() < deadline, "{name} stayed at {v}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[test]
fn near_the_budget_upgrades_are_refused_and_past_it_the_largest_holders_are_closed() {
    let server = ServerProcess::start(&["--cores", "1", "--memory-budget", "20MiB"]);
    let admin = server.admin.expect("admin listener");
    let held = "ringws_memory_held_bytes";
    let budget = 20.0 * MIB as f64;

    // Two connections with 8 MiB of a message in progress each, then a third that grows in
    // 256 KiB steps (its buffer by at most 1 MiB at a time) until the core holds 90 % of the
    // budget, not more than all of it.
    let mut a = holding(server.addr, 8 * MIB);
    let mut b = holding(server.addr, 8 * MIB);
    wait_metric(admin, held, |v| v >= 16.0 * MIB as f64);
    let mut c = holding(server.addr, 0);
    let deadline = Instant::now() + Duration::from_secs(10);
    while metric_sum(admin, held) < 0.9 * budget {
        assert!(
            Instant::now() < deadline,
            "never reached 90 % of the budget"
        );
        more(&mut c, 256 << 10);
        std::thread::sleep(Duration::from_millis(30));
    }
    assert!(metric_sum(admin, held) <= budget);
    let r = exchange(server.addr, upgrade_request("/").as_bytes());
    assert_eq!(r.status, 503, "{}", r.head);
    assert!(r.body.contains("memory_budget"), "{}", r.body);
    assert!(r.header("retry-after").is_some());
    assert_eq!(metric_sum(admin, "ringws_memory_shed_inbound_total"), 0.0);

    // Past the budget the largest holders are closed with 1009 until the core is back to 80 %
    // of it: one of the 8 MiB connections is enough, the others stay.
    more(&mut c, 3 * MIB);
    wait_metric(admin, "ringws_memory_shed_inbound_total", |v| v >= 1.0);
    let closed: Vec<Option<u16>> = [&mut a, &mut b].into_iter().map(read_close_quick).collect();
    assert_eq!(
        closed.iter().filter(|c| **c == Some(1009)).count(),
        1,
        "{closed:?}"
    );
    let after = metric_sum(admin, held);
    assert!(after <= 0.8 * budget, "still holding {after} B");
    more(&mut c, 1024);
    assert_eq!(
        read_close_quick(&mut c),
        None,
        "the smallest holder is left alone"
    );

    // Everything held is given back when the connections go, and upgrades are accepted again.
    drop((a, b, c));
    wait_metric(admin, held, |v| v == 0.0);
    let _open = ws_connect(server.addr);
}

/// The close code of a close frame already waiting on `s`, or `None` if nothing arrives soon.
fn read_close_quick(s: &mut TcpStream) -> Option<u16> {
    s.set_read_timeout(Some(Duration::from_millis(500)))
        .unwrap();
    let mut head = [0u8; 4];
    use std::io::Read;
    match s.read_exact(&mut head) {
        Ok(()) if head[0] == 0x88 => Some(u16::from_be_bytes([head[2], head[3]])),
        _ => None,
    }
}

/// A message announced but not sent, or trickled a byte at a time, is closed with 1008 at
/// `message_timeout` and its buffer freed: any byte is life to the heartbeat, but not progress.
#[test]
fn a_stalled_or_trickled_message_is_closed_at_the_message_timeout() {
    let server = ServerProcess::start(&["--cores", "1", "--message-timeout", "2s"]);
    let admin = server.admin.expect("admin listener");
    let started = Instant::now();
    let mut stalled = holding(server.addr, 1024);
    let mut trickled = holding(server.addr, 1024);
    let trickle = std::thread::spawn(move || {
        // A byte every 300 ms: far below min_receive_rate, until the server closes it.
        let mut code = None;
        for _ in 0..20 {
            std::thread::sleep(Duration::from_millis(300));
            if trickled.write_all(&[7]).is_err() {
                break;
            }
            if let Some(c) = read_close_quick(&mut trickled) {
                code = Some(c);
                break;
            }
        }
        code
    });
    stalled
        .set_read_timeout(Some(Duration::from_secs(5)))
        .unwrap();
    assert_eq!(read_close(&mut stalled), Some(1008));
    let elapsed = started.elapsed();
    assert!(
        elapsed >= Duration::from_millis(1800) && elapsed < Duration::from_secs(4),
        "closed after {elapsed:?}"
    );
    assert_eq!(trickle.join().unwrap(), Some(1008));
    assert!(metric_sum(admin, "ringws_message_timeouts_total") >= 2.0);
    wait_metric(admin, "ringws_memory_held_bytes", |v| v == 0.0);
}

/// A client with a small receive buffer (so ringws, not the kernel, holds the backlog) that
/// sent one binary message of `len` bytes to the echo app.
fn echo_requester(addr: SocketAddr, len: usize) -> TcpStream {
    let socket = socket2::Socket::new(socket2::Domain::IPV4, socket2::Type::STREAM, None).unwrap();
    socket.set_recv_buffer_size(64 << 10).unwrap();
    socket.connect(&addr.into()).unwrap();
    let mut s: TcpStream = socket.into();
    s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    s.write_all(upgrade_request("/").as_bytes()).unwrap();
    assert_eq!(read_response(&mut s).status, 101);
    s.write_all(&client_frame(true, 0x2, &vec![5u8; len]))
        .unwrap();
    s
}

/// Reads exactly `buf.len()` bytes at no more than `bytes_per_s` (the pace of a slow reader).
fn paced_read(
    s: &mut TcpStream,
    buf: &mut [u8],
    bytes_per_s: usize,
    started: Instant,
    total: &mut usize,
) -> std::io::Result<()> {
    use std::io::Read;
    let mut at = 0;
    while at < buf.len() {
        let due = Duration::from_secs_f64(*total as f64 / bytes_per_s as f64);
        if let Some(wait) = due.checked_sub(started.elapsed()) {
            std::thread::sleep(wait);
        }
        let end = (at + 4096).min(buf.len());
        let n = s.read(&mut buf[at..end])?;
        if n == 0 {
            return Err(std::io::ErrorKind::UnexpectedEof.into());
        }
        at += n;
        *total += n;
    }
    Ok(())
}

/// One server frame read at the reader's pace: (fin, opcode, payload).
fn paced_frame(
    s: &mut TcpStream,
    rate: usize,
    started: Instant,
    total: &mut usize,
) -> std::io::Result<(bool, u8, Vec<u8>)> {
    let mut h = [0u8; 2];
    paced_read(s, &mut h, rate, started, total)?;
    let len = match h[1] & 0x7f {
        126 => {
            let mut b = [0u8; 2];
            paced_read(s, &mut b, rate, started, total)?;
            u16::from_be_bytes(b) as usize
        }
        127 => {
            let mut b = [0u8; 8];
            paced_read(s, &mut b, rate, started, total)?;
            u64::from_be_bytes(b) as usize
        }
        n => n as usize,
    };
    let mut payload = vec![0u8; len];
    paced_read(s, &mut payload, rate, started, total)?;
    Ok((h[0] & 0x80 != 0, h[0] & 0x0f, payload))
}

/// A reader that keeps up a reasonable pace (1 MB/s, far above `min_send_rate`) receives a
/// message much larger than `max_outbound_buffer`, and its pings are answered meanwhile: the
/// drain-rate rule and the slow-consumer cap both leave it alone.
#[test]
fn a_steady_reader_receives_a_large_message_and_its_pongs_while_it_drains() {
    let server = ServerProcess::start(&["--cores", "1", "--write-stall-timeout", "2s"]);
    let admin = server.admin.expect("admin listener");
    const LEN: usize = 8 * MIB;
    let mut s = echo_requester(server.addr, LEN);
    let started = Instant::now();
    let (mut total, mut message, mut pongs, mut pings) = (0, Vec::new(), 0, 0);
    let mut next_ping = Duration::from_secs(1);
    while message.len() < LEN {
        if started.elapsed() >= next_ping {
            s.write_all(&client_frame(true, 0x9, b"still here"))
                .unwrap();
            pings += 1;
            next_ping += Duration::from_secs(1);
        }
        let (fin, op, payload) = paced_frame(&mut s, 1 << 20, started, &mut total)
            .unwrap_or_else(|e| panic!("cut off after {} of {LEN} bytes: {e}", message.len()));
        match op {
            0x2 | 0x0 => message.extend_from_slice(&payload),
            0xA => pongs += 1,
            other => panic!("unexpected opcode {other:#x} (fin {fin})"),
        }
    }
    assert!(message.iter().all(|&b| b == 5), "the echo is the message");
    assert!(pings >= 5, "the transfer lasted {:?}", started.elapsed());
    // Pongs came during the transfer, between fragments (a pong still waiting is replaced by
    // the answer to a newer ping, as RFC 6455 §5.5.3 allows, so there may be fewer).
    assert!(
        pongs >= 2,
        "{pongs} pongs for {pings} pings during the transfer"
    );
    // And with nothing queued, a ping is answered at once.
    s.write_all(&client_frame(true, 0x9, b"last")).unwrap();
    loop {
        let (_, op, payload) = read_frame(&mut s);
        if op == 0xA && payload == b"last" {
            break;
        }
        assert_eq!(op, 0xA, "only pongs are left to read");
    }
    assert_eq!(metric_sum(admin, "ringws_write_stall_closes_total"), 0.0);
    assert_eq!(metric_sum(admin, "ringws_slow_consumer_closes_total"), 0.0);
}

/// A reader that takes its data in bursts averaging below `min_send_rate` is dropped by the
/// drain-rate rule, though its queue keeps moving.
#[test]
fn a_reader_below_min_send_rate_is_dropped_though_its_queue_moves() {
    let server = ServerProcess::start(&["--cores", "1", "--write-stall-timeout", "2s"]);
    let admin = server.admin.expect("admin listener");
    let mut s = echo_requester(server.addr, 8 * MIB);
    // 64 KiB/s in 32 KiB bursts: half of the default 128 KiB/s.
    let started = Instant::now();
    let mut total = 0;
    let mut buf = vec![0u8; 32 << 10];
    let cut = loop {
        assert!(started.elapsed() < Duration::from_secs(15), "never dropped");
        if paced_read(&mut s, &mut buf, 64 << 10, started, &mut total).is_err() {
            break started.elapsed();
        }
    };
    wait_metric(admin, "ringws_write_stall_closes_total", |v| v >= 1.0);
    assert!(total > 64 << 10, "the queue moved: {total} bytes read");
    assert!(cut >= Duration::from_secs(1), "dropped after {cut:?}");
}
