//! Running `ringws doctor` and checking its exit code and what it printed.

use std::io::Read;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// Longest any doctor run may take in these tests.
pub const RUN_LIMIT: Duration = Duration::from_secs(30);

/// One finished `ringws doctor`.
pub struct Run {
    pub code: i32,
    pub stdout: String,
    pub stderr: String,
}

/// Runs `ringws doctor ARGS`, killed after [`RUN_LIMIT`].
pub fn doctor(args: &[&str]) -> Run {
    let mut child = Command::new(env!("CARGO_BIN_EXE_ringws"))
        .arg("doctor")
        .args(args)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start ringws doctor");
    let started = Instant::now();
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        if started.elapsed() > RUN_LIMIT {
            let _ = child.kill();
            panic!("ringws doctor {args:?} ran longer than {RUN_LIMIT:?}");
        }
        std::thread::sleep(Duration::from_millis(10));
    };
    let mut stdout = String::new();
    let mut stderr = String::new();
    child
        .stdout
        .take()
        .unwrap()
        .read_to_string(&mut stdout)
        .unwrap();
    child
        .stderr
        .take()
        .unwrap()
        .read_to_string(&mut stderr)
        .unwrap();
    Run {
        code: status.code().expect("doctor exited by a signal"),
        stdout,
        stderr,
    }
}

/// Asserts the exit code and that stdout mentions each of `mentions`.
#[track_caller]
pub fn assert_run(run: &Run, code: i32, mentions: &[&str]) {
    assert_run_noting(run, code, mentions, String::new);
}

/// [`assert_run`], adding `context()` (e.g. a proxy's log) to the message of a wrong exit code.
#[track_caller]
pub fn assert_run_noting(
    run: &Run,
    code: i32,
    mentions: &[&str],
    context: impl FnOnce() -> String,
) {
    assert_eq!(
        run.code,
        code,
        "exit code\nstdout:\n{}\nstderr:\n{}\n{}",
        run.stdout,
        run.stderr,
        context()
    );
    for text in mentions {
        assert!(
            run.stdout.contains(text),
            "{text:?} not in stdout:\n{}",
            run.stdout
        );
    }
}
