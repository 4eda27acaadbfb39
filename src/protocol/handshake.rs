//! The HTTP/1.1 upgrade request (RFC 6455 §4.2), parsed in place on the accepted socket's bytes.

use std::io::Write as _;
use std::mem::MaybeUninit;

use base64::engine::general_purpose::STANDARD as BASE64;
use base64::Engine as _;
use sha1::{Digest as _, Sha1};

use super::deflate::Agreement;
use super::refusal::{Refusal, RefusalReason};

/// The magic GUID of RFC 6455 §1.3.
pub const WS_GUID: &str = "258EAFA5-E914-47DA-95CA-C5AB0DC85B11";

/// Most headers [`parse_request`] can ever parse: the header array lives on the stack, so
/// `HandshakeLimits::max_headers` is clamped to this.
pub const MAX_HEADERS_CEILING: usize = 128;

/// The request header by which a client asks what its credentials grant
/// (`RingWS-Explain: identity`); the 101 then carries [`IDENTITY_HEADER`]. Without it the 101 is
/// unchanged.
pub const EXPLAIN_HEADER: &str = "RingWS-Explain";
/// The token of [`EXPLAIN_HEADER`] that asks for the identity.
pub const EXPLAIN_IDENTITY: &str = "identity";
/// The 101's header naming the subject and topic permissions granted (see
/// `crate::policy::identity_header`), sent only when [`EXPLAIN_HEADER`] asked for it.
pub const IDENTITY_HEADER: &str = "RingWS-Identity";

/// Length of a `Sec-WebSocket-Key` carrying 16 bytes: 22 base64 characters plus `==`.
const KEY_LEN_BASE64: usize = 24;
const KEY_LEN_BYTES: usize = 16;

#[derive(Clone, Copy, Debug)]
pub struct HandshakeLimits {
    /// Largest accepted request head (request line + headers + blank line). Default 8 KiB.
    pub max_head_bytes: usize,
    /// Most headers parsed. Default 64; at most [`MAX_HEADERS_CEILING`] take effect.
    pub max_headers: usize,
}

impl Default for HandshakeLimits {
    fn default() -> Self {
        HandshakeLimits {
            max_head_bytes: 8 * 1024,
            max_headers: 64,
        }
    }
}

/// A valid upgrade request, borrowing from the input buffer.
#[derive(Debug)]
pub struct UpgradeRequest<'a> {
    /// Bytes of the request head, including the final CRLFCRLF; bytes after it are frames.
    pub head_len: usize,
    /// Path without the query string.
    pub path: &'a str,
    /// Query string without '?', if any.
    pub query: Option<&'a str>,
    /// The Sec-WebSocket-Key value (24 base64 chars decoding to 16 bytes).
    pub key: &'a [u8],
    pub origin: Option<&'a str>,
    /// The first Sec-WebSocket-Protocol line (a comma separated list), may be empty. A client
    /// may split its offer over several lines: [`UpgradeRequest::protocol_lines`] yields all.
    pub protocols: Option<&'a str>,
    /// How many Sec-WebSocket-Protocol lines the request has.
    pub protocol_line_count: u32,
    /// The first Sec-WebSocket-Extensions line; [`UpgradeRequest::extension_lines`] yields all.
    pub extensions: Option<&'a str>,
    /// How many Sec-WebSocket-Extensions lines the request has.
    pub extension_line_count: u32,
    /// The `Authorization` value (first occurrence), e.g. `Bearer <token>`.
    pub authorization: Option<&'a str>,
    /// The LAST `X-Forwarded-For` header: a proxy that adds its own line (HAProxy) puts it
    /// last, after any line the client sent; one that appends (nginx) keeps a single line.
    pub x_forwarded_for: Option<&'a str>,
    /// The LAST `Forwarded` header (RFC 7239), for the same reason.
    pub forwarded: Option<&'a str>,
    /// The `User-Agent` (first occurrence); `None` when absent or not UTF-8, since it only
    /// serves diagnosis.
    pub user_agent: Option<&'a str>,
    /// The client asked (`RingWS-Explain: identity`, [`EXPLAIN_HEADER`]) for the identity and
    /// topic permissions its credentials grant, in the 101's [`IDENTITY_HEADER`].
    pub explain_identity: bool,
    /// The request head, for the rare header split over several lines.
    head: &'a [u8],
}

impl<'a> UpgradeRequest<'a> {
    /// Every Sec-WebSocket-Protocol line, in order: repeated lines form one list (RFC 6455
    /// §11.3.4). One line or none is answered from the parse; more re-read the head, which the
    /// parser has already validated (and every such line is UTF-8).
    pub fn protocol_lines(&self) -> impl Iterator<Item = &'a str> + Clone + 'a {
        lines_named(
            self.head,
            b"sec-websocket-protocol",
            self.protocols,
            self.protocol_line_count,
        )
    }

    /// Every Sec-WebSocket-Extensions line, in order: like the subprotocols, one list over
    /// however many lines (RFC 6455 §9.1).
    pub fn extension_lines(&self) -> impl Iterator<Item = &'a str> + Clone + 'a {
        lines_named(
            self.head,
            b"sec-websocket-extensions",
            self.extensions,
            self.extension_line_count,
        )
    }
}

/// The values of the header `name` (lowercase): `first` alone when there are not several
/// (`count`), else re-read from `head`, which the parser has validated.
fn lines_named<'a>(
    head: &'a [u8],
    name: &'static [u8],
    first: Option<&'a str>,
    count: u32,
) -> impl Iterator<Item = &'a str> + Clone + 'a {
    let many = count > 1;
    let single = first.filter(|_| !many);
    let rescan = if many { head } else { &[] };
    let lines = rescan
        .split(|&b| b == b'\n')
        .skip(1) // the request line
        .map(|line| line.strip_suffix(b"\r").unwrap_or(line))
        .take_while(|line| !line.is_empty())
        .filter_map(|line| {
            let colon = line.iter().position(|&b| b == b':')?;
            let (line_name, value) = (&line[..colon], &line[colon + 1..]);
            if !line_name.eq_ignore_ascii_case(name) {
                return None;
            }
            std::str::from_utf8(value.trim_ascii()).ok()
        });
    single.into_iter().chain(lines)
}

