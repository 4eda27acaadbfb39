//! The application interface: what the reactor calls, and what an app may ask of it.
//!
//! The reactor knows nothing of apps beyond this trait. An [`App`] is shared by all cores and
//! makes one [`CoreApp`] per core; each `CoreApp` lives on its reactor thread and is called only
//! from there, so it needs no locks.

pub mod echo;
pub mod pubsub;

use std::sync::OnceLock;

use crate::protocol::deflate::{codec, Compression, Negotiated};
use crate::protocol::frame::{encode_server_header, MAX_HEADER_LEN, RSV1_BIT};
use crate::protocol::{CloseCode, MessageKind};

/// A message framed once, to be written as-is to many connections (pub/sub fan-out): the same
/// bytes go to every subscriber, with no per-subscriber encoding. For subscribers that
/// negotiated permessage-deflate it is compressed at most once, on first use, and that
/// compressed frame is shared the same way (by every core: the hub shares one `PreparedFrame`).
#[derive(Clone, Debug)]
pub struct PreparedFrame {
    bytes: bytes::Bytes,
    kind: MessageKind,
    payload_len: usize,
    /// The compressed frame, made by the first subscriber that needs it; `None` inside when
    /// compressing does not make the message smaller.
    /// With the compressed payload's length.
    compressed: OnceLock<Option<(bytes::Bytes, usize)>>,
}

impl PreparedFrame {
    pub fn new(kind: MessageKind, payload: &[u8]) -> PreparedFrame {
        let mut header = [0u8; MAX_HEADER_LEN];
        let n = encode_server_header(&mut header, true, kind.opcode(), payload.len() as u64);
        let mut bytes = Vec::with_capacity(n + payload.len());
        bytes.extend_from_slice(&header[..n]);
        bytes.extend_from_slice(payload);
        PreparedFrame {
            bytes: bytes.into(),
            kind,
            payload_len: payload.len(),
            compressed: OnceLock::new(),
        }
    }

    /// The frame for a connection that negotiated `deflate`, and the compressed payload's size
    /// when it is the compressed one.
    pub fn bytes_for(&self, deflate: Negotiated, cfg: &Compression) -> (&[u8], Option<usize>) {
        if deflate.compresses(cfg, self.payload_len) {
            let compressed = self.compressed.get_or_init(|| self.compress(cfg.level));
            if let Some((frame, payload_len)) = compressed {
                return (frame, Some(*payload_len));
            }
        }
        (&self.bytes, None)
    }

    fn compress(&self, level: u8) -> Option<(bytes::Bytes, usize)> {
        let payload = &self.bytes[self.bytes.len() - self.payload_len..];
        codec::with_compressed(payload, level, |compressed| {
            let compressed = compressed?;
            let mut header = [0u8; MAX_HEADER_LEN];
            let opcode = self.kind.opcode();
            let n = encode_server_header(&mut header, true, opcode, compressed.len() as u64);
            header[0] |= RSV1_BIT;
            let mut frame = Vec::with_capacity(n + compressed.len());
            frame.extend_from_slice(&header[..n]);
            frame.extend_from_slice(compressed);
            Some((frame.into(), compressed.len()))
        })
    }
    /// The whole frame (header and payload).
    pub fn bytes(&self) -> &[u8] {
        &self.bytes
    }
    pub fn kind(&self) -> MessageKind {
        self.kind
    }
    pub fn payload_len(&self) -> usize {
        self.payload_len
    }
}

/// Wakes one core's reactor from any thread (an eventfd write); the core then calls
/// [`CoreApp::on_wake`].
#[derive(Debug)]
pub struct Waker {
    pub(crate) fd: std::os::fd::RawFd,
}

impl Waker {
    pub fn wake(&self) {
        crate::sys::eventfd::eventfd_signal(self.fd);
    }
}

/// Identifies a connection on its core. Stale ids (of closed connections) are detected: sending to
/// one is a no-op that returns `false`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct ConnId {
    pub(crate) key: u32,
    pub(crate) generation: u32,
}

/// What an app knows about a connection when it opens.
#[derive(Debug)]
pub struct OpenInfo<'a> {
    pub path: &'a str,
    pub query: Option<&'a str>,
    /// The subprotocol chosen from the client's offer (`subprotocols`), if any.
    pub protocol: Option<&'a str>,
    /// Who the credentials name: the JWT `sub`, or the static token's name (`auth`).
    pub subject: Option<&'a str>,
    /// What the connection may subscribe to and publish (its token's topic permissions, else
    /// `topic_permissions_default`); shared with every connection of the same static token.
    pub permissions: &'a std::sync::Arc<crate::policy::TopicPermissions>,
    /// The client address when the handshake gate resolved it (trusted proxies, rate limit).
    pub(crate) client_ip: Option<std::net::IpAddr>,
    pub(crate) fd: std::os::fd::RawFd,
}

impl OpenInfo<'_> {
    /// The client's address: the one a trusted proxy named, else the socket peer's.
    pub fn client_ip(&self) -> Option<std::net::IpAddr> {
        self.client_ip.or_else(|| self.peer().map(|p| p.ip()))
    }

    /// The peer's address. Asked of the kernel on demand, so apps that do not need it pay nothing.
    pub fn peer(&self) -> Option<std::net::SocketAddr> {
        crate::sys::socket::peer_addr(self.fd)
    }
}

