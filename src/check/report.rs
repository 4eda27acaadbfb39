//! How `ringws check` shows its findings: an aligned table for people, one JSON object for
//! scripts.

use std::fmt::Write as _;

use super::rules::{Check, Plan, Status};

/// Counts of fails and warnings.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Tally {
    pub fail: usize,
    pub warn: usize,
}

pub fn tally(checks: &[Check]) -> Tally {
    let count = |status| checks.iter().filter(|c| c.status == status).count();
    Tally {
        fail: count(Status::Fail),
        warn: count(Status::Warn),
    }
}

/// The closing line, e.g. `1000000 connections: 2 fail, 3 warn — fix the fails first`.
pub fn summary(plan: &Plan, tally: Tally) -> String {
    let Tally { fail, warn } = tally;
    let advice = match (fail, warn) {
        (0, 0) => return format!("{} connections: every check passes", plan.connections),
        (0, _) => "review the warnings",
        _ => "fix the fails first",
    };
    format!(
        "{} connections: {fail} fail, {warn} warn — {advice}",
        plan.connections
    )
}

/// Width of the output when stdout is not a terminal and `COLUMNS` is not set.
pub const DEFAULT_COLUMNS: usize = 100;
/// Narrowest width the table is laid out for; a narrower terminal wraps what is longer.
pub const MIN_COLUMNS: usize = 40;
/// Narrowest a table column is shrunk to.
const MIN_COLUMN: usize = 8;
/// Space between two columns.
const GAP: usize = 2;
/// Where a row's fix line starts, and its continuation lines.
const FIX_PREFIX: &str = "    fix: ";
const FIX_INDENT: &str = "         ";

/// The width to lay the output out for: `COLUMNS` when set to a number, else the width of the
/// terminal stdout is, else [`DEFAULT_COLUMNS`]; never under [`MIN_COLUMNS`].
pub fn output_columns() -> usize {
    let from_env = std::env::var("COLUMNS")
        .ok()
        .and_then(|c| c.trim().parse::<usize>().ok());
    from_env
        .or_else(crate::sys::process::stdout_terminal_columns)
        .unwrap_or(DEFAULT_COLUMNS)
        .max(MIN_COLUMNS)
}

/// The table, the reasons behind every row that is not a pass, and the summary line, in lines
/// of at most `columns` characters: the table's columns shrink and wrap to fit, and each row's
/// fix stands on the lines under it.
pub fn human(plan: &Plan, source: &str, checks: &[Check], columns: usize) -> String {
    let header = ["CHECK", "CURRENT", "NEEDED", "STATUS"];
    let rows: Vec<[&str; 4]> = checks
        .iter()
        .map(|c| {
            [
                c.name,
                c.current.as_str(),
                c.needed.as_str(),
                c.status.label(),
            ]
        })
        .collect();
    let widths = column_widths(&header, &rows, columns);
    let mut out = String::new();
    let title = format!(
        "ringws check: {} connections on {} cores (facts from {source})",
        plan.connections, plan.cores
    );
    push_wrapped(&mut out, &title, "", "", columns);
    out.push('\n');
    push_row(&mut out, &header, &widths);
    for (row, check) in rows.iter().zip(checks) {
        push_row(&mut out, row, &widths);
        if let Some(fix) = &check.fix {
            push_fix(&mut out, fix, columns);
        }
    }
    let notes: Vec<&Check> = checks.iter().filter(|c| c.status != Status::Pass).collect();
    if !notes.is_empty() {
        out.push_str("\nWhy:\n");
        for check in notes {
            let note = format!("{} {}: {}", check.status.label(), check.name, check.why);
            push_wrapped(&mut out, &note, "  ", "    ", columns);
        }
    }
    out.push('\n');
    push_wrapped(&mut out, &summary(plan, tally(checks)), "", "", columns);
    out
}

/// Each column as wide as its widest cell; while the table is wider than `columns`, the widest
/// column gives up a character (down to [`MIN_COLUMN`]): the value columns first, the first
/// column (the check's name, which reads worst cut) only when they cannot shrink further.
fn column_widths<const N: usize>(
    header: &[&str; N],
    rows: &[[&str; N]],
    columns: usize,
) -> [usize; N] {
    let mut widths = header.map(|cell| cell.chars().count());
    for row in rows {
        for (width, cell) in widths.iter_mut().zip(row) {
            *width = (*width).max(cell.chars().count());
        }
    }
    let total = |widths: &[usize; N]| widths.iter().sum::<usize>() + GAP * (N - 1);
    for first in [1, 0] {
        while total(&widths) > columns {
            let (widest, &width) = (widths.iter().enumerate().skip(first))
                .max_by_key(|&(_, width)| width)
                .expect("a table has columns");
            if width <= MIN_COLUMN {
                break;
            }
            widths[widest] -= 1;
        }
    }
    widths
}

/// One table row: each cell wrapped to its column, as many lines as its tallest cell.
fn push_row<const N: usize>(out: &mut String, row: &[&str; N], widths: &[usize; N]) {
    let cells: Vec<Vec<String>> = (row.iter().zip(widths))
        .map(|(cell, &width)| wrap(cell, width))
        .collect();
    let height = cells.iter().map(Vec::len).max().unwrap_or(1);
    for i in 0..height {
        let mut line = String::new();
        for (cell, &width) in cells.iter().zip(widths) {
            let part = cell.get(i).map_or("", String::as_str);
            let _ = write!(line, "{part:<width$}{:GAP$}", "");
        }
        let _ = writeln!(out, "{}", line.trim_end());
    }
}

