//! The client's side of the permessage-deflate negotiation (RFC 7692 §5, §7.1): the offer
//! ringws's client role sends, and the server's answer judged against it.
//!
//! The offer asks for no context takeover both ways, so the client, like the server, keeps no
//! compression state between messages: the per-core [`codec`](super::codec) serves both roles.
//! Unlike a server, which declines an offer it does not like and carries on, a client must fail
//! the connection on an answer that breaks the RFC: an extension accepted twice, a parameter
//! that is unknown, repeated or without a valid value, `client_max_window_bits` when the offer
//! did not have it, or (our own requirement, since we asked for it) no
//! `server_no_context_takeover`.

use super::negotiate::{parse_param, split_outside_quotes, window_bits, MAX_WINDOW_BITS};

/// What ringws's client role offers: each message compressed on its own in both directions,
/// and the server free to limit the client's window.
pub const CLIENT_OFFER: &str = "permessage-deflate; server_no_context_takeover; \
                                client_no_context_takeover; client_max_window_bits";

/// What a server's permessage-deflate answer settled.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Answer {
    /// The server compresses each message on its own.
    pub server_no_context_takeover: bool,
    /// The server asks the client to compress each message on its own (it always does).
    pub client_no_context_takeover: bool,
    /// The window the server compresses with, when it says (informational: the decompressor
    /// takes any window).
    pub server_max_window_bits: Option<u8>,
    /// The window the client must keep within.
    pub client_max_window_bits: Option<u8>,
}

impl Answer {
    /// The window the client's compressor must keep within, in bits. The compressor's window
    /// is always 32 KiB, so under a smaller limit only messages no longer than the window are
    /// compressed ([`Negotiated::compresses`](super::Negotiated::compresses)).
    pub fn client_window_bits(&self) -> u8 {
        self.client_max_window_bits.unwrap_or(MAX_WINDOW_BITS)
    }

    /// Whether the client may send a message of `len` bytes compressed with a 32 KiB window:
    /// the server set no smaller window, or the message fits in it.
    pub fn client_may_compress(&self, len: usize) -> bool {
        let bits = self.client_window_bits();
        bits >= MAX_WINDOW_BITS || len <= 1 << bits
    }
}

/// The answer as a header value, parameters in a fixed order (for people: doctor shows it).
impl std::fmt::Display for Answer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("permessage-deflate")?;
        if self.server_no_context_takeover {
            f.write_str("; server_no_context_takeover")?;
        }
        if self.client_no_context_takeover {
            f.write_str("; client_no_context_takeover")?;
        }
        if let Some(bits) = self.server_max_window_bits {
            write!(f, "; server_max_window_bits={bits}")?;
        }
        if let Some(bits) = self.client_max_window_bits {
            write!(f, "; client_max_window_bits={bits}")?;
        }
        Ok(())
    }
}

/// What the offer said, as far as judging the answer needs.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Offered {
    /// Every permessage-deflate offer asked for `server_no_context_takeover`: an answer must
    /// then include it (RFC 7692 §7.1.1.1: that is how a server accepts it).
    pub server_no_context_takeover: bool,
    /// Some offer allowed `client_max_window_bits`: without it, an answer with it fails the
    /// connection (RFC 7692 §7.1.2.2).
    pub client_max_window_bits: bool,
}

impl Offered {
    /// Reads a `Sec-WebSocket-Extensions` value as sent. No permessage-deflate offer in it:
    /// nothing allowed (an answer accepting it fails the upgrade before this is asked).
    pub fn parse(offer: &str) -> Offered {
        let mut any = false;
        let mut offered = Offered {
            server_no_context_takeover: true,
            client_max_window_bits: false,
        };
        for element in split_outside_quotes(offer.as_bytes(), b',') {
            let mut parts = split_outside_quotes(element, b';');
            let name = parts.next().unwrap_or_default().trim_ascii();
            if !name.eq_ignore_ascii_case(b"permessage-deflate") {
                continue;
            }
            any = true;
            let (mut no_takeover, mut window) = (false, false);
            for (param, _) in parts.filter_map(|part| parse_param(part).ok()) {
                no_takeover |= param.eq_ignore_ascii_case(b"server_no_context_takeover");
                window |= param.eq_ignore_ascii_case(b"client_max_window_bits");
            }
            offered.server_no_context_takeover &= no_takeover;
            offered.client_max_window_bits |= window;
        }
        offered.server_no_context_takeover &= any;
        offered
    }
}

