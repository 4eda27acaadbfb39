//! The event loop of one core: completions in, connection calls, effects out.
//!
//! One pass: submit what is queued and wait for completions (at most one tick), dispatch each
//! completion by kind ([`accept`](super::accept), [`inbound`](super::inbound), writability,
//! the admin listener, the app's wake-up), give sockets that still had bytes another read, let
//! the app run its inbox, expire deadlines ([`deadlines`](super::deadlines)), tell the app which
//! connections ended, and free released connections last.

use std::os::fd::RawFd;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};

use super::accept::AcceptState;
use super::admin::AdminSide;
use super::conns::{CoreSettings, Io, OpenConnections};
use super::drain::Drain;
use super::gate::Gate;
use super::listener::Listener;
use super::proxy::RefusalLog;
use super::ring::{self, Completion, Op, Ring};
use super::timer_wheel::TimerWheel;
use super::tls::FailureLog;
use super::Shared;
use crate::app::{App, CoreApp};
use crate::protocol::connection::reached;
use crate::stats::{CoreStats, SecondsHistogram};
use crate::sys::eventfd;
use crate::tls::session::MAX_CARRY_BYTES;
use crate::tls::{CoreTls, TlsShared};

/// Timer resolution: every deadline is rounded up to the next tick.
pub const TICK: Duration = Duration::from_millis(100);
/// Slots of the timer wheel: 2^10 ticks of 100 ms = 102 s per revolution, so every default
/// timeout fires on its first visit.
const WHEEL_SLOTS: usize = 1024;

/// Whole ticks covering `d` (at least one).
pub fn ticks(d: Duration) -> u32 {
    let t = d.as_nanos().div_ceil(TICK.as_nanos());
    t.clamp(1, u32::MAX as u128 / 4) as u32
}

pub struct Reactor<A: App> {
    pub(super) io: Io,
    pub(super) app: Arc<A>,
    pub(super) core_app: A::Core,
    pub(super) accept: AcceptState,
    /// The TLS listener's accepts (`tls_listen`), and the configuration of new sessions.
    pub(super) tls_accept: Option<AcceptState>,
    pub(super) core_tls: Option<CoreTls>,
    pub(super) tls_failure_log: FailureLog,
    pub(super) proxy_refusal_log: RefusalLog,
    /// Generation of the next accepted connection (both listeners).
    pub(super) next_generation: u32,
    wake_fd: RawFd,
    shared: Arc<Shared>,
    /// The core's one receive buffer, shared by all its connections.
    pub(super) recv_buf: Box<[u8]>,
    /// Ciphertext read from wss connections, decrypted from here into `recv_buf` (empty
    /// without a TLS listener).
    pub(super) tls_in: Box<[u8]>,
    completions: Vec<Completion>,
    pub(super) expired: Vec<u32>,
    /// Sockets that filled the receive buffer: read again after the others had a turn.
    pub(super) read_again: Vec<(u32, u32)>,
    read_again_next: Vec<(u32, u32)>,
    pub(super) started: Instant,
    /// The admin listener, on core 0 only.
    admin: Option<AdminSide>,
    pub(super) handshake_duration: Arc<SecondsHistogram>,
    /// The app asked to be woken again (its inbox had more than one turn's worth).
    app_wants_wake: bool,
    /// The most this core's connections held since memory was last given back.
    pub(super) held_peak_bytes: u64,
    /// This core's drain, from the stop flag on.
    pub(super) drain: Option<Drain>,
}

/// The resources the server hands one core: its index, listener, wake-up eventfd, the shared
/// stop flag and its counters.
pub struct CoreParts {
    pub core: usize,
    pub listener: Listener,
    /// The core's `tls_listen` listener and the server's TLS configuration.
    pub tls: Option<(Listener, Arc<TlsShared>)>,
    pub wake_fd: RawFd,
    pub shared: Arc<Shared>,
    pub stats: Arc<CoreStats>,
}

