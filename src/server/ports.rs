//! Claiming the listen and admin ports before binding them.
//!
//! Every listener is bound with SO_REUSEPORT (one per core, and so that a new process can bind
//! beside an old one for a zero-downtime restart). The kernel lets any process of the same user
//! do the same, so a second `ringws serve` on the same port would start without a word and take
//! half of the new connections. Sharing must therefore be asked for (`takeover`); without it,
//! each port is first bound by a plain probe socket, without SO_REUSEPORT:
//!
//! - the probe has SO_REUSEADDR, so sockets in TIME_WAIT left by a process that just exited do
//!   not count, but a socket listening on the port (of any process, with or without
//!   SO_REUSEPORT, on the same address or a wildcard covering it) makes the bind fail with
//!   EADDRINUSE: the port is held;
//! - the probe is closed, and the real listeners are bound right after.
//!
//! Between the probe and the real `listen(2)` another process of the same user could bind the
//! port with SO_REUSEPORT too. Two `ringws serve` started in the same instant would both pass
//! their probes, so every ringws holds [`BindLock`] (an abstract unix socket: one name per
//! network namespace, like the ports, and gone with the process) from its first probe until its
//! listeners listen; the second one then probes a port that is already listening. A program
//! other than ringws that binds the same port with SO_REUSEPORT in those few microseconds is
//! not caught; no such program is silent about it for long, as it shares our connections.
//!
//! The holder of a taken port is named from /proc: the listening socket's inode from
//! /proc/net/tcp and tcp6, then the process with that socket among its /proc/PID/fd. As another
//! user, the pids of other users' processes are not visible, and the message says so.

use std::io;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::os::linux::net::SocketAddrExt as _;
use std::os::unix::net::{SocketAddr as UnixAddr, UnixListener};
use std::path::Path;
use std::time::{Duration, Instant};

use socket2::{Domain, Protocol, Socket, Type};

use crate::config::addresses_overlap;

/// Which listener an address is for, to name its setting in messages.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Role {
    /// `listen`: the WebSocket listener.
    Listen,
    /// `admin_listen`: the admin listener.
    Admin,
    /// `tls_listen`: the wss listener.
    TlsListen,
}

impl Role {
    pub fn flag(self) -> &'static str {
        match self {
            Role::Listen => "--listen",
            Role::Admin => "--admin-listen",
            Role::TlsListen => "--tls-listen",
        }
    }

    pub fn key(self) -> &'static str {
        match self {
            Role::Listen => "listen",
            Role::Admin => "admin_listen",
            Role::TlsListen => "tls_listen",
        }
    }
}

/// A process with a socket listening on a port.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Holder {
    pub pid: u32,
    /// Its command name (/proc/PID/comm).
    pub name: String,
}

/// Serialises the probe-and-bind of every ringws in this network namespace (see the module
/// documentation). Released when dropped.
pub struct BindLock {
    _socket: Option<UnixListener>,
}

/// Name of the abstract unix socket [`BindLock`] binds.
const BIND_LOCK_NAME: &[u8] = b"ringws/bind-lock";
/// Longest wait for another ringws to finish binding; it holds the lock for milliseconds.
const BIND_LOCK_WAIT: Duration = Duration::from_secs(3);

impl BindLock {
    /// Waits until no other ringws is between its probes and its listen. Gives up after
    /// [`BIND_LOCK_WAIT`] (the probes still run; only the race they leave open is back).
    pub fn acquire() -> BindLock {
        let started = Instant::now();
        let socket = loop {
            let attempt = UnixAddr::from_abstract_name(BIND_LOCK_NAME)
                .and_then(|a| UnixListener::bind_addr(&a));
            match attempt {
                Ok(socket) => break Some(socket),
                Err(e)
                    if e.kind() == io::ErrorKind::AddrInUse
                        && started.elapsed() < BIND_LOCK_WAIT =>
                {
                    std::thread::sleep(Duration::from_millis(5));
                }
                Err(e) => {
                    tracing::debug!("binding without the start-up lock: {e}");
                    break None;
                }
            }
        };
        BindLock { _socket: socket }
    }
}

/// Whether a socket is listening on `addr` (or on an address covering it): binds a probe
/// without SO_REUSEPORT. `Ok(false)` when the port is free or `addr` asks for any port (0).
/// Other bind errors (no such address, a privileged port) are returned as they are.
pub fn is_held(addr: SocketAddr) -> io::Result<bool> {
    if addr.port() == 0 {
        return Ok(false);
    }
    let probe = Socket::new(
        Domain::for_address(addr),
        Type::STREAM.cloexec(),
        Some(Protocol::TCP),
    )?;
    probe.set_reuse_address(true)?;
    match probe.bind(&addr.into()) {
        Ok(()) => Ok(false),
        Err(e) if e.raw_os_error() == Some(libc::EADDRINUSE) => Ok(true),
        Err(e) => Err(e),
    }
}

