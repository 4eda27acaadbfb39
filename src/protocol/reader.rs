//! The inbound half of a connection: turns the peer's bytes into messages and control events.
//!
//! One reader serves both roles: a server's reader requires masked frames (RFC 6455 §5.1), a
//! client's refuses them. [`Reader::next`] yields one event at a time, borrowed from the input
//! or from the reader's message buffer, so the caller can hand it on and act on the connection
//! before asking for the next; [`Reader::feed`] is the same loop with a callback.

use super::close::{parse_close_payload, CloseCode};
use super::deflate::{codec, InflateError};
use super::frame::{decode_header_with, Opcode};
use super::mask::apply_mask;
use super::utf8::{self, Utf8Validator};
use super::{MessageKind, Role};

/// Bounds enforced while reading. Both are checked on the frame header, before any payload is
/// buffered.
#[derive(Clone, Copy, Debug)]
pub struct Limits {
    pub max_frame_size: u64,
    pub max_message_size: u64,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_frame_size: 16 << 20,
            max_message_size: 16 << 20,
        }
    }
}

/// What the peer did wrong: the close code to send and a short reason for the close frame and logs.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{reason} (close {})", code.0)]
pub struct ProtocolError {
    pub code: CloseCode,
    pub reason: &'static str,
}

impl ProtocolError {
    /// The peer broke a framing rule (close code 1002).
    pub const fn protocol(reason: &'static str) -> Self {
        ProtocolError {
            code: CloseCode::PROTOCOL_ERROR,
            reason,
        }
    }

    /// A text message or close reason was not UTF-8 (close code 1007).
    pub const fn invalid_payload(reason: &'static str) -> Self {
        ProtocolError {
            code: CloseCode::INVALID_PAYLOAD,
            reason,
        }
    }

    /// A frame or message exceeded the configured [`Limits`] (close code 1009).
    pub const fn too_big(reason: &'static str) -> Self {
        ProtocolError {
            code: CloseCode::MESSAGE_TOO_BIG,
            reason,
        }
    }
}

const UNMASKED: ProtocolError = ProtocolError::protocol("unmasked client frame");
const MASKED: ProtocolError = ProtocolError::protocol("masked server frame");
const ORPHAN_CONTINUATION: ProtocolError =
    ProtocolError::protocol("continuation frame without a message in progress");
const INTERRUPTED_MESSAGE: ProtocolError =
    ProtocolError::protocol("new data frame before the fragmented message ended");
const INVALID_TEXT: ProtocolError = ProtocolError::invalid_payload("invalid UTF-8 in text message");
const FRAME_TOO_BIG: ProtocolError = ProtocolError::too_big("frame exceeds max_frame_size");
const MESSAGE_TOO_BIG: ProtocolError = ProtocolError::too_big("message exceeds max_message_size");
/// A compressed message that inflates past `max_message_size`: found out as soon as the output
/// reaches the limit, never by inflating it whole.
pub const INFLATED_TOO_BIG: ProtocolError =
    ProtocolError::too_big("message inflates beyond max_message_size");
const CORRUPT_COMPRESSED: ProtocolError =
    ProtocolError::invalid_payload("compressed message is not valid DEFLATE data");
const OUT_OF_MEMORY: ProtocolError =
    ProtocolError::too_big("no memory for this message now: send it again later");
const POISONED: ProtocolError = ProtocolError {
    code: CloseCode::INTERNAL_ERROR,
    reason: "reader used after a protocol error",
};

/// An event produced by [`Reader::feed`]. Payloads are already unmasked (and text validated).
#[derive(Debug, PartialEq, Eq)]
pub enum Event<'a> {
    Message(MessageKind, &'a [u8]),
    Ping(&'a [u8]),
    Pong(&'a [u8]),
    /// A valid close frame; `code` is `None` for an empty payload.
    Close {
        code: Option<CloseCode>,
        reason: &'a str,
    },
}

/// What the caller wants after an event.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Flow {
    Continue,
    /// Stop reading: return from `feed` at once (e.g. the connection is being closed).
    Stop,
}

/// One step of [`Reader::next`]: the input bytes it consumed, and the event they completed.
#[derive(Debug, PartialEq, Eq)]
pub struct Step<'a> {
    pub consumed: usize,
    /// `None`: the input is used up, or holds only part of a header or control frame; pass the
    /// unconsumed rest again, followed by new bytes.
    pub event: Option<Event<'a>>,
}

/// Per-connection reader state. `Reader::default()` is a server's reader between messages; it
/// holds no heap memory until a message spans more than one read or more than one frame.
#[derive(Debug, Default)]
pub struct Reader {
    /// Whose frames this reads: a server reads masked client frames, a client unmasked ones.
    role: Role,
    /// `buf` holds a message already delivered: free it on the next call.
    delivered: bool,
    /// Payload of the message in flight, when it cannot be borrowed from `input`: all fragments so
    /// far, unmasked. Empty and unallocated between messages.
    buf: Vec<u8>,
    /// The data frame whose header was consumed but whose payload has not fully arrived.
    frame: Option<PartialFrame>,
    /// Kind of the message in flight, from its first frame until its final frame is in.
    message: Option<MessageKind>,
    /// UTF-8 state of the text message in flight (fragments are validated as they arrive).
    utf8: Utf8Validator,
    poisoned: bool,
    /// permessage-deflate was negotiated: RSV1 marks a compressed message.
    deflate: bool,
    /// The message in flight is compressed: `buf` holds its compressed bytes until its final
    /// frame, and text is validated once inflated.
    compressed: bool,
    /// `buf` is the core's inflate buffer, lent for the delivery: given back on settling.
    lent: bool,
}

/// A data frame being received: its header is consumed, `remaining` payload bytes are not.
#[derive(Clone, Copy, Debug)]
struct PartialFrame {
    remaining: u64,
    /// `None` for a client's reader (server frames are not masked).
    mask: Option<[u8; 4]>,
    /// Position in the mask of the next payload byte (0..4).
    mask_offset: u8,
    fin: bool,
}

/// Smallest step a message buffer grows by: a trickle of small reads does not reallocate each time.
const MIN_GROWTH_BYTES: usize = 4096;
/// Largest step: past this a buffer grows linearly, so it never holds more than this beyond
/// what arrived (the memory budget counts capacity). Large blocks are mmapped by the allocator
/// and grown with mremap, without a copy, so the smaller steps cost little.
const MAX_GROWTH_BYTES: usize = 1 << 20;

