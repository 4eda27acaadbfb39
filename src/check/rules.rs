//! The capacity rules of `ringws check`: pure functions from [`SystemFacts`] and a [`Plan`] to
//! one [`Check`] per setting, each with the line that fixes it and the deploy/ file it goes in.

use super::facts::{IoUringProbe, Rlimit, SystemFacts};
use super::profile::{self, SysctlProfile};

/// File descriptors a core holds besides its connections: its listener, wake-up eventfd and
/// ring, stdio and log files, and connections being closed (ringws cancels a connection's poll
/// before closing its fd, so a closing connection keeps its fd for a moment after it left the
/// slab). 64 per core covers a reconnect storm's churn at no real cost.
pub const FDS_PER_CORE: u64 = 64;
/// Open files left for the rest of the host (sshd, journald, a local proxy's listeners, ...)
/// when judging the system-wide `fs.file-max`.
pub const SYSTEM_FILES_HEADROOM: u64 = 65_536;
/// Smallest listen and SYN queue that is not a bottleneck: ringws listens with a backlog of
/// 4096 by default (`backlog`), and the kernel silently caps it at `net.core.somaxconn`; after a
/// restart every client reconnects at once, and a short queue turns that into SYN retries
/// (1 s, 3 s, 7 s, ...) instead of accepts.
pub const MIN_LISTEN_QUEUE: u64 = 4096;
/// Ephemeral ports from 1024 to 65535: the widest `ip_local_port_range` that leaves the
/// well-known ports alone, so the most connections one source address can open to one server
/// address.
pub const WIDEST_PORT_RANGE: u64 = 65535 - 1024 + 1;
/// Socket buffer memory one connection holds under light traffic (a small message in flight in
/// either direction now and then): one page. Idle sockets hold none (docs/io-path.md).
pub const SOCKET_BUFFER_BYTES_PER_LIGHT_CONN: u64 = 4096;

// Memory per connection, as measured in docs/io-path.md (50,000 idle upgraded connections on
// Linux 6.18, x86_64): an idle connection costs a slab entry and a timer node in ringws, and in
// the kernel its socket, inode, file and dentry plus the pending multishot POLL_ADD request
// (3,948 B measured; rounded up).
/// One `Conn` slab entry (src/reactor/conn.rs).
pub const USERSPACE_SLAB_ENTRY_BYTES: u64 = 32;
/// One timer wheel node (src/reactor/timer_wheel.rs).
pub const USERSPACE_TIMER_NODE_BYTES: u64 = 12;
/// Socket, inode, file, dentry and the poll request of one idle connection.
pub const KERNEL_IDLE_CONN_BYTES: u64 = 3_950;
/// Everything one idle connection costs.
pub const IDLE_CONN_BYTES: u64 =
    USERSPACE_SLAB_ENTRY_BYTES + USERSPACE_TIMER_NODE_BYTES + KERNEL_IDLE_CONN_BYTES;
/// Above this share of MemAvailable the estimate warns: the estimate is for idle connections,
/// and traffic, fragments and backpressure queues need room on top.
pub const MEMORY_WARN_PERCENT: u64 = 50;

/// What the operator plans to run.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Plan {
    pub connections: u64,
    pub cores: usize,
    /// `recv_buffer_size`: one buffer per core.
    pub recv_buffer_size_bytes: u64,
}

impl Plan {
    /// What `ringws serve` with `config` needs: its `max_connections` on its `cores`.
    pub fn of(config: &crate::config::Config) -> Plan {
        Plan {
            connections: config.max_connections as u64,
            cores: config.cores,
            recv_buffer_size_bytes: config.recv_buffer_size as u64,
        }
    }

    /// File descriptors ringws needs: one per connection plus [`FDS_PER_CORE`] per core. The
    /// one computation behind `ringws check` and `ringws serve`'s start-up warning.
    pub fn needed_fds(&self) -> u64 {
        self.connections
            .saturating_add(FDS_PER_CORE.saturating_mul(self.cores as u64))
    }

    /// Connections that fit under an open-file limit of `limit`: what is left after
    /// [`FDS_PER_CORE`] per core.
    pub fn connections_fitting(&self, limit: u64) -> u64 {
        limit.saturating_sub(FDS_PER_CORE.saturating_mul(self.cores as u64))
    }

    /// The `LimitNOFILE=` to recommend: the unit's value, grown past 1M connections.
    pub fn suggested_limit_nofile(&self) -> u64 {
        profile::scale(
            profile::SERVICE_LIMIT_NOFILE,
            profile::PROFILE_1M.connections,
            self.connections,
        )
        .max(self.needed_fds())
    }

