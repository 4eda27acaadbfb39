use super::*;
use clap::{Args as _, CommandFactory as _};

fn flags(pairs: &[(&str, &str)]) -> Settings {
    // Going through clap checks that every key really is a flag.
    #[derive(clap::Parser)]
    struct Cli {
        #[command(flatten)]
        settings: Settings,
    }
    let mut argv = vec!["ringws".to_owned()];
    for (key, value) in pairs {
        argv.push(format!("--{}", key.replace('_', "-")));
        argv.push((*value).to_owned());
    }
    <Cli as clap::Parser>::try_parse_from(argv)
        .expect("flags parse")
        .settings
}

fn load_text(toml_text: &str, flag_pairs: &[(&str, &str)]) -> Result<Config, ConfigError> {
    let path = Path::new("ringws.toml");
    let file = settings_from_toml(path, toml_text)?;
    // As `load` does for `ringws serve`.
    let mut config = Config::serve_defaults();
    apply(
        &mut config,
        &file,
        &Origin::File {
            path,
            text: toml_text,
        },
    )?;
    apply(&mut config, &flags(flag_pairs), &Origin::Flags)?;
    Ok(config)
}

fn error(toml_text: &str, flag_pairs: &[(&str, &str)]) -> String {
    load_text(toml_text, flag_pairs)
        .expect_err("must be refused")
        .to_string()
}

#[test]
fn defaults_are_valid_and_print_config_round_trips() {
    Config::default()
        .validate()
        .expect("library defaults are valid");
    let defaults = Config::serve_defaults();
    defaults.validate().expect("defaults are valid");
    let text = defaults.to_toml();
    assert!(text.contains("max_frame_size = \"16MiB\"\n"), "{text}");
    assert!(text.contains("handshake_timeout = \"10s\"\n"), "{text}");
    assert!(text.contains("listen = \"127.0.0.1:9001\"\n"), "{text}");
    let reloaded = load_text(&text, &[]).expect("to_toml output loads");
    assert_eq!(reloaded, defaults);
    assert_eq!(reloaded.to_toml(), text);

    let custom = load_text(
        "log = 'ringws=debug,\"warn\"'\nmax_frame_size = 1000001\nclose_timeout = '1m 500ms'",
        &[],
    );
    // The quote inside a log filter is refused by EnvFilter; without it, it round-trips.
    assert!(custom.is_err());
    let custom = load_text(
        "log = 'ringws=debug'\nmax_frame_size = 1000001\nclose_timeout = '1m 500ms'",
        &[],
    )
    .expect("valid");
    assert_eq!(
        load_text(&custom.to_toml(), &[])
            .expect("reloads")
            .to_toml(),
        custom.to_toml()
    );
}

/// A value other than the default for every key, as the config file writes it.
fn non_defaults() -> Vec<(&'static str, &'static str)> {
    let mut values = vec![
        ("listen", "'[::1]:8080'"),
        ("admin_listen", "'off'"),
        ("takeover", "true"),
        ("app", "'echo'"),
        ("max_connections", "1000"),
        ("max_frame_size", "'1MiB'"),
        ("max_message_size", "'2MiB'"),
        ("max_handshake_size", "'16KiB'"),
        ("handshake_timeout", "'3s'"),
        ("close_timeout", "'1s 500ms'"),
        ("ping_interval", "'1m'"),
        ("pong_timeout", "'20s'"),
        ("idle_timeout", "'5m'"),
        ("write_stall_timeout", "'45s'"),
        ("drain_timeout", "'2s'"),
        ("max_outbound_buffer", "'8MiB'"),
        ("message_rate", "50"),
        ("message_burst", "7"),
        ("backlog", "128"),
        ("defer_accept", "'off'"),
        ("ring_entries", "256"),
        ("recv_buffer_size", "'128KiB'"),
        ("log", "'ringws=debug'"),
        (
            "allowed_origins",
            "['https://app.example.com', '*.example.com']",
        ),
        ("allow_missing_origin", "false"),
        ("subprotocols", "['chat.v2', 'chat.v1']"),
        ("require_subprotocol", "true"),
        ("auth", "'token'"),
        ("auth_tokens_file", "'/etc/ringws/tokens'"),
        ("jwt_secret_file", "'/etc/ringws/jwt.secret'"),
        ("jwt_audience", "'chat'"),
        ("jwt_issuer", "'https://idp.example'"),
        ("handshake_rate_per_ip", "5"),
        ("handshake_burst_per_ip", "9"),
        ("handshake_rate_table_size", "1024"),
        ("trusted_proxies", "['10.0.0.0/8', '::1']"),
        ("debug_handshakes", "'on'"),
        ("publish_tokens_file", "'/etc/ringws/publish'"),
        ("allow_client_publish", "true"),
        ("max_subscriptions_per_connection", "8"),
        ("max_topic_length", "64"),
        ("max_control_message_size", "'1KiB'"),
    ];
    // Any other number of cores would be out of range on a one-CPU machine.
    if available_cores() > 1 {
        values.push(("cores", "1"));
    }
    values
}

