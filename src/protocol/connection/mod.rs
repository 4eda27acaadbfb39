//! The life of one WebSocket connection, for either role, as a sans-IO state machine.
//!
//! A [`Connection`] decides everything about its connection: the handshake phase, the close
//! handshake, every deadline (handshake, heartbeat, idle, write stall, close), the message rate
//! limit and the outbound cap. It never touches a socket, a clock or a global. Its driver (the
//! reactor for servers; a client loop for `bench`-style tools and the conformance driver) feeds it:
//!
//! - received bytes, through [`Connection::receive`], one event at a time;
//! - the end of the peer's stream ([`Connection::on_eof`]) and writability
//!   ([`Connection::on_writable`]);
//! - timer expiry ([`Connection::handle_timeout`]), with `now` in the driver's ticks;
//! - the application's calls ([`Connection::send`], [`Connection::close`], ...).
//!
//! It answers through an [`Output`] (bytes to transmit now, and [`Note`]s worth counting) and
//! through [`Effects`] the driver polls after each call: arm writability, shut our sending side
//! down, re-arm the deadline ([`Connection::next_deadline`]), tell the app the connection left
//! the open state, and release it. Released connections are inert: every call on them is a
//! no-op, so a driver frees them at the end of its loop pass and no call site needs a guard.
//!
//! Bytes go to the transport as they are produced, and only what it refuses is queued here: a
//! message echoed from the driver's receive buffer reaches the kernel without a copy.
//!
//! Idle, a connection is 24 bytes: the ticks it needs, a phase, flags and an optional box
//! ([`Extra`]) that exists only while input is split across reads, output is backed up, or the
//! rate-limit bucket is not full.

mod outbound;
mod progress;
#[cfg(test)]
mod tests;

pub use outbound::{Outbound, TokenBucket, MAX_CONTROL_QUEUE_BYTES};
pub use progress::{Progress, Verdict};

use super::close::encode_close_payload;
use super::frame::{
    append_client_frame, encode_client_header, encode_server_header, Opcode, MAX_HEADER_LEN,
};
use super::handshake::{self, HandshakeLimits, UpgradeRequest};
use super::reader::{Event, Limits, Reader, What};
use super::{CloseCode, MessageKind, ProtocolError, Refusal, Role};

/// Messages larger than this go out as fragments of this size, so that pings and pongs find a
/// frame boundary to go out at while a large message is backed up; smaller ones (every echo of
/// the benchmarks) are one frame.
pub const OUTBOUND_FRAGMENT_BYTES: usize = 64 << 10;

/// The driver's clock, in ticks of its choosing (the reactor's are 100 ms); wraps around.
pub type Tick = u32;

/// `deadline` has come at `now` (wrapping ticks).
pub fn reached(deadline: Tick, now: Tick) -> bool {
    (now.wrapping_sub(deadline) as i32) >= 0
}

fn earliest(a: Tick, b: Tick) -> Tick {
    if (a.wrapping_sub(b) as i32) < 0 {
        a
    } else {
        b
    }
}

/// The rules a connection follows, in the driver's ticks. Shared by all connections of a
/// driver and passed to every call, so a connection carries none of it.
#[derive(Clone, Debug)]
pub struct Settings {
    pub limits: Limits,
    pub handshake: HandshakeLimits,
    pub handshake_timeout_ticks: u32,
    pub close_timeout_ticks: u32,
    pub ping_interval_ticks: u32,
    pub pong_timeout_ticks: u32,
    pub idle_timeout_ticks: Option<u32>,
    /// A message (or frame) in progress must arrive within this, or keep arriving at
    /// `min_receive_bytes_per_tick`.
    pub message_timeout_ticks: u32,
    pub min_receive_bytes_per_tick: u64,
    /// An outbound queue must drain within this, or keep draining at `min_send_bytes_per_tick`.
    pub write_stall_timeout_ticks: u32,
    pub min_send_bytes_per_tick: u64,
    /// Bytes a connection with a backed-up queue may have queued (see [`Connection::send`]).
    pub max_outbound_bytes: usize,
    /// Message rate limit: refill in thousandths of a message per tick; 0 = no limit.
    pub message_rate_milli_per_tick: u64,
    pub message_burst: u32,
}

impl Settings {
    /// The heartbeat jitter of a connection (up to 1/8 of the interval, early), from a number
    /// that identifies it (the driver's slot key and generation), so it costs no memory:
    /// connections opened in the same tick do not all ping in the same tick.
    pub fn ping_jitter_ticks(&self, identity: u64) -> u32 {
        let h = identity.wrapping_mul(0x9E37_79B9_7F4A_7C15);
        ((h >> 40) as u32) % (self.ping_interval_ticks / 8 + 1)
    }
}

/// Who ended an upgraded connection.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Initiator {
    /// The peer sent the first close frame.
    Peer = 0,
    /// We sent the first close frame (app close, limits, timeouts, shutdown, protocol error).
    Server = 1,
    /// No close handshake: EOF, reset or a failed write.
    Abnormal = 2,
}

impl Initiator {
    pub const ALL: [Initiator; 3] = [Initiator::Peer, Initiator::Server, Initiator::Abnormal];

    pub fn label(self) -> &'static str {
        match self {
            Initiator::Peer => "peer",
            Initiator::Server => "server",
            Initiator::Abnormal => "abnormal",
        }
    }
}

/// Where a connection is in its life.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Phase {
    /// Server: reading the upgrade request. Client: reading the server's answer.
    Handshake,
    /// Upgraded: messages flow both ways.
    Open,
    /// We sent a close frame and wait for the peer's (frames are still read, data ignored).
    Closing,
    /// Done talking (refusal sent, connection failed, close answered): our side shuts down once
    /// the queue is flushed, and input is discarded until EOF or the close timeout.
    Lingering,
    /// Finished: the driver frees it; every call is a no-op.
    Released,
}

