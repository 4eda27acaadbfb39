//! `ringws completions SHELL` and `ringws man`: generated from the clap definitions, so they name
//! every command and flag `--help` does.

mod common;
use common::output_within;
use std::process::Command;
use std::time::Duration;

/// Runs `ringws ARGS`, which must succeed; its stdout.
fn generated(args: &[&str]) -> String {
    let out = output_within(
        Command::new(env!("CARGO_BIN_EXE_ringws")).args(args),
        Duration::from_secs(10),
    );
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(0), "{args:?}: {stderr}");
    String::from_utf8(out.stdout).expect("utf-8")
}

#[test]
fn bash_completion_names_the_commands_and_is_valid_bash() {
    let script = generated(&["completions", "bash"]);
    for word in [
        "serve",
        "bench",
        "doctor",
        "check",
        "fanout",
        "--check-config",
        "--url",
    ] {
        assert!(script.contains(word), "{word} missing from the bash script");
    }
    // Loaded into bash, it registers the completion of `ringws`.
    let path = std::env::temp_dir().join(format!("ringws-completion-{}.bash", std::process::id()));
    std::fs::write(&path, &script).unwrap();
    let out = output_within(
        Command::new("bash").args([
            "-c",
            &format!("source {} && complete -p ringws", path.display()),
        ]),
        Duration::from_secs(10),
    );
    let _ = std::fs::remove_file(&path);
    let said = String::from_utf8_lossy(&out.stdout);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{said}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        said.contains("_ringws") && said.ends_with("ringws\n"),
        "{said}"
    );
}

#[test]
fn zsh_and_fish_completions_name_the_commands() {
    for shell in ["zsh", "fish"] {
        let script = generated(&["completions", shell]);
        for word in ["serve", "bench", "doctor"] {
            assert!(
                script.contains(word),
                "{word} missing from the {shell} script"
            );
        }
    }
    let out = output_within(
        Command::new(env!("CARGO_BIN_EXE_ringws")).args(["completions", "tcsh"]),
        Duration::from_secs(10),
    );
    assert_eq!(out.status.code(), Some(2));
}

#[test]
fn man_pages_are_roff_for_ringws_and_each_command() {
    let page = generated(&["man"]);
    // The page opens with its title (after the string definitions roff pages start with).
    let first_macro = page
        .lines()
        .find(|line| !line.starts_with(".ie") && !line.starts_with(".el"))
        .unwrap_or_default();
    assert!(first_macro.starts_with(".TH ringws 1"), "{page}");
    for section in [
        ".SH NAME",
        ".SH SYNOPSIS",
        ".SH SUBCOMMANDS",
        "serve",
        "doctor",
    ] {
        assert!(page.contains(section), "{section} missing from:\n{page}");
    }
    let serve = generated(&["man", "serve"]);
    assert!(serve.contains(".TH ringws-serve 1"), "{serve}");
    assert!(serve.contains(r"\-\-check\-config"), "{serve}");
    let out = output_within(
        Command::new(env!("CARGO_BIN_EXE_ringws")).args(["man", "nope"]),
        Duration::from_secs(10),
    );
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("serve, bench, check, doctor"));
}
