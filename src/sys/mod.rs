//! The libc boundary: every `unsafe` libc call of the crate lives in this module, each with its
//! `// SAFETY:` justification, behind a safe function. The rest of the crate uses `libc` only for
//! plain constants (errno values, signal numbers).
//!
//! - [`socket`]: raw-fd socket syscalls (`recv`, `send`/`sendmsg`, `shutdown`, `close`, socket
//!   options, the peer address);
//! - [`epoll`]: the epoll instance that `bench` drives its client sockets with;
//! - [`eventfd`]: the eventfd that wakes a reactor from another thread;
//! - [`process`]: process-wide facts and settings: RLIMIT_NOFILE, stop signals and SIGINT,
//!   `sysconf`, CPU time, CPU pinning, the monotonic clock, the allocator.

pub mod epoll;
pub mod eventfd;
pub mod process;
pub mod socket;
