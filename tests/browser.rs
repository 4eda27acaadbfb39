//! A real browser against ringws: headless Chromium loads a page from an allowed origin, which
//! opens a WebSocket, and from a disallowed one, which is refused with 403. Chromium offers
//! permessage-deflate on every WebSocket, so the allowed case also shows that declining the
//! extension works with a browser, and `?token=` shows the browser form of authentication.
//! Over wss:// it gets the echo from a certificate made at test time (`openssl`), accepted by its
//! key's hash, and is refused without it.
//!
//! Needs Debian's chromium at /usr/bin/chromium (`apt-get install -y chromium`); without it the
//! test fails, unless RINGWS_SKIP_BROWSER_TESTS=1.

mod common;

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::os::unix::process::CommandExt as _;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use common::pki::Pki;
use common::proxy::Scratch;
use common::{admin_get, metric_labelled, metric_sum, wait_metric, ServerProcess};

const CHROMIUM: &str = "/usr/bin/chromium";
/// Longest one Chromium run may take before it is killed.
const CHROMIUM_LIMIT: Duration = Duration::from_secs(30);

/// The page: opens `ws` (from its own query string) offering `chat.v1`, sends "hi", and shows
/// the outcome in the title: `echo:<message>|<protocol>|<extensions>`, or `closed:<code>`; then
/// reports the title to its server (`GET /report?<title>`).
const PAGE: &str = r#"<!DOCTYPE html>
<html><head><meta charset="utf-8"><title>pending</title></head><body><script>
const url = new URL(location.href).searchParams.get("ws");
const ws = new WebSocket(url, ["chat.v1"]);
ws.onopen = () => ws.send("hi");
ws.onmessage = (e) => {
  document.title = "echo:" + e.data + "|" + ws.protocol + "|" + ws.extensions;
  ws.close(1000);
};
ws.onclose = (e) => {
  if (!document.title.startsWith("echo:")) document.title = "closed:" + e.code;
  fetch("/report?" + encodeURIComponent(document.title));
};
</script></body></html>
"#;

/// The compression page: sends a ~1.7 KB JSON message (compressible, over the server's
/// compression_min_size) and shows `echo:<intact>|<extensions>`, or `closed:<code>`; then reports
/// the title like [`PAGE`].
const DEFLATE_PAGE: &str = r#"<!DOCTYPE html>
<html><head><meta charset="utf-8"><title>pending</title></head><body><script>
const url = new URL(location.href).searchParams.get("ws");
const ws = new WebSocket(url);
const msg = JSON.stringify(Array.from({length: 60}, (_, i) => ({id: i, text: "hello " + i})));
ws.onopen = () => ws.send(msg);
ws.onmessage = (e) => {
  document.title = "echo:" + (e.data === msg) + "|" + ws.extensions;
  ws.close(1000);
};
ws.onclose = (e) => {
  if (!document.title.startsWith("echo:")) document.title = "closed:" + e.code;
  fetch("/report?" + encodeURIComponent(document.title));
};
</script></body></html>
"#;

/// /usr/bin/chromium, or None when the run asked to skip; panics with install advice otherwise.
fn chromium() -> Option<&'static Path> {
    let path = Path::new(CHROMIUM);
    if path.is_file() {
        return Some(path);
    }
    if std::env::var("RINGWS_SKIP_BROWSER_TESTS").as_deref() == Ok("1") {
        eprintln!("skipping the browser test: RINGWS_SKIP_BROWSER_TESTS=1");
        return None;
    }
    panic!(
        "{CHROMIUM} not found: install it with `apt-get install -y chromium` to run the browser \
         test, or set RINGWS_SKIP_BROWSER_TESTS=1 to skip it"
    );
}

/// A tiny HTTP server on 127.0.0.1 that answers `/page` with [`PAGE`] and passes the titles
/// pages report to the receiver; the thread ends with the test process.
fn page_server() -> (SocketAddr, mpsc::Receiver<String>) {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    let (reports, received) = mpsc::channel();
    std::thread::spawn(move || {
        for stream in listener.incoming().map_while(Result::ok) {
            let reports = reports.clone();
            std::thread::spawn(move || serve_page(stream, reports));
        }
    });
    (addr, received)
}

