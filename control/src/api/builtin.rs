//! `POST /v1/mcp`: the built-in tools (`sluice__*` on gateways with `builtin_tools = true`),
//! served as a small stateless MCP server (handshake era, JSON answers, no session).
//!
//! Proxies reach it as an ordinary upstream named `sluice`, with their proxy token, so a
//! built-in tool is listed, ruled by the gateway's `[[gateways.auth.rules]]`, rate-limited,
//! counted and traced like any other tool: who may install or assign is decided at the
//! gateway, before the call is forwarded. Control then trusts the proxy token for what the
//! proxy says about the call: the gateway it came through (`sluice-gateway`) and the caller
//! (`sluice-caller`, `authority:subject`, never a token), which become the audit log's actor.
//! A proxy token scoped to gateways (`[[proxy_tokens]] gateways`) sees and assigns only
//! those, exactly as its snapshots show only those.
//!
//! Secrets stay where the admin API keeps them: installations are shown with secret values
//! replaced, and a secret given to `install` is sealed like any other.

mod tools;

use bytes::Bytes;
use http::{Request, StatusCode};
use hyper::body::Incoming;
use serde_json::{Value, json};

use super::{Api, ApiError, Reply, json_response};

/// Header naming the gateway a proxy forwards a built-in tool call from.
pub const GATEWAY_HEADER: &str = "sluice-gateway";
/// Header naming the caller (`authority:subject`) a proxy forwards a built-in tool call for.
pub const CALLER_HEADER: &str = "sluice-caller";
/// Protocol revisions answered to `initialize`, newest first.
const VERSIONS: [&str; 4] = ["2025-11-25", "2025-06-18", "2025-03-26", "2024-11-05"];
/// Longest caller label kept for the audit log.
const MAX_CALLER_LEN: usize = 200;

/// JSON-RPC error codes.
const PARSE_ERROR: i64 = -32700;
const INVALID_REQUEST: i64 = -32600;
const METHOD_NOT_FOUND: i64 = -32601;
const INVALID_PARAMS: i64 = -32602;

/// Who a built-in tool call acts for, as the proxy said.
pub(super) struct Origin<'a> {
    /// The proxy token's name.
    pub proxy: &'a str,
    /// The gateways the token is scoped to, if any.
    pub scope: Option<&'a [String]>,
    /// The gateway the call came through.
    pub gateway: Option<String>,
    /// The caller's label, or `anonymous`.
    pub caller: String,
}

impl Origin<'_> {
    /// The audit log's actor: the caller, the gateway and the proxy token.
    fn actor(&self) -> String {
        format!(
            "{} via gateway {} (proxy token {})",
            self.caller,
            self.gateway.as_deref().unwrap_or("-"),
            self.proxy
        )
    }

    /// Whether the token's snapshots include `gateway`.
    fn sees(&self, gateway: &str) -> bool {
        self.scope.is_none_or(|s| s.iter().any(|g| g == gateway))
    }
}

fn header(req: &Request<Incoming>, name: &str) -> Option<String> {
    req.headers()
        .get(name)
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned)
}

/// A printable, bounded caller label.
fn caller_label(raw: Option<String>) -> String {
    match raw {
        Some(s) if !s.is_empty() => s
            .chars()
            .filter(|c| !c.is_control())
            .take(MAX_CALLER_LEN)
            .collect(),
        _ => "anonymous".to_owned(),
    }
}

fn rpc(body: Value) -> Reply {
    Ok(json_response(StatusCode::OK, &body))
}

fn rpc_error(id: &Value, code: i64, message: impl std::fmt::Display) -> Reply {
    rpc(
        json!({"jsonrpc": "2.0", "id": id, "error": {"code": code, "message": message.to_string()}}),
    )
}

