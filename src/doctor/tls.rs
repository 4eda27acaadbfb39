//! The TLS step of `ringws doctor wss://...`: rustls over the blocking socket, the chain the
//! server sent kept even when verification refuses it, and the first bytes it answered kept so
//! a plain-HTTP port is named as such. After the handshake the upgrade, ping and close steps
//! run over [`Stream::Tls`] exactly as over plain TCP.

use std::io::{self, Read, Write};
use std::net::TcpStream;
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use rustls::pki_types::ServerName;
use rustls::{ClientConfig, ClientConnection, StreamOwned};

use super::diagnose::{Observation, TlsProblem, TlsSeen};
use crate::tls::client::{self, ChainVerifier, Trust};
use crate::tls::CertificateSummary;

/// Bytes of the server's first answer kept (enough for `HTTP/1.1 400 Bad Request`).
const FIRST_BYTES: usize = 64;

/// What the TLS step learned, for `--json`: what was negotiated (after a handshake) and the
/// server's certificate (also when it was refused).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct TlsInfo {
    pub version: Option<String>,
    pub cipher_suite: Option<String>,
    pub alpn: Option<String>,
    pub certificate: Option<CertificateSummary>,
}

/// How doctor speaks TLS to one server.
pub struct TlsPlan {
    config: Arc<ClientConfig>,
    verifier: Arc<ChainVerifier>,
    server_name: ServerName<'static>,
}

impl TlsPlan {
    /// `--ca-file` and `--insecure` as given; the URL's host is the name verified and sent.
    pub fn new(host: &str, ca_file: Option<&Path>, insecure: bool) -> Result<TlsPlan, String> {
        let provider = client::provider();
        let verifier = client::verifier(Trust { ca_file, insecure }, &provider, true)?;
        let config = client::config(verifier.clone(), provider)?;
        Ok(TlsPlan {
            config: Arc::new(config),
            verifier,
            server_name: client::server_name(host)?,
        })
    }
}

/// The socket under TLS, keeping the first bytes the server sent.
pub struct Recorded {
    tcp: TcpStream,
    first: Vec<u8>,
}

impl Read for Recorded {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.tcp.read(buf)?;
        let keep = n.min(FIRST_BYTES - self.first.len());
        self.first.extend_from_slice(&buf[..keep]);
        Ok(n)
    }
}

impl Write for Recorded {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.tcp.write(buf)
    }

    fn flush(&mut self) -> io::Result<()> {
        self.tcp.flush()
    }
}

/// The connection the WebSocket steps run over.
pub enum Stream {
    Plain(TcpStream),
    Tls(Box<StreamOwned<ClientConnection, Recorded>>),
}

impl Stream {
    /// The TCP socket (for read timeouts).
    pub fn tcp(&self) -> &TcpStream {
        match self {
            Stream::Plain(tcp) => tcp,
            Stream::Tls(tls) => &tls.sock.tcp,
        }
    }
}

impl Read for Stream {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        match self {
            Stream::Plain(tcp) => tcp.read(buf),
            Stream::Tls(tls) => tls.read(buf),
        }
    }
}

impl Write for Stream {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        match self {
            Stream::Plain(tcp) => tcp.write(buf),
            Stream::Tls(tls) => tls.write(buf),
        }
    }

    fn flush(&mut self) -> io::Result<()> {
        match self {
            Stream::Plain(tcp) => tcp.flush(),
            Stream::Tls(tls) => tls.flush(),
        }
    }
}

/// Runs the TLS handshake over `tcp` within `timeout`; the step's detail names the version,
/// cipher suite, ALPN and certificate, and `info` keeps them.
pub fn handshake(
    plan: &TlsPlan,
    tcp: TcpStream,
    timeout: Duration,
    info: &mut Option<TlsInfo>,
) -> Result<(Stream, String), (Observation, String)> {
    let result = run_handshake(plan, tcp, timeout);
    let mut learned = match &result {
        Ok(tls) => TlsInfo {
            version: tls
                .conn
                .protocol_version()
                .and_then(|v| v.as_str())
                .map(|v| v.replace('_', ".")),
            cipher_suite: tls
                .conn
                .negotiated_cipher_suite()
                .and_then(|s| s.suite().as_str())
                .map(str::to_owned),
            alpn: tls
                .conn
                .alpn_protocol()
                .map(|p| String::from_utf8_lossy(p).into_owned()),
            certificate: None,
        },
        Err(_) => TlsInfo::default(),
    };
    learned.certificate = CertificateSummary::of_chain(&plan.verifier.chain()).ok();
    let detail = format!(
        "{}, {}, ALPN {}",
        learned.version.as_deref().unwrap_or("TLS"),
        learned.cipher_suite.as_deref().unwrap_or("unknown suite"),
        learned.alpn.as_deref().unwrap_or("none"),
    );
    let detail = match &learned.certificate {
        Some(summary) => format!("{detail}; {}", describe(summary)),
        None => detail,
    };
    *info = Some(learned);
    result.map(|tls| (Stream::Tls(tls), detail))
}

