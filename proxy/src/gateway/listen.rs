//! `subscriptions/listen` (2026-07-28): the revision's replacement for the standalone GET
//! stream. The request's response is an event stream that opens with
//! `notifications/subscriptions/acknowledged` (the subset of the requested kinds the gateway
//! honours), then carries the gateway's own `notifications/{tools,prompts,resources}/list_changed`
//! for the kinds asked for, each tagged with `_meta["io.modelcontextprotocol/subscriptionId"]`
//! = the listen request's id. The lists are the gateway's (its catalog follows its upstreams),
//! so changes are announced from the current world's snapshots, as on the GET stream.
//!
//! Resource-update subscriptions (`resourceSubscriptions`) are not honoured yet and are left
//! out of the acknowledgement, as the revision prescribes for unsupported kinds. The stream
//! ends when the client leaves, or with a final result when a reload removes the gateway.

use bytes::Bytes;

use pingora::proxy::Session;
use serde::Deserialize;
use serde_json::{Value, json};

use super::{Gateway, RequestRecord, forward, stream, write_failed};
use crate::catalog::GatewayCatalog;
use crate::error::GatewayError;
use crate::jsonrpc::Envelope;
use crate::reply;

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

    /// The honoured kinds, `true` flags only.
    fn honoured(&self) -> Value {
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
        Value::Object(m)
    }
}

fn event(message: &Value) -> Bytes {
    Bytes::from(format!("event: message\ndata: {message}\n\n"))
}

pub(super) async fn serve(
    gw: &Gateway,
    session: &mut Session,
    rec: &mut RequestRecord,
    (body, envelope): (&Bytes, &Envelope<'_>),
    catalog: &std::sync::Arc<GatewayCatalog>,
) -> Result<(), GatewayError> {
    let span = envelope.params.ok_or_else(|| {
        GatewayError::InvalidParams("subscriptions/listen needs params.notifications".into())
    })?;
    let params: Params = serde_json::from_slice(&body[span.start..span.end])
        .map_err(|e| GatewayError::InvalidParams(format!("subscriptions/listen: {e}")))?;
    let id: Value = rec
        .id
        .as_deref()
        .and_then(|raw| serde_json::from_slice(raw).ok())
        .ok_or_else(|| {
            GatewayError::InvalidParams("subscriptions/listen requires a request id".into())
        })?;
    let meta = json!({ SUBSCRIPTION_ID_KEY: id });

    reply::event_stream(session).await.map_err(write_failed)?;
    // Subscribed before the acknowledgement goes out, so no change falls between the two.
    let mut swaps = gw.shared.snapshot_swaps.subscribe();
    let ack = json!({
        "jsonrpc": "2.0",
        "method": "notifications/subscriptions/acknowledged",
        "params": { "notifications": params.notifications.honoured(), "_meta": meta },
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
