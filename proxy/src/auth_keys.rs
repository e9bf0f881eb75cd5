//! Keeps identity providers' signing keys fresh: a background task per provider fetches its
//! key set at start-up and every `jwks_refresh`, so tokens are checked against a cached set and
//! no request waits on the IdP. A failed fetch is retried with jittered exponential backoff
//! (capped below the refresh interval) while the last good keys keep serving. A reload that
//! replaces the authenticator stops its refresher ([`crate::state::Shared::auth_retired`]).

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use pingora::server::ShutdownWatch;
use pingora::services::background::BackgroundService;
use rand::Rng;
use sluice_auth::Authenticator;

const RETRY_START: Duration = Duration::from_millis(500);

/// The background service that refreshes every provider's keys.
pub struct KeyRefresher {
    auth: Arc<Authenticator>,
    metrics: Arc<crate::metrics::Metrics>,
    retired: Arc<tokio::sync::watch::Sender<bool>>,
}

impl KeyRefresher {
    /// A refresher for the authenticator's providers, until `retired` says `true`.
    pub fn new(
        auth: Arc<Authenticator>,
        metrics: Arc<crate::metrics::Metrics>,
        retired: Arc<tokio::sync::watch::Sender<bool>>,
    ) -> Self {
        KeyRefresher {
            auth,
            metrics,
            retired,
        }
    }

    /// Refreshes every provider's keys until the authenticator is retired.
    pub async fn run(&self) {
        let mut retired = self.retired.subscribe();
        let tasks = (0..self.auth.providers().len()).map(|i| self.run_one(i));
        tokio::select! {
            _ = futures_util::future::join_all(tasks) => {}
            _ = retired.wait_for(|r| *r) => {}
        }
    }

    async fn run_one(&self, index: usize) {
        let provider = &self.auth.providers()[index];
        let refresh = provider.config.jwks_refresh;
        let mut retry = RETRY_START;
        loop {
            let outcome = provider.keys.refresh().await;
            self.metrics
                .jwks_refresh(&provider.config.name, outcome.is_ok());
            let wait = match outcome {
                Ok(n) => {
                    tracing::info!(provider = %provider.config.name, keys = n, "identity provider keys fetched");
                    retry = RETRY_START;
                    refresh
                }
                Err(e) => {
                    tracing::warn!(provider = %provider.config.name, error = %e, retry_in = ?retry, "fetching identity provider keys failed; the last good keys keep serving");
                    let wait = retry;
                    retry = (retry * 2).min(refresh / 2).max(RETRY_START);
                    wait
                }
            };
            let jitter = rand::rng().random_range(0.9..1.1);
            tokio::time::sleep(wait.mul_f64(jitter)).await;
        }
    }
}

#[async_trait]
impl BackgroundService for KeyRefresher {
    async fn start(&self, mut shutdown: ShutdownWatch) {
        tokio::select! {
            _ = self.run() => {}
            _ = shutdown.changed() => {}
        }
    }
}
