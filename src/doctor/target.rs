//! The URL doctor is pointed at: `ws://` or `wss://` (`http://` and `https://` are read the same
//! way, as browsers do), parsed by the load generator's parser once the scheme is set aside.

use crate::bench::url as ws_url;

/// How the client at this URL would start: plain TCP or TLS first.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Scheme {
    Ws,
    Wss,
}

impl Scheme {
    fn default_port(self) -> u16 {
        match self {
            Scheme::Ws => 80,
            Scheme::Wss => 443,
        }
    }
}

/// A parsed doctor URL.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Target {
    pub scheme: Scheme,
    /// Host as written, without IPv6 brackets.
    pub host: String,
    pub port: u16,
    /// Request target: path plus `?query`, always starting with '/'.
    pub target: String,
    /// Value of the `Host` header: the host as written plus `:port` when not the scheme's default.
    pub host_header: String,
}

#[derive(Debug, PartialEq, Eq, thiserror::Error)]
pub enum TargetError {
    #[error(
        "{0:?} is not a WebSocket URL: expected ws://HOST[:PORT]/PATH or wss://HOST[:PORT]/PATH"
    )]
    Scheme(String),
    #[error("{0}")]
    Url(String),
}

/// Parses `ws://`, `wss://`, `http://` or `https://` URLs; the port defaults to 80 or 443.
pub fn parse(url: &str) -> Result<Target, TargetError> {
    let Some((scheme, rest)) = url.split_once("://") else {
        return Err(TargetError::Scheme(url.to_owned()));
    };
    let scheme = match scheme.to_ascii_lowercase().as_str() {
        "ws" | "http" => Scheme::Ws,
        "wss" | "https" => Scheme::Wss,
        _ => return Err(TargetError::Scheme(url.to_owned())),
    };
    let as_ws = format!("ws://{rest}");
    let parsed = ws_url::parse(&as_ws)
        // The parser's messages quote the URL it was given; show the one the user typed.
        .map_err(|err| TargetError::Url(err.to_string().replace(&as_ws, url)))?;
    let port = if has_explicit_port(rest) {
        parsed.port
    } else {
        scheme.default_port()
    };
    let host_as_written = if parsed.host.contains(':') {
        format!("[{}]", parsed.host)
    } else {
        parsed.host.clone()
    };
    let host_header = if port == scheme.default_port() {
        host_as_written
    } else {
        format!("{host_as_written}:{port}")
    };
    Ok(Target {
        scheme,
        host: parsed.host,
        port,
        target: parsed.target,
        host_header,
    })
}

/// Whether the authority of `rest` (the URL after `scheme://`) names a port.
fn has_explicit_port(rest: &str) -> bool {
    let authority = &rest[..rest.find(['/', '?']).unwrap_or(rest.len())];
    let after_host = authority
        .rfind(']')
        .map_or(authority, |i| &authority[i + 1..]);
    after_host.contains(':')
}

impl Target {
    /// `host:port` as a person would type it (brackets around IPv6).
    pub fn authority(&self) -> String {
        if self.host.contains(':') {
            format!("[{}]:{}", self.host, self.port)
        } else {
            format!("{}:{}", self.host, self.port)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ws_defaults_to_port_80_and_root() {
        let t = parse("ws://example.com").unwrap();
        assert_eq!((t.scheme, t.port, t.target.as_str()), (Scheme::Ws, 80, "/"));
        assert_eq!(t.host_header, "example.com");
    }

    #[test]
    fn wss_defaults_to_port_443() {
        let t = parse("wss://example.com/chat?room=1").unwrap();
        assert_eq!((t.scheme, t.port), (Scheme::Wss, 443));
        assert_eq!(t.target, "/chat?room=1");
        assert_eq!(t.host_header, "example.com");
        let t = parse("wss://example.com:80/").unwrap();
        assert_eq!((t.port, t.host_header.as_str()), (80, "example.com:80"));
    }

    #[test]
    fn http_schemes_map_like_browsers() {
        assert_eq!(parse("http://h:9001/").unwrap().scheme, Scheme::Ws);
        assert_eq!(parse("HTTPS://h/").unwrap().scheme, Scheme::Wss);
    }

    #[test]
    fn ipv6_with_and_without_port() {
        let t = parse("wss://[::1]/").unwrap();
        assert_eq!((t.host.as_str(), t.port), ("::1", 443));
        assert_eq!(t.host_header, "[::1]");
        assert_eq!(t.authority(), "[::1]:443");
        let t = parse("ws://[::1]:9001/x").unwrap();
        assert_eq!(t.host_header, "[::1]:9001");
    }

    #[test]
    fn errors_quote_the_url_as_typed() {
        assert!(matches!(parse("ftp://h/"), Err(TargetError::Scheme(_))));
        assert!(matches!(
            parse("127.0.0.1:9001"),
            Err(TargetError::Scheme(_))
        ));
        let err = parse("wss://h:0/").unwrap_err().to_string();
        assert!(err.contains("\"wss://h:0/\""), "{err}");
        assert!(err.contains("port"), "{err}");
    }
}
