//! Drives one server `Connection` through arbitrary operations (client bytes and frames, clock
//! ticks and timeouts, app sends and closes, shutdown, a transport that takes only part of what
//! it is offered or fails, EOF) and checks its invariants after every call:
//!
//! - the server's output is its HTTP answer, then (after a 101) valid frames, nothing at all
//!   after a refusal or after the first close frame, and nothing once it asked to shut down;
//! - data messages reach the wire complete and in the order the app sent them;
//! - carried input, the reader's buffer and the outbound queue stay within their limits;
//! - the queue notes add up to the queue, and writability is armed exactly while bytes wait;
//! - `left_open` and `release` happen at most once, and a released connection is inert;
//! - a timeout handled before its deadline changes nothing but the re-arm.
//!
//! Input layout: `[settings, clock, jitter, (op, args...)*]`; see `Driver::op`. Bit 0 of
//! `settings` puts a valid upgrade request in front of the first bytes fed, so most runs open.
//!
//! The app keeps to its side: messages of at most `max_message_size`, UTF-8 text, and close codes
//! valid on the wire (`Connection::close` writes whatever code it is given).
//!
//! Inputs that failed are kept in `fuzz/regressions/connection/`; replay one with
//! `cargo fuzz run connection fuzz/regressions/connection/<name>`.

#![no_main]

use libfuzzer_sys::fuzz_target;
use ringws::protocol::close::CloseCode;
use ringws::protocol::connection::{
    reached, Connection, Initiator, Note, Output, Phase, Received, Settings, Tick, TransportError,
    MAX_CONTROL_QUEUE_BYTES,
};
use ringws::protocol::frame::encode_server_header;
use ringws::protocol::handshake::{write_accept, write_refusal};
use ringws::protocol::reader::Flow;
use ringws::protocol::{Event, HandshakeLimits, Limits, MessageKind, Reader, Role, MAX_HEADER_LEN};

const REQUEST: &[u8] = b"GET /chat HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\n\
    Connection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\
    Sec-WebSocket-Version: 13\r\n\r\n";

/// The close frame a slow consumer gets (`Connection::slow_consumer`): the one frame that may be
/// queued past `max_outbound_bytes`. Header (2) + code (2) + reason.
const SLOW_CONSUMER_CLOSE_LEN: usize = 2 + 2 + "slow consumer: outbound buffer full".len();

/// Close codes an app may send: the ones valid on the wire (`CloseCode::is_valid_on_wire`).
const APP_CODES: [u16; 12] = [
    1000, 1001, 1002, 1003, 1007, 1008, 1009, 1010, 1011, 1012, 1013, 3000,
];

/// Client frames' masking key.
const MASK: [u8; 4] = [0x37, 0xfa, 0x21, 0x3d];

/// The fuzz input, read front to back; reads past the end give zeros.
struct Bytes<'a>(&'a [u8]);

impl<'a> Bytes<'a> {
    fn byte(&mut self) -> u8 {
        let Some((&b, rest)) = self.0.split_first() else {
            return 0;
        };
        self.0 = rest;
        b
    }

    fn u16(&mut self) -> u16 {
        u16::from_le_bytes([self.byte(), self.byte()])
    }

    fn take(&mut self, n: usize) -> &'a [u8] {
        let (taken, rest) = self.0.split_at(n.min(self.0.len()));
        self.0 = rest;
        taken
    }
}

/// The socket: keeps everything transmitted, takes at most `per_call` bytes per call and
/// `budget` bytes in all until the next window; once `broken`, every call fails.
#[derive(Default)]
struct Transport {
    wire: Vec<u8>,
    notes: Vec<Note>,
    per_call: Option<usize>,
    budget: Option<usize>,
    broken: bool,
}

