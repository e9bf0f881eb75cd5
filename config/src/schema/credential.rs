//! `[servers.credential]`: what the gateway presents to an upstream, resolved per request from
//! the caller's identity by the auth crate. Every value here passed the header-safety check at
//! load (no CR, LF or other control bytes), so injection never has to refuse one.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use crate::SecretString;

/// RFC 8693's token type for OAuth access tokens (the default requested and subject type).
pub const ACCESS_TOKEN_TYPE: &str = "urn:ietf:params:oauth:token-type:access_token";
/// The ID-JAG token type (draft-ietf-oauth-identity-assertion-authz-grant).
pub const ID_JAG_TOKEN_TYPE: &str = "urn:ietf:params:oauth:token-type:id-jag";

/// One upstream's credential.
#[derive(Debug, Clone, PartialEq)]
pub struct CredentialConfig {
    /// Lower-case header name the credential goes in (default `authorization`).
    pub header: String,
    /// The type and its settings.
    pub kind: CredentialKind,
    /// For fetched tokens: how long before its expiry a token stops being used.
    pub expiry_margin: Duration,
    /// For fetched tokens: bound on one token-endpoint request.
    pub timeout: Duration,
    /// For fetched tokens: how long a failed fetch is answered from the cache.
    pub failure_ttl: Duration,
    /// For tokens kept per caller: most callers cached per server.
    pub cache_capacity: u64,
}

impl CredentialConfig {
    /// Default `header`.
    pub const DEFAULT_HEADER: &'static str = "authorization";
    /// Default `expiry_margin`.
    pub const DEFAULT_EXPIRY_MARGIN: Duration = Duration::from_secs(30);
    /// Default `timeout`.
    pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(10);
    /// Default `failure_ttl`.
    pub const DEFAULT_FAILURE_TTL: Duration = Duration::from_secs(5);
    /// Default `cache_capacity`.
    pub const DEFAULT_CACHE_CAPACITY: u64 = 10_000;

    /// The type's name as written in the config (for logs and spans).
    pub fn type_name(&self) -> &'static str {
        self.kind.type_name()
    }

    /// Whether the credential acts for the caller (needs the caller's identity).
    pub fn acts_for_caller(&self) -> bool {
        matches!(
            self.kind,
            CredentialKind::TokenExchange(_)
                | CredentialKind::IdJag(_)
                | CredentialKind::JwtForward
                | CredentialKind::PerCaller(_)
        )
    }
}

/// The credential types.
#[derive(Debug, Clone, PartialEq)]
pub enum CredentialKind {
    /// A fixed header value (an API key, a bearer token).
    Static {
        /// The whole header value.
        value: SecretString,
    },
    /// OAuth 2 client credentials grant (RFC 6749 §4.4), one token per server.
    ClientCredentials(ClientCredentials),
    /// RFC 8693 token exchange of the caller's token, one token per caller token.
    TokenExchange(TokenExchange),
    /// Enterprise-managed authorization: the caller's token exchanged for an ID-JAG at the
    /// enterprise IdP, then the ID-JAG for an access token at the upstream's server.
    IdJag(IdJag),
    /// The caller's own bearer token, as validated by the gateway.
    JwtForward,
    /// Each caller's own secret, from a secrets file or given inline (`callers`, as the
    /// registry snapshot carries them).
    PerCaller(PerCaller),
}

impl CredentialKind {
    /// Whether the type gets its tokens from a token endpoint.
    pub fn fetches_tokens(&self) -> bool {
        matches!(
            self,
            CredentialKind::ClientCredentials(_)
                | CredentialKind::TokenExchange(_)
                | CredentialKind::IdJag(_)
        )
    }

    /// The type's name as written in the config.
    pub fn type_name(&self) -> &'static str {
        match self {
            CredentialKind::Static { .. } => "static",
            CredentialKind::ClientCredentials(_) => "oauth_client_credentials",
            CredentialKind::TokenExchange(_) => "token_exchange",
            CredentialKind::IdJag(_) => "id_jag",
            CredentialKind::JwtForward => "jwt_forward",
            CredentialKind::PerCaller(_) => "per_caller",
        }
    }
}

/// How a client authenticates at a token endpoint (RFC 6749 §2.3.1).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ClientAuth {
    /// HTTP Basic (`client_secret_basic`, the default every server must support).
    Basic,
    /// Form fields (`client_secret_post`).
    Post,
}

/// A token endpoint and the client that calls it.
#[derive(Debug, Clone, PartialEq)]
pub struct TokenClient {
    /// The token endpoint.
    pub token_url: url::Url,
    /// The client id.
    pub client_id: String,
    /// The client secret.
    pub client_secret: SecretString,
    /// How the client authenticates.
    pub auth: ClientAuth,
}

/// `type = "oauth_client_credentials"`.
#[derive(Debug, Clone, PartialEq)]
pub struct ClientCredentials {
    /// Endpoint and client.
    pub client: TokenClient,
    /// Requested scopes.
    pub scopes: Vec<String>,
    /// `audience` parameter.
    pub audience: Option<String>,
    /// `resource` parameter (RFC 8707).
    pub resource: Option<String>,
}

/// `type = "token_exchange"`.
#[derive(Debug, Clone, PartialEq)]
pub struct TokenExchange {
    /// Endpoint and client.
    pub client: TokenClient,
    /// `audience` parameter.
    pub audience: Option<String>,
    /// `resource` parameter.
    pub resource: Option<String>,
    /// Requested scopes.
    pub scopes: Vec<String>,
    /// `requested_token_type`.
    pub requested_token_type: String,
    /// `subject_token_type` of the caller's token.
    pub subject_token_type: String,
}

/// `type = "id_jag"`.
#[derive(Debug, Clone, PartialEq)]
pub struct IdJag {
    /// Leg 1: the enterprise IdP's token endpoint and Sluice's client there.
    pub idp: TokenClient,
    /// Leg 2: the upstream's authorization server and Sluice's client there.
    pub authorization_server: TokenClient,
    /// The upstream authorization server's issuer identifier (the ID-JAG's audience).
    pub audience: String,
    /// The upstream as a protected resource (default: the server's URL).
    pub resource: String,
    /// Requested scopes.
    pub scopes: Vec<String>,
    /// `subject_token_type` of the caller's token.
    pub subject_token_type: String,
}

/// Who a per-caller secret belongs to: a static token's name (`issuer` empty) or a JWT's
/// issuer and subject.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct CallerKey {
    /// The JWT's `iss`; empty for static tokens.
    pub issuer: String,
    /// The JWT's `sub`, or the static token's name.
    pub subject: String,
}

/// `type = "per_caller"`.
#[derive(Debug, Clone, PartialEq)]
pub struct PerCaller {
    /// The secrets file they came from (for messages); `None` when given inline.
    pub secrets_file: Option<std::path::PathBuf>,
    /// The header value per caller, the template already filled in.
    pub values: Arc<HashMap<CallerKey, SecretString>>,
}
