//! State shared by every request and background task of one proxy process.
//!
//! The routing snapshot is immutable and swapped whole (`arc-swap`): request handlers load it
//! once per request and never lock. Everything mutable here is either atomic, behind a lock
//! used only off the hot path, or bounded.

use std::collections::HashMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use arc_swap::ArcSwap;
use sluice_auth::{Authenticator, GatewayPolicy, UpstreamCredential};
use sluice_config::Config;

use crate::access_log::AccessLog;
use crate::catalog::{GatewayCatalog, ServerCatalog};
use crate::inflight::InFlight;
use crate::metrics::{GatewayMetrics, Metrics};
use crate::policy::Policies;
use crate::rate_limit::GatewayLimiter;
use crate::session::{LazySessions, RevokedSessions};
use crate::session_token::SessionSealer;
use crate::telemetry::Telemetry;
use crate::upstream::{ServerIdx, Upstream};

/// The routing snapshot: upstream catalogs and the gateway catalogs built from them.
#[derive(Debug, Default)]
pub struct Snapshot {
    /// Per server (by index): its catalog, once fetched.
    pub servers: Vec<Option<Arc<ServerCatalog>>>,
    /// Per gateway name.
    pub gateways: HashMap<String, Arc<GatewayCatalog>>,
}

/// What the admin endpoint reports about one upstream.
#[derive(Debug, Clone, Default, serde::Serialize)]
pub struct ServerStatus {
    /// Whether the last catalog fetch succeeded.
    pub up: bool,
    /// Tools in the last good catalog.
    pub tools: usize,
    /// Whether the upstream keeps sessions.
    pub stateful: bool,
    /// The last fetch error, if the last fetch failed.
    pub last_error: Option<String>,
}

/// Session ends a slow standalone stream may miss before it sees a lag (and then checks its
/// own session against the revocation list instead).
const SESSION_END_BACKLOG: usize = 256;

/// A gateway's policies and limits.
type Controls = (Option<Arc<Policies>>, Option<Arc<GatewayLimiter>>);

/// Shared state of one proxy process.
pub struct Shared {
    /// The validated configuration this process serves.
    pub config: Config,
    /// Upstreams by index.
    pub upstreams: Vec<Arc<Upstream>>,
    /// Server name to index.
    pub server_index: HashMap<String, ServerIdx>,
    /// The current routing snapshot.
    pub snapshot: ArcSwap<Snapshot>,
    /// Seals and opens `Mcp-Session-Id` tokens.
    pub sealer: SessionSealer,
    /// Sessions ended with DELETE on this replica.
    pub revoked: RevokedSessions,
    /// Upstream sessions opened lazily on this replica.
    pub lazy_sessions: LazySessions,
    /// Per server: wakes its catalog task for an immediate refetch (a `list_changed` was seen).
    pub refresh_signals: Vec<tokio::sync::Notify>,
    /// Validates gateway credentials; `None` when no gateway has `[gateways.auth]`.
    pub auth: Option<Arc<Authenticator>>,
    /// Per gateway with `[gateways.auth]`: what it accepts and its tool rules.
    pub policies: HashMap<String, Arc<GatewayPolicy>>,
    /// Prometheus metrics.
    pub metrics: Arc<Metrics>,
    /// Per gateway: its pre-resolved metric handles (also reachable from its catalog).
    pub gateway_metrics: HashMap<String, Arc<GatewayMetrics>>,
    /// Per gateway: its compiled policies and its rate limiter, attached to every catalog
    /// built for it (the limiter's buckets outlive catalog rebuilds).
    controls: HashMap<String, Controls>,
    /// OpenTelemetry traces (a no-op without `telemetry.otlp_endpoint`).
    pub telemetry: Telemetry,
    /// The JSON access log.
    pub access_log: AccessLog,
    /// Per gateway: its bound on requests in flight (`limits.concurrent`).
    pub admissions: HashMap<String, Arc<crate::overload::Admission>>,
    /// SIGTERM was received: `/readyz` answers 503 while the listener still serves.
    pub draining: std::sync::atomic::AtomicBool,
    /// Requests being forwarded on this replica, for client cancellations.
    pub inflight: InFlight,
    /// Bumped at every snapshot swap: standalone streams compare their gateway's lists and
    /// announce what changed.
    pub snapshot_swaps: tokio::sync::watch::Sender<u64>,
    /// Client sessions ended (DELETE) on this replica: their standalone streams close.
    pub session_ends: tokio::sync::broadcast::Sender<[u8; 16]>,
    status: Vec<Mutex<ServerStatus>>,
    attempted: AtomicUsize,
}

