//! The JSON control protocol spoken over a subscriber's WebSocket, sans-IO.
//!
//! Requests (text messages):
//! `{"op":"subscribe","topic":"a"}`, `{"op":"unsubscribe","topic":"a"}`,
//! `{"op":"publish","topic":"a","data":...}` (when `allow_client_publish` is on).
//! Replies: `{"op":"subscribed","topic":"a"}`, `{"op":"unsubscribed","topic":"a"}`,
//! `{"op":"published","topic":"a","subscribers":N,"dropped":M}`, and for anything refused
//! `{"op":"error","error":"<code>","message":"<what to change>"}` (plus `"topic"` when known;
//! `"error":"forbidden"` when the connection's topic permissions do not grant the request).
//! A message over `max_control_message_size` is refused before it reaches [`parse`].

use serde_json::{json, Value};

use super::hub::PublishRefused;
use super::topic_name::{self, TopicError};

/// A well-formed control request.
#[derive(Debug, PartialEq)]
pub enum Request {
    Subscribe(String),
    Unsubscribe(String),
    /// `payload` is what subscribers receive, always as a text message: `data` itself when it is
    /// a JSON string, else its JSON serialization.
    Publish {
        topic: String,
        payload: String,
    },
}

/// Why a control message was refused. Each has a stable code (`error`) and a message.
#[derive(Debug, PartialEq, thiserror::Error)]
pub enum ControlError {
    #[error("control messages are JSON text; a binary message is not a control message")]
    Binary,
    #[error("this message is {len} bytes and control messages are at most {max} (max_control_message_size): it was not read")]
    TooLarge { len: usize, max: usize },
    #[error(
        "not valid JSON ({0}): send an object such as {{\"op\":\"subscribe\",\"topic\":\"news\"}}"
    )]
    BadJson(String),
    #[error("a control message is a JSON object with an \"op\" string, such as {{\"op\":\"subscribe\",\"topic\":\"news\"}}")]
    NotARequest,
    #[error("unknown op {0:?}: use subscribe, unsubscribe or publish")]
    UnknownOp(String),
    #[error("\"{op}\" needs a \"topic\" string")]
    MissingTopic { op: &'static str },
    #[error("{0}")]
    InvalidTopic(TopicError),
    #[error("\"publish\" needs a \"data\" field (a string is sent as is, other JSON as its text)")]
    MissingData,
    #[error("this connection already holds {max} subscriptions (max_subscriptions_per_connection): unsubscribe from one first")]
    TooManySubscriptions { max: usize },
    #[error("publishing over WebSocket is off on this server (allow_client_publish = false): publish with POST /publish/{{topic}} on the admin listener")]
    PublishNotAllowed,
    /// The cross-node bus refused the publish (not connected, or its queue is full).
    #[error("{0}")]
    Bus(PublishRefused),
    #[error("this connection's token does not grant {action} on this topic: use a token whose topic permissions include it")]
    Forbidden { action: &'static str },
}

impl ControlError {
    /// The stable code clients can match on.
    pub fn code(&self) -> &'static str {
        match self {
            ControlError::Binary => "binary_not_supported",
            ControlError::TooLarge { .. } => "message_too_large",
            ControlError::BadJson(_) => "bad_json",
            ControlError::NotARequest => "bad_request",
            ControlError::UnknownOp(_) => "unknown_op",
            ControlError::MissingTopic { .. } => "missing_topic",
            ControlError::InvalidTopic(_) => "invalid_topic",
            ControlError::MissingData => "missing_data",
            ControlError::TooManySubscriptions { .. } => "too_many_subscriptions",
            ControlError::PublishNotAllowed => "publish_not_allowed",
            ControlError::Bus(refused) => refused.code(),
            ControlError::Forbidden { .. } => "forbidden",
        }
    }
}

/// Parses one text control message; `max_topic_len` bounds topic names.
pub fn parse(text: &[u8], max_topic_len: usize) -> Result<Request, ControlError> {
    let value: Value =
        serde_json::from_slice(text).map_err(|e| ControlError::BadJson(e.to_string()))?;
    let Value::Object(mut fields) = value else {
        return Err(ControlError::NotARequest);
    };
    let op = match fields.get("op") {
        Some(Value::String(op)) => op.as_str(),
        _ => return Err(ControlError::NotARequest),
    };
    let op: &'static str = match op {
        "subscribe" => "subscribe",
        "unsubscribe" => "unsubscribe",
        "publish" => "publish",
        other => return Err(ControlError::UnknownOp(truncated(other))),
    };
    let topic = match fields.remove("topic") {
        Some(Value::String(topic)) => topic,
        _ => return Err(ControlError::MissingTopic { op }),
    };
    topic_name::validate(&topic, max_topic_len).map_err(ControlError::InvalidTopic)?;
    Ok(match op {
        "subscribe" => Request::Subscribe(topic),
        "unsubscribe" => Request::Unsubscribe(topic),
        _ => {
            let payload = match fields.remove("data") {
                None => return Err(ControlError::MissingData),
                Some(Value::String(s)) => s,
                Some(other) => other.to_string(),
            };
            Request::Publish { topic, payload }
        }
    })
}

/// Echoed ops are cut to this many characters, so an error reply stays small.
const MAX_ECHOED_CHARS: usize = 64;

fn truncated(s: &str) -> String {
    s.chars().take(MAX_ECHOED_CHARS).collect()
}

/// `{"op":"subscribed","topic":...}`
pub fn subscribed(topic: &str) -> Vec<u8> {
    reply(json!({"op": "subscribed", "topic": topic}))
}

