//! Large 2026-07-28 `tools/call`s routed by their headers, with the body streamed upstream.
//!
//! The revision mirrors the method and tool name in `Mcp-Method` and `Mcp-Name` so a proxy can
//! choose the upstream before the body has arrived. For a call whose body is larger than
//! [`STREAM_ABOVE`] (or of unknown length), to a tool of an upstream that speaks the revision,
//! the gateway does exactly that: it routes on the header, opens the upstream request, and
//! passes the body on chunk by chunk while the client is still sending it, replacing the shown
//! name (`server__tool`) with the upstream's in passing ([`crate::name_locator`]).
//!
//! The body is still the authority. The gateway keeps a copy (bounded by `max_body_bytes`, as
//! for every request) and holds back its last byte; once the client has sent everything, the
//! copy goes through the same checks as a buffered call: the JSON-RPC scan (duplicate and
//! escaped keys, depth), the revision's envelope and header/body agreement (-32020 for a
//! spoofed `Mcp-Name`), the tool's rules, policies and rate limit. Only then does the last
//! byte go out; on any failure the upstream connection is closed with the body unfinished, so
//! the upstream never runs the call, and the client gets the error.
//!
//! Everything else takes the buffered path: small bodies (one read anyway), upstreams spoken
//! to in the handshake era (their body loses the envelope keys), a lazy gateway's own tools,
//! and names the catalog does not know or the caller may not call (refused there with the
//! usual errors). A request that cannot be replayed cannot be retried after a 401, so a
//! streamed call whose upstream refuses the gateway's cached token is answered with that
//! refusal; a stale pooled connection is still retried, with the complete body.

use std::sync::Arc;

use bytes::{Bytes, BytesMut};
use pingora::http::RequestHeader;
use pingora::proxy::Session;

use super::{Caller, Gateway, RequestRecord, forward::Target};
use crate::catalog::GatewayCatalog;
use crate::error::GatewayError;
use crate::jsonrpc::{self, MessageKind, Scanned};
use crate::modern;
use crate::name_locator::{Located, NameLocator};
use crate::protocol;
use crate::state::Snapshot;
use crate::upstream::{Exchange, Sending, ServerIdx, Upstream, UpstreamError};

/// Bodies up to this size are read whole before routing: they arrive in one or two reads, and
/// the buffered path is the cheaper one for them.
pub const STREAM_ABOVE: usize = 64 * 1024;

/// A call chosen for streaming, from its headers alone.
pub struct Plan {
    pub server: ServerIdx,
    pub catalog: Arc<GatewayCatalog>,
    /// The upstream's own tool name, for the `Mcp-Name` it receives.
    pub upstream_name: String,
    /// The upstream's name as a JSON string literal, when it differs from the shown one.
    rename: Option<Box<[u8]>>,
    /// The client's `Content-Length`, passed on when the body keeps its length.
    declared: Option<usize>,
}

impl Plan {
    /// The upstream body's length when it is known before it is sent.
    pub fn upstream_length(&self) -> Option<usize> {
        self.declared.filter(|_| self.rename.is_none())
    }
}

/// The streaming plan for a request, or `None` when it takes the buffered path.
pub fn plan(
    req: &RequestHeader,
    snapshot: &Snapshot,
    catalog: &Arc<GatewayCatalog>,
    caller: &Caller,
    limit: usize,
) -> Option<Plan> {
    let headers = &req.headers;
    let single = |name: &str| {
        let mut values = headers.get_all(name).iter();
        let first = values.next()?;
        values.next().is_none().then_some(first)?.to_str().ok()
    };
    let version = single(protocol::VERSION_HEADER)?;
    if !modern::MODERN_VERSIONS.contains(&version) || single(modern::METHOD_HEADER)? != "tools/call"
    {
        return None;
    }
    let declared = match headers.get(http::header::CONTENT_LENGTH) {
        Some(v) => Some(v.to_str().ok()?.trim().parse::<usize>().ok()?),
        None => None,
    };
    // Too small to gain anything, or too large to take at all (refused by the buffered path).
    if declared.is_some_and(|n| n <= STREAM_ABOVE || n > limit) {
        return None;
    }
    let name = modern::decode_header_value(single(modern::NAME_HEADER)?)?;
    if catalog.lazy.is_some() {
        return None;
    }
    let route = catalog.route_tool(&name)?;
    // A read-resource tool's call is replaced by a body the gateway builds.
    if route.read_uri.is_some() {
        return None;
    }
    if caller.grants.is_some_and(|g| !route.decision.allows(g)) {
        return None;
    }
    if !snapshot
        .servers
        .get(route.server)
        .and_then(Option::as_ref)
        .is_some_and(|s| s.modern)
    {
        return None;
    }
    let upstream_name: String = serde_json::from_slice(&route.upstream_literal).ok()?;
    let shown = jsonrpc::json_string_literal(&name);
    let rename = (shown[..] != route.upstream_literal[..]).then(|| route.upstream_literal.clone());
    Some(Plan {
        server: route.server,
        catalog: catalog.clone(),
        upstream_name,
        rename,
        declared,
    })
}

