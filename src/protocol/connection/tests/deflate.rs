//! permessage-deflate on the connection: negotiation in the 101, compressed messages in and
//! out, RSV1 rules, bounded inflate.

use super::*;
use crate::protocol::deflate::{codec, Answer, CLIENT_OFFER};
use crate::protocol::frame::{decode_header_with, RSV1_BIT};
use crate::protocol::reader::INFLATED_TOO_BIG;

fn deflate_settings() -> Settings {
    let mut cfg = settings();
    cfg.compression = Compression {
        enabled: true,
        min_size: 100,
        level: 6,
    };
    cfg
}

fn offer_request(extensions: &[&str]) -> Vec<u8> {
    let mut head = format!(
        "GET / HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
         Sec-WebSocket-Key: {KEY}\r\nSec-WebSocket-Version: 13\r\n"
    );
    for line in extensions {
        head.push_str(&format!("Sec-WebSocket-Extensions: {line}\r\n"));
    }
    head.push_str("\r\n");
    head.into_bytes()
}

/// A server connection opened under `cfg` with `extensions` offered; returns it and its 101.
fn open_with(cfg: &Settings, extensions: &[&str], out: &mut Mem) -> (Connection, String) {
    let mut conn = Connection::server_at(0);
    let seen = feed_with(&mut conn, 0, &offer_request(extensions), out, cfg);
    assert_eq!(seen, [Seen::Request("/".into())]);
    let head = String::from_utf8(out.take_wire()).unwrap();
    assert!(head.starts_with("HTTP/1.1 101"));
    conn.poll_effects();
    (conn, head)
}

fn json(n: usize) -> Vec<u8> {
    let mut s = String::new();
    let mut i = 0;
    while s.len() < n {
        s.push_str(&format!(
            "{{\"user\":\"u{i}\",\"text\":\"hello there\",\"n\":{i}}},"
        ));
        i += 1;
    }
    s.truncate(n);
    s.into_bytes()
}

fn compress(payload: &[u8]) -> Vec<u8> {
    codec::with_compressed(payload, 6, |c| c.expect("compressible").to_vec())
}

/// A masked client frame with RSV1 set when `rsv1`.
fn client_frame_rsv1(fin: bool, opcode: Opcode, payload: &[u8], rsv1: bool) -> Vec<u8> {
    let mut frame = client_frame(fin, opcode, payload);
    if rsv1 {
        frame[0] |= RSV1_BIT;
    }
    frame
}

/// The frames the server wrote: (compressed, opcode, payload once inflated).
fn deflated_frames(wire: &[u8]) -> Vec<(bool, Opcode, Vec<u8>)> {
    let mut frames = Vec::new();
    let mut rest = wire;
    while !rest.is_empty() {
        let h = decode_header_with(rest, true).unwrap().unwrap();
        let end = h.header_len + h.payload_len as usize;
        let payload = &rest[h.header_len..end];
        let payload = if h.compressed {
            codec::inflate(payload, 1 << 24).unwrap()
        } else {
            payload.to_vec()
        };
        frames.push((h.compressed, h.opcode, payload));
        rest = &rest[end..];
    }
    frames
}

fn last_close(wire: &[u8]) -> u16 {
    let frames = deflated_frames(wire);
    let (_, opcode, payload) = frames.last().expect("a frame");
    assert_eq!(*opcode, Opcode::Close);
    u16::from_be_bytes([payload[0], payload[1]])
}

#[test]
fn a_negotiated_connection_is_still_24_bytes_and_holds_nothing_when_idle() {
    let mut out = Mem::default();
    let (conn, head) = open_with(&deflate_settings(), &["permessage-deflate"], &mut out);
    assert!(head.contains(
        "\r\nSec-WebSocket-Extensions: permessage-deflate; server_no_context_takeover; \
         client_no_context_takeover\r\n"
    ));
    assert!(conn.negotiated().is_on());
    assert_eq!(conn.held_bytes(), 0);
    assert!(std::mem::size_of::<Connection>() <= 24);
    assert!(out.notes.contains(&Note::DeflateNegotiated));
}

