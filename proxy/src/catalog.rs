//! Tool, prompt and resource catalogs: what each upstream offers, and what each gateway shows.
//!
//! A gateway's catalog is built off the request path whenever an upstream's lists change:
//! names are prefixed `{server}__{name}` (or shown as the upstream names them, on a gateway
//! with `prefix = false`, where a name two servers offer is withheld: [`conflicts`]), list
//! results are serialised once into pages, and the routing tables map a shown name straight to
//! the server and to the upstream's own name, already encoded as a JSON string literal ready
//! to splice into a forwarded body. A `tools/list` request then copies bytes and builds
//! nothing.

pub mod conflicts;
pub mod lazy;
pub mod refresh;
pub mod resource_tools;
pub mod search;

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex};

use bytes::Bytes;
use serde_json::{Map, Value};
use sluice_auth::{Decision, Grants, Rules};
use sluice_config::{GatewayConfig, GatewayName, ToolsMode};

use self::conflicts::{Conflict, Conflicts, Kind};
use crate::metrics::{GatewayMetrics, ToolMetrics};
use crate::policy::Policies;
use crate::rate_limit::{Bucket, GatewayLimiter};
use crate::upstream::ServerIdx;

/// Separator between the server prefix and the upstream's own name.
pub const PREFIX_SEPARATOR: &str = "__";

/// What one upstream offers, as fetched from it.
#[derive(Debug, Clone, PartialEq)]
pub struct ServerCatalog {
    /// Protocol version the upstream negotiated with the gateway.
    pub protocol_version: String,
    /// Whether the upstream issued a session id (keeps per-session state).
    pub stateful: bool,
    /// The upstream's declared capabilities.
    pub capabilities: Value,
    /// Tool definitions, as the upstream sent them.
    pub tools: Vec<Value>,
    /// Prompt definitions.
    pub prompts: Vec<Value>,
    /// Concrete resources.
    pub resources: Vec<Value>,
    /// Resource templates.
    pub resource_templates: Vec<Value>,
    /// The upstream also speaks the 2026-07-28 revision (it answered `server/discover` with
    /// it): requests of clients of that era are forwarded to it as they are.
    pub modern: bool,
    /// In that revision it announces list changes (on `subscriptions/listen`), which the
    /// gateway then listens for.
    pub modern_list_changes: bool,
    /// It speaks the handshake era (it answered `initialize`). One that does not is spoken to
    /// in the 2026-07-28 revision for every client, the envelope added for handshake clients.
    pub handshake: bool,
    /// In that revision it takes resource subscriptions (`resources.subscribe` of its
    /// `server/discover`), which the gateway relays on its clients' `subscriptions/listen`.
    pub modern_resource_subscribe: bool,
    /// The synthesised read-resource tools among `tools` ([`resource_tools`]): own name ->
    /// the URI a call reads.
    pub resource_tools: BTreeMap<String, String>,
}

impl ServerCatalog {
    /// Adds read-resource tools for the listed resources when `mode` says the server
    /// qualifies ([`resource_tools`]); returns how many resources were left without one
    /// past the bound.
    pub fn synthesise_resource_tools(&mut self, mode: sluice_config::ResourceTools) -> usize {
        if !resource_tools::qualifies(mode, &self.tools, &self.resources) {
            return 0;
        }
        let made = resource_tools::synthesise(&self.tools, &self.resources);
        self.tools.extend(made.tools);
        self.resource_tools = made.uris;
        made.skipped
    }
}

/// Where a shown tool or prompt goes.
#[derive(Debug, Clone)]
pub struct Route {
    /// The owning server.
    pub server: ServerIdx,
    /// The upstream's own name as a JSON string literal (with quotes), ready to splice.
    pub upstream_literal: Box<[u8]>,
    /// Which of the gateway's rules decides who may call it.
    pub decision: Decision,
    /// Its metric handles (tools only; prompts share the gateway's `other`).
    pub metrics: Arc<ToolMetrics>,
    /// The gateway's policies that can apply to it (by index), found at build.
    pub policies: Box<[u16]>,
    /// Its calls' rate-limit bucket, when the gateway limits tools.
    pub bucket: Option<Arc<Bucket>>,
    /// For a synthesised read-resource tool: the URI it reads, as a JSON string literal ready
    /// to splice into the `resources/read` sent in its place.
    pub read_uri: Option<Box<[u8]>>,
}

