//! Arbitrary bytes as a topic permissions claim (JSON), a tokens-file permissions field and a
//! topic: parsing never panics, and matching agrees with a plain reference matcher that splits
//! both at the separator.

#![no_main]

use libfuzzer_sys::fuzz_target;
use ringws::policy::topic_acl::{Action, TopicPattern, TopicPermissions, SEPARATOR};

/// The rule, written as plainly as possible: `*` is one segment, a last `#` the rest.
fn reference(pattern: &str, topic: &str) -> bool {
    let p: Vec<&str> = pattern.split(SEPARATOR).collect();
    let t: Vec<&str> = topic.split(SEPARATOR).collect();
    if p.last() == Some(&"#") {
        let fixed = &p[..p.len() - 1];
        t.len() >= fixed.len() && fixed.iter().zip(&t).all(|(p, t)| *p == "*" || p == t)
    } else {
        p.len() == t.len() && p.iter().zip(&t).all(|(p, t)| *p == "*" || p == t)
    }
}

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    // The first line is a pattern, the second a topic, the rest a claim or a field list.
    let mut lines = text.splitn(3, '\n');
    let (pattern, topic, rest) = (
        lines.next().unwrap_or(""),
        lines.next().unwrap_or(""),
        lines.next().unwrap_or(""),
    );
    if let Ok(compiled) = TopicPattern::parse(pattern) {
        assert_eq!(
            compiled.matches(topic),
            reference(pattern, topic),
            "{pattern:?} vs {topic:?}"
        );
    }
    if let Ok(claim) = serde_json::from_str::<serde_json::Value>(rest) {
        if let Ok(permissions) = TopicPermissions::from_claim(&claim) {
            for action in Action::ALL {
                let _ = permissions.allows(action, topic);
            }
            let _ = permissions.to_string();
        }
    }
    if let Ok(permissions) = TopicPermissions::from_token_fields(rest.split_whitespace()) {
        let _ = permissions.allows(Action::Subscribe, topic);
    }
});
