//! The record step: one structured access-log line per request, written in pingora's
//! `logging` phase once the response is complete (or failed). Metrics and spans attach here.

use std::time::Instant;

use bytes::Bytes;
use pingora::Error;
use pingora::proxy::Session;

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
        }
    }

    /// Emits the access log line.
    pub fn finish(&mut self, session: &Session, e: Option<&Error>) {
        let status = session.response_written().map_or(0, |r| r.status.as_u16());
        if e.is_some() && self.outcome == "ok" {
            self.outcome = "connection_error";
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
}