/// Most distinct rule outcomes whose filtered `tools/list` is kept; callers differ in few
/// ways in practice, and past this bound the cache starts over rather than grow.
const MAX_FILTERED_LISTS: usize = 256;

/// A list result serialised once into pages.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ListPages {
    pages: Vec<Bytes>,
    len: usize,
}

/// A `cursor` that does not name a page of this list.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BadCursor;

impl ListPages {
    /// Serialises `items` under `key` in pages of `page_size`, each with a `nextCursor` but the last.
    pub fn build(key: &str, items: &[Value], page_size: usize) -> Self {
        let page_size = page_size.max(1);
        let chunks: Vec<&[Value]> = if items.is_empty() {
            vec![&[]]
        } else {
            items.chunks(page_size).collect()
        };
        let last = chunks.len() - 1;
        let pages = chunks
            .iter()
            .enumerate()
            .map(|(i, chunk)| {
                let mut result = Map::new();
                result.insert(key.to_owned(), Value::Array(chunk.to_vec()));
                if i < last {
                    result.insert("nextCursor".to_owned(), Value::String((i + 1).to_string()));
                }
                // A map of strings and already-valid values always serialises.
                Bytes::from(serde_json::to_vec(&Value::Object(result)).unwrap_or_default())
            })
            .collect();
        ListPages {
            pages,
            len: items.len(),
        }
    }

    /// The pre-serialised `result` object for `cursor` (absent = first page).
    pub fn page(&self, cursor: Option<&str>) -> Result<&Bytes, BadCursor> {
        let index = match cursor {
            None => 0,
            Some(c) => c.parse::<usize>().map_err(|_| BadCursor)?,
        };
        self.pages.get(index).ok_or(BadCursor)
    }

    /// Number of items across all pages.
    pub fn len(&self) -> usize {
        self.len
    }

    /// Whether the list has no items.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }
}

/// Everything a gateway shows and how to route it.
#[derive(Debug)]
pub struct GatewayCatalog {
    /// The gateway.
    pub name: GatewayName,
    /// The gateway's metric handles.
    pub metrics: Arc<GatewayMetrics>,
    /// Servers this gateway uses, for session fan-out.
    pub servers: Vec<ServerIdx>,
    /// `tools/list` pages.
    pub tools: ListPages,
    /// `prompts/list` pages.
    pub prompts: ListPages,
    /// `resources/list` pages.
    pub resources: ListPages,
    /// `resources/templates/list` pages.
    pub resource_templates: ListPages,
    tool_routes: HashMap<Box<str>, Route>,
    prompt_routes: HashMap<Box<str>, Route>,
    resource_routes: HashMap<Box<str>, ServerIdx>,
    /// Literal prefixes of resource templates (text before the first `{`), longest first, with
    /// their server; `None` for a withheld template, whose URIs no server may take.
    template_prefixes: Vec<(String, Option<ServerIdx>)>,
    /// The only server offering resources, which owns URIs nothing else routes.
    sole_resource_server: Option<ServerIdx>,
    /// Names two servers offer, withheld from a gateway without prefixes.
    pub conflicts: Conflicts,
    /// With rules: every tool and the rule deciding it, for building filtered lists.
    ruled_tools: Vec<(Value, Decision)>,
    /// Filtered `tools/list` pages per distinct rule outcome, built on first use.
    filtered: Mutex<HashMap<Grants, Arc<ListPages>>>,
    page_size: usize,
    /// Tool-invocation policies, when the gateway has any.
    pub policies: Option<Arc<Policies>>,
    /// Rate limits, when the gateway sets any.
    pub limiter: Option<Arc<GatewayLimiter>>,
    /// Lazy mode (`tools_mode = "lazy"`): the searchable tools behind `search_tools`.
    pub lazy: Option<lazy::LazyTools>,
}

