//! From what doctor observed to the most likely cause and its fix. Pure: each rule is a function
//! of the observation and the request's context, tested without a socket.

use super::response::Response;
use crate::protocol::client_handshake::{UpgradeError, MAX_RESPONSE_HEAD_BYTES};

pub(super) mod refusal;
mod tls;

use refusal::answer;
pub(super) use tls::{TlsProblem, TlsSeen};

/// Exit code: the endpoint upgraded, answered a ping and closed cleanly.
pub const EXIT_OK: i32 = 0;
/// Exit code: bad arguments or URL (clap's usage errors use it too).
pub const EXIT_USAGE: i32 = 2;
/// Exit code: no TCP connection (DNS failure, refused, timeout, unreachable).
pub const EXIT_CONNECT: i32 = 3;
/// Exit code: connected, but the upgrade was refused or its answer is invalid.
pub const EXIT_HANDSHAKE: i32 = 4;
/// Exit code: upgraded, then the WebSocket misbehaved (closed, no pong, bad close).
pub const EXIT_WEBSOCKET: i32 = 5;

/// What the rules need to know about the attempt besides the observation.
#[derive(Clone, Debug, Default)]
pub struct Context {
    /// The URL was `wss://`: the upgrade ran over TLS.
    pub tls_url: bool,
    /// `host:port`.
    pub authority: String,
    /// Path and query as in the URL.
    pub target: String,
    pub origin: Option<String>,
    pub token_sent: bool,
    pub offered_protocols: Vec<String>,
    /// Lowercase names of default headers `--header` replaced or removed.
    pub overridden_headers: Vec<String>,
    pub timeout_ms: u64,
}

impl Context {
    fn overridden(&self, header: &str) -> bool {
        self.overridden_headers.iter().any(|h| h == header)
    }

    fn timeout(&self) -> String {
        if self.timeout_ms % 1000 == 0 {
            format!("{} s", self.timeout_ms / 1000)
        } else {
            format!("{} ms", self.timeout_ms)
        }
    }
}

/// Why `connect(2)` failed.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ConnectFailure {
    Refused,
    TimedOut,
    Unreachable(String),
    Other(String),
}

/// The first thing that went wrong.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Observation {
    Dns {
        host: String,
        error: String,
    },
    DnsTimeout {
        host: String,
    },
    Connect {
        addr: String,
        failure: ConnectFailure,
    },
    /// Connected and sent the request; nothing came back within the timeout.
    NoAnswer,
    /// Connected and sent the request; the server closed (`reset`: reset) without a byte.
    ClosedWithoutAnswer {
        reset: bool,
    },
    /// Bytes that are not an HTTP response; the first few kept.
    NotHttp {
        prefix: Vec<u8>,
    },
    ResponseTooLarge,
    /// An HTTP answer that is not a WebSocket upgrade (for a `wss://` URL: any HTTP answer).
    Answer {
        response: Response,
        body: Vec<u8>,
    },
    BadUpgrade(UpgradeError),
    /// A close frame arrived before the pong.
    ClosedAfterUpgrade {
        code: Option<u16>,
        reason: String,
    },
    /// TCP ended (or was reset) before the pong, without a close frame.
    DroppedAfterUpgrade {
        reset: bool,
    },
    /// No pong within the timeout; `mismatched` pongs with another payload came instead.
    NoPong {
        mismatched: usize,
    },
    BadFrame {
        detail: String,
    },
    Io {
        during: &'static str,
        error: String,
    },
    CloseNotAnswered,
    TcpNotClosed,
    BadClose {
        detail: String,
    },
    /// wss://: the TLS handshake failed.
    Tls(Box<TlsSeen>),
}

impl Observation {
    /// The exit code this failure ends doctor with.
    pub fn exit_code(&self) -> i32 {
        use Observation::*;
        match self {
            Dns { .. } | DnsTimeout { .. } | Connect { .. } => EXIT_CONNECT,
            NoAnswer
            | ClosedWithoutAnswer { .. }
            | NotHttp { .. }
            | ResponseTooLarge
            | Answer { .. }
            | BadUpgrade(_)
            | Tls(_) => EXIT_HANDSHAKE,
            ClosedAfterUpgrade { .. }
            | DroppedAfterUpgrade { .. }
            | NoPong { .. }
            | BadFrame { .. }
            | Io { .. }
            | CloseNotAnswered
            | TcpNotClosed
            | BadClose { .. } => EXIT_WEBSOCKET,
        }
    }
}

/// The most likely cause, and what to do about it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Diagnosis {
    pub cause: String,
    pub fix: String,
}

fn diagnosis(cause: impl Into<String>, fix: impl Into<String>) -> Diagnosis {
    Diagnosis {
        cause: cause.into(),
        fix: fix.into(),
    }
}

