//! `ringws doctor wss://...` against ringws serving wss:// with test certificates (made by
//! benches/tls-certs.sh at test time), and against small servers for what ringws does not do
//! (`openssl s_server` offering TLS 1.1 only, or ALPN h2 only): each TLS failure class named with its fix and exit code 4, and
//! the happy path. Also `ringws check`'s rows for the same certificate files.
//!
//! Needs `bash` and `openssl` (Debian: `apt-get install openssl`); without openssl the tests
//! fail, unless RINGWS_SKIP_PROXY_TESTS=1.

mod common;

use std::io::{BufRead, BufReader};
use std::net::{SocketAddr, TcpStream};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use common::doctor::{assert_run, doctor};
use common::proxy::{free_port, Scratch};

/// Test certificates with an intermediate CA (see benches/tls-certs.sh for the files).
fn certificates(name: &str) -> Option<Scratch> {
    common::tls::certificates(name, true, "`ringws doctor` over wss://")
}

/// `ringws serve` with a plain and a wss listener on ephemeral ports; killed when dropped.
struct WssServer {
    child: Child,
    plain: SocketAddr,
    tls: SocketAddr,
}

impl WssServer {
    fn start(dir: &Path, cert: &str) -> WssServer {
        let mut child = Command::new(env!("CARGO_BIN_EXE_ringws"))
            .args([
                "serve",
                "--listen",
                "127.0.0.1:0",
                "--tls-listen",
                "127.0.0.1:0",
            ])
            .args(["--admin-listen", "off", "--cores", "1", "--app", "echo"])
            .arg("--tls-cert")
            .arg(dir.join(cert))
            .arg("--tls-key")
            .arg(dir.join("server.key"))
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("start ringws");
        let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
        let (mut plain, mut tls) = (None, None);
        while plain.is_none() || tls.is_none() {
            let line = lines
                .next()
                .expect("ringws printed its listening lines")
                .unwrap();
            let addr = |prefix: &str| -> Option<SocketAddr> {
                line.strip_prefix(prefix)?
                    .split_whitespace()
                    .next()?
                    .parse()
                    .ok()
            };
            plain = plain.or(addr("ringws listening on ws://"));
            tls = tls.or(addr("ringws listening on wss://"));
        }
        std::thread::spawn(move || lines.for_each(drop));
        WssServer {
            child,
            plain: plain.unwrap(),
            tls: tls.unwrap(),
        }
    }

    /// The wss:// URL by the name the certificates cover.
    fn url(&self) -> String {
        format!("wss://localhost:{}/", self.tls.port())
    }
}

impl Drop for WssServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn path(dir: &Path, file: &str) -> String {
    dir.join(file).to_str().unwrap().to_owned()
}

#[test]
fn happy_path_shows_the_tls_step_and_the_certificate() {
    let Some(certs) = certificates("doctor-tls-ok") else {
        return;
    };
    let server = WssServer::start(&certs.0, "server-chain.pem");
    let ca = path(&certs.0, "ca.pem");
    let run = doctor(&[&server.url(), "--ca-file", &ca]);
    assert_run(
        &run,
        0,
        &[
            "✔ tls",
            "TLSv1.3",
            "ALPN http/1.1",
            "certificate CN=localhost issued by CN=ringws test intermediate CA",
            "for localhost, 127.0.0.1, ::1",
            "chain of 2",
            "✔ upgrade",
            "✔ ping/pong",
            "✔ close",
        ],
    );
    let run = doctor(&[&server.url(), "--ca-file", &ca, "--json"]);
    let json: serde_json::Value = serde_json::from_str(&run.stdout).unwrap();
    let tls = &json["tls"];
    assert_eq!(tls["version"], "TLSv1.3", "{json:#}");
    assert_eq!(tls["alpn"], "http/1.1", "{json:#}");
    assert_eq!(tls["certificate"]["chain_len"], 2, "{json:#}");
    assert_eq!(tls["certificate"]["subject"], "CN=localhost", "{json:#}");
    // --insecure shows a certificate no root vouches for and goes on.
    let run = doctor(&[&server.url(), "--insecure"]);
    assert_run(&run, 0, &["✔ tls", "✔ close"]);
    // The TLS flags belong to wss:// URLs.
    let run = doctor(&[&format!("ws://{}/", server.plain), "--insecure"]);
    assert_eq!(run.code, 2, "{}", run.stderr);
    assert!(run.stderr.contains("wss:// URLs only"), "{}", run.stderr);
}

#[test]
fn expired_certificate() {
    let Some(certs) = certificates("doctor-tls-expired") else {
        return;
    };
    let server = WssServer::start(&certs.0, "expired.pem");
    let ca = path(&certs.0, "ca.pem");
    let run = doctor(&[&server.url(), "--ca-file", &ca]);
    assert_run(
        &run,
        4,
        &[
            "✘ tls",
            "expired on 2020-01-02T00:00:00Z",
            "renew the certificate",
        ],
    );
    // The refused certificate is in the JSON too.
    let run = doctor(&[&server.url(), "--ca-file", &ca, "--json"]);
    let json: serde_json::Value = serde_json::from_str(&run.stdout).unwrap();
    let certificate = &json["tls"]["certificate"];
    assert_eq!(certificate["not_after"], "2020-01-02T00:00:00Z", "{json:#}");
    assert_eq!(json["exit_code"], 4, "{json:#}");
}

