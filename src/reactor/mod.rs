//! One single-threaded io_uring event loop per core: it moves bytes between sockets and the
//! sans-IO connections of `protocol::connection`, and carries out what they decide.
//!
//! - [`ring`]: the io_uring set-up, the `user_data` routing of completions, a full queue;
//! - [`listener`]: the per-core SO_REUSEPORT listening socket;
//! - [`conns`]: the slot table (socket + connection), effects into syscalls, the app's `Ctx`;
//! - [`accept`]: new sockets, accept errors and back-off;
//! - [`inbound`]: reads, the upgrade decision, messages to the app;
//! - [`proxy`]: the PROXY protocol header before a connection's own bytes (`proxy_protocol`);
//! - [`deadlines`]: the timer wheel's expiries;
//! - [`drain`]: the stop: listeners closed after `drain_delay`, 1001s spread over `drain_spread`;
//! - [`budget`]: the memory budget: refusing upgrades near it, shedding past it;
//! - [`timer_wheel`]: the core's deadlines;
//! - [`tls`]: wss connections: reads through their TLS session, records out, flushing;
//! - [`event_loop`]: one pass of the loop, dispatching completions;
//! - [`gate`]: the handshake gate (policy, per-address rate limit, refusal log);
//! - [`admin`]: the admin listener's sockets (core 0).
//!
//! The raw-fd syscalls made outside the ring are in the crate's [`crate::sys`].

pub mod accept;
pub mod admin;
pub mod budget;
pub mod conns;
pub mod deadlines;
pub mod drain;
pub mod event_loop;
pub mod gate;
pub mod inbound;
pub mod listener;
pub mod proxy;
pub mod ring;
pub mod timer_wheel;
pub mod tls;

use std::sync::atomic::AtomicBool;
use std::sync::Arc;

/// State shared by all cores of a server: written rarely, read once per loop iteration (the stop
/// flag) or once per upgrade and close (the open-connection count).
#[derive(Debug, Default)]
pub struct Shared {
    /// Set when the server must stop; each core is then woken through its eventfd.
    pub stop: AtomicBool,
    /// Upgraded connections of all cores, for the exact `max_connections`.
    pub open: Arc<conns::OpenConnections>,
}