impl Shared {
    /// Builds the shared state for a validated config.
    pub fn new(
        config: Config,
        sealer: SessionSealer,
    ) -> Result<Arc<Self>, crate::server::StartError> {
        let needs_auth =
            !config.auth.is_empty() || config.gateways.iter().any(|g| g.auth.is_some());
        let auth = if needs_auth {
            let id_jag_gateways: Vec<String> = config
                .gateways
                .iter()
                .filter(|g| g.auth.as_ref().is_some_and(|a| a.id_jag))
                .map(|g| g.name.as_str().to_owned())
                .collect();
            Some(Arc::new(Authenticator::new(
                &config.auth,
                &id_jag_gateways,
            )?))
        } else {
            None
        };
        let policies = match &auth {
            Some(a) => config
                .gateways
                .iter()
                .filter_map(|g| {
                    let cfg = g.auth.as_ref()?;
                    let name = g.name.as_str();
                    Some((name.to_owned(), Arc::new(a.policy(name, cfg))))
                })
                .collect(),
            None => HashMap::new(),
        };
        let server_names: Vec<String> = config
            .servers
            .iter()
            .map(|s| s.name.as_str().to_owned())
            .collect();
        let metrics = Metrics::new(&server_names, config.telemetry.metrics);
        let upstreams = upstreams(&config, &metrics)?;
        let server_index = config
            .servers
            .iter()
            .enumerate()
            .map(|(i, s)| (s.name.as_str().to_owned(), i))
            .collect();
        let status = config.servers.iter().map(|_| Mutex::default()).collect();
        let gateway_metrics = config
            .gateways
            .iter()
            .map(|g| (g.name.as_str().to_owned(), metrics.gateway(g.name.as_str())))
            .collect();
        let controls = config
            .gateways
            .iter()
            .map(|g| {
                let name = g.name.as_str();
                let policies = Policies::compile(g, &metrics).map(Arc::new);
                let limiter = GatewayLimiter::new(name, &g.limits, &metrics).map(Arc::new);
                (name.to_owned(), (policies, limiter))
            })
            .collect();
        let telemetry = Telemetry::new(&config.telemetry)?;
        let access_log = AccessLog::start(
            &config.telemetry.access_log,
            metrics.access_log_dropped.clone(),
        )
        .map_err(|e| crate::server::StartError::AccessLog(e.to_string()))?;
        let refresh_signals = config
            .servers
            .iter()
            .map(|_| tokio::sync::Notify::new())
            .collect();
        let ttl = config
            .sessions
            .as_ref()
            .map_or(std::time::Duration::from_secs(86_400), |s| s.ttl);
        let shared = Arc::new(Shared {
            upstreams,
            server_index,
            snapshot: ArcSwap::from_pointee(Snapshot::default()),
            sealer,
            revoked: RevokedSessions::new(ttl),
            lazy_sessions: LazySessions::new(ttl),
            refresh_signals,
            auth,
            policies,
            metrics,
            gateway_metrics,
            controls,
            telemetry,
            access_log,
            admissions: config
                .gateways
                .iter()
                .map(|g| {
                    let bound = crate::overload::Admission::new(g.limits.concurrent);
                    (g.name.as_str().to_owned(), Arc::new(bound))
                })
                .collect(),
            draining: std::sync::atomic::AtomicBool::new(false),
            inflight: InFlight::default(),
            snapshot_swaps: tokio::sync::watch::Sender::new(0),
            session_ends: tokio::sync::broadcast::Sender::new(SESSION_END_BACKLOG),
            status,
            attempted: AtomicUsize::new(0),
            config,
        });
        shared.rebuild(vec![None; shared.upstreams.len()]);
        Ok(shared)
    }

