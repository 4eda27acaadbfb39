//! The core's connection table and everything an app callback may touch through [`Ctx`].
//!
//! Each slot pairs a socket with its sans-IO [`Connection`]. The reactor calls the connection,
//! then [`Io::settle`] turns the effects it asks for into ring entries and syscalls. A released
//! connection stays in its slot, inert, until the end of the loop pass
//! ([`Io::free_released`]), so no call site needs a use-after-release guard: a slot a completion
//! or an app call reaches is always there, and its generation says whether it is still the same
//! connection.

use std::os::fd::RawFd;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use slab::Slab;

use super::gate::Gate;
use super::ring::{self, Op, Ring};
use super::timer_wheel::TimerWheel;
use crate::app::{ConnId, Ctx, PreparedFrame};
use crate::protocol::connection::{
    self, Connection, Note, Output, ReleaseKind, Tick, TransportError,
};
use crate::protocol::reader::INFLATED_TOO_BIG;
use crate::protocol::{CloseCode, MessageKind};
use crate::stats::{CoreStats, SecondsHistogram};
use crate::sys::socket::{self as sys, IoResult};
use crate::tls::{self, TlsFailure, TlsSession};

use super::proxy::Proxied;
use super::tls::tls_shutdown_write;
use crate::policy::Cidr;

/// Frames up to this size are joined (header + payload) in the core's scratch buffer and sent
/// with `send(2)`: cheaper in the kernel than `sendmsg(2)` with two iovecs (no msghdr or iovec
/// import), measured with benches/echo_profile.sh.
const JOIN_FRAME_MAX_BYTES: usize = 4096;

/// The settings a core needs, converted to the units it uses.
#[derive(Clone, Debug)]
pub struct CoreSettings {
    /// The rules every connection follows, in 100 ms ticks.
    pub conn: connection::Settings,
    /// The whole drain's bound, from the stop.
    pub drain_timeout_ticks: u32,
    /// From the stop to the listeners' close (`drain_delay`; 0: at once).
    pub drain_delay_ticks: u32,
    /// The 1001s are spread over this (`drain_spread`; 0: all at once).
    pub drain_spread_ticks: u32,
    /// Upgraded connections the whole server holds at once (all cores).
    pub max_connections: usize,
    /// This core's share of `memory_budget`: what its connections may hold in buffers.
    pub memory_budget_bytes: u64,
    pub recv_buffer_size: usize,
    pub ring_entries: u32,
    /// `proxy_protocol`: the load balancers whose PROXY headers are believed (None: off).
    pub proxy_trusted: Option<Vec<Cidr>>,
}

/// One socket and its connection: 32 bytes, the slab entry of an idle connection.
pub struct Slot {
    pub fd: RawFd,
    pub generation: u32,
    pub conn: Connection,
}

/// Upgraded connections of the whole server: one counter shared by the cores, so
/// `max_connections` is exact whatever core SO_REUSEPORT picks. Touched once per upgrade and
/// once per close, never per message.
#[derive(Debug, Default)]
pub struct OpenConnections(AtomicUsize);

impl OpenConnections {
    /// Takes a place if fewer than `max` are open.
    pub fn reserve(&self, max: usize) -> bool {
        self.0
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |open| {
                (open < max).then_some(open + 1)
            })
            .is_ok()
    }

    pub fn release(&self) {
        let before = self.0.fetch_sub(1, Ordering::AcqRel);
        debug_assert!(before > 0, "released more connections than were reserved");
    }

    pub fn get(&self) -> usize {
        self.0.load(Ordering::Acquire)
    }
}

/// Everything an app callback may touch through [`Ctx`]: the connections and the ring.
pub struct Io {
    pub core: usize,
    pub ring: Ring,
    pub conns: Slab<Slot>,
    pub wheel: TimerWheel,
    pub settings: CoreSettings,
    pub stats: Arc<CoreStats>,
    pub open: Arc<OpenConnections>,
    pub now_tick: Tick,
    /// Set once the drain closed the listeners: the tick by which every connection must be gone.
    pub drain_deadline: Option<Tick>,
    /// Connections that left the open state since the app last heard, with the close code.
    pub left_open: Vec<(ConnId, Option<CloseCode>)>,
    /// Released connections, freed at the end of the loop pass.
    released: Vec<u32>,
    pub fanout_latency: Arc<SecondsHistogram>,
    pub gate: Gate,
    /// Where a small frame's header and payload are joined for one `send(2)`.
    join_buf: Box<[u8]>,
    /// TLS sessions by slot key (`None` for plain connections; empty without a TLS listener).
    pub tls: Vec<Option<Box<TlsSession>>>,
    /// The core's TLS buffers: records out (handshake flights, encrypted frames) and the
    /// plaintext of a frame gathered for one record.
    pub(super) tls_buffers: TlsBuffers,
    /// With `proxy_protocol`: each connection's PROXY header state, by slot key.
    pub(super) proxied: Vec<Proxied>,
}

