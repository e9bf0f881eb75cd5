//! `[[servers]]`: the upstream MCP servers. Every well-formed name is remembered as declared,
//! even when another key of its entry is wrong, so gateways that reference it are not also
//! reported as referencing an unknown server.

use std::collections::HashSet;
use std::time::Duration;

use toml::de::DeTable;

use super::{array_of_tables, name};
use crate::reader::{Reader, Text};
use crate::{ResourceTools, ServerConfig, ServerName};

const KEYS: &[&str] = &[
    "name",
    "url",
    "timeout",
    "connect_timeout",
    "read_timeout",
    "credential",
    "catalog_credential",
    "max_concurrent",
    "eject_after",
    "eject_for",
    "resource_tools",
];
const P: &str = "servers";
const TIMEOUTS: std::ops::RangeInclusive<Duration> =
    Duration::from_millis(1)..=Duration::from_secs(24 * 60 * 60);

/// What the `[[servers]]` entries yielded.
pub(super) struct Servers {
    /// The fully valid entries.
    pub configs: Vec<ServerConfig>,
    /// Every validly named entry, valid or not, for resolving gateway references.
    pub declared: Vec<String>,
}

pub(super) fn read(r: &mut Reader<'_>, doc: &DeTable<'_>) -> Servers {
    let mut configs = Vec::new();
    let mut declared = Vec::new();
    let mut seen = HashSet::new();
    for (t, span) in array_of_tables(r, doc, "servers") {
        r.check_keys(t, KEYS, "[[servers]]");
        let name_text = r.required_string(t, "name", P, "[[servers]]", span.clone());
        let server_name = name_text
            .as_ref()
            .and_then(|n| name(r, n, ServerName::new, P));
        if let (Some(n), Some(text)) = (&server_name, &name_text) {
            if seen.insert(n.clone()) {
                declared.push(n.as_str().to_owned());
            } else {
                r.problem(
                    text.span.clone(),
                    format!("duplicate server name {}", text.shown()),
                );
            }
        }
        let url = r
            .required_string(t, "url", P, "[[servers]]", span)
            .and_then(|u| upstream_url(r, &u));
        let timeout = r
            .duration(t, "timeout", P, TIMEOUTS)
            .unwrap_or(ServerConfig::DEFAULT_TIMEOUT);
        let connect_timeout = r
            .duration(t, "connect_timeout", P, TIMEOUTS)
            .unwrap_or(ServerConfig::DEFAULT_CONNECT_TIMEOUT);
        let read_timeout = r
            .duration(t, "read_timeout", P, TIMEOUTS)
            .unwrap_or(timeout);
        let credential = super::credential::read(r, t, "credential", url.as_ref());
        let catalog_credential = super::credential::read(r, t, "catalog_credential", None);
        let eject_after = if t.get("eject_after").is_some() {
            r.count(t, "eject_after", P, 0..=1000)
                .map(|n| u32::try_from(n).unwrap_or(u32::MAX))
        } else {
            Some(ServerConfig::DEFAULT_EJECT_AFTER)
        };
        let eject_for = r
            .duration(
                t,
                "eject_for",
                P,
                Duration::from_millis(1)..=Duration::from_secs(300),
            )
            .unwrap_or(ServerConfig::DEFAULT_EJECT_FOR);
        let max_concurrent = if t.get("max_concurrent").is_some() {
            r.count(t, "max_concurrent", P, 1..=1_000_000)
        } else {
            Some(ServerConfig::DEFAULT_MAX_CONCURRENT)
        };
        let resource_tools = resource_tools(r, t);
        if let (
            Some(name),
            Some(url),
            Some(credential),
            Some(catalog_credential),
            Some(max_concurrent),
            Some(eject_after),
        ) = (
            server_name,
            url,
            credential,
            catalog_credential,
            max_concurrent,
            eject_after,
        ) {
            configs.push(ServerConfig {
                name,
                url,
                timeout,
                connect_timeout,
                read_timeout,
                credential,
                catalog_credential,
                max_concurrent,
                eject_after,
                eject_for,
                resource_tools,
                builtin: false,
            });
        }
    }
    Servers { configs, declared }
}

/// `resource_tools = "auto" | "off" | "on"`.
fn resource_tools(r: &mut Reader<'_>, t: &DeTable<'_>) -> ResourceTools {
    let Some(m) = r.string(t, "resource_tools", P) else {
        return ResourceTools::default();
    };
    match ResourceTools::parse(&m.value) {
        Some(mode) => mode,
        None => {
            r.problem(
                m.span.clone(),
                format!(
                    "servers.resource_tools must be \"auto\", \"off\" or \"on\", not {}",
                    m.shown()
                ),
            );
            ResourceTools::default()
        }
    }
}

/// An `http` or `https` URL with a host.
fn upstream_url(r: &mut Reader<'_>, u: &Text) -> Option<url::Url> {
    let problem = match url::Url::parse(&u.value) {
        Ok(url) if !matches!(url.scheme(), "http" | "https") => {
            // The scheme is named only when no part of the URL came from the environment.
            let found = if u.substituted() {
                String::new()
            } else {
                format!(", not {}://", url.scheme())
            };
            format!(
                "servers.url {} must use http:// or https://{found}",
                u.shown()
            )
        }
        Ok(url) if url.host_str().is_none_or(str::is_empty) => {
            format!("servers.url {} has no host", u.shown())
        }
        Ok(url) => return Some(url),
        Err(e) => format!(
            "servers.url {} is not a URL ({e}); write e.g. \"http://127.0.0.1:3001/mcp\"",
            u.shown()
        ),
    };
    r.problem(u.span.clone(), problem);
    None
}
