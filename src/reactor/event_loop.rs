//! The event loop of one core: completions in, protocol calls, bytes out.
//!
//! Reads: a multishot POLLIN per connection (256 B of kernel state, no buffer), then `recv(2)`
//! into the core's one receive buffer. Writes: straight to the socket; only bytes the kernel
//! refuses are queued, per connection, with a one-shot POLLOUT until they drain.
//!
//! Every connection has exactly one deadline on the core's timer wheel at a time: the handshake
//! deadline, then the earliest of its heartbeat, idle and write-stall deadlines, then the close
//! deadline. Activity never touches the wheel: a deadline that fires early is recomputed and
//! re-armed, so a busy connection costs one timer visit per ping interval.

use std::os::fd::RawFd;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};

use slab::Slab;

use super::admin::AdminSide;
use super::conn::{flags, Conn, Phase, TokenBucket};
use super::gate::Gate;
use super::listener::Listener;
use super::ring::{self, Completion, Op, Ring};
use super::sys::{self, IoResult};
use super::timer_wheel::TimerWheel;
use super::Shared;
use crate::admin::{AdminRequest, AdminResponse};
use crate::app::{App, ConnId, CoreApp, Ctx, OpenInfo, PreparedFrame};
use crate::metrics::Exporter;
use crate::protocol::close::encode_close_payload;
use crate::protocol::frame::{encode_server_header, Opcode, MAX_HEADER_LEN};
use crate::protocol::handshake::{self, HandshakeLimits};
use crate::protocol::reader::{Event, Flow};
use crate::protocol::{CloseCode, Limits, MessageKind, Reader, Refusal, RefusalReason};
use crate::stats::{CoreStats, Initiator};

/// Timer resolution: every deadline is rounded up to the next tick.
pub const TICK: Duration = Duration::from_millis(100);
/// Slots of the timer wheel: 2^10 ticks of 100 ms = 102 s per revolution, so every default
/// timeout fires on its first visit.
const WHEEL_SLOTS: usize = 1024;
/// Receive rounds per readiness event before other connections get their turn.
const MAX_READS_PER_EVENT: usize = 4;
/// Accept failures are logged at most once per this many ticks (5 s).
const ACCEPT_LOG_INTERVAL_TICKS: u32 = 50;
/// Back-off before accepting again after EMFILE/ENFILE/ENOMEM (1 s): fds free up as clients go.
const ACCEPT_BACKOFF_TICKS: u32 = 10;
/// Frames up to this size are joined (header + payload) in the core's scratch buffer and sent
/// with `send(2)`: cheaper in the kernel than `sendmsg(2)` with two iovecs (no msghdr or iovec
/// import), measured with benches/echo_profile.sh.
const JOIN_FRAME_MAX_BYTES: usize = 4096;

/// The settings a core needs, converted to the units it uses.
#[derive(Clone, Debug)]
pub struct CoreSettings {
    pub limits: Limits,
    pub handshake: HandshakeLimits,
    pub handshake_timeout_ticks: u32,
    pub close_timeout_ticks: u32,
    pub ping_interval_ticks: u32,
    pub pong_timeout_ticks: u32,
    pub idle_timeout_ticks: Option<u32>,
    pub write_stall_timeout_ticks: u32,
    pub drain_timeout_ticks: u32,
    /// This core's share of `max_connections`.
    pub max_connections: usize,
    pub max_outbound_bytes: usize,
    /// Messages per second per connection; 0 = no limit.
    pub message_rate: u32,
    pub message_burst: u32,
    pub recv_buffer_size: usize,
    pub ring_entries: u32,
}

/// Whole ticks covering `d` (at least one).
pub fn ticks(d: Duration) -> u32 {
    let t = d.as_nanos().div_ceil(TICK.as_nanos());
    t.clamp(1, u32::MAX as u128 / 4) as u32
}

/// `deadline` has come at `now` (wrapping ticks).
fn reached(deadline: u32, now: u32) -> bool {
    (now.wrapping_sub(deadline) as i32) >= 0
}

fn earliest(a: u32, b: u32) -> u32 {
    if (a.wrapping_sub(b) as i32) < 0 {
        a
    } else {
        b
    }
}

/// Everything an app callback may touch through [`Ctx`]: the connections and the ring.
struct Io {
    core: usize,
    ring: Ring,
    conns: Slab<Conn>,
    wheel: TimerWheel,
    settings: CoreSettings,
    stats: Arc<CoreStats>,
    now_tick: u32,
    /// Set once the server is stopping: the tick by which every connection must be gone.
    drain_deadline: Option<u32>,
    /// Connections that left the open state since the app last heard, with the close code.
    released: Vec<(ConnId, Option<CloseCode>)>,
    fanout_latency: Arc<crate::stats::SecondsHistogram>,
    gate: Gate,
    /// Where a small frame's header and payload are joined for one `send(2)`.
    join_buf: Box<[u8]>,
}

pub struct Reactor<A: App> {
    io: Io,
    app: Arc<A>,
    core_app: A::Core,
    listener: Option<Listener>,
    wake_fd: RawFd,
    shared: Arc<Shared>,
    recv_buf: Box<[u8]>,
    response: Vec<u8>,
    completions: Vec<Completion>,
    expired: Vec<u32>,
    read_again: Vec<(u32, u32)>,
    read_again_next: Vec<(u32, u32)>,
    next_generation: u32,
    started: Instant,
    /// Tick at which a stopped multishot accept is armed again (None: armed).
    accept_rearm_at: Option<u32>,
    accept_errors_unlogged: u64,
    accept_logged_at: Option<u32>,
    /// The admin listener, on core 0 only.
    admin: Option<AdminSide>,
    handshake_duration: Arc<crate::stats::SecondsHistogram>,
    /// The app asked to be woken again (its inbox had more than one turn's worth).
    app_wants_wake: bool,
}