#[test]
fn with_compression_off_the_offer_is_declined_and_rsv1_is_1002() {
    let mut out = Mem::default();
    let (mut conn, head) = open_with(&settings(), &["permessage-deflate"], &mut out);
    assert!(!head.contains("Sec-WebSocket-Extensions"));
    assert!(!conn.negotiated().is_on());
    let frame = client_frame_rsv1(true, Opcode::Text, &compress(&json(500)), true);
    assert_eq!(feed(&mut conn, 1, &frame, &mut out), []);
    assert_eq!(last_close(&out.take_wire()), 1002);
}

#[test]
fn an_unacceptable_offer_opens_without_compression() {
    let mut out = Mem::default();
    let (conn, head) = open_with(
        &deflate_settings(),
        &["permessage-deflate; server_max_window_bits=7"],
        &mut out,
    );
    assert!(!head.contains("Sec-WebSocket-Extensions"));
    assert!(!conn.negotiated().is_on());
    // Offers over several lines are one list.
    let (conn, head) = open_with(
        &deflate_settings(),
        &["x-unknown", "permessage-deflate; server_max_window_bits=10"],
        &mut out,
    );
    assert!(head.contains("; server_max_window_bits=10\r\n"));
    assert_eq!(conn.negotiated().0, 10);
}

#[test]
fn compressed_messages_are_inflated_whole_or_fragmented() {
    let cfg = deflate_settings();
    let mut out = Mem::default();
    let (mut conn, _) = open_with(&cfg, &["permessage-deflate"], &mut out);
    let text = json(2000);
    let compressed = compress(&text);
    let one = client_frame_rsv1(true, Opcode::Text, &compressed, true);
    let seen = feed_with(&mut conn, 1, &one, &mut out, &cfg);
    assert_eq!(seen, [Seen::Message(MessageKind::Text, text.clone())]);
    assert!(out.notes.contains(&Note::Compressed {
        sent: false,
        compressed: compressed.len(),
        uncompressed: text.len(),
    }));
    // Fragmented, and split across reads: the compressed bytes wait for FIN.
    let (a, b) = compressed.split_at(compressed.len() / 2);
    let mut wire = client_frame_rsv1(false, Opcode::Text, a, true);
    wire.extend(client_frame(true, Opcode::Continuation, b));
    let (first, second) = wire.split_at(wire.len() / 3);
    assert_eq!(feed_with(&mut conn, 2, first, &mut out, &cfg), []);
    assert!(conn.held_bytes() > 0);
    let seen = feed_with(&mut conn, 2, second, &mut out, &cfg);
    assert_eq!(seen, [Seen::Message(MessageKind::Text, text)]);
    assert_eq!(conn.held_bytes(), 0, "idle again: nothing held");
    // An uncompressed message on the same connection.
    let seen = feed_with(
        &mut conn,
        3,
        &client_frame(true, Opcode::Binary, b"raw"),
        &mut out,
        &cfg,
    );
    assert_eq!(seen, [Seen::Message(MessageKind::Binary, b"raw".to_vec())]);
    assert!(out.take_wire().is_empty(), "nothing went wrong");
}

#[test]
fn messages_at_or_above_the_minimum_go_out_compressed() {
    let cfg = deflate_settings();
    let mut out = Mem::default();
    let (mut conn, _) = open_with(&cfg, &["permessage-deflate"], &mut out);
    let big = json(1000);
    assert!(conn.send(1, &cfg, MessageKind::Text, &big, &mut out));
    assert!(conn.send(1, &cfg, MessageKind::Text, &json(99), &mut out));
    let large = json(200 << 10); // fragmented: RSV1 on the first frame only
    assert!(conn.send(1, &cfg, MessageKind::Binary, &large, &mut out));
    let frames = deflated_frames(&out.take_wire());
    assert_eq!(frames[0], (true, Opcode::Text, big.clone()));
    assert_eq!(frames[1], (false, Opcode::Text, json(99)));
    let (compressed, opcode, _) = &frames[2];
    assert!(*compressed && *opcode == Opcode::Binary);
    assert!(out.notes.iter().any(|n| matches!(
        n,
        Note::Compressed { sent: true, uncompressed: 1000, compressed } if *compressed < 500
    )));
}

