//! Arbitrary bytes from a client, cut into reads at the input's own choosing, into a server TLS
//! session as the reactor drives it: every read must end in a summary or a failure, the
//! plaintext must fit the room the reactor gives (never longer than the ciphertext), the
//! carried bytes must stay within MAX_CARRY_BYTES, and nothing may panic.
//!
//! Run with `-O` (release, as ringws ships): rustls asserts in debug builds that a connection
//! queues at most one fatal alert, and a failed session may make it queue a second one on
//! crafted input (never sent; see `TlsSession::failed`).
//!
//!     cd fuzz && RUSTC_BOOTSTRAP=1 cargo fuzz run -O tls_session

#![no_main]

use std::sync::{Arc, LazyLock};

use libfuzzer_sys::fuzz_target;
use ringws::tls::session::{MAX_CARRY_BYTES, WIRE_BUFFER_BYTES};
use ringws::tls::TlsSession;

static CONFIG: LazyLock<Arc<rustls::ServerConfig>> = LazyLock::new(|| {
    let made = rcgen::generate_simple_self_signed(vec!["localhost".into()]).unwrap();
    let key = rustls::pki_types::PrivateKeyDer::Pkcs8(made.key_pair.serialize_der().into());
    let config = rustls::ServerConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .unwrap()
    .with_no_client_auth()
    .with_single_cert(vec![made.cert.der().clone()], key)
    .unwrap();
    Arc::new(config)
});

fuzz_target!(|data: &[u8]| {
    let Some((&cut, input)) = data.split_first() else {
        return;
    };
    let mut session = TlsSession::new(CONFIG.clone()).unwrap();
    let mut wire = vec![0u8; WIRE_BUFFER_BYTES];
    let chunk = usize::from(cut).max(1);
    for piece in input.chunks(chunk) {
        let mut cipher = vec![0u8; MAX_CARRY_BYTES + piece.len()];
        let carried = session.take_carry(&mut cipher);
        assert!(carried <= MAX_CARRY_BYTES);
        cipher[carried..carried + piece.len()].copy_from_slice(piece);
        let len = carried + piece.len();
        let mut plain = vec![0u8; len];
        match session.read(&mut cipher[..len], &mut plain, &mut wire) {
            Ok(summary) => {
                assert!(summary.plain_len <= len);
                assert!(summary.wire_len <= wire.len());
            }
            Err(failure) => {
                assert!(failure.wire_len <= wire.len());
                return;
            }
        }
    }
});
