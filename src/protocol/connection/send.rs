//! The outbound half: frames out to the transport, queueing what it refuses, control frames
//! ahead of data, the slow-consumer cap, and failing a connection with a close frame.

use super::*;
use crate::protocol::deflate::codec;
use crate::protocol::frame::RSV1_BIT;

impl Connection {
    /// The transport can take bytes again: send what is queued.
    pub fn on_writable(&mut self, out: &mut impl Output) {
        self.flags &= !flag::WRITE_WAIT;
        if self.phase == Phase::Released {
            return;
        }
        let Some(extra) = self.extra.as_mut() else {
            return;
        };
        let queue = &mut extra.outbound;
        while !queue.is_empty() {
            match out.transmit(queue.unsent(), &[]) {
                Ok(0) => {
                    self.flags |= flag::WRITE_WAIT | fx::WANT_WRITABLE;
                    return self.account(out);
                }
                Ok(n) => {
                    queue.consume(n);
                    out.note(Note::Dequeued(n));
                }
                Err(TransportError) => return self.transport_failed(out),
            }
        }
        out.note(Note::QueueEnded);
        self.shrink(out);
        if self.has(flag::RELEASE_AFTER_FLUSH) {
            return self.release(Initiator::Server, ReleaseKind::Graceful, out);
        }
        if self.has(flag::SHUTDOWN_AFTER_FLUSH) {
            self.flags = (self.flags & !flag::SHUTDOWN_AFTER_FLUSH) | fx::SHUTDOWN_WRITE;
        }
    }

    /// The app sends a message. False when the connection is not open.
    pub fn send(
        &mut self,
        now: Tick,
        cfg: &Settings,
        kind: MessageKind,
        payload: &[u8],
        out: &mut impl Output,
    ) -> bool {
        if self.phase != Phase::Open {
            return false;
        }
        if self.deflate.compresses(&cfg.compression, payload.len()) {
            // Compressed with the core's compressor into its scratch buffer, written from there.
            let level = cfg.compression.level;
            codec::with_compressed(payload, level, |compressed| match compressed {
                Some(compressed) => {
                    out.note(Note::Compressed {
                        sent: true,
                        compressed: compressed.len(),
                        uncompressed: payload.len(),
                    });
                    self.write_data(kind.opcode(), compressed, true, now, cfg, out);
                }
                None => self.write_data(kind.opcode(), payload, false, now, cfg, out),
            });
            return true;
        }
        self.write_frame(kind.opcode(), payload, now, cfg, out);
        true
    }

    /// The app sends a server frame encoded once for many connections (fan-out).
    pub fn send_encoded(
        &mut self,
        now: Tick,
        cfg: &Settings,
        frame: &[u8],
        out: &mut impl Output,
    ) -> bool {
        if self.phase != Phase::Open {
            return false;
        }
        assert_eq!(self.role(), Role::Server, "encoded frames are unmasked");
        let queued = self.outbound().map_or(0, Outbound::data_len);
        if queued > 0 && queued + frame.len() > cfg.max_outbound_bytes {
            self.slow_consumer(now, cfg, out);
        } else {
            self.write_raw(frame, &[], now, out);
        }
        true
    }

    /// Fails the connection: close frame with `code`, then linger.
    pub(super) fn fail(
        &mut self,
        now: Tick,
        cfg: &Settings,
        code: CloseCode,
        reason: &str,
        out: &mut impl Output,
    ) {
        // Our close may be out already (closing): one close frame per connection.
        if self.phase != Phase::Closing {
            self.write_close(Some(code), reason, now, cfg, out);
        }
        if self.phase != Phase::Released {
            self.linger(now, Initiator::Server, cfg.close_timeout_ticks, out);
        }
    }

