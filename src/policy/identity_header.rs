//! The `RingWS-Identity` header of a 101, sent only to a client that asked with
//! `RingWS-Explain: identity`: the subject and topic permissions its credentials were granted,
//! so that `ringws doctor --token` can show them. Sans IO; [`format`] is the server's side,
//! [`parse`] doctor's.
//!
//! The value is `;`-separated parameters:
//!
//! ```text
//! RingWS-Identity: subject="alice"; subscribe="news.*,user.alice.#"; publish=""
//! RingWS-Identity: subscribe=all; publish=all
//! ```
//!
//! - `subject`: the JWT `sub`, the static token's name or the client certificate's identity;
//!   absent when there is none. Quoted; bytes outside printable ASCII and `"`, `\`, `%`, `;` are
//!   percent-encoded, so the value stays one safe header line whatever the token carried. At
//!   most [`MAX_SUBJECT_BYTES`] of it are sent.
//! - `subscribe`, `publish`: `all` (unquoted) when every topic is granted, else the quoted,
//!   comma-separated patterns (`""`: no topic). Patterns hold only topic characters and `*`, `#`.
//! - `truncated`: present when the value would exceed [`MAX_VALUE_BYTES`] and patterns (or the
//!   end of the subject) were left out.
//!
//! Only what the credentials grant is named: never the token, a secret or a claim beyond `sub`.

use std::fmt::Write as _;

use super::topic_acl::{Grant, TopicPermissions};

/// Longest header value sent, in bytes.
pub const MAX_VALUE_BYTES: usize = 1024;
/// Longest subject sent, in bytes before encoding (cut at a character boundary).
pub const MAX_SUBJECT_BYTES: usize = 128;

/// What the header reports for one action.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ReportedGrant {
    /// Every topic.
    All,
    /// The topics these patterns match (none when empty).
    Only(Vec<String>),
}

impl ReportedGrant {
    /// Does any pattern cover `topic`? (`None` when a pattern does not parse.)
    pub fn covers(&self, topic: &str) -> Option<bool> {
        match self {
            ReportedGrant::All => Some(true),
            ReportedGrant::Only(patterns) => {
                let mut covered = false;
                for pattern in patterns {
                    covered |= super::topic_acl::TopicPattern::parse(pattern)
                        .ok()?
                        .matches(topic);
                }
                Some(covered)
            }
        }
    }
}

impl std::fmt::Display for ReportedGrant {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ReportedGrant::All => f.write_str("all topics"),
            ReportedGrant::Only(patterns) if patterns.is_empty() => f.write_str("no topic"),
            ReportedGrant::Only(patterns) => f.write_str(&patterns.join(", ")),
        }
    }
}

/// The header's content, as doctor reads it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ReportedIdentity {
    pub subject: Option<String>,
    pub subscribe: ReportedGrant,
    pub publish: ReportedGrant,
    /// The server left patterns (or the end of the subject) out to bound the header.
    pub truncated: bool,
}

/// The header value for `subject` and `permissions`, at most [`MAX_VALUE_BYTES`].
pub fn format(subject: Option<&str>, permissions: &TopicPermissions) -> String {
    let mut out = String::with_capacity(128);
    let mut truncated = false;
    if let Some(subject) = subject {
        let mut cut = subject.len().min(MAX_SUBJECT_BYTES);
        while !subject.is_char_boundary(cut) {
            cut -= 1;
        }
        truncated |= cut < subject.len();
        out.push_str("subject=\"");
        encode_into(&subject[..cut], &mut out);
        out.push_str("\"; ");
    }
    // Room kept for the other action's `all` or `""` and the truncated flag.
    const RESERVE: usize = "; publish=\"\"; truncated".len();
    for (i, (name, grant)) in [
        ("subscribe", &permissions.subscribe),
        ("publish", &permissions.publish),
    ]
    .into_iter()
    .enumerate()
    {
        if i > 0 {
            out.push_str("; ");
        }
        out.push_str(name);
        match grant {
            Grant::All => out.push_str("=all"),
            Grant::Only(patterns) => {
                out.push_str("=\"");
                let mut first = true;
                for pattern in patterns {
                    let text = pattern.as_str();
                    if out.len() + text.len() + 2 + RESERVE > MAX_VALUE_BYTES {
                        truncated = true;
                        break;
                    }
                    if !first {
                        out.push(',');
                    }
                    first = false;
                    out.push_str(text);
                }
                out.push('"');
            }
        }
    }
    if truncated {
        out.push_str("; truncated");
    }
    debug_assert!(out.len() <= MAX_VALUE_BYTES, "{}", out.len());
    out
}

/// The header line (`RingWS-Identity: ...\r\n`) for [`format`]'s value.
pub fn header_line(subject: Option<&str>, permissions: &TopicPermissions) -> Vec<u8> {
    format!(
        "{}: {}\r\n",
        crate::protocol::handshake::IDENTITY_HEADER,
        format(subject, permissions)
    )
    .into_bytes()
}