#[test]
fn each_row_of_the_table_drives_its_field_flag_help_and_print_config_line() {
    let defaults = Config::serve_defaults();
    let command = Settings::augment_args(clap::Command::new("serve"));
    let help = command.clone().render_long_help().to_string();
    let printed = defaults.to_toml();
    let ids: Vec<_> = command.get_arguments().map(|arg| arg.get_id()).collect();
    let names: Vec<_> = keys().iter().map(|key| key.name).collect();
    assert_eq!(ids, names, "one flag per key, in table order");
    for (key, arg) in keys().iter().zip(command.get_arguments()) {
        let name = key.name;
        let flag = name.replace('_', "-");
        assert_eq!(arg.get_long(), Some(flag.as_str()));
        let value = match key.bare_flag {
            Some(_) => format!("[<{}>]", key.value_name),
            None => format!("<{}>", key.value_name),
        };
        assert!(
            help.contains(&format!("--{flag} {value}")),
            "{name} missing from --help"
        );
        let expected = match (name, key.get(&defaults)) {
            ("cores", _) => "all available".to_owned(),
            ("memory_budget", _) => "half the memory limit".to_owned(),
            (_, toml::Value::String(text)) => text,
            (_, other) => other.to_string(),
        };
        let arg_help = arg.get_help().expect("every setting has help").to_string();
        assert!(
            arg_help.ends_with(&format!(". [default: {expected}]"))
                || arg_help.ends_with(&format!("- [default: {expected}]")),
            "{name}: {arg_help}"
        );
        assert!(
            printed.contains(&format!("\n{name} = ")),
            "{name} missing from --print-config"
        );
    }

    // Every key set in the file moves its own field and no other, and the printed
    // configuration reads back to an equal one.
    let values = non_defaults();
    let file: String = values
        .iter()
        .map(|(key, value)| format!("{key} = {value}\n"))
        .collect();
    let custom = load_text(&file, &[]).expect("every non-default value is valid");
    for key in keys() {
        let moved = key.get(&custom) != key.get(&defaults);
        let written = values.iter().any(|(name, _)| *name == key.name);
        assert_eq!(moved, written, "{}", key.name);
    }
    let reloaded = load_text(&custom.to_toml(), &[]).expect("--print-config output loads");
    assert_eq!(reloaded, custom);
    custom.validate().expect("valid");

    // The flag of every key sets the same field as its file key.
    let flag_pairs: Vec<(&str, String)> = values
        .iter()
        .flat_map(|&(key, value)| {
            let parsed: toml::Value = toml::from_str::<toml::Table>(&format!("v = {value}"))
                .expect("test value is TOML")
                .remove("v")
                .expect("v");
            let texts: Vec<String> = match parsed {
                toml::Value::Array(items) => items
                    .iter()
                    .map(|item| item.as_str().unwrap().into())
                    .collect(),
                toml::Value::String(text) => vec![text],
                other => vec![other.to_string()],
            };
            texts.into_iter().map(move |text| (key, text))
        })
        .collect();
    let flag_pairs: Vec<(&str, &str)> = flag_pairs.iter().map(|(k, v)| (*k, v.as_str())).collect();
    assert_eq!(load_text("", &flag_pairs).expect("valid flags"), custom);

    // Keep clap's own invariants.
    #[derive(clap::Parser)]
    struct Cli {
        #[command(flatten)]
        settings: Settings,
    }
    Cli::command().debug_assert();
}

