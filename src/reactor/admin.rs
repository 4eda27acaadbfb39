//! The admin listener's sockets, served by core 0's reactor: one request per connection,
//! answered from memory, written without blocking (a slow scraper gets a POLLOUT, not the core).
//!
//! Its slots are guarded so that `/healthz` stays answerable whatever other clients do: a request
//! head must arrive within [`ADMIN_HEADER_TIMEOUT`], one address holds at most
//! [`MAX_ADMIN_CONNECTIONS_PER_ADDRESS`] of the [`MAX_ADMIN_CONNECTIONS`] slots, and a newcomer
//! that finds no free slot takes the one of the oldest request still arriving (see [`admit`]).
//! When accept(2) fails (EMFILE, ENFILE, ENOMEM) accepting pauses for [`ADMIN_ACCEPT_BACKOFF`].

use std::cmp::Reverse;
use std::net::{IpAddr, Ipv4Addr};
use std::os::fd::RawFd;
use std::sync::Arc;
use std::time::{Duration, Instant};

use slab::Slab;

use super::listener::Listener;
use super::ring::{self, Op, Ring};
use crate::admin::routes::{self, Builtins};
use crate::admin::{self, AdminClose, AdminResponse, Parsed};
use crate::app::App;
use crate::metrics::Exporter;
use crate::sys::socket::{self as sys, IoResult};

/// Admin connections open at once, every address together.
pub const MAX_ADMIN_CONNECTIONS: usize = 64;
/// Admin connections one client address may hold: the other 48 slots stay for other addresses.
pub const MAX_ADMIN_CONNECTIONS_PER_ADDRESS: usize = 16;
/// Time from accept to a complete request head (request line and headers); past it the client
/// is answered 408 and closed. A body then has the rest of [`ADMIN_TIMEOUT`].
pub const ADMIN_HEADER_TIMEOUT: Duration = Duration::from_secs(2);
/// Time an admin client has, from accept, to send its whole request and read the answer.
pub const ADMIN_TIMEOUT: Duration = Duration::from_secs(10);
/// Pause before accepting again after accept(2) failed: fds and memory free up as clients go,
/// and retrying at once would spin the core.
pub const ADMIN_ACCEPT_BACKOFF: Duration = Duration::from_secs(1);
/// Accept failures are logged at most once per this long.
const ADMIN_ACCEPT_LOG_INTERVAL: Duration = Duration::from_secs(5);

struct AdminConn {
    fd: RawFd,
    generation: u32,
    ip: IpAddr,
    accepted: Instant,
    /// The request head has arrived (its body may still be arriving).
    head_complete: bool,
    /// The whole request has arrived, though it may not have been read yet: its answer is on
    /// its way, so it is never evicted.
    request_complete: bool,
    input: Vec<u8>,
    output: Vec<u8>,
    sent: usize,
    write_armed: bool,
}

/// What [`admit`] sees of an open connection.
#[derive(Clone, Copy, Debug)]
pub struct Held {
    pub ip: IpAddr,
    pub accepted: Instant,
    pub head_complete: bool,
    /// Its request is complete and being answered: never evicted.
    pub answering: bool,
}

/// Where a newly accepted connection goes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Admission {
    /// A slot is free.
    Admit,
    /// Close this connection (by its index in the list given to [`admit`]), then admit.
    Evict(usize),
    /// No slot can be freed: every candidate is already being answered.
    Refuse,
}

/// Decides where a connection from `ip` goes, given the connections `held`.
///
/// At [`MAX_ADMIN_CONNECTIONS_PER_ADDRESS`] for its address, the newcomer replaces that
/// address's oldest request still arriving. With every slot taken, it replaces the oldest
/// request still arriving of the address that holds the most slots. Requests whose head is
/// still arriving go before those whose body is; requests being answered are never replaced.
///
/// So an address cannot take the slots of others: once at its limit it only replaces its own,
/// and when the listener is full the address holding the most pays. A client whose address
/// holds fewer slots than others (a health probe, a scraper) is never replaced by them, and one
/// that shares an address with clients holding partial requests gets a slot from them; the
/// caller looks at a victim's socket before replacing it (see `AdminSide::make_room`), so a
/// request that has arrived but was not read yet is not taken for a partial one.
pub fn admit(held: &[Held], ip: IpAddr) -> Admission {
    let count = |of: IpAddr| held.iter().filter(|h| h.ip == of).count();
    let candidates = held.iter().enumerate().filter(|(_, h)| !h.answering);
    let victim = if count(ip) >= MAX_ADMIN_CONNECTIONS_PER_ADDRESS {
        candidates
            .filter(|(_, h)| h.ip == ip)
            .min_by_key(|(_, h)| (h.head_complete, h.accepted))
    } else if held.len() >= MAX_ADMIN_CONNECTIONS {
        candidates.min_by_key(|(_, h)| (Reverse(count(h.ip)), h.head_complete, h.accepted))
    } else {
        return Admission::Admit;
    };
    victim.map_or(Admission::Refuse, |(i, _)| Admission::Evict(i))
}

