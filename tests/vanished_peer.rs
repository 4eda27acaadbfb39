//! A peer that vanishes without a FIN or a reset, while the server has unacknowledged data in
//! flight to it. The client lives in its own network namespace, joined to the root namespace by
//! a veth pair; once the server's echo is in flight, an nftables ruleset in the client's
//! namespace drops every packet, as a pulled cable would. The server must close the connection by
//! heartbeat, and the kernel must free the socket (an orphan still retransmitting by then) at
//! TCP_USER_TIMEOUT instead of the ~15 minutes of `net.ipv4.tcp_retries2`.
//!
//! Needs root, `ip` (iproute2) and `nft` (nftables); without them it fails and says what to
//! install. Run it alone with `cargo test --test vanished_peer -- --nocapture` to see the
//! measured before/after.

mod common;

use std::io::Write;
use std::net::{Ipv4Addr, SocketAddr, SocketAddrV4, TcpStream};
use std::os::fd::AsRawFd;
use std::path::PathBuf;
use std::process::Command;
use std::time::{Duration, Instant};

use common::*;

const PING_INTERVAL: Duration = Duration::from_secs(2);
const PONG_TIMEOUT: Duration = Duration::from_secs(2);
/// Longer than ping_interval + pong_timeout, so TCP_USER_TIMEOUT (the larger of the two) comes
/// after the heartbeat closes the connection: the kernel then frees an orphan that ringws has
/// already closed, which is what would otherwise retransmit for ~15 minutes.
const WRITE_STALL_TIMEOUT: Duration = Duration::from_secs(6);
/// What ringws sets: max(ping_interval + pong_timeout, write_stall_timeout).
const USER_TIMEOUT: Duration = WRITE_STALL_TIMEOUT;
/// Echoed back while the client hears nothing: fits the first flight of both sides (10
/// segments), so all of it is sent and none of it is acknowledged.
const MESSAGE_BYTES: usize = 10_000;
/// Slack for the 100 ms timer wheel, the 50 ms polling and a shared machine.
const SLACK: Duration = Duration::from_millis(1500);
/// The kernel's last retransmission timer may fire a few hundred ms past the user timeout.
const FREE_SLACK: Duration = Duration::from_secs(2);

/// The path of a system tool, or a failure naming the package that brings it.
fn tool(name: &str, package: &str) -> PathBuf {
    let on_path = std::env::var_os("PATH")
        .map(|path| std::env::split_paths(&path).collect::<Vec<_>>())
        .unwrap_or_default();
    on_path
        .into_iter()
        .chain(["/usr/sbin".into(), "/sbin".into(), "/usr/bin".into()])
        .map(|dir| dir.join(name))
        .find(|p| p.is_file())
        .unwrap_or_else(|| {
            panic!(
                "tests/vanished_peer.rs needs `{name}`, which is not installed: \
                 apt-get install -y {package} (or run `sudo bash .ci/test`, which installs it)"
            )
        })
}