/// The resources the server hands one core: its index, listener, wake-up eventfd, the shared
/// stop flag and its counters.
pub struct CoreParts {
    pub core: usize,
    pub listener: Listener,
    pub wake_fd: RawFd,
    pub shared: Arc<Shared>,
    pub stats: Arc<CoreStats>,
}

/// What a core needs from the server's metrics: the admin side (core 0) and its histogram.
pub struct CoreObservers {
    pub admin: Option<AdminSide>,
    /// This core's handshake gate (policy, rate limiter, refusal log and debug ring).
    pub gate: Gate,
    pub handshake_duration: Arc<crate::stats::SecondsHistogram>,
    pub fanout_latency: Arc<crate::stats::SecondsHistogram>,
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
            wake_fd,
            shared,
            stats,
        } = parts;
        let ring = Ring::new(settings.ring_entries)?;
        tracing::debug!(core, mode = ?ring.mode, "io_uring ready");
        // A request head that straddles reads is re-parsed from the start of the buffer, so the
        // buffer must hold the largest head plus a read.
        let recv_size = settings
            .recv_buffer_size
            .max(settings.handshake.max_head_bytes * 2);
        let core_app = app.new_core(core);
        Ok(Reactor {
            io: Io {
                core,
                ring,
                conns: Slab::new(),
                wheel: TimerWheel::new(WHEEL_SLOTS, 0),
                settings,
                stats,
                now_tick: 0,
                drain_deadline: None,
                released: Vec::new(),
                fanout_latency: observers.fanout_latency,
                gate: observers.gate,
                join_buf: vec![0u8; JOIN_FRAME_MAX_BYTES].into_boxed_slice(),
            },
            app,
            core_app,
            listener: Some(listener),
            wake_fd,
            shared,
            recv_buf: vec![0u8; recv_size].into_boxed_slice(),
            response: Vec::with_capacity(512),
            completions: Vec::with_capacity(1024),
            expired: Vec::new(),
            read_again: Vec::new(),
            read_again_next: Vec::new(),
            next_generation: 0,
            started: Instant::now(),
            accept_rearm_at: None,
            accept_errors_unlogged: 0,
            accept_logged_at: None,
            admin: observers.admin,
            handshake_duration: observers.handshake_duration,
            app_wants_wake: false,
        })
    }

    fn arm_accept(&mut self) {
        if let Some(listener) = &self.listener {
            self.io.ring.push(ring::accept_multishot(
                listener.fd(),
                ring::token(Op::Accept, 0, 0),
            ));
        }
    }

    /// Runs until the server stops and this core's connections are drained.
    pub fn run(&mut self) -> std::io::Result<()> {
        self.arm_accept();
        if let Some(admin) = &self.admin {
            admin.arm_accept(&mut self.io.ring);
        }
        self.io.ring.push(ring::poll_readable(
            self.wake_fd,
            ring::token(Op::Wake, 0, 0),
        ));
        loop {
            let want = if self.read_again.is_empty() && !self.app_wants_wake {
                1
            } else {
                0
            };
            let mut completions = std::mem::take(&mut self.completions);
            self.io
                .ring
                .submit_and_wait(want, Some(TICK), &mut completions)?;
            self.io.now_tick = (self.started.elapsed().as_nanos() / TICK.as_nanos()) as u32;
            for c in completions.iter() {
                self.on_completion(*c);
            }
            self.completions = completions;

            std::mem::swap(&mut self.read_again, &mut self.read_again_next);
            for (key, generation) in std::mem::take(&mut self.read_again_next) {
                if self.io.is_current(key, generation) {
                    self.on_readable(key);
                }
            }

            if std::mem::take(&mut self.app_wants_wake) {
                self.app_wants_wake = self.core_app.on_wake(&mut self.io);
            }
            self.expire_timers();
            if let Some(at) = self.accept_rearm_at {
                if reached(at, self.io.now_tick) {
                    self.accept_rearm_at = None;
                    self.arm_accept();
                }
            }
            self.deliver_releases();
            self.publish_ring_stats();
            if let Some(admin) = self.admin.as_mut() {
                admin.expire(&mut self.io.ring);
            }
            if self.io.drain_deadline.is_none() && self.shared.stop.load(Ordering::Acquire) {
                self.begin_drain();
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

    /// Microseconds since the reactor started, wrapping (for durations under an hour).
    fn now_us(&self) -> u32 {
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
            Op::Accept => self.on_accept(c),
            Op::Wake => {
                sys::eventfd_drain(self.wake_fd);
                if !c.more() {
                    self.io.ring.push(ring::poll_readable(
                        self.wake_fd,
                        ring::token(Op::Wake, 0, 0),
                    ));
                }
                self.app_wants_wake = true;
            }
            Op::Readable => {
                if !self.io.is_current(key, generation) {
                    return; // a late completion of a released connection
                }
                if !c.more() {
                    // The kernel ended the multishot poll (error or overflow): arm it again.
                    let fd = self.io.conns[key as usize].fd;
                    self.io.ring.push(ring::poll_readable(
                        fd,
                        ring::token(Op::Readable, key, generation),
                    ));
                }
                if c.result >= 0 {
                    self.on_readable(key);
                }
            }
            Op::Writable => {
                if !self.io.is_current(key, generation) {
                    return;
                }
                self.io.conns[key as usize].flags &= !flags::WRITE_ARMED;
                self.io.flush(key);
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
                let exporter = admin.exporter.clone();
                let rings = admin.debug_rings.clone();
                let app = &*self.app;
                let draining = self.io.drain_deadline.is_some();
                let route = |req: &AdminRequest<'_>| {
                    admin_route(app, &exporter, rings.as_deref(), draining, req)
                };
                let max_body = app.admin_max_body_bytes();
                admin.on_readable(
                    &mut self.io.ring,
                    key,
                    generation,
                    c.more(),
                    max_body,
                    &route,
                );
            }
            Op::AdminWritable => {
                if let Some(admin) = self.admin.as_mut() {
                    admin.on_writable(&mut self.io.ring, key, generation);
                }
            }
        }
    }

    fn on_accept(&mut self, c: Completion) {
        if c.result == -libc::ECANCELED && self.listener.is_none() {
            return; // our own cancel at the start of the drain
        }
        if c.result < 0 {
            let errno = -c.result;
            self.io.stats.accept_error(errno);
            self.accept_errors_unlogged += 1;
            let now = self.io.now_tick;
            if self
                .accept_logged_at
                .is_none_or(|at| reached(at.wrapping_add(ACCEPT_LOG_INTERVAL_TICKS), now))
            {
                tracing::warn!(
                    core = self.io.core,
                    errors = self.accept_errors_unlogged,
                    "accept failed: {}; existing connections are still served, accepting again in {} ms{}",
                    std::io::Error::from_raw_os_error(errno),
                    ACCEPT_BACKOFF_TICKS * TICK.as_millis() as u32,
                    if errno == libc::EMFILE || errno == libc::ENFILE {
                        " (the open-file limit is reached: see `ringws check`)"
                    } else {
                        ""
                    }
                );
                self.accept_logged_at = Some(now);
                self.accept_errors_unlogged = 0;
            }
        } else {
            let fd = c.result as RawFd;
            if self.io.drain_deadline.is_some() {
                // Accepted just before the listener closed: let it upgrade, then say goodbye.
                tracing::debug!(core = self.io.core, "accepted during drain");
            }
            self.io.stats.accepted.inc();
            let generation = self.next_generation;
            self.next_generation = self.next_generation.wrapping_add(1);
            let now = self.io.now_tick;
            let mut conn = Conn::new(fd, generation, now);
            // Until the upgrade, last_msg_tick holds the accept time in µs (handshake duration).
            conn.last_msg_tick = self.now_us();
            let key = self.io.conns.insert(conn) as u32;
            self.io.ring.push(ring::poll_readable(
                fd,
                ring::token(Op::Readable, key, generation),
            ));
            self.io.wheel.schedule(
                key,
                now.wrapping_add(self.io.settings.handshake_timeout_ticks),
            );
        }
        if !c.more() && self.listener.is_some() {
            // Multishot accept stops on errors such as EMFILE: back off, keep serving.
            let backoff = if c.result < 0 {
                ACCEPT_BACKOFF_TICKS
            } else {
                1
            };
            self.accept_rearm_at = Some(self.io.now_tick.wrapping_add(backoff));
        }
    }

    /// Reads what the socket has and hands it to the handshake parser or the frame reader.
    fn on_readable(&mut self, key: u32) {
        for _ in 0..MAX_READS_PER_EVENT {
            let Some(conn) = self.io.conns.get_mut(key as usize) else {
                return;
            };
            let (fd, generation, phase) = (conn.fd, conn.generation, conn.phase);
            // Bytes left from the previous read go first.
            let pending = conn.extra.as_mut().map_or(0, |e| {
                let n = e.pending.len();
                self.recv_buf[..n].copy_from_slice(&e.pending);
                n
            });
            let room = self.recv_buf.len() - pending;
            let n = match sys::recv(fd, &mut self.recv_buf[pending..]) {
                IoResult::Done(n) => n,
                IoResult::WouldBlock => return,
                IoResult::Eof => return self.io.release(key, Initiator::Abnormal, None),
                IoResult::Failed(e) => {
                    tracing::debug!(core = self.io.core, "recv failed: {e}");
                    return self.io.release(key, Initiator::Abnormal, None);
                }
            };
            self.io.stats.socket_bytes_received.add(n as u64);
            if let Some(e) = conn.extra.as_mut() {
                e.pending.clear();
            }
            let len = pending + n;
            match phase {
                Phase::Handshake => self.on_request_bytes(key, len),
                Phase::Open | Phase::Closing => {
                    // Any bytes from the peer are life: no ping needed, and a ping is answered.
                    conn.last_rx_tick = self.io.now_tick;
                    if conn.has(flags::AWAITING_PONG) {
                        // The armed deadline is the pong timeout; the next ping is due one
                        // interval from now. At most once per ping, so O(1) per timer.
                        conn.flags &= !flags::AWAITING_PONG;
                        if phase == Phase::Open {
                            self.io.schedule_open_deadline(key);
                        }
                    }
                    self.on_frame_bytes(key, len)
                }
                Phase::Lingering => {}
            }
            if n < room {
                return; // a short read drained the socket; the next edge brings more
            }
            if !self.io.is_current(key, generation) {
                return;
            }
        }
        // Still readable: continue after the other connections had their turn.
        if let Some(conn) = self.io.conns.get(key as usize) {
            self.read_again.push((key, conn.generation));
        }
    }

    fn on_request_bytes(&mut self, key: u32, len: usize) {
        let limits = self.io.settings.handshake;
        let head = &self.recv_buf[..len];
        let parsed = handshake::parse_request(head, &limits);
        let request = match parsed {
            Ok(Some(req)) => req,
            Ok(None) => {
                let conn = &mut self.io.conns[key as usize];
                conn.extra_mut().pending.extend_from_slice(head);
                return;
            }
            Err(refusal) => {
                return self
                    .io
                    .refuse(key, &refusal, &mut self.response, None, None, head)
            }
        };
        let refused = |r: RefusalReason| (Refusal::new(r), None);
        let fd = self.io.conns[key as usize].fd;
        let now_ms = self.started.elapsed().as_millis() as u64;
        let now_unix_s = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_secs());
        let decision = if !self.app.serves_path(request.path) {
            Err(refused(RefusalReason::NotFound))
        } else if self.io.stats.connections_open.get() as usize >= self.io.settings.max_connections
        {
            Err(refused(RefusalReason::ServerFull))
        } else {
            self.io.gate.admit(&request, fd, now_ms, now_unix_s)
        };
        let accepted = match decision {
            Ok(accepted) => accepted,
            Err((refusal, client)) => {
                return self.io.refuse(
                    key,
                    &refusal,
                    &mut self.response,
                    client,
                    Some(&request),
                    head,
                );
            }
        };
        self.response.clear();
        handshake::write_accept(&mut self.response, request.key, accepted.protocol);
        self.io.write_raw(key, &self.response, &[]);
        if !self.io.conns.contains(key as usize) {
            return; // the write failed and released the connection
        }
        let head_len = request.head_len;
        let now = self.io.now_tick;
        let accepted_us = self.io.conns[key as usize].last_msg_tick;
        let handshake_us = self.now_us().wrapping_sub(accepted_us);
        self.handshake_duration.record(handshake_us as f64 / 1e6);
        let conn = &mut self.io.conns[key as usize];
        let (fd, generation) = (conn.fd, conn.generation);
        conn.phase = Phase::Open;
        conn.last_rx_tick = now;
        conn.last_msg_tick = now;
        conn.shrink();
        self.io.stats.handshakes_completed.inc();
        self.io
            .stats
            .connections_open
            .set(self.io.stats.connections_open.get() + 1);
        self.io.schedule_open_deadline(key);
        let id = ConnId { key, generation };
        let client_ip = (!accepted.client_ip.is_unspecified()).then_some(accepted.client_ip);
        let info = OpenInfo {
            path: request.path,
            query: request.query,
            protocol: accepted.protocol,
            subject: accepted.subject.as_deref(),
            client_ip,
            fd,
        };
        self.core_app.on_open(&mut self.io, id, &info);
        if self.io.drain_deadline.is_some() {
            self.io
                .close(id, CloseCode::GOING_AWAY, "server shutting down");
        }
        if len > head_len && self.io.is_current(key, generation) {
            // Frames sent right behind the request head.
            self.recv_buf.copy_within(head_len..len, 0);
            self.on_frame_bytes(key, len - head_len);
        }
    }

    /// Feeds `recv_buf[..len]` to the connection's frame reader.
    fn on_frame_bytes(&mut self, key: u32, len: usize) {
        let conn = &mut self.io.conns[key as usize];
        let generation = conn.generation;
        let id = ConnId { key, generation };
        // The reader moves out of the connection while it runs, so the app may send on this
        // connection (which may create its outbound queue) from inside the callback.
        let mut reader = conn
            .extra
            .as_mut()
            .map(|e| std::mem::take(&mut e.reader))
            .unwrap_or_default();
        let limits = self.io.settings.limits;
        let io = &mut self.io;
        let app = &mut self.core_app;
        let result = reader.feed(&mut self.recv_buf[..len], &limits, |event| {
            let Some(phase) = io.phase_of(id) else {
                return Flow::Stop;
            };
            match event {
                Event::Message(kind, payload) => {
                    if phase == Phase::Open && io.admit_message(key) {
                        io.stats.message_received(kind, payload.len());
                        app.on_message(io, id, kind, payload);
                    }
                }
                Event::Ping(payload) => {
                    if phase == Phase::Open {
                        io.write_frame(key, Opcode::Pong, payload);
                    }
                }
                Event::Pong(_) => {}
                Event::Close { code, .. } => {
                    io.on_peer_close(key, phase, code);
                    return Flow::Stop;
                }
            }
            match io.phase_of(id) {
                Some(Phase::Open) | Some(Phase::Closing) => Flow::Continue,
                _ => Flow::Stop,
            }
        });
        if !self.io.is_current(key, generation) {
            return;
        }
        match result {
            Err(err) => {
                self.io.stats.protocol_errors.inc();
                tracing::debug!(core = self.io.core, "protocol error: {err}");
                self.io.fail(key, err.code, err.reason);
            }
            Ok(consumed) => {
                let conn = &mut self.io.conns[key as usize];
                if !matches!(conn.phase, Phase::Open | Phase::Closing) {
                    return;
                }
                let rest = &self.recv_buf[consumed..len];
                if !rest.is_empty() || !reader.is_idle() {
                    let extra = conn.extra_mut();
                    extra.pending.extend_from_slice(rest);
                    extra.reader = reader;
                } else {
                    conn.shrink(); // idle again: no per-connection read state at all
                }
            }
        }
    }

    fn expire_timers(&mut self) {
        let mut expired = std::mem::take(&mut self.expired);
        self.io.wheel.advance(self.io.now_tick, &mut expired);
        for &key in &expired {
            let Some(conn) = self.io.conns.get(key as usize) else {
                continue;
            };
            match conn.phase {
                Phase::Handshake => {
                    self.io.stats.handshake_timeouts.inc();
                    self.io.abort(key, Initiator::Abnormal, None);
                }
                Phase::Closing | Phase::Lingering => {
                    self.io.stats.close_timeouts.inc();
                    if self.io.drain_deadline.is_some() {
                        self.io.stats.drained_forced.inc();
                    }
                    let code = Some(conn.sent_close_code).filter(|&c| c != 0);
                    self.io.abort(key, Initiator::Server, code);
                }
                Phase::Open => self.io.on_open_deadline(key),
            }
        }
        expired.clear();
        self.expired = expired;
    }

    fn deliver_releases(&mut self) {
        for (id, code) in self.io.released.drain(..) {
            self.core_app.on_close(id, code);
        }
    }

    /// Stop accepting (the listener closes, so a new process on the same port takes over),
    /// and send every open connection close 1001.
    fn begin_drain(&mut self) {
        self.io.drain_deadline = Some(
            self.io
                .now_tick
                .wrapping_add(self.io.settings.drain_timeout_ticks),
        );
        self.io
            .ring
            .push(ring::cancel(ring::token(Op::Accept, 0, 0)));
        self.accept_rearm_at = None;
        self.listener = None; // closes this core's listening socket
        let open: Vec<ConnId> = self
            .io
            .conns
            .iter()
            .filter(|(_, c)| c.phase == Phase::Open)
            .map(|(k, c)| ConnId {
                key: k as u32,
                generation: c.generation,
            })
            .collect();
        tracing::debug!(core = self.io.core, open = open.len(), "draining");
        for id in open {
            self.io
                .close(id, CloseCode::GOING_AWAY, "server shutting down");
        }
        self.deliver_releases();
    }

    /// The drain timeout passed: reset whatever is left.
    fn force_release_all(&mut self) {
        let keys: Vec<u32> = self.io.conns.iter().map(|(k, _)| k as u32).collect();
        for key in keys {
            self.io.stats.drained_forced.inc();
            self.io
                .abort(key, Initiator::Server, Some(CloseCode::GOING_AWAY.0));
        }
        self.deliver_releases();
    }
}

