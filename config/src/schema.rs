//! The validated configuration types and their defaults. Values of these types only come out
//! of the loader after every check passed, so the proxy can use them without re-validating;
//! the defaults are named constants so the docs, the loader and the proxy agree on them.

use std::net::{Ipv4Addr, SocketAddr, SocketAddrV4};
use std::path::PathBuf;
use std::time::Duration;

use crate::{GatewayName, SecretString, ServerName};

mod auth;
mod credential;
mod host;
mod policy;
pub use auth::*;
pub use credential::*;
pub use host::*;
pub use policy::*;

/// Shortest accepted `sessions.secret`, in bytes.
pub const MIN_SECRET_BYTES: usize = 32;

/// The whole validated configuration.
#[derive(Debug, Clone, PartialEq)]
pub struct Config {
    /// `[proxy]`: listeners and limits.
    pub proxy: ProxyConfig,
    /// `[sessions]`; `None` when the table is absent, and the proxy then seals sessions with a
    /// random per-process key (sessions do not survive a restart or move between replicas).
    pub sessions: Option<SessionsConfig>,
    /// `[catalog]`: how upstream tool lists are fetched and served.
    pub catalog: CatalogConfig,
    /// `[auth]`: tokens and identity providers gateways may accept.
    pub auth: AuthConfig,
    /// `[telemetry]`: traces, access log, metrics.
    pub telemetry: TelemetryConfig,
    /// `[control]`: the registry snapshot this proxy follows; `None` = the file alone.
    pub control: Option<ControlConfig>,
    /// `[[servers]]`, in file order (a registry snapshot's after the file's); names are
    /// unique.
    pub servers: Vec<ServerConfig>,
    /// `[[gateways]]`, in file order; names are unique and every reference resolves.
    pub gateways: Vec<GatewayConfig>,
}

impl Config {
    /// One line for logs and `sluice check`, e.g.
    /// `2 servers, 1 gateway, listen 127.0.0.1:8080, admin 127.0.0.1:9090`.
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
}

/// `[proxy]`: listeners and limits.
#[derive(Debug, Clone, PartialEq)]
pub struct ProxyConfig {
    /// Address of the MCP listener.
    pub listen: SocketAddr,
    /// Address of the admin listener (`/healthz`, `/readyz`); differs from `listen`.
    pub admin_listen: SocketAddr,
    /// Worker threads.
    pub threads: usize,
    /// Largest accepted request body, in bytes.
    pub max_body_bytes: usize,
    /// How long in-flight requests may drain after SIGTERM.
    pub grace_period: Duration,
    /// After SIGTERM, how long `/readyz` answers 503 while the listener still serves, so a
    /// balancer stops sending before the listener closes.
    pub drain_delay: Duration,
    /// Deepest accepted JSON nesting in a request body.
    pub max_json_depth: usize,
    /// Pooled upstream connections idle this long are closed.
    pub upstream_idle_timeout: Duration,
    /// PEM bundle trusted for `https` upstreams instead of the system roots; checked at load
    /// to be readable and to hold at least one certificate.
    pub upstream_ca_file: Option<PathBuf>,
    /// `Host` values MCP requests may carry (DNS-rebinding protection); by default the
    /// loopback names when `listen` is a loopback address, else no check.
    pub allowed_hosts: Allowlist<HostPort>,
    /// `Origin` values MCP requests may carry when they carry one; by default `http(s)://` of
    /// the loopback names when `listen` is a loopback address, else no check.
    pub allowed_origins: Allowlist<Origin>,
}

impl ProxyConfig {
    /// Default `listen`: loopback only, so a fresh install exposes nothing.
    pub const DEFAULT_LISTEN: SocketAddr =
        SocketAddr::V4(SocketAddrV4::new(Ipv4Addr::LOCALHOST, 8080));
    /// Default `admin_listen`.
    pub const DEFAULT_ADMIN_LISTEN: SocketAddr =
        SocketAddr::V4(SocketAddrV4::new(Ipv4Addr::LOCALHOST, 9090));
    /// Default `max_body_bytes`: 4 MiB.
    pub const DEFAULT_MAX_BODY_BYTES: usize = 4 << 20;
    /// Default `grace_period`.
    pub const DEFAULT_GRACE_PERIOD: Duration = Duration::from_secs(10);
    /// Default `max_json_depth`.
    pub const DEFAULT_MAX_JSON_DEPTH: usize = 64;
    /// Default `upstream_idle_timeout`: below the 60 s keep-alive common in upstream servers,
    /// so the proxy closes an idle connection before the upstream does.
    pub const DEFAULT_UPSTREAM_IDLE_TIMEOUT: Duration = Duration::from_secs(50);

