//! Shared helpers for integration tests: run the real `ringws` binary and talk to it over
//! loopback with a minimal client written independently of ringws' own codec.
#![allow(dead_code)]

pub mod auth;
pub mod clients;
pub mod doctor;
pub mod pki;
pub mod proxy;
pub mod pubsub;
pub mod redis;
pub mod tls;
pub mod wss;

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::Duration;

/// A running `ringws serve`; stopped with SIGTERM when dropped.
pub struct ServerProcess {
    pub child: Child,
    pub addr: SocketAddr,
    /// The admin listener (`/metrics`, `/healthz`), on an ephemeral port unless args say otherwise.
    pub admin: Option<SocketAddr>,
    /// The line announcing the admin listener and its routes, when it is on.
    pub admin_banner: Option<String>,
    /// The wss listener, when `--tls-listen` is on (the line after the ready line).
    pub tls: Option<SocketAddr>,
    stderr_rx: mpsc::Receiver<String>,
}

impl ServerProcess {
    /// Starts `ringws serve --listen 127.0.0.1:0 <args>` and waits for its ready line.
    pub fn start(args: &[&str]) -> ServerProcess {
        Self::start_with(&["--listen", "127.0.0.1:0"], args, None)
    }

    /// Starts `ringws serve <listen> <args>`, optionally with RLIMIT_NOFILE (soft and hard) set
    /// to `nofile`, and waits for its ready line.
    pub fn start_with(listen: &[&str], args: &[&str], nofile: Option<u64>) -> ServerProcess {
        let mut command = Command::new(env!("CARGO_BIN_EXE_ringws"));
        command.arg("serve").args(listen);
        if !args.contains(&"--admin-listen") {
            command.args(["--admin-listen", "127.0.0.1:0"]);
        }
        // Tests written for the echo app keep it now that pubsub is the default.
        if !args.contains(&"--app") {
            command.args(["--app", "echo"]);
        }
        command
            .args(args)
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        if let Some(limit) = nofile {
            limit_open_files(&mut command, limit);
        }
        let mut child = command.spawn().expect("start ringws");
        let stdout = child.stdout.take().unwrap();
        let stderr = child.stderr.take().unwrap();
        let (tx, stderr_rx) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        let (ready_tx, ready_rx) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                let _ = ready_tx.send(line);
            }
        });
        let line = ready_rx
            .recv_timeout(Duration::from_secs(10))
            .expect("ringws printed no ready line within 10 s");
        let addr = line
            .strip_prefix("ringws listening on ws://")
            .and_then(|rest| rest.split_whitespace().next())
            .unwrap_or_else(|| panic!("unexpected ready line: {line}"))
            .parse()
            .unwrap();
        // The admin line, then the wss line, follow the ready line when they are on.
        let wants_tls = args.contains(&"--tls-listen");
        let mut tls = None;
        let mut admin_banner = None;
        while let Ok(line) = ready_rx.recv_timeout(Duration::from_millis(500)) {
            if let Some(rest) = line.strip_prefix("ringws listening on wss://") {
                tls = rest.split_whitespace().next().and_then(|a| a.parse().ok());
            } else if line.starts_with("ringws admin on http://") {
                admin_banner = Some(line);
            } else {
                break;
            }
            if tls.is_some() || !wants_tls {
                break;
            }
        }
        let admin = admin_banner.as_deref().and_then(|l| {
            l.strip_prefix("ringws admin on http://")?
                .split_whitespace()
                .next()?
                .parse()
                .ok()
        });
        ServerProcess {
            child,
            addr,
            admin,
            admin_banner,
            tls,
            stderr_rx,
        }
    }

    /// Sends SIGTERM, waits for exit, returns (exit status code, everything it logged).
    pub fn stop(mut self) -> (Option<i32>, String) {
        self.signal(libc::SIGTERM);
        let status = wait_timeout(&mut self.child, Duration::from_secs(15));
        (status, self.drain_log())
    }

    pub fn signal(&self, sig: i32) {
        // SAFETY: kill(2) on our own child process has no memory effects.
        unsafe { libc::kill(self.child.id() as i32, sig) };
    }

    /// Waits up to `limit` for the process to exit by itself; returns its exit code.
    pub fn wait_exit(&mut self, limit: Duration) -> Option<i32> {
        wait_timeout(&mut self.child, limit)
    }

    /// Resident memory of the server, from /proc.
    pub fn rss_bytes(&self) -> u64 {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.child.id())).unwrap();
        let kb: u64 = status
            .lines()
            .find_map(|l| l.strip_prefix("VmRSS:"))
            .and_then(|v| v.split_whitespace().next())
            .and_then(|v| v.parse().ok())
            .expect("VmRSS in /proc/PID/status");
        kb * 1024
    }

    /// Everything logged so far (waits briefly for the last lines).
    pub fn drain_log(&self) -> String {
        let mut log = String::new();
        while let Ok(line) = self.stderr_rx.recv_timeout(Duration::from_millis(200)) {
            log.push_str(&line);
            log.push('\n');
        }
        log
    }
}

