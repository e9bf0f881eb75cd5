//! The authentication step: one bearer token in, an [`Identity`] or an [`AuthError`] out.
//!
//! A warm request costs a SHA-256 of the token and one hash lookup: static tokens are found
//! by digest (and the digest compared in constant time), and a validated JWT is cached by its
//! digest until it expires (never longer than its provider's `jwks_refresh`, so a key the IdP
//! withdrew stops being honoured within one refresh). Only a cold token is parsed and its
//! signature checked.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use moka::sync::Cache;
use serde_json::Value;
use sha2::{Digest, Sha256};
use sluice_config::{AuthConfig, GatewayAuthConfig, JwtAlgorithm, ProviderConfig};
use subtle::ConstantTimeEq;

use crate::error::{AuthError, shown};
use crate::identity::{Identity, Source};
use crate::issuer::{ISSUED_TOKEN_TYPE, Issuer, IssuerError};
use crate::jwk;
use crate::jwt::{self, Unverified};
use crate::keys::ProviderKeys;
use crate::policy::GatewayPolicy;
use crate::rules::Rules;

/// Most validated tokens cached at once.
pub const TOKEN_CACHE_CAPACITY: u64 = 100_000;

/// A provider: its config and its keys.
pub struct Provider {
    /// The config.
    pub config: ProviderConfig,
    /// The cached keys.
    pub keys: ProviderKeys,
}

#[derive(Clone)]
struct Cached {
    identity: Arc<Identity>,
    ttl: Duration,
}

struct TtlExpiry;

impl moka::Expiry<[u8; 32], Cached> for TtlExpiry {
    fn expire_after_create(
        &self,
        _key: &[u8; 32],
        value: &Cached,
        _created_at: std::time::Instant,
    ) -> Option<Duration> {
        Some(value.ttl)
    }
}

/// Why the authenticator could not be built.
#[derive(Debug, thiserror::Error)]
pub enum SetupError {
    /// The HTTP client for IdP documents could not be built.
    #[error("building the HTTP client for identity providers: {0}")]
    Http(String),
    /// The issuer's signing key is unusable.
    #[error("{0}")]
    Issuer(#[from] IssuerError),
}

/// Validates gateway credentials for every gateway of a proxy.
pub struct Authenticator {
    tokens: HashMap<[u8; 32], Arc<Identity>>,
    providers: Vec<Provider>,
    by_issuer: HashMap<String, usize>,
    issuer: Option<Issuer>,
    public_url: Option<String>,
    cache: Cache<[u8; 32], Cached>,
}

impl Authenticator {
    /// Builds the authenticator from validated config; `id_jag_gateways` are the gateways
    /// with `id_jag = true` (the resources Sluice's issuer may issue tokens for).
    pub fn new(cfg: &AuthConfig, id_jag_gateways: &[String]) -> Result<Self, SetupError> {
        let tokens = cfg
            .tokens
            .iter()
            .map(|t| {
                let identity = Identity::new(
                    Source::Token,
                    "token",
                    &t.name,
                    None,
                    t.claims.clone(),
                    None,
                )
                .with_token_sha256(t.sha256);
                (t.sha256, Arc::new(identity))
            })
            .collect();
        let providers: Vec<Provider> = if cfg.providers.is_empty() {
            Vec::new()
        } else {
            let http = crate::fetch::client().map_err(|e| SetupError::Http(e.to_string()))?;
            cfg.providers
                .iter()
                .map(|p| Provider {
                    config: p.clone(),
                    keys: ProviderKeys::new(p, http.clone()),
                })
                .collect()
        };
        let by_issuer = providers
            .iter()
            .enumerate()
            .map(|(i, p)| (p.config.issuer.clone(), i))
            .collect();
        let public_url = cfg
            .public_url
            .as_ref()
            .map(|u| u.as_str().trim_end_matches('/').to_owned());
        let issuer = match (&cfg.issuer, &public_url) {
            (Some(ic), Some(url)) => {
                let trusted = ic
                    .trusted_providers
                    .iter()
                    .filter_map(|n| providers.iter().position(|p| &p.config.name == n))
                    .collect();
                Some(Issuer::load(ic, url, trusted, id_jag_gateways)?)
            }
            _ => None,
        };
        Ok(Authenticator {
            tokens,
            providers,
            by_issuer,
            issuer,
            public_url,
            cache: Cache::builder()
                .max_capacity(TOKEN_CACHE_CAPACITY)
                .expire_after(TtlExpiry)
                .build(),
        })
    }

