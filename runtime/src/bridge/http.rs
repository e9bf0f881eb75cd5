//! The Streamable HTTP endpoint at `/mcp`: POST (requests, notifications, answers to the
//! child's requests), GET (a session's standalone stream), DELETE (end a session).
//!
//! Every refusal is mapped here, in [`Refusal`], to an HTTP status and a JSON-RPC error body.

use std::convert::Infallible;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http::{HeaderMap, HeaderValue, Method, Request, Response, StatusCode, header};
use http_body_util::BodyExt;
use hyper::body::Incoming;
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use tokio::net::TcpListener;

use super::BridgeError;
use super::message::{Envelope, Kind, MessageError, error_response, is_success};
use super::mux::{Call, SERVER_ERROR, SessionId, Shared};
use super::sse::{Answer, Body, SseBody, full};
use crate::until_true;

const SESSION_HEADER: &str = "mcp-session-id";

/// Accepts connections until the task is aborted or the bridge drains; when it drains, idle
/// connections close and busy ones close after their current response.
pub(crate) async fn serve(shared: Arc<Shared>, listener: TcpListener) {
    let mut draining = shared.draining.subscribe();
    loop {
        let permit = tokio::select! {
            permit = shared.connections.clone().acquire_owned() => permit,
            _ = until_true(&mut draining) => return,
        };
        let Ok(permit) = permit else {
            return;
        };
        let accepted = tokio::select! {
            accepted = listener.accept() => accepted,
            _ = until_true(&mut draining) => return,
        };
        let stream = match accepted {
            Ok((stream, _)) => stream,
            Err(e) => {
                // Out of descriptors and the like: pause instead of spinning on the error.
                tracing::warn!("[{}] accept failed: {e}", shared.config.name);
                tokio::time::sleep(Duration::from_millis(50)).await;
                continue;
            }
        };
        let _ = stream.set_nodelay(true);
        let shared = shared.clone();
        tokio::spawn(async move {
            let mut draining = shared.draining.subscribe();
            let handler = shared.clone();
            let service = service_fn(move |req| {
                let shared = handler.clone();
                async move { Ok::<_, Infallible>(handle(&shared, req).await) }
            });
            let conn = http1::Builder::new()
                .keep_alive(true)
                .serve_connection(TokioIo::new(stream), service);
            tokio::pin!(conn);
            tokio::select! {
                _ = conn.as_mut() => {}
                _ = until_true(&mut draining) => {
                    conn.as_mut().graceful_shutdown();
                    let _ = conn.await;
                }
            }
            drop(permit);
        });
    }
}

async fn handle(shared: &Arc<Shared>, req: Request<Incoming>) -> Response<Body> {
    if req.uri().path() != "/mcp" {
        return Refusal::http(StatusCode::NOT_FOUND, "not found: the MCP endpoint is /mcp").into();
    }
    if !origin_allowed(shared, req.headers()) {
        return Refusal::http(StatusCode::FORBIDDEN, "forbidden: foreign Origin").into();
    }
    let result = match *req.method() {
        Method::POST => post(shared, req).await,
        Method::GET => get(shared, req.headers()),
        Method::DELETE => delete(shared, req.headers()),
        _ => Err(Refusal::http(
            StatusCode::METHOD_NOT_ALLOWED,
            "method not allowed: use POST, GET or DELETE",
        )),
    };
    result.unwrap_or_else(Response::from)
}