/// The core's shared TLS output buffers (empty without a TLS listener).
pub struct TlsBuffers {
    pub wire: Box<[u8]>,
    pub plain: Box<[u8]>,
}

impl TlsBuffers {
    pub fn new(tls: bool) -> TlsBuffers {
        let (wire, plain) = if tls {
            (
                tls::session::WIRE_BUFFER_BYTES,
                tls::session::PLAINTEXT_STEP_BYTES,
            )
        } else {
            (0, 0)
        };
        TlsBuffers {
            wire: vec![0u8; wire].into_boxed_slice(),
            plain: vec![0u8; plain].into_boxed_slice(),
        }
    }
}

impl Io {
    #[allow(clippy::too_many_arguments)]
    pub fn new(
        core: usize,
        ring: Ring,
        wheel: TimerWheel,
        settings: CoreSettings,
        stats: Arc<CoreStats>,
        open: Arc<OpenConnections>,
        fanout_latency: Arc<SecondsHistogram>,
        gate: Gate,
        tls: bool,
    ) -> Io {
        Io {
            core,
            ring,
            conns: Slab::new(),
            wheel,
            settings,
            stats,
            open,
            now_tick: 0,
            drain_deadline: None,
            left_open: Vec::new(),
            released: Vec::new(),
            fanout_latency,
            gate,
            join_buf: vec![0u8; JOIN_FRAME_MAX_BYTES].into_boxed_slice(),
            tls: Vec::new(),
            tls_buffers: TlsBuffers::new(tls),
            proxied: Vec::new(),
        }
    }

    /// The slot a completion names, if it is still the same connection (24-bit generations in
    /// ring tokens).
    pub fn current(&self, key: u32, generation: u32) -> bool {
        self.conns
            .get(key as usize)
            .is_some_and(|s| s.generation & 0x00FF_FFFF == generation & 0x00FF_FFFF)
    }

    fn slot_of(&self, id: ConnId) -> Option<u32> {
        self.conns
            .get(id.key as usize)
            .filter(|s| s.generation == id.generation)
            .map(|_| id.key)
    }

    /// Calls `f` with the connection in `key` and an output to its socket, then settles the
    /// effects.
    pub fn with_conn<R>(
        &mut self,
        key: u32,
        f: impl FnOnce(&mut Connection, &connection::Settings, Tick, &mut SocketOutput<'_>) -> R,
    ) -> R {
        let slot = &mut self.conns[key as usize];
        let session = self
            .tls
            .get_mut(key as usize)
            .and_then(|s| s.as_deref_mut());
        let tls_held_before = session.as_ref().map_or(0, |s| s.held_bytes());
        let mut out = SocketOutput {
            fd: slot.fd,
            core: self.core,
            join_buf: &mut self.join_buf,
            stats: &self.stats,
            draining: self.drain_deadline.is_some(),
            tls: session.map(|session| TlsOutput {
                session,
                buffers: &mut self.tls_buffers,
            }),
        };
        let r = f(&mut slot.conn, &self.settings.conn, self.now_tick, &mut out);
        let is_tls = out.tls.is_some();
        if slot.conn.has_effects() {
            self.settle(key);
        }
        if is_tls {
            self.after_tls_output(key, tls_held_before);
        }
        r
    }

    /// The heartbeat jitter of the connection in `key`.
    pub fn jitter(&self, key: u32) -> u32 {
        let generation = self.conns[key as usize].generation;
        self.settings
            .conn
            .ping_jitter_ticks(key as u64 ^ ((generation as u64) << 32))
    }

    /// Carries out what the connection in `key` asked for.
    pub fn settle(&mut self, key: u32) {
        let slot = &mut self.conns[key as usize];
        let effects = slot.conn.poll_effects();
        if effects.is_empty() {
            return;
        }
        let (fd, generation) = (slot.fd, slot.generation);
        let session = self
            .tls
            .get_mut(key as usize)
            .and_then(|s| s.as_deref_mut());
        // A session flushing its records has the one writability poll armed already.
        if effects.want_writable() && !session.as_ref().is_some_and(|s| s.writable_armed()) {
            let token = ring::token(Op::Writable, key, generation);
            self.ring.push(ring::poll_writable(fd, token));
        }
        if effects.shutdown_write() {
            match session {
                Some(session) => tls_shutdown_write(fd, session, &mut self.tls_buffers),
                None => sys::shutdown_write(fd),
            }
        }
        if effects.left_open() {
            let (initiator, code) = slot.conn.end().expect("a connection that left knows how");
            self.stats.closed(initiator, code.map(|c| c.0));
            self.stats
                .connections_open
                .set(self.stats.connections_open.get().saturating_sub(1));
            self.open.release();
            self.left_open.push((ConnId { key, generation }, code));
        }
        if effects.release() {
            self.released.push(key);
        } else if effects.deadline_changed() {
            let jitter = self.jitter(key);
            if let Some(deadline) = self.conns[key as usize]
                .conn
                .next_deadline(&self.settings.conn, jitter)
            {
                self.wheel.schedule(key, deadline);
            }
        }
    }

    /// Frees the connections released during this pass: cancels their ring requests, closes
    /// their sockets (with a reset when the connection asked for one) and frees their slots.
    pub fn free_released(&mut self) {
        for key in self.released.drain(..) {
            let slot = self.conns.remove(key as usize);
            debug_assert!(slot.conn.is_released());
            let token = |op| ring::token(op, key, slot.generation);
            self.ring.push(ring::cancel(token(Op::Readable)));
            if let Some(state) = self.proxied.get_mut(key as usize) {
                *state = Proxied::Off;
            }
            let session = self.tls.get_mut(key as usize).and_then(Option::take);
            let tls_armed = session.as_ref().is_some_and(|s| s.writable_armed());
            if slot.conn.awaits_writable() || tls_armed {
                self.ring.push(ring::cancel(token(Op::Writable)));
            }
            if let Some(session) = session {
                let held = &self.stats.memory_held_bytes;
                held.set(held.get().saturating_sub(session.held_bytes() as u64));
            }
            self.wheel.cancel(key);
            if slot.conn.release_kind() == ReleaseKind::Abortive {
                sys::set_linger_zero(slot.fd);
            }
            sys::close(slot.fd);
        }
    }
}

/// A connection's [`Output`]: its socket, written at once (through its TLS session on a wss
/// connection), and the core's counters.
pub struct SocketOutput<'a> {
    pub(super) fd: RawFd,
    pub(super) core: usize,
    join_buf: &'a mut [u8],
    pub(super) stats: &'a CoreStats,
    draining: bool,
    pub(super) tls: Option<TlsOutput<'a>>,
}

