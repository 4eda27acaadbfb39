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

use crate::app::{PreparedFrame, Waker};
use crate::stats::{Counter, Gauge};

/// Publishes each core's inbox holds before further publishes to that core are dropped.
pub const INBOX_CAPACITY: usize = 4096;

/// One accepted publish, shared by every core it is handed to.
#[derive(Debug)]
pub struct Published {
    pub topic: Box<str>,
    pub frame: PreparedFrame,
    /// When the publish was accepted (the start of the fan-out latency).
    pub accepted_at: Instant,
}

/// What a publish reached.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct PublishOutcome {
    /// Subscribers (summed over cores) on cores the message was handed to.
    pub subscribers: usize,
    /// Subscribers on cores whose inbox was full: they will not get this message.
    pub dropped: usize,
}

/// Where publishes go. The local [`Hub`] is the one implementation; a cross-node bus (for
/// example Redis pub/sub) would implement this too, forwarding to other nodes and to the local
/// hub, without touching the reactor or the apps' per-core code.
pub trait Bus: Send + Sync {
    fn publish(&self, topic: &str, frame: PreparedFrame) -> PublishOutcome;
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
        }
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
        let mut counts = lock(&self.cores[core].counts);
        if local == 0 {
            counts.remove(topic);
        } else if let Some(n) = counts.get_mut(topic) {
            *n = local as u32;
        } else {
            counts.insert(topic.into(), local as u32);
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

impl Bus for Hub {
    fn publish(&self, topic: &str, frame: PreparedFrame) -> PublishOutcome {
        self.publishes.fetch_add(1, Ordering::Relaxed);
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
                    accepted_at: Instant::now(),
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

/// A poisoned count table is still a valid table (each update is one insert or remove).
fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::protocol::MessageKind;

    fn frame(text: &str) -> PreparedFrame {
        PreparedFrame::new(MessageKind::Text, text.as_bytes())
    }

    #[test]
    fn hands_publishes_only_to_cores_with_subscribers_in_order() {
        let hub = Hub::new(3);
        hub.set_count(0, "a", 2);
        hub.set_count(2, "a", 5);
        hub.set_count(1, "b", 1);
        assert_eq!(
            hub.publish("a", frame("1")),
            PublishOutcome {
                subscribers: 7,
                dropped: 0
            }
        );
        hub.publish("a", frame("2"));
        assert_eq!(hub.publish("zz", frame("x")), PublishOutcome::default());
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
            hub.publish("a", frame("x"));
        }
        let outcome = hub.publish("a", frame("y"));
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
