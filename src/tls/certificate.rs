//! What a certificate says, for the expiry gauge, `ringws check`, `ringws doctor` and the
//! identity a client certificate gives its connection.

use rustls::pki_types::CertificateDer;
use x509_parser::prelude::{FromDer, GeneralName, X509Certificate};

/// The facts of a chain's leaf certificate that operators ask about.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CertificateSummary {
    /// The subject, as an RFC 4514 string (`CN=example.com, O=...`).
    pub subject: String,
    pub issuer: String,
    /// DNS names and IP addresses it covers (subjectAltName; the CN when there is none).
    pub names: Vec<String>,
    pub not_before_unix_s: i64,
    pub not_after_unix_s: i64,
    /// Certificates in the chain the server sends (leaf included).
    pub chain_len: usize,
    /// Subject equals issuer: no CA vouches for it.
    pub self_signed: bool,
}

impl CertificateSummary {
    /// Reads the leaf (first) certificate of `chain`.
    pub fn of_chain(chain: &[CertificateDer<'_>]) -> Result<CertificateSummary, String> {
        let leaf = chain.first().ok_or("the chain is empty")?;
        let (_, cert) = X509Certificate::from_der(leaf.as_ref())
            .map_err(|e| format!("the certificate cannot be parsed: {e}"))?;
        let mut names = Vec::new();
        if let Ok(Some(san)) = cert.subject_alternative_name() {
            for name in &san.value.general_names {
                match name {
                    GeneralName::DNSName(dns) => names.push(dns.to_string()),
                    GeneralName::IPAddress(ip) => names.extend(ip_text(ip)),
                    _ => {}
                }
            }
        }
        if names.is_empty() {
            names.extend(common_name(&cert));
        }
        let validity = cert.validity();
        Ok(CertificateSummary {
            subject: cert.subject().to_string(),
            issuer: cert.issuer().to_string(),
            names,
            not_before_unix_s: validity.not_before.timestamp(),
            not_after_unix_s: validity.not_after.timestamp(),
            chain_len: chain.len(),
            self_signed: cert.subject() == cert.issuer(),
        })
    }

    /// `notBefore` as RFC 3339 (`2026-01-02T00:00:00Z`).
    pub fn not_before_text(&self) -> String {
        rfc3339(self.not_before_unix_s)
    }

    /// `notAfter` as RFC 3339.
    pub fn not_after_text(&self) -> String {
        rfc3339(self.not_after_unix_s)
    }

    /// Whole days from `now_unix_s` until it expires (negative once expired).
    pub fn days_left(&self, now_unix_s: i64) -> i64 {
        (self.not_after_unix_s - now_unix_s).div_euclid(86_400)
    }
}

/// Certificates that expire within this many days are warned about (server start and reload,
/// `ringws check`, `ringws doctor`).
pub const CERTIFICATE_WARN_DAYS: i64 = 14;

/// Seconds since the Unix epoch, now.
pub fn now_unix_s() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::SystemTime::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs() as i64)
}

fn rfc3339(unix_s: i64) -> String {
    let at =
        std::time::SystemTime::UNIX_EPOCH + std::time::Duration::from_secs(unix_s.max(0) as u64);
    humantime::format_rfc3339_seconds(at).to_string()
}

/// The identity a client certificate gives its connection: its subject's common name, or the
/// whole subject when it has none.
pub fn client_identity(cert: &CertificateDer<'_>) -> Option<String> {
    let (_, cert) = X509Certificate::from_der(cert.as_ref()).ok()?;
    common_name(&cert).or_else(|| Some(cert.subject().to_string()))
}

fn common_name(cert: &X509Certificate<'_>) -> Option<String> {
    cert.subject()
        .iter_common_name()
        .next()
        .and_then(|cn| cn.as_str().ok())
        .map(str::to_string)
}

fn ip_text(octets: &[u8]) -> Option<String> {
    match octets.len() {
        4 => Some(std::net::Ipv4Addr::from(<[u8; 4]>::try_from(octets).ok()?).to_string()),
        16 => Some(std::net::Ipv6Addr::from(<[u8; 16]>::try_from(octets).ok()?).to_string()),
        _ => None,
    }
}