/// A wss connection's session and the core's TLS buffers, for the duration of one call.
pub struct TlsOutput<'a> {
    pub session: &'a mut TlsSession,
    pub buffers: &'a mut TlsBuffers,
}

impl Output for SocketOutput<'_> {
    fn transmit(&mut self, head: &[u8], body: &[u8]) -> Result<usize, TransportError> {
        if self.tls.is_some() {
            return self.transmit_tls(head, body);
        }
        let total = head.len() + body.len();
        let result = if !body.is_empty() && total <= self.join_buf.len() {
            self.join_buf[..head.len()].copy_from_slice(head);
            self.join_buf[head.len()..total].copy_from_slice(body);
            sys::send2(self.fd, &self.join_buf[..total], &[])
        } else {
            sys::send2(self.fd, head, body)
        };
        match result {
            IoResult::Done(n) => {
                self.stats.socket_bytes_sent.add(n as u64);
                Ok(n)
            }
            IoResult::WouldBlock | IoResult::Eof => Ok(0),
            IoResult::Failed(e) => {
                tracing::debug!(core = self.core, "send failed: {e}");
                Err(TransportError)
            }
        }
    }

    fn note(&mut self, note: Note) {
        let s = self.stats;
        match note {
            Note::HandshakeTimeout => {
                s.handshake_timeouts.inc();
                if self
                    .tls
                    .as_ref()
                    .is_some_and(|t| !t.session.is_handshaken())
                {
                    s.tls_failed(TlsFailure::Timeout);
                }
            }
            Note::PingSent => s.heartbeat_pings_sent.inc(),
            Note::HeartbeatTimeout => s.heartbeat_timeouts.inc(),
            Note::IdleTimeout => s.idle_timeouts.inc(),
            Note::CloseAcknowledged if self.draining => s.drained_cleanly.inc(),
            Note::CloseAcknowledged => {}
            Note::CloseTimeout => {
                s.close_timeouts.inc();
                if self.draining {
                    s.drained_forced.inc();
                }
            }
            Note::WriteStall { queued_bytes } => {
                s.write_stall_closes.inc();
                tracing::debug!(core = self.core, queued_bytes, "write stall: closing");
            }
            Note::MessageTimeout { received_bytes } => {
                s.message_timeouts.inc();
                tracing::debug!(
                    core = self.core,
                    received_bytes,
                    "message too slow: closing"
                );
            }
            Note::SlowConsumer { queued_bytes } => {
                s.slow_consumer_closes.inc();
                tracing::debug!(core = self.core, queued_bytes, "slow consumer: closing");
            }
            Note::RateLimited => s.rate_limit_closes.inc(),
            Note::ProtocolError(err) => {
                s.protocol_errors.inc();
                if err == INFLATED_TOO_BIG {
                    s.deflate_inflate_limit_closes.inc();
                }
                tracing::debug!(core = self.core, "protocol error: {err}");
            }
            Note::TransportFailed => {}
            Note::QueueStarted => s
                .backpressured_connections
                .set(s.backpressured_connections.get() + 1),
            Note::Queued(n) => s
                .outbound_queued_bytes
                .set(s.outbound_queued_bytes.get() + n as u64),
            Note::Dequeued(n) => s
                .outbound_queued_bytes
                .set(s.outbound_queued_bytes.get().saturating_sub(n as u64)),
            Note::Held(delta) => s.memory_held_bytes.set(
                s.memory_held_bytes
                    .get()
                    .saturating_add_signed(delta as i64),
            ),
            Note::MemoryShed {
                inbound,
                held_bytes,
            } => {
                if inbound {
                    s.memory_sheds_inbound.inc();
                } else {
                    s.memory_sheds_outbound.inc();
                }
                tracing::debug!(
                    core = self.core,
                    inbound,
                    held_bytes,
                    "over the memory budget: closing"
                );
            }
            Note::QueueEnded => s
                .backpressured_connections
                .set(s.backpressured_connections.get().saturating_sub(1)),
            Note::DeflateNegotiated => s.deflate_connections.set(s.deflate_connections.get() + 1),
            Note::DeflateEnded => s
                .deflate_connections
                .set(s.deflate_connections.get().saturating_sub(1)),
            Note::Compressed {
                sent,
                compressed,
                uncompressed,
            } => {
                let (wire, plain) = if sent {
                    (
                        &s.deflate_sent_compressed_bytes,
                        &s.deflate_sent_uncompressed_bytes,
                    )
                } else {
                    (
                        &s.deflate_received_compressed_bytes,
                        &s.deflate_received_inflated_bytes,
                    )
                };
                wire.add(compressed as u64);
                plain.add(uncompressed as u64);
            }
        }
    }

    fn mask_key(&mut self) -> [u8; 4] {
        // Server connections never mask; a fixed key keeps this total rather than panicking.
        [0; 4]
    }
}

