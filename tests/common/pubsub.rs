//! Pub/sub clients shared by the scale-out tests (one Redis, a Redis Cluster): subscribers by
//! URL topic, their text messages, and the check that nothing more arrives.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::Duration;

use super::{connect, is_timeout, read_frame, read_response, upgrade_request, ServerProcess};

/// Bound on every read of a subscriber (a Redis failover takes seconds).
pub const SUBSCRIBER_READ_TIMEOUT: Duration = Duration::from_secs(15);

/// A subscriber of `topic` on `addr` (`?topic=` in the URL).
pub fn subscriber(addr: SocketAddr, topic: &str) -> TcpStream {
    let mut s = connect(addr);
    s.write_all(upgrade_request(&format!("/ws?topic={topic}")).as_bytes())
        .unwrap();
    let r = read_response(&mut s);
    assert_eq!(r.status, 101, "{}", r.head);
    s.set_read_timeout(Some(SUBSCRIBER_READ_TIMEOUT)).unwrap();
    s
}

/// The next text message.
pub fn read_text(s: &mut TcpStream) -> String {
    let (fin, op, payload) = read_frame(s);
    assert!(fin && op == 0x1, "expected a text message, got {op:#x}");
    String::from_utf8(payload).unwrap()
}

/// True when nothing arrives within `wait` (a duplicate would).
pub fn nothing_more(s: &mut TcpStream, wait: Duration) -> bool {
    s.set_read_timeout(Some(wait)).unwrap();
    let mut b = [0u8; 1];
    let quiet = matches!(s.read(&mut b), Err(e) if is_timeout(&e));
    s.set_read_timeout(Some(SUBSCRIBER_READ_TIMEOUT)).unwrap();
    quiet
}

/// A subscriber with what it has received so far.
pub struct Sub {
    pub topic: &'static str,
    pub conn: TcpStream,
    pub got: Vec<String>,
}

/// Two subscribers of every one of `topics` on every node.
pub fn subscribe_everywhere(nodes: &[ServerProcess], topics: &[&'static str]) -> Vec<Sub> {
    let mut subs = Vec::new();
    for node in nodes {
        for &topic in topics {
            for _ in 0..2 {
                subs.push(Sub {
                    topic,
                    conn: subscriber(node.addr, topic),
                    got: Vec::new(),
                });
            }
        }
    }
    subs
}
