//! wss connections: ciphertext is read into the core's TLS input buffer and decrypted into its
//! receive buffer, from where the connection reads it like plain input; frames are encrypted
//! record by record into the core's TLS output buffer and sent. A session keeps only a record
//! split across reads or refused by the kernel, and flushes the latter on writability before
//! the connection sends more.

use std::os::fd::RawFd;

use super::conns::{Io, SocketOutput, TlsBuffers};
use super::event_loop::Reactor;
use super::inbound::MAX_READS_PER_EVENT;
use super::ring::{self, Op};
use crate::app::App;
use crate::protocol::connection::{Tick, TransportError};
use crate::protocol::Reader;
use crate::sys::socket::{self as sys, IoResult};
use crate::tls::session::PLAINTEXT_STEP_BYTES;
use crate::tls::{ReadSummary, TlsFailure, TlsSession};

use super::inbound::unix_seconds;

/// TLS handshake failures are logged at most once per this many ticks (1 s) per core; the
/// ones in between are counted and reported with the next line.
const FAILURE_LOG_INTERVAL_TICKS: u32 = 10;

/// What plain HTTP on the TLS port gets, in plain text, before the connection closes.
const PLAIN_HTTP_ANSWER: &[u8] = b"HTTP/1.1 400 Bad Request\r\n\
Content-Type: text/plain; charset=utf-8\r\n\
Connection: close\r\n\
Content-Length: 88\r\n\
\r\n\
This port speaks TLS: connect with wss:// (or https://), not ws:// or plain http://.\r\n\r\n";

/// Rate limit of the TLS failure log on one core.
#[derive(Debug, Default)]
pub struct FailureLog {
    logged_at: Option<Tick>,
    unlogged: u64,
}

impl SocketOutput<'_> {
    /// Encrypts `head` + `body` one record at a time and sends each; when the kernel refuses
    /// part of a record the session keeps the rest and the count taken so far is returned
    /// (the connection queues the remaining plaintext and asks for writability).
    pub(super) fn transmit_tls(
        &mut self,
        head: &[u8],
        body: &[u8],
    ) -> Result<usize, TransportError> {
        let fd = self.fd;
        let total = head.len() + body.len();
        let Some(tls) = self.tls.as_mut() else {
            return Err(TransportError);
        };
        if !tls.session.unsent().is_empty() {
            return Ok(0); // records are still waiting for the kernel: keep the order
        }
        if !tls.session.is_handshaken() {
            // Nothing may be sent before the handshake finishes (only a timeout or a refusal
            // of a connection that never finished it writes then): dropped.
            return Ok(total);
        }
        let mut taken = 0;
        while taken < total {
            let step = (total - taken).min(PLAINTEXT_STEP_BYTES);
            let plain = gather(head, body, taken, step, &mut tls.buffers.plain);
            let Some(len) = tls.session.encrypt(plain, &mut tls.buffers.wire) else {
                return Err(TransportError);
            };
            taken += step;
            let wire = &tls.buffers.wire[..len];
            match sys::send(fd, wire) {
                IoResult::Done(n) => {
                    self.stats.socket_bytes_sent.add(n as u64);
                    if n < len {
                        tls.session.keep_unsent(&wire[n..]);
                        return Ok(taken);
                    }
                }
                IoResult::WouldBlock | IoResult::Eof => {
                    tls.session.keep_unsent(wire);
                    return Ok(taken);
                }
                IoResult::Failed(e) => {
                    tracing::debug!(core = self.core, "send failed: {e}");
                    return Err(TransportError);
                }
            }
        }
        Ok(total)
    }
}

/// `len` bytes of `head` + `body` from `offset`, borrowed from `body` when they lie in it,
/// else gathered in `buf`.
fn gather<'a>(
    head: &'a [u8],
    body: &'a [u8],
    offset: usize,
    len: usize,
    buf: &'a mut [u8],
) -> &'a [u8] {
    if offset >= head.len() {
        let at = offset - head.len();
        return &body[at..at + len];
    }
    let from_head = (head.len() - offset).min(len);
    buf[..from_head].copy_from_slice(&head[offset..offset + from_head]);
    buf[from_head..len].copy_from_slice(&body[..len - from_head]);
    &buf[..len]
}

/// The connection asked to shut its write side down: close_notify first, then FIN, both after
/// any records still waiting.
pub(super) fn tls_shutdown_write(fd: RawFd, session: &mut TlsSession, buffers: &mut TlsBuffers) {
    let n = session.close_notify(&mut buffers.wire);
    let alert = &buffers.wire[..n];
    if session.unsent().is_empty() {
        match sys::send(fd, alert) {
            IoResult::Done(sent) if sent == n => return sys::shutdown_write(fd),
            IoResult::Done(sent) => session.keep_unsent(&alert[sent..]),
            IoResult::WouldBlock => session.keep_unsent(alert),
            IoResult::Eof | IoResult::Failed(_) => return sys::shutdown_write(fd),
        }
    } else {
        session.keep_unsent(alert);
    }
    session.set_shutdown_after_flush(true);
}