impl Ctx for Io {
    fn send(&mut self, conn: ConnId, kind: MessageKind, payload: &[u8]) -> bool {
        let Some(key) = self.slot_of(conn) else {
            return false;
        };
        let sent = self.with_conn(key, |c, cfg, now, out| c.send(now, cfg, kind, payload, out));
        if sent {
            self.stats.message_sent(kind, payload.len());
        }
        sent
    }

    fn close(&mut self, conn: ConnId, code: CloseCode, reason: &str) {
        if let Some(key) = self.slot_of(conn) {
            self.with_conn(key, |c, cfg, now, out| c.close(now, cfg, code, reason, out));
        }
    }

    fn core(&self) -> usize {
        self.core
    }

    fn send_prepared(&mut self, conn: ConnId, frame: &PreparedFrame) -> bool {
        let Some(key) = self.slot_of(conn) else {
            return false;
        };
        let sent = self.with_conn(key, |c, cfg, now, out| {
            let (bytes, compressed) = frame.bytes_for(c.negotiated(), &cfg.compression);
            let sent = c.send_encoded(now, cfg, bytes, out);
            if let (true, Some(compressed)) = (sent, compressed) {
                out.note(Note::Compressed {
                    sent: true,
                    compressed,
                    uncompressed: frame.payload_len(),
                });
            }
            sent
        });
        if sent {
            self.stats.message_sent(frame.kind(), frame.payload_len());
        }
        sent
    }

    fn record_fanout_latency(&mut self, seconds: f64) {
        self.fanout_latency.record(seconds);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_idle_connection_slot_fits_in_32_bytes() {
        // The budget of an idle upgraded connection is 64 B in all (slab entry + timer node).
        assert!(
            std::mem::size_of::<Slot>() <= 32,
            "Slot is {} bytes",
            std::mem::size_of::<Slot>()
        );
        // The slab's private entry enum wraps it in Occupied/Vacant; the phase leaves room for
        // its tag.
        assert!(std::mem::size_of::<Option<Slot>>() <= 32);
    }

    #[test]
    fn the_open_count_is_exact_at_the_limit() {
        let open = OpenConnections::default();
        assert!(open.reserve(2) && open.reserve(2));
        assert!(!open.reserve(2), "the third of two is refused");
        open.release();
        assert!(open.reserve(2), "a freed place is taken again");
        assert_eq!(open.get(), 2);
    }
}
