//! Why a TLS handshake failed, in the words of `ringws_tls_handshake_failures_total{reason}`,
//! the log and the debug ring.

use rustls::{AlertDescription, Error, PeerIncompatible};

/// The reasons a TLS handshake fails, each with its metric label and what to do.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(u8)]
pub enum TlsFailure {
    /// Plain HTTP (`ws://` or `http://`) sent to the TLS port.
    PlainHttp,
    /// No TLS version both sides speak (the client offers only TLS 1.0/1.1, or SSL).
    NoCommonVersion,
    /// No cipher suite, key exchange group or signature scheme in common.
    NoCommonCipher,
    /// The client offers ALPN protocols, none of them `http/1.1` (an `h2`-only client).
    NoCommonAlpn,
    /// The client refused our certificate (`unknown_ca`, `bad_certificate`, ...): it does not
    /// trust the chain, or the name does not match.
    CertificateRejected,
    /// mTLS: the client sent no certificate, or one our CA does not vouch for.
    ClientCertificate,
    /// The client sent an alert other than a certificate complaint.
    ClientAlert,
    /// The client closed the connection during the handshake without an alert, after it
    /// began one (a TCP probe that sends nothing is not counted).
    ClientClosed,
    /// The handshake did not finish within `handshake_timeout`.
    Timeout,
    /// Bytes that are not TLS, or TLS that breaks the protocol.
    Protocol,
}

/// Every reason, in metric order.
pub const TLS_FAILURES: [TlsFailure; 10] = [
    TlsFailure::PlainHttp,
    TlsFailure::NoCommonVersion,
    TlsFailure::NoCommonCipher,
    TlsFailure::NoCommonAlpn,
    TlsFailure::CertificateRejected,
    TlsFailure::ClientCertificate,
    TlsFailure::ClientAlert,
    TlsFailure::ClientClosed,
    TlsFailure::Timeout,
    TlsFailure::Protocol,
];

impl TlsFailure {
    /// The `reason` label.
    pub fn label(self) -> &'static str {
        match self {
            TlsFailure::PlainHttp => "plain_http",
            TlsFailure::NoCommonVersion => "no_common_version",
            TlsFailure::NoCommonCipher => "no_common_cipher",
            TlsFailure::NoCommonAlpn => "no_common_alpn",
            TlsFailure::CertificateRejected => "certificate_rejected",
            TlsFailure::ClientCertificate => "client_certificate",
            TlsFailure::ClientAlert => "client_alert",
            TlsFailure::ClientClosed => "client_closed",
            TlsFailure::Timeout => "timeout",
            TlsFailure::Protocol => "protocol",
        }
    }

    /// What an operator can do about it.
    pub fn hint(self) -> &'static str {
        match self {
            TlsFailure::PlainHttp => "the client spoke plain HTTP to the TLS port: use wss://",
            TlsFailure::NoCommonVersion => {
                "the client offers no TLS version the server speaks (1.2 and 1.3)"
            }
            TlsFailure::NoCommonCipher => {
                "the client offers no cipher suite or group the server has"
            }
            TlsFailure::NoCommonAlpn => {
                "the client offers ALPN without http/1.1 (WebSocket upgrades need HTTP/1.1)"
            }
            TlsFailure::CertificateRejected => {
                "the client does not trust the certificate: check the chain (intermediates in \
                 tls_cert), the names it covers and its dates; `ringws doctor wss://...` names it"
            }
            TlsFailure::ClientCertificate => {
                "the client presented no certificate signed by tls_client_ca"
            }
            TlsFailure::ClientAlert => "the client ended the handshake with an alert",
            TlsFailure::ClientClosed => {
                "the client closed the connection during the handshake without saying why: \
                 often a client that does not trust the certificate and sends no alert (Python's \
                 asyncio, for one); check the certificate as for certificate_rejected"
            }
            TlsFailure::Timeout => "the TLS handshake did not finish within handshake_timeout",
            TlsFailure::Protocol => "the bytes received are not valid TLS",
        }
    }

    /// The alert that tells the client why, when the server sends one itself; none for a
    /// failure the client announced with its own alert.
    pub fn alert(self) -> Option<AlertDescription> {
        match self {
            TlsFailure::NoCommonVersion => Some(AlertDescription::ProtocolVersion),
            TlsFailure::NoCommonCipher => Some(AlertDescription::HandshakeFailure),
            TlsFailure::NoCommonAlpn => Some(AlertDescription::NoApplicationProtocol),
            TlsFailure::ClientCertificate => Some(AlertDescription::CertificateRequired),
            TlsFailure::Protocol => Some(AlertDescription::DecodeError),
            TlsFailure::PlainHttp
            | TlsFailure::CertificateRejected
            | TlsFailure::ClientAlert
            | TlsFailure::ClientClosed
            | TlsFailure::Timeout => None,
        }
    }

    /// Classifies a handshake error from rustls.
    pub fn of(error: &Error) -> TlsFailure {
        match error {
            Error::PeerIncompatible(p) => match p {
                // Only clients older than TLS 1.2 omit signature_algorithms.
                PeerIncompatible::SupportedVersionsExtensionRequired
                | PeerIncompatible::SignatureAlgorithmsExtensionRequired
                | PeerIncompatible::Tls12NotOffered
                | PeerIncompatible::Tls12NotOfferedOrEnabled
                | PeerIncompatible::ServerDoesNotSupportTls12Or13 => TlsFailure::NoCommonVersion,
                _ => TlsFailure::NoCommonCipher,
            },
            Error::NoApplicationProtocol => TlsFailure::NoCommonAlpn,
            Error::AlertReceived(alert) => match alert {
                AlertDescription::UnknownCA
                | AlertDescription::BadCertificate
                | AlertDescription::CertificateUnknown
                | AlertDescription::CertificateExpired
                | AlertDescription::CertificateRevoked
                | AlertDescription::UnsupportedCertificate
                | AlertDescription::AccessDenied => TlsFailure::CertificateRejected,
                AlertDescription::ProtocolVersion => TlsFailure::NoCommonVersion,
                AlertDescription::HandshakeFailure | AlertDescription::InsufficientSecurity => {
                    TlsFailure::NoCommonCipher
                }
                AlertDescription::NoApplicationProtocol => TlsFailure::NoCommonAlpn,
                _ => TlsFailure::ClientAlert,
            },
            Error::NoCertificatesPresented | Error::InvalidCertificate(_) => {
                TlsFailure::ClientCertificate
            }
            _ => TlsFailure::Protocol,
        }
    }
}

