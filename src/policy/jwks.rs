//! Public keys for asymmetric JWTs (RS256, PS256, ES256, EdDSA): a JSON Web Key Set (RFC 7517)
//! from `jwt_jwks_file` and/or `jwt_jwks_url`.
//!
//! Signatures are checked by the `jsonwebtoken` crate (on `ring`, which rustls already brings);
//! only its key parsing and `crypto::verify` are used, so the claims are checked by
//! [`super::auth`] the same way for every algorithm.
//!
//! Each key is pinned to the algorithms its JWK allows: its `alg` when it has one, else the one
//! family its `kty`/`crv` means (RSA: RS256 or PS256; EC P-256: ES256; OKP Ed25519: EdDSA). A
//! token naming another algorithm for that key is refused, so a public key is never used as an
//! HMAC secret (HS256 is only ever checked with `jwt_secret_file`).
//!
//! The URL's set is fetched by one background thread ([`RemoteKeys::spawn`]), never by a reactor
//! thread: a token with an unknown `kid` is refused and asks for a refresh, which happens at most
//! once per `jwt_jwks_min_refresh_interval`; the set is also refreshed every
//! `jwt_jwks_refresh_interval`. A failed fetch keeps the last good set, is counted and logged.

use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Condvar, Mutex, RwLock};
use std::time::{Duration, Instant};

use jsonwebtoken::jwk::{AlgorithmParameters, EllipticCurve, Jwk, KeyAlgorithm, PublicKeyUse};
use jsonwebtoken::{Algorithm, DecodingKey};

/// Largest key set read from a file or a URL.
pub const MAX_JWKS_BYTES: usize = 1 << 20;
/// Most keys kept from one set; a token without `kid` is tried against each key of its
/// algorithm, so this bounds the work one token can cause.
pub const MAX_JWKS_KEYS: usize = 64;
/// Keys of its algorithm a token without `kid` is tried against, per set: each try is a
/// signature check on a reactor thread (an RSA or EdDSA one costs 0.1-0.5 ms), so a stream of
/// kid-less tokens must not cost one per key of a large set. Identity providers set `kid`.
pub const MAX_KEYS_TRIED_WITHOUT_KID: usize = 4;
/// How long one fetch of `jwt_jwks_url` may take (connect, request and body).
pub const FETCH_TIMEOUT: Duration = Duration::from_secs(10);

/// The asymmetric algorithms accepted, as the `alg` header writes them.
pub const ASYMMETRIC_ALGS: [&str; 4] = ["RS256", "PS256", "ES256", "EdDSA"];

/// One verifying key and the algorithms it may be used with.
pub struct VerifyingKey {
    kid: Option<String>,
    algs: &'static [Algorithm],
    key: DecodingKey,
}

impl std::fmt::Debug for VerifyingKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{:?} {:?}", self.kid, self.algs)
    }
}

/// What looking a token's key up found.
#[derive(Debug)]
pub enum Lookup<'a> {
    /// The keys to try (one with a `kid`; those of the algorithm without).
    Keys(Vec<&'a VerifyingKey>),
    /// No key has the token's `kid`.
    UnknownKid,
    /// The key exists, and is pinned to other algorithms.
    AlgorithmNotAllowed,
}

/// A parsed key set.
#[derive(Debug, Default)]
pub struct KeySet {
    keys: Vec<VerifyingKey>,
}

/// Why a key set was refused as a whole.
#[derive(Debug, thiserror::Error)]
pub enum JwksError {
    #[error("not a JSON Web Key Set: {0} (expected {{\"keys\":[...]}})")]
    NotAJwks(String),
    #[error("no usable signing key (RS256, PS256, ES256 or EdDSA) in it{}", skipped_text(.0))]
    NoUsableKey(Vec<String>),
    #[error("larger than {} KiB", MAX_JWKS_BYTES >> 10)]
    TooLarge,
    #[error("{0}")]
    Read(String),
}

