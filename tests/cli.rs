//! The `ringws` binary's command line: help, `serve --print-config`, precedence and refusals.
//! Nothing here starts a server: every `serve` run either prints its config or is refused (a
//! refusal that does not come is a failure, never a wait).

mod common;
use common::refused_start;
use std::path::PathBuf;
use std::process::{Command, Output};

/// Every key with the default `--help` states for it.
const DEFAULTS: [(&str, &str); 71] = [
    ("listen", "127.0.0.1:9001"),
    ("admin_listen", "127.0.0.1:9090"),
    ("tls_listen", "off"),
    ("tls_cert", "off"),
    ("tls_key", "off"),
    ("tls_sni_certs", "[]"),
    ("tls_client_ca", "off"),
    ("takeover", "false"),
    ("app", "pubsub"),
    ("cores", "all available"),
    ("max_connections", "1000000"),
    ("max_frame_size", "16MiB"),
    ("max_message_size", "16MiB"),
    ("max_handshake_size", "8KiB"),
    ("handshake_timeout", "10s"),
    ("close_timeout", "5s"),
    ("ping_interval", "30s"),
    ("pong_timeout", "10s"),
    ("idle_timeout", "off"),
    ("message_timeout", "10s"),
    ("min_receive_rate", "64KiB"),
    ("write_stall_timeout", "30s"),
    ("min_send_rate", "128KiB"),
    ("drain_timeout", "10s"),
    ("drain_delay", "0s"),
    ("drain_spread", "0s"),
    ("memory_budget", "half the memory limit"),
    ("max_outbound_buffer", "1MiB"),
    ("message_rate", "0"),
    ("message_burst", "100"),
    ("compression", "false"),
    ("compression_min_size", "256"),
    ("compression_level", "1"),
    ("backlog", "4096"),
    ("defer_accept", "1s"),
    ("ring_entries", "4096"),
    ("recv_buffer_size", "64KiB"),
    ("log", "info"),
    ("log_format", "text"),
    ("allowed_origins", "[]"),
    ("allow_missing_origin", "true"),
    ("subprotocols", "[]"),
    ("require_subprotocol", "false"),
    ("auth", "none"),
    ("auth_tokens_file", "off"),
    ("jwt_secret_file", "off"),
    ("jwt_audience", "off"),
    ("jwt_issuer", "off"),
    ("jwt_jwks_file", "off"),
    ("jwt_jwks_url", "off"),
    ("jwt_jwks_min_refresh_interval", "10s"),
    ("jwt_jwks_refresh_interval", "5m"),
    ("close_on_token_expiry", "false"),
    ("token_expiry_close_window", "30s"),
    ("topic_permissions_claim", "topics"),
    ("topic_permissions_default", "allow"),
    ("handshake_rate_per_ip", "0"),
    ("handshake_burst_per_ip", "20"),
    ("handshake_rate_table_size", "4096"),
    ("trusted_proxies", "[]"),
    ("proxy_protocol", "false"),
    ("debug_handshakes", "false"),
    ("publish_tokens_file", "off"),
    ("admin_tokens_file", "off"),
    ("allow_client_publish", "false"),
    ("max_subscriptions_per_connection", "64"),
    ("max_topic_length", "128"),
    ("max_control_message_size", "4KiB"),
    ("bus", "local"),
    ("bus_queue_size", "10000"),
    ("bus_publish_timeout", "1s"),
];

fn ringws(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_ringws"))
        .args(args)
        .env_remove("RUST_LOG")
        .output()
        .expect("run ringws")
}

fn stdout(output: &Output) -> String {
    String::from_utf8(output.stdout.clone()).expect("utf-8 stdout")
}

fn stderr(output: &Output) -> String {
    String::from_utf8(output.stderr.clone()).expect("utf-8 stderr")
}

fn flag(key: &str) -> String {
    format!("--{}", key.replace('_', "-"))
}

