//! A small MCP client for control's own needs: the orchestrator's health check (`initialize`)
//! and tool discovery (`initialize`, then the list methods). One HTTP/1.1 connection per use,
//! JSON or SSE answers, every read bounded in size and time. The proxy has its own, pooled
//! client for traffic; control talks to each server a few times a minute at most.

use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Full, Limited};
use serde_json::{Value, json};

/// Largest answer read.
const MAX_ANSWER: usize = 4 << 20;
/// Most pages followed for one list.
const MAX_PAGES: usize = 20;

/// Why a call failed. Never holds a credential.
#[derive(Debug, thiserror::Error)]
pub enum McpError {
    /// The endpoint URL cannot be used.
    #[error("bad endpoint {0}")]
    Endpoint(String),
    /// Connecting or exchanging failed.
    #[error("{0}")]
    Transport(String),
    /// HTTP status other than 2xx.
    #[error("HTTP {0}")]
    Status(u16),
    /// The answer is not a JSON-RPC answer to the request.
    #[error("unexpected answer: {0}")]
    Protocol(String),
    /// A JSON-RPC error.
    #[error("JSON-RPC error {code}: {message}")]
    JsonRpc {
        /// Its code.
        code: i64,
        /// Its message, truncated.
        message: String,
    },
    /// No answer in time.
    #[error("no answer within {0:?}")]
    Timeout(Duration),
}

/// One MCP session with a server.
pub struct McpSession {
    uri: http::Uri,
    authority: String,
    header: Option<(http::HeaderName, http::HeaderValue)>,
    sender: hyper::client::conn::http1::SendRequest<Full<Bytes>>,
    session: Option<String>,
    timeout: Duration,
    next_id: u64,
    /// The server's capabilities from `initialize`.
    pub capabilities: Value,
}

impl McpSession {
    /// Connects to `url` and initializes; `header` is the credential to present, if any.
    pub async fn open(
        url: &str,
        header: Option<(http::HeaderName, http::HeaderValue)>,
        timeout: Duration,
    ) -> Result<McpSession, McpError> {
        let uri: http::Uri = url.parse().map_err(|_| McpError::Endpoint(url.into()))?;
        if uri.scheme_str() != Some("http") {
            // Control reaches local runtimes and loopback servers; TLS endpoints are the
            // proxies' business.
            return Err(McpError::Endpoint(format!(
                "{url} (only http:// is probed)"
            )));
        }
        let authority = uri
            .authority()
            .ok_or_else(|| McpError::Endpoint(url.into()))?
            .to_string();
        let connect = async {
            let stream = tokio::net::TcpStream::connect(&authority)
                .await
                .map_err(|e| McpError::Transport(format!("cannot connect to {authority}: {e}")))?;
            let (sender, conn) =
                hyper::client::conn::http1::handshake(hyper_util::rt::TokioIo::new(stream))
                    .await
                    .map_err(|e| McpError::Transport(e.to_string()))?;
            tokio::spawn(conn);
            Ok::<_, McpError>(sender)
        };
        let sender = tokio::time::timeout(timeout, connect)
            .await
            .map_err(|_| McpError::Timeout(timeout))??;
        let mut s = McpSession {
            uri,
            authority,
            header,
            sender,
            session: None,
            timeout,
            next_id: 1,
            capabilities: Value::Null,
        };
        let init = s
            .request(
                "initialize",
                json!({
                    "protocolVersion": "2025-11-25",
                    "capabilities": {},
                    "clientInfo": {"name": "sluice-control", "version": env!("CARGO_PKG_VERSION")},
                }),
            )
            .await?;
        s.capabilities = init.get("capabilities").cloned().unwrap_or(Value::Null);
        s.notify("notifications/initialized").await?;
        Ok(s)
    }

    /// Sends a request and returns its `result`.
    pub async fn request(&mut self, method: &str, params: Value) -> Result<Value, McpError> {
        let id = self.next_id;
        self.next_id += 1;
        let body = json!({"jsonrpc": "2.0", "id": id, "method": method, "params": params});
        let (status, session, content_type, bytes) = self.post(body).await?;
        if !(200..300).contains(&status) {
            return Err(McpError::Status(status));
        }
        if self.session.is_none() {
            self.session = session;
        }
        let message = if content_type.starts_with("text/event-stream") {
            sse_answer(&bytes, id)?
        } else {
            serde_json::from_slice(&bytes).map_err(|e| McpError::Protocol(e.to_string()))?
        };
        if message.get("id").and_then(Value::as_u64) != Some(id) {
            return Err(McpError::Protocol(
                "the answer's id is not the request's".into(),
            ));
        }
        if let Some(err) = message.get("error") {
            return Err(McpError::JsonRpc {
                code: err.get("code").and_then(Value::as_i64).unwrap_or(0),
                message: err
                    .get("message")
                    .and_then(Value::as_str)
                    .unwrap_or_default()
                    .chars()
                    .take(200)
                    .collect(),
            });
        }
        message
            .get("result")
            .cloned()
            .ok_or_else(|| McpError::Protocol("neither result nor error".into()))
    }

