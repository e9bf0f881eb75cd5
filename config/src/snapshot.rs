//! The registry snapshot: what the control process hands every proxy replica. It lives here,
//! at the bottom of the workspace, because control produces it and proxies consume it and
//! neither may import the other.
//!
//! Its servers and gateways use exactly the keys of `[[servers]]` and `[[gateways]]`, and
//! [`load_str_with_snapshot`] validates them by rendering them as TOML and running the one
//! loader: whatever a proxy accepts from control, it would accept from its file, with the
//! same checks, and a name in both the file and the snapshot is a duplicate like any other.
//! Credential values are carried decrypted (the sync channel is authenticated), so `Debug`
//! hides them. A `per_caller` credential's secrets travel beside it (`callers`) and are
//! rendered as the loader's inline `callers` form, so each snapshot rebuilds the per-caller
//! table with the same checks as a secrets file.

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
    /// For a `per_caller` credential: each caller's secret (the credential's `callers`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub callers: Vec<SnapshotCaller>,
}

/// One caller's secret of a `per_caller` credential.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SnapshotCaller {
    /// The JWT issuer; empty for a static gateway token.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub issuer: String,
    /// The JWT subject, or the static token's name.
    pub subject: String,
    /// The secret (the credential's `value` has it in place of `{secret}`).
    pub secret: String,
}

impl fmt::Debug for SnapshotCaller {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SnapshotCaller")
            .field("issuer", &self.issuer)
            .field("subject", &self.subject)
            .finish_non_exhaustive()
    }
}

impl fmt::Debug for SnapshotServer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let keys: Vec<&String> = self.credential.keys().collect();
        f.debug_struct("SnapshotServer")
            .field("name", &self.name)
            .field("url", &self.url)
            .field("credential_keys", &keys)
            .field("resource_tools", &self.resource_tools)
            .field("callers", &self.callers)
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
    /// `[[gateways.auth.rules]]`, in order: who may see and call which tools (the built-in
    /// `sluice__*` ones too).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub rules: Vec<SnapshotRule>,
}

/// One `[[gateways.auth.rules]]` entry of a registry gateway.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SnapshotRule {
    /// `tools`: name patterns, `*` matching any run of characters.
    pub tools: Vec<String>,
    /// `require`: claim name → accepted values (strings, integers, booleans).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub require: BTreeMap<String, Vec<serde_json::Value>>,
}

impl SnapshotRule {
    /// The rule as a TOML inline table.
    fn to_toml(&self) -> String {
        let mut out = format!("{{ tools = {}", toml_array(&self.tools));
        if !self.require.is_empty() {
            let claims: Vec<String> = self
                .require
                .iter()
                .map(|(k, vs)| {
                    let vs: Vec<String> = vs.iter().map(toml_scalar).collect();
                    format!("{} = [{}]", toml_string(k), vs.join(", "))
                })
                .collect();
            out.push_str(&format!(", require = {{ {} }}", claims.join(", ")));
        }
        out.push_str(" }");
        out
    }
}