#[test]
fn file_overrides_defaults_and_flags_override_file() {
    let config = load_text(
        "max_frame_size = \"1MiB\"\nmax_message_size = 2097152\nbacklog = 128\nclose_timeout = \"1s\"",
        &[("backlog", "256"), ("close_timeout", "250ms"), ("listen", "[::1]:8080")],
    )
    .expect("valid");
    assert_eq!(config.max_frame_size, 1 << 20);
    assert_eq!(config.max_message_size, 2 << 20);
    assert_eq!(config.backlog, 256);
    assert_eq!(config.close_timeout, Duration::from_millis(250));
    assert_eq!(config.listen, "[::1]:8080".parse().unwrap());
    assert_eq!(
        config.handshake_timeout,
        Config::default().handshake_timeout
    );
}

#[test]
fn the_library_default_opens_no_admin_listener_and_serve_opens_one() {
    let library = Config::default();
    let serve = Config::serve_defaults();
    assert_eq!(library.admin_listen, None);
    assert_eq!(serve.admin_listen, Some("127.0.0.1:9090".parse().unwrap()));
    // The admin listener is the only difference.
    assert_eq!(
        Config {
            admin_listen: serve.admin_listen,
            ..library
        },
        serve
    );
    let loaded = load(None, &Settings::default()).expect("defaults load");
    assert_eq!(loaded, serve, "ringws serve starts from its own defaults");
}

#[test]
fn listen_and_admin_listen_may_not_share_a_port() {
    for (listen, admin) in [
        ("127.0.0.1:9011", "127.0.0.1:9011"),
        ("0.0.0.0:9011", "127.0.0.1:9011"),
        ("127.0.0.1:9011", "0.0.0.0:9011"),
        ("[::]:9011", "127.0.0.1:9011"),
        ("[::1]:9011", "[::]:9011"),
        ("[::ffff:127.0.0.1]:9011", "127.0.0.1:9011"),
    ] {
        let config = load_text("", &[("listen", listen), ("admin_listen", admin)]).unwrap();
        let message = check_together(&config, false).unwrap_err().to_string();
        assert!(
            message.contains(&format!(
                "listen ({listen}) and admin_listen ({admin}) are on the same port"
            )),
            "{listen} {admin}: {message}"
        );
        assert!(message.contains("--admin-listen"), "{message}");
    }
    for (listen, admin) in [
        ("127.0.0.1:9011", "127.0.0.1:9012"),
        ("127.0.0.1:9011", "127.0.0.2:9011"),
        ("0.0.0.0:9011", "[::1]:9011"),
        ("127.0.0.1:0", "127.0.0.1:0"),
    ] {
        let config = load_text("", &[("listen", listen), ("admin_listen", admin)]).unwrap();
        check_together(&config, false).unwrap_or_else(|e| panic!("{listen} {admin}: {e}"));
    }
    let built = Config {
        admin_listen: Some(Config::default().listen),
        ..Config::default()
    };
    assert!(matches!(
        built.validate(),
        Err(ConfigError::SamePort { .. })
    ));
}

