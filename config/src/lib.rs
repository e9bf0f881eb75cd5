//! Sluice's configuration: the TOML schema, its defaults, and validation that reports every
//! problem at once with its line and column.
//!
//! The file is parsed into a spanned tree and walked by hand (not deserialised with serde),
//! because serde stops at the first error and operators want all of them from one
//! `sluice check`. Only a fully valid file produces a [`Config`]; the proxy holds nothing else.
//!
//! | key | type | default | meaning |
//! |---|---|---|---|
//! | `proxy.listen` | socket address | `127.0.0.1:8080` | MCP listener |
//! | `proxy.admin_listen` | socket address | `127.0.0.1:9090` | `/healthz`, `/readyz` |
//! | `proxy.threads` | integer 1..=1024 | number of cores | worker threads |
//! | `proxy.max_body_bytes` | integer 1..=1 GiB | 4 MiB | request body limit (413 above) |
//! | `proxy.grace_period` | duration | `10s` | drain time on SIGTERM |
//! | `proxy.max_json_depth` | integer 1..=1024 | 64 | JSON nesting limit |
//! | `proxy.upstream_idle_timeout` | duration | `50s` | pooled upstream connections idle this long are closed; keep it below the upstreams' keep-alive |
//! | `proxy.upstream_ca_file` | path to a PEM bundle | system roots | trust anchors for `https` upstreams; replaces the system roots |
//! | `sessions.secret` | string, >= 32 bytes | random per process | key material sealing `Mcp-Session-Id`; the same on every replica |
//! | `sessions.ttl` | duration | `24h` | session lifetime |
//! | `catalog.refresh` | duration | `5m` | how often upstream catalogs are refetched |
//! | `catalog.page_size` | integer 1..=10000 | 100 | items per `*/list` page |
//! | `catalog.init_timeout` | duration | `5s` | bound on opening upstream sessions at a client's initialize |
//! | `servers[].name` | `[a-z0-9-]+` | required | tool prefix: `{name}__{tool}` |
//! | `servers[].url` | http(s) URL | required | the upstream's MCP endpoint |
//! | `servers[].timeout` | duration | `30s` | bound on one whole forwarded request |
//! | `servers[].connect_timeout` | duration | `5s` | bound on connecting |
//! | `servers[].read_timeout` | duration | `timeout` | bound on each read |
//! | `gateways[].name` | `[a-z0-9-]+` | required | served at `/mcp/{name}` |
//! | `gateways[].servers` | array of server names | `[]` | every tool of these servers |
//! | `gateways[].tools` | array of `server__tool` | `[]` | plus these individual tools |
//!
//! Strings may contain `${VAR}`, read from the environment (`$${` is a literal `${`).
#![warn(missing_docs)]

mod error;
mod names;
mod reader;

use std::collections::HashSet;
use std::net::SocketAddr;
use std::ops::Range;
use std::path::Path;
use std::time::Duration;

use toml::de::{DeTable, DeValue};

pub use error::{ConfigError, ConfigErrors};
pub use names::{GatewayName, SecretString, ServerName};
use reader::{Reader, Text};

/// Shortest accepted session secret.
pub const MIN_SECRET_BYTES: usize = 32;

/// The whole validated configuration.
#[derive(Debug, Clone)]
pub struct Config {
    /// `[proxy]`.
    pub proxy: ProxyConfig,
    /// `[sessions]`; absent means a random per-process key.
    pub sessions: Option<SessionsConfig>,
    /// `[catalog]`.
    pub catalog: CatalogConfig,
    /// `[[servers]]`.
    pub servers: Vec<ServerConfig>,
    /// `[[gateways]]`.
    pub gateways: Vec<GatewayConfig>,
}

/// `[proxy]`: listeners and limits.
#[derive(Debug, Clone)]
pub struct ProxyConfig {
    /// MCP listener.
    pub listen: SocketAddr,
    /// Admin listener.
    pub admin_listen: SocketAddr,
    /// Worker threads.
    pub threads: usize,
    /// Request body limit.
    pub max_body_bytes: usize,
    /// Drain time on SIGTERM.
    pub grace_period: Duration,
    /// JSON nesting limit.
    pub max_json_depth: usize,
    /// Idle bound of pooled upstream connections.
    pub upstream_idle_timeout: Duration,
    /// PEM bundle trusted for `https` upstreams instead of the system roots.
    pub upstream_ca_file: Option<std::path::PathBuf>,
}

