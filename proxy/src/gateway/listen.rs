//! `subscriptions/listen` (2026-07-28): the revision's replacement for the standalone GET
//! stream. The request's response is an event stream that opens with
//! `notifications/subscriptions/acknowledged` (the subset of the requested kinds the gateway
//! honours), then carries, each tagged with `_meta["io.modelcontextprotocol/subscriptionId"]`
//! = the listen request's id:
//!
//! - the gateway's own `notifications/{tools,prompts,resources}/list_changed` for the kinds
//!   asked for. The lists are the gateway's (its catalog follows its upstreams), so changes are
//!   announced from the current world's snapshots, as on the GET stream;
//! - `notifications/resources/updated` for the URIs of `resourceSubscriptions` the gateway
//!   honours: relayed from the upstreams that own them ([`super::resource_updates`], which
//!   says which URIs are honoured and which are left out of the acknowledgement).
//!
//! The stream ends when the client leaves; with a final result when a reload removes the
//! gateway; and without one when an upstream subscription it relays ended (the client
//! re-listens, as after any abrupt end).

use bytes::Bytes;

use pingora::proxy::Session;
use serde::Deserialize;
use serde_json::{Value, json};

use super::resource_updates::{self, Listener, MAX_RESOURCE_SUBSCRIPTIONS, Relayed};
use super::{Caller, Gateway, RequestRecord, forward, stream, write_failed};
use crate::catalog::GatewayCatalog;
use crate::error::GatewayError;
use crate::jsonrpc::Envelope;
use crate::reply;
use crate::state::Snapshot;

/// `_meta` key tagging every frame of a listen stream.
pub const SUBSCRIPTION_ID_KEY: &str = "io.modelcontextprotocol/subscriptionId";

#[derive(Deserialize, Default)]
#[serde(rename_all = "camelCase")]
struct Filter {
    #[serde(default)]
    tools_list_changed: bool,
    #[serde(default)]
    prompts_list_changed: bool,
    #[serde(default)]
    resources_list_changed: bool,
    /// URIs whose `notifications/resources/updated` the client wants.
    #[serde(default)]
    resource_subscriptions: Vec<String>,
}

#[derive(Deserialize)]
struct Params {
    notifications: Filter,
}

impl Filter {
    fn wants(&self, method: &str) -> bool {
        match method {
            "notifications/tools/list_changed" => self.tools_list_changed,
            "notifications/prompts/list_changed" => self.prompts_list_changed,
            "notifications/resources/list_changed" => self.resources_list_changed,
            _ => false,
        }
    }

    /// The honoured kinds: `true` flags only, and the honoured URIs when there are any.
    fn honoured(&self, uris: Vec<String>) -> Value {
        let mut m = serde_json::Map::new();
        for (key, on) in [
            ("toolsListChanged", self.tools_list_changed),
            ("promptsListChanged", self.prompts_list_changed),
            ("resourcesListChanged", self.resources_list_changed),
        ] {
            if on {
                m.insert(key.into(), Value::Bool(true));
            }
        }
        if !uris.is_empty() {
            m.insert("resourceSubscriptions".into(), json!(uris));
        }
        Value::Object(m)
    }
}

fn event(message: &Value) -> Bytes {
    Bytes::from(format!("event: message\ndata: {message}\n\n"))
}

/// Reads and checks the request's `params`.
fn params(body: &Bytes, envelope: &Envelope<'_>) -> Result<Params, GatewayError> {
    let span = envelope.params.ok_or_else(|| {
        GatewayError::InvalidParams("subscriptions/listen needs params.notifications".into())
    })?;
    let params: Params = serde_json::from_slice(&body[span.start..span.end]).map_err(|e| {
        GatewayError::InvalidParams(format!(
            "subscriptions/listen params (notifications: {{toolsListChanged, promptsListChanged, resourcesListChanged: booleans, resourceSubscriptions: [URI strings]}}): {e}"
        ))
    })?;
    let asked = params.notifications.resource_subscriptions.len();
    if asked > MAX_RESOURCE_SUBSCRIPTIONS {
        return Err(GatewayError::InvalidParams(format!(
            "subscriptions/listen: {asked} resourceSubscriptions, at most {MAX_RESOURCE_SUBSCRIPTIONS} per listen (open more listens)"
        )));
    }
    Ok(params)
}

