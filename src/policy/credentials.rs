//! The credentials a handshake is checked against (static tokens, the JWT secret, JWKS keys),
//! held so that a reload (SIGHUP, `POST /reload`) can replace them while connections keep
//! theirs: each handshake takes the current set (one `Arc` clone under a read lock, uncontended
//! except during the swap itself); a reload builds a new set from the files and swaps it in
//! only when every file is good.

use std::ffi::OsString;
use std::io::Read as _;
use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, RwLock};

use super::auth::{self, Authenticator, JwtVerifier, StaticTokens};
use super::jwks;
use super::{AuthMode, PolicyError, PolicySettings, JWT_SECRET_ENV};

/// The current credentials and what a reload needs to build new ones.
#[derive(Debug, Default)]
pub struct Credentials {
    current: RwLock<Arc<Authenticator>>,
    settings: Option<PolicySettings>,
    /// The keys of `jwt_jwks_url`: fetched in the background, kept across reloads.
    remote_keys: Option<Arc<jwks::RemoteKeys>>,
    reloads_ok: Arc<AtomicU64>,
    reloads_failed: Arc<AtomicU64>,
}

impl Credentials {
    pub fn load(
        settings: &PolicySettings,
        env_secret: Option<OsString>,
    ) -> Result<Credentials, PolicyError> {
        let remote_keys = match (settings.auth, &settings.jwt_jwks_url) {
            (AuthMode::Jwt, Some(url)) => Some(Arc::new(jwks::RemoteKeys::new(
                url.clone(),
                settings.jwt_jwks_min_refresh_interval,
                settings.jwt_jwks_refresh_interval,
            ))),
            _ => None,
        };
        let auth = build(settings, env_secret, remote_keys.as_ref())?;
        Ok(Credentials {
            current: RwLock::new(Arc::new(auth)),
            settings: Some(settings.clone()),
            remote_keys,
            ..Credentials::default()
        })
    }

    /// The credentials in force now.
    pub fn current(&self) -> Arc<Authenticator> {
        // A poisoned lock still holds the last credentials swapped in whole: use them (an
        // empty default would be `Authenticator::None`, letting everyone in).
        match self.current.read() {
            Ok(current) => current.clone(),
            Err(poisoned) => poisoned.into_inner().clone(),
        }
    }

    /// Builds the credentials from the files again and swaps them in; on error the old ones
    /// stay. Counted either way, and logged.
    pub fn reload(&self) -> Result<(), PolicyError> {
        let Some(settings) = &self.settings else {
            return Ok(());
        };
        match build(
            settings,
            std::env::var_os(JWT_SECRET_ENV),
            self.remote_keys.as_ref(),
        ) {
            Ok(auth) => {
                if let Ok(mut current) = self.current.write() {
                    *current = Arc::new(auth);
                }
                self.reloads_ok.fetch_add(1, Ordering::Relaxed);
                tracing::info!(
                    "credentials reloaded (auth = {}): new handshakes use them, open \
                     connections keep theirs",
                    settings.auth.name()
                );
                Ok(())
            }
            Err(e) => {
                self.reloads_failed.fetch_add(1, Ordering::Relaxed);
                Err(e)
            }
        }
    }

    pub fn start_background(&self) {
        if let Some(remote) = &self.remote_keys {
            remote.spawn();
        }
    }

    /// JWKS fetches (always served, 0 without `jwt_jwks_url`) and reloads, for the exporter.
    pub fn metrics(&self) -> Vec<crate::metrics::AppSeries> {
        let mut series = Vec::new();
        for (result, ok) in [("ok", true), ("failed", false)] {
            let remote = self.remote_keys.clone();
            series.push(crate::metrics::AppSeries {
                name: "ringws_jwks_fetches_total",
                help: "Fetches of jwt_jwks_url, by result; a failed one kept the last good key \
                       set.",
                labels: vec![("result", result.to_owned())],
                gauge: false,
                read: Box::new(move || remote.as_ref().map_or(0, |r| r.fetches(ok))),
            });
            let count = if ok {
                self.reloads_ok.clone()
            } else {
                self.reloads_failed.clone()
            };
            series.push(crate::metrics::AppSeries {
                name: "ringws_credential_reloads_total",
                help: "Reloads of auth_tokens_file, the JWT secret and jwt_jwks_file (SIGHUP, \
                       POST /reload), by result; a failed one kept the credentials in use.",
                labels: vec![("result", result.to_owned())],
                gauge: false,
                read: Box::new(move || count.load(Ordering::Relaxed)),
            });
        }
        series
    }
}

