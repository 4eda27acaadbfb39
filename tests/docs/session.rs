//! Runs a document's commands as a reader would, in order, in one scratch directory, and
//! compares what they print with what the document shows.
//!
//! - `$ CMD` lines of untagged or `console` blocks are run with bash; the lines after them, up
//!   to the next `$ `, are the output they must print. `...` stands for any lines. Lines starting
//!   with `> ` after `python3 -m websockets` are typed into it.
//! - Each line of an `sh` block is a command; a `# -> TEXT` line after it is its output.
//! - `ringws serve` runs in the background (as in its own terminal) until the next one starts;
//!   the listener and admin addresses of the docs (127.0.0.1:9001 and :9090, the defaults) are
//!   moved to free ports, and what the commands print is moved back before comparing. The
//!   lines shown after a server that keeps running must come in that order among what it
//!   prints at start (it may print host-dependent warnings around them); the output of a
//!   server that exits must be the lines shown.
//! - `toml` blocks accumulate into `ringws.toml` in the scratch directory.
//! - A marker comment before a block: `<!-- docs-test: skip REASON -->` (not run: it changes
//!   the host or takes minutes), `<!-- docs-test: writes FILE -->` (the block is that file of
//!   the scratch directory), `<!-- docs-test: equals PATH -->` (the block is that file of the
//!   repository), `<!-- docs-test: setup CMD -->` (run CMD first).
//!
//! Outputs are compared after replacing what differs between runs: `0.14 ms`-style timings,
//! RFC 3339 times, `"time_unix_s"` values and the core count in the start line. Log lines (an
//! RFC 3339 time first) are left out unless the document shows one.

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::os::unix::process::CommandExt;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::mpsc::{channel, Receiver};
use std::time::{Duration, Instant};

use regex::Regex;

use super::cli::{ringws_bin, Cli};
use super::markdown::{repo, Block, Doc};
use super::shell;

/// How long one command may take.
const COMMAND_LIMIT: Duration = Duration::from_secs(30);
/// How long a server may take to listen, or a client to print an expected line.
const READY_LIMIT: Duration = Duration::from_secs(10);

/// A process the session keeps running: a server or a subscriber.
struct Background {
    child: Child,
    lines: Receiver<String>,
}

impl Background {
    fn spawn(script: &str, dir: &PathBuf, env: &BTreeMap<String, String>) -> Self {
        let mut child = Command::new("bash")
            .arg("-c")
            .arg(format!("exec 2>&1\n{script}"))
            .current_dir(dir)
            .envs(env)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .process_group(0)
            .spawn()
            .expect("start bash");
        let stdout = child.stdout.take().unwrap();
        let (tx, lines) = channel();
        std::thread::spawn(move || {
            let mut reader = BufReader::new(stdout);
            let mut buf = Vec::new();
            while let Ok(n) = reader.read_until(b'\n', &mut buf) {
                if n == 0 || tx.send(String::from_utf8_lossy(&buf).into_owned()).is_err() {
                    break;
                }
                buf.clear();
            }
        });
        Background { child, lines }
    }

    fn exited(&mut self) -> bool {
        self.child.try_wait().ok().flatten().is_some()
    }

    /// The next output line within `limit`, cleaned; None when none came or the process ended.
    fn next_line(&self, limit: Duration) -> Option<String> {
        self.lines.recv_timeout(limit).ok()
    }
}

impl Drop for Background {
    fn drop(&mut self) {
        // The whole process group: bash and what it started.
        // SAFETY: kill(2) has no memory effects.
        unsafe { libc::kill(-(self.child.id() as i32), libc::SIGKILL) };
        let _ = self.child.wait();
    }
}

/// One document's run.
pub struct Session<'a> {
    doc: &'a Doc,
    cli: &'a Cli,
    dir: PathBuf,
    env: BTreeMap<String, String>,
    /// The docs' 127.0.0.1:9001 and 127.0.0.1:9090, and the ports used instead.
    listen: u16,
    admin: u16,
    server: Option<Background>,
    others: Vec<Background>,
    config: toml::Table,
    pub failures: Vec<String>,
    pub commands_run: usize,
}

