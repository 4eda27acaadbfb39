//! wss:// end to end: the real binary with `--tls-listen`, certificates made at test time by
//! the `openssl` command line (tests/common/pki.rs), and real clients: Python's `websockets`,
//! `openssl s_client`, Node's `ws` and rustls's client. Each failure class of a handshake is
//! checked twice: what the client sees, and the reason ringws counts in
//! `ringws_tls_handshake_failures_total`. SIGHUP reloads and start-up errors too.
//!
//! Needs `openssl`, `/usr/bin/python3` with `websockets` (Debian's `python3-websockets`) and
//! `npm` (Node's `ws` is installed under target/ on first use); `bash .ci/test` installs them.
//! Headless Chromium over wss is in tests/browser.rs.

mod common;

use std::net::SocketAddr;
use std::path::Path;
use std::process::Command;
use std::time::Duration;

use common::pki::{Pki, Role, Validity};
use common::wss::{client_config, peer_leaf, round_trip, wss_connect};
use common::{
    closed_by_server, connect, exchange, metric_labelled, metric_sum, output_within, refused_start,
    upgrade_request, wait_metric, ServerProcess,
};

const FAILURES: &str = "ringws_tls_handshake_failures_total";
const HANDSHAKES: &str = "ringws_tls_handshakes_total";
const RELOADS: &str = "ringws_tls_reloads_total";
const EXPIRY: &str = "ringws_tls_certificate_expiry_timestamp_seconds";

/// `ringws serve --app echo --cores 1` with a wss listener serving `<cert>.pem`/`<cert>.key`
/// of `pki`, and `extra` flags.
fn serve(pki: &Pki, cert: &str, extra: &[&str]) -> ServerProcess {
    let flags = pki.serve_flags(cert);
    let mut args = vec!["--cores", "1"];
    args.extend(flags.iter().map(String::as_str));
    args.extend_from_slice(extra);
    let server = ServerProcess::start(&args);
    assert!(server.tls.is_some(), "no `ringws listening on wss://` line");
    server
}

/// Waits for exactly one failure with `reason`, none with any other and no handshake.
#[track_caller]
fn assert_one_failure(server: &ServerProcess, reason: &str) {
    assert_failures(server, reason, 1.0, 0.0);
}

/// Waits for `expected` failures with `reason`; no other failure and `handshakes` handshakes.
#[track_caller]
fn assert_failures(server: &ServerProcess, reason: &str, expected: f64, handshakes: f64) {
    let admin = server.admin.unwrap();
    wait_metric(admin, FAILURES, &format!("reason=\"{reason}\""), expected);
    assert_eq!(
        metric_sum(admin, FAILURES),
        expected,
        "another reason counted too"
    );
    assert_eq!(metric_sum(admin, HANDSHAKES), handshakes);
}

// ---------------------------------------------------------------------------------------------
// Python `websockets`

/// Connects with Python's `websockets` (Debian's, at /usr/bin/python3: a pyenv python3 may
/// lack it) to `url` (over TLS trusting the CA file `ca`, with the client certificate and key
/// that follow when given), sends text, binary and a 1 MiB binary message, and prints what came
/// back.
const PY_ECHO: &str = r#"
import asyncio, ssl, sys, websockets
url, ca = sys.argv[1], sys.argv[2]
ctx = None
if url.startswith("wss:"):
    ctx = ssl.create_default_context(cafile=ca)
    if len(sys.argv) > 3:
        ctx.load_cert_chain(sys.argv[3], sys.argv[4])
async def main():
    ws = await asyncio.wait_for(websockets.connect(url, ssl=ctx, max_size=None), 10)
    if ctx:
        print("tls", ws.transport.get_extra_info("ssl_object").version())
    big = bytes(range(256)) * 4096
    for message in ["hello over wss", b"\x00\x01\x02\xff", big]:
        await ws.send(message)
        got = await asyncio.wait_for(ws.recv(), 10)
        kind = "text" if isinstance(got, str) else "binary"
        print("echo", kind, len(got), got == message)
    await ws.close()
    print("closed", ws.close_code)
asyncio.run(main())
"#;