impl Io {
    fn is_current(&self, key: u32, generation: u32) -> bool {
        self.conns
            .get(key as usize)
            .is_some_and(|c| c.generation & 0x00FF_FFFF == generation & 0x00FF_FFFF)
    }

    fn phase_of(&self, id: ConnId) -> Option<Phase> {
        self.conns
            .get(id.key as usize)
            .filter(|c| c.generation == id.generation)
            .map(|c| c.phase)
    }

    /// Per-core jitter of the heartbeat (up to 1/8 of the interval, early), derived from the
    /// connection's identity so it costs no memory: connections opened in the same tick do not
    /// all ping in the same tick.
    fn ping_jitter(&self, key: u32, generation: u32) -> u32 {
        let h = (key as u64 ^ ((generation as u64) << 32)).wrapping_mul(0x9E37_79B9_7F4A_7C15);
        ((h >> 40) as u32) % (self.settings.ping_interval_ticks / 8 + 1)
    }

    /// The earliest of an open connection's heartbeat, idle and write-stall deadlines.
    fn open_deadline(&self, key: u32) -> u32 {
        let c = &self.conns[key as usize];
        let s = &self.settings;
        let mut d = if c.has(flags::AWAITING_PONG) {
            c.last_rx_tick
                .wrapping_add(s.ping_interval_ticks + s.pong_timeout_ticks)
        } else {
            c.last_rx_tick
                .wrapping_add(s.ping_interval_ticks - self.ping_jitter(key, c.generation))
        };
        if let Some(idle) = s.idle_timeout_ticks {
            d = earliest(d, c.last_msg_tick.wrapping_add(idle));
        }
        if let Some(e) = c.extra.as_ref().filter(|e| !e.outbound.is_empty()) {
            d = earliest(
                d,
                e.outbound
                    .progress_tick
                    .wrapping_add(s.write_stall_timeout_ticks),
            );
        }
        d
    }