#[test]
fn every_boolean_key_reads_true_false_on_and_off_in_flags_and_the_file() {
    let defaults = Config::serve_defaults();
    let booleans: Vec<&str> = keys()
        .iter()
        .filter(|key| key.get(&defaults).is_bool())
        .map(|key| key.name)
        .collect();
    assert!(booleans.len() >= 5, "{booleans:?}");
    for key in &booleans {
        let flag = format!("--{}", key.replace('_', "-"));
        for (word, value) in BOOLEAN_WORDS {
            for written in [word.to_owned(), word.to_uppercase()] {
                // require_subprotocol needs subprotocols, which check_together wants; apply
                // alone checks the value.
                let from_flag = load_text("", &[(key, &written)]).expect(&written);
                let from_file = load_text(&format!("{key} = '{written}'"), &[]).expect(&written);
                let printed = toml::Value::Boolean(value);
                let k = keys().iter().find(|k| k.name == *key).unwrap();
                assert_eq!(k.get(&from_flag), printed, "{flag} {written}");
                assert_eq!(k.get(&from_file), printed, "{key} = '{written}'");
            }
        }
        let from_toml = load_text(&format!("{key} = true"), &[]).unwrap();
        let k = keys().iter().find(|k| k.name == *key).unwrap();
        assert_eq!(k.get(&from_toml), toml::Value::Boolean(true));
        assert_eq!(
            error("", &[(key, "yes")]),
            format!("{flag}: \"yes\" is not a boolean: write true, false, on or off")
        );
        assert!(
            error(&format!("{key} = 1"), &[])
                .contains("expected true, false, on or off, found a integer (1)"),
            "{key}"
        );
    }
}

#[test]
fn log_filters_follow_envfilter_but_refuse_an_unknown_bare_word() {
    for good in [
        "info",
        "WARN",
        "off",
        "ringws=debug",
        "info,ringws::handshake=debug",
        "warn,ringws::reactor=trace",
        "ringws",
        "ringws::handshake",
        "[conn]=trace",
    ] {
        let config = load_text("", &[("log", good)]).unwrap_or_else(|e| panic!("{good}: {e}"));
        assert_eq!(config.log, good);
    }
    for bad in ["verbose", "info,verbose", "loud,ringws=debug", "debugging"] {
        let message = error("", &[("log", bad)]);
        assert!(
            message.starts_with(&format!(
                "--log: {bad:?} is not a log filter: unknown level"
            )),
            "{message}"
        );
        assert!(
            message.contains("trace, debug, info, warn, error, off"),
            "{message}"
        );
    }
    assert!(error("", &[("log", "ringws=loud")]).contains("is not a log filter"));
}

#[test]
fn unknown_keys_are_named_with_a_suggestion() {
    let message = error("backlog = 1\nmax_mesage_size = \"1MiB\"\n", &[]);
    assert_eq!(
        message,
        "config file ringws.toml: unknown key \"max_mesage_size\" on line 2; did you mean \
         \"max_message_size\"? (every key is listed by `ringws serve --help`)"
    );
    let message = error("[server]\nlisten = \"0.0.0.0:80\"\n", &[]);
    assert!(
        message.starts_with("config file ringws.toml: unknown key \"server\""),
        "{message}"
    );
    assert_eq!(file::closest_key("max-frame-size"), Some("max_frame_size"));
    assert_eq!(file::closest_key("colour"), None);
}