impl Output for Transport {
    fn transmit(&mut self, head: &[u8], body: &[u8]) -> Result<usize, TransportError> {
        if self.broken {
            return Err(TransportError);
        }
        let mut take = head.len() + body.len();
        if let Some(cap) = self.per_call {
            take = take.min(cap);
        }
        if let Some(budget) = self.budget.as_mut() {
            take = take.min(*budget);
            *budget -= take;
        }
        let from_head = take.min(head.len());
        self.wire.extend_from_slice(&head[..from_head]);
        self.wire.extend_from_slice(&body[..take - from_head]);
        Ok(take)
    }

    fn note(&mut self, note: Note) {
        self.notes.push(note);
    }

    fn mask_key(&mut self) -> [u8; 4] {
        panic!("a server connection asked for a masking key");
    }
}

/// What the app does with each message it receives.
#[derive(Clone, Copy)]
enum Reaction {
    Nothing,
    Echo,
    Close,
    SendLargest,
}

/// Length of the header `encode_server_header` writes for a payload of `len` bytes.
fn server_header_len(len: usize) -> usize {
    match len {
        0..=125 => 2,
        126..=65535 => 4,
        _ => 10,
    }
}

/// `len` bytes of valid UTF-8 mixing 1- to 4-byte characters, so truncation and validation see
/// every width.
fn text(len: usize, seed: u8) -> String {
    const CHARS: [char; 5] = ['a', 'é', '€', '😀', 'z'];
    let mut s = String::with_capacity(len);
    let mut i = usize::from(seed);
    while s.len() < len {
        let c = CHARS[i % CHARS.len()];
        if s.len() + c.len_utf8() <= len {
            s.push(c);
        } else {
            s.push('.');
        }
        i += 1;
    }
    s
}

struct Driver {
    cfg: Settings,
    jitter: u32,
    now: Tick,
    conn: Connection,
    out: Transport,
    /// A valid upgrade request still to be put in front of the next bytes fed.
    prefix: Option<&'static [u8]>,
    reaction: Reaction,
    /// The driver's one-shot writability poll is armed.
    armed: bool,
    /// `shut_down` came before the upgrade: the driver repeats it right after the 101.
    draining: bool,

    // What the connection has told the driver so far.
    accepted: bool,
    left_open: bool,
    end: Option<(Initiator, Option<CloseCode>)>,
    released: bool,
    /// Wire length when `shutdown_write` was asked for: nothing may follow it.
    shut_at: Option<usize>,

    // The server's output, checked as it grows.
    /// The HTTP answer expected, and whether it was a 101.
    head: Option<(Vec<u8>, bool)>,
    checked: usize,
    decoder: Reader,
    undecoded: Vec<u8>,
    saw_close: bool,
    /// Messages the app handed to `send`/`send_encoded` that were accepted, in order.
    sent: Vec<(MessageKind, Vec<u8>)>,
    delivered: usize,

    // Queue accounting from the notes.
    notes_seen: usize,
    queued_by_notes: usize,
    /// The memory the connection holds, from its `Held` notes.
    held_by_notes: isize,
    queues_open: usize,
}

impl Driver {
    fn new(bytes: &mut Bytes) -> Driver {
        let select = bytes.byte();
        let (max_frame_size, max_message_size) =
            [(4096, 4096), (1024, 3000), (125, 2048), (2048, 1024)][usize::from(select >> 1) & 3];
        let cfg = Settings {
            limits: Limits {
                max_frame_size,
                max_message_size,
            },
            handshake: HandshakeLimits {
                max_head_bytes: if select & 0x08 != 0 { 512 } else { 4096 },
                max_headers: 16,
            },
            handshake_timeout_ticks: 100,
            close_timeout_ticks: 50,
            ping_interval_ticks: 300,
            pong_timeout_ticks: 100,
            idle_timeout_ticks: (select & 0x10 != 0).then_some(150),
            message_timeout_ticks: 150,
            min_receive_bytes_per_tick: 5,
            write_stall_timeout_ticks: 200,
            min_send_bytes_per_tick: 5,
            max_outbound_bytes: if select & 0x20 != 0 { 700 } else { 4096 },
            message_rate_milli_per_tick: if select & 0x40 != 0 { 500 } else { 0 },
            message_burst: 3,
            compression: Default::default(),
        };
        // Start anywhere on the wrapping clock, often just before it wraps or changes sign.
        let clock = bytes.byte();
        let now = match clock & 3 {
            0 => 0,
            1 => u32::MAX - u32::from(clock),
            2 => (i32::MAX as u32) - u32::from(clock),
            _ => u32::from(clock) << 20,
        };
        let jitter = cfg.ping_jitter_ticks(u64::from(bytes.byte()));
        let mut driver = Driver {
            conn: Connection::server(now, 0),
            cfg,
            jitter,
            now,
            out: Transport::default(),
            prefix: (select & 1 != 0).then_some(REQUEST),
            reaction: Reaction::Nothing,
            armed: false,
            draining: false,
            accepted: false,
            left_open: false,
            end: None,
            released: false,
            shut_at: None,
            head: None,
            checked: 0,
            decoder: Reader::new(Role::Client),
            undecoded: Vec::new(),
            saw_close: false,
            sent: Vec::new(),
            delivered: 0,
            notes_seen: 0,
            queued_by_notes: 0,
            held_by_notes: 0,
            queues_open: 0,
        };
        driver.settle();
        driver
    }