/// Grows `buf` to hold `additional` more bytes that have arrived: doubling like `Vec` does, by
/// at most `MAX_GROWTH_BYTES` at a time, and never past `limit` (the message size limit, already
/// checked to be ≥ `buf.len() + additional`), so memory follows what the peer actually sent,
/// not what its frame header announced. An allocation the system refuses fails the message
/// (1009) instead of aborting the process.
fn grow_for_arrived(buf: &mut Vec<u8>, additional: usize, limit: u64) -> Result<(), ProtocolError> {
    let needed = buf.len() + additional;
    if needed <= buf.capacity() {
        return Ok(());
    }
    let limit = usize::try_from(limit).unwrap_or(usize::MAX);
    let step = buf.capacity().clamp(MIN_GROWTH_BYTES, MAX_GROWTH_BYTES);
    let target = needed.max(buf.capacity() + step).min(limit.max(needed));
    buf.try_reserve_exact(target - buf.len())
        .map_err(|_| OUT_OF_MEMORY)
}

impl Reader {
    /// An idle reader for the given role.
    pub fn new(role: Role) -> Reader {
        Reader {
            role,
            ..Reader::default()
        }
    }

    pub fn role(&self) -> Role {
        self.role
    }

    /// The reader of a connection that negotiated permessage-deflate (`on`): compressed
    /// messages are inflated before delivery, within `max_message_size`.
    pub fn with_deflate(mut self, on: bool) -> Reader {
        self.deflate = on;
        self
    }

    /// True when no frame or message is in flight: the caller may drop this reader and start over
    /// with `Reader::new(role)` later, so idle connections hold no reader state at all.
    pub fn is_idle(&self) -> bool {
        self.frame.is_none() && self.message.is_none()
    }

    /// Bytes of the message in flight held in the reader's own buffer (bounded by
    /// `max_message_size`).
    pub fn buffered_bytes(&self) -> usize {
        self.buf.len()
    }

    /// Heap memory the reader holds (its message buffer's capacity).
    pub fn held_bytes(&self) -> usize {
        self.buf.capacity()
    }

    /// Frees the buffer of a message already delivered (it is otherwise freed on the next call).
    pub fn settle(&mut self) {
        if self.delivered {
            let buf = std::mem::take(&mut self.buf);
            if std::mem::take(&mut self.lent) {
                codec::recycle(buf);
            }
            self.delivered = false;
        }
    }