/// Parses an upgrade request from the bytes received so far.
///
/// `Ok(None)`: the head is incomplete and still under `limits.max_head_bytes`: read more.
/// `Err(refusal)`: answer with [`write_refusal`] and close. Path routing (404) is the caller's.
///
/// A request with several faults is refused for the first of, in order: TLS on the plain port;
/// head too large or malformed; HTTP version; method; request target; not an upgrade at all;
/// `Upgrade`; `Connection`; `Sec-WebSocket-Version` (missing or other than 13, then repeated);
/// `Sec-WebSocket-Key`; a body; `Host` not exactly once or not a `host[:port]`. The cheapest,
/// most fundamental mistake is named first, so a person fixes the real cause before details;
/// the WebSocket headers come before `Host` because their faults point at a proxy in front,
/// while every real client sends one `Host`.
///
/// `Host` must appear exactly once (RFC 9112 §3.2: 400 for none, several, or an invalid value;
/// an empty value is valid), even with an absolute-form target, and `Sec-WebSocket-Version`
/// exactly once (RFC 6455 §4.2.1, §11.3.5): a repeated `13` is 400 `repeated_version`, while any
/// value other than 13, repeated or not, is 426 `unsupported_version`.
///
/// The request target may be origin-form (`/chat?room=1`) or absolute-form
/// (`http://host/chat`, RFC 9112 §3.2.2 says servers must accept it); of the latter only the path
/// and query are kept. Any other form (`*`, `host:port`, `chat`) is malformed.
///
/// `Origin`, `Sec-WebSocket-Protocol`, `Sec-WebSocket-Extensions`, `Authorization` and
/// `User-Agent` repeated: the first occurrence wins, since joining them would allocate.
/// `X-Forwarded-For` and `Forwarded` repeated: the last wins, as the nearest proxy writes last.
pub fn parse_request<'a>(
    buf: &'a [u8],
    limits: &HandshakeLimits,
) -> Result<Option<UpgradeRequest<'a>>, Refusal> {
    use RefusalReason::*;

    if looks_like_tls(buf) {
        return Err(TlsOnPlainPort.into());
    }

    // Parse only up to the limit: a head that ends within it is complete here, one that does not
    // is either still arriving or too large. Bytes past the head (pipelined frames) are not ours.
    let window = &buf[..buf.len().min(limits.max_head_bytes)];
    let mut headers =
        [const { MaybeUninit::<httparse::Header<'a>>::uninit() }; MAX_HEADERS_CEILING];
    let headers = &mut headers[..limits.max_headers.min(MAX_HEADERS_CEILING)];
    let mut request = httparse::Request::new(&mut []);
    let head_len = match request.parse_with_uninit_headers(window, headers) {
        Ok(httparse::Status::Complete(head_len)) => head_len,
        Ok(httparse::Status::Partial) if buf.len() > limits.max_head_bytes => {
            return Err(HeadTooLarge.into())
        }
        Ok(httparse::Status::Partial) => return Ok(None),
        Err(httparse::Error::TooManyHeaders) => return Err(HeadTooLarge.into()),
        Err(_) => return Err(MalformedRequest.into()),
    };
    debug_assert!(head_len <= limits.max_head_bytes);

    // httparse sets these on a complete parse; treat their absence as malformed, never panic.
    let (Some(method), Some(target), Some(version)) =
        (request.method, request.path, request.version)
    else {
        return Err(MalformedRequest.into());
    };
    if version != 1 {
        return Err(HttpVersion.into());
    }
    if method != "GET" {
        return Err(MethodNotAllowed.into());
    }
    let Some((path, query)) = split_target(target) else {
        return Err(MalformedRequest.into());
    };

    let fields = HeaderFields::scan(request.headers);
    if !fields.upgrade_present && !fields.connection_upgrade {
        return Err(NotAnUpgrade.into());
    }
    if !fields.upgrade_present {
        return Err(MissingUpgrade.into());
    }
    if !fields.upgrade_websocket {
        return Err(UpgradeNotWebsocket.into());
    }
    if !fields.connection_upgrade {
        return Err(MissingConnectionUpgrade.into());
    }
    if fields.version_count == 0 || !fields.version_13 {
        return Err(UnsupportedVersion.into());
    }
    if fields.version_count > 1 {
        return Err(Refusal::with_detail(
            RepeatedVersion,
            format!("{} Sec-WebSocket-Version headers", fields.version_count),
        ));
    }
    let key = match fields.key {
        KeyField::Missing => return Err(MissingKey.into()),
        KeyField::Repeated => return Err(BadKey.into()),
        KeyField::Once(key) if !is_valid_key(key) => return Err(BadKey.into()),
        KeyField::Once(key) => key,
    };
    if fields.body {
        return Err(RequestBody.into());
    }
    match fields.host {
        HostField::Once(host) if is_valid_host(host) => {}
        HostField::Missing => return Err(Refusal::with_detail(BadHost, "no Host header")),
        HostField::Repeated(count) => {
            return Err(Refusal::with_detail(
                BadHost,
                format!("{count} Host headers"),
            ))
        }
        HostField::Once(host) => {
            return Err(Refusal::with_detail(
                BadHost,
                format!(
                    "Host \"{}\" is not host[:port]",
                    String::from_utf8_lossy(host)
                ),
            ))
        }
    }

    // httparse admits obs-text (bytes >= 0x80) in values; these three are handed on as text.
    let text = |value: Option<&'a [u8]>| value.map(std::str::from_utf8).transpose();
    let (Ok(origin), Ok(protocols), Ok(extensions)) = (
        text(fields.origin),
        text(fields.protocols),
        text(fields.extensions),
    ) else {
        return Err(MalformedRequest.into());
    };
    let (Ok(authorization), Ok(x_forwarded_for), Ok(forwarded)) = (
        text(fields.authorization),
        text(fields.x_forwarded_for),
        text(fields.forwarded),
    ) else {
        return Err(MalformedRequest.into());
    };
    let user_agent = text(fields.user_agent).ok().flatten();
    if !fields.protocols_text {
        return Err(MalformedRequest.into());
    }

    Ok(Some(UpgradeRequest {
        head_len,
        path,
        query,
        key,
        origin,
        protocols,
        protocol_line_count: fields.protocol_line_count,
        extensions,
        extension_line_count: fields.extension_line_count,
        authorization,
        x_forwarded_for,
        forwarded,
        user_agent,
        explain_identity: fields.explain_identity,
        head: &buf[..head_len],
    }))
}

/// A TLS record starts with content type 0x16 (handshake) and major version 0x03. Neither byte
/// can begin an HTTP request, so one byte is enough to decide when that is all that arrived.
fn looks_like_tls(buf: &[u8]) -> bool {
    const TLS_HANDSHAKE: u8 = 0x16;
    const TLS_MAJOR_VERSION: u8 = 0x03;
    match buf {
        [TLS_HANDSHAKE] => true,
        [TLS_HANDSHAKE, major, ..] => *major == TLS_MAJOR_VERSION,
        _ => false,
    }
}

/// Splits a request target into path and query; `None` if it is neither origin- nor
/// absolute-form.
fn split_target(target: &str) -> Option<(&str, Option<&str>)> {
    let origin_form = if target.starts_with('/') {
        target
    } else {
        let (scheme, rest) = target.split_once("://")?;
        let known = ["http", "https", "ws", "wss"];
        if !known.iter().any(|known| scheme.eq_ignore_ascii_case(known)) {
            return None;
        }
        let authority_end = rest.find(['/', '?']).unwrap_or(rest.len());
        if authority_end == 0 {
            return None;
        }
        let rest = &rest[authority_end..];
        match rest.strip_prefix('?') {
            // `http://host?q` or `http://host`: the path is empty, which means `/`.
            Some(query) => return Some(("/", Some(query))),
            None if rest.is_empty() => return Some(("/", None)),
            None => rest,
        }
    };
    Some(match origin_form.split_once('?') {
        Some((path, query)) => (path, Some(query)),
        None => (origin_form, None),
    })
}

/// `Sec-WebSocket-Key`, which must appear exactly once.
enum KeyField<'a> {
    Missing,
    Once(&'a [u8]),
    Repeated,
}

/// `Host`, which must appear exactly once (RFC 9112 §3.2).
enum HostField<'a> {
    Missing,
    Once(&'a [u8]),
    /// How many `Host` lines there are (at least two).
    Repeated(u32),
}

/// What the upgrade checks need from the headers, gathered in one pass without allocating.
struct HeaderFields<'a> {
    upgrade_present: bool,
    upgrade_websocket: bool,
    connection_upgrade: bool,
    /// How many `Sec-WebSocket-Version` lines there are.
    version_count: u32,
    /// Every `Sec-WebSocket-Version` present says exactly `13`.
    version_13: bool,
    key: KeyField<'a>,
    host: HostField<'a>,
    body: bool,
    origin: Option<&'a [u8]>,
    protocols: Option<&'a [u8]>,
    protocol_line_count: u32,
    /// Every Sec-WebSocket-Protocol line is UTF-8.
    protocols_text: bool,
    extensions: Option<&'a [u8]>,
    extension_line_count: u32,
    authorization: Option<&'a [u8]>,
    x_forwarded_for: Option<&'a [u8]>,
    forwarded: Option<&'a [u8]>,
    user_agent: Option<&'a [u8]>,
    explain_identity: bool,
}

