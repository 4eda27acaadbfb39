//! Topic names: what is allowed, and decoding them from URLs.
//!
//! A topic name is 1 to `max_topic_length` bytes of `A-Z a-z 0-9 . _ : / -`. The set is small on
//! purpose: names pass through URLs, JSON, logs and metrics without escaping.

use std::borrow::Cow;

/// Why a topic name was refused. The message says what to change.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum TopicError {
    #[error("the topic name is empty")]
    Empty,
    #[error("the topic name is {len} bytes, over max_topic_length ({max})")]
    TooLong { len: usize, max: usize },
    #[error("the topic name has {found:?} at byte {at}: only A-Z a-z 0-9 . _ : / - are allowed")]
    BadChar { found: char, at: usize },
    #[error("the topic name has a malformed percent-escape at byte {at}")]
    BadEscape { at: usize },
}

/// Checks `name` against the topic rules.
pub fn validate(name: &str, max_len: usize) -> Result<(), TopicError> {
    if name.is_empty() {
        return Err(TopicError::Empty);
    }
    if name.len() > max_len {
        return Err(TopicError::TooLong {
            len: name.len(),
            max: max_len,
        });
    }
    match name.bytes().position(|b| !is_topic_byte(b)) {
        None => Ok(()),
        Some(at) => Err(TopicError::BadChar {
            found: name[at..].chars().next().unwrap_or('?'),
            at,
        }),
    }
}

fn is_topic_byte(b: u8) -> bool {
    b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b':' | b'/' | b'-')
}

/// Decodes `%XX` escapes (and `+` as a space, as forms do), then validates the result.
/// Borrowed when there is nothing to decode, the usual case.
pub fn decode(raw: &str, max_len: usize) -> Result<Cow<'_, str>, TopicError> {
    if !raw.bytes().any(|b| b == b'%' || b == b'+') {
        validate(raw, max_len)?;
        return Ok(Cow::Borrowed(raw));
    }
    let bytes = raw.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'%' => {
                let hex = bytes
                    .get(i + 1..i + 3)
                    .and_then(|h| std::str::from_utf8(h).ok())
                    .and_then(|h| u8::from_str_radix(h, 16).ok())
                    .ok_or(TopicError::BadEscape { at: i })?;
                out.push(hex);
                i += 3;
            }
            b'+' => {
                out.push(b' ');
                i += 1;
            }
            b => {
                out.push(b);
                i += 1;
            }
        }
    }
    // Any byte that is not a topic byte (including non-ASCII) is refused by `validate`; lossy
    // conversion only shapes the error message.
    let text = String::from_utf8_lossy(&out).into_owned();
    validate(&text, max_len)?;
    Ok(Cow::Owned(text))
}

/// The values of every `topic=` parameter of a query string, still percent-encoded.
pub fn query_topics(query: &str) -> impl Iterator<Item = &str> {
    query
        .split('&')
        .filter_map(|pair| pair.split_once('=').filter(|(k, _)| *k == "topic"))
        .map(|(_, v)| v)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accepts_the_documented_alphabet() {
        assert_eq!(validate("a", 128), Ok(()));
        assert_eq!(
            validate("Prices.EUR-USD/tick_1:raw", 128),
            Ok(()),
            "every punctuation mark allowed"
        );
        assert_eq!(validate(&"x".repeat(128), 128), Ok(()));
    }

    #[test]
    fn refuses_empty_long_and_foreign_names() {
        assert_eq!(validate("", 128), Err(TopicError::Empty));
        assert_eq!(
            validate(&"x".repeat(129), 128),
            Err(TopicError::TooLong { len: 129, max: 128 })
        );
        assert_eq!(
            validate("a b", 128),
            Err(TopicError::BadChar { found: ' ', at: 1 })
        );
        assert_eq!(
            validate("é", 128),
            Err(TopicError::BadChar { found: 'é', at: 0 })
        );
        for bad in ["a*", "a#", "a?", "a&b", "a\"", "a\n", "a%"] {
            assert!(validate(bad, 128).is_err(), "{bad:?}");
        }
        let msg = validate("a b", 128).unwrap_err().to_string();
        assert!(msg.contains("A-Z a-z 0-9 . _ : / -"), "{msg}");
    }

    #[test]
    fn decodes_percent_escapes_and_validates_after() {
        assert!(matches!(decode("news", 128), Ok(Cow::Borrowed("news"))));
        assert_eq!(decode("a%2Fb%3ac", 128).unwrap(), "a/b:c");
        assert_eq!(decode("%2", 128), Err(TopicError::BadEscape { at: 0 }));
        assert_eq!(decode("a%zz", 128), Err(TopicError::BadEscape { at: 1 }));
        assert_eq!(
            decode("a+b", 128),
            Err(TopicError::BadChar { found: ' ', at: 1 })
        );
        assert!(decode("%C3%A9", 128).is_err(), "non-ASCII stays refused");
        assert!(decode("%00", 128).is_err());
        assert_eq!(
            decode("%61%61%61", 2),
            Err(TopicError::TooLong { len: 3, max: 2 }),
            "the length limit applies to the decoded name"
        );
    }

    #[test]
    fn finds_every_topic_parameter() {
        let q = "topic=a&token=x&topic=b%2Fc&topics=no&topic=";
        assert_eq!(query_topics(q).collect::<Vec<_>>(), ["a", "b%2Fc", ""]);
        assert_eq!(query_topics("").count(), 0);
    }
}
