//! What authentication and topic permissions cost per handshake and per subscribe: a JWT
//! verified with HS256 (the secret), RS256, ES256 and EdDSA (keys from a JWKS), claims
//! included; and one permission check against sets of 1 to 64 patterns.
//!
//!     cargo bench --bench auth                           # full measurement
//!     cargo bench --bench auth -- --quick                # a quick look

use std::hint::black_box;

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion};
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use ringws::policy::auth::{sign_hs256, JwtVerifier};
use ringws::policy::jwks::KeySet;
use ringws::policy::{Action, TopicPermissions};
use serde_json::json;

const JWKS: &[u8] = include_bytes!("../tests/fixtures/jwt/jwks1.json");
const SECRET: &[u8] = b"a benchmark secret that is longer than 32 bytes";
const NOW: u64 = 1_700_000_000;

fn claims() -> serde_json::Value {
    json!({"sub": "user42", "exp": NOW + 3600, "aud": "chat",
           "topics": {"subscribe": ["news.*", "user.42.#"], "publish": ["chat.*"]}})
}

fn signed(alg: Algorithm, der: &[u8], kid: &str) -> String {
    let key = match alg {
        Algorithm::RS256 => EncodingKey::from_rsa_der(der),
        Algorithm::ES256 => EncodingKey::from_ec_der(der),
        _ => EncodingKey::from_ed_der(der),
    };
    let mut header = Header::new(alg);
    header.kid = Some(kid.into());
    jsonwebtoken::encode(&header, &claims(), &key).unwrap()
}

fn verify(c: &mut Criterion) {
    let (keys, _) = KeySet::parse(JWKS).unwrap();
    let verifier = JwtVerifier::new(SECRET, Some("chat".into()), None)
        .unwrap()
        .with_file_keys(keys);
    let tokens = [
        ("HS256", sign_hs256(SECRET, &claims())),
        (
            "RS256",
            signed(
                Algorithm::RS256,
                include_bytes!("../tests/fixtures/jwt/rsa1.der"),
                "rsa-1",
            ),
        ),
        (
            "ES256",
            signed(
                Algorithm::ES256,
                include_bytes!("../tests/fixtures/jwt/ec1.der"),
                "ec-1",
            ),
        ),
        (
            "EdDSA",
            signed(
                Algorithm::EdDSA,
                include_bytes!("../tests/fixtures/jwt/ed1.der"),
                "ed-1",
            ),
        ),
    ];
    let mut group = c.benchmark_group("jwt_verify");
    for (name, token) in &tokens {
        assert!(verifier.verify_identity(token, NOW).is_ok(), "{name}");
        group.bench_with_input(BenchmarkId::from_parameter(name), token, |b, t| {
            b.iter(|| verifier.verify_identity(black_box(t), NOW))
        });
    }
    group.finish();
}

fn permission_check(c: &mut Criterion) {
    let mut group = c.benchmark_group("topic_permission_check");
    let all = TopicPermissions::allow_all();
    group.bench_function("allow_all", |b| {
        b.iter(|| all.allows(Action::Subscribe, black_box("user.42.inbox")))
    });
    for n in [1usize, 8, 64] {
        // n patterns; the topic matches only the last (the worst case that is granted).
        let mut patterns: Vec<String> = (1..n).map(|i| format!("team.{i}.*")).collect();
        patterns.push("user.42.#".into());
        let perms = TopicPermissions::from_claim(&json!({ "subscribe": patterns })).unwrap();
        group.bench_with_input(BenchmarkId::new("granted_last", n), &perms, |b, p| {
            b.iter(|| p.allows(Action::Subscribe, black_box("user.42.inbox")))
        });
        group.bench_with_input(BenchmarkId::new("refused", n), &perms, |b, p| {
            b.iter(|| p.allows(Action::Subscribe, black_box("user.43.inbox")))
        });
    }
    group.finish();
}

criterion_group!(benches, verify, permission_check);
criterion_main!(benches);
