//! Reading: `recv(2)` into the core's one receive buffer, then the connection turns the bytes into
//! an upgrade request (judged here by the app's paths, the connection limit and the handshake
//! gate) or messages (handed to the app, borrowed from the buffer).

use std::net::IpAddr;

use super::conns::Io;
use super::event_loop::Reactor;
use crate::app::{App, ConnId, CoreApp, OpenInfo};
use crate::protocol::connection::Received;
use crate::protocol::handshake::UpgradeRequest;
use crate::protocol::{Reader, Refusal, RefusalReason};
use crate::sys::socket::{self as sys, IoResult};

/// Receive rounds per readiness event before other connections get their turn.
pub(super) const MAX_READS_PER_EVENT: usize = 4;

impl<A: App> Reactor<A> {
    /// Reads what the socket has and feeds it to its connection.
    pub(super) fn on_readable(&mut self, key: u32) {
        if self.io.awaits_proxy_header(key) && !self.read_proxy_header(key) {
            return; // not yet, or refused
        }
        if self.io.tls.get(key as usize).is_some_and(Option::is_some) {
            return self.on_readable_tls(key);
        }
        for _ in 0..MAX_READS_PER_EVENT {
            let slot = &mut self.io.conns[key as usize];
            if slot.conn.is_released() {
                return;
            }
            let fd = slot.fd;
            let (reader, carried) = slot.conn.begin_receive(&mut self.recv_buf);
            let room = self.recv_buf.len() - carried;
            let (n, reader, used) = match sys::recv(fd, &mut self.recv_buf[carried..]) {
                IoResult::Done(n) => {
                    self.io.stats.socket_bytes_received.add(n as u64);
                    let mut reader = reader;
                    let used = self.receive(key, &mut reader, carried + n);
                    (n, reader, used)
                }
                IoResult::WouldBlock => (0, reader, 0),
                IoResult::Eof | IoResult::Failed(_) => {
                    // The peer is gone (EOF, reset): nothing more to read or carry.
                    return self.io.with_conn(key, |c, _, now, out| {
                        c.end_receive(now, reader, &[], out);
                        c.on_eof(out);
                    });
                }
            };
            let rest = &self.recv_buf[used..carried + n];
            self.io
                .with_conn(key, |c, _, now, out| c.end_receive(now, reader, rest, out));
            if n == 0 {
                return; // nothing was there: the next edge brings more
            }
            if n < room {
                return; // a short read drained the socket; the next edge brings more
            }
        }
        // Still readable: continue after the other connections had their turn.
        let generation = self.io.conns[key as usize].generation;
        self.read_again.push((key, generation));
    }

    /// Feeds `recv_buf[..len]` to the connection until it needs more; returns the bytes used.
    pub(super) fn receive(&mut self, key: u32, reader: &mut Reader, len: usize) -> usize {
        let generation = self.io.conns[key as usize].generation;
        let id = ConnId { key, generation };
        let mut pos = 0;
        // Until the input is used up (the connection would only say so).
        while pos < len {
            let io = &mut self.io;
            let input = io.with_conn(key, |conn, cfg, now, out| {
                conn.receive(now, cfg, reader, &mut self.recv_buf[pos..len], out)
            });
            pos += input.consumed;
            match input.event {
                None => return pos,
                Some(Received::Message(kind, payload)) => {
                    io.stats.message_received(kind, payload.len());
                    self.core_app.on_message(io, id, kind, payload);
                }
                Some(Received::Request(request, head)) => {
                    let accepted_us = io.conns[key as usize].conn.stamp().unwrap_or(0);
                    let opened = upgrade(
                        io,
                        &*self.app,
                        key,
                        &request,
                        head,
                        self.started.elapsed().as_millis() as u64,
                    );
                    if let Some(info) = opened {
                        let handshake_us = now_us(self.started).wrapping_sub(accepted_us);
                        self.handshake_duration.record(handshake_us as f64 / 1e6);
                        let info = OpenInfo {
                            path: request.path,
                            query: request.query,
                            protocol: info.protocol,
                            subject: info.subject.as_deref(),
                            permissions: &info.permissions,
                            client_ip: info.client_ip,
                            fd: io.conns[key as usize].fd,
                        };
                        self.core_app.on_open(io, id, &info);
                        if let Some(deadline) = io.drain_deadline {
                            io.with_conn(key, |c, cfg, now, out| {
                                c.shut_down(now, deadline, cfg, out)
                            });
                        }
                    }
                }
                Some(Received::BadRequest(refusal, head)) => {
                    refuse(io, key, &refusal, None, None, head);
                }
                Some(Received::Response(_)) => {
                    unreachable!("server connections read requests, not responses")
                }
            }
        }
        pos
    }
}

