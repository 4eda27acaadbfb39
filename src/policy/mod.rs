//! Who may upgrade: the server-side handshake policy, sans IO.
//!
//! Nothing here touches a socket or reads a clock: the reactor passes the parsed request, the
//! socket peer and the time in, and gets back either what to answer the upgrade with
//! ([`Accepted`]) or the refusal to send. Files (tokens, JWT secret, JWKS) are read by
//! [`Policy::load`] at start-up, from the [`PolicySettings`] the configuration hands over, and
//! again by [`Policy::reload_credentials`] (SIGHUP, `POST /reload`). The exceptions, beside the
//! reactors: the thread that fetches `jwt_jwks_url` ([`jwks`]).
//!
//! - [`origin`]: the `Origin` allowlist (403).
//! - [`subprotocol`]: choosing the `Sec-WebSocket-Protocol` (400 when one is required).
//! - [`auth`]: bearer tokens, static or JWT (401); [`jwks`] the public keys of asymmetric JWTs;
//!   [`credentials`] the current set, swapped whole by a reload; [`reload`] `POST /reload`.
//! - [`expiry`]: closing connections whose token expired (`close_on_token_expiry`).
//! - [`identity_header`]: the 101's `RingWS-Identity` for a client that asked what it was
//!   granted (`RingWS-Explain: identity`).
//! - [`topic_acl`]: the topic permissions a token carries; a `?topic=` they do not grant is
//!   refused here (403), the rest is checked by the pub/sub app.
//! - [`rate_limit`]: per-client-address handshake rate, one table per core (429).
//! - [`trusted_proxies`]: the client address behind a trusted proxy.
//! - [`debug_ring`]: the last refusals per core, for `GET /debug/handshakes`.
//! - [`refusal_log`]: the rate-limited structured log line of each refusal.

pub mod auth;
pub mod credentials;
pub mod debug_ring;
pub mod expiry;
pub mod identity_header;
pub mod jwks;
pub mod origin;
pub mod rate_limit;
pub mod refusal_log;
pub mod reload;
pub mod subprotocol;
pub mod topic_acl;
pub mod trusted_proxies;

use std::ffi::OsString;
use std::net::IpAddr;
use std::path::PathBuf;
use std::sync::Arc;

use crate::protocol::{Refusal, UpgradeRequest};

pub use auth::{
    AuthFailure, AuthMode, Authenticator, Identity, JwtVerifier, StaticTokens, JWT_SECRET_ENV,
};
pub use credentials::Credentials;
pub use debug_ring::{CredentialSeen, DebugRing, RecordedHeaders, RefusalRecord};
pub use origin::{OriginPattern, OriginPolicy};
pub use rate_limit::HandshakeRateLimiter;
pub use refusal_log::{log_refusal, LogLimiter};
pub use reload::ReloadGate;
pub use subprotocol::SubprotocolPolicy;
pub use topic_acl::{Action, DefaultPermissions, TopicPermissions};
pub use trusted_proxies::{Cidr, TrustedProxies};

/// What an accepted upgrade is answered with, and what the app learns about the client.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Accepted<'a> {
    /// The chosen subprotocol, for `write_accept`: one the client offered, as it wrote it.
    pub protocol: Option<&'a str>,
    /// The JWT `sub`, or the static token's name; `None` without auth or without either.
    pub subject: Option<String>,
    /// The client address: the socket peer, or the one a trusted proxy named.
    pub client_ip: IpAddr,
    /// What the connection may subscribe to and publish: the token's, else the default
    /// (`topic_permissions_default`). Shared, not copied, between connections.
    pub permissions: Arc<TopicPermissions>,
    /// The token's `exp` (JWT), when it has one.
    pub expires_unix_s: Option<u64>,
}

