//! The cross-core side of pub/sub: one bounded inbox per core, that core's waker, its
//! subscriber counts and its counters. The local [`Bus`].
//!
//! A publish is framed once; the hub hands an `Arc` of it to every core that has subscribers of
//! the topic (a lock-free `ArrayQueue` push) and wakes that core through its eventfd, which the
//! core's ring polls. The core delivers from its own registry in `on_wake`. Nothing on the
//! delivery path takes a lock.
//!
//! Subscriber counts (for routing, for the publish answer and for `GET /topics`) are a
//! `Mutex<HashMap>` per core: written by that core on subscribe and unsubscribe only, read by
//! publishers and the admin endpoint. A publish takes each core's lock once, briefly, to read one
//! count; a core never waits on it while delivering.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, OnceLock};
use std::time::Instant;

use crossbeam_queue::ArrayQueue;

use super::interest::Interest;
use crate::app::{PreparedFrame, Waker};
use crate::protocol::MessageKind;
use crate::stats::{Counter, Gauge};

/// Publishes each core's inbox holds before further publishes to that core are dropped.
pub const INBOX_CAPACITY: usize = 4096;

/// One accepted publish, shared by every core it is handed to.
#[derive(Debug)]
pub struct Published {
    pub topic: Box<str>,
    pub frame: PreparedFrame,
    /// When the publish was accepted (the start of the fan-out latency), on this node or on
    /// the origin node of a message from Redis; `None` for the bus's own control messages
    /// (gaps), which are not publishes.
    pub accepted_at: Option<Instant>,
}

/// What a publish reached.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct PublishOutcome {
    /// Subscribers (summed over cores) on cores the message was handed to.
    pub subscribers: usize,
    /// Subscribers on cores whose inbox was full: they will not get this message.
    pub dropped: usize,
}

/// What became of an accepted publish.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Accepted {
    /// Handed to this node's cores (the local bus).
    Delivered(PublishOutcome),
    /// Queued for a cross-node bus, which delivers it to every node (this one included) from
    /// there: who it reaches is not known here.
    Queued,
}

/// Why a publish was refused; nothing was queued or delivered. Each has a stable code.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum PublishRefused {
    #[error("the Redis bus is not connected ({reason}): retry later")]
    Unavailable { reason: String },
    #[error("{max} publishes are already waiting for Redis (bus_queue_size): retry later")]
    QueueFull { max: usize },
}

impl PublishRefused {
    /// The code an HTTP 503 and a client's error reply carry.
    pub fn code(&self) -> &'static str {
        match self {
            PublishRefused::Unavailable { .. } => "bus_unavailable",
            PublishRefused::QueueFull { .. } => "bus_queue_full",
        }
    }
}

/// Where publishes go: the local [`Hub`], or a cross-node bus ([`super::bus::RedisBus`]) that
/// forwards to every node and hands what it receives to the local hub. Called on reactor
/// threads (client publishes, and the admin listener on core 0): it must never block.
pub trait Bus: Send + Sync {
    fn publish(
        &self,
        topic: &str,
        kind: MessageKind,
        payload: &[u8],
    ) -> Result<Accepted, PublishRefused>;
}

/// Counters of one core. Written by that core's thread, except `dropped` (written by whichever
/// thread publishes, hence a real atomic add).
#[derive(Debug, Default)]
pub struct CoreCounters {
    pub deliveries: Counter,
    pub subscriptions: Gauge,
    pub bad_control_messages: Counter,
    /// Control messages over `max_control_message_size`, refused without parsing.
    pub oversized_control_messages: Counter,
    pub dropped: AtomicU64,
}

/// Keeps each core's slot on its own cache lines.
#[repr(align(128))]
struct CoreSlot {
    inbox: ArrayQueue<Arc<Published>>,
    /// Set by the publisher that wrote the eventfd, cleared by the core before it drains: one
    /// eventfd write per batch of publishes, not one per publish.
    wake_pending: AtomicBool,
    counts: Mutex<HashMap<Box<str>, u32>>,
    counters: CoreCounters,
}

/// The local bus: every core's inbox, waker, counts and counters.
pub struct Hub {
    cores: Vec<CoreSlot>,
    wakers: OnceLock<Vec<Waker>>,
    publishes: AtomicU64,
    /// Node-level topic interest: touched only when a core's count of a topic goes 0 <-> 1.
    interest: Mutex<Interest>,
    /// Woken when the node-level interest in a topic flips (the cross-node bus's link thread).
    interest_waker: OnceLock<Waker>,
}

impl Hub {
    pub fn new(cores: usize) -> Hub {
        assert!(cores > 0, "at least one core");
        Hub {
            cores: (0..cores)
                .map(|_| CoreSlot {
                    inbox: ArrayQueue::new(INBOX_CAPACITY),
                    wake_pending: AtomicBool::new(false),
                    counts: Mutex::new(HashMap::new()),
                    counters: CoreCounters::default(),
                })
                .collect(),
            wakers: OnceLock::new(),
            publishes: AtomicU64::new(0),
            interest: Mutex::new(Interest::default()),
            interest_waker: OnceLock::new(),
        }
    }

