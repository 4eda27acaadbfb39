//! One core's subscription registry: topic → its local subscribers, connection → its topics.
//!
//! Both directions are plain vectors with back-indexes, so subscribing, unsubscribing and
//! dropping a closed connection are O(1) per subscription (a `swap_remove` and one index fix-up
//! on each side), and delivering walks one contiguous slice. Only connections with at least one
//! subscription have an entry: an idle connection that never subscribed costs nothing here.

use std::collections::HashMap;
use std::rc::Rc;

use slab::Slab;

use crate::app::ConnId;

/// A local subscriber of a topic, and where that topic sits in the connection's list.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Subscriber {
    pub conn: ConnId,
    /// Index of this subscription in the connection's membership list.
    slot: u32,
}

/// One subscription as seen from the connection: which topic, and its index in that topic's
/// subscriber list.
#[derive(Clone, Copy, Debug)]
struct Membership {
    topic: u32,
    index: u32,
}

#[derive(Debug)]
struct Topic {
    name: Rc<str>,
    subscribers: Vec<Subscriber>,
}

/// What `subscribe` did.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Subscribed {
    /// A new subscription; `local` subscribers of the topic on this core now.
    Added { local: usize },
    /// The connection was already subscribed: nothing changed (no duplicate delivery).
    Already,
}

/// What `unsubscribe` did.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Unsubscribed {
    /// Removed; `local` subscribers of the topic are left on this core.
    Removed { local: usize },
    /// The connection was not subscribed: nothing changed.
    NotSubscribed,
}

/// The connection already holds `max` subscriptions.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct TooManySubscriptions {
    pub max: usize,
}

/// The registry of one core. Not shared: it lives in that core's `CoreApp`.
#[derive(Debug, Default)]
pub struct Registry {
    by_name: HashMap<Rc<str>, u32>,
    topics: Slab<Topic>,
    conns: HashMap<ConnId, Vec<Membership>>,
    subscriptions: usize,
}

impl Registry {
    /// Subscribes `conn` to `name` (already validated), unless it holds `max_per_conn` already.
    pub fn subscribe(
        &mut self,
        conn: ConnId,
        name: &str,
        max_per_conn: usize,
    ) -> Result<Subscribed, TooManySubscriptions> {
        let topic_key = self.by_name.get(name).copied();
        let memberships = self.conns.get(&conn).map_or(&[][..], |m| m.as_slice());
        if let Some(key) = topic_key {
            if memberships.iter().any(|m| m.topic == key) {
                return Ok(Subscribed::Already);
            }
        }
        if memberships.len() >= max_per_conn {
            return Err(TooManySubscriptions { max: max_per_conn });
        }
        let key = match topic_key {
            Some(key) => key,
            None => {
                let name: Rc<str> = Rc::from(name);
                let key = u32::try_from(self.topics.insert(Topic {
                    name: name.clone(),
                    subscribers: Vec::new(),
                }))
                .expect("fewer than 2^32 topics per core");
                self.by_name.insert(name, key);
                key
            }
        };
        let memberships = self.conns.entry(conn).or_default();
        let topic = &mut self.topics[key as usize];
        let slot = memberships.len() as u32;
        memberships.push(Membership {
            topic: key,
            index: topic.subscribers.len() as u32,
        });
        topic.subscribers.push(Subscriber { conn, slot });
        self.subscriptions += 1;
        Ok(Subscribed::Added {
            local: topic.subscribers.len(),
        })
    }

    /// Removes `conn`'s subscription to `name`, if it has one.
    pub fn unsubscribe(&mut self, conn: ConnId, name: &str) -> Unsubscribed {
        let Some(&key) = self.by_name.get(name) else {
            return Unsubscribed::NotSubscribed;
        };
        let Some(memberships) = self.conns.get(&conn) else {
            return Unsubscribed::NotSubscribed;
        };
        let Some(slot) = memberships.iter().position(|m| m.topic == key) else {
            return Unsubscribed::NotSubscribed;
        };
        let local = self.remove_membership(conn, slot);
        if self.conns.get(&conn).is_some_and(|m| m.is_empty()) {
            self.conns.remove(&conn);
        }
        Unsubscribed::Removed { local }
    }

