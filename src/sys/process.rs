//! Process-wide facts and settings: RLIMIT_NOFILE, the stop signals and the SIGINT flag,
//! `sysconf`, CPU time and pinning, the monotonic clock, the allocator.

use std::io;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

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

/// The width in columns of the terminal stdout is, or `None` when stdout is not a terminal.
pub fn stdout_terminal_columns() -> Option<usize> {
    let mut size = libc::winsize {
        ws_row: 0,
        ws_col: 0,
        ws_xpixel: 0,
        ws_ypixel: 0,
    };
    // SAFETY: TIOCGWINSZ writes one `winsize` into `size`, which lives for the call.
    let done = unsafe { libc::ioctl(libc::STDOUT_FILENO, libc::TIOCGWINSZ, &mut size) };
    (done == 0 && size.ws_col > 0).then_some(usize::from(size.ws_col))
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

/// A resource limit as soft and hard values; `u64::MAX` stands for `unlimited`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Rlimit {
    pub soft: u64,
    pub hard: u64,
}

/// RLIMIT_NOFILE of this process; `None` when it cannot be read.
pub fn nofile_limit() -> Option<Rlimit> {
    let mut lim = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit writes into a valid rlimit struct we own.
    if unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim) } != 0 {
        return None;
    }
    let unlimited = |v: libc::rlim_t| {
        if v == libc::RLIM_INFINITY {
            u64::MAX
        } else {
            v
        }
    };
    Some(Rlimit {
        soft: unlimited(lim.rlim_cur),
        hard: unlimited(lim.rlim_max),
    })
}

/// Raises the soft RLIMIT_NOFILE towards `wanted`, never past the hard limit (which any process
/// may do), when it is below both. Returns the limit in force afterwards; `None` when it cannot
/// be read.
pub fn raise_nofile_limit(wanted: u64) -> Option<Rlimit> {
    let lim = nofile_limit()?;
    if lim.soft < wanted && lim.soft < lim.hard {
        let raised = libc::rlimit {
            rlim_cur: wanted.min(lim.hard),
            rlim_max: lim.hard,
        };
        // SAFETY: setrlimit reads a valid rlimit struct; raising the soft limit up to the hard
        // limit is always permitted. On failure the old limit stays in force.
        if unsafe { libc::setrlimit(libc::RLIMIT_NOFILE, &raised) } == 0 {
            return Some(Rlimit {
                soft: raised.rlim_cur,
                hard: lim.hard,
            });
        }
    }
    Some(lim)
}

/// The page size in bytes; `None` when sysconf cannot tell.
pub fn page_size() -> Option<u64> {
    // SAFETY: sysconf has no memory effects.
    let size = unsafe { libc::sysconf(libc::_SC_PAGESIZE) };
    (size > 0).then_some(size as u64)
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

fn stop_sigset() -> libc::sigset_t {
    // SAFETY: sigemptyset/sigaddset initialise and fill a sigset_t we own.
    unsafe {
        let mut set: libc::sigset_t = std::mem::zeroed();
        libc::sigemptyset(&mut set);
        libc::sigaddset(&mut set, libc::SIGINT);
        libc::sigaddset(&mut set, libc::SIGTERM);
        libc::sigaddset(&mut set, libc::SIGHUP);
        set
    }
}

/// Blocks SIGINT, SIGTERM and SIGHUP (reload) for the calling thread (and the threads it
/// spawns afterwards), so that only [`wait_for_stop_signal`] receives them.
pub fn block_stop_signals() {
    let set = stop_sigset();
    // SAFETY: blocks signals for this thread (inherited by threads spawned after it).
    unsafe { libc::pthread_sigmask(libc::SIG_BLOCK, &set, std::ptr::null_mut()) };
}

/// Waits up to `timeout` for SIGINT, SIGTERM or SIGHUP; returns the signal number.
pub fn wait_for_stop_signal(timeout: Duration) -> Option<i32> {
    let set = stop_sigset();
    let ts = libc::timespec {
        tv_sec: timeout.as_secs() as libc::time_t,
        tv_nsec: timeout.subsec_nanos() as libc::c_long,
    };
    // SAFETY: `set` and `ts` are valid for the call; a null siginfo pointer is allowed.
    let sig = unsafe { libc::sigtimedwait(&set, std::ptr::null_mut(), &ts) };
    (sig > 0).then_some(sig)
}

/// Makes the allocator give large buffers back to the system when they are freed: blocks of
/// `mmap_threshold_bytes` or more are mmapped (and unmapped on free) whatever sizes came
/// before, instead of glibc's default threshold that grows with every large free until large
/// message buffers stay in the heap. Without it, RSS after a burst of large messages or slow
/// readers stays near its peak (measured: 775 MB resident with 0 connections open after 100
/// non-reading echo clients).
pub fn return_large_buffers_to_the_system(mmap_threshold_bytes: usize) {
    // SAFETY: mallopt only sets allocator parameters; called before the reactors start.
    unsafe {
        libc::mallopt(libc::M_MMAP_THRESHOLD, mmap_threshold_bytes as libc::c_int);
    }
}

/// Returns the allocator's free memory to the system (all arenas): for after a burst, when
/// the connections' buffers have been freed. Takes milliseconds on a large heap: call rarely.
pub fn trim_free_memory() {
    // SAFETY: malloc_trim is thread-safe and only releases free memory.
    unsafe {
        libc::malloc_trim(0);
    }
}

/// Random bytes for keys, masks and ping payloads (unpredictable, not secret).
pub fn random_bytes<const N: usize>() -> [u8; N] {
    let mut bytes = [0u8; N];
    let from_kernel = std::fs::File::open("/dev/urandom")
        .and_then(|mut f| std::io::Read::read_exact(&mut f, &mut bytes));
    if from_kernel.is_err() {
        // std's hasher keys are seeded randomly per process; enough for a diagnostic's key.
        use std::hash::{BuildHasher as _, Hasher as _};
        for (i, chunk) in bytes.chunks_mut(8).enumerate() {
            let mut hasher = std::collections::hash_map::RandomState::new().build_hasher();
            hasher.write_usize(i);
            chunk.copy_from_slice(&hasher.finish().to_ne_bytes()[..chunk.len()]);
        }
    }
    bytes
}
