//! `POST /reload` on the admin listener: a bearer token from `admin_tokens_file` asks the
//! server to do what SIGHUP does (read the TLS files, token files, JWT secret and JWKS file
//! again). The admin listener runs on a reactor thread, which must not read files, so the
//! request only raises a flag; the main thread, which waits for signals, sees it within half a
//! second and reloads (the result is in the log and `ringws_credential_reloads_total`).

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::RwLock;

use super::auth::{extract_token, StaticTokens};
use super::credentials::load_tokens;
use super::PolicyError;
use crate::admin::{AdminRequest, AdminResponse};

/// The admin tokens and the pending request.
#[derive(Debug, Default)]
pub struct ReloadGate {
    path: Option<PathBuf>,
    tokens: RwLock<Option<StaticTokens>>,
    requested: AtomicBool,
}

impl ReloadGate {
    /// Reads `admin_tokens_file`; without one, `POST /reload` is refused (SIGHUP still works).
    pub fn load(path: Option<&Path>) -> Result<ReloadGate, PolicyError> {
        let tokens = path.map(load_tokens).transpose()?;
        Ok(ReloadGate {
            path: path.map(Path::to_owned),
            tokens: RwLock::new(tokens),
            requested: AtomicBool::new(false),
        })
    }

    /// Reads `admin_tokens_file` again (part of a reload); on error the old tokens stay.
    pub fn reload_tokens(&self) -> Result<(), PolicyError> {
        let Some(path) = &self.path else {
            return Ok(());
        };
        let tokens = load_tokens(path)?;
        if let Ok(mut current) = self.tokens.write() {
            *current = Some(tokens);
        }
        Ok(())
    }

    /// True once per accepted `POST /reload`.
    pub fn take_request(&self) -> bool {
        self.requested.swap(false, Ordering::Relaxed)
    }

    /// Answers `POST /reload`.
    pub fn handle(&self, request: &AdminRequest<'_>) -> AdminResponse {
        if request.method != "POST" {
            return AdminResponse::text(405, "use POST").with_header("Allow", "POST");
        }
        let Ok(tokens) = self.tokens.read() else {
            return AdminResponse::text(500, "the admin tokens are unavailable");
        };
        let Some(tokens) = &*tokens else {
            return AdminResponse::text(
                403,
                "POST /reload is off: set admin_tokens_file (--admin-tokens-file) to a file of \
                 tokens allowed to reload, or send SIGHUP to the process",
            );
        };
        let verified = extract_token(request.header("authorization"), None)
            .ok()
            .flatten()
            .map(|token| tokens.verify(&token).is_ok());
        if verified != Some(true) {
            return AdminResponse::text(
                401,
                "POST /reload needs \"Authorization: Bearer <token>\" with a token of \
                 admin_tokens_file",
            )
            .with_header("WWW-Authenticate", "Bearer realm=\"ringws-admin\"");
        }
        self.requested.store(true, Ordering::Relaxed);
        AdminResponse::text(
            202,
            "reload requested: the TLS files, auth_tokens_file, admin_tokens_file, the JWT secret \
             and jwt_jwks_file are read again within a second (publish_tokens_file is read at \
             start only); the log and ringws_credential_reloads_total say how it went",
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn post(authorization: Option<&str>) -> AdminRequest<'_> {
        AdminRequest {
            method: "POST",
            path: "/reload",
            query: None,
            headers: authorization
                .map(|a| ("Authorization", a.as_bytes()))
                .into_iter()
                .collect(),
            body: b"",
        }
    }

    #[test]
    fn only_an_admin_token_raises_the_request() {
        let off = ReloadGate::default();
        assert_eq!(off.handle(&post(Some("Bearer x"))).status, 403);
        let dir = std::env::temp_dir().join(format!("ringws-reload-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("admin.txt");
        std::fs::write(&path, "ops:admin-token-1\n").unwrap();
        let gate = ReloadGate::load(Some(&path)).unwrap();
        assert_eq!(gate.handle(&post(None)).status, 401);
        assert_eq!(gate.handle(&post(Some("Bearer wrong"))).status, 401);
        assert!(!gate.take_request());
        let mut get = post(Some("Bearer admin-token-1"));
        get.method = "GET";
        assert_eq!(gate.handle(&get).status, 405);
        assert_eq!(gate.handle(&post(Some("Bearer admin-token-1"))).status, 202);
        assert!(gate.take_request());
        assert!(!gate.take_request(), "once");
        // Rotated: the old token stops working after a reload of the file.
        std::fs::write(&path, "ops:admin-token-2\n").unwrap();
        gate.reload_tokens().unwrap();
        assert_eq!(gate.handle(&post(Some("Bearer admin-token-1"))).status, 401);
        assert_eq!(gate.handle(&post(Some("Bearer admin-token-2"))).status, 202);
        // A bad file keeps the tokens in use.
        std::fs::write(&path, "# none\n").unwrap();
        assert!(gate.reload_tokens().is_err());
        assert_eq!(gate.handle(&post(Some("Bearer admin-token-2"))).status, 202);
        let _ = std::fs::remove_dir_all(&dir);
    }
}
