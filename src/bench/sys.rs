//! The raw-fd boundary of the load generator: epoll, non-blocking send/recv, the monotonic clock,
//! CPU pinning, the SIGINT flag and a few process facts. Every `unsafe` block of `bench` lives here.

use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::sync::atomic::{AtomicBool, Ordering};

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
        let mut event = libc::epoll_event {
            events: EV_IN | EV_OUT | EV_RDHUP | EV_ET,
            u64: token,
        };
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

/// Outcome of a non-blocking read or write.
#[derive(Debug)]
pub enum IoResult {
    /// Bytes moved (> 0).
    Done(usize),
    /// Nothing to read / no room to write until the next edge.
    WouldBlock,
    /// The peer closed its side (reads only).
    Eof,
    /// A hard error, with its errno.
    Failed(i32),
}

fn classify(n: isize) -> IoResult {
    if n > 0 {
        return IoResult::Done(n as usize);
    }
    if n == 0 {
        return IoResult::Eof;
    }
    let errno = io::Error::last_os_error().raw_os_error().unwrap_or(0);
    match errno {
        libc::EAGAIN | libc::EINTR => IoResult::WouldBlock,
        _ => IoResult::Failed(errno),
    }
}

/// `recv(2)` into `buf`.
pub fn recv(fd: RawFd, buf: &mut [u8]) -> IoResult {
    // SAFETY: `buf` is a valid, writable region of `buf.len()` bytes for the duration of the call.
    let n = unsafe { libc::recv(fd, buf.as_mut_ptr().cast(), buf.len(), 0) };
    classify(n)
}

/// `send(2)` of `buf` without SIGPIPE. `buf` must not be empty.
pub fn send(fd: RawFd, buf: &[u8]) -> IoResult {
    debug_assert!(!buf.is_empty());
    // SAFETY: `buf` is a valid readable region of `buf.len()` bytes for the duration of the call.
    let n = unsafe { libc::send(fd, buf.as_ptr().cast(), buf.len(), libc::MSG_NOSIGNAL) };
    match classify(n) {
        IoResult::Eof => IoResult::WouldBlock,
        other => other,
    }
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

/// CLOCK_MONOTONIC in nanoseconds (vDSO, no syscall).
pub fn mono_ns() -> u64 {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: `ts` is a valid, writable timespec; CLOCK_MONOTONIC always exists on Linux.
    unsafe { libc::clock_gettime(libc::CLOCK_MONOTONIC, &mut ts) };
    ts.tv_sec as u64 * 1_000_000_000 + ts.tv_nsec as u64
}

/// Pins the calling thread to `cpu`.
pub fn pin_to_cpu(cpu: usize) -> io::Result<()> {
    if cpu >= libc::CPU_SETSIZE as usize {
        return Err(io::Error::from_raw_os_error(libc::EINVAL));
    }
    // SAFETY: a zeroed cpu_set_t is the empty set; CPU_SET writes inside it (cpu < CPU_SETSIZE)
    // and sched_setaffinity only reads `size_of::<cpu_set_t>()` bytes of it.
    let rc = unsafe {
        let mut set: libc::cpu_set_t = std::mem::zeroed();
        libc::CPU_SET(cpu, &mut set);
        libc::sched_setaffinity(0, std::mem::size_of::<libc::cpu_set_t>(), &set)
    };
    if rc != 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

/// True when stderr is a terminal (live progress is printed only then).
pub fn stderr_is_tty() -> bool {
    // SAFETY: isatty only inspects the descriptor number.
    unsafe { libc::isatty(libc::STDERR_FILENO) == 1 }
}

/// Clock ticks per second, the unit of utime/stime in /proc/PID/stat.
pub fn clock_ticks_per_s() -> u64 {
    // SAFETY: sysconf has no memory effects.
    let ticks = unsafe { libc::sysconf(libc::_SC_CLK_TCK) };
    if ticks > 0 {
        ticks as u64
    } else {
        100
    }
}

/// User + system CPU time this process has used, in microseconds.
pub fn process_cpu_us() -> u64 {
    // SAFETY: a zeroed rusage is valid and getrusage only writes into it.
    let usage = unsafe {
        let mut usage: libc::rusage = std::mem::zeroed();
        libc::getrusage(libc::RUSAGE_SELF, &mut usage);
        usage
    };
    let us = |t: libc::timeval| t.tv_sec as u64 * 1_000_000 + t.tv_usec as u64;
    us(usage.ru_utime) + us(usage.ru_stime)
}

/// Raises the soft open-file limit to the hard limit; returns the resulting soft limit.
pub fn raise_nofile_limit() -> u64 {
    let mut lim = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: `lim` is a valid, writable rlimit.
    if unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim) } != 0 {
        return 1024;
    }
    if lim.rlim_cur < lim.rlim_max {
        let raised = libc::rlimit {
            rlim_cur: lim.rlim_max,
            rlim_max: lim.rlim_max,
        };
        // SAFETY: `raised` is a valid rlimit; on failure the old limit stays in force.
        if unsafe { libc::setrlimit(libc::RLIMIT_NOFILE, &raised) } == 0 {
            return raised.rlim_cur;
        }
    }
    lim.rlim_cur
}

static INTERRUPTED: AtomicBool = AtomicBool::new(false);

extern "C" fn on_sigint(_signal: libc::c_int) {
    // Only an atomic store: async-signal-safe.
    INTERRUPTED.store(true, Ordering::Relaxed);
}

/// Routes SIGINT (Ctrl-C) to a flag that the run checks, so it can stop early and still report.
/// A second Ctrl-C kills the process as usual (SA_RESETHAND).
pub fn install_sigint_handler() {
    // SAFETY: a zeroed sigaction is valid; the handler only performs an atomic store, which is
    // async-signal-safe, and `action` outlives the call.
    unsafe {
        let mut action: libc::sigaction = std::mem::zeroed();
        action.sa_sigaction = on_sigint as extern "C" fn(libc::c_int) as libc::sighandler_t;
        action.sa_flags = libc::SA_RESETHAND;
        libc::sigemptyset(&mut action.sa_mask);
        libc::sigaction(libc::SIGINT, &action, std::ptr::null_mut());
    }
}

/// True once Ctrl-C was pressed (only after [`install_sigint_handler`]).
pub fn interrupted() -> bool {
    INTERRUPTED.load(Ordering::Relaxed)
}
