//! The names and definitions of synthesised read-resource tools (`servers[].resource_tools`),
//! made from a server's tool and resource lists.
//!
//! A server that offers resources but no tools is invisible to a client that only calls
//! tools, and cannot be assigned to a gateway entry by entry (`tools = ["docs__read_x"]`).
//! So, when the server qualifies, each resource it lists becomes a tool of that server:
//! `read_{slug}`, with no arguments and `readOnlyHint`, whose call the proxy turns into a
//! `resources/read` of the resource's URI.
//!
//! This lives here, not in the proxy, because two processes must agree on the names: the
//! proxy, which lists and routes the tools, and the control plane, whose tool discovery shows
//! teams the names they can assign before any proxy has fetched the server. Both call this
//! one pure function on the same lists, so what `sluice ctl installations tools` shows is
//! what a proxy serves.
//!
//! Names are deterministic: the slug is the resource's `name` (else its URI) lowercased, with
//! every run of characters outside `[a-z0-9]` one `_`, cut to [`MAX_SLUG_LEN`]; a name
//! already taken (by one of the server's own tools or an earlier resource, in list order)
//! gets `_2`, `_3`, ... At most [`MAX_RESOURCE_TOOLS`] resources become tools; the rest stay
//! readable with `resources/read` only.

use std::collections::{BTreeMap, HashSet};

use serde_json::{Value, json};

use crate::ResourceTools;

/// Most synthesised tools per server: a server listing thousands of resources would otherwise
/// flood every `tools/list` of its gateways. Resources past it get no tool (logged).
pub const MAX_RESOURCE_TOOLS: usize = 256;

/// Longest slug (before a collision suffix): the shown name `{server}__read_{slug}` stays
/// well inside the 128 characters MCP clients accept for a tool name.
pub const MAX_SLUG_LEN: usize = 48;

/// Prefix of every synthesised tool's own name.
pub const READ_PREFIX: &str = "read_";

/// What [`synthesise`] made for one server.
#[derive(Debug, Default, PartialEq)]
pub struct Synthesised {
    /// The tool definitions, in the resources' order.
    pub tools: Vec<Value>,
    /// Each tool's own name and the URI it reads.
    pub uris: BTreeMap<String, String>,
    /// Listed resources left without a tool past [`MAX_RESOURCE_TOOLS`].
    pub skipped: usize,
}

/// Whether a server with these lists gets read-resource tools under `mode`.
pub fn qualifies(mode: ResourceTools, tools: &[Value], resources: &[Value]) -> bool {
    match mode {
        ResourceTools::Off => false,
        ResourceTools::Auto => tools.is_empty() && !resources.is_empty(),
        ResourceTools::On => !resources.is_empty(),
    }
}

/// The read-resource tools for `resources` beside the server's own `tools` (whose names they
/// never take). Resources without a string `uri` are skipped.
pub fn synthesise(tools: &[Value], resources: &[Value]) -> Synthesised {
    let mut taken: HashSet<String> = tools
        .iter()
        .filter_map(|t| t.get("name").and_then(Value::as_str))
        .map(str::to_owned)
        .collect();
    let mut out = Synthesised::default();
    for resource in resources {
        let Some(uri) = resource.get("uri").and_then(Value::as_str) else {
            continue;
        };
        if out.tools.len() == MAX_RESOURCE_TOOLS {
            out.skipped += 1;
            continue;
        }
        let label = resource
            .get("name")
            .and_then(Value::as_str)
            .filter(|n| !n.trim().is_empty())
            .unwrap_or(uri);
        let name = unique(format!("{READ_PREFIX}{}", slug(label)), &taken);
        taken.insert(name.clone());
        out.tools.push(definition(&name, uri, resource));
        out.uris.insert(name, uri.to_owned());
    }
    out
}

/// `text` as a tool-safe slug: lowercase `[a-z0-9]` runs joined by single `_`, at most
/// [`MAX_SLUG_LEN`] bytes; `resource` when nothing is left.
pub fn slug(text: &str) -> String {
    let mut out = String::with_capacity(text.len().min(MAX_SLUG_LEN));
    let mut gap = false;
    for c in text.chars() {
        if c.is_ascii_alphanumeric() {
            if gap && !out.is_empty() {
                out.push('_');
            }
            gap = false;
            out.push(c.to_ascii_lowercase());
        } else {
            gap = true;
        }
        if out.len() >= MAX_SLUG_LEN {
            break;
        }
    }
    out.truncate(MAX_SLUG_LEN);
    let trimmed = out.trim_end_matches('_');
    if trimmed.is_empty() {
        "resource".to_owned()
    } else {
        trimmed.to_owned()
    }
}

/// `base`, or `base_2`, `base_3`, ... whichever is first free.
fn unique(base: String, taken: &HashSet<String>) -> String {
    if !taken.contains(&base) {
        return base;
    }
    (2..)
        .map(|n| format!("{base}_{n}"))
        .find(|n| !taken.contains(n))
        .expect("an endless range of suffixes has a free one")
}

