//! The OAuth documents and endpoints served beside the gateways, so that official MCP clients
//! can find out how to log in:
//!
//! - `GET /.well-known/oauth-protected-resource/mcp/{gateway}`: RFC 9728 metadata naming the
//!   gateway's authorization servers (its providers' issuers, and Sluice's own issuer when the
//!   gateway accepts ID-JAG tokens) and scopes; every 401 and 403 points at it in
//!   `WWW-Authenticate: Bearer resource_metadata="…"`.
//! - `GET /.well-known/oauth-authorization-server`, `GET /.well-known/jwks.json` and
//!   `POST /oauth/token`: Sluice's own issuer (RFC 8414 metadata, its ES256 key, and the ID-JAG
//!   token endpoint), when `[auth.issuer]` is configured.
//!
//! URLs are built from `auth.public_url` when it is set; otherwise from the request's `Host`
//! (and `X-Forwarded-Proto`), kept to characters a host may have.

use bytes::Bytes;
use http::Method;
use pingora::proxy::Session;
use serde_json::json;
use sluice_auth::GatewayPolicy;

use super::{Gateway, RequestRecord, endpoint, write_failed};
use crate::error::{GatewayError, truncated};
use crate::reply;
use crate::session::unix_now;

const PRM_PREFIX: &str = "/.well-known/oauth-protected-resource";
/// Largest token request body.
const MAX_TOKEN_REQUEST: usize = 64 * 1024;

/// Whether `path` is one of the OAuth endpoints.
pub fn is_oauth_path(path: &str) -> bool {
    path.starts_with("/.well-known/") || path.starts_with("/oauth/")
}

/// Serves an OAuth document or the token endpoint.
pub async fn serve(
    gw: &Gateway,
    session: &mut Session,
    rec: &mut RequestRecord,
) -> Result<(), GatewayError> {
    let path = session.req_header().uri.path().to_owned();
    let method = session.req_header().method.clone();
    rec.method = Some(format!("{method} {}", truncated(&path)));
    let not_found = || GatewayError::NotFound {
        path: truncated(&path),
    };
    if let Some(rest) = path.strip_prefix(PRM_PREFIX) {
        only(&method, Method::GET)?;
        let name = rest.strip_prefix("/mcp/").ok_or_else(not_found)?;
        let name = name.strip_suffix('/').unwrap_or(name);
        let policy = gw.shared.policies.get(name).ok_or_else(not_found)?;
        rec.gateway = Some(name.to_owned());
        let base = base_url(session, policy);
        let mut doc = json!({
            "resource": format!("{base}/mcp/{name}"),
            "authorization_servers": policy.authorization_servers,
            "bearer_methods_supported": ["header"],
            "resource_name": format!("Sluice gateway {name}"),
        });
        if !policy.scopes.is_empty() {
            doc["scopes_supported"] = json!(policy.scopes);
        }
        return document(session, serde_json::to_vec(&doc).unwrap_or_default()).await;
    }
    let issuer = gw
        .shared
        .auth
        .as_ref()
        .and_then(|a| a.issuer().map(|i| (a, i)));
    match (path.as_str(), issuer) {
        (
            "/.well-known/oauth-authorization-server" | "/.well-known/openid-configuration",
            Some((_, i)),
        ) => {
            only(&method, Method::GET)?;
            document(session, i.metadata_document()).await
        }
        ("/.well-known/jwks.json", Some((_, i))) => {
            only(&method, Method::GET)?;
            document(session, i.jwks_document()).await
        }
        ("/oauth/token", Some((auth, i))) => {
            only(&method, Method::POST)?;
            let body = endpoint::read_body(session, MAX_TOKEN_REQUEST).await?;
            let basic = session
                .req_header()
                .headers
                .get(http::header::AUTHORIZATION)
                .map(|v| v.as_bytes().to_vec());
            let (status, body) = match i.exchange(auth, basic.as_deref(), &body, unix_now()).await {
                Ok(b) => (200, b),
                Err(e) => {
                    rec.outcome = "token_refused";
                    rec.error = Some(format!("{}: {}", e.error, e.description));
                    (e.status, e.body())
                }
            };
            reply::json(
                session,
                status,
                Bytes::from(body),
                &[("pragma", "no-cache")],
            )
            .await
            .map_err(write_failed)
        }
        ("/oauth/authorize", Some(_)) => {
            let body = json!({
                "error": "unsupported_response_type",
                "error_description": "Sluice grants tokens only for identity assertions (jwt-bearer at /oauth/token)",
            });
            reply::json(session, 400, Bytes::from(body.to_string()), &[])
                .await
                .map_err(write_failed)
        }
        _ => Err(not_found()),
    }
}

fn only(method: &Method, allowed: Method) -> Result<(), GatewayError> {
    if *method == allowed {
        Ok(())
    } else {
        Err(GatewayError::MethodNotAllowed {
            method: truncated(method.as_str()),
            allow: if allowed == Method::GET {
                "GET"
            } else {
                "POST"
            },
        })
    }
}

async fn document(session: &mut Session, body: Vec<u8>) -> Result<(), GatewayError> {
    reply::json(session, 200, Bytes::from(body), &[])
        .await
        .map_err(write_failed)
}

/// The protected-resource metadata URL of `policy`'s gateway.
pub fn metadata_url(session: &Session, policy: &GatewayPolicy) -> String {
    format!(
        "{}{PRM_PREFIX}/mcp/{}",
        base_url(session, policy),
        policy.gateway
    )
}

/// `scheme://host[:port]` clients use to reach this proxy.
fn base_url(session: &Session, policy: &GatewayPolicy) -> String {
    if let Some(resource) = &policy.resource
        && let Some(base) = resource.strip_suffix(&format!("/mcp/{}", policy.gateway))
    {
        return base.to_owned();
    }
    let headers = &session.req_header().headers;
    let host = headers
        .get(http::header::HOST)
        .and_then(|h| h.to_str().ok())
        .or_else(|| session.req_header().uri.authority().map(|a| a.as_str()))
        .filter(|h| {
            !h.is_empty()
                && h.len() <= 255
                && h.bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b"-.:[]".contains(&b))
        })
        .unwrap_or("localhost");
    let scheme = match headers
        .get("x-forwarded-proto")
        .and_then(|h| h.to_str().ok())
    {
        Some(p) if p.eq_ignore_ascii_case("https") => "https",
        _ => "http",
    };
    format!("{scheme}://{host}")
}
