//! The registry's objects as the admin API reads and writes them, and the checks that need
//! nothing but the object itself. Checks that need other objects (does the template exist, is
//! the installation still assigned) run inside the store's write transaction; checks of what
//! a proxy would make of an installation run the config loader itself (see `render`).

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use serde_json::Value;
use sluice_config::ResourceTools;

/// Shown instead of a secret value in every response.
pub const SECRET_PLACEHOLDER: &str = "<secret>";

/// A request that names the field it got wrong, e.g. `installations.values.api_key`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{field}: {message}")]
pub struct Invalid {
    /// Dotted path of the offending field, starting with the collection.
    pub field: String,
    /// What is wrong. Never holds a secret value.
    pub message: String,
}

impl Invalid {
    /// An error about `field`.
    pub fn new(field: impl Into<String>, message: impl Into<String>) -> Self {
        Invalid {
            field: field.into(),
            message: message.into(),
        }
    }
}

/// How a template's server is reached.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Transport {
    /// A remote MCP server over Streamable HTTP at `url`.
    Http,
    /// A self-hosted server started as `command` (run by the orchestrator).
    Stdio,
}

/// The type of an install-time field.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum FieldType {
    /// Any string.
    #[default]
    String,
    /// An integer (given as a JSON number).
    Integer,
    /// `true` or `false`.
    Boolean,
    /// An `http(s)` URL.
    Url,
}

/// One value an installation fills in.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Field {
    /// `[a-z0-9_]`, 1..=64; referenced as `{name}` in the template's `url` and `credential`.
    pub name: String,
    /// For humans.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub description: String,
    /// The value's type.
    #[serde(default, rename = "type")]
    pub kind: FieldType,
    /// Whether the value is a secret: encrypted at rest, never shown again.
    #[serde(default)]
    pub secret: bool,
    /// Whether an installation must give it (else `default`, else empty).
    #[serde(default = "yes")]
    pub required: bool,
    /// Used when an installation does not give the value.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub default: Option<String>,
}

fn yes() -> bool {
    true
}

/// A catalog entry: a server kind that teams install with their own values.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Template {
    /// `[a-z0-9-]`, 1..=64.
    pub name: String,
    /// For humans.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub description: String,
    /// How the server is reached.
    pub transport: Transport,
    /// `http`: the MCP endpoint, may hold `{field}` placeholders.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub url: Option<String>,
    /// `stdio`: the program and its arguments, may hold `{field}` placeholders.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub command: Vec<String>,
    /// Install-time fields.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub fields: Vec<Field>,
    /// The `[servers.credential]` keys (`type`, `header`, `value`, `token_url`, ...), values
    /// may hold `{field}` placeholders, e.g. `value = "Bearer {api_key}"`.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub credential: BTreeMap<String, String>,
    /// `stdio`: environment variables of the server process, values may hold `{field}`
    /// placeholders (the way to hand a self-hosted server its secrets).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub env: BTreeMap<String, String>,
    /// `stdio` on the Kubernetes runtime: the container image (it must hold `sluice` for the
    /// bridge and what `command` needs); absent, the runtime's bridge image.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub image: Option<String>,
    /// `stdio` on the Kubernetes runtime: requests and limits (`cpu_request`,
    /// `memory_request`, `cpu_limit`, `memory_limit`, as Kubernetes quantities).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub resources: BTreeMap<String, String>,
}

/// Where a self-hosted installation runs: one of the runtime backends a control process may
/// run (`[runtime] backends`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum RuntimeKind {
    /// Child processes on the control's machine.
    Local,
    /// A Deployment and Service in the control's Kubernetes namespace.
    Kubernetes,
}

impl RuntimeKind {
    /// Every kind, in the order errors list them.
    pub const ALL: [RuntimeKind; 2] = [RuntimeKind::Local, RuntimeKind::Kubernetes];

    /// The name written in the registry and config (`local`, `kubernetes`).
    pub fn as_str(self) -> &'static str {
        match self {
            RuntimeKind::Local => "local",
            RuntimeKind::Kubernetes => "kubernetes",
        }
    }

    /// The kind called `name`; an error about `field` otherwise.
    pub fn parse(field: &str, name: &str) -> Result<RuntimeKind, Invalid> {
        RuntimeKind::ALL
            .into_iter()
            .find(|k| k.as_str() == name)
            .ok_or_else(|| {
                Invalid::new(
                    field,
                    format!("{name:?} is not a runtime (local or kubernetes)"),
                )
            })
    }
}

