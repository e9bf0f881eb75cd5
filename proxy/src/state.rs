//! State shared by every request and background task of one proxy process.
//!
//! A [`Shared`] is one *world*: a validated config with everything built from it (upstreams,
//! authenticator, policies, limits, the routing snapshot). A config reload
//! ([`crate::reload`]) builds a successor world and swaps it in whole; a request loads the
//! current world once and finishes on it, so no request sees half of two configs. What must
//! outlive a world (the session key, revocations, metrics, the access log, the in-flight
//! table, the drain flag) sits behind `Arc`s that every world of the process shares.
//!
//! The routing snapshot is immutable and swapped whole (`arc-swap`): request handlers load it
//! once per request and never lock. Everything mutable here is either atomic, behind a lock
//! used only off the hot path, or bounded.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use arc_swap::ArcSwap;
use sluice_auth::{Authenticator, GatewayPolicy, UpstreamCredential};
use sluice_config::Config;

use crate::access_log::AccessLog;
use crate::catalog::{GatewayCatalog, ServerCatalog};
use crate::inflight::InFlight;
use crate::metrics::{GatewayMetrics, Metrics, ServerMetrics};
use crate::policy::Policies;
use crate::rate_limit::GatewayLimiter;
use crate::session::{LazySessions, RevokedSessions};
use crate::session_token::SessionSealer;
use crate::telemetry::Telemetry;
use crate::upstream::{ServerIdx, Upstream};

/// The routing snapshot: upstream catalogs and the gateway catalogs built from them.
#[derive(Debug, Default)]
pub struct Snapshot {
    /// The generation of the world that built it (0 at start, +1 per applied reload).
    pub generation: u64,
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
    /// Whether the upstream also speaks the 2026-07-28 revision (answered `server/discover`).
    pub modern: bool,
    /// Whether it speaks the handshake era (answered `initialize`).
    pub handshake: bool,
    /// The last fetch error, if the last fetch failed.
    pub last_error: Option<String>,
}

/// Session ends a slow standalone stream may miss before it sees a lag (and then checks its
/// own session against the revocation list instead).
const SESSION_END_BACKLOG: usize = 256;

/// A gateway's policies and limits.
type Controls = (Option<Arc<Policies>>, Option<Arc<GatewayLimiter>>);

