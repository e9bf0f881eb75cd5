//! Upstream MCP servers and clients built with the official Rust SDK (`rmcp`), for tests that
//! need a real peer inside the test process: a stateful server (sessions, SSE) and a stateless
//! one (JSON responses), with tools that prove routing, per-session state and failures.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use rmcp::model::{
    CallToolRequestParams, CallToolResponse, CallToolResult, ContentBlock, ListToolsResult,
    PaginatedRequestParams, ServerCapabilities, ServerConfig, Tool,
};
use rmcp::service::{RequestContext, RoleServer};
use rmcp::transport::streamable_http_server::session::local::LocalSessionManager;
use rmcp::transport::streamable_http_server::{StreamableHttpServerConfig, StreamableHttpService};
use rmcp::{ErrorData, ServerHandler};
use serde_json::{Value, json};
use tokio_util::sync::CancellationToken;

/// How to run an rmcp test server.
#[derive(Debug, Clone)]
pub struct ServerOpts {
    /// Prefix of `echo` answers, to tell servers apart.
    pub name: String,
    /// Sessions with SSE (true) or stateless JSON (false).
    pub stateful: bool,
    /// Extra trivial tools `filler_{i}`.
    pub filler: usize,
}

/// A running rmcp server on 127.0.0.1; stops when dropped.
pub struct RmcpServer {
    /// Its MCP endpoint.
    pub url: String,
    /// Its address.
    pub addr: std::net::SocketAddr,
    sessions: Arc<AtomicUsize>,
    cancelled: Arc<AtomicUsize>,
    started: Arc<AtomicUsize>,
    stop: CancellationToken,
}

impl RmcpServer {
    /// How many `slow` calls started.
    pub fn slow_calls_started(&self) -> usize {
        self.started.load(Ordering::SeqCst)
    }

    /// How many `slow` calls were dropped before they finished (the caller went away).
    pub fn slow_calls_cancelled(&self) -> usize {
        self.cancelled.load(Ordering::SeqCst)
    }

    /// How many handler instances (MCP sessions, in stateful mode) were created.
    pub fn sessions_created(&self) -> usize {
        self.sessions.load(Ordering::SeqCst)
    }
}

impl Drop for RmcpServer {
    fn drop(&mut self) {
        self.stop.cancel();
    }
}

#[derive(Clone)]
struct TestServer {
    name: String,
    filler: usize,
    remembered: Arc<Mutex<Option<String>>>,
    cancelled: Arc<AtomicUsize>,
    started: Arc<AtomicUsize>,
}

/// Counts a `slow` call as cancelled if it ends (is cancelled or dropped) before it finished.
struct CancelGuard {
    counter: Arc<AtomicUsize>,
    finished: bool,
}

impl Drop for CancelGuard {
    fn drop(&mut self) {
        if !self.finished {
            self.counter.fetch_add(1, Ordering::SeqCst);
        }
    }
}

fn tool(name: &str, description: &str, properties: Value) -> Tool {
    let schema = json!({ "type": "object", "properties": properties });
    let Value::Object(schema) = schema else {
        unreachable!("a json object literal")
    };
    Tool::new(name.to_owned(), description.to_owned(), Arc::new(schema))
}

fn text(s: impl Into<String>) -> CallToolResponse {
    CallToolResult::success(vec![ContentBlock::text(s.into())]).into()
}

impl ServerHandler for TestServer {
    fn get_info(&self) -> ServerConfig {
        ServerConfig::new(ServerCapabilities::builder().enable_tools().build())
    }

    async fn list_tools(
        &self,
        _request: Option<PaginatedRequestParams>,
        _context: RequestContext<RoleServer>,
    ) -> Result<ListToolsResult, ErrorData> {
        let mut tools = vec![
            tool(
                "echo",
                "Echo text back, prefixed with the server name",
                json!({ "text": { "type": "string" } }),
            ),
            tool(
                "add",
                "Add two integers",
                json!({ "a": { "type": "integer" }, "b": { "type": "integer" } }),
            ),
            tool(
                "slow",
                "Answer after a delay",
                json!({ "millis": { "type": "integer" } }),
            ),
            tool(
                "remember",
                "Remember a value in this session",
                json!({ "value": { "type": "string" } }),
            ),
            tool(
                "recall",
                "Recall the value remembered in this session",
                json!({}),
            ),
            tool("fail", "Fail on purpose", json!({})),
        ];
        tools.extend((0..self.filler).map(|i| tool(&format!("filler_{i}"), "Filler", json!({}))));
        Ok(ListToolsResult {
            tools,
            ..Default::default()
        })
    }

