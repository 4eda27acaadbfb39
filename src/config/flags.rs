//! The `serve` flags: one per key of the table, read into one layer of [`Settings`].

use clap::{Arg, ArgAction, ArgMatches, Command};
use toml::Value;

use super::{keys, Config, RawValue, Settings};

const HEADING: &str = "Settings (each is also a key of the --config file)";

impl clap::Args for Settings {
    fn augment_args(command: Command) -> Command {
        let defaults = Config::serve_defaults();
        command
            .next_help_heading(HEADING)
            .args(keys().iter().map(|key| {
                let arg = Arg::new(key.name)
                    .long(key.flag.as_str())
                    .value_name(key.value_name)
                    .value_parser(clap::value_parser!(String))
                    // A scalar flag given twice is a mistake clap reports; a list flag collects.
                    .action(if key.list {
                        ArgAction::Append
                    } else {
                        ArgAction::Set
                    })
                    .help(key.help(&defaults));
                match key.bare_flag {
                    // `--takeover` alone, or `--takeover off`.
                    Some(meaning) => arg.num_args(0..=1).default_missing_value(meaning),
                    None => arg,
                }
            }))
    }

    fn augment_args_for_update(command: Command) -> Command {
        Self::augment_args(command)
    }
}

impl clap::FromArgMatches for Settings {
    fn from_arg_matches(matches: &ArgMatches) -> Result<Self, clap::Error> {
        let mut settings = Settings::default();
        settings.update_from_arg_matches(matches)?;
        Ok(settings)
    }

    fn update_from_arg_matches(&mut self, matches: &ArgMatches) -> Result<(), clap::Error> {
        for (row, key) in keys().iter().enumerate() {
            let Some(texts) = matches.get_many::<String>(key.name) else {
                continue;
            };
            let mut texts = texts.cloned().map(Value::String);
            let value = if key.list {
                Some(Value::Array(texts.collect()))
            } else {
                texts.next()
            };
            if let Some(value) = value {
                self.values.insert(row, RawValue::unplaced(value));
            }
        }
        Ok(())
    }
}
