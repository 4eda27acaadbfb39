//! wss:// for the load generator: the rustls client configuration a run shares (built by
//! `crate::tls::client`, which doctor uses too), the adapter
//! through which rustls reads and writes a non-blocking socket, and the one-time explanation of
//! a TLS failure.
//!
//! Each connection holds a buffered rustls `ClientConnection` (the generator's memory matters
//! less than the server's); the worker drives it from its epoll loop: socket bytes go in with
//! `read_tls`, plaintext comes out of `reader()`, plaintext goes in with `writer()`, records go
//! out with `write_tls`.

use std::collections::VecDeque;
use std::io;
use std::os::fd::RawFd;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

use rustls::client::{
    ClientSessionStore, Resumption, Tls12ClientSessionValue, Tls13ClientSessionValue,
};
use rustls::pki_types::ServerName;
use rustls::{ClientConfig, ClientConnection, NamedGroup};

use super::cause::TlsCause;
use super::options::{BenchError, TlsOptions};
use super::url::WsUrl;
use crate::sys::socket::{self as sock, IoResult};
use crate::tls::client;

/// What every wss:// connection of a run is made from.
pub struct TlsClient {
    config: Arc<ClientConfig>,
    server_name: ServerName<'static>,
    /// The first TLS failure of the run has been explained on stderr.
    explained: AtomicBool,
}

impl TlsClient {
    /// The run's TLS client for a wss:// URL; None for ws://, where the TLS flags are refused
    /// rather than ignored.
    pub fn for_url(url: &WsUrl, opts: &TlsOptions) -> Result<Option<TlsClient>, BenchError> {
        if url.tls {
            return TlsClient::new(url, opts).map(Some);
        }
        if opts.insecure || opts.ca_file.is_some() {
            return Err(BenchError::Invalid(
                "--insecure and --ca-file apply to wss:// URLs only".into(),
            ));
        }
        Ok(None)
    }

    /// Builds the run's client configuration: roots from `--ca-file`, the system's, or none
    /// with `--insecure`; TLS 1.3 and 1.2; ALPN `http/1.1`; session resumption unless off.
    pub fn new(url: &WsUrl, opts: &TlsOptions) -> Result<TlsClient, BenchError> {
        let trust = client::Trust {
            ca_file: opts.ca_file.as_deref(),
            insecure: opts.insecure,
        };
        let provider = client::provider();
        let mut config = client::verifier(trust, &provider, false)
            .and_then(|verifier| client::config(verifier, provider))
            .map_err(BenchError::Tls)?;
        config.resumption = if opts.resume {
            Resumption::store(Arc::new(Sessions::default()))
        } else {
            Resumption::disabled()
        };
        let server_name = client::server_name(&url.host).map_err(BenchError::Tls)?;
        Ok(TlsClient {
            config: Arc::new(config),
            server_name,
            explained: AtomicBool::new(false),
        })
    }

    /// A new client session for one connection (resuming one of the run's sessions when
    /// resumption is on and the server gave tickets).
    pub fn connect(&self) -> Result<Box<ClientConnection>, rustls::Error> {
        ClientConnection::new(self.config.clone(), self.server_name.clone()).map(Box::new)
    }

    /// Prints the first TLS failure of the run, in full and with what to do, once; the report
    /// then counts every failure under its cause.
    pub fn explain_once(&self, error: &rustls::Error) {
        if self.explained.swap(true, Ordering::Relaxed) {
            return;
        }
        let name = client::server_name_text(&self.server_name);
        eprintln!(
            "ringws bench: TLS with {name} failed: {error}. {}",
            hint(TlsCause::from(error))
        );
    }
}

/// What to do about a TLS failure.
pub fn hint(cause: TlsCause) -> &'static str {
    match cause {
        TlsCause::UnknownIssuer => {
            "The certificate chain leads to no trusted root: give the CA that signed it with \
             --ca-file PATH (or --insecure for a self-signed test server); with a public CA, \
             the server is likely sending its certificate without the intermediate"
        }
        TlsCause::NameMismatch => {
            "The certificate does not cover the URL's host: use a host name it covers, or \
             reissue it with this name in subjectAltName"
        }
        TlsCause::Expired | TlsCause::NotYetValid => {
            "The certificate is outside its validity dates: renew it, or check this machine's \
             clock"
        }
        TlsCause::BadCertificate => "The server's certificate was rejected as shown",
        TlsCause::Alert(_) => {
            "The server refused the handshake; its log or `ringws doctor` says why"
        }
        TlsCause::NoCommonVersionOrCipher => {
            "The generator offers TLS 1.3 and 1.2 with rustls's default cipher suites; the \
             server accepts none of them"
        }
        TlsCause::NotTls => {
            "The server answered in plain text: the port speaks ws:// (use ws://) or is not a \
             TLS port"
        }
        TlsCause::Protocol => "The server broke the TLS protocol",
    }
}

