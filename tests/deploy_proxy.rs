//! deploy/nginx/ringws.conf and deploy/haproxy/ringws.cfg with a real ringws behind them: a
//! WebSocket echo session through each proxy, and ringws' refusal when a proxy strips the
//! upgrade headers.
//!
//! Needs the `nginx` and `haproxy` binaries (Debian: `apt-get install nginx haproxy`); without
//! them the test fails, unless RINGWS_SKIP_PROXY_TESTS=1.

mod common;

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::{Duration, Instant};

use common::proxy::{
    deploy_nginx, free_port, start_haproxy, start_haproxy_nodes, strip_upgrade_headers, tools,
    Proxy, Scratch,
};
use common::{client_frame, read_frame, read_response, upgrade_request, ServerProcess, ACCEPT};

/// Bound on every read from a proxy.
const READ_TIMEOUT: Duration = Duration::from_secs(5);

/// Both proxies, or None when the run asked to skip; panics with install advice otherwise.
fn proxies() -> Option<[std::path::PathBuf; 2]> {
    tools(["nginx", "haproxy"], "the deploy/ proxy configs")
}

fn connect(port: u16) -> TcpStream {
    let stream = TcpStream::connect(("127.0.0.1", port)).expect("connect to the proxy");
    stream.set_read_timeout(Some(READ_TIMEOUT)).unwrap();
    stream.set_write_timeout(Some(READ_TIMEOUT)).unwrap();
    stream
}

/// Upgrade through the proxy, send one masked text frame, read the echo, close.
fn echo_session(proxy: &Proxy, port: u16) {
    let mut stream = connect(port);
    stream.write_all(upgrade_request("/").as_bytes()).unwrap();
    let response = read_response(&mut stream);
    assert_eq!(
        response.status,
        101,
        "{}: {}\n{}",
        proxy.name,
        response.head,
        proxy.output()
    );
    assert_eq!(
        response.header("Sec-WebSocket-Accept").as_deref(),
        Some(ACCEPT)
    );
    let message = format!("hello through {}", proxy.name);
    stream
        .write_all(&client_frame(true, 0x1, message.as_bytes()))
        .unwrap();
    let (fin, opcode, payload) = read_frame(&mut stream);
    assert!(fin);
    assert_eq!(opcode, 0x1, "{}: expected a text frame", proxy.name);
    assert_eq!(payload, message.as_bytes(), "{}", proxy.name);
    stream
        .write_all(&client_frame(true, 0x8, &1000u16.to_be_bytes()))
        .unwrap();
    let (_, opcode, payload) = read_frame(&mut stream);
    assert_eq!(
        (opcode, payload.as_slice()),
        (0x8, &1000u16.to_be_bytes()[..])
    );
}

/// Reads an HTTP response (head and a Content-Length body) without waiting for the proxy to
/// close its keep-alive connection. Returns (status, body). Panics when no whole response arrives
/// within [`READ_TIMEOUT`]: a timeout never stands in for the end of a response.
fn read_refusal(stream: &mut TcpStream) -> (u16, String) {
    let mut buf = Vec::new();
    let mut chunk = [0u8; 4096];
    let deadline = Instant::now() + READ_TIMEOUT;
    loop {
        let ended = match stream.read(&mut chunk) {
            Ok(0) => true,
            Ok(n) => {
                buf.extend_from_slice(&chunk[..n]);
                false
            }
            Err(e) if common::is_reset(&e) => true,
            Err(e) if common::is_timeout(&e) => panic!(
                "no complete response within the read timeout ({:?}); received: {:?}",
                stream.read_timeout().ok().flatten(),
                String::from_utf8_lossy(&buf)
            ),
            Err(e) => panic!("reading the response failed: {e}"),
        };
        if let Some(response) = complete_response(&buf, ended) {
            return response;
        }
        let received = String::from_utf8_lossy(&buf);
        assert!(
            !ended,
            "the connection ended inside the response: {received:?}"
        );
        assert!(
            Instant::now() < deadline,
            "no complete response within {READ_TIMEOUT:?}; received: {received:?}"
        );
    }
}

