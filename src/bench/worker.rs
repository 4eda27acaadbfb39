//! One event-loop thread of the load generator: it owns its connections outright, drives them
//! with edge-triggered epoll and non-blocking sockets, and reads every socket into one
//! per-thread buffer. Nothing on the per-message path allocates.

use std::net::{IpAddr, SocketAddr};
use std::os::fd::AsRawFd;

use socket2::{Domain, Protocol, Socket, Type};

use super::cause::{io_cause, Cause, ErrorCounts};
use super::conn::{Conn, ConnState};
use super::histogram::Histogram;
use super::runner::MAX_PAYLOAD_BYTES;
use super::shared::{Shared, Stage};
use super::tls::TlsClient;
use crate::protocol::client_handshake::{client_key, write_request, ClientRequest};
use crate::protocol::deflate::CLIENT_OFFER;
use crate::protocol::frame::Opcode;
use crate::protocol::handshake::accept_key;
use crate::protocol::reader::Limits;
use crate::sys::epoll::{self, Epoll, EV_ERR, EV_HUP, EV_IN, EV_OUT, EV_RDHUP, NO_EVENT};
use crate::sys::process;
use crate::sys::socket::{self as sock, IoResult};

mod inbound;
mod slots;
mod tls;

use slots::Slots;

/// The per-thread receive buffer shared by all of the thread's sockets.
const RECV_BUFFER_BYTES: usize = 256 * 1024;
/// wss://: the per-thread buffer decrypted bytes are read into (rustls hands them out in
/// pieces of at most one record's worth per call anyway).
const PLAINTEXT_BUFFER_BYTES: usize = 64 * 1024;
/// Events taken from epoll per wait.
const EVENTS_PER_WAIT: usize = 1024;
/// Longest sleep in epoll, so stage changes are seen promptly.
const TICK_NS: u64 = 20_000_000;
/// How often deadlines are checked.
const DEADLINE_SCAN_NS: u64 = 100_000_000;
/// How often deadlines are checked while idle mode only holds connections.
const IDLE_DEADLINE_SCAN_NS: u64 = 1_000_000_000;
/// Open loop: when the next send is due sooner than this, poll instead of sleeping, because
/// waking from a timer takes tens of microseconds and would make sends late.
const SPIN_BELOW_NS: u64 = 50_000;
/// Bounds on server frames: an echo longer than any message sent is still read (and counted
/// as a mismatch); a frame beyond this fails the connection before any of it is buffered.
const RECEIVE_LIMITS: Limits = Limits {
    max_frame_size: MAX_PAYLOAD_BYTES as u64,
    max_message_size: MAX_PAYLOAD_BYTES as u64,
};

/// What the threads of a run do.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Mode {
    /// Echo round trips; `paced`: open loop at a target rate instead of closed loop.
    Echo { paced: bool },
    /// Open, hold, close.
    Idle,
    /// Open, handshake, close, repeat.
    Connect,
}

/// Settings common to all threads of a run.
pub struct RunPlan {
    pub mode: Mode,
    pub addr: SocketAddr,
    pub host_header: String,
    pub target: String,
    pub sources: Vec<IpAddr>,
    pub timeout_ns: u64,
    /// Limit for the close handshake (shorter, so Ctrl-C is quick even with a silent server).
    pub close_timeout_ns: u64,
    /// The echo message and its opcode (empty in other modes).
    pub payload: Vec<u8>,
    pub opcode: Opcode,
    /// wss://: the run's TLS client configuration (None for ws://).
    pub tls: Option<TlsClient>,
    /// Offer permessage-deflate; a connection whose server does not accept it fails
    /// (`deflate_declined`).
    pub deflate: bool,
}

/// One thread's share of a run.
#[derive(Clone, Copy, Debug)]
pub struct ThreadPlan {
    pub index: usize,
    /// Connections to open (`u64::MAX` in connect mode: keep churning until stopped).
    pub conns: u64,
    /// Most connections connecting/handshaking at once (connect mode: live at once).
    pub concurrency: usize,
    /// Open loop: this thread's messages per second.
    pub rate: Option<f64>,
    pub pin_cpu: Option<usize>,
    /// Stride through `RunPlan::sources` so threads interleave them.
    pub source_stride: usize,
}

