//! Forwarding a routed request to its upstream and streaming the answer back unbuffered.
//!
//! The body arrives here already rewritten (only the routed name's bytes replaced). The
//! upstream session comes from the client's sealed token, or from this replica's lazy table
//! when the upstream was down at initialize or lost the session (then it is re-opened once
//! before the client is told to re-initialize). Failures before the response header are
//! JSON-RPC errors naming the server; a failure inside an SSE stream ends it with one.

use std::sync::Arc;

use bytes::{Bytes, BytesMut};
use pingora::http::ResponseHeader;
use pingora::proxy::Session;
use serde_json::Value;
use tokio::time::Instant;

use sluice_auth::credential::{self, Injected};

use super::events::{self, EventCursor, Origin};
use super::{Caller, Gateway, RequestRecord, caller::token_for, streamed, write_failed};
use crate::breaker::Admission;
use crate::error::GatewayError;
use crate::inflight::InFlightGuard;
use crate::reply;
use crate::session::LazySession;
use crate::session_token::SessionClaims;
use crate::sse::frames::EventFramer;
use crate::state::Snapshot;
use crate::upstream::mcp_client::{self, SessionRef};
use crate::upstream::{Exchange, ServerIdx, Upstream, UpstreamError};

/// Where a routed request goes and the body to send.
pub struct Target {
    /// The owning server.
    pub server: ServerIdx,
    /// The request body as the upstream must see it.
    pub body: Bytes,
    /// The upstream session it must go to, when the message names one (a client's answer to
    /// a relayed request); otherwise the client session's own.
    pub session: Option<UpstreamSessionChoice>,
    /// Set when the body is still with the client and streams upstream as it arrives
    /// (`body` is then empty).
    pub streamed: Option<streamed::Plan>,
    /// The method and name a 2026-07-28 request's routing headers must mirror, when the
    /// routing step knew them (else they are read from `body`).
    pub routing: Option<(String, Option<String>)>,
}

impl Target {
    /// A target in the client session's own upstream session.
    pub fn new(server: ServerIdx, body: Bytes) -> Self {
        Target {
            server,
            body,
            session: None,
            streamed: None,
            routing: None,
        }
    }

    /// This target with the routing headers' method and name, for a 2026-07-28 request.
    pub fn routed(
        mut self,
        modern: bool,
        method: &str,
        name: impl FnOnce() -> Option<String>,
    ) -> Self {
        if modern {
            self.routing = Some((method.to_owned(), name()));
        }
        self
    }
}

/// Which upstream session a forwarded message uses.
#[derive(Debug, Clone)]
pub struct UpstreamSessionChoice {
    /// `Mcp-Session-Id`, when the upstream keeps sessions.
    pub id: Option<String>,
    /// The protocol version of that session.
    pub version: String,
}

/// Largest single event of an upstream's response stream the gateway holds while it frames
/// the stream (a tool result sent as one event can be large).
const MAX_EVENT_BYTES: usize = 16 << 20;

/// Sends the request upstream and streams the response to the client, through the server's
/// breaker: refused at once while it is ejected, and its outcome counted.
pub async fn forward(
    gw: &Gateway,
    session: &mut Session,
    rec: &mut RequestRecord,
    snapshot: &Snapshot,
    claims: &SessionClaims,
    caller: &Caller,
    target: Target,
) -> Result<(), GatewayError> {
    let upstream = gw.shared.upstreams[target.server].clone();
    rec.server = Some(upstream.name.as_str().to_owned());
    let probe = match upstream.breaker.admit() {
        Admission::Pass => false,
        Admission::Probe => true,
        Admission::Ejected {
            retry_after,
            failures,
        } => {
            return Err(UpstreamError::Ejected {
                server: upstream.name.clone(),
                retry_after,
                failures,
            }
            .into());
        }
    };
    let result = forward_once(gw, session, rec, snapshot, claims, caller, target).await;
    let server_fault = match &result {
        // No credential to present: the request never reached the server.
        Err(GatewayError::Upstream(UpstreamError::Credential(_))) => None,
        // Anything the server answered (a 4xx included) shows it is alive.
        Err(GatewayError::Upstream(e)) => Some(e.is_server_fault()),
        Err(GatewayError::UpstreamSessionLost(_)) => Some(true),
        // A stream that failed after its header went out was answered with an error event.
        Ok(()) => Some(matches!(rec.outcome, "upstream_error" | "upstream_timeout")),
        // The client left, or the gateway refused before sending: nothing learnt.
        Err(_) => None,
    };
    match server_fault {
        Some(true) if upstream.breaker.failure(probe) => {
            gw.shared.metrics.ejected(upstream.name.as_str(), true);
            tracing::warn!(server = %upstream.name, "upstream ejected after consecutive failures");
        }
        Some(true) => {}
        Some(false) => {
            if probe || upstream.breaker.is_ejected() {
                gw.shared.metrics.ejected(upstream.name.as_str(), false);
            }
            upstream.breaker.success();
        }
        None if probe => upstream.breaker.release_probe(),
        None => {}
    }
    result
}

