//! TLS for `wss://`: the server's rustls configuration from PEM files ([`files`]), what a
//! certificate says ([`certificate`]), and one connection's TLS session as a sans-IO state
//! machine over the core's shared buffers ([`session`]).
//!
//! The session is rustls's unbuffered connection: ciphertext is read into the core's one
//! buffer and decrypted from there, and records are encrypted into the core's one output
//! buffer, so a connection holds no TLS buffer of its own except a record split across reads
//! or refused by the kernel. An idle wss connection costs the session's keys and state (about
//! 3 KiB, see docs/benchmarks.md), nothing more.

pub mod certificate;
pub mod client;
pub mod failure;
pub mod files;
pub mod session;

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

pub use certificate::CertificateSummary;
pub use failure::{TlsFailure, TLS_FAILURES};
pub use files::{load, CertKeyPair, TlsError, TlsFiles, TlsLoaded};
pub use session::{ReadSummary, TlsSession};

/// The TLS configuration the cores use, replaced as a whole on reload (SIGHUP): a handshake
/// in progress keeps the configuration it started with.
#[derive(Debug)]
pub struct TlsShared {
    current: Mutex<Arc<rustls::ServerConfig>>,
    /// Bumped on every replacement, so a core checks one atomic per accept, not the lock.
    generation: AtomicU64,
    /// The leaf certificate's `notAfter`, in Unix seconds (the expiry gauge).
    pub not_after_unix_s: AtomicU64,
    /// Reloads that replaced the configuration, and reloads refused (a bad file).
    pub reloads: AtomicU64,
    pub reload_failures: AtomicU64,
}

impl TlsShared {
    pub fn new(loaded: &TlsLoaded) -> TlsShared {
        TlsShared {
            current: Mutex::new(loaded.config.clone()),
            generation: AtomicU64::new(0),
            not_after_unix_s: AtomicU64::new(loaded.summary.not_after_unix_s.max(0) as u64),
            reloads: AtomicU64::new(0),
            reload_failures: AtomicU64::new(0),
        }
    }

    /// New handshakes use `loaded` from now on.
    pub fn replace(&self, loaded: &TlsLoaded) {
        *self.current.lock().unwrap_or_else(|e| e.into_inner()) = loaded.config.clone();
        self.not_after_unix_s.store(
            loaded.summary.not_after_unix_s.max(0) as u64,
            Ordering::Release,
        );
        self.generation.fetch_add(1, Ordering::AcqRel);
    }

    pub fn generation(&self) -> u64 {
        self.generation.load(Ordering::Acquire)
    }

    pub fn config(&self) -> Arc<rustls::ServerConfig> {
        self.current
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }
}

/// A core's view of [`TlsShared`]: the configuration it hands new sessions, refreshed when the
/// shared generation moves.
#[derive(Debug)]
pub struct CoreTls {
    shared: Arc<TlsShared>,
    generation: u64,
    config: Arc<rustls::ServerConfig>,
}

impl CoreTls {
    pub fn new(shared: Arc<TlsShared>) -> CoreTls {
        let generation = shared.generation();
        let config = shared.config();
        CoreTls {
            shared,
            generation,
            config,
        }
    }

    /// A session for a newly accepted socket.
    pub fn session(&mut self) -> Result<TlsSession, rustls::Error> {
        let generation = self.shared.generation();
        if generation != self.generation {
            self.config = self.shared.config();
            self.generation = generation;
        }
        TlsSession::new(self.config.clone())
    }
}
