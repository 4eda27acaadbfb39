//! Heap held by one rustls server session after a TLS 1.3 handshake and a 1 KiB message each
//! way, for the buffered `ServerConnection` and the unbuffered `UnbufferedServerConnection`
//! that ringws drives (docs/io-path.md). A counting allocator measures what dropping 1,000
//! server sessions gives back.
//!
//!     cargo run --release --manifest-path benches/tls-session-memory/Cargo.toml

use std::alloc::{GlobalAlloc, Layout, System};
use std::io::{Read, Write};
use std::sync::atomic::{AtomicIsize, Ordering};
use std::sync::Arc;

use rustls::server::UnbufferedServerConnection;
use rustls::unbuffered::ConnectionState;
use rustls::{ClientConnection, ServerConnection};

struct Counting;
static LIVE_BYTES: AtomicIsize = AtomicIsize::new(0);

// SAFETY: forwards to the system allocator, only counting sizes.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, l: Layout) -> *mut u8 {
        LIVE_BYTES.fetch_add(l.size() as isize, Ordering::Relaxed);
        System.alloc(l)
    }
    unsafe fn dealloc(&self, p: *mut u8, l: Layout) {
        LIVE_BYTES.fetch_sub(l.size() as isize, Ordering::Relaxed);
        System.dealloc(p, l)
    }
    unsafe fn realloc(&self, p: *mut u8, l: Layout, n: usize) -> *mut u8 {
        LIVE_BYTES.fetch_add(n as isize - l.size() as isize, Ordering::Relaxed);
        System.realloc(p, l, n)
    }
}

#[global_allocator]
static ALLOCATOR: Counting = Counting;

const SESSIONS: usize = 1000;
const MESSAGE: [u8; 1024] = [7; 1024];

fn configs() -> (Arc<rustls::ServerConfig>, Arc<rustls::ClientConfig>) {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let made = rcgen::generate_simple_self_signed(vec!["localhost".into()]).unwrap();
    let key = rustls::pki_types::PrivateKeyDer::Pkcs8(made.key_pair.serialize_der().into());
    let mut server = rustls::ServerConfig::builder_with_provider(provider.clone())
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_no_client_auth()
        .with_single_cert(vec![made.cert.der().clone()], key)
        .unwrap();
    // As ringws: stateless tickets, nothing kept per session on the server.
    server.session_storage = Arc::new(rustls::server::NoServerSessionStorage {});
    server.ticketer = rustls::crypto::ring::Ticketer::new().unwrap();
    server.send_tls13_tickets = 1;
    let mut roots = rustls::RootCertStore::empty();
    roots.add(made.cert.der().clone()).unwrap();
    let client = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_root_certificates(roots)
        .with_no_client_auth();
    (Arc::new(server), Arc::new(client))
}

fn client(config: &Arc<rustls::ClientConfig>) -> ClientConnection {
    ClientConnection::new(config.clone(), "localhost".try_into().unwrap()).unwrap()
}

fn to_server(client: &mut ClientConnection) -> Vec<u8> {
    let mut wire = Vec::new();
    while client.wants_write() {
        client.write_tls(&mut wire).unwrap();
    }
    wire
}

fn to_client(client: &mut ClientConnection, mut wire: &[u8]) {
    while !wire.is_empty() {
        client.read_tls(&mut wire).unwrap();
        client.process_new_packets().unwrap();
    }
}

