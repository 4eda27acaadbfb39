//! Raw-fd socket syscalls: the ones the reactor makes outside the ring, and the non-blocking
//! reads and writes of `bench`'s client sockets.

use std::io;
use std::net::SocketAddr;
use std::os::fd::RawFd;

/// Outcome of a non-blocking read or write.
#[derive(Debug)]
pub enum IoResult {
    /// Bytes moved (> 0).
    Done(usize),
    /// The kernel has nothing to give / no room: try again after the next readiness event.
    WouldBlock,
    /// The peer closed its side (reads only).
    Eof,
    /// A hard error (reset, broken pipe, ...).
    Failed(io::Error),
}

fn classify(n: isize) -> IoResult {
    if n > 0 {
        return IoResult::Done(n as usize);
    }
    if n == 0 {
        return IoResult::Eof;
    }
    let err = io::Error::last_os_error();
    match err.raw_os_error() {
        Some(libc::EAGAIN) | Some(libc::EINTR) => IoResult::WouldBlock,
        _ => IoResult::Failed(err),
    }
}

/// `recv(2)` into `buf` on a non-blocking socket.
///
/// Made as a raw `recvfrom` syscall: libc's `recv` is a thread-cancellation point and brackets
/// every call with cancellation bookkeeping the reactor never needs (about 0.5 % of a core
/// under echo load, measured with benches/echo_profile.sh).
pub fn recv(fd: RawFd, buf: &mut [u8]) -> IoResult {
    // SAFETY: `buf` is a valid, writable region of `buf.len()` bytes for the duration of the
    // call; the address arguments are null, which recvfrom accepts.
    let n = unsafe {
        libc::syscall(
            libc::SYS_recvfrom,
            fd,
            buf.as_mut_ptr(),
            buf.len(),
            0,
            std::ptr::null_mut::<libc::sockaddr>(),
            std::ptr::null_mut::<libc::socklen_t>(),
        )
    };
    classify(n as isize)
}

/// `recv(2)` with MSG_PEEK | MSG_DONTWAIT: copies what is waiting in the socket into `buf`
/// without consuming it; 0 when nothing is waiting or on any error.
pub fn peek(fd: RawFd, buf: &mut [u8]) -> usize {
    match peek_waiting(fd, buf) {
        IoResult::Done(n) => n,
        IoResult::WouldBlock | IoResult::Eof | IoResult::Failed(_) => 0,
    }
}

/// `recv(2)` with MSG_PEEK on a non-blocking socket: copies what is waiting into `buf` without
/// consuming it, telling an empty socket (`WouldBlock`) from a closed one (`Eof`).
pub fn peek_waiting(fd: RawFd, buf: &mut [u8]) -> IoResult {
    // SAFETY: `buf` is a writable buffer of `buf.len()` bytes for the whole call.
    let n = unsafe {
        libc::recv(
            fd,
            buf.as_mut_ptr().cast(),
            buf.len(),
            libc::MSG_PEEK | libc::MSG_DONTWAIT,
        )
    };
    classify(n)
}

/// `send(2)` of `buf` without SIGPIPE. `buf` must not be empty.
pub fn send(fd: RawFd, buf: &[u8]) -> IoResult {
    debug_assert!(!buf.is_empty());
    send2(fd, buf, &[])
}

/// `sendto(2)` of one slice, or `sendmsg(2)` of two (frame header + payload), without SIGPIPE.
pub fn send2(fd: RawFd, a: &[u8], b: &[u8]) -> IoResult {
    if b.is_empty() {
        // SAFETY: `a` is a valid readable region of `a.len()` bytes for the duration of the call;
        // a raw `sendto` with no address, like `recv` above.
        let n = unsafe {
            libc::syscall(
                libc::SYS_sendto,
                fd,
                a.as_ptr(),
                a.len(),
                libc::MSG_NOSIGNAL,
                std::ptr::null::<libc::sockaddr>(),
                0 as libc::socklen_t,
            )
        };
        return match classify(n as isize) {
            IoResult::Eof => IoResult::WouldBlock, // a zero-length write of a non-empty slice
            other => other,
        };
    }
    let iov = [
        libc::iovec {
            iov_base: a.as_ptr() as *mut _,
            iov_len: a.len(),
        },
        libc::iovec {
            iov_base: b.as_ptr() as *mut _,
            iov_len: b.len(),
        },
    ];
    // SAFETY: a zeroed msghdr is valid; we point it at two iovecs that outlive the call.
    let mut msg: libc::msghdr = unsafe { std::mem::zeroed() };
    msg.msg_iov = iov.as_ptr() as *mut _;
    msg.msg_iovlen = 2;
    // SAFETY: `msg` references `iov`, which references `a` and `b`, all alive during the call.
    let n = unsafe { libc::sendmsg(fd, &msg, libc::MSG_NOSIGNAL) };
    match classify(n) {
        IoResult::Eof => IoResult::WouldBlock,
        other => other,
    }
}

