//! The pub/sub HTTP endpoints of the admin listener, pure over a parsed request:
//!
//! - `POST /publish/{topic}`: body = the message; `Content-Type: text/*` or JSON → a text
//!   message (the body must be UTF-8), anything else → binary. Bearer token when
//!   `publish_tokens_file` is set. Answers `{"topic":..,"subscribers":N,"dropped":M}`, or
//!   `{"topic":..,"queued":true}` with a Redis bus, or 503 when the bus refuses it.
//! - `GET /topics`: topics with their subscriber counts summed across cores;
//!   `?scope=cluster` (Redis bus): summed over the live nodes, approximate (see
//!   docs/scale-out.md).
//! - `GET /topics/{topic}`: one topic's subscribers, in total and per core.
//!
//! Errors are JSON too: `{"error":"<code>","message":"<what to change>"}`.

use std::path::{Path, PathBuf};

use serde_json::json;
use sha2::{Digest as _, Sha256};

use super::bus::census::ClusterView;
use super::hub::{Accepted, Bus, Hub};
use super::topic_name;
use crate::admin::{AdminRequest, AdminResponse};
use crate::protocol::MessageKind;

/// The routes [`Endpoints::handle`] answers, as the start banner lists them.
pub const ROUTES: [&str; 3] = [
    "POST /publish/{topic}",
    "GET /topics",
    "GET /topics/{topic}",
];

/// Most topics `GET /topics` lists (the largest first); the answer says when it is cut.
pub const MAX_LISTED_TOPICS: usize = 1000;
/// Largest `publish_tokens_file` read.
pub const MAX_TOKENS_FILE_BYTES: u64 = 1 << 20;

/// Why the pub/sub app could not start.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    #[error("cannot read publish_tokens_file {}: {source}", path.display())]
    ReadTokens {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("publish_tokens_file {} is larger than 1 MiB: is it the right file?", path.display())]
    TokensTooLarge { path: PathBuf },
    #[error("publish_tokens_file {} holds no tokens: write one token per line (lines starting with # are comments)", path.display())]
    NoTokens { path: PathBuf },
}

/// The bearer tokens accepted by `POST /publish`, kept as SHA-256 digests so a comparison takes
/// the same time whatever the presented token.
#[derive(Clone, Debug)]
pub struct PublishTokens {
    digests: Vec<[u8; 32]>,
}

impl PublishTokens {
    /// Reads one token per line; blank lines and lines starting with `#` are skipped.
    pub fn load(path: &Path) -> Result<PublishTokens, StartError> {
        let read_err = |source| StartError::ReadTokens {
            path: path.to_path_buf(),
            source,
        };
        let len = std::fs::metadata(path).map_err(read_err)?.len();
        if len > MAX_TOKENS_FILE_BYTES {
            return Err(StartError::TokensTooLarge {
                path: path.to_path_buf(),
            });
        }
        let text = std::fs::read_to_string(path).map_err(read_err)?;
        PublishTokens::parse(&text).ok_or_else(|| StartError::NoTokens {
            path: path.to_path_buf(),
        })
    }

    /// The tokens of a file's text; `None` when it holds none.
    pub fn parse(text: &str) -> Option<PublishTokens> {
        let digests: Vec<[u8; 32]> = text
            .lines()
            .map(str::trim)
            .filter(|l| !l.is_empty() && !l.starts_with('#'))
            .map(digest)
            .collect();
        (!digests.is_empty()).then_some(PublishTokens { digests })
    }

    /// Compares against every token, without an early exit.
    pub fn accepts(&self, presented: &str) -> bool {
        let d = digest(presented);
        self.digests.iter().fold(false, |found, known| {
            let diff = known.iter().zip(&d).fold(0u8, |acc, (a, b)| acc | (a ^ b));
            found | (diff == 0)
        })
    }
}

fn digest(token: &str) -> [u8; 32] {
    Sha256::digest(token.as_bytes()).into()
}

/// What the endpoints need: where to publish, the counts, and the settings.
pub struct Endpoints<'a> {
    pub bus: &'a dyn Bus,
    pub hub: &'a Hub,
    pub tokens: Option<&'a PublishTokens>,
    pub max_topic_len: usize,
    /// The cluster-wide counts, with a Redis bus.
    pub cluster: Option<&'a ClusterView>,
}