    fn max_message(&self) -> usize {
        self.cfg.limits.max_message_size as usize
    }

    /// The most the outbound queue can hold (see `Connection::write_capped`). A write into an
    /// empty queue is never capped, so the queue may hold one whole write: the largest frame
    /// (a message of `max_message_size`, a 127-byte control frame) or the HTTP answer. A write
    /// into a non-empty queue either keeps it within `max_outbound_bytes` or is dropped for the
    /// slow-consumer close frame, after which the connection lingers and writes nothing more.
    fn queue_bound(&self) -> usize {
        let m = self.max_message();
        let largest_write = (m + server_header_len(m))
            .max(2 + 125)
            .max(self.head.as_ref().map_or(0, |(h, _)| h.len()));
        // Pings and pongs wait in their own slot, outside the cap (see `Outbound`).
        self.cfg.max_outbound_bytes.max(largest_write)
            + SLOW_CONSUMER_CLOSE_LEN
            + MAX_CONTROL_QUEUE_BYTES
    }

    /// Runs one operation; false at the end of the input.
    fn op(&mut self, bytes: &mut Bytes) -> bool {
        let Some(&op) = bytes.0.first() else {
            return false;
        };
        bytes.byte();
        let op = op % 12;
        if op > 1 {
            if let Some(prefix) = self.prefix.take() {
                self.feed(prefix);
            }
        }
        let was_released = self.conn.is_released();
        let (wire, notes) = (self.out.wire.len(), self.out.notes.len());
        match op {
            // Raw bytes from the client, in one read.
            0 => {
                let n = bytes.byte();
                let n = if n & 0x80 != 0 {
                    usize::from(n & 0x7f) * 40
                } else {
                    usize::from(n)
                };
                let chunk = bytes.take(n).to_vec();
                self.feed_with_prefix(&chunk);
            }
            // Client frames, possibly invalid, delivered whole or in reads of a chosen size.
            1 => {
                let frames = self.client_frames(bytes);
                let read = bytes.byte();
                if read == 0 {
                    self.feed_with_prefix(&frames);
                } else {
                    let mut chunks = frames.chunks(usize::from(read));
                    let first = chunks.next().unwrap_or_default();
                    self.feed_with_prefix(first);
                    for chunk in chunks {
                        self.feed(chunk);
                    }
                }
            }
            // Time passes; the driver's timer fires at the deadline.
            2 => {
                let t = bytes.byte();
                let t = if t & 0x80 != 0 {
                    u32::from(t & 0x7f) * 16
                } else {
                    u32::from(t)
                };
                self.now = self.now.wrapping_add(t);
                for _ in 0..4 {
                    match self.conn.next_deadline(&self.cfg, self.jitter) {
                        Some(deadline) if reached(deadline, self.now) => self.timeout(),
                        _ => break,
                    }
                }
            }
            // A timer fires whenever (a stale one, or a deadline that moved).
            3 => self.timeout(),
            // The app sends a message, directly or as a frame encoded once for many.
            4 => {
                let flags = bytes.byte();
                let len = usize::from(bytes.u16()) % (self.max_message() + 1);
                let kind = if flags & 1 != 0 {
                    MessageKind::Binary
                } else {
                    MessageKind::Text
                };
                self.send(kind, len, flags & 2 != 0, flags);
            }
            // The app closes with a code and a reason that may need truncating.
            5 => {
                let code = bytes.byte();
                let code = match code {
                    0..=127 => APP_CODES[usize::from(code) % APP_CODES.len()],
                    _ => 3000 + bytes.u16() % 2000,
                };
                let reason = text(usize::from(bytes.byte()), code as u8);
                let now = self.now;
                self.conn
                    .close(now, &self.cfg, CloseCode(code), &reason, &mut self.out);
                self.settle();
            }
            // The server shuts down.
            6 => {
                self.draining = true;
                let now = self.now;
                self.conn.shut_down(now, now.wrapping_add(80), &self.cfg, &mut self.out);
                self.settle();
            }
            // The socket's window changes; if writability was asked for, it is reported.
            7 => {
                let (cap, budget) = (bytes.byte(), bytes.byte());
                self.out.per_call = (cap != 255).then_some(usize::from(cap) * 8);
                self.out.budget = (budget != 255).then_some(usize::from(budget) * 32);
                if self.armed || self.conn.is_released() {
                    self.armed = false;
                    self.conn.on_writable(&mut self.out);
                    self.settle();
                }
            }
            // The transport breaks: the next write fails.
            8 => self.out.broken = true,
            // The peer closes its side.
            9 => {
                self.conn.on_eof(&mut self.out);
                self.settle();
            }
            // The app changes how it answers messages.
            10 => {
                self.reaction = match bytes.byte() % 4 {
                    0 => Reaction::Nothing,
                    1 => Reaction::Echo,
                    2 => Reaction::Close,
                    _ => Reaction::SendLargest,
                };
            }
            // The driver gives up on the connection.
            _ => {
                self.conn.abandon(&mut self.out);
                self.settle();
            }
        }
        if was_released {
            assert_eq!(
                self.out.wire.len(),
                wire,
                "a released connection transmitted"
            );
            assert!(
                self.out.notes.len() == notes,
                "a released connection produced notes: {:?}",
                &self.out.notes[notes..]
            );
        }
        true
    }