/// What a proxy must do to pass a WebSocket upgrade.
const PROXY_FIX: &str = "configure the proxy to pass WebSocket upgrades: nginx needs \
    `proxy_http_version 1.1;`, `proxy_set_header Upgrade $http_upgrade;` and \
    `proxy_set_header Connection \"upgrade\";` in the location (see deploy/nginx/ringws.conf); \
    HAProxy in `mode http` passes them as they are (see deploy/haproxy/ringws.cfg); a cloud load \
    balancer needs WebSocket support on its listener. Then run doctor again.";

const FIND_THE_HOP: &str = "find the hop that changes the handshake: run `ringws doctor -v` \
    against ringws's own listen address, then through each proxy in turn, and compare the \
    response heads.";

/// Explains `observation`.
pub fn diagnose(ctx: &Context, observation: &Observation) -> Diagnosis {
    use Observation::*;
    let authority = &ctx.authority;
    match observation {
        Dns { host, error } => diagnosis(
            format!("the host name {host:?} could not be resolved: {error}"),
            format!(
                "check the name for typos and that it exists in DNS (`getent hosts {host}`); \
                 inside a container, check its resolver; or use the IP address"
            ),
        ),
        DnsTimeout { host } => diagnosis(
            format!("resolving {host:?} took longer than {}", ctx.timeout()),
            "the resolver is slow or unreachable: check /etc/resolv.conf and the DNS server, or \
             use the IP address",
        ),
        Connect { addr, failure } => connect_failure(ctx, addr, failure),
        Tls(seen) => tls::tls(ctx, seen),
        NoAnswer => diagnosis(
            format!(
                "{authority} accepted the TCP connection but did not answer the upgrade request \
                 within {}: the server is stalled or overloaded, a proxy is waiting on its \
                 upstream, or the port serves a protocol other than HTTP",
                ctx.timeout()
            ),
            "check the server's load and logs; behind a proxy, run doctor against ringws's own \
             listen address; raise --timeout to see whether the answer is only slow",
        ),
        ClosedWithoutAnswer { reset } => {
            let how = if *reset { "reset" } else { "closed" };
            diagnosis(
                format!(
                    "{authority} accepted the TCP connection and {how} it without answering: \
                     typical of a port that expects TLS (it drops plain text), a server that \
                     does not speak HTTP, or one refusing new connections"
                ),
                format!(
                    "if the endpoint is served over TLS, connect with wss://{authority}{}; \
                     otherwise look at the server's log at this moment (ringws logs every \
                     refusal with the peer address under --log ringws=debug)",
                    ctx.target
                ),
            )
        }
        NotHttp { prefix } => match tls_record(prefix) {
            Some(kind) => diagnosis(
                format!(
                    "{authority} answered with a TLS {kind} record ({}): the port expects TLS, \
                     and doctor spoke plain HTTP because the URL is ws://",
                    hex(prefix)
                ),
                format!(
                    "use wss://{authority}{} (ringws serves wss:// on its tls_listen port, or a \
                     TLS terminator in front of it does)",
                    ctx.target
                ),
            ),
            None => diagnosis(
                format!(
                    "{authority} answered with bytes that are not HTTP ({}): another protocol \
                     listens on this port",
                    printable(prefix)
                ),
                "check the port: ringws prints its address when it starts (`ringws listening on \
                 ws://...`)",
            ),
        },
        ResponseTooLarge => diagnosis(
            format!(
                "{authority} answered with an HTTP head larger than {} KiB or with too many \
                 headers: not a WebSocket server's answer",
                MAX_RESPONSE_HEAD_BYTES / 1024
            ),
            "check what serves this port; run doctor -v to see the answer",
        ),
        Answer { response, body } => answer(ctx, response, body),
        BadUpgrade(problem) => bad_upgrade(problem),
        ClosedAfterUpgrade { code, reason } => closed_after_upgrade(*code, reason),
        DroppedAfterUpgrade { reset } => diagnosis(
            format!(
                "the TCP connection was {} right after the 101, without a close frame (a browser \
                 reports close code 1006): the server or a proxy dropped it",
                if *reset { "reset" } else { "closed" }
            ),
            "look at the server's log at this moment (a crash, an app that drops the \
             connection), and at the proxy's tunnel timeouts (nginx proxy_read_timeout, HAProxy \
             timeout tunnel)",
        ),
        NoPong { mismatched: 0 } => diagnosis(
            format!(
                "no pong within {} of a ping: a proxy is buffering frames, or the server does \
                 not answer pings",
                ctx.timeout()
            ),
            "ringws answers every ping at once: if doctor against ringws's own listen address \
             gets a pong, the proxy holds frames back (nginx: `proxy_buffering off;`, and no \
             inspecting middlebox in between); otherwise check that the server answers pings \
             (RFC 6455 §5.5.2 requires it)",
        ),
        NoPong { mismatched } => diagnosis(
            format!(
                "{mismatched} pong(s) came back with another payload than the ping's, and none \
                 with the same payload within {}: RFC 6455 §5.5.3 requires the pong to echo the \
                 ping's payload",
                ctx.timeout()
            ),
            format!("a server or proxy alters control frames; {FIND_THE_HOP}"),
        ),
        BadFrame { detail } => diagnosis(
            format!("{detail}; a browser fails the connection (close code 1002 or 1006)"),
            format!("a server bug or a proxy corrupting frames; {FIND_THE_HOP}"),
        ),
        Io { during, error } => diagnosis(
            format!("the connection failed while {during}: {error}"),
            "look at the server's and proxies' logs at this moment",
        ),
        CloseNotAnswered => diagnosis(
            format!(
                "the server did not answer doctor's close frame (1000) with its own within {}",
                ctx.timeout()
            ),
            "an endpoint must answer a close frame (RFC 6455 §5.5.1); a proxy buffering frames \
             causes this too (nginx: `proxy_buffering off;`)",
        ),
        TcpNotClosed => diagnosis(
            format!(
                "the server answered the close but kept the TCP connection open for {}: after the \
                 close handshake the server closes TCP first (RFC 6455 §7.1.1)",
                ctx.timeout()
            ),
            "harmless for browsers, which close after a while, but it holds a socket on each \
             side; check the server's or proxy's close handling",
        ),
        BadClose { detail } => diagnosis(
            format!("the close handshake went wrong: {detail}"),
            "the server should answer a close frame with a valid close frame (RFC 6455 §5.5.1, \
             §7.4)",
        ),
    }
}

