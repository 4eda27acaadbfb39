//! `ringws bench` over wss://: against ringws's own wss listener, and through a small TLS relay
//! (rustls, blocking threads) in front of a plain ringws: echo and connect with and without
//! session resumption, and each TLS failure counted under its cause (unknown issuer, name
//! mismatch, expired certificate, a plain port).
//!
//! The certificates come from benches/tls-certs.sh, which needs `bash` and `openssl` (Debian:
//! `apt-get install openssl`); without openssl the tests fail, unless RINGWS_SKIP_PROXY_TESTS=1.

mod common;

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use ringws::bench::{run_connect, run_echo, CommonOptions, ConnectOptions, EchoOptions, Report};
use rustls::ServerConnection;

use common::proxy::{free_port, Scratch};
use common::ServerProcess;

/// Test certificates in a scratch directory (see benches/tls-certs.sh for the files).
fn certificates(name: &str) -> Option<Scratch> {
    common::tls::certificates(name, false, "`ringws bench` over wss://")
}

/// Accepts TLS with `cert` on an ephemeral port and relays each connection's plaintext to
/// `backend` and back, one thread per direction.
fn start_relay(dir: &Path, cert: &str, backend: SocketAddr) -> SocketAddr {
    let mut config = common::tls::server_config(dir, cert);
    config.ticketer = rustls::crypto::ring::Ticketer::new().unwrap();
    let config = Arc::new(config);
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    std::thread::spawn(move || {
        for client in listener.incoming() {
            let (Ok(client), Ok(server)) = (client, TcpStream::connect(backend)) else {
                continue;
            };
            let tls = Arc::new(Mutex::new(ServerConnection::new(config.clone()).unwrap()));
            let (client2, server2, tls2) = (
                client.try_clone().unwrap(),
                server.try_clone().unwrap(),
                tls.clone(),
            );
            std::thread::spawn(move || relay_in(client, server, &tls));
            std::thread::spawn(move || relay_out(server2, client2, &tls2));
        }
    });
    addr
}

/// Client records in, plaintext to the backend; handshake records back to the client.
fn relay_in(mut client: TcpStream, mut server: TcpStream, tls: &Mutex<ServerConnection>) {
    let mut buf = vec![0u8; 64 * 1024];
    let mut plain = vec![0u8; 64 * 1024];
    while let Ok(n @ 1..) = client.read(&mut buf) {
        let mut tls = tls.lock().unwrap();
        let mut data = &buf[..n];
        while !data.is_empty() {
            if tls.read_tls(&mut data).is_err() || tls.process_new_packets().is_err() {
                let _ = tls.write_tls(&mut client);
                let _ = client.shutdown(std::net::Shutdown::Both);
                return;
            }
            while let Ok(m @ 1..) = tls.reader().read(&mut plain) {
                if server.write_all(&plain[..m]).is_err() {
                    return;
                }
            }
        }
        while tls.wants_write() && tls.write_tls(&mut client).is_ok() {}
    }
    let _ = server.shutdown(std::net::Shutdown::Write);
}

/// Backend plaintext out as records to the client; the backend's close closes the client.
fn relay_out(mut server: TcpStream, mut client: TcpStream, tls: &Mutex<ServerConnection>) {
    let mut buf = vec![0u8; 64 * 1024];
    while let Ok(n @ 1..) = server.read(&mut buf) {
        let mut tls = tls.lock().unwrap();
        if tls.writer().write_all(&buf[..n]).is_err() {
            break;
        }
        while tls.wants_write() && tls.write_tls(&mut client).is_ok() {}
    }
    let _ = client.shutdown(std::net::Shutdown::Both);
}

fn common(url: String, ca: Option<&Path>) -> CommonOptions {
    let mut common = CommonOptions::new(url);
    common.timeout = Duration::from_secs(5);
    common.tls.ca_file = ca.map(Path::to_path_buf);
    common
}

/// Connect mode for long enough that handshakes of the debug build on a loaded machine (a full
/// one takes tens of milliseconds there) are counted.
fn connect(url: String, ca: Option<&Path>, resume: bool) -> Report {
    connect_for(url, ca, resume, Duration::from_secs(2))
}

