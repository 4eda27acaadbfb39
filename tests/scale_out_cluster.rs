//! Pub/sub across nodes through a real local Redis Cluster (`bus = "redis-cluster://..."`,
//! sharded pub/sub, docs/scale-out.md): two ringws nodes, subscribers on both, topics on the
//! slots of three different masters; a master killed while publishing (its replica takes
//! over); one topic's slot moved to another master while publishing.
//! Needs `redis-server` 7 and `redis-cli` (`.ci/test` installs them).

mod common;

use std::collections::{HashMap, HashSet};
use std::io::Write;
use std::net::{SocketAddr, TcpStream};
use std::time::{Duration, Instant};

use common::pubsub::{nothing_more, read_text, subscribe_everywhere, subscriber, Sub};
use common::redis::{assert_bus_unavailable, RedisCluster};
use common::*;
use serde_json::Value;

/// One cluster test at a time: each runs seven processes on a small machine.
static ONE_CLUSTER: std::sync::Mutex<()> = std::sync::Mutex::new(());

fn one_cluster() -> std::sync::MutexGuard<'static, ()> {
    ONE_CLUSTER.lock().unwrap_or_else(|p| p.into_inner())
}

/// Topics whose channels hash to slots 3316, 7381 and 15511: one per master of the cluster
/// `redis-cli --cluster create` makes (0-5460, 5461-10922, 10923-16383).
const TOPICS: [&str; 3] = ["t3", "t2", "t0"];

fn node(cluster: &RedisCluster) -> ServerProcess {
    let url = cluster.url();
    let server = ServerProcess::start(&[
        "--app",
        "pubsub",
        "--cores",
        "2",
        "--bus",
        &url,
        "--allow-client-publish",
        "true",
    ]);
    let deadline = Instant::now() + Duration::from_secs(15);
    while metric_sum(admin(&server), "ringws_bus_connected") != 1.0 {
        assert!(Instant::now() < deadline, "the node connected within 15 s");
        std::thread::sleep(Duration::from_millis(20));
    }
    server
}

fn admin(server: &ServerProcess) -> SocketAddr {
    server.admin.expect("admin listener")
}

