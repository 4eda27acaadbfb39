//! The cross-node bus: every node publishes through one standalone Redis and delivers what
//! Redis delivers (see docs/scale-out.md).
//!
//! Nothing here runs on a reactor thread except [`RedisBus::publish`], which only checks the
//! link's state and pushes onto a bounded queue (`bus_queue_size`, a refusal past it). Two
//! threads own the Redis connections ([`link`]): the publish link drains the queue and
//! pipelines `PUBLISH`es on one connection; the subscribe link holds the node's subscriptions
//! on a second one (a channel per topic with local subscribers, never a pattern) and hands
//! every message to the local hub's per-core inboxes, framed once.
//!
//! Order: one publish connection per node, Redis's single-threaded `PUBLISH`, and one reader
//! per node feeding every core's inbox in the order Redis sent: all subscribers of a topic, on
//! every core of every node, see the same order.
//!
//! Layout: [`address`] the setting; [`envelope`] the bytes of a publish on a channel; [`resp`]
//! the Redis protocol; [`link`] the two threads. With `redis-cluster://`, [`cluster`] runs
//! the same two threads with sharded pub/sub (`SPUBLISH` / `SSUBSCRIBE` on each channel's
//! master, [`slot`]) behind the same queue and [`LinkState`].

pub mod address;
pub mod census;
mod cluster;
pub mod envelope;
mod link;
pub mod resp;
pub mod slot;

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::mpsc::{self, Receiver, SyncSender, TrySendError};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

pub use address::{BusAddress, RedisAddress};

use super::hub::{Accepted, Bus, Hub, PublishRefused};
use crate::protocol::MessageKind;

/// Every topic's channel is this prefix and the topic, so ringws shares a Redis with other users.
pub const CHANNEL_PREFIX: &str = "ringws:";

/// The Redis channel of `topic`.
pub fn channel(topic: &str) -> Vec<u8> {
    [CHANNEL_PREFIX.as_bytes(), topic.as_bytes()].concat()
}

/// A pushed array's parts as both links read them: its kind (`message`, `subscribe`,
/// `smessage`, ...), the topic of its ringws channel (None for another channel), and its third
/// element (a message's payload).
fn push_parts(items: &[resp::Value]) -> (Option<&[u8]>, Option<&str>, Option<&[u8]>) {
    let bulk = |i: usize| match items.get(i) {
        Some(resp::Value::Bulk(Some(b))) => Some(b.as_slice()),
        _ => None,
    };
    let topic = bulk(1)
        .and_then(|c| c.strip_prefix(CHANNEL_PREFIX.as_bytes()))
        .and_then(|t| std::str::from_utf8(t).ok());
    (bulk(0), topic, bulk(2))
}

/// The Redis bus's settings (the `bus*` config keys).
#[derive(Clone, Debug)]
pub struct RedisSettings {
    pub address: RedisAddress,
    /// `bus_queue_size`.
    pub queue_len: usize,
    /// `bus_publish_timeout`: connect, answer a batch, or wait in the queue.
    pub publish_timeout: Duration,
    /// Largest message (`max_message_size`): what a channel message may carry.
    pub max_message_bytes: usize,
}

/// Why publishes failed, for `ringws_bus_publish_errors_total{reason}`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ErrorReason {
    /// Refused at once: no connection to Redis.
    Disconnected,
    /// Refused at once: `bus_queue_size` publishes were waiting.
    QueueFull,
    /// Accepted, then waited in the queue past `bus_publish_timeout`: dropped.
    Expired,
    /// Accepted, then Redis did not answer its batch within `bus_publish_timeout`.
    Timeout,
    /// Accepted, then the connection was lost before Redis answered.
    ConnectionLost,
    /// Redis answered the PUBLISH with an error.
    RedisError,
}

impl ErrorReason {
    pub const ALL: [ErrorReason; 6] = [
        ErrorReason::Disconnected,
        ErrorReason::QueueFull,
        ErrorReason::Expired,
        ErrorReason::Timeout,
        ErrorReason::ConnectionLost,
        ErrorReason::RedisError,
    ];

    pub fn label(self) -> &'static str {
        match self {
            ErrorReason::Disconnected => "disconnected",
            ErrorReason::QueueFull => "queue_full",
            ErrorReason::Expired => "expired",
            ErrorReason::Timeout => "timeout",
            ErrorReason::ConnectionLost => "connection_lost",
            ErrorReason::RedisError => "redis_error",
        }
    }
}

