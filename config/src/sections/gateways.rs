//! `[[gateways]]`: the client-facing endpoints. Every reference must resolve to a declared
//! server, a misspelt one suggesting the nearest, so a typo fails at load instead of silently
//! hiding tools at run time.

use std::collections::HashSet;

use toml::de::DeTable;

use super::{array_of_tables, name};
use crate::reader::{Reader, Text};
use crate::suggest;
use crate::{GatewayConfig, GatewayName, ServerName};

const KEYS: &[&str] = &["name", "servers", "tools"];
const P: &str = "gateways";

pub(super) fn read(
    r: &mut Reader<'_>,
    doc: &DeTable<'_>,
    declared: &[String],
) -> Vec<GatewayConfig> {
    let known: Vec<&str> = declared.iter().map(String::as_str).collect();
    let mut out = Vec::new();
    let mut seen = HashSet::new();
    for (t, span) in array_of_tables(r, doc, "gateways") {
        r.check_keys(t, KEYS, "[[gateways]]");
        let name_text = r.required_string(t, "name", P, "[[gateways]]", span.clone());
        let gateway_name = name_text
            .as_ref()
            .and_then(|n| name(r, n, GatewayName::new, P));
        if let (Some(n), Some(text)) = (&gateway_name, &name_text)
            && !seen.insert(n.clone())
        {
            r.problem(
                text.span.clone(),
                format!("duplicate gateway name {}", text.shown()),
            );
        }

        let server_refs = r.strings(t, "servers", P);
        let tool_refs = r.strings(t, "tools", P);
        let badly_typed = (t.get("servers").is_some() && server_refs.is_none())
            || (t.get("tools").is_some() && tool_refs.is_none());
        let listed =
            server_refs.as_ref().map_or(0, Vec::len) + tool_refs.as_ref().map_or(0, Vec::len);
        if listed == 0 && !badly_typed {
            r.problem(
                span,
                "[[gateways]] entry serves nothing: give it servers = [\"name\"] or tools = [\"server__tool\"]",
            );
        }

        let mut servers = Vec::new();
        let mut listed_servers = HashSet::new();
        for s in server_refs.unwrap_or_default() {
            if let Some(n) = server_ref(r, &s, &known)
                && listed_once(r, &s, &mut listed_servers, "server")
            {
                servers.push(n);
            }
        }
        let mut tools = Vec::new();
        let mut listed_tools = HashSet::new();
        for tool in tool_refs.unwrap_or_default() {
            if tool_ref(r, &tool, &known) && listed_once(r, &tool, &mut listed_tools, "tool") {
                tools.push(tool.value);
            }
        }

        if let Some(name) = gateway_name {
            out.push(GatewayConfig {
                name,
                servers,
                tools,
            });
        }
    }
    out
}

/// The declared server named by an entry of `servers = [...]`.
fn server_ref(r: &mut Reader<'_>, s: &Text, known: &[&str]) -> Option<ServerName> {
    if known.contains(&s.value.as_str()) {
        // A declared name passed validation already.
        return ServerName::new(&s.value).ok();
    }
    r.problem(s.span.clone(), unknown_server(s, &s.value, known));
    None
}

/// Whether an entry of `tools = [...]` is `server__tool` with a declared server.
fn tool_ref(r: &mut Reader<'_>, tool: &Text, known: &[&str]) -> bool {
    match tool.value.split_once("__") {
        Some((server, name)) if !server.is_empty() && !name.is_empty() => {
            if known.contains(&server) {
                return true;
            }
            let message = unknown_server(tool, server, known);
            r.problem(tool.span.clone(), message);
        }
        _ => r.problem(
            tool.span.clone(),
            format!(
                "gateways.tools entry {} must name one tool as \"server__tool\"",
                tool.shown()
            ),
        ),
    }
    false
}

/// Refuses an entry listed twice in one gateway: harmless to serve, but most likely a
/// copy-paste slip standing where another entry was meant.
fn listed_once(r: &mut Reader<'_>, entry: &Text, seen: &mut HashSet<String>, what: &str) -> bool {
    if seen.insert(entry.value.clone()) {
        return true;
    }
    r.problem(
        entry.span.clone(),
        format!("{what} {} is listed twice in this gateway", entry.shown()),
    );
    false
}

/// `unknown server "x"` with the nearest declared server, or the declared ones.
fn unknown_server(text: &Text, server: &str, known: &[&str]) -> String {
    let shown = text.shown_part(server);
    if known.is_empty() {
        return format!("unknown server {shown}; no [[servers]] are declared");
    }
    match suggest::nearest(server, known) {
        Some(k) => format!("unknown server {shown}; did you mean {k:?}?"),
        None => format!(
            "unknown server {shown}; declared servers: {}",
            known.join(", ")
        ),
    }
}
