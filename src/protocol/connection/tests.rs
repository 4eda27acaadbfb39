//! The connection on a virtual clock: every lifecycle rule without a socket or a sleep, and a
//! client and a server talking to each other in memory.

use super::*;
use crate::protocol::client_handshake;
use crate::protocol::deflate::CLIENT_OFFER;
use crate::protocol::frame::{append_client_frame, Opcode};
use crate::protocol::reader::Flow;
use crate::protocol::RefusalReason;

const KEY: &str = "dGhlIHNhbXBsZSBub25jZQ==";

mod deflate;

trait ServerAt {
    fn server_at(now: Tick) -> Connection;
}

impl ServerAt for Connection {
    fn server_at(now: Tick) -> Connection {
        Connection::server(now, 0)
    }
}

fn settings() -> Settings {
    Settings {
        limits: Limits {
            max_frame_size: 1 << 20,
            max_message_size: 1 << 20,
        },
        handshake: HandshakeLimits::default(),
        handshake_timeout_ticks: 100,
        close_timeout_ticks: 50,
        ping_interval_ticks: 300,
        pong_timeout_ticks: 100,
        idle_timeout_ticks: None,
        message_timeout_ticks: 100,
        min_receive_bytes_per_tick: 10,
        write_stall_timeout_ticks: 200,
        min_send_bytes_per_tick: 10,
        max_outbound_bytes: 1000,
        message_rate_milli_per_tick: 0,
        message_burst: 100,
        compression: Compression::default(),
    }
}

/// An in-memory transport: takes up to `window` bytes per call (unlimited by default).
#[derive(Default)]
struct Mem {
    wire: Vec<u8>,
    /// Every note but the memory accounting, which is summed in `held`.
    notes: Vec<Note>,
    held: isize,
    window: Option<usize>,
    broken: bool,
    masks: u8,
}

impl Output for Mem {
    fn transmit(&mut self, head: &[u8], body: &[u8]) -> Result<usize, TransportError> {
        if self.broken {
            return Err(TransportError);
        }
        let mut take = head.len() + body.len();
        if let Some(w) = self.window.as_mut() {
            take = take.min(*w);
            *w -= take;
        }
        let both = [head, body].concat();
        self.wire.extend_from_slice(&both[..take]);
        Ok(take)
    }
    fn note(&mut self, note: Note) {
        match note {
            Note::Held(delta) => self.held += delta,
            other => self.notes.push(other),
        }
    }
    fn mask_key(&mut self) -> [u8; 4] {
        self.masks = self.masks.wrapping_add(1);
        [self.masks, 0x5a, 0xa5, 0x3c]
    }
}

impl Mem {
    fn take_wire(&mut self) -> Vec<u8> {
        std::mem::take(&mut self.wire)
    }
}

/// What a driver saw from one batch of input.
#[derive(Debug, PartialEq, Eq)]
enum Seen {
    Request(String),
    BadRequest(RefusalReason),
    Response(usize),
    Message(MessageKind, Vec<u8>),
}

/// Feeds `bytes` the way a driver does: carried input first, events until the connection needs
/// more. A server request is accepted (or refused, when `refuse` is set); a client response is
/// taken as valid once its head is complete.
fn feed(conn: &mut Connection, now: Tick, bytes: &[u8], out: &mut Mem) -> Vec<Seen> {
    feed_with(conn, now, bytes, out, &settings())
}

/// [`feed`] under other settings.
fn feed_with(
    conn: &mut Connection,
    now: Tick,
    bytes: &[u8],
    out: &mut Mem,
    cfg: &Settings,
) -> Vec<Seen> {
    let mut buf = vec![0u8; 1 << 16];
    let (mut reader, carried) = conn.begin_receive(&mut buf);
    buf[carried..carried + bytes.len()].copy_from_slice(bytes);
    let len = carried + bytes.len();
    let mut pos = 0;
    let mut seen = Vec::new();
    loop {
        let input = conn.receive(now, cfg, &mut reader, &mut buf[pos..len], out);
        pos += input.consumed;
        match input.event {
            None => break,
            Some(Received::Request(request, _)) => {
                seen.push(Seen::Request(request.path.to_string()));
                assert!(conn.accept(now, cfg, &request, None, &[], out));
            }
            Some(Received::BadRequest(refusal, _)) => {
                seen.push(Seen::BadRequest(refusal.reason));
                conn.refuse(now, &settings(), &refusal, out);
            }
            Some(Received::Response(head)) => {
                let Some(response) = client_handshake::parse_response(head).unwrap() else {
                    break;
                };
                assert_eq!(response.status, 101);
                // Judged as ringws's client offer (tests/deflate.rs offers it).
                let answer = client_handshake::deflate_answer(&response, CLIENT_OFFER).unwrap();
                let head_len = response.head_len;
                seen.push(Seen::Response(head_len));
                conn.upgraded(now, answer.as_ref(), out);
                pos += head_len;
            }
            Some(Received::Message(kind, payload)) => {
                seen.push(Seen::Message(kind, payload.to_vec()));
            }
        }
    }
    conn.end_receive(now, reader, &buf[pos..len], out);
    seen
}

