//! Arbitrary bytes as an upgrade request, judged by a policy with every check switched on: the
//! policy must accept or refuse every request that parses without panicking, only ever choose a
//! subprotocol the client offered, and the debug ring must record any head, parsed or not.

#![no_main]

use std::net::IpAddr;
use std::sync::OnceLock;

use libfuzzer_sys::fuzz_target;
use ringws::config::{AuthMode, Config};
use ringws::policy::{DebugRing, Policy, RecordedHeaders};
use ringws::protocol::handshake::{parse_request, write_accept, write_refusal, HandshakeLimits};

fn policy() -> &'static Policy {
    static POLICY: OnceLock<Policy> = OnceLock::new();
    POLICY.get_or_init(|| {
        let config = Config {
            allowed_origins: vec![
                "https://app.example".parse().unwrap(),
                "*.example.com".parse().unwrap(),
                "null".parse().unwrap(),
            ],
            allow_missing_origin: true,
            subprotocols: vec!["chat.v2".into(), "chat.v1".into()],
            require_subprotocol: true,
            auth: AuthMode::Jwt,
            jwt_audience: Some("chat".into()),
            jwt_issuer: Some("https://idp.example".into()),
            trusted_proxies: vec!["0.0.0.0/0".parse().unwrap(), "::/0".parse().unwrap()],
            ..Config::default()
        };
        Policy::load_with_env_secret(
            &config.policy_settings(),
            Some("a fuzzing secret that is longer than 32 bytes".into()),
        )
        .expect("fuzz policy builds")
    })
}

fuzz_target!(|data: &[u8]| {
    let peer: IpAddr = "10.0.0.1".parse().unwrap();
    let mut out = Vec::with_capacity(1024);
    let mut ring = DebugRing::with_capacity(2);
    match parse_request(data, &HandshakeLimits::default()) {
        Ok(Some(request)) => {
            let now = data.len() as u64 * 1_000_003;
            match policy().check(&request, peer, now) {
                Ok(accepted) => {
                    let offered = request.protocols.expect("a protocol is required");
                    let chosen = accepted.protocol.expect("required");
                    assert!(offered.split(',').any(|p| p.trim() == chosen));
                    write_accept(&mut out, request.key, accepted.protocol);
                }
                Err(refusal) => {
                    write_refusal(&mut out, &refusal);
                    assert!(out.ends_with(b"\n"));
                    let client = policy().client_ip(&request, peer);
                    ring.record(
                        now,
                        client,
                        Some(request.path),
                        RecordedHeaders::from_request(&request),
                        &refusal,
                    );
                }
            }
        }
        Ok(None) => {}
        Err(refusal) => {
            let (path, headers) = RecordedHeaders::scan(data);
            ring.record(0, peer, path, headers, &refusal);
            let _ = ring.to_json();
        }
    }
});
