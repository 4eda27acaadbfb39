//! Explaining an HTTP answer that is not a 101: a ringws refusal (its own reasons, each with its
//! fix), a proxy's or another server's answer, and what the body says.

use super::{diagnosis, Context, Diagnosis, FIND_THE_HOP, PROXY_FIX};
use crate::doctor::response::Response;
use crate::protocol::refusal::served_paths;
use crate::protocol::RefusalReason;

/// The ringws refusal whose one-line message starts the body (ringws may append ": " and a
/// detail, such as the origin refused), with that line.
pub fn ringws_reason(body: &[u8]) -> Option<(RefusalReason, &str)> {
    let line = first_line(body)?;
    let matches = |message: &str| {
        line == message
            || line
                .strip_prefix(message)
                .is_some_and(|rest| rest.starts_with(": "))
    };
    RefusalReason::ALL
        .iter()
        .copied()
        .filter(|reason| matches(reason.message()))
        .max_by_key(|reason| reason.message().len())
        .map(|reason| (reason, line))
}

fn first_line(body: &[u8]) -> Option<&str> {
    let text = std::str::from_utf8(body).ok()?;
    text.lines().map(str::trim).find(|l| !l.is_empty())
}

fn is_html(response: &Response, body: &[u8]) -> bool {
    let content_type = response.header("Content-Type").unwrap_or("");
    if content_type.to_ascii_lowercase().contains("html") {
        return true;
    }
    let start = String::from_utf8_lossy(&body[..body.len().min(64)])
        .trim_start()
        .to_ascii_lowercase();
    start.starts_with("<!doctype html") || start.starts_with("<html")
}

/// What the body says, as a short quote: an HTML page's title, or its first line of text.
fn quote(response: &Response, body: &[u8]) -> Option<String> {
    const MAX_QUOTE_CHARS: usize = 200;
    let text = String::from_utf8_lossy(body);
    let said = if is_html(response, body) {
        let lower = text.to_ascii_lowercase();
        let start = lower.find("<title>")? + "<title>".len();
        let end = start + lower[start..].find("</title>")?;
        text[start..end].trim().to_owned()
    } else {
        let line = first_line(body)?;
        if line.chars().any(|c| c.is_control()) {
            return None;
        }
        line.to_owned()
    };
    if said.is_empty() {
        return None;
    }
    Some(if said.chars().count() > MAX_QUOTE_CHARS {
        format!(
            "{}…",
            said.chars().take(MAX_QUOTE_CHARS).collect::<String>()
        )
    } else {
        said
    })
}

/// nginx's answer to plain HTTP on a TLS port.
fn says_https_port(response: &Response, body: &[u8]) -> bool {
    response.status == 400
        && String::from_utf8_lossy(body).contains("plain HTTP request was sent to HTTPS port")
}

/// Who answered, for the cause line of an answer that is not ringws's.
fn who(response: &Response) -> String {
    match response.header("Server") {
        Some(server) => format!("the server (Server: {server})"),
        None => "the server".to_owned(),
    }
}

fn status_line(response: &Response) -> String {
    format!("HTTP {} {}", response.status, response.reason)
}

