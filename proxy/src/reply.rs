//! Writing the gateway's own responses: JSON-RPC results assembled from pre-serialised parts,
//! and errors mapped from [`GatewayError`]. The client's JSON-RPC `id` is copied as raw bytes.

use bytes::{BufMut, Bytes, BytesMut};
use pingora::http::ResponseHeader;
use pingora::proxy::Session;

use crate::error::GatewayError;

/// `{"jsonrpc":"2.0","id":<id>,"result":<result>}` from raw, already valid JSON parts.
pub fn result_body(id: &[u8], result: &[u8]) -> Bytes {
    let mut b = BytesMut::with_capacity(36 + id.len() + result.len());
    b.put_slice(br#"{"jsonrpc":"2.0","id":"#);
    b.put_slice(id);
    b.put_slice(br#","result":"#);
    b.put_slice(result);
    b.put_u8(b'}');
    b.freeze()
}

/// A JSON-RPC error object; `id` is `null` when the request's id is unknown.
pub fn error_body(id: Option<&[u8]>, code: i64, message: &str) -> Bytes {
    error_body_with(id, code, message, None)
}

/// [`error_body`] with the error's `data`.
pub fn error_body_with(
    id: Option<&[u8]>,
    code: i64,
    message: &str,
    data: Option<&serde_json::Value>,
) -> Bytes {
    let message = serde_json::to_string(message).unwrap_or_else(|_| "\"error\"".to_owned());
    let id = id.unwrap_or(b"null");
    let mut b = BytesMut::with_capacity(64 + id.len() + message.len());
    b.put_slice(br#"{"jsonrpc":"2.0","id":"#);
    b.put_slice(id);
    b.put_slice(br#","error":{"code":"#);
    b.put_slice(code.to_string().as_bytes());
    b.put_slice(br#","message":"#);
    b.put_slice(message.as_bytes());
    if let Some(data) = data.and_then(|d| serde_json::to_vec(d).ok()) {
        b.put_slice(br#","data":"#);
        b.put_slice(&data);
    }
    b.put_slice(b"}}");
    b.freeze()
}

/// Writes a complete JSON response.
pub async fn json(
    session: &mut Session,
    status: u16,
    body: Bytes,
    headers: &[(&'static str, &str)],
) -> pingora::Result<()> {
    let mut resp = ResponseHeader::build(status, Some(4 + headers.len()))?;
    resp.insert_header("content-type", "application/json")?;
    resp.insert_header("content-length", body.len().to_string())?;
    resp.insert_header("cache-control", "no-store")?;
    for (k, v) in headers {
        resp.insert_header(*k, *v)?;
    }
    session.write_response_header(Box::new(resp), false).await?;
    session.write_response_body(Some(body), true).await
}

/// Starts a `200` event stream (`text/event-stream`, not cached); events follow as body chunks.
pub async fn event_stream(session: &mut Session) -> pingora::Result<()> {
    let mut resp = ResponseHeader::build(200, Some(2))?;
    resp.insert_header("content-type", "text/event-stream")?;
    resp.insert_header("cache-control", "no-cache")?;
    session.write_response_header(Box::new(resp), false).await
}

/// Writes `202 Accepted` with no body (the answer to notifications and responses).
pub async fn accepted(session: &mut Session) -> pingora::Result<()> {
    let mut resp = ResponseHeader::build(202, Some(1))?;
    resp.insert_header("content-length", "0")?;
    session.write_response_header(Box::new(resp), true).await
}

/// Writes `err` as HTTP status plus JSON-RPC error object. For a 2026-07-28 client
/// (`modern`) a JSON-RPC-level error carries the status that revision gives its code (400 for
/// invalid params, 404 for an unknown method) instead of 200.
pub async fn error(
    session: &mut Session,
    id: Option<&[u8]>,
    err: &GatewayError,
    modern: bool,
) -> pingora::Result<()> {
    let body = error_body_with(
        id,
        err.jsonrpc_code(),
        &err.to_string(),
        err.data().as_ref(),
    );
    let status = match err.http_status() {
        200 if modern => crate::modern::http_status_of(err.jsonrpc_code()).unwrap_or(200),
        s => s,
    };
    let allow = match err {
        GatewayError::MethodNotAllowed { allow, .. } => Some(*allow),
        _ => None,
    };
    if status == 413 {
        // The unread rest of the body makes the connection unusable.
        session.set_keepalive(None);
    }
    if let GatewayError::RateLimited { limited, .. } = err {
        // Whole seconds, rounded up, so a client that waits this long is let through.
        let secs =
            limited.retry_after.as_secs() + u64::from(limited.retry_after.subsec_nanos() > 0);
        return json(
            session,
            status,
            body,
            &[("retry-after", &secs.max(1).to_string())],
        )
        .await;
    }
    if let GatewayError::Overloaded { .. } = err {
        return json(session, status, body, &[("retry-after", "1")]).await;
    }
    if let Some(challenge) = err.challenge() {
        return json(session, status, body, &[("www-authenticate", &challenge)]).await;
    }
    match allow {
        Some(a) => json(session, status, body, &[("allow", a)]).await,
        None => json(session, status, body, &[]).await,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn result_and_error_bodies_are_valid_json_rpc() {
        let r: serde_json::Value =
            serde_json::from_slice(&result_body(br#""a-1""#, br#"{"tools":[]}"#)).unwrap();
        assert_eq!(r["id"], "a-1");
        assert_eq!(r["result"]["tools"], serde_json::json!([]));
        let e: serde_json::Value =
            serde_json::from_slice(&error_body(None, -32700, "bad \"json\"\n")).unwrap();
        assert_eq!(e["id"], serde_json::Value::Null);
        assert_eq!(e["error"]["code"], -32700);
        assert_eq!(e["error"]["message"], "bad \"json\"\n");
    }
}
