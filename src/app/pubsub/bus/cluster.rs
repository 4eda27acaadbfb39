//! The Redis Cluster link (`bus = "redis-cluster://..."`): sharded pub/sub. A topic's channel
//! `ringws:<topic>` hashes to a slot ([`super::slot`]); its publishes are `SPUBLISH`ed on the
//! slot's master and its node subscription is an `SSUBSCRIBE` there. Two threads, as with a
//! standalone Redis, behind the same queue and [`LinkState`]:
//!
//! - the publish link keeps one connection per master, splits each batch from the queue by
//!   master and pipelines every master's `SPUBLISH`es (written to all masters, then read);
//! - the subscribe link keeps one connection per master holding the `SSUBSCRIBE`s of the
//!   channels in its slots, polled together with the interest eventfd.
//!
//! Slot moves and failovers: a `-MOVED` answer, a `sunsubscribe` the node did not ask for
//! (Redis sends one when a slot moves away), or a lost master connection make the link read
//! the topology again (`CLUSTER SLOTS`, at most every [`MIN_REFRESH_INTERVAL`], with back-off
//! while it fails), move the affected channels to their new master and, once it confirms, tell
//! their local subscribers `{"op":"gap",...}`. A connection to a node that is no longer a
//! master is closed rather than unsubscribed channel by channel: a replica receives its
//! master's sharded messages too, and a leftover subscription there would duplicate them.

use std::collections::{HashMap, HashSet};
use std::io;
use std::os::fd::AsRawFd;
use std::sync::atomic::Ordering;
use std::sync::mpsc::{Receiver, RecvTimeoutError};
use std::sync::Arc;
use std::time::{Duration, Instant};

use super::link::{
    announce_gap, deliver, drop_queued, update_connected, wait_readable, went_down, Backoff, Conn,
    LinkError,
};
use super::resp::{self, Value};
use super::slot::{slot, SLOTS};
use super::{channel, BusStats, ErrorReason, LinkState, Outgoing, RedisSettings};
use crate::app::pubsub::hub::Hub;
use crate::app::Waker;

/// Most publishes taken from the queue for one round of pipelined batches.
const MAX_BATCH: usize = 1024;
/// How often an idle publish link checks its connections (`PING` to every master).
const IDLE_PING: Duration = Duration::from_secs(1);
/// Shortest time between two topology reads by one link, so a burst of redirects or pushes
/// costs one `CLUSTER SLOTS`.
pub const MIN_REFRESH_INTERVAL: Duration = Duration::from_millis(200);
/// The subscribe link reads the topology at least this often, so a channel subscribed on a
/// stale view (a replica accepts `SSUBSCRIBE` too) is moved to its master in the end.
pub const PERIODIC_REFRESH: Duration = Duration::from_secs(5);
/// After Redis dropped a channel (`sunsubscribe`), it is not subscribed on the same node again
/// for this long unless the topology still says so then: views of the cluster that have not
/// heard of the move yet would send it straight back to a node that lost the slot.
const AVOID_AFTER_DROP: Duration = Duration::from_secs(5);

/// Which master serves each slot.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct Topology {
    /// Masters as `host:port`.
    masters: Vec<String>,
    /// Index into `masters` of each slot's master; `None` while no master serves it.
    slots: Vec<Option<u16>>,
}

impl Topology {
    /// Reads a `CLUSTER SLOTS` reply; `asked` (`host:port`) stands for a node announced without
    /// an address.
    pub(super) fn parse(reply: &Value, asked: &str) -> Result<Topology, String> {
        let Value::Array(Some(ranges)) = reply else {
            return Err(format!("CLUSTER SLOTS answered {reply:?}"));
        };
        let mut topology = Topology {
            masters: Vec::new(),
            slots: vec![None; SLOTS],
        };
        for range in ranges {
            let Value::Array(Some(items)) = range else {
                return Err("a CLUSTER SLOTS range is not an array".into());
            };
            let (Some(Value::Int(first)), Some(Value::Int(last)), Some(Value::Array(Some(node)))) =
                (items.first(), items.get(1), items.get(2))
            else {
                return Err("a CLUSTER SLOTS range is not [first, last, master, ...]".into());
            };
            let (Some(Value::Bulk(Some(host))), Some(Value::Int(port))) =
                (node.first(), node.get(1))
            else {
                return Err("a CLUSTER SLOTS master is not [host, port, ...]".into());
            };
            let port = u16::try_from(*port).map_err(|_| format!("port {port} out of range"))?;
            let host = String::from_utf8_lossy(host);
            let address = if host.is_empty() || host == "?" {
                let asked_host = asked.rsplit_once(':').map_or(asked, |(h, _)| h);
                format!("{asked_host}:{port}")
            } else {
                super::address::join_host_port(&host, port)
            };
            let (first, last) = match (usize::try_from(*first), usize::try_from(*last)) {
                (Ok(f), Ok(l)) if f <= l && l < SLOTS => (f, l),
                _ => return Err(format!("slot range {first}-{last} out of range")),
            };
            let index = topology.master_index(&address);
            for s in &mut topology.slots[first..=last] {
                *s = Some(index);
            }
        }
        Ok(topology)
    }

