//! Topic permissions: which topics a connection may subscribe to and publish to, from its token
//! (a JWT claim, or the fields of its line in `auth_tokens_file`), sans IO.
//!
//! A pattern is a topic name split into segments at `.` ([`SEPARATOR`]); a segment is either
//! literal text (the topic characters other than `.`), `*` (exactly one segment, any text), or
//! `#` as the last segment (the rest of the topic: zero or more segments). So `news.*` matches
//! `news.eu` but not `news` or `news.eu.fr`; `user.42.#` matches `user.42`, `user.42.inbox` and
//! `user.42.inbox.unread`; `#` alone matches every topic. `*` and `#` cannot be part of a longer
//! segment (`news*` is refused), which keeps the rule one a person can read at a glance; topic
//! names cannot contain `*` or `#`, so a pattern never means two things.
//!
//! Matching walks the topic once against each pattern, without allocating: the cost is linear in
//! the number of patterns a connection holds (see docs/benchmarks.md).

use std::fmt;
use std::sync::Arc;

use serde_json::Value;

/// The byte that splits topic names into segments for matching.
pub const SEPARATOR: char = '.';
/// The claim's default name (`topic_permissions_claim`).
pub const DEFAULT_CLAIM: &str = "topics";

/// What a connection asks to do with a topic.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Action {
    Subscribe,
    Publish,
}

impl Action {
    pub const ALL: [Action; 2] = [Action::Subscribe, Action::Publish];

    /// The claim field and metric label: `subscribe` or `publish`.
    pub fn name(self) -> &'static str {
        match self {
            Action::Subscribe => "subscribe",
            Action::Publish => "publish",
        }
    }
}

/// One segment of a pattern.
#[derive(Clone, Debug, PartialEq, Eq)]
enum Segment {
    Literal(Box<str>),
    /// `*`: exactly one segment.
    One,
    /// `#`: the rest of the topic, zero or more segments; only last.
    Rest,
}

/// A compiled topic pattern such as `user.42.#`.
#[derive(Clone, PartialEq, Eq)]
pub struct TopicPattern {
    text: Box<str>,
    segments: Box<[Segment]>,
}

impl fmt::Debug for TopicPattern {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:?}", self.text)
    }
}

impl fmt::Display for TopicPattern {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.text)
    }
}

/// Why a pattern was refused; the message says what to write instead.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum PatternError {
    #[error("the topic pattern is empty (write \"#\" for every topic)")]
    Empty,
    #[error(
        "the topic pattern {pattern:?} has {found:?} at byte {at}: only A-Z a-z 0-9 . _ : / - \
         and the wildcards * and # are allowed"
    )]
    BadChar {
        pattern: String,
        found: char,
        at: usize,
    },
    #[error(
        "the topic pattern {pattern:?} uses * or # inside a segment: a wildcard is a whole \
         segment between dots, as in news.* or user.42.#"
    )]
    PartialWildcard { pattern: String },
    #[error("the topic pattern {pattern:?} has # before its last segment: # matches the rest")]
    RestNotLast { pattern: String },
}

/// Longest pattern quoted back in an error.
const MAX_QUOTED_CHARS: usize = 64;

fn quoted(text: &str) -> String {
    text.chars().take(MAX_QUOTED_CHARS).collect()
}

impl TopicPattern {
    pub fn parse(text: &str) -> Result<TopicPattern, PatternError> {
        if text.is_empty() {
            return Err(PatternError::Empty);
        }
        if let Some((at, found)) = text
            .char_indices()
            .find(|&(_, c)| !(is_topic_char(c) || c == '*' || c == '#'))
        {
            return Err(PatternError::BadChar {
                pattern: quoted(text),
                found,
                at,
            });
        }
        let parts: Vec<&str> = text.split(SEPARATOR).collect();
        let last = parts.len() - 1;
        let mut segments = Vec::with_capacity(parts.len());
        for (i, part) in parts.into_iter().enumerate() {
            segments.push(match part {
                "*" => Segment::One,
                "#" if i == last => Segment::Rest,
                "#" => {
                    return Err(PatternError::RestNotLast {
                        pattern: quoted(text),
                    })
                }
                literal if literal.contains(['*', '#']) => {
                    return Err(PatternError::PartialWildcard {
                        pattern: quoted(text),
                    })
                }
                literal => Segment::Literal(literal.into()),
            });
        }
        Ok(TopicPattern {
            text: text.into(),
            segments: segments.into(),
        })
    }

