//! Prometheus metrics.
//!
//! The data path never touches the metrics registry: each core counts into its own
//! [`CoreStats`] (single-writer atomics on its own cache lines). At scrape time the exporter
//! copies those values into `metrics` handles registered once at start-up, adds process and
//! io_uring figures, and renders the exposition with `metrics-exporter-prometheus`. The two
//! histograms (handshake duration, fan-out latency) are [`SecondsHistogram`]s with fixed buckets,
//! recorded by their core and appended to the exposition at scrape time: the registry's own
//! histograms keep every raw sample until a scrape, so a server nobody scraped would grow with
//! each handshake.

use std::sync::atomic::Ordering;
use std::sync::Arc;

use metrics::{Counter, Gauge, Key, Label, Metadata, Recorder};
use metrics_exporter_prometheus::{PrometheusBuilder, PrometheusHandle, PrometheusRecorder};

use crate::admin::{AdminClose, AdminStats};
use crate::config::Config;
use crate::protocol::{MessageKind, RefusalReason};
use crate::reactor::proxy::{refusal_label, PROXY_REFUSALS};
use crate::stats::{close_code_label, CoreStats, SecondsHistogram, COUNTED_CLOSE_CODES};
use crate::tls::{TlsShared, TLS_FAILURES};

mod describe;
mod render;

pub use render::{process_figures, ProcessFigures};

/// Buckets of `ringws_handshake_duration_seconds`: from 50 µs to 10 s (the default handshake
/// timeout).
static HANDSHAKE_BUCKETS_SECONDS: [f64; 14] = [
    0.00005, 0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.5, 1.0, 10.0,
];

type Read = Box<dyn Fn() -> u64 + Send + Sync>;

/// A series an app adds to `/metrics` (see [`crate::app::App::metrics`]).
pub struct AppSeries {
    pub name: &'static str,
    pub help: &'static str,
    pub labels: Vec<(&'static str, String)>,
    pub gauge: bool,
    pub read: Read,
}

/// Buckets of `ringws_fanout_latency_seconds`: publish accepted → last local write submitted.
static FANOUT_BUCKETS_SECONDS: [f64; 14] = [
    0.00001, 0.000025, 0.00005, 0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05,
    0.1, 1.0,
];

enum Series {
    Counter(Counter, Read),
    Gauge(Gauge, Read),
}

/// Everything `/metrics` shows.
pub struct Exporter {
    recorder: PrometheusRecorder,
    handle: PrometheusHandle,
    series: Vec<Series>,
    process: ProcessGauges,
    handshake_duration: Vec<Arc<SecondsHistogram>>,
    fanout_latency: Vec<Arc<SecondsHistogram>>,
    admin: Arc<AdminStats>,
}

struct ProcessGauges {
    open_fds: Gauge,
    max_fds: Gauge,
    resident_bytes: Gauge,
}

fn meta() -> Metadata<'static> {
    Metadata::new(module_path!(), metrics::Level::INFO, Some(module_path!()))
}

fn key(name: &'static str, labels: Vec<Label>) -> Key {
    Key::from_parts(name, labels)
}

fn core_label(core: usize) -> Label {
    Label::new("core", core.to_string())
}