impl std::fmt::Display for RuntimeKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Where a self-hosted installation stands, as the orchestrator last saw it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RunState {
    /// `starting`, `running` or `failed`.
    pub state: String,
    /// Where proxies reach it (present once it has run).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub url: Option<String>,
    /// Why it last failed to start or stopped being healthy. Never holds a secret value.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_error: Option<String>,
    /// Restarts after exits so far.
    #[serde(default)]
    pub restarts: u64,
    /// The backend it runs on (absent in states written before installations chose one).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub runtime: Option<RuntimeKind>,
}

/// What discovery last found on an installation's server (names and descriptions).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Discovered {
    /// Unix time of the probe, seconds.
    pub at: u64,
    /// `{name, description}` of each tool.
    pub tools: Vec<Value>,
    /// `{uri, name, description, mimeType}` of each resource.
    pub resources: Vec<Value>,
    /// `{name, description}` of each prompt.
    pub prompts: Vec<Value>,
    /// Why the probe failed (secret values masked), if it did.
    pub error: Option<String>,
}

/// A self-hosted installation as the orchestrator runs it: its template's command and
/// environment with every value (secrets opened) filled in.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SelfHosted {
    /// The installation.
    pub name: String,
    /// Program and arguments.
    pub command: Vec<String>,
    /// Environment variables that hold no secret field.
    pub env: Vec<(String, String)>,
    /// Environment variables that hold a secret field (a Kubernetes Secret on that runtime).
    pub secret_env: Vec<(String, String)>,
    /// The template's `image`.
    pub image: Option<String>,
    /// The template's `resources`.
    pub resources: BTreeMap<String, String>,
    /// The values that were secret, to keep out of errors and logs.
    pub secrets: Vec<String>,
    /// The backend the installation asks for; `None`: the control's default.
    pub runtime: Option<RuntimeKind>,
}

/// An installation as written by a client: every value, secrets in clear.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct InstallationInput {
    /// The server name proxies will know it by (`[a-z0-9-]`, 1..=64): tools are
    /// `{name}__{tool}`.
    pub name: String,
    /// The template it instantiates.
    pub template: String,
    /// Field values; a secret left out of a replace keeps its stored value.
    #[serde(default)]
    pub values: BTreeMap<String, Value>,
    /// Self-hosted only: the backend it runs on (`local` or `kubernetes`); absent, the
    /// control's default (`[runtime] backend`). Text here, so a wrong name is refused with
    /// the field named rather than as unreadable JSON.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub runtime: Option<String>,
    /// `resource_tools` of its `[[servers]]` entry; absent = the proxies' default (`auto`).
    #[serde(default, deserialize_with = "resource_tools_mode")]
    pub resource_tools: Option<ResourceTools>,
}

impl InstallationInput {
    /// The runtime it asks for, checked.
    pub fn runtime_kind(&self) -> Result<Option<RuntimeKind>, Invalid> {
        self.runtime
            .as_deref()
            .map(|r| RuntimeKind::parse("installations.runtime", r))
            .transpose()
    }
}

/// Reads `resource_tools`, refusing anything but `"auto"`, `"off"`, `"on"` (or null) with an
/// error that names the field, which the API reports as `installations.resource_tools`.
fn resource_tools_mode<'de, D: serde::Deserializer<'de>>(
    d: D,
) -> Result<Option<ResourceTools>, D::Error> {
    let given = Option::<Value>::deserialize(d)?;
    match given {
        None | Some(Value::Null) => Ok(None),
        Some(v) => v
            .as_str()
            .and_then(ResourceTools::parse)
            .map(Some)
            .ok_or_else(|| {
                serde::de::Error::custom(format!(
                    "field `resource_tools` must be \"auto\", \"off\" or \"on\", not {v}"
                ))
            }),
    }
}