impl GatewayCatalog {
    /// Builds a gateway's catalog from the upstream catalogs known so far. Servers whose
    /// catalog is not (yet) known contribute nothing.
    pub fn build(
        cfg: &GatewayConfig,
        server_index: &HashMap<String, ServerIdx>,
        servers: &[Option<Arc<ServerCatalog>>],
        page_size: usize,
        rules: Option<&Rules>,
        metrics: Arc<GatewayMetrics>,
    ) -> Self {
        let rules = rules.filter(|r| !r.is_empty());
        let names: HashMap<ServerIdx, &str> =
            server_index.iter().map(|(n, &i)| (i, n.as_str())).collect();
        let sel = Selection::of(cfg, server_index, servers);
        let conflicts = if cfg.prefix {
            Conflicts::default()
        } else {
            Conflicts::find(
                [
                    (Kind::Tool, &sel.tools),
                    (Kind::Prompt, &sel.prompts),
                    (Kind::Resource, &sel.resources),
                    (Kind::ResourceTemplate, &sel.templates),
                ],
                &names,
            )
        };
        // The name a gateway shows for an upstream's own name.
        let shown = |server: &str, name: &str| match cfg.prefix {
            true => format!("{server}{PREFIX_SEPARATOR}{name}"),
            false => name.to_owned(),
        };

        let mut tools = Vec::new();
        let mut tool_routes = HashMap::new();
        for o in &sel.tools {
            let Some(server) = names.get(&o.server).copied() else {
                continue;
            };
            if conflicts.withholds(Kind::Tool, o.name) {
                continue;
            }
            let full = shown(server, o.name);
            let decision = rules.map_or(Decision::Open, |r| r.deciding_rule(&full));
            tools.push(renamed(o.item, "name", &full));
            let handles = metrics.tool(server, &full);
            let mut to = route(o.server, o.name, decision, handles);
            to.read_uri = servers
                .get(o.server)
                .and_then(Option::as_ref)
                .and_then(|c| c.resource_tools.get(o.name))
                .map(|uri| json_literal(uri));
            tool_routes.insert(full.into_boxed_str(), to);
        }
        let mut prompts = Vec::new();
        let mut prompt_routes = HashMap::new();
        for o in &sel.prompts {
            let Some(server) = names.get(&o.server).copied() else {
                continue;
            };
            if conflicts.withholds(Kind::Prompt, o.name) {
                continue;
            }
            let full = shown(server, o.name);
            prompts.push(renamed(o.item, "name", &full));
            let handles = metrics.other_tool.clone();
            prompt_routes.insert(
                full.into_boxed_str(),
                route(o.server, o.name, Decision::Open, handles),
            );
        }
        // Servers whose resources are withheld still offer resources: none of them is the
        // only resource server.
        let mut withheld_owners = Vec::new();
        let mut resources = Vec::new();
        let mut resource_routes = HashMap::new();
        for o in &sel.resources {
            if conflicts.withholds(Kind::Resource, o.name) {
                withheld_owners.push(o.server);
                continue;
            }
            // On a prefixed gateway two servers may list one URI: the first keeps it.
            resource_routes
                .entry(o.name.to_owned().into_boxed_str())
                .or_insert(o.server);
            resources.push(o.item.clone());
        }
        let mut templates = Vec::new();
        let mut template_prefixes = Vec::new();
        for o in &sel.templates {
            let literal = o.name.split('{').next().unwrap_or_default().to_owned();
            if conflicts.withholds(Kind::ResourceTemplate, o.name) {
                withheld_owners.push(o.server);
                template_prefixes.push((literal, None));
                continue;
            }
            template_prefixes.push((literal, Some(o.server)));
            templates.push(o.item.clone());
        }
        let sole_resource_server = {
            let mut owners = resource_routes
                .values()
                .copied()
                .chain(template_prefixes.iter().filter_map(|(_, i)| *i))
                .chain(withheld_owners);
            let first = owners.next();
            first.filter(|f| owners.all(|i| i == *f))
        };
        template_prefixes.sort_by_key(|(p, _)| std::cmp::Reverse(p.len()));
        let ruled_tools = match rules {
            Some(_) => tools
                .iter()
                .map(|t| {
                    let name = t.get("name").and_then(Value::as_str).unwrap_or_default();
                    (
                        t.clone(),
                        tool_routes
                            .get(name)
                            .map_or(Decision::Hidden, |r: &Route| r.decision),
                    )
                })
                .collect(),
            None => Vec::new(),
        };

        metrics.set_catalog_tools(tools.len());
        metrics.set_catalog_conflicts(conflicts.len());
        let (lazy, tools, ruled_tools) = match cfg.tools_mode {
            ToolsMode::Direct => (
                None,
                ListPages::build("tools", &tools, page_size),
                ruled_tools,
            ),
            ToolsMode::Lazy => {
                let decisions = tools
                    .iter()
                    .map(|t| {
                        let name = t.get("name").and_then(Value::as_str).unwrap_or_default();
                        tool_routes
                            .get(name)
                            .map_or(Decision::Hidden, |r: &Route| r.decision)
                    })
                    .collect();
                let search_metrics = metrics.tool("sluice", lazy::SEARCH_TOOLS);
                let lazy = lazy::LazyTools::build(&tools, decisions, search_metrics);
                (Some(lazy), lazy::builtin_pages(), Vec::new())
            }
        };
        GatewayCatalog {
            name: cfg.name.clone(),
            metrics,
            servers: sel.used,
            tools,
            prompts: ListPages::build("prompts", &prompts, page_size),
            resources: ListPages::build("resources", &resources, page_size),
            resource_templates: ListPages::build("resourceTemplates", &templates, page_size),
            tool_routes,
            prompt_routes,
            resource_routes,
            template_prefixes,
            sole_resource_server,
            conflicts,
            ruled_tools,
            filtered: Mutex::new(HashMap::new()),
            page_size,
            policies: None,
            limiter: None,
            lazy,
        }
    }

