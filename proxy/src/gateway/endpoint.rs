//! The HTTP shape of an MCP endpoint: which path names which gateway, the headers a POST must
//! carry, and reading the body within `max_body_bytes`.

use bytes::{Bytes, BytesMut};
use http::Uri;
use pingora::http::{RequestHeader, ResponseHeader};
use pingora::proxy::Session;

use crate::error::{GatewayError, truncated};

/// The gateway name in `/mcp/{gateway}` (a trailing slash is tolerated).
pub fn gateway_name(uri: &Uri) -> Result<&str, GatewayError> {
    let path = uri.path();
    path.strip_prefix("/mcp/")
        .map(|rest| rest.strip_suffix('/').unwrap_or(rest))
        .filter(|name| !name.is_empty() && !name.contains('/'))
        .ok_or_else(|| GatewayError::NotFound {
            path: truncated(path),
        })
}

/// `Accept` must allow JSON and SSE; `Content-Type` must be JSON.
pub fn check_post_headers(req: &RequestHeader) -> Result<(), GatewayError> {
    let accept = accept_values(req);
    if !(accepts(&accept, "application", "json") && accepts(&accept, "text", "event-stream")) {
        return Err(GatewayError::NotAcceptable(
            "both application/json and text/event-stream",
        ));
    }
    let content_type = req
        .headers
        .get(http::header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default();
    let essence = content_type.split(';').next().unwrap_or_default().trim();
    if !essence.eq_ignore_ascii_case("application/json") {
        return Err(GatewayError::UnsupportedMediaType);
    }
    Ok(())
}

/// Checks the headers of a GET that opens the standalone stream.
pub fn check_get_headers(req: &RequestHeader) -> Result<(), GatewayError> {
    if accepts(&accept_values(req), "text", "event-stream") {
        Ok(())
    } else {
        Err(GatewayError::NotAcceptable(
            "text/event-stream for the standalone stream",
        ))
    }
}

/// Every `Accept` header value that is text.
fn accept_values(req: &RequestHeader) -> Vec<&str> {
    req.headers
        .get_all(http::header::ACCEPT)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .collect()
}

/// Whether any media range in the `Accept` values allows `kind/sub` (q=0 excludes).
fn accepts(values: &[&str], kind: &str, sub: &str) -> bool {
    values.iter().flat_map(|v| v.split(',')).any(|range| {
        let mut parts = range.split(';');
        let media = parts.next().unwrap_or_default().trim();
        let refused = parts.any(|p| {
            let p = p.trim();
            p.strip_prefix("q=")
                .and_then(|q| q.trim().parse::<f32>().ok())
                .is_some_and(|q| q <= 0.0)
        });
        let (t, s) = media.split_once('/').unwrap_or((media, ""));
        !refused
            && (t == "*" || t.eq_ignore_ascii_case(kind))
            && (s == "*" || s.eq_ignore_ascii_case(sub))
    })
}

/// Reads the whole body, refusing more than `limit` bytes (early, from Content-Length, when
/// it is declared). Answers `Expect: 100-continue` first so such clients send the body.
pub async fn read_body(session: &mut Session, limit: usize) -> Result<Bytes, GatewayError> {
    let declared = session
        .req_header()
        .headers
        .get(http::header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim().parse::<usize>().ok());
    if declared.is_some_and(|n| n > limit) {
        return Err(GatewayError::PayloadTooLarge { limit });
    }
    continue_if_expected(session).await?;
    let mut body = BytesMut::with_capacity(declared.unwrap_or(4096).min(limit));
    loop {
        match session.read_request_body().await {
            Ok(Some(chunk)) => {
                if body.len() + chunk.len() > limit {
                    return Err(GatewayError::PayloadTooLarge { limit });
                }
                body.extend_from_slice(&chunk);
            }
            Ok(None) => return Ok(body.freeze()),
            Err(e) => return Err(GatewayError::BodyRead(e.etype().as_str().to_owned())),
        }
    }
}

/// Answers `Expect: 100-continue` so such a client sends its body.
pub async fn continue_if_expected(session: &mut Session) -> Result<(), GatewayError> {
    let expects_continue = session
        .req_header()
        .headers
        .get(http::header::EXPECT)
        .is_some_and(|v| v.as_bytes().eq_ignore_ascii_case(b"100-continue"));
    if expects_continue {
        let resp = ResponseHeader::build(100, Some(0))
            .map_err(|e| GatewayError::BodyRead(e.etype().as_str().to_owned()))?;
        session
            .write_response_header(Box::new(resp), false)
            .await
            .map_err(|e| GatewayError::BodyRead(e.etype().as_str().to_owned()))?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn gateway_name_comes_from_the_mcp_path() {
        let name = |p: &str| {
            gateway_name(&p.parse::<Uri>().unwrap())
                .ok()
                .map(str::to_owned)
        };
        assert_eq!(name("/mcp/dev"), Some("dev".into()));
        assert_eq!(name("/mcp/dev/"), Some("dev".into()));
        assert_eq!(name("/mcp/dev?x=1"), Some("dev".into()));
        assert_eq!(name("/mcp/"), None);
        assert_eq!(name("/mcp/a/b"), None);
        assert_eq!(name("/other"), None);
    }

    #[test]
    fn accept_must_allow_json_and_sse() {
        assert!(accepts(
            &["application/json, text/event-stream"],
            "text",
            "event-stream"
        ));
        assert!(accepts(&["*/*"], "application", "json"));
        assert!(accepts(
            &["application/*", "text/*"],
            "text",
            "event-stream"
        ));
        assert!(!accepts(&["application/json"], "text", "event-stream"));
        assert!(!accepts(
            &["text/event-stream;q=0, application/json"],
            "text",
            "event-stream"
        ));
        assert!(!accepts(&[], "application", "json"));
    }
}
