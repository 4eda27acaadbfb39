//! The socket side of doctor: blocking std sockets, one deadline per step, every step recorded.
//! What the bytes mean is decided by the protocol core (the client handshake's checks, the client
//! frame reader) and by `diagnose`; this file only moves them.

use std::io::{self, Read as _, Write as _};
use std::net::{IpAddr, SocketAddr, TcpStream, ToSocketAddrs as _};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use super::diagnose::{ConnectFailure, Observation};
use super::request::Request;
use super::response::{self, Response};
use super::target::Target;
use super::tls::{self, Stream, TlsInfo, TlsPlan};
use crate::protocol::client_handshake::{
    check_upgrade, deflate_answer, parse_response, ResponseError,
};
use crate::protocol::deflate::Answer;
use crate::protocol::frame::append_client_frame;
use crate::protocol::handshake::accept_key;
use crate::protocol::reader::{Event, Limits, ProtocolError, Reader};
use crate::protocol::{CloseCode, Opcode, Role};
use crate::sys::process::random_bytes;

/// Addresses of one host name tried in turn, like a browser falling back from IPv6 to IPv4.
const MAX_ADDRESSES_TRIED: usize = 4;
/// How long to wait for the rest of a refusal's body once its head arrived.
const BODY_WAIT: Duration = Duration::from_secs(1);
/// Bytes of a non-HTTP answer kept for the diagnosis.
const PREFIX_BYTES: usize = 16;
/// Length of the random ping payload.
const PING_PAYLOAD_BYTES: usize = 16;
/// Largest server frame (and message) doctor buffers while waiting for its pong or close; a
/// bigger one arriving first is reported rather than buffered.
pub const MAX_FRAME_BYTES: u64 = 1024 * 1024;
const LIMITS: Limits = Limits {
    max_frame_size: MAX_FRAME_BYTES,
    max_message_size: MAX_FRAME_BYTES,
};

/// What to probe.
pub struct Plan<'a> {
    pub target: &'a Target,
    pub request: &'a Request,
    /// Each step's own limit.
    pub timeout: Duration,
    /// wss://: how to speak TLS after connecting.
    pub tls: Option<&'a TlsPlan>,
}

/// Which head `on_head` is given.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Head {
    Request,
    Response,
}

/// One step of the check.
#[derive(Clone, Debug, PartialEq)]
pub struct Step {
    pub name: String,
    pub ok: bool,
    pub elapsed: Duration,
    pub detail: String,
}

/// Everything the probe saw.
#[derive(Debug, Default)]
pub struct Outcome {
    pub steps: Vec<Step>,
    pub response: Option<Response>,
    /// The first failure; `None` when every step passed.
    pub failure: Option<Observation>,
    pub pong_rtt: Option<Duration>,
    /// wss://: what the TLS step negotiated and the certificate the server sent.
    pub tls: Option<TlsInfo>,
    /// The permessage-deflate the server accepted, with its parameters.
    pub deflate: Option<Answer>,
}

impl Outcome {
    fn record<T>(
        &mut self,
        name: String,
        started: Instant,
        result: Result<(T, String), (Observation, String)>,
    ) -> Result<T, Observation> {
        let elapsed = started.elapsed();
        match result {
            Ok((value, detail)) => {
                self.steps.push(Step {
                    name,
                    ok: true,
                    elapsed,
                    detail,
                });
                Ok(value)
            }
            Err((observation, detail)) => {
                self.steps.push(Step {
                    name,
                    ok: false,
                    elapsed,
                    detail,
                });
                Err(observation)
            }
        }
    }
}

/// Runs every step until one fails. `on_head` sees the request and response heads as sent and
/// received (for `-v`).
pub fn run(plan: &Plan<'_>, on_head: &mut dyn FnMut(Head, &[u8])) -> Outcome {
    let mut outcome = Outcome::default();
    if let Err(observation) = probe(plan, on_head, &mut outcome) {
        outcome.failure = Some(observation);
    }
    outcome
}