fn connect_failure(ctx: &Context, addr: &str, failure: &ConnectFailure) -> Diagnosis {
    let port = addr.rsplit(':').next().unwrap_or("");
    match failure {
        ConnectFailure::Refused => diagnosis(
            format!(
                "nothing listens on {addr}: the connection was refused (the server is not \
                 running, listens on another port, or listens on 127.0.0.1 only while you \
                 connect to another address)"
            ),
            format!(
                "start the server or fix the port in the URL; on the server, `ss -ltn 'sport = \
                 :{port}'` shows what listens there. ringws prints its address at start \
                 (`ringws listening on ws://...`); its default listen address 127.0.0.1:9001 is \
                 reachable from the same machine only"
            ),
        ),
        ConnectFailure::TimedOut => diagnosis(
            format!(
                "connecting to {addr} got no answer within {}: a firewall or security group \
                 drops the packets, or the host is down or the address wrong",
                ctx.timeout()
            ),
            format!(
                "check the firewall rules between here and the server (and cloud security \
                 groups) for TCP port {port}, and that the address is right"
            ),
        ),
        ConnectFailure::Unreachable(error) => diagnosis(
            format!("{addr} is unreachable: {error}"),
            "check the address and this machine's network and routes; if it is an IPv6 address, \
             try the IPv4 one",
        ),
        ConnectFailure::Other(error) => diagnosis(
            format!("connecting to {addr} failed: {error}"),
            "check the address and this machine's network",
        ),
    }
}

/// `wss://`, and the port looks like TLS: doctor can go no further.
/// The record type's name when `prefix` starts like a TLS record (type 20..=23, version 3.x).
fn tls_record(prefix: &[u8]) -> Option<&'static str> {
    match prefix {
        [0x15, 0x03, ..] => Some("alert"),
        [0x16, 0x03, ..] => Some("handshake"),
        [0x14 | 0x17, 0x03, ..] => Some("record"),
        _ => None,
    }
}

