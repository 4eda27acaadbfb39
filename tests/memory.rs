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