/// The body as it arrives, the copy kept for the checks, and what of it has gone upstream.
struct Relay {
    whole: BytesMut,
    /// Input bytes before this offset have been passed on.
    passed: usize,
    locator: NameLocator,
    rename: Option<Box<[u8]>>,
    renamed: bool,
}

impl Relay {
    /// Takes a chunk and returns what may go upstream now: everything up to a name still being
    /// read, with the name replaced once read, but never the body's last byte received so far.
    fn push(&mut self, chunk: &[u8]) -> Option<Bytes> {
        self.whole.extend_from_slice(chunk);
        let mut out = BytesMut::new();
        if self.rename.is_some() && !self.renamed {
            self.locator.feed(chunk);
            match self.locator.located() {
                Located::Found(span) => {
                    out.extend_from_slice(&self.whole[self.passed..span.start]);
                    out.extend_from_slice(self.rename.as_deref().unwrap_or_default());
                    self.passed = span.end;
                    self.renamed = true;
                }
                Located::Inside(start) => {
                    out.extend_from_slice(&self.whole[self.passed..start.max(self.passed)]);
                    self.passed = start.max(self.passed);
                    return (!out.is_empty()).then(|| out.freeze());
                }
                Located::Searching => {}
            }
        }
        let upto = self.whole.len().saturating_sub(1).max(self.passed);
        out.extend_from_slice(&self.whole[self.passed..upto]);
        self.passed = upto;
        (!out.is_empty()).then(|| out.freeze())
    }

    /// The whole body, once it is in, and what of it is still to go upstream.
    fn finish(&mut self) -> (Bytes, Bytes) {
        let whole = std::mem::take(&mut self.whole).freeze();
        let rest = whole.slice(self.passed..);
        (whole, rest)
    }
}

/// Streams the client's body upstream under `req` (its header as forwarding built it), checks
/// the whole body before the last byte, and returns the exchange once the response header is
/// in. `rec` learns the request's id, so errors after the checks name it.
pub(super) async fn send(
    gw: &Gateway,
    session: &mut Session,
    rec: &mut RequestRecord,
    caller: &Caller,
    upstream: &Upstream,
    plan: &Plan,
    req: RequestHeader,
) -> Result<Exchange, GatewayError> {
    let limit = gw.shared.config.proxy.max_body_bytes;
    let mut relay = Relay {
        whole: BytesMut::with_capacity(plan.declared.unwrap_or(STREAM_ABOVE).min(limit)),
        passed: 0,
        locator: NameLocator::default(),
        rename: plan.rename.clone(),
        renamed: false,
    };
    let mut sending = Some(Sending::begin(&gw.connector, upstream, req.clone()).await?);
    loop {
        let chunk = match session.read_request_body().await {
            Ok(Some(chunk)) => chunk,
            Ok(None) => break,
            Err(e) => {
                abort(sending).await;
                return Err(GatewayError::BodyRead(e.etype().as_str().to_owned()));
            }
        };
        if relay.whole.len() + chunk.len() > limit {
            abort(sending).await;
            return Err(GatewayError::PayloadTooLarge { limit });
        }
        let Some(out) = relay.push(&chunk) else {
            continue;
        };
        if let Some(s) = sending.as_mut()
            && let Err(e) = s.write(upstream, out).await
        {
            // A pooled connection the upstream had closed: the rest is kept and the whole
            // body sent again on a new one once it is in.
            match sending.take() {
                Some(s) if s.reused() => s.abort().await,
                other => {
                    abort(other).await;
                    return Err(e.into());
                }
            }
        }
    }
    rec.request_bytes = relay.whole.len();
    let (whole, rest) = relay.finish();
    let target = match verify(gw, session, rec, caller, plan, &whole, &relay) {
        Ok(target) => target,
        Err(e) => {
            abort(sending).await;
            return Err(e);
        }
    };
    if let Some(s) = sending {
        let reused = s.reused();
        match s.finish(upstream, rest).await {
            Ok(exchange) => return Ok(exchange),
            Err((e, untouched)) if !(untouched && reused) => return Err(e.into()),
            Err((e, _)) => {
                tracing::debug!(server = %upstream.name, error = %e, "pooled connection was stale, sending the streamed body again on a new one");
            }
        }
    }
    let body = target.body;
    let mut req = req;
    req.remove_header(&http::header::TRANSFER_ENCODING);
    req.insert_header(http::header::CONTENT_LENGTH, body.len().to_string())
        .map_err(|_| UpstreamError::Protocol {
            server: upstream.name.clone(),
            reason: "invalid request header".into(),
        })?;
    Ok(Exchange::start(&gw.connector, upstream, req, body).await?)
}

