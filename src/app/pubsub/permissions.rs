//! Topic permissions of one core's connections: who may subscribe to and publish on what (see
//! [`crate::policy::topic_acl`]), refusals counted by action and logged rate-limited.
//!
//! Only connections whose permissions restrict something are remembered: with the default
//! `topic_permissions_default = "allow"` and tokens without the claim, the table stays empty
//! and a check is one hash lookup that misses. The sets themselves are shared (`Arc`) with the
//! policy: every connection of one static token points at the same parsed set.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Instant;

use crate::app::ConnId;
use crate::policy::{Action, LogLimiter, TopicPermissions};

/// Refusal log lines per second per core; the rest are counted as suppressed.
const FORBIDDEN_LOG_LINES_PER_S: u32 = 10;

/// Refused subscribes and publishes, by action (index: `Action as usize`), all cores together.
#[derive(Debug, Default)]
pub struct ForbiddenCounters([AtomicU64; 2]);

impl ForbiddenCounters {
    pub fn get(&self, action: Action) -> u64 {
        self.0[action as usize].load(Ordering::Relaxed)
    }

    fn inc(&self, action: Action) {
        self.0[action as usize].fetch_add(1, Ordering::Relaxed);
    }
}

/// One core's table of restricted connections.
pub struct ConnPermissions {
    by_conn: HashMap<ConnId, Arc<TopicPermissions>>,
    counters: Arc<ForbiddenCounters>,
    log: LogLimiter,
    started: Instant,
    core: usize,
}

impl ConnPermissions {
    pub fn new(core: usize, counters: Arc<ForbiddenCounters>) -> ConnPermissions {
        ConnPermissions {
            by_conn: HashMap::new(),
            counters,
            log: LogLimiter::new(FORBIDDEN_LOG_LINES_PER_S),
            started: Instant::now(),
            core,
        }
    }

    /// Remembers `conn`'s permissions when they restrict anything.
    pub fn open(&mut self, conn: ConnId, permissions: &Arc<TopicPermissions>) {
        if !permissions.allows_everything() {
            self.by_conn.insert(conn, permissions.clone());
        }
    }

    pub fn close(&mut self, conn: ConnId) {
        self.by_conn.remove(&conn);
    }

    /// May `conn` do `action` on `topic`? A refusal is counted and logged (rate-limited).
    pub fn check(&mut self, conn: ConnId, action: Action, topic: &str) -> bool {
        let Some(permissions) = self.by_conn.get(&conn) else {
            return true;
        };
        if permissions.allows(action, topic) {
            return true;
        }
        self.counters.inc(action);
        let now_ms = self.started.elapsed().as_millis() as u64;
        if let Some(suppressed_before) = self.log.admit(now_ms) {
            tracing::info!(
                target: "ringws::pubsub",
                core = self.core,
                action = action.name(),
                topic,
                suppressed_before,
                "{} refused: the connection's token does not grant {:?} (it grants {})",
                action.name(),
                topic,
                permissions.grant(action)
            );
        }
        false
    }

    /// Connections remembered (restricted ones only).
    pub fn len(&self) -> usize {
        self.by_conn.len()
    }

    pub fn is_empty(&self) -> bool {
        self.by_conn.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn conn(key: u32) -> ConnId {
        ConnId { key, generation: 0 }
    }

    #[test]
    fn only_restricted_connections_are_kept_and_refusals_are_counted() {
        let counters = Arc::new(ForbiddenCounters::default());
        let mut table = ConnPermissions::new(0, counters.clone());
        table.open(conn(1), &Arc::new(TopicPermissions::allow_all()));
        assert!(table.is_empty(), "allow-all is not remembered");
        let limited =
            Arc::new(TopicPermissions::from_claim(&json!({"subscribe": ["news.*"]})).unwrap());
        table.open(conn(2), &limited);
        table.open(conn(3), &limited);
        assert_eq!(table.len(), 2);
        assert!(table.check(conn(1), Action::Publish, "x"));
        assert!(table.check(conn(2), Action::Subscribe, "news.eu"));
        assert!(!table.check(conn(2), Action::Subscribe, "sports"));
        assert!(!table.check(conn(3), Action::Publish, "news.eu"));
        assert_eq!(counters.get(Action::Subscribe), 1);
        assert_eq!(counters.get(Action::Publish), 1);
        table.close(conn(2));
        assert!(
            table.check(conn(2), Action::Subscribe, "sports"),
            "forgotten"
        );
        assert_eq!(table.len(), 1);
    }
}