/// Doctor against ringws serving `cert` (test CA given with --ca-file): refused with exit 4,
/// the output mentioning each of `mentions`.
fn refused_with(name: &str, cert: &str, mentions: &[&str]) {
    let Some(certs) = certificates(name) else {
        return;
    };
    let server = WssServer::start(&certs.0, cert);
    let run = doctor(&[&server.url(), "--ca-file", &path(&certs.0, "ca.pem")]);
    assert_run(&run, 4, mentions);
}

#[test]
fn not_yet_valid_certificate() {
    refused_with(
        "doctor-tls-not-yet-valid",
        "not-yet-valid.pem",
        &[
            "✘ tls",
            "certificate refused: not_yet_valid",
            "is not valid before 2099-01-01T00:00:00Z",
            "clock",
        ],
    );
}

#[test]
fn self_signed_certificate() {
    refused_with(
        "doctor-tls-self-signed",
        "self-signed.pem",
        &["✘ tls", "is self-signed", "--ca-file", "public CA"],
    );
}

#[test]
fn unknown_issuer_and_missing_intermediate() {
    let Some(certs) = certificates("doctor-tls-issuer") else {
        return;
    };
    // The whole chain, but its root is not trusted (no --ca-file).
    let server = WssServer::start(&certs.0, "server-chain.pem");
    let run = doctor(&[&server.url()]);
    assert_run(
        &run,
        4,
        &[
            "✘ tls",
            "issued by CN=ringws test intermediate CA, 2 certificates",
            "leads to no trusted root",
            "--ca-file",
        ],
    );
    // The leaf alone: the root is trusted, the intermediate between them is missing.
    let server = WssServer::start(&certs.0, "server.pem");
    let run = doctor(&[&server.url(), "--ca-file", &path(&certs.0, "ca.pem")]);
    assert_run(
        &run,
        4,
        &[
            "✘ tls",
            "sent only its own certificate",
            "the intermediate certificate is missing",
            "append the intermediate certificates to the server's tls_cert",
        ],
    );
}

#[test]
fn name_mismatch() {
    let Some(certs) = certificates("doctor-tls-name") else {
        return;
    };
    // The wrong-name leaf with its intermediate, as a server would send it.
    let mut chain = std::fs::read(certs.0.join("wrong-name.pem")).unwrap();
    chain.extend(std::fs::read(certs.0.join("intermediate.pem")).unwrap());
    std::fs::write(certs.0.join("wrong-name-chain.pem"), chain).unwrap();
    let server = WssServer::start(&certs.0, "wrong-name-chain.pem");
    let run = doctor(&[&server.url(), "--ca-file", &path(&certs.0, "ca.pem")]);
    assert_run(
        &run,
        4,
        &[
            "✘ tls",
            "does not cover \"localhost\": it covers wrong-name.invalid",
            "subjectAltName",
        ],
    );
}

#[test]
fn plain_http_port() {
    let Some(certs) = certificates("doctor-tls-plain") else {
        return;
    };
    let server = WssServer::start(&certs.0, "server-chain.pem");
    let run = doctor(&[&format!("wss://{}/", server.plain)]);
    assert_run(
        &run,
        4,
        &[
            "✘ tls",
            "in plain HTTP (\"HTTP/1.1 400 Bad Request\")",
            "the port speaks ws://",
            &format!("ws://{}/", server.plain),
        ],
    );
}

/// `openssl s_server` with the test chain and `args`, on a free port; killed when dropped.
struct OpensslServer {
    child: Child,
    port: u16,
}

