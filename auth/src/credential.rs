//! Upstream credentials: what the gateway presents to each upstream server, resolved per
//! request from the server's `[servers.credential]` and the caller.
//!
//! The client only ever holds its gateway token. Static values and per-caller secrets are
//! ready-made header values; tokens from a token endpoint (client credentials, RFC 8693 token
//! exchange, the two legs of an ID-JAG grant) sit in a [`cache`] that serves a warm request with
//! one atomic load and fetches with one request however many arrive together. Types that act
//! for the caller refuse a request without one before any token endpoint is contacted, and are
//! cached per caller token, so two callers never share a token. Every value is a sensitive
//! [`HeaderValue`]; no message here quotes a secret or token.

mod cache;
mod token_endpoint;

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use http::{HeaderName, HeaderValue};
use sluice_config::{
    ACCESS_TOKEN_TYPE, ClientCredentials, CredentialConfig, CredentialKind, ID_JAG_TOKEN_TYPE,
    IdJag, TokenExchange,
};

use crate::Identity;
use cache::{Aging, Fetch, Fetched, Slot, Slots};

const TOKEN_EXCHANGE_GRANT: &str = "urn:ietf:params:oauth:grant-type:token-exchange";
const JWT_BEARER_GRANT: &str = "urn:ietf:params:oauth:grant-type:jwt-bearer";
/// Lifetime assumed for a token whose endpoint gave no `expires_in`.
pub const DEFAULT_TOKEN_LIFETIME: Duration = Duration::from_secs(300);

/// Why no credential could be presented. Messages name the server and what is missing, never
/// a secret.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum CredentialError {
    /// The token endpoint failed, timed out or refused.
    #[error("upstream server '{server}': credential unavailable: {reason}")]
    Unavailable {
        /// The server.
        server: String,
        /// What went wrong.
        reason: String,
    },
    /// The credential acts for the caller and the request has none.
    #[error(
        "upstream server '{server}' needs the caller's identity for its {kind} credential, and the request has none (the gateway authenticates no callers)"
    )]
    NoCaller {
        /// The server.
        server: String,
        /// The credential type.
        kind: &'static str,
    },
    /// The credential needs the caller's JWT and the caller used a static token.
    #[error(
        "upstream server '{server}' needs the caller's JWT for its {kind} credential; a static gateway token cannot be exchanged or forwarded"
    )]
    NotAJwt {
        /// The server.
        server: String,
        /// The credential type.
        kind: &'static str,
    },
    /// No per-caller secret for this caller.
    #[error(
        "upstream server '{server}' needs a per-caller secret for caller '{caller}', and none is configured for it"
    )]
    NoCallerSecret {
        /// The server.
        server: String,
        /// The caller's label.
        caller: String,
    },
}

impl CredentialError {
    /// A stable label for metrics and logs.
    pub fn reason(&self) -> &'static str {
        match self {
            CredentialError::Unavailable { .. } => "credential_unavailable",
            CredentialError::NoCaller { .. } => "no_caller",
            CredentialError::NotAJwt { .. } => "caller_not_jwt",
            CredentialError::NoCallerSecret { .. } => "no_caller_secret",
        }
    }
}

/// How a cached token was found, for `sluice_credential_cache_requests_total{result}`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Lookup {
    /// A usable token was cached.
    Hit = 0,
    /// This request fetched.
    Miss = 1,
    /// Another request's fetch was awaited (single-flight).
    Waited = 2,
    /// A recent failure was answered from the cache.
    Failed = 3,
}

impl Lookup {
    /// Every value, in label order.
    pub const ALL: [Lookup; 4] = [Lookup::Hit, Lookup::Miss, Lookup::Waited, Lookup::Failed];

    /// The metric label.
    pub fn label(self) -> &'static str {
        match self {
            Lookup::Hit => "hit",
            Lookup::Miss => "miss",
            Lookup::Waited => "wait",
            Lookup::Failed => "failure",
        }
    }
}

/// Token-endpoint outcomes, for `sluice_token_endpoint_requests_total{outcome}`.
pub const TOKEN_OUTCOMES: [&str; 3] = ["ok", "error", "timeout"];

