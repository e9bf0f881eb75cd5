//! The record step: one structured access-log line per request, written in pingora's
//! `logging` phase once the response is complete (or failed); metrics are counted and the
//! request's span is ended here too.

use std::sync::Arc;
use std::time::Instant;

use bytes::Bytes;
use pingora::Error;
use pingora::proxy::Session;

use sluice_auth::Identity;

use crate::access_log::Line;
use crate::metrics::{GatewayMetrics, ToolMetrics, ToolOutcome};
use crate::state::Shared;
use opentelemetry::trace::TraceContextExt as _;

/// What the request path learned about one request, for the record step.
#[derive(Debug)]
pub struct RequestRecord {
    /// When the request started.
    pub started: Instant,
    /// The gateway, once known.
    pub gateway: Option<String>,
    /// The JSON-RPC method.
    pub method: Option<String>,
    /// The raw JSON-RPC id, for error replies.
    pub id: Option<Bytes>,
    /// Tool, prompt or resource the request targets.
    pub target: Option<String>,
    /// The upstream server it went to.
    pub server: Option<String>,
    /// The authenticated caller, on gateways with authentication.
    pub caller: Option<Arc<Identity>>,
    /// Outcome label.
    pub outcome: &'static str,
    /// The error message, if it failed.
    pub error: Option<String>,
    /// Request body size.
    pub request_bytes: usize,
    /// The gateway's metric handles, once the gateway is known.
    pub gateway_metrics: Option<Arc<GatewayMetrics>>,
    /// The called tool's metric handles, once routed.
    pub tool_metrics: Option<Arc<ToolMetrics>>,
    /// The upstream (by index) and when the exchange with it began.
    pub upstream: Option<(usize, Instant)>,
    /// A tool result said `isError: true`.
    pub tool_error: bool,
    /// The request's server span, when traced.
    pub span: Option<opentelemetry::Context>,
    /// The tool-invocation policy that decided the call and its effect, on gateways with
    /// policies.
    pub policy: Option<(String, &'static str)>,
    /// The world the request is served on (see [`crate::state`]).
    pub world: Option<Arc<crate::state::Shared>>,
    /// The client speaks the 2026-07-28 revision.
    pub modern: bool,
    /// The answer comes from an upstream spoken to in the handshake era for a 2026-07-28
    /// client: results get their `resultType` ([`crate::modern::complete_result`]).
    pub bridged: bool,
    /// A handshake-era client's request went to an upstream that speaks only the 2026-07-28
    /// revision, raised to it ([`crate::modern::raise`]).
    pub raised: bool,
    /// The call is of a synthesised read-resource tool: it went upstream as a
    /// `resources/read`, whose answer becomes a tool result ([`super::resource_call`]).
    pub resource_tool: bool,
}

impl RequestRecord {
    /// A record for a request that just arrived.
    pub fn start() -> Self {
        RequestRecord {
            started: Instant::now(),
            gateway: None,
            method: None,
            id: None,
            target: None,
            server: None,
            caller: None,
            outcome: "ok",
            error: None,
            request_bytes: 0,
            gateway_metrics: None,
            tool_metrics: None,
            upstream: None,
            tool_error: false,
            span: None,
            policy: None,
            world: None,
            modern: false,
            bridged: false,
            raised: false,
            resource_tool: false,
        }
    }

