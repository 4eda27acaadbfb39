//! deploy/prometheus/ against the real Prometheus: `promtool` checks the scrape config, the
//! rules (and their unit tests) and ringws' exposition; a real `prometheus` started with the
//! deploy config scrapes a running ringws, and its HTTP API returns the traffic this test made;
//! the Grafana dashboard parses and only queries families ringws exports.
//!
//! Needs `/usr/bin/prometheus` and `/usr/bin/promtool` (Debian: `apt-get install prometheus`);
//! without them the tests fail, unless RINGWS_SKIP_PROMETHEUS_TESTS=1.

mod common;

use std::collections::BTreeSet;
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use common::{client_frame, exchange, read_close, read_frame, ws_connect, ServerProcess};
use serde_json::Value;

/// How long Prometheus has to start, scrape and evaluate until every expected value shows.
const PROMETHEUS_SETTLE_TIMEOUT: Duration = Duration::from_secs(20);
/// Bound on each HTTP exchange with Prometheus.
const HTTP_TIMEOUT: Duration = Duration::from_secs(5);

fn repo() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

fn deploy() -> PathBuf {
    repo().join("deploy/prometheus")
}

/// The path of `tool` on PATH; fails the test when it is missing, unless skipping is asked for.
fn require(tool: &str) -> Option<PathBuf> {
    let path = std::env::var_os("PATH").unwrap_or_default();
    if let Some(found) = std::env::split_paths(&path)
        .map(|dir| dir.join(tool))
        .find(|p| p.is_file())
    {
        return Some(found);
    }
    if std::env::var("RINGWS_SKIP_PROMETHEUS_TESTS").as_deref() == Ok("1") {
        eprintln!("skipping: {tool} not found and RINGWS_SKIP_PROMETHEUS_TESTS=1");
        return None;
    }
    panic!(
        "{tool} not found on PATH: install it with `apt-get install -y prometheus` to test \
         deploy/prometheus/, or set RINGWS_SKIP_PROMETHEUS_TESTS=1 to skip these tests"
    );
}

/// Runs `promtool ARGS` (with `stdin` fed in), asserts it succeeds, returns what it printed.
fn promtool(promtool: &Path, args: &[&str], stdin: Option<&str>) -> String {
    let mut child = Command::new(promtool)
        .args(args)
        .current_dir(repo())
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start promtool");
    let mut input = child.stdin.take().unwrap();
    input.write_all(stdin.unwrap_or("").as_bytes()).unwrap();
    drop(input);
    let out = child.wait_with_output().unwrap();
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        out.status.success(),
        "promtool {} failed ({}):\n{text}",
        args.join(" "),
        out.status
    );
    text
}

fn rule_files() -> Vec<String> {
    let mut files: Vec<String> = std::fs::read_dir(deploy().join("rules"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "yml"))
        .map(|p| p.strip_prefix(repo()).unwrap().display().to_string())
        .collect();
    files.sort();
    assert_eq!(files.len(), 2, "{files:?}");
    files
}

#[test]
fn promtool_accepts_the_config_the_rules_and_their_unit_tests() {
    let Some(tool) = require("promtool") else {
        return;
    };
    let out = promtool(
        &tool,
        &["check", "config", "deploy/prometheus/prometheus.yml"],
        None,
    );
    assert!(out.contains("2 rule files found"), "{out}");
    let files = rule_files();
    let mut args = vec!["check", "rules"];
    args.extend(files.iter().map(String::as_str));
    promtool(&tool, &args, None);
    promtool(
        &tool,
        &[
            "test",
            "rules",
            "deploy/prometheus/tests/ringws-rules.test.yml",
        ],
        None,
    );
}

#[test]
fn promtool_accepts_the_exposition_of_a_running_ringws() {
    let Some(tool) = require("promtool") else {
        return;
    };
    let server = ServerProcess::start(&["--cores", "2"]);
    // Traffic, so that histograms, per-type and per-reason series carry values.
    let mut c = ws_connect(server.addr);
    c.write_all(&client_frame(true, 0x2, b"\x01\x02")).unwrap();
    assert_eq!(read_frame(&mut c).2, b"\x01\x02");
    assert_eq!(
        exchange(server.addr, b"GET / HTTP/1.1\r\nHost: x\r\n\r\n").status,
        426
    );
    let (status, body) = common::admin_get(server.admin.expect("admin listener"), "/metrics");
    assert_eq!(status, 200);
    let out = promtool(&tool, &["check", "metrics"], Some(&body));
    assert!(
        out.trim().is_empty(),
        "promtool check metrics: {out}\n{body}"
    );
}