impl Default for ProxyConfig {
    fn default() -> Self {
        ProxyConfig {
            listen: SocketAddr::from(([127, 0, 0, 1], 8080)),
            admin_listen: SocketAddr::from(([127, 0, 0, 1], 9090)),
            threads: std::thread::available_parallelism().map_or(1, |n| n.get()),
            max_body_bytes: 4 << 20,
            grace_period: Duration::from_secs(10),
            max_json_depth: 64,
            upstream_idle_timeout: Duration::from_secs(50),
            upstream_ca_file: None,
        }
    }
}

/// `[sessions]`: the sealing key of session tokens.
#[derive(Debug, Clone)]
pub struct SessionsConfig {
    /// Key material (>= 32 bytes).
    pub secret: SecretString,
    /// Session lifetime.
    pub ttl: Duration,
}

/// `[catalog]`: how upstream catalogs are fetched and served.
#[derive(Debug, Clone)]
pub struct CatalogConfig {
    /// Refetch interval.
    pub refresh: Duration,
    /// Items per list page.
    pub page_size: usize,
    /// Bound on opening upstream sessions during a client's initialize.
    pub init_timeout: Duration,
}

impl Default for CatalogConfig {
    fn default() -> Self {
        CatalogConfig {
            refresh: Duration::from_secs(300),
            page_size: 100,
            init_timeout: Duration::from_secs(5),
        }
    }
}

/// `[[servers]]`: one upstream MCP server.
#[derive(Debug, Clone)]
pub struct ServerConfig {
    /// Name and tool prefix.
    pub name: ServerName,
    /// MCP endpoint.
    pub url: url::Url,
    /// Bound on one forwarded request.
    pub timeout: Duration,
    /// Bound on connecting.
    pub connect_timeout: Duration,
    /// Bound on each read.
    pub read_timeout: Duration,
}

/// `[[gateways]]`: one client-facing endpoint.
#[derive(Debug, Clone)]
pub struct GatewayConfig {
    /// Name, served at `/mcp/{name}`.
    pub name: GatewayName,
    /// Servers whose every tool is shown.
    pub servers: Vec<ServerName>,
    /// Individually shown tools, `server__tool`.
    pub tools: Vec<String>,
}

impl Config {
    /// One line for logs and `sluice check`.
    pub fn summary(&self) -> String {
        let plural = |n: usize, w: &str| format!("{n} {w}{}", if n == 1 { "" } else { "s" });
        format!(
            "{}, {}, listen {}, admin {}",
            plural(self.servers.len(), "server"),
            plural(self.gateways.len(), "gateway"),
            self.proxy.listen,
            self.proxy.admin_listen
        )
    }

    /// The embedded default of `sluice up`: one gateway `quickstart` in front of the bundled
    /// example server.
    pub fn quickstart(example_server_url: &str) -> String {
        format!(
            r#"# The embedded default of `sluice up`.
[proxy]
listen = "127.0.0.1:8080"
admin_listen = "127.0.0.1:9090"
grace_period = "2s"

[[servers]]
name = "example"
url = "{example_server_url}"
timeout = "30s"

[[gateways]]
name = "quickstart"
servers = ["example"]
"#
        )
    }
}

/// Reads and validates a config file.
pub fn load_file(path: &Path) -> Result<Config, ConfigErrors> {
    let file = path.display().to_string();
    let source = std::fs::read_to_string(path).map_err(|e| ConfigErrors {
        errors: vec![ConfigError {
            file: file.clone(),
            line: 0,
            column: 0,
            message: format!("cannot read config file: {e}"),
        }],
    })?;
    load_str(&source, &file, &|k| std::env::var(k).ok())
}

