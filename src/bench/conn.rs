//! One client connection of the load generator, and the frames it sends (built once, masked
//! with the connection's fixed key).

use rustls::ClientConnection;
use socket2::Socket;

use super::receiver::Receiver;
use crate::protocol::deflate::codec;
use crate::protocol::frame::{append_client_frame, Opcode, MAX_HEADER_LEN, RSV1_BIT};
use crate::protocol::reader::Limits;

/// Close code the generator sends: 1000, normal closure.
const CLOSE_NORMAL: u16 = 1000;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ConnState {
    /// TCP connect in progress.
    Connecting,
    /// Upgrade request sent (or being sent); waiting for the 101.
    Handshaking,
    /// Upgraded.
    Open,
    /// Our close frame is queued or sent; waiting for the server's.
    Closing,
    /// Close frames exchanged; waiting for the server to close TCP (it closes first, so the
    /// TIME_WAIT state lands on the server and the generator's ports are reused at once).
    Draining,
}

pub struct Conn {
    pub socket: Socket,
    pub state: ConnState,
    /// When the current stage times out (CLOCK_MONOTONIC ns); 0: never.
    pub deadline_ns: u64,
    pub connect_start_ns: u64,
    /// Closed loop: when the outstanding echo was sent.
    pub sent_ns: u64,
    /// The `Sec-WebSocket-Accept` value the server must answer with.
    pub accept: [u8; 28],
    pub mask: [u8; 4],
    /// Bytes to send other than echo frames: the upgrade request, then pongs and our close.
    pub out: Vec<u8>,
    pub out_pos: usize,
    /// The pre-built, masked echo frame (empty outside echo mode).
    pub frame: Box<[u8]>,
    /// Bytes of the frame already written for the frame being sent; 0 between frames.
    pub frame_pos: usize,
    /// Echo frames still to write (open loop may have several due at once).
    pub frames_due: u64,
    /// Echo messages scheduled on this connection, and echoes received.
    pub sent: u64,
    pub received: u64,
    /// Open loop: this connection's position in the thread's pacing order.
    pub rate_index: u32,
    /// The last write hit EAGAIN: wait for EPOLLOUT before writing again.
    pub write_blocked: bool,
    pub upgraded: bool,
    pub rx: Receiver,
    /// A response head split across reads (empty otherwise; freed after the handshake).
    pub head: Vec<u8>,
    /// wss://: the TLS session the bytes above pass through (None for ws://).
    pub tls: Option<Box<ClientConnection>>,
}

impl Conn {
    pub fn new(socket: Socket, now_ns: u64, mask: [u8; 4], limits: Limits) -> Conn {
        Conn {
            socket,
            state: ConnState::Connecting,
            deadline_ns: 0,
            connect_start_ns: now_ns,
            sent_ns: 0,
            accept: [0; 28],
            mask,
            out: Vec::new(),
            out_pos: 0,
            frame: Box::default(),
            frame_pos: 0,
            frames_due: 0,
            sent: 0,
            received: 0,
            rate_index: 0,
            write_blocked: false,
            upgraded: false,
            rx: Receiver::new(limits),
            head: Vec::new(),
            tls: None,
        }
    }

    /// True when a write is pending.
    pub fn wants_write(&self) -> bool {
        self.frame_pos > 0 || self.out_pos < self.out.len() || self.frames_due > 0
    }

    /// The next bytes to send, and whether they are echo-frame bytes; None when nothing is due.
    /// A started echo frame finishes first; control frames go between echo frames.
    pub fn next_bytes(&self) -> Option<(&[u8], bool)> {
        if self.frame_pos > 0 {
            Some((&self.frame[self.frame_pos..], true))
        } else if self.out_pos < self.out.len() {
            Some((&self.out[self.out_pos..], false))
        } else if self.frames_due > 0 {
            Some((&self.frame[..], true))
        } else {
            None
        }
    }

    /// Marks `n` bytes of what [`Conn::next_bytes`] gave as sent.
    pub fn advance(&mut self, n: usize, is_frame: bool) {
        if is_frame {
            self.frame_pos += n;
            if self.frame_pos == self.frame.len() {
                self.frame_pos = 0;
                self.frames_due -= 1;
            }
        } else {
            self.out_pos += n;
            if self.out_pos == self.out.len() {
                // Freed, not kept: idle connections then hold no write buffer at all.
                self.out = Vec::new();
                self.out_pos = 0;
            }
        }
    }

    /// Queues a masked control frame (pong or close) behind any frame already started.
    pub fn queue_control(&mut self, opcode: Opcode, payload: &[u8]) {
        debug_assert!(opcode.is_control() && payload.len() <= 125);
        append_client_frame(&mut self.out, true, opcode, payload, self.mask);
    }

    /// Queues our close frame (1000) and drops echo frames not yet started.
    pub fn queue_close(&mut self) {
        self.frames_due = u64::from(self.frame_pos > 0);
        self.queue_control(Opcode::Close, &CLOSE_NORMAL.to_be_bytes());
    }
}

/// Builds the complete masked frame for `payload` once; it is then sent as is for every message.
pub fn build_frame(payload: &[u8], opcode: Opcode, mask: [u8; 4]) -> Box<[u8]> {
    let mut frame = Vec::with_capacity(MAX_HEADER_LEN + payload.len());
    append_client_frame(&mut frame, true, opcode, payload, mask);
    frame.into_boxed_slice()
}

/// Level the generator compresses at: the server's default (`compression_level`), so the server
/// inflates what a ringws peer would send.
pub const DEFLATE_LEVEL: u8 = 1;

/// [`build_frame`] for a connection that negotiated permessage-deflate: `payload` compressed
/// (RSV1 set), or as it is when compressing does not make it smaller (RFC 7692 allows either
/// per message).
pub fn build_deflate_frame(payload: &[u8], opcode: Opcode, mask: [u8; 4]) -> Box<[u8]> {
    codec::with_compressed(payload, DEFLATE_LEVEL, |compressed| match compressed {
        Some(compressed) => {
            let mut frame = build_frame(compressed, opcode, mask);
            frame[0] |= RSV1_BIT;
            frame
        }
        None => build_frame(payload, opcode, mask),
    })
}
