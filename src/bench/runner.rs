//! The coordinator: splits a run over threads, drives its timeline (open, warm up, measure,
//! stop), samples the server, prints live progress and assembles the report.

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use super::cause::ErrorCounts;
use super::echo_check::{self, NotEcho};
use super::histogram::Histogram;
use super::live::LiveLine;
use super::options::{
    validate_common, BenchError, CommonOptions, ConnectOptions, EchoOptions, IdleOptions,
};
use super::procfs::{self, ProcSample};
use super::report::{thousands, Latency, Report, SendLag};
use super::shared::{Shared, Stage};
use super::tls::TlsClient;
use super::url;
use super::worker::{Mode, RunPlan, ThreadPlan, ThreadStats, Worker};
use crate::protocol::frame::Opcode;
use crate::sys::epoll::Epoll;
use crate::sys::process;

/// Largest echo payload (the generator keeps one masked copy per connection).
pub const MAX_PAYLOAD_BYTES: usize = 16 << 20;
/// Longest close handshake waited for when stopping.
const MAX_CLOSE_WAIT: Duration = Duration::from_secs(3);
/// How long idle mode holds before sampling the server's RSS.
const RSS_SETTLE: Duration = Duration::from_secs(1);
/// Coordinator wake-up interval (Ctrl-C and stage checks).
const POLL_INTERVAL: Duration = Duration::from_millis(10);

/// Runs `bench echo`.
pub fn run_echo(opts: &EchoOptions) -> Result<Report, BenchError> {
    let common = &opts.common;
    validate_common(common)?;
    if opts.conns == 0 {
        return Err(BenchError::Invalid("--conns must be at least 1".into()));
    }
    if opts.payload_bytes > MAX_PAYLOAD_BYTES {
        return Err(BenchError::Invalid(format!(
            "--payload {} exceeds {MAX_PAYLOAD_BYTES} bytes",
            opts.payload_bytes
        )));
    }
    if let Some(rate) = opts.rate {
        if !(rate.is_finite() && rate > 0.0) {
            return Err(BenchError::Invalid(format!(
                "--rate {rate} (use a positive number of msgs/s)"
            )));
        }
    }
    let opcode = if opts.text {
        Opcode::Text
    } else {
        Opcode::Binary
    };
    let mode = Mode::Echo {
        paced: opts.rate.is_some(),
    };
    let payload = match &opts.message {
        Some(message) if opts.text && std::str::from_utf8(message).is_err() => {
            return Err(BenchError::Invalid(
                "--text with a --payload-file that is not UTF-8".into(),
            ))
        }
        Some(message) => message.clone(),
        None => make_payload(opts.payload_bytes, opts.text),
    };
    let plan = make_plan(common, mode, payload.clone(), opcode)?;
    // A server that does not echo is named before the run, not counted as mismatches. When the
    // check cannot connect or upgrade, the run counts and reports why. Its blocking connection
    // speaks ws:// only: over wss:// the run's own byte-for-byte check is the one made.
    let checked = match plan.tls {
        Some(_) => Ok(None),
        None => echo_check::check(
            plan.addr,
            &plan.host_header,
            &plan.target,
            &payload,
            opcode,
            common.timeout,
            common.deflate,
        ),
    };
    if let Ok(Some(NotEcho::DeflateDeclined)) = checked {
        return Err(BenchError::DeflateDeclined {
            url: common.url.clone(),
        });
    }
    if let Ok(Some(problem)) = checked {
        return Err(BenchError::NotEcho {
            url: common.url.clone(),
            problem,
        });
    }
    let threads = split_threads(common, opts.conns as u64, opts.rate);
    let server = ServerProbe::new(common.server_pid)?;
    let mut progress = Progress::new(common.progress, "echo");

    let rss_before = server.sample();
    let started = Instant::now();
    let run = execute(&plan, &threads, |shared| {
        let interrupted = wait(shared, &mut progress, None, || shared.all_open_done());
        let mut t = Timeline {
            interrupted,
            time_to_open: started.elapsed(),
            ..Timeline::default()
        };
        if !t.interrupted {
            t.interrupted = wait(
                shared,
                &mut progress,
                Some(Instant::now() + opts.warmup),
                || false,
            );
        }
        if !t.interrupted {
            t.measure(shared, &server, &mut progress, opts.duration);
        }
        t.rss_end = server.sample();
        t
    })?;
    progress.finish();

    let mut report = base_report("echo", common, &threads, &run);
    report.conns = opts.conns as u64;
    report.payload_bytes = opts.payload_bytes;
    report.text = opts.text;
    report.rate_target = opts.rate;
    if opts.rate.is_some() {
        let lag = &run.send_lag_ns;
        report.send_lag_us = Some(SendLag {
            p50: lag.quantile(0.5) as f64 / 1_000.0,
            p99: lag.quantile(0.99) as f64 / 1_000.0,
            max: lag.max() as f64 / 1_000.0,
        });
    }
    report.warmup_s = opts.warmup.as_secs_f64();
    report.messages = run.messages;
    report.handshakes = run.handshakes_total;
    report.msgs_per_s = per_second(run.messages, report.duration_s);
    report.time_to_open_s = Some(run.timeline.time_to_open.as_secs_f64());
    if let Some(cpu_us) = run.timeline.server_cpu_us() {
        report.server_cpu_us_per_op = Some(ratio(cpu_us, run.messages));
    }
    add_rss(&mut report, rss_before, run.timeline.rss_end, true);
    Ok(report)
}

