//! The record step: one structured access-log line per request, written in pingora's
//! `logging` phase once the response is complete (or failed). Metrics and spans attach here.

use std::sync::Arc;
use std::time::Instant;

use bytes::Bytes;
use pingora::Error;
use pingora::proxy::Session;

use crate::metrics::{GatewayMetrics, Metrics, ToolMetrics, ToolOutcome};

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
    /// The authenticated caller (`authority:subject`), on gateways with authentication.
    pub caller: Option<String>,
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
        }
    }

    /// Counts the request in the metrics and emits the access log line.
    pub fn finish(&mut self, session: &Session, e: Option<&Error>, metrics: &Metrics) {
        let status = session.response_written().map_or(0, |r| r.status.as_u16());
        if e.is_some() && self.outcome == "ok" {
            self.outcome = "connection_error";
        }
        let elapsed = self.started.elapsed().as_secs_f64();
        if let Some((server, began)) = self.upstream
            && let Some(h) = metrics.upstream_duration.get(server)
        {
            h.observe(began.elapsed().as_secs_f64());
        }
        if let Some(gm) = &self.gateway_metrics {
            let method = match self.method.as_deref() {
                Some(m) => m,
                None if session.req_header().method == http::Method::DELETE => "DELETE",
                None => "-",
            };
            gm.request(method, status);
            if method == "tools/call" {
                let tool = self.tool_metrics.as_ref().unwrap_or(&gm.other_tool);
                tool.observe(self.tool_outcome(), elapsed);
            }
        }
        tracing::info!(
            target: "sluice::access",
            gateway = self.gateway.as_deref().unwrap_or("-"),
            method = self.method.as_deref().unwrap_or("-"),
            target = self.target.as_deref().unwrap_or("-"),
            server = self.server.as_deref().unwrap_or("-"),
            caller = self.caller.as_deref().unwrap_or("-"),
            status,
            outcome = self.outcome,
            error = self.error.as_deref().unwrap_or("-"),
            request_bytes = self.request_bytes,
            duration_us = self.started.elapsed().as_micros() as u64,
        );
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
            | "internal" => ToolOutcome::UpstreamError,
            "forbidden" => ToolOutcome::Denied,
            _ => ToolOutcome::Invalid,
        }
    }
}