/// Reads a header value [`format`] wrote; `None` when it is not one (both actions are needed).
pub fn parse(value: &str) -> Option<ReportedIdentity> {
    let mut subject = None;
    let mut subscribe = None;
    let mut publish = None;
    let mut truncated = false;
    for param in value.split(';').map(str::trim).filter(|p| !p.is_empty()) {
        let (name, raw) = param.split_once('=').unwrap_or((param, ""));
        let quoted = raw
            .strip_prefix('"')
            .and_then(|r| r.strip_suffix('"'))
            .map(decode);
        match name.trim() {
            "subject" => subject = Some(quoted?),
            "subscribe" | "publish" => {
                let grant = match (raw, quoted) {
                    ("all", _) => ReportedGrant::All,
                    (_, Some(list)) => ReportedGrant::Only(
                        list.split(',')
                            .filter(|p| !p.is_empty())
                            .map(str::to_owned)
                            .collect(),
                    ),
                    _ => return None,
                };
                if name.trim() == "subscribe" {
                    subscribe = Some(grant);
                } else {
                    publish = Some(grant);
                }
            }
            "truncated" => truncated = true,
            _ => {} // a later server's parameter
        }
    }
    Some(ReportedIdentity {
        subject,
        subscribe: subscribe?,
        publish: publish?,
        truncated,
    })
}

fn encode_into(text: &str, out: &mut String) {
    for byte in text.bytes() {
        if (0x20..0x7f).contains(&byte) && !matches!(byte, b'"' | b'\\' | b'%' | b';') {
            out.push(byte as char);
        } else {
            let _ = write!(out, "%{byte:02X}");
        }
    }
}

fn decode(text: &str) -> String {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' {
            if let Some(byte) = text
                .get(i + 1..i + 3)
                .and_then(|hex| u8::from_str_radix(hex, 16).ok())
            {
                out.push(byte);
                i += 3;
                continue;
            }
        }
        out.push(bytes[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn perms(subscribe: &[&str], publish: &[&str]) -> TopicPermissions {
        let list = |items: &[&str]| items.join(",");
        TopicPermissions::from_token_fields([
            format!("subscribe={}", list(subscribe)).as_str(),
            format!("publish={}", list(publish)).as_str(),
        ])
        .unwrap()
    }

    #[test]
    fn formats_subject_and_patterns() {
        let value = format(Some("alice"), &perms(&["news.*", "user.alice.#"], &[]));
        assert_eq!(
            value,
            "subject=\"alice\"; subscribe=\"news.*,user.alice.#\"; publish=\"\""
        );
        let parsed = parse(&value).unwrap();
        assert_eq!(parsed.subject.as_deref(), Some("alice"));
        assert_eq!(
            parsed.subscribe,
            ReportedGrant::Only(vec!["news.*".into(), "user.alice.#".into()])
        );
        assert_eq!(parsed.publish, ReportedGrant::Only(vec![]));
        assert_eq!(parsed.publish.to_string(), "no topic");
        assert!(!parsed.truncated);
    }

    #[test]
    fn unrestricted_is_all_and_no_subject_is_absent() {
        let value = format(None, &TopicPermissions::allow_all());
        assert_eq!(value, "subscribe=all; publish=all");
        let parsed = parse(&value).unwrap();
        assert_eq!(parsed.subject, None);
        assert_eq!(parsed.subscribe, ReportedGrant::All);
        assert_eq!(parsed.subscribe.to_string(), "all topics");
        // A topic literally named "all" stays a pattern.
        let named_all = parse(&format(None, &perms(&["all"], &["all"]))).unwrap();
        assert_eq!(named_all.subscribe, ReportedGrant::Only(vec!["all".into()]));
    }

    #[test]
    fn subjects_are_escaped_into_one_safe_line() {
        let nasty = "a\"b\\c;d%e\r\nInjected: 1 ü";
        let value = format(Some(nasty), &TopicPermissions::deny_all());
        assert!(
            value
                .bytes()
                .all(|b| (0x20..0x7f).contains(&b) && b != b'\\'),
            "{value}"
        );
        assert!(!value.contains("\r") && !value.contains("\n"));
        assert_eq!(value.matches('"').count(), 6, "{value}");
        assert_eq!(parse(&value).unwrap().subject.as_deref(), Some(nasty));
    }

    #[test]
    fn the_value_is_bounded() {
        let long_subject = "ü".repeat(500);
        let many: Vec<String> = (0..400).map(|i| format!("topic.number.{i}.#")).collect();
        let refs: Vec<&str> = many.iter().map(String::as_str).collect();
        let value = format(Some(&long_subject), &perms(&refs, &refs));
        assert!(value.len() <= MAX_VALUE_BYTES, "{}", value.len());
        let parsed = parse(&value).unwrap();
        assert!(parsed.truncated);
        assert_eq!(parsed.subject.unwrap(), "ü".repeat(MAX_SUBJECT_BYTES / 2));
        let ReportedGrant::Only(kept) = parsed.subscribe else {
            panic!()
        };
        assert!(!kept.is_empty() && kept.len() < many.len());
        assert_eq!(kept[..], many[..kept.len()]);
        let line = header_line(None, &TopicPermissions::allow_all());
        assert_eq!(line, b"RingWS-Identity: subscribe=all; publish=all\r\n");
    }

    #[test]
    fn coverage_and_foreign_values() {
        let parsed = parse("subscribe=\"news.*\"; publish=all; future=1").unwrap();
        assert_eq!(parsed.subscribe.covers("news.eu"), Some(true));
        assert_eq!(parsed.subscribe.covers("sports"), Some(false));
        assert_eq!(parsed.publish.covers("x"), Some(true));
        assert!(parse("subscribe=all").is_none(), "publish missing");
        assert!(parse("nonsense").is_none());
        assert!(parse("subject=unquoted; subscribe=all; publish=all").is_none());
    }
}