fn buffered(server: &Arc<rustls::ServerConfig>, config: &Arc<rustls::ClientConfig>) -> ServerConnection {
    let mut c = client(config);
    let mut s = ServerConnection::new(server.clone()).unwrap();
    let mut sent_message = false;
    for _ in 0..10 {
        let wire = to_server(&mut c);
        let mut wire = wire.as_slice();
        while !wire.is_empty() {
            s.read_tls(&mut wire).unwrap();
            s.process_new_packets().unwrap();
        }
        let mut got = [0u8; 2048];
        if let Ok(n) = s.reader().read(&mut got) {
            assert_eq!(n, MESSAGE.len());
            s.writer().write_all(&MESSAGE).unwrap();
        }
        let mut back = Vec::new();
        while s.wants_write() {
            s.write_tls(&mut back).unwrap();
        }
        to_client(&mut c, &back);
        if !c.is_handshaking() && !sent_message {
            c.writer().write_all(&MESSAGE).unwrap();
            sent_message = true;
        }
    }
    let mut got = [0u8; 2048];
    assert_eq!(c.reader().read(&mut got).unwrap(), MESSAGE.len());
    s
}

fn unbuffered(
    server: &Arc<rustls::ServerConfig>,
    config: &Arc<rustls::ClientConfig>,
) -> UnbufferedServerConnection {
    let mut c = client(config);
    let mut s = UnbufferedServerConnection::new(server.clone()).unwrap();
    let (mut incoming, mut outgoing) = (vec![0u8; 65536], vec![0u8; 65536]);
    let (mut incoming_len, mut received, mut sent_message) = (0, 0, false);
    for _ in 0..10 {
        let wire = to_server(&mut c);
        incoming[incoming_len..incoming_len + wire.len()].copy_from_slice(&wire);
        incoming_len += wire.len();
        let mut back = Vec::new();
        loop {
            let status = s.process_tls_records(&mut incoming[..incoming_len]);
            let discard = status.discard;
            let mut blocked = false;
            match status.state.unwrap() {
                ConnectionState::ReadTraffic(mut traffic) => {
                    while let Some(record) = traffic.next_record() {
                        received += record.unwrap().payload.len();
                    }
                }
                ConnectionState::EncodeTlsData(mut data) => {
                    let n = data.encode(&mut outgoing).unwrap();
                    back.extend_from_slice(&outgoing[..n]);
                }
                ConnectionState::TransmitTlsData(transmit) => transmit.done(),
                ConnectionState::WriteTraffic(mut traffic) => {
                    if received == MESSAGE.len() {
                        let n = traffic.encrypt(&MESSAGE, &mut outgoing).unwrap();
                        back.extend_from_slice(&outgoing[..n]);
                        received = 0;
                    }
                    blocked = true;
                }
                ConnectionState::BlockedHandshake => blocked = true,
                other => panic!("unexpected {other:?}"),
            }
            incoming.copy_within(discard..incoming_len, 0);
            incoming_len -= discard;
            if blocked {
                break;
            }
        }
        to_client(&mut c, &back);
        if !c.is_handshaking() && !sent_message {
            c.writer().write_all(&MESSAGE).unwrap();
            sent_message = true;
        }
    }
    let mut got = [0u8; 2048];
    assert_eq!(c.reader().read(&mut got).unwrap(), MESSAGE.len());
    s
}

/// Heap given back by dropping `SESSIONS` sessions made by `make`, per session.
fn per_session<T>(mut make: impl FnMut() -> T) -> isize {
    let mut sessions = Vec::with_capacity(SESSIONS);
    for _ in 0..SESSIONS {
        sessions.push(Box::new(make()));
    }
    let with = LIVE_BYTES.load(Ordering::Relaxed);
    drop(sessions);
    let without = LIVE_BYTES.load(Ordering::Relaxed);
    // The Vec of boxes itself (8 B a session) is not the session's.
    (with - without) / SESSIONS as isize - 8
}

fn main() {
    let (server, client) = configs();
    println!(
        "rustls buffered ServerConnection:     {:>6} B per session (struct {} B)",
        per_session(|| buffered(&server, &client)),
        std::mem::size_of::<ServerConnection>()
    );
    println!(
        "rustls UnbufferedServerConnection:    {:>6} B per session (struct {} B)",
        per_session(|| unbuffered(&server, &client)),
        std::mem::size_of::<UnbufferedServerConnection>()
    );
}
