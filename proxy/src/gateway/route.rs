//! The routing step: which upstream owns a `tools/call`, `prompts/get` or `resources/read`,
//! and the body it must see. Tools and prompts are found by their shown name and the name's
//! bytes are replaced by the upstream's own (left alone when they already are, on a gateway
//! without prefixes); resources go to the server that owns the URI, with the body untouched.
//! A name the gateway withholds because two of its servers offer it is refused saying so. A
//! lazy gateway's `run_tool` is unwrapped here into the `tools/call` it stands for, and every
//! routed tool call then passes the gateway's tool-invocation policies and its tool rate
//! limit. A synthesised read-resource tool's call becomes a `resources/read` of its URI
//! ([`super::resource_call`]).

use std::borrow::Cow;

use bytes::{BufMut, Bytes, BytesMut};
use serde::Deserialize;
use serde_json::Value;
use serde_json::value::RawValue;
use sluice_config::Effect;

use super::RequestRecord;
use super::caller::Caller;
use super::forward::Target;
use crate::catalog::conflicts::Kind;
use crate::catalog::lazy::{LazyTools, RUN_TOOL};
use crate::catalog::{GatewayCatalog, Route};
use crate::error::{GatewayError, truncated};
use crate::jsonrpc::{self, Envelope};
use crate::policy::arguments::parse_strict;

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
    if method == "completion/complete" {
        return completion(envelope, body, catalog, rec);
    }
    if matches!(
        method,
        "resources/read" | "resources/subscribe" | "resources/unsubscribe"
    ) {
        let uri = envelope
            .uri
            .as_ref()
            .ok_or_else(|| GatewayError::InvalidParams(format!("{method} needs params.uri")))?;
        rec.target = Some(truncated(&uri.value));
        let server = catalog.route_resource(&uri.value).ok_or_else(|| {
            withheld(catalog, Kind::Resource, &uri.value).unwrap_or_else(|| {
                GatewayError::UnknownResource {
                    uri: truncated(&uri.value),
                    gateway: gateway(),
                }
            })
        })?;
        let uri = uri.value.to_string();
        return Ok(Target::new(server, body.clone()).routed(rec.modern, method, || Some(uri)));
    }
    let field = envelope
        .name
        .as_ref()
        .ok_or_else(|| GatewayError::InvalidParams(format!("{method} needs params.name")))?;
    let name = &*field.value;
    if method == "tools/call"
        && name == RUN_TOOL
        && let Some(lazy) = &catalog.lazy
    {
        return run_tool(envelope, body, catalog, lazy, caller, rec);
    }
    rec.target = Some(truncated(name));
    let route = if method == "tools/call" {
        catalog.route_tool(name).ok_or_else(|| {
            withheld(catalog, Kind::Tool, name).unwrap_or_else(|| GatewayError::UnknownTool {
                name: truncated(name),
                gateway: gateway(),
                similar: catalog
                    .similar_tools(name, 3, caller.grants)
                    .into_iter()
                    .map(str::to_owned)
                    .collect(),
            })
        })?
    } else {
        catalog.route_prompt(name).ok_or_else(|| {
            withheld(catalog, Kind::Prompt, name).unwrap_or_else(|| GatewayError::UnknownPrompt {
                name: truncated(name),
                gateway: gateway(),
            })
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
    if method == "tools/call" {
        let params = envelope.params.map(|s| &body[s.start..s.end]);
        controls(catalog, route, name, caller, rec, || {
            strict_arguments(
                params
                    .map(outer_params)
                    .transpose()?
                    .and_then(|p| p.arguments),
            )
        })?;
    }
    if let Some(uri) = route.read_uri.as_deref().filter(|_| method == "tools/call") {
        let meta = envelope.meta.map(|s| &body[s.start..s.end]);
        return Ok(read_resource(route, uri, meta, rec));
    }
    // A gateway without prefixes shows the upstream's own name: the body already says it
    // (unless the client escaped some of its characters), and is sent as it is.
    let body = if field.span.slice(body) == Some(&route.upstream_literal[..]) {
        body.clone()
    } else {
        // The span came from scanning this very body, so the splice cannot fail but for a bug.
        jsonrpc::replace_span(body, field.span, &route.upstream_literal)
            .map_err(|e| GatewayError::Internal(e.to_string()))?
    };
    Ok(
        Target::new(route.server, body).routed(rec.modern, method, || {
            serde_json::from_slice(&route.upstream_literal).ok()
        }),
    )
}

/// `params.ref` of a `completion/complete`.
#[derive(Deserialize)]
struct CompleteParams<'a> {
    #[serde(rename = "ref", borrow)]
    reference: CompleteRef<'a>,
}

#[derive(Deserialize)]
struct CompleteRef<'a> {
    #[serde(rename = "type", borrow)]
    kind: Cow<'a, str>,
    #[serde(borrow)]
    name: Option<Cow<'a, str>>,
    #[serde(borrow)]
    uri: Option<Cow<'a, str>>,
}

