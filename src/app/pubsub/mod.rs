//! `pubsub`: topic fan-out. Clients subscribe with `?topic=` at connect or with JSON control
//! messages; backends publish with `POST /publish/{topic}` on the admin listener (and clients
//! over WebSocket when `allow_client_publish` is on). See docs/pubsub.md.
//!
//! Layout: [`topic_name`] is what a topic may be called; [`control`] the JSON control protocol;
//! [`topics`] one core's registry; [`hub`] the cross-core inboxes and the [`Bus`] trait;
//! [`interest`] the node-level topic interest; [`bus`] the cross-node Redis bus; [`admin`] the
//! HTTP endpoints. This file ties them to the [`App`]/[`CoreApp`] hooks.

pub mod admin;
pub mod bus;
pub mod control;
pub mod hub;
pub mod interest;
pub mod permissions;
pub mod topic_name;
pub mod topics;

use std::sync::Arc;

pub use admin::{PublishTokens, StartError};
pub use hub::{Accepted, Bus, Hub, PublishOutcome, PublishRefused};

use super::{App, ConnId, CoreApp, Ctx, OpenInfo, Waker};
use crate::admin::{AdminRequest, AdminResponse};
use crate::config::Config;
use crate::metrics::AppSeries;
use crate::policy::Action;
use crate::protocol::{CloseCode, MessageKind};
use control::{ControlError, Request};
use permissions::{ConnPermissions, ForbiddenCounters};
use topics::{Registry, Subscribed, TooManySubscriptions, Unsubscribed};

/// The paths clients subscribe on.
const WEBSOCKET_PATHS: &[&str] = &["/ws", "/"];
/// Most publishes one core delivers per wake before letting its other work run.
pub const MAX_PUBLISHES_PER_WAKE: usize = 256;
/// Most subscriber writes per wake (a publish is always finished once started), so a core with
/// many subscribers of a busy topic still serves its timers and sockets in between.
pub const MAX_DELIVERIES_PER_WAKE: usize = 64 * 1024;

/// The pub/sub settings (see the config keys of the same names).
#[derive(Clone, Debug)]
pub struct PubSubSettings {
    pub allow_client_publish: bool,
    pub max_subscriptions_per_connection: usize,
    pub max_topic_length: usize,
    /// Largest `POST /publish` body (the server's `max_message_size`).
    pub max_publish_bytes: usize,
    /// Largest control message parsed (`max_control_message_size`).
    pub max_control_message_bytes: usize,
}

impl Default for PubSubSettings {
    fn default() -> Self {
        let config = Config::default();
        PubSubSettings {
            allow_client_publish: config.allow_client_publish,
            max_subscriptions_per_connection: config.max_subscriptions_per_connection,
            max_topic_length: config.max_topic_length,
            max_publish_bytes: usize::try_from(config.max_message_size).unwrap_or(usize::MAX),
            max_control_message_bytes: config.max_control_message_size,
        }
    }
}

/// The pub/sub app, shared by all cores.
pub struct PubSub {
    hub: Arc<Hub>,
    bus: Arc<dyn Bus>,
    /// The Redis bus, when `bus` names one: started with the app, reported by `readiness`.
    redis: Option<Arc<bus::RedisBus>>,
    bus_stats: Arc<bus::BusStats>,
    tokens: Option<PublishTokens>,
    settings: PubSubSettings,
    forbidden: Arc<ForbiddenCounters>,
}

impl PubSub {
    /// A pub/sub app for `cores` reactors, publishing through the local hub, with no token.
    pub fn new(cores: usize, settings: PubSubSettings) -> PubSub {
        let hub = Arc::new(Hub::new(cores));
        PubSub {
            bus: hub.clone(),
            hub,
            redis: None,
            bus_stats: Arc::default(),
            tokens: None,
            settings,
            forbidden: Arc::default(),
        }
    }

