//! What a failed TLS handshake means: the certificate problems (dates, issuer, a missing
//! intermediate, the names), no common version, a plain-HTTP port, an ALPN mismatch, each with
//! its fix.

use std::fmt;

use super::{diagnosis, printable, Context, Diagnosis};
use crate::tls::certificate::CertificateSummary;
use crate::tls::client::{alert_name, TlsCause};

/// How the TLS step failed.
#[derive(Clone, Debug, PartialEq)]
pub enum TlsProblem {
    /// rustls refused the server's certificate or handshake, or received an alert.
    Rustls(rustls::Error),
    /// The server selected an ALPN protocol other than `http/1.1`.
    AlpnSelected(String),
    /// The server closed (`reset`: reset) the connection during the handshake.
    Closed {
        reset: bool,
    },
    TimedOut,
    Io(String),
}

impl fmt::Display for TlsProblem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            // rustls's own text carries times that change every run; the cause's label does not.
            TlsProblem::Rustls(err) => match TlsCause::from(err) {
                TlsCause::Alert(code) => write!(f, "the server sent alert {}", alert_name(code)),
                TlsCause::Protocol | TlsCause::NoCommonVersionOrCipher => write!(f, "{err}"),
                TlsCause::NotTls => f.write_str("the answer is not TLS"),
                cause => write!(f, "certificate refused: {cause}"),
            },
            TlsProblem::AlpnSelected(p) => write!(f, "the server selected ALPN {p:?}"),
            TlsProblem::Closed { reset: false } => f.write_str("closed during the handshake"),
            TlsProblem::Closed { reset: true } => f.write_str("reset during the handshake"),
            TlsProblem::TimedOut => f.write_str("no handshake within the timeout"),
            TlsProblem::Io(err) => f.write_str(err),
        }
    }
}

/// Everything doctor saw of a failed TLS handshake.
#[derive(Clone, Debug, PartialEq)]
pub struct TlsSeen {
    pub problem: TlsProblem,
    /// The first bytes the server sent.
    pub received: Vec<u8>,
    /// The leaf of the chain the server sent, when it got that far.
    pub certificate: Option<CertificateSummary>,
    /// The name verified (the URL's host).
    pub server_name: String,
}

// rustls::Error is PartialEq but not Eq; Observation is compared only in tests.
impl Eq for TlsSeen {}

/// RFC 8446 alert numbers doctor explains on their own.
const ALERT_PROTOCOL_VERSION: u8 = 70;
const ALERT_NO_APPLICATION_PROTOCOL: u8 = 120;

