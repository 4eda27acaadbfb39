//! Which address a handshake comes from: the socket peer, or, when the peer is a trusted proxy,
//! the client that proxy names in `X-Forwarded-For` or `Forwarded` (RFC 7239).
//!
//! Anyone can send these headers, so they are read only from peers in `trusted_proxies`, and
//! from the right: each proxy appends the address it received from, so the rightmost address
//! that is not itself a trusted proxy is the first hop no trusted party vouches for.

use std::fmt;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::str::FromStr;

/// Most hops examined from the right of a forwarding header; deeper proxy chains are not real.
pub const MAX_FORWARDED_HOPS: usize = 16;

/// An address block such as `10.0.0.0/8`, `fd00::/8`, or one address (`192.0.2.7`, `::1`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Cidr {
    network: IpAddr,
    prefix_len: u8,
}

/// Why a `trusted_proxies` entry was refused.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum CidrError {
    #[error("not an IP address or CIDR block (examples: 10.0.0.0/8, 192.0.2.7, ::1/128)")]
    Malformed,
    #[error("prefix length {prefix_len} is too long for an IPv{version} address (at most {max})")]
    PrefixTooLong {
        prefix_len: u32,
        version: u8,
        max: u8,
    },
    #[error("{given} has host bits set: the block is written {fixed}")]
    HostBitsSet { given: String, fixed: String },
}

impl Cidr {
    pub fn new(address: IpAddr, prefix_len: u8) -> Result<Cidr, CidrError> {
        let max = max_prefix(address);
        if prefix_len > max {
            return Err(CidrError::PrefixTooLong {
                prefix_len: prefix_len.into(),
                version: if address.is_ipv4() { 4 } else { 6 },
                max,
            });
        }
        let cidr = Cidr {
            network: mask(address, prefix_len),
            prefix_len,
        };
        if cidr.network != address {
            return Err(CidrError::HostBitsSet {
                given: format!("{address}/{prefix_len}"),
                fixed: cidr.to_string(),
            });
        }
        Ok(cidr)
    }

    /// Whether `ip` lies in this block. An IPv4-mapped IPv6 address (`::ffff:10.0.0.1`, as a
    /// dual-stack socket reports IPv4 peers) counts as its IPv4 address.
    pub fn contains(&self, ip: IpAddr) -> bool {
        let ip = canonical(ip);
        match (self.network, ip) {
            (IpAddr::V4(_), IpAddr::V4(_)) | (IpAddr::V6(_), IpAddr::V6(_)) => {
                mask(ip, self.prefix_len) == self.network
            }
            _ => false,
        }
    }
}

impl FromStr for Cidr {
    type Err = CidrError;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        let text = text.trim();
        let (address, prefix_len) = match text.split_once('/') {
            Some((address, prefix)) => {
                let prefix: u32 = prefix
                    .parse()
                    .ok()
                    .filter(|_| prefix.bytes().all(|b| b.is_ascii_digit()))
                    .ok_or(CidrError::Malformed)?;
                (address, Some(prefix))
            }
            None => (text, None),
        };
        let address: IpAddr = address.parse().map_err(|_| CidrError::Malformed)?;
        let max = max_prefix(address);
        let prefix_len = prefix_len.unwrap_or(max.into());
        let prefix_len = u8::try_from(prefix_len).ok().filter(|&p| p <= max).ok_or(
            CidrError::PrefixTooLong {
                prefix_len,
                version: if address.is_ipv4() { 4 } else { 6 },
                max,
            },
        )?;
        Cidr::new(address, prefix_len)
    }
}

impl fmt::Display for Cidr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.network, self.prefix_len)
    }
}

fn max_prefix(ip: IpAddr) -> u8 {
    if ip.is_ipv4() {
        32
    } else {
        128
    }
}

