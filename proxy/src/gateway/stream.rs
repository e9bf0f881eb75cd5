//! The standalone GET stream of a client session: one SSE stream merging what every upstream
//! sends outside a request (resource updates, log messages, server-to-client requests) with
//! the gateway's own list-changed announcements.
//!
//! The gateway opens the GET stream of each upstream session the client session has (or, when
//! the client resumes with `Last-Event-ID`, of each upstream its cursor names, from the
//! upstream's own last event id), pumps their events through one bounded channel and rewrites
//! them on the way ([`super::events`]): relayed request ids, and event ids that carry every
//! upstream's position, so a client that reconnects anywhere resumes every upstream where it
//! left off. Upstream list changes are not passed on: the gateway refreshes its catalog and
//! announces the change of its own lists, which is what the client lists. The stream ends when
//! the client goes away, the session is ended (DELETE), or every upstream stream has ended;
//! a slow client slows the upstream reads instead of growing a buffer.

use std::sync::Arc;
use std::time::Duration;

use crate::reply;
use bytes::Bytes;
use pingora::proxy::Session;
use tokio::sync::mpsc;
use tokio::task::JoinHandle;

use super::caller::token_for;
use super::events::{self, EventCursor, Origin};
use super::forward::{client_disconnected, existing_session, resolve_credential};
use super::{Caller, Gateway, RequestRecord, write_failed};
use crate::catalog::GatewayCatalog;
use crate::error::GatewayError;
use crate::session_token::SessionClaims;
use crate::sse::frames::EventFramer;
use crate::upstream::mcp_client::{self, SessionRef};
use crate::upstream::{Exchange, ServerIdx, Upstream, UpstreamError};

/// Events waiting for a slow client, across all upstreams of one stream.
const CHANNEL_EVENTS: usize = 64;
/// Largest single event held while framing an upstream stream.
const MAX_EVENT_BYTES: usize = 4 << 20;
/// The `retry` (ms) the gateway asks clients to wait before reconnecting.
pub const RETRY_MS: u64 = 1000;
/// A comment line this often keeps idle connections open through balancers.
pub(super) const KEEP_ALIVE: Duration = Duration::from_secs(25);

/// What a pump sends: a batch of whole events of one upstream, or its end.
enum Pumped {
    Events(usize, Vec<Bytes>),
    Ended,
}

/// Aborts the pumps when the stream ends, however it ends.
struct Pumps(Vec<JoinHandle<()>>);

impl Drop for Pumps {
    fn drop(&mut self) {
        for pump in &self.0 {
            pump.abort();
        }
    }
}

/// One upstream stream to open.
struct Source {
    server: ServerIdx,
    session_id: String,
    version: String,
    last_event_id: Option<Vec<u8>>,
}

