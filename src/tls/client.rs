//! The TLS client `ringws bench` and `ringws doctor` share: the roots a server's chain is checked
//! against (the system's, `--ca-file`, or none with `--insecure`), the client configuration
//! (TLS 1.3 and 1.2, ALPN `http/1.1`), the server name a URL's host gives, a verifier that can keep
//! the chain the server sent, and what a rustls error means ([`TlsCause`]).

use std::fmt;
use std::path::Path;
use std::sync::{Arc, Mutex};

use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::client::WebPkiServerVerifier;
use rustls::crypto::{ring, verify_tls12_signature, verify_tls13_signature, CryptoProvider};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::{ClientConfig, DigitallySignedStruct, RootCertStore, SignatureScheme};

/// The one ALPN protocol a WebSocket client offers over TLS (RFC 6455 runs on HTTP/1.1).
pub const ALPN_HTTP11: &[u8] = b"http/1.1";

/// What the server's certificate chain is checked against.
#[derive(Clone, Copy, Debug, Default)]
pub struct Trust<'a> {
    /// Trust these PEM certificates as roots instead of the system's.
    pub ca_file: Option<&'a Path>,
    /// Accept any chain (the handshake signature is still checked).
    pub insecure: bool,
}

/// The crypto provider every client uses.
pub fn provider() -> Arc<CryptoProvider> {
    Arc::new(ring::default_provider())
}

/// The verifier `trust` asks for: webpki against the roots, or any chain with `--insecure`;
/// `record`: keep the chain the server sent (see [`ChainVerifier::chain`]).
pub fn verifier(
    trust: Trust<'_>,
    provider: &Arc<CryptoProvider>,
    record: bool,
) -> Result<Arc<ChainVerifier>, String> {
    let webpki = if trust.insecure {
        None
    } else {
        let roots = match trust.ca_file {
            Some(path) => roots_from_file(path)?,
            None => system_roots()?,
        };
        let built = WebPkiServerVerifier::builder_with_provider(Arc::new(roots), provider.clone())
            .build()
            .map_err(|err| format!("cannot set up certificate verification: {err}"))?;
        Some(built)
    };
    Ok(Arc::new(ChainVerifier {
        webpki,
        provider: provider.clone(),
        chain: record.then(|| Mutex::new(Vec::new())),
    }))
}

/// A client configuration: TLS 1.3 and 1.2, the given verifier, ALPN `http/1.1`.
pub fn config(
    verifier: Arc<dyn ServerCertVerifier>,
    provider: Arc<CryptoProvider>,
) -> Result<ClientConfig, String> {
    let mut config = ClientConfig::builder_with_provider(provider)
        .with_protocol_versions(rustls::ALL_VERSIONS)
        .map_err(|err| format!("cannot set up TLS: {err}"))?
        .dangerous()
        .with_custom_certificate_verifier(verifier)
        .with_no_client_auth();
    config.alpn_protocols = vec![ALPN_HTTP11.to_vec()];
    Ok(config)
}

/// The name a URL's host is verified (and sent by SNI) as.
pub fn server_name(host: &str) -> Result<ServerName<'static>, String> {
    ServerName::try_from(host.to_owned())
        .map_err(|_| format!("{host:?} is neither a DNS name nor an IP address TLS can verify"))
}

/// A server name as a person writes it.
pub fn server_name_text(name: &ServerName<'_>) -> String {
    match name {
        ServerName::DnsName(name) => name.as_ref().to_owned(),
        ServerName::IpAddress(ip) => std::net::IpAddr::from(*ip).to_string(),
        other => format!("{other:?}"),
    }
}

fn roots_from_file(path: &Path) -> Result<RootCertStore, String> {
    let shown = path.display();
    let certs: Vec<CertificateDer<'static>> = CertificateDer::pem_file_iter(path)
        .and_then(|certs| certs.collect())
        .map_err(|err| format!("--ca-file {shown}: {err}"))?;
    let mut roots = RootCertStore::empty();
    let (added, _) = roots.add_parsable_certificates(certs);
    if added == 0 {
        return Err(format!(
            "--ca-file {shown} holds no usable CERTIFICATE block: give the PEM file of the CA \
             that signed the server's certificate"
        ));
    }
    Ok(roots)
}

fn system_roots() -> Result<RootCertStore, String> {
    let found = rustls_native_certs::load_native_certs();
    let mut roots = RootCertStore::empty();
    let (added, _) = roots.add_parsable_certificates(found.certs);
    if added == 0 {
        let why = found
            .errors
            .first()
            .map(|err| format!(" ({err})"))
            .unwrap_or_default();
        return Err(format!(
            "no system root certificates found{why}: install the ca-certificates package, or \
             give the server's CA with --ca-file PATH (--insecure for a self-signed test server)"
        ));
    }
    Ok(roots)
}

