//! wss:// end to end: the real binary with `--tls-listen`, certificates made at test time by
//! the `openssl` command line (tests/common/pki.rs), and real clients (tests/common/clients.rs):
//! Python's `websockets` and `ssl`, `openssl s_client`, Node's `ws`, and rustls's client for
//! connections held across a reload. Each failure class of a handshake is checked twice: what
//! the client sees, and the reason ringws counts in `ringws_tls_handshake_failures_total`.
//! SIGHUP reloads, start-up errors, and (through the library) the mTLS identity an app sees.
//!
//! Needs `openssl`, `/usr/bin/python3` with `websockets` (Debian's `python3-websockets`) and
//! `npm` (Node's `ws` is installed under target/ on first use); `bash .ci/test` installs them.
//! Headless Chromium over wss is in tests/browser.rs.

mod common;

use std::io::{Read, Write};
use std::path::Path;
use std::process::Command;
use std::time::Duration;

use common::clients::{
    node_ws, python, python_echo, python_handshake, s_client, wss_url, ECHOED, NODE_ECHO,
    PY_ASYNCIO_DISTRUST,
};
use common::pki::{Pki, Role, Validity};
use common::wss::{client_config, peer_leaf, round_trip, wss_connect};
use common::{
    closed_by_server, connect, exchange, is_reset, metric_labelled, metric_sum, output_within,
    refused_start, upgrade_request, wait_metric, ServerProcess,
};
use ringws::app::{App, ConnId, CoreApp, Ctx, OpenInfo};
use ringws::protocol::MessageKind;

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
// Python `websockets` and `ssl`

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

/// Bytes that are neither TLS nor HTTP (an SSH client on the wrong port) get one fatal alert and
/// the close, and the core goes on serving: the failed bytes are not handed to rustls again.
#[test]
fn bytes_that_are_neither_tls_nor_http_get_one_alert_and_the_server_keeps_serving() {
    let pki = Pki::with_server("garbage");
    let server = serve(&pki, "server", &[]);
    let mut ssh = connect(server.tls.unwrap());
    ssh.write_all(b"SSH-2.0-OpenSSH_9.2p1 Debian-2\r\n")
        .unwrap();
    let mut answer = Vec::new();
    if let Err(e) = ssh.read_to_end(&mut answer) {
        assert!(is_reset(&e), "no close: {e}");
    }
    // One record: alert (21), TLS 1.2 record version, length 2, level fatal (2), a description.
    assert_eq!(answer.len(), 7, "{answer:02x?}");
    assert_eq!(
        (answer[0], &answer[3..6]),
        (21, &[0u8, 2, 2][..]),
        "{answer:02x?}"
    );
    assert_one_failure(&server, "protocol");
    let config = client_config(&pki.cert("ca"), None);
    let mut after = wss_connect(server.tls.unwrap(), config, "/");
    assert_eq!(round_trip(&mut after, 0x1, b"up"), (0x1, b"up".to_vec()));
}

/// A client that sends 16 MiB before reading anything: the kernel cannot hold the echoes, so
/// records the socket refuses wait in the session and the rest in the connection's queue, and
/// every message still comes back whole and in order once the client reads.
#[test]
fn echoes_a_client_does_not_read_yet_wait_encrypted_and_arrive_in_order() {
    const MESSAGES: usize = 256;
    const MESSAGE_BYTES: usize = 64 << 10;
    let pki = Pki::with_server("backpressure");
    let server = serve(&pki, "server", &["--max-outbound-buffer", "64MiB"]);
    let admin = server.admin.unwrap();
    let config = client_config(&pki.cert("ca"), None);
    let mut ws = wss_connect(server.tls.unwrap(), config, "/");
    let message = |i: usize| -> Vec<u8> { (0..MESSAGE_BYTES).map(|j| (i * 7 + j) as u8).collect() };
    for i in 0..MESSAGES {
        ws.write_all(&common::client_frame(true, 0x2, &message(i)))
            .unwrap();
    }
    ws.flush().unwrap();
    // More than the kernel's buffers hold is waiting in the server now.
    let deadline = std::time::Instant::now() + Duration::from_secs(5);
    let mut queued = 0.0;
    while queued == 0.0 && std::time::Instant::now() < deadline {
        queued = metric_sum(admin, "ringws_outbound_queued_bytes");
        std::thread::sleep(Duration::from_millis(20));
    }
    assert!(
        queued > 0.0,
        "the echoes never had to wait: the test proves nothing"
    );
    for i in 0..MESSAGES {
        let (fin, opcode, payload) = common::read_frame(&mut ws);
        assert!(fin && opcode == 0x2, "message {i}");
        assert!(payload == message(i), "message {i} differs");
    }
    assert_eq!(metric_sum(admin, "ringws_slow_consumer_closes_total"), 0.0);
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

/// An app that answers every message with the subject its connection opened with.
struct WhoAmI;
struct WhoAmICore(std::collections::HashMap<ConnId, String>);

impl App for WhoAmI {
    type Core = WhoAmICore;
    fn name(&self) -> &'static str {
        "whoami"
    }
    fn serves_path(&self, _path: &str) -> bool {
        true
    }
    fn new_core(&self, _core: usize) -> WhoAmICore {
        WhoAmICore(Default::default())
    }
}