    /// Does `topic` match? Any string may be asked; names that are not valid topics simply
    /// match what their segments match.
    pub fn matches(&self, topic: &str) -> bool {
        let mut parts = topic.split(SEPARATOR);
        for segment in self.segments.iter() {
            match segment {
                Segment::Rest => return true,
                Segment::One => {
                    if parts.next().is_none() {
                        return false;
                    }
                }
                Segment::Literal(literal) => {
                    if parts.next() != Some(&**literal) {
                        return false;
                    }
                }
            }
        }
        parts.next().is_none()
    }

    pub fn as_str(&self) -> &str {
        &self.text
    }
}

fn is_topic_char(c: char) -> bool {
    c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | ':' | '/' | '-')
}

/// What one action is granted: every topic, or the topics some pattern matches (none when the
/// list is empty).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Grant {
    All,
    Only(Vec<TopicPattern>),
}

impl Grant {
    pub fn allows(&self, topic: &str) -> bool {
        match self {
            Grant::All => true,
            Grant::Only(patterns) => patterns.iter().any(|p| p.matches(topic)),
        }
    }

    fn parse_list<'a>(patterns: impl IntoIterator<Item = &'a str>) -> Result<Grant, PatternError> {
        let patterns = patterns
            .into_iter()
            .map(TopicPattern::parse)
            .collect::<Result<Vec<_>, _>>()?;
        Ok(Grant::Only(patterns))
    }
}

impl fmt::Display for Grant {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Grant::All => f.write_str("any topic"),
            Grant::Only(patterns) if patterns.is_empty() => f.write_str("no topic"),
            Grant::Only(patterns) => {
                for (i, p) in patterns.iter().enumerate() {
                    if i > 0 {
                        f.write_str(", ")?;
                    }
                    f.write_str(p.as_str())?;
                }
                Ok(())
            }
        }
    }
}

/// What a connection may do, per action.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TopicPermissions {
    pub subscribe: Grant,
    pub publish: Grant,
}

/// Why a permissions claim or token-file field was refused.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum ClaimError {
    #[error("the topic permissions are not a JSON object such as {{\"subscribe\":[\"news.*\"],\"publish\":[]}}")]
    NotAnObject,
    #[error(
        "the topic permissions have the field {0:?}: only \"subscribe\" and \"publish\" are read"
    )]
    UnknownField(String),
    #[error("the topic permissions field {0:?} is not a list of topic pattern strings")]
    NotAList(&'static str),
    #[error("{0}")]
    Pattern(PatternError),
    #[error("{0:?} is not a topic permissions field: write subscribe=PATTERNS or publish=PATTERNS (comma-separated)")]
    UnknownTokenField(String),
    #[error("the topic permissions name {0:?} twice")]
    Repeated(&'static str),
}

impl TopicPermissions {
    /// Everything allowed: no claim and `topic_permissions_default = "allow"`.
    pub fn allow_all() -> TopicPermissions {
        TopicPermissions {
            subscribe: Grant::All,
            publish: Grant::All,
        }
    }

    /// Nothing allowed: no claim and `topic_permissions_default = "deny"`.
    pub fn deny_all() -> TopicPermissions {
        TopicPermissions {
            subscribe: Grant::Only(Vec::new()),
            publish: Grant::Only(Vec::new()),
        }
    }

    pub fn allows(&self, action: Action, topic: &str) -> bool {
        self.grant(action).allows(topic)
    }

    pub fn grant(&self, action: Action) -> &Grant {
        match action {
            Action::Subscribe => &self.subscribe,
            Action::Publish => &self.publish,
        }
    }

    /// True when no check can refuse anything (no need to remember them per connection).
    pub fn allows_everything(&self) -> bool {
        self.subscribe == Grant::All && self.publish == Grant::All
    }

    /// The JWT claim: `{"subscribe":["news.*"],"publish":["chat.#"]}`. An action the claim does
    /// not list is granted on no topic: a claim is an explicit grant.
    pub fn from_claim(claim: &Value) -> Result<TopicPermissions, ClaimError> {
        let Value::Object(fields) = claim else {
            return Err(ClaimError::NotAnObject);
        };
        if let Some(other) = fields
            .keys()
            .find(|k| !Action::ALL.iter().any(|a| a.name() == k.as_str()))
        {
            return Err(ClaimError::UnknownField(quoted(other)));
        }
        let grant = |action: Action| -> Result<Grant, ClaimError> {
            match fields.get(action.name()) {
                None => Ok(Grant::Only(Vec::new())),
                Some(Value::Array(items)) => {
                    let texts = items
                        .iter()
                        .map(|item| item.as_str().ok_or(ClaimError::NotAList(action.name())))
                        .collect::<Result<Vec<&str>, _>>()?;
                    Grant::parse_list(texts).map_err(ClaimError::Pattern)
                }
                Some(_) => Err(ClaimError::NotAList(action.name())),
            }
        };
        Ok(TopicPermissions {
            subscribe: grant(Action::Subscribe)?,
            publish: grant(Action::Publish)?,
        })
    }

    /// The fields after the token on a line of `auth_tokens_file`: `subscribe=news.*,user.42.#
    /// publish=chat.*` (whitespace-separated, patterns comma-separated, `subscribe=` alone for
    /// none). As with the claim, an action not named is granted on no topic.
    pub fn from_token_fields<'a>(
        fields: impl IntoIterator<Item = &'a str>,
    ) -> Result<TopicPermissions, ClaimError> {
        let mut found: [Option<Grant>; 2] = [None, None];
        for field in fields {
            let (name, list) = field.split_once('=').unwrap_or((field, ""));
            let Some(index) = Action::ALL.iter().position(|a| a.name() == name) else {
                return Err(ClaimError::UnknownTokenField(quoted(field)));
            };
            if found[index].is_some() {
                return Err(ClaimError::Repeated(Action::ALL[index].name()));
            }
            let patterns = list.split(',').filter(|p| !p.is_empty());
            found[index] = Some(Grant::parse_list(patterns).map_err(ClaimError::Pattern)?);
        }
        let [subscribe, publish] = found.map(|g| g.unwrap_or(Grant::Only(Vec::new())));
        Ok(TopicPermissions { subscribe, publish })
    }
}

