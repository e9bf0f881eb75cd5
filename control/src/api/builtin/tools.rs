//! The built-in tools themselves: their definitions (what `tools/list` shows, named without
//! the `sluice__` prefix the gateway adds) and what each call does, through the same store
//! calls and views as the admin API, so a tool can do nothing its route could not.
//!
//! A call the registry refuses (a field that fails validation, a name that does not exist,
//! an installation still assigned) is a tool result with `isError: true` and the registry's
//! message, so a model can read and correct it; arguments of the wrong shape are a JSON-RPC
//! invalid-params error.

use serde::Deserialize;
use serde::de::DeserializeOwned;
use serde_json::{Value, json};

use super::Origin;
use crate::api::{Api, ApiError, with_meta};
use crate::model::{InstallationInput, Template};
use crate::store::Mode;

/// Why a call was not answered with a tool result.
pub(in crate::api) enum CallError {
    /// The arguments do not fit the tool (JSON-RPC -32602).
    Params(String),
    /// Control failed (an HTTP error answer).
    Internal(ApiError),
}

/// Every built-in tool, as `tools/list` shows it.
pub(super) fn definitions() -> Vec<Value> {
    let none = json!({"type": "object", "properties": {}, "additionalProperties": false});
    let named = |what: &str| {
        json!({
            "type": "object",
            "properties": {"name": {"type": "string", "description": format!("The {what}'s name.")}},
            "required": ["name"],
            "additionalProperties": false
        })
    };
    let read = json!({"readOnlyHint": true, "openWorldHint": false});
    let entry = json!({
        "type": "object",
        "properties": {
            "entry": {"type": "string", "description": "An installation's name (every tool of it) or one tool as \"installation__tool\"."},
            "gateway": {"type": "string", "description": "The gateway to change; default: the gateway this call comes through."}
        },
        "required": ["entry"],
        "additionalProperties": false
    });
    vec![
        json!({"name": "list_templates", "description": "List the server templates that can be installed: name, description, transport and the fields an installation fills in.", "inputSchema": none, "annotations": read}),
        json!({"name": "get_template", "description": "Show one server template: its transport, URL or command, fields (which are secret, required, defaulted) and credential type.", "inputSchema": named("template"), "annotations": read}),
        json!({"name": "list_installations", "description": "List installed servers: name, template and status.", "inputSchema": none, "annotations": read}),
        json!({"name": "get_installation", "description": "Show one installation: its template, values (secrets hidden) and status.", "inputSchema": named("installation"), "annotations": read}),
        json!({"name": "list_installation_tools", "description": "Show the tools, resources and prompts an installation's server offers, as control last discovered them, and the read-resource tools (read_*) proxies make of its resources.", "inputSchema": named("installation"), "annotations": read}),
        json!({"name": "list_gateways", "description": "List gateways and the servers and tools each shows.", "inputSchema": none, "annotations": read}),
        json!({"name": "get_gateway", "description": "Show one gateway: the servers and tools it shows and its options.", "inputSchema": named("gateway"), "annotations": read}),
        json!({
            "name": "install",
            "description": "Install a server from a template, with the template's fields filled in. Its tools become assignable once it answers.",
            "inputSchema": {
                "type": "object",
                "properties": {
                    "name": {"type": "string", "description": "The new installation's name ([a-z0-9-]); its tools are named name__tool."},
                    "template": {"type": "string", "description": "The template to install."},
                    "values": {"type": "object", "description": "Field values by field name.", "additionalProperties": true},
                    "runtime": {"type": "string", "enum": ["local", "kubernetes"], "description": "Self-hosted templates only: where it runs; default: control's default backend."},
                    "resource_tools": {"type": "string", "enum": ["auto", "off", "on"], "description": "Whether its resources are also offered as read_* tools (default auto: only for a server without tools)."}
                },
                "required": ["name", "template"],
                "additionalProperties": false
            },
            "annotations": {"readOnlyHint": false, "destructiveHint": false, "idempotentHint": false, "openWorldHint": false}
        }),
        json!({"name": "uninstall", "description": "Remove an installation (refused while a gateway still shows it).", "inputSchema": named("installation"), "annotations": {"readOnlyHint": false, "destructiveHint": true, "openWorldHint": false}}),
        json!({"name": "assign", "description": "Show a server's tools, or one tool, on a gateway.", "inputSchema": entry, "annotations": {"readOnlyHint": false, "destructiveHint": false, "idempotentHint": true, "openWorldHint": false}}),
        json!({"name": "unassign", "description": "Stop showing a server's tools, or one tool, on a gateway.", "inputSchema": entry, "annotations": {"readOnlyHint": false, "destructiveHint": true, "idempotentHint": true, "openWorldHint": false}}),
    ]
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct NoArgs {}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Named {
    name: String,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Entry {
    entry: String,
    gateway: Option<String>,
}

fn args<T: DeserializeOwned>(tool: &str, v: Value) -> Result<T, CallError> {
    serde_json::from_value(v).map_err(|e| CallError::Params(format!("{tool}: {e}")))
}

/// A successful tool result: the value as text and as structured content.
fn ok(value: Value) -> Value {
    let text = serde_json::to_string_pretty(&value).unwrap_or_default();
    json!({"content": [{"type": "text", "text": text}], "structuredContent": value})
}

/// A refused call: the registry's message, for the model to read.
fn refused(message: impl std::fmt::Display) -> Value {
    json!({"content": [{"type": "text", "text": message.to_string()}], "isError": true})
}

/// A registry refusal becomes a tool error; a failure of control stays an HTTP error.
fn settle(r: Result<Value, ApiError>) -> Result<Value, CallError> {
    match r {
        Ok(v) => Ok(ok(v)),
        Err(e) if e.status.is_client_error() => {
            let message = e.body["message"].as_str().unwrap_or("refused").to_owned();
            Ok(refused(match e.body["field"].as_str() {
                Some(field) => format!("{field}: {message}"),
                None => message,
            }))
        }
        Err(e) => Err(CallError::Internal(e)),
    }
}

/// A template as a caller choosing one needs it: no credential values (they are
/// placeholders, but may name how secrets are used).
fn template_view(t: &crate::store::Versioned<Template>) -> Value {
    let mut v = with_meta(t);
    if let Some(kind) = t.item.credential.get("type") {
        v["credential"] = json!({"type": kind});
    }
    v
}

impl Api {
    pub(super) async fn call_tool(
        &self,
        name: &str,
        a: Value,
        origin: &Origin<'_>,
    ) -> Result<Value, CallError> {
        let store = &self.store;
        match name {
            "list_templates" => {
                args::<NoArgs>(name, a)?;
                settle(store.templates().map_err(ApiError::from).map(|ts| {
                    let items: Vec<Value> = ts
                        .iter()
                        .map(|t| {
                            json!({
                                "name": t.item.name,
                                "description": t.item.description,
                                "transport": t.item.transport,
                                "fields": t.item.fields,
                            })
                        })
                        .collect();
                    json!({"templates": items})
                }))
            }
            "get_template" => {
                let n: Named = args(name, a)?;
                settle(self.template(&n.name).map(|t| template_view(&t)))
            }
            "list_installations" => {
                args::<NoArgs>(name, a)?;
                settle(self.installation_views().map(|views| {
                    let items: Vec<Value> = views
                        .iter()
                        .map(|v| json!({"name": v["name"], "template": v["template"], "status": v["status"]}))
                        .collect();
                    json!({"installations": items})
                }))
            }
            "get_installation" => {
                let n: Named = args(name, a)?;
                settle(self.installation(&n.name))
            }
            "list_installation_tools" => {
                let n: Named = args(name, a)?;
                settle(self.offer(&n.name))
            }
            "list_gateways" => {
                args::<NoArgs>(name, a)?;
                settle(store.gateways().map_err(ApiError::from).map(|gs| {
                    let items: Vec<Value> = gs
                        .iter()
                        .filter(|g| origin.sees(&g.item.name))
                        .map(with_meta)
                        .collect();
                    json!({"gateways": items})
                }))
            }
            "get_gateway" => {
                let n: Named = args(name, a)?;
                if !origin.sees(&n.name) {
                    return Ok(refused(not_in_scope(&n.name)));
                }
                settle(self.gateway(&n.name).map(|g| with_meta(&g)))
            }
            "install" => {
                // The admin API's own input, so the tool takes every field a create takes.
                let input: InstallationInput = args(name, a)?;
                let n = input.name.clone();
                let written = self
                    .put_installation(origin.actor(), input, Mode::Create)
                    .await;
                settle(written.and_then(|_| self.installation(&n)))
            }
            "uninstall" => {
                let n: Named = args(name, a)?;
                let actor = origin.actor();
                let target = n.name.clone();
                let written = self
                    .write(move |s| s.delete_installation(&actor, &target))
                    .await;
                settle(written.map(|version| json!({"uninstalled": n.name, "version": version})))
            }
            "assign" | "unassign" => {
                let e: Entry = args(name, a)?;
                let Some(gateway) = e.gateway.or_else(|| origin.gateway.clone()) else {
                    return Ok(refused(
                        "name the gateway: this call did not come through one",
                    ));
                };
                if !origin.sees(&gateway) {
                    return Ok(refused(not_in_scope(&gateway)));
                }
                let actor = origin.actor();
                let add = name == "assign";
                let (g, entry) = (gateway.clone(), e.entry);
                let written = self
                    .write(move |s| {
                        if add {
                            s.assign(&actor, &g, &entry)
                        } else {
                            s.unassign(&actor, &g, &entry)
                        }
                    })
                    .await;
                settle(written.and_then(|_| self.gateway(&gateway).map(|g| with_meta(&g))))
            }
            other => Err(CallError::Params(format!(
                "unknown tool {other:?}; tools/list shows the built-in tools"
            ))),
        }
    }
}

fn not_in_scope(gateway: &str) -> String {
    format!(
        "gateway {gateway:?} is not one this proxy serves from the registry (its control token is scoped to other gateways)"
    )
}