    fn sysctl_profile(&self) -> &'static SysctlProfile {
        profile::for_connections(self.connections)
    }
}

/// Memory `plan` needs with every connection idle: [`IDLE_CONN_BYTES`] each plus one receive
/// buffer per core.
pub fn memory_estimate_bytes(plan: &Plan) -> u64 {
    plan.connections.saturating_mul(IDLE_CONN_BYTES)
        + plan.recv_buffer_size_bytes * plan.cores as u64
}

/// How a setting measures up.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum Status {
    Pass,
    /// Not checked (the io_uring probe with a copied /proc).
    Skip,
    /// Works, but with a cost or a trap worth knowing.
    Warn,
    /// The plan cannot run as configured.
    Fail,
}

impl Status {
    pub fn label(self) -> &'static str {
        match self {
            Status::Pass => "pass",
            Status::Skip => "skip",
            Status::Warn => "warn",
            Status::Fail => "fail",
        }
    }
}

/// One row of the report.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Check {
    pub name: &'static str,
    pub current: String,
    pub needed: String,
    pub status: Status,
    /// The line to add, with the deploy/ file it belongs in; `None` when nothing is to be done.
    pub fix: Option<String>,
    /// One or two sentences: what the status means and why.
    pub why: String,
}

impl Check {
    pub(super) fn new(
        name: &'static str,
        current: impl Into<String>,
        needed: impl Into<String>,
    ) -> Check {
        Check {
            name,
            current: current.into(),
            needed: needed.into(),
            status: Status::Pass,
            fix: None,
            why: String::new(),
        }
    }

    /// The same row with another CURRENT value.
    pub(super) fn showing(mut self, current: impl Into<String>) -> Check {
        self.current = current.into();
        self
    }

    pub(super) fn with(
        mut self,
        status: Status,
        fix: Option<String>,
        why: impl Into<String>,
    ) -> Check {
        self.status = status;
        self.fix = if status == Status::Pass { None } else { fix };
        self.why = why.into();
        self
    }
}

/// Every check, in the order the report lists them.
pub fn evaluate(facts: &SystemFacts, plan: &Plan) -> Vec<Check> {
    let memory = check_memory(facts, plan);
    let memory_tight = memory.status >= Status::Warn;
    vec![
        check_cores(facts.cores, plan),
        check_nofile(facts.nofile, plan),
        check_nr_open(facts.nr_open, plan),
        check_file_max(facts.file_max, plan),
        check_listen_queue("net.core.somaxconn", facts.somaxconn, plan),
        check_listen_queue(
            "net.ipv4.tcp_max_syn_backlog",
            facts.tcp_max_syn_backlog,
            plan,
        ),
        check_port_range(facts.ip_local_port_range, plan),
        check_tcp_mem(facts.tcp_mem_pages, facts.page_size_bytes, plan),
        check_socket_buffers("net.ipv4.tcp_rmem", facts.tcp_rmem_bytes, memory_tight),
        check_socket_buffers("net.ipv4.tcp_wmem", facts.tcp_wmem_bytes, memory_tight),
        memory,
        check_io_uring_disabled(facts.io_uring_disabled, &facts.io_uring_probe, plan),
        check_io_uring_probe(&facts.io_uring_probe, facts.io_uring_disabled, plan),
    ]
}

fn unreadable(name: &'static str, needed: String, what: &str) -> Check {
    Check::new(name, "unknown", needed).with(
        Status::Warn,
        None,
        format!("could not read {what}; check it by hand"),
    )
}

fn sysctl_fix(key: &str, value: impl std::fmt::Display, profile: &SysctlProfile) -> String {
    format!("{key} = {value}  # {}", profile.path)
}

fn limit(value: u64) -> String {
    if value == u64::MAX {
        "unlimited".to_owned()
    } else {
        value.to_string()
    }
}

/// `ringws serve` refuses more cores than the CPUs it may run on.
pub fn check_cores(available: usize, plan: &Plan) -> Check {
    let check = Check::new("cores", available.to_string(), plan.cores.to_string());
    if plan.cores <= available {
        check.with(Status::Pass, None, "one pinned reactor per core")
    } else {
        check.with(
            Status::Fail,
            Some(format!("cores = {available}  # {}", profile::CONFIG_PATH)),
            format!(
                "only {available} CPUs are available and ringws serve refuses more cores than that"
            ),
        )
    }
}