/// Validates config text; `env` resolves `${VAR}`.
pub fn load_str(
    source: &str,
    file_name: &str,
    env: &dyn Fn(&str) -> Option<String>,
) -> Result<Config, ConfigErrors> {
    let (doc, syntax) = DeTable::parse_recoverable(source);
    let mut r = Reader::new(env);
    for e in syntax {
        let span = e.span().unwrap_or(0..0);
        let message = e.message().trim().to_owned();
        r.problem(span, format!("TOML syntax: {message}"));
    }
    let config = if r.problems.is_empty() {
        read_config(&mut r, doc.get_ref())
    } else {
        None
    };
    match config {
        Some(c) if r.problems.is_empty() => Ok(c),
        _ => {
            r.problems.sort_by_key(|(span, _)| span.start);
            r.problems.dedup();
            Err(ConfigErrors {
                errors: r
                    .problems
                    .into_iter()
                    .map(|(span, message)| {
                        let (line, column) = error::line_col(source, span.start);
                        ConfigError {
                            file: file_name.to_owned(),
                            line,
                            column,
                            message,
                        }
                    })
                    .collect(),
            })
        }
    }
}

fn read_config(r: &mut Reader<'_>, doc: &DeTable<'_>) -> Option<Config> {
    r.check_keys(
        doc,
        &["proxy", "sessions", "catalog", "servers", "gateways"],
        "the top level",
    );
    let proxy = match r.table(doc, "proxy") {
        Some((t, _)) => read_proxy(r, t),
        None => ProxyConfig::default(),
    };
    let sessions = r
        .table(doc, "sessions")
        .and_then(|(t, span)| read_sessions(r, t, span));
    let catalog = match r.table(doc, "catalog") {
        Some((t, _)) => read_catalog(r, t),
        None => CatalogConfig::default(),
    };
    let servers = read_servers(r, doc);
    let gateways = read_gateways(r, doc, &servers);
    Some(Config {
        proxy,
        sessions,
        catalog,
        servers,
        gateways,
    })
}

const SECOND: Duration = Duration::from_secs(1);
const MS: Duration = Duration::from_millis(1);
const DAY: Duration = Duration::from_secs(86_400);

fn read_proxy(r: &mut Reader<'_>, t: &DeTable<'_>) -> ProxyConfig {
    let p = "proxy";
    r.check_keys(
        t,
        &[
            "listen",
            "admin_listen",
            "threads",
            "max_body_bytes",
            "grace_period",
            "max_json_depth",
            "upstream_idle_timeout",
            "upstream_ca_file",
        ],
        "[proxy]",
    );
    let d = ProxyConfig::default();
    let listen = addr(r, t, "listen", p).unwrap_or(d.listen);
    let admin_listen = addr(r, t, "admin_listen", p).unwrap_or(d.admin_listen);
    if listen == admin_listen
        && let Some(v) = t.get("admin_listen")
    {
        r.problem(v.span(), "proxy.admin_listen must differ from proxy.listen");
    }
    ProxyConfig {
        listen,
        admin_listen,
        threads: r
            .integer(t, "threads", p, 1, 1024)
            .map_or(d.threads, |n| n as usize),
        max_body_bytes: r
            .integer(t, "max_body_bytes", p, 1, 1 << 30)
            .map_or(d.max_body_bytes, |n| n as usize),
        grace_period: r
            .duration(t, "grace_period", p, Duration::ZERO, DAY)
            .unwrap_or(d.grace_period),
        max_json_depth: r
            .integer(t, "max_json_depth", p, 1, 1024)
            .map_or(d.max_json_depth, |n| n as usize),
        upstream_idle_timeout: r
            .duration(t, "upstream_idle_timeout", p, SECOND, DAY)
            .unwrap_or(d.upstream_idle_timeout),
        upstream_ca_file: r
            .string(t, "upstream_ca_file", p)
            .and_then(|f| ca_file(r, f)),
    }
}

/// A readable PEM bundle with at least one certificate (pingora would panic on a bad one).
fn ca_file(r: &mut Reader<'_>, file: Text) -> Option<std::path::PathBuf> {
    use rustls_pki_types::CertificateDer;
    use rustls_pki_types::pem::PemObject;
    let pem = match std::fs::read(&file.value) {
        Ok(pem) => pem,
        Err(e) => {
            r.problem(
                file.span,
                format!("proxy.upstream_ca_file: cannot read {:?}: {e}", file.value),
            );
            return None;
        }
    };
    let certs: Result<Vec<_>, _> = CertificateDer::pem_slice_iter(&pem).collect();
    match certs {
        Ok(c) if !c.is_empty() => Some(std::path::PathBuf::from(file.value)),
        Ok(_) => {
            r.problem(
                file.span,
                format!(
                    "proxy.upstream_ca_file: {:?} holds no PEM certificate",
                    file.value
                ),
            );
            None
        }
        Err(e) => {
            r.problem(
                file.span,
                format!(
                    "proxy.upstream_ca_file: {:?} is not valid PEM: {e}",
                    file.value
                ),
            );
            None
        }
    }
}

