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

/// During the drain the process still holds its connections: `/healthz` (liveness) stays 200
/// and says it is draining, `/readyz` (routing) answers 503 with the reason.
#[test]
fn healthz_stays_200_and_readyz_says_draining_during_shutdown() {
    let mut server = ServerProcess::start(&[
        "--cores",
        "1",
        "--drain-timeout",
        "3s",
        "--close-timeout",
        "3s",
    ]);
    let admin = server.admin.unwrap();
    assert_eq!(admin_get(admin, "/readyz"), (200, "ready\n".to_owned()));
    let mut c = ws_connect(server.addr); // keeps the drain going: it never answers the 1001
    server.signal(libc::SIGTERM);
    assert_eq!(read_close(&mut c), Some(1001));
    let (status, body) = admin_get(admin, "/healthz");
    assert_eq!(status, 200, "{body}");
    assert!(body.contains("draining"), "{body}");
    let (status, body) = admin_get(admin, "/readyz");
    assert_eq!(status, 503, "{body}");
    assert!(body.contains("draining"), "{body}");
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
    // A port held by another program fails the start, naming the address, its holder and the
    // setting to change: --admin-listen, not --listen.
    let holder = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let taken = holder.local_addr().unwrap().to_string();
    let message = refused_start(
        &[
            "--listen",
            "127.0.0.1:0",
            "--cores",
            "1",
            "--admin-listen",
            &taken,
        ],
        &[],
        1,
        &[
            &format!(
                "--admin-listen {taken} is already in use by pid {}",
                std::process::id()
            ),
            "choose another --admin-listen",
        ],
    );
    assert!(!message.contains("--listen "), "{message}");
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

/// The routes the start banner lists for the running app, each answered (not 404) by the admin
/// listener: `{topic}` stands for a topic name.
fn banner_routes(server: &ServerProcess) -> Vec<(String, String)> {
    let banner = server.admin_banner.as_deref().expect("an admin banner");
    let listed = banner
        .split_once(" (")
        .and_then(|(_, rest)| rest.strip_suffix(')'))
        .unwrap_or_else(|| panic!("no route list in {banner:?}"));
    let routes: Vec<(String, String)> = listed
        .split(", ")
        .map(|route| {
            let (method, path) = route.split_once(' ').expect("METHOD /path");
            (method.to_owned(), path.replace("{topic}", "news"))
        })
        .collect();
    let admin = server.admin.unwrap();
    for (method, path) in &routes {
        let body = if method == "POST" {
            "Content-Type: text/plain\r\nContent-Length: 2\r\n\r\nhi"
        } else {
            "\r\n"
        };
        let mut s = connect(admin);
        write!(s, "{method} {path} HTTP/1.1\r\nHost: x\r\n{body}").unwrap();
        let r = read_response(&mut s);
        assert!(
            (200..300).contains(&r.status),
            "{method} {path}, listed in {banner:?}: {} {}",
            r.status,
            r.body
        );
    }
    routes
}

#[test]
fn the_admin_banner_lists_every_route_the_app_serves() {
    let pubsub = ServerProcess::start(&[
        "--cores",
        "1",
        "--app",
        "pubsub",
        "--debug-handshakes",
        "on",
    ]);
    let listed: Vec<String> = banner_routes(&pubsub)
        .into_iter()
        .map(|(method, path)| format!("{method} {path}"))
        .collect();
    for route in [
        "GET /metrics",
        "GET /healthz",
        "GET /readyz",
        "GET /debug/handshakes",
        "POST /publish/news",
        "GET /topics",
        "GET /topics/news",
    ] {
        assert!(
            listed.iter().any(|r| r == route),
            "{route} not in {listed:?}"
        );
    }
    // An unknown path's 404 names them too.
    let (status, body) = admin_get(pubsub.admin.unwrap(), "/nope");
    assert_eq!(status, 404);
    assert!(
        body.contains("POST /publish/{topic}") && body.contains("GET /topics"),
        "{body}"
    );

    // The echo app has no routes of its own, and the debug view is off by default.
    let echo = ServerProcess::start(&["--cores", "1"]);
    let listed = banner_routes(&echo);
    assert_eq!(
        listed,
        [
            ("GET".to_owned(), "/metrics".to_owned()),
            ("GET".to_owned(), "/healthz".to_owned()),
            ("GET".to_owned(), "/readyz".to_owned())
        ]
    );
}