async fn post(shared: &Arc<Shared>, req: Request<Incoming>) -> Result<Response<Body>, Refusal> {
    let headers = req.headers().clone();
    if let Some(ct) = headers.get(header::CONTENT_TYPE)
        && !ct.as_bytes().starts_with(b"application/json")
    {
        return Err(Refusal::http(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "unsupported media type: send application/json",
        ));
    }
    let accepts_sse = header_has(&headers, header::ACCEPT, "text/event-stream");
    let max = shared.config.max_message_bytes;
    let body = read_body(req.into_body(), max).await?;
    let text = std::str::from_utf8(&body)
        .map_err(|_| Refusal::rpc(StatusCode::BAD_REQUEST, -32700, "body is not UTF-8", b""))?;
    let envelope = Envelope::parse(text).map_err(Refusal::from)?;
    let id = envelope
        .id
        .clone()
        .map_or(&b""[..], |s| &text.as_bytes()[s]);
    let method = envelope.method.as_deref().unwrap_or_default();

    if envelope.kind == Kind::Request && method == "initialize" {
        let answer = shared
            .initialize(text, &envelope)
            .await
            .map_err(|e| Refusal::bridge(e, id))?;
        let mut resp = json(answer.clone());
        if is_success(&answer) {
            let session = shared.open_session();
            if let Ok(v) = HeaderValue::from_str(session.as_str()) {
                resp.headers_mut().insert(SESSION_HEADER, v);
            }
        }
        return Ok(resp);
    }
    let session = match session_of(&headers) {
        Ok(s) => s,
        Err(_) if method == "server/discover" => {
            // The 2026-07-28 probe: -32601 tells a client to fall back to initialize.
            let answer = error_response(id, -32601, "Method not found: server/discover");
            return Ok(json(answer.into()));
        }
        Err(e) => return Err(e.with_id(id)),
    };
    if !shared.touch_session(&session) {
        return Err(Refusal::session_not_found(id));
    }
    match envelope.kind {
        Kind::Request => {
            let running = shared.running().await.map_err(|e| Refusal::bridge(e, id))?;
            let call = shared
                .start_call(&running, text, &envelope, Some(session), accepts_sse)
                .await
                .map_err(|e| Refusal::bridge(e, id))?;
            Ok(respond(shared, call, id).await)
        }
        Kind::Notification => {
            let line = match method {
                // The bridge sent it to the child itself, once, after the first handshake.
                "notifications/initialized" => None,
                "notifications/cancelled" => shared.rewrite_cancel(text, &envelope, &session),
                _ => Some([text.as_bytes(), b"\n"].concat()),
            };
            if let Some(line) = line {
                let running = shared.running().await.map_err(|e| Refusal::bridge(e, id))?;
                let _ = running.stdin.send(line.into()).await;
            }
            Ok(accepted())
        }
        Kind::Response => {
            let current = match &*shared.state.borrow() {
                super::mux::ChildState::Ready(r) => Some(r.clone()),
                _ => None,
            };
            if let Some(running) = current
                && let Some(line) =
                    shared.rewrite_answer(text, &envelope, &session, running.generation)
            {
                let _ = running.stdin.send(line.into()).await;
            }
            Ok(accepted())
        }
    }
}

/// The whole body, at most `max` bytes. A larger one is read on (and dropped) up to four times
/// the bound before the 413, so the client gets to read the refusal instead of a reset.
async fn read_body(mut body: Incoming, max: usize) -> Result<Bytes, Refusal> {
    let mut buf = Vec::new();
    let mut seen = 0usize;
    while let Some(frame) = body.frame().await {
        let frame = frame.map_err(|_| {
            Refusal::http(
                StatusCode::BAD_REQUEST,
                "the request body could not be read",
            )
        })?;
        let Ok(data) = frame.into_data() else {
            continue;
        };
        seen = seen.saturating_add(data.len());
        if seen <= max {
            buf.extend_from_slice(&data);
        } else if seen > max.saturating_mul(4) {
            break;
        }
    }
    if seen > max {
        return Err(Refusal::http(
            StatusCode::PAYLOAD_TOO_LARGE,
            &format!("request body larger than {max} bytes"),
        ));
    }
    Ok(buf.into())
}

/// Waits for the call's first message: the answer alone goes out as JSON; anything before it
/// turns the response into an event stream (when the client takes one).
async fn respond(shared: &Shared, call: Call, id: &[u8]) -> Response<Body> {
    let Call {
        mut interim,
        mut done,
        guard,
    } = call;
    let bound = shared.config.request_timeout;
    let mut deadline = Box::pin(tokio::time::sleep(bound));
    let timeout_message = Bytes::from(error_response(
        id,
        SERVER_ERROR,
        &BridgeError::Timeout(bound).to_string(),
    ));
    tokio::select! {
        biased;
        answer = &mut done => match answer {
            Ok(message) => json(message),
            Err(_) => Refusal::bridge(BridgeError::NotRunning, id).into(),
        },
        Some(first) = interim.recv() => {
            let answer = Answer { done, deadline, timeout_message, _guard: guard };
            let mut resp = Response::new(SseBody::response(first, interim, answer));
            set_sse_headers(resp.headers_mut());
            resp
        }
        _ = &mut deadline => Refusal::bridge(BridgeError::Timeout(bound), id).into(),
    }
}

