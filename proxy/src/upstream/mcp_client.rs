//! The gateway's own MCP client for upstreams: `initialize`, list calls with pagination, and
//! session teardown.
//!
//! Used off the hot path (catalog builds, opening upstream sessions when a client initializes),
//! so it builds `serde_json::Value`s freely. Responses may be plain JSON or an SSE stream; in
//! the stream the answer is the message whose `id` matches ours, and anything else (progress,
//! log notifications) is skipped.

use std::sync::atomic::{AtomicU64, Ordering};

use bytes::Bytes;
use pingora::connectors::http::Connector;
use pingora::http::RequestHeader;
use serde_json::{Value, json};
use sluice_auth::credential::Injected;

use super::{Exchange, Upstream, UpstreamError};
use crate::protocol::{LATEST_VERSION, SESSION_HEADER, VERSION_HEADER};
use crate::sse::SseParser;

/// Largest response the gateway reads for its own calls (a catalog page).
const MAX_RESPONSE_BYTES: usize = 16 << 20;
/// Bound on pages followed by one list call.
const MAX_PAGES: usize = 1000;

static NEXT_ID: AtomicU64 = AtomicU64::new(1);

/// The upstream session a call belongs to.
#[derive(Debug, Clone, Copy)]
pub struct SessionRef<'a> {
    /// `Mcp-Session-Id` to send, if the upstream is stateful.
    pub id: Option<&'a str>,
    /// Negotiated protocol version, sent as `MCP-Protocol-Version`.
    pub version: &'a str,
    /// The upstream credential header, if the server has one.
    pub credential: Option<&'a Injected>,
    /// For a 2026-07-28 request: the method and name its `Mcp-Method` / `Mcp-Name` headers
    /// mirror.
    pub routing: Option<Routing<'a>>,
}

impl<'a> SessionRef<'a> {
    /// No session, in the 2026-07-28 revision: [`call`] adds the envelope and the routing
    /// headers of each request.
    pub fn modern(credential: Option<&'a Injected>) -> Self {
        SessionRef {
            id: None,
            version: crate::modern::MODERN_VERSIONS[0],
            credential,
            routing: Some(Routing {
                method: "",
                name: None,
            }),
        }
    }
}

/// The routing headers of a 2026-07-28 request.
#[derive(Debug, Clone, Copy)]
pub struct Routing<'a> {
    /// `Mcp-Method`.
    pub method: &'a str,
    /// `Mcp-Name` (tools/call, prompts/get, resources/read), encoded when sent.
    pub name: Option<&'a str>,
}

/// What an upstream said to `initialize`.
#[derive(Debug, Clone)]
pub struct Initialized {
    /// Session id, when the upstream keeps sessions.
    pub session_id: Option<String>,
    /// Negotiated protocol version.
    pub protocol_version: String,
    /// The upstream's declared capabilities.
    pub capabilities: Value,
    /// The upstream's `serverInfo`.
    pub server_info: Value,
    /// The credential the session was opened with, presented by its later calls.
    pub credential: Option<Injected>,
}

impl Initialized {
    /// The session reference for calls made in this session.
    pub fn session(&self) -> SessionRef<'_> {
        SessionRef {
            id: self.session_id.as_deref(),
            version: &self.protocol_version,
            credential: self.credential.as_ref(),
            routing: None,
        }
    }
}

/// Opens a session: `initialize` then `notifications/initialized`, presenting `credential`.
pub async fn initialize(
    connector: &Connector,
    upstream: &Upstream,
    client_capabilities: Value,
    client_info: Value,
    credential: Option<Injected>,
) -> Result<Initialized, UpstreamError> {
    let params = json!({
        "protocolVersion": LATEST_VERSION,
        "capabilities": client_capabilities,
        "clientInfo": client_info,
    });
    let no_session = SessionRef {
        id: None,
        version: LATEST_VERSION,
        credential: credential.as_ref(),
        routing: None,
    };
    let (result, session_id) = call(connector, upstream, no_session, "initialize", params).await?;
    let protocol_version = result
        .get("protocolVersion")
        .and_then(Value::as_str)
        .ok_or_else(|| protocol(upstream, "initialize result has no protocolVersion"))?
        .to_owned();
    let init = Initialized {
        session_id,
        protocol_version,
        capabilities: result.get("capabilities").cloned().unwrap_or(json!({})),
        server_info: result.get("serverInfo").cloned().unwrap_or(Value::Null),
        credential,
    };
    notify(
        connector,
        upstream,
        init.session(),
        "notifications/initialized",
        None,
    )
    .await?;
    Ok(init)
}

