//! The receiving side of a worker's connections: the server's 101, then its frames (echoes,
//! pongs, the close handshake), and the end of stream.

use super::{Mode, Worker};
use crate::bench::cause::Cause;
use crate::bench::conn::{build_deflate_frame, build_frame, ConnState};
use crate::bench::receiver::RxEvent;
use crate::bench::shared::Stage;
use crate::protocol::client_handshake::{
    check_upgrade, deflate_answer, parse_response, response_status,
};
use crate::protocol::deflate::{Answer, CLIENT_OFFER};
use crate::protocol::frame::Opcode;

/// The server's answer to the upgrade so far: `Ok(None)`, read more; `Ok(Some((head_len,
/// deflate)))`, a valid 101 (bytes after `head_len` are frames) and its permessage-deflate
/// answer; `Err`, fail the connection with this cause. `deflate`: permessage-deflate was offered,
/// and the server must accept it.
fn upgrade_verdict(
    bytes: &[u8],
    accept: &[u8; 28],
    deflate: bool,
) -> Result<Option<(usize, Option<Answer>)>, Cause> {
    let Some(response) = parse_response(bytes)? else {
        return Ok(None);
    };
    // The generator offers no subprotocol, and no extension but permessage-deflate.
    let offered: &[&str] = if deflate {
        &["permessage-deflate"]
    } else {
        &[]
    };
    let head_len = check_upgrade(&response, accept, &[], offered)?.head_len;
    if !deflate {
        return Ok(Some((head_len, None)));
    }
    match deflate_answer(&response, CLIENT_OFFER)? {
        Some(answer) => Ok(Some((head_len, Some(answer)))),
        None => Err(Cause::DeflateDeclined),
    }
}

