//! The PROXY protocol header (HAProxy, versions 1 and 2) that a load balancer puts in front of
//! the client's bytes to say who the client is.
//!
//! Sans-IO: [`parse`] takes the bytes received so far and answers with the header and how many
//! bytes it took, "read more", or why the connection is not one to serve. It reads at most
//! [`MAX_HEADER_BYTES`], decides [`ProxyError::NotProxy`] from the first byte that differs from
//! both signatures, and never looks past the header: what follows (the upgrade request, a TLS
//! ClientHello) is the caller's. Spec: <https://www.haproxy.org/download/2.9/doc/proxy-protocol.txt>.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};

/// The longest header read: v1 is at most 107 bytes; v2 is 16 bytes plus its length, bounded here.
pub const MAX_HEADER_BYTES: usize = 536;

/// The longest v1 line, "PROXY" to CRLF included (spec §2.1: the worst case, UNKNOWN followed by
/// the longest TCP6 addresses and ports).
const V1_MAX_BYTES: usize = 107;
/// The v1 signature: "PROXY" and its single space.
const V1_SIGNATURE: &[u8] = b"PROXY ";
/// The v2 signature (spec §2.2), chosen so that no text protocol starts with it.
const V2_SIGNATURE: [u8; 12] = *b"\r\n\r\n\0\r\nQUIT\n";
/// The v2 fixed part: signature, version and command, family and transport, length.
const V2_FIXED_BYTES: usize = 16;

/// Who the client is, as the proxy saw the connection.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ProxyHeader {
    /// The client's address. None: LOCAL command, UNKNOWN or UNSPEC/UNIX family (the
    /// connection's own peer counts).
    pub source: Option<SocketAddr>,
    /// The address the client connected to on the proxy; None when `source` is.
    pub destination: Option<SocketAddr>,
}

impl ProxyHeader {
    /// No addresses: the connection's own endpoints count.
    const LOCAL: ProxyHeader = ProxyHeader {
        source: None,
        destination: None,
    };

    fn between(source: SocketAddr, destination: SocketAddr) -> ProxyHeader {
        ProxyHeader {
            source: Some(source),
            destination: Some(destination),
        }
    }
}

/// What the bytes received so far hold.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Parsed {
    /// A whole header; the first `consumed` bytes are it, the client's own bytes follow.
    Complete {
        header: ProxyHeader,
        consumed: usize,
    },
    /// A prefix of a header: read more and call again with all the bytes.
    Incomplete,
}

/// Why the connection does not start with a usable PROXY header. Every one of them means the
/// connection cannot be attributed to a client and should be closed.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
pub enum ProxyError {
    /// Neither signature: the client connected directly (an HTTP request, a TLS ClientHello)
    /// or the proxy does not send the PROXY protocol.
    #[error(
        "the connection does not start with a PROXY protocol header: it did not come through \
         a proxy that sends one (enable send-proxy / proxy_protocol on the load balancer)"
    )]
    NotProxy,
    /// No CRLF within the 107 bytes a v1 line may take.
    #[error("the PROXY v1 line has no CRLF within {V1_MAX_BYTES} bytes")]
    LineTooLong,
    /// The v1 line is not `PROXY TCP4|TCP6 <src> <dst> <sport> <dport>` or `PROXY UNKNOWN ...`.
    #[error("the PROXY v1 line is malformed: {0}")]
    Malformed(&'static str),
    /// A v1 address that is not an IPv4 (TCP4) or IPv6 (TCP6) address.
    #[error("the PROXY v1 line has an address that is not a valid {0} address")]
    BadAddress(&'static str),
    /// A v1 port that is not a decimal number 0 to 65535 without sign or leading zero.
    #[error("the PROXY v1 line has a port that is not a decimal number from 0 to 65535")]
    BadPort,
    /// A v2 header whose version nibble is not 2.
    #[error("the PROXY v2 header says version {0}; only version 2 exists")]
    UnsupportedVersion(u8),
    /// A v2 command other than LOCAL (0) and PROXY (1).
    #[error("the PROXY v2 header has command {0}; only LOCAL (0) and PROXY (1) exist")]
    UnsupportedCommand(u8),
    /// A v2 family/transport byte outside UNSPEC/INET/INET6/UNIX over UNSPEC/STREAM/DGRAM.
    #[error(
        "the PROXY v2 header has family/transport byte {0:#04x}, which the spec does not define"
    )]
    UnsupportedFamily(u8),
    /// A v2 header announcing more than [`MAX_HEADER_BYTES`] in all.
    #[error(
        "the PROXY v2 header announces {0} bytes after its first 16, more than the {max} \
         accepted",
        max = MAX_HEADER_BYTES - V2_FIXED_BYTES
    )]
    TooLong(u16),
    /// A v2 header whose length cannot hold the addresses of the family it names.
    #[error("the PROXY v2 header is {len} bytes long, too short for the {needed} bytes of its addresses")]
    AddressesCut { len: u16, needed: u16 },
}