/// Why a server's permessage-deflate answer fails the connection.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
pub enum AnswerError {
    #[error("permessage-deflate is accepted more than once")]
    Repeated,
    #[error("the permessage-deflate parameters are malformed")]
    Malformed,
    #[error("a parameter RFC 7692 does not define for an answer")]
    UnknownParameter,
    #[error("a parameter appears twice")]
    RepeatedParameter,
    #[error(
        "a parameter has an invalid value (window sizes take 8 to 15, the \
         no_context_takeover flags take none)"
    )]
    InvalidValue,
    #[error("client_max_window_bits, which the offer did not include")]
    ClientWindowNotOffered,
    #[error(
        "no server_no_context_takeover, which the offer asked for (the server would compress \
         with a window kept from message to message)"
    )]
    ContextTakeover,
}

/// The answer's parameters, each with its bit in `seen`.
const PARAMETERS: [&[u8]; 4] = [
    b"server_no_context_takeover",
    b"client_no_context_takeover",
    b"server_max_window_bits",
    b"client_max_window_bits",
];

/// Judges the `Sec-WebSocket-Extensions` lines of a 101 against what was offered: `Ok(None)`
/// when permessage-deflate was not accepted. Other extensions are left to the caller (an
/// extension not offered fails the upgrade in
/// [`check_upgrade`](crate::protocol::client_handshake::check_upgrade)).
pub fn parse_answer<'a>(
    lines: impl IntoIterator<Item = &'a [u8]>,
    offered: Offered,
) -> Result<Option<Answer>, AnswerError> {
    let mut found = None;
    for line in lines {
        for element in split_outside_quotes(line, b',') {
            let mut parts = split_outside_quotes(element, b';');
            let name = parts.next().unwrap_or_default().trim_ascii();
            if !name.eq_ignore_ascii_case(b"permessage-deflate") {
                continue;
            }
            if found.is_some() {
                return Err(AnswerError::Repeated);
            }
            found = Some(judge(parts, offered)?);
        }
    }
    Ok(found)
}

