//! Turns registry objects into what a proxy reads: an installation's values are checked
//! against its template and substituted into the template's `url` and `credential`, and the
//! resulting `[[servers]]` entry is run through the config loader itself, so control refuses
//! at write time anything a proxy would refuse at sync time. Loader messages about the
//! credential may quote its value; secret values are replaced by `<secret>` before they
//! reach a response.

use std::collections::BTreeMap;

use serde_json::Value;
use sluice_config::{Snapshot, SnapshotGateway, SnapshotServer};

use crate::model::{
    Gateway, InstallationInput, Invalid, SECRET_PLACEHOLDER, Template, Transport, value_text,
};

/// An installation's values after checking them against the template.
#[derive(Debug)]
pub struct Resolved {
    /// Every value as substituted text, secrets included.
    pub all: BTreeMap<String, String>,
    /// Non-secret values to store, defaults filled in.
    pub plain: BTreeMap<String, Value>,
    /// Secret values to seal.
    pub secrets: BTreeMap<String, String>,
    /// The installation's `resource_tools`, as given.
    pub resource_tools: Option<sluice_config::ResourceTools>,
}

/// A JSON scalar as placeholder text.
pub fn text(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

/// Checks `input.values` against the template's fields. `kept` holds the stored values of
/// the installation being replaced; a secret left out (or sent back as `"<secret>"`) keeps
/// its stored value.
pub fn resolve(
    template: &Template,
    input: &InstallationInput,
    kept: &BTreeMap<String, String>,
) -> Result<Resolved, Invalid> {
    if let Some(unknown) = input.values.keys().find(|k| template.field(k).is_none()) {
        return Err(Invalid::new(
            format!("installations.values.{unknown}"),
            format!("template {:?} has no such field", template.name),
        ));
    }
    let mut out = Resolved {
        all: BTreeMap::new(),
        plain: BTreeMap::new(),
        secrets: BTreeMap::new(),
        resource_tools: input.resource_tools,
    };
    for field in &template.fields {
        let at = format!("installations.values.{}", field.name);
        let given = input
            .values
            .get(&field.name)
            .filter(|v| !(field.secret && v.as_str() == Some(SECRET_PLACEHOLDER)));
        let value = match given {
            Some(v) => Some(value_text(field, v).ok_or_else(|| {
                Invalid::new(
                    &at,
                    format!("must be a {:?} value", field.kind).to_lowercase(),
                )
            })?),
            None if field.secret => kept.get(&field.name).cloned(),
            None => field.default.clone(),
        };
        let Some(value) = value else {
            if field.required {
                return Err(Invalid::new(at, "required"));
            }
            out.all.insert(field.name.clone(), String::new());
            continue;
        };
        if field.kind == crate::model::FieldType::Url
            && url::Url::parse(&value).map_or(true, |u| !matches!(u.scheme(), "http" | "https"))
        {
            return Err(Invalid::new(at, "must be an http(s) URL"));
        }
        if field.secret {
            out.secrets.insert(field.name.clone(), value.clone());
        } else {
            let v = given
                .cloned()
                .unwrap_or_else(|| Value::String(value.clone()));
            out.plain.insert(field.name.clone(), v);
        }
        out.all.insert(field.name.clone(), value);
    }
    Ok(out)
}

/// `text` with each `{field}` replaced by its value; values are not scanned again.
fn fill(text: &str, values: &BTreeMap<String, String>) -> String {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(i) = rest.find('{') {
        out.push_str(&rest[..i]);
        let tail = &rest[i + 1..];
        match tail
            .find('}')
            .and_then(|end| values.get(&tail[..end]).map(|v| (end, v)))
        {
            Some((end, v)) => {
                out.push_str(v);
                rest = &tail[end + 1..];
            }
            None => {
                out.push('{');
                rest = tail;
            }
        }
    }
    out.push_str(rest);
    out
}

/// The `[[servers]]` entry of an installation, checked by the config loader. A self-hosted
/// (`stdio`) installation has one only once it runs (`self_hosted_url`, from the orchestrator).
pub fn server(
    template: &Template,
    name: &str,
    values: &BTreeMap<String, String>,
    self_hosted_url: Option<&str>,
) -> Result<Option<SnapshotServer>, Invalid> {
    let url = match (template.transport, self_hosted_url) {
        (Transport::Http, _) => fill(template.url.as_deref().unwrap_or_default(), values),
        (Transport::Stdio, Some(url)) => url.to_owned(),
        (Transport::Stdio, None) => return Ok(None),
    };
    let server = SnapshotServer {
        name: name.to_owned(),
        url,
        credential: template
            .credential
            .iter()
            .map(|(k, v)| (k.clone(), fill(v, values)))
            .collect(),
        resource_tools: None,
        callers: Vec::new(),
    };
    let secrets = secret_values(template, values);
    let snapshot = Snapshot {
        version: 0,
        servers: vec![server],
        gateways: Vec::new(),
    };
    if let Err(errors) = sluice_config::load_str_with_snapshot("", "", &|_| None, &snapshot) {
        let toml = snapshot.to_toml();
        let first = &errors.errors[0];
        let key = toml
            .lines()
            .nth(first.line.saturating_sub(1))
            .and_then(|l| l.split_once(" = "))
            .map_or("name", |(k, _)| k);
        let mut message = first.message.clone();
        for s in &secrets {
            message = message.replace(s, SECRET_PLACEHOLDER);
        }
        return Err(Invalid::new(format!("installations.{key}"), message));
    }
    Ok(snapshot.servers.into_iter().next())
}

/// The part of a proxy's file that following control implies, for checking gateways with
/// built-in tools (stand-in values: nothing is read or connected).
const FOLLOWER: &str = "[sessions]\nsecret = \"stand-in-secret-for-checking-gateways-only\"\n\n[control]\nurl = \"http://127.0.0.1:9\"\ntoken = \"stand-in-token-for-checks\"\nsnapshot_file = \"unused\"\n\n";

/// Runs a gateway through the config loader, with stand-ins for the installations it names
/// (already checked to exist) and without `auth`, whose tokens and providers are declared in
/// each proxy's own file and checked when the proxy merges the snapshot.
pub fn check_gateway(g: &Gateway) -> Result<(), Invalid> {
    let mut servers: Vec<SnapshotServer> = Vec::new();
    for name in g.referenced_servers() {
        if !servers.iter().any(|s| s.name == name) {
            servers.push(SnapshotServer {
                name: name.to_owned(),
                url: "http://127.0.0.1:9/mcp".to_owned(),
                credential: BTreeMap::new(),
                resource_tools: None,
                callers: Vec::new(),
            });
        }
    }
    let mut entry = gateway(g.clone());
    entry.auth = None;
    let snapshot = Snapshot {
        version: 0,
        servers,
        gateways: vec![entry],
    };
    // Every proxy that follows control has `[control]`, which the built-in tools need.
    let source = if g.builtin_tools { FOLLOWER } else { "" };
    match sluice_config::load_str_with_snapshot(source, "", &|_| None, &snapshot) {
        Ok(_) => Ok(()),
        Err(errors) => {
            let first = &errors.errors[0];
            let field = snapshot
                .to_toml()
                .lines()
                .nth(first.line.saturating_sub(1))
                .and_then(|l| l.split_once(" = "))
                .map_or_else(|| "gateways".to_owned(), |(k, _)| format!("gateways.{k}"));
            Err(Invalid::new(field, first.message.clone()))
        }
    }
}

/// The `[[gateways]]` entry of a gateway.
pub fn gateway(g: Gateway) -> SnapshotGateway {
    SnapshotGateway {
        name: g.name,
        servers: g.servers,
        tools: g.tools,
        prefix: g.prefix,
        tools_mode: g.tools_mode,
        auth: g.auth,
        builtin_tools: g.builtin_tools,
    }
}

/// What the orchestrator runs for a `stdio` installation: the template's command and
/// environment with `values` filled in; `None` for a remote one.
pub fn self_hosted(
    template: &Template,
    name: &str,
    values: &BTreeMap<String, String>,
) -> Option<crate::model::SelfHosted> {
    if template.transport != Transport::Stdio {
        return None;
    }
    let secret_fields: Vec<&str> = template
        .fields
        .iter()
        .filter(|f| f.secret)
        .map(|f| f.name.as_str())
        .collect();
    let (secret_env, env): (Vec<_>, Vec<_>) = template.env.iter().partition(|(_, v)| {
        crate::model::placeholders(v)
            .iter()
            .any(|p| secret_fields.contains(p))
    });
    let filled = |list: Vec<(&String, &String)>| -> Vec<(String, String)> {
        list.into_iter()
            .map(|(k, v)| (k.clone(), fill(v, values)))
            .collect()
    };
    Some(crate::model::SelfHosted {
        name: name.to_owned(),
        command: template.command.iter().map(|a| fill(a, values)).collect(),
        env: filled(env),
        secret_env: filled(secret_env),
        image: template.image.as_ref().map(|i| fill(i, values)),
        resources: template.resources.clone(),
        secrets: secret_values(template, values),
        runtime: None,
    })
}

/// The installation's secret values (non-empty), to mask out of errors and logs.
pub fn secret_values(template: &Template, values: &BTreeMap<String, String>) -> Vec<String> {
    template
        .fields
        .iter()
        .filter(|f| f.secret)
        .filter_map(|f| values.get(&f.name).cloned())
        .filter(|v| !v.is_empty())
        .collect()
}

/// The part of a snapshot a proxy scoped to `gateways` may have: those gateways and the
/// servers they show; no other server (nor its decrypted credential) is in it.
pub fn scoped(mut snapshot: Snapshot, gateways: &[String]) -> Snapshot {
    snapshot.gateways.retain(|g| gateways.contains(&g.name));
    let shown: std::collections::HashSet<&str> = snapshot
        .gateways
        .iter()
        .flat_map(|g| g.referenced_servers())
        .collect();
    let servers = std::mem::take(&mut snapshot.servers);
    snapshot.servers = servers
        .into_iter()
        .filter(|s| shown.contains(s.name.as_str()))
        .collect();
    snapshot
}

#[cfg(test)]
mod tests {
    use super::*;

    fn template() -> Template {
        serde_json::from_value(serde_json::json!({
            "name": "github",
            "transport": "http",
            "url": "{base}/mcp",
            "fields": [
                {"name": "base", "type": "url"},
                {"name": "api_key", "secret": true}
            ],
            "credential": {"type": "static", "value": "Bearer {api_key}"}
        }))
        .unwrap()
    }

    fn input(values: serde_json::Value) -> InstallationInput {
        serde_json::from_value(serde_json::json!({
            "name": "gh", "template": "github", "values": values
        }))
        .unwrap()
    }

    #[test]
    fn values_fill_the_url_and_credential_and_secrets_are_set_apart() {
        let r = resolve(
            &template(),
            &input(serde_json::json!({"base": "http://127.0.0.1:9", "api_key": "k-123"})),
            &BTreeMap::new(),
        )
        .unwrap();
        assert_eq!(r.secrets["api_key"], "k-123");
        assert!(!r.plain.contains_key("api_key"));
        let s = server(&template(), "gh", &r.all, None).unwrap().unwrap();
        assert_eq!(s.url, "http://127.0.0.1:9/mcp");
        assert_eq!(s.credential["value"], "Bearer k-123");
    }

    #[test]
    fn a_missing_secret_keeps_the_stored_one_and_a_missing_value_is_named() {
        let kept = BTreeMap::from([("api_key".to_owned(), "old".to_owned())]);
        let r = resolve(
            &template(),
            &input(serde_json::json!({"base": "http://h", "api_key": "<secret>"})),
            &kept,
        )
        .unwrap();
        assert_eq!(r.secrets["api_key"], "old");
        let e = resolve(
            &template(),
            &input(serde_json::json!({"base": "http://h"})),
            &BTreeMap::new(),
        )
        .unwrap_err();
        assert_eq!(e.field, "installations.values.api_key");
    }

    #[test]
    fn a_gateway_the_loader_refuses_is_refused_with_its_field() {
        let g: Gateway = serde_json::from_value(serde_json::json!({"name": "empty"})).unwrap();
        let e = check_gateway(&g).unwrap_err();
        assert!(e.field.starts_with("gateways"), "{e:?}");
        let g: Gateway = serde_json::from_value(serde_json::json!({
            "name": "g", "servers": ["gh"], "tools_mode": "sometimes"
        }))
        .unwrap();
        assert_eq!(check_gateway(&g).unwrap_err().field, "gateways.tools_mode");
        let g: Gateway = serde_json::from_value(serde_json::json!({
            "name": "g", "servers": ["gh"], "tools": ["jira__x"], "tools_mode": "lazy"
        }))
        .unwrap();
        assert_eq!(check_gateway(&g), Ok(()));
    }

    #[test]
    fn what_the_loader_refuses_is_refused_with_the_key_and_no_secret() {
        let values = BTreeMap::from([
            ("base".to_owned(), "http://h".to_owned()),
            ("api_key".to_owned(), "line\nbreak-secret".to_owned()),
        ]);
        let e = server(&template(), "gh", &values, None).unwrap_err();
        assert_eq!(e.field, "installations.credential");
        assert!(!e.message.contains("break-secret"), "{}", e.message);
    }
}