/// The processes listening on `addr` (or on an address covering it), as far as /proc shows
/// them to this user. This process may be one: a program that starts two servers on one port.
pub fn holders(addr: SocketAddr) -> Vec<Holder> {
    holders_in(Path::new("/proc"), addr)
}

fn holders_in(proc_root: &Path, addr: SocketAddr) -> Vec<Holder> {
    let inodes: Vec<u64> = ["net/tcp", "net/tcp6"]
        .iter()
        .filter_map(|table| std::fs::read_to_string(proc_root.join(table)).ok())
        .flat_map(|text| listening_inodes(&text, addr))
        .collect();
    if inodes.is_empty() {
        return Vec::new();
    }
    let Ok(entries) = std::fs::read_dir(proc_root) else {
        return Vec::new();
    };
    let mut found: Vec<Holder> = entries
        .filter_map(|entry| entry.ok()?.file_name().to_str()?.parse::<u32>().ok())
        .filter(|&pid| holds_any(&proc_root.join(pid.to_string()), &inodes))
        .map(|pid| Holder {
            pid,
            name: std::fs::read_to_string(proc_root.join(format!("{pid}/comm")))
                .map(|name| name.trim().to_owned())
                .unwrap_or_default(),
        })
        .collect();
    found.sort_by_key(|holder| holder.pid);
    found
}

/// Does the process at `/proc/PID` have one of `inodes` among its open files?
fn holds_any(process: &Path, inodes: &[u64]) -> bool {
    let Ok(fds) = std::fs::read_dir(process.join("fd")) else {
        return false;
    };
    fds.filter_map(|fd| std::fs::read_link(fd.ok()?.path()).ok())
        .filter_map(|target| socket_inode(target.to_str()?))
        .any(|inode| inodes.contains(&inode))
}

/// `socket:[12345]` → 12345.
fn socket_inode(link: &str) -> Option<u64> {
    link.strip_prefix("socket:[")?
        .strip_suffix(']')?
        .parse()
        .ok()
}

/// TCP state LISTEN in /proc/net/tcp.
const TCP_LISTEN: &str = "0A";

/// The inodes of the sockets in a /proc/net/tcp or tcp6 table that listen on `addr` or on an
/// address covering it. The kernel lists listening sockets first, so reading stops at the first
/// other state: a host with a million connections is not read through.
fn listening_inodes(table: &str, addr: SocketAddr) -> Vec<u64> {
    table
        .lines()
        .skip(1)
        .map(|line| line.split_whitespace().collect::<Vec<_>>())
        .take_while(|fields| fields.get(3) == Some(&TCP_LISTEN))
        .filter(|fields| {
            let local = fields.get(1).and_then(|field| parse_proc_address(field));
            local.is_some_and(|local| addresses_overlap(local, addr))
        })
        .filter_map(|fields| fields.get(9)?.parse().ok())
        .collect()
}

/// A local address as /proc/net/tcp{,6} writes it: the address as 32-bit words in the host's
/// byte order, in hex, then `:` and the port in hex (`0100007F:2329` is 127.0.0.1:9001 on a
/// little-endian host).
fn parse_proc_address(text: &str) -> Option<SocketAddr> {
    let (ip_hex, port_hex) = text.split_once(':')?;
    let port = u16::from_str_radix(port_hex, 16).ok()?;
    let mut bytes = Vec::with_capacity(16);
    for word in ip_hex.as_bytes().chunks(8) {
        let word = u32::from_str_radix(std::str::from_utf8(word).ok()?, 16).ok()?;
        bytes.extend_from_slice(&word.to_ne_bytes());
    }
    let ip = match bytes.len() {
        4 => IpAddr::V4(Ipv4Addr::from(<[u8; 4]>::try_from(bytes).ok()?)),
        16 => IpAddr::V6(Ipv6Addr::from(<[u8; 16]>::try_from(bytes).ok()?)),
        _ => return None,
    };
    Some(SocketAddr::new(ip, port))
}

/// `pid 42 (nginx)`, `pid 7 (ringws), pid 8 (ringws)`, or `another process` when none is known.
pub fn describe(holders: &[Holder]) -> String {
    if holders.is_empty() {
        return "another process".to_owned();
    }
    let own = std::process::id();
    let named: Vec<String> = holders
        .iter()
        .map(|h| match h.pid {
            pid if pid == own => format!("this process (pid {pid})"),
            pid => format!("pid {pid} ({})", h.name),
        })
        .collect();
    named.join(", ")
}