    fn master_index(&mut self, address: &str) -> u16 {
        match self.masters.iter().position(|m| m == address) {
            Some(i) => i as u16,
            None => {
                self.masters.push(address.to_owned());
                (self.masters.len() - 1) as u16
            }
        }
    }

    /// The master of `channel`'s slot.
    pub(super) fn master_of(&self, channel: &[u8]) -> Option<&str> {
        self.slots[usize::from(slot(channel))].map(|i| self.masters[usize::from(i)].as_str())
    }

    /// What a `-MOVED SLOT HOST:PORT` says, at once (Redis's own advice to clients): the full
    /// topology is read again soon after.
    fn apply_moved(&mut self, slot: u16, address: &str) {
        let index = self.master_index(address);
        if let Some(s) = self.slots.get_mut(usize::from(slot)) {
            *s = Some(index);
        }
    }

    fn is_master(&self, address: &str) -> bool {
        self.slots
            .iter()
            .flatten()
            .any(|&i| self.masters[usize::from(i)] == address)
    }
}

/// `-MOVED 534 10.0.0.1:7001` or `-ASK ...`: the slot and the node to go to.
pub(super) fn redirect(error: &str) -> Option<(u16, &str)> {
    let mut words = error.split_ascii_whitespace();
    if !matches!(words.next(), Some("MOVED" | "ASK")) {
        return None;
    }
    let slot = words
        .next()?
        .parse::<u16>()
        .ok()
        .filter(|&s| usize::from(s) < SLOTS)?;
    Some((slot, words.next()?))
}

/// Reads the topology from the first node that answers: the masters known so far, then the
/// configured seeds. Counts a successful read.
fn read_topology(
    settings: &RedisSettings,
    known: Option<&Topology>,
    stats: &BusStats,
) -> Result<Topology, LinkError> {
    let mut candidates: Vec<&str> = known
        .map(|t| t.masters.iter().map(String::as_str).collect())
        .unwrap_or_default();
    candidates.extend(settings.address.cluster_seeds.iter().map(String::as_str));
    let mut last = LinkError::lost("no cluster seed configured");
    let mut tried = HashSet::new();
    for target in candidates {
        if !tried.insert(target) {
            continue;
        }
        let result = Conn::open_to(settings, target).and_then(|mut conn| {
            conn.command(&[b"CLUSTER", b"SLOTS"])?;
            let reply = conn.read_value(Instant::now() + settings.publish_timeout)?;
            if let Value::Error(e) = &reply {
                return Err(LinkError::lost(format!("CLUSTER SLOTS on {target}: {e}")));
            }
            Topology::parse(&reply, target).map_err(LinkError::lost)
        });
        match result {
            Ok(topology) => {
                stats.topology_refreshes.fetch_add(1, Ordering::Relaxed);
                return Ok(topology);
            }
            Err(e) => last = e,
        }
    }
    Err(last)
}

/// Starts the cluster publish and subscribe links.
pub(super) fn spawn(
    hub: Arc<Hub>,
    settings: RedisSettings,
    receiver: Receiver<Outgoing>,
    state: Arc<LinkState>,
    stats: Arc<BusStats>,
) -> io::Result<()> {
    let fd = crate::sys::eventfd::eventfd()?;
    // The eventfd lives as long as the process: the subscribe link never ends.
    hub.watch_interest(Waker { fd });
    let (s, st, ss) = (settings.clone(), state.clone(), stats.clone());
    std::thread::Builder::new()
        .name("ringws-bus-pub".into())
        .spawn(move || publish_link(&s, &receiver, &st, &ss))?;
    std::thread::Builder::new()
        .name("ringws-bus-sub".into())
        .spawn(move || {
            SubscribeLink::new(&hub, &settings, fd, &state, &stats).run();
        })?;
    Ok(())
}

/// The publish side: a connection per master.
struct Publisher<'a> {
    settings: &'a RedisSettings,
    stats: &'a BusStats,
    topology: Option<Topology>,
    conns: HashMap<String, Conn>,
}

