//! The io_uring of one core: set-up with the best flags the kernel has, SQE pushes that never
//! fail, and the `user_data` encoding that routes each completion back to its owner.

use std::collections::VecDeque;
use std::io;
use std::time::Duration;

use io_uring::{cqueue, squeue, types, IoUring};

/// What a completion is about (the top byte of `user_data`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(u8)]
pub enum Op {
    /// Multishot accept on the core's listener.
    Accept = 1,
    /// Multishot POLLIN on a connection.
    Readable = 2,
    /// One-shot POLLOUT on a backpressured connection.
    Writable = 3,
    /// Multishot POLLIN on the core's wake-up eventfd.
    Wake = 4,
    /// A cancel request; its own completion carries nothing we need.
    Cancel = 5,
    /// Multishot accept on the admin listener (core 0 only).
    AdminAccept = 6,
    /// Multishot POLLIN on an admin connection.
    AdminReadable = 7,
    /// One-shot POLLOUT on an admin connection.
    AdminWritable = 8,
}

impl Op {
    fn from_u8(v: u8) -> Option<Op> {
        Some(match v {
            1 => Op::Accept,
            2 => Op::Readable,
            3 => Op::Writable,
            4 => Op::Wake,
            5 => Op::Cancel,
            6 => Op::AdminAccept,
            7 => Op::AdminReadable,
            8 => Op::AdminWritable,
            _ => return None,
        })
    }
}

/// `user_data` = op (8 bits) | generation (24 bits) | slab key (32 bits). The generation lets a
/// late completion of a closed connection be recognised even when its slab slot was reused.
pub fn token(op: Op, key: u32, generation: u32) -> u64 {
    ((op as u64) << 56) | (((generation & 0x00FF_FFFF) as u64) << 32) | key as u64
}

/// Inverse of [`token`]: (op, key, generation mod 2^24).
pub fn untoken(user_data: u64) -> Option<(Op, u32, u32)> {
    let op = Op::from_u8((user_data >> 56) as u8)?;
    Some((
        op,
        user_data as u32,
        ((user_data >> 32) as u32) & 0x00FF_FFFF,
    ))
}

/// A completion copied out of the CQ, so handlers may push new submissions while processing.
#[derive(Clone, Copy, Debug)]
pub struct Completion {
    pub user_data: u64,
    pub result: i32,
    pub flags: u32,
}

impl Completion {
    /// True while a multishot request stays armed after this completion.
    pub fn more(&self) -> bool {
        cqueue::more(self.flags)
    }
}

/// Which optional set-up flags the kernel accepted (logged at start-up).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RingMode {
    /// SINGLE_ISSUER + DEFER_TASKRUN: completions run only when this thread enters the kernel.
    DeferTaskrun,
    /// COOP_TASKRUN: no inter-processor interrupts for task work.
    CoopTaskrun,
    Plain,
}

pub struct Ring {
    ring: IoUring,
    pub mode: RingMode,
    /// Submissions and completions seen, for metrics.
    pub submitted_total: u64,
    pub completed_total: u64,
    /// Entries that found the submission queue full, oldest first (see [`Ring::push`]).
    unqueued: VecDeque<squeue::Entry>,
    /// How many entries ever had to wait there.
    pub unqueued_total: u64,
}

impl Ring {
    /// Builds a ring with `entries` SQ slots (CQ twice that), trying the best flags first.
    pub fn new(entries: u32) -> io::Result<Ring> {
        type Configure = fn(&mut io_uring::Builder);
        let attempts: [(RingMode, Configure); 3] = [
            (RingMode::DeferTaskrun, |b| {
                b.setup_single_issuer().setup_defer_taskrun();
            }),
            (RingMode::CoopTaskrun, |b| {
                b.setup_coop_taskrun();
            }),
            (RingMode::Plain, |_| {}),
        ];
        let mut last_err = None;
        for (mode, configure) in attempts {
            let mut builder = IoUring::builder();
            builder.setup_cqsize(entries * 2);
            configure(&mut builder);
            match builder.build(entries) {
                Ok(ring) => {
                    let ring = Ring {
                        ring,
                        mode,
                        submitted_total: 0,
                        completed_total: 0,
                        unqueued: VecDeque::new(),
                        unqueued_total: 0,
                    };
                    // A registered ring fd saves an fget/fput per io_uring_enter; optional.
                    let _ = ring.ring.submitter().register_ring_fd();
                    return Ok(ring);
                }
                // EINVAL: the kernel does not know a flag; try the next, simpler set.
                Err(e) if e.raw_os_error() == Some(libc::EINVAL) => last_err = Some(e),
                Err(e) => return Err(e),
            }
        }
        Err(last_err.unwrap_or_else(|| io::Error::other("io_uring set-up failed")))
    }

    /// Queues one submission. When the SQ is full, what it holds is submitted and the push
    /// retried once; if the kernel cannot take more yet (its completion queue is full: EBUSY),
    /// the entry waits in `unqueued`, in order, until the next pass has reaped completions.
    /// Never spins: the wait is bounded by one loop pass.
    pub fn push(&mut self, entry: squeue::Entry) {
        if self.unqueued.is_empty() && self.try_push(&entry) {
            return;
        }
        if self.unqueued.is_empty() {
            match self.ring.submit() {
                Ok(_) if self.try_push(&entry) => return,
                Ok(_) => {}
                Err(e) => tracing::debug!("io_uring submit with a full submission queue: {e}"),
            }
        }
        self.unqueued.push_back(entry);
        self.unqueued_total += 1;
    }

