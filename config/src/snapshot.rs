//! The registry snapshot: what the control process hands every proxy replica. It lives here,
//! at the bottom of the workspace, because control produces it and proxies consume it and
//! neither may import the other.
//!
//! Its servers and gateways use exactly the keys of `[[servers]]` and `[[gateways]]`, and
//! [`load_str_with_snapshot`] validates them by rendering them as TOML and running the one
//! loader: whatever a proxy accepts from control, it would accept from its file, with the
//! same checks, and a name in both the file and the snapshot is a duplicate like any other.
//! Credential values are carried decrypted (the sync channel is authenticated), so `Debug`
//! hides them.

use std::collections::BTreeMap;
use std::fmt;

use serde::{Deserialize, Serialize};

use crate::quickstart::toml_string;
use crate::{Config, ConfigErrors};

/// A complete, versioned registry snapshot.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Snapshot {
    /// The registry version it reflects; every registry write increases it.
    pub version: u64,
    /// Upstream servers (remote installations), as `[[servers]]` entries.
    #[serde(default)]
    pub servers: Vec<SnapshotServer>,
    /// Gateways, as `[[gateways]]` entries.
    #[serde(default)]
    pub gateways: Vec<SnapshotGateway>,
}

/// One `[[servers]]` entry from the registry.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SnapshotServer {
    /// `name`.
    pub name: String,
    /// `url`.
    pub url: String,
    /// `[servers.credential]`, key by key as in the file (`type`, `header`, `value`, ...);
    /// empty = no credential. Values may be secrets.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub credential: BTreeMap<String, String>,
    /// `resource_tools` (`"auto"`, `"off"`, `"on"`); absent = the loader's default.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub resource_tools: Option<String>,
}

impl fmt::Debug for SnapshotServer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let keys: Vec<&String> = self.credential.keys().collect();
        f.debug_struct("SnapshotServer")
            .field("name", &self.name)
            .field("url", &self.url)
            .field("credential_keys", &keys)
            .field("resource_tools", &self.resource_tools)
            .finish()
    }
}

/// One `[[gateways]]` entry from the registry.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SnapshotGateway {
    /// `name`.
    pub name: String,
    /// `servers`: every tool of these.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub servers: Vec<String>,
    /// `tools`: individual `server__tool` entries.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub tools: Vec<String>,
    /// `prefix`; absent = the loader's default.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub prefix: Option<bool>,
    /// `tools_mode`; absent = the loader's default.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tools_mode: Option<String>,
    /// `[gateways.auth]`; absent = an open gateway.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub auth: Option<SnapshotGatewayAuth>,
    /// `builtin_tools`: also show control's `sluice__*` tools.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub builtin_tools: bool,
}

/// `[gateways.auth]` of a registry gateway. Tokens and providers themselves are declared in
/// the proxy's file (`[auth]`); the registry only says which the gateway accepts.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SnapshotGatewayAuth {
    /// `tokens`.
    #[serde(default)]
    pub tokens: bool,
    /// `providers`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub providers: Vec<String>,
    /// `scopes`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub scopes: Vec<String>,
}

impl SnapshotGateway {
    /// The servers it shows: its `servers`, then the server of each `server__tool` entry.
    pub fn referenced_servers(&self) -> impl Iterator<Item = &str> {
        self.servers
            .iter()
            .map(String::as_str)
            .chain(self.tools.iter().filter_map(|t| tool_server(t)))
    }
}

/// The server of a `server__tool` gateway entry.
pub fn tool_server(entry: &str) -> Option<&str> {
    entry.split_once("__").map(|(server, _)| server)
}

impl Snapshot {
    /// The snapshot as `[[servers]]` and `[[gateways]]` TOML tables, one key per line, every
    /// string escaped so that it reads back verbatim (no `${VAR}` substitution).
    pub fn to_toml(&self) -> String {
        let mut out = String::new();
        for s in &self.servers {
            out.push_str("[[servers]]\n");
            key(&mut out, "name", &toml_string(&s.name));
            key(&mut out, "url", &toml_string(&s.url));
            if !s.credential.is_empty() {
                let fields: Vec<String> = s
                    .credential
                    .iter()
                    .map(|(k, v)| format!("{} = {}", toml_string(k), toml_string(v)))
                    .collect();
                key(
                    &mut out,
                    "credential",
                    &format!("{{ {} }}", fields.join(", ")),
                );
            }
            if let Some(m) = &s.resource_tools {
                key(&mut out, "resource_tools", &toml_string(m));
            }
            out.push('\n');
        }
        for g in &self.gateways {
            out.push_str("[[gateways]]\n");
            key(&mut out, "name", &toml_string(&g.name));
            key(&mut out, "servers", &toml_array(&g.servers));
            key(&mut out, "tools", &toml_array(&g.tools));
            if let Some(p) = g.prefix {
                key(&mut out, "prefix", &p.to_string());
            }
            if g.builtin_tools {
                key(&mut out, "builtin_tools", "true");
            }
            if let Some(m) = &g.tools_mode {
                key(&mut out, "tools_mode", &toml_string(m));
            }
            if let Some(a) = &g.auth {
                let auth = format!(
                    "{{ tokens = {}, providers = {}, scopes = {} }}",
                    a.tokens,
                    toml_array(&a.providers),
                    toml_array(&a.scopes)
                );
                key(&mut out, "auth", &auth);
            }
            out.push('\n');
        }
        out
    }
}