    /// Follows `nextCursor` through a list method and returns every item under `key`.
    pub async fn list_all(&mut self, method: &str, key: &str) -> Result<Vec<Value>, McpError> {
        let mut items = Vec::new();
        let mut cursor: Option<String> = None;
        for _ in 0..MAX_PAGES {
            let params = match &cursor {
                Some(c) => json!({"cursor": c}),
                None => json!({}),
            };
            let mut result = self.request(method, params).await?;
            match result.get_mut(key).map(Value::take) {
                Some(Value::Array(page)) => items.extend(page),
                _ => return Err(McpError::Protocol(format!("{method} has no {key} array"))),
            }
            cursor = match result.get("nextCursor") {
                Some(Value::String(c)) if !c.is_empty() => Some(c.clone()),
                _ => return Ok(items),
            };
        }
        Err(McpError::Protocol(format!(
            "{method} returned more than {MAX_PAGES} pages"
        )))
    }

    /// Ends the session (errors ignored: the server may not keep sessions).
    pub async fn close(mut self) {
        if let Some(id) = self.session.take()
            && let Ok(req) = self
                .base(http::Method::DELETE)
                .header("mcp-session-id", id)
                .body(Full::new(Bytes::new()))
        {
            let _ = tokio::time::timeout(self.timeout, self.sender.send_request(req)).await;
        }
    }

    async fn notify(&mut self, method: &str) -> Result<(), McpError> {
        let (status, ..) = self
            .post(json!({"jsonrpc": "2.0", "method": method}))
            .await?;
        if (200..300).contains(&status) {
            Ok(())
        } else {
            Err(McpError::Status(status))
        }
    }

    fn base(&self, method: http::Method) -> http::request::Builder {
        // Origin-form (`/mcp`): the absolute form is for proxies, and servers may not take it.
        let target = self
            .uri
            .path_and_query()
            .map_or("/", http::uri::PathAndQuery::as_str)
            .to_owned();
        let mut b = http::Request::builder()
            .method(method)
            .uri(target)
            .header(http::header::HOST, self.authority.as_str());
        if let Some((name, value)) = &self.header {
            b = b.header(name.clone(), value.clone());
        }
        b
    }

    async fn post(
        &mut self,
        body: Value,
    ) -> Result<(u16, Option<String>, String, Bytes), McpError> {
        let mut b = self
            .base(http::Method::POST)
            .header(http::header::CONTENT_TYPE, "application/json")
            .header(http::header::ACCEPT, "application/json, text/event-stream");
        if let Some(id) = &self.session {
            b = b.header("mcp-session-id", id.as_str());
        }
        let req = b
            .body(Full::new(Bytes::from(body.to_string())))
            .map_err(|e| McpError::Transport(e.to_string()))?;
        let exchange = async {
            let resp = self
                .sender
                .send_request(req)
                .await
                .map_err(|e| McpError::Transport(e.to_string()))?;
            let status = resp.status().as_u16();
            let header = |n: &str| {
                resp.headers()
                    .get(n)
                    .and_then(|v| v.to_str().ok())
                    .map(str::to_owned)
            };
            let session = header("mcp-session-id");
            let content_type = header("content-type").unwrap_or_default();
            let bytes = Limited::new(resp.into_body(), MAX_ANSWER)
                .collect()
                .await
                .map_err(|e| McpError::Transport(e.to_string()))?
                .to_bytes();
            Ok((status, session, content_type, bytes))
        };
        tokio::time::timeout(self.timeout, exchange)
            .await
            .map_err(|_| McpError::Timeout(self.timeout))?
    }
}

/// The JSON-RPC answer with `id` in an SSE body.
fn sse_answer(body: &[u8], id: u64) -> Result<Value, McpError> {
    let text = String::from_utf8_lossy(body);
    for event in text.split("\n\n") {
        let data: String = event
            .lines()
            .filter_map(|l| l.strip_prefix("data:"))
            .map(str::trim_start)
            .collect::<Vec<_>>()
            .join("\n");
        if let Ok(message) = serde_json::from_str::<Value>(&data)
            && message.get("id").and_then(Value::as_u64) == Some(id)
        {
            return Ok(message);
        }
    }
    Err(McpError::Protocol("no answer in the event stream".into()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_answer_is_found_among_other_events() {
        let body = b"event: message\ndata: {\"jsonrpc\":\"2.0\",\"method\":\"notifications/message\"}\n\nevent: message\ndata: {\"jsonrpc\":\"2.0\",\"id\":3,\"result\":{}}\n\n";
        assert_eq!(sse_answer(body, 3).unwrap()["result"], json!({}));
        assert!(sse_answer(body, 4).is_err());
    }
}