/// The bus's counters (all zero with the local bus), read by `/metrics`.
#[derive(Debug, Default)]
pub struct BusStats {
    /// 1 when both connections to Redis are up.
    pub connected: AtomicU64,
    pub publish_reconnects: AtomicU64,
    pub subscribe_reconnects: AtomicU64,
    errors: [AtomicU64; ErrorReason::ALL.len()],
    /// Publishes Redis acknowledged.
    pub messages_out: AtomicU64,
    /// Channel messages received and handed to the hub.
    pub messages_in: AtomicU64,
    /// Channel messages that were not ringws envelopes (dropped).
    pub malformed: AtomicU64,
    /// Gap control messages announced (one per topic per re-subscription).
    pub gaps: AtomicU64,
    /// Publishes waiting in the queue.
    pub queued: AtomicU64,
    /// Redis Cluster topology reads (`CLUSTER SLOTS`) that succeeded.
    pub topology_refreshes: AtomicU64,
}

impl BusStats {
    pub fn error(&self, reason: ErrorReason, n: u64) {
        self.errors[reason as usize].fetch_add(n, Ordering::Relaxed);
    }

    pub fn errors(&self, reason: ErrorReason) -> u64 {
        self.errors[reason as usize].load(Ordering::Relaxed)
    }
}

/// What the reactors and the two link threads share about the connections.
#[derive(Debug)]
pub struct LinkState {
    publish_up: AtomicBool,
    subscribe_up: AtomicBool,
    /// Set by the subscribe link when it loses Redis: the publish link drops its connection
    /// too, rather than find out with a batch of publishes already answered 200.
    reset_publish: AtomicBool,
    /// Why the bus is down (the last failure), for refusals and `/readyz`.
    reason: Mutex<String>,
}

impl LinkState {
    fn new() -> LinkState {
        LinkState {
            publish_up: AtomicBool::new(false),
            subscribe_up: AtomicBool::new(false),
            reset_publish: AtomicBool::new(false),
            reason: Mutex::new("not connected to Redis yet".into()),
        }
    }

    fn reason(&self) -> String {
        self.reason
            .lock()
            .map_or_else(|p| p.into_inner().clone(), |r| r.clone())
    }

    fn set_reason(&self, reason: String) {
        match self.reason.lock() {
            Ok(mut r) => *r = reason,
            Err(p) => *p.into_inner() = reason,
        }
    }

    /// `Err(why)` unless both connections are up.
    pub fn ready(&self) -> Result<(), String> {
        if self.publish_up.load(Ordering::Acquire) && self.subscribe_up.load(Ordering::Acquire) {
            Ok(())
        } else {
            Err(format!("Redis bus: {}", self.reason()))
        }
    }
}

/// One accepted publish on its way to Redis.
#[derive(Debug)]
struct Outgoing {
    channel: Vec<u8>,
    envelope: Vec<u8>,
    queued_at: Instant,
}

/// The Redis bus (`bus = "redis://..."`).
pub struct RedisBus {
    hub: Arc<Hub>,
    settings: RedisSettings,
    queue: SyncSender<Outgoing>,
    /// Taken by [`RedisBus::start`].
    receiver: Mutex<Option<Receiver<Outgoing>>>,
    state: Arc<LinkState>,
    stats: Arc<BusStats>,
    /// Subscriber counts summed over the nodes (`GET /topics?scope=cluster`).
    cluster: Arc<census::ClusterView>,
}

impl RedisBus {
    pub fn new(hub: Arc<Hub>, settings: RedisSettings, stats: Arc<BusStats>) -> RedisBus {
        let (queue, receiver) = mpsc::sync_channel(settings.queue_len);
        RedisBus {
            hub,
            settings,
            queue,
            receiver: Mutex::new(Some(receiver)),
            state: Arc::new(LinkState::new()),
            stats,
            cluster: Arc::default(),
        }
    }

    /// The last cluster-wide topic counts read from Redis.
    pub fn cluster(&self) -> &census::ClusterView {
        &self.cluster
    }