    fn schedule_open_deadline(&mut self, key: u32) {
        let d = self.open_deadline(key);
        self.wheel.schedule(key, d);
    }

    /// An open connection's deadline fired: stall, heartbeat timeout, idle timeout, or ping.
    fn on_open_deadline(&mut self, key: u32) {
        let now = self.now_tick;
        let s = self.settings.clone();
        let c = &self.conns[key as usize];
        let id = ConnId {
            key,
            generation: c.generation,
        };
        if let Some(e) = c.extra.as_ref().filter(|e| !e.outbound.is_empty()) {
            if reached(
                e.outbound
                    .progress_tick
                    .wrapping_add(s.write_stall_timeout_ticks),
                now,
            ) {
                self.stats.write_stall_closes.inc();
                tracing::debug!(
                    core = self.core,
                    queued = e.outbound.len(),
                    "write stall: closing"
                );
                return self.abort(key, Initiator::Server, None);
            }
        }
        if c.has(flags::AWAITING_PONG)
            && reached(
                c.last_rx_tick
                    .wrapping_add(s.ping_interval_ticks + s.pong_timeout_ticks),
                now,
            )
        {
            self.stats.heartbeat_timeouts.inc();
            let code = CloseCode::GOING_AWAY;
            if c.extra.as_ref().is_none_or(|e| e.outbound.is_empty()) {
                self.write_close(key, Some(code), "heartbeat timeout");
            }
            if self.conns.contains(key as usize) {
                self.abort(key, Initiator::Server, Some(code.0));
            }
            return;
        }
        if s.idle_timeout_ticks
            .is_some_and(|idle| reached(c.last_msg_tick.wrapping_add(idle), now))
        {
            self.stats.idle_timeouts.inc();
            return self.close(id, CloseCode::GOING_AWAY, "idle timeout");
        }
        let ping_due = c
            .last_rx_tick
            .wrapping_add(s.ping_interval_ticks - self.ping_jitter(key, c.generation));
        if !c.has(flags::AWAITING_PONG) && reached(ping_due, now) {
            self.stats.heartbeat_pings_sent.inc();
            self.write_frame(key, Opcode::Ping, b"");
            match self.conns.get_mut(key as usize) {
                Some(c) => c.flags |= flags::AWAITING_PONG,
                None => return,
            }
        }
        self.schedule_open_deadline(key);
    }