/// An installation as stored and shown: non-secret values, and only the names of secret ones.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Installation {
    /// The server name.
    pub name: String,
    /// The template it instantiates.
    pub template: String,
    /// Non-secret values, defaults filled in.
    pub values: BTreeMap<String, Value>,
    /// Names of the secret fields that hold a value (sealed in the `secrets` tree).
    pub secrets: Vec<String>,
    /// Self-hosted only: the backend it asked for; absent, the control's default.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub runtime: Option<RuntimeKind>,
    /// `resource_tools` of its `[[servers]]` entry; absent = the proxies' default (`auto`).
    /// Absent in records written before it existed, so no migration is needed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub resource_tools: Option<ResourceTools>,
}

/// A gateway: which servers and tools one `/mcp/{name}` endpoint shows.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Gateway {
    /// `[a-z0-9-]`, 1..=64.
    pub name: String,
    /// Installations whose every tool is shown.
    #[serde(default)]
    pub servers: Vec<String>,
    /// Individual `server__tool` entries.
    #[serde(default)]
    pub tools: Vec<String>,
    /// `prefix` as in the config file.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub prefix: Option<bool>,
    /// `tools_mode` as in the config file.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tools_mode: Option<String>,
    /// `[gateways.auth]` as in the config file.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub auth: Option<sluice_config::SnapshotGatewayAuth>,
    /// `builtin_tools` as in the config file: also show control's `sluice__*` tools.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub builtin_tools: bool,
}

/// The keys of a template's `resources`.
pub const RESOURCE_KEYS: [&str; 4] = ["cpu_request", "memory_request", "cpu_limit", "memory_limit"];

/// `[a-z0-9-]`, 1..=64, the rule of server and gateway names.
pub fn check_name(field: &str, name: &str) -> Result<(), Invalid> {
    sluice_config::ServerName::new(name)
        .map(|_| ())
        .map_err(|e| Invalid::new(field, e.to_string()))
}

/// `{name}` placeholders in `text`.
pub fn placeholders(text: &str) -> Vec<&str> {
    let mut out = Vec::new();
    let mut rest = text;
    while let Some(i) = rest.find('{') {
        let tail = &rest[i + 1..];
        match tail.find('}') {
            Some(end) => {
                out.push(&tail[..end]);
                rest = &tail[end + 1..];
            }
            None => break,
        }
    }
    out
}

impl Template {
    /// Every check that needs only the template.
    pub fn validate(&self) -> Result<(), Invalid> {
        const P: &str = "templates";
        check_name(&format!("{P}.name"), &self.name)?;
        let mut names = Vec::new();
        for (i, f) in self.fields.iter().enumerate() {
            let at = format!("{P}.fields[{i}].name");
            let ok = !f.name.is_empty()
                && f.name.len() <= 64
                && f.name
                    .chars()
                    .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_');
            if !ok {
                return Err(Invalid::new(
                    at,
                    "a field name is 1..=64 of a-z, 0-9 and '_'",
                ));
            }
            if names.contains(&f.name.as_str()) {
                return Err(Invalid::new(at, format!("duplicate field {:?}", f.name)));
            }
            if f.secret && f.default.is_some() {
                return Err(Invalid::new(
                    format!("{P}.fields[{i}].default"),
                    "a secret field cannot have a default",
                ));
            }
            names.push(&f.name);
        }
        let known = |field: &str, text: &str| -> Result<(), Invalid> {
            for p in placeholders(text) {
                if !names.contains(&p) {
                    return Err(Invalid::new(field, format!("{{{p}}} names no field")));
                }
            }
            Ok(())
        };
        match self.transport {
            Transport::Http => {
                let url = self
                    .url
                    .as_deref()
                    .ok_or_else(|| Invalid::new(format!("{P}.url"), "required for http"))?;
                known(&format!("{P}.url"), url)?;
                if !self.command.is_empty() {
                    return Err(Invalid::new(format!("{P}.command"), "only for stdio"));
                }
                if !self.env.is_empty() {
                    return Err(Invalid::new(format!("{P}.env"), "only for stdio"));
                }
                if self.image.is_some() || !self.resources.is_empty() {
                    return Err(Invalid::new(
                        format!("{P}.image"),
                        "image and resources are only for stdio",
                    ));
                }
            }
            Transport::Stdio => {
                if self.command.is_empty() {
                    return Err(Invalid::new(format!("{P}.command"), "required for stdio"));
                }
                for (i, arg) in self.command.iter().enumerate() {
                    known(&format!("{P}.command[{i}]"), arg)?;
                }
                for (k, v) in &self.env {
                    let ok = !k.is_empty()
                        && !k.starts_with(|c: char| c.is_ascii_digit())
                        && k.chars()
                            .all(|c| c.is_ascii_uppercase() || c.is_ascii_digit() || c == '_');
                    if !ok {
                        return Err(Invalid::new(
                            format!("{P}.env.{k}"),
                            "a variable name is A-Z, 0-9 and '_', not starting with a digit",
                        ));
                    }
                    known(&format!("{P}.env.{k}"), v)?;
                }
                for k in self.resources.keys() {
                    if !RESOURCE_KEYS.contains(&k.as_str()) {
                        return Err(Invalid::new(
                            format!("{P}.resources.{k}"),
                            format!("not one of {}", RESOURCE_KEYS.join(", ")),
                        ));
                    }
                }
                if self.url.is_some() {
                    return Err(Invalid::new(format!("{P}.url"), "only for http"));
                }
            }
        }
        if !self.credential.is_empty() && !self.credential.contains_key("type") {
            return Err(Invalid::new(format!("{P}.credential.type"), "required"));
        }
        crate::callers::check_template(self)?;
        for (k, v) in &self.credential {
            let v = crate::callers::without_secret_slot(self, k, v);
            known(&format!("{P}.credential.{k}"), &v)?;
        }
        Ok(())
    }