    /// As configured: reads `publish_tokens_file` when it is set.
    pub fn from_config(config: &Config) -> Result<PubSub, StartError> {
        let settings = PubSubSettings {
            allow_client_publish: config.allow_client_publish,
            max_subscriptions_per_connection: config.max_subscriptions_per_connection,
            max_topic_length: config.max_topic_length,
            max_publish_bytes: usize::try_from(config.max_message_size).unwrap_or(usize::MAX),
            max_control_message_bytes: config.max_control_message_size,
        };
        let mut app = PubSub::new(config.cores, settings);
        if let bus::BusAddress::Redis(address) = &config.bus {
            let redis = Arc::new(bus::RedisBus::new(
                app.hub.clone(),
                bus::RedisSettings {
                    address: address.clone(),
                    queue_len: config.bus_queue_size,
                    publish_timeout: config.bus_publish_timeout,
                    max_message_bytes: app.settings.max_publish_bytes,
                },
                app.bus_stats.clone(),
            ));
            app.bus = redis.clone();
            app.redis = Some(redis);
        }
        if let Some(path) = &config.publish_tokens_file {
            app.tokens = Some(PublishTokens::load(path)?);
        }
        Ok(app)
    }

    /// Requires one of `tokens` on `POST /publish`.
    pub fn with_tokens(mut self, tokens: PublishTokens) -> PubSub {
        self.tokens = Some(tokens);
        self
    }

    /// Publishes through `bus` instead of straight to the local hub (e.g. a bus that also
    /// forwards to other nodes, and hands what it receives to [`PubSub::hub`]).
    pub fn with_bus(mut self, bus: Arc<dyn Bus>) -> PubSub {
        self.bus = bus;
        self
    }

    /// The local hub: this node's subscribers.
    pub fn hub(&self) -> &Arc<Hub> {
        &self.hub
    }
}

impl App for PubSub {
    type Core = PubSubCore;

    fn name(&self) -> &'static str {
        "pubsub"
    }

    /// `/ws` (as in `ws://host/ws?topic=a`) and `/`, so plain clients work unchanged.
    fn serves_path(&self, path: &str) -> bool {
        WEBSOCKET_PATHS.contains(&path)
    }

    fn websocket_paths(&self) -> &[&str] {
        WEBSOCKET_PATHS
    }

    fn new_core(&self, core: usize) -> PubSubCore {
        assert!(
            core < self.hub.cores(),
            "core {core} of {}",
            self.hub.cores()
        );
        PubSubCore {
            core,
            hub: self.hub.clone(),
            bus: self.bus.clone(),
            settings: self.settings.clone(),
            registry: Registry::default(),
            permissions: ConnPermissions::new(core, self.forbidden.clone()),
        }
    }

    fn admin(&self, request: &AdminRequest<'_>) -> Option<AdminResponse> {
        admin::Endpoints {
            bus: &*self.bus,
            hub: &self.hub,
            tokens: self.tokens.as_ref(),
            max_topic_len: self.settings.max_topic_length,
            cluster: self.redis.as_deref().map(bus::RedisBus::cluster),
        }
        .handle(request)
    }

    fn admin_routes(&self) -> &[&str] {
        &admin::ROUTES
    }

    fn admin_max_body_bytes(&self) -> usize {
        self.settings.max_publish_bytes
    }

    fn start(&self, wakers: Vec<Waker>) {
        self.hub.set_wakers(wakers);
        if let Some(redis) = &self.redis {
            // Without its threads the bus refuses every publish with a reason; the node
            // still serves its connections.
            if let Err(e) = redis.start() {
                tracing::error!(target: "ringws::bus", error = %e, "cannot start the Redis bus threads");
            }
        }
    }

    /// Not ready while the Redis bus (when configured) has either connection down.
    fn readiness(&self) -> Result<(), String> {
        match &self.redis {
            Some(redis) => redis.state().ready(),
            None => Ok(()),
        }
    }

    fn metrics(&self) -> Vec<AppSeries> {
        let hub = self.hub.clone();
        let mut series = vec![AppSeries {
            name: "ringws_pubsub_publishes_total",
            help: "Pub/sub: publishes accepted (HTTP and WebSocket).",
            labels: Vec::new(),
            gauge: false,
            read: Box::new(move || hub.publishes()),
        }];
        series.extend(bus_metrics(&self.bus_stats));
        for action in Action::ALL {
            let forbidden = self.forbidden.clone();
            series.push(AppSeries {
                name: "ringws_pubsub_forbidden_total",
                help: "Pub/sub: subscribes and publishes refused because the connection's topic \
                       permissions do not grant the topic (the connection stays).",
                labels: vec![("action", action.name().to_owned())],
                gauge: false,
                read: Box::new(move || forbidden.get(action)),
            });
        }
        for core in 0..self.hub.cores() {
            let label = || vec![("core", core.to_string())];
            let (h1, h2, h3, h4, h5) = (
                self.hub.clone(),
                self.hub.clone(),
                self.hub.clone(),
                self.hub.clone(),
                self.hub.clone(),
            );
            series.extend([
                AppSeries {
                    name: "ringws_pubsub_deliveries_total",
                    help: "Pub/sub: messages written (or queued) to a subscriber on this core.",
                    labels: label(),
                    gauge: false,
                    read: Box::new(move || h1.counters(core).deliveries.get()),
                },
                AppSeries {
                    name: "ringws_pubsub_dropped_total",
                    help: "Pub/sub: publishes not handed to this core because its inbox was full.",
                    labels: label(),
                    gauge: false,
                    read: Box::new(move || {
                        h2.counters(core)
                            .dropped
                            .load(std::sync::atomic::Ordering::Relaxed)
                    }),
                },
                AppSeries {
                    name: "ringws_pubsub_subscriptions",
                    help: "Pub/sub: subscriptions held by connections of this core.",
                    labels: label(),
                    gauge: true,
                    read: Box::new(move || h3.counters(core).subscriptions.get()),
                },
                AppSeries {
                    name: "ringws_pubsub_bad_control_messages_total",
                    help: "Pub/sub: control messages refused with an error reply on this core.",
                    labels: label(),
                    gauge: false,
                    read: Box::new(move || h4.counters(core).bad_control_messages.get()),
                },
                AppSeries {
                    name: "ringws_pubsub_oversized_control_messages_total",
                    help: "Pub/sub: control messages over max_control_message_size, refused \
                           unparsed on this core (also counted as bad control messages).",
                    labels: label(),
                    gauge: false,
                    read: Box::new(move || h5.counters(core).oversized_control_messages.get()),
                },
            ]);
        }
        series
    }
}