fn bad_upgrade(problem: &UpgradeError) -> Diagnosis {
    let mangled = "a proxy or server is mangling the handshake; browsers fail such a connection \
                   (close code 1006)";
    match problem {
        // Doctor reports any other status as the answer it is; this is for completeness.
        UpgradeError::Status(status) => diagnosis(
            format!("the server answered {status} instead of 101 Switching Protocols"),
            "run doctor -v to see the whole answer",
        ),
        UpgradeError::UpgradeHeader { got } => diagnosis(
            format!(
                "the 101 answer has {} instead of \"Upgrade: websocket\": {mangled}",
                got.as_ref().map_or("no Upgrade header".to_owned(), |g| format!("\"Upgrade: {g}\""))
            ),
            FIND_THE_HOP,
        ),
        UpgradeError::ConnectionHeader { got } => diagnosis(
            format!(
                "the 101 answer has {} instead of \"Connection: Upgrade\": {mangled}",
                got.as_ref().map_or("no Connection header".to_owned(), |g| format!("\"Connection: {g}\""))
            ),
            FIND_THE_HOP,
        ),
        UpgradeError::AcceptMissing => diagnosis(
            format!("the 101 answer has no Sec-WebSocket-Accept: {mangled}, or the server does not implement RFC 6455"),
            FIND_THE_HOP,
        ),
        UpgradeError::AcceptWrong { expected, got } => diagnosis(
            format!(
                "Sec-WebSocket-Accept is {got:?} but the key doctor sent needs {expected:?}: {mangled} \
                 (it changed the key on the way in or the answer on the way out), or a cache replayed \
                 an old 101"
            ),
            format!("make sure Sec-WebSocket-Key reaches the server unchanged and nothing caches the upgrade; {FIND_THE_HOP}"),
        ),
        UpgradeError::ProtocolNotOffered { got, offered } => diagnosis(
            format!(
                "the server selected subprotocol {got:?}, which doctor did not offer ({}); browsers fail \
                 the connection when that happens (close code 1006)",
                if offered.is_empty() { "it offered none".to_owned() } else { format!("offered: {}", offered.join(", ")) }
            ),
            format!(
                "if clients should speak {got}, offer it (doctor: --protocol {got}); a server must only \
                 select a protocol the client listed (ringws never does otherwise), so look for a proxy \
                 or another server adding it"
            ),
        ),
        UpgradeError::ExtensionNotOffered { got, offered } => diagnosis(
            format!(
                "the server accepted extension(s) \"{got}\" that doctor did not offer ({}); browsers fail \
                 the connection when that happens (close code 1006)",
                if offered.is_empty() { "it offered none".to_owned() } else { format!("offered: {}", offered.join(", ")) }
            ),
            format!("a server must only accept extensions the client offered; {FIND_THE_HOP}"),
        ),
        UpgradeError::DeflateAnswer { got, error } => diagnosis(
            format!(
                "the server accepted permessage-deflate with \"{got}\", which breaks RFC 7692: \
                 {error}; browsers fail the connection when that happens (close code 1006)"
            ),
            format!(
                "fix the server's permessage-deflate answer or turn compression off there (ringws \
                 answers only what RFC 7692 allows); {FIND_THE_HOP}"
            ),
        ),
    }
}

/// What a close code sent right after the upgrade means, and what to do.
fn closed_after_upgrade(code: Option<u16>, reason: &str) -> Diagnosis {
    let reason = if reason.is_empty() {
        String::new()
    } else {
        format!(" \"{reason}\"")
    };
    let Some(code) = code else {
        return diagnosis(
            "the server closed the connection right after the 101 with an empty close frame (a \
             browser reports close code 1005)",
            "look at the server's log at this moment: the application closed the connection",
        );
    };
    let (meaning, fix) = close_code_meaning(code);
    diagnosis(
        format!("the server closed the connection right after the 101 with close code {code}{reason}: {meaning}"),
        fix,
    )
}

/// The meaning of a close code a server sends, and the usual fix. Shared with the docs' table.
pub fn close_code_meaning(code: u16) -> (&'static str, &'static str) {
    match code {
        1000 => (
            "a normal closure: the application ended the session at once",
            "check the application's rules for new connections (it may expect a first message, \
             or a path or token it did not get)",
        ),
        1001 => (
            "going away: the server is shutting down or restarting, or a proxy is",
            "retry after a moment; during a ringws restart, clients reconnect after the 1001",
        ),
        1002 => (
            "protocol error: the server considered a frame invalid",
            "doctor's frames are valid, so a proxy in between alters frames; find it with \
             `ringws doctor` against each hop",
        ),
        1003 => (
            "unsupported data: the server does not accept this kind of message",
            "send the message type (text or binary) the application expects",
        ),
        1007 => (
            "invalid payload: a text message was not valid UTF-8",
            "send valid UTF-8 in text messages, or use binary messages",
        ),
        1008 => (
            "policy violation: the application refused this client after the upgrade (an \
             authentication or origin check in the app)",
            "check the application's log for why it refused this client",
        ),
        1009 => (
            "message too big: a frame or message exceeded the server's limit",
            "send smaller messages, or raise max_frame_size / max_message_size",
        ),
        1011 => (
            "internal error: the server failed while handling the connection",
            "look at the server's log at this moment",
        ),
        1012 => (
            "service restart: the server is restarting",
            "reconnect after a moment",
        ),
        1013 => (
            "try again later: the server is overloaded",
            "reconnect with backoff; add capacity if it persists",
        ),
        3000..=4999 => (
            "a code defined by the application or a library",
            "look up the code in the application's documentation",
        ),
        _ => (
            "a code RFC 6455 does not allow on the wire",
            "the server or a proxy is broken; a browser fails the connection with 1002",
        ),
    }
}

fn hex(bytes: &[u8]) -> String {
    bytes
        .iter()
        .take(8)
        .map(|b| format!("{b:02x}"))
        .collect::<Vec<_>>()
        .join(" ")
}

fn printable(bytes: &[u8]) -> String {
    let take = &bytes[..bytes.len().min(24)];
    if take
        .iter()
        .all(|b| (0x20..0x7f).contains(b) || *b == b'\r' || *b == b'\n')
    {
        format!("{:?}", String::from_utf8_lossy(take))
    } else {
        format!("bytes {}", hex(take))
    }
}