fn addr(r: &mut Reader<'_>, t: &DeTable<'_>, key: &str, place: &str) -> Option<SocketAddr> {
    let text = r.string(t, key, place)?;
    match text.value.parse::<SocketAddr>() {
        Ok(a) => Some(a),
        Err(_) => {
            r.problem(
                text.span,
                format!(
                    "{place}.{key}: {:?} is not an address like \"127.0.0.1:8080\"",
                    text.value
                ),
            );
            None
        }
    }
}

fn read_sessions(
    r: &mut Reader<'_>,
    t: &DeTable<'_>,
    span: Range<usize>,
) -> Option<SessionsConfig> {
    r.check_keys(t, &["secret", "ttl"], "[sessions]");
    let ttl = r
        .duration(t, "ttl", "sessions", SECOND, 365 * DAY)
        .unwrap_or(DAY);
    let secret = r.required_string(t, "secret", "[sessions]", span)?;
    if secret.value.len() < MIN_SECRET_BYTES {
        r.problem(
            secret.span,
            format!(
                "sessions.secret must be at least {MIN_SECRET_BYTES} bytes (it is {})",
                secret.value.len()
            ),
        );
        return None;
    }
    Some(SessionsConfig {
        secret: SecretString::new(secret.value),
        ttl,
    })
}

fn read_catalog(r: &mut Reader<'_>, t: &DeTable<'_>) -> CatalogConfig {
    r.check_keys(t, &["refresh", "page_size", "init_timeout"], "[catalog]");
    let d = CatalogConfig::default();
    CatalogConfig {
        refresh: r
            .duration(t, "refresh", "catalog", SECOND, 30 * DAY)
            .unwrap_or(d.refresh),
        page_size: r
            .integer(t, "page_size", "catalog", 1, 10_000)
            .map_or(d.page_size, |n| n as usize),
        init_timeout: r
            .duration(
                t,
                "init_timeout",
                "catalog",
                10 * MS,
                Duration::from_secs(300),
            )
            .unwrap_or(d.init_timeout),
    }
}

/// The entries of an array of tables (`[[key]]`), with their spans.
fn array_of_tables<'a>(
    r: &mut Reader<'_>,
    doc: &'a DeTable<'a>,
    key: &str,
) -> Vec<(&'a DeTable<'a>, Range<usize>)> {
    let Some(v) = doc.get(key) else {
        return Vec::new();
    };
    let DeValue::Array(items) = v.get_ref() else {
        r.problem(
            v.span(),
            format!("{key} must be an array of tables ([[{key}]])"),
        );
        return Vec::new();
    };
    let mut out = Vec::new();
    for item in items.iter() {
        match item.get_ref() {
            DeValue::Table(t) => out.push((t, item.span())),
            _ => r.problem(item.span(), format!("each entry of {key} must be a table")),
        }
    }
    out
}

fn name<T>(
    r: &mut Reader<'_>,
    text: &Text,
    make: fn(&str) -> Result<T, String>,
    place: &str,
) -> Option<T> {
    match make(&text.value) {
        Ok(n) => Some(n),
        Err(problem) => {
            r.problem(text.span.clone(), format!("{place}.name: {problem}"));
            None
        }
    }
}