impl Worker<'_> {
    /// Handles bytes read; returns false when the connection is gone.
    pub(super) fn on_bytes(&mut self, token: u64, data: &mut [u8], now: u64) -> bool {
        let Some(conn) = self.slots.get(token) else {
            return false;
        };
        match conn.state {
            ConnState::Connecting => true,
            ConnState::Handshaking => self.on_response_bytes(token, data, now),
            ConnState::Open | ConnState::Closing | ConnState::Draining => {
                self.on_frames(token, data, now)
            }
        }
    }

    fn on_response_bytes(&mut self, token: u64, data: &mut [u8], now: u64) -> bool {
        let deflate = self.plan.deflate;
        let Some(conn) = self.slots.get(token) else {
            return false;
        };
        let carried = !conn.head.is_empty();
        let result = if carried {
            conn.head.extend_from_slice(data);
            upgrade_verdict(&conn.head, &conn.accept, deflate)
        } else {
            upgrade_verdict(data, &conn.accept, deflate)
        };
        match result {
            Ok(None) => {
                if !carried {
                    conn.head.extend_from_slice(data);
                }
                true
            }
            Err(cause) => {
                self.fail(token, cause);
                false
            }
            Ok(Some((head_len, deflate))) => {
                let mut head = std::mem::take(&mut conn.head);
                if !self.on_upgraded(token, now, deflate) {
                    return false;
                }
                let frames = if carried {
                    &mut head[head_len..]
                } else {
                    &mut data[head_len..]
                };
                frames.is_empty() || self.on_frames(token, frames, now)
            }
        }
    }

    /// The 101 checked out, with `deflate` negotiated or not. Returns false when the connection
    /// is gone.
    fn on_upgraded(&mut self, token: u64, now: u64, deflate: Option<Answer>) -> bool {
        let measuring = self.stage == Stage::Measure;
        let mode = self.plan.mode;
        let Some(conn) = self.slots.get(token) else {
            return false;
        };
        conn.upgraded = true;
        conn.state = ConnState::Open;
        // With --deflate, every connection that got here negotiated it (else it failed).
        conn.rx.set_deflate(deflate.is_some());
        self.stats.deflate_negotiated += u64::from(deflate.is_some());
        conn.deadline_ns = 0;
        let handshake_ns = now.saturating_sub(conn.connect_start_ns);
        self.pending -= 1;
        self.open += 1;
        self.stats.handshakes += 1;
        if mode == Mode::Idle || (mode == Mode::Connect && measuring) {
            self.stats.latency_ns.record(handshake_ns);
        }
        if measuring {
            self.stats.handshakes_measured += 1;
        }
        let resumed = conn.tls.as_ref().and_then(|tls| tls.handshake_kind())
            == Some(rustls::HandshakeKind::Resumed);
        if resumed && (measuring || mode != Mode::Connect) {
            self.stats.tls_resumed += 1;
        }
        if self.stopping || mode == Mode::Connect {
            return self.begin_close(token, now);
        }
        if let Mode::Echo { paced } = mode {
            let conn = self.slots.get(token).expect("present above");
            // Compressed once per connection: every echo sends the same message. Uncompressed
            // when the server limited the client's window below the message's length.
            let payload = &self.plan.payload;
            conn.frame = match deflate {
                Some(answer) if answer.client_may_compress(payload.len()) => {
                    build_deflate_frame(payload, self.plan.opcode, conn.mask)
                }
                _ => build_frame(payload, self.plan.opcode, conn.mask),
            };
            if let Some(pacer) = self.pacer.as_mut() {
                debug_assert!(paced);
                conn.rate_index = pacer.tokens.len() as u32;
                pacer.tokens.push(token);
            } else {
                conn.sent = 1;
                conn.frames_due = 1;
                conn.sent_ns = now;
                conn.deadline_ns = now + self.plan.timeout_ns;
                return self.flush(token);
            }
        }
        true
    }

    pub(super) fn begin_close(&mut self, token: u64, now: u64) -> bool {
        let Some(conn) = self.slots.get(token) else {
            return false;
        };
        conn.queue_close();
        conn.state = ConnState::Closing;
        conn.deadline_ns = now + self.plan.close_timeout_ns;
        self.flush(token)
    }

    fn on_frames(&mut self, token: u64, data: &mut [u8], now: u64) -> bool {
        let plan = self.plan;
        let mut pos = 0;
        loop {
            let Some(conn) = self.slots.get(token) else {
                return false;
            };
            let event = match conn.rx.next(data, &mut pos) {
                Ok(None) => break,
                Ok(Some(event)) => RxEvent::from_event(event, &plan.payload, plan.opcode),
                Err(_) => {
                    self.fail(token, Cause::BadFrame);
                    return false;
                }
            };
            if !self.on_rx_event(token, event, now) {
                return false;
            }
        }
        // One write for everything the bytes triggered (next echo, pongs, close reply).
        let Some(conn) = self.slots.get(token) else {
            return false;
        };
        !conn.wants_write() || self.flush(token)
    }

    fn on_rx_event(&mut self, token: u64, event: RxEvent, now: u64) -> bool {
        let stopping = self.stopping;
        let measuring = self.stage == Stage::Measure;
        let mode = self.plan.mode;
        let timeout_ns = self.plan.timeout_ns;
        let close_timeout_ns = self.plan.close_timeout_ns;
        let Some(conn) = self.slots.get(token) else {
            return false;
        };
        match event {
            RxEvent::Message { .. } if conn.state != ConnState::Open => {}
            RxEvent::Message { matches } => {
                let Mode::Echo { paced } = mode else {
                    self.stats.errors.add(Cause::UnexpectedMessage);
                    return true;
                };
                conn.received += 1;
                self.progress_messages += 1;
                let latency_ns = match (&self.pacer, paced) {
                    (Some(pacer), true) => {
                        now.saturating_sub(pacer.intended_ns(conn.rate_index, conn.received - 1))
                    }
                    _ => now.saturating_sub(conn.sent_ns),
                };
                if paced {
                    conn.deadline_ns = if conn.received < conn.sent {
                        now + timeout_ns
                    } else {
                        0
                    };
                } else if !stopping {
                    conn.sent += 1;
                    conn.frames_due += 1;
                    conn.sent_ns = now;
                    conn.deadline_ns = now + timeout_ns;
                }
                if !matches {
                    self.stats.errors.add(Cause::EchoMismatch);
                } else if measuring {
                    self.stats.messages += 1;
                    self.stats.latency_ns.record(latency_ns);
                }
            }
            RxEvent::Ping { payload, len } => {
                if conn.state == ConnState::Open {
                    conn.queue_control(Opcode::Pong, &payload[..usize::from(len)]);
                }
            }
            RxEvent::Pong => {}
            RxEvent::Close(code) => match conn.state {
                ConnState::Open => {
                    // The server closed on its own: answer, then wait for its TCP close.
                    conn.queue_close();
                    conn.state = ConnState::Draining;
                    conn.deadline_ns = now + close_timeout_ns;
                    self.stats
                        .errors
                        .add(Cause::ServerClose(code.unwrap_or(1005)));
                }
                ConnState::Closing => {
                    conn.state = ConnState::Draining;
                    conn.deadline_ns = now + close_timeout_ns;
                }
                _ => {}
            },
        }
        true
    }

    pub(super) fn on_eof(&mut self, token: u64) {
        let Some(conn) = self.slots.get(token) else {
            return;
        };
        match conn.state {
            // The normal end: close frames exchanged, then the server closed TCP.
            ConnState::Draining => self.drop_conn(token),
            ConnState::Handshaking => {
                let cause = response_status(&conn.head).map_or(Cause::Eof, Cause::HttpStatus);
                self.fail(token, cause);
            }
            _ => self.fail(token, Cause::Eof),
        }
    }
}
