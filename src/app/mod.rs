//! The application interface: what the reactor calls, and what an app may ask of it.
//!
//! The reactor knows nothing of apps beyond this trait. An [`App`] is shared by all cores and
//! makes one [`CoreApp`] per core; each `CoreApp` lives on its reactor thread and is called only
//! from there, so it needs no locks.

pub mod echo;

use crate::protocol::{CloseCode, MessageKind};

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
    pub(crate) fd: std::os::fd::RawFd,
}

impl OpenInfo<'_> {
    /// The peer's address. Asked of the kernel on demand, so apps that do not need it pay nothing.
    pub fn peer(&self) -> Option<std::net::SocketAddr> {
        crate::reactor::sys::peer_addr(self.fd)
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
}

/// A server application; one instance shared by all cores.
pub trait App: Send + Sync + 'static {
    type Core: CoreApp;
    /// Name shown in the ready line and logs.
    fn name(&self) -> &'static str;
    /// Does this app serve WebSocket upgrades on `path`? Others get 404.
    fn serves_path(&self, path: &str) -> bool;
    /// Makes the per-core part, called on the core's own thread.
    fn new_core(&self, core: usize) -> Self::Core;
    /// Answers admin-listener requests the server does not handle itself (`/metrics` and
    /// `/healthz` are built in). Called on core 0's reactor thread; must not block.
    fn admin(
        &self,
        _request: &crate::admin::AdminRequest<'_>,
    ) -> Option<crate::admin::AdminResponse> {
        None
    }
    /// Largest admin request body this app accepts (e.g. a publish). Default 0: no bodies.
    fn admin_max_body_bytes(&self) -> usize {
        0
    }
}

/// The per-core part of an application. All methods run on the reactor thread and must not block.
pub trait CoreApp {
    fn on_open(&mut self, _ctx: &mut dyn Ctx, _conn: ConnId, _info: &OpenInfo<'_>) {}
    fn on_message(&mut self, ctx: &mut dyn Ctx, conn: ConnId, kind: MessageKind, payload: &[u8]);
    /// The connection is gone (after the close handshake, an error or a reset); `code` is the close
    /// code received or sent, if any.
    fn on_close(&mut self, _conn: ConnId, _code: Option<CloseCode>) {}
}
