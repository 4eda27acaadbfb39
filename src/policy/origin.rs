//! The `Origin` allowlist: which web pages may open a WebSocket to this server.
//!
//! Browsers send the page's origin (`scheme://host[:port]`, RFC 6454) with every upgrade; a server
//! that accepts any origin lets every web page its users visit talk to it with their cookies
//! (cross-site WebSocket hijacking). Non-browser clients usually send no Origin at all.

use std::fmt;
use std::str::FromStr;

use crate::protocol::{Refusal, RefusalReason};

/// Longest origin text quoted back in a refusal.
const MAX_QUOTED_ORIGIN_BYTES: usize = 128;
/// Most allowed origins listed in a refusal's detail; the rest are counted.
const MAX_LISTED_PATTERNS: usize = 8;

/// One entry of `allowed_origins`, as configured.
///
/// - `https://app.example.com`, `http://localhost:8080`: exactly that origin. Scheme and host
///   compare case-insensitively; a default port (80 for http/ws, 443 for https/wss) may be
///   written or not.
/// - `*.example.com`: any subdomain of example.com, at any depth, with scheme http or https and
///   the default port; not `example.com` itself (list it too) and not `evilexample.com`.
/// - `https://*.example.com`, `*.example.com:8443`: the same, limited to that scheme or port.
/// - `null`: the opaque origin of sandboxed frames and `file://` pages.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct OriginPattern {
    /// Lower-case scheme; `None` for a wildcard without one (http or https).
    scheme: Option<String>,
    host: HostPattern,
    /// Explicit, non-default port; `None` means the scheme's default port.
    port: Option<u16>,
}

#[derive(Clone, Debug, PartialEq, Eq)]
enum HostPattern {
    /// Lower-case host; IPv6 literals keep their brackets.
    Exact(String),
    /// Lower-case parent domain of `*.<domain>`, without the leading dot.
    SubdomainsOf(String),
    /// The literal origin `null`.
    Null,
}

/// Why an `allowed_origins` entry was refused; Display says what to write instead.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum OriginPatternError {
    #[error("an origin is scheme://host[:port], e.g. https://app.example.com or *.example.com")]
    Malformed,
    #[error("an origin has no path: write {0}")]
    HasPath(String),
    #[error("a wildcard may only be the first label, as in *.example.com")]
    MisplacedWildcard,
    #[error("{0:?} is not a port number")]
    BadPort(String),
}

impl FromStr for OriginPattern {
    type Err = OriginPatternError;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        let text = text.trim();
        if text.eq_ignore_ascii_case("null") {
            return Ok(OriginPattern {
                scheme: None,
                host: HostPattern::Null,
                port: None,
            });
        }
        let (scheme, rest) = match text.split_once("://") {
            Some((scheme, rest)) => (Some(scheme.to_ascii_lowercase()), rest),
            None => (None, text),
        };
        if let Some(scheme) = &scheme {
            if !is_scheme(scheme) {
                return Err(OriginPatternError::Malformed);
            }
        }
        if let Some(at) = rest.find(['/', '?', '#']) {
            let fixed = format!("{}{}", &text[..text.len() - rest.len()], &rest[..at]);
            return Err(OriginPatternError::HasPath(fixed));
        }
        let (host, port) = split_host_port(rest).ok_or(OriginPatternError::Malformed)?;
        let port = match port {
            None => None,
            Some(port) => Some(
                port.parse::<u16>()
                    .map_err(|_| OriginPatternError::BadPort(port.to_owned()))?,
            ),
        };
        let host = host.to_ascii_lowercase();
        let host = match host.strip_prefix("*.") {
            Some(parent) => {
                if parent.contains('*') || !is_host(parent) {
                    return Err(if parent.contains('*') {
                        OriginPatternError::MisplacedWildcard
                    } else {
                        OriginPatternError::Malformed
                    });
                }
                HostPattern::SubdomainsOf(parent.to_owned())
            }
            None if host.contains('*') => return Err(OriginPatternError::MisplacedWildcard),
            None if scheme.is_none() => return Err(OriginPatternError::Malformed),
            None if !is_host(&host) => return Err(OriginPatternError::Malformed),
            None => HostPattern::Exact(host),
        };
        let port = port.filter(|&port| Some(port) != scheme.as_deref().and_then(default_port));
        Ok(OriginPattern { scheme, host, port })
    }
}