    /// Drops every subscription of a closed connection; calls `changed(topic, local_left)` for
    /// each topic it left.
    pub fn remove_conn(&mut self, conn: ConnId, mut changed: impl FnMut(&str, usize)) {
        let Some(mut count) = self.conns.get(&conn).map(|m| m.len()) else {
            return;
        };
        while count > 0 {
            count -= 1;
            let topic = self.conns[&conn][count].topic;
            let name = self.topics[topic as usize].name.clone();
            let local = self.remove_membership(conn, count);
            changed(&name, local);
        }
        self.conns.remove(&conn);
    }

    /// Removes membership `slot` of `conn` from both sides; returns the topic's local
    /// subscribers left. Frees the topic when it has none.
    fn remove_membership(&mut self, conn: ConnId, slot: usize) -> usize {
        let memberships = self.conns.get_mut(&conn).expect("conn has memberships");
        let m = memberships.swap_remove(slot);
        if let Some(moved) = memberships.get(slot) {
            // The connection's last membership now sits at `slot`: fix its back-index.
            self.topics[moved.topic as usize].subscribers[moved.index as usize].slot = slot as u32;
        }
        let topic = &mut self.topics[m.topic as usize];
        let removed = topic.subscribers.swap_remove(m.index as usize);
        debug_assert_eq!(removed.conn, conn);
        if let Some(moved) = topic.subscribers.get(m.index as usize).copied() {
            // The topic's last subscriber now sits at `m.index`: fix its back-index.
            self.conns
                .get_mut(&moved.conn)
                .expect("subscriber has memberships")[moved.slot as usize]
                .index = m.index;
        }
        self.subscriptions -= 1;
        let local = topic.subscribers.len();
        if local == 0 {
            let topic = self.topics.remove(m.topic as usize);
            self.by_name.remove(&topic.name);
        }
        local
    }

    /// The local subscribers of `name` (empty when there are none).
    pub fn subscribers(&self, name: &str) -> &[Subscriber] {
        match self.by_name.get(name) {
            Some(&key) => &self.topics[key as usize].subscribers,
            None => &[],
        }
    }

    /// Subscriptions held by `conn`.
    pub fn subscription_count(&self, conn: ConnId) -> usize {
        self.conns.get(&conn).map_or(0, |m| m.len())
    }

    /// Subscriptions on this core (sum over connections).
    pub fn subscriptions(&self) -> usize {
        self.subscriptions
    }

    /// Topics with at least one local subscriber.
    pub fn topic_count(&self) -> usize {
        self.topics.len()
    }

    /// Connections with at least one subscription.
    pub fn subscribed_conns(&self) -> usize {
        self.conns.len()
    }

