//! The drain, one core's share of it. On stop, `/readyz` answers 503 at once (the admin side
//! reads the stop flag itself); the listeners keep accepting for `drain_delay`, so load
//! balancers see the 503 before connections are refused; then they close, and the open
//! connections are sent close 1001 in even batches over `drain_spread`, so their reconnects do
//! not all land on the other nodes in the same second. `drain_timeout`, counted from the stop,
//! bounds the whole: whatever is left then is reset. Every core runs its own schedule over its
//! own connections from the same stop, so the server's closes are spread evenly too.

use super::event_loop::Reactor;
use crate::app::App;
use crate::protocol::connection::{reached, Phase, Tick};

/// When one core's drain does what, in ticks (pure, so it is tested without a clock).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct DrainSchedule {
    /// The listeners close and the first 1001s go out.
    pub closes_at: Tick,
    /// Closes are spread over this many ticks after `closes_at` (0: all at once).
    pub spread_ticks: u32,
    /// Whatever is still open is reset.
    pub deadline: Tick,
}

impl DrainSchedule {
    /// `stop` is the tick the stop was seen in; the stop itself came somewhere in that tick, so
    /// a delay is counted from the tick's end: the listeners never close before `drain_delay`.
    pub fn new(stop: Tick, delay_ticks: u32, spread_ticks: u32, timeout_ticks: u32) -> Self {
        let delay_ticks = if delay_ticks == 0 { 0 } else { delay_ticks + 1 };
        DrainSchedule {
            closes_at: stop.wrapping_add(delay_ticks),
            spread_ticks,
            deadline: stop.wrapping_add(timeout_ticks),
        }
    }

    /// How many of `total` connections are due their 1001 at `now`: connection `i` (from 0) is
    /// due `i × spread / total` ticks after `closes_at`, so the batches are even, the first goes
    /// out at `closes_at` and the last before `closes_at + spread`.
    pub fn due(&self, total: usize, now: Tick) -> usize {
        if !reached(self.closes_at, now) {
            return 0;
        }
        if self.spread_ticks == 0 {
            return total;
        }
        let elapsed = u64::from(now.wrapping_sub(self.closes_at)) + 1;
        let due = (elapsed * total as u64).div_ceil(u64::from(self.spread_ticks));
        due.min(total as u64) as usize
    }
}

/// A core's drain in progress.
pub struct Drain {
    pub schedule: DrainSchedule,
    /// The connections to send 1001 (slot key, full generation), taken when the listeners
    /// close; `None` before.
    pending: Option<Vec<(u32, u32)>>,
    /// How many of `pending` are done (sent their 1001, or gone by then).
    done: usize,
}

impl Drain {
    pub fn new(schedule: DrainSchedule) -> Drain {
        Drain {
            schedule,
            pending: None,
            done: 0,
        }
    }
}

impl<A: App> Reactor<A> {
    /// The stop flag was seen: start this core's drain. The listeners stay open until
    /// `drain_delay` has passed (at once when it is 0, in [`Reactor::advance_drain`]).
    pub(super) fn begin_drain(&mut self) {
        let io = &mut self.io;
        let s = &io.settings;
        let schedule = DrainSchedule::new(
            io.now_tick,
            s.drain_delay_ticks,
            s.drain_spread_ticks,
            s.drain_timeout_ticks,
        );
        tracing::debug!(core = io.core, connections = io.conns.len(), "draining");
        io.stats.draining.set(1);
        self.drain = Some(Drain::new(schedule));
        self.advance_drain();
    }

