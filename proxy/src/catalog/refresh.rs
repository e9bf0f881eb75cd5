//! Keeps upstream catalogs fresh: a background task per upstream fetches its lists at start-up,
//! then on a timer, retrying failures with jittered exponential backoff. An upstream that is
//! down never blocks the gateway: its tools are simply absent until a fetch succeeds.
//!
//! Between timer ticks a catalog is refetched as soon as the upstream says a list changed:
//! for a stateful upstream the task keeps its catalog session open and listens on the
//! session's GET stream for `notifications/*/list_changed`; a `list_changed` seen in a
//! forwarded response stream wakes the task too ([`Shared::request_refresh`]).
//!
//! A refresher belongs to one world ([`Shared`]): it starts from the catalogs its world was
//! seeded with (a reload keeps those of unchanged servers) and stops when the world is retired.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use pingora::connectors::http::Connector;
use pingora::server::ShutdownWatch;
use pingora::services::background::BackgroundService;
use rand::Rng;
use serde_json::{Value, json};

use super::ServerCatalog;
use crate::sse::SseParser;
use crate::state::{ServerStatus, Shared};
use crate::upstream::mcp_client::{Initialized, SessionRef};
use crate::upstream::{Exchange, Upstream, UpstreamError, mcp_client};

const BACKOFF_START: Duration = Duration::from_millis(250);

/// The background service that owns catalog fetching.
pub struct CatalogRefresher {
    shared: Arc<Shared>,
    catalogs: Mutex<Vec<Option<Arc<ServerCatalog>>>>,
}

impl CatalogRefresher {
    /// A refresher for the world's upstreams, starting from its snapshot's catalogs.
    pub fn new(shared: Arc<Shared>) -> Self {
        let seeds = shared.snapshot.load().servers.clone();
        CatalogRefresher {
            shared,
            catalogs: Mutex::new(seeds),
        }
    }

    /// Refreshes every upstream until the world is retired.
    pub async fn run(&self, connector: Arc<Connector>) {
        let tasks = self
            .shared
            .upstreams
            .iter()
            .map(|u| self.run_one(u.clone(), connector.clone()));
        tokio::select! {
            _ = futures_util::future::join_all(tasks) => {}
            _ = self.shared.retired() => {}
        }
    }