    /// Wakes `waker` whenever this node gets its first subscriber of a topic or loses its last
    /// (see [`Hub::take_interest_changes`]). Set once.
    pub fn watch_interest(&self, waker: Waker) {
        assert!(
            self.interest_waker.set(waker).is_ok(),
            "one interest watcher"
        );
    }

    /// The topics whose node-level interest flipped since the last call, each with whether the
    /// node now has subscribers of it.
    pub fn take_interest_changes(&self) -> Vec<(Box<str>, bool)> {
        let mut interest = lock(&self.interest);
        let changed = interest.take_changed();
        changed
            .into_iter()
            .map(|topic| {
                let wanted = interest.wants(&topic);
                (topic, wanted)
            })
            .collect()
    }

    /// Every topic this node has subscribers of.
    pub fn wanted_topics(&self) -> Vec<Box<str>> {
        lock(&self.interest).wanted()
    }

    /// Counts one accepted publish (`ringws_pubsub_publishes_total`), for a bus that does not
    /// go through [`Hub::fan_out`] on this node.
    pub fn count_publish(&self) {
        self.publishes.fetch_add(1, Ordering::Relaxed);
    }

    pub fn cores(&self) -> usize {
        self.cores.len()
    }

    /// Installs the wakers (one per core), once, before the cores start.
    pub fn set_wakers(&self, wakers: Vec<Waker>) {
        assert_eq!(wakers.len(), self.cores.len(), "one waker per core");
        assert!(self.wakers.set(wakers).is_ok(), "wakers are set once");
    }

    pub fn counters(&self, core: usize) -> &CoreCounters {
        &self.cores[core].counters
    }

    pub fn publishes(&self) -> u64 {
        self.publishes.load(Ordering::Relaxed)
    }

    /// Called by `core` when a topic's local subscriber count changes.
    pub fn set_count(&self, core: usize, topic: &str, local: usize) {
        let core_flipped = {
            let mut counts = lock(&self.cores[core].counts);
            if local == 0 {
                counts.remove(topic).is_some()
            } else if let Some(n) = counts.get_mut(topic) {
                *n = local as u32;
                false
            } else {
                counts.insert(topic.into(), local as u32);
                true
            }
        };
        // Only this core's 0 <-> 1 transitions reach the node-level table, so a subscribe to a
        // topic the core already serves takes no shared lock.
        if core_flipped && lock(&self.interest).core_changed(topic, local > 0) {
            if let Some(waker) = self.interest_waker.get() {
                waker.wake();
            }
        }
    }

    /// Subscribers of `topic` on each core.
    pub fn topic_counts(&self, topic: &str) -> Vec<usize> {
        self.cores
            .iter()
            .map(|c| lock(&c.counts).get(topic).map_or(0, |&n| n as usize))
            .collect()
    }

    /// Every topic with its subscribers summed across cores.
    pub fn all_counts(&self) -> HashMap<Box<str>, usize> {
        let mut all: HashMap<Box<str>, usize> = HashMap::new();
        for c in &self.cores {
            for (topic, &n) in lock(&c.counts).iter() {
                *all.entry(topic.clone()).or_default() += n as usize;
            }
        }
        all
    }

    /// Takes the next publish for `core` (called by that core only).
    pub fn pop(&self, core: usize) -> Option<Arc<Published>> {
        self.cores[core].inbox.pop()
    }

    /// True when `core`'s inbox holds publishes.
    pub fn has_pending(&self, core: usize) -> bool {
        !self.cores[core].inbox.is_empty()
    }

    /// Called by `core` at the start of each wake, before it drains its inbox, so a publish
    /// pushed after its last pop always writes the eventfd again.
    pub fn begin_drain(&self, core: usize) {
        self.cores[core].wake_pending.store(false, Ordering::SeqCst);
    }
}

impl Hub {
    /// Hands `frame` to every core with subscribers of `topic`, in one order for all cores when
    /// one thread calls it (the local publisher, or the Redis link's single reader).
    /// `accepted_at`: see [`Published::accepted_at`].
    pub fn fan_out(
        &self,
        topic: &str,
        frame: PreparedFrame,
        accepted_at: Option<Instant>,
    ) -> PublishOutcome {
        let mut outcome = PublishOutcome::default();
        let mut message: Option<Arc<Published>> = None;
        for (core, slot) in self.cores.iter().enumerate() {
            let local = lock(&slot.counts).get(topic).map_or(0, |&n| n as usize);
            if local == 0 {
                continue;
            }
            let message = message.get_or_insert_with(|| {
                Arc::new(Published {
                    topic: topic.into(),
                    frame: frame.clone(),
                    accepted_at,
                })
            });
            if slot.inbox.push(message.clone()).is_err() {
                slot.counters.dropped.fetch_add(1, Ordering::Relaxed);
                outcome.dropped += local;
                continue;
            }
            outcome.subscribers += local;
            // SeqCst pairs with `begin_drain`: either the core sees this push in its drain, or
            // this swap sees the cleared flag and writes the eventfd.
            if !slot.wake_pending.swap(true, Ordering::SeqCst) {
                if let Some(wakers) = self.wakers.get() {
                    wakers[core].wake();
                }
            }
        }
        outcome
    }
}