fn probe(
    plan: &Plan<'_>,
    on_head: &mut dyn FnMut(Head, &[u8]),
    out: &mut Outcome,
) -> Result<(), Observation> {
    let target = plan.target;
    let timeout = plan.timeout;

    let started = Instant::now();
    let addrs = resolve(&target.host, target.port, timeout);
    let addrs = out.record(format!("resolve {}", target.host), started, addrs)?;

    let started = Instant::now();
    let connected = connect(&addrs, timeout);
    let tcp = out.record("connect".to_owned(), started, connected)?;
    let mut stream = match plan.tls {
        Some(tls) => {
            let started = Instant::now();
            let handshake = tls::handshake(tls, tcp, timeout, &mut out.tls);
            out.record("tls".to_owned(), started, handshake)?
        }
        None => Stream::Plain(tcp),
    };

    let started = Instant::now();
    let upgraded = upgrade(plan, &mut stream, on_head, out);
    let mut session = out.record("upgrade".to_owned(), started, upgraded)?;

    if let Some(answer) = session.deflate {
        out.deflate = Some(answer);
        let started = Instant::now();
        let round_trip = super::deflate::round_trip(&mut stream, &mut session, &answer, timeout);
        out.record("permessage-deflate".to_owned(), started, round_trip)?;
    }

    let started = Instant::now();
    let ponged = ping(&mut stream, &mut session, timeout);
    let rtt = out.record("ping/pong".to_owned(), started, ponged)?;
    out.pong_rtt = Some(rtt);

    let started = Instant::now();
    let closed = close(&mut stream, &mut session, timeout);
    out.record("close".to_owned(), started, closed)
}

/// The WebSocket after the 101: bytes received and not yet read, and the frame reader.
pub(super) struct Session {
    pub buf: Vec<u8>,
    reader: Reader,
    /// The server accepted permessage-deflate: its answer (the reader inflates).
    deflate: Option<Answer>,
}

/// What a server frame (or message) was, owned.
pub(super) enum Received {
    /// A data message, inflated when it arrived compressed (`compressed`: its size then).
    Data {
        payload: Vec<u8>,
        compressed: Option<usize>,
    },
    Ping(Vec<u8>),
    Pong(Vec<u8>),
    Close {
        code: Option<u16>,
        reason: String,
    },
}

pub(super) type StepResult<T> = Result<(T, String), (Observation, String)>;

fn resolve(host: &str, port: u16, timeout: Duration) -> StepResult<Vec<SocketAddr>> {
    if let Ok(ip) = host.parse::<IpAddr>() {
        let addr = SocketAddr::new(ip, port);
        return Ok((vec![addr], format!("{addr} (an address, no lookup)")));
    }
    // getaddrinfo(3) has no timeout of its own: resolve on a thread and stop waiting for it.
    let (tx, rx) = mpsc::channel();
    let query = (host.to_owned(), port);
    std::thread::spawn(move || {
        let result = query
            .to_socket_addrs()
            .map(|addrs| addrs.collect::<Vec<_>>());
        let _ = tx.send(result);
    });
    match rx.recv_timeout(timeout) {
        Ok(Ok(addrs)) if !addrs.is_empty() => {
            let list = addrs
                .iter()
                .map(|a| a.ip().to_string())
                .collect::<Vec<_>>()
                .join(", ");
            Ok((addrs, list))
        }
        Ok(Ok(_)) => Err((
            Observation::Dns {
                host: host.to_owned(),
                error: "the name has no addresses".to_owned(),
            },
            "no addresses".to_owned(),
        )),
        Ok(Err(err)) => Err((
            Observation::Dns {
                host: host.to_owned(),
                error: err.to_string(),
            },
            err.to_string(),
        )),
        Err(_) => Err((
            Observation::DnsTimeout {
                host: host.to_owned(),
            },
            format!("no answer within {timeout:?}"),
        )),
    }
}

fn connect(addrs: &[SocketAddr], timeout: Duration) -> StepResult<TcpStream> {
    let mut failures = Vec::new();
    for addr in addrs.iter().take(MAX_ADDRESSES_TRIED) {
        match TcpStream::connect_timeout(addr, timeout) {
            Ok(stream) => {
                let _ = stream.set_nodelay(true);
                if let Err(err) = stream.set_write_timeout(Some(timeout)) {
                    failures.push((*addr, ConnectFailure::Other(err.to_string())));
                    continue;
                }
                let mut detail = addr.to_string();
                for (failed, failure) in &failures {
                    detail.push_str(&format!(" (after {failed}: {})", failure_text(failure)));
                }
                return Ok((stream, detail));
            }
            Err(err) => failures.push((*addr, classify_connect_error(&err))),
        }
    }
    // Refused says the most (the host is up); report it before timeouts and the rest.
    let rank = |f: &ConnectFailure| match f {
        ConnectFailure::Refused => 0,
        ConnectFailure::TimedOut => 1,
        ConnectFailure::Unreachable(_) => 2,
        ConnectFailure::Other(_) => 3,
    };
    let detail = failures
        .iter()
        .map(|(addr, f)| format!("{addr}: {}", failure_text(f)))
        .collect::<Vec<_>>()
        .join("; ");
    let (addr, failure) = failures
        .into_iter()
        .min_by_key(|(_, f)| rank(f))
        .expect("resolve returns at least one address");
    Err((
        Observation::Connect {
            addr: addr.to_string(),
            failure,
        },
        detail,
    ))
}

