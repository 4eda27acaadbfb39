//! The handshake gate of one core: the shared [`Policy`] (Origin, credentials, subprotocols),
//! this core's per-IP handshake rate limiter, its refusal-log limiter and its debug ring.
//!
//! The peer address costs a `getpeername(2)`, so it is asked only when something needs it: a
//! rate limit, trusted proxies, the debug ring, or a refusal line that will be logged.

use std::net::{IpAddr, Ipv4Addr};
use std::os::fd::RawFd;
use std::sync::{Arc, Mutex};

use crate::policy::expiry::ExpiryQueue;
use crate::policy::{
    log_refusal, Accepted, DebugRing, HandshakeRateLimiter, LogLimiter, Policy, RecordedHeaders,
};
use crate::protocol::{Refusal, UpgradeRequest};
use crate::sys::socket as sys;

/// Refusal log lines per second per core; the rest are counted as suppressed.
const REFUSAL_LOG_LINES_PER_S: u32 = 10;

pub struct Gate {
    policy: Arc<Policy>,
    limiter: HandshakeRateLimiter,
    log: LogLimiter,
    debug: Option<Arc<Mutex<DebugRing>>>,
    /// True when admission itself needs the peer address (rate limit, trusted proxies).
    needs_peer: bool,
    /// With `close_on_token_expiry`: this core's connections by when their token expires.
    expiry: Option<ExpiryQueue>,
}

fn peer_ip(fd: RawFd) -> IpAddr {
    sys::peer_addr(fd).map_or(IpAddr::V4(Ipv4Addr::UNSPECIFIED), |a| a.ip())
}

impl Gate {
    pub fn new(
        policy: Arc<Policy>,
        limiter: HandshakeRateLimiter,
        trusts_proxies: bool,
        debug: Option<Arc<Mutex<DebugRing>>>,
    ) -> Gate {
        let needs_peer = limiter.is_enabled() || trusts_proxies;
        Gate {
            expiry: policy.expiry_queue(),
            policy,
            limiter,
            log: LogLimiter::new(REFUSAL_LOG_LINES_PER_S),
            debug,
            needs_peer,
        }
    }

    /// Decides a request that parsed: the rate limit first (cheapest, and it must hold even for
    /// requests the policy would refuse), then the policy. On refusal, also returns the client
    /// address when it was looked up. `proxied`: the client a PROXY protocol header named,
    /// which stands for the socket's peer.
    pub fn admit<'a>(
        &mut self,
        request: &UpgradeRequest<'a>,
        fd: RawFd,
        proxied: Option<IpAddr>,
        now_ms: u64,
        now_unix_s: u64,
    ) -> Result<Accepted<'a>, (Refusal, Option<IpAddr>)> {
        let peer = match proxied {
            Some(client) => client,
            None if self.needs_peer => peer_ip(fd),
            None => IpAddr::V4(Ipv4Addr::UNSPECIFIED),
        };
        // The client a trusted proxy names, else the peer: what the limiter, the refusal log and
        // the debug view all use.
        let client = self
            .needs_peer
            .then(|| self.policy.client_ip(request, peer));
        if let Some(client) = client.filter(|_| self.limiter.is_enabled()) {
            if let Err(retry_after_s) = self.limiter.check(client, now_ms) {
                return Err((Refusal::rate_limited(retry_after_s), Some(client)));
            }
        }
        self.policy
            .check(request, peer, now_unix_s)
            .map_err(|r| (r, client))
    }

    /// Remembers when the connection's token expires, with `close_on_token_expiry`.
    pub fn schedule_expiry(&mut self, key: u32, generation: u32, exp_unix_s: u64) {
        if let Some(queue) = &mut self.expiry {
            queue.schedule(key, generation, exp_unix_s);
        }
    }

    /// Forgets a connection that closed.
    pub fn forget_expiry(&mut self, key: u32, generation: u32) {
        if let Some(queue) = &mut self.expiry {
            queue.forget(key, generation);
        }
    }

    /// A connection whose token expired by `now_unix_ms` (counted), to close with 4001.
    pub fn pop_expired(&mut self, now_unix_ms: u64) -> Option<(u32, u32)> {
        let due = self.expiry.as_mut()?.pop_due(now_unix_ms)?;
        self.policy.count_expiry_close();
        Some(due)
    }

    /// True when connections wait for their token to expire.
    pub fn has_expiries(&self) -> bool {
        self.expiry.as_ref().is_some_and(|q| !q.is_empty())
    }

    /// Logs (rate-limited) and records (debug ring) a refusal. `head` is the request bytes, used
    /// to recover method, path and headers when the parser itself refused the request.
    #[allow(clippy::too_many_arguments)]
    pub fn note_refusal(
        &mut self,
        core: usize,
        fd: RawFd,
        client: Option<IpAddr>,
        request: Option<&UpgradeRequest<'_>>,
        head: &[u8],
        refusal: &Refusal,
        now_ms: u64,
        now_unix_s: u64,
    ) {
        let admitted = self.log.admit(now_ms);
        if admitted.is_none() && self.debug.is_none() {
            return;
        }
        let client = client.unwrap_or_else(|| peer_ip(fd));
        let (path, headers) = match request {
            Some(r) => (Some(r.path), RecordedHeaders::from_request(r)),
            None => RecordedHeaders::scan(head),
        };
        if let Some(suppressed_before) = admitted {
            log_refusal(core, client, path, refusal, suppressed_before);
        }
        if let Some(ring) = &self.debug {
            if let Ok(mut ring) = ring.lock() {
                ring.record(now_unix_s, client, path, headers, refusal);
            }
        }
    }

    /// Keeps a failed TLS handshake in the debug ring, when it is on.
    pub fn note_tls_failure(
        &self,
        client: IpAddr,
        reason: &'static str,
        message: &str,
        now_unix_s: u64,
    ) {
        if let Some(ring) = &self.debug {
            if let Ok(mut ring) = ring.lock() {
                ring.record_tls(now_unix_s, client, reason, message);
            }
        }
    }
}
