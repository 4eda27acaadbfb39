//! The event loop of one core: completions in, protocol calls, bytes out.
//!
//! Reads: a multishot POLLIN per connection (256 B of kernel state, no buffer), then `recv(2)`
//! into the core's one receive buffer. Writes: straight to the socket; only bytes the kernel
//! refuses are queued, per connection, with a one-shot POLLOUT until they drain.

use std::os::fd::RawFd;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};

use slab::Slab;

use super::conn::{flags, Conn, Inbound, Outbound, Phase};
use super::listener::Listener;
use super::ring::{self, Completion, Op, Ring};
use super::sys::{self, IoResult};
use super::timer_wheel::TimerWheel;
use super::Shared;
use crate::app::{App, ConnId, CoreApp, Ctx, OpenInfo};
use crate::protocol::close::encode_close_payload;
use crate::protocol::frame::{encode_server_header, Opcode, MAX_HEADER_LEN};
use crate::protocol::handshake::{self, HandshakeLimits};
use crate::protocol::reader::{Event, Flow};
use crate::protocol::{CloseCode, Limits, MessageKind, Reader, Refusal, RefusalReason};
use crate::stats::CoreStats;

/// Timer resolution: every deadline is rounded up to the next tick.
pub const TICK: Duration = Duration::from_millis(100);
/// Slots of the timer wheel: 2^10 ticks of 100 ms = 102 s per revolution, so every default
/// timeout fires on its first visit.
const WHEEL_SLOTS: usize = 1024;
/// Receive rounds per readiness event before other connections get their turn.
const MAX_READS_PER_EVENT: usize = 4;

/// The settings a core needs, converted to the units it uses.
#[derive(Clone, Debug)]
pub struct CoreSettings {
    pub limits: Limits,
    pub handshake: HandshakeLimits,
    pub handshake_timeout_ticks: u32,
    pub close_timeout_ticks: u32,
    pub max_connections: usize,
    pub recv_buffer_size: usize,
    pub ring_entries: u32,
}

pub fn ticks(d: Duration) -> u32 {
    let t = d.as_nanos().div_ceil(TICK.as_nanos());
    t.clamp(1, u32::MAX as u128 / 4) as u32
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
    /// Connections released since the app last heard, with the close code seen or sent.
    released: Vec<(ConnId, Option<CloseCode>)>,
}

pub struct Reactor<A: App> {
    io: Io,
    app: Arc<A>,
    core_app: A::Core,
    listener: Listener,
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
    /// Tick at which a failed multishot accept is armed again (None: armed).
    accept_rearm_at: Option<u32>,
}