/// The cross-node bus's series (all zero with the local bus, so dashboards need no cases).
fn bus_metrics(stats: &Arc<bus::BusStats>) -> Vec<AppSeries> {
    use std::sync::atomic::{AtomicU64, Ordering};
    let series = |name, help, labels, gauge, read: fn(&bus::BusStats) -> &AtomicU64| {
        let stats = stats.clone();
        AppSeries {
            name,
            help,
            labels,
            gauge,
            read: Box::new(move || read(&stats).load(Ordering::Relaxed)),
        }
    };
    let link = |l: &str| vec![("link", l.to_string())];
    let mut all = vec![
        series("ringws_bus_connected", "Cross-node bus: 1 when both Redis connections are up.", Vec::new(), true, |s| &s.connected),
        series("ringws_bus_reconnects_total", "Cross-node bus: connections to Redis made again after one was lost.", link("publish"), false, |s| &s.publish_reconnects),
        series("ringws_bus_reconnects_total", "Cross-node bus: connections to Redis made again after one was lost.", link("subscribe"), false, |s| &s.subscribe_reconnects),
        series("ringws_bus_messages_out_total", "Cross-node bus: publishes Redis acknowledged.", Vec::new(), false, |s| &s.messages_out),
        series("ringws_bus_messages_in_total", "Cross-node bus: messages received from Redis and handed to this node's cores.", Vec::new(), false, |s| &s.messages_in),
        series("ringws_bus_malformed_messages_total", "Cross-node bus: channel messages that were not ringws publishes (dropped).", Vec::new(), false, |s| &s.malformed),
        series("ringws_bus_gaps_total", "Cross-node bus: gap messages announced (one per topic re-subscribed after a lost connection).", Vec::new(), false, |s| &s.gaps),
        series("ringws_bus_queued", "Cross-node bus: publishes waiting for Redis.", Vec::new(), true, |s| &s.queued),
        series("ringws_bus_topology_refreshes_total", "Cross-node bus on a Redis Cluster: topology reads (CLUSTER SLOTS): at start, after a slot move or a lost master, and every 5 s.", Vec::new(), false, |s| &s.topology_refreshes),
    ];
    for reason in bus::ErrorReason::ALL {
        let stats = stats.clone();
        all.push(AppSeries {
            name: "ringws_bus_publish_errors_total",
            help: "Cross-node bus: publishes refused (disconnected, queue_full) or lost after \
                   acceptance (expired, timeout, connection_lost, redis_error).",
            labels: vec![("reason", reason.label().to_string())],
            gauge: false,
            read: Box::new(move || stats.errors(reason)),
        });
    }
    all
}

