//! Why an operation failed. Every failure the generator sees is counted under one cause and
//! reported; nothing is folded into "other".

use std::collections::BTreeMap;
use std::fmt;

use crate::protocol::client_handshake::{ResponseError, UpgradeError};
pub use crate::tls::client::TlsCause;

/// One cause of failure. `Display` gives the stable label used in reports and JSON.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Cause {
    /// `socket(2)`/`bind(2)` failed, by errno (EMFILE: raise `ulimit -n`).
    Socket(i32),
    /// `connect(2)` failed, by errno (ECONNREFUSED, EADDRNOTAVAIL: out of ephemeral ports, ...).
    Connect(i32),
    /// No TCP connection within `--timeout`.
    ConnectTimeout,
    /// No complete HTTP response within `--timeout`.
    HandshakeTimeout,
    /// The server answered the upgrade with this status instead of 101.
    HttpStatus(u16),
    /// 101, but `Sec-WebSocket-Accept` missing or not base64(sha1(key + GUID)).
    BadAccept,
    /// 101, but without `Upgrade: websocket` / `Connection: upgrade`, or with an extension or
    /// subprotocol the client never offered.
    BadUpgrade,
    /// Not a parseable HTTP/1.1 response.
    BadResponse,
    /// The response head exceeded the client's limit.
    ResponseTooLarge,
    /// ECONNRESET on a read or write.
    Reset,
    /// Another read/write errno.
    Io(i32),
    /// The server closed TCP without a close frame.
    Eof,
    /// The server sent a close frame on its own initiative, by close code (1005: none).
    ServerClose(u16),
    /// A malformed or masked frame from the server.
    BadFrame,
    /// A data message where none was expected (idle/connect modes).
    UnexpectedMessage,
    /// An echo differing from what was sent (opcode, length or any byte).
    EchoMismatch,
    /// No echo within `--timeout`.
    EchoTimeout,
    /// No close frame, or no TCP close after it, within `--timeout` of sending ours.
    CloseTimeout,
    /// Never attempted: `--open-timeout` ran out first (idle mode).
    OpenTimeout,
    /// wss://: the TLS handshake or a TLS record failed.
    Tls(TlsCause),
    /// `--deflate`: the server upgraded without accepting permessage-deflate.
    DeflateDeclined,
}

impl fmt::Display for Cause {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match *self {
            Cause::Socket(errno) => write!(f, "socket:{}", errno_name(errno)),
            Cause::Connect(errno) => write!(f, "connect:{}", errno_name(errno)),
            Cause::ConnectTimeout => f.write_str("timeout_connect"),
            Cause::HandshakeTimeout => f.write_str("timeout_handshake"),
            Cause::HttpStatus(status) => write!(f, "http_{status}"),
            Cause::BadAccept => f.write_str("bad_accept"),
            Cause::BadUpgrade => f.write_str("bad_upgrade"),
            Cause::BadResponse => f.write_str("bad_response"),
            Cause::ResponseTooLarge => f.write_str("response_too_large"),
            Cause::Reset => f.write_str("reset"),
            Cause::Io(errno) => write!(f, "io:{}", errno_name(errno)),
            Cause::Eof => f.write_str("eof"),
            Cause::ServerClose(code) => write!(f, "server_close_{code}"),
            Cause::BadFrame => f.write_str("bad_frame"),
            Cause::UnexpectedMessage => f.write_str("unexpected_message"),
            Cause::EchoMismatch => f.write_str("echo_mismatch"),
            Cause::EchoTimeout => f.write_str("timeout_echo"),
            Cause::CloseTimeout => f.write_str("timeout_close"),
            Cause::OpenTimeout => f.write_str("open_timeout"),
            Cause::Tls(cause) => write!(f, "tls:{cause}"),
            Cause::DeflateDeclined => f.write_str("deflate_declined"),
        }
    }
}

impl From<ResponseError> for Cause {
    fn from(error: ResponseError) -> Cause {
        match error {
            ResponseError::NotHttp => Cause::BadResponse,
            // A refusal with a long head is still counted by its status.
            ResponseError::TooLarge { status } => {
                status.map_or(Cause::ResponseTooLarge, Cause::HttpStatus)
            }
        }
    }
}

impl From<UpgradeError> for Cause {
    fn from(error: UpgradeError) -> Cause {
        match error {
            UpgradeError::Status(status) => Cause::HttpStatus(status),
            UpgradeError::AcceptMissing | UpgradeError::AcceptWrong { .. } => Cause::BadAccept,
            UpgradeError::UpgradeHeader { .. }
            | UpgradeError::ConnectionHeader { .. }
            | UpgradeError::ProtocolNotOffered { .. }
            | UpgradeError::ExtensionNotOffered { .. }
            | UpgradeError::DeflateAnswer { .. } => Cause::BadUpgrade,
        }
    }
}

/// Classifies a failed read/write by errno.
pub fn io_cause(errno: i32) -> Cause {
    if errno == libc::ECONNRESET {
        Cause::Reset
    } else {
        Cause::Io(errno)
    }
}