fn request(path: &str) -> Vec<u8> {
    format!(
        "GET {path} HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
         Sec-WebSocket-Key: {KEY}\r\nSec-WebSocket-Version: 13\r\n\r\n"
    )
    .into_bytes()
}

fn client_frame(fin: bool, opcode: Opcode, payload: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    append_client_frame(&mut out, fin, opcode, payload, [1, 2, 3, 4]);
    out
}

/// The frames a server wrote, decoded with a client's reader.
fn server_frames(bytes: &[u8]) -> Vec<(Opcode, Vec<u8>)> {
    let mut input = bytes.to_vec();
    let mut frames = Vec::new();
    let mut reader = Reader::new(Role::Client);
    reader
        .feed(&mut input, &Limits::default(), |e| {
            frames.push(match e {
                Event::Message(MessageKind::Text, p) => (Opcode::Text, p.to_vec()),
                Event::Message(MessageKind::Binary, p) => (Opcode::Binary, p.to_vec()),
                Event::Ping(p) => (Opcode::Ping, p.to_vec()),
                Event::Pong(p) => (Opcode::Pong, p.to_vec()),
                Event::Close { code, reason } => {
                    let mut p = code.map_or(vec![], |c| c.0.to_be_bytes().to_vec());
                    p.extend_from_slice(reason.as_bytes());
                    (Opcode::Close, p)
                }
            });
            Flow::Continue
        })
        .expect("the server writes valid frames");
    frames
}

fn close_payload(code: u16, reason: &str) -> Vec<u8> {
    let mut p = code.to_be_bytes().to_vec();
    p.extend_from_slice(reason.as_bytes());
    p
}

/// A server connection upgraded at tick `now`, with the 101 taken off the wire.
fn open_server(now: Tick, out: &mut Mem) -> Connection {
    let mut conn = Connection::server_at(now);
    let seen = feed(&mut conn, now, &request("/"), out);
    assert_eq!(seen, [Seen::Request("/".into())]);
    assert!(out.take_wire().starts_with(b"HTTP/1.1 101"));
    assert_eq!(conn.phase(), Phase::Open);
    conn.poll_effects();
    conn
}

fn deadline(conn: &Connection) -> Tick {
    conn.next_deadline(&settings(), 0).expect("a deadline")
}

fn timeout(conn: &mut Connection, now: Tick, out: &mut Mem) -> Effects {
    conn.handle_timeout(now, &settings(), 0, out);
    conn.poll_effects()
}

#[test]
fn an_idle_connection_is_24_bytes() {
    assert!(
        std::mem::size_of::<Connection>() <= 24,
        "{}",
        std::mem::size_of::<Connection>()
    );
}

#[test]
fn a_silent_socket_meets_the_handshake_timeout_with_a_reset() {
    let mut out = Mem::default();
    let mut conn = Connection::server_at(1000);
    assert!(
        conn.poll_effects().deadline_changed(),
        "the handshake deadline is armed"
    );
    assert_eq!(deadline(&conn), 1100);
    // A partial request does not extend it.
    assert!(feed(&mut conn, 1050, b"GET / HTTP/1.1\r\n", &mut out).is_empty());
    assert_eq!(deadline(&conn), 1100);
    let early = timeout(&mut conn, 1099, &mut out);
    assert!(
        early.deadline_changed() && !early.release(),
        "early: only re-armed"
    );
    let fx = timeout(&mut conn, 1100, &mut out);
    assert!(fx.release() && !fx.left_open());
    assert_eq!(out.notes, [Note::HandshakeTimeout]);
    assert_eq!(conn.release_kind(), ReleaseKind::Abortive);
    assert!(out.wire.is_empty(), "no answer to a silent socket");
}

#[test]
fn a_request_split_across_reads_is_upgraded_with_the_frames_behind_it() {
    let mut out = Mem::default();
    let mut conn = Connection::server_at(0);
    let mut bytes = request("/chat");
    bytes.extend(client_frame(true, Opcode::Text, b"hi"));
    assert!(feed(&mut conn, 0, &bytes[..10], &mut out).is_empty());
    let seen = feed(&mut conn, 1, &bytes[10..], &mut out);
    assert_eq!(
        seen,
        [
            Seen::Request("/chat".into()),
            Seen::Message(MessageKind::Text, b"hi".to_vec())
        ]
    );
    assert!(conn.extra.is_none(), "nothing held once idle");
}

