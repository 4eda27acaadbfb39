//! The handshake policy through its public API: `Policy::load` on real files, then
//! `check` on requests parsed by `parse_request`, rendered with `write_refusal`/`write_accept`.
//! No sockets: the end-to-end tests against the binary live with the reactor's.

use std::net::IpAddr;
use std::path::PathBuf;

use ringws::config::{AuthMode, Config};
use ringws::policy::auth::sign_hs256;
use ringws::policy::{
    Accepted, DebugRing, HandshakeRateLimiter, LogLimiter, Policy, PolicyError, PolicySettings,
    RecordedHeaders,
};
use ringws::protocol::handshake::{parse_request, write_accept, write_refusal, HandshakeLimits};
use ringws::protocol::{Refusal, RefusalReason, UpgradeRequest};
use serde_json::json;

const SECRET: &str = "a test secret that is comfortably longer than 32 bytes";
const NOW: u64 = 1_700_000_000;

fn peer() -> IpAddr {
    "198.51.100.20".parse().unwrap()
}

/// Writes a file unique to this call: tests run in parallel and must not share one.
fn file(name: &str, text: &str) -> PathBuf {
    static NEXT: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
    let n = NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let unique = format!("policy-{}-{n}-{name}", std::process::id());
    let path = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join(unique);
    std::fs::write(&path, text).expect("write test file");
    path
}

/// An upgrade request for `target` with `extra` header lines.
fn request(target: &str, extra: &[(&str, &str)]) -> Vec<u8> {
    let mut text = format!(
        "GET {target} HTTP/1.1\r\nHost: ws.example\r\nUpgrade: websocket\r\n\
         Connection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\
         Sec-WebSocket-Version: 13\r\n"
    );
    for (name, value) in extra {
        text.push_str(&format!("{name}: {value}\r\n"));
    }
    text.push_str("\r\n");
    text.into_bytes()
}

fn parsed(buf: &[u8]) -> UpgradeRequest<'_> {
    parse_request(buf, &HandshakeLimits::default())
        .expect("valid upgrade")
        .expect("complete")
}

fn check<'a>(policy: &Policy, buf: &'a [u8]) -> Result<Accepted<'a>, Refusal> {
    policy.check(&parsed(buf), peer(), NOW)
}

fn rendered(refusal: &Refusal) -> String {
    let mut out = Vec::new();
    write_refusal(&mut out, refusal);
    String::from_utf8(out).unwrap()
}

fn config(edit: impl FnOnce(&mut Config)) -> Config {
    let mut config = Config::default();
    edit(&mut config);
    config
}

/// The policy's share of the default configuration changed by `edit`.
fn settings(edit: impl FnOnce(&mut Config)) -> PolicySettings {
    config(edit).policy_settings()
}

#[test]
fn defaults_accept_everything_and_select_nothing() {
    let policy = Policy::load(&Config::default().policy_settings()).expect("defaults build");
    let buf = request(
        "/",
        &[
            ("Origin", "https://anything.example"),
            ("Sec-WebSocket-Protocol", "chat"),
            ("X-Forwarded-For", "6.6.6.6"),
        ],
    );
    assert_eq!(
        check(&policy, &buf),
        Ok(Accepted {
            protocol: None,
            subject: None,
            client_ip: peer(),
            permissions: std::sync::Arc::new(ringws::policy::TopicPermissions::allow_all()),
            expires_unix_s: None,
        })
    );
}

#[test]
fn origin_allowlist_end_to_end() {
    let policy = Policy::load(&settings(|c| {
        c.allowed_origins = vec![
            "https://app.example".parse().unwrap(),
            "*.example.com".parse().unwrap(),
        ];
        c.allow_missing_origin = false;
    }))
    .unwrap();
    for origin in [
        "https://app.example",
        "https://a.b.example.com",
        "HTTPS://APP.EXAMPLE:443",
    ] {
        let buf = request("/", &[("Origin", origin)]);
        assert!(check(&policy, &buf).is_ok(), "{origin}");
    }
    let buf = request("/", &[("Origin", "https://evilexample.com")]);
    let refusal = check(&policy, &buf).unwrap_err();
    assert_eq!(refusal.reason, RefusalReason::OriginNotAllowed);
    let response = rendered(&refusal);
    assert!(
        response.starts_with("HTTP/1.1 403 Forbidden\r\n"),
        "{response}"
    );
    assert!(
        response.ends_with(
            ": origin \"https://evilexample.com\" is not allowed (allowed: https://app.example, \
             *.example.com)\n"
        ),
        "{response}"
    );
    let buf = request("/", &[]);
    let refusal = check(&policy, &buf).unwrap_err();
    assert_eq!(refusal.reason, RefusalReason::MissingOrigin);
    assert!(rendered(&refusal).starts_with("HTTP/1.1 403 Forbidden\r\n"));
}