    /// The per-connection message rate limit: false (and close 1008) when exceeded.
    fn admit_message(&mut self, key: u32) -> bool {
        let now = self.now_tick;
        let s = &self.settings;
        let conn = &mut self.conns[key as usize];
        conn.last_msg_tick = now;
        if s.message_rate == 0 {
            return true;
        }
        // Refill per tick, in thousandths of a message.
        let per_tick = s.message_rate as u64 * TICK.as_millis() as u64;
        let burst = s.message_burst;
        let bucket = conn
            .extra_mut()
            .bucket
            .get_or_insert_with(|| TokenBucket::full(burst, now));
        if bucket.take(burst, per_tick, now) {
            return true;
        }
        self.stats.rate_limit_closes.inc();
        let id = ConnId {
            key,
            generation: conn.generation,
        };
        self.close(
            id,
            CloseCode::POLICY_VIOLATION,
            "message rate limit exceeded",
        );
        false
    }

    /// Writes `a` then `b` to the socket, queueing whatever the kernel does not take. Adding to a
    /// queue that would then pass `max_outbound_bytes` closes the connection as a slow consumer
    /// (1008).
    fn write_raw(&mut self, key: u32, a: &[u8], b: &[u8]) {
        let total = a.len() + b.len();
        let conn = &mut self.conns[key as usize];
        let queued = conn.outbound_len();
        if queued > 0 {
            // Keep order behind bytes already waiting.
            if queued + total > self.settings.max_outbound_bytes {
                return self.slow_consumer(key);
            }
            conn.extra_mut().outbound.push(a, b);
            self.stats
                .outbound_queued_bytes
                .set(self.stats.outbound_queued_bytes.get() + total as u64);
            return;
        }
        let result = if !b.is_empty() && total <= JOIN_FRAME_MAX_BYTES {
            self.join_buf[..a.len()].copy_from_slice(a);
            self.join_buf[a.len()..total].copy_from_slice(b);
            sys::send2(conn.fd, &self.join_buf[..total], &[])
        } else {
            sys::send2(conn.fd, a, b)
        };
        let sent = match result {
            IoResult::Done(n) => n,
            IoResult::WouldBlock | IoResult::Eof => 0,
            IoResult::Failed(e) => {
                tracing::debug!(core = self.core, "send failed: {e}");
                return self.release(key, Initiator::Abnormal, None);
            }
        };
        self.stats.socket_bytes_sent.add(sent as u64);
        if sent == total {
            return;
        }
        // A connection with nothing queued may always queue one whole message (so a message up
        // to max_message_size can be sent at all); a queue that is already backed up is held to
        // max_outbound_bytes. Memory per connection: max_outbound_bytes + one message.
        let now = self.now_tick;
        let out = &mut conn.extra_mut().outbound;
        if sent < a.len() {
            out.push(&a[sent..], b);
        } else {
            out.push(&b[sent - a.len()..], &[]);
        }
        out.progress_tick = now;
        self.stats
            .outbound_queued_bytes
            .set(self.stats.outbound_queued_bytes.get() + (total - sent) as u64);
        self.stats
            .backpressured_connections
            .set(self.stats.backpressured_connections.get() + 1);
        self.arm_writable(key);
        if conn_is_open(&self.conns[key as usize]) {
            // The write-stall deadline may be earlier than the armed one.
            self.schedule_open_deadline(key);
        }
    }