fn judge<'a>(
    parts: impl Iterator<Item = &'a [u8]>,
    offered: Offered,
) -> Result<Answer, AnswerError> {
    let mut answer = Answer::default();
    let mut seen = 0u8;
    for part in parts {
        let (param, value) = parse_param(part).map_err(|_| AnswerError::Malformed)?;
        let Some(i) = PARAMETERS
            .iter()
            .position(|name| param.eq_ignore_ascii_case(name))
        else {
            return Err(AnswerError::UnknownParameter);
        };
        if seen & (1 << i) != 0 {
            return Err(AnswerError::RepeatedParameter);
        }
        seen |= 1 << i;
        let bits = |value| window_bits(value).ok_or(AnswerError::InvalidValue);
        match (i, value) {
            (0, None) => answer.server_no_context_takeover = true,
            (1, None) => answer.client_no_context_takeover = true,
            (2, Some(value)) => answer.server_max_window_bits = Some(bits(value)?),
            (3, _) if !offered.client_max_window_bits => {
                return Err(AnswerError::ClientWindowNotOffered)
            }
            // In an answer the value is required (RFC 7692 §7.1.2.2).
            (3, Some(value)) => answer.client_max_window_bits = Some(bits(value)?),
            _ => return Err(AnswerError::InvalidValue),
        }
    }
    if offered.server_no_context_takeover && !answer.server_no_context_takeover {
        return Err(AnswerError::ContextTakeover);
    }
    Ok(answer)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn client(line: &str) -> Result<Option<Answer>, AnswerError> {
        parse_answer([line.as_bytes()], Offered::parse(CLIENT_OFFER))
    }

    const NO_TAKEOVER: Answer = Answer {
        server_no_context_takeover: true,
        client_no_context_takeover: true,
        server_max_window_bits: None,
        client_max_window_bits: None,
    };

    #[test]
    fn the_client_offer_is_read_back() {
        assert_eq!(
            Offered::parse(CLIENT_OFFER),
            Offered {
                server_no_context_takeover: true,
                client_max_window_bits: true
            }
        );
        // A browser's offer: no server_no_context_takeover, a window the server may set.
        assert_eq!(
            Offered::parse("permessage-deflate; client_max_window_bits"),
            Offered {
                server_no_context_takeover: false,
                client_max_window_bits: true
            }
        );
        assert_eq!(Offered::parse("x-foo"), Offered::default());
        // Two offers: the answer may be to either.
        assert_eq!(
            Offered::parse("permessage-deflate; server_no_context_takeover, permessage-deflate"),
            Offered::default()
        );
    }

    #[test]
    fn what_ringws_answers_is_accepted() {
        let answer =
            client("permessage-deflate; server_no_context_takeover; client_no_context_takeover");
        assert_eq!(answer, Ok(Some(NO_TAKEOVER)));
        assert_eq!(NO_TAKEOVER.client_window_bits(), 15);
        let answer = client(
            "PerMessage-Deflate ; Server_No_Context_Takeover; client_no_context_takeover ; \
             server_max_window_bits=10",
        )
        .unwrap()
        .unwrap();
        assert_eq!(answer.server_max_window_bits, Some(10));
        assert_eq!(
            answer.to_string(),
            "permessage-deflate; server_no_context_takeover; client_no_context_takeover; \
             server_max_window_bits=10"
        );
    }

    #[test]
    fn client_max_window_bits_limits_the_client_only_when_offered() {
        let answer =
            client("permessage-deflate; server_no_context_takeover; client_max_window_bits=9")
                .unwrap()
                .unwrap();
        assert_eq!(answer.client_max_window_bits, Some(9));
        assert_eq!(answer.client_window_bits(), 9);
        assert!(answer.client_may_compress(512) && !answer.client_may_compress(513));
        assert!(NO_TAKEOVER.client_may_compress(1 << 20));
        let quoted =
            client("permessage-deflate; server_no_context_takeover; client_max_window_bits=\"12\"");
        assert_eq!(quoted.unwrap().unwrap().client_window_bits(), 12);
        // Offered without it: the client must fail the connection.
        let offered = Offered::parse("permessage-deflate; server_no_context_takeover");
        assert_eq!(
            parse_answer(
                [&b"permessage-deflate; server_no_context_takeover; client_max_window_bits=9"[..]],
                offered
            ),
            Err(AnswerError::ClientWindowNotOffered)
        );
        // In an answer the value is required.
        assert_eq!(
            client("permessage-deflate; server_no_context_takeover; client_max_window_bits"),
            Err(AnswerError::InvalidValue)
        );
    }

    #[test]
    fn an_answer_without_server_no_context_takeover_fails_when_it_was_asked_for() {
        assert_eq!(
            client("permessage-deflate"),
            Err(AnswerError::ContextTakeover)
        );
        assert_eq!(
            client("permessage-deflate; client_no_context_takeover"),
            Err(AnswerError::ContextTakeover)
        );
        // A browser-like offer did not ask: the bare answer is fine.
        let browser = Offered::parse("permessage-deflate; client_max_window_bits");
        assert_eq!(
            parse_answer([&b"permessage-deflate"[..]], browser),
            Ok(Some(Answer::default()))
        );
    }

    #[test]
    fn invalid_parameters_fail_the_connection() {
        let cases = [
            ("; mux", AnswerError::UnknownParameter),
            ("; x=1", AnswerError::UnknownParameter),
            (
                "; server_no_context_takeover",
                AnswerError::RepeatedParameter,
            ),
            (
                "; server_no_context_takeover=1",
                AnswerError::RepeatedParameter,
            ),
            ("; client_no_context_takeover=1", AnswerError::InvalidValue),
            ("; server_max_window_bits", AnswerError::InvalidValue),
            ("; server_max_window_bits=7", AnswerError::InvalidValue),
            ("; server_max_window_bits=16", AnswerError::InvalidValue),
            ("; server_max_window_bits=010", AnswerError::InvalidValue),
            ("; client_max_window_bits=99", AnswerError::InvalidValue),
            (
                "; server_max_window_bits=9; server_max_window_bits=9",
                AnswerError::RepeatedParameter,
            ),
            (";", AnswerError::Malformed),
            ("; =9", AnswerError::Malformed),
            ("; server_max_window_bits=\"9", AnswerError::Malformed),
        ];
        for (params, error) in cases {
            let line = format!("permessage-deflate; server_no_context_takeover{params}");
            assert_eq!(client(&line), Err(error), "{line}");
        }
    }

    #[test]
    fn permessage_deflate_accepted_twice_fails_the_connection() {
        let once = "permessage-deflate; server_no_context_takeover";
        assert_eq!(
            client(&format!("{once}, {once}")),
            Err(AnswerError::Repeated)
        );
        assert_eq!(
            parse_answer(
                [once.as_bytes(), once.as_bytes()],
                Offered::parse(CLIENT_OFFER)
            ),
            Err(AnswerError::Repeated)
        );
    }

    #[test]
    fn no_permessage_deflate_in_the_answer_is_no_compression() {
        assert_eq!(client("x-other; a=1"), Ok(None));
        assert_eq!(client(""), Ok(None));
        assert_eq!(parse_answer([], Offered::parse(CLIENT_OFFER)), Ok(None));
    }
}