    /// Consumes input up to and including the next event, unmasking it in place.
    ///
    /// Unconsumed bytes (a partial frame header, or a partial control frame: at most
    /// `MAX_HEADER_LEN + 125` bytes) must be passed again, followed by new bytes, on the next
    /// call. Partial data-frame payloads are consumed into the reader's own message buffer
    /// (bounded by `limits.max_message_size`), text validated as it arrives. A single-frame
    /// message that is whole in `input` is delivered in place, without a copy.
    /// After an `Err`, the reader must not be used again.
    pub fn next<'a>(
        &'a mut self,
        input: &'a mut [u8],
        limits: &Limits,
    ) -> Result<Step<'a>, ProtocolError> {
        let (consumed, at) = self.locate(input, limits)?;
        Ok(Step {
            consumed,
            event: at.map(|at| self.event(at, input)),
        })
    }

    /// [`Reader::next`] without the borrow: the bytes consumed and where the event lies, to be
    /// read with [`Reader::event`] (for callers that decide first and borrow only to deliver).
    pub fn locate(
        &mut self,
        input: &mut [u8],
        limits: &Limits,
    ) -> Result<(usize, Option<EventAt>), ProtocolError> {
        if self.poisoned {
            return Err(POISONED);
        }
        self.settle();
        let result = self.next_event(input, limits);
        if result.is_err() {
            // The connection is failing: drop the message buffer now rather than with the reader.
            *self = Reader {
                role: self.role,
                deflate: self.deflate,
                poisoned: true,
                ..Reader::default()
            };
        }
        result
    }

    /// The event `at` (from the last [`Reader::locate`] on `input`).
    pub fn event<'a>(&'a self, at: EventAt, input: &'a [u8]) -> Event<'a> {
        let bytes = match at.place {
            Place::Input(start, end) => &input[start..end],
            Place::Buffer => &self.buf,
        };
        match at.what {
            What::Message(kind) => Event::Message(kind, bytes),
            What::Ping => Event::Ping(bytes),
            What::Pong => Event::Pong(bytes),
            What::Close => {
                let (code, reason) =
                    parse_close_payload(bytes).expect("close payload validated when it was read");
                Event::Close { code, reason }
            }
        }
    }

    /// [`Reader::next`] in a loop: calls `on_event` for each complete message and control
    /// frame, in order, until the input is used up or `on_event` says stop. Returns the bytes
    /// consumed.
    pub fn feed(
        &mut self,
        input: &mut [u8],
        limits: &Limits,
        mut on_event: impl FnMut(Event<'_>) -> Flow,
    ) -> Result<usize, ProtocolError> {
        let mut pos = 0;
        loop {
            let step = self.next(&mut input[pos..], limits)?;
            pos += step.consumed;
            let Some(event) = step.event else {
                return Ok(pos);
            };
            if on_event(event) == Flow::Stop {
                self.settle();
                return Ok(pos);
            }
        }
    }

    /// The work of [`Reader::next`], returning where the event's payload lies rather than a
    /// borrow, so the error path can reset the reader.
    fn next_event(
        &mut self,
        input: &mut [u8],
        limits: &Limits,
    ) -> Result<(usize, Option<EventAt>), ProtocolError> {
        let mut pos = 0;
        loop {
            if self.frame.is_some() {
                pos += self.receive_payload(&mut input[pos..], limits)?;
                let frame = self.frame.expect("frame checked above");
                if frame.remaining > 0 {
                    debug_assert_eq!(pos, input.len());
                    return Ok((pos, None));
                }
                self.frame = None;
                if frame.fin {
                    let compressed = self.compressed.then_some(self.buf.len());
                    let kind = self.finish_message(limits)?;
                    let at = EventAt::buffered(kind);
                    return Ok((pos, Some(at.inflated_from(compressed))));
                }
                continue;
            }

            let rest = &mut input[pos..];
            let Some(header) = decode_header_with(rest, self.deflate)? else {
                return Ok((pos, None));
            };
            let mask = match (self.role, header.mask) {
                (Role::Server, None) => return Err(UNMASKED),
                (Role::Client, Some(_)) => return Err(MASKED),
                (_, mask) => mask,
            };

            if header.opcode.is_control() {
                // decode_header guarantees payload_len <= 125.
                let frame_len = header.header_len + header.payload_len as usize;
                if rest.len() < frame_len {
                    // Left for the caller to pass again: at most MAX_HEADER_LEN + 125 bytes.
                    return Ok((pos, None));
                }
                let payload = &mut rest[header.header_len..frame_len];
                if let Some(mask) = mask {
                    apply_mask(payload, mask, 0);
                }
                let what = match header.opcode {
                    Opcode::Ping => What::Ping,
                    Opcode::Pong => What::Pong,
                    _ => {
                        debug_assert_eq!(header.opcode, Opcode::Close);
                        // Validated now so a bad close payload fails the connection here.
                        parse_close_payload(payload)?;
                        What::Close
                    }
                };
                let start = pos + header.header_len;
                pos += frame_len;
                return Ok((pos, Some(EventAt::input(start, pos, what))));
            }

            let kind = match (header.opcode, self.message) {
                (Opcode::Continuation, Some(kind)) => kind,
                (Opcode::Continuation, None) => return Err(ORPHAN_CONTINUATION),
                (_, Some(_)) => return Err(INTERRUPTED_MESSAGE),
                (Opcode::Text, None) => MessageKind::Text,
                (_, None) => MessageKind::Binary,
            };
            // Both limits are judged on the header alone, before any payload is taken in.
            if header.payload_len > limits.max_frame_size {
                return Err(FRAME_TOO_BIG);
            }
            let message_len = (self.buf.len() as u64).saturating_add(header.payload_len);
            if message_len > limits.max_message_size {
                return Err(MESSAGE_TOO_BIG);
            }

            let frame_end = header.header_len as u64 + header.payload_len;
            if header.fin && self.message.is_none() && frame_end <= rest.len() as u64 {
                // Fast path: a whole single-frame message, unmasked and delivered in place.
                let payload = &mut rest[header.header_len..frame_end as usize];
                if let Some(mask) = mask {
                    apply_mask(payload, mask, 0);
                }
                if header.compressed {
                    // Inflated into the core's buffer, delivered from there.
                    self.inflate(payload, kind, limits)?;
                    pos += frame_end as usize;
                    let at = EventAt::buffered(kind).inflated_from(Some(payload.len()));
                    return Ok((pos, Some(at)));
                }
                if kind == MessageKind::Text {
                    utf8::validate(payload).map_err(|_| INVALID_TEXT)?;
                }
                let start = pos + header.header_len;
                pos += frame_end as usize;
                return Ok((pos, Some(EventAt::input(start, pos, What::Message(kind)))));
            }

            // Slow path: the payload goes into `buf` as it arrives (see `grow_for_arrived`).
            if self.message.is_none() {
                self.message = Some(kind);
                self.utf8 = Utf8Validator::default();
                self.compressed = header.compressed;
            }
            self.frame = Some(PartialFrame {
                remaining: header.payload_len,
                mask,
                mask_offset: 0,
                fin: header.fin,
            });
            pos += header.header_len;
        }
    }

    /// Moves the available part of the current frame's payload from `input` into `buf`,
    /// unmasking and validating it on the way; returns the bytes taken.
    fn receive_payload(
        &mut self,
        input: &mut [u8],
        limits: &Limits,
    ) -> Result<usize, ProtocolError> {
        let frame = self.frame.as_mut().expect("called with a frame in flight");
        let take = usize::try_from(frame.remaining).map_or(input.len(), |r| r.min(input.len()));
        let chunk = &mut input[..take];
        if let Some(mask) = frame.mask {
            frame.mask_offset = apply_mask(chunk, mask, usize::from(frame.mask_offset)) as u8;
        }
        frame.remaining -= take as u64;
        if self.message == Some(MessageKind::Text) && !self.compressed {
            self.utf8.feed(chunk).map_err(|_| INVALID_TEXT)?;
        }
        grow_for_arrived(&mut self.buf, take, limits.max_message_size)?;
        self.buf.extend_from_slice(chunk);
        Ok(take)
    }

    /// Ends the buffered message whose final frame just completed; its payload is `buf`, freed
    /// on the next call.
    fn finish_message(&mut self, limits: &Limits) -> Result<MessageKind, ProtocolError> {
        let kind = self
            .message
            .take()
            .expect("final frame of a message in flight");
        if std::mem::take(&mut self.compressed) {
            // The compressed bytes are freed now; the inflated ones are the core's.
            let compressed = std::mem::take(&mut self.buf);
            return self.inflate(&compressed, kind, limits).map(|()| kind);
        }
        if kind == MessageKind::Text {
            self.utf8.finish().map_err(|_| INVALID_TEXT)?;
        }
        self.delivered = true;
        Ok(kind)
    }

    /// Inflates a whole compressed message into the core's buffer, lent to `buf` until the next
    /// call; text is validated on the inflated bytes.
    fn inflate(
        &mut self,
        compressed: &[u8],
        kind: MessageKind,
        limits: &Limits,
    ) -> Result<(), ProtocolError> {
        let limit = usize::try_from(limits.max_message_size).unwrap_or(usize::MAX);
        let inflated = codec::inflate(compressed, limit).map_err(|e| match e {
            InflateError::TooBig => INFLATED_TOO_BIG,
            InflateError::Corrupt => CORRUPT_COMPRESSED,
        })?;
        let valid = kind == MessageKind::Binary || utf8::validate(&inflated).is_ok();
        self.buf = inflated;
        self.lent = true;
        self.delivered = true;
        if valid {
            Ok(())
        } else {
            Err(INVALID_TEXT)
        }
    }
}

/// What an event is, known before its payload is borrowed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum What {
    Message(MessageKind),
    Ping,
    Pong,
    Close,
}

/// Where the event found by [`Reader::locate`] lies: in the input or in the reader's buffer.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct EventAt {
    place: Place,
    what: What,
    /// For a compressed message: its size on the wire, before inflating.
    compressed_len: Option<usize>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Place {
    /// `input[start..end]`.
    Input(usize, usize),
    /// The reader's message buffer.
    Buffer,
}

impl EventAt {
    fn input(start: usize, end: usize, what: What) -> EventAt {
        EventAt {
            place: Place::Input(start, end),
            what,
            compressed_len: None,
        }
    }

    fn buffered(kind: MessageKind) -> EventAt {
        EventAt {
            place: Place::Buffer,
            what: What::Message(kind),
            compressed_len: None,
        }
    }

    fn inflated_from(mut self, compressed_len: Option<usize>) -> EventAt {
        self.compressed_len = compressed_len;
        self
    }

