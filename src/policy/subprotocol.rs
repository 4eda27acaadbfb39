//! Subprotocol negotiation (RFC 6455 §4.2.2, `Sec-WebSocket-Protocol`).
//!
//! The server lists what it speaks in preference order; the first of those the client offered
//! is chosen. The answer only ever names a protocol the client offered (a browser fails the
//! connection otherwise), and it is the client's own spelling, borrowed from its request.

use crate::protocol::{Refusal, RefusalReason};

/// Most client offers looked at; a longer list is cut there (real clients offer a handful).
pub const MAX_OFFERED: usize = 64;
/// Most subprotocols a server may configure.
pub const MAX_SUBPROTOCOLS: usize = 64;
/// Longest client offer quoted back in a refusal.
const MAX_QUOTED_OFFER_BYTES: usize = 128;

/// Why a configured subprotocol name was refused.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum SubprotocolNameError {
    #[error("a subprotocol name cannot be empty")]
    Empty,
    #[error(
        "{0:?} is not a subprotocol name: use letters, digits and !#$%&'*+-.^_`|~ (no spaces, \
         commas or quotes)"
    )]
    NotAToken(String),
}

/// Checks one configured name: an HTTP token (RFC 9110 §5.6.2), as RFC 6455 §4.1 requires.
pub fn check_name(name: &str) -> Result<(), SubprotocolNameError> {
    if name.is_empty() {
        return Err(SubprotocolNameError::Empty);
    }
    if !name.bytes().all(is_tchar) {
        return Err(SubprotocolNameError::NotAToken(name.to_owned()));
    }
    Ok(())
}

fn is_tchar(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b)
}

/// The tokens of a `Sec-WebSocket-Protocol` value, trimmed, empty items skipped, bounded.
pub fn offered(header: &str) -> impl Iterator<Item = &str> {
    header
        .split(',')
        .map(str::trim)
        .filter(|token| !token.is_empty())
        .take(MAX_OFFERED)
}

/// The server's subprotocols and whether one is required.
#[derive(Clone, Debug, Default)]
pub struct SubprotocolPolicy {
    /// Preference order, first is best. Empty: never select one, whatever the client offers.
    supported: Vec<String>,
    required: bool,
}

impl SubprotocolPolicy {
    /// `supported` holds valid, distinct names (see [`check_name`]), at most
    /// [`MAX_SUBPROTOCOLS`].
    pub fn new(supported: Vec<String>, required: bool) -> Self {
        assert!(supported.len() <= MAX_SUBPROTOCOLS, "bounded by config");
        debug_assert!(supported.iter().all(|name| check_name(name).is_ok()));
        SubprotocolPolicy {
            supported,
            required,
        }
    }

