//! `ringws bench fanout-floor`: the floor `bench fanout` is compared with. It accepts the
//! subscribers with a plain 101 and writes each published message to every socket with a plain
//! loop of blocking `send(2)` calls, nothing else.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::os::fd::AsRawFd;
use std::sync::Arc;

use crate::protocol::handshake::{parse_request, write_accept, HandshakeLimits};
use crate::sys::socket::{self, IoResult};

#[derive(Debug, clap::Args)]
pub struct FloorArgs {
    /// Where subscribers connect.
    #[arg(long, default_value = "127.0.0.1:9001", value_name = "ADDR")]
    pub listen: SocketAddr,
    /// Where publishes are POSTed (and /topics asked).
    #[arg(long, default_value = "127.0.0.1:9090", value_name = "ADDR")]
    pub admin: SocketAddr,
    /// Pin the sending thread to this CPU (compare with the ringws core it stands for).
    #[arg(long, value_name = "CPU")]
    pub pin_cpu: Option<usize>,
}

/// The floor: accepts WebSocket clients with a plain 101 (on a helper thread), then on the
/// pinned main thread answers `GET /topics/..` with the number of clients and, for each
/// `POST /publish/..`, frames the body once and writes it to every client with a plain loop of
/// blocking `send(2)` calls. Runs until killed.
pub fn run_floor(a: &FloorArgs) -> i32 {
    match floor(a) {
        Ok(()) => 0,
        Err(e) => {
            eprintln!("ringws bench fanout-floor: error: {e}");
            2
        }
    }
}

fn floor(a: &FloorArgs) -> Result<(), String> {
    let ws = TcpListener::bind(a.listen).map_err(|e| format!("bind {}: {e}", a.listen))?;
    let admin = TcpListener::bind(a.admin).map_err(|e| format!("bind {}: {e}", a.admin))?;
    let clients: Arc<std::sync::Mutex<Vec<TcpStream>>> = Arc::default();
    let acc = clients.clone();
    std::thread::spawn(move || {
        for conn in ws.incoming() {
            let Ok(mut s) = conn else { continue };
            let _ = s.set_nodelay(true);
            let Ok(head) = read_request_head(&mut s) else {
                continue;
            };
            let Ok(Some(request)) = parse_request(&head, &HandshakeLimits::default()) else {
                continue;
            };
            let mut answer = Vec::new();
            write_accept(&mut answer, request.key, None);
            let _ = s.write_all(&answer);
            acc.lock().unwrap().push(s);
        }
    });
    if let Some(cpu) = a.pin_cpu {
        core_affinity::set_for_current(core_affinity::CoreId { id: cpu });
    }
    println!("fanout-floor on ws://{} and http://{}", a.listen, a.admin);
    let _ = std::io::stdout().flush();
    for conn in admin.incoming() {
        let Ok(mut s) = conn else { continue };
        let _ = s.set_nodelay(true);
        let Ok(head) = read_request_head(&mut s) else {
            continue;
        };
        let head = String::from_utf8_lossy(&head);
        let len: usize = head
            .lines()
            .find_map(|l| {
                let (k, v) = l.split_once(':')?;
                k.eq_ignore_ascii_case("content-length")
                    .then(|| v.trim().parse().ok())?
            })
            .unwrap_or(0);
        let mut body = vec![0u8; len];
        if s.read_exact(&mut body).is_err() {
            continue;
        }
        let clients = clients.lock().unwrap();
        if head.starts_with("POST /publish/") {
            let frame = crate::app::PreparedFrame::new(crate::protocol::MessageKind::Binary, &body);
            let bytes = frame.bytes();
            for c in clients.iter() {
                let fd = c.as_raw_fd();
                let mut off = 0;
                while off < bytes.len() {
                    match socket::send(fd, &bytes[off..]) {
                        IoResult::Done(n) => off += n,
                        _ => break,
                    }
                }
            }
        }
        let answer = format!("{{\"subscribers\":{}}}\n", clients.len());
        drop(clients);
        let _ = write!(
            s,
            "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{answer}",
            answer.len()
        );
    }
    Ok(())
}

/// The floor reads a request head byte by byte up to its end (nothing beyond it is consumed).
fn read_request_head(s: &mut TcpStream) -> Result<Vec<u8>, String> {
    let mut head = Vec::new();
    let mut b = [0u8; 1];
    while !head.ends_with(b"\r\n\r\n") {
        match s.read(&mut b) {
            Ok(1) => head.push(b[0]),
            Ok(_) => return Err("connection closed during the request".into()),
            Err(e) => return Err(format!("reading the request: {e}")),
        }
        if head.len() > 8192 {
            return Err("request head too large".into());
        }
    }
    Ok(head)
}