impl<A: App> Reactor<A> {
    pub fn new(
        core: usize,
        app: Arc<A>,
        listener: Listener,
        wake_fd: RawFd,
        shared: Arc<Shared>,
        stats: Arc<CoreStats>,
        settings: CoreSettings,
    ) -> std::io::Result<Reactor<A>> {
        let ring = Ring::new(settings.ring_entries)?;
        tracing::debug!(core, mode = ?ring.mode, "io_uring ready");
        // A request head that straddles reads is re-parsed from the start of the buffer, so the
        // buffer must hold the largest head plus a read.
        let recv_size = settings.recv_buffer_size.max(settings.handshake.max_head_bytes * 2);
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
                released: Vec::new(),
            },
            app,
            core_app,
            listener,
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
        })
    }

    /// Runs until the server's stop flag is set.
    pub fn run(&mut self) -> std::io::Result<()> {
        self.io.ring.push(ring::accept_multishot(self.listener.fd(), ring::token(Op::Accept, 0, 0)));
        self.io.ring.push(ring::poll_readable(self.wake_fd, ring::token(Op::Wake, 0, 0)));
        loop {
            let want = if self.read_again.is_empty() { 1 } else { 0 };
            let mut completions = std::mem::take(&mut self.completions);
            self.io.ring.submit_and_wait(want, Some(TICK), &mut completions)?;
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

            self.expire_timers();
            if let Some(at) = self.accept_rearm_at {
                if self.io.now_tick.wrapping_sub(at) as i32 >= 0 {
                    self.accept_rearm_at = None;
                    self.io.ring.push(ring::accept_multishot(self.listener.fd(), ring::token(Op::Accept, 0, 0)));
                }
            }
            self.deliver_releases();
            if self.shared.stop.load(Ordering::Acquire) {
                self.shutdown_now();
                return Ok(());
            }
        }
    }

    fn on_completion(&mut self, c: Completion) {
        let Some((op, key, generation)) = ring::untoken(c.user_data) else { return };
        match op {
            Op::Accept => self.on_accept(c),
            Op::Wake => {
                sys::eventfd_drain(self.wake_fd);
                if !c.more() {
                    self.io.ring.push(ring::poll_readable(self.wake_fd, ring::token(Op::Wake, 0, 0)));
                }
            }
            Op::Readable => {
                if !self.io.is_current(key, generation) {
                    return; // a late completion of a released connection
                }
                if !c.more() {
                    // The kernel ended the multishot poll (error or overflow): arm it again.
                    let fd = self.io.conns[key as usize].fd;
                    self.io.ring.push(ring::poll_readable(fd, ring::token(Op::Readable, key, generation)));
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
        }
    }

    fn on_accept(&mut self, c: Completion) {
        if c.result < 0 {
            let errno = -c.result;
            self.io.stats.accept_errors.inc();
            tracing::warn!(core = self.io.core, "accept failed: {}", std::io::Error::from_raw_os_error(errno));
        } else {
            let fd = c.result as RawFd;
            self.io.stats.accepted.inc();
            let generation = self.next_generation;
            self.next_generation = self.next_generation.wrapping_add(1);
            let key = self.io.conns.insert(Conn::new(fd, generation)) as u32;
            self.io.ring.push(ring::poll_readable(fd, ring::token(Op::Readable, key, generation)));
            let deadline = self.io.now_tick.wrapping_add(self.io.settings.handshake_timeout_ticks);
            self.io.wheel.schedule(key, deadline);
        }
        if !c.more() {
            // Multishot accept ends on errors such as EMFILE: back off one tick, keep serving.
            self.accept_rearm_at = Some(self.io.now_tick.wrapping_add(1));
        }
    }

    /// Reads what the socket has and hands it to the handshake parser or the frame reader.
    fn on_readable(&mut self, key: u32) {
        for _ in 0..MAX_READS_PER_EVENT {
            let Some(conn) = self.io.conns.get_mut(key as usize) else { return };
            let (fd, generation, phase) = (conn.fd, conn.generation, conn.phase);
            // Bytes left from the previous read go first.
            let pending = conn.inbound.as_mut().map_or(0, |ib| {
                let n = ib.pending.len();
                self.recv_buf[..n].copy_from_slice(&ib.pending);
                n
            });
            let room = self.recv_buf.len() - pending;
            let n = match sys::recv(fd, &mut self.recv_buf[pending..]) {
                IoResult::Done(n) => n,
                IoResult::WouldBlock => return,
                IoResult::Eof => {
                    let code = if phase == Phase::Open { None } else { Some(CloseCode::NORMAL) };
                    if phase == Phase::Open {
                        self.io.stats.closed_abnormally.inc();
                    }
                    self.io.release(key, code);
                    return;
                }
                IoResult::Failed(e) => {
                    tracing::debug!(core = self.io.core, "recv failed: {e}");
                    self.io.stats.closed_abnormally.inc();
                    self.io.release(key, None);
                    return;
                }
            };
            if let Some(ib) = conn.inbound.as_mut() {
                ib.pending.clear();
            }
            let len = pending + n;
            match phase {
                Phase::Handshake => self.on_request_bytes(key, len),
                Phase::Open | Phase::Closing => {
                    self.io.stats.bytes_received.add(n as u64);
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
        let parsed = handshake::parse_request(&self.recv_buf[..len], &limits);
        let request = match parsed {
            Ok(Some(req)) => req,
            Ok(None) => {
                let conn = &mut self.io.conns[key as usize];
                conn.inbound.get_or_insert_with(Default::default).pending.extend_from_slice(&self.recv_buf[..len]);
                return;
            }
            Err(refusal) => return self.io.refuse(key, &refusal, &mut self.response),
        };
        if !self.app.serves_path(request.path) {
            return self.io.refuse(key, &Refusal { reason: RefusalReason::NotFound }, &mut self.response);
        }
        if self.io.stats.connections_open.get() as usize >= self.io.settings.max_connections {
            return self.io.refuse(key, &Refusal { reason: RefusalReason::ServerFull }, &mut self.response);
        }
        self.response.clear();
        handshake::write_accept(&mut self.response, request.key, None);
        self.io.write_raw(key, &self.response, &[]);
        let head_len = request.head_len;
        let path_len = request.path.len();
        let conn = &mut self.io.conns[key as usize];
        let (fd, generation) = (conn.fd, conn.generation);
        if let Some(ib) = conn.inbound.take() {
            debug_assert!(ib.is_idle() || !ib.pending.is_empty());
        }
        conn.phase = Phase::Open;
        self.io.wheel.cancel(key);
        self.io.stats.handshakes_completed.inc();
        self.io.stats.connections_open.set(self.io.stats.connections_open.get() + 1);
        let id = ConnId { key, generation };
        let info = OpenInfo { path: request.path, query: request.query, fd };
        debug_assert_eq!(info.path.len(), path_len);
        self.core_app.on_open(&mut self.io, id, &info);
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
        let mut inbound = conn.inbound.take();
        let mut fresh = Reader::default();
        let reader = match inbound.as_mut() {
            Some(ib) => &mut ib.reader,
            None => &mut fresh,
        };
        let limits = self.io.settings.limits;
        let io = &mut self.io;
        let app = &mut self.core_app;
        let result = reader.feed(&mut self.recv_buf[..len], &limits, |event| {
            let Some(phase) = io.phase_of(id) else { return Flow::Stop };
            match event {
                Event::Message(kind, payload) => {
                    if phase == Phase::Open {
                        io.stats.messages_received.inc();
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
                let phase = self.io.conns[key as usize].phase;
                if !matches!(phase, Phase::Open | Phase::Closing) {
                    return;
                }
                let rest = &self.recv_buf[consumed..len];
                let keep_reader = match inbound.as_ref() {
                    Some(ib) => !ib.reader.is_idle(),
                    None => !fresh.is_idle(),
                };
                if rest.is_empty() && !keep_reader {
                    return; // idle again: no per-connection read state at all
                }
                let mut ib = inbound.unwrap_or_else(|| Box::new(Inbound { pending: Vec::new(), reader: fresh }));
                ib.pending.extend_from_slice(rest);
                self.io.conns[key as usize].inbound = Some(ib);
            }
        }
    }

    fn expire_timers(&mut self) {
        let mut expired = std::mem::take(&mut self.expired);
        self.io.wheel.advance(self.io.now_tick, &mut expired);
        for &key in &expired {
            let Some(conn) = self.io.conns.get(key as usize) else { continue };
            match conn.phase {
                Phase::Handshake => {
                    self.io.stats.handshake_timeouts.inc();
                    self.io.release(key, None);
                }
                Phase::Closing | Phase::Lingering => {
                    self.io.stats.close_timeouts.inc();
                    self.io.release(key, None);
                }
                Phase::Open => {}
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

    /// Stop: close every socket (the graceful drain is the lifecycle's job).
    fn shutdown_now(&mut self) {
        let keys: Vec<u32> = self.io.conns.iter().map(|(k, _)| k as u32).collect();
        for key in keys {
            self.io.release(key, Some(CloseCode::GOING_AWAY));
        }
        self.deliver_releases();
    }
}

impl Io {
    fn is_current(&self, key: u32, generation: u32) -> bool {
        self.conns.get(key as usize).is_some_and(|c| c.generation & 0x00FF_FFFF == generation & 0x00FF_FFFF)
    }

    fn phase_of(&self, id: ConnId) -> Option<Phase> {
        self.conns.get(id.key as usize).filter(|c| c.generation == id.generation).map(|c| c.phase)
    }

    /// Writes `a` then `b` to the socket, queueing whatever the kernel does not take.
    fn write_raw(&mut self, key: u32, a: &[u8], b: &[u8]) {
        let conn = &mut self.conns[key as usize];
        if let Some(out) = conn.outbound.as_mut() {
            out.push(a, b); // keep order behind bytes already waiting
            return;
        }
        let total = a.len() + b.len();
        let sent = match sys::send2(conn.fd, a, b) {
            IoResult::Done(n) => n,
            IoResult::WouldBlock | IoResult::Eof => 0,
            IoResult::Failed(e) => {
                tracing::debug!(core = self.core, "send failed: {e}");
                self.stats.closed_abnormally.inc();
                self.release(key, None);
                return;
            }
        };
        self.stats.bytes_sent.add(sent as u64);
        if sent == total {
            return;
        }
        let mut out = Box::<Outbound>::default();
        if sent < a.len() {
            out.push(&a[sent..], b);
        } else {
            out.push(&b[sent - a.len()..], &[]);
        }
        conn.outbound = Some(out);
        self.stats.backpressured.inc();
        self.arm_writable(key);
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
        self.write_frame(key, Opcode::Close, &payload[..n]);
    }

    fn arm_writable(&mut self, key: u32) {
        let conn = &mut self.conns[key as usize];
        if !conn.has(flags::WRITE_ARMED) {
            conn.flags |= flags::WRITE_ARMED;
            let entry = ring::poll_writable(conn.fd, ring::token(Op::Writable, key, conn.generation));
            self.ring.push(entry);
        }
    }

    /// The socket is writable again: send queued bytes.
    fn flush(&mut self, key: u32) {
        let conn = &mut self.conns[key as usize];
        let Some(out) = conn.outbound.as_mut() else { return };
        while !out.is_empty() {
            match sys::send2(conn.fd, out.unsent(), &[]) {
                IoResult::Done(n) => {
                    out.consume(n);
                    self.stats.bytes_sent.add(n as u64);
                }
                IoResult::WouldBlock | IoResult::Eof => return self.arm_writable(key),
                IoResult::Failed(e) => {
                    tracing::debug!(core = self.core, "send failed: {e}");
                    self.stats.closed_abnormally.inc();
                    return self.release(key, None);
                }
            }
        }
        conn.outbound = None;
        if conn.has(flags::RELEASE_AFTER_FLUSH) {
            return self.release(key, None);
        }
        if conn.has(flags::SHUTDOWN_AFTER_FLUSH) {
            conn.flags &= !flags::SHUTDOWN_AFTER_FLUSH;
            sys::shutdown_write(conn.fd);
        }
    }

    /// Stop talking: shut our side down once queued bytes are out, then discard input until the
    /// peer closes or the close timeout passes.
    fn linger(&mut self, key: u32) {
        let deadline = self.now_tick.wrapping_add(self.settings.close_timeout_ticks);
        let conn = &mut self.conns[key as usize];
        if conn.phase == Phase::Open || conn.phase == Phase::Closing {
            self.stats.connections_open.set(self.stats.connections_open.get().saturating_sub(1));
        }
        conn.phase = Phase::Lingering;
        conn.inbound = None;
        if conn.outbound.is_some() {
            conn.flags |= flags::SHUTDOWN_AFTER_FLUSH;
        } else {
            sys::shutdown_write(conn.fd);
        }
        self.wheel.schedule(key, deadline);
    }

    /// Answers a refused handshake and lingers.
    fn refuse(&mut self, key: u32, refusal: &Refusal, response: &mut Vec<u8>) {
        self.stats.refused(refusal.reason);
        if tracing::enabled!(tracing::Level::DEBUG) {
            let peer = sys::peer_addr(self.conns[key as usize].fd);
            tracing::debug!(
                core = self.core,
                peer = %peer.map_or_else(|| "?".to_string(), |p| p.to_string()),
                status = refusal.reason.status(),
                reason = refusal.reason.label(),
                "handshake refused: {}",
                refusal.reason.message()
            );
        }
        response.clear();
        handshake::write_refusal(response, refusal);
        self.write_raw(key, response, &[]);
        if self.conns.contains(key as usize) {
            self.linger(key);
        }
    }

    /// Fails the connection: close frame with `code`, then linger.
    fn fail(&mut self, key: u32, code: CloseCode, reason: &str) {
        self.write_close(key, Some(code), reason);
        if self.conns.contains(key as usize) {
            let generation = self.conns[key as usize].generation;
            self.released_note(key, generation, Some(code));
            self.linger(key);
        }
    }

    fn released_note(&mut self, key: u32, generation: u32, code: Option<CloseCode>) {
        self.released.push((ConnId { key, generation }, code));
    }

    /// The peer sent a close frame.
    fn on_peer_close(&mut self, key: u32, phase: Phase, code: Option<CloseCode>) {
        if phase == Phase::Open {
            // Echo the peer's code (RFC 6455 §5.5.1), then close TCP: the server closes first.
            self.write_close(key, code, "");
            self.stats.closed_by_peer.inc();
        } else {
            self.stats.closed_by_server.inc();
        }
        let Some(conn) = self.conns.get_mut(key as usize) else { return };
        if conn.outbound.is_some() {
            conn.flags |= flags::RELEASE_AFTER_FLUSH;
            let generation = conn.generation;
            self.released_note(key, generation, code);
            self.linger(key);
        } else {
            self.release(key, code);
        }
    }

    /// Releases the connection now: cancels its ring requests, closes the fd, frees the slot.
    fn release(&mut self, key: u32, code: Option<CloseCode>) {
        let conn = self.conns.remove(key as usize);
        self.ring.push(ring::cancel(ring::token(Op::Readable, key, conn.generation)));
        if conn.has(flags::WRITE_ARMED) {
            self.ring.push(ring::cancel(ring::token(Op::Writable, key, conn.generation)));
        }
        self.wheel.cancel(key);
        sys::close(conn.fd);
        match conn.phase {
            Phase::Open | Phase::Closing => {
                self.stats.connections_open.set(self.stats.connections_open.get().saturating_sub(1));
                self.released.push((ConnId { key, generation: conn.generation }, code));
            }
            Phase::Handshake | Phase::Lingering => {}
        }
    }
}

impl Ctx for Io {
    fn send(&mut self, conn: ConnId, kind: MessageKind, payload: &[u8]) -> bool {
        if self.phase_of(conn) != Some(Phase::Open) {
            return false;
        }
        self.stats.messages_sent.inc();
        self.write_frame(conn.key, kind.opcode(), payload);
        true
    }

    fn close(&mut self, conn: ConnId, code: CloseCode, reason: &str) {
        if self.phase_of(conn) != Some(Phase::Open) {
            return;
        }
        self.write_close(conn.key, Some(code), reason);
        let deadline = self.now_tick.wrapping_add(self.settings.close_timeout_ticks);
        if let Some(c) = self.conns.get_mut(conn.key as usize) {
            c.phase = Phase::Closing;
            self.wheel.schedule(conn.key, deadline);
        }
    }

    fn core(&self) -> usize {
        self.core
    }
}
