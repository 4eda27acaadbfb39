//! doctor's permessage-deflate step, run when the server accepted the offer: one JSON message
//! goes out compressed (masked, RSV1), and the reply, if one comes, is inflated with the same
//! per-core codec the server uses and compared. A server that answers with another message (it
//! is not an echo endpoint) or not at all passes too: the message was taken without failing the
//! connection, and whatever came back read cleanly. A close, a reset or a frame that does not
//! inflate fails the step.

use std::io::Write as _;
use std::time::{Duration, Instant};

use super::diagnose::Observation;
use super::probe::{
    closed_by_server, control_frame, io_failure, next_received, read_some, Read, Received, Session,
    StepResult,
};
use super::tls::Stream;
use crate::protocol::deflate::{codec, Answer};
use crate::protocol::frame::{append_client_frame, RSV1_BIT};
use crate::protocol::Opcode;
use crate::sys::process::random_bytes;

/// Longest wait for a reply: a server that does not echo sends nothing, and doctor moves on.
pub const REPLY_WAIT: Duration = Duration::from_secs(2);
/// Level doctor compresses at (any level inflates the same way).
const LEVEL: u8 = 6;

/// Most items in the message: 491 bytes, over 256 so that a server compressing from that size on
/// (ringws's default `compression_min_size`) compresses its echo.
const MAX_ITEMS: usize = 8;

/// The message sent: JSON like an app's, of `items` items (1..=[`MAX_ITEMS`]).
pub fn message(items: usize) -> Vec<u8> {
    let items: Vec<String> = (0..items)
        .map(|i| {
            format!("{{\"id\":{i},\"user\":\"doctor\",\"text\":\"permessage-deflate check\"}}")
        })
        .collect();
    format!("{{\"ringws_doctor\":[{}]}}", items.join(",")).into_bytes()
}

/// Sends [`message`] compressed and reads the reply (at most [`REPLY_WAIT`], or `timeout`). The
/// negotiated parameters are on the upgrade step's line; a `client_max_window_bits` in `answer`
/// makes the message short enough for that window.
pub fn round_trip(
    stream: &mut Stream,
    session: &mut Session,
    answer: &Answer,
    timeout: Duration,
) -> StepResult<()> {
    let text = (1..=MAX_ITEMS)
        .rev()
        .map(message)
        .find(|text| answer.client_may_compress(text.len()))
        .unwrap_or_else(|| message(1));
    // Every message built compresses (a unit test checks); were one not to, it would go out
    // as it is, which RFC 7692 allows, and the line would say so.
    let (frame, compressed_len) = codec::with_compressed(&text, LEVEL, |compressed| {
        let payload = compressed.unwrap_or(&text);
        let mut frame = Vec::with_capacity(payload.len() + 14);
        append_client_frame(&mut frame, true, Opcode::Text, payload, random_bytes());
        if compressed.is_some() {
            frame[0] |= RSV1_BIT;
        }
        (frame, compressed.map(<[u8]>::len))
    });
    if let Err(err) = stream.write_all(&frame) {
        return Err(io_failure("sending a compressed message", err));
    }
    let sent = match compressed_len {
        Some(n) => format!("{} B of JSON sent compressed to {n} B", text.len()),
        None => format!(
            "{} B of JSON sent uncompressed (it did not shrink)",
            text.len()
        ),
    };
    let wait = timeout.min(REPLY_WAIT);
    let deadline = Instant::now() + wait;
    loop {
        while let Some(received) = next_received(session)? {
            match received {
                Received::Data {
                    payload,
                    compressed,
                } => {
                    let how = match compressed {
                        Some(n) => format!("compressed ({n} B), inflated to {} B", payload.len()),
                        None => format!("uncompressed ({} B)", payload.len()),
                    };
                    let reply = if payload == text {
                        format!("echoed {how}, the same bytes")
                    } else {
                        format!("a reply that is not an echo came back {how}, and read cleanly")
                    };
                    return Ok(((), format!("{sent}; {reply}")));
                }
                Received::Ping(theirs) => {
                    if let Err(err) = stream.write_all(&control_frame(Opcode::Pong, &theirs)) {
                        return Err(io_failure("answering the server's ping", err));
                    }
                }
                Received::Pong(_) => {}
                Received::Close { code, reason } => return Err(closed_by_server(code, reason)),
            }
        }
        match read_some(stream, &mut session.buf, deadline) {
            Read::Data => {}
            ended @ (Read::Eof | Read::Reset) => {
                let reset = matches!(ended, Read::Reset);
                return Err((
                    Observation::DroppedAfterUpgrade { reset },
                    "the connection ended after a compressed message, without a close frame"
                        .to_owned(),
                ));
            }
            Read::TimedOut => {
                let waited = super::report::format_ms(wait);
                return Ok((
                    (),
                    format!("{sent}; no reply within {waited} (not an echo endpoint), connection still open"),
                ));
            }
            Read::Error(err) => return Err(io_failure("waiting for a reply", err)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_message_is_json_over_the_default_minimum_and_compresses() {
        let text = message(MAX_ITEMS);
        let value: serde_json::Value = serde_json::from_slice(&text).unwrap();
        assert_eq!(value["ringws_doctor"].as_array().unwrap().len(), 8);
        assert!(text.len() > 256, "{}", text.len());
        let compressed = codec::with_compressed(&text, LEVEL, |c| c.unwrap().len());
        assert!(compressed < text.len() / 2, "{compressed}");
        // The smallest window a server may set (256 B) still takes a message of two items, and
        // every message doctor may send compresses.
        assert!(message(2).len() <= 256, "{}", message(2).len());
        for items in 1..=MAX_ITEMS {
            let text = message(items);
            assert!(
                codec::with_compressed(&text, LEVEL, |c| c.is_some()),
                "{items}"
            );
        }
    }
}
