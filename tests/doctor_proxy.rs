//! `ringws doctor` through real nginx instances: deploy/nginx/ringws.conf in front of ringws
//! (passes), the same config without the upgrade headers (names the proxy), nginx as an
//! ordinary web server, and nginx as a TLS-only port.
//!
//! Needs the `nginx` and `openssl` binaries (Debian: `apt-get install nginx openssl`); without
//! them the test fails, unless RINGWS_SKIP_PROXY_TESTS=1.

mod common;

use std::process::{Command, Stdio};

use common::doctor::{assert_run_noting, doctor, Run};
use common::proxy::{
    deploy_nginx, free_port, start_nginx, strip_upgrade_headers, tools, Proxy, Scratch,
};
use common::ServerProcess;

/// Asserts a doctor run's exit code and stdout; nginx's log goes with a wrong exit code.
#[track_caller]
fn assert_run(run: &Run, code: i32, mentions: &[&str], proxy: &Proxy) {
    assert_run_noting(run, code, mentions, || {
        format!("nginx:\n{}", proxy.output())
    });
}

/// nginx and openssl, or None when the run asked to skip; panics with install advice otherwise.
fn nginx_and_openssl() -> Option<[std::path::PathBuf; 2]> {
    tools(["nginx", "openssl"], "`ringws doctor` through nginx")
}

// ---------------------------------------------------------------------------------------------
// Tests

#[test]
fn doctor_passes_through_nginx_with_the_deploy_config() {
    let Some([nginx, _]) = nginx_and_openssl() else {
        return;
    };
    let server = ServerProcess::start(&["--allowed-origins", "https://app.example.com"]);
    let (_scratch, port, proxy) = deploy_nginx(&nginx, "deploy", server.addr, |site| site);
    let url = format!("ws://127.0.0.1:{port}/");

    let run = doctor(&[&url, "--origin", "https://app.example.com", "-v"]);
    assert_run(
        &run,
        0,
        &["✔ upgrade", "✔ ping/pong", "✔ close", "OK:"],
        &proxy,
    );
    assert!(
        run.stderr.contains("< HTTP/1.1 101 Switching Protocols"),
        "{}",
        run.stderr
    );
    let run = doctor(&[&url, "--origin", "https://app.example.com", "--json"]);
    let json: serde_json::Value = serde_json::from_str(&run.stdout).unwrap();
    assert_eq!(json["ok"], true, "{json:#}");
    assert_eq!(json["exit_code"], 0);

    // ringws' own refusal reaches doctor through the proxy, and doctor quotes it.
    let run = doctor(&[&url, "--origin", "https://evil.test"]);
    assert_run(
        &run,
        4,
        &["HTTP 403", "origin \"https://evil.test\" is not allowed"],
        &proxy,
    );
}

#[test]
fn doctor_names_nginx_stripping_the_upgrade_headers() {
    let Some([nginx, _]) = nginx_and_openssl() else {
        return;
    };
    let server = ServerProcess::start(&[]);
    let (_scratch, port, proxy) = deploy_nginx(&nginx, "stripped", server.addr, |site| {
        strip_upgrade_headers(&site)
    });

    let run = doctor(&[&format!("ws://127.0.0.1:{port}/")]);
    assert_run(
        &run,
        4,
        &[
            "✘ upgrade",
            "a proxy in front removed",
            "hop-by-hop",
            "proxy_set_header Upgrade",
        ],
        &proxy,
    );
    // Directly against ringws the same doctor passes: the proxy is the cause.
    let run = doctor(&[&format!("ws://{}/", server.addr)]);
    assert_run(&run, 0, &["OK:"], &proxy);
}

/// nginx serving an ordinary HTML page on every path.
fn plain_site(port: u16) -> String {
    format!(
        "server {{\n  listen 127.0.0.1:{port};\n  location / {{\n    default_type text/html;\n    \
         return 200 '<!DOCTYPE html><html><head><title>Our site</title></head></html>';\n  }}\n}}\n"
    )
}

#[test]
fn doctor_against_a_plain_http_server() {
    let Some([nginx, _]) = nginx_and_openssl() else {
        return;
    };
    let scratch = Scratch::new("plain");
    let port = free_port();
    let proxy = start_nginx(&nginx, &scratch, port, &plain_site(port));
    let run = doctor(&[&format!("ws://127.0.0.1:{port}/chat")]);
    assert_run(
        &run,
        4,
        &[
            "HTTP 200 OK",
            "Server: nginx",
            "an HTML page",
            "ordinary web server",
            "deploy/nginx/ringws.conf",
        ],
        &proxy,
    );
}

/// docs/troubleshooting.md promises the page title with the cause of a 200/301/302 answer.
#[test]
fn doctor_quotes_the_title_of_an_ordinary_web_page() {
    let Some([nginx, _]) = nginx_and_openssl() else {
        return;
    };
    let scratch = Scratch::new("plain-title");
    let port = free_port();
    let proxy = start_nginx(&nginx, &scratch, port, &plain_site(port));
    let run = doctor(&[&format!("ws://127.0.0.1:{port}/chat")]);
    assert_run(&run, 4, &["ordinary web server", "Our site"], &proxy);
}

#[test]
fn doctor_against_a_tls_only_port() {
    let Some([nginx, openssl]) = nginx_and_openssl() else {
        return;
    };
    let scratch = Scratch::new("tls");
    let (cert, key) = (scratch.0.join("cert.pem"), scratch.0.join("key.pem"));
    let made = Command::new(openssl)
        .args([
            "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1",
        ])
        .args(["-subj", "/CN=127.0.0.1", "-keyout"])
        .arg(&key)
        .arg("-out")
        .arg(&cert)
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .output()
        .expect("run openssl");
    assert!(
        made.status.success(),
        "openssl: {}",
        String::from_utf8_lossy(&made.stderr)
    );
    let port = free_port();
    let site = format!(
        "server {{\n  listen 127.0.0.1:{port} ssl;\n  ssl_certificate {};\n  \
         ssl_certificate_key {};\n  location / {{ return 200 'tls'; }}\n}}\n",
        cert.display(),
        key.display()
    );
    let proxy = start_nginx(&nginx, &scratch, port, &site);

    // ws:// to a TLS port.
    let run = doctor(&[&format!("ws://127.0.0.1:{port}/")]);
    assert_run(
        &run,
        4,
        &["plain HTTP request was sent to HTTPS port", "wss://"],
        &proxy,
    );
    // wss:// to the same port: the handshake runs, and the certificate is named self-signed.
    let run = doctor(&[&format!("wss://127.0.0.1:{port}/")]);
    assert_run(&run, 4, &["✘ tls", "is self-signed", "CA:FALSE"], &proxy);
}