    /// The peer does not read: stop producing for it, queue a 1008 behind what it has not read,
    /// and give it the close timeout to take it.
    fn slow_consumer(&mut self, key: u32) {
        self.stats.slow_consumer_closes.inc();
        let conn = &mut self.conns[key as usize];
        tracing::debug!(
            core = self.core,
            queued = conn.outbound_len(),
            "slow consumer: closing with 1008"
        );
        let code = CloseCode::POLICY_VIOLATION;
        let mut payload = [0u8; 125];
        let n = encode_close_payload(&mut payload, code, "slow consumer: outbound buffer full");
        let mut header = [0u8; MAX_HEADER_LEN];
        let h = encode_server_header(&mut header, true, Opcode::Close, n as u64);
        let had_queue = conn.outbound_len() > 0;
        let out = &mut conn.extra_mut().outbound;
        out.push(&header[..h], &payload[..n]);
        conn.sent_close_code = code.0;
        // Not released after the flush: the peer may still be sending, and closing a socket with
        // unread input resets it, destroying the 1008 before the peer reads it. Lingering shuts
        // our side down after the flush and discards input until EOF or the close timeout.
        self.stats
            .outbound_queued_bytes
            .set(self.stats.outbound_queued_bytes.get() + (h + n) as u64);
        if !had_queue {
            self.stats
                .backpressured_connections
                .set(self.stats.backpressured_connections.get() + 1);
        }
        self.arm_writable(key);
        self.linger(key, Initiator::Server, Some(code.0));
    }

