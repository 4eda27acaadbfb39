//! The raw Redis pub/sub floor of a run across nodes (`bench fanout --redis`): a plain Redis
//! subscriber of the topic's channel (`ringws:<topic>`) that stamps each of the same publishes
//! when Redis hands it over, as the receivers stamp their subscribers. Its latency is client ->
//! publishing node -> Redis -> a subscriber; a ringws subscriber on another node adds that node
//! (Redis -> node -> its client). Before a run starts it also waits until every node with
//! subscribers has subscribed the channel (`PUBSUB NUMSUB`), so no publish goes out before a
//! node listens.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use super::{Failure, Progress};
use crate::app::pubsub::bus::{envelope, resp};

/// Largest channel message read (the bus's own envelope limit is far below).
const MAX_BULK_BYTES: usize = 64 << 20;

/// The channel the Redis bus uses for `topic`.
pub(super) fn channel(topic: &str) -> String {
    format!("ringws:{topic}")
}

fn connect(redis: SocketAddr) -> Result<TcpStream, String> {
    let s = TcpStream::connect_timeout(&redis, Duration::from_secs(5))
        .map_err(|e| format!("redis {redis}: {e}"))?;
    let _ = s.set_nodelay(true);
    Ok(s)
}

/// A connection subscribed to `channel` (the confirmation is read by [`receive`]).
pub(super) fn subscribe(redis: SocketAddr, channel: &str) -> Result<TcpStream, String> {
    let mut s = connect(redis)?;
    let mut command = Vec::new();
    resp::encode(&mut command, &[b"SUBSCRIBE", channel.as_bytes()]);
    s.write_all(&command)
        .map_err(|e| format!("redis {redis}: {e}"))?;
    Ok(s)
}

/// `PUBSUB NUMSUB channel`: how many connections subscribe it (one per node, and ours).
fn numsub(redis: SocketAddr, channel: &str) -> Result<i64, String> {
    let mut s = connect(redis)?;
    s.set_read_timeout(Some(Duration::from_secs(5)))
        .map_err(|e| e.to_string())?;
    let mut command = Vec::new();
    resp::encode(&mut command, &[b"PUBSUB", b"NUMSUB", channel.as_bytes()]);
    s.write_all(&command)
        .map_err(|e| format!("redis {redis}: {e}"))?;
    let mut buf = Vec::new();
    let mut chunk = [0u8; 512];
    loop {
        match resp::parse(&buf, MAX_BULK_BYTES) {
            Ok(Some((resp::Value::Array(Some(items)), _))) => {
                return match items.get(1) {
                    Some(resp::Value::Int(n)) => Ok(*n),
                    _ => Err(format!("redis {redis}: unexpected PUBSUB NUMSUB answer")),
                };
            }
            Ok(Some((other, _))) => {
                return Err(format!("redis {redis}: PUBSUB NUMSUB answered {other:?}"));
            }
            Ok(None) => {}
            Err(e) => return Err(format!("redis {redis}: {e}")),
        }
        match s.read(&mut chunk) {
            Ok(0) => return Err(format!("redis {redis} closed the connection")),
            Ok(n) => buf.extend_from_slice(&chunk[..n]),
            Err(e) => return Err(format!("redis {redis}: {e}")),
        }
    }
}

/// Waits (at most 30 s) until `subscriptions` connections subscribe `channel`.
pub(super) fn wait_subscribed(
    redis: SocketAddr,
    channel: &str,
    subscriptions: usize,
) -> Result<(), String> {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let now = numsub(redis, channel)?;
        if now == subscriptions as i64 {
            return Ok(());
        }
        if Instant::now() > deadline {
            return Err(format!(
                "redis {redis} counts {now} subscriptions of {channel} instead of \
                 {subscriptions} (one per node with subscribers, and the bench's own): \
                 is every node's bus = \"redis://{redis}/\"?"
            ));
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// The floor's receiver: stamps `progress.done_at[group][seq]` when message `seq` arrives and
/// counts it in `progress.delivered[column]`; anything else on the channel is an error.
pub(super) fn receive(mut stream: TcpStream, group: usize, column: usize, progress: &Progress) {
    // Wakes up to check the stop flag.
    let _ = stream.set_read_timeout(Some(Duration::from_millis(50)));
    let error = || progress.failed(Failure::Floor);
    let mut buf: Vec<u8> = Vec::with_capacity(1 << 20);
    let mut chunk = vec![0u8; 256 << 10];
    let mut delivered = 0u64;
    while !progress.stop.load(Ordering::Acquire) {
        match stream.read(&mut chunk) {
            Ok(0) => {
                error(); // Redis closed the connection
                break;
            }
            Ok(n) => buf.extend_from_slice(&chunk[..n]),
            Err(_) => continue, // the timeout
        }
        let at = progress.epoch.elapsed().as_nanos() as u64;
        let mut pos = 0;
        loop {
            let (value, used) = match resp::parse(&buf[pos..], MAX_BULK_BYTES) {
                Ok(Some(v)) => v,
                Ok(None) => break,
                Err(_) => {
                    error();
                    progress.delivered[column].fetch_add(delivered, Ordering::Relaxed);
                    return;
                }
            };
            pos += used;
            let resp::Value::Array(Some(items)) = value else {
                error();
                continue;
            };
            if !matches!(items.first(), Some(resp::Value::Bulk(Some(k))) if k.as_slice() == b"message")
            {
                continue; // the subscribe confirmation
            }
            let Some(resp::Value::Bulk(Some(payload))) = items.get(2) else {
                error();
                continue;
            };
            let seq = envelope::decode(payload)
                .ok()
                .and_then(|m| m.payload.first_chunk::<8>().map(|s| u64::from_le_bytes(*s)));
            // done_at[group] holds one slot per message of the run: out of range is not ours.
            match seq.and_then(|s| progress.done_at[group].get(s as usize)) {
                Some(slot) if slot.load(Ordering::Relaxed) == 0 => {
                    slot.store(at.max(1), Ordering::Release);
                    delivered += 1;
                }
                _ => error(), // not a bench message, or one seen twice
            }
        }
        buf.drain(..pos);
    }
    progress.delivered[column].fetch_add(delivered, Ordering::Relaxed);
}