fn skipped_text(skipped: &[String]) -> String {
    if skipped.is_empty() {
        String::new()
    } else {
        format!(" (skipped: {})", skipped.join("; "))
    }
}

impl KeySet {
    /// Parses a JWKS. Keys that are not for signatures, or of other algorithms, are skipped (the
    /// second value says which and why); a set with no usable key is refused.
    pub fn parse(bytes: &[u8]) -> Result<(KeySet, Vec<String>), JwksError> {
        if bytes.len() > MAX_JWKS_BYTES {
            return Err(JwksError::TooLarge);
        }
        let value: serde_json::Value =
            serde_json::from_slice(bytes).map_err(|e| JwksError::NotAJwks(e.to_string()))?;
        let Some(serde_json::Value::Array(items)) = value.get("keys") else {
            return Err(JwksError::NotAJwks("no \"keys\" list".into()));
        };
        let mut set = KeySet::default();
        let mut skipped = Vec::new();
        for (i, item) in items.iter().enumerate() {
            let name = item
                .get("kid")
                .and_then(|k| k.as_str())
                .map_or_else(|| format!("key {i}"), |kid| format!("{kid:?}"));
            if set.keys.len() == MAX_JWKS_KEYS {
                skipped.push(format!("{name}: over {MAX_JWKS_KEYS} keys"));
                continue;
            }
            match verifying_key(item) {
                Ok(key) if key.kid.is_some() && set.keys.iter().any(|k| k.kid == key.kid) => {
                    skipped.push(format!(
                        "{name}: a second key with this kid (the first is used)"
                    ));
                }
                Ok(key) => set.keys.push(key),
                Err(why) => skipped.push(format!("{name}: {why}")),
            }
        }
        if set.keys.is_empty() {
            return Err(JwksError::NoUsableKey(skipped));
        }
        Ok((set, skipped))
    }

    pub fn len(&self) -> usize {
        self.keys.len()
    }

    pub fn is_empty(&self) -> bool {
        self.keys.is_empty()
    }

    /// The keys a token with `alg` and `kid` may be verified with.
    pub fn lookup(&self, alg: Algorithm, kid: Option<&str>) -> Lookup<'_> {
        match kid {
            Some(kid) => match self.keys.iter().find(|k| k.kid.as_deref() == Some(kid)) {
                None => Lookup::UnknownKid,
                Some(key) if !key.algs.contains(&alg) => Lookup::AlgorithmNotAllowed,
                Some(key) => Lookup::Keys(vec![key]),
            },
            None => Lookup::Keys(
                self.keys
                    .iter()
                    .filter(|k| k.algs.contains(&alg))
                    .take(MAX_KEYS_TRIED_WITHOUT_KID)
                    .collect(),
            ),
        }
    }
}

impl VerifyingKey {
    /// Does `signature` (base64url, as in the token) sign `message` with this key and `alg`?
    pub fn verifies(&self, alg: Algorithm, message: &[u8], signature: &str) -> bool {
        self.algs.contains(&alg)
            && jsonwebtoken::crypto::verify(signature, message, &self.key, alg).unwrap_or(false)
    }
}

/// The `alg` header value of an accepted asymmetric algorithm.
pub fn asymmetric_alg(name: &str) -> Option<Algorithm> {
    match name {
        "RS256" => Some(Algorithm::RS256),
        "PS256" => Some(Algorithm::PS256),
        "ES256" => Some(Algorithm::ES256),
        "EdDSA" => Some(Algorithm::EdDSA),
        _ => None,
    }
}

