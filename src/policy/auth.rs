//! Authentication before the upgrade: a bearer token from `Authorization: Bearer <token>` or, for
//! browsers (which cannot set headers on a WebSocket), from `?token=<token>`; checked against a
//! static list or verified as an HS256 JWT.
//!
//! Failures say exactly what was wrong, and never contain the token or the secret.

use std::borrow::Cow;
use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, UNIX_EPOCH};

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use hmac::{Hmac, Mac as _};
use sha2::{Digest as _, Sha256};

use super::jwks::{self, KeySet, Lookup, RemoteKeys};
use super::topic_acl::{ClaimError, TopicPermissions, DEFAULT_CLAIM};
use crate::protocol::refusal::{one_line, BearerChallenge};
use crate::protocol::Refusal;

/// Who a token names and what it grants, once verified.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Identity {
    /// The JWT `sub`, or the static token's name.
    pub subject: Option<String>,
    /// The topic permissions the token carries (the JWT claim `topic_permissions_claim`, or the
    /// fields of its `auth_tokens_file` line); `None`: it carries none, and
    /// `topic_permissions_default` applies. Static tokens share one parsed set per line.
    pub permissions: Option<Arc<TopicPermissions>>,
    /// The JWT `exp`, when it has one.
    pub expires_unix_s: Option<u64>,
}

/// Environment variable holding the JWT secret when `jwt_secret_file` is not set.
pub const JWT_SECRET_ENV: &str = "RINGWS_JWT_SECRET";
/// Clock difference tolerated on `exp` and `nbf`.
pub const CLOCK_SKEW_S: u64 = 30;
/// Longest token accepted; real JWTs are a few hundred bytes.
pub const MAX_TOKEN_BYTES: usize = 4096;
/// Most query parameters looked at for `token=`.
pub const MAX_QUERY_PARAMS: usize = 64;
/// Shortest HS256 secret: the key must be at least as long as the hash (RFC 7518 §3.2).
pub const MIN_SECRET_BYTES: usize = 32;
/// Largest `auth_tokens_file` read.
pub const MAX_TOKENS_FILE_BYTES: usize = 16 << 20;
/// Longest alg name or claim value quoted back in a refusal.
const MAX_QUOTED_BYTES: usize = 64;

/// How handshakes are authenticated (`auth`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum AuthMode {
    /// Everyone may upgrade.
    #[default]
    None,
    /// A bearer token from `auth_tokens_file`.
    Token,
    /// An HS256 JWT signed with the secret from `jwt_secret_file` or `RINGWS_JWT_SECRET`.
    Jwt,
}

impl AuthMode {
    /// Every mode, in the order error messages list them.
    pub const ALL: [AuthMode; 3] = [AuthMode::None, AuthMode::Token, AuthMode::Jwt];

    /// The mode as the config file and the `--auth` flag write it.
    pub fn name(self) -> &'static str {
        match self {
            AuthMode::None => "none",
            AuthMode::Token => "token",
            AuthMode::Jwt => "jwt",
        }
    }
}

/// What was wrong with the credentials of a request, one variant per distinct cause.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum AuthFailure {
    /// Neither `Authorization` nor `?token=`.
    Missing,
    /// A token that cannot be read: the text says what is wrong with it.
    Malformed(Cow<'static, str>),
    /// A JWT whose `alg` is not HS256 (this includes `none`).
    UnsupportedAlgorithm(String),
    /// A JWT whose signature does not verify with the server's secret or key.
    BadSignature,
    /// An asymmetric JWT whose `kid` is in no key set (a refresh of `jwt_jwks_url` was asked).
    UnknownKeyId(String),
    /// The key the `kid` names is pinned to other algorithms than the token's `alg`.
    AlgorithmNotAllowedForKey { alg: String, kid: String },
    /// `exp` plus the clock skew has passed.
    Expired { exp: u64, now: u64 },
    /// `nbf` minus the clock skew has not come yet.
    NotYetValid { nbf: u64, now: u64 },
    /// `jwt_audience` is set and the token's `aud` does not name it.
    WrongAudience { expected: String },
    /// `jwt_issuer` is set and the token's `iss` differs.
    WrongIssuer { expected: String },
    /// A static token that is not in `auth_tokens_file`.
    UnknownToken,
}

impl AuthFailure {
    /// Short RFC 6750 `error_description`; no client data.
    pub fn description(&self) -> &'static str {
        match self {
            AuthFailure::Missing => "missing token",
            AuthFailure::Malformed(_) => "malformed token",
            AuthFailure::UnsupportedAlgorithm(_) => "unsupported algorithm",
            AuthFailure::BadSignature => "bad signature",
            AuthFailure::UnknownKeyId(_) => "unknown key id",
            AuthFailure::AlgorithmNotAllowedForKey { .. } => "algorithm not allowed for key",
            AuthFailure::Expired { .. } => "token expired",
            AuthFailure::NotYetValid { .. } => "token not yet valid",
            AuthFailure::WrongAudience { .. } => "wrong audience",
            AuthFailure::WrongIssuer { .. } => "wrong issuer",
            AuthFailure::UnknownToken => "unknown token",
        }
    }

    /// The precise, one-line account for the refusal body and the logs.
    pub fn detail(&self) -> String {
        match self {
            AuthFailure::Missing => "no token was sent".into(),
            AuthFailure::Malformed(what) => format!("malformed token: {what}"),
            AuthFailure::UnsupportedAlgorithm(alg) => format!(
                "the JWT algorithm {:?} is not accepted: this server accepts HS256 when it has \
                 jwt_secret_file, and RS256, PS256, ES256 and EdDSA when it has jwt_jwks_file or \
                 jwt_jwks_url",
                one_line(alg, MAX_QUOTED_BYTES)
            ),
            AuthFailure::BadSignature => {
                "bad signature: the token was not signed with this server's JWT secret or keys"
                    .into()
            }
            AuthFailure::UnknownKeyId(kid) => format!(
                "unknown key id {:?}: no key of the server's key set has it (the set is \
                 refreshed from jwt_jwks_url; retry in a moment)",
                one_line(kid, MAX_QUOTED_BYTES)
            ),
            AuthFailure::AlgorithmNotAllowedForKey { alg, kid } => format!(
                "the key {:?} is not for {:?}: each key is pinned to the algorithm of its JWK",
                one_line(kid, MAX_QUOTED_BYTES),
                one_line(alg, MAX_QUOTED_BYTES)
            ),
            AuthFailure::Expired { exp, now } => format!(
                "the token expired at {} (server time {}, {CLOCK_SKEW_S} s clock skew allowed): \
                 get a new token",
                unix_time(*exp),
                unix_time(*now)
            ),
            AuthFailure::NotYetValid { nbf, now } => format!(
                "the token is not valid before {} (server time {}, {CLOCK_SKEW_S} s clock skew \
                 allowed): check the issuer's clock",
                unix_time(*nbf),
                unix_time(*now)
            ),
            AuthFailure::WrongAudience { expected } => format!(
                "wrong audience: the token's \"aud\" does not name {:?}",
                one_line(expected, MAX_QUOTED_BYTES)
            ),
            AuthFailure::WrongIssuer { expected } => format!(
                "wrong issuer: the token's \"iss\" is not {:?}",
                one_line(expected, MAX_QUOTED_BYTES)
            ),
            AuthFailure::UnknownToken => {
                "unknown token: it is not one of the server's accepted tokens".into()
            }
        }
    }

    /// The 401 to answer with.
    pub fn to_refusal(&self) -> Refusal {
        let bearer = match self {
            AuthFailure::Missing => BearerChallenge::Missing,
            other => BearerChallenge::InvalidToken {
                description: other.description(),
            },
        };
        Refusal::unauthorized(bearer, self.detail())
    }
}