/// Runs `bench idle`.
pub fn run_idle(opts: &IdleOptions) -> Result<Report, BenchError> {
    let common = &opts.common;
    validate_common(common)?;
    if opts.conns == 0 {
        return Err(BenchError::Invalid("--conns must be at least 1".into()));
    }
    let plan = make_plan(common, Mode::Idle, Vec::new(), Opcode::Binary)?;
    let threads = split_threads(common, opts.conns as u64, None);
    let server = ServerProbe::new(common.server_pid)?;
    let mut progress = Progress::new(common.progress, "idle");

    let rss_before = server.sample();
    let cpu_start = server.sample();
    let own_cpu_start = process::process_cpu_us();
    let started = Instant::now();
    let run = execute(&plan, &threads, |shared| {
        let mut t = Timeline {
            cpu_start,
            own_cpu_us: (own_cpu_start, 0),
            ..Timeline::default()
        };
        let open_deadline = started + opts.open_timeout;
        t.interrupted = wait(shared, &mut progress, Some(open_deadline), || {
            shared.all_open_done()
        });
        if !shared.all_open_done() {
            // Stop starting new connections; those in flight finish within --timeout.
            shared.stop_opening();
            t.interrupted |= wait(shared, &mut progress, None, || shared.all_open_done());
        }
        t.time_to_open = started.elapsed();
        t.own_cpu_us.1 = process::process_cpu_us();
        t.cpu_end = server.sample();
        let hold_start = Instant::now();
        if !t.interrupted {
            let settle = hold_start + opts.hold.min(RSS_SETTLE);
            t.interrupted = wait(shared, &mut progress, Some(settle), || false);
        }
        t.rss_end = server.sample();
        if !t.interrupted {
            t.interrupted = wait(shared, &mut progress, Some(hold_start + opts.hold), || {
                false
            });
        }
        t.window = hold_start.elapsed();
        shared.set_stage(Stage::Stop);
        t
    })?;
    progress.finish();

    let mut report = base_report("idle", common, &threads, &run);
    report.conns = opts.conns as u64;
    let open_s = run.timeline.time_to_open.as_secs_f64();
    report.time_to_open_s = Some(open_s);
    report.handshakes = run.handshakes_total;
    report.handshakes_per_s = per_second(run.handshakes_total, open_s);
    if let Some(cpu_us) = run.timeline.server_cpu_us() {
        report.server_cpu_us_per_op = Some(ratio(cpu_us, run.handshakes_total));
    }
    add_rss(&mut report, rss_before, run.timeline.rss_end, true);
    Ok(report)
}