impl CoreApp for WhoAmICore {
    fn on_open(&mut self, _ctx: &mut dyn Ctx, conn: ConnId, info: &OpenInfo<'_>) {
        let subject = info.subject.unwrap_or("(none)").to_string();
        self.0.insert(conn, subject);
    }
    fn on_message(&mut self, ctx: &mut dyn Ctx, conn: ConnId, _: MessageKind, _: &[u8]) {
        ctx.send(conn, MessageKind::Text, self.0[&conn].as_bytes());
    }
}

/// The library's view: with mTLS, the client certificate's common name is the connection's
/// subject, as a token's would be.
#[test]
fn mtls_gives_the_app_the_client_certificate_common_name_as_subject() {
    let pki = Pki::with_server("identity");
    client_pki(&pki);
    let config = ringws::config::Config {
        listen: "127.0.0.1:0".parse().unwrap(),
        cores: 1,
        admin_listen: None,
        tls_listen: Some("127.0.0.1:0".parse().unwrap()),
        tls_cert: Some(pki.cert("server")),
        tls_key: Some(pki.key("server")),
        tls_client_ca: Some(pki.cert("client-ca")),
        ..ringws::config::Config::default()
    };
    let server = ringws::server::Server::start(&config, WhoAmI).expect("start");
    let alice = (pki.cert("alice"), pki.key("alice"));
    let tls = client_config(&pki.cert("ca"), Some((&alice.0, &alice.1)));
    let mut s = wss_connect(server.tls_addr().unwrap(), tls, "/");
    assert_eq!(round_trip(&mut s, 0x1, b"who?"), (0x1, b"alice".to_vec()));
    server.stop();
    server.join().expect("clean stop");
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

/// The certificate a renewal brings: `renewed`, same CA, another name, serial and end.
fn issue_renewed(pki: &Pki) {
    pki.issue(
        "renewed",
        "ringws renewed server",
        "ca",
        Role::Server,
        0x1002,
        Validity::Days(60),
    );
}

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
    issue_renewed(&pki);
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
fn a_broken_or_mismatched_certificate_on_sighup_keeps_the_one_in_use() {
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

    // A renewed certificate beside the old key (the key file not copied yet): refused too.
    issue_renewed(&pki);
    std::fs::copy(pki.cert("renewed"), pki.cert("live")).unwrap();
    server.signal(libc::SIGHUP);
    wait_reloads(&server, "failed", 2.0);
    assert_eq!(served_subject(&server, &pki), "CN = ringws test server");
    assert_eq!(
        round_trip(&mut before, 0x1, b"still"),
        (0x1, b"still".to_vec())
    );
    assert_eq!(metric_sum(admin, EXPIRY), expiry);
    let (_, log) = server.stop();
    let live = (pki.cert("live"), pki.key("live"));
    let mismatch = format!(
        "the key in {} does not belong to the certificate in {}",
        live.1.display(),
        live.0.display()
    );
    assert!(
        log.matches("the certificate loaded before stays in use")
            .count()
            == 2
            && log.contains("live.pem")
            && log.contains(&mismatch),
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
