//! Tool discovery: what each installation's server offers, as control last saw it.
//!
//! On every published registry write and every `[discovery] interval` in between, control
//! connects to each installation it can reach (a remote one at its URL, a self-hosted one at
//! the endpoint the orchestrator gave it), runs `initialize`, `tools/list`, `resources/list`
//! and `prompts/list`, and stores what came back (names and descriptions, bounded) in the
//! registry's `discovered` tree, where `sluice ctl installations tools NAME` and
//! `GET /v1/installations/{name}/tools` read it, so teams can see what they can assign. An
//! installation is probed again at once when its endpoint or credential changed, otherwise
//! once per interval. Discovery is a cache beside the registry, not part of it: its writes do
//! not bump the registry version, and proxies never wait for it (each proxy reads its
//! upstreams' catalogs itself). Credentials: none or a static header; other kinds are
//! obtained by proxies only, and such an installation is shown with an error saying so.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use serde_json::{Value, json};
use tokio::time::Instant;

use crate::api::Api;
use crate::mcp_client::McpSession;
use sluice_config::ResourceTools;
use sluice_config::resource_tools as resource_naming;

use crate::model::{Discovered, Installation, SECRET_PLACEHOLDER};
use crate::store::Store;

/// Most items of each kind kept per installation.
pub const MAX_ITEMS: usize = 1000;

/// How control reaches one installation for discovery.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Probe {
    /// The installation.
    pub name: String,
    /// Its MCP endpoint.
    pub url: String,
    /// The credential header, when it has a static one.
    pub header: Option<(String, String)>,
    /// Why it cannot be probed, when it cannot.
    pub unsupported: Option<String>,
    /// Secret values, masked out of errors.
    pub secrets: Vec<String>,
}

/// The discovery loop.
pub struct Discovery {
    store: Arc<Store>,
    api: Arc<Api>,
    interval: Duration,
    timeout: Duration,
}

impl Discovery {
    /// A loop over `store`, woken by `api`'s published writes.
    pub fn new(store: Arc<Store>, api: Arc<Api>, interval: Duration, timeout: Duration) -> Self {
        Discovery {
            store,
            api,
            interval,
            timeout,
        }
    }

    /// Discovers until dropped.
    pub async fn run(self) {
        let mut changes = self.api.subscribe();
        let mut seen: HashMap<String, (Probe, Instant)> = HashMap::new();
        loop {
            self.pass(&mut seen).await;
            if !crate::api::next_write_or(&mut changes, self.interval).await {
                return;
            }
        }
    }

    async fn pass(&self, seen: &mut HashMap<String, (Probe, Instant)>) {
        let store = self.store.clone();
        let probes = match tokio::task::spawn_blocking(move || store.discovery_probes()).await {
            Ok(Ok(p)) => p,
            Ok(Err(e)) => {
                tracing::error!(error = %e, "discovery cannot read the registry");
                return;
            }
            Err(e) => {
                tracing::error!(error = %e, "discovery task failed");
                return;
            }
        };
        seen.retain(|name, _| probes.iter().any(|p| &p.name == name));
        let now = Instant::now();
        let due: Vec<Probe> = probes
            .into_iter()
            .filter(|p| {
                seen.get(&p.name)
                    .is_none_or(|(last, at)| last != p || now.duration_since(*at) >= self.interval)
            })
            .collect();
        let results =
            futures_util::future::join_all(due.iter().map(|p| discover(p, self.timeout))).await;
        for (probe, found) in due.into_iter().zip(results) {
            let store = self.store.clone();
            let name = probe.name.clone();
            let write = tokio::task::spawn_blocking(move || store.put_discovered(&name, &found));
            if let Ok(Err(e)) | Err(e) =
                write.await.map_err(|e| crate::store::StoreError::Corrupt {
                    tree: "discovered",
                    key: String::new(),
                    reason: e.to_string(),
                })
            {
                tracing::error!(error = %e, "discovery cannot store its result");
            }
            seen.insert(probe.name.clone(), (probe, Instant::now()));
        }
    }
}