/// Runs `bench connect`.
pub fn run_connect(opts: &ConnectOptions) -> Result<Report, BenchError> {
    let common = &opts.common;
    validate_common(common)?;
    let plan = make_plan(common, Mode::Connect, Vec::new(), Opcode::Binary)?;
    let mut threads = split_threads(common, common.concurrency as u64, None);
    for t in &mut threads {
        t.conns = u64::MAX;
    }
    let server = ServerProbe::new(common.server_pid)?;
    let mut progress = Progress::new(common.progress, "connect");

    let run = execute(&plan, &threads, |shared| {
        let interrupted = wait(
            shared,
            &mut progress,
            Some(Instant::now() + opts.warmup),
            || false,
        );
        let mut t = Timeline {
            interrupted,
            ..Timeline::default()
        };
        if !t.interrupted {
            t.rss_start = server.sample();
            t.measure(shared, &server, &mut progress, opts.duration);
        }
        t.rss_end = server.sample();
        t
    })?;
    progress.finish();

    let mut report = base_report("connect", common, &threads, &run);
    report.conns = common.concurrency as u64;
    report.warmup_s = opts.warmup.as_secs_f64();
    report.handshakes = run.handshakes_measured;
    report.handshakes_per_s = per_second(run.handshakes_measured, report.duration_s);
    if let Some(cpu_us) = run.timeline.server_cpu_us() {
        report.server_cpu_us_per_op = Some(ratio(cpu_us, run.handshakes_measured));
    }
    add_rss(
        &mut report,
        run.timeline.rss_start,
        run.timeline.rss_end,
        false,
    );
    Ok(report)
}

fn make_plan(
    common: &CommonOptions,
    mode: Mode,
    payload: Vec<u8>,
    opcode: Opcode,
) -> Result<RunPlan, BenchError> {
    let url = url::parse(&common.url)?;
    let prefer_ipv6 = common.sources.first().map(|s| s.is_ipv6());
    let addr: SocketAddr = url
        .resolve(prefer_ipv6)
        .map_err(|source| BenchError::Resolve {
            host: url.host.clone(),
            source,
        })?;
    if let Some(source) = common
        .sources
        .iter()
        .find(|s| s.is_ipv6() != addr.is_ipv6())
    {
        return Err(BenchError::Invalid(format!(
            "--sources {source} is not of the same address family as {addr}"
        )));
    }
    let timeout_ns = common.timeout.as_nanos().min(u128::from(u64::MAX / 4)) as u64;
    let tls = TlsClient::for_url(&url, &common.tls)?;
    Ok(RunPlan {
        mode,
        addr,
        host_header: url.host_header,
        target: url.target,
        sources: common.sources.clone(),
        timeout_ns,
        close_timeout_ns: timeout_ns.min(MAX_CLOSE_WAIT.as_nanos() as u64),
        payload,
        opcode,
        tls,
        deflate: common.deflate,
    })
}

/// Text: printable ASCII (valid UTF-8). Binary: pseudo-random bytes, so a server that mangles
/// any byte value is caught.
fn make_payload(len: usize, text: bool) -> Vec<u8> {
    const TEXT: &[u8] = b"ringws bench payload 0123456789 abcdefghijklmnopqrstuvwxyz ";
    if text {
        return TEXT.iter().copied().cycle().take(len).collect();
    }
    let mut state = 0x2545_F491_4F6C_DD1Du64;
    (0..len)
        .map(|_| {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            (state >> 24) as u8
        })
        .collect()
}

/// Splits `conns` (and concurrency and rate) over the threads; never more threads than conns.
fn split_threads(common: &CommonOptions, conns: u64, rate: Option<f64>) -> Vec<ThreadPlan> {
    let threads = (common.threads as u64).min(conns.max(1)) as usize;
    let share = |total: u64, i: usize| {
        total / threads as u64 + u64::from((i as u64) < total % threads as u64)
    };
    (0..threads)
        .map(|i| {
            let thread_conns = share(conns, i);
            ThreadPlan {
                index: i,
                conns: thread_conns,
                concurrency: share(common.concurrency as u64, i).max(1) as usize,
                rate: rate.map(|r| r * thread_conns as f64 / conns as f64),
                pin_cpu: (!common.pin_cpus.is_empty())
                    .then(|| common.pin_cpus[i % common.pin_cpus.len()]),
                source_stride: threads,
            }
        })
        .collect()
}