impl Bus for Hub {
    fn publish(
        &self,
        topic: &str,
        kind: MessageKind,
        payload: &[u8],
    ) -> Result<Accepted, PublishRefused> {
        let accepted_at = Instant::now();
        self.publishes.fetch_add(1, Ordering::Relaxed);
        let frame = PreparedFrame::new(kind, payload);
        Ok(Accepted::Delivered(self.fan_out(
            topic,
            frame,
            Some(accepted_at),
        )))
    }
}

/// A poisoned count table is still a valid table (each update is one insert or remove).
fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A local publish of `text`, with what it reached.
    fn publish(hub: &Hub, topic: &str, text: &str) -> PublishOutcome {
        match hub.publish(topic, MessageKind::Text, text.as_bytes()) {
            Ok(Accepted::Delivered(outcome)) => outcome,
            other => panic!("the local bus delivers: {other:?}"),
        }
    }

    #[test]
    fn hands_publishes_only_to_cores_with_subscribers_in_order() {
        let hub = Hub::new(3);
        hub.set_count(0, "a", 2);
        hub.set_count(2, "a", 5);
        hub.set_count(1, "b", 1);
        assert_eq!(
            publish(&hub, "a", "1"),
            PublishOutcome {
                subscribers: 7,
                dropped: 0
            }
        );
        publish(&hub, "a", "2");
        assert_eq!(publish(&hub, "zz", "x"), PublishOutcome::default());
        assert!(hub.pop(1).is_none(), "core 1 has no subscriber of a");
        for core in [0, 2] {
            let got: Vec<_> = std::iter::from_fn(|| hub.pop(core))
                .map(|p| p.frame.bytes()[2..].to_vec())
                .collect();
            assert_eq!(got, [b"1".to_vec(), b"2".to_vec()]);
        }
        assert_eq!(hub.publishes(), 3);
        assert_eq!(hub.topic_counts("a"), [2, 0, 5]);
        assert_eq!(hub.all_counts().get("a"), Some(&7));
        hub.set_count(2, "a", 0);
        assert_eq!(hub.topic_counts("a"), [2, 0, 0]);
    }

    #[test]
    fn a_full_inbox_drops_and_counts() {
        let hub = Hub::new(2);
        hub.set_count(0, "a", 1);
        hub.set_count(1, "a", 3);
        for _ in 0..INBOX_CAPACITY {
            hub.pop(0);
            publish(&hub, "a", "x");
        }
        let outcome = publish(&hub, "a", "y");
        assert_eq!(
            outcome,
            PublishOutcome {
                subscribers: 1,
                dropped: 3
            }
        );
        assert_eq!(hub.counters(1).dropped.load(Ordering::Relaxed), 1);
        assert_eq!(hub.counters(0).dropped.load(Ordering::Relaxed), 0);
    }
}

#[cfg(test)]
mod interest_tests {
    use super::*;

    #[test]
    fn node_interest_flips_on_the_first_and_last_core_and_wakes_the_watcher() {
        let hub = Hub::new(2);
        let fd = crate::sys::eventfd::eventfd().unwrap();
        hub.watch_interest(Waker { fd });
        let wakes = || {
            let mut v: u64 = 0;
            // SAFETY: reads 8 bytes into a valid u64 from the eventfd made above.
            let n = unsafe { libc::read(fd, (&mut v as *mut u64).cast(), 8) };
            if n == 8 {
                v
            } else {
                0
            }
        };
        hub.set_count(0, "a", 1);
        assert_eq!(wakes(), 1);
        hub.set_count(0, "a", 2);
        hub.set_count(1, "a", 1);
        assert_eq!(wakes(), 0, "the node already had a subscriber of a");
        assert_eq!(hub.take_interest_changes(), [("a".into(), true)]);
        hub.set_count(0, "a", 0);
        assert_eq!(wakes(), 0, "core 1 still has one");
        assert!(hub.take_interest_changes().is_empty());
        hub.set_count(1, "a", 0);
        assert_eq!(wakes(), 1);
        assert_eq!(hub.take_interest_changes(), [("a".into(), false)]);
        assert!(hub.wanted_topics().is_empty());
        // SAFETY: closes the eventfd made above, once.
        unsafe { libc::close(fd) };
    }
}
