//! Per-caller upstream credentials in the registry: a template whose credential has
//! `type = "per_caller"` makes installations whose upstream sees each caller's own secret
//! (a user's personal API key, say) instead of one shared value. The secrets are set per
//! installation and caller through the admin API, sealed like every other secret, and reach
//! only the proxies whose snapshot shows the installation, where the loader builds the same
//! per-caller table a `secrets_file` would.
//!
//! A caller is who the gateway authenticated: a static gateway token by its name (`issuer`
//! empty) or a JWT by issuer and subject, exactly the proxy's `CallerKey`. This module holds
//! the request shapes and the checks that need nothing but the request and the template.

use std::borrow::Cow;
use std::collections::BTreeMap;
use std::fmt;

use serde::{Deserialize, Serialize};
use sluice_config::{Snapshot, SnapshotCaller, SnapshotServer};

use crate::model::{Invalid, SECRET_PLACEHOLDER, Template};

/// The credential type whose secrets are set per caller.
pub const PER_CALLER: &str = "per_caller";
/// The placeholder of a per-caller credential's `value` that each caller's secret fills.
pub const SECRET_SLOT: &str = "{secret}";
/// Longest issuer accepted.
pub const MAX_ISSUER: usize = 2048;
/// Longest subject accepted.
pub const MAX_SUBJECT: usize = 1024;
/// Longest secret accepted.
pub const MAX_SECRET: usize = 8192;

/// Who a per-caller secret belongs to.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CallerId {
    /// The JWT's issuer; empty (or absent) for a static gateway token.
    #[serde(default)]
    pub issuer: String,
    /// The JWT's subject, or the static token's name.
    pub subject: String,
}

impl CallerId {
    /// Checks both parts: bounded lengths and no control characters (they are sled keys
    /// joined by NUL, and names in logs).
    pub fn validate(&self) -> Result<(), Invalid> {
        let plain = |s: &str| !s.chars().any(char::is_control);
        if self.subject.is_empty() || self.subject.len() > MAX_SUBJECT || !plain(&self.subject) {
            return Err(Invalid::new(
                "callers.subject",
                format!(
                    "1..={MAX_SUBJECT} bytes without control characters (the JWT's sub, or the static token's name)"
                ),
            ));
        }
        if self.issuer.len() > MAX_ISSUER || !plain(&self.issuer) {
            return Err(Invalid::new(
                "callers.issuer",
                format!(
                    "at most {MAX_ISSUER} bytes without control characters (empty for a static token)"
                ),
            ));
        }
        Ok(())
    }

    /// The caller as shown in messages and the audit log (never a secret).
    pub fn shown(&self) -> String {
        if self.issuer.is_empty() {
            format!("token {:?}", self.subject)
        } else {
            format!("{:?} of {:?}", self.subject, self.issuer)
        }
    }
}

/// `PUT /v1/installations/{name}/callers`: a caller and their secret.
#[derive(Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CallerSecretInput {
    /// The JWT's issuer; empty (or absent) for a static gateway token.
    #[serde(default)]
    pub issuer: String,
    /// The JWT's subject, or the static token's name.
    pub subject: String,
    /// The secret that fills `{secret}` in the template's credential `value`.
    pub secret: String,
}

impl fmt::Debug for CallerSecretInput {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("CallerSecretInput")
            .field("issuer", &self.issuer)
            .field("subject", &self.subject)
            .finish_non_exhaustive()
    }
}

impl CallerSecretInput {
    /// Who it is for.
    pub fn id(&self) -> CallerId {
        CallerId {
            issuer: self.issuer.clone(),
            subject: self.subject.clone(),
        }
    }

    /// Checks the caller and that the secret can go into a header. Messages never quote it.
    pub fn validate(&self) -> Result<(), Invalid> {
        self.id().validate()?;
        let header_safe = self
            .secret
            .bytes()
            .all(|b| b == b'\t' || (b >= 0x20 && b != 0x7f));
        if self.secret.is_empty() || self.secret.len() > MAX_SECRET || !header_safe {
            return Err(Invalid::new(
                "callers.secret",
                format!(
                    "1..={MAX_SECRET} bytes that a header can carry (no CR, LF or other control characters)"
                ),
            ));
        }
        if self.secret == SECRET_PLACEHOLDER {
            return Err(Invalid::new("callers.secret", "give the secret itself"));
        }
        Ok(())
    }
}

/// Whether installations of `template` take per-caller secrets.
pub fn is_per_caller(template: &Template) -> bool {
    template.credential.get("type").map(String::as_str) == Some(PER_CALLER)
}

/// `text` of credential key `key` with the per-caller `{secret}` slot taken out, so the check
/// that placeholders name fields does not take it for one.
pub fn without_secret_slot<'a>(template: &Template, key: &str, text: &'a str) -> Cow<'a, str> {
    if is_per_caller(template) && key == "value" {
        Cow::Owned(text.replace(SECRET_SLOT, ""))
    } else {
        Cow::Borrowed(text)
    }
}