#[test]
fn subprotocol_is_chosen_by_server_preference_and_echoed() {
    let policy = Policy::load(&settings(|c| {
        c.subprotocols = vec!["chat.v2".into(), "chat.v1".into()];
        c.require_subprotocol = true;
    }))
    .unwrap();
    let buf = request("/", &[("Sec-WebSocket-Protocol", "chat.v1, chat.v2")]);
    let accepted = check(&policy, &buf).unwrap();
    assert_eq!(accepted.protocol, Some("chat.v2"));
    let mut out = Vec::new();
    write_accept(&mut out, parsed(&buf).key, accepted.protocol);
    assert!(String::from_utf8(out)
        .unwrap()
        .contains("\r\nSec-WebSocket-Protocol: chat.v2\r\n"));

    let buf = request("/", &[("Sec-WebSocket-Protocol", "mqtt")]);
    let refusal = check(&policy, &buf).unwrap_err();
    let response = rendered(&refusal);
    assert!(
        response.starts_with("HTTP/1.1 400 Bad Request\r\n"),
        "{response}"
    );
    assert!(
        response.ends_with(": offered \"mqtt\"; supported: chat.v2, chat.v1\n"),
        "{response}"
    );

    let lenient = Policy::load(&settings(|c| c.subprotocols = vec!["chat.v2".into()])).unwrap();
    assert_eq!(check(&lenient, &buf).unwrap().protocol, None);
}

#[test]
fn static_tokens_from_a_file() {
    let tokens = file(
        "tokens.txt",
        "# ringws tokens\nalice:tok-alice-123\nanonymous-token-456\n",
    );
    let policy = Policy::load(&settings(|c| {
        c.auth = AuthMode::Token;
        c.auth_tokens_file = Some(tokens.clone());
    }))
    .unwrap();

    let buf = request("/", &[("Authorization", "Bearer tok-alice-123")]);
    assert_eq!(
        check(&policy, &buf).unwrap().subject.as_deref(),
        Some("alice")
    );
    let buf = request("/chat?room=1&token=anonymous-token-456", &[]);
    assert_eq!(check(&policy, &buf).unwrap().subject, None);

    let buf = request("/", &[]);
    let response = rendered(&check(&policy, &buf).unwrap_err());
    assert!(
        response.starts_with("HTTP/1.1 401 Unauthorized\r\n"),
        "{response}"
    );
    assert!(
        response.contains("\r\nWWW-Authenticate: Bearer realm=\"ringws\"\r\n"),
        "{response}"
    );
    assert!(response.ends_with(": no token was sent\n"), "{response}");

    let buf = request("/?token=tok-mallory", &[]);
    let response = rendered(&check(&policy, &buf).unwrap_err());
    assert!(
        response.contains(
            "\r\nWWW-Authenticate: Bearer realm=\"ringws\", error=\"invalid_token\", \
             error_description=\"unknown token\"\r\n"
        ),
        "{response}"
    );
    assert!(!response.contains("tok-mallory"), "{response}");
}

#[test]
fn token_file_problems_name_the_file_and_line() {
    let missing = config(|c| {
        c.auth = AuthMode::Token;
        c.auth_tokens_file = Some("/nonexistent/tokens.txt".into());
    });
    let message = Policy::load(&missing.policy_settings())
        .unwrap_err()
        .to_string();
    assert!(
        message.starts_with("cannot read auth_tokens_file /nonexistent/tokens.txt: "),
        "{message}"
    );

    let bad = file("bad-tokens.txt", "ok-token\nname:\n");
    let message = Policy::load(&settings(|c| {
        c.auth = AuthMode::Token;
        c.auth_tokens_file = Some(bad.clone());
    }))
    .unwrap_err()
    .to_string();
    assert_eq!(
        message,
        format!(
            "auth_tokens_file {}: line 2: the token is empty (write one token per line, or \
             name:token)",
            bad.display()
        )
    );

    let empty = file("empty-tokens.txt", "# nothing yet\n");
    let err = Policy::load(&settings(|c| {
        c.auth = AuthMode::Token;
        c.auth_tokens_file = Some(empty.clone());
    }))
    .unwrap_err();
    assert!(matches!(err, PolicyError::NoTokens { .. }), "{err}");

    let no_file = config(|c| c.auth = AuthMode::Token);
    assert!(matches!(
        Policy::load(&no_file.policy_settings()),
        Err(PolicyError::NoTokensFile)
    ));
}