/// A TLS client from Python's `ssl` module, which (unlike asyncio's) sends its alert when it
/// refuses the server: handshakes with 127.0.0.1:PORT as `localhost` trusting the CA file (or
/// the system's CAs for `-`), with the client certificate and key that follow when given, then
/// sends an upgrade request. Prints `tls <version>` and the answer's status line, or
/// `refused <error>`.
const PY_HANDSHAKE: &str = r#"
import socket, ssl, sys
port, ca = int(sys.argv[1]), sys.argv[2]
ctx = ssl.create_default_context(cafile=None if ca == "-" else ca)
if len(sys.argv) > 3:
    ctx.load_cert_chain(sys.argv[3], sys.argv[4])
sock = socket.create_connection(("127.0.0.1", port), timeout=10)
try:
    tls = ctx.wrap_socket(sock, server_hostname="localhost")
    print("tls", tls.version())
    tls.sendall(b"GET / HTTP/1.1\r\nHost: localhost\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
                b"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n")
    print("answer", tls.recv(4096).split(b"\r\n")[0].decode())
except (ssl.SSLError, OSError) as e:
    print("refused", type(e).__name__, e)
"#;

/// Runs a Python script from /usr/bin/python3 with `args`; returns its stdout.
fn python(script: &str, args: &[&std::ffi::OsStr]) -> String {
    let mut command = Command::new("/usr/bin/python3");
    command.args(["-c", script]).args(args);
    let out = output_within(&mut command, Duration::from_secs(30));
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        out.status.success(),
        "the python client failed (needs /usr/bin/python3 with websockets: \
         apt-get install -y python3-websockets): {stdout}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    stdout
}

/// Runs [`PY_ECHO`] against `url`.
fn python_echo(url: &str, ca: &Path, identity: Option<(&Path, &Path)>) -> String {
    let mut args = vec![url.as_ref(), ca.as_os_str()];
    if let Some((cert, key)) = identity {
        args.extend([cert.as_os_str(), key.as_os_str()]);
    }
    python(PY_ECHO, &args)
}

/// Runs [`PY_HANDSHAKE`] against the server's wss port; `ca` `None` trusts the system's CAs.
fn python_handshake(
    server: &ServerProcess,
    ca: Option<&Path>,
    identity: Option<(&Path, &Path)>,
) -> String {
    let port = server.tls.unwrap().port().to_string();
    let mut args = vec![port.as_ref(), ca.map_or("-".as_ref(), |p| p.as_os_str())];
    if let Some((cert, key)) = identity {
        args.extend([cert.as_os_str(), key.as_os_str()]);
    }
    python(PY_HANDSHAKE, &args)
}

/// What [`PY_ECHO`] and [`NODE_ECHO`] print when all three messages came back unchanged over
/// TLS 1.3.
const ECHOED: &str = "tls TLSv1.3\necho text 14 True\necho binary 4 True\n\
                         echo binary 1048576 True\nclosed 1000\n";

fn wss_url(server: &ServerProcess, host: &str) -> String {
    format!("wss://{host}:{}/", server.tls.unwrap().port())
}

#[test]
fn python_websockets_echoes_text_binary_and_a_mebibyte_over_wss() {
    let pki = Pki::with_server("python");
    let server = serve(&pki, "server", &[]);
    for host in ["localhost", "127.0.0.1"] {
        let out = python_echo(&wss_url(&server, host), &pki.cert("ca"), None);
        assert_eq!(out, ECHOED, "to {host}");
    }
    let admin = server.admin.unwrap();
    wait_metric(admin, HANDSHAKES, "core=", 2.0);
    assert_eq!(metric_sum(admin, FAILURES), 0.0);
    // The plain listener still speaks ws:// beside it.
    let ws = python_echo(&format!("ws://{}/", server.addr), Path::new("-"), None);
    assert!(ws.contains("echo binary 1048576 True"), "{ws}");
}

#[test]
fn a_client_that_does_not_trust_the_certificate_counts_as_certificate_rejected() {
    let pki = Pki::with_server("distrust");
    let server = serve(&pki, "server", &[]);
    // The system's CAs only: the test CA is not among them.
    let out = python_handshake(&server, None, None);
    assert!(
        out.starts_with("refused SSLCertVerificationError")
            && out.contains("unable to get local issuer certificate"),
        "{out}"
    );
    assert_one_failure(&server, "certificate_rejected");
}