#[test]
fn bad_values_name_where_they_came_from() {
    assert_eq!(
        error("", &[("max_frame_size", "12XB")]),
        "--max-frame-size: \"12XB\" is not a size (examples: 16MiB, 64KiB, 1000000)"
    );
    assert_eq!(
        error("\n\nmax_frame_size = \"12XB\"", &[]),
        "config file ringws.toml: line 3: max_frame_size: \"12XB\" is not a size (examples: \
         16MiB, 64KiB, 1000000)"
    );
    assert_eq!(
        error("", &[("handshake_timeout", "soon")]),
        "--handshake-timeout: \"soon\" is not a duration (examples: 10 or 2.5 seconds, 10s, \
         500ms, 1m 30s)"
    );
    assert!(error("close_timeout = true", &[]).contains("close_timeout: expected a duration"));
    assert!(error("cores = true", &[])
        .contains("cores: expected a whole number, found a boolean (true)"));
    assert!(error("listen = 9001", &[]).contains("listen: expected an address"));
    assert!(error("", &[("listen", "localhost")]).contains("is not a socket address"));
    assert!(
        error("", &[("app", "chat")]).contains("\"chat\" is not an app (available: pubsub, echo)")
    );
    assert!(error("", &[("log", "ringws=loud")])
        .starts_with("--log: \"ringws=loud\" is not a log filter"));
    assert!(
        error("syntax error here", &[]).starts_with("config file ringws.toml is not valid TOML")
    );
}

#[test]
fn bounds_are_enforced() {
    let available = available_cores();
    let cores_error = format!("between 1 and {available}, the number of CPUs available");
    assert!(error("", &[("cores", "0")]).contains(&cores_error));
    assert!(error("", &[("cores", &(available + 1).to_string())]).contains(&cores_error));
    assert!(load_text("", &[("cores", &available.to_string())]).is_ok());

    for (key, bad, good) in [
        ("max_frame_size", "124", "125"),
        ("max_frame_size", "1100GB", "1TiB"),
        ("max_message_size", "1025GiB", "1024GiB"),
        ("max_handshake_size", "1023", "1KiB"),
        ("max_handshake_size", "1025KiB", "1MiB"),
        ("recv_buffer_size", "4095", "4KiB"),
        ("recv_buffer_size", "17MiB", "16MiB"),
        ("ring_entries", "32", "64"),
        ("ring_entries", "65536", "32768"),
        ("ring_entries", "100", "128"),
        ("backlog", "0", "1"),
        ("backlog", "65536", "65535"),
        ("max_connections", "0", "1"),
        ("handshake_timeout", "0s", "1ns"),
        ("close_timeout", "2days", "1day"),
    ] {
        let message = error("", &[(key, bad)]);
        assert!(
            message.contains("is out of range: expected"),
            "{key}={bad}: {message}"
        );
        assert!(load_text("", &[(key, good)]).is_ok(), "{key}={good}");
    }
    assert_eq!(
        error("", &[("ring_entries", "100")]),
        "--ring-entries: \"100\" is out of range: expected a power of two between 64 and 32768"
    );
    assert_eq!(
        error("max_frame_size = -1", &[]),
        "config file ringws.toml: line 1: max_frame_size: -1 is out of range: expected between \
         125 and 1TiB"
    );
    // Frames may be larger than messages: each limit stands alone.
    assert!(load_text("max_frame_size = '1MiB'\nmax_message_size = '64KiB'", &[]).is_ok());
}

#[test]
fn validate_names_the_field() {
    let config = Config {
        ring_entries: 1000,
        ..Config::default()
    };
    assert_eq!(
        config
            .validate()
            .expect_err("not a power of two")
            .to_string(),
        "config ring_entries: 1000 is out of range: expected a power of two between 64 and 32768"
    );
}

#[test]
fn list_keys_take_repeated_flags_arrays_or_one_string() {
    let config = load_text(
        "allowed_origins = ['https://app.example.com', '*.example.com']\n\
         subprotocols = 'chat.v2'\n\
         trusted_proxies = ['10.0.0.0/8', '::1']",
        &[],
    )
    .expect("valid");
    let shown: Vec<String> = config
        .allowed_origins
        .iter()
        .map(|o| o.to_string())
        .collect();
    assert_eq!(shown, ["https://app.example.com", "*.example.com"]);
    assert_eq!(config.subprotocols, ["chat.v2"]);
    let proxies: Vec<String> = config
        .trusted_proxies
        .iter()
        .map(|c| c.to_string())
        .collect();
    assert_eq!(proxies, ["10.0.0.0/8", "::1/128"]);

    // Flags replace the file's list rather than adding to it.
    let config = load_text(
        "subprotocols = ['a', 'b']",
        &[("subprotocols", "v2"), ("subprotocols", "v1")],
    )
    .expect("valid");
    assert_eq!(config.subprotocols, ["v2", "v1"]);
    let text = config.to_toml();
    assert!(
        text.contains("\nsubprotocols = [\"v2\", \"v1\"]\n"),
        "{text}"
    );
    assert_eq!(load_text(&text, &[]).unwrap().to_toml(), text);
    config.validate().expect("valid");
}

