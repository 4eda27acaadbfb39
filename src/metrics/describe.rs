//! The help text and unit of every built-in series.

use metrics::{Recorder, Unit};

use super::Exporter;

impl Exporter {
    /// The help text and unit of every series the exporter registers itself.
    pub(super) fn describe(&self) {
        let d = |name: &'static str, unit: Option<Unit>, help: &'static str, kind: u8| {
            let (name, help) = (name.into(), help.into());
            match kind {
                0 => self.recorder.describe_counter(name, unit, help),
                _ => self.recorder.describe_gauge(name, unit, help),
            }
        };
        let (c, g) = (0, 1);
        d(
            "ringws_connections_open",
            None,
            "Upgraded connections open now.",
            g,
        );
        d(
            "ringws_proxy_protocol_headers_total",
            None,
            "PROXY protocol headers read (proxy_protocol), each naming a client or none.",
            c,
        );
        d(
            "ringws_proxy_protocol_refusals_total",
            None,
            "Connections reset before a PROXY protocol header was read, by reason (untrusted: \
             the peer is not in trusted_proxies; missing, too_long, malformed, bad_address, \
             bad_port, unsupported).",
            c,
        );
        d(
            "ringws_tls_handshakes_total",
            None,
            "TLS handshakes finished on the wss listener (full and resumed).",
            c,
        );
        d(
            "ringws_tls_handshake_failures_total",
            None,
            "TLS handshakes that failed, by reason (plain_http, no_common_version, \
             no_common_cipher, no_common_alpn, certificate_rejected, client_certificate, \
             client_alert, client_closed, timeout, protocol).",
            c,
        );
        d(
            "ringws_tls_certificate_expiry_timestamp_seconds",
            Some(Unit::Seconds),
            "When the served TLS certificate expires (its notAfter), in Unix seconds.",
            g,
        );
        d(
            "ringws_tls_reloads_total",
            None,
            "TLS certificate reloads (SIGHUP), by result: ok, or failed (the old one kept).",
            c,
        );
        d(
            "ringws_connections_accepted_total",
            None,
            "TCP connections accepted.",
            c,
        );
        d(
            "ringws_connections_closed_total",
            None,
            "Upgraded connections closed, by who started the close and the close code.",
            c,
        );
        d(
            "ringws_handshakes_completed_total",
            None,
            "Upgrades answered with 101.",
            c,
        );
        d(
            "ringws_handshakes_refused_total",
            None,
            "Upgrade requests refused, by reason.",
            c,
        );
        d(
            "ringws_handshake_timeouts_total",
            None,
            "Sockets closed for not finishing the upgrade within handshake_timeout.",
            c,
        );
        d(
            "ringws_messages_received_total",
            None,
            "Messages received, by type.",
            c,
        );
        d(
            "ringws_messages_sent_total",
            None,
            "Messages sent, by type.",
            c,
        );
        d(
            "ringws_received_payload_bytes_total",
            Some(Unit::Bytes),
            "Message payload bytes received, by type.",
            c,
        );
        d(
            "ringws_sent_payload_bytes_total",
            Some(Unit::Bytes),
            "Message payload bytes sent, by type.",
            c,
        );
        d(
            "ringws_socket_received_bytes_total",
            Some(Unit::Bytes),
            "Bytes read from sockets.",
            c,
        );
        d(
            "ringws_socket_sent_bytes_total",
            Some(Unit::Bytes),
            "Bytes written to sockets.",
            c,
        );
        d(
            "ringws_heartbeat_pings_sent_total",
            None,
            "Heartbeat pings sent to silent peers.",
            c,
        );
        d(
            "ringws_heartbeat_timeouts_total",
            None,
            "Connections closed for not answering a heartbeat ping.",
            c,
        );
        d(
            "ringws_idle_timeouts_total",
            None,
            "Connections closed by idle_timeout.",
            c,
        );
        d(
            "ringws_close_timeouts_total",
            None,
            "Connections dropped after close_timeout without the peer's close.",
            c,
        );
        d(
            "ringws_write_stall_closes_total",
            None,
            "Connections dropped because their outbound queue did not drain at min_send_rate within write_stall_timeout.",
            c,
        );
        d(
            "ringws_message_timeouts_total",
            None,
            "Connections closed with 1008 because a message did not arrive at min_receive_rate within message_timeout.",
            c,
        );
        d(
            "ringws_slow_consumer_closes_total",
            None,
            "Connections closed with 1008 for passing max_outbound_buffer.",
            c,
        );
        d(
            "ringws_rate_limit_closes_total",
            None,
            "Connections closed with 1008 for passing the message rate limit.",
            c,
        );
        d(
            "ringws_limit_refusals_total",
            None,
            "Refusals and closes caused by a configured limit, by limit.",
            c,
        );
        d(
            "ringws_protocol_errors_total",
            None,
            "Connections failed for violating RFC 6455 (1002, 1007, 1009).",
            c,
        );
        d(
            "ringws_accept_errors_total",
            None,
            "accept(2) failures, by errno.",
            c,
        );
        d(
            "ringws_draining",
            None,
            "1 from the stop signal on: /readyz answers 503, the drain is under way.",
            g,
        );
        d(
            "ringws_drain_closes_total",
            None,
            "Open connections the drain sent close 1001 (spread over drain_spread).",
            c,
        );
        d(
            "ringws_drain_pending_connections",
            None,
            "Connections the drain has yet to reach (send close 1001) once the listeners closed.",
            g,
        );
        d(
            "ringws_drained_connections_total",
            None,
            "Connections ended during a graceful shutdown, cleanly or forced.",
            c,
        );
        d(
            "ringws_outbound_queued_bytes",
            Some(Unit::Bytes),
            "Bytes waiting in outbound queues.",
            g,
        );
        d(
            "ringws_memory_held_bytes",
            Some(Unit::Bytes),
            "Memory the connections hold in buffers (partial input, messages being received, outbound queues), counted against memory_budget.",
            g,
        );
        d(
            "ringws_memory_shed_inbound_total",
            None,
            "Connections closed with 1009 over memory_budget, for the input they held.",
            c,
        );
        d(
            "ringws_memory_shed_outbound_total",
            None,
            "Connections dropped over memory_budget, for the outbound queue they held.",
            c,
        );
        d(
            "ringws_backpressured_connections",
            None,
            "Connections with an outbound queue.",
            g,
        );
        d(
            "ringws_deflate_connections",
            None,
            "Connections that negotiated permessage-deflate.",
            g,
        );
        d(
            "ringws_deflate_received_compressed_bytes_total",
            None,
            "Payload bytes of compressed messages received, as they arrived.",
            c,
        );
        d(
            "ringws_deflate_received_inflated_bytes_total",
            None,
            "Payload bytes of compressed messages received, once inflated.",
            c,
        );
        d(
            "ringws_deflate_sent_uncompressed_bytes_total",
            None,
            "Payload bytes of messages sent compressed, before compressing.",
            c,
        );
        d(
            "ringws_deflate_sent_compressed_bytes_total",
            None,
            "Payload bytes of messages sent compressed, as sent.",
            c,
        );
        d(
            "ringws_deflate_inflate_limit_closes_total",
            None,
            "Connections closed with 1009 for a compressed message inflating past max_message_size.",
            c,
        );
        d(
            "ringws_io_uring_submissions_total",
            None,
            "io_uring submission queue entries submitted.",
            c,
        );
        d(
            "ringws_io_uring_completions_total",
            None,
            "io_uring completions reaped.",
            c,
        );
        d(
            "ringws_io_uring_cq_overflows_total",
            None,
            "io_uring completions that overflowed the completion queue.",
            c,
        );
        d(
            "ringws_process_open_fds",
            None,
            "Open file descriptors of the process.",
            g,
        );
        d(
            "ringws_process_max_fds",
            None,
            "The process's open-file limit (RLIMIT_NOFILE).",
            g,
        );
        d(
            "ringws_process_resident_memory_bytes",
            Some(Unit::Bytes),
            "Resident memory of the process.",
            g,
        );
        d(
            "ringws_build_info",
            None,
            "Version and git commit of the running binary (value 1).",
            g,
        );
        d("ringws_cores", None, "Reactor threads.", g);
        d(
            "ringws_max_connections",
            None,
            "Configured max_connections.",
            g,
        );
        d(
            "ringws_memory_budget_bytes",
            Some(Unit::Bytes),
            "Configured memory_budget (all cores).",
            g,
        );
        d(
            "ringws_max_frame_size_bytes",
            Some(Unit::Bytes),
            "Configured max_frame_size.",
            g,
        );
        d(
            "ringws_max_message_size_bytes",
            Some(Unit::Bytes),
            "Configured max_message_size.",
            g,
        );
        d(
            "ringws_max_outbound_buffer_bytes",
            Some(Unit::Bytes),
            "Configured max_outbound_buffer.",
            g,
        );
        d(
            "ringws_max_handshake_size_bytes",
            Some(Unit::Bytes),
            "Configured max_handshake_size.",
            g,
        );
        d(
            "ringws_ping_interval_seconds",
            Some(Unit::Seconds),
            "Configured ping_interval.",
            g,
        );
        d(
            "ringws_pong_timeout_seconds",
            Some(Unit::Seconds),
            "Configured pong_timeout.",
            g,
        );
        d(
            "ringws_message_rate_limit",
            None,
            "Configured message_rate (messages per second per connection; 0 = off).",
            g,
        );
    }
}