#[cfg(test)]
mod tests {
    use super::refusal::ringws_reason;
    use super::*;
    use crate::protocol::RefusalReason;

    fn ctx() -> Context {
        Context {
            authority: "example.com:9001".into(),
            target: "/chat?room=1".into(),
            timeout_ms: 5000,
            ..Context::default()
        }
    }

    fn response(status: u16, reason: &str, headers: &[(&str, &str)]) -> Response {
        Response {
            status,
            reason: reason.into(),
            headers: headers
                .iter()
                .map(|(n, v)| (n.to_string(), v.to_string()))
                .collect(),
            head_len: 0,
        }
    }

    fn answer(status: u16, reason: &str, headers: &[(&str, &str)], body: &str) -> Observation {
        Observation::Answer {
            response: response(status, reason, headers),
            body: body.as_bytes().to_vec(),
        }
    }

    fn ringws_refusal(reason: RefusalReason) -> Observation {
        let headers: Vec<_> = reason.headers().to_vec();
        answer(
            reason.status(),
            reason.reason_phrase(),
            &headers,
            &format!("{}\n", reason.message()),
        )
    }

    fn both(d: &Diagnosis) -> String {
        format!("{} | {}", d.cause, d.fix)
    }

    #[track_caller]
    fn assert_mentions(d: &Diagnosis, words: &[&str]) {
        let text = both(d);
        for word in words {
            assert!(text.contains(word), "{word:?} not in: {text}");
        }
    }

    #[test]
    fn exit_codes_by_phase() {
        let connect = Observation::Connect {
            addr: "a".into(),
            failure: ConnectFailure::Refused,
        };
        assert_eq!(connect.exit_code(), EXIT_CONNECT);
        assert_eq!(
            Observation::DnsTimeout { host: "h".into() }.exit_code(),
            EXIT_CONNECT
        );
        assert_eq!(Observation::NoAnswer.exit_code(), EXIT_HANDSHAKE);
        assert_eq!(answer(200, "OK", &[], "").exit_code(), EXIT_HANDSHAKE);
        assert_eq!(
            Observation::BadUpgrade(UpgradeError::AcceptMissing).exit_code(),
            EXIT_HANDSHAKE
        );
        assert_eq!(
            Observation::NoPong { mismatched: 0 }.exit_code(),
            EXIT_WEBSOCKET
        );
        assert_eq!(
            Observation::DroppedAfterUpgrade { reset: false }.exit_code(),
            EXIT_WEBSOCKET
        );
        assert_eq!(Observation::TcpNotClosed.exit_code(), EXIT_WEBSOCKET);
    }

    #[test]
    fn connection_failures() {
        let d = diagnose(
            &ctx(),
            &Observation::Connect {
                addr: "10.0.0.1:9001".into(),
                failure: ConnectFailure::Refused,
            },
        );
        assert_mentions(&d, &["nothing listens on 10.0.0.1:9001", "sport = :9001"]);
        let d = diagnose(
            &ctx(),
            &Observation::Connect {
                addr: "10.0.0.1:9001".into(),
                failure: ConnectFailure::TimedOut,
            },
        );
        assert_mentions(&d, &["within 5 s", "firewall", "port 9001"]);
        let d = diagnose(
            &ctx(),
            &Observation::Dns {
                host: "nope.invalid".into(),
                error: "Name or service not known".into(),
            },
        );
        assert_mentions(
            &d,
            &["\"nope.invalid\" could not be resolved", "getent hosts"],
        );
    }

    #[test]
    fn tls_on_a_ws_url() {
        let alert = Observation::NotHttp {
            prefix: vec![0x15, 0x03, 0x03, 0x00, 0x02, 0x02, 0x46],
        };
        let d = diagnose(&ctx(), &alert);
        assert_mentions(
            &d,
            &[
                "TLS alert",
                "15 03 03",
                "expects TLS",
                "wss://example.com:9001/chat",
            ],
        );
        let d = diagnose(&ctx(), &Observation::ClosedWithoutAnswer { reset: false });
        assert_mentions(&d, &["without answering", "TLS", "wss://"]);
        let nginx = answer(
            400,
            "Bad Request",
            &[("Server", "nginx"), ("Content-Type", "text/html")],
            "<html><head><title>400 The plain HTTP request was sent to HTTPS port</title>",
        );
        assert_mentions(&diagnose(&ctx(), &nginx), &["expects TLS", "use wss://"]);
    }

