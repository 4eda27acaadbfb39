//! A real `redis-server` for the scale-out tests: on a free loopback port, with no
//! persistence, killed by pid when dropped. Needs Debian's `redis-server` (`.ci/test` installs
//! it); `redis-cli` (same package family) asks it questions.

use std::net::TcpStream;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

pub struct RedisProcess {
    child: Option<Child>,
    pub port: u16,
}

impl RedisProcess {
    /// Starts one on a free port and waits until it answers PING.
    pub fn start() -> RedisProcess {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        RedisProcess::start_on(port)
    }

    /// Starts one on `port` (again, after [`RedisProcess::kill`]).
    pub fn start_on(port: u16) -> RedisProcess {
        let child = Command::new("redis-server")
            .args(["--port", &port.to_string(), "--bind", "127.0.0.1"])
            .args(["--save", "", "--appendonly", "no"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start redis-server (Debian package redis-server; .ci/test installs it)");
        let redis = RedisProcess {
            child: Some(child),
            port,
        };
        let deadline = Instant::now() + Duration::from_secs(10);
        while redis.cli(&["PING"]).trim() != "PONG" {
            assert!(
                Instant::now() < deadline,
                "redis-server on {port} did not answer PING within 10 s"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
        redis
    }

    pub fn url(&self) -> String {
        format!("redis://127.0.0.1:{}/", self.port)
    }

    pub fn pid(&self) -> i32 {
        self.child.as_ref().expect("running").id() as i32
    }

    /// Sends `sig` (SIGKILL, SIGSTOP, SIGCONT) to the server.
    pub fn signal(&self, sig: i32) {
        // SAFETY: kill(2) on our own child process has no memory effects.
        unsafe { libc::kill(self.pid(), sig) };
    }

    /// SIGKILL, and waits until it is gone (its port free for [`RedisProcess::start_on`]).
    pub fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// `redis-cli -p PORT ARGS...` (raw output, one value per line), bounded to 5 s.
    pub fn cli(&self, args: &[&str]) -> String {
        let mut command = Command::new("redis-cli");
        command
            .args(["-p", &self.port.to_string(), "--raw"])
            .args(args);
        let out = super::output_within(&mut command, Duration::from_secs(5));
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    /// The ringws channels Redis has subscribers for (`PUBSUB CHANNELS ringws:*`), sorted.
    pub fn channels(&self) -> Vec<String> {
        let mut channels: Vec<String> = self
            .cli(&["PUBSUB", "CHANNELS", "ringws:*"])
            .lines()
            .filter(|l| !l.is_empty())
            .map(str::to_owned)
            .collect();
        channels.sort();
        channels
    }

    /// Subscriptions to `channel` (`PUBSUB NUMSUB`): one per node with local subscribers.
    pub fn numsub(&self, channel: &str) -> u64 {
        let out = self.cli(&["PUBSUB", "NUMSUB", channel]);
        out.lines()
            .nth(1)
            .and_then(|n| n.trim().parse().ok())
            .unwrap_or(0)
    }

    /// Waits (at most 10 s) until `check` holds; fails saying `what` otherwise.
    #[track_caller]
    pub fn wait_until(&self, what: &str, mut check: impl FnMut(&RedisProcess) -> bool) {
        let deadline = Instant::now() + Duration::from_secs(10);
        while !check(self) {
            assert!(Instant::now() < deadline, "within 10 s: {what}");
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// True while something accepts connections on the port.
    pub fn listening(&self) -> bool {
        TcpStream::connect(("127.0.0.1", self.port)).is_ok()
    }
}

impl Drop for RedisProcess {
    fn drop(&mut self) {
        if let Some(child) = &self.child {
            // A stopped server would not die of SIGTERM; SIGKILL works on it too.
            // SAFETY: kill(2) on our own child process.
            unsafe { libc::kill(child.id() as i32, libc::SIGKILL) };
        }
        if let Some(mut child) = self.child.take() {
            let _ = child.wait();
        }
    }
}

/// Checks a publish refused because the bus is down: 503 `bus_unavailable`, with a message
/// that says `says`.
#[track_caller]
pub fn assert_bus_unavailable(status: u16, body: &str, says: &str) {
    assert_eq!(status, 503, "{body}");
    let v: serde_json::Value = serde_json::from_str(body).unwrap();
    assert_eq!(v["error"], "bus_unavailable", "{v}");
    let message = v["message"].as_str().unwrap_or_default();
    assert!(message.contains(says), "the refusal says {says:?}: {v}");
}

/// A local Redis Cluster: six `redis-server --cluster-enabled yes` processes on free loopback
/// ports in a temporary directory, joined by `redis-cli --cluster create` into three masters
/// with a replica each. Every process is killed by pid when dropped.
pub struct RedisCluster {
    /// Index `i` listens on `ports[i]`.
    pub nodes: Vec<RedisProcess>,
    /// The nodes' config files (`nodes.conf`), removed on drop.
    dir: std::path::PathBuf,
}

/// A master as `CLUSTER NODES` lists it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ClusterNode {
    pub id: String,
    pub port: u16,
    pub master: bool,
    /// `(first, last)` slot ranges it serves.
    pub slots: Vec<(u16, u16)>,
}

impl RedisCluster {
    /// Starts the six servers and creates the cluster; returns once every node reports
    /// `cluster_state:ok` and knows the same three masters.
    pub fn start() -> RedisCluster {
        let dir = std::env::temp_dir().join(format!(
            "ringws-redis-cluster-{}-{}",
            std::process::id(),
            free_cluster_port()
        ));
        // A port found free may be taken before the server binds it (or its bus port, 10000
        // above): then another.
        let nodes: Vec<RedisProcess> = (0..6)
            .map(|_| {
                (0..10)
                    .find_map(|_| RedisProcess::spawn_cluster_node(&dir, free_cluster_port()))
                    .expect("a cluster node started on one of 10 free ports")
            })
            .collect();
        let ports: Vec<u16> = nodes.iter().map(|n| n.port).collect();
        let cluster = RedisCluster { nodes, dir };
        let addresses: Vec<String> = ports.iter().map(|p| format!("127.0.0.1:{p}")).collect();
        let mut create = Command::new("redis-cli");
        create
            .arg("--cluster")
            .arg("create")
            .args(&addresses)
            .args(["--cluster-replicas", "1", "--cluster-yes"]);
        let out = super::output_within(&mut create, Duration::from_secs(30));
        assert!(
            out.status.success(),
            "redis-cli --cluster create: {}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        cluster.wait_ok();
        cluster
    }

    /// Waits (at most 30 s) until every running node says `cluster_state:ok` and sees three
    /// masters covering every slot, and every replica is in sync with its master.
    #[track_caller]
    pub fn wait_ok(&self) {
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let ok = self.nodes.iter().filter(|n| n.child.is_some()).all(|n| {
                let info = n.cli(&["INFO", "replication"]);
                n.cli(&["CLUSTER", "INFO"]).contains("cluster_state:ok")
                    && self.masters_seen_by(n).len() == 3
                    && (info.contains("role:master") || info.contains("master_link_status:up"))
            });
            if ok {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "the cluster is not ok within 30 s"
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// `redis-cluster://` with every node as a seed.
    pub fn url(&self) -> String {
        let seeds: Vec<String> = self
            .nodes
            .iter()
            .map(|n| format!("127.0.0.1:{}", n.port))
            .collect();
        format!("redis-cluster://{}", seeds.join(","))
    }

    /// The masters serving slots, as the first running node sees them.
    pub fn masters(&self) -> Vec<ClusterNode> {
        let node = self.any_node();
        self.masters_seen_by(node)
    }

    fn masters_seen_by(&self, node: &RedisProcess) -> Vec<ClusterNode> {
        node.cli(&["CLUSTER", "NODES"])
            .lines()
            .filter_map(parse_cluster_node)
            .filter(|n| n.master && !n.slots.is_empty())
            .collect()
    }

    /// The running node on `port`.
    pub fn node(&self, port: u16) -> &RedisProcess {
        self.nodes
            .iter()
            .find(|n| n.port == port)
            .expect("a node on that port")
    }

    /// The node on `port`, to kill or signal.
    pub fn node_mut(&mut self, port: u16) -> &mut RedisProcess {
        self.nodes
            .iter_mut()
            .find(|n| n.port == port)
            .expect("a node on that port")
    }

    /// The master serving `slot`.
    pub fn master_of(&self, slot: u16) -> ClusterNode {
        self.master_of_if_any(slot).expect("a master for the slot")
    }

    /// The master serving `slot`, unless it failed and no replica took over yet.
    pub fn master_of_if_any(&self, slot: u16) -> Option<ClusterNode> {
        self.masters()
            .into_iter()
            .find(|m| m.slots.iter().any(|&(a, b)| a <= slot && slot <= b))
    }

    /// A running node, to ask about the cluster.
    fn any_node(&self) -> &RedisProcess {
        self.nodes
            .iter()
            .find(|n| n.child.is_some())
            .expect("a running node")
    }

    /// The port of a replica of the master `master_id`.
    pub fn replica_of(&self, master_id: &str) -> u16 {
        let node = self.any_node();
        node.cli(&["CLUSTER", "NODES"])
            .lines()
            .find_map(|line| {
                let fields: Vec<&str> = line.split_whitespace().collect();
                let replica = fields.get(2)?.contains("slave") && fields.get(3) == Some(&master_id);
                let port = fields.get(1)?.split('@').next()?.rsplit_once(':')?.1;
                replica.then(|| port.parse().ok()).flatten()
            })
            .expect("a replica of the master")
    }

    /// `CLUSTER KEYSLOT`.
    pub fn keyslot(&self, key: &str) -> u16 {
        let node = self.any_node();
        node.cli(&["CLUSTER", "KEYSLOT", key])
            .trim()
            .parse()
            .unwrap()
    }

    /// Subscriptions to the sharded channel on the node on `port` (`PUBSUB SHARDNUMSUB`).
    pub fn shardnumsub(&self, port: u16, channel: &str) -> u64 {
        let out = self.node(port).cli(&["PUBSUB", "SHARDNUMSUB", channel]);
        out.lines()
            .nth(1)
            .and_then(|n| n.trim().parse().ok())
            .unwrap_or(0)
    }

    /// Moves `slot` (holding no keys) from its master to the master on `to_port`, as
    /// `redis-cli --cluster reshard` does: IMPORTING/MIGRATING, then the new owner everywhere.
    pub fn move_slot(&self, slot: u16, to_port: u16) {
        let from = self.master_of(slot);
        let to = self
            .masters()
            .into_iter()
            .find(|m| m.port == to_port)
            .expect("the target is a master");
        let s = slot.to_string();
        let ok = |out: String| assert_eq!(out.trim(), "OK", "CLUSTER SETSLOT: {out}");
        ok(self
            .node(to.port)
            .cli(&["CLUSTER", "SETSLOT", &s, "IMPORTING", &from.id]));
        ok(self
            .node(from.port)
            .cli(&["CLUSTER", "SETSLOT", &s, "MIGRATING", &to.id]));
        ok(self
            .node(to.port)
            .cli(&["CLUSTER", "SETSLOT", &s, "NODE", &to.id]));
        ok(self
            .node(from.port)
            .cli(&["CLUSTER", "SETSLOT", &s, "NODE", &to.id]));
        for m in self.masters() {
            if m.port != to.port && m.port != from.port {
                ok(self
                    .node(m.port)
                    .cli(&["CLUSTER", "SETSLOT", &s, "NODE", &to.id]));
            }
        }
    }
}

impl Drop for RedisCluster {
    fn drop(&mut self) {
        // Each RedisProcess kills its server by pid; then the config files go.
        self.nodes.clear();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// A free port whose cluster bus port (10000 above it) is free too.
fn free_cluster_port() -> u16 {
    loop {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        if port <= 55535 && std::net::TcpListener::bind(("127.0.0.1", port + 10000)).is_ok() {
            return port;
        }
    }
}

/// One line of `CLUSTER NODES`: `id host:port@bus flags master ping pong epoch link slots...`.
fn parse_cluster_node(line: &str) -> Option<ClusterNode> {
    let fields: Vec<&str> = line.split_whitespace().collect();
    let id = fields.first()?.to_string();
    let address = fields.get(1)?.split('@').next()?;
    let port = address.rsplit_once(':')?.1.parse().ok()?;
    let flags = fields.get(2)?;
    let master = flags.split(',').any(|f| f == "master") && !flags.contains("fail");
    let slots = fields
        .iter()
        .skip(8)
        .filter(|f| !f.starts_with('['))
        .filter_map(|f| match f.split_once('-') {
            Some((a, b)) => Some((a.parse().ok()?, b.parse().ok()?)),
            None => f.parse().ok().map(|s| (s, s)),
        })
        .collect();
    Some(ClusterNode {
        id,
        port,
        master,
        slots,
    })
}

impl RedisProcess {
    /// One cluster-enabled server with its config file in `dir`. A short node timeout makes
    /// failovers in tests take seconds.
    /// `None` when it exited (its port was taken meanwhile).
    fn spawn_cluster_node(dir: &std::path::Path, port: u16) -> Option<RedisProcess> {
        let node_dir = dir.join(port.to_string());
        std::fs::create_dir_all(&node_dir).unwrap();
        let child = Command::new("redis-server")
            .current_dir(&node_dir)
            .args(["--port", &port.to_string(), "--bind", "127.0.0.1"])
            .args(["--save", "", "--appendonly", "no"])
            .args([
                "--cluster-enabled",
                "yes",
                "--cluster-config-file",
                "nodes.conf",
            ])
            .args(["--cluster-node-timeout", "1000"])
            // A replica may take over however long it was cut off, and syncs at once (Redis
            // 7 waits 5 s by default to batch replicas).
            .args(["--cluster-replica-validity-factor", "0"])
            .args(["--repl-diskless-sync-delay", "0"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start redis-server (Debian package redis-server; .ci/test installs it)");
        let mut redis = RedisProcess {
            child: Some(child),
            port,
        };
        let deadline = Instant::now() + Duration::from_secs(10);
        while redis.cli(&["PING"]).trim() != "PONG" {
            let exited = redis
                .child
                .as_mut()
                .is_some_and(|c| matches!(c.try_wait(), Ok(Some(_))));
            if exited {
                redis.child = None;
                return None;
            }
            assert!(
                Instant::now() < deadline,
                "redis-server on {port} did not answer PING within 10 s"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
        Some(redis)
    }
}