    /// Builds client frames from `bytes`: opcode (reserved ones too), FIN, RSV, masking, length
    /// (up to past the limits, or only declared), payload from a pattern or the input, repeated.
    fn client_frames(&mut self, bytes: &mut Bytes) -> Vec<u8> {
        let (b0, len, mode) = (bytes.byte(), bytes.byte(), bytes.byte());
        let opcode = [0x1, 0x2, 0x0, 0x8, 0x9, 0xA, 0x3, 0xB][usize::from(b0 & 7)];
        let fin = if b0 & 0x08 == 0 { 0x80 } else { 0 };
        let rsv = if b0 & 0x10 != 0 { 0x40 } else { 0 };
        let masked = mode & 1 == 0;
        let (declared, len) = match len {
            255 => (u64::MAX >> 1, 0),
            0..=127 => (u64::from(len), usize::from(len)),
            _ => {
                let n = usize::from(len & 0x7f) * 64 + usize::from(b0 >> 5);
                (n as u64, n)
            }
        };
        let mut payload = if mode & 2 != 0 {
            bytes.take(len).to_vec()
        } else if opcode == 0x8 && len >= 2 {
            let code = APP_CODES[usize::from(b0 >> 5) % APP_CODES.len()];
            let mut p = code.to_be_bytes().to_vec();
            p.extend_from_slice(text(len - 2, mode).as_bytes());
            p
        } else {
            text(len, mode).into_bytes()
        };
        let mut frame = vec![fin | rsv | opcode];
        let mask_bit = if masked { 0x80 } else { 0 };
        if declared < 126 && mode & 4 == 0 {
            frame.push(mask_bit | declared as u8);
        } else if declared <= 0xffff && mode & 4 == 0 {
            frame.push(mask_bit | 126);
            frame.extend_from_slice(&(declared as u16).to_be_bytes());
        } else {
            // Also the non-minimal 64-bit form of a short length, when asked for.
            frame.push(mask_bit | 127);
            frame.extend_from_slice(&declared.to_be_bytes());
        }
        if masked {
            frame.extend_from_slice(&MASK);
            for (i, b) in payload.iter_mut().enumerate() {
                *b ^= MASK[i % 4];
            }
        }
        frame.extend_from_slice(&payload);
        let repeat = usize::from(mode >> 4) + 1;
        frame.repeat(repeat)
    }

