//! The routing step: which upstream owns a `tools/call`, `prompts/get` or `resources/read`,
//! and the body it must see. Tools and prompts are found by their prefixed name and the name's
//! bytes are replaced by the upstream's own; resources go to the server that owns the URI,
//! with the body untouched.

use bytes::Bytes;

use super::RequestRecord;
use super::caller::Caller;
use super::forward::Target;
use crate::catalog::GatewayCatalog;
use crate::error::{GatewayError, truncated};
use crate::jsonrpc::{self, Envelope};

/// The upstream and body for a routed method.
pub fn target(
    method: &str,
    envelope: &Envelope<'_>,
    body: &Bytes,
    catalog: &GatewayCatalog,
    caller: &Caller,
    rec: &mut RequestRecord,
) -> Result<Target, GatewayError> {
    let gateway = || catalog.name.as_str().to_owned();
    if method == "resources/read" {
        let uri = envelope
            .uri
            .as_ref()
            .ok_or_else(|| GatewayError::InvalidParams("resources/read needs params.uri".into()))?;
        rec.target = Some(truncated(&uri.value));
        let server =
            catalog
                .route_resource(&uri.value)
                .ok_or_else(|| GatewayError::UnknownResource {
                    uri: truncated(&uri.value),
                    gateway: gateway(),
                })?;
        return Ok(Target {
            server,
            body: body.clone(),
        });
    }
    let field = envelope
        .name
        .as_ref()
        .ok_or_else(|| GatewayError::InvalidParams(format!("{method} needs params.name")))?;
    let name = &*field.value;
    rec.target = Some(truncated(name));
    let route = if method == "tools/call" {
        catalog
            .route_tool(name)
            .ok_or_else(|| GatewayError::UnknownTool {
                name: truncated(name),
                gateway: gateway(),
                similar: catalog
                    .similar_tools(name, 3, caller.grants)
                    .into_iter()
                    .map(str::to_owned)
                    .collect(),
            })?
    } else {
        catalog
            .route_prompt(name)
            .ok_or_else(|| GatewayError::UnknownPrompt {
                name: truncated(name),
                gateway: gateway(),
            })?
    };
    if method == "tools/call" {
        rec.tool_metrics = Some(route.metrics.clone());
    }
    if let Some(grants) = caller.grants
        && !route.decision.allows(grants)
    {
        return Err(refused(name, catalog, caller, route.decision));
    }
    // The span came from scanning this very body, so the splice cannot fail but for a bug.
    let body = jsonrpc::replace_span(body, field.span, &route.upstream_literal)
        .map_err(|e| GatewayError::Internal(e.to_string()))?;
    Ok(Target {
        server: route.server,
        body,
    })
}

/// The 403 for a tool the caller's claims do not allow.
fn refused(
    name: &str,
    catalog: &GatewayCatalog,
    caller: &Caller,
    decision: sluice_auth::Decision,
) -> GatewayError {
    let (reason, scope) = match &caller.policy {
        Some(policy) => {
            let reason = match decision {
                sluice_auth::Decision::Rule(n) => policy.rules.describe(n),
                _ => "no rule of this gateway allows it".to_owned(),
            };
            let scope = (!policy.scopes.is_empty()).then(|| policy.scopes.join(" "));
            (reason, scope)
        }
        None => ("refused".to_owned(), None),
    };
    GatewayError::Forbidden {
        tool: truncated(name),
        gateway: catalog.name.as_str().to_owned(),
        reason,
        // Filled in by the gateway, which has the request's Host.
        metadata_url: String::new(),
        scope,
    }
}
