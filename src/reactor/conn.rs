//! Per-connection state, kept in the core's slab. An idle upgraded connection is just this
//! struct: the read-side and write-side buffers exist only while a frame is in flight or the
//! kernel is refusing bytes.

use std::os::fd::RawFd;

use crate::protocol::Reader;

/// Where a connection is in its life.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Phase {
    /// Reading the HTTP upgrade request.
    Handshake,
    /// Upgraded: frames flow both ways.
    Open,
    /// We sent a close frame and wait for the peer's (frames are still parsed, data ignored).
    Closing,
    /// We are done talking (refusal sent, or the connection failed): our side is shut down once
    /// the outbound bytes are flushed, and input is discarded until EOF or the close timeout.
    Lingering,
}

/// Bits of [`Conn::flags`].
pub mod flags {
    /// A one-shot POLLOUT is armed in the ring.
    pub const WRITE_ARMED: u8 = 1 << 0;
    /// Shut down our sending side as soon as the outbound queue drains.
    pub const SHUTDOWN_AFTER_FLUSH: u8 = 1 << 1;
    /// Release the connection as soon as the outbound queue drains.
    pub const RELEASE_AFTER_FLUSH: u8 = 1 << 2;
}

/// Read-side state that outlives one readable event: bytes of a partial header (or request
/// head) and the reader of a message in flight.
#[derive(Default)]
pub struct Inbound {
    pub pending: Vec<u8>,
    pub reader: Reader,
}

impl Inbound {
    pub fn is_idle(&self) -> bool {
        self.pending.is_empty() && self.reader.is_idle()
    }
}

/// Bytes the kernel has not taken yet, in order. `start` is the first unsent byte.
#[derive(Default)]
pub struct Outbound {
    pub bytes: Vec<u8>,
    pub start: usize,
}

impl Outbound {
    pub fn unsent(&self) -> &[u8] {
        &self.bytes[self.start..]
    }
    pub fn len(&self) -> usize {
        self.bytes.len() - self.start
    }
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
    pub fn push(&mut self, a: &[u8], b: &[u8]) {
        // Reclaim the sent prefix before growing, so a long-lived queue does not creep.
        if self.start > 0 && self.start >= self.bytes.len() / 2 {
            self.bytes.drain(..self.start);
            self.start = 0;
        }
        self.bytes.extend_from_slice(a);
        self.bytes.extend_from_slice(b);
    }
    pub fn consume(&mut self, n: usize) {
        self.start += n;
        debug_assert!(self.start <= self.bytes.len());
    }
}

/// One connection. Kept small: this is the per-connection memory of an idle server.
pub struct Conn {
    pub fd: RawFd,
    pub generation: u32,
    pub phase: Phase,
    pub flags: u8,
    pub inbound: Option<Box<Inbound>>,
    pub outbound: Option<Box<Outbound>>,
}

impl Conn {
    pub fn new(fd: RawFd, generation: u32) -> Conn {
        Conn { fd, generation, phase: Phase::Handshake, flags: 0, inbound: None, outbound: None }
    }

    pub fn has(&self, flag: u8) -> bool {
        self.flags & flag != 0
    }

    pub fn outbound_len(&self) -> usize {
        self.outbound.as_ref().map_or(0, |o| o.len())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_idle_connection_fits_in_32_bytes() {
        // The per-connection memory budget of an idle upgraded connection is 64 B in total
        // (slab entry + timer node); this is the largest part.
        assert!(std::mem::size_of::<Conn>() <= 32, "Conn is {} bytes", std::mem::size_of::<Conn>());
    }

    #[test]
    fn outbound_keeps_order_and_reclaims_the_sent_prefix() {
        let mut o = Outbound::default();
        o.push(b"ab", b"cd");
        o.consume(3);
        assert_eq!(o.unsent(), b"d");
        o.push(b"e", b"");
        assert_eq!(o.unsent(), b"de");
        assert_eq!(o.start, 0, "sent prefix reclaimed");
        o.consume(2);
        assert!(o.is_empty());
    }
}