/// The checks of a per-caller template: `value` (if given) holds `{secret}` once, no field is
/// called `secret` (its value would fill the slot), and the secrets come from the registry,
/// not from a file on the proxies.
pub fn check_template(template: &Template) -> Result<(), Invalid> {
    if !is_per_caller(template) {
        return Ok(());
    }
    const P: &str = "templates";
    for key in ["secrets_file", "callers"] {
        if template.credential.contains_key(key) {
            return Err(Invalid::new(
                format!("{P}.credential.{key}"),
                "a registry template's per-caller secrets are set per installation (PUT /v1/installations/{name}/callers)",
            ));
        }
    }
    if let Some(v) = template.credential.get("value")
        && v.matches(SECRET_SLOT).count() != 1
    {
        return Err(Invalid::new(
            format!("{P}.credential.value"),
            "must hold \"{secret}\" exactly once, e.g. \"Bearer {secret}\"",
        ));
    }
    if let Some(i) = template.fields.iter().position(|f| f.name == "secret") {
        return Err(Invalid::new(
            format!("{P}.fields[{i}].name"),
            "\"secret\" is the caller's secret in a per_caller credential; name the field otherwise",
        ));
    }
    Ok(())
}

/// Runs `server` with one more caller through the config loader, as a proxy would, so what a
/// proxy would refuse is refused when it is written. The message names the caller, never the
/// secret.
pub fn check_with_loader(
    mut server: SnapshotServer,
    caller: &CallerSecretInput,
) -> Result<(), Invalid> {
    server.callers = vec![SnapshotCaller {
        issuer: caller.issuer.clone(),
        subject: caller.subject.clone(),
        secret: caller.secret.clone(),
    }];
    let snapshot = Snapshot {
        version: 0,
        servers: vec![server],
        gateways: Vec::new(),
    };
    match sluice_config::load_str_with_snapshot("", "", &|_| None, &snapshot) {
        Ok(_) => Ok(()),
        Err(e) => {
            let message = e.errors[0]
                .message
                .replace(&caller.secret, SECRET_PLACEHOLDER);
            Err(Invalid::new("callers.secret", message))
        }
    }
}

/// The listing of an installation's callers, as the API answers it (never a secret).
pub fn view(
    installation: &str,
    callers: &[crate::store::Versioned<CallerId>],
) -> serde_json::Value {
    let items: Vec<BTreeMap<&str, serde_json::Value>> = callers
        .iter()
        .map(|c| {
            BTreeMap::from([
                ("issuer", c.item.issuer.clone().into()),
                ("subject", c.item.subject.clone().into()),
                ("version", c.version.into()),
                ("updated_at", c.updated_at.into()),
            ])
        })
        .collect();
    serde_json::json!({"installation": installation, "callers": items})
}

#[cfg(test)]
mod tests {
    use super::*;

    fn template(value: &str) -> Template {
        serde_json::from_value(serde_json::json!({
            "name": "personal",
            "transport": "http",
            "url": "http://127.0.0.1:9/{org}/mcp",
            "fields": [{"name": "org"}],
            "credential": {"type": "per_caller", "header": "X-Api-Key", "value": value}
        }))
        .unwrap()
    }

    #[test]
    fn a_per_caller_template_needs_one_secret_slot_and_no_file() {
        assert_eq!(template("key={secret}").validate(), Ok(()));
        assert_eq!(template("{org}:{secret}").validate(), Ok(()));
        let e = template("no slot").validate().unwrap_err();
        assert_eq!(e.field, "templates.credential.value");
        let e = template("{secret}{secret}").validate().unwrap_err();
        assert_eq!(e.field, "templates.credential.value");
        let mut t = template("{secret}");
        t.credential
            .insert("secrets_file".into(), "/etc/callers.toml".into());
        assert_eq!(
            t.validate().unwrap_err().field,
            "templates.credential.secrets_file"
        );
        let mut t = template("{secret}");
        t.fields[0].name = "secret".into();
        t.url = Some("http://127.0.0.1:9/mcp".into());
        assert_eq!(t.validate().unwrap_err().field, "templates.fields[0].name");
        // Elsewhere `{secret}` is an ordinary placeholder that must name a field.
        let mut t = template("{secret}");
        t.credential.insert("type".into(), "static".into());
        assert_eq!(
            t.validate().unwrap_err().field,
            "templates.credential.value"
        );
    }

    #[test]
    fn callers_and_secrets_are_checked_without_quoting_the_secret() {
        let input = |issuer: &str, subject: &str, secret: &str| CallerSecretInput {
            issuer: issuer.into(),
            subject: subject.into(),
            secret: secret.into(),
        };
        assert_eq!(input("", "alice", "k-1").validate(), Ok(()));
        assert_eq!(input("https://idp", "bob", "k").validate(), Ok(()));
        let field = |i: CallerSecretInput| i.validate().unwrap_err().field;
        assert_eq!(field(input("", "", "k")), "callers.subject");
        assert_eq!(field(input("", "a\0b", "k")), "callers.subject");
        assert_eq!(field(input("x\ny", "a", "k")), "callers.issuer");
        let e = input("", "alice", "line\r\nX-Evil: 1")
            .validate()
            .unwrap_err();
        assert_eq!(e.field, "callers.secret");
        assert!(!e.message.contains("X-Evil"));
        assert_eq!(field(input("", "alice", "")), "callers.secret");
        assert_eq!(
            field(input("", "alice", &"k".repeat(MAX_SECRET + 1))),
            "callers.secret"
        );
        let debug = format!("{:?}", input("", "alice", "hidden-value"));
        assert!(
            debug.contains("alice") && !debug.contains("hidden-value"),
            "{debug}"
        );
    }
}
