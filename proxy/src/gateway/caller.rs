//! The authentication step: who is calling this gateway, and which tools they may use.
//!
//! A gateway without `[gateways.auth]` has anonymous callers who see every tool. With it, the
//! request's bearer token goes to the [`sluice_auth::Authenticator`] (a warm token is one hash
//! lookup), and the caller's claims are checked against the gateway's rules once, giving the
//! [`Grants`] that filter `tools/list` and gate `tools/call`. The client's `Authorization`
//! header is never forwarded upstream by the forward step.

use std::sync::Arc;

use opentelemetry::KeyValue;
use opentelemetry::trace::{SpanKind, TraceContextExt};
use pingora::proxy::Session;
use sluice_auth::{GatewayPolicy, Grants, Identity};

use super::oauth;
use super::{Gateway, RequestRecord};
use crate::catalog::GatewayCatalog;
use crate::error::GatewayError;
use crate::session::unix_now;

/// The authenticated identity of a request.
#[derive(Debug, Clone, Default)]
pub struct Caller {
    /// Who it is; `None` on a gateway without authentication.
    pub identity: Option<Arc<Identity>>,
    /// Which rules the caller satisfies; `None` when the gateway has no rules.
    pub grants: Option<Grants>,
    /// The gateway's policy, for refusal messages.
    pub policy: Option<Arc<GatewayPolicy>>,
}

impl Caller {
    /// The caller as the credential step sees it, with the bearer token it presented.
    pub fn subject<'a>(&'a self, token: Option<&'a str>) -> sluice_auth::credential::Caller<'a> {
        sluice_auth::credential::Caller {
            identity: self.identity.as_deref(),
            token,
        }
    }
}

/// The request's bearer token, copied, when `credential` makes the upstream's credential
/// from it (token exchange, ID-JAG, JWT forwarding); `None` otherwise, so the common path
/// copies nothing.
pub fn token_for(
    credential: Option<&sluice_auth::UpstreamCredential>,
    req: &pingora::http::RequestHeader,
) -> Option<String> {
    credential.filter(|c| c.acts_for_caller())?;
    let header = req.headers.get(http::header::AUTHORIZATION)?;
    sluice_auth::bearer(Some(header.as_bytes()))
        .ok()
        .map(str::to_owned)
}

/// Authenticates the request for this gateway: records the caller, traces the step as an
/// `auth` span and counts a refusal by reason.
pub async fn authenticate(
    gw: &Gateway,
    session: &Session,
    catalog: &GatewayCatalog,
    rec: &mut RequestRecord,
) -> Result<Caller, GatewayError> {
    let (Some(policy), Some(auth)) = (
        gw.shared.policies.get(catalog.name.as_str()),
        gw.shared.auth.as_ref(),
    ) else {
        return Ok(Caller::default());
    };
    let span = rec
        .span
        .as_ref()
        .and_then(|cx| gw.shared.telemetry.child(cx, "auth", SpanKind::Internal));
    let header = session
        .req_header()
        .headers
        .get(http::header::AUTHORIZATION)
        .map(|v| v.as_bytes());
    let outcome = auth.authenticate(policy, header, unix_now()).await;
    if let Some(cx) = span {
        if let Err(error) = &outcome {
            cx.span()
                .set_attribute(KeyValue::new("error.type", error.reason()));
        }
        cx.span().end();
    }
    match outcome {
        Ok(identity) => {
            let grants = (!policy.rules.is_empty()).then(|| policy.rules.grants(&identity.claims));
            rec.caller = Some(identity.clone());
            Ok(Caller {
                identity: Some(identity),
                grants,
                policy: Some(policy.clone()),
            })
        }
        Err(error) => {
            catalog.metrics.auth_failure(&error);
            Err(GatewayError::Unauthorized {
                error,
                metadata_url: oauth::metadata_url(session, policy),
            })
        }
    }
}

/// Who the caller is for the per-caller rate limit: the identity (issuer and exact subject),
/// or on a gateway without auth the client's address.
pub fn limit_key<'a>(caller: &'a Caller, session: &Session) -> crate::rate_limit::CallerKey<'a> {
    use crate::rate_limit::CallerKey;
    match &caller.identity {
        Some(id) => CallerKey::Identity(
            id.issuer.as_deref(),
            id.subject().unwrap_or_else(|| id.display()),
        ),
        None => CallerKey::Address(
            session
                .client_addr()
                .and_then(|a| a.as_inet())
                .map_or(std::net::IpAddr::from([0, 0, 0, 0]), |a| a.ip()),
        ),
    }
}
