//! Micro-benchmarks of the sans-IO protocol core: the work ringws does per handshake and per
//! message, without sockets.
//!
//!     cargo bench --bench protocol                       # full measurement
//!     cargo bench --bench protocol -- --quick            # a quick look
//!     cargo bench --bench protocol -- mask               # one group

use std::hint::black_box;

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use ringws::protocol::frame::{decode_header, encode_client_header, encode_server_header};
use ringws::protocol::handshake::{parse_request, HandshakeLimits};
use ringws::protocol::mask::apply_mask;
use ringws::protocol::reader::{Event, Flow, Limits, Reader};
use ringws::protocol::utf8::{validate, Utf8Validator};
use ringws::protocol::{Opcode, MAX_HEADER_LEN};

const MASK: [u8; 4] = [0x37, 0xfa, 0x21, 0x3d];
const SIZES: [usize; 3] = [20, 1024, 16 * 1024];

/// The upgrade request a desktop Chrome sends (with a cookie and permessage-deflate offered).
const BROWSER_REQUEST: &[u8] = b"GET /chat?room=lobby HTTP/1.1\r\n\
Host: example.com:9001\r\n\
Connection: Upgrade\r\n\
Pragma: no-cache\r\n\
Cache-Control: no-cache\r\n\
User-Agent: Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/126.0.0.0 Safari/537.36\r\n\
Upgrade: websocket\r\n\
Origin: https://example.com\r\n\
Sec-WebSocket-Version: 13\r\n\
Accept-Encoding: gzip, deflate, br, zstd\r\n\
Accept-Language: en-GB,en-US;q=0.9,en;q=0.8\r\n\
Cookie: session=4f1c2a9be0d34c7f8a1b2c3d4e5f6a7b; theme=dark\r\n\
Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\
Sec-WebSocket-Extensions: permessage-deflate; client_max_window_bits\r\n\
\r\n";

fn handshake(c: &mut Criterion) {
    let limits = HandshakeLimits::default();
    assert!(matches!(
        parse_request(BROWSER_REQUEST, &limits),
        Ok(Some(_))
    ));
    let mut group = c.benchmark_group("handshake");
    group.throughput(Throughput::Bytes(BROWSER_REQUEST.len() as u64));
    group.bench_function("parse_request/browser", |b| {
        b.iter(|| {
            let request = parse_request(black_box(BROWSER_REQUEST), &limits);
            black_box(request.ok().flatten().map(|r| r.head_len))
        })
    });
    group.finish();
}

/// A masked client frame carrying `payload` (already masked with `MASK`).
fn client_frame(opcode: Opcode, payload: &[u8]) -> Vec<u8> {
    let mut header = [0u8; MAX_HEADER_LEN];
    let len = encode_client_header(&mut header, true, opcode, payload.len() as u64, MASK);
    let mut frame = header[..len].to_vec();
    let start = frame.len();
    frame.extend_from_slice(payload);
    apply_mask(&mut frame[start..], MASK, 0);
    frame
}

fn frame_header(c: &mut Criterion) {
    let mut group = c.benchmark_group("frame");
    for size in SIZES {
        let frame = client_frame(Opcode::Binary, &vec![0u8; size]);
        let header = &frame[..frame.len() - size];
        group.bench_with_input(
            BenchmarkId::new("decode_header", size),
            header,
            |b, header| b.iter(|| black_box(decode_header(black_box(header)))),
        );
        group.bench_with_input(
            BenchmarkId::new("encode_server_header", size),
            &size,
            |b, &size| {
                let mut out = [0u8; MAX_HEADER_LEN];
                b.iter(|| {
                    black_box(encode_server_header(
                        &mut out,
                        true,
                        Opcode::Binary,
                        black_box(size as u64),
                    ))
                })
            },
        );
    }
    group.finish();
}

/// The obvious byte-at-a-time loop `apply_mask` is measured against.
fn naive_mask(data: &mut [u8], mask: [u8; 4], offset: usize) -> usize {
    for (i, byte) in data.iter_mut().enumerate() {
        *byte ^= mask[(offset + i) % 4];
    }
    (offset + data.len()) % 4
}