#[test]
fn a_bad_request_is_refused_and_the_connection_lingers_until_the_close_timeout() {
    let mut out = Mem::default();
    let mut conn = Connection::server_at(0);
    let seen = feed(&mut conn, 5, b"GET / HTTP/1.1\r\nHost: x\r\n\r\n", &mut out);
    assert_eq!(seen, [Seen::BadRequest(RefusalReason::NotAnUpgrade)]);
    assert!(out.take_wire().starts_with(b"HTTP/1.1 426"));
    assert_eq!(conn.phase(), Phase::Lingering);
    let fx = conn.poll_effects();
    assert!(fx.shutdown_write() && !fx.left_open());
    assert!(
        feed(&mut conn, 6, b"more junk", &mut out).is_empty(),
        "input discarded"
    );
    assert_eq!(deadline(&conn), 55);
    assert!(timeout(&mut conn, 55, &mut out).release());
    assert_eq!(out.notes, [Note::CloseTimeout]);
}

#[test]
fn a_silent_peer_is_pinged_then_closed_at_the_pong_timeout() {
    let mut out = Mem::default();
    let mut conn = open_server(0, &mut out);
    assert_eq!(
        deadline(&conn),
        300,
        "one ping interval after the last bytes"
    );
    assert!(timeout(&mut conn, 300, &mut out).deadline_changed());
    assert_eq!(server_frames(&out.take_wire()), [(Opcode::Ping, vec![])]);
    assert_eq!(deadline(&conn), 400, "the pong timeout");
    let fx = timeout(&mut conn, 400, &mut out);
    assert!(fx.release() && fx.left_open());
    assert_eq!(
        server_frames(&out.take_wire()),
        [(Opcode::Close, close_payload(1001, "heartbeat timeout"))]
    );
    assert_eq!(out.notes, [Note::PingSent, Note::HeartbeatTimeout]);
    assert_eq!(
        conn.end(),
        Some((Initiator::Server, Some(CloseCode::GOING_AWAY)))
    );
}

#[test]
fn any_bytes_answer_a_ping_and_push_the_next_one_back() {
    let mut out = Mem::default();
    let mut conn = open_server(0, &mut out);
    timeout(&mut conn, 300, &mut out);
    out.take_wire();
    feed(
        &mut conn,
        350,
        &client_frame(true, Opcode::Pong, b""),
        &mut out,
    );
    assert!(conn.poll_effects().deadline_changed());
    assert_eq!(
        deadline(&conn),
        650,
        "next ping one interval after the pong"
    );
    // A stale timer firing at the old pong deadline only re-arms.
    let fx = timeout(&mut conn, 400, &mut out);
    assert!(!fx.release() && fx.deadline_changed());
    assert!(out.wire.is_empty());
}

#[test]
fn the_peers_ping_is_answered_with_its_payload() {
    let mut out = Mem::default();
    let mut conn = open_server(0, &mut out);
    feed(
        &mut conn,
        1,
        &client_frame(true, Opcode::Ping, b"abc"),
        &mut out,
    );
    assert_eq!(server_frames(&out.wire), [(Opcode::Pong, b"abc".to_vec())]);
}

#[test]
fn the_idle_timeout_counts_messages_not_pings() {
    let mut cfg_idle = settings();
    cfg_idle.idle_timeout_ticks = Some(100);
    let mut out = Mem::default();
    let mut conn = open_server(0, &mut out);
    feed(
        &mut conn,
        50,
        &client_frame(true, Opcode::Text, b"x"),
        &mut out,
    );
    feed(
        &mut conn,
        120,
        &client_frame(true, Opcode::Ping, b""),
        &mut out,
    );
    out.take_wire();
    assert_eq!(conn.next_deadline(&cfg_idle, 0), Some(150));
    conn.handle_timeout(150, &cfg_idle, 0, &mut out);
    assert_eq!(conn.phase(), Phase::Closing);
    assert_eq!(
        server_frames(&out.take_wire()),
        [(Opcode::Close, close_payload(1001, "idle timeout"))]
    );
    assert_eq!(out.notes, [Note::IdleTimeout]);
    // The close timeout then ends it if the peer never answers.
    assert_eq!(conn.next_deadline(&cfg_idle, 0), Some(200));
    conn.handle_timeout(200, &cfg_idle, 0, &mut out);
    assert!(conn.is_released());
    assert_eq!(
        conn.end(),
        Some((Initiator::Server, Some(CloseCode::GOING_AWAY)))
    );
}

#[test]
fn an_app_close_waits_for_the_peers_close_then_releases_gracefully() {
    let mut out = Mem::default();
    let mut conn = open_server(0, &mut out);
    conn.close(10, &settings(), CloseCode::NORMAL, "bye", &mut out);
    assert_eq!(
        server_frames(&out.take_wire()),
        [(Opcode::Close, close_payload(1000, "bye"))]
    );
    assert!(!conn.send(11, &settings(), MessageKind::Text, b"late", &mut out));
    assert!(out.wire.is_empty(), "nothing is sent after the close frame");
    let seen = feed(
        &mut conn,
        12,
        &client_frame(true, Opcode::Text, b"ignored"),
        &mut out,
    );
    assert!(seen.is_empty(), "data after our close is not delivered");
    feed(
        &mut conn,
        13,
        &client_frame(true, Opcode::Close, &close_payload(1000, "")),
        &mut out,
    );
    assert!(conn.is_released());
    assert_eq!(conn.release_kind(), ReleaseKind::Graceful);
    assert_eq!(out.notes, [Note::CloseAcknowledged]);
    assert_eq!(
        conn.end(),
        Some((Initiator::Server, Some(CloseCode::NORMAL)))
    );
}

