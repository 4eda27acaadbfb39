//! The per-core listening socket: every core binds its own with SO_REUSEPORT, so the kernel
//! spreads connections across cores and a new process can bind beside an old one.

use std::io;
use std::net::SocketAddr;
use std::os::fd::{AsRawFd, RawFd};
use std::time::Duration;

use socket2::{Domain, Protocol, Socket, Type};

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
            super::sys::set_defer_accept(socket.as_raw_fd(), secs)?;
        }
        socket.bind(&addr.into())?;
        socket.listen(backlog)?;
        Ok(Listener { socket })
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