/// TCP_DEFER_ACCEPT on a listening socket: wake the acceptor only once a connection has data,
/// or after `secs` of silence.
pub fn set_defer_accept(fd: RawFd, secs: i32) -> io::Result<()> {
    // SAFETY: the option value is a live i32 and its exact size is passed.
    let rc = unsafe {
        libc::setsockopt(
            fd,
            libc::IPPROTO_TCP,
            libc::TCP_DEFER_ACCEPT,
            (&secs as *const i32).cast(),
            std::mem::size_of::<i32>() as libc::socklen_t,
        )
    };
    if rc == 0 {
        Ok(())
    } else {
        Err(io::Error::last_os_error())
    }
}

/// `shutdown(fd, SHUT_WR)`: sends FIN after queued bytes while we keep reading.
pub fn shutdown_write(fd: RawFd) {
    // SAFETY: plain syscall on an fd this core owns; errors (e.g. ENOTCONN) are harmless here.
    unsafe { libc::shutdown(fd, libc::SHUT_WR) };
}

/// `close(2)`. The reactor owns each accepted fd exactly once and closes it exactly once.
pub fn close(fd: RawFd) {
    // SAFETY: `fd` is owned by the caller and not used after this call.
    unsafe { libc::close(fd) };
}

/// Makes a close abortive (RST) rather than graceful: used when a peer must not keep the
/// kernel's buffers busy (heartbeat timeouts on dead peers, forced drains).
pub fn set_linger_zero(fd: RawFd) {
    let l = libc::linger {
        l_onoff: 1,
        l_linger: 0,
    };
    // SAFETY: `l` is a valid linger struct of the size passed.
    unsafe {
        libc::setsockopt(
            fd,
            libc::SOL_SOCKET,
            libc::SO_LINGER,
            (&l as *const libc::linger).cast(),
            std::mem::size_of::<libc::linger>() as libc::socklen_t,
        )
    };
}

/// The peer address of a connected socket (asked lazily: only logs and apps that want it pay).
pub fn peer_addr(fd: RawFd) -> Option<SocketAddr> {
    // SAFETY: getpeername writes at most `*len` bytes into the storage socket2 provides.
    let res = unsafe {
        socket2::SockAddr::try_init(|storage, len| {
            if libc::getpeername(fd, storage.cast(), len) == 0 {
                Ok(())
            } else {
                Err(io::Error::last_os_error())
            }
        })
    };
    res.ok().and_then(|(_, addr)| addr.as_socket())
}

/// Asks the kernel to pick the source port at connect time (not at bind time), so a bound source
/// address can reuse a port towards different destinations. Best effort.
pub fn set_bind_address_no_port(fd: RawFd) {
    let one: libc::c_int = 1;
    // SAFETY: `one` is a valid c_int that outlives the call; a failure is harmless and ignored.
    unsafe {
        libc::setsockopt(
            fd,
            libc::IPPROTO_IP,
            libc::IP_BIND_ADDRESS_NO_PORT,
            (&one as *const libc::c_int).cast(),
            std::mem::size_of::<libc::c_int>() as libc::socklen_t,
        );
    }
}

/// The TCP_USER_TIMEOUT of a socket, in milliseconds.
pub fn tcp_user_timeout(fd: RawFd) -> io::Result<u32> {
    let mut value: u32 = 0;
    let mut len = std::mem::size_of::<u32>() as libc::socklen_t;
    // SAFETY: getsockopt writes at most `len` bytes into `value`, a live u32.
    let rc = unsafe {
        libc::getsockopt(
            fd,
            libc::IPPROTO_TCP,
            libc::TCP_USER_TIMEOUT,
            (&mut value as *mut u32).cast(),
            &mut len,
        )
    };
    if rc == 0 {
        Ok(value)
    } else {
        Err(io::Error::last_os_error())
    }
}
