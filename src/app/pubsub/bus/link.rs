//! The two threads that talk to Redis: the publish link and the subscribe link. Each owns one
//! blocking TCP connection with timeouts (so a stalled Redis costs a bounded wait on this
//! thread, never on a reactor), and reconnects with jittered exponential back-off.

use std::collections::HashSet;
use std::io::{self, Read, Write};
use std::net::{TcpStream, ToSocketAddrs};
use std::os::fd::AsRawFd;
use std::sync::atomic::Ordering;
use std::sync::mpsc::{Receiver, RecvTimeoutError};
use std::sync::Arc;
use std::time::{Duration, Instant};

use super::resp::{self, Value};
use super::{envelope, BusStats, ErrorReason, LinkState, Outgoing, RedisSettings};
use crate::app::pubsub::control;
use crate::app::pubsub::hub::Hub;
use crate::app::{PreparedFrame, Waker};
use crate::protocol::MessageKind;

/// First wait before a reconnect; doubled after each failure up to [`MAX_BACKOFF`].
const MIN_BACKOFF: Duration = Duration::from_millis(100);
const MAX_BACKOFF: Duration = Duration::from_secs(5);
/// Most publishes written to Redis in one pipelined batch.
const MAX_BATCH: usize = 1024;
/// How often an idle publish link checks whether the subscribe link lost Redis.
const IDLE_CHECK: Duration = Duration::from_millis(50);
/// An idle publish link PINGs Redis this often, so a dead connection is found before a
/// publish is queued on it.
const IDLE_PING: Duration = Duration::from_secs(1);
/// Bytes read from a socket at once.
const READ_CHUNK_BYTES: usize = 64 << 10;
/// Buffers larger than this are freed once empty rather than kept for the next message.
const RETAINED_BUFFER_BYTES: usize = 1 << 20;
/// Most topics named in one SUBSCRIBE or UNSUBSCRIBE.
const MAX_TOPICS_PER_COMMAND: usize = 256;

/// Starts both link threads.
pub(super) fn spawn(
    hub: Arc<Hub>,
    settings: RedisSettings,
    receiver: Receiver<Outgoing>,
    state: Arc<LinkState>,
    stats: Arc<BusStats>,
    cluster: Arc<super::census::ClusterView>,
) -> io::Result<()> {
    let fd = crate::sys::eventfd::eventfd()?;
    // The eventfd lives as long as the process: the subscribe link never ends.
    hub.watch_interest(Waker { fd });
    let (h, s) = (hub.clone(), settings.clone());
    let key = super::census::node_key();
    std::thread::Builder::new()
        .name("ringws-bus-census".into())
        .spawn(move || super::census::census_link(&h, &s, &key, &cluster))?;
    let (s, st, ss) = (settings.clone(), state.clone(), stats.clone());
    std::thread::Builder::new()
        .name("ringws-bus-pub".into())
        .spawn(move || publish_link(&s, &receiver, &st, &ss))?;
    std::thread::Builder::new()
        .name("ringws-bus-sub".into())
        .spawn(move || subscribe_link(&hub, &settings, fd, &state, &stats))?;
    Ok(())
}

/// Why a connection ended, as `/readyz` and publish refusals say it.
#[derive(Debug)]
pub(super) struct LinkError {
    pub(super) reason: ErrorReason,
    pub(super) message: String,
}

impl LinkError {
    pub(super) fn lost(message: impl Into<String>) -> LinkError {
        LinkError {
            reason: ErrorReason::ConnectionLost,
            message: message.into(),
        }
    }

    /// `what` names the operation in other failures; a timeout is said the same way for all.
    pub(super) fn io(what: &str, e: &io::Error) -> LinkError {
        if matches!(
            e.kind(),
            io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut
        ) {
            LinkError {
                reason: ErrorReason::Timeout,
                message: "Redis did not answer within bus_publish_timeout".into(),
            }
        } else {
            LinkError::lost(format!("{what}: {e}"))
        }
    }
}

/// Jittered exponential back-off: each wait is drawn between half and all of the current step.
pub(super) struct Backoff {
    step: Duration,
    seed: u64,
}

impl Backoff {
    pub(super) fn new() -> Backoff {
        let seed = envelope::unix_now_us() ^ (u64::from(std::process::id()) << 32) | 1;
        Backoff {
            step: MIN_BACKOFF,
            seed,
        }
    }

    pub(super) fn reset(&mut self) {
        self.step = MIN_BACKOFF;
    }