/// Where credential events are counted (the proxy's metrics).
pub trait CredentialEvents: Send + Sync {
    /// A cached-token lookup for server `server` (by index).
    fn cache(&self, server: usize, lookup: Lookup);
    /// A token-endpoint request for server `server`, by outcome (one of [`TOKEN_OUTCOMES`]).
    fn token_request(&self, server: usize, outcome: &'static str);
}

/// Counts nothing.
pub struct NoEvents;

impl CredentialEvents for NoEvents {
    fn cache(&self, _: usize, _: Lookup) {}
    fn token_request(&self, _: usize, _: &'static str) {}
}

/// One server's event sink.
#[derive(Clone)]
pub(crate) struct Observer {
    events: Arc<dyn CredentialEvents>,
    index: usize,
    server: Arc<str>,
}

impl Observer {
    fn token_request(&self, outcome: &'static str) {
        self.events.token_request(self.index, outcome);
    }
}

/// The caller of a request, as the credential step sees it.
#[derive(Debug, Clone, Copy, Default)]
pub struct Caller<'a> {
    /// The authenticated identity; `None` on a gateway without auth or for the gateway's own
    /// calls.
    pub identity: Option<&'a Identity>,
    /// The bearer token the identity was proven with.
    pub token: Option<&'a str>,
}

/// A header to add to the upstream request. Its `Debug` shows the header name only.
#[derive(Clone)]
pub struct Injected {
    /// The header.
    pub name: HeaderName,
    /// Its value, marked sensitive.
    pub value: HeaderValue,
    /// How a fetched token was found; `None` for values that are not fetched.
    pub lookup: Option<Lookup>,
}

impl Injected {
    /// The first 8 hex digits of the value's SHA-256: enough to tell two tokens apart in a
    /// span or log, nothing to replay.
    pub fn digest(&self) -> String {
        use sha2::{Digest, Sha256};
        Sha256::digest(self.value.as_bytes())[..4]
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect()
    }
}

impl std::fmt::Debug for Injected {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Injected")
            .field("name", &self.name)
            .field("lookup", &self.lookup)
            .finish_non_exhaustive()
    }
}

/// One upstream server's credential.
pub struct UpstreamCredential {
    name: HeaderName,
    bearer: bool,
    type_name: &'static str,
    kind: Kind,
    aging: Aging,
    observer: Observer,
    http: reqwest::Client,
}

impl std::fmt::Debug for UpstreamCredential {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // The type and header only: never a value.
        f.debug_struct("UpstreamCredential")
            .field("server", &self.observer.server)
            .field("type", &self.type_name())
            .field("header", &self.name)
            .finish_non_exhaustive()
    }
}

enum Kind {
    Static(HeaderValue),
    ClientCredentials {
        grant: Arc<ClientCredentials>,
        slot: Arc<Slot>,
    },
    TokenExchange {
        grant: Arc<TokenExchange>,
        slots: Slots<[u8; 32]>,
    },
    IdJag {
        grant: Arc<IdJag>,
        slots: Slots<[u8; 32]>,
    },
    JwtForward,
    /// issuer ("" for static tokens) → subject → value.
    PerCaller(HashMap<String, HashMap<String, HeaderValue>>),
}

impl UpstreamCredential {
    /// The credential of server `server` (index `index`), from validated config.
    pub fn new(
        index: usize,
        server: &str,
        cfg: &CredentialConfig,
        http: reqwest::Client,
        events: Arc<dyn CredentialEvents>,
    ) -> Self {
        let name =
            HeaderName::from_bytes(cfg.header.as_bytes()).unwrap_or(http::header::AUTHORIZATION);
        let kind = match &cfg.kind {
            CredentialKind::Static { value } => Kind::Static(sensitive(value.expose())),
            CredentialKind::ClientCredentials(c) => Kind::ClientCredentials {
                grant: Arc::new(c.clone()),
                slot: Arc::new(Slot::default()),
            },
            CredentialKind::TokenExchange(c) => Kind::TokenExchange {
                grant: Arc::new(c.clone()),
                slots: Slots::new(cfg.cache_capacity),
            },
            CredentialKind::IdJag(c) => Kind::IdJag {
                grant: Arc::new(c.clone()),
                slots: Slots::new(cfg.cache_capacity),
            },
            CredentialKind::JwtForward => Kind::JwtForward,
            CredentialKind::PerCaller(p) => {
                let mut by_issuer: HashMap<String, HashMap<String, HeaderValue>> = HashMap::new();
                for (key, value) in p.values.iter() {
                    by_issuer
                        .entry(key.issuer.clone())
                        .or_default()
                        .insert(key.subject.clone(), sensitive(value.expose()));
                }
                Kind::PerCaller(by_issuer)
            }
        };
        let server: Arc<str> = Arc::from(server);
        UpstreamCredential {
            bearer: name == http::header::AUTHORIZATION,
            name,
            type_name: cfg.type_name(),
            kind,
            aging: Aging {
                server: server.clone(),
                margin: cfg.expiry_margin,
                failure_ttl: cfg.failure_ttl,
                timeout: cfg.timeout,
            },
            observer: Observer {
                events,
                index,
                server,
            },
            http,
        }
    }

