//! The values of the deploy/ files that `ringws check` quotes in its fix lines.
//!
//! A unit test reads the files themselves and compares, so a fix line never names a value the
//! file does not hold.

/// One sysctl profile in deploy/sysctl/.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SysctlProfile {
    /// Path from the repository root, as printed in fix lines.
    pub path: &'static str,
    /// The connection count the profile is sized for.
    pub connections: u64,
    pub file_max: u64,
    pub nr_open: u64,
    pub somaxconn: u64,
    pub tcp_max_syn_backlog: u64,
    pub ip_local_port_range: (u64, u64),
    /// Pages.
    pub tcp_mem_pages: [u64; 3],
    pub tcp_rmem_bytes: [u64; 3],
    pub tcp_wmem_bytes: [u64; 3],
}

/// deploy/sysctl/ringws-100k.conf.
pub const PROFILE_100K: SysctlProfile = SysctlProfile {
    path: "deploy/sysctl/ringws-100k.conf",
    connections: 100_000,
    file_max: 1_048_576,
    nr_open: 1_100_000,
    somaxconn: 16_384,
    tcp_max_syn_backlog: 16_384,
    ip_local_port_range: (1024, 65535),
    tcp_mem_pages: [196_608, 262_144, 393_216],
    tcp_rmem_bytes: [4096, 65_536, 4_194_304],
    tcp_wmem_bytes: [4096, 16_384, 4_194_304],
};

/// deploy/sysctl/ringws-1m.conf.
pub const PROFILE_1M: SysctlProfile = SysctlProfile {
    path: "deploy/sysctl/ringws-1m.conf",
    connections: 1_000_000,
    file_max: 2_200_000,
    nr_open: 1_100_000,
    somaxconn: 65_535,
    tcp_max_syn_backlog: 65_535,
    ip_local_port_range: (1024, 65535),
    tcp_mem_pages: [1_048_576, 1_572_864, 2_097_152],
    tcp_rmem_bytes: [4096, 16_384, 4_194_304],
    tcp_wmem_bytes: [4096, 16_384, 4_194_304],
};

/// deploy/sysctl/ringws-lowmem.conf: small default socket buffers for memory-tight hosts.
pub const PROFILE_LOWMEM: SysctlProfile = SysctlProfile {
    path: "deploy/sysctl/ringws-lowmem.conf",
    connections: 100_000,
    file_max: 1_048_576,
    nr_open: 1_100_000,
    somaxconn: 4096,
    tcp_max_syn_backlog: 4096,
    ip_local_port_range: (1024, 65535),
    tcp_mem_pages: [65_536, 98_304, 131_072],
    tcp_rmem_bytes: [4096, 8192, 262_144],
    tcp_wmem_bytes: [4096, 8192, 262_144],
};

/// The unit file, and the limit it sets.
pub const SERVICE_PATH: &str = "deploy/systemd/ringws.service";
/// `LimitNOFILE=` of deploy/systemd/ringws.service.
pub const SERVICE_LIMIT_NOFILE: u64 = 1_100_000;
/// The example config next to the unit.
pub const CONFIG_PATH: &str = "deploy/systemd/ringws.toml";
/// The seccomp profile that allows io_uring.
pub const SECCOMP_PATH: &str = "deploy/container/seccomp-ringws.json";

/// The smallest general profile sized for `connections`; the 1M profile beyond that (its
/// values are then scaled, see [`scaled`]).
pub fn for_connections(connections: u64) -> &'static SysctlProfile {
    if connections <= PROFILE_100K.connections {
        &PROFILE_100K
    } else {
        &PROFILE_1M
    }
}

/// `value`, sized for `nominal` connections, grown in proportion when `connections` is more.
pub fn scale(value: u64, nominal: u64, connections: u64) -> u64 {
    if connections <= nominal {
        value
    } else {
        (value as u128 * connections as u128).div_ceil(nominal.max(1) as u128) as u64
    }
}

