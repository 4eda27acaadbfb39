//! Scrape time: every registered series read now, the process figures, and the two per-core
//! histograms appended in the text exposition format.

use std::fmt::Write as _;
use std::sync::Arc;

use super::{Exporter, Series};
use crate::stats::SecondsHistogram;

impl Exporter {
    /// The Prometheus text exposition, with every value read now.
    pub fn render(&self) -> String {
        for s in &self.series {
            match s {
                Series::Counter(c, read) => c.absolute(read()),
                Series::Gauge(g, read) => g.set(read() as f64),
            }
        }
        let p = process_figures();
        self.process.open_fds.set(p.open_fds as f64);
        self.process.max_fds.set(p.max_fds as f64);
        self.process.resident_bytes.set(p.resident_bytes as f64);
        let mut text = self.handle.render();
        write_histograms(
            &mut text,
            "ringws_handshake_duration_seconds",
            "Time from accept to the 101 answer.",
            &self.handshake_duration,
        );
        write_histograms(
            &mut text,
            "ringws_fanout_latency_seconds",
            "Pub/sub: time from a publish being accepted to the last local write of it on a core.",
            &self.fanout_latency,
        );
        text
    }
}

/// One histogram family in the text exposition format, a series per core.
fn write_histograms(out: &mut String, name: &str, help: &str, per_core: &[Arc<SecondsHistogram>]) {
    if !out.is_empty() && !out.ends_with("\n\n") {
        out.push('\n');
    }
    let _ = writeln!(out, "# HELP {name} {help}");
    let _ = writeln!(out, "# TYPE {name} histogram");
    for (core, h) in per_core.iter().enumerate() {
        let (buckets, sum) = h.snapshot();
        for &(bound, cumulative) in &buckets {
            let le = if bound.is_infinite() {
                "+Inf".to_string()
            } else {
                bound.to_string()
            };
            let _ = writeln!(
                out,
                "{name}_bucket{{core=\"{core}\",le=\"{le}\"}} {cumulative}"
            );
        }
        let count = buckets.last().map_or(0, |b| b.1);
        let _ = writeln!(out, "{name}_sum{{core=\"{core}\"}} {sum}");
        let _ = writeln!(out, "{name}_count{{core=\"{core}\"}} {count}");
    }
    out.push('\n');
}

/// Figures of this process from /proc and getrlimit.
pub struct ProcessFigures {
    pub open_fds: u64,
    pub max_fds: u64,
    pub resident_bytes: u64,
}

pub fn process_figures() -> ProcessFigures {
    let open_fds = std::fs::read_dir("/proc/self/fd").map_or(0, |d| d.count() as u64);
    let max_fds = crate::sys::process::nofile_limit().map_or(0, |lim| lim.soft);
    let page = crate::sys::process::page_size().map_or(4096, |size| size.max(4096));
    let resident_pages = std::fs::read_to_string("/proc/self/statm")
        .ok()
        .and_then(|s| {
            s.split_whitespace()
                .nth(1)
                .and_then(|v| v.parse::<u64>().ok())
        })
        .unwrap_or(0);
    ProcessFigures {
        open_fds,
        max_fds,
        resident_bytes: resident_pages * page,
    }
}