    /// `handle_timeout` at the current tick; before the deadline it may only re-arm.
    fn timeout(&mut self) {
        let due = self
            .conn
            .next_deadline(&self.cfg, self.jitter)
            .map(|d| reached(d, self.now));
        let (phase, wire, notes) = (self.conn.phase(), self.out.wire.len(), self.out.notes.len());
        let now = self.now;
        self.conn
            .handle_timeout(now, &self.cfg, self.jitter, &mut self.out);
        if due == Some(false) {
            assert_eq!(
                self.conn.phase(),
                phase,
                "an early timeout changed the phase"
            );
            assert_eq!(self.out.wire.len(), wire, "an early timeout transmitted");
            assert_eq!(
                self.out.notes.len(),
                notes,
                "an early timeout produced notes"
            );
            let fx = self.conn.poll_effects();
            assert!(
                !fx.want_writable() && !fx.shutdown_write() && !fx.left_open() && !fx.release(),
                "an early timeout did more than re-arm: {fx:?}"
            );
        }
        self.settle();
    }

    fn send(&mut self, kind: MessageKind, len: usize, encoded: bool, seed: u8) {
        let payload = match kind {
            MessageKind::Text => text(len, seed).into_bytes(),
            MessageKind::Binary => (0..len).map(|i| seed.wrapping_add(i as u8)).collect(),
        };
        let now = self.now;
        let open = self.conn.phase() == Phase::Open;
        let sent = if encoded {
            let mut header = [0u8; MAX_HEADER_LEN];
            let h = encode_server_header(&mut header, true, kind.opcode(), len as u64);
            let frame = [&header[..h], &payload].concat();
            self.conn
                .send_encoded(now, &self.cfg, &frame, &mut self.out)
        } else {
            self.conn
                .send(now, &self.cfg, kind, &payload, &mut self.out)
        };
        assert_eq!(sent, open, "send's answer disagrees with the phase");
        if sent {
            self.sent.push((kind, payload));
        }
        self.settle();
    }

    fn feed_with_prefix(&mut self, bytes: &[u8]) {
        match self.prefix.take() {
            Some(prefix) => self.feed(&[prefix, bytes].concat()),
            None => self.feed(bytes),
        }
    }