/// Python's asyncio refuses the certificate without sending an alert: it hangs up.
const PY_ASYNCIO_DISTRUST: &str = r#"
import asyncio, sys, websockets
async def main():
    try:
        await asyncio.wait_for(websockets.connect(sys.argv[1]), 10)
        print("connected")
    except Exception as e:
        print("refused", type(e).__name__, e)
asyncio.run(main())
"#;

#[test]
fn a_client_that_hangs_up_mid_handshake_counts_as_client_closed() {
    let pki = Pki::with_server("hang-up");
    let server = serve(&pki, "server", &[]);
    // A TCP probe (connect, then close with nothing sent) is no failed handshake.
    drop(connect(server.tls.unwrap()));
    let url = wss_url(&server, "localhost");
    let out = python(PY_ASYNCIO_DISTRUST, &[url.as_ref()]);
    assert!(out.starts_with("refused SSLCertVerificationError"), "{out}");
    assert_one_failure(&server, "client_closed");
}

#[test]
fn the_chain_in_tls_cert_reaches_clients_that_trust_only_the_root() {
    let pki = Pki::new("chain");
    pki.root_ca("root", "ringws test root");
    pki.issue(
        "intermediate",
        "ringws test intermediate",
        "root",
        Role::Ca,
        0x2001,
        Validity::Days(30),
    );
    pki.issue(
        "leaf",
        "ringws chained server",
        "intermediate",
        Role::Server,
        0x2002,
        Validity::Days(30),
    );
    pki.concat("chain.pem", &["leaf.pem", "intermediate.pem"]);
    std::fs::copy(pki.key("leaf"), pki.key("chain")).unwrap();

    let server = serve(&pki, "chain", &[]);
    let out = python_echo(&wss_url(&server, "localhost"), &pki.cert("root"), None);
    assert_eq!(out, ECHOED);
    let s_client = s_client(server.tls.unwrap(), &pki.cert("root"), &["-showcerts"]);
    assert!(
        s_client.contains("Verify return code: 0 (ok)"),
        "{s_client}"
    );
    assert!(
        s_client.contains("1 s:CN = ringws test intermediate"),
        "{s_client}"
    );
    drop(server);

    // The leaf alone: the root cannot vouch for it, and the client says so.
    let server = serve(&pki, "leaf", &[]);
    let out = python_handshake(&server, Some(&pki.cert("root")), None);
    assert!(out.starts_with("refused SSLCertVerificationError"), "{out}");
    assert_one_failure(&server, "certificate_rejected");
}

#[test]
fn an_expired_certificate_is_refused_by_clients_and_its_end_is_the_gauge() {
    let pki = Pki::with_server("expired");
    pki.issue(
        "expired",
        "ringws expired server",
        "ca",
        Role::Server,
        0x3001,
        Validity::Between("20200101000000Z", "20200201000000Z"),
    );
    let server = serve(&pki, "expired", &[]);
    assert_eq!(
        metric_sum(server.admin.unwrap(), EXPIRY),
        1_580_515_200.0,
        "2020-02-01T00:00:00Z"
    );
    let out = python_handshake(&server, Some(&pki.cert("ca")), None);
    assert!(
        out.starts_with("refused SSLCertVerificationError") && out.contains("expired"),
        "{out}"
    );
    assert_one_failure(&server, "certificate_rejected");
    let (_, log) = server.stop();
    assert!(
        log.contains("expired on 2020-02-01"),
        "no expiry warning at start: {log}"
    );
}

// ---------------------------------------------------------------------------------------------
// Node `ws`

/// Where `npm` installs `ws` for these tests (once; later runs reuse it).
fn node_ws_dir() -> std::path::PathBuf {
    Path::new(env!("CARGO_TARGET_TMPDIR")).join("node-ws")
}

