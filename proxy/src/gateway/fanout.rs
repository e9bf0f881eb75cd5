//! Messages a client session addresses to "the server", which behind a gateway means every
//! upstream session it has: `logging/setLevel` (so the log messages of every server follow the
//! client's level) and `notifications/roots/list_changed` (so every server re-asks for roots).
//!
//! Each goes to the upstream sessions the client session already has; one that opens later
//! starts at the server's default level. An upstream that fails is logged and skipped: one
//! server's failure must not refuse the client's request to all the others.

use std::borrow::Cow;

use futures_util::future::join_all;
use pingora::proxy::Session;
use serde::Deserialize;
use serde_json::{Value, json};

use super::caller::token_for;
use super::forward::{existing_session, resolve_credential};
use super::{Caller, Gateway, RequestRecord};
use crate::catalog::GatewayCatalog;
use crate::error::GatewayError;
use crate::session_token::SessionClaims;
use crate::state::Snapshot;
use crate::upstream::ServerIdx;
use crate::upstream::mcp_client::{self, SessionRef};

/// RFC 5424 severities, as MCP names them.
pub const LEVELS: [&str; 8] = [
    "debug",
    "info",
    "notice",
    "warning",
    "error",
    "critical",
    "alert",
    "emergency",
];

#[derive(Deserialize)]
struct SetLevelParams<'a> {
    #[serde(borrow)]
    level: Cow<'a, str>,
}

/// The message's parts and who sends it.
pub struct Request<'a> {
    /// The client's HTTP request.
    pub session: &'a Session,
    /// The request's record.
    pub rec: &'a RequestRecord,
    /// The routing snapshot.
    pub snapshot: &'a Snapshot,
    /// The gateway.
    pub catalog: &'a GatewayCatalog,
    /// The client session.
    pub claims: &'a SessionClaims,
    /// The caller.
    pub caller: &'a Caller,
}

impl<'a> Request<'a> {
    /// Gathers the parts (one line at each use).
    pub fn new(
        (session, rec): (&'a Session, &'a RequestRecord),
        (snapshot, catalog): (&'a Snapshot, &'a GatewayCatalog),
        (claims, caller): (&'a SessionClaims, &'a Caller),
    ) -> Self {
        Request {
            session,
            rec,
            snapshot,
            catalog,
            claims,
            caller,
        }
    }
}

/// Checks the level, then sets it on every upstream session that offers logging.
pub async fn set_level(gw: &Gateway, req: Request<'_>, params: &[u8]) -> Result<(), GatewayError> {
    let params: SetLevelParams = serde_json::from_slice(params)
        .map_err(|e| GatewayError::InvalidParams(format!("logging/setLevel: {e}")))?;
    if !LEVELS.contains(&&*params.level) {
        return Err(GatewayError::InvalidParams(format!(
            "unknown log level '{}'; one of {}",
            crate::error::truncated(&params.level),
            LEVELS.join(", ")
        )));
    }
    let offers_logging = |i: ServerIdx| {
        req.snapshot
            .servers
            .get(i)
            .and_then(Option::as_ref)
            .is_some_and(|c| c.capabilities.get("logging").is_some())
    };
    send_all(
        gw,
        &req,
        offers_logging,
        "logging/setLevel",
        Some(json!({ "level": params.level })),
        true,
    )
    .await;
    Ok(())
}

/// Passes a client notification on to every upstream session.
pub async fn notify_all(gw: &Gateway, req: Request<'_>, method: &str) {
    send_all(gw, &req, |_| true, method, None, false).await;
}

async fn send_all(
    gw: &Gateway,
    req: &Request<'_>,
    wanted: impl Fn(ServerIdx) -> bool,
    method: &str,
    params: Option<Value>,
    is_request: bool,
) {
    let targets: Vec<_> = req
        .catalog
        .servers
        .iter()
        .copied()
        .filter(|&i| wanted(i))
        .filter_map(|i| Some((i, existing_session(gw, req.claims, i)?)))
        .collect();
    let sends = targets.into_iter().map(|(i, choice)| {
        let upstream = gw.shared.upstreams[i].clone();
        let params = params.clone();
        async move {
            let token = token_for(upstream.credential.as_ref(), req.session.req_header());
            let outcome = async {
                let credential =
                    resolve_credential(gw, req.rec, &upstream, req.caller.subject(token.as_deref()))
                        .await?;
                let session = SessionRef {
                    id: choice.id.as_deref(),
                    version: &choice.version,
                    credential: credential.as_ref(),
                    routing: None,
                };
                if is_request {
                    mcp_client::call(
                        &gw.connector,
                        &upstream,
                        session,
                        method,
                        params.unwrap_or(Value::Null),
                    )
                    .await
                    .map(drop)?;
                } else {
                    mcp_client::notify(&gw.connector, &upstream, session, method, params).await?;
                }
                Ok::<(), GatewayError>(())
            };
            if let Err(e) = outcome.await {
                tracing::warn!(server = %upstream.name, method, error = %e, "could not pass a session-wide message on to an upstream");
            }
        }
    });
    let bound = gw.shared.config.catalog.init_timeout;
    if tokio::time::timeout(bound, join_all(sends)).await.is_err() {
        tracing::warn!(
            method,
            ?bound,
            "passing a session-wide message on timed out"
        );
    }
}