impl<'a> HeaderFields<'a> {
    fn scan(headers: &[httparse::Header<'a>]) -> Self {
        let mut fields = HeaderFields {
            upgrade_present: false,
            upgrade_websocket: false,
            connection_upgrade: false,
            version_count: 0,
            version_13: true,
            key: KeyField::Missing,
            host: HostField::Missing,
            body: false,
            origin: None,
            protocols: None,
            protocol_line_count: 0,
            protocols_text: true,
            extensions: None,
            extension_line_count: 0,
            authorization: None,
            x_forwarded_for: None,
            forwarded: None,
            user_agent: None,
            explain_identity: false,
        };
        for header in headers {
            let name = header.name;
            let value = header.value.trim_ascii();
            if name.eq_ignore_ascii_case("upgrade") {
                fields.upgrade_present = true;
                fields.upgrade_websocket |= has_token(value, b"websocket");
            } else if name.eq_ignore_ascii_case("connection") {
                fields.connection_upgrade |= has_token(value, b"upgrade");
            } else if name.eq_ignore_ascii_case("sec-websocket-version") {
                fields.version_count += 1;
                fields.version_13 &= value == b"13";
            } else if name.eq_ignore_ascii_case("host") {
                fields.host = match fields.host {
                    HostField::Missing => HostField::Once(value),
                    HostField::Once(_) => HostField::Repeated(2),
                    HostField::Repeated(n) => HostField::Repeated(n.saturating_add(1)),
                };
            } else if name.eq_ignore_ascii_case("sec-websocket-key") {
                fields.key = match fields.key {
                    KeyField::Missing => KeyField::Once(value),
                    KeyField::Once(_) | KeyField::Repeated => KeyField::Repeated,
                };
            } else if name.eq_ignore_ascii_case("content-length") {
                // Anything but a plain zero announces (or garbles) a body.
                fields.body |= value.is_empty() || value.iter().any(|&b| b != b'0');
            } else if name.eq_ignore_ascii_case("transfer-encoding") {
                fields.body = true;
            } else if name.eq_ignore_ascii_case("origin") {
                fields.origin = fields.origin.or(Some(value));
            } else if name.eq_ignore_ascii_case("sec-websocket-protocol") {
                // Repeated lines form one list (RFC 6455 §11.3.4): the first is kept, the others
                // are counted and re-read from the head only if there are any.
                fields.protocols = fields.protocols.or(Some(value));
                fields.protocol_line_count += 1;
                fields.protocols_text &= std::str::from_utf8(value).is_ok();
            } else if name.eq_ignore_ascii_case("sec-websocket-extensions") {
                fields.extensions = fields.extensions.or(Some(value));
                fields.extension_line_count += 1;
            } else if name.eq_ignore_ascii_case("authorization") {
                fields.authorization = fields.authorization.or(Some(value));
            } else if name.eq_ignore_ascii_case("x-forwarded-for") {
                fields.x_forwarded_for = Some(value);
            } else if name.eq_ignore_ascii_case("forwarded") {
                fields.forwarded = Some(value);
            } else if name.eq_ignore_ascii_case("user-agent") {
                fields.user_agent = fields.user_agent.or(Some(value));
            } else if name.eq_ignore_ascii_case(EXPLAIN_HEADER) {
                fields.explain_identity |= has_token(value, EXPLAIN_IDENTITY.as_bytes());
            }
        }
        fields
    }
}

/// Whether a comma-separated token list (RFC 9110 §5.6.1) holds `token`, case-insensitively.
pub(crate) fn has_token(list: &[u8], token: &[u8]) -> bool {
    list.split(|&b| b == b',')
        .any(|item| item.trim_ascii().eq_ignore_ascii_case(token))
}

/// A `Host` value is `uri-host [ ":" port ]` (RFC 9112 §3.2, RFC 3986 §3.2.2): a reg-name, an
/// IPv4 address or a bracketed IP literal, each built from these bytes only, or empty. Checked by
/// byte class, not by grammar: enough to refuse spaces, paths, userinfo and non-ASCII, which no
/// client puts there, without refusing any host a client can reach.
fn is_valid_host(host: &[u8]) -> bool {
    host.iter().all(|&b| {
        b.is_ascii_alphanumeric()
            || matches!(
                b,
                b'-' | b'.'
                    | b'_'
                    | b'~'
                    | b'%'
                    | b'!'
                    | b'$'
                    | b'&'
                    | b'\''
                    | b'('
                    | b')'
                    | b'*'
                    | b'+'
                    | b','
                    | b';'
                    | b'='
                    | b':'
                    | b'['
                    | b']'
            )
    })
}

/// A key is 16 bytes in standard, padded base64: exactly 24 characters ending in `==`.
fn is_valid_key(key: &[u8]) -> bool {
    // 24 characters decode to at most 18 bytes; base64 wants room for that estimate.
    let mut decoded = [0u8; 18];
    key.len() == KEY_LEN_BASE64
        && matches!(BASE64.decode_slice(key, &mut decoded), Ok(KEY_LEN_BYTES))
}

/// `base64(sha1(key ++ WS_GUID))`, 28 bytes.
pub fn accept_key(key: &[u8]) -> [u8; 28] {
    let mut sha1 = Sha1::new();
    sha1.update(key);
    sha1.update(WS_GUID.as_bytes());
    base64_exact(&sha1.finalize())
}

/// `bytes` in standard, padded base64, which must be exactly `N` characters long (16 bytes
/// make 24, a 20-byte SHA-1 digest 28).
pub(crate) fn base64_exact<const N: usize>(bytes: &[u8]) -> [u8; N] {
    let mut out = [0u8; N];
    let written = BASE64
        .encode_slice(bytes, &mut out)
        .expect("N is at least the encoded length");
    assert_eq!(written, N, "N is exactly the encoded length");
    out
}

/// Appends the `101 Switching Protocols` response to `out`. `protocol` is the chosen
/// subprotocol, if any.
pub fn write_accept(out: &mut Vec<u8>, key: &[u8], protocol: Option<&str>) {
    write_accept_with(out, key, protocol, None);
}

/// [`write_accept`] with the permessage-deflate answer, when one was agreed.
pub fn write_accept_with(
    out: &mut Vec<u8>,
    key: &[u8],
    protocol: Option<&str>,
    deflate: Option<&Agreement>,
) {
    write_accept_adding(out, key, protocol, deflate, &[]);
}

/// [`write_accept_with`] plus `extra`: whole header lines, each ending in CRLF (the
/// [`IDENTITY_HEADER`] a client asked for); empty for every other upgrade.
pub fn write_accept_adding(
    out: &mut Vec<u8>,
    key: &[u8],
    protocol: Option<&str>,
    deflate: Option<&Agreement>,
    extra: &[u8],
) {
    out.extend_from_slice(
        b"HTTP/1.1 101 Switching Protocols\r\n\
          Upgrade: websocket\r\n\
          Connection: Upgrade\r\n\
          Sec-WebSocket-Accept: ",
    );
    out.extend_from_slice(&accept_key(key));
    out.extend_from_slice(b"\r\n");
    if let Some(protocol) = protocol {
        out.extend_from_slice(b"Sec-WebSocket-Protocol: ");
        out.extend_from_slice(protocol.as_bytes());
        out.extend_from_slice(b"\r\n");
    }
    if let Some(agreement) = deflate {
        agreement.write_header(out);
    }
    out.extend_from_slice(extra);
    out.extend_from_slice(b"\r\n");
}

/// Appends the full refusal response (status line, `Content-Type: text/plain; charset=utf-8`,
/// `Content-Length`, `Connection: close`, reason-specific headers such as `Allow: GET`,
/// `Sec-WebSocket-Version: 13`, `Retry-After` or `WWW-Authenticate`, and the one-line reason,
/// its detail if any, plus "\n" as body).
pub fn write_refusal(out: &mut Vec<u8>, refusal: &Refusal) {
    let reason = refusal.reason;
    let message = refusal.message();
    // Writing into a Vec cannot fail.
    let _ = write!(
        out,
        "HTTP/1.1 {} {}\r\n\
         Content-Type: text/plain; charset=utf-8\r\n\
         Content-Length: {}\r\n\
         Connection: close\r\n",
        reason.status(),
        reason.reason_phrase(),
        message.len() + 1,
    );
    for (name, value) in reason.headers() {
        let _ = write!(out, "{name}: {value}\r\n");
    }
    if let Some((name, value)) = refusal.headers() {
        let _ = write!(out, "{name}: {value}\r\n");
    }
    out.extend_from_slice(b"\r\n");
    out.extend_from_slice(message.as_bytes());
    out.push(b'\n');
}

#[cfg(test)]
mod tests {
    use super::*;
    use RefusalReason::*;

    const KEY: &str = "dGhlIHNhbXBsZSBub25jZQ==";

    /// A request from a browser, RFC 6455 §1.3 style, with a query and the optional headers.
    const BROWSER: &[u8] = b"GET /chat?room=1&x=y HTTP/1.1\r\n\
        Host: server.example.com\r\n\
        Upgrade: websocket\r\n\
        Connection: Upgrade\r\n\
        Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\
        Origin: http://example.com\r\n\
        Sec-WebSocket-Protocol: chat, superchat\r\n\
        Sec-WebSocket-Extensions: permessage-deflate; client_max_window_bits\r\n\
        Sec-WebSocket-Version: 13\r\n\
        \r\n";

    fn parse(buf: &[u8]) -> Result<Option<UpgradeRequest<'_>>, Refusal> {
        parse_request(buf, &HandshakeLimits::default())
    }

