//! The `bus` setting: `local`, or the Redis every node shares.

use std::fmt;
use std::str::FromStr;

/// Where publishes go (the `bus` config key).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub enum BusAddress {
    /// This node's subscribers only.
    #[default]
    Local,
    /// Every node on this standalone Redis, or on this Redis Cluster.
    Redis(RedisAddress),
}

/// `redis://[[USER]:PASSWORD@]HOST[:PORT][/DB]`, or
/// `redis-cluster://[[USER]:PASSWORD@]HOST[:PORT],HOST[:PORT],...` (seed nodes of a Redis
/// Cluster, sharded pub/sub). The database number is accepted and ignored: Redis pub/sub
/// channels are not per database.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RedisAddress {
    /// The standalone server, or the first cluster seed.
    pub host: String,
    pub port: u16,
    pub username: Option<String>,
    pub password: Option<String>,
    /// Empty for a standalone Redis; for a cluster, every seed as `host:port`, the first
    /// included: any of them answers `CLUSTER SLOTS`.
    pub cluster_seeds: Vec<String>,
}

/// Redis's own default port.
pub const DEFAULT_REDIS_PORT: u16 = 6379;

impl FromStr for BusAddress {
    type Err = String;

    fn from_str(text: &str) -> Result<Self, String> {
        let text = text.trim();
        if text.eq_ignore_ascii_case("local") {
            return Ok(BusAddress::Local);
        }
        if text.starts_with("rediss://") {
            return Err(
                "TLS to Redis (rediss://) is not supported yet: use redis:// on a \
                        private network"
                    .into(),
            );
        }
        let (rest, cluster) = match text.strip_prefix("redis-cluster://") {
            Some(rest) => (rest, true),
            None => match text.strip_prefix("redis://") {
                Some(rest) => (rest, false),
                None => {
                    return Err(
                        "write local, redis://HOST:PORT/ for a Redis shared by every node, or \
                     redis-cluster://HOST:PORT,HOST:PORT for a Redis Cluster"
                            .into(),
                    )
                }
            },
        };
        let (authority, db) = rest.split_once('/').unwrap_or((rest, ""));
        if !db.is_empty() && db.parse::<u32>().is_err() {
            return Err(format!(
                "{db:?} after the address is not a database number: write redis://HOST:PORT/"
            ));
        }
        let (userinfo, hostport) = match authority.rsplit_once('@') {
            Some((user, host)) => (Some(user), host),
            None => (None, authority),
        };
        let (username, password) = match userinfo {
            None => (None, None),
            Some(info) => match info.split_once(':') {
                Some((user, pass)) => (
                    (!user.is_empty()).then(|| user.to_owned()),
                    Some(pass.to_owned()),
                ),
                None => (None, Some(info.to_owned())),
            },
        };
        if !cluster && hostport.contains(',') {
            return Err(
                "several addresses are seeds of a Redis Cluster: write redis-cluster://HOST:PORT,HOST:PORT"
                    .into(),
            );
        }
        let mut seeds = Vec::new();
        for seed in hostport.split(',') {
            let (host, port) = split_host_port(seed)?;
            if host.is_empty() {
                return Err("the URL names no host: write redis://HOST:PORT/".into());
            }
            seeds.push((host, port));
        }
        let (host, port) = seeds[0].clone();
        let cluster_seeds = if cluster {
            seeds.iter().map(|(h, p)| join_host_port(h, *p)).collect()
        } else {
            Vec::new()
        };
        Ok(BusAddress::Redis(RedisAddress {
            host,
            port,
            username,
            password,
            cluster_seeds,
        }))
    }
}

/// `host`, `host:port`, `[v6]` or `[v6]:port`.
fn split_host_port(text: &str) -> Result<(String, u16), String> {
    let bad_port = |p: &str| format!("{p:?} is not a port (1 to 65535)");
    let parse_port = |p: &str| match p.parse::<u16>() {
        Ok(0) | Err(_) => Err(bad_port(p)),
        Ok(port) => Ok(port),
    };
    if let Some(v6) = text.strip_prefix('[') {
        let (host, after) = v6
            .split_once(']')
            .ok_or("an IPv6 address needs its closing ]")?;
        let port = match after.strip_prefix(':') {
            Some(p) => parse_port(p)?,
            None if after.is_empty() => DEFAULT_REDIS_PORT,
            None => return Err(format!("{after:?} after the address is not :PORT")),
        };
        return Ok((host.to_owned(), port));
    }
    match text.rsplit_once(':') {
        Some((host, p)) => Ok((host.to_owned(), parse_port(p)?)),
        None => Ok((text.to_owned(), DEFAULT_REDIS_PORT)),
    }
}

