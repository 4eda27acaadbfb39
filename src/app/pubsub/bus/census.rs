//! `GET /topics?scope=cluster`: subscriber counts per topic summed over the live nodes.
//!
//! Each node keeps its own counts in Redis, in the hash `ringws:topics:<node id>` (topic ->
//! subscribers), replaced every [`REFRESH`] and expiring after [`TTL`], so a node that died
//! drops out on its own. The same thread then reads every node's hash and keeps the sum, which
//! the admin endpoint answers from without touching Redis: the answer is approximate (up to
//! one refresh old) and says so. It runs on a third connection of its own, so a slow census
//! never delays publishes.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use super::link::{Backoff, Conn, LinkError};
use super::resp::{self, Value};
use super::RedisSettings;
use crate::app::pubsub::hub::Hub;

/// How often a node writes its counts and reads everyone's.
pub const REFRESH: Duration = Duration::from_secs(2);
/// How long a node's counts stay in Redis without a refresh.
pub const TTL: Duration = Duration::from_secs(10);
/// Prefix of the nodes' hashes.
pub const KEY_PREFIX: &str = "ringws:topics:";
/// Most node hashes read per refresh.
pub const MAX_NODES: usize = 1024;
/// Topic/count pairs per HSET command.
const PAIRS_PER_HSET: usize = 512;

/// The last sum read from Redis.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ClusterTopics {
    /// Nodes whose hash was read (those holding at least one subscriber).
    pub nodes: usize,
    pub counts: HashMap<Box<str>, usize>,
    pub refreshed_at: Instant,
}

/// Shared between the census thread and the admin endpoint.
#[derive(Debug, Default)]
pub struct ClusterView(Mutex<Option<ClusterTopics>>);

impl ClusterView {
    /// The last sum, if one was read yet.
    pub fn snapshot(&self) -> Option<ClusterTopics> {
        match self.0.lock() {
            Ok(v) => v.clone(),
            Err(p) => p.into_inner().clone(),
        }
    }

    fn set(&self, topics: ClusterTopics) {
        match self.0.lock() {
            Ok(mut v) => *v = Some(topics),
            Err(p) => *p.into_inner() = Some(topics),
        }
    }
}

/// This node's key: its process id and start time make it unique among live nodes.
pub fn node_key() -> String {
    format!(
        "{KEY_PREFIX}{}-{:x}",
        std::process::id(),
        super::envelope::unix_now_us()
    )
}

pub(super) fn census_link(hub: &Hub, settings: &RedisSettings, key: &str, view: &Arc<ClusterView>) {
    let mut backoff = Backoff::new();
    loop {
        if let Ok(mut conn) = Conn::open(settings) {
            backoff.reset();
            while let Ok(topics) = refresh(&mut conn, settings.publish_timeout, key, hub) {
                view.set(topics);
                std::thread::sleep(REFRESH);
            }
        }
        std::thread::sleep(backoff.next_wait());
    }
}

/// Writes this node's counts (replacing the last ones, atomically), then sums every node's.
fn refresh(
    conn: &mut Conn,
    timeout: Duration,
    key: &str,
    hub: &Hub,
) -> Result<ClusterTopics, LinkError> {
    let local = hub.all_counts();
    let deadline = Instant::now() + timeout;
    let key = key.as_bytes();
    let ttl_ms = TTL.as_millis().to_string();
    let mut out = Vec::new();
    resp::encode(&mut out, &[b"MULTI"]);
    resp::encode(&mut out, &[b"DEL", key]);
    let pairs: Vec<(Vec<u8>, Vec<u8>)> = local
        .iter()
        .map(|(t, n)| (t.as_bytes().to_vec(), n.to_string().into_bytes()))
        .collect();
    let chunks = pairs.chunks(PAIRS_PER_HSET);
    let hsets = chunks.len();
    for chunk in chunks {
        let mut args: Vec<&[u8]> = vec![b"HSET", key];
        for (topic, n) in chunk {
            args.push(topic);
            args.push(n);
        }
        resp::encode(&mut out, &args);
    }
    resp::encode(&mut out, &[b"PEXPIRE", key, ttl_ms.as_bytes()]);
    resp::encode(&mut out, &[b"EXEC"]);
    conn.write(&out)?;
    for _ in 0..hsets + 4 {
        if let Value::Error(e) = conn.read_value(deadline)? {
            return Err(LinkError::lost(format!("storing the topic counts: {e}")));
        }
    }
    let keys = scan_keys(conn, deadline)?;
    out.clear();
    for k in &keys {
        resp::encode(&mut out, &[b"HGETALL", k]);
    }
    conn.write(&out)?;
    let mut hashes = Vec::with_capacity(keys.len());
    for _ in 0..keys.len() {
        hashes.push(conn.read_value(deadline)?);
    }
    Ok(sum(&hashes, Instant::now()))
}