/// Probes one installation.
pub async fn discover(probe: &Probe, timeout: Duration) -> Discovered {
    let at = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    let mut out = Discovered {
        at,
        ..Discovered::default()
    };
    if let Some(why) = &probe.unsupported {
        out.error = Some(why.clone());
        return out;
    }
    let header = match &probe.header {
        None => None,
        Some((name, value)) => match (
            http::HeaderName::try_from(name.as_str()),
            http::HeaderValue::try_from(value.as_str()),
        ) {
            (Ok(n), Ok(v)) => Some((n, v)),
            _ => {
                out.error = Some("the credential is not a valid header".into());
                return out;
            }
        },
    };
    let result = async {
        let mut session = McpSession::open(&probe.url, header, timeout).await?;
        let caps = session.capabilities.clone();
        let has = |k: &str| caps.get(k).is_some_and(|v| !v.is_null());
        if has("tools") {
            out.tools = trim(
                session.list_all("tools/list", "tools").await?,
                &["name", "description"],
            );
        }
        if has("resources") {
            out.resources = trim(
                session.list_all("resources/list", "resources").await?,
                &["uri", "name", "description", "mimeType"],
            );
        }
        if has("prompts") {
            out.prompts = trim(
                session.list_all("prompts/list", "prompts").await?,
                &["name", "description"],
            );
        }
        session.close().await;
        Ok::<_, crate::mcp_client::McpError>(())
    }
    .await;
    if let Err(e) = result {
        let mut text = e.to_string();
        for s in &probe.secrets {
            text = text.replace(s.as_str(), SECRET_PLACEHOLDER);
        }
        out.error = Some(text);
    }
    out
}

/// The items with only `keys`, at most [`MAX_ITEMS`].
fn trim(items: Vec<Value>, keys: &[&str]) -> Vec<Value> {
    items
        .into_iter()
        .take(MAX_ITEMS)
        .map(|item| {
            let mut kept = serde_json::Map::new();
            for k in keys {
                if let Some(v) = item.get(*k).filter(|v| !v.is_null()) {
                    kept.insert((*k).to_owned(), v.clone());
                }
            }
            Value::Object(kept)
        })
        .collect()
}

/// How control presents a credential map (`[servers.credential]` keys) when probing.
pub fn header_of(
    credential: &std::collections::BTreeMap<String, String>,
) -> Result<Option<(String, String)>, String> {
    match credential.get("type").map(String::as_str) {
        // As the proxies' catalog fetch: a per-caller credential has no caller to act for.
        None | Some(crate::callers::PER_CALLER) => Ok(None),
        Some("static") => Ok(Some((
            credential
                .get("header")
                .cloned()
                .unwrap_or_else(|| "authorization".into()),
            credential.get("value").cloned().unwrap_or_default(),
        ))),
        Some(other) => Err(format!(
            "discovery does not obtain '{other}' credentials (proxies do): this installation's tools are listed by the proxies' catalogs only"
        )),
    }
}

/// `json!` of a result for the API: the lists and when/why, and the read-resource tools a
/// proxy makes of them under the installation's `resource_tools` ([`resource_tools`]).
pub fn view(inst: &Installation, d: Option<&Discovered>) -> Value {
    let name = &inst.name;
    let mode = inst.resource_tools.unwrap_or_default();
    match d {
        Some(d) => json!({
            "name": name,
            "discovered_at": d.at,
            "tools": d.tools,
            "resources": d.resources,
            "prompts": d.prompts,
            "resource_tools": resource_tools(mode, &d.tools, &d.resources),
            "error": d.error,
        }),
        None => json!({"name": name, "discovered_at": null, "tools": [], "resources": [],
            "prompts": [], "resource_tools": resource_tools(mode, &[], &[]),
            "error": "not discovered yet"}),
    }
}