/// Serves `GET /mcp/{gateway}`.
pub async fn serve(
    gw: &Gateway,
    session: &mut Session,
    rec: &mut RequestRecord,
    catalog: &Arc<GatewayCatalog>,
    claims: &SessionClaims,
    caller: &Caller,
) -> Result<(), GatewayError> {
    super::endpoint::check_get_headers(session.req_header())?;
    let resume = match session.req_header().headers.get("last-event-id") {
        Some(v) => {
            let text = v
                .to_str()
                .map_err(|_| GatewayError::BadHeader("Last-Event-ID is not ASCII"))?;
            Some(EventCursor::decode(text).map_err(|_| {
                GatewayError::BadHeader("Last-Event-ID was not issued by this gateway")
            })?)
        }
        None => None,
    }
    .filter(|c| c.entries().next().is_some());
    let sources = sources(gw, catalog, claims, resume.as_ref());

    let (tx, mut rx) = mpsc::channel::<Pumped>(CHANNEL_EVENTS);
    let mut origins: Vec<Origin> = Vec::new();
    let mut pumps = Pumps(Vec::new());
    for source in sources {
        let upstream = gw.shared.upstreams[source.server].clone();
        match open(gw, session, rec, caller, &upstream, &source).await {
            Ok(exchange) => {
                let index = origins.len();
                origins.push(Origin {
                    session_uid: claims.session_uid,
                    server: upstream.name.as_str().to_owned(),
                    upstream_session: Some(source.session_id.clone()),
                    version: source.version.clone(),
                });
                pumps
                    .0
                    .push(tokio::spawn(pump(index, upstream, exchange, tx.clone())));
            }
            Err(e) => {
                tracing::debug!(server = %upstream.name, error = %e, "no standalone stream from this upstream");
            }
        }
    }
    // With no upstream stream, only the gateway speaks here: the channel stays open.
    let _idle = if origins.is_empty() {
        Some(tx)
    } else {
        drop(tx);
        None
    };
    rec.server = (origins.len() == 1).then(|| origins[0].server.clone());

    reply::event_stream(session).await.map_err(write_failed)?;
    let mut cursor = resume.unwrap_or_default();
    // The priming event: a resumable position before anything happened, and the retry delay.
    let priming = format!("id: {}\nretry: {RETRY_MS}\ndata: \n\n", cursor.encode());
    session
        .write_response_body(Some(Bytes::from(priming)), false)
        .await
        .map_err(write_failed)?;

    let mut swaps = gw.shared.snapshot_swaps.subscribe();
    let mut ends = gw.shared.session_ends.subscribe();
    // A DELETE that landed while the upstream streams were being opened was not seen above.
    let ended_already = gw.shared.revoked.is_revoked(&claims.session_uid);
    let mut shown = catalog.clone();
    let mut ended = 0;
    let mut keep_alive = tokio::time::interval(KEEP_ALIVE);
    keep_alive.reset();
    let depth = gw.shared.config.proxy.max_json_depth;
    rec.outcome = "ok";
    if !ended_already {
        loop {
            let out: Option<Bytes> = tokio::select! {
                pumped = rx.recv() => match pumped {
                    Some(Pumped::Events(index, blocks)) => {
                        let Some(origin) = origins.get(index) else { continue };
                        let mut out = Vec::with_capacity(blocks.len());
                        for block in blocks {
                            let event = events::rewrite(block, origin, Some(&mut cursor), &gw.shared.sealer, depth);
                            if event.list_changed {
                                // The gateway announces its own lists once its catalog follows.
                                if let Some(&i) = gw.shared.server_index.get(&origin.server) {
                                    gw.shared.request_refresh(i);
                                }
                                continue;
                            }
                            out.push(event.block);
                        }
                        Some(Bytes::from(out.concat()))
                    }
                    Some(Pumped::Ended) => {
                        ended += 1;
                        if ended == origins.len() {
                            break;
                        }
                        None
                    }
                    None => break,
                },
                changed = swaps.changed() => {
                    if changed.is_err() {
                        break;
                    }
                    // The current world's snapshot, which a reload may have replaced.
                    let now = swaps.borrow_and_update().gateways.get(shown.name.as_str()).cloned();
                    match now {
                        Some(now) => {
                            let announced = announcements(&shown, &now);
                            shown = now;
                            Some(Bytes::from(announced.concat()))
                        }
                        // A reload removed the gateway: the client reconnects and learns so.
                        None => break,
                    }
                }
                end = ends.recv() => match end {
                    Ok(uid) if uid == claims.session_uid => break,
                    Ok(_) => None,
                    Err(tokio::sync::broadcast::error::RecvError::Lagged(_)) => {
                        if gw.shared.revoked.is_revoked(&claims.session_uid) {
                            break;
                        }
                        None
                    }
                    Err(tokio::sync::broadcast::error::RecvError::Closed) => break,
                },
                _ = keep_alive.tick() => Some(Bytes::from_static(b": keep-alive\n\n")),
                // The usual end of a standalone stream, not a failure.
                _ = client_disconnected(session) => return Ok(()),
            };
            if let Some(out) = out.filter(|b| !b.is_empty()) {
                session
                    .write_response_body(Some(out), false)
                    .await
                    .map_err(write_failed)?;
            }
        }
    }
    drop(pumps);
    session
        .write_response_body(None, true)
        .await
        .map_err(write_failed)
}