    /// For a message that arrived compressed, its compressed size (payload bytes on the wire).
    pub fn compressed_len(&self) -> Option<usize> {
        self.compressed_len
    }

    pub fn what(&self) -> What {
        self.what
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::protocol::frame::{encode_client_header, encode_server_header, MAX_HEADER_LEN};

    const KEY: [u8; 4] = [0x12, 0x34, 0x56, 0x78];

    /// An owned copy of an [`Event`], to compare event sequences across feeds.
    #[derive(Clone, Debug, PartialEq, Eq)]
    enum Owned {
        Message(MessageKind, Vec<u8>),
        Ping(Vec<u8>),
        Pong(Vec<u8>),
        Close(Option<u16>, String),
    }

    impl From<Event<'_>> for Owned {
        fn from(event: Event<'_>) -> Self {
            match event {
                Event::Message(kind, data) => Owned::Message(kind, data.to_vec()),
                Event::Ping(data) => Owned::Ping(data.to_vec()),
                Event::Pong(data) => Owned::Pong(data.to_vec()),
                Event::Close { code, reason } => Owned::Close(code.map(|c| c.0), reason.into()),
            }
        }
    }

    /// A masked client frame.
    fn frame(fin: bool, opcode: Opcode, payload: &[u8]) -> Vec<u8> {
        frame_with_key(fin, opcode, payload, KEY)
    }

    fn frame_with_key(fin: bool, opcode: Opcode, payload: &[u8], key: [u8; 4]) -> Vec<u8> {
        let mut header = [0u8; MAX_HEADER_LEN];
        let n = encode_client_header(&mut header, fin, opcode, payload.len() as u64, key);
        let mut out = header[..n].to_vec();
        let start = out.len();
        out.extend_from_slice(payload);
        apply_mask(&mut out[start..], key, 0);
        out
    }

    fn text(payload: &str) -> Vec<u8> {
        frame(true, Opcode::Text, payload.as_bytes())
    }

    fn small_limits() -> Limits {
        Limits {
            max_frame_size: 100,
            max_message_size: 250,
        }
    }

    /// Feeds `bytes` in one call; returns the result and the events.
    fn one_shot(bytes: &[u8], limits: &Limits) -> (Result<usize, ProtocolError>, Vec<Owned>) {
        let mut input = bytes.to_vec();
        let mut events = Vec::new();
        let mut reader = Reader::default();
        let result = reader.feed(&mut input, limits, |e| {
            events.push(Owned::from(e));
            Flow::Continue
        });
        (result, events)
    }

    /// Feeds `bytes` the way the reactor does: chunks ending at `cuts`, carrying over what the
    /// reader did not consume. Checks the carry-over stays within its documented bound.
    fn streamed(
        bytes: &[u8],
        cuts: &[usize],
        limits: &Limits,
    ) -> (Result<(), ProtocolError>, Vec<Owned>) {
        let mut reader = Reader::default();
        let mut events = Vec::new();
        let mut carry: Vec<u8> = Vec::new();
        let mut start = 0;
        for &end in cuts.iter().chain(std::iter::once(&bytes.len())) {
            let end = end.clamp(start, bytes.len());
            carry.extend_from_slice(&bytes[start..end]);
            start = end;
            let result = reader.feed(&mut carry, limits, |e| {
                events.push(Owned::from(e));
                Flow::Continue
            });
            match result {
                Ok(n) => {
                    carry.drain(..n);
                    assert!(carry.len() <= MAX_HEADER_LEN + 125, "carry {}", carry.len());
                }
                Err(e) => return (Err(e), events),
            }
        }
        (Ok(()), events)
    }

    fn expect_error(bytes: &[u8], limits: &Limits) -> ProtocolError {
        let (result, _) = one_shot(bytes, limits);
        result.expect_err("stream must be rejected")
    }

    fn concat(frames: &[Vec<u8>]) -> Vec<u8> {
        frames.concat()
    }

    struct Rng(u64);

    impl Rng {
        fn next(&mut self) -> u64 {
            self.0 ^= self.0 << 13;
            self.0 ^= self.0 >> 7;
            self.0 ^= self.0 << 17;
            self.0
        }
        fn below(&mut self, n: usize) -> usize {
            (self.next() % n as u64) as usize
        }
        fn bytes(&mut self, len: usize) -> Vec<u8> {
            (0..len).map(|_| self.next() as u8).collect()
        }
    }

    /// An unmasked server frame.
    fn server_frame(fin: bool, opcode: Opcode, payload: &[u8]) -> Vec<u8> {
        let mut header = [0u8; MAX_HEADER_LEN];
        let n = encode_server_header(&mut header, fin, opcode, payload.len() as u64);
        [&header[..n], payload].concat()
    }

    #[test]
    fn a_client_reads_unmasked_frames_and_refuses_masked_ones() {
        let mut reader = Reader::new(Role::Client);
        let mut input = concat(&[
            server_frame(false, Opcode::Text, b"he"),
            server_frame(true, Opcode::Ping, b"p"),
            server_frame(true, Opcode::Continuation, b"llo"),
            server_frame(true, Opcode::Binary, &[7; 3]),
        ]);
        let mut seen = Vec::new();
        let n = reader
            .feed(&mut input, &Limits::default(), |e| {
                seen.push(Owned::from(e));
                Flow::Continue
            })
            .unwrap();
        assert_eq!(n, input.len());
        assert_eq!(
            seen,
            [
                Owned::Ping(b"p".to_vec()),
                Owned::Message(MessageKind::Text, b"hello".to_vec()),
                Owned::Message(MessageKind::Binary, vec![7; 3]),
            ]
        );
        let mut masked = text("x");
        let err = Reader::new(Role::Client)
            .feed(&mut masked, &Limits::default(), |_| Flow::Continue)
            .unwrap_err();
        assert_eq!(err, MASKED);
        let mut unmasked = server_frame(true, Opcode::Text, b"x");
        let err = Reader::default()
            .feed(&mut unmasked, &Limits::default(), |_| Flow::Continue)
            .unwrap_err();
        assert_eq!(err, UNMASKED);
    }