    /// Attaches the gateway's policies and limits: each tool's route learns which policies
    /// can apply to it and gets its rate-limit bucket, so a call looks neither up.
    pub fn with_controls(
        mut self,
        policies: Option<Arc<Policies>>,
        limiter: Option<Arc<GatewayLimiter>>,
    ) -> Self {
        for (name, route) in &mut self.tool_routes {
            if let Some(p) = &policies {
                route.policies = p.candidates(name);
            }
            if let Some(l) = &limiter {
                route.bucket = l.tool_bucket(name);
            }
        }
        self.policies = policies;
        self.limiter = limiter;
        self
    }

    /// The `tools/list` pages a caller with `grants` sees: `None` when the gateway has no
    /// rules (everyone sees [`GatewayCatalog::tools`]). Built once per distinct outcome.
    pub fn tools_for(&self, grants: Grants) -> Option<Arc<ListPages>> {
        if self.ruled_tools.is_empty() {
            // No rules (or no tools, where the shared empty pages are the answer anyway).
            return None;
        }
        let mut cache = self.filtered.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(pages) = cache.get(&grants) {
            return Some(pages.clone());
        }
        let visible: Vec<Value> = self
            .ruled_tools
            .iter()
            .filter(|(_, d)| d.allows(grants))
            .map(|(t, _)| t.clone())
            .collect();
        let pages = Arc::new(ListPages::build("tools", &visible, self.page_size));
        if cache.len() >= MAX_FILTERED_LISTS {
            cache.clear();
        }
        cache.insert(grants, pages.clone());
        Some(pages)
    }

    /// The route of a tool name shown by this gateway.
    pub fn route_tool(&self, name: &str) -> Option<&Route> {
        self.tool_routes.get(name)
    }

    /// The route of a prompt name shown by this gateway.
    pub fn route_prompt(&self, name: &str) -> Option<&Route> {
        self.prompt_routes.get(name)
    }

    /// The server owning a resource URI: a listed resource, else the longest matching
    /// template prefix, else the only server offering resources. A withheld URI, or one a
    /// withheld template matches first, has no owner.
    pub fn route_resource(&self, uri: &str) -> Option<ServerIdx> {
        if let Some(&i) = self.resource_routes.get(uri) {
            return Some(i);
        }
        if self.conflicts.withholds(Kind::Resource, uri) {
            return None;
        }
        if let Some((_, owner)) = self
            .template_prefixes
            .iter()
            .find(|(p, _)| !p.is_empty() && uri.starts_with(p.as_str()))
        {
            return *owner;
        }
        self.sole_resource_server
    }

    /// The clash that withholds a name of `kind` from this gateway (for a resource URI: the
    /// URI itself, or a withheld template it matches), to explain a refused request.
    pub fn withheld(&self, kind: Kind, name: &str) -> Option<&Conflict> {
        let found = self.conflicts.get(kind, name);
        if found.is_some() || kind != Kind::Resource {
            return found;
        }
        self.conflicts.list().iter().find(|c| {
            let literal = c.name.split('{').next().unwrap_or_default();
            c.kind == Kind::ResourceTemplate && !literal.is_empty() && name.starts_with(literal)
        })
    }

    /// Names of tools close to `name` that a caller with `grants` may use, for error
    /// messages.
    pub fn similar_tools(&self, name: &str, limit: usize, grants: Option<Grants>) -> Vec<&str> {
        let mut scored: Vec<(usize, &str)> = self
            .tool_routes
            .iter()
            .filter(|(_, r)| grants.is_none_or(|g| r.decision.allows(g)))
            .map(|(k, _)| (edit_distance(name, k), &**k))
            .filter(|(d, k)| *d <= (k.len().max(name.len()) / 3).max(2))
            .collect();
        scored.sort();
        scored.into_iter().take(limit).map(|(_, k)| k).collect()
    }
}

