//! What the binary itself says: its subcommands and options (from `--help`), its settings and
//! their defaults (from `serve --help` and `serve --print-config`).

use std::collections::{BTreeMap, BTreeSet};
use std::process::Command;

pub fn ringws_bin() -> &'static str {
    env!("CARGO_BIN_EXE_ringws")
}

/// Runs `ringws ARGS`; returns (exit code, stdout, stderr).
pub fn ringws(args: &[&str], env: &[(&str, &str)]) -> (i32, String, String) {
    let out = Command::new(ringws_bin())
        .args(args)
        .envs(env.iter().copied())
        .env_remove("RUST_LOG")
        .output()
        .expect("run ringws");
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// One command's `--help`: its options and its subcommands.
pub struct Help {
    pub options: BTreeSet<String>,
    pub subcommands: Vec<String>,
    /// Option (long form) → its description, joined over wrapped lines.
    pub descriptions: BTreeMap<String, String>,
}

/// Every command path (`[]`, `["serve"]`, `["bench", "echo"]`, ...) with its help.
pub struct Cli {
    pub commands: BTreeMap<Vec<String>, Help>,
}

impl Cli {
    pub fn load() -> Cli {
        let mut commands = BTreeMap::new();
        let mut todo = vec![Vec::<String>::new()];
        while let Some(path) = todo.pop() {
            let mut args: Vec<&str> = path.iter().map(String::as_str).collect();
            args.push("--help");
            let (code, text, err) = ringws(&args, &[]);
            assert_eq!(code, 0, "ringws {} failed: {err}", args.join(" "));
            let help = parse_help(&text);
            for sub in &help.subcommands {
                let mut child = path.clone();
                child.push(sub.clone());
                todo.push(child);
            }
            commands.insert(path, help);
        }
        Cli { commands }
    }

    /// The subcommand names of the top level.
    pub fn top_level(&self) -> Vec<String> {
        self.commands[&Vec::new()].subcommands.clone()
    }

    /// Splits `args` into the command path they name and the rest.
    pub fn resolve<'a>(&self, args: &'a [String]) -> Result<(Vec<String>, &'a [String]), String> {
        let mut path = Vec::new();
        let mut k = 0;
        loop {
            let help = &self.commands[&path];
            let next = args.get(k).map(String::as_str);
            match next {
                Some(word) if help.subcommands.iter().any(|s| s == word) => {
                    path.push(word.to_string());
                    k += 1;
                }
                Some("help") if !help.subcommands.is_empty() => return Ok((path, &args[k..])),
                Some(word) if !help.subcommands.is_empty() && !word.starts_with('-') => {
                    return Err(format!(
                        "`{word}` is not a subcommand of `{}` (it has: {})",
                        name(&path),
                        help.subcommands.join(", ")
                    ))
                }
                None if !help.subcommands.is_empty() && !path.is_empty() => {
                    return Err(format!(
                        "`{}` needs a subcommand ({})",
                        name(&path),
                        help.subcommands.join(", ")
                    ))
                }
                _ => return Ok((path, &args[k..])),
            }
        }
    }

    /// Every option of every command.
    pub fn all_options(&self) -> BTreeSet<String> {
        self.commands
            .values()
            .flat_map(|h| h.options.iter().cloned())
            .collect()
    }
}

/// `ringws serve`, for messages.
pub fn name(path: &[String]) -> String {
    let mut name = "ringws".to_string();
    for p in path {
        name.push(' ');
        name.push_str(p);
    }
    name
}

fn parse_help(text: &str) -> Help {
    let mut options = BTreeSet::new();
    let mut subcommands = Vec::new();
    let mut descriptions = BTreeMap::new();
    let mut section = "";
    let mut current: Option<String> = None;
    for line in text.lines() {
        if !line.starts_with(' ') && line.ends_with(':') {
            section = line;
            current = None;
            continue;
        }
        if line.trim().is_empty() {
            current = None;
            continue;
        }
        if section == "Commands:" {
            if let Some(rest) = line.strip_prefix("  ") {
                if !rest.starts_with(' ') {
                    let sub = rest.split_whitespace().next().unwrap_or("");
                    if sub != "help" {
                        subcommands.push(sub.to_string());
                    }
                }
            }
            continue;
        }
        let trimmed = line.trim_start();
        let indent = line.len() - trimmed.len();
        if trimmed.starts_with('-') && indent <= 6 {
            let mut long = None;
            let mut rest = trimmed;
            for part in trimmed.split([',', ' ']) {
                if let Some(flag) = part.strip_prefix("--") {
                    if !flag.is_empty() {
                        options.insert(format!("--{flag}"));
                        long = Some(format!("--{flag}"));
                    }
                } else if part.starts_with('-') && part.len() == 2 {
                    options.insert(part.to_string());
                } else if !part.is_empty() && !part.starts_with('<') {
                    break;
                }
            }
            // A short help puts the description on the option's own line.
            if let Some(p) = trimmed.find("  ") {
                rest = trimmed[p..].trim();
            } else {
                rest = &rest[rest.len()..];
            }
            if let Some(long) = &long {
                descriptions.insert(long.clone(), rest.to_string());
            }
            current = long;
        } else if let Some(opt) = &current {
            let d = descriptions.entry(opt.clone()).or_default();
            if !d.is_empty() {
                d.push(' ');
            }
            d.push_str(trimmed);
        }
    }
    Help {
        options,
        subcommands,
        descriptions,
    }
}

/// The settings of `ringws serve`: each key with its flag, its `--help` default and its
/// `--print-config` value.
pub struct Settings {
    pub defaults: BTreeMap<String, String>,
    pub printed: toml::Table,
}

impl Settings {
    pub fn load(cli: &Cli) -> Settings {
        let (code, text, err) = ringws(&["serve", "--print-config"], &[]);
        assert_eq!(code, 0, "ringws serve --print-config failed: {err}");
        let printed: toml::Table = text.parse().expect("--print-config output is TOML");
        let serve = &cli.commands[&vec!["serve".to_string()]];
        let mut defaults = BTreeMap::new();
        for key in printed.keys() {
            let flag = flag(key);
            let description = serve.descriptions.get(&flag).unwrap_or_else(|| {
                panic!("`ringws serve --help` has no {flag} for the key {key} of --print-config")
            });
            if let Some(d) = description
                .rsplit_once("[default:")
                .and_then(|(_, d)| d.trim().strip_suffix(']'))
            {
                defaults.insert(key.clone(), d.trim().to_string());
            }
        }
        Settings { defaults, printed }
    }

    pub fn has(&self, key: &str) -> bool {
        self.printed.contains_key(key)
    }
}

/// The flag of a config key.
pub fn flag(key: &str) -> String {
    format!("--{}", key.replace('_', "-"))
}