/// Explains a failed handshake.
pub(super) fn tls(ctx: &Context, seen: &TlsSeen) -> Diagnosis {
    let authority = &ctx.authority;
    if seen.received.starts_with(b"HTTP/") {
        let line = String::from_utf8_lossy(&seen.received);
        let line = line.lines().next().unwrap_or_default();
        return diagnosis(
            format!(
                "{authority} answered the TLS handshake in plain HTTP ({line:?}): the port \
                 speaks ws://, not TLS"
            ),
            format!(
                "connect with ws://{authority}{}, or point wss:// at the TLS port (ringws serves \
                 wss:// on `tls_listen`, see docs/tls.md)",
                ctx.target
            ),
        );
    }
    let cert = seen.certificate.as_ref();
    let error = match &seen.problem {
        TlsProblem::Rustls(error) => error,
        TlsProblem::AlpnSelected(protocol) => return alpn(authority, Some(protocol)),
        TlsProblem::Closed { reset } => {
            let how = if *reset { "reset" } else { "closed" };
            return diagnosis(
                format!("{authority} {how} the connection during the TLS handshake"),
                "the server refused the handshake without an alert: check its log (ringws logs \
                 each failed handshake with its reason and counts it in \
                 ringws_tls_handshake_failures_total), and that the port serves TLS",
            );
        }
        TlsProblem::TimedOut => {
            return diagnosis(
                format!(
                    "{authority} did not finish the TLS handshake within {}",
                    ctx.timeout()
                ),
                "the server is stalled, or the port does not speak TLS: check with ws:// and \
                 raise --timeout to see whether the handshake is only slow",
            )
        }
        TlsProblem::Io(err) => {
            return diagnosis(
                format!("the TLS handshake with {authority} failed: {err}"),
                "check the network path and the server's log",
            )
        }
    };
    if let rustls::Error::PeerMisbehaved(
        rustls::PeerMisbehaved::SelectedUnofferedApplicationProtocol,
    ) = error
    {
        return alpn(authority, None);
    }
    match (TlsCause::from(error), cert) {
        (TlsCause::Expired, Some(cert)) => diagnosis(
            format!(
                "the certificate of {authority} ({}) expired on {}",
                cert.subject,
                cert.not_after_text()
            ),
            "renew the certificate and install it (ringws reloads tls_cert and tls_key on \
             SIGHUP); if it is not expired, check this machine's clock",
        ),
        (TlsCause::NotYetValid, Some(cert)) => diagnosis(
            format!(
                "the certificate of {authority} ({}) is not valid before {}",
                cert.subject,
                cert.not_before_text()
            ),
            "check the clock of this machine and of the machine that issued it; or wait until \
             that date",
        ),
        (TlsCause::UnknownIssuer, Some(cert)) if cert.self_signed => diagnosis(
            format!(
                "the certificate of {authority} ({}) is self-signed: no CA vouches for it",
                cert.subject
            ),
            "use a certificate from a public CA (e.g. Let's Encrypt) for browsers; for a test \
             server, trust it with --ca-file CERT.pem (or --insecure)",
        ),
        // webpki refuses a self-signed certificate marked CA:TRUE (openssl req -x509's default)
        // as a CA used as a server certificate, trusted or not.
        (TlsCause::BadCertificate, Some(cert)) if cert.self_signed => diagnosis(
            format!(
                "the certificate of {authority} ({}) is self-signed and refused as a server \
                 certificate ({error}): it is marked as a CA (basicConstraints CA:TRUE), which \
                 TLS clients do not accept for a server even when they trust it",
                cert.subject
            ),
            "reissue it as a server certificate (basicConstraints CA:FALSE, the host in \
             subjectAltName; benches/tls-certs.sh shows the openssl commands), or use a \
             certificate from a public CA; --insecure skips the check",
        ),
        (TlsCause::UnknownIssuer, Some(cert)) if cert.chain_len == 1 => diagnosis(
            format!(
                "{authority} sent only its own certificate ({}), issued by {}, which is not a \
                 trusted root: the intermediate certificate is missing",
                cert.subject, cert.issuer
            ),
            format!(
                "append the intermediate certificates to the server's tls_cert file, after the \
                 leaf (CAs ship them as the chain or fullchain file), and reload; if {} is your \
                 own root CA, give it to clients (doctor: --ca-file)",
                cert.issuer
            ),
        ),
        (TlsCause::UnknownIssuer, Some(cert)) => diagnosis(
            format!(
                "the certificate chain of {authority} ({}, issued by {}, {} certificates) leads \
                 to no trusted root",
                cert.subject, cert.issuer, cert.chain_len
            ),
            "give the CA that signed it with --ca-file CA.pem (clients need it installed too), \
             or use a certificate from a public CA",
        ),
        (TlsCause::NameMismatch, Some(cert)) => diagnosis(
            format!(
                "the certificate of {authority} does not cover {:?}: it covers {}",
                seen.server_name,
                cert.names.join(", ")
            ),
            format!(
                "connect with a name the certificate covers, or reissue it with {:?} in \
                 subjectAltName",
                seen.server_name
            ),
        ),
        (TlsCause::Alert(ALERT_PROTOCOL_VERSION), _) | (TlsCause::NoCommonVersionOrCipher, _) => {
            diagnosis(
                format!(
                    "{authority} and doctor have no TLS version (or cipher suite) in common \
                     ({error}): doctor offers TLS 1.3 and 1.2, as browsers do"
                ),
                "enable TLS 1.2 and 1.3 on the server (ringws serves both); TLS 1.0 and 1.1 \
                 are refused by every current browser",
            )
        }
        (TlsCause::Alert(ALERT_NO_APPLICATION_PROTOCOL), _) => alpn(authority, None),
        (TlsCause::NotTls, _) => diagnosis(
            format!(
                "{authority} answered the TLS handshake with bytes that are not TLS ({})",
                printable(&seen.received)
            ),
            "check the port: it serves another protocol",
        ),
        (TlsCause::Alert(code), _) => diagnosis(
            format!(
                "{authority} refused the TLS handshake with the alert {}",
                alert_name(code)
            ),
            "the server's log says why (ringws logs each failed handshake with its reason)",
        ),
        _ => diagnosis(
            format!("the TLS handshake with {authority} failed: {error}"),
            "check the certificate (`openssl s_client -connect HOST:PORT -showcerts`) and the \
             server's log",
        ),
    }
}

