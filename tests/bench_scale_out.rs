//! `ringws bench fanout` across nodes: two ringws nodes on one real `redis-server` (Redis bus),
//! subscribers spread over both, publishes POSTed to the first node's admin listener. The run
//! must see every message on every subscriber, count deliveries per node (as its subscribers
//! received them and as each node counted them), and time the same publishes on a plain Redis
//! subscriber. Needs `redis-server` and `redis-cli` (`.ci/test` installs them).

mod common;

use std::process::Command;
use std::time::Duration;

use common::redis::RedisProcess;
use common::*;
use serde_json::Value;

fn node(redis: &RedisProcess) -> ServerProcess {
    ServerProcess::start(&["--app", "pubsub", "--cores", "1", "--bus", &redis.url()])
}

/// `ringws bench fanout ARGS --json`: exit code, the report, stderr (bounded to 60 s).
fn fanout(args: &[String]) -> (Option<i32>, Value, String) {
    let out = output_within(
        Command::new(env!("CARGO_BIN_EXE_ringws"))
            .args(["bench", "fanout", "--json"])
            .args(args),
        Duration::from_secs(60),
    );
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    let report = serde_json::from_str(&stdout).unwrap_or(Value::Null);
    (out.status.code(), report, stderr)
}

#[test]
fn fanout_across_two_nodes_counts_every_delivery_per_node_and_times_the_redis_floor() {
    let redis = RedisProcess::start();
    let nodes = [node(&redis), node(&redis)];
    let admin = |n: &ServerProcess| n.admin.expect("admin listener").to_string();
    let (subscribers, publishes, burst) = (7usize, 5usize, 20usize);
    let mut args: Vec<String> = Vec::new();
    for n in &nodes {
        args.extend(["--url".into(), format!("ws://{}/ws", n.addr)]);
        args.extend(["--admin".into(), admin(n)]);
    }
    let pids: Vec<String> = nodes.iter().map(|n| n.child.id().to_string()).collect();
    args.extend(
        [
            "--redis",
            &format!("127.0.0.1:{}", redis.port),
            "--topic",
            "xnode",
            "--subscribers",
            &subscribers.to_string(),
            "--publishes",
            &publishes.to_string(),
            "--burst",
            &burst.to_string(),
            "--threads",
            "2",
            "--server-pid",
            &pids[0],
            "--server-pid",
            &pids[1],
        ]
        .map(String::from),
    );
    let (code, report, stderr) = fanout(&args);
    assert_eq!(code, Some(0), "{report}\n{stderr}");
    assert_eq!(report["errors"], 0, "{report}");
    for kind in [
        "out_of_order",
        "not_ours",
        "closed",
        "invalid",
        "redis_floor",
    ] {
        assert_eq!(report["errors_by_kind"][kind], 0, "{kind}: {report}");
    }
    assert_eq!(report["first_not_ours_bytes"], Value::Null, "{report}");
    assert_eq!(report["publish_admin"], admin(&nodes[0]), "{report}");
    let messages = (publishes + burst) as u64;
    // 7 subscribers round-robin over 2 nodes: 4 on the first, 3 on the second.
    let per_node = report["nodes"].as_array().expect("nodes in the report");
    assert_eq!(per_node.len(), 2, "{report}");
    for (n, (node, expected_subscribers)) in per_node.iter().zip([4u64, 3]).enumerate() {
        let expected = expected_subscribers * messages;
        assert_eq!(node["admin"], admin(&nodes[n]), "{report}");
        assert_eq!(node["subscribers"], expected_subscribers, "{report}");
        assert_eq!(node["received"], expected, "node {n}: {report}");
        assert_eq!(node["expected"], expected, "node {n}: {report}");
        assert_eq!(
            node["server_deliveries"].as_f64(),
            Some(expected as f64),
            "node {n} counted its own deliveries: {report}"
        );
        assert!(node["deliveries_per_s"].as_f64().unwrap() > 0.0, "{report}");
        assert!(
            node["latency_us"]["p50"].as_f64().unwrap() > 0.0,
            "{report}"
        );
    }
    let floor = &report["redis_floor"];
    assert_eq!(floor["received"], messages, "{report}");
    assert!(
        floor["latency_us"]["p99"].as_f64().unwrap() > 0.0,
        "{report}"
    );
    assert!(
        report["server_cpu_ns_per_delivery"].as_f64().is_some(),
        "{report}"
    );
    // The bench's subscribers and its Redis subscriber left with it: the nodes unsubscribed.
    redis.wait_until("no subscription of ringws:xnode left", |r| {
        r.numsub("ringws:xnode") == 0
    });
}

#[test]
fn fanout_across_nodes_needs_one_admin_per_url_and_the_redis() {
    let urls = [
        "--url",
        "ws://127.0.0.1:1/ws",
        "--url",
        "ws://127.0.0.1:2/ws",
    ]
    .map(String::from);
    let mut one_admin = urls.to_vec();
    one_admin.extend(["--admin", "127.0.0.1:3", "--redis", "127.0.0.1:4"].map(String::from));
    let (code, _, stderr) = fanout(&one_admin);
    assert_eq!(code, Some(2), "{stderr}");
    assert!(stderr.contains("2 --url but 1 --admin"), "{stderr}");
    let mut no_redis = urls.to_vec();
    no_redis.extend(["--admin", "127.0.0.1:3", "--admin", "127.0.0.1:5"].map(String::from));
    let (code, _, stderr) = fanout(&no_redis);
    assert_eq!(code, Some(2), "{stderr}");
    assert!(stderr.contains("--redis HOST:PORT"), "{stderr}");
}