    pub(super) fn next_wait(&mut self) -> Duration {
        // xorshift64: enough to keep nodes from reconnecting in lockstep.
        self.seed ^= self.seed << 13;
        self.seed ^= self.seed >> 7;
        self.seed ^= self.seed << 17;
        let step_us = self.step.as_micros() as u64;
        let wait = Duration::from_micros(step_us / 2 + self.seed % (step_us / 2 + 1));
        self.step = (self.step * 2).min(MAX_BACKOFF);
        wait
    }
}

/// One connection to Redis with its read buffer.
pub(super) struct Conn {
    pub(super) stream: TcpStream,
    buf: Vec<u8>,
    /// Start of the unread bytes in `buf`.
    start: usize,
    max_bulk: usize,
}

impl Conn {
    /// Connects, authenticates when the URL has a password, and checks Redis answers PING, all
    /// within `publish_timeout`: a Redis that accepts connections but is stalled is not "up".
    pub(super) fn open(settings: &RedisSettings) -> Result<Conn, LinkError> {
        Conn::open_to(settings, &settings.address.host_port())
    }

    /// As [`Conn::open`], to `target` (`host:port`, a cluster node) with the URL's credentials.
    pub(super) fn open_to(settings: &RedisSettings, target: &str) -> Result<Conn, LinkError> {
        let timeout = settings.publish_timeout;
        let addrs = target
            .to_socket_addrs()
            .map_err(|e| LinkError::lost(format!("cannot resolve {target}: {e}")))?;
        let mut last = LinkError::lost(format!("{target} resolves to no address"));
        for addr in addrs {
            match TcpStream::connect_timeout(&addr, timeout) {
                Ok(stream) => {
                    let mut conn = Conn {
                        stream,
                        buf: Vec::new(),
                        start: 0,
                        max_bulk: settings.max_message_bytes + envelope::HEADER_BYTES + 4096,
                    };
                    conn.setup(settings)?;
                    return Ok(conn);
                }
                Err(e) => last = LinkError::lost(format!("cannot connect to {addr}: {e}")),
            }
        }
        Err(last)
    }

    fn setup(&mut self, settings: &RedisSettings) -> Result<(), LinkError> {
        let timeout = settings.publish_timeout;
        let io = |e: io::Error| LinkError::io("the connection setup", &e);
        self.stream.set_nodelay(true).map_err(io)?;
        self.stream.set_write_timeout(Some(timeout)).map_err(io)?;
        // A peer that vanished without a reset is found in about 25 s, even on a quiet link.
        let keepalive = socket2::TcpKeepalive::new()
            .with_time(Duration::from_secs(10))
            .with_interval(Duration::from_secs(5))
            .with_retries(3);
        socket2::SockRef::from(&self.stream)
            .set_tcp_keepalive(&keepalive)
            .map_err(io)?;
        let deadline = Instant::now() + timeout;
        let address = &settings.address;
        if let Some(password) = &address.password {
            let mut auth: Vec<&[u8]> = vec![b"AUTH"];
            if let Some(user) = &address.username {
                auth.push(user.as_bytes());
            }
            auth.push(password.as_bytes());
            self.command(&auth)?;
            match self.read_value(deadline)? {
                Value::Simple(_) => {}
                Value::Error(e) => return Err(LinkError::lost(format!("AUTH refused: {e}"))),
                other => return Err(LinkError::lost(format!("AUTH answered {other:?}"))),
            }
        }
        self.ping(deadline)
    }

    pub(super) fn ping(&mut self, deadline: Instant) -> Result<(), LinkError> {
        self.command(&[b"PING"])?;
        match self.read_value(deadline)? {
            Value::Simple(_) => Ok(()),
            Value::Error(e) => Err(LinkError::lost(format!("PING answered {e}"))),
            other => Err(LinkError::lost(format!("PING answered {other:?}"))),
        }
    }

    pub(super) fn command(&mut self, args: &[&[u8]]) -> Result<(), LinkError> {
        let mut out = Vec::new();
        resp::encode(&mut out, args);
        self.write(&out)
    }

    pub(super) fn write(&mut self, bytes: &[u8]) -> Result<(), LinkError> {
        self.stream
            .write_all(bytes)
            .map_err(|e| LinkError::io("a write", &e))
    }

