//! `proxy_protocol` against the binary: a trusted load balancer's PROXY header (v1 and v2) names
//! the client the policy and the refusal records see; a header from an untrusted address, or
//! no header, gets the connection reset and counted; the setting refuses to start without
//! `trusted_proxies`.

mod common;

use std::io::Write;
use std::net::{Ipv4Addr, SocketAddr, SocketAddrV4, TcpStream};
use std::time::Duration;

use common::{
    admin_get, client_frame, closed_by_server, metric_sum, read_frame, read_response,
    upgrade_request, ServerProcess,
};

/// The load balancer's address in these tests (trusted); 127.0.0.1 is not.
const BALANCER: Ipv4Addr = Ipv4Addr::new(127, 0, 0, 2);

fn server() -> ServerProcess {
    ServerProcess::start(&[
        "--proxy-protocol",
        "on",
        "--trusted-proxies",
        "127.0.0.2/32",
        "--debug-handshakes",
        "on",
    ])
}

/// A connection from `source` to the server.
fn connect_from(source: Ipv4Addr, server: SocketAddr) -> TcpStream {
    let socket = socket2::Socket::new(socket2::Domain::IPV4, socket2::Type::STREAM, None).unwrap();
    socket
        .bind(&SocketAddr::V4(SocketAddrV4::new(source, 0)).into())
        .unwrap();
    socket.connect(&server.into()).unwrap();
    let stream: TcpStream = socket.into();
    stream
        .set_read_timeout(Some(Duration::from_secs(5)))
        .unwrap();
    stream
}

fn v1_header(client: &str, server: SocketAddr) -> String {
    format!(
        "PROXY TCP4 {client} {} 40000 {}\r\n",
        server.ip(),
        server.port()
    )
}

/// A v2 header (PROXY command, TCP over IPv4) naming `client`.
fn v2_header(client: Ipv4Addr, server: SocketAddr) -> Vec<u8> {
    let mut header = b"\r\n\r\n\0\r\nQUIT\n".to_vec();
    header.extend_from_slice(&[0x21, 0x11, 0, 12]);
    header.extend_from_slice(&client.octets());
    let SocketAddr::V4(server) = server else {
        unreachable!("the test server listens on IPv4")
    };
    header.extend_from_slice(&server.ip().octets());
    header.extend_from_slice(&40000u16.to_be_bytes());
    header.extend_from_slice(&server.port().to_be_bytes());
    header
}

#[test]
fn a_trusted_balancer_names_the_client_with_v1_and_v2_and_the_connection_works() {
    let server = server();
    // v1, then an upgrade and an echo.
    let mut ws = connect_from(BALANCER, server.addr);
    ws.write_all(v1_header("203.0.113.7", server.addr).as_bytes())
        .unwrap();
    ws.write_all(upgrade_request("/").as_bytes()).unwrap();
    assert_eq!(read_response(&mut ws).status, 101);
    ws.write_all(&client_frame(true, 1, b"through the balancer"))
        .unwrap();
    assert_eq!(read_frame(&mut ws).2, b"through the balancer");

    // v2, header and request in one write; a refused request is recorded under the client the
    // header named, not the balancer.
    let mut refused = connect_from(BALANCER, server.addr);
    let mut bytes = v2_header(Ipv4Addr::new(198, 51, 100, 9), server.addr);
    bytes.extend_from_slice(b"GET / HTTP/1.1\r\nHost: localhost\r\n\r\n");
    refused.write_all(&bytes).unwrap();
    assert_eq!(read_response(&mut refused).status, 426);

    let admin = server.admin.unwrap();
    let (_, ring) = admin_get(admin, "/debug/handshakes");
    assert!(ring.contains("198.51.100.9"), "{ring}");
    assert!(!ring.contains("127.0.0.2"), "{ring}");
    assert_eq!(
        metric_sum(admin, "ringws_proxy_protocol_headers_total"),
        2.0
    );
    assert_eq!(
        metric_sum(admin, "ringws_proxy_protocol_refusals_total"),
        0.0
    );
}

#[test]
fn an_untrusted_sender_and_a_missing_header_are_reset_and_counted() {
    let server = server();
    let admin = server.admin.unwrap();

    // A client claiming to be someone else, straight from an address not in trusted_proxies.
    // The server may reset the connection while the bytes are still going out: a failed write
    // is the refusal too.
    let mut spoofer = connect_from(Ipv4Addr::LOCALHOST, server.addr);
    let spoofed = v1_header("203.0.113.7", server.addr) + &upgrade_request("/");
    if spoofer.write_all(spoofed.as_bytes()).is_ok() {
        assert!(
            closed_by_server(&mut spoofer),
            "the spoofed header is refused"
        );
    }

    // The balancer forgot to send the header.
    let mut bare = connect_from(BALANCER, server.addr);
    if bare.write_all(upgrade_request("/").as_bytes()).is_ok() {
        assert!(
            closed_by_server(&mut bare),
            "a request without the header is refused"
        );
    }

    let refusals = |reason: &str| {
        let (_, text) = admin_get(admin, "/metrics");
        text.lines()
            .filter(|l| l.starts_with("ringws_proxy_protocol_refusals_total{"))
            .filter(|l| l.contains(&format!("reason=\"{reason}\"")))
            .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
            .sum::<f64>()
    };
    assert_eq!(refusals("untrusted"), 1.0);
    assert_eq!(refusals("missing"), 1.0);
    assert_eq!(metric_sum(admin, "ringws_handshakes_completed_total"), 0.0);
}

#[test]
fn proxy_protocol_without_trusted_proxies_is_refused_at_start() {
    common::refused_start(
        &["--listen", "127.0.0.1:0", "--proxy-protocol", "on"],
        &[],
        2,
        &["proxy_protocol needs trusted_proxies"],
    );
}
