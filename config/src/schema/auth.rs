//! The validated authentication configuration: who may call a gateway (`[auth]`,
//! `[gateways.auth]`) and which of its tools. Static tokens are held only as SHA-256 digests:
//! the loader hashes a plain `token` at once and keeps nothing else, so a `Config` never holds a
//! gateway token.

use std::fmt;
use std::path::PathBuf;
use std::time::Duration;

use serde_json::{Map, Value};

/// `[auth]`: credentials accepted by gateways that have `[gateways.auth]`.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct AuthConfig {
    /// The externally visible base URL of this proxy (scheme, host, port). Gateway `X` is the
    /// OAuth protected resource `{public_url}/mcp/X`; absent, it is derived per request from
    /// the `Host` header (and `X-Forwarded-Proto`).
    pub public_url: Option<url::Url>,
    /// `[[auth.tokens]]`.
    pub tokens: Vec<StaticToken>,
    /// `[[auth.providers]]`.
    pub providers: Vec<ProviderConfig>,
    /// `[auth.issuer]`: Sluice's own authorization server for ID-JAG grants.
    pub issuer: Option<IssuerConfig>,
}

impl AuthConfig {
    /// Whether anything here is configured.
    pub fn is_empty(&self) -> bool {
        self.tokens.is_empty() && self.providers.is_empty() && self.issuer.is_none()
    }
}

/// `[[auth.tokens]]`: one static bearer token.
#[derive(Clone, PartialEq)]
pub struct StaticToken {
    /// Unique name, shown in logs as the caller.
    pub name: String,
    /// SHA-256 of the token; the token itself is not kept.
    pub sha256: [u8; 32],
    /// Claims the gateway rules can match on.
    pub claims: Map<String, Value>,
}

impl fmt::Debug for StaticToken {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("StaticToken")
            .field("name", &self.name)
            .field("sha256", &"***")
            .field("claims", &self.claims)
            .finish()
    }
}

/// A JWS algorithm a provider may sign with. HMAC and `none` have no variant: a shared-secret
/// algorithm verified with a public key is the classic JWT forgery.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum JwtAlgorithm {
    /// RSASSA-PKCS1-v1_5 with SHA-256.
    RS256,
    /// RSASSA-PKCS1-v1_5 with SHA-384.
    RS384,
    /// RSASSA-PKCS1-v1_5 with SHA-512.
    RS512,
    /// RSASSA-PSS with SHA-256.
    PS256,
    /// RSASSA-PSS with SHA-384.
    PS384,
    /// RSASSA-PSS with SHA-512.
    PS512,
    /// ECDSA P-256 with SHA-256.
    ES256,
    /// ECDSA P-384 with SHA-384.
    ES384,
}

impl JwtAlgorithm {
    /// Every supported algorithm.
    pub const ALL: [JwtAlgorithm; 8] = [
        JwtAlgorithm::RS256,
        JwtAlgorithm::RS384,
        JwtAlgorithm::RS512,
        JwtAlgorithm::PS256,
        JwtAlgorithm::PS384,
        JwtAlgorithm::PS512,
        JwtAlgorithm::ES256,
        JwtAlgorithm::ES384,
    ];

    /// The JOSE name, e.g. `"RS256"`.
    pub fn as_str(self) -> &'static str {
        match self {
            JwtAlgorithm::RS256 => "RS256",
            JwtAlgorithm::RS384 => "RS384",
            JwtAlgorithm::RS512 => "RS512",
            JwtAlgorithm::PS256 => "PS256",
            JwtAlgorithm::PS384 => "PS384",
            JwtAlgorithm::PS512 => "PS512",
            JwtAlgorithm::ES256 => "ES256",
            JwtAlgorithm::ES384 => "ES384",
        }
    }

    /// The algorithm with this JOSE name.
    pub fn from_name(name: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|a| a.as_str() == name)
    }
}

