//! What the server says the credentials grant: the 101's `RingWS-Identity` (doctor asks for it
//! with `RingWS-Explain: identity`), or, for a 403 `topic_forbidden`, the topic and the
//! patterns the server's reason names. Pure: read from the probe's outcome.

use super::diagnose::{refusal::ringws_reason, Observation};
use super::probe::Outcome;
use crate::policy::identity_header::{self, ReportedGrant, ReportedIdentity};
use crate::protocol::handshake::IDENTITY_HEADER;
use crate::protocol::RefusalReason;

/// What doctor learned about the identity.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum IdentityReport {
    /// The 101 named the subject and permissions.
    Reported(ReportedIdentity),
    /// The server upgraded without `RingWS-Identity` (an older ringws, another server, or a
    /// `--header` that removed the request).
    NotReported,
    /// ringws refused a `?topic=` (403 `topic_forbidden`): the topic, and the subscribe
    /// patterns the token has (as the reason lists them, `, `-separated; empty for none), none
    /// of which covers it.
    Forbidden { topic: String, granted: String },
}

/// How ringws's `topic_forbidden` detail starts (policy's `check_url_topics`).
const FORBIDDEN_PREFIX: &str = "the token may not subscribe to ";
const GRANTED_PREFIX: &str = "(it may subscribe to: ";

/// The report, when there is one: for a 403 `topic_forbidden` always; for a 101 only when a
/// token was sent (without one there is no identity to check, and a line saying so on every
/// run would be noise): what its `RingWS-Identity` says, or that it has none.
pub fn read(outcome: &Outcome, token_sent: bool) -> Option<IdentityReport> {
    if let Some(Observation::Answer { response, body }) = &outcome.failure {
        let (reason, line) = ringws_reason(body)?;
        if response.status != 403 || reason != RefusalReason::TopicForbidden {
            return None;
        }
        return forbidden(line);
    }
    let response = outcome
        .response
        .as_ref()
        .filter(|r| r.status == 101 && token_sent)?;
    match response
        .header(IDENTITY_HEADER)
        .and_then(identity_header::parse)
    {
        Some(identity) => Some(IdentityReport::Reported(identity)),
        None => Some(IdentityReport::NotReported),
    }
}

/// The topic and the granted patterns out of a `topic_forbidden` reason line.
fn forbidden(line: &str) -> Option<IdentityReport> {
    let detail = &line[line.find(FORBIDDEN_PREFIX)? + FORBIDDEN_PREFIX.len()..];
    let quoted = detail.strip_prefix('"')?;
    let end = quoted.find('"')?;
    let topic = quoted[..end].to_owned();
    let rest = &quoted[end + 1..];
    let granted = rest
        .find(GRANTED_PREFIX)
        .map(|at| &rest[at + GRANTED_PREFIX.len()..])
        .map(|list| list.strip_suffix(')').unwrap_or(list).to_owned())
        .filter(|list| list != "no topic")
        .unwrap_or_default();
    Some(IdentityReport::Forbidden { topic, granted })
}

fn grant_text(grant: &ReportedGrant) -> String {
    grant.to_string()
}

/// The `Identity:` line of the report (without a newline).
pub fn human(report: &IdentityReport) -> String {
    match report {
        IdentityReport::Reported(identity) => {
            let subject = match &identity.subject {
                Some(subject) => format!("subject {subject:?}"),
                None => "no subject".to_owned(),
            };
            let truncated = if identity.truncated {
                " (the server shortened the list)"
            } else {
                ""
            };
            format!(
                "Identity: {subject}; subscribe: {}; publish: {}{truncated}.",
                grant_text(&identity.subscribe),
                grant_text(&identity.publish)
            )
        }
        IdentityReport::NotReported => format!(
            "Identity: the server did not report permissions (no {IDENTITY_HEADER} header on \
             the 101: an older ringws, or another server)."
        ),
        IdentityReport::Forbidden { topic, granted } if granted.is_empty() => format!(
            "Identity: the token may not subscribe to {topic:?}: it may subscribe to no topic."
        ),
        IdentityReport::Forbidden { topic, granted } => format!(
            "Identity: the token may not subscribe to {topic:?}: its subscribe patterns \
             ({granted}) do not cover it."
        ),
    }
}

