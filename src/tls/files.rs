//! The server's TLS configuration from PEM files: the certificate chain and key, further
//! certificates chosen by SNI, and the CA that signs client certificates (mTLS).

use std::collections::HashMap;
use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use rustls::crypto::CryptoProvider;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::server::{
    ClientHello, NoServerSessionStorage, ResolvesServerCert, WebPkiClientVerifier,
};
use rustls::sign::CertifiedKey;

use super::certificate::CertificateSummary;

/// Where the server's certificates are.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TlsFiles {
    /// The leaf certificate first, then its intermediates (PEM).
    pub cert: PathBuf,
    /// Its private key (PEM: PKCS#8, PKCS#1 or SEC1).
    pub key: PathBuf,
    /// Further certificates, each served to clients that ask for one of its names by SNI.
    pub sni: Vec<CertKeyPair>,
    /// CA certificates (PEM) that sign client certificates: when set, every client must
    /// present one.
    pub client_ca: Option<PathBuf>,
}

/// A certificate file and its key file, written `CERT_FILE:KEY_FILE` (`tls_sni_certs`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CertKeyPair {
    pub cert: PathBuf,
    pub key: PathBuf,
}

impl std::str::FromStr for CertKeyPair {
    type Err = &'static str;

    fn from_str(text: &str) -> Result<CertKeyPair, Self::Err> {
        match text.split_once(':') {
            Some((cert, key)) if !cert.is_empty() && !key.is_empty() && !key.contains(':') => {
                Ok(CertKeyPair {
                    cert: cert.into(),
                    key: key.into(),
                })
            }
            _ => Err("expected CERT_FILE:KEY_FILE (two PEM files, no ':' in their names)"),
        }
    }
}

impl fmt::Display for CertKeyPair {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}", self.cert.display(), self.key.display())
    }
}

/// A loaded configuration and what its default certificate says.
pub struct TlsLoaded {
    pub config: Arc<rustls::ServerConfig>,
    pub summary: CertificateSummary,
}

impl fmt::Debug for TlsLoaded {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TlsLoaded")
            .field("summary", &self.summary)
            .finish_non_exhaustive()
    }
}

/// Why the TLS files cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    #[error("cannot read {}: {source}", .path.display())]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{} holds no PEM certificate (expected -----BEGIN CERTIFICATE-----)", .path.display())]
    NoCertificate { path: PathBuf },
    #[error(
        "{} holds no PEM private key (expected -----BEGIN PRIVATE KEY----- or an RSA/EC key)",
        .path.display()
    )]
    NoKey { path: PathBuf },
    #[error("{}: {reason}", .path.display())]
    Unusable { path: PathBuf, reason: String },
    #[error(
        "the key in {} does not belong to the certificate in {}: {reason}",
        .key.display(), .cert.display()
    )]
    KeyMismatch {
        cert: PathBuf,
        key: PathBuf,
        reason: String,
    },
}

/// ALPN: a WebSocket upgrade is HTTP/1.1 (RFC 6455); a client that offers only `h2` is told
/// so by the handshake failing with `no_application_protocol`.
const ALPN_HTTP_1_1: &[u8] = b"http/1.1";

/// Reads the files and builds the server configuration: TLS 1.2 and 1.3, ALPN `http/1.1`,
/// stateless session tickets (no session memory on the server), certificates by SNI.
pub fn load(files: &TlsFiles) -> Result<TlsLoaded, TlsError> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let default = certified_key(&files.cert, &files.key, &provider)?;
    let summary =
        CertificateSummary::of_chain(&default.cert).map_err(|reason| TlsError::Unusable {
            path: files.cert.clone(),
            reason,
        })?;
    let mut by_name = HashMap::new();
    for CertKeyPair { cert, key } in &files.sni {
        let pair = Arc::new(certified_key(cert, key, &provider)?);
        let names = CertificateSummary::of_chain(&pair.cert)
            .map_err(|reason| TlsError::Unusable {
                path: cert.clone(),
                reason,
            })?
            .names;
        for name in names {
            by_name.insert(name.to_ascii_lowercase(), pair.clone());
        }
    }
    let builder = rustls::ServerConfig::builder_with_provider(provider.clone())
        .with_safe_default_protocol_versions()
        .map_err(|e| unusable(&files.cert, e))?;
    let builder = match &files.client_ca {
        None => builder.with_no_client_auth(),
        Some(path) => {
            let mut roots = rustls::RootCertStore::empty();
            for cert in certificates(path)? {
                roots.add(cert).map_err(|e| unusable(path, e))?;
            }
            let verifier = WebPkiClientVerifier::builder_with_provider(Arc::new(roots), provider)
                .build()
                .map_err(|e| unusable(path, e))?;
            builder.with_client_cert_verifier(verifier)
        }
    };
    let mut config = builder.with_cert_resolver(Arc::new(BySni {
        default: Arc::new(default),
        by_name,
    }));
    config.alpn_protocols = vec![ALPN_HTTP_1_1.to_vec()];
    // Resumption by tickets only: the server keeps nothing per session.
    config.session_storage = Arc::new(NoServerSessionStorage {});
    config.ticketer =
        rustls::crypto::ring::Ticketer::new().map_err(|e| unusable(&files.cert, e))?;
    // One ticket per full handshake is enough for a WebSocket client that reconnects.
    config.send_tls13_tickets = 1;
    Ok(TlsLoaded {
        config: Arc::new(config),
        summary,
    })
}