/// What a thread measured.
#[derive(Debug, Default)]
pub struct ThreadStats {
    /// Echo round trips (echo mode) or handshake latencies (other modes), in ns.
    pub latency_ns: Histogram,
    pub errors: ErrorCounts,
    /// Echoes completed and matching, inside the measured window.
    pub messages: u64,
    /// Handshakes completed, all stages / inside the measured window.
    pub handshakes: u64,
    pub handshakes_measured: u64,
    /// wss://: handshakes that resumed a TLS session (in connect mode: inside the window).
    pub tls_resumed: u64,
    /// Handshakes that negotiated permessage-deflate (counted like `handshakes`).
    pub deflate_negotiated: u64,
    /// Connections left open when the stop began (idle: connections that survived the hold).
    pub open_at_stop: u64,
    /// Open loop, measured window: how late each message was handed to the kernel, in ns.
    pub send_lag_ns: Histogram,
    /// Pinning failed (reported once by the coordinator).
    pub pin_error: Option<String>,
}

/// Open-loop pacing: message `k` of the connection at `rate_index` is due at
/// `start + (k * n + rate_index) * period`, so latency is measured from when a message was due,
/// not from when it could be sent (no coordinated omission).
struct Pacer {
    start_ns: u64,
    period_ns: f64,
    next_event: u64,
    /// Tokens of the paced connections, in pacing order.
    tokens: Vec<u64>,
}

impl Pacer {
    fn due_ns(&self, event: u64) -> u64 {
        self.start_ns + (event as f64 * self.period_ns) as u64
    }

    fn intended_ns(&self, rate_index: u32, k: u64) -> u64 {
        self.due_ns(k * self.tokens.len() as u64 + u64::from(rate_index))
    }
}

/// SplitMix64: keys and masks only need to differ, not to be secret.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }
}

pub struct Worker<'a> {
    plan: &'a RunPlan,
    thread: ThreadPlan,
    shared: &'a Shared,
    epoll: Epoll,
    buf: Box<[u8]>,
    /// wss:// only: where decrypted bytes land (empty for ws://).
    plaintext: Box<[u8]>,
    slots: Slots,
    rng: Rng,
    stats: ThreadStats,
    stage: Stage,
    /// Connections still to attempt.
    remaining: u64,
    /// Connections connecting or handshaking.
    pending: usize,
    /// Connections in the slot table.
    live: usize,
    open: u64,
    next_source: usize,
    pacer: Option<Pacer>,
    stopping: bool,
    stop_deadline_ns: u64,
    open_done: bool,
    /// Every echo completed (any stage), every failure: for live progress only.
    progress_messages: u64,
}

impl<'a> Worker<'a> {
    pub fn new(plan: &'a RunPlan, thread: ThreadPlan, shared: &'a Shared, epoll: Epoll) -> Self {
        let seed = process::mono_ns() ^ (u64::from(std::process::id()) << 32) ^ thread.index as u64;
        Worker {
            plan,
            thread,
            shared,
            epoll,
            buf: vec![0u8; RECV_BUFFER_BYTES].into_boxed_slice(),
            plaintext: match plan.tls {
                Some(_) => vec![0u8; PLAINTEXT_BUFFER_BYTES].into_boxed_slice(),
                None => Box::default(),
            },
            slots: Slots::default(),
            rng: Rng(seed),
            stats: ThreadStats::default(),
            stage: Stage::Warmup,
            remaining: thread.conns,
            pending: 0,
            live: 0,
            open: 0,
            next_source: thread.index,
            pacer: thread.rate.map(|rate| Pacer {
                start_ns: 0,
                period_ns: 1e9 / rate,
                next_event: 0,
                tokens: Vec::new(),
            }),
            stopping: false,
            stop_deadline_ns: 0,
            open_done: false,
            progress_messages: 0,
        }
    }