#[test]
fn policy_keys_parse_and_print() {
    let config = load_text(
        "allow_missing_origin = false\nrequire_subprotocol = 'true'\nsubprotocols = ['x']\n\
         auth = 'JWT'\njwt_secret_file = '/etc/ringws/jwt.secret'\njwt_audience = 'chat'\n\
         handshake_rate_per_ip = 5\nhandshake_burst_per_ip = 10\n\
         handshake_rate_table_size = 1024\ndebug_handshakes = 'on'",
        &[("jwt_issuer", "https://idp.example")],
    )
    .expect("valid");
    assert!(!config.allow_missing_origin);
    assert!(config.require_subprotocol);
    assert_eq!(config.auth, AuthMode::Jwt);
    assert_eq!(
        config.jwt_secret_file.as_deref(),
        Some(Path::new("/etc/ringws/jwt.secret"))
    );
    assert_eq!(config.jwt_audience.as_deref(), Some("chat"));
    assert_eq!(config.jwt_issuer.as_deref(), Some("https://idp.example"));
    assert_eq!(config.handshake_rate_per_ip, 5);
    assert_eq!(config.handshake_burst_per_ip, 10);
    assert_eq!(config.handshake_rate_table_size, 1024);
    assert!(config.debug_handshakes);
    let text = config.to_toml();
    for line in [
        "allow_missing_origin = false",
        "auth = \"jwt\"",
        "jwt_issuer = \"https://idp.example\"",
        "auth_tokens_file = \"off\"",
        "debug_handshakes = true",
    ] {
        assert!(text.contains(&format!("\n{line}\n")), "{line}: {text}");
    }
    assert_eq!(load_text(&text, &[]).unwrap().to_toml(), text);
    let unset = load_text("jwt_audience = 'off'", &[("jwt_issuer", "off")]).unwrap();
    assert_eq!((unset.jwt_audience, unset.jwt_issuer), (None, None));
}

#[test]
fn bad_policy_values_are_explained() {
    assert_eq!(
        error("allowed_origins = ['https://a.example/']", &[]),
        "config file ringws.toml: line 1: allowed_origins: \"https://a.example/\" is not an \
         allowed origin: an origin has no path: write https://a.example"
    );
    assert!(error("", &[("allowed_origins", "a.example")])
        .starts_with("--allowed-origins: \"a.example\" is not an allowed origin"));
    assert!(error("", &[("trusted_proxies", "10.1.2.3/8")]).contains(
        "is not a trusted proxy: 10.1.2.3/8 has host bits set: the block is written 10.0.0.0/8"
    ));
    assert!(error("trusted_proxies = ['10.0.0.0/8', 'x']", &[])
        .contains("\"x\" is not a trusted proxy"));
    assert!(error("", &[("subprotocols", "a b")]).contains("is not a subprotocol name"));
    assert!(error("", &[("subprotocols", "a"), ("subprotocols", "a")])
        .contains("--subprotocols: \"a\" is listed twice"));
    assert!(error("", &[("auth", "basic")])
        .contains("\"basic\" is not an auth mode (available: none, token, jwt)"));
    assert!(error("", &[("allow_missing_origin", "yes")]).contains("is not a boolean"));
    assert!(error("allow_missing_origin = 1", &[]).contains("expected true, false, on or off"));
    assert!(error("", &[("jwt_audience", " ")]).contains("write \"off\" to leave it unset"));
    assert!(error("allowed_origins = [1]", &[]).contains("expected an origin"));
    let many: Vec<String> = (0..=MAX_SUBPROTOCOLS).map(|i| format!("'p{i}'")).collect();
    assert!(error(&format!("subprotocols = [{}]", many.join(",")), &[])
        .contains(&format!("more than {MAX_SUBPROTOCOLS} entries")));
    for (key, bad, good) in [
        ("handshake_rate_per_ip", "1000001", "1000000"),
        ("handshake_burst_per_ip", "0", "1"),
        ("handshake_rate_table_size", "15", "16"),
        ("handshake_rate_table_size", "1048577", "1048576"),
    ] {
        assert!(
            error("", &[(key, bad)]).contains("is out of range"),
            "{key}={bad}"
        );
        assert!(load_text("", &[(key, good)]).is_ok(), "{key}={good}");
    }
}