/// What the coordinator observed.
#[derive(Default)]
struct Timeline {
    interrupted: bool,
    time_to_open: Duration,
    /// The measured window (idle: the hold).
    window: Duration,
    cpu_start: Option<ProcSample>,
    cpu_end: Option<ProcSample>,
    /// The generator's own CPU time at both ends of the window, in µs.
    own_cpu_us: (u64, u64),
    rss_start: Option<ProcSample>,
    rss_end: Option<ProcSample>,
}

impl Timeline {
    /// Runs the measured window, sampling the server at both ends, then stops the threads.
    fn measure(
        &mut self,
        shared: &Shared,
        server: &ServerProbe,
        progress: &mut Progress,
        duration: Duration,
    ) {
        self.cpu_start = server.sample();
        self.own_cpu_us.0 = process::process_cpu_us();
        let start = Instant::now();
        shared.set_stage(Stage::Measure);
        self.interrupted = wait(shared, progress, Some(start + duration), || false);
        shared.set_stage(Stage::Stop);
        self.window = start.elapsed();
        self.own_cpu_us.1 = process::process_cpu_us();
        self.cpu_end = server.sample();
    }

    fn server_cpu_us(&self) -> Option<u64> {
        Some(self.cpu_end?.cpu_us.saturating_sub(self.cpu_start?.cpu_us))
    }
}

/// A finished run: the timeline and every thread's stats merged.
struct Run {
    timeline: Timeline,
    latency_ns: Histogram,
    send_lag_ns: Histogram,
    errors: ErrorCounts,
    messages: u64,
    handshakes_total: u64,
    handshakes_measured: u64,
    open_at_stop: u64,
    /// wss:// only: handshakes that resumed a TLS session (counted like `handshakes`).
    tls_resumed: Option<u64>,
    /// `--deflate` only: handshakes that negotiated permessage-deflate.
    deflate_negotiated: Option<u64>,
    notes: Vec<String>,
}

/// Starts one event loop per thread plan, runs `timeline` on this thread, then stops and joins
/// the threads (also when `timeline` returns early).
fn execute(
    plan: &RunPlan,
    threads: &[ThreadPlan],
    timeline: impl FnOnce(&Shared) -> Timeline,
) -> Result<Run, BenchError> {
    process::raise_nofile_limit(u64::MAX);
    let epolls = threads
        .iter()
        .map(|_| Epoll::new())
        .collect::<Result<Vec<_>, _>>()
        .map_err(BenchError::Setup)?;
    let shared = Shared::new(threads.len());
    let (timeline, stats) = std::thread::scope(|scope| {
        let handles: Vec<_> = threads
            .iter()
            .zip(epolls)
            .map(|(thread, epoll)| {
                let shared = &shared;
                std::thread::Builder::new()
                    .name(format!("bench-{}", thread.index))
                    .spawn_scoped(scope, move || {
                        Worker::new(plan, *thread, shared, epoll).run()
                    })
            })
            .collect();
        let timeline = if handles.iter().all(Result::is_ok) {
            timeline(&shared)
        } else {
            Timeline::default()
        };
        shared.set_stage(Stage::Stop);
        let stats: Vec<std::io::Result<ThreadStats>> = handles
            .into_iter()
            .map(|h| {
                h.map(|h| {
                    h.join()
                        .unwrap_or_else(|panic| std::panic::resume_unwind(panic))
                })
            })
            .collect();
        (timeline, stats)
    });
    let mut run = Run {
        timeline,
        latency_ns: Histogram::new(),
        send_lag_ns: Histogram::new(),
        errors: ErrorCounts::default(),
        messages: 0,
        handshakes_total: 0,
        handshakes_measured: 0,
        open_at_stop: 0,
        tls_resumed: plan.tls.as_ref().map(|_| 0),
        deflate_negotiated: plan.deflate.then_some(0),
        notes: Vec::new(),
    };
    for stats in stats {
        let stats = stats.map_err(BenchError::Setup)?;
        run.latency_ns.merge(&stats.latency_ns);
        run.send_lag_ns.merge(&stats.send_lag_ns);
        run.errors.merge(&stats.errors);
        run.messages += stats.messages;
        run.handshakes_total += stats.handshakes;
        run.handshakes_measured += stats.handshakes_measured;
        run.open_at_stop += stats.open_at_stop;
        if let Some(resumed) = &mut run.tls_resumed {
            *resumed += stats.tls_resumed;
        }
        if let Some(negotiated) = &mut run.deflate_negotiated {
            *negotiated += stats.deflate_negotiated;
        }
        run.notes.extend(stats.pin_error);
    }
    Ok(run)
}