pub struct AdminSide {
    listener: Listener,
    conns: Slab<AdminConn>,
    next_generation: u32,
    pub exporter: Arc<Exporter>,
    /// Every core's refusal ring, when `debug_handshakes` is on.
    pub debug_rings: Option<Arc<Vec<Arc<std::sync::Mutex<crate::policy::DebugRing>>>>>,
    /// `POST /reload`'s tokens and flag (set by the server after `new`).
    pub reload: Option<Arc<crate::policy::ReloadGate>>,
    /// When a failed accept is armed again (None: armed, or closed).
    rearm_at: Option<Instant>,
    /// `close_all` ran: nothing is accepted any more.
    closed: bool,
    accept_errors_unlogged: u64,
    accept_logged_at: Option<Instant>,
}

impl AdminSide {
    pub fn new(
        listener: Listener,
        exporter: Arc<Exporter>,
        debug_rings: Option<Arc<Vec<Arc<std::sync::Mutex<crate::policy::DebugRing>>>>>,
    ) -> AdminSide {
        AdminSide {
            listener,
            conns: Slab::new(),
            next_generation: 0,
            exporter,
            debug_rings,
            reload: None,
            rearm_at: None,
            closed: false,
            accept_errors_unlogged: 0,
            accept_logged_at: None,
        }
    }

    pub fn arm_accept(&self, ring: &mut Ring) {
        ring.push(ring::accept_multishot(
            self.listener.fd(),
            ring::token(Op::AdminAccept, 0, 0),
        ));
    }

    pub fn on_accept(&mut self, ring: &mut Ring, result: i32, more: bool) {
        if self.closed {
            if result >= 0 {
                sys::close(result as RawFd);
            }
            return;
        }
        if result >= 0 {
            self.add(ring, result as RawFd);
        } else {
            self.accept_failed(-result);
        }
        if !more {
            // The kernel ended the multishot accept: on an error (EMFILE...) back off, or the
            // same error comes straight back and the core spins.
            if result < 0 {
                self.rearm_at = Some(Instant::now() + ADMIN_ACCEPT_BACKOFF);
            } else {
                self.arm_accept(ring);
            }
        }
    }

    fn accept_failed(&mut self, errno: i32) {
        self.exporter.admin_stats().accept_error();
        self.accept_errors_unlogged += 1;
        let now = Instant::now();
        if self
            .accept_logged_at
            .is_some_and(|at| now < at + ADMIN_ACCEPT_LOG_INTERVAL)
        {
            return;
        }
        tracing::warn!(
            errors = self.accept_errors_unlogged,
            "admin accept failed: {}; accepting again in {} ms{}",
            std::io::Error::from_raw_os_error(errno),
            ADMIN_ACCEPT_BACKOFF.as_millis(),
            if errno == libc::EMFILE || errno == libc::ENFILE {
                " (the open-file limit is reached: see `ringws check`)"
            } else {
                ""
            }
        );
        self.accept_logged_at = Some(now);
        self.accept_errors_unlogged = 0;
    }

    /// A new socket: a slot (maybe another's, see [`admit`]) and a poll for its request.
    fn add(&mut self, ring: &mut Ring, fd: RawFd) {
        let ip = sys::peer_addr(fd).map_or(IpAddr::V4(Ipv4Addr::UNSPECIFIED), |a| a.ip());
        if !self.make_room(ring, ip) {
            refuse(fd, &busy());
            sys::close(fd);
            self.exporter.admin_stats().closed(AdminClose::Refused);
            return;
        }
        let generation = self.next_generation;
        self.next_generation = self.next_generation.wrapping_add(1);
        let conn = AdminConn {
            fd,
            generation,
            ip,
            accepted: Instant::now(),
            head_complete: false,
            request_complete: false,
            input: Vec::new(),
            output: Vec::new(),
            sent: 0,
            write_armed: false,
        };
        let key = self.conns.insert(conn) as u32;
        ring.push(ring::poll_readable(
            fd,
            ring::token(Op::AdminReadable, key, generation),
        ));
    }

