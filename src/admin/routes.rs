//! Every admin route in one place: the built-ins (`/metrics`, `/healthz`, `/debug/handshakes`)
//! first, then the app's (`App::admin`: `/publish`, `/topics` for pub/sub).

use std::sync::{Arc, Mutex};

use super::{AdminRequest, AdminResponse};
use crate::app::App;
use crate::metrics::Exporter;
use crate::policy::DebugRing;

/// What the built-in routes read.
pub struct Builtins<'a> {
    pub exporter: &'a Exporter,
    /// Every core's refusal ring, when `debug_handshakes` is on.
    pub debug_rings: Option<&'a [Arc<Mutex<DebugRing>>]>,
    /// The server is draining: `/healthz` says so, so a load balancer stops sending clients.
    pub draining: bool,
}

/// Answers one admin request.
pub fn route<A: App>(app: &A, builtins: &Builtins<'_>, req: &AdminRequest<'_>) -> AdminResponse {
    match (req.method, req.path) {
        ("GET", "/debug/handshakes") => match builtins.debug_rings {
            Some(rings) => {
                let guards: Vec<_> = rings.iter().filter_map(|r| r.lock().ok()).collect();
                let json = DebugRing::merged_json(guards.iter().map(|g| &**g));
                AdminResponse::json(200, &json)
            }
            None => AdminResponse::text(
                404,
                "the handshake debug view is off: start ringws with --debug-handshakes on (admin listener only)",
            ),
        },
        ("GET", "/metrics") => {
            let mut r = AdminResponse::text(200, builtins.exporter.render());
            r.content_type = "text/plain; version=0.0.4; charset=utf-8";
            r
        }
        ("GET", "/healthz") if builtins.draining => {
            AdminResponse::text(503, "draining: the server is shutting down")
        }
        ("GET", "/healthz") => AdminResponse::text(200, "ok"),
        (_, "/metrics") | (_, "/healthz") => {
            AdminResponse::text(405, "use GET").with_header("Allow", "GET")
        }
        _ => app.admin(req).unwrap_or_else(|| {
            let msg = format!(
                "no admin endpoint {} {} (try GET /metrics or GET /healthz)",
                req.method, req.path
            );
            AdminResponse::text(404, msg)
        }),
    }
}