    /// The next complete value already read, if any.
    pub(super) fn next_value(&mut self) -> Result<Option<Value>, LinkError> {
        match resp::parse(&self.buf[self.start..], self.max_bulk) {
            Ok(Some((value, used))) => {
                self.start += used;
                if self.start == self.buf.len() {
                    self.buf.clear();
                    self.start = 0;
                    // A large message does not keep its buffer for the connection's life.
                    if self.buf.capacity() > RETAINED_BUFFER_BYTES {
                        self.buf = Vec::new();
                    }
                }
                Ok(Some(value))
            }
            Ok(None) => Ok(None),
            Err(e) => Err(LinkError::lost(format!("unreadable reply from Redis: {e}"))),
        }
    }

    /// Reads what the socket has (blocking up to its read timeout); `Ok(0)` is the peer's close.
    pub(super) fn fill(&mut self) -> io::Result<usize> {
        if self.start > 0 && self.start * 2 >= self.buf.len() {
            self.buf.drain(..self.start);
            self.start = 0;
        }
        let len = self.buf.len();
        self.buf.resize(len + READ_CHUNK_BYTES, 0);
        let n = self.stream.read(&mut self.buf[len..]);
        self.buf.truncate(len + *n.as_ref().unwrap_or(&0));
        n
    }

    /// The next value, waiting until `deadline` at most.
    pub(super) fn read_value(&mut self, deadline: Instant) -> Result<Value, LinkError> {
        loop {
            if let Some(value) = self.next_value()? {
                return Ok(value);
            }
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return Err(LinkError::io("a read", &io::ErrorKind::TimedOut.into()));
            }
            self.stream
                .set_read_timeout(Some(left))
                .map_err(|e| LinkError::io("a read", &e))?;
            match self.fill() {
                Ok(0) => return Err(LinkError::lost("Redis closed the connection")),
                Ok(_) => {}
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(LinkError::io("a read", &e)),
            }
        }
    }
}

/// Marks one side down, with why, for refusals and `/readyz`; logs the transition once.
pub(super) fn went_down(
    state: &LinkState,
    stats: &BusStats,
    side: &str,
    err: &LinkError,
    was_up: bool,
) {
    stats.connected.store(0, Ordering::Relaxed);
    state.set_reason(format!("{side} connection: {}", err.message));
    if was_up {
        tracing::warn!(target: "ringws::bus", side, reason = %err.message, "no connection to Redis; retrying with back-off");
    }
}

pub(super) fn update_connected(state: &LinkState, stats: &BusStats) {
    stats
        .connected
        .store(u64::from(state.ready().is_ok()), Ordering::Relaxed);
}

/// Drops every queued publish (the connection they were meant for is gone).
pub(super) fn drop_queued(receiver: &Receiver<Outgoing>, stats: &BusStats, reason: ErrorReason) {
    let mut n = 0;
    while receiver.try_recv().is_ok() {
        n += 1;
    }
    stats.queued.fetch_sub(n, Ordering::Relaxed);
    stats.error(reason, n);
}

fn publish_link(
    settings: &RedisSettings,
    receiver: &Receiver<Outgoing>,
    state: &LinkState,
    stats: &BusStats,
) {
    let mut backoff = Backoff::new();
    let mut connected_before = false;
    // True at start so that a Redis unreachable at start is logged once, like a loss.
    let mut was_up = true;
    loop {
        match Conn::open(settings) {
            Err(e) => {
                went_down(state, stats, "publish", &e, was_up);
                was_up = false;
                drop_queued(receiver, stats, ErrorReason::ConnectionLost);
                std::thread::sleep(backoff.next_wait());
            }
            Ok(mut conn) => {
                backoff.reset();
                if connected_before {
                    stats.publish_reconnects.fetch_add(1, Ordering::Relaxed);
                }
                connected_before = true;
                state.reset_publish.store(false, Ordering::Release);
                state.publish_up.store(true, Ordering::Release);
                update_connected(state, stats);
                tracing::info!(target: "ringws::bus", address = %settings.address.host_port(), "publish link connected to Redis");
                let err = publish_until_lost(&mut conn, settings, receiver, state, stats);
                state.publish_up.store(false, Ordering::Release);
                went_down(state, stats, "publish", &err, true);
                was_up = false;
                drop_queued(receiver, stats, ErrorReason::ConnectionLost);
                std::thread::sleep(backoff.next_wait());
            }
        }
    }
}