/// Sleeps until `deadline` (None: no deadline) or until `done()`, printing progress. Returns
/// true when Ctrl-C interrupted the wait.
fn wait(
    shared: &Shared,
    progress: &mut Progress,
    deadline: Option<Instant>,
    done: impl Fn() -> bool,
) -> bool {
    loop {
        if process::interrupted() {
            return true;
        }
        if done() {
            return false;
        }
        let now = Instant::now();
        if deadline.is_some_and(|d| now >= d) {
            return false;
        }
        progress.tick(shared);
        let step = deadline.map_or(POLL_INTERVAL, |d| (d - now).min(POLL_INTERVAL));
        std::thread::sleep(step);
    }
}

fn base_report(
    mode: &'static str,
    common: &CommonOptions,
    threads: &[ThreadPlan],
    run: &Run,
) -> Report {
    let hist = &run.latency_ns;
    let us = |ns: u64| ns as f64 / 1_000.0;
    let mut notes = run.notes.clone();
    if run
        .errors
        .by_label()
        .keys()
        .any(|k| k.ends_with("EMFILE") || k.ends_with("ENFILE"))
    {
        notes.push(
            "out of file descriptors: raise the limit (ulimit -n) or use fewer connections".into(),
        );
    }
    if run
        .errors
        .by_label()
        .keys()
        .any(|k| k.ends_with("EADDRNOTAVAIL"))
    {
        notes.push(
            "out of ephemeral ports: add source addresses with --sources 127.0.0.2,127.0.0.3,..."
                .into(),
        );
    }
    let (own_start, own_end) = run.timeline.own_cpu_us;
    let busy_window_s = if mode == "idle" {
        run.timeline.time_to_open.as_secs_f64()
    } else {
        run.timeline.window.as_secs_f64()
    };
    let generator_cpu = if busy_window_s > 0.0 && own_end >= own_start {
        (own_end - own_start) as f64 / 1e6 / busy_window_s / threads.len() as f64
    } else {
        0.0
    };
    Report {
        mode,
        url: common.url.clone(),
        generator_cpu,
        threads: threads.len(),
        opened: run.handshakes_total,
        duration_s: run.timeline.window.as_secs_f64(),
        latency_us: Latency {
            p50: us(hist.quantile(0.50)),
            p99: us(hist.quantile(0.99)),
            p999: us(hist.quantile(0.999)),
            max: us(hist.max()),
            mean: hist.mean() / 1_000.0,
            samples: hist.count(),
        },
        open_at_end: run.open_at_stop,
        errors: run.errors.by_label(),
        errors_total: run.errors.total(),
        interrupted: run.timeline.interrupted,
        server_pid: common.server_pid,
        tls_resumed: run.tls_resumed,
        deflate_negotiated: run.deflate_negotiated,
        notes,
        ..Report::default()
    }
}