/// The symbolic name of the errno values a load test meets; `errno_N` otherwise.
pub fn errno_name(errno: i32) -> String {
    let name = match errno {
        libc::ECONNREFUSED => "ECONNREFUSED",
        libc::ECONNRESET => "ECONNRESET",
        libc::ECONNABORTED => "ECONNABORTED",
        libc::ETIMEDOUT => "ETIMEDOUT",
        libc::EHOSTUNREACH => "EHOSTUNREACH",
        libc::ENETUNREACH => "ENETUNREACH",
        libc::EADDRNOTAVAIL => "EADDRNOTAVAIL",
        libc::EADDRINUSE => "EADDRINUSE",
        libc::EMFILE => "EMFILE",
        libc::ENFILE => "ENFILE",
        libc::ENOBUFS => "ENOBUFS",
        libc::ENOMEM => "ENOMEM",
        libc::EPIPE => "EPIPE",
        libc::EACCES => "EACCES",
        libc::EPERM => "EPERM",
        libc::EINVAL => "EINVAL",
        libc::EAFNOSUPPORT => "EAFNOSUPPORT",
        _ => return format!("errno_{errno}"),
    };
    name.to_owned()
}

/// Failure counts by cause. A cause's first occurrence inserts a map entry; later ones only
/// increment it.
#[derive(Clone, Debug, Default)]
pub struct ErrorCounts {
    counts: BTreeMap<Cause, u64>,
}

impl ErrorCounts {
    pub fn add(&mut self, cause: Cause) {
        *self.counts.entry(cause).or_insert(0) += 1;
    }

    pub fn add_n(&mut self, cause: Cause, n: u64) {
        if n > 0 {
            *self.counts.entry(cause).or_insert(0) += n;
        }
    }

    pub fn merge(&mut self, other: &ErrorCounts) {
        for (&cause, &n) in &other.counts {
            self.add_n(cause, n);
        }
    }

    pub fn total(&self) -> u64 {
        self.counts.values().sum()
    }

    pub fn get(&self, cause: Cause) -> u64 {
        self.counts.get(&cause).copied().unwrap_or(0)
    }

    /// Counts by label, e.g. `{"http_503": 3, "connect:ECONNREFUSED": 1}`.
    pub fn by_label(&self) -> BTreeMap<String, u64> {
        self.counts
            .iter()
            .map(|(cause, &n)| (cause.to_string(), n))
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn labels_are_stable() {
        assert_eq!(Cause::HttpStatus(503).to_string(), "http_503");
        assert_eq!(
            Cause::Connect(libc::ECONNREFUSED).to_string(),
            "connect:ECONNREFUSED"
        );
        assert_eq!(Cause::Io(12345).to_string(), "io:errno_12345");
        assert_eq!(io_cause(libc::ECONNRESET), Cause::Reset);
        assert_eq!(Cause::ServerClose(1001).to_string(), "server_close_1001");
    }

    #[test]
    fn handshake_failures_map_to_their_causes() {
        let too_large = |status| Cause::from(ResponseError::TooLarge { status });
        assert_eq!(Cause::from(ResponseError::NotHttp), Cause::BadResponse);
        assert_eq!(too_large(None), Cause::ResponseTooLarge);
        assert_eq!(too_large(Some(431)), Cause::HttpStatus(431));
        assert_eq!(
            Cause::from(UpgradeError::Status(503)),
            Cause::HttpStatus(503)
        );
        assert_eq!(Cause::from(UpgradeError::AcceptMissing), Cause::BadAccept);
        let wrong = UpgradeError::AcceptWrong {
            expected: "a".into(),
            got: "b".into(),
        };
        assert_eq!(Cause::from(wrong), Cause::BadAccept);
        let extension = UpgradeError::ExtensionNotOffered {
            got: "x".into(),
            offered: vec![],
        };
        assert_eq!(Cause::from(extension), Cause::BadUpgrade);
        assert_eq!(
            Cause::from(UpgradeError::UpgradeHeader { got: None }),
            Cause::BadUpgrade
        );
    }

    #[test]
    fn tls_failures_map_to_named_causes() {
        use rustls::{AlertDescription, CertificateError, Error, InvalidMessage};
        let label = |error: Error| Cause::Tls(TlsCause::from(&error)).to_string();
        let cert = |error: CertificateError| label(Error::InvalidCertificate(error));
        assert_eq!(cert(CertificateError::UnknownIssuer), "tls:unknown_issuer");
        assert_eq!(cert(CertificateError::NotValidForName), "tls:name_mismatch");
        assert_eq!(cert(CertificateError::Expired), "tls:expired");
        assert_eq!(cert(CertificateError::NotValidYet), "tls:not_yet_valid");
        assert_eq!(cert(CertificateError::BadSignature), "tls:bad_certificate");
        assert_eq!(
            label(Error::AlertReceived(AlertDescription::UnknownCA)),
            "tls:alert_unknown_ca"
        );
        assert_eq!(
            label(Error::InvalidMessage(InvalidMessage::InvalidContentType)),
            "tls:not_tls"
        );
        assert_eq!(
            Cause::Tls(TlsCause::Alert(200)).to_string(),
            "tls:alert_200"
        );
    }

    #[test]
    fn counts_merge_by_cause() {
        let mut a = ErrorCounts::default();
        a.add(Cause::BadAccept);
        let mut b = ErrorCounts::default();
        b.add(Cause::BadAccept);
        b.add(Cause::HttpStatus(503));
        a.merge(&b);
        assert_eq!(a.get(Cause::BadAccept), 2);
        assert_eq!(a.total(), 3);
        assert_eq!(a.by_label().get("http_503"), Some(&1));
    }
}