/// Every connection is a file descriptor, so the soft RLIMIT_NOFILE caps connections outright:
/// past it, accept fails with EMFILE. The soft limit may be raised up to the hard limit by the
/// process itself (ringws serve does so at start-up), so a low soft limit under a high enough
/// hard limit only warns. `ringws serve` warns at start-up with this same check.
pub fn check_nofile(nofile: Option<Rlimit>, plan: &Plan) -> Check {
    let needed = plan.needed_fds();
    let Some(Rlimit { soft, hard }) = nofile else {
        return unreadable("RLIMIT_NOFILE", needed.to_string(), "the open-file limit");
    };
    let check = Check::new(
        "RLIMIT_NOFILE",
        format!("soft {}, hard {}", limit(soft), limit(hard)),
        needed.to_string(),
    );
    let fix = Some(format!(
        "LimitNOFILE={}  # {}",
        plan.suggested_limit_nofile(),
        profile::SERVICE_PATH
    ));
    if soft >= needed {
        check.with(
            Status::Pass,
            None,
            "every connection is one file descriptor",
        )
    } else if hard >= needed {
        check.with(
            Status::Warn,
            fix,
            format!(
                "the soft limit holds about {} connections; ringws serve raises it to the hard \
                 limit at start-up, but raise the soft limit where the service is defined so the \
                 limit is explicit (shell: `ulimit -Sn {needed}`)",
                plan.connections_fitting(soft)
            ),
        )
    } else {
        check.with(
            Status::Fail,
            fix,
            format!(
                "the hard limit caps ringws at about {} connections (one descriptor each, plus \
                 {FDS_PER_CORE} per core); only root or the service manager can raise it, and \
                 never above fs.nr_open (shell, as root: `ulimit -Hn {needed}` and \
                 `ulimit -Sn {needed}`)",
                plan.connections_fitting(hard)
            ),
        )
    }
}

/// `fs.nr_open` is the ceiling of RLIMIT_NOFILE: below the descriptors needed, no limit can be
/// raised far enough. Below the unit's `LimitNOFILE=`, systemd fails to start the unit at all.
pub fn check_nr_open(nr_open: Option<u64>, plan: &Plan) -> Check {
    let needed = plan.needed_fds();
    let Some(current) = nr_open else {
        return unreadable("fs.nr_open", needed.to_string(), "/proc/sys/fs/nr_open");
    };
    let unit_limit = plan.suggested_limit_nofile();
    let check = Check::new("fs.nr_open", current.to_string(), needed.to_string());
    let profile = plan.sysctl_profile();
    let fix = Some(sysctl_fix(
        "fs.nr_open",
        profile.nr_open.max(unit_limit),
        profile,
    ));
    if current < needed {
        check.with(
            Status::Fail,
            fix,
            "RLIMIT_NOFILE can never be raised above fs.nr_open",
        )
    } else if current < unit_limit {
        check.with(
            Status::Warn,
            fix,
            format!(
                "enough for the connections, but LimitNOFILE={unit_limit} ({}) is above it and \
                 systemd would refuse to start the unit",
                profile::SERVICE_PATH
            ),
        )
    } else {
        check.with(Status::Pass, None, "the ceiling of RLIMIT_NOFILE")
    }
}

/// `fs.file-max` counts open files of every process: below ringws' own need it fails; without
/// [`SYSTEM_FILES_HEADROOM`] left for the rest of the host, the host itself starts failing
/// (ENFILE) when ringws is full.
pub fn check_file_max(file_max: Option<u64>, plan: &Plan) -> Check {
    let needed = plan.needed_fds() + SYSTEM_FILES_HEADROOM;
    let Some(current) = file_max else {
        return unreadable("fs.file-max", needed.to_string(), "/proc/sys/fs/file-max");
    };
    let check = Check::new("fs.file-max", current.to_string(), needed.to_string());
    let profile = plan.sysctl_profile();
    let fix = Some(sysctl_fix(
        "fs.file-max",
        profile::scaled(profile.file_max, profile, plan.connections).max(needed),
        profile,
    ));
    if current < plan.needed_fds() {
        check.with(
            Status::Fail,
            fix,
            "the system-wide open-file limit is below what ringws alone needs",
        )
    } else if current < needed {
        check.with(
            Status::Warn,
            fix,
            format!(
                "ringws fits, but leaves fewer than {SYSTEM_FILES_HEADROOM} open files for the \
                 rest of the host"
            ),
        )
    } else {
        check.with(Status::Pass, None, "system-wide open files")
    }
}

