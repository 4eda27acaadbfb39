//! Deadlines: the timer wheel hands expired slots to their connections, which decide what the
//! deadline meant (the drain is in [`drain`](super::drain)).

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
}
