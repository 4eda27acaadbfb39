//! `proxy_protocol`: a load balancer in `trusted_proxies` puts a PROXY protocol header before the
//! client's bytes, naming the client. The header is peeked (the socket keeps the bytes until the
//! whole header is there), checked, then consumed; the connection's own bytes, a TLS ClientHello
//! or an upgrade request, are read after it as on any connection. A connection from any other
//! address, or without a valid header, is reset and counted by reason.

use std::net::IpAddr;

use super::conns::Io;
use super::event_loop::Reactor;
use crate::app::App;
use crate::protocol::connection::{reached, Tick};
use crate::protocol::proxy_header::{self, Parsed, ProxyError, MAX_HEADER_BYTES};
use crate::sys::socket::{self as sys, IoResult};

/// Reasons a connection is refused before its header was read: an untrusted peer (index 0),
/// then the parser's, in the order of [`ProxyError::LABELS`].
pub const PROXY_REFUSALS: usize = 1 + ProxyError::LABELS.len();

/// The `reason` label of refusal `index` (< [`PROXY_REFUSALS`]).
pub fn refusal_label(index: usize) -> &'static str {
    match index {
        0 => "untrusted",
        i => ProxyError::LABELS[i - 1],
    }
}

/// Refusals are logged at most once per this many ticks (1 s) per core.
const LOG_INTERVAL_TICKS: u32 = 10;

/// A connection's PROXY header state.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Proxied {
    /// Not a connection of a `proxy_protocol` listener (or its slot is free).
    #[default]
    Off,
    /// The header has not arrived whole yet.
    Awaiting,
    /// The header named this client.
    Client(IpAddr),
    /// The header named no client (LOCAL command, UNKNOWN or a non-IP family): the socket's peer
    /// counts.
    Unnamed,
}

/// Rate limit of the refusal log on one core.
#[derive(Debug, Default)]
pub struct RefusalLog {
    logged_at: Option<Tick>,
    unlogged: u64,
}

impl Io {
    /// The connection in `key` waits for its PROXY header (set at accept).
    pub(super) fn await_proxy_header(&mut self, key: u32) {
        let at = key as usize;
        if self.proxied.len() <= at {
            self.proxied.resize(at + 1, Proxied::Off);
        }
        self.proxied[at] = Proxied::Awaiting;
    }

    pub(super) fn awaits_proxy_header(&self, key: u32) -> bool {
        self.proxied.get(key as usize) == Some(&Proxied::Awaiting)
    }

    /// The client the connection's PROXY header named.
    pub fn proxied_client(&self, key: u32) -> Option<IpAddr> {
        match self.proxied.get(key as usize)? {
            Proxied::Client(ip) => Some(*ip),
            _ => None,
        }
    }
}

impl<A: App> Reactor<A> {
    /// Reads the PROXY header of the connection in `key` if it is all there; true when it was
    /// consumed and the connection's own bytes may be read now.
    pub(super) fn read_proxy_header(&mut self, key: u32) -> bool {
        let fd = self.io.conns[key as usize].fd;
        let peer = sys::peer_addr(fd).map(|a| a.ip());
        let trusted = self.io.settings.proxy_trusted.as_deref().unwrap_or(&[]);
        if !peer.is_some_and(|ip| trusted.iter().any(|cidr| cidr.contains(ip))) {
            self.refuse_proxied(key, 0, peer, "it is not in trusted_proxies");
            return false;
        }
        let mut head = [0u8; MAX_HEADER_BYTES];
        let waiting = match sys::peek_waiting(fd, &mut head) {
            IoResult::Done(n) => n,
            IoResult::WouldBlock => return false,
            IoResult::Eof | IoResult::Failed(_) => {
                self.io.with_conn(key, |c, _, _, out| c.on_eof(out));
                return false;
            }
        };
        match proxy_header::parse(&head[..waiting]) {
            Ok(Parsed::Complete { header, consumed }) => {
                // The header's bytes are in the socket (peeked above): take exactly them.
                let taken = sys::recv(fd, &mut head[..consumed]);
                debug_assert!(matches!(taken, IoResult::Done(n) if n == consumed));
                self.io.proxied[key as usize] = match header.source {
                    Some(source) => Proxied::Client(source.ip()),
                    None => Proxied::Unnamed,
                };
                self.io.stats.proxy_headers.inc();
                true
            }
            Ok(Parsed::Incomplete) => false, // the next edge brings the rest
            Err(error) => {
                let reason = 1 + ProxyError::LABELS
                    .iter()
                    .position(|&r| r == error.label())
                    .unwrap_or(0);
                self.refuse_proxied(key, reason, peer, &error.to_string());
                false
            }
        }
    }

    /// Counts, logs (rate-limited) and resets a connection refused before its header.
    fn refuse_proxied(&mut self, key: u32, reason: usize, peer: Option<IpAddr>, why: &str) {
        self.io.stats.proxy_refused(reason);
        let log = &mut self.proxy_refusal_log;
        log.unlogged += 1;
        let now = self.io.now_tick;
        if log
            .logged_at
            .is_none_or(|at| reached(at.wrapping_add(LOG_INTERVAL_TICKS), now))
        {
            tracing::info!(
                core = self.io.core,
                peer = %peer.map_or_else(|| "unknown".to_string(), |ip| ip.to_string()),
                reason = refusal_label(reason),
                refusals_since_last_line = log.unlogged,
                "connection refused before its PROXY protocol header was read: {why}"
            );
            log.logged_at = Some(now);
            log.unlogged = 0;
        }
        self.io.with_conn(key, |c, _, _, out| c.abandon(out));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_parser_refusal_has_its_reason_label() {
        let errors = [
            ProxyError::NotProxy,
            ProxyError::LineTooLong,
            ProxyError::Malformed("x"),
            ProxyError::BadPort,
            ProxyError::UnsupportedVersion(3),
        ];
        let labels: Vec<_> = (0..PROXY_REFUSALS).map(refusal_label).collect();
        assert_eq!(labels[0], "untrusted");
        for error in errors {
            assert!(
                labels[1..].contains(&error.label()),
                "{} has no slot",
                error.label()
            );
        }
    }
}