impl Endpoints<'_> {
    /// Answers the pub/sub routes; `None` for any other path.
    pub fn handle(&self, req: &AdminRequest<'_>) -> Option<AdminResponse> {
        let path = req.path;
        if path == "/publish" || path.starts_with("/publish/") {
            let raw_topic = path.strip_prefix("/publish").unwrap_or("");
            let raw_topic = raw_topic.strip_prefix('/').unwrap_or(raw_topic);
            return Some(match req.method {
                "POST" => self.publish(req, raw_topic),
                _ => method_not_allowed("POST"),
            });
        }
        if path == "/topics" || path == "/topics/" {
            return Some(match req.method {
                "GET" => match scope(req.query) {
                    Ok(Scope::Node) => self.list_topics(),
                    Ok(Scope::Cluster) => self.list_cluster_topics(),
                    Err(message) => error(400, "invalid_scope", &message),
                },
                _ => method_not_allowed("GET"),
            });
        }
        let raw_topic = path.strip_prefix("/topics/")?;
        Some(match req.method {
            "GET" => self.one_topic(raw_topic),
            _ => method_not_allowed("GET"),
        })
    }

    fn publish(&self, req: &AdminRequest<'_>, raw_topic: &str) -> AdminResponse {
        if let Some(tokens) = self.tokens {
            if let Err(refusal) = check_bearer(tokens, req.header("authorization")) {
                return refusal;
            }
        }
        let topic = match topic_name::decode(raw_topic, self.max_topic_len) {
            Ok(topic) => topic,
            Err(e) => return error(400, "invalid_topic", &e.to_string()),
        };
        let kind = if is_text(req.header("content-type")) {
            if simdutf8::basic::from_utf8(req.body).is_err() {
                return error(
                    400,
                    "invalid_utf8",
                    "the body is not valid UTF-8, as a text Content-Type requires: send it as \
                     application/octet-stream to publish a binary message",
                );
            }
            MessageKind::Text
        } else {
            MessageKind::Binary
        };
        match self.bus.publish(&topic, kind, req.body) {
            Ok(Accepted::Delivered(outcome)) => AdminResponse::json(
                200,
                &json!({"topic": &*topic, "subscribers": outcome.subscribers, "dropped": outcome.dropped}),
            ),
            Ok(Accepted::Queued) => {
                AdminResponse::json(200, &json!({"topic": &*topic, "queued": true}))
            }
            Err(refused) => error(503, refused.code(), &refused.to_string()),
        }
    }

    fn list_topics(&self) -> AdminResponse {
        AdminResponse::json(200, &listing(&self.hub.all_counts()))
    }

    /// The counts summed over the nodes, as last read from Redis, marked approximate.
    fn list_cluster_topics(&self) -> AdminResponse {
        let Some(cluster) = self.cluster else {
            return error(
                400,
                "no_cluster",
                "scope=cluster needs a cross-node bus (bus = \"redis://HOST:PORT/\"); this node \
                 runs alone: use GET /topics",
            );
        };
        let Some(topics) = cluster.snapshot() else {
            return error(
                503,
                "cluster_unknown",
                "the cluster's counts have not been read from Redis yet: retry in a few seconds",
            );
        };
        let mut answer = listing(&topics.counts);
        answer["scope"] = json!("cluster");
        answer["approximate"] = json!(true);
        answer["nodes"] = json!(topics.nodes);
        answer["age_ms"] = json!(topics.refreshed_at.elapsed().as_millis() as u64);
        AdminResponse::json(200, &answer)
    }

    fn one_topic(&self, raw_topic: &str) -> AdminResponse {
        let topic = match topic_name::decode(raw_topic, self.max_topic_len) {
            Ok(topic) => topic,
            Err(e) => return error(400, "invalid_topic", &e.to_string()),
        };
        let per_core = self.hub.topic_counts(&topic);
        let total: usize = per_core.iter().sum();
        AdminResponse::json(
            200,
            &json!({"topic": &*topic, "subscribers": total, "per_core": per_core}),
        )
    }
}

/// `{"topic_count","subscriptions","truncated","topics":[...]}`: the largest topics first.
fn listing(all: &std::collections::HashMap<Box<str>, usize>) -> serde_json::Value {
    let subscriptions: usize = all.values().sum();
    let mut topics: Vec<(&str, usize)> = all.iter().map(|(t, &n)| (&**t, n)).collect();
    topics.sort_unstable_by(|a, b| b.1.cmp(&a.1).then(a.0.cmp(b.0)));
    let truncated = topics.len() > MAX_LISTED_TOPICS;
    topics.truncate(MAX_LISTED_TOPICS);
    let listed: Vec<_> = topics
        .iter()
        .map(|(t, n)| json!({"topic": t, "subscribers": n}))
        .collect();
    json!({
        "topic_count": all.len(),
        "subscriptions": subscriptions,
        "truncated": truncated,
        "topics": listed,
    })
}

/// What `GET /topics` counts.
#[derive(Debug, PartialEq, Eq)]
enum Scope {
    Node,
    Cluster,
}

