//! Pub/sub across nodes through a real Redis (`bus = "redis://..."`, docs/scale-out.md): three
//! ringws nodes sharing one `redis-server`, subscribers on every node, publishes to random nodes
//! over HTTP and from clients; Redis killed and restarted, and stopped (SIGSTOP) and resumed.
//! Needs `redis-server` and `redis-cli` (Debian's redis-server package) and `haproxy` for the test
//! behind it; `.ci/test` installs both.

mod common;

use std::collections::HashMap;
use std::io::Write;
use std::net::{SocketAddr, TcpStream};
use std::time::{Duration, Instant};

use common::pubsub::{nothing_more, read_text, subscribe_everywhere, subscriber, Sub};
use common::redis::RedisProcess;
use common::*;
use serde_json::Value;

const TOPICS: [&str; 3] = ["news", "prices", "chat.room-1"];

fn node(redis: &RedisProcess, extra: &[&str]) -> ServerProcess {
    let url = redis.url();
    let mut args = vec![
        "--app",
        "pubsub",
        "--cores",
        "2",
        "--bus",
        &url,
        "--allow-client-publish",
        "true",
    ];
    args.extend_from_slice(extra);
    let server = ServerProcess::start(&args);
    wait_connected(&server, 1.0);
    server
}

fn admin(server: &ServerProcess) -> SocketAddr {
    server.admin.expect("admin listener")
}

