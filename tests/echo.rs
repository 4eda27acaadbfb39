//! Frames and the echo app against the real binary: messages, control frames, the close
//! handshake, protocol errors with their close codes, limits, and several cores.

mod common;
use common::*;
use std::io::Write;

#[test]
fn echoes_text_binary_and_fragmented_messages() {
    let server = ServerProcess::start(&["--cores", "1"]);
    let mut s = ws_connect(server.addr);

    s.write_all(&client_frame(true, 0x1, "héllo".as_bytes()))
        .unwrap();
    assert_eq!(read_frame(&mut s), (true, 0x1, "héllo".as_bytes().to_vec()));

    let binary: Vec<u8> = (0..=255u8).cycle().take(70_000).collect(); // 64-bit length form
    s.write_all(&client_frame(true, 0x2, &binary)).unwrap();
    // Messages over 64 KiB go out in 64 KiB fragments (so pongs find frame boundaries).
    let first = read_frame(&mut s);
    assert_eq!((first.0, first.1, first.2.len()), (false, 0x2, 64 << 10));
    let rest = read_frame(&mut s);
    assert_eq!((rest.0, rest.1), (true, 0x0));
    assert_eq!([first.2, rest.2].concat(), binary);

    // Three fragments with a ping in between: the ping is answered first, then one message.
    s.write_all(&client_frame(false, 0x1, b"frag")).unwrap();
    s.write_all(&client_frame(true, 0x9, b"p")).unwrap();
    s.write_all(&client_frame(false, 0x0, b"men")).unwrap();
    s.write_all(&client_frame(true, 0x0, b"ted")).unwrap();
    assert_eq!(read_frame(&mut s), (true, 0xA, b"p".to_vec()));
    assert_eq!(read_frame(&mut s), (true, 0x1, b"fragmented".to_vec()));

    // Empty message.
    s.write_all(&client_frame(true, 0x2, b"")).unwrap();
    assert_eq!(read_frame(&mut s), (true, 0x2, vec![]));
}

#[test]
fn a_frame_written_byte_by_byte_is_reassembled() {
    let server = ServerProcess::start(&["--cores", "1"]);
    let mut s = ws_connect(server.addr);
    let payload: Vec<u8> = (0..300u32).map(|i| (i % 251) as u8).collect();
    for b in client_frame(true, 0x2, &payload) {
        s.write_all(&[b]).unwrap();
    }
    assert_eq!(read_frame(&mut s), (true, 0x2, payload));
}

#[test]
fn frames_sent_right_behind_the_request_head_are_processed() {
    let server = ServerProcess::start(&["--cores", "1"]);
    let mut s = connect(server.addr);
    let mut bytes = upgrade_request("/").into_bytes();
    bytes.extend(client_frame(true, 0x1, b"early"));
    s.write_all(&bytes).unwrap();
    assert_eq!(read_response(&mut s).status, 101);
    assert_eq!(read_frame(&mut s), (true, 0x1, b"early".to_vec()));
}

#[test]
fn ping_gets_a_pong_with_the_same_payload() {
    let server = ServerProcess::start(&["--cores", "1"]);
    let mut s = ws_connect(server.addr);
    s.write_all(&client_frame(true, 0x9, b"are you there"))
        .unwrap();
    assert_eq!(read_frame(&mut s), (true, 0xA, b"are you there".to_vec()));
    // An unsolicited pong is ignored.
    s.write_all(&client_frame(true, 0xA, b"x")).unwrap();
    s.write_all(&client_frame(true, 0x1, b"still here"))
        .unwrap();
    assert_eq!(read_frame(&mut s), (true, 0x1, b"still here".to_vec()));
}

#[test]
fn close_handshake_echoes_the_code_and_the_server_closes_tcp() {
    let server = ServerProcess::start(&["--cores", "1"]);
    let mut s = ws_connect(server.addr);
    let mut payload = 1000u16.to_be_bytes().to_vec();
    payload.extend_from_slice(b"bye");
    s.write_all(&client_frame(true, 0x8, &payload)).unwrap();
    assert_eq!(read_close(&mut s), Some(1000));
    assert!(closed_by_server(&mut s));
}