    /// The protocol to answer with: the first of the server's list the client offered, as the
    /// client wrote it. `Ok(None)`: answer without one. `Err`: 400, listing what is supported.
    pub fn select<'a>(&self, header: Option<&'a str>) -> Result<Option<&'a str>, Refusal> {
        self.select_lines(header.into_iter())
    }

    /// [`select`](Self::select) over an offer split across several header lines.
    pub fn select_lines<'a>(
        &self,
        lines: impl Iterator<Item = &'a str> + Clone,
    ) -> Result<Option<&'a str>, Refusal> {
        if self.supported.is_empty() {
            return Ok(None);
        }
        let header = lines.clone().next();
        for wanted in &self.supported {
            let mut all = lines.clone().flat_map(offered);
            if let Some(chosen) = all.find(|offer| offer == wanted) {
                return Ok(Some(chosen));
            }
        }
        if !self.required {
            return Ok(None);
        }
        let offered = match header.map(str::trim).filter(|h| !h.is_empty()) {
            Some(header) => format!(
                "offered {:?}",
                crate::protocol::refusal::one_line(header, MAX_QUOTED_OFFER_BYTES)
            ),
            None => "offered none".to_owned(),
        };
        Err(Refusal::with_detail(
            RefusalReason::SubprotocolMismatch,
            format!("{offered}; supported: {}", self.supported.join(", ")),
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn policy(supported: &[&str], required: bool) -> SubprotocolPolicy {
        SubprotocolPolicy::new(supported.iter().map(|s| s.to_string()).collect(), required)
    }

    #[test]
    fn the_server_preference_wins() {
        let p = policy(&["chat.v2", "chat.v1"], false);
        assert_eq!(p.select(Some("chat.v1, chat.v2")), Ok(Some("chat.v2")));
        assert_eq!(p.select(Some("chat.v2, chat.v1")), Ok(Some("chat.v2")));
        assert_eq!(p.select(Some("other, chat.v1")), Ok(Some("chat.v1")));
        assert_eq!(p.select(Some("chat.v1")), Ok(Some("chat.v1")));
    }

    #[test]
    fn tokens_are_trimmed_and_empty_items_skipped() {
        let p = policy(&["mqtt"], false);
        assert_eq!(p.select(Some("  ,, x ,\tmqtt\t, ")), Ok(Some("mqtt")));
        assert_eq!(
            offered(" a ,b,, c ").collect::<Vec<_>>(),
            vec!["a", "b", "c"]
        );
    }

    #[test]
    fn never_answers_with_a_protocol_the_client_did_not_offer() {
        let p = policy(&["chat", "superchat"], false);
        for header in [
            None,
            Some(""),
            Some("Chat"),
            Some("chatty"),
            Some("chat.v1"),
            Some("superchat2, xchat"),
            Some("\"chat\""),
        ] {
            let chosen = p.select(header).unwrap();
            assert_eq!(chosen, None, "{header:?}");
        }
        // Whatever is chosen is one of the offered tokens, borrowed from the header.
        let header = String::from("x, superchat, chat");
        let chosen = p.select(Some(&header)).unwrap().unwrap();
        assert_eq!(chosen, "chat");
        assert!(offered(&header).any(|t| std::ptr::eq(t, chosen)));
    }

    #[test]
    fn no_server_list_ignores_the_offer() {
        let p = policy(&[], false);
        assert_eq!(p.select(Some("chat")), Ok(None));
        assert_eq!(p.select(None), Ok(None));
        let p = policy(&[], true);
        assert_eq!(p.select(Some("chat")), Ok(None));
    }

    #[test]
    fn required_refuses_with_the_supported_list() {
        let p = policy(&["chat.v2", "chat.v1"], true);
        let refusal = p.select(Some("graphql-ws, mqtt")).unwrap_err();
        assert_eq!(refusal.reason, RefusalReason::SubprotocolMismatch);
        assert_eq!(refusal.reason.status(), 400);
        assert_eq!(
            refusal.detail.as_deref(),
            Some("offered \"graphql-ws, mqtt\"; supported: chat.v2, chat.v1")
        );
        let refusal = p.select(None).unwrap_err();
        assert_eq!(
            refusal.detail.as_deref(),
            Some("offered none; supported: chat.v2, chat.v1")
        );
        assert!(p.select(Some(" ")).is_err());
        assert_eq!(p.select(Some("chat.v1")), Ok(Some("chat.v1")));
    }

    #[test]
    fn offers_are_bounded() {
        let p = policy(&["late"], false);
        let mut header: String = (0..MAX_OFFERED).map(|i| format!("p{i},")).collect();
        header.push_str("late");
        assert_eq!(p.select(Some(&header)), Ok(None), "past the bound");
        let header = format!("late,{header}");
        assert_eq!(p.select(Some(&header)), Ok(Some("late")));
    }

    #[test]
    fn names_are_tokens() {
        for good in ["chat", "v2.chat+json", "graphql-transport-ws", "a_b~c"] {
            assert_eq!(check_name(good), Ok(()), "{good}");
        }
        assert_eq!(check_name(""), Err(SubprotocolNameError::Empty));
        for bad in ["a b", "a,b", "\"a\"", "a;b", "caf\u{e9}", "a/b"] {
            assert!(check_name(bad).is_err(), "{bad}");
        }
    }
}