pub(super) fn answer(ctx: &Context, response: &Response, body: &[u8]) -> Diagnosis {
    let authority = &ctx.authority;
    if says_https_port(response, body) {
        return diagnosis(
            format!(
                "{} answered \"The plain HTTP request was sent to HTTPS port\": the port \
                 expects TLS and the URL is ws://",
                who(response)
            ),
            format!(
                "use wss://{authority}{}; to test ringws itself, point doctor at the plain \
                 ws:// address the terminator forwards to",
                ctx.target
            ),
        );
    }
    if let Some((reason, line)) = ringws_reason(body) {
        return ringws_refusal(ctx, response, reason, line);
    }
    // Not ringws's words: a proxy, or another server on this port, answered.
    let by = who(response);
    let said = quote(response, body)
        .map(|q| format!(": \"{q}\""))
        .unwrap_or_default();
    let status = status_line(response);
    match response.status {
        200..=399 => {
            let location = response.header("Location");
            let html = if is_html(response, body) {
                " (an HTML page)"
            } else {
                ""
            };
            let redirect = location
                .map(|l| format!(", redirecting to {l}"))
                .unwrap_or_default();
            let to_https = location.is_some_and(|l| l.to_ascii_lowercase().starts_with("https://"));
            let title = quote(response, body)
                .map(|q| format!(" titled \"{q}\""))
                .unwrap_or_default();
            let cause = format!(
                "{by} answered the upgrade with {status}{html}{title}{redirect}: the request \
                 reached an ordinary web server, or a proxy not configured for WebSocket \
                 upgrades, instead of a WebSocket endpoint"
            );
            if to_https {
                diagnosis(
                    cause,
                    format!(
                        "the site redirects to HTTPS: connect with wss://{}; browsers do not \
                         follow redirects for WebSockets",
                        location
                            .unwrap_or("")
                            .split_once("://")
                            .map_or("", |(_, rest)| rest)
                    ),
                )
            } else {
                diagnosis(
                    cause,
                    format!(
                        "check that the URL points at the WebSocket endpoint (host, port and \
                         path); if a proxy is in front, {PROXY_FIX}"
                    ),
                )
            }
        }
        400 | 426 => {
            let version_hint = response
                .header("Sec-WebSocket-Version")
                .filter(|v| {
                    !crate::doctor::request::comma_list(v)
                        .iter()
                        .any(|v| v == "13")
                })
                .map(|v| format!("; it speaks WebSocket version {v}, not 13"))
                .unwrap_or_default();
            diagnosis(
                format!(
                    "{by} refused the upgrade with {status}{said}{version_hint}. That is not \
                     ringws's answer (ringws says why in one line), so a proxy in front, or \
                     another server on this port, refused it"
                ),
                format!(
                    "if a proxy is in front, {PROXY_FIX} If not, check what listens on this port."
                ),
            )
        }
        401 => unauthorized(ctx, response, &by, &said),
        403 => forbidden(ctx, &by, &said, false),
        404 => diagnosis(
            format!(
                "{by} has no WebSocket endpoint at {}{said}",
                path_of(&ctx.target)
            ),
            "check the path in the URL against the app's path (e.g. /chat); behind a proxy, \
             check its location rules (nginx rewrites the path when proxy_pass ends with a URI \
             such as `http://ringws/`)",
        ),
        405 => diagnosis(
            format!(
                "{by} answered {status}{said}: the request reached it with a method other than GET"
            ),
            format!("doctor sends GET, so a proxy rewrote it; {FIND_THE_HOP}"),
        ),
        413 | 431 => diagnosis(
            format!("{by} refused the request as too large ({status}){said}"),
            "a proxy adds large headers (cookies, forwarding chains) or --header values are \
             large: trim them, or raise the server's limit (ringws: max_handshake_size)",
        ),
        429 => rate_limited(response, &by, &said),
        503 => diagnosis(
            format!(
                "{by} is at capacity or unavailable ({status}){}{said}",
                retry_after(response)
            ),
            "retry after the delay; if it persists and ringws answered, raise max_connections or \
             add capacity (`ringws check --connections N` tells what this machine can hold); if \
             a proxy answered, its upstream (ringws) is down or marked unhealthy",
        ),
        502 | 504 => diagnosis(
            format!(
                "{by} answered {status}{said}: a proxy in front could not reach its upstream \
                 (ringws is down, or the proxy points at the wrong address)"
            ),
            "start ringws; check the upstream address in the proxy's configuration (the \
             `# ringws-upstream` line of deploy/nginx/ringws.conf) against ringws's listen \
             address; run doctor against that address directly",
        ),
        _ => diagnosis(
            format!(
                "{by} answered {status}{said} instead of 101 Switching Protocols: this URL does \
                 not lead to a WebSocket endpoint"
            ),
            "check what serves this host, port and path; run doctor -v to see the whole answer",
        ),
    }
}

