//! epoll, as `bench` uses it for its client sockets.

use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};

pub const EV_IN: u32 = libc::EPOLLIN as u32;
pub const EV_OUT: u32 = libc::EPOLLOUT as u32;
pub const EV_ERR: u32 = libc::EPOLLERR as u32;
pub const EV_HUP: u32 = libc::EPOLLHUP as u32;
pub const EV_RDHUP: u32 = libc::EPOLLRDHUP as u32;
const EV_ET: u32 = libc::EPOLLET as u32;

/// One readiness event: the registered token and the event bits.
pub type Event = libc::epoll_event;

/// The token and bits of `event` (the struct is packed on x86_64, so copy the fields out).
pub fn event_parts(event: &Event) -> (u64, u32) {
    let token = event.u64;
    let bits = event.events;
    (token, bits)
}

/// An epoll instance; every socket is registered edge-triggered for both directions once.
pub struct Epoll {
    fd: OwnedFd,
}

impl Epoll {
    pub fn new() -> io::Result<Epoll> {
        // SAFETY: plain syscall with a flag argument; the result is checked before use.
        let fd = unsafe { libc::epoll_create1(libc::EPOLL_CLOEXEC) };
        if fd < 0 {
            return Err(io::Error::last_os_error());
        }
        // SAFETY: `fd` is a fresh descriptor that nothing else owns.
        Ok(Epoll {
            fd: unsafe { OwnedFd::from_raw_fd(fd) },
        })
    }

    /// Registers `fd` for IN | OUT | RDHUP, edge-triggered, with `token` returned in events.
    pub fn add(&self, fd: RawFd, token: u64) -> io::Result<()> {
        self.add_for(fd, token, EV_IN | EV_OUT | EV_RDHUP | EV_ET)
    }

    /// Registers `fd` for IN only, edge-triggered, with `token` returned in events.
    pub fn add_readable(&self, fd: RawFd, token: u64) -> io::Result<()> {
        self.add_for(fd, token, EV_IN | EV_ET)
    }

    fn add_for(&self, fd: RawFd, token: u64, events: u32) -> io::Result<()> {
        let mut event = libc::epoll_event { events, u64: token };
        // SAFETY: `event` is a valid epoll_event that outlives the call; both fds are open.
        let rc =
            unsafe { libc::epoll_ctl(self.fd.as_raw_fd(), libc::EPOLL_CTL_ADD, fd, &mut event) };
        if rc < 0 {
            return Err(io::Error::last_os_error());
        }
        Ok(())
    }

    /// Waits for events; `timeout_ns` is honoured to the nanosecond (epoll_pwait2).
    /// Returns the number of events written to the front of `events` (0 on timeout or EINTR).
    pub fn wait(&self, events: &mut [Event], timeout_ns: u64) -> io::Result<usize> {
        let timeout = libc::timespec {
            tv_sec: (timeout_ns / 1_000_000_000) as libc::time_t,
            tv_nsec: (timeout_ns % 1_000_000_000) as libc::c_long,
        };
        let max = events.len().min(i32::MAX as usize) as libc::c_int;
        // SAFETY: `events` is a writable array of `max` epoll_events and `timeout` a valid
        // timespec, both alive for the call; a null sigmask means "leave the mask alone".
        let n = unsafe {
            libc::epoll_pwait2(
                self.fd.as_raw_fd(),
                events.as_mut_ptr(),
                max,
                &timeout,
                std::ptr::null(),
            )
        };
        if n < 0 {
            let err = io::Error::last_os_error();
            if err.raw_os_error() == Some(libc::EINTR) {
                return Ok(0);
            }
            return Err(err);
        }
        Ok(n as usize)
    }
}

/// An empty event, to size the array [`Epoll::wait`] fills.
pub const NO_EVENT: Event = libc::epoll_event { events: 0, u64: 0 };
