//! Prometheus metrics, served on the admin listener at `/metrics`.
//!
//! Label sets are bounded: gateways and servers come from the config, tools from the catalog
//! (anything else is `other`), methods from a fixed list (else `other`), statuses from a fixed
//! list (else `other`), reasons from fixed enums. The request path takes no lock and does no
//! hash lookup for a metric: every handle it touches is resolved ahead of time — per tool when
//! the catalog is built ([`ToolMetrics`] in each route), per gateway at start
//! ([`GatewayMetrics`], reached through the gateway's catalog), per server by index — or, for
//! the request counter, resolved once per (method, status) cell and kept in a `OnceLock`.

use std::sync::{Arc, OnceLock};
use std::time::Duration;

use prometheus::{
    Histogram, HistogramOpts, HistogramVec, IntCounter, IntCounterVec, IntGauge, IntGaugeVec, Opts,
    Registry, TextEncoder,
};
use sluice_auth::AuthError;
use sluice_auth::credential::{CredentialEvents, Lookup, TOKEN_OUTCOMES};

/// JSON-RPC methods counted under their own name; anything else is `other`.
pub const METHODS: [&str; 16] = [
    "initialize",
    "ping",
    "tools/list",
    "tools/call",
    "prompts/list",
    "prompts/get",
    "resources/list",
    "resources/templates/list",
    "resources/read",
    "server/discover",
    "notifications/initialized",
    "notifications/cancelled",
    "DELETE",
    "-",
    "oauth",
    "other",
];

/// HTTP statuses counted under their own code; anything else is `other`.
pub const STATUSES: [&str; 18] = [
    "200", "202", "400", "401", "403", "404", "405", "406", "413", "415", "429", "499", "500",
    "502", "503", "504", "0", "other",
];
const STATUS_CODES: [u16; 17] = [
    200, 202, 400, 401, 403, 404, 405, 406, 413, 415, 429, 499, 500, 502, 503, 504, 0,
];

/// How a `tools/call` ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ToolOutcome {
    /// A result without `isError: true`.
    Ok = 0,
    /// A result with `isError: true`.
    ToolError = 1,
    /// The upstream failed (refused, reset, non-2xx, lost session).
    UpstreamError = 2,
    /// The upstream did not answer in time.
    Timeout = 3,
    /// A rule refused the caller.
    Denied = 4,
    /// The call was not valid (unknown tool, bad params, unauthenticated).
    Invalid = 5,
    /// A rate limit refused it.
    RateLimited = 6,
}

const OUTCOMES: [&str; 7] = [
    "ok",
    "tool_error",
    "upstream_error",
    "timeout",
    "denied",
    "invalid",
    "rate_limited",
];

/// Handles for one tool of one gateway.
#[derive(Debug)]
pub struct ToolMetrics {
    calls: [IntCounter; 7],
    duration: Histogram,
    enabled: bool,
}

impl ToolMetrics {
    /// Counts one call and its duration.
    pub fn observe(&self, outcome: ToolOutcome, took: Duration) {
        if self.enabled {
            self.calls[outcome as usize].inc();
            self.duration.observe(took.as_secs_f64());
        }
    }
}

/// Handles for one gateway.
pub struct GatewayMetrics {
    gateway: String,
    requests: Vec<OnceLock<IntCounter>>,
    auth_failures: Vec<IntCounter>,
    /// Calls of tools the gateway does not show.
    pub other_tool: Arc<ToolMetrics>,
    catalog_tools: IntGauge,
    catalog_conflicts: IntGauge,
    root: Arc<Metrics>,
}

impl std::fmt::Debug for GatewayMetrics {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("GatewayMetrics")
            .field("gateway", &self.gateway)
            .finish()
    }
}