/// The read-resource tools a proxy synthesises for a server listing `tools` and `resources`
/// under `mode`: the proxy's own function ([`sluice_config::resource_tools`]) on the lists
/// discovery kept, which hold every key it reads (tool names; resource URIs and names), so
/// the names are the proxy's (unless the server lists more than [`MAX_ITEMS`] tools, past
/// which a clash cannot be seen here). `{mode, tools: [{name, description, uri}], skipped}`.
fn resource_tools(mode: ResourceTools, tools: &[Value], resources: &[Value]) -> Value {
    let made = if resource_naming::qualifies(mode, tools, resources) {
        resource_naming::synthesise(tools, resources)
    } else {
        resource_naming::Synthesised::default()
    };
    let listed: Vec<Value> = made
        .tools
        .iter()
        .map(|t| {
            let name = t["name"].as_str().unwrap_or_default();
            json!({
                "name": name,
                "description": t["description"],
                "uri": made.uris.get(name),
            })
        })
        .collect();
    json!({"mode": mode.as_str(), "tools": listed, "skipped": made.skipped})
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_none_and_static_credentials_are_presented() {
        let mut c = std::collections::BTreeMap::new();
        assert_eq!(header_of(&c), Ok(None));
        c.insert("type".into(), "static".into());
        c.insert("value".into(), "Bearer x".into());
        assert_eq!(
            header_of(&c),
            Ok(Some(("authorization".into(), "Bearer x".into())))
        );
        c.insert("type".into(), "oauth_client_credentials".into());
        assert!(
            header_of(&c)
                .unwrap_err()
                .contains("oauth_client_credentials")
        );
    }

    fn installation(mode: Option<ResourceTools>) -> Installation {
        Installation {
            name: "docs".into(),
            template: "t".into(),
            values: Default::default(),
            secrets: Vec::new(),
            runtime: None,
            resource_tools: mode,
        }
    }

    fn shown(view: &Value) -> Vec<&str> {
        view["resource_tools"]["tools"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|t| t["name"].as_str())
            .collect()
    }

    #[test]
    fn the_view_lists_the_read_tools_a_proxy_makes_under_each_mode() {
        // As discovery stores them: trimmed, a real tool taking the first resource's name.
        let found = Discovered {
            at: 1,
            tools: trim(
                vec![json!({"name": "read_user_guide", "inputSchema": {}})],
                &["name", "description"],
            ),
            resources: trim(
                vec![
                    json!({"uri": "docs://guide", "name": "User Guide", "description": "How to."}),
                    json!({"uri": "docs://logo.png", "title": "Logo"}),
                    json!({"uri": "docs://guide2", "name": "user guide"}),
                ],
                &["uri", "name", "description", "mimeType"],
            ),
            ..Discovered::default()
        };
        let proxy = resource_naming::synthesise(&found.tools, &found.resources);
        let proxy_names: Vec<&str> = proxy
            .tools
            .iter()
            .filter_map(|t| t["name"].as_str())
            .collect();
        assert_eq!(
            proxy_names,
            [
                "read_user_guide_2",
                "read_docs_logo_png",
                "read_user_guide_3"
            ]
        );

        let on = view(&installation(Some(ResourceTools::On)), Some(&found));
        assert_eq!(shown(&on), proxy_names);
        assert_eq!(on["resource_tools"]["mode"], "on");
        assert_eq!(on["resource_tools"]["tools"][0]["uri"], "docs://guide");
        assert_eq!(
            on["resource_tools"]["tools"][0]["description"],
            "Read the resource docs://guide: How to."
        );
        // auto: the server has a tool, so it gets none; off: never.
        let auto = view(&installation(None), Some(&found));
        assert_eq!(auto["resource_tools"]["mode"], "auto");
        assert!(shown(&auto).is_empty(), "{auto}");
        assert!(shown(&view(&installation(Some(ResourceTools::Off)), Some(&found))).is_empty());
        // auto without tools: all of them, as the proxy names them then.
        let bare = Discovered {
            tools: Vec::new(),
            ..found.clone()
        };
        assert_eq!(
            shown(&view(&installation(None), Some(&bare))),
            ["read_user_guide", "read_docs_logo_png", "read_user_guide_2"]
        );
        let none = view(&installation(Some(ResourceTools::On)), None);
        assert_eq!(none["resource_tools"]["tools"], json!([]));
    }

    #[test]
    fn items_keep_names_and_descriptions_only() {
        let items = vec![json!({"name": "a", "description": "d", "inputSchema": {"big": 1}})];
        assert_eq!(
            trim(items, &["name", "description"]),
            [json!({"name": "a", "description": "d"})]
        );
    }
}