    /// Starts the two link threads (once; after the hub has its wakers).
    pub fn start(&self) -> std::io::Result<()> {
        let receiver = match self.receiver.lock() {
            Ok(mut r) => r.take(),
            Err(p) => p.into_inner().take(),
        };
        let Some(receiver) = receiver else {
            return Ok(());
        };
        if self.settings.address.is_cluster() {
            return cluster::spawn(
                self.hub.clone(),
                self.settings.clone(),
                receiver,
                self.state.clone(),
                self.stats.clone(),
            );
        }
        link::spawn(
            self.hub.clone(),
            self.settings.clone(),
            receiver,
            self.state.clone(),
            self.stats.clone(),
            self.cluster.clone(),
        )
    }

    pub fn state(&self) -> &LinkState {
        &self.state
    }
}

impl Bus for RedisBus {
    /// Never blocks: a state check and a bounded queue push. Not delivered locally here: this
    /// node's subscribers get it from Redis like every other node's, so exactly once.
    fn publish(
        &self,
        topic: &str,
        kind: MessageKind,
        payload: &[u8],
    ) -> Result<Accepted, PublishRefused> {
        if !self.state.publish_up.load(Ordering::Acquire) {
            self.stats.error(ErrorReason::Disconnected, 1);
            return Err(PublishRefused::Unavailable {
                reason: self.state.reason(),
            });
        }
        let outgoing = Outgoing {
            channel: channel(topic),
            envelope: envelope::encode(kind, envelope::unix_now_us(), payload),
            queued_at: Instant::now(),
        };
        // Counted before the push so the link thread's decrement never goes below zero.
        self.stats.queued.fetch_add(1, Ordering::Relaxed);
        match self.queue.try_send(outgoing) {
            Ok(()) => {
                self.hub.count_publish();
                Ok(Accepted::Queued)
            }
            Err(e) => {
                self.stats.queued.fetch_sub(1, Ordering::Relaxed);
                Err(match e {
                    TrySendError::Full(_) => {
                        self.stats.error(ErrorReason::QueueFull, 1);
                        PublishRefused::QueueFull {
                            max: self.settings.queue_len,
                        }
                    }
                    TrySendError::Disconnected(_) => {
                        self.stats.error(ErrorReason::Disconnected, 1);
                        PublishRefused::Unavailable {
                            reason: "the Redis link thread stopped".into(),
                        }
                    }
                })
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn bus(queue_len: usize) -> RedisBus {
        let settings = RedisSettings {
            address: RedisAddress {
                host: "127.0.0.1".into(),
                port: 1,
                username: None,
                password: None,
                cluster_seeds: Vec::new(),
            },
            queue_len,
            publish_timeout: Duration::from_secs(1),
            max_message_bytes: 1 << 20,
        };
        RedisBus::new(Arc::new(Hub::new(1)), settings, Arc::default())
    }

    #[test]
    fn refuses_while_down_and_past_the_queue_bound_and_counts() {
        let bus = bus(2);
        let err = bus.publish("a", MessageKind::Text, b"x").unwrap_err();
        assert_eq!(err.code(), "bus_unavailable");
        assert!(
            err.to_string().contains("not connected to Redis yet"),
            "{err}"
        );
        assert!(bus.state().ready().is_err());
        bus.state.publish_up.store(true, Ordering::Release);
        assert_eq!(
            bus.publish("a", MessageKind::Text, b"1"),
            Ok(Accepted::Queued)
        );
        assert_eq!(
            bus.publish("b", MessageKind::Binary, b"2"),
            Ok(Accepted::Queued)
        );
        let full = bus.publish("a", MessageKind::Text, b"3").unwrap_err();
        assert_eq!(full, PublishRefused::QueueFull { max: 2 });
        assert_eq!(bus.stats.errors(ErrorReason::Disconnected), 1);
        assert_eq!(bus.stats.errors(ErrorReason::QueueFull), 1);
        assert_eq!(bus.stats.queued.load(Ordering::Relaxed), 2);
        assert_eq!(bus.hub.publishes(), 2);
        // What waits is the channel and the envelope, in order.
        let receiver = bus.receiver.lock().unwrap().take().unwrap();
        let first = receiver.try_recv().unwrap();
        assert_eq!(first.channel, b"ringws:a");
        let env = envelope::decode(&first.envelope).unwrap();
        assert_eq!((env.kind, env.payload), (MessageKind::Text, &b"1"[..]));
        let second = receiver.try_recv().unwrap();
        assert_eq!(
            envelope::decode(&second.envelope).unwrap().kind,
            MessageKind::Binary
        );
    }
}