#[test]
fn the_peers_close_is_echoed_and_the_server_closes_first() {
    let mut out = Mem::default();
    let mut conn = open_server(0, &mut out);
    feed(
        &mut conn,
        5,
        &client_frame(true, Opcode::Close, &close_payload(4001, "x")),
        &mut out,
    );
    assert_eq!(
        server_frames(&out.take_wire()),
        [(Opcode::Close, close_payload(4001, ""))]
    );
    let fx = conn.poll_effects();
    assert!(fx.release() && fx.left_open());
    assert_eq!(conn.end(), Some((Initiator::Peer, Some(CloseCode(4001)))));
}

#[test]
fn a_protocol_error_sends_its_code_and_lingers() {
    let mut out = Mem::default();
    let mut conn = open_server(0, &mut out);
    // An unmasked frame from a client.
    feed(&mut conn, 5, &[0x81, 0x01, b'x'], &mut out);
    let frames = server_frames(&out.take_wire());
    assert_eq!(frames.len(), 1);
    assert_eq!(frames[0].1[..2], 1002u16.to_be_bytes());
    assert_eq!(conn.phase(), Phase::Lingering);
    assert!(
        matches!(out.notes[..], [Note::ProtocolError(e)] if e.code == CloseCode::PROTOCOL_ERROR)
    );
    let fx = conn.poll_effects();
    assert!(fx.left_open() && fx.shutdown_write());
    assert_eq!(
        conn.end(),
        Some((Initiator::Server, Some(CloseCode::PROTOCOL_ERROR)))
    );
}

#[test]
fn the_message_rate_limit_closes_with_1008() {
    let mut cfg = settings();
    cfg.message_rate_milli_per_tick = 1000; // one message per tick
    cfg.message_burst = 2;
    let mut out = Mem::default();
    let mut conn = open_server(0, &mut out);
    let three = [
        client_frame(true, Opcode::Text, b"1"),
        client_frame(true, Opcode::Text, b"2"),
        client_frame(true, Opcode::Text, b"3"),
    ]
    .concat();
    let mut buf = three.clone();
    let (mut reader, _) = conn.begin_receive(&mut []);
    let mut delivered = 0;
    let mut pos = 0;
    loop {
        let input = conn.receive(7, &cfg, &mut reader, &mut buf[pos..], &mut out);
        pos += input.consumed;
        match input.event {
            Some(Received::Message(..)) => delivered += 1,
            None => break,
            other => panic!("{other:?}"),
        }
    }
    assert_eq!(delivered, 2, "the burst passes, the third is refused");
    assert_eq!(out.notes, [Note::RateLimited]);
    assert_eq!(
        server_frames(&out.wire),
        [(
            Opcode::Close,
            close_payload(1008, "message rate limit exceeded")
        )]
    );
    assert_eq!(conn.phase(), Phase::Closing);
}

#[test]
fn a_queue_that_drains_below_min_send_rate_is_dropped_with_a_reset() {
    // No heartbeat in the way: only the queue's deadlines.
    let cfg = Settings {
        ping_interval_ticks: 10_000,
        ..settings()
    };
    let deadline = |conn: &Connection| conn.next_deadline(&cfg, 0).expect("a deadline");
    let timeout = |conn: &mut Connection, now: Tick, out: &mut Mem| {
        conn.handle_timeout(now, &cfg, 0, out);
        conn.poll_effects()
    };
    let mut out = Mem::default();
    let mut conn = open_server(0, &mut out);
    out.window = Some(4);
    assert!(conn.send(10, &settings(), MessageKind::Binary, &[7; 5000], &mut out));
    let fx = conn.poll_effects();
    assert!(fx.want_writable() && fx.deadline_changed());
    assert_eq!(conn.queued_bytes(), 5004 - 4);
    assert_eq!(
        deadline(&conn),
        110,
        "the judged window opens half of write_stall_timeout in"
    );
    // Half of write_stall_timeout in, nothing is judged yet.
    out.window = Some(1500);
    conn.on_writable(&mut out);
    assert!(
        conn.poll_effects().want_writable(),
        "still backed up: asks again"
    );
    assert!(!timeout(&mut conn, 110, &mut out).release());
    assert_eq!(deadline(&conn), 210, "judged at write_stall_timeout");
    // From then on the queue must have drained 10 bytes per tick since it began, judged every
    // 100 ticks: 2,000 bytes by tick 210 (it began at 10).
    out.window = Some(500);
    conn.on_writable(&mut out);
    assert!(
        !timeout(&mut conn, 210, &mut out).release(),
        "2,004 drained"
    );
    assert_eq!(deadline(&conn), 310);
    // Bytes that merely move do not keep it: 10 more by tick 310, 2,014 < 3,000.
    out.window = Some(10);
    conn.on_writable(&mut out);
    let fx = timeout(&mut conn, 310, &mut out);
    assert!(fx.release() && fx.left_open());
    assert_eq!(conn.release_kind(), ReleaseKind::Abortive);
    assert!(out.notes.contains(&Note::WriteStall { queued_bytes: 2990 }));
    assert_eq!(
        out.notes.last(),
        Some(&Note::QueueEnded),
        "the queue is accounted for"
    );
}