fn grant_json(grant: &ReportedGrant) -> serde_json::Value {
    match grant {
        ReportedGrant::All => serde_json::json!("all"),
        ReportedGrant::Only(patterns) => serde_json::json!(patterns),
    }
}

/// The `identity` object of `--json`.
pub fn json(report: &IdentityReport) -> serde_json::Value {
    match report {
        IdentityReport::Reported(identity) => serde_json::json!({
            "reported": true,
            "subject": identity.subject,
            "subscribe": grant_json(&identity.subscribe),
            "publish": grant_json(&identity.publish),
            "truncated": identity.truncated,
        }),
        IdentityReport::NotReported => serde_json::json!({ "reported": false }),
        IdentityReport::Forbidden { topic, granted } => serde_json::json!({
            "reported": true,
            "forbidden_topic": topic,
            "subscribe": granted
                .split(", ")
                .filter(|p| !p.is_empty())
                .collect::<Vec<_>>(),
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::doctor::response::Response;

    fn upgraded(headers: &[(&str, &str)]) -> Outcome {
        Outcome {
            response: Some(Response {
                status: 101,
                reason: "Switching Protocols".into(),
                headers: headers
                    .iter()
                    .map(|(n, v)| (n.to_string(), v.to_string()))
                    .collect(),
                head_len: 0,
            }),
            ..Outcome::default()
        }
    }

    #[test]
    fn a_reported_identity_reads_as_a_line() {
        let outcome = upgraded(&[(
            "ringws-identity",
            "subject=\"alice\"; subscribe=\"news.*,user.alice.#\"; publish=\"\"",
        )]);
        let report = read(&outcome, true).unwrap();
        assert_eq!(
            human(&report),
            "Identity: subject \"alice\"; subscribe: news.*, user.alice.#; publish: no topic."
        );
        let value = json(&report);
        assert_eq!(value["subject"], "alice");
        assert_eq!(value["subscribe"][1], "user.alice.#");
        let all = upgraded(&[("RingWS-Identity", "subscribe=all; publish=all")]);
        assert_eq!(
            human(&read(&all, true).unwrap()),
            "Identity: no subject; subscribe: all topics; publish: all topics."
        );
    }

    #[test]
    fn silence_is_reported_only_with_a_token() {
        let outcome = upgraded(&[]);
        assert_eq!(read(&outcome, false), None);
        let all = upgraded(&[("RingWS-Identity", "subscribe=all; publish=all")]);
        assert_eq!(read(&all, false), None, "no token: no line");
        let report = read(&outcome, true).unwrap();
        assert_eq!(report, IdentityReport::NotReported);
        assert!(human(&report).contains("did not report permissions"));
        assert_eq!(json(&report)["reported"], false);
    }

    #[test]
    fn a_topic_refusal_names_the_topic_and_patterns() {
        let line = format!(
            "{}: the token may not subscribe to \"sports\" (it may subscribe to: news.*, user.42.#)",
            RefusalReason::TopicForbidden.message()
        );
        let outcome = Outcome {
            failure: Some(Observation::Answer {
                response: Response {
                    status: 403,
                    reason: "Forbidden".into(),
                    headers: vec![],
                    head_len: 0,
                },
                body: format!("{line}\n").into_bytes(),
            }),
            ..Outcome::default()
        };
        let report = read(&outcome, false).unwrap();
        assert_eq!(
            report,
            IdentityReport::Forbidden {
                topic: "sports".into(),
                granted: "news.*, user.42.#".into()
            }
        );
        assert!(human(&report).contains("(news.*, user.42.#) do not cover it"));
        assert_eq!(json(&report)["subscribe"][0], "news.*");

        let none =
            forbidden("the token may not subscribe to \"a\" (it may subscribe to: no topic)")
                .unwrap();
        assert!(human(&none).ends_with("it may subscribe to no topic."));
        assert_eq!(json(&none)["subscribe"], serde_json::json!([]));
    }
}