impl ProxyError {
    /// Every label, for registering metrics up front.
    pub const LABELS: &'static [&'static str] = &[
        "missing",
        "too_long",
        "malformed",
        "bad_address",
        "bad_port",
        "unsupported",
    ];

    /// snake_case label used in metrics and logs, one of [`ProxyError::LABELS`].
    pub fn label(&self) -> &'static str {
        match self {
            ProxyError::NotProxy => "missing",
            ProxyError::LineTooLong | ProxyError::TooLong(_) => "too_long",
            ProxyError::Malformed(_) | ProxyError::AddressesCut { .. } => "malformed",
            ProxyError::BadAddress(_) => "bad_address",
            ProxyError::BadPort => "bad_port",
            ProxyError::UnsupportedVersion(_)
            | ProxyError::UnsupportedCommand(_)
            | ProxyError::UnsupportedFamily(_) => "unsupported",
        }
    }
}

/// Parses the PROXY header at the start of `input`, the bytes received so far on a connection.
/// Reads at most [`MAX_HEADER_BYTES`] of them; `consumed` never exceeds that nor `input.len()`.
pub fn parse(input: &[u8]) -> Result<Parsed, ProxyError> {
    if starts_like(input, V1_SIGNATURE) {
        if input.len() < V1_SIGNATURE.len() {
            return Ok(Parsed::Incomplete);
        }
        parse_v1(input)
    } else if starts_like(input, &V2_SIGNATURE) {
        if input.len() < V2_SIGNATURE.len() {
            return Ok(Parsed::Incomplete);
        }
        parse_v2(input)
    } else {
        Err(ProxyError::NotProxy)
    }
}

/// Whether `input` and `signature` agree on the bytes both have.
fn starts_like(input: &[u8], signature: &[u8]) -> bool {
    let n = input.len().min(signature.len());
    input[..n] == signature[..n]
}

/// Version 1 (spec §2.1): one ASCII line, `input` starts with "PROXY ".
fn parse_v1(input: &[u8]) -> Result<Parsed, ProxyError> {
    let window = &input[..input.len().min(V1_MAX_BYTES)];
    // Only printable ASCII up to the CR, so that garbage is refused on the bytes it shows up in
    // rather than after 107 of them.
    let Some(end) = window.iter().position(|&b| !(b' '..=b'~').contains(&b)) else {
        return if window.len() == V1_MAX_BYTES {
            Err(ProxyError::LineTooLong)
        } else {
            Ok(Parsed::Incomplete)
        };
    };
    if window[end] != b'\r' {
        return Err(ProxyError::Malformed(
            "a byte other than printable ASCII before CRLF",
        ));
    }
    match input.get(end + 1) {
        _ if end + 2 > V1_MAX_BYTES => return Err(ProxyError::LineTooLong),
        None => return Ok(Parsed::Incomplete),
        Some(b'\n') => {}
        Some(_) => return Err(ProxyError::Malformed("a CR not followed by LF")),
    }
    // ASCII checked above.
    let line = std::str::from_utf8(&input[V1_SIGNATURE.len()..end])
        .map_err(|_| ProxyError::Malformed("a byte other than printable ASCII before CRLF"))?;
    let header = parse_v1_fields(line)?;
    Ok(Parsed::Complete {
        header,
        consumed: end + 2,
    })
}

