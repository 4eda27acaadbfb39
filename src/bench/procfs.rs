//! Samples of the server process under test, from /proc/PID/stat (CPU time) and
//! /proc/PID/status (anonymous resident memory).

use std::io;

use crate::sys::process;

/// One sample of a process.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ProcSample {
    /// utime + stime, in microseconds.
    pub cpu_us: u64,
    /// Anonymous resident memory (RssAnon), in bytes: heap, stacks and anonymous maps, what
    /// connections cost; not the binary's code pages, which are file-backed and load as code
    /// first runs (the first handshakes would otherwise look like a cost per connection).
    pub rss_bytes: u64,
}

/// Reads a sample of `pid` now.
pub fn sample(pid: u32) -> io::Result<ProcSample> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat"))?;
    let status = std::fs::read_to_string(format!("/proc/{pid}/status"))?;
    let ticks = parse_cpu_ticks(&stat).ok_or_else(|| invalid("/proc/PID/stat"))?;
    let rss_bytes = parse_rss_bytes(&status).ok_or_else(|| invalid("/proc/PID/status"))?;
    let cpu_us = ticks.saturating_mul(1_000_000) / process::clock_ticks_per_s();
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

/// RssAnon in bytes (the file gives kB); VmRSS on kernels without RssAnon (before 4.5).
pub fn parse_rss_bytes(status: &str) -> Option<u64> {
    let field = |name: &str| {
        let line = status.lines().find(|l| l.starts_with(name))?;
        let kib: u64 = line[name.len()..]
            .trim()
            .trim_end_matches("kB")
            .trim()
            .parse()
            .ok()?;
        Some(kib * 1024)
    };
    field("RssAnon:").or_else(|| field("VmRSS:"))
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
    fn parses_anonymous_rss_or_falls_back_to_vmrss() {
        let status = "Name:\tringws\nVmPeak:\t  9999 kB\nVmRSS:\t    1234 kB\n\
                      RssAnon:\t     456 kB\nRssFile:\t     778 kB\nThreads:\t2\n";
        assert_eq!(parse_rss_bytes(status), Some(456 * 1024));
        let old_kernel = "Name:\tringws\nVmRSS:\t    1234 kB\nThreads:\t2\n";
        assert_eq!(parse_rss_bytes(old_kernel), Some(1234 * 1024));
    }

    #[test]
    fn samples_this_process() {
        let own = sample(std::process::id()).unwrap();
        assert!(own.rss_bytes > 0);
    }
}