    /// One read: carried input first, then `bytes`, events until the connection needs more,
    /// like the reactor's `on_readable`.
    fn feed(&mut self, bytes: &[u8]) {
        let carried = self.conn.carried_bytes();
        let mut buf = vec![0u8; carried + bytes.len()];
        let (mut reader, n) = self.conn.begin_receive(&mut buf);
        assert_eq!(n, carried, "begin_receive returned a different carry-over");
        buf[n..].copy_from_slice(bytes);
        let len = buf.len();
        let mut pos = 0;
        loop {
            let now = self.now;
            let input = self.conn.receive(
                now,
                &self.cfg,
                &mut reader,
                &mut buf[pos..len],
                &mut self.out,
            );
            assert!(input.consumed <= len - pos, "consumed past the input");
            pos += input.consumed;
            match input.event {
                None => {
                    self.settle();
                    break;
                }
                Some(Received::Request(request, head)) => {
                    assert!(!self.accepted && self.head.is_none(), "a second request");
                    assert_eq!(head.len(), request.head_len);
                    let key = request.key.to_vec();
                    let mut answer = Vec::new();
                    write_accept(&mut answer, &key, None);
                    self.head = Some((answer, true));
                    self.accepted = true;
                    let opened = self.conn.accept(now, &self.cfg, &request, None, &mut self.out);
                    assert_eq!(opened, !self.conn.is_released());
                    if opened && self.draining {
                        self.conn.shut_down(now, now.wrapping_add(80), &self.cfg, &mut self.out);
                    }
                }
                Some(Received::BadRequest(refusal, _)) => {
                    assert!(self.head.is_none(), "a bad request after the answer");
                    let mut answer = Vec::new();
                    write_refusal(&mut answer, &refusal);
                    self.head = Some((answer, false));
                    self.conn.refuse(now, &self.cfg, &refusal, &mut self.out);
                }
                Some(Received::Response(_)) => panic!("a server read a response"),
                Some(Received::Message(kind, payload)) => {
                    assert!(
                        payload.len() <= self.max_message(),
                        "message past the limit"
                    );
                    if kind == MessageKind::Text {
                        assert!(
                            std::str::from_utf8(payload).is_ok(),
                            "invalid text delivered"
                        );
                    }
                    assert_eq!(
                        self.conn.phase(),
                        Phase::Open,
                        "message delivered when not open"
                    );
                    match self.reaction {
                        Reaction::Nothing => {}
                        Reaction::Echo => {
                            if self.conn.send(now, &self.cfg, kind, payload, &mut self.out) {
                                self.sent.push((kind, payload.to_vec()));
                            }
                        }
                        Reaction::Close => {
                            self.conn
                                .close(now, &self.cfg, CloseCode::NORMAL, "bye", &mut self.out)
                        }
                        Reaction::SendLargest => {
                            let big = vec![0x42; self.cfg.limits.max_message_size as usize];
                            if self.conn.send(
                                now,
                                &self.cfg,
                                MessageKind::Binary,
                                &big,
                                &mut self.out,
                            ) {
                                self.sent.push((MessageKind::Binary, big));
                            }
                        }
                    }
                }
            }
            assert!(
                reader.buffered_bytes() <= self.max_message(),
                "the reader buffers {} bytes",
                reader.buffered_bytes()
            );
            self.settle();
        }
        assert!(reader.buffered_bytes() <= self.max_message());
        self.conn.end_receive(self.now, reader, &buf[pos..len], &mut self.out);
        self.settle();
    }