    fn write_frame(&mut self, key: u32, opcode: Opcode, payload: &[u8]) {
        let mut header = [0u8; MAX_HEADER_LEN];
        let n = encode_server_header(&mut header, true, opcode, payload.len() as u64);
        self.write_raw(key, &header[..n], payload);
    }

    fn write_close(&mut self, key: u32, code: Option<CloseCode>, reason: &str) {
        let mut payload = [0u8; 125];
        let n = match code {
            Some(code) => encode_close_payload(&mut payload, code, reason),
            None => 0,
        };
        if let Some(c) = self.conns.get_mut(key as usize) {
            c.sent_close_code = code.map_or(0, |c| c.0);
        }
        self.write_frame(key, Opcode::Close, &payload[..n]);
    }

    fn arm_writable(&mut self, key: u32) {
        let conn = &mut self.conns[key as usize];
        if !conn.has(flags::WRITE_ARMED) {
            conn.flags |= flags::WRITE_ARMED;
            let entry =
                ring::poll_writable(conn.fd, ring::token(Op::Writable, key, conn.generation));
            self.ring.push(entry);
        }
    }

    /// The socket is writable again: send queued bytes.
    fn flush(&mut self, key: u32) {
        let now = self.now_tick;
        let conn = &mut self.conns[key as usize];
        let Some(extra) = conn.extra.as_mut() else {
            return;
        };
        let out = &mut extra.outbound;
        while !out.is_empty() {
            match sys::send2(conn.fd, out.unsent(), &[]) {
                IoResult::Done(n) => {
                    out.consume(n);
                    out.progress_tick = now;
                    self.stats.socket_bytes_sent.add(n as u64);
                    self.stats.outbound_queued_bytes.set(
                        self.stats
                            .outbound_queued_bytes
                            .get()
                            .saturating_sub(n as u64),
                    );
                }
                IoResult::WouldBlock | IoResult::Eof => return self.arm_writable(key),
                IoResult::Failed(e) => {
                    tracing::debug!(core = self.core, "send failed: {e}");
                    return self.release(key, Initiator::Abnormal, None);
                }
            }
        }
        self.stats
            .backpressured_connections
            .set(self.stats.backpressured_connections.get().saturating_sub(1));
        conn.shrink();
        if conn.has(flags::RELEASE_AFTER_FLUSH) {
            return self.release(key, Initiator::Server, None);
        }
        if conn.has(flags::SHUTDOWN_AFTER_FLUSH) {
            conn.flags &= !flags::SHUTDOWN_AFTER_FLUSH;
            sys::shutdown_write(conn.fd);
        }
    }

    /// An upgraded connection stops being open: count how it ended and tell the app.
    fn end_open(&mut self, key: u32, initiator: Initiator, code: Option<u16>) {
        let conn = &self.conns[key as usize];
        debug_assert!(conn_is_open(conn));
        self.stats.closed(initiator, code);
        self.stats
            .connections_open
            .set(self.stats.connections_open.get().saturating_sub(1));
        self.released.push((
            ConnId {
                key,
                generation: conn.generation,
            },
            code.map(CloseCode),
        ));
    }

    /// Stop talking: shut our side down once queued bytes are out, then discard input until the
    /// peer closes or the close timeout passes.
    fn linger(&mut self, key: u32, initiator: Initiator, code: Option<u16>) {
        if conn_is_open(&self.conns[key as usize]) {
            self.end_open(key, initiator, code);
        }
        let deadline = self
            .now_tick
            .wrapping_add(self.settings.close_timeout_ticks);
        let conn = &mut self.conns[key as usize];
        conn.phase = Phase::Lingering;
        if let Some(e) = conn.extra.as_mut() {
            e.pending = Vec::new();
            e.reader = Reader::default();
            e.bucket = None;
        }
        conn.shrink();
        if conn.outbound_len() > 0 {
            conn.flags |= flags::SHUTDOWN_AFTER_FLUSH;
        } else {
            sys::shutdown_write(conn.fd);
        }
        self.wheel.schedule(key, deadline);
    }

