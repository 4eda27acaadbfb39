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
//! Across nodes (`--url` repeated, one `--admin` per `--url`, nodes sharing a Redis bus):
//! subscriber i connects to the (i mod n)-th URL, publishes go to one node (`--publish-admin`),
//! and `--redis` names the Redis the nodes share: the run starts once every node counts its
//! subscribers and has subscribed the topic's channel, and a plain Redis subscriber of that
//! channel times the same publishes ([`redis`]), the floor a ringws node adds to. Latency and
//! deliveries per second are then given per node as well, with the deliveries each node's
//! subscribers received and each node's own count of them. `--server-pid` adds the servers' CPU
//! per delivery over the burst (utime + stime from /proc/PID/stat).
//!
//! Every message carries its sequence number in its first 8 bytes; receivers check that each
//! subscriber gets every message once and in order. Subscribers make every check of a WebSocket
//! client: the 101 (`Sec-WebSocket-Accept` included) and every frame, with the protocol core's
//! client handshake and frame reader. Receivers are edge-triggered epoll loops (`--threads`,
//! pinned with `--pin-cpu`), one read buffer per thread.

use std::net::{IpAddr, SocketAddr};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

mod admin;
mod floor;
mod redis;
mod subscriber;

pub use floor::{run_floor, FloorArgs};

use crate::bench::live::LiveLine;
use crate::bench::report::thousands;
use crate::bench::CpuList;
use subscriber::Sub;

#[derive(Debug, clap::Args)]
pub struct FanoutArgs {
    /// Name of the server in the report (e.g. ringws, floor).
    #[arg(long, default_value = "ringws", value_name = "NAME")]
    pub label: String,
    /// Server to subscribe to: ws://HOST[:PORT][/PATH], as for the other modes; each subscriber
    /// adds ?topic=TOPIC to it. Repeat it for several nodes: subscribers are spread over them
    /// round-robin.
    #[arg(
        long = "url",
        default_value = "ws://127.0.0.1:9001/ws",
        value_name = "URL"
    )]
    pub urls: Vec<String>,
    /// The server's admin listener (HOST:PORT), where publishes are POSTed
    /// (`ringws serve --admin-listen`). With several --url, one --admin per --url in the same
    /// order: each node is asked for its own subscriber count.
    #[arg(long = "admin", default_value = "127.0.0.1:9090", value_name = "ADDR")]
    pub admins: Vec<SocketAddr>,
    /// The admin listener publishes are POSTed to (default: the first --admin), e.g. a node
    /// with no subscribers, so that every delivery crosses Redis.
    #[arg(long, value_name = "ADDR")]
    pub publish_admin: Option<SocketAddr>,
    /// The Redis the nodes share (HOST:PORT of their bus = "redis://HOST:PORT/"); needed with
    /// several --url. The run starts once every node with subscribers has subscribed the
    /// topic's channel there, and a plain Redis subscriber of the channel times the same
    /// publishes: the floor the nodes add to.
    #[arg(long, value_name = "ADDR")]
    pub redis: Option<SocketAddr>,
    /// Server process to read the CPU time of (utime + stime, /proc/PID/stat) before and after
    /// the burst, reported per delivery; repeat it for several nodes (their CPU is summed).
    #[arg(long = "server-pid", value_name = "PID")]
    pub server_pids: Vec<u32>,
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
    /// Per group, per message: ns since `epoch` when the group's last socket got it (0 = not
    /// yet). Group `thread * nodes + node` is a receiver thread's subscribers on one node; the
    /// last group, with `--redis`, is the plain Redis subscriber.
    done_at: Vec<Vec<AtomicU64>>,
    /// Messages received per node (then the Redis subscriber), added when the receivers stop.
    delivered: Vec<AtomicU64>,
    errors: AtomicU64,
    /// `errors` by [`Failure`], for the report across nodes.
    failures: [AtomicU64; Failure::ALL.len()],
    /// The first 8 bytes of the first message that was not the run's ([`Failure::NotOurs`]),
    /// as read for a sequence number: what it was, for the report (0: none).
    first_not_ours: AtomicU64,
    stop: AtomicBool,
}

/// What went wrong, counted apart across nodes so that a report says which.
#[derive(Clone, Copy)]
enum Failure {
    /// A message that is not the one after the previous (a duplicate, or one skipped ahead).
    OutOfOrder,
    /// A message whose sequence number is not one of the run's (a server's own message).
    NotOurs,
    /// A subscriber closed by its server.
    Closed,
    /// A frame breaking RFC 6455, or a message too short for a sequence number.
    Invalid,
    /// Anything wrong on the plain Redis subscriber.
    Floor,
}