/// Asks `server/discover` (2026-07-28) and returns its result (`supportedVersions`,
/// `capabilities`, ...); an upstream of the handshake era answers with an error.
pub async fn discover(
    connector: &Connector,
    upstream: &Upstream,
    credential: Option<&Injected>,
) -> Result<Value, UpstreamError> {
    let session = SessionRef::modern(credential);
    let (result, _) = call(connector, upstream, session, "server/discover", json!({})).await?;
    Ok(result)
}

/// The per-request envelope (`params._meta`) of the gateway's own 2026-07-28 requests.
pub fn envelope(version: &str) -> Value {
    json!({
        crate::modern::PROTOCOL_VERSION_KEY: version,
        crate::modern::CLIENT_CAPABILITIES_KEY: {},
        crate::modern::CLIENT_INFO_KEY: { "name": "sluice-catalog", "version": env!("CARGO_PKG_VERSION") },
    })
}

/// Opens a `subscriptions/listen` (2026-07-28) of the upstream for `notifications` (the
/// request's `SubscriptionFilter`) with the request id `id`, and returns the exchange once the
/// upstream answered 200: its body is the subscription's event stream, read by the caller.
/// The gateway's own identity is the envelope's client; `credential` is what the upstream sees.
pub async fn open_listen(
    connector: &Connector,
    upstream: &Upstream,
    credential: Option<&Injected>,
    id: &str,
    notifications: Value,
) -> Result<Exchange, UpstreamError> {
    let version = crate::modern::MODERN_VERSIONS[0];
    let body = serde_json::to_vec(&json!({
        "jsonrpc": "2.0",
        "id": id,
        "method": "subscriptions/listen",
        "params": {
            "_meta": {
                crate::modern::PROTOCOL_VERSION_KEY: version,
                crate::modern::CLIENT_CAPABILITIES_KEY: {},
                crate::modern::CLIENT_INFO_KEY: { "name": "sluice", "version": env!("CARGO_PKG_VERSION") },
            },
            "notifications": notifications,
        },
    }))
    .map_err(|e| protocol(upstream, &e.to_string()))?;
    let session = SessionRef {
        id: None,
        version,
        credential,
        routing: Some(Routing {
            method: "subscriptions/listen",
            name: None,
        }),
    };
    let mut ex = post(connector, upstream, session, body).await?;
    let status = ex.status();
    if status != 200 {
        ex.finish(connector, upstream).await;
        return Err(UpstreamError::Status {
            server: upstream.name.clone(),
            status,
        });
    }
    // The stream is long-lived and may be silent for hours.
    ex.set_read_timeout(None);
    Ok(ex)
}

/// Calls a list method and follows `nextCursor` until the end, returning the items under `key`.
pub async fn list_all(
    connector: &Connector,
    upstream: &Upstream,
    session: SessionRef<'_>,
    method: &str,
    key: &str,
) -> Result<Vec<Value>, UpstreamError> {
    let mut items = Vec::new();
    let mut cursor: Option<String> = None;
    for _ in 0..MAX_PAGES {
        let params = match &cursor {
            Some(c) => json!({ "cursor": c }),
            None => json!({}),
        };
        let (mut result, _) = call(connector, upstream, session, method, params).await?;
        match result.get_mut(key).map(Value::take) {
            Some(Value::Array(page)) => items.extend(page),
            _ => {
                return Err(protocol(
                    upstream,
                    &format!("{method} result has no {key} array"),
                ));
            }
        }
        cursor = match result.get("nextCursor") {
            Some(Value::String(c)) if !c.is_empty() => Some(c.clone()),
            _ => return Ok(items),
        };
    }
    Err(protocol(
        upstream,
        &format!("{method} returned more than {MAX_PAGES} pages"),
    ))
}