    /// The field called `name`.
    pub fn field(&self, name: &str) -> Option<&Field> {
        self.fields.iter().find(|f| f.name == name)
    }
}

/// A field value as the text substituted into placeholders, if it has the field's type.
/// Integers and booleans may also come as strings (`"8080"`, `"true"`), as a command line
/// gives them.
pub fn value_text(field: &Field, value: &Value) -> Option<String> {
    match (field.kind, value) {
        (FieldType::String | FieldType::Url, Value::String(s)) => Some(s.clone()),
        (FieldType::Integer, Value::Number(n)) if n.is_i64() || n.is_u64() => Some(n.to_string()),
        (FieldType::Integer, Value::String(s)) if s.parse::<i64>().is_ok() => Some(s.clone()),
        (FieldType::Boolean, Value::Bool(b)) => Some(b.to_string()),
        (FieldType::Boolean, Value::String(s)) if s == "true" || s == "false" => Some(s.clone()),
        _ => None,
    }
}

/// `auth.rules` as the proxies' loader will take them: at most
/// [`sluice_config::MAX_RULES`], each with tool patterns, each claim with accepted values that
/// are strings, integers or booleans.
fn check_rules(rules: &[sluice_config::SnapshotRule]) -> Result<(), Invalid> {
    const P: &str = "gateways.auth.rules";
    if rules.len() > sluice_config::MAX_RULES {
        return Err(Invalid::new(
            P,
            format!("at most {} rules are allowed", sluice_config::MAX_RULES),
        ));
    }
    for (i, rule) in rules.iter().enumerate() {
        if rule.tools.is_empty() {
            return Err(Invalid::new(
                format!("{P}[{i}].tools"),
                "name at least one tool pattern, such as \"github__*\"",
            ));
        }
        for (j, t) in rule.tools.iter().enumerate() {
            if t.is_empty() || t.contains("**") {
                return Err(Invalid::new(
                    format!("{P}[{i}].tools[{j}]"),
                    "a pattern is a tool name where * matches any run of characters",
                ));
            }
        }
        for (claim, values) in &rule.require {
            let at = format!("{P}[{i}].require.{claim}");
            if values.is_empty() {
                return Err(Invalid::new(at, "name at least one accepted value"));
            }
            let scalar = |v: &Value| v.is_string() || v.is_boolean() || v.is_i64();
            if !values.iter().all(scalar) {
                return Err(Invalid::new(
                    at,
                    "accepted values are strings, integers or booleans",
                ));
            }
        }
    }
    Ok(())
}