/// Drains the queue into pipelined PUBLISH batches until the connection fails.
fn publish_until_lost(
    conn: &mut Conn,
    settings: &RedisSettings,
    receiver: &Receiver<Outgoing>,
    state: &LinkState,
    stats: &BusStats,
) -> LinkError {
    let timeout = settings.publish_timeout;
    let mut last_io = Instant::now();
    let mut batch: Vec<Outgoing> = Vec::with_capacity(MAX_BATCH);
    let mut out = Vec::new();
    loop {
        if state.reset_publish.swap(false, Ordering::AcqRel) {
            return LinkError::lost("the subscribe connection to Redis was lost");
        }
        let first = match receiver.recv_timeout(IDLE_CHECK) {
            Ok(first) => first,
            Err(RecvTimeoutError::Timeout) => {
                if last_io.elapsed() >= IDLE_PING {
                    if let Err(e) = conn.ping(Instant::now() + timeout) {
                        return e;
                    }
                    last_io = Instant::now();
                }
                continue;
            }
            Err(RecvTimeoutError::Disconnected) => {
                return LinkError::lost("the publish queue closed");
            }
        };
        batch.clear();
        batch.push(first);
        while batch.len() < MAX_BATCH {
            match receiver.try_recv() {
                Ok(next) => batch.push(next),
                Err(_) => break,
            }
        }
        stats
            .queued
            .fetch_sub(batch.len() as u64, Ordering::Relaxed);
        // A publish that waited past the bound is dropped rather than sent late.
        let now = Instant::now();
        let before = batch.len();
        batch.retain(|m| now.duration_since(m.queued_at) <= timeout);
        stats.error(ErrorReason::Expired, (before - batch.len()) as u64);
        if batch.is_empty() {
            continue;
        }
        out.clear();
        for m in &batch {
            resp::encode(&mut out, &[b"PUBLISH", &m.channel, &m.envelope]);
        }
        let deadline = Instant::now() + timeout;
        if let Err(e) = conn.write(&out) {
            stats.error(e.reason, batch.len() as u64);
            return e;
        }
        for answered in 0..batch.len() {
            match conn.read_value(deadline) {
                Ok(Value::Int(_)) => {
                    stats.messages_out.fetch_add(1, Ordering::Relaxed);
                }
                Ok(Value::Error(e)) => {
                    stats.error(ErrorReason::RedisError, 1);
                    tracing::warn!(target: "ringws::bus", error = %e, "Redis refused a PUBLISH");
                }
                Ok(other) => {
                    stats.error(ErrorReason::ConnectionLost, (batch.len() - answered) as u64);
                    return LinkError::lost(format!("PUBLISH answered {other:?}"));
                }
                Err(e) => {
                    stats.error(e.reason, (batch.len() - answered) as u64);
                    return e;
                }
            }
        }
        last_io = Instant::now();
        if out.capacity() > RETAINED_BUFFER_BYTES {
            out = Vec::new();
        }
    }
}

fn subscribe_link(
    hub: &Hub,
    settings: &RedisSettings,
    interest_fd: i32,
    state: &LinkState,
    stats: &BusStats,
) {
    let mut backoff = Backoff::new();
    let mut connected_before = false;
    // True at start so that a Redis unreachable at start is logged once, like a loss.
    let mut was_up = true;
    loop {
        let err = match Conn::open(settings) {
            Err(e) => e,
            Ok(mut conn) => {
                backoff.reset();
                if connected_before {
                    stats.subscribe_reconnects.fetch_add(1, Ordering::Relaxed);
                }
                connected_before = true;
                state.subscribe_up.store(true, Ordering::Release);
                update_connected(state, stats);
                tracing::info!(target: "ringws::bus", address = %settings.address.host_port(), "subscribe link connected to Redis");
                was_up = true;
                let err = subscribe_until_lost(&mut conn, hub, interest_fd, stats);
                state.subscribe_up.store(false, Ordering::Release);
                // Both connections go to the same Redis: refuse publishes at once and have the
                // publish link reconnect, instead of accepting publishes Redis may never get.
                state.publish_up.store(false, Ordering::Release);
                state.reset_publish.store(true, Ordering::Release);
                err
            }
        };
        went_down(state, stats, "subscribe", &err, was_up);
        was_up = false;
        std::thread::sleep(backoff.next_wait());
    }
}

