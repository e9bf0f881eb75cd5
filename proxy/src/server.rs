//! Assembles one proxy process: the gateway service on `listen`, the admin service on
//! `admin_listen`, the catalog refresher, the SIGHUP reloader and (with `[control]`) the
//! registry follower, inside a pingora server whose
//! worker threads and graceful-shutdown period come from the config (pingora's defaults are 1
//! thread and 300 s).

use std::path::PathBuf;
use std::sync::Arc;

use arc_swap::ArcSwap;
use async_trait::async_trait;
use pingora::apps::http_app::HttpServer;
use pingora::server::Server;
use pingora::server::configuration::ServerConf;
use pingora::services::background::{BackgroundService, background_service};
use pingora::services::listening::Service;
use sluice_config::Config;
use thiserror::Error;

use crate::admin::Admin;
use crate::auth_keys::KeyRefresher;
use crate::catalog::refresh::CatalogRefresher;
use crate::gateway::GatewayService;
use crate::reload::Reloader;
use crate::session_token::{SessionSealer, SessionTokenError};
use crate::state::Shared;

/// Why the proxy could not start.
#[derive(Debug, Error)]
#[non_exhaustive]
pub enum StartError {
    /// The session secret was refused.
    #[error("sessions.secret: {0}")]
    SessionSecret(#[from] SessionTokenError),
    /// Authentication could not be set up.
    #[error("auth: {0}")]
    Auth(#[from] sluice_auth::SetupError),
    /// Upstream credentials could not be set up.
    #[error("servers.credential: {0}")]
    Credentials(String),
    /// Tracing could not be set up.
    #[error("{0}")]
    Telemetry(#[from] crate::telemetry::TelemetryError),
    /// The access log file could not be opened.
    #[error("telemetry.access_log: {0}")]
    AccessLog(String),
}

/// A built, not yet running, proxy server.
pub struct ProxyServer {
    server: Server,
    /// The world being served (swapped by reloads), for embedding (tests, `sluice up`).
    pub current: Arc<ArcSwap<Shared>>,
    on_exit: Vec<Box<dyn FnOnce() + Send>>,
}

impl ProxyServer {
    /// Builds the server from a validated config that no file backs (reloads are refused).
    /// Extra services (the bundled example server of `sluice up`) can be added with
    /// [`ProxyServer::add_service`] before [`ProxyServer::run`].
    pub fn build(config: Config) -> Result<Self, StartError> {
        Self::build_from(config, None)
    }

    /// Builds the server from a config read from `source`, which SIGHUP and `POST /reload`
    /// re-read ([`crate::reload`]).
    pub fn build_from(config: Config, source: Option<PathBuf>) -> Result<Self, StartError> {
        Self::build_started(
            crate::sync::Start {
                config,
                snapshot: None,
                file: None,
            },
            source,
        )
    }

    /// Builds the server from what [`crate::sync::start`] chose (the file merged with a
    /// registry snapshot, or the file alone), following control when the config has
    /// `[control]`.
    pub fn build_started(
        start: crate::sync::Start,
        source: Option<PathBuf>,
    ) -> Result<Self, StartError> {
        let crate::sync::Start {
            config,
            snapshot,
            file,
        } = start;
        let control = config.control.clone();
        let sealer = match &config.sessions {
            Some(s) => SessionSealer::new(s.secret.expose().as_bytes())?,
            None => {
                tracing::warn!(
                    "no [sessions] secret configured: using a random per-process key, so sessions do not survive a restart and are not shared between replicas"
                );
                let key: [u8; 32] = rand::random();
                SessionSealer::new(&key)?
            }
        };
        let conf = ServerConf {
            threads: config.proxy.threads,
            grace_period_seconds: Some(config.proxy.grace_period.as_secs()),
            // pingora waits the whole grace period (listeners closed, in-flight requests
            // finishing), then gives runtimes this long to stop.
            graceful_shutdown_timeout_seconds: Some(1),
            ..ServerConf::default()
        };
        let mut server = Server::new_with_opt_and_conf(None, conf);
        server.bootstrap();

        let listen = config.proxy.listen.to_string();
        let admin_listen = config.proxy.admin_listen.to_string();
        let threads = config.proxy.threads;
        let shared = Shared::new(config, sealer)?;
        let current = Arc::new(ArcSwap::new(shared.clone()));
        let after = snapshot.as_ref().map(|s| s.version);
        if let Some(v) = after {
            shared.metrics.control_snapshot_version.set(v as i64);
        }
        let reloader = Arc::new(Reloader::with_snapshot(
            current.clone(),
            source,
            snapshot,
            file,
        ));

        let mut proxy = pingora::proxy::http_proxy_service_with_name(
            &server.configuration,
            GatewayService::new(current.clone()),
            "sluice gateway",
        );
        proxy.add_tcp(&listen);
        proxy.threads = Some(threads);

        let mut admin = Service::new(
            "sluice admin".to_owned(),
            HttpServer::new_app(Admin::new(current.clone(), reloader.clone())),
        );
        admin.add_tcp(&admin_listen);
        admin.threads = Some(1);

        let refresher =
            background_service("catalog refresh", CatalogRefresher::new(shared.clone()));

        server.add_service(proxy);
        server.add_service(admin);
        server.add_service(refresher);
        if let Some(control) = &control {
            server.add_service(background_service(
                "registry sync",
                crate::sync::Follower::new(
                    control,
                    reloader.clone(),
                    shared.metrics.clone(),
                    after,
                ),
            ));
        }
        server.add_service(background_service("config reload", HangupReload(reloader)));
        if let Some(auth) = &shared.auth
            && !auth.providers().is_empty()
        {
            server.add_service(background_service(
                "identity provider keys",
                KeyRefresher::new(
                    auth.clone(),
                    shared.metrics.clone(),
                    shared.auth_retired.clone(),
                ),
            ));
        }
        Ok(ProxyServer {
            server,
            current,
            on_exit: Vec::new(),
        })
    }

    /// Runs `hook` after the server stopped (drained after SIGTERM, or at once after SIGINT),
    /// before the process exits: `sluice up` stops the control process it embeds there.
    pub fn on_exit(&mut self, hook: impl FnOnce() + Send + 'static) {
        self.on_exit.push(Box::new(hook));
    }

    /// Adds another pingora service to the same process.
    pub fn add_service(
        &mut self,
        service: impl pingora::services::ServiceWithDependents + 'static,
    ) {
        self.server.add_service(service);
    }

    /// Runs until SIGTERM (readiness false for `drain_delay`, then drains within
    /// `grace_period`) or SIGINT; exits the process.
    pub fn run(self) -> ! {
        let shared = self.current.load();
        let watch = crate::shutdown::DrainFirst::new(
            shared.draining.clone(),
            shared.config.proxy.drain_delay,
        );
        self.server.run(pingora::server::RunArgs {
            shutdown_signal: Box::new(watch),
        });
        for hook in self.on_exit {
            hook();
        }
        std::process::exit(0)
    }
}

/// Reloads the config on SIGHUP. Installed for every proxy, so a SIGHUP never kills one
/// (its default action); without a config file the reload is refused and logged.
struct HangupReload(Arc<Reloader>);

#[async_trait]
impl BackgroundService for HangupReload {
    async fn start(&self, mut shutdown: pingora::server::ShutdownWatch) {
        use tokio::signal::unix::{SignalKind, signal};
        let mut hangups = match signal(SignalKind::hangup()) {
            Ok(s) => s,
            Err(e) => {
                tracing::warn!(error = %e, "cannot listen for SIGHUP; reload with POST /reload on the admin listener");
                return;
            }
        };
        loop {
            tokio::select! {
                got = hangups.recv() => {
                    if got.is_none() {
                        return;
                    }
                    tracing::info!("SIGHUP: reloading the config");
                    // Logged and counted by the reloader.
                    let _ = self.0.reload().await;
                }
                _ = shutdown.changed() => return,
            }
        }
    }
}
