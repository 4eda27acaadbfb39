//! The documentation agrees with the program: README.md, docs/*.md and deploy/README.md are
//! read as a user would follow them, and every failure names the file and line.
//!
//! - Every `ringws ...` command (in code blocks and in prose) names a real subcommand, and each
//!   of its options is one that subcommand's `--help` lists; every `--option` mentioned on its
//!   own is an option of some subcommand. `ringws serve` commands and `--option value` spans
//!   of serve options are also given to `ringws serve ... --print-config`, which must accept
//!   them.
//! - Every config key (TOML blocks, `key = value` in prose, the settings tables) is a key of
//!   `ringws serve --print-config`, and every TOML block is accepted by `serve --config`. The
//!   README's table lists every key, and each table's defaults are the ones `--help` prints.
//! - Every metric name is served on `/metrics` by a running server.
//! - README's library snippet is `examples/counter.rs`, whose app is run here.
//! - Every command block is run as shown and its output compared (see docs/session.rs), unless
//!   marked `<!-- docs-test: skip REASON -->` because it changes the host or takes minutes.
//!
//! Nothing here repeats the program's texts: the options, keys, defaults and outputs are read
//! from the binary at test time.

#[path = "docs/cli.rs"]
mod cli;
mod common;
#[path = "../examples/counter.rs"]
#[allow(dead_code)]
mod counter;
#[path = "docs/markdown.rs"]
mod markdown;
#[path = "docs/session.rs"]
mod session;
#[path = "docs/shell.rs"]
mod shell;

use std::collections::BTreeSet;
use std::io::Write;

use cli::{flag, name, ringws, Cli, Settings};
use markdown::{code_spans, docs, in_repo, repo, Doc};

/// A secret for `--print-config` runs of `auth = "jwt"` examples that read it from the
/// environment.
const DUMMY_SECRET: (&str, &str) = ("RINGWS_JWT_SECRET", "0123456789abcdef0123456789abcdef");

/// Command lines of a document, with their line and whether they come from a code block.
fn command_lines(doc: &Doc) -> Vec<(usize, String, bool)> {
    let mut lines = Vec::new();
    for block in doc.blocks() {
        if let Some(cmd) = block
            .marker
            .as_deref()
            .and_then(|m| m.strip_prefix("setup "))
        {
            lines.push((block.line, cmd.to_string(), true));
        }
        for (k, line) in block.body.iter().enumerate() {
            let cmd = match block.lang.as_str() {
                "sh" | "bash" if !line.trim_start().starts_with('#') => Some(line.as_str()),
                "" | "console" => line.strip_prefix("$ "),
                _ => None,
            };
            if let Some(cmd) = cmd {
                lines.push((block.body_line(k), cmd.to_string(), true));
            }
        }
    }
    for (line, span) in doc.spans() {
        lines.push((line, span, false));
    }
    lines
}

/// A word standing for a value the reader fills in: `N`, `ADDR`, `...`, `$TOKEN`.
fn placeholder(word: &str) -> bool {
    word.contains("...")
        || word.contains('$')
        || (word.chars().any(|c| c.is_ascii_uppercase())
            && word.chars().all(|c| c.is_ascii_uppercase() || c == '_'))
}

/// Runs `ringws serve ARGS --print-config` from the repository root; Err(message) if refused.
fn serve_accepts(args: &[String]) -> Result<(), String> {
    let mut args: Vec<&str> = args.iter().map(String::as_str).collect();
    args.push("--print-config");
    let out = std::process::Command::new(cli::ringws_bin())
        .args(&args)
        .current_dir(repo())
        .env(DUMMY_SECRET.0, DUMMY_SECRET.1)
        .env_remove("RUST_LOG")
        .output()
        .expect("run ringws");
    if out.status.success() {
        Ok(())
    } else {
        Err(String::from_utf8_lossy(&out.stderr).trim().to_string())
    }
}