fn malformed(what: &'static str) -> AuthFailure {
    AuthFailure::Malformed(Cow::Borrowed(what))
}

/// RFC 3339 for people, or the raw number when it is beyond year 9999.
fn unix_time(seconds: u64) -> String {
    const YEAR_10000: u64 = 253_402_300_800;
    if seconds >= YEAR_10000 {
        return format!("unix time {seconds}");
    }
    humantime::format_rfc3339_seconds(UNIX_EPOCH + Duration::from_secs(seconds)).to_string()
}

/// The token a request carries: `Authorization: Bearer` first, then the `token` query parameter
/// (percent-decoded). `Ok(None)`: no credentials at all.
pub fn extract_token<'a>(
    authorization: Option<&'a str>,
    query: Option<&'a str>,
) -> Result<Option<Cow<'a, str>>, AuthFailure> {
    if let Some(value) = authorization {
        let value = value.trim();
        let (scheme, token) = value.split_once([' ', '\t']).unwrap_or((value, ""));
        if !scheme.eq_ignore_ascii_case("bearer") {
            return Err(malformed(
                "the Authorization header does not use the Bearer scheme: send \
                 \"Authorization: Bearer <token>\"",
            ));
        }
        return check_token_text(token.trim()).map(|t| Some(Cow::Borrowed(t)));
    }
    let Some(query) = query else {
        return Ok(None);
    };
    let Some(raw) = query
        .split('&')
        .take(MAX_QUERY_PARAMS)
        .find_map(|pair| pair.strip_prefix("token="))
    else {
        return Ok(None);
    };
    if raw.len() > 3 * MAX_TOKEN_BYTES {
        return Err(too_long());
    }
    let token = percent_decode(raw)
        .ok_or_else(|| malformed("the ?token= value is not valid percent-encoded UTF-8"))?;
    check_token_text(&token)?;
    Ok(Some(token))
}

fn too_long() -> AuthFailure {
    AuthFailure::Malformed(format!("the token is longer than {MAX_TOKEN_BYTES} bytes").into())
}

fn check_token_text(token: &str) -> Result<&str, AuthFailure> {
    if token.is_empty() {
        return Err(malformed("the token is empty"));
    }
    if token.len() > MAX_TOKEN_BYTES {
        return Err(too_long());
    }
    if token
        .bytes()
        .any(|b| b.is_ascii_whitespace() || b.is_ascii_control())
    {
        return Err(malformed("the token contains spaces or control characters"));
    }
    Ok(token)
}

/// RFC 3986 percent-decoding (`+` stays `+`); borrowed when there is nothing to decode.
fn percent_decode(text: &str) -> Option<Cow<'_, str>> {
    if !text.contains('%') {
        return Some(Cow::Borrowed(text));
    }
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' {
            let hex = bytes.get(i + 1..i + 3)?;
            let hex = std::str::from_utf8(hex).ok()?;
            out.push(u8::from_str_radix(hex, 16).ok()?);
            i += 3;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    String::from_utf8(out).ok().map(Cow::Owned)
}

/// A problem on one line of `auth_tokens_file`.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum TokenLineError {
    #[error("the token is empty (write one token per line, or name:token)")]
    EmptyToken,
    #[error("the name before ':' is empty (write name:token, or the token alone)")]
    EmptyName,
    #[error("the token contains spaces or control characters")]
    BadCharacters,
    #[error("the token is longer than {MAX_TOKEN_BYTES} bytes")]
    TooLong,
    #[error("the same token is already on line {0}")]
    Duplicate(usize),
    #[error("{0}")]
    Permissions(ClaimError),
}

/// Why an `auth_tokens_file` text was refused.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum TokensFileError {
    Line {
        line: usize,
        problem: TokenLineError,
    },
    Empty,
}

/// The accepted static tokens, kept as SHA-256 digests: looking one up reveals nothing about
/// the others through timing, and the tokens themselves are not kept in memory.
#[derive(Clone, Default)]
pub struct StaticTokens {
    /// Digest → the line's identity (the subject being the token's name if it has one) and
    /// its number.
    by_digest: HashMap<[u8; 32], (Identity, usize)>,
}

impl std::fmt::Debug for StaticTokens {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "StaticTokens({} tokens)", self.by_digest.len())
    }
}

