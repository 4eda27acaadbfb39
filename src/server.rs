//! Starts one pinned reactor thread per core and waits for them.

pub mod ports;

use std::io;
use std::net::SocketAddr;
use std::os::fd::RawFd;
use std::sync::atomic::Ordering;
use std::sync::{mpsc, Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant, SystemTime};

use crate::app::{echo::Echo, App, Waker};
use crate::check::{check_nofile, Plan, Status};
use crate::config::{AppKind, Config};
use crate::metrics::Exporter;
use crate::policy::{DebugRing, HandshakeRateLimiter, Policy, ReloadGate};
use crate::protocol::connection;
use crate::protocol::deflate::Compression;
use crate::protocol::{HandshakeLimits, Limits, RefusalReason};
use crate::reactor::admin::AdminSide;
use crate::reactor::conns::CoreSettings;
use crate::reactor::event_loop::{ticks, CoreObservers, CoreParts, Reactor, TICK};
use crate::reactor::gate::Gate;
use crate::reactor::listener::{tcp_user_timeout, Listener};
use crate::reactor::Shared;
use crate::stats::CoreStats;
use crate::sys::{eventfd, process, socket};
use crate::tls::{self, TlsError, TlsShared};
use ports::Role;

/// Why the server could not start or stopped abnormally. Each message says what to do.
#[derive(Debug, thiserror::Error)]
pub enum ServerError {
    #[error("tls_listen: {0}")]
    Tls(#[source] TlsError),
    #[error(
        "io_uring is blocked (io_uring_setup: permission denied). A container seccomp profile \
         (Docker's and containerd's defaults block io_uring) or the sysctl kernel.io_uring_disabled \
         forbids it. Fix: run the container with deploy/container/seccomp-ringws.json \
         (docker run --security-opt seccomp=deploy/container/seccomp-ringws.json ...), or set \
         kernel.io_uring_disabled=0"
    )]
    IoUringBlocked,
    #[error("this kernel has no io_uring (io_uring_setup: not implemented). ringws needs Linux 6.0 or newer")]
    IoUringMissing,
    #[error("io_uring set-up failed: {0}. If this is ENOMEM, raise the locked-memory limit (ulimit -l, LimitMEMLOCK=) or lower --ring-entries")]
    IoUring(io::Error),
    #[error("{}", ports::in_use_message(*.addr, *.role, .holders, *.takeover))]
    AddrInUse {
        addr: SocketAddr,
        role: Role,
        /// The processes listening on it, where /proc shows them.
        holders: Vec<ports::Holder>,
        /// Sharing was asked for, and the holder does not share.
        takeover: bool,
    },
    #[error("cannot listen on {addr} ({}): {source}{hint}", .role.flag())]
    Bind {
        addr: SocketAddr,
        role: Role,
        source: io::Error,
        hint: &'static str,
    },
    #[error(transparent)]
    Config(#[from] crate::config::ConfigError),
    #[error("core {core}: {source}")]
    Reactor { core: usize, source: io::Error },
    #[error("could not start a reactor thread: {0}")]
    Thread(io::Error),
    #[error("{0}")]
    Policy(#[from] crate::policy::PolicyError),
    #[error(transparent)]
    PubSub(#[from] crate::app::pubsub::StartError),
}

/// Runs `ringws serve` until SIGINT or SIGTERM.
pub fn run(config: Config) -> Result<(), ServerError> {
    match config.app {
        AppKind::Echo => run_app(config, Echo),
        AppKind::Pubsub => {
            let app = crate::app::pubsub::PubSub::from_config(&config)?;
            run_app(config, app)
        }
    }
}

/// Checks what [`run`] reads before it binds, without binding or starting anything: the TLS
/// files (`tls_cert`, `tls_key`, `tls_sni_certs`, `tls_client_ca`: readable, a key that belongs
/// to its certificate), the policy's files and secret (`auth_tokens_file`, `jwt_secret_file` or
/// the environment's secret) and the app's (`publish_tokens_file`). The values themselves were
/// checked when the configuration was loaded.
pub fn check_config(config: &Config) -> Result<(), ServerError> {
    crate::config::check_listeners(config)?;
    crate::config::check_drain(config)?;
    if let Some(files) = config.tls_files()? {
        let loaded = tls::load(&files).map_err(ServerError::Tls)?;
        warn_if_expiring(&loaded.summary);
    }
    Policy::load(&config.policy_settings())?;
    ReloadGate::load(config.admin_tokens_file.as_deref())?;
    if config.app == AppKind::Pubsub {
        crate::app::pubsub::PubSub::from_config(config)?;
    }
    Ok(())
}

/// A running server, for embedding ringws as a library (and for tests).
pub struct Server {
    addr: SocketAddr,
    admin_addr: Option<SocketAddr>,
    shared: Arc<Shared>,
    wake_fds: Vec<RawFd>,
    threads: Vec<JoinHandle<Result<(), ServerError>>>,
    stats: Vec<Arc<CoreStats>>,
    /// The wss listener's address and the TLS configuration the cores share.
    tls: Option<(SocketAddr, Arc<TlsShared>)>,
    /// The handshake policy (its credentials reload) and `POST /reload`'s gate.
    credentials: (Arc<Policy>, Arc<ReloadGate>),
}

impl Server {
    /// Binds the listeners and starts one reactor per core; returns once every core is ready.
    pub fn start<A: App>(config: &Config, app: A) -> Result<Server, ServerError> {
        crate::config::check_listeners(config)?;
        crate::config::check_drain(config)?;
        let tls_loaded = match config.tls_files()? {
            Some(files) => Some(tls::load(&files).map_err(ServerError::Tls)?),
            None => None,
        };
        let (listeners, admin_listener, tls_listeners) = bind_all(config)?;
        check_fd_limit(config);
        // Buffers of 128 KiB or more go back to the system when freed (glibc's starting threshold,
        // held there instead of rising with every large free).
        process::return_large_buffers_to_the_system(128 << 10);
        let app = Arc::new(app);
        let shared = Arc::new(Shared::default());
        let addr = listeners[0]
            .local_addr()
            .map_err(|source| ServerError::Bind {
                addr: config.listen,
                role: Role::Listen,
                source,
                hint: "",
            })?;
        let core_ids = core_affinity::get_core_ids().unwrap_or_default();
        let settings = CoreSettings {
            conn: connection::Settings {
                limits: Limits {
                    max_frame_size: config.max_frame_size,
                    max_message_size: config.max_message_size,
                },
                handshake: HandshakeLimits {
                    max_head_bytes: config.max_handshake_size,
                    ..HandshakeLimits::default()
                },
                handshake_timeout_ticks: ticks(config.handshake_timeout),
                close_timeout_ticks: ticks(config.close_timeout),
                ping_interval_ticks: ticks(config.ping_interval),
                pong_timeout_ticks: ticks(config.pong_timeout),
                idle_timeout_ticks: config.idle_timeout.map(ticks),
                message_timeout_ticks: ticks(config.message_timeout),
                min_receive_bytes_per_tick: bytes_per_tick(config.min_receive_rate),
                write_stall_timeout_ticks: ticks(config.write_stall_timeout),
                min_send_bytes_per_tick: bytes_per_tick(config.min_send_rate),
                max_outbound_bytes: usize::try_from(config.max_outbound_buffer)
                    .unwrap_or(usize::MAX),
                // Thousandths of a message per tick.
                message_rate_milli_per_tick: u64::from(config.message_rate)
                    * TICK.as_millis() as u64,
                message_burst: config.message_burst,
                compression: Compression {
                    enabled: config.compression,
                    min_size: config.compression_min_size,
                    level: config.compression_level,
                },
            },
            drain_timeout_ticks: ticks(config.drain_timeout),
            drain_delay_ticks: ticks_or_zero(config.drain_delay),
            drain_spread_ticks: ticks_or_zero(config.drain_spread),
            max_connections: config.max_connections,
            // SO_REUSEPORT spreads connections evenly, so each core enforces an even share.
            memory_budget_bytes: config.memory_budget / config.cores as u64,
            recv_buffer_size: config.recv_buffer_size,
            ring_entries: config.ring_entries,
            proxy_trusted: config
                .proxy_protocol
                .then(|| config.trusted_proxies.clone()),
        };

        let admin_addr = admin_listener.as_ref().and_then(|l| l.local_addr().ok());
        let stats: Vec<Arc<CoreStats>> = (0..listeners.len())
            .map(|_| Arc::new(CoreStats::default()))
            .collect();
        let tls_shared = tls_loaded.as_ref().map(|loaded| {
            warn_if_expiring(&loaded.summary);
            Arc::new(TlsShared::new(loaded))
        });
        let policy = Arc::new(Policy::load(&config.policy_settings())?);
        warn_if_jwks_accepts_any_audience(config);
        policy.start_background();
        let mut series = app.metrics();
        series.extend(policy.metrics());
        let exporter = Arc::new(Exporter::new(config, &stats, series, tls_shared.clone()));
        let debug_rings: Option<Arc<Vec<_>>> = config.debug_handshakes.then(|| {
            Arc::new(
                (0..stats.len())
                    .map(|_| Arc::new(Mutex::new(DebugRing::new())))
                    .collect(),
            )
        });
        let reload_gate = Arc::new(ReloadGate::load(config.admin_tokens_file.as_deref())?);
        let mut admin_side = admin_listener.map(|l| {
            let mut side = AdminSide::new(l, exporter.clone(), debug_rings.clone());
            side.reload = Some(reload_gate.clone());
            side
        });

        let (ready_tx, ready_rx) = mpsc::channel::<Result<usize, ServerError>>();
        let mut server = Server {
            addr,
            admin_addr,
            shared: shared.clone(),
            wake_fds: Vec::new(),
            threads: Vec::new(),
            stats: stats.clone(),
            tls: None,
            credentials: (policy.clone(), reload_gate),
        };
        if let (Some(listener), Some(shared)) = (tls_listeners.first(), &tls_shared) {
            let addr = listener.local_addr().map_err(|source| ServerError::Bind {
                addr: listener_addr_or(config.tls_listen),
                role: Role::TlsListen,
                source,
                hint: "",
            })?;
            server.tls = Some((addr, shared.clone()));
        }
        let mut tls_listeners = tls_listeners.into_iter();
        for _ in 0..listeners.len() {
            server
                .wake_fds
                .push(eventfd::eventfd().map_err(ServerError::Thread)?);
        }
        app.start(server.wake_fds.iter().map(|&fd| Waker { fd }).collect());
        for (core, listener) in listeners.into_iter().enumerate() {
            let wake_fd = server.wake_fds[core];
            let stats = stats[core].clone();
            let tls = tls_listeners.next().zip(tls_shared.clone());
            let gate = Gate::new(
                policy.clone(),
                // SO_REUSEPORT spreads one address's connections over the cores, so each core
                // enforces its share of the per-address rate and burst.
                HandshakeRateLimiter::new(
                    config.handshake_rate_per_ip.div_ceil(config.cores as u32),
                    config.handshake_burst_per_ip.div_ceil(config.cores as u32),
                    config.handshake_rate_table_size,
                ),
                !config.trusted_proxies.is_empty(),
                debug_rings.as_ref().map(|rings| rings[core].clone()),
            );
            let observers = CoreObservers {
                gate,
                admin: if core == 0 { admin_side.take() } else { None },
                handshake_duration: exporter.handshake_duration(core),
                fanout_latency: exporter.fanout_latency(core),
            };
            let (app, shared, settings, ready_tx) = (
                app.clone(),
                shared.clone(),
                settings.clone(),
                ready_tx.clone(),
            );
            let pin = core_ids.get(core % core_ids.len().max(1)).copied();
            let thread = std::thread::Builder::new()
                .name(format!("ringws-core-{core}"))
                .spawn(move || {
                    if let Some(id) = pin {
                        core_affinity::set_for_current(id);
                    }
                    let parts = CoreParts {
                        core,
                        listener,
                        tls,
                        wake_fd,
                        shared,
                        stats,
                    };
                    let mut reactor = match Reactor::new(app, parts, settings, observers) {
                        Ok(r) => r,
                        Err(e) => {
                            let err = ring_error(e);
                            let _ = ready_tx.send(Err(ring_error_copy(&err)));
                            return Err(err);
                        }
                    };
                    let _ = ready_tx.send(Ok(core));
                    drop(ready_tx);
                    reactor
                        .run()
                        .map_err(|source| ServerError::Reactor { core, source })
                })
                .map_err(ServerError::Thread)?;
            server.threads.push(thread);
        }
        drop(ready_tx);
        for _ in 0..server.threads.len() {
            match ready_rx.recv() {
                Ok(Ok(_core)) => {}
                Ok(Err(e)) => {
                    server.stop();
                    let _ = server.join();
                    return Err(e);
                }
                Err(_) => break,
            }
        }
        Ok(server)
    }

    /// The address the listeners are bound to (the real port when `listen` asked for port 0).
    pub fn local_addr(&self) -> SocketAddr {
        self.addr
    }

    /// The admin listener's address, if it is on.
    pub fn admin_addr(&self) -> Option<SocketAddr> {
        self.admin_addr
    }

    /// The wss listener's address (the real port when `tls_listen` asked for port 0).
    pub fn tls_addr(&self) -> Option<SocketAddr> {
        self.tls.as_ref().map(|(addr, _)| *addr)
    }

    /// Reads the TLS files again: new handshakes use them, connections keep theirs. A file
    /// that cannot be used keeps the configuration in use, and the error says why.
    pub fn reload_tls(&self, config: &Config) -> Result<(), ServerError> {
        let (Some((_, shared)), Some(files)) = (&self.tls, config.tls_files()?) else {
            return Ok(());
        };
        match tls::load(&files) {
            Ok(loaded) => {
                shared.replace(&loaded);
                shared
                    .reloads
                    .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                tracing::info!(
                    subject = %loaded.summary.subject,
                    names = %loaded.summary.names.join(","),
                    expires = %loaded.summary.not_after_text(),
                    "TLS certificate reloaded: new handshakes use it, open connections keep theirs"
                );
                warn_if_expiring(&loaded.summary);
                Ok(())
            }
            Err(e) => {
                shared
                    .reload_failures
                    .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                Err(ServerError::Tls(e))
            }
        }
    }

    /// What SIGHUP and `POST /reload` do: the TLS files, then the policy's credentials (token
    /// file, JWT secret, JWKS file) and the admin tokens. Each part that fails keeps what it had
    /// and is logged; the others still reload.
    pub fn reload(&self, config: &Config) {
        if let Err(e) = self.reload_tls(config) {
            tracing::warn!("reload: {e}; the certificate loaded before stays in use");
        }
        let (policy, gate) = &self.credentials;
        if let Err(e) = policy.reload_credentials() {
            tracing::warn!("reload: {e}; the credentials loaded before stay in use");
        }
        if let Err(e) = gate.reload_tokens() {
            tracing::warn!("reload: admin_tokens_file: {e}; the admin tokens stay as they were");
        }
    }

    /// True once after each accepted `POST /reload`.
    pub fn reload_requested(&self) -> bool {
        self.credentials.1.take_request()
    }

    pub fn cores(&self) -> usize {
        self.threads.len()
    }

    /// Per-core counters.
    pub fn stats(&self) -> &[Arc<CoreStats>] {
        &self.stats
    }

    /// Upgraded connections open now, over all cores.
    pub fn connections_open(&self) -> u64 {
        self.stats.iter().map(|s| s.connections_open.get()).sum()
    }

    /// Asks every core to stop (returns at once; `join` waits).
    pub fn stop(&self) {
        self.shared.stop.store(true, Ordering::Release);
        for &fd in &self.wake_fds {
            eventfd::eventfd_signal(fd);
        }
    }

    /// True when a core thread has ended (normally only after `stop`).
    pub fn any_core_finished(&self) -> bool {
        self.threads.iter().any(|t| t.is_finished())
    }

    /// True when every core has ended (after `stop`, once connections are drained).
    pub fn all_cores_finished(&self) -> bool {
        self.threads.iter().all(|t| t.is_finished())
    }

    /// Waits for every core; returns the first error a core reported.
    pub fn join(self) -> Result<(), ServerError> {
        let mut first_err = None;
        for t in self.threads {
            match t.join() {
                Ok(Ok(())) => {}
                Ok(Err(e)) => {
                    first_err.get_or_insert(e);
                }
                Err(_) => {
                    first_err.get_or_insert(ServerError::Thread(io::Error::other(
                        "a reactor thread panicked",
                    )));
                }
            }
        }
        for fd in self.wake_fds {
            socket::close(fd);
        }
        first_err.map_or(Ok(()), Err)
    }
}

fn run_app<A: App>(config: Config, app: A) -> Result<(), ServerError> {
    let name = app.name();
    let admin_routes = crate::admin::routes::listing(&app, config.debug_handshakes);
    // Block the stop signals before any thread starts, so every thread inherits the mask and
    // only `wait_for_stop_signal` receives them.
    process::block_stop_signals();
    let server = Server::start(&config, app)?;
    let started = Instant::now();
    println!(
        "ringws listening on ws://{} ({} cores, app={})",
        server.local_addr(),
        server.cores(),
        name
    );
    if let Some(admin) = server.admin_addr() {
        println!(
            "ringws admin on http://{admin} ({})",
            admin_routes.join(", ")
        );
    }
    // After the admin line, which tools that read the banner expect right after the first.
    if let Some(tls) = server.tls_addr() {
        println!("ringws listening on wss://{tls}");
    }
    use std::io::Write;
    let _ = std::io::stdout().flush();
    loop {
        if let Some(sig) = process::wait_for_stop_signal(Duration::from_millis(500)) {
            if sig == libc::SIGHUP {
                server.reload(&config);
                continue;
            }
            log_drain_start(sig, server.connections_open(), &config);
            break;
        }
        if server.reload_requested() {
            server.reload(&config);
        }
        if server.any_core_finished() {
            tracing::error!("a reactor stopped on its own: stopping the server");
            break;
        }
    }
    // Drain: each core closes its listener and sends close 1001; a second signal cuts it short.
    server.stop();
    while !server.all_cores_finished() {
        if let Some(sig) = process::wait_for_stop_signal(Duration::from_millis(50)) {
            if sig == libc::SIGHUP {
                continue; // nothing to reload while stopping
            }
            tracing::warn!(
                "{} received again: exiting at once, without waiting for the {} left",
                signal_name(sig),
                plural(server.connections_open(), "connection")
            );
            std::process::exit(1);
        }
    }
    let stats: Vec<Arc<CoreStats>> = server.stats().to_vec();
    let result = server.join();
    log_summary(&stats, started.elapsed());
    result
}

/// An identity provider's keys sign tokens for every application of its realm: without
/// `jwt_audience` or `jwt_issuer`, a token issued for any of them is accepted here.
fn warn_if_jwks_accepts_any_audience(config: &Config) {
    let jwks = config.jwt_jwks_file.is_some() || config.jwt_jwks_url.is_some();
    if config.auth == crate::policy::AuthMode::Jwt
        && jwks
        && config.jwt_audience.is_none()
        && config.jwt_issuer.is_none()
    {
        tracing::warn!(
            "auth = \"jwt\" with a JWKS but neither jwt_audience nor jwt_issuer: any token the \
             key set's issuer signed, for any application, is accepted; set jwt_audience to \
             this service's client id (and jwt_issuer to the provider's URL)"
        );
    }
}

/// What the first stop signal starts: how many connections drain, when the listeners close,
/// how the 1001s are spread, until when, and how to cut it short.
fn log_drain_start(sig: i32, open: u64, config: &Config) {
    let signal = signal_name(sig);
    let (delay, spread) = (config.drain_delay, config.drain_spread);
    let format = crate::config::format_duration;
    if open == 0 && delay.is_zero() {
        tracing::info!("{signal} received: no connection open, stopping");
        return;
    }
    let deadline = humantime::format_rfc3339_seconds(SystemTime::now() + config.drain_timeout);
    let spread = if spread.is_zero() {
        String::new()
    } else {
        format!(", spread over {} (drain_spread),", format(spread))
    };
    // With a delay, connections still arrive after this line: the count is only today's.
    let what = if delay.is_zero() {
        format!("draining {}: each", plural(open, "open connection"))
    } else {
        format!(
            "/readyz answers 503 now and the listeners accept for {} more (drain_delay); then \
             every open connection ({open} now)",
            format(delay)
        )
    };
    tracing::info!(
        "{signal} received: {what} is sent close 1001{spread} and has up to {} (until \
         {deadline}) to answer. A second SIGINT or SIGTERM (Ctrl-C again) exits at once",
        format(config.drain_timeout),
    );
}

/// `SIGINT`, `SIGTERM`, or `signal N`.
fn signal_name(sig: i32) -> String {
    match sig {
        libc::SIGINT => "SIGINT".into(),
        libc::SIGTERM => "SIGTERM".into(),
        other => format!("signal {other}"),
    }
}

/// `1 connection`, `3 connections`.
fn plural(n: u64, noun: &str) -> String {
    match n {
        1 => format!("1 {noun}"),
        n => format!("{n} {noun}s"),
    }
}

/// Refusal reasons per line of the exit summary.
const REFUSALS_PER_LINE: usize = 4;

/// What happened, in a few short info lines, so an operator sees refusals even without metrics.
fn log_summary(stats: &[Arc<CoreStats>], uptime: Duration) {
    let sum = |f: fn(&CoreStats) -> u64| stats.iter().map(|s| f(s)).sum::<u64>();
    let per_core: Vec<String> = stats
        .iter()
        .map(|s| s.handshakes_completed.get().to_string())
        .collect();
    let uptime = Duration::from_secs(uptime.as_secs());
    tracing::info!("stopped after {}", crate::config::format_duration(uptime));
    tracing::info!(
        accepted = sum(|s| s.accepted.get()),
        upgraded = sum(|s| s.handshakes_completed.get()),
        upgraded_per_core = %per_core.join(","),
        "summary: connections"
    );
    tracing::info!(
        handshake_timeouts = sum(|s| s.handshake_timeouts.get()),
        heartbeat_timeouts = sum(|s| s.heartbeat_timeouts.get()),
        "summary: timeouts"
    );
    tracing::info!(
        slow_consumers = sum(|s| s.slow_consumer_closes.get()),
        protocol_errors = sum(|s| s.protocol_errors.get()),
        "summary: closes"
    );
    tracing::info!(
        message_timeouts = sum(|s| s.message_timeouts.get()),
        write_stalls = sum(|s| s.write_stall_closes.get()),
        memory_sheds = sum(|s| s.memory_sheds_inbound.get() + s.memory_sheds_outbound.get()),
        "summary: slow peers"
    );
    tracing::info!(
        closes_sent = sum(|s| s.drain_closes.get()),
        drained_cleanly = sum(|s| s.drained_cleanly.get()),
        drained_forced = sum(|s| s.drained_forced.get()),
        "summary: drain"
    );
    let refused: Vec<String> = RefusalReason::ALL
        .iter()
        .filter_map(|r| {
            let n: u64 = stats.iter().map(|s| s.refused_count(*r)).sum();
            (n > 0).then(|| format!("{}={n}", r.label()))
        })
        .collect();
    if refused.is_empty() {
        tracing::info!("summary: refused handshakes none");
    }
    for reasons in refused.chunks(REFUSALS_PER_LINE) {
        tracing::info!("summary: refused handshakes {}", reasons.join(" "));
    }
}

/// Warns when the certificate expires within [`tls::certificate::CERTIFICATE_WARN_DAYS`] or is
/// not yet valid.
fn warn_if_expiring(summary: &tls::CertificateSummary) {
    let now = tls::certificate::now_unix_s();
    let days = summary.days_left(now);
    let expires = summary.not_after_text();
    if days < 0 {
        tracing::warn!(
            "the TLS certificate ({}) expired on {expires}: clients refuse it",
            summary.subject
        );
    } else if days < tls::certificate::CERTIFICATE_WARN_DAYS {
        tracing::warn!(
            "the TLS certificate ({}) expires in {days} days ({expires})",
            summary.subject
        );
    }
    if summary.not_before_unix_s > now {
        tracing::warn!(
            "the TLS certificate ({}) is not valid before {}: clients refuse it until then",
            summary.subject,
            summary.not_before_text()
        );
    }
}

fn listener_addr_or(addr: Option<SocketAddr>) -> SocketAddr {
    addr.unwrap_or_else(|| SocketAddr::from(([0, 0, 0, 0], 0)))
}

/// Binds the WebSocket listeners (one per core) and the admin listener, here so that a taken
/// port fails the start, not a thread. A port another process listens on is refused unless
/// `takeover` asks to share it (see [`ports`]).
type Bound = (Vec<Listener>, Option<Listener>, Vec<Listener>);

fn bind_all(config: &Config) -> Result<Bound, ServerError> {
    let takeover = config.takeover;
    let _lock = (!takeover).then(ports::BindLock::acquire);
    let claims = std::iter::once((config.listen, Role::Listen))
        .chain(config.tls_listen.map(|addr| (addr, Role::TlsListen)))
        .chain(config.admin_listen.map(|addr| (addr, Role::Admin)));
    let mut shared = Vec::new();
    for (addr, role) in claims {
        if !ports::is_held(addr).map_err(|e| bind_error(addr, role, takeover, e))? {
            continue;
        }
        let holders = ports::holders(addr);
        if !takeover {
            return Err(ServerError::AddrInUse {
                addr,
                role,
                holders,
                takeover,
            });
        }
        shared.push((addr, role, holders));
    }
    let listeners = bind_per_core(config, config.listen, Role::Listen)?;
    let tls_listeners = match config.tls_listen {
        Some(addr) => bind_per_core(config, addr, Role::TlsListen)?,
        None => Vec::new(),
    };
    let admin = config.admin_listen.map(|addr| {
        Listener::bind(addr, 128, None).map_err(|e| bind_error(addr, Role::Admin, takeover, e))
    });
    let admin = admin.transpose()?;
    for (addr, role, holders) in shared {
        tracing::info!(
            "{} {addr}: sharing the port with {} (--takeover); stop the old process to hand \
             the new connections over to this one",
            role.flag(),
            ports::describe(&holders)
        );
    }
    Ok((listeners, admin, tls_listeners))
}

/// One SO_REUSEPORT listener on `addr` per core.
fn bind_per_core(
    config: &Config,
    mut addr: SocketAddr,
    role: Role,
) -> Result<Vec<Listener>, ServerError> {
    let takeover = config.takeover;
    let user_timeout = tcp_user_timeout(
        config.ping_interval,
        config.pong_timeout,
        config.write_stall_timeout,
    );
    let mut listeners = Vec::with_capacity(config.cores);
    for _ in 0..config.cores {
        let listener = Listener::bind(addr, config.backlog, config.defer_accept)
            .map_err(|e| bind_error(addr, role, takeover, e))?;
        listener
            .set_user_timeout(user_timeout)
            .map_err(|e| bind_error(addr, role, takeover, e))?;
        if addr.port() == 0 {
            // Port 0: the first core picks a port; the others join it.
            let local = listener.local_addr();
            addr = local.map_err(|e| bind_error(addr, role, takeover, e))?;
        }
        listeners.push(listener);
    }
    Ok(listeners)
}

fn bind_error(addr: SocketAddr, role: Role, takeover: bool, source: io::Error) -> ServerError {
    let hint = match source.raw_os_error() {
        Some(libc::EADDRINUSE) => {
            return ServerError::AddrInUse {
                addr,
                role,
                holders: ports::holders(addr),
                takeover,
            }
        }
        Some(libc::EACCES) => " (ports below 1024 need CAP_NET_BIND_SERVICE)",
        Some(libc::EADDRNOTAVAIL) => " (that address is not on this host)",
        _ => "",
    };
    ServerError::Bind {
        addr,
        role,
        source,
        hint,
    }
}

fn ring_error(e: io::Error) -> ServerError {
    match e.raw_os_error() {
        Some(libc::EPERM) => ServerError::IoUringBlocked,
        Some(libc::ENOSYS) => ServerError::IoUringMissing,
        _ => ServerError::IoUring(e),
    }
}

fn ring_error_copy(e: &ServerError) -> ServerError {
    match e {
        ServerError::IoUringBlocked => ServerError::IoUringBlocked,
        ServerError::IoUringMissing => ServerError::IoUringMissing,
        ServerError::IoUring(e) => ServerError::IoUring(io::Error::new(e.kind(), e.to_string())),
        other => ServerError::Thread(io::Error::other(other.to_string())),
    }
}

/// Whole ticks covering `d`, 0 for none (a delay that may be none, unlike a timeout).
fn ticks_or_zero(d: Duration) -> u32 {
    if d.is_zero() {
        0
    } else {
        ticks(d)
    }
}

/// A rate in bytes per second as bytes per reactor tick (at least 1).
fn bytes_per_tick(bytes_per_s: u64) -> u64 {
    (bytes_per_s * TICK.as_millis() as u64 / 1000).max(1)
}

/// Warns when RLIMIT_NOFILE cannot hold `max_connections`, after raising the soft limit to the
/// hard limit (which any process may do). The judgement and its advice are `ringws check`'s
/// (`check::check_nofile`), so both give the same numbers.
fn check_fd_limit(config: &Config) {
    let plan = Plan::of(config);
    let needed = plan.needed_fds();
    let Some(limits) = process::raise_nofile_limit(needed) else {
        return;
    };
    let check = check_nofile(Some(limits), &plan);
    if check.status == Status::Pass {
        return;
    }
    // The fix is written as for `ringws check`'s table: "LimitNOFILE=N  # the file it goes in".
    let fix = match check.fix.as_deref().map(|fix| fix.split_once("  # ")) {
        Some(Some((line, file))) => format!(" Fix: {line} in {file}."),
        Some(None) => format!(" Fix: {}.", check.fix.as_deref().unwrap_or_default()),
        None => String::new(),
    };
    tracing::warn!(
        "the open-file limit (RLIMIT_NOFILE: {}) is below the {needed} file descriptors that \
         max_connections={} on {} needs: {}.{fix} Or lower --max-connections. `ringws check \
         --connections {} --cores {}` checks every limit",
        check.current,
        config.max_connections,
        plural(config.cores as u64, "core"),
        check.why,
        config.max_connections,
        config.cores,
    );
}
