//! The admin listener's sockets, served by core 0's reactor: one request per connection,
//! answered from memory, written without blocking (a slow scraper gets a POLLOUT, not the core).

use std::os::fd::RawFd;
use std::sync::Arc;
use std::time::{Duration, Instant};

use slab::Slab;

use super::listener::Listener;
use super::ring::{self, Op, Ring};
use super::sys::{self, IoResult};
use crate::admin::routes::{self, Builtins};
use crate::admin::{self, Parsed};
use crate::app::App;
use crate::metrics::Exporter;

/// Admin connections open at once; more are closed at accept.
const MAX_ADMIN_CONNECTIONS: usize = 64;
/// Time an admin client has to send its request and read the answer.
const ADMIN_TIMEOUT: Duration = Duration::from_secs(10);

struct AdminConn {
    fd: RawFd,
    generation: u32,
    input: Vec<u8>,
    output: Vec<u8>,
    sent: usize,
    deadline: Instant,
    write_armed: bool,
}

pub struct AdminSide {
    listener: Listener,
    conns: Slab<AdminConn>,
    next_generation: u32,
    pub exporter: Arc<Exporter>,
    /// Every core's refusal ring, when `debug_handshakes` is on.
    pub debug_rings: Option<Arc<Vec<Arc<std::sync::Mutex<crate::policy::DebugRing>>>>>,
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
        }
    }

    pub fn arm_accept(&self, ring: &mut Ring) {
        ring.push(ring::accept_multishot(
            self.listener.fd(),
            ring::token(Op::AdminAccept, 0, 0),
        ));
    }

    pub fn on_accept(&mut self, ring: &mut Ring, result: i32, more: bool) {
        if result >= 0 {
            let fd = result as RawFd;
            if self.conns.len() >= MAX_ADMIN_CONNECTIONS {
                sys::close(fd);
            } else {
                let generation = self.next_generation;
                self.next_generation = self.next_generation.wrapping_add(1);
                let conn = AdminConn {
                    fd,
                    generation,
                    input: Vec::new(),
                    output: Vec::new(),
                    sent: 0,
                    deadline: Instant::now() + ADMIN_TIMEOUT,
                    write_armed: false,
                };
                let key = self.conns.insert(conn) as u32;
                ring.push(ring::poll_readable(
                    fd,
                    ring::token(Op::AdminReadable, key, generation),
                ));
            }
        }
        if !more {
            self.arm_accept(ring);
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
        let max_body = app.admin_max_body_bytes();
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
            Parsed::Partial | Parsed::AwaitingBody => return,
            Parsed::Bad(r) => r,
            Parsed::Request(req, _) => {
                let builtins = Builtins {
                    exporter: &self.exporter,
                    debug_rings: self.debug_rings.as_deref().map(|r| r.as_slice()),
                    draining,
                };
                routes::route(app, &builtins, &req)
            }
        };
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

    /// Closes admin connections past their deadline (called once per loop iteration on core 0).
    pub fn expire(&mut self, ring: &mut Ring) {
        if self.conns.is_empty() {
            return; // the common case: no clock read on the loop's path
        }
        let now = Instant::now();
        let late: Vec<u32> = self
            .conns
            .iter()
            .filter(|(_, c)| c.deadline <= now)
            .map(|(k, _)| k as u32)
            .collect();
        for key in late {
            self.release(ring, key);
        }
    }

    /// Stops accepting and closes every admin connection (shutdown).
    pub fn close_all(&mut self, ring: &mut Ring) {
        ring.push(ring::cancel(ring::token(Op::AdminAccept, 0, 0)));
        let keys: Vec<u32> = self.conns.iter().map(|(k, _)| k as u32).collect();
        for key in keys {
            self.release(ring, key);
        }
    }
}