fn http_publish(admin: SocketAddr, topic: &str, body: &str) -> HttpResponse {
    let req = format!(
        "POST /publish/{topic} HTTP/1.1\r\nHost: x\r\nContent-Type: text/plain\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    );
    exchange(admin, req.as_bytes())
}

/// A client's `{"op":"publish"}`; true when it was queued.
fn client_publish(s: &mut TcpStream, topic: &str, data: &str) -> bool {
    let msg = serde_json::json!({"op": "publish", "topic": topic, "data": data}).to_string();
    s.write_all(&client_frame(true, 0x1, msg.as_bytes()))
        .unwrap();
    let v: Value = serde_json::from_str(&read_text(s)).unwrap();
    v["op"] == "published" && v["queued"] == true
}

/// Waits (at most 30 s) until the master of each topic's slot holds `nodes` subscriptions of
/// its channel.
#[track_caller]
fn wait_subscribed(cluster: &RedisCluster, topics: &[&str], nodes: u64) {
    let deadline = Instant::now() + Duration::from_secs(30);
    for topic in topics {
        let channel = format!("ringws:{topic}");
        loop {
            let master = cluster.master_of(cluster.keyslot(&channel));
            if cluster.shardnumsub(master.port, &channel) == nodes {
                break;
            }
            assert!(
                Instant::now() < deadline,
                "{nodes} nodes subscribed to {channel} on its master within 30 s"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

/// Reads each subscriber until it got every message of `want` for its topic (publishes
/// through different nodes reach Redis in no set order, so not "until the last one").
fn receive_all_of(subs: &mut [Sub], want: &HashMap<&'static str, Vec<String>>) {
    for sub in subs.iter_mut() {
        let mut missing: HashSet<&String> = want.get(sub.topic).into_iter().flatten().collect();
        while !missing.is_empty() {
            let text = read_text(&mut sub.conn);
            missing.remove(&text);
            sub.got.push(text);
        }
    }
}

fn gap(topic: &str) -> String {
    serde_json::json!({"op": "gap", "topic": topic}).to_string()
}

/// Publishes `{tag}-{i}` for i in 0..count, topics and nodes in turn, alternating HTTP and
/// client publishes; returns what each topic had accepted, in order. With `must_accept`,
/// every publish must be accepted; otherwise a refusal must be a 503 with a reason.
fn publish(
    nodes: &[ServerProcess],
    clients: &mut [TcpStream],
    topics: &[&'static str],
    tag: &str,
    count: usize,
    must_accept: bool,
) -> HashMap<&'static str, Vec<String>> {
    let mut sent: HashMap<&'static str, Vec<String>> = HashMap::new();
    for i in 0..count {
        let topic = topics[i % topics.len()];
        let n = (i / topics.len()) % nodes.len();
        let text = format!("{tag}-{i}");
        let accepted = if i % 2 == 0 || !must_accept {
            let r = http_publish(admin(&nodes[n]), topic, &text);
            if r.status != 200 {
                assert_bus_unavailable(r.status, &r.body, "Redis bus");
            }
            r.status == 200
        } else {
            client_publish(&mut clients[n], topic, &text)
        };
        assert!(accepted || !must_accept, "{text} refused");
        if accepted {
            sent.entry(topic).or_default().push(text);
        }
    }
    sent
}

/// The node `{tag}-{i}` was published through, and its place in that node's publishes
/// (tag, then index): one node's publishes keep their order.
fn origin_and_position(text: &str, tags: &[&str]) -> (usize, (usize, usize)) {
    let (tag, i) = text.rsplit_once('-').expect("tag-index");
    let tag = tags.iter().position(|t| *t == tag).expect("a known tag");
    let i: usize = i.parse().expect("an index");
    ((i / TOPICS.len()) % 2, (tag, i))
}

#[test]
fn two_nodes_on_a_cluster_deliver_every_message_once_in_one_order_per_topic() {
    let _one = one_cluster();
    let cluster = RedisCluster::start();
    let masters: Vec<u16> = TOPICS
        .iter()
        .map(|t| {
            cluster
                .master_of(cluster.keyslot(&format!("ringws:{t}")))
                .port
        })
        .collect();
    assert!(
        masters[0] != masters[1] && masters[1] != masters[2] && masters[0] != masters[2],
        "the topics are on three masters: {masters:?}"
    );
    let nodes = [node(&cluster), node(&cluster)];
    let mut subs = subscribe_everywhere(&nodes, &TOPICS);
    wait_subscribed(&cluster, &TOPICS, 2);
    for m in cluster.masters() {
        assert_eq!(
            cluster.node(m.port).cli(&["PUBSUB", "CHANNELS"]).trim(),
            "",
            "sharded subscriptions only"
        );
    }
    let mut clients: Vec<TcpStream> = nodes.iter().map(|n| ws_connect(n.addr)).collect();
    for c in &clients {
        c.set_read_timeout(Some(Duration::from_secs(15))).unwrap();
    }
    let sent = publish(&nodes, &mut clients, &TOPICS, "m", 300, true);
    receive_all_of(&mut subs, &sent);
    let mut order: HashMap<&str, Vec<String>> = HashMap::new();
    for sub in subs.iter_mut() {
        let mut got = sub.got.clone();
        got.sort();
        let mut want = sent[sub.topic].clone();
        want.sort();
        assert_eq!(got, want, "{}: every message exactly once", sub.topic);
        let first = order.entry(sub.topic).or_insert_with(|| sub.got.clone());
        assert_eq!(first, &sub.got, "{}: one order on every node", sub.topic);
        assert!(nothing_more(&mut sub.conn, Duration::from_millis(200)));
    }
    for node in &nodes {
        assert_eq!(
            metric_sum(admin(node), "ringws_bus_messages_in_total"),
            300.0
        );
        assert!(metric_sum(admin(node), "ringws_bus_topology_refreshes_total") >= 2.0);
        assert_eq!(metric_sum(admin(node), "ringws_bus_gaps_total"), 0.0);
    }
}

/// Two nodes, subscribers everywhere, a publishing client on each node, and 60 messages
/// delivered to every subscriber before the disruption.
fn steady(cluster: &RedisCluster) -> ([ServerProcess; 2], Vec<Sub>, Vec<TcpStream>) {
    let nodes = [node(cluster), node(cluster)];
    let mut subs = subscribe_everywhere(&nodes, &TOPICS);
    wait_subscribed(cluster, &TOPICS, 2);
    let mut clients: Vec<TcpStream> = nodes.iter().map(|n| ws_connect(n.addr)).collect();
    for c in &clients {
        c.set_read_timeout(Some(Duration::from_secs(15))).unwrap();
    }
    let before = publish(&nodes, &mut clients, &TOPICS, "a", 60, true);
    receive_all_of(&mut subs, &before);
    for sub in subs.iter_mut() {
        sub.got.clear();
    }
    (nodes, subs, clients)
}

/// Reads every subscriber until it got all of `after`, checks what it got since the
/// disruption began, and that nothing more comes.
fn receive_and_check(
    subs: &mut [Sub],
    during: &HashMap<&'static str, Vec<String>>,
    after: &HashMap<&'static str, Vec<String>>,
    gap_topic: &str,
) {
    receive_all_of(subs, after);
    check_after_disruption(subs, &[during, after], &["b", "c"], gap_topic);
    for sub in subs.iter_mut() {
        assert!(
            nothing_more(&mut sub.conn, Duration::from_millis(200)),
            "{}: a message more than published",
            sub.topic
        );
    }
}

/// What each subscriber got after a disruption: messages of `tags` (as `accepted`) once each,
/// in publish order, only accepted ones, every one of the last tag (published once the nodes
/// had resubscribed), and a gap message where `gap_topic` says (exactly one for its
/// subscribers, none for the others). Publishes accepted during the disruption may be lost.
fn check_after_disruption(
    subs: &[Sub],
    accepted: &[&HashMap<&'static str, Vec<String>>],
    tags: &[&str],
    gap_topic: &str,
) {
    for sub in subs {
        let gaps = sub.got.iter().filter(|m| **m == gap(sub.topic)).count();
        let want_gaps = usize::from(sub.topic == gap_topic);
        assert_eq!(
            gaps, want_gaps,
            "{}: gap messages in {:?}",
            sub.topic, sub.got
        );
        let messages: Vec<&String> = sub.got.iter().filter(|m| **m != gap(sub.topic)).collect();
        for origin in 0..2 {
            let positions: Vec<(usize, usize)> = messages
                .iter()
                .map(|m| origin_and_position(m, tags))
                .filter(|(o, _)| *o == origin)
                .map(|(_, p)| p)
                .collect();
            assert!(
                positions.windows(2).all(|w| w[0] < w[1]),
                "{}: once each, in each node's publish order: {messages:?}",
                sub.topic
            );
        }
        // Subscribers on different nodes may miss different messages in the disruption,
        // but what they both got, they got in the same order.
        for other in subs.iter().filter(|o| o.topic == sub.topic) {
            let common: Vec<&String> = messages
                .iter()
                .copied()
                .filter(|m| other.got.contains(m))
                .collect();
            let theirs: Vec<&String> = other.got.iter().filter(|m| common.contains(m)).collect();
            assert_eq!(common, theirs, "{}: one order on every node", sub.topic);
        }
        for (tag, sent) in tags.iter().zip(accepted) {
            for m in sent.get(sub.topic).into_iter().flatten() {
                assert!(
                    tag != tags.last().unwrap() || messages.contains(&m),
                    "{}: {m} missing",
                    sub.topic
                );
            }
        }
        for m in &messages {
            let accepted_somewhere = accepted
                .iter()
                .any(|sent| sent.get(sub.topic).is_some_and(|v| v.contains(m)));
            assert!(accepted_somewhere, "{}: {m} was never accepted", sub.topic);
        }
    }
}

#[test]
fn a_master_killed_while_publishing_nodes_follow_the_failover_announce_the_gap_and_resume() {
    let _one = one_cluster();
    let mut cluster = RedisCluster::start();
    let (nodes, mut subs, mut clients) = steady(&cluster);

    let victim_topic = TOPICS[1];
    let victim = cluster.master_of(cluster.keyslot(&format!("ringws:{victim_topic}")));
    cluster.node_mut(victim.port).kill();
    // Publish on both nodes, all topics in turn, until a node refused (it found the master
    // gone) and the cluster promoted the replica; then until both nodes accept the victim's
    // topic again.
    let mut during: HashMap<&'static str, Vec<String>> = HashMap::new();
    let mut refused = 0;
    let mut accepted_again = [false, false];
    let deadline = Instant::now() + Duration::from_secs(60);
    let slot = cluster.keyslot(&format!("ringws:{victim_topic}"));
    let mut promoted = false;
    for i in 0.. {
        let text = format!("b-{i}");
        let topic = TOPICS[i % TOPICS.len()];
        let n = (i / TOPICS.len()) % 2;
        let r = http_publish(admin(&nodes[n]), topic, &text);
        match r.status {
            200 => {
                during.entry(topic).or_default().push(text);
                if promoted && refused > 0 && topic == victim_topic {
                    accepted_again[n] = true;
                }
            }
            503 => {
                // The refusal names the lost master.
                assert_bus_unavailable(r.status, &r.body, &victim.port.to_string());
                refused += 1;
            }
            other => panic!("{other}: {}", r.body),
        }
        if accepted_again == [true, true] {
            break;
        }
        if !promoted && i % 10 == 0 {
            promoted = cluster
                .master_of_if_any(slot)
                .is_some_and(|m| m.port != victim.port);
        }
        assert!(
            Instant::now() < deadline,
            "publishes refused, the replica promoted, then accepted again, within 60 s \
             (refused {refused}, promoted {promoted})"
        );
        std::thread::sleep(Duration::from_millis(5));
    }
    cluster.wait_ok();
    let new_master = cluster.master_of(slot);
    assert_ne!(new_master.port, victim.port, "the replica took over");
    wait_subscribed(&cluster, &TOPICS, 2);
    let after = publish(&nodes, &mut clients, &TOPICS, "c", 60, true);
    // The subscribers of the victim's topic read their gap by then (it precedes the "c"
    // messages, published after the resubscription); the others have none.
    receive_and_check(&mut subs, &during, &after, victim_topic);
    for node in &nodes {
        assert_eq!(metric_sum(admin(node), "ringws_bus_gaps_total"), 1.0);
        assert!(metric_sum(admin(node), "ringws_bus_topology_refreshes_total") >= 3.0);
    }
}

#[test]
fn a_topic_whose_slot_moves_keeps_its_subscribers_receiving_after_a_gap() {
    let _one = one_cluster();
    let cluster = RedisCluster::start();
    let (nodes, mut subs, mut clients) = steady(&cluster);

    let moved_topic = TOPICS[0];
    let channel = format!("ringws:{moved_topic}");
    let slot = cluster.keyslot(&channel);
    let from = cluster.master_of(slot);
    let to = cluster.master_of(cluster.keyslot(&format!("ringws:{}", TOPICS[2])));
    cluster.move_slot(slot, to.port);
    // Publishes right after the move meet the old master's MOVED: re-sent to the new one.
    let during = publish(&nodes, &mut clients, &TOPICS, "b", 60, false);
    assert_eq!(cluster.master_of(slot).port, to.port);
    wait_subscribed(&cluster, &[moved_topic], 2);
    assert_eq!(
        cluster.shardnumsub(from.port, &channel),
        0,
        "nothing left on the old master"
    );
    let after = publish(&nodes, &mut clients, &TOPICS, "c", 60, true);
    receive_and_check(&mut subs, &during, &after, moved_topic);
}

#[test]
fn a_manual_failover_is_followed_with_a_gap_and_delivery_resumes() {
    let _one = one_cluster();
    let cluster = RedisCluster::start();
    let (nodes, mut subs, mut clients) = steady(&cluster);
    let topic = TOPICS[1];
    let slot = cluster.keyslot(&format!("ringws:{topic}"));
    let old = cluster.master_of(slot);
    let replica = cluster.replica_of(&old.id);
    assert_eq!(
        cluster.node(replica).cli(&["CLUSTER", "FAILOVER"]).trim(),
        "OK"
    );
    // The old master, now a replica, drops its sharded subscribers (`sunsubscribe`); the
    // old master answers publishes with MOVED.
    let during = publish(&nodes, &mut clients, &TOPICS, "b", 60, false);
    let deadline = Instant::now() + Duration::from_secs(30);
    while cluster.master_of_if_any(slot).map(|m| m.port) != Some(replica) {
        assert!(
            Instant::now() < deadline,
            "the replica took over within 30 s"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    wait_subscribed(&cluster, &[topic], 2);
    assert_eq!(
        cluster.shardnumsub(old.port, &format!("ringws:{topic}")),
        0,
        "nothing left on the demoted master"
    );
    let after = publish(&nodes, &mut clients, &TOPICS, "c", 60, true);
    receive_and_check(&mut subs, &during, &after, topic);
}

#[test]
fn a_node_started_without_its_cluster_serves_and_refuses_publishes_with_the_reason() {
    // Seeds where nothing listens.
    let ports: Vec<u16> = (0..2)
        .map(|_| {
            std::net::TcpListener::bind("127.0.0.1:0")
                .unwrap()
                .local_addr()
                .unwrap()
                .port()
        })
        .collect();
    let url = format!(
        "redis-cluster://127.0.0.1:{},127.0.0.1:{}",
        ports[0], ports[1]
    );
    let server = ServerProcess::start(&["--app", "pubsub", "--cores", "2", "--bus", &url]);
    let deadline = Instant::now() + Duration::from_secs(15);
    let why = loop {
        let (status, body) = admin_get(admin(&server), "/readyz");
        if status == 503 && body.contains("cannot connect") {
            break body;
        }
        assert!(
            Instant::now() < deadline,
            "/readyz 503 within 15 s: {status} {body}"
        );
        std::thread::sleep(Duration::from_millis(20));
    };
    assert!(why.contains("Redis bus"), "{why}");
    assert_eq!(admin_get(admin(&server), "/healthz").0, 200);
    let _sub = subscriber(server.addr, "early");
    let r = http_publish(admin(&server), "early", "lost");
    assert_bus_unavailable(r.status, &r.body, "cannot connect");
    assert_eq!(metric_sum(admin(&server), "ringws_bus_connected"), 0.0);
}