/// A server whose ALPN excludes `http/1.1` (`selected`: what it chose instead).
fn alpn(authority: &str, selected: Option<&str>) -> Diagnosis {
    let what = match selected {
        Some(p) => format!("selected ALPN {p:?}"),
        None => "refused ALPN http/1.1 (it offers only h2, or no protocol doctor offered)".into(),
    };
    diagnosis(
        format!(
            "{authority} {what}: WebSockets need HTTP/1.1, so browsers cannot open wss:// there"
        ),
        "add http/1.1 to the server's ALPN protocols (nginx/HAProxy: `alpn h2,http/1.1`); ringws \
         offers http/1.1",
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn summary(self_signed: bool, chain_len: usize) -> CertificateSummary {
        CertificateSummary {
            subject: "CN=localhost".into(),
            issuer: if self_signed {
                "CN=localhost"
            } else {
                "CN=Test CA"
            }
            .into(),
            names: vec!["localhost".into(), "127.0.0.1".into()],
            not_before_unix_s: 1_577_836_800,
            not_after_unix_s: 1_577_923_200,
            chain_len,
            self_signed,
        }
    }

    fn seen(error: rustls::Error, cert: Option<CertificateSummary>) -> TlsSeen {
        TlsSeen {
            problem: TlsProblem::Rustls(error),
            received: Vec::new(),
            certificate: cert,
            server_name: "example.com".into(),
        }
    }

    fn cause(seen: &TlsSeen) -> String {
        let ctx = Context {
            authority: "example.com:443".into(),
            target: "/".into(),
            ..Context::default()
        };
        let d = tls(&ctx, seen);
        format!("{} | {}", d.cause, d.fix)
    }

    #[test]
    fn certificate_problems_have_their_own_causes() {
        use rustls::CertificateError as C;
        let bad = |e: C, cert| cause(&seen(rustls::Error::InvalidCertificate(e), Some(cert)));
        let expired = bad(C::Expired, summary(false, 2));
        assert!(expired.contains("expired on 2020-01-02"), "{expired}");
        let self_signed = bad(C::UnknownIssuer, summary(true, 1));
        assert!(self_signed.contains("self-signed"), "{self_signed}");
        let missing = bad(C::UnknownIssuer, summary(false, 1));
        assert!(missing.contains("intermediate"), "{missing}");
        assert!(missing.contains("tls_cert"), "{missing}");
        let unknown = bad(C::UnknownIssuer, summary(false, 2));
        assert!(unknown.contains("no trusted root"), "{unknown}");
        let early = bad(C::NotValidYet, summary(false, 2));
        assert!(early.contains("not valid before 2020-01-01"), "{early}");
        assert!(early.contains("clock"), "{early}");
        let name = bad(C::NotValidForName, summary(false, 2));
        assert!(name.contains("it covers localhost, 127.0.0.1"), "{name}");
    }

    #[test]
    fn version_alpn_and_plain_http() {
        use rustls::AlertDescription as A;
        let version = cause(&seen(
            rustls::Error::AlertReceived(A::ProtocolVersion),
            None,
        ));
        assert!(version.contains("no TLS version"), "{version}");
        let alpn = cause(&seen(
            rustls::Error::AlertReceived(A::NoApplicationProtocol),
            None,
        ));
        assert!(alpn.contains("only h2"), "{alpn}");
        let mut plain = seen(
            rustls::Error::InvalidMessage(rustls::InvalidMessage::InvalidContentType),
            None,
        );
        plain.received = b"HTTP/1.1 400 Bad Request\r\n".to_vec();
        let plain = cause(&plain);
        assert!(plain.contains("\"HTTP/1.1 400 Bad Request\""), "{plain}");
        assert!(plain.contains("ws://example.com:443/"), "{plain}");
    }
}