    #[test]
    fn next_yields_one_event_at_a_time_and_frees_a_delivered_buffer_on_the_next_call() {
        let mut input = concat(&[
            frame(false, Opcode::Binary, &[1; 20]),
            frame(true, Opcode::Continuation, &[2; 5]),
            text("after"),
        ]);
        let first_len = input.len() - text("after").len();
        let mut reader = Reader::default();
        let limits = Limits::default();
        let step = reader.next(&mut input, &limits).unwrap();
        assert_eq!(step.consumed, first_len);
        let mut expected = vec![1; 20];
        expected.extend([2; 5]);
        assert_eq!(
            step.event,
            Some(Event::Message(MessageKind::Binary, &expected[..]))
        );
        assert!(
            reader.buf.capacity() >= 25,
            "delivered from the reader's buffer"
        );
        let step = reader.next(&mut input[first_len..], &limits).unwrap();
        assert_eq!(
            step.event,
            Some(Event::Message(MessageKind::Text, &b"after"[..]))
        );
        assert_eq!(reader.buf.capacity(), 0, "freed once the next call began");
        let step = reader.next(&mut [], &limits).unwrap();
        assert_eq!((step.consumed, step.event), (0, None));
    }

    #[test]
    fn reader_is_small_and_default_is_idle_without_heap() {
        assert!(
            std::mem::size_of::<Reader>() <= 64,
            "{}",
            std::mem::size_of::<Reader>()
        );
        let reader = Reader::default();
        assert!(reader.is_idle());
        assert_eq!(reader.buf.capacity(), 0);
    }

    #[test]
    fn single_frame_fast_path_borrows_from_input() {
        let mut input = concat(&[text("hello"), frame(true, Opcode::Binary, &[0, 1, 2, 255])]);
        let range = input.as_ptr_range();
        let mut reader = Reader::default();
        let mut seen = Vec::new();
        let n = reader
            .feed(&mut input, &Limits::default(), |e| {
                if let Event::Message(_, data) = &e {
                    assert!(
                        range.contains(&data.as_ptr()),
                        "payload not borrowed from input"
                    );
                    assert!(data.as_ptr_range().end <= range.end);
                }
                seen.push(Owned::from(e));
                Flow::Continue
            })
            .unwrap();
        assert_eq!(n, input.len());
        assert_eq!(
            seen,
            [
                Owned::Message(MessageKind::Text, b"hello".to_vec()),
                Owned::Message(MessageKind::Binary, vec![0, 1, 2, 255]),
            ]
        );
        assert!(reader.is_idle());
        assert_eq!(reader.buf.capacity(), 0, "fast path must not allocate");
    }

    #[test]
    fn payload_lengths_around_encoding_boundaries() {
        for len in [0usize, 1, 125, 126, 127, 65535, 65536, 70_000] {
            let payload: Vec<u8> = (0..len).map(|i| (i * 7) as u8).collect();
            let bytes = frame(true, Opcode::Binary, &payload);
            let (result, events) = one_shot(&bytes, &Limits::default());
            assert_eq!(result, Ok(bytes.len()));
            assert_eq!(events, [Owned::Message(MessageKind::Binary, payload)]);
        }
    }

    #[test]
    fn zero_length_frames_and_messages() {
        let bytes = concat(&[
            frame(true, Opcode::Text, b""),
            frame(true, Opcode::Binary, b""),
            frame(false, Opcode::Text, b""),
            frame(false, Opcode::Continuation, b""),
            frame(true, Opcode::Continuation, b""),
            frame(false, Opcode::Binary, b""),
            frame(true, Opcode::Continuation, b"x"),
            frame(true, Opcode::Ping, b""),
            frame(true, Opcode::Pong, b""),
            frame(true, Opcode::Close, b""),
        ]);
        let (result, events) = one_shot(&bytes, &Limits::default());
        assert_eq!(result, Ok(bytes.len()));
        assert_eq!(
            events,
            [
                Owned::Message(MessageKind::Text, vec![]),
                Owned::Message(MessageKind::Binary, vec![]),
                Owned::Message(MessageKind::Text, vec![]),
                Owned::Message(MessageKind::Binary, b"x".to_vec()),
                Owned::Ping(vec![]),
                Owned::Pong(vec![]),
                Owned::Close(None, String::new()),
            ]
        );
    }

    #[test]
    fn fragmented_message_is_reassembled() {
        let bytes = concat(&[
            frame(false, Opcode::Text, "frag".as_bytes()),
            frame(false, Opcode::Continuation, "men".as_bytes()),
            frame(true, Opcode::Continuation, "ted ✓".as_bytes()),
        ]);
        let (result, events) = one_shot(&bytes, &Limits::default());
        assert_eq!(result, Ok(bytes.len()));
        assert_eq!(
            events,
            [Owned::Message(
                MessageKind::Text,
                "fragmented ✓".as_bytes().to_vec()
            )]
        );
    }

    #[test]
    fn reader_is_busy_between_fragments_and_frees_its_buffer_after() {
        let mut reader = Reader::default();
        let limits = Limits::default();
        let mut first = frame(false, Opcode::Binary, &[1; 40]);
        assert_eq!(
            reader.feed(&mut first, &limits, |_| panic!("no event yet")),
            Ok(first.len())
        );
        assert!(!reader.is_idle());
        assert!(reader.buf.capacity() >= 40);

        let mut delivered = None;
        let mut last = frame(true, Opcode::Continuation, &[2; 10]);
        reader
            .feed(&mut last, &limits, |e| {
                delivered = Some(Owned::from(e));
                Flow::Continue
            })
            .unwrap();
        let mut expected = vec![1; 40];
        expected.extend([2; 10]);
        assert_eq!(
            delivered,
            Some(Owned::Message(MessageKind::Binary, expected))
        );
        assert!(reader.is_idle());
        assert_eq!(reader.buf.capacity(), 0);
    }

    #[test]
    fn control_frames_interleave_with_fragments() {
        let bytes = concat(&[
            frame(false, Opcode::Text, b"one "),
            frame(true, Opcode::Ping, b"p1"),
            frame(false, Opcode::Continuation, b"two "),
            frame(true, Opcode::Pong, b"p2"),
            frame(true, Opcode::Ping, b""),
            frame(true, Opcode::Continuation, b"three"),
            text("after"),
        ]);
        let expected = vec![
            Owned::Ping(b"p1".to_vec()),
            Owned::Pong(b"p2".to_vec()),
            Owned::Ping(vec![]),
            Owned::Message(MessageKind::Text, b"one two three".to_vec()),
            Owned::Message(MessageKind::Text, b"after".to_vec()),
        ];
        let (result, events) = one_shot(&bytes, &Limits::default());
        assert_eq!(result, Ok(bytes.len()));
        assert_eq!(events, expected);
        for cut in 0..=bytes.len() {
            assert_eq!(
                streamed(&bytes, &[cut], &Limits::default()),
                (Ok(()), expected.clone())
            );
        }
    }