#[test]
fn under_a_small_window_only_messages_within_it_are_compressed() {
    let cfg = deflate_settings();
    let mut out = Mem::default();
    let offer = ["permessage-deflate; server_max_window_bits=9"];
    let (mut conn, _) = open_with(&cfg, &offer, &mut out);
    assert!(conn.send(1, &cfg, MessageKind::Text, &json(512), &mut out));
    assert!(conn.send(1, &cfg, MessageKind::Text, &json(513), &mut out));
    let frames = deflated_frames(&out.take_wire());
    assert!(frames[0].0 && !frames[1].0);
}

#[test]
fn a_message_inflating_past_the_limit_is_1009() {
    let mut cfg = deflate_settings();
    cfg.limits.max_message_size = 64 << 10;
    let mut out = Mem::default();
    let (mut conn, _) = open_with(&cfg, &["permessage-deflate"], &mut out);
    let bomb = compress(&vec![b'a'; 1 << 20]);
    assert!(bomb.len() < 2 << 10);
    let frame = client_frame_rsv1(true, Opcode::Binary, &bomb, true);
    assert_eq!(feed_with(&mut conn, 1, &frame, &mut out, &cfg), []);
    assert_eq!(last_close(&out.take_wire()), 1009);
    assert!(out.notes.contains(&Note::ProtocolError(INFLATED_TOO_BIG)));
}

#[test]
fn rsv1_on_a_continuation_or_control_frame_is_1002_even_when_negotiated() {
    let cfg = deflate_settings();
    for second in [
        client_frame_rsv1(true, Opcode::Continuation, b"x", true),
        client_frame_rsv1(true, Opcode::Ping, b"", true),
    ] {
        let mut out = Mem::default();
        let (mut conn, _) = open_with(&cfg, &["permessage-deflate"], &mut out);
        let mut wire = client_frame(false, Opcode::Text, b"ab");
        wire.extend(second);
        assert_eq!(feed_with(&mut conn, 1, &wire, &mut out, &cfg), []);
        assert_eq!(last_close(&out.take_wire()), 1002);
    }
}

#[test]
fn invalid_utf8_is_found_after_inflating() {
    let cfg = deflate_settings();
    let mut out = Mem::default();
    let (mut conn, _) = open_with(&cfg, &["permessage-deflate"], &mut out);
    let mut bad = json(300);
    bad[150] = 0xff;
    let frame = client_frame_rsv1(true, Opcode::Text, &compress(&bad), true);
    assert_eq!(feed_with(&mut conn, 1, &frame, &mut out, &cfg), []);
    assert_eq!(last_close(&out.take_wire()), 1007);
}

/// A client and a server that negotiated permessage-deflate with ringws's client offer.
fn deflate_pair() -> Pair {
    let offer = offer_request(&[CLIENT_OFFER]);
    let p = Pair::connect_with(deflate_settings(), offer);
    assert!(p.client.negotiated().is_on() && p.server.negotiated().is_on());
    assert_eq!(
        p.client.negotiated().0,
        15,
        "the server set no client window"
    );
    assert!(p.client_out.notes.contains(&Note::DeflateNegotiated));
    p
}

/// The frames a client wrote: (masked, compressed, opcode, payload unmasked and inflated).
fn client_frames(wire: &[u8]) -> Vec<(bool, bool, Opcode, Vec<u8>)> {
    let mut frames = Vec::new();
    let mut rest = wire;
    while !rest.is_empty() {
        let h = decode_header_with(rest, true).unwrap().unwrap();
        let end = h.header_len + h.payload_len as usize;
        let mut payload = rest[h.header_len..end].to_vec();
        let masked = rest[1] & 0x80 != 0;
        if masked {
            let k = &rest[h.header_len - 4..h.header_len];
            crate::protocol::mask::apply_mask(&mut payload, [k[0], k[1], k[2], k[3]], 0);
        }
        if h.compressed {
            payload = codec::inflate(&payload, 1 << 24).unwrap();
        }
        frames.push((masked, h.compressed, h.opcode, payload));
        rest = &rest[end..];
    }
    frames
}

