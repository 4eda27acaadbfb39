//! What `ringws check` knows about a machine, and how it is read from /proc and /sys.
//!
//! Reading is kept apart from judging: [`read`] fills a [`SystemFacts`] once, and the pure rules
//! in `rules.rs` only look at that struct, so every rule is unit-tested without a real system.
//! The parsers here are pure functions over file contents, tested the same way.

use std::io;
use std::path::{Path, PathBuf};

pub use crate::sys::process::Rlimit;

/// The outcome of trying to create an io_uring.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum IoUringProbe {
    /// io_uring_setup succeeded.
    Usable,
    /// EPERM: a seccomp profile or `kernel.io_uring_disabled` forbids it.
    Blocked,
    /// ENOSYS: the kernel has no io_uring.
    Missing,
    /// Any other error, as the OS described it.
    Failed(String),
    /// Not attempted: the facts come from a copy of /proc, not from this machine.
    Skipped,
}

/// Everything the rules look at. `None` means the value could not be read.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SystemFacts {
    /// RLIMIT_NOFILE of this process (what `ringws serve` started the same way would get).
    pub nofile: Option<Rlimit>,
    /// `fs.file-max`: open files, system-wide.
    pub file_max: Option<u64>,
    /// `fs.nr_open`: the ceiling of any process's RLIMIT_NOFILE.
    pub nr_open: Option<u64>,
    /// `net.core.somaxconn`: the cap on every listen(2) backlog.
    pub somaxconn: Option<u64>,
    /// `net.ipv4.tcp_max_syn_backlog`: half-open connections queued per listener.
    pub tcp_max_syn_backlog: Option<u64>,
    /// `net.ipv4.ip_local_port_range`: first and last ephemeral port.
    pub ip_local_port_range: Option<(u64, u64)>,
    /// `net.ipv4.tcp_mem`: low, pressure, high, in pages.
    pub tcp_mem_pages: Option<[u64; 3]>,
    /// `net.ipv4.tcp_rmem`: min, default, max receive buffer per socket, in bytes.
    pub tcp_rmem_bytes: Option<[u64; 3]>,
    /// `net.ipv4.tcp_wmem`: min, default, max send buffer per socket, in bytes.
    pub tcp_wmem_bytes: Option<[u64; 3]>,
    /// `MemTotal` from meminfo.
    pub mem_total_bytes: Option<u64>,
    /// `MemAvailable` from meminfo.
    pub mem_available_bytes: Option<u64>,
    /// CPUs ringws may run on.
    pub cores: usize,
    /// The unit of `tcp_mem`.
    pub page_size_bytes: u64,
    /// `kernel.io_uring_disabled` (0, 1 or 2); `None` when the file is absent (kernels before
    /// 6.6 have no such switch).
    pub io_uring_disabled: Option<u8>,
    pub io_uring_probe: IoUringProbe,
}

/// Where to read from. `None` roots mean this machine's /proc and /sys.
#[derive(Clone, Debug, Default)]
pub struct Roots {
    pub proc_root: Option<PathBuf>,
    pub sys_root: Option<PathBuf>,
}

/// Page size assumed for a copied /proc tree (x86_64 and most arm64 kernels).
const DEFAULT_PAGE_SIZE_BYTES: u64 = 4096;