/// The message of a port in use: who holds it, and what to do.
pub fn in_use_message(addr: SocketAddr, role: Role, holders: &[Holder], takeover: bool) -> String {
    let (flag, key) = (role.flag(), role.key());
    let mut message = format!("{flag} {addr} is already in use by {}.", describe(holders));
    if holders.is_empty() {
        message.push_str(&format!(
            " Its pid is not visible to this user: `sudo ss -ltnp 'sport = :{}'` names it.",
            addr.port()
        ));
    }
    let another = format!("stop it or choose another {flag} ({key} in a config file)");
    let ringws = holders.is_empty() || holders.iter().any(|h| h.name == "ringws");
    if takeover {
        message.push_str(&format!(
            " --takeover shares a port only with a ringws of the same user: {another}."
        ));
    } else if ringws {
        message.push_str(&format!(
            " If it is a ringws to replace without downtime, start this one with --takeover \
             (it shares the port) and then stop the old one (docs/lifecycle.md); otherwise \
             {another}."
        ));
    } else {
        let mut another = another;
        another[..1].make_ascii_uppercase();
        message.push_str(&format!(" {another}."));
    }
    message
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn proc_addresses_parse() {
        let v4 = u32::from_ne_bytes([127, 0, 0, 1]);
        let text = format!("{v4:08X}:2329");
        assert_eq!(
            parse_proc_address(&text),
            Some("127.0.0.1:9001".parse().unwrap())
        );
        let loopback6: Vec<String> = Ipv6Addr::LOCALHOST
            .octets()
            .chunks(4)
            .map(|w| format!("{:08X}", u32::from_ne_bytes(w.try_into().unwrap())))
            .collect();
        assert_eq!(
            parse_proc_address(&format!("{}:1F90", loopback6.concat())),
            Some("[::1]:8080".parse().unwrap())
        );
        assert_eq!(parse_proc_address("nonsense"), None);
    }

    #[test]
    fn listening_sockets_are_found_by_address_and_reading_stops_at_the_first_connection() {
        let hex = |ip: [u8; 4]| format!("{:08X}", u32::from_ne_bytes(ip));
        let line = |local: String, state: &str, inode: u32| {
            format!(
                "   0: {local} 00000000:0000 {state} 00000000:00000000 00:00000000 00000000     0        0 {inode} 1 0000000000000000 100 0 0 10 0"
            )
        };
        let table = [
            "  sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode".to_owned(),
            line(format!("{}:2329", hex([127, 0, 0, 1])), "0A", 11),
            line(format!("{}:2329", hex([0, 0, 0, 0])), "0A", 12),
            line(format!("{}:2329", hex([10, 0, 0, 1])), "0A", 13),
            line(format!("{}:232A", hex([127, 0, 0, 1])), "0A", 14),
            line(format!("{}:2329", hex([127, 0, 0, 1])), "01", 15),
            line(format!("{}:2329", hex([127, 0, 0, 1])), "0A", 16),
        ]
        .join("\n");
        assert_eq!(
            listening_inodes(&table, "127.0.0.1:9001".parse().unwrap()),
            [11, 12]
        );
        assert_eq!(
            listening_inodes(&table, "0.0.0.0:9001".parse().unwrap()),
            [11, 12, 13]
        );
    }

    #[test]
    fn the_holder_of_a_port_is_named_and_a_free_port_is_not_held() {
        let holder = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = holder.local_addr().unwrap();
        assert!(is_held(addr).unwrap());
        let found = holders(addr);
        assert!(
            found.iter().any(|h| h.pid == std::process::id()),
            "{found:?}"
        );
        assert!(describe(&found).contains(&format!("this process (pid {})", std::process::id())));
        drop(holder);
        assert!(!is_held(addr).unwrap());
        assert!(!is_held("127.0.0.1:0".parse().unwrap()).unwrap());
    }

    #[test]
    fn messages_name_the_setting_the_holder_and_the_way_out() {
        let addr: SocketAddr = "127.0.0.1:9090".parse().unwrap();
        let nginx = [Holder {
            pid: 42,
            name: "nginx".into(),
        }];
        let message = in_use_message(addr, Role::Admin, &nginx, false);
        assert_eq!(
            message,
            "--admin-listen 127.0.0.1:9090 is already in use by pid 42 (nginx). Stop it or \
             choose another --admin-listen (admin_listen in a config file)."
        );
        let ringws = [Holder {
            pid: 7,
            name: "ringws".into(),
        }];
        let message = in_use_message(addr, Role::Listen, &ringws, false);
        assert!(message.contains("pid 7 (ringws)"), "{message}");
        assert!(message.contains("--takeover"), "{message}");
        let message = in_use_message(addr, Role::Listen, &[], false);
        assert!(
            message.contains("sudo ss -ltnp 'sport = :9090'"),
            "{message}"
        );
        let message = in_use_message(addr, Role::Listen, &nginx, true);
        assert!(message.contains("only with a ringws"), "{message}");
    }
}
