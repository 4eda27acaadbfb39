//! doctor's output: a list of steps for a person, or one JSON object for a script.

use std::fmt::Write as _;
use std::time::Duration;

use super::diagnose::Diagnosis;
use super::identity::{self, IdentityReport};
use super::probe::Outcome;

/// `0.42 ms`, `12.3 ms`, `1502 ms`.
pub fn format_ms(elapsed: Duration) -> String {
    let ms = elapsed.as_secs_f64() * 1000.0;
    if ms < 10.0 {
        format!("{ms:.2} ms")
    } else if ms < 100.0 {
        format!("{ms:.1} ms")
    } else {
        format!("{ms:.0} ms")
    }
}

/// The report for a person.
pub fn human(
    url: &str,
    outcome: &Outcome,
    diagnosis: Option<&Diagnosis>,
    identity: Option<&IdentityReport>,
) -> String {
    let mut out = format!("ringws doctor {url}\n");
    let name_width = outcome
        .steps
        .iter()
        .map(|s| s.name.chars().count())
        .max()
        .unwrap_or(0);
    for step in &outcome.steps {
        let mark = if step.ok { '✔' } else { '✘' };
        let _ = writeln!(
            out,
            "  {mark} {:<name_width$}  {:>9}  {}",
            step.name,
            format_ms(step.elapsed),
            step.detail
        );
    }
    if let Some(report) = identity {
        let _ = writeln!(out, "{}", identity::human(report));
    }
    match (diagnosis, outcome.pong_rtt) {
        (Some(diagnosis), _) => {
            let _ = writeln!(out, "Likely cause: {}.", sentence(&diagnosis.cause));
            let _ = writeln!(out, "Fix: {}.", sentence(&diagnosis.fix));
        }
        (None, Some(rtt)) => {
            let deflate = match outcome.deflate {
                Some(_) => " took a compressed message (permessage-deflate),",
                None => "",
            };
            let _ = writeln!(
                out,
                "OK: the endpoint upgraded,{deflate} answered a ping in {} and closed cleanly.",
                format_ms(rtt)
            );
        }
        (None, None) => {}
    }
    out
}

/// Without a trailing full stop (the caller adds one). Not capitalised: causes often start with
/// a name that is lowercase (ringws, doctor, a host).
fn sentence(text: &str) -> String {
    text.trim_end_matches('.').to_owned()
}

/// The report for a script.
pub fn json(
    url: &str,
    outcome: &Outcome,
    diagnosis: Option<&Diagnosis>,
    identity: Option<&IdentityReport>,
    exit_code: i32,
) -> serde_json::Value {
    let ms = |d: Duration| (d.as_secs_f64() * 1e6).round() / 1e3;
    let steps: Vec<_> = outcome
        .steps
        .iter()
        .map(|s| {
            serde_json::json!({
                "name": s.name,
                "ok": s.ok,
                "ms": ms(s.elapsed),
                "detail": s.detail,
            })
        })
        .collect();
    let response = outcome.response.as_ref();
    let headers: Vec<_> = response
        .map(|r| {
            r.headers
                .iter()
                .map(|(name, value)| serde_json::json!({"name": name, "value": value}))
                .collect()
        })
        .unwrap_or_default();
    serde_json::json!({
        "url": url,
        "ok": diagnosis.is_none(),
        "exit_code": exit_code,
        "steps": steps,
        "status": response.map(|r| r.status),
        "deflate": outcome.deflate.map(|answer| answer.to_string()),
        "response_headers": headers,
        "cause": diagnosis.map(|d| sentence(&d.cause)),
        "fix": diagnosis.map(|d| sentence(&d.fix)),
        "pong_rtt_ms": outcome.pong_rtt.map(ms),
        "tls": outcome.tls.as_ref().map(tls_json),
        "identity": identity.map(identity::json),
    })
}

fn tls_json(tls: &super::tls::TlsInfo) -> serde_json::Value {
    let certificate = tls.certificate.as_ref().map(|c| {
        serde_json::json!({
            "subject": c.subject,
            "issuer": c.issuer,
            "names": c.names,
            "not_before": c.not_before_text(),
            "not_after": c.not_after_text(),
            "chain_len": c.chain_len,
            "self_signed": c.self_signed,
        })
    });
    serde_json::json!({
        "version": tls.version,
        "cipher_suite": tls.cipher_suite,
        "alpn": tls.alpn,
        "certificate": certificate,
    })
}

#[cfg(test)]
mod tests {
    use super::super::probe::Step;
    use super::*;

    fn outcome() -> Outcome {
        Outcome {
            steps: vec![
                Step {
                    name: "resolve h".into(),
                    ok: true,
                    elapsed: Duration::from_micros(120),
                    detail: "127.0.0.1".into(),
                },
                Step {
                    name: "upgrade".into(),
                    ok: false,
                    elapsed: Duration::from_millis(15),
                    detail: "HTTP 200 OK".into(),
                },
            ],
            ..Outcome::default()
        }
    }

    #[test]
    fn human_lists_steps_then_cause_and_fix() {
        let diagnosis = Diagnosis {
            cause: "an ordinary web server answered".into(),
            fix: "point the URL at the endpoint.".into(),
        };
        let text = human("ws://h/", &outcome(), Some(&diagnosis), None);
        let lines: Vec<_> = text.lines().collect();
        assert_eq!(lines[0], "ringws doctor ws://h/");
        assert_eq!(lines[1], "  ✔ resolve h    0.12 ms  127.0.0.1");
        assert_eq!(lines[2], "  ✘ upgrade      15.0 ms  HTTP 200 OK");
        assert_eq!(lines[3], "Likely cause: an ordinary web server answered.");
        assert_eq!(lines[4], "Fix: point the URL at the endpoint.");
    }

    #[test]
    fn json_has_the_documented_fields() {
        let value = json("ws://h/", &outcome(), None, None, 0);
        for key in [
            "url",
            "ok",
            "steps",
            "status",
            "response_headers",
            "cause",
            "fix",
            "pong_rtt_ms",
            "exit_code",
            "identity",
        ] {
            assert!(value.get(key).is_some(), "{key}");
        }
        assert_eq!(value["steps"][0]["ms"], 0.12);
        assert_eq!(value["steps"][1]["ok"], false);
        assert!(value["status"].is_null());
    }

    #[test]
    fn milliseconds_read_well() {
        assert_eq!(format_ms(Duration::from_micros(421)), "0.42 ms");
        assert_eq!(format_ms(Duration::from_micros(12_345)), "12.3 ms");
        assert_eq!(format_ms(Duration::from_millis(1502)), "1502 ms");
    }
}