fn classify_connect_error(err: &io::Error) -> ConnectFailure {
    match err.kind() {
        io::ErrorKind::ConnectionRefused => ConnectFailure::Refused,
        io::ErrorKind::TimedOut | io::ErrorKind::WouldBlock => ConnectFailure::TimedOut,
        _ => match err.raw_os_error() {
            Some(libc::ENETUNREACH | libc::EHOSTUNREACH | libc::EADDRNOTAVAIL) => {
                ConnectFailure::Unreachable(err.to_string())
            }
            _ => ConnectFailure::Other(err.to_string()),
        },
    }
}

fn failure_text(failure: &ConnectFailure) -> String {
    match failure {
        ConnectFailure::Refused => "refused".to_owned(),
        ConnectFailure::TimedOut => "timed out".to_owned(),
        ConnectFailure::Unreachable(e) | ConnectFailure::Other(e) => e.clone(),
    }
}

/// Sends the request and reads the answer; on success returns the session, with the bytes
/// already received after the head (frames).
fn upgrade(
    plan: &Plan<'_>,
    stream: &mut Stream,
    on_head: &mut dyn FnMut(Head, &[u8]),
    out: &mut Outcome,
) -> StepResult<Session> {
    on_head(Head::Request, &plan.request.head);
    if let Err(err) = stream.write_all(&plan.request.head) {
        let reset = is_reset(&err);
        return Err((
            Observation::ClosedWithoutAnswer { reset },
            format!("sending the request failed: {err}"),
        ));
    }
    let deadline = Instant::now() + plan.timeout;
    let mut buf = Vec::new();
    let head = loop {
        match parse_response(&buf) {
            Ok(Some(head)) => break head,
            Ok(None) => {}
            Err(ResponseError::NotHttp) => {
                return Err((not_http(&buf), "the answer is not HTTP".to_owned()))
            }
            Err(ResponseError::TooLarge { .. }) => {
                return Err((
                    Observation::ResponseTooLarge,
                    "the answer's head is too large".to_owned(),
                ))
            }
        }
        match read_some(stream, &mut buf, deadline) {
            Read::Data => {}
            Read::Eof | Read::Reset if !buf.is_empty() => {
                return Err((
                    not_http(&buf),
                    "the answer ended before its head was complete".to_owned(),
                ))
            }
            Read::Eof => {
                return Err((
                    Observation::ClosedWithoutAnswer { reset: false },
                    "closed without answering".to_owned(),
                ))
            }
            Read::Reset => {
                return Err((
                    Observation::ClosedWithoutAnswer { reset: true },
                    "reset without answering".to_owned(),
                ))
            }
            Read::TimedOut => {
                return Err((
                    Observation::NoAnswer,
                    format!("no answer within {:?}", plan.timeout),
                ))
            }
            Read::Error(err) => {
                return Err((
                    Observation::ClosedWithoutAnswer { reset: false },
                    format!("reading the answer failed: {err}"),
                ))
            }
        }
    };
    on_head(Head::Response, &buf[..head.head_len]);
    let response = Response::from_head(&head);
    out.response = Some(response.clone());
    let status = format!("{} {}", response.status, response.reason);
    if response.status != 101 {
        let body = read_body(stream, &response, &buf[response.head_len..], deadline);
        let detail = match response.header("Content-Type") {
            Some(content_type) => format!("HTTP {status} ({content_type})"),
            None => format!("HTTP {status}"),
        };
        return Err((Observation::Answer { response, body }, detail));
    }
    let request = plan.request;
    let expected = accept_key(request.header("Sec-WebSocket-Key").unwrap_or("").as_bytes());
    let (protocols, extensions) = (request.offered_protocols(), request.offered_extensions());
    let protocols: Vec<&str> = protocols.iter().map(String::as_str).collect();
    let extensions: Vec<&str> = extensions.iter().map(String::as_str).collect();
    let offer = request.header("Sec-WebSocket-Extensions").unwrap_or("");
    let checked = check_upgrade(&head, &expected, &protocols, &extensions)
        .and_then(|upgraded| Ok((deflate_answer(&head, offer)?, upgraded)));
    match checked {
        Ok((deflate, upgraded)) => {
            let mut others: Vec<String> = upgraded
                .extensions
                .iter()
                .filter(|e| !e.eq_ignore_ascii_case("permessage-deflate"))
                .map(|e| (*e).to_owned())
                .collect();
            // The negotiated parameters, as the server gave them.
            others.extend(deflate.map(|answer| answer.to_string()));
            let detail = format!(
                "{status}; Sec-WebSocket-Accept ok; protocol: {}; extensions: {}",
                upgraded.protocol.unwrap_or("none"),
                if others.is_empty() {
                    "none".to_owned()
                } else {
                    others.join(", ")
                }
            );
            let session = Session {
                buf: buf[upgraded.head_len..].to_vec(),
                reader: Reader::new(Role::Client).with_deflate(deflate.is_some()),
                deflate,
            };
            Ok((session, detail))
        }
        Err(problem) => Err((
            Observation::BadUpgrade(problem),
            format!("{status}, but not a valid WebSocket upgrade"),
        )),
    }
}