fn verifying_key(item: &serde_json::Value) -> Result<VerifyingKey, String> {
    let jwk: Jwk = serde_json::from_value(item.clone()).map_err(|e| e.to_string())?;
    if matches!(jwk.common.public_key_use, Some(PublicKeyUse::Encryption)) {
        return Err("an encryption key (\"use\": \"enc\")".into());
    }
    let family: &'static [Algorithm] = match &jwk.algorithm {
        AlgorithmParameters::RSA(_) => &[Algorithm::RS256, Algorithm::PS256],
        AlgorithmParameters::EllipticCurve(p) if p.curve == EllipticCurve::P256 => {
            &[Algorithm::ES256]
        }
        AlgorithmParameters::OctetKeyPair(p) if p.curve == EllipticCurve::Ed25519 => {
            &[Algorithm::EdDSA]
        }
        AlgorithmParameters::OctetKey(_) => {
            return Err("a symmetric key (\"kty\": \"oct\"): HS256 uses jwt_secret_file".into())
        }
        _ => return Err("a curve other than P-256 and Ed25519".into()),
    };
    let algs: &'static [Algorithm] = match jwk.common.key_algorithm {
        None => family,
        Some(KeyAlgorithm::RS256) => &[Algorithm::RS256],
        Some(KeyAlgorithm::PS256) => &[Algorithm::PS256],
        Some(KeyAlgorithm::ES256) => &[Algorithm::ES256],
        Some(KeyAlgorithm::EdDSA) => &[Algorithm::EdDSA],
        Some(other) => return Err(format!("algorithm {other:?} is not accepted")),
    };
    if !family.contains(&algs[0]) {
        return Err(format!(
            "its \"alg\" {:?} does not fit its key type",
            algs[0]
        ));
    }
    let key = DecodingKey::from_jwk(&jwk).map_err(|e| e.to_string())?;
    Ok(VerifyingKey {
        kid: jwk.common.key_id,
        algs,
        key,
    })
}

/// Reads and parses a JWKS file.
pub fn read_file(path: &Path) -> Result<(KeySet, Vec<String>), JwksError> {
    use std::io::Read as _;
    let file = std::fs::File::open(path).map_err(|e| JwksError::Read(e.to_string()))?;
    let mut bytes = Vec::new();
    file.take(MAX_JWKS_BYTES as u64 + 1)
        .read_to_end(&mut bytes)
        .map_err(|e| JwksError::Read(e.to_string()))?;
    KeySet::parse(&bytes)
}

/// The key set of `jwt_jwks_url`, refreshed by a background thread.
pub struct RemoteKeys {
    url: String,
    keys: RwLock<Arc<KeySet>>,
    wake: Mutex<WakeState>,
    woken: Condvar,
    min_refresh: Duration,
    refresh: Duration,
    fetches_ok: AtomicU64,
    fetches_failed: AtomicU64,
}

#[derive(Default)]
struct WakeState {
    /// A token named an unknown `kid`.
    requested: bool,
}

impl std::fmt::Debug for RemoteKeys {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "RemoteKeys({})", self.url)
    }
}

impl RemoteKeys {
    pub fn new(url: String, min_refresh: Duration, refresh: Duration) -> RemoteKeys {
        RemoteKeys {
            url,
            keys: RwLock::new(Arc::default()),
            wake: Mutex::new(WakeState::default()),
            woken: Condvar::new(),
            min_refresh,
            refresh,
            fetches_ok: AtomicU64::new(0),
            fetches_failed: AtomicU64::new(0),
        }
    }

    pub fn url(&self) -> &str {
        &self.url
    }

    /// The last good set (empty before the first good fetch).
    pub fn keys(&self) -> Arc<KeySet> {
        self.keys.read().map(|k| k.clone()).unwrap_or_default()
    }

    /// Asks the background thread for a fetch; never blocks (called on reactor threads).
    pub fn request_refresh(&self) {
        if let Ok(mut state) = self.wake.try_lock() {
            state.requested = true;
            self.woken.notify_one();
        }
        // Locked: the fetcher holds it, and looks at the request when it next waits, or has
        // just been asked by another thread.
    }

    pub fn fetches(&self, ok: bool) -> u64 {
        if ok {
            self.fetches_ok.load(Ordering::Relaxed)
        } else {
            self.fetches_failed.load(Ordering::Relaxed)
        }
    }

