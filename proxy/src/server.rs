//! Assembles one proxy process: the gateway service on `listen`, the admin service on
//! `admin_listen`, and the catalog refresher, inside a pingora server whose worker threads and
//! graceful-shutdown period come from the config (pingora's defaults are 1 thread and 300 s).

use std::sync::Arc;

use pingora::apps::http_app::HttpServer;
use pingora::server::Server;
use pingora::server::configuration::ServerConf;
use pingora::services::background::background_service;
use pingora::services::listening::Service;
use sluice_config::Config;
use thiserror::Error;

use crate::admin::Admin;
use crate::auth_keys::KeyRefresher;
use crate::catalog::refresh::CatalogRefresher;
use crate::gateway::Gateway;
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
    /// Shared state, for embedding (tests, `sluice up`).
    pub shared: Arc<Shared>,
}

impl ProxyServer {
    /// Builds the server from a validated config. Extra services (the bundled example server
    /// of `sluice up`) can be added with [`ProxyServer::add_service`] before [`ProxyServer::run`].
    pub fn build(config: Config) -> Result<Self, StartError> {
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

        let mut proxy = pingora::proxy::http_proxy_service_with_name(
            &server.configuration,
            Gateway::new(shared.clone()),
            "sluice gateway",
        );
        proxy.add_tcp(&listen);
        proxy.threads = Some(threads);

        let mut admin = Service::new(
            "sluice admin".to_owned(),
            HttpServer::new_app(Admin::new(shared.clone())),
        );
        admin.add_tcp(&admin_listen);
        admin.threads = Some(1);

        let refresher =
            background_service("catalog refresh", CatalogRefresher::new(shared.clone()));

        server.add_service(proxy);
        server.add_service(admin);
        server.add_service(refresher);
        if let Some(auth) = &shared.auth
            && !auth.providers().is_empty()
        {
            server.add_service(background_service(
                "identity provider keys",
                KeyRefresher::new(auth.clone(), shared.metrics.clone()),
            ));
        }
        Ok(ProxyServer { server, shared })
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
        let watch = crate::shutdown::DrainFirst::new(
            self.shared.clone(),
            self.shared.config.proxy.drain_delay,
        );
        self.server.run(pingora::server::RunArgs {
            shutdown_signal: Box::new(watch),
        });
        std::process::exit(0)
    }
}