    /// Counts the request in the metrics, ends its span and writes its access log line.
    pub fn finish(&mut self, session: &Session, e: Option<&Error>, shared: &Shared) {
        let status = session.response_written().map_or(0, |r| r.status.as_u16());
        if e.is_some() && self.outcome == "ok" {
            self.outcome = "connection_error";
        }
        let elapsed = self.started.elapsed();
        // Logging runs as soon as the response is complete, so this is the exchange's time.
        let upstream = self
            .upstream
            .map(|(server, began)| (server, began.elapsed()));
        let method = match self.method.as_deref() {
            Some(m) => m,
            None if session.req_header().method == http::Method::DELETE => "DELETE",
            None => "-",
        };
        if let Some((server, took)) = upstream {
            shared.server_metrics.upstream_exchange(server, took);
        }
        if let Some(gm) = &self.gateway_metrics {
            gm.request(method, status);
            if method == "tools/call" {
                let tool = self.tool_metrics.as_ref().unwrap_or(&gm.other_tool);
                tool.observe(self.tool_outcome(), elapsed);
            }
        }
        if let Some(cx) = &self.span {
            self.end_span(cx, method, status);
        }
        if shared.access_log.enabled() {
            let trace_id = self
                .span
                .as_ref()
                .map(|cx| cx.span().span_context().trace_id().to_string());
            shared.access_log.write(&Line {
                time: humantime::format_rfc3339_millis(std::time::SystemTime::now()).to_string(),
                gateway: self.gateway.as_deref(),
                method: self.method.as_deref(),
                target: self.target.as_deref(),
                server: self.server.as_deref(),
                caller: self.caller.as_deref().map(Identity::display),
                status,
                outcome: self.outcome,
                error: self.error.as_deref(),
                duration_ms: elapsed.as_secs_f64() * 1e3,
                upstream_ms: upstream.map(|(_, d)| d.as_secs_f64() * 1e3),
                bytes_in: self.request_bytes,
                bytes_out: session.body_bytes_sent(),
                trace_id,
            });
        }
    }

    /// Names the server span after the MCP semantic conventions, sets its attributes and
    /// ends it.
    fn end_span(&self, cx: &opentelemetry::Context, method: &str, status: u16) {
        use opentelemetry::KeyValue;
        use opentelemetry::trace::{Status, TraceContextExt};
        let span = cx.span();
        span.update_name(crate::telemetry::span_name(method, self.target.as_deref()));
        let mut attrs = vec![
            KeyValue::new("mcp.method.name", method.to_owned()),
            KeyValue::new("http.response.status_code", i64::from(status)),
            KeyValue::new("sluice.outcome", self.outcome),
        ];
        if let Some(id) = &self.id {
            attrs.push(KeyValue::new(
                "jsonrpc.request.id",
                String::from_utf8_lossy(id).trim_matches('"').to_owned(),
            ));
        }
        if let Some(g) = &self.gateway {
            attrs.push(KeyValue::new("sluice.gateway", g.clone()));
        }
        if let Some(s) = &self.server {
            attrs.push(KeyValue::new("sluice.server", s.clone()));
        }
        if let Some(c) = &self.caller {
            attrs.push(KeyValue::new("enduser.id", c.display().to_owned()));
        }
        if method == "tools/call"
            && let Some(t) = &self.target
        {
            attrs.push(KeyValue::new("gen_ai.tool.name", t.clone()));
            attrs.push(KeyValue::new("gen_ai.operation.name", "execute_tool"));
        }
        if let Some((policy, effect)) = &self.policy {
            attrs.push(KeyValue::new("sluice.policy", policy.clone()));
            attrs.push(KeyValue::new("sluice.policy.effect", *effect));
        }
        if self.outcome != "ok" && self.outcome != "accepted" {
            attrs.push(KeyValue::new("error.type", self.outcome));
            span.set_status(Status::error(self.outcome));
        }
        crate::telemetry::set(cx, attrs);
        span.end();
    }

    /// How a `tools/call` ended, from the outcome label and the result.
    fn tool_outcome(&self) -> ToolOutcome {
        match self.outcome {
            "ok" if self.tool_error => ToolOutcome::ToolError,
            "ok" => ToolOutcome::Ok,
            "upstream_timeout" => ToolOutcome::Timeout,
            "upstream_error"
            | "upstream_session_lost"
            | "connection_error"
            | "client_closed"
            | "credential_unavailable"
            | "internal" => ToolOutcome::UpstreamError,
            "forbidden" | "policy_denied" | "no_caller" | "caller_not_jwt" | "no_caller_secret" => {
                ToolOutcome::Denied
            }
            "rate_limited" => ToolOutcome::RateLimited,
            _ => ToolOutcome::Invalid,
        }
    }
}
