//! The subscribers of `bench fanout`: each one's socket and order check, and the receiver
//! threads that read them and stamp when a message has reached all of a node's subscribers.

use std::net::{IpAddr, SocketAddr, TcpStream};
use std::os::fd::AsRawFd;
use std::sync::atomic::Ordering;
use std::time::Duration;

use super::{Failure, Progress};
use crate::bench::receiver::Receiver;
use crate::protocol::reader::{Event, Limits};
use crate::protocol::MessageKind;
use crate::sys::epoll::{event_parts, Epoll, NO_EVENT};
use crate::sys::socket::{self, IoResult};

/// Opens one subscriber: connect (from `source`), upgrade, check the 101.
/// `deflate`: offer permessage-deflate and require it.
pub(super) fn subscribe(
    node: usize,
    server: SocketAddr,
    host: &str,
    source: Option<IpAddr>,
    path: &str,
    random: [u8; 16],
    deflate: bool,
) -> Result<Sub, String> {
    let up = crate::bench::blocking::upgrade(
        server,
        source,
        host,
        path,
        random,
        Duration::from_secs(10),
        deflate,
    )?;
    if deflate && up.deflate.is_none() {
        return Err(DEFLATE_DECLINED.to_owned());
    }
    up.stream.set_nonblocking(true).map_err(|e| e.to_string())?;
    let mut order = Order::default();
    order.rx.set_deflate(deflate);
    Ok(Sub {
        node,
        stream: up.stream,
        order,
        early: up.early,
    })
}

/// Why `--deflate` stops the run when a subscriber's 101 has no permessage-deflate.
pub(super) const DEFLATE_DECLINED: &str =
    "the server did not accept permessage-deflate, which --deflate \
     offers and requires. Is it running with `--compression on`? (ringws declines compression \
     unless told to; docs/compression.md)";

/// One subscriber: its socket, the frames it received with the 101, and its order check.
pub(super) struct Sub {
    /// Which `--url` it connected to.
    node: usize,
    stream: TcpStream,
    /// Frames that came in the same read as the 101.
    early: Vec<u8>,
    order: Order,
}

/// A subscriber's frames and the sequence numbers they carry.
struct Order {
    rx: Receiver,
    next_seq: u64,
    /// The server broke the protocol: nothing more is read from it.
    failed: bool,
}

impl Default for Order {
    fn default() -> Order {
        Order {
            rx: Receiver::new(Limits::default()),
            next_seq: 0,
            failed: false,
        }
    }
}

impl Order {
    /// Reads the messages in `bytes` (one read's worth): `on_msg(seq, in_order)` for each one.
    /// A message too short for a sequence number counts as `on_error`, as does a frame that
    /// breaks RFC 6455 (the subscriber is then given up).
    fn feed(&mut self, bytes: &mut [u8], on_msg: &mut dyn FnMut(u64, bool), on_error: &dyn Fn()) {
        if self.failed {
            return;
        }
        let mut pos = 0;
        loop {
            match self.rx.next(bytes, &mut pos) {
                Ok(None) => return,
                // A Redis-bus node that (re)subscribes a topic tells its subscribers that
                // messages may have been missed (docs/pubsub.md): that is the server's control
                // message, not a publish; a publish the run missed shows as a missing delivery.
                Ok(Some(Event::Message(MessageKind::Text, payload)))
                    if payload.starts_with(GAP_PREFIX) => {}
                Ok(Some(Event::Message(_, payload))) => match payload.first_chunk::<8>() {
                    Some(seq) => {
                        let seq = u64::from_le_bytes(*seq);
                        on_msg(seq, seq == self.next_seq);
                        self.next_seq = seq + 1;
                    }
                    None => on_error(),
                },
                // The server's pings and close are not answered: a run ends before either matters.
                Ok(Some(_)) => {}
                Err(_) => {
                    self.failed = true;
                    return on_error();
                }
            }
        }
    }
}

/// How a pub/sub gap message starts (`{"op":"gap","topic":...}`).
const GAP_PREFIX: &[u8] = br#"{"op":"gap""#;

/// How long a receiver waits for readiness before it checks the stop flag again.
const WAIT_NS: u64 = 50_000_000;

