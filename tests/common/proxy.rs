//! Real nginx and haproxy in front of ringws, each in a scratch directory, for the tests that
//! run deploy/nginx/ringws.conf and deploy/haproxy/ringws.cfg.
//!
//! The binaries come from PATH or the sbin directories; without them [`tools`] fails the test,
//! unless RINGWS_SKIP_PROXY_TESTS=1.

use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// How long a proxy has to start listening.
pub const PROXY_START_TIMEOUT: Duration = Duration::from_secs(5);

/// A proxy process, killed when dropped.
pub struct Proxy {
    child: Child,
    pub name: &'static str,
    log: PathBuf,
}

impl Drop for Proxy {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Proxy {
    /// Spawns `command` with its stderr in `log` and waits until something listens on `port`.
    pub fn start(name: &'static str, mut command: Command, port: u16, log: PathBuf) -> Proxy {
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

    /// What the proxy has written to stderr so far.
    pub fn output(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }
}

/// A scratch directory for one proxy run, removed when dropped. Named after the test crate, the
/// process and `name`, so concurrent runs do not share one.
pub struct Scratch(pub PathBuf);

impl Scratch {
    pub fn new(name: &str) -> Scratch {
        let dir = std::env::temp_dir().join(format!(
            "ringws-{}-{}-{name}",
            env!("CARGO_CRATE_NAME"),
            std::process::id()
        ));
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
pub fn find_binary(name: &str) -> Option<PathBuf> {
    let path = std::env::var("PATH").unwrap_or_default();
    let found = path
        .split(':')
        .chain(["/usr/sbin", "/usr/local/sbin", "/sbin"])
        .map(|dir| Path::new(dir).join(name))
        .find(|candidate| candidate.is_file());
    found
}

/// The binaries `names`, or None when the run asked to skip; panics with install advice
/// otherwise. `purpose` completes "to test …" and "skipping the tests of …".
pub fn tools<const N: usize>(names: [&str; N], purpose: &str) -> Option<[PathBuf; N]> {
    let found = names.map(find_binary);
    if found.iter().all(Option::is_some) {
        return Some(found.map(Option::unwrap));
    }
    if std::env::var("RINGWS_SKIP_PROXY_TESTS").as_deref() == Ok("1") {
        eprintln!("skipping the tests of {purpose}: RINGWS_SKIP_PROXY_TESTS=1");
        return None;
    }
    let missing: Vec<&str> = names
        .iter()
        .zip(&found)
        .filter_map(|(name, path)| path.is_none().then_some(*name))
        .collect();
    panic!(
        "{} not found: install with `apt-get install -y {}` to test {purpose}, or set \
         RINGWS_SKIP_PROXY_TESTS=1 to skip them",
        missing.join(" and "),
        names.join(" ")
    );
}

pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// `text` with the line ending in `marker` replaced by `indent + replacement + marker`.
pub fn set_marked_line(text: &str, marker: &str, replacement: &str) -> String {
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

/// A file of the repository, e.g. `deploy/nginx/ringws.conf`.
pub fn deploy_file(path: &str) -> String {
    std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join(path)).expect(path)
}

/// deploy/nginx/ringws.conf set to listen on `port` and forward to `ringws`.
pub fn deploy_nginx_site(port: u16, ringws: SocketAddr) -> String {
    let site = deploy_file("deploy/nginx/ringws.conf");
    let site = set_marked_line(
        &site,
        "# ringws-listen",
        &format!("listen 127.0.0.1:{port};"),
    );
    set_marked_line(&site, "# ringws-upstream", &format!("server {ringws};"))
}

/// `site` without its `proxy_set_header Upgrade` and `proxy_set_header Connection` lines: a
/// proxy that drops the hop-by-hop upgrade headers. Asserts that both lines were there.
pub fn strip_upgrade_headers(site: &str) -> String {
    let kept: Vec<&str> = site
        .lines()
        .filter(|line| {
            let line = line.trim_start();
            !line.starts_with("proxy_set_header Upgrade")
                && !line.starts_with("proxy_set_header Connection")
        })
        .collect();
    assert_eq!(kept.len() + 2, site.lines().count(), "both lines removed");
    kept.join("\n") + "\n"
}

/// Starts nginx with `site` (the contents of an http {} block) listening on `port`.
pub fn start_nginx(nginx: &Path, scratch: &Scratch, port: u16, site: &str) -> Proxy {
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
    Proxy::start("nginx", command, port, dir.join("stderr.log"))
}

/// nginx with deploy/nginx/ringws.conf (after `edit`) on a free port in front of `ringws`, in
/// the scratch directory `name`. Bind as `let (_scratch, port, proxy) = …` so nginx stops
/// before its directory goes.
pub fn deploy_nginx(
    nginx: &Path,
    name: &str,
    ringws: SocketAddr,
    edit: impl FnOnce(String) -> String,
) -> (Scratch, u16, Proxy) {
    let scratch = Scratch::new(name);
    let port = free_port();
    let proxy = start_nginx(
        nginx,
        &scratch,
        port,
        &edit(deploy_nginx_site(port, ringws)),
    );
    (scratch, port, proxy)
}

/// Starts haproxy with deploy/haproxy/ringws.cfg on `port`, in front of `ringws`.
pub fn start_haproxy(haproxy: &Path, scratch: &Scratch, port: u16, ringws: SocketAddr) -> Proxy {
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

/// deploy/haproxy/ringws-nodes.cfg set to listen on `port` and balance over `nodes` (each a
/// WebSocket address and its admin listener's): the committed file's first `# ringws-node`
/// line is the template of every node's line (its checks come from the committed
/// `default-server` line), the others are dropped.
pub fn start_haproxy_nodes(
    haproxy: &Path,
    scratch: &Scratch,
    port: u16,
    nodes: &[(SocketAddr, SocketAddr)],
) -> Proxy {
    let cfg = deploy_file("deploy/haproxy/ringws-nodes.cfg");
    let cfg = set_marked_line(&cfg, "# ringws-listen", &format!("bind 127.0.0.1:{port}"));
    let cfg = set_marked_line(&cfg, "# ringws-maxconn", "maxconn 1000");
    let mut out = Vec::new();
    let mut placed = false;
    for line in cfg.lines() {
        let Some(server) = line.strip_suffix("# ringws-node") else {
            out.push(line.to_owned());
            continue;
        };
        let words: Vec<&str> = server.split_whitespace().collect();
        assert!(
            matches!(words.as_slice(), ["server", _, _, "port", _]),
            "a # ringws-node line is `server NAME ADDR port ADMIN_PORT`: {line}"
        );
        if std::mem::replace(&mut placed, true) {
            continue;
        }
        let indent = &line[..line.len() - line.trim_start().len()];
        for (i, (ws, admin)) in nodes.iter().enumerate() {
            let port = admin.port();
            out.push(format!("{indent}server ringws{} {ws} port {port}", i + 1));
        }
    }
    assert!(placed, "no # ringws-node line in ringws-nodes.cfg");
    let path = scratch.0.join("haproxy.cfg");
    std::fs::write(&path, out.join("\n") + "\n").unwrap();
    let mut command = Command::new(haproxy);
    command.arg("-db").arg("-f").arg(&path);
    Proxy::start("haproxy", command, port, scratch.0.join("stderr.log"))
}