fn add_rss(
    report: &mut Report,
    before: Option<ProcSample>,
    after: Option<ProcSample>,
    per_conn: bool,
) {
    let (Some(before), Some(after)) = (before, after) else {
        return;
    };
    let delta = after.rss_bytes as i64 - before.rss_bytes as i64;
    report.server_rss_bytes_delta = Some(delta);
    if per_conn && report.opened > 0 {
        report.server_rss_bytes_per_conn = Some(delta as f64 / report.opened as f64);
    }
}

fn per_second(count: u64, seconds: f64) -> f64 {
    if seconds > 0.0 {
        count as f64 / seconds
    } else {
        0.0
    }
}

fn ratio(cpu_us: u64, ops: u64) -> f64 {
    if ops == 0 {
        0.0
    } else {
        cpu_us as f64 / ops as f64
    }
}

/// Samples the server process when `--server-pid` was given.
struct ServerProbe {
    pid: Option<u32>,
}

impl ServerProbe {
    /// Fails early, before any load, when the process cannot be read.
    fn new(pid: Option<u32>) -> Result<ServerProbe, BenchError> {
        if let Some(pid) = pid {
            procfs::sample(pid).map_err(|source| BenchError::ServerPid { pid, source })?;
        }
        Ok(ServerProbe { pid })
    }

    fn sample(&self) -> Option<ProcSample> {
        procfs::sample(self.pid?).ok()
    }
}

/// Live progress on stderr, once per second.
struct Progress {
    line: LiveLine,
    mode: &'static str,
    last_messages: u64,
    last_handshakes: u64,
}

impl Progress {
    fn new(enabled: bool, mode: &'static str) -> Progress {
        Progress {
            line: LiveLine::new(enabled),
            mode,
            last_messages: 0,
            last_handshakes: 0,
        }
    }

    fn tick(&mut self, shared: &Shared) {
        if !self.line.due() {
            return;
        }
        let totals = shared.totals();
        let secs = self.line.since_last().as_secs_f64();
        let rate = match self.mode {
            "echo" => format!(
                "{} msgs/s",
                thousands(((totals.messages - self.last_messages) as f64 / secs) as u64)
            ),
            _ => format!(
                "{} handshakes/s",
                thousands(((totals.handshakes - self.last_handshakes) as f64 / secs) as u64)
            ),
        };
        let stage = match shared.stage() {
            Stage::Warmup => "",
            Stage::Measure => " [measuring]",
            Stage::Stop => " [stopping]",
        };
        self.line.show(&format!(
            "{} {:>6.1}s  open {}  {}  errors {}{stage}",
            self.mode,
            self.line.seconds(),
            thousands(totals.open),
            rate,
            thousands(totals.errors),
        ));
        self.last_messages = totals.messages;
        self.last_handshakes = totals.handshakes;
    }

    fn finish(&mut self) {
        self.line.finish();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn splits_conns_concurrency_and_rate_over_threads() {
        let mut common = CommonOptions::new("ws://127.0.0.1:1/");
        common.threads = 3;
        common.concurrency = 10;
        common.pin_cpus = vec![4, 5];
        let plans = split_threads(&common, 100, Some(1000.0));
        assert_eq!(
            plans.iter().map(|p| p.conns).collect::<Vec<_>>(),
            vec![34, 33, 33]
        );
        assert_eq!(plans.iter().map(|p| p.concurrency).sum::<usize>(), 10);
        assert!((plans.iter().map(|p| p.rate.unwrap()).sum::<f64>() - 1000.0).abs() < 1e-6);
        assert_eq!(
            plans.iter().map(|p| p.pin_cpu).collect::<Vec<_>>(),
            vec![Some(4), Some(5), Some(4)]
        );
        assert_eq!(
            split_threads(&common, 2, None).len(),
            2,
            "never more threads than conns"
        );
    }

    #[test]
    fn text_payload_is_ascii_and_binary_payload_varies() {
        assert!(make_payload(100, true)
            .iter()
            .all(|b| b.is_ascii_graphic() || *b == b' '));
        let binary = make_payload(256, false);
        assert!(
            binary
                .iter()
                .collect::<std::collections::HashSet<_>>()
                .len()
                > 100
        );
    }
}