#[test]
fn a_reader_that_keeps_min_send_rate_receives_a_large_message_and_its_pongs() {
    let mut out = Mem::default();
    let mut conn = open_server(0, &mut out);
    let cfg = settings();
    out.window = Some(0);
    // Far past max_outbound_bytes: one message may always be queued. It goes out in fragments,
    // so pongs find frame boundaries.
    let big: Vec<u8> = (0..200_000u32).map(|i| i as u8).collect();
    assert!(conn.send(0, &cfg, MessageKind::Binary, &big, &mut out));
    let mut taken = Vec::new();
    let mut pings = 0;
    for tick in 1..=2000 {
        // The peer reads 200 bytes per tick (20 times the minimum) and pings every 50 ticks.
        if tick % 50 == 0 {
            pings += 1;
            feed(
                &mut conn,
                tick,
                &client_frame(true, Opcode::Ping, b"p"),
                &mut out,
            );
        }
        out.window = Some(200);
        conn.on_writable(&mut out);
        taken.extend(out.take_wire());
        if conn.queued_bytes() == 0 {
            break;
        }
        if conn
            .next_deadline(&cfg, 0)
            .is_some_and(|d| reached(d, tick))
        {
            conn.handle_timeout(tick, &cfg, 0, &mut out);
        }
        assert_eq!(conn.phase(), Phase::Open, "closed at tick {tick}");
    }
    assert_eq!(conn.queued_bytes(), 0);
    let mut reader = Reader::new(Role::Client);
    let (mut message, mut pongs) = (None, 0);
    reader
        .feed(&mut taken, &Limits::default(), |e| {
            match e {
                Event::Message(MessageKind::Binary, p) => message = Some(p.to_vec()),
                Event::Pong(_) => pongs += 1,
                other => panic!("{other:?}"),
            }
            Flow::Continue
        })
        .expect("valid frames");
    assert_eq!(
        message.as_deref(),
        Some(&big[..]),
        "the whole message arrived"
    );
    // A pong waits at most one fragment; one waiting is replaced by the next (RFC 6455 §5.5.3).
    assert!(
        pongs >= 3 && pongs <= pings,
        "{pongs} pongs for {pings} pings"
    );
    assert!(!out
        .notes
        .iter()
        .any(|n| matches!(n, Note::SlowConsumer { .. })));
}

#[test]
fn a_message_announced_but_not_sent_is_closed_at_the_message_timeout() {
    let mut out = Mem::default();
    let mut conn = open_server(0, &mut out);
    // A header announcing 1 MiB (within the limits), then one byte every 30 ticks: any byte is
    // life to the heartbeat, but not progress for the message.
    let header = client_frame(true, Opcode::Binary, &vec![0; 1 << 20]);
    feed(&mut conn, 10, &header[..15], &mut out);
    assert!(conn.poll_effects().deadline_changed());
    assert_eq!(
        deadline(&conn),
        60,
        "the judged window opens half a timeout in"
    );
    feed(&mut conn, 40, &[0], &mut out);
    assert!(!timeout(&mut conn, 60, &mut out).release());
    assert_eq!(deadline(&conn), 110, "judged at message_timeout");
    for tick in [70, 100] {
        feed(&mut conn, tick, &[0], &mut out);
        assert_eq!(deadline(&conn), 110);
    }
    let fx = timeout(&mut conn, 110, &mut out);
    assert!(fx.left_open());
    assert_eq!(
        server_frames(&out.take_wire()),
        [(
            Opcode::Close,
            close_payload(
                1008,
                "message not received in time (message_timeout, min_receive_rate)"
            )
        )]
    );
    assert!(out
        .notes
        .contains(&Note::MessageTimeout { received_bytes: 4 }));
    assert!(
        conn.extra
            .as_ref()
            .is_none_or(|e| e.reader.buffered_bytes() == 0),
        "freed"
    );
}