/// Why the policy could not be built. Display names the key and the file, and what to do.
#[derive(Debug, thiserror::Error)]
pub enum PolicyError {
    #[error(
        "auth = \"token\" needs auth_tokens_file (--auth-tokens-file): a file of accepted tokens, \
         one per line"
    )]
    NoTokensFile,
    #[error("cannot read auth_tokens_file {}: {source}", path.display())]
    ReadTokens {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error(
        "auth_tokens_file {} is larger than {} MiB: is it the right file?",
        path.display(),
        auth::MAX_TOKENS_FILE_BYTES >> 20
    )]
    TokensFileTooLarge { path: PathBuf },
    #[error("auth_tokens_file {}: line {line}: {problem}", path.display())]
    TokenLine {
        path: PathBuf,
        line: usize,
        problem: auth::TokenLineError,
    },
    #[error(
        "auth_tokens_file {} holds no tokens: write one token per line, or name:token",
        path.display()
    )]
    NoTokens { path: PathBuf },
    #[error(
        "auth = \"jwt\" needs a secret or keys: set jwt_secret_file (--jwt-secret-file) or the \
         environment variable {JWT_SECRET_ENV} for HS256, or jwt_jwks_file / jwt_jwks_url for \
         RS256, PS256, ES256 and EdDSA"
    )]
    NoSecret,
    #[error(
        "jwt_jwks_url {0:?} is not an https:// URL (http:// only to a loopback address, as the keys \
         it serves decide who may connect): write the identity provider's JWKS address, such as \
         https://sso.example.com/realms/demo/protocol/openid-connect/certs"
    )]
    JwksUrl(String),
    #[error("jwt_jwks_file {}: {source}", path.display())]
    JwksFile {
        path: PathBuf,
        source: jwks::JwksError,
    },
    #[error(
        "require_subprotocol = true needs subprotocols (--subprotocols): the subprotocols the \
         server speaks"
    )]
    NoSubprotocols,
    #[error("cannot read jwt_secret_file {}: {source}", path.display())]
    ReadSecret {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error(
        "the JWT secret from {from} is {len} bytes; HS256 needs at least {min} (RFC 7518 \
         section 3.2): make one with `head -c 32 /dev/urandom | base64 > jwt.secret`",
        min = auth::MIN_SECRET_BYTES
    )]
    ShortSecret { from: String, len: usize },
}

/// What [`Policy`] is built from: the handshake keys of the configuration, parsed and bounded.
/// The policy sees nothing else of the configuration.
#[derive(Clone, Debug, PartialEq)]
pub struct PolicySettings {
    /// Origins whose pages may connect; empty allows any.
    pub allowed_origins: Vec<OriginPattern>,
    /// Accept requests without `Origin` (non-browser clients).
    pub allow_missing_origin: bool,
    /// The subprotocols the server speaks, in preference order.
    pub subprotocols: Vec<String>,
    /// Refuse clients that offer none of `subprotocols`.
    pub require_subprotocol: bool,
    /// How handshakes are authenticated.
    pub auth: AuthMode,
    /// Accepted tokens for [`AuthMode::Token`], one per line or `name:token`.
    pub auth_tokens_file: Option<PathBuf>,
    /// The HS256 secret for [`AuthMode::Jwt`]; without it, [`JWT_SECRET_ENV`].
    pub jwt_secret_file: Option<PathBuf>,
    /// The `aud` a JWT must name, when set.
    pub jwt_audience: Option<String>,
    /// The `iss` a JWT must have, when set.
    pub jwt_issuer: Option<String>,
    /// A JWKS file of public keys for asymmetric JWTs.
    pub jwt_jwks_file: Option<PathBuf>,
    /// A JWKS URL, fetched in the background.
    pub jwt_jwks_url: Option<String>,
    /// Shortest time between two fetches of `jwt_jwks_url` asked for by unknown `kid`s.
    pub jwt_jwks_min_refresh_interval: std::time::Duration,
    /// Time between two periodic fetches of `jwt_jwks_url`.
    pub jwt_jwks_refresh_interval: std::time::Duration,
    /// Peers whose X-Forwarded-For / Forwarded is believed.
    pub trusted_proxies: Vec<Cidr>,
    /// The JWT claim holding topic permissions.
    pub topic_permissions_claim: String,
    /// The permissions of a token that carries none.
    pub topic_permissions_default: DefaultPermissions,
    /// Close connections whose JWT `exp` passes (4001).
    pub close_on_token_expiry: bool,
    /// The closes of tokens expiring together are spread over this window after `exp`.
    pub token_expiry_close_window: std::time::Duration,
}

