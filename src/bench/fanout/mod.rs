//! `ringws bench fanout`: N subscribers of one topic, one publisher; and
//! `ringws bench fanout-floor`, the floor to compare it with.
//!
//! The client connects N subscribers to `--url` with `?topic=T` added (`ws://127.0.0.1:9001/ws?topic=T`), waits until
//! `GET /topics/T` on the admin address counts them, then publishes with `POST /publish/T`:
//!
//! - fan-out latency: one publish at a time, from just before the request is sent to the moment
//!   the last subscriber has read the message (p50/p99/max over `--publishes` samples);
//! - throughput: `--burst` publishes back to back; deliveries per second until every subscriber
//!   has read all of them.
//!
//! The floor ([`floor::run_floor`]) answers the same two requests with the least work possible: it
//! accepts the connections (a plain 101), and for each publish writes the frame to every socket
//! in a plain loop of blocking `send(2)` calls, on one pinned thread. The same client measures
//! both, so the difference is what ringws adds to the kernel's sends.
//!
//! Every message carries its sequence number in its first 8 bytes; receivers check that each
//! subscriber gets every message once and in order. Subscribers make every check of a WebSocket
//! client: the 101 (`Sec-WebSocket-Accept` included) and every frame, with the protocol core's
//! client handshake and frame reader. Receivers are edge-triggered epoll loops (`--threads`,
//! pinned with `--pin-cpu`), one read buffer per thread.

use std::io::{Read, Write};
use std::net::{IpAddr, SocketAddr, TcpStream};
use std::os::fd::AsRawFd;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

mod floor;

pub use floor::{run_floor, FloorArgs};

use crate::bench::live::LiveLine;
use crate::bench::receiver::Receiver;
use crate::bench::report::thousands;
use crate::bench::CpuList;
use crate::protocol::client_handshake::parse_response;
use crate::protocol::reader::{Event, Limits};
use crate::sys::epoll::{event_parts, Epoll, NO_EVENT};
use crate::sys::socket::{self, IoResult};

#[derive(Debug, clap::Args)]
pub struct FanoutArgs {
    /// Name of the server in the report (e.g. ringws, floor).
    #[arg(long, default_value = "ringws", value_name = "NAME")]
    pub label: String,
    /// Server to subscribe to: ws://HOST[:PORT][/PATH], as for the other modes; each subscriber
    /// adds ?topic=TOPIC to it.
    #[arg(long, default_value = "ws://127.0.0.1:9001/ws", value_name = "URL")]
    pub url: String,
    /// The server's admin listener (HOST:PORT), where publishes are POSTed
    /// (`ringws serve --admin-listen`).
    #[arg(long, default_value = "127.0.0.1:9090", value_name = "ADDR")]
    pub admin: SocketAddr,
    /// Topic to subscribe to and publish on.
    #[arg(long, default_value = "bench", value_name = "NAME")]
    pub topic: String,
    /// Bearer token for POST /publish.
    #[arg(long, value_name = "TOKEN")]
    pub token: Option<String>,
    /// Subscribers.
    #[arg(long, default_value_t = 1000, value_name = "N")]
    pub subscribers: usize,
    /// Message payload in bytes (at least 8: the sequence number).
    #[arg(long, default_value_t = 16, value_name = "BYTES")]
    pub payload: usize,
    /// Publish this file's bytes (its first 8 replaced by the sequence number) instead of
    /// --payload filler bytes, e.g. benches/corpus/json-1024.json.
    #[arg(long, value_name = "PATH")]
    pub payload_file: Option<std::path::PathBuf>,
    /// Subscribers offer permessage-deflate (no context takeover both ways) and require it: a
    /// server that does not accept it stops the run (exit 2). Every message received
    /// compressed is inflated before its sequence number is read; the report gives the
    /// server's compression ratio over the burst, from its metrics.
    #[arg(long)]
    pub deflate: bool,
    /// Latency samples: publishes sent one at a time, each after the previous one arrived
    /// everywhere.
    #[arg(long, default_value_t = 200, value_name = "K")]
    pub publishes: usize,
    /// Publishes sent back to back for the throughput figure.
    #[arg(long, default_value_t = 200, value_name = "B")]
    pub burst: usize,
    /// Receiver threads.
    #[arg(long, default_value_t = 1, value_name = "N")]
    pub threads: usize,
    /// Pin receiver thread i to the i-th CPU of LIST.
    #[arg(long, value_name = "LIST", value_parser = crate::bench::parse_cpu_list)]
    pub pin_cpu: Option<CpuList>,
    /// Local addresses to connect from, round-robin (about 28k connections each), e.g.
    /// 127.0.0.1,127.0.0.2.
    #[arg(long, value_name = "ADDRS", value_delimiter = ',')]
    pub sources: Vec<IpAddr>,
    /// Print one JSON object on stdout instead of the summary (target, subscribers, latency_us
    /// {p50, p99, max}, deliveries_per_s, errors, ...).
    #[arg(long)]
    pub json: bool,
}

