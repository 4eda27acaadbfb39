//! `ringws serve`: load the configuration, start logging, run the server.

use std::path::PathBuf;

use crate::config::{self, Config, ConfigError, Settings};

const SERVE_NOTES: &str = "\
Precedence: built-in defaults < --config file < flags.

Config file keys are the flag names with underscores, for example:
  max_message_size = \"1MiB\"
  handshake_timeout = \"5s\"
  cores = 4
Sizes: 512 (bytes), 64KiB, 16MiB, 1GiB, 1MB (decimal); a TOML integer is a number of bytes.
Durations: a number of seconds (10, 2.5) or with a unit (500ms, 10s, 1m 30s); a TOML
  number is seconds too.
Booleans: true, false, on, off (flags and file alike; a TOML true or false too); a boolean
  flag alone means true (--takeover).
Log filters: a level (trace, debug, info, warn, error, off) or directives such as
  info,ringws::handshake=debug.

`ringws serve --print-config > ringws.toml` writes a complete config file to start from
(portable: cores = \"all\" stands for every CPU available), and
`ringws serve --config ringws.toml --check-config` checks it, and the files it names, without
starting.";

/// Arguments of `ringws serve`.
#[derive(Debug, clap::Args)]
#[command(after_long_help = SERVE_NOTES)]
pub struct ServeArgs {
    /// Read settings from this TOML file; flags on the command line override it.
    #[arg(long, value_name = "FILE")]
    pub config: Option<PathBuf>,
    /// Print the effective configuration as TOML and exit without starting the server.
    #[arg(long)]
    pub print_config: bool,
    /// Check the configuration completely and exit without starting the server: every value,
    /// and the files it names (auth_tokens_file, jwt_secret_file or RINGWS_JWT_SECRET,
    /// publish_tokens_file). Exit code 0 when it is valid, 2 with the reason when not.
    #[arg(long, conflicts_with = "print_config")]
    pub check_config: bool,
    #[command(flatten)]
    pub settings: Settings,
}

impl ServeArgs {
    /// The effective configuration: defaults < `--config` file < flags.
    pub fn load(&self) -> Result<Config, ConfigError> {
        config::load(self.config.as_deref(), &self.settings)
    }
}

/// Runs `ringws serve`; returns the exit code.
pub fn run(args: ServeArgs) -> i32 {
    let config = match args.load() {
        Ok(config) => config,
        Err(err) => return fail(&err, super::EXIT_USAGE),
    };
    if args.print_config {
        print!("{}", config.to_toml());
        return 0;
    }
    if args.check_config {
        return match crate::server::check_config(&config) {
            Ok(()) => {
                let source = args
                    .config
                    .as_ref()
                    .map_or("the defaults and flags".into(), |p| p.display().to_string());
                println!(
                    "ringws: the configuration is valid ({source}): app={}, listen {}, admin {}{}",
                    format!("{:?}", config.app).to_lowercase(),
                    config.listen,
                    config.admin_listen.map_or("off".into(), |a| a.to_string()),
                    config
                        .tls_listen
                        .map_or(String::new(), |a| format!(", tls_listen {a}"))
                );
                0
            }
            Err(err) => fail(&err, super::EXIT_USAGE),
        };
    }
    if let Err(err) = super::logging::init(&config.log, config.log_format) {
        return fail(&err, super::EXIT_USAGE);
    }
    match crate::server::run(config) {
        Ok(()) => 0,
        Err(err) => fail(&err, super::EXIT_FAILURE),
    }
}

fn fail(err: &dyn std::fmt::Display, code: i32) -> i32 {
    eprintln!("ringws: error: {err}");
    code
}