/// Writes a config file unique to the calling test.
fn config_file(name: &str, text: &str) -> PathBuf {
    let path = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join(format!("cli-{name}.toml"));
    std::fs::write(&path, text).expect("write config file");
    path
}

/// Runs `serve --print-config` with `args` and parses what it prints.
fn effective_config(args: &[&str]) -> toml::Table {
    let mut argv = vec!["serve", "--print-config"];
    argv.extend_from_slice(args);
    let output = ringws(&argv);
    assert!(output.status.success(), "{argv:?}: {}", stderr(&output));
    stdout(&output).parse().expect("--print-config prints TOML")
}

/// Runs `serve --print-config` with `args`, expects a configuration error, returns stderr.
fn refused(args: &[&str]) -> String {
    let mut argv = vec!["serve", "--print-config"];
    argv.extend_from_slice(args);
    let output = ringws(&argv);
    assert_eq!(
        output.status.code(),
        Some(2),
        "{argv:?}: {}",
        stdout(&output)
    );
    assert!(output.stdout.is_empty(), "{argv:?} printed a config");
    let message = stderr(&output);
    assert!(message.starts_with("ringws: error: "), "{message}");
    message
}

fn string(table: &toml::Table, key: &str) -> String {
    match &table[key] {
        toml::Value::String(text) => text.clone(),
        other => other.to_string(),
    }
}

#[test]
fn serve_help_lists_every_key_with_its_default() {
    let output = ringws(&["serve", "--help"]);
    assert!(output.status.success());
    let help = stdout(&output);
    // Each option is a block: its flag line, then indented description lines.
    let mut blocks: Vec<String> = Vec::new();
    for line in help.lines() {
        if line.trim_start().starts_with('-') && line.len() - line.trim_start().len() <= 6 {
            blocks.push(String::new());
        }
        if let Some(block) = blocks.last_mut() {
            block.push(' ');
            block.push_str(line.trim());
        }
    }
    for (key, default) in DEFAULTS {
        // A boolean's value is optional: `--takeover [<BOOL>]`.
        let block = blocks
            .iter()
            .find(|block| {
                let block = block.trim_start();
                block.starts_with(&format!("{} <", flag(key)))
                    || block.starts_with(&format!("{} [<", flag(key)))
            })
            .unwrap_or_else(|| panic!("{} missing from serve --help:\n{help}", flag(key)));
        assert!(block.contains(&format!("[default: {default}]")), "{block}");
    }
    assert!(help.contains("--config <FILE>"), "{help}");
    assert!(help.contains("--print-config"), "{help}");
}

#[test]
fn top_level_help_names_the_commands_and_an_example() {
    let output = ringws(&["--help"]);
    assert!(output.status.success());
    let help = stdout(&output);
    assert!(help.contains("serve "), "{help}");
    assert!(help.contains("bench "), "{help}");
    assert!(
        help.contains("ringws serve --listen 127.0.0.1:9001 --app echo --cores 2"),
        "{help}"
    );
}

#[test]
fn no_arguments_prints_usage() {
    let output = ringws(&[]);
    assert_eq!(output.status.code(), Some(2));
    assert!(stderr(&output).contains("Usage: ringws <COMMAND>"));
}

#[test]
fn version_prints_the_package_version() {
    let output = ringws(&["--version"]);
    assert!(output.status.success());
    assert_eq!(
        stdout(&output).trim(),
        format!("ringws {}", env!("CARGO_PKG_VERSION"))
    );
}

#[test]
fn print_config_shows_the_defaults() {
    let config = effective_config(&[]);
    assert_eq!(config.len(), DEFAULTS.len(), "{config:?}");
    for (key, default) in DEFAULTS {
        let expected = match key {
            "cores" => "all".to_owned(),
            "memory_budget" => ringws::config::format_size(ringws::config::default_memory_budget()),
            _ => default.to_owned(),
        };
        assert_eq!(string(&config, key), expected, "{key}");
    }
}