/// `host:port`, or `[v6]:port`, as `ToSocketAddrs` and log lines take it.
pub fn join_host_port(host: &str, port: u16) -> String {
    if host.contains(':') {
        format!("[{host}]:{port}")
    } else {
        format!("{host}:{port}")
    }
}

impl RedisAddress {
    /// `host:port` of the standalone server (or the first seed).
    pub fn host_port(&self) -> String {
        join_host_port(&self.host, self.port)
    }

    /// True for `redis-cluster://`.
    pub fn is_cluster(&self) -> bool {
        !self.cluster_seeds.is_empty()
    }
}

impl fmt::Display for BusAddress {
    /// As it is parsed back (the password included: `--print-config` output is a config file).
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            BusAddress::Local => f.write_str("local"),
            BusAddress::Redis(r) => {
                f.write_str(if r.is_cluster() {
                    "redis-cluster://"
                } else {
                    "redis://"
                })?;
                match (&r.username, &r.password) {
                    (Some(user), Some(pass)) => write!(f, "{user}:{pass}@")?,
                    (None, Some(pass)) => write!(f, ":{pass}@")?,
                    _ => {}
                }
                if r.is_cluster() {
                    f.write_str(&r.cluster_seeds.join(","))
                } else {
                    write!(f, "{}/", r.host_port())
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn redis(text: &str) -> RedisAddress {
        match text.parse::<BusAddress>() {
            Ok(BusAddress::Redis(r)) => r,
            other => panic!("{text}: {other:?}"),
        }
    }

    #[test]
    fn parses_and_prints_back() {
        assert_eq!("local".parse::<BusAddress>(), Ok(BusAddress::Local));
        let r = redis("redis://10.0.0.5:7000/");
        assert_eq!((r.host.as_str(), r.port), ("10.0.0.5", 7000));
        assert_eq!(redis("redis://cache").port, DEFAULT_REDIS_PORT);
        let r = redis("redis://[::1]:6380/0");
        assert_eq!((r.host.as_str(), r.port), ("::1", 6380));
        let r = redis("redis://app:s3cret@h:1/");
        assert_eq!(
            (r.username.as_deref(), r.password.as_deref()),
            (Some("app"), Some("s3cret"))
        );
        let r = redis("redis-cluster://pw@a:7000,b,[::1]:7002/");
        assert_eq!(r.cluster_seeds, ["a:7000", "b:6379", "[::1]:7002"]);
        assert_eq!((r.host.as_str(), r.port), ("a", 7000));
        assert!(r.is_cluster() && !redis("redis://a/").is_cluster());
        let r = redis("redis://:pw@h/");
        assert_eq!((r.username, r.password.as_deref()), (None, Some("pw")));
        for text in [
            "local",
            "redis://h:1/",
            "redis://[::1]:2/",
            "redis://u:p@h:3/",
            "redis://:p@h:4/",
            "redis-cluster://h:1,[::1]:2,k:3",
            "redis-cluster://u:p@h:1",
        ] {
            let parsed: BusAddress = text.parse().unwrap();
            assert_eq!(parsed.to_string(), text);
            assert_eq!(parsed.to_string().parse::<BusAddress>(), Ok(parsed));
        }
    }

    #[test]
    fn refusals_say_what_to_write() {
        for (text, says) in [
            ("nats://x", "redis://HOST:PORT/"),
            ("redis://h:0/", "not a port"),
            ("redis://h:99999/", "not a port"),
            ("redis://:6379/", "no host"),
            ("redis://h/x", "database"),
            ("redis://a:1,b:2/", "redis-cluster://"),
            ("redis-cluster://a:1,:2", "no host"),
            ("redis-cluster://a:1,b:0", "not a port"),
            ("rediss://h/", "TLS"),
        ] {
            let err = text.parse::<BusAddress>().unwrap_err();
            assert!(err.contains(says), "{text}: {err}");
        }
    }
}
