//! Test certificates made at test time by benches/tls-certs.sh, and rustls server
//! configurations from them, for the tests of wss:// clients (`bench`, `doctor`).

use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::Arc;

use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::ServerConfig;

use super::proxy::{tools, Scratch};

/// Test certificates in a scratch directory (see benches/tls-certs.sh for the files), signed
/// through an intermediate CA when `intermediate`; None when the run skips tests that need
/// openssl.
pub fn certificates(name: &str, intermediate: bool, purpose: &str) -> Option<Scratch> {
    tools(["openssl"], purpose)?;
    let scratch = Scratch::new(name);
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("benches/tls-certs.sh");
    let status = Command::new("bash")
        .arg(script)
        .arg(&scratch.0)
        .args(intermediate.then_some("--intermediate"))
        .stderr(Stdio::null())
        .status()
        .expect("run bash");
    assert!(status.success(), "benches/tls-certs.sh failed");
    Some(scratch)
}

/// A rustls server configuration presenting `cert` of `dir` with `server.key`.
pub fn server_config(dir: &Path, cert: &str) -> ServerConfig {
    let certs = CertificateDer::pem_file_iter(dir.join(cert))
        .unwrap()
        .collect::<Result<Vec<_>, _>>()
        .unwrap();
    let key = PrivateKeyDer::from_pem_file(dir.join("server.key")).unwrap();
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_no_client_auth()
        .with_single_cert(certs, key)
        .unwrap()
}