/// The per-core part: this core's subscriptions, and delivery from its inbox.
pub struct PubSubCore {
    core: usize,
    hub: Arc<Hub>,
    bus: Arc<dyn Bus>,
    settings: PubSubSettings,
    registry: Registry,
    permissions: ConnPermissions,
}

impl PubSubCore {
    fn subscribe(&mut self, conn: ConnId, topic: &str) -> Result<(), ControlError> {
        match self
            .registry
            .subscribe(conn, topic, self.settings.max_subscriptions_per_connection)
        {
            Ok(Subscribed::Added { local }) => {
                self.hub.set_count(self.core, topic, local);
                self.update_gauge();
                Ok(())
            }
            Ok(Subscribed::Already) => Ok(()),
            Err(TooManySubscriptions { max }) => Err(ControlError::TooManySubscriptions { max }),
        }
    }

    fn unsubscribe(&mut self, conn: ConnId, topic: &str) {
        if let Unsubscribed::Removed { local } = self.registry.unsubscribe(conn, topic) {
            self.hub.set_count(self.core, topic, local);
            self.update_gauge();
        }
    }

    fn update_gauge(&self) {
        self.hub
            .counters(self.core)
            .subscriptions
            .set(self.registry.subscriptions() as u64);
    }

    fn refuse(&self, ctx: &mut dyn Ctx, conn: ConnId, err: &ControlError, topic: Option<&str>) {
        self.hub.counters(self.core).bad_control_messages.inc();
        ctx.send(conn, MessageKind::Text, &control::error(err, topic));
    }

    /// Answers `{"op":"error","error":"forbidden",...}` when `conn` may not `action` `topic`
    /// (counted and logged by the table, not as a bad control message).
    fn forbidden(&mut self, ctx: &mut dyn Ctx, conn: ConnId, action: Action, topic: &str) -> bool {
        if self.permissions.check(conn, action, topic) {
            return false;
        }
        let err = ControlError::Forbidden {
            action: action.name(),
        };
        ctx.send(conn, MessageKind::Text, &control::error(&err, Some(topic)));
        true
    }

    fn on_request(&mut self, ctx: &mut dyn Ctx, conn: ConnId, request: Request) {
        match request {
            Request::Subscribe(topic) if self.forbidden(ctx, conn, Action::Subscribe, &topic) => {}
            Request::Subscribe(topic) => match self.subscribe(conn, &topic) {
                Ok(()) => {
                    ctx.send(conn, MessageKind::Text, &control::subscribed(&topic));
                }
                Err(e) => self.refuse(ctx, conn, &e, Some(&topic)),
            },
            Request::Unsubscribe(topic) => {
                self.unsubscribe(conn, &topic);
                ctx.send(conn, MessageKind::Text, &control::unsubscribed(&topic));
            }
            Request::Publish { topic, .. } if !self.settings.allow_client_publish => {
                self.refuse(ctx, conn, &ControlError::PublishNotAllowed, Some(&topic));
            }
            Request::Publish { topic, .. }
                if self.forbidden(ctx, conn, Action::Publish, &topic) => {}
            Request::Publish { topic, payload } => {
                match self
                    .bus
                    .publish(&topic, MessageKind::Text, payload.as_bytes())
                {
                    Ok(Accepted::Delivered(outcome)) => {
                        let reply =
                            control::published(&topic, outcome.subscribers, outcome.dropped);
                        ctx.send(conn, MessageKind::Text, &reply);
                    }
                    Ok(Accepted::Queued) => {
                        ctx.send(conn, MessageKind::Text, &control::queued(&topic));
                    }
                    Err(refused) => {
                        self.refuse(ctx, conn, &ControlError::Bus(refused), Some(&topic));
                    }
                }
            }
        }
    }
}