/// ringws requires a subprotocol and the request offered none of its own.
fn subprotocol_mismatch(ctx: &Context, by: &str, status: &str, said: &str) -> Diagnosis {
    let offered = if ctx.offered_protocols.is_empty() {
        "doctor offered none".to_owned()
    } else {
        format!("doctor offered {}", ctx.offered_protocols.join(", "))
    };
    diagnosis(
        format!("{by} refused the upgrade with {status}{said}; {offered}"),
        "offer one of the server's subprotocols (doctor: --protocol NAME; a browser: the \
         second argument of `new WebSocket(url, protocols)`), or let the server accept \
         clients without one (require_subprotocol = false)",
    )
}

/// A 429: too many handshakes from one client address.
fn rate_limited(response: &Response, by: &str, said: &str) -> Diagnosis {
    diagnosis(
        format!(
            "{by} is rate-limiting handshakes from this client address{}{said}",
            retry_after(response)
        ),
        "wait and retry with backoff; if many legitimate clients share one address (NAT, a \
         proxy), raise handshake_rate_per_ip / handshake_burst_per_ip, and behind a proxy set \
         trusted_proxies so ringws limits the real client address",
    )
}

fn path_of(target: &str) -> &str {
    target.split('?').next().unwrap_or(target)
}

/// A 404: the paths the app serves, when its answer lists them ([`served_paths`]).
fn not_found(ctx: &Context, quoted: &str, line: &str) -> Diagnosis {
    const PROXY_PATHS: &str = "behind a proxy, check its location rules (nginx rewrites the \
                               path when proxy_pass ends with a URI such as `http://ringws/`)";
    let path = path_of(&ctx.target);
    let served = line
        .strip_prefix(RefusalReason::NotFound.message())
        .and_then(|rest| rest.strip_prefix(": "))
        .and_then(served_paths)
        .filter(|paths| !paths.is_empty());
    match served {
        Some(paths) => diagnosis(
            format!(
                "{quoted}. The app serves no WebSocket at {path}; it serves {}",
                paths.join(" and ")
            ),
            format!(
                "use one of those paths in the URL (e.g. {}://{}{}{}); {PROXY_PATHS}",
                if ctx.tls_url { "wss" } else { "ws" },
                ctx.authority,
                paths[0],
                &ctx.target[path.len()..]
            ),
        ),
        None => diagnosis(
            format!("{quoted}. The app serves no WebSocket at {path}"),
            format!("check the path in the URL against the paths the app serves; {PROXY_PATHS}"),
        ),
    }
}

fn retry_after(response: &Response) -> String {
    response
        .header("Retry-After")
        .map(|s| format!(" (Retry-After: {s})"))
        .unwrap_or_default()
}

fn unauthorized(ctx: &Context, response: &Response, by: &str, said: &str) -> Diagnosis {
    let challenge = response
        .header("WWW-Authenticate")
        .map(|w| format!("; WWW-Authenticate: {w}"))
        .unwrap_or_default();
    if !ctx.token_sent {
        return diagnosis(
            format!("{by} requires authentication and doctor sent no token{said}{challenge}"),
            "pass a token with --token T (sent as `Authorization: Bearer T`), or add \
             --token-in-query for the ?token= form browsers must use (they cannot set headers)",
        );
    }
    diagnosis(
        format!("{by} rejected the token doctor sent{said}{challenge}"),
        "check the token: not expired (exp, nbf; clocks in sync), signed with the server's \
         secret, for the right audience and issuer, or listed in the server's token file. \
         Behind a proxy, check it passes the Authorization header or the ?token= query",
    )
}

fn forbidden(ctx: &Context, by: &str, said: &str, from_ringws: bool) -> Diagnosis {
    let sent = match &ctx.origin {
        Some(origin) => format!("doctor sent Origin: {origin}"),
        None => "doctor sent no Origin header".to_owned(),
    };
    let fix = match &ctx.origin {
        Some(origin) => format!(
            "add {origin} to the server's allowed_origins (exact, or a *.example.com wildcard) \
             and restart it; the origin is the scheme, host and port of the page that opens the \
             WebSocket"
        ),
        None => "repeat with --origin set to your page's origin (e.g. --origin \
                 https://app.example.com); if non-browser clients send no Origin, allow them with \
                 allow_missing_origin"
            .to_owned(),
    };
    let others = if from_ringws {
        ""
    } else {
        " (or a proxy or firewall in front forbids the request)"
    };
    diagnosis(
        format!("{by} refused the origin{said}; {sent}{others}"),
        fix,
    )
}

