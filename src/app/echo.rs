//! `echo`: sends every message back as received (text as text, binary as binary).

use super::{App, ConnId, CoreApp, Ctx};
use crate::protocol::MessageKind;

/// The echo app; serves every path.
#[derive(Clone, Copy, Debug, Default)]
pub struct Echo;

impl App for Echo {
    type Core = Echo;
    fn name(&self) -> &'static str {
        "echo"
    }
    fn serves_path(&self, _path: &str) -> bool {
        true
    }
    fn new_core(&self, _core: usize) -> Echo {
        Echo
    }
}

impl CoreApp for Echo {
    fn on_message(&mut self, ctx: &mut dyn Ctx, conn: ConnId, kind: MessageKind, payload: &[u8]) {
        ctx.send(conn, kind, payload);
    }
}
