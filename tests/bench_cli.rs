//! `ringws bench` as a person runs it, against the real server: a server that does not echo is
//! named before the load starts, and every mode takes the same flags.

mod common;
use common::{output_within, ServerProcess};
use std::process::Command;
use std::time::{Duration, Instant};

/// Runs `ringws bench ARGS` (killed and failed past 20 s): exit code, stdout, stderr.
fn bench(args: &[&str]) -> (Option<i32>, String, String) {
    let mut command = Command::new(env!("CARGO_BIN_EXE_ringws"));
    command.arg("bench").args(args).env_remove("RUST_LOG");
    let out = output_within(&mut command, Duration::from_secs(20));
    let text = |bytes: &[u8]| String::from_utf8_lossy(bytes).into_owned();
    (out.status.code(), text(&out.stdout), text(&out.stderr))
}

#[test]
fn bench_echo_against_pubsub_says_the_server_does_not_echo() {
    let server = ServerProcess::start(&["--app", "pubsub", "--cores", "1"]);
    let url = format!("ws://{}/", server.addr);
    let started = Instant::now();
    let (code, stdout, stderr) = bench(&[
        "echo",
        "--url",
        &url,
        "--conns",
        "4",
        "--warmup",
        "0",
        "--duration",
        "5",
    ]);
    assert_eq!(code, Some(2), "{stdout}{stderr}");
    assert!(
        started.elapsed() < Duration::from_secs(4),
        "detected only after {:?}",
        started.elapsed()
    );
    for needle in [
        &format!("the server at {url} does not echo"),
        "replies differ",
        "--app echo",
    ] {
        assert!(stderr.contains(needle), "{needle:?} missing from: {stderr}");
    }
    assert!(!stdout.contains("echo_mismatch"), "{stdout}");
}

#[test]
fn bench_help_examples_use_the_server_default_port() {
    let (_, help, _) = bench(&["--help"]);
    assert!(help.contains("ws://127.0.0.1:9001/"), "{help}");
    assert!(!help.contains(":9000"), "{help}");
}