    pub fn run(mut self) -> ThreadStats {
        if let Some(cpu) = self.thread.pin_cpu {
            if let Err(err) = process::pin_to_cpu(cpu) {
                self.stats.pin_error = Some(format!(
                    "cannot pin thread {} to CPU {cpu}: {err}",
                    self.thread.index
                ));
            }
        }
        let mut events = vec![NO_EVENT; EVENTS_PER_WAIT];
        let mut next_scan_ns = process::mono_ns() + DEADLINE_SCAN_NS;
        loop {
            let now = process::mono_ns();
            self.stage = self.shared.stage();
            if self.stage == Stage::Stop && !self.stopping {
                self.begin_stop(now);
            }
            if self.stopping && (self.live == 0 || now >= self.stop_deadline_ns) {
                break;
            }
            if !self.stopping {
                self.open_more(now);
            }
            self.check_open_done();
            let mut wait_ns = TICK_NS;
            if !self.stopping && self.open_done {
                if let Some(next_due) = self.fire_due() {
                    wait_ns = wait_ns.min(next_due.saturating_sub(process::mono_ns()));
                    if wait_ns < SPIN_BELOW_NS {
                        wait_ns = 0;
                    }
                }
            }
            let n = match self.epoll.wait(&mut events, wait_ns) {
                Ok(n) => n,
                Err(err) => {
                    self.stats
                        .errors
                        .add(Cause::Io(err.raw_os_error().unwrap_or(0)));
                    break;
                }
            };
            let now = process::mono_ns();
            for event in &events[..n] {
                let (token, bits) = epoll::event_parts(event);
                self.on_event(token, bits, now);
            }
            if now >= next_scan_ns {
                self.expire(now);
                next_scan_ns = now + self.scan_interval_ns();
            }
            self.publish();
        }
        self.finish();
        self.stats
    }

    /// Deadlines matter while connections open, echo or close; an idle hold of many
    /// connections is scanned rarely, so the scan does not cost a core.
    fn scan_interval_ns(&self) -> u64 {
        if self.plan.mode == Mode::Idle && self.pending == 0 && !self.stopping {
            IDLE_DEADLINE_SCAN_NS
        } else {
            DEADLINE_SCAN_NS
        }
    }

    fn publish(&self) {
        use std::sync::atomic::Ordering::Relaxed;
        let progress = &self.shared.threads[self.thread.index];
        progress.open.store(self.open, Relaxed);
        progress.handshakes.store(self.stats.handshakes, Relaxed);
        progress.messages.store(self.progress_messages, Relaxed);
        progress.errors.store(self.stats.errors.total(), Relaxed);
    }

    fn check_open_done(&mut self) {
        if self.open_done {
            return;
        }
        if self.shared.opening_stopped() && self.remaining > 0 && self.remaining != u64::MAX {
            self.stats.errors.add_n(Cause::OpenTimeout, self.remaining);
            self.remaining = 0;
        }
        let all_attempted = self.remaining == 0 || self.plan.mode == Mode::Connect;
        if all_attempted && self.pending == 0 || self.stopping {
            self.open_done = true;
            self.publish();
            self.shared.threads[self.thread.index]
                .open_done
                .store(true, std::sync::atomic::Ordering::Release);
        }
    }

    fn open_more(&mut self, now: u64) {
        if self.shared.opening_stopped() {
            return;
        }
        while self.remaining > 0 && self.pending < self.thread.concurrency {
            if self.plan.mode == Mode::Connect && self.live >= self.thread.concurrency {
                break;
            }
            if self.remaining != u64::MAX {
                self.remaining -= 1;
            }
            self.open_one(now);
        }
    }

    fn open_one(&mut self, now: u64) {
        let addr = self.plan.addr;
        let socket = match self.new_socket() {
            Ok(socket) => socket,
            Err(cause) => return self.count_error(cause),
        };
        let connected = match socket.connect(&addr.into()) {
            Ok(()) => true,
            Err(err) if err.raw_os_error() == Some(libc::EINPROGRESS) => false,
            Err(err) => return self.count_error(Cause::Connect(err.raw_os_error().unwrap_or(0))),
        };
        let fd = socket.as_raw_fd();
        let mask = (self.rng.next() as u32).to_ne_bytes();
        let mut conn = Conn::new(socket, now, mask, RECEIVE_LIMITS);
        conn.deadline_ns = now + self.plan.timeout_ns;
        let token = self.slots.insert(conn);
        self.live += 1;
        self.pending += 1;
        if let Err(err) = self.epoll.add(fd, token) {
            return self.fail(token, Cause::Socket(err.raw_os_error().unwrap_or(0)));
        }
        if connected {
            self.on_connected(token, now);
        }
    }