fn serve_page(mut stream: TcpStream, reports: mpsc::Sender<String>) {
    let _ = stream.set_read_timeout(Some(Duration::from_secs(5)));
    let mut head = Vec::new();
    let mut chunk = [0u8; 1024];
    while !head.windows(4).any(|w| w == b"\r\n\r\n") {
        match stream.read(&mut chunk) {
            Ok(0) | Err(_) => return,
            Ok(n) => head.extend_from_slice(&chunk[..n]),
        }
    }
    if let Some(rest) = head.strip_prefix(b"GET /report?") {
        let end = rest.iter().position(|&b| b == b' ').unwrap_or(rest.len());
        let _ = reports.send(decode(&rest[..end]));
    }
    let (status, body) = if head.starts_with(b"GET /page") {
        ("200 OK", PAGE)
    } else if head.starts_with(b"GET /deflate") {
        ("200 OK", DEFLATE_PAGE)
    } else {
        ("404 Not Found", "")
    };
    let answer = format!(
        "HTTP/1.1 {status}\r\nContent-Type: text/html; charset=utf-8\r\nContent-Length: {}\r\n\
         Cache-Control: no-store\r\nConnection: close\r\n\r\n{body}",
        body.len()
    );
    let _ = stream.write_all(answer.as_bytes());
}

/// Percent-decodes what `encodeURIComponent` encoded.
fn decode(text: &[u8]) -> String {
    let mut bytes = Vec::new();
    let mut i = 0;
    while i < text.len() {
        let hex = text
            .get(i + 1..i + 3)
            .and_then(|h| std::str::from_utf8(h).ok());
        match hex.and_then(|h| u8::from_str_radix(h, 16).ok()) {
            Some(b) if text[i] == b'%' => {
                bytes.push(b);
                i += 3;
            }
            _ => {
                bytes.push(text[i]);
                i += 1;
            }
        }
    }
    String::from_utf8_lossy(&bytes).into_owned()
}

/// Percent-encodes a URL for use as a query parameter value.
fn encode(text: &str) -> String {
    text.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'.' | b'_' | b'~' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}

/// [`title_of`], loading the page again (at most 3 times) while it still says "pending":
/// `--dump-dom` may dump before the WebSocket's outcome arrives, since the handshake runs on real
/// network time while the page runs on virtual time. Returns the title and the number of loads;
/// each load makes exactly one handshake.
fn settled_title_of(
    chromium: &Path,
    scratch: &Scratch,
    run: &str,
    page: SocketAddr,
    ws_url: &str,
) -> (String, u64) {
    let mut loads = 0;
    loop {
        loads += 1;
        let title = title_of(chromium, scratch, &format!("{run}-{loads}"), page, ws_url);
        if title != "pending" || loads == 3 {
            return (title, loads);
        }
    }
}

/// Starts headless Chromium on `http://<page>/page?ws=<ws_url>` with a profile of its own,
/// `flags` besides the usual ones, in a process group of its own (so the browser and its helpers
/// are killed together), stdout and stderr piped.
fn launch(
    chromium: &Path,
    scratch: &Scratch,
    run: &str,
    page: SocketAddr,
    ws_url: &str,
    flags: &[&str],
) -> (Child, String) {
    let profile = scratch.0.join(run);
    // A run named `deflate...` loads the compression page.
    let path = if run.starts_with("deflate") {
        "deflate"
    } else {
        "page"
    };
    let url = format!("http://{page}/{path}?ws={}", encode(ws_url));
    let child = Command::new(chromium)
        .args([
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-quic",
            "--no-first-run",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            "--disable-dev-shm-usage",
        ])
        .arg(format!("--user-data-dir={}", profile.display()))
        .args(flags)
        .arg(&url)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .process_group(0)
        .spawn()
        .unwrap_or_else(|e| panic!("cannot start {}: {e}", chromium.display()));
    (child, url)
}