/// Metric families ringws exports: every `"ringws_..."` string in src/metrics.rs and src/metrics/ outside their
/// unit tests.
fn exported_families() -> BTreeSet<String> {
    let mut files = vec![repo().join("src/metrics.rs")];
    for entry in std::fs::read_dir(repo().join("src/metrics")).unwrap() {
        files.push(entry.unwrap().path());
    }
    let sources: Vec<String> = files
        .iter()
        .map(|file| std::fs::read_to_string(file).unwrap())
        .collect();
    let families: BTreeSet<String> = sources
        .iter()
        .flat_map(|src| src.split("#[cfg(test)]").next().unwrap().split('"'))
        .skip(1)
        .step_by(2)
        .filter(|s| s.starts_with("ringws_") && s.bytes().all(is_name_byte))
        .map(str::to_string)
        .collect();
    assert!(families.len() > 30, "{families:?}");
    families
}

fn is_name_byte(b: u8) -> bool {
    b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_'
}

/// The `ringws_*` metric names a text mentions.
fn mentioned_metrics(text: &str) -> BTreeSet<String> {
    let bytes = text.as_bytes();
    let mut found = BTreeSet::new();
    let mut i = 0;
    while let Some(at) = text[i..].find("ringws_") {
        let start = i + at;
        let preceded_by_name =
            start > 0 && (is_name_byte(bytes[start - 1]) || bytes[start - 1] == b':');
        let end = start
            + bytes[start..]
                .iter()
                .take_while(|&&b| is_name_byte(b))
                .count();
        if !preceded_by_name {
            found.insert(text[start..end].to_string());
        }
        i = end;
    }
    found
}

/// True when `name` is an exported family or a histogram's `_bucket`/`_sum`/`_count` series.
fn is_exported(name: &str, families: &BTreeSet<String>) -> bool {
    families.contains(name)
        || ["_bucket", "_sum", "_count"].iter().any(|suffix| {
            name.strip_suffix(suffix)
                .is_some_and(|f| families.contains(f) && f.ends_with("_seconds"))
        })
}

fn dashboard() -> Value {
    let text = std::fs::read_to_string(deploy().join("grafana/ringws-dashboard.json")).unwrap();
    serde_json::from_str(&text).expect("the dashboard is valid JSON")
}

/// (panel title, expr) of every query in the dashboard.
fn dashboard_queries(d: &Value) -> Vec<(String, String)> {
    let mut out = Vec::new();
    for panel in d["panels"].as_array().unwrap() {
        let title = panel["title"].as_str().unwrap_or("").to_string();
        for t in panel["targets"].as_array().into_iter().flatten() {
            out.push((title.clone(), t["expr"].as_str().unwrap().to_string()));
            assert_eq!(
                t["datasource"]["uid"], "${DS_PROMETHEUS}",
                "panel {title:?}"
            );
        }
    }
    out
}

