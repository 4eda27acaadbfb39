//! Cross-node publish -> delivery latency through Redis, against the raw Redis pub/sub floor
//! timing the same publishes (docs/benchmarks.md, "Pub/sub across nodes").
//!
//! Starts a `redis-server` and three `ringws serve --app pubsub --cores 1 --bus redis://...`
//! nodes. A WebSocket client on node A publishes `SEQ:SEND_US` at a fixed rate; WebSocket
//! subscribers on nodes B and C, and a plain Redis subscriber of the topic's channel, each
//! record `now - SEND_US` per message. The Redis subscriber's figure is the floor: client ->
//! node A -> Redis -> a subscriber; the WebSocket subscribers' figures add the receiving node
//! (Redis -> node B -> its client). The first tenth of the messages is warm-up.
//!
//! Usage: cargo bench --bench cross_node
//!        MESSAGES=20000 RATE=5000 cargo bench --bench cross_node

#[path = "../tests/common/mod.rs"]
#[allow(unused_imports)]
mod common;

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::thread;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use common::redis::RedisProcess;
use common::{client_frame, read_frame, upgrade_request, ws_connect, ServerProcess};

fn env_usize(name: &str, default: usize) -> usize {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

fn now_us() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_micros() as u64
}

/// `SEQ:SEND_US` (after the 10-byte ringws header on a raw Redis channel message).
fn parse_sample(text: &[u8]) -> Option<(usize, u64)> {
    let text = std::str::from_utf8(text).ok()?;
    let (seq, sent) = text.split_once(':')?;
    Some((seq.parse().ok()?, sent.parse().ok()?))
}

/// Latencies in µs indexed by sequence number (`u64::MAX`: never arrived).
fn ws_receiver(addr: std::net::SocketAddr, messages: usize) -> thread::JoinHandle<Vec<u64>> {
    let mut s = TcpStream::connect(addr).unwrap();
    s.write_all(upgrade_request("/ws?topic=lat").as_bytes())
        .unwrap();
    let r = common::read_response(&mut s);
    assert_eq!(r.status, 101);
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    thread::spawn(move || {
        let mut lat = vec![u64::MAX; messages];
        let mut got = 0;
        let mut reader = BufReader::with_capacity(1 << 20, s);
        while got < messages {
            let (_, _, payload) = read_frame(&mut reader);
            let at = now_us();
            if let Some((seq, sent)) = parse_sample(&payload) {
                lat[seq] = at.saturating_sub(sent);
                got += 1;
            }
        }
        lat
    })
}

/// The floor: a plain Redis subscriber of the channel.
fn redis_receiver(port: u16, messages: usize) -> thread::JoinHandle<Vec<u64>> {
    let mut s = TcpStream::connect(("127.0.0.1", port)).unwrap();
    s.write_all(b"*2\r\n$9\r\nSUBSCRIBE\r\n$10\r\nringws:lat\r\n")
        .unwrap();
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    thread::spawn(move || {
        let mut r = BufReader::with_capacity(1 << 20, s);
        let mut line = String::new();
        let bulk = |r: &mut BufReader<TcpStream>, line: &mut String| {
            line.clear();
            r.read_line(line).unwrap();
            let len: usize = line.trim()[1..].parse().unwrap();
            let mut b = vec![0u8; len + 2];
            r.read_exact(&mut b).unwrap();
            b.truncate(len);
            b
        };
        let mut lat = vec![u64::MAX; messages];
        let mut got = 0;
        while got < messages {
            line.clear();
            r.read_line(&mut line).unwrap(); // *3
            let kind = bulk(&mut r, &mut line);
            let _channel = bulk(&mut r, &mut line);
            if kind != b"message" {
                line.clear();
                r.read_line(&mut line).unwrap(); // the subscription count
                continue;
            }
            let payload = bulk(&mut r, &mut line);
            let at = now_us();
            if let Some((seq, sent)) = parse_sample(&payload[10..]) {
                lat[seq] = at.saturating_sub(sent);
                got += 1;
            }
        }
        lat
    })
}

fn percentile(sorted: &[u64], p: f64) -> u64 {
    sorted[((sorted.len() as f64 * p) as usize).min(sorted.len() - 1)]
}

fn main() {
    if std::env::args().any(|a| a == "--list") {
        return; // `cargo test --benches` lists benchmarks: there is nothing to run then
    }
    let messages = env_usize("MESSAGES", 20_000);
    let rate = env_usize("RATE", 5_000);
    let redis = RedisProcess::start();
    let url = redis.url();
    let nodes: Vec<ServerProcess> = (0..3)
        .map(|_| {
            ServerProcess::start(&[
                "--app",
                "pubsub",
                "--cores",
                "1",
                "--bus",
                &url,
                "--allow-client-publish",
                "true",
                "--log",
                "warn",
            ])
        })
        .collect();
    let receivers = [
        (
            "redis subscriber (floor)",
            redis_receiver(redis.port, messages),
        ),
        ("ringws node B", ws_receiver(nodes[1].addr, messages)),
        ("ringws node C", ws_receiver(nodes[2].addr, messages)),
    ];
    redis.wait_until("B, C and the raw subscriber on ringws:lat", |r| {
        r.numsub("ringws:lat") == 3
    });
    let mut publisher = ws_connect(nodes[0].addr);
    let replies = publisher.try_clone().unwrap();
    replies
        .set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    let acks = thread::spawn(move || {
        let mut r = BufReader::with_capacity(1 << 20, replies);
        (0..messages)
            .filter(|_| String::from_utf8_lossy(&read_frame(&mut r).2).contains("\"queued\":true"))
            .count()
    });
    let interval = Duration::from_secs_f64(1.0 / rate as f64);
    let start = Instant::now();
    for seq in 0..messages {
        let due = start + interval * seq as u32;
        while Instant::now() < due {
            std::hint::spin_loop();
        }
        let msg = format!(
            r#"{{"op":"publish","topic":"lat","data":"{seq}:{}"}}"#,
            now_us()
        );
        publisher
            .write_all(&client_frame(true, 0x1, msg.as_bytes()))
            .unwrap();
    }
    assert_eq!(acks.join().unwrap(), messages, "every publish accepted");
    let warmup = messages / 10;
    println!(
        "cross-node publish -> delivery, {messages} messages at {rate}/s ({warmup} warm-up), 3 nodes x 1 core"
    );
    let mut p50s = Vec::new();
    for (name, handle) in receivers {
        let lat = handle.join().unwrap();
        let mut sorted: Vec<u64> = lat[warmup..].to_vec();
        sorted.sort_unstable();
        let (p50, p99, p999) = (
            percentile(&sorted, 0.5),
            percentile(&sorted, 0.99),
            percentile(&sorted, 0.999),
        );
        p50s.push((p50, p99));
        println!("{name:28} p50 {p50:6} us   p99 {p99:6} us   p99.9 {p999:6} us");
    }
    let (floor50, floor99) = p50s[0];
    for (i, (p50, p99)) in p50s.iter().enumerate().skip(1) {
        println!(
            "node {}: p50 {:.2}x the floor, p99 {:.2}x",
            ["", "B", "C"][i],
            *p50 as f64 / floor50.max(1) as f64,
            *p99 as f64 / floor99.max(1) as f64
        );
    }
}