impl CoreApp for PubSubCore {
    /// Subscribes to every `topic=` of the URL. These are not acknowledged (the upgrade is);
    /// a refused one gets the same error reply as a control message, and the connection stays.
    fn on_open(&mut self, ctx: &mut dyn Ctx, conn: ConnId, info: &OpenInfo<'_>) {
        self.permissions.open(conn, info.permissions);
        let Some(query) = info.query else {
            return;
        };
        for raw in topic_name::query_topics(query) {
            match topic_name::decode(raw, self.settings.max_topic_length) {
                Err(e) => self.refuse(ctx, conn, &ControlError::InvalidTopic(e), None),
                // The handshake refused forbidden URL topics already (403); checked again so
                // that the app holds the rule whoever opened the connection.
                Ok(topic) if self.forbidden(ctx, conn, Action::Subscribe, &topic) => {}
                Ok(topic) => {
                    if let Err(e) = self.subscribe(conn, &topic) {
                        self.refuse(ctx, conn, &e, Some(&topic));
                    }
                }
            }
        }
    }

    fn on_message(&mut self, ctx: &mut dyn Ctx, conn: ConnId, kind: MessageKind, payload: &[u8]) {
        if kind != MessageKind::Text {
            return self.refuse(ctx, conn, &ControlError::Binary, None);
        }
        // Checked before parsing: a control message is a few dozen bytes, and parsing megabytes
        // of JSON would stall the core for every other connection on it.
        let max = self.settings.max_control_message_bytes;
        if payload.len() > max {
            self.hub
                .counters(self.core)
                .oversized_control_messages
                .inc();
            let too_large = ControlError::TooLarge {
                len: payload.len(),
                max,
            };
            return self.refuse(ctx, conn, &too_large, None);
        }
        match control::parse(payload, self.settings.max_topic_length) {
            Ok(request) => self.on_request(ctx, conn, request),
            Err(e) => self.refuse(ctx, conn, &e, None),
        }
    }

    fn on_close(&mut self, conn: ConnId, _code: Option<CloseCode>) {
        self.permissions.close(conn);
        if self.registry.subscription_count(conn) == 0 {
            return;
        }
        let (hub, core) = (&self.hub, self.core);
        self.registry
            .remove_conn(conn, |topic, local| hub.set_count(core, topic, local));
        self.update_gauge();
    }