#[test]
fn a_slow_but_steady_message_may_take_longer_than_the_message_timeout() {
    let mut out = Mem::default();
    let mut conn = open_server(0, &mut out);
    let frame = client_frame(true, Opcode::Binary, &[5u8; 3000]);
    let mut seen = Vec::new();
    // 15 bytes per tick: above the 10-byte minimum, 200 ticks for the whole frame.
    for (i, chunk) in frame.chunks(15).enumerate() {
        let tick = i as Tick;
        seen.extend(feed(&mut conn, tick, chunk, &mut out));
        if conn
            .next_deadline(&settings(), 0)
            .is_some_and(|d| reached(d, tick))
        {
            conn.handle_timeout(tick, &settings(), 0, &mut out);
        }
    }
    assert_eq!(conn.phase(), Phase::Open);
    assert_eq!(seen, [Seen::Message(MessageKind::Binary, vec![5; 3000])]);
    assert!(
        conn.extra.is_none(),
        "no deadline state left once the message is in"
    );
}

#[test]
fn a_slow_consumer_gets_1008_behind_what_it_has_not_read() {
    let mut out = Mem::default();
    let mut conn = open_server(0, &mut out);
    out.window = Some(0);
    let cfg = settings();
    // With nothing queued, one whole message may always be queued, even past the cap.
    assert!(conn.send(1, &cfg, MessageKind::Binary, &[1; 1200], &mut out));
    assert_eq!(conn.queued_bytes(), 1204);
    assert!(conn.send(2, &cfg, MessageKind::Binary, &[2; 10], &mut out));
    assert_eq!(
        conn.phase(),
        Phase::Lingering,
        "past the cap: a slow consumer"
    );
    assert!(!conn.send(3, &cfg, MessageKind::Binary, &[3; 10], &mut out));
    let fx = conn.poll_effects();
    assert!(
        fx.left_open() && !fx.shutdown_write(),
        "shut down only after the flush"
    );
    out.window = None;
    conn.on_writable(&mut out);
    let frames = server_frames(&out.take_wire());
    assert_eq!(frames.len(), 2, "the queued message, then the close");
    assert_eq!(frames[0], (Opcode::Binary, vec![1; 1200]));
    assert_eq!(
        frames[1],
        (
            Opcode::Close,
            close_payload(1008, "slow consumer: outbound buffer full")
        )
    );
    assert!(conn.poll_effects().shutdown_write());
    assert!(out
        .notes
        .contains(&Note::SlowConsumer { queued_bytes: 1204 }));
    assert_eq!(
        conn.end(),
        Some((Initiator::Server, Some(CloseCode::POLICY_VIOLATION)))
    );
}

#[test]
fn the_drain_sends_1001_and_the_drain_deadline_bounds_it() {
    let mut out = Mem::default();
    let mut conn = open_server(0, &mut out);
    conn.shut_down(20, 90, &settings(), &mut out);
    assert_eq!(
        server_frames(&out.take_wire()),
        [(
            Opcode::Close,
            close_payload(1001, "server shutting down, reconnect")
        )]
    );
    assert_eq!(
        deadline(&conn),
        90,
        "the drain deadline, not the close timeout"
    );
    assert!(!timeout(&mut conn, 70, &mut out).release());
    assert!(timeout(&mut conn, 90, &mut out).release());
    assert_eq!(
        conn.end(),
        Some((Initiator::Server, Some(CloseCode::GOING_AWAY)))
    );
}

#[test]
fn a_failed_transport_releases_and_a_released_connection_is_inert() {
    let mut out = Mem::default();
    let mut conn = open_server(0, &mut out);
    out.broken = true;
    assert!(conn.send(1, &settings(), MessageKind::Text, b"x", &mut out));
    let fx = conn.poll_effects();
    assert!(fx.release() && fx.left_open());
    assert_eq!(conn.end(), Some((Initiator::Abnormal, None)));
    out.broken = false;
    assert!(!conn.send(2, &settings(), MessageKind::Text, b"x", &mut out));
    conn.close(2, &settings(), CloseCode::NORMAL, "", &mut out);
    assert!(feed(
        &mut conn,
        3,
        &client_frame(true, Opcode::Text, b"x"),
        &mut out
    )
    .is_empty());
    conn.handle_timeout(1000, &settings(), 0, &mut out);
    conn.on_writable(&mut out);
    assert!(out.wire.is_empty());
    assert!(conn.poll_effects().is_empty());
    assert_eq!(conn.next_deadline(&settings(), 0), None);
}

/// A client and a server connection wired to each other in memory.
struct Pair {
    client: Connection,
    server: Connection,
    client_out: Mem,
    server_out: Mem,
    now: Tick,
    /// Both sides' settings.
    cfg: Settings,
}

impl Pair {
    fn connect() -> Pair {
        Pair::connect_with(settings(), request("/pair"))
    }

    /// A pair under `cfg`, the client sending `request` (for any path).
    fn connect_with(cfg: Settings, request: Vec<u8>) -> Pair {
        let mut pair = Pair {
            client: Connection::client(0),
            server: Connection::server_at(0),
            client_out: Mem::default(),
            server_out: Mem::default(),
            now: 0,
            cfg,
        };
        pair.client_out.wire = request;
        let (to_server, to_client) = pair.step();
        assert!(matches!(to_server[..], [Seen::Request(_)]));
        assert!(matches!(to_client[..], [Seen::Response(_)]));
        assert_eq!(pair.client.phase(), Phase::Open);
        pair
    }

