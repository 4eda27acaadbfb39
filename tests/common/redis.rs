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
