//! deploy/nginx/ringws.conf and deploy/haproxy/ringws.cfg with a real ringws behind them: a
//! WebSocket echo session through each proxy, and ringws' refusal when a proxy strips the
//! upgrade headers.
//!
//! Needs the `nginx` and `haproxy` binaries (Debian: `apt-get install nginx haproxy`); without
//! them the test fails, unless RINGWS_SKIP_PROXY_TESTS=1.

mod common;

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use common::{client_frame, read_frame, read_response, upgrade_request, ServerProcess, ACCEPT};

/// How long a proxy has to start listening.
const PROXY_START_TIMEOUT: Duration = Duration::from_secs(5);
/// Bound on every read from a proxy.
const READ_TIMEOUT: Duration = Duration::from_secs(5);

/// A proxy process, killed when dropped.
struct Proxy {
    child: Child,
    name: &'static str,
    log: PathBuf,
}

impl Drop for Proxy {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Proxy {
    fn start(name: &'static str, mut command: Command, port: u16, log: PathBuf) -> Proxy {
        let child = command
            .stdout(Stdio::null())
            .stderr(Stdio::from(std::fs::File::create(&log).unwrap()))
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {name}: {e}"));
        let mut proxy = Proxy { child, name, log };
        let deadline = Instant::now() + PROXY_START_TIMEOUT;
        loop {
            if TcpStream::connect(("127.0.0.1", port)).is_ok() {
                return proxy;
            }
            if let Ok(Some(status)) = proxy.child.try_wait() {
                panic!("{name} exited with {status}:\n{}", proxy.output());
            }
            assert!(
                Instant::now() < deadline,
                "{name} did not listen on port {port} within {PROXY_START_TIMEOUT:?}:\n{}",
                proxy.output()
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    fn output(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }
}

/// A scratch directory for one proxy run, removed when dropped.
struct Scratch(PathBuf);

impl Scratch {
    fn new(name: &str) -> Scratch {
        let dir = std::env::temp_dir().join(format!("ringws-proxy-{}-{name}", std::process::id()));
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

/// Both proxies, or None when the run asked to skip; panics with install advice otherwise.
fn proxies() -> Option<(PathBuf, PathBuf)> {
    match (find_binary("nginx"), find_binary("haproxy")) {
        (Some(nginx), Some(haproxy)) => Some((nginx, haproxy)),
        (nginx, haproxy) => {
            if std::env::var("RINGWS_SKIP_PROXY_TESTS").as_deref() == Ok("1") {
                eprintln!("skipping the proxy tests: RINGWS_SKIP_PROXY_TESTS=1");
                return None;
            }
            let missing: Vec<&str> = [("nginx", nginx.is_none()), ("haproxy", haproxy.is_none())]
                .into_iter()
                .filter_map(|(name, missing)| missing.then_some(name))
                .collect();
            panic!(
                "{} not found: install with `apt-get install -y nginx haproxy` to test the \
                 deploy/ proxy configs, or set RINGWS_SKIP_PROXY_TESTS=1 to skip them",
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

/// Starts nginx with deploy/nginx/ringws.conf (after `edit`) on `port`, in front of `ringws`.
fn start_nginx(
    nginx: &Path,
    scratch: &Scratch,
    port: u16,
    ringws: SocketAddr,
    edit: impl Fn(String) -> String,
) -> Proxy {
    let dir = &scratch.0;
    let site = deploy_file("deploy/nginx/ringws.conf");
    let site = set_marked_line(
        &site,
        "# ringws-listen",
        &format!("listen 127.0.0.1:{port};"),
    );
    let site = set_marked_line(&site, "# ringws-upstream", &format!("server {ringws};"));
    std::fs::write(dir.join("ringws.conf"), edit(site)).unwrap();
    let d = dir.display();
    // A minimal main config around the site file, as /etc/nginx/nginx.conf would include it;
    // every path nginx writes to is in the scratch directory.
    let main = format!(
        "daemon off;\nmaster_process off;\npid {d}/nginx.pid;\nerror_log {d}/error.log info;\n\
         events {{ worker_connections 64; }}\n\
         http {{\n  access_log off;\n  client_body_temp_path {d}/body;\n  proxy_temp_path {d}/proxy;\n\
         fastcgi_temp_path {d}/fastcgi;\n  uwsgi_temp_path {d}/uwsgi;\n  scgi_temp_path {d}/scgi;\n\
         include {d}/ringws.conf;\n}}\n"
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
    Proxy::start("nginx", command, port, dir.join("stderr.log"))
}

fn start_haproxy(haproxy: &Path, scratch: &Scratch, port: u16, ringws: SocketAddr) -> Proxy {
    let cfg = deploy_file("deploy/haproxy/ringws.cfg");
    let cfg = set_marked_line(&cfg, "# ringws-listen", &format!("bind 127.0.0.1:{port}"));
    let cfg = set_marked_line(
        &cfg,
        "# ringws-upstream",
        &format!("server ringws1 {ringws}"),
    );
    // The test process's fd limit is far below the production maxconn.
    let cfg = set_marked_line(&cfg, "# ringws-maxconn", "maxconn 1000");
    let path = scratch.0.join("haproxy.cfg");
    std::fs::write(&path, cfg).unwrap();
    let mut command = Command::new(haproxy);
    command.arg("-db").arg("-f").arg(&path);
    Proxy::start("haproxy", command, port, scratch.0.join("stderr.log"))
}

fn connect(port: u16) -> TcpStream {
    let stream = TcpStream::connect(("127.0.0.1", port)).expect("connect to the proxy");
    stream.set_read_timeout(Some(READ_TIMEOUT)).unwrap();
    stream.set_write_timeout(Some(READ_TIMEOUT)).unwrap();
    stream
}

/// Upgrade through the proxy, send one masked text frame, read the echo, close.
fn echo_session(proxy: &Proxy, port: u16) {
    let mut stream = connect(port);
    stream.write_all(upgrade_request("/").as_bytes()).unwrap();
    let response = read_response(&mut stream);
    assert_eq!(
        response.status,
        101,
        "{}: {}\n{}",
        proxy.name,
        response.head,
        proxy.output()
    );
    assert_eq!(
        response.header("Sec-WebSocket-Accept").as_deref(),
        Some(ACCEPT)
    );
    let message = format!("hello through {}", proxy.name);
    stream
        .write_all(&client_frame(true, 0x1, message.as_bytes()))
        .unwrap();
    let (fin, opcode, payload) = read_frame(&mut stream);
    assert!(fin);
    assert_eq!(opcode, 0x1, "{}: expected a text frame", proxy.name);
    assert_eq!(payload, message.as_bytes(), "{}", proxy.name);
    stream
        .write_all(&client_frame(true, 0x8, &1000u16.to_be_bytes()))
        .unwrap();
    let (_, opcode, payload) = read_frame(&mut stream);
    assert_eq!(
        (opcode, payload.as_slice()),
        (0x8, &1000u16.to_be_bytes()[..])
    );
}

/// Reads an HTTP response (head and a Content-Length body) without waiting for the proxy to
/// close its keep-alive connection. Returns (status, body).
fn read_refusal(stream: &mut TcpStream) -> (u16, String) {
    let mut buf = Vec::new();
    let mut chunk = [0u8; 4096];
    let deadline = Instant::now() + READ_TIMEOUT;
    loop {
        if let Some(end) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            let head = String::from_utf8_lossy(&buf[..end]).into_owned();
            let length = head.lines().find_map(|line| {
                let (name, value) = line.split_once(':')?;
                name.eq_ignore_ascii_case("content-length")
                    .then(|| value.trim().parse::<usize>().ok())?
            });
            let body_start = end + 4;
            if length.is_some_and(|n| buf.len() >= body_start + n) || Instant::now() > deadline {
                let status = head.split_whitespace().nth(1).unwrap().parse().unwrap();
                let body_end = length.map_or(buf.len(), |n| body_start + n);
                return (
                    status,
                    String::from_utf8_lossy(&buf[body_start..body_end]).into_owned(),
                );
            }
        }
        match stream.read(&mut chunk) {
            Ok(0) | Err(_) => {
                let text = String::from_utf8_lossy(&buf).into_owned();
                let status = text.split_whitespace().nth(1).and_then(|s| s.parse().ok());
                let body = text
                    .split_once("\r\n\r\n")
                    .map_or("", |(_, body)| body)
                    .to_owned();
                return (
                    status.unwrap_or_else(|| panic!("no response: {text:?}")),
                    body,
                );
            }
            Ok(n) => buf.extend_from_slice(&chunk[..n]),
        }
    }
}

#[test]
fn websocket_echo_through_nginx_and_haproxy() {
    let Some((nginx, haproxy)) = proxies() else {
        return;
    };
    let server = ServerProcess::start(&["--cores", "1"]);

    let scratch = Scratch::new("nginx");
    let port = free_port();
    let proxy = start_nginx(&nginx, &scratch, port, server.addr, |site| site);
    echo_session(&proxy, port);
    drop(proxy);

    let scratch = Scratch::new("haproxy");
    let port = free_port();
    let proxy = start_haproxy(&haproxy, &scratch, port, server.addr);
    echo_session(&proxy, port);
}

#[test]
fn nginx_without_upgrade_headers_gets_a_refusal_naming_the_proxy() {
    let Some((nginx, _)) = proxies() else {
        return;
    };
    let server = ServerProcess::start(&["--cores", "1"]);
    let scratch = Scratch::new("nginx-broken");
    let port = free_port();
    let strip_upgrade = |site: String| {
        let kept: Vec<&str> = site
            .lines()
            .filter(|line| {
                let line = line.trim_start();
                !line.starts_with("proxy_set_header Upgrade")
                    && !line.starts_with("proxy_set_header Connection")
            })
            .collect();
        assert!(kept.len() + 2 == site.lines().count(), "both lines removed");
        kept.join("\n") + "\n"
    };
    let proxy = start_nginx(&nginx, &scratch, port, server.addr, strip_upgrade);
    let mut stream = connect(port);
    stream.write_all(upgrade_request("/").as_bytes()).unwrap();
    let (status, body) = read_refusal(&mut stream);
    assert!(
        status == 400 || status == 426,
        "expected ringws' refusal, got {status}: {body}\n{}",
        proxy.output()
    );
    assert!(
        body.contains("proxy") && body.contains("Upgrade"),
        "the reason must point at a proxy stripping the upgrade headers: {body}"
    );
}