fn read_servers(r: &mut Reader<'_>, doc: &DeTable<'_>) -> Vec<ServerConfig> {
    let mut out = Vec::new();
    let mut seen = HashSet::new();
    for (t, span) in array_of_tables(r, doc, "servers") {
        let p = "servers";
        r.check_keys(
            t,
            &["name", "url", "timeout", "connect_timeout", "read_timeout"],
            "[[servers]]",
        );
        let name_text = r.required_string(t, "name", "[[servers]]", span.clone());
        let server_name = name_text
            .as_ref()
            .and_then(|n| name(r, n, ServerName::new, p));
        if let (Some(n), Some(text)) = (&server_name, &name_text)
            && !seen.insert(n.clone())
        {
            r.problem(
                text.span.clone(),
                format!("duplicate server name {:?}", n.as_str()),
            );
        }
        let url = r
            .required_string(t, "url", "[[servers]]", span.clone())
            .and_then(|u| match url::Url::parse(&u.value) {
                Ok(url)
                    if matches!(url.scheme(), "http" | "https")
                        && url.host_str().is_some_and(|h| !h.is_empty()) =>
                {
                    Some(url)
                }
                Ok(_) => {
                    r.problem(
                        u.span,
                        format!(
                            "servers.url: {:?} must be an http:// or https:// URL with a host",
                            u.value
                        ),
                    );
                    None
                }
                Err(e) => {
                    r.problem(
                        u.span,
                        format!("servers.url: {:?} is not a URL ({e})", u.value),
                    );
                    None
                }
            });
        let timeout = r
            .duration(t, "timeout", p, MS, DAY)
            .unwrap_or(Duration::from_secs(30));
        let connect_timeout = r
            .duration(t, "connect_timeout", p, MS, DAY)
            .unwrap_or(Duration::from_secs(5));
        let read_timeout = r.duration(t, "read_timeout", p, MS, DAY).unwrap_or(timeout);
        if let (Some(name), Some(url)) = (server_name, url) {
            out.push(ServerConfig {
                name,
                url,
                timeout,
                connect_timeout,
                read_timeout,
            });
        }
    }
    out
}

fn read_gateways(
    r: &mut Reader<'_>,
    doc: &DeTable<'_>,
    servers: &[ServerConfig],
) -> Vec<GatewayConfig> {
    let known: Vec<&str> = servers.iter().map(|s| s.name.as_str()).collect();
    let mut out = Vec::new();
    let mut seen = HashSet::new();
    for (t, span) in array_of_tables(r, doc, "gateways") {
        let p = "gateways";
        r.check_keys(t, &["name", "servers", "tools"], "[[gateways]]");
        let name_text = r.required_string(t, "name", "[[gateways]]", span.clone());
        let gateway_name = name_text
            .as_ref()
            .and_then(|n| name(r, n, GatewayName::new, p));
        if let (Some(n), Some(text)) = (&gateway_name, &name_text)
            && !seen.insert(n.clone())
        {
            r.problem(
                text.span.clone(),
                format!("duplicate gateway name {:?}", n.as_str()),
            );
        }
        let mut server_names = Vec::new();
        for s in r.strings(t, "servers", p).unwrap_or_default() {
            if known.contains(&s.value.as_str()) {
                if let Ok(n) = ServerName::new(&s.value) {
                    server_names.push(n);
                }
            } else {
                r.problem(s.span.clone(), unknown_server(&s.value, &known));
            }
        }
        let mut tools = Vec::new();
        for tool in r.strings(t, "tools", p).unwrap_or_default() {
            match tool.value.split_once("__") {
                Some((server, t)) if !t.is_empty() => {
                    if known.contains(&server) {
                        tools.push(tool.value);
                    } else {
                        r.problem(tool.span.clone(), unknown_server(server, &known));
                    }
                }
                _ => r.problem(
                    tool.span.clone(),
                    format!(
                        "gateways.tools: {:?} must name a tool as \"server__tool\"",
                        tool.value
                    ),
                ),
            }
        }
        if server_names.is_empty()
            && tools.is_empty()
            && t.get("servers").is_none()
            && t.get("tools").is_none()
        {
            r.problem(span.clone(), "[[gateways]] needs \"servers\" or \"tools\"");
        }
        if let Some(name) = gateway_name {
            out.push(GatewayConfig {
                name,
                servers: server_names,
                tools,
            });
        }
    }
    out
}

fn unknown_server(name: &str, known: &[&str]) -> String {
    let nearest = known
        .iter()
        .map(|k| (strsim::jaro_winkler(name, k), *k))
        .filter(|(s, _)| *s > 0.8)
        .max_by(|a, b| a.0.total_cmp(&b.0));
    match nearest {
        Some((_, k)) => format!("unknown server {name:?}; did you mean {k:?}?"),
        None if known.is_empty() => format!("unknown server {name:?}; no [[servers]] are defined"),
        None => format!(
            "unknown server {name:?}; defined servers: {}",
            known.join(", ")
        ),
    }
}

#[cfg(test)]
mod tests;