impl GatewayMetrics {
    /// Counts one request.
    pub fn request(&self, method: &str, status: u16) {
        if !self.root.enabled {
            return;
        }
        let m = METHODS
            .iter()
            .position(|x| *x == method)
            .unwrap_or(METHODS.len() - 1);
        let s = STATUS_CODES
            .iter()
            .position(|x| *x == status)
            .unwrap_or(STATUSES.len() - 1);
        let cell = &self.requests[m * STATUSES.len() + s];
        cell.get_or_init(|| {
            self.root
                .requests
                .with_label_values(&[&self.gateway, METHODS[m], STATUSES[s]])
        })
        .inc();
    }

    /// Counts a refused credential.
    pub fn auth_failure(&self, error: &AuthError) {
        if !self.root.enabled {
            return;
        }
        self.auth_failures[error.reason_index()].inc();
    }

    /// Handles for a tool of this gateway, `server__tool` on `server`.
    pub fn tool(&self, server: &str, tool: &str) -> Arc<ToolMetrics> {
        Arc::new(self.root.tool_metrics(&self.gateway, server, tool))
    }

    /// Sets the number of tools the gateway shows.
    pub fn set_catalog_tools(&self, n: usize) {
        self.catalog_tools.set(n as i64);
    }

    /// Sets the number of names withheld because two of the gateway's servers offer them.
    pub fn set_catalog_conflicts(&self, n: usize) {
        self.catalog_conflicts.set(n as i64);
    }
}

/// Every metric of one proxy process.
pub struct Metrics {
    registry: Registry,
    requests: IntCounterVec,
    tool_calls: IntCounterVec,
    tool_duration: HistogramVec,
    auth_failures: IntCounterVec,
    bad_requests: IntCounterVec,
    catalog_tools: IntGaugeVec,
    catalog_conflicts: IntGaugeVec,
    jwks_refresh: IntCounterVec,
    policy_decisions: IntCounterVec,
    rate_limited: IntCounterVec,
    overloaded: IntCounterVec,
    ejections: IntCounterVec,
    ejected: prometheus::IntGaugeVec,
    /// `sluice_access_log_dropped_total`.
    pub access_log_dropped: IntCounter,
    /// Whether requests are counted (`telemetry.metrics`).
    pub enabled: bool,
    upstream_duration: HistogramVec,
    upstream_up: IntGaugeVec,
    credential_cache: IntCounterVec,
    token_requests: IntCounterVec,
    reloads: IntCounterVec,
    /// `sluice_config_generation`: 0 at start, +1 per applied reload.
    pub config_generation: IntGauge,
    control_snapshots: IntCounterVec,
    /// `sluice_control_snapshot_version`: the registry snapshot version served (0: none).
    pub control_snapshot_version: IntGauge,
}

/// Per server of one world (by index): pre-resolved handles, so the hot path never looks up
/// a label. A reload builds new ones for the new server list; a server keeps its series.
pub struct ServerMetrics {
    enabled: bool,
    /// `sluice_upstream_duration_seconds` per server index.
    upstream_duration: Vec<Histogram>,
    upstream_up: Vec<IntGauge>,
    /// Per server: `sluice_credential_cache_requests_total` by [`Lookup`] order.
    credential_cache: Vec<[IntCounter; 4]>,
    /// Per server: `sluice_token_endpoint_requests_total` by [`TOKEN_OUTCOMES`] order.
    token_requests: Vec<[IntCounter; 3]>,
}