/// `[[auth.providers]]`: an external identity provider whose JWTs gateways may accept.
#[derive(Debug, Clone, PartialEq)]
pub struct ProviderConfig {
    /// Unique name, referenced by `gateways.auth.providers`.
    pub name: String,
    /// The exact `iss` of its tokens.
    pub issuer: String,
    /// Accepted `aud` values; a token must name at least one.
    pub audiences: Vec<String>,
    /// Where its keys are; absent, discovered from the issuer's metadata.
    pub jwks_url: Option<url::Url>,
    /// Algorithms its tokens may use.
    pub algorithms: Vec<JwtAlgorithm>,
    /// How often its keys are refetched in the background.
    pub jwks_refresh: Duration,
    /// How long the last good keys keep serving while the provider cannot be reached.
    pub jwks_max_stale: Duration,
    /// Clock skew allowed on `exp` and `nbf`.
    pub leeway: Duration,
}

impl ProviderConfig {
    /// Default `algorithms`.
    pub const DEFAULT_ALGORITHMS: [JwtAlgorithm; 2] = [JwtAlgorithm::RS256, JwtAlgorithm::ES256];
    /// Default `jwks_refresh`.
    pub const DEFAULT_JWKS_REFRESH: Duration = Duration::from_secs(5 * 60);
    /// Default `jwks_max_stale`.
    pub const DEFAULT_JWKS_MAX_STALE: Duration = Duration::from_secs(60 * 60);
    /// Default `leeway`.
    pub const DEFAULT_LEEWAY: Duration = Duration::from_secs(30);
}

/// `[auth.issuer]`: Sluice as the authorization server of its gateways, exchanging an Identity
/// Assertion JWT Authorization Grant (ID-JAG) for its own short-lived access token.
#[derive(Debug, Clone, PartialEq)]
pub struct IssuerConfig {
    /// PEM file with the PKCS#8 P-256 private key tokens are signed with (ES256).
    pub signing_key_file: PathBuf,
    /// Lifetime of issued access tokens.
    pub token_lifetime: Duration,
    /// Providers whose ID-JAGs are accepted.
    pub trusted_providers: Vec<String>,
    /// OAuth clients allowed at the token endpoint; each must authenticate.
    pub clients: Vec<IssuerClient>,
}

/// `[[auth.issuer.clients]]`: a confidential client of Sluice's token endpoint.
#[derive(Clone, PartialEq)]
pub struct IssuerClient {
    /// The `client_id`; an ID-JAG's `client_id` claim must name it.
    pub client_id: String,
    /// SHA-256 of the client secret; the secret itself is not kept.
    pub secret_sha256: [u8; 32],
}

impl fmt::Debug for IssuerClient {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("IssuerClient")
            .field("client_id", &self.client_id)
            .field("secret_sha256", &"***")
            .finish()
    }
}

impl IssuerConfig {
    /// Default `token_lifetime`.
    pub const DEFAULT_TOKEN_LIFETIME: Duration = Duration::from_secs(5 * 60);
}

/// `[gateways.auth]`: what a gateway accepts; present means every request needs a credential.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct GatewayAuthConfig {
    /// Accept `[[auth.tokens]]`.
    pub tokens: bool,
    /// Accept JWTs of these providers (declared names).
    pub providers: Vec<String>,
    /// Accept access tokens Sluice issued for this gateway (needs `[auth.issuer]`).
    pub id_jag: bool,
    /// Scopes advertised in the protected-resource metadata.
    pub scopes: Vec<String>,
    /// Ordered tool rules; empty = every tool for every accepted caller.
    pub rules: Vec<ToolRule>,
}

/// `[[gateways.auth.rules]]`: the first rule whose `tools` pattern matches a tool decides it.
#[derive(Debug, Clone, PartialEq)]
pub struct ToolRule {
    /// Tool name patterns; `*` matches any run of characters.
    pub tools: Vec<String>,
    /// Claims the caller must hold, all of them: the claim equals one of the values, or, for
    /// an array claim (or a space-separated `scope`/`scp`), contains one.
    pub require: Vec<(String, Vec<Value>)>,
}

/// Most rules a gateway may have (a caller's outcome is a 64-bit mask).
pub const MAX_RULES: usize = 64;