/// The upstream streams to open: those the cursor names (from their positions), else every
/// upstream session the client session has on this replica.
fn sources(
    gw: &Gateway,
    catalog: &GatewayCatalog,
    claims: &SessionClaims,
    resume: Option<&EventCursor>,
) -> Vec<Source> {
    let wanted: Vec<(ServerIdx, Option<Vec<u8>>)> = match resume {
        Some(cursor) => cursor
            .entries()
            .filter_map(|(server, id)| {
                let i = *gw.shared.server_index.get(server)?;
                catalog.servers.contains(&i).then(|| (i, Some(id.to_vec())))
            })
            .collect(),
        None => catalog.servers.iter().map(|&i| (i, None)).collect(),
    };
    wanted
        .into_iter()
        .filter_map(|(server, last_event_id)| {
            let existing = existing_session(gw, claims, server)?;
            Some(Source {
                server,
                session_id: existing.id?,
                version: existing.version,
                last_event_id,
            })
        })
        .collect()
}

/// Opens one upstream's GET stream; anything but 200 means it offers none (405) or refused.
async fn open(
    gw: &Gateway,
    session: &Session,
    rec: &RequestRecord,
    caller: &Caller,
    upstream: &Arc<Upstream>,
    source: &Source,
) -> Result<Exchange, GatewayError> {
    let token = token_for(upstream.credential.as_ref(), session.req_header());
    let credential =
        resolve_credential(gw, rec, upstream, caller.subject(token.as_deref())).await?;
    let session_ref = SessionRef {
        id: Some(&source.session_id),
        version: &source.version,
        credential: credential.as_ref(),
        routing: None,
    };
    let bad = |_| UpstreamError::Protocol {
        server: upstream.name.clone(),
        reason: "invalid header".into(),
    };
    let mut req = mcp_client::base_request(upstream, "GET", session_ref, 0)?;
    req.remove_header("content-length");
    req.insert_header("accept", "text/event-stream")
        .map_err(bad)?;
    if let Some(id) = &source.last_event_id {
        req.insert_header("last-event-id", id.as_slice())
            .map_err(bad)?;
    }
    let start = Exchange::start(&gw.connector, upstream, req, Bytes::new());
    let exchange = tokio::time::timeout(upstream.timeout, start)
        .await
        .map_err(|_| UpstreamError::Timeout {
            server: upstream.name.clone(),
            after: upstream.timeout,
            phase: "opening the standalone stream",
        })??;
    let mut exchange = exchange
        .expect_status(&gw.connector, upstream, |s| s == 200)
        .await?;
    // The stream is long-lived and may be silent for hours.
    exchange.set_read_timeout(None);
    Ok(exchange)
}

/// Reads one upstream stream into the channel, whole events at a time, until it ends.
async fn pump(
    index: usize,
    upstream: Arc<Upstream>,
    mut exchange: Exchange,
    tx: mpsc::Sender<Pumped>,
) {
    let mut framer = EventFramer::new(MAX_EVENT_BYTES);
    loop {
        match exchange.chunk(&upstream).await {
            Ok(Some(chunk)) => match framer.push(&chunk) {
                Ok(blocks) if blocks.is_empty() => {}
                Ok(blocks) => {
                    if tx.send(Pumped::Events(index, blocks)).await.is_err() {
                        return;
                    }
                }
                Err(e) => {
                    tracing::debug!(server = %upstream.name, error = %e, "standalone stream refused");
                    break;
                }
            },
            Ok(None) => break,
            Err(e) => {
                tracing::debug!(server = %upstream.name, error = %e, "standalone stream failed");
                break;
            }
        }
    }
    let _ = tx.send(Pumped::Ended).await;
}

/// The list-changed notifications for what differs between two catalogs of one gateway.
fn announcements(before: &GatewayCatalog, after: &GatewayCatalog) -> Vec<Bytes> {
    changed_lists(before, after)
        .into_iter()
        .map(events::notification_event)
        .collect()
}

/// The `notifications/*/list_changed` methods for the lists that differ between two catalogs
/// of a gateway.
pub(super) fn changed_lists(before: &GatewayCatalog, after: &GatewayCatalog) -> Vec<&'static str> {
    let mut out = Vec::new();
    if before.tools != after.tools {
        out.push("notifications/tools/list_changed");
    }
    if before.prompts != after.prompts {
        out.push("notifications/prompts/list_changed");
    }
    if before.resources != after.resources || before.resource_templates != after.resource_templates
    {
        out.push("notifications/resources/list_changed");
    }
    out
}