/// The `ws` package's directory, installed with npm on first use; `None` (the test skips, and
/// says why) when npm is not installed.
fn node_ws() -> Option<std::path::PathBuf> {
    let dir = node_ws_dir();
    let module = dir.join("node_modules").join("ws");
    if module.join("package.json").is_file() {
        return Some(module);
    }
    if Command::new("npm").arg("--version").output().is_err() {
        eprintln!(
            "skipping the Node ws client: npm is not installed (`apt-get install -y npm`, or run \
             `bash .ci/test` as root)"
        );
        return None;
    }
    std::fs::create_dir_all(&dir).unwrap();
    let mut npm = Command::new("npm");
    npm.args(["install", "--no-audit", "--no-fund", "--prefix"])
        .arg(&dir)
        .arg("ws@8");
    let out = output_within(&mut npm, Duration::from_secs(180));
    assert!(
        out.status.success() && module.is_dir(),
        "npm install ws@8 into {} failed: {}",
        dir.display(),
        String::from_utf8_lossy(&out.stderr)
    );
    Some(module)
}

/// Node's `ws` client: connects to `url` trusting the CA file, sends text, binary and a 1 MiB
/// binary message, and prints what came back (the same lines as [`PY_ECHO`]).
const NODE_ECHO: &str = r#"
const [wsModule, url, ca] = process.argv.slice(1);
const WebSocket = require(wsModule);
const ws = new WebSocket(url, { ca: require("fs").readFileSync(ca) });
const messages = ["hello over wss", Buffer.from([0, 1, 2, 255]),
                  Buffer.from(Array.from({ length: 1 << 20 }, (_, i) => i % 256))];
let i = 0;
ws.on("open", () => {
  console.log("tls", ws._socket.getProtocol());
  ws.send(messages[0]);
});
ws.on("message", (data, isBinary) => {
  const sent = messages[i];
  const same = isBinary ? Buffer.isBuffer(sent) && data.equals(sent) : data.toString() === sent;
  console.log("echo", isBinary ? "binary" : "text", data.length, same ? "True" : "False");
  i += 1;
  if (i < messages.length) ws.send(messages[i]); else ws.close(1000);
});
ws.on("close", (code) => console.log("closed", code));
ws.on("error", (e) => { console.log("error", e.message); process.exitCode = 1; });
"#;

#[test]
fn node_ws_echoes_text_binary_and_a_mebibyte_over_wss() {
    let Some(module) = node_ws() else {
        return;
    };
    let pki = Pki::with_server("node");
    let server = serve(&pki, "server", &[]);
    let mut node = Command::new("node");
    node.args(["-e", NODE_ECHO])
        .arg(&module)
        .arg(wss_url(&server, "localhost"))
        .arg(pki.cert("ca"));
    let out = output_within(&mut node, Duration::from_secs(30));
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(stdout, ECHOED);
    wait_metric(server.admin.unwrap(), HANDSHAKES, "core=", 1.0);
}

// ---------------------------------------------------------------------------------------------
// openssl s_client