    #[test]
    fn close_frames_are_parsed() {
        let mut payload = 1001u16.to_be_bytes().to_vec();
        payload.extend_from_slice("gone ✓".as_bytes());
        let bytes = concat(&[
            frame(true, Opcode::Close, &payload),
            frame(true, Opcode::Close, &4000u16.to_be_bytes()),
        ]);
        let (result, events) = one_shot(&bytes, &Limits::default());
        assert_eq!(result, Ok(bytes.len()));
        assert_eq!(
            events,
            [
                Owned::Close(Some(1001), "gone ✓".into()),
                Owned::Close(Some(4000), String::new())
            ]
        );
    }

    #[test]
    fn bad_close_payloads_are_rejected() {
        let err = expect_error(&frame(true, Opcode::Close, &[3]), &Limits::default());
        assert_eq!(err.code, CloseCode::PROTOCOL_ERROR);
        for code in [999u16, 1005, 1006, 1014, 2000, 5000] {
            let err = expect_error(
                &frame(true, Opcode::Close, &code.to_be_bytes()),
                &Limits::default(),
            );
            assert_eq!(err.code, CloseCode::PROTOCOL_ERROR, "code {code}");
        }
        let err = expect_error(
            &frame(true, Opcode::Close, b"\x03\xE8\xFF"),
            &Limits::default(),
        );
        assert_eq!(err.code, CloseCode::INVALID_PAYLOAD);
    }

    #[test]
    fn unmasked_client_frame_is_1002() {
        let mut header = [0u8; MAX_HEADER_LEN];
        let n = encode_server_header(&mut header, true, Opcode::Text, 2);
        let mut bytes = header[..n].to_vec();
        bytes.extend_from_slice(b"hi");
        let err = expect_error(&bytes, &Limits::default());
        assert_eq!(err, ProtocolError::protocol("unmasked client frame"));
    }

    #[test]
    fn structural_header_errors_are_1002() {
        let rsv = {
            let mut f = text("x");
            f[0] |= 0x40;
            f
        };
        let reserved_opcode = {
            let mut f = text("x");
            f[0] = 0x83;
            f
        };
        let long_ping = frame(true, Opcode::Ping, &[0; 126]);
        let fragmented_ping = {
            let mut f = frame(true, Opcode::Ping, b"x");
            f[0] &= 0x7F;
            f
        };
        let msb_length = {
            let mut f = vec![0x82, 0xFF, 0x80, 0, 0, 0, 0, 0, 0, 1];
            f.extend_from_slice(&KEY);
            f
        };
        let non_minimal = {
            let mut f = vec![0x82, 0xFE, 0, 5];
            f.extend_from_slice(&KEY);
            f.extend_from_slice(&[0; 5]);
            f
        };
        for (name, bytes) in [
            ("rsv", rsv),
            ("opcode", reserved_opcode),
            ("long ping", long_ping),
            ("fragmented ping", fragmented_ping),
            ("msb length", msb_length),
            ("non-minimal", non_minimal),
        ] {
            let err = expect_error(&bytes, &Limits::default());
            assert_eq!(err.code, CloseCode::PROTOCOL_ERROR, "{name}: {err}");
        }
    }

    #[test]
    fn continuation_without_message_is_1002() {
        let err = expect_error(&frame(true, Opcode::Continuation, b"x"), &Limits::default());
        assert_eq!(err, ORPHAN_CONTINUATION);
        // Also after a complete fragmented message.
        let bytes = concat(&[
            frame(false, Opcode::Binary, b"a"),
            frame(true, Opcode::Continuation, b"b"),
            frame(false, Opcode::Continuation, b"c"),
        ]);
        let (result, events) = one_shot(&bytes, &Limits::default());
        assert_eq!(result, Err(ORPHAN_CONTINUATION));
        assert_eq!(
            events,
            [Owned::Message(MessageKind::Binary, b"ab".to_vec())]
        );
    }

    #[test]
    fn new_message_inside_fragmented_message_is_1002() {
        for opcode in [Opcode::Text, Opcode::Binary] {
            for fin in [true, false] {
                let bytes = concat(&[
                    frame(false, Opcode::Text, b"a"),
                    frame(true, Opcode::Ping, b""),
                    frame(fin, opcode, b"b"),
                ]);
                let (result, events) = one_shot(&bytes, &Limits::default());
                assert_eq!(result, Err(INTERRUPTED_MESSAGE), "{opcode:?} fin {fin}");
                assert_eq!(events, [Owned::Ping(vec![])]);
            }
        }
    }

    #[test]
    fn invalid_utf8_in_single_frame_is_1007() {
        let err = expect_error(
            &frame(true, Opcode::Text, b"ok\xED\xA0\x80"),
            &Limits::default(),
        );
        assert_eq!(err, INVALID_TEXT);
        // Binary messages are not validated.
        let (result, _) = one_shot(&frame(true, Opcode::Binary, b"\xFF"), &Limits::default());
        assert!(result.is_ok());
    }

    #[test]
    fn invalid_utf8_fails_on_the_first_fragment() {
        // Autobahn 6.4.1 style: the final fragment never arrives, the error must not wait for it.
        let bytes = frame(
            false,
            Opcode::Text,
            b"\xCE\xBA\xE1\xBD\xB9\xCF\x83\xCE\xBC\xCE\xB5\xF4\x90\x80\x80",
        );
        assert_eq!(expect_error(&bytes, &Limits::default()), INVALID_TEXT);
    }

    #[test]
    fn invalid_utf8_fails_on_a_partial_payload() {
        // Header and the first, already invalid, part of a 100-byte text frame.
        let mut payload = b"abc\xC0".to_vec();
        payload.resize(100, b'a');
        let bytes = frame(true, Opcode::Text, &payload);
        let mut reader = Reader::default();
        let mut partial = bytes[..MAX_HEADER_LEN + 4].to_vec();
        let result = reader.feed(&mut partial, &Limits::default(), |_| panic!("no event"));
        assert_eq!(result, Err(INVALID_TEXT));
    }

    #[test]
    fn utf8_code_point_split_across_fragments_is_valid() {
        let euro = "€".as_bytes();
        let bytes = concat(&[
            frame(false, Opcode::Text, &euro[..1]),
            frame(false, Opcode::Continuation, &euro[1..2]),
            frame(true, Opcode::Continuation, &euro[2..]),
        ]);
        let (result, events) = one_shot(&bytes, &Limits::default());
        assert_eq!(result, Ok(bytes.len()));
        assert_eq!(events, [Owned::Message(MessageKind::Text, euro.to_vec())]);
    }

