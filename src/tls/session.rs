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

use super::failure::{looks_like_http, may_become_http, TlsFailure};

/// The largest TLS record on the wire: 16 KiB of plaintext plus the header, padding and tag
/// allowance of RFC 8446 §5.2 (2^14 + 256 + 5).
pub const MAX_RECORD_BYTES: usize = (1 << 14) + 256 + 5;
/// Most ciphertext a session carries between reads: a handshake message may span records
/// (rustls accepts messages up to 64 KiB) and is kept until it is whole; past this the client
/// is not speaking TLS as any real client does and the handshake fails.
pub const MAX_CARRY_BYTES: usize = (64 << 10) + MAX_RECORD_BYTES;
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
    /// The server has sent a flight: from here records may be encrypted.
    pub const SPOKE: u8 = 1 << 4;
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
            if may_become_http(cipher) {
                // Plain HTTP arriving a few bytes at a time: decide once the method is whole.
                self.carry = cipher.to_vec();
                return Ok(summary);
            }
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
                Err(error) => {
                    return Err(self.failed(&error, &mut cipher[start..], wire, summary));
                }
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
        if cipher.len() - start > MAX_CARRY_BYTES {
            return Err(ReadFailure {
                failure: TlsFailure::Protocol,
                detail: format!("more than {MAX_CARRY_BYTES} bytes of unfinished TLS records"),
                wire_len: summary.wire_len,
            });
        }
        if start < cipher.len() {
            self.carry = cipher[start..].to_vec();
        }
        if summary.wire_len > 0 {
            self.flags |= flag::SPOKE;
        }
        Ok(summary)
    }

    /// The failure, with an alert for the peer where one can be sent. rustls is entered once
    /// more, with the same bytes as the failed call: an alert it queued comes out first,
    /// before any record is deframed again (a second deframing could fail again and queue a
    /// second fatal alert, which rustls asserts against; with an emptied buffer its record
    /// offsets would point past the end). When it queued none, and the server has not spoken
    /// yet (nothing is encrypted), the alert is written here in plaintext.
    fn failed(
        &mut self,
        error: &rustls::Error,
        cipher: &mut [u8],
        wire: &mut [u8],
        summary: ReadSummary,
    ) -> ReadFailure {
        let mut wire_len = summary.wire_len;
        // An error of the record layer is met again by the next deframing, which would queue
        // a second alert: one chunk only. After an error of the handshake (rustls keeps it as
        // its state), every queued chunk (a ServerHello, then the alert). Once they are out,
        // the probe that finds none deframes the records after the failed one; a malformed one
        // makes rustls queue a second fatal alert, which is never sent (the session is dropped)
        // but which rustls asserts against in debug builds: Cargo.toml turns rustls's debug
        // assertions off in the dev profile, and the fuzz target runs with `-O`.
        let record_layer = matches!(
            error,
            rustls::Error::InvalidMessage(_)
                | rustls::Error::DecryptError
                | rustls::Error::PeerSentOversizedRecord
        );
        let chunks = if record_layer { 1 } else { 4 };
        for _ in 0..chunks {
            let Ok(ConnectionState::EncodeTlsData(mut data)) =
                self.conn.process_tls_records(cipher).state
            else {
                break;
            };
            match encode(&mut data, &mut wire[wire_len..]) {
                Ok(n) => wire_len += n,
                Err(_) => break,
            }
        }
        let failure = TlsFailure::of(error);
        let unencrypted = self.flags & flag::SPOKE == 0 && summary.wire_len == 0;
        let queued = wire_len > summary.wire_len;
        if let Some(description) = failure.alert().filter(|_| unencrypted && !queued) {
            let alert = plaintext_alert(description);
            if let Some(room) = wire.get_mut(wire_len..wire_len + alert.len()) {
                room.copy_from_slice(&alert);
                wire_len += alert.len();
            }
        }
        ReadFailure {
            failure,
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

/// A fatal alert record in plaintext (RFC 8446 §6, RFC 5246 §7.2).
fn plaintext_alert(description: rustls::AlertDescription) -> [u8; 7] {
    const CONTENT_TYPE_ALERT: u8 = 21;
    const LEVEL_FATAL: u8 = 2;
    [
        CONTENT_TYPE_ALERT,
        3,
        3,
        0,
        2,
        LEVEL_FATAL,
        u8::from(description),
    ]
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

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::{Read, Write};

    fn configs() -> (Arc<rustls::ServerConfig>, Arc<rustls::ClientConfig>) {
        let made = rcgen::generate_simple_self_signed(vec!["localhost".into()]).unwrap();
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let key = rustls::pki_types::PrivateKeyDer::Pkcs8(made.key_pair.serialize_der().into());
        let server = rustls::ServerConfig::builder_with_provider(provider.clone())
            .with_safe_default_protocol_versions()
            .unwrap()
            .with_no_client_auth()
            .with_single_cert(vec![made.cert.der().clone()], key)
            .unwrap();
        let mut roots = rustls::RootCertStore::empty();
        roots.add(made.cert.der().clone()).unwrap();
        let client = rustls::ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .unwrap()
            .with_root_certificates(roots)
            .with_no_client_auth();
        (Arc::new(server), Arc::new(client))
    }

    /// Drives a session as the reactor does: ciphertext arrives `chunk` bytes at a time (the
    /// carried record first), plaintext and bytes to transmit come out.
    struct Driver {
        session: TlsSession,
        plain: Vec<u8>,
    }

    impl Driver {
        fn feed(&mut self, bytes: &[u8], chunk: usize) -> Vec<u8> {
            let mut to_client = Vec::new();
            for piece in bytes.chunks(chunk) {
                let mut cipher = vec![0u8; MAX_RECORD_BYTES + piece.len()];
                let carried = self.session.take_carry(&mut cipher);
                cipher[carried..carried + piece.len()].copy_from_slice(piece);
                let len = carried + piece.len();
                let mut plain = vec![0u8; len];
                let mut wire = vec![0u8; WIRE_BUFFER_BYTES];
                let summary = self
                    .session
                    .read(&mut cipher[..len], &mut plain, &mut wire)
                    .unwrap();
                self.plain.extend_from_slice(&plain[..summary.plain_len]);
                to_client.extend_from_slice(&wire[..summary.wire_len]);
            }
            to_client
        }
    }

    fn pump(client: &mut rustls::ClientConnection, driver: &mut Driver, chunk: usize) {
        for _ in 0..6 {
            let mut wire = Vec::new();
            while client.wants_write() {
                client.write_tls(&mut wire).unwrap();
            }
            let back = driver.feed(&wire, chunk);
            let mut back = back.as_slice();
            while !back.is_empty() {
                client.read_tls(&mut back).unwrap();
                client.process_new_packets().unwrap();
            }
        }
    }

    #[test]
    fn records_split_at_every_byte_arrive_whole_and_an_idle_session_holds_no_buffer() {
        let (server, client_config) = configs();
        for chunk in [1, 7, 100, 1 << 20] {
            let mut client = rustls::ClientConnection::new(
                client_config.clone(),
                "localhost".try_into().unwrap(),
            )
            .unwrap();
            let mut driver = Driver {
                session: TlsSession::new(server.clone()).unwrap(),
                plain: Vec::new(),
            };
            pump(&mut client, &mut driver, chunk);
            assert!(
                !client.is_handshaking(),
                "chunk {chunk}: the handshake finished"
            );
            assert!(driver.session.is_handshaken());
            let message: Vec<u8> = (0..40_000u32).map(|i| i as u8).collect();
            client.writer().write_all(&message).unwrap();
            pump(&mut client, &mut driver, chunk);
            assert_eq!(
                driver.plain, message,
                "chunk {chunk}: the plaintext arrived whole"
            );
            assert_eq!(driver.session.held_bytes(), 0, "idle: no buffer of its own");

            // And back: records the client decrypts.
            let mut wire = vec![0u8; WIRE_BUFFER_BYTES];
            let n = driver.session.encrypt(b"pong", &mut wire).unwrap();
            client.read_tls(&mut &wire[..n]).unwrap();
            client.process_new_packets().unwrap();
            let mut got = [0u8; 4];
            client.reader().read_exact(&mut got).unwrap();
            assert_eq!(&got, b"pong");
        }
    }

    /// Input the fuzz target found: a handshake error, then malformed records in the same read
    /// (its first byte is the read size). The session fails with an alert and nothing panics.
    #[test]
    fn malformed_records_after_a_handshake_error_fail_the_session_once() {
        let data = include_bytes!("regressions/records-after-a-handshake-error.bin");
        let (server, _) = configs();
        let (&cut, input) = data.split_first().unwrap();
        let mut session = TlsSession::new(server).unwrap();
        let mut wire = vec![0u8; WIRE_BUFFER_BYTES];
        let mut failed = None;
        for piece in input.chunks(usize::from(cut).max(1)) {
            let mut cipher = vec![0u8; MAX_CARRY_BYTES + piece.len()];
            let carried = session.take_carry(&mut cipher);
            cipher[carried..carried + piece.len()].copy_from_slice(piece);
            let len = carried + piece.len();
            let mut plain = vec![0u8; len];
            if let Err(failure) = session.read(&mut cipher[..len], &mut plain, &mut wire) {
                failed = Some(failure);
                break;
            }
        }
        let failed = failed.expect("the session fails");
        assert!(failed.wire_len > 0, "an alert goes back: {}", failed.detail);
    }

    #[test]
    fn a_handshake_message_dribbled_one_byte_per_record_is_bounded() {
        let (server, _) = configs();
        let mut session = TlsSession::new(server).unwrap();
        // A ClientHello header announcing 60,000 bytes, then one byte per record: 6 bytes of
        // records per byte of message, so 60,000 bytes would need 360 KB carried.
        let mut message = vec![1u8, 0, 0xEA, 0x60];
        message.resize(60_004, 0);
        let mut wire = vec![0u8; WIRE_BUFFER_BYTES];
        let mut outcome = Ok(ReadSummary::default());
        for chunk in message.chunks(4096) {
            let mut records: Vec<u8> = chunk.iter().flat_map(|&b| [22, 3, 1, 0, 1, b]).collect();
            let mut cipher = vec![0u8; MAX_CARRY_BYTES + records.len()];
            let carried = session.take_carry(&mut cipher);
            cipher[carried..carried + records.len()].copy_from_slice(&records);
            records.clear();
            let len = carried + chunk.len() * 6;
            let mut plain = vec![0u8; len];
            outcome = session.read(&mut cipher[..len], &mut plain, &mut wire);
            if outcome.is_err() {
                break;
            }
            assert!(session.held_bytes() <= MAX_CARRY_BYTES.next_power_of_two());
        }
        let failed = outcome.expect_err("refused before the message is whole");
        assert_eq!(failed.failure, TlsFailure::Protocol, "{}", failed.detail);
    }

    #[test]
    fn nothing_is_encrypted_before_the_handshake_and_garbage_fails_with_an_alert() {
        let (server, _) = configs();
        let mut session = TlsSession::new(server.clone()).unwrap();
        let mut wire = vec![0u8; WIRE_BUFFER_BYTES];
        assert_eq!(session.encrypt(b"early", &mut wire), None);

        let mut garbage = *b"\x16\x03\x01\x00\x05hello";
        let mut plain = [0u8; 16];
        let failed = session
            .read(&mut garbage, &mut plain, &mut wire)
            .unwrap_err();
        assert_eq!(failed.failure, TlsFailure::Protocol, "{}", failed.detail);
        assert!(failed.wire_len > 0, "an alert goes back");
        assert_eq!(wire[0], 21, "the record is an alert");

        let mut session = TlsSession::new(server.clone()).unwrap();
        let mut http = *b"GET / HTTP/1.1\r\n";
        let failed = session.read(&mut http, &mut plain, &mut wire).unwrap_err();
        assert_eq!(failed.failure, TlsFailure::PlainHttp);

        // The same request one byte at a time: the first letters wait for the rest.
        let mut session = TlsSession::new(server).unwrap();
        let mut outcome = Ok(ReadSummary::default());
        for &byte in b"GET / HTTP/1.1\r\n" {
            let mut cipher = [0u8; 32];
            let carried = session.take_carry(&mut cipher);
            cipher[carried] = byte;
            outcome = session.read(&mut cipher[..carried + 1], &mut plain, &mut wire);
            if outcome.is_err() {
                break;
            }
        }
        assert_eq!(outcome.unwrap_err().failure, TlsFailure::PlainHttp);
    }
}