async fn forward_once(
    gw: &Gateway,
    session: &mut Session,
    rec: &mut RequestRecord,
    snapshot: &Snapshot,
    claims: &SessionClaims,
    caller: &Caller,
    target: Target,
) -> Result<(), GatewayError> {
    let upstream = gw.shared.upstreams[target.server].clone();
    let _admitted = upstream.admission.try_enter().ok_or_else(|| {
        gw.shared
            .metrics
            .overloaded("server", upstream.name.as_str());
        GatewayError::Overloaded {
            what: format!("server '{}'", upstream.name),
            limit: upstream.admission.limit(),
            key: "servers.max_concurrent",
        }
    })?;
    rec.upstream = Some((target.server, std::time::Instant::now()));
    let deadline = Instant::now() + upstream.timeout;
    let catalog = snapshot.servers.get(target.server).and_then(Option::as_ref);
    let stateful = catalog.is_none_or(|c| c.stateful);
    let fallback_version = catalog.map_or(crate::protocol::LATEST_VERSION, |c| {
        c.protocol_version.as_str()
    });

    let token = token_for(upstream.credential.as_ref(), session.req_header());
    let subject = caller.subject(token.as_deref());
    let injected = resolve_credential(gw, rec, &upstream, subject).await?;
    let pinned = target.session.is_some();
    // A 2026-07-28 client and an upstream that speaks that revision: forwarded as it is, with
    // no session and the routing headers for the (renamed) body. An upstream that speaks only
    // that revision gets a handshake-era client's request raised to it (the envelope added).
    let depth = gw.shared.config.proxy.max_json_depth;
    rec.raised = !rec.modern && catalog.is_some_and(|c| c.modern && !c.handshake);
    let modern_route = (rec.modern || rec.raised) && catalog.is_some_and(|c| c.modern);
    rec.bridged = rec.modern && !modern_route;
    let body = if rec.bridged {
        // An upstream spoken to in the handshake era may refuse the revision's envelope keys.
        crate::modern::strip_envelope(&target.body, depth)
            .map_or_else(|| target.body.clone(), Bytes::from)
    } else if rec.raised {
        Bytes::from(crate::modern::raise(&target.body, depth).ok_or_else(|| {
            GatewayError::InvalidParams(
                "params must be an object to reach a server of protocol revision 2026-07-28".into(),
            )
        })?)
    } else {
        target.body.clone()
    };
    let routing = match &target.streamed {
        Some(plan) => Some(("tools/call".to_owned(), Some(plan.upstream_name.clone()))),
        None if modern_route => match target.routing.clone() {
            Some(known) => Some(known),
            None => Some(routing_of(&target.body, depth)?),
        },
        None => None,
    };
    let choice = match target.session {
        Some(pinned) => pinned,
        None if modern_route => UpstreamSessionChoice {
            id: None,
            version: crate::modern::MODERN_VERSIONS[0].to_owned(),
        },
        None => {
            choose_session(
                gw,
                claims,
                &upstream,
                stateful,
                fallback_version,
                deadline,
                injected.as_ref(),
            )
            .await?
        }
    };
    // A request can be cancelled by the client while it runs; an answer cannot.
    let inflight = gw
        .shared
        .inflight
        .register(claims.session_uid, rec.id.as_deref().filter(|_| !pinned));
    let upstream_span = rec.span.as_ref().and_then(|cx| {
        gw.shared
            .telemetry
            .child(cx, "POST", opentelemetry::trace::SpanKind::Client)
    });
    if let Some(cx) = &upstream_span {
        crate::telemetry::set(
            cx,
            [
                opentelemetry::KeyValue::new("sluice.server", upstream.name.as_str().to_owned()),
                opentelemetry::KeyValue::new("server.address", upstream.authority.clone()),
                opentelemetry::KeyValue::new("http.request.method", "POST"),
            ],
        );
    }
    // An untraced request (not sampled, or tracing off) has no context: the client's own
    // trace headers go upstream unchanged instead.
    // A clone (an `Arc`), so the streamed path can still record into `rec`.
    let client_span = rec.span.clone();
    let span = upstream_span.as_ref().or(client_span.as_ref());
    let mut param_headers = if routing.is_some() {
        param_headers(session.req_header())
    } else {
        Vec::new()
    };
    if upstream.builtin {
        param_headers.extend(builtin_origin(rec.gateway.as_deref(), subject));
    }
    let mut outbound = Outbound {
        subject,
        credential: injected,
        routing,
        param_headers,
        span,
        client_trace: if span.is_none() {
            crate::telemetry::client_trace_headers(session.req_header())
        } else {
            Vec::new()
        },
    };
    let cancel_credential = outbound.credential.clone();
    // Until the upstream answers, a client that goes away cancels the upstream request too,
    // and so does the client's own notifications/cancelled.
    let (exchange, cancel_forwarded) = if let Some(plan) = &target.streamed {
        // The client is busy sending the body: its going away shows as a failed read.
        let req = request(gw, &upstream, &choice, &outbound, plan.upstream_length())?;
        let opening = streamed::send(gw, session, rec, caller, &upstream, plan, req);
        let exchange = tokio::time::timeout_at(deadline, opening)
            .await
            .unwrap_or_else(|_| {
                Err(GatewayError::Upstream(UpstreamError::Timeout {
                    server: upstream.name.clone(),
                    after: upstream.timeout,
                    phase: "streaming the request",
                }))
            })?;
        let exchange = exchange
            .expect_status(&gw.connector, &upstream, |s| {
                (200..300).contains(&s) || matches!(s, 400 | 404)
            })
            .await?;
        (exchange, false)
    } else {
        let opening = open_exchange(
            gw,
            claims,
            &mut outbound,
            &upstream,
            &body,
            (choice.clone(), pinned),
            deadline,
        );
        tokio::pin!(opening);
        let mut cancel_forwarded = false;
        let exchange = loop {
            tokio::select! {
                exchange = &mut opening => break exchange?,
                gone = client_disconnected(session) => {
                    cancel_upstream(gw, &upstream, &choice, cancel_credential.as_ref(), rec.id.as_deref(), DISCONNECTED);
                    return Err(client_gone(&gone));
                }
                () = inflight.cancelled(), if !cancel_forwarded => {
                    cancel_forwarded = true;
                    cancel_upstream(gw, &upstream, &choice, cancel_credential.as_ref(), rec.id.as_deref(), CANCELLED);
                }
            }
        };
        (exchange, cancel_forwarded)
    };
    let status = exchange.status();
    let cancel = Cancel {
        choice: &choice,
        credential: outbound.credential.as_ref(),
        forwarded: cancel_forwarded,
    };
    let result = stream_back(
        gw,
        (session, rec),
        &upstream,
        (cancel, &inflight),
        claims.session_uid,
        exchange,
        deadline,
    )
    .await;
    if let Some(cx) = upstream_span {
        use opentelemetry::trace::TraceContextExt;
        cx.span().set_attribute(opentelemetry::KeyValue::new(
            "http.response.status_code",
            i64::from(status),
        ));
        if result.is_err() || rec.outcome != "ok" {
            cx.span()
                .set_status(opentelemetry::trace::Status::error(rec.outcome));
        }
        cx.span().end();
    }
    result
}