impl StaticTokens {
    /// Parses a tokens file: one token per line, or `name:token` (the name becomes the
    /// subject; a token containing ':' must therefore be given a name), optionally followed by
    /// topic permissions: `alice:tok subscribe=news.*,user.alice.# publish=chat.*` (see
    /// [`TopicPermissions::from_token_fields`]). Blank lines and lines starting with `#` are
    /// skipped; surrounding whitespace is ignored.
    pub fn parse(text: &str) -> Result<StaticTokens, TokensFileError> {
        let mut tokens = StaticTokens::default();
        for (index, line) in text.lines().enumerate() {
            let number = index + 1;
            let line = line.trim();
            if line.is_empty() || line.starts_with('#') {
                continue;
            }
            let fail = |problem| TokensFileError::Line {
                line: number,
                problem,
            };
            // Tokens hold no whitespace, so permission fields start at the first word after
            // the first one that begins with `subscribe=` or `publish=`.
            let (line, fields) = split_permission_fields(line);
            let permissions = match fields {
                None => None,
                Some(fields) => Some(Arc::new(
                    TopicPermissions::from_token_fields(fields.split_whitespace())
                        .map_err(|e| fail(TokenLineError::Permissions(e)))?,
                )),
            };
            let (name, token) = match line.split_once(':') {
                Some((name, token)) => (Some(name.trim()), token.trim()),
                None => (None, line),
            };
            if name == Some("") {
                return Err(fail(TokenLineError::EmptyName));
            }
            if token.is_empty() {
                return Err(fail(TokenLineError::EmptyToken));
            }
            if token.len() > MAX_TOKEN_BYTES {
                return Err(fail(TokenLineError::TooLong));
            }
            if token
                .bytes()
                .any(|b| b.is_ascii_whitespace() || b.is_ascii_control())
            {
                return Err(fail(TokenLineError::BadCharacters));
            }
            let digest: [u8; 32] = Sha256::digest(token.as_bytes()).into();
            if let Some((_, first)) = tokens.by_digest.get(&digest) {
                return Err(fail(TokenLineError::Duplicate(*first)));
            }
            let identity = Identity {
                subject: name.map(str::to_owned),
                permissions,
                expires_unix_s: None,
            };
            tokens.by_digest.insert(digest, (identity, number));
        }
        if tokens.by_digest.is_empty() {
            return Err(TokensFileError::Empty);
        }
        Ok(tokens)
    }

    pub fn len(&self) -> usize {
        self.by_digest.len()
    }

    pub fn is_empty(&self) -> bool {
        self.by_digest.is_empty()
    }

    /// The token's subject (its name, if it has one).
    pub fn verify(&self, token: &str) -> Result<Option<String>, AuthFailure> {
        self.identify(token).map(|identity| identity.subject)
    }

    /// The token's identity: its name and permissions.
    pub fn identify(&self, token: &str) -> Result<Identity, AuthFailure> {
        let digest: [u8; 32] = Sha256::digest(token.as_bytes()).into();
        match self.by_digest.get_key_value(&digest) {
            Some((stored, (identity, _))) if constant_time_eq(stored, &digest) => {
                Ok(identity.clone())
            }
            _ => Err(AuthFailure::UnknownToken),
        }
    }
}

/// Splits a tokens-file line into `[name:]token` and the permission fields after it, if any.
fn split_permission_fields(line: &str) -> (&str, Option<&str>) {
    let is_field = |word: &str| word.starts_with("subscribe=") || word.starts_with("publish=");
    let mut words = line.split_whitespace();
    words.next(); // the credential always has at least one word
    let Some(first_field) = words.find(|w| is_field(w)) else {
        return (line, None);
    };
    // `first_field` is a slice of `line`: its offset is where the fields begin.
    let at = first_field.as_ptr() as usize - line.as_ptr() as usize;
    (line[..at].trim_end(), Some(&line[at..]))
}

fn constant_time_eq(a: &[u8; 32], b: &[u8; 32]) -> bool {
    let difference = a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y));
    std::hint::black_box(difference) == 0
}

/// JWT verification: HS256 with the server's secret, and RS256, PS256, ES256 and EdDSA with
/// the keys of `jwt_jwks_file` and `jwt_jwks_url` ([`jwks`]).
#[derive(Clone)]
pub struct JwtVerifier {
    /// Keyed once; cloned per token. `None`: no secret, HS256 is refused.
    mac: Option<Hmac<Sha256>>,
    /// The keys of `jwt_jwks_file`.
    file_keys: Arc<KeySet>,
    /// The keys of `jwt_jwks_url`, refreshed in the background.
    remote: Option<Arc<RemoteKeys>>,
    audience: Option<String>,
    issuer: Option<String>,
    /// The claim holding topic permissions (`topic_permissions_claim`).
    permissions_claim: String,
}

impl std::fmt::Debug for JwtVerifier {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("JwtVerifier")
            .field("secret", &self.mac.as_ref().map(|_| "<redacted>"))
            .field("file_keys", &self.file_keys.len())
            .field("remote", &self.remote)
            .field("audience", &self.audience)
            .field("issuer", &self.issuer)
            .finish()
    }
}

/// A JWT secret shorter than [`MIN_SECRET_BYTES`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ShortSecret {
    pub len: usize,
}

impl JwtVerifier {
    /// `secret` is used as given (raw bytes); callers strip a trailing newline from files.
    pub fn new(
        secret: &[u8],
        audience: Option<String>,
        issuer: Option<String>,
    ) -> Result<JwtVerifier, ShortSecret> {
        if secret.len() < MIN_SECRET_BYTES {
            return Err(ShortSecret { len: secret.len() });
        }
        let mac = Hmac::<Sha256>::new_from_slice(secret).expect("HMAC accepts keys of any length");
        Ok(JwtVerifier {
            mac: Some(mac),
            ..JwtVerifier::without_secret(audience, issuer)
        })
    }

    /// A verifier for asymmetric tokens only (add keys with [`with_file_keys`] or
    /// [`with_remote_keys`]); HS256 is refused.
    ///
    /// [`with_file_keys`]: Self::with_file_keys
    /// [`with_remote_keys`]: Self::with_remote_keys
    pub fn without_secret(audience: Option<String>, issuer: Option<String>) -> JwtVerifier {
        JwtVerifier {
            mac: None,
            file_keys: Arc::default(),
            remote: None,
            audience,
            issuer,
            permissions_claim: DEFAULT_CLAIM.to_owned(),
        }
    }

    /// Verifies asymmetric tokens with `keys` (from `jwt_jwks_file`).
    pub fn with_file_keys(mut self, keys: KeySet) -> JwtVerifier {
        self.file_keys = Arc::new(keys);
        self
    }

    /// Verifies asymmetric tokens with the keys of `jwt_jwks_url` too.
    pub fn with_remote_keys(mut self, remote: Arc<RemoteKeys>) -> JwtVerifier {
        self.remote = Some(remote);
        self
    }

    fn has_keys(&self) -> bool {
        !self.file_keys.is_empty() || self.remote.is_some()
    }