impl Drop for ServerProcess {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Makes `command` run with RLIMIT_NOFILE (soft and hard) set to `limit`.
pub fn limit_open_files(command: &mut Command, limit: u64) {
    use std::os::unix::process::CommandExt;
    // SAFETY: setrlimit is async-signal-safe; the closure touches no shared state.
    unsafe {
        command.pre_exec(move || {
            let lim = libc::rlimit {
                rlim_cur: limit,
                rlim_max: limit,
            };
            if libc::setrlimit(libc::RLIMIT_NOFILE, &lim) != 0 {
                return Err(std::io::Error::last_os_error());
            }
            Ok(())
        });
    }
}

/// Runs `ringws serve <args>` with `env` (and no RUST_LOG otherwise), which must be refused
/// within 10 s with exit code `code` and a message holding each of `needles`. Returns the
/// message (stderr).
#[track_caller]
pub fn refused_start(args: &[&str], env: &[(&str, &str)], code: i32, needles: &[&str]) -> String {
    let mut command = Command::new(env!("CARGO_BIN_EXE_ringws"));
    command.arg("serve").args(args).env_remove("RUST_LOG");
    command.envs(env.iter().copied());
    let out = output_within(&mut command, Duration::from_secs(10));
    let message = String::from_utf8_lossy(&out.stderr).into_owned();
    assert_eq!(out.status.code(), Some(code), "{args:?}: {message}");
    for needle in needles {
        assert!(
            message.contains(needle),
            "{needle:?} missing from: {message}"
        );
    }
    message
}

/// Runs `command` to its end with stdout and stderr captured. A command still running after
/// `limit` is killed and the test fails: a start that should have been refused is not a pass.
#[track_caller]
pub fn output_within(command: &mut Command, limit: Duration) -> std::process::Output {
    let mut child = command
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start the command");
    let read = |mut pipe: Box<dyn Read + Send>| {
        std::thread::spawn(move || {
            let mut bytes = Vec::new();
            let _ = pipe.read_to_end(&mut bytes);
            bytes
        })
    };
    let stdout = read(Box::new(child.stdout.take().unwrap()));
    let stderr = read(Box::new(child.stderr.take().unwrap()));
    let started = std::time::Instant::now();
    let status = loop {
        if let Some(status) = child.try_wait().expect("wait for the command") {
            break Some(status);
        }
        if started.elapsed() > limit {
            let _ = child.kill();
            let _ = child.wait();
            break None;
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    let (stdout, stderr) = (stdout.join().unwrap(), stderr.join().unwrap());
    let Some(status) = status else {
        panic!(
            "{command:?} was still running after {limit:?} (killed); stdout: {}; stderr: {}",
            String::from_utf8_lossy(&stdout),
            String::from_utf8_lossy(&stderr)
        );
    };
    std::process::Output {
        status,
        stdout,
        stderr,
    }
}

fn wait_timeout(child: &mut Child, limit: Duration) -> Option<i32> {
    let start = std::time::Instant::now();
    loop {
        if let Ok(Some(status)) = child.try_wait() {
            return status.code();
        }
        if start.elapsed() > limit {
            let _ = child.kill();
            return None;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

pub const KEY: &str = "dGhlIHNhbXBsZSBub25jZQ==";
pub const ACCEPT: &str = "s3pPLMBiTxaQ9kYGzzhZRbK+xOo=";

pub fn connect(addr: SocketAddr) -> TcpStream {
    let s = TcpStream::connect(addr).expect("connect");
    s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    s.set_nodelay(true).unwrap();
    s
}

/// A valid upgrade request for `path`.
pub fn upgrade_request(path: &str) -> String {
    format!(
        "GET {path} HTTP/1.1\r\nHost: localhost\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
         Sec-WebSocket-Key: {KEY}\r\nSec-WebSocket-Version: 13\r\n\r\n"
    )
}

/// Reads an HTTP response head and body (until the peer closes, or the head for a 101).
pub struct HttpResponse {
    pub status: u16,
    pub head: String,
    pub body: String,
}

impl HttpResponse {
    pub fn header(&self, name: &str) -> Option<String> {
        self.head.lines().skip(1).find_map(|l| {
            let (k, v) = l.split_once(':')?;
            k.trim()
                .eq_ignore_ascii_case(name)
                .then(|| v.trim().to_string())
        })
    }
}

pub fn read_response(s: &mut TcpStream) -> HttpResponse {
    let mut buf = Vec::new();
    let mut byte = [0u8; 1];
    while !buf.ends_with(b"\r\n\r\n") {
        match s.read(&mut byte) {
            Ok(1) => buf.push(byte[0]),
            other => panic!(
                "connection ended inside the response head ({other:?}): {:?}",
                String::from_utf8_lossy(&buf)
            ),
        }
    }
    let head = String::from_utf8(buf).unwrap();
    let status: u16 = head.split_whitespace().nth(1).unwrap().parse().unwrap();
    let mut body = String::new();
    if status != 101 {
        // The body ends where the server closes (every non-101 answer says Connection: close);
        // a read timeout means it never did, which is a failure, not the end of the body.
        let mut rest = Vec::new();
        if let Err(e) = s.read_to_end(&mut rest) {
            if is_timeout(&e) {
                panic!(
                    "the server answered {status} but did not close the connection within {:.1} s \
                     (the socket's read timeout); body so far: {:?}",
                    s.read_timeout()
                        .ok()
                        .flatten()
                        .unwrap_or_default()
                        .as_secs_f64(),
                    String::from_utf8_lossy(&rest)
                );
            }
            assert!(
                is_reset(&e),
                "reading the body of a {status} answer failed: {e}"
            );
        }
        body = String::from_utf8_lossy(&rest).into_owned();
    }
    HttpResponse { status, head, body }
}

/// Sends raw bytes as a request and reads the answer.
pub fn exchange(addr: SocketAddr, request: &[u8]) -> HttpResponse {
    let mut s = connect(addr);
    s.write_all(request).unwrap();
    read_response(&mut s)
}

/// Opens an upgraded connection.
pub fn ws_connect(addr: SocketAddr) -> TcpStream {
    let mut s = connect(addr);
    s.write_all(upgrade_request("/").as_bytes()).unwrap();
    let r = read_response(&mut s);
    assert_eq!(r.status, 101, "{}", r.head);
    s
}

/// A client frame, built by hand (independently of ringws' encoder).
pub fn client_frame(fin: bool, opcode: u8, payload: &[u8]) -> Vec<u8> {
    client_frame_raw(if fin { 0x80 } else { 0 } | opcode, true, payload)
}

/// `first` is the whole first byte (FIN, RSV, opcode); `masked` sets the MASK bit.
pub fn client_frame_raw(first: u8, masked: bool, payload: &[u8]) -> Vec<u8> {
    let mask = [0x37u8, 0xfa, 0x21, 0x3d];
    let mut f = vec![first];
    let m = if masked { 0x80 } else { 0 };
    match payload.len() {
        n if n < 126 => f.push(m | n as u8),
        n if n < 65536 => {
            f.push(m | 126);
            f.extend_from_slice(&(n as u16).to_be_bytes());
        }
        n => {
            f.push(m | 127);
            f.extend_from_slice(&(n as u64).to_be_bytes());
        }
    }
    if masked {
        f.extend_from_slice(&mask);
        f.extend(payload.iter().enumerate().map(|(i, b)| b ^ mask[i % 4]));
    } else {
        f.extend_from_slice(payload);
    }
    f
}

/// A server frame: (fin, opcode, payload).
pub fn read_frame(s: &mut impl Read) -> (bool, u8, Vec<u8>) {
    let mut h = [0u8; 2];
    s.read_exact(&mut h).expect("frame header");
    assert_eq!(h[1] & 0x80, 0, "server frames must not be masked");
    let len = match h[1] & 0x7f {
        126 => {
            let mut b = [0u8; 2];
            s.read_exact(&mut b).unwrap();
            u16::from_be_bytes(b) as usize
        }
        127 => {
            let mut b = [0u8; 8];
            s.read_exact(&mut b).unwrap();
            u64::from_be_bytes(b) as usize
        }
        n => n as usize,
    };
    let mut payload = vec![0u8; len];
    s.read_exact(&mut payload).unwrap();
    (h[0] & 0x80 != 0, h[0] & 0x0f, payload)
}

/// Reads a close frame and returns its code (None for an empty payload).
pub fn read_close(s: &mut TcpStream) -> Option<u16> {
    let (fin, op, payload) = read_frame(s);
    assert!(fin);
    assert_eq!(
        op, 0x8,
        "expected a close frame, got opcode {op:#x} with {payload:?}"
    );
    (payload.len() >= 2).then(|| u16::from_be_bytes([payload[0], payload[1]]))
}

/// True when the server has closed the TCP connection: the next read sees EOF or a reset. False
/// when bytes arrive instead.
///
/// The wait is bounded by the socket's read timeout, which must be set and must exceed the time
/// the server may take to close (a close timeout, say). Panics when that timeout passes first:
/// the server did not close, and a timeout is never taken for a close.
#[track_caller]
pub fn closed_by_server(s: &mut TcpStream) -> bool {
    let timeout = s
        .read_timeout()
        .unwrap()
        .expect("closed_by_server needs a read timeout on the socket to bound its wait");
    let mut b = [0u8; 64];
    loop {
        match s.read(&mut b) {
            Ok(0) => return true,
            Ok(_) => return false,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
            Err(e) if is_reset(&e) => return true,
            Err(e) if is_timeout(&e) => panic!(
                "the server did not close the connection within {:.1} s (the socket's read \
                 timeout)",
                timeout.as_secs_f64()
            ),
            Err(e) => panic!("reading while waiting for the server to close failed: {e}"),
        }
    }
}

/// What a read returns when the socket's read timeout passes (EAGAIN on Linux).
pub fn is_timeout(e: &std::io::Error) -> bool {
    matches!(
        e.kind(),
        std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
    )
}

/// What a read returns when the peer reset the connection: a close, though not a graceful one.
pub fn is_reset(e: &std::io::Error) -> bool {
    matches!(
        e.kind(),
        std::io::ErrorKind::ConnectionReset | std::io::ErrorKind::ConnectionAborted
    )
}

/// A connected loopback pair with no ringws involved: (client side with `read_timeout`, the
/// accepted server side), for tests of these helpers against a peer that behaves in one known way.
pub fn local_pair(read_timeout: Option<Duration>) -> (TcpStream, TcpStream) {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let client = TcpStream::connect(listener.local_addr().unwrap()).unwrap();
    client.set_read_timeout(read_timeout).unwrap();
    let (server, _) = listener.accept().unwrap();
    (client, server)
}

/// The sum over all label sets of the series `name` (every core, every label) on `/metrics`.
pub fn metric_sum(admin: SocketAddr, name: &str) -> f64 {
    let (status, text) = admin_get(admin, "/metrics");
    assert_eq!(status, 200, "{text}");
    text.lines()
        .filter(|l| l.starts_with(name) && l[name.len()..].starts_with([' ', '{']))
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .sum()
}

/// The sum over cores of the series `name` whose labels include `label` (`reason="timeout"`).
pub fn metric_labelled(admin: SocketAddr, name: &str, label: &str) -> f64 {
    let (status, text) = admin_get(admin, "/metrics");
    assert_eq!(status, 200, "{text}");
    let open = format!("{name}{{");
    text.lines()
        .filter(|l| l.starts_with(&open) && l.contains(label))
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .sum()
}

/// Waits (at most 5 s) until [`metric_labelled`] reads `expected`, and fails with the value it
/// read last otherwise: a server counts a failure right after it answers the client.
#[track_caller]
pub fn wait_metric(admin: SocketAddr, name: &str, label: &str, expected: f64) {
    let deadline = std::time::Instant::now() + Duration::from_secs(5);
    loop {
        let value = metric_labelled(admin, name, label);
        if value == expected {
            return;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "{name}{{{label}}} is {value}, expected {expected}"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// A plain HTTP GET to the admin listener: (status, body).
pub fn admin_get(addr: SocketAddr, path: &str) -> (u16, String) {
    let mut s = connect(addr);
    write!(s, "GET {path} HTTP/1.1\r\nHost: x\r\n\r\n").unwrap();
    let r = read_response(&mut s);
    (r.status, r.body)
}

/// The server process's fds, as (fd number, what /proc says it is: `socket:[INODE]`, a path...).
pub fn server_fds(server: &ServerProcess) -> Vec<(i32, String)> {
    let pid = server.child.id();
    std::fs::read_dir(format!("/proc/{pid}/fd"))
        .unwrap()
        .filter_map(Result::ok)
        .filter_map(|e| {
            let fd = e.file_name().to_str()?.parse().ok()?;
            let target = std::fs::read_link(e.path()).ok()?;
            Some((fd, target.to_string_lossy().into_owned()))
        })
        .collect()
}

/// A copy, in this process, of the server's fd `target_fd` (pidfd_getfd; needs ptrace rights
/// over the server, which a test has over its own child). `None` if it was closed meanwhile.
pub fn copy_server_fd(server: &ServerProcess, target_fd: i32) -> Option<std::os::fd::OwnedFd> {
    use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
    let pid = server.child.id() as libc::pid_t;
    // SAFETY: pidfd_open takes a pid and flags and returns a new fd or -1.
    let pidfd = unsafe { libc::syscall(libc::SYS_pidfd_open, pid, 0) };
    assert!(
        pidfd >= 0,
        "pidfd_open: {}",
        std::io::Error::last_os_error()
    );
    // SAFETY: pidfd_open returned a new fd that nothing else owns.
    let pidfd = unsafe { OwnedFd::from_raw_fd(pidfd as i32) };
    // SAFETY: pidfd_getfd duplicates the target's fd into this process or returns -1.
    let fd = unsafe { libc::syscall(libc::SYS_pidfd_getfd, pidfd.as_raw_fd(), target_fd, 0) };
    // SAFETY: pidfd_getfd returned a new fd that nothing else owns.
    (fd >= 0).then(|| unsafe { OwnedFd::from_raw_fd(fd as i32) })
}