/// (status, body) once `buf` holds a whole response: the head and its Content-Length body, or,
/// without a Content-Length, everything up to the end of the connection (`ended`).
fn complete_response(buf: &[u8], ended: bool) -> Option<(u16, String)> {
    let end = buf.windows(4).position(|w| w == b"\r\n\r\n")?;
    let head = String::from_utf8_lossy(&buf[..end]);
    let length = head.lines().find_map(|line| {
        let (name, value) = line.split_once(':')?;
        name.eq_ignore_ascii_case("content-length")
            .then(|| value.trim().parse::<usize>().ok())?
    });
    let body_start = end + 4;
    let body_end = match length {
        Some(n) => body_start + n,
        None if ended => buf.len(),
        None => return None,
    };
    if buf.len() < body_end {
        return None;
    }
    let status = head
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| panic!("not an HTTP response: {head:?}"));
    Some((
        status,
        String::from_utf8_lossy(&buf[body_start..body_end]).into_owned(),
    ))
}

/// read_refusal fails, rather than returning a truncated body, when the rest of the body never
/// comes (no proxy needed: a local listener sends half a response and stays silent).
#[test]
#[should_panic(expected = "no complete response within the read timeout")]
fn read_refusal_fails_when_the_body_never_completes() {
    let (mut stream, mut server_side) = common::local_pair(Some(Duration::from_millis(300)));
    server_side
        .write_all(b"HTTP/1.1 400 Bad Request\r\nContent-Length: 100\r\n\r\nmissing \"Upgrade")
        .unwrap();
    read_refusal(&mut stream);
}

/// A whole Content-Length response is returned at once, while the connection stays open.
#[test]
fn read_refusal_returns_a_whole_response_without_waiting_for_the_close() {
    let (mut stream, mut server_side) = common::local_pair(Some(READ_TIMEOUT));
    server_side
        .write_all(b"HTTP/1.1 426 Upgrade Required\r\nContent-Length: 5\r\n\r\nproxy")
        .unwrap();
    let started = Instant::now();
    assert_eq!(read_refusal(&mut stream), (426, "proxy".to_owned()));
    assert!(started.elapsed() < Duration::from_secs(1));
    drop(server_side);
}

#[test]
fn websocket_echo_through_nginx_and_haproxy() {
    let Some([nginx, haproxy]) = proxies() else {
        return;
    };
    let server = ServerProcess::start(&["--cores", "1"]);

    let (_scratch, port, proxy) = deploy_nginx(&nginx, "nginx", server.addr, |site| site);
    echo_session(&proxy, port);
    drop(proxy);

    let scratch = Scratch::new("haproxy");
    let port = free_port();
    let proxy = start_haproxy(&haproxy, &scratch, port, server.addr);
    echo_session(&proxy, port);
}

#[test]
fn nginx_without_upgrade_headers_gets_a_refusal_naming_the_proxy() {
    let Some([nginx, _]) = proxies() else {
        return;
    };
    let server = ServerProcess::start(&["--cores", "1"]);
    let (_scratch, port, proxy) = deploy_nginx(&nginx, "nginx-broken", server.addr, |site| {
        strip_upgrade_headers(&site)
    });
    let mut stream = connect(port);
    stream.write_all(upgrade_request("/").as_bytes()).unwrap();
    let (status, body) = read_refusal(&mut stream);
    assert!(
        status == 400 || status == 426,
        "expected ringws' refusal, got {status}: {body}\n{}",
        proxy.output()
    );
    assert!(
        body.contains("proxy") && body.contains("Upgrade"),
        "the reason must point at a proxy stripping the upgrade headers: {body}"
    );
}

/// Upgraded connections open on a node now.
fn open_on(node: &ServerProcess) -> f64 {
    common::metric_sum(node.admin.unwrap(), "ringws_connections_open")
}