/// One world of a proxy process: a config and what was built from it (see the module docs).
pub struct Shared {
    /// The validated configuration this world serves.
    pub config: Config,
    /// 0 for the world the process started with, +1 per applied reload.
    pub generation: u64,
    /// Upstreams by index.
    pub upstreams: Vec<Arc<Upstream>>,
    /// Server name to index.
    pub server_index: HashMap<String, ServerIdx>,
    /// The current routing snapshot.
    pub snapshot: ArcSwap<Snapshot>,
    /// Seals and opens `Mcp-Session-Id` tokens.
    pub sealer: Arc<SessionSealer>,
    /// Sessions ended with DELETE on this replica.
    pub revoked: Arc<RevokedSessions>,
    /// Upstream sessions opened lazily on this replica.
    pub lazy_sessions: Arc<LazySessions>,
    /// Per server: wakes its catalog task for an immediate refetch (a `list_changed` was seen).
    pub refresh_signals: Vec<tokio::sync::Notify>,
    /// Validates gateway credentials; `None` when no gateway has `[gateways.auth]`.
    pub auth: Option<Arc<Authenticator>>,
    /// Per gateway with `[gateways.auth]`: what it accepts and its tool rules.
    pub policies: HashMap<String, Arc<GatewayPolicy>>,
    /// Prometheus metrics.
    pub metrics: Arc<Metrics>,
    /// Per server of this world (by index): its pre-resolved metric handles.
    pub server_metrics: Arc<ServerMetrics>,
    /// Per gateway: its pre-resolved metric handles (also reachable from its catalog).
    pub gateway_metrics: HashMap<String, Arc<GatewayMetrics>>,
    /// Per gateway: its compiled policies and its rate limiter, attached to every catalog
    /// built for it (the limiter's buckets outlive catalog rebuilds).
    controls: HashMap<String, Controls>,
    /// OpenTelemetry traces (a no-op without `telemetry.otlp_endpoint`).
    pub telemetry: Arc<Telemetry>,
    /// The JSON access log.
    pub access_log: Arc<AccessLog>,
    /// Per gateway: its bound on requests in flight (`limits.concurrent`).
    pub admissions: HashMap<String, Arc<crate::overload::Admission>>,
    /// SIGTERM was received: `/readyz` answers 503 while the listener still serves.
    pub draining: Arc<AtomicBool>,
    /// Requests being forwarded on this replica, for client cancellations.
    pub inflight: Arc<InFlight>,
    /// The snapshot of the current world, sent at every swap: standalone streams compare
    /// their gateway's lists and announce what changed (whichever world they started on).
    pub snapshot_swaps: Arc<tokio::sync::watch::Sender<Arc<Snapshot>>>,
    /// Client sessions ended (DELETE) on this replica: their standalone streams close.
    pub session_ends: tokio::sync::broadcast::Sender<[u8; 16]>,
    /// Set when a reload replaced the authenticator: its key refresher stops. Shared by the
    /// worlds that share the authenticator.
    pub auth_retired: Arc<tokio::sync::watch::Sender<bool>>,
    status: Vec<Mutex<ServerStatus>>,
    /// Per server: its catalog was fetched, or failed, at least once.
    attempted: Vec<AtomicBool>,
    /// Wakes [`Shared::wait_ready`] after each recorded fetch.
    fetched: tokio::sync::Notify,
    /// This world is the one requests load (its snapshots are announced).
    live: AtomicBool,
    /// A successor replaced this world: its background tasks stop.
    retired: tokio::sync::watch::Sender<bool>,
}

impl std::fmt::Debug for Shared {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Shared")
            .field("generation", &self.generation)
            .field("config", &self.config.summary())
            .finish_non_exhaustive()
    }
}

/// What every world of a process shares (see the module docs).
#[derive(Clone)]
struct ProcessParts {
    sealer: Arc<SessionSealer>,
    revoked: Arc<RevokedSessions>,
    lazy_sessions: Arc<LazySessions>,
    metrics: Arc<Metrics>,
    telemetry: Arc<Telemetry>,
    access_log: Arc<AccessLog>,
    draining: Arc<AtomicBool>,
    inflight: Arc<InFlight>,
    snapshot_swaps: Arc<tokio::sync::watch::Sender<Arc<Snapshot>>>,
    session_ends: tokio::sync::broadcast::Sender<[u8; 16]>,
}

impl Shared {
    /// Builds the first world of a process for a validated config.
    pub fn new(
        config: Config,
        sealer: SessionSealer,
    ) -> Result<Arc<Self>, crate::server::StartError> {
        let ttl = config
            .sessions
            .as_ref()
            .map_or(std::time::Duration::from_secs(86_400), |s| s.ttl);
        let metrics = Metrics::new(config.telemetry.metrics);
        let telemetry = Telemetry::new(&config.telemetry)?;
        let access_log = AccessLog::start(
            &config.telemetry.access_log,
            metrics.access_log_dropped.clone(),
        )
        .map_err(|e| crate::server::StartError::AccessLog(e.to_string()))?;
        let parts = ProcessParts {
            sealer: Arc::new(sealer),
            revoked: Arc::new(RevokedSessions::new(ttl)),
            lazy_sessions: Arc::new(LazySessions::new(ttl)),
            metrics,
            telemetry: Arc::new(telemetry),
            access_log: Arc::new(access_log),
            draining: Arc::new(AtomicBool::new(false)),
            inflight: Arc::new(InFlight::default()),
            snapshot_swaps: Arc::new(tokio::sync::watch::Sender::new(Arc::default())),
            session_ends: tokio::sync::broadcast::Sender::new(SESSION_END_BACKLOG),
        };
        let shared = Self::assemble(config, parts, None)?;
        shared.activate();
        Ok(shared)
    }

