//! `[proxy]`: listener addresses, worker threads, request limits, upstream connection
//! settings and the `Host` / `Origin` allowlists. The CA bundle is opened here, at load time,
//! because pingora panics on an unreadable one when the first TLS upstream is dialled. The
//! allowlists default from `listen`, so they are read after it.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use toml::de::DeTable;

use crate::reader::{Reader, Text};
use crate::{
    Allowlist, HostPort, Origin, ProxyConfig, default_allowed_hosts, default_allowed_origins,
};

const KEYS: &[&str] = &[
    "listen",
    "admin_listen",
    "threads",
    "max_body_bytes",
    "grace_period",
    "drain_delay",
    "max_json_depth",
    "upstream_idle_timeout",
    "upstream_ca_file",
    "allowed_hosts",
    "allowed_origins",
];
const P: &str = "proxy";
const DAY: Duration = Duration::from_secs(24 * 60 * 60);

/// Largest `max_body_bytes`: 1 GiB.
const MAX_BODY_LIMIT: usize = 1 << 30;

pub(super) fn read(r: &mut Reader<'_>, t: &DeTable<'_>) -> ProxyConfig {
    r.check_keys(t, KEYS, "[proxy]");
    let d = ProxyConfig::default();
    let listen = addr(r, t, "listen");
    let admin_listen = addr(r, t, "admin_listen");
    check_distinct(r, t, &listen, &admin_listen, &d);
    let listen = listen.map_or(d.listen, |a| a.1);
    ProxyConfig {
        listen,
        admin_listen: admin_listen.map_or(d.admin_listen, |a| a.1),
        threads: r.count(t, "threads", P, 1..=1024).unwrap_or(d.threads),
        max_body_bytes: r
            .count(t, "max_body_bytes", P, 1..=MAX_BODY_LIMIT)
            .unwrap_or(d.max_body_bytes),
        grace_period: r
            .duration(t, "grace_period", P, Duration::ZERO..=DAY)
            .unwrap_or(d.grace_period),
        drain_delay: r
            .duration(
                t,
                "drain_delay",
                P,
                Duration::ZERO..=Duration::from_secs(600),
            )
            .unwrap_or(d.drain_delay),
        max_json_depth: r
            .count(t, "max_json_depth", P, 1..=1024)
            .unwrap_or(d.max_json_depth),
        upstream_idle_timeout: r
            .duration(t, "upstream_idle_timeout", P, Duration::from_secs(1)..=DAY)
            .unwrap_or(d.upstream_idle_timeout),
        upstream_ca_file: r
            .string(t, "upstream_ca_file", P)
            .and_then(|f| ca_file(r, &f)),
        allowed_hosts: allowlist(r, t, "allowed_hosts", "host or host:port", HostPort::parse)
            .unwrap_or_else(|| default_allowed_hosts(listen)),
        allowed_origins: allowlist(
            r,
            t,
            "allowed_origins",
            "origin scheme://host[:port]",
            Origin::parse,
        )
        .unwrap_or_else(|| default_allowed_origins(listen)),
    }
}

/// `allowed_hosts` / `allowed_origins`: `["*"]` turns the check off, otherwise every entry
/// must parse; `None` when the key is absent (the default applies) or had problems.
fn allowlist<T: PartialEq, E: std::fmt::Display>(
    r: &mut Reader<'_>,
    t: &DeTable<'_>,
    key: &str,
    expected: &str,
    parse: fn(&str) -> Result<T, E>,
) -> Option<Allowlist<T>> {
    let span = t.get(key)?.span();
    let entries = r.strings(t, key, P)?;
    if entries.is_empty() {
        r.problem(
            span,
            format!(
                "proxy.{key} = [] would refuse every request; list the names clients use, or [\"*\"] to turn the check off"
            ),
        );
        return None;
    }
    if let Some(star) = entries.iter().find(|e| e.value == "*") {
        if entries.len() > 1 {
            r.problem(
                star.span.clone(),
                format!("\"*\" allows every value, so it must be the only entry of proxy.{key}"),
            );
            return None;
        }
        return Some(Allowlist::Any);
    }
    let mut out = Vec::new();
    let mut ok = true;
    for e in &entries {
        match parse(&e.value) {
            Ok(v) if out.contains(&v) => {
                ok = false;
                r.problem(
                    e.span.clone(),
                    format!("proxy.{key} lists {} twice", e.shown()),
                );
            }
            Ok(v) => out.push(v),
            Err(err) => {
                ok = false;
                // The parser's reason quotes the value, which may have come from the
                // environment.
                let message = if e.substituted() {
                    format!("proxy.{key} entry {} is not a valid {expected}", e.shown())
                } else {
                    format!("proxy.{key} entry {}: {err}", e.shown())
                };
                r.problem(e.span.clone(), message);
            }
        }
    }
    ok.then_some(Allowlist::Only(out))
}

/// The two listeners must not share an address (port 0, "any free port", never clashes). Only
/// addresses that were written and valid, or defaulted, are compared.
fn check_distinct(
    r: &mut Reader<'_>,
    t: &DeTable<'_>,
    listen: &Option<(Text, SocketAddr)>,
    admin: &Option<(Text, SocketAddr)>,
    d: &ProxyConfig,
) {
    let effective = |key: &str, read: &Option<(Text, SocketAddr)>, default: SocketAddr| match read {
        Some((text, a)) => Some((Some(text.span.clone()), *a)),
        None if t.get(key).is_none() => Some((None, default)),
        None => None,
    };
    let (Some((listen_at, l)), Some((admin_at, a))) = (
        effective("listen", listen, d.listen),
        effective("admin_listen", admin, d.admin_listen),
    ) else {
        return;
    };
    if l == a && l.port() != 0 {
        let (at, message) = match (admin_at, listen_at) {
            (Some(at), _) => (at, "proxy.admin_listen must differ from proxy.listen"),
            (None, Some(at)) => (
                at,
                "proxy.listen must differ from proxy.admin_listen (default 127.0.0.1:9090)",
            ),
            (None, None) => return,
        };
        r.problem(at, message);
    }
}

fn addr(r: &mut Reader<'_>, t: &DeTable<'_>, key: &str) -> Option<(Text, SocketAddr)> {
    let text = r.string(t, key, P)?;
    match text.value.parse::<SocketAddr>() {
        Ok(a) => Some((text, a)),
        Err(_) => {
            r.problem(
                text.span.clone(),
                format!(
                    "proxy.{key}: {} is not an IP address and port like \"127.0.0.1:8080\" or \"[::]:8080\"",
                    text.shown()
                ),
            );
            None
        }
    }
}

/// A readable PEM bundle with at least one certificate.
fn ca_file(r: &mut Reader<'_>, file: &Text) -> Option<PathBuf> {
    use rustls_pki_types::CertificateDer;
    use rustls_pki_types::pem::PemObject;
    let problem = match std::fs::read(&file.value) {
        Err(e) => format!("cannot read {}: {e}", file.shown()),
        Ok(pem) => match CertificateDer::pem_slice_iter(&pem).collect::<Result<Vec<_>, _>>() {
            Ok(certs) if !certs.is_empty() => return Some(PathBuf::from(&file.value)),
            Ok(_) => format!("{} holds no PEM certificate", file.shown()),
            Err(e) => format!("{} is not valid PEM: {e}", file.shown()),
        },
    };
    r.problem(
        file.span.clone(),
        format!("proxy.upstream_ca_file: {problem}"),
    );
    None
}