/// Three ringws nodes behind the committed multi-node haproxy config: WebSocket connections
/// are balanced over all three; a node sent SIGTERM is taken out by its /readyz while its
/// listener still accepts (drain_delay), so it gets none of the new connections; its clients,
/// sent 1001, reconnect through haproxy and land on the other two.
#[test]
fn haproxy_balances_over_the_nodes_and_a_drained_node_gets_no_new_connections() {
    let Some([_, haproxy]) = proxies() else {
        return;
    };
    let drain_delay = Duration::from_secs(6);
    let args = [
        "--cores",
        "1",
        "--drain-delay",
        "6s",
        "--drain-timeout",
        "15s",
    ];
    let mut nodes: Vec<ServerProcess> = (0..3).map(|_| ServerProcess::start(&args)).collect();
    let scratch = Scratch::new("haproxy-nodes");
    let port = free_port();
    let addrs: Vec<_> = nodes.iter().map(|n| (n.addr, n.admin.unwrap())).collect();
    let proxy = start_haproxy_nodes(&haproxy, &scratch, port, &addrs);
    let through_proxy = || {
        let mut s = connect(port);
        s.write_all(upgrade_request("/").as_bytes()).unwrap();
        let r = read_response(&mut s);
        assert_eq!(r.status, 101, "{}\n{}", r.head, proxy.output());
        s
    };

    let first: Vec<TcpStream> = (0..30).map(|_| through_proxy()).collect();
    let open: Vec<f64> = nodes.iter().map(open_on).collect();
    assert_eq!(open.iter().sum::<f64>(), 30.0, "{open:?}");
    assert!(
        open.iter().all(|&n| (5.0..=15.0).contains(&n)),
        "not balanced over the three nodes: {open:?}"
    );

    let drained = &nodes[0];
    let accepted_before =
        common::metric_sum(drained.admin.unwrap(), "ringws_connections_accepted_total");
    let signalled = Instant::now();
    drained.signal(libc::SIGTERM);
    while !proxy.output().contains("ringws1 is DOWN") {
        assert!(
            signalled.elapsed() < Duration::from_secs(5),
            "haproxy did not take the draining node out within 5 s:\n{}",
            proxy.output()
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    let second: Vec<TcpStream> = (0..20).map(|_| through_proxy()).collect();
    assert!(
        signalled.elapsed() < drain_delay,
        "the check took longer than drain_delay: {:?}",
        signalled.elapsed()
    );
    let accepted_after =
        common::metric_sum(drained.admin.unwrap(), "ringws_connections_accepted_total");
    assert_eq!(
        accepted_after, accepted_before,
        "the draining node was sent new connections while its listener still accepted"
    );

    // The drained node's clients get their 1001 once drain_delay has passed, and reconnect
    // through haproxy: every one lands on the other two nodes.
    let on_drained = open[0] as usize;
    let mut waiting: Vec<TcpStream> = first;
    let mut reconnected = Vec::new();
    while reconnected.len() < on_drained {
        assert!(
            signalled.elapsed() < Duration::from_secs(14),
            "{} of the drained node's {on_drained} clients got their 1001",
            reconnected.len()
        );
        let mut still = Vec::new();
        for mut s in waiting {
            s.set_nonblocking(true).unwrap();
            let mut byte = [0u8; 1];
            match s.peek(&mut byte) {
                Ok(n) => {
                    assert!(n > 0, "a client's tunnel ended without a close frame");
                    s.set_nonblocking(false).unwrap();
                    assert_eq!(common::read_close(&mut s), Some(1001));
                    assert!(
                        signalled.elapsed() >= drain_delay,
                        "a 1001 before drain_delay"
                    );
                    s.write_all(&client_frame(true, 0x8, &1001u16.to_be_bytes()))
                        .unwrap();
                    reconnected.push(through_proxy());
                }
                Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => still.push(s),
                Err(e) => panic!("a client lost its connection: {e}"),
            }
        }
        waiting = still;
        std::thread::sleep(Duration::from_millis(20));
    }
    assert_eq!(nodes[0].wait_exit(Duration::from_secs(20)), Some(0));
    let rest: f64 = nodes[1..].iter().map(open_on).sum();
    assert_eq!(
        rest, 50.0,
        "30 first + 20 new connections should be open on the two remaining nodes"
    );
    drop((waiting, second, reconnected));
    nodes.clear();
}
