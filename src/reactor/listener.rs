//! The per-core listening socket: every core binds its own with SO_REUSEPORT, so the kernel
//! spreads connections across cores and a new process can bind beside an old one.

use std::io;
use std::net::SocketAddr;
use std::os::fd::{AsRawFd, RawFd};
use std::time::Duration;

use socket2::{Domain, Protocol, Socket, Type};

/// TCP_USER_TIMEOUT for WebSocket sockets: how long the kernel keeps retransmitting data the
/// peer does not acknowledge (or probing a zero window) before it resets the connection and
/// frees the socket's memory, whether ringws still holds the socket or has closed it.
///
/// `ping_interval + pong_timeout`: a peer that acknowledges nothing for that long is one the
/// heartbeat gives up on too. Never below `write_stall_timeout`, so the kernel does not cut a
/// peer that ringws's own rule for a stalled outbound queue would still keep.
pub fn tcp_user_timeout(
    ping_interval: Duration,
    pong_timeout: Duration,
    write_stall_timeout: Duration,
) -> Duration {
    (ping_interval + pong_timeout).max(write_stall_timeout)
}

pub struct Listener {
    socket: Socket,
}

impl Listener {
    /// `defer_accept`: see `Config::defer_accept` (rounded up to whole seconds, as the kernel
    /// counts them).
    pub fn bind(
        addr: SocketAddr,
        backlog: i32,
        defer_accept: Option<Duration>,
    ) -> io::Result<Listener> {
        let socket = Socket::new(
            Domain::for_address(addr),
            Type::STREAM.nonblocking().cloexec(),
            Some(Protocol::TCP),
        )?;
        socket.set_reuse_address(true)?;
        socket.set_reuse_port(true)?;
        // Inherited by accepted sockets on Linux: saves a setsockopt per connection.
        socket.set_tcp_nodelay(true)?;
        if let Some(wait) = defer_accept {
            let secs = wait.as_millis().div_ceil(1000).clamp(1, i32::MAX as u128) as i32;
            crate::sys::socket::set_defer_accept(socket.as_raw_fd(), secs)?;
        }
        socket.bind(&addr.into())?;
        socket.listen(backlog)?;
        Ok(Listener { socket })
    }

    /// Sets TCP_USER_TIMEOUT on the listening socket; Linux copies it to every socket accepted
    /// from it (the listener's `tcp_user_timeout_is_inherited` test checks), so no accepted
    /// connection needs a setsockopt of its own. See [`tcp_user_timeout`] for the value.
    pub fn set_user_timeout(&self, timeout: Duration) -> io::Result<()> {
        self.socket.set_tcp_user_timeout(Some(timeout))
    }

    pub fn local_addr(&self) -> io::Result<SocketAddr> {
        self.socket
            .local_addr()?
            .as_socket()
            .ok_or_else(|| io::Error::other("listener has no IP address"))
    }

    pub fn fd(&self) -> RawFd {
        self.socket.as_raw_fd()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn user_timeout_of(fd: RawFd) -> u32 {
        crate::sys::socket::tcp_user_timeout(fd).unwrap()
    }

    #[test]
    fn tcp_user_timeout_is_inherited() {
        let listener = Listener::bind("127.0.0.1:0".parse().unwrap(), 16, None).unwrap();
        listener
            .set_user_timeout(Duration::from_millis(41_500))
            .unwrap();
        assert_eq!(user_timeout_of(listener.fd()), 41_500);
        let _client = std::net::TcpStream::connect(listener.local_addr().unwrap()).unwrap();
        // The connection is in the accept queue once connect(2) returned.
        let (accepted, _) = listener.socket.accept().unwrap();
        assert_eq!(user_timeout_of(accepted.as_raw_fd()), 41_500);
    }

    #[test]
    fn the_user_timeout_follows_the_heartbeat_and_the_write_stall_timeout() {
        let s = Duration::from_secs;
        assert_eq!(tcp_user_timeout(s(30), s(10), s(30)), s(40));
        assert_eq!(tcp_user_timeout(s(5), s(2), s(30)), s(30));
        assert_eq!(tcp_user_timeout(s(60), s(10), s(5)), s(70));
    }
}
