//! `ws://` and `wss://HOST[:PORT][/PATH][?QUERY]` parsing for the load generator.

use std::net::{SocketAddr, ToSocketAddrs};

/// A parsed `ws://` or `wss://` URL.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct WsUrl {
    /// `wss://`: the connection runs TLS under the WebSocket.
    pub tls: bool,
    /// Host as written, without IPv6 brackets.
    pub host: String,
    pub port: u16,
    /// Request target: path plus `?query`, always starting with '/'.
    pub target: String,
    /// Value of the `Host` header: host as written (brackets kept) plus `:port` when not the
    /// scheme's default (80 for ws://, 443 for wss://).
    pub host_header: String,
}

#[derive(Debug, PartialEq, Eq, thiserror::Error)]
pub enum UrlError {
    #[error(
        "{0:?} is not a ws:// or wss:// URL: expected ws://HOST:PORT/PATH or \
         wss://HOST:PORT/PATH, e.g. ws://127.0.0.1:9001/"
    )]
    BadScheme(String),
    #[error("{0:?} has no host: expected ws://HOST:PORT/PATH")]
    MissingHost(String),
    #[error("{0:?} has an invalid port: expected a number from 1 to 65535")]
    BadPort(String),
    #[error("{0:?}: user info (user@host) is not supported in the URL")]
    UserInfo(String),
    #[error("{0:?}: a URL fragment (#...) is never sent to a server; remove it")]
    Fragment(String),
    #[error("{0:?} contains whitespace or control characters")]
    BadCharacter(String),
}

/// Parses a `ws://` or `wss://` URL. The scheme is case-insensitive; the port defaults to 80
/// (443 for wss://), the path to "/".
pub fn parse(url: &str) -> Result<WsUrl, UrlError> {
    if url.bytes().any(|b| b <= b' ' || b == 0x7f) {
        return Err(UrlError::BadCharacter(url.to_owned()));
    }
    let Some((scheme, rest)) = url.split_once("://") else {
        return Err(UrlError::BadScheme(url.to_owned()));
    };
    let tls = scheme.eq_ignore_ascii_case("wss");
    if !tls && !scheme.eq_ignore_ascii_case("ws") {
        return Err(UrlError::BadScheme(url.to_owned()));
    }
    let default_port = if tls { 443 } else { 80 };
    if rest.contains('#') {
        return Err(UrlError::Fragment(url.to_owned()));
    }
    let authority_end = rest.find(['/', '?']).unwrap_or(rest.len());
    let (authority, target) = rest.split_at(authority_end);
    if authority.contains('@') {
        return Err(UrlError::UserInfo(url.to_owned()));
    }
    let (host_part, port) = split_host_port(authority, url, default_port)?;
    let host = host_part.trim_start_matches('[').trim_end_matches(']');
    if host.is_empty() {
        return Err(UrlError::MissingHost(url.to_owned()));
    }
    let target = match target.chars().next() {
        None => "/".to_owned(),
        Some('?') => format!("/{target}"),
        Some(_) => target.to_owned(),
    };
    let host_header = if port == default_port {
        host_part.to_owned()
    } else {
        format!("{host_part}:{port}")
    };
    Ok(WsUrl {
        tls,
        host: host.to_owned(),
        port,
        target,
        host_header,
    })
}

/// Splits `host[:port]` or `[v6][:port]`; returns the host as written and the port.
fn split_host_port<'a>(
    authority: &'a str,
    url: &str,
    default_port: u16,
) -> Result<(&'a str, u16), UrlError> {
    let (host, port) = if authority.starts_with('[') {
        let Some(close) = authority.find(']') else {
            return Err(UrlError::MissingHost(url.to_owned()));
        };
        let (host, after) = authority.split_at(close + 1);
        match after.strip_prefix(':') {
            Some(port) => (host, Some(port)),
            None if after.is_empty() => (host, None),
            None => return Err(UrlError::BadPort(url.to_owned())),
        }
    } else {
        match authority.split_once(':') {
            Some((host, port)) => (host, Some(port)),
            None => (authority, None),
        }
    };
    let port = match port {
        None => default_port,
        Some(digits) => match digits.parse::<u16>() {
            Ok(port) if port != 0 && digits.bytes().all(|b| b.is_ascii_digit()) => port,
            _ => return Err(UrlError::BadPort(url.to_owned())),
        },
    };
    Ok((host, port))
}

