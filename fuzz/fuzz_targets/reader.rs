//! Feeds arbitrary client bytes to `Reader`, once whole and once cut into pieces the way the
//! reactor delivers them; the pieces must never panic and must yield the same events and error.
//!
//! Input layout: `[cut_count, (cut_lo, cut_hi) * cut_count, limits_selector, stream...]`.

#![no_main]

use libfuzzer_sys::fuzz_target;
use ringws::protocol::frame::MAX_HEADER_LEN;
use ringws::protocol::reader::Flow;
use ringws::protocol::{Event, Limits, MessageKind, ProtocolError, Reader};

#[derive(Debug, PartialEq, Eq)]
enum Owned {
    Message(MessageKind, Vec<u8>),
    Ping(Vec<u8>),
    Pong(Vec<u8>),
    Close(Option<u16>, String),
}

impl From<Event<'_>> for Owned {
    fn from(event: Event<'_>) -> Self {
        match event {
            Event::Message(kind, data) => {
                if kind == MessageKind::Text {
                    assert!(
                        std::str::from_utf8(data).is_ok(),
                        "text event with invalid UTF-8"
                    );
                }
                Owned::Message(kind, data.to_vec())
            }
            Event::Ping(data) => Owned::Ping(data.to_vec()),
            Event::Pong(data) => Owned::Pong(data.to_vec()),
            Event::Close { code, reason } => Owned::Close(code.map(|c| c.0), reason.to_owned()),
        }
    }
}

/// Feeds `stream` in chunks ending at `cuts`, carrying unconsumed bytes over like the reactor.
fn run(stream: &[u8], cuts: &[usize], limits: &Limits) -> (Option<ProtocolError>, Vec<Owned>) {
    let mut reader = Reader::default();
    let mut events = Vec::new();
    let mut carry = Vec::new();
    let mut start = 0;
    for &end in cuts.iter().chain(std::iter::once(&stream.len())) {
        let end = end.clamp(start, stream.len());
        carry.extend_from_slice(&stream[start..end]);
        start = end;
        match reader.feed(&mut carry, limits, |e| {
            events.push(Owned::from(e));
            Flow::Continue
        }) {
            Ok(consumed) => {
                assert!(consumed <= carry.len());
                carry.drain(..consumed);
                assert!(
                    carry.len() <= MAX_HEADER_LEN + 125,
                    "carry-over grew to {}",
                    carry.len()
                );
            }
            Err(e) => return (Some(e), events),
        }
    }
    (None, events)
}

fuzz_target!(|data: &[u8]| {
    let Some((&cut_count, rest)) = data.split_first() else {
        return;
    };
    let cut_count = usize::from(cut_count % 16);
    let Some((cut_bytes, rest)) = rest.split_at_checked(cut_count * 2) else {
        return;
    };
    let Some((&selector, stream)) = rest.split_first() else {
        return;
    };
    let limits = Limits {
        max_frame_size: u64::from(selector & 0x0F) * 16,
        max_message_size: u64::from(selector >> 4) * 40,
    };
    let mut cuts: Vec<usize> = cut_bytes
        .chunks_exact(2)
        .map(|c| usize::from(u16::from_le_bytes([c[0], c[1]])) % (stream.len() + 1))
        .collect();
    cuts.sort_unstable();

    let whole = run(stream, &[], &limits);
    let pieces = run(stream, &cuts, &limits);
    assert_eq!(whole, pieces, "cuts {cuts:?} changed the outcome");
    let bytes = run(stream, &(1..stream.len()).collect::<Vec<_>>(), &limits);
    assert_eq!(whole, bytes, "byte-at-a-time feeding changed the outcome");
});