impl fmt::Display for TopicPermissions {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "subscribe: {}; publish: {}",
            self.subscribe, self.publish
        )
    }
}

/// What a connection gets when its token carries no permissions (`topic_permissions_default`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum DefaultPermissions {
    /// Any topic, as before permissions existed.
    #[default]
    Allow,
    /// No topic: every token must carry its permissions.
    Deny,
}

impl DefaultPermissions {
    pub const ALL: [DefaultPermissions; 2] = [DefaultPermissions::Allow, DefaultPermissions::Deny];

    pub fn name(self) -> &'static str {
        match self {
            DefaultPermissions::Allow => "allow",
            DefaultPermissions::Deny => "deny",
        }
    }

    /// The shared permission set it stands for.
    pub fn permissions(self) -> Arc<TopicPermissions> {
        Arc::new(match self {
            DefaultPermissions::Allow => TopicPermissions::allow_all(),
            DefaultPermissions::Deny => TopicPermissions::deny_all(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn pattern(text: &str) -> TopicPattern {
        TopicPattern::parse(text).unwrap()
    }

    #[test]
    fn literal_patterns_match_only_themselves() {
        let p = pattern("news.eu");
        assert!(p.matches("news.eu"));
        for other in ["news", "news.eu.fr", "news.e", "news.euro", "xnews.eu", ""] {
            assert!(!p.matches(other), "{other}");
        }
        // `/` and `:` are ordinary characters inside a segment.
        assert!(pattern("a/b:c").matches("a/b:c"));
        assert!(!pattern("a/b:c").matches("a/b"));
    }

    #[test]
    fn star_is_exactly_one_segment() {
        let p = pattern("news.*");
        assert!(p.matches("news.eu"));
        assert!(p.matches("news."), "an empty segment is a segment");
        assert!(!p.matches("news"));
        assert!(!p.matches("news.eu.fr"));
        assert!(!p.matches("sports.eu"));
        let middle = pattern("user.*.inbox");
        assert!(middle.matches("user.42.inbox"));
        assert!(!middle.matches("user.42.outbox"));
        assert!(!middle.matches("user.42.43.inbox"));
        assert!(pattern("*").matches("news"));
        assert!(!pattern("*").matches("news.eu"));
    }

    #[test]
    fn hash_is_the_rest_of_the_topic() {
        let p = pattern("user.42.#");
        for yes in ["user.42", "user.42.inbox", "user.42.inbox.unread"] {
            assert!(p.matches(yes), "{yes}");
        }
        for no in [
            "user.4",
            "user.421",
            "user.421.inbox",
            "user",
            "user.43.inbox",
        ] {
            assert!(!p.matches(no), "{no}");
        }
        assert!(pattern("#").matches("anything.at.all"));
        assert!(pattern("*.#").matches("a.b.c"));
        assert!(
            !pattern("*.*.#").matches("a"),
            "# cannot stand for a missing * segment"
        );
    }

    #[test]
    fn bad_patterns_say_why() {
        assert_eq!(TopicPattern::parse(""), Err(PatternError::Empty));
        assert!(matches!(
            TopicPattern::parse("news*"),
            Err(PatternError::PartialWildcard { .. })
        ));
        assert!(matches!(
            TopicPattern::parse("a.#.b"),
            Err(PatternError::RestNotLast { .. })
        ));
        assert!(matches!(
            TopicPattern::parse("a b"),
            Err(PatternError::BadChar {
                found: ' ',
                at: 1,
                ..
            })
        ));
        assert!(matches!(
            TopicPattern::parse("ä"),
            Err(PatternError::BadChar { found: 'ä', .. })
        ));
        let long = format!("{}*", "x".repeat(1000));
        let message = TopicPattern::parse(&long).unwrap_err().to_string();
        assert!(message.len() < 300, "{message}");
    }

    #[test]
    fn claims_grant_per_action() {
        let perms = TopicPermissions::from_claim(
            &json!({"subscribe": ["news.*", "user.42.#"], "publish": ["chat.room1"]}),
        )
        .unwrap();
        assert!(perms.allows(Action::Subscribe, "news.eu"));
        assert!(perms.allows(Action::Subscribe, "user.42.inbox"));
        assert!(!perms.allows(Action::Subscribe, "user.43.inbox"));
        assert!(!perms.allows(Action::Subscribe, "chat.room1"));
        assert!(perms.allows(Action::Publish, "chat.room1"));
        assert!(!perms.allows(Action::Publish, "news.eu"));
        assert_eq!(
            perms.to_string(),
            "subscribe: news.*, user.42.#; publish: chat.room1"
        );

        let only_subscribe = TopicPermissions::from_claim(&json!({"subscribe": ["#"]})).unwrap();
        assert!(only_subscribe.allows(Action::Subscribe, "x"));
        assert!(
            !only_subscribe.allows(Action::Publish, "x"),
            "not listed: none"
        );
        assert_eq!(
            only_subscribe.to_string(),
            "subscribe: #; publish: no topic"
        );
    }

    #[test]
    fn bad_claims_are_refused() {
        for claim in [
            json!(["news"]),
            json!("news.*"),
            json!({"subscribe": "news.*"}),
            json!({"subscribe": [1]}),
            json!({"subcribe": ["news"]}),
            json!({"publish": ["a.#.b"]}),
            json!({"publish": [""]}),
        ] {
            assert!(TopicPermissions::from_claim(&claim).is_err(), "{claim}");
        }
    }

    #[test]
    fn token_file_fields() {
        let perms =
            TopicPermissions::from_token_fields(["subscribe=news.*,user.42.#", "publish=chat.*"])
                .unwrap();
        assert!(perms.allows(Action::Subscribe, "user.42.x"));
        assert!(perms.allows(Action::Publish, "chat.a"));
        assert!(!perms.allows(Action::Publish, "news.a"));
        let none = TopicPermissions::from_token_fields(["subscribe="]).unwrap();
        assert_eq!(none, TopicPermissions::deny_all());
        assert_eq!(
            TopicPermissions::from_token_fields(["subscribe=a", "subscribe=b"]),
            Err(ClaimError::Repeated("subscribe"))
        );
        assert!(matches!(
            TopicPermissions::from_token_fields(["read=a"]),
            Err(ClaimError::UnknownTokenField(_))
        ));
        assert!(matches!(
            TopicPermissions::from_token_fields(["publish=a,b*"]),
            Err(ClaimError::Pattern(PatternError::PartialWildcard { .. }))
        ));
    }

    #[test]
    fn defaults() {
        assert!(DefaultPermissions::Allow.permissions().allows_everything());
        let deny = DefaultPermissions::Deny.permissions();
        assert!(!deny.allows(Action::Subscribe, "a"));
        assert!(!deny.allows(Action::Publish, "a"));
    }
}