fn mask(ip: IpAddr, prefix_len: u8) -> IpAddr {
    match ip {
        IpAddr::V4(v4) => {
            let bits = u32::from(v4);
            let kept = u32::MAX
                .checked_shl(32 - u32::from(prefix_len))
                .unwrap_or(0);
            IpAddr::V4(Ipv4Addr::from(bits & kept))
        }
        IpAddr::V6(v6) => {
            let bits = u128::from(v6);
            let kept = u128::MAX
                .checked_shl(128 - u32::from(prefix_len))
                .unwrap_or(0);
            IpAddr::V6(Ipv6Addr::from(bits & kept))
        }
    }
}

/// IPv4-mapped IPv6 addresses as IPv4; everything else unchanged.
pub fn canonical(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => IpAddr::V4(v4),
            None => ip,
        },
        v4 => v4,
    }
}

/// The configured trusted proxies.
#[derive(Clone, Debug, Default)]
pub struct TrustedProxies {
    blocks: Vec<Cidr>,
}

impl TrustedProxies {
    pub fn new(blocks: Vec<Cidr>) -> Self {
        TrustedProxies { blocks }
    }

    pub fn is_trusted(&self, ip: IpAddr) -> bool {
        self.blocks.iter().any(|block| block.contains(ip))
    }

    /// The client address of a request from socket peer `peer`. `X-Forwarded-For` is read when
    /// present, else `Forwarded`; both only when `peer` is trusted. Walking from the right, the
    /// first address that is not a trusted proxy is the client; an entry that is no address
    /// (`unknown`, an obfuscated name, garbage) stops the walk at the last trusted hop, and so
    /// does reaching [`MAX_FORWARDED_HOPS`].
    pub fn client_ip(
        &self,
        peer: IpAddr,
        x_forwarded_for: Option<&str>,
        forwarded: Option<&str>,
    ) -> IpAddr {
        let peer = canonical(peer);
        if !self.is_trusted(peer) {
            return peer;
        }
        match (x_forwarded_for, forwarded) {
            (Some(xff), _) => self.walk(peer, xff.rsplit(',').map(parse_xff_entry)),
            (None, Some(forwarded)) => {
                self.walk(peer, forwarded.rsplit(',').map(parse_forwarded_element))
            }
            (None, None) => peer,
        }
    }

    fn walk(&self, peer: IpAddr, hops: impl Iterator<Item = Option<IpAddr>>) -> IpAddr {
        let mut client = peer;
        for hop in hops.take(MAX_FORWARDED_HOPS) {
            let Some(ip) = hop else {
                return client;
            };
            client = canonical(ip);
            if !self.is_trusted(client) {
                return client;
            }
        }
        client
    }
}

/// One `X-Forwarded-For` entry: `192.0.2.1`, `2001:db8::1`, and the forms some proxies write
/// with a port (`192.0.2.1:4711`, `[2001:db8::1]:4711`).
fn parse_xff_entry(entry: &str) -> Option<IpAddr> {
    parse_node(entry.trim())
}

/// The `for=` node of one `Forwarded` element (`for=192.0.2.60;proto=http;by=203.0.113.43`).
fn parse_forwarded_element(element: &str) -> Option<IpAddr> {
    element.split(';').find_map(|pair| {
        let (name, value) = pair.trim().split_once('=')?;
        if !name.trim().eq_ignore_ascii_case("for") {
            return None;
        }
        let value = value.trim();
        let value = value
            .strip_prefix('"')
            .and_then(|v| v.strip_suffix('"'))
            .unwrap_or(value);
        parse_node(value)
    })
}