fn not_http(buf: &[u8]) -> Observation {
    Observation::NotHttp {
        prefix: buf[..buf.len().min(PREFIX_BYTES)].to_vec(),
    }
}

/// Reads as much of a refusal's body as doctor keeps, waiting at most [`BODY_WAIT`].
fn read_body(
    stream: &mut Stream,
    response: &Response,
    already: &[u8],
    deadline: Instant,
) -> Vec<u8> {
    let mut raw = already.to_vec();
    let deadline = deadline.min(Instant::now() + BODY_WAIT);
    while !response::body_complete(response, &raw) {
        if !matches!(read_some(stream, &mut raw, deadline), Read::Data) {
            break;
        }
    }
    response::decode_body(response, &raw)
}

/// A masked control frame with a fresh mask.
pub(super) fn control_frame(opcode: Opcode, payload: &[u8]) -> Vec<u8> {
    let mut frame = Vec::with_capacity(6 + payload.len());
    append_client_frame(&mut frame, true, opcode, payload, random_bytes());
    frame
}

fn ping(stream: &mut Stream, session: &mut Session, timeout: Duration) -> StepResult<Duration> {
    let payload: [u8; PING_PAYLOAD_BYTES] = random_bytes();
    let sent = Instant::now();
    if let Err(err) = stream.write_all(&control_frame(Opcode::Ping, &payload)) {
        return Err(io_failure("sending a ping", err));
    }
    let deadline = sent + timeout;
    let mut mismatched = 0;
    let mut data_messages = 0;
    loop {
        while let Some(received) = next_received(session)? {
            match received {
                Received::Pong(echoed) if echoed == payload => {
                    let rtt = sent.elapsed();
                    let mut detail = format!(
                        "pong in {}, {PING_PAYLOAD_BYTES}-byte payload echoed",
                        super::report::format_ms(rtt)
                    );
                    if data_messages > 0 {
                        detail
                            .push_str(&format!(" ({data_messages} data message(s) arrived first)"));
                    }
                    return Ok((rtt, detail));
                }
                Received::Pong(_) => mismatched += 1,
                Received::Ping(their) => {
                    if let Err(err) = stream.write_all(&control_frame(Opcode::Pong, &their)) {
                        return Err(io_failure("answering the server's ping", err));
                    }
                }
                Received::Close { code, reason } => return Err(closed_by_server(code, reason)),
                Received::Data { .. } => data_messages += 1,
            }
        }
        match read_some(stream, &mut session.buf, deadline) {
            Read::Data => {}
            Read::Eof => {
                return Err((
                    Observation::DroppedAfterUpgrade { reset: false },
                    "the connection closed without a close frame".to_owned(),
                ))
            }
            Read::Reset => {
                return Err((
                    Observation::DroppedAfterUpgrade { reset: true },
                    "the connection was reset".to_owned(),
                ))
            }
            Read::TimedOut => {
                return Err((
                    Observation::NoPong { mismatched },
                    format!("no pong within {timeout:?}"),
                ))
            }
            Read::Error(err) => return Err(io_failure("waiting for the pong", err)),
        }
    }
}