#[test]
fn every_ringws_command_in_the_docs_names_real_subcommands_and_options() {
    let cli = Cli::load();
    let top = cli.top_level();
    let serve_options = cli.commands[&vec!["serve".to_string()]].options.clone();
    let all_options = cli.all_options();
    let mut failures = Vec::new();
    let (mut commands, mut options, mut validated) = (0, 0, 0);
    for doc in docs() {
        for (line, text, strict) in command_lines(&doc) {
            let at = doc.at(line);
            for inv in shell::invocations(&text, &top, strict) {
                commands += 1;
                let (path, rest) = match cli.resolve(&inv.args) {
                    Ok(resolved) => resolved,
                    // Prose names a command group: "`ringws bench` (the load generator)".
                    Err(_) if !strict && inv.args.len() == 1 => continue,
                    Err(e) => {
                        failures.push(format!("{at}: `{text}`: {e}"));
                        continue;
                    }
                };
                let help = &cli.commands[&path];
                for arg in rest.iter().take_while(|a| *a != "--") {
                    if !arg.starts_with('-') || arg.len() < 2 || placeholder(arg) {
                        continue;
                    }
                    let option = arg.split('=').next().unwrap();
                    options += 1;
                    let global = ["-h", "--help"].contains(&option)
                        || (path.is_empty() && ["-V", "--version"].contains(&option));
                    if !global && !help.options.contains(option) {
                        failures.push(format!(
                            "{at}: `{text}`: {option} is not an option of `{}` (see `{} --help`)",
                            name(&path),
                            name(&path)
                        ));
                    }
                }
                // A serve command's values must be accepted as written (one reading a config
                // file of the reader's is run by the session test instead, with that file).
                let own_config = rest
                    .windows(2)
                    .any(|w| w[0] == "--config" && !in_repo(&w[1]));
                if path == ["serve"]
                    && !own_config
                    && !rest.iter().any(|a| placeholder(a) || a == "--help")
                {
                    let args: Vec<String> = std::iter::once("serve".to_string())
                        .chain(rest.iter().filter(|a| *a != "--print-config").cloned())
                        .collect();
                    validated += 1;
                    if let Err(e) = serve_accepts(&args) {
                        failures.push(format!("{at}: `{text}` is refused: {e}"));
                    }
                }
            }
            // An option mentioned on its own, in prose: `--debug-handshakes on`.
            if !strict {
                let words: Vec<&str> = text.split_whitespace().collect();
                let Some(first) = words.first() else { continue };
                let option = first.split('=').next().unwrap();
                let looks_like_option = option.len() > 1
                    && option.starts_with('-')
                    && option
                        .trim_start_matches('-')
                        .chars()
                        .all(|c| c.is_ascii_alphanumeric() || c == '-')
                    && option
                        .trim_start_matches('-')
                        .starts_with(char::is_alphabetic);
                if !looks_like_option {
                    continue;
                }
                options += 1;
                if !all_options.contains(option) {
                    failures.push(format!(
                        "{at}: `{text}`: no ringws command has the option {option}"
                    ));
                } else if serve_options.contains(option)
                    && words.len() == 2
                    && !placeholder(words[1])
                    && !first.contains('=')
                {
                    validated += 1;
                    let args = vec!["serve".into(), option.into(), words[1].into()];
                    if let Err(e) = serve_accepts(&args) {
                        failures.push(format!("{at}: `{text}` is refused: {e}"));
                    }
                }
            }
        }
    }
    eprintln!(
        "checked {commands} ringws commands and {options} options against --help; \
         {validated} serve settings against --print-config"
    );
    assert!(commands > 50 && options > 100, "too few commands found");
    assert!(failures.is_empty(), "\n{}", failures.join("\n"));
}