impl OpensslServer {
    fn start(dir: &Path, args: &[&str]) -> OpensslServer {
        let port = free_port();
        let child = Command::new("openssl")
            .args([
                "s_server",
                "-quiet",
                "-accept",
                &format!("127.0.0.1:{port}"),
            ])
            .arg("-cert")
            .arg(dir.join("server-chain.pem"))
            .arg("-key")
            .arg(dir.join("server.key"))
            .args(args)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start openssl s_server");
        let started = Instant::now();
        while TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(
                started.elapsed() < Duration::from_secs(10),
                "openssl s_server does not listen"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
        OpensslServer { child, port }
    }

    fn url(&self) -> String {
        format!("wss://localhost:{}/", self.port)
    }
}

impl Drop for OpensslServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[test]
fn no_common_tls_version() {
    let Some(certs) = certificates("doctor-tls-version") else {
        return;
    };
    // TLS 1.1 only (allowed at security level 0): the alert protocol_version.
    let server = OpensslServer::start(&certs.0, &["-tls1_1", "-cipher", "DEFAULT@SECLEVEL=0"]);
    let run = doctor(&[&server.url(), "--ca-file", &path(&certs.0, "ca.pem")]);
    assert_run(
        &run,
        4,
        &[
            "✘ tls",
            "alert protocol_version",
            "no TLS version",
            "TLS 1.3 and 1.2",
            "enable TLS 1.2",
        ],
    );
}

#[test]
fn alpn_h2_only() {
    let Some(certs) = certificates("doctor-tls-alpn") else {
        return;
    };
    let server = OpensslServer::start(&certs.0, &["-alpn", "h2"]);
    let run = doctor(&[&server.url(), "--ca-file", &path(&certs.0, "ca.pem")]);
    assert_run(
        &run,
        4,
        &[
            "✘ tls",
            "alert no_application_protocol",
            "refused ALPN http/1.1",
            "only h2",
            "alpn h2,http/1.1",
        ],
    );
}

#[test]
fn handshake_timeout_and_close() {
    // Accepts and never answers the ClientHello; then one that closes at once.
    let silent = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("wss://{}/", silent.local_addr().unwrap());
    let run = doctor(&[&url, "--timeout", "300ms"]);
    assert_run(
        &run,
        4,
        &["✘ tls", "did not finish the TLS handshake within 300 ms"],
    );
    drop(silent);
    let closing = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = closing.local_addr().unwrap();
    std::thread::spawn(move || {
        for stream in closing.incoming().map_while(Result::ok) {
            drop(stream);
        }
    });
    let run = doctor(&[&format!("wss://{addr}/")]);
    assert_run(
        &run,
        4,
        &["✘ tls", "during the TLS handshake", "check its log"],
    );
}

fn check(args: &[&str]) -> (i32, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_ringws"))
        .args(["check", "--connections", "1000"])
        .args(args)
        .env("COLUMNS", "200")
        .output()
        .expect("run ringws check");
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    (out.status.code().unwrap(), text)
}

/// The row of `name` in check's table, its cells split on runs of spaces.
fn row(table: &str, name: &str) -> Vec<String> {
    let line = table
        .lines()
        .find(|l| l.starts_with(name))
        .unwrap_or_else(|| panic!("no row {name:?} in\n{table}"));
    line.split("  ")
        .map(str::trim)
        .filter(|c| !c.is_empty())
        .map(str::to_owned)
        .collect()
}

#[test]
fn check_judges_the_certificate_files() {
    let Some(certs) = certificates("check-tls") else {
        return;
    };
    let dir = &certs.0;
    let key = path(dir, "server.key");
    let (_, good) = check(&[
        "--tls-cert",
        &path(dir, "server-chain.pem"),
        "--tls-key",
        &key,
    ]);
    assert_eq!(
        row(&good, "tls key"),
        ["tls key", "matches", "matches tls_cert", "pass"]
    );
    assert_eq!(
        row(&good, "tls chain")[1..],
        ["2 cert(s)", "leaf + intermediates", "pass"]
    );
    let expiry = row(&good, "tls expiry");
    assert!(
        expiry[1].ends_with(" days") && expiry[3] == "pass",
        "{expiry:?}"
    );

    // The config file's tls_cert and tls_key; the leaf alone, and expired; another key.
    let config = dir.join("ringws.toml");
    let write_config = |cert: &str, key: &str| {
        std::fs::write(
            &config,
            format!(
                "tls_cert = {:?}\ntls_key = {:?}\n",
                path(dir, cert),
                path(dir, key)
            ),
        )
        .unwrap();
    };
    write_config("expired.pem", "intermediate.key");
    let (code, bad) = check(&["--config", config.to_str().unwrap()]);
    assert_eq!(code, 1, "{bad}");
    assert_eq!(
        row(&bad, "tls key")[1..],
        ["another key", "matches tls_cert", "fail"]
    );
    assert_eq!(
        row(&bad, "tls chain")[1..],
        ["leaf only", "leaf + intermediates", "warn"]
    );
    assert_eq!(
        row(&bad, "tls expiry")[1..],
        ["expired", ">= 14 days", "fail"]
    );
    assert!(bad.contains("expired on 2020-01-02T00:00:00Z"), "{bad}");
    assert!(
        bad.contains("append the intermediate certificates"),
        "{bad}"
    );

    // The intermediate first: the order is broken.
    let mut reversed = std::fs::read(dir.join("intermediate.pem")).unwrap();
    reversed.extend(std::fs::read(dir.join("server.pem")).unwrap());
    std::fs::write(dir.join("reversed.pem"), reversed).unwrap();
    write_config("reversed.pem", "server.key");
    let (code, out_of_order) = check(&["--config", config.to_str().unwrap()]);
    assert_eq!(code, 1, "{out_of_order}");
    assert_eq!(
        row(&out_of_order, "tls chain")[1..],
        ["broken after #1", "leaf + intermediates", "fail"]
    );
    assert!(out_of_order.contains("the leaf first"), "{out_of_order}");

    write_config("self-signed.pem", "server.key");
    let (_, own) = check(&["--config", config.to_str().unwrap()]);
    assert_eq!(
        row(&own, "tls chain")[1..],
        ["self-signed", "leaf + intermediates", "warn"]
    );
}