    /// One loop pass of the drain: close the listeners when `drain_delay` has passed, then send
    /// 1001 to the connections now due.
    pub(super) fn advance_drain(&mut self) {
        let Some(drain) = self.drain.as_mut() else {
            return;
        };
        let io = &mut self.io;
        let now = io.now_tick;
        if drain.pending.is_none() {
            if !reached(drain.schedule.closes_at, now) {
                return;
            }
            // The listeners close (a new process on the same port takes the new connections);
            // from here every connection that upgrades is told at once (`inbound`).
            self.accept.close(&mut io.ring);
            if let Some(tls_accept) = self.tls_accept.as_mut() {
                tls_accept.close(&mut io.ring);
            }
            io.drain_deadline = Some(drain.schedule.deadline);
            let keys = io.conns.iter().map(|(k, s)| (k as u32, s.generation));
            drain.pending = Some(keys.collect());
            // The cancel of the accepts goes to the kernel at this pass's submit, and until it
            // is done the listening socket still completes handshakes. Writes go out at once;
            // the first 1001 waits for the next pass, so a client that reconnects on it never
            // lands on this node's closing listener.
            return;
        }
        let pending = drain.pending.as_deref().unwrap_or_default();
        let due = drain.schedule.due(pending.len(), now);
        let deadline = drain.schedule.deadline;
        let mut sent = false;
        for &(key, generation) in &pending[drain.done..due] {
            let Some(slot) = io.conns.get(key as usize) else {
                continue;
            };
            if slot.generation != generation {
                continue; // gone; the slot holds a newer connection, told when it upgrades
            }
            if slot.conn.phase() == Phase::Open {
                io.stats.drain_closes.inc();
            }
            io.with_conn(key, |conn, cfg, now, out| {
                conn.shut_down(now, deadline, cfg, out)
            });
            sent = true;
        }
        drain.done = due.max(drain.done);
        io.stats
            .drain_pending
            .set((pending.len() - drain.done) as u64);
        if sent {
            self.end_pass();
        }
    }

    /// The drain timeout passed: reset whatever is left.
    pub(super) fn force_release_all(&mut self) {
        let keys: Vec<u32> = self.io.conns.iter().map(|(k, _)| k as u32).collect();
        for key in keys {
            self.io.stats.drained_forced.inc();
            self.io.with_conn(key, |conn, _, _, out| conn.abandon(out));
        }
        self.end_pass();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn without_spread_everything_is_due_when_the_listeners_close() {
        // The stop came during tick 100: 20 ticks of delay are counted from its end.
        let s = DrainSchedule::new(100, 20, 0, 50);
        assert_eq!((s.closes_at, s.deadline), (121, 150));
        assert_eq!(s.due(1000, 120), 0, "nothing before drain_delay");
        assert_eq!(s.due(1000, 121), 1000);
        let at_once = DrainSchedule::new(100, 0, 0, 50);
        assert_eq!(at_once.due(7, 100), 7);
    }

    #[test]
    fn closes_are_spread_in_even_batches_over_the_spread() {
        // 1000 connections over 100 ticks (10 s): 10 a tick, the first batch at once, the last
        // one tick before the spread ends.
        let s = DrainSchedule::new(0, 0, 100, 200);
        let mut last = 0;
        for tick in 0..100 {
            let due = s.due(1000, tick);
            assert_eq!(due - last, 10, "tick {tick}");
            last = due;
        }
        assert_eq!(s.due(1000, 99), 1000);
        assert_eq!(s.due(1000, 150), 1000, "never more than there are");
        // Fewer connections than ticks: one every few ticks, never two in a tick.
        let batches: Vec<usize> = (0..100).map(|t| s.due(7, t)).collect();
        assert_eq!(batches[0], 1);
        assert!(batches.windows(2).all(|w| w[1] - w[0] <= 1));
        assert_eq!(batches[99], 7);
        assert_eq!(s.due(0, 50), 0);
    }

    #[test]
    fn the_schedule_survives_the_tick_counter_wrapping() {
        let s = DrainSchedule::new(u32::MAX - 5, 3, 10, 40);
        assert_eq!(s.due(100, u32::MAX - 2), 0);
        assert_eq!(s.due(100, u32::MAX - 1), 10);
        assert_eq!(s.due(100, 7), 100);
    }
}