#[test]
fn every_config_key_in_the_docs_is_a_setting_and_its_values_are_accepted() {
    let cli = Cli::load();
    let settings = Settings::load(&cli);
    let mut failures = Vec::new();
    let mut keys = 0;
    let dir = std::path::PathBuf::from(env!("CARGO_TARGET_TMPDIR"));
    for doc in docs() {
        // TOML blocks: known keys, accepted as a config file.
        for block in doc.blocks().into_iter().filter(|b| b.lang == "toml") {
            let at = doc.at(block.line);
            let table: toml::Table = match block.text().parse() {
                Ok(t) => t,
                Err(e) => {
                    failures.push(format!("{at}: this TOML block does not parse: {e}"));
                    continue;
                }
            };
            let mut all_known = true;
            for key in table.keys() {
                keys += 1;
                if !settings.has(key) {
                    all_known = false;
                    failures.push(format!(
                        "{at}: `{key}` is not a key of `ringws serve --print-config`"
                    ));
                }
            }
            if all_known {
                let file = dir.join(format!(
                    "docs-block-{}-{}.toml",
                    doc.path.replace('/', "-"),
                    block.line
                ));
                std::fs::write(&file, block.text()).unwrap();
                let args = vec![
                    "serve".to_string(),
                    "--config".into(),
                    file.display().to_string(),
                ];
                if let Err(e) = serve_accepts(&args) {
                    failures.push(format!(
                        "{at}: `ringws serve --config` refuses this block: {e}"
                    ));
                }
            }
        }
        // `key = value` in prose.
        for (line, span) in doc.spans() {
            let Some((key, _)) = span.split_once(" = ") else {
                continue;
            };
            if !key.chars().all(|c| c.is_ascii_lowercase() || c == '_') {
                continue;
            }
            let at = doc.at(line);
            let text = format!("{span}\n");
            let parsed = text.parse::<toml::Table>();
            if !settings.has(key) {
                // `key = value  # why` describes a format; a TOML line must name a setting.
                if parsed.is_ok() {
                    failures.push(format!(
                        "{at}: `{span}`: {key} is not a key of `ringws serve --print-config`"
                    ));
                }
                continue;
            }
            keys += 1;
            if let Err(e) = parsed {
                failures.push(format!("{at}: `{span}` is not TOML: {e}"));
                continue;
            }
            let file = dir.join(format!(
                "docs-span-{}-{line}.toml",
                doc.path.replace('/', "-")
            ));
            std::fs::write(&file, text).unwrap();
            let args = vec![
                "serve".to_string(),
                "--config".into(),
                file.display().to_string(),
            ];
            // Refused for its value, not for a setting it needs beside it (such as
            // `require_subprotocol = true` without `subprotocols`): the message names the key.
            if let Err(e) = serve_accepts(&args) {
                if e.contains(&format!("{key}: ")) {
                    failures.push(format!("{at}: `{span}` is refused: {e}"));
                }
            }
        }
        // Settings tables: a first column of keys, maybe a column of defaults.
        for table in doc.tables() {
            if !table
                .header
                .first()
                .is_some_and(|h| h.contains("key") && h.contains("flag"))
            {
                continue;
            }
            let default_column = table.column("default");
            let mut listed = BTreeSet::new();
            for (line, row) in &table.rows {
                let at = doc.at(*line);
                let row_keys: Vec<String> = code_spans(&row[0])
                    .into_iter()
                    .filter(|k| k.chars().all(|c| c.is_ascii_lowercase() || c == '_'))
                    .collect();
                let defaults: Vec<String> = default_column
                    .and_then(|c| row.get(c))
                    .map(|cell| {
                        cell.replace('`', "")
                            .split(" / ")
                            .map(|d| d.split(" (").next().unwrap().trim().to_string())
                            .collect()
                    })
                    .unwrap_or_default();
                for (k, key) in row_keys.iter().enumerate() {
                    keys += 1;
                    listed.insert(key.clone());
                    if !settings.has(key) {
                        failures.push(format!(
                            "{at}: `{key}` is not a key of `ringws serve --print-config`"
                        ));
                        continue;
                    }
                    let shown = defaults.get(k).or(defaults.first());
                    let real = settings.defaults.get(key);
                    if let (Some(shown), Some(real)) = (shown, real) {
                        if shown != real {
                            failures.push(format!(
                                "{at}: the default of `{key}` is shown as `{shown}`, but \
                                 `ringws serve --help` says [default: {real}]"
                            ));
                        }
                    }
                }
            }
            // The README's table is the complete list.
            if doc.path == "README.md" && table.header[0] == "key / flag" {
                for key in settings.printed.keys() {
                    if !listed.contains(key) {
                        failures.push(format!(
                            "{}: the settings table lacks `{key}` ({}), a key of \
                             `ringws serve --print-config`",
                            doc.at(table.line),
                            flag(key)
                        ));
                    }
                }
            }
        }
    }
    eprintln!("checked {keys} config key mentions against --print-config");
    assert!(keys > 50, "too few keys found");
    assert!(failures.is_empty(), "\n{}", failures.join("\n"));
}

#[test]
fn every_metric_name_in_the_docs_is_served_on_metrics() {
    // With a wss listener and the PROXY protocol on, so their families are served too.
    let pki = common::pki::Pki::with_server("docs-metrics");
    let mut args = vec![
        "--app",
        "pubsub",
        "--proxy-protocol",
        "on",
        "--trusted-proxies",
        "127.0.0.2/32",
    ];
    let tls = pki.serve_flags("server");
    args.extend(tls.iter().map(String::as_str));
    let server = common::ServerProcess::start(&args);
    let admin = server.admin.expect("the admin listener");
    let (status, exposition) = common::admin_get(admin, "/metrics");
    assert_eq!(status, 200);
    let mut served = BTreeSet::new();
    for line in exposition.lines() {
        let name = match line.strip_prefix("# TYPE ") {
            Some(rest) => rest.split_whitespace().next(),
            None if !line.starts_with('#') => line.split(['{', ' ']).next(),
            None => None,
        };
        served.extend(name.map(str::to_string));
    }
    let metric = regex::Regex::new(r"\bringws_[a-z0-9_]+").unwrap();
    let mut failures = Vec::new();
    let mut mentioned = BTreeSet::new();
    for doc in docs() {
        for (i, line) in doc.lines.iter().enumerate() {
            for m in metric.find_iter(line) {
                mentioned.insert(m.as_str().to_string());
                if !served.contains(m.as_str()) {
                    failures.push(format!(
                        "{}: {} is not on /metrics of `ringws serve`",
                        doc.at(i + 1),
                        m.as_str()
                    ));
                }
            }
        }
    }
    eprintln!("checked {} metric names against /metrics", mentioned.len());
    assert!(mentioned.len() > 40, "too few metric names found");
    assert!(failures.is_empty(), "\n{}", failures.join("\n"));
}