    /// Fetches once now (blocking), then refreshes in a background thread for the life of the
    /// process. A failed first fetch does not stop the start: the identity provider may be down
    /// while ringws starts, and tokens are then refused until a fetch succeeds.
    pub fn spawn(self: &Arc<Self>) {
        self.fetch_once();
        let me = self.clone();
        let spawned = std::thread::Builder::new()
            .name("ringws-jwks".into())
            .spawn(move || me.run());
        if let Err(e) = spawned {
            tracing::warn!("cannot start the JWKS refresh thread: {e}; keys stay as fetched");
        }
    }

    fn run(&self) {
        let mut last_fetch = Instant::now();
        loop {
            let Ok(mut state) = self.wake.lock() else {
                return;
            };
            loop {
                let since = last_fetch.elapsed();
                if state.requested && since >= self.min_refresh {
                    break;
                }
                if since >= self.refresh {
                    break;
                }
                // Wake for the periodic refresh, or when an asked-for one is allowed.
                let until = if state.requested {
                    self.min_refresh
                } else {
                    self.refresh
                };
                let Ok((next, _)) = self.woken.wait_timeout(state, until - since) else {
                    return;
                };
                state = next;
            }
            state.requested = false;
            drop(state);
            last_fetch = Instant::now();
            self.fetch_once();
        }
    }

    fn fetch_once(&self) {
        match fetch(&self.url).and_then(|bytes| KeySet::parse(&bytes)) {
            Ok((set, skipped)) => {
                self.fetches_ok.fetch_add(1, Ordering::Relaxed);
                tracing::info!(
                    target: "ringws::auth",
                    url = %self.url,
                    keys = set.len(),
                    "JWKS fetched: {} signing keys{}",
                    set.len(),
                    skipped_text(&skipped)
                );
                if let Ok(mut keys) = self.keys.write() {
                    *keys = Arc::new(set);
                }
            }
            Err(e) => {
                self.fetches_failed.fetch_add(1, Ordering::Relaxed);
                tracing::warn!(
                    target: "ringws::auth",
                    url = %self.url,
                    "JWKS fetch failed: {e}; the last good key set stays in use"
                );
            }
        }
    }
}

/// Whether `url` may be fetched for signing keys: https://, or http:// to a loopback host.
pub fn url_is_acceptable(url: &str) -> bool {
    if url.starts_with("https://") {
        return true;
    }
    let Some(rest) = url.strip_prefix("http://") else {
        return false;
    };
    let authority = rest.split(['/', '?', '#']).next().unwrap_or("");
    let host = match authority.strip_prefix('[') {
        Some(v6) => v6.split(']').next().unwrap_or(""),
        None => authority.rsplit_once(':').map_or(authority, |(h, _)| h),
    };
    host.eq_ignore_ascii_case("localhost")
        || host
            .parse::<std::net::IpAddr>()
            .is_ok_and(|ip| ip.is_loopback())
}

fn fetch(url: &str) -> Result<Vec<u8>, JwksError> {
    use std::io::Read as _;
    // Over https, a redirect to http:// is refused (whoever is on the path could then serve
    // signing keys); a loopback http:// URL (tests, a local sidecar) is followed nowhere.
    let https = url.starts_with("https://");
    let agent = ureq::AgentBuilder::new()
        .timeout(FETCH_TIMEOUT)
        .https_only(https)
        .redirects(if https { 3 } else { 0 })
        .build();
    let response = agent
        .get(url)
        .set("Accept", "application/json")
        .call()
        .map_err(|e| JwksError::Read(e.to_string()))?;
    let mut bytes = Vec::new();
    response
        .into_reader()
        .take(MAX_JWKS_BYTES as u64 + 1)
        .read_to_end(&mut bytes)
        .map_err(|e| JwksError::Read(e.to_string()))?;
    Ok(bytes)
}

#[cfg(test)]
mod tests {
    use super::*;