async fn abort(sending: Option<Sending>) {
    if let Some(s) = sending {
        s.abort().await;
    }
}

/// The checks of a buffered call over the complete body, plus: the body routes where the
/// header did, and the name was replaced where the scan finds it.
fn verify(
    gw: &Gateway,
    session: &Session,
    rec: &mut RequestRecord,
    caller: &Caller,
    plan: &Plan,
    whole: &Bytes,
    relay: &Relay,
) -> Result<Target, GatewayError> {
    let envelope = match jsonrpc::scan(whole, gw.shared.config.proxy.max_json_depth)? {
        Scanned::Single(e) => e,
        Scanned::Batch => return Err(GatewayError::Batch),
    };
    rec.id = envelope.id.map(|s| whole.slice(s.start..s.end));
    modern::validate(&session.req_header().headers, whole, &envelope)?;
    if envelope.kind != MessageKind::Request {
        return Err(GatewayError::NotInRevision(
            "a tools/call must be a request with an id",
        ));
    }
    let target = gw.route(
        session,
        "tools/call",
        (whole, &envelope),
        &plan.catalog,
        caller,
        rec,
    )?;
    let name_span = envelope.name.as_ref().map(|n| n.span);
    let renamed_there = match (&plan.rename, relay.locator.located()) {
        (None, _) => true,
        (Some(_), Located::Found(span)) => Some(span) == name_span,
        (Some(_), _) => false,
    };
    if target.server != plan.server || !renamed_there {
        return Err(GatewayError::HeaderMismatch(
            "the request body does not name the tool its Mcp-Name header routed it to".into(),
        ));
    }
    Ok(target)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// What the upstream receives when `body` arrives in chunks of `size`.
    fn relayed(body: &[u8], size: usize, rename: &[u8]) -> Vec<u8> {
        let mut relay = Relay {
            whole: BytesMut::new(),
            passed: 0,
            locator: NameLocator::default(),
            rename: Some(rename.into()),
            renamed: false,
        };
        let mut out = Vec::new();
        for chunk in body.chunks(size) {
            if let Some(b) = relay.push(chunk) {
                out.extend_from_slice(&b);
            }
            // Until the name is in, the last byte is held back (after it, the chunked body's
            // terminator is what the upstream waits for).
            assert!(relay.renamed || relay.passed < relay.whole.len());
        }
        out.extend_from_slice(&relay.finish().1);
        out
    }

    #[test]
    fn the_name_is_replaced_wherever_the_chunks_split_it() {
        let args = "x".repeat(300);
        let bodies = [
            format!(
                r#"{{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{{"name":"plain__echo","arguments":{{"text":"{args}"}}}}}}"#
            ),
            format!(
                r#"{{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{{"arguments":{{"text":"{args}"}},"name":"plain__echo"}}}}"#
            ),
            format!(
                r#"{{"id":3,"jsonrpc":"2.0","method":"tools/call","params":{{"_meta":{{"io.modelcontextprotocol/clientCapabilities":{{}},"io.modelcontextprotocol/clientInfo":{{"name":"raw","version":"0"}},"io.modelcontextprotocol/protocolVersion":"2026-07-28"}},"arguments":{{"text":"{}"}},"name":"plain__echo"}}}}"#,
                "x".repeat(1 << 20)
            ),
        ];
        for body in &bodies {
            let want = body.replace(r#""plain__echo""#, r#""echo""#);
            for size in [1, 2, 3, 5, 13, 64, 100, 1000, 16384, 65536] {
                let got = relayed(body.as_bytes(), size, br#""echo""#);
                assert!(
                    got == want.as_bytes(),
                    "chunks of {size}: {} vs {}",
                    got.len(),
                    want.len()
                );
            }
        }
    }
}