/// README's library snippet is examples/counter.rs; any block marked
/// `<!-- docs-test: equals PATH -->` is that file.
#[test]
fn readme_library_snippet_is_examples_counter_rs_and_marked_blocks_are_their_files() {
    let mut failures = Vec::new();
    let mut snippets = 0;
    for doc in docs() {
        for block in doc.blocks() {
            let marked = block
                .marker
                .as_deref()
                .and_then(|m| m.strip_prefix("equals "));
            let path = match marked {
                Some(path) => path,
                None if doc.path == "README.md" && block.lang == "rust" => "examples/counter.rs",
                None => continue,
            };
            snippets += 1;
            let file = std::fs::read_to_string(repo().join(path)).unwrap_or_default();
            let shown = block.text();
            if let Some((k, (shown, real))) = shown
                .lines()
                .zip(file.lines())
                .enumerate()
                .find(|(_, (a, b))| a != b)
            {
                failures.push(format!(
                    "{}: this block differs from {path} (its line {}): {shown:?} vs {real:?}",
                    doc.at(block.body_line(k)),
                    k + 1
                ));
            } else if shown != file {
                failures.push(format!(
                    "{}: this block and {path} differ in length ({} and {} lines)",
                    doc.at(block.line),
                    shown.lines().count(),
                    file.lines().count()
                ));
            }
        }
    }
    assert!(snippets >= 1, "README.md shows no library snippet");
    assert!(failures.is_empty(), "\n{}", failures.join("\n"));
}

/// The app of examples/counter.rs (the README's library snippet) does what the README says.
#[test]
fn the_counter_example_answers_each_text_message_with_its_length() {
    use ringws::config::Config;
    use ringws::server::Server;
    let config = Config {
        listen: "127.0.0.1:0".parse().unwrap(),
        cores: 1,
        admin_listen: None,
        ..Config::default()
    };
    let server = Server::start(&config, counter::Counter).expect("start");
    let addr = server.local_addr();
    assert_eq!(
        common::exchange(addr, common::upgrade_request("/").as_bytes()).status,
        404,
        "the counter serves /count only"
    );
    let mut s = common::connect(addr);
    s.write_all(common::upgrade_request("/count").as_bytes())
        .unwrap();
    assert_eq!(common::read_response(&mut s).status, 101);
    s.write_all(&common::client_frame(true, 0x1, "héllo".as_bytes()))
        .unwrap();
    assert_eq!(common::read_frame(&mut s), (true, 0x1, b"6".to_vec()));
    server.stop();
    server.join().expect("clean stop");
}

#[test]
fn every_command_block_in_the_docs_runs_as_shown() {
    // The docs' commands use curl and Debian's python3 with websockets.
    let has = |program: &str, args: &[&str]| {
        std::process::Command::new(program)
            .args(args)
            .output()
            .is_ok_and(|o| o.status.success())
    };
    assert!(
        has("curl", &["--version"]) && has("/usr/bin/python3", &["-c", "import websockets"]),
        "the docs' commands need curl and /usr/bin/python3 with websockets: install them with \
         `apt-get install -y curl python3-websockets` (or run `bash .ci/test` as root)"
    );
    let cli = Cli::load();
    let docs = docs();
    let results: Vec<(Vec<String>, usize)> = std::thread::scope(|scope| {
        let handles: Vec<_> = docs
            .iter()
            .map(|doc| {
                let cli = &cli;
                scope.spawn(move || {
                    let mut session = session::Session::new(doc, cli);
                    session.run();
                    (session.failures.clone(), session.commands_run)
                })
            })
            .collect();
        handles.into_iter().map(|h| h.join().unwrap()).collect()
    });
    let failures: Vec<String> = results.iter().flat_map(|r| r.0.clone()).collect();
    let run: usize = results.iter().map(|r| r.1).sum();
    eprintln!("ran {run} documented commands");
    assert!(run > 20, "too few commands run");
    assert!(failures.is_empty(), "\n{}", failures.join("\n\n"));
}