    /// Checks every back-index (tests and debug builds).
    #[cfg(test)]
    fn check(&self) {
        let mut total = 0;
        for (key, topic) in &self.topics {
            assert!(!topic.subscribers.is_empty(), "empty topics are freed");
            assert_eq!(self.by_name[&topic.name], key as u32);
            for (i, s) in topic.subscribers.iter().enumerate() {
                let m = self.conns[&s.conn][s.slot as usize];
                assert_eq!((m.topic, m.index), (key as u32, i as u32));
            }
            total += topic.subscribers.len();
        }
        for (conn, ms) in &self.conns {
            assert!(
                !ms.is_empty(),
                "connections without subscriptions have no entry"
            );
            for (slot, m) in ms.iter().enumerate() {
                let s = self.topics[m.topic as usize].subscribers[m.index as usize];
                assert_eq!((s.conn, s.slot), (*conn, slot as u32));
            }
        }
        assert_eq!(total, self.subscriptions);
        assert_eq!(self.by_name.len(), self.topics.len());
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn conn(key: u32) -> ConnId {
        ConnId { key, generation: 1 }
    }

    fn subs(r: &Registry, name: &str) -> Vec<u32> {
        let mut v: Vec<u32> = r.subscribers(name).iter().map(|s| s.conn.key).collect();
        v.sort();
        v
    }

    #[test]
    fn subscribe_is_idempotent_and_capped() {
        let mut r = Registry::default();
        assert_eq!(
            r.subscribe(conn(1), "a", 2),
            Ok(Subscribed::Added { local: 1 })
        );
        assert_eq!(r.subscribe(conn(1), "a", 2), Ok(Subscribed::Already));
        assert_eq!(
            r.subscribe(conn(2), "a", 2),
            Ok(Subscribed::Added { local: 2 })
        );
        assert_eq!(
            r.subscribe(conn(1), "b", 2),
            Ok(Subscribed::Added { local: 1 })
        );
        assert_eq!(
            r.subscribe(conn(1), "c", 2),
            Err(TooManySubscriptions { max: 2 })
        );
        assert_eq!(
            r.subscribe(conn(1), "a", 2),
            Ok(Subscribed::Already),
            "re-subscribing at the cap is still fine"
        );
        assert_eq!(subs(&r, "a"), [1, 2]);
        assert_eq!(subs(&r, "c"), Vec::<u32>::new());
        assert_eq!((r.subscriptions(), r.topic_count()), (3, 2));
        r.check();
    }

    #[test]
    fn unsubscribe_frees_empty_topics_and_connections() {
        let mut r = Registry::default();
        r.subscribe(conn(1), "a", 8).unwrap();
        r.subscribe(conn(2), "a", 8).unwrap();
        assert_eq!(
            r.unsubscribe(conn(3), "a"),
            Unsubscribed::NotSubscribed,
            "not a subscriber"
        );
        assert_eq!(
            r.unsubscribe(conn(1), "zz"),
            Unsubscribed::NotSubscribed,
            "unknown topic"
        );
        assert_eq!(
            r.unsubscribe(conn(1), "a"),
            Unsubscribed::Removed { local: 1 }
        );
        assert_eq!(r.unsubscribe(conn(1), "a"), Unsubscribed::NotSubscribed);
        assert_eq!(r.subscribed_conns(), 1);
        assert_eq!(
            r.unsubscribe(conn(2), "a"),
            Unsubscribed::Removed { local: 0 }
        );
        assert_eq!((r.topic_count(), r.subscribed_conns()), (0, 0));
        r.check();
    }

    #[test]
    fn remove_conn_reports_each_topic_left() {
        let mut r = Registry::default();
        for t in ["a", "b", "c"] {
            r.subscribe(conn(1), t, 8).unwrap();
        }
        r.subscribe(conn(2), "b", 8).unwrap();
        let mut changed = Vec::new();
        r.remove_conn(conn(1), |t, n| changed.push((t.to_string(), n)));
        changed.sort();
        assert_eq!(changed, [("a".into(), 0), ("b".into(), 1), ("c".into(), 0)]);
        assert_eq!(subs(&r, "b"), [2]);
        r.remove_conn(conn(9), |_, _| panic!("never subscribed"));
        r.check();
    }

    /// Random operations against a simple model, checking every back-index after each step.
    #[test]
    fn matches_a_model_under_random_operations() {
        use std::collections::BTreeSet;
        let mut r = Registry::default();
        let mut model: BTreeSet<(u32, u32)> = BTreeSet::new(); // (topic, conn)
        let mut seed = 0x2545_f491_4f6c_dd1du64;
        let mut next = |n: u64| {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            (seed % n) as u32
        };
        let name = |t: u32| format!("t{t}");
        for _ in 0..20_000 {
            let (op, c, t) = (next(10), next(40), next(12));
            match op {
                0..=5 => {
                    let held = model.iter().filter(|(_, mc)| *mc == c).count();
                    let result = r.subscribe(conn(c), &name(t), 6);
                    if model.contains(&(t, c)) {
                        assert_eq!(result, Ok(Subscribed::Already));
                    } else if held >= 6 {
                        assert_eq!(result, Err(TooManySubscriptions { max: 6 }));
                    } else {
                        model.insert((t, c));
                        let local = model.iter().filter(|(mt, _)| *mt == t).count();
                        assert_eq!(result, Ok(Subscribed::Added { local }));
                    }
                }
                6..=8 => {
                    let result = r.unsubscribe(conn(c), &name(t));
                    if model.remove(&(t, c)) {
                        let local = model.iter().filter(|(mt, _)| *mt == t).count();
                        assert_eq!(result, Unsubscribed::Removed { local });
                    } else {
                        assert_eq!(result, Unsubscribed::NotSubscribed);
                    }
                }
                _ => {
                    r.remove_conn(conn(c), |_, _| {});
                    model.retain(|(_, mc)| *mc != c);
                }
            }
            r.check();
            assert_eq!(r.subscriptions(), model.len());
        }
        for t in 0..12 {
            let want: Vec<u32> = model
                .iter()
                .filter(|(mt, _)| *mt == t)
                .map(|(_, c)| *c)
                .collect();
            assert_eq!(subs(&r, &name(t)), want);
        }
    }
}
