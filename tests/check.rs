//! `ringws check` against fake /proc and /sys trees, and the deploy/sysctl files against this
//! machine's /proc/sys.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

/// Keys of the deploy/sysctl files that may be missing from /proc/sys on a supported host:
/// `kernel.io_uring_disabled` arrived in Linux 6.6 (ringws needs 6.0).
const MAY_BE_ABSENT: [&str; 1] = ["kernel.io_uring_disabled"];

const SYSCTL_FILES: [&str; 3] = [
    "deploy/sysctl/ringws-100k.conf",
    "deploy/sysctl/ringws-1m.conf",
    "deploy/sysctl/ringws-lowmem.conf",
];

/// A fake machine: every value `ringws check` reads, with defaults of a tuned 32 GiB host.
struct FakeHost {
    nofile: (&'static str, &'static str),
    nr_open: &'static str,
    file_max: &'static str,
    somaxconn: &'static str,
    syn_backlog: &'static str,
    port_range: &'static str,
    tcp_mem: &'static str,
    mem_available_kib: u64,
    io_uring_disabled: &'static str,
}

impl Default for FakeHost {
    fn default() -> Self {
        FakeHost {
            nofile: ("1100000", "1100000"),
            nr_open: "1100000",
            file_max: "2200000",
            somaxconn: "65535",
            syn_backlog: "65535",
            port_range: "1024\t65535",
            tcp_mem: "1048576\t1572864\t2097152",
            mem_available_kib: 30 << 20,
            io_uring_disabled: "0",
        }
    }
}

impl FakeHost {
    /// Writes `<tmp>/ringws-check-<name>/{proc,sys}` and returns the two roots.
    fn write(&self, name: &str) -> (PathBuf, PathBuf) {
        let root = std::env::temp_dir().join(format!("ringws-check-{}-{name}", std::process::id()));
        let _ = std::fs::remove_dir_all(&root);
        let proc_root = root.join("proc");
        let sys_root = root.join("sys");
        let put = |path: PathBuf, text: String| {
            std::fs::create_dir_all(path.parent().unwrap()).unwrap();
            std::fs::write(path, text).unwrap();
        };
        let sysctl = |key: &str, value: &str| {
            put(
                proc_root.join("sys").join(key.replace('.', "/")),
                format!("{value}\n"),
            )
        };
        put(
            proc_root.join("self/limits"),
            format!(
                "Limit                     Soft Limit           Hard Limit           Units     \n\
                 Max processes             96365                96365                processes \n\
                 Max open files            {:<20} {:<20} files     \n",
                self.nofile.0, self.nofile.1
            ),
        );
        sysctl("fs.nr_open", self.nr_open);
        sysctl("fs.file-max", self.file_max);
        sysctl("net.core.somaxconn", self.somaxconn);
        sysctl("net.ipv4.tcp_max_syn_backlog", self.syn_backlog);
        sysctl("net.ipv4.ip_local_port_range", self.port_range);
        sysctl("net.ipv4.tcp_mem", self.tcp_mem);
        sysctl("net.ipv4.tcp_rmem", "4096\t16384\t4194304");
        sysctl("net.ipv4.tcp_wmem", "4096\t16384\t4194304");
        sysctl("kernel.io_uring_disabled", self.io_uring_disabled);
        put(
            proc_root.join("meminfo"),
            format!(
                "MemTotal:       {} kB\nMemFree:        1000 kB\nMemAvailable:   {} kB\n",
                32u64 << 20,
                self.mem_available_kib
            ),
        );
        put(sys_root.join("devices/system/cpu/online"), "0-1\n".into());
        (proc_root, sys_root)
    }
}

fn check(host: &FakeHost, name: &str, connections: u64, extra: &[&str]) -> Output {
    check_in_columns(host, name, connections, extra, "100")
}

/// `ringws check` with `COLUMNS` set to `columns`.
fn check_in_columns(
    host: &FakeHost,
    name: &str,
    connections: u64,
    extra: &[&str],
    columns: &str,
) -> Output {
    let (proc_root, sys_root) = host.write(name);
    let output = Command::new(env!("CARGO_BIN_EXE_ringws"))
        .env("COLUMNS", columns)
        .arg("check")
        .args(["--connections", &connections.to_string()])
        .arg("--proc-root")
        .arg(&proc_root)
        .arg("--sys-root")
        .arg(&sys_root)
        .args(extra)
        .output()
        .expect("run ringws check");
    let _ = std::fs::remove_dir_all(proc_root.parent().unwrap());
    output
}

