//! The certificate rows of `ringws check`, for the `tls_cert` and `tls_key` it is given: the key
//! matches the certificate, the chain in the file is complete, days to expiry.

use std::path::Path;

use rustls::pki_types::pem::PemObject;
use rustls::pki_types::CertificateDer;
use x509_parser::prelude::{FromDer, X509Certificate};

use super::rules::{Check, Status};
use crate::tls::certificate::{CertificateSummary, CERTIFICATE_WARN_DAYS};
use crate::tls::{TlsError, TlsFiles};

/// The three rows for `cert` and `key`, judged at `now_unix_s`.
pub fn check_tls(cert: &Path, key: &Path, now_unix_s: i64) -> Vec<Check> {
    let chain: Result<Vec<CertificateDer<'static>>, _> =
        CertificateDer::pem_file_iter(cert).and_then(|certs| certs.collect());
    let chain = match chain {
        Ok(chain) if !chain.is_empty() => chain,
        Ok(_) => return vec![unreadable(cert, "it holds no CERTIFICATE block".into())],
        Err(err) => return vec![unreadable(cert, err.to_string())],
    };
    let summary = match CertificateSummary::of_chain(&chain) {
        Ok(summary) => summary,
        Err(err) => return vec![unreadable(cert, err)],
    };
    vec![
        check_key(cert, key),
        check_chain(&chain, &summary),
        check_expiry(&summary, now_unix_s),
    ]
}

fn unreadable(cert: &Path, why: String) -> Check {
    Check::new("tls chain", "unreadable", "leaf + intermediates").with(
        Status::Fail,
        Some(format!(
            "tls_cert = \"{}\" must name the PEM chain file",
            cert.display()
        )),
        format!("{}: {why}", cert.display()),
    )
}

/// The key belongs to the certificate (the same test `ringws serve` makes at start).
pub fn check_key(cert: &Path, key: &Path) -> Check {
    let files = TlsFiles {
        cert: cert.to_owned(),
        key: key.to_owned(),
        sni: Vec::new(),
        client_ca: None,
    };
    let row = Check::new("tls key", "", "matches tls_cert");
    match crate::tls::load(&files) {
        Ok(_) => row.showing("matches"),
        Err(err @ TlsError::KeyMismatch { .. }) => row.showing("another key").with(
            Status::Fail,
            Some("tls_key must name the key the certificate was issued for".into()),
            format!("{err}; ringws serve refuses to start with this pair"),
        ),
        Err(err) => row.showing("unusable").with(
            Status::Fail,
            Some("tls_key must name the PEM private key of tls_cert".into()),
            err.to_string(),
        ),
    }
}

/// The leaf's issuer is the next certificate in the file, each one signed by the next, or the
/// leaf is self-signed.
pub fn check_chain(chain: &[CertificateDer<'_>], summary: &CertificateSummary) -> Check {
    let row = Check::new(
        "tls chain",
        format!("{} cert(s)", chain.len()),
        "leaf + intermediates",
    );
    if summary.self_signed {
        return row.showing("self-signed").with(
            Status::Warn,
            Some("use a certificate from a CA clients trust (e.g. Let's Encrypt)".into()),
            format!(
                "the certificate ({}) is self-signed: browsers refuse it; only clients given \
                 it as a CA accept it",
                summary.subject
            ),
        );
    }
    let names: Vec<(String, String)> = chain
        .iter()
        .filter_map(|der| X509Certificate::from_der(der.as_ref()).ok())
        .map(|(_, c)| (c.subject().to_string(), c.issuer().to_string()))
        .collect();
    if names.len() != chain.len() {
        return row.with(
            Status::Fail,
            None,
            "a certificate in the file cannot be parsed",
        );
    }
    if let Some(i) = names.windows(2).position(|pair| pair[0].1 != pair[1].0) {
        return row.showing(format!("broken after #{}", i + 1)).with(
            Status::Fail,
            Some("order tls_cert: the leaf first, then each certificate's issuer".into()),
            format!(
                "certificate #{} is issued by {}, but #{} is {}",
                i + 1,
                names[i].1,
                i + 2,
                names[i + 1].0
            ),
        );
    }
    if chain.len() == 1 {
        return row.showing("leaf only").with(
            Status::Warn,
            Some("append the intermediate certificates to tls_cert, after the leaf".into()),
            format!(
                "the file holds only the leaf, issued by {}: clients that do not have that CA \
                 as a root fail with unknown issuer (`ringws doctor` names it a missing \
                 intermediate)",
                summary.issuer
            ),
        );
    }
    row.with(Status::Pass, None, "")
}

/// Days until the certificate expires: fail once expired (or not yet valid), warn under
/// [`CERTIFICATE_WARN_DAYS`].
pub fn check_expiry(summary: &CertificateSummary, now_unix_s: i64) -> Check {
    let days = summary.days_left(now_unix_s);
    let needed = format!(">= {CERTIFICATE_WARN_DAYS} days");
    let row = Check::new("tls expiry", format!("{days} days"), needed);
    let renew = Some("renew the certificate; ringws reloads tls_cert and tls_key on SIGHUP".into());
    if days < 0 || summary.not_after_unix_s <= now_unix_s {
        return row.showing("expired").with(
            Status::Fail,
            renew,
            format!(
                "the certificate expired on {}: clients refuse it",
                summary.not_after_text()
            ),
        );
    }
    if summary.not_before_unix_s > now_unix_s {
        return row.showing("not yet valid").with(
            Status::Fail,
            Some("check this machine's clock, or the dates of the certificate".into()),
            format!(
                "the certificate is not valid before {}",
                summary.not_before_text()
            ),
        );
    }
    if days < CERTIFICATE_WARN_DAYS {
        return row.with(
            Status::Warn,
            renew,
            format!("the certificate expires on {}", summary.not_after_text()),
        );
    }
    row.with(Status::Pass, None, "")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn summary(not_after_unix_s: i64) -> CertificateSummary {
        CertificateSummary {
            subject: "CN=localhost".into(),
            issuer: "CN=CA".into(),
            names: vec!["localhost".into()],
            not_before_unix_s: 0,
            not_after_unix_s,
            chain_len: 2,
            self_signed: false,
        }
    }

    #[test]
    fn expiry_fails_when_expired_and_warns_under_two_weeks() {
        let now = 100 * 86_400;
        assert_eq!(check_expiry(&summary(now - 1), now).status, Status::Fail);
        assert_eq!(
            check_expiry(&summary(now + 3 * 86_400), now).status,
            Status::Warn
        );
        let mut early = summary(now + 60 * 86_400);
        early.not_before_unix_s = now + 1;
        let early = check_expiry(&early, now);
        assert_eq!(
            (early.status, early.current.as_str()),
            (Status::Fail, "not yet valid")
        );
        let fine = check_expiry(&summary(now + 60 * 86_400), now);
        assert_eq!(
            (fine.status, fine.current.as_str()),
            (Status::Pass, "60 days")
        );
    }
}