/// The reactor's side, handed to every app callback: send and close on any connection of this core.
pub trait Ctx {
    /// Sends one complete message. Bytes the kernel does not take at once are queued for this
    /// connection only. Returns false if the connection is gone or closing.
    fn send(&mut self, conn: ConnId, kind: MessageKind, payload: &[u8]) -> bool;
    /// Starts the close handshake with `code` and `reason` (at most 123 bytes, truncated).
    fn close(&mut self, conn: ConnId, code: CloseCode, reason: &str);
    /// Index of this core (0-based).
    fn core(&self) -> usize;
    /// Writes a frame prepared once for many connections. Returns false if the connection is
    /// gone or closing. Bytes the kernel does not take are queued for this connection only.
    fn send_prepared(&mut self, conn: ConnId, frame: &PreparedFrame) -> bool;
    /// Records one fan-out latency sample (`ringws_fanout_latency_seconds` of this core).
    fn record_fanout_latency(&mut self, seconds: f64);
}

/// A server application; one instance shared by all cores.
pub trait App: Send + Sync + 'static {
    type Core: CoreApp;
    /// Name shown in the ready line and logs.
    fn name(&self) -> &'static str;
    /// Does this app serve WebSocket upgrades on `path`? Others get 404.
    fn serves_path(&self, path: &str) -> bool;
    /// The paths [`App::serves_path`] accepts, when they can be listed: the 404 answer names
    /// them, and `ringws doctor` reads them from it. Default: none listed.
    fn websocket_paths(&self) -> &[&str] {
        &[]
    }
    /// Makes the per-core part, called on the core's own thread.
    fn new_core(&self, core: usize) -> Self::Core;
    /// Answers admin-listener requests the server does not handle itself (`/metrics`,
    /// `/healthz` and `/readyz` are built in). Called on core 0's reactor thread; must not block.
    fn admin(
        &self,
        _request: &crate::admin::AdminRequest<'_>,
    ) -> Option<crate::admin::AdminResponse> {
        None
    }
    /// The routes [`App::admin`] answers, as `METHOD /path` (`POST /publish/{topic}`), for the
    /// start banner and the admin listener's 404 answer. Default: none.
    fn admin_routes(&self) -> &[&str] {
        &[]
    }
    /// Largest admin request body this app accepts (e.g. a publish). Default 0: no bodies.
    fn admin_max_body_bytes(&self) -> usize {
        0
    }
    /// Called once before the cores start, with one waker per core (index = core).
    fn start(&self, _wakers: Vec<Waker>) {}
    /// Extra metric series of this app, registered once and read at every scrape.
    fn metrics(&self) -> Vec<crate::metrics::AppSeries> {
        Vec::new()
    }
    /// Whether this node should be sent new clients: `/readyz` answers 503 with the reason in
    /// `Err` (e.g. a bus it cannot reach), 200 otherwise. Called on core 0's reactor thread for
    /// every probe; must not block. Default: always ready.
    fn readiness(&self) -> Result<(), String> {
        Ok(())
    }
}

/// The per-core part of an application. All methods run on the reactor thread and must not block.
pub trait CoreApp {
    fn on_open(&mut self, _ctx: &mut dyn Ctx, _conn: ConnId, _info: &OpenInfo<'_>) {}
    fn on_message(&mut self, ctx: &mut dyn Ctx, conn: ConnId, kind: MessageKind, payload: &[u8]);
    /// The connection is gone (after the close handshake, an error or a reset); `code` is the close
    /// code received or sent, if any.
    fn on_close(&mut self, _conn: ConnId, _code: Option<CloseCode>) {}
    /// This core was woken through its [`Waker`] (e.g. messages in a cross-core inbox). Return
    /// true if work is left: the reactor calls again in its next iteration without sleeping.
    fn on_wake(&mut self, _ctx: &mut dyn Ctx) -> bool {
        false
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_prepared_frame_is_compressed_once_for_every_deflate_subscriber() {
        let cfg = Compression {
            enabled: true,
            min_size: 100,
            level: 1,
        };
        let payload = br#"{"topic":"prices","bid":101.25,"ask":101.5}"#.repeat(20);
        let frame = PreparedFrame::new(MessageKind::Text, &payload);
        let (plain, none) = frame.bytes_for(Negotiated::NONE, &cfg);
        assert_eq!((plain, none), (frame.bytes(), None));
        let (first, len) = frame.bytes_for(Negotiated(15), &cfg);
        let (again, _) = frame.bytes_for(Negotiated(15), &cfg);
        assert_eq!(
            first.as_ptr(),
            again.as_ptr(),
            "the same bytes, compressed once"
        );
        assert_eq!(first[0], 0x80 | RSV1_BIT | 0x1);
        let len = len.unwrap();
        assert!(len < payload.len() / 4);
        let inflated = codec::inflate(&first[first.len() - len..], 1 << 20).unwrap();
        assert_eq!(inflated, payload);
        // A window too small for the message, or a short message: the plain frame.
        assert_eq!(frame.bytes_for(Negotiated(9), &cfg).0, frame.bytes());
        let short = PreparedFrame::new(MessageKind::Text, b"hi");
        assert_eq!(short.bytes_for(Negotiated(15), &cfg).0, short.bytes());
    }
}
