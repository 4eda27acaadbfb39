//! permessage-deflate (RFC 7692), with no compression state per connection.
//!
//! - [`negotiate`]: the server's answer to a client's offers; always no context takeover both
//!   ways, so each message is compressed and inflated on its own.
//! - [`answer`]: the client's offer ([`CLIENT_OFFER`], the same no context takeover) and the
//!   server's answer judged against it (RFC 7692 §7.1: a client fails the connection on an
//!   invalid one).
//! - [`codec`]: one compressor and one decompressor per core, with scratch buffers: a connection
//!   that negotiated deflate keeps only that fact (a byte of its padding).
//!
//! See docs/compression.md for the memory model and when to turn it on.

pub mod answer;
pub mod codec;
pub mod negotiate;

pub use answer::{parse_answer, Answer, AnswerError, Offered, CLIENT_OFFER};
pub use codec::InflateError;
pub use negotiate::{negotiate, Agreement};

/// What the server does with compression; shared by all connections of a driver.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Compression {
    /// Accept a client's permessage-deflate offer.
    pub enabled: bool,
    /// Messages shorter than this go out uncompressed.
    pub min_size: usize,
    /// The compressor's level, 1 (fastest) to 9 (smallest).
    pub level: u8,
}

impl Default for Compression {
    fn default() -> Self {
        Compression {
            enabled: false,
            min_size: 256,
            level: 1,
        }
    }
}

/// A connection's negotiated compression, in one byte: 0 for none, else the window bits its
/// own compressor must keep within (8..=15): the server's for a server, the client's for a
/// client.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Negotiated(pub u8);

impl Negotiated {
    pub const NONE: Negotiated = Negotiated(0);

    pub fn from_agreement(agreement: Option<Agreement>) -> Negotiated {
        agreement.map_or(Negotiated::NONE, |a| Negotiated(a.window_bits()))
    }

    /// A client's, from the server's answer.
    pub fn from_answer(answer: Option<&Answer>) -> Negotiated {
        answer.map_or(Negotiated::NONE, |a| Negotiated(a.client_window_bits()))
    }

    pub fn is_on(self) -> bool {
        self.0 != 0
    }

    /// Whether a message of `len` bytes goes out compressed: deflate is on, the message is at
    /// least `min_size`, and it fits the window the peer allowed (a message no longer than
    /// the window cannot hold a match reaching further back).
    pub fn compresses(self, cfg: &Compression, len: usize) -> bool {
        self.is_on() && len >= cfg.min_size && (self.0 >= 15 || len <= 1 << self.0)
    }
}