/// [`scale`] for a value of `profile`.
pub fn scaled(value: u64, profile: &SysctlProfile, connections: u64) -> u64 {
    scale(value, profile.connections, connections)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `key = value  # why` lines of a sysctl file, as (key, value).
    fn settings(text: &str) -> Vec<(&str, &str)> {
        text.lines()
            .filter(|line| !line.trim_start().starts_with('#') && !line.trim().is_empty())
            .map(|line| {
                let setting = line.split_once('#').map_or(line, |(before, _)| before);
                let (key, value) = setting.split_once('=').expect("key = value");
                (key.trim(), value.trim())
            })
            .collect()
    }

    fn value<'a>(settings: &[(&str, &'a str)], key: &str) -> &'a str {
        settings
            .iter()
            .find(|(k, _)| *k == key)
            .unwrap_or_else(|| panic!("{key} missing"))
            .1
    }

    fn numbers(text: &str) -> Vec<u64> {
        text.split_ascii_whitespace()
            .map(|n| n.parse().expect("number"))
            .collect()
    }

    #[test]
    fn constants_match_the_deploy_files() {
        let files = [
            (
                &PROFILE_100K,
                include_str!("../../deploy/sysctl/ringws-100k.conf"),
            ),
            (
                &PROFILE_1M,
                include_str!("../../deploy/sysctl/ringws-1m.conf"),
            ),
            (
                &PROFILE_LOWMEM,
                include_str!("../../deploy/sysctl/ringws-lowmem.conf"),
            ),
        ];
        for (profile, text) in files {
            let s = settings(text);
            let one = |key| numbers(value(&s, key))[0];
            assert_eq!(one("fs.file-max"), profile.file_max, "{}", profile.path);
            assert_eq!(one("fs.nr_open"), profile.nr_open, "{}", profile.path);
            assert_eq!(
                one("net.core.somaxconn"),
                profile.somaxconn,
                "{}",
                profile.path
            );
            assert_eq!(
                one("net.ipv4.tcp_max_syn_backlog"),
                profile.tcp_max_syn_backlog,
                "{}",
                profile.path
            );
            let (lo, hi) = profile.ip_local_port_range;
            assert_eq!(numbers(value(&s, "net.ipv4.ip_local_port_range")), [lo, hi]);
            assert_eq!(
                numbers(value(&s, "net.ipv4.tcp_mem")),
                profile.tcp_mem_pages
            );
            assert_eq!(
                numbers(value(&s, "net.ipv4.tcp_rmem")),
                profile.tcp_rmem_bytes
            );
            assert_eq!(
                numbers(value(&s, "net.ipv4.tcp_wmem")),
                profile.tcp_wmem_bytes
            );
            assert_eq!(value(&s, "kernel.io_uring_disabled"), "0");
            // The unit's LimitNOFILE must fit under fs.nr_open, or systemd refuses to start it.
            assert!(profile.nr_open >= SERVICE_LIMIT_NOFILE, "{}", profile.path);
        }
    }

    #[test]
    fn service_limit_matches_the_unit_file() {
        let unit = include_str!("../../deploy/systemd/ringws.service");
        assert!(
            unit.lines()
                .any(|line| line == format!("LimitNOFILE={SERVICE_LIMIT_NOFILE}")),
            "{SERVICE_PATH} must set LimitNOFILE={SERVICE_LIMIT_NOFILE}"
        );
    }

    #[test]
    fn profiles_are_chosen_and_scaled_by_size() {
        assert_eq!(for_connections(1).path, PROFILE_100K.path);
        assert_eq!(for_connections(100_000).path, PROFILE_100K.path);
        assert_eq!(for_connections(100_001).path, PROFILE_1M.path);
        assert_eq!(for_connections(5_000_000).path, PROFILE_1M.path);
        assert_eq!(scaled(65_535, &PROFILE_1M, 1_000_000), 65_535);
        assert_eq!(scaled(2_097_152, &PROFILE_1M, 2_000_000), 4_194_304);
    }
}