    async fn call_tool(
        &self,
        request: CallToolRequestParams,
        context: RequestContext<RoleServer>,
    ) -> Result<CallToolResponse, ErrorData> {
        let args = request.arguments.clone().unwrap_or_default();
        let arg = |k: &str| args.get(k).cloned().unwrap_or(Value::Null);
        Ok(match request.name.as_ref() {
            "echo" => text(format!(
                "{}:{}",
                self.name,
                arg("text").as_str().unwrap_or_default()
            )),
            "add" => {
                text((arg("a").as_i64().unwrap_or(0) + arg("b").as_i64().unwrap_or(0)).to_string())
            }
            "slow" => {
                self.started.fetch_add(1, Ordering::SeqCst);
                let mut guard = CancelGuard {
                    counter: self.cancelled.clone(),
                    finished: false,
                };
                let millis = arg("millis").as_u64().unwrap_or(0);
                // rmcp cancels cooperatively: notifications/cancelled fires the request's token.
                tokio::select! {
                    _ = tokio::time::sleep(Duration::from_millis(millis)) => {
                        guard.finished = true;
                        text("done")
                    }
                    _ = context.ct.cancelled() => text("cancelled"),
                }
            }
            "remember" => {
                let value = arg("value").as_str().unwrap_or_default().to_owned();
                *self.remembered.lock().expect("lock") = Some(value);
                text("ok")
            }
            "recall" => text(
                self.remembered
                    .lock()
                    .expect("lock")
                    .clone()
                    .unwrap_or_else(|| "nothing".into()),
            ),
            "fail" => CallToolResult::error(vec![ContentBlock::text("failed on purpose")]).into(),
            n if n.starts_with("filler_") => text(n.to_owned()),
            other => return Err(ErrorData::invalid_params(format!("no tool {other}"), None)),
        })
    }
}

/// Starts an rmcp Streamable HTTP server on a free loopback port.
pub async fn start_rmcp_server(opts: ServerOpts) -> RmcpServer {
    let stop = CancellationToken::new();
    let sessions = Arc::new(AtomicUsize::new(0));
    let cancelled = Arc::new(AtomicUsize::new(0));
    let started = Arc::new(AtomicUsize::new(0));
    let config = StreamableHttpServerConfig::default()
        .with_legacy_session_mode(opts.stateful)
        .with_json_response(!opts.stateful)
        .with_cancellation_token(stop.clone());
    let factory = {
        let sessions = sessions.clone();
        let cancelled = cancelled.clone();
        let started = started.clone();
        move || {
            sessions.fetch_add(1, Ordering::SeqCst);
            Ok(TestServer {
                name: opts.name.clone(),
                filler: opts.filler,
                remembered: Arc::default(),
                cancelled: cancelled.clone(),
                started: started.clone(),
            })
        }
    };
    let service: StreamableHttpService<TestServer, LocalSessionManager> =
        StreamableHttpService::new(factory, Default::default(), config);
    let router = axum::Router::new().nest_service("/mcp", service);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind loopback");
    let addr = listener.local_addr().expect("bound address");
    let shutdown = stop.clone();
    tokio::spawn(async move {
        let _ = axum::serve(listener, router)
            .with_graceful_shutdown(async move { shutdown.cancelled_owned().await })
            .await;
    });
    RmcpServer {
        url: format!("http://{addr}/mcp"),
        addr,
        sessions,
        cancelled,
        started,
        stop,
    }
}

/// An rmcp client session.
pub type RmcpClient = rmcp::service::RunningService<rmcp::RoleClient, rmcp::model::ClientConfig>;

/// Connects an rmcp client (Streamable HTTP, initialize handshake) to `url`.
pub async fn rmcp_connect(url: &str) -> RmcpClient {
    use rmcp::ServiceExt;
    use rmcp::transport::StreamableHttpClientTransport;
    use rmcp::transport::streamable_http_client::StreamableHttpClientTransportConfig;
    super::ensure_crypto();
    let transport = StreamableHttpClientTransport::from_config(
        StreamableHttpClientTransportConfig::with_uri(url.to_owned()),
    );
    rmcp::model::ClientConfig::default()
        .serve(transport)
        .await
        .unwrap_or_else(|e| panic!("rmcp client connects to {url}: {e}"))
}

/// Connects an rmcp client in protocol revision 2026-07-28 (`server/discover`, no session,
/// the envelope on every request) to `url`.
pub async fn rmcp_connect_modern(url: &str) -> RmcpClient {
    use rmcp::ClientServiceExt;
    use rmcp::transport::StreamableHttpClientTransport;
    use rmcp::transport::streamable_http_client::StreamableHttpClientTransportConfig;
    super::ensure_crypto();
    let transport = StreamableHttpClientTransport::from_config(
        StreamableHttpClientTransportConfig::with_uri(url.to_owned()),
    );
    let lifecycle = rmcp::ClientLifecycleMode::Discover {
        preferred_versions: vec![rmcp::model::ProtocolVersion::V_2026_07_28],
    };
    rmcp::model::ClientConfig::default()
        .serve_with_lifecycle(transport, lifecycle)
        .await
        .unwrap_or_else(|e| panic!("rmcp client discovers {url}: {e}"))
}

/// Calls a tool and returns (first text content, isError).
pub async fn rmcp_call(client: &RmcpClient, name: &str, args: Value) -> (String, bool) {
    let Value::Object(args) = args else {
        panic!("tool arguments must be an object")
    };
    let result = client
        .call_tool(CallToolRequestParams::new(name.to_owned()).with_arguments(args))
        .await
        .unwrap_or_else(|e| panic!("tools/call {name}: {e}"));
    let text = result
        .content
        .first()
        .and_then(|c| c.as_text())
        .map(|t| t.text.clone())
        .unwrap_or_default();
    (text, result.is_error.unwrap_or(false))
}