/// Connect mode for `duration` after a warm-up of a quarter of it. Failing handshakes churn
/// fast, each through two relay threads, so those runs stay short.
fn connect_for(url: String, ca: Option<&Path>, resume: bool, duration: Duration) -> Report {
    let mut common = common(url, ca);
    common.concurrency = 4;
    common.tls.resume = resume;
    run_connect(&ConnectOptions {
        common,
        warmup: duration / 4,
        duration,
    })
    .unwrap()
}

/// Echo, then connect with resumption (every handshake after the warm-up resumes), then
/// without (none does): all without an error.
fn echo_and_connect(url: String, ca: &Path, payload_bytes: usize) {
    let echo = run_echo(&EchoOptions {
        common: common(url.clone(), Some(ca)),
        conns: 4,
        payload_bytes,
        text: false,
        warmup: Duration::from_millis(100),
        duration: Duration::from_millis(500),
        rate: None,
        message: None,
    })
    .unwrap();
    assert_eq!(echo.errors_total, 0, "{:?}", echo.errors);
    assert!(echo.messages > 0);

    let resumed = connect(url.clone(), Some(ca), true);
    assert_eq!(resumed.errors_total, 0, "{:?}", resumed.errors);
    assert!(resumed.handshakes > 0);
    assert_eq!(
        resumed.tls_resumed,
        Some(resumed.handshakes),
        "after the warm-up, all resume"
    );

    let full = connect(url, Some(ca), false);
    assert_eq!(full.errors_total, 0, "{:?}", full.errors);
    assert!(full.handshakes > 0);
    assert_eq!(full.tls_resumed, Some(0));
}

#[test]
fn echo_and_connect_over_wss_resume_sessions_when_asked() {
    let Some(certs) = certificates("wss-ok") else {
        return;
    };
    let server = ServerProcess::start(&[]);
    let relay = start_relay(&certs.0, "server-chain.pem", server.addr);
    let ca = certs.0.join("ca.pem");
    let url = format!("wss://127.0.0.1:{}/", relay.port());

    echo_and_connect(url, &ca, 1024);
}

#[test]
fn tls_failures_are_counted_by_cause() {
    let Some(certs) = certificates("wss-bad") else {
        return;
    };
    let server = ServerProcess::start(&[]);
    let ca = certs.0.join("ca.pem");
    let cases = [
        ("wrong-name.pem", Some(&ca), "tls:name_mismatch"),
        ("expired.pem", Some(&ca), "tls:expired"),
        ("self-signed.pem", Some(&ca), "tls:unknown_issuer"),
        // The system's roots do not know the test CA.
        ("server-chain.pem", None, "tls:unknown_issuer"),
    ];
    for (cert, ca, cause) in cases {
        let relay = start_relay(&certs.0, cert, server.addr);
        let report = connect_for(
            format!("wss://localhost:{}/", relay.port()),
            ca.map(|p| p.as_path()),
            true,
            Duration::from_millis(400),
        );
        assert_eq!(report.handshakes, 0, "{cert}");
        assert!(
            report.errors.get(cause).copied().unwrap_or(0) > 0,
            "{cert}: {:?}",
            report.errors
        );
        assert_eq!(report.errors.len(), 1, "{cert}: {:?}", report.errors);
    }
    let plain = connect_for(
        format!("wss://127.0.0.1:{}/", server.addr.port()),
        Some(&ca),
        true,
        Duration::from_millis(400),
    );
    assert!(
        plain.errors.contains_key("tls:not_tls"),
        "{:?}",
        plain.errors
    );
}

#[test]
fn echo_and_connect_against_ringws_serving_wss() {
    let Some(certs) = certificates("wss-ringws") else {
        return;
    };
    let port = free_port();
    let tls_listen = format!("127.0.0.1:{port}");
    let chain = certs.0.join("server-chain.pem");
    let key = certs.0.join("server.key");
    let _server = ServerProcess::start(&[
        "--tls-listen",
        &tls_listen,
        "--tls-cert",
        chain.to_str().unwrap(),
        "--tls-key",
        key.to_str().unwrap(),
    ]);
    for _ in 0..100 {
        if TcpStream::connect(&tls_listen).is_ok() {
            break;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    let ca = certs.0.join("ca.pem");
    let url = format!("wss://localhost:{port}/");
    echo_and_connect(url, &ca, 16 * 1024);
}
