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
    /// `POST /reload` (admin tokens), when the server has one.
    pub reload: Option<&'a crate::policy::ReloadGate>,
}

/// The built-in routes, as `METHOD /path`; `/debug/handshakes` only with `debug_handshakes`.
pub fn builtin_routes(debug_handshakes: bool) -> Vec<&'static str> {
    let mut routes = vec!["GET /metrics", "GET /healthz"];
    if debug_handshakes {
        routes.push("GET /debug/handshakes");
    }
    routes
}

/// Every route the admin listener serves with `app`: the built-ins, then the app's
/// ([`App::admin_routes`]). The start banner and the 404 answer list them.
pub fn listing<A: App>(app: &A, debug_handshakes: bool) -> Vec<String> {
    let builtins = builtin_routes(debug_handshakes).into_iter();
    builtins
        .chain(app.admin_routes().iter().copied())
        .map(str::to_owned)
        .collect()
}

/// Answers one admin request.
pub fn route<A: App>(app: &A, builtins: &Builtins<'_>, req: &AdminRequest<'_>) -> AdminResponse {
    if let (Some(gate), "/reload") = (builtins.reload, req.path) {
        return gate.handle(req);
    }
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
            let routes = listing(app, builtins.debug_rings.is_some());
            let msg = format!(
                "no admin endpoint {} {} (this server has {})",
                req.method,
                req.path,
                routes.join(", ")
            );
            AdminResponse::text(404, msg)
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::app::echo::Echo;
    use crate::app::pubsub::{PubSub, PubSubSettings};

    #[test]
    fn the_listing_has_the_builtins_and_the_apps_routes() {
        let pubsub = PubSub::new(1, PubSubSettings::default());
        assert_eq!(
            listing(&pubsub, true),
            [
                "GET /metrics",
                "GET /healthz",
                "GET /debug/handshakes",
                "POST /publish/{topic}",
                "GET /topics",
                "GET /topics/{topic}"
            ]
        );
        assert_eq!(listing(&Echo, false), ["GET /metrics", "GET /healthz"]);
    }

    /// `--admin-listen`'s help cannot be derived from the app (it is written before one is
    /// chosen), so it is held to name every route of every built-in app.
    #[test]
    fn admin_listen_help_names_every_route_of_the_built_in_apps() {
        let key = crate::config::keys()
            .iter()
            .find(|key| key.name == "admin_listen")
            .unwrap();
        let help = key.help(&crate::config::Config::serve_defaults());
        let pubsub = PubSub::new(1, PubSubSettings::default());
        for route in listing(&pubsub, true).iter().chain(&listing(&Echo, true)) {
            assert!(help.contains(route.as_str()), "{route} missing from {help}");
        }
    }
}