/// Shared between the coordinator and the receivers.
struct Progress {
    epoch: Instant,
    /// Per receiver thread, per message: ns since `epoch` when its last socket got it (0 = not
    /// yet).
    done_at: Vec<Vec<AtomicU64>>,
    errors: AtomicU64,
    stop: AtomicBool,
}

/// Runs the benchmark; returns the exit code.
pub fn run(args: &FanoutArgs) -> i32 {
    match run_inner(args) {
        Ok(0) => 0,
        Ok(_) => 1,
        Err(e) => {
            eprintln!("ringws bench fanout: error: {e}");
            2
        }
    }
}

fn run_inner(a: &FanoutArgs) -> Result<u64, String> {
    let template = match &a.payload_file {
        Some(path) => {
            std::fs::read(path).map_err(|e| format!("--payload-file {}: {e}", path.display()))?
        }
        None => vec![0x5au8; a.payload],
    };
    if template.len() < 8 {
        return Err("--payload must be at least 8 bytes (the sequence number)".into());
    }
    let payload_bytes = template.len();
    let url = crate::bench::url::parse(&a.url).map_err(|e| e.to_string())?;
    if url.tls {
        return Err(format!(
            "{}: bench fanout speaks ws:// only; point it at the server's plain listener",
            a.url
        ));
    }
    let server = url
        .resolve(a.sources.first().map(|s| s.is_ipv6()))
        .map_err(|e| format!("cannot resolve {}: {e}", url.host))?;
    let separator = if url.target.contains('?') { '&' } else { '?' };
    let path = format!("{}{separator}topic={}", url.target, a.topic);
    let mut live = LiveLine::new(crate::sys::process::stderr_is_tty());
    let total_msgs = a.publishes + a.burst;
    let threads = a.threads.max(1);
    // Connect every subscriber (blocking, one at a time), then hand them to the receivers.
    let started = Instant::now();
    // Keys only need to differ between connections and runs.
    let seed = u128::from(std::process::id()) << 64 | started.elapsed().as_nanos();
    let mut per_thread: Vec<Vec<Sub>> = (0..threads).map(|_| Vec::new()).collect();
    for i in 0..a.subscribers {
        let source = (!a.sources.is_empty()).then(|| a.sources[i % a.sources.len()]);
        let random = (seed ^ (i as u128).rotate_left(32)).to_le_bytes();
        let s = subscribe(server, &url.host_header, source, &path, random, a.deflate)
            .map_err(|e| format!("subscriber {i}: {e}"))?;
        per_thread[i % threads].push(s);
        if i == 0 || live.due() {
            live.show(&format!(
                "fanout {:>6.1}s  subscribers {}/{} connected",
                live.seconds(),
                thousands(i as u64 + 1),
                thousands(a.subscribers as u64)
            ));
        }
    }
    let connect_s = started.elapsed().as_secs_f64();
    wait_for_subscribers(a.admin, &a.topic, a.subscribers)?;
    let progress = Arc::new(Progress {
        epoch: Instant::now(),
        done_at: (0..threads)
            .map(|_| (0..total_msgs).map(|_| AtomicU64::new(0)).collect())
            .collect(),
        errors: AtomicU64::new(0),
        stop: AtomicBool::new(false),
    });
    let cpus = a.pin_cpu.clone().map(|l| l.0).unwrap_or_default();
    if let Some(&cpu) = cpus.first() {
        // The coordinator (publisher) stays off the server's CPUs too.
        core_affinity::set_for_current(core_affinity::CoreId { id: cpu });
    }
    let receivers: Vec<_> = per_thread
        .into_iter()
        .enumerate()
        .map(|(t, socks)| {
            let progress = progress.clone();
            let cpu = (!cpus.is_empty()).then(|| cpus[t % cpus.len()]);
            std::thread::spawn(move || receive(t, socks, cpu, total_msgs, &progress))
        })
        .collect();

    let body = |seq: usize| {
        let mut b = template.clone();
        b[..8].copy_from_slice(&(seq as u64).to_le_bytes());
        b
    };
    let publish = |seq: usize| post(a.admin, &a.topic, a.token.as_deref(), &body(seq));
    let wait_all = |seq: usize, limit: Duration| -> Result<u64, String> {
        let deadline = Instant::now() + limit;
        loop {
            let mut last = 0;
            let mut all = true;
            for t in &progress.done_at {
                let at = t[seq].load(Ordering::Acquire);
                all &= at != 0;
                last = last.max(at);
            }
            if all {
                return Ok(last);
            }
            if Instant::now() > deadline {
                return Err(format!(
                    "message {seq} did not reach every subscriber within {limit:?}"
                ));
            }
            // Sleep, not spin: a spinning coordinator would take CPU from the server or the
            // receivers. The receivers stamp completion times themselves, so this only delays
            // noticing, not the figure.
            std::thread::sleep(Duration::from_micros(50));
        }
    };
    let ns = |t: Instant| t.duration_since(progress.epoch).as_nanos() as u64;

    let before = server_counters(a.admin);
    let mut latencies_us = Vec::with_capacity(a.publishes);
    for seq in 0..a.publishes {
        if seq == 0 || live.due() {
            live.show(&format!(
                "fanout {:>6.1}s  latency: publish {}/{}  errors {}",
                live.seconds(),
                seq + 1,
                a.publishes,
                progress.errors.load(Ordering::Relaxed)
            ));
        }
        let t0 = ns(Instant::now());
        publish(seq)?;
        let done = wait_all(seq, Duration::from_secs(30))?;
        latencies_us.push((done.saturating_sub(t0)) as f64 / 1e3);
    }
    let mid = server_counters(a.admin);
    let t0 = ns(Instant::now());
    for seq in a.publishes..total_msgs {
        publish(seq)?;
    }
    let mut done = t0;
    for seq in a.publishes..total_msgs {
        if seq == a.publishes || live.due() {
            live.show(&format!(
                "fanout {:>6.1}s  burst: {}/{} delivered everywhere  errors {}",
                live.seconds(),
                seq - a.publishes,
                a.burst,
                progress.errors.load(Ordering::Relaxed)
            ));
        }
        done = done.max(wait_all(seq, Duration::from_secs(60))?);
    }
    live.finish();
    let burst_s = (done - t0) as f64 / 1e9;
    let after = server_counters(a.admin);
    progress.stop.store(true, Ordering::Release);
    for r in receivers {
        r.join().map_err(|_| "a receiver thread panicked")?;
    }

    latencies_us.sort_by(f64::total_cmp);
    let q = |p: f64| -> f64 {
        if latencies_us.is_empty() {
            return 0.0;
        }
        let i = ((p * latencies_us.len() as f64).ceil() as usize).clamp(1, latencies_us.len());
        latencies_us[i - 1]
    };
    let deliveries = (a.burst * a.subscribers) as f64;
    let per_s = if burst_s > 0.0 {
        deliveries / burst_s
    } else {
        0.0
    };
    // Per core from the server's own counters when it has them (ringws); else one sender.
    let per_core: Vec<f64> =
        if after.deliveries.len() == mid.deliveries.len() && !after.deliveries.is_empty() {
            after
                .deliveries
                .iter()
                .zip(&mid.deliveries)
                .map(|(x, m)| (x - m) / burst_s)
                .collect()
        } else {
            vec![per_s]
        };
    let server_mean_us = (mid.latency_count > before.latency_count).then(|| {
        (mid.latency_sum - before.latency_sum) / (mid.latency_count - before.latency_count) * 1e6
    });
    let errors = progress.errors.load(Ordering::Relaxed);
    // Uncompressed / compressed payload bytes the server sent compressed during the burst.
    let compressed = after.deflate_sent_compressed - mid.deflate_sent_compressed;
    let deflate_ratio = (compressed > 0.0)
        .then(|| (after.deflate_sent_uncompressed - mid.deflate_sent_uncompressed) / compressed);
    let target = &a.label;
    if a.json {
        println!(
            "{}",
            serde_json::json!({
                "target": target,
                "subscribers": a.subscribers,
                "payload_bytes": payload_bytes,
                "deflate": a.deflate,
                "server_deflate_ratio": deflate_ratio,
                "connect_seconds": connect_s,
                "latency_samples": latencies_us.len(),
                "latency_us": {"p50": q(0.5), "p99": q(0.99), "max": q(1.0)},
                "server_fanout_mean_us": server_mean_us,
                "burst": a.burst,
                "burst_seconds": burst_s,
                "deliveries_per_s": per_s,
                "deliveries_per_s_per_core": per_core,
                "errors": errors,
            })
        );
    } else {
        println!(
            "fanout {target}: {} subscribers, {} B payload (connected in {connect_s:.1} s)",
            a.subscribers, payload_bytes
        );
        if a.deflate {
            let ratio = deflate_ratio.map_or("no message went out compressed".to_owned(), |r| {
                format!("the server's messages shrank {r:.2}x over the burst")
            });
            println!(
                "  deflate: permessage-deflate negotiated by all {} subscribers; {ratio}",
                a.subscribers
            );
        }
        println!(
            "  1 publish -> all subscribers: p50 {:.0} µs, p99 {:.0} µs, max {:.0} µs ({} samples)",
            q(0.5),
            q(0.99),
            q(1.0),
            latencies_us.len()
        );
        if let Some(m) = server_mean_us {
            println!("  server side (publish accepted -> last write), mean: {m:.0} µs");
        }
        let per: Vec<String> = per_core.iter().map(|d| format!("{d:.0}")).collect();
        println!(
            "  burst of {}: {per_s:.0} deliveries/s in {burst_s:.3} s; per core: {}",
            a.burst,
            per.join(", ")
        );
        println!("  errors (lost, duplicated, out of order, closed, invalid frames): {errors}");
    }
    Ok(errors)
}