fn run_handshake(
    plan: &TlsPlan,
    tcp: TcpStream,
    timeout: Duration,
) -> Result<Box<StreamOwned<ClientConnection, Recorded>>, (Observation, String)> {
    let conn = match ClientConnection::new(plan.config.clone(), plan.server_name.clone()) {
        Ok(conn) => conn,
        Err(err) => return Err(failed(plan, &[], TlsProblem::Rustls(err))),
    };
    let mut tls = Box::new(StreamOwned::new(
        conn,
        Recorded {
            tcp,
            first: Vec::new(),
        },
    ));
    let deadline = Instant::now() + timeout;
    while tls.conn.is_handshaking() {
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return Err(failed(plan, &tls.sock.first, TlsProblem::TimedOut));
        }
        if let Err(err) = tls.sock.tcp.set_read_timeout(Some(left)) {
            let problem = TlsProblem::Io(err.to_string());
            return Err(failed(plan, &tls.sock.first, problem));
        }
        if let Err(err) = tls.conn.complete_io(&mut tls.sock) {
            return Err(failed(plan, &tls.sock.first, io_failure(err)));
        }
    }
    if let Some(other) = tls
        .conn
        .alpn_protocol()
        .filter(|p| *p != client::ALPN_HTTP11)
    {
        let other = String::from_utf8_lossy(other).into_owned();
        return Err(failed(
            plan,
            &tls.sock.first,
            TlsProblem::AlpnSelected(other),
        ));
    }
    Ok(tls)
}

/// One line about a certificate: subject, issuer, names, expiry, chain length.
pub fn describe(summary: &CertificateSummary) -> String {
    let left_s = summary.not_after_unix_s - crate::tls::certificate::now_unix_s();
    let expiry = if left_s < 0 {
        format!("expired {}", summary.not_after_text())
    } else {
        // To the nearest day: a certificate issued for 30 days shows 30 on its first day.
        let days = (left_s + SECONDS_PER_DAY / 2) / SECONDS_PER_DAY;
        format!("expires {} (in {days} days)", summary.not_after_text())
    };
    format!(
        "certificate {} issued by {}, for {}, {expiry}, chain of {}",
        summary.subject,
        summary.issuer,
        summary.names.join(", "),
        summary.chain_len
    )
}

const SECONDS_PER_DAY: i64 = 86_400;

fn io_failure(err: io::Error) -> TlsProblem {
    if let Some(tls) = err
        .get_ref()
        .and_then(|e| e.downcast_ref::<rustls::Error>())
    {
        return TlsProblem::Rustls(tls.clone());
    }
    match err.kind() {
        io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut => TlsProblem::TimedOut,
        io::ErrorKind::UnexpectedEof => TlsProblem::Closed { reset: false },
        io::ErrorKind::ConnectionReset
        | io::ErrorKind::ConnectionAborted
        | io::ErrorKind::BrokenPipe => TlsProblem::Closed { reset: true },
        _ => TlsProblem::Io(err.to_string()),
    }
}

fn failed(plan: &TlsPlan, first: &[u8], problem: TlsProblem) -> (Observation, String) {
    let chain = plan.verifier.chain();
    let certificate = CertificateSummary::of_chain(&chain).ok();
    let mut detail = problem.to_string();
    if let Some(summary) = &certificate {
        detail.push_str("; ");
        detail.push_str(&describe(summary));
    }
    let seen = TlsSeen {
        problem,
        received: first.to_vec(),
        certificate,
        server_name: client::server_name_text(&plan.server_name),
    };
    (Observation::Tls(Box::new(seen)), detail)
}
