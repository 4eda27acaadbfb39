//! Deadlines and the drain: the timer wheel hands expired slots to their connections, which
//! decide what the deadline meant; on stop, every open connection is asked to shut down, and
//! whatever is left at the drain deadline is reset.

use super::event_loop::Reactor;
use crate::app::App;

impl<A: App> Reactor<A> {
    pub(super) fn expire_timers(&mut self) {
        let mut expired = std::mem::take(&mut self.expired);
        self.io.wheel.advance(self.io.now_tick, &mut expired);
        for &key in &expired {
            if !self.io.conns.contains(key as usize) {
                continue;
            }
            let jitter = self.io.jitter(key);
            self.io.with_conn(key, |conn, cfg, now, out| {
                conn.handle_timeout(now, cfg, jitter, out)
            });
        }
        expired.clear();
        self.expired = expired;
    }

    /// Stop accepting (the listener closes, so a new process on the same port takes over), and
    /// ask every open connection to shut down (close 1001).
    pub(super) fn begin_drain(&mut self) {
        let io = &mut self.io;
        io.drain_deadline = Some(io.now_tick.wrapping_add(io.settings.drain_timeout_ticks));
        self.accept.close(&mut io.ring);
        if let Some(tls_accept) = self.tls_accept.as_mut() {
            tls_accept.close(&mut io.ring);
        }
        let keys: Vec<u32> = io.conns.iter().map(|(k, _)| k as u32).collect();
        tracing::debug!(core = io.core, connections = keys.len(), "draining");
        let deadline = io.drain_deadline.expect("set above");
        for key in keys {
            io.with_conn(key, |conn, cfg, now, out| {
                conn.shut_down(now, deadline, cfg, out)
            });
        }
        self.end_pass();
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