    fn on_wake(&mut self, ctx: &mut dyn Ctx) -> bool {
        self.hub.begin_drain(self.core);
        let counters = self.hub.counters(self.core);
        let (mut publishes, mut writes) = (0, 0);
        while publishes < MAX_PUBLISHES_PER_WAKE && writes < MAX_DELIVERIES_PER_WAKE {
            let Some(published) = self.hub.pop(self.core) else {
                return false;
            };
            publishes += 1;
            let subscribers = self.registry.subscribers(&published.topic);
            if subscribers.is_empty() {
                continue; // everyone left between the publish and now
            }
            let mut delivered = 0;
            for s in subscribers {
                delivered += u64::from(ctx.send_prepared(s.conn, &published.frame));
            }
            writes += subscribers.len();
            counters.deliveries.add(delivered);
            if let Some(accepted_at) = published.accepted_at {
                ctx.record_fanout_latency(accepted_at.elapsed().as_secs_f64());
            }
        }
        self.hub.has_pending(self.core)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::app::PreparedFrame;

    /// A reactor stand-in: records what was sent to whom.
    #[derive(Default)]
    struct FakeCtx {
        sent: Vec<(u32, MessageKind, Vec<u8>)>,
        prepared: Vec<(u32, Vec<u8>)>,
        latencies: usize,
    }

    impl Ctx for FakeCtx {
        fn send(&mut self, conn: ConnId, kind: MessageKind, payload: &[u8]) -> bool {
            self.sent.push((conn.key, kind, payload.to_vec()));
            true
        }
        fn close(&mut self, _conn: ConnId, _code: CloseCode, _reason: &str) {}
        fn core(&self) -> usize {
            0
        }
        fn send_prepared(&mut self, conn: ConnId, frame: &PreparedFrame) -> bool {
            self.prepared.push((conn.key, frame.bytes().to_vec()));
            true
        }
        fn record_fanout_latency(&mut self, _seconds: f64) {
            self.latencies += 1;
        }
    }

    fn conn(key: u32) -> ConnId {
        ConnId { key, generation: 0 }
    }

    fn open(core: &mut PubSubCore, ctx: &mut FakeCtx, key: u32, query: Option<&str>) {
        let everything = Arc::new(crate::policy::TopicPermissions::allow_all());
        open_with(core, ctx, key, query, &everything);
    }

    fn open_with(
        core: &mut PubSubCore,
        ctx: &mut FakeCtx,
        key: u32,
        query: Option<&str>,
        permissions: &Arc<crate::policy::TopicPermissions>,
    ) {
        let info = OpenInfo {
            path: "/ws",
            query,
            protocol: None,
            subject: None,
            permissions,
            client_ip: None,
            fd: -1,
        };
        core.on_open(ctx, conn(key), &info);
    }

    #[test]
    fn topic_permissions_refuse_with_forbidden_and_the_connection_stays() {
        let app = app(true);
        let (mut core, mut ctx) = (app.new_core(0), FakeCtx::default());
        let claim = serde_json::json!({"subscribe": ["news.*"], "publish": ["chat.#"]});
        let limited = Arc::new(crate::policy::TopicPermissions::from_claim(&claim).unwrap());
        open_with(
            &mut core,
            &mut ctx,
            1,
            Some("topic=news.eu&topic=x"),
            &limited,
        );
        let replies = text(&mut ctx);
        assert_eq!(replies.len(), 1, "{replies:?}");
        assert_eq!(replies[0]["error"], "forbidden");
        assert_eq!(replies[0]["topic"], "x");
        assert_eq!(app.hub().topic_counts("news.eu"), [1]);
        for (request, expected) in [
            (r#"{"op":"subscribe","topic":"news.us"}"#, "subscribed"),
            (r#"{"op":"subscribe","topic":"sports"}"#, "error"),
            (
                r#"{"op":"publish","topic":"chat.a","data":"hi"}"#,
                "published",
            ),
            (r#"{"op":"publish","topic":"news.eu","data":"hi"}"#, "error"),
        ] {
            core.on_message(&mut ctx, conn(1), MessageKind::Text, request.as_bytes());
            let reply = &text(&mut ctx)[0];
            assert_eq!(reply["op"], expected, "{request}: {reply}");
            if expected == "error" {
                assert_eq!(reply["error"], "forbidden");
            }
        }
        assert_eq!(app.hub().topic_counts("sports"), [0]);
        assert_eq!(
            app.hub().publishes(),
            1,
            "only the granted publish went out"
        );
        assert_eq!(app.forbidden.get(crate::policy::Action::Subscribe), 2);
        assert_eq!(app.forbidden.get(crate::policy::Action::Publish), 1);
        assert_eq!(app.hub().counters(0).bad_control_messages.get(), 0);
        core.on_close(conn(1), None);
        assert!(core.permissions.is_empty());
    }

    fn text(ctx: &mut FakeCtx) -> Vec<serde_json::Value> {
        ctx.sent
            .drain(..)
            .map(|(_, kind, p)| {
                assert_eq!(kind, MessageKind::Text);
                serde_json::from_slice(&p).unwrap()
            })
            .collect()
    }

    fn app(allow_client_publish: bool) -> PubSub {
        PubSub::new(
            1,
            PubSubSettings {
                allow_client_publish,
                max_subscriptions_per_connection: 2,
                max_topic_length: 16,
                max_publish_bytes: 1 << 20,
                max_control_message_bytes: 64,
            },
        )
    }

    #[test]
    fn url_and_control_subscriptions_receive_publishes() {
        let app = app(false);
        let (mut core, mut ctx) = (app.new_core(0), FakeCtx::default());
        open(&mut core, &mut ctx, 1, Some("topic=a&x=1&topic=b%2Fc"));
        open(&mut core, &mut ctx, 2, None);
        assert!(
            ctx.sent.is_empty(),
            "URL subscriptions are not acknowledged"
        );
        core.on_message(
            &mut ctx,
            conn(2),
            MessageKind::Text,
            br#"{"op":"subscribe","topic":"a"}"#,
        );
        assert_eq!(text(&mut ctx)[0]["op"], "subscribed");
        assert_eq!(app.hub().topic_counts("a"), [2]);
        assert_eq!(app.hub().topic_counts("b/c"), [1]);

        let out = app.hub().fan_out(
            "a",
            PreparedFrame::new(MessageKind::Text, b"hi"),
            Some(std::time::Instant::now()),
        );
        assert_eq!(out.subscribers, 2);
        assert!(!core.on_wake(&mut ctx));
        let mut keys: Vec<u32> = ctx.prepared.iter().map(|(k, _)| *k).collect();
        keys.sort();
        assert_eq!(keys, [1, 2]);
        assert_eq!(ctx.prepared[0].1, b"\x81\x02hi");
        assert_eq!(ctx.latencies, 1);
        assert_eq!(app.hub().counters(0).deliveries.get(), 2);

        core.on_close(conn(1), None);
        assert_eq!(app.hub().topic_counts("a"), [1]);
        assert_eq!(app.hub().topic_counts("b/c"), [0]);
        assert_eq!(app.hub().counters(0).subscriptions.get(), 1);
    }

    #[test]
    fn bad_control_traffic_gets_error_replies_and_is_counted() {
        let app = app(false);
        let (mut core, mut ctx) = (app.new_core(0), FakeCtx::default());
        open(
            &mut core,
            &mut ctx,
            1,
            Some("topic=a&topic=a%20b&topic=b&topic=c"),
        );
        let errors: Vec<_> = text(&mut ctx)
            .iter()
            .map(|v| v["error"].as_str().unwrap().to_string())
            .collect();
        assert_eq!(errors, ["invalid_topic", "too_many_subscriptions"]);
        core.on_message(&mut ctx, conn(1), MessageKind::Binary, b"\x00");
        core.on_message(&mut ctx, conn(1), MessageKind::Text, b"nope");
        core.on_message(
            &mut ctx,
            conn(1),
            MessageKind::Text,
            br#"{"op":"publish","topic":"a","data":1}"#,
        );
        let codes: Vec<_> = text(&mut ctx)
            .iter()
            .map(|v| v["error"].as_str().unwrap().to_string())
            .collect();
        assert_eq!(
            codes,
            ["binary_not_supported", "bad_json", "publish_not_allowed"]
        );
        assert_eq!(app.hub().counters(0).bad_control_messages.get(), 5);
        assert_eq!(app.hub().publishes(), 0);
    }

    #[test]
    fn a_control_message_over_the_limit_is_refused_unparsed() {
        let app = app(true);
        let (mut core, mut ctx) = (app.new_core(0), FakeCtx::default());
        open(&mut core, &mut ctx, 1, None);
        // Valid requests, padded to the limit and one byte past it.
        let padded = |op: &str, len: usize| {
            let head = format!(r#"{{"op":"{op}","topic":"a","data":"x","pad":""#);
            let mut text = head.clone() + &" ".repeat(len - head.len() - 2);
            text.push_str(r#""}"#);
            assert_eq!(text.len(), len);
            text
        };
        for op in ["subscribe", "publish"] {
            core.on_message(
                &mut ctx,
                conn(1),
                MessageKind::Text,
                padded(op, 65).as_bytes(),
            );
            let reply = &text(&mut ctx)[0];
            assert_eq!(reply["error"], "message_too_large", "{op}: {reply}");
            assert!(
                reply["message"].as_str().unwrap().contains("65 bytes"),
                "{reply}"
            );
            assert!(reply["message"].as_str().unwrap().contains("64"), "{reply}");
        }
        // Neither was acted on: no subscription, no publish.
        assert_eq!(app.hub().topic_counts("a"), [0]);
        assert_eq!(app.hub().publishes(), 0);
        let counters = app.hub().counters(0);
        assert_eq!(counters.oversized_control_messages.get(), 2);
        assert_eq!(counters.bad_control_messages.get(), 2);
        // At the limit it is parsed as usual.
        core.on_message(
            &mut ctx,
            conn(1),
            MessageKind::Text,
            padded("subscribe", 64).as_bytes(),
        );
        assert_eq!(text(&mut ctx)[0]["op"], "subscribed");
        assert_eq!(app.hub().topic_counts("a"), [1]);
    }

    #[test]
    fn client_publish_when_allowed() {
        let app = app(true);
        let (mut core, mut ctx) = (app.new_core(0), FakeCtx::default());
        open(&mut core, &mut ctx, 1, Some("topic=a"));
        core.on_message(
            &mut ctx,
            conn(2),
            MessageKind::Text,
            br#"{"op":"publish","topic":"a","data":{"n":1}}"#,
        );
        let reply = &text(&mut ctx)[0];
        assert_eq!(
            reply,
            &serde_json::json!({"op":"published","topic":"a","subscribers":1,"dropped":0})
        );
        core.on_wake(&mut ctx);
        assert_eq!(ctx.prepared, [(1, b"\x81\x07{\"n\":1}".to_vec())]);
    }

    #[test]
    fn unsubscribe_stops_delivery_and_is_idempotent() {
        let app = app(false);
        let (mut core, mut ctx) = (app.new_core(0), FakeCtx::default());
        open(&mut core, &mut ctx, 1, Some("topic=a"));
        for _ in 0..2 {
            core.on_message(
                &mut ctx,
                conn(1),
                MessageKind::Text,
                br#"{"op":"unsubscribe","topic":"a"}"#,
            );
            assert_eq!(text(&mut ctx)[0]["op"], "unsubscribed");
        }
        let out = app.hub().publish("a", MessageKind::Text, b"x");
        assert_eq!(out, Ok(Accepted::Delivered(PublishOutcome::default())));
        core.on_wake(&mut ctx);
        assert!(ctx.prepared.is_empty());
    }

    #[test]
    fn readiness_reports_the_redis_bus_and_is_ready_with_the_local_one() {
        assert_eq!(app(false).readiness(), Ok(()));
        let config = Config {
            bus: "redis://127.0.0.1:1/".parse().unwrap(),
            allow_client_publish: true,
            cores: 1,
            ..Config::default()
        };
        let app = PubSub::from_config(&config).unwrap();
        // Not started: no connection yet, and publishes are refused with the same reason.
        let why = app.readiness().unwrap_err();
        assert!(
            why.contains("Redis bus") && why.contains("not connected"),
            "{why}"
        );
        let (mut core, mut ctx) = (app.new_core(0), FakeCtx::default());
        core.on_message(
            &mut ctx,
            conn(1),
            MessageKind::Text,
            br#"{"op":"publish","topic":"a","data":"x"}"#,
        );
        let reply = &text(&mut ctx)[0];
        assert_eq!(reply["error"], "bus_unavailable", "{reply}");
        assert_eq!(reply["topic"], "a");
    }

    #[test]
    fn a_wake_delivers_at_most_its_budget() {
        let app = app(false);
        let (mut core, mut ctx) = (app.new_core(0), FakeCtx::default());
        open(&mut core, &mut ctx, 1, Some("topic=a"));
        for _ in 0..MAX_PUBLISHES_PER_WAKE + 1 {
            app.hub().publish("a", MessageKind::Binary, b"").unwrap();
        }
        assert!(core.on_wake(&mut ctx), "work left");
        assert_eq!(ctx.prepared.len(), MAX_PUBLISHES_PER_WAKE);
        assert!(!core.on_wake(&mut ctx));
        assert_eq!(ctx.prepared.len(), MAX_PUBLISHES_PER_WAKE + 1);
    }
}