/// Reads the facts. With a `proc_root`, RLIMIT_NOFILE comes from `<proc_root>/self/limits` and
/// the io_uring probe is skipped (it would test this machine, not the copy); with a `sys_root`,
/// the cores come from `<sys_root>/devices/system/cpu/online`.
pub fn read(roots: &Roots) -> io::Result<SystemFacts> {
    for root in [&roots.proc_root, &roots.sys_root].into_iter().flatten() {
        if !root.is_dir() {
            return Err(io::Error::new(
                io::ErrorKind::NotFound,
                format!("{} is not a directory", root.display()),
            ));
        }
    }
    let proc_root = roots.proc_root.as_deref().unwrap_or(Path::new("/proc"));
    let sysctl = |key: &str| read_text(&sysctl_path(proc_root, key));
    let meminfo = read_text(&proc_root.join("meminfo"));
    let fake_proc = roots.proc_root.is_some();

    let nofile = if fake_proc {
        read_text(&proc_root.join("self/limits")).and_then(|text| parse_nofile_limit(&text))
    } else {
        crate::sys::process::nofile_limit()
    };
    let cores = match &roots.sys_root {
        Some(sys_root) => read_text(&sys_root.join("devices/system/cpu/online"))
            .and_then(|text| parse_cpu_list(&text))
            .unwrap_or(1),
        None => crate::config::available_cores(),
    };
    Ok(SystemFacts {
        nofile,
        file_max: sysctl("fs.file-max")
            .and_then(|t| parse_values::<1>(&t))
            .map(|[v]| v),
        nr_open: sysctl("fs.nr_open")
            .and_then(|t| parse_values::<1>(&t))
            .map(|[v]| v),
        somaxconn: sysctl("net.core.somaxconn")
            .and_then(|t| parse_values::<1>(&t))
            .map(|[v]| v),
        tcp_max_syn_backlog: sysctl("net.ipv4.tcp_max_syn_backlog")
            .and_then(|t| parse_values::<1>(&t))
            .map(|[v]| v),
        ip_local_port_range: sysctl("net.ipv4.ip_local_port_range")
            .and_then(|t| parse_values::<2>(&t))
            .map(|[lo, hi]| (lo, hi)),
        tcp_mem_pages: sysctl("net.ipv4.tcp_mem").and_then(|t| parse_values::<3>(&t)),
        tcp_rmem_bytes: sysctl("net.ipv4.tcp_rmem").and_then(|t| parse_values::<3>(&t)),
        tcp_wmem_bytes: sysctl("net.ipv4.tcp_wmem").and_then(|t| parse_values::<3>(&t)),
        mem_total_bytes: meminfo
            .as_deref()
            .and_then(|t| parse_meminfo(t, "MemTotal")),
        mem_available_bytes: meminfo
            .as_deref()
            .and_then(|t| parse_meminfo(t, "MemAvailable")),
        cores,
        page_size_bytes: if fake_proc {
            DEFAULT_PAGE_SIZE_BYTES
        } else {
            page_size()
        },
        io_uring_disabled: sysctl("kernel.io_uring_disabled")
            .and_then(|t| parse_values::<1>(&t))
            .map(|[v]| v.min(u8::MAX as u64) as u8),
        io_uring_probe: if fake_proc {
            IoUringProbe::Skipped
        } else {
            probe_io_uring()
        },
    })
}

/// `net.core.somaxconn` → `<proc_root>/sys/net/core/somaxconn`.
pub fn sysctl_path(proc_root: &Path, key: &str) -> PathBuf {
    proc_root.join("sys").join(key.replace('.', "/"))
}

fn read_text(path: &Path) -> Option<String> {
    std::fs::read_to_string(path).ok()
}

/// Whitespace-separated unsigned numbers, exactly `N` of them (sysctl files).
pub fn parse_values<const N: usize>(text: &str) -> Option<[u64; N]> {
    let mut out = [0u64; N];
    let mut fields = text.split_ascii_whitespace();
    for slot in &mut out {
        *slot = fields.next()?.parse().ok()?;
    }
    fields.next().is_none().then_some(out)
}

/// The `Max open files` row of a /proc/PID/limits file.
pub fn parse_nofile_limit(limits: &str) -> Option<Rlimit> {
    let rest = limits
        .lines()
        .find_map(|line| line.strip_prefix("Max open files"))?;
    let mut fields = rest.split_ascii_whitespace();
    let parse = |field: Option<&str>| match field? {
        "unlimited" => Some(u64::MAX),
        number => number.parse().ok(),
    };
    let soft = parse(fields.next())?;
    let hard = parse(fields.next())?;
    Some(Rlimit { soft, hard })
}

/// A `Key:  123 kB` row of /proc/meminfo, in bytes.
pub fn parse_meminfo(meminfo: &str, key: &str) -> Option<u64> {
    let rest = meminfo
        .lines()
        .find_map(|line| line.strip_prefix(key)?.strip_prefix(':'))?;
    let mut fields = rest.split_ascii_whitespace();
    let value: u64 = fields.next()?.parse().ok()?;
    match fields.next() {
        Some("kB") => value.checked_mul(1024),
        None => Some(value),
        Some(_) => None,
    }
}