    fn parse_complete(buf: &[u8]) -> UpgradeRequest<'_> {
        match parse(buf) {
            Ok(Some(request)) => request,
            other => panic!("expected a complete request, got {other:?}"),
        }
    }

    fn refusal(buf: &[u8]) -> RefusalReason {
        match parse(buf) {
            Err(refusal) => refusal.reason,
            other => panic!("expected a refusal, got {other:?}"),
        }
    }

    /// A valid request for `/` with `headers` (CRLF-terminated lines) in place of the usual ones.
    fn request_with(headers: &str) -> Vec<u8> {
        format!("GET / HTTP/1.1\r\nHost: h\r\n{headers}\r\n").into_bytes()
    }

    /// The usual upgrade headers, each replaceable through `edit`.
    fn upgrade_headers() -> Vec<(&'static str, &'static str)> {
        vec![
            ("Upgrade", "websocket"),
            ("Connection", "Upgrade"),
            ("Sec-WebSocket-Key", KEY),
            ("Sec-WebSocket-Version", "13"),
        ]
    }

    fn render(headers: &[(&str, &str)]) -> Vec<u8> {
        let lines: String = headers
            .iter()
            .map(|(name, value)| format!("{name}: {value}\r\n"))
            .collect();
        request_with(&lines)
    }

    fn without(name: &str) -> Vec<u8> {
        let headers: Vec<_> = upgrade_headers()
            .into_iter()
            .filter(|(n, _)| *n != name)
            .collect();
        render(&headers)
    }

    fn replacing(name: &str, value: &'static str) -> Vec<u8> {
        let headers: Vec<_> = upgrade_headers()
            .into_iter()
            .map(|(n, v)| if n == name { (n, value) } else { (n, v) })
            .collect();
        render(&headers)
    }

    fn adding(extra: &[(&'static str, &'static str)]) -> Vec<u8> {
        let mut headers = upgrade_headers();
        headers.extend_from_slice(extra);
        render(&headers)
    }

    fn rendered_refusal(reason: RefusalReason) -> String {
        let mut out = Vec::new();
        write_refusal(&mut out, &Refusal::new(reason));
        String::from_utf8(out).expect("refusals are ASCII")
    }

    // --- accept key and responses -------------------------------------------------------------

    #[test]
    fn accept_key_rfc_6455_vector() {
        assert_eq!(&accept_key(KEY.as_bytes()), b"s3pPLMBiTxaQ9kYGzzhZRbK+xOo=");
    }

    #[test]
    fn write_accept_without_protocol() {
        let mut out = b"prefix".to_vec();
        write_accept(&mut out, KEY.as_bytes(), None);
        assert_eq!(
            out,
            b"prefixHTTP/1.1 101 Switching Protocols\r\n\
              Upgrade: websocket\r\n\
              Connection: Upgrade\r\n\
              Sec-WebSocket-Accept: s3pPLMBiTxaQ9kYGzzhZRbK+xOo=\r\n\
              \r\n"
        );
    }

    #[test]
    fn write_accept_with_protocol() {
        let mut out = Vec::new();
        write_accept(&mut out, KEY.as_bytes(), Some("chat"));
        assert_eq!(
            out,
            b"HTTP/1.1 101 Switching Protocols\r\n\
              Upgrade: websocket\r\n\
              Connection: Upgrade\r\n\
              Sec-WebSocket-Accept: s3pPLMBiTxaQ9kYGzzhZRbK+xOo=\r\n\
              Sec-WebSocket-Protocol: chat\r\n\
              \r\n"
        );
    }

    #[test]
    fn write_accept_only_appends_within_capacity() {
        let mut out = Vec::with_capacity(256);
        let capacity = out.capacity();
        write_accept(&mut out, KEY.as_bytes(), Some("chat"));
        assert_eq!(
            out.capacity(),
            capacity,
            "write_accept reallocated a roomy buffer"
        );
    }

    #[test]
    fn write_refusal_shape_for_every_reason() {
        for &reason in RefusalReason::ALL {
            let response = rendered_refusal(reason);
            let (head, body) = response
                .split_once("\r\n\r\n")
                .expect("head ends in CRLFCRLF");
            let mut lines = head.split("\r\n");
            assert_eq!(
                lines.next().unwrap(),
                format!("HTTP/1.1 {} {}", reason.status(), reason.reason_phrase())
            );
            let headers: Vec<&str> = lines.collect();
            assert_eq!(headers[0], "Content-Type: text/plain; charset=utf-8");
            assert_eq!(headers[1], format!("Content-Length: {}", body.len()));
            assert_eq!(headers[2], "Connection: close");
            let specific: Vec<String> = reason
                .headers()
                .iter()
                .map(|(n, v)| format!("{n}: {v}"))
                .chain(
                    Refusal::new(reason)
                        .headers()
                        .map(|(n, v)| format!("{n}: {v}")),
                )
                .collect();
            assert_eq!(headers[3..], specific[..], "{reason:?}");
            assert_eq!(body, format!("{}\n", reason.message()));

            // And a client's HTTP parser agrees.
            let mut parsed = [httparse::EMPTY_HEADER; 16];
            let mut parsed_response = httparse::Response::new(&mut parsed);
            let status = parsed_response
                .parse(response.as_bytes())
                .expect("valid HTTP response");
            assert_eq!(status, httparse::Status::Complete(head.len() + 4));
            assert_eq!(parsed_response.code, Some(reason.status()));
        }
    }

    #[test]
    fn refusals_carry_their_required_headers() {
        let method = rendered_refusal(MethodNotAllowed);
        assert!(method.starts_with("HTTP/1.1 405 Method Not Allowed\r\n"));
        assert!(method.contains("\r\nAllow: GET\r\n"));

        let full = rendered_refusal(ServerFull);
        assert!(full.starts_with("HTTP/1.1 503 Service Unavailable\r\n"));
        assert!(full.contains("\r\nRetry-After: 1\r\n"));

        for reason in [NotAnUpgrade, UnsupportedVersion] {
            let response = rendered_refusal(reason);
            assert!(
                response.starts_with("HTTP/1.1 426 Upgrade Required\r\n"),
                "{reason:?}"
            );
            assert!(
                response.contains("\r\nSec-WebSocket-Version: 13\r\n"),
                "{reason:?}"
            );
            assert!(
                response.contains("\r\nUpgrade: websocket\r\n"),
                "{reason:?}"
            );
        }

        let large = rendered_refusal(HeadTooLarge);
        assert!(large.starts_with("HTTP/1.1 431 Request Header Fields Too Large\r\n"));
        let not_found = rendered_refusal(NotFound);
        assert!(not_found.starts_with("HTTP/1.1 404 Not Found\r\n"));
        let tls = rendered_refusal(TlsOnPlainPort);
        assert!(tls.starts_with("HTTP/1.1 400 Bad Request\r\n"));
        assert!(!tls.contains("Allow:") && !tls.contains("Retry-After:"));
    }

    // --- a valid request ----------------------------------------------------------------------

    #[test]
    fn parses_browser_request() {
        let request = parse_complete(BROWSER);
        assert_eq!(request.head_len, BROWSER.len());
        assert_eq!(request.path, "/chat");
        assert_eq!(request.query, Some("room=1&x=y"));
        assert_eq!(request.key, KEY.as_bytes());
        assert_eq!(request.origin, Some("http://example.com"));
        assert_eq!(request.protocols, Some("chat, superchat"));
        assert_eq!(
            request.extensions,
            Some("permessage-deflate; client_max_window_bits")
        );
    }

    #[test]
    fn optional_headers_absent() {
        let buf = render(&upgrade_headers());
        let request = parse_complete(&buf);
        assert_eq!(request.path, "/");
        assert_eq!(request.query, None);
        assert_eq!(request.origin, None);
        assert_eq!(request.protocols, None);
        assert_eq!(request.extensions, None);
    }

    #[test]
    fn empty_query_is_some_empty() {
        let buf = b"GET /a? HTTP/1.1\r\nHost: h\r\nUpgrade: websocket\r\nConnection: upgrade\r\n\
            Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n";
        let request = parse_complete(buf);
        assert_eq!(request.path, "/a");
        assert_eq!(request.query, Some(""));
    }

    #[test]
    fn repeated_optional_headers_keep_the_first() {
        let buf = adding(&[
            ("Origin", "https://first.example"),
            ("Sec-WebSocket-Protocol", "a, b"),
            ("Origin", "https://second.example"),
            ("Sec-WebSocket-Protocol", "c"),
            ("Sec-WebSocket-Extensions", "x"),
            ("Sec-WebSocket-Extensions", "y"),
        ]);
        let request = parse_complete(&buf);
        assert_eq!(request.origin, Some("https://first.example"));
        assert_eq!(request.protocols, Some("a, b"));
        assert_eq!(request.extensions, Some("x"));
    }

    #[test]
    fn every_protocol_line_is_read() {
        let buf = adding(&[
            ("Sec-WebSocket-Protocol", "a, b"),
            ("sec-websocket-protocol", "c"),
            ("Origin", "https://x.example"),
            ("Sec-WebSocket-Protocol", "  d , e  "),
        ]);
        let request = parse_complete(&buf);
        assert_eq!(request.protocol_line_count, 3);
        let lines: Vec<_> = request.protocol_lines().collect();
        assert_eq!(lines, ["a, b", "c", "d , e"]);
        let buf = adding(&[("Sec-WebSocket-Protocol", "only")]);
        let one = parse_complete(&buf);
        assert_eq!(one.protocol_lines().collect::<Vec<_>>(), ["only"]);
        let buf = render(&upgrade_headers());
        let none = parse_complete(&buf);
        assert_eq!(none.protocol_lines().count(), 0);
    }

    #[test]
    fn a_protocol_line_that_is_not_utf8_is_malformed() {
        let mut buf = adding(&[
            ("Sec-WebSocket-Protocol", "a"),
            ("Sec-WebSocket-Protocol", "b"),
            ("Sec-WebSocket-Protocol", "XX"),
        ]);
        let at = buf.windows(2).position(|w| w == b"XX").unwrap();
        buf[at] = 0xff;
        let err = parse_request(&buf, &HandshakeLimits::default()).unwrap_err();
        assert_eq!(err.reason, MalformedRequest);
    }

    #[test]
    fn explain_identity_only_when_asked() {
        assert!(!parse_complete(&render(&upgrade_headers())).explain_identity);
        let buf = adding(&[("ringws-explain", "other, Identity")]);
        assert!(parse_complete(&buf).explain_identity);
        let buf = adding(&[("RingWS-Explain", "identities")]);
        assert!(!parse_complete(&buf).explain_identity);
    }

    #[test]
    fn write_accept_adding_appends_the_lines_before_the_blank_line() {
        let mut out = Vec::new();
        write_accept_adding(&mut out, KEY.as_bytes(), None, None, b"X-A: 1\r\n");
        assert!(out.ends_with(b"s3pPLMBiTxaQ9kYGzzhZRbK+xOo=\r\nX-A: 1\r\n\r\n"));
    }

    #[test]
    fn policy_headers_are_borrowed() {
        let buf = adding(&[
            ("Authorization", "Bearer abc.def"),
            ("X-Forwarded-For", "203.0.113.9, 10.0.0.2"),
            ("Forwarded", "for=203.0.113.9;proto=https"),
            ("User-Agent", "Mozilla/5.0"),
        ]);
        let request = parse_complete(&buf);
        assert_eq!(request.authorization, Some("Bearer abc.def"));
        assert_eq!(request.x_forwarded_for, Some("203.0.113.9, 10.0.0.2"));
        assert_eq!(request.forwarded, Some("for=203.0.113.9;proto=https"));
        assert_eq!(request.user_agent, Some("Mozilla/5.0"));
        let plain = render(&upgrade_headers());
        let request = parse_complete(&plain);
        assert_eq!(request.authorization, None);
        assert_eq!(request.x_forwarded_for, None);
        assert_eq!(request.forwarded, None);
        assert_eq!(request.user_agent, None);
    }

    #[test]
    fn repeated_forwarding_headers_keep_the_last() {
        // A client's own line first, then the one its proxy added: the proxy's is the one to read.
        let buf = adding(&[
            ("X-Forwarded-For", "6.6.6.6"),
            ("Forwarded", "for=6.6.6.6"),
            ("Authorization", "Bearer first"),
            ("X-Forwarded-For", "203.0.113.9"),
            ("Forwarded", "for=203.0.113.9"),
            ("Authorization", "Bearer second"),
        ]);
        let request = parse_complete(&buf);
        assert_eq!(request.x_forwarded_for, Some("203.0.113.9"));
        assert_eq!(request.forwarded, Some("for=203.0.113.9"));
        assert_eq!(request.authorization, Some("Bearer first"));
    }

    #[test]
    fn non_utf8_policy_headers() {
        let mut buf = adding(&[("Authorization", "Bearer XX")]);
        let at = buf.windows(2).position(|w| w == b"XX").unwrap();
        buf[at] = 0xff;
        assert_eq!(refusal(&buf), MalformedRequest);
        let mut buf = adding(&[("User-Agent", "agent XX")]);
        let at = buf.windows(2).position(|w| w == b"XX").unwrap();
        buf[at] = 0xff;
        assert_eq!(
            parse_complete(&buf).user_agent,
            None,
            "diagnosis only: not refused"
        );
    }

    #[test]
    fn refusal_detail_and_dynamic_headers_are_written() {
        let refusal = Refusal::with_detail(OriginNotAllowed, "origin \"https://evil.example\"");
        let mut out = Vec::new();
        write_refusal(&mut out, &refusal);
        let text = String::from_utf8(out).unwrap();
        let (head, body) = text.split_once("\r\n\r\n").unwrap();
        assert!(head.starts_with("HTTP/1.1 403 Forbidden\r\n"), "{head}");
        assert_eq!(body, format!("{}\n", refusal.message()));
        assert!(
            body.ends_with(": origin \"https://evil.example\"\n"),
            "{body}"
        );
        assert!(head.contains(&format!("\r\nContent-Length: {}", body.len())));

        let mut out = Vec::new();
        write_refusal(&mut out, &Refusal::rate_limited(12));
        let text = String::from_utf8(out).unwrap();
        assert!(
            text.starts_with("HTTP/1.1 429 Too Many Requests\r\n"),
            "{text}"
        );
        assert!(text.contains("\r\nRetry-After: 12\r\n"), "{text}");

        let mut out = Vec::new();
        let refusal = Refusal::unauthorized(
            crate::protocol::refusal::BearerChallenge::InvalidToken {
                description: "the token has expired",
            },
            "the token expired at 2024-01-01T00:00:00Z",
        );
        write_refusal(&mut out, &refusal);
        let text = String::from_utf8(out).unwrap();
        assert!(text.starts_with("HTTP/1.1 401 Unauthorized\r\n"), "{text}");
        assert!(
            text.contains(
                "\r\nWWW-Authenticate: Bearer realm=\"ringws\", error=\"invalid_token\", \
                 error_description=\"the token has expired\"\r\n"
            ),
            "{text}"
        );
        let mut parsed = [httparse::EMPTY_HEADER; 16];
        let mut response = httparse::Response::new(&mut parsed);
        assert!(response.parse(text.as_bytes()).unwrap().is_complete());
    }

    #[test]
    fn key_is_trimmed() {
        let buf = replacing("Sec-WebSocket-Key", "  dGhlIHNhbXBsZSBub25jZQ==	");
        let request = parse_complete(&buf);
        assert_eq!(request.key, KEY.as_bytes());
    }

    #[test]
    fn header_names_and_tokens_are_case_insensitive() {
        let buf = request_with(
            "uPgRaDe: WebSocket\r\n\
             CONNECTION: UPGRADE\r\n\
             sec-websocket-key: dGhlIHNhbXBsZSBub25jZQ==\r\n\
             SEC-WEBSOCKET-VERSION: 13\r\n\
             oRiGiN: http://o\r\n",
        );
        let request = parse_complete(&buf);
        assert_eq!(request.origin, Some("http://o"));
        assert_eq!(request.key, KEY.as_bytes());
    }

    #[test]
    fn connection_and_upgrade_are_token_lists() {
        for (connection, upgrade) in [
            ("keep-alive, Upgrade", "websocket"),
            ("Upgrade,keep-alive", "websocket"),
            ("keep-alive ,\tupgrade\t, close", "WebSocket"),
            (",,upgrade,", "h2c, websocket"),
            ("Upgrade", "foo,websocket , bar"),
        ] {
            let buf = replacing("Connection", connection);
            let buf = String::from_utf8(buf)
                .unwrap()
                .replace("Upgrade: websocket", &format!("Upgrade: {upgrade}"));
            assert!(
                matches!(parse(buf.as_bytes()), Ok(Some(_))),
                "Connection: {connection:?}, Upgrade: {upgrade:?} refused"
            );
        }
        // Substrings are not tokens.
        assert_eq!(
            refusal(&replacing("Connection", "upgraded")),
            MissingConnectionUpgrade
        );
        assert_eq!(
            refusal(&replacing("Connection", "keep-alive upgrade")),
            MissingConnectionUpgrade
        );
        assert_eq!(
            refusal(&replacing("Upgrade", "websockets")),
            UpgradeNotWebsocket
        );
        assert_eq!(
            refusal(&replacing("Upgrade", "websocket/13")),
            UpgradeNotWebsocket
        );
    }

    #[test]
    fn multiple_connection_headers_are_combined() {
        let buf = adding(&[("Connection", "keep-alive")]);
        assert!(matches!(parse(&buf), Ok(Some(_))));
        let buf = String::from_utf8(replacing("Connection", "keep-alive")).unwrap();
        let buf = buf.replace(
            "Sec-WebSocket-Version: 13\r\n",
            "Sec-WebSocket-Version: 13\r\nConnection: Upgrade\r\n",
        );
        assert!(matches!(parse(buf.as_bytes()), Ok(Some(_))));
        let buf = adding(&[("Upgrade", "h2c")]);
        assert!(
            matches!(parse(&buf), Ok(Some(_))),
            "multiple Upgrade headers are combined too"
        );
    }

    #[test]
    fn content_length_zero_is_allowed() {
        assert!(matches!(
            parse(&adding(&[("Content-Length", "0")])),
            Ok(Some(_))
        ));
        assert!(matches!(
            parse(&adding(&[("content-length", " 00 ")])),
            Ok(Some(_))
        ));
    }

    #[test]
    fn absolute_form_target_keeps_path_and_query() {
        for (target, path, query) in [
            ("http://example.com/chat?a=b", "/chat", Some("a=b")),
            ("ws://example.com:8080/chat", "/chat", None),
            ("HTTPS://example.com", "/", None),
            ("wss://example.com?q", "/", Some("q")),
        ] {
            let buf = format!(
                "GET {target} HTTP/1.1\r\nHost: example.com\r\nUpgrade: websocket\r\n\
                 Connection: Upgrade\r\nSec-WebSocket-Key: {KEY}\r\nSec-WebSocket-Version: 13\r\n\r\n"
            );
            let request = parse_complete(buf.as_bytes());
            assert_eq!((request.path, request.query), (path, query), "{target}");
        }
    }

    #[test]
    fn leading_empty_line_is_tolerated() {
        // RFC 9112 §2.2: a server SHOULD ignore at least one empty line before the request line.
        let mut buf = b"\r\n".to_vec();
        buf.extend_from_slice(BROWSER);
        assert_eq!(parse_complete(&buf).head_len, buf.len());
    }

    // --- framing: pipelining, incremental feeding, limits -------------------------------------

    #[test]
    fn pipelined_frames_after_the_head_are_left_alone() {
        let mut buf = BROWSER.to_vec();
        let frame = [
            0x81,
            0x85,
            1,
            2,
            3,
            4,
            b'h' ^ 1,
            b'e' ^ 2,
            b'l' ^ 3,
            b'l' ^ 4,
            b'o' ^ 1,
        ];
        buf.extend_from_slice(&frame);
        let request = parse_complete(&buf);
        assert_eq!(request.head_len, BROWSER.len());
        assert_eq!(&buf[request.head_len..], &frame);
    }

    #[test]
    fn pipelined_bytes_beyond_the_head_limit_do_not_count() {
        let limits = HandshakeLimits {
            max_head_bytes: BROWSER.len(),
            ..HandshakeLimits::default()
        };
        let mut buf = BROWSER.to_vec();
        buf.extend_from_slice(&[0x82; 4096]);
        let request = parse_request(&buf, &limits).unwrap().unwrap();
        assert_eq!(request.head_len, BROWSER.len());
    }

    #[test]
    fn every_proper_prefix_is_incomplete() {
        for end in 0..BROWSER.len() {
            match parse(&BROWSER[..end]) {
                Ok(None) => {}
                other => panic!("prefix of {end} bytes: expected Ok(None), got {other:?}"),
            }
        }
        assert_eq!(parse_complete(BROWSER).head_len, BROWSER.len());
    }

    #[test]
    fn head_limit_boundary() {
        let len = BROWSER.len();
        let at = HandshakeLimits {
            max_head_bytes: len,
            ..HandshakeLimits::default()
        };
        let below = HandshakeLimits {
            max_head_bytes: len - 1,
            ..HandshakeLimits::default()
        };

        // Complete head exactly at the limit: accepted; one byte over: too large.
        assert_eq!(parse_request(BROWSER, &at).unwrap().unwrap().head_len, len);
        assert_eq!(
            parse_request(BROWSER, &below).unwrap_err().reason,
            HeadTooLarge
        );

        // Incomplete head: keep reading while the buffer is within the limit, refuse one past it.
        let partial = &BROWSER[..len - 2];
        let limit = HandshakeLimits {
            max_head_bytes: partial.len(),
            ..HandshakeLimits::default()
        };
        assert!(parse_request(partial, &limit).unwrap().is_none());
        let limit = HandshakeLimits {
            max_head_bytes: partial.len() - 1,
            ..HandshakeLimits::default()
        };
        assert_eq!(
            parse_request(partial, &limit).unwrap_err().reason,
            HeadTooLarge
        );
    }

    #[test]
    fn endless_head_is_too_large_at_the_default_limit() {
        let limits = HandshakeLimits::default();
        let mut buf = b"GET / HTTP/1.1\r\n".to_vec();
        while buf.len() < limits.max_head_bytes {
            // Long lines, so the head grows past its size before it has too many headers.
            buf.extend_from_slice(format!("X-Filler: {}\r\n", "a".repeat(250)).as_bytes());
        }
        buf.truncate(limits.max_head_bytes);
        assert!(parse_request(&buf, &limits).unwrap().is_none());
        buf.push(b'a');
        assert_eq!(
            parse_request(&buf, &limits).unwrap_err().reason,
            HeadTooLarge
        );
    }

    #[test]
    fn too_many_headers_is_head_too_large() {
        let limits = HandshakeLimits {
            max_headers: 8,
            ..HandshakeLimits::default()
        };
        let mut headers = upgrade_headers();
        headers.extend_from_slice(&[("X-B", "c")]);
        headers.extend(std::iter::repeat_n(("X-A", "b"), 3));
        // 1 (Host from request_with) + 4 + 1 + 3 = 9 headers > 8.
        let buf = render(&headers);
        assert_eq!(
            parse_request(&buf, &limits).unwrap_err().reason,
            HeadTooLarge
        );
        headers.pop();
        let buf = render(&headers);
        assert!(
            parse_request(&buf, &limits).unwrap().is_some(),
            "8 headers fit a limit of 8"
        );
    }

    #[test]
    fn max_headers_is_clamped_to_the_ceiling() {
        let limits = HandshakeLimits {
            max_headers: usize::MAX,
            max_head_bytes: 64 * 1024,
        };
        let filler: Vec<_> = std::iter::repeat_n(("X-A", "b"), MAX_HEADERS_CEILING).collect();
        assert_eq!(
            parse_request(&adding(&filler), &limits).unwrap_err().reason,
            HeadTooLarge
        );
    }

    // --- TLS ----------------------------------------------------------------------------------

    /// The first bytes of a TLS 1.3 ClientHello as sent by curl: record header (handshake,
    /// legacy version 3.1, length), handshake header (ClientHello, length), client version 3.3,
    /// then the random.
    const CLIENT_HELLO: &[u8] = &[
        0x16, 0x03, 0x01, 0x02, 0x00, 0x01, 0x00, 0x01, 0xfc, 0x03, 0x03, 0x5b, 0x9e, 0x1c, 0x47,
        0xa8, 0x31, 0x0f, 0xd2, 0x6e, 0x44, 0x90, 0x11, 0x7c, 0xe3, 0x2a, 0x58, 0xbd, 0x09, 0x66,
        0x73, 0xf1, 0x2c, 0x8e, 0x5d, 0xa0, 0x17, 0xcb, 0x44, 0x3e, 0x92, 0x20,
    ];

    #[test]
    fn tls_client_hello_is_recognised() {
        assert_eq!(refusal(CLIENT_HELLO), TlsOnPlainPort);
        for end in 1..=CLIENT_HELLO.len() {
            assert_eq!(
                refusal(&CLIENT_HELLO[..end]),
                TlsOnPlainPort,
                "after {end} bytes"
            );
        }
        // Even with a head limit smaller than the hello: TLS is named before size.
        let tiny = HandshakeLimits {
            max_head_bytes: 2,
            max_headers: 1,
        };
        assert_eq!(
            parse_request(CLIENT_HELLO, &tiny).unwrap_err().reason,
            TlsOnPlainPort
        );
    }

    #[test]
    fn tls_lookalike_with_other_second_byte_is_malformed() {
        assert_eq!(refusal(&[0x16, b'G']), MalformedRequest);
        assert_eq!(refusal(&[0x03, 0x16]), MalformedRequest);
    }

    // --- refusals -----------------------------------------------------------------------------

    #[test]
    fn malformed_requests() {
        for buf in [
            &b"\x00\x01\x02\x03"[..],
            b"GET / HTTP/1.1\r\nBad Header\r\n\r\n",
            b"GET / HTTP/2.0\r\n\r\n",
            b"GET  / HTTP/1.1\r\n\r\n",
            b"GET / HTTP/1.1\r\nX: a\x00b\r\n\r\n",
            b"GET /\x7f HTTP/1.1\r\n\r\n",
        ] {
            assert_eq!(
                refusal(buf),
                MalformedRequest,
                "{:?}",
                String::from_utf8_lossy(buf)
            );
        }
    }

    #[test]
    fn targets_that_are_not_origin_or_absolute_form_are_malformed() {
        for target in [
            "*",
            "chat",
            "example.com:443",
            "ftp://example.com/chat",
            "http:///chat",
            "http:/x",
        ] {
            let buf = format!(
                "GET {target} HTTP/1.1\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
                 Sec-WebSocket-Key: {KEY}\r\nSec-WebSocket-Version: 13\r\n\r\n"
            );
            assert_eq!(refusal(buf.as_bytes()), MalformedRequest, "{target}");
        }
    }

    #[test]
    fn non_utf8_origin_is_malformed() {
        let mut buf = b"GET / HTTP/1.1\r\nOrigin: caf\xe9\r\n".to_vec();
        buf.extend_from_slice(&render(&upgrade_headers())["GET / HTTP/1.1\r\n".len()..]);
        assert_eq!(refusal(&buf), MalformedRequest);
    }

    #[test]
    fn http_1_0_is_refused() {
        let buf = String::from_utf8(render(&upgrade_headers()))
            .unwrap()
            .replace("HTTP/1.1", "HTTP/1.0");
        assert_eq!(refusal(buf.as_bytes()), HttpVersion);
    }

    #[test]
    fn methods_other_than_get_are_refused() {
        for method in ["POST", "HEAD", "PUT", "OPTIONS", "get"] {
            let buf = String::from_utf8(render(&upgrade_headers()))
                .unwrap()
                .replacen("GET", method, 1);
            assert_eq!(refusal(buf.as_bytes()), MethodNotAllowed, "{method}");
        }
        // Method is named before the unusual target of OPTIONS * or CONNECT.
        assert_eq!(refusal(b"OPTIONS * HTTP/1.1\r\n\r\n"), MethodNotAllowed);
        assert_eq!(
            refusal(b"CONNECT example.com:443 HTTP/1.1\r\n\r\n"),
            MethodNotAllowed
        );
    }

    #[test]
    fn plain_get_is_not_an_upgrade() {
        assert_eq!(
            refusal(b"GET / HTTP/1.1\r\nHost: example.com\r\nAccept: */*\r\n\r\n"),
            NotAnUpgrade
        );
        assert_eq!(
            refusal(&request_with("Connection: keep-alive\r\n")),
            NotAnUpgrade
        );
    }

    #[test]
    fn missing_upgrade_header() {
        assert_eq!(refusal(&without("Upgrade")), MissingUpgrade);
    }

    #[test]
    fn upgrade_to_something_else() {
        assert_eq!(refusal(&replacing("Upgrade", "h2c")), UpgradeNotWebsocket);
        assert_eq!(refusal(&replacing("Upgrade", "")), UpgradeNotWebsocket);
        // An Upgrade header alone makes it an (unsupported) upgrade attempt, not a plain request.
        assert_eq!(
            refusal(&request_with("Upgrade: h2c\r\n")),
            UpgradeNotWebsocket
        );
    }

    #[test]
    fn missing_connection_upgrade() {
        assert_eq!(refusal(&without("Connection")), MissingConnectionUpgrade);
        assert_eq!(
            refusal(&replacing("Connection", "keep-alive")),
            MissingConnectionUpgrade
        );
        assert_eq!(
            refusal(&replacing("Connection", "close")),
            MissingConnectionUpgrade
        );
    }

    #[test]
    fn missing_key() {
        assert_eq!(refusal(&without("Sec-WebSocket-Key")), MissingKey);
    }

    #[test]
    fn bad_keys() {
        for key in [
            "",
            "dGhlIHNhbXBsZSBub25jZQ",       // no padding
            "dGhlIHNhbXBsZSBub25jZQ=",      // half the padding
            "dGhlIHNhbXBsZSBub25jZQ===",    // too much padding
            "dGhlIHNhbXBsZSBub25jZR==",     // non-zero trailing bits: not canonical
            "dGhlIHNhbXBsZSBub25jZQ-_",     // URL-safe alphabet
            "dGhlIHNhbXBsZSBub25jZQAA",     // 24 characters, but 18 bytes
            "dGhlIHNhbXBsZSBub25j",         // 15 bytes
            "dGhlIHNhbXBsZSBub25jZQ==dGhl", // trailing garbage
            "dGhlIHNhbXBs ZSBub25jZQ==",    // inner space
            "not base64 at all!!!!!!!",
        ] {
            assert_eq!(
                refusal(&replacing("Sec-WebSocket-Key", key)),
                BadKey,
                "{key:?}"
            );
        }
    }

    #[test]
    fn repeated_key_is_bad_even_when_both_are_valid() {
        assert_eq!(refusal(&adding(&[("Sec-WebSocket-Key", KEY)])), BadKey);
        assert_eq!(
            refusal(&adding(&[(
                "sec-websocket-key",
                "AAAAAAAAAAAAAAAAAAAAAA=="
            )])),
            BadKey
        );
    }

    #[test]
    fn unsupported_versions() {
        assert_eq!(
            refusal(&without("Sec-WebSocket-Version")),
            UnsupportedVersion
        );
        for version in ["8", "12", "14", "", "13, 8", "013", "13.0"] {
            assert_eq!(
                refusal(&replacing("Sec-WebSocket-Version", version)),
                UnsupportedVersion,
                "{version:?}"
            );
        }
        assert_eq!(
            refusal(&adding(&[("Sec-WebSocket-Version", "8")])),
            UnsupportedVersion
        );
        assert!(matches!(
            parse(&replacing("Sec-WebSocket-Version", " 13 ")),
            Ok(Some(_))
        ));
    }

    #[test]
    fn version_13_twice_is_a_bad_request() {
        for second in ["13", " 13", "13 "] {
            let buf = adding(&[("sec-websocket-version", second)]);
            let err = parse(&buf).unwrap_err();
            assert_eq!(err.reason, RepeatedVersion, "{second:?}");
            assert_eq!(err.reason.status(), 400);
            assert!(err.message().ends_with(": 2 Sec-WebSocket-Version headers"));
        }
        let thrice = adding(&[
            ("Sec-WebSocket-Version", "13"),
            ("Sec-WebSocket-Version", "13"),
        ]);
        assert!(parse(&thrice)
            .unwrap_err()
            .message()
            .ends_with(": 3 Sec-WebSocket-Version headers"));
        // A version other than 13 is named first: the client learns which version to speak.
        assert_eq!(
            refusal(&adding(&[("Sec-WebSocket-Version", "8")])),
            UnsupportedVersion
        );
        // The refusal is a plain 400, without the 426's version advertisement.
        let response = rendered_refusal(RepeatedVersion);
        assert!(
            response.starts_with("HTTP/1.1 400 Bad Request\r\n"),
            "{response}"
        );
        assert!(!response.contains("Upgrade: websocket"), "{response}");
    }

    /// The usual upgrade headers without `Host`, then `hosts` as `Host` lines.
    fn with_hosts(hosts: &[&str]) -> Vec<u8> {
        let mut buf = b"GET /chat HTTP/1.1\r\n".to_vec();
        for host in hosts {
            buf.extend_from_slice(format!("Host: {host}\r\n").as_bytes());
        }
        buf.extend_from_slice(&render(&upgrade_headers())["GET / HTTP/1.1\r\nHost: h\r\n".len()..]);
        buf
    }

    #[test]
    fn host_is_required_exactly_once() {
        let err = parse(&with_hosts(&[])).unwrap_err();
        assert_eq!(err.reason, BadHost);
        assert_eq!(err.reason.status(), 400);
        assert!(
            err.message().ends_with(": no Host header"),
            "{}",
            err.message()
        );

        let err = parse(&with_hosts(&["a.example", "a.example"])).unwrap_err();
        assert_eq!(err.reason, BadHost);
        assert!(
            err.message().ends_with(": 2 Host headers"),
            "{}",
            err.message()
        );
        let err = parse(&with_hosts(&["a", "b", "c"])).unwrap_err();
        assert!(
            err.message().ends_with(": 3 Host headers"),
            "{}",
            err.message()
        );

        // Absolute-form does not stand in for Host (RFC 9112 §3.2: the client sends both).
        let buf = format!(
            "GET http://a.example/chat HTTP/1.1\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
             Sec-WebSocket-Key: {KEY}\r\nSec-WebSocket-Version: 13\r\n\r\n"
        );
        assert_eq!(refusal(buf.as_bytes()), BadHost);
    }

    #[test]
    fn host_values() {
        for good in [
            "example.com",
            "example.com:9001",
            "127.0.0.1:80",
            "[::1]:9001",
            "[2001:db8::1]",
            "xn--bcher-kva.example",
            "under_score.example",
            "", // RFC 9112 §3.2: empty when the target has no authority
        ] {
            let buf = with_hosts(&[good]);
            let request = parse(&buf);
            assert!(matches!(request, Ok(Some(_))), "{good:?}: {request:?}");
        }
        for bad in [
            "a b",
            "a/b",
            "user@host",
            "host?x",
            "\"quoted\"",
            "caf\u{e9}.example",
        ] {
            let err = parse(&with_hosts(&[bad])).unwrap_err();
            assert_eq!(err.reason, BadHost, "{bad:?}");
            assert!(
                err.message().contains("is not host[:port]"),
                "{}",
                err.message()
            );
        }
    }

    #[test]
    fn host_is_checked_after_the_websocket_headers() {
        // A proxy's fault (the upgrade headers) is named before the missing Host.
        assert_eq!(
            refusal(b"GET / HTTP/1.1\r\nAccept: */*\r\n\r\n"),
            NotAnUpgrade
        );
        let no_host_no_key = b"GET / HTTP/1.1\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
            Sec-WebSocket-Version: 13\r\n\r\n";
        assert_eq!(refusal(no_host_no_key), MissingKey);
    }

    #[test]
    fn request_bodies_are_refused() {
        for extra in [
            ("Content-Length", "5"),
            ("Content-Length", "10"),
            ("Content-Length", ""),
            ("Content-Length", "-0"),
            ("Transfer-Encoding", "chunked"),
            ("transfer-encoding", "identity"),
        ] {
            assert_eq!(refusal(&adding(&[extra])), RequestBody, "{extra:?}");
        }
        assert_eq!(
            refusal(&adding(&[("Content-Length", "0"), ("Content-Length", "1")])),
            RequestBody
        );
    }

    #[test]
    fn precedence_names_the_most_fundamental_fault() {
        // Each step removes the fault reported by the previous one.
        let steps: [(&[u8], RefusalReason); 9] = [
            (b"POST /x HTTP/1.0\r\nContent-Length: 3\r\n\r\n", HttpVersion),
            (b"POST /x HTTP/1.1\r\nContent-Length: 3\r\n\r\n", MethodNotAllowed),
            (b"GET x HTTP/1.1\r\nContent-Length: 3\r\n\r\n", MalformedRequest),
            (b"GET /x HTTP/1.1\r\nContent-Length: 3\r\n\r\n", NotAnUpgrade),
            (b"GET /x HTTP/1.1\r\nContent-Length: 3\r\nConnection: upgrade\r\n\r\n", MissingUpgrade),
            (b"GET /x HTTP/1.1\r\nContent-Length: 3\r\nUpgrade: h2c\r\n\r\n", UpgradeNotWebsocket),
            (b"GET /x HTTP/1.1\r\nContent-Length: 3\r\nUpgrade: websocket\r\n\r\n", MissingConnectionUpgrade),
            (
                b"GET /x HTTP/1.1\r\nContent-Length: 3\r\nUpgrade: websocket\r\nConnection: upgrade\r\n\r\n",
                UnsupportedVersion,
            ),
            (
                b"GET /x HTTP/1.1\r\nContent-Length: 3\r\nUpgrade: websocket\r\nConnection: upgrade\r\n\
                  Sec-WebSocket-Version: 13\r\n\r\n",
                MissingKey,
            ),
        ];
        for (buf, reason) in steps {
            assert_eq!(refusal(buf), reason, "{:?}", String::from_utf8_lossy(buf));
        }
        let buf = b"GET /x HTTP/1.1\r\nContent-Length: 3\r\nUpgrade: websocket\r\nConnection: upgrade\r\n\
            Sec-WebSocket-Version: 13\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\r\n";
        assert_eq!(refusal(buf), RequestBody);
        // TLS beats everything, size beats the request line.
        assert_eq!(
            refusal(b"\x16\x03\x01POST / HTTP/1.0\r\n\r\n"),
            TlsOnPlainPort
        );
        let tiny = HandshakeLimits {
            max_head_bytes: 8,
            max_headers: 64,
        };
        assert_eq!(
            parse_request(b"POST / HTTP/1.0\r\n\r\n", &tiny)
                .unwrap_err()
                .reason,
            HeadTooLarge
        );
    }

    // --- robustness ---------------------------------------------------------------------------

    /// Every prefix, every truncation and every single-byte corruption of a set of requests, under
    /// several limits: never panics, and every answer is consistent with the input.
    #[test]
    fn never_panics_on_prefixes_and_mutations() {
        let mut pipelined = BROWSER.to_vec();
        pipelined.extend_from_slice(&[0x81, 0x80, 0, 0, 0, 0]);
        let inputs: [&[u8]; 5] = [
            BROWSER,
            &pipelined,
            CLIENT_HELLO,
            b"GET / HTTP/1.1\r\n\r\n",
            b"\r\n\r\n\r\n",
        ];
        let limits = [
            HandshakeLimits::default(),
            HandshakeLimits {
                max_head_bytes: 0,
                max_headers: 0,
            },
            HandshakeLimits {
                max_head_bytes: 64,
                max_headers: 2,
            },
            HandshakeLimits {
                max_head_bytes: usize::MAX,
                max_headers: usize::MAX,
            },
        ];
        let check = |buf: &[u8], limits: &HandshakeLimits| match parse_request(buf, limits) {
            Ok(Some(request)) => {
                assert!(request.head_len <= buf.len() && request.head_len <= limits.max_head_bytes);
                assert!(request.path.starts_with('/'));
                assert_eq!(request.key.len(), KEY_LEN_BASE64);
            }
            Ok(None) => assert!(buf.len() <= limits.max_head_bytes),
            Err(refusal) => {
                let mut out = Vec::new();
                write_refusal(&mut out, &refusal);
                assert!(out.ends_with(b"\n"));
            }
        };
        for input in inputs {
            for limits in &limits {
                for end in 0..=input.len() {
                    check(&input[..end], limits);
                    check(&input[end..], limits);
                }
                let mut mutated = input.to_vec();
                for i in 0..mutated.len() {
                    for byte in [0x00, b'\r', b'\n', b':', b' ', b',', b'?', 0x16, 0xff] {
                        let original = mutated[i];
                        mutated[i] = byte;
                        check(&mutated, limits);
                        mutated[i] = original;
                    }
                }
            }
        }
    }
}