impl Exporter {
    /// Registers every series for `stats` (one entry per core) and the effective limits.
    pub fn new(
        config: &Config,
        stats: &[Arc<CoreStats>],
        app_series: Vec<AppSeries>,
        tls: Option<Arc<TlsShared>>,
    ) -> Exporter {
        let recorder = PrometheusBuilder::new().build_recorder();
        let handle = recorder.handle();
        let mut e = Exporter {
            process: ProcessGauges {
                open_fds: recorder.register_gauge(&key("ringws_process_open_fds", vec![]), &meta()),
                max_fds: recorder.register_gauge(&key("ringws_process_max_fds", vec![]), &meta()),
                resident_bytes: recorder.register_gauge(
                    &key("ringws_process_resident_memory_bytes", vec![]),
                    &meta(),
                ),
            },
            handshake_duration: Vec::new(),
            fanout_latency: Vec::new(),
            admin: Arc::default(),
            series: Vec::new(),
            handle,
            recorder,
        };
        e.describe();
        e.register_limits(config, stats.len());
        e.register_admin();
        if let Some(tls) = &tls {
            e.register_tls(tls);
        }
        for (core, s) in stats.iter().enumerate() {
            e.register_core(core, s);
            if config.proxy_protocol {
                e.register_core_proxy(core, s);
            }
            if tls.is_some() {
                e.register_core_tls(core, s);
            }
            e.handshake_duration
                .push(Arc::new(SecondsHistogram::new(&HANDSHAKE_BUCKETS_SECONDS)));
            e.fanout_latency
                .push(Arc::new(SecondsHistogram::new(&FANOUT_BUCKETS_SECONDS)));
        }
        for s in app_series {
            let labels = s
                .labels
                .into_iter()
                .map(|(k, v)| Label::new(k, v))
                .collect();
            if s.gauge {
                e.recorder
                    .describe_gauge(s.name.into(), None, s.help.into());
                e.gauge(s.name, labels, s.read);
            } else {
                e.recorder
                    .describe_counter(s.name.into(), None, s.help.into());
                e.counter(s.name, labels, s.read);
            }
        }
        e
    }

    /// The admin listener's counters (core 0 writes them).
    pub fn admin_stats(&self) -> &AdminStats {
        &self.admin
    }

    fn register_admin(&mut self) {
        self.recorder.describe_counter(
            "ringws_admin_connections_closed_total".into(),
            None,
            "Admin connections closed without an answer to their request, by reason.".into(),
        );
        for reason in AdminClose::ALL {
            let admin = self.admin.clone();
            self.counter(
                "ringws_admin_connections_closed_total",
                vec![Label::new("reason", reason.label())],
                Box::new(move || admin.closed_count(reason)),
            );
        }
        self.recorder.describe_counter(
            "ringws_admin_accept_errors_total".into(),
            None,
            "accept(2) failures on the admin listener.".into(),
        );
        let admin = self.admin.clone();
        self.counter(
            "ringws_admin_accept_errors_total",
            vec![],
            Box::new(move || admin.accept_errors()),
        );
    }

    /// The fan-out latency histogram of `core`.
    pub fn fanout_latency(&self, core: usize) -> Arc<SecondsHistogram> {
        self.fanout_latency[core].clone()
    }

    /// The handshake duration histogram of `core`, recorded by that core at each upgrade.
    pub fn handshake_duration(&self, core: usize) -> Arc<SecondsHistogram> {
        self.handshake_duration[core].clone()
    }

    fn counter(&mut self, name: &'static str, labels: Vec<Label>, read: Read) {
        let c = self.recorder.register_counter(&key(name, labels), &meta());
        self.series.push(Series::Counter(c, read));
    }

    fn gauge(&mut self, name: &'static str, labels: Vec<Label>, read: Read) {
        let g = self.recorder.register_gauge(&key(name, labels), &meta());
        self.series.push(Series::Gauge(g, read));
    }

    /// The wss series: handshakes by core and failure reason, the certificate's expiry, reloads.
    fn register_tls(&mut self, tls: &Arc<TlsShared>) {
        let t = tls.clone();
        self.gauge(
            "ringws_tls_certificate_expiry_timestamp_seconds",
            vec![],
            Box::new(move || t.not_after_unix_s.load(Ordering::Relaxed)),
        );
        let t = tls.clone();
        self.counter(
            "ringws_tls_reloads_total",
            vec![Label::new("result", "ok")],
            Box::new(move || t.reloads.load(Ordering::Relaxed)),
        );
        let t = tls.clone();
        self.counter(
            "ringws_tls_reloads_total",
            vec![Label::new("result", "failed")],
            Box::new(move || t.reload_failures.load(Ordering::Relaxed)),
        );
    }