/// One entry a gateway takes from one of its servers, before it is named for the gateway.
#[derive(Debug, Clone, Copy)]
struct Offer<'a> {
    server: ServerIdx,
    /// The upstream's own name (tools, prompts), URI (resources) or `uriTemplate`.
    name: &'a str,
    /// The definition as the upstream sent it.
    item: &'a Value,
}

/// What a gateway takes from its servers, each list in the gateway's server order: whole
/// servers (`servers = [...]`) first, then those of individually listed tools.
struct Selection<'a> {
    /// The servers the gateway uses, for session fan-out.
    used: Vec<ServerIdx>,
    tools: Vec<Offer<'a>>,
    prompts: Vec<Offer<'a>>,
    resources: Vec<Offer<'a>>,
    templates: Vec<Offer<'a>>,
}

impl<'a> Selection<'a> {
    /// Whole servers give every tool, prompt, resource and template; an individually listed
    /// tool gives only itself. Entries without their name (or URI) are skipped.
    fn of(
        cfg: &GatewayConfig,
        server_index: &HashMap<String, ServerIdx>,
        servers: &'a [Option<Arc<ServerCatalog>>],
    ) -> Self {
        let mut used: Vec<ServerIdx> = Vec::new();
        let mut whole: Vec<ServerIdx> = Vec::new();
        for s in &cfg.servers {
            if let Some(&i) = server_index.get(s.as_str()) {
                whole.push(i);
                used.push(i);
            }
        }
        // Individually listed tools: server -> allowed upstream names.
        let mut picked: HashMap<ServerIdx, Vec<&str>> = HashMap::new();
        for t in &cfg.tools {
            if let Some((server, tool)) = t.split_once(PREFIX_SEPARATOR)
                && let Some(&i) = server_index.get(server)
            {
                picked.entry(i).or_default().push(tool);
                if !used.contains(&i) {
                    used.push(i);
                }
            }
        }
        /// The entries of `items` that carry a string under `key`.
        fn offers<'a>(
            items: &'a [Value],
            key: &'static str,
            server: ServerIdx,
        ) -> impl Iterator<Item = Offer<'a>> {
            items.iter().filter_map(move |item| {
                let name = item.get(key).and_then(Value::as_str)?;
                Some(Offer { server, name, item })
            })
        }
        let (mut tools, mut prompts, mut resources, mut templates) =
            (Vec::new(), Vec::new(), Vec::new(), Vec::new());
        for &i in &used {
            let Some(Some(cat)) = servers.get(i) else {
                continue;
            };
            let is_whole = whole.contains(&i);
            tools.extend(
                offers(&cat.tools, "name", i)
                    .filter(|o| is_whole || picked.get(&i).is_some_and(|p| p.contains(&o.name))),
            );
            if is_whole {
                prompts.extend(offers(&cat.prompts, "name", i));
                resources.extend(offers(&cat.resources, "uri", i));
                templates.extend(offers(&cat.resource_templates, "uriTemplate", i));
            }
        }
        Selection {
            used,
            tools,
            prompts,
            resources,
            templates,
        }
    }
}

fn route(
    server: ServerIdx,
    upstream_name: &str,
    decision: Decision,
    metrics: Arc<ToolMetrics>,
) -> Route {
    Route {
        server,
        decision,
        metrics,
        policies: Box::default(),
        bucket: None,
        read_uri: None,
        upstream_literal: json_literal(upstream_name),
    }
}

/// `s` as a JSON string literal (with quotes).
fn json_literal(s: &str) -> Box<[u8]> {
    // A string always serialises.
    serde_json::to_vec(s).unwrap_or_default().into_boxed_slice()
}

fn renamed(item: &Value, key: &str, name: &str) -> Value {
    let mut item = item.clone();
    if let Value::Object(map) = &mut item {
        map.insert(key.to_owned(), Value::String(name.to_owned()));
    }
    item
}

/// Levenshtein distance over chars; only used for error messages.
fn edit_distance(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut prev: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.chars().enumerate() {
        let mut cur = vec![i + 1; b.len() + 1];
        for (j, cb) in b.iter().enumerate() {
            let cost = usize::from(ca != *cb);
            cur[j + 1] = (prev[j] + cost).min(prev[j + 1] + 1).min(cur[j] + 1);
        }
        prev = cur;
    }
    prev[b.len()]
}

#[cfg(test)]
mod tests;
