//! Requests the gateway answers itself: `initialize` (which opens the upstream sessions the
//! token will carry), `ping`, the list methods served from pre-serialised pages, and ending a
//! session.

use std::borrow::Cow;
use std::sync::Arc;

use bytes::Bytes;
use futures_util::future::join_all;
use pingora::proxy::Session;
use serde::Deserialize;
use serde_json::value::RawValue;
use serde_json::{Value, json};

use super::caller::token_for;
use super::{Caller, Gateway, RequestRecord, write_failed};
use crate::catalog::{GatewayCatalog, ListPages};
use crate::error::GatewayError;
use crate::jsonrpc::Envelope;
use crate::protocol::{self, SESSION_HEADER};
use crate::reply;
use crate::session::unix_now;
use crate::session_token::{SessionClaims, UpstreamSession};
use crate::state::Snapshot;
use crate::upstream::mcp_client::{self, SessionRef};

#[derive(Deserialize)]
struct InitializeParams<'a> {
    #[serde(rename = "protocolVersion", borrow)]
    protocol_version: Option<Cow<'a, str>>,
    #[serde(borrow)]
    capabilities: Option<&'a RawValue>,
    #[serde(rename = "clientInfo")]
    client_info: Option<Value>,
}

/// `params` of a `search_tools` call.
#[derive(Deserialize)]
struct SearchParams<'a> {
    #[serde(borrow)]
    arguments: SearchArguments<'a>,
}

#[derive(Deserialize)]
struct SearchArguments<'a> {
    #[serde(borrow)]
    query: Cow<'a, str>,
    limit: Option<u64>,
}

#[derive(Deserialize, Default)]
struct ListParams<'a> {
    #[serde(borrow)]
    cursor: Option<Cow<'a, str>>,
}

/// Writes a result for the request whose id is in `rec`.
pub async fn result(
    session: &mut Session,
    rec: &RequestRecord,
    result: &[u8],
) -> Result<(), GatewayError> {
    let id = rec.id.as_deref().unwrap_or(b"null");
    // A 2026-07-28 client needs every result typed; the gateway's own answers to it that do
    // not say their type yet (a lazy gateway's search_tools) get it here.
    let mut body = reply::result_body(id, result);
    if rec.modern
        && let Some(typed) = crate::modern::complete_result(&body, 64, false)
    {
        body = bytes::Bytes::from(typed);
    }
    reply::json(session, 200, body, &[])
        .await
        .map_err(write_failed)
}

/// Answers a list method from its pre-serialised pages.
pub async fn list(
    session: &mut Session,
    rec: &RequestRecord,
    body: &Bytes,
    envelope: &Envelope<'_>,
    pages: &ListPages,
) -> Result<(), GatewayError> {
    result(session, rec, page(body, envelope, pages)?).await
}

/// The page a list request's `cursor` names.
pub(super) fn page<'p>(
    body: &Bytes,
    envelope: &Envelope<'_>,
    pages: &'p ListPages,
) -> Result<&'p Bytes, GatewayError> {
    let params: ListParams = match envelope.params {
        Some(span) => serde_json::from_slice(&body[span.start..span.end])
            .map_err(|e| GatewayError::InvalidParams(e.to_string()))?,
        None => ListParams::default(),
    };
    pages
        .page(params.cursor.as_deref())
        .map_err(|_| GatewayError::BadCursor)
}

/// Answers a lazy gateway's `search_tools(query, limit)` from the catalog's index, showing
/// only tools the caller's rules allow.
pub async fn search_tools(
    session: &mut Session,
    rec: &mut RequestRecord,
    body: &Bytes,
    envelope: &Envelope<'_>,
    catalog: &GatewayCatalog,
    caller: &Caller,
) -> Result<(), GatewayError> {
    let lazy = catalog.lazy.as_ref().ok_or_else(|| {
        GatewayError::Internal("search_tools on a gateway not in lazy mode".into())
    })?;
    rec.target = Some(crate::catalog::lazy::SEARCH_TOOLS.to_owned());
    rec.tool_metrics = Some(lazy.search_metrics.clone());
    let span = envelope.params.ok_or_else(|| {
        GatewayError::InvalidParams("search_tools needs arguments {\"query\": \"...\"}".into())
    })?;
    let params: SearchParams = serde_json::from_slice(&body[span.start..span.end])
        .map_err(|e| GatewayError::InvalidParams(format!("search_tools: {e}")))?;
    let limit = params
        .arguments
        .limit
        .map_or(crate::catalog::lazy::DEFAULT_LIMIT, |l| {
            usize::try_from(l).unwrap_or(usize::MAX)
        });
    let found = lazy.search(&params.arguments.query, limit, caller.grants);
    result(session, rec, &found).await
}