/// Serves one listen stream for `caller` against the gateway's `catalog` of `snapshot`.
pub(super) async fn serve(
    gw: &Gateway,
    session: &mut Session,
    rec: &mut RequestRecord,
    (body, envelope): (&Bytes, &Envelope<'_>),
    (snapshot, catalog): (&Snapshot, &std::sync::Arc<GatewayCatalog>),
    caller: &Caller,
) -> Result<(), GatewayError> {
    let params = params(body, envelope)?;
    let id: Value = rec
        .id
        .as_deref()
        .and_then(|raw| serde_json::from_slice(raw).ok())
        .ok_or_else(|| {
            GatewayError::InvalidParams("subscriptions/listen requires a request id".into())
        })?;
    let meta = json!({ SUBSCRIPTION_ID_KEY: id });

    // Subscribed before the acknowledgement goes out, so no change falls between the two.
    let mut swaps = gw.shared.snapshot_swaps.subscribe();
    // The upstream subscriptions are acknowledged before the client's is: updates of URIs
    // the client is told are honoured are relayed from the start.
    let uris = &params.notifications.resource_subscriptions;
    let (honoured, mut relay) = if uris.is_empty() {
        (Vec::new(), None)
    } else {
        let who = Listener {
            session,
            rec,
            caller,
            snapshot,
            catalog,
        };
        resource_updates::open(gw, who, uris).await
    };
    reply::event_stream(session).await.map_err(write_failed)?;
    let ack = json!({
        "jsonrpc": "2.0",
        "method": "notifications/subscriptions/acknowledged",
        "params": { "notifications": params.notifications.honoured(honoured), "_meta": meta },
    });
    session
        .write_response_body(Some(event(&ack)), false)
        .await
        .map_err(write_failed)?;
    rec.outcome = "ok";

    let mut shown = catalog.clone();
    let mut keep_alive = tokio::time::interval(stream::KEEP_ALIVE);
    keep_alive.reset();
    loop {
        let out = tokio::select! {
            changed = swaps.changed() => {
                if changed.is_err() {
                    break;
                }
                let now = swaps.borrow_and_update().gateways.get(shown.name.as_str()).cloned();
                let Some(now) = now else { break };
                let out: Vec<u8> = stream::changed_lists(&shown, &now)
                    .into_iter()
                    .filter(|m| params.notifications.wants(m))
                    .flat_map(|m| {
                        event(&json!({"jsonrpc": "2.0", "method": m, "params": {"_meta": meta}}))
                    })
                    .collect();
                shown = now;
                Bytes::from(out)
            }
            relayed = next_update(relay.as_mut()) => match relayed {
                Relayed::Updated(uri) => event(&json!({
                    "jsonrpc": "2.0",
                    "method": "notifications/resources/updated",
                    "params": { "uri": uri, "_meta": meta },
                })),
                Relayed::Ended(server) => {
                    // No result: the client re-listens, as after any abrupt end.
                    tracing::debug!(%server, "an upstream resource subscription ended; ending the listen stream");
                    return session
                        .write_response_body(Some(Bytes::new()), true)
                        .await
                        .map_err(write_failed);
                }
            },
            _ = keep_alive.tick() => Bytes::from_static(b": keep-alive\n\n"),
            // The usual end of a listen stream: the client stopped listening.
            _ = forward::client_disconnected(session) => return Ok(()),
        };
        if !out.is_empty() {
            session
                .write_response_body(Some(out), false)
                .await
                .map_err(write_failed)?;
        }
    }
    // The gateway went away with a reload: end the subscription gracefully.
    let done = json!({
        "jsonrpc": "2.0",
        "id": id,
        "result": { "_meta": meta, "resultType": "complete" },
    });
    session
        .write_response_body(Some(event(&done)), true)
        .await
        .map_err(write_failed)
}

/// The relay's next message; never, without resource subscriptions.
async fn next_update(relay: Option<&mut resource_updates::Relay>) -> Relayed {
    match relay {
        Some(r) => r.next().await,
        None => std::future::pending().await,
    }
}