impl Metrics {
    /// Registers every metric.
    pub fn new(enabled: bool) -> Arc<Self> {
        let registry = Registry::new();
        let counter = |name: &str, help: &str, labels: &[&str]| {
            let c = IntCounterVec::new(Opts::new(name, help), labels).expect("valid metric");
            registry
                .register(Box::new(c.clone()))
                .expect("unique metric");
            c
        };
        let gauge = |name: &str, help: &str, labels: &[&str]| {
            let g = IntGaugeVec::new(Opts::new(name, help), labels).expect("valid metric");
            registry
                .register(Box::new(g.clone()))
                .expect("unique metric");
            g
        };
        let histogram = |name: &str, help: &str, labels: &[&str]| {
            let h =
                HistogramVec::new(HistogramOpts::new(name, help), labels).expect("valid metric");
            registry
                .register(Box::new(h.clone()))
                .expect("unique metric");
            h
        };
        let requests = counter(
            "sluice_requests_total",
            "Requests to gateway endpoints, by gateway, JSON-RPC method and HTTP status.",
            &["gateway", "method", "status"],
        );
        let tool_calls = counter(
            "sluice_tool_calls_total",
            "tools/call requests by gateway, server, tool and outcome (ok, tool_error, upstream_error, timeout, denied, invalid, rate_limited).",
            &["gateway", "server", "tool", "outcome"],
        );
        let tool_duration = histogram(
            "sluice_tool_call_duration_seconds",
            "Duration of tools/call requests at the gateway, to the end of the response.",
            &["gateway", "server", "tool"],
        );
        let upstream = histogram(
            "sluice_upstream_duration_seconds",
            "Duration of forwarded exchanges with an upstream, to the end of its response.",
            &["server"],
        );
        let auth_failures = counter(
            "sluice_auth_failures_total",
            "Requests refused for their credential, by gateway and reason.",
            &["gateway", "reason"],
        );
        let bad_requests = counter(
            "sluice_bad_requests_total",
            "Requests refused as malformed or not allowed, by reason.",
            &["reason"],
        );
        let catalog_tools = gauge(
            "sluice_catalog_tools",
            "Tools each gateway shows.",
            &["gateway"],
        );
        let catalog_conflicts = gauge(
            "sluice_catalog_conflicts",
            "Names (tools, prompts, resource URIs, resource templates) withheld from a gateway with prefix = false because more than one of its servers offers them.",
            &["gateway"],
        );
        let upstream_up = gauge(
            "sluice_upstream_up",
            "1 when the last catalog fetch from the upstream succeeded.",
            &["server"],
        );
        let jwks_refresh = counter(
            "sluice_jwks_refresh_total",
            "Background key-set refreshes of identity providers, by outcome.",
            &["provider", "outcome"],
        );
        let credential_cache = counter(
            "sluice_credential_cache_requests_total",
            "Lookups of cached upstream tokens by server and result (hit, miss = this request fetched, wait = joined another request's fetch, failure = a recent fetch failure answered from the cache).",
            &["server", "result"],
        );
        let token_requests = counter(
            "sluice_token_endpoint_requests_total",
            "Requests to token endpoints for upstream credentials, by server and outcome (ok, error, timeout).",
            &["server", "outcome"],
        );
        let policy_decisions = counter(
            "sluice_policy_decisions_total",
            "Tool-invocation policy decisions by gateway, deciding policy (default = the gateway's policy_default) and effect.",
            &["gateway", "policy", "effect"],
        );
        let rate_limited = counter(
            "sluice_rate_limited_total",
            "Requests refused by a rate limit, by gateway and limit (gateway, caller, tool).",
            &["gateway", "limit"],
        );
        let overloaded = counter(
            "sluice_overloaded_total",
            "Requests refused because a concurrency bound was reached, by scope (gateway = gateways.limits.concurrent, server = servers.max_concurrent) and name.",
            &["scope", "name"],
        );
        let ejections = counter(
            "sluice_upstream_ejections_total",
            "Times an upstream server was ejected after consecutive failures (servers.eject_after).",
            &["server"],
        );
        let ejected = gauge(
            "sluice_upstream_ejected",
            "1 while an upstream server is ejected (from its ejection until a probe succeeds).",
            &["server"],
        );
        let dropped = IntCounter::new(
            "sluice_access_log_dropped_total",
            "Access log lines dropped because the writer fell behind.",
        )
        .expect("valid metric");
        registry
            .register(Box::new(dropped.clone()))
            .expect("unique metric");
        let build = gauge(
            "sluice_build_info",
            "Always 1; the version in a label.",
            &["version"],
        );
        build.with_label_values(&[env!("CARGO_PKG_VERSION")]).set(1);
        let reloads = counter(
            "sluice_config_reloads_total",
            "Config reloads (SIGHUP, POST /reload, or a new registry snapshot from control) by outcome: applied, invalid (the file and snapshot were refused and the running config kept), failed (it could not be built, running config kept).",
            &["outcome"],
        );
        let config_generation = IntGauge::new(
            "sluice_config_generation",
            "The config generation being served: 0 at start, +1 per applied reload.",
        )
        .expect("valid metric");
        registry
            .register(Box::new(config_generation.clone()))
            .expect("unique metric");
        let control_snapshots = counter(
            "sluice_control_snapshots_total",
            "Registry snapshot long-polls by outcome: applied, refused (the merged config was invalid or could not be built; the running config kept), unchanged (304), unreachable (control did not answer or answered with an error).",
            &["outcome"],
        );
        let control_snapshot_version = IntGauge::new(
            "sluice_control_snapshot_version",
            "The registry snapshot version being served (0: none).",
        )
        .expect("valid metric");
        registry
            .register(Box::new(control_snapshot_version.clone()))
            .expect("unique metric");
        Arc::new(Metrics {
            control_snapshots,
            control_snapshot_version,
            credential_cache,
            token_requests,
            registry,
            requests,
            tool_calls,
            tool_duration,
            auth_failures,
            bad_requests,
            catalog_tools,
            catalog_conflicts,
            jwks_refresh,
            policy_decisions,
            rate_limited,
            overloaded,
            ejections,
            ejected,
            access_log_dropped: dropped,
            enabled,
            upstream_duration: upstream,
            upstream_up,
            reloads,
            config_generation,
        })
    }