    async fn run_one(&self, upstream: Arc<Upstream>, connector: Arc<Connector>) {
        let refresh = self.shared.config.catalog.refresh;
        let mut backoff = BACKOFF_START;
        let signal = &self.shared.refresh_signals[upstream.index];
        loop {
            let outcome = fetch(&connector, &upstream).await;
            let mut watch_session = None;
            let mut listen = false;
            let wait = match outcome {
                Ok((catalog, session)) => {
                    let status = ServerStatus {
                        up: true,
                        tools: catalog.tools.len(),
                        stateful: catalog.stateful,
                        modern: catalog.modern,
                        handshake: catalog.handshake,
                        last_error: None,
                    };
                    tracing::info!(server = %upstream.name, tools = catalog.tools.len(), stateful = catalog.stateful, modern = catalog.modern, "catalog fetched");
                    listen = catalog.modern_list_changes;
                    self.publish(upstream.index, Some(Arc::new(catalog)));
                    self.shared.record_fetch(upstream.index, status);
                    backoff = BACKOFF_START;
                    watch_session = session;
                    refresh
                }
                Err(e) => {
                    tracing::warn!(server = %upstream.name, error = %e, retry_in = ?backoff, "catalog fetch failed; tools of this server are absent until it succeeds");
                    let mut status = self.shared.status_of(upstream.index);
                    status.up = false;
                    status.last_error = Some(e.to_string());
                    self.shared.record_fetch(upstream.index, status);
                    let wait = jitter(backoff);
                    backoff = (backoff * 2).min(refresh);
                    wait
                }
            };
            // A two-era upstream tells its 2026-07-28 callers' changes on subscriptions/listen,
            // its handshake sessions' on their GET streams: the gateway listens on both.
            let listening = async {
                if listen {
                    watch_subscription(&connector, &upstream).await;
                } else {
                    std::future::pending::<()>().await;
                }
            };
            match watch_session {
                Some(session) => {
                    tokio::select! {
                        _ = tokio::time::sleep(wait) => {}
                        _ = signal.notified() => {}
                        _ = watch_list_changed(&connector, &upstream, session.session()) => {}
                        _ = listening => {}
                    }
                    if let Err(e) =
                        mcp_client::delete_session(&connector, &upstream, session.session()).await
                    {
                        tracing::debug!(server = %upstream.name, error = %e, "closing the catalog session failed");
                    }
                }
                None => {
                    tokio::select! {
                        _ = tokio::time::sleep(wait) => {}
                        _ = signal.notified() => {}
                        _ = listening => {}
                    }
                }
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
        let connector = Arc::new(crate::upstream::connector(&self.shared.config.proxy));
        tokio::select! {
            _ = self.run(connector) => {}
            _ = shutdown.changed() => {}
        }
    }
}

/// Fetches one upstream's whole catalog in a session of its own. The session is returned
/// still open when the upstream is stateful and announces list changes, so the caller can
/// listen for them; otherwise it is closed here.
pub async fn fetch(
    connector: &Connector,
    upstream: &Upstream,
) -> Result<(ServerCatalog, Option<Initialized>), UpstreamError> {
    let deadline = upstream.timeout.saturating_mul(4);
    let work = async {
        let credential = upstream.own_credential().await?;
        // The era first: an upstream of the handshake era answers with an error, quickly.
        let discovered = mcp_client::discover(connector, upstream, credential.as_ref())
            .await
            .ok();
        let modern = discovered.as_ref().is_some_and(|d| {
            d.get("supportedVersions")
                .and_then(Value::as_array)
                .is_some_and(|v| {
                    v.iter()
                        .filter_map(Value::as_str)
                        .any(|v| crate::modern::MODERN_VERSIONS.contains(&v))
                })
        });
        let modern_list_changes = modern
            && discovered
                .as_ref()
                .and_then(|d| d.get("capabilities"))
                .is_some_and(announces_changes);
        let modern_resource_subscribe = modern
            && discovered
                .as_ref()
                .and_then(|d| d.pointer("/capabilities/resources/subscribe"))
                == Some(&Value::Bool(true));
        let init = match mcp_client::initialize(
            connector,
            upstream,
            json!({}),
            json!({ "name": "sluice-catalog", "version": env!("CARGO_PKG_VERSION") }),
            credential.clone(),
        )
        .await
        {
            Ok(init) => Some(init),
            Err(e) => {
                if let (UpstreamError::Status { status: 401, .. }, Some(c)) = (&e, &credential) {
                    // The next attempt fetches a new token instead of the refused one.
                    upstream.own_rejected(c);
                }
                // An upstream of the 2026-07-28 revision only refuses the handshake: its
                // catalog is read in its own era.
                if !(modern && refused_handshake(&e)) {
                    return Err(e);
                }
                tracing::info!(server = %upstream.name, error = %e, "the upstream speaks only protocol revision 2026-07-28");
                None
            }
        };
        let modern_capabilities = discovered
            .as_ref()
            .and_then(|d| d.get("capabilities"))
            .cloned()
            .unwrap_or_else(|| json!({}));
        let (session, caps) = match &init {
            Some(init) => (init.session(), &init.capabilities),
            None => (
                mcp_client::SessionRef::modern(credential.as_ref()),
                &modern_capabilities,
            ),
        };
        let has = |k: &str| caps.get(k).is_some_and(|v| !v.is_null());
        let mut catalog = ServerCatalog {
            modern,
            modern_list_changes,
            handshake: init.is_some(),
            protocol_version: init.as_ref().map_or_else(
                || crate::modern::MODERN_VERSIONS[0].to_owned(),
                |i| i.protocol_version.clone(),
            ),
            stateful: init.as_ref().is_some_and(|i| i.session_id.is_some()),
            modern_resource_subscribe,
            capabilities: caps.clone(),
            tools: Vec::new(),
            prompts: Vec::new(),
            resources: Vec::new(),
            resource_templates: Vec::new(),
            resource_tools: Default::default(),
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
        catalog
            .tools
            .retain(|t| t.get("name").and_then(Value::as_str).is_some());
        let skipped = catalog.synthesise_resource_tools(upstream.resource_tools);
        if skipped > 0 {
            tracing::warn!(server = %upstream.name, skipped, "the server lists more than {} resources: only the first get read-resource tools, the rest are readable with resources/read only", super::resource_tools::MAX_RESOURCE_TOOLS);
        }
        let announces = ["tools", "prompts", "resources"]
            .iter()
            .any(|k| caps.get(k).and_then(|c| c.get("listChanged")) == Some(&Value::Bool(true)));
        if init.is_none() {
            return Ok((catalog, None));
        }
        if catalog.stateful && announces {
            return Ok((catalog, init));
        }
        if let Err(e) = mcp_client::delete_session(connector, upstream, session).await {
            tracing::debug!(server = %upstream.name, error = %e, "closing the catalog session failed");
        }
        Ok((catalog, None))
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

/// Listens on the session's standalone GET stream and returns when a list changed, the stream
/// ended, or the upstream does not offer one (then it waits forever; the timer still runs).
async fn watch_list_changed(connector: &Connector, upstream: &Upstream, session: SessionRef<'_>) {
    let outcome: Result<(), UpstreamError> = async {
        let mut req = mcp_client::base_request(upstream, "GET", session, 0)?;
        let bad = |_| UpstreamError::Protocol {
            server: upstream.name.clone(),
            reason: "invalid header".into(),
        };
        req.remove_header("content-length");
        req.insert_header("accept", "text/event-stream")
            .map_err(bad)?;
        let mut ex = Exchange::start(connector, upstream, req, bytes::Bytes::new()).await?;
        let status = ex.status();
        if status != 200 {
            ex.finish(connector, upstream).await;
            // No standalone stream (405): only the timer and forwarded responses remain.
            return Err(UpstreamError::Status {
                server: upstream.name.clone(),
                status,
            });
        }
        until_list_changed(&mut ex, upstream, "its GET stream").await
    }
    .await;
    if let Err(e) = outcome {
        tracing::debug!(server = %upstream.name, error = %e, "no list_changed stream; relying on the timer");
        std::future::pending::<()>().await;
    }
}

/// Reads a long-lived event stream of the upstream until it announces a list change (`Ok`)
/// or ends; `on` names the stream for the log.
async fn until_list_changed(
    ex: &mut Exchange,
    upstream: &Upstream,
    on: &str,
) -> Result<(), UpstreamError> {
    // The stream is long-lived and may be silent for hours.
    ex.set_read_timeout(None);
    let mut parser = SseParser::new(1 << 20);
    while let Some(chunk) = ex.chunk(upstream).await? {
        let events = parser.push(&chunk).map_err(|e| UpstreamError::Protocol {
            server: upstream.name.clone(),
            reason: e.to_string(),
        })?;
        if events.iter().any(|e| is_list_changed(&e.data)) {
            tracing::info!(server = %upstream.name, "upstream announced a list change on {on}");
            return Ok(());
        }
    }
    Ok(())
}

/// Whether an upstream's capabilities announce a list change of any kind.
fn announces_changes(caps: &Value) -> bool {
    ["tools", "prompts", "resources"]
        .iter()
        .any(|k| caps.get(k).and_then(|c| c.get("listChanged")) == Some(&Value::Bool(true)))
}

/// Whether an `initialize` failed because the upstream refused the handshake era (an HTTP or
/// JSON-RPC error), not because it could not be reached.
fn refused_handshake(e: &UpstreamError) -> bool {
    matches!(
        e,
        UpstreamError::Status {
            status: 400 | 404 | 405,
            ..
        } | UpstreamError::JsonRpc { .. }
    )
}

/// Listens on a `subscriptions/listen` stream (2026-07-28) of the upstream for its list
/// changes; returns when one arrives or the stream ends, and waits forever when the upstream
/// refuses the subscription (the timer still runs).
async fn watch_subscription(connector: &Connector, upstream: &Upstream) {
    let outcome: Result<(), UpstreamError> = async {
        let credential = upstream.own_credential().await?;
        let filter = json!({
            "toolsListChanged": true,
            "promptsListChanged": true,
            "resourcesListChanged": true,
        });
        let mut ex = mcp_client::open_listen(
            connector,
            upstream,
            credential.as_ref(),
            "sluice-catalog",
            filter,
        )
        .await?;
        until_list_changed(&mut ex, upstream, "its subscription").await
    }
    .await;
    if let Err(e) = outcome {
        tracing::debug!(server = %upstream.name, error = %e, "no subscriptions/listen stream; relying on the timer");
        std::future::pending::<()>().await;
    }
}

/// Whether an SSE data payload is a `notifications/{tools,prompts,resources}/list_changed`.
pub fn is_list_changed(data: &str) -> bool {
    serde_json::from_str::<Value>(data).ok().is_some_and(|m| {
        m.get("method")
            .and_then(Value::as_str)
            .is_some_and(|method| {
                method.starts_with("notifications/") && method.ends_with("/list_changed")
            })
    })
}

fn jitter(d: Duration) -> Duration {
    let factor = rand::rng().random_range(0.5..1.5);
    d.mul_f64(factor)
}