/// Builds the authenticator of `settings` from its files (and the environment's secret).
fn build(
    settings: &PolicySettings,
    env_secret: Option<OsString>,
    remote_keys: Option<&Arc<jwks::RemoteKeys>>,
) -> Result<Authenticator, PolicyError> {
    let auth = match settings.auth {
        AuthMode::None => Authenticator::None,
        AuthMode::Token => {
            let path = settings
                .auth_tokens_file
                .as_deref()
                .ok_or(PolicyError::NoTokensFile)?;
            Authenticator::Tokens(load_tokens(path)?)
        }
        AuthMode::Jwt => {
            let secret = match (&settings.jwt_secret_file, env_secret) {
                (Some(path), _) => Some((
                    read_secret(path)?,
                    format!("jwt_secret_file {}", path.display()),
                )),
                (None, Some(env)) => Some((
                    strip_newline(std::os::unix::ffi::OsStringExt::into_vec(env)),
                    format!("environment variable {JWT_SECRET_ENV}"),
                )),
                (None, None) => None,
            };
            let (audience, issuer) = (settings.jwt_audience.clone(), settings.jwt_issuer.clone());
            let mut verifier = match secret {
                Some((secret, from)) => {
                    JwtVerifier::new(&secret, audience, issuer).map_err(|short| {
                        PolicyError::ShortSecret {
                            from,
                            len: short.len,
                        }
                    })?
                }
                None if settings.jwt_jwks_file.is_some() || remote_keys.is_some() => {
                    JwtVerifier::without_secret(audience, issuer)
                }
                None => return Err(PolicyError::NoSecret),
            };
            if let Some(path) = &settings.jwt_jwks_file {
                let (keys, skipped) =
                    jwks::read_file(path).map_err(|source| PolicyError::JwksFile {
                        path: path.to_owned(),
                        source,
                    })?;
                for why in skipped {
                    tracing::info!("jwt_jwks_file {}: skipped {why}", path.display());
                }
                verifier = verifier.with_file_keys(keys);
            }
            if let Some(remote) = remote_keys {
                verifier = verifier.with_remote_keys(remote.clone());
            }
            Authenticator::Jwt(verifier.with_permissions_claim(&settings.topic_permissions_claim))
        }
    };
    Ok(auth)
}

pub(super) fn load_tokens(path: &Path) -> Result<StaticTokens, PolicyError> {
    let read_error = |source| PolicyError::ReadTokens {
        path: path.to_owned(),
        source,
    };
    let file = std::fs::File::open(path).map_err(read_error)?;
    let mut text = String::new();
    file.take(auth::MAX_TOKENS_FILE_BYTES as u64 + 1)
        .read_to_string(&mut text)
        .map_err(read_error)?;
    if text.len() > auth::MAX_TOKENS_FILE_BYTES {
        return Err(PolicyError::TokensFileTooLarge {
            path: path.to_owned(),
        });
    }
    StaticTokens::parse(&text).map_err(|err| match err {
        auth::TokensFileError::Line { line, problem } => PolicyError::TokenLine {
            path: path.to_owned(),
            line,
            problem,
        },
        auth::TokensFileError::Empty => PolicyError::NoTokens {
            path: path.to_owned(),
        },
    })
}

fn read_secret(path: &Path) -> Result<Vec<u8>, PolicyError> {
    std::fs::read(path)
        .map(strip_newline)
        .map_err(|source| PolicyError::ReadSecret {
            path: path.to_owned(),
            source,
        })
}

/// Files written with `echo` end in a newline that is not part of the secret.
fn strip_newline(mut secret: Vec<u8>) -> Vec<u8> {
    while secret.last().is_some_and(|&b| b == b'\n' || b == b'\r') {
        secret.pop();
    }
    secret
}