impl Publisher<'_> {
    /// Reads the topology and connects to every master (keeping the connections that still
    /// lead to one).
    fn connect_all(&mut self) -> Result<(), LinkError> {
        let topology = read_topology(self.settings, self.topology.as_ref(), self.stats)?;
        self.conns.retain(|address, _| topology.is_master(address));
        for master in &topology.masters {
            if topology.is_master(master) && !self.conns.contains_key(master) {
                let conn = Conn::open_to(self.settings, master)
                    .map_err(|e| LinkError::lost(format!("{master}: {}", e.message)))?;
                self.conns.insert(master.clone(), conn);
            }
        }
        self.topology = Some(topology);
        Ok(())
    }

    /// Sends `batch` (in order) to the slots' masters; returns the publishes Redis redirected,
    /// in order, or the first connection failure (after counting what it lost).
    fn send(&mut self, batch: Vec<Outgoing>) -> Result<Vec<Outgoing>, LinkError> {
        let Some(topology) = &self.topology else {
            self.stats
                .error(ErrorReason::Disconnected, batch.len() as u64);
            return Err(LinkError::lost("the cluster topology is unknown"));
        };
        // Per master, the publishes in queue order: one topic always goes to one master, so
        // its order holds.
        let mut groups: Vec<(String, Vec<Outgoing>)> = Vec::new();
        for m in batch {
            let Some(master) = topology.master_of(&m.channel) else {
                self.stats.error(ErrorReason::RedisError, 1);
                continue;
            };
            match groups.iter_mut().find(|(a, _)| a == master) {
                Some((_, group)) => group.push(m),
                None => groups.push((master.to_owned(), vec![m])),
            }
        }
        let deadline = Instant::now() + self.settings.publish_timeout;
        let mut failure = None;
        let mut written = Vec::with_capacity(groups.len());
        for (master, group) in groups {
            let mut out = Vec::new();
            for m in &group {
                resp::encode(&mut out, &[b"SPUBLISH", &m.channel, &m.envelope]);
            }
            let sent = match self.conns.get_mut(&master) {
                Some(conn) => conn.write(&out),
                None => Err(LinkError::lost(format!("no connection to {master}"))),
            };
            match sent {
                Ok(()) => written.push((master, group)),
                Err(e) => {
                    self.stats.error(e.reason, group.len() as u64);
                    failure.get_or_insert(with_master(&master, e));
                }
            }
        }
        let mut redirected = Vec::new();
        for (master, group) in written {
            let Some(conn) = self.conns.get_mut(&master) else {
                continue;
            };
            let total = group.len();
            for (answered, m) in group.into_iter().enumerate() {
                match conn.read_value(deadline) {
                    Ok(Value::Int(_)) => {
                        self.stats.messages_out.fetch_add(1, Ordering::Relaxed);
                    }
                    Ok(Value::Error(e)) if redirect(&e).is_some() => {
                        if let (Some((slot, to)), Some(t)) = (redirect(&e), self.topology.as_mut())
                        {
                            t.apply_moved(slot, to);
                        }
                        redirected.push(m);
                    }
                    Ok(Value::Error(e)) => {
                        self.stats.error(ErrorReason::RedisError, 1);
                        tracing::warn!(target: "ringws::bus", error = %e, master, "Redis refused an SPUBLISH");
                    }
                    Ok(other) => {
                        self.stats
                            .error(ErrorReason::ConnectionLost, (total - answered) as u64);
                        failure.get_or_insert(LinkError::lost(format!(
                            "{master}: SPUBLISH answered {other:?}"
                        )));
                        break;
                    }
                    Err(e) => {
                        self.stats.error(e.reason, (total - answered) as u64);
                        failure.get_or_insert(with_master(&master, e));
                        break;
                    }
                }
            }
        }
        match failure {
            Some(e) => {
                self.stats
                    .error(ErrorReason::ConnectionLost, redirected.len() as u64);
                Err(e)
            }
            None => Ok(redirected),
        }
    }

    /// Drains the queue until a connection fails.
    fn publish_until_lost(&mut self, receiver: &Receiver<Outgoing>) -> LinkError {
        let timeout = self.settings.publish_timeout;
        let mut last_io = Instant::now();
        let mut last_refresh = Instant::now();
        loop {
            let first = match receiver.recv_timeout(Duration::from_millis(50)) {
                Ok(first) => first,
                Err(RecvTimeoutError::Timeout) => {
                    if last_io.elapsed() >= IDLE_PING {
                        for (master, conn) in &mut self.conns {
                            if let Err(e) = conn.ping(Instant::now() + timeout) {
                                return with_master(master, e);
                            }
                        }
                        last_io = Instant::now();
                    }
                    continue;
                }
                Err(RecvTimeoutError::Disconnected) => {
                    return LinkError::lost("the publish queue closed");
                }
            };
            let mut batch = vec![first];
            while batch.len() < MAX_BATCH {
                match receiver.try_recv() {
                    Ok(next) => batch.push(next),
                    Err(_) => break,
                }
            }
            self.stats
                .queued
                .fetch_sub(batch.len() as u64, Ordering::Relaxed);
            let now = Instant::now();
            let before = batch.len();
            batch.retain(|m| now.duration_since(m.queued_at) <= timeout);
            self.stats
                .error(ErrorReason::Expired, (before - batch.len()) as u64);
            if batch.is_empty() {
                continue;
            }
            let redirected = match self.send(batch) {
                Ok(r) => r,
                Err(e) => return e,
            };
            last_io = Instant::now();
            if redirected.is_empty() {
                continue;
            }
            // A slot moved: the redirect already says where; connect to a new master, send
            // those publishes once more (in order, before anything queued after them), and
            // read the whole topology when it was not read just now.
            if last_refresh.elapsed() >= MIN_REFRESH_INTERVAL {
                last_refresh = Instant::now();
                let patched = self.topology.clone();
                if let Err(e) = self.connect_all() {
                    self.stats
                        .error(ErrorReason::ConnectionLost, redirected.len() as u64);
                    return e;
                }
                // The redirects are newer than a node's view that has not heard of them yet.
                if let (Some(p), Some(t)) = (patched, self.topology.as_mut()) {
                    for m in &redirected {
                        if let Some(to) = p.master_of(&m.channel) {
                            t.apply_moved(slot(&m.channel), to);
                        }
                    }
                }
            }
            if let Err(e) = self.connect_missing() {
                self.stats
                    .error(ErrorReason::ConnectionLost, redirected.len() as u64);
                return e;
            }
            match self.send(redirected) {
                Ok(again) => {
                    // Redirected twice in a row: the cluster is still moving; dropped.
                    self.stats
                        .error(ErrorReason::RedisError, again.len() as u64);
                }
                Err(e) => return e,
            }
        }
    }

    /// Connects to masters a redirect named.
    fn connect_missing(&mut self) -> Result<(), LinkError> {
        let Some(topology) = &self.topology else {
            return Ok(());
        };
        for master in &topology.masters {
            if topology.is_master(master) && !self.conns.contains_key(master) {
                let conn =
                    Conn::open_to(self.settings, master).map_err(|e| with_master(master, e))?;
                self.conns.insert(master.clone(), conn);
            }
        }
        Ok(())
    }
}