/// What a core needs from the server's metrics: the admin side (core 0) and its histogram.
pub struct CoreObservers {
    pub admin: Option<AdminSide>,
    /// This core's handshake gate (policy, rate limiter, refusal log and debug ring).
    pub gate: Gate,
    pub handshake_duration: Arc<SecondsHistogram>,
    pub fanout_latency: Arc<SecondsHistogram>,
}

impl<A: App> Reactor<A> {
    pub fn new(
        app: Arc<A>,
        parts: CoreParts,
        settings: CoreSettings,
        observers: CoreObservers,
    ) -> std::io::Result<Reactor<A>> {
        let CoreParts {
            core,
            listener,
            tls,
            wake_fd,
            shared,
            stats,
        } = parts;
        let ring = Ring::new(settings.ring_entries)?;
        tracing::debug!(core, mode = ?ring.mode, "io_uring ready");
        // A request head that straddles reads is re-parsed from the start of the buffer, so the
        // buffer must hold the largest head plus a read.
        let mut recv_size = settings
            .recv_buffer_size
            .max(settings.conn.handshake.max_head_bytes * 2);
        if tls.is_some() {
            // Ciphertext (carried records and a read) decrypts into the room after a carried
            // request head.
            recv_size += MAX_CARRY_BYTES;
        }
        let (tls_accept, core_tls) = match tls {
            Some((listener, shared)) => (
                Some(AcceptState::new(listener, true)),
                Some(CoreTls::new(shared)),
            ),
            None => (None, None),
        };
        let core_app = app.new_core(core);
        let open: Arc<OpenConnections> = shared.open.clone();
        Ok(Reactor {
            io: Io::new(
                core,
                ring,
                TimerWheel::new(WHEEL_SLOTS, 0),
                settings,
                stats,
                open,
                observers.fanout_latency,
                observers.gate,
                core_tls.is_some(),
            ),
            app,
            core_app,
            accept: AcceptState::new(listener, false),
            tls_in: vec![0u8; if core_tls.is_some() { recv_size } else { 0 }].into_boxed_slice(),
            tls_accept,
            core_tls,
            tls_failure_log: FailureLog::default(),
            proxy_refusal_log: RefusalLog::default(),
            next_generation: 0,
            wake_fd,
            shared,
            recv_buf: vec![0u8; recv_size].into_boxed_slice(),
            completions: Vec::with_capacity(1024),
            expired: Vec::new(),
            read_again: Vec::new(),
            read_again_next: Vec::new(),
            started: Instant::now(),
            admin: observers.admin,
            handshake_duration: observers.handshake_duration,
            app_wants_wake: false,
            held_peak_bytes: 0,
            drain: None,
        })
    }

    /// Runs until the server stops and this core's connections are drained.
    pub fn run(&mut self) -> std::io::Result<()> {
        self.accept.arm(&mut self.io.ring);
        if let Some(tls_accept) = &self.tls_accept {
            tls_accept.arm(&mut self.io.ring);
        }
        if let Some(admin) = &self.admin {
            admin.arm_accept(&mut self.io.ring);
        }
        self.io.ring.push(ring::poll_readable(
            self.wake_fd,
            ring::token(Op::Wake, 0, 0),
        ));
        loop {
            let idle = self.read_again.is_empty() && !self.app_wants_wake;
            let mut completions = std::mem::take(&mut self.completions);
            self.io
                .ring
                .submit_and_wait(usize::from(idle), Some(TICK), &mut completions)?;
            self.io.now_tick = (self.started.elapsed().as_nanos() / TICK.as_nanos()) as u32;
            for c in completions.iter() {
                self.on_completion(*c);
            }
            self.completions = completions;

            std::mem::swap(&mut self.read_again, &mut self.read_again_next);
            for (key, generation) in std::mem::take(&mut self.read_again_next) {
                if self.io.current(key, generation) {
                    self.on_readable(key);
                }
            }

            if std::mem::take(&mut self.app_wants_wake) {
                self.app_wants_wake = self.core_app.on_wake(&mut self.io);
            }
            self.expire_timers();
            super::inbound::close_expired_tokens(&mut self.io);
            self.enforce_budget();
            self.accept
                .rearm_if_due(&mut self.io.ring, self.io.now_tick);
            if let Some(tls_accept) = self.tls_accept.as_mut() {
                tls_accept.rearm_if_due(&mut self.io.ring, self.io.now_tick);
            }
            self.end_pass();
            if let Some(admin) = self.admin.as_mut() {
                let draining = self.shared.stop.load(Ordering::Acquire);
                admin.expire(&mut self.io.ring, &*self.app, draining);
            }
            if self.drain.is_none() && self.shared.stop.load(Ordering::Acquire) {
                self.begin_drain();
            } else {
                self.advance_drain();
            }
            if let Some(deadline) = self.io.drain_deadline {
                if self.io.conns.is_empty() || reached(deadline, self.io.now_tick) {
                    self.force_release_all();
                    if let Some(admin) = self.admin.as_mut() {
                        admin.close_all(&mut self.io.ring);
                    }
                    // Submit the last cancels so the kernel lets go of the sockets now.
                    self.io
                        .ring
                        .submit_and_wait(0, None, &mut self.completions)?;
                    return Ok(());
                }
            }
        }
    }