    #[test]
    fn ordinary_web_server() {
        let d = diagnose(
            &ctx(),
            &answer(
                200,
                "OK",
                &[("Content-Type", "text/html")],
                "<!DOCTYPE html><html>",
            ),
        );
        assert_mentions(
            &d,
            &[
                "ordinary web server",
                "HTML",
                "proxy_set_header Upgrade",
                "deploy/nginx/ringws.conf",
                "deploy/haproxy",
            ],
        );
        let d = diagnose(
            &ctx(),
            &answer(
                301,
                "Moved Permanently",
                &[("Location", "https://example.com/chat")],
                "",
            ),
        );
        assert_mentions(
            &d,
            &[
                "redirecting to https://example.com/chat",
                "wss://example.com/chat",
            ],
        );
    }

    #[test]
    fn every_ringws_reason_is_recognised_and_quoted() {
        for &reason in RefusalReason::ALL {
            let body = format!("{}\n", reason.message());
            assert_eq!(
                ringws_reason(body.as_bytes()),
                Some((reason, reason.message()))
            );
            let detailed = format!("{}: with a detail\n", reason.message());
            assert_eq!(
                ringws_reason(detailed.as_bytes()).map(|(r, _)| r),
                Some(reason)
            );
            let d = diagnose(&ctx(), &ringws_refusal(reason));
            assert!(
                d.cause.contains(reason.message()),
                "{reason:?}: {}",
                d.cause
            );
            assert!(d.cause.starts_with("ringws "), "{reason:?}: {}", d.cause);
        }
        assert_eq!(ringws_reason(b"Bad Request"), None);
        let not_a_detail = format!("{}x", RefusalReason::NotFound.message());
        assert_eq!(ringws_reason(not_a_detail.as_bytes()), None);
    }

    #[test]
    fn proxies_that_drop_the_upgrade() {
        let d = diagnose(&ctx(), &ringws_refusal(RefusalReason::HttpVersion));
        assert_mentions(&d, &["HTTP/1.0", "downgraded", "proxy_http_version 1.1;"]);
        let d = diagnose(&ctx(), &ringws_refusal(RefusalReason::NotAnUpgrade));
        assert_mentions(
            &d,
            &[
                "plain HTTP GET",
                "removed both",
                "hop-by-hop",
                "proxy_set_header Connection",
            ],
        );
        let d = diagnose(&ctx(), &ringws_refusal(RefusalReason::MissingUpgrade));
        assert_mentions(
            &d,
            &[
                "missing \"Upgrade: websocket\" header",
                "a proxy in front removed them",
                "deploy/nginx/ringws.conf",
            ],
        );
        let d = diagnose(&ctx(), &ringws_refusal(RefusalReason::TlsOnPlainPort));
        assert_mentions(&d, &["over TLS", "proxy_pass http://"]);
    }

    #[test]
    fn refusals_caused_by_the_callers_own_header() {
        let ctx = Context {
            overridden_headers: vec!["sec-websocket-version".into()],
            ..ctx()
        };
        let d = diagnose(&ctx, &ringws_refusal(RefusalReason::UnsupportedVersion));
        assert_mentions(
            &d,
            &[
                "Sec-WebSocket-Version header was changed",
                "drop that --header",
            ],
        );
    }

    #[test]
    fn refusals_by_something_else() {
        let d = diagnose(
            &ctx(),
            &answer(
                400,
                "Bad Request",
                &[("Server", "envoy")],
                "upgrade not allowed",
            ),
        );
        assert_mentions(
            &d,
            &[
                "Server: envoy",
                "\"upgrade not allowed\"",
                "not ringws's answer",
                "proxy_http_version",
            ],
        );
        let d = diagnose(
            &ctx(),
            &answer(
                426,
                "Upgrade Required",
                &[("Sec-WebSocket-Version", "8, 7")],
                "",
            ),
        );
        assert_mentions(&d, &["version 8, 7, not 13"]);
    }

    #[test]
    fn auth_origin_path_and_limits() {
        let unauthorized = answer(
            401,
            "Unauthorized",
            &[("WWW-Authenticate", "Bearer error=\"invalid_token\"")],
            "token expired\n",
        );
        let d = diagnose(&ctx(), &unauthorized);
        assert_mentions(
            &d,
            &[
                "sent no token",
                "WWW-Authenticate: Bearer error=\"invalid_token\"",
                "--token",
            ],
        );
        let with_token = Context {
            token_sent: true,
            ..ctx()
        };
        assert_mentions(
            &diagnose(&with_token, &unauthorized),
            &["rejected the token", "\"token expired\"", "exp"],
        );

        let forbidden = answer(403, "Forbidden", &[], "origin not allowed\n");
        assert_mentions(
            &diagnose(&ctx(), &forbidden),
            &["refused the origin", "no Origin", "--origin"],
        );
        let with_origin = Context {
            origin: Some("https://evil.example".into()),
            ..ctx()
        };
        assert_mentions(
            &diagnose(&with_origin, &forbidden),
            &["Origin: https://evil.example", "allowed_origins"],
        );

        let d = diagnose(&ctx(), &answer(404, "Not Found", &[], ""));
        assert_mentions(&d, &["no WebSocket endpoint at /chat", "location"]);
        let d = diagnose(
            &ctx(),
            &answer(429, "Too Many Requests", &[("Retry-After", "7")], ""),
        );
        assert_mentions(&d, &["rate-limiting", "Retry-After: 7", "trusted_proxies"]);
        let d = diagnose(&ctx(), &ringws_refusal(RefusalReason::ServerFull));
        assert_mentions(
            &d,
            &["connection limit", "Retry-After: 1", "max_connections"],
        );
        let d = diagnose(
            &ctx(),
            &answer(502, "Bad Gateway", &[("Server", "nginx")], ""),
        );
        assert_mentions(&d, &["could not reach its upstream", "ringws-upstream"]);
    }