/// Ends an upstream session with `DELETE`; failures are only logged by the caller.
pub async fn delete_session(
    connector: &Connector,
    upstream: &Upstream,
    session: SessionRef<'_>,
) -> Result<(), UpstreamError> {
    if session.id.is_none() {
        return Ok(());
    }
    let req = base_request(upstream, "DELETE", session, 0)?;
    let mut ex = Exchange::start(connector, upstream, req, Bytes::new()).await?;
    let _ = ex.read_to_end(upstream, MAX_RESPONSE_BYTES).await?;
    ex.finish(connector, upstream).await;
    Ok(())
}

/// Sends one request and returns its `result` and the `Mcp-Session-Id` the upstream set.
pub async fn call(
    connector: &Connector,
    upstream: &Upstream,
    session: SessionRef<'_>,
    method: &str,
    params: Value,
) -> Result<(Value, Option<String>), UpstreamError> {
    let id = NEXT_ID.fetch_add(1, Ordering::Relaxed);
    // In the 2026-07-28 revision every request carries its envelope and mirrors its method.
    let mut params = params;
    let session = match session.routing {
        Some(routing) => {
            if let Some(p) = params.as_object_mut() {
                p.insert("_meta".into(), envelope(session.version));
            }
            SessionRef {
                routing: Some(Routing { method, ..routing }),
                ..session
            }
        }
        None => session,
    };
    let body = serde_json::to_vec(&json!({
        "jsonrpc": "2.0", "id": id, "method": method, "params": params,
    }))
    .map_err(|e| protocol(upstream, &e.to_string()))?;
    let mut ex = post(connector, upstream, session, body).await?;
    if ex.status() != 200 {
        let status = ex.status();
        ex.finish(connector, upstream).await;
        return Err(UpstreamError::Status {
            server: upstream.name.clone(),
            status,
        });
    }
    let session_id = ex.header_str(SESSION_HEADER).map(str::to_owned);
    let is_sse = ex
        .header_str("content-type")
        .is_some_and(|ct| ct.trim_start().starts_with("text/event-stream"));
    let message = if is_sse {
        read_sse_answer(&mut ex, upstream, id).await?
    } else {
        let body = ex.read_to_end(upstream, MAX_RESPONSE_BYTES).await?;
        serde_json::from_slice::<Value>(&body).map_err(|e| protocol(upstream, &e.to_string()))?
    };
    ex.finish(connector, upstream).await;
    let message = match message {
        Value::Array(mut batch) if batch.len() == 1 => batch.remove(0),
        other => other,
    };
    if message.get("id").and_then(Value::as_u64) != Some(id) {
        return Err(protocol(upstream, "response id does not match the request"));
    }
    if let Some(err) = message.get("error") {
        return Err(UpstreamError::JsonRpc {
            server: upstream.name.clone(),
            code: err.get("code").and_then(Value::as_i64).unwrap_or(0),
            message: err
                .get("message")
                .and_then(Value::as_str)
                .unwrap_or("")
                .chars()
                .take(200)
                .collect(),
        });
    }
    match message.get("result") {
        Some(result) => Ok((result.clone(), session_id)),
        None => Err(protocol(upstream, "response has neither result nor error")),
    }
}

