//! Samples of the server process under test, from /proc/PID/stat (CPU time) and
//! /proc/PID/status (resident memory).

use std::io;

use super::sys;

/// One sample of a process.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ProcSample {
    /// utime + stime, in microseconds.
    pub cpu_us: u64,
    /// VmRSS, in bytes.
    pub rss_bytes: u64,
}

/// Reads a sample of `pid` now.
pub fn sample(pid: u32) -> io::Result<ProcSample> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat"))?;
    let status = std::fs::read_to_string(format!("/proc/{pid}/status"))?;
    let ticks = parse_cpu_ticks(&stat).ok_or_else(|| invalid("/proc/PID/stat"))?;
    let rss_bytes = parse_rss_bytes(&status).ok_or_else(|| invalid("/proc/PID/status"))?;
    let cpu_us = ticks.saturating_mul(1_000_000) / sys::clock_ticks_per_s();
    Ok(ProcSample { cpu_us, rss_bytes })
}

fn invalid(what: &str) -> io::Error {
    io::Error::new(
        io::ErrorKind::InvalidData,
        format!("unexpected format of {what}"),
    )
}

/// utime + stime (fields 14 and 15) in clock ticks. The command name (field 2) may contain
/// spaces and parentheses, so fields are counted after its last ')'.
pub fn parse_cpu_ticks(stat: &str) -> Option<u64> {
    let after_comm = &stat[stat.rfind(')')? + 1..];
    // Field 3 (state) is the first after the name, so utime (14) is the 12th from here.
    let mut fields = after_comm.split_ascii_whitespace().skip(11);
    let utime: u64 = fields.next()?.parse().ok()?;
    let stime: u64 = fields.next()?.parse().ok()?;
    Some(utime + stime)
}

/// VmRSS in bytes (the file gives kB).
pub fn parse_rss_bytes(status: &str) -> Option<u64> {
    let line = status.lines().find(|l| l.starts_with("VmRSS:"))?;
    let kib: u64 = line["VmRSS:".len()..]
        .trim()
        .trim_end_matches("kB")
        .trim()
        .parse()
        .ok()?;
    Some(kib * 1024)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_cpu_ticks_after_a_tricky_command_name() {
        let stat = "42 (ring ws) (x)) S 1 42 42 0 -1 4194560 100 0 0 0 250 17 0 0 20 0 4 0 9 1 2";
        assert_eq!(parse_cpu_ticks(stat), Some(267));
        assert_eq!(parse_cpu_ticks("42 (x) S 1"), None);
    }

    #[test]
    fn parses_rss() {
        let status = "Name:\tringws\nVmPeak:\t  9999 kB\nVmRSS:\t    1234 kB\nThreads:\t2\n";
        assert_eq!(parse_rss_bytes(status), Some(1234 * 1024));
    }

    #[test]
    fn samples_this_process() {
        let own = sample(std::process::id()).unwrap();
        assert!(own.rss_bytes > 0);
    }
}
