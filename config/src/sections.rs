//! The walk over a parsed document: one module per top-level section, each reading its keys
//! through the [`Reader`] and falling back to defaults so that later sections are still checked
//! after an earlier one had problems.

mod auth;
mod builtin;
mod catalog;
mod control;
mod credential;
mod gateways;
mod policies;
mod proxy;
mod servers;
mod sessions;
mod telemetry;

pub use builtin::BUILTIN_SERVER;

use std::ops::Range;

use toml::de::{DeTable, DeValue};

use crate::reader::{Reader, Text, kind};
use crate::suggest;
use crate::{CatalogConfig, Config, NameError, ProxyConfig};

/// The keys allowed at the top level.
const TOP_LEVEL: &[&str] = &[
    "proxy",
    "sessions",
    "auth",
    "catalog",
    "telemetry",
    "control",
    "servers",
    "gateways",
];

/// Reads the whole document. The result is meaningful only if the reader found no problems.
pub(crate) fn read_config(r: &mut Reader<'_>, doc: &DeTable<'_>) -> Config {
    r.check_keys(doc, TOP_LEVEL, "the top level");
    let proxy = match r.table(doc, "proxy") {
        Some((t, _)) => proxy::read(r, t),
        None => ProxyConfig::default(),
    };
    let sessions = r
        .table(doc, "sessions")
        .and_then(|(t, span)| sessions::read(r, t, span));
    let catalog = match r.table(doc, "catalog") {
        Some((t, _)) => catalog::read(r, t),
        None => CatalogConfig::default(),
    };
    let telemetry = match r.table(doc, "telemetry") {
        Some((t, _)) => telemetry::read(r, t),
        None => crate::schema::TelemetryConfig::default(),
    };
    let control = r.table(doc, "control").and_then(|(t, span)| {
        let control = control::read(r, t, span.clone());
        if doc.get("sessions").is_none() {
            r.problem(
                span,
                "[control] needs [sessions] secret: the saved registry snapshot holds credentials and is encrypted with a key derived from sessions.secret; add [sessions] with secret = \"${SLUICE_SESSION_SECRET}\" (at least 32 bytes)",
            );
        }
        control
    });
    let auth = auth::read(r, doc);
    let servers = servers::read(r, doc);
    let mut gateways = gateways::read(r, doc, &servers.declared, &auth, control.is_some());
    let mut servers = servers.configs;
    if let Some(control) = &control {
        builtin::add_server(control, &mut servers, &mut gateways);
    }
    Config {
        proxy,
        sessions,
        auth: auth.config,
        telemetry,
        catalog,
        control,
        servers,
        gateways,
    }
}

/// The entries of an array of tables (`[[key]]`), with their spans.
fn array_of_tables<'t>(
    r: &mut Reader<'_>,
    doc: &'t DeTable<'t>,
    key: &str,
) -> Vec<(&'t DeTable<'t>, Range<usize>)> {
    let Some(v) = doc.get(key) else {
        return Vec::new();
    };
    let DeValue::Array(items) = v.get_ref() else {
        r.problem(
            v.span(),
            format!(
                "{key} must be an array of tables ([[{key}]]), not {}",
                kind(v.get_ref())
            ),
        );
        return Vec::new();
    };
    let mut out = Vec::new();
    for item in items.iter() {
        match item.get_ref() {
            DeValue::Table(t) => out.push((t, item.span())),
            other => r.problem(
                item.span(),
                format!("each entry of {key} must be a table, not {}", kind(other)),
            ),
        }
    }
    out
}

/// A validated name, or a problem at the name's position.
fn name<T>(
    r: &mut Reader<'_>,
    text: &Text,
    make: fn(&str) -> Result<T, NameError>,
    place: &str,
) -> Option<T> {
    match make(&text.value) {
        Ok(n) => Some(n),
        Err(e) => {
            r.problem(
                text.span.clone(),
                format!(
                    "{place}.name {} is not valid: {}",
                    text.shown(),
                    text.reason(&e)
                ),
            );
            None
        }
    }
}

/// `unknown {what} "x"` with the nearest declared one, or where they are declared.
fn unknown(what: &str, text: &Text, known: &[String], declared_in: &str) -> String {
    let known: Vec<&str> = known.iter().map(String::as_str).collect();
    let shown = text.shown();
    if known.is_empty() {
        return format!("unknown {what} {shown}; no {declared_in} are declared");
    }
    match suggest::nearest(&text.value, &known) {
        Some(k) => format!("unknown {what} {shown}; did you mean {k:?}?"),
        None => format!("unknown {what} {shown}; declared: {}", known.join(", ")),
    }
}