/// A lifecycle event the driver may count or log. The connection itself keeps no counters.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Note {
    HandshakeTimeout,
    /// A heartbeat ping went out.
    PingSent,
    HeartbeatTimeout,
    IdleTimeout,
    /// We had sent a close frame and the peer's arrived.
    CloseAcknowledged,
    CloseTimeout,
    /// An outbound queue did not drain at `min_send_rate` within `write_stall_timeout`.
    WriteStall {
        queued_bytes: usize,
    },
    /// A message did not arrive at `min_receive_rate` within `message_timeout`.
    MessageTimeout {
        received_bytes: usize,
    },
    SlowConsumer {
        queued_bytes: usize,
    },
    RateLimited,
    ProtocolError(ProtocolError),
    /// The transport failed; the connection is released.
    TransportFailed,
    /// A queue of refused bytes started (the connection is backpressured).
    QueueStarted,
    /// The queue grew by this many bytes.
    Queued(usize),
    /// This many queued bytes left: taken by the transport, or dropped with the connection.
    Dequeued(usize),
    /// The queue is gone (drained or dropped): the connection is no longer backpressured.
    QueueEnded,
    /// The connection was closed to bring its driver back under its memory budget, for the
    /// input (`inbound`) or the outbound queue it held.
    MemoryShed {
        inbound: bool,
        held_bytes: usize,
    },
    /// The memory the connection holds beyond its slot changed by this many bytes (partial
    /// input, message buffer, outbound queue; see [`Connection::held_bytes`]).
    Held(isize),
}

/// The transport failed (reset, broken pipe): the connection cannot continue.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct TransportError;

/// Where a connection's bytes and notes go: implemented by the driver.
pub trait Output {
    /// Offers `head` followed by `body` to the peer; returns how many bytes were taken now (the
    /// connection queues the rest and asks for writability).
    fn transmit(&mut self, head: &[u8], body: &[u8]) -> Result<usize, TransportError>;
    /// A lifecycle event to count or log.
    fn note(&mut self, note: Note);
    /// A fresh masking key for a client frame (RFC 6455 §5.3: unpredictable). Servers never
    /// call it.
    fn mask_key(&mut self) -> [u8; 4];
}

/// What the driver must do after a call, from [`Connection::poll_effects`].
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Effects(u16);

impl Effects {
    /// Arm a one-shot writability notification, then call [`Connection::on_writable`].
    pub fn want_writable(self) -> bool {
        self.0 & fx::WANT_WRITABLE != 0
    }
    /// Shut our sending side down (TCP FIN): everything we will send has been taken.
    pub fn shutdown_write(self) -> bool {
        self.0 & fx::SHUTDOWN_WRITE != 0
    }
    /// The deadline may have moved earlier: re-arm it with [`Connection::next_deadline`].
    pub fn deadline_changed(self) -> bool {
        self.0 & fx::DEADLINE != 0
    }
    /// The upgraded connection stopped being open: tell the app, with
    /// [`Connection::end`].
    pub fn left_open(self) -> bool {
        self.0 & fx::LEFT_OPEN != 0
    }
    /// Free the connection (at the end of the loop pass), as [`Connection::release_kind`] says.
    pub fn release(self) -> bool {
        self.0 & fx::RELEASE != 0
    }
    pub fn is_empty(self) -> bool {
        self.0 == 0
    }
}

/// Bits of [`Connection::flags`]: state in the low byte, pending effects in the high one.
mod flag {
    /// A heartbeat ping is out and nothing has arrived since.
    pub const AWAITING_PONG: u16 = 1 << 0;
    /// Writability was asked for and has not been reported yet.
    pub const WRITE_WAIT: u16 = 1 << 1;
    pub const SHUTDOWN_AFTER_FLUSH: u16 = 1 << 2;
    pub const RELEASE_AFTER_FLUSH: u16 = 1 << 3;
    pub const CLIENT: u16 = 1 << 4;
    /// Release with a reset (SO_LINGER 0): the peer is gone or will not read.
    pub const ABORTIVE: u16 = 1 << 5;
    /// Two bits: 0 none, else `Initiator as u16 + 1`.
    pub const INITIATOR_SHIFT: u16 = 6;
    pub const INITIATOR_MASK: u16 = 0b11 << INITIATOR_SHIFT;
}

mod fx {
    pub const WANT_WRITABLE: u16 = 1 << 8;
    pub const SHUTDOWN_WRITE: u16 = 1 << 9;
    pub const DEADLINE: u16 = 1 << 10;
    pub const LEFT_OPEN: u16 = 1 << 11;
    pub const RELEASE: u16 = 1 << 12;
    pub const ALL: u16 = 0xFF00;
}

/// How a released connection's socket should be closed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ReleaseKind {
    /// An orderly close: the kernel delivers what it holds, then FIN.
    Graceful,
    /// A reset (SO_LINGER 0), so the kernel frees the peer's buffers at once instead of
    /// retrying for minutes: for peers that are gone or will not read.
    Abortive,
}

/// The state that exists only while needed; see the module documentation.
#[derive(Debug)]
struct Extra {
    /// Unconsumed input: a partial request head, frame header or control frame.
    pending: Vec<u8>,
    /// The reader of a message in flight.
    reader: Reader,
    outbound: Outbound,
    /// Present while the message rate limit is on and the bucket is not full.
    bucket: Option<TokenBucket>,
    /// When the input in progress (a partial frame or message) began.
    input: Option<Progress>,
    /// The memory last reported in a [`Note::Held`].
    accounted: usize,
}

impl Extra {
    /// Heap memory held: the box and the capacity of its buffers.
    fn held_bytes(&self) -> usize {
        std::mem::size_of::<Extra>()
            + self.pending.capacity()
            + self.reader.held_bytes()
            + self.outbound.held_bytes()
    }

    fn is_idle(&self) -> bool {
        self.pending.is_empty()
            && self.reader.is_idle()
            && self.outbound.is_empty()
            && self.bucket.is_none()
            && self.input.is_none()
    }
}

/// One connection. Kept small: this is the per-connection memory of an idle server.
#[derive(Debug)]
pub struct Connection {
    extra: Option<Box<Extra>>,
    /// Handshake: when it began. Later: the last bytes received (heartbeats ping only silent
    /// peers).
    rx_tick: Tick,
    /// Handshake: the driver's stamp (see [`Connection::server`]). Open: the last application
    /// message received (idle timeout). Closing and lingering: the close deadline.
    mark_tick: Tick,
    /// The close code this connection ends with: the one we sent, or the peer's; 0 for none.
    close_code: u16,
    flags: u16,
    phase: Phase,
}