fn jwt_policy(edit: impl FnOnce(&mut Config)) -> Policy {
    let secret = file("jwt.secret", &format!("{SECRET}\n"));
    Policy::load_with_env_secret(
        &settings(|c| {
            c.auth = AuthMode::Jwt;
            c.jwt_secret_file = Some(secret.clone());
            edit(c);
        }),
        None,
    )
    .expect("jwt policy builds")
}

#[test]
fn jwt_subject_reaches_the_accepted_upgrade() {
    let policy = jwt_policy(|c| {
        c.jwt_audience = Some("chat".into());
        c.jwt_issuer = Some("https://idp.example".into());
    });
    let token = sign_hs256(
        SECRET.as_bytes(),
        &json!({"sub": "user-42", "aud": "chat", "iss": "https://idp.example", "exp": NOW + 60}),
    );
    let buf = request("/", &[("Authorization", &format!("Bearer {token}"))]);
    assert_eq!(
        check(&policy, &buf).unwrap().subject.as_deref(),
        Some("user-42")
    );
    // Browsers: the token in the query, percent-encoded or not.
    let buf = request(&format!("/chat?token={token}"), &[]);
    assert_eq!(
        check(&policy, &buf).unwrap().subject.as_deref(),
        Some("user-42")
    );
}

#[test]
fn each_jwt_failure_is_named_in_the_body_and_the_challenge() {
    let policy = jwt_policy(|c| c.jwt_audience = Some("chat".into()));
    let sign = |claims: serde_json::Value| sign_hs256(SECRET.as_bytes(), &claims);
    let cases = [
        (
            sign(json!({"aud": "chat", "exp": NOW - 120})),
            "token expired",
            ": the token expired at 2023-11-14T22:11:20Z (server time 2023-11-14T22:13:20Z, 30 s \
             clock skew allowed): get a new token\n",
        ),
        (
            sign(json!({"aud": "chat", "nbf": NOW + 3600})),
            "token not yet valid",
            "check the issuer's clock\n",
        ),
        (
            sign(json!({"aud": "billing"})),
            "wrong audience",
            ": wrong audience: the token's \"aud\" does not name \"chat\"\n",
        ),
        (
            sign_hs256(
                b"some other secret that is also long enough",
                &json!({"aud": "chat"}),
            ),
            "bad signature",
            ": bad signature: the token was not signed with this server's JWT secret or keys\n",
        ),
        (
            "not-a-jwt".to_owned(),
            "malformed token",
            ": malformed token: not a JWT: expected three base64url parts separated by dots\n",
        ),
        (
            ringws::policy::auth::sign_with_header(
                SECRET.as_bytes(),
                &json!({"alg": "none"}),
                &json!({"aud": "chat"}),
            ),
            "unsupported algorithm",
            ": the JWT algorithm \"none\" is not accepted: this server accepts HS256 when it has \
             jwt_secret_file, and RS256, PS256, ES256 and EdDSA when it has jwt_jwks_file or \
             jwt_jwks_url\n",
        ),
    ];
    for (token, description, body_end) in cases {
        let buf = request("/", &[("Authorization", &format!("Bearer {token}"))]);
        let refusal = check(&policy, &buf).unwrap_err();
        assert_eq!(refusal.reason, RefusalReason::Unauthorized);
        let response = rendered(&refusal);
        assert!(
            response.starts_with("HTTP/1.1 401 Unauthorized\r\n"),
            "{response}"
        );
        assert!(
            response.contains(&format!(
                "\r\nWWW-Authenticate: Bearer realm=\"ringws\", error=\"invalid_token\", \
                 error_description=\"{description}\"\r\n"
            )),
            "{response}"
        );
        assert!(response.ends_with(body_end), "{response}");
        assert!(!response.contains(SECRET));
        assert!(!response.contains(&token) || token == "not-a-jwt");
    }
    let issuer = jwt_policy(|c| c.jwt_issuer = Some("https://idp.example".into()));
    let token = sign(json!({"iss": "https://other.example"}));
    let buf = request("/", &[("Authorization", &format!("Bearer {token}"))]);
    assert!(rendered(&check(&issuer, &buf).unwrap_err())
        .ends_with(": wrong issuer: the token's \"iss\" is not \"https://idp.example\"\n"));
}

