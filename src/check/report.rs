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

/// The table, the reasons behind every row that is not a pass, and the summary line.
pub fn human(plan: &Plan, source: &str, checks: &[Check]) -> String {
    let header = ["CHECK", "CURRENT", "NEEDED", "STATUS", "FIX"];
    let rows: Vec<[&str; 5]> = checks
        .iter()
        .map(|c| {
            [
                c.name,
                c.current.as_str(),
                c.needed.as_str(),
                c.status.label(),
                c.fix.as_deref().unwrap_or("-"),
            ]
        })
        .collect();
    let mut widths = header.map(str::len);
    for row in &rows {
        for (width, cell) in widths.iter_mut().zip(row) {
            *width = (*width).max(cell.chars().count());
        }
    }
    let mut out = String::new();
    let _ = writeln!(
        out,
        "ringws check: {} connections on {} cores (facts from {source})\n",
        plan.connections, plan.cores
    );
    for row in std::iter::once(&header).chain(&rows) {
        let mut line = String::new();
        for (i, cell) in row.iter().enumerate() {
            if i + 1 == row.len() {
                line.push_str(cell);
            } else {
                let pad = widths[i] - cell.chars().count();
                let _ = write!(line, "{cell}{}  ", " ".repeat(pad));
            }
        }
        let _ = writeln!(out, "{}", line.trim_end());
    }
    let notes: Vec<&Check> = checks.iter().filter(|c| c.status != Status::Pass).collect();
    if !notes.is_empty() {
        out.push_str("\nWhy:\n");
        for check in notes {
            let _ = writeln!(
                out,
                "  {} {}: {}",
                check.status.label(),
                check.name,
                check.why
            );
        }
    }
    let _ = writeln!(out, "\n{}", summary(plan, tally(checks)));
    out
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
        let text = human(&plan(), "/proc", &checks);
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines[2].find("CURRENT"), lines[4].find("1  "));
        assert!(lines[4].ends_with("fail    b = 2  # deploy/x"), "{text}");
        assert!(text.contains("  fail b: because\n"), "{text}");
        assert!(!text.contains("pass a.long.name:"), "{text}");
        assert!(text.ends_with("1000 connections: 1 fail, 0 warn — fix the fails first\n"));
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
