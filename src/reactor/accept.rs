//! Accepting: one multishot ACCEPT per core, a slot and a sans-IO connection per socket, and a
//! back-off when the kernel refuses (EMFILE and friends) while existing connections are served.

use std::os::fd::RawFd;

use super::event_loop::{Reactor, TICK};
use super::listener::Listener;
use super::ring::{self, Completion, Op, Ring};
use crate::app::App;
use crate::protocol::connection::{reached, Connection, Tick};
use crate::reactor::conns::Slot;

/// Accept failures are logged at most once per this many ticks (5 s).
const ACCEPT_LOG_INTERVAL_TICKS: u32 = 50;
/// Back-off before accepting again after EMFILE/ENFILE/ENOMEM (1 s): fds free up as clients go.
const ACCEPT_BACKOFF_TICKS: u32 = 10;

/// The listener and what accepting remembers between completions.
pub struct AcceptState {
    /// `None` once the drain began (the listening socket is closed, so a new process on the
    /// same port takes the new connections).
    listener: Option<Listener>,
    /// Tick at which a stopped multishot accept is armed again (None: armed).
    rearm_at: Option<Tick>,
    errors_unlogged: u64,
    logged_at: Option<Tick>,
    /// The listener speaks TLS (`tls_listen`): its connections get a TLS session.
    tls: bool,
}

impl AcceptState {
    pub fn new(listener: Listener, tls: bool) -> AcceptState {
        AcceptState {
            listener: Some(listener),
            rearm_at: None,
            errors_unlogged: 0,
            logged_at: None,
            tls,
        }
    }

    /// The ring token of this listener's accepts: key 0 for `listen`, 1 for `tls_listen`.
    fn token(&self) -> u64 {
        ring::token(Op::Accept, u32::from(self.tls), 0)
    }

    pub fn arm(&self, ring: &mut Ring) {
        if let Some(listener) = &self.listener {
            ring.push(ring::accept_multishot(listener.fd(), self.token()));
        }
    }

    pub fn rearm_if_due(&mut self, ring: &mut Ring, now: Tick) {
        if self.rearm_at.is_some_and(|at| reached(at, now)) {
            self.rearm_at = None;
            self.arm(ring);
        }
    }

    /// Stops accepting: cancels the accept and closes the listening socket.
    pub fn close(&mut self, ring: &mut Ring) {
        ring.push(ring::cancel(self.token()));
        self.rearm_at = None;
        self.listener = None;
    }
}

impl<A: App> Reactor<A> {
    /// The accept state of the listener a completion names (key 1: the TLS listener).
    fn acceptor(&mut self, tls: bool) -> Option<&mut AcceptState> {
        if tls {
            self.tls_accept.as_mut()
        } else {
            Some(&mut self.accept)
        }
    }

    pub(super) fn on_accept(&mut self, c: Completion, tls: bool) {
        let now = self.io.now_tick;
        let Some(state) = self.acceptor(tls) else {
            return;
        };
        if c.result == -libc::ECANCELED && state.listener.is_none() {
            return; // our own cancel at the start of the drain
        }
        if c.result < 0 {
            self.accept_failed(-c.result, tls);
        } else {
            self.add_connection(c.result as RawFd, tls);
        }
        let Some(state) = self.acceptor(tls) else {
            return;
        };
        if !c.more() && state.listener.is_some() {
            // Multishot accept stops on errors such as EMFILE: back off, keep serving.
            let backoff = if c.result < 0 {
                ACCEPT_BACKOFF_TICKS
            } else {
                1
            };
            state.rearm_at = Some(now.wrapping_add(backoff));
        }
    }

    fn accept_failed(&mut self, errno: i32, tls: bool) {
        self.io.stats.accept_error(errno);
        let core = self.io.core;
        let now = self.io.now_tick;
        let Some(state) = self.acceptor(tls) else {
            return;
        };
        state.errors_unlogged += 1;
        let due = state
            .logged_at
            .is_none_or(|at| reached(at.wrapping_add(ACCEPT_LOG_INTERVAL_TICKS), now));
        if !due {
            return;
        }
        tracing::warn!(
            core,
            errors = state.errors_unlogged,
            "accept failed: {}; existing connections are still served, accepting again in {} ms{}",
            std::io::Error::from_raw_os_error(errno),
            ACCEPT_BACKOFF_TICKS * TICK.as_millis() as u32,
            if errno == libc::EMFILE || errno == libc::ENFILE {
                " (the open-file limit is reached: see `ringws check`)"
            } else {
                ""
            }
        );
        state.logged_at = Some(now);
        state.errors_unlogged = 0;
    }

    /// A new socket: a slot (and a TLS session from the TLS listener), a multishot poll for
    /// its input, and a handshake deadline.
    fn add_connection(&mut self, fd: RawFd, tls: bool) {
        if self.io.drain_deadline.is_some() {
            // Accepted just before the listener closed: let it upgrade, then say goodbye.
            tracing::debug!(core = self.io.core, "accepted during drain");
        }
        self.io.stats.accepted.inc();
        let session = match (tls, self.core_tls.as_mut()) {
            (true, Some(core_tls)) => match core_tls.session() {
                Ok(session) => Some(Box::new(session)),
                Err(e) => {
                    tracing::warn!(core = self.io.core, "TLS session not created: {e}");
                    crate::sys::socket::close(fd);
                    return;
                }
            },
            _ => None,
        };
        let generation = self.next_generation;
        self.next_generation = generation.wrapping_add(1);
        let conn = Connection::server(self.io.now_tick, self.now_us());
        let key = self.io.conns.insert(Slot {
            fd,
            generation,
            conn,
        }) as u32;
        if let Some(session) = session {
            let tls = &mut self.io.tls;
            if tls.len() <= key as usize {
                tls.resize_with(key as usize + 1, || None);
            }
            tls[key as usize] = Some(session);
        }
        self.io.ring.push(ring::poll_readable(
            fd,
            ring::token(Op::Readable, key, generation),
        ));
        self.io.settle(key); // arms the handshake deadline
    }
}
