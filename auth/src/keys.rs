//! One identity provider's signing keys, cached.
//!
//! The current key set sits behind an `ArcSwap`, so verifying a token loads a pointer and
//! takes no lock. Fetches are serialised per provider by an async mutex: a background task
//! refreshes the set every `jwks_refresh`, and a token with an unknown `kid` may trigger one
//! refetch, at most one per [`MIN_REFETCH_INTERVAL`]; callers that arrive while a fetch runs
//! wait for it and then use its result instead of fetching again. A storm of forged `kid`s
//! therefore costs the IdP one request per interval. When fetches fail, the last good set
//! keeps serving until it is `jwks_refresh + jwks_max_stale` old; a provider never fetched
//! fails closed.

use std::sync::Arc;
use std::time::{Duration, Instant};

use arc_swap::ArcSwapOption;
use sluice_config::ProviderConfig;
use tokio::sync::Mutex;
use url::Url;

use crate::fetch;
use crate::jwk::{self, VerifyingKey};

/// Shortest time between two fetches caused by unknown key ids.
pub const MIN_REFETCH_INTERVAL: Duration = Duration::from_secs(5);

/// A fetched key set.
#[derive(Debug)]
pub struct KeySet {
    /// Usable keys.
    pub keys: Vec<VerifyingKey>,
    /// When it was fetched.
    pub fetched_at: Instant,
}

struct FetchState {
    last_attempt: Option<Instant>,
    discovered_url: Option<Url>,
}

/// The cached keys of one provider.
pub struct ProviderKeys {
    /// Provider name, for messages.
    pub name: String,
    current: ArcSwapOption<KeySet>,
    http: reqwest::Client,
    issuer: String,
    configured_url: Option<Url>,
    /// How long a fetched set is trusted: `jwks_refresh + jwks_max_stale`.
    trusted_for: Duration,
    fetch: Mutex<FetchState>,
}

/// Why a fetch failed (logged; never sent to a client, since it may describe the IdP).
#[derive(Debug, thiserror::Error)]
pub enum FetchError {
    /// The HTTP request failed.
    #[error("{0}")]
    Http(#[from] fetch::HttpError),
    /// The metadata document has no `jwks_uri`.
    #[error("issuer metadata at {0} has no jwks_uri")]
    NoJwksUri(String),
    /// The key set is not usable.
    #[error("{0}")]
    Jwks(#[from] jwk::JwksError),
}

impl ProviderKeys {
    /// Keys fetched from a provider.
    pub fn new(cfg: &ProviderConfig, http: reqwest::Client) -> Self {
        ProviderKeys {
            name: cfg.name.clone(),
            current: ArcSwapOption::empty(),
            http,
            issuer: cfg.issuer.clone(),
            configured_url: cfg.jwks_url.clone(),
            trusted_for: cfg.jwks_refresh + cfg.jwks_max_stale,
            fetch: Mutex::new(FetchState {
                last_attempt: None,
                discovered_url: None,
            }),
        }
    }

    /// The key set if it may still be trusted.
    pub fn usable(&self) -> Option<Arc<KeySet>> {
        self.current
            .load_full()
            .filter(|set| set.fetched_at.elapsed() <= self.trusted_for)
    }

    /// Refetches after an unknown `kid`, unless a fetch started less than
    /// [`MIN_REFETCH_INTERVAL`] ago; waits for a fetch already running.
    pub async fn refetch_for_unknown_kid(&self) {
        let mut state = self.fetch.lock().await;
        if state
            .last_attempt
            .is_some_and(|t| t.elapsed() < MIN_REFETCH_INTERVAL)
        {
            return;
        }
        if let Err(e) = self.fetch_locked(&mut state).await {
            tracing::warn!(provider = %self.name, error = %e, "refetching keys for an unknown kid failed");
        }
    }

    /// Fetches the key set now (the background refresh).
    pub async fn refresh(&self) -> Result<usize, FetchError> {
        let mut state = self.fetch.lock().await;
        self.fetch_locked(&mut state).await
    }

    async fn fetch_locked(&self, state: &mut FetchState) -> Result<usize, FetchError> {
        state.last_attempt = Some(Instant::now());
        let url = match (&self.configured_url, &state.discovered_url) {
            (Some(u), _) | (None, Some(u)) => u.clone(),
            (None, None) => {
                let u = discover(&self.http, &self.issuer).await?;
                state.discovered_url = Some(u.clone());
                u
            }
        };
        let body = fetch::get(&self.http, &url, fetch::MAX_DOCUMENT_BYTES).await?;
        let keys = jwk::parse_jwks(&body)?;
        let n = keys.len();
        self.current.store(Some(Arc::new(KeySet {
            keys,
            fetched_at: Instant::now(),
        })));
        tracing::debug!(provider = %self.name, keys = n, "fetched signing keys");
        Ok(n)
    }
}

/// The `jwks_uri` from the issuer's OpenID Connect or OAuth 2.0 metadata (RFC 8414).
async fn discover(http: &reqwest::Client, issuer: &str) -> Result<Url, FetchError> {
    let base = issuer.trim_end_matches('/');
    let mut last = None;
    for suffix in [
        "/.well-known/openid-configuration",
        "/.well-known/oauth-authorization-server",
    ] {
        let Ok(url) = Url::parse(&format!("{base}{suffix}")) else {
            continue;
        };
        match fetch::get(http, &url, fetch::MAX_DOCUMENT_BYTES).await {
            Ok(body) => {
                let doc: serde_json::Value = serde_json::from_slice(&body).unwrap_or_default();
                return doc
                    .get("jwks_uri")
                    .and_then(|v| v.as_str())
                    .and_then(|s| Url::parse(s).ok())
                    .ok_or_else(|| FetchError::NoJwksUri(url.to_string()));
            }
            Err(e) => last = Some(e),
        }
    }
    Err(last.map_or_else(
        || FetchError::NoJwksUri(issuer.to_owned()),
        FetchError::Http,
    ))
}
