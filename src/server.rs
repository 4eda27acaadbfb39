//! Starts one pinned reactor thread per core and waits for them.

use std::io;
use std::net::SocketAddr;
use std::os::fd::RawFd;
use std::sync::atomic::Ordering;
use std::sync::{mpsc, Arc, Mutex};
use std::thread::JoinHandle;
use std::time::Duration;

use crate::app::{echo::Echo, App, Waker};
use crate::config::{AppKind, Config};
use crate::metrics::Exporter;
use crate::policy::{DebugRing, HandshakeRateLimiter, Policy};
use crate::protocol::connection;
use crate::protocol::{HandshakeLimits, Limits, RefusalReason};
use crate::reactor::admin::AdminSide;
use crate::reactor::conns::CoreSettings;
use crate::reactor::event_loop::{ticks, CoreObservers, CoreParts, Reactor, TICK};
use crate::reactor::gate::Gate;
use crate::reactor::listener::{tcp_user_timeout, Listener};
use crate::reactor::{sys, Shared};
use crate::stats::CoreStats;

/// Why the server could not start or stopped abnormally. Each message says what to do.
#[derive(Debug, thiserror::Error)]
pub enum ServerError {
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
    #[error(
        "address {0} is already in use by another process. Stop it or choose another --listen \
         (a ringws started by the same user shares the port through SO_REUSEPORT, so that is not it)"
    )]
    AddrInUse(SocketAddr),
    #[error("cannot listen on {addr}: {source}{hint}")]
    Bind {
        addr: SocketAddr,
        source: io::Error,
        hint: &'static str,
    },
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

/// A running server, for embedding ringws as a library (and for tests).
pub struct Server {
    addr: SocketAddr,
    admin_addr: Option<SocketAddr>,
    shared: Arc<Shared>,
    wake_fds: Vec<RawFd>,
    threads: Vec<JoinHandle<Result<(), ServerError>>>,
    stats: Vec<Arc<CoreStats>>,
}