    /// The policy of one gateway.
    pub fn policy(&self, gateway: &str, cfg: &GatewayAuthConfig) -> GatewayPolicy {
        let providers: std::collections::HashSet<usize> = cfg
            .providers
            .iter()
            .filter_map(|n| self.providers.iter().position(|p| &p.config.name == n))
            .collect();
        let mut authorization_servers: Vec<String> = self
            .providers
            .iter()
            .enumerate()
            .filter(|(i, _)| providers.contains(i))
            .map(|(_, p)| p.config.issuer.clone())
            .collect();
        if cfg.id_jag
            && let Some(url) = &self.public_url
        {
            authorization_servers.push(url.clone());
        }
        GatewayPolicy {
            gateway: gateway.to_owned(),
            tokens: cfg.tokens,
            providers,
            authorization_servers,
            id_jag: cfg.id_jag && self.issuer.is_some(),
            resource: self
                .public_url
                .as_ref()
                .map(|u| format!("{u}/mcp/{gateway}")),
            scopes: cfg.scopes.clone(),
            rules: Rules::new(&cfg.rules),
        }
    }

    /// The providers, by index.
    pub fn providers(&self) -> &[Provider] {
        &self.providers
    }

    /// Sluice's own issuer, if configured.
    pub fn issuer(&self) -> Option<&Issuer> {
        self.issuer.as_ref()
    }

    /// Authenticates the `Authorization` header value of a request to `policy`'s gateway.
    /// `now` is seconds since the epoch.
    pub async fn authenticate(
        &self,
        policy: &GatewayPolicy,
        authorization: Option<&[u8]>,
        now: u64,
    ) -> Result<Arc<Identity>, AuthError> {
        let token = bearer(authorization)?;
        let digest: [u8; 32] = Sha256::digest(token.as_bytes()).into();
        if policy.tokens
            && let Some((stored, identity)) = self.tokens.get_key_value(&digest)
            && bool::from(stored.ct_eq(&digest))
        {
            return Ok(identity.clone());
        }
        if let Some(hit) = self.cache.get(&digest)
            && hit.identity.expires_at.is_some_and(|exp| now <= exp)
        {
            accepts(policy, &hit.identity)?;
            return Ok(hit.identity);
        }
        if !jwt::looks_like_jwt(token) || (policy.providers.is_empty() && !policy.id_jag) {
            return Err(AuthError::UnknownToken);
        }
        let (identity, ttl) = self.validate_jwt(policy, token, now).await?;
        let identity = Arc::new(identity.with_token_sha256(digest));
        if !ttl.is_zero() {
            self.cache.insert(
                digest,
                Cached {
                    identity: identity.clone(),
                    ttl,
                },
            );
        }
        Ok(identity)
    }

    async fn validate_jwt(
        &self,
        policy: &GatewayPolicy,
        token: &str,
        now: u64,
    ) -> Result<(Identity, Duration), AuthError> {
        let unverified = jwt::parse(token)?;
        if unverified
            .header
            .typ
            .as_deref()
            .is_some_and(|t| t.eq_ignore_ascii_case(crate::issuer::ID_JAG_TYPE))
        {
            // An identity assertion is a grant for the token endpoint, never an access token.
            return Err(AuthError::Malformed(
                "an ID-JAG is not an access token; exchange it at /oauth/token",
            ));
        }
        let iss = unverified
            .claims
            .get("iss")
            .and_then(Value::as_str)
            .ok_or(AuthError::Malformed("JWT has no iss claim"))?
            .to_owned();
        if let Some(issuer) = &self.issuer
            && iss == issuer.url()
        {
            if !policy.id_jag {
                return Err(AuthError::IssuerNotAccepted(shown(&iss)));
            }
            return self.validate_issued(policy, issuer, &unverified, iss, now);
        }
        let index = *self
            .by_issuer
            .get(&iss)
            .filter(|i| policy.providers.contains(i))
            .ok_or_else(|| AuthError::IssuerNotAccepted(shown(&iss)))?;
        let provider = &self.providers[index];
        let alg = unverified.algorithm(&provider.config.algorithms)?;
        self.verify_signature(provider, &unverified, alg).await?;
        let leeway = provider.config.leeway.as_secs();
        let exp = jwt::check_times(&unverified.claims, now, leeway)?;
        if !jwt::audience_matches(&unverified.claims, &provider.config.audiences) {
            return Err(AuthError::Audience);
        }
        let ttl = Duration::from_secs(exp.saturating_sub(now)).min(provider.config.jwks_refresh);
        let subject = subject(&unverified);
        Ok((
            Identity::new(
                Source::Provider(index),
                &provider.config.name,
                &subject,
                Some(iss),
                unverified.claims,
                Some(exp),
            ),
            ttl,
        ))
    }