    fn new_socket(&mut self) -> Result<Socket, Cause> {
        let errno = |err: std::io::Error| Cause::Socket(err.raw_os_error().unwrap_or(0));
        let domain = Domain::for_address(self.plan.addr);
        let socket = Socket::new(
            domain,
            Type::STREAM.nonblocking().cloexec(),
            Some(Protocol::TCP),
        )
        .map_err(errno)?;
        socket.set_tcp_nodelay(true).map_err(errno)?;
        if !self.plan.sources.is_empty() {
            let source = self.plan.sources[self.next_source % self.plan.sources.len()];
            self.next_source = self.next_source.wrapping_add(self.thread.source_stride);
            sock::set_bind_address_no_port(socket.as_raw_fd());
            socket
                .bind(&SocketAddr::new(source, 0).into())
                .map_err(errno)?;
        }
        Ok(socket)
    }

    fn count_error(&mut self, cause: Cause) {
        self.stats.errors.add(cause);
    }

    /// Counts `cause` and drops the connection.
    fn fail(&mut self, token: u64, cause: Cause) {
        self.stats.errors.add(cause);
        self.drop_conn(token);
    }

    fn drop_conn(&mut self, token: u64) {
        let Some(conn) = self.slots.remove(token) else {
            return;
        };
        self.live -= 1;
        if conn.upgraded {
            self.open -= 1;
        } else {
            self.pending -= 1;
        }
        // Dropping the socket closes it, which also removes it from the epoll set.
    }

    fn on_event(&mut self, token: u64, bits: u32, now: u64) {
        let Some(conn) = self.slots.get(token) else {
            return;
        };
        if conn.state == ConnState::Connecting {
            if bits & (EV_ERR | EV_HUP) == 0 && bits & EV_OUT != 0 {
                // Writable without an error: connected (saves a getsockopt per connection).
                self.on_connected(token, now);
            } else if bits & (EV_ERR | EV_HUP) != 0 {
                match conn.socket.take_error() {
                    Ok(None) => self.fail(token, Cause::Connect(libc::ECONNABORTED)),
                    Ok(Some(err)) | Err(err) => {
                        self.fail(token, Cause::Connect(err.raw_os_error().unwrap_or(0)))
                    }
                }
            }
            return;
        }
        if bits & EV_OUT != 0 {
            conn.write_blocked = false;
            if !self.flush(token) {
                return;
            }
        }
        if bits & (EV_IN | EV_RDHUP | EV_HUP | EV_ERR) != 0 {
            self.read(token, bits & (EV_RDHUP | EV_HUP) != 0, now);
        }
    }

    fn on_connected(&mut self, token: u64, now: u64) {
        let mut random = [0u8; 16];
        random[..8].copy_from_slice(&self.rng.next().to_ne_bytes());
        random[8..].copy_from_slice(&self.rng.next().to_ne_bytes());
        let key = client_key(random);
        let Some(conn) = self.slots.get(token) else {
            return;
        };
        if let Some(tls) = &self.plan.tls {
            match tls.connect() {
                Ok(session) => conn.tls = Some(session),
                Err(err) => return self.fail_tls(token, &err),
            }
        }
        conn.state = ConnState::Handshaking;
        conn.deadline_ns = now + self.plan.timeout_ns;
        conn.accept = accept_key(&key);
        conn.out.clear();
        conn.out_pos = 0;
        let request = ClientRequest {
            host: &self.plan.host_header,
            target: &self.plan.target,
            key: &key,
            extensions: self.plan.deflate.then_some(CLIENT_OFFER),
            ..ClientRequest::default()
        };
        write_request(&mut conn.out, &request);
        self.flush(token);
    }

    /// Writes what the connection has queued until done or EAGAIN. Returns false when the
    /// connection failed (and was dropped).
    fn flush(&mut self, token: u64) -> bool {
        let Some(conn) = self.slots.get(token) else {
            return false;
        };
        if conn.write_blocked {
            return true;
        }
        if conn.tls.is_some() {
            return self.flush_tls(token);
        }
        let fd = conn.socket.as_raw_fd();
        while let Some((bytes, is_frame)) = conn.next_bytes() {
            match sock::send(fd, bytes) {
                IoResult::Done(n) => conn.advance(n, is_frame),
                IoResult::WouldBlock | IoResult::Eof => {
                    conn.write_blocked = true;
                    return true;
                }
                IoResult::Failed(err) => {
                    self.fail(token, io_cause(err.raw_os_error().unwrap_or(0)));
                    return false;
                }
            }
        }
        true
    }

