//! Fetched upstream tokens, kept until shortly before they expire so a tool call never waits on
//! a token endpoint once warm.
//!
//! A [`Slot`] holds one token (one per server for client credentials, one per caller token for
//! exchanges, kept in a bounded moka cache). Reading a warm slot is one atomic load. A slot
//! that is empty or expired is filled by exactly one fetch however many requests arrive at
//! once: the others wait on the slot's async lock and then read what it stored
//! (single-flight). Past three quarters of a token's usable life one request starts a
//! background refresh and still gets the current token (refresh-ahead). A failed fetch is
//! remembered for `failure_ttl`, so a broken token endpoint sees one request per interval
//! rather than one per tool call.

use std::future::Future;
use std::hash::Hash;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use arc_swap::ArcSwapOption;
use http::HeaderValue;
use tokio::time::Instant;

use super::{CredentialError, Lookup};

/// A fetch of a new token, owning what it needs so it can run in the background.
pub(crate) type Fetch = Pin<Box<dyn Future<Output = Result<Fetched, CredentialError>> + Send>>;

/// A token endpoint's answer, ready to inject.
#[derive(Debug, Clone)]
pub(crate) struct Fetched {
    /// The header value (marked sensitive).
    pub value: HeaderValue,
    /// How long the token lives from now.
    pub lifetime: Duration,
}

/// How tokens age, and whose they are (for messages).
#[derive(Debug, Clone)]
pub(crate) struct Aging {
    /// The server the tokens are for.
    pub server: Arc<str>,
    /// Not used within this much of expiry.
    pub margin: Duration,
    /// How long a failure is answered from the cache.
    pub failure_ttl: Duration,
    /// Bound on one fetch.
    pub timeout: Duration,
}

#[derive(Debug)]
struct Token {
    value: HeaderValue,
    usable_until: Instant,
    refresh_at: Instant,
}

#[derive(Debug)]
struct Failure {
    error: CredentialError,
    until: Instant,
}

/// One cached token and the lock that makes its fetch single-flight.
#[derive(Debug, Default)]
pub(crate) struct Slot {
    token: ArcSwapOption<Token>,
    failure: ArcSwapOption<Failure>,
    fetching: tokio::sync::Mutex<()>,
    refreshing: AtomicBool,
}

impl Slot {
    /// The token, fetched with `make` when there is none usable. `make` is called at most
    /// once per call, and only by the request that does the fetch (or the refresh).
    pub async fn get(
        self: &Arc<Self>,
        aging: &Aging,
        make: impl Fn() -> Fetch,
    ) -> (Result<HeaderValue, CredentialError>, Lookup) {
        let now = Instant::now();
        if let Some(token) = self.usable(now) {
            if now >= token.refresh_at && !self.refreshing.swap(true, Ordering::AcqRel) {
                self.refresh_in_background(aging.clone(), make());
            }
            return (Ok(token.value.clone()), Lookup::Hit);
        }
        if let Some(error) = self.recent_failure(now) {
            return (Err(error), Lookup::Failed);
        }
        let _one_fetch = self.fetching.lock().await;
        let now = Instant::now();
        if let Some(token) = self.usable(now) {
            return (Ok(token.value.clone()), Lookup::Waited);
        }
        if let Some(error) = self.recent_failure(now) {
            return (Err(error), Lookup::Waited);
        }
        match bounded(aging, make()).await {
            Ok(fetched) => {
                let value = fetched.value.clone();
                self.store(aging, fetched);
                (Ok(value), Lookup::Miss)
            }
            Err(error) => {
                self.failure.store(Some(Arc::new(Failure {
                    error: error.clone(),
                    until: Instant::now() + aging.failure_ttl,
                })));
                (Err(error), Lookup::Miss)
            }
        }
    }

    /// Forgets the token if it is still `rejected` (an upstream answered 401 to it).
    pub fn invalidate(&self, rejected: &HeaderValue) {
        let current = self.token.load();
        if current.as_ref().is_some_and(|t| t.value == *rejected) {
            self.token.compare_and_swap(&*current, None);
        }
    }

    fn usable(&self, now: Instant) -> Option<Arc<Token>> {
        self.token.load_full().filter(|t| now < t.usable_until)
    }

    fn recent_failure(&self, now: Instant) -> Option<CredentialError> {
        self.failure
            .load()
            .as_ref()
            .filter(|f| now < f.until)
            .map(|f| f.error.clone())
    }

    fn store(&self, aging: &Aging, fetched: Fetched) {
        let now = Instant::now();
        // A token shorter-lived than twice the margin keeps half its life rather than none.
        let margin = aging.margin.min(fetched.lifetime / 2);
        let usable = fetched.lifetime - margin;
        self.token.store(Some(Arc::new(Token {
            value: fetched.value,
            usable_until: now + usable,
            refresh_at: now + usable.mul_f64(0.75),
        })));
        self.failure.store(None);
    }

    fn refresh_in_background(self: &Arc<Self>, aging: Aging, fetch: Fetch) {
        let slot = self.clone();
        tokio::spawn(async move {
            let _one_fetch = slot.fetching.lock().await;
            match bounded(&aging, fetch).await {
                Ok(fetched) => slot.store(&aging, fetched),
                Err(error) => {
                    // The current token keeps serving; try again after failure_ttl.
                    tracing::warn!(server = %aging.server, %error, "refreshing an upstream token ahead of expiry failed; the current token keeps serving");
                    if let Some(t) = slot.token.load_full() {
                        slot.token.store(Some(Arc::new(Token {
                            value: t.value.clone(),
                            usable_until: t.usable_until,
                            refresh_at: Instant::now() + aging.failure_ttl,
                        })));
                    }
                }
            }
            slot.refreshing.store(false, Ordering::Release);
        });
    }
}

async fn bounded(aging: &Aging, fetch: Fetch) -> Result<Fetched, CredentialError> {
    tokio::time::timeout(aging.timeout, fetch)
        .await
        .unwrap_or_else(|_| {
            Err(CredentialError::Unavailable {
                server: aging.server.to_string(),
                reason: format!(
                    "the token endpoint did not answer within {:?}",
                    aging.timeout
                ),
            })
        })
}

/// Slots keyed by caller, bounded, idle ones evicted.
pub(crate) struct Slots<K> {
    slots: moka::sync::Cache<K, Arc<Slot>>,
}

impl<K: Hash + Eq + Send + Sync + 'static> Slots<K> {
    /// At most `capacity` slots; one unused for an hour is dropped.
    pub fn new(capacity: u64) -> Self {
        Slots {
            slots: moka::sync::Cache::builder()
                .max_capacity(capacity)
                .time_to_idle(Duration::from_secs(3600))
                .build(),
        }
    }

    /// The slot for `key`, created empty if absent.
    pub fn slot(&self, key: K) -> Arc<Slot> {
        self.slots.get_with(key, || Arc::new(Slot::default()))
    }

    /// The slot for `key` if there is one.
    pub fn existing(&self, key: &K) -> Option<Arc<Slot>> {
        self.slots.get(key)
    }
}
