//! The result of a run: one struct, printed as a human summary or as one JSON object.

use std::collections::BTreeMap;
use std::fmt::Write as _;

use serde::Serialize;

/// Latency percentiles in microseconds. Echo mode: send of a message to the last byte of its
/// echo (open loop: from when the message was due). Idle and connect modes: TCP connect start
/// to the verified 101 response.
#[derive(Clone, Debug, Default, PartialEq, Serialize)]
pub struct Latency {
    pub p50: f64,
    pub p99: f64,
    pub p999: f64,
    pub max: f64,
    pub mean: f64,
    /// Samples behind the percentiles.
    pub samples: u64,
}

/// Open loop only: how late messages were handed to the kernel compared with their schedule,
/// in microseconds. A p99 near the message period or above means the generator fell behind.
#[derive(Clone, Debug, Default, PartialEq, Serialize)]
pub struct SendLag {
    pub p50: f64,
    pub p99: f64,
    pub max: f64,
}

/// Send lag p99 above which the summary says the generator fell behind.
const LAG_WARN_US: f64 = 100.0;

/// Everything a run measured. With `--json`, printed as one JSON object with these fields:
///
/// - `mode`: "echo", "idle" or "connect"; `url`; `threads`.
/// - `conns`: connections asked for (connect mode: `--concurrency`); `opened`: connections
///   that completed the upgrade (all stages).
/// - `payload_bytes`, `text`: the echo message (0 / false outside echo mode); `rate_target`:
///   `--rate` (msgs/s) or null for closed loop.
/// - `warmup_s`: warm-up excluded from the window; `duration_s`: the measured window actually
///   run (echo, connect) or the hold (idle); shorter than asked when interrupted.
/// - `messages`: echoes completed and verified inside the window; `msgs_per_s` = messages /
///   duration_s.
/// - `latency_us`: {p50, p99, p999, max, mean, samples}, see [`Latency`].
/// - `handshakes`: connect mode: handshakes verified inside the window; other modes: all
///   verified handshakes. `handshakes_per_s`: connect mode: per second of window; idle: opened /
///   time_to_open_s; echo: 0.
/// - `time_to_open_s`: from the first connect to the last connection upgraded or failed
///   (echo and idle).
/// - `open_at_end`: connections still open when the run began closing (idle: those that
///   survived the hold).
/// - `errors`: {cause: count}, every failure by cause (see `bench::Cause`: e.g. `http_503`,
///   `bad_accept`, `echo_mismatch`, `connect:ECONNREFUSED`, `reset`, `timeout_handshake`);
///   `errors_total`.
/// - `send_lag_us`: open loop only, {p50, p99, max} of how late sends left (see [`SendLag`]).
/// - `generator_cpu`: CPU the generator itself used during the window (idle: while opening),
///   as a fraction of its threads' capacity; near 1.0 means the generator may be the
///   bottleneck: add `--threads`.
/// - `interrupted`: Ctrl-C ended the run early.
/// - wss:// only: `tls_resumed`, how many of `handshakes` (idle, echo: of `opened`) resumed a
///   TLS session instead of a full handshake (0 with `--tls-resume off`).
/// - `--deflate` only: `deflate_negotiated`, how many of `handshakes` (idle, echo: of
///   `opened`) negotiated permessage-deflate (every one, or the others failed with
///   `deflate_declined`).
/// - With `--server-pid` only: `server_pid`; `server_cpu_us_per_op`: server user+system CPU µs
///   per operation (echo: per message in the window; connect: per handshake in the window;
///   idle: per handshake while opening); `server_rss_bytes_delta`: RssAnon change (echo: before
///   connecting to the end of the window; idle: before connecting to ~1 s into the hold;
///   connect: across the window); `server_rss_bytes_per_conn`: delta / opened (echo, idle).
#[derive(Clone, Debug, Default, Serialize)]
pub struct Report {
    pub mode: &'static str,
    pub url: String,
    pub threads: usize,
    pub conns: u64,
    pub opened: u64,
    pub payload_bytes: usize,
    pub text: bool,
    pub rate_target: Option<f64>,
    pub warmup_s: f64,
    pub duration_s: f64,
    pub messages: u64,
    pub msgs_per_s: f64,
    pub latency_us: Latency,
    pub handshakes: u64,
    pub handshakes_per_s: f64,
    pub time_to_open_s: Option<f64>,
    pub open_at_end: u64,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub send_lag_us: Option<SendLag>,
    pub generator_cpu: f64,
    pub errors: BTreeMap<String, u64>,
    pub errors_total: u64,
    pub interrupted: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tls_resumed: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub deflate_negotiated: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub server_pid: Option<u32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub server_cpu_us_per_op: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub server_rss_bytes_delta: Option<i64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub server_rss_bytes_per_conn: Option<f64>,
    /// Problems worth a person's attention that did not stop the run (not in JSON).
    #[serde(skip)]
    pub notes: Vec<String>,
}