/// Loads `http://<page>/page?ws=<ws_url>` in headless Chromium and returns the page title
/// once the page settled.
fn title_of(
    chromium: &Path,
    scratch: &Scratch,
    run: &str,
    page: SocketAddr,
    ws_url: &str,
) -> String {
    let dump = ["--dump-dom", "--virtual-time-budget=5000"];
    let (mut child, url) = launch(chromium, scratch, run, page, ws_url, &dump);
    let mut stdout = child.stdout.take().unwrap();
    let mut stderr = child.stderr.take().unwrap();
    let out = std::thread::spawn(move || {
        let mut text = String::new();
        let _ = stdout.read_to_string(&mut text);
        text
    });
    let err = std::thread::spawn(move || {
        let mut text = String::new();
        let _ = stderr.read_to_string(&mut text);
        text
    });
    let started = Instant::now();
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break Some(status);
        }
        if started.elapsed() > CHROMIUM_LIMIT {
            // SAFETY: kill(2) on the process group of our own child.
            unsafe { libc::kill(-(child.id() as i32), libc::SIGKILL) };
            let _ = child.wait();
            break None;
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    let dom = out.join().unwrap();
    let log = err.join().unwrap();
    // Helpers left behind by the browser, if any.
    // SAFETY: as above; the group is ours and may already be empty.
    unsafe { libc::kill(-(child.id() as i32), libc::SIGKILL) };
    let status = status.unwrap_or_else(|| {
        panic!("chromium ran longer than {CHROMIUM_LIMIT:?} on {url} and was killed:\n{log}")
    });
    let title = dom
        .split_once("<title>")
        .and_then(|(_, rest)| rest.split_once("</title>"))
        .map(|(title, _)| title.to_owned());
    title.unwrap_or_else(|| {
        panic!("no <title> in chromium's DOM of {url} ({status}):\n{dom}\nstderr:\n{log}")
    })
}

/// The sum over cores of `ringws_handshakes_refused_total{reason="<reason>"}`.
fn refused(admin: SocketAddr, reason: &str) -> u64 {
    let label = format!("reason=\"{reason}\"");
    metric_labelled(admin, "ringws_handshakes_refused_total", &label) as u64
}

#[test]
fn chromium_connects_from_an_allowed_origin_and_is_refused_from_another() {
    let Some(chromium) = chromium() else {
        return;
    };
    let scratch = Scratch::new("profiles");
    let tokens = scratch.0.join("tokens.txt");
    std::fs::write(&tokens, "browser:tok-browser-0123456789\n").unwrap();

    let (allowed, _) = page_server();
    let (other, _) = page_server();
    let allowed_origin = format!("http://{allowed}");
    let server = ServerProcess::start(&[
        "--allowed-origins",
        &allowed_origin,
        "--subprotocols",
        "chat.v1",
        "--auth",
        "token",
        "--auth-tokens-file",
        tokens.to_str().unwrap(),
        "--debug-handshakes",
        "on",
    ]);
    let admin = server.admin.unwrap();
    let ws_url = format!("ws://{}/?token=tok-browser-0123456789", server.addr);

    // Allowed origin, valid token: the echo comes back with the offered subprotocol and no
    // extension (Chromium offered permessage-deflate; ringws declined it).
    let (title, _) = settled_title_of(chromium, &scratch, "allowed", allowed, &ws_url);
    assert_eq!(title, "echo:hi|chat.v1|", "the page on {allowed_origin}");

    // Another origin (another port is another origin): refused with 403 before the upgrade.
    let (title, origin_loads) = settled_title_of(chromium, &scratch, "other", other, &ws_url);
    assert_eq!(title, "closed:1006", "the page on http://{other}");
    assert_eq!(refused(admin, "origin_not_allowed"), origin_loads);

    // The allowed origin with a wrong token: 401.
    let wrong = format!("ws://{}/?token=tok-wrong", server.addr);
    let (title, token_loads) = settled_title_of(chromium, &scratch, "wrong-token", allowed, &wrong);
    assert_eq!(title, "closed:1006");
    assert_eq!(refused(admin, "unauthorized"), token_loads);

    // The debug view shows what the browser sent for each refusal.
    let (status, body) = admin_get(admin, "/debug/handshakes");
    assert_eq!(status, 200, "{body}");
    assert!(!body.contains("tok-"), "no token in the debug view: {body}");
    let view: serde_json::Value = serde_json::from_str(&body).unwrap();
    let refusals = view["refusals"].as_array().unwrap();
    assert_eq!(
        refusals.len() as u64,
        origin_loads + token_loads,
        "{view:#}"
    );
    let by_reason = |reason: &str| {
        refusals
            .iter()
            .find(|r| r["reason"] == reason)
            .unwrap_or_else(|| panic!("no {reason} record: {view:#}"))
    };
    let origin = by_reason("origin_not_allowed");
    assert_eq!(origin["origin"], format!("http://{other}"));
    assert_eq!(origin["status"], 403);
    assert_eq!(origin["protocols"], "chat.v1");
    assert!(
        origin["user_agent"]
            .as_str()
            .is_some_and(|ua| ua.contains("HeadlessChrome")),
        "{origin:#}"
    );
    let auth = by_reason("unauthorized");
    assert_eq!(auth["origin"], allowed_origin);
    assert_eq!(auth["status"], 401);
    assert_eq!(auth["credentials"], "query_token");
}

