//! The sans-IO protocol core: bytes in, bytes and events out.
//!
//! Nothing here touches a socket, a clock or the allocator on the per-message fast path; the
//! reactor owns I/O and calls these functions. Every parser here is bounded and fuzzed.

pub mod client_handshake;
pub mod close;
pub mod connection;
pub mod deflate;
pub mod frame;
pub mod handshake;
pub mod mask;
pub mod proxy_header;
pub mod reader;
pub mod refusal;
pub mod utf8;

pub use close::CloseCode;
pub use frame::{Opcode, MAX_HEADER_LEN};
pub use handshake::{HandshakeLimits, UpgradeRequest};
pub use reader::{Event, Limits, ProtocolError, Reader, Step};
pub use refusal::{Refusal, RefusalReason};

/// Which end of a connection this is: a server reads masked frames and writes unmasked ones,
/// a client the reverse (RFC 6455 §5.1).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Role {
    #[default]
    Server,
    Client,
}

/// Kind of a complete data message.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum MessageKind {
    Text,
    Binary,
}

impl MessageKind {
    pub fn opcode(self) -> Opcode {
        match self {
            MessageKind::Text => Opcode::Text,
            MessageKind::Binary => Opcode::Binary,
        }
    }
}