#[test]
fn dashboard_and_rules_only_use_exported_families() {
    let families = exported_families();
    let d = dashboard();
    assert!(d["schemaVersion"].as_u64().unwrap() >= 36, "schemaVersion");
    let vars = d["templating"]["list"].as_array().unwrap();
    assert!(
        vars.iter()
            .any(|v| v["name"] == "DS_PROMETHEUS" && v["type"] == "datasource"),
        "a Prometheus datasource variable named DS_PROMETHEUS"
    );
    let queries = dashboard_queries(&d);
    assert!(queries.len() >= 20, "{queries:?}");
    for (title, expr) in &queries {
        let names = mentioned_metrics(expr);
        assert!(
            !names.is_empty(),
            "panel {title:?} queries no ringws metric: {expr}"
        );
        for name in names {
            assert!(
                is_exported(&name, &families),
                "panel {title:?} queries {name}, which src/metrics.rs does not export: {expr}"
            );
        }
    }
    // The panels the operator guide promises.
    let all: String = queries.iter().map(|(_, e)| e.as_str()).collect();
    for family in [
        "ringws_connections_open",
        "ringws_max_connections",
        "ringws_process_open_fds",
        "ringws_process_max_fds",
        "ringws_handshakes_refused_total",
        "ringws_handshake_duration_seconds_bucket",
        "ringws_messages_received_total",
        "ringws_sent_payload_bytes_total",
        "ringws_connections_closed_total",
        "ringws_heartbeat_timeouts_total",
        "ringws_slow_consumer_closes_total",
        "ringws_outbound_queued_bytes",
        "ringws_backpressured_connections",
        "ringws_io_uring_submissions_total",
        "ringws_process_resident_memory_bytes",
    ] {
        assert!(all.contains(family), "no panel shows {family}");
    }

    let recording = std::fs::read_to_string(deploy().join("rules/ringws-recording.yml")).unwrap();
    let alerts = std::fs::read_to_string(deploy().join("rules/ringws-alerts.yml")).unwrap();
    for (file, text) in [("recording", &recording), ("alerts", &alerts)] {
        for name in mentioned_metrics(text) {
            assert!(
                is_exported(&name, &families),
                "the {file} rules mention {name}, which src/metrics.rs does not export"
            );
        }
    }
    // Every recording rule the alerts read is defined.
    for word in alerts.split(|c: char| !(c.is_ascii_alphanumeric() || c == '_' || c == ':')) {
        if word.starts_with("ringws:") {
            assert!(
                recording.contains(&format!("record: {word}\n")),
                "the alerts read {word}, which ringws-recording.yml does not record"
            );
        }
    }
    // docs/metrics.md describes every family and every alert.
    let doc = std::fs::read_to_string(repo().join("docs/metrics.md")).unwrap();
    for family in &families {
        assert!(
            doc.contains(&format!("`{family}`")),
            "docs/metrics.md lacks {family}"
        );
    }
    for line in alerts.lines() {
        if let Some(name) = line.trim().strip_prefix("- alert: ") {
            assert!(
                doc.contains(&format!("### {name}")),
                "docs/metrics.md has no section for {name}"
            );
        }
    }
}

/// A process killed when dropped, and a directory removed when dropped.
struct Prometheus {
    child: Child,
    dir: PathBuf,
    web: SocketAddr,
}

impl Drop for Prometheus {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

impl Prometheus {
    /// Starts `prometheus` with a copy of deploy/prometheus whose target is `admin`, scraping
    /// and evaluating every second.
    fn start(binary: &Path, admin: SocketAddr) -> Prometheus {
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .subsec_nanos();
        let dir =
            std::env::temp_dir().join(format!("ringws-prometheus-{}-{nanos}", std::process::id()));
        std::fs::create_dir_all(dir.join("rules")).unwrap();
        for file in rule_files() {
            let name = Path::new(&file).file_name().unwrap();
            std::fs::copy(repo().join(&file), dir.join("rules").join(name)).unwrap();
        }
        let config = std::fs::read_to_string(deploy().join("prometheus.yml")).unwrap();
        let config = rewrite_config(&config, admin);
        std::fs::write(dir.join("prometheus.yml"), config).unwrap();

        let web = free_port();
        let log = std::fs::File::create(dir.join("prometheus.log")).unwrap();
        let child = Command::new(binary)
            .arg(format!(
                "--config.file={}",
                dir.join("prometheus.yml").display()
            ))
            .arg(format!(
                "--storage.tsdb.path={}",
                dir.join("data").display()
            ))
            .arg(format!("--web.listen-address={web}"))
            .arg("--log.level=warn")
            .stdin(Stdio::null())
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .spawn()
            .expect("start prometheus");
        Prometheus { child, dir, web }
    }

    fn assert_running(&mut self) {
        if let Ok(Some(status)) = self.child.try_wait() {
            panic!("prometheus exited with {status}:\n{}", self.log());
        }
    }