    /// Checks an asymmetric signature: the key the `kid` names (or, without `kid`, each key of
    /// the algorithm), in the file's set, then the URL's. An unknown `kid` asks for a refresh.
    fn verify_asymmetric(
        &self,
        alg: jsonwebtoken::Algorithm,
        kid: Option<&str>,
        message: &[u8],
        signature: &str,
    ) -> Result<(), AuthFailure> {
        let remote = self.remote.as_ref().map(|r| r.keys());
        let sets = std::iter::once(&*self.file_keys).chain(remote.as_deref());
        let mut not_allowed = false;
        for set in sets {
            match set.lookup(alg, kid) {
                Lookup::Keys(keys) => {
                    if keys.iter().any(|k| k.verifies(alg, message, signature)) {
                        return Ok(());
                    }
                    if kid.is_some() {
                        return Err(AuthFailure::BadSignature);
                    }
                }
                Lookup::AlgorithmNotAllowed => not_allowed = true,
                Lookup::UnknownKid => {}
            }
        }
        match kid {
            Some(kid) if not_allowed => Err(AuthFailure::AlgorithmNotAllowedForKey {
                alg: format!("{alg:?}"),
                kid: kid.to_owned(),
            }),
            Some(kid) => {
                if let Some(remote) = &self.remote {
                    remote.request_refresh();
                }
                Err(AuthFailure::UnknownKeyId(kid.to_owned()))
            }
            None => Err(AuthFailure::BadSignature),
        }
    }

    /// Reads topic permissions from the claim `name` instead of [`DEFAULT_CLAIM`].
    pub fn with_permissions_claim(mut self, name: &str) -> JwtVerifier {
        name.clone_into(&mut self.permissions_claim);
        self
    }

    /// Verifies `token` as [`verify_identity`](Self::verify_identity) does; returns `sub`.
    pub fn verify(&self, token: &str, now_unix_s: u64) -> Result<Option<String>, AuthFailure> {
        self.verify_identity(token, now_unix_s)
            .map(|identity| identity.subject)
    }

    /// Verifies `token` at `now_unix_s`: the header (alg exactly HS256, no `crit`), the
    /// signature (constant time), then `exp`, `nbf`, `iss` and `aud`. Returns `sub`, the
    /// permissions claim and `exp`.
    pub fn verify_identity(&self, token: &str, now_unix_s: u64) -> Result<Identity, AuthFailure> {
        if token.len() > MAX_TOKEN_BYTES {
            return Err(too_long());
        }
        let mut parts = token.split('.');
        let (Some(header), Some(payload), Some(signature), None) =
            (parts.next(), parts.next(), parts.next(), parts.next())
        else {
            return Err(malformed(
                "not a JWT: expected three base64url parts separated by dots",
            ));
        };
        let header: serde_json::Value = decode_json(header)
            .ok_or_else(|| malformed("the JWT header is not base64url-encoded JSON"))?;
        // The algorithm decides the key: HS256 only ever with the secret, the others only with
        // a key of the JWKS pinned to them (so a public key is never an HMAC secret).
        let alg = match header.get("alg") {
            Some(serde_json::Value::String(alg)) => alg.as_str(),
            _ => return Err(malformed("the JWT header has no \"alg\"")),
        };
        let asymmetric = jwks::asymmetric_alg(alg).filter(|_| self.has_keys());
        let mac = match (&self.mac, asymmetric) {
            (Some(mac), _) if alg == "HS256" => Some(mac),
            (_, Some(_)) => None,
            _ => return Err(AuthFailure::UnsupportedAlgorithm(alg.to_owned())),
        };
        if header.get("crit").is_some() {
            return Err(malformed(
                "the JWT header lists critical extensions (\"crit\"), which are not supported",
            ));
        }
        let signed = &token.as_bytes()[..header_and_payload_len(token)];
        match (mac, asymmetric) {
            (Some(mac), _) => {
                let signature = URL_SAFE_NO_PAD
                    .decode(signature)
                    .map_err(|_| malformed("the JWT signature is not base64url"))?;
                let mut mac = mac.clone();
                mac.update(signed);
                mac.verify_slice(&signature)
                    .map_err(|_| AuthFailure::BadSignature)?;
            }
            (None, Some(alg)) => {
                let kid = match header.get("kid") {
                    None => None,
                    Some(serde_json::Value::String(kid)) => Some(kid.as_str()),
                    Some(_) => return Err(malformed("the JWT header's \"kid\" is not a string")),
                };
                self.verify_asymmetric(alg, kid, signed, signature)?;
            }
            (None, None) => unreachable!("refused above"),
        }

        let claims: serde_json::Value = decode_json(payload)
            .ok_or_else(|| malformed("the JWT payload is not base64url-encoded JSON"))?;
        let serde_json::Value::Object(claims) = claims else {
            return Err(malformed("the JWT payload is not a JSON object"));
        };
        let numeric_date = |name: &'static str| -> Result<Option<u64>, AuthFailure> {
            match claims.get(name) {
                None => Ok(None),
                // NumericDate may have a fraction; `as` saturates (negative → 0).
                Some(serde_json::Value::Number(n)) => Ok(n.as_f64().map(|t| t.floor() as u64)),
                Some(_) => Err(AuthFailure::Malformed(
                    format!("the JWT claim \"{name}\" is not a number").into(),
                )),
            }
        };
        let exp = numeric_date("exp")?;
        if let Some(exp) = exp {
            if now_unix_s >= exp.saturating_add(CLOCK_SKEW_S) {
                return Err(AuthFailure::Expired {
                    exp,
                    now: now_unix_s,
                });
            }
        }
        if let Some(nbf) = numeric_date("nbf")? {
            if now_unix_s.saturating_add(CLOCK_SKEW_S) < nbf {
                return Err(AuthFailure::NotYetValid {
                    nbf,
                    now: now_unix_s,
                });
            }
        }
        if let Some(expected) = &self.issuer {
            if claims.get("iss").and_then(|iss| iss.as_str()) != Some(expected) {
                return Err(AuthFailure::WrongIssuer {
                    expected: expected.clone(),
                });
            }
        }
        if let Some(expected) = &self.audience {
            let named = match claims.get("aud") {
                Some(serde_json::Value::String(aud)) => aud == expected,
                Some(serde_json::Value::Array(auds)) => {
                    auds.iter().any(|aud| aud.as_str() == Some(expected))
                }
                _ => false,
            };
            if !named {
                return Err(AuthFailure::WrongAudience {
                    expected: expected.clone(),
                });
            }
        }
        let subject = match claims.get("sub") {
            None => None,
            Some(serde_json::Value::String(sub)) => Some(sub.clone()),
            Some(_) => return Err(malformed("the JWT claim \"sub\" is not a string")),
        };
        let permissions = match claims.get(&self.permissions_claim) {
            None => None,
            Some(claim) => Some(Arc::new(TopicPermissions::from_claim(claim).map_err(
                |e| {
                    AuthFailure::Malformed(
                        format!(
                            "the JWT claim {:?}: {e}",
                            one_line(&self.permissions_claim, MAX_QUOTED_BYTES)
                        )
                        .into(),
                    )
                },
            )?)),
        };
        Ok(Identity {
            subject,
            permissions,
            expires_unix_s: exp,
        })
    }
}