    /// Frees a slot for a connection from `ip` if [`admit`] says one must go; false when none
    /// can. A victim's socket is looked at first: bytes that arrived since its last read may
    /// complete its head or its request, and then [`admit`] is asked again. Each look either
    /// evicts or moves a connection forward for good, so this ends within two looks per slot.
    fn make_room(&mut self, ring: &mut Ring, ip: IpAddr) -> bool {
        loop {
            let (keys, held): (Vec<usize>, Vec<Held>) = self
                .conns
                .iter()
                .map(|(key, c)| {
                    let held = Held {
                        ip: c.ip,
                        accepted: c.accepted,
                        head_complete: c.head_complete,
                        answering: c.request_complete || !c.output.is_empty(),
                    };
                    (key, held)
                })
                .unzip();
            let key = match admit(&held, ip) {
                Admission::Admit => return true,
                Admission::Refuse => return false,
                Admission::Evict(i) => keys[i],
            };
            let conn = &mut self.conns[key];
            let (head_complete, request_complete) = arrived(conn.fd, &conn.input);
            if request_complete || head_complete != conn.head_complete {
                conn.head_complete = head_complete;
                conn.request_complete = request_complete;
                continue;
            }
            refuse(conn.fd, &busy());
            self.exporter.admin_stats().closed(AdminClose::Evicted);
            self.release(ring, key as u32);
            return true;
        }
    }

    fn current(&self, key: u32, generation: u32) -> bool {
        self.conns
            .get(key as usize)
            .is_some_and(|c| c.generation & 0x00FF_FFFF == generation & 0x00FF_FFFF)
    }

    pub fn on_readable<A: App>(
        &mut self,
        ring: &mut Ring,
        key: u32,
        generation: u32,
        more: bool,
        app: &A,
        draining: bool,
    ) {
        if !self.current(key, generation) {
            return;
        }
        let conn = &mut self.conns[key as usize];
        if !conn.output.is_empty() {
            return; // answering already; input after the request is ignored
        }
        if !more {
            ring.push(ring::poll_readable(
                conn.fd,
                ring::token(Op::AdminReadable, key, generation),
            ));
        }
        self.read_and_answer(ring, key, app, draining);
    }

    /// Reads what the socket holds and answers once the request is whole.
    fn read_and_answer<A: App>(&mut self, ring: &mut Ring, key: u32, app: &A, draining: bool) {
        let max_body = app.admin_max_body_bytes();
        let conn = &mut self.conns[key as usize];
        let limit = admin::MAX_HEAD_BYTES + max_body + 1;
        let mut chunk = [0u8; 16 << 10];
        loop {
            match sys::recv(conn.fd, &mut chunk) {
                IoResult::Done(n) => {
                    conn.input.extend_from_slice(&chunk[..n]);
                    if conn.input.len() > limit || n < chunk.len() {
                        break;
                    }
                }
                IoResult::WouldBlock => break,
                IoResult::Eof | IoResult::Failed(_) => return self.release(ring, key),
            }
        }
        let response = match admin::parse(&conn.input, max_body) {
            Parsed::Partial => return,
            Parsed::AwaitingBody => {
                conn.head_complete = true;
                return;
            }
            Parsed::Bad(r) => r,
            Parsed::Request(req, _) => {
                let builtins = Builtins {
                    exporter: &self.exporter,
                    debug_rings: self.debug_rings.as_deref().map(|r| r.as_slice()),
                    draining,
                    reload: self.reload.as_deref(),
                };
                routes::route(app, &builtins, &req)
            }
        };
        conn.head_complete = true;
        conn.input = Vec::new();
        admin::write_response(&mut conn.output, &response);
        self.flush(ring, key);
    }

    pub fn on_writable(&mut self, ring: &mut Ring, key: u32, generation: u32) {
        if self.current(key, generation) {
            self.conns[key as usize].write_armed = false;
            self.flush(ring, key);
        }
    }

    fn flush(&mut self, ring: &mut Ring, key: u32) {
        let conn = &mut self.conns[key as usize];
        while conn.sent < conn.output.len() {
            match sys::send2(conn.fd, &conn.output[conn.sent..], &[]) {
                IoResult::Done(n) => conn.sent += n,
                IoResult::WouldBlock | IoResult::Eof => {
                    if !conn.write_armed {
                        conn.write_armed = true;
                        ring.push(ring::poll_writable(
                            conn.fd,
                            ring::token(Op::AdminWritable, key, conn.generation),
                        ));
                    }
                    return;
                }
                IoResult::Failed(_) => break,
            }
        }
        self.release(ring, key);
    }