impl Failure {
    const ALL: [Failure; 5] = [
        Failure::OutOfOrder,
        Failure::NotOurs,
        Failure::Closed,
        Failure::Invalid,
        Failure::Floor,
    ];

    fn name(self) -> &'static str {
        match self {
            Failure::OutOfOrder => "out_of_order",
            Failure::NotOurs => "not_ours",
            Failure::Closed => "closed",
            Failure::Invalid => "invalid",
            Failure::Floor => "redis_floor",
        }
    }
}

impl Progress {
    fn failed(&self, failure: Failure) {
        self.errors.fetch_add(1, Ordering::Relaxed);
        self.failures[failure as usize].fetch_add(1, Ordering::Relaxed);
    }
}

/// One `--url` and the admin listener of its node.
struct Node {
    url: String,
    server: SocketAddr,
    host_header: String,
    /// Target with `?topic=` added.
    path: String,
    admin: SocketAddr,
    subscribers: usize,
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

/// The nodes of the run, with their share of the subscribers.
fn nodes(a: &FanoutArgs) -> Result<Vec<Node>, String> {
    if a.urls.len() > 1 && a.admins.len() != a.urls.len() {
        return Err(format!(
            "{} --url but {} --admin: give each node's admin listener, in the order of --url",
            a.urls.len(),
            a.admins.len()
        ));
    }
    if a.urls.len() == 1 && a.admins.len() > 1 {
        return Err("several --admin for one --url: give one --url per node".into());
    }
    if a.urls.len() > 1 && a.redis.is_none() {
        return Err(
            "across nodes, --redis HOST:PORT (the Redis of their bus) is needed: the run waits \
             until every node has subscribed there, and times the raw Redis floor"
                .into(),
        );
    }
    let n = a.urls.len();
    a.urls
        .iter()
        .zip(&a.admins)
        .enumerate()
        .map(|(i, (raw, &admin))| {
            let url = crate::bench::url::parse(raw).map_err(|e| e.to_string())?;
            if url.tls {
                return Err(format!(
                    "{raw}: bench fanout speaks ws:// only; point it at the server's plain listener"
                ));
            }
            let server = url
                .resolve(a.sources.first().map(|s| s.is_ipv6()))
                .map_err(|e| format!("cannot resolve {}: {e}", url.host))?;
            let separator = if url.target.contains('?') { '&' } else { '?' };
            Ok(Node {
                url: raw.clone(),
                server,
                path: format!("{}{separator}topic={}", url.target, a.topic),
                host_header: url.host_header,
                admin,
                // Subscriber j goes to node j mod n.
                subscribers: a.subscribers / n + usize::from(i < a.subscribers % n),
            })
        })
        .collect()
}

/// Subscribers expected per admin listener (several --url may share a node), in first-seen order.
fn per_admin(nodes: &[Node]) -> Vec<(SocketAddr, usize)> {
    let mut out: Vec<(SocketAddr, usize)> = Vec::new();
    for n in nodes.iter().filter(|n| n.subscribers > 0) {
        match out.iter_mut().find(|(a, _)| *a == n.admin) {
            Some((_, count)) => *count += n.subscribers,
            None => out.push((n.admin, n.subscribers)),
        }
    }
    out
}

/// Latency percentile `p` of sorted samples (0 without any).
fn quantile(sorted: &[f64], p: f64) -> f64 {
    if sorted.is_empty() {
        return 0.0;
    }
    let i = ((p * sorted.len() as f64).ceil() as usize).clamp(1, sorted.len());
    sorted[i - 1]
}

/// utime + stime of `pids`, summed, in µs.
fn cpu_us(pids: &[u32]) -> Result<u64, String> {
    pids.iter()
        .map(|&pid| {
            crate::bench::procfs::sample(pid)
                .map(|s| s.cpu_us)
                .map_err(|e| format!("--server-pid {pid}: cannot read /proc/{pid}/stat: {e}"))
        })
        .sum()
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
    let nodes = nodes(a)?;
    let node_count = nodes.len();
    // Per-node lines and the Redis floor only across nodes: one node's report stays as it was.
    let across = node_count > 1 || a.redis.is_some();
    let publish_admin = a.publish_admin.unwrap_or(nodes[0].admin);
    let admins = per_admin(&nodes);
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
        let k = i % node_count;
        let node = &nodes[k];
        let s = subscriber::subscribe(
            k,
            node.server,
            &node.host_header,
            source,
            &node.path,
            random,
            a.deflate,
        )
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
    for &(admin, n) in &admins {
        admin::wait_for_subscribers(admin, &a.topic, n)?;
    }
    let floor = match a.redis {
        Some(r) => {
            let channel = redis::channel(&a.topic);
            let stream = redis::subscribe(r, &channel)?;
            // One subscription per node with subscribers, and the floor's.
            redis::wait_subscribed(r, &channel, admins.len() + 1)?;
            Some(stream)
        }
        None => None,
    };
    // Columns: the nodes, then the Redis floor.
    let columns = node_count + usize::from(floor.is_some());
    let floor_group = threads * node_count;
    let progress = Arc::new(Progress {
        epoch: Instant::now(),
        done_at: (0..floor_group + usize::from(floor.is_some()))
            .map(|_| (0..total_msgs).map(|_| AtomicU64::new(0)).collect())
            .collect(),
        delivered: (0..columns).map(|_| AtomicU64::new(0)).collect(),
        errors: AtomicU64::new(0),
        failures: Default::default(),
        first_not_ours: AtomicU64::new(0),
        stop: AtomicBool::new(false),
    });
    let cpus = a.pin_cpu.clone().map(|l| l.0).unwrap_or_default();
    if let Some(&cpu) = cpus.first() {
        // The coordinator (publisher) stays off the server's CPUs too.
        core_affinity::set_for_current(core_affinity::CoreId { id: cpu });
    }
    let mut receivers: Vec<_> = per_thread
        .into_iter()
        .enumerate()
        .map(|(t, socks)| {
            let progress = progress.clone();
            let cpu = (!cpus.is_empty()).then(|| cpus[t % cpus.len()]);
            std::thread::spawn(move || {
                subscriber::receive(t, node_count, socks, cpu, total_msgs, &progress)
            })
        })
        .collect();
    if let Some(stream) = floor {
        let progress = progress.clone();
        receivers.push(std::thread::spawn(move || {
            redis::receive(stream, floor_group, node_count, &progress)
        }));
    }

    let body = |seq: usize| {
        let mut b = template.clone();
        b[..8].copy_from_slice(&(seq as u64).to_le_bytes());
        b
    };
    let publish = |seq: usize| admin::post(publish_admin, &a.topic, a.token.as_deref(), &body(seq));
    // When message `seq` reached each column: every subscriber of a node, or the floor.
    let arrived = |seq: usize| -> Option<Vec<u64>> {
        let at = |group: usize| progress.done_at[group][seq].load(Ordering::Acquire);
        let mut out = Vec::with_capacity(columns);
        for node in 0..node_count {
            let mut last = 0;
            for t in 0..threads {
                let when = at(t * node_count + node);
                if when == 0 {
                    return None;
                }
                last = last.max(when);
            }
            out.push(last);
        }
        if columns > node_count {
            out.push(at(floor_group));
        }
        out.iter().all(|&t| t != 0).then_some(out)
    };
    let wait_all = |seq: usize, limit: Duration| -> Result<Vec<u64>, String> {
        let deadline = Instant::now() + limit;
        loop {
            if let Some(at) = arrived(seq) {
                return Ok(at);
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
    let counters = || -> Vec<admin::ServerCounters> {
        admins
            .iter()
            .map(|&(admin, _)| admin::server_counters(admin))
            .collect()
    };

    let before = counters();
    // Per column, µs from just before the publish to its arrival there.
    let mut latencies_us: Vec<Vec<f64>> = vec![Vec::with_capacity(a.publishes); columns];
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
        for (samples, at) in latencies_us.iter_mut().zip(done) {
            samples.push(at.saturating_sub(t0) as f64 / 1e3);
        }
    }
    let mid = counters();
    let cpu_before = cpu_us(&a.server_pids)?;
    let t0 = ns(Instant::now());
    for seq in a.publishes..total_msgs {
        publish(seq)?;
    }
    // Per column, when the last burst message got there.
    let mut done = vec![t0; columns];
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
        for (d, at) in done.iter_mut().zip(wait_all(seq, Duration::from_secs(60))?) {
            *d = (*d).max(at);
        }
    }
    let cpu_after = cpu_us(&a.server_pids)?;
    live.finish();
    let burst_s_of = |column: usize| (done[column] - t0) as f64 / 1e9;
    let burst_s = (0..node_count).map(burst_s_of).fold(0.0, f64::max);
    let after = counters();
    progress.stop.store(true, Ordering::Release);
    for r in receivers {
        r.join().map_err(|_| "a receiver thread panicked")?;
    }

    for samples in &mut latencies_us {
        samples.sort_by(f64::total_cmp);
    }
    // A publish reached everyone when it reached the slowest node.
    let mut overall: Vec<f64> = (0..a.publishes)
        .map(|i| {
            (0..node_count)
                .map(|k| latencies_us[k][i])
                .fold(0.0, f64::max)
        })
        .collect();
    if node_count == 1 {
        overall = latencies_us[0].clone();
    } else {
        // Each column was sorted on its own: recompute from the per-publish maxima.
        overall.sort_by(f64::total_cmp);
    }
    let q = |p: f64| quantile(&overall, p);
    let rate = |deliveries: usize, seconds: f64| {
        if seconds > 0.0 {
            deliveries as f64 / seconds
        } else {
            0.0
        }
    };
    let per_s = rate(a.burst * a.subscribers, burst_s);
    // Per core from the servers' own counters when they have them (ringws); else one sender.
    let delta = |x: &[f64], m: &[f64]| -> Vec<f64> {
        x.iter().zip(m).map(|(x, m)| (x - m) / burst_s).collect()
    };
    let per_core: Vec<f64> = if after
        .iter()
        .zip(&mid)
        .all(|(x, m)| x.deliveries.len() == m.deliveries.len() && !x.deliveries.is_empty())
    {
        after
            .iter()
            .zip(&mid)
            .flat_map(|(x, m)| delta(&x.deliveries, &m.deliveries))
            .collect()
    } else {
        vec![per_s]
    };
    let sum = |c: &[admin::ServerCounters], f: fn(&admin::ServerCounters) -> f64| -> f64 {
        c.iter().map(f).sum()
    };
    let (count_before, count_mid) = (
        sum(&before, |c| c.latency_count),
        sum(&mid, |c| c.latency_count),
    );
    let server_mean_us = (count_mid > count_before).then(|| {
        (sum(&mid, |c| c.latency_sum) - sum(&before, |c| c.latency_sum))
            / (count_mid - count_before)
            * 1e6
    });
    let errors = progress.errors.load(Ordering::Relaxed);
    // Printable, so a server's own message (JSON) is recognised.
    let first_not_ours = match progress.first_not_ours.load(Ordering::Relaxed) {
        0 => None,
        bytes => Some(bytes.to_le_bytes().escape_ascii().to_string()),
    };
    let failures: Vec<(&str, u64)> = Failure::ALL
        .iter()
        .map(|&f| {
            (
                f.name(),
                progress.failures[f as usize].load(Ordering::Relaxed),
            )
        })
        .collect();
    // Uncompressed / compressed payload bytes the servers sent compressed during the burst.
    let compressed =
        sum(&after, |c| c.deflate_sent_compressed) - sum(&mid, |c| c.deflate_sent_compressed);
    let deflate_ratio = (compressed > 0.0).then(|| {
        (sum(&after, |c| c.deflate_sent_uncompressed) - sum(&mid, |c| c.deflate_sent_uncompressed))
            / compressed
    });
    let cpu_ns_per_delivery = (!a.server_pids.is_empty())
        .then(|| (cpu_after - cpu_before) as f64 * 1e3 / (a.burst * a.subscribers).max(1) as f64);
    // Per node: its subscribers' figures and its own count of deliveries over the run.
    let node_reports: Vec<NodeReport> = nodes
        .iter()
        .enumerate()
        .map(|(k, node)| {
            let i = admins.iter().position(|(x, _)| *x == node.admin);
            let counted = |c: &[admin::ServerCounters]| {
                i.map_or(0.0, |i| c[i].deliveries.iter().sum::<f64>())
            };
            NodeReport {
                url: node.url.clone(),
                admin: node.admin,
                subscribers: node.subscribers,
                latency_us: &latencies_us[k],
                deliveries_per_s: rate(a.burst * node.subscribers, burst_s_of(k)),
                received: progress.delivered[k].load(Ordering::Relaxed),
                expected: (node.subscribers * total_msgs) as u64,
                server_counted: counted(&after) - counted(&before),
            }
        })
        .collect();
    let floor_report = (columns > node_count).then(|| FloorReport {
        redis: a.redis.expect("the floor needs --redis"),
        latency_us: &latencies_us[node_count],
        messages_per_s: rate(a.burst, burst_s_of(node_count)),
        received: progress.delivered[node_count].load(Ordering::Relaxed),
        expected: total_msgs as u64,
    });
    let target = &a.label;
    if a.json {
        let mut out = serde_json::json!({
            "target": target,
            "subscribers": a.subscribers,
            "payload_bytes": payload_bytes,
            "deflate": a.deflate,
            "server_deflate_ratio": deflate_ratio,
            "connect_seconds": connect_s,
            "latency_samples": overall.len(),
            "latency_us": {"p50": q(0.5), "p99": q(0.99), "max": q(1.0)},
            "server_fanout_mean_us": server_mean_us,
            "burst": a.burst,
            "burst_seconds": burst_s,
            "deliveries_per_s": per_s,
            "deliveries_per_s_per_core": per_core,
            "errors": errors,
        });
        if across {
            out["publish_admin"] = serde_json::json!(publish_admin.to_string());
            out["nodes"] = node_reports.iter().map(NodeReport::json).collect();
            out["redis_floor"] = floor_report.as_ref().map(FloorReport::json).into();
            out["errors_by_kind"] = failures
                .iter()
                .map(|&(name, n)| (name.to_owned(), n.into()))
                .collect::<serde_json::Map<_, _>>()
                .into();
            out["first_not_ours_bytes"] = first_not_ours.clone().into();
        }
        if let Some(ns) = cpu_ns_per_delivery {
            out["server_cpu_ns_per_delivery"] = ns.into();
        }
        println!("{out}");
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
            overall.len()
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
        if across {
            println!("  publishes POSTed to {publish_admin}");
            for (k, n) in node_reports.iter().enumerate() {
                println!("  {}", n.line(k));
            }
            if let Some(f) = &floor_report {
                println!("  {}", f.line());
            }
        }
        if let Some(ns) = cpu_ns_per_delivery {
            println!(
                "  server CPU over the burst: {ns:.0} ns per delivery ({:.1} ms for {} deliveries)",
                (cpu_after - cpu_before) as f64 / 1e3,
                a.burst * a.subscribers
            );
        }
        println!("  errors (lost, duplicated, out of order, closed, invalid frames): {errors}");
        if across && errors > 0 {
            let kinds: Vec<String> = failures.iter().map(|(k, n)| format!("{k} {n}")).collect();
            println!("  errors by kind: {}", kinds.join(", "));
            if let Some(bytes) = &first_not_ours {
                println!("  the first message that was not the run's began with b\"{bytes}\"");
            }
        }
    }
    Ok(errors)
}

/// What one node's subscribers saw.
struct NodeReport<'a> {
    url: String,
    admin: SocketAddr,
    subscribers: usize,
    /// Sorted.
    latency_us: &'a [f64],
    deliveries_per_s: f64,
    /// Messages its subscribers read, and how many they should have.
    received: u64,
    expected: u64,
    /// `ringws_pubsub_deliveries_total` of its admin listener over the run.
    server_counted: f64,
}

impl NodeReport<'_> {
    fn line(&self, k: usize) -> String {
        format!(
            "node {} {} (admin {}): {} subscribers; p50 {:.0} µs, p99 {:.0} µs; burst {:.0} \
             deliveries/s; received {} of {} (the node counted {:.0})",
            k + 1,
            self.url,
            self.admin,
            self.subscribers,
            quantile(self.latency_us, 0.5),
            quantile(self.latency_us, 0.99),
            self.deliveries_per_s,
            self.received,
            self.expected,
            self.server_counted
        )
    }

