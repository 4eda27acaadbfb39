//! A worker's wss:// connections: socket bytes through the connection's rustls session into
//! the same receiving side as ws://, and queued bytes out through it.

use std::io::{ErrorKind, Read as _, Write as _};
use std::os::fd::{AsRawFd, RawFd};

use rustls::ClientConnection;

use super::Worker;
use crate::bench::cause::{io_cause, Cause, TlsCause};
use crate::bench::conn::Conn;
use crate::bench::tls::SocketWriter;

impl Worker<'_> {
    /// Handles bytes read from a wss:// socket; returns false when the connection is gone.
    pub(super) fn on_tls_bytes(&mut self, token: u64, data: &[u8], now: u64) -> bool {
        // Moved out for the duration, like the receive buffer, so it can be lent to on_bytes.
        let mut plaintext = std::mem::take(&mut self.plaintext);
        let alive = self.decrypt(token, data, &mut plaintext, now);
        self.plaintext = plaintext;
        alive
    }

    fn decrypt(&mut self, token: u64, mut data: &[u8], plaintext: &mut [u8], now: u64) -> bool {
        while !data.is_empty() {
            let Some(conn) = self.slots.get(token) else {
                return false;
            };
            let fd = conn.socket.as_raw_fd();
            let tls = conn.tls.as_deref_mut().expect("a wss:// connection");
            // From a slice this fails only when rustls holds a whole unprocessed record, which
            // processing every read prevents.
            if tls.read_tls(&mut data).is_err() {
                self.fail(token, Cause::Tls(TlsCause::Protocol));
                return false;
            }
            if let Err(err) = tls.process_new_packets() {
                // Send the alert rustls queued, so the server can log why.
                let _ = tls.write_tls(&mut SocketWriter(fd));
                self.fail_tls(token, &err);
                return false;
            }
            loop {
                let Some(conn) = self.slots.get(token) else {
                    return false;
                };
                let tls = conn.tls.as_deref_mut().expect("a wss:// connection");
                match tls.reader().read(plaintext) {
                    Ok(0) => break, // the server's close_notify; its TCP close follows
                    Ok(n) => {
                        if !self.on_bytes(token, &mut plaintext[..n], now) {
                            return false;
                        }
                    }
                    Err(_) => break, // WouldBlock: every decrypted byte taken
                }
            }
        }
        // Handshake records, or the request the finished handshake released, may wait to go.
        self.flush(token)
    }

    /// `flush` for a wss:// connection: queued bytes into the session, records onto the socket.
    pub(super) fn flush_tls(&mut self, token: u64) -> bool {
        let Some(conn) = self.slots.get(token) else {
            return false;
        };
        let fd = conn.socket.as_raw_fd();
        let mut tls = conn.tls.take().expect("a wss:// connection");
        let result = push(conn, &mut tls, fd);
        conn.tls = Some(tls);
        match result {
            Ok(()) => true,
            Err(errno) => {
                self.fail(token, io_cause(errno));
                false
            }
        }
    }

    /// Counts a TLS failure by cause (explaining the run's first one) and drops the connection.
    pub(super) fn fail_tls(&mut self, token: u64, err: &rustls::Error) {
        if let Some(tls) = &self.plan.tls {
            tls.explain_once(err);
        }
        self.fail(token, Cause::Tls(TlsCause::from(err)));
    }
}

/// Writes the session's records until none are left or the socket is full, feeding it the
/// connection's queued bytes in between. Err: the errno that failed the write.
fn push(conn: &mut Conn, tls: &mut ClientConnection, fd: RawFd) -> Result<(), i32> {
    loop {
        while tls.wants_write() {
            match tls.write_tls(&mut SocketWriter(fd)) {
                Ok(_) => {}
                Err(err) if err.kind() == ErrorKind::WouldBlock => {
                    conn.write_blocked = true;
                    return Ok(());
                }
                Err(err) => return Err(err.raw_os_error().unwrap_or(0)),
            }
        }
        let Some((bytes, is_frame)) = conn.next_bytes() else {
            return Ok(());
        };
        // Before the handshake ends rustls holds plaintext up to its buffer limit; 0 means
        // full, and the handshake's progress on a later read sends it.
        let n = tls.writer().write(bytes).unwrap_or(0);
        if n == 0 {
            return Ok(());
        }
        conn.advance(n, is_frame);
    }
}
