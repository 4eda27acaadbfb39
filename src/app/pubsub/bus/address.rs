//! The `bus` setting: `local`, or the Redis every node shares.

use std::fmt;
use std::str::FromStr;

/// Where publishes go (the `bus` config key).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub enum BusAddress {
    /// This node's subscribers only.
    #[default]
    Local,
    /// Every node on this standalone Redis.
    Redis(RedisAddress),
}

/// `redis://[[USER]:PASSWORD@]HOST[:PORT][/DB]`. The database number is accepted and ignored:
/// Redis pub/sub channels are not per database.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RedisAddress {
    pub host: String,
    pub port: u16,
    pub username: Option<String>,
    pub password: Option<String>,
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
        if text.starts_with("redis-cluster://") {
            return Err(
                "Redis Cluster (sharded pub/sub) is not supported yet: point every node \
                        at one standalone Redis (redis://HOST:PORT/)"
                    .into(),
            );
        }
        if text.starts_with("rediss://") {
            return Err(
                "TLS to Redis (rediss://) is not supported yet: use redis:// on a \
                        private network"
                    .into(),
            );
        }
        let Some(rest) = text.strip_prefix("redis://") else {
            return Err(
                "write local, or redis://HOST:PORT/ for a Redis shared by every node".into(),
            );
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
        let (host, port) = split_host_port(hostport)?;
        if host.is_empty() {
            return Err("the URL names no host: write redis://HOST:PORT/".into());
        }
        Ok(BusAddress::Redis(RedisAddress {
            host,
            port,
            username,
            password,
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

impl RedisAddress {
    /// `host:port`, as `ToSocketAddrs` and log lines take it.
    pub fn host_port(&self) -> String {
        if self.host.contains(':') {
            format!("[{}]:{}", self.host, self.port)
        } else {
            format!("{}:{}", self.host, self.port)
        }
    }
}

impl fmt::Display for BusAddress {
    /// As it is parsed back (the password included: `--print-config` output is a config file).
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            BusAddress::Local => f.write_str("local"),
            BusAddress::Redis(r) => {
                f.write_str("redis://")?;
                match (&r.username, &r.password) {
                    (Some(user), Some(pass)) => write!(f, "{user}:{pass}@")?,
                    (None, Some(pass)) => write!(f, ":{pass}@")?,
                    _ => {}
                }
                write!(f, "{}/", r.host_port())
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
        let r = redis("redis://:pw@h/");
        assert_eq!((r.username, r.password.as_deref()), (None, Some("pw")));
        for text in [
            "local",
            "redis://h:1/",
            "redis://[::1]:2/",
            "redis://u:p@h:3/",
            "redis://:p@h:4/",
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
            ("redis-cluster://a:1,b:2", "not supported yet"),
            ("rediss://h/", "TLS"),
        ] {
            let err = text.parse::<BusAddress>().unwrap_err();
            assert!(err.contains(says), "{text}: {err}");
        }
    }
}