fn stdout(output: &Output) -> String {
    String::from_utf8(output.stdout.clone()).expect("utf-8")
}

/// The table row of `name` with the lines under it (its wrapped cells and its fix), each ended
/// by a newline.
fn row(text: &str, name: &str) -> String {
    let mut lines = text
        .lines()
        .skip_while(|line| line.split_whitespace().next() != Some(name));
    let first = lines
        .next()
        .unwrap_or_else(|| panic!("no row {name} in:\n{text}"));
    let under = lines.take_while(|line| line.starts_with(' '));
    std::iter::once(first)
        .chain(under)
        .map(|line| format!("{line}\n"))
        .collect()
}

#[test]
fn a_tuned_host_passes() {
    let output = check(&FakeHost::default(), "pass", 50_000, &[]);
    let text = stdout(&output);
    assert_eq!(output.status.code(), Some(0), "{text}");
    assert!(
        text.ends_with("50000 connections: every check passes\n"),
        "{text}"
    );
    assert!(row(&text, "io_uring_setup").contains("skip"), "{text}");
    assert!(row(&text, "cores").contains(" 2 "), "{text}");
}

#[test]
fn short_queues_warn_with_the_fix_line() {
    let host = FakeHost {
        somaxconn: "1024",
        syn_backlog: "512",
        ..FakeHost::default()
    };
    let output = check(&host, "warn", 50_000, &[]);
    let text = stdout(&output);
    assert_eq!(output.status.code(), Some(0), "{text}");
    let somaxconn = row(&text, "net.core.somaxconn");
    assert!(somaxconn.contains(" warn\n"), "{somaxconn}");
    assert!(
        somaxconn.ends_with("net.core.somaxconn = 16384  # deploy/sysctl/ringws-100k.conf\n"),
        "{somaxconn}"
    );
    assert!(
        text.contains("\nWhy:\n  warn net.core.somaxconn: "),
        "{text}"
    );
    assert!(
        text.ends_with("50000 connections: 0 fail, 2 warn — review the warnings\n"),
        "{text}"
    );
}

#[test]
fn a_low_fd_limit_fails_and_names_the_unit_file() {
    let host = FakeHost {
        nofile: ("1024", "20000"),
        nr_open: "1048576",
        ..FakeHost::default()
    };
    let output = check(&host, "fail", 1_000_000, &[]);
    let text = stdout(&output);
    assert_eq!(output.status.code(), Some(1), "{text}");
    let nofile = row(&text, "RLIMIT_NOFILE");
    assert!(nofile.contains("soft 1024, hard 20000"), "{nofile}");
    assert!(nofile.contains(" fail\n"), "{nofile}");
    assert!(
        nofile.ends_with("LimitNOFILE=1100000  # deploy/systemd/ringws.service\n"),
        "{nofile}"
    );
    assert!(
        row(&text, "fs.nr_open")
            .ends_with("fs.nr_open = 1100000  # deploy/sysctl/ringws-1m.conf\n"),
        "{text}"
    );
    assert!(text.contains("fix the fails first"), "{text}");
}

#[test]
fn every_line_fits_the_terminal_width() {
    let host = FakeHost {
        nofile: ("1024", "20000"),
        syn_backlog: "512",
        ..FakeHost::default()
    };
    for columns in [80, 60] {
        let output = check_in_columns(&host, "width", 1_000_000, &[], &columns.to_string());
        let text = stdout(&output);
        for line in text.lines() {
            assert!(
                line.chars().count() <= columns,
                "{} characters, over {columns}: {line:?}\n{text}",
                line.chars().count()
            );
        }
        // The fix still reads whole under its row.
        assert!(
            row(&text, "RLIMIT_NOFILE").contains("    fix: LimitNOFILE=1100000"),
            "{text}"
        );
    }
}