/// The number of CPUs in a kernel CPU list such as `0-3,6,8-9`.
pub fn parse_cpu_list(list: &str) -> Option<usize> {
    let mut count = 0usize;
    for part in list.trim().split(',') {
        count += match part.split_once('-') {
            Some((first, last)) => {
                let (first, last): (usize, usize) = (first.parse().ok()?, last.parse().ok()?);
                last.checked_sub(first)? + 1
            }
            None => {
                part.parse::<usize>().ok()?;
                1
            }
        };
    }
    (count > 0).then_some(count)
}

fn page_size() -> u64 {
    crate::sys::process::page_size().unwrap_or(DEFAULT_PAGE_SIZE_BYTES)
}

/// Entries of the probe ring: the smallest useful size, so the probe costs next to nothing.
const PROBE_RING_ENTRIES: u32 = 8;

/// Creates and drops a small io_uring, the same call `ringws serve` makes on every core.
fn probe_io_uring() -> IoUringProbe {
    match io_uring::IoUring::new(PROBE_RING_ENTRIES) {
        Ok(_ring) => IoUringProbe::Usable,
        Err(err) => match err.raw_os_error() {
            Some(libc::EPERM) => IoUringProbe::Blocked,
            Some(libc::ENOSYS) => IoUringProbe::Missing,
            _ => IoUringProbe::Failed(err.to_string()),
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sysctl_files_parse() {
        assert_eq!(parse_values::<1>("1048576\n"), Some([1_048_576]));
        assert_eq!(parse_values::<2>("32768\t60999\n"), Some([32768, 60999]));
        assert_eq!(
            parse_values::<3>("4096\t131072\t6291456\n"),
            Some([4096, 131_072, 6_291_456])
        );
        assert_eq!(parse_values::<2>("32768\n"), None);
        assert_eq!(parse_values::<1>("1 2\n"), None);
        assert_eq!(parse_values::<1>("many\n"), None);
    }

    #[test]
    fn limits_file_parses() {
        let limits = "Limit                     Soft Limit           Hard Limit           Units\n\
                      Max processes             96365                96365                processes\n\
                      Max open files            1024                 524288               files\n";
        assert_eq!(
            parse_nofile_limit(limits),
            Some(Rlimit {
                soft: 1024,
                hard: 524_288
            })
        );
        let unlimited =
            "Max open files            unlimited            unlimited            files\n";
        assert_eq!(
            parse_nofile_limit(unlimited),
            Some(Rlimit {
                soft: u64::MAX,
                hard: u64::MAX
            })
        );
        assert_eq!(parse_nofile_limit("Max processes 1 1 processes\n"), None);
    }

    #[test]
    fn meminfo_parses_in_bytes() {
        let meminfo = "MemTotal:       24684084 kB\nMemFree:        19432656 kB\n\
                       MemAvailable:   23196464 kB\n";
        assert_eq!(parse_meminfo(meminfo, "MemTotal"), Some(24_684_084 * 1024));
        assert_eq!(
            parse_meminfo(meminfo, "MemAvailable"),
            Some(23_196_464 * 1024)
        );
        assert_eq!(parse_meminfo(meminfo, "Mem"), None);
        assert_eq!(parse_meminfo(meminfo, "SwapTotal"), None);
    }

    #[test]
    fn cpu_lists_count() {
        assert_eq!(parse_cpu_list("0\n"), Some(1));
        assert_eq!(parse_cpu_list("0-3\n"), Some(4));
        assert_eq!(parse_cpu_list("0-3,6,8-9\n"), Some(7));
        assert_eq!(parse_cpu_list("3-1"), None);
        assert_eq!(parse_cpu_list(""), None);
    }

    #[test]
    fn sysctl_keys_map_to_paths() {
        assert_eq!(
            sysctl_path(Path::new("/proc"), "net.ipv4.tcp_mem"),
            PathBuf::from("/proc/sys/net/ipv4/tcp_mem")
        );
    }
}