impl PolicySettings {
    /// Refuses a setting that needs another one which is missing, before any file is read. The
    /// configuration checks this once all its layers are applied, so that `--print-config`
    /// refuses what `serve` would.
    pub fn check_needs(&self, env_secret_set: bool) -> Result<(), PolicyError> {
        match self.auth {
            AuthMode::Token if self.auth_tokens_file.is_none() => Err(PolicyError::NoTokensFile),
            AuthMode::Jwt
                if self.jwt_secret_file.is_none()
                    && !env_secret_set
                    && self.jwt_jwks_file.is_none()
                    && self.jwt_jwks_url.is_none() =>
            {
                Err(PolicyError::NoSecret)
            }
            _ if self
                .jwt_jwks_url
                .as_deref()
                .is_some_and(|url| !jwks::url_is_acceptable(url)) =>
            {
                Err(PolicyError::JwksUrl(
                    self.jwt_jwks_url.clone().unwrap_or_default(),
                ))
            }
            _ if self.require_subprotocol && self.subprotocols.is_empty() => {
                Err(PolicyError::NoSubprotocols)
            }
            _ => Ok(()),
        }
    }
}

/// The handshake rules shared by every core (share it with `Arc`).
#[derive(Debug)]
pub struct Policy {
    origins: OriginPolicy,
    subprotocols: SubprotocolPolicy,
    /// Tokens, secret and keys; replaced whole by a reload.
    credentials: Credentials,
    proxies: TrustedProxies,
    /// Given to every connection whose token carries no permissions (one shared set).
    default_permissions: Arc<TopicPermissions>,
    /// With `close_on_token_expiry`: the window closes are spread over, in milliseconds.
    expiry_window_ms: Option<u64>,
    /// Connections closed with 4001 because their token expired, all cores.
    expiry_closes: Arc<std::sync::atomic::AtomicU64>,
}

impl Default for Policy {
    fn default() -> Self {
        Policy {
            origins: OriginPolicy::default(),
            subprotocols: SubprotocolPolicy::default(),
            credentials: Credentials::default(),
            proxies: TrustedProxies::default(),
            default_permissions: DefaultPermissions::default().permissions(),
            expiry_window_ms: None,
            expiry_closes: Arc::default(),
        }
    }
}

impl Policy {
    /// Builds the policy, reading `auth_tokens_file` or the JWT secret (`jwt_secret_file`, else
    /// the environment variable [`JWT_SECRET_ENV`]).
    pub fn load(settings: &PolicySettings) -> Result<Policy, PolicyError> {
        Policy::load_with_env_secret(settings, std::env::var_os(JWT_SECRET_ENV))
    }

    /// As [`load`](Self::load), with the environment's secret passed in.
    pub fn load_with_env_secret(
        settings: &PolicySettings,
        env_secret: Option<OsString>,
    ) -> Result<Policy, PolicyError> {
        let credentials = Credentials::load(settings, env_secret)?;
        Ok(Policy {
            origins: OriginPolicy::new(
                settings.allowed_origins.clone(),
                settings.allow_missing_origin,
            ),
            subprotocols: SubprotocolPolicy::new(
                settings.subprotocols.clone(),
                settings.require_subprotocol,
            ),
            credentials,
            proxies: TrustedProxies::new(settings.trusted_proxies.clone()),
            default_permissions: settings.topic_permissions_default.permissions(),
            expiry_window_ms: settings
                .close_on_token_expiry
                .then_some(settings.token_expiry_close_window.as_millis() as u64),
            expiry_closes: Arc::default(),
        })
    }