/// Most TLS 1.3 tickets kept for resumption. rustls's own store keeps 8 per server: with tens
/// of handshakes in flight, the tickets of one batch of finished handshakes overflow it and most
/// new connections would find none; a run needs one ticket per connection it opens.
const MAX_TICKETS: usize = 4096;

/// The sessions a run can resume. A run talks to one server, so the server name is not a key.
#[derive(Debug, Default)]
struct Sessions(Mutex<SessionState>);

#[derive(Debug, Default)]
struct SessionState {
    kx_hint: Option<NamedGroup>,
    tls12: Option<Tls12ClientSessionValue>,
    /// Single-use tickets, oldest first.
    tls13: VecDeque<Tls13ClientSessionValue>,
}

impl Sessions {
    fn state(&self) -> std::sync::MutexGuard<'_, SessionState> {
        // A panic elsewhere cannot leave the state half-changed: every edit is one assignment.
        self.0
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

impl ClientSessionStore for Sessions {
    fn set_kx_hint(&self, _: ServerName<'static>, group: NamedGroup) {
        self.state().kx_hint = Some(group);
    }

    fn kx_hint(&self, _: &ServerName<'_>) -> Option<NamedGroup> {
        self.state().kx_hint
    }

    fn set_tls12_session(&self, _: ServerName<'static>, value: Tls12ClientSessionValue) {
        self.state().tls12 = Some(value);
    }

    fn tls12_session(&self, _: &ServerName<'_>) -> Option<Tls12ClientSessionValue> {
        self.state().tls12.clone()
    }

    fn remove_tls12_session(&self, _: &ServerName<'static>) {
        self.state().tls12 = None;
    }

    fn insert_tls13_ticket(&self, _: ServerName<'static>, value: Tls13ClientSessionValue) {
        let mut state = self.state();
        if state.tls13.len() == MAX_TICKETS {
            state.tls13.pop_front();
        }
        state.tls13.push_back(value);
    }

    fn take_tls13_ticket(&self, _: &ServerName<'static>) -> Option<Tls13ClientSessionValue> {
        self.state().tls13.pop_back()
    }
}

/// A non-blocking socket as rustls's `Write` (for `write_tls`): EAGAIN is `WouldBlock`.
pub struct SocketWriter(pub RawFd);

impl io::Write for SocketWriter {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.write_vectored(&[io::IoSlice::new(buf)])
    }

    /// rustls hands over its queued records as slices: the first two go in one `sendmsg`.
    fn write_vectored(&mut self, bufs: &[io::IoSlice<'_>]) -> io::Result<usize> {
        let mut slices = bufs.iter().filter(|b| !b.is_empty());
        let Some(first) = slices.next() else {
            return Ok(0);
        };
        let second = slices.next().map_or(&[][..], |b| &b[..]);
        match sock::send2(self.0, first, second) {
            IoResult::Done(n) => Ok(n),
            IoResult::WouldBlock | IoResult::Eof => Err(io::ErrorKind::WouldBlock.into()),
            IoResult::Failed(err) => Err(err),
        }
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::bench::url;

    #[test]
    fn builds_a_client_for_ip_and_dns_hosts() {
        let insecure = TlsOptions {
            insecure: true,
            ..TlsOptions::default()
        };
        let ip = TlsClient::new(&url::parse("wss://127.0.0.1:9443/").unwrap(), &insecure);
        assert!(ip.unwrap().connect().is_ok());
        let dns = TlsClient::new(&url::parse("wss://localhost/").unwrap(), &insecure);
        assert!(matches!(dns.unwrap().server_name, ServerName::DnsName(_)));
    }

    #[test]
    fn a_missing_or_empty_ca_file_is_refused_by_name() {
        let url = url::parse("wss://127.0.0.1:9443/").unwrap();
        let with_ca = |path: &str| TlsOptions {
            ca_file: Some(path.into()),
            ..TlsOptions::default()
        };
        let Err(err) = TlsClient::new(&url, &with_ca("/nonexistent/ca.pem")) else {
            panic!("a missing CA file was accepted");
        };
        assert!(
            err.to_string().contains("--ca-file /nonexistent/ca.pem"),
            "{err}"
        );
        let Err(err) = TlsClient::new(&url, &with_ca("Cargo.toml")) else {
            panic!("a CA file without certificates was accepted");
        };
        assert!(err.to_string().contains("no usable CERTIFICATE"), "{err}");
    }

    #[test]
    fn tls_flags_with_a_ws_url_are_refused() {
        let ws = url::parse("ws://127.0.0.1:9000/").unwrap();
        assert!(TlsClient::for_url(&ws, &TlsOptions::default())
            .unwrap()
            .is_none());
        let insecure = TlsOptions {
            insecure: true,
            ..TlsOptions::default()
        };
        let err = TlsClient::for_url(&ws, &insecure).err().unwrap();
        assert!(err.to_string().contains("wss:// URLs only"), "{err}");
    }

    #[test]
    fn every_cause_has_a_hint() {
        assert!(hint(TlsCause::UnknownIssuer).contains("--ca-file"));
        assert!(hint(TlsCause::NotTls).contains("ws://"));
    }
}