#[test]
fn settings_that_need_each_other() {
    let token = Config {
        auth: AuthMode::Token,
        ..Config::default()
    };
    assert_eq!(
        check_together(&token, true).unwrap_err().to_string(),
        "auth = \"token\" needs auth_tokens_file (--auth-tokens-file): a file of accepted \
         tokens, one per line"
    );
    let token = Config {
        auth_tokens_file: Some("tokens.txt".into()),
        ..token
    };
    assert!(check_together(&token, false).is_ok());

    let jwt = Config {
        auth: AuthMode::Jwt,
        ..Config::default()
    };
    assert_eq!(
        check_together(&jwt, false).unwrap_err().to_string(),
        "auth = \"jwt\" needs a secret or keys: set jwt_secret_file (--jwt-secret-file) or the \
         environment variable RINGWS_JWT_SECRET for HS256, or jwt_jwks_file / jwt_jwks_url for \
         RS256, PS256, ES256 and EdDSA"
    );
    assert!(
        check_together(&jwt, true).is_ok(),
        "the environment's secret"
    );
    let jwt = Config {
        jwt_secret_file: Some("jwt.secret".into()),
        ..jwt
    };
    assert!(check_together(&jwt, false).is_ok());

    let required = Config {
        require_subprotocol: true,
        ..Config::default()
    };
    assert!(check_together(&required, false)
        .unwrap_err()
        .to_string()
        .starts_with("require_subprotocol = true needs subprotocols"));
}

#[test]
fn missing_file_is_named() {
    let message = load(
        Some(Path::new("/nonexistent/ringws.toml")),
        &Settings::default(),
    )
    .expect_err("no such file")
    .to_string();
    assert!(
        message.starts_with("cannot read config file /nonexistent/ringws.toml: "),
        "{message}"
    );
}

#[test]
fn the_default_budget_follows_this_process_own_cgroup() {
    let files = |path: &str| match path {
        "/sys/fs/cgroup/memory/attack/memory.limit_in_bytes" => Some("2147483648\n".into()),
        "/sys/fs/cgroup/memory/memory.limit_in_bytes" => Some("9223372036854771712\n".into()),
        "/sys/fs/cgroup/web/memory.max" => Some("1073741824\n".into()),
        "/sys/fs/cgroup/open/memory.max" => Some("max\n".into()),
        _ => None,
    };
    let v1 = "12:cpu,cpuacct:/\n5:memory:/attack\n0::/\n";
    assert_eq!(super::cgroup_memory_limit(v1, files), Some(2 << 30));
    assert_eq!(
        super::cgroup_memory_limit("5:memory:/\n", files),
        None,
        "unlimited"
    );
    assert_eq!(
        super::cgroup_memory_limit("0::/web\n", files),
        Some(1 << 30)
    );
    assert_eq!(super::cgroup_memory_limit("0::/open\n", files), None);
}