    /// Builds the world that follows this one for a new validated config. Servers whose
    /// config is unchanged keep their upstream (pooled connections, breaker, cached tokens) when
    /// they keep their position, and their catalog and status in any case; an unchanged
    /// `[auth]` keeps the authenticator (and its cached keys); a gateway whose limits are
    /// unchanged keeps its rate-limit buckets and concurrency bound. The successor serves
    /// nothing until [`Shared::activate`].
    pub fn successor(&self, config: Config) -> Result<Arc<Self>, crate::server::StartError> {
        Self::assemble(config, self.parts(), Some(self))
    }

    fn parts(&self) -> ProcessParts {
        ProcessParts {
            sealer: self.sealer.clone(),
            revoked: self.revoked.clone(),
            lazy_sessions: self.lazy_sessions.clone(),
            metrics: self.metrics.clone(),
            telemetry: self.telemetry.clone(),
            access_log: self.access_log.clone(),
            draining: self.draining.clone(),
            inflight: self.inflight.clone(),
            snapshot_swaps: self.snapshot_swaps.clone(),
            session_ends: self.session_ends.clone(),
        }
    }

    fn assemble(
        config: Config,
        parts: ProcessParts,
        prev: Option<&Shared>,
    ) -> Result<Arc<Self>, crate::server::StartError> {
        let id_jag_gateways: Vec<String> = config
            .gateways
            .iter()
            .filter(|g| g.auth.as_ref().is_some_and(|a| a.id_jag))
            .map(|g| g.name.as_str().to_owned())
            .collect();
        let needs_auth =
            !config.auth.is_empty() || config.gateways.iter().any(|g| g.auth.is_some());
        let kept_auth =
            prev.filter(|p| p.config.auth == config.auth && p.id_jag() == id_jag_gateways);
        let (auth, auth_retired) = match kept_auth {
            Some(p) if needs_auth && p.auth.is_some() => (p.auth.clone(), p.auth_retired.clone()),
            _ if needs_auth => (
                Some(Arc::new(Authenticator::new(
                    &config.auth,
                    &id_jag_gateways,
                )?)),
                Arc::new(tokio::sync::watch::Sender::new(false)),
            ),
            _ => (None, Arc::new(tokio::sync::watch::Sender::new(false))),
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
        let metrics = parts.metrics.clone();
        let server_metrics = metrics.servers(&server_names);
        let upstreams = upstreams(&config, &server_metrics, prev)?;
        let server_index: HashMap<String, ServerIdx> = config
            .servers
            .iter()
            .enumerate()
            .map(|(i, s)| (s.name.as_str().to_owned(), i))
            .collect();
        // A server at the same URL keeps its catalog and status wherever it moved, until a
        // fetch replaces them: a reload that changes a down server's timeout must not make its
        // tools vanish (its calls keep failing clearly instead). Only an unchanged server
        // counts as already fetched.
        let same_url = |s: &sluice_config::ServerConfig| -> Option<(ServerIdx, bool)> {
            let p = prev?;
            let j = *p.server_index.get(s.name.as_str())?;
            let old = p.config.servers.get(j)?;
            (old.url == s.url).then_some((j, old == s))
        };
        let prev_snapshot = prev.map(|p| p.snapshot.load_full());
        let mut seeds = Vec::with_capacity(config.servers.len());
        let mut status = Vec::with_capacity(config.servers.len());
        let mut attempted = Vec::with_capacity(config.servers.len());
        for s in &config.servers {
            let from = same_url(s).zip(prev);
            seeds.push(from.and_then(|((j, _), _)| {
                prev_snapshot
                    .as_ref()
                    .and_then(|snap| snap.servers.get(j).cloned().flatten())
            }));
            status.push(Mutex::new(
                from.map(|((j, _), p)| p.status_of(j)).unwrap_or_default(),
            ));
            attempted.push(AtomicBool::new(from.is_some_and(|((j, unchanged), p)| {
                unchanged
                    && p.attempted
                        .get(j)
                        .is_some_and(|a| a.load(Ordering::Acquire))
            })));
        }
        let gateway_metrics = config
            .gateways
            .iter()
            .map(|g| (g.name.as_str().to_owned(), metrics.gateway(g.name.as_str())))
            .collect();
        let prev_gateway = |name: &str| {
            prev.and_then(|p| p.config.gateways.iter().find(|g| g.name.as_str() == name))
        };
        let controls = config
            .gateways
            .iter()
            .map(|g| {
                let name = g.name.as_str();
                let policies = Policies::compile(g, &metrics).map(Arc::new);
                let kept_limiter = prev_gateway(name)
                    .filter(|old| {
                        let rates =
                            |l: &sluice_config::GatewayLimits| (l.gateway, l.caller, l.tool);
                        rates(&old.limits) == rates(&g.limits)
                    })
                    .and_then(|_| prev?.controls.get(name)?.1.clone());
                let limiter = kept_limiter
                    .or_else(|| GatewayLimiter::new(name, &g.limits, &metrics).map(Arc::new));
                (name.to_owned(), (policies, limiter))
            })
            .collect();
        let admissions = config
            .gateways
            .iter()
            .map(|g| {
                let name = g.name.as_str();
                let kept = prev
                    .and_then(|p| p.admissions.get(name))
                    .filter(|a| a.limit() == g.limits.concurrent)
                    .cloned();
                let bound = kept.unwrap_or_else(|| {
                    Arc::new(crate::overload::Admission::new(g.limits.concurrent))
                });
                (name.to_owned(), bound)
            })
            .collect();
        let refresh_signals = config
            .servers
            .iter()
            .map(|_| tokio::sync::Notify::new())
            .collect();
        let shared = Arc::new(Shared {
            generation: prev.map_or(0, |p| p.generation + 1),
            upstreams,
            server_index,
            snapshot: ArcSwap::from_pointee(Snapshot::default()),
            sealer: parts.sealer,
            revoked: parts.revoked,
            lazy_sessions: parts.lazy_sessions,
            refresh_signals,
            auth,
            policies,
            metrics,
            server_metrics,
            gateway_metrics,
            controls,
            telemetry: parts.telemetry,
            access_log: parts.access_log,
            admissions,
            draining: parts.draining,
            inflight: parts.inflight,
            snapshot_swaps: parts.snapshot_swaps,
            session_ends: parts.session_ends,
            auth_retired,
            status,
            attempted,
            fetched: tokio::sync::Notify::new(),
            live: AtomicBool::new(false),
            retired: tokio::sync::watch::Sender::new(false),
            config,
        });
        shared.rebuild(seeds);
        Ok(shared)
    }

    /// The gateways that accept ID-JAG grants, which the authenticator is built for.
    fn id_jag(&self) -> Vec<String> {
        self.config
            .gateways
            .iter()
            .filter(|g| g.auth.as_ref().is_some_and(|a| a.id_jag))
            .map(|g| g.name.as_str().to_owned())
            .collect()
    }

    /// Makes this world the one whose snapshots are announced, and announces its snapshot.
    pub fn activate(&self) {
        self.live.store(true, Ordering::Release);
        self.announce(self.snapshot.load_full());
    }

    /// Marks this world replaced: its catalog refresher stops.
    pub fn retire(&self) {
        self.live.store(false, Ordering::Release);
        self.retired.send_replace(true);
    }

    /// Resolves once this world is retired (never, for the last one).
    pub async fn retired(&self) {
        let mut rx = self.retired.subscribe();
        let _ = rx.wait_for(|r| *r).await;
    }

    /// Waits until every upstream's catalog was fetched or failed once, at most `bound`;
    /// whether it got there.
    pub async fn wait_ready(&self, bound: Duration) -> bool {
        let deadline = tokio::time::Instant::now() + bound;
        loop {
            let fetched = self.fetched.notified();
            tokio::pin!(fetched);
            fetched.as_mut().enable();
            if self.is_ready() {
                return true;
            }
            if tokio::time::timeout_at(deadline, fetched).await.is_err() {
                return self.is_ready();
            }
        }
    }

    /// Sends `snapshot` to the standalone streams if this world is live and nothing newer was
    /// sent (a retiring world's late rebuild never overrides its successor's).
    fn announce(&self, snapshot: Arc<Snapshot>) {
        self.snapshot_swaps.send_if_modified(|current| {
            let newer = current.generation <= snapshot.generation;
            if newer && self.live.load(Ordering::Acquire) {
                *current = snapshot;
                true
            } else {
                false
            }
        });
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
        let snapshot = Arc::new(Snapshot {
            generation: self.generation,
            servers,
            gateways,
        });
        self.snapshot.store(snapshot.clone());
        self.announce(snapshot);
    }

    /// Asks for an immediate refetch of one server's catalog.
    pub fn request_refresh(&self, server: ServerIdx) {
        if let Some(n) = self.refresh_signals.get(server) {
            n.notify_one();
        }
    }

    /// Records the outcome of a catalog fetch for the admin endpoint.
    pub fn record_fetch(&self, server: ServerIdx, status: ServerStatus) {
        self.server_metrics.set_upstream_up(server, status.up);
        if let Some(slot) = self.status.get(server) {
            *slot.lock().unwrap_or_else(|p| p.into_inner()) = status;
        }
        if let Some(a) = self.attempted.get(server) {
            a.store(true, Ordering::Release);
        }
        self.fetched.notify_waiters();
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
        self.attempted.iter().all(|a| a.load(Ordering::Acquire))
    }

    /// Counts every upstream as attempted, so a reload never turns `/readyz` false (every
    /// replica reloading at once would leave a balancer nothing to send to) while a new
    /// server's first fetch is still running; its tools appear when it finishes.
    pub fn settle(&self) {
        for a in &self.attempted {
            a.store(true, Ordering::Release);
        }
    }

    /// Servers whose catalog was neither fetched nor failed yet.
    pub fn pending_servers(&self) -> Vec<String> {
        self.upstreams
            .iter()
            .zip(&self.attempted)
            .filter(|(_, a)| !a.load(Ordering::Acquire))
            .map(|(u, _)| u.name.as_str().to_owned())
            .collect()
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
/// some new upstream has a credential. An upstream of `prev` is kept when its server keeps its
/// config and its position (its index is baked into its metric and credential handles).
fn upstreams(
    config: &Config,
    server_metrics: &Arc<ServerMetrics>,
    prev: Option<&Shared>,
) -> Result<Vec<Arc<Upstream>>, crate::server::StartError> {
    let keep = |i: usize, s: &sluice_config::ServerConfig| -> Option<Arc<Upstream>> {
        let p = prev?;
        let same = p.config.servers.get(i) == Some(s)
            && p.config.proxy.upstream_idle_timeout == config.proxy.upstream_idle_timeout;
        same.then(|| p.upstreams.get(i).cloned()).flatten()
    };
    let any = config.servers.iter().enumerate().any(|(i, s)| {
        keep(i, s).is_none() && (s.credential.is_some() || s.catalog_credential.is_some())
    });
    let http = if any {
        Some(sluice_auth::fetch::client().map_err(|e| {
            crate::server::StartError::Credentials(format!(
                "building the token-endpoint client: {e}"
            ))
        })?)
    } else {
        None
    };
    let events = server_metrics.credential_events();
    Ok(config
        .servers
        .iter()
        .enumerate()
        .map(|(i, s)| {
            if let Some(kept) = keep(i, s) {
                return kept;
            }
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