fn with_master(master: &str, e: LinkError) -> LinkError {
    LinkError {
        reason: e.reason,
        message: format!("{master}: {}", e.message),
    }
}

fn publish_link(
    settings: &RedisSettings,
    receiver: &Receiver<Outgoing>,
    state: &LinkState,
    stats: &BusStats,
) {
    let mut backoff = Backoff::new();
    let mut publisher = Publisher {
        settings,
        stats,
        topology: None,
        conns: HashMap::new(),
    };
    let mut connected_before = false;
    // True at start so that a cluster unreachable at start is logged once, like a loss.
    let mut was_up = true;
    loop {
        if let Err(e) = publisher.connect_all() {
            state.publish_up.store(false, Ordering::Release);
            went_down(state, stats, "publish", &e, was_up);
            was_up = false;
            drop_queued(receiver, stats, ErrorReason::ConnectionLost);
            std::thread::sleep(backoff.next_wait());
            continue;
        }
        backoff.reset();
        if connected_before {
            stats.publish_reconnects.fetch_add(1, Ordering::Relaxed);
        }
        connected_before = true;
        state.publish_up.store(true, Ordering::Release);
        update_connected(state, stats);
        tracing::info!(target: "ringws::bus", masters = publisher.conns.len(), "publish link connected to every Redis Cluster master");
        let err = publisher.publish_until_lost(receiver);
        state.publish_up.store(false, Ordering::Release);
        went_down(state, stats, "publish", &err, true);
        was_up = false;
        // Every connection is made again with the next topology: one that failed may be a
        // master that is gone, and the rest are cheap to remake.
        publisher.conns.clear();
        drop_queued(receiver, stats, ErrorReason::ConnectionLost);
        std::thread::sleep(backoff.next_wait());
    }
}

/// One subscribe connection to a master.
struct SubConn {
    conn: Conn,
    /// `SUNSUBSCRIBE`s sent and not yet confirmed, per topic: their confirmation is not a
    /// slot move.
    unsubscribing: HashMap<Box<str>, u32>,
}

/// The subscribe side: a connection per master holding its slots' channels.
struct SubscribeLink<'a> {
    hub: &'a Hub,
    settings: &'a RedisSettings,
    interest_fd: i32,
    state: &'a LinkState,
    stats: &'a BusStats,
    topology: Option<Topology>,
    conns: HashMap<String, SubConn>,
    /// Each topic subscribed (or being subscribed) in Redis, and on which master.
    held: HashMap<Box<str>, String>,
    /// Topics with local subscribers and no subscription in Redis yet.
    homeless: HashSet<Box<str>>,
    /// Topics whose subscribers get a gap message once Redis confirms their subscription.
    gap_pending: HashSet<Box<str>>,
    /// When to read the topology again, if it is to be read.
    refresh_at: Option<Instant>,
    /// Topics Redis dropped, with the node that dropped them and until when to avoid it.
    avoid: HashMap<Box<str>, (String, Instant)>,
    last_refresh: Option<Instant>,
    backoff: Backoff,
    connected_before: bool,
    was_up: bool,
}