    fn release(&mut self, ring: &mut Ring, key: u32) {
        let conn = self.conns.remove(key as usize);
        ring.push(ring::cancel(ring::token(
            Op::AdminReadable,
            key,
            conn.generation,
        )));
        if conn.write_armed {
            ring.push(ring::cancel(ring::token(
                Op::AdminWritable,
                key,
                conn.generation,
            )));
        }
        sys::close(conn.fd);
    }

    /// Called once per loop iteration on core 0: arms a backed-off accept when it is due, answers
    /// 408 to requests whose head is late and closes connections past [`ADMIN_TIMEOUT`].
    pub fn expire<A: App>(&mut self, ring: &mut Ring, app: &A, draining: bool) {
        if self.rearm_at.is_some_and(|at| Instant::now() >= at) {
            self.rearm_at = None;
            if !self.closed {
                self.arm_accept(ring);
            }
        }
        if self.conns.is_empty() {
            return; // the common case: no clock read on the loop's path
        }
        let now = Instant::now();
        let late: Vec<(u32, AdminClose)> = self
            .conns
            .iter()
            .filter_map(|(k, c)| {
                let reason = if now >= c.accepted + ADMIN_TIMEOUT {
                    AdminClose::Timeout
                } else if !c.head_complete && now >= c.accepted + ADMIN_HEADER_TIMEOUT {
                    AdminClose::HeaderTimeout
                } else {
                    return None;
                };
                Some((k as u32, reason))
            })
            .collect();
        for (key, reason) in late {
            if reason == AdminClose::HeaderTimeout {
                // A core busy for seconds (a large fan-out) sees the deadline before the
                // readable completion of a request that did arrive in time: read it first.
                let generation = self.conns[key as usize].generation;
                self.read_and_answer(ring, key, app, draining);
                let still_waiting = self
                    .conns
                    .get(key as usize)
                    .is_some_and(|c| c.generation == generation && !c.head_complete);
                if !still_waiting {
                    continue;
                }
                refuse(self.conns[key as usize].fd, &header_timeout());
            }
            self.exporter.admin_stats().closed(reason);
            self.release(ring, key);
        }
    }

    /// Stops accepting and closes every admin connection (shutdown).
    pub fn close_all(&mut self, ring: &mut Ring) {
        self.closed = true;
        self.rearm_at = None;
        ring.push(ring::cancel(ring::token(Op::AdminAccept, 0, 0)));
        let keys: Vec<u32> = self.conns.iter().map(|(k, _)| k as u32).collect();
        for key in keys {
            self.release(ring, key);
        }
    }
}

/// 503 for a connection that lost (or never got) its slot to a newer one.
fn busy() -> AdminResponse {
    AdminResponse::text(
        503,
        "admin listener busy: every slot holds a request still arriving; send the request \
         at once after connecting",
    )
    .with_header("Retry-After", "1")
}

/// 408 for a request head that did not arrive within [`ADMIN_HEADER_TIMEOUT`].
fn header_timeout() -> AdminResponse {
    AdminResponse::text(
        408,
        format!(
            "request head not received within {} s of connecting",
            ADMIN_HEADER_TIMEOUT.as_secs()
        ),
    )
}

/// Whether the request of the connection `fd`, whose bytes read so far are `input`, has its head
/// and whether it is complete, counting the bytes waiting in the socket. Peeks, so the reactor's
/// poll still sees them and reads them as usual.
fn arrived(fd: RawFd, input: &[u8]) -> (bool, bool) {
    let mut waiting = [0u8; admin::MAX_HEAD_BYTES + 1];
    let room = waiting.len().saturating_sub(input.len());
    let n = sys::peek(fd, &mut waiting[..room]);
    let waiting = &waiting[..n];
    let joined;
    let request = if input.is_empty() {
        waiting
    } else {
        joined = [input, waiting].concat();
        &joined[..]
    };
    // The body limit is the app's, unknown here; any limit tells a complete head apart.
    match admin::parse(request, usize::MAX) {
        Parsed::Partial => (false, false),
        Parsed::AwaitingBody => (true, false),
        Parsed::Request(..) | Parsed::Bad(_) => (true, true),
    }
}