fn unusable(path: &Path, e: impl fmt::Display) -> TlsError {
    TlsError::Unusable {
        path: path.to_path_buf(),
        reason: e.to_string(),
    }
}

fn read(path: &Path) -> Result<Vec<u8>, TlsError> {
    std::fs::read(path).map_err(|source| TlsError::Read {
        path: path.to_path_buf(),
        source,
    })
}

/// Every certificate in a PEM file, in order.
pub fn certificates(path: &Path) -> Result<Vec<CertificateDer<'static>>, TlsError> {
    let pem = read(path)?;
    let certs: Vec<_> = CertificateDer::pem_slice_iter(&pem)
        .collect::<Result<_, _>>()
        .map_err(|e| unusable(path, e))?;
    if certs.is_empty() {
        return Err(TlsError::NoCertificate {
            path: path.to_path_buf(),
        });
    }
    Ok(certs)
}

fn private_key(path: &Path) -> Result<PrivateKeyDer<'static>, TlsError> {
    let pem = read(path)?;
    PrivateKeyDer::from_pem_slice(&pem).map_err(|e| match e {
        rustls::pki_types::pem::Error::NoItemsFound => TlsError::NoKey {
            path: path.to_path_buf(),
        },
        e => unusable(path, e),
    })
}

fn certified_key(
    cert: &Path,
    key: &Path,
    provider: &CryptoProvider,
) -> Result<CertifiedKey, TlsError> {
    let chain = certificates(cert)?;
    let key_der = private_key(key)?;
    CertifiedKey::from_der(chain, key_der, provider).map_err(|e| match e {
        rustls::Error::InconsistentKeys(reason) => TlsError::KeyMismatch {
            cert: cert.to_path_buf(),
            key: key.to_path_buf(),
            reason: format!("{reason:?}"),
        },
        e => unusable(key, e),
    })
}

/// The certificate for the name a client asks for by SNI, else the default one.
#[derive(Debug)]
struct BySni {
    default: Arc<CertifiedKey>,
    by_name: HashMap<String, Arc<CertifiedKey>>,
}