impl Server {
    /// Binds the listeners and starts one reactor per core; returns once every core is ready.
    pub fn start<A: App>(config: &Config, app: A) -> Result<Server, ServerError> {
        check_fd_limit(config);
        let app = Arc::new(app);
        let shared = Arc::new(Shared::default());
        let listeners = bind_listeners(config)?;
        let addr = listeners[0]
            .local_addr()
            .map_err(|source| ServerError::Bind {
                addr: config.listen,
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
                write_stall_timeout_ticks: ticks(config.write_stall_timeout),
                max_outbound_bytes: usize::try_from(config.max_outbound_buffer)
                    .unwrap_or(usize::MAX),
                // Thousandths of a message per tick.
                message_rate_milli_per_tick: u64::from(config.message_rate)
                    * TICK.as_millis() as u64,
                message_burst: config.message_burst,
            },
            drain_timeout_ticks: ticks(config.drain_timeout),
            max_connections: config.max_connections,
            recv_buffer_size: config.recv_buffer_size,
            ring_entries: config.ring_entries,
        };

        // The admin listener is bound here, so a taken port fails the start, not a thread.
        let admin_listener = match config.admin_listen {
            Some(admin_addr) => {
                let l =
                    Listener::bind(admin_addr, 128, None).map_err(|e| bind_error(admin_addr, e))?;
                Some(l)
            }
            None => None,
        };
        let admin_addr = admin_listener.as_ref().and_then(|l| l.local_addr().ok());
        let stats: Vec<Arc<CoreStats>> = (0..listeners.len())
            .map(|_| Arc::new(CoreStats::default()))
            .collect();
        let exporter = Arc::new(Exporter::new(config, &stats, app.metrics()));
        let policy = Arc::new(Policy::load(&config.policy_settings())?);
        let debug_rings: Option<Arc<Vec<_>>> = config.debug_handshakes.then(|| {
            Arc::new(
                (0..stats.len())
                    .map(|_| Arc::new(Mutex::new(DebugRing::new())))
                    .collect(),
            )
        });
        let mut admin_side =
            admin_listener.map(|l| AdminSide::new(l, exporter.clone(), debug_rings.clone()));

        let (ready_tx, ready_rx) = mpsc::channel::<Result<usize, ServerError>>();
        let mut server = Server {
            addr,
            admin_addr,
            shared: shared.clone(),
            wake_fds: Vec::new(),
            threads: Vec::new(),
            stats: stats.clone(),
        };
        for _ in 0..listeners.len() {
            server
                .wake_fds
                .push(sys::eventfd().map_err(ServerError::Thread)?);
        }
        app.start(server.wake_fds.iter().map(|&fd| Waker { fd }).collect());
        for (core, listener) in listeners.into_iter().enumerate() {
            let wake_fd = server.wake_fds[core];
            let stats = stats[core].clone();
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

    pub fn cores(&self) -> usize {
        self.threads.len()
    }

    /// Per-core counters.
    pub fn stats(&self) -> &[Arc<CoreStats>] {
        &self.stats
    }

    /// Asks every core to stop (returns at once; `join` waits).
    pub fn stop(&self) {
        self.shared.stop.store(true, Ordering::Release);
        for &fd in &self.wake_fds {
            sys::eventfd_signal(fd);
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
            sys::close(fd);
        }
        first_err.map_or(Ok(()), Err)
    }
}

fn run_app<A: App>(config: Config, app: A) -> Result<(), ServerError> {
    let name = app.name();
    // Block the stop signals before any thread starts, so every thread inherits the mask and
    // only `wait_for_stop_signal` receives them.
    block_stop_signals();
    let server = Server::start(&config, app)?;
    println!(
        "ringws listening on ws://{} ({} cores, app={})",
        server.local_addr(),
        server.cores(),
        name
    );
    if let Some(admin) = server.admin_addr() {
        println!("ringws admin on http://{admin} (GET /metrics, GET /healthz)");
    }
    use std::io::Write;
    let _ = std::io::stdout().flush();
    loop {
        if let Some(sig) = wait_for_stop_signal(Duration::from_millis(500)) {
            tracing::info!("signal {sig} received: stopping");
            break;
        }
        if server.any_core_finished() {
            tracing::error!("a reactor stopped on its own: stopping the server");
            break;
        }
    }
    // Drain: each core closes its listener and sends close 1001; a second signal cuts it short.
    server.stop();
    while !server.all_cores_finished() {
        if let Some(sig) = wait_for_stop_signal(Duration::from_millis(50)) {
            tracing::warn!("signal {sig} received again: exiting without waiting for clients");
            std::process::exit(1);
        }
    }
    let stats: Vec<Arc<CoreStats>> = server.stats().to_vec();
    let result = server.join();
    log_summary(&stats);
    result
}

/// One info line with what happened, so an operator sees refusals even without metrics.
fn log_summary(stats: &[Arc<CoreStats>]) {
    let sum = |f: fn(&CoreStats) -> u64| stats.iter().map(|s| f(s)).sum::<u64>();
    let refused: Vec<String> = RefusalReason::ALL
        .iter()
        .filter_map(|r| {
            let n: u64 = stats.iter().map(|s| s.refused_count(*r)).sum();
            (n > 0).then(|| format!("{}={n}", r.label()))
        })
        .collect();
    let per_core: Vec<String> = stats
        .iter()
        .map(|s| s.handshakes_completed.get().to_string())
        .collect();
    tracing::info!(
        accepted = sum(|s| s.accepted.get()),
        upgraded_per_core = %per_core.join(","),
        upgraded = sum(|s| s.handshakes_completed.get()),
        handshake_timeouts = sum(|s| s.handshake_timeouts.get()),
        heartbeat_timeouts = sum(|s| s.heartbeat_timeouts.get()),
        slow_consumers = sum(|s| s.slow_consumer_closes.get()),
        protocol_errors = sum(|s| s.protocol_errors.get()),
        drained_cleanly = sum(|s| s.drained_cleanly.get()),
        drained_forced = sum(|s| s.drained_forced.get()),
        refused = %if refused.is_empty() { "none".to_string() } else { refused.join(",") },
        "stopped"
    );
}

fn bind_listeners(config: &Config) -> Result<Vec<Listener>, ServerError> {
    let mut addr = config.listen;
    let mut out = Vec::with_capacity(config.cores);
    let user_timeout = tcp_user_timeout(
        config.ping_interval,
        config.pong_timeout,
        config.write_stall_timeout,
    );
    for _ in 0..config.cores {
        let listener = Listener::bind(addr, config.backlog, config.defer_accept)
            .map_err(|e| bind_error(addr, e))?;
        listener
            .set_user_timeout(user_timeout)
            .map_err(|e| bind_error(addr, e))?;
        if addr.port() == 0 {
            // Port 0: the first core picks a port; the others join it.
            addr = listener.local_addr().map_err(|e| bind_error(addr, e))?;
        }
        out.push(listener);
    }
    Ok(out)
}

fn bind_error(addr: SocketAddr, source: io::Error) -> ServerError {
    match source.raw_os_error() {
        Some(libc::EADDRINUSE) => ServerError::AddrInUse(addr),
        Some(libc::EACCES) => ServerError::Bind {
            addr,
            source,
            hint: " (ports below 1024 need CAP_NET_BIND_SERVICE)",
        },
        Some(libc::EADDRNOTAVAIL) => ServerError::Bind {
            addr,
            source,
            hint: " (that address is not on this host)",
        },
        _ => ServerError::Bind {
            addr,
            source,
            hint: "",
        },
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

/// Warns when RLIMIT_NOFILE cannot hold `max_connections`, after raising the soft limit to the
/// hard limit (which any process may do).
fn check_fd_limit(config: &Config) {
    // Listeners, eventfds, rings, stdio and some slack.
    let needed = config.max_connections as u64 + 4 * config.cores as u64 + 64;
    let mut lim = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit writes into a valid rlimit struct.
    if unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim) } != 0 {
        return;
    }
    if lim.rlim_cur < needed && lim.rlim_cur < lim.rlim_max {
        let raised = libc::rlimit {
            rlim_cur: needed.min(lim.rlim_max),
            rlim_max: lim.rlim_max,
        };
        // SAFETY: setrlimit reads a valid rlimit struct; raising the soft limit up to the hard
        // limit is always permitted.
        if unsafe { libc::setrlimit(libc::RLIMIT_NOFILE, &raised) } == 0 {
            lim = raised;
        }
    }
    if lim.rlim_cur < needed {
        tracing::warn!(
            "the open-file limit (RLIMIT_NOFILE) is {} but max_connections={} needs about {}: at most ~{} \
             connections fit. Raise it (systemd: LimitNOFILE= in deploy/systemd/ringws.service; shell: \
             ulimit -n {}; check with `ringws check`) or lower --max-connections",
            lim.rlim_cur,
            config.max_connections,
            needed,
            lim.rlim_cur.saturating_sub(4 * config.cores as u64 + 64),
            needed
        );
    }
}

fn stop_sigset() -> libc::sigset_t {
    // SAFETY: sigemptyset/sigaddset initialise and fill a sigset_t we own.
    unsafe {
        let mut set: libc::sigset_t = std::mem::zeroed();
        libc::sigemptyset(&mut set);
        libc::sigaddset(&mut set, libc::SIGINT);
        libc::sigaddset(&mut set, libc::SIGTERM);
        set
    }
}

fn block_stop_signals() {
    let set = stop_sigset();
    // SAFETY: blocks signals for this thread (inherited by threads spawned after it).
    unsafe { libc::pthread_sigmask(libc::SIG_BLOCK, &set, std::ptr::null_mut()) };
}

/// Waits up to `timeout` for SIGINT/SIGTERM; returns the signal number.
fn wait_for_stop_signal(timeout: Duration) -> Option<i32> {
    let set = stop_sigset();
    let ts = libc::timespec {
        tv_sec: timeout.as_secs() as libc::time_t,
        tv_nsec: timeout.subsec_nanos() as libc::c_long,
    };
    // SAFETY: `set` and `ts` are valid for the call; a null siginfo pointer is allowed.
    let sig = unsafe { libc::sigtimedwait(&set, std::ptr::null_mut(), &ts) };
    (sig > 0).then_some(sig)
}
