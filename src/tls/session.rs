//! One connection's TLS session: rustls's unbuffered server connection between the socket and
//! the WebSocket connection, driven over the core's shared buffers.
//!
//! Sans-IO like the connection above it: [`TlsSession::read`] takes ciphertext and gives
//! plaintext plus the bytes to transmit (handshake flights, alerts); [`TlsSession::encrypt`]
//! turns plaintext into records. The session itself holds only what cannot wait in a shared
//! buffer: a record split across reads (`carry`) and ciphertext the kernel has not taken yet
//! (`unsent`), each at most about one record, and both empty while the connection is idle.

use std::sync::Arc;

use rustls::server::UnbufferedServerConnection;
use rustls::unbuffered::{ConnectionState, EncodeError};

use super::failure::{looks_like_http, TlsFailure};

/// The largest TLS record on the wire: 16 KiB of plaintext plus the header, padding and tag
/// allowance of RFC 8446 §5.2 (2^14 + 256 + 5).
pub const MAX_RECORD_BYTES: usize = (1 << 14) + 256 + 5;
/// Plaintext encrypted per step of [`TlsSession::encrypt`]: one full record, so what the
/// kernel refuses and the session keeps is at most one record.
pub const PLAINTEXT_STEP_BYTES: usize = 1 << 14;
/// Room the core's output buffer needs: a record of [`PLAINTEXT_STEP_BYTES`] or a handshake
/// flight (certificate chains of a few KiB), with margin.
pub const WIRE_BUFFER_BYTES: usize = 64 << 10;

mod flag {
    /// The handshake finished: application data flows.
    pub const HANDSHAKEN: u8 = 1 << 0;
    /// The first bytes were seen (the plain-HTTP check is done).
    pub const STARTED: u8 = 1 << 1;
    /// The session armed a writability poll of its own to flush `unsent`.
    pub const WRITABLE_ARMED: u8 = 1 << 2;
    /// Shut the write side down once `unsent` is flushed.
    pub const SHUTDOWN_AFTER_FLUSH: u8 = 1 << 3;
}

/// One connection's TLS state.
pub struct TlsSession {
    conn: UnbufferedServerConnection,
    /// Ciphertext of a record split across reads.
    carry: Vec<u8>,
    /// Ciphertext already encrypted (sequence numbers spent) that the kernel has not taken.
    unsent: Vec<u8>,
    flags: u8,
}

/// What one [`TlsSession::read`] produced.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ReadSummary {
    /// Plaintext bytes written to the front of the plaintext buffer.
    pub plain_len: usize,
    /// Bytes to transmit now, at the front of the wire buffer.
    pub wire_len: usize,
    /// The handshake finished during this read.
    pub handshake_done: bool,
    /// The peer sent close_notify or its stream ended the session: nothing more will come.
    pub peer_closed: bool,
}

/// A failed session: why, rustls's words, and the alert to transmit (at the front of the wire
/// buffer).
#[derive(Debug)]
pub struct ReadFailure {
    pub failure: TlsFailure,
    pub detail: String,
    pub wire_len: usize,
}

impl TlsSession {
    pub fn new(config: Arc<rustls::ServerConfig>) -> Result<TlsSession, rustls::Error> {
        Ok(TlsSession {
            conn: UnbufferedServerConnection::new(config)?,
            carry: Vec::new(),
            unsent: Vec::new(),
            flags: 0,
        })
    }

    pub fn is_handshaken(&self) -> bool {
        self.flags & flag::HANDSHAKEN != 0
    }

    /// The client's first bytes arrived: a handshake began.
    pub fn is_started(&self) -> bool {
        self.flags & flag::STARTED != 0
    }

    /// Bytes this session holds in buffers of its own (the memory budget counts them).
    pub fn held_bytes(&self) -> usize {
        self.carry.capacity() + self.unsent.capacity()
    }