/// Opens one subscriber: connect (from `source`), upgrade, check the 101.
/// `deflate`: offer permessage-deflate and require it.
fn subscribe(
    server: SocketAddr,
    host: &str,
    source: Option<IpAddr>,
    path: &str,
    random: [u8; 16],
    deflate: bool,
) -> Result<Sub, String> {
    let up = crate::bench::blocking::upgrade(
        server,
        source,
        host,
        path,
        random,
        Duration::from_secs(10),
        deflate,
    )?;
    if deflate && up.deflate.is_none() {
        return Err(DEFLATE_DECLINED.to_owned());
    }
    up.stream.set_nonblocking(true).map_err(|e| e.to_string())?;
    let mut order = Order::default();
    order.rx.set_deflate(deflate);
    Ok(Sub {
        stream: up.stream,
        order,
        early: up.early,
    })
}

/// Why `--deflate` stops the run when a subscriber's 101 has no permessage-deflate.
const DEFLATE_DECLINED: &str = "the server did not accept permessage-deflate, which --deflate \
     offers and requires. Is it running with `--compression on`? (ringws declines compression \
     unless told to; docs/compression.md)";

/// One HTTP request to the admin listener; the whole answer.
fn http(admin: SocketAddr, request: &[u8]) -> Result<(u16, String), String> {
    let mut s = TcpStream::connect(admin).map_err(|e| format!("admin {admin}: {e}"))?;
    let _ = s.set_nodelay(true);
    s.write_all(request).map_err(|e| e.to_string())?;
    let mut out = Vec::new();
    s.read_to_end(&mut out).map_err(|e| e.to_string())?;
    match parse_response(&out) {
        Ok(Some(response)) => {
            let body = String::from_utf8_lossy(&out[response.head_len..]).into_owned();
            Ok((response.status, body))
        }
        _ => Err(format!(
            "not an HTTP answer: {:?}",
            String::from_utf8_lossy(&out)
        )),
    }
}

