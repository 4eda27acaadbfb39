//! One single-threaded io_uring event loop per core.
//!
//! - [`ring`]: the io_uring set-up and the `user_data` routing of completions;
//! - [`listener`]: the per-core SO_REUSEPORT listening socket;
//! - [`conn`]: per-connection state kept in the core's slab;
//! - [`timer_wheel`]: the core's deadlines;
//! - [`event_loop`]: the loop that ties them to the protocol core and the app;
//! - [`admin`]: the admin listener's sockets (core 0);
//! - [`sys`]: the raw-fd syscalls made outside the ring.

pub mod admin;
pub mod conn;
pub mod event_loop;
pub mod gate;
pub mod listener;
pub mod ring;
pub mod sys;
pub mod timer_wheel;

use std::sync::atomic::AtomicBool;

/// State shared by all cores of a server: written rarely, read once per loop iteration.
#[derive(Debug, Default)]
pub struct Shared {
    /// Set when the server must stop; each core is then woken through its eventfd.
    pub stop: AtomicBool,
}