/// `openssl s_client` to `addr` as `localhost`, trusting `ca`, with `extra` flags and nothing on
/// its stdin (it handshakes, then quits); returns stdout and stderr together.
fn s_client(addr: SocketAddr, ca: &Path, extra: &[&str]) -> String {
    let mut command = Command::new("openssl");
    command
        .args(["s_client", "-connect", &addr.to_string()])
        .args(["-servername", "localhost", "-CAfile"])
        .arg(ca)
        .args(extra)
        .stdin(std::process::Stdio::null());
    let out = output_within(&mut command, Duration::from_secs(10));
    format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

#[test]
fn openssl_s_client_negotiates_tls13_and_alpn_http11() {
    let pki = Pki::with_server("s-client");
    let server = serve(&pki, "server", &[]);
    let out = s_client(
        server.tls.unwrap(),
        &pki.cert("ca"),
        &["-alpn", "h2,http/1.1"],
    );
    assert!(out.contains("Verify return code: 0 (ok)"), "{out}");
    assert!(out.contains("New, TLSv1.3, Cipher is"), "{out}");
    assert!(out.contains("ALPN protocol: http/1.1"), "{out}");
    assert!(out.contains("0 s:CN = ringws test server"), "{out}");
    // TLS 1.2 is served too.
    let out = s_client(server.tls.unwrap(), &pki.cert("ca"), &["-tls1_2"]);
    assert!(out.contains("New, TLSv1.2, Cipher is ECDHE-"), "{out}");
    wait_metric(server.admin.unwrap(), HANDSHAKES, "core=", 2.0);
}

#[test]
fn a_tls11_only_client_is_refused_as_no_common_version() {
    let pki = Pki::with_server("tls11");
    let server = serve(&pki, "server", &[]);
    // SECLEVEL=0: OpenSSL 3 refuses to offer TLS 1.1 at all otherwise.
    let out = s_client(
        server.tls.unwrap(),
        &pki.cert("ca"),
        &["-tls1_1", "-cipher", "DEFAULT@SECLEVEL=0"],
    );
    // rustls answers a version it does not speak with a handshake_failure alert (40).
    assert!(
        out.contains("SSL alert number 40") && out.contains("Cipher is (NONE)"),
        "{out}"
    );
    assert_one_failure(&server, "no_common_version");
}

#[test]
fn an_h2_only_client_is_refused_as_no_common_alpn() {
    let pki = Pki::with_server("alpn");
    let server = serve(&pki, "server", &[]);
    let out = s_client(server.tls.unwrap(), &pki.cert("ca"), &["-alpn", "h2"]);
    assert!(out.contains("alert no application protocol"), "{out}");
    assert_one_failure(&server, "no_common_alpn");
}

// ---------------------------------------------------------------------------------------------
// Plain HTTP, silence

#[test]
fn plain_http_to_the_tls_port_gets_400_naming_wss() {
    let pki = Pki::with_server("plain");
    let server = serve(&pki, "server", &[]);
    let answer = exchange(server.tls.unwrap(), upgrade_request("/").as_bytes());
    assert_eq!(answer.status, 400, "{}", answer.head);
    assert!(
        answer.body.contains("connect with wss://"),
        "{}",
        answer.body
    );
    assert_one_failure(&server, "plain_http");
}

#[test]
fn a_silent_client_meets_the_handshake_timeout() {
    let pki = Pki::with_server("silent");
    let server = serve(&pki, "server", &["--handshake-timeout", "300ms"]);
    let mut silent = connect(server.tls.unwrap());
    let started = std::time::Instant::now();
    assert!(closed_by_server(&mut silent), "bytes instead of a close");
    let waited = started.elapsed();
    assert!(
        waited >= Duration::from_millis(250) && waited < Duration::from_secs(3),
        "closed after {waited:?}, handshake_timeout is 300ms"
    );
    assert_one_failure(&server, "timeout");
}

// ---------------------------------------------------------------------------------------------
// mTLS

/// A client CA (`client-ca`) and a client certificate it signs (`alice`); `mallory` is signed by
/// the server's CA instead.
fn client_pki(pki: &Pki) {
    pki.root_ca("client-ca", "ringws test client CA");
    pki.issue(
        "alice",
        "alice",
        "client-ca",
        Role::Client,
        0x4001,
        Validity::Days(30),
    );
    pki.issue(
        "mallory",
        "mallory",
        "ca",
        Role::Client,
        0x4002,
        Validity::Days(30),
    );
}

#[test]
fn mtls_serves_a_client_certificate_from_the_ca_and_refuses_the_rest() {
    let pki = Pki::with_server("mtls");
    client_pki(&pki);
    let client_ca = pki.cert("client-ca");
    let server = serve(
        &pki,
        "server",
        &["--tls-client-ca", client_ca.to_str().unwrap()],
    );
    let url = wss_url(&server, "localhost");
    let ca = pki.cert("ca");

    let out = python_echo(&url, &ca, Some((&pki.cert("alice"), &pki.key("alice"))));
    assert_eq!(out, ECHOED);

    // No certificate: TLS 1.3 lets the client finish first, then the server's alert arrives.
    let out = python_handshake(&server, Some(&ca), None);
    assert!(
        out.starts_with("tls TLSv1.3\nrefused SSLError") && out.contains("CERTIFICATE_REQUIRED"),
        "{out}"
    );
    assert_failures(&server, "client_certificate", 1.0, 1.0);

    // A certificate another CA signed.
    let mallory = (pki.cert("mallory"), pki.key("mallory"));
    let out = python_handshake(&server, Some(&ca), Some((&mallory.0, &mallory.1)));
    assert!(out.contains("refused SSLError"), "{out}");
    assert_failures(&server, "client_certificate", 2.0, 1.0);
}

// ---------------------------------------------------------------------------------------------
// Pub/sub over wss

#[test]
fn a_wss_subscriber_gets_what_the_admin_api_publishes() {
    let pki = Pki::with_server("pubsub");
    let server = serve(&pki, "server", &["--app", "pubsub"]);
    let config = client_config(&pki.cert("ca"), None);
    let mut subscriber = wss_connect(server.tls.unwrap(), config, "/ws?topic=news");
    let admin = server.admin.unwrap();
    // The subscription lands right after the 101: publish until it counts the subscriber.
    let deadline = std::time::Instant::now() + Duration::from_secs(5);
    loop {
        let body = b"extra, extra";
        let request = format!(
            "POST /publish/news HTTP/1.1\r\nHost: x\r\nContent-Type: text/plain\r\n\
             Content-Length: {}\r\n\r\n",
            body.len()
        );
        let answer = exchange(admin, &[request.as_bytes(), body].concat());
        assert_eq!(answer.status, 200, "{}", answer.body);
        if answer.body.contains("\"subscribers\":1") {
            break;
        }
        assert!(std::time::Instant::now() < deadline, "{}", answer.body);
        std::thread::sleep(Duration::from_millis(20));
    }
    let (fin, opcode, payload) = common::read_frame(&mut subscriber);
    assert!(fin);
    assert_eq!((opcode, payload.as_slice()), (0x1, &b"extra, extra"[..]));
}

// ---------------------------------------------------------------------------------------------
// SIGHUP

/// Copies `<from>.pem`/`<from>.key` over the files the server reads, `live.pem`/`live.key`.
fn install(pki: &Pki, from: &str) {
    std::fs::copy(pki.cert(from), pki.cert("live")).unwrap();
    std::fs::copy(pki.key(from), pki.key("live")).unwrap();
}

/// The leaf certificate's subject line as `openssl s_client` prints it.
fn served_subject(server: &ServerProcess, pki: &Pki) -> String {
    let out = s_client(server.tls.unwrap(), &pki.cert("ca"), &[]);
    assert!(out.contains("Verify return code: 0 (ok)"), "{out}");
    out.lines()
        .find_map(|l| l.trim().strip_prefix("0 s:"))
        .unwrap_or_else(|| panic!("no subject in: {out}"))
        .to_string()
}

/// Waits (at most 5 s) until `ringws_tls_reloads_total{result}` reads `n`.
fn wait_reloads(server: &ServerProcess, result: &str, n: f64) {
    wait_metric(
        server.admin.unwrap(),
        RELOADS,
        &format!("result=\"{result}\""),
        n,
    );
}

/// The certificate's `notAfter` in Unix seconds (`date -d` reads OpenSSL's form).
fn not_after_unix(pki: &Pki, name: &str) -> f64 {
    let end = pki.x509(name, "-enddate");
    let end = end.strip_prefix("notAfter=").unwrap();
    let out = Command::new("date")
        .args(["-u", "-d", end, "+%s"])
        .output()
        .unwrap();
    String::from_utf8(out.stdout)
        .unwrap()
        .trim()
        .parse()
        .unwrap()
}

#[test]
fn sighup_serves_a_new_certificate_to_new_handshakes_and_keeps_open_connections() {
    let pki = Pki::with_server("reload");
    pki.issue(
        "renewed",
        "ringws renewed server",
        "ca",
        Role::Server,
        0x1002,
        Validity::Days(60),
    );
    install(&pki, "server");
    let server = serve(&pki, "live", &[]);
    let admin = server.admin.unwrap();
    let config = client_config(&pki.cert("ca"), None);
    let mut before = wss_connect(server.tls.unwrap(), config.clone(), "/");
    assert_eq!(round_trip(&mut before, 0x1, b"one"), (0x1, b"one".to_vec()));
    assert_eq!(served_subject(&server, &pki), "CN = ringws test server");
    assert_eq!(metric_sum(admin, EXPIRY), not_after_unix(&pki, "server"));

    install(&pki, "renewed");
    server.signal(libc::SIGHUP);
    wait_reloads(&server, "ok", 1.0);
    assert_eq!(served_subject(&server, &pki), "CN = ringws renewed server");
    let mut after = wss_connect(server.tls.unwrap(), config, "/");
    assert_eq!(
        peer_leaf(&after),
        pem_der(&std::fs::read_to_string(pki.cert("renewed")).unwrap())
    );
    assert_eq!(round_trip(&mut after, 0x2, b"two"), (0x2, b"two".to_vec()));
    // The connection from before the reload still echoes, with the certificate it began with.
    assert_eq!(
        peer_leaf(&before),
        pem_der(&std::fs::read_to_string(pki.cert("server")).unwrap())
    );
    assert_eq!(
        round_trip(&mut before, 0x1, b"three"),
        (0x1, b"three".to_vec())
    );
    assert_eq!(metric_sum(admin, EXPIRY), not_after_unix(&pki, "renewed"));
    assert_eq!(metric_labelled(admin, RELOADS, "result=\"failed\""), 0.0);
    let (_, log) = server.stop();
    assert!(log.contains("TLS certificate reloaded"), "{log}");
}

#[test]
fn a_broken_certificate_on_sighup_keeps_the_one_in_use() {
    let pki = Pki::with_server("broken");
    install(&pki, "server");
    let server = serve(&pki, "live", &[]);
    let admin = server.admin.unwrap();
    let config = client_config(&pki.cert("ca"), None);
    let mut before = wss_connect(server.tls.unwrap(), config.clone(), "/");
    let expiry = metric_sum(admin, EXPIRY);

    // Half a PEM file, as a copy caught midway would leave.
    let pem = std::fs::read_to_string(pki.cert("server")).unwrap();
    std::fs::write(pki.cert("live"), &pem[..pem.len() / 2]).unwrap();
    server.signal(libc::SIGHUP);
    wait_reloads(&server, "failed", 1.0);
    assert_eq!(metric_labelled(admin, RELOADS, "result=\"ok\""), 0.0);
    assert_eq!(served_subject(&server, &pki), "CN = ringws test server");
    let mut after = wss_connect(server.tls.unwrap(), config, "/");
    assert_eq!(round_trip(&mut after, 0x1, b"new"), (0x1, b"new".to_vec()));
    assert_eq!(round_trip(&mut before, 0x1, b"old"), (0x1, b"old".to_vec()));
    assert_eq!(metric_sum(admin, EXPIRY), expiry);
    let (_, log) = server.stop();
    assert!(
        log.contains("the certificate loaded before stays in use") && log.contains("live.pem"),
        "{log}"
    );
}

/// The DER bytes of the first certificate in a PEM text.
fn pem_der(pem: &str) -> Vec<u8> {
    use rustls::pki_types::pem::PemObject;
    rustls::pki_types::CertificateDer::from_pem_slice(pem.as_bytes())
        .unwrap()
        .to_vec()
}

// ---------------------------------------------------------------------------------------------
// Start-up errors

/// A plain and a wss listener on free ports, no admin listener.
const LISTENERS: [&str; 6] = [
    "--listen",
    "127.0.0.1:0",
    "--admin-listen",
    "off",
    "--tls-listen",
    "127.0.0.1:0",
];

#[test]
fn tls_listen_without_a_certificate_is_refused_at_start() {
    refused_start(
        &LISTENERS,
        &[],
        2,
        &[
            "tls_listen needs a certificate and its key",
            "--tls-cert FILE --tls-key FILE",
        ],
    );
}

/// `ringws serve` with a wss listener on `cert` and `key` must refuse to start (exit code 1)
/// with `message`.
fn refused_with_files(cert: &Path, key: &Path, message: &str) {
    let files = [
        "--tls-cert",
        cert.to_str().unwrap(),
        "--tls-key",
        key.to_str().unwrap(),
    ];
    refused_start(&[&LISTENERS[..], &files].concat(), &[], 1, &[message]);
}

#[test]
fn a_key_that_does_not_belong_to_the_certificate_names_both_files() {
    let pki = Pki::with_server("mismatch");
    pki.root_ca("other", "another key");
    let (cert, key) = (pki.cert("server"), pki.key("other"));
    let message = format!(
        "the key in {} does not belong to the certificate in {}",
        key.display(),
        cert.display()
    );
    refused_with_files(&cert, &key, &message);
}

#[test]
fn a_missing_file_is_named() {
    let pki = Pki::with_server("missing");
    let nowhere = pki.path("nowhere.pem");
    let message = format!("cannot read {}", nowhere.display());
    refused_with_files(&nowhere, &pki.key("server"), &message);
    refused_with_files(&pki.cert("server"), &nowhere, &message);
}