    fn register_core_proxy(&mut self, core: usize, s: &Arc<CoreStats>) {
        let c = s.clone();
        self.counter(
            "ringws_proxy_protocol_headers_total",
            vec![core_label(core)],
            Box::new(move || c.proxy_headers.get()),
        );
        for reason in 0..PROXY_REFUSALS {
            let c = s.clone();
            let labels = vec![
                core_label(core),
                Label::new("reason", refusal_label(reason)),
            ];
            self.counter(
                "ringws_proxy_protocol_refusals_total",
                labels,
                Box::new(move || c.proxy_refusal_count(reason)),
            );
        }
    }

    fn register_core_tls(&mut self, core: usize, s: &Arc<CoreStats>) {
        let c = s.clone();
        self.counter(
            "ringws_tls_handshakes_total",
            vec![core_label(core)],
            Box::new(move || c.tls_handshakes.get()),
        );
        for failure in TLS_FAILURES {
            let c = s.clone();
            let labels = vec![core_label(core), Label::new("reason", failure.label())];
            self.counter(
                "ringws_tls_handshake_failures_total",
                labels,
                Box::new(move || c.tls_failure_count(failure)),
            );
        }
    }

    fn register_limits(&mut self, config: &Config, cores: usize) {
        let build = vec![
            Label::new("version", env!("CARGO_PKG_VERSION")),
            Label::new(
                "commit",
                option_env!("RINGWS_GIT_COMMIT").unwrap_or("unknown"),
            ),
        ];
        self.gauge("ringws_build_info", build, Box::new(|| 1));
        let fixed: [(&'static str, u64); 10] = [
            ("ringws_cores", cores as u64),
            ("ringws_max_connections", config.max_connections as u64),
            ("ringws_memory_budget_bytes", config.memory_budget),
            ("ringws_max_frame_size_bytes", config.max_frame_size),
            ("ringws_max_message_size_bytes", config.max_message_size),
            (
                "ringws_max_outbound_buffer_bytes",
                config.max_outbound_buffer,
            ),
            (
                "ringws_max_handshake_size_bytes",
                config.max_handshake_size as u64,
            ),
            (
                "ringws_ping_interval_seconds",
                config.ping_interval.as_secs(),
            ),
            ("ringws_pong_timeout_seconds", config.pong_timeout.as_secs()),
            ("ringws_message_rate_limit", config.message_rate as u64),
        ];
        for (name, value) in fixed {
            self.gauge(name, vec![], Box::new(move || value));
        }
    }

    fn register_core(&mut self, core: usize, s: &Arc<CoreStats>) {
        macro_rules! per_core {
            ($kind:ident, $name:literal, $field:ident) => {{
                let s = s.clone();
                self.$kind(
                    $name,
                    vec![core_label(core)],
                    Box::new(move || s.$field.get()),
                );
            }};
        }
        per_core!(gauge, "ringws_connections_open", connections_open);
        per_core!(gauge, "ringws_draining", draining);
        per_core!(counter, "ringws_drain_closes_total", drain_closes);
        per_core!(gauge, "ringws_drain_pending_connections", drain_pending);
        per_core!(counter, "ringws_connections_accepted_total", accepted);
        per_core!(
            counter,
            "ringws_handshakes_completed_total",
            handshakes_completed
        );
        per_core!(
            counter,
            "ringws_handshake_timeouts_total",
            handshake_timeouts
        );
        per_core!(
            counter,
            "ringws_heartbeat_pings_sent_total",
            heartbeat_pings_sent
        );
        per_core!(
            counter,
            "ringws_heartbeat_timeouts_total",
            heartbeat_timeouts
        );
        per_core!(counter, "ringws_idle_timeouts_total", idle_timeouts);
        per_core!(counter, "ringws_close_timeouts_total", close_timeouts);
        per_core!(
            counter,
            "ringws_write_stall_closes_total",
            write_stall_closes
        );
        per_core!(counter, "ringws_message_timeouts_total", message_timeouts);
        per_core!(
            counter,
            "ringws_slow_consumer_closes_total",
            slow_consumer_closes
        );
        per_core!(counter, "ringws_rate_limit_closes_total", rate_limit_closes);
        per_core!(counter, "ringws_protocol_errors_total", protocol_errors);
        per_core!(
            counter,
            "ringws_socket_received_bytes_total",
            socket_bytes_received
        );
        per_core!(counter, "ringws_socket_sent_bytes_total", socket_bytes_sent);
        per_core!(gauge, "ringws_outbound_queued_bytes", outbound_queued_bytes);
        per_core!(gauge, "ringws_memory_held_bytes", memory_held_bytes);
        per_core!(
            counter,
            "ringws_memory_shed_inbound_total",
            memory_sheds_inbound
        );
        per_core!(
            counter,
            "ringws_memory_shed_outbound_total",
            memory_sheds_outbound
        );
        per_core!(
            gauge,
            "ringws_backpressured_connections",
            backpressured_connections
        );
        per_core!(gauge, "ringws_deflate_connections", deflate_connections);
        per_core!(
            counter,
            "ringws_deflate_received_compressed_bytes_total",
            deflate_received_compressed_bytes
        );
        per_core!(
            counter,
            "ringws_deflate_received_inflated_bytes_total",
            deflate_received_inflated_bytes
        );
        per_core!(
            counter,
            "ringws_deflate_sent_uncompressed_bytes_total",
            deflate_sent_uncompressed_bytes
        );
        per_core!(
            counter,
            "ringws_deflate_sent_compressed_bytes_total",
            deflate_sent_compressed_bytes
        );
        per_core!(
            counter,
            "ringws_deflate_inflate_limit_closes_total",
            deflate_inflate_limit_closes
        );
        per_core!(
            counter,
            "ringws_io_uring_submissions_total",
            ring_submissions
        );
        per_core!(
            counter,
            "ringws_io_uring_completions_total",
            ring_completions
        );
        per_core!(
            counter,
            "ringws_io_uring_cq_overflows_total",
            ring_cq_overflows
        );

        for (result, read) in [("clean", 0usize), ("forced", 1)] {
            let s = s.clone();
            let labels = vec![core_label(core), Label::new("result", result)];
            self.counter(
                "ringws_drained_connections_total",
                labels,
                Box::new(move || {
                    if read == 0 {
                        s.drained_cleanly.get()
                    } else {
                        s.drained_forced.get()
                    }
                }),
            );
        }
        for &reason in RefusalReason::ALL {
            let s = s.clone();
            let labels = vec![core_label(core), Label::new("reason", reason.label())];
            self.counter(
                "ringws_handshakes_refused_total",
                labels,
                Box::new(move || s.refused_count(reason)),
            );
        }
        // The limits a refusal or close stands for, in one family a dashboard can sum.
        type ReadStat = fn(&CoreStats) -> u64;
        let limits: [(&str, ReadStat); 4] = [
            ("max_connections", |s| {
                s.refused_count(RefusalReason::ServerFull)
            }),
            ("memory_budget", |s| {
                s.refused_count(RefusalReason::OverMemoryBudget)
                    + s.memory_sheds_inbound.get()
                    + s.memory_sheds_outbound.get()
            }),
            ("max_outbound_buffer", |s| s.slow_consumer_closes.get()),
            ("message_rate", |s| s.rate_limit_closes.get()),
        ];
        for (limit, read) in limits {
            let s = s.clone();
            let labels = vec![core_label(core), Label::new("limit", limit)];
            self.counter(
                "ringws_limit_refusals_total",
                labels,
                Box::new(move || read(&s)),
            );
        }
        for (kind, label) in [(MessageKind::Text, "text"), (MessageKind::Binary, "binary")] {
            let l = || vec![core_label(core), Label::new("type", label)];
            let (a, b, c, d) = (s.clone(), s.clone(), s.clone(), s.clone());
            self.counter(
                "ringws_messages_received_total",
                l(),
                Box::new(move || a.received(kind).0),
            );
            self.counter(
                "ringws_received_payload_bytes_total",
                l(),
                Box::new(move || b.received(kind).1),
            );
            self.counter(
                "ringws_messages_sent_total",
                l(),
                Box::new(move || c.sent(kind).0),
            );
            self.counter(
                "ringws_sent_payload_bytes_total",
                l(),
                Box::new(move || d.sent(kind).1),
            );
        }
        for (label, _) in s.accept_error_counts() {
            let s = s.clone();
            let labels = vec![core_label(core), Label::new("errno", label)];
            self.counter(
                "ringws_accept_errors_total",
                labels,
                Box::new(move || {
                    s.accept_error_counts()
                        .find(|(l, _)| *l == label)
                        .map_or(0, |(_, n)| n)
                }),
            );
        }
        for (initiator, slot, _) in s.closed_counts() {
            let s = s.clone();
            let labels = vec![
                core_label(core),
                Label::new("initiator", initiator.label()),
                Label::new("code", close_code_label(slot)),
            ];
            self.counter(
                "ringws_connections_closed_total",
                labels,
                Box::new(move || {
                    s.closed_counts()
                        .find(|(i, sl, _)| *i == initiator && *sl == slot)
                        .map_or(0, |(_, _, n)| n)
                }),
            );
        }
        debug_assert!(COUNTED_CLOSE_CODES.len() < 16);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::stats::Initiator;

    #[test]
    fn render_shows_core_counters_with_labels_and_help() {
        let stats = vec![
            Arc::new(CoreStats::default()),
            Arc::new(CoreStats::default()),
        ];
        stats[1].accepted.add(7);
        stats[0].refused(RefusalReason::MissingUpgrade);
        stats[1].closed(Initiator::Peer, Some(1000));
        stats[0].message_received(MessageKind::Text, 5);
        let series = vec![AppSeries {
            name: "ringws_test_things_total",
            help: "Things.",
            labels: vec![("core", "0".into())],
            gauge: false,
            read: Box::new(|| 42),
        }];
        let e = Exporter::new(&Config::default(), &stats, series, None);
        e.handshake_duration(0).record(0.0003);
        let text = e.render();
        assert!(
            text.contains("ringws_connections_accepted_total{core=\"1\"} 7"),
            "{text}"
        );
        assert!(
            text.contains(
                "ringws_handshakes_refused_total{core=\"0\",reason=\"missing_upgrade\"} 1"
            ),
            "{text}"
        );
        assert!(
            text.contains(
                "ringws_connections_closed_total{core=\"1\",initiator=\"peer\",code=\"1000\"} 1"
            ),
            "{text}"
        );
        assert!(
            text.contains("ringws_received_payload_bytes_total{core=\"0\",type=\"text\"} 5"),
            "{text}"
        );
        assert!(
            text.contains("ringws_handshake_duration_seconds_bucket{core=\"0\",le=\"0.0005\"} 1"),
            "{text}"
        );
        assert!(text.contains("ringws_max_connections 1000000"), "{text}");
        assert!(
            text.contains("# HELP ringws_handshakes_refused_total"),
            "{text}"
        );
        assert!(text.contains("ringws_process_open_fds "), "{text}");
        assert!(
            text.contains("ringws_test_things_total{core=\"0\"} 42"),
            "{text}"
        );
        // A later scrape sees later values: the handles read the live counters.
        stats[1].accepted.inc();
        assert!(e
            .render()
            .contains("ringws_connections_accepted_total{core=\"1\"} 8"));
    }
}
