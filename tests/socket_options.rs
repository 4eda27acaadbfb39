//! Socket options of the running server's WebSocket connections, read from the server's own
//! accepted sockets: the test takes a copy of each with pidfd_getfd(2) and asks getsockopt(2).

mod common;

use std::io::Write;
use std::net::{SocketAddr, TcpStream};
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};

use common::*;

/// A copy of the server's socket for the connection `client`, once the server has accepted it
/// (within 2 s, else a panic).
fn server_side_of(server: &ServerProcess, client: &TcpStream) -> OwnedFd {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(2);
    loop {
        if let Some(fd) = find_server_side(server, client) {
            return fd;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "no socket of the server is connected to {}",
            client.local_addr().unwrap()
        );
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
}

fn find_server_side(server: &ServerProcess, client: &TcpStream) -> Option<OwnedFd> {
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
    let (ours, theirs) = (client.local_addr().unwrap(), client.peer_addr().unwrap());
    for entry in std::fs::read_dir(format!("/proc/{pid}/fd")).unwrap() {
        let entry = entry.unwrap();
        let is_socket = std::fs::read_link(entry.path())
            .is_ok_and(|target| target.to_string_lossy().starts_with("socket:"));
        let Some(target_fd) = entry
            .file_name()
            .to_str()
            .and_then(|n| n.parse::<i32>().ok())
        else {
            continue;
        };
        if !is_socket {
            continue;
        }
        // SAFETY: pidfd_getfd duplicates the target's fd into this process or returns -1.
        let fd = unsafe { libc::syscall(libc::SYS_pidfd_getfd, pidfd.as_raw_fd(), target_fd, 0) };
        if fd < 0 {
            continue; // closed in the meantime
        }
        // SAFETY: pidfd_getfd returned a new fd that nothing else owns.
        let fd = unsafe { OwnedFd::from_raw_fd(fd as i32) };
        let socket = socket2::SockRef::from(&fd);
        let addr =
            |a: std::io::Result<socket2::SockAddr>| -> Option<SocketAddr> { a.ok()?.as_socket() };
        if addr(socket.local_addr()) == Some(theirs) && addr(socket.peer_addr()) == Some(ours) {
            return Some(fd);
        }
    }
    None
}

/// TCP_USER_TIMEOUT of `fd`, in milliseconds.
fn user_timeout_ms(fd: &OwnedFd) -> u32 {
    let mut value: u32 = 0;
    let mut len = std::mem::size_of::<u32>() as libc::socklen_t;
    // SAFETY: getsockopt writes at most `len` bytes into `value`, a live u32.
    let rc = unsafe {
        libc::getsockopt(
            fd.as_raw_fd(),
            libc::IPPROTO_TCP,
            libc::TCP_USER_TIMEOUT,
            (&mut value as *mut u32).cast(),
            &mut len,
        )
    };
    assert_eq!(rc, 0, "{}", std::io::Error::last_os_error());
    value
}

#[test]
fn websocket_sockets_carry_a_user_timeout_tied_to_the_heartbeat() {
    // (flags, the TCP_USER_TIMEOUT expected in ms)
    let cases: [(&[&str], u32); 3] = [
        // Defaults: ping_interval 30 s + pong_timeout 10 s.
        (&[], 40_000),
        (&["--ping-interval", "50s", "--pong-timeout", "15s"], 65_000),
        // Never below write_stall_timeout.
        (
            &[
                "--ping-interval",
                "5s",
                "--pong-timeout",
                "2s",
                "--write-stall-timeout",
                "20s",
            ],
            20_000,
        ),
    ];
    for (flags, expected) in cases {
        let mut args = vec!["--cores", "2"];
        args.extend_from_slice(flags);
        let server = ServerProcess::start(&args);
        // Several connections, so that both cores' listeners are seen.
        for _ in 0..4 {
            let client = ws_connect(server.addr);
            let fd = server_side_of(&server, &client);
            assert_eq!(user_timeout_ms(&fd), expected, "{flags:?}");
        }
        // Before the upgrade too: the option comes with the socket, not with the 101.
        let mut raw = connect(server.addr);
        raw.write_all(b"GET / HTTP/1.1\r\n").unwrap();
        assert_eq!(user_timeout_ms(&server_side_of(&server, &raw)), expected);
    }
}