    /// After every call: takes the effects as the reactor does, and checks every invariant.
    fn settle(&mut self) {
        let fx = self.conn.poll_effects();
        if self.released {
            assert!(fx.is_empty(), "effects from a released connection: {fx:?}");
        }
        if fx.want_writable() {
            assert!(!self.armed, "writability asked for twice");
            self.armed = true;
        }
        if fx.shutdown_write() {
            assert_eq!(self.conn.queued_bytes(), 0, "shut down with bytes queued");
            self.shut_at.get_or_insert(self.out.wire.len());
        }
        if fx.left_open() {
            assert!(!self.left_open, "left the open state twice");
            assert!(self.accepted, "left the open state without being upgraded");
            self.left_open = true;
            self.end = self.conn.end();
            assert!(self.end.is_some(), "left the open state without an end");
        }
        if self.left_open {
            assert_eq!(
                self.conn.end(),
                self.end,
                "the end changed after the app was told"
            );
        }
        if fx.release() {
            assert!(!self.released, "released twice");
            assert!(self.conn.is_released());
            self.released = true;
        }
        if self.conn.is_released() {
            assert!(self.released, "released without the release effect");
            assert_eq!(self.conn.next_deadline(&self.cfg, self.jitter), None);
            assert_eq!(self.conn.queued_bytes(), 0);
            assert_eq!(self.conn.carried_bytes(), 0);
        } else {
            assert!(
                self.conn.next_deadline(&self.cfg, self.jitter).is_some(),
                "a live connection without a deadline"
            );
            assert_eq!(
                self.armed,
                self.conn.awaits_writable(),
                "the driver's poll and the connection disagree"
            );
            assert_eq!(
                self.armed,
                self.conn.queued_bytes() > 0,
                "writability armed without a queue, or a queue that can never drain"
            );
        }

        let carried_limit = (MAX_HEADER_LEN + 125).max(self.cfg.handshake.max_head_bytes);
        assert!(
            self.conn.carried_bytes() <= carried_limit,
            "{} bytes carried over",
            self.conn.carried_bytes()
        );
        assert!(
            self.conn.queued_bytes() <= self.queue_bound(),
            "{} bytes queued, bound {}",
            self.conn.queued_bytes(),
            self.queue_bound()
        );

        for note in &self.out.notes[self.notes_seen..] {
            match *note {
                Note::Queued(n) => self.queued_by_notes += n,
                Note::Dequeued(n) => {
                    self.queued_by_notes = self
                        .queued_by_notes
                        .checked_sub(n)
                        .expect("more dequeued than queued")
                }
                Note::Held(delta) => self.held_by_notes += delta,
                Note::QueueStarted => self.queues_open += 1,
                Note::QueueEnded => {
                    self.queues_open = self.queues_open.checked_sub(1).expect("queue ended twice")
                }
                _ => {}
            }
        }
        self.notes_seen = self.out.notes.len();
        if self.conn.is_released() {
            assert_eq!(self.held_by_notes, 0, "memory still accounted after the release");
        }
        assert!(self.held_by_notes >= 0, "more memory given back than held");
        assert_eq!(
            self.queued_by_notes,
            self.conn.queued_bytes(),
            "queue notes"
        );
        assert_eq!(
            self.queues_open,
            usize::from(self.conn.queued_bytes() > 0),
            "queue started/ended notes"
        );

        self.check_wire();
    }

    /// Checks the bytes transmitted since the last call.
    fn check_wire(&mut self) {
        let wire = &self.out.wire;
        if let Some(at) = self.shut_at {
            assert_eq!(wire.len(), at, "bytes transmitted after shutdown_write");
        }
        let Some((head, upgraded)) = &self.head else {
            assert!(
                wire.is_empty(),
                "bytes transmitted before the request was answered"
            );
            return;
        };
        let n = wire.len().min(head.len());
        assert_eq!(wire[..n], head[..n], "the HTTP answer");
        if !upgraded {
            assert!(
                wire.len() <= head.len(),
                "bytes transmitted after a refusal"
            );
            return;
        }
        let from = self.checked.max(head.len());
        if wire.len() <= from {
            return;
        }
        assert!(
            !self.saw_close,
            "{} bytes transmitted after the close frame",
            wire.len() - from
        );
        self.undecoded.extend_from_slice(&wire[from..]);
        self.checked = wire.len();
        let mut messages = Vec::new();
        let mut saw_close = false;
        let consumed = self
            .decoder
            .feed(&mut self.undecoded, &Limits::default(), |event| {
                match event {
                    Event::Message(kind, payload) => messages.push((kind, payload.to_vec())),
                    Event::Close { .. } => {
                        saw_close = true;
                        return Flow::Stop;
                    }
                    Event::Ping(_) | Event::Pong(_) => {}
                }
                Flow::Continue
            })
            .unwrap_or_else(|e| panic!("the server wrote an invalid frame: {e}"));
        self.undecoded.drain(..consumed);
        self.saw_close = saw_close;
        if saw_close {
            assert!(
                self.undecoded.is_empty(),
                "{} bytes transmitted after the close frame",
                self.undecoded.len()
            );
        }
        for message in messages {
            assert_eq!(
                self.sent.get(self.delivered),
                Some(&message),
                "message {} on the wire is not the one sent",
                self.delivered
            );
            self.delivered += 1;
        }
    }
}

fuzz_target!(|data: &[u8]| {
    let mut bytes = Bytes(data);
    let mut driver = Driver::new(&mut bytes);
    while driver.op(&mut bytes) {}
});