    /// Delivers what each side wrote to the other until both are quiet; returns what each side
    /// saw.
    fn step(&mut self) -> (Vec<Seen>, Vec<Seen>) {
        let (mut at_server, mut at_client) = (Vec::new(), Vec::new());
        for _ in 0..10 {
            self.now += 1;
            let to_server = self.client_out.take_wire();
            let to_client = self.server_out.take_wire();
            if to_server.is_empty() && to_client.is_empty() {
                break;
            }
            if !to_server.is_empty() {
                at_server.extend(feed_with(
                    &mut self.server,
                    self.now,
                    &to_server,
                    &mut self.server_out,
                    &self.cfg,
                ));
            }
            if !to_client.is_empty() {
                at_client.extend(feed_with(
                    &mut self.client,
                    self.now,
                    &to_client,
                    &mut self.client_out,
                    &self.cfg,
                ));
            }
        }
        (at_server, at_client)
    }
}

#[test]
fn pair_exchanges_messages_both_ways_and_client_frames_are_masked() {
    let mut p = Pair::connect();
    let cfg = settings();
    assert!(p
        .client
        .send(p.now, &cfg, MessageKind::Text, b"hello", &mut p.client_out));
    assert!(
        p.client_out.wire[1] & 0x80 != 0,
        "client frames carry the mask bit"
    );
    assert!(p.server.send(
        p.now,
        &cfg,
        MessageKind::Binary,
        &[9; 300],
        &mut p.server_out
    ));
    let (at_server, at_client) = p.step();
    assert_eq!(
        at_server,
        [Seen::Message(MessageKind::Text, b"hello".to_vec())]
    );
    assert_eq!(
        at_client,
        [Seen::Message(MessageKind::Binary, vec![9; 300])]
    );
}

#[test]
fn pair_reassembles_fragments_around_an_interleaved_ping() {
    let mut p = Pair::connect();
    p.client_out.wire = [
        client_frame(false, Opcode::Text, b"frag"),
        client_frame(true, Opcode::Ping, b"!"),
        client_frame(false, Opcode::Continuation, b"men"),
        client_frame(true, Opcode::Continuation, b"ted"),
    ]
    .concat();
    // Delivered one byte at a time: every split point of every frame.
    let bytes = p.client_out.take_wire();
    let mut at_server = Vec::new();
    for b in bytes.chunks(1) {
        at_server.extend(feed(&mut p.server, 5, b, &mut p.server_out));
    }
    assert_eq!(
        at_server,
        [Seen::Message(MessageKind::Text, b"fragmented".to_vec())]
    );
    assert_eq!(
        server_frames(&p.server_out.wire),
        [(Opcode::Pong, b"!".to_vec())]
    );
    let (_, at_client) = p.step();
    assert!(at_client.is_empty(), "a pong is not an app message");
    assert_eq!(p.client.phase(), Phase::Open);
    assert!(
        p.server.extra.is_none() && p.client.extra.is_none(),
        "idle again"
    );
}

#[test]
fn pair_close_started_by_the_client() {
    let mut p = Pair::connect();
    p.client.close(
        p.now,
        &settings(),
        CloseCode::NORMAL,
        "done",
        &mut p.client_out,
    );
    p.step();
    assert!(p.server.is_released(), "the server closes TCP first");
    assert_eq!(
        p.server.end(),
        Some((Initiator::Peer, Some(CloseCode::NORMAL)))
    );
    assert_eq!(
        p.client.phase(),
        Phase::Lingering,
        "the client waits for the server's FIN"
    );
    p.client.on_eof(&mut p.client_out);
    assert!(p.client.is_released());
    assert_eq!(
        p.client.end(),
        Some((Initiator::Server, Some(CloseCode::NORMAL)))
    );
}

#[test]
fn pair_close_started_by_the_server() {
    let mut p = Pair::connect();
    p.server.close(
        p.now,
        &settings(),
        CloseCode::GOING_AWAY,
        "",
        &mut p.server_out,
    );
    p.step();
    assert!(p.server.is_released());
    assert_eq!(p.server_out.notes, [Note::CloseAcknowledged]);
    assert_eq!(
        p.server.end(),
        Some((Initiator::Server, Some(CloseCode::GOING_AWAY)))
    );
    assert_eq!(
        p.client.end(),
        Some((Initiator::Peer, Some(CloseCode::GOING_AWAY)))
    );
}

#[test]
fn a_client_refuses_masked_server_frames_with_1002() {
    let mut p = Pair::connect();
    let masked = client_frame(true, Opcode::Text, b"x");
    feed(&mut p.client, 5, &masked, &mut p.client_out);
    assert_eq!(p.client.phase(), Phase::Lingering);
    assert!(p
        .client_out
        .notes
        .iter()
        .any(|n| matches!(n, Note::ProtocolError(_))));
}