    /// Copies the carried partial record to the front of `buf` and forgets it; returns its
    /// length. `buf` must hold a record.
    pub fn take_carry(&mut self, buf: &mut [u8]) -> usize {
        let n = self.carry.len();
        assert!(
            n <= buf.len(),
            "a carried record exceeds the TLS input buffer"
        );
        buf[..n].copy_from_slice(&self.carry);
        self.carry = Vec::new();
        n
    }

    /// Processes the ciphertext in `cipher` (carried bytes first, then fresh ones): completes
    /// the handshake, decrypts application data into `plain` (which must have room for
    /// `cipher.len()` bytes: plaintext is never longer than its records) and writes the bytes
    /// to transmit into `wire`. A partial record at the end is kept for the next read.
    pub fn read(
        &mut self,
        cipher: &mut [u8],
        plain: &mut [u8],
        wire: &mut [u8],
    ) -> Result<ReadSummary, ReadFailure> {
        debug_assert!(plain.len() >= cipher.len());
        let mut summary = ReadSummary::default();
        if self.flags & flag::STARTED == 0 && !cipher.is_empty() {
            self.flags |= flag::STARTED;
            if looks_like_http(cipher) {
                return Err(ReadFailure {
                    failure: TlsFailure::PlainHttp,
                    detail: "plain HTTP on the TLS port".into(),
                    wire_len: 0,
                });
            }
        }
        let mut start = 0;
        loop {
            let status = self.conn.process_tls_records(&mut cipher[start..]);
            let discard = status.discard;
            let state = match status.state {
                Ok(state) => state,
                Err(error) => return Err(self.failed(&error, wire, summary)),
            };
            let mut stop = false;
            match state {
                ConnectionState::ReadTraffic(mut traffic) => {
                    while let Some(record) = traffic.next_record() {
                        let record = record.map_err(|e| ReadFailure {
                            failure: TlsFailure::of(&e),
                            detail: e.to_string(),
                            wire_len: summary.wire_len,
                        })?;
                        let at = summary.plain_len;
                        plain[at..at + record.payload.len()].copy_from_slice(record.payload);
                        summary.plain_len += record.payload.len();
                    }
                }
                ConnectionState::EncodeTlsData(mut data) => {
                    summary.wire_len += encode(&mut data, &mut wire[summary.wire_len..])?;
                }
                ConnectionState::TransmitTlsData(transmit) => {
                    // The caller transmits `wire` right after this read.
                    transmit.done();
                }
                ConnectionState::WriteTraffic(_) => {
                    if !self.is_handshaken() {
                        self.flags |= flag::HANDSHAKEN;
                        summary.handshake_done = true;
                    }
                    stop = true;
                }
                ConnectionState::PeerClosed => summary.peer_closed = true,
                ConnectionState::Closed => {
                    summary.peer_closed = true;
                    stop = true;
                }
                // BlockedHandshake: more bytes needed. Early data is never enabled.
                _ => stop = true,
            }
            start += discard;
            if stop {
                break;
            }
        }
        if start < cipher.len() {
            self.carry = cipher[start..].to_vec();
        }
        Ok(summary)
    }

    /// After an error rustls queues an alert: encode it for the peer. The bytes that failed are
    /// not given back: rustls would fail on them again and try a second fatal alert, which a
    /// debug assertion of rustls forbids (the reactor thread of a debug build panicked).
    fn failed(
        &mut self,
        error: &rustls::Error,
        wire: &mut [u8],
        summary: ReadSummary,
    ) -> ReadFailure {
        let mut wire_len = summary.wire_len;
        // Bounded: an alert is one record; the loop ends at the first state that is not one.
        for _ in 0..4 {
            let status = self.conn.process_tls_records(&mut []);
            match status.state {
                Ok(ConnectionState::EncodeTlsData(mut data)) => {
                    if let Ok(n) = encode(&mut data, &mut wire[wire_len..]) {
                        wire_len += n;
                    }
                }
                Ok(ConnectionState::TransmitTlsData(transmit)) => transmit.done(),
                _ => break,
            }
        }
        ReadFailure {
            failure: TlsFailure::of(error),
            detail: error.to_string(),
            wire_len,
        }
    }