#[test]
fn print_config_output_is_a_config_file() {
    let printed = stdout(&ringws(&[
        "serve",
        "--print-config",
        "--max-frame-size",
        "1000001",
    ]));
    let path = config_file("round-trip", &printed);
    let reprinted = stdout(&ringws(&[
        "serve",
        "--print-config",
        "--config",
        path.to_str().unwrap(),
    ]));
    assert_eq!(reprinted, printed);
}

#[test]
fn file_overrides_defaults_and_flags_override_file() {
    let path = config_file(
        "precedence",
        "max_frame_size = \"1MiB\"\n\
         max_message_size = 2097152\n\
         close_timeout = \"1s\"\n\
         backlog = 128\n\
         cores = 1\n\
         log = \"ringws=debug\"\n",
    );
    let path = path.to_str().unwrap();

    let from_file = effective_config(&["--config", path]);
    assert_eq!(string(&from_file, "max_frame_size"), "1MiB");
    assert_eq!(string(&from_file, "max_message_size"), "2MiB");
    assert_eq!(string(&from_file, "close_timeout"), "1s");
    assert_eq!(string(&from_file, "backlog"), "128");
    assert_eq!(string(&from_file, "cores"), "1");
    assert_eq!(string(&from_file, "log"), "ringws=debug");
    assert_eq!(
        string(&from_file, "handshake_timeout"),
        "10s",
        "untouched keys keep defaults"
    );

    let flagged = effective_config(&[
        "--config",
        path,
        "--backlog",
        "256",
        "--close-timeout",
        "250ms",
        "--max-message-size",
        "64KiB",
        "--listen",
        "0.0.0.0:8080",
    ]);
    assert_eq!(string(&flagged, "backlog"), "256");
    assert_eq!(string(&flagged, "close_timeout"), "250ms");
    assert_eq!(string(&flagged, "max_message_size"), "64KiB");
    assert_eq!(string(&flagged, "listen"), "0.0.0.0:8080");
    assert_eq!(
        string(&flagged, "max_frame_size"),
        "1MiB",
        "file value stays when no flag"
    );
}

#[test]
fn unknown_config_key_is_refused_by_name() {
    let path = config_file("unknown-key", "backlog = 64\nmax_mesage_size = \"1MiB\"\n");
    let message = refused(&["--config", path.to_str().unwrap()]);
    assert!(
        message.contains(&format!("config file {}", path.display())),
        "{message}"
    );
    assert!(
        message.contains("unknown key \"max_mesage_size\""),
        "{message}"
    );
    assert!(
        message.contains("did you mean \"max_message_size\""),
        "{message}"
    );
}

#[test]
fn bad_values_in_the_file_name_the_file_and_key() {
    let path = config_file("bad-value", "\nmax_frame_size = \"12XB\"\n");
    let message = refused(&["--config", path.to_str().unwrap()]);
    assert!(
        message.contains(&format!(
            "config file {}: line 2: max_frame_size: \"12XB\" is not a size",
            path.display()
        )),
        "{message}"
    );

    let path = config_file("bad-syntax", "max_frame_size = \n");
    let message = refused(&["--config", path.to_str().unwrap()]);
    assert!(
        message.contains(&format!("config file {} is not valid TOML", path.display())),
        "{message}"
    );

    let message = refused(&["--config", "/nonexistent/ringws.toml"]);
    assert!(
        message.contains("cannot read config file /nonexistent/ringws.toml"),
        "{message}"
    );
}