impl Io {
    fn session(&mut self, key: u32) -> Option<&mut TlsSession> {
        self.tls
            .get_mut(key as usize)
            .and_then(|s| s.as_deref_mut())
    }

    /// After a call that may have written through the session: counts what it now holds and
    /// arms writability when it keeps records the kernel refused.
    pub(super) fn after_tls_output(&mut self, key: u32, held_before: usize) {
        if let Some(session) = self.session(key) {
            let held_after = session.held_bytes();
            self.account_tls(held_before, held_after);
            self.arm_tls_flush(key);
        }
    }

    fn account_tls(&self, before: usize, after: usize) {
        if before != after {
            let held = &self.stats.memory_held_bytes;
            held.set(
                held.get()
                    .saturating_add_signed(after as i64 - before as i64),
            );
        }
    }

    /// Arms the connection's writability poll for the session's refused records, unless it is
    /// armed already (by the session or the connection).
    pub(super) fn arm_tls_flush(&mut self, key: u32) {
        let slot = &self.conns[key as usize];
        let (fd, generation) = (slot.fd, slot.generation);
        let conn_armed = slot.conn.awaits_writable() || slot.conn.is_released();
        let Some(session) = self
            .tls
            .get_mut(key as usize)
            .and_then(|s| s.as_deref_mut())
        else {
            return;
        };
        if session.unsent().is_empty() || session.writable_armed() || conn_armed {
            return;
        }
        session.set_writable_armed(true);
        let token = ring::token(Op::Writable, key, generation);
        self.ring.push(ring::poll_writable(fd, token));
    }

    /// The socket can take bytes: the session's records first, then the connection's queue.
    pub(super) fn on_writable(&mut self, key: u32) {
        let fd = self.conns[key as usize].fd;
        if let Some(session) = self
            .tls
            .get_mut(key as usize)
            .and_then(|s| s.as_deref_mut())
        {
            session.set_writable_armed(false);
            let before = session.held_bytes();
            let flushed = flush(fd, session, &self.stats);
            let after = session.held_bytes();
            self.account_tls(before, after);
            match flushed {
                Err(TransportError) => {
                    return self.with_conn(key, |c, _, _, out| c.fail_transport(out));
                }
                Ok(false) => {
                    // Still refused: wait again (the connection keeps waiting behind it).
                    let generation = self.conns[key as usize].generation;
                    if let Some(session) = self.session(key) {
                        session.set_writable_armed(true);
                    }
                    let token = ring::token(Op::Writable, key, generation);
                    self.ring.push(ring::poll_writable(fd, token));
                    return;
                }
                Ok(true) => {}
            }
            if !self.conns[key as usize].conn.awaits_writable() {
                return;
            }
        }
        self.with_conn(key, |conn, _, _, out| conn.on_writable(out));
    }
}

/// Sends the session's refused records; true when none are left. A shutdown that waited for
/// them happens then.
fn flush(
    fd: RawFd,
    session: &mut TlsSession,
    stats: &crate::stats::CoreStats,
) -> Result<bool, TransportError> {
    while !session.unsent().is_empty() {
        match sys::send(fd, session.unsent()) {
            IoResult::Done(n) => {
                stats.socket_bytes_sent.add(n as u64);
                session.consume_unsent(n);
            }
            IoResult::WouldBlock => return Ok(false),
            IoResult::Eof | IoResult::Failed(_) => return Err(TransportError),
        }
    }
    if session.shutdown_after_flush() {
        session.set_shutdown_after_flush(false);
        sys::shutdown_write(fd);
    }
    Ok(true)
}