    /// What ringws sends for `refusal`, rendered by its own writer and parsed as doctor does.
    fn rendered(refusal: &crate::protocol::Refusal) -> Observation {
        let mut raw = Vec::new();
        crate::protocol::handshake::write_refusal(&mut raw, refusal);
        let Ok(Some(head)) = crate::protocol::client_handshake::parse_response(&raw) else {
            panic!("unparsable refusal: {:?}", String::from_utf8_lossy(&raw));
        };
        let response = super::super::response::Response::from_head(&head);
        let body = raw[response.head_len..].to_vec();
        Observation::Answer { response, body }
    }

    #[track_caller]
    fn assert_from_ringws(d: &Diagnosis, label: &str) {
        assert!(d.cause.starts_with("ringws "), "{}", d.cause);
        assert!(
            d.cause.contains(&format!("(reason {label})")),
            "{}",
            d.cause
        );
    }

    fn with_origin(origin: &str) -> Context {
        Context {
            origin: Some(origin.into()),
            ..ctx()
        }
    }

    #[test]
    fn origin_not_allowed_names_who_set_the_origin() {
        use crate::policy::OriginPolicy;
        let policy = OriginPolicy::new(vec!["https://app.example.com".parse().unwrap()], false);
        let refused = rendered(&policy.check(Some("https://evil.example")).unwrap_err());

        let d = diagnose(&with_origin("https://evil.example"), &refused);
        assert_from_ringws(&d, "origin_not_allowed");
        assert_mentions(
            &d,
            &[
                "refused the origin",
                "origin \"https://evil.example\" is not allowed (allowed: https://app.example.com)",
                "doctor sent Origin: https://evil.example",
                "add https://evil.example to the server's allowed_origins",
            ],
        );
        assert!(!both(&d).contains("a proxy or firewall"), "{}", both(&d));

        // doctor sent none, yet ringws refused one: a proxy set it.
        let d = diagnose(&ctx(), &refused);
        assert_from_ringws(&d, "origin_not_allowed");
        assert_mentions(
            &d,
            &[
                "doctor sent no Origin header",
                "a proxy in front set the origin ringws refused",
                "proxy_set_header Origin",
            ],
        );
    }

    #[test]
    fn missing_origin_names_who_dropped_it() {
        use crate::policy::OriginPolicy;
        let policy = OriginPolicy::new(vec!["https://app.example.com".parse().unwrap()], false);
        let refused = rendered(&policy.check(None).unwrap_err());

        let d = diagnose(&ctx(), &refused);
        assert_from_ringws(&d, "missing_origin");
        assert_mentions(
            &d,
            &[
                "doctor sent no Origin header",
                "repeat with --origin",
                "allow_missing_origin",
            ],
        );

        let d = diagnose(&with_origin("https://app.example.com"), &refused);
        assert_from_ringws(&d, "missing_origin");
        assert_mentions(
            &d,
            &[
                "doctor sent Origin: https://app.example.com, so a proxy in front removed it",
                "proxy_set_header Origin",
                "allow_missing_origin = true",
            ],
        );

        let removed_by_header = Context {
            overridden_headers: vec!["origin".into()],
            ..ctx()
        };
        let d = diagnose(&removed_by_header, &refused);
        assert_mentions(
            &d,
            &[
                "Origin header was changed or removed with --header",
                "drop that --header",
            ],
        );
    }

