//! The admin listener and Prometheus metrics against the real binary: values match the traffic
//! the test generates.

mod common;
use common::*;
use std::io::Write;

/// The value of the series whose line starts with `series ` in a Prometheus exposition.
fn value(text: &str, series: &str) -> f64 {
    text.lines()
        .find_map(|l| {
            l.strip_prefix(series)
                .and_then(|rest| rest.strip_prefix(' '))
        })
        .unwrap_or_else(|| panic!("no series {series} in:\n{text}"))
        .trim()
        .parse()
        .unwrap()
}

fn sum(text: &str, prefix: &str) -> f64 {
    text.lines()
        .filter(|l| l.starts_with(prefix) && !l.starts_with('#'))
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .sum()
}

#[test]
fn metrics_follow_the_traffic() {
    let server = ServerProcess::start(&["--cores", "2", "--max-connections", "1000"]);
    let admin = server.admin.expect("admin listener address");
    let (status, body) = admin_get(admin, "/healthz");
    assert_eq!((status, body.as_str()), (200, "ok\n"));

    let mut clients: Vec<_> = (0..6).map(|_| ws_connect(server.addr)).collect();
    for (i, c) in clients.iter_mut().enumerate() {
        for _ in 0..=i {
            c.write_all(&client_frame(true, 0x1, b"hello")).unwrap();
            assert_eq!(read_frame(c).2, b"hello");
        }
    }
    c_close(&mut clients[0]);
    let r = exchange(server.addr, b"GET / HTTP/1.1\r\nHost: x\r\n\r\n");
    assert_eq!(r.status, 426);
    std::thread::sleep(std::time::Duration::from_millis(100));

    let (status, text) = admin_get(admin, "/metrics");
    assert_eq!(status, 200);
    assert_eq!(sum(&text, "ringws_connections_open{"), 5.0);
    assert_eq!(sum(&text, "ringws_handshakes_completed_total{"), 6.0);
    assert_eq!(
        sum(
            &text,
            "ringws_messages_received_total{core=\"0\",type=\"text\"}"
        ) + sum(
            &text,
            "ringws_messages_received_total{core=\"1\",type=\"text\"}"
        ),
        21.0
    );
    assert_eq!(
        sum(
            &text,
            "ringws_sent_payload_bytes_total{core=\"0\",type=\"text\"}"
        ) + sum(
            &text,
            "ringws_sent_payload_bytes_total{core=\"1\",type=\"text\"}"
        ),
        105.0
    );
    assert_eq!(
        sum(
            &text,
            "ringws_handshakes_refused_total{core=\"0\",reason=\"not_an_upgrade\"}"
        ) + sum(
            &text,
            "ringws_handshakes_refused_total{core=\"1\",reason=\"not_an_upgrade\"}"
        ),
        1.0
    );
    assert_eq!(
        sum(
            &text,
            "ringws_connections_closed_total{core=\"0\",initiator=\"peer\",code=\"1000\"}"
        ) + sum(
            &text,
            "ringws_connections_closed_total{core=\"1\",initiator=\"peer\",code=\"1000\"}"
        ),
        1.0
    );
    assert_eq!(sum(&text, "ringws_handshake_duration_seconds_count{"), 6.0);
    assert_eq!(value(&text, "ringws_max_connections"), 1000.0);
    assert_eq!(value(&text, "ringws_cores"), 2.0);
    assert!(value(&text, "ringws_process_open_fds") >= 7.0);
    assert!(value(&text, "ringws_process_resident_memory_bytes") > 0.0);
    assert!(
        text.contains("ringws_build_info{version=\"") && text.contains(",commit=\""),
        "{text}"
    );
    assert!(sum(&text, "ringws_io_uring_completions_total{") > 0.0);

    assert_eq!(admin_get(admin, "/nope").0, 404);
    let mut s = connect(admin);
    s.write_all(b"POST /metrics HTTP/1.1\r\nContent-Length: 0\r\n\r\n")
        .unwrap();
    assert_eq!(read_response(&mut s).status, 405);
}

fn c_close(s: &mut std::net::TcpStream) {
    s.write_all(&client_frame(true, 0x8, &1000u16.to_be_bytes()))
        .unwrap();
    assert_eq!(read_close(s), Some(1000));
    assert!(closed_by_server(s));
}

#[test]
fn healthz_says_draining_during_shutdown() {
    let mut server = ServerProcess::start(&[
        "--cores",
        "1",
        "--drain-timeout",
        "3s",
        "--close-timeout",
        "3s",
    ]);
    let admin = server.admin.unwrap();
    let mut c = ws_connect(server.addr); // keeps the drain going: it never answers the 1001
    server.signal(libc::SIGTERM);
    assert_eq!(read_close(&mut c), Some(1001));
    let (status, body) = admin_get(admin, "/healthz");
    assert_eq!(status, 503, "{body}");
    assert!(body.contains("draining"));
    assert_eq!(
        server.wait_exit(std::time::Duration::from_secs(10)),
        Some(0)
    );
}

#[test]
fn admin_listen_off_and_a_taken_admin_port_are_reported() {
    let server = ServerProcess::start(&["--cores", "1", "--admin-listen", "off"]);
    assert!(server.admin.is_none());
    drop(server);
    // A port held by another program (no SO_REUSEPORT) fails the start, naming the address.
    let holder = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let taken = holder.local_addr().unwrap().to_string();
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_ringws"))
        .args([
            "serve",
            "--listen",
            "127.0.0.1:0",
            "--cores",
            "1",
            "--admin-listen",
            &taken,
        ])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains(&taken) && err.contains("already in use"),
        "{err}"
    );
}

#[test]
fn handshakes_cost_no_memory_when_nobody_scrapes() {
    // The handshake-duration histogram is recorded at every upgrade; its memory must not
    // depend on how many there were (a sample store drained only by scrapes grew ~16 B each).
    let server = ServerProcess::start(&["--cores", "1"]);
    let handshake = || {
        let mut s = connect(server.addr);
        s.write_all(upgrade_request("/").as_bytes()).unwrap();
        assert_eq!(read_response(&mut s).status, 101);
    };
    for _ in 0..3_000 {
        handshake();
    }
    let before = server.rss_bytes();
    let started = std::time::Instant::now();
    for _ in 0..15_000 {
        handshake();
    }
    let grown = server.rss_bytes().saturating_sub(before);
    eprintln!(
        "15,000 handshakes in {:?}, RSS grew {grown} B",
        started.elapsed()
    );
    assert!(
        grown < 64 * 1024,
        "RSS grew {grown} B over 15,000 handshakes with no scrape"
    );
}