/// The fields after "PROXY ", each separated by exactly one space.
fn parse_v1_fields(line: &str) -> Result<ProxyHeader, ProxyError> {
    let mut fields = line.split(' ');
    let family = fields.next().unwrap_or("");
    let name = match family {
        // Whatever follows UNKNOWN is to be ignored (spec §2.1).
        "UNKNOWN" => return Ok(ProxyHeader::LOCAL),
        "TCP4" => "IPv4",
        "TCP6" => "IPv6",
        "" => return Err(ProxyError::Malformed("no protocol after \"PROXY \"")),
        _ => {
            return Err(ProxyError::Malformed(
                "the protocol is not TCP4, TCP6 or UNKNOWN",
            ))
        }
    };
    let mut next = || {
        fields.next().ok_or(ProxyError::Malformed(
            "fewer than the 4 fields <src> <dst> <sport> <dport>",
        ))
    };
    let (source, destination) = (next()?, next()?);
    let (source_port, destination_port) = (next()?, next()?);
    if fields.next().is_some() {
        return Err(ProxyError::Malformed(
            "more than the 4 fields <src> <dst> <sport> <dport>",
        ));
    }
    let address = |text: &str| -> Result<IpAddr, ProxyError> {
        let ip = match family {
            "TCP4" => text.parse::<Ipv4Addr>().map(IpAddr::V4),
            _ => text.parse::<Ipv6Addr>().map(IpAddr::V6),
        };
        ip.map_err(|_| ProxyError::BadAddress(name))
    };
    Ok(ProxyHeader::between(
        SocketAddr::new(address(source)?, port(source_port)?),
        SocketAddr::new(address(destination)?, port(destination_port)?),
    ))
}

/// A v1 port: 1 to 5 decimal digits, no sign, no leading zero, at most 65535.
fn port(text: &str) -> Result<u16, ProxyError> {
    let digits = text.as_bytes();
    let canonical = matches!(digits, [b'0'] | [b'1'..=b'9', ..])
        && digits.len() <= 5
        && digits.iter().all(u8::is_ascii_digit);
    if !canonical {
        return Err(ProxyError::BadPort);
    }
    text.parse().map_err(|_| ProxyError::BadPort)
}

/// Version 2 (spec §2.2): binary, `input` starts with the 12-byte signature.
fn parse_v2(input: &[u8]) -> Result<Parsed, ProxyError> {
    // Each byte of the fixed part is checked as soon as it arrives.
    let Some(&version_command) = input.get(12) else {
        return Ok(Parsed::Incomplete);
    };
    let version = version_command >> 4;
    if version != 2 {
        return Err(ProxyError::UnsupportedVersion(version));
    }
    let local = match version_command & 0x0f {
        0 => true,
        1 => false,
        command => return Err(ProxyError::UnsupportedCommand(command)),
    };
    let Some(&family_transport) = input.get(13) else {
        return Ok(Parsed::Incomplete);
    };
    let (family, transport) = (family_transport >> 4, family_transport & 0x0f);
    // LOCAL: the family is to be ignored (spec §2.2), so only PROXY has it checked.
    if !local && (family > 3 || transport > 2) {
        return Err(ProxyError::UnsupportedFamily(family_transport));
    }
    let (Some(&high), Some(&low)) = (input.get(14), input.get(15)) else {
        return Ok(Parsed::Incomplete);
    };
    let len = u16::from_be_bytes([high, low]);
    let consumed = V2_FIXED_BYTES + usize::from(len);
    if consumed > MAX_HEADER_BYTES {
        return Err(ProxyError::TooLong(len));
    }
    let Some(block) = input.get(V2_FIXED_BYTES..consumed) else {
        return Ok(Parsed::Incomplete);
    };
    if local {
        return Ok(Parsed::Complete {
            header: ProxyHeader::LOCAL,
            consumed,
        });
    }
    // Addresses of each family: two addresses and, for INET and INET6, two ports.
    let needed: u16 = match family {
        1 => 2 * 4 + 2 * 2,
        2 => 2 * 16 + 2 * 2,
        3 => 2 * 108,
        _ => 0,
    };
    if len < needed {
        return Err(ProxyError::AddressesCut { len, needed });
    }
    const STREAM: u8 = 1;
    let header = match (family, transport) {
        (1, STREAM) => {
            let ip = |at: usize| IpAddr::from(read::<4>(block, at));
            ProxyHeader::between(
                SocketAddr::new(ip(0), read_port(block, 8)),
                SocketAddr::new(ip(4), read_port(block, 10)),
            )
        }
        (2, STREAM) => {
            let ip = |at: usize| IpAddr::from(read::<16>(block, at));
            ProxyHeader::between(
                SocketAddr::new(ip(0), read_port(block, 32)),
                SocketAddr::new(ip(16), read_port(block, 34)),
            )
        }
        // UNSPEC, UNIX or datagrams: the connection's own peer counts; TLVs are skipped.
        _ => ProxyHeader::LOCAL,
    };
    Ok(Parsed::Complete { header, consumed })
}