#[test]
fn bad_size_and_duration_flags_are_refused_by_name() {
    let message = refused(&["--max-frame-size", "12XB"]);
    assert!(
        message
            .contains("--max-frame-size: \"12XB\" is not a size (examples: 16MiB, 64KiB, 1000000)"),
        "{message}"
    );
    let message = refused(&["--handshake-timeout", "10 parsecs"]);
    assert!(
        message.contains("--handshake-timeout: \"10 parsecs\" is not a duration"),
        "{message}"
    );
    let message = refused(&["--close-timeout", "0s"]);
    assert!(
        message.contains("--close-timeout: \"0s\" is out of range"),
        "{message}"
    );
    let message = refused(&["--ring-entries", "1000"]);
    assert!(
        message.contains("--ring-entries: \"1000\" is out of range: expected a power of two"),
        "{message}"
    );
    let message = refused(&["--recv-buffer-size", "1KiB"]);
    assert!(
        message.contains("--recv-buffer-size: \"1KiB\" is out of range"),
        "{message}"
    );
}

#[test]
fn print_config_is_portable_with_cores_all() {
    let printed = stdout(&ringws(&["serve", "--print-config"]));
    assert!(printed.contains("\ncores = \"all\"\n"), "{printed}");
    let path = config_file("cores-all", "cores = \"all\"\n");
    let config = effective_config(&["--config", path.to_str().unwrap()]);
    assert_eq!(string(&config, "cores"), "all");
    assert_eq!(
        string(&effective_config(&["--cores", "all"]), "cores"),
        "all"
    );
}

/// Runs `ringws serve --check-config ARGS`: exit code and what it printed (stdout, stderr).
fn check_config(args: &[&str], env: &[(&str, &str)]) -> (Option<i32>, String) {
    let out = common::output_within(
        Command::new(env!("CARGO_BIN_EXE_ringws"))
            .args(["serve", "--check-config"])
            .args(args)
            .env_remove("RUST_LOG")
            .env_remove("RINGWS_JWT_SECRET")
            .envs(env.iter().copied()),
        std::time::Duration::from_secs(10),
    );
    (out.status.code(), stdout(&out) + &stderr(&out))
}

#[test]
fn check_config_reads_the_files_the_config_names_without_starting() {
    let tokens = config_file("check-tokens", "alice:secret-token-1\n");
    let secret = config_file("check-secret", "0123456789abcdef0123456789abcdef\n");
    let short_secret = config_file("check-short-secret", "short\n");
    let missing = "/nonexistent/ringws/tokens";
    let valid = config_file(
        "check-valid",
        &format!(
            "auth = \"token\"\nauth_tokens_file = \"{}\"\npublish_tokens_file = \"{}\"\n\
             cores = \"all\"\n",
            tokens.display(),
            tokens.display()
        ),
    );
    let (code, said) = check_config(&["--config", valid.to_str().unwrap()], &[]);
    assert_eq!(code, Some(0), "{said}");
    assert!(said.contains("the configuration is valid"), "{said}");
    assert!(said.contains("app=pubsub"), "{said}");
    // The port may be taken: nothing is bound.
    let (code, said) = check_config(&["--listen", "127.0.0.1:1"], &[]);
    assert_eq!(code, Some(0), "{said}");

    let secret_file = secret.to_str().unwrap();
    let refusals: [(&[&str], &str); 5] = [
        (
            &["--auth", "token", "--auth-tokens-file", missing],
            "cannot read auth_tokens_file /nonexistent/ringws/tokens",
        ),
        (
            &[
                "--auth",
                "jwt",
                "--jwt-secret-file",
                short_secret.to_str().unwrap(),
            ],
            "jwt_secret_file",
        ),
        (&["--auth", "jwt"], "RINGWS_JWT_SECRET"),
        (
            &["--publish-tokens-file", missing],
            "cannot read publish_tokens_file /nonexistent/ringws/tokens",
        ),
        (&["--handshake-timeout", "soon"], "--handshake-timeout"),
    ];
    for (args, needle) in refusals {
        let (code, said) = check_config(args, &[]);
        assert_eq!(code, Some(2), "{args:?}: {said}");
        assert!(
            said.contains(needle),
            "{args:?}: {needle:?} missing from {said}"
        );
    }
    let (code, said) = check_config(&["--auth", "jwt", "--jwt-secret-file", secret_file], &[]);
    assert_eq!(code, Some(0), "{said}");
}