/// A row's fix under it. A fix too long for one line breaks before its `  # source` comment
/// first, so that the setting stays whole.
fn push_fix(out: &mut String, fix: &str, columns: usize) {
    match fix.split_once("  # ") {
        Some((setting, source)) if FIX_PREFIX.len() + fix.chars().count() > columns => {
            push_wrapped(out, setting, FIX_PREFIX, FIX_INDENT, columns);
            push_wrapped(out, &format!("# {source}"), FIX_INDENT, FIX_INDENT, columns);
        }
        _ => push_wrapped(out, fix, FIX_PREFIX, FIX_INDENT, columns),
    }
}

/// `text` as lines of at most `columns` characters, the first after `first`, the others after
/// `rest`.
fn push_wrapped(out: &mut String, text: &str, first: &str, rest: &str, columns: usize) {
    let width = columns.saturating_sub(first.chars().count().max(rest.chars().count()));
    for (i, line) in wrap(text, width.max(MIN_COLUMN)).iter().enumerate() {
        let indent = if i == 0 { first } else { rest };
        let _ = writeln!(out, "{indent}{line}");
    }
}

/// Breaks `text` into lines of at most `width` characters, at spaces where it can (a word
/// longer than a line is cut). Spaces inside a line are kept as written.
pub fn wrap(text: &str, width: usize) -> Vec<String> {
    let width = width.max(1);
    let mut lines = Vec::new();
    let mut rest: Vec<char> = text.trim().chars().collect();
    while rest.len() > width {
        let cut = (1..=width).rev().find(|&i| rest[i] == ' ').unwrap_or(width);
        let line: String = rest[..cut].iter().collect();
        lines.push(line.trim_end().to_owned());
        let skip = rest[cut..].iter().take_while(|&&c| c == ' ').count();
        rest.drain(..cut + skip);
    }
    lines.push(rest.into_iter().collect());
    lines
}

/// One JSON object: the plan, every check, the memory estimate and the tally.
pub fn json(plan: &Plan, memory_estimate_bytes: u64, checks: &[Check]) -> serde_json::Value {
    let Tally { fail, warn } = tally(checks);
    serde_json::json!({
        "connections": plan.connections,
        "cores": plan.cores,
        "memory_estimate_bytes": memory_estimate_bytes,
        "fail": fail,
        "warn": warn,
        "checks": checks.iter().map(|c| serde_json::json!({
            "name": c.name,
            "current": c.current,
            "needed": c.needed,
            "status": c.status.label(),
            "fix": c.fix,
            "why": c.why,
        })).collect::<Vec<_>>(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn check(name: &'static str, status: Status) -> Check {
        Check {
            name,
            current: "1".into(),
            needed: "2".into(),
            status,
            fix: (status != Status::Pass).then(|| format!("{name} = 2  # deploy/x")),
            why: "because".into(),
        }
    }

    fn plan() -> Plan {
        Plan {
            connections: 1000,
            cores: 1,
            recv_buffer_size_bytes: 65_536,
        }
    }

    #[test]
    fn summary_names_counts_and_next_step() {
        let t = |fail, warn| Tally { fail, warn };
        assert_eq!(
            summary(&plan(), t(2, 3)),
            "1000 connections: 2 fail, 3 warn — fix the fails first"
        );
        assert_eq!(
            summary(&plan(), t(0, 1)),
            "1000 connections: 0 fail, 1 warn — review the warnings"
        );
        assert_eq!(
            summary(&plan(), t(0, 0)),
            "1000 connections: every check passes"
        );
    }

    #[test]
    fn table_is_aligned_and_explains_non_passes() {
        let checks = [check("a.long.name", Status::Pass), check("b", Status::Fail)];
        let text = human(&plan(), "/proc", &checks, 100);
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines[2].find("CURRENT"), lines[4].find("1  "));
        assert!(lines[4].ends_with("fail"), "{text}");
        assert_eq!(lines[5], "    fix: b = 2  # deploy/x", "{text}");
        assert!(text.contains("  fail b: because\n"), "{text}");
        assert!(!text.contains("pass a.long.name:"), "{text}");
        assert!(text.ends_with("1000 connections: 1 fail, 0 warn — fix the fails first\n"));
    }

    #[test]
    fn every_line_fits_the_width() {
        let mut long = check("net.ipv4.ip_local_port_range", Status::Warn);
        long.current = "32768 60999 (28232 ports)".into();
        long.needed = "1000000 ports per proxy address".into();
        long.why = "matters only on a proxy host that connects to ringws: ".repeat(4);
        long.fix = Some("net.ipv4.ip_local_port_range = 1024 65535  # deploy/sysctl/x.conf".into());
        for columns in [40, 60, 80, 100] {
            let text = human(&plan(), "/proc", &[long.clone()], columns);
            for line in text.lines() {
                assert!(
                    line.chars().count() <= columns,
                    "{columns}: {line:?}\n{text}"
                );
            }
            assert!(text.contains("fix: net.ipv4"), "{text}");
        }
    }

    #[test]
    fn wraps_at_spaces_and_cuts_long_words() {
        assert_eq!(wrap("a bb ccc", 4), ["a bb", "ccc"]);
        assert_eq!(wrap("abcdefgh", 3), ["abc", "def", "gh"]);
        assert_eq!(wrap("x = 1  # why", 20), ["x = 1  # why"]);
        assert_eq!(wrap("", 5), [""]);
    }

    #[test]
    fn json_has_every_field() {
        let value = json(&plan(), 42, &[check("b", Status::Warn)]);
        assert_eq!(value["memory_estimate_bytes"], 42);
        assert_eq!(value["checks"][0]["status"], "warn");
        assert_eq!(value["checks"][0]["fix"], "b = 2  # deploy/x");
        assert_eq!(value["warn"], 1);
    }
}