    /// Handles for a world's servers, `servers` being their names by index.
    pub fn servers(&self, servers: &[String]) -> Arc<ServerMetrics> {
        Arc::new(ServerMetrics {
            enabled: self.enabled,
            upstream_duration: servers
                .iter()
                .map(|s| self.upstream_duration.with_label_values(&[s]))
                .collect(),
            upstream_up: servers
                .iter()
                .map(|s| self.upstream_up.with_label_values(&[s]))
                .collect(),
            credential_cache: servers
                .iter()
                .map(|s| {
                    Lookup::ALL.map(|l| {
                        self.credential_cache
                            .with_label_values(&[s.as_str(), l.label()])
                    })
                })
                .collect(),
            token_requests: servers
                .iter()
                .map(|s| {
                    TOKEN_OUTCOMES.map(|o| self.token_requests.with_label_values(&[s.as_str(), o]))
                })
                .collect(),
        })
    }

    /// Drops the gauges of a server a reload removed, so it does not linger as up or ejected.
    pub fn forget_server(&self, server: &str) {
        let _ = self.upstream_up.remove_label_values(&[server]);
        let _ = self.ejected.remove_label_values(&[server]);
    }

    /// Drops the gauges of a gateway a reload removed.
    pub fn forget_gateway(&self, gateway: &str) {
        let _ = self.catalog_tools.remove_label_values(&[gateway]);
        let _ = self.catalog_conflicts.remove_label_values(&[gateway]);
    }

    /// Counts a reload by outcome (`applied`, `invalid`, `failed`).
    pub fn reload(&self, outcome: &str) {
        self.reloads.with_label_values(&[outcome]).inc();
    }

    /// Counts a registry snapshot long-poll by outcome (`applied`, `refused`, `unchanged`,
    /// `unreachable`).
    pub fn control_snapshot(&self, outcome: &str) {
        self.control_snapshots.with_label_values(&[outcome]).inc();
    }

    /// Handles for one gateway.
    pub fn gateway(self: &Arc<Self>, gateway: &str) -> Arc<GatewayMetrics> {
        Arc::new(GatewayMetrics {
            gateway: gateway.to_owned(),
            requests: (0..METHODS.len() * STATUSES.len())
                .map(|_| OnceLock::new())
                .collect(),
            auth_failures: AuthError::REASONS
                .iter()
                .map(|r| self.auth_failures.with_label_values(&[gateway, r]))
                .collect(),
            other_tool: Arc::new(self.tool_metrics(gateway, "-", "other")),
            catalog_tools: self.catalog_tools.with_label_values(&[gateway]),
            catalog_conflicts: self.catalog_conflicts.with_label_values(&[gateway]),
            root: self.clone(),
        })
    }