fn post(admin: SocketAddr, topic: &str, token: Option<&str>, body: &[u8]) -> Result<(), String> {
    let auth = token
        .map(|t| format!("Authorization: Bearer {t}\r\n"))
        .unwrap_or_default();
    let mut req = format!(
        "POST /publish/{topic} HTTP/1.1\r\nHost: bench\r\n{auth}Content-Type: application/octet-stream\r\nContent-Length: {}\r\n\r\n",
        body.len()
    )
    .into_bytes();
    req.extend_from_slice(body);
    match http(admin, &req)? {
        (200, _) => Ok(()),
        (status, body) => Err(format!("publish answered {status}: {}", body.trim())),
    }
}

fn wait_for_subscribers(admin: SocketAddr, topic: &str, n: usize) -> Result<(), String> {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let req = format!("GET /topics/{topic} HTTP/1.1\r\nHost: bench\r\n\r\n");
        let (_, body) = http(admin, req.as_bytes())?;
        let v: serde_json::Value = serde_json::from_str(&body).unwrap_or_default();
        if v["subscribers"].as_u64() == Some(n as u64) {
            return Ok(());
        }
        if Instant::now() > deadline {
            return Err(format!(
                "the server reports {body} instead of {n} subscribers"
            ));
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// The server's per-core deliveries and fan-out latency sum/count, from /metrics.
struct ServerCounters {
    deliveries: Vec<f64>,
    latency_sum: f64,
    latency_count: f64,
    /// Payload bytes of messages sent compressed, before and after compressing.
    deflate_sent_uncompressed: f64,
    deflate_sent_compressed: f64,
}

fn server_counters(admin: SocketAddr) -> ServerCounters {
    let text = http(admin, b"GET /metrics HTTP/1.1\r\nHost: bench\r\n\r\n")
        .map(|(_, b)| b)
        .unwrap_or_default();
    let mut c = ServerCounters {
        deliveries: Vec::new(),
        latency_sum: 0.0,
        latency_count: 0.0,
        deflate_sent_uncompressed: 0.0,
        deflate_sent_compressed: 0.0,
    };
    for line in text.lines() {
        let value = || {
            line.rsplit(' ')
                .next()
                .and_then(|v| v.parse::<f64>().ok())
                .unwrap_or(0.0)
        };
        if line.starts_with("ringws_pubsub_deliveries_total{") {
            c.deliveries.push(value());
        } else if line.starts_with("ringws_fanout_latency_seconds_sum") {
            c.latency_sum += value();
        } else if line.starts_with("ringws_fanout_latency_seconds_count") {
            c.latency_count += value();
        } else if line.starts_with("ringws_deflate_sent_uncompressed_bytes_total") {
            c.deflate_sent_uncompressed += value();
        } else if line.starts_with("ringws_deflate_sent_compressed_bytes_total") {
            c.deflate_sent_compressed += value();
        }
    }
    c
}

/// One subscriber: its socket, the frames it received with the 101, and its order check.
struct Sub {
    stream: TcpStream,
    /// Frames that came in the same read as the 101.
    early: Vec<u8>,
    order: Order,
}

/// A subscriber's frames and the sequence numbers they carry.
struct Order {
    rx: Receiver,
    next_seq: u64,
    /// The server broke the protocol: nothing more is read from it.
    failed: bool,
}

impl Default for Order {
    fn default() -> Order {
        Order {
            rx: Receiver::new(Limits::default()),
            next_seq: 0,
            failed: false,
        }
    }
}

impl Order {
    /// Reads the messages in `bytes` (one read's worth): `on_msg(seq, in_order)` for each one.
    /// A message too short for a sequence number counts as `on_error`, as does a frame that
    /// breaks RFC 6455 (the subscriber is then given up).
    fn feed(&mut self, bytes: &mut [u8], on_msg: &mut dyn FnMut(u64, bool), on_error: &dyn Fn()) {
        if self.failed {
            return;
        }
        let mut pos = 0;
        loop {
            match self.rx.next(bytes, &mut pos) {
                Ok(None) => return,
                Ok(Some(Event::Message(_, payload))) => match payload.first_chunk::<8>() {
                    Some(seq) => {
                        let seq = u64::from_le_bytes(*seq);
                        on_msg(seq, seq == self.next_seq);
                        self.next_seq = seq + 1;
                    }
                    None => on_error(),
                },
                // The server's pings and close are not answered: a run ends before either matters.
                Ok(Some(_)) => {}
                Err(_) => {
                    self.failed = true;
                    return on_error();
                }
            }
        }
    }
}

/// How long a receiver waits for readiness before it checks the stop flag again.
const WAIT_NS: u64 = 50_000_000;

fn receive(
    thread: usize,
    mut subs: Vec<Sub>,
    cpu: Option<usize>,
    total_msgs: usize,
    progress: &Progress,
) {
    if let Some(cpu) = cpu {
        core_affinity::set_for_current(core_affinity::CoreId { id: cpu });
    }
    let n = subs.len() as u32;
    let mut got = vec![0u32; total_msgs];
    if n == 0 {
        for at in &progress.done_at[thread] {
            at.store(1, Ordering::Release);
        }
        return;
    }
    let error = || {
        progress.errors.fetch_add(1, Ordering::Relaxed);
    };
    let completed = |seq: u64, got: &mut Vec<u32>| {
        let Some(count) = got.get_mut(seq as usize) else {
            return error();
        };
        *count += 1;
        if *count == n {
            let at = progress.epoch.elapsed().as_nanos() as u64;
            progress.done_at[thread][seq as usize].store(at.max(1), Ordering::Release);
        }
    };
    let mut on_msg = |seq: u64, ok: bool| {
        if !ok {
            error();
        }
        completed(seq, &mut got);
    };
    let ep = Epoll::new().expect("epoll_create1");
    for (i, s) in subs.iter_mut().enumerate() {
        let mut early = std::mem::take(&mut s.early);
        s.order.feed(&mut early, &mut on_msg, &error);
        let _ = ep.add_readable(s.stream.as_raw_fd(), i as u64);
    }
    let mut events = vec![NO_EVENT; 1024];
    let mut buf = vec![0u8; 256 << 10];
    while !progress.stop.load(Ordering::Acquire) {
        let ready = ep.wait(&mut events, WAIT_NS).unwrap_or(0);
        for event in &events[..ready] {
            let (token, _) = event_parts(event);
            let sub = &mut subs[token as usize];
            loop {
                match socket::recv(sub.stream.as_raw_fd(), &mut buf) {
                    IoResult::Done(n) => {
                        sub.order.feed(&mut buf[..n], &mut on_msg, &error);
                        if n < buf.len() {
                            break;
                        }
                    }
                    IoResult::Eof => {
                        error(); // closed by the server
                        break;
                    }
                    IoResult::WouldBlock | IoResult::Failed(_) => break,
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_messages_across_reads_and_checks_order() {
        let mut wire = Vec::new();
        for seq in [0u64, 1, 3] {
            let mut body = vec![0u8; 300];
            body[..8].copy_from_slice(&seq.to_le_bytes());
            wire.extend_from_slice(
                crate::app::PreparedFrame::new(crate::protocol::MessageKind::Binary, &body).bytes(),
            );
        }
        wire.extend_from_slice(&[0x82, 0x01, 0xFF]); // no room for a sequence number
        let mut order = Order::default();
        let mut seen = Vec::new();
        let errors = std::cell::Cell::new(0);
        let error = || errors.set(errors.get() + 1);
        for chunk in wire.chunks(7) {
            let mut chunk = chunk.to_vec();
            order.feed(&mut chunk, &mut |seq, ok| seen.push((seq, ok)), &error);
        }
        assert_eq!(seen, [(0, true), (1, true), (3, false)]);
        assert_eq!(errors.get(), 1);
        assert!(!order.failed);
    }

    #[test]
    fn a_frame_breaking_the_protocol_gives_the_subscriber_up() {
        let mut order = Order::default();
        let errors = std::cell::Cell::new(0);
        let error = || errors.set(errors.get() + 1);
        let mut masked = [0x82, 0x88, 1, 2, 3, 4, 0, 0, 0, 0, 0, 0, 0, 0];
        order.feed(&mut masked, &mut |_, _| panic!("not a message"), &error);
        let mut valid = [0x82, 0x08, 0, 0, 0, 0, 0, 0, 0, 0];
        order.feed(&mut valid, &mut |_, _| panic!("given up"), &error);
        assert_eq!((errors.get(), order.failed), (1, true));
    }
}
