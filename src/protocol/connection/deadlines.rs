//! A connection's deadlines: the next one, and what each means when it comes.

use super::*;

impl Connection {
    /// When [`Connection::handle_timeout`] must next be called; `None` once released.
    pub fn next_deadline(&self, cfg: &Settings, jitter_ticks: u32) -> Option<Tick> {
        match self.phase {
            Phase::Handshake => Some(self.rx_tick.wrapping_add(cfg.handshake_timeout_ticks)),
            Phase::Closing | Phase::Lingering => Some(self.mark_tick),
            Phase::Open => Some(self.open_deadline(cfg, jitter_ticks)),
            Phase::Released => None,
        }
    }

    /// The earliest of an open connection's heartbeat, idle and write-stall deadlines.
    pub(super) fn open_deadline(&self, cfg: &Settings, jitter_ticks: u32) -> Tick {
        let mut d = if self.has(flag::AWAITING_PONG) {
            self.rx_tick
                .wrapping_add(cfg.ping_interval_ticks + cfg.pong_timeout_ticks)
        } else {
            self.rx_tick
                .wrapping_add(cfg.ping_interval_ticks - jitter_ticks)
        };
        if let Some(idle) = cfg.idle_timeout_ticks {
            d = earliest(d, self.mark_tick.wrapping_add(idle));
        }
        if let Some(deadline) = self.send_deadline(cfg) {
            d = earliest(d, deadline);
        }
        if let Some(deadline) = self.receive_deadline(cfg) {
            d = earliest(d, deadline);
        }
        d
    }

    /// When a backed-up queue is next judged for draining (see [`Progress`]).
    pub(super) fn send_deadline(&self, cfg: &Settings) -> Option<Tick> {
        let o = self.outbound().filter(|o| !o.is_empty())?;
        Some(o.progress.deadline(cfg.write_stall_timeout_ticks))
    }

    /// When the input in progress is next judged (see [`Progress`]).
    pub(super) fn receive_deadline(&self, cfg: &Settings) -> Option<Tick> {
        let input = self.extra.as_ref()?.input?;
        Some(input.deadline(cfg.message_timeout_ticks))
    }

    /// The queue's deadline came: true when it drains too slowly.
    pub(super) fn judge_output(&mut self, now: Tick, cfg: &Settings) -> bool {
        let Some(e) = self.extra.as_mut() else {
            return false;
        };
        let o = &mut e.outbound;
        let (timeout, rate) = (cfg.write_stall_timeout_ticks, cfg.min_send_bytes_per_tick);
        let verdict = o.progress.judge(now, o.sent_bytes, timeout, rate);
        self.flags |= fx::DEADLINE;
        verdict == Verdict::TooSlow
    }

    /// The input's deadline came: true when it arrives too slowly. Only the message's own bytes
    /// count: pings in between are not progress.
    pub(super) fn judge_input(&mut self, now: Tick, cfg: &Settings) -> bool {
        let Some(e) = self.extra.as_mut() else {
            return false;
        };
        let held = (e.reader.buffered_bytes() + e.pending.len()) as u64;
        let (timeout, rate) = (cfg.message_timeout_ticks, cfg.min_receive_bytes_per_tick);
        let Some(input) = e.input.as_mut() else {
            return false;
        };
        let verdict = input.judge(now, held, timeout, rate);
        self.flags |= fx::DEADLINE;
        verdict == Verdict::TooSlow
    }

    /// The deadline came (or a stale one fired early: then it is only re-armed).
    pub fn handle_timeout(
        &mut self,
        now: Tick,
        cfg: &Settings,
        jitter_ticks: u32,
        out: &mut impl Output,
    ) {
        let Some(deadline) = self.next_deadline(cfg, jitter_ticks) else {
            return;
        };
        if !reached(deadline, now) {
            self.flags |= fx::DEADLINE;
            return;
        }
        match self.phase {
            Phase::Handshake => {
                out.note(Note::HandshakeTimeout);
                self.release(Initiator::Abnormal, ReleaseKind::Abortive, out);
            }
            Phase::Closing | Phase::Lingering => {
                out.note(Note::CloseTimeout);
                self.release(Initiator::Server, ReleaseKind::Abortive, out);
            }
            Phase::Open => self.open_timeout(now, cfg, jitter_ticks, out),
            Phase::Released => {}
        }
    }

    /// An open connection's deadline: write stall, heartbeat timeout, idle timeout, or ping.
    pub(super) fn open_timeout(
        &mut self,
        now: Tick,
        cfg: &Settings,
        jitter_ticks: u32,
        out: &mut impl Output,
    ) {
        if self.send_deadline(cfg).is_some_and(|d| reached(d, now)) && self.judge_output(now, cfg) {
            out.note(Note::WriteStall {
                queued_bytes: self.queued_bytes(),
            });
            return self.release(Initiator::Server, ReleaseKind::Abortive, out);
        }
        if self.receive_deadline(cfg).is_some_and(|d| reached(d, now)) && self.judge_input(now, cfg)
        {
            let e = self
                .extra
                .as_ref()
                .expect("input in progress lives in the extra state");
            out.note(Note::MessageTimeout {
                received_bytes: e.reader.buffered_bytes() + e.pending.len(),
            });
            let reason = "message not received in time (message_timeout, min_receive_rate)";
            return self.fail(now, cfg, CloseCode::POLICY_VIOLATION, reason, out);
        }
        let pong_deadline = self
            .rx_tick
            .wrapping_add(cfg.ping_interval_ticks + cfg.pong_timeout_ticks);
        if self.has(flag::AWAITING_PONG) && reached(pong_deadline, now) {
            out.note(Note::HeartbeatTimeout);
            let code = CloseCode::GOING_AWAY;
            if self.queued_bytes() == 0 {
                // Worth a try: the peer may only have lost its way back.
                self.write_close(Some(code), "heartbeat timeout", now, cfg, out);
            }
            self.close_code = code.0;
            return self.release(Initiator::Server, ReleaseKind::Abortive, out);
        }
        if cfg
            .idle_timeout_ticks
            .is_some_and(|idle| reached(self.mark_tick.wrapping_add(idle), now))
        {
            out.note(Note::IdleTimeout);
            return self.close(now, cfg, CloseCode::GOING_AWAY, "idle timeout", out);
        }
        let ping_due = self
            .rx_tick
            .wrapping_add(cfg.ping_interval_ticks - jitter_ticks);
        if !self.has(flag::AWAITING_PONG) && reached(ping_due, now) {
            out.note(Note::PingSent);
            self.write_frame(Opcode::Ping, b"", now, cfg, out);
            if self.phase != Phase::Open {
                return;
            }
            self.flags |= flag::AWAITING_PONG;
        }
        self.flags |= fx::DEADLINE;
    }
}