/// `{"op":"unsubscribed","topic":...}`
pub fn unsubscribed(topic: &str) -> Vec<u8> {
    reply(json!({"op": "unsubscribed", "topic": topic}))
}

/// `{"op":"published","topic":...,"subscribers":N,"dropped":M}`
pub fn published(topic: &str, subscribers: usize, dropped: usize) -> Vec<u8> {
    reply(
        json!({"op": "published", "topic": topic, "subscribers": subscribers, "dropped": dropped}),
    )
}

/// `{"op":"published","topic":...,"queued":true}`: handed to the cross-node bus, which
/// delivers it to every node's subscribers (this node's too).
pub fn queued(topic: &str) -> Vec<u8> {
    reply(json!({"op": "published", "topic": topic, "queued": true}))
}

/// `{"op":"gap","topic":...}`: sent to a topic's subscribers when this node re-subscribes it
/// in Redis after losing its connection: messages published meanwhile were missed.
pub fn gap(topic: &str) -> Vec<u8> {
    reply(json!({"op": "gap", "topic": topic}))
}

/// `{"op":"error","error":code,"message":...}`, with `"topic"` when the request named a valid
/// one.
pub fn error(err: &ControlError, topic: Option<&str>) -> Vec<u8> {
    let mut v = json!({"op": "error", "error": err.code(), "message": err.to_string()});
    if let Some(topic) = topic {
        v["topic"] = Value::String(topic.to_owned());
    }
    reply(v)
}

fn reply(v: Value) -> Vec<u8> {
    serde_json::to_vec(&v).expect("a JSON value always serializes")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(text: &str) -> Result<Request, ControlError> {
        parse(text.as_bytes(), 16)
    }

    #[test]
    fn parses_the_three_requests() {
        assert_eq!(
            p(r#"{"op":"subscribe","topic":"a"}"#),
            Ok(Request::Subscribe("a".into()))
        );
        assert_eq!(
            p(r#" {"topic":"a/b","op":"unsubscribe","extra":1} "#),
            Ok(Request::Unsubscribe("a/b".into())),
            "field order and unknown fields do not matter"
        );
        assert_eq!(
            p(r#"{"op":"publish","topic":"a","data":"hi \"you\""}"#),
            Ok(Request::Publish {
                topic: "a".into(),
                payload: "hi \"you\"".into()
            }),
            "a string is sent as is"
        );
        assert_eq!(
            p(r#"{"op":"publish","topic":"a","data":{"x":[1,true,null]}}"#),
            Ok(Request::Publish {
                topic: "a".into(),
                payload: r#"{"x":[1,true,null]}"#.into()
            }),
            "other JSON is sent as its text"
        );
        assert_eq!(
            p(r#"{"op":"publish","topic":"a","data":null}"#),
            Ok(Request::Publish {
                topic: "a".into(),
                payload: "null".into()
            })
        );
    }

    #[test]
    fn refuses_each_malformed_request_with_its_code() {
        let cases = [
            ("", "bad_json"),
            ("{", "bad_json"),
            ("subscribe a", "bad_json"),
            (r#"["subscribe","a"]"#, "bad_request"),
            (r#""subscribe""#, "bad_request"),
            (r#"{"topic":"a"}"#, "bad_request"),
            (r#"{"op":1,"topic":"a"}"#, "bad_request"),
            (r#"{"op":"SUBSCRIBE","topic":"a"}"#, "unknown_op"),
            (r#"{"op":"sub","topic":"a"}"#, "unknown_op"),
            (r#"{"op":"subscribe"}"#, "missing_topic"),
            (r#"{"op":"subscribe","topic":7}"#, "missing_topic"),
            (r#"{"op":"unsubscribe","topic":null}"#, "missing_topic"),
            (r#"{"op":"subscribe","topic":""}"#, "invalid_topic"),
            (r#"{"op":"subscribe","topic":"a b"}"#, "invalid_topic"),
            (
                r#"{"op":"subscribe","topic":"aaaaaaaaaaaaaaaaa"}"#,
                "invalid_topic",
            ),
            (r#"{"op":"publish","topic":"a"}"#, "missing_data"),
        ];
        for (text, code) in cases {
            let err = p(text).expect_err(text);
            assert_eq!(err.code(), code, "{text}: {err}");
        }
    }

    #[test]
    fn error_replies_are_json_with_code_message_and_topic() {
        let r: Value = serde_json::from_slice(&error(
            &ControlError::TooManySubscriptions { max: 64 },
            Some("a"),
        ))
        .unwrap();
        assert_eq!(r["op"], "error");
        assert_eq!(r["error"], "too_many_subscriptions");
        assert_eq!(r["topic"], "a");
        assert!(r["message"].as_str().unwrap().contains("64"));
        let r: Value = serde_json::from_slice(&error(&ControlError::Binary, None)).unwrap();
        assert!(r.get("topic").is_none());
        let long_op = format!(r#"{{"op":"{}","topic":"a"}}"#, "x".repeat(1000));
        let ControlError::UnknownOp(op) = p(&long_op).unwrap_err() else {
            panic!()
        };
        assert_eq!(op.len(), MAX_ECHOED_CHARS);
    }

    #[test]
    fn acknowledgements_name_the_topic() {
        assert_eq!(subscribed("a"), br#"{"op":"subscribed","topic":"a"}"#);
        assert_eq!(unsubscribed("a"), br#"{"op":"unsubscribed","topic":"a"}"#);
        let v: Value = serde_json::from_slice(&published("a", 3, 1)).unwrap();
        assert_eq!(
            v,
            json!({"op":"published","topic":"a","subscribers":3,"dropped":1})
        );
    }
}
