//! The inbound half: received bytes into requests, messages and control frames, one event at
//! a time; the peer's close; the message rate limit.

use super::*;

impl Connection {
    /// Moves the inbound half out for the duration of a batch of [`Connection::receive`] calls,
    /// so the app may act on this connection while a message borrowed from it is delivered.
    /// Bytes carried over from the previous batch are copied to the start of `buf` (their
    /// count is returned); new bytes go after them. Give both back with
    /// [`Connection::end_receive`].
    pub fn begin_receive(&mut self, buf: &mut [u8]) -> (Reader, usize) {
        let idle = self.new_reader();
        let Some(extra) = self.extra.as_mut() else {
            return (idle, 0);
        };
        let n = extra.pending.len();
        assert!(n <= buf.len(), "carried input exceeds the receive buffer");
        buf[..n].copy_from_slice(&extra.pending);
        extra.pending.clear();
        (std::mem::replace(&mut extra.reader, idle), n)
    }

    /// Takes back the inbound half and the input not consumed (a partial header, control frame
    /// or request head: bounded by the reader and the handshake limit).
    pub fn end_receive(
        &mut self,
        now: Tick,
        mut reader: Reader,
        rest: &[u8],
        out: &mut impl Output,
    ) {
        if matches!(self.phase, Phase::Lingering | Phase::Released) {
            return self.shrink(out);
        }
        reader.settle();
        if rest.is_empty() && reader.is_idle() {
            if let Some(e) = self.extra.as_mut() {
                e.input = None;
            }
            return self.shrink(out); // idle again: no per-connection read state at all
        }
        let extra = self.extra_mut();
        extra.pending.extend_from_slice(rest);
        extra.reader = reader;
        if extra.input.is_none() {
            // Input in progress: its deadline may come before the armed one.
            extra.input = Some(Progress::windowed(now));
            self.flags |= fx::DEADLINE;
        }
        self.account(out);
    }

