//! The last refusals of one core, kept for `GET /debug/handshakes`: enough of each request to
//! see why it was refused without reproducing it, and never a credential.

use std::collections::VecDeque;
use std::net::IpAddr;

use crate::protocol::refusal::one_line;
use crate::protocol::{Refusal, UpgradeRequest};

/// Refusals kept per core; older ones are dropped.
pub const DEBUG_RING_CAPACITY: usize = 256;
/// Longest path kept (bytes, after escaping); longer ones end in "...".
pub const MAX_RECORDED_PATH_BYTES: usize = 256;
/// Longest `Origin`, `Sec-WebSocket-Protocol` or method kept.
pub const MAX_RECORDED_HEADER_BYTES: usize = 256;
/// Longest `User-Agent` kept.
pub const MAX_RECORDED_USER_AGENT_BYTES: usize = 128;
/// Most headers [`RecordedHeaders::scan`] parses.
const MAX_SCANNED_HEADERS: usize = 64;

/// Which credential a request carried; the value itself is never recorded.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum CredentialSeen {
    #[default]
    None,
    /// An `Authorization` header.
    AuthorizationHeader,
    /// A `token=` query parameter.
    QueryToken,
}

impl CredentialSeen {
    pub fn of(authorization: Option<&str>, query: Option<&str>) -> Self {
        if authorization.is_some() {
            CredentialSeen::AuthorizationHeader
        } else if query.is_some_and(|q| q.split('&').any(|pair| pair.starts_with("token="))) {
            CredentialSeen::QueryToken
        } else {
            CredentialSeen::None
        }
    }
}

/// The parts of a request that explain a refusal, borrowed until [`DebugRing::record`] copies
/// (and bounds) them.
#[derive(Clone, Copy, Debug, Default)]
pub struct RecordedHeaders<'a> {
    /// The request method (always GET once the request parsed).
    pub method: Option<&'a str>,
    pub origin: Option<&'a str>,
    pub protocols: Option<&'a str>,
    pub user_agent: Option<&'a str>,
    pub x_forwarded_for: Option<&'a str>,
    pub credentials: CredentialSeen,
}

impl<'a> RecordedHeaders<'a> {
    /// From a request that parsed (refused by policy, path or capacity).
    pub fn from_request(request: &UpgradeRequest<'a>) -> Self {
        RecordedHeaders {
            method: Some("GET"),
            origin: request.origin,
            protocols: request.protocols,
            user_agent: request.user_agent,
            x_forwarded_for: request.x_forwarded_for,
            credentials: CredentialSeen::of(request.authorization, request.query),
        }
    }

    /// Best effort from the raw bytes of a head the parser refused (bad version, missing
    /// Upgrade, ...): the path and these headers if the request line and headers can be read,
    /// nothing otherwise. Never fails, never allocates.
    pub fn scan(head: &'a [u8]) -> (Option<&'a str>, RecordedHeaders<'a>) {
        let mut headers = [httparse::EMPTY_HEADER; MAX_SCANNED_HEADERS];
        let mut request = httparse::Request::new(&mut headers);
        // A partial or over-long head still fills in what it got through.
        if request.parse(head).is_err() {
            return (None, RecordedHeaders::default());
        }
        let text = |value: &'a [u8]| std::str::from_utf8(value).ok().map(str::trim);
        let mut recorded = RecordedHeaders {
            method: request.method,
            ..RecordedHeaders::default()
        };
        let mut authorization = None;
        for header in request.headers.iter().take_while(|h| !h.name.is_empty()) {
            let name = |wanted: &str| header.name.eq_ignore_ascii_case(wanted);
            let slot = if name("origin") {
                &mut recorded.origin
            } else if name("sec-websocket-protocol") {
                &mut recorded.protocols
            } else if name("user-agent") {
                &mut recorded.user_agent
            } else if name("x-forwarded-for") {
                &mut recorded.x_forwarded_for
            } else if name("authorization") {
                &mut authorization
            } else {
                continue;
            };
            *slot = slot.or(text(header.value));
        }
        let (path, query) = match request.path {
            Some(target) => match target.split_once('?') {
                Some((path, query)) => (Some(path), Some(query)),
                None => (Some(target), None),
            },
            None => (None, None),
        };
        recorded.credentials = CredentialSeen::of(authorization, query);
        (path, recorded)
    }
}

