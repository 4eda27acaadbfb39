//! ringws: a dense, strict RFC 6455 WebSocket server for Linux.
//!
//! Layout:
//! - [`protocol`]: the sans-IO core (HTTP upgrade, frame codec, UTF-8, close rules). Pure functions
//!   and small state machines over byte slices; no sockets, no clocks.
//! - [`reactor`]: one pinned, single-threaded io_uring event loop per core that moves bytes between
//!   sockets and the protocol core.
//! - [`app`]: the application trait the reactor calls, and the built-in apps.
//! - [`server`]: starts the per-core reactors from a [`config::Config`].
//! - [`config`]: every setting, its default and its bound.
//! - [`bench`]: the load generator behind `ringws bench`.
//! - [`tls`]: wss: the rustls configuration from PEM files and the per-connection TLS session.
//! - [`sys`]: every unsafe libc call, behind safe functions.

pub mod admin;
pub mod app;
pub mod bench;
pub mod check;
pub mod cli;
pub mod config;
pub mod doctor;
pub mod metrics;
pub mod policy;
pub mod protocol;
pub mod reactor;
pub mod server;
pub mod stats;
pub mod sys;
pub mod tls;