/// `scope=node` (the default) or `scope=cluster`; other parameters are ignored.
fn scope(query: Option<&str>) -> Result<Scope, String> {
    let value = query
        .into_iter()
        .flat_map(|q| q.split('&'))
        .find_map(|pair| pair.strip_prefix("scope="));
    match value {
        None | Some("node") => Ok(Scope::Node),
        Some("cluster") => Ok(Scope::Cluster),
        Some(other) => Err(format!(
            "scope={other:?} is not a scope: use scope=node (this node, the default) or \
             scope=cluster"
        )),
    }
}

/// Text when the type is `text/*`, `application/json` or `*+json` (JSON is UTF-8 by RFC 8259).
fn is_text(content_type: Option<&str>) -> bool {
    let Some(ct) = content_type else {
        return false;
    };
    let mime = ct
        .split(';')
        .next()
        .unwrap_or("")
        .trim()
        .to_ascii_lowercase();
    mime.starts_with("text/") || mime == "application/json" || mime.ends_with("+json")
}

fn check_bearer(tokens: &PublishTokens, authorization: Option<&str>) -> Result<(), AdminResponse> {
    let presented = authorization.and_then(|v| {
        let (scheme, token) = v.split_once(' ')?;
        scheme.eq_ignore_ascii_case("bearer").then(|| token.trim())
    });
    match presented {
        None => Err(error(
            401,
            "unauthorized",
            "publishing needs a token: send Authorization: Bearer <token> with a token from \
             publish_tokens_file",
        )
        .with_header("WWW-Authenticate", "Bearer realm=\"ringws\"")),
        Some(token) if tokens.accepts(token) => Ok(()),
        Some(_) => Err(error(
            401,
            "invalid_token",
            "the bearer token is not in publish_tokens_file",
        )
        .with_header(
            "WWW-Authenticate",
            "Bearer realm=\"ringws\", error=\"invalid_token\"",
        )),
    }
}

fn method_not_allowed(allow: &'static str) -> AdminResponse {
    error(405, "method_not_allowed", &format!("use {allow}")).with_header("Allow", allow)
}