pub(super) fn closed_by_server(code: Option<u16>, reason: String) -> (Observation, String) {
    let detail = match code {
        Some(code) => format!("the server sent close {code}"),
        None => "the server sent an empty close frame".to_owned(),
    };
    (Observation::ClosedAfterUpgrade { code, reason }, detail)
}

fn close(stream: &mut Stream, session: &mut Session, timeout: Duration) -> StepResult<()> {
    let frame = control_frame(Opcode::Close, &CloseCode::NORMAL.0.to_be_bytes());
    if let Err(err) = stream.write_all(&frame) {
        return Err(io_failure("sending the close frame", err));
    }
    let deadline = Instant::now() + timeout;
    let code = 'answer: loop {
        while let Some(received) = next_received(session)? {
            if let Received::Close { code, .. } = received {
                break 'answer code;
            }
        }
        match read_some(stream, &mut session.buf, deadline) {
            Read::Data => {}
            Read::Eof | Read::Reset => {
                return Err((
                    Observation::BadClose {
                        detail: "the server closed TCP without answering the close frame"
                            .to_owned(),
                    },
                    "no close frame before TCP closed".to_owned(),
                ))
            }
            Read::TimedOut => {
                return Err((
                    Observation::CloseNotAnswered,
                    format!("no close frame within {timeout:?}"),
                ))
            }
            Read::Error(err) => return Err(io_failure("waiting for the close frame", err)),
        }
    };
    if let Some(code) = code.filter(|c| !matches!(c, 1000 | 1001)) {
        let (meaning, _) = super::diagnose::close_code_meaning(code);
        return Err((
            Observation::BadClose {
                detail: format!("the server answered close 1000 with close {code} ({meaning})"),
            },
            format!("answered with close {code}"),
        ));
    }
    let answered = match code {
        Some(code) => format!("close {code} answered"),
        None => "empty close answered".to_owned(),
    };
    // The server closes TCP first (RFC 6455 §7.1.1); wait for it.
    let deadline = Instant::now() + timeout;
    let buf = &mut session.buf;
    loop {
        buf.clear();
        match read_some(stream, buf, deadline) {
            Read::Data => {}
            Read::Eof => return Ok(((), format!("{answered}; the server closed TCP"))),
            Read::Reset => return Ok(((), format!("{answered}; the server reset TCP"))),
            Read::TimedOut => {
                return Err((
                    Observation::TcpNotClosed,
                    format!("{answered}, but TCP stayed open for {timeout:?}"),
                ))
            }
            Read::Error(err) => return Err(io_failure("waiting for the TCP close", err)),
        }
    }
}

/// The next message or control frame among the bytes received; `None`: read more.
pub(super) fn next_received(
    session: &mut Session,
) -> Result<Option<Received>, (Observation, String)> {
    let (consumed, at) = match session.reader.locate(&mut session.buf, &LIMITS) {
        Ok(found) => found,
        Err(err) => return Err(frame_failure(err)),
    };
    let received = at.map(
        |at| match session.reader.event(at, &session.buf[..consumed]) {
            Event::Message(_, payload) => Received::Data {
                payload: payload.to_vec(),
                compressed: at.compressed_len(),
            },
            Event::Ping(payload) => Received::Ping(payload.to_vec()),
            Event::Pong(payload) => Received::Pong(payload.to_vec()),
            Event::Close { code, reason } => Received::Close {
                code: code.map(|c| c.0),
                reason: reason.to_owned(),
            },
        },
    );
    session.buf.drain(..consumed);
    Ok(received)
}

fn frame_failure(err: ProtocolError) -> (Observation, String) {
    let detail = if err.code == CloseCode::MESSAGE_TOO_BIG {
        format!(
            "the server sent a message over {MAX_FRAME_BYTES} bytes before answering; doctor \
             buffers no more"
        )
    } else {
        format!("invalid frame from the server: {err}")
    };
    (
        Observation::BadFrame {
            detail: detail.clone(),
        },
        detail,
    )
}

pub(super) fn io_failure(during: &'static str, err: io::Error) -> (Observation, String) {
    (
        Observation::Io {
            during,
            error: err.to_string(),
        },
        format!("{during}: {err}"),
    )
}

pub(super) enum Read {
    Data,
    Eof,
    Reset,
    TimedOut,
    Error(io::Error),
}