    const JWKS1: &[u8] = include_bytes!("../../tests/fixtures/jwt/jwks1.json");
    const JWKS2: &[u8] = include_bytes!("../../tests/fixtures/jwt/jwks2.json");

    #[test]
    fn keys_are_pinned_and_encryption_keys_skipped() {
        let (set, skipped) = KeySet::parse(JWKS1).unwrap();
        assert_eq!(set.len(), 3);
        assert_eq!(skipped.len(), 1, "{skipped:?}");
        assert!(skipped[0].contains("rsa-enc"), "{skipped:?}");
        assert!(matches!(
            set.lookup(Algorithm::RS256, Some("rsa-1")),
            Lookup::Keys(k) if k.len() == 1
        ));
        // rsa-1 says alg RS256: PS256 with it is refused; ES256 with an RSA key too.
        assert!(matches!(
            set.lookup(Algorithm::PS256, Some("rsa-1")),
            Lookup::AlgorithmNotAllowed
        ));
        assert!(matches!(
            set.lookup(Algorithm::ES256, Some("rsa-1")),
            Lookup::AlgorithmNotAllowed
        ));
        assert!(matches!(
            set.lookup(Algorithm::RS256, Some("rsa-2")),
            Lookup::UnknownKid
        ));
        assert!(matches!(
            set.lookup(Algorithm::ES256, None),
            Lookup::Keys(k) if k.len() == 1
        ));
        let (rotated, _) = KeySet::parse(JWKS2).unwrap();
        assert!(matches!(
            rotated.lookup(Algorithm::PS256, Some("rsa-2-pss")),
            Lookup::Keys(_)
        ));
    }

    #[test]
    fn bad_sets_say_why() {
        for (text, needle) in [
            (&b"nope"[..], "not a JSON Web Key Set"),
            (b"{\"keys\":3}", "no \"keys\" list"),
            (b"{\"keys\":[]}", "no usable signing key"),
            (
                b"{\"keys\":[{\"kty\":\"oct\",\"k\":\"AAAA\",\"kid\":\"s\"}]}",
                "symmetric key",
            ),
            (
                b"{\"keys\":[{\"kty\":\"EC\",\"crv\":\"P-384\",\"x\":\"AA\",\"y\":\"AA\"}]}",
                "P-256",
            ),
        ] {
            let message = KeySet::parse(text).unwrap_err().to_string();
            assert!(message.contains(needle), "{message}");
        }
        let big = vec![b' '; MAX_JWKS_BYTES + 1];
        assert!(matches!(KeySet::parse(&big), Err(JwksError::TooLarge)));
    }

    #[test]
    fn only_https_or_loopback_http_urls_are_fetched() {
        for ok in [
            "https://sso.example.com/certs",
            "http://127.0.0.1:8080/jwks",
            "http://localhost/jwks",
            "http://[::1]:9/x",
        ] {
            assert!(url_is_acceptable(ok), "{ok}");
        }
        for bad in [
            "http://sso.example.com/certs",
            "http://127.0.0.1.evil.example/jwks",
            "http://10.0.0.1/jwks",
            "ftp://127.0.0.1/jwks",
            "sso.example.com",
        ] {
            assert!(!url_is_acceptable(bad), "{bad}");
        }
    }

    #[test]
    fn a_second_key_with_the_same_kid_is_skipped_and_named() {
        let mut doc: serde_json::Value = serde_json::from_slice(JWKS1).unwrap();
        let keys = doc["keys"].as_array_mut().unwrap();
        let first = keys.iter().find(|k| k["kid"] == "rsa-1").unwrap().clone();
        keys.push(first);
        let (set, skipped) = KeySet::parse(&serde_json::to_vec(&doc).unwrap()).unwrap();
        assert_eq!(set.len(), 3, "the duplicate is not added");
        assert!(
            skipped
                .iter()
                .any(|s| s.contains("rsa-1") && s.contains("second key")),
            "{skipped:?}"
        );
    }
}
