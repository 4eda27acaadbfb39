//! `ringws bench` as a person runs it, against the real server: a server that does not echo is
//! named before the load starts, and every mode takes the same flags.

mod common;
use common::{metric_sum, output_within, ServerProcess};
use std::process::Command;
use std::time::{Duration, Instant};

/// Runs `ringws bench ARGS` (killed and failed past 20 s): exit code, stdout, stderr.
fn bench(args: &[&str]) -> (Option<i32>, String, String) {
    ringws(&[&["bench"], args].concat())
}

#[track_caller]
fn assert_mentions(text: &str, needles: &[&str]) {
    for needle in needles {
        assert!(text.contains(needle), "{needle:?} missing from: {text}");
    }
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
    let names_server = format!("the server at {url} does not echo");
    assert_mentions(&stderr, &[&names_server, "replies differ", "--app echo"]);
    assert!(!stdout.contains("echo_mismatch"), "{stdout}");
}

#[test]
fn bench_help_examples_use_the_server_default_port() {
    let (_, help, _) = bench(&["--help"]);
    assert!(help.contains("ws://127.0.0.1:9001/"), "{help}");
    assert!(!help.contains(":9000"), "{help}");
}

/// Runs `ringws ARGS` (killed and failed past 20 s): exit code, stdout, stderr.
fn ringws(args: &[&str]) -> (Option<i32>, String, String) {
    let mut command = Command::new(env!("CARGO_BIN_EXE_ringws"));
    command.args(args).env_remove("RUST_LOG");
    let out = output_within(&mut command, Duration::from_secs(20));
    let text = |bytes: &[u8]| String::from_utf8_lossy(bytes).into_owned();
    (out.status.code(), text(&out.stdout), text(&out.stderr))
}

#[test]
fn every_command_reads_durations_by_one_rule() {
    let server = ServerProcess::start(&["--app", "echo", "--cores", "1"]);
    let url = format!("ws://{}/", server.addr);
    for timeout in ["2", "2.5", "2s", "1500ms"] {
        let (code, stdout, stderr) = ringws(&["doctor", &url, "--timeout", timeout]);
        assert_eq!(
            code,
            Some(0),
            "doctor --timeout {timeout}: {stdout}{stderr}"
        );
    }
    let (code, stdout, stderr) = bench(&[
        "echo",
        "--url",
        &url,
        "--conns",
        "1",
        "--timeout",
        "2",
        "--warmup",
        "100ms",
        "--duration",
        "0.2",
    ]);
    assert_eq!(code, Some(0), "{stdout}{stderr}");
    let (code, stdout, _) = ringws(&[
        "serve",
        "--handshake-timeout",
        "2",
        "--drain-timeout",
        "1.5",
        "--print-config",
    ]);
    assert_eq!(code, Some(0));
    assert!(stdout.contains("handshake_timeout = \"2s\""), "{stdout}");
    assert!(stdout.contains("drain_timeout = \"1s 500ms\""), "{stdout}");
    for args in [
        &["doctor", url.as_str(), "--timeout", "soon"][..],
        &["bench", "echo", "--url", &url, "--timeout", "soon"],
        &["serve", "--close-timeout", "soon"],
    ] {
        let (code, _, stderr) = ringws(args);
        assert_eq!(code, Some(2), "{args:?}: {stderr}");
        assert!(
            stderr.contains("\"soon\" is not a duration"),
            "{args:?}: {stderr}"
        );
    }
}

#[test]
fn bench_fanout_takes_a_url_and_shows_live_progress_on_a_terminal() {
    let server = ServerProcess::start(&["--app", "pubsub", "--cores", "1"]);
    let admin = server.admin.expect("admin listener").to_string();
    let command = format!(
        "{} bench fanout --url ws://{}/ws --admin {admin} --subscribers 5 --publishes 3 --burst 3",
        env!("CARGO_BIN_EXE_ringws"),
        server.addr
    );
    // script(1) runs it on a terminal, where progress is shown (stdout and stderr both land in
    // script's stdout).
    let out = output_within(
        Command::new("script").args(["-qec", &command, "/dev/null"]),
        Duration::from_secs(30),
    );
    let shown = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(0), "{shown}");
    assert_mentions(
        &shown,
        &[
            "subscribers 1/5 connected",
            "latency: publish 1/3",
            "burst: 0/3",
            "fanout ringws: 5 subscribers",
            " µs",
            "errors (lost, duplicated, out of order, closed, invalid frames): 0",
        ],
    );
    assert!(!shown.contains(" us,"), "{shown}");
}