fn get(shared: &Shared, headers: &HeaderMap) -> Result<Response<Body>, Refusal> {
    if !header_has(headers, header::ACCEPT, "text/event-stream") {
        return Err(Refusal::http(
            StatusCode::NOT_ACCEPTABLE,
            "not acceptable: a GET opens an event stream (Accept: text/event-stream)",
        ));
    }
    let session = session_of(headers)?;
    let events = shared
        .open_stream(&session)
        .ok_or_else(|| Refusal::session_not_found(b""))?;
    let mut resp = Response::new(SseBody::standalone(events));
    set_sse_headers(resp.headers_mut());
    Ok(resp)
}

fn delete(shared: &Shared, headers: &HeaderMap) -> Result<Response<Body>, Refusal> {
    let session = session_of(headers)?;
    if !shared.close_session(&session) {
        return Err(Refusal::session_not_found(b""));
    }
    let mut resp = Response::new(full(Bytes::new()));
    *resp.status_mut() = StatusCode::OK;
    Ok(resp)
}

fn session_of(headers: &HeaderMap) -> Result<SessionId, Refusal> {
    let value = headers.get(SESSION_HEADER).ok_or_else(|| {
        Refusal::rpc(
            StatusCode::BAD_REQUEST,
            -32600,
            "Bad Request: Mcp-Session-Id header is required",
            b"",
        )
    })?;
    SessionId::parse(value.as_bytes()).ok_or_else(|| Refusal::session_not_found(b""))
}

fn json(message: Bytes) -> Response<Body> {
    let mut resp = Response::new(full(message));
    resp.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    resp
}

fn accepted() -> Response<Body> {
    let mut resp = Response::new(full(Bytes::new()));
    *resp.status_mut() = StatusCode::ACCEPTED;
    resp
}

fn set_sse_headers(headers: &mut HeaderMap) {
    headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/event-stream"),
    );
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
}

fn header_has(headers: &HeaderMap, name: header::HeaderName, wanted: &str) -> bool {
    headers
        .get_all(name)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .any(|v| v.contains(wanted) || v.contains("*/*"))
}

/// A bridge on a loopback address serves only pages of loopback origins: a web page elsewhere
/// must not reach a local server by DNS rebinding. On other addresses the fronting gateway
/// checks origins.
fn origin_allowed(shared: &Shared, headers: &HeaderMap) -> bool {
    let Some(origin) = headers.get(header::ORIGIN) else {
        return true;
    };
    if !shared.addr.ip().is_loopback() {
        return true;
    }
    let Ok(origin) = origin.to_str() else {
        return false;
    };
    let host_port = origin.split_once("://").map_or(origin, |(_, rest)| rest);
    let host = if let Some(v6) = host_port.strip_prefix('[') {
        v6.split_once(']').map_or("", |(h, _)| h)
    } else {
        host_port.split(':').next().unwrap_or_default()
    };
    matches!(host, "localhost" | "127.0.0.1" | "::1")
}

/// A refused request: HTTP status plus a JSON-RPC error.
#[derive(Debug)]
pub(crate) struct Refusal {
    status: StatusCode,
    code: i64,
    message: String,
    id: Vec<u8>,
}

impl Refusal {
    fn rpc(status: StatusCode, code: i64, message: &str, id: &[u8]) -> Refusal {
        Refusal {
            status,
            code,
            message: message.to_owned(),
            id: id.to_vec(),
        }
    }

    fn http(status: StatusCode, message: &str) -> Refusal {
        Refusal::rpc(status, -32600, message, b"")
    }

    fn session_not_found(id: &[u8]) -> Refusal {
        Refusal::rpc(StatusCode::NOT_FOUND, -32001, "Session not found", id)
    }

    fn with_id(mut self, id: &[u8]) -> Refusal {
        self.id = id.to_vec();
        self
    }

    fn bridge(e: BridgeError, id: &[u8]) -> Refusal {
        let status = match e {
            BridgeError::Timeout(_) => StatusCode::GATEWAY_TIMEOUT,
            _ => StatusCode::SERVICE_UNAVAILABLE,
        };
        Refusal::rpc(status, SERVER_ERROR, &e.to_string(), id)
    }
}

impl From<MessageError> for Refusal {
    fn from(e: MessageError) -> Refusal {
        let code = match e {
            MessageError::Malformed(_) => -32700,
            _ => -32600,
        };
        Refusal::rpc(StatusCode::BAD_REQUEST, code, &e.to_string(), b"")
    }
}

impl From<Refusal> for Response<Body> {
    fn from(r: Refusal) -> Response<Body> {
        let mut resp = json(error_response(&r.id, r.code, &r.message).into());
        *resp.status_mut() = r.status;
        resp
    }
}