    /// Starts what runs beside the reactors: the first fetch of `jwt_jwks_url` (blocking) and
    /// the thread that refreshes it. Call once, when serving (not for a config check).
    pub fn start_background(&self) {
        self.credentials.start_background();
    }

    /// The policy's metric series (JWKS fetches, reloads), for the exporter.
    pub fn metrics(&self) -> Vec<crate::metrics::AppSeries> {
        let mut series = self.credentials.metrics();
        let closes = self.expiry_closes.clone();
        series.push(crate::metrics::AppSeries {
            name: "ringws_token_expiry_closes_total",
            help: "Connections closed with 4001 because their token's exp passed \
                   (close_on_token_expiry).",
            labels: Vec::new(),
            gauge: false,
            read: Box::new(move || closes.load(std::sync::atomic::Ordering::Relaxed)),
        });
        series
    }

    /// With `close_on_token_expiry`: a queue for one core, spreading closes over the window.
    pub fn expiry_queue(&self) -> Option<expiry::ExpiryQueue> {
        self.expiry_window_ms.map(expiry::ExpiryQueue::new)
    }

    /// Counts a connection closed because its token expired.
    pub fn count_expiry_close(&self) {
        self.expiry_closes
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    }

    /// Reads the token file, the JWT secret and the JWKS file again (SIGHUP, `POST /reload`):
    /// new handshakes use them, open connections keep what they were granted. A file that
    /// cannot be used keeps the credentials in use; the error says why.
    pub fn reload_credentials(&self) -> Result<(), PolicyError> {
        self.credentials.reload()
    }

    /// The client address of a request from socket peer `peer` (see [`TrustedProxies`]). The
    /// reactor needs it before [`check`](Self::check) for the rate limiter, and for refusals.
    pub fn client_ip(&self, request: &UpgradeRequest<'_>, peer: IpAddr) -> IpAddr {
        self.proxies
            .client_ip(peer, request.x_forwarded_for, request.forwarded)
    }

    /// Decides an upgrade that parsed, at `now_unix_s`. Checks run cheapest and most
    /// fundamental first: Origin (403), credentials (401), the URL's `?topic=` against the
    /// credentials' topic permissions (403), subprotocol (400).
    pub fn check<'a>(
        &self,
        request: &UpgradeRequest<'a>,
        peer: IpAddr,
        now_unix_s: u64,
    ) -> Result<Accepted<'a>, Refusal> {
        let client_ip = self.client_ip(request, peer);
        self.origins.check(request.origin)?;
        let identity = self
            .credentials
            .current()
            .identify(request.authorization, request.query, now_unix_s)
            .map_err(|failure| failure.to_refusal())?;
        let permissions = identity
            .permissions
            .unwrap_or_else(|| self.default_permissions.clone());
        if let Some(query) = request.query {
            check_url_topics(&permissions, query)?;
        }
        let protocol = self.subprotocols.select_lines(request.protocol_lines())?;
        Ok(Accepted {
            protocol,
            subject: identity.subject,
            client_ip,
            permissions,
            expires_unix_s: identity.expires_unix_s,
        })
    }
}

/// Refuses (403) the first `?topic=` of `query` that `permissions` does not let the connection
/// subscribe to, naming it. Names that are not valid topics are left to the app, which refuses
/// them with its own error reply.
fn check_url_topics(permissions: &TopicPermissions, query: &str) -> Result<(), Refusal> {
    use crate::app::pubsub::topic_name;
    if permissions.grant(Action::Subscribe) == &topic_acl::Grant::All {
        return Ok(());
    }
    for raw in topic_name::query_topics(query) {
        let Ok(topic) = topic_name::decode(raw, usize::MAX) else {
            continue;
        };
        if !permissions.allows(Action::Subscribe, &topic) {
            return Err(Refusal::with_detail(
                crate::protocol::RefusalReason::TopicForbidden,
                format!(
                    "the token may not subscribe to {topic:?} (it may subscribe to: {})",
                    permissions.grant(Action::Subscribe)
                ),
            ));
        }
    }
    Ok(())
}
