//! The admin listener: `/healthz` (the process serves) and `/readyz` (every upstream's catalog
//! was fetched or failed once, so gateways show what they can; 503 again once SIGTERM starts
//! the drain, see [`crate::shutdown`]). `/readyz` also reports each
//! upstream's state and each gateway's tool count and withheld names
//! ([`crate::catalog::conflicts`]) as JSON, which operators and tests read. `/metrics` is the
//! Prometheus text exposition ([`crate::metrics`]). `POST /reload` re-reads the config file
//! ([`crate::reload`]): 200 with what changed, 400 with every error of a refused file, 409 when
//! the process has no file. The admin listener has no authentication: keep it on loopback or a
//! private network (its default is 127.0.0.1:9090).

use std::sync::Arc;

use arc_swap::ArcSwap;
use async_trait::async_trait;
use http::Response;
use pingora::apps::http_app::ServeHttp;
use pingora::protocols::http::ServerSession;
use serde_json::json;

use crate::reload::{ReloadError, Reloader};
use crate::state::Shared;

/// The admin HTTP app.
pub struct Admin {
    current: Arc<ArcSwap<Shared>>,
    reloader: Arc<Reloader>,
}

impl Admin {
    /// An admin app over the current world, reloading with `reloader`.
    pub fn new(current: Arc<ArcSwap<Shared>>, reloader: Arc<Reloader>) -> Self {
        Admin { current, reloader }
    }

    async fn reload(&self) -> Response<Vec<u8>> {
        match self.reloader.reload().await {
            Ok(report) => respond(
                200,
                json!({ "outcome": "applied", "report": serde_json::to_value(&report).unwrap_or_default() }),
            ),
            Err(ReloadError::Invalid { path, errors }) => respond(
                400,
                json!({
                    "outcome": "invalid",
                    "error": format!("{path}: the new config was refused; the running config is kept"),
                    "errors": errors.errors.iter().map(ToString::to_string).collect::<Vec<_>>(),
                }),
            ),
            Err(e @ ReloadError::NoSource) => {
                respond(409, json!({ "outcome": "refused", "error": e.to_string() }))
            }
            Err(e) => respond(500, json!({ "outcome": "failed", "error": e.to_string() })),
        }
    }
}

#[async_trait]
impl ServeHttp for Admin {
    async fn response(&self, session: &mut ServerSession) -> Response<Vec<u8>> {
        let path = session.req_header().uri.path().to_owned();
        let post = session.req_header().method == http::Method::POST;
        if path == "/reload" {
            return if post {
                self.reload().await
            } else {
                respond(405, json!({ "error": "use POST /reload" }))
            };
        }
        let shared = self.current.load_full();
        match path.as_str() {
            "/healthz" => respond(200, json!({ "status": "ok" })),
            "/metrics" => {
                let body = shared.metrics.render().into_bytes();
                Response::builder()
                    .status(200)
                    .header("content-type", "text/plain; version=0.0.4; charset=utf-8")
                    .header("content-length", body.len())
                    .body(body)
                    .unwrap_or_default()
            }
            "/readyz" => {
                let draining = shared.draining.load(std::sync::atomic::Ordering::Acquire);
                let ready = shared.is_ready() && !draining;
                let servers: serde_json::Map<String, serde_json::Value> = shared
                    .server_statuses()
                    .into_iter()
                    .map(|(name, s)| (name, serde_json::to_value(s).unwrap_or_default()))
                    .collect();
                let snapshot = shared.snapshot.load();
                let gateways: serde_json::Map<String, serde_json::Value> = snapshot
                    .gateways
                    .iter()
                    .map(|(name, g)| {
                        let gateway = json!({
                            "tools": g.tools.len(),
                            "conflicts": g.conflicts.list(),
                        });
                        (name.clone(), gateway)
                    })
                    .collect();
                respond(
                    if ready { 200 } else { 503 },
                    json!({ "ready": ready, "draining": draining, "generation": shared.generation, "servers": servers, "gateways": gateways }),
                )
            }
            _ => respond(
                404,
                json!({ "error": format!("no admin endpoint at {}", crate::error::truncated(&path)) }),
            ),
        }
    }
}

/// A complete JSON response for pingora's `ServeHttp` apps (admin and example server).
pub fn respond(status: u16, body: serde_json::Value) -> Response<Vec<u8>> {
    let body = serde_json::to_vec(&body).unwrap_or_default();
    Response::builder()
        .status(status)
        .header("content-type", "application/json")
        .header("content-length", body.len())
        .body(body)
        .unwrap_or_default()
}