    #[test]
    fn incomplete_code_point_at_message_end_is_1007() {
        let bytes = concat(&[
            frame(false, Opcode::Text, b"ok\xE2\x82"),
            frame(true, Opcode::Continuation, b""),
        ]);
        let (result, events) = one_shot(&bytes, &Limits::default());
        assert_eq!(result, Err(INVALID_TEXT));
        assert!(events.is_empty());
        assert_eq!(
            expect_error(&frame(true, Opcode::Text, b"\xF0\x9F"), &Limits::default()),
            INVALID_TEXT
        );
    }

    #[test]
    fn oversize_frame_is_1009_from_the_header_alone() {
        let limits = small_limits();
        let bytes = frame(true, Opcode::Binary, &[0; 101]);
        let mut header_only = bytes[..4 + 4].to_vec();
        let mut reader = Reader::default();
        let result = reader.feed(&mut header_only, &limits, |_| panic!("no event"));
        assert_eq!(result, Err(FRAME_TOO_BIG));
        assert_eq!(result.unwrap_err().code, CloseCode::MESSAGE_TOO_BIG);
        // Exactly at the limit is fine.
        let (result, _) = one_shot(&frame(true, Opcode::Binary, &[0; 100]), &limits);
        assert!(result.is_ok());
        // A huge declared length fails without any allocation attempt.
        let mut huge = vec![0x82, 0xFF, 0x7F, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF];
        huge.extend_from_slice(&KEY);
        assert_eq!(expect_error(&huge, &Limits::default()), FRAME_TOO_BIG);
    }

    #[test]
    fn oversize_message_is_1009_before_buffering_the_frame() {
        let limits = small_limits(); // frames up to 100, messages up to 250
        let ok = concat(&[
            frame(false, Opcode::Binary, &[1; 100]),
            frame(false, Opcode::Continuation, &[2; 100]),
            frame(true, Opcode::Continuation, &[3; 50]),
        ]);
        let (result, events) = one_shot(&ok, &limits);
        assert_eq!(result, Ok(ok.len()));
        assert_eq!(events.len(), 1);

        let mut reader = Reader::default();
        let mut first = concat(&[
            frame(false, Opcode::Binary, &[1; 100]),
            frame(false, Opcode::Continuation, &[2; 100]),
        ]);
        assert_eq!(
            reader.feed(&mut first, &limits, |_| panic!()),
            Ok(first.len())
        );
        assert!(
            reader.buf.capacity() <= 250,
            "buffer grew past the message limit"
        );
        // Only the header of a 51-byte fragment: 251 > 250.
        let mut header = frame(true, Opcode::Continuation, &[3; 51])[..6].to_vec();
        let result = reader.feed(&mut header, &limits, |_| panic!());
        assert_eq!(result, Err(MESSAGE_TOO_BIG));

        // The message limit also applies to single frames.
        let limits = Limits {
            max_frame_size: 1000,
            max_message_size: 10,
        };
        assert_eq!(
            expect_error(&frame(true, Opcode::Text, &[b'a'; 11]), &limits),
            MESSAGE_TOO_BIG
        );
    }

    #[test]
    fn control_frames_are_not_subject_to_the_data_limits() {
        let limits = Limits {
            max_frame_size: 4,
            max_message_size: 4,
        };
        let (result, events) = one_shot(&frame(true, Opcode::Ping, &[7; 125]), &limits);
        assert!(result.is_ok());
        assert_eq!(events, [Owned::Ping(vec![7; 125])]);
    }

    #[test]
    fn partial_control_frame_is_left_to_the_caller_untouched() {
        let ping = frame(true, Opcode::Ping, b"are you there?");
        let mut input = concat(&[text("hi"), ping.clone()]);
        input.truncate(input.len() - 3);
        let untouched = input.clone();
        let mut reader = Reader::default();
        let mut events = Vec::new();
        let n = reader
            .feed(&mut input, &Limits::default(), |e| {
                events.push(Owned::from(e));
                Flow::Continue
            })
            .unwrap();
        assert_eq!(n, text("hi").len(), "consumed up to the ping's start");
        assert_eq!(
            input[n..],
            untouched[n..],
            "unconsumed bytes must stay masked"
        );
        assert_eq!(events, [Owned::Message(MessageKind::Text, b"hi".to_vec())]);
        assert!(reader.is_idle());
    }

    #[test]
    fn partial_header_is_not_consumed() {
        let bytes = frame(true, Opcode::Binary, &[9; 300]);
        for cut in 0..8 {
            let mut input = bytes[..cut].to_vec();
            let mut reader = Reader::default();
            assert_eq!(
                reader.feed(&mut input, &Limits::default(), |_| panic!()),
                Ok(0)
            );
            assert!(reader.is_idle());
        }
    }

    #[test]
    fn a_straddling_frame_holds_what_arrived_not_what_it_announced() {
        // A header announcing 1 MiB with 500 bytes behind it: memory follows the 500 bytes.
        let payload: Vec<u8> = (0..1 << 20).map(|i: u32| i as u8).collect();
        let bytes = frame(true, Opcode::Binary, &payload);
        let limits = Limits {
            max_frame_size: 2 << 20,
            max_message_size: 2 << 20,
        };
        let mut reader = Reader::default();
        let mut first = bytes[..500].to_vec();
        assert_eq!(reader.feed(&mut first, &limits, |_| panic!()), Ok(500));
        assert!(!reader.is_idle());
        assert!(
            reader.buf.capacity() <= MIN_GROWTH_BYTES,
            "{} bytes held for 500 received",
            reader.buf.capacity()
        );
        // The rest arrives in 64 KiB reads; the buffer never holds more than twice what arrived.
        let mut got = None;
        for chunk in bytes[500..].chunks(64 << 10) {
            let mut chunk = chunk.to_vec();
            let n = reader
                .feed(&mut chunk, &limits, |e| {
                    got = Some(Owned::from(e));
                    Flow::Continue
                })
                .unwrap();
            assert_eq!(n, chunk.len());
            if got.is_none() {
                let len = reader.buf.len();
                assert!(
                    reader.buf.capacity() <= len + len.clamp(MIN_GROWTH_BYTES, MAX_GROWTH_BYTES)
                );
            }
        }
        assert_eq!(got, Some(Owned::Message(MessageKind::Binary, payload)));
        assert!(reader.is_idle());
    }