/// One refusal as kept in the ring and served as JSON.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize)]
pub struct RefusalRecord {
    pub time_unix_s: u64,
    /// The client address (after trusted-proxy resolution where the request parsed).
    pub client: IpAddr,
    pub method: Option<String>,
    pub path: Option<String>,
    pub origin: Option<String>,
    pub protocols: Option<String>,
    pub user_agent: Option<String>,
    pub x_forwarded_for: Option<String>,
    pub credentials: CredentialSeen,
    /// The HTTP status answered; 0 for a TLS handshake that failed before any HTTP.
    pub status: u16,
    /// The metric label, e.g. `origin_not_allowed`.
    pub reason: &'static str,
    /// The one-line body that was sent.
    pub message: String,
}

/// One core's ring of recent refusals. Recording allocates (it is the refusal path, not the
/// data path); memory stays bounded by the capacity and the per-field bounds.
#[derive(Clone, Debug)]
pub struct DebugRing {
    records: VecDeque<RefusalRecord>,
    capacity: usize,
    recorded_total: u64,
}

impl Default for DebugRing {
    fn default() -> Self {
        DebugRing::with_capacity(DEBUG_RING_CAPACITY)
    }
}

impl DebugRing {
    pub fn new() -> Self {
        DebugRing::default()
    }

    pub fn with_capacity(capacity: usize) -> Self {
        let capacity = capacity.max(1);
        DebugRing {
            records: VecDeque::with_capacity(capacity),
            capacity,
            recorded_total: 0,
        }
    }

    /// Keeps `refusal`, dropping the oldest record when full. Usable for parser refusals
    /// (`path` and `headers` from [`RecordedHeaders::scan`]) and policy refusals alike.
    pub fn record(
        &mut self,
        now_unix_s: u64,
        client: IpAddr,
        path: Option<&str>,
        headers: RecordedHeaders<'_>,
        refusal: &Refusal,
    ) {
        let bounded = |text: Option<&str>, max: usize| text.map(|t| one_line(t, max));
        let record = RefusalRecord {
            time_unix_s: now_unix_s,
            client,
            method: bounded(headers.method, MAX_RECORDED_HEADER_BYTES),
            path: bounded(path, MAX_RECORDED_PATH_BYTES),
            origin: bounded(headers.origin, MAX_RECORDED_HEADER_BYTES),
            protocols: bounded(headers.protocols, MAX_RECORDED_HEADER_BYTES),
            user_agent: bounded(headers.user_agent, MAX_RECORDED_USER_AGENT_BYTES),
            x_forwarded_for: bounded(headers.x_forwarded_for, MAX_RECORDED_HEADER_BYTES),
            credentials: headers.credentials,
            status: refusal.reason.status(),
            reason: refusal.reason.label(),
            message: refusal.message().into_owned(),
        };
        self.push(record);
    }

    fn push(&mut self, record: RefusalRecord) {
        if self.records.len() == self.capacity {
            self.records.pop_front();
        }
        self.records.push_back(record);
        self.recorded_total += 1;
        debug_assert!(self.records.len() <= self.capacity);
    }

    /// Keeps a failed TLS handshake: no request was read, so only the client, the reason
    /// (a `ringws_tls_handshake_failures_total` label) and what rustls said.
    pub fn record_tls(
        &mut self,
        now_unix_s: u64,
        client: IpAddr,
        reason: &'static str,
        message: &str,
    ) {
        self.push(RefusalRecord {
            time_unix_s: now_unix_s,
            client,
            method: None,
            path: None,
            origin: None,
            protocols: None,
            user_agent: None,
            x_forwarded_for: None,
            credentials: CredentialSeen::of(None, None),
            status: 0,
            reason,
            message: one_line(message, MAX_RECORDED_HEADER_BYTES),
        });
    }

    pub fn len(&self) -> usize {
        self.records.len()
    }

    pub fn is_empty(&self) -> bool {
        self.records.is_empty()
    }