impl Api {
    /// Answers one JSON-RPC message of a proxy's built-in tools server.
    pub(super) async fn builtin(
        &self,
        req: Request<Incoming>,
        proxy: &str,
        scope: Option<&[String]>,
    ) -> Reply {
        let gateway = header(&req, GATEWAY_HEADER);
        if let Some(g) = &gateway {
            crate::model::check_name(GATEWAY_HEADER, g).map_err(|e| ApiError::invalid(&e))?;
        }
        let origin = Origin {
            proxy,
            scope,
            gateway,
            caller: caller_label(header(&req, CALLER_HEADER)),
        };
        let bytes = super::read_bytes(req).await?;
        let message: Value = match serde_json::from_slice(&bytes) {
            Ok(v) => v,
            Err(e) => return rpc_error(&Value::Null, PARSE_ERROR, format!("not JSON: {e}")),
        };
        let Value::Object(message) = message else {
            return rpc_error(
                &Value::Null,
                INVALID_REQUEST,
                "expected one JSON-RPC object (batches are not accepted)",
            );
        };
        let Some(id) = message.get("id").cloned() else {
            // A notification (`notifications/initialized`, a cancellation): nothing to answer.
            return Ok(http::Response::builder()
                .status(StatusCode::ACCEPTED)
                .body(http_body_util::Full::new(Bytes::new()))
                .expect("a static response builds"));
        };
        let Some(method) = message.get("method").and_then(Value::as_str) else {
            return rpc_error(&id, INVALID_REQUEST, "the request has no method");
        };
        let params = message.get("params").cloned().unwrap_or(Value::Null);
        let result = match method {
            "initialize" => initialize(&params),
            "ping" => json!({}),
            "tools/list" => json!({"tools": tools::definitions()}),
            "tools/call" => {
                let Some(name) = params.get("name").and_then(Value::as_str) else {
                    return rpc_error(&id, INVALID_PARAMS, "tools/call needs params.name");
                };
                let args = match params.get("arguments") {
                    None | Some(Value::Null) => Value::Object(Default::default()),
                    Some(a @ Value::Object(_)) => a.clone(),
                    Some(_) => {
                        return rpc_error(
                            &id,
                            INVALID_PARAMS,
                            "params.arguments must be an object",
                        );
                    }
                };
                match self.call_tool(name, args, &origin).await {
                    Ok(result) => result,
                    Err(tools::CallError::Params(m)) => return rpc_error(&id, INVALID_PARAMS, m),
                    Err(tools::CallError::Internal(e)) => return Err(e),
                }
            }
            other => {
                return rpc_error(
                    &id,
                    METHOD_NOT_FOUND,
                    format!("method {other:?} is not served by control's built-in tools"),
                );
            }
        };
        rpc(json!({"jsonrpc": "2.0", "id": id, "result": result}))
    }
}

/// The `initialize` result: the client's revision when it is one of [`VERSIONS`], else the
/// newest.
fn initialize(params: &Value) -> Value {
    let asked = params.get("protocolVersion").and_then(Value::as_str);
    let version = VERSIONS
        .iter()
        .find(|v| Some(**v) == asked)
        .unwrap_or(&VERSIONS[0]);
    json!({
        "protocolVersion": version,
        "capabilities": {"tools": {}},
        "serverInfo": {"name": "sluice-control", "version": env!("CARGO_PKG_VERSION")},
        "instructions": "Sluice's registry: list and inspect templates, installations and gateways; install servers and assign their tools to gateways."
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn initialize_answers_the_asked_revision_or_the_newest() {
        assert_eq!(
            initialize(&json!({"protocolVersion": "2025-03-26"}))["protocolVersion"],
            "2025-03-26"
        );
        assert_eq!(
            initialize(&json!({"protocolVersion": "1999-01-01"}))["protocolVersion"],
            VERSIONS[0]
        );
    }

    #[test]
    fn caller_labels_are_printable_and_bounded() {
        assert_eq!(caller_label(None), "anonymous");
        assert_eq!(caller_label(Some("token:ops\u{7}".into())), "token:ops");
        assert_eq!(caller_label(Some("x".repeat(1000))).len(), MAX_CALLER_LEN);
    }
}