    #[test]
    fn stop_returns_right_after_the_event() {
        let first = text("one");
        let bytes = concat(&[first.clone(), frame(true, Opcode::Ping, b"x"), text("two")]);
        let mut input = bytes.clone();
        let mut reader = Reader::default();
        let mut calls = 0;
        let n = reader
            .feed(&mut input, &Limits::default(), |_| {
                calls += 1;
                Flow::Stop
            })
            .unwrap();
        assert_eq!((n, calls), (first.len(), 1));

        // Resuming with the rest yields the remaining events.
        let mut rest = bytes[n..].to_vec();
        let mut events = Vec::new();
        reader
            .feed(&mut rest, &Limits::default(), |e| {
                events.push(Owned::from(e));
                Flow::Continue
            })
            .unwrap();
        assert_eq!(
            events,
            [
                Owned::Ping(b"x".to_vec()),
                Owned::Message(MessageKind::Text, b"two".to_vec())
            ]
        );

        // Stop on a buffered (fragmented) message and on a control frame.
        let bytes = concat(&[
            frame(false, Opcode::Binary, b"a"),
            frame(true, Opcode::Continuation, b"b"),
            frame(true, Opcode::Close, b""),
            text("never"),
        ]);
        let mut input = bytes.clone();
        let mut reader = Reader::default();
        let n = reader
            .feed(&mut input, &Limits::default(), |_| Flow::Stop)
            .unwrap();
        assert_eq!(n, 7 + 7);
        let n2 = reader
            .feed(&mut input[n..], &Limits::default(), |_| Flow::Stop)
            .unwrap();
        assert_eq!(n2, 6, "close frame only");
    }

    #[test]
    fn reader_is_poisoned_after_an_error() {
        let mut reader = Reader::default();
        let mut bad = frame(true, Opcode::Continuation, b"x");
        assert!(reader
            .feed(&mut bad, &Limits::default(), |_| Flow::Continue)
            .is_err());
        let mut good = text("fine");
        let result = reader.feed(&mut good, &Limits::default(), |_| panic!("poisoned"));
        assert_eq!(result, Err(POISONED));
    }

    /// A stream mixing every frame kind, fragment sizes around the length encodings, and pings.
    fn mixed_stream(rng: &mut Rng, messages: usize, max_fragment: usize) -> Vec<u8> {
        let mut out = Vec::new();
        for _ in 0..messages {
            let key = [
                rng.next() as u8,
                rng.next() as u8,
                rng.next() as u8,
                rng.next() as u8,
            ];
            let is_text = rng.below(2) == 0;
            let len = rng.below(max_fragment * 3 + 1);
            let payload = if is_text {
                let chars = ['a', 'é', '€', '😀', ' '];
                let mut s = String::new();
                while s.len() < len {
                    s.push(chars[rng.below(chars.len())]);
                }
                s.into_bytes()
            } else {
                rng.bytes(len)
            };
            let fragments = 1 + rng.below(4);
            let mut cuts: Vec<usize> = (1..fragments)
                .map(|_| rng.below(payload.len() + 1))
                .collect();
            cuts.sort_unstable();
            let mut start = 0;
            for (i, end) in cuts.into_iter().chain([payload.len()]).enumerate() {
                let opcode = match (i, is_text) {
                    (0, true) => Opcode::Text,
                    (0, false) => Opcode::Binary,
                    _ => Opcode::Continuation,
                };
                let last = end == payload.len() && i + 1 == fragments;
                out.extend(frame_with_key(last, opcode, &payload[start..end], key));
                start = end;
                if rng.below(3) == 0 {
                    let ping_len = rng.below(126);
                    let ping = rng.bytes(ping_len);
                    out.extend(frame_with_key(true, Opcode::Ping, &ping, key));
                }
            }
        }
        out
    }

    #[test]
    fn byte_at_a_time_matches_one_shot_for_a_large_stream() {
        let mut rng = Rng(0x9E37_79B9_7F4A_7C15);
        let mut bytes = mixed_stream(&mut rng, 40, 3000);
        // And one large single-frame message.
        let big = rng.bytes(100_000);
        bytes.extend(frame(true, Opcode::Binary, &big));
        let limits = Limits::default();
        let (result, expected) = one_shot(&bytes, &limits);
        assert_eq!(result, Ok(bytes.len()));
        assert!(expected.len() >= 41);
        assert_eq!(
            expected.last(),
            Some(&Owned::Message(MessageKind::Binary, big))
        );

        let every_byte: Vec<usize> = (1..bytes.len()).collect();
        assert_eq!(
            streamed(&bytes, &every_byte, &limits),
            (Ok(()), expected.clone())
        );
        let random_cuts: Vec<usize> = {
            let mut cuts: Vec<usize> = (0..200).map(|_| rng.below(bytes.len())).collect();
            cuts.sort_unstable();
            cuts
        };
        assert_eq!(streamed(&bytes, &random_cuts, &limits), (Ok(()), expected));
    }

    #[test]
    fn every_two_way_split_of_small_streams_matches_one_shot() {
        let mut rng = Rng(42);
        for _ in 0..6 {
            let bytes = mixed_stream(&mut rng, 3, 60);
            let (result, expected) = one_shot(&bytes, &Limits::default());
            assert!(result.is_ok());
            for a in 0..=bytes.len() {
                for b in (a..=bytes.len()).step_by(7) {
                    let got = streamed(&bytes, &[a, b], &Limits::default());
                    assert_eq!(got, (Ok(()), expected.clone()), "cuts {a} {b}");
                }
            }
        }
    }

    #[test]
    fn errors_are_the_same_however_the_stream_is_split() {
        let limits = small_limits();
        let streams = [
            concat(&[
                text("ok"),
                frame(true, Opcode::Text, b"bad \xF4\x90\x80\x80 text"),
            ]),
            concat(&[
                frame(false, Opcode::Text, b"ab"),
                frame(true, Opcode::Continuation, b"\xC3"),
            ]),
            concat(&[text("ok"), frame(true, Opcode::Binary, &[0; 101])]),
            concat(&[
                frame(false, Opcode::Binary, &[0; 100]),
                frame(false, Opcode::Continuation, &[0; 100]),
                frame(true, Opcode::Continuation, &[0; 51]),
            ]),
            concat(&[text("ok"), frame(true, Opcode::Close, b"\x03")]),
        ];
        for bytes in streams {
            let (result, expected) = one_shot(&bytes, &limits);
            let err = result.expect_err("stream is invalid");
            for cut in 0..=bytes.len() {
                assert_eq!(
                    streamed(&bytes, &[cut], &limits),
                    (Err(err), expected.clone()),
                    "cut {cut}"
                );
            }
            let every_byte: Vec<usize> = (1..bytes.len()).collect();
            assert_eq!(streamed(&bytes, &every_byte, &limits), (Err(err), expected));
        }
    }
}