/// A claim value as TOML: strings escaped, numbers and booleans as they are; anything else
/// as an empty table. The loader takes strings, integers and booleans and names what it
/// refuses, so a value of the wrong kind is refused rather than turned into a string.
fn toml_scalar(v: &serde_json::Value) -> String {
    match v {
        serde_json::Value::String(s) => toml_string(s),
        serde_json::Value::Bool(b) => b.to_string(),
        serde_json::Value::Number(n) => n.to_string(),
        _ => "{}".to_owned(),
    }
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

impl SnapshotServer {
    /// The inline `callers` array of a `per_caller` credential given no `secrets_file`
    /// (possibly empty: nobody has a secret yet); `None` for other credentials, unless
    /// callers were given anyway (which the loader then refuses).
    fn callers_toml(&self) -> Option<String> {
        let per_caller = self.credential.get("type").map(String::as_str) == Some("per_caller")
            && !self.credential.contains_key("secrets_file");
        if !per_caller && self.callers.is_empty() {
            return None;
        }
        let entries: Vec<String> = self
            .callers
            .iter()
            .map(|c| {
                let who = if c.issuer.is_empty() {
                    format!("token = {}", toml_string(&c.subject))
                } else {
                    format!(
                        "issuer = {}, subject = {}",
                        toml_string(&c.issuer),
                        toml_string(&c.subject)
                    )
                };
                format!("{{ {who}, secret = {} }}", toml_string(&c.secret))
            })
            .collect();
        Some(format!("[{}]", entries.join(", ")))
    }
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
                let mut fields: Vec<String> = s
                    .credential
                    .iter()
                    .map(|(k, v)| format!("{} = {}", toml_string(k), toml_string(v)))
                    .collect();
                if let Some(callers) = s.callers_toml() {
                    fields.push(format!("callers = {callers}"));
                }
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
                let rules: Vec<String> = a.rules.iter().map(SnapshotRule::to_toml).collect();
                let auth = format!(
                    "{{ tokens = {}, providers = {}, scopes = {}, rules = [{}] }}",
                    a.tokens,
                    toml_array(&a.providers),
                    toml_array(&a.scopes),
                    rules.join(", ")
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
                callers: Vec::new(),
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
    fn registry_rules_reach_the_gateway_in_order_with_their_claims() {
        let mut s = snapshot();
        s.gateways[0].auth = Some(SnapshotGatewayAuth {
            tokens: true,
            rules: vec![
                SnapshotRule {
                    tools: vec!["github__read_*".into()],
                    require: BTreeMap::new(),
                },
                SnapshotRule {
                    tools: vec!["*".into()],
                    require: BTreeMap::from([
                        (
                            "https://x.example/role \"q\"".into(),
                            vec![serde_json::json!("admin")],
                        ),
                        (
                            "level".into(),
                            vec![serde_json::json!(3), serde_json::json!(true)],
                        ),
                    ]),
                },
            ],
            ..Default::default()
        });
        let file = format!(
            "{FILE}[[auth.tokens]]\nname = \"ops\"\ntoken = \"ops-token-0123456789abcdef\"\n"
        );
        let config = load_str_with_snapshot(&file, "f.toml", &|_| None, &s).unwrap();
        let rules = &config.gateways[0].auth.as_ref().unwrap().rules;
        assert_eq!(rules.len(), 2);
        assert_eq!(rules[0].tools, ["github__read_*"]);
        assert!(rules[0].require.is_empty());
        assert_eq!(
            rules[1].require,
            [
                (
                    "https://x.example/role \"q\"".to_owned(),
                    vec![serde_json::json!("admin")]
                ),
                (
                    "level".to_owned(),
                    vec![serde_json::json!(3), serde_json::json!(true)]
                ),
            ]
        );
        // A value the loader does not take is refused and located in the snapshot.
        s.gateways[0].auth.as_mut().unwrap().rules[1]
            .require
            .insert("f".into(), vec![serde_json::json!(1.5)]);
        let e = load_str_with_snapshot(&file, "f.toml", &|_| None, &s).unwrap_err();
        let text = e.to_string();
        assert!(
            text.contains("<registry snapshot v7>:")
                && text.contains("must be a string, an integer or a boolean"),
            "{text}"
        );
    }

    fn per_caller(callers: Vec<SnapshotCaller>) -> Snapshot {
        let mut s = snapshot();
        s.servers[0].credential = BTreeMap::from([
            ("type".into(), "per_caller".into()),
            ("header".into(), "X-Api-Key".into()),
            ("value".into(), "key={secret}".into()),
        ]);
        s.servers[0].callers = callers;
        s
    }

    fn caller(issuer: &str, subject: &str, secret: &str) -> SnapshotCaller {
        SnapshotCaller {
            issuer: issuer.into(),
            subject: subject.into(),
            secret: secret.into(),
        }
    }

    #[test]
    fn per_caller_secrets_reach_the_credential_inline_with_the_template_filled_in() {
        let s = per_caller(vec![
            caller("", "alice", "a-${x}\"1"),
            caller("https://idp.example", "bob", "b-2"),
        ]);
        let config = load_str_with_snapshot(FILE, "f.toml", &|_| None, &s).unwrap();
        let c = config.servers[1].credential.as_ref().unwrap();
        assert_eq!(c.header, "x-api-key");
        let crate::CredentialKind::PerCaller(p) = &c.kind else {
            panic!("{:?}", c.kind)
        };
        assert_eq!(p.secrets_file, None);
        let value = |issuer: &str, subject: &str| {
            let key = crate::CallerKey {
                issuer: issuer.into(),
                subject: subject.into(),
            };
            p.values.get(&key).map(|v| v.expose().to_owned())
        };
        assert_eq!(value("", "alice").as_deref(), Some("key=a-${x}\"1"));
        assert_eq!(
            value("https://idp.example", "bob").as_deref(),
            Some("key=b-2")
        );
        assert_eq!(value("", "bob"), None);
        // Nobody has a secret yet: still a valid per_caller credential.
        let config = load_str_with_snapshot(FILE, "f.toml", &|_| None, &per_caller(vec![]));
        assert!(config.is_ok(), "{config:?}");
        let debug = format!("{s:?}");
        assert!(debug.contains("alice") && !debug.contains("b-2"), "{debug}");
    }

    #[test]
    fn a_per_caller_secret_the_loader_refuses_is_named_by_caller_never_quoted() {
        let s = per_caller(vec![caller("", "alice", "line\nbreak-secret")]);
        let text = load_str_with_snapshot(FILE, "f.toml", &|_| None, &s)
            .unwrap_err()
            .to_string();
        assert!(
            text.contains("servers.credential.callers: callers entry 1 (token \"alice\")"),
            "{text}"
        );
        assert!(!text.contains("break-secret"), "{text}");
        let s = per_caller(vec![caller("", "alice", "a"), caller("", "alice", "b")]);
        let text = load_str_with_snapshot(FILE, "f.toml", &|_| None, &s)
            .unwrap_err()
            .to_string();
        assert!(text.contains("listed twice"), "{text}");
    }

    #[test]
    fn a_file_may_give_callers_inline_but_not_beside_a_secrets_file() {
        let file = format!(
            "{FILE}[servers.credential]\ntype = \"per_caller\"\ncallers = [{{ token = \"alice\", secret = \"${{ALICE_KEY}}\" }}]\n"
        );
        let env = |k: &str| (k == "ALICE_KEY").then(|| "from-env".to_owned());
        let config = crate::load_str(&file, "f.toml", &env).unwrap();
        let crate::CredentialKind::PerCaller(p) =
            &config.servers[0].credential.as_ref().unwrap().kind
        else {
            panic!()
        };
        assert_eq!(p.values.len(), 1);
        assert_eq!(
            p.values.values().next().unwrap().expose(),
            "Bearer from-env"
        );
        let both = format!("{file}secrets_file = \"/x.toml\"\n");
        let text = crate::load_str(&both, "f.toml", &env)
            .unwrap_err()
            .to_string();
        assert!(text.contains("both secrets_file and callers"), "{text}");
        let missing = format!(
            "{FILE}[servers.credential]\ntype = \"per_caller\"\ncallers = [{{ token = \"alice\" }}]\n"
        );
        let text = crate::load_str(&missing, "f.toml", &env)
            .unwrap_err()
            .to_string();
        assert!(text.contains("every entry needs a secret"), "{text}");
    }

    #[test]
    fn debug_hides_credential_values_and_json_round_trips() {
        let mut s = snapshot();
        s.servers[0].callers = vec![caller("", "alice", "hidden-per-caller")];
        assert!(!format!("{s:?}").contains("hidden-per-caller"));
        assert!(!format!("{s:?}").contains("Bearer"));
        let json = serde_json::to_string(&s).unwrap();
        assert_eq!(serde_json::from_str::<Snapshot>(&json).unwrap(), s);
    }
}