/// One step of [`Connection::receive`].
#[derive(Debug)]
pub struct Input<'a> {
    /// Input bytes used; pass the rest again, followed by new bytes.
    pub consumed: usize,
    /// `None`: nothing more can be done with this input.
    pub event: Option<Received<'a>>,
}

/// What received bytes produced for the driver.
#[derive(Debug)]
pub enum Received<'a> {
    /// Server: a complete upgrade request (already consumed), and its head's bytes. Answer it
    /// with [`Connection::accept`] or [`Connection::refuse`] before the next call.
    Request(UpgradeRequest<'a>, &'a [u8]),
    /// Server: a request that cannot be an upgrade (malformed, too large, not WebSocket), with
    /// the bytes received. Answer it with [`Connection::refuse`].
    BadRequest(Refusal, &'a [u8]),
    /// Client: the bytes of the server's answer so far (none consumed). Check them for a
    /// complete 101; then [`Connection::upgraded`] with the head's length, or
    /// [`Connection::fail_handshake`]. If they hold only part of the head, read more.
    Response(&'a [u8]),
    /// A complete data message, for the app.
    Message(MessageKind, &'a [u8]),
}

impl Connection {
    /// A server connection, just accepted: it waits for the upgrade request. `stamp` is the
    /// driver's own number, kept until the upgrade at no memory cost ([`Connection::stamp`]);
    /// the reactor keeps the accept time in µs there, for the handshake-duration histogram.
    pub fn server(now: Tick, stamp: u32) -> Connection {
        let mut conn = Connection::new(now, 0);
        conn.mark_tick = stamp;
        conn
    }

    /// The driver's stamp given to [`Connection::server`], while the handshake lasts.
    pub fn stamp(&self) -> Option<u32> {
        (self.phase == Phase::Handshake && self.role() == Role::Server).then_some(self.mark_tick)
    }

    /// A client connection whose upgrade request the driver has sent: it waits for the answer.
    pub fn client(now: Tick) -> Connection {
        Connection::new(now, flag::CLIENT)
    }

    fn new(now: Tick, flags: u16) -> Connection {
        Connection {
            extra: None,
            rx_tick: now,
            mark_tick: now,
            close_code: 0,
            flags: flags | fx::DEADLINE,
            phase: Phase::Handshake,
        }
    }

    pub fn role(&self) -> Role {
        if self.has(flag::CLIENT) {
            Role::Client
        } else {
            Role::Server
        }
    }

    pub fn phase(&self) -> Phase {
        self.phase
    }

    /// Open or closing: upgraded and not yet ended (the app knows it).
    pub fn is_upgraded(&self) -> bool {
        matches!(self.phase, Phase::Open | Phase::Closing)
    }

    pub fn is_released(&self) -> bool {
        self.phase == Phase::Released
    }

    /// Heap memory this connection holds beyond its slot (the budget counts this).
    pub fn held_bytes(&self) -> usize {
        self.extra.as_ref().map_or(0, |e| e.held_bytes())
    }

    /// Of [`Connection::held_bytes`], the part for input: partial input and the message buffer.
    pub fn held_inbound_bytes(&self) -> usize {
        self.extra
            .as_ref()
            .map_or(0, |e| e.pending.capacity() + e.reader.held_bytes())
    }

    /// Input carried over between reads (a partial header, control frame or request head).
    pub fn carried_bytes(&self) -> usize {
        self.extra.as_ref().map_or(0, |e| e.pending.len())
    }

    /// Bytes queued for the peer.
    pub fn queued_bytes(&self) -> usize {
        self.extra.as_ref().map_or(0, |e| e.outbound.len())
    }

    /// Who ended the connection and with which code, once it has left the open state.
    pub fn end(&self) -> Option<(Initiator, Option<CloseCode>)> {
        let initiator = match (self.flags & flag::INITIATOR_MASK) >> flag::INITIATOR_SHIFT {
            0 => return None,
            1 => Initiator::Peer,
            2 => Initiator::Server,
            _ => Initiator::Abnormal,
        };
        let code = (self.close_code != 0).then_some(CloseCode(self.close_code));
        Some((initiator, code))
    }

    /// How to close the socket of a released connection.
    pub fn release_kind(&self) -> ReleaseKind {
        if self.has(flag::ABORTIVE) {
            ReleaseKind::Abortive
        } else {
            ReleaseKind::Graceful
        }
    }

    /// A writability notification is outstanding (the driver may need to cancel it on free).
    pub fn awaits_writable(&self) -> bool {
        self.has(flag::WRITE_WAIT)
    }

    /// Effects are waiting for [`Connection::poll_effects`] (the common answer is no).
    pub fn has_effects(&self) -> bool {
        self.flags & fx::ALL != 0
    }

    /// Takes the effects accumulated since the last call.
    pub fn poll_effects(&mut self) -> Effects {
        let effects = Effects(self.flags & fx::ALL);
        self.flags &= !fx::ALL;
        effects
    }

    /// When [`Connection::handle_timeout`] must next be called; `None` once released.
    pub fn next_deadline(&self, cfg: &Settings, jitter_ticks: u32) -> Option<Tick> {
        match self.phase {
            Phase::Handshake => Some(self.rx_tick.wrapping_add(cfg.handshake_timeout_ticks)),
            Phase::Closing | Phase::Lingering => Some(self.mark_tick),
            Phase::Open => Some(self.open_deadline(cfg, jitter_ticks)),
            Phase::Released => None,
        }
    }

    /// The earliest of an open connection's heartbeat, idle and write-stall deadlines.
    fn open_deadline(&self, cfg: &Settings, jitter_ticks: u32) -> Tick {
        let mut d = if self.has(flag::AWAITING_PONG) {
            self.rx_tick
                .wrapping_add(cfg.ping_interval_ticks + cfg.pong_timeout_ticks)
        } else {
            self.rx_tick
                .wrapping_add(cfg.ping_interval_ticks - jitter_ticks)
        };
        if let Some(idle) = cfg.idle_timeout_ticks {
            d = earliest(d, self.mark_tick.wrapping_add(idle));
        }
        if let Some(deadline) = self.send_deadline(cfg) {
            d = earliest(d, deadline);
        }
        if let Some(deadline) = self.receive_deadline(cfg) {
            d = earliest(d, deadline);
        }
        d
    }

    /// When a backed-up queue is next judged for draining (see [`Progress`]).
    fn send_deadline(&self, cfg: &Settings) -> Option<Tick> {
        let o = self.outbound().filter(|o| !o.is_empty())?;
        Some(o.progress.deadline(cfg.write_stall_timeout_ticks))
    }

    /// When the input in progress is next judged (see [`Progress`]).
    fn receive_deadline(&self, cfg: &Settings) -> Option<Tick> {
        let input = self.extra.as_ref()?.input?;
        Some(input.deadline(cfg.message_timeout_ticks))
    }

    /// The queue's deadline came: true when it drains too slowly.
    fn judge_output(&mut self, now: Tick, cfg: &Settings) -> bool {
        let Some(e) = self.extra.as_mut() else {
            return false;
        };
        let o = &mut e.outbound;
        let (timeout, rate) = (cfg.write_stall_timeout_ticks, cfg.min_send_bytes_per_tick);
        let verdict = o.progress.judge(now, o.sent_bytes, timeout, rate);
        self.flags |= fx::DEADLINE;
        verdict == Verdict::TooSlow
    }

    /// The input's deadline came: true when it arrives too slowly. Only the message's own bytes
    /// count: pings in between are not progress.
    fn judge_input(&mut self, now: Tick, cfg: &Settings) -> bool {
        let Some(e) = self.extra.as_mut() else {
            return false;
        };
        let held = (e.reader.buffered_bytes() + e.pending.len()) as u64;
        let (timeout, rate) = (cfg.message_timeout_ticks, cfg.min_receive_bytes_per_tick);
        let Some(input) = e.input.as_mut() else {
            return false;
        };
        let verdict = input.judge(now, held, timeout, rate);
        self.flags |= fx::DEADLINE;
        verdict == Verdict::TooSlow
    }

    /// The deadline came (or a stale one fired early: then it is only re-armed).
    pub fn handle_timeout(
        &mut self,
        now: Tick,
        cfg: &Settings,
        jitter_ticks: u32,
        out: &mut impl Output,
    ) {
        let Some(deadline) = self.next_deadline(cfg, jitter_ticks) else {
            return;
        };
        if !reached(deadline, now) {
            self.flags |= fx::DEADLINE;
            return;
        }
        match self.phase {
            Phase::Handshake => {
                out.note(Note::HandshakeTimeout);
                self.release(Initiator::Abnormal, ReleaseKind::Abortive, out);
            }
            Phase::Closing | Phase::Lingering => {
                out.note(Note::CloseTimeout);
                self.release(Initiator::Server, ReleaseKind::Abortive, out);
            }
            Phase::Open => self.open_timeout(now, cfg, jitter_ticks, out),
            Phase::Released => {}
        }
    }

    /// An open connection's deadline: write stall, heartbeat timeout, idle timeout, or ping.
    fn open_timeout(
        &mut self,
        now: Tick,
        cfg: &Settings,
        jitter_ticks: u32,
        out: &mut impl Output,
    ) {
        if self.send_deadline(cfg).is_some_and(|d| reached(d, now)) && self.judge_output(now, cfg) {
            out.note(Note::WriteStall {
                queued_bytes: self.queued_bytes(),
            });
            return self.release(Initiator::Server, ReleaseKind::Abortive, out);
        }
        if self.receive_deadline(cfg).is_some_and(|d| reached(d, now)) && self.judge_input(now, cfg)
        {
            let e = self
                .extra
                .as_ref()
                .expect("input in progress lives in the extra state");
            out.note(Note::MessageTimeout {
                received_bytes: e.reader.buffered_bytes() + e.pending.len(),
            });
            let reason = "message not received in time (message_timeout, min_receive_rate)";
            return self.fail(now, cfg, CloseCode::POLICY_VIOLATION, reason, out);
        }
        let pong_deadline = self
            .rx_tick
            .wrapping_add(cfg.ping_interval_ticks + cfg.pong_timeout_ticks);
        if self.has(flag::AWAITING_PONG) && reached(pong_deadline, now) {
            out.note(Note::HeartbeatTimeout);
            let code = CloseCode::GOING_AWAY;
            if self.queued_bytes() == 0 {
                // Worth a try: the peer may only have lost its way back.
                self.write_close(Some(code), "heartbeat timeout", now, cfg, out);
            }
            self.close_code = code.0;
            return self.release(Initiator::Server, ReleaseKind::Abortive, out);
        }
        if cfg
            .idle_timeout_ticks
            .is_some_and(|idle| reached(self.mark_tick.wrapping_add(idle), now))
        {
            out.note(Note::IdleTimeout);
            return self.close(now, cfg, CloseCode::GOING_AWAY, "idle timeout", out);
        }
        let ping_due = self
            .rx_tick
            .wrapping_add(cfg.ping_interval_ticks - jitter_ticks);
        if !self.has(flag::AWAITING_PONG) && reached(ping_due, now) {
            out.note(Note::PingSent);
            self.write_frame(Opcode::Ping, b"", now, cfg, out);
            if self.phase != Phase::Open {
                return;
            }
            self.flags |= flag::AWAITING_PONG;
        }
        self.flags |= fx::DEADLINE;
    }

    /// Moves the inbound half out for the duration of a batch of [`Connection::receive`] calls,
    /// so the app may act on this connection while a message borrowed from it is delivered.
    /// Bytes carried over from the previous batch are copied to the start of `buf` (their
    /// count is returned); new bytes go after them. Give both back with
    /// [`Connection::end_receive`].
    pub fn begin_receive(&mut self, buf: &mut [u8]) -> (Reader, usize) {
        let role = self.role();
        let Some(extra) = self.extra.as_mut() else {
            return (Reader::new(role), 0);
        };
        let n = extra.pending.len();
        assert!(n <= buf.len(), "carried input exceeds the receive buffer");
        buf[..n].copy_from_slice(&extra.pending);
        extra.pending.clear();
        (std::mem::replace(&mut extra.reader, Reader::new(role)), n)
    }

    /// Takes back the inbound half and the input not consumed (a partial header, control frame
    /// or request head: bounded by the reader and the handshake limit).
    pub fn end_receive(
        &mut self,
        now: Tick,
        mut reader: Reader,
        rest: &[u8],
        out: &mut impl Output,
    ) {
        if matches!(self.phase, Phase::Lingering | Phase::Released) {
            return self.shrink(out);
        }
        reader.settle();
        if rest.is_empty() && reader.is_idle() {
            if let Some(e) = self.extra.as_mut() {
                e.input = None;
            }
            return self.shrink(out); // idle again: no per-connection read state at all
        }
        let extra = self.extra_mut();
        extra.pending.extend_from_slice(rest);
        extra.reader = reader;
        if extra.input.is_none() {
            // Input in progress: its deadline may come before the armed one.
            extra.input = Some(Progress::windowed(now));
            self.flags |= fx::DEADLINE;
        }
        self.account(out);
    }

    /// Feeds received bytes: consumes input up to the next event for the driver.
    pub fn receive<'a>(
        &mut self,
        now: Tick,
        cfg: &Settings,
        reader: &'a mut Reader,
        input: &'a mut [u8],
        out: &mut impl Output,
    ) -> Input<'a> {
        if input.is_empty() {
            return Input {
                consumed: 0,
                event: None,
            };
        }
        match self.phase {
            Phase::Handshake if self.role() == Role::Client => Input {
                consumed: 0,
                event: Some(Received::Response(input)),
            },
            Phase::Handshake => self.receive_request(cfg, input),
            Phase::Open | Phase::Closing => {
                // Any bytes from the peer are life: no ping needed, and a ping is answered.
                self.rx_tick = now;
                if self.has(flag::AWAITING_PONG) {
                    // The armed deadline is the pong timeout; the next ping is due one interval
                    // from now.
                    self.flags = (self.flags & !flag::AWAITING_PONG) | fx::DEADLINE;
                }
                self.receive_frames(now, cfg, reader, input, out)
            }
            Phase::Lingering | Phase::Released => Input {
                consumed: input.len(),
                event: None,
            },
        }
    }

    fn receive_request<'a>(&mut self, cfg: &Settings, input: &'a mut [u8]) -> Input<'a> {
        let input = &*input;
        match handshake::parse_request(input, &cfg.handshake) {
            Ok(Some(request)) => {
                let head_len = request.head_len;
                Input {
                    consumed: head_len,
                    event: Some(Received::Request(request, &input[..head_len])),
                }
            }
            Ok(None) => Input {
                consumed: 0,
                event: None,
            },
            Err(refusal) => Input {
                consumed: input.len(),
                event: Some(Received::BadRequest(refusal, input)),
            },
        }
    }

    fn receive_frames<'a>(
        &mut self,
        now: Tick,
        cfg: &Settings,
        reader: &'a mut Reader,
        input: &'a mut [u8],
        out: &mut impl Output,
    ) -> Input<'a> {
        // Control frames and refused messages are handled here; the loop returns at the first
        // message for the app. Events are located first and borrowed only where used, so the
        // returned message can borrow `reader` and `input` for `'a`.
        let mut pos = 0;
        while self.is_upgraded() {
            let (n, at) = match reader.locate(&mut input[pos..], &cfg.limits) {
                Ok(found) => found,
                Err(err) => {
                    out.note(Note::ProtocolError(err));
                    self.fail(now, cfg, err.code, err.reason, out);
                    break;
                }
            };
            let Some(at) = at else {
                return Input {
                    consumed: pos + n,
                    event: None,
                };
            };
            let start = pos;
            pos += n;
            match at.what() {
                What::Message(_) => {
                    if self.admit_message(now, cfg, out) {
                        let Event::Message(kind, payload) = reader.event(at, &input[start..pos])
                        else {
                            unreachable!("located a message")
                        };
                        return Input {
                            consumed: pos,
                            event: Some(Received::Message(kind, payload)),
                        };
                    }
                }
                What::Ping => {
                    if self.phase == Phase::Open {
                        if let Event::Ping(payload) = reader.event(at, &input[start..pos]) {
                            self.write_frame(Opcode::Pong, payload, now, cfg, out);
                        }
                    }
                }
                What::Pong => {}
                What::Close => {
                    let Event::Close { code, .. } = reader.event(at, &input[start..pos]) else {
                        unreachable!("located a close frame")
                    };
                    self.on_peer_close(now, cfg, code, out);
                }
            }
        }
        // No longer reading frames: the rest of the input is discarded.
        Input {
            consumed: input.len(),
            event: None,
        }
    }

    /// Counts a received application message against the idle timeout and the rate limit;
    /// false (and a 1008 close) when the rate is exceeded, or when not open.
    fn admit_message(&mut self, now: Tick, cfg: &Settings, out: &mut impl Output) -> bool {
        if self.phase != Phase::Open {
            return false;
        }
        self.mark_tick = now;
        if cfg.message_rate_milli_per_tick == 0 {
            return true;
        }
        let burst = cfg.message_burst;
        let rate = cfg.message_rate_milli_per_tick;
        let extra = self.extra_mut();
        let bucket = extra
            .bucket
            .get_or_insert_with(|| TokenBucket::full(burst, now));
        if bucket.take(burst, rate, now) {
            if bucket.is_full(burst, rate, now) {
                extra.bucket = None;
            }
            return true;
        }
        out.note(Note::RateLimited);
        self.close(
            now,
            cfg,
            CloseCode::POLICY_VIOLATION,
            "message rate limit exceeded",
            out,
        );
        false
    }

    /// The peer sent a close frame.
    fn on_peer_close(
        &mut self,
        now: Tick,
        cfg: &Settings,
        code: Option<CloseCode>,
        out: &mut impl Output,
    ) {
        let initiator = if self.phase == Phase::Open {
            // Echo the peer's code (RFC 6455 §5.5.1); the server then closes TCP first.
            self.write_close(code, "", now, cfg, out);
            self.close_code = code.map_or(0, |c| c.0);
            Initiator::Peer
        } else {
            out.note(Note::CloseAcknowledged);
            Initiator::Server
        };
        if self.phase == Phase::Released {
            return;
        }
        if self.queued_bytes() > 0 || self.role() == Role::Client {
            // Release once the close is out; a client waits for the server to close TCP.
            if self.role() == Role::Server {
                self.flags |= flag::RELEASE_AFTER_FLUSH;
            }
            self.linger(now, initiator, cfg.close_timeout_ticks, out);
        } else {
            self.release(initiator, ReleaseKind::Graceful, out);
        }
    }

    /// Server: answers the request with 101 and opens the connection. False if the transport
    /// failed meanwhile (the connection is then released).
    pub fn accept(
        &mut self,
        now: Tick,
        key: &[u8],
        protocol: Option<&str>,
        out: &mut impl Output,
    ) -> bool {
        debug_assert_eq!(self.phase, Phase::Handshake);
        let mut response = Vec::with_capacity(160);
        handshake::write_accept(&mut response, key, protocol);
        self.write_raw(&response, &[], now, out);
        if self.phase == Phase::Released {
            return false;
        }
        self.open(now, out);
        true
    }

    /// Server: answers the request with a refusal and lingers.
    pub fn refuse(&mut self, now: Tick, cfg: &Settings, refusal: &Refusal, out: &mut impl Output) {
        debug_assert_eq!(self.phase, Phase::Handshake);
        let mut response = Vec::with_capacity(256);
        handshake::write_refusal(&mut response, refusal);
        self.write_raw(&response, &[], now, out);
        if self.phase != Phase::Released {
            self.linger(now, Initiator::Server, cfg.close_timeout_ticks, out);
        }
    }

    /// Client: the server's 101 checked out; the connection is open.
    pub fn upgraded(&mut self, now: Tick, out: &mut impl Output) {
        debug_assert_eq!(self.phase, Phase::Handshake);
        self.open(now, out);
    }

    /// Client: the server's answer was not a valid 101.
    pub fn fail_handshake(&mut self, out: &mut impl Output) {
        self.release(Initiator::Abnormal, ReleaseKind::Graceful, out);
    }

    fn open(&mut self, now: Tick, out: &mut impl Output) {
        self.phase = Phase::Open;
        self.rx_tick = now;
        self.mark_tick = now;
        self.flags |= fx::DEADLINE;
        self.shrink(out);
    }

    /// The peer ended its stream (EOF): nothing more will come.
    pub fn on_eof(&mut self, out: &mut impl Output) {
        self.release(Initiator::Abnormal, ReleaseKind::Graceful, out);
    }

    /// The transport can take bytes again: send what is queued.
    pub fn on_writable(&mut self, out: &mut impl Output) {
        self.flags &= !flag::WRITE_WAIT;
        if self.phase == Phase::Released {
            return;
        }
        let Some(extra) = self.extra.as_mut() else {
            return;
        };
        let queue = &mut extra.outbound;
        while !queue.is_empty() {
            match out.transmit(queue.unsent(), &[]) {
                Ok(0) => {
                    self.flags |= flag::WRITE_WAIT | fx::WANT_WRITABLE;
                    return self.account(out);
                }
                Ok(n) => {
                    queue.consume(n);
                    out.note(Note::Dequeued(n));
                }
                Err(TransportError) => return self.transport_failed(out),
            }
        }
        out.note(Note::QueueEnded);
        self.shrink(out);
        if self.has(flag::RELEASE_AFTER_FLUSH) {
            return self.release(Initiator::Server, ReleaseKind::Graceful, out);
        }
        if self.has(flag::SHUTDOWN_AFTER_FLUSH) {
            self.flags = (self.flags & !flag::SHUTDOWN_AFTER_FLUSH) | fx::SHUTDOWN_WRITE;
        }
    }

    /// The app sends a message. False when the connection is not open.
    pub fn send(
        &mut self,
        now: Tick,
        cfg: &Settings,
        kind: MessageKind,
        payload: &[u8],
        out: &mut impl Output,
    ) -> bool {
        if self.phase != Phase::Open {
            return false;
        }
        self.write_frame(kind.opcode(), payload, now, cfg, out);
        true
    }

    /// The app sends a server frame encoded once for many connections (fan-out).
    pub fn send_encoded(
        &mut self,
        now: Tick,
        cfg: &Settings,
        frame: &[u8],
        out: &mut impl Output,
    ) -> bool {
        if self.phase != Phase::Open {
            return false;
        }
        assert_eq!(self.role(), Role::Server, "encoded frames are unmasked");
        let queued = self.outbound().map_or(0, Outbound::data_len);
        if queued > 0 && queued + frame.len() > cfg.max_outbound_bytes {
            self.slow_consumer(now, cfg, out);
        } else {
            self.write_raw(frame, &[], now, out);
        }
        true
    }

    /// Starts the close handshake: close frame out, then the peer has the close timeout to
    /// answer. A no-op unless open.
    pub fn close(
        &mut self,
        now: Tick,
        cfg: &Settings,
        code: CloseCode,
        reason: &str,
        out: &mut impl Output,
    ) {
        if self.phase != Phase::Open {
            return;
        }
        self.start_close(now, cfg.close_timeout_ticks, code, reason, cfg, out);
    }

    /// Close frame out; the peer has `grace_ticks` to answer.
    fn start_close(
        &mut self,
        now: Tick,
        grace_ticks: u32,
        code: CloseCode,
        reason: &str,
        cfg: &Settings,
        out: &mut impl Output,
    ) {
        if self.phase != Phase::Open {
            return;
        }
        // A code the RFC forbids on the wire (1005, 1006, 1015, ...) would make the peer fail
        // the connection: such a close goes out without a code.
        let code = Some(code).filter(|c| c.is_valid_on_wire());
        self.write_close(code, reason, now, cfg, out);
        if self.phase == Phase::Open {
            self.phase = Phase::Closing;
            self.mark_tick = now.wrapping_add(grace_ticks);
            self.flags |= fx::DEADLINE;
        }
    }

    /// The server is shutting down: an open connection starts its close (1001) and has until
    /// `deadline` (the driver's drain deadline) to answer; one still in its handshake gets it
    /// right after the 101 (the driver calls this again then).
    pub fn shut_down(&mut self, now: Tick, deadline: Tick, cfg: &Settings, out: &mut impl Output) {
        let grace_ticks = deadline.wrapping_sub(now).min(u32::MAX / 4);
        let reason = "server shutting down";
        self.start_close(now, grace_ticks, CloseCode::GOING_AWAY, reason, cfg, out);
    }

    /// The driver is over its memory budget and this connection holds the most: free what it
    /// holds. Input (a message being received, a request head) is dropped with 1009, the
    /// connection lingering until its peer closes; an outbound queue is dropped with a reset
    /// (its peer is not reading, so a close frame behind the queue would never arrive).
    pub fn shed(&mut self, now: Tick, cfg: &Settings, out: &mut impl Output) {
        let held_bytes = self.held_bytes();
        if self.phase == Phase::Released || held_bytes == 0 {
            return;
        }
        let outbound = self.outbound().map_or(0, Outbound::held_bytes);
        let inbound = self.held_inbound_bytes();
        out.note(Note::MemoryShed {
            inbound: inbound > outbound,
            held_bytes,
        });
        if inbound > outbound && self.is_upgraded() {
            let reason = "message dropped: the server is over its memory budget, retry later";
            self.fail(now, cfg, CloseCode::MESSAGE_TOO_BIG, reason, out);
        } else {
            if self.is_upgraded() && outbound > 0 {
                self.close_code = CloseCode::POLICY_VIOLATION.0;
            }
            self.release(Initiator::Server, ReleaseKind::Abortive, out);
        }
    }

    /// The driver gives up on the connection (its drain deadline passed): reset it.
    pub fn abandon(&mut self, out: &mut impl Output) {
        self.release(Initiator::Server, ReleaseKind::Abortive, out);
    }

    /// Fails the connection: close frame with `code`, then linger.
    fn fail(
        &mut self,
        now: Tick,
        cfg: &Settings,
        code: CloseCode,
        reason: &str,
        out: &mut impl Output,
    ) {
        // Our close may be out already (closing): one close frame per connection.
        if self.phase != Phase::Closing {
            self.write_close(Some(code), reason, now, cfg, out);
        }
        if self.phase != Phase::Released {
            self.linger(now, Initiator::Server, cfg.close_timeout_ticks, out);
        }
    }

    fn write_close(
        &mut self,
        code: Option<CloseCode>,
        reason: &str,
        now: Tick,
        cfg: &Settings,
        out: &mut impl Output,
    ) {
        let mut payload = [0u8; 125];
        let n = match code {
            Some(code) => encode_close_payload(&mut payload, code, reason),
            None => 0,
        };
        self.close_code = code.map_or(0, |c| c.0);
        self.write_frame(Opcode::Close, &payload[..n], now, cfg, out);
    }

    fn write_frame(
        &mut self,
        opcode: Opcode,
        payload: &[u8],
        now: Tick,
        cfg: &Settings,
        out: &mut impl Output,
    ) {
        match opcode {
            // Pings and pongs never count against the cap, and go ahead of queued data at the
            // next frame boundary: a heartbeat must not make an honest reader a slow consumer.
            Opcode::Ping | Opcode::Pong if self.queued_bytes() > 0 => {
                let mut frame = [0u8; MAX_HEADER_LEN + 125];
                let n = self.encode_into(&mut frame, true, opcode, payload, out);
                let extra = self.extra_mut();
                let before = extra.outbound.len();
                extra
                    .outbound
                    .push_control(&frame[..n], opcode == Opcode::Pong);
                let after = extra.outbound.len();
                if after > before {
                    out.note(Note::Queued(after - before));
                } else if before > after {
                    out.note(Note::Dequeued(before - after));
                }
            }
            // One close per connection, behind what was queued: exempt from the cap too.
            Opcode::Ping | Opcode::Pong | Opcode::Close => {
                self.write_one(true, opcode, payload, now, out)
            }
            _ => {
                let queued = self.outbound().map_or(0, Outbound::data_len);
                if queued > 0 && queued + payload.len() > cfg.max_outbound_bytes {
                    return self.slow_consumer(now, cfg, out);
                }
                if payload.len() <= OUTBOUND_FRAGMENT_BYTES {
                    return self.write_one(true, opcode, payload, now, out);
                }
                // Large messages go out in fragments, so control frames find boundaries.
                let mut chunks = payload.chunks(OUTBOUND_FRAGMENT_BYTES).peekable();
                let mut frame_opcode = opcode;
                while let Some(chunk) = chunks.next() {
                    let fin = chunks.peek().is_none();
                    self.write_one(fin, frame_opcode, chunk, now, out);
                    frame_opcode = Opcode::Continuation;
                    if self.phase == Phase::Released {
                        return;
                    }
                }
            }
        }
    }

    /// Writes one frame: a server's header on the stack with the payload behind it, a client's
    /// masked into a fresh buffer (client frames are not on a server's hot path).
    fn write_one(
        &mut self,
        fin: bool,
        opcode: Opcode,
        payload: &[u8],
        now: Tick,
        out: &mut impl Output,
    ) {
        if self.role() == Role::Client {
            let mut frame = Vec::with_capacity(MAX_HEADER_LEN + payload.len());
            append_client_frame(&mut frame, fin, opcode, payload, out.mask_key());
            return self.write_raw(&frame, &[], now, out);
        }
        let mut header = [0u8; MAX_HEADER_LEN];
        let n = encode_server_header(&mut header, fin, opcode, payload.len() as u64);
        self.write_raw(&header[..n], payload, now, out);
    }

    /// Encodes a whole control frame into `buf`; returns its length.
    fn encode_into(
        &self,
        buf: &mut [u8; MAX_HEADER_LEN + 125],
        fin: bool,
        opcode: Opcode,
        payload: &[u8],
        out: &mut impl Output,
    ) -> usize {
        debug_assert!(opcode.is_control() && payload.len() <= 125);
        let mut header = [0u8; MAX_HEADER_LEN];
        let n = if self.role() == Role::Client {
            encode_client_header(
                &mut header,
                fin,
                opcode,
                payload.len() as u64,
                out.mask_key(),
            )
        } else {
            encode_server_header(&mut header, fin, opcode, payload.len() as u64)
        };
        buf[..n].copy_from_slice(&header[..n]);
        buf[n..n + payload.len()].copy_from_slice(payload);
        if self.role() == Role::Client {
            let mask = [header[n - 4], header[n - 3], header[n - 2], header[n - 1]];
            super::mask::apply_mask(&mut buf[n..n + payload.len()], mask, 0);
        }
        n + payload.len()
    }

    /// The peer does not read: stop producing for it, queue a 1008 behind what it has not read,
    /// and give it the close timeout to take it.
    fn slow_consumer(&mut self, now: Tick, cfg: &Settings, out: &mut impl Output) {
        out.note(Note::SlowConsumer {
            queued_bytes: self.queued_bytes(),
        });
        let code = CloseCode::POLICY_VIOLATION;
        let mut payload = [0u8; 125];
        let n = encode_close_payload(&mut payload, code, "slow consumer: outbound buffer full");
        let mut header = [0u8; MAX_HEADER_LEN];
        let h = encode_server_header(&mut header, true, Opcode::Close, n as u64);
        // Behind the queue, never around the cap: the close must follow what was sent.
        self.queue(&header[..h], &payload[..n], false, now, out);
        self.close_code = code.0;
        // Not released after the flush: the peer may still be sending, and closing a socket with
        // unread input resets it, destroying the 1008 before the peer reads it. Lingering shuts
        // our side down after the flush and discards input until EOF or the close timeout.
        self.linger(now, Initiator::Server, cfg.close_timeout_ticks, out);
    }

    /// Writes `a` then `b`, queueing whatever the transport does not take.
    fn write_raw(&mut self, a: &[u8], b: &[u8], now: Tick, out: &mut impl Output) {
        if self.queued_bytes() > 0 {
            // Keep order behind bytes already waiting.
            return self.queue(a, b, false, now, out);
        }
        let total = a.len() + b.len();
        let sent = match out.transmit(a, b) {
            Ok(n) => n,
            Err(TransportError) => return self.transport_failed(out),
        };
        debug_assert!(sent <= total);
        if sent >= total {
            return;
        }
        // What is left of a frame partly sent: nothing may go out before its rest.
        let started = sent > 0;
        if sent < a.len() {
            self.queue(&a[sent..], b, started, now, out);
        } else {
            self.queue(&b[sent - a.len()..], &[], started, now, out);
        }
    }

    /// Queues one frame (or the rest of one, `partly_sent`).
    fn queue(&mut self, a: &[u8], b: &[u8], partly_sent: bool, now: Tick, out: &mut impl Output) {
        let started = self.queued_bytes() == 0;
        let extra = self.extra_mut();
        extra.outbound.push(a, b, partly_sent);
        if started {
            out.note(Note::QueueStarted);
            extra.outbound.progress = Progress::average(now);
            extra.outbound.sent_bytes = 0;
            // The write-stall deadline may be earlier than the armed one.
            self.flags |= fx::DEADLINE;
        }
        out.note(Note::Queued(a.len() + b.len()));
        if !self.has(flag::WRITE_WAIT) {
            self.flags |= flag::WRITE_WAIT | fx::WANT_WRITABLE;
        }
        self.account(out);
    }

    fn transport_failed(&mut self, out: &mut impl Output) {
        out.note(Note::TransportFailed);
        self.release(Initiator::Abnormal, ReleaseKind::Graceful, out);
    }

    /// Stop talking: shut our side down once queued bytes are out, then discard input until the
    /// peer closes or the close timeout passes.
    fn linger(
        &mut self,
        now: Tick,
        initiator: Initiator,
        close_timeout_ticks: u32,
        out: &mut impl Output,
    ) {
        self.leave_open(initiator);
        self.phase = Phase::Lingering;
        self.mark_tick = now.wrapping_add(close_timeout_ticks);
        self.flags |= fx::DEADLINE;
        let role = self.role();
        if let Some(e) = self.extra.as_mut() {
            e.pending = Vec::new();
            e.reader = Reader::new(role);
            e.bucket = None;
            e.input = None;
        }
        self.shrink(out);
        if self.queued_bytes() > 0 {
            self.flags |= flag::SHUTDOWN_AFTER_FLUSH;
        } else {
            self.flags |= fx::SHUTDOWN_WRITE;
        }
    }

    /// Ends the connection now; the driver frees it at the end of its pass.
    fn release(&mut self, initiator: Initiator, kind: ReleaseKind, out: &mut impl Output) {
        if self.phase == Phase::Released {
            return;
        }
        // A reset only where it frees something: bytes the peer will not read, or a socket
        // that never spoke WebSocket.
        let abortive = kind == ReleaseKind::Abortive
            && (self.queued_bytes() > 0 || self.phase == Phase::Handshake);
        self.leave_open(initiator);
        let queued = self.queued_bytes();
        if queued > 0 {
            out.note(Note::Dequeued(queued));
            out.note(Note::QueueEnded);
        }
        if let Some(e) = self.extra.take() {
            out.note(Note::Held(-(e.accounted as isize)));
        }
        self.phase = Phase::Released;
        self.flags &= !(flag::SHUTDOWN_AFTER_FLUSH | flag::RELEASE_AFTER_FLUSH | fx::DEADLINE);
        self.flags |= fx::RELEASE;
        if abortive {
            self.flags |= flag::ABORTIVE;
        }
    }

    /// Records how an upgraded connection ended, once.
    fn leave_open(&mut self, initiator: Initiator) {
        if self.is_upgraded() {
            self.flags = (self.flags & !flag::INITIATOR_MASK)
                | ((initiator as u16 + 1) << flag::INITIATOR_SHIFT)
                | fx::LEFT_OPEN;
        }
    }

    fn has(&self, flag: u16) -> bool {
        self.flags & flag != 0
    }

    fn outbound(&self) -> Option<&Outbound> {
        self.extra.as_ref().map(|e| &e.outbound)
    }

    fn extra_mut(&mut self) -> &mut Extra {
        let role = self.role();
        self.extra.get_or_insert_with(|| {
            Box::new(Extra {
                pending: Vec::new(),
                reader: Reader::new(role),
                outbound: Outbound::default(),
                bucket: None,
                input: None,
                accounted: 0,
            })
        })
    }

    /// Frees the extra state if it holds nothing, and reports the memory held.
    fn shrink(&mut self, out: &mut impl Output) {
        if self.extra.as_ref().is_some_and(|e| e.is_idle()) {
            if let Some(e) = self.extra.take() {
                out.note(Note::Held(-(e.accounted as isize)));
            }
        }
        self.account(out);
    }

    /// Reports a change of the memory held since the last report.
    fn account(&mut self, out: &mut impl Output) {
        let Some(e) = self.extra.as_mut() else {
            return;
        };
        let held = e.held_bytes();
        if held != e.accounted {
            out.note(Note::Held(held as isize - e.accounted as isize));
            e.accounted = held;
        }
    }
}