/// What the upstream request carries from the client's side: the upstream credential (and
/// the caller it was made for, to replace it after a 401) and the trace context (the upstream
/// span when traced, else the client's own `traceparent` / `tracestate`).
struct Outbound<'a> {
    subject: credential::Caller<'a>,
    credential: Option<Injected>,
    /// `Mcp-Method` and `Mcp-Name` of a request forwarded in the 2026-07-28 revision.
    routing: Option<(String, Option<String>)>,
    /// Its `Mcp-Param-*` headers, which mirror arguments a tool's schema marks with
    /// `x-mcp-header` (the upstream checks them against the body); to control's built-in
    /// tools, also the gateway and the caller.
    param_headers: Vec<(http::HeaderName, http::HeaderValue)>,
    span: Option<&'a opentelemetry::Context>,
    client_trace: Vec<(&'static str, http::HeaderValue)>,
}

/// What cancelling the upstream request needs: its session and credential, and whether the
/// client's cancellation was already passed on.
#[derive(Clone, Copy)]
struct Cancel<'a> {
    choice: &'a UpstreamSessionChoice,
    credential: Option<&'a Injected>,
    forwarded: bool,
}

/// `reason` of the cancellation sent when the client went away.
const DISCONNECTED: &str = "the client disconnected";
/// `reason` of a cancellation the client asked for.
const CANCELLED: &str = "the client cancelled the request";