/// `N` bytes of `block` at `at`, zeros past its end (the length was checked against the family).
fn read<const N: usize>(block: &[u8], at: usize) -> [u8; N] {
    let mut out = [0; N];
    if let Some(bytes) = block.get(at..at + N) {
        out.copy_from_slice(bytes);
    }
    out
}

fn read_port(block: &[u8], at: usize) -> u16 {
    u16::from_be_bytes(read::<2>(block, at))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn complete(input: &[u8]) -> (ProxyHeader, usize) {
        match parse(input) {
            Ok(Parsed::Complete { header, consumed }) => (header, consumed),
            other => panic!("{:?}: {other:?}", String::from_utf8_lossy(input)),
        }
    }

    fn addr(text: &str) -> Option<SocketAddr> {
        Some(text.parse().unwrap())
    }

    /// Every proper prefix of `header` asks for more bytes.
    fn assert_prefixes_incomplete(header: &[u8]) {
        for n in 0..header.len() {
            assert_eq!(
                parse(&header[..n]),
                Ok(Parsed::Incomplete),
                "prefix of {n} bytes"
            );
        }
    }

    /// A v2 header: `command` (0 LOCAL, 1 PROXY), `family_transport`, then `block`.
    fn v2(command: u8, family_transport: u8, block: &[u8]) -> Vec<u8> {
        let mut out = V2_SIGNATURE.to_vec();
        out.push(0x20 | command);
        out.push(family_transport);
        out.extend_from_slice(&u16::try_from(block.len()).unwrap().to_be_bytes());
        out.extend_from_slice(block);
        out
    }

    /// The INET block of the spec's example: 192.168.0.1:56324 -> 192.168.0.11:443.
    const INET_BLOCK: [u8; 12] = [192, 168, 0, 1, 192, 168, 0, 11, 0xdc, 0x04, 0x01, 0xbb];

    fn inet6_block() -> Vec<u8> {
        let source: Ipv6Addr = "2001:db8::1".parse().unwrap();
        let destination: Ipv6Addr = "2001:db8::2".parse().unwrap();
        let mut block = source.octets().to_vec();
        block.extend_from_slice(&destination.octets());
        block.extend_from_slice(&56324u16.to_be_bytes());
        block.extend_from_slice(&443u16.to_be_bytes());
        block
    }

    #[test]
    fn v1_tcp4_as_in_the_spec() {
        let line = b"PROXY TCP4 255.255.255.255 255.255.255.255 65535 65535\r\n";
        let (header, consumed) = complete(line);
        assert_eq!(consumed, line.len());
        assert_eq!(header.source, addr("255.255.255.255:65535"));
        assert_eq!(header.destination, addr("255.255.255.255:65535"));

        let (header, consumed) =
            complete(b"PROXY TCP4 192.168.0.1 192.168.0.11 56324 443\r\nGET /");
        assert_eq!(consumed, 47);
        assert_eq!(header.source, addr("192.168.0.1:56324"));
        assert_eq!(header.destination, addr("192.168.0.11:443"));
        assert_prefixes_incomplete(&line[..]);
    }

    #[test]
    fn v1_tcp6_at_the_longest() {
        let line = b"PROXY TCP6 ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff \
            ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff 65535 65535\r\n";
        // 107 less the 3 bytes "UNKNOWN" has over "TCP6".
        assert_eq!(line.len(), V1_MAX_BYTES - 3);
        let (header, consumed) = complete(line);
        assert_eq!(consumed, line.len());
        let all_ones = SocketAddr::new(IpAddr::V6(Ipv6Addr::from([0xff; 16])), 65535);
        assert_eq!(header.source, Some(all_ones));
        assert_eq!(header.destination, Some(all_ones));
        assert_prefixes_incomplete(line);

        let (header, _) = complete(b"PROXY TCP6 2001:db8::1 ::1 0 80\r\n");
        assert_eq!(header.source, addr("[2001:db8::1]:0"));
        assert_eq!(header.destination, addr("[::1]:80"));
    }

    #[test]
    fn v1_unknown_ignores_the_rest_of_the_line() {
        for line in [
            &b"PROXY UNKNOWN\r\n"[..],
            b"PROXY UNKNOWN ffff:f...f:ffff ffff:f...f:ffff 65535 65535\r\n",
        ] {
            assert_eq!(complete(line), (ProxyHeader::LOCAL, line.len()));
            assert_prefixes_incomplete(line);
        }
        // The worst case of the spec: UNKNOWN followed by the longest TCP6 fields.
        let mut line = b"PROXY UNKNOWN ".to_vec();
        line.resize(V1_MAX_BYTES - 2, b'f');
        line.extend_from_slice(b"\r\n");
        assert_eq!(complete(&line), (ProxyHeader::LOCAL, V1_MAX_BYTES));
    }

    #[test]
    fn v1_longer_than_107_bytes_is_refused() {
        let mut line = b"PROXY UNKNOWN ".to_vec();
        line.resize(V1_MAX_BYTES - 1, b'f');
        line.extend_from_slice(b"\r\n");
        assert_eq!(parse(&line), Err(ProxyError::LineTooLong));
        // Decided once 107 bytes are in, however many more come.
        assert_eq!(parse(&line[..V1_MAX_BYTES]), Err(ProxyError::LineTooLong));
        assert_eq!(parse(&line[..V1_MAX_BYTES - 1]), Ok(Parsed::Incomplete));
        let mut endless = b"PROXY TCP4 ".to_vec();
        endless.resize(4096, b'1');
        assert_eq!(parse(&endless), Err(ProxyError::LineTooLong));
        assert_eq!(ProxyError::LineTooLong.label(), "too_long");
    }

    #[test]
    fn v1_bad_ports_are_refused() {
        for port in [
            "65536", "+80", "-1", "080", "00", "", "8a", "999999", "0x1f",
        ] {
            for line in [
                format!("PROXY TCP4 1.2.3.4 5.6.7.8 {port} 443\r\n"),
                format!("PROXY TCP4 1.2.3.4 5.6.7.8 443 {port}\r\n"),
            ] {
                let error = parse(line.as_bytes()).unwrap_err();
                assert_eq!(error, ProxyError::BadPort, "{line:?}");
                assert_eq!(error.label(), "bad_port");
            }
        }
        assert_eq!(
            complete(b"PROXY TCP4 1.2.3.4 5.6.7.8 0 65535\r\n").0.source,
            addr("1.2.3.4:0")
        );
    }

    #[test]
    fn v1_bad_addresses_are_refused() {
        for (line, family) in [
            (&b"PROXY TCP4 1.2.3 5.6.7.8 1 2\r\n"[..], "IPv4"),
            (b"PROXY TCP4 1.2.3.256 5.6.7.8 1 2\r\n", "IPv4"),
            (b"PROXY TCP4 01.2.3.4 5.6.7.8 1 2\r\n", "IPv4"),
            (b"PROXY TCP4 1.2.3.4 ::1 1 2\r\n", "IPv4"),
            (b"PROXY TCP4 localhost 5.6.7.8 1 2\r\n", "IPv4"),
            (b"PROXY TCP6 1.2.3.4 ::1 1 2\r\n", "IPv6"),
            (b"PROXY TCP6 [::1] ::1 1 2\r\n", "IPv6"),
            (b"PROXY TCP6 ::1 fe80::1%eth0 1 2\r\n", "IPv6"),
            (b"PROXY TCP6 ::1 1::2::3 1 2\r\n", "IPv6"),
        ] {
            let error = parse(line).unwrap_err();
            assert_eq!(error, ProxyError::BadAddress(family), "{line:?}");
            assert_eq!(error.label(), "bad_address");
        }
    }

    #[test]
    fn v1_malformed_lines_are_refused() {
        for line in [
            &b"PROXY \r\n"[..],
            b"PROXY TCP5 1.2.3.4 5.6.7.8 1 2\r\n",
            b"PROXY tcp4 1.2.3.4 5.6.7.8 1 2\r\n",
            b"PROXY UNKNOWNX\r\n",
            b"PROXY TCP4 1.2.3.4 5.6.7.8 1\r\n",
            b"PROXY TCP4  1.2.3.4 5.6.7.8 1 2\r\n",
            b"PROXY TCP4 1.2.3.4 5.6.7.8 1 2 3\r\n",
            b"PROXY TCP4 1.2.3.4 5.6.7.8 1 2\n",
            b"PROXY TCP4 1.2.3.4 5.6.7.8 1 2\rX",
            b"PROXY TCP4 1.2.3.4\t5.6.7.8 1 2\r\n",
            b"PROXY TCP4 1.2.3.4 5.6.7.8 1 \xff2\r\n",
        ] {
            let error = parse(line).unwrap_err();
            assert!(
                matches!(error, ProxyError::Malformed(_)),
                "{line:?}: {error:?}"
            );
            assert_eq!(error.label(), "malformed");
        }
        // A stray byte is refused where it stands, not 107 bytes later.
        assert!(parse(b"PROXY TCP4 \x00").is_err());
    }

    #[test]
    fn v2_proxy_inet_as_in_the_spec() {
        let mut header = v2(1, 0x11, &INET_BLOCK);
        let whole = header.len();
        assert_eq!(whole, 28);
        assert_prefixes_incomplete(&header);
        header.extend_from_slice(b"GET / HTTP/1.1\r\n");
        let (parsed, consumed) = complete(&header);
        assert_eq!(consumed, whole);
        assert_eq!(parsed.source, addr("192.168.0.1:56324"));
        assert_eq!(parsed.destination, addr("192.168.0.11:443"));
    }

    #[test]
    fn v2_proxy_inet6() {
        let header = v2(1, 0x21, &inet6_block());
        assert_eq!(header.len(), 52);
        assert_prefixes_incomplete(&header);
        let (parsed, consumed) = complete(&header);
        assert_eq!(consumed, 52);
        assert_eq!(parsed.source, addr("[2001:db8::1]:56324"));
        assert_eq!(parsed.destination, addr("[2001:db8::2]:443"));
    }

    #[test]
    fn v2_local_takes_the_block_and_no_address() {
        for header in [
            v2(0, 0x00, &[]),
            v2(0, 0x11, &INET_BLOCK),
            v2(0, 0xff, &[7; 5]),
        ] {
            assert_prefixes_incomplete(&header);
            assert_eq!(complete(&header), (ProxyHeader::LOCAL, header.len()));
        }
    }

    #[test]
    fn v2_tlvs_are_skipped_but_consumed() {
        // PP2_TYPE_ALPN "http/1.1", then PP2_TYPE_NOOP of 3 bytes.
        let mut block = INET_BLOCK.to_vec();
        block.extend_from_slice(&[0x01, 0x00, 0x08]);
        block.extend_from_slice(b"http/1.1");
        block.extend_from_slice(&[0x04, 0x00, 0x03, 0, 0, 0]);
        let mut header = v2(1, 0x11, &block);
        let whole = header.len();
        assert_prefixes_incomplete(&header);
        header.extend_from_slice(&[0x16, 0x03, 0x01]);
        let (parsed, consumed) = complete(&header);
        assert_eq!(consumed, whole);
        assert_eq!(parsed.source, addr("192.168.0.1:56324"));
    }

    #[test]
    fn v2_other_families_consume_without_address() {
        let unix = [b'/'; 216];
        for (family_transport, block) in [
            (0x00, &[][..]),
            (0x01, &[1, 2, 3][..]),
            (0x12, &INET_BLOCK[..]),
            (0x22, &inet6_block()[..]),
            (0x31, &unix[..]),
            (0x32, &unix[..]),
        ] {
            let header = v2(1, family_transport, block);
            assert_eq!(
                complete(&header),
                (ProxyHeader::LOCAL, header.len()),
                "{family_transport:#x}"
            );
        }
    }

    #[test]
    fn v2_refusals() {
        let mut bad_version = v2(1, 0x11, &INET_BLOCK);
        bad_version[12] = 0x11;
        assert_eq!(
            parse(&bad_version[..13]),
            Err(ProxyError::UnsupportedVersion(1))
        );
        assert_eq!(
            parse(&v2(2, 0x11, &INET_BLOCK)[..13]),
            Err(ProxyError::UnsupportedCommand(2))
        );
        for family_transport in [0x41, 0x13, 0xf1] {
            let header = v2(1, family_transport, &INET_BLOCK);
            let error = parse(&header[..14]).unwrap_err();
            assert_eq!(error, ProxyError::UnsupportedFamily(family_transport));
            assert_eq!(error.label(), "unsupported");
        }
        // The length is refused as soon as it is read.
        let longest = v2(1, 0x11, &[0; MAX_HEADER_BYTES - V2_FIXED_BYTES]);
        assert_eq!(complete(&longest).1, MAX_HEADER_BYTES);
        let too_long = v2(1, 0x11, &[0; MAX_HEADER_BYTES - V2_FIXED_BYTES + 1]);
        assert_eq!(parse(&too_long[..16]), Err(ProxyError::TooLong(521)));
        assert_eq!(ProxyError::TooLong(521).label(), "too_long");
        assert_eq!(
            parse(&v2(1, 0x11, &INET_BLOCK[..11])),
            Err(ProxyError::AddressesCut {
                len: 11,
                needed: 12
            })
        );
        assert_eq!(
            parse(&v2(1, 0x21, &INET_BLOCK)),
            Err(ProxyError::AddressesCut {
                len: 12,
                needed: 36
            })
        );
    }

    #[test]
    fn a_flipped_signature_byte_is_not_proxy_or_an_error() {
        let headers = [
            b"PROXY TCP4 192.168.0.1 192.168.0.11 56324 443\r\n".to_vec(),
            v2(1, 0x11, &INET_BLOCK),
        ];
        for header in headers {
            let signature = if header[0] == b'P' { 6 } else { 12 };
            for at in 0..signature {
                for flip in [0x01, 0x20, 0x80] {
                    let mut bad = header.clone();
                    bad[at] ^= flip;
                    assert!(parse(&bad).is_err(), "byte {at} ^ {flip:#x}");
                    assert!(parse(&bad[..=at]).is_err(), "byte {at} ^ {flip:#x}, cut");
                }
            }
        }
    }

    #[test]
    fn other_protocols_are_not_proxy_from_their_first_bytes() {
        for input in [
            &b"GET / HTTP/1.1\r\nHost: a\r\n\r\n"[..],
            b"G",
            b"PRI * HTTP/2.0",
            b"PROXYX",
            b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03",
            b"\x16",
            b"\r\n\r\n\0\r\nQUIX\n",
            b"\r\n\r\nGET",
        ] {
            let error = parse(input).unwrap_err();
            assert_eq!(error, ProxyError::NotProxy, "{input:?}");
            assert_eq!(error.label(), "missing");
        }
        assert_eq!(parse(b""), Ok(Parsed::Incomplete));
        assert_eq!(parse(b"PROX"), Ok(Parsed::Incomplete));
        assert_eq!(parse(b"\r\n\r\n"), Ok(Parsed::Incomplete));
    }

    #[test]
    fn labels_are_listed_and_snake_case() {
        let errors = [
            ProxyError::NotProxy,
            ProxyError::LineTooLong,
            ProxyError::Malformed("x"),
            ProxyError::BadAddress("IPv4"),
            ProxyError::BadPort,
            ProxyError::UnsupportedVersion(1),
            ProxyError::UnsupportedCommand(2),
            ProxyError::UnsupportedFamily(0x41),
            ProxyError::TooLong(600),
            ProxyError::AddressesCut { len: 1, needed: 12 },
        ];
        for error in errors {
            let label = error.label();
            assert!(ProxyError::LABELS.contains(&label), "{label}");
            assert!(label.bytes().all(|b| b.is_ascii_lowercase() || b == b'_'));
            assert!(!error.to_string().is_empty());
        }
        for label in ProxyError::LABELS {
            assert!(errors.iter().any(|e| e.label() == *label), "{label} unused");
        }
    }
}
