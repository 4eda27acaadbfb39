//! Start-up failures a person can act on. Its own test binary: cargo runs test binaries one at a
//! time, so flipping the io_uring sysctl here cannot disturb servers started by other tests.

mod common;
use common::*;
use std::io::Write;
use std::process::Command;
use std::time::Duration;

/// The tests of this binary run one at a time: one of them turns io_uring off for the machine.
static SERIAL: std::sync::Mutex<()> = std::sync::Mutex::new(());

/// Restores `kernel.io_uring_disabled` even if the test fails.
struct RestoreSysctl(String);

impl Drop for RestoreSysctl {
    fn drop(&mut self) {
        let _ = std::fs::write("/proc/sys/kernel/io_uring_disabled", &self.0);
    }
}

#[test]
fn blocked_io_uring_fails_with_the_fix_named() {
    let _serial = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    const KNOB: &str = "/proc/sys/kernel/io_uring_disabled";
    let before = std::fs::read_to_string(KNOB).expect("kernel.io_uring_disabled (Linux 6.6+)");
    // 2 = io_uring_setup fails with EPERM for everyone, as a container seccomp profile does.
    std::fs::write(KNOB, "2").expect("set kernel.io_uring_disabled (run as root)");
    let _restore = RestoreSysctl(before.trim().to_string());
    refused_start(
        &[
            "--listen",
            "127.0.0.1:0",
            "--admin-listen",
            "off",
            "--cores",
            "1",
            "--app",
            "echo",
        ],
        &[],
        1,
        &[
            "io_uring is blocked",
            "seccomp",
            "deploy/container/seccomp-ringws.json",
            "kernel.io_uring_disabled=0",
        ],
    );
}

#[test]
fn a_port_taken_by_another_program_is_named() {
    let _serial = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let holder = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let taken = holder.local_addr().unwrap().to_string();
    // This test process holds the port, and is named by its pid.
    let message = refused_start(
        &["--listen", &taken, "--admin-listen", "off", "--cores", "1"],
        &[],
        1,
        &[
            &format!(
                "--listen {taken} is already in use by pid {} (",
                std::process::id()
            ),
            "choose another --listen",
        ],
    );
    assert!(
        !message.contains("--takeover"),
        "sharing is no answer to another program: {message}"
    );
}

/// A second `ringws serve` on the ports of a running one is refused, naming the first one's pid
/// and the setting at fault; with --takeover it shares them, for the restart recipe.
#[test]
fn a_second_ringws_on_the_same_ports_is_refused_unless_it_takes_over() {
    let _serial = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let first = ServerProcess::start(&["--cores", "1"]);
    let (addr, admin) = (first.addr.to_string(), first.admin.unwrap().to_string());
    let pid = first.child.id();
    let off = ["--admin-listen", "off", "--cores", "1"];

    let listen_taken = format!("--listen {addr} is already in use by pid {pid} (ringws)");
    refused_start(
        &[&["--listen", addr.as_str()][..], &off].concat(),
        &[],
        1,
        &[&listen_taken, "start this one with --takeover"],
    );

    // The admin port is named as the admin port.
    let admin_taken = format!("--admin-listen {admin} is already in use by pid {pid} (ringws)");
    let message = refused_start(
        &[
            "--listen",
            "127.0.0.1:0",
            "--admin-listen",
            &admin,
            "--cores",
            "1",
        ],
        &[],
        1,
        &[&admin_taken, "choose another --admin-listen"],
    );
    assert!(!message.contains("another --listen"), "{message}");

    // A wildcard address covers the first one's loopback port.
    let wildcard = format!("0.0.0.0:{}", first.addr.port());
    refused_start(
        &[&["--listen", wildcard.as_str()][..], &off].concat(),
        &[],
        1,
        &[&format!("pid {pid} (ringws)")],
    );

    // Asked for, the port is shared, and both processes serve it.
    let second = ServerProcess::start_with(
        &["--listen", &addr],
        &["--cores", "1", "--admin-listen", &admin, "--takeover"],
        None,
    );
    let log = second.drain_log();
    assert!(
        log.contains(&format!(
            "--listen {addr}: sharing the port with pid {pid} (ringws) (--takeover)"
        )),
        "{log}"
    );
    let mut s = ws_connect(first.addr);
    s.write_all(&client_frame(true, 0x1, b"both")).unwrap();
    assert_eq!(read_frame(&mut s).2, b"both");
}

/// `ringws serve`'s start-up warning and `ringws check` judge RLIMIT_NOFILE with one
/// computation: the same number of descriptors, the same reason and fix, and shell advice that
/// works (`ulimit -n` as a user would lower the hard limit or fail).
#[test]
fn the_start_warning_and_ringws_check_count_the_same_descriptors() {
    let _serial = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    const NOFILE: u64 = 200;
    let server = ServerProcess::start_with(
        &["--listen", "127.0.0.1:0"],
        &["--cores", "1", "--max-connections", "1000"],
        Some(NOFILE),
    );
    let log = server.drain_log();
    let warning = log
        .lines()
        .find(|line| line.contains("open-file limit"))
        .unwrap_or_else(|| panic!("no open-file warning in: {log}"));

    let mut check = Command::new(env!("CARGO_BIN_EXE_ringws"));
    check.args(["check", "--connections", "1000", "--cores", "1", "--json"]);
    limit_open_files(&mut check, NOFILE);
    let out = output_within(&mut check, Duration::from_secs(30));
    let report: serde_json::Value =
        serde_json::from_slice(&out.stdout).expect("ringws check --json prints JSON");
    let row = report["checks"]
        .as_array()
        .expect("checks")
        .iter()
        .find(|c| c["name"] == "RLIMIT_NOFILE")
        .expect("an RLIMIT_NOFILE row")
        .clone();
    assert_eq!(row["status"], "fail", "{row}");
    assert_eq!(row["current"], "soft 200, hard 200", "{row}");
    let needed = row["needed"].as_str().unwrap();
    assert_eq!(needed, "1064", "1000 connections and 64 per core: {row}");

    assert!(
        warning.contains(&format!(
            "(RLIMIT_NOFILE: soft 200, hard 200) is below the {needed} file descriptors that \
             max_connections=1000 on 1 core needs"
        )),
        "{warning}"
    );
    let why = row["why"].as_str().unwrap();
    assert!(why.contains("about 136 connections"), "{why}");
    assert!(
        warning.contains(why),
        "the warning gives check's reason:\n{warning}\n{why}"
    );
    assert!(
        warning.contains("Fix: LimitNOFILE=1100000 in deploy/systemd/ringws.service"),
        "{warning}"
    );
    assert!(
        warning.contains("`ulimit -Hn 1064`") && !warning.contains("ulimit -n "),
        "{warning}"
    );
}