/// One `read(2)` appended to `buf`, bounded by `deadline`.
pub(super) fn read_some(stream: &mut Stream, buf: &mut Vec<u8>, deadline: Instant) -> Read {
    let mut chunk = [0u8; 16 * 1024];
    loop {
        let now = Instant::now();
        if now >= deadline {
            return Read::TimedOut;
        }
        // A zero read timeout means "block forever" to the OS, so never pass one.
        let left = (deadline - now).max(Duration::from_millis(1));
        if let Err(err) = stream.tcp().set_read_timeout(Some(left)) {
            return Read::Error(err);
        }
        return match stream.read(&mut chunk) {
            Ok(0) => Read::Eof,
            Ok(n) => {
                buf.extend_from_slice(&chunk[..n]);
                Read::Data
            }
            Err(err) if err.kind() == io::ErrorKind::Interrupted => continue,
            // TLS: the server closed TCP without a close_notify alert.
            Err(err) if err.kind() == io::ErrorKind::UnexpectedEof => Read::Eof,
            Err(err)
                if matches!(
                    err.kind(),
                    io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut
                ) =>
            {
                Read::TimedOut
            }
            Err(err) if is_reset(&err) => Read::Reset,
            Err(err) => Read::Error(err),
        };
    }
}

fn is_reset(err: &io::Error) -> bool {
    matches!(
        err.kind(),
        io::ErrorKind::ConnectionReset
            | io::ErrorKind::ConnectionAborted
            | io::ErrorKind::BrokenPipe
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn session(bytes: &[u8], deflate: bool) -> Session {
        Session {
            buf: bytes.to_vec(),
            reader: Reader::new(Role::Client).with_deflate(deflate),
            deflate: deflate.then(Answer::default),
        }
    }

    fn all(session: &mut Session) -> Result<Vec<String>, Observation> {
        let mut seen = Vec::new();
        while let Some(received) = next_received(session).map_err(|(o, _)| o)? {
            seen.push(match received {
                Received::Data {
                    compressed: Some(_),
                    payload,
                } => format!("compressed {}", String::from_utf8_lossy(&payload)),
                Received::Data { .. } => "data".to_owned(),
                Received::Ping(p) => format!("ping {p:?}"),
                Received::Pong(p) => format!("pong {p:?}"),
                Received::Close { code, reason } => format!("close {code:?} {reason}"),
            });
        }
        Ok(seen)
    }

    #[test]
    fn reads_server_frames_as_they_complete() {
        let mut s = session(&[0x81, 0x02, b'h'], false);
        assert_eq!(all(&mut s).unwrap(), Vec::<String>::new());
        s.buf
            .extend_from_slice(&[b'i', 0x8A, 0x01, 7, 0x88, 0x03, 0x03, 0xE8, b'x']);
        assert_eq!(
            all(&mut s).unwrap(),
            ["data", "pong [7]", "close Some(1000) x"]
        );
        assert!(s.buf.is_empty());
    }

    #[test]
    fn names_what_breaks_the_protocol() {
        let masked = [0x8A, 0x80, 0, 0, 0, 0];
        let Err(Observation::BadFrame { detail }) = all(&mut session(&masked, false)) else {
            panic!("a masked frame is refused");
        };
        assert!(detail.contains("masked server frame"), "{detail}");
        // "Hello" compressed (RFC 7692 §7.2.3.1): RSV1 is an error unless deflate was
        // negotiated; then the message is inflated.
        let hello = [0xC1, 0x07, 0xf2, 0x48, 0xcd, 0xc9, 0xc9, 0x07, 0x00];
        assert!(matches!(
            all(&mut session(&hello, false)),
            Err(Observation::BadFrame { .. })
        ));
        assert_eq!(
            all(&mut session(&hello, true)).unwrap(),
            ["compressed Hello"]
        );
        let Err(Observation::BadFrame { detail }) = all(&mut session(&[0xC1, 0x01, 0xFF], true))
        else {
            panic!("a frame that does not inflate is refused");
        };
        assert!(detail.contains("not valid DEFLATE"), "{detail}");
        let mut huge = vec![0x82, 0x7F];
        huge.extend_from_slice(&(MAX_FRAME_BYTES + 1).to_be_bytes());
        let Err(Observation::BadFrame { detail }) = all(&mut session(&huge, false)) else {
            panic!("an oversized frame is refused");
        };
        assert!(detail.contains("doctor buffers no more"), "{detail}");
    }
}