/// Bytes of `header.payload`, the signed part of a three-part token.
fn header_and_payload_len(token: &str) -> usize {
    token.rfind('.').expect("three parts were found")
}

fn decode_json(part: &str) -> Option<serde_json::Value> {
    let bytes = URL_SAFE_NO_PAD.decode(part).ok()?;
    serde_json::from_slice(&bytes).ok()
}

/// How a server authenticates handshakes.
#[derive(Clone, Debug, Default)]
pub enum Authenticator {
    /// Everyone is let in.
    #[default]
    None,
    Tokens(StaticTokens),
    Jwt(JwtVerifier),
}

impl Authenticator {
    /// The subject of the request's credentials, or why they were refused.
    pub fn authenticate(
        &self,
        authorization: Option<&str>,
        query: Option<&str>,
        now_unix_s: u64,
    ) -> Result<Option<String>, AuthFailure> {
        self.identify(authorization, query, now_unix_s)
            .map(|identity| identity.subject)
    }

    /// The identity (subject, permissions, expiry) of the request's credentials, or why they
    /// were refused.
    pub fn identify(
        &self,
        authorization: Option<&str>,
        query: Option<&str>,
        now_unix_s: u64,
    ) -> Result<Identity, AuthFailure> {
        if let Authenticator::None = self {
            return Ok(Identity::default());
        }
        let token = extract_token(authorization, query)?.ok_or(AuthFailure::Missing)?;
        match self {
            Authenticator::None => unreachable!("handled above"),
            Authenticator::Tokens(tokens) => tokens.identify(&token),
            Authenticator::Jwt(jwt) => jwt.verify_identity(&token, now_unix_s),
        }
    }
}

/// Builds an HS256 JWT; for tests and tools (`ringws doctor --token`).
pub fn sign_hs256(secret: &[u8], claims: &serde_json::Value) -> String {
    sign_with_header(
        secret,
        &serde_json::json!({"alg": "HS256", "typ": "JWT"}),
        claims,
    )
}