#[test]
fn a_client_offering_deflate_round_trips_compressed_messages_both_ways() {
    let mut p = deflate_pair();
    let (cfg, now) = (p.cfg.clone(), p.now);
    let text = json(1500);
    assert!(p
        .client
        .send(now, &cfg, MessageKind::Text, &text, &mut p.client_out));
    assert!(p
        .client
        .send(now, &cfg, MessageKind::Binary, b"small", &mut p.client_out));
    // On the wire: masked, RSV1 on the large message only, and smaller than the message.
    let wire = p.client_out.wire.clone();
    assert!(wire.len() < text.len() / 2, "{}", wire.len());
    let frames = client_frames(&wire);
    assert_eq!(frames[0], (true, true, Opcode::Text, text.clone()));
    assert_eq!(frames[1], (true, false, Opcode::Binary, b"small".to_vec()));
    let reply = json(3000);
    assert!(p
        .server
        .send(now, &cfg, MessageKind::Text, &reply, &mut p.server_out));
    assert!(p.server_out.wire.len() < reply.len() / 2);
    let (at_server, at_client) = p.step();
    assert_eq!(
        at_server,
        [
            Seen::Message(MessageKind::Text, text),
            Seen::Message(MessageKind::Binary, b"small".to_vec())
        ]
    );
    assert_eq!(at_client, [Seen::Message(MessageKind::Text, reply)]);
    assert!(p.client_out.notes.iter().any(|n| matches!(
        n,
        Note::Compressed {
            sent: false,
            uncompressed: 3000,
            ..
        }
    )));
    assert!(
        p.client.extra.is_none() && p.server.extra.is_none(),
        "nothing held per connection between messages"
    );
}

#[test]
fn a_client_under_a_server_set_window_compresses_only_what_fits_it() {
    let mut out = Mem::default();
    let mut client = Connection::client(0);
    let answer = Answer {
        server_no_context_takeover: true,
        client_max_window_bits: Some(9),
        ..Answer::default()
    };
    client.upgraded(0, Some(&answer), &mut out);
    assert_eq!(client.negotiated().0, 9);
    let cfg = deflate_settings();
    assert!(client.send(1, &cfg, MessageKind::Text, &json(512), &mut out));
    assert!(client.send(1, &cfg, MessageKind::Text, &json(513), &mut out));
    let frames = client_frames(&out.take_wire());
    assert!(frames[0].1 && !frames[1].1);
}

#[test]
fn a_client_without_deflate_fails_a_compressed_message_with_1002() {
    // The server negotiated it, the client (offering nothing) did not.
    let mut p = Pair::connect_with(deflate_settings(), request("/pair"));
    assert!(!p.client.negotiated().is_on() && !p.server.negotiated().is_on());
    let payload = compress(&json(400));
    let mut header = [0u8; crate::protocol::MAX_HEADER_LEN];
    let n = crate::protocol::frame::encode_server_header(
        &mut header,
        true,
        Opcode::Text,
        payload.len() as u64,
    );
    header[0] |= RSV1_BIT;
    let wire = [&header[..n], &payload].concat();
    let now = p.now + 1;
    let seen = feed_with(&mut p.client, now, &wire, &mut p.client_out, &p.cfg.clone());
    assert_eq!(seen, []);
    let frames = client_frames(&p.client_out.take_wire());
    let (masked, _, opcode, payload) = frames.last().unwrap();
    assert!(*masked && *opcode == Opcode::Close);
    assert_eq!(u16::from_be_bytes([payload[0], payload[1]]), 1002);
}

#[test]
fn a_compressed_message_arriving_with_the_101_is_inflated() {
    let cfg = deflate_settings();
    let (mut server, mut server_out) = (Connection::server_at(0), Mem::default());
    let offer = offer_request(&[CLIENT_OFFER]);
    feed_with(&mut server, 0, &offer, &mut server_out, &cfg);
    let text = json(1000);
    assert!(server.send(0, &cfg, MessageKind::Text, &text, &mut server_out));
    // The 101 and the compressed message, in one read.
    let wire = server_out.take_wire();
    let (mut client, mut out) = (Connection::client(0), Mem::default());
    let seen = feed_with(&mut client, 1, &wire, &mut out, &cfg);
    assert!(matches!(seen[0], Seen::Response(_)), "{seen:?}");
    assert_eq!(seen[1..], [Seen::Message(MessageKind::Text, text)]);
    assert!(out.take_wire().is_empty(), "no close: the message was read");
}