    /// Reads until the socket is drained. `peer_closed`: the event reported the peer's FIN, so
    /// read on to the end of stream (no further edge will come for it).
    fn read(&mut self, token: u64, peer_closed: bool, now: u64) {
        // The buffer is moved out for the duration (a pointer swap) so the connection can be
        // borrowed mutably alongside it.
        let mut buf = std::mem::take(&mut self.buf);
        while let Some(conn) = self.slots.get(token) {
            match sock::recv(conn.socket.as_raw_fd(), &mut buf) {
                IoResult::Done(n) => {
                    let more = if conn.tls.is_some() {
                        self.on_tls_bytes(token, &buf[..n], now)
                    } else {
                        self.on_bytes(token, &mut buf[..n], now)
                    };
                    if !more {
                        break;
                    }
                    // A short read drained the socket; with edge triggering, new data or a FIN
                    // raises a new event, so skip the read that would only return EAGAIN.
                    if n < buf.len() && !peer_closed {
                        break;
                    }
                }
                IoResult::WouldBlock => break,
                IoResult::Eof => {
                    self.on_eof(token);
                    break;
                }
                IoResult::Failed(err) => {
                    self.fail(token, io_cause(err.raw_os_error().unwrap_or(0)));
                    break;
                }
            }
        }
        self.buf = buf;
    }

    /// Open loop: sends every message due by now; returns when the next one is due.
    fn fire_due(&mut self) -> Option<u64> {
        let pacer = self.pacer.as_mut()?;
        if pacer.tokens.is_empty() {
            return None;
        }
        if pacer.start_ns == 0 {
            pacer.start_ns = process::mono_ns();
        }
        let count = pacer.tokens.len() as u64;
        let timeout_ns = self.plan.timeout_ns;
        let measuring = self.stage == Stage::Measure;
        loop {
            let now = process::mono_ns();
            let pacer = self.pacer.as_mut().expect("checked above");
            let due = pacer.due_ns(pacer.next_event);
            if due > now {
                return Some(due);
            }
            if measuring {
                self.stats.send_lag_ns.record(now - due);
            }
            let token = pacer.tokens[(pacer.next_event % count) as usize];
            pacer.next_event += 1;
            let Some(conn) = self.slots.get(token) else {
                continue;
            };
            if conn.state != ConnState::Open {
                continue;
            }
            if conn.received == conn.sent {
                conn.deadline_ns = now + timeout_ns;
            }
            conn.sent += 1;
            conn.frames_due += 1;
            self.flush(token);
        }
    }

    fn expire(&mut self, now: u64) {
        let expired: Vec<(u64, ConnState)> = self
            .slots
            .tokens()
            .filter_map(|token| {
                let conn = self.slots.conns[token as u32 as usize].as_ref()?;
                (conn.deadline_ns != 0 && now >= conn.deadline_ns).then_some((token, conn.state))
            })
            .collect();
        for (token, state) in expired {
            let cause = match state {
                ConnState::Connecting => Cause::ConnectTimeout,
                ConnState::Handshaking => Cause::HandshakeTimeout,
                ConnState::Open => Cause::EchoTimeout,
                ConnState::Closing | ConnState::Draining => Cause::CloseTimeout,
            };
            self.fail(token, cause);
        }
    }

    fn begin_stop(&mut self, now: u64) {
        self.stopping = true;
        self.stop_deadline_ns = now + self.plan.close_timeout_ns + DEADLINE_SCAN_NS;
        self.stats.open_at_stop = self.open;
        let tokens: Vec<u64> = self.slots.tokens().collect();
        for token in tokens {
            let Some(conn) = self.slots.get(token) else {
                continue;
            };
            match conn.state {
                // Cut short by the end of the run: not a failure of the server.
                ConnState::Connecting | ConnState::Handshaking => self.drop_conn(token),
                ConnState::Open => {
                    self.begin_close(token, now);
                }
                ConnState::Closing | ConnState::Draining => {}
            }
        }
    }

    /// Counts connections whose close handshake did not finish in time, then closes everything.
    fn finish(&mut self) {
        let tokens: Vec<u64> = self.slots.tokens().collect();
        for token in tokens {
            self.fail(token, Cause::CloseTimeout);
        }
        self.publish();
    }
}