impl fmt::Display for OriginPattern {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if let Some(scheme) = &self.scheme {
            write!(f, "{scheme}://")?;
        }
        match &self.host {
            HostPattern::Exact(host) => f.write_str(host)?,
            HostPattern::SubdomainsOf(parent) => write!(f, "*.{parent}")?,
            HostPattern::Null => return f.write_str("null"),
        }
        if let Some(port) = self.port {
            write!(f, ":{port}")?;
        }
        Ok(())
    }
}

impl OriginPattern {
    /// Whether the `Origin` header value `origin` matches, without allocating.
    pub fn matches(&self, origin: &str) -> bool {
        let origin = origin.trim();
        if let HostPattern::Null = self.host {
            return origin == "null";
        }
        let Some(parsed) = ParsedOrigin::parse(origin) else {
            return false;
        };
        let scheme_ok = match &self.scheme {
            Some(scheme) => parsed.scheme.eq_ignore_ascii_case(scheme),
            None => {
                parsed.scheme.eq_ignore_ascii_case("https")
                    || parsed.scheme.eq_ignore_ascii_case("http")
            }
        };
        if !scheme_ok || parsed.effective_port() != self.port {
            return false;
        }
        match &self.host {
            HostPattern::Exact(host) => parsed.host.eq_ignore_ascii_case(host),
            HostPattern::SubdomainsOf(parent) => is_subdomain(parsed.host, parent),
            HostPattern::Null => unreachable!("handled above"),
        }
    }
}

/// `host` is a proper subdomain of `parent`: it ends in `.` + `parent` with at least one
/// label before, so the match falls on a label boundary.
fn is_subdomain(host: &str, parent: &str) -> bool {
    let (host, parent) = (host.as_bytes(), parent.as_bytes());
    host.len() > parent.len() + 1
        && host[host.len() - parent.len()..].eq_ignore_ascii_case(parent)
        && host[host.len() - parent.len() - 1] == b'.'
}

/// An `Origin` header value split in place.
struct ParsedOrigin<'a> {
    scheme: &'a str,
    host: &'a str,
    port: Option<u16>,
}

impl<'a> ParsedOrigin<'a> {
    fn parse(origin: &'a str) -> Option<Self> {
        let (scheme, rest) = origin.split_once("://")?;
        if !is_scheme(scheme) || rest.contains(['/', '?', '#']) {
            return None;
        }
        let (host, port) = split_host_port(rest)?;
        if !is_host(host) {
            return None;
        }
        let port = match port {
            Some(port) => Some(port.parse::<u16>().ok()?),
            None => None,
        };
        Some(ParsedOrigin { scheme, host, port })
    }

    /// The port unless it is the scheme's default, so `https://a:443` equals `https://a`.
    fn effective_port(&self) -> Option<u16> {
        let default = default_port(&self.scheme.to_ascii_lowercase());
        self.port.filter(|&port| Some(port) != default)
    }
}

fn default_port(scheme: &str) -> Option<u16> {
    match scheme {
        "http" | "ws" => Some(80),
        "https" | "wss" => Some(443),
        _ => None,
    }
}

/// RFC 3986 §3.1: ALPHA *( ALPHA / DIGIT / "+" / "-" / "." ).
fn is_scheme(scheme: &str) -> bool {
    let mut bytes = scheme.bytes();
    bytes.next().is_some_and(|b| b.is_ascii_alphabetic())
        && bytes.all(|b| b.is_ascii_alphanumeric() || matches!(b, b'+' | b'-' | b'.'))
}

/// A registered name or IP literal as it appears in an origin (no userinfo, no spaces).
fn is_host(host: &str) -> bool {
    if let Some(inner) = host.strip_prefix('[').and_then(|h| h.strip_suffix(']')) {
        return inner.parse::<std::net::Ipv6Addr>().is_ok();
    }
    !host.is_empty()
        && host
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'*'))
}

/// Splits `host[:port]` and `[v6]:port`; `None` if malformed.
fn split_host_port(authority: &str) -> Option<(&str, Option<&str>)> {
    if authority.starts_with('[') {
        let end = authority.find(']')?;
        let (host, rest) = authority.split_at(end + 1);
        return match rest {
            "" => Some((host, None)),
            _ => Some((host, Some(rest.strip_prefix(':')?))),
        };
    }
    match authority.split_once(':') {
        Some((host, port)) if !port.is_empty() => Some((host, Some(port))),
        Some(_) => None,
        None => Some((authority, None)),
    }
}

/// The origin rules of one server.
#[derive(Clone, Debug, Default)]
pub struct OriginPolicy {
    /// Empty: every origin is allowed.
    allowed: Vec<OriginPattern>,
    allow_missing: bool,
}