/// Runs `program args`; panics with its output when it fails.
fn run(program: &PathBuf, args: &[&str]) {
    let out = output_within(Command::new(program).args(args), Duration::from_secs(10));
    assert!(
        out.status.success(),
        "{} {} failed: {}{}",
        program.display(),
        args.join(" "),
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

/// The namespace, the veth pair and the nftables table; all removed on drop, even on a panic.
struct Netns {
    ip: PathBuf,
    nft: PathBuf,
    ss: PathBuf,
    name: String,
    host_veth: String,
    peer_veth: String,
    server: Ipv4Addr,
    client: Ipv4Addr,
    /// The nftables table exists (in the namespace) and must be deleted.
    table: bool,
}

const TABLE: &str = "ringws_vanished_peer";

impl Netns {
    /// A namespace holding one end of a veth pair, the two ends on a private /30 and up.
    fn create() -> Netns {
        // SAFETY: geteuid has no preconditions.
        let uid = unsafe { libc::geteuid() };
        assert_eq!(
            uid, 0,
            "tests/vanished_peer.rs needs root (to create a network namespace, a veth pair and \
             nftables rules): run it as root, e.g. `sudo -E cargo test --test vanished_peer`"
        );
        let ip = tool("ip", "iproute2");
        let nft = tool("nft", "nftables");
        let ss = tool("ss", "iproute2");
        // Names and a /30 of 10.231.0.0/16 from the pid, so runs from other checkouts at the
        // same time do not collide; a /30 some interface already holds is skipped.
        let pid = std::process::id();
        let mut slot = pid % 16384;
        let subnet = loop {
            let base = u32::from(Ipv4Addr::new(10, 231, 0, 0)) + slot * 4;
            let taken = output_within(
                Command::new(&ip)
                    .args(["-o", "-4", "addr", "show", "to"])
                    .arg(format!("{}/30", Ipv4Addr::from(base))),
                Duration::from_secs(5),
            );
            if taken.stdout.is_empty() {
                break base;
            }
            slot = (slot + 1) % 16384;
        };
        let mut ns = Netns {
            ip,
            nft,
            ss,
            name: format!("ringws-vp-{pid}"),
            host_veth: format!("rwvp{pid}s"),
            peer_veth: format!("rwvp{pid}c"),
            server: Ipv4Addr::from(subnet + 1),
            client: Ipv4Addr::from(subnet + 2),
            table: false,
        };
        // Left over by an earlier run with this pid that was killed before its clean-up.
        ns.remove();
        let (name, host, peer) = (&ns.name, &ns.host_veth, &ns.peer_veth);
        run(&ns.ip, &["netns", "add", name]);
        run(
            &ns.ip,
            &[
                "link", "add", host, "type", "veth", "peer", "name", peer, "netns", name,
            ],
        );
        let server = format!("{}/30", ns.server);
        let client = format!("{}/30", ns.client);
        run(&ns.ip, &["addr", "add", &server, "dev", host]);
        run(&ns.ip, &["link", "set", host, "up"]);
        run(&ns.ip, &["-n", name, "addr", "add", &client, "dev", peer]);
        run(&ns.ip, &["-n", name, "link", "set", peer, "up"]);
        run(&ns.ip, &["-n", name, "link", "set", "lo", "up"]);
        ns
    }

    /// `nft ARGS` inside the namespace.
    fn nft(&self, args: &[&str]) {
        let mut all = vec!["netns", "exec", &self.name, self.nft.to_str().unwrap()];
        all.extend_from_slice(args);
        run(&self.ip, &all);
    }

    /// Drops every packet arriving in the namespace (the client hears nothing).
    fn drop_input(&mut self) {
        self.nft(&["add", "table", "inet", TABLE]);
        self.table = true;
        self.nft(&[
            "add",
            "chain",
            "inet",
            TABLE,
            "input",
            "{ type filter hook input priority -300; policy drop; }",
        ]);
    }

    /// Drops every packet leaving the namespace too: the peer has vanished.
    fn drop_output(&self) {
        self.nft(&[
            "add",
            "chain",
            "inet",
            TABLE,
            "output",
            "{ type filter hook output priority -300; policy drop; }",
        ]);
    }

    /// Connects to `addr` from inside the namespace: a thread joins it (setns affects only the
    /// calling thread) and opens the socket there; the socket stays in the namespace.
    fn ws_connect(&self, addr: SocketAddr) -> TcpStream {
        let path = format!("/run/netns/{}", self.name);
        std::thread::spawn(move || {
            let ns = std::fs::File::open(&path).unwrap_or_else(|e| panic!("open {path}: {e}"));
            // SAFETY: setns with an open namespace fd changes only this thread's namespace.
            let rc = unsafe { libc::setns(ns.as_raw_fd(), libc::CLONE_NEWNET) };
            assert_eq!(rc, 0, "setns {path}: {}", std::io::Error::last_os_error());
            ws_connect(addr)
        })
        .join()
        .expect("connect from the namespace")
    }

    /// Removes what exists; reports, never panics (it runs during unwinding).
    fn remove(&mut self) {
        let quiet = |program: &PathBuf, args: &[&str]| {
            Command::new(program)
                .args(args)
                .stdout(std::process::Stdio::null())
                .stderr(std::process::Stdio::null())
                .status()
                .is_ok_and(|s| s.success())
        };
        if self.table {
            let nft = self.nft.to_str().unwrap();
            let table = [
                "netns", "exec", &self.name, nft, "delete", "table", "inet", TABLE,
            ];
            if !quiet(&self.ip, &table) {
                eprintln!(
                    "vanished_peer: could not delete nftables table {TABLE} in {}",
                    self.name
                );
            }
            self.table = false;
        }
        // The root namespace's sockets to the client (the control's orphan would otherwise go
        // on retransmitting for minutes): aborted, which frees them.
        let client = self.client.to_string();
        quiet(&self.ss, &["-K", "dst", &client]);
        // Deleting one end of a veth pair deletes both.
        quiet(&self.ip, &["link", "del", &self.host_veth]);
        quiet(&self.ip, &["netns", "del", &self.name]);
        let exists = |args: &[&str]| quiet(&self.ip, args);
        if exists(&["link", "show", &self.host_veth])
            || std::path::Path::new(&format!("/run/netns/{}", self.name)).exists()
        {
            eprintln!(
                "vanished_peer: left behind: remove with `ip link del {}; ip netns del {}`",
                self.host_veth, self.name
            );
        }
    }
}

impl Drop for Netns {
    fn drop(&mut self) {
        self.remove();
    }
}

/// One TCP socket of the root namespace, from /proc/net/tcp.
#[derive(Clone, Copy, Debug, PartialEq)]
struct KernelSocket {
    /// TCP state, as /proc/net/tcp numbers it (1 ESTABLISHED, 4 FIN_WAIT1, ...).
    state: u8,
    /// Bytes written and not acknowledged by the peer (ss's Send-Q).
    send_q: u64,
    /// The socket's inode (0 once the process has closed it: an orphan).
    inode: u64,
}

fn state_name(state: u8) -> &'static str {
    match state {
        1 => "ESTABLISHED",
        4 => "FIN-WAIT-1",
        5 => "FIN-WAIT-2",
        7 => "CLOSE",
        8 => "CLOSE-WAIT",
        9 => "LAST-ACK",
        11 => "CLOSING",
        _ => "other",
    }
}

/// The root namespace's socket from `local` to `remote`, if the kernel still has it.
fn kernel_socket(local: SocketAddrV4, remote: SocketAddrV4) -> Option<KernelSocket> {
    let hex = |a: SocketAddrV4| {
        format!(
            "{:08X}:{:04X}",
            u32::from_le_bytes(a.ip().octets()),
            a.port()
        )
    };
    let (local, remote) = (hex(local), hex(remote));
    let table = std::fs::read_to_string("/proc/net/tcp").expect("read /proc/net/tcp");
    table.lines().skip(1).find_map(|line| {
        let f: Vec<&str> = line.split_whitespace().collect();
        if f.get(1) != Some(&local.as_str()) || f.get(2) != Some(&remote.as_str()) {
            return None;
        }
        let (tx, _rx) = f[4].split_once(':')?;
        Some(KernelSocket {
            state: u8::from_str_radix(f[3], 16).ok()?,
            send_q: u64::from_str_radix(tx, 16).ok()?,
            inode: f.get(9)?.parse().ok()?,
        })
    })
}

/// What `ss -tnio` says about the connection to `remote`, for the record.
fn ss_line(remote: SocketAddrV4) -> String {
    let ss = tool("ss", "iproute2");
    let out = output_within(
        Command::new(&ss).args(["-tnio", "state", "all", "dst", &remote.to_string()]),
        Duration::from_secs(5),
    );
    let text = String::from_utf8_lossy(&out.stdout);
    let lines: Vec<&str> = text.lines().skip(1).map(str::trim).collect();
    if lines.is_empty() {
        "(no socket)".to_string()
    } else {
        lines.join(" ")
    }
}

fn heartbeat_timeouts(admin: SocketAddr) -> f64 {
    metric_sum(admin, "ringws_heartbeat_timeouts_total")
}

/// Sets TCP_USER_TIMEOUT of the server's socket with inode `inode` to `ms`, through a copy of
/// the server's fd (pidfd_getfd); returns the value it had.
fn set_server_user_timeout(server: &ServerProcess, inode: u64, ms: u32) -> u32 {
    use std::os::fd::{FromRawFd, OwnedFd};
    let pid = server.child.id() as libc::pid_t;
    let link = format!("socket:[{inode}]");
    let target_fd: i32 = std::fs::read_dir(format!("/proc/{pid}/fd"))
        .unwrap()
        .filter_map(Result::ok)
        .find(|e| std::fs::read_link(e.path()).is_ok_and(|t| t.to_string_lossy() == link))
        .and_then(|e| e.file_name().to_str()?.parse().ok())
        .unwrap_or_else(|| panic!("the server holds no fd for {link}"));
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
    assert!(fd >= 0, "pidfd_getfd: {}", std::io::Error::last_os_error());
    // SAFETY: pidfd_getfd returned a new fd that nothing else owns.
    let fd = unsafe { OwnedFd::from_raw_fd(fd as i32) };
    let size = std::mem::size_of::<u32>() as libc::socklen_t;
    let (mut old, mut len) = (0u32, size);
    // SAFETY: getsockopt writes at most `len` bytes into `old`, a live u32; setsockopt reads
    // `size` bytes from `ms`, a live u32.
    unsafe {
        let rc = libc::getsockopt(
            fd.as_raw_fd(),
            libc::IPPROTO_TCP,
            libc::TCP_USER_TIMEOUT,
            (&mut old as *mut u32).cast(),
            &mut len,
        );
        assert_eq!(rc, 0, "getsockopt: {}", std::io::Error::last_os_error());
        let rc = libc::setsockopt(
            fd.as_raw_fd(),
            libc::IPPROTO_TCP,
            libc::TCP_USER_TIMEOUT,
            (&ms as *const u32).cast(),
            size,
        );
        assert_eq!(rc, 0, "setsockopt: {}", std::io::Error::last_os_error());
    }
    old
}

/// A connection from the namespace and the two ends' addresses.
struct Peer {
    stream: TcpStream,
    server: SocketAddrV4,
    client: SocketAddrV4,
}

impl Peer {
    fn connect(ns: &Netns, server: &ServerProcess) -> Peer {
        let stream = ns.ws_connect(server.addr);
        let (SocketAddr::V4(server), SocketAddr::V4(client)) =
            (server.addr, stream.local_addr().unwrap())
        else {
            panic!("IPv4 only")
        };
        assert_eq!(*client.ip(), ns.client);
        Peer {
            stream,
            server,
            client,
        }
    }

    fn kernel_socket(&self) -> Option<KernelSocket> {
        kernel_socket(self.server, self.client)
    }

    /// Waits (up to 2 s) until the server's socket holds the echo unacknowledged.
    fn echo_in_flight(&self) -> KernelSocket {
        let started = Instant::now();
        loop {
            match self.kernel_socket() {
                Some(s) if s.send_q >= MESSAGE_BYTES as u64 => return s,
                other => assert!(
                    started.elapsed() < Duration::from_secs(2),
                    "the echo never sat unacknowledged in the server's socket: {other:?}"
                ),
            }
            std::thread::sleep(Duration::from_millis(10));
        }
    }
}

fn describe(s: Option<KernelSocket>) -> String {
    match s {
        Some(s) => format!("{} Send-Q {} bytes", state_name(s.state), s.send_q),
        None => "gone".to_string(),
    }
}

#[test]
fn a_vanished_peer_is_closed_by_heartbeat_and_its_socket_freed_at_tcp_user_timeout() {
    let test_started = Instant::now();
    let mut ns = Netns::create();
    let listen = format!("{}:0", ns.server);
    let server = ServerProcess::start_with(
        &["--listen", &listen],
        &[
            "--cores",
            "1",
            "--ping-interval",
            "2s",
            "--pong-timeout",
            "2s",
            "--write-stall-timeout",
            "6s",
        ],
        None,
    );
    let admin = server.admin.expect("the admin listener is on");
    let mut peer = Peer::connect(&ns, &server);
    // The control: the same connection with the kernel's default, no TCP_USER_TIMEOUT, set on
    // the server's socket from outside; it shows what the option saves.
    let mut control = Peer::connect(&ns, &server);
    let inode = control
        .kernel_socket()
        .expect("the server's socket of the control connection")
        .inode;
    let inherited = set_server_user_timeout(&server, inode, 0);
    assert_eq!(
        Duration::from_millis(inherited.into()),
        USER_TIMEOUT,
        "the accepted socket's TCP_USER_TIMEOUT"
    );
    let baseline = heartbeat_timeouts(admin);

    // The clients stop hearing anything, then each sends a message: the server receives it and
    // echoes it, and no acknowledgement of the echo can come back.
    ns.drop_input();
    let frame = client_frame(true, 0x2, &[0x5a; MESSAGE_BYTES]);
    control.stream.write_all(&frame).unwrap();
    control.echo_in_flight();
    peer.stream.write_all(&frame).unwrap();
    let sent = Instant::now();
    let in_flight = peer.echo_in_flight();
    // Now the clients send nothing either: they have vanished.
    ns.drop_output();
    println!(
        "before: {} -> {} {} unacknowledged (TCP_USER_TIMEOUT {} ms, inherited from the listener)\n  \
         ss: {}",
        peer.server,
        peer.client,
        describe(Some(in_flight)),
        inherited,
        ss_line(peer.client)
    );

    // Watch the heartbeat counter and the kernel's socket until the socket is gone.
    let heartbeat_by = PING_INTERVAL + PONG_TIMEOUT + SLACK;
    let freed_by = USER_TIMEOUT + FREE_SLACK;
    let mut detected: Option<(Duration, Option<KernelSocket>)> = None;
    let mut last = in_flight;
    let freed = loop {
        let now = sent.elapsed();
        // Both connections time out by heartbeat.
        if detected.is_none() && heartbeat_timeouts(admin) >= baseline + 2.0 {
            detected = Some((now, peer.kernel_socket()));
        }
        match peer.kernel_socket() {
            Some(s) => last = s,
            None => break now,
        }
        assert!(
            now < freed_by,
            "the kernel still holds the socket {:.1} s after the echo (TCP_USER_TIMEOUT is {} s): \
             {}; heartbeat timeouts seen: {detected:?}\n  ss: {}",
            now.as_secs_f64(),
            USER_TIMEOUT.as_secs(),
            describe(Some(last)),
            ss_line(peer.client)
        );
        std::thread::sleep(Duration::from_millis(50));
    };
    let control_then = control.kernel_socket();
    let after = ss_line(peer.client);
    let (detected, at_detection) = detected.unwrap_or_else(|| {
        panic!(
            "{} heartbeat timeouts counted (2 expected), yet the socket was freed after {:.2} s",
            heartbeat_timeouts(admin) - baseline,
            freed.as_secs_f64()
        )
    });
    println!(
        "heartbeat timeouts counted {:.2} s after the echo (ping_interval + pong_timeout = {} s); \
         ringws closed the socket, the kernel still held it: {}",
        detected.as_secs_f64(),
        (PING_INTERVAL + PONG_TIMEOUT).as_secs(),
        describe(at_detection)
    );
    println!(
        "after: gone from /proc/net/tcp and ss {:.2} s after the echo (TCP_USER_TIMEOUT {} s); last \
         seen {}\n  ss: {after}",
        freed.as_secs_f64(),
        USER_TIMEOUT.as_secs(),
        describe(Some(last)),
    );
    println!(
        "control (TCP_USER_TIMEOUT 0, the kernel default) at that moment: {}\n  ss: {}",
        describe(control_then),
        ss_line(control.client)
    );

    assert!(
        detected <= heartbeat_by,
        "heartbeat timeout after {detected:?}, expected within {heartbeat_by:?}"
    );
    assert!(
        detected + Duration::from_millis(500) >= PING_INTERVAL + PONG_TIMEOUT,
        "heartbeat timeout after {detected:?}, before ping_interval + pong_timeout"
    );
    // ringws closed it first, gracefully (no reset that would free it at once), so what freed
    // it afterwards is the kernel giving up at TCP_USER_TIMEOUT.
    let held = at_detection.expect("the socket was gone before the heartbeat timeout");
    assert!(
        held.send_q >= MESSAGE_BYTES as u64,
        "at the heartbeat timeout the kernel held {} bytes, expected the unacknowledged echo",
        held.send_q
    );
    assert!(
        freed + Duration::from_millis(500) >= USER_TIMEOUT,
        "the socket was freed after {freed:?}, before TCP_USER_TIMEOUT ({USER_TIMEOUT:?}): \
         something other than the user timeout freed it"
    );
    assert_eq!(after, "(no socket)", "ss still lists the connection");
    let control_then = control_then.expect("the control's socket was freed as well");
    assert!(
        control_then.send_q >= MESSAGE_BYTES as u64 && control_then.inode == 0,
        "the control should be an orphan ringws closed, still holding the echo: {control_then:?}"
    );
    drop(peer);
    drop(control);
    drop(server);
    ns.remove();
    assert!(
        test_started.elapsed() < Duration::from_secs(30),
        "took {:?}",
        test_started.elapsed()
    );
}
