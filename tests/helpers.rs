//! Self-tests of the helpers in tests/common that other tests rely on to prove the server closed
//! a connection: each against a local listener that behaves in one known way, no ringws needed.

mod common;
use common::{closed_by_server, local_pair, read_response};
use std::io::Write;
use std::time::{Duration, Instant};

#[test]
#[should_panic(expected = "the server did not close the connection within 0.3 s")]
fn closed_by_server_fails_when_the_peer_stays_silent() {
    let (mut client, _server) = local_pair(Some(Duration::from_millis(300)));
    closed_by_server(&mut client);
}

#[test]
#[should_panic(expected = "needs a read timeout")]
fn closed_by_server_refuses_an_unbounded_wait() {
    let (mut client, _server) = local_pair(None);
    closed_by_server(&mut client);
}

#[test]
fn closed_by_server_sees_a_close_at_once() {
    let (mut client, server) = local_pair(Some(Duration::from_secs(5)));
    let started = Instant::now();
    drop(server);
    assert!(closed_by_server(&mut client));
    assert!(started.elapsed() < Duration::from_secs(1));
}

#[test]
fn closed_by_server_counts_a_reset_as_closed() {
    let (mut client, server) = local_pair(Some(Duration::from_secs(5)));
    // SO_LINGER 0: close(2) sends RST instead of FIN.
    socket2::SockRef::from(&server)
        .set_linger(Some(Duration::ZERO))
        .unwrap();
    drop(server);
    assert!(closed_by_server(&mut client));
}

#[test]
fn closed_by_server_is_false_when_bytes_arrive() {
    let (mut client, mut server) = local_pair(Some(Duration::from_secs(5)));
    server.write_all(b"\x89\x00").unwrap();
    assert!(!closed_by_server(&mut client));
}

#[test]
#[should_panic(expected = "answered 403 but did not close the connection")]
fn read_response_fails_when_the_server_keeps_the_connection_open() {
    let (mut client, mut server) = local_pair(Some(Duration::from_millis(300)));
    server
        .write_all(b"HTTP/1.1 403 Forbidden\r\nConnection: close\r\n\r\norigin not allowed\n")
        .unwrap();
    read_response(&mut client);
}

#[test]
fn read_response_reads_the_body_up_to_the_close() {
    let (mut client, mut server) = local_pair(Some(Duration::from_secs(5)));
    server
        .write_all(b"HTTP/1.1 403 Forbidden\r\nConnection: close\r\n\r\norigin not allowed\n")
        .unwrap();
    drop(server);
    let response = read_response(&mut client);
    assert_eq!(response.status, 403);
    assert_eq!(response.header("connection").as_deref(), Some("close"));
    assert_eq!(response.body, "origin not allowed\n");
}