    /// Publishes a new snapshot built from these server catalogs.
    pub fn rebuild(&self, servers: Vec<Option<Arc<ServerCatalog>>>) {
        let page_size = self.config.catalog.page_size;
        let gateways: HashMap<String, Arc<GatewayCatalog>> = self
            .config
            .gateways
            .iter()
            .map(|g| {
                let rules = self.policies.get(g.name.as_str()).map(|p| &p.rules);
                let metrics = self
                    .gateway_metrics
                    .get(g.name.as_str())
                    .cloned()
                    .unwrap_or_else(|| self.metrics.gateway(g.name.as_str()));
                let (policies, limiter) = self
                    .controls
                    .get(g.name.as_str())
                    .cloned()
                    .unwrap_or_default();
                let catalog = GatewayCatalog::build(
                    g,
                    &self.server_index,
                    &servers,
                    page_size,
                    rules,
                    metrics,
                )
                .with_controls(policies, limiter);
                (g.name.as_str().to_owned(), Arc::new(catalog))
            })
            .collect();
        let before = self.snapshot.load();
        for (name, catalog) in &gateways {
            let old = before.gateways.get(name).map(|c| c.conflicts.list());
            crate::catalog::conflicts::log_changes(
                name,
                old.unwrap_or_default(),
                catalog.conflicts.list(),
            );
        }
        self.snapshot
            .store(Arc::new(Snapshot { servers, gateways }));
        self.snapshot_swaps.send_modify(|n| *n = n.wrapping_add(1));
    }

    /// Asks for an immediate refetch of one server's catalog.
    pub fn request_refresh(&self, server: ServerIdx) {
        if let Some(n) = self.refresh_signals.get(server) {
            n.notify_one();
        }
    }

    /// Records the outcome of a catalog fetch for the admin endpoint.
    pub fn record_fetch(&self, server: ServerIdx, status: ServerStatus, first_attempt: bool) {
        self.metrics.set_upstream_up(server, status.up);
        if let Some(slot) = self.status.get(server) {
            *slot.lock().unwrap_or_else(|p| p.into_inner()) = status;
        }
        if first_attempt {
            self.attempted.fetch_add(1, Ordering::Release);
        }
    }

    /// One server's last recorded status.
    pub fn status_of(&self, server: ServerIdx) -> ServerStatus {
        self.status
            .get(server)
            .map(|s| s.lock().unwrap_or_else(|p| p.into_inner()).clone())
            .unwrap_or_default()
    }

    /// Ready once every upstream's catalog was fetched or failed at least once.
    pub fn is_ready(&self) -> bool {
        self.attempted.load(Ordering::Acquire) >= self.upstreams.len()
    }

    /// Per-server status, by name.
    pub fn server_statuses(&self) -> Vec<(String, ServerStatus)> {
        self.upstreams
            .iter()
            .zip(&self.status)
            .map(|(u, s)| {
                let s = s.lock().unwrap_or_else(|p| p.into_inner()).clone();
                (u.name.as_str().to_owned(), s)
            })
            .collect()
    }
}

/// The upstreams with their credentials. Token endpoints share one HTTP client, made only when
/// some server has a credential.
fn upstreams(
    config: &Config,
    metrics: &Arc<Metrics>,
) -> Result<Vec<Arc<Upstream>>, crate::server::StartError> {
    let any = config
        .servers
        .iter()
        .any(|s| s.credential.is_some() || s.catalog_credential.is_some());
    let http = if any {
        Some(sluice_auth::fetch::client().map_err(|e| {
            crate::server::StartError::Credentials(format!(
                "building the token-endpoint client: {e}"
            ))
        })?)
    } else {
        None
    };
    let events = metrics.credential_events();
    Ok(config
        .servers
        .iter()
        .enumerate()
        .map(|(i, s)| {
            let make = |c: &sluice_config::CredentialConfig| {
                let http = http.clone()?;
                Some(UpstreamCredential::new(
                    i,
                    s.name.as_str(),
                    c,
                    http,
                    events.clone(),
                ))
            };
            let credentials = (
                s.credential.as_ref().and_then(make),
                s.catalog_credential.as_ref().and_then(make),
            );
            Upstream::new(i, s, config.proxy.upstream_idle_timeout, credentials)
        })
        .collect())
}