/// Sends a notification (expects 202).
pub async fn notify(
    connector: &Connector,
    upstream: &Upstream,
    session: SessionRef<'_>,
    method: &str,
    params: Option<Value>,
) -> Result<(), UpstreamError> {
    let message = match params {
        Some(p) => json!({ "jsonrpc": "2.0", "method": method, "params": p }),
        None => json!({ "jsonrpc": "2.0", "method": method }),
    };
    let body = serde_json::to_vec(&message).map_err(|e| protocol(upstream, &e.to_string()))?;
    let mut ex = post(connector, upstream, session, body).await?;
    let status = ex.status();
    let _ = ex.read_to_end(upstream, MAX_RESPONSE_BYTES).await?;
    ex.finish(connector, upstream).await;
    if (200..300).contains(&status) {
        Ok(())
    } else {
        Err(UpstreamError::Status {
            server: upstream.name.clone(),
            status,
        })
    }
}

async fn post(
    connector: &Connector,
    upstream: &Upstream,
    session: SessionRef<'_>,
    body: Vec<u8>,
) -> Result<Exchange, UpstreamError> {
    let req = post_request(upstream, session, body.len())?;
    Exchange::start(connector, upstream, req, Bytes::from(body)).await
}

/// The header of a JSON-RPC POST in `session`: the one shape every message to an upstream has,
/// whether the gateway sends it for itself or forwards a client's.
pub fn post_request(
    upstream: &Upstream,
    session: SessionRef<'_>,
    content_length: usize,
) -> Result<RequestHeader, UpstreamError> {
    let mut req = base_request(upstream, "POST", session, content_length)?;
    let bad = |_| protocol(upstream, "invalid header value");
    req.insert_header("content-type", "application/json")
        .map_err(bad)?;
    req.insert_header("accept", "application/json, text/event-stream")
        .map_err(bad)?;
    Ok(req)
}

/// The request line and the headers every call carries (the session id when there is one).
pub fn base_request(
    upstream: &Upstream,
    method: &str,
    session: SessionRef<'_>,
    content_length: usize,
) -> Result<RequestHeader, UpstreamError> {
    let bad = |_| protocol(upstream, "invalid request header");
    let mut req = RequestHeader::build(method, upstream.path.as_bytes(), Some(6)).map_err(bad)?;
    req.insert_header("host", upstream.authority.as_str())
        .map_err(bad)?;
    req.insert_header("content-length", content_length.to_string())
        .map_err(bad)?;
    req.insert_header(VERSION_HEADER, session.version)
        .map_err(bad)?;
    if let Some(id) = session.id {
        req.insert_header(SESSION_HEADER, id).map_err(bad)?;
    }
    if let Some(c) = session.credential {
        req.insert_header(c.name.clone(), c.value.clone())
            .map_err(bad)?;
    }
    if let Some(r) = session.routing {
        req.insert_header(crate::modern::METHOD_HEADER, r.method)
            .map_err(bad)?;
        if let Some(name) = r.name {
            req.insert_header(
                crate::modern::NAME_HEADER,
                crate::modern::encode_header_value(name).as_ref(),
            )
            .map_err(bad)?;
        }
    }
    Ok(req)
}

async fn read_sse_answer(
    ex: &mut Exchange,
    upstream: &Upstream,
    id: u64,
) -> Result<Value, UpstreamError> {
    let mut parser = SseParser::new(MAX_RESPONSE_BYTES);
    while let Some(chunk) = ex.chunk(upstream).await? {
        let events = parser
            .push(&chunk)
            .map_err(|e| protocol(upstream, &e.to_string()))?;
        for event in events {
            if !(event.event.is_empty() || event.event == "message") || event.data.is_empty() {
                continue;
            }
            let Ok(message) = serde_json::from_str::<Value>(&event.data) else {
                return Err(protocol(upstream, "SSE event data is not JSON"));
            };
            if message.get("id").and_then(Value::as_u64) == Some(id)
                && message.get("method").is_none()
            {
                return Ok(message);
            }
        }
    }
    Err(protocol(upstream, "SSE stream ended without an answer"))
}

fn protocol(upstream: &Upstream, reason: &str) -> UpstreamError {
    UpstreamError::Protocol {
        server: upstream.name.clone(),
        reason: reason.to_owned(),
    }
}