#[test]
fn cores_must_be_between_one_and_the_cpus_available() {
    let available = std::thread::available_parallelism()
        .map(|n| n.get())
        .unwrap_or(1);
    let expected = format!("expected between 1 and {available}, the number of CPUs available");
    for cores in ["0", "999"] {
        let message = refused(&["--cores", cores]);
        assert!(
            message.contains(&format!("--cores: \"{cores}\" is out of range")),
            "{message}"
        );
        assert!(message.contains(&expected), "{message}");
    }
    assert_eq!(string(&effective_config(&["--cores", "1"]), "cores"), "1");
}

#[test]
fn clap_usage_errors_keep_exit_code_two() {
    let output = ringws(&["serve", "--no-such-flag"]);
    assert_eq!(output.status.code(), Some(2));
    assert!(stderr(&output).contains("--no-such-flag"));
}

#[test]
fn lifecycle_settings_parse_switch_off_and_refuse_bad_values() {
    let config = effective_config(&[
        "--idle-timeout",
        "5m",
        "--message-rate",
        "50",
        "--max-outbound-buffer",
        "64KiB",
    ]);
    assert_eq!(config["idle_timeout"].as_str(), Some("5m"));
    assert_eq!(config["message_rate"].as_integer(), Some(50));
    assert_eq!(config["max_outbound_buffer"].as_str(), Some("64KiB"));
    let config = effective_config(&["--idle-timeout", "off"]);
    assert_eq!(config["idle_timeout"].as_str(), Some("off"));

    assert!(refused(&["--message-burst", "0"]).contains("--message-burst"));
    assert!(refused(&["--max-outbound-buffer", "1KiB"]).contains("--max-outbound-buffer"));
    assert!(refused(&["--ping-interval", "0s"]).contains("--ping-interval"));
    assert!(refused(&["--pong-timeout", "soon"]).contains("--pong-timeout"));
}

#[test]
fn list_settings_take_the_flag_repeatedly_or_a_toml_array() {
    let config = effective_config(&[
        "--allowed-origins",
        "https://app.example.com",
        "--allowed-origins",
        "*.example.com",
        "--trusted-proxies",
        "10.0.0.0/8",
        "--subprotocols",
        "chat.v2",
    ]);
    assert_eq!(
        config["allowed_origins"],
        toml::Value::Array(vec![
            "https://app.example.com".into(),
            "*.example.com".into()
        ])
    );
    assert_eq!(string(&config, "trusted_proxies"), "[\"10.0.0.0/8\"]");
    assert_eq!(string(&config, "subprotocols"), "[\"chat.v2\"]");

    let path = config_file(
        "policy-lists",
        "allowed_origins = [\"https://a.example\", \"https://b.example:8443\"]\n\
         subprotocols = [\"v2\", \"v1\"]\n\
         require_subprotocol = true\n\
         trusted_proxies = [\"::1\", \"192.168.0.0/16\"]\n",
    );
    let from_file = effective_config(&["--config", path.to_str().unwrap()]);
    assert_eq!(
        string(&from_file, "allowed_origins"),
        "[\"https://a.example\", \"https://b.example:8443\"]"
    );
    assert_eq!(string(&from_file, "require_subprotocol"), "true");
    assert_eq!(
        string(&from_file, "trusted_proxies"),
        "[\"::1/128\", \"192.168.0.0/16\"]"
    );
    // The printed file loads back to the same configuration.
    let printed = stdout(&ringws(&[
        "serve",
        "--print-config",
        "--config",
        path.to_str().unwrap(),
    ]));
    let again = config_file("policy-lists-again", &printed);
    let reprinted = stdout(&ringws(&[
        "serve",
        "--print-config",
        "--config",
        again.to_str().unwrap(),
    ]));
    assert_eq!(reprinted, printed);
}