impl Report {
    pub fn to_json(&self) -> String {
        serde_json::to_string(self).expect("a report always serializes")
    }

    /// A summary for people.
    pub fn to_human(&self) -> String {
        let mut s = String::new();
        let _ = writeln!(
            s,
            "ringws bench {}  {}  ({} thread{})",
            self.mode,
            self.url,
            self.threads,
            plural(self.threads as u64)
        );
        match self.mode {
            "echo" => self.write_echo(&mut s),
            "idle" => self.write_idle(&mut s),
            _ => self.write_connect(&mut s),
        }
        match self.deflate_negotiated {
            // An upgrade without it fails (deflate_declined): the count is every upgrade.
            Some(0) => {
                let _ = writeln!(
                    s,
                    "  deflate       NOT negotiated: the server declined permessage-deflate"
                );
            }
            Some(negotiated) => {
                let _ = writeln!(
                    s,
                    "  deflate       negotiated on all {} upgrades: permessage-deflate; \
                     server_no_context_takeover; client_no_context_takeover",
                    thousands(negotiated)
                );
            }
            None => {}
        }
        if self.errors.is_empty() {
            let _ = writeln!(s, "  errors        none");
        } else {
            let list: Vec<String> = self
                .errors
                .iter()
                .map(|(cause, n)| format!("{cause} {}", thousands(*n)))
                .collect();
            let _ = writeln!(
                s,
                "  errors        {} ({})",
                thousands(self.errors_total),
                list.join(", ")
            );
        }
        if let Some(pid) = self.server_pid {
            let mut parts = Vec::new();
            if let Some(cpu) = self.server_cpu_us_per_op {
                let op = if self.mode == "echo" {
                    "message"
                } else {
                    "handshake"
                };
                parts.push(format!("{cpu:.2} µs CPU per {op}"));
            }
            if let Some(delta) = self.server_rss_bytes_delta {
                parts.push(format!(
                    "anonymous RSS {}{}",
                    if delta < 0 { "-" } else { "+" },
                    bytes(delta.unsigned_abs())
                ));
            }
            if let Some(per_conn) = self.server_rss_bytes_per_conn {
                parts.push(format!("{per_conn:.0} B per connection"));
            }
            let _ = writeln!(s, "  server {pid:<7}{}", parts.join(", "));
        }
        let hint = match &self.send_lag_us {
            // Paced threads poll between close sends, so busy time says little; lag says more.
            Some(lag) if lag.p99 > LAG_WARN_US => {
                " (sends fell behind schedule: add --threads, pin it away from the server, or \
                 lower --rate)"
            }
            Some(_) => " (includes polling for on-time sends)",
            None if self.generator_cpu > 0.9 => " (may be the bottleneck: add --threads)",
            None => "",
        };
        let _ = writeln!(
            s,
            "  generator     {:.0} % busy per thread{hint}",
            self.generator_cpu * 100.0
        );
        if self.interrupted {
            let _ = writeln!(
                s,
                "  interrupted   (Ctrl-C): figures cover the part that ran"
            );
        }
        for note in &self.notes {
            let _ = writeln!(s, "  note: {note}");
        }
        s
    }

    fn write_echo(&self, s: &mut String) {
        let kind = if self.text { "text" } else { "binary" };
        let pacing = match self.rate_target {
            Some(rate) => format!("open loop at {} msgs/s", thousands(rate as u64)),
            None => "closed loop".to_owned(),
        };
        let _ = writeln!(
            s,
            "  load          {} conns ({} open), {} B {kind} messages, {pacing}",
            thousands(self.conns),
            thousands(self.opened),
            self.payload_bytes
        );
        let _ = writeln!(
            s,
            "  window        {:.2} s after {:.2} s warm-up",
            self.duration_s, self.warmup_s
        );
        let _ = writeln!(
            s,
            "  messages      {}  ({} msgs/s)",
            thousands(self.messages),
            thousands(self.msgs_per_s.round() as u64)
        );
        self.write_latency(s, "round trip");
        if let Some(lag) = &self.send_lag_us {
            let _ = writeln!(
                s,
                "  send lag      p50 {}  p99 {}  max {} behind schedule",
                micros(lag.p50),
                micros(lag.p99),
                micros(lag.max)
            );
        }
    }