    #[test]
    fn unauthorized_tells_a_refused_token_from_one_that_never_arrived() {
        use crate::policy::AuthFailure;
        let with_token = Context {
            token_sent: true,
            ..ctx()
        };

        let no_token = rendered(&AuthFailure::Missing.to_refusal());
        let d = diagnose(&ctx(), &no_token);
        assert_from_ringws(&d, "unauthorized");
        assert_mentions(
            &d,
            &[
                "requires authentication and doctor sent no token",
                "no token was sent",
                "WWW-Authenticate: Bearer realm=\"ringws\"",
                "--token T",
                "--token-in-query",
            ],
        );
        // doctor sent one, ringws's challenge says none arrived: a proxy dropped it.
        let d = diagnose(&with_token, &no_token);
        assert_from_ringws(&d, "unauthorized");
        assert_mentions(
            &d,
            &[
                "doctor sent a token, and ringws received none",
                "removed the Authorization header",
                "proxy_set_header Authorization",
            ],
        );

        let bad = rendered(&AuthFailure::BadSignature.to_refusal());
        let d = diagnose(&with_token, &bad);
        assert_from_ringws(&d, "unauthorized");
        assert_mentions(
            &d,
            &[
                "ringws rejected the token doctor sent",
                "bad signature",
                "error=\"invalid_token\"",
                "signed with the server's secret",
            ],
        );
    }

    #[test]
    fn subprotocol_mismatch_says_what_doctor_offered() {
        use crate::policy::SubprotocolPolicy;
        let policy = SubprotocolPolicy::new(vec!["chat.v2".into(), "chat.v1".into()], true);
        let none_offered = rendered(&policy.select(None).unwrap_err());

        let d = diagnose(&ctx(), &none_offered);
        assert_from_ringws(&d, "subprotocol_mismatch");
        assert_mentions(
            &d,
            &[
                "HTTP 400 Bad Request",
                "supported: chat.v2, chat.v1",
                "doctor offered none",
                "--protocol NAME",
                "require_subprotocol = false",
            ],
        );

        let offering = Context {
            offered_protocols: vec!["mqtt".into()],
            ..ctx()
        };
        let d = diagnose(
            &offering,
            &rendered(&policy.select(Some("mqtt")).unwrap_err()),
        );
        assert_from_ringws(&d, "subprotocol_mismatch");
        assert_mentions(
            &d,
            &["offered \"mqtt\"", "doctor offered mqtt", "--protocol NAME"],
        );

        // doctor offered one, ringws received none: a proxy dropped the header.
        let offering = Context {
            offered_protocols: vec!["chat.v1".into()],
            ..ctx()
        };
        let d = diagnose(&offering, &none_offered);
        assert_from_ringws(&d, "subprotocol_mismatch");
        assert_mentions(
            &d,
            &[
                "doctor offered chat.v1, so a proxy in front removed the Sec-WebSocket-Protocol",
                "make the proxy pass Sec-WebSocket-Protocol",
            ],
        );
    }

    #[test]
    fn rate_limited_quotes_the_delay() {
        let d = diagnose(
            &ctx(),
            &rendered(&crate::protocol::Refusal::rate_limited(7)),
        );
        assert_from_ringws(&d, "rate_limited");
        assert_mentions(
            &d,
            &[
                "ringws is rate-limiting handshakes from this client address",
                "Retry-After: 7",
                "retry in 7 s",
                "handshake_rate_per_ip",
                "trusted_proxies",
            ],
        );
    }

    #[test]
    fn invalid_upgrades() {
        let d = diagnose(
            &ctx(),
            &Observation::BadUpgrade(UpgradeError::AcceptWrong {
                expected: "x=".into(),
                got: "y=".into(),
            }),
        );
        assert_mentions(
            &d,
            &[
                "Sec-WebSocket-Accept is \"y=\"",
                "needs \"x=\"",
                "mangling the handshake",
            ],
        );
        let d = diagnose(
            &ctx(),
            &Observation::BadUpgrade(UpgradeError::ProtocolNotOffered {
                got: "mqtt".into(),
                offered: vec!["chat".into()],
            }),
        );
        assert_mentions(&d, &["\"mqtt\"", "offered: chat", "--protocol mqtt"]);
    }

    #[test]
    fn after_the_upgrade() {
        let d = diagnose(
            &ctx(),
            &Observation::ClosedAfterUpgrade {
                code: Some(1008),
                reason: "no ticket".into(),
            },
        );
        assert_mentions(&d, &["close code 1008 \"no ticket\"", "policy violation"]);
        let d = diagnose(&ctx(), &Observation::DroppedAfterUpgrade { reset: false });
        assert_mentions(&d, &["without a close frame", "1006"]);
        let d = diagnose(&ctx(), &Observation::NoPong { mismatched: 0 });
        assert_mentions(
            &d,
            &[
                "no pong within 5 s",
                "buffering frames",
                "proxy_buffering off",
            ],
        );
        let d = diagnose(&ctx(), &Observation::NoPong { mismatched: 2 });
        assert_mentions(&d, &["2 pong(s)", "echo"]);
    }

    #[test]
    fn close_codes_have_meanings() {
        for code in [
            1000, 1001, 1002, 1003, 1007, 1008, 1009, 1011, 1012, 1013, 4000, 1005,
        ] {
            let (meaning, fix) = close_code_meaning(code);
            assert!(!meaning.is_empty() && !fix.is_empty());
        }
        assert!(close_code_meaning(1009).1.contains("max_message_size"));
    }
}
