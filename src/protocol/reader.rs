//! The inbound half of a connection: turns client bytes into messages and control events.
//! INTERFACE FIXED: the reactor calls exactly these signatures.

use super::close::CloseCode;
use super::MessageKind;

/// Bounds enforced while reading. Both are checked on the frame header, before any payload is
/// buffered.
#[derive(Clone, Copy, Debug)]
pub struct Limits {
    pub max_frame_size: u64,
    pub max_message_size: u64,
}

impl Default for Limits {
    fn default() -> Self {
        Limits { max_frame_size: 16 << 20, max_message_size: 16 << 20 }
    }
}

/// What the peer did wrong: the close code to send and a short reason for the close frame and logs.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{reason} (close {})", code.0)]
pub struct ProtocolError {
    pub code: CloseCode,
    pub reason: &'static str,
}

/// An event produced by [`Reader::feed`]. Payloads are already unmasked (and text validated).
#[derive(Debug, PartialEq, Eq)]
pub enum Event<'a> {
    Message(MessageKind, &'a [u8]),
    Ping(&'a [u8]),
    Pong(&'a [u8]),
    /// A valid close frame; `code` is `None` for an empty payload.
    Close { code: Option<CloseCode>, reason: &'a str },
}

/// What the caller wants after an event.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Flow {
    Continue,
    /// Stop reading: return from `feed` at once (e.g. the connection is being closed).
    Stop,
}

/// Per-connection reader state. `Reader::default()` is the state between messages; it holds no
/// heap memory until a message spans more than one `feed` call or more than one frame.
#[derive(Debug, Default)]
pub struct Reader {
    // implementation-defined private fields
}

impl Reader {
    /// True when no frame or message is in flight: the reactor may drop this reader and start over
    /// with `Reader::default()` later, so idle connections hold no reader state at all.
    pub fn is_idle(&self) -> bool {
        todo!()
    }

    /// Consumes as much of `input` as possible, unmasking it in place, and calls `on_event` for
    /// each complete message and control frame, in order.
    ///
    /// Returns the number of bytes consumed. Unconsumed bytes (a partial frame header, or a partial
    /// control frame: at most `MAX_HEADER_LEN + 125` bytes) must be passed again, followed by new
    /// bytes, on the next call. Partial data-frame payloads are consumed into the reader's own
    /// message buffer (bounded by `limits.max_message_size`), text validated as it arrives.
    /// After an `Err`, the reader must not be used again.
    pub fn feed(
        &mut self,
        input: &mut [u8],
        limits: &Limits,
        mut on_event: impl FnMut(Event<'_>) -> Flow,
    ) -> Result<usize, ProtocolError> {
        todo!()
    }
}