fn error(status: u16, code: &str, message: &str) -> AdminResponse {
    AdminResponse::json(status, &json!({"error": code, "message": message}))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::admin::{parse, Parsed};

    fn call(hub: &Hub, tokens: Option<&PublishTokens>, raw: &str) -> (u16, serde_json::Value) {
        let Parsed::Request(req, _) = parse(raw.as_bytes(), 1 << 20) else {
            panic!("request parses: {raw}")
        };
        let r = Endpoints {
            bus: hub,
            hub,
            tokens,
            max_topic_len: 16,
            cluster: None,
        }
        .handle(&req)
        .expect("a pub/sub route");
        assert_eq!(r.content_type, "application/json");
        (r.status, serde_json::from_slice(&r.body).unwrap())
    }

    fn post(path: &str, headers: &str, body: &str) -> String {
        format!(
            "POST {path} HTTP/1.1\r\nHost: x\r\n{headers}Content-Length: {}\r\n\r\n{body}",
            body.len()
        )
    }

    #[test]
    fn publish_reports_subscribers_and_frames_by_content_type() {
        let hub = Hub::new(2);
        hub.set_count(0, "a/b", 2);
        hub.set_count(1, "a/b", 3);
        let (status, v) = call(
            &hub,
            None,
            &post("/publish/a%2Fb", "Content-Type: text/plain\r\n", "hi"),
        );
        assert_eq!(status, 200);
        assert_eq!(v, json!({"topic":"a/b","subscribers":5,"dropped":0}));
        call(&hub, None, &post("/publish/a/b", "", "\u{1}"));
        call(
            &hub,
            None,
            &post("/publish/a/b", "Content-Type: application/json\r\n", "{}"),
        );
        let kinds: Vec<_> = std::iter::from_fn(|| hub.pop(0))
            .map(|p| p.frame.kind())
            .collect();
        assert_eq!(
            kinds,
            [MessageKind::Text, MessageKind::Binary, MessageKind::Text]
        );
        let (_, v) = call(&hub, None, &post("/publish/nobody", "", "x"));
        assert_eq!(v["subscribers"], 0);
    }

    #[test]
    fn publish_refusals() {
        let hub = Hub::new(1);
        let bad_utf8 =
            "POST /publish/a HTTP/1.1\r\nContent-Type: text/plain\r\nContent-Length: 1\r\n\r\n";
        let mut raw = bad_utf8.as_bytes().to_vec();
        raw.push(0xff);
        let Parsed::Request(req, _) = parse(&raw, 100) else {
            panic!()
        };
        let r = Endpoints {
            bus: &hub,
            hub: &hub,
            tokens: None,
            max_topic_len: 16,
            cluster: None,
        }
        .handle(&req)
        .unwrap();
        assert_eq!(r.status, 400);
        assert!(String::from_utf8_lossy(&r.body).contains("invalid_utf8"));

        for path in ["/publish", "/publish/", "/publish/a%20b", "/publish/%zz"] {
            let (status, v) = call(&hub, None, &post(path, "", "x"));
            assert_eq!(
                (status, v["error"].as_str()),
                (400, Some("invalid_topic")),
                "{path}"
            );
        }
        let (status, v) = call(
            &hub,
            None,
            &post(&format!("/publish/{}", "x".repeat(17)), "", ""),
        );
        assert_eq!((status, v["error"].as_str()), (400, Some("invalid_topic")));
        let (status, _) = call(&hub, None, "GET /publish/a HTTP/1.1\r\n\r\n");
        assert_eq!(status, 405);
        assert_eq!(hub.publishes(), 0, "nothing refused was published");
    }

    #[test]
    fn bearer_tokens() {
        let hub = Hub::new(1);
        let tokens = PublishTokens::parse("# backends\n  s3cret  \n\nother\n").unwrap();
        assert!(PublishTokens::parse("# none\n\n").is_none());
        let ok = call(
            &hub,
            Some(&tokens),
            &post("/publish/a", "Authorization: Bearer s3cret\r\n", "x"),
        );
        assert_eq!(ok.0, 200);
        let ok = call(
            &hub,
            Some(&tokens),
            &post("/publish/a", "authorization: bearer other\r\n", "x"),
        );
        assert_eq!(ok.0, 200);
        for (headers, code) in [
            ("", "unauthorized"),
            ("Authorization: Basic czNjcmV0\r\n", "unauthorized"),
            ("Authorization: Bearer s3cre\r\n", "invalid_token"),
            ("Authorization: Bearer # backends\r\n", "invalid_token"),
        ] {
            let (status, v) = call(&hub, Some(&tokens), &post("/publish/a", headers, "x"));
            assert_eq!(
                (status, v["error"].as_str()),
                (401, Some(code)),
                "{headers}"
            );
        }
        assert_eq!(hub.publishes(), 2);
    }

    #[test]
    fn topics_sum_across_cores() {
        let hub = Hub::new(2);
        hub.set_count(0, "a", 2);
        hub.set_count(1, "a", 3);
        hub.set_count(1, "b", 1);
        let (status, v) = call(&hub, None, "GET /topics HTTP/1.1\r\n\r\n");
        assert_eq!(status, 200);
        assert_eq!(
            v,
            json!({"topic_count":2,"subscriptions":6,"truncated":false,"topics":[
                {"topic":"a","subscribers":5},{"topic":"b","subscribers":1}]})
        );
        let (_, v) = call(&hub, None, "GET /topics/a HTTP/1.1\r\n\r\n");
        assert_eq!(v, json!({"topic":"a","subscribers":5,"per_core":[2,3]}));
        let (_, v) = call(&hub, None, "GET /topics/none HTTP/1.1\r\n\r\n");
        assert_eq!(v["subscribers"], 0);
        let (status, _) = call(&hub, None, "GET /topics/a%20b HTTP/1.1\r\n\r\n");
        assert_eq!(status, 400);
        let (status, _) = call(&hub, None, &post("/topics", "", ""));
        assert_eq!(status, 405);
        let (status, v) = call(&hub, None, "GET /topics?x=1&scope=node HTTP/1.1\r\n\r\n");
        assert_eq!((status, &v["topic_count"]), (200, &json!(2)));
        let (status, v) = call(&hub, None, "GET /topics?scope=everything HTTP/1.1\r\n\r\n");
        assert_eq!((status, &v["error"]), (400, &json!("invalid_scope")));
        let (status, v) = call(&hub, None, "GET /topics?scope=cluster HTTP/1.1\r\n\r\n");
        assert_eq!(
            (status, &v["error"]),
            (400, &json!("no_cluster")),
            "a local bus"
        );
    }

    #[test]
    fn other_paths_are_not_ours() {
        let hub = Hub::new(1);
        let Parsed::Request(req, _) = parse(b"GET /publisher HTTP/1.1\r\n\r\n", 0) else {
            panic!()
        };
        let e = Endpoints {
            bus: &hub,
            hub: &hub,
            tokens: None,
            max_topic_len: 16,
            cluster: None,
        };
        assert!(e.handle(&req).is_none());
    }

    #[test]
    fn text_content_types() {
        for ct in [
            "text/plain",
            "TEXT/html; charset=utf-8",
            "application/json",
            "application/ld+json",
        ] {
            assert!(is_text(Some(ct)), "{ct}");
        }
        for ct in [
            "application/octet-stream",
            "image/png",
            "",
            "application/x-www-form-urlencoded",
        ] {
            assert!(!is_text(Some(ct)), "{ct}");
        }
        assert!(!is_text(None));
    }
}