/// The credential step: resolves the server's credential for this caller (a warm token is one
/// atomic load), as a `credential` span when traced. With no credential configured the request
/// carries none, and never the client's own `Authorization`.
pub(super) async fn resolve_credential(
    gw: &Gateway,
    rec: &RequestRecord,
    upstream: &Upstream,
    subject: credential::Caller<'_>,
) -> Result<Option<Injected>, GatewayError> {
    let Some(credential) = upstream.credential.as_ref() else {
        return Ok(None);
    };
    let span = rec.span.as_ref().and_then(|cx| {
        gw.shared
            .telemetry
            .child(cx, "credential", opentelemetry::trace::SpanKind::Internal)
    });
    let resolved = credential.resolve(subject).await;
    if let Some(cx) = span {
        use opentelemetry::trace::TraceContextExt;
        let mut attrs = vec![opentelemetry::KeyValue::new(
            "sluice.credential.type",
            credential.type_name(),
        )];
        match &resolved {
            Ok(injected) => {
                attrs.push(opentelemetry::KeyValue::new(
                    "sluice.credential.digest",
                    injected.digest(),
                ));
                if let Some(l) = injected.lookup {
                    attrs.push(opentelemetry::KeyValue::new(
                        "sluice.credential.cache",
                        l.label(),
                    ));
                }
            }
            Err(e) => {
                attrs.push(opentelemetry::KeyValue::new("error.type", e.reason()));
                cx.span()
                    .set_status(opentelemetry::trace::Status::error(e.reason()));
            }
        }
        crate::telemetry::set(&cx, attrs);
        cx.span().end();
    }
    Ok(Some(resolved.map_err(UpstreamError::from)?))
}

/// Sends the request in the right upstream session and waits for a 2xx response header,
/// re-opening the session once if the upstream forgot it.
async fn open_exchange(
    gw: &Gateway,
    claims: &SessionClaims,
    outbound: &mut Outbound<'_>,
    upstream: &Upstream,
    body: &Bytes,
    (mut choice, pinned): (UpstreamSessionChoice, bool),
    deadline: Instant,
) -> Result<Exchange, GatewayError> {
    let mut exchange = within(
        deadline,
        upstream,
        send(gw, upstream, &choice, outbound, body),
    )
    .await?;
    if exchange.status() == 404 && choice.id.is_some() && !pinned {
        // The upstream forgot the session (restart, expiry): open a new one once, then retry.
        exchange.finish(&gw.connector, upstream).await;
        choice = within(
            deadline,
            upstream,
            reopen(gw, claims, upstream, outbound.credential.as_ref()),
        )
        .await
        .map_err(|_| GatewayError::UpstreamSessionLost(upstream.name.as_str().to_owned()))?;
        exchange = within(
            deadline,
            upstream,
            send(gw, upstream, &choice, outbound, body),
        )
        .await?;
    }
    if exchange.status() == 401
        && let Some(credential) = upstream.credential.as_ref().filter(|c| c.is_fetched())
        && let Some(rejected) = outbound.credential.take()
    {
        // The upstream no longer takes the cached token (revoked, rotated keys): forget it and
        // try once more with a fresh one.
        exchange.finish(&gw.connector, upstream).await;
        credential.rejected(outbound.subject, &rejected.value);
        let fresh = within(deadline, upstream, async {
            Ok(credential.resolve(outbound.subject).await?)
        })
        .await?;
        outbound.credential = Some(fresh);
        exchange = within(
            deadline,
            upstream,
            send(gw, upstream, &choice, outbound, body),
        )
        .await?;
    }
    // In the 2026-07-28 revision a JSON-RPC error travels with its HTTP status (400, 404):
    // those answers are the client's to read, not a failed exchange.
    let modern = outbound.routing.is_some();
    Ok(exchange
        .expect_status(&gw.connector, upstream, |s| {
            (200..300).contains(&s) || (modern && matches!(s, 400 | 404))
        })
        .await?)
}

/// Completes when the client closes its connection. Bytes of a pipelined next request are
/// not a disconnect: pingora keeps them and the next idle read pends.
pub(super) async fn client_disconnected(session: &mut Session) -> Box<pingora::Error> {
    loop {
        if let Err(e) = session.as_downstream_mut().read_body_or_idle(true).await {
            return e;
        }
    }
}

/// Tells the upstream the request is abandoned (`notifications/cancelled`, as MCP asks,
/// since a dropped connection alone does not cancel), in the background.
fn cancel_upstream(
    gw: &Gateway,
    upstream: &Arc<Upstream>,
    choice: &UpstreamSessionChoice,
    credential: Option<&Injected>,
    id: Option<&[u8]>,
    reason: &'static str,
) {
    let Some(request_id) = id.and_then(|id| serde_json::from_slice::<Value>(id).ok()) else {
        return;
    };
    if crate::modern::MODERN_VERSIONS.contains(&choice.version.as_str()) {
        // In the 2026-07-28 revision closing the response stream is the cancellation.
        return;
    }
    let (connector, upstream, choice) = (gw.connector.clone(), upstream.clone(), choice.clone());
    let credential = credential.cloned();
    tokio::spawn(async move {
        let session = SessionRef {
            id: choice.id.as_deref(),
            version: &choice.version,
            credential: credential.as_ref(),
            routing: None,
        };
        let params = serde_json::json!({ "requestId": request_id, "reason": reason });
        let sent = mcp_client::notify(
            &connector,
            &upstream,
            session,
            "notifications/cancelled",
            Some(params),
        );
        if let Err(e) = tokio::time::timeout(upstream.timeout, sent)
            .await
            .unwrap_or(Ok(()))
        {
            tracing::debug!(server = %upstream.name, error = %e, "could not cancel the abandoned request upstream");
        }
    });
}