    pub(super) fn write_close(
        &mut self,
        code: Option<CloseCode>,
        reason: &str,
        now: Tick,
        cfg: &Settings,
        out: &mut impl Output,
    ) {
        let mut payload = [0u8; 125];
        let n = match code {
            Some(code) => encode_close_payload(&mut payload, code, reason),
            None => 0,
        };
        self.close_code = code.map_or(0, |c| c.0);
        self.write_frame(Opcode::Close, &payload[..n], now, cfg, out);
    }

    pub(super) fn write_frame(
        &mut self,
        opcode: Opcode,
        payload: &[u8],
        now: Tick,
        cfg: &Settings,
        out: &mut impl Output,
    ) {
        match opcode {
            // Pings and pongs never count against the cap, and go ahead of queued data at the
            // next frame boundary: a heartbeat must not make an honest reader a slow consumer.
            Opcode::Ping | Opcode::Pong if self.queued_bytes() > 0 => {
                let mut frame = [0u8; MAX_HEADER_LEN + 125];
                let n = self.encode_into(&mut frame, true, opcode, payload, out);
                let extra = self.extra_mut();
                let before = extra.outbound.len();
                extra
                    .outbound
                    .push_control(&frame[..n], opcode == Opcode::Pong);
                let after = extra.outbound.len();
                if after > before {
                    out.note(Note::Queued(after - before));
                } else if before > after {
                    out.note(Note::Dequeued(before - after));
                }
            }
            // One close per connection, behind what was queued: exempt from the cap too.
            Opcode::Ping | Opcode::Pong | Opcode::Close => {
                self.write_one(true, opcode, payload, false, now, out)
            }
            _ => self.write_data(opcode, payload, false, now, cfg, out),
        }
    }

    /// Writes a data message (`compressed`: its payload is compressed, so its first frame
    /// carries RSV1), unless the peer is a slow consumer.
    pub(super) fn write_data(
        &mut self,
        opcode: Opcode,
        payload: &[u8],
        compressed: bool,
        now: Tick,
        cfg: &Settings,
        out: &mut impl Output,
    ) {
        let queued = self.outbound().map_or(0, Outbound::data_len);
        if queued > 0 && queued + payload.len() > cfg.max_outbound_bytes {
            return self.slow_consumer(now, cfg, out);
        }
        if payload.len() <= OUTBOUND_FRAGMENT_BYTES {
            return self.write_one(true, opcode, payload, compressed, now, out);
        }
        // Large messages go out in fragments, so control frames find boundaries.
        let mut chunks = payload.chunks(OUTBOUND_FRAGMENT_BYTES).peekable();
        let mut frame_opcode = opcode;
        let mut rsv1 = compressed;
        while let Some(chunk) = chunks.next() {
            let fin = chunks.peek().is_none();
            self.write_one(fin, frame_opcode, chunk, rsv1, now, out);
            frame_opcode = Opcode::Continuation;
            rsv1 = false;
            if self.phase == Phase::Released {
                return;
            }
        }
    }

    /// Writes one frame: a server's header on the stack with the payload behind it, a client's
    /// masked into a fresh buffer (client frames are not on a server's hot path).
    pub(super) fn write_one(
        &mut self,
        fin: bool,
        opcode: Opcode,
        payload: &[u8],
        rsv1: bool,
        now: Tick,
        out: &mut impl Output,
    ) {
        let rsv1 = if rsv1 { RSV1_BIT } else { 0 };
        if self.role() == Role::Client {
            let mut frame = Vec::with_capacity(MAX_HEADER_LEN + payload.len());
            append_client_frame(&mut frame, fin, opcode, payload, out.mask_key());
            frame[0] |= rsv1;
            return self.write_raw(&frame, &[], now, out);
        }
        let mut header = [0u8; MAX_HEADER_LEN];
        let n = encode_server_header(&mut header, fin, opcode, payload.len() as u64);
        header[0] |= rsv1;
        self.write_raw(&header[..n], payload, now, out);
    }