    /// Feeds received bytes: consumes input up to the next event for the driver.
    pub fn receive<'a>(
        &mut self,
        now: Tick,
        cfg: &Settings,
        reader: &'a mut Reader,
        input: &'a mut [u8],
        out: &mut impl Output,
    ) -> Input<'a> {
        if input.is_empty() {
            return Input {
                consumed: 0,
                event: None,
            };
        }
        match self.phase {
            Phase::Handshake if self.role() == Role::Client => Input {
                consumed: 0,
                event: Some(Received::Response(input)),
            },
            Phase::Handshake => self.receive_request(cfg, input),
            Phase::Open | Phase::Closing => {
                // Any bytes from the peer are life: no ping needed, and a ping is answered.
                self.rx_tick = now;
                if self.has(flag::AWAITING_PONG) {
                    // The armed deadline is the pong timeout; the next ping is due one interval
                    // from now.
                    self.flags = (self.flags & !flag::AWAITING_PONG) | fx::DEADLINE;
                }
                if self.deflate.is_on() && reader.is_idle() {
                    // The reader of the batch that held the 101 was made before deflate was
                    // negotiated, and a server's first frames often arrive with its 101.
                    *reader = std::mem::take(reader).with_deflate(true);
                }
                self.receive_frames(now, cfg, reader, input, out)
            }
            Phase::Lingering | Phase::Released => Input {
                consumed: input.len(),
                event: None,
            },
        }
    }

    pub(super) fn receive_request<'a>(&mut self, cfg: &Settings, input: &'a mut [u8]) -> Input<'a> {
        let input = &*input;
        match handshake::parse_request(input, &cfg.handshake) {
            Ok(Some(request)) => {
                let head_len = request.head_len;
                Input {
                    consumed: head_len,
                    event: Some(Received::Request(request, &input[..head_len])),
                }
            }
            Ok(None) => Input {
                consumed: 0,
                event: None,
            },
            Err(refusal) => Input {
                consumed: input.len(),
                event: Some(Received::BadRequest(refusal, input)),
            },
        }
    }

    pub(super) fn receive_frames<'a>(
        &mut self,
        now: Tick,
        cfg: &Settings,
        reader: &'a mut Reader,
        input: &'a mut [u8],
        out: &mut impl Output,
    ) -> Input<'a> {
        // Control frames and refused messages are handled here; the loop returns at the first
        // message for the app. Events are located first and borrowed only where used, so the
        // returned message can borrow `reader` and `input` for `'a`.
        let mut pos = 0;
        while self.is_upgraded() {
            let (n, at) = match reader.locate(&mut input[pos..], &cfg.limits) {
                Ok(found) => found,
                Err(err) => {
                    out.note(Note::ProtocolError(err));
                    self.fail(now, cfg, err.code, err.reason, out);
                    break;
                }
            };
            let Some(at) = at else {
                return Input {
                    consumed: pos + n,
                    event: None,
                };
            };
            let start = pos;
            pos += n;
            match at.what() {
                What::Message(_) => {
                    if self.admit_message(now, cfg, out) {
                        let Event::Message(kind, payload) = reader.event(at, &input[start..pos])
                        else {
                            unreachable!("located a message")
                        };
                        if let Some(compressed) = at.compressed_len() {
                            out.note(Note::Compressed {
                                sent: false,
                                compressed,
                                uncompressed: payload.len(),
                            });
                        }
                        return Input {
                            consumed: pos,
                            event: Some(Received::Message(kind, payload)),
                        };
                    }
                }
                What::Ping => {
                    if self.phase == Phase::Open {
                        if let Event::Ping(payload) = reader.event(at, &input[start..pos]) {
                            self.write_frame(Opcode::Pong, payload, now, cfg, out);
                        }
                    }
                }
                What::Pong => {}
                What::Close => {
                    let Event::Close { code, .. } = reader.event(at, &input[start..pos]) else {
                        unreachable!("located a close frame")
                    };
                    self.on_peer_close(now, cfg, code, out);
                }
            }
        }
        // No longer reading frames: the rest of the input is discarded.
        Input {
            consumed: input.len(),
            event: None,
        }
    }

    /// Counts a received application message against the idle timeout and the rate limit;
    /// false (and a 1008 close) when the rate is exceeded, or when not open.
    pub(super) fn admit_message(
        &mut self,
        now: Tick,
        cfg: &Settings,
        out: &mut impl Output,
    ) -> bool {
        if self.phase != Phase::Open {
            return false;
        }
        self.mark_tick = now;
        if cfg.message_rate_milli_per_tick == 0 {
            return true;
        }
        let burst = cfg.message_burst;
        let rate = cfg.message_rate_milli_per_tick;
        let extra = self.extra_mut();
        let bucket = extra
            .bucket
            .get_or_insert_with(|| TokenBucket::full(burst, now));
        if bucket.take(burst, rate, now) {
            if bucket.is_full(burst, rate, now) {
                extra.bucket = None;
            }
            return true;
        }
        out.note(Note::RateLimited);
        self.close(
            now,
            cfg,
            CloseCode::POLICY_VIOLATION,
            "message rate limit exceeded",
            out,
        );
        false
    }

    /// The peer sent a close frame.
    pub(super) fn on_peer_close(
        &mut self,
        now: Tick,
        cfg: &Settings,
        code: Option<CloseCode>,
        out: &mut impl Output,
    ) {
        let initiator = if self.phase == Phase::Open {
            // Echo the peer's code (RFC 6455 §5.5.1); the server then closes TCP first.
            self.write_close(code, "", now, cfg, out);
            self.close_code = code.map_or(0, |c| c.0);
            Initiator::Peer
        } else {
            out.note(Note::CloseAcknowledged);
            Initiator::Server
        };
        if self.phase == Phase::Released {
            return;
        }
        if self.queued_bytes() > 0 || self.role() == Role::Client {
            // Release once the close is out; a client waits for the server to close TCP.
            if self.role() == Role::Server {
                self.flags |= flag::RELEASE_AFTER_FLUSH;
            }
            self.linger(now, initiator, cfg.close_timeout_ticks, out);
        } else {
            self.release(initiator, ReleaseKind::Graceful, out);
        }
    }
}