/// Answers `initialize`: negotiates the version, opens a session on every stateful upstream of
/// the gateway at once (bounded by `catalog.init_timeout`) and seals their ids into the token.
#[allow(clippy::too_many_arguments)] // the request's parts, each used once
pub async fn initialize(
    gw: &Gateway,
    session: &mut Session,
    rec: &RequestRecord,
    snapshot: &Snapshot,
    catalog: &Arc<GatewayCatalog>,
    caller: &Caller,
    body: &Bytes,
    envelope: &Envelope<'_>,
) -> Result<(), GatewayError> {
    let span = envelope
        .params
        .ok_or_else(|| GatewayError::InvalidParams("initialize needs params".into()))?;
    let params: InitializeParams = serde_json::from_slice(&body[span.start..span.end])
        .map_err(|e| GatewayError::InvalidParams(e.to_string()))?;
    let version = protocol::negotiate(params.protocol_version.as_deref());
    let capabilities = params.capabilities.map_or("{}", RawValue::get);
    let caps_value: Value = serde_json::from_str(capabilities).unwrap_or(json!({}));
    let client_info = params
        .client_info
        .unwrap_or_else(|| json!({ "name": "unknown", "version": "0" }));

    let upstream_sessions = open_upstream_sessions(
        gw,
        snapshot,
        catalog,
        (caller, session.req_header()),
        caps_value,
        client_info,
    )
    .await;
    let ttl = gw
        .shared
        .config
        .sessions
        .as_ref()
        .map_or(86_400, |s| s.ttl.as_secs());
    let claims = SessionClaims {
        session_uid: SessionClaims::new_session_uid(),
        gateway: catalog.name.as_str().to_owned(),
        protocol_version: version.to_owned(),
        client_capabilities: capabilities.as_bytes().to_vec(),
        expires_at: unix_now().saturating_add(ttl),
        upstream_sessions,
    };
    let token = gw
        .shared
        .sealer
        .seal(&claims)
        .map_err(|e| GatewayError::Internal(format!("sealing the session: {e}")))?;
    let result = json!({
        "protocolVersion": version,
        "capabilities": capabilities_of(snapshot, catalog),
        "serverInfo": {
            "name": format!("sluice/{}", catalog.name),
            "version": env!("CARGO_PKG_VERSION"),
        },
    });
    let result = serde_json::to_vec(&result).map_err(|e| GatewayError::Internal(e.to_string()))?;
    let id = rec.id.as_deref().unwrap_or(b"null");
    reply::json(
        session,
        200,
        reply::result_body(id, &result),
        &[(SESSION_HEADER, token.as_str())],
    )
    .await
    .map_err(write_failed)
}

/// What the gateway offers a client: its own lists (whose changes its standalone stream
/// announces), and logging, completions and resource subscriptions when any of its upstreams
/// offers them (the gateway routes them to the servers that do).
pub(super) fn capabilities_of(snapshot: &Snapshot, catalog: &GatewayCatalog) -> Value {
    let upstream_caps = || {
        catalog
            .servers
            .iter()
            .filter_map(|&i| snapshot.servers.get(i).and_then(Option::as_ref))
            .map(|c| &c.capabilities)
    };
    let offered = |key: &str| upstream_caps().any(|c| c.get(key).is_some());
    let subscribe = upstream_caps().any(|c| {
        c.pointer("/resources/subscribe")
            .and_then(Value::as_bool)
            .unwrap_or(false)
    });
    let mut caps = json!({
        "tools": { "listChanged": true },
        "prompts": { "listChanged": true },
        "resources": { "listChanged": true, "subscribe": subscribe },
    });
    for key in ["logging", "completions"] {
        if offered(key) {
            caps[key] = json!({});
        }
    }
    caps
}