/// Checks the server's chain against the roots (webpki), or accepts any chain with
/// `--insecure`; the handshake signature is checked either way, so the TLS work the server does
/// is the same. When recording, it keeps the chain first, so doctor can describe a certificate
/// that verification refuses.
#[derive(Debug)]
pub struct ChainVerifier {
    /// None: `--insecure`.
    webpki: Option<Arc<WebPkiServerVerifier>>,
    provider: Arc<CryptoProvider>,
    chain: Option<Mutex<Vec<CertificateDer<'static>>>>,
}

impl ChainVerifier {
    /// The chain the server sent (leaf first); empty before its Certificate message or when
    /// not recording.
    pub fn chain(&self) -> Vec<CertificateDer<'static>> {
        self.chain.as_ref().map_or_else(Vec::new, |chain| {
            chain.lock().unwrap_or_else(|e| e.into_inner()).clone()
        })
    }
}

impl ServerCertVerifier for ChainVerifier {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        server_name: &ServerName<'_>,
        ocsp_response: &[u8],
        now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        if let Some(chain) = &self.chain {
            *chain.lock().unwrap_or_else(|e| e.into_inner()) = std::iter::once(end_entity)
                .chain(intermediates)
                .map(|c| c.clone().into_owned())
                .collect();
        }
        match &self.webpki {
            Some(webpki) => webpki.verify_server_cert(
                end_entity,
                intermediates,
                server_name,
                ocsp_response,
                now,
            ),
            None => Ok(ServerCertVerified::assertion()),
        }
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        verify_tls12_signature(
            message,
            cert,
            dss,
            &self.provider.signature_verification_algorithms,
        )
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        verify_tls13_signature(
            message,
            cert,
            dss,
            &self.provider.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.provider
            .signature_verification_algorithms
            .supported_schemes()
    }
}

/// Why a wss:// connection's TLS failed. Labels are `tls:` and the name.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum TlsCause {
    /// The chain leads to no trusted root: self-signed, a private CA not given with `--ca-file`,
    /// or a public CA's leaf sent without its intermediate.
    UnknownIssuer,
    /// The certificate does not cover the URL's host.
    NameMismatch,
    Expired,
    NotYetValid,
    /// Any other rejected certificate (bad signature, revoked, wrong usage, unparseable).
    BadCertificate,
    /// The server ended the handshake with this TLS alert (e.g. 40 handshake_failure).
    Alert(u8),
    /// No TLS version or cipher suite in common.
    NoCommonVersionOrCipher,
    /// The answer is not TLS at all: the port speaks plain HTTP (a ws:// port).
    NotTls,
    /// Anything else the server did wrong at the TLS layer.
    Protocol,
}

impl fmt::Display for TlsCause {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let name = match *self {
            TlsCause::UnknownIssuer => "unknown_issuer",
            TlsCause::NameMismatch => "name_mismatch",
            TlsCause::Expired => "expired",
            TlsCause::NotYetValid => "not_yet_valid",
            TlsCause::BadCertificate => "bad_certificate",
            TlsCause::Alert(code) => return write!(f, "alert_{}", alert_name(code)),
            TlsCause::NoCommonVersionOrCipher => "no_common_version_or_cipher",
            TlsCause::NotTls => "not_tls",
            TlsCause::Protocol => "protocol_error",
        };
        f.write_str(name)
    }
}

/// RFC 8446 §6 names of the alerts a server sends during a handshake; the number otherwise.
pub fn alert_name(code: u8) -> String {
    let name = match code {
        10 => "unexpected_message",
        20 => "bad_record_mac",
        40 => "handshake_failure",
        42 => "bad_certificate",
        43 => "unsupported_certificate",
        45 => "certificate_expired",
        46 => "certificate_unknown",
        47 => "illegal_parameter",
        48 => "unknown_ca",
        49 => "access_denied",
        50 => "decode_error",
        51 => "decrypt_error",
        70 => "protocol_version",
        71 => "insufficient_security",
        80 => "internal_error",
        109 => "missing_extension",
        110 => "unsupported_extension",
        112 => "unrecognized_name",
        116 => "certificate_required",
        120 => "no_application_protocol",
        _ => return code.to_string(),
    };
    name.to_owned()
}

impl From<&rustls::Error> for TlsCause {
    fn from(error: &rustls::Error) -> TlsCause {
        use rustls::{CertificateError as Cert, Error, InvalidMessage};
        match error {
            Error::InvalidCertificate(cert) => match cert {
                Cert::UnknownIssuer => TlsCause::UnknownIssuer,
                Cert::NotValidForName | Cert::NotValidForNameContext { .. } => {
                    TlsCause::NameMismatch
                }
                Cert::Expired | Cert::ExpiredContext { .. } => TlsCause::Expired,
                Cert::NotValidYet | Cert::NotValidYetContext { .. } => TlsCause::NotYetValid,
                _ => TlsCause::BadCertificate,
            },
            Error::AlertReceived(alert) => TlsCause::Alert(u8::from(*alert)),
            Error::PeerIncompatible(_) => TlsCause::NoCommonVersionOrCipher,
            Error::InvalidMessage(InvalidMessage::InvalidContentType)
            | Error::InvalidMessage(InvalidMessage::UnknownProtocolVersion) => TlsCause::NotTls,
            _ => TlsCause::Protocol,
        }
    }
}