    fn write_idle(&self, s: &mut String) {
        let _ = writeln!(
            s,
            "  opened        {} of {}  in {:.2} s ({} handshakes/s)",
            thousands(self.opened),
            thousands(self.conns),
            self.time_to_open_s.unwrap_or(0.0),
            thousands(self.handshakes_per_s.round() as u64)
        );
        let _ = writeln!(
            s,
            "  held          {:.2} s, {} still open at the end",
            self.duration_s,
            thousands(self.open_at_end)
        );
        self.write_latency(s, "handshake");
    }

    fn write_connect(&self, s: &mut String) {
        let _ = writeln!(
            s,
            "  load          {} connections in flight, {:.2} s window after {:.2} s warm-up",
            thousands(self.conns),
            self.duration_s,
            self.warmup_s
        );
        let _ = writeln!(
            s,
            "  handshakes    {}  ({} handshakes/s)",
            thousands(self.handshakes),
            thousands(self.handshakes_per_s.round() as u64)
        );
        self.write_latency(s, "handshake");
        if let Some(resumed) = self.tls_resumed {
            let _ = writeln!(
                s,
                "  tls           {} of the handshakes resumed a session",
                thousands(resumed)
            );
        }
    }

    fn write_latency(&self, s: &mut String, what: &str) {
        let l = &self.latency_us;
        if l.samples == 0 {
            let _ = writeln!(s, "  latency       no samples");
            return;
        }
        let _ = writeln!(
            s,
            "  latency       {what}: p50 {}  p99 {}  p99.9 {}  max {}",
            micros(l.p50),
            micros(l.p99),
            micros(l.p999),
            micros(l.max)
        );
    }
}

fn plural(n: u64) -> &'static str {
    if n == 1 {
        ""
    } else {
        "s"
    }
}

/// 1234567 → "1,234,567".
pub fn thousands(n: u64) -> String {
    let digits = n.to_string();
    let mut out = String::with_capacity(digits.len() + digits.len() / 3);
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i) % 3 == 0 {
            out.push(',');
        }
        out.push(c);
    }
    out
}

fn micros(us: f64) -> String {
    if us >= 1_000_000.0 {
        format!("{:.2} s", us / 1_000_000.0)
    } else if us >= 1_000.0 {
        format!("{:.2} ms", us / 1_000.0)
    } else {
        format!("{us:.1} µs")
    }
}

fn bytes(n: u64) -> String {
    if n >= 1 << 30 {
        format!("{:.2} GiB", n as f64 / (1u64 << 30) as f64)
    } else if n >= 1 << 20 {
        format!("{:.2} MiB", n as f64 / (1u64 << 20) as f64)
    } else if n >= 1 << 10 {
        format!("{:.1} KiB", n as f64 / 1024.0)
    } else {
        format!("{n} B")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formats_numbers_for_people() {
        assert_eq!(thousands(0), "0");
        assert_eq!(thousands(1_234_567), "1,234,567");
        assert_eq!(micros(412.0), "412.0 µs");
        assert_eq!(micros(1_500.0), "1.50 ms");
        assert_eq!(bytes(3 << 20), "3.00 MiB");
    }

    #[test]
    fn json_has_the_documented_fields_and_omits_server_fields_without_a_pid() {
        let mut report = Report {
            mode: "echo",
            ..Report::default()
        };
        report.errors.insert("bad_accept".into(), 2);
        let json: serde_json::Value = serde_json::from_str(&report.to_json()).unwrap();
        for field in [
            "mode",
            "conns",
            "payload_bytes",
            "duration_s",
            "messages",
            "msgs_per_s",
            "handshakes",
            "handshakes_per_s",
        ] {
            assert!(json.get(field).is_some(), "{field}");
        }
        assert_eq!(json["latency_us"]["p999"], 0.0);
        assert_eq!(json["errors"]["bad_accept"], 2);
        assert!(json.get("server_cpu_us_per_op").is_none());
        report.server_cpu_us_per_op = Some(3.5);
        let json: serde_json::Value = serde_json::from_str(&report.to_json()).unwrap();
        assert_eq!(json["server_cpu_us_per_op"], 3.5);
    }
}
