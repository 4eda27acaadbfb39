//! What `bench fanout` asks a node's admin listener: publishes, subscriber counts, and the
//! counters it reads from /metrics.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::{Duration, Instant};

use crate::protocol::client_handshake::parse_response;

/// One HTTP request to the admin listener; the whole answer.
fn http(admin: SocketAddr, request: &[u8]) -> Result<(u16, String), String> {
    // Which request failed, for the message: its request line.
    let line = String::from_utf8_lossy(request.split(|&b| b == b'\r').next().unwrap_or_default())
        .into_owned();
    let failed = |e: std::io::Error| format!("admin {admin}, {line}: {e}");
    let mut s = TcpStream::connect(admin).map_err(failed)?;
    let _ = s.set_nodelay(true);
    s.write_all(request).map_err(failed)?;
    let mut out = Vec::new();
    s.read_to_end(&mut out).map_err(failed)?;
    match parse_response(&out) {
        Ok(Some(response)) => {
            let body = String::from_utf8_lossy(&out[response.head_len..]).into_owned();
            Ok((response.status, body))
        }
        _ => Err(format!(
            "not an HTTP answer: {:?}",
            String::from_utf8_lossy(&out)
        )),
    }
}

pub(super) fn post(
    admin: SocketAddr,
    topic: &str,
    token: Option<&str>,
    body: &[u8],
) -> Result<(), String> {
    let auth = token
        .map(|t| format!("Authorization: Bearer {t}\r\n"))
        .unwrap_or_default();
    let mut req = format!(
        "POST /publish/{topic} HTTP/1.1\r\nHost: bench\r\n{auth}Content-Type: application/octet-stream\r\nContent-Length: {}\r\n\r\n",
        body.len()
    )
    .into_bytes();
    req.extend_from_slice(body);
    match http(admin, &req)? {
        (200, _) => Ok(()),
        (status, body) => Err(format!("publish answered {status}: {}", body.trim())),
    }
}

pub(super) fn wait_for_subscribers(admin: SocketAddr, topic: &str, n: usize) -> Result<(), String> {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let req = format!("GET /topics/{topic} HTTP/1.1\r\nHost: bench\r\n\r\n");
        let (_, body) = http(admin, req.as_bytes())?;
        let v: serde_json::Value = serde_json::from_str(&body).unwrap_or_default();
        if v["subscribers"].as_u64() == Some(n as u64) {
            return Ok(());
        }
        if Instant::now() > deadline {
            return Err(format!(
                "the server at {admin} reports {body} instead of {n} subscribers"
            ));
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// The server's per-core deliveries and fan-out latency sum/count, from /metrics.
pub(super) struct ServerCounters {
    pub deliveries: Vec<f64>,
    pub latency_sum: f64,
    pub latency_count: f64,
    /// Payload bytes of messages sent compressed, before and after compressing.
    pub deflate_sent_uncompressed: f64,
    pub deflate_sent_compressed: f64,
}

pub(super) fn server_counters(admin: SocketAddr) -> ServerCounters {
    let text = http(admin, b"GET /metrics HTTP/1.1\r\nHost: bench\r\n\r\n")
        .map(|(_, b)| b)
        .unwrap_or_default();
    let mut c = ServerCounters {
        deliveries: Vec::new(),
        latency_sum: 0.0,
        latency_count: 0.0,
        deflate_sent_uncompressed: 0.0,
        deflate_sent_compressed: 0.0,
    };
    for line in text.lines() {
        let value = || {
            line.rsplit(' ')
                .next()
                .and_then(|v| v.parse::<f64>().ok())
                .unwrap_or(0.0)
        };
        if line.starts_with("ringws_pubsub_deliveries_total{") {
            c.deliveries.push(value());
        } else if line.starts_with("ringws_fanout_latency_seconds_sum") {
            c.latency_sum += value();
        } else if line.starts_with("ringws_fanout_latency_seconds_count") {
            c.latency_count += value();
        } else if line.starts_with("ringws_deflate_sent_uncompressed_bytes_total") {
            c.deflate_sent_uncompressed += value();
        } else if line.starts_with("ringws_deflate_sent_compressed_bytes_total") {
            c.deflate_sent_compressed += value();
        }
    }
    c
}