/// `completion/complete` goes to the server of its reference: the prompt (renamed to the
/// upstream's name, like `prompts/get`) or the resource template's URI. Completions are rare
/// and small, so a renamed body is simply re-serialised.
fn completion(
    envelope: &Envelope<'_>,
    body: &Bytes,
    catalog: &GatewayCatalog,
    rec: &mut RequestRecord,
) -> Result<Target, GatewayError> {
    let invalid = |m: String| GatewayError::InvalidParams(format!("completion/complete: {m}"));
    let span = envelope
        .params
        .ok_or_else(|| invalid("needs params.ref".into()))?;
    let params: CompleteParams =
        serde_json::from_slice(&body[span.start..span.end]).map_err(|e| invalid(e.to_string()))?;
    let reference = params.reference;
    match &*reference.kind {
        "ref/prompt" => {
            let name = reference
                .name
                .ok_or_else(|| invalid("ref/prompt needs a name".into()))?;
            rec.target = Some(truncated(&name));
            let route = catalog.route_prompt(&name).ok_or_else(|| {
                withheld(catalog, Kind::Prompt, &name).unwrap_or_else(|| {
                    GatewayError::UnknownPrompt {
                        name: truncated(&name),
                        gateway: catalog.name.as_str().to_owned(),
                    }
                })
            })?;
            let upstream_name: String = serde_json::from_slice(&route.upstream_literal)
                .map_err(|e| GatewayError::Internal(e.to_string()))?;
            if upstream_name == *name {
                return Ok(Target::new(route.server, body.clone()));
            }
            let mut message: Value =
                serde_json::from_slice(body).map_err(|e| invalid(e.to_string()))?;
            if let Some(slot) = message.pointer_mut("/params/ref/name") {
                *slot = Value::String(upstream_name);
            }
            let renamed =
                serde_json::to_vec(&message).map_err(|e| GatewayError::Internal(e.to_string()))?;
            Ok(Target::new(route.server, Bytes::from(renamed)))
        }
        "ref/resource" => {
            let uri = reference
                .uri
                .ok_or_else(|| invalid("ref/resource needs a uri".into()))?;
            rec.target = Some(truncated(&uri));
            let server = catalog.route_resource(&uri).ok_or_else(|| {
                withheld(catalog, Kind::Resource, &uri).unwrap_or_else(|| {
                    GatewayError::UnknownResource {
                        uri: truncated(&uri),
                        gateway: catalog.name.as_str().to_owned(),
                    }
                })
            })?;
            Ok(Target::new(server, body.clone()))
        }
        other => Err(invalid(format!(
            "unknown ref type '{}' (ref/prompt or ref/resource)",
            truncated(other)
        ))),
    }
}