fn now_us(started: std::time::Instant) -> u32 {
    started.elapsed().as_micros() as u32
}

/// What an accepted upgrade tells the app.
struct Opened<'a> {
    protocol: Option<&'a str>,
    subject: Option<String>,
    client_ip: Option<IpAddr>,
    permissions: std::sync::Arc<crate::policy::TopicPermissions>,
}

/// Judges a complete upgrade request: a path the app serves, a place under `max_connections`
/// (exact across cores), then the handshake gate (rate limit and policy). Answers it through
/// the connection; `Some` when the connection is now open.
fn upgrade<'a, A: App>(
    io: &mut Io,
    app: &A,
    key: u32,
    request: &UpgradeRequest<'a>,
    head: &[u8],
    now_ms: u64,
) -> Option<Opened<'a>> {
    let fd = io.conns[key as usize].fd;
    if !app.serves_path(request.path) {
        refuse(
            io,
            key,
            &Refusal::not_found(app.websocket_paths()),
            None,
            Some(request),
            head,
        );
        return None;
    }
    let held = io.stats.memory_held_bytes.get();
    if super::budget::near_budget(held, io.settings.memory_budget_bytes) {
        let refusal = Refusal::new(RefusalReason::OverMemoryBudget);
        refuse(io, key, &refusal, None, Some(request), head);
        return None;
    }
    if !io.open.reserve(io.settings.max_connections) {
        let refusal = Refusal::new(RefusalReason::ServerFull);
        refuse(io, key, &refusal, None, Some(request), head);
        return None;
    }
    let proxied = io.proxied_client(key);
    let accepted = match io.gate.admit(request, fd, proxied, now_ms, unix_seconds()) {
        Ok(accepted) => accepted,
        Err((refusal, client)) => {
            io.open.release();
            refuse(io, key, &refusal, client, Some(request), head);
            return None;
        }
    };
    // Counted open before the 101 goes out: whoever sees the 101 sees the count.
    let open_gauge = &io.stats.connections_open;
    open_gauge.set(open_gauge.get() + 1);
    // A client certificate (mTLS) names the connection when no token did.
    let subject = accepted.subject.or_else(|| {
        let session = io.tls.get(key as usize)?.as_ref()?;
        session.client_identity()
    });
    // Only a client that asked learns what it was granted; the others' 101 is unchanged.
    let identity = if request.explain_identity {
        crate::policy::identity_header::header_line(subject.as_deref(), &accepted.permissions)
    } else {
        Vec::new()
    };
    let opened = io.with_conn(key, |c, cfg, now, out| {
        c.accept(now, cfg, request, accepted.protocol, &identity, out)
    });
    if !opened {
        io.open.release();
        let open_gauge = &io.stats.connections_open;
        open_gauge.set(open_gauge.get().saturating_sub(1));
        return None;
    }
    io.stats.handshakes_completed.inc();
    if let Some(exp) = accepted.expires_unix_s {
        let generation = io.conns[key as usize].generation;
        io.gate.schedule_expiry(key, generation, exp);
    }
    Some(Opened {
        protocol: accepted.protocol,
        subject,
        client_ip: (!accepted.client_ip.is_unspecified()).then_some(accepted.client_ip),
        permissions: accepted.permissions,
    })
}

/// Answers a refused handshake; counts, logs (rate-limited) and records it.
fn refuse(
    io: &mut Io,
    key: u32,
    refusal: &Refusal,
    client: Option<IpAddr>,
    request: Option<&UpgradeRequest<'_>>,
    head: &[u8],
) {
    io.stats.refused(refusal.reason);
    let fd = io.conns[key as usize].fd;
    let client = client.or(io.proxied_client(key));
    let now_ms = io.now_tick as u64 * super::event_loop::TICK.as_millis() as u64;
    io.gate.note_refusal(
        io.core,
        fd,
        client,
        request,
        head,
        refusal,
        now_ms,
        unix_seconds(),
    );
    io.with_conn(key, |c, cfg, now, out| c.refuse(now, cfg, refusal, out));
}

/// Closes, with 4001, the connections whose token expired (`close_on_token_expiry`).
pub(super) fn close_expired_tokens(io: &mut Io) {
    if !io.gate.has_expiries() {
        return;
    }
    let now_ms = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64);
    while let Some((key, generation)) = io.gate.pop_expired(now_ms) {
        use crate::policy::expiry::{EXPIRED_CODE, EXPIRED_REASON};
        let conn = ConnId { key, generation };
        crate::app::Ctx::close(
            io,
            conn,
            crate::protocol::CloseCode(EXPIRED_CODE),
            EXPIRED_REASON,
        );
    }
}

pub(super) fn unix_seconds() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}
