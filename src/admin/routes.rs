//! Every admin route in one place: the built-ins (`/metrics`, `/healthz`, `/readyz`,
//! `/debug/handshakes`) first, then the app's (`App::admin`: `/publish`, `/topics` for pub/sub).

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
    /// The server is draining (a stop signal arrived): `/readyz` answers 503 at once, so a load
    /// balancer stops sending clients while the listeners still accept (`drain_delay`).
    pub draining: bool,
    /// `POST /reload` (admin tokens), when the server has one.
    pub reload: Option<&'a crate::policy::ReloadGate>,
}

/// The built-in routes, as `METHOD /path`; `/debug/handshakes` only with `debug_handshakes`.
pub fn builtin_routes(debug_handshakes: bool) -> Vec<&'static str> {
    let mut routes = vec!["GET /metrics", "GET /healthz", "GET /readyz"];
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
        // Liveness: the process holds its connections, draining or not, so a liveness probe
        // never kills a node in the middle of its drain. Routing decisions use `/readyz`.
        ("GET", "/healthz") if builtins.draining => {
            AdminResponse::text(200, "ok (draining: not ready, see /readyz)")
        }
        ("GET", "/healthz") => AdminResponse::text(200, "ok"),
        ("GET", "/readyz") => match readiness(app, builtins.draining) {
            Ok(()) => AdminResponse::text(200, "ready"),
            Err(reason) => AdminResponse::text(503, format!("not ready: {reason}")),
        },
        (_, "/metrics") | (_, "/healthz") | (_, "/readyz") => {
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

/// Whether new clients should be sent here: not while draining, nor while the app says no.
fn readiness<A: App>(app: &A, draining: bool) -> Result<(), String> {
    if draining {
        return Err("draining: the server is shutting down, connect to another node".into());
    }
    app.readiness()
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
                "GET /readyz",
                "GET /debug/handshakes",
                "POST /publish/{topic}",
                "GET /topics",
                "GET /topics/{topic}"
            ]
        );
        assert_eq!(
            listing(&Echo, false),
            ["GET /metrics", "GET /healthz", "GET /readyz"]
        );
    }

    /// An app that is not ready (e.g. its bus is unreachable) makes `/readyz` answer 503 with
    /// its reason; draining wins over it; `/healthz` stays 200 in every case.
    #[test]
    fn readyz_answers_the_drain_and_the_apps_readiness() {
        struct NotReady;
        impl App for NotReady {
            type Core = <Echo as App>::Core;
            fn name(&self) -> &'static str {
                "not-ready"
            }
            fn serves_path(&self, _path: &str) -> bool {
                true
            }
            fn new_core(&self, core: usize) -> Self::Core {
                Echo.new_core(core)
            }
            fn readiness(&self) -> Result<(), String> {
                Err("bus unreachable".into())
            }
        }
        let exporter = Exporter::new(&crate::config::Config::default(), &[], Vec::new(), None);
        fn answer<A: App>(
            app: &A,
            exporter: &Exporter,
            draining: bool,
            path: &str,
        ) -> (u16, String) {
            let builtins = Builtins {
                exporter,
                debug_rings: None,
                draining,
                reload: None,
            };
            let request = AdminRequest {
                method: "GET",
                path,
                query: None,
                headers: Vec::new(),
                body: b"",
            };
            let r = route(app, &builtins, &request);
            let body = String::from_utf8_lossy(&r.body).trim_end().to_owned();
            (r.status, body)
        }
        let e = &exporter;
        assert_eq!(answer(&Echo, e, false, "/readyz"), (200, "ready".into()));
        assert_eq!(
            answer(&NotReady, e, false, "/readyz"),
            (503, "not ready: bus unreachable".into())
        );
        for (status, body) in [
            answer(&Echo, e, true, "/readyz"),
            answer(&NotReady, e, true, "/readyz"),
        ] {
            assert_eq!(status, 503);
            assert!(body.starts_with("not ready: draining"), "{body}");
        }
        assert_eq!(answer(&Echo, e, false, "/healthz"), (200, "ok".into()));
        assert_eq!(answer(&NotReady, e, false, "/healthz").0, 200);
        let (status, body) = answer(&Echo, e, true, "/healthz");
        assert_eq!(status, 200);
        assert!(body.contains("draining"), "{body}");
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