/// Waits until `ringws_bus_connected` reads `value` on `server`.
#[track_caller]
fn wait_connected(server: &ServerProcess, value: f64) {
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        let now = metric_sum(admin(server), "ringws_bus_connected");
        if now == value {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "ringws_bus_connected stayed {now}, expected {value} within 15 s"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Waits until `GET /readyz` answers `status`; returns its body.
#[track_caller]
fn wait_readyz(server: &ServerProcess, status: u16) -> String {
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        let (now, body) = admin_get(admin(server), "/readyz");
        if now == status {
            return body.trim_end().to_owned();
        }
        assert!(
            Instant::now() < deadline,
            "/readyz stayed {now} ({body}), expected {status} within 15 s"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// A client that publishes (subscribed to nothing).
fn publisher(addr: SocketAddr) -> TcpStream {
    let s = ws_connect(addr);
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    s
}

fn http_publish(admin: SocketAddr, topic: &str, body: &[u8]) -> HttpResponse {
    let mut req = format!(
        "POST /publish/{topic} HTTP/1.1\r\nHost: x\r\nContent-Type: text/plain\r\nContent-Length: {}\r\n\r\n",
        body.len()
    )
    .into_bytes();
    req.extend_from_slice(body);
    exchange(admin, &req)
}

fn client_publish(s: &mut TcpStream, topic: &str, data: &str) -> Value {
    let msg = serde_json::json!({"op": "publish", "topic": topic, "data": data}).to_string();
    s.write_all(&client_frame(true, 0x1, msg.as_bytes()))
        .unwrap();
    serde_json::from_str(&read_text(s)).unwrap()
}

/// A small deterministic generator, so a failing run can be replayed.
struct Lcg(u64);
impl Lcg {
    fn below(&mut self, n: usize) -> usize {
        self.0 = self
            .0
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        ((self.0 >> 33) % n as u64) as usize
    }
}

/// Publishes `count` messages `{tag}-{i}` to random topics on random nodes, alternating HTTP
/// and client publishes; every one must be accepted. Returns what each topic was sent, in the
/// order of acceptance on its node.
fn publish_all(
    nodes: &[ServerProcess],
    publishers: &mut [TcpStream],
    rng: &mut Lcg,
    tag: &str,
    count: usize,
) -> HashMap<&'static str, Vec<String>> {
    let mut sent: HashMap<&'static str, Vec<String>> = HashMap::new();
    for i in 0..count {
        let topic = TOPICS[rng.below(TOPICS.len())];
        let n = rng.below(nodes.len());
        let text = format!("{tag}-{i}");
        if i % 2 == 0 {
            let r = http_publish(admin(&nodes[n]), topic, text.as_bytes());
            assert_eq!(r.status, 200, "{}", r.body);
            let v: Value = serde_json::from_str(&r.body).unwrap();
            assert_eq!(v["queued"], true, "{v}");
        } else {
            let v = client_publish(&mut publishers[n], topic, &text);
            assert_eq!(v["op"], "published", "{v}");
            assert_eq!(v["queued"], true, "{v}");
        }
        sent.entry(topic).or_default().push(text);
    }
    sent
}

/// Every node has its one subscription per topic in Redis.
fn wait_subscribed(redis: &RedisProcess, nodes: usize) {
    for topic in TOPICS {
        let channel = format!("ringws:{topic}");
        redis.wait_until(&format!("{nodes} nodes subscribed to {channel}"), |r| {
            r.numsub(&channel) == nodes as u64
        });
    }
}

/// Reads `n` more messages on each subscriber of `topic`.
fn receive(subs: &mut [Sub], sent: &HashMap<&'static str, Vec<String>>) {
    for sub in subs.iter_mut() {
        let n = sent.get(sub.topic).map_or(0, Vec::len);
        for _ in 0..n {
            let text = read_text(&mut sub.conn);
            sub.got.push(text);
        }
    }
}

/// Each subscriber got exactly what its topic was sent (once each), and all subscribers of a
/// topic, on every node, in the same order.
fn check_exactly_once_same_order(subs: &mut [Sub], sent: &HashMap<&'static str, Vec<String>>) {
    let mut order: HashMap<&str, &Vec<String>> = HashMap::new();
    for sub in subs.iter() {
        let mut got = sub.got.clone();
        got.sort();
        let mut want = sent.get(sub.topic).cloned().unwrap_or_default();
        want.sort();
        assert_eq!(got, want, "{}: every message exactly once", sub.topic);
        let first = order.entry(sub.topic).or_insert(&sub.got);
        assert_eq!(*first, &sub.got, "{}: the same order everywhere", sub.topic);
    }
    for sub in subs.iter_mut() {
        assert!(
            nothing_more(&mut sub.conn, Duration::from_millis(200)),
            "{}: a message more than published",
            sub.topic
        );
    }
}

#[test]
fn three_nodes_deliver_every_message_once_in_one_order_per_topic() {
    let redis = RedisProcess::start();
    let nodes: Vec<ServerProcess> = (0..3).map(|_| node(&redis, &[])).collect();
    let mut subs = subscribe_everywhere(&nodes, &TOPICS);
    wait_subscribed(&redis, nodes.len());
    assert_eq!(
        redis.cli(&["PUBSUB", "NUMPAT"]).trim(),
        "0",
        "never a pattern subscription"
    );
    let mut publishers: Vec<TcpStream> = nodes.iter().map(|n| publisher(n.addr)).collect();
    let mut rng = Lcg(15);
    let sent = publish_all(&nodes, &mut publishers, &mut rng, "m", 300);
    receive(&mut subs, &sent);
    check_exactly_once_same_order(&mut subs, &sent);
    // Each node counted what it took from Redis: every message of a topic it subscribes.
    for node in &nodes {
        assert_eq!(
            metric_sum(admin(node), "ringws_bus_messages_in_total"),
            300.0
        );
    }
    let out: f64 = nodes
        .iter()
        .map(|n| metric_sum(admin(n), "ringws_bus_messages_out_total"))
        .sum();
    assert_eq!(out, 300.0);
}

/// The deployment of deploy/README.md: three nodes on one Redis behind the committed
/// multi-node haproxy config. Clients subscribe through haproxy (so they land on every node);
/// publishes go to random nodes: every subscriber gets every message once, in one order per
/// topic, whichever node it landed on.
#[test]
fn three_nodes_behind_haproxy_deliver_every_message_once_in_one_order_per_topic() {
    let Some([haproxy]) = common::proxy::tools(["haproxy"], "pub/sub behind haproxy") else {
        return;
    };
    let redis = RedisProcess::start();
    let nodes: Vec<ServerProcess> = (0..3).map(|_| node(&redis, &[])).collect();
    let scratch = common::proxy::Scratch::new("haproxy-redis");
    let port = common::proxy::free_port();
    let addrs: Vec<_> = nodes.iter().map(|n| (n.addr, admin(n))).collect();
    let proxy = common::proxy::start_haproxy_nodes(&haproxy, &scratch, port, &addrs);
    let front: SocketAddr = ([127, 0, 0, 1], port).into();
    let mut subs = Vec::new();
    for topic in TOPICS {
        for _ in 0..6 {
            subs.push(Sub {
                topic,
                conn: subscriber(front, topic),
                got: Vec::new(),
            });
        }
    }
    let open: Vec<f64> = nodes
        .iter()
        .map(|n| metric_sum(admin(n), "ringws_connections_open"))
        .collect();
    assert_eq!(open.iter().sum::<f64>(), subs.len() as f64, "{open:?}");
    assert!(
        open.iter().all(|&n| n > 0.0),
        "haproxy left a node without subscribers: {open:?}\n{}",
        proxy.output()
    );
    wait_subscribed(&redis, nodes.len());
    let mut publishers: Vec<TcpStream> = nodes.iter().map(|n| publisher(n.addr)).collect();
    let mut rng = Lcg(42);
    let sent = publish_all(&nodes, &mut publishers, &mut rng, "h", 150);
    receive(&mut subs, &sent);
    check_exactly_once_same_order(&mut subs, &sent);
}

#[test]
fn a_node_starts_without_redis_refuses_publishes_and_connects_when_redis_comes() {
    // A free port with nothing on it yet.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let url = format!("redis://127.0.0.1:{port}/");
    let server = ServerProcess::start(&["--app", "pubsub", "--cores", "2", "--bus", &url]);
    let why = wait_readyz(&server, 503);
    assert!(
        why.contains("Redis bus") && why.contains("connect"),
        "{why}"
    );
    assert_eq!(admin_get(admin(&server), "/healthz").0, 200);
    // It serves: a client subscribes while Redis is away.
    let mut sub = subscriber(server.addr, "early");
    let r = http_publish(admin(&server), "early", b"lost");
    assert_eq!(r.status, 503, "{}", r.body);
    let v: Value = serde_json::from_str(&r.body).unwrap();
    assert_eq!(v["error"], "bus_unavailable");
    assert!(
        v["message"].as_str().unwrap().contains("cannot connect"),
        "{v}"
    );

    let redis = RedisProcess::start_on(port);
    wait_connected(&server, 1.0);
    assert_eq!(wait_readyz(&server, 200), "ready");
    redis.wait_until("ringws:early subscribed", |r| r.numsub("ringws:early") == 1);
    // It subscribed while Redis was away, so it may have missed messages: a gap, then delivery.
    let gap: Value = serde_json::from_str(&read_text(&mut sub)).unwrap();
    assert_eq!(gap, serde_json::json!({"op": "gap", "topic": "early"}));
    assert_eq!(http_publish(admin(&server), "early", b"now").status, 200);
    assert_eq!(read_text(&mut sub), "now");
}

#[test]
fn a_node_subscribes_on_its_first_subscriber_and_unsubscribes_after_its_last() {
    let redis = RedisProcess::start();
    let server = node(&redis, &[]);
    assert!(redis.channels().is_empty());
    // Enough connections that both cores hold some (the kernel spreads them by hash).
    let mut subs: Vec<TcpStream> = (0..32).map(|_| subscriber(server.addr, "x")).collect();
    let other = subscriber(server.addr, "y");
    redis.wait_until("ringws:x and ringws:y subscribed", |r| {
        r.channels() == ["ringws:x", "ringws:y"]
    });
    assert_eq!(
        redis.numsub("ringws:x"),
        1,
        "one subscription per node, not per client"
    );
    let (_, per_core) = admin_get(admin(&server), "/topics/x");
    let per_core: Value = serde_json::from_str(&per_core).unwrap();
    assert!(
        per_core["per_core"]
            .as_array()
            .unwrap()
            .iter()
            .all(|n| n.as_u64() > Some(0)),
        "subscribers on both cores: {per_core}"
    );
    while subs.len() > 1 {
        drop(subs.pop());
    }
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let (_, v) = admin_get(admin(&server), "/topics/x");
        if serde_json::from_str::<Value>(&v).unwrap()["subscribers"] == 1 {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the closed subscribers left: {v}"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    assert_eq!(redis.numsub("ringws:x"), 1, "one local subscriber is left");
    drop(subs.pop());
    redis.wait_until(
        "ringws:x unsubscribed after the last subscriber left",
        |r| r.channels() == ["ringws:y"],
    );
    drop(other);
    redis.wait_until("no channel left", |r| r.channels().is_empty());
}

#[test]
fn redis_killed_and_restarted_nodes_refuse_then_announce_the_gap_and_resume() {
    let mut redis = RedisProcess::start();
    let port = redis.port;
    let nodes: Vec<ServerProcess> = (0..3).map(|_| node(&redis, &[])).collect();
    let mut subs = subscribe_everywhere(&nodes, &TOPICS);
    wait_subscribed(&redis, nodes.len());
    let mut publishers: Vec<TcpStream> = nodes.iter().map(|n| publisher(n.addr)).collect();
    let mut rng = Lcg(7);
    let before = publish_all(&nodes, &mut publishers, &mut rng, "before", 60);
    receive(&mut subs, &before);
    check_exactly_once_same_order(&mut subs, &before);

    for node in &nodes {
        assert_eq!(wait_readyz(node, 200), "ready");
    }
    redis.kill();
    for node in &nodes {
        wait_connected(node, 0.0);
        let why = wait_readyz(node, 503);
        assert!(why.contains("Redis bus"), "/readyz says why: {why}");
        let (status, _) = admin_get(admin(node), "/healthz");
        assert_eq!(status, 200, "the node still serves");
    }
    for (i, node) in nodes.iter().enumerate() {
        let r = http_publish(admin(node), "news", b"during");
        assert_eq!(r.status, 503, "{}", r.body);
        let v: Value = serde_json::from_str(&r.body).unwrap();
        assert_eq!(v["error"], "bus_unavailable", "{v}");
        assert!(
            v["message"].as_str().unwrap().contains("Redis"),
            "a reason: {v}"
        );
        let v = client_publish(&mut publishers[i], "news", "during");
        assert_eq!(
            (&v["op"], &v["error"]),
            (&"error".into(), &"bus_unavailable".into()),
            "{v}"
        );
        assert!(
            metric_labelled(
                admin(node),
                "ringws_bus_publish_errors_total",
                "reason=\"disconnected\""
            ) >= 2.0
        );
    }

    let _redis = RedisProcess::start_on(port);
    for node in &nodes {
        wait_connected(node, 1.0);
        assert_eq!(wait_readyz(node, 200), "ready", "readiness recovers");
    }
    // Every subscriber hears that its topic may have missed messages, once.
    for sub in subs.iter_mut() {
        let gap: Value = serde_json::from_str(&read_text(&mut sub.conn)).unwrap();
        assert_eq!(gap, serde_json::json!({"op": "gap", "topic": sub.topic}));
    }
    for node in &nodes {
        assert_eq!(
            metric_sum(admin(node), "ringws_bus_gaps_total"),
            TOPICS.len() as f64
        );
        assert!(metric_sum(admin(node), "ringws_bus_reconnects_total") >= 2.0);
    }
    wait_subscribed(&_redis, nodes.len());
    for sub in subs.iter_mut() {
        sub.got.clear();
    }
    let after = publish_all(&nodes, &mut publishers, &mut rng, "after", 60);
    receive(&mut subs, &after);
    check_exactly_once_same_order(&mut subs, &after);
}

#[test]
fn a_stopped_redis_bounds_the_queue_and_memory_and_recovers() {
    let redis = RedisProcess::start();
    let server = node(
        &redis,
        &["--bus-queue-size", "64", "--bus-publish-timeout", "500ms"],
    );
    let mut sub = subscriber(server.addr, "after");
    redis.wait_until("ringws:after subscribed", |r| r.numsub("ringws:after") == 1);
    let rss_before = server.rss_bytes();

    redis.signal(libc::SIGSTOP);
    let body = vec![b'x'; 64 << 10];
    let (mut accepted, mut refused) = (0u64, HashMap::<String, u64>::new());
    // A guard against a hang, not a speed check.
    let deadline = Instant::now() + Duration::from_secs(120);
    // 1,000 publishes of 64 KiB: 62.5 MiB if it were all kept.
    for _ in 0..1000 {
        let r = http_publish(admin(&server), "flood", &body);
        match r.status {
            200 => accepted += 1,
            503 => {
                let v: Value = serde_json::from_str(&r.body).unwrap();
                assert!(!v["message"].as_str().unwrap().is_empty(), "a reason: {v}");
                *refused
                    .entry(v["error"].as_str().unwrap().to_owned())
                    .or_default() += 1;
            }
            other => panic!("{other}: {}", r.body),
        }
        assert!(Instant::now() < deadline, "publishing stalled");
    }
    eprintln!("during the stall: {accepted} accepted, refused {refused:?}");
    let total_refused: u64 = refused.values().sum();
    assert!(
        total_refused > 0,
        "refusals once Redis stopped answering: {refused:?}"
    );
    // Accepted publishes are bounded by the queue and what the socket took before the stall.
    assert!(accepted < 500, "{accepted} accepted, {refused:?}");
    // The queue (64 x 64 KiB), one batch being written and the allocator's slack: far below
    // the 62.5 MiB an unbounded queue would hold.
    let grown = server.rss_bytes().saturating_sub(rss_before);
    eprintln!("RSS grew {grown} bytes during the stall");
    assert!(grown < 32 << 20, "RSS grew {grown} bytes during the stall");
    wait_connected(&server, 0.0);
    let why = wait_readyz(&server, 503);
    assert!(why.contains("did not answer"), "/readyz says why: {why}");

    redis.signal(libc::SIGCONT);
    wait_connected(&server, 1.0);
    wait_readyz(&server, 200);
    let r = http_publish(admin(&server), "after", b"resumed");
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(read_text(&mut sub), "resumed");
}

#[test]
fn topics_with_scope_cluster_sum_the_live_nodes_approximately() {
    let redis = RedisProcess::start();
    let mut nodes: Vec<ServerProcess> = (0..3).map(|_| node(&redis, &[])).collect();
    // Node i holds i + 1 subscribers of "shared" and one of its own topic.
    let mut conns = Vec::new();
    for (i, node) in nodes.iter().enumerate() {
        for _ in 0..=i {
            conns.push(subscriber(node.addr, "shared"));
        }
        conns.push(subscriber(node.addr, &format!("own-{i}")));
    }
    let cluster = |node: &ServerProcess| {
        let (status, body) = admin_get(admin(node), "/topics?scope=cluster");
        (status, serde_json::from_str::<Value>(&body).unwrap())
    };
    let wait_for = |node: &ServerProcess, what: &str, check: &dyn Fn(&Value) -> bool| {
        let deadline = Instant::now() + Duration::from_secs(25);
        loop {
            let (status, v) = cluster(node);
            if status == 200 && check(&v) {
                return v;
            }
            assert!(Instant::now() < deadline, "{what}: {status} {v}");
            std::thread::sleep(Duration::from_millis(100));
        }
    };
    let v = wait_for(&nodes[0], "all three nodes counted", &|v| {
        v["nodes"] == 3 && v["subscriptions"] == 9
    });
    assert_eq!(v["scope"], "cluster");
    assert_eq!(v["approximate"], true);
    assert_eq!(v["topic_count"], 4);
    assert_eq!(
        v["topics"][0],
        serde_json::json!({"topic": "shared", "subscribers": 6})
    );
    // The node's own view is unchanged by the scope.
    let (_, local) = admin_get(admin(&nodes[2]), "/topics");
    let local: Value = serde_json::from_str(&local).unwrap();
    assert_eq!(local["subscriptions"], 4);
    // A node that dies drops out once its counts expire.
    let dead = nodes.pop().unwrap();
    drop(dead);
    let v = wait_for(&nodes[0], "the killed node's counts expired", &|v| {
        v["nodes"] == 2
    });
    assert_eq!(v["subscriptions"], 5);
    assert_eq!(v["topic_count"], 3);
}
