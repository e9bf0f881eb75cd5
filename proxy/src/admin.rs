//! The admin listener: `/healthz` (the process serves) and `/readyz` (every upstream's catalog
//! was fetched or failed once, so gateways show what they can; 503 again once SIGTERM starts
//! the drain, see [`crate::shutdown`]). `/readyz` also reports each
//! upstream's state and each gateway's tool count and withheld names
//! ([`crate::catalog::conflicts`]) as JSON, which operators and tests read. `/metrics` is the
//! Prometheus text exposition ([`crate::metrics`]).

use std::sync::Arc;

use async_trait::async_trait;
use http::Response;
use pingora::apps::http_app::ServeHttp;
use pingora::protocols::http::ServerSession;
use serde_json::json;

use crate::state::Shared;

/// The admin HTTP app.
pub struct Admin {
    shared: Arc<Shared>,
}

impl Admin {
    /// An admin app over the shared state.
    pub fn new(shared: Arc<Shared>) -> Self {
        Admin { shared }
    }
}

#[async_trait]
impl ServeHttp for Admin {
    async fn response(&self, session: &mut ServerSession) -> Response<Vec<u8>> {
        let path = session.req_header().uri.path().to_owned();
        match path.as_str() {
            "/healthz" => respond(200, json!({ "status": "ok" })),
            "/metrics" => {
                let body = self.shared.metrics.render().into_bytes();
                Response::builder()
                    .status(200)
                    .header("content-type", "text/plain; version=0.0.4; charset=utf-8")
                    .header("content-length", body.len())
                    .body(body)
                    .unwrap_or_default()
            }
            "/readyz" => {
                let draining = self
                    .shared
                    .draining
                    .load(std::sync::atomic::Ordering::Acquire);
                let ready = self.shared.is_ready() && !draining;
                let servers: serde_json::Map<String, serde_json::Value> = self
                    .shared
                    .server_statuses()
                    .into_iter()
                    .map(|(name, s)| (name, serde_json::to_value(s).unwrap_or_default()))
                    .collect();
                let snapshot = self.shared.snapshot.load();
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
                    json!({ "ready": ready, "draining": draining, "servers": servers, "gateways": gateways }),
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