/// Every node's key (at most [`MAX_NODES`]).
fn scan_keys(conn: &mut Conn, deadline: Instant) -> Result<Vec<Vec<u8>>, LinkError> {
    let pattern = format!("{KEY_PREFIX}*");
    let mut cursor = b"0".to_vec();
    let mut keys = Vec::new();
    loop {
        conn.command(&[
            b"SCAN",
            &cursor,
            b"MATCH",
            pattern.as_bytes(),
            b"COUNT",
            b"1000",
        ])?;
        let Value::Array(Some(mut reply)) = conn.read_value(deadline)? else {
            return Err(LinkError::lost(
                "SCAN answered something other than an array",
            ));
        };
        if reply.len() != 2 {
            return Err(LinkError::lost("SCAN answered an array not of two"));
        }
        if let Value::Array(Some(found)) = reply.pop().unwrap_or(Value::Array(None)) {
            keys.extend(found.into_iter().filter_map(|k| match k {
                Value::Bulk(Some(k)) => Some(k),
                _ => None,
            }));
        }
        match reply.pop() {
            Some(Value::Bulk(Some(next))) if next != b"0" && keys.len() < MAX_NODES => {
                cursor = next;
            }
            _ => break,
        }
    }
    keys.truncate(MAX_NODES);
    Ok(keys)
}

/// Sums HGETALL replies (flat arrays of topic, count); fields that are not counts are skipped.
fn sum(hashes: &[Value], now: Instant) -> ClusterTopics {
    let mut counts: HashMap<Box<str>, usize> = HashMap::new();
    let mut nodes = 0;
    for hash in hashes {
        let Value::Array(Some(fields)) = hash else {
            continue;
        };
        if fields.is_empty() {
            continue; // expired between SCAN and HGETALL
        }
        nodes += 1;
        for pair in fields.chunks_exact(2) {
            let (Value::Bulk(Some(topic)), Value::Bulk(Some(n))) = (&pair[0], &pair[1]) else {
                continue;
            };
            let (Ok(topic), Some(n)) = (
                std::str::from_utf8(topic),
                std::str::from_utf8(n)
                    .ok()
                    .and_then(|n| n.parse::<usize>().ok()),
            ) else {
                continue;
            };
            let total = counts.entry(topic.into()).or_default();
            *total = total.saturating_add(n);
        }
    }
    ClusterTopics {
        nodes,
        counts,
        refreshed_at: now,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hash(pairs: &[(&str, &str)]) -> Value {
        Value::Array(Some(
            pairs
                .iter()
                .flat_map(|(t, n)| {
                    [
                        Value::Bulk(Some(t.as_bytes().to_vec())),
                        Value::Bulk(Some(n.as_bytes().to_vec())),
                    ]
                })
                .collect(),
        ))
    }

    #[test]
    fn sums_every_nodes_counts_and_skips_what_is_not_a_count() {
        let now = Instant::now();
        let topics = sum(
            &[
                hash(&[("a", "3"), ("b", "1")]),
                hash(&[("a", "4"), ("c", "x")]),
                hash(&[]),
                Value::Bulk(None),
            ],
            now,
        );
        assert_eq!(topics.nodes, 2, "empty (expired) hashes are not nodes");
        assert_eq!(topics.counts.get("a"), Some(&7));
        assert_eq!(topics.counts.get("b"), Some(&1));
        assert_eq!(topics.counts.get("c"), None);
        assert!(node_key().starts_with(KEY_PREFIX));
    }
}
