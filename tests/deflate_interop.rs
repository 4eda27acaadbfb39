//! permessage-deflate with real clients: Python `websockets` and Node `ws`, compression on,
//! each negotiating the extension and getting a compressed ~2 KiB JSON message back intact
//! (headless Chromium is in tests/browser.rs). The server's deflate counters show both
//! directions were compressed. And ringws's client role against the same libraries as servers:
//! `ringws bench echo --deflate` negotiates with each and round-trips compressed messages
//! (websockets answers with window limits of its own, `client_max_window_bits=12`).
//!
//! Needs /usr/bin/python3 with `websockets` (Debian's python3-websockets) and node with `ws`
//! (Debian's node-ws, in /usr/share/nodejs); `bash .ci/test` installs both. Without them the
//! tests fail, unless RINGWS_SKIP_INTEROP_TESTS=1.

mod common;

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::time::Duration;

use common::{metric_sum, output_within, ServerProcess};

const PYTHON_CLIENT: &str = r#"
import asyncio, json, sys
from websockets.client import connect
async def main():
    msg = json.dumps({"items": [{"id": i, "text": "hello world %d" % i} for i in range(60)]})
    async with connect(sys.argv[1], compression="deflate") as ws:
        print(ws.response_headers.get("Sec-WebSocket-Extensions"))
        await ws.send(msg)
        print("echo-ok" if await ws.recv() == msg else "echo-differs")
asyncio.run(main())
"#;

const NODE_CLIENT: &str = r#"
const WebSocket = require('ws');
const ws = new WebSocket(process.argv[1], { perMessageDeflate: true });
const msg = JSON.stringify({ items: Array.from({ length: 60 }, (_, i) => ({ id: i, text: 'hello world ' + i })) });
ws.on('open', () => { console.log(ws.extensions); ws.send(msg); });
ws.on('message', (data) => { console.log(data.toString() === msg ? 'echo-ok' : 'echo-differs'); ws.close(1000); });
ws.on('error', (e) => { console.error(e.message); process.exit(1); });
"#;

/// Whether a client's tool is there; panics with install advice unless the run asked to skip.
fn have(what: &str, check: &mut Command) -> bool {
    if check.output().is_ok_and(|o| o.status.success()) {
        return true;
    }
    if std::env::var("RINGWS_SKIP_INTEROP_TESTS").as_deref() == Ok("1") {
        eprintln!("skipping: {what} not found and RINGWS_SKIP_INTEROP_TESTS=1");
        return false;
    }
    panic!("{what} not found: run `bash .ci/test` as root to install it, or set RINGWS_SKIP_INTEROP_TESTS=1");
}

/// Runs `client`, expects the negotiated extension and an intact echo, then the counters.
fn round_trip(client: &mut Command) {
    let server = ServerProcess::start(&["--compression", "on", "--compression-min-size", "100"]);
    let url = format!("ws://{}/", server.addr);
    let out = output_within(client.arg(&url), Duration::from_secs(20));
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stdout}\n{stderr}");
    let lines: Vec<&str> = stdout.lines().collect();
    assert!(lines[0].starts_with("permessage-deflate"), "{stdout}");
    assert_eq!(lines[1], "echo-ok", "{stdout}");
    let admin = server.admin.unwrap();
    let received = metric_sum(admin, "ringws_deflate_received_compressed_bytes_total");
    let inflated = metric_sum(admin, "ringws_deflate_received_inflated_bytes_total");
    let sent = metric_sum(admin, "ringws_deflate_sent_compressed_bytes_total");
    let plain = metric_sum(admin, "ringws_deflate_sent_uncompressed_bytes_total");
    assert!(
        received > 0.0 && inflated > 2.0 * received,
        "{received} {inflated}"
    );
    assert!(sent > 0.0 && plain > 2.0 * sent, "{sent} {plain}");
    server.stop();
}

#[test]
fn python_websockets_negotiates_deflate_and_round_trips_a_compressed_message() {
    let python = || Command::new("/usr/bin/python3");
    if !have(
        "python3 with websockets",
        python().args(["-c", "import websockets"]),
    ) {
        return;
    }
    round_trip(python().args(["-c", PYTHON_CLIENT]));
}

#[test]
fn node_ws_negotiates_deflate_and_round_trips_a_compressed_message() {
    let node = || {
        let mut command = Command::new("node");
        command.env("NODE_PATH", "/usr/share/nodejs");
        command
    };
    if !have("node with ws", node().args(["-e", "require('ws')"])) {
        return;
    }
    round_trip(node().args(["-e", NODE_CLIENT]));
}

const PYTHON_SERVER: &str = r#"
import asyncio
from websockets.server import serve
async def echo(ws, path=None):
    async for message in ws:
        await ws.send(message)
async def main():
    async with serve(echo, "127.0.0.1", 0, compression="deflate") as server:
        print(server.sockets[0].getsockname()[1], flush=True)
        await asyncio.Future()
asyncio.run(main())
"#;

const NODE_SERVER: &str = r#"
const { WebSocketServer } = require('ws');
const wss = new WebSocketServer({ host: '127.0.0.1', port: 0, perMessageDeflate: { threshold: 0 } });
wss.on('listening', () => console.log(wss.address().port));
wss.on('connection', (ws) => ws.on('message', (data, binary) => ws.send(data, { binary })));
"#;

/// Starts `server` (an echo server printing its port), runs `ringws bench echo --deflate`
/// against it with the corpus's 1 KiB JSON message, and expects deflate negotiated on every
/// connection and every echo intact (compared after inflating).
fn ringws_client_against(server: &mut Command) {
    let mut child = server
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("start the echo server");
    let mut line = String::new();
    BufReader::new(child.stdout.take().unwrap())
        .read_line(&mut line)
        .unwrap();
    let port: u16 = line
        .trim()
        .parse()
        .unwrap_or_else(|_| panic!("no port: {line:?}"));
    let message = concat!(env!("CARGO_MANIFEST_DIR"), "/benches/corpus/json-1024.json");
    let out = output_within(
        Command::new(env!("CARGO_BIN_EXE_ringws")).args([
            "bench",
            "echo",
            "--url",
            &format!("ws://127.0.0.1:{port}/"),
            "--conns",
            "2",
            "--warmup",
            "0",
            "--duration",
            "1",
            "--text",
            "--payload-file",
            message,
            "--deflate",
            "--json",
        ]),
        Duration::from_secs(20),
    );
    let _ = child.kill();
    let _ = child.wait();
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(0), "{stdout}\n{stderr}");
    let report: serde_json::Value = serde_json::from_str(&stdout).unwrap();
    assert_eq!(report["deflate_negotiated"], 2, "{stdout}");
    assert!(report["messages"].as_u64().unwrap() > 0, "{stdout}");
    assert_eq!(report["errors_total"], 0, "{stdout}");
}

#[test]
fn ringws_client_negotiates_deflate_with_python_websockets() {
    let python = || Command::new("/usr/bin/python3");
    if !have(
        "python3 with websockets",
        python().args(["-c", "import websockets"]),
    ) {
        return;
    }
    ringws_client_against(python().args(["-c", PYTHON_SERVER]));
}

#[test]
fn ringws_client_negotiates_deflate_with_node_ws() {
    let mut node = Command::new("node");
    node.env("NODE_PATH", "/usr/share/nodejs");
    if !have(
        "node with ws",
        Command::new("node")
            .env("NODE_PATH", "/usr/share/nodejs")
            .args(["-e", "require('ws')"]),
    ) {
        return;
    }
    ringws_client_against(node.args(["-e", NODE_SERVER]));
}