#[test]
fn policy_settings_that_need_each_other_are_refused_by_name() {
    let jwt = Command::new(env!("CARGO_BIN_EXE_ringws"))
        .args(["serve", "--print-config", "--auth", "jwt"])
        .env_remove("RUST_LOG")
        .env_remove("RINGWS_JWT_SECRET")
        .output()
        .expect("run ringws");
    assert_eq!(jwt.status.code(), Some(2));
    let message = stderr(&jwt);
    assert!(
        message.contains("auth = \"jwt\" needs a secret or keys: set jwt_secret_file"),
        "{message}"
    );
    assert!(message.contains("RINGWS_JWT_SECRET"), "{message}");

    let with_env = Command::new(env!("CARGO_BIN_EXE_ringws"))
        .args(["serve", "--print-config", "--auth", "jwt"])
        .env_remove("RUST_LOG")
        .env(
            "RINGWS_JWT_SECRET",
            "an environment secret of at least 32 bytes",
        )
        .output()
        .expect("run ringws");
    assert!(with_env.status.success(), "{}", stderr(&with_env));
    assert!(!stdout(&with_env).contains("an environment secret"));

    let message = refused(&["--auth", "token"]);
    assert!(
        message.contains("auth = \"token\" needs auth_tokens_file (--auth-tokens-file)"),
        "{message}"
    );
    let config = effective_config(&["--auth", "token", "--auth-tokens-file", "/etc/tokens"]);
    assert_eq!(string(&config, "auth_tokens_file"), "/etc/tokens");

    let message = refused(&["--require-subprotocol", "true"]);
    assert!(
        message.contains("require_subprotocol = true needs subprotocols"),
        "{message}"
    );
}

#[test]
fn bad_policy_values_are_refused_by_name() {
    let message = refused(&["--allowed-origins", "https://app.example.com/"]);
    assert!(
        message.contains(
            "--allowed-origins: \"https://app.example.com/\" is not an allowed origin: an origin \
             has no path: write https://app.example.com"
        ),
        "{message}"
    );
    let message = refused(&["--trusted-proxies", "10.0.0.0/33"]);
    assert!(
        message.contains("--trusted-proxies: \"10.0.0.0/33\" is not a trusted proxy"),
        "{message}"
    );
    let message = refused(&["--auth", "oauth"]);
    assert!(
        message.contains("\"oauth\" is not an auth mode (available: none, token, jwt)"),
        "{message}"
    );
    let message = refused(&["--handshake-rate-table-size", "1"]);
    assert!(
        message.contains("--handshake-rate-table-size: \"1\" is out of range"),
        "{message}"
    );
    let message = refused(&["--debug-handshakes", "yes"]);
    assert!(
        message
            .contains("--debug-handshakes: \"yes\" is not a boolean: write true, false, on or off"),
        "{message}"
    );
}

#[test]
fn the_deploy_configuration_file_is_accepted_as_written() {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/deploy/systemd/ringws.toml");
    let config = effective_config(&["--config", path]);
    // Every value the file sets is the one in effect (the file documents its choices).
    let text = std::fs::read_to_string(path).unwrap();
    let written: toml::Table = text.parse().expect("deploy/systemd/ringws.toml is TOML");
    assert!(written.len() >= 8, "{written:?}");
    for (key, value) in &written {
        let value = match value {
            toml::Value::String(s) => s.clone(),
            other => other.to_string(),
        };
        assert_eq!(string(&config, key), value, "{key}");
    }
}

/// A free port on loopback (bound, then released).
fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

#[test]
fn listen_and_admin_listen_on_one_port_are_refused_before_starting() {
    let port = free_port();
    let both = format!("127.0.0.1:{port}");
    refused_start(
        &["--listen", &both, "--admin-listen", &both],
        &[],
        2,
        &[
            &format!("listen ({both}) and admin_listen ({both}) are on the same port"),
            "--admin-listen",
        ],
    );
    // A wildcard listen covers the admin listener's loopback address.
    let wildcard = format!("0.0.0.0:{port}");
    let message = refused(&["--listen", &wildcard, "--admin-listen", &both]);
    assert!(message.contains("are on the same port"), "{message}");
    // In a config file too.
    let path = config_file(
        "same-port",
        &format!("listen = \"{both}\"\nadmin_listen = \"{both}\"\n"),
    );
    let message = refused(&["--config", path.to_str().unwrap()]);
    assert!(message.contains("are on the same port"), "{message}");
}