fn key(out: &mut String, name: &str, value: &str) {
    out.push_str(name);
    out.push_str(" = ");
    out.push_str(value);
    out.push('\n');
}

fn toml_array(items: &[String]) -> String {
    let items: Vec<String> = items.iter().map(|s| toml_string(s)).collect();
    format!("[{}]", items.join(", "))
}

/// Validates a config file's text merged with a registry snapshot, as one config: the
/// snapshot's servers and gateways follow the file's, so a name in both is a duplicate and
/// references may cross between them. Errors in the snapshot's part are labelled
/// `<registry snapshot vN>` with lines counted in [`Snapshot::to_toml`]'s text.
pub fn load_str_with_snapshot(
    source: &str,
    file_name: &str,
    env: &dyn Fn(&str) -> Option<String>,
    snapshot: &Snapshot,
) -> Result<Config, ConfigErrors> {
    let mut merged = source.to_owned();
    if !merged.is_empty() && !merged.ends_with('\n') {
        merged.push('\n');
    }
    let first_line = merged.matches('\n').count() + 1;
    merged.push_str(&snapshot.to_toml());
    crate::load_str(&merged, file_name, env).map_err(|mut e| {
        let label = format!("<registry snapshot v{}>", snapshot.version);
        for err in &mut e.errors {
            if err.line >= first_line {
                err.file = label.clone();
                err.line -= first_line - 1;
            }
        }
        e
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn snapshot() -> Snapshot {
        Snapshot {
            version: 7,
            servers: vec![SnapshotServer {
                name: "github".into(),
                url: "http://127.0.0.1:1/mcp".into(),
                credential: BTreeMap::from([
                    ("type".into(), "static".into()),
                    ("value".into(), "Bearer ${not-a-var} \"q\"".into()),
                ]),
                resource_tools: None,
            }],
            gateways: vec![SnapshotGateway {
                name: "team".into(),
                servers: vec!["github".into(), "local".into()],
                tools: vec![],
                prefix: Some(true),
                tools_mode: None,
                builtin_tools: false,
                auth: None,
            }],
        }
    }

    const FILE: &str = "[[servers]]\nname = \"local\"\nurl = \"http://127.0.0.1:2/mcp\"\n";

    #[test]
    fn snapshot_entries_merge_with_the_file_and_may_reference_its_servers() {
        let config = load_str_with_snapshot(FILE, "f.toml", &|_| None, &snapshot()).unwrap();
        assert_eq!(config.servers.len(), 2);
        assert_eq!(config.gateways[0].servers.len(), 2);
        match &config.servers[1].credential.as_ref().unwrap().kind {
            crate::CredentialKind::Static { value } => {
                assert_eq!(value.expose(), "Bearer ${not-a-var} \"q\"")
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn a_name_in_both_file_and_snapshot_is_a_duplicate_labelled_as_the_snapshot() {
        let mut s = snapshot();
        s.servers[0].name = "local".into();
        let e = load_str_with_snapshot(FILE, "f.toml", &|_| None, &s).unwrap_err();
        let text = e.to_string();
        assert!(
            text.contains("<registry snapshot v7>:2:8: duplicate server name"),
            "{text}"
        );
    }

    #[test]
    fn resource_tools_reaches_the_server_and_a_bad_value_is_located_in_the_snapshot() {
        let mut s = snapshot();
        s.servers[0].resource_tools = Some("off".into());
        let config = load_str_with_snapshot(FILE, "f.toml", &|_| None, &s).unwrap();
        assert_eq!(config.servers[1].resource_tools, crate::ResourceTools::Off);
        assert_eq!(config.servers[0].resource_tools, crate::ResourceTools::Auto);
        let json = serde_json::to_string(&s).unwrap();
        assert!(json.contains(r#""resource_tools":"off""#), "{json}");
        s.servers[0].resource_tools = Some("always".into());
        let e = load_str_with_snapshot(FILE, "f.toml", &|_| None, &s).unwrap_err();
        let text = e.to_string();
        assert!(
            text.contains("<registry snapshot v7>:")
                && text.contains(
                    r#"servers.resource_tools must be "auto", "off" or "on", not "always""#
                ),
            "{text}"
        );
    }

    #[test]
    fn debug_hides_credential_values_and_json_round_trips() {
        let s = snapshot();
        assert!(!format!("{s:?}").contains("Bearer"));
        let json = serde_json::to_string(&s).unwrap();
        assert_eq!(serde_json::from_str::<Snapshot>(&json).unwrap(), s);
    }
}