/// `net.core.somaxconn` caps the accept queue of every listener and
/// `net.ipv4.tcp_max_syn_backlog` the queue of half-open connections: both absorb reconnect
/// storms (see [`MIN_LISTEN_QUEUE`]).
pub fn check_listen_queue(name: &'static str, current: Option<u64>, plan: &Plan) -> Check {
    let needed = format!(">= {MIN_LISTEN_QUEUE}");
    let Some(current) = current else {
        return unreadable(name, needed, name);
    };
    let check = Check::new(name, current.to_string(), needed);
    let profile = plan.sysctl_profile();
    let value = if name == "net.core.somaxconn" {
        profile.somaxconn
    } else {
        profile.tcp_max_syn_backlog
    };
    if current < MIN_LISTEN_QUEUE {
        check.with(
            Status::Warn,
            Some(sysctl_fix(name, value, profile)),
            "a short queue turns a reconnect storm after a restart into SYN retries of seconds \
             each",
        )
    } else {
        check.with(Status::Pass, None, "absorbs reconnect storms")
    }
}

/// Only outbound connections take ports from `ip_local_port_range`, so ringws itself never
/// does. But a reverse proxy in front connects to ringws, and each of its connections from one
/// source address to one ringws address needs its own local port: the range bounds the
/// connections per (proxy address, ringws address) pair, on the proxy host.
pub fn check_port_range(range: Option<(u64, u64)>, plan: &Plan) -> Check {
    let needed = format!("{} ports per proxy address", plan.connections);
    let Some((first, last)) = range else {
        return unreadable("net.ipv4.ip_local_port_range", needed, "the port range");
    };
    let ports = (last + 1).saturating_sub(first);
    let check = Check::new(
        "net.ipv4.ip_local_port_range",
        format!("{first} {last} ({ports} ports)"),
        needed,
    );
    let profile = plan.sysctl_profile();
    let (lo, hi) = profile.ip_local_port_range;
    if ports >= plan.connections {
        return check.with(
            Status::Pass,
            None,
            "only outbound connections use it, such as a proxy's connections to ringws",
        );
    }
    let addresses = plan
        .connections
        .div_ceil(WIDEST_PORT_RANGE.min(ports.max(1)));
    let spread = plan.connections.div_ceil(WIDEST_PORT_RANGE);
    check.with(
        Status::Warn,
        Some(sysctl_fix(
            "net.ipv4.ip_local_port_range",
            format!("{lo} {hi}"),
            profile,
        )),
        format!(
            "matters only on a proxy host that connects to ringws: each (proxy address, ringws \
             address) pair holds at most {ports} connections, so this range needs {addresses} \
             proxy source addresses for {} connections (at least {spread} even with the widest \
             range {lo}-{hi}); clients connecting straight to ringws use no local ports",
            plan.connections
        ),
    )
}

/// `net.ipv4.tcp_mem` high is the most memory (in pages) TCP may use for socket buffers before
/// the kernel starts dropping data. N connections under light traffic need about
/// [`SOCKET_BUFFER_BYTES_PER_LIGHT_CONN`] each.
pub fn check_tcp_mem(tcp_mem: Option<[u64; 3]>, page_size_bytes: u64, plan: &Plan) -> Check {
    let needed_pages = plan
        .connections
        .saturating_mul(SOCKET_BUFFER_BYTES_PER_LIGHT_CONN)
        .div_ceil(page_size_bytes.max(1));
    let needed = format!("high >= {needed_pages} pages");
    let Some([low, pressure, high]) = tcp_mem else {
        return unreadable("net.ipv4.tcp_mem", needed, "/proc/sys/net/ipv4/tcp_mem");
    };
    let check = Check::new(
        "net.ipv4.tcp_mem",
        format!("{low} {pressure} {high}"),
        needed,
    );
    if high >= needed_pages {
        return check.with(Status::Pass, None, "TCP buffer memory, in pages");
    }
    let profile = plan.sysctl_profile();
    let [a, b, c] = profile
        .tcp_mem_pages
        .map(|pages| profile::scaled(pages, profile, plan.connections));
    check.with(
        Status::Warn,
        Some(sysctl_fix(
            "net.ipv4.tcp_mem",
            format!("{a} {b} {c}"),
            profile,
        )),
        format!(
            "with {} B of socket buffers per connection under light traffic, {} connections \
             exceed the high mark and TCP starts dropping data; the profile's values suit a host \
             with at least 4x the high mark in memory",
            SOCKET_BUFFER_BYTES_PER_LIGHT_CONN, plan.connections
        ),
    )
}