#[test]
fn memory_and_io_uring_failures() {
    let host = FakeHost {
        mem_available_kib: 2 << 20,
        io_uring_disabled: "2",
        ..FakeHost::default()
    };
    let output = check(&host, "memory", 1_000_000, &["--cores", "2"]);
    let text = stdout(&output);
    assert_eq!(output.status.code(), Some(1), "{text}");
    assert!(row(&text, "memory").contains(" fail\n"), "{text}");
    assert!(
        row(&text, "memory").ends_with("# deploy/systemd/ringws.toml\n"),
        "{text}"
    );
    assert!(
        row(&text, "kernel.io_uring_disabled")
            .ends_with("kernel.io_uring_disabled = 0  # deploy/sysctl/ringws-1m.conf\n"),
        "{text}"
    );
    // Tight memory points at the low-memory profile for socket buffers... only when they are
    // larger than its defaults; these fake ones (16 KiB) are.
    assert!(
        row(&text, "net.ipv4.tcp_rmem").ends_with("# deploy/sysctl/ringws-lowmem.conf\n"),
        "{text}"
    );
}

#[test]
fn json_output_parses() {
    let host = FakeHost {
        nofile: ("1024", "1024"),
        ..FakeHost::default()
    };
    let output = check(&host, "json", 100_000, &["--json"]);
    assert_eq!(output.status.code(), Some(1));
    let value: serde_json::Value = serde_json::from_slice(&output.stdout).expect("one JSON object");
    assert_eq!(value["connections"], 100_000);
    assert_eq!(value["cores"], 2);
    assert_eq!(value["memory_estimate_bytes"], 100_000 * 3_994 + 2 * 65_536);
    let checks = value["checks"].as_array().expect("checks array");
    assert!(checks.len() >= 12, "{checks:?}");
    for check in checks {
        for key in ["name", "current", "needed", "status", "fix"] {
            assert!(check.get(key).is_some(), "{key} missing in {check}");
        }
    }
    let nofile = checks
        .iter()
        .find(|c| c["name"] == "RLIMIT_NOFILE")
        .unwrap();
    assert_eq!(nofile["status"], "fail");
    assert_eq!(nofile["needed"], "100128");
    assert_eq!(
        nofile["fix"],
        "LimitNOFILE=1100000  # deploy/systemd/ringws.service"
    );
    let somaxconn = checks
        .iter()
        .find(|c| c["name"] == "net.core.somaxconn")
        .unwrap();
    assert_eq!(somaxconn["status"], "pass");
    assert!(somaxconn["fix"].is_null());
}

#[test]
fn a_missing_root_is_a_usage_error() {
    let output = Command::new(env!("CARGO_BIN_EXE_ringws"))
        .args([
            "check",
            "--connections",
            "10",
            "--proc-root",
            "/nonexistent/proc",
        ])
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(2));
    assert!(
        String::from_utf8_lossy(&output.stderr).contains("/nonexistent/proc is not a directory")
    );
    let zero = Command::new(env!("CARGO_BIN_EXE_ringws"))
        .args(["check", "--connections", "0"])
        .output()
        .unwrap();
    assert_eq!(zero.status.code(), Some(2));
}

/// Every deploy/sysctl line is a comment, or `key = value  # why` with a key this kernel has.
#[test]
fn sysctl_profiles_are_commented_and_name_real_keys() {
    let repo = Path::new(env!("CARGO_MANIFEST_DIR"));
    for file in SYSCTL_FILES {
        let text = std::fs::read_to_string(repo.join(file)).expect(file);
        let mut keys = 0;
        for (number, line) in text.lines().enumerate() {
            let at = format!("{file}:{}", number + 1);
            if line.starts_with('#') {
                assert!(line.len() > 2, "{at}: empty comment");
                continue;
            }
            let (setting, why) = line
                .split_once("  # ")
                .unwrap_or_else(|| panic!("{at}: no `  # why` comment: {line:?}"));
            assert!(
                why.trim().len() >= 10,
                "{at}: the comment must say why: {line:?}"
            );
            let (key, value) = setting
                .split_once(" = ")
                .unwrap_or_else(|| panic!("{at}: not `key = value`: {line:?}"));
            assert!(!value.trim().is_empty(), "{at}: no value");
            assert!(
                value.split_whitespace().all(|v| v.parse::<u64>().is_ok()),
                "{at}: values are whole numbers: {value:?}"
            );
            let path = Path::new("/proc/sys").join(key.replace('.', "/"));
            assert!(
                path.exists() || MAY_BE_ABSENT.contains(&key),
                "{at}: {key} is not a sysctl of this kernel ({} missing)",
                path.display()
            );
            keys += 1;
        }
        assert!(keys >= 12, "{file}: only {keys} settings");
    }
}