    /// Default `threads`: the number of cores, or 1 if that is unknown.
    pub fn default_threads() -> usize {
        std::thread::available_parallelism().map_or(1, |n| n.get())
    }
}

impl Default for ProxyConfig {
    fn default() -> Self {
        ProxyConfig {
            listen: Self::DEFAULT_LISTEN,
            admin_listen: Self::DEFAULT_ADMIN_LISTEN,
            threads: Self::default_threads(),
            max_body_bytes: Self::DEFAULT_MAX_BODY_BYTES,
            grace_period: Self::DEFAULT_GRACE_PERIOD,
            drain_delay: Duration::ZERO,
            max_json_depth: Self::DEFAULT_MAX_JSON_DEPTH,
            upstream_idle_timeout: Self::DEFAULT_UPSTREAM_IDLE_TIMEOUT,
            upstream_ca_file: None,
            allowed_hosts: default_allowed_hosts(Self::DEFAULT_LISTEN),
            allowed_origins: default_allowed_origins(Self::DEFAULT_LISTEN),
        }
    }
}

/// `[sessions]`: the key that seals `Mcp-Session-Id` tokens.
#[derive(Debug, Clone, PartialEq)]
pub struct SessionsConfig {
    /// Key material, at least [`MIN_SECRET_BYTES`] bytes; the same on every replica.
    pub secret: SecretString,
    /// Session lifetime.
    pub ttl: Duration,
}

impl SessionsConfig {
    /// Default `ttl`.
    pub const DEFAULT_TTL: Duration = Duration::from_secs(24 * 60 * 60);
}

/// Shortest accepted `control.token`, in bytes (control's own minimum for proxy tokens).
pub const MIN_CONTROL_TOKEN_BYTES: usize = 16;

/// `[control]`: the control process whose registry snapshot this proxy follows.
#[derive(Debug, Clone, PartialEq)]
pub struct ControlConfig {
    /// Base URL of control's API (`/v1/snapshot` is appended).
    pub url: url::Url,
    /// A proxy token of control, sent as `Authorization: Bearer`.
    pub token: SecretString,
    /// Where the last applied snapshot is saved, encrypted, to start from when control is
    /// unreachable.
    pub snapshot_file: PathBuf,
    /// How long one long-poll waits for a change before control answers 304.
    pub poll_wait: Duration,
}

impl ControlConfig {
    /// Default `poll_wait`.
    pub const DEFAULT_POLL_WAIT: Duration = Duration::from_secs(30);
    /// Longest `poll_wait` (control caps its wait at 60 s).
    pub const MAX_POLL_WAIT: Duration = Duration::from_secs(60);
}

/// `[catalog]`: how upstream catalogs are fetched and served.
#[derive(Debug, Clone, PartialEq)]
pub struct CatalogConfig {
    /// How often upstream tool lists are refetched.
    pub refresh: Duration,
    /// Items per `*/list` page.
    pub page_size: usize,
    /// Bound on opening upstream sessions during a client's `initialize`.
    pub init_timeout: Duration,
}

impl CatalogConfig {
    /// Default `refresh`.
    pub const DEFAULT_REFRESH: Duration = Duration::from_secs(5 * 60);
    /// Default `page_size`.
    pub const DEFAULT_PAGE_SIZE: usize = 100;
    /// Default `init_timeout`.
    pub const DEFAULT_INIT_TIMEOUT: Duration = Duration::from_secs(5);
}

impl Default for CatalogConfig {
    fn default() -> Self {
        CatalogConfig {
            refresh: Self::DEFAULT_REFRESH,
            page_size: Self::DEFAULT_PAGE_SIZE,
            init_timeout: Self::DEFAULT_INIT_TIMEOUT,
        }
    }
}

/// `[[servers]]`: one upstream MCP server.
#[derive(Debug, Clone, PartialEq)]
pub struct ServerConfig {
    /// Unique name; its tools are shown as `{name}__{tool}`.
    pub name: ServerName,
    /// The MCP endpoint; `http` or `https`, with a host.
    pub url: url::Url,
    /// Bound on one whole forwarded request.
    pub timeout: Duration,
    /// Bound on connecting (TCP and TLS).
    pub connect_timeout: Duration,
    /// Bound on each read from the upstream.
    pub read_timeout: Duration,
    /// `[servers.credential]`: what the gateway presents upstream; `None` = nothing.
    pub credential: Option<CredentialConfig>,
    /// `[servers.catalog_credential]`: what the gateway's own catalog calls present when the
    /// credential acts for a caller (there is no caller then); `None` = the credential itself
    /// when it does not act for a caller, else nothing.
    pub catalog_credential: Option<CredentialConfig>,
    /// Requests forwarded to this server at once, per replica; more are refused with 503.
    pub max_concurrent: usize,
    /// Consecutive failures that eject the server (0 = never).
    pub eject_after: u32,
    /// How long the first ejection lasts (doubling while ejections follow each other).
    pub eject_for: Duration,
    /// Whether the server's resources are also offered as synthesised read-resource tools.
    pub resource_tools: ResourceTools,
    /// Whether this is the control process's built-in tools server (`sluice`), added by the
    /// loader for gateways with `builtin_tools = true`: requests to it also say which gateway
    /// and which caller they come from.
    pub builtin: bool,
}