/// An idle socket holds no buffer, but a busy one grows toward the default (middle) value of
/// `tcp_rmem`/`tcp_wmem`. When memory is tight, smaller defaults keep busy sockets cheap.
pub fn check_socket_buffers(
    name: &'static str,
    current: Option<[u64; 3]>,
    memory_tight: bool,
) -> Check {
    let lowmem = &profile::PROFILE_LOWMEM;
    let lowmem_value = if name == "net.ipv4.tcp_rmem" {
        lowmem.tcp_rmem_bytes
    } else {
        lowmem.tcp_wmem_bytes
    };
    let needed = if memory_tight {
        format!("default <= {}", lowmem_value[1])
    } else {
        "any".to_owned()
    };
    let Some([min, default, max]) = current else {
        return unreadable(name, needed, name);
    };
    let check = Check::new(name, format!("{min} {default} {max}"), needed);
    if memory_tight && default > lowmem_value[1] {
        let [a, b, c] = lowmem_value;
        check.with(
            Status::Warn,
            Some(sysctl_fix(name, format!("{a} {b} {c}"), lowmem)),
            format!(
                "memory is tight: each busy socket starts with {default} B of buffer; smaller \
                 defaults keep busy sockets cheap"
            ),
        )
    } else {
        check.with(
            Status::Pass,
            None,
            "idle sockets hold no buffer; busy ones start at the default",
        )
    }
}

/// The estimate of [`memory_estimate_bytes`] against MemAvailable: above it the plan cannot
/// fit; above [`MEMORY_WARN_PERCENT`] there is too little room for traffic.
pub fn check_memory(facts: &SystemFacts, plan: &Plan) -> Check {
    let estimate = memory_estimate_bytes(plan);
    let needed = format!("{} (idle)", human_bytes(estimate));
    let Some(available) = facts.mem_available_bytes else {
        return unreadable("memory", needed, "MemAvailable from /proc/meminfo");
    };
    let total = facts
        .mem_total_bytes
        .map_or_else(|| "?".to_owned(), human_bytes);
    let check = Check::new(
        "memory",
        format!("{} available of {total}", human_bytes(available)),
        needed,
    );
    let budget = available / 100 * MEMORY_WARN_PERCENT;
    let fitting =
        budget.saturating_sub(plan.recv_buffer_size_bytes * plan.cores as u64) / IDLE_CONN_BYTES;
    let fix = Some(format!(
        "max_connections = {fitting}  # {}",
        profile::CONFIG_PATH
    ));
    let per_conn = format!(
        "{IDLE_CONN_BYTES} B per idle connection ({USERSPACE_SLAB_ENTRY_BYTES} B slab entry + \
         {USERSPACE_TIMER_NODE_BYTES} B timer node + {KERNEL_IDLE_CONN_BYTES} B in the kernel, \
         docs/io-path.md) plus one receive buffer per core"
    );
    if estimate > available {
        check.with(
            Status::Fail,
            fix,
            format!("the idle connections alone exceed MemAvailable: {per_conn}; add memory or plan fewer connections"),
        )
    } else if estimate > budget {
        check.with(
            Status::Warn,
            fix,
            format!(
                "over {MEMORY_WARN_PERCENT}% of MemAvailable while idle, leaving little for \
                 traffic: {per_conn}"
            ),
        )
    } else {
        check.with(Status::Pass, None, per_conn)
    }
}

/// `kernel.io_uring_disabled`: 0 allows io_uring, 1 allows it only to root and members of
/// `kernel.io_uring_group`, 2 forbids it. ringws cannot run without io_uring.
pub fn check_io_uring_disabled(current: Option<u8>, probe: &IoUringProbe, plan: &Plan) -> Check {
    let Some(value) = current else {
        return Check::new("kernel.io_uring_disabled", "absent", "0").with(
            Status::Pass,
            None,
            "kernels before 6.6 have no such switch",
        );
    };
    let check = Check::new("kernel.io_uring_disabled", value.to_string(), "0");
    let fix = Some(sysctl_fix(
        "kernel.io_uring_disabled",
        0,
        plan.sysctl_profile(),
    ));
    match value {
        0 => check.with(Status::Pass, None, "io_uring is allowed"),
        1 if *probe == IoUringProbe::Usable => check.with(
            Status::Pass,
            None,
            "io_uring is limited to root and kernel.io_uring_group, and this user may use it",
        ),
        1 => check.with(
            Status::Warn,
            fix,
            "io_uring is limited to root and members of kernel.io_uring_group",
        ),
        _ => check.with(Status::Fail, fix, "io_uring is disabled for every process"),
    }
}

