//! Before `bench echo` opens its connections: one connection sends a few messages and checks
//! that they come back, so that a server running another app (pubsub, the default, answers a
//! binary message with an error) is named at once instead of being counted as hundreds of
//! thousands of `echo_mismatch` errors.

use std::io::{Read as _, Write as _};
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use super::blocking;
use super::receiver::Receiver;
use crate::protocol::frame::{append_client_frame, Opcode};
use crate::protocol::reader::{Event, Limits};
use crate::sys::process::random_bytes;

/// Messages the check sends, one at a time; the server echoes if any comes back unchanged.
pub const CHECK_MESSAGES: usize = 3;
/// Longest wait for one reply (or the run's `--timeout`, when shorter).
pub const MAX_REPLY_WAIT: Duration = Duration::from_secs(3);
/// Bytes of a differing reply quoted in the message.
const QUOTED_BYTES: usize = 80;

/// What the check saw when the server does not echo.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum NotEcho {
    /// No message came back within the wait.
    NoReply { waited: Duration },
    /// Every reply differed from what was sent; the first one, quoted.
    Differs { replies: usize, first: String },
    /// The server closed the connection instead of answering.
    Closed { code: Option<u16>, reason: String },
    /// permessage-deflate was offered (`--deflate`) and the server did not accept it.
    DeflateDeclined,
}

impl std::fmt::Display for NotEcho {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            NotEcho::NoReply { waited } => write!(
                f,
                "no reply to the first message within {}",
                crate::config::format_duration(*waited)
            ),
            NotEcho::Differs { replies, first } => {
                write!(f, "the first {replies} replies differ from the messages sent (first reply: {first})")
            }
            NotEcho::Closed { code, reason } => match code {
                Some(code) => write!(
                    f,
                    "the server closed the connection ({code} {reason:?}) instead of echoing"
                ),
                None => f.write_str("the server closed the connection instead of echoing"),
            },
            NotEcho::DeflateDeclined => f.write_str("it did not accept permessage-deflate"),
        }
    }
}

/// Sends up to [`CHECK_MESSAGES`] copies of `frame_payload` on one connection. `Ok(None)`: at
/// least one came back unchanged. `Err`: the check could not be made (connect or upgrade
/// failed): the run itself then counts and reports that. `deflate`: offer permessage-deflate,
/// which the server must accept, and send the messages compressed.
pub fn check(
    server: SocketAddr,
    host: &str,
    target: &str,
    payload: &[u8],
    opcode: Opcode,
    timeout: Duration,
    deflate: bool,
) -> Result<Option<NotEcho>, String> {
    let wait = timeout.min(MAX_REPLY_WAIT);
    let mut up = blocking::upgrade(server, None, host, target, random_bytes(), wait, deflate)?;
    if deflate && up.deflate.is_none() {
        close(&mut up.stream);
        return Ok(Some(NotEcho::DeflateDeclined));
    }
    let limits = Limits {
        max_frame_size: payload.len().max(1 << 16) as u64 * 2,
        max_message_size: payload.len().max(1 << 16) as u64 * 2,
    };
    let mut receiver = Receiver::new(limits);
    receiver.set_deflate(deflate);
    let mut pending = std::mem::take(&mut up.early);
    let mut first_differing = None;
    let mut differing = 0;
    for _ in 0..CHECK_MESSAGES {
        let frame = match up.deflate {
            Some(answer) if answer.client_may_compress(payload.len()) => {
                super::conn::build_deflate_frame(payload, opcode, random_bytes()).into_vec()
            }
            _ => super::conn::build_frame(payload, opcode, random_bytes()).into_vec(),
        };
        up.stream.write_all(&frame).map_err(|e| e.to_string())?;
        let deadline = Instant::now() + wait;
        let reply = loop {
            let mut pos = 0;
            let event = receiver
                .next(&mut pending, &mut pos)
                .map_err(|e| format!("the server sent an invalid frame: {e}"))?;
            let outcome = match event {
                Some(Event::Message(_, body)) => {
                    Some(Ok(body == payload).map(|same| (same, quote(body))))
                }
                Some(Event::Close { code, reason }) => Some(Err(NotEcho::Closed {
                    code: code.map(|c| c.0),
                    reason: reason.to_owned(),
                })),
                _ => None,
            };
            pending.drain(..pos);
            if let Some(outcome) = outcome {
                break outcome;
            }
            if pos > 0 {
                continue;
            }
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return Ok(Some(NotEcho::NoReply { waited: wait }));
            }
            up.stream.set_read_timeout(Some(left)).ok();
            let mut chunk = [0u8; 16 << 10];
            match up.stream.read(&mut chunk) {
                Ok(0) => {
                    return Ok(Some(NotEcho::Closed {
                        code: None,
                        reason: String::new(),
                    }))
                }
                Ok(n) => pending.extend_from_slice(&chunk[..n]),
                Err(e)
                    if matches!(
                        e.kind(),
                        std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                    ) =>
                {
                    return Ok(Some(NotEcho::NoReply { waited: wait }))
                }
                Err(e) => return Err(e.to_string()),
            }
        };
        match reply {
            Err(closed) => return Ok(Some(closed)),
            Ok((true, _)) => {
                close(&mut up.stream);
                return Ok(None);
            }
            Ok((false, quoted)) => {
                differing += 1;
                first_differing.get_or_insert(quoted);
            }
        }
    }
    close(&mut up.stream);
    Ok(Some(NotEcho::Differs {
        replies: differing,
        first: first_differing.unwrap_or_default(),
    }))
}

/// A reply as a person reads it: text when it is UTF-8, else its length.
fn quote(body: &[u8]) -> String {
    match std::str::from_utf8(body) {
        Ok(text) if text.chars().count() > QUOTED_BYTES => {
            format!(
                "{:?}...",
                text.chars().take(QUOTED_BYTES).collect::<String>()
            )
        }
        Ok(text) => format!("{text:?}"),
        Err(_) => format!("{} bytes of binary data", body.len()),
    }
}

/// A close frame (1000), then the connection is dropped; a server that echoes answers it.
fn close(stream: &mut std::net::TcpStream) {
    let mut frame = Vec::new();
    append_client_frame(
        &mut frame,
        true,
        Opcode::Close,
        &1000u16.to_be_bytes(),
        random_bytes(),
    );
    let _ = stream.write_all(&frame);
    // Read the server's close (bounded), so it sees an orderly end.
    stream
        .set_read_timeout(Some(Duration::from_millis(200)))
        .ok();
    let mut sink = [0u8; 512];
    let _ = stream.read(&mut sink);
}