/// Loads the page in headless Chromium, on real time (no virtual time: a TLS handshake takes
/// longer than a page that waits for nothing), and returns the title the page reports to
/// `reports`; Chromium is killed then, or after [`CHROMIUM_LIMIT`] with the test failing.
fn reported_title(
    chromium: &Path,
    scratch: &Scratch,
    run: &str,
    (page, reports): (SocketAddr, &mpsc::Receiver<String>),
    ws_url: &str,
    flags: &[&str],
) -> String {
    let (mut child, url) = launch(chromium, scratch, run, page, ws_url, flags);
    let report = reports.recv_timeout(CHROMIUM_LIMIT);
    // SAFETY: kill(2) on the process group of our own child.
    unsafe { libc::kill(-(child.id() as i32), libc::SIGKILL) };
    let _ = child.wait();
    let mut log = String::new();
    let _ = child.stderr.take().unwrap().read_to_string(&mut log);
    report.unwrap_or_else(|_| {
        panic!("the page {url} reported nothing within {CHROMIUM_LIMIT:?}; chromium:\n{log}")
    })
}

/// Chromium opens `wss://` to the TLS listener and gets its echo. The test CA is not in
/// Chromium's store, so the server's key is accepted by its SPKI hash, as a pinned key would be;
/// without the pin the same page is refused.
#[test]
fn chromium_opens_wss_and_gets_the_echo() {
    let Some(chromium) = chromium() else {
        return;
    };
    let scratch = Scratch::new("wss-profiles");
    let pki = Pki::with_server("browser");
    let mut args: Vec<&str> = vec!["--subprotocols", "chat.v1"];
    let flags = pki.serve_flags("server");
    args.extend(flags.iter().map(String::as_str));
    let server = ServerProcess::start(&args);
    let admin = server.admin.unwrap();
    let (page, reports) = page_server();
    let wss_url = format!("wss://localhost:{}/", server.tls.unwrap().port());
    let pin = format!(
        "--ignore-certificate-errors-spki-list={}",
        pki.spki_sha256("server")
    );
    let title = reported_title(
        chromium,
        &scratch,
        "wss",
        (page, &reports),
        &wss_url,
        &[&pin],
    );
    assert_eq!(title, "echo:hi|chat.v1|", "{wss_url} from http://{page}");
    assert_eq!(metric_sum(admin, "ringws_tls_handshakes_total"), 1.0);

    // Without the pin Chromium refuses the certificate and tells the server so.
    let title = reported_title(
        chromium,
        &scratch,
        "no-pin",
        (page, &reports),
        &wss_url,
        &[],
    );
    assert_eq!(title, "closed:1006");
    let rejected = "reason=\"certificate_rejected\"";
    wait_metric(admin, "ringws_tls_handshake_failures_total", rejected, 1.0);
}

/// Chromium offers permessage-deflate; with compression on, ringws accepts it, and a
/// compressible message goes both ways compressed and comes back intact.
#[test]
fn chromium_negotiates_deflate_and_a_compressed_message_round_trips() {
    let Some(chromium) = chromium() else {
        return;
    };
    let scratch = Scratch::new("deflate-profiles");
    let server = ServerProcess::start(&["--compression", "on", "--compression-min-size", "100"]);
    let ws_url = format!("ws://{}/", server.addr);
    let (page, reports) = page_server();
    let title = reported_title(
        chromium,
        &scratch,
        "deflate",
        (page, &reports),
        &ws_url,
        &[],
    );
    assert_eq!(
        title,
        "echo:true|permessage-deflate; server_no_context_takeover; client_no_context_takeover"
    );
    let admin = server.admin.unwrap();
    let inflated = metric_sum(admin, "ringws_deflate_received_inflated_bytes_total");
    let sent = metric_sum(admin, "ringws_deflate_sent_compressed_bytes_total");
    assert!(inflated > 1000.0 && sent > 0.0, "{inflated} {sent}");
    server.stop();
}