    fn validate_issued(
        &self,
        policy: &GatewayPolicy,
        issuer: &Issuer,
        unverified: &Unverified<'_>,
        iss: String,
        now: u64,
    ) -> Result<(Identity, Duration), AuthError> {
        if !unverified
            .header
            .typ
            .as_deref()
            .is_some_and(|t| t.eq_ignore_ascii_case(ISSUED_TOKEN_TYPE))
        {
            return Err(AuthError::Malformed(
                "token from this issuer must be typ at+jwt",
            ));
        }
        let alg = unverified.algorithm(&[JwtAlgorithm::ES256])?;
        unverified.verify(alg, issuer.verifying_key())?;
        let exp = jwt::check_times(&unverified.claims, now, 0)?;
        let resource = policy.resource.clone().unwrap_or_default();
        if !jwt::audience_matches(&unverified.claims, std::slice::from_ref(&resource)) {
            return Err(AuthError::Audience);
        }
        let subject = subject(unverified);
        Ok((
            Identity::new(
                Source::Issued { audience: resource },
                "sluice",
                &subject,
                Some(iss),
                unverified.claims.clone(),
                Some(exp),
            ),
            Duration::from_secs(exp.saturating_sub(now)),
        ))
    }

    /// Checks `unverified`'s signature with `provider`'s keys, refetching them once (rate
    /// limited) when no key matches the token's `kid`.
    pub(crate) async fn verify_signature(
        &self,
        provider: &Provider,
        unverified: &Unverified<'_>,
        alg: JwtAlgorithm,
    ) -> Result<(), AuthError> {
        let kid = unverified.header.kid.as_deref();
        for attempt in 0..2 {
            let keys = provider.keys.usable();
            if let Some(set) = &keys {
                let mut candidates = jwk::candidates(&set.keys, kid, alg).peekable();
                if candidates.peek().is_some() {
                    return if candidates.any(|k| unverified.verify(alg, k).is_ok()) {
                        Ok(())
                    } else {
                        Err(AuthError::Signature)
                    };
                }
            }
            if attempt == 0 {
                provider.keys.refetch_for_unknown_kid().await;
            } else if keys.is_none() {
                return Err(AuthError::KeysUnavailable(provider.config.name.clone()));
            }
        }
        Err(AuthError::UnknownKey)
    }

    /// The provider at `index`.
    pub(crate) fn provider(&self, index: usize) -> Option<&Provider> {
        self.providers.get(index)
    }

    /// The provider whose issuer is `iss`.
    pub(crate) fn provider_by_issuer(&self, iss: &str) -> Option<usize> {
        self.by_issuer.get(iss).copied()
    }
}

/// Whether a cached identity is accepted by this gateway.
fn accepts(policy: &GatewayPolicy, identity: &Identity) -> Result<(), AuthError> {
    let ok = match &identity.source {
        Source::Token => policy.tokens,
        Source::Provider(i) => policy.providers.contains(i),
        Source::Issued { audience } => {
            if !policy.id_jag {
                false
            } else if policy.resource.as_deref() != Some(audience.as_str()) {
                return Err(AuthError::Audience);
            } else {
                true
            }
        }
    };
    if ok {
        Ok(())
    } else {
        Err(AuthError::IssuerNotAccepted(shown(
            identity.issuer.as_deref().unwrap_or("a static token"),
        )))
    }
}

fn subject(unverified: &Unverified<'_>) -> String {
    unverified
        .claims
        .get("sub")
        .and_then(Value::as_str)
        .map_or_else(|| "-".to_owned(), shown)
}

/// The token of `Authorization: Bearer <token>` (RFC 6750 `b64token` characters).
pub fn bearer(header: Option<&[u8]>) -> Result<&str, AuthError> {
    let header = header.ok_or(AuthError::Missing)?;
    let header = std::str::from_utf8(header)
        .map_err(|_| AuthError::Malformed("Authorization is not ASCII"))?;
    let (scheme, token) = header.trim().split_once(' ').ok_or(AuthError::Malformed(
        "Authorization must be \"Bearer <token>\"",
    ))?;
    if !scheme.eq_ignore_ascii_case("bearer") {
        return Err(AuthError::Malformed(
            "Authorization must use the Bearer scheme",
        ));
    }
    let token = token.trim();
    let valid = !token.is_empty()
        && token.len() <= jwt::MAX_TOKEN_BYTES
        && token.bytes().all(|b| {
            b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~' | b'+' | b'/' | b'=')
        });
    if !valid {
        return Err(AuthError::Malformed(
            "bearer token has invalid characters or length",
        ));
    }
    Ok(token)
}