/// The client went away: dropping the exchange cancels the upstream request.
pub(super) fn client_gone(e: &pingora::Error) -> GatewayError {
    GatewayError::ClientClosed(e.etype().as_str())
}

/// The upstream session a client session has with server `i` on this replica: opened lazily
/// here, else sealed into its token at initialize. `None` when it has none (yet).
pub(super) fn existing_session(
    gw: &Gateway,
    claims: &SessionClaims,
    i: ServerIdx,
) -> Option<UpstreamSessionChoice> {
    if let Some(s) = gw.shared.lazy_sessions.get(&claims.session_uid, i) {
        return Some(UpstreamSessionChoice {
            id: Some(s.session_id),
            version: s.protocol_version,
        });
    }
    let name = gw.shared.upstreams.get(i)?.name.as_str();
    claims.upstream(name).map(|s| UpstreamSessionChoice {
        id: Some(s.session_id.clone()),
        version: s.protocol_version.clone(),
    })
}

async fn choose_session(
    gw: &Gateway,
    claims: &SessionClaims,
    upstream: &Upstream,
    stateful: bool,
    fallback_version: &str,
    deadline: Instant,
    credential: Option<&Injected>,
) -> Result<UpstreamSessionChoice, GatewayError> {
    if !stateful {
        return Ok(UpstreamSessionChoice {
            id: None,
            version: fallback_version.to_owned(),
        });
    }
    if let Some(existing) = existing_session(gw, claims, upstream.index) {
        return Ok(existing);
    }
    Ok(within(deadline, upstream, reopen(gw, claims, upstream, credential)).await?)
}

/// Opens an upstream session for this client session on this replica and remembers it.
async fn reopen(
    gw: &Gateway,
    claims: &SessionClaims,
    upstream: &Upstream,
    credential: Option<&Injected>,
) -> Result<UpstreamSessionChoice, UpstreamError> {
    let capabilities: Value = serde_json::from_slice(&claims.client_capabilities)
        .unwrap_or(Value::Object(Default::default()));
    let info = serde_json::json!({ "name": "sluice", "version": env!("CARGO_PKG_VERSION") });
    let init = mcp_client::initialize(
        &gw.connector,
        upstream,
        capabilities,
        info,
        credential.cloned(),
    )
    .await?;
    let Some(id) = init.session_id else {
        return Ok(UpstreamSessionChoice {
            id: None,
            version: init.protocol_version,
        });
    };
    gw.shared.lazy_sessions.insert(
        claims.session_uid,
        upstream.index,
        LazySession {
            session_id: id.clone(),
            protocol_version: init.protocol_version.clone(),
        },
    );
    Ok(UpstreamSessionChoice {
        id: Some(id),
        version: init.protocol_version,
    })
}

async fn send(
    gw: &Gateway,
    upstream: &Upstream,
    choice: &UpstreamSessionChoice,
    outbound: &Outbound<'_>,
    body: &Bytes,
) -> Result<Exchange, UpstreamError> {
    let req = request(gw, upstream, choice, outbound, Some(body.len()))?;
    Exchange::start(&gw.connector, upstream, req, body.clone()).await
}

/// The header of a forwarded request: session, credential, routing and `Mcp-Param-*` headers,
/// trace context; `Content-Length` when the body's length is known, else chunked.
fn request(
    gw: &Gateway,
    upstream: &Upstream,
    choice: &UpstreamSessionChoice,
    outbound: &Outbound<'_>,
    length: Option<usize>,
) -> Result<pingora::http::RequestHeader, UpstreamError> {
    let session = SessionRef {
        id: choice.id.as_deref(),
        version: &choice.version,
        credential: outbound.credential.as_ref(),
        routing: outbound
            .routing
            .as_ref()
            .map(|(method, name)| mcp_client::Routing {
                method,
                name: name.as_deref(),
            }),
    };
    let invalid = |reason: &str| UpstreamError::Protocol {
        server: upstream.name.clone(),
        reason: reason.into(),
    };
    let mut req = mcp_client::post_request(upstream, session, length.unwrap_or_default())?;
    if length.is_none() {
        req.remove_header(&http::header::CONTENT_LENGTH);
        req.insert_header(http::header::TRANSFER_ENCODING, "chunked")
            .map_err(|_| invalid("invalid request header"))?;
    }
    for (name, value) in &outbound.param_headers {
        req.append_header(name.clone(), value.clone())
            .map_err(|_| invalid("invalid Mcp-Param header"))?;
    }
    gw.shared
        .telemetry
        .inject(outbound.span, &outbound.client_trace, &mut req);
    Ok(req)
}