impl<'a> SubscribeLink<'a> {
    fn new(
        hub: &'a Hub,
        settings: &'a RedisSettings,
        interest_fd: i32,
        state: &'a LinkState,
        stats: &'a BusStats,
    ) -> SubscribeLink<'a> {
        SubscribeLink {
            hub,
            settings,
            interest_fd,
            state,
            stats,
            topology: None,
            conns: HashMap::new(),
            held: HashMap::new(),
            homeless: HashSet::new(),
            gap_pending: HashSet::new(),
            refresh_at: Some(Instant::now()),
            avoid: HashMap::new(),
            last_refresh: None,
            backoff: Backoff::new(),
            connected_before: false,
            // True at start so that a cluster unreachable at start is logged once.
            was_up: true,
        }
    }

    fn run(mut self) {
        // Every topic wanted before the first connection may have missed messages.
        self.hub.take_interest_changes();
        for topic in self.hub.wanted_topics() {
            self.gap_pending.insert(topic.clone());
            self.homeless.insert(topic);
        }
        loop {
            if self.refresh_at.is_none()
                && self
                    .last_refresh
                    .is_some_and(|t| t.elapsed() >= PERIODIC_REFRESH)
            {
                self.schedule_refresh();
            }
            if self.refresh_at.is_some_and(|at| Instant::now() >= at) {
                self.refresh();
            }
            let addresses: Vec<String> = self.conns.keys().cloned().collect();
            let mut fds: Vec<i32> = addresses
                .iter()
                .filter_map(|a| self.conns.get(a).map(|c| c.conn.stream.as_raw_fd()))
                .collect();
            fds.push(self.interest_fd);
            let wait = self.refresh_at.map_or(Duration::from_secs(1), |at| {
                at.saturating_duration_since(Instant::now())
                    .min(Duration::from_secs(1))
            });
            let ready = match wait_readable(&fds, wait) {
                Ok(ready) => ready,
                Err(e) => {
                    tracing::warn!(target: "ringws::bus", error = %e, "poll failed");
                    std::thread::sleep(Duration::from_millis(100));
                    continue;
                }
            };
            if ready.last() == Some(&true) {
                crate::sys::eventfd::eventfd_drain(self.interest_fd);
                self.interest_changed();
            }
            for (address, readable) in addresses.iter().zip(&ready) {
                if *readable {
                    if let Err(e) = self.read_from(address) {
                        self.lose(address, &e);
                    }
                }
            }
        }
    }

    /// Asks for a topology read as soon as the rate limit allows, unless one is scheduled
    /// already (perhaps later, backing off after failures).
    fn schedule_refresh(&mut self) {
        if self.refresh_at.is_none() {
            let earliest = self
                .last_refresh
                .map_or_else(Instant::now, |t| t + MIN_REFRESH_INTERVAL);
            self.refresh_at = Some(earliest);
        }
    }

    fn set_up(&mut self, up: bool, why: Option<&LinkError>) {
        let was = self.state.subscribe_up.swap(up, Ordering::AcqRel);
        if up {
            self.backoff.reset();
            if !was {
                if self.connected_before {
                    self.stats
                        .subscribe_reconnects
                        .fetch_add(1, Ordering::Relaxed);
                }
                self.connected_before = true;
                tracing::info!(target: "ringws::bus", masters = self.conns.len(), "subscribe link connected to every Redis Cluster master it needs");
            }
            self.was_up = true;
            update_connected(self.state, self.stats);
        } else if let Some(e) = why {
            went_down(self.state, self.stats, "subscribe", e, self.was_up);
            self.was_up = false;
        }
    }

    /// Reads the topology and moves every channel to its master.
    fn refresh(&mut self) {
        self.refresh_at = None;
        self.last_refresh = Some(Instant::now());
        match read_topology(self.settings, self.topology.as_ref(), self.stats) {
            Ok(topology) => {
                self.topology = Some(topology);
                self.resync();
            }
            Err(e) => {
                self.set_up(false, Some(&e));
                self.refresh_at = Some(Instant::now() + self.backoff.next_wait());
            }
        }
    }

    /// After a topology change: closes connections to nodes that are no longer masters,
    /// unsubscribes channels whose slot moved, and subscribes every homeless channel on its
    /// master.
    fn resync(&mut self) {
        let Some(topology) = self.topology.clone() else {
            return;
        };
        let stale: Vec<String> = self
            .conns
            .keys()
            .filter(|a| !topology.is_master(a))
            .cloned()
            .collect();
        for address in stale {
            self.lose(&address, &LinkError::lost("no longer a master"));
        }
        let moved: Vec<(Box<str>, String)> = self
            .held
            .iter()
            .filter(|(topic, at)| topology.master_of(&channel(topic)) != Some(at.as_str()))
            .map(|(t, a)| (t.clone(), a.clone()))
            .collect();
        for (topic, from) in moved {
            self.held.remove(&topic);
            if let Some(sub) = self.conns.get_mut(&from) {
                *sub.unsubscribing.entry(topic.clone()).or_default() += 1;
                let _ = sub.conn.command(&[b"SUNSUBSCRIBE", &channel(&topic)]);
            }
            self.gap_pending.insert(topic.clone());
            self.homeless.insert(topic);
        }
        let homeless: Vec<Box<str>> = self.homeless.iter().cloned().collect();
        let mut failure = None;
        for topic in homeless {
            if let Err(e) = self.subscribe(&topic) {
                failure.get_or_insert(e);
            }
        }
        match failure {
            None => self.set_up(true, None),
            Some(e) => {
                self.set_up(false, Some(&e));
                self.refresh_at = Some(Instant::now() + self.backoff.next_wait());
            }
        }
    }

    /// Subscribes `topic` on its master (connecting to it when needed), or leaves it homeless.
    fn subscribe(&mut self, topic: &str) -> Result<(), LinkError> {
        let channel = channel(topic);
        let Some(master) = self
            .topology
            .as_ref()
            .and_then(|t| t.master_of(&channel))
            .map(str::to_owned)
        else {
            self.homeless.insert(topic.into());
            return Err(LinkError::lost(format!(
                "no master serves the slot of {}",
                String::from_utf8_lossy(&channel)
            )));
        };
        if let Some((dropped_by, until)) = self.avoid.get(topic) {
            if *dropped_by == master && Instant::now() < *until {
                // This view has not heard of the move yet: ask again shortly.
                self.homeless.insert(topic.into());
                self.schedule_refresh();
                return Ok(());
            }
            self.avoid.remove(topic);
        }
        if !self.conns.contains_key(&master) {
            match Conn::open_to(self.settings, &master) {
                Ok(conn) => {
                    // Read only when poll says the socket is readable: reads never wait.
                    if let Err(e) = conn.stream.set_read_timeout(None) {
                        self.homeless.insert(topic.into());
                        return Err(LinkError::io("a read", &e));
                    }
                    self.conns.insert(
                        master.clone(),
                        SubConn {
                            conn,
                            unsubscribing: HashMap::new(),
                        },
                    );
                }
                Err(e) => {
                    self.homeless.insert(topic.into());
                    return Err(with_master(&master, e));
                }
            }
        }
        let sent = match self.conns.get_mut(&master) {
            Some(sub) => sub.conn.command(&[b"SSUBSCRIBE", &channel]),
            None => Err(LinkError::lost("no connection")),
        };
        match sent {
            Ok(()) => {
                self.homeless.remove(topic);
                self.held.insert(topic.into(), master);
                Ok(())
            }
            Err(e) => {
                self.homeless.insert(topic.into());
                self.lose(&master, &e);
                Err(with_master(&master, e))
            }
        }
    }

    fn interest_changed(&mut self) {
        for (topic, wanted) in self.hub.take_interest_changes() {
            if wanted {
                if self.held.contains_key(&topic) || self.homeless.contains(&topic) {
                    continue;
                }
                if self.topology.is_none() || self.refresh_at.is_some() {
                    // Down or about to move channels: subscribed with the others, with a gap.
                    self.gap_pending.insert(topic.clone());
                    self.homeless.insert(topic);
                    continue;
                }
                if let Err(e) = self.subscribe(&topic) {
                    self.gap_pending.insert(topic);
                    self.set_up(false, Some(&e));
                    self.schedule_refresh();
                }
            } else {
                self.homeless.remove(&topic);
                self.gap_pending.remove(&topic);
                self.avoid.remove(&topic);
                if let Some(at) = self.held.remove(&topic) {
                    if let Some(sub) = self.conns.get_mut(&at) {
                        *sub.unsubscribing.entry(topic.clone()).or_default() += 1;
                        if let Err(e) = sub.conn.command(&[b"SUNSUBSCRIBE", &channel(&topic)]) {
                            self.lose(&at, &e);
                        }
                    }
                }
            }
        }
    }

    /// Reads what `address` sent and handles every complete push.
    fn read_from(&mut self, address: &str) -> Result<(), LinkError> {
        let Some(sub) = self.conns.get_mut(address) else {
            return Ok(());
        };
        match sub.conn.fill() {
            Ok(0) => return Err(LinkError::lost("Redis closed the connection")),
            Ok(_) => {}
            Err(e) if e.kind() == io::ErrorKind::Interrupted => return Ok(()),
            Err(e) => return Err(LinkError::io("a read", &e)),
        }
        loop {
            let value = match self.conns.get_mut(address) {
                Some(sub) => sub.conn.next_value()?,
                None => return Ok(()),
            };
            match value {
                None => return Ok(()),
                Some(value) => self.on_push(address, value)?,
            }
        }
    }

    fn on_push(&mut self, address: &str, value: Value) -> Result<(), LinkError> {
        let items = match value {
            Value::Array(Some(items)) => items,
            Value::Error(e) => {
                match redirect(&e) {
                    // An SSUBSCRIBE sent to the slot's former master: its channels there go
                    // to the named one.
                    Some((moved_slot, to)) => {
                        if let Some(t) = self.topology.as_mut() {
                            t.apply_moved(moved_slot, to);
                        }
                        let misplaced: Vec<Box<str>> = self
                            .held
                            .iter()
                            .filter(|(t, at)| *at == address && slot(&channel(t)) == moved_slot)
                            .map(|(t, _)| t.clone())
                            .collect();
                        for topic in misplaced {
                            self.held.remove(&topic);
                            self.gap_pending.insert(topic.clone());
                            self.homeless.insert(topic);
                        }
                        self.schedule_refresh();
                        return Ok(());
                    }
                    // Which command failed is unknown: start this master's channels afresh.
                    None => return Err(LinkError::lost(format!("Redis answered {e}"))),
                }
            }
            _ => return Ok(()),
        };
        let (kind, topic, payload) = super::push_parts(&items);
        let Some(topic) = topic else {
            return Ok(());
        };
        match kind {
            Some(b"smessage") => {
                if let Some(payload) = payload {
                    deliver(self.hub, self.stats, topic, payload);
                }
            }
            Some(b"ssubscribe") if self.gap_pending.remove(topic) => {
                announce_gap(self.hub, self.stats, topic);
            }
            Some(b"sunsubscribe") => {
                let asked = self.conns.get_mut(address).and_then(|sub| {
                    let n = sub.unsubscribing.get_mut(topic)?;
                    *n -= 1;
                    if *n == 0 {
                        sub.unsubscribing.remove(topic);
                    }
                    Some(())
                });
                let here = self.held.get(topic).is_some_and(|at| at == address);
                if asked.is_none() && here {
                    // Redis dropped it: the slot moved away from this master, or the master
                    // became a replica.
                    self.avoid.insert(
                        topic.into(),
                        (address.to_owned(), Instant::now() + AVOID_AFTER_DROP),
                    );
                    self.held.remove(topic);
                    self.gap_pending.insert(topic.into());
                    self.homeless.insert(topic.into());
                    self.schedule_refresh();
                }
            }
            _ => {}
        }
        Ok(())
    }

    /// Drops the connection to `address`: its channels need a new subscription, with a gap.
    fn lose(&mut self, address: &str, err: &LinkError) {
        if self.conns.remove(address).is_none() {
            return;
        }
        let orphans: Vec<Box<str>> = self
            .held
            .iter()
            .filter(|(_, at)| *at == address)
            .map(|(t, _)| t.clone())
            .collect();
        for topic in orphans {
            self.held.remove(&topic);
            self.gap_pending.insert(topic.clone());
            self.homeless.insert(topic);
        }
        let err = with_master(address, LinkError::lost(err.message.clone()));
        self.set_up(false, Some(&err));
        self.schedule_refresh();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn bulk(s: &str) -> Value {
        Value::Bulk(Some(s.as_bytes().to_vec()))
    }

    fn node(host: &str, port: i64) -> Value {
        Value::Array(Some(vec![bulk(host), Value::Int(port), bulk("id")]))
    }

    fn range(first: i64, last: i64, master: Value) -> Value {
        Value::Array(Some(vec![
            Value::Int(first),
            Value::Int(last),
            master,
            node("127.0.0.1", 9),
        ]))
    }

    #[test]
    fn reads_cluster_slots_and_routes_channels_by_slot() {
        let reply = Value::Array(Some(vec![
            range(0, 5460, node("127.0.0.1", 7001)),
            range(5461, 10922, node("", 7002)),
            range(10923, 16383, node("127.0.0.1", 7003)),
        ]));
        let mut t = Topology::parse(&reply, "10.0.0.9:7000").unwrap();
        // Slots from a real cluster: ringws:a 534, ringws:t2 7381, ringws:b 12917.
        assert_eq!(t.master_of(b"ringws:a"), Some("127.0.0.1:7001"));
        assert_eq!(
            t.master_of(b"ringws:t2"),
            Some("10.0.0.9:7002"),
            "no address: the asked host"
        );
        assert_eq!(t.master_of(b"ringws:b"), Some("127.0.0.1:7003"));
        assert!(t.is_master("127.0.0.1:7003") && !t.is_master("127.0.0.1:9"));
        t.apply_moved(534, "127.0.0.1:7003");
        assert_eq!(t.master_of(b"ringws:a"), Some("127.0.0.1:7003"));
        let partial = Value::Array(Some(vec![range(0, 10, node("h", 1))]));
        let t = Topology::parse(&partial, "h:1").unwrap();
        assert_eq!(t.master_of(b"ringws:a"), None, "a slot no master serves");
        for bad in [
            Value::Error("ERR This instance has cluster support disabled".into()),
            Value::Array(Some(vec![range(5, 16384, node("h", 1))])),
            Value::Array(Some(vec![Value::Int(1)])),
            Value::Array(Some(vec![range(0, 1, node("h", 70000))])),
        ] {
            assert!(Topology::parse(&bad, "h:1").is_err(), "{bad:?}");
        }
    }

    fn push(kind: &str, channel: &str, third: Value) -> Value {
        Value::Array(Some(vec![bulk(kind), bulk(channel), third]))
    }

    #[test]
    fn pushes_move_dropped_channels_and_announce_one_gap_on_resubscription() {
        let hub = Hub::new(1);
        hub.set_count(0, "a", 1);
        let settings = RedisSettings {
            address: "redis-cluster://127.0.0.1:1"
                .parse::<super::super::BusAddress>()
                .map_or_else(
                    |e| panic!("{e}"),
                    |b| match b {
                        super::super::BusAddress::Redis(r) => r,
                        other => panic!("{other:?}"),
                    },
                ),
            queue_len: 1,
            publish_timeout: Duration::from_secs(1),
            max_message_bytes: 1024,
        };
        let (state, stats) = (LinkState::new(), BusStats::default());
        let mut link = SubscribeLink::new(&hub, &settings, -1, &state, &stats);
        link.refresh_at = None;
        link.held.insert("a".into(), "m1:1".into());
        link.held.insert("b".into(), "m1:1".into());

        // A message on a held channel reaches the hub.
        let env = super::super::envelope::encode(
            crate::protocol::MessageKind::Text,
            super::super::envelope::unix_now_us(),
            b"hi",
        );
        link.on_push("m1:1", push("smessage", "ringws:a", Value::Bulk(Some(env))))
            .unwrap();
        assert_eq!(
            hub.pop(0).expect("the message").frame.bytes(),
            b"\x81\x02hi"
        );

        // A sunsubscribe from a node that does not hold the channel (the late confirmation of
        // an old subscription's end) is not a move.
        link.on_push("m2:1", push("sunsubscribe", "ringws:a", Value::Int(0)))
            .unwrap();
        assert_eq!(
            link.held.get("a").map(String::as_str),
            Some("m1:1"),
            "not from its node"
        );
        assert!(link.refresh_at.is_none());

        // Redis dropping a held channel: homeless, a gap pending, the node avoided, a refresh.
        link.on_push("m1:1", push("sunsubscribe", "ringws:a", Value::Int(0)))
            .unwrap();
        assert!(!link.held.contains_key("a") && link.homeless.contains("a"));
        assert!(link.gap_pending.contains("a"));
        assert_eq!(link.avoid.get("a").map(|(n, _)| n.as_str()), Some("m1:1"));
        assert!(link.refresh_at.is_some());

        // MOVED to an SSUBSCRIBE: the channels of that slot on that node move; others stay.
        link.on_push(
            "m1:1",
            Value::Error(format!("MOVED {} m3:1", slot(b"ringws:b"))),
        )
        .unwrap();
        assert!(link.homeless.contains("b") && !link.held.contains_key("b"));
        // Any other error drops the connection.
        assert!(link
            .on_push("m1:1", Value::Error("ERR unknown".into()))
            .is_err());

        // Once the new master confirms: one gap, then none for a second confirmation.
        for _ in 0..2 {
            link.on_push("m3:1", push("ssubscribe", "ringws:a", Value::Int(1)))
                .unwrap();
        }
        let gap = hub.pop(0).expect("a gap");
        assert_eq!(&gap.frame.bytes()[2..], br#"{"op":"gap","topic":"a"}"#);
        assert!(hub.pop(0).is_none(), "once");
        assert_eq!(stats.gaps.load(Ordering::Relaxed), 1);
    }

    #[test]
    fn reads_redirects() {
        assert_eq!(
            redirect("MOVED 534 127.0.0.1:7002"),
            Some((534, "127.0.0.1:7002"))
        );
        assert_eq!(redirect("ASK 1 h:1"), Some((1, "h:1")));
        assert_eq!(redirect("MOVED 16384 h:1"), None);
        assert_eq!(redirect("MOVED x h:1"), None);
        assert_eq!(redirect("ERR nope"), None);
        assert_eq!(redirect("MOVED 5"), None);
    }
}