    /// Waits until the first scrape of ringws has landed.
    fn wait_first_scrape(&mut self) {
        let deadline = Instant::now() + PROMETHEUS_SETTLE_TIMEOUT;
        while self.scalar(r#"up{job="ringws"}"#) != Some(1.0) {
            self.assert_running();
            assert!(
                Instant::now() < deadline,
                "Prometheus did not scrape ringws within {PROMETHEUS_SETTLE_TIMEOUT:?}:\n{}",
                self.log()
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    fn log(&self) -> String {
        std::fs::read_to_string(self.dir.join("prometheus.log")).unwrap_or_default()
    }

    /// GET `path` from the HTTP API; None while Prometheus is not answering yet.
    fn api(&self, path: &str) -> Option<Value> {
        let body = http_get(self.web, path).ok()?;
        let v: Value = serde_json::from_str(&body).ok()?;
        (v["status"] == "success").then_some(v)
    }

    /// The instant vector of `query` as (labels, value) pairs.
    fn query(&self, query: &str) -> Option<Vec<(Value, f64)>> {
        let v = self.api(&format!("/api/v1/query?query={}", percent_encode(query)))?;
        let samples = v["data"]["result"].as_array()?;
        Some(
            samples
                .iter()
                .map(|s| {
                    let value = s["value"][1].as_str().unwrap().parse().unwrap();
                    (s["metric"].clone(), value)
                })
                .collect(),
        )
    }

    /// The single value of `query`, if it has exactly one sample.
    fn scalar(&self, query: &str) -> Option<f64> {
        match self.query(query)?.as_slice() {
            [(_, v)] => Some(*v),
            _ => None,
        }
    }
}

/// The deploy config with its target replaced by `admin` and every interval set to 1 s. Each
/// edit must apply, so a change to the deploy file cannot silently leave it untested.
fn rewrite_config(config: &str, admin: SocketAddr) -> String {
    let mut edits = [
        ("# ringws-admin", 0usize),
        ("scrape_interval: 15s", 0),
        ("evaluation_interval: 15s", 0),
        ("scrape_timeout: 10s", 0),
    ];
    let mut out = String::new();
    for line in config.lines() {
        let mut line = line.to_string();
        for (marker, count) in edits.iter_mut() {
            if line.contains(*marker) {
                *count += 1;
                line = if *marker == "# ringws-admin" {
                    let indent = &line[..line.len() - line.trim_start().len()];
                    format!("{indent}- {admin}")
                } else {
                    let key = marker.split(':').next().unwrap();
                    line.replace(*marker, &format!("{key}: 1s"))
                };
            }
        }
        out.push_str(&line);
        out.push('\n');
    }
    assert_eq!(edits[0].1, 1, "one target line ending in `# ringws-admin`");
    for (marker, count) in &edits[1..] {
        assert!(
            *count >= 1,
            "deploy/prometheus/prometheus.yml has no `{marker}`"
        );
    }
    out
}

fn free_port() -> SocketAddr {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
}

fn percent_encode(s: &str) -> String {
    s.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}

/// A hand-written HTTP/1.1 GET; returns the body of a 200 answer.
fn http_get(addr: SocketAddr, path: &str) -> std::io::Result<String> {
    let mut s = TcpStream::connect_timeout(&addr, HTTP_TIMEOUT)?;
    s.set_read_timeout(Some(HTTP_TIMEOUT))?;
    write!(
        s,
        "GET {path} HTTP/1.1\r\nHost: {addr}\r\nAccept: application/json\r\nConnection: close\r\n\r\n"
    )?;
    let mut raw = Vec::new();
    s.read_to_end(&mut raw)?;
    let text = String::from_utf8_lossy(&raw);
    let (head, body) = text
        .split_once("\r\n\r\n")
        .ok_or_else(|| std::io::Error::other("no response head"))?;
    if !head.starts_with("HTTP/1.1 200") {
        return Err(std::io::Error::other(format!("{head}\n{body}")));
    }
    let chunked = head.lines().any(|l| {
        l.to_ascii_lowercase()
            .starts_with("transfer-encoding: chunked")
    });
    Ok(if chunked {
        dechunk(body)
    } else {
        body.to_string()
    })
}

/// Joins the chunks of a chunked transfer-encoded body.
fn dechunk(mut body: &str) -> String {
    let mut out = String::new();
    while let Some((size, rest)) = body.split_once("\r\n") {
        let size = usize::from_str_radix(size.split(';').next().unwrap().trim(), 16).unwrap_or(0);
        if size == 0 || rest.len() < size {
            break;
        }
        out.push_str(&rest[..size]);
        body = rest[size..].trim_start_matches("\r\n");
    }
    out
}

#[test]
fn prometheus_scrapes_ringws_through_the_deploy_config() {
    let Some(binary) = require("prometheus") else {
        return;
    };
    let server = ServerProcess::start(&["--cores", "2"]);
    let admin = server.admin.expect("admin listener");
    // Traffic after the first scrape, so that the 5-minute rates see it happen.
    let mut prometheus = Prometheus::start(&binary, admin);
    prometheus.wait_first_scrape();

    // Known traffic: 7 upgrades, 25 text echoes, 2 clean closes, 3 plain GETs refused.
    let mut clients: Vec<_> = (0..7).map(|_| ws_connect(server.addr)).collect();
    for i in 0..25 {
        let c = &mut clients[i % 7];
        let msg = format!("message {i}");
        c.write_all(&client_frame(true, 0x1, msg.as_bytes()))
            .unwrap();
        assert_eq!(read_frame(c).2, msg.as_bytes());
    }
    for mut c in clients.drain(..2) {
        c.write_all(&client_frame(true, 0x8, &1000u16.to_be_bytes()))
            .unwrap();
        assert_eq!(read_close(&mut c), Some(1000));
        assert!(common::closed_by_server(&mut c));
    }
    for _ in 0..3 {
        let r = exchange(server.addr, b"GET / HTTP/1.1\r\nHost: x\r\n\r\n");
        assert_eq!(r.status, 426, "{}", r.body);
    }

    let expected: [(&str, f64); 8] = [
        (r#"up{job="ringws"}"#, 1.0),
        ("sum(ringws_handshakes_completed_total)", 7.0),
        (r#"sum(ringws_messages_received_total{type="text"})"#, 25.0),
        (r#"sum(ringws_messages_sent_total{type="text"})"#, 25.0),
        (
            r#"sum(ringws_handshakes_refused_total{reason="not_an_upgrade"})"#,
            3.0,
        ),
        ("sum(ringws_connections_open)", clients.len() as f64),
        (
            r#"sum(ringws_connections_closed_total{initiator="peer",code="1000"})"#,
            2.0,
        ),
        // Recording rules: evaluated from the scraped series.
        ("ringws:connections_open:sum", clients.len() as f64),
    ];
    let deadline = Instant::now() + PROMETHEUS_SETTLE_TIMEOUT;
    let mut seen: Vec<(&str, Option<f64>)>;
    loop {
        seen = expected
            .iter()
            .map(|(q, _)| (*q, prometheus.scalar(q)))
            .collect();
        let all_match = seen
            .iter()
            .zip(&expected)
            .all(|((_, got), (_, want))| *got == Some(*want));
        // The rate-based rules need two scrapes; the ratios need one.
        let rules_ready = [
            "ringws:connection_headroom:ratio",
            "ringws:fd_headroom:ratio",
            r#"ringws:handshakes_refused:rate5m{reason="not_an_upgrade"}"#,
            r#"ringws:messages_received:rate5m{type="text"}"#,
            "ringws:handshake_duration_seconds:p99",
        ]
        .iter()
        .all(|q| prometheus.scalar(q).is_some_and(|v| v > 0.0));
        if all_match && rules_ready {
            break;
        }
        prometheus.assert_running();
        assert!(
            Instant::now() < deadline,
            "Prometheus did not report the traffic within {PROMETHEUS_SETTLE_TIMEOUT:?}.\n\
             expected: {expected:?}\nseen:     {seen:?}\nprometheus log:\n{}",
            prometheus.log()
        );
        std::thread::sleep(Duration::from_millis(250));
    }

    let open = clients.len() as f64;
    let headroom = prometheus
        .scalar("ringws:connection_headroom:ratio")
        .unwrap();
    assert!(
        (headroom - open / 1_000_000.0).abs() < 1e-12,
        "{headroom} = {open} open / the default max_connections"
    );
    let fd = prometheus.scalar("ringws:fd_headroom:ratio").unwrap();
    assert!(fd > 0.0 && fd < 1.0, "fd headroom {fd}");
    let p99 = prometheus
        .scalar("ringws:handshake_duration_seconds:p99")
        .unwrap();
    assert!(p99 > 0.0 && p99 <= 10.0, "handshake p99 {p99} s");

    // Every rule evaluates without error, and no alert fires for this healthy server.
    let rules = prometheus.api("/api/v1/rules").expect("rules API");
    let mut count = 0;
    for group in rules["data"]["groups"].as_array().unwrap() {
        for rule in group["rules"].as_array().unwrap() {
            count += 1;
            assert_ne!(rule["health"], "err", "rule failed: {rule}");
            if rule["type"] == "alerting" {
                assert_eq!(rule["state"], "inactive", "alert active: {rule}");
            }
        }
    }
    assert!(count >= 25, "{count} rules loaded: {rules}");

    // Every dashboard query parses and runs against this Prometheus.
    for (title, expr) in dashboard_queries(&dashboard()) {
        let expr = expr
            .replace("$instance", ".*")
            .replace("$__rate_interval", "1m");
        assert!(
            prometheus.query(&expr).is_some(),
            "panel {title:?}: Prometheus rejects {expr}: {:?}",
            http_get(
                prometheus.web,
                &format!("/api/v1/query?query={}", percent_encode(&expr))
            )
        );
    }
    drop(prometheus);
    drop(clients);
    drop(server);
}