/// `servers[].resource_tools`: when a server's listed resources are also offered as tools
/// (`read_{name}`, each a `resources/read` of its URI), so a client that only calls tools can
/// still read them and a gateway can assign them like any tool.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ResourceTools {
    /// Only for a server that lists resources and no tools (the default).
    #[default]
    Auto,
    /// Never.
    Off,
    /// Always, beside the server's own tools (a name one of them has gets a suffix).
    On,
}

impl ResourceTools {
    /// `auto` / `off` / `on`, as written in the config.
    pub fn as_str(self) -> &'static str {
        match self {
            ResourceTools::Auto => "auto",
            ResourceTools::Off => "off",
            ResourceTools::On => "on",
        }
    }

    /// The mode written `text` (`auto` / `off` / `on`, exactly), if it is one.
    pub fn parse(text: &str) -> Option<ResourceTools> {
        [ResourceTools::Auto, ResourceTools::Off, ResourceTools::On]
            .into_iter()
            .find(|m| m.as_str() == text)
    }
}

impl ServerConfig {
    /// Default `max_concurrent`.
    pub const DEFAULT_MAX_CONCURRENT: usize = 1024;
    /// Default `eject_after`.
    pub const DEFAULT_EJECT_AFTER: u32 = 5;
    /// Default `eject_for`.
    pub const DEFAULT_EJECT_FOR: Duration = Duration::from_secs(10);
    /// Default `timeout`; also the default `read_timeout`.
    pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(30);
    /// Default `connect_timeout`.
    pub const DEFAULT_CONNECT_TIMEOUT: Duration = Duration::from_secs(5);
}

/// `[[gateways]]`: one client-facing endpoint, served at `/mcp/{name}`.
#[derive(Debug, Clone, PartialEq)]
pub struct GatewayConfig {
    /// Unique name.
    pub name: GatewayName,
    /// Servers whose every tool is shown; each is a declared server, listed once.
    pub servers: Vec<ServerName>,
    /// Individually shown tools, `{server}__{tool}`, each of a declared server, listed once.
    pub tools: Vec<String>,
    /// Whether names are shown as `{server}__{name}` (the default). Without prefixes the
    /// upstreams' own names are shown, and a name two servers offer is withheld; two `tools`
    /// entries of one name are refused at load.
    pub prefix: bool,
    /// `[gateways.auth]`; `None` = no authentication on this gateway.
    pub auth: Option<GatewayAuthConfig>,
    /// How `tools/list` shows the catalog.
    pub tools_mode: ToolsMode,
    /// `[[gateways.policies]]`, in file order; names are unique.
    pub policies: Vec<PolicyConfig>,
    /// What a call no policy matches gets.
    pub policy_default: Effect,
    /// `[gateways.limits]`.
    pub limits: GatewayLimits,
    /// `builtin_tools`: whether the gateway also shows control's `sluice__*` tools (the
    /// built-in server is then in `servers`).
    pub builtin_tools: bool,
}

/// `[telemetry]`: OpenTelemetry traces, the access log and metrics.
#[derive(Debug, Clone, PartialEq)]
pub struct TelemetryConfig {
    /// OTLP/HTTP (protobuf) traces endpoint; `None` = tracing off. A bare origin gets
    /// `/v1/traces`.
    pub otlp_endpoint: Option<url::Url>,
    /// Fraction of new traces sampled (a sampled incoming `traceparent` is always followed).
    pub sampling_ratio: f64,
    /// `service.name` of exported spans.
    pub service_name: String,
    /// Where the JSON access log goes.
    pub access_log: AccessLog,
    /// Whether `/metrics` counts requests (off only to measure what metrics cost).
    pub metrics: bool,
}

impl Default for TelemetryConfig {
    fn default() -> Self {
        TelemetryConfig {
            otlp_endpoint: None,
            sampling_ratio: 1.0,
            service_name: "sluice".to_owned(),
            access_log: AccessLog::Stdout,
            metrics: true,
        }
    }
}

/// Where access log lines go.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AccessLog {
    /// One JSON line per request on standard output.
    Stdout,
    /// Appended to this file.
    File(PathBuf),
    /// Not written.
    Off,
}