/// Builds a JWT with any header, signed with HS256 whatever the header says (for tests).
pub fn sign_with_header(
    secret: &[u8],
    header: &serde_json::Value,
    claims: &serde_json::Value,
) -> String {
    let signing_input = format!(
        "{}.{}",
        URL_SAFE_NO_PAD.encode(header.to_string()),
        URL_SAFE_NO_PAD.encode(claims.to_string())
    );
    let mut mac = Hmac::<Sha256>::new_from_slice(secret).expect("any key length");
    mac.update(signing_input.as_bytes());
    let signature = URL_SAFE_NO_PAD.encode(mac.finalize().into_bytes());
    format!("{signing_input}.{signature}")
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    const SECRET: &[u8] = b"0123456789abcdef0123456789abcdef-test";
    const NOW: u64 = 1_700_000_000;

    fn verifier() -> JwtVerifier {
        JwtVerifier::new(SECRET, None, None).unwrap()
    }

    /// A token built by hand from hmac + sha2, independent of `sign_hs256`.
    fn hand_made(header: &str, payload: &str, secret: &[u8]) -> String {
        let input = format!(
            "{}.{}",
            URL_SAFE_NO_PAD.encode(header),
            URL_SAFE_NO_PAD.encode(payload)
        );
        let mut mac = Hmac::<Sha256>::new_from_slice(secret).unwrap();
        mac.update(input.as_bytes());
        format!(
            "{input}.{}",
            URL_SAFE_NO_PAD.encode(mac.finalize().into_bytes())
        )
    }

    #[test]
    fn rfc_7515_style_token_verifies_and_yields_the_subject() {
        let token = hand_made(
            r#"{"typ":"JWT","alg":"HS256"}"#,
            &format!(r#"{{"sub":"alice","exp":{},"iat":{NOW}}}"#, NOW + 60),
            SECRET,
        );
        assert_eq!(verifier().verify(&token, NOW), Ok(Some("alice".into())));
        assert_eq!(
            sign_hs256(SECRET, &json!({"sub": "bob"}))
                .split('.')
                .count(),
            3
        );
        assert_eq!(
            verifier().verify(&sign_hs256(SECRET, &json!({"sub": "bob"})), NOW),
            Ok(Some("bob".into()))
        );
        assert_eq!(
            verifier().verify(&sign_hs256(SECRET, &json!({})), NOW),
            Ok(None)
        );
    }

    #[test]
    fn bad_signature() {
        let token = sign_hs256(b"another secret of at least thirty-two bytes", &json!({}));
        assert_eq!(
            verifier().verify(&token, NOW),
            Err(AuthFailure::BadSignature)
        );
        // A changed payload with the old signature.
        let good = sign_hs256(SECRET, &json!({"sub": "alice"}));
        let parts: Vec<&str> = good.split('.').collect();
        let forged = format!(
            "{}.{}.{}",
            parts[0],
            URL_SAFE_NO_PAD.encode(r#"{"sub":"admin"}"#),
            parts[2]
        );
        assert_eq!(
            verifier().verify(&forged, NOW),
            Err(AuthFailure::BadSignature)
        );
        // A truncated signature.
        let cut = &good[..good.len() - 3];
        assert_eq!(verifier().verify(cut, NOW), Err(AuthFailure::BadSignature));
        let empty_sig = format!("{}.{}.", parts[0], parts[1]);
        assert_eq!(
            verifier().verify(&empty_sig, NOW),
            Err(AuthFailure::BadSignature)
        );
    }

    #[test]
    fn alg_none_and_other_algorithms_are_refused() {
        let header = URL_SAFE_NO_PAD.encode(r#"{"alg":"none","typ":"JWT"}"#);
        let payload = URL_SAFE_NO_PAD.encode(r#"{"sub":"admin"}"#);
        for token in [
            format!("{header}.{payload}."),
            format!("{header}.{payload}"),
        ] {
            let failure = verifier().verify(&token, NOW).unwrap_err();
            assert!(
                matches!(
                    &failure,
                    AuthFailure::UnsupportedAlgorithm(alg) if alg == "none"
                ) || matches!(failure, AuthFailure::Malformed(_)),
                "{failure:?}"
            );
        }
        assert_eq!(
            verifier().verify(&format!("{header}.{payload}."), NOW),
            Err(AuthFailure::UnsupportedAlgorithm("none".into()))
        );
        for alg in [
            "HS384", "HS512", "RS256", "ES256", "hs256", "HS256 ", "None", "",
        ] {
            let token = sign_with_header(SECRET, &json!({"alg": alg}), &json!({}));
            assert_eq!(
                verifier().verify(&token, NOW),
                Err(AuthFailure::UnsupportedAlgorithm(alg.into())),
                "{alg:?}"
            );
        }
        for header in [
            json!({}),
            json!({"alg": 256}),
            json!({"alg": null}),
            json!([1]),
        ] {
            let token = sign_with_header(SECRET, &header, &json!({}));
            assert!(
                matches!(
                    verifier().verify(&token, NOW),
                    Err(AuthFailure::Malformed(_))
                ),
                "{header}"
            );
        }
        let crit = sign_with_header(
            SECRET,
            &json!({"alg": "HS256", "crit": ["b64"]}),
            &json!({}),
        );
        assert!(matches!(
            verifier().verify(&crit, NOW),
            Err(AuthFailure::Malformed(_))
        ));
        let message = AuthFailure::UnsupportedAlgorithm("none".into()).detail();
        assert!(
            message.starts_with("the JWT algorithm \"none\" is not accepted: this server"),
            "{message}"
        );
    }

    #[test]
    fn expiry_with_clock_skew() {
        let token = |exp: u64| sign_hs256(SECRET, &json!({"exp": exp}));
        assert_eq!(verifier().verify(&token(NOW + 1), NOW), Ok(None));
        assert_eq!(
            verifier().verify(&token(NOW - 29), NOW),
            Ok(None),
            "within skew"
        );
        assert_eq!(
            verifier().verify(&token(NOW - 30), NOW),
            Err(AuthFailure::Expired {
                exp: NOW - 30,
                now: NOW
            })
        );
        let fractional = sign_hs256(SECRET, &json!({"exp": (NOW - 100) as f64 + 0.5}));
        assert!(matches!(
            verifier().verify(&fractional, NOW),
            Err(AuthFailure::Expired { .. })
        ));
        let detail = AuthFailure::Expired {
            exp: 1_700_000_000,
            now: 1_700_000_100,
        }
        .detail();
        assert_eq!(
            detail,
            "the token expired at 2023-11-14T22:13:20Z (server time 2023-11-14T22:15:00Z, 30 s \
             clock skew allowed): get a new token"
        );
        let far = AuthFailure::Expired {
            exp: u64::MAX,
            now: 0,
        }
        .detail();
        assert!(far.contains("unix time 18446744073709551615"), "{far}");
    }

    #[test]
    fn not_before_with_clock_skew() {
        let token = |nbf: u64| sign_hs256(SECRET, &json!({"nbf": nbf}));
        assert_eq!(verifier().verify(&token(NOW), NOW), Ok(None));
        assert_eq!(
            verifier().verify(&token(NOW + 30), NOW),
            Ok(None),
            "within skew"
        );
        assert_eq!(
            verifier().verify(&token(NOW + 31), NOW),
            Err(AuthFailure::NotYetValid {
                nbf: NOW + 31,
                now: NOW
            })
        );
        assert!(AuthFailure::NotYetValid { nbf: 0, now: 0 }
            .detail()
            .starts_with("the token is not valid before 1970-01-01T00:00:00Z"));
    }

    #[test]
    fn non_numeric_dates_are_malformed() {
        for claims in [
            json!({"exp": "tomorrow"}),
            json!({"nbf": [1]}),
            json!({"sub": 7}),
        ] {
            let token = sign_hs256(SECRET, &claims);
            assert!(
                matches!(
                    verifier().verify(&token, NOW),
                    Err(AuthFailure::Malformed(_))
                ),
                "{claims}"
            );
        }
        let negative = sign_hs256(SECRET, &json!({"exp": -5}));
        assert!(matches!(
            verifier().verify(&negative, NOW),
            Err(AuthFailure::Expired { exp: 0, .. })
        ));
    }

    #[test]
    fn audience_and_issuer_when_configured() {
        let strict = JwtVerifier::new(
            SECRET,
            Some("chat".into()),
            Some("https://idp.example".into()),
        )
        .unwrap();
        let ok = sign_hs256(
            SECRET,
            &json!({"aud": "chat", "iss": "https://idp.example", "sub": "u1"}),
        );
        assert_eq!(strict.verify(&ok, NOW), Ok(Some("u1".into())));
        let in_array = sign_hs256(
            SECRET,
            &json!({"aud": ["billing", "chat"], "iss": "https://idp.example"}),
        );
        assert_eq!(strict.verify(&in_array, NOW), Ok(None));
        for claims in [
            json!({"aud": "billing", "iss": "https://idp.example"}),
            json!({"aud": ["billing"], "iss": "https://idp.example"}),
            json!({"iss": "https://idp.example"}),
            json!({"aud": 5, "iss": "https://idp.example"}),
        ] {
            assert_eq!(
                strict.verify(&sign_hs256(SECRET, &claims), NOW),
                Err(AuthFailure::WrongAudience {
                    expected: "chat".into()
                }),
                "{claims}"
            );
        }
        for claims in [
            json!({"aud": "chat", "iss": "https://evil"}),
            json!({"aud": "chat"}),
        ] {
            assert_eq!(
                strict.verify(&sign_hs256(SECRET, &claims), NOW),
                Err(AuthFailure::WrongIssuer {
                    expected: "https://idp.example".into()
                }),
                "{claims}"
            );
        }
        // Unset: not checked.
        assert_eq!(
            verifier().verify(&sign_hs256(SECRET, &json!({"aud": "x", "iss": "y"})), NOW),
            Ok(None)
        );
    }

    #[test]
    fn malformed_tokens() {
        for token in [
            "",
            "abc",
            "a.b",
            "a.b.c.d",
            "!!!.e30.sig",
            "e30.e30.!!!",
            "eyJhbGciOiJIUzI1NiJ9.e30.!!!",
        ] {
            let failure = verifier().verify(token, NOW).unwrap_err();
            assert!(
                matches!(failure, AuthFailure::Malformed(_)),
                "{token:?}: {failure:?}"
            );
        }
        let long = "a".repeat(MAX_TOKEN_BYTES + 1);
        assert!(matches!(
            verifier().verify(&long, NOW),
            Err(AuthFailure::Malformed(_))
        ));
        // The claims are not even decoded before the signature verifies.
        assert_eq!(
            verifier().verify("eyJhbGciOiJIUzI1NiJ9.!!!.abc", NOW),
            Err(AuthFailure::BadSignature)
        );
        // A signed payload that is not an object.
        let array = sign_hs256(SECRET, &json!([1, 2]));
        assert!(matches!(
            verifier().verify(&array, NOW),
            Err(AuthFailure::Malformed(_))
        ));
    }

    #[test]
    fn short_secrets_are_refused() {
        assert_eq!(
            JwtVerifier::new(b"short", None, None).unwrap_err(),
            ShortSecret { len: 5 }
        );
        assert!(JwtVerifier::new(&[7; MIN_SECRET_BYTES], None, None).is_ok());
        let debug = format!("{:?}", verifier());
        assert!(!debug.contains("0123456789abcdef"), "{debug}");
    }

    #[test]
    fn token_from_header_or_query() {
        assert_eq!(extract_token(None, None), Ok(None));
        assert_eq!(extract_token(None, Some("room=1")), Ok(None));
        assert_eq!(
            extract_token(Some("Bearer abc"), None),
            Ok(Some(Cow::Borrowed("abc")))
        );
        assert_eq!(
            extract_token(Some("bearer   abc "), None),
            Ok(Some(Cow::Borrowed("abc")))
        );
        assert_eq!(
            extract_token(Some("Bearer header"), Some("token=query")),
            Ok(Some(Cow::Borrowed("header"))),
            "the header wins"
        );
        assert_eq!(
            extract_token(None, Some("room=1&token=abc&x=y")),
            Ok(Some(Cow::Borrowed("abc")))
        );
        assert_eq!(
            extract_token(None, Some("token=a%2Bb%3D%3d")),
            Ok(Some(Cow::Owned("a+b==".into())))
        );
        assert_eq!(
            extract_token(None, Some("token=a+b")),
            Ok(Some(Cow::Borrowed("a+b"))),
            "+ is not a space"
        );
        assert_eq!(
            extract_token(None, Some("mytoken=x&token=y")),
            Ok(Some(Cow::Borrowed("y")))
        );
        for (authorization, query) in [
            (Some("Basic dXNlcjpwYXNz"), None),
            (Some("Bearer"), None),
            (Some("Bearer "), None),
            (Some("Bearer a b"), None),
            (None, Some("token=")),
            (None, Some("token=%zz")),
            (None, Some("token=%4")),
            (None, Some("token=%ff%fe")),
            (None, Some("token=a%20b")),
            (None, Some("token=a%0Ab")),
        ] {
            let result = extract_token(authorization, query);
            assert!(
                matches!(result, Err(AuthFailure::Malformed(_))),
                "{authorization:?} {query:?}: {result:?}"
            );
        }
    }

    #[test]
    fn query_parsing_is_bounded() {
        let mut query: String = (0..MAX_QUERY_PARAMS).map(|i| format!("p{i}=x&")).collect();
        query.push_str("token=late");
        assert_eq!(extract_token(None, Some(&query)), Ok(None));
        let huge = format!("token={}", "%41".repeat(MAX_TOKEN_BYTES + 1));
        assert!(matches!(
            extract_token(None, Some(&huge)),
            Err(AuthFailure::Malformed(_))
        ));
    }

    #[test]
    fn token_file_parsing() {
        let tokens = StaticTokens::parse(
            "# accepted tokens\n\
             \n\
             plain-token-1\n\
             alice: s3cr3t-alice \n\
             bob:s3cr3t:with:colons\r\n\
             \t  spaced-token  \n",
        )
        .unwrap();
        assert_eq!(tokens.len(), 4);
        assert_eq!(tokens.verify("plain-token-1"), Ok(None));
        assert_eq!(tokens.verify("s3cr3t-alice"), Ok(Some("alice".into())));
        assert_eq!(tokens.verify("s3cr3t:with:colons"), Ok(Some("bob".into())));
        assert_eq!(tokens.verify("spaced-token"), Ok(None));
        assert_eq!(tokens.verify("alice"), Err(AuthFailure::UnknownToken));
        assert_eq!(
            tokens.verify("alice: s3cr3t-alice"),
            Err(AuthFailure::UnknownToken)
        );
        assert_eq!(
            tokens.verify("plain-token-"),
            Err(AuthFailure::UnknownToken)
        );
        assert_eq!(
            tokens.verify("# accepted tokens"),
            Err(AuthFailure::UnknownToken)
        );
        let debug = format!("{tokens:?}");
        assert!(!debug.contains("s3cr3t"), "{debug}");
    }

    #[test]
    fn token_file_problems_name_the_line() {
        let line = |text: &str| match StaticTokens::parse(text) {
            Err(TokensFileError::Line { line, problem }) => (line, problem),
            other => panic!("{text:?}: {other:?}"),
        };
        assert_eq!(line("a\n:tok\n"), (2, TokenLineError::EmptyName));
        assert_eq!(line("a\nname:\n"), (2, TokenLineError::EmptyToken));
        assert_eq!(line("tok en\n"), (1, TokenLineError::BadCharacters));
        assert_eq!(line("x\ny\nx\n"), (3, TokenLineError::Duplicate(1)));
        assert_eq!(line("n1:x\nn2:x\n"), (2, TokenLineError::Duplicate(1)));
        let long = "t".repeat(MAX_TOKEN_BYTES + 1);
        assert_eq!(line(&long), (1, TokenLineError::TooLong));
        assert_eq!(
            StaticTokens::parse("# only comments\n\n").unwrap_err(),
            TokensFileError::Empty
        );
        assert_eq!(StaticTokens::parse("").unwrap_err(), TokensFileError::Empty);
    }

    #[test]
    fn identities_carry_permissions_and_expiry() {
        let claims = json!({
            "sub": "u42", "exp": NOW + 60,
            "topics": {"subscribe": ["user.42.#"], "publish": []}
        });
        let identity = verifier()
            .verify_identity(&sign_hs256(SECRET, &claims), NOW)
            .unwrap();
        assert_eq!(identity.subject.as_deref(), Some("u42"));
        assert_eq!(identity.expires_unix_s, Some(NOW + 60));
        let permissions = identity.permissions.unwrap();
        assert!(permissions.allows(super::super::Action::Subscribe, "user.42.inbox"));
        assert!(!permissions.allows(super::super::Action::Publish, "user.42.inbox"));
        // Another claim name: `topics` is then an ordinary claim.
        let renamed = verifier().with_permissions_claim("perms");
        let identity = renamed
            .verify_identity(&sign_hs256(SECRET, &claims), NOW)
            .unwrap();
        assert_eq!(identity.permissions, None);
        let bad = sign_hs256(SECRET, &json!({"topics": ["a"]}));
        let failure = verifier().verify_identity(&bad, NOW).unwrap_err();
        assert!(
            failure
                .detail()
                .contains("the JWT claim \"topics\": the topic permissions are not"),
            "{}",
            failure.detail()
        );

        let tokens = StaticTokens::parse(
            "a: tok-a subscribe=news.*,x:y publish=\n\
             tok-b\n\
             c:tok-c  publish=chat.#\n",
        )
        .unwrap();
        let a = tokens.identify("tok-a").unwrap();
        assert_eq!(a.subject.as_deref(), Some("a"));
        assert_eq!(
            a.permissions.as_ref().unwrap().to_string(),
            "subscribe: news.*, x:y; publish: no topic"
        );
        assert!(
            Arc::ptr_eq(
                a.permissions.as_ref().unwrap(),
                tokens
                    .identify("tok-a")
                    .unwrap()
                    .permissions
                    .as_ref()
                    .unwrap()
            ),
            "one parsed set per line, shared by its connections"
        );
        assert_eq!(tokens.identify("tok-b").unwrap().permissions, None);
        assert_eq!(
            tokens
                .identify("tok-c")
                .unwrap()
                .permissions
                .unwrap()
                .to_string(),
            "subscribe: no topic; publish: chat.#"
        );
        assert!(matches!(
            StaticTokens::parse("tok subscribe=a* \n"),
            Err(TokensFileError::Line {
                line: 1,
                problem: TokenLineError::Permissions(_)
            })
        ));
        assert!(matches!(
            StaticTokens::parse("tok other\n"),
            Err(TokensFileError::Line {
                line: 1,
                problem: TokenLineError::BadCharacters
            })
        ));
    }

    #[test]
    fn authenticator_modes() {
        let none = Authenticator::None;
        assert_eq!(none.authenticate(None, None, NOW), Ok(None));
        assert_eq!(none.authenticate(Some("garbage"), None, NOW), Ok(None));

        let tokens = Authenticator::Tokens(StaticTokens::parse("carol:tok-c\n").unwrap());
        assert_eq!(
            tokens.authenticate(None, None, NOW),
            Err(AuthFailure::Missing)
        );
        assert_eq!(
            tokens.authenticate(Some("Bearer tok-c"), None, NOW),
            Ok(Some("carol".into()))
        );
        assert_eq!(
            tokens.authenticate(None, Some("token=tok-c"), NOW),
            Ok(Some("carol".into()))
        );
        assert_eq!(
            tokens.authenticate(None, Some("token=tok-d"), NOW),
            Err(AuthFailure::UnknownToken)
        );

        let jwt = Authenticator::Jwt(verifier());
        let token = sign_hs256(SECRET, &json!({"sub": "dave", "exp": NOW + 10}));
        assert_eq!(
            jwt.authenticate(Some(&format!("Bearer {token}")), None, NOW),
            Ok(Some("dave".into()))
        );
        assert_eq!(
            jwt.authenticate(None, Some(&format!("token={token}")), NOW),
            Ok(Some("dave".into()))
        );
        assert_eq!(jwt.authenticate(None, None, NOW), Err(AuthFailure::Missing));
    }

    #[test]
    fn every_failure_has_a_distinct_detail_and_never_the_secret_or_token() {
        let token = sign_hs256(SECRET, &json!({"sub": "x"}));
        let failures = [
            AuthFailure::Missing,
            malformed("the token is empty"),
            AuthFailure::UnsupportedAlgorithm("none".into()),
            AuthFailure::BadSignature,
            AuthFailure::Expired {
                exp: NOW,
                now: NOW + 60,
            },
            AuthFailure::NotYetValid {
                nbf: NOW + 60,
                now: NOW,
            },
            AuthFailure::WrongAudience {
                expected: "a".into(),
            },
            AuthFailure::WrongIssuer {
                expected: "i".into(),
            },
            AuthFailure::UnknownToken,
            AuthFailure::UnknownKeyId("k".into()),
            AuthFailure::AlgorithmNotAllowedForKey {
                alg: "PS256".into(),
                kid: "k".into(),
            },
        ];
        let mut details = std::collections::HashSet::new();
        let mut descriptions = std::collections::HashSet::new();
        for failure in &failures {
            let refusal = failure.to_refusal();
            assert_eq!(refusal.reason.status(), 401);
            let body = refusal.message();
            assert!(!body.contains(std::str::from_utf8(SECRET).unwrap()));
            assert!(!body.contains(&token));
            assert!(details.insert(failure.detail()), "{failure:?}");
            assert!(descriptions.insert(failure.description()), "{failure:?}");
            let (_, challenge) = refusal.headers().unwrap();
            if *failure == AuthFailure::Missing {
                assert_eq!(challenge, "Bearer realm=\"ringws\"");
            } else {
                assert!(
                    challenge.starts_with("Bearer realm=\"ringws\", error=\"invalid_token\""),
                    "{challenge}"
                );
            }
        }
    }
}
