//! Requests of the 2026-07-28 revision (checked by [`crate::modern`]): the gateway answers
//! `server/discover` and the lists itself, with the revision's result fields, and forwards
//! `tools/call`, `prompts/get`, `resources/read` and `completion/complete` to the upstream
//! that owns the name.
//!
//! Upstreams are spoken to in the era they were catalogued in (the handshake era). A modern
//! client has no session, so its calls run in an upstream session the gateway holds per
//! gateway and caller identity on this replica: opened lazily on the first call to a stateful
//! upstream with the envelope's client capabilities, and re-opened when the upstream forgets
//! it (404). Stateless upstreams need nothing. Notifications are acknowledged and dropped, as
//! the revision defines none from client to server on this transport.

use bytes::Bytes;
use pingora::proxy::Session;
use serde_json::json;

use super::{Gateway, RequestRecord, forward, local, write_failed};
use crate::catalog::{GatewayCatalog, ListPages};
use crate::error::GatewayError;
use crate::gateway::Caller;
use crate::jsonrpc::{Envelope, MessageKind};
use crate::modern as era;
use crate::reply;
use crate::session::unix_now;
use crate::session_token::SessionClaims;
use crate::state::Snapshot;

/// A parsed modern request and what it is served against.
pub(super) struct Request<'r, 'b> {
    pub body: &'r Bytes,
    pub envelope: &'r Envelope<'b>,
    pub snapshot: &'r Snapshot,
    pub catalog: &'r std::sync::Arc<GatewayCatalog>,
    pub caller: &'r Caller,
    /// The request's place under the gateway's concurrency bound.
    pub admitted: Option<crate::overload::Permit<'r>>,
}

pub(super) async fn serve(
    gw: &Gateway,
    session: &mut Session,
    rec: &mut RequestRecord,
    req: Request<'_, '_>,
) -> Result<(), GatewayError> {
    let checked = era::validate(&session.req_header().headers, req.body, req.envelope)?;
    rec.modern = true;
    match req.envelope.kind {
        MessageKind::Request => {}
        MessageKind::Notification => {
            rec.outcome = "accepted";
            return reply::accepted(session).await.map_err(write_failed);
        }
        MessageKind::Response => {
            return Err(GatewayError::NotInRevision(
                "protocol revision 2026-07-28 has no server-to-client requests to answer",
            ));
        }
    }
    // What a gateway lists depends on who asks when it has tool rules.
    let private = req.caller.grants.is_some();
    let method = req.envelope.method.as_deref().unwrap_or_default();
    match method {
        "server/discover" => {
            let mut capabilities = local::capabilities_of(req.snapshot, req.catalog);
            // Resource updates ride on subscriptions/listen, which relays them from the
            // upstreams of this revision only (`resource_updates`).
            capabilities["resources"]["subscribe"] =
                json!(super::resource_updates::any_subscribable(req.snapshot, req.catalog));
            let result = json!({
                "supportedVersions": era::all_versions(),
                "capabilities": capabilities,
                "resultType": "complete",
                "ttlMs": 0,
                "cacheScope": if private { "private" } else { "public" },
                "_meta": { "io.modelcontextprotocol/serverInfo": {
                    "name": format!("sluice/{}", req.catalog.name),
                    "version": env!("CARGO_PKG_VERSION"),
                }},
            });
            let result =
                serde_json::to_vec(&result).map_err(|e| GatewayError::Internal(e.to_string()))?;
            local::result(session, rec, &result).await
        }
        "tools/list" => {
            let granted = req.caller.grants.and_then(|g| req.catalog.tools_for(g));
            let pages = granted.as_deref().unwrap_or(&req.catalog.tools);
            list(session, rec, &req, pages, private).await
        }
        "prompts/list" => list(session, rec, &req, &req.catalog.prompts, private).await,
        "resources/list" => list(session, rec, &req, &req.catalog.resources, private).await,
        "resources/templates/list" => {
            list(session, rec, &req, &req.catalog.resource_templates, private).await
        }
        "tools/call"
            if req.catalog.lazy.is_some()
                && req
                    .envelope
                    .name
                    .as_ref()
                    .is_some_and(|n| n.value == crate::catalog::lazy::SEARCH_TOOLS) =>
        {
            local::search_tools(session, rec, req.body, req.envelope, req.catalog, req.caller)
                .await
        }
        "subscriptions/listen" => {
            // A listen stream lives as long as its client: it must not hold one of the
            // gateway's request slots (`limits.concurrent`) for that long.
            drop(req.admitted);
            super::listen::serve(
                gw,
                session,
                rec,
                (req.body, req.envelope),
                (req.snapshot, req.catalog),
                req.caller,
            )
            .await
        }
        "tools/call" | "prompts/get" | "resources/read" | "completion/complete" => {
            let target = gw.route(
                session,
                method,
                (req.body, req.envelope),
                req.catalog,
                req.caller,
                rec,
            )?;
            let claims = claims(gw, req.catalog, req.caller, checked.client_capabilities);
            forward::forward(gw, session, rec, req.snapshot, &claims, req.caller, target).await
        }
        "initialize" => Err(GatewayError::NoMethodInRevision(
            "initialize (it belongs to the handshake era, up to 2025-11-25: send requests with their _meta envelope, or initialize without the 2026-07-28 MCP-Protocol-Version header)".into(),
        )),
        // ping, logging/setLevel, resources/(un)subscribe were removed by the revision.
        other => Err(GatewayError::NoMethodInRevision(crate::error::truncated(other))),
    }
}

async fn list(
    session: &mut Session,
    rec: &mut RequestRecord,
    req: &Request<'_, '_>,
    pages: &ListPages,
    private: bool,
) -> Result<(), GatewayError> {
    let page = local::page(req.body, req.envelope, pages)?;
    local::result(session, rec, &era::with_result_fields(page, Some(private))).await
}

/// The session the forwarding path works in for a modern caller: no upstream sessions of its
/// own, so it uses (and opens) those the gateway holds for the caller's identity.
/// `client_capabilities` is the envelope's, as JSON.
pub(super) fn claims(
    gw: &Gateway,
    catalog: &GatewayCatalog,
    caller: &Caller,
    client_capabilities: Vec<u8>,
) -> SessionClaims {
    let identity = caller.identity.as_deref().map(|i| i.display());
    SessionClaims {
        session_uid: era::caller_session_uid(catalog.name.as_str(), identity),
        gateway: catalog.name.as_str().to_owned(),
        protocol_version: crate::protocol::LATEST_VERSION.to_owned(),
        client_capabilities,
        expires_at: unix_now().saturating_add(
            gw.shared
                .config
                .sessions
                .as_ref()
                .map_or(86_400, |s| s.ttl.as_secs()),
        ),
        upstream_sessions: Vec::new(),
    }
}