/// Sends `frames` on a fresh connection and expects a close with `code`, then TCP closed.
fn expect_failure(server: &ServerProcess, frames: &[Vec<u8>], code: u16) {
    let mut s = ws_connect(server.addr);
    for f in frames {
        s.write_all(f).unwrap();
    }
    assert_eq!(read_close(&mut s), Some(code));
    // Answer like a client would, then the server must end TCP.
    let _ = s.write_all(&client_frame(true, 0x8, &code.to_be_bytes()));
    assert!(
        closed_by_server(&mut s),
        "server must close TCP after failing the connection"
    );
}

#[test]
fn protocol_violations_close_with_the_right_code() {
    let server = ServerProcess::start(&[
        "--cores",
        "1",
        "--max-message-size",
        "1KiB",
        "--max-frame-size",
        "512",
    ]);
    // 1002: unmasked frame, RSV bit, unknown opcode, fragmented control, long control,
    // continuation without a message, new message inside a fragmented one.
    expect_failure(&server, &[client_frame_raw(0x81, false, b"x")], 1002);
    expect_failure(&server, &[client_frame_raw(0xC1, true, b"x")], 1002);
    expect_failure(&server, &[client_frame_raw(0x83, true, b"x")], 1002);
    expect_failure(&server, &[client_frame(false, 0x9, b"x")], 1002);
    expect_failure(&server, &[client_frame(true, 0x9, &[0u8; 126])], 1002);
    expect_failure(&server, &[client_frame(true, 0x0, b"x")], 1002);
    expect_failure(
        &server,
        &[
            client_frame(false, 0x1, b"a"),
            client_frame(true, 0x1, b"b"),
        ],
        1002,
    );
    // 1002: close payload of one byte, and an invalid close code.
    expect_failure(&server, &[client_frame(true, 0x8, &[0x03])], 1002);
    expect_failure(
        &server,
        &[client_frame(true, 0x8, &1005u16.to_be_bytes())],
        1002,
    );
    // 1007: invalid UTF-8 in a text message, and split across fragments.
    expect_failure(
        &server,
        &[client_frame(true, 0x1, &[0xce, 0xba, 0xff])],
        1007,
    );
    expect_failure(
        &server,
        &[
            client_frame(false, 0x1, &[0xce]),
            client_frame(true, 0x0, &[0x41]),
        ],
        1007,
    );
    // 1009: frame over 512 B, and a message over 1 KiB made of small frames.
    expect_failure(&server, &[client_frame(true, 0x2, &[0u8; 600])], 1009);
    let part = vec![0u8; 400];
    expect_failure(
        &server,
        &[
            client_frame(false, 0x2, &part),
            client_frame(false, 0x0, &part),
            client_frame(true, 0x0, &part),
        ],
        1009,
    );
}

#[test]
fn an_oversized_frame_is_refused_from_its_header_alone() {
    let server = ServerProcess::start(&["--cores", "1", "--max-frame-size", "1KiB"]);
    let mut s = ws_connect(server.addr);
    // Header announcing 1 MiB, then nothing: the close must come without the payload.
    let frame = client_frame(true, 0x2, &vec![0u8; 1 << 20]);
    s.write_all(&frame[..14]).unwrap();
    assert_eq!(read_close(&mut s), Some(1009));
}

#[test]
fn connections_from_many_clients_land_on_more_than_one_core() {
    let server = ServerProcess::start(&["--cores", "2"]);
    let mut conns = Vec::new();
    for i in 0..64u8 {
        let mut s = ws_connect(server.addr);
        s.write_all(&client_frame(true, 0x2, &[i])).unwrap();
        assert_eq!(read_frame(&mut s).2, vec![i]);
        conns.push(s);
    }
    drop(conns);
    let (status, log) = server.stop();
    assert_eq!(status, Some(0), "{log}");
    let per_core = log
        .split("upgraded_per_core=")
        .nth(1)
        .and_then(|r| r.split_whitespace().next())
        .unwrap_or_else(|| panic!("no per-core summary in: {log}"))
        .trim_matches(|c| c == '[' || c == ']' || c == '"');
    let counts: Vec<u64> = per_core.split(',').map(|n| n.parse().unwrap()).collect();
    assert_eq!(counts.len(), 2);
    assert_eq!(counts.iter().sum::<u64>(), 64);
    assert!(
        counts.iter().all(|&n| n > 0),
        "both cores should accept: {counts:?}"
    );
}