#[test]
fn json_flags_read_alike_and_name_fields_not_types() {
    for command in [
        &["bench", "echo", "--help"][..],
        &["bench", "idle", "--help"],
        &["bench", "connect", "--help"],
        &["bench", "fanout", "--help"],
        &["check", "--help"],
        &["doctor", "--help"],
    ] {
        let (_, help, _) = ringws(command);
        let json = help
            .split("--json")
            .nth(1)
            .unwrap_or_else(|| panic!("{command:?} has no --json: {help}"));
        let json: String = json
            .split("\n  -")
            .next()
            .unwrap()
            .split_whitespace()
            .collect::<Vec<_>>()
            .join(" ");
        assert!(
            json.starts_with("Print one JSON object on stdout instead of"),
            "{command:?}: {json}"
        );
        assert!(
            !json.contains("::") && !json.contains("Report"),
            "{command:?}: {json}"
        );
    }
}

#[test]
fn top_level_help_lists_every_bench_mode() {
    let (_, help, _) = ringws(&["--help"]);
    for mode in ["echo", "idle", "connect", "fanout"] {
        assert!(help.contains(mode), "{mode} missing from: {help}");
    }
}

/// The JSON corpus's ~1 KiB message (benches/json_corpus.py).
const JSON_1K: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/benches/corpus/json-1024.json");

/// `ringws bench echo --deflate` for one second on `conns` connections, then `more` flags.
fn echo_deflate(url: &str, conns: &str, more: &[&str]) -> (Option<i32>, String, String) {
    let args = [
        "echo",
        "--url",
        url,
        "--conns",
        conns,
        "--warmup",
        "0",
        "--duration",
        "1",
    ];
    bench(&[&args[..], &["--deflate"], more].concat())
}

#[test]
fn bench_echo_deflate_against_a_server_without_compression_says_so_and_fails() {
    let server = ServerProcess::start(&["--app", "echo", "--cores", "1", "--compression", "off"]);
    let url = format!("ws://{}/", server.addr);
    let (code, stdout, stderr) = echo_deflate(&url, "2", &[]);
    assert_eq!(code, Some(2), "{stdout}{stderr}");
    assert_mentions(
        &stderr,
        &[
            &format!("the server at {url} did not accept permessage-deflate"),
            "--compression on",
        ],
    );
}

#[test]
fn bench_echo_deflate_negotiates_and_round_trips_compressed_messages() {
    let server = ServerProcess::start(&["--app", "echo", "--cores", "1", "--compression", "on"]);
    let admin = server.admin.expect("admin listener");
    let url = format!("ws://{}/", server.addr);
    let (code, stdout, stderr) = echo_deflate(&url, "3", &["--text", "--payload-file", JSON_1K]);
    assert_eq!(code, Some(0), "{stdout}{stderr}");
    assert_mentions(
        &stdout,
        &[
            "deflate       negotiated on all 3 upgrades: permessage-deflate",
            "errors        none",
        ],
    );
    // Every echo was compared after inflating; the server inflated what the bench compressed
    // and compressed what it sent back.
    let received = metric_sum(admin, "ringws_deflate_received_compressed_bytes_total");
    let inflated = metric_sum(admin, "ringws_deflate_received_inflated_bytes_total");
    let sent = metric_sum(admin, "ringws_deflate_sent_compressed_bytes_total");
    assert!(received > 0.0 && sent > 0.0, "{received} {sent}");
    assert!(
        inflated > 2.0 * received,
        "JSON shrinks: {inflated} / {received}"
    );
    let (code, json, stderr) = echo_deflate(&url, "2", &["--payload-file", JSON_1K, "--json"]);
    assert_eq!(code, Some(0), "{json}{stderr}");
    let report: serde_json::Value = serde_json::from_str(&json).unwrap();
    assert_eq!(report["deflate_negotiated"], 2, "{json}");
    assert_eq!(report["payload_bytes"], 1024, "{json}");
    assert!(report["messages"].as_u64().unwrap() > 0, "{json}");
    assert_eq!(report["errors_total"], 0, "{json}");
}

#[test]
fn bench_fanout_deflate_requires_and_reads_compressed_messages() {
    let off = ServerProcess::start(&["--app", "pubsub", "--cores", "1"]);
    let fanout = |server: &ServerProcess| {
        let admin = server.admin.expect("admin listener").to_string();
        bench(&[
            "fanout",
            "--url",
            &format!("ws://{}/ws", server.addr),
            "--admin",
            &admin,
            "--subscribers",
            "4",
            "--publishes",
            "3",
            "--burst",
            "5",
            "--payload-file",
            JSON_1K,
            "--deflate",
        ])
    };
    let (code, stdout, stderr) = fanout(&off);
    assert_eq!(code, Some(2), "{stdout}{stderr}");
    assert_mentions(
        &stderr,
        &["did not accept permessage-deflate", "--compression on"],
    );
    let on = ServerProcess::start(&["--app", "pubsub", "--cores", "1", "--compression", "on"]);
    let (code, stdout, stderr) = fanout(&on);
    assert_eq!(code, Some(0), "{stdout}{stderr}");
    assert_mentions(
        &stdout,
        &[
            "1024 B payload",
            "deflate: permessage-deflate negotiated by all 4 subscribers",
            "the server's messages shrank",
            "errors (lost, duplicated, out of order, closed, invalid frames): 0",
        ],
    );
}
