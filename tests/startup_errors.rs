//! Start-up failures a person can act on. Its own test binary: cargo runs test binaries one at a
//! time, so flipping the io_uring sysctl here cannot disturb servers started by other tests.

use std::process::Command;

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
    let out = Command::new(env!("CARGO_BIN_EXE_ringws"))
        .args([
            "serve",
            "--listen",
            "127.0.0.1:0",
            "--admin-listen",
            "off",
            "--cores",
            "1",
            "--app",
            "echo",
        ])
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(err.contains("io_uring is blocked"), "{err}");
    assert!(
        err.contains("seccomp") && err.contains("deploy/container/seccomp-ringws.json"),
        "{err}"
    );
    assert!(err.contains("kernel.io_uring_disabled=0"), "{err}");
}

#[test]
fn a_port_taken_by_another_program_is_named() {
    let _serial = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let holder = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let taken = holder.local_addr().unwrap().to_string();
    let out = Command::new(env!("CARGO_BIN_EXE_ringws"))
        .args([
            "serve",
            "--listen",
            &taken,
            "--admin-listen",
            "off",
            "--cores",
            "1",
        ])
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(
        err.contains(&taken) && err.contains("already in use"),
        "{err}"
    );
}
