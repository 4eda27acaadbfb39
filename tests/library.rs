//! The library API: a custom app started with `Server::start`, path routing, and a clean stop.

mod common;
use common::*;
use std::io::Write;

use ringws::app::{App, ConnId, CoreApp, Ctx};
use ringws::config::Config;
use ringws::protocol::{CloseCode, MessageKind};
use ringws::server::Server;

struct Lengths;
struct LengthsCore;

impl App for Lengths {
    type Core = LengthsCore;
    fn name(&self) -> &'static str {
        "lengths"
    }
    fn serves_path(&self, path: &str) -> bool {
        path == "/count"
    }
    fn new_core(&self, _core: usize) -> LengthsCore {
        LengthsCore
    }
}

impl CoreApp for LengthsCore {
    fn on_message(&mut self, ctx: &mut dyn Ctx, conn: ConnId, _kind: MessageKind, payload: &[u8]) {
        if payload == b"bye" {
            ctx.close(conn, CloseCode(4000), "asked to leave");
            return;
        }
        ctx.send(
            conn,
            MessageKind::Text,
            payload.len().to_string().as_bytes(),
        );
    }
}

#[test]
fn a_custom_app_routes_paths_answers_and_closes() {
    let config = Config {
        listen: "127.0.0.1:0".parse().unwrap(),
        cores: 1,
        admin_listen: None,
        ..Config::default()
    };
    let server = Server::start(&config, Lengths).expect("start");
    let addr = server.local_addr();

    let r = exchange(addr, upgrade_request("/other").as_bytes());
    assert_eq!(r.status, 404, "{}", r.body);

    let mut s = connect(addr);
    s.write_all(upgrade_request("/count").as_bytes()).unwrap();
    assert_eq!(read_response(&mut s).status, 101);
    s.write_all(&client_frame(true, 0x2, &[7u8; 300])).unwrap();
    assert_eq!(read_frame(&mut s), (true, 0x1, b"300".to_vec()));

    // App-initiated close: our code arrives, we answer, the server closes TCP.
    s.write_all(&client_frame(true, 0x1, b"bye")).unwrap();
    assert_eq!(read_close(&mut s), Some(4000));
    s.write_all(&client_frame(true, 0x8, &4000u16.to_be_bytes()))
        .unwrap();
    assert!(closed_by_server(&mut s));

    server.stop();
    server.join().expect("clean stop");
}

/// `Config::default()` is the library's: it opens no admin listener the program did not ask for
/// (the command line's 127.0.0.1:9090 would collide with a `ringws serve` on the same host).
#[test]
fn the_library_default_opens_no_admin_listener() {
    let config = Config {
        listen: "127.0.0.1:0".parse().unwrap(),
        cores: 1,
        ..Config::default()
    };
    let server = Server::start(&config, Lengths).expect("start");
    assert_eq!(server.admin_addr(), None);

    // A second server on the same port is refused, not silently sharing it.
    let again = Config {
        listen: server.local_addr(),
        ..config
    };
    let err = match Server::start(&again, Lengths) {
        Ok(_) => panic!("a second server shared {}", server.local_addr()),
        Err(err) => err.to_string(),
    };
    assert!(
        err.contains(&format!(
            "--listen {} is already in use by this process (pid {})",
            server.local_addr(),
            std::process::id()
        )),
        "{err}"
    );
    server.stop();
    server.join().expect("clean stop");
}
