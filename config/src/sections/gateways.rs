//! `[[gateways]]`: the client-facing endpoints. Every reference must resolve to a declared
//! server, a misspelt one suggesting the nearest, so a typo fails at load instead of silently
//! hiding tools at run time. A gateway without prefixes (`prefix = false`) must not select two
//! tools of one name: that clash is visible in the file, so it is refused here rather than
//! withheld at run time.

use std::collections::HashSet;

use toml::de::DeTable;

use super::auth::Auth;
use super::{array_of_tables, name, unknown};
use crate::reader::{Reader, Text};
use crate::schema::{GatewayAuthConfig, MAX_RULES, ToolRule};
use crate::suggest;
use crate::{GatewayConfig, GatewayName, ServerName};

const KEYS: &[&str] = &[
    "name",
    "servers",
    "tools",
    "prefix",
    "auth",
    "tools_mode",
    "policies",
    "policy_default",
    "limits",
    "builtin_tools",
];
const AUTH_KEYS: &[&str] = &["tokens", "providers", "id_jag", "scopes", "rules"];
const RULE_KEYS: &[&str] = &["tools", "require"];
const P: &str = "gateways";

pub(super) fn read(
    r: &mut Reader<'_>,
    doc: &DeTable<'_>,
    declared: &[String],
    auth: &Auth,
    has_control: bool,
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
        let builtin_tools = super::builtin::gateway_flag(r, t, declared, has_control);
        let listed =
            server_refs.as_ref().map_or(0, Vec::len) + tool_refs.as_ref().map_or(0, Vec::len);
        if listed == 0 && !badly_typed && !builtin_tools {
            r.problem(
                span,
                "[[gateways]] entry serves nothing: give it servers = [\"name\"], tools = [\"server__tool\"] or builtin_tools = true",
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
        let prefix = r.boolean(t, "prefix", P).unwrap_or(true);
        let mut tools = Vec::new();
        let mut listed_tools = HashSet::new();
        let mut bare_names = Vec::new();
        for tool in tool_refs.unwrap_or_default() {
            if tool_ref(r, &tool, &known)
                && listed_once(r, &tool, &mut listed_tools, "tool")
                && (prefix || shown_once(r, &tool, &mut bare_names))
            {
                tools.push(tool.value);
            }
        }

        let gateway_auth = r
            .table(t, "auth")
            .and_then(|(a, span)| read_auth(r, a, span, auth));
        let tools_mode = super::policies::tools_mode(r, t);
        let policies = super::policies::policies(r, t).unwrap_or_default();
        let policy_default = super::policies::policy_default(r, t);
        let limits = super::policies::limits(r, t);
        if let Some(name) = gateway_name {
            out.push(GatewayConfig {
                name,
                servers,
                tools,
                prefix,
                auth: gateway_auth,
                tools_mode,
                policies,
                policy_default,
                limits,
                builtin_tools,
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

/// On a gateway without prefixes, refuses a `tools` entry whose tool name an earlier entry
/// already selected (from another server, since an entry listed twice is refused before): both
/// would be shown under the same name. `earlier` holds (tool name, entry as shown).
fn shown_once(r: &mut Reader<'_>, entry: &Text, earlier: &mut Vec<(String, String)>) -> bool {
    let bare = entry.value.split_once("__").map_or("", |(_, n)| n);
    if let Some((_, first)) = earlier.iter().find(|(name, _)| name == bare) {
        r.problem(
            entry.span.clone(),
            format!(
                "tools {first} and {} are both shown as {} on this gateway, which has prefix = false; list only one of them, or set prefix = true to show them as server__tool",
                entry.shown(),
                entry.shown_part(bare)
            ),
        );
        return false;
    }
    earlier.push((bare.to_owned(), entry.shown()));
    true
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

/// `[gateways.auth]`: what the gateway accepts and its tool rules.
fn read_auth(
    r: &mut Reader<'_>,
    t: &DeTable<'_>,
    span: std::ops::Range<usize>,
    auth: &Auth,
) -> Option<GatewayAuthConfig> {
    const P: &str = "gateways.auth";
    r.check_keys(t, AUTH_KEYS, "[gateways.auth]");
    let tokens = r.boolean(t, "tokens", P).unwrap_or(false);
    let id_jag = r.boolean(t, "id_jag", P).unwrap_or(false);
    let mut ok = true;
    let mut providers = Vec::new();
    for p in r.strings(t, "providers", P).unwrap_or_default() {
        if auth.providers.contains(&p.value) {
            if providers.contains(&p.value) {
                r.problem(
                    p.span.clone(),
                    format!("provider {} is listed twice in this gateway", p.shown()),
                );
            } else {
                providers.push(p.value);
            }
        } else {
            ok = false;
            r.problem(
                p.span.clone(),
                unknown("provider", &p, &auth.providers, "[[auth.providers]]"),
            );
        }
    }
    if tokens
        && auth.config.tokens.is_empty()
        && let Some(v) = t.get("tokens")
    {
        r.problem(
            v.span(),
            "gateways.auth.tokens = true but no [[auth.tokens]] are declared",
        );
    }
    if id_jag
        && !auth.has_issuer
        && let Some(v) = t.get("id_jag")
    {
        r.problem(v.span(), "gateways.auth.id_jag = true needs [auth.issuer]");
    }
    let typed = |k: &str, bool_kind: bool| {
        t.get(k).is_none_or(|v| {
            matches!(
                (v.get_ref(), bool_kind),
                (toml::de::DeValue::Boolean(_), true) | (toml::de::DeValue::Array(_), false)
            )
        })
    };
    let well_typed = typed("tokens", true) && typed("id_jag", true) && typed("providers", false);
    if !tokens && !id_jag && providers.is_empty() && ok && well_typed {
        r.problem(
            span.clone(),
            "[gateways.auth] accepts no credential, so it would refuse every request: set tokens = true, providers = [\"name\"] or id_jag = true",
        );
    }
    let scopes = r
        .strings(t, "scopes", P)
        .unwrap_or_default()
        .into_iter()
        .map(|s| s.value)
        .collect();
    let mut rules = Vec::new();
    let entries = super::array_of_tables(r, t, "rules");
    if entries.len() > MAX_RULES {
        r.problem(
            span,
            format!(
                "[gateways.auth] has {} rules; at most {MAX_RULES} are allowed",
                entries.len()
            ),
        );
        ok = false;
    }
    for (rt, rspan) in entries {
        match read_rule(r, rt, rspan) {
            Some(rule) => rules.push(rule),
            None => ok = false,
        }
    }
    ok.then_some(GatewayAuthConfig {
        tokens,
        providers,
        id_jag,
        scopes,
        rules,
    })
}

fn read_rule(
    r: &mut Reader<'_>,
    t: &DeTable<'_>,
    span: std::ops::Range<usize>,
) -> Option<ToolRule> {
    const P: &str = "gateways.auth.rules";
    r.check_keys(t, RULE_KEYS, "[[gateways.auth.rules]]");
    let tools: Vec<String> = match r.strings(t, "tools", P) {
        Some(list) if !list.is_empty() => {
            let mut out = Vec::new();
            for p in list {
                if p.value.is_empty() || p.value.contains("**") {
                    r.problem(p.span.clone(), format!("gateways.auth.rules.tools pattern {} must be a tool name where * matches any run of characters", p.shown()));
                    return None;
                }
                out.push(p.value);
            }
            out
        }
        Some(_) => {
            r.problem(
                span,
                "gateways.auth.rules.tools must name at least one tool pattern",
            );
            return None;
        }
        None => {
            if t.get("tools").is_none() {
                r.problem(span, "[[gateways.auth.rules]] entry is missing the required key \"tools\" (patterns such as \"github__*\")");
            }
            return None;
        }
    };
    let mut require = Vec::new();
    if let Some((req, _)) = r.table(t, "require") {
        for (k, v) in req.iter() {
            let key: &str = k.get_ref();
            let what = format!("{P}.require.{key}");
            let values = match v.get_ref() {
                toml::de::DeValue::Array(items) if !items.is_empty() => items
                    .iter()
                    .map(|i| r.claim_value(i, &what))
                    .collect::<Option<Vec<_>>>()?,
                toml::de::DeValue::Array(_) => {
                    r.problem(v.span(), format!("{what} must name at least one value"));
                    return None;
                }
                _ => vec![r.claim_value(v, &what)?],
            };
            require.push((key.to_owned(), values));
        }
    }
    Some(ToolRule { tools, require })
}