    /// Encodes a whole control frame into `buf`; returns its length.
    pub(super) fn encode_into(
        &self,
        buf: &mut [u8; MAX_HEADER_LEN + 125],
        fin: bool,
        opcode: Opcode,
        payload: &[u8],
        out: &mut impl Output,
    ) -> usize {
        debug_assert!(opcode.is_control() && payload.len() <= 125);
        let mut header = [0u8; MAX_HEADER_LEN];
        let n = if self.role() == Role::Client {
            encode_client_header(
                &mut header,
                fin,
                opcode,
                payload.len() as u64,
                out.mask_key(),
            )
        } else {
            encode_server_header(&mut header, fin, opcode, payload.len() as u64)
        };
        buf[..n].copy_from_slice(&header[..n]);
        buf[n..n + payload.len()].copy_from_slice(payload);
        if self.role() == Role::Client {
            let mask = [header[n - 4], header[n - 3], header[n - 2], header[n - 1]];
            crate::protocol::mask::apply_mask(&mut buf[n..n + payload.len()], mask, 0);
        }
        n + payload.len()
    }

    /// The peer does not read: stop producing for it, queue a 1008 behind what it has not read,
    /// and give it the close timeout to take it.
    pub(super) fn slow_consumer(&mut self, now: Tick, cfg: &Settings, out: &mut impl Output) {
        out.note(Note::SlowConsumer {
            queued_bytes: self.queued_bytes(),
        });
        let code = CloseCode::POLICY_VIOLATION;
        let mut payload = [0u8; 125];
        let n = encode_close_payload(&mut payload, code, "slow consumer: outbound buffer full");
        let mut header = [0u8; MAX_HEADER_LEN];
        let h = encode_server_header(&mut header, true, Opcode::Close, n as u64);
        // Behind the queue, never around the cap: the close must follow what was sent.
        self.queue(&header[..h], &payload[..n], false, now, out);
        self.close_code = code.0;
        // Not released after the flush: the peer may still be sending, and closing a socket with
        // unread input resets it, destroying the 1008 before the peer reads it. Lingering shuts
        // our side down after the flush and discards input until EOF or the close timeout.
        self.linger(now, Initiator::Server, cfg.close_timeout_ticks, out);
    }

    /// Writes `a` then `b`, queueing whatever the transport does not take.
    pub(super) fn write_raw(&mut self, a: &[u8], b: &[u8], now: Tick, out: &mut impl Output) {
        if self.queued_bytes() > 0 {
            // Keep order behind bytes already waiting.
            return self.queue(a, b, false, now, out);
        }
        let total = a.len() + b.len();
        let sent = match out.transmit(a, b) {
            Ok(n) => n,
            Err(TransportError) => return self.transport_failed(out),
        };
        debug_assert!(sent <= total);
        if sent >= total {
            return;
        }
        // What is left of a frame partly sent: nothing may go out before its rest.
        let started = sent > 0;
        if sent < a.len() {
            self.queue(&a[sent..], b, started, now, out);
        } else {
            self.queue(&b[sent - a.len()..], &[], started, now, out);
        }
    }

    /// Queues one frame (or the rest of one, `partly_sent`).
    pub(super) fn queue(
        &mut self,
        a: &[u8],
        b: &[u8],
        partly_sent: bool,
        now: Tick,
        out: &mut impl Output,
    ) {
        let started = self.queued_bytes() == 0;
        let extra = self.extra_mut();
        extra.outbound.push(a, b, partly_sent);
        if started {
            out.note(Note::QueueStarted);
            extra.outbound.progress = Progress::average(now);
            extra.outbound.sent_bytes = 0;
            // The write-stall deadline may be earlier than the armed one.
            self.flags |= fx::DEADLINE;
        }
        out.note(Note::Queued(a.len() + b.len()));
        if !self.has(flag::WRITE_WAIT) {
            self.flags |= flag::WRITE_WAIT | fx::WANT_WRITABLE;
        }
        self.account(out);
    }

    pub(super) fn transport_failed(&mut self, out: &mut impl Output) {
        out.note(Note::TransportFailed);
        self.release(Initiator::Abnormal, ReleaseKind::Graceful, out);
    }
}