    fn json(&self) -> serde_json::Value {
        serde_json::json!({
            "url": self.url,
            "admin": self.admin.to_string(),
            "subscribers": self.subscribers,
            "latency_us": {
                "p50": quantile(self.latency_us, 0.5),
                "p99": quantile(self.latency_us, 0.99),
                "max": quantile(self.latency_us, 1.0),
            },
            "deliveries_per_s": self.deliveries_per_s,
            "received": self.received,
            "expected": self.expected,
            "server_deliveries": self.server_counted,
        })
    }
}

/// What the plain Redis subscriber saw.
struct FloorReport<'a> {
    redis: SocketAddr,
    /// Sorted.
    latency_us: &'a [f64],
    messages_per_s: f64,
    received: u64,
    expected: u64,
}

impl FloorReport<'_> {
    fn line(&self) -> String {
        format!(
            "redis subscriber (floor, {}): p50 {:.0} µs, p99 {:.0} µs; burst {:.0} messages/s; \
             received {} of {}",
            self.redis,
            quantile(self.latency_us, 0.5),
            quantile(self.latency_us, 0.99),
            self.messages_per_s,
            self.received,
            self.expected
        )
    }

    fn json(&self) -> serde_json::Value {
        serde_json::json!({
            "redis": self.redis.to_string(),
            "latency_us": {
                "p50": quantile(self.latency_us, 0.5),
                "p99": quantile(self.latency_us, 0.99),
                "max": quantile(self.latency_us, 1.0),
            },
            "messages_per_s": self.messages_per_s,
            "received": self.received,
            "expected": self.expected,
        })
    }
}