    /// The type as written in the config (safe to log).
    pub fn type_name(&self) -> &'static str {
        self.type_name
    }

    /// Whether the credential acts for the caller.
    pub fn acts_for_caller(&self) -> bool {
        !matches!(self.kind, Kind::Static(_) | Kind::ClientCredentials { .. })
    }

    /// Whether a 401 from the upstream can be cured by fetching a new token.
    pub fn is_fetched(&self) -> bool {
        matches!(
            self.kind,
            Kind::ClientCredentials { .. } | Kind::TokenExchange { .. } | Kind::IdJag { .. }
        )
    }

    /// The header for one request by `caller`.
    pub async fn resolve(&self, caller: Caller<'_>) -> Result<Injected, CredentialError> {
        let server = || self.observer.server.to_string();
        let (value, lookup) = match &self.kind {
            Kind::Static(v) => (v.clone(), None),
            Kind::ClientCredentials { grant, slot } => {
                let make = || self.client_credentials(grant.clone());
                let (value, lookup) = slot.get(&self.aging, make).await;
                self.observer.events.cache(self.observer.index, lookup);
                (value?, Some(lookup))
            }
            Kind::TokenExchange { grant, slots } => {
                let (identity, token) = self.jwt_caller(caller)?;
                let slot = slots.slot(identity.token_sha256);
                let make = || self.token_exchange(grant.clone(), token.to_owned(), identity);
                let (value, lookup) = slot.get(&self.aging, make).await;
                self.observer.events.cache(self.observer.index, lookup);
                (value?, Some(lookup))
            }
            Kind::IdJag { grant, slots } => {
                let (identity, token) = self.jwt_caller(caller)?;
                let slot = slots.slot(identity.token_sha256);
                let make = || self.id_jag(grant.clone(), token.to_owned(), identity);
                let (value, lookup) = slot.get(&self.aging, make).await;
                self.observer.events.cache(self.observer.index, lookup);
                (value?, Some(lookup))
            }
            Kind::JwtForward => {
                let (_, token) = self.jwt_caller(caller)?;
                let value = HeaderValue::from_str(&format!("Bearer {token}")).map_err(|_| {
                    CredentialError::NotAJwt {
                        server: server(),
                        kind: self.type_name(),
                    }
                })?;
                (with_sensitive(value), None)
            }
            Kind::PerCaller(by_issuer) => {
                let identity = caller.identity.ok_or_else(|| CredentialError::NoCaller {
                    server: server(),
                    kind: self.type_name(),
                })?;
                let issuer = identity.issuer.as_deref().unwrap_or("");
                let issuer = if identity.has_jwt() { issuer } else { "" };
                let value = identity
                    .subject()
                    .and_then(|subject| by_issuer.get(issuer)?.get(subject))
                    .ok_or_else(|| CredentialError::NoCallerSecret {
                        server: server(),
                        caller: identity.display().to_owned(),
                    })?;
                (value.clone(), None)
            }
        };
        Ok(Injected {
            name: self.name.clone(),
            value,
            lookup,
        })
    }

    /// The upstream answered 401 to `value`: forget that token so the next request fetches.
    pub fn rejected(&self, caller: Caller<'_>, value: &HeaderValue) {
        match &self.kind {
            Kind::ClientCredentials { slot, .. } => slot.invalidate(value),
            Kind::TokenExchange { slots, .. } | Kind::IdJag { slots, .. } => {
                if let Some(slot) = caller
                    .identity
                    .and_then(|i| slots.existing(&i.token_sha256))
                {
                    slot.invalidate(value);
                }
            }
            _ => {}
        }
    }

    /// The caller's identity and JWT, or why this credential cannot act for it.
    fn jwt_caller<'c>(
        &self,
        caller: Caller<'c>,
    ) -> Result<(&'c Identity, &'c str), CredentialError> {
        let server = self.observer.server.to_string();
        match (caller.identity, caller.token) {
            (Some(identity), Some(token)) if identity.has_jwt() => Ok((identity, token)),
            (Some(_), _) => Err(CredentialError::NotAJwt {
                server,
                kind: self.type_name(),
            }),
            (None, _) => Err(CredentialError::NoCaller {
                server,
                kind: self.type_name(),
            }),
        }
    }

    fn client_credentials(&self, grant: Arc<ClientCredentials>) -> Fetch {
        let (http, observer, bearer) = (self.http.clone(), self.observer.clone(), self.bearer);
        Box::pin(async move {
            let mut form = vec![("grant_type", "client_credentials".to_owned())];
            optional(&mut form, "scope", scope(&grant.scopes));
            optional(&mut form, "audience", grant.audience.clone());
            optional(&mut form, "resource", grant.resource.clone());
            let granted = token_endpoint::request(&http, &grant.client, form, &observer).await?;
            fetched(&observer, bearer, &granted, None)
        })
    }

    fn token_exchange(
        &self,
        grant: Arc<TokenExchange>,
        subject_token: String,
        caller: &Identity,
    ) -> Fetch {
        let (http, observer, bearer) = (self.http.clone(), self.observer.clone(), self.bearer);
        let caller_expires = caller.expires_at;
        Box::pin(async move {
            let mut form = vec![
                ("grant_type", TOKEN_EXCHANGE_GRANT.to_owned()),
                ("subject_token", subject_token),
                ("subject_token_type", grant.subject_token_type.clone()),
                ("requested_token_type", grant.requested_token_type.clone()),
            ];
            optional(&mut form, "audience", grant.audience.clone());
            optional(&mut form, "resource", grant.resource.clone());
            optional(&mut form, "scope", scope(&grant.scopes));
            let granted = token_endpoint::request(&http, &grant.client, form, &observer).await?;
            issued_type(&observer, &granted, &grant.requested_token_type)?;
            fetched(&observer, bearer, &granted, caller_expires)
        })
    }

    fn id_jag(&self, grant: Arc<IdJag>, subject_token: String, caller: &Identity) -> Fetch {
        let (http, observer, bearer) = (self.http.clone(), self.observer.clone(), self.bearer);
        let caller_expires = caller.expires_at;
        Box::pin(async move {
            // Leg 1: the caller's token for an ID-JAG at the enterprise IdP.
            let mut form = vec![
                ("grant_type", TOKEN_EXCHANGE_GRANT.to_owned()),
                ("requested_token_type", ID_JAG_TOKEN_TYPE.to_owned()),
                ("subject_token", subject_token),
                ("subject_token_type", grant.subject_token_type.clone()),
                ("audience", grant.audience.clone()),
                ("resource", grant.resource.clone()),
            ];
            optional(&mut form, "scope", scope(&grant.scopes));
            let assertion = token_endpoint::request(&http, &grant.idp, form, &observer).await?;
            issued_type(&observer, &assertion, ID_JAG_TOKEN_TYPE)?;
            // Leg 2: the ID-JAG for an access token at the upstream's authorization server.
            let form = vec![
                ("grant_type", JWT_BEARER_GRANT.to_owned()),
                ("assertion", assertion.access_token),
            ];
            let granted =
                token_endpoint::request(&http, &grant.authorization_server, form, &observer)
                    .await?;
            fetched(&observer, bearer, &granted, caller_expires)
        })
    }
}