/// The tool definition reading `uri`.
fn definition(name: &str, uri: &str, resource: &Value) -> Value {
    let mut description = format!("Read the resource {uri}");
    if let Some(d) = resource
        .get("description")
        .and_then(Value::as_str)
        .map(str::trim)
        .filter(|d| !d.is_empty())
    {
        description.push_str(": ");
        description.push_str(d);
    }
    let mut tool = json!({
        "name": name,
        "description": description,
        "inputSchema": { "type": "object", "properties": {} },
        "annotations": { "readOnlyHint": true },
    });
    if let Some(title) = resource.get("title").and_then(Value::as_str) {
        tool["title"] = Value::String(format!("Read {title}"));
    }
    tool
}

#[cfg(test)]
mod tests {
    use super::*;

    fn resource(name: &str, uri: &str) -> Value {
        json!({ "name": name, "uri": uri })
    }

    #[test]
    fn slugs_are_lowercase_alphanumeric_runs_joined_by_underscores() {
        assert_eq!(slug("User Guide"), "user_guide");
        assert_eq!(slug("  --Read.Me!! "), "read_me");
        assert_eq!(slug("logo.png"), "logo_png");
        assert_eq!(slug("Ünïcode naïve"), "n_code_na_ve");
        assert_eq!(slug("日本"), "resource");
        assert_eq!(slug(""), "resource");
        assert_eq!(slug("note://docs/a_b"), "note_docs_a_b");
        let long = "x".repeat(200);
        assert_eq!(slug(&long).len(), MAX_SLUG_LEN);
        let cut = format!("{}-{}", "a".repeat(MAX_SLUG_LEN - 1), "b");
        assert_eq!(slug(&cut), "a".repeat(MAX_SLUG_LEN - 1), "no trailing _");
    }

    #[test]
    fn collisions_get_suffixes_in_list_order_and_never_take_a_real_tools_name() {
        let tools = vec![json!({ "name": "read_guide" })];
        let resources = vec![
            resource("Guide", "docs://a"),
            resource("guide", "docs://b"),
            resource("GUIDE!", "docs://c"),
            resource("guide 2", "docs://d"),
        ];
        let made = synthesise(&tools, &resources);
        let names: Vec<&str> = made
            .tools
            .iter()
            .map(|t| t["name"].as_str().unwrap())
            .collect();
        assert_eq!(
            names,
            [
                "read_guide_2",
                "read_guide_3",
                "read_guide_4",
                "read_guide_2_2"
            ]
        );
        assert_eq!(made.uris["read_guide_2"], "docs://a");
        assert_eq!(made.uris["read_guide_2_2"], "docs://d");
        // The same input always gives the same names.
        assert_eq!(synthesise(&tools, &resources), made);
    }

    #[test]
    fn definitions_read_only_with_an_empty_schema_and_the_resources_description() {
        let made = synthesise(
            &[],
            &[
                json!({ "uri": "docs://guide", "name": "Guide", "title": "The guide", "description": "How to." }),
                json!({ "uri": "docs://bare" }),
                json!({ "name": "no uri" }),
            ],
        );
        assert_eq!(made.tools.len(), 2);
        assert_eq!(
            made.tools[0],
            json!({
                "name": "read_guide",
                "title": "Read The guide",
                "description": "Read the resource docs://guide: How to.",
                "inputSchema": { "type": "object", "properties": {} },
                "annotations": { "readOnlyHint": true },
            })
        );
        assert_eq!(made.tools[1]["name"], "read_docs_bare");
        assert_eq!(
            made.tools[1]["description"],
            "Read the resource docs://bare"
        );
    }

    #[test]
    fn at_most_the_bound_become_tools() {
        let resources: Vec<Value> = (0..MAX_RESOURCE_TOOLS + 5)
            .map(|i| resource(&format!("r{i}"), &format!("docs://{i}")))
            .collect();
        let made = synthesise(&[], &resources);
        assert_eq!(made.tools.len(), MAX_RESOURCE_TOOLS);
        assert_eq!(made.skipped, 5);
    }

    #[test]
    fn modes_decide_which_servers_qualify() {
        let tool = [json!({ "name": "t" })];
        let res = [resource("r", "docs://r")];
        assert!(qualifies(ResourceTools::Auto, &[], &res));
        assert!(!qualifies(ResourceTools::Auto, &tool, &res));
        assert!(!qualifies(ResourceTools::Auto, &[], &[]));
        assert!(qualifies(ResourceTools::On, &tool, &res));
        assert!(!qualifies(ResourceTools::Off, &[], &res));
    }

    #[test]
    fn modes_are_spelled_as_in_the_config_file() {
        for mode in [ResourceTools::Auto, ResourceTools::Off, ResourceTools::On] {
            assert_eq!(ResourceTools::parse(mode.as_str()), Some(mode));
            assert_eq!(serde_json::to_value(mode).unwrap(), mode.as_str());
        }
        assert_eq!(ResourceTools::parse("On"), None);
        assert_eq!(ResourceTools::parse(""), None);
        let read: ResourceTools = serde_json::from_value(json!("off")).unwrap();
        assert_eq!(read, ResourceTools::Off);
    }
}