    /// Encrypts `plain` (at most [`PLAINTEXT_STEP_BYTES`]) into `wire`; returns the record
    /// bytes. `None` before the handshake finished (nothing may be sent yet) or once the
    /// session can no longer encrypt.
    pub fn encrypt(&mut self, plain: &[u8], wire: &mut [u8]) -> Option<usize> {
        debug_assert!(plain.len() <= PLAINTEXT_STEP_BYTES);
        let mut len = 0;
        // Bounded: pending handshake records (a key update) come first, then the data.
        for _ in 0..8 {
            let status = self.conn.process_tls_records(&mut []);
            match status.state.ok()? {
                ConnectionState::WriteTraffic(mut traffic) => {
                    // Err: the buffer is too small (it is sized for a record) or the keys are
                    // exhausted (2^64 records).
                    return traffic
                        .encrypt(plain, &mut wire[len..])
                        .ok()
                        .map(|n| len + n);
                }
                ConnectionState::EncodeTlsData(mut data) => {
                    len += encode(&mut data, &mut wire[len..]).ok()?;
                }
                ConnectionState::TransmitTlsData(transmit) => transmit.done(),
                _ => return None,
            }
        }
        None
    }

    /// A close_notify alert for the peer, into `wire`; its length (0 if none can be sent).
    pub fn close_notify(&mut self, wire: &mut [u8]) -> usize {
        let status = self.conn.process_tls_records(&mut []);
        match status.state {
            Ok(ConnectionState::WriteTraffic(mut traffic)) => {
                traffic.queue_close_notify(wire).unwrap_or(0)
            }
            _ => 0,
        }
    }

    /// The client certificate's identity (mTLS), once the handshake finished.
    pub fn client_identity(&self) -> Option<String> {
        let chain = self.conn.peer_certificates()?;
        super::certificate::client_identity(chain.first()?)
    }

    /// Ciphertext waiting for the kernel.
    pub fn unsent(&self) -> &[u8] {
        &self.unsent
    }

    /// Keeps `bytes` (already encrypted) until the socket takes them.
    pub fn keep_unsent(&mut self, bytes: &[u8]) {
        self.unsent.extend_from_slice(bytes);
    }

    /// The kernel took `n` bytes of [`TlsSession::unsent`]; the buffer is freed once empty.
    pub fn consume_unsent(&mut self, n: usize) {
        if n >= self.unsent.len() {
            self.unsent = Vec::new();
        } else {
            self.unsent.drain(..n);
        }
    }

    pub fn writable_armed(&self) -> bool {
        self.flags & flag::WRITABLE_ARMED != 0
    }

    pub fn set_writable_armed(&mut self, armed: bool) {
        self.set(flag::WRITABLE_ARMED, armed);
    }

    pub fn shutdown_after_flush(&self) -> bool {
        self.flags & flag::SHUTDOWN_AFTER_FLUSH != 0
    }

    pub fn set_shutdown_after_flush(&mut self, on: bool) {
        self.set(flag::SHUTDOWN_AFTER_FLUSH, on);
    }

    fn set(&mut self, bit: u8, on: bool) {
        if on {
            self.flags |= bit;
        } else {
            self.flags &= !bit;
        }
    }
}

fn encode(
    data: &mut rustls::unbuffered::EncodeTlsData<'_, rustls::server::ServerConnectionData>,
    wire: &mut [u8],
) -> Result<usize, ReadFailure> {
    data.encode(wire).map_err(|e| ReadFailure {
        failure: TlsFailure::Protocol,
        detail: match e {
            EncodeError::InsufficientSize(s) => format!(
                "a handshake flight of {} bytes exceeds the output buffer",
                s.required_size
            ),
            e => e.to_string(),
        },
        wire_len: 0,
    })
}