    pub fn capacity(&self) -> usize {
        self.capacity
    }

    /// Refusals recorded since start, including those since dropped.
    pub fn recorded_total(&self) -> u64 {
        self.recorded_total
    }

    /// Newest first.
    pub fn records(&self) -> impl Iterator<Item = &RefusalRecord> {
        self.records.iter().rev()
    }

    /// `{"capacity", "recorded_total", "refusals": [newest first]}`.
    pub fn to_json(&self) -> serde_json::Value {
        serde_json::json!({
            "capacity": self.capacity,
            "recorded_total": self.recorded_total,
            "refusals": self.records().collect::<Vec<_>>(),
        })
    }

    /// Several cores' rings as one document, refusals newest first across all of them.
    pub fn merged_json<'r>(rings: impl IntoIterator<Item = &'r DebugRing>) -> serde_json::Value {
        let mut capacity = 0;
        let mut recorded_total = 0;
        let mut records: Vec<&RefusalRecord> = Vec::new();
        for ring in rings {
            capacity += ring.capacity;
            recorded_total += ring.recorded_total;
            records.extend(ring.records());
        }
        records.sort_by_key(|record| std::cmp::Reverse(record.time_unix_s));
        serde_json::json!({
            "capacity": capacity,
            "recorded_total": recorded_total,
            "refusals": records,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::protocol::handshake::{parse_request, HandshakeLimits};
    use crate::protocol::RefusalReason;

    fn peer() -> IpAddr {
        "203.0.113.7".parse().unwrap()
    }

    const REQUEST: &[u8] = b"GET /chat?room=1&token=SECRET-TOKEN HTTP/1.1\r\n\
        Host: h\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
        Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\
        Origin: https://evil.example\r\nSec-WebSocket-Protocol: chat\r\n\
        User-Agent: test-agent/1.0\r\nX-Forwarded-For: 198.51.100.1\r\n\r\n";

    #[test]
    fn records_a_policy_refusal_without_the_credential() {
        let request = parse_request(REQUEST, &HandshakeLimits::default())
            .unwrap()
            .unwrap();
        let mut ring = DebugRing::new();
        let refusal = Refusal::with_detail(RefusalReason::OriginNotAllowed, "origin \"x\"");
        ring.record(
            1_700_000_000,
            peer(),
            Some(request.path),
            RecordedHeaders::from_request(&request),
            &refusal,
        );
        let json = ring.to_json();
        assert_eq!(json["capacity"], DEBUG_RING_CAPACITY);
        assert_eq!(json["recorded_total"], 1);
        let record = &json["refusals"][0];
        assert_eq!(record["time_unix_s"], 1_700_000_000u64);
        assert_eq!(record["client"], "203.0.113.7");
        assert_eq!(record["method"], "GET");
        assert_eq!(record["path"], "/chat");
        assert_eq!(record["origin"], "https://evil.example");
        assert_eq!(record["protocols"], "chat");
        assert_eq!(record["user_agent"], "test-agent/1.0");
        assert_eq!(record["x_forwarded_for"], "198.51.100.1");
        assert_eq!(record["credentials"], "query_token");
        assert_eq!(record["status"], 403);
        assert_eq!(record["reason"], "origin_not_allowed");
        assert_eq!(record["message"], refusal.message().as_ref());
        assert!(!json.to_string().contains("SECRET-TOKEN"));
    }

    #[test]
    fn records_a_parser_refusal_from_the_raw_head() {
        let head = b"POST /api?token=T0K HTTP/1.1\r\nOrigin: https://a.example\r\n\
            Authorization: Bearer T0K\r\nUser-Agent: curl/8\r\n\r\n";
        let (path, headers) = RecordedHeaders::scan(head);
        assert_eq!(path, Some("/api"));
        assert_eq!(headers.method, Some("POST"));
        assert_eq!(headers.origin, Some("https://a.example"));
        assert_eq!(headers.user_agent, Some("curl/8"));
        assert_eq!(headers.credentials, CredentialSeen::AuthorizationHeader);
        let mut ring = DebugRing::new();
        ring.record(
            5,
            peer(),
            path,
            headers,
            &RefusalReason::MethodNotAllowed.into(),
        );
        let json = ring.to_json().to_string();
        assert!(!json.contains("T0K"), "{json}");
        assert!(json.contains("\"status\":405"), "{json}");

        // Partial heads give what they got; garbage gives nothing.
        let (path, headers) = RecordedHeaders::scan(b"GET /partial HTTP/1.1\r\nOrigin: o\r\n");
        assert_eq!(path, Some("/partial"));
        assert_eq!(headers.origin, Some("o"));
        let (path, headers) = RecordedHeaders::scan(b"\x16\x03\x01\x02\x00");
        assert_eq!(path, None);
        assert_eq!(headers.method, None);
    }

    #[test]
    fn records_a_failed_tls_handshake_with_status_zero_and_one_bounded_line() {
        let mut ring = DebugRing::with_capacity(2);
        let long = format!("TLS handshake failed: {}\nsecond line", "x".repeat(5000));
        ring.record_tls(7, peer(), "certificate_rejected", &long);
        let record = ring.records().next().unwrap();
        assert_eq!((record.status, record.reason), (0, "certificate_rejected"));
        assert!(record.path.is_none() && record.method.is_none());
        assert!(!record.message.contains('\n'));
        assert!(
            record.message.len() <= MAX_RECORDED_HEADER_BYTES + 4,
            "{}",
            record.message.len()
        );
        assert_eq!(ring.recorded_total(), 1);
    }

    #[test]
    fn the_ring_is_bounded_and_newest_first() {
        let mut ring = DebugRing::new();
        for i in 0..1000u64 {
            ring.record(
                i,
                peer(),
                Some("/"),
                RecordedHeaders::default(),
                &RefusalReason::NotFound.into(),
            );
            assert!(ring.len() <= DEBUG_RING_CAPACITY);
        }
        assert_eq!(ring.len(), DEBUG_RING_CAPACITY);
        assert_eq!(ring.recorded_total(), 1000);
        let times: Vec<u64> = ring.records().map(|r| r.time_unix_s).collect();
        assert_eq!(times[0], 999);
        assert_eq!(*times.last().unwrap(), 1000 - DEBUG_RING_CAPACITY as u64);
    }

    #[test]
    fn fields_are_bounded_and_one_line() {
        let mut ring = DebugRing::with_capacity(2);
        let long_path = format!("/{}", "p".repeat(10_000));
        let agent = format!("agent\r\n{}", "a".repeat(10_000));
        ring.record(
            0,
            peer(),
            Some(&long_path),
            RecordedHeaders {
                user_agent: Some(&agent),
                origin: Some(&long_path),
                ..RecordedHeaders::default()
            },
            &RefusalReason::NotFound.into(),
        );
        let record = ring.records().next().unwrap();
        assert_eq!(record.path.as_ref().unwrap().len(), MAX_RECORDED_PATH_BYTES);
        assert_eq!(
            record.user_agent.as_ref().unwrap().len(),
            MAX_RECORDED_USER_AGENT_BYTES
        );
        assert!(record
            .user_agent
            .as_ref()
            .unwrap()
            .starts_with("agent\\r\\n"));
        assert!(record.origin.as_ref().unwrap().len() <= MAX_RECORDED_HEADER_BYTES);
    }

    #[test]
    fn merged_rings_interleave_by_time() {
        let mut a = DebugRing::with_capacity(4);
        let mut b = DebugRing::with_capacity(4);
        for t in [1, 3] {
            a.record(
                t,
                peer(),
                None,
                RecordedHeaders::default(),
                &RefusalReason::NotFound.into(),
            );
        }
        b.record(
            2,
            peer(),
            None,
            RecordedHeaders::default(),
            &RefusalReason::ServerFull.into(),
        );
        let json = DebugRing::merged_json([&a, &b]);
        assert_eq!(json["capacity"], 8);
        assert_eq!(json["recorded_total"], 3);
        let times: Vec<u64> = json["refusals"]
            .as_array()
            .unwrap()
            .iter()
            .map(|r| r["time_unix_s"].as_u64().unwrap())
            .collect();
        assert_eq!(times, [3, 2, 1]);
    }
}