/// The real test: can this process create an io_uring?
pub fn check_io_uring_probe(probe: &IoUringProbe, disabled: Option<u8>, plan: &Plan) -> Check {
    let name = "io_uring_setup";
    match probe {
        IoUringProbe::Usable => {
            Check::new(name, "works", "works").with(Status::Pass, None, "a ring was created")
        }
        IoUringProbe::Skipped => Check::new(name, "skipped", "works").with(
            Status::Skip,
            None,
            "not probed: the facts come from --proc-root, not from this machine",
        ),
        IoUringProbe::Blocked if disabled.unwrap_or(0) >= 1 => Check::new(name, "EPERM", "works")
            .with(
                Status::Fail,
                Some(sysctl_fix(
                    "kernel.io_uring_disabled",
                    0,
                    plan.sysctl_profile(),
                )),
                "blocked by kernel.io_uring_disabled",
            ),
        IoUringProbe::Blocked => Check::new(name, "EPERM", "works").with(
            Status::Fail,
            Some(format!(
                "docker run --security-opt seccomp={}  # {}",
                profile::SECCOMP_PATH,
                profile::SECCOMP_PATH
            )),
            "blocked by a seccomp profile: Docker's and containerd's defaults forbid io_uring; \
             under systemd, check SystemCallFilter= (deploy/systemd/ringws.service allows it)",
        ),
        IoUringProbe::Missing => Check::new(name, "ENOSYS", "works").with(
            Status::Fail,
            None,
            "this kernel has no io_uring: ringws needs Linux 6.0 or newer",
        ),
        IoUringProbe::Failed(error) => Check::new(name, error.clone(), "works").with(
            Status::Fail,
            Some(format!(
                "LimitMEMLOCK=infinity  # {}",
                profile::SERVICE_PATH
            )),
            "creating a ring failed; on kernels before 5.12 rings count against the \
             locked-memory limit",
        ),
    }
}