    fn try_push(&mut self, entry: &squeue::Entry) -> bool {
        // SAFETY: every entry pushed by the reactor references only memory that outlives the
        // operation: fds it owns, or no buffer at all (polls, accepts, cancels).
        unsafe { self.ring.submission().push(entry) }.is_ok()
    }

    /// Moves waiting entries into the SQ while it has room.
    fn requeue(&mut self) {
        while let Some(entry) = self.unqueued.front() {
            let entry = entry.clone();
            if !self.try_push(&entry) {
                return;
            }
            self.unqueued.pop_front();
        }
    }

    /// Entries waiting for room in the submission queue.
    pub fn waiting(&self) -> usize {
        self.unqueued.len()
    }

    /// Submits queued entries and waits for at least `want` completions or `timeout`, then copies
    /// the completions into `out`.
    pub fn submit_and_wait(
        &mut self,
        want: usize,
        timeout: Option<Duration>,
        out: &mut Vec<Completion>,
    ) -> io::Result<()> {
        self.requeue();
        // Entries still waiting: reap what is there without sleeping, so they go in next pass.
        let want = if self.unqueued.is_empty() { want } else { 0 };
        self.submitted_total += self.ring.submission().len() as u64;
        let res = match timeout {
            Some(t) if want > 0 => {
                let ts = types::Timespec::from(t);
                let args = types::SubmitArgs::new().timespec(&ts);
                self.ring.submitter().submit_with_args(want, &args)
            }
            _ => self.ring.submitter().submit_and_wait(want),
        };
        match res {
            Ok(_) => {}
            Err(e)
                if matches!(
                    e.raw_os_error(),
                    Some(libc::ETIME) | Some(libc::EINTR) | Some(libc::EBUSY)
                ) => {}
            Err(e) => return Err(e),
        }
        out.clear();
        let cq = self.ring.completion();
        out.extend(cq.map(|c| Completion {
            user_data: c.user_data(),
            result: c.result(),
            flags: c.flags(),
        }));
        self.completed_total += out.len() as u64;
        Ok(())
    }

    /// Completions the kernel dropped because the CQ was full (kernels with NODROP never drop).
    pub fn cq_overflow(&mut self) -> u32 {
        self.ring.completion().overflow()
    }
}

/// Multishot POLLIN on `fd`.
pub fn poll_readable(fd: i32, user_data: u64) -> squeue::Entry {
    io_uring::opcode::PollAdd::new(types::Fd(fd), libc::POLLIN as u32)
        .multi(true)
        .build()
        .user_data(user_data)
}

/// One-shot POLLOUT on `fd`.
pub fn poll_writable(fd: i32, user_data: u64) -> squeue::Entry {
    io_uring::opcode::PollAdd::new(types::Fd(fd), libc::POLLOUT as u32)
        .build()
        .user_data(user_data)
}

/// Multishot accept returning non-blocking, close-on-exec sockets.
pub fn accept_multishot(listener_fd: i32, user_data: u64) -> squeue::Entry {
    io_uring::opcode::AcceptMulti::new(types::Fd(listener_fd))
        .flags(libc::SOCK_NONBLOCK | libc::SOCK_CLOEXEC)
        .build()
        .user_data(user_data)
}

/// Cancels the request whose `user_data` is `target`.
pub fn cancel(target: u64) -> squeue::Entry {
    io_uring::opcode::AsyncCancel::new(target)
        .build()
        .user_data(token(Op::Cancel, 0, 0))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn more_submissions_than_the_queues_hold_all_complete_without_spinning() {
        // 2 SQ slots and 4 CQ slots, 300 one-shot polls on an always-writable eventfd: pushes
        // overflow the SQ and completions overflow the CQ; every poll must still complete.
        let Ok(mut ring) = Ring::new(2) else {
            eprintln!("io_uring unavailable here: skipped");
            return;
        };
        let fd = crate::sys::eventfd::eventfd().expect("eventfd");
        const POLLS: u64 = 300;
        for i in 0..POLLS {
            ring.push(poll_writable(fd, i));
        }
        let mut seen = std::collections::HashSet::new();
        let mut out = Vec::new();
        for _ in 0..1000 {
            ring.submit_and_wait(1, Some(Duration::from_millis(10)), &mut out)
                .expect("submit");
            seen.extend(out.iter().map(|c| c.user_data));
            if seen.len() as u64 == POLLS {
                break;
            }
        }
        assert_eq!(seen.len() as u64, POLLS, "waiting: {}", ring.waiting());
        assert_eq!(ring.waiting(), 0);
        crate::sys::socket::close(fd);
    }

    #[test]
    fn token_round_trips_and_truncates_generation_to_24_bits() {
        let t = token(Op::Writable, 0xDEAD_BEEF, 0x1234_5678);
        assert_eq!(untoken(t), Some((Op::Writable, 0xDEAD_BEEF, 0x0034_5678)));
        assert_eq!(untoken(0), None);
    }
}