async fn stream_back(
    gw: &Gateway,
    (session, rec): (&mut Session, &mut RequestRecord),
    upstream: &Arc<Upstream>,
    (mut cancel, inflight): (Cancel<'_>, &InFlightGuard<'_>),
    session_uid: [u8; 16],
    mut exchange: Exchange,
    deadline: Instant,
) -> Result<(), GatewayError> {
    let content_type = exchange
        .header_str("content-type")
        .unwrap_or("application/json")
        .to_owned();
    let is_sse = content_type.trim_start().starts_with("text/event-stream");
    // A handshake-era client reads a JSON-RPC error in a 200, whatever status the revision
    // gave it upstream.
    let status = match exchange.status() {
        400 | 404 if rec.raised => 200,
        s => s,
    };
    let mut resp = ResponseHeader::build(status, Some(4)).map_err(write_failed)?;
    resp.insert_header("content-type", content_type.as_str())
        .map_err(write_failed)?;
    // A JSON answer whose length may change is held and mended before it is sent: a modern
    // client's is completed, a raised one's input request refused.
    // So is the answer of a read-resource tool's call, turned into a tool result.
    let mut held =
        ((rec.bridged || rec.raised || rec.resource_tool) && !is_sse).then(BytesMut::new);
    if is_sse {
        resp.insert_header("cache-control", "no-cache")
            .map_err(write_failed)?;
    } else if let Some(len) = exchange
        .header_str("content-length")
        .filter(|_| held.is_none())
    {
        resp.insert_header("content-length", len)
            .map_err(write_failed)?;
    }
    // A held answer's header waits for its body, so it goes out with the mended length (and
    // the connection stays reusable); any other header goes out now.
    let mut deferred = None;
    if held.is_some() {
        deferred = Some(resp);
    } else {
        session
            .write_response_header(Box::new(resp), false)
            .await
            .map_err(write_failed)?;
    }

    // Response streams are cut into events so relayed requests and event ids can be rewritten;
    // a JSON body streams through as it comes.
    // Built only for event streams: a JSON answer copies nothing here.
    let mut framer = is_sse.then(|| {
        let origin = Origin {
            session_uid,
            server: upstream.name.as_str().to_owned(),
            upstream_session: cancel.choice.id.clone(),
            version: cancel.choice.version.clone(),
        };
        (EventFramer::new(MAX_EVENT_BYTES), origin)
    });
    let mut cursor = EventCursor::default();
    loop {
        let next = tokio::select! {
            chunk = tokio::time::timeout_at(deadline, exchange.chunk(upstream)) => chunk,
            gone = client_disconnected(session) => {
                cancel_upstream(gw, upstream, cancel.choice, cancel.credential, rec.id.as_deref(), DISCONNECTED);
                return Err(client_gone(&gone));
            }
            () = inflight.cancelled(), if !cancel.forwarded => {
                cancel.forwarded = true;
                cancel_upstream(gw, upstream, cancel.choice, cancel.credential, rec.id.as_deref(), CANCELLED);
                continue;
            }
        };
        let next = match (next, framer.as_mut()) {
            (Ok(Ok(Some(chunk))), Some((framer, origin))) => match framer.push(&chunk) {
                Ok(blocks) => Ok(Ok(Some(pass_events(
                    gw,
                    rec,
                    upstream,
                    origin,
                    &mut cursor,
                    blocks,
                )))),
                Err(e) => Ok(Err(UpstreamError::Protocol {
                    server: upstream.name.clone(),
                    reason: e.to_string(),
                })),
            },
            (Ok(Ok(None)), Some((framer, _))) => match framer.rest() {
                Some(rest) => {
                    session
                        .write_response_body(Some(rest), false)
                        .await
                        .map_err(write_failed)?;
                    Ok(Ok(None))
                }
                None => Ok(Ok(None)),
            },
            (next, _) => next,
        };
        let failure = match next {
            Ok(Ok(Some(chunk))) if held.is_some() => match held.as_mut() {
                Some(buf) if buf.len() + chunk.len() <= MAX_EVENT_BYTES => {
                    buf.extend_from_slice(&chunk);
                    continue;
                }
                _ => Some(UpstreamError::Protocol {
                    server: upstream.name.clone(),
                    reason: format!("response larger than {MAX_EVENT_BYTES} bytes"),
                }),
            },
            Ok(Ok(Some(chunk))) => {
                if !is_sse && !rec.tool_error && rec.tool_metrics.is_some() && says_is_error(&chunk)
                {
                    rec.tool_error = true;
                }
                if !chunk.is_empty() {
                    session
                        .write_response_body(Some(chunk), false)
                        .await
                        .map_err(write_failed)?;
                }
                continue;
            }
            Ok(Ok(None)) => None,
            Ok(Err(e)) => Some(e),
            Err(_) => Some(UpstreamError::Timeout {
                server: upstream.name.clone(),
                after: upstream.timeout,
                phase: "streaming the response",
            }),
        };
        if let Some(e) = failure {
            rec.outcome = if matches!(e, UpstreamError::Timeout { .. }) {
                "upstream_timeout"
            } else {
                "upstream_error"
            };
            rec.error = Some(e.to_string());
            if is_sse {
                // Tell the client its request failed instead of leaving it waiting.
                let err = GatewayError::Upstream(e);
                let body =
                    reply::error_body(rec.id.as_deref(), err.jsonrpc_code(), &err.to_string());
                let mut event = Vec::with_capacity(body.len() + 24);
                event.extend_from_slice(b"event: message\ndata: ");
                event.extend_from_slice(&body);
                event.extend_from_slice(b"\n\n");
                session
                    .write_response_body(Some(Bytes::from(event)), true)
                    .await
                    .map_err(write_failed)?;
                return Ok(());
            }
            // A JSON body cut short cannot be mended: close the connection (a held one has
            // sent nothing yet, and is answered with the error instead).
            if deferred.is_none() {
                session.set_keepalive(None);
            }
            return Err(GatewayError::Upstream(e));
        }
        if let Some(buf) = held.take() {
            let depth = gw.shared.config.proxy.max_json_depth;
            let buf = match rec.resource_tool {
                true => super::resource_call::to_call_result(&buf, depth)
                    .map_or_else(|| buf.freeze(), Bytes::from),
                false => buf.freeze(),
            };
            let mended = if rec.raised {
                crate::modern::lower_input_required(&buf, depth, upstream.name.as_str())
            } else if rec.bridged {
                crate::modern::complete_result(&buf, depth, cacheable(rec))
            } else {
                None
            };
            let body = mended.map_or(buf, Bytes::from);
            if !rec.tool_error && rec.tool_metrics.is_some() && says_is_error(&body) {
                rec.tool_error = true;
            }
            if let Some(mut resp) = deferred.take() {
                resp.insert_header("content-length", body.len().to_string())
                    .map_err(write_failed)?;
                session
                    .write_response_header(Box::new(resp), false)
                    .await
                    .map_err(write_failed)?;
            }
            session
                .write_response_body(Some(body), false)
                .await
                .map_err(write_failed)?;
        }
        session
            .write_response_body(None, true)
            .await
            .map_err(write_failed)?;
        exchange.finish(&gw.connector, upstream).await;
        return Ok(());
    }
}