#[test]
fn jwt_secret_problems_name_where_it_came_from() {
    let jwt = config(|c| c.auth = AuthMode::Jwt);
    assert!(matches!(
        Policy::load_with_env_secret(&jwt.policy_settings(), None),
        Err(PolicyError::NoSecret)
    ));
    let message = Policy::load_with_env_secret(&jwt.policy_settings(), Some("short".into()))
        .unwrap_err()
        .to_string();
    assert!(
        message.starts_with(
            "the JWT secret from environment variable RINGWS_JWT_SECRET is 5 bytes; HS256 needs \
             at least 32"
        ),
        "{message}"
    );
    assert!(Policy::load_with_env_secret(&jwt.policy_settings(), Some(SECRET.into())).is_ok());

    let short = file("short.secret", "tiny\n");
    let message = Policy::load_with_env_secret(
        &settings(|c| {
            c.auth = AuthMode::Jwt;
            c.jwt_secret_file = Some(short.clone());
        }),
        Some(SECRET.into()),
    )
    .unwrap_err()
    .to_string();
    assert!(
        message.starts_with(&format!(
            "the JWT secret from jwt_secret_file {} is 4 bytes",
            short.display()
        )),
        "the file wins over the environment: {message}"
    );
    let message = Policy::load_with_env_secret(
        &settings(|c| {
            c.auth = AuthMode::Jwt;
            c.jwt_secret_file = Some("/nonexistent/jwt.secret".into());
        }),
        None,
    )
    .unwrap_err()
    .to_string();
    assert!(
        message.starts_with("cannot read jwt_secret_file /nonexistent/jwt.secret: "),
        "{message}"
    );
}

#[test]
fn checks_run_origin_then_auth_then_subprotocol() {
    let tokens = file("order-tokens.txt", "good-token\n");
    let policy = Policy::load(&settings(|c| {
        c.allowed_origins = vec!["https://app.example".parse().unwrap()];
        c.auth = AuthMode::Token;
        c.auth_tokens_file = Some(tokens.clone());
        c.subprotocols = vec!["v1".into()];
        c.require_subprotocol = true;
    }))
    .unwrap();
    let all_wrong = request(
        "/",
        &[
            ("Origin", "https://evil.example"),
            ("Sec-WebSocket-Protocol", "x"),
        ],
    );
    assert_eq!(
        check(&policy, &all_wrong).unwrap_err().reason,
        RefusalReason::OriginNotAllowed
    );
    let origin_ok = request(
        "/",
        &[
            ("Origin", "https://app.example"),
            ("Sec-WebSocket-Protocol", "x"),
        ],
    );
    assert_eq!(
        check(&policy, &origin_ok).unwrap_err().reason,
        RefusalReason::Unauthorized
    );
    let auth_ok = request(
        "/?token=good-token",
        &[
            ("Origin", "https://app.example"),
            ("Sec-WebSocket-Protocol", "x"),
        ],
    );
    assert_eq!(
        check(&policy, &auth_ok).unwrap_err().reason,
        RefusalReason::SubprotocolMismatch
    );
    let all_ok = request(
        "/?token=good-token",
        &[
            ("Origin", "https://app.example"),
            ("Sec-WebSocket-Protocol", "x, v1"),
        ],
    );
    assert_eq!(check(&policy, &all_ok).unwrap().protocol, Some("v1"));
}