/// Reads `subs` until `progress.stop`. Message `seq` is stamped in
/// `progress.done_at[thread * nodes + node][seq]` when every subscriber of this thread on that
/// node has it (1 for a node this thread has none of), and counted per node in
/// `progress.delivered` when the thread stops.
pub(super) fn receive(
    thread: usize,
    nodes: usize,
    mut subs: Vec<Sub>,
    cpu: Option<usize>,
    total_msgs: usize,
    progress: &Progress,
) {
    if let Some(cpu) = cpu {
        core_affinity::set_for_current(core_affinity::CoreId { id: cpu });
    }
    let mut per_node = vec![0u32; nodes];
    for s in &subs {
        per_node[s.node] += 1;
    }
    for (node, &n) in per_node.iter().enumerate() {
        if n == 0 {
            for at in &progress.done_at[thread * nodes + node] {
                at.store(1, Ordering::Release);
            }
        }
    }
    // Per node, per message: how many of this thread's subscribers on the node have it.
    let mut got = vec![0u32; nodes * total_msgs];
    let mut delivered = vec![0u64; nodes];
    let error = || progress.failed(Failure::Invalid);
    let mut on_msg = |node: usize, seq: u64, ok: bool| {
        if !ok {
            progress.failed(Failure::OutOfOrder);
        }
        if seq as usize >= total_msgs {
            let _ = progress.first_not_ours.compare_exchange(
                0,
                seq,
                Ordering::Relaxed,
                Ordering::Relaxed,
            );
            return progress.failed(Failure::NotOurs);
        }
        delivered[node] += 1;
        let count = &mut got[node * total_msgs + seq as usize];
        *count += 1;
        if *count == per_node[node] {
            let at = progress.epoch.elapsed().as_nanos() as u64;
            progress.done_at[thread * nodes + node][seq as usize]
                .store(at.max(1), Ordering::Release);
        }
    };
    let ep = Epoll::new().expect("epoll_create1");
    for (i, s) in subs.iter_mut().enumerate() {
        let mut early = std::mem::take(&mut s.early);
        let node = s.node;
        s.order
            .feed(&mut early, &mut |seq, ok| on_msg(node, seq, ok), &error);
        let _ = ep.add_readable(s.stream.as_raw_fd(), i as u64);
    }
    let mut events = vec![NO_EVENT; 1024];
    let mut buf = vec![0u8; 256 << 10];
    while !progress.stop.load(Ordering::Acquire) {
        let ready = ep.wait(&mut events, WAIT_NS).unwrap_or(0);
        for event in &events[..ready] {
            let (token, _) = event_parts(event);
            let sub = &mut subs[token as usize];
            loop {
                match socket::recv(sub.stream.as_raw_fd(), &mut buf) {
                    IoResult::Done(n) => {
                        let node = sub.node;
                        sub.order
                            .feed(&mut buf[..n], &mut |seq, ok| on_msg(node, seq, ok), &error);
                        if n < buf.len() {
                            break;
                        }
                    }
                    IoResult::Eof => {
                        progress.failed(Failure::Closed);
                        break;
                    }
                    IoResult::WouldBlock | IoResult::Failed(_) => break,
                }
            }
        }
    }
    for (node, n) in delivered.iter().enumerate() {
        progress.delivered[node].fetch_add(*n, Ordering::Relaxed);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_messages_across_reads_and_checks_order() {
        let mut wire = Vec::new();
        for seq in [0u64, 1, 3] {
            let mut body = vec![0u8; 300];
            body[..8].copy_from_slice(&seq.to_le_bytes());
            wire.extend_from_slice(
                crate::app::PreparedFrame::new(crate::protocol::MessageKind::Binary, &body).bytes(),
            );
        }
        wire.extend_from_slice(&[0x82, 0x01, 0xFF]); // no room for a sequence number
        let mut order = Order::default();
        let mut seen = Vec::new();
        let errors = std::cell::Cell::new(0);
        let error = || errors.set(errors.get() + 1);
        for chunk in wire.chunks(7) {
            let mut chunk = chunk.to_vec();
            order.feed(&mut chunk, &mut |seq, ok| seen.push((seq, ok)), &error);
        }
        assert_eq!(seen, [(0, true), (1, true), (3, false)]);
        assert_eq!(errors.get(), 1);
        assert!(!order.failed);
    }

    #[test]
    fn a_frame_breaking_the_protocol_gives_the_subscriber_up() {
        let mut order = Order::default();
        let errors = std::cell::Cell::new(0);
        let error = || errors.set(errors.get() + 1);
        let mut masked = [0x82, 0x88, 1, 2, 3, 4, 0, 0, 0, 0, 0, 0, 0, 0];
        order.feed(&mut masked, &mut |_, _| panic!("not a message"), &error);
        let mut valid = [0x82, 0x08, 0, 0, 0, 0, 0, 0, 0, 0];
        order.feed(&mut valid, &mut |_, _| panic!("given up"), &error);
        assert_eq!((errors.get(), order.failed), (1, true));
    }

    #[test]
    fn a_gap_message_is_neither_a_delivery_nor_an_error() {
        let mut wire = Vec::new();
        let gap = crate::app::PreparedFrame::new(
            crate::protocol::MessageKind::Text,
            br#"{"op":"gap","topic":"t"}"#,
        );
        wire.extend_from_slice(gap.bytes());
        let body = 0u64.to_le_bytes();
        let first = crate::app::PreparedFrame::new(crate::protocol::MessageKind::Binary, &body);
        wire.extend_from_slice(first.bytes());
        let mut order = Order::default();
        let mut seen = Vec::new();
        let errors = std::cell::Cell::new(0);
        let error = || errors.set(errors.get() + 1);
        order.feed(&mut wire, &mut |seq, ok| seen.push((seq, ok)), &error);
        assert_eq!((seen, errors.get()), (vec![(0, true)], 0));
    }
}