impl ResolvesServerCert for BySni {
    fn resolve(&self, hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        let pair = hello
            .server_name()
            .and_then(|name| self.by_name.get(&name.to_ascii_lowercase()));
        Some(pair.unwrap_or(&self.default).clone())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rustls::pki_types::ServerName;

    /// A temporary directory with a self-signed certificate and key per name.
    struct Scratch(PathBuf);

    impl Scratch {
        fn new(test: &str) -> Scratch {
            let dir =
                std::env::temp_dir().join(format!("ringws-tls-{test}-{}", std::process::id()));
            std::fs::create_dir_all(&dir).unwrap();
            Scratch(dir)
        }

        /// Writes NAME.crt and NAME.key for a certificate covering `name`; returns their paths
        /// and the certificate.
        fn pair(&self, name: &str) -> (CertKeyPair, CertificateDer<'static>) {
            let made = rcgen::generate_simple_self_signed(vec![name.to_string()]).unwrap();
            let pair = CertKeyPair {
                cert: self.0.join(format!("{name}.crt")),
                key: self.0.join(format!("{name}.key")),
            };
            std::fs::write(&pair.cert, made.cert.pem()).unwrap();
            std::fs::write(&pair.key, made.key_pair.serialize_pem()).unwrap();
            (pair, made.cert.der().clone())
        }
    }

    impl Drop for Scratch {
        fn drop(&mut self) {
            let _ = std::fs::remove_dir_all(&self.0);
        }
    }

    fn files(default: &CertKeyPair, sni: Vec<CertKeyPair>) -> TlsFiles {
        TlsFiles {
            cert: default.cert.clone(),
            key: default.key.clone(),
            sni,
            client_ca: None,
        }
    }

    /// The certificate a client asking for `name` by SNI is given, after a full handshake in
    /// memory.
    fn served_certificate(
        config: Arc<rustls::ServerConfig>,
        trusted: &[CertificateDer<'static>],
        name: &str,
    ) -> CertificateDer<'static> {
        let mut roots = rustls::RootCertStore::empty();
        for cert in trusted {
            roots.add(cert.clone()).unwrap();
        }
        let client_config = rustls::ClientConfig::builder_with_provider(Arc::new(
            rustls::crypto::ring::default_provider(),
        ))
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_root_certificates(roots)
        .with_no_client_auth();
        let server_name = ServerName::try_from(name.to_string()).unwrap();
        let mut client =
            rustls::ClientConnection::new(Arc::new(client_config), server_name).unwrap();
        let mut server = rustls::ServerConnection::new(config).unwrap();
        for _ in 0..8 {
            let mut wire = Vec::new();
            while client.wants_write() {
                client.write_tls(&mut wire).unwrap();
            }
            server.read_tls(&mut wire.as_slice()).unwrap();
            server.process_new_packets().unwrap();
            let mut wire = Vec::new();
            while server.wants_write() {
                server.write_tls(&mut wire).unwrap();
            }
            client.read_tls(&mut wire.as_slice()).unwrap();
            client.process_new_packets().unwrap();
        }
        assert!(!client.is_handshaking(), "the handshake finished");
        client.peer_certificates().unwrap()[0].clone()
    }

    #[test]
    fn a_client_gets_the_certificate_of_the_name_it_asks_for() {
        let scratch = Scratch::new("sni");
        let (main, main_der) = scratch.pair("localhost");
        let (other, other_der) = scratch.pair("other.test");
        let loaded = load(&files(&main, vec![other])).unwrap();
        assert_eq!(loaded.summary.names, vec!["localhost".to_string()]);
        let trusted = [main_der.clone(), other_der.clone()];
        let config = loaded.config;
        assert_eq!(
            served_certificate(config.clone(), &trusted, "other.test"),
            other_der
        );
        assert_eq!(
            served_certificate(config.clone(), &trusted, "localhost"),
            main_der
        );
        // A name no certificate covers gets the default one (the client then judges it).
        assert_eq!(
            served_certificate(config, std::slice::from_ref(&main_der), "localhost"),
            main_der
        );
    }

    #[test]
    fn a_key_of_another_certificate_is_refused_naming_both_files() {
        let scratch = Scratch::new("mismatch");
        let (a, _) = scratch.pair("a.test");
        let (b, _) = scratch.pair("b.test");
        let crossed = CertKeyPair {
            cert: a.cert.clone(),
            key: b.key.clone(),
        };
        let err = load(&files(&crossed, vec![])).unwrap_err();
        assert!(matches!(err, TlsError::KeyMismatch { .. }), "{err}");
        let text = err.to_string();
        assert!(
            text.contains("a.test.crt") && text.contains("b.test.key"),
            "{text}"
        );
    }

    #[test]
    fn files_without_a_certificate_or_key_are_named() {
        let scratch = Scratch::new("empty");
        let (good, _) = scratch.pair("good.test");
        let empty = scratch.0.join("empty.pem");
        std::fs::write(&empty, "not pem\n").unwrap();
        let no_cert = CertKeyPair {
            cert: empty.clone(),
            key: good.key.clone(),
        };
        let err = load(&files(&no_cert, vec![])).unwrap_err();
        assert!(matches!(err, TlsError::NoCertificate { .. }), "{err}");
        let no_key = CertKeyPair {
            cert: good.cert.clone(),
            key: empty,
        };
        let err = load(&files(&no_key, vec![])).unwrap_err();
        assert!(matches!(err, TlsError::NoKey { .. }), "{err}");
        let missing = CertKeyPair {
            cert: scratch.0.join("missing.pem"),
            key: good.key,
        };
        let err = load(&files(&missing, vec![])).unwrap_err();
        assert!(err.to_string().contains("missing.pem"), "{err}");
    }

    #[test]
    fn a_cert_key_pair_reads_and_prints_as_cert_colon_key() {
        let pair: CertKeyPair = "a.crt:a.key".parse().unwrap();
        assert_eq!(pair.to_string(), "a.crt:a.key");
        assert!("a.crt".parse::<CertKeyPair>().is_err());
        assert!(":a.key".parse::<CertKeyPair>().is_err());
    }
}