/// `3.7 GiB`, `512 MiB`, `64 KiB`, `100 B`.
pub fn human_bytes(bytes: u64) -> String {
    const UNITS: [&str; 5] = ["B", "KiB", "MiB", "GiB", "TiB"];
    let mut value = bytes as f64;
    let mut unit = 0;
    while value >= 1024.0 && unit + 1 < UNITS.len() {
        value /= 1024.0;
        unit += 1;
    }
    if unit == 0 {
        format!("{bytes} B")
    } else {
        format!("{value:.1} {}", UNITS[unit])
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const GIB: u64 = 1 << 30;

    fn plan(connections: u64) -> Plan {
        Plan {
            connections,
            cores: 2,
            recv_buffer_size_bytes: 64 << 10,
        }
    }

    /// A well-tuned 32 GiB host for a million connections.
    pub(crate) fn tuned() -> SystemFacts {
        SystemFacts {
            nofile: Some(Rlimit {
                soft: 1_100_000,
                hard: 1_100_000,
            }),
            file_max: Some(2_200_000),
            nr_open: Some(1_100_000),
            somaxconn: Some(65_535),
            tcp_max_syn_backlog: Some(65_535),
            ip_local_port_range: Some((1024, 65535)),
            tcp_mem_pages: Some([1_048_576, 1_572_864, 2_097_152]),
            tcp_rmem_bytes: Some([4096, 16_384, 4_194_304]),
            tcp_wmem_bytes: Some([4096, 16_384, 4_194_304]),
            mem_total_bytes: Some(32 * GIB),
            mem_available_bytes: Some(30 * GIB),
            cores: 2,
            page_size_bytes: 4096,
            io_uring_disabled: Some(0),
            io_uring_probe: IoUringProbe::Usable,
        }
    }

    fn status(checks: &[Check], name: &str) -> Status {
        checks.iter().find(|c| c.name == name).expect(name).status
    }

    #[test]
    fn a_tuned_host_passes_except_the_port_range_note() {
        let checks = evaluate(&tuned(), &plan(1_000_000));
        for check in &checks {
            let expected = if check.name == "net.ipv4.ip_local_port_range" {
                Status::Warn // no range holds a million ports: the note always stands
            } else {
                Status::Pass
            };
            assert_eq!(check.status, expected, "{check:?}");
            assert_eq!(check.fix.is_some(), expected != Status::Pass, "{check:?}");
        }
        let checks = evaluate(&tuned(), &plan(50_000));
        assert!(
            checks.iter().all(|c| c.status == Status::Pass),
            "{checks:?}"
        );
    }

    #[test]
    fn nofile_fails_below_the_hard_limit_and_warns_below_the_soft() {
        let p = plan(1_000_000);
        assert_eq!(p.needed_fds(), 1_000_128);
        let fail = check_nofile(
            Some(Rlimit {
                soft: 20_000,
                hard: 20_000,
            }),
            &p,
        );
        assert_eq!(fail.status, Status::Fail);
        assert_eq!(
            fail.fix.as_deref(),
            Some("LimitNOFILE=1100000  # deploy/systemd/ringws.service")
        );
        assert!(fail.why.contains("about 19872 connections"), "{}", fail.why);
        let warn = check_nofile(
            Some(Rlimit {
                soft: 1024,
                hard: 1_048_576,
            }),
            &p,
        );
        assert_eq!(warn.status, Status::Warn);
        assert!(warn.why.contains("raise the soft limit"), "{}", warn.why);
        let exact = check_nofile(
            Some(Rlimit {
                soft: 1_000_128,
                hard: u64::MAX,
            }),
            &p,
        );
        assert_eq!(exact.status, Status::Pass);
        assert_eq!(exact.current, "soft 1000128, hard unlimited");
        assert_eq!(check_nofile(None, &p).status, Status::Warn);
        // Beyond a million, the recommended limit grows with the plan.
        let big = check_nofile(Some(Rlimit { soft: 1, hard: 1 }), &plan(2_000_000));
        assert_eq!(
            big.fix.as_deref(),
            Some("LimitNOFILE=2200000  # deploy/systemd/ringws.service")
        );
    }

    #[test]
    fn nr_open_fails_below_the_need_and_warns_below_the_unit_limit() {
        let p = plan(1_000_000);
        let fail = check_nr_open(Some(1_000_000), &p);
        assert_eq!(fail.status, Status::Fail);
        assert_eq!(
            fail.fix.as_deref(),
            Some("fs.nr_open = 1100000  # deploy/sysctl/ringws-1m.conf")
        );
        assert_eq!(check_nr_open(Some(1_048_576), &p).status, Status::Warn);
        assert_eq!(check_nr_open(Some(1_100_000), &p).status, Status::Pass);
        let small = check_nr_open(Some(50_000), &plan(60_000));
        assert_eq!(small.status, Status::Fail);
        assert_eq!(
            small.fix.as_deref(),
            Some("fs.nr_open = 1100000  # deploy/sysctl/ringws-100k.conf")
        );
    }

    #[test]
    fn file_max_keeps_headroom_for_the_host() {
        let p = plan(1_000_000);
        assert_eq!(check_file_max(Some(999_999), &p).status, Status::Fail);
        assert_eq!(check_file_max(Some(1_000_128), &p).status, Status::Warn);
        assert_eq!(
            check_file_max(Some(1_000_128 + SYSTEM_FILES_HEADROOM), &p).status,
            Status::Pass
        );
        assert_eq!(
            check_file_max(Some(1), &p).fix.as_deref(),
            Some("fs.file-max = 2200000  # deploy/sysctl/ringws-1m.conf")
        );
    }

    #[test]
    fn listen_queues_warn_below_4096() {
        let p = plan(1_000_000);
        let warn = check_listen_queue("net.core.somaxconn", Some(4095), &p);
        assert_eq!(warn.status, Status::Warn);
        assert_eq!(
            warn.fix.as_deref(),
            Some("net.core.somaxconn = 65535  # deploy/sysctl/ringws-1m.conf")
        );
        assert_eq!(
            check_listen_queue("net.core.somaxconn", Some(4096), &p).status,
            Status::Pass
        );
        let syn = check_listen_queue("net.ipv4.tcp_max_syn_backlog", Some(512), &plan(1000));
        assert_eq!(
            syn.fix.as_deref(),
            Some("net.ipv4.tcp_max_syn_backlog = 16384  # deploy/sysctl/ringws-100k.conf")
        );
    }

    #[test]
    fn port_range_warns_when_one_proxy_address_cannot_reach_n() {
        let warn = check_port_range(Some((32768, 60999)), &plan(100_000));
        assert_eq!(warn.status, Status::Warn);
        assert_eq!(warn.current, "32768 60999 (28232 ports)");
        assert!(
            warn.why.contains("needs 4 proxy source addresses"),
            "{}",
            warn.why
        );
        assert!(
            warn.why.contains("at least 2 even with the widest"),
            "{}",
            warn.why
        );
        assert_eq!(
            check_port_range(Some((32768, 60999)), &plan(28_232)).status,
            Status::Pass
        );
    }

    #[test]
    fn tcp_mem_warns_when_light_traffic_exceeds_the_high_mark() {
        let p = plan(1_000_000);
        let warn = check_tcp_mem(Some([287_898, 383_867, 575_796]), 4096, &p);
        assert_eq!(warn.status, Status::Warn);
        assert_eq!(warn.needed, "high >= 1000000 pages");
        assert_eq!(
            warn.fix.as_deref(),
            Some("net.ipv4.tcp_mem = 1048576 1572864 2097152  # deploy/sysctl/ringws-1m.conf")
        );
        assert_eq!(
            check_tcp_mem(Some([1, 2, 1_000_000]), 4096, &p).status,
            Status::Pass
        );
        // 64 KiB pages: a sixteenth of the pages.
        assert_eq!(
            check_tcp_mem(Some([1, 2, 62_500]), 65_536, &p).status,
            Status::Pass
        );
    }

    #[test]
    fn socket_buffers_warn_only_when_memory_is_tight() {
        let big = Some([4096, 131_072, 6_291_456]);
        assert_eq!(
            check_socket_buffers("net.ipv4.tcp_rmem", big, false).status,
            Status::Pass
        );
        let warn = check_socket_buffers("net.ipv4.tcp_rmem", big, true);
        assert_eq!(warn.status, Status::Warn);
        assert_eq!(
            warn.fix.as_deref(),
            Some("net.ipv4.tcp_rmem = 4096 8192 262144  # deploy/sysctl/ringws-lowmem.conf")
        );
    }

    #[test]
    fn memory_estimate_uses_the_measured_costs() {
        assert_eq!(IDLE_CONN_BYTES, 3_994);
        assert_eq!(
            memory_estimate_bytes(&plan(1_000_000)),
            3_994_000_000 + 2 * 65_536
        );
        let mut facts = tuned();
        let p = plan(1_000_000);
        facts.mem_available_bytes = Some(10 * GIB);
        assert_eq!(check_memory(&facts, &p).status, Status::Pass);
        facts.mem_available_bytes = Some(6 * GIB);
        let warn = check_memory(&facts, &p);
        assert_eq!(warn.status, Status::Warn);
        assert!(warn
            .fix
            .as_deref()
            .unwrap()
            .ends_with("# deploy/systemd/ringws.toml"));
        facts.mem_available_bytes = Some(3 * GIB);
        assert_eq!(check_memory(&facts, &p).status, Status::Fail);
        // Tight memory also flags large default socket buffers.
        facts.tcp_rmem_bytes = Some([4096, 131_072, 6_291_456]);
        assert_eq!(
            status(&evaluate(&facts, &p), "net.ipv4.tcp_rmem"),
            Status::Warn
        );
    }

    #[test]
    fn io_uring_switch_and_probe() {
        let p = plan(1000);
        let usable = IoUringProbe::Usable;
        assert_eq!(
            check_io_uring_disabled(None, &usable, &p).status,
            Status::Pass
        );
        assert_eq!(
            check_io_uring_disabled(Some(0), &usable, &p).status,
            Status::Pass
        );
        assert_eq!(
            check_io_uring_disabled(Some(1), &usable, &p).status,
            Status::Pass
        );
        let skipped = IoUringProbe::Skipped;
        assert_eq!(
            check_io_uring_disabled(Some(1), &skipped, &p).status,
            Status::Warn
        );
        let fail = check_io_uring_disabled(Some(2), &skipped, &p);
        assert_eq!(fail.status, Status::Fail);
        assert_eq!(
            fail.fix.as_deref(),
            Some("kernel.io_uring_disabled = 0  # deploy/sysctl/ringws-100k.conf")
        );
        assert_eq!(
            check_io_uring_probe(&skipped, Some(0), &p).status,
            Status::Skip
        );
        let seccomp = check_io_uring_probe(&IoUringProbe::Blocked, Some(0), &p);
        assert_eq!(seccomp.status, Status::Fail);
        assert!(seccomp
            .fix
            .unwrap()
            .contains("deploy/container/seccomp-ringws.json"));
        let sysctl = check_io_uring_probe(&IoUringProbe::Blocked, Some(2), &p);
        assert!(sysctl
            .fix
            .unwrap()
            .starts_with("kernel.io_uring_disabled = 0"));
        assert_eq!(
            check_io_uring_probe(&IoUringProbe::Missing, None, &p).status,
            Status::Fail
        );
    }

    #[test]
    fn cores_beyond_the_machine_fail() {
        assert_eq!(check_cores(2, &plan(1)).status, Status::Pass);
        let fail = check_cores(1, &plan(1));
        assert_eq!(fail.status, Status::Fail);
        assert_eq!(
            fail.fix.as_deref(),
            Some("cores = 1  # deploy/systemd/ringws.toml")
        );
    }

    #[test]
    fn bytes_read_like_people_write_them() {
        assert_eq!(human_bytes(100), "100 B");
        assert_eq!(human_bytes(64 << 10), "64.0 KiB");
        assert_eq!(human_bytes(3_994_131_072), "3.7 GiB");
    }
}