/// Subscribes every wanted topic, then delivers until the connection fails. Every topic
/// subscribed here at (re)connect gets a gap message once Redis confirms it: its subscribers
/// were without a Redis subscription for a while.
fn subscribe_until_lost(
    conn: &mut Conn,
    hub: &Hub,
    interest_fd: i32,
    stats: &BusStats,
) -> LinkError {
    // Changes first, then the full list: a topic that flips in between is in both, and the
    // comparison with `in_redis` makes the second look a no-op.
    hub.take_interest_changes();
    let wanted = hub.wanted_topics();
    let mut in_redis: HashSet<Box<str>> = HashSet::new();
    let mut gap_pending: HashSet<Box<str>> = wanted.iter().cloned().collect();
    if let Err(e) = send_subscriptions(conn, b"SUBSCRIBE", &wanted) {
        return e;
    }
    in_redis.extend(wanted);
    // The socket is read only when poll says it is readable: reads never wait.
    if let Err(e) = conn.stream.set_read_timeout(None) {
        return LinkError::io("a read", &e);
    }
    loop {
        match wait_readable(
            &[conn.stream.as_raw_fd(), interest_fd],
            Duration::from_secs(1),
        ) {
            Err(e) => return LinkError::lost(format!("poll: {e}")),
            Ok(ready) => {
                let (socket, interest) = (ready[0], ready[1]);
                if interest {
                    crate::sys::eventfd::eventfd_drain(interest_fd);
                    let (mut subscribe, mut unsubscribe) = (Vec::new(), Vec::new());
                    for (topic, wanted) in hub.take_interest_changes() {
                        if wanted && !in_redis.contains(&topic) {
                            in_redis.insert(topic.clone());
                            subscribe.push(topic);
                        } else if !wanted && in_redis.remove(&topic) {
                            gap_pending.remove(&topic);
                            unsubscribe.push(topic);
                        }
                    }
                    let sent = send_subscriptions(conn, b"SUBSCRIBE", &subscribe)
                        .and_then(|()| send_subscriptions(conn, b"UNSUBSCRIBE", &unsubscribe));
                    if let Err(e) = sent {
                        return e;
                    }
                }
                if socket {
                    match conn.fill() {
                        Ok(0) => return LinkError::lost("Redis closed the connection"),
                        Ok(_) => {}
                        Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                        Err(e) => return LinkError::io("a read", &e),
                    }
                    loop {
                        match conn.next_value() {
                            Err(e) => return e,
                            Ok(None) => break,
                            Ok(Some(value)) => {
                                if let Err(e) = on_push(value, hub, stats, &mut gap_pending) {
                                    return e;
                                }
                            }
                        }
                    }
                }
            }
        }
    }
}

fn send_subscriptions(conn: &mut Conn, verb: &[u8], topics: &[Box<str>]) -> Result<(), LinkError> {
    for chunk in topics.chunks(MAX_TOPICS_PER_COMMAND) {
        let channels: Vec<Vec<u8>> = chunk.iter().map(|t| super::channel(t)).collect();
        let mut args: Vec<&[u8]> = vec![verb];
        args.extend(channels.iter().map(Vec::as_slice));
        conn.command(&args)?;
    }
    Ok(())
}

/// Handles one push from the subscribe connection.
fn on_push(
    value: Value,
    hub: &Hub,
    stats: &BusStats,
    gap_pending: &mut HashSet<Box<str>>,
) -> Result<(), LinkError> {
    let items = match value {
        Value::Array(Some(items)) => items,
        Value::Error(e) => return Err(LinkError::lost(format!("Redis answered {e}"))),
        _ => return Ok(()),
    };
    let (kind, topic, payload) = super::push_parts(&items);
    match (kind, topic) {
        (Some(b"message"), Some(topic)) => {
            if let Some(payload) = payload {
                deliver(hub, stats, topic, payload);
            }
        }
        (Some(b"subscribe"), Some(topic)) if gap_pending.remove(topic) => {
            announce_gap(hub, stats, topic);
        }
        _ => {}
    }
    Ok(())
}

/// Hands a channel message to the cores with subscribers of `topic` (drops and counts what is
/// not a ringws envelope).
pub(super) fn deliver(hub: &Hub, stats: &BusStats, topic: &str, payload: &[u8]) {
    match envelope::decode(payload) {
        Ok(env) => {
            stats.messages_in.fetch_add(1, Ordering::Relaxed);
            let accepted = envelope::origin_instant(
                env.origin_unix_us,
                envelope::unix_now_us(),
                Instant::now(),
            );
            let frame = PreparedFrame::new(env.kind, env.payload);
            hub.fan_out(topic, frame, Some(accepted));
        }
        Err(e) => {
            stats.malformed.fetch_add(1, Ordering::Relaxed);
            tracing::debug!(target: "ringws::bus", topic, error = %e, "dropped a channel message that is not a ringws publish");
        }
    }
}