/// The header value of a granted token, living no longer than the caller's own token.
fn fetched(
    observer: &Observer,
    bearer: bool,
    granted: &token_endpoint::Granted,
    caller_expires: Option<u64>,
) -> Result<Fetched, CredentialError> {
    let unavailable = |reason: &str| CredentialError::Unavailable {
        server: observer.server.to_string(),
        reason: reason.to_owned(),
    };
    if let Some(t) = &granted.token_type
        && ["dpop", "pop", "mac"].contains(&t.to_ascii_lowercase().as_str())
    {
        return Err(unavailable(
            "the token endpoint issued a proof-of-possession token, which the gateway cannot present",
        ));
    }
    let text = if bearer {
        format!("Bearer {}", granted.access_token)
    } else {
        granted.access_token.clone()
    };
    let value = HeaderValue::from_bytes(text.as_bytes())
        .map_err(|_| unavailable("the token endpoint issued a token a header cannot carry"))?;
    let mut lifetime = granted.lifetime(DEFAULT_TOKEN_LIFETIME);
    if let Some(exp) = caller_expires {
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_secs());
        lifetime = lifetime.min(Duration::from_secs(exp.saturating_sub(now)));
    }
    Ok(Fetched {
        value: with_sensitive(value),
        lifetime,
    })
}

/// RFC 8693 says what was issued; anything but what was asked for is refused.
fn issued_type(
    observer: &Observer,
    granted: &token_endpoint::Granted,
    wanted: &str,
) -> Result<(), CredentialError> {
    match &granted.issued_token_type {
        Some(t) if t != wanted && !(wanted == ACCESS_TOKEN_TYPE && t.is_empty()) => {
            Err(CredentialError::Unavailable {
                server: observer.server.to_string(),
                reason: format!(
                    "the token endpoint issued {} instead of {wanted}",
                    t.chars().take(100).collect::<String>()
                ),
            })
        }
        _ => Ok(()),
    }
}

fn scope(scopes: &[String]) -> Option<String> {
    (!scopes.is_empty()).then(|| scopes.join(" "))
}

fn optional(form: &mut Vec<(&'static str, String)>, key: &'static str, value: Option<String>) {
    if let Some(v) = value {
        form.push((key, v));
    }
}

/// A header value from validated config (checked header-safe at load).
fn sensitive(value: &str) -> HeaderValue {
    with_sensitive(
        HeaderValue::from_bytes(value.as_bytes())
            .unwrap_or_else(|_| HeaderValue::from_static("invalid")),
    )
}

fn with_sensitive(mut value: HeaderValue) -> HeaderValue {
    value.set_sensitive(true);
    value
}

#[cfg(test)]
mod tests;