#[test]
fn the_settings_and_options_are_read_from_the_binary() {
    // The test's own footing: if these fail, the checks above read nothing.
    let cli = Cli::load();
    let settings = Settings::load(&cli);
    assert!(settings.printed.len() > 30);
    assert!(settings.defaults.len() == settings.printed.len());
    assert!(cli.commands.len() > 5, "{:?}", cli.commands.keys());
    let (code, _, _) = ringws(&["serve", "--no-such-option"], &[]);
    assert_eq!(code, 2);
}

/// deploy/systemd/ringws.toml runs the app `ringws serve` runs by default, and the Kubernetes
/// manifest starts a valid `ringws serve` whose admin listener the probes, Prometheus and
/// publishers can reach.
#[test]
fn the_deploy_files_agree_with_the_program() {
    let cli = Cli::load();
    let settings = Settings::load(&cli);
    let unit: toml::Table = std::fs::read_to_string(repo().join("deploy/systemd/ringws.toml"))
        .unwrap()
        .parse()
        .unwrap();
    assert_eq!(
        unit.get("app"),
        settings.printed.get("app"),
        "deploy/systemd/ringws.toml must run the default app"
    );

    let yaml = std::fs::read_to_string(repo().join("deploy/container/kubernetes.yaml")).unwrap();
    let lines: Vec<&str> = yaml.lines().collect();
    // The container's command: the `- ` items after `command:`, comments skipped.
    let at = lines
        .iter()
        .position(|l| l.trim() == "command:")
        .expect("a command");
    let argv: Vec<String> = lines[at + 1..]
        .iter()
        .filter(|l| !l.trim_start().starts_with('#'))
        .map_while(|l| l.trim().strip_prefix("- "))
        .map(|item| item.trim_matches('"').to_string())
        .collect();
    assert_eq!(argv[..2], ["/usr/local/bin/ringws", "serve"], "{argv:?}");
    let serve = &cli.commands[&vec!["serve".to_string()]];
    for option in argv.iter().filter(|a| a.starts_with("--")) {
        assert!(
            serve.options.contains(option),
            "kubernetes.yaml: {option} is not an option of `ringws serve`"
        );
    }
    let value = |option: &str| {
        argv.iter()
            .position(|a| a == option)
            .map(|k| argv[k + 1].clone())
    };
    // --cores follows the pod's CPU request instead of repeating it.
    let cores = value("--cores").expect("--cores");
    let var = cores
        .strip_prefix("$(")
        .and_then(|v| v.strip_suffix(')'))
        .unwrap_or_else(|| panic!("--cores {cores} is hard-coded"));
    let declared = lines
        .iter()
        .position(|l| l.trim() == format!("- name: {var}"))
        .unwrap_or_else(|| panic!("no env {var}"));
    assert!(
        lines[declared..declared + 5]
            .iter()
            .any(|l| l.trim() == "resource: requests.cpu"),
        "{var} is not the pod's CPU request"
    );
    let args: Vec<String> = argv[1..]
        .iter()
        .map(|a| if *a == cores { "2".into() } else { a.clone() })
        .collect();
    serve_accepts(&args).unwrap_or_else(|e| panic!("kubernetes.yaml's command is refused: {e}"));
    // The admin listener: on the pod's address, a named port, probed, behind a Service.
    let admin = value("--admin-listen").expect("--admin-listen");
    let port = admin.strip_prefix("0.0.0.0:").expect("admin on 0.0.0.0");
    assert!(
        yaml.contains(&format!(
            "- name: admin\n              containerPort: {port}"
        )),
        "no container port named admin for {admin}"
    );
    let probe = lines
        .iter()
        .position(|l| l.trim() == "readinessProbe:")
        .expect("a readiness probe");
    let probe: Vec<&str> = lines[probe + 1..probe + 5]
        .iter()
        .map(|l| l.trim())
        .collect();
    assert!(
        probe.contains(&"httpGet:")
            && probe.contains(&"path: /readyz")
            && probe.contains(&"port: admin"),
        "the readiness probe is not GET /readyz on the admin port: {probe:?}"
    );
    assert!(
        yaml.contains("clusterIP: None") && yaml.contains("targetPort: admin"),
        "no headless Service for the admin port"
    );
}