impl Gateway {
    /// Every check that needs only the gateway.
    pub fn validate(&self) -> Result<(), Invalid> {
        const P: &str = "gateways";
        check_name(&format!("{P}.name"), &self.name)?;
        for (i, s) in self.servers.iter().enumerate() {
            check_name(&format!("{P}.servers[{i}]"), s)?;
            if self.servers[..i].contains(s) {
                return Err(Invalid::new(format!("{P}.servers[{i}]"), "listed twice"));
            }
        }
        for (i, t) in self.tools.iter().enumerate() {
            let at = format!("{P}.tools[{i}]");
            let Some((server, tool)) = t.split_once("__") else {
                return Err(Invalid::new(at, "a tool is \"server__tool\""));
            };
            check_name(&at, server)?;
            if tool.is_empty() {
                return Err(Invalid::new(at, "the tool name is empty"));
            }
            if self.tools[..i].contains(t) {
                return Err(Invalid::new(at, "listed twice"));
            }
        }
        if let Some(auth) = &self.auth {
            check_rules(&auth.rules)?;
        }
        Ok(())
    }

    /// The installations it refers to (through `servers` and `tools`).
    pub fn referenced_servers(&self) -> impl Iterator<Item = &str> {
        self.servers.iter().map(String::as_str).chain(
            self.tools
                .iter()
                .filter_map(|t| sluice_config::tool_server(t)),
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn template() -> Template {
        serde_json::from_value(serde_json::json!({
            "name": "github",
            "transport": "http",
            "url": "https://{host}/mcp",
            "fields": [
                {"name": "host", "default": "api.example.com"},
                {"name": "api_key", "secret": true}
            ],
            "credential": {"type": "static", "value": "Bearer {api_key}"}
        }))
        .unwrap()
    }

    #[test]
    fn a_placeholder_naming_no_field_is_refused_with_its_field() {
        assert_eq!(template().validate(), Ok(()));
        let mut t = template();
        t.credential.insert("value".into(), "Bearer {token}".into());
        let e = t.validate().unwrap_err();
        assert_eq!(e.field, "templates.credential.value");
        let mut t = template();
        t.url = None;
        assert_eq!(t.validate().unwrap_err().field, "templates.url");
    }

    #[test]
    fn resource_tools_is_one_of_three_modes_and_a_bad_one_names_the_field() {
        let read = |v: Value| {
            serde_json::from_value::<InstallationInput>(
                serde_json::json!({"name": "a", "template": "t", "resource_tools": v}),
            )
        };
        assert_eq!(
            read(Value::from("on")).unwrap().resource_tools,
            Some(ResourceTools::On)
        );
        assert_eq!(read(Value::Null).unwrap().resource_tools, None);
        for bad in [
            Value::from("sometimes"),
            Value::from(true),
            Value::from("ON"),
        ] {
            let e = read(bad.clone()).unwrap_err().to_string();
            assert!(e.contains("field `resource_tools`"), "{bad}: {e}");
        }
    }

    #[test]
    fn gateway_tools_must_name_a_server_and_a_tool() {
        let g = Gateway {
            name: "team".into(),
            servers: vec!["github".into()],
            tools: vec!["github".into()],
            prefix: None,
            tools_mode: None,
            auth: None,
            builtin_tools: false,
        };
        assert_eq!(g.validate().unwrap_err().field, "gateways.tools[0]");
    }

    #[test]
    fn gateway_rules_are_checked_as_the_proxies_will_load_them() {
        let with_rules = |rules: Value| -> Gateway {
            serde_json::from_value(serde_json::json!({
                "name": "team", "builtin_tools": true,
                "auth": {"tokens": true, "rules": rules}
            }))
            .unwrap()
        };
        let ok = with_rules(serde_json::json!([
            {"tools": ["sluice__list_*"]},
            {"tools": ["sluice__*"], "require": {"role": ["admin", 7, true]}}
        ]));
        assert_eq!(ok.validate(), Ok(()));
        let e = with_rules(serde_json::json!([{"tools": []}]))
            .validate()
            .unwrap_err();
        assert_eq!(e.field, "gateways.auth.rules[0].tools");
        let e = with_rules(serde_json::json!([{"tools": ["a", "b**"]}]))
            .validate()
            .unwrap_err();
        assert_eq!(e.field, "gateways.auth.rules[0].tools[1]");
        let e = with_rules(serde_json::json!([{"tools": ["*"], "require": {"role": [1.5]}}]))
            .validate()
            .unwrap_err();
        assert_eq!(e.field, "gateways.auth.rules[0].require.role");
        let e = with_rules(serde_json::json!([{"tools": ["*"], "require": {"role": []}}]))
            .validate()
            .unwrap_err();
        assert_eq!(e.field, "gateways.auth.rules[0].require.role");
    }
}