impl OriginPolicy {
    pub fn new(allowed: Vec<OriginPattern>, allow_missing: bool) -> Self {
        OriginPolicy {
            allowed,
            allow_missing,
        }
    }

    /// `Ok` when the request's `Origin` (or its absence) is allowed; otherwise the 403 to send.
    pub fn check(&self, origin: Option<&str>) -> Result<(), Refusal> {
        let Some(origin) = origin else {
            return if self.allow_missing {
                Ok(())
            } else {
                Err(Refusal::new(RefusalReason::MissingOrigin))
            };
        };
        if self.allowed.is_empty() || self.allowed.iter().any(|p| p.matches(origin)) {
            return Ok(());
        }
        Err(Refusal::with_detail(
            RefusalReason::OriginNotAllowed,
            format!(
                "origin {:?} is not allowed (allowed: {})",
                crate::protocol::refusal::one_line(origin, MAX_QUOTED_ORIGIN_BYTES),
                self.allowed_list()
            ),
        ))
    }

    fn allowed_list(&self) -> String {
        let mut list: Vec<String> = self
            .allowed
            .iter()
            .take(MAX_LISTED_PATTERNS)
            .map(ToString::to_string)
            .collect();
        if self.allowed.len() > MAX_LISTED_PATTERNS {
            list.push(format!(
                "and {} more",
                self.allowed.len() - MAX_LISTED_PATTERNS
            ));
        }
        list.join(", ")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pattern(text: &str) -> OriginPattern {
        text.parse().unwrap_or_else(|err| panic!("{text:?}: {err}"))
    }

    fn policy(patterns: &[&str], allow_missing: bool) -> OriginPolicy {
        OriginPolicy::new(patterns.iter().map(|p| pattern(p)).collect(), allow_missing)
    }

    #[test]
    fn exact_origins_compare_scheme_and_host_case_insensitively() {
        let p = pattern("https://App.Example.com");
        assert_eq!(p.to_string(), "https://app.example.com");
        assert!(p.matches("https://app.example.com"));
        assert!(p.matches("HTTPS://APP.EXAMPLE.COM"));
        assert!(!p.matches("http://app.example.com"));
        assert!(!p.matches("https://app.example.com.evil.com"));
        assert!(!p.matches("https://evil.app.example.com"));
        assert!(!p.matches("https://app.example.co"));
    }

    #[test]
    fn ports_must_match_and_default_ports_are_optional() {
        let p = pattern("https://app.example.com");
        assert!(p.matches("https://app.example.com:443"));
        assert!(!p.matches("https://app.example.com:8443"));
        assert!(!p.matches("https://app.example.com:"));
        assert!(!p.matches("https://app.example.com:99999"));
        let p = pattern("https://app.example.com:443");
        assert_eq!(p.to_string(), "https://app.example.com");
        let p = pattern("http://localhost:8080");
        assert!(p.matches("http://localhost:8080"));
        assert!(!p.matches("http://localhost"));
        assert!(!p.matches("http://localhost:8081"));
        let v6 = pattern("http://[::1]:3000");
        assert!(v6.matches("http://[::1]:3000"));
        assert!(!v6.matches("http://[::1]"));
    }

    #[test]
    fn wildcards_match_subdomains_at_any_depth_on_a_label_boundary() {
        let p = pattern("*.example.com");
        assert!(p.matches("https://a.example.com"));
        assert!(p.matches("http://a.example.com"));
        assert!(p.matches("https://a.b.c.example.com"));
        assert!(p.matches("https://A.EXAMPLE.COM"));
        assert!(
            !p.matches("https://example.com"),
            "the apex is not a subdomain"
        );
        assert!(!p.matches("https://evilexample.com"), "label boundary");
        assert!(!p.matches("https://.example.com"));
        assert!(!p.matches("https://a.example.com.evil.net"));
        assert!(
            !p.matches("https://a.example.com:8443"),
            "default port only"
        );
        assert!(p.matches("https://a.example.com:443"));
        assert!(!p.matches("ftp://a.example.com"), "http or https only");
        assert!(!p.matches("null"));
    }

    #[test]
    fn wildcards_with_scheme_or_port() {
        let p = pattern("https://*.example.com");
        assert!(p.matches("https://a.example.com"));
        assert!(!p.matches("http://a.example.com"));
        let p = pattern("*.example.com:8443");
        assert!(p.matches("https://a.example.com:8443"));
        assert!(p.matches("http://a.example.com:8443"));
        assert!(!p.matches("https://a.example.com"));
        assert!(pattern("*.localhost").matches("http://app.localhost"));
        let p = pattern("chrome-extension://abcdef");
        assert!(p.matches("chrome-extension://abcdef"));
    }

    #[test]
    fn null_origin_only_when_listed() {
        assert!(pattern("null").matches("null"));
        assert!(!pattern("https://a.example").matches("null"));
        assert!(!pattern("null").matches("https://a.example"));
        assert!(policy(&["https://a.example"], true)
            .check(Some("null"))
            .is_err());
    }

    #[test]
    fn bad_patterns_say_what_to_write() {
        assert_eq!(
            "https://app.example.com/".parse::<OriginPattern>(),
            Err(OriginPatternError::HasPath(
                "https://app.example.com".into()
            ))
        );
        assert_eq!(
            "https://app.example.com/chat?x".parse::<OriginPattern>(),
            Err(OriginPatternError::HasPath(
                "https://app.example.com".into()
            ))
        );
        for bad in [
            "app.example.com",
            "",
            "https://",
            "://x",
            "1http://x",
            "*.",
            "*",
            "https://a b",
            "https://user@host",
            "https://[zz]",
        ] {
            assert!(bad.parse::<OriginPattern>().is_err(), "{bad:?}");
        }
        assert_eq!(
            "a.*.example.com".parse::<OriginPattern>(),
            Err(OriginPatternError::MisplacedWildcard)
        );
        assert_eq!(
            "https://*.*.example.com".parse::<OriginPattern>(),
            Err(OriginPatternError::MisplacedWildcard)
        );
        assert_eq!(
            "https://a.example:http".parse::<OriginPattern>(),
            Err(OriginPatternError::BadPort("http".into()))
        );
    }

    #[test]
    fn patterns_round_trip_through_display() {
        for text in [
            "https://app.example.com",
            "http://localhost:8080",
            "*.example.com",
            "https://*.example.com:8443",
            "null",
            "http://[::1]:3000",
        ] {
            assert_eq!(pattern(text).to_string(), text);
            assert_eq!(pattern(&pattern(text).to_string()), pattern(text));
        }
    }

    #[test]
    fn malformed_origin_headers_never_match() {
        let p = pattern("*.example.com");
        for origin in [
            "a.example.com",
            "https://a.example.com/",
            "https://a.example.com/path",
            "https://user@a.example.com",
            "",
            "https:// a.example.com",
        ] {
            assert!(!p.matches(origin), "{origin:?}");
        }
    }

    #[test]
    fn empty_allowlist_allows_every_origin() {
        let open = policy(&[], true);
        assert!(open.check(Some("https://anything.example")).is_ok());
        assert!(open.check(Some("garbage")).is_ok());
        assert!(open.check(None).is_ok());
    }

    #[test]
    fn missing_origin_by_config() {
        assert!(policy(&["https://a.example"], true).check(None).is_ok());
        let strict = policy(&["https://a.example"], false);
        assert_eq!(
            strict.check(None).unwrap_err().reason,
            RefusalReason::MissingOrigin
        );
        assert_eq!(
            policy(&[], false).check(None).unwrap_err().reason,
            RefusalReason::MissingOrigin
        );
    }

    #[test]
    fn refusal_names_the_origin_and_the_allowed_ones() {
        let refusal = policy(&["https://app.example", "*.example.com"], true)
            .check(Some("https://evil.example"))
            .unwrap_err();
        assert_eq!(refusal.reason, RefusalReason::OriginNotAllowed);
        assert_eq!(refusal.reason.status(), 403);
        assert_eq!(
            refusal.detail.as_deref(),
            Some(
                "origin \"https://evil.example\" is not allowed (allowed: https://app.example, \
                 *.example.com)"
            )
        );
    }

    #[test]
    fn refusal_detail_is_bounded() {
        let many: Vec<String> = (0..20).map(|i| format!("https://a{i}.example")).collect();
        let many: Vec<&str> = many.iter().map(String::as_str).collect();
        let huge_origin = format!("https://{}.example", "x".repeat(5000));
        let refusal = policy(&many, true).check(Some(&huge_origin)).unwrap_err();
        let detail = refusal.detail.unwrap();
        assert!(detail.len() <= crate::protocol::refusal::MAX_DETAIL_BYTES);
        assert!(detail.contains("..."), "{detail}");
        let refusal = policy(&many, true)
            .check(Some("https://b.example"))
            .unwrap_err();
        assert!(refusal.detail.unwrap().ends_with("and 12 more)"));
    }
}