fn mask(c: &mut Criterion) {
    let mut group = c.benchmark_group("mask");
    for size in SIZES {
        let mut data: Vec<u8> = (0..size).map(|i| i as u8).collect();
        group.throughput(Throughput::Bytes(size as u64));
        group.bench_function(BenchmarkId::new("apply_mask", size), |b| {
            b.iter(|| black_box(apply_mask(black_box(&mut data), MASK, 0)))
        });
        group.bench_function(BenchmarkId::new("naive_loop", size), |b| {
            b.iter(|| black_box(naive_mask(black_box(&mut data), MASK, 0)))
        });
    }
    group.finish();
}

/// `len` bytes of text cycling through `sample`, cut at a character boundary.
fn text(sample: &str, len: usize) -> Vec<u8> {
    let mut out = String::with_capacity(len + 4);
    'fill: loop {
        for ch in sample.chars() {
            if out.len() + ch.len_utf8() > len {
                break 'fill;
            }
            out.push(ch);
        }
    }
    out.into_bytes()
}

fn utf8(c: &mut Criterion) {
    let inputs = [
        (
            "ascii",
            text("The quick brown fox jumps over the lazy dog. ", 1024),
        ),
        (
            "multibyte",
            text(
                "Съешь же ещё этих мягких булок 日本語のテキスト 😀🚀 ",
                1024,
            ),
        ),
    ];
    let mut group = c.benchmark_group("utf8");
    for (name, data) in &inputs {
        assert!(validate(data).is_ok());
        group.throughput(Throughput::Bytes(data.len() as u64));
        group.bench_with_input(BenchmarkId::new("validate", name), data, |b, data| {
            b.iter(|| black_box(validate(black_box(data))))
        });
        group.bench_with_input(BenchmarkId::new("std_from_utf8", name), data, |b, data| {
            b.iter(|| black_box(std::str::from_utf8(black_box(data)).is_ok()))
        });
        group.bench_with_input(
            BenchmarkId::new("validator_1_chunk", name),
            data,
            |b, data| {
                b.iter(|| {
                    let mut v = Utf8Validator::default();
                    black_box(v.feed(black_box(data)).and_then(|_| v.finish()))
                })
            },
        );
        // Chunks of 61 bytes: most boundaries split a multi-byte character somewhere.
        group.bench_with_input(
            BenchmarkId::new("validator_61_byte_chunks", name),
            data,
            |b, data| {
                b.iter(|| {
                    let mut v = Utf8Validator::default();
                    for chunk in black_box(data).chunks(61) {
                        if v.feed(chunk).is_err() {
                            return false;
                        }
                    }
                    v.finish().is_ok()
                })
            },
        );
    }
    group.finish();
}

fn reader(c: &mut Criterion) {
    let limits = Limits::default();
    let mut group = c.benchmark_group("reader");
    for size in [20usize, 1024] {
        let payload: Vec<u8> = (0..size).map(|i| i as u8).collect();
        let mut frame = client_frame(Opcode::Binary, &payload);
        group.throughput(Throughput::Bytes(frame.len() as u64));
        // `feed` unmasks in place; feeding the same binary frame again masks it back, which is
        // just as valid, so no copy is needed between iterations.
        group.bench_function(BenchmarkId::new("feed_binary", size), |b| {
            let mut reader = Reader::default();
            b.iter(|| {
                let mut seen = 0usize;
                let consumed = reader
                    .feed(black_box(&mut frame), &limits, |event| {
                        if let Event::Message(_, data) = event {
                            seen += data.len();
                        }
                        Flow::Continue
                    })
                    .expect("valid frame");
                assert_eq!((consumed, seen), (frame.len(), size));
                black_box(seen)
            })
        });
    }
    group.finish();
}

/// What the metrics cost the data path: the counter updates the reactor makes for one echoed
/// message (message and payload bytes received and sent, socket bytes both ways).
fn counters(c: &mut Criterion) {
    let stats = ringws::stats::CoreStats::default();
    c.bench_function("stats/per_echo_counter_updates", |b| {
        b.iter(|| {
            let stats = std::hint::black_box(&stats);
            stats.socket_bytes_received.add(26);
            stats.message_received(ringws::protocol::MessageKind::Binary, 20);
            stats.message_sent(ringws::protocol::MessageKind::Binary, 20);
            stats.socket_bytes_sent.add(22);
        })
    });
}

criterion_group!(
    benches,
    handshake,
    frame_header,
    mask,
    utf8,
    reader,
    counters
);
criterion_main!(benches);