#[test]
fn the_memory_a_connection_holds_is_reported_and_returns_to_zero() {
    let mut out = Mem::default();
    let mut conn = open_server(0, &mut out);
    assert_eq!(out.held, 0, "an idle open connection holds nothing");
    // A message in progress: its buffer is reported as it grows.
    let frame = client_frame(true, Opcode::Binary, &[1; 50_000]);
    feed(&mut conn, 1, &frame[..20_000], &mut out);
    assert_eq!(out.held as usize, conn.held_bytes());
    assert!(conn.held_inbound_bytes() >= 19_000);
    // A queue the peer does not read.
    out.window = Some(0);
    conn.send(2, &settings(), MessageKind::Binary, &[2; 30_000], &mut out);
    assert_eq!(out.held as usize, conn.held_bytes());
    assert!(conn.held_bytes() >= 50_000);
    // Shedding: the larger of the two goes (here the queue, with a reset).
    conn.shed(3, &settings(), &mut out);
    assert!(out
        .notes
        .iter()
        .any(|n| matches!(n, Note::MemoryShed { .. })));
    assert_eq!(out.held as usize, conn.held_bytes());
    let fx = conn.poll_effects();
    assert!(fx.left_open());
    // Whatever path it ends by, nothing stays accounted once released.
    conn.on_eof(&mut out);
    assert!(conn.is_released());
    assert_eq!(out.held, 0);
}

#[test]
fn shedding_drops_a_large_queue_with_a_reset_and_large_input_with_1009() {
    let mut out = Mem::default();
    let mut conn = open_server(0, &mut out);
    out.window = Some(0);
    conn.send(1, &settings(), MessageKind::Binary, &[2; 30_000], &mut out);
    conn.shed(2, &settings(), &mut out);
    assert!(conn.is_released());
    assert_eq!(conn.release_kind(), ReleaseKind::Abortive);
    assert!(out
        .notes
        .iter()
        .any(|n| matches!(n, Note::MemoryShed { inbound: false, .. })));
    assert_eq!(out.held, 0);

    let mut out = Mem::default();
    let mut conn = open_server(0, &mut out);
    let frame = client_frame(true, Opcode::Binary, &[1; 50_000]);
    feed(&mut conn, 1, &frame[..30_000], &mut out);
    conn.shed(2, &settings(), &mut out);
    assert_eq!(conn.phase(), Phase::Lingering);
    let frames = server_frames(&out.take_wire());
    assert_eq!(frames[0].1[..2], 1009u16.to_be_bytes());
    assert!(out
        .notes
        .iter()
        .any(|n| matches!(n, Note::MemoryShed { inbound: true, .. })));
    assert_eq!(out.held, 0, "the input is freed at once");
}

#[test]
fn a_protocol_error_after_our_close_sends_no_second_close_frame() {
    // Found by the connection fuzz target: shut_down, then a reserved opcode from the peer.
    let mut out = Mem::default();
    let mut conn = open_server(0, &mut out);
    conn.shut_down(1, 100, &settings(), &mut out);
    assert_eq!(server_frames(&out.take_wire()).len(), 1);
    feed(&mut conn, 2, &[0x83, 0x80, 0, 0, 0, 0], &mut out);
    assert!(out.wire.is_empty(), "nothing after our close frame");
    assert_eq!(conn.phase(), Phase::Lingering);
    assert!(out
        .notes
        .iter()
        .any(|n| matches!(n, Note::ProtocolError(_))));
}

#[test]
fn a_close_code_forbidden_on_the_wire_goes_out_as_a_close_without_code() {
    let mut out = Mem::default();
    let mut conn = open_server(0, &mut out);
    conn.close(1, &settings(), CloseCode(1005), "no", &mut out);
    assert_eq!(server_frames(&out.take_wire()), [(Opcode::Close, vec![])]);
}

#[test]
fn a_burst_then_a_stall_is_closed_at_the_message_timeout() {
    // 20,000 bytes of a 1 MiB message at once (2,000 ticks' worth at the minimum rate), then
    // nothing: the average since the start would excuse it for 2,000 ticks, the window does not.
    let mut out = Mem::default();
    let mut conn = open_server(0, &mut out);
    let frame = client_frame(true, Opcode::Binary, &vec![0; 1 << 20]);
    feed(&mut conn, 0, &frame[..20_000], &mut out);
    assert!(!timeout(&mut conn, 50, &mut out).release());
    let fx = timeout(&mut conn, 100, &mut out);
    assert!(fx.left_open(), "closed at message_timeout");
    assert!(out
        .notes
        .iter()
        .any(|n| matches!(n, Note::MessageTimeout { .. })));
    assert_eq!(
        server_frames(&out.take_wire())[0].1[..2],
        1008u16.to_be_bytes()
    );
}