#[test]
fn an_unknown_log_level_is_refused_with_the_levels_listed() {
    let levels = "the levels are trace, debug, info, warn, error, off";
    let message = refused(&["--log", "verbose"]);
    assert!(
        message.contains("--log: \"verbose\" is not a log filter: unknown level \"verbose\""),
        "{message}"
    );
    assert!(message.contains(levels), "{message}");
    let path = config_file("log-level", "log = \"info,verbose\"\n");
    let message = refused(&["--config", path.to_str().unwrap()]);
    assert!(
        message.contains("log: \"info,verbose\" is not a log filter"),
        "{message}"
    );

    // RUST_LOG wins over --log, and is held to the same rule at start.
    refused_start(
        &[
            "--listen",
            "127.0.0.1:0",
            "--admin-listen",
            "off",
            "--cores",
            "1",
        ],
        &[("RUST_LOG", "verbose")],
        2,
        &["RUST_LOG: \"verbose\" is not a log filter", levels],
    );

    for filter in [
        "debug",
        "info,ringws::handshake=debug",
        "warn,ringws=trace",
        "ringws::reactor",
    ] {
        assert_eq!(string(&effective_config(&["--log", filter]), "log"), filter);
    }
}

#[test]
fn every_boolean_setting_reads_true_false_on_and_off_as_flag_and_key() {
    let defaults = effective_config(&[]);
    let booleans: Vec<&String> = defaults
        .iter()
        .filter(|(_, value)| value.is_bool())
        .map(|(key, _)| key)
        .collect();
    for key in [
        "takeover",
        "allow_missing_origin",
        "require_subprotocol",
        "debug_handshakes",
        "allow_client_publish",
    ] {
        assert!(
            booleans.iter().any(|k| *k == key),
            "{key} prints as a boolean"
        );
    }
    // require_subprotocol = true needs a subprotocol to require; proxy_protocol = true a
    // trusted proxy.
    let needs = [
        "--subprotocols",
        "chat.v1",
        "--trusted-proxies",
        "10.0.0.0/8",
    ];
    for key in booleans {
        for (word, value) in [
            ("true", true),
            ("false", false),
            ("on", true),
            ("off", false),
        ] {
            let mut args = vec![flag(key), word.to_owned()];
            args.extend(needs.map(str::to_owned));
            let args: Vec<&str> = args.iter().map(String::as_str).collect();
            let config = effective_config(&args);
            assert_eq!(
                config[key.as_str()].as_bool(),
                Some(value),
                "{} {word}",
                flag(key)
            );

            let path = config_file(
                &format!("bool-{key}-{word}"),
                &format!(
                    "{key} = \"{word}\"\nsubprotocols = [\"chat.v1\"]\n\
                     trusted_proxies = [\"10.0.0.0/8\"]\n"
                ),
            );
            let config = effective_config(&["--config", path.to_str().unwrap()]);
            assert_eq!(
                config[key.as_str()].as_bool(),
                Some(value),
                "{key} = \"{word}\""
            );
        }
        // The flag alone switches it on.
        let mut args = vec![flag(key)];
        args.extend(needs.map(str::to_owned));
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        assert_eq!(
            effective_config(&args)[key.as_str()].as_bool(),
            Some(true),
            "{}",
            flag(key)
        );

        let message = refused(&[&flag(key), "yes"]);
        assert!(
            message.contains(&format!(
                "{}: \"yes\" is not a boolean: write true, false, on or off",
                flag(key)
            )),
            "{message}"
        );
    }
}