/// Answers `response` to a connection about to be closed, in one non-blocking send: a
/// courtesy, so nothing is queued or retried if the socket will not take it.
fn refuse(fd: RawFd, response: &AdminResponse) {
    let mut out = Vec::with_capacity(256);
    admin::write_response(&mut out, response);
    let _ = sys::send2(fd, &out, &[]);
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(last: u8) -> IpAddr {
        IpAddr::V4(Ipv4Addr::new(127, 0, 0, last))
    }

    /// `n` connections from `from`, the first accepted first, each `step` after the previous.
    fn held(from: IpAddr, n: usize, start: Instant, head_complete: bool) -> Vec<Held> {
        (0..n)
            .map(|i| Held {
                ip: from,
                accepted: start + Duration::from_millis(i as u64),
                head_complete,
                answering: false,
            })
            .collect()
    }

    #[test]
    fn free_slots_admit() {
        let t = Instant::now();
        assert_eq!(admit(&[], ip(1)), Admission::Admit);
        let some = held(ip(1), MAX_ADMIN_CONNECTIONS_PER_ADDRESS - 1, t, false);
        assert_eq!(admit(&some, ip(1)), Admission::Admit);
    }

    #[test]
    fn an_address_at_its_limit_gives_up_its_own_oldest_partial_request() {
        let t = Instant::now();
        // Others hold slots too, older than this address's: they are not touched.
        let mut conns = held(ip(2), 10, t, false);
        conns.extend(held(
            ip(1),
            MAX_ADMIN_CONNECTIONS_PER_ADDRESS,
            t + Duration::from_secs(1),
            false,
        ));
        assert_eq!(admit(&conns, ip(1)), Admission::Evict(10));
        // Its oldest is being answered: the next oldest goes.
        conns[10].answering = true;
        assert_eq!(admit(&conns, ip(1)), Admission::Evict(11));
        // All of them answered: the newcomer is refused, the others keep their slots.
        for c in &mut conns[10..] {
            c.answering = true;
        }
        assert_eq!(admit(&conns, ip(1)), Admission::Refuse);
        assert_eq!(admit(&conns, ip(3)), Admission::Admit);
    }

    #[test]
    fn with_every_slot_taken_the_biggest_holder_gives_up_its_oldest_partial_request() {
        let t = Instant::now();
        let per = MAX_ADMIN_CONNECTIONS_PER_ADDRESS;
        // A probe's address holds one slot, the oldest of all; four others hold the rest.
        let mut conns = held(ip(1), 1, t, false);
        conns.extend(held(ip(10), per - 1, t + Duration::from_secs(1), false));
        for a in 0..3u8 {
            let start = t + Duration::from_secs(2 + u64::from(a));
            conns.extend(held(ip(11 + a), per, start, false));
        }
        assert_eq!(conns.len(), MAX_ADMIN_CONNECTIONS);
        // A newcomer: the oldest of the biggest holders (11, 12, 13 tie at 16) goes.
        assert_eq!(admit(&conns, ip(2)), Admission::Evict(per));
        // The one address at 15 is replaced only once the others are down to it.
        conns[1].accepted = t; // older than everyone but the probe
        assert_eq!(admit(&conns, ip(2)), Admission::Evict(per));
        // A head still arriving goes before a body still arriving, even a newer one.
        conns[per].head_complete = true;
        assert_eq!(admit(&conns, ip(2)), Admission::Evict(per + 1));
        // Nothing of the biggest holders can go: the next biggest pays, never the probe.
        for c in &mut conns[per..] {
            c.answering = true;
        }
        assert_eq!(admit(&conns, ip(2)), Admission::Evict(1));
        for c in &mut conns[1..] {
            c.answering = true;
        }
        assert_eq!(admit(&conns, ip(2)), Admission::Evict(0));
        conns[0].answering = true;
        assert_eq!(admit(&conns, ip(2)), Admission::Refuse);
    }

    #[test]
    fn one_address_cannot_take_the_slots_of_the_others() {
        let t = Instant::now();
        let mut conns = Vec::new();
        let mut admitted_from_1 = 0;
        // An address connecting over and over, never finishing a request.
        for i in 0..1000 {
            let now = t + Duration::from_millis(i);
            match admit(&conns, ip(1)) {
                Admission::Admit => admitted_from_1 += 1,
                Admission::Evict(victim) => {
                    assert_eq!(conns[victim].ip, ip(1), "only its own slots are taken");
                    conns.remove(victim);
                }
                Admission::Refuse => unreachable!("its own partial requests can go"),
            }
            conns.push(Held {
                ip: ip(1),
                accepted: now,
                head_complete: false,
                answering: false,
            });
        }
        assert_eq!(admitted_from_1, MAX_ADMIN_CONNECTIONS_PER_ADDRESS);
        assert_eq!(conns.len(), MAX_ADMIN_CONNECTIONS_PER_ADDRESS);
        assert_eq!(admit(&conns, ip(2)), Admission::Admit);
    }
}