impl<A: App> Reactor<A> {
    /// Reads a wss connection: ciphertext into the TLS input buffer after the session's
    /// carried record, plaintext into the receive buffer after the connection's carried input,
    /// then the connection reads it as on a plain socket.
    pub(super) fn on_readable_tls(&mut self, key: u32) {
        for _ in 0..MAX_READS_PER_EVENT {
            let slot = &mut self.io.conns[key as usize];
            if slot.conn.is_released() {
                return;
            }
            let fd = slot.fd;
            let Some(session) = self
                .io
                .tls
                .get_mut(key as usize)
                .and_then(|s| s.as_deref_mut())
            else {
                return;
            };
            let held_before = session.held_bytes();
            let (reader, plain_carried) = slot.conn.begin_receive(&mut self.recv_buf);
            let cipher_carried = session.take_carry(&mut self.tls_in);
            // Plaintext is never longer than its ciphertext, so it fits after the carried input.
            let room = self
                .recv_buf
                .len()
                .saturating_sub(plain_carried + cipher_carried);
            let (n, eof) = match sys::recv(fd, &mut self.tls_in[cipher_carried..][..room]) {
                IoResult::Done(n) => {
                    self.io.stats.socket_bytes_received.add(n as u64);
                    (n, false)
                }
                IoResult::WouldBlock => (0, false),
                IoResult::Eof | IoResult::Failed(_) => (0, true),
            };
            let read = session.read(
                &mut self.tls_in[..cipher_carried + n],
                &mut self.recv_buf[plain_carried..],
                &mut self.io.tls_buffers.wire,
            );
            let outcome = match read {
                Ok(summary) => {
                    let wire = &self.io.tls_buffers.wire[..summary.wire_len];
                    send_in_order(fd, session, wire, &self.io.stats);
                    Ok(summary)
                }
                Err(failure) => {
                    // The alert (or the plain-text answer) is the last word: best effort.
                    let answer = match failure.failure {
                        TlsFailure::PlainHttp => PLAIN_HTTP_ANSWER,
                        _ => &self.io.tls_buffers.wire[..failure.wire_len],
                    };
                    if !answer.is_empty() {
                        let _ = sys::send(fd, answer);
                    }
                    Err(failure)
                }
            };
            let held_after = session.held_bytes();
            let unfinished = session.is_started() && !session.is_handshaken();
            self.io.account_tls(held_before, held_after);
            self.io.arm_tls_flush(key);
            match outcome {
                Ok(summary) => {
                    if summary.handshake_done {
                        self.io.stats.tls_handshakes.inc();
                    }
                    self.deliver_plaintext(key, reader, plain_carried, summary);
                    if eof || summary.peer_closed {
                        if unfinished {
                            let detail = "the connection ended during the handshake";
                            self.tls_failed(fd, TlsFailure::ClientClosed, detail);
                        }
                        return self.io.with_conn(key, |c, _, _, out| c.on_eof(out));
                    }
                }
                Err(failure) => {
                    self.tls_failed(fd, failure.failure, &failure.detail);
                    return self.io.with_conn(key, |c, _, now, out| {
                        c.end_receive(now, reader, &[], out);
                        c.fail_transport(out);
                    });
                }
            }
            if n == 0 || n < room {
                return; // the socket is drained; the next edge brings more
            }
        }
        let generation = self.io.conns[key as usize].generation;
        self.read_again.push((key, generation));
    }

    /// Hands the decrypted bytes (after the connection's carried input) to the connection.
    fn deliver_plaintext(
        &mut self,
        key: u32,
        mut reader: Reader,
        plain_carried: usize,
        summary: ReadSummary,
    ) {
        let len = plain_carried + summary.plain_len;
        let used = self.receive(key, &mut reader, len);
        let rest = &self.recv_buf[used..len];
        self.io
            .with_conn(key, |c, _, now, out| c.end_receive(now, reader, rest, out));
    }

    /// Counts a failed TLS handshake by reason and logs it, rate-limited, with the client's
    /// address.
    fn tls_failed(&mut self, fd: RawFd, failure: TlsFailure, detail: &str) {
        self.io.stats.tls_failed(failure);
        let peer = sys::peer_addr(fd);
        if let Some(peer) = peer {
            let message = format!("TLS handshake failed: {detail}; {}", failure.hint());
            self.io
                .gate
                .note_tls_failure(peer.ip(), failure.label(), &message, unix_seconds());
        }
        let log = &mut self.tls_failure_log;
        log.unlogged += 1;
        let now = self.io.now_tick;
        let due = log.logged_at.is_none_or(|at| {
            crate::protocol::connection::reached(at.wrapping_add(FAILURE_LOG_INTERVAL_TICKS), now)
        });
        if !due {
            return;
        }
        let client = peer.map_or_else(|| "unknown".to_string(), |a| a.to_string());
        tracing::info!(
            core = self.io.core,
            client = %client,
            reason = failure.label(),
            failures_since_last_line = log.unlogged,
            "TLS handshake failed: {detail}; {}",
            failure.hint()
        );
        log.logged_at = Some(now);
        log.unlogged = 0;
    }
}

/// Sends handshake records (a flight, session tickets) after any the kernel refused before;
/// what it refuses now waits in the session too.
fn send_in_order(
    fd: RawFd,
    session: &mut TlsSession,
    bytes: &[u8],
    stats: &crate::stats::CoreStats,
) {
    if bytes.is_empty() {
        return;
    }
    if !session.unsent().is_empty() {
        return session.keep_unsent(bytes);
    }
    match sys::send(fd, bytes) {
        IoResult::Done(n) => {
            stats.socket_bytes_sent.add(n as u64);
            session.keep_unsent(&bytes[n..]);
        }
        IoResult::WouldBlock => session.keep_unsent(bytes),
        // The peer is gone: the next read sees it.
        IoResult::Eof | IoResult::Failed(_) => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn gather_joins_the_head_to_the_body_and_borrows_what_lies_in_the_body() {
        let mut buf = [0u8; 8];
        assert_eq!(gather(b"ab", b"cdef", 0, 4, &mut buf), b"abcd");
        assert_eq!(gather(b"ab", b"cdef", 1, 3, &mut buf), b"bcd");
        assert_eq!(gather(b"ab", b"cdef", 3, 3, &mut buf), b"def");
        assert_eq!(gather(b"", b"cdef", 0, 4, &mut buf), b"cdef");
    }

    #[test]
    fn the_plain_http_answer_says_its_length() {
        let text = std::str::from_utf8(PLAIN_HTTP_ANSWER).unwrap();
        let (head, body) = text.split_once("\r\n\r\n").unwrap();
        assert!(head.contains(&format!("Content-Length: {}", body.len())));
    }
}