    /// The end of a loop pass: the app hears of connections that ended, then released
    /// connections are freed (nothing can reach them any more).
    pub(super) fn end_pass(&mut self) {
        for (id, code) in self.io.left_open.drain(..) {
            self.io.gate.forget_expiry(id.key, id.generation);
            self.core_app.on_close(id, code);
        }
        self.io.free_released();
        self.publish_ring_stats();
    }

    /// Microseconds since the reactor started, wrapping (for durations under an hour).
    pub(super) fn now_us(&self) -> u32 {
        self.started.elapsed().as_micros() as u32
    }

    fn publish_ring_stats(&mut self) {
        let s = &self.io.stats;
        s.ring_submissions.set(self.io.ring.submitted_total);
        s.ring_completions.set(self.io.ring.completed_total);
        let overflow = self.io.ring.cq_overflow() as u64;
        s.ring_cq_overflows.set(overflow);
    }

    fn on_completion(&mut self, c: Completion) {
        let Some((op, key, generation)) = ring::untoken(c.user_data) else {
            return;
        };
        match op {
            Op::Accept => self.on_accept(c, key == 1),
            Op::Wake => {
                eventfd::eventfd_drain(self.wake_fd);
                if !c.more() {
                    self.io.ring.push(ring::poll_readable(
                        self.wake_fd,
                        ring::token(Op::Wake, 0, 0),
                    ));
                }
                self.app_wants_wake = true;
            }
            Op::Readable => {
                if !self.io.current(key, generation) {
                    return; // a late completion of a freed connection
                }
                let slot = &self.io.conns[key as usize];
                if !c.more() && !slot.conn.is_released() {
                    // The kernel ended the multishot poll (error or overflow): arm it again.
                    let token = ring::token(Op::Readable, key, generation);
                    self.io.ring.push(ring::poll_readable(slot.fd, token));
                }
                if c.result >= 0 {
                    self.on_readable(key);
                }
            }
            Op::Writable => {
                if self.io.current(key, generation) {
                    self.io.on_writable(key);
                }
            }
            Op::Cancel => {}
            Op::AdminAccept => {
                if let Some(admin) = self.admin.as_mut() {
                    admin.on_accept(&mut self.io.ring, c.result, c.more());
                }
            }
            Op::AdminReadable => {
                let Some(admin) = self.admin.as_mut() else {
                    return;
                };
                let draining = self.shared.stop.load(Ordering::Acquire);
                admin.on_readable(
                    &mut self.io.ring,
                    key,
                    generation,
                    c.more(),
                    &*self.app,
                    draining,
                );
            }
            Op::AdminWritable => {
                if let Some(admin) = self.admin.as_mut() {
                    admin.on_writable(&mut self.io.ring, key, generation);
                }
            }
        }
    }
}