/// An address with or without a port; IPv6 with a port is bracketed.
fn parse_node(node: &str) -> Option<IpAddr> {
    if let Ok(ip) = node.parse::<IpAddr>() {
        return Some(ip);
    }
    if let Some(rest) = node.strip_prefix('[') {
        let (v6, after) = rest.split_once(']')?;
        if !(after.is_empty() || after.starts_with(':')) {
            return None;
        }
        return v6.parse::<Ipv6Addr>().ok().map(IpAddr::V6);
    }
    let (v4, port) = node.split_once(':')?;
    port.parse::<u16>().ok()?;
    v4.parse::<Ipv4Addr>().ok().map(IpAddr::V4)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(text: &str) -> IpAddr {
        text.parse().unwrap()
    }

    fn proxies(blocks: &[&str]) -> TrustedProxies {
        TrustedProxies::new(blocks.iter().map(|b| b.parse().unwrap()).collect())
    }

    #[test]
    fn cidrs_parse_v4_v6_and_single_addresses() {
        let block: Cidr = "10.0.0.0/8".parse().unwrap();
        assert!(block.contains(ip("10.255.1.2")));
        assert!(!block.contains(ip("11.0.0.1")));
        assert!(block.contains(ip("::ffff:10.1.2.3")), "v4-mapped peers");
        assert!(!block.contains(ip("::1")));
        let one: Cidr = "192.0.2.7".parse().unwrap();
        assert_eq!(one.to_string(), "192.0.2.7/32");
        assert!(one.contains(ip("192.0.2.7")));
        assert!(!one.contains(ip("192.0.2.8")));
        let v6: Cidr = "::1/128".parse().unwrap();
        assert!(v6.contains(ip("::1")));
        assert!(!v6.contains(ip("127.0.0.1")));
        let net: Cidr = "fd00::/8".parse().unwrap();
        assert!(net.contains(ip("fd12:3456::1")));
        assert!(!net.contains(ip("fe80::1")));
        let all: Cidr = "0.0.0.0/0".parse().unwrap();
        assert!(all.contains(ip("203.0.113.1")));
        assert!(!all.contains(ip("2001:db8::1")));
        let all6: Cidr = "::/0".parse().unwrap();
        assert!(all6.contains(ip("2001:db8::1")));
        assert_eq!(
            " 172.16.0.0/12 ".parse::<Cidr>().unwrap().to_string(),
            "172.16.0.0/12"
        );
    }

    #[test]
    fn bad_cidrs_are_explained() {
        for bad in [
            "",
            "10.0.0.0/",
            "10.0.0/8",
            "10.0.0.0/+8",
            "host",
            "10.0.0.0/8/8",
            "/8",
            "10.0.0.0/ 8",
        ] {
            assert_eq!(bad.parse::<Cidr>(), Err(CidrError::Malformed), "{bad:?}");
        }
        assert_eq!(
            "10.0.0.0/33".parse::<Cidr>(),
            Err(CidrError::PrefixTooLong {
                prefix_len: 33,
                version: 4,
                max: 32
            })
        );
        assert!(matches!(
            "::/129".parse::<Cidr>(),
            Err(CidrError::PrefixTooLong { version: 6, .. })
        ));
        assert!(matches!(
            "10.0.0.0/99999999999".parse::<Cidr>(),
            Err(CidrError::Malformed | CidrError::PrefixTooLong { .. })
        ));
        assert_eq!(
            "10.1.2.3/8".parse::<Cidr>().unwrap_err().to_string(),
            "10.1.2.3/8 has host bits set: the block is written 10.0.0.0/8"
        );
    }

    #[test]
    fn untrusted_peers_are_the_client_whatever_they_send() {
        let p = proxies(&["10.0.0.0/8"]);
        let peer = ip("203.0.113.5");
        assert_eq!(p.client_ip(peer, Some("1.2.3.4"), None), peer);
        assert_eq!(p.client_ip(peer, None, Some("for=1.2.3.4")), peer);
        assert_eq!(
            p.client_ip(peer, Some("10.0.0.1"), Some("for=1.2.3.4")),
            peer
        );
        let none = proxies(&[]);
        assert_eq!(none.client_ip(peer, Some("1.2.3.4"), None), peer);
    }

    #[test]
    fn rightmost_untrusted_address_of_x_forwarded_for() {
        let p = proxies(&["10.0.0.0/8", "192.168.0.0/16"]);
        let peer = ip("10.0.0.2");
        assert_eq!(p.client_ip(peer, None, None), peer);
        assert_eq!(
            p.client_ip(peer, Some("203.0.113.9"), None),
            ip("203.0.113.9")
        );
        // A client's spoofed entries sit left of what the proxies appended.
        assert_eq!(
            p.client_ip(peer, Some("6.6.6.6, 203.0.113.9, 192.168.1.1"), None),
            ip("203.0.113.9")
        );
        assert_eq!(
            p.client_ip(peer, Some("10.9.9.9, 6.6.6.6,203.0.113.9"), None),
            ip("203.0.113.9")
        );
        // Only trusted hops: the leftmost of them.
        assert_eq!(
            p.client_ip(peer, Some("10.1.1.1, 192.168.1.1"), None),
            ip("10.1.1.1")
        );
        // Ports and brackets some proxies write.
        assert_eq!(
            p.client_ip(peer, Some("203.0.113.9:51234"), None),
            ip("203.0.113.9")
        );
        assert_eq!(
            p.client_ip(peer, Some("[2001:db8::7]:443"), None),
            ip("2001:db8::7")
        );
        assert_eq!(
            p.client_ip(peer, Some("2001:db8::7"), None),
            ip("2001:db8::7")
        );
        assert_eq!(
            p.client_ip(ip("::ffff:10.0.0.2"), Some("1.2.3.4"), None),
            ip("1.2.3.4")
        );
    }

    #[test]
    fn garbage_stops_at_the_last_trusted_hop() {
        let p = proxies(&["10.0.0.0/8"]);
        let peer = ip("10.0.0.2");
        assert_eq!(p.client_ip(peer, Some("unknown"), None), peer);
        assert_eq!(p.client_ip(peer, Some(""), None), peer);
        assert_eq!(p.client_ip(peer, Some("1.2.3.4, garbage"), None), peer);
        assert_eq!(
            p.client_ip(peer, Some("1.2.3.4, nonsense, 10.3.3.3"), None),
            ip("10.3.3.3")
        );
        assert_eq!(p.client_ip(peer, Some("1.2.3.4:99999"), None), peer);
        assert_eq!(p.client_ip(peer, Some("[1.2.3.4]"), None), peer);
    }

    #[test]
    fn hops_are_bounded() {
        let p = proxies(&["10.0.0.0/8"]);
        let peer = ip("10.0.0.2");
        let mut header = String::from("203.0.113.9");
        for i in 0..MAX_FORWARDED_HOPS {
            header.push_str(&format!(", 10.0.0.{i}"));
        }
        assert_eq!(
            p.client_ip(peer, Some(&header), None),
            ip(&format!("10.0.0.{}", 0)),
            "stops after MAX_FORWARDED_HOPS trusted hops"
        );
        let long = "1.1.1.1,".repeat(100_000);
        assert_eq!(
            p.client_ip(peer, Some(&long), None),
            peer,
            "trailing empty entry"
        );
    }

    #[test]
    fn forwarded_header() {
        let p = proxies(&["10.0.0.0/8"]);
        let peer = ip("10.0.0.2");
        assert_eq!(
            p.client_ip(
                peer,
                None,
                Some("for=192.0.2.60;proto=http;by=203.0.113.43")
            ),
            ip("192.0.2.60")
        );
        assert_eq!(
            p.client_ip(
                peer,
                None,
                Some("for=6.6.6.6, for=\"[2001:db8:cafe::17]:4711\"")
            ),
            ip("2001:db8:cafe::17")
        );
        assert_eq!(
            p.client_ip(peer, None, Some("For=\"192.0.2.43:47011\", for=10.1.1.1")),
            ip("192.0.2.43")
        );
        assert_eq!(
            p.client_ip(peer, None, Some("proto=https;by=10.0.0.1")),
            peer,
            "no for= node"
        );
        assert_eq!(p.client_ip(peer, None, Some("for=_hidden")), peer);
        assert_eq!(p.client_ip(peer, None, Some("for=unknown")), peer);
        // X-Forwarded-For wins when both are present.
        assert_eq!(
            p.client_ip(peer, Some("198.51.100.1"), Some("for=192.0.2.60")),
            ip("198.51.100.1")
        );
    }
}