impl WsUrl {
    /// Resolves the host once (DNS or literal); prefers IPv6 (`Some(true)`) or IPv4 (`Some(false)`) addresses when asked.
    pub fn resolve(&self, prefer_ipv6: Option<bool>) -> std::io::Result<SocketAddr> {
        let addrs: Vec<SocketAddr> = (self.host.as_str(), self.port).to_socket_addrs()?.collect();
        let preferred = prefer_ipv6.and_then(|v6| addrs.iter().find(|a| a.is_ipv6() == v6));
        preferred.or(addrs.first()).copied().ok_or_else(|| {
            std::io::Error::new(std::io::ErrorKind::NotFound, "the host has no address")
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_host_port_path_and_query() {
        let url = parse("ws://127.0.0.1:9000/chat?room=1").unwrap();
        assert_eq!(url.host, "127.0.0.1");
        assert_eq!(url.port, 9000);
        assert_eq!(url.target, "/chat?room=1");
        assert_eq!(url.host_header, "127.0.0.1:9000");
    }

    #[test]
    fn defaults_port_80_and_root_path() {
        let url = parse("WS://example.com").unwrap();
        assert_eq!((url.port, url.target.as_str()), (80, "/"));
        assert_eq!(url.host_header, "example.com");
        assert_eq!(parse("ws://h?x=1").unwrap().target, "/?x=1");
    }

    #[test]
    fn parses_bracketed_ipv6() {
        let url = parse("ws://[::1]:8080/").unwrap();
        assert_eq!(url.host, "::1");
        assert_eq!(url.port, 8080);
        assert_eq!(url.host_header, "[::1]:8080");
        assert_eq!(url.resolve(None).unwrap(), "[::1]:8080".parse().unwrap());
    }

    #[test]
    fn parses_wss_with_port_443_by_default() {
        let url = parse("WSS://example.com/chat").unwrap();
        assert!(url.tls);
        assert_eq!((url.port, url.target.as_str()), (443, "/chat"));
        assert_eq!(url.host_header, "example.com");
        let url = parse("wss://127.0.0.1:9443").unwrap();
        assert_eq!(
            (url.port, url.host_header.as_str()),
            (9443, "127.0.0.1:9443")
        );
        assert_eq!(parse("wss://h:80/").unwrap().host_header, "h:80");
        assert_eq!(parse("ws://h:443/").unwrap().host_header, "h:443");
        assert!(!parse("ws://h/").unwrap().tls);
    }

    #[test]
    fn rejects_other_schemes_with_a_reason() {
        let err = parse("https://h/").unwrap_err();
        assert!(matches!(err, UrlError::BadScheme(_)));
        assert!(err.to_string().contains("wss://HOST"), "{err}");
        assert!(matches!(parse("http://h/"), Err(UrlError::BadScheme(_))));
        assert!(matches!(
            parse("127.0.0.1:9000"),
            Err(UrlError::BadScheme(_))
        ));
    }

    #[test]
    fn rejects_malformed_authorities() {
        assert!(matches!(
            parse("ws://:9000/"),
            Err(UrlError::MissingHost(_))
        ));
        assert!(matches!(parse("ws://h:0/"), Err(UrlError::BadPort(_))));
        assert!(matches!(parse("ws://h:70000/"), Err(UrlError::BadPort(_))));
        assert!(matches!(parse("ws://h:+80/"), Err(UrlError::BadPort(_))));
        assert!(matches!(parse("ws://h:/"), Err(UrlError::BadPort(_))));
        assert!(matches!(parse("ws://[::1/"), Err(UrlError::MissingHost(_))));
        assert!(matches!(parse("ws://u@h/"), Err(UrlError::UserInfo(_))));
        assert!(matches!(parse("ws://h/#x"), Err(UrlError::Fragment(_))));
        assert!(matches!(
            parse("ws://h/a b"),
            Err(UrlError::BadCharacter(_))
        ));
    }
}
