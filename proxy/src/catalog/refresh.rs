//! Keeps upstream catalogs fresh: a background task per upstream fetches its lists at start-up,
//! then on a timer, retrying failures with jittered exponential backoff. An upstream that is
//! down never blocks the gateway: its tools are simply absent until a fetch succeeds.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use pingora::connectors::http::Connector;
use pingora::server::ShutdownWatch;
use pingora::services::background::BackgroundService;
use rand::Rng;
use serde_json::{Value, json};
use tokio::sync::Notify;

use super::ServerCatalog;
use crate::state::{ServerStatus, Shared};
use crate::upstream::{Upstream, UpstreamError, mcp_client};

const BACKOFF_START: Duration = Duration::from_millis(250);

/// The background service that owns catalog fetching.
pub struct CatalogRefresher {
    shared: Arc<Shared>,
    catalogs: Mutex<Vec<Option<Arc<ServerCatalog>>>>,
    /// Wakes every upstream's task for an immediate refresh.
    pub refresh_now: Arc<Notify>,
}

impl CatalogRefresher {
    /// A refresher for the shared state's upstreams.
    pub fn new(shared: Arc<Shared>) -> Self {
        let n = shared.upstreams.len();
        CatalogRefresher {
            shared,
            catalogs: Mutex::new(vec![None; n]),
            refresh_now: Arc::new(Notify::new()),
        }
    }

    async fn run_one(&self, upstream: Arc<Upstream>, connector: Arc<Connector>) {
        let refresh = self.shared.config.catalog.refresh;
        let mut backoff = BACKOFF_START;
        let mut first = true;
        loop {
            let outcome = fetch(&connector, &upstream).await;
            let wait = match outcome {
                Ok(catalog) => {
                    let status = ServerStatus {
                        up: true,
                        tools: catalog.tools.len(),
                        stateful: catalog.stateful,
                        last_error: None,
                    };
                    tracing::info!(server = %upstream.name, tools = catalog.tools.len(), stateful = catalog.stateful, "catalog fetched");
                    self.publish(upstream.index, Some(Arc::new(catalog)));
                    self.shared.record_fetch(upstream.index, status, first);
                    backoff = BACKOFF_START;
                    refresh
                }
                Err(e) => {
                    tracing::warn!(server = %upstream.name, error = %e, retry_in = ?backoff, "catalog fetch failed; tools of this server are absent until it succeeds");
                    let mut status = self.shared.server_statuses()[upstream.index].1.clone();
                    status.up = false;
                    status.last_error = Some(e.to_string());
                    self.shared.record_fetch(upstream.index, status, first);
                    let wait = jitter(backoff);
                    backoff = (backoff * 2).min(refresh);
                    wait
                }
            };
            first = false;
            tokio::select! {
                _ = tokio::time::sleep(wait) => {}
                _ = self.refresh_now.notified() => {}
            }
        }
    }

    fn publish(&self, index: usize, catalog: Option<Arc<ServerCatalog>>) {
        let mut catalogs = self.catalogs.lock().unwrap_or_else(|p| p.into_inner());
        let unchanged = match (&catalogs[index], &catalog) {
            (Some(old), Some(new)) => old == new,
            _ => false,
        };
        if unchanged {
            return;
        }
        catalogs[index] = catalog;
        self.shared.rebuild(catalogs.clone());
    }
}

#[async_trait]
impl BackgroundService for CatalogRefresher {
    async fn start(&self, mut shutdown: ShutdownWatch) {
        let connector = Arc::new(Connector::new(None));
        let tasks = self
            .shared
            .upstreams
            .iter()
            .map(|u| self.run_one(u.clone(), connector.clone()));
        tokio::select! {
            _ = futures_util::future::join_all(tasks) => {}
            _ = shutdown.changed() => {}
        }
    }
}

/// Fetches one upstream's whole catalog in a short-lived session of its own.
pub async fn fetch(
    connector: &Connector,
    upstream: &Upstream,
) -> Result<ServerCatalog, UpstreamError> {
    let deadline = upstream.timeout.saturating_mul(4);
    let work = async {
        let init = mcp_client::initialize(
            connector,
            upstream,
            json!({}),
            json!({ "name": "sluice-catalog", "version": env!("CARGO_PKG_VERSION") }),
        )
        .await?;
        let session = init.session();
        let caps = &init.capabilities;
        let has = |k: &str| caps.get(k).is_some_and(|v| !v.is_null());
        let mut catalog = ServerCatalog {
            protocol_version: init.protocol_version.clone(),
            stateful: init.session_id.is_some(),
            capabilities: caps.clone(),
            tools: Vec::new(),
            prompts: Vec::new(),
            resources: Vec::new(),
            resource_templates: Vec::new(),
        };
        if has("tools") {
            catalog.tools =
                mcp_client::list_all(connector, upstream, session, "tools/list", "tools").await?;
        }
        if has("prompts") {
            catalog.prompts =
                mcp_client::list_all(connector, upstream, session, "prompts/list", "prompts")
                    .await?;
        }
        if has("resources") {
            catalog.resources =
                mcp_client::list_all(connector, upstream, session, "resources/list", "resources")
                    .await?;
            catalog.resource_templates = mcp_client::list_all(
                connector,
                upstream,
                session,
                "resources/templates/list",
                "resourceTemplates",
            )
            .await
            .unwrap_or_default();
        }
        if let Err(e) = mcp_client::delete_session(connector, upstream, session).await {
            tracing::debug!(server = %upstream.name, error = %e, "closing the catalog session failed");
        }
        catalog
            .tools
            .retain(|t| t.get("name").and_then(Value::as_str).is_some());
        Ok(catalog)
    };
    tokio::time::timeout(deadline, work)
        .await
        .unwrap_or_else(|_| {
            Err(UpstreamError::Timeout {
                server: upstream.name.clone(),
                after: deadline,
                phase: "fetching the catalog",
            })
        })
}

fn jitter(d: Duration) -> Duration {
    let factor = rand::rng().random_range(0.5..1.5);
    d.mul_f64(factor)
}