/// A refusal carrying one of ringws's own reasons. Exhaustive on purpose: a new reason does not
/// compile until doctor explains it.
fn ringws_refusal(
    ctx: &Context,
    response: &Response,
    reason: RefusalReason,
    line: &str,
) -> Diagnosis {
    use RefusalReason::*;
    let status = status_line(response);
    let said = format!(" (reason {}), saying: {line}", reason.label());
    let quoted = format!("ringws refused the upgrade with {status}{said}");
    // When --header changed the header a refusal names, the refusal answers doctor's own request.
    let changed_by_doctor = |header: &str| -> Option<Diagnosis> {
        ctx.overridden(&header.to_ascii_lowercase()).then(|| {
            diagnosis(
                format!("{quoted}. The {header} header was changed or removed with --header, so this is the answer a client sending that request gets"),
                "drop that --header to test the endpoint as a browser would",
            )
        })
    };
    let hop_by_hop = format!(
        "{quoted}. doctor sent both Upgrade and Connection: upgrade, so a proxy in front \
         removed them: they are hop-by-hop headers, which proxies drop unless configured to \
         pass WebSocket upgrades"
    );
    match reason {
        MalformedRequest => diagnosis(
            format!("{quoted}. doctor sends a well-formed request, so something on the way rewrote it (or a --header value is malformed)"),
            FIND_THE_HOP,
        ),
        TlsOnPlainPort => diagnosis(
            format!("{quoted}. doctor spoke plain HTTP, so a proxy or load balancer in between forwards to ringws over TLS, and ringws serves plain ws:// only"),
            "make the proxy forward to ringws in plain HTTP (nginx: `proxy_pass http://...`, not \
             https://; a load balancer: an HTTP or TCP backend, not HTTPS) and keep TLS on the \
             client side of the proxy",
        ),
        HttpVersion => diagnosis(
            format!("{quoted}. doctor sent HTTP/1.1, so a proxy downgraded the request: nginx speaks HTTP/1.0 to upstreams unless told otherwise"),
            format!("nginx: add `proxy_http_version 1.1;` to the location; {PROXY_FIX}"),
        ),
        MethodNotAllowed => diagnosis(
            format!("{quoted}. doctor sends GET, so something on the way changed the method"),
            FIND_THE_HOP,
        ),
        HeadTooLarge => diagnosis(
            format!("{quoted}. doctor's own request is small, so a proxy added large headers (cookies, forwarding chains) or --header values are large"),
            "trim the headers, or raise ringws's limit (`--max-handshake-size 16KiB`)",
        ),
        NotAnUpgrade => changed_by_doctor("Upgrade").or_else(|| changed_by_doctor("Connection")).unwrap_or_else(|| {
            diagnosis(
                format!("{quoted}. doctor sent Upgrade: websocket and Connection: Upgrade, and ringws received a plain HTTP GET: a proxy in front removed both. They are hop-by-hop headers, which proxies drop unless configured to pass WebSocket upgrades"),
                PROXY_FIX,
            )
        }),
        MissingUpgrade | UpgradeNotWebsocket => {
            changed_by_doctor("Upgrade").unwrap_or_else(|| diagnosis(hop_by_hop, PROXY_FIX))
        }
        MissingConnectionUpgrade => {
            changed_by_doctor("Connection").unwrap_or_else(|| diagnosis(hop_by_hop, PROXY_FIX))
        }
        MissingKey | BadKey => changed_by_doctor("Sec-WebSocket-Key").unwrap_or_else(|| diagnosis(
            format!("{quoted}. doctor sent a valid key, so something on the way removed, repeated or rewrote it"),
            FIND_THE_HOP,
        )),
        UnsupportedVersion => changed_by_doctor("Sec-WebSocket-Version").unwrap_or_else(|| diagnosis(
            format!("{quoted}. doctor sent version 13, so something on the way removed or rewrote Sec-WebSocket-Version"),
            FIND_THE_HOP,
        )),
        RequestBody => diagnosis(
            format!("{quoted}. doctor sends no body, so a proxy added Content-Length or Transfer-Encoding (or a --header did)"),
            FIND_THE_HOP,
        ),
        NotFound => not_found(ctx, &quoted, line),
        ServerFull => diagnosis(
            format!("{quoted}{}", retry_after(response)),
            "retry after the delay with backoff; if it persists, raise max_connections or add \
             capacity (`ringws check --connections N` tells what this machine can hold)",
        ),
        TopicForbidden => diagnosis(
            quoted.clone(),
            "connect without that ?topic=, or use a token whose topic permissions grant \
             subscribing to it (the claim topic_permissions_claim of a JWT, or the subscribe= \
             field of its auth_tokens_file line); see docs/policy.md",
        ),
        OverMemoryBudget => diagnosis(
            format!("{quoted}{}", retry_after(response)),
            "retry after the delay with backoff; the server's connections hold nearly all of its \
             memory_budget (large messages in flight, slow readers with queues): see \
             ringws_memory_held_bytes on /metrics, and raise memory_budget only if the machine \
             has the memory",
        ),
        OriginNotAllowed => match &ctx.origin {
            None => diagnosis(
                format!("{quoted}. doctor sent no Origin header, so a proxy in front set the origin ringws refused"),
                "make the proxy pass the client's Origin unchanged (nginx: remove \
                 `proxy_set_header Origin ...` from the location), or add the origin it sets to \
                 the server's allowed_origins",
            ),
            Some(_) => forbidden(ctx, "ringws", &said, true),
        },
        MissingOrigin => match &ctx.origin {
            Some(origin) => diagnosis(
                format!("{quoted}. doctor sent Origin: {origin}, so a proxy in front removed it"),
                "make the proxy pass the Origin header (nginx passes it unless the location sets \
                 `proxy_set_header Origin \"\";`), or, if clients without an Origin may connect, set \
                 allow_missing_origin = true",
            ),
            None => changed_by_doctor("Origin")
                .unwrap_or_else(|| forbidden(ctx, "ringws", &said, true)),
        },
        // ringws's detail quotes the header it received, or says "offered none".
        SubprotocolMismatch if !ctx.offered_protocols.is_empty() && line.contains(": offered none;") => diagnosis(
            format!("{quoted}. doctor offered {}, so a proxy in front removed the Sec-WebSocket-Protocol header", ctx.offered_protocols.join(", ")),
            "make the proxy pass Sec-WebSocket-Protocol to ringws, and its answer back (nginx \
             passes both unless the location clears them with proxy_set_header or \
             proxy_hide_header)",
        ),
        SubprotocolMismatch => subprotocol_mismatch(ctx, "ringws", &status, &said),
        Unauthorized => {
            // RFC 6750 §3.1: a challenge without an error code answers a request with no token.
            let no_token_received = response
                .header("WWW-Authenticate")
                .is_some_and(|w| !w.contains("error="));
            if ctx.token_sent && no_token_received {
                diagnosis(
                    format!("{quoted}. doctor sent a token, and ringws received none: a proxy in front removed the Authorization header (or the ?token= query)"),
                    "make the proxy pass the Authorization header and the query string to ringws \
                     (nginx passes both, unless the location clears the header with \
                     `proxy_set_header Authorization \"\";` or builds the proxy_pass URL from \
                     variables without $is_args$args)",
                )
            } else {
                unauthorized(ctx, response, "ringws", &said)
            }
        }
        RateLimited => rate_limited(response, "ringws", &said),
        BadHost | RepeatedVersion => {
            let header = if reason == BadHost { "Host" } else { "Sec-WebSocket-Version" };
            changed_by_doctor(header).unwrap_or_else(|| diagnosis(
                format!("{quoted}. doctor sends one {header} header, so something on the way removed, repeated or rewrote it"),
                FIND_THE_HOP,
            ))
        }
    }
}
