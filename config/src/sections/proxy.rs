//! `[proxy]`: listener addresses, worker threads, request limits and upstream connection
//! settings. The CA bundle is opened here, at load time, because pingora panics on an
//! unreadable one when the first TLS upstream is dialled.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use toml::de::DeTable;

use crate::ProxyConfig;
use crate::reader::{Reader, Text};

const KEYS: &[&str] = &[
    "listen",
    "admin_listen",
    "threads",
    "max_body_bytes",
    "grace_period",
    "max_json_depth",
    "upstream_idle_timeout",
    "upstream_ca_file",
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
    ProxyConfig {
        listen: listen.map_or(d.listen, |a| a.1),
        admin_listen: admin_listen.map_or(d.admin_listen, |a| a.1),
        threads: r.count(t, "threads", P, 1..=1024).unwrap_or(d.threads),
        max_body_bytes: r
            .count(t, "max_body_bytes", P, 1..=MAX_BODY_LIMIT)
            .unwrap_or(d.max_body_bytes),
        grace_period: r
            .duration(t, "grace_period", P, Duration::ZERO..=DAY)
            .unwrap_or(d.grace_period),
        max_json_depth: r
            .count(t, "max_json_depth", P, 1..=1024)
            .unwrap_or(d.max_json_depth),
        upstream_idle_timeout: r
            .duration(t, "upstream_idle_timeout", P, Duration::from_secs(1)..=DAY)
            .unwrap_or(d.upstream_idle_timeout),
        upstream_ca_file: r
            .string(t, "upstream_ca_file", P)
            .and_then(|f| ca_file(r, &f)),
    }
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