    /// The (allow, deny) counters of one policy of a gateway.
    pub fn policy_decisions(&self, gateway: &str, policy: &str) -> [IntCounter; 2] {
        ["allow", "deny"].map(|e| {
            self.policy_decisions
                .with_label_values(&[gateway, policy, e])
        })
    }

    /// The refusal counter of one limit of a gateway.
    pub fn rate_limited(&self, gateway: &str, limit: &str) -> IntCounter {
        self.rate_limited.with_label_values(&[gateway, limit])
    }

    /// Counts a request refused by a concurrency bound (an error path: a labelled lookup).
    pub fn overloaded(&self, scope: &str, name: &str) {
        if self.enabled {
            self.overloaded.with_label_values(&[scope, name]).inc();
        }
    }

    /// Records an ejection of `server` (`true`) or its return to service (`false`).
    pub fn ejected(&self, server: &str, ejected: bool) {
        if !self.enabled {
            return;
        }
        if ejected {
            self.ejections.with_label_values(&[server]).inc();
        }
        self.ejected
            .with_label_values(&[server])
            .set(i64::from(ejected));
    }

    fn tool_metrics(&self, gateway: &str, server: &str, tool: &str) -> ToolMetrics {
        ToolMetrics {
            calls: OUTCOMES.map(|o| {
                self.tool_calls
                    .with_label_values(&[gateway, server, tool, o])
            }),
            duration: self
                .tool_duration
                .with_label_values(&[gateway, server, tool]),
            enabled: self.enabled,
        }
    }

    /// Counts a refused request (an error path, so a labelled lookup is fine here).
    pub fn bad_request(&self, reason: &str) {
        if !self.enabled {
            return;
        }
        self.bad_requests.with_label_values(&[reason]).inc();
    }

    /// Counts a background key-set refresh.
    pub fn jwks_refresh(&self, provider: &str, ok: bool) {
        self.jwks_refresh
            .with_label_values(&[provider, if ok { "ok" } else { "error" }])
            .inc();
    }

    /// The text exposition of every metric.
    pub fn render(&self) -> String {
        TextEncoder::new()
            .encode_to_string(&self.registry.gather())
            .unwrap_or_default()
    }
}

impl ServerMetrics {
    /// Times one forwarded exchange with server `server` (by index).
    pub fn upstream_exchange(&self, server: usize, took: Duration) {
        if self.enabled
            && let Some(h) = self.upstream_duration.get(server)
        {
            h.observe(took.as_secs_f64());
        }
    }

    /// Records whether an upstream's last catalog fetch succeeded.
    pub fn set_upstream_up(&self, server: usize, up: bool) {
        if let Some(g) = self.upstream_up.get(server) {
            g.set(i64::from(up));
        }
    }

    /// The credential events sink of the upstream credentials.
    pub fn credential_events(self: &Arc<Self>) -> Arc<dyn CredentialEvents> {
        Arc::new(CredentialMetrics(self.clone()))
    }
}

/// Counts upstream-credential events on pre-resolved handles (an index, no lookup).
struct CredentialMetrics(Arc<ServerMetrics>);

impl CredentialEvents for CredentialMetrics {
    fn cache(&self, server: usize, lookup: Lookup) {
        if self.0.enabled
            && let Some(c) = self.0.credential_cache.get(server)
        {
            c[lookup as usize].inc();
        }
    }

    fn token_request(&self, server: usize, outcome: &'static str) {
        if self.0.enabled
            && let Some(c) = self.0.token_requests.get(server)
            && let Some(i) = TOKEN_OUTCOMES.iter().position(|o| *o == outcome)
        {
            c[i].inc();
        }
    }
}