/// Opens the sessions with each upstream's credential for this caller; an upstream whose
/// credential or session cannot be had now is left to open lazily at its first call, where
/// the failure reaches the client.
async fn open_upstream_sessions(
    gw: &Gateway,
    snapshot: &Snapshot,
    catalog: &GatewayCatalog,
    (caller, request): (&Caller, &pingora::http::RequestHeader),
    capabilities: Value,
    client_info: Value,
) -> Vec<UpstreamSession> {
    let stateful = catalog.servers.iter().copied().filter(|&i| {
        snapshot
            .servers
            .get(i)
            .and_then(Option::as_ref)
            .is_some_and(|c| c.stateful)
    });
    let opens = stateful.map(|i| {
        let upstream = gw.shared.upstreams[i].clone();
        let (caps, info) = (capabilities.clone(), client_info.clone());
        let token = token_for(upstream.credential.as_ref(), request);
        async move {
            let outcome = async {
                let credential = match &upstream.credential {
                    Some(c) => Some(c.resolve(caller.subject(token.as_deref())).await?),
                    None => None,
                };
                mcp_client::initialize(&gw.connector, &upstream, caps, info, credential).await
            }
            .await;
            (upstream, outcome)
        }
    });
    let bound = gw.shared.config.catalog.init_timeout;
    let Ok(outcomes) = tokio::time::timeout(bound, join_all(opens)).await else {
        tracing::warn!(gateway = %catalog.name, ?bound, "opening upstream sessions timed out; they open lazily per replica");
        return Vec::new();
    };
    outcomes
        .into_iter()
        .filter_map(|(upstream, outcome)| match outcome {
            Ok(init) => Some(UpstreamSession {
                server: upstream.name.as_str().to_owned(),
                session_id: init.session_id?,
                protocol_version: init.protocol_version,
            }),
            Err(e) => {
                tracing::warn!(server = %upstream.name, error = %e, "could not open an upstream session; it opens lazily per replica");
                None
            }
        })
        .collect()
}

/// Ends every upstream session of a client session and refuses its id here from now on.
pub async fn end_session(
    gw: &Gateway,
    claims: &SessionClaims,
    caller: &Caller,
    request: &pingora::http::RequestHeader,
) {
    gw.shared
        .revoked
        .revoke(claims.session_uid, claims.expires_at);
    let mut closes = Vec::new();
    for s in &claims.upstream_sessions {
        if let Some(&i) = gw.shared.server_index.get(&s.server) {
            closes.push((i, s.session_id.clone(), s.protocol_version.clone()));
        }
    }
    for (i, s) in gw.shared.lazy_sessions.take_all(&claims.session_uid) {
        closes.push((i, s.session_id, s.protocol_version));
    }
    let tasks = closes.iter().map(|(i, id, version)| {
        let upstream = gw.shared.upstreams[*i].clone();
        let token = token_for(upstream.credential.as_ref(), request);
        async move {
            let credential = match &upstream.credential {
                Some(c) => match c.resolve(caller.subject(token.as_deref())).await {
                    Ok(injected) => Some(injected),
                    Err(e) => {
                        tracing::debug!(server = %upstream.name, error = %e, "no credential to close an upstream session with");
                        return;
                    }
                },
                None => None,
            };
            let session = SessionRef {
                id: Some(id),
                version,
                credential: credential.as_ref(),
                routing: None,
            };
            if let Err(e) = mcp_client::delete_session(&gw.connector, &upstream, session).await {
                tracing::debug!(server = %upstream.name, error = %e, "closing an upstream session failed");
            }
        }
    });
    let _ = tokio::time::timeout(gw.shared.config.catalog.init_timeout, join_all(tasks)).await;
}