    /// Answers a refused handshake and lingers.
    /// Answers a refused handshake, counts, logs (rate-limited) and records it, and lingers.
    fn refuse(
        &mut self,
        key: u32,
        refusal: &Refusal,
        response: &mut Vec<u8>,
        client: Option<std::net::IpAddr>,
        request: Option<&handshake::UpgradeRequest<'_>>,
        head: &[u8],
    ) {
        self.stats.refused(refusal.reason);
        let fd = self.conns[key as usize].fd;
        let now_ms = self.now_tick as u64 * TICK.as_millis() as u64;
        let now_unix_s = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_secs());
        self.gate.note_refusal(
            self.core, fd, client, request, head, refusal, now_ms, now_unix_s,
        );
        response.clear();
        handshake::write_refusal(response, refusal);
        self.write_raw(key, response, &[]);
        if self.conns.contains(key as usize) {
            self.linger(key, Initiator::Server, None);
        }
    }

    /// Fails the connection: close frame with `code`, then linger.
    fn fail(&mut self, key: u32, code: CloseCode, reason: &str) {
        self.write_close(key, Some(code), reason);
        if self.conns.contains(key as usize) {
            self.linger(key, Initiator::Server, Some(code.0));
        }
    }

    /// The peer sent a close frame.
    fn on_peer_close(&mut self, key: u32, phase: Phase, code: Option<CloseCode>) {
        let (initiator, counted_code) = if phase == Phase::Open {
            // Echo the peer's code (RFC 6455 §5.5.1), then close TCP: the server closes first.
            self.write_close(key, code, "");
            (Initiator::Peer, code.map(|c| c.0))
        } else {
            if self.drain_deadline.is_some() {
                self.stats.drained_cleanly.inc();
            }
            (
                Initiator::Server,
                self.conns
                    .get(key as usize)
                    .map(|c| c.sent_close_code)
                    .filter(|&c| c != 0),
            )
        };
        let Some(conn) = self.conns.get_mut(key as usize) else {
            return;
        };
        if conn.outbound_len() > 0 {
            conn.flags |= flags::RELEASE_AFTER_FLUSH;
            self.linger(key, initiator, counted_code);
        } else {
            self.release(key, initiator, counted_code);
        }
    }

    /// Releases with an abortive close (RST): for peers that are gone or will not read, so the
    /// kernel frees their buffers at once instead of retrying for minutes.
    fn abort(&mut self, key: u32, initiator: Initiator, code: Option<u16>) {
        let conn = &self.conns[key as usize];
        if conn.outbound_len() > 0 || conn.phase == Phase::Handshake {
            sys::set_linger_zero(conn.fd);
        }
        self.release(key, initiator, code);
    }

    /// Releases the connection now: cancels its ring requests, closes the fd, frees the slot.
    fn release(&mut self, key: u32, initiator: Initiator, code: Option<u16>) {
        if conn_is_open(&self.conns[key as usize]) {
            self.end_open(key, initiator, code);
        }
        let conn = self.conns.remove(key as usize);
        self.ring.push(ring::cancel(ring::token(
            Op::Readable,
            key,
            conn.generation,
        )));
        if conn.has(flags::WRITE_ARMED) {
            self.ring.push(ring::cancel(ring::token(
                Op::Writable,
                key,
                conn.generation,
            )));
        }
        let queued = conn.outbound_len() as u64;
        if queued > 0 {
            self.stats.outbound_queued_bytes.set(
                self.stats
                    .outbound_queued_bytes
                    .get()
                    .saturating_sub(queued),
            );
            self.stats
                .backpressured_connections
                .set(self.stats.backpressured_connections.get().saturating_sub(1));
        }
        self.wheel.cancel(key);
        sys::close(conn.fd);
    }
}

fn conn_is_open(c: &Conn) -> bool {
    matches!(c.phase, Phase::Open | Phase::Closing)
}

impl Ctx for Io {
    fn send(&mut self, conn: ConnId, kind: MessageKind, payload: &[u8]) -> bool {
        if self.phase_of(conn) != Some(Phase::Open) {
            return false;
        }
        self.stats.message_sent(kind, payload.len());
        self.write_frame(conn.key, kind.opcode(), payload);
        true
    }

    fn close(&mut self, conn: ConnId, code: CloseCode, reason: &str) {
        if self.phase_of(conn) != Some(Phase::Open) {
            return;
        }
        self.write_close(conn.key, Some(code), reason);
        let deadline = self
            .now_tick
            .wrapping_add(self.settings.close_timeout_ticks);
        if let Some(c) = self.conns.get_mut(conn.key as usize) {
            if c.phase == Phase::Open {
                c.phase = Phase::Closing;
                self.wheel.schedule(conn.key, deadline);
            }
        }
    }

    fn core(&self) -> usize {
        self.core
    }

    fn send_prepared(&mut self, conn: ConnId, frame: &PreparedFrame) -> bool {
        if self.phase_of(conn) != Some(Phase::Open) {
            return false;
        }
        self.stats.message_sent(frame.kind(), frame.payload_len());
        self.write_raw(conn.key, frame.bytes(), &[]);
        true
    }

    fn record_fanout_latency(&mut self, seconds: f64) {
        self.fanout_latency.record(seconds);
    }
}

/// The admin listener's routes: built-ins first, then the app's.
fn admin_route<A: App>(
    app: &A,
    exporter: &Exporter,
    debug_rings: Option<&Vec<Arc<std::sync::Mutex<crate::policy::DebugRing>>>>,
    draining: bool,
    req: &AdminRequest<'_>,
) -> AdminResponse {
    match (req.method, req.path) {
        ("GET", "/debug/handshakes") => match debug_rings {
            Some(rings) => {
                let guards: Vec<_> = rings.iter().filter_map(|r| r.lock().ok()).collect();
                let json = crate::policy::DebugRing::merged_json(guards.iter().map(|g| &**g));
                AdminResponse::json(200, &json)
            }
            None => AdminResponse::text(
                404,
                "the handshake debug view is off: start ringws with --debug-handshakes on (admin listener only)",
            ),
        },
        ("GET", "/metrics") => {
            let mut r = AdminResponse::text(200, exporter.render());
            r.content_type = "text/plain; version=0.0.4; charset=utf-8";
            r
        }
        ("GET", "/healthz") if draining => AdminResponse::text(503, "draining: the server is shutting down"),
        ("GET", "/healthz") => AdminResponse::text(200, "ok"),
        (_, "/metrics") | (_, "/healthz") => AdminResponse::text(405, "use GET").with_header("Allow", "GET"),
        _ => app.admin(req).unwrap_or_else(|| {
            let msg = format!("no admin endpoint {} {} (try GET /metrics or GET /healthz)", req.method, req.path);
            AdminResponse::text(404, msg)
        }),
    }
}