#[test]
fn client_address_behind_trusted_proxies_only() {
    let policy = Policy::load(&settings(|c| {
        c.trusted_proxies = vec!["10.0.0.0/8".parse().unwrap()];
    }))
    .unwrap();
    let proxy: IpAddr = "10.1.2.3".parse().unwrap();
    let buf = request("/", &[("X-Forwarded-For", "6.6.6.6, 203.0.113.50")]);
    let req = parsed(&buf);
    assert_eq!(
        policy.check(&req, proxy, NOW).unwrap().client_ip,
        "203.0.113.50".parse::<IpAddr>().unwrap()
    );
    assert_eq!(
        policy.client_ip(&req, proxy),
        "203.0.113.50".parse::<IpAddr>().unwrap()
    );
    // The same header from an untrusted peer is ignored.
    assert_eq!(policy.check(&req, peer(), NOW).unwrap().client_ip, peer());
    // A client's own X-Forwarded-For line before the one HAProxy adds is not believed.
    let buf = request(
        "/",
        &[
            ("X-Forwarded-For", "6.6.6.6"),
            ("X-Forwarded-For", "203.0.113.50"),
        ],
    );
    assert_eq!(
        policy.client_ip(&parsed(&buf), proxy),
        "203.0.113.50".parse::<IpAddr>().unwrap()
    );
    let buf = request(
        "/",
        &[("Forwarded", "for=\"[2001:db8::5]:1234\";proto=https")],
    );
    assert_eq!(
        policy.client_ip(&parsed(&buf), proxy),
        "2001:db8::5".parse::<IpAddr>().unwrap()
    );
}

#[test]
fn rate_limiter_is_bounded_and_answers_429() {
    let defaults = Config::default();
    let off = HandshakeRateLimiter::new(
        defaults.handshake_rate_per_ip,
        defaults.handshake_burst_per_ip,
        defaults.handshake_rate_table_size,
    );
    assert!(!off.is_enabled());
    let mut limiter = HandshakeRateLimiter::new(1, 2, 256);
    assert_eq!(limiter.capacity(), 256);
    let ip: IpAddr = "127.0.0.1".parse().unwrap();
    assert_eq!(limiter.check(ip, 0), Ok(()));
    assert_eq!(limiter.check(ip, 0), Ok(()));
    let retry_after = limiter.check(ip, 0).unwrap_err();
    let response = rendered(&Refusal::rate_limited(retry_after));
    assert!(
        response.starts_with("HTTP/1.1 429 Too Many Requests\r\n"),
        "{response}"
    );
    assert!(response.contains("\r\nRetry-After: 1\r\n"), "{response}");
    // Many source addresses on 127.0.0.0/8: the table stays at its capacity.
    for i in 0..100_000u32 {
        let ip = IpAddr::from(std::net::Ipv4Addr::from(0x7f00_0000 | (i & 0x00ff_ffff)));
        let _ = limiter.check(ip, 1000);
        assert!(limiter.len() <= limiter.capacity());
    }
    assert_eq!(limiter.len(), 256);
}

#[test]
fn refusals_go_to_the_debug_ring_and_the_log_limiter() {
    let policy = Policy::load(&settings(|c| {
        c.allowed_origins = vec!["https://app.example".parse().unwrap()];
    }))
    .unwrap();
    let mut ring = DebugRing::new();
    let mut log = LogLimiter::new(2);
    let buf = request(
        "/chat?token=hidden-value",
        &[("Origin", "https://evil.example"), ("User-Agent", "test/1")],
    );
    let req = parsed(&buf);
    let refusal = policy.check(&req, peer(), NOW).unwrap_err();
    ring.record(
        NOW,
        policy.client_ip(&req, peer()),
        Some(req.path),
        RecordedHeaders::from_request(&req),
        &refusal,
    );
    // And one the parser refused.
    let bad = b"GET /old HTTP/1.1\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
        Sec-WebSocket-Version: 8\r\nOrigin: https://legacy.example\r\n\r\n";
    let parser_refusal = parse_request(bad, &HandshakeLimits::default()).unwrap_err();
    let (path, headers) = RecordedHeaders::scan(bad);
    ring.record(NOW + 1, peer(), path, headers, &parser_refusal);

    let json = ring.to_json();
    let refusals = json["refusals"].as_array().unwrap();
    assert_eq!(refusals.len(), 2);
    assert_eq!(refusals[0]["reason"], "unsupported_version");
    assert_eq!(refusals[0]["path"], "/old");
    assert_eq!(refusals[0]["origin"], "https://legacy.example");
    assert_eq!(refusals[1]["reason"], "origin_not_allowed");
    assert_eq!(refusals[1]["status"], 403);
    assert_eq!(refusals[1]["user_agent"], "test/1");
    assert_eq!(refusals[1]["credentials"], "query_token");
    assert_eq!(refusals[1]["client"], "198.51.100.20");
    assert!(!json.to_string().contains("hidden-value"));

    assert_eq!(log.admit(5_000), Some(0));
    assert_eq!(log.admit(5_001), Some(0));
    assert_eq!(log.admit(5_002), None);
    assert_eq!(log.admit(6_000), Some(1));
}