/// A client's answer to a relayed request: back to the upstream session that asked, with the
/// upstream's own id restored.
pub fn answer(
    gw: &super::Gateway,
    body: &Bytes,
    id: jsonrpc::Span,
    catalog: &GatewayCatalog,
    claims: &crate::session_token::SessionClaims,
) -> Result<Target, GatewayError> {
    let text: Cow<'_, str> = serde_json::from_slice(&body[id.start..id.end])
        .map_err(|_| GatewayError::UnknownResponse(crate::relay::RelayError::NotIssued))?;
    let relayed = crate::relay::RelayedId::open(&gw.shared.sealer, &text, &claims.session_uid)?;
    let server = gw
        .shared
        .server_index
        .get(&relayed.server)
        .copied()
        .filter(|i| catalog.servers.contains(i))
        .ok_or(GatewayError::UnknownResponse(
            crate::relay::RelayError::NotIssued,
        ))?;
    let body = jsonrpc::replace_span(body, id, &relayed.original)
        .map_err(|e| GatewayError::Internal(e.to_string()))?;
    Ok(Target {
        server,
        body,
        session: Some(super::forward::UpstreamSessionChoice {
            id: relayed.upstream_session,
            version: relayed.version,
        }),
        streamed: None,
        routing: None,
    })
}

/// `params.requestId` of a `notifications/cancelled`, as raw JSON.
pub fn cancelled_request<'b>(body: &'b [u8], envelope: &Envelope<'_>) -> Option<&'b [u8]> {
    #[derive(Deserialize)]
    struct CancelParams<'a> {
        #[serde(rename = "requestId", borrow)]
        request_id: &'a RawValue,
    }
    let span = envelope.params?;
    let params: CancelParams<'b> = serde_json::from_slice(body.get(span.start..span.end)?).ok()?;
    Some(params.request_id.get().as_bytes())
}

/// The error for a name the gateway withholds because two of its servers offer it.
fn withheld(catalog: &GatewayCatalog, kind: Kind, name: &str) -> Option<GatewayError> {
    let conflict = catalog.withheld(kind, name)?;
    Some(GatewayError::Withheld {
        kind: conflict.kind,
        name: truncated(&conflict.name),
        gateway: catalog.name.as_str().to_owned(),
        servers: conflict.servers_list(),
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

/// `params` of a `tools/call`, as far as the gateway reads it. A duplicated `arguments` or
/// `_meta` is refused by the derived reader.
#[derive(Deserialize)]
struct CallParams<'a> {
    #[serde(borrow)]
    arguments: Option<&'a RawValue>,
    #[serde(rename = "_meta", borrow)]
    meta: Option<&'a RawValue>,
}

/// `arguments` of a lazy gateway's `run_tool`.
#[derive(Deserialize)]
struct RunToolArguments<'a> {
    #[serde(borrow)]
    name: Cow<'a, str>,
    #[serde(borrow)]
    arguments: Option<&'a RawValue>,
}

fn outer_params(bytes: &[u8]) -> Result<CallParams<'_>, String> {
    serde_json::from_slice(bytes).map_err(|e| format!("tools/call params: {e}"))
}

/// The call's arguments read strictly for the policies; absent or `null` = `{}`.
fn strict_arguments(raw: Option<&RawValue>) -> Result<Value, String> {
    match raw.map(RawValue::get) {
        None | Some("null") => Ok(Value::Object(Default::default())),
        Some(text) => parse_strict(text.as_bytes()),
    }
}

/// The gateway's controls on a routed tool call: its policies decide first (a refused call
/// uses no rate), then the tool's rate limit takes one call.
fn controls(
    catalog: &GatewayCatalog,
    route: &Route,
    name: &str,
    caller: &Caller,
    rec: &mut RequestRecord,
    arguments: impl FnOnce() -> Result<Value, String>,
) -> Result<(), GatewayError> {
    if let Some(policies) = &catalog.policies {
        let claims = caller.identity.as_deref().map(|i| &i.claims);
        let verdict = policies
            .evaluate(&route.policies, claims, arguments)
            .map_err(|e| GatewayError::InvalidParams(e.to_string()))?;
        let policy = policies.name(verdict);
        rec.policy = Some((policy.to_owned(), verdict.effect.as_str()));
        if verdict.effect == Effect::Deny {
            return Err(GatewayError::PolicyDenied {
                tool: truncated(name),
                gateway: catalog.name.as_str().to_owned(),
                policy: policy.to_owned(),
            });
        }
    }
    if let (Some(limiter), Some(bucket)) = (&catalog.limiter, &route.bucket) {
        limiter
            .admit_tool(bucket)
            .map_err(|limited| GatewayError::RateLimited {
                gateway: catalog.name.as_str().to_owned(),
                limited,
            })?;
    }
    Ok(())
}