/// Tells the local subscribers of `topic` that messages may have been missed.
pub(super) fn announce_gap(hub: &Hub, stats: &BusStats, topic: &str) {
    let gap = PreparedFrame::new(MessageKind::Text, &control::gap(topic));
    hub.fan_out(topic, gap, None);
    stats.gaps.fetch_add(1, Ordering::Relaxed);
}

/// Waits (up to `timeout`, so nothing is ever stuck) until one of `fds` (sockets, the
/// interest eventfd) is readable; says which.
pub(super) fn wait_readable(fds: &[i32], timeout: Duration) -> io::Result<Vec<bool>> {
    let mut polled: Vec<libc::pollfd> = fds
        .iter()
        .map(|&fd| libc::pollfd {
            fd,
            events: libc::POLLIN,
            revents: 0,
        })
        .collect();
    let timeout_ms = i32::try_from(timeout.as_millis()).unwrap_or(i32::MAX);
    // SAFETY: `polled` is a valid array of `polled.len()` pollfd for the duration of the call.
    let n = unsafe {
        libc::poll(
            polled.as_mut_ptr(),
            polled.len() as libc::nfds_t,
            timeout_ms,
        )
    };
    if n < 0 {
        let e = io::Error::last_os_error();
        if e.kind() == io::ErrorKind::Interrupted {
            return Ok(vec![false; fds.len()]);
        }
        return Err(e);
    }
    let ready = |p: &libc::pollfd| p.revents & (libc::POLLIN | libc::POLLHUP | libc::POLLERR) != 0;
    Ok(polled.iter().map(ready).collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_grows_to_its_cap_with_jitter() {
        let mut b = Backoff::new();
        let waits: Vec<Duration> = (0..12).map(|_| b.next_wait()).collect();
        let mut step = MIN_BACKOFF;
        for w in &waits {
            assert!(
                *w >= step / 2 && *w <= step,
                "{w:?} within [{:?}, {step:?}]",
                step / 2
            );
            step = (step * 2).min(MAX_BACKOFF);
        }
        assert!(waits[11] >= MAX_BACKOFF / 2);
        b.reset();
        assert!(b.next_wait() <= MIN_BACKOFF);
    }

    #[test]
    fn a_gap_is_announced_once_per_resubscribed_topic_and_messages_reach_the_hub() {
        let hub = Hub::new(1);
        hub.set_count(0, "a", 1);
        let stats = BusStats::default();
        let mut pending: HashSet<Box<str>> = ["a".into()].into();
        let push = |kind: &str, channel: &str, third: Value| {
            Value::Array(Some(vec![
                Value::Bulk(Some(kind.as_bytes().to_vec())),
                Value::Bulk(Some(channel.as_bytes().to_vec())),
                third,
            ]))
        };
        for _ in 0..2 {
            on_push(
                push("subscribe", "ringws:a", Value::Int(1)),
                &hub,
                &stats,
                &mut pending,
            )
            .unwrap();
        }
        let gap = hub.pop(0).expect("a gap");
        assert_eq!(&gap.frame.bytes()[2..], br#"{"op":"gap","topic":"a"}"#);
        assert!(
            gap.accepted_at.is_none(),
            "not a publish: no latency sample"
        );
        assert!(hub.pop(0).is_none(), "once");
        let env = envelope::encode(MessageKind::Binary, envelope::unix_now_us(), b"hi");
        on_push(
            push("message", "ringws:a", Value::Bulk(Some(env))),
            &hub,
            &stats,
            &mut pending,
        )
        .unwrap();
        on_push(
            push("message", "ringws:a", Value::Bulk(Some(b"junk".to_vec()))),
            &hub,
            &stats,
            &mut pending,
        )
        .unwrap();
        on_push(
            push("message", "other:a", Value::Bulk(Some(b"x".to_vec()))),
            &hub,
            &stats,
            &mut pending,
        )
        .unwrap();
        let got = hub.pop(0).expect("the message");
        assert_eq!(got.frame.bytes(), b"\x82\x02hi");
        assert!(got.accepted_at.is_some());
        assert!(hub.pop(0).is_none());
        assert_eq!(stats.messages_in.load(Ordering::Relaxed), 1);
        assert_eq!(stats.malformed.load(Ordering::Relaxed), 1);
        assert_eq!(stats.gaps.load(Ordering::Relaxed), 1);
        assert!(on_push(Value::Error("NOAUTH".into()), &hub, &stats, &mut pending).is_err());
    }
}