/// Rewrites the whole events of one upstream chunk (relayed ids, event ids) into one buffer
/// for the client, noting a list change or a tool error on the way.
fn pass_events(
    gw: &Gateway,
    rec: &mut RequestRecord,
    upstream: &Upstream,
    origin: &Origin,
    cursor: &mut EventCursor,
    blocks: Vec<Bytes>,
) -> Bytes {
    let depth = gw.shared.config.proxy.max_json_depth;
    let mut out: Vec<Bytes> = blocks
        .into_iter()
        .map(|block| {
            let event = events::rewrite(block, origin, Some(cursor), &gw.shared.sealer, depth);
            if event.list_changed {
                gw.shared.request_refresh(upstream.index);
            }
            let block = match rec.resource_tool {
                true => super::resource_call::convert_event(event.block, depth),
                false => event.block,
            };
            if !rec.tool_error && rec.tool_metrics.is_some() && says_is_error(&block) {
                rec.tool_error = true;
            }
            if rec.bridged {
                let cacheable = cacheable(rec);
                return mend_event(block, |d| {
                    crate::modern::complete_result(d, depth, cacheable)
                });
            }
            if rec.raised {
                return mend_event(block, |d| {
                    crate::modern::lower_input_required(d, depth, upstream.name.as_str())
                });
            }
            block
        })
        .collect();
    match out.len() {
        0 | 1 => out.pop().unwrap_or_default(),
        _ => Bytes::from(out.concat()),
    }
}

/// Most `Mcp-Param-*` headers passed on with one request.
const MAX_PARAM_HEADERS: usize = 32;

