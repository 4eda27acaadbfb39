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

mod deadlines;
mod outbound;
mod progress;
mod receive;
mod send;
#[cfg(test)]
mod tests;

pub use outbound::{Outbound, TokenBucket, MAX_CONTROL_QUEUE_BYTES};
pub use progress::{Progress, Verdict};

use super::close::encode_close_payload;
use super::deflate::{self, Answer, Compression, Negotiated};
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
    /// permessage-deflate: whether to accept it (a server; a client driver decides whether to
    /// offer it), and which messages to compress (both roles).
    pub compression: Compression,
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
    /// permessage-deflate was negotiated (the 101 said so).
    DeflateNegotiated,
    /// A connection that negotiated permessage-deflate was released.
    DeflateEnded,
    /// A compressed message arrived (`sent` false) or went out: its payload bytes on the wire
    /// and uncompressed.
    Compressed {
        sent: bool,
        compressed: usize,
        uncompressed: usize,
    },
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
    /// permessage-deflate, if negotiated (a byte of what would be padding).
    deflate: Negotiated,
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
    /// To offer permessage-deflate the request carries [`deflate::CLIENT_OFFER`]; the answer,
    /// judged with [`deflate_answer`](crate::protocol::client_handshake::deflate_answer), goes to
    /// [`Connection::upgraded`].
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
            deflate: Negotiated::NONE,
        }
    }

    /// The permessage-deflate this connection negotiated (none until open).
    pub fn negotiated(&self) -> Negotiated {
        self.deflate
    }

    /// A reader for this connection's frames, between messages.
    fn new_reader(&self) -> Reader {
        Reader::new(self.role()).with_deflate(self.deflate.is_on())
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

    /// Server: answers the request with 101 and opens the connection, with permessage-deflate
    /// when `cfg` allows it and the client offered it acceptably; `extra_head`: header lines
    /// (CRLF-ended) added to the 101, empty unless the client asked for them. False if the
    /// transport failed meanwhile (the connection is then released).
    pub fn accept(
        &mut self,
        now: Tick,
        cfg: &Settings,
        request: &UpgradeRequest<'_>,
        protocol: Option<&str>,
        extra_head: &[u8],
        out: &mut impl Output,
    ) -> bool {
        debug_assert_eq!(self.phase, Phase::Handshake);
        let agreement = if cfg.compression.enabled {
            deflate::negotiate(request.extension_lines())
        } else {
            None
        };
        let mut response = Vec::with_capacity(256);
        handshake::write_accept_adding(
            &mut response,
            request.key,
            protocol,
            agreement.as_ref(),
            extra_head,
        );
        self.write_raw(&response, &[], now, out);
        self.deflate = Negotiated::from_agreement(agreement);
        if self.deflate.is_on() && self.phase != Phase::Released {
            out.note(Note::DeflateNegotiated);
        }
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

    /// Client: the server's 101 checked out; the connection is open, with permessage-deflate
    /// when the server accepted the offer (`deflate`: its answer, judged with
    /// [`deflate_answer`](crate::protocol::client_handshake::deflate_answer)). Messages are then
    /// compressed and inflated with the core's codec, as on a server: nothing per connection.
    pub fn upgraded(&mut self, now: Tick, deflate: Option<&Answer>, out: &mut impl Output) {
        debug_assert_eq!(self.phase, Phase::Handshake);
        self.deflate = Negotiated::from_answer(deflate);
        if self.deflate.is_on() {
            out.note(Note::DeflateNegotiated);
        }
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

    /// The layer under the frames (TLS) failed: nothing more can be read or written.
    pub fn fail_transport(&mut self, out: &mut impl Output) {
        self.release(Initiator::Abnormal, ReleaseKind::Graceful, out);
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
        let reason = "server shutting down, reconnect";
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
        let reader = self.new_reader();
        if let Some(e) = self.extra.as_mut() {
            e.pending = Vec::new();
            e.reader = reader;
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
        if self.deflate.is_on() {
            out.note(Note::DeflateEnded);
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
        let reader = self.new_reader();
        self.extra.get_or_insert_with(|| {
            Box::new(Extra {
                pending: Vec::new(),
                reader,
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