/// Longest HTTP method [`looks_like_http`] recognises (`OPTIONS`).
const MAX_METHOD_BYTES: usize = 7;

/// True when `bytes` could still grow into an HTTP request line: a few uppercase letters and no
/// space yet (a request whose first segment is `G`). A TLS record starts with its content type
/// (22 for a ClientHello), never a letter.
pub fn may_become_http(bytes: &[u8]) -> bool {
    bytes.len() <= MAX_METHOD_BYTES && bytes.iter().all(u8::is_ascii_uppercase)
}

/// True when `bytes` begin like an HTTP request (`GET /`, `POST /`, ...) rather than a TLS
/// record (content type 22 for a ClientHello).
pub fn looks_like_http(bytes: &[u8]) -> bool {
    let method_len = bytes.iter().take_while(|b| b.is_ascii_uppercase()).count();
    (3..=MAX_METHOD_BYTES).contains(&method_len) && bytes.get(method_len) == Some(&b' ')
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_reason_has_a_distinct_label() {
        let mut labels: Vec<_> = TLS_FAILURES.iter().map(|f| f.label()).collect();
        labels.sort();
        labels.dedup();
        assert_eq!(labels.len(), TLS_FAILURES.len());
        for (i, f) in TLS_FAILURES.iter().enumerate() {
            assert_eq!(*f as usize, i, "TLS_FAILURES is in discriminant order");
        }
    }

    #[test]
    fn a_client_that_distrusts_the_chain_is_told_apart_from_other_alerts() {
        let rejected = Error::AlertReceived(AlertDescription::UnknownCA);
        assert_eq!(TlsFailure::of(&rejected), TlsFailure::CertificateRejected);
        let version = Error::PeerIncompatible(PeerIncompatible::SupportedVersionsExtensionRequired);
        assert_eq!(TlsFailure::of(&version), TlsFailure::NoCommonVersion);
        let other = Error::AlertReceived(AlertDescription::DecodeError);
        assert_eq!(TlsFailure::of(&other), TlsFailure::ClientAlert);
    }

    #[test]
    fn the_first_letters_of_a_request_wait_for_the_rest() {
        assert!(may_become_http(b"G"));
        assert!(may_become_http(b"OPTIONS"));
        assert!(!may_become_http(b"GET "));
        assert!(!may_become_http(b"OPTIONSX"));
        assert!(!may_become_http(&[0x16, 0x03]));
    }

    #[test]
    fn http_is_recognised_and_a_client_hello_is_not() {
        assert!(looks_like_http(b"GET / HTTP/1.1\r\n"));
        assert!(looks_like_http(b"OPTIONS * HTTP/1.1\r\n"));
        assert!(!looks_like_http(&[0x16, 0x03, 0x01, 0x02, 0x00]));
        assert!(!looks_like_http(b"GE"));
    }
}