/// The client's `Mcp-Param-*` headers, in order and with repeats (the upstream refuses a
/// repeated one), at most [`MAX_PARAM_HEADERS`].
/// What a call to control's built-in tools says about where it comes from: the gateway and
/// the caller's `authority:subject` label (never a token), for control's audit log. Control
/// trusts them because the request carries this proxy's control token.
fn builtin_origin(
    gateway: Option<&str>,
    subject: credential::Caller<'_>,
) -> Vec<(http::HeaderName, http::HeaderValue)> {
    let mut out = Vec::with_capacity(2);
    if let Some(v) = gateway.and_then(|g| http::HeaderValue::from_str(g).ok()) {
        out.push((http::HeaderName::from_static("sluice-gateway"), v));
    }
    if let Some(v) = subject
        .identity
        .and_then(|i| http::HeaderValue::from_str(i.display()).ok())
    {
        out.push((http::HeaderName::from_static("sluice-caller"), v));
    }
    out
}

fn param_headers(req: &pingora::http::RequestHeader) -> Vec<(http::HeaderName, http::HeaderValue)> {
    req.headers
        .iter()
        .filter(|(name, _)| name.as_str().starts_with("mcp-param-"))
        .take(MAX_PARAM_HEADERS)
        .map(|(name, value)| (name.clone(), value.clone()))
        .collect()
}

/// The method and name a forwarded 2026-07-28 body's routing headers mirror (the body as it
/// goes upstream, so a renamed tool's upstream name).
fn routing_of(body: &Bytes, depth: usize) -> Result<(String, Option<String>), GatewayError> {
    let crate::jsonrpc::Scanned::Single(envelope) = crate::jsonrpc::scan(body, depth)? else {
        return Err(GatewayError::Batch);
    };
    let method = envelope.method.as_deref().unwrap_or_default().to_owned();
    let name = match method.as_str() {
        "tools/call" | "prompts/get" => envelope.name.map(|n| n.value.into_owned()),
        "resources/read" => envelope.uri.map(|u| u.value.into_owned()),
        _ => None,
    };
    Ok((method, name))
}

/// Whether the request's result is one the 2026-07-28 revision makes cacheable.
fn cacheable(rec: &RequestRecord) -> bool {
    rec.method.as_deref() == Some("resources/read")
}

/// An event whose data `mend` rewrites (a handshake-era response given the `resultType` a
/// 2026-07-28 client needs, an `InputRequiredResult` lowered for a handshake-era client), or
/// the event unchanged when `mend` leaves its data alone.
fn mend_event(block: Bytes, mend: impl FnOnce(&[u8]) -> Option<Vec<u8>>) -> Bytes {
    match crate::sse::frames::fields(&block)
        .data
        .and_then(|d| mend(&d))
    {
        Some(data) => crate::sse::frames::rewrite(&block, None, Some(&data)),
        None => block,
    }
}

/// Whether a response chunk carries `"isError": true` as a JSON key (not inside a string, where
/// its quotes would be escaped). Cheap: no parse. A key split across two chunks is missed, and
/// such a call counts as `ok`.
fn says_is_error(chunk: &[u8]) -> bool {
    const KEY: &[u8] = b"\"isError\"";
    let mut from = 0;
    while let Some(at) = chunk[from..].windows(KEY.len()).position(|w| w == KEY) {
        let start = from + at;
        from = start + KEY.len();
        if start > 0 && chunk[start - 1] == b'\\' {
            continue;
        }
        let rest = chunk[from..].trim_ascii_start();
        if let Some(value) = rest.strip_prefix(b":")
            && value.trim_ascii_start().starts_with(b"true")
        {
            return true;
        }
    }
    false
}

async fn within<T>(
    deadline: Instant,
    upstream: &Upstream,
    work: impl std::future::Future<Output = Result<T, UpstreamError>>,
) -> Result<T, UpstreamError> {
    tokio::time::timeout_at(deadline, work)
        .await
        .unwrap_or_else(|_| {
            Err(UpstreamError::Timeout {
                server: upstream.name.clone(),
                after: upstream.timeout,
                phase: "waiting for the response",
            })
        })
}

#[cfg(test)]
mod tests {
    use super::says_is_error;

    #[test]
    fn is_error_is_found_as_a_key_only() {
        assert!(says_is_error(
            br#"{"result":{"content":[],"isError":true}}"#
        ));
        assert!(says_is_error(
            b"data: {\"result\":{\"isError\" :  true}}\n\n"
        ));
        assert!(!says_is_error(
            br#"{"result":{"content":[],"isError":false}}"#
        ));
        assert!(!says_is_error(
            br#"{"result":{"content":[{"type":"text","text":"{\"isError\":true}"}]}}"#
        ));
        assert!(!says_is_error(b""));
    }
}
