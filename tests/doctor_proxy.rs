//! `ringws doctor` through real nginx instances: deploy/nginx/ringws.conf in front of ringws
//! (passes), the same config without the upgrade headers (names the proxy), nginx as an
//! ordinary web server, and nginx as a TLS-only port.
//!
//! Needs the `nginx` and `openssl` binaries (Debian: `apt-get install nginx openssl`); without
//! them the test fails, unless RINGWS_SKIP_PROXY_TESTS=1.

mod common;

use std::io::Read;
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use common::ServerProcess;

/// How long nginx has to start listening.
const PROXY_START_TIMEOUT: Duration = Duration::from_secs(5);
/// Longest any doctor run may take in these tests.
const RUN_LIMIT: Duration = Duration::from_secs(30);

// ---------------------------------------------------------------------------------------------
// nginx, as tests/deploy_proxy.rs runs it

/// A proxy process, killed when dropped.
struct Proxy {
    child: Child,
    log: PathBuf,
}

impl Drop for Proxy {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Proxy {
    fn start(mut command: Command, port: u16, log: PathBuf) -> Proxy {
        let child = command
            .stdout(Stdio::null())
            .stderr(Stdio::from(std::fs::File::create(&log).unwrap()))
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start nginx: {e}"));
        let mut proxy = Proxy { child, log };
        let deadline = Instant::now() + PROXY_START_TIMEOUT;
        loop {
            if TcpStream::connect(("127.0.0.1", port)).is_ok() {
                return proxy;
            }
            if let Ok(Some(status)) = proxy.child.try_wait() {
                panic!("nginx exited with {status}:\n{}", proxy.output());
            }
            assert!(
                Instant::now() < deadline,
                "nginx did not listen on port {port} within {PROXY_START_TIMEOUT:?}:\n{}",
                proxy.output()
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    fn output(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }
}

/// A scratch directory for one nginx run, removed when dropped.
struct Scratch(PathBuf);

impl Scratch {
    fn new(name: &str) -> Scratch {
        let dir =
            std::env::temp_dir().join(format!("ringws-doctor-proxy-{}-{name}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        Scratch(dir)
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// The binary's path, searching PATH and the sbin directories root's PATH would have.
fn find_binary(name: &str) -> Option<PathBuf> {
    let path = std::env::var("PATH").unwrap_or_default();
    let found = path
        .split(':')
        .chain(["/usr/sbin", "/usr/local/sbin", "/sbin"])
        .map(|dir| Path::new(dir).join(name))
        .find(|candidate| candidate.is_file());
    found
}

/// nginx and openssl, or None when the run asked to skip; panics with install advice otherwise.
fn tools() -> Option<(PathBuf, PathBuf)> {
    match (find_binary("nginx"), find_binary("openssl")) {
        (Some(nginx), Some(openssl)) => Some((nginx, openssl)),
        (nginx, openssl) => {
            if std::env::var("RINGWS_SKIP_PROXY_TESTS").as_deref() == Ok("1") {
                eprintln!("skipping the doctor proxy tests: RINGWS_SKIP_PROXY_TESTS=1");
                return None;
            }
            let missing: Vec<&str> = [("nginx", nginx.is_none()), ("openssl", openssl.is_none())]
                .into_iter()
                .filter_map(|(name, missing)| missing.then_some(name))
                .collect();
            panic!(
                "{} not found: install with `apt-get install -y nginx openssl` to test \
                 `ringws doctor` through nginx, or set RINGWS_SKIP_PROXY_TESTS=1 to skip",
                missing.join(" and ")
            );
        }
    }
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// `text` with the line ending in `marker` replaced by `indent + replacement + marker`.
fn set_marked_line(text: &str, marker: &str, replacement: &str) -> String {
    let mut found = false;
    let out: Vec<String> = text
        .lines()
        .map(|line| {
            if line.ends_with(marker) {
                found = true;
                let indent = &line[..line.len() - line.trim_start().len()];
                format!("{indent}{replacement}  {marker}")
            } else {
                line.to_owned()
            }
        })
        .collect();
    assert!(found, "no line ends with {marker:?}");
    out.join("\n") + "\n"
}

fn deploy_file(path: &str) -> String {
    std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join(path)).expect(path)
}

/// deploy/nginx/ringws.conf set to listen on `port` and forward to `ringws`.
fn deploy_site(port: u16, ringws: SocketAddr) -> String {
    let site = deploy_file("deploy/nginx/ringws.conf");
    let site = set_marked_line(
        &site,
        "# ringws-listen",
        &format!("listen 127.0.0.1:{port};"),
    );
    set_marked_line(&site, "# ringws-upstream", &format!("server {ringws};"))
}

/// Starts nginx with `site` (the contents of an http {} block) listening on `port`.
fn start_nginx(nginx: &Path, scratch: &Scratch, port: u16, site: &str) -> Proxy {
    let dir = &scratch.0;
    std::fs::write(dir.join("site.conf"), site).unwrap();
    let d = dir.display();
    // A minimal main config around the site file, as /etc/nginx/nginx.conf would include it;
    // every path nginx writes to is in the scratch directory.
    let main = format!(
        "daemon off;\nmaster_process off;\npid {d}/nginx.pid;\nerror_log {d}/error.log info;\n\
         events {{ worker_connections 64; }}\n\
         http {{\n  access_log off;\n  client_body_temp_path {d}/body;\n  proxy_temp_path {d}/proxy;\n\
         fastcgi_temp_path {d}/fastcgi;\n  uwsgi_temp_path {d}/uwsgi;\n  scgi_temp_path {d}/scgi;\n\
         include {d}/site.conf;\n}}\n"
    );
    std::fs::write(dir.join("nginx.conf"), main).unwrap();
    let mut command = Command::new(nginx);
    command
        .arg("-c")
        .arg(dir.join("nginx.conf"))
        .arg("-p")
        .arg(dir)
        .arg("-e")
        .arg(dir.join("error.log"));
    Proxy::start(command, port, dir.join("stderr.log"))
}

// ---------------------------------------------------------------------------------------------
// ringws doctor

struct Run {
    code: i32,
    stdout: String,
    stderr: String,
}

/// Runs `ringws doctor ARGS`, killed after [`RUN_LIMIT`].
fn doctor(args: &[&str]) -> Run {
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

#[track_caller]
fn assert_run(run: &Run, code: i32, mentions: &[&str], proxy: &Proxy) {
    assert_eq!(
        run.code,
        code,
        "exit code\nstdout:\n{}\nstderr:\n{}\nnginx:\n{}",
        run.stdout,
        run.stderr,
        proxy.output()
    );
    for text in mentions {
        assert!(
            run.stdout.contains(text),
            "{text:?} not in stdout:\n{}",
            run.stdout
        );
    }
}

// ---------------------------------------------------------------------------------------------
// Tests

#[test]
fn doctor_passes_through_nginx_with_the_deploy_config() {
    let Some((nginx, _)) = tools() else {
        return;
    };
    let server = ServerProcess::start(&["--allowed-origins", "https://app.example.com"]);
    let scratch = Scratch::new("deploy");
    let port = free_port();
    let proxy = start_nginx(&nginx, &scratch, port, &deploy_site(port, server.addr));
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
    let Some((nginx, _)) = tools() else {
        return;
    };
    let server = ServerProcess::start(&[]);
    let scratch = Scratch::new("stripped");
    let port = free_port();
    let site = deploy_site(port, server.addr);
    let kept: Vec<&str> = site
        .lines()
        .filter(|line| {
            let line = line.trim_start();
            !line.starts_with("proxy_set_header Upgrade")
                && !line.starts_with("proxy_set_header Connection")
        })
        .collect();
    assert_eq!(kept.len() + 2, site.lines().count(), "both lines removed");
    let proxy = start_nginx(&nginx, &scratch, port, &(kept.join("\n") + "\n"));

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
    let Some((nginx, _)) = tools() else {
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
    let Some((nginx, _)) = tools() else {
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
    let Some((nginx, openssl)) = tools() else {
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
    // wss:// to the same port: doctor recognises TLS and says what it cannot check.
    let run = doctor(&[&format!("wss://127.0.0.1:{port}/")]);
    assert_run(&run, 4, &["TLS"], &proxy);
}