impl<'a> Session<'a> {
    pub fn new(doc: &'a Doc, cli: &'a Cli) -> Session<'a> {
        let name = doc.path.replace(['/', '.'], "-");
        let dir = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join(format!("docs-{name}"));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        let bin_dir = PathBuf::from(ringws_bin()).parent().unwrap().to_path_buf();
        let mut env = BTreeMap::new();
        // ringws first, then the system's tools (Debian's python3, with python3-websockets).
        env.insert(
            "PATH".to_string(),
            format!("{}:/usr/sbin:/usr/bin:/sbin:/bin", bin_dir.display()),
        );
        // The reader is in a checkout: the repository's files are at hand (deploy/, benches/).
        for entry in std::fs::read_dir(repo()).unwrap() {
            let name = entry.unwrap().file_name();
            if name != "target" && !name.to_string_lossy().starts_with('.') {
                std::os::unix::fs::symlink(repo().join(&name), dir.join(&name)).unwrap();
            }
        }
        // curl as in a terminal: no progress meter when its output is not one.
        std::fs::write(dir.join(".curlrc"), "no-progress-meter\n").unwrap();
        env.insert("CURL_HOME".to_string(), dir.display().to_string());
        let (listen, admin) = free_ports();
        Session {
            doc,
            cli,
            dir,
            env,
            listen,
            admin,
            server: None,
            others: Vec::new(),
            config: toml::Table::new(),
            failures: Vec::new(),
            commands_run: 0,
        }
    }

    fn fail(&mut self, line: usize, message: String) {
        self.failures
            .push(format!("{}: {message}", self.doc.at(line)));
    }

    /// Runs every block of the document.
    pub fn run(&mut self) {
        for block in self.doc.blocks() {
            let marker = block.marker.clone().unwrap_or_default();
            let (kind, arg) = marker.split_once(' ').unwrap_or((marker.as_str(), ""));
            match kind {
                "skip" => continue,
                "setup" => self.command(block.line, arg, None),
                "writes" => {
                    std::fs::write(self.dir.join(arg), block.text()).unwrap();
                    continue;
                }
                "equals" => {
                    let file = std::fs::read_to_string(repo().join(arg)).unwrap_or_default();
                    if file != block.text() {
                        self.fail(block.line, format!("this block differs from {arg}"));
                    }
                    continue;
                }
                "" => {}
                other => {
                    self.fail(block.line, format!("unknown docs-test marker `{other}`"));
                    continue;
                }
            }
            match block.lang.as_str() {
                "sh" | "bash" => self.sh_block(&block),
                "console" | "" => self.console_block(&block),
                "toml" => self.toml_block(&block),
                // Checked by the static tests (keys, the library snippet).
                "rust" | "promql" => {}
                lang => self.fail(
                    block.line,
                    format!(
                        "a ```{lang} block the docs test does not run: make it runnable or mark \
                         it <!-- docs-test: skip REASON -->"
                    ),
                ),
            }
        }
    }

    fn toml_block(&mut self, block: &Block) {
        let Ok(table) = block.text().parse::<toml::Table>() else {
            return; // reported by the static test
        };
        self.config.extend(table);
        std::fs::write(self.dir.join("ringws.toml"), self.config.to_string()).unwrap();
    }

    fn sh_block(&mut self, block: &Block) {
        let mut k = 0;
        while k < block.body.len() {
            let line = block.body[k].trim();
            let line_no = block.body_line(k);
            k += 1;
            if line.is_empty() || line.starts_with('#') {
                continue;
            }
            let mut expected = Vec::new();
            while let Some(out) = block
                .body
                .get(k)
                .and_then(|l| l.trim().strip_prefix("# -> "))
            {
                expected.push(out.to_string());
                k += 1;
            }
            let shown = (!expected.is_empty()).then_some(expected.as_slice());
            self.command(line_no, line, shown);
        }
    }

    fn console_block(&mut self, block: &Block) {
        if !block.body.iter().any(|l| l.starts_with("$ ")) {
            return; // output shown for reading, with no command
        }
        let mut k = 0;
        while k < block.body.len() {
            let Some(command) = block.body[k].strip_prefix("$ ") else {
                self.fail(
                    block.body_line(k),
                    "output before the first `$ ` command".into(),
                );
                return;
            };
            let line_no = block.body_line(k);
            k += 1;
            let mut expected = Vec::new();
            while k < block.body.len() && !block.body[k].starts_with("$ ") {
                expected.push(block.body[k].clone());
                k += 1;
            }
            self.command(line_no, command, Some(&expected));
        }
    }

    /// Moves the docs' addresses to this session's ports.
    fn session_ports(&self, text: &str) -> String {
        text.replace("127.0.0.1:9001", &format!("127.0.0.1:{}", self.listen))
            .replace("127.0.0.1:9090", &format!("127.0.0.1:{}", self.admin))
    }

    /// Moves this session's ports back to the docs' addresses.
    fn docs_ports(&self, text: &str) -> String {
        let text = text
            .replace(&format!("127.0.0.1:{}", self.listen), "127.0.0.1:9001")
            .replace(&format!("127.0.0.1:{}", self.admin), "127.0.0.1:9090");
        // A port on its own (`sport = :24525`).
        let bare = Regex::new(&format!(r":({}|{})\b", self.listen, self.admin)).unwrap();
        bare.replace_all(&text, |c: &regex::Captures| {
            if c[1] == *self.listen.to_string() {
                ":9001".to_string()
            } else {
                ":9090".to_string()
            }
        })
        .into_owned()
    }

    /// Runs one command; `expected`: the output the document shows (None: it shows none, as
    /// in `sh` blocks, and then only the exit status is checked).
    fn command(&mut self, line: usize, command: &str, expected: Option<&[String]>) {
        self.commands_run += 1;
        let shown = expected.is_some();
        let expected = expected.unwrap_or(&[]);
        let serve = shell::invocations(command, &self.cli.top_level(), true)
            .into_iter()
            .find(|inv| {
                inv.args.first().map(String::as_str) == Some("serve")
                    && !inv
                        .args
                        .iter()
                        .any(|a| a == "--print-config" || a == "--help")
            });
        if serve.is_some() {
            return self.serve(line, command, expected);
        }
        let words = shell::simple_commands(command);
        if words.first().is_some_and(|w| {
            w.len() >= 3 && w[0] == "python3" && w[1] == "-m" && w[2] == "websockets"
        }) {
            return self.websocket_client(line, command, expected);
        }
        // `cat FILE` of a file the document introduces by showing it: the output is the file.
        if let [w] = words.as_slice() {
            if w.len() == 2 && w[0] == "cat" && !self.dir.join(&w[1]).exists() {
                let mut text = expected.join("\n");
                text.push('\n');
                std::fs::write(self.dir.join(&w[1]), text).unwrap();
            }
        }
        // `NAME=$(...)`: a variable for the commands after it.
        let assignment = match words.as_slice() {
            [w] if w.len() == 1 => w[0]
                .split_once('=')
                .map(|(name, _)| name.to_string())
                .filter(|name| {
                    !name.is_empty() && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
                }),
            _ => None,
        };
        let script = match &assignment {
            Some(name) => format!("{}\nprintf %s \"${name}\"", self.session_ports(command)),
            None => self.session_ports(command),
        };
        let (code, output) = match self.run_script(&script) {
            Ok(done) => done,
            Err(message) => return self.fail(line, format!("`{command}`: {message}")),
        };
        if let Some(name) = assignment {
            if code != 0 {
                return self.fail(line, format!("`{command}` exited with {code}: {output}"));
            }
            self.env.insert(name, output);
            return;
        }
        if !shown {
            // 1 is `ringws check`'s "a check fails", which the docs show on purpose.
            if !(code == 0 || code == 1) {
                self.fail(
                    line,
                    format!("`{command}` exited with {code} (0 or 1 expected): {output}"),
                );
            }
            return;
        }
        let actual = self.docs_ports(&output);
        if let Err(message) = compare(expected, &lines(&actual, false), false) {
            self.fail(line, format!("`{command}` printed other output: {message}"));
        }
    }

    /// Runs a script with bash in the scratch directory: (exit code, stdout and stderr).
    fn run_script(&self, script: &str) -> Result<(i32, String), String> {
        let mut child = Command::new("bash")
            .arg("-c")
            .arg(format!("exec 2>&1\n{script}"))
            .current_dir(&self.dir)
            .envs(&self.env)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .process_group(0)
            .spawn()
            .map_err(|e| e.to_string())?;
        let mut stdout = child.stdout.take().unwrap();
        let reader = std::thread::spawn(move || {
            let mut out = Vec::new();
            let _ = stdout.read_to_end(&mut out);
            String::from_utf8_lossy(&out).into_owned()
        });
        let start = Instant::now();
        let status = loop {
            if let Some(status) = child.try_wait().map_err(|e| e.to_string())? {
                break status;
            }
            if start.elapsed() > COMMAND_LIMIT {
                // SAFETY: kill(2) has no memory effects.
                unsafe { libc::kill(-(child.id() as i32), libc::SIGKILL) };
                let _ = child.wait();
                return Err(format!("still running after {COMMAND_LIMIT:?}"));
            }
            std::thread::sleep(Duration::from_millis(10));
        };
        let output = reader.join().unwrap();
        Ok((status.code().unwrap_or(-1), output))
    }

    /// `ringws serve ...`: stops the previous server, starts this one on the session's ports,
    /// and waits until it listens (or exits). Its first lines must be the ones shown.
    fn serve(&mut self, line: usize, command: &str, expected: &[String]) {
        self.others.clear();
        self.server = None;
        // The old server is gone once its ports refuse connections.
        let ports = [self.listen, self.admin];
        let start = Instant::now();
        while ports.iter().any(|&p| accepts(p)) {
            if start.elapsed() > READY_LIMIT {
                return self.fail(line, "the previous server still listens after 10 s".into());
            }
            std::thread::sleep(Duration::from_millis(10));
        }
        let mut script = self.session_ports(command.split(" #").next().unwrap_or(command));
        script = script.trim().trim_end_matches('&').trim().to_string();
        let args: Vec<String> = shell::invocations(command, &self.cli.top_level(), true)
            .into_iter()
            .flat_map(|i| i.args)
            .collect();
        if !args.iter().any(|a| a == "--listen") {
            script.push_str(&format!(" --listen 127.0.0.1:{}", self.listen));
        }
        if !args.iter().any(|a| a == "--admin-listen") {
            script.push_str(&format!(" --admin-listen 127.0.0.1:{}", self.admin));
        }
        let script = script.replacen("cargo run --release -- ", "ringws ", 1);
        let mut server = Background::spawn(&script, &self.dir, &self.env);
        let mut ports = vec![self.listen];
        if !script.contains("--admin-listen off") {
            ports.push(self.admin);
        }
        let start = Instant::now();
        let mut listening = false;
        while start.elapsed() < READY_LIMIT {
            if ports.iter().all(|&p| accepts(p)) {
                listening = true;
                break;
            }
            if server.exited() {
                break;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        let mut output: Vec<String> = Vec::new();
        if listening {
            // Read what it prints at start until the lines shown have come (5 s at most). A
            // running server may print more around them: warnings that depend on the host
            // (the open-file limit), and whatever it logs later.
            let deadline = Instant::now() + Duration::from_secs(5);
            loop {
                let actual = lines(&self.docs_ports(&output.concat()), false);
                if in_order(expected, &actual) {
                    break;
                }
                let left = deadline.saturating_duration_since(Instant::now());
                match server.next_line(left) {
                    Some(l) => output.push(l),
                    None => {
                        let message = format!(
                            "`{command}` did not print the lines shown within 5 s; it printed:\n{}",
                            actual.join("\n")
                        );
                        self.fail(line, message);
                        break;
                    }
                }
            }
            self.server = Some(server);
            return;
        } else {
            // It exited (or never listened): everything it printed.
            let deadline = Instant::now() + Duration::from_secs(2);
            while let Some(l) = server.next_line(deadline.saturating_duration_since(Instant::now()))
            {
                output.push(l);
            }
            if expected.is_empty() || !server.exited() {
                let what = if server.exited() {
                    "exited"
                } else {
                    "did not listen within 10 s"
                };
                return self.fail(
                    line,
                    format!("`{command}` {what}: {}", self.docs_ports(&output.concat())),
                );
            }
        }
        let actual = self.docs_ports(&output.concat());
        if let Err(message) = compare(expected, &lines(&actual, false), false) {
            self.fail(line, format!("`{command}` printed other output: {message}"));
        }
    }

    /// `python3 -m websockets URL`: types the `> ` lines, expects the others. Without typed
    /// lines it stays connected, as a subscriber in its own terminal.
    fn websocket_client(&mut self, line: usize, command: &str, expected: &[String]) {
        let script = self.session_ports(command.split(" #").next().unwrap_or(command));
        let mut client = Background::spawn(&script, &self.dir, &self.env);
        let typed = expected.iter().any(|l| l.starts_with("> "));
        let mut wanted: Vec<&String> = expected.iter().filter(|l| !l.trim().is_empty()).collect();
        if wanted.is_empty() {
            // Connected once it prints its first line.
            match next_client_line(&client, self) {
                Some(_) => {}
                None => return self.fail(line, format!("`{command}` printed nothing in 10 s")),
            }
        }
        let mut stdin = client.child.stdin.take();
        let mut shown = Vec::new();
        for want in wanted.drain(..) {
            if let Some(text) = want.strip_prefix("> ") {
                if let Some(stdin) = stdin.as_mut() {
                    let _ = writeln!(stdin, "{text}");
                }
                continue;
            }
            match next_client_line(&client, self) {
                Some(got) => {
                    if normalize(&got) != normalize(want) {
                        shown.push(got);
                        return self.fail(
                            line,
                            format!(
                                "`{command}` printed {:?} where the document shows {want:?}",
                                shown.last().unwrap()
                            ),
                        );
                    }
                }
                None => {
                    return self.fail(
                        line,
                        format!("`{command}` did not print {want:?} within 10 s"),
                    )
                }
            }
        }
        if typed {
            drop(stdin); // end of input: the client closes and exits
            let start = Instant::now();
            while !client.exited() && start.elapsed() < READY_LIMIT {
                std::thread::sleep(Duration::from_millis(20));
            }
        } else {
            client.child.stdin = stdin;
            self.others.push(client);
        }
    }
}

/// The websockets client's next line that is not empty once its prompts and cursor movements
/// are removed, with this session's ports moved back.
fn next_client_line(client: &Background, session: &Session) -> Option<String> {
    let deadline = Instant::now() + READY_LIMIT;
    loop {
        let line = client.next_line(deadline.saturating_duration_since(Instant::now()))?;
        let mut text = strip_ansi(&line).trim().to_string();
        while let Some(rest) = text.strip_prefix('>') {
            text = rest.trim_start().to_string();
        }
        if !text.is_empty() {
            return Some(session.docs_ports(&text));
        }
    }
}

fn accepts(port: u16) -> bool {
    let addr = SocketAddr::from(([127, 0, 0, 1], port));
    TcpStream::connect_timeout(&addr, Duration::from_millis(100)).is_ok()
}

/// Two free ports outside the ephemeral range, so that no test binding port 0 takes them.
fn free_ports() -> (u16, u16) {
    let mut found = Vec::new();
    let start = 20000 + (std::process::id() % 500) as u16 * 10;
    let mut port = start;
    while found.len() < 2 {
        port = if port >= 30000 { 20000 } else { port + 1 };
        let free = TcpListener::bind(("127.0.0.1", port)).is_ok()
            && TcpStream::connect_timeout(
                &SocketAddr::from(([127, 0, 0, 1], port)),
                Duration::from_millis(50),
            )
            .is_err();
        if free && claim(port) {
            found.push(port);
        }
    }
    (found[0], found[1])
}

/// Ports handed out in this process, so that parallel sessions never share one.
fn claim(port: u16) -> bool {
    use std::sync::Mutex;
    static CLAIMED: Mutex<Vec<u16>> = Mutex::new(Vec::new());
    let mut claimed = CLAIMED.lock().unwrap();
    if claimed.contains(&port) {
        return false;
    }
    claimed.push(port);
    true
}

fn strip_ansi(text: &str) -> String {
    static ANSI: std::sync::LazyLock<Regex> =
        std::sync::LazyLock::new(|| Regex::new(r"\x1b(\[[0-9;?]*[A-Za-z]|[78])").unwrap());
    ANSI.replace_all(text, "").replace('\r', "")
}

fn is_log(line: &str) -> bool {
    static LOG: std::sync::LazyLock<Regex> =
        std::sync::LazyLock::new(|| Regex::new(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d").unwrap());
    LOG.is_match(line.trim_start())
}

/// Output as lines, without ANSI codes, trailing blank lines and (unless asked) log lines.
fn lines(text: &str, keep_logs: bool) -> Vec<String> {
    let mut out: Vec<String> = strip_ansi(text)
        .lines()
        .filter(|l| keep_logs || !is_log(l))
        .map(str::to_string)
        .collect();
    while out.last().is_some_and(|l| l.trim().is_empty()) {
        out.pop();
    }
    out
}

/// What may differ between two runs of the same command, replaced.
pub fn normalize(line: &str) -> String {
    static RULES: std::sync::LazyLock<Vec<(Regex, &str)>> = std::sync::LazyLock::new(|| {
        vec![
            (Regex::new(r"\b\d+(\.\d+)? (ms|µs)").unwrap(), "#.## $2"),
            (
                Regex::new(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?Z").unwrap(),
                "<time>",
            ),
            (
                Regex::new(r#""time_unix_s": \d+"#).unwrap(),
                r#""time_unix_s": <time>"#,
            ),
            (Regex::new(r"\(\d+ cores?,").unwrap(), "(N cores,"),
            (Regex::new(r"\s+").unwrap(), " "),
        ]
    });
    let mut line = line.trim().to_string();
    for (re, with) in RULES.iter() {
        line = re.replace_all(&line, *with).into_owned();
    }
    line
}

/// True when the document's (non-blank) lines all appear in `actual`, in order.
fn in_order(expected: &[String], actual: &[String]) -> bool {
    let mut actual = actual.iter().map(|l| normalize(l));
    expected
        .iter()
        .map(|l| normalize(l))
        .filter(|l| !l.is_empty())
        .all(|e| actual.any(|a| a == e))
}

/// Compares output with the document's lines; `...` stands for any lines. `prefix`: the
/// command was still running, so more lines may follow.
fn compare(expected: &[String], actual: &[String], prefix: bool) -> Result<(), String> {
    let mut expected: Vec<String> = expected.iter().map(|l| normalize(l)).collect();
    while expected.last().is_some_and(|l| l.is_empty()) {
        expected.pop();
    }
    let actual: Vec<String> = actual.iter().map(|l| normalize(l)).collect();
    if matches(&expected, &actual, prefix) {
        return Ok(());
    }
    // Name the first line that differs, for the message.
    let mut a = 0;
    for (e_index, e) in expected.iter().enumerate() {
        if e == "..." {
            let rest = &expected[e_index + 1..];
            match rest.first() {
                Some(next) => match actual[a..].iter().position(|l| l == next) {
                    Some(p) => a += p,
                    None => {
                        return Err(format!(
                            "the document shows {next:?}, which never came; the output was:\n{}",
                            actual.join("\n")
                        ))
                    }
                },
                None => return Ok(()),
            }
            continue;
        }
        match actual.get(a) {
            Some(got) if got == e => a += 1,
            Some(got) => {
                return Err(format!(
                    "the document shows {e:?} where the program printed {got:?}; the output \
                     was:\n{}",
                    actual.join("\n")
                ))
            }
            None => {
                return Err(format!(
                    "the document shows {e:?} after the program's last line; the output was:\n{}",
                    actual.join("\n")
                ))
            }
        }
    }
    Err(format!(
        "the program printed more than the document shows; the output was:\n{}",
        actual.join("\n")
    ))
}

fn matches(expected: &[String], actual: &[String], prefix: bool) -> bool {
    match expected.split_first() {
        None => prefix || actual.is_empty(),
        Some((e, rest)) if e == "..." => {
            (0..=actual.len()).any(|skip| matches(rest, &actual[skip..], prefix))
        }
        Some((e, rest)) => actual
            .split_first()
            .is_some_and(|(a, more)| a == e && matches(rest, more, prefix)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ellipsis_stands_for_any_lines() {
        let s = |v: &[&str]| v.iter().map(|l| l.to_string()).collect::<Vec<_>>();
        assert!(compare(&s(&["a", "...", "d"]), &s(&["a", "b", "c", "d"]), false).is_ok());
        assert!(compare(&s(&["a", "d"]), &s(&["a", "b", "d"]), false).is_err());
        assert!(compare(&s(&["a"]), &s(&["a", "b"]), true).is_ok());
        assert!(compare(&s(&["a"]), &s(&["a", "b"]), false).is_err());
        assert_eq!(
            normalize("  ✔ connect    0.14 ms  127.0.0.1:9001"),
            "✔ connect #.## ms 127.0.0.1:9001"
        );
    }
}