/// A lazy gateway's `run_tool(name, arguments)`: routed, checked and counted exactly as a
/// direct `tools/call` of `name`, and sent upstream as that call. The upstream body is built
/// from what was read here (the id's raw bytes, the upstream's own name, the arguments' and
/// `_meta`'s raw bytes), so it holds nothing the gateway did not route.
fn run_tool(
    envelope: &Envelope<'_>,
    body: &Bytes,
    catalog: &GatewayCatalog,
    lazy: &LazyTools,
    caller: &Caller,
    rec: &mut RequestRecord,
) -> Result<Target, GatewayError> {
    let invalid = |m: String| GatewayError::InvalidParams(format!("{RUN_TOOL}: {m}"));
    let params = envelope
        .params
        .ok_or_else(|| invalid("needs params.arguments".into()))?;
    let outer = outer_params(&body[params.start..params.end]).map_err(invalid)?;
    let wrapped = outer.arguments.ok_or_else(|| {
        invalid("needs arguments {\"name\": \"server__tool\", \"arguments\": {...}}".into())
    })?;
    let inner: RunToolArguments =
        serde_json::from_str(wrapped.get()).map_err(|e| invalid(format!("arguments: {e}")))?;
    let arguments = inner.arguments.filter(|a| a.get() != "null");
    if arguments.is_some_and(|a| !a.get().starts_with('{')) {
        return Err(invalid("arguments.arguments must be an object".into()));
    }
    let name = &*inner.name;
    rec.target = Some(truncated(name));
    let Some(route) = catalog.route_tool(name) else {
        if let Some(e) = withheld(catalog, Kind::Tool, name) {
            return Err(e);
        }
        let mut similar: Vec<String> = catalog
            .similar_tools(name, 3, caller.grants)
            .into_iter()
            .map(str::to_owned)
            .collect();
        for m in lazy.close_matches(name, 3, caller.grants) {
            if similar.len() < 5 && !similar.contains(&m) {
                similar.push(m);
            }
        }
        return Err(GatewayError::UnknownTool {
            name: truncated(name),
            gateway: catalog.name.as_str().to_owned(),
            similar,
        });
    };
    rec.tool_metrics = Some(route.metrics.clone());
    if let Some(grants) = caller.grants
        && !route.decision.allows(grants)
    {
        return Err(refused(name, catalog, caller, route.decision));
    }
    controls(catalog, route, name, caller, rec, || {
        strict_arguments(arguments)
    })?;
    if let Some(uri) = route.read_uri.as_deref() {
        let meta = outer.meta.map(|m| m.get().as_bytes());
        return Ok(read_resource(route, uri, meta, rec));
    }
    let id = rec.id.as_deref().unwrap_or(b"null");
    let args = arguments.map_or("{}", RawValue::get);
    let mut out =
        BytesMut::with_capacity(96 + id.len() + route.upstream_literal.len() + args.len());
    out.put_slice(br#"{"jsonrpc":"2.0","id":"#);
    out.put_slice(id);
    out.put_slice(br#","method":"tools/call","params":{"name":"#);
    out.put_slice(&route.upstream_literal);
    out.put_slice(br#","arguments":"#);
    out.put_slice(args.as_bytes());
    if let Some(meta) = outer.meta {
        out.put_slice(br#","_meta":"#);
        out.put_slice(meta.get().as_bytes());
    }
    out.put_slice(b"}}");
    Ok(Target::new(route.server, out.freeze()))
}

/// A routed call of a synthesised read-resource tool: sent upstream as a `resources/read` of
/// its URI (arguments have nothing to say to it), its answer converted on the way back.
fn read_resource(
    route: &Route,
    uri: &[u8],
    meta: Option<&[u8]>,
    rec: &mut RequestRecord,
) -> Target {
    rec.resource_tool = true;
    let id = rec.id.as_deref().unwrap_or(b"null");
    Target::new(route.server, super::resource_call::request(id, uri, meta))
}
